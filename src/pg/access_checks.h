// Privilege checks of the SQL functions that act on a table for their caller.
//
// Each runs as the role calling the SQL function (GetUserId() of a function
// that is not SECURITY DEFINER), and throws cachekit::Error (or a PgError)
// when the role may not do what it asked.
#pragma once

#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// cachekit.invalidate(relid), called through the SQL function `fn`: the
// caller must own the table or be a member of cachekit_admin, and the table
// must exist and be watched. Superusers and the function's owner (the
// extension owner, for whom the event triggers call it, also for tables just
// dropped) are not checked.
void check_may_invalidate(Oid relid, Oid fn);

// A key rule on relid turns these columns' values into key names: the caller
// must own the table or may SELECT each of them. Unknown columns are left to
// the caller, which reports them with the table's column list.
// `rule` and `names` word the error ("a key rule", "key names").
void check_may_read_columns(Oid relid, const std::vector<std::string> &columns,
                            const char *rule = "a key rule", const char *names = "key names");

}  // namespace cachekit::pg
