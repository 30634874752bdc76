// Per-backend prepared queries of cached_query: the hit path must not parse,
// analyse or plan, so each distinct (query text, search_path, role,
// depends_on) is prepared once and kept with what the key needs: parameter
// types, the tables it depends on, a digest of the analysed query, whether
// (and why) it cannot be cached, and what a hit must check before it serves
// rows: the planned range table's privileges and EXECUTE on the functions
// the plan calls.
//
// Entries are dropped on relcache, function, role, schema and operator
// invalidations (those for which Postgres re-analyses its own plans),
// and beyond cachekit.max_prepared_queries (least recently used first). An
// entry a call in progress uses (nested calls: a cached query calling a
// function that calls cached_query) is never freed under it: it is retired
// and freed once no call uses it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"
}

namespace cachekit::pg {

struct ValueScope;  // value_plan.h

struct PreparedQuery {
  SPIPlanPtr plan = nullptr;  // kept (SPI_keepplan)
  // Owns perm_rtable; freed with the entry.
  MemoryContext memory = nullptr;
  // The planned statement's RTE_RELATION entries that need privileges, for
  // ExecCheckRTPerms on a hit (the executor checks them on a miss).
  List *perm_rtable = NIL;
  // Functions of the plan whose EXECUTE privilege can fail: user functions
  // and built-ins with a non-default ACL (a REVOKE changes pg_proc, which
  // drops the entry, so the list is recomputed).
  std::vector<Oid> execute_checked;
  std::vector<Oid> plan_functions;  // every function the plan calls
  std::vector<Oid> param_types;
  std::vector<Oid> result_types;
  std::vector<Oid> deps;  // tables, with their ancestors
  // Every relation (views too) whose relcache invalidation makes the plan
  // cache re-analyse or re-plan it: the plan source's and the plan's.
  std::vector<Oid> relations;
  // Per dependency: keyed on value buckets or on the whole table, and why
  // (value_plan.h). Expressions it keeps live in `memory`.
  std::shared_ptr<const ValueScope> values;
  bool row_security = false;        // RLS applies to a dependency for this role
  bool reads_settings = false;      // calls current_setting(), or a function that may
  bool reads_session_user = false;  // SESSION_USER, or a function that may read it
  // now(), CURRENT_DATE, LOCALTIMESTAMP...: a hit keeps the miss's time for
  // the ttl (documented for cached_query; transparent `all` does not serve it).
  bool reads_clock = false;
  std::string analysed_digest;  // hex SHA-256 of the rewritten query tree
  uint64_t fingerprint = 0;     // of the query text, for query_stats
  // Set when the query cannot be cached safely.
  bool uncacheable = false;
  std::string reason, detail, hint;
  int pins = 0;  // calls in progress that use this entry
};

// Keeps an entry alive for the duration of a call; see prepare_query.
class QueryPin {
 public:
  explicit QueryPin(PreparedQuery &q) : q_(&q) { ++q_->pins; }
  ~QueryPin() {
    if (q_) --q_->pins;
  }
  QueryPin(QueryPin &&other) noexcept : q_(other.q_) { other.q_ = nullptr; }
  QueryPin(const QueryPin &) = delete;
  QueryPin &operator=(const QueryPin &) = delete;
  QueryPin &operator=(QueryPin &&) = delete;
  PreparedQuery &operator*() const { return *q_; }
  PreparedQuery *operator->() const { return q_; }

 private:
  PreparedQuery *q_;
};

// The prepared form of `query`, pinned until the returned QueryPin goes away.
// Throws cachekit::Error / PgError for queries that do not parse or are not a
// single SELECT-like statement. connect_spi is called before anything that
// needs SPI (only when the query is not prepared yet).
QueryPin prepare_query(const std::string &query, const std::vector<Oid> &depends_on,
                       const std::function<void()> &connect_spi);

// What a key needs from an analysed (rewritten) query and its plan, and
// whether it can be cached: deps, the flags, execute_checked, perm_rtable,
// the value scope (in q.memory, created here), or uncacheable and why.
// analysed_text: nodeToString of the query (functions it called that the
// planner inlined away). Used by prepare_query and the transparent path.
void analyse_plan(PreparedQuery &q, const Query *query, const PlannedStmt *stmt,
                  const std::string &analysed_text, const std::vector<Oid> &depends_on);

// Raises the executor's own error (42501) when the current user may not run
// the prepared query: SELECT on its tables and columns, EXECUTE on its
// functions. No catalog scan: syscache lookups only.
void check_privileges(const PreparedQuery &q);
// Only the EXECUTE part (the executor checked the tables already).
void check_execute_privileges(const PreparedQuery &q);

// Counts the invalidations that can change a prepared query (relcache,
// functions, roles, schemas) seen by this backend. A call reads it before
// running its query and asks plan_changed_since afterwards: true means the
// plan it ran may not be the one its key was built from.
uint64_t plan_invalidations();
// Whether an invalidation since `before` could have made the plan cache
// re-analyse q: one of q.relations, or one that concerns every plan (a
// function, role or schema change, a relcache reset). Another table's
// (autovacuum updating its statistics) does not count.
bool plan_changed_since(uint64_t before, const PreparedQuery &q);

// Entries held by this backend (including retired ones not yet freed), and
// as the JSON object health() shows: {"count": n, "max": m}.
size_t prepared_query_count();
std::string prepared_queries_health();

// Registers the invalidation callbacks; from _PG_init.
void install_plan_cache_callbacks();

// SHA-256 of bytes, as 64 hex digits (Postgres' own cryptohash).
std::string sha256_hex(const std::string &bytes);

}  // namespace cachekit::pg
