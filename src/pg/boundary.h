// The one place where C++ and Postgres error handling meet.
//
// Postgres reports errors with ereport(ERROR), a longjmp; C++ reports them with
// exceptions. Neither may cross the other's frames: a longjmp over a C++ frame
// skips its destructors (leaked connections, buffers), and an exception thrown
// through a Postgres frame is undefined behaviour. Two helpers keep them apart:
//
//   cpp_entry(f)  wraps the body of every SQL-callable function (and every
//                 other Postgres-to-C++ entry: hooks, callbacks, workers).
//                 Exceptions are caught, their text copied into static
//                 buffers, the C++ frames unwind, and only then is the error
//                 raised with ereport (or the original Postgres error re-thrown).
//
//   pg_call(f)    wraps a call from C++ into a Postgres API that may ereport.
//                 A Postgres ERROR inside f becomes a PgError exception, so the
//                 C++ frames between here and cpp_entry unwind normally; at the
//                 entry point the original ErrorData (SQLSTATE, message, detail)
//                 is re-thrown unchanged. f itself must not own C++ objects with
//                 destructors: its own frame is the one that gets longjmp'ed over.
//
// A PgError must reach cpp_entry: swallowing it would continue a transaction
// that Postgres considers failed (no subtransaction was rolled back).
#pragma once

#include <exception>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

#include "core/error.h"

extern "C" {
#include "postgres.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "miscadmin.h"
}

namespace cachekit::pg {

class PgError : public std::exception {
 public:
  explicit PgError(ErrorData *edata) : edata_(edata) {}
  const char *what() const noexcept override {
    return edata_ && edata_->message ? edata_->message : "postgres error";
  }
  ErrorData *edata() const noexcept { return edata_; }

 private:
  ErrorData *edata_;  // palloc'd in the caller's memory context
};

// Copies an exception's text into static storage (no allocation, so nothing
// here can itself fail), to be raised once the C++ frames are gone.
void save_cpp_error(const char *sqlstate, const char *message, const char *detail,
                    const char *hint) noexcept;
// Raises what save_cpp_error stored, or re-throws a Postgres error.
[[noreturn]] void raise_saved_error(ErrorData *pg_error);

template <typename F>
auto cpp_entry(F &&f) -> decltype(f()) {
  ErrorData *pg_error = nullptr;
  try {
    return f();
  } catch (const PgError &e) {
    pg_error = e.edata();
  } catch (const cachekit::Error &e) {
    save_cpp_error(e.sqlstate(), e.what(), e.detail().c_str(), e.hint().c_str());
  } catch (const std::bad_alloc &) {
    save_cpp_error(cachekit::sqlstate::kOutOfMemory, "out of memory", "", "");
  } catch (const std::exception &e) {
    save_cpp_error(cachekit::sqlstate::kInternalError, e.what(), "", "");
  } catch (...) {
    save_cpp_error(cachekit::sqlstate::kInternalError, "unknown C++ exception", "", "");
  }
  raise_saved_error(pg_error);
}

// Runs f, catching a C++ exception inside it so that it never leaves a
// PG_TRY block without PG_END_TRY (which would leave Postgres' error stack
// pointing at a dead frame). The exception is stored through a pointer, so
// it lives in memory that a longjmp cannot leave stale.
template <typename F>
void run_catching(F &f, std::exception_ptr *error) noexcept {
  try {
    f();
  } catch (...) {
    *error = std::current_exception();
  }
}

template <typename F>
auto pg_call(F &&f) -> decltype(f()) {
  using R = decltype(f());
  MemoryContext caller_cxt = CurrentMemoryContext;
  // errfinish() zeroes it before the longjmp; the caller may have held
  // interrupts on purpose.
  const uint32 holdoff = InterruptHoldoffCount;
  ErrorData *volatile edata = nullptr;
  if constexpr (std::is_void_v<R>) {
    std::exception_ptr cpp_error;
    std::exception_ptr *error_slot = &cpp_error;
    PG_TRY();
    { run_catching(f, error_slot); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(caller_cxt);
      edata = CopyErrorData();
      FlushErrorState();
      InterruptHoldoffCount = holdoff;
    }
    PG_END_TRY();
    if (edata) throw PgError(edata);
    if (cpp_error) std::rethrow_exception(cpp_error);
  } else {
    // Through the void form: `result` is then written in another frame and
    // lives in memory, so the longjmp cannot leave a stale register copy.
    R result{};
    pg_call([&] { result = f(); });
    return result;
  }
}

}  // namespace cachekit::pg
