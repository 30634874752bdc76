// Reading the extension's own tables on behalf of a caller who may not read
// them (health(), metrics(), the relay's metrics snapshot): as the extension
// owner, in a security-restricted operation, with every name and operator in
// the SQL schema-qualified so the caller's search_path stays harmless. The
// tables are the extension's members (found through pg_depend), never looked
// up by name.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "pg/extension_objects.h"

namespace cachekit::pg {

using OwnerRow = std::vector<std::optional<std::string>>;  // nullopt: NULL

// The rows of the read-only statement sql_for(objects) returns ("": nothing
// to ask, no rows). No extension here: no rows. Errors are thrown (PgError).
std::vector<OwnerRow> owner_rows(
    const std::function<std::string(const ExtensionObjects &)> &sql_for);

}  // namespace cachekit::pg
