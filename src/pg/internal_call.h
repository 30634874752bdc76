// Calls of the extension's internal SECURITY DEFINER functions (granted to
// nobody) from the C functions that checked the caller first: through fmgr,
// which checks no EXECUTE privilege, with exact argument types.
#pragma once

#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

struct Value {
  Datum d = 0;
  bool null = true;
};
inline Value val(Datum d) { return Value{d, false}; }
Value text_val(const std::string &s);

// cachekit.<name>(types...) called with args. The OID is looked up once per
// backend and checked to still name the function (DROP and CREATE EXTENSION
// give it a new one). Throws PgError.
Value call_internal(const char *name, const std::vector<Oid> &types,
                    const std::vector<Value> &args);

}  // namespace cachekit::pg
