// Transparent caching, planner side: the application's own SELECT, when it
// qualifies (cachekit.transparent), is planned as usual and the plan is
// wrapped in a Custom Scan (cachekit) node whose one child is that plan.
// transparent_scan.cpp executes the node: it serves a hit without running
// the child, or runs it and stores its rows.
//
// What qualifies: a SELECT planned at the top level of a client backend (not
// inside another statement's execution: a function called by a query shares
// that query's snapshot), with no locking clause or data-modifying WITH, and
// either of a shape registered with cachekit.create_cache (`registered`) or,
// with `all`, cacheable and reading at least one table. A shape is the
// statement's fingerprint: its analysed and rewritten form with constants and
// $n parameters ignored (Postgres' own query jumbling, with parameters read
// as constants), so `WHERE id = 7` sent as text and `WHERE id = $1` sent
// prepared are one shape.
//
// What a node needs at execution (dependencies, flags, value scope: a
// PreparedQuery, query_plan.h) is decided here, from the query and its plan,
// and kept per plan in this backend (TransparentPlan); the node names it.
// The plan cache re-plans when that can change (the tables', functions' and
// roles' invalidations; a registry change; cachekit.transparent changing).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "pg/query_plan.h"

extern "C" {
#include "postgres.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
}

namespace cachekit::pg {

struct TransparentPlan {
  PreparedQuery q;  // plan unused: the child of the node is the plan
  uint64_t fingerprint = 0;
  bool registered = false;
  std::optional<int> ttl;  // registered ttl
  std::string ns;          // registered namespace ("" default)
  ~TransparentPlan();
};

// The fingerprint of an analysed, rewritten SELECT (constants and parameters
// ignored). Reads `query`, changes nothing. Its top 16 bits are the
// statement's outline (shape_outline), the rest Postgres' query jumbling.
uint64_t statement_fingerprint(Query *query);
// A few counts and flags of the statement's top level that the jumbling
// covers (lists' lengths, clauses present). Part of the fingerprint, so a
// statement whose outline no registered shape has is not registered: found
// without copying and jumbling its tree.
uint16_t shape_outline(const Query *query);

// A statement given as text (create_cache, drop_cache, explain), analysed
// as the transparent path would analyse it when the application sends it:
// parsed, analysed ($n parameters' types inferred as PREPARE does),
// rewritten and planned as the current role. Throws for text that is not
// one SELECT.
std::shared_ptr<TransparentPlan> analyse_shape(const std::string &text, const char *caller);

// The registration of a fingerprint in this database, if any (the registry
// is cachekit._caches, read once per change).
struct Registration {
  std::optional<int> ttl;
  std::string ns;
};
std::optional<Registration> find_registration(uint64_t fingerprint);
// False when no registered shape has this outline (so the statement is not
// registered); true when one may.
bool outline_registered(uint16_t outline);

// The ttl of a registered shape stored without one: its namespace's
// (cachekit.namespace_ttls, read directly: the application's role need not
// read it), else cachekit.default_ttl; capped by cachekit.max_ttl.
int registered_ttl(const TransparentPlan &plan);

// The plan a node names (its custom_private), or nullptr when this backend
// no longer keeps it (more plans were made than it keeps since).
std::shared_ptr<TransparentPlan> find_transparent_plan(const CustomScan *node);

// Statements run by the executor of another statement (nesting depth > 0)
// are never served; maintained by transparent_scan.cpp's executor hooks.
extern int executor_depth;
// Set while the cache itself runs SQL (registry, ttl): never wrap that.
extern bool transparent_busy;

// The node's methods (transparent_scan.cpp) and name.
extern const CustomScanMethods transparent_scan_methods;

void install_transparent_planner();
void install_transparent_executor();  // transparent_scan.cpp

}  // namespace cachekit::pg
