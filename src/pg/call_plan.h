// The planner shortcut for `SELECT * FROM cachekit.cached_query(...) AS r(...)`
// (see call_plan.cpp).
#pragma once

namespace cachekit::pg {

// From _PG_init: chains the planner hook.
void install_call_planner();

}  // namespace cachekit::pg
