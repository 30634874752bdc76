// Runs C++ work in a subtransaction that is rolled back, as a PL/pgSQL
// exception block would, when the work throws: for background work (the
// relay's metrics snapshot) whose failure must not end the worker's
// transaction or the worker. A PgError is caught here on purpose, without
// reaching cpp_entry: the subtransaction it happened in is rolled back, so
// the enclosing transaction is sound again.
#pragma once

#include <exception>
#include <string>

#include "pg/boundary.h"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
}

namespace cachekit::pg {

// False (and *failure says why) when f threw.
template <typename F>
bool in_subtransaction(F &&f, std::string *failure) {
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  pg_call([] { BeginInternalSubTransaction(nullptr); });
  MemoryContextSwitchTo(cxt);
  failure->clear();
  try {
    f();
  } catch (const std::exception &e) {
    *failure = e.what();
    if (failure->empty()) *failure = "unknown error";
  } catch (...) {
    *failure = "unknown C++ exception";
  }
  if (failure->empty())
    pg_call([] { ReleaseCurrentSubTransaction(); });
  else
    pg_call([] { RollbackAndReleaseCurrentSubTransaction(); });
  MemoryContextSwitchTo(cxt);
  CurrentResourceOwner = owner;
  return failure->empty();
}

}  // namespace cachekit::pg
