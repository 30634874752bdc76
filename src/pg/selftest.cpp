// Functions that let the regression suite prove the error boundary works.
// The install script does not create SQL objects for them; the test creates
// them itself (CREATE FUNCTION ... AS 'pg_cachekit', 'ck_selftest_...').
#include <atomic>
#include <new>
#include <stdexcept>
#include <string>

#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/sql_function.h"

extern "C" {
#include "utils/fmgrprotos.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

// Counts live instances: if a longjmp skipped a destructor, the count stays up.
int live_objects = 0;

struct Tracked {
  std::string payload = std::string(64, 'x');  // owns heap memory, like real code
  Tracked() { ++live_objects; }
  ~Tracked() { --live_objects; }
};

}  // namespace

// ck_selftest_raise(kind text, sqlstate text): raise an error of `kind` from
// inside C++ code that holds a Tracked object.
//   'cpp'       cachekit::Error with the given SQLSTATE
//   'bad_alloc' std::bad_alloc
//   'std'       std::runtime_error
//   'pg'        a Postgres ERROR (division by zero) raised by a Postgres call
//   'none'      no error; returns the number of live objects seen inside
CK_SQL_FUNCTION(ck_selftest_raise) {
  Arg kind_arg = varlena_arg(fcinfo, 0);
  Arg state_arg = varlena_arg(fcinfo, 1);
  return cpp_entry([&]() -> Datum {
    Tracked guard;
    std::string kind(required(kind_arg, "kind"));
    if (kind == "cpp") {
      std::string s(required(state_arg, "sqlstate"));
      if (s.size() != 5)
        throw Error(sqlstate::kInvalidParameterValue, "sqlstate must have 5 characters");
      throw Error(s.c_str(), "selftest error from C++", "detail from C++", "hint from C++");
    }
    if (kind == "bad_alloc") throw std::bad_alloc();
    if (kind == "std") throw std::runtime_error("selftest std::runtime_error");
    if (kind == "pg") {
      pg_call([] { return DirectFunctionCall2(int4div, Int32GetDatum(1), Int32GetDatum(0)); });
    }
    PG_RETURN_INT32(live_objects);
  });
}

CK_SQL_FUNCTION(ck_selftest_live_objects) { PG_RETURN_INT32(live_objects); }
