// Moving values between Datums and the C++ side.
//
// Arguments are read before entering C++ code (detoasting may ereport), as
// plain pointer/length views into Postgres memory. Results are built with
// pg_call, so a palloc failure becomes an exception that unwinds the C++
// frames before Postgres sees it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "pg/boundary.h"

extern "C" {
#include "fmgr.h"
}

namespace cachekit::pg {

struct Arg {
  const char *data = nullptr;
  size_t len = 0;
  bool null = true;
  std::string_view view() const { return {data, len}; }
};

// A text or bytea argument (no C++ code runs here; may ereport).
Arg varlena_arg(FunctionCallInfo fcinfo, int i);
// A jsonb argument as its canonical text (may ereport).
Arg jsonb_arg(FunctionCallInfo fcinfo, int i);

// Throws 22004 when the argument is NULL; `what` names it in the message.
std::string_view required(const Arg &a, const char *what);

// Result builders; throw PgError on a Postgres error.
Datum text_datum(std::string_view v);
Datum bytea_datum(std::string_view v);
Datum jsonb_datum(std::string_view v);

// Checks that bytes read from Redis form valid text in the database encoding
// (no NUL, valid multibyte sequences). Throws cachekit::Error (22021).
void check_text(std::string_view v);

// A ttl argument: NULL means `fallback`; zero or negative is an error (22023).
int ttl_arg(FunctionCallInfo fcinfo, int i, int fallback);

// CHECK_FOR_INTERRUPTS from C++ code (a cancel becomes a PgError).
void check_for_interrupts();

}  // namespace cachekit::pg
