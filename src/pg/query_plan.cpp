// Preparing a query for cached_query, once per backend, and deciding whether
// it can be cached safely.
//
// Dependencies come from the planned statement's flattened range table, so
// they include tables behind views, inlined SQL functions, row-level security
// policies, partitions and inheritance children; every table also brings its
// ancestors (see invalidation.cpp). Functions come from the final plan too: a
// SQL function the planner inlined is gone from it (its tables are in the
// range table), one it did not inline is still there and hides what it reads.
#include <algorithm>
#include <cstring>
#include <iterator>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/key_material.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/query_plan.h"
#include "pg/value_plan.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodes.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/regproc.h"
#include "utils/lsyscache.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "commands/trigger.h"
#include "commands/extension.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc.h"
}

namespace cachekit::pg {

namespace {

// The prepared queries by identity (see prepare_query), and their use order
// for eviction: most recently used first. The list points at the map's keys,
// which stay put while the entry exists.
struct Slot {
  std::unique_ptr<PreparedQuery> q;
  std::list<const std::string *>::iterator use;
};
std::unordered_map<std::string, Slot> prepared;
std::list<const std::string *> use_order;
// Invalidated or evicted while a call was using them: freed once unpinned.
std::vector<std::unique_ptr<PreparedQuery>> retired;

bool prepared_stale = false;  // set by invalidation callbacks, acted on at next use
uint64 invalidations_seen = 0;
// For plan_changed_since: the count at the last invalidation of each
// relation, and at the last one that concerns every plan. Bounded: past
// kMaxTracked relations the map is emptied and the event counts for all.
uint64 all_changed_at = 0;
std::unordered_map<Oid, uint64> relation_changed_at;
constexpr size_t kMaxTracked = 1024;

// Called by Postgres' invalidation code: nothing may escape.
void mark_stale(Datum, Oid relid) noexcept {
  prepared_stale = true;
  ++invalidations_seen;
  if (relid != InvalidOid) {
    auto it = relation_changed_at.find(relid);
    if (it != relation_changed_at.end()) {
      it->second = invalidations_seen;
      return;
    }
  }
  if (relid == InvalidOid || relation_changed_at.size() >= kMaxTracked) {
    relation_changed_at.clear();
    all_changed_at = invalidations_seen;
    return;
  }
  try {
    relation_changed_at[relid] = invalidations_seen;
  } catch (...) {
    all_changed_at = invalidations_seen;
  }
}
void mark_stale_syscache(Datum, int, uint32) noexcept {
  prepared_stale = true;
  ++invalidations_seen;
  all_changed_at = invalidations_seen;
}

void free_entry(PreparedQuery &q) {
  SPIPlanPtr plan = q.plan;
  MemoryContext memory = q.memory;
  q.plan = nullptr;
  q.memory = nullptr;
  q.perm_rtable = NIL;
  pg_call([&] {
    if (plan != nullptr) SPI_freeplan(plan);
    if (memory != nullptr) MemoryContextDelete(memory);
  });
}

// Removes an entry from the map; frees it, or retires it while pinned.
void drop_slot(std::unordered_map<std::string, Slot>::iterator it) {
  std::unique_ptr<PreparedQuery> q = std::move(it->second.q);
  use_order.erase(it->second.use);
  prepared.erase(it);
  if (q->pins > 0) {
    retired.push_back(std::move(q));
  } else {
    free_entry(*q);
  }
}

void drop_all_prepared() {
  // Flag last: an error half-way leaves the rest for the next call.
  while (!prepared.empty()) drop_slot(prepared.begin());
  prepared_stale = false;
}

void free_unpinned_retired() {
  for (size_t i = 0; i < retired.size();) {
    if (retired[i]->pins > 0) {
      ++i;
      continue;
    }
    std::unique_ptr<PreparedQuery> q = std::move(retired[i]);
    retired.erase(retired.begin() + static_cast<std::ptrdiff_t>(i));
    free_entry(*q);
  }
}

// Least recently used first; pinned entries (of calls in progress, the
// current one included) stay, so the count may exceed the limit while
// nested calls run.
void evict_over_limit() {
  auto limit = static_cast<size_t>(settings.max_prepared_queries);
  auto it = use_order.end();  // everything from `it` on is pinned
  while (prepared.size() > limit && it != use_order.begin()) {
    auto victim = std::prev(it);
    auto slot = prepared.find(**victim);
    if (slot->second.q->pins > 0) {
      it = victim;
      continue;
    }
    drop_slot(slot);  // erases *victim only: `it` stays valid
  }
}

// The extension's own trigger function: a database owner can create a
// schema "cachekit" with a function of that name where pg_cachekit is not
// installed, and a table "watched" by it would never be invalidated.
Oid invalidate_trigger_oid() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_invalidate")));
    Oid fn = LookupFuncName(name, 0, nullptr, true);
    if (!OidIsValid(fn)) return InvalidOid;
    Oid extension = get_extension_oid("pg_cachekit", true);
    if (!OidIsValid(extension) || getExtensionOfObject(ProcedureRelationId, fn) != extension)
      return InvalidOid;
    return fn;
  });
}

enum class Watch { kNone, kDisabled, kEnabled };

// The statement trigger is what records ordinary writes; the row trigger
// (ENABLE REPLICA) fires only for replication, so it alone does not count.
Watch invalidate_trigger_state(Oid relid, Oid trigger_fn) {
  return pg_call([&] {
    Watch state = Watch::kNone;
    Relation rel = relation_open(relid, AccessShareLock);
    if (rel->trigdesc != nullptr)
      for (int i = 0; i < rel->trigdesc->numtriggers; ++i) {
        const Trigger &t = rel->trigdesc->triggers[i];
        if (t.tgfoid != trigger_fn || TRIGGER_FOR_ROW(t.tgtype)) continue;
        if (t.tgenabled != TRIGGER_DISABLED)
          state = Watch::kEnabled;
        else if (state == Watch::kNone)
          state = Watch::kDisabled;
      }
    relation_close(rel, AccessShareLock);
    return state;
  });
}

std::string relation_label(Oid relid) {
  char *name = pg_call([&] {
    char *nsp = get_namespace_name(get_rel_namespace(relid));
    char *rel = get_rel_name(relid);
    return (nsp && rel) ? quote_qualified_identifier(nsp, rel) : pstrdup("?");
  });
  return name;
}

void uncacheable(PreparedQuery &q, std::string reason, std::string detail, std::string hint) {
  if (q.uncacheable) return;  // keep the first reason
  q.uncacheable = true;
  q.reason = std::move(reason);
  q.detail = std::move(detail);
  q.hint = std::move(hint);
}

// Function OIDs that appear in a plan's text form (":funcid 123" and the
// other fields that name a function). The text form covers every expression
// of every plan node and subplan without a hand-written plan walker.
std::vector<Oid> functions_in(const char *plan_text) {
  static const char *fields[] = {":funcid ", ":opfuncid ", ":aggfnoid ", ":winfnoid "};
  std::vector<Oid> out;
  for (const char *field : fields) {
    size_t len = strlen(field);
    for (const char *p = strstr(plan_text, field); p != nullptr; p = strstr(p + len, field)) {
      Oid oid = static_cast<Oid>(strtoul(p + len, nullptr, 10));
      if (oid != InvalidOid && std::find(out.begin(), out.end(), oid) == out.end())
        out.push_back(oid);
    }
  }
  return out;
}

void check_statement(PreparedQuery &q, const CachedPlanSource *source) {
  ListCell *lc;
  foreach (lc, source->query_list) {
    Query *query = lfirst_node(Query, lc);
    if (query->commandType != CMD_SELECT || query->utilityStmt != nullptr)
      throw Error(sqlstate::kFeatureNotSupported, "cached_query can only run SELECT statements",
                  "The query is not a plain SELECT.",
                  "Run data-changing statements directly, not through cached_query.");
    if (query->hasModifyingCTE)
      uncacheable(q, "cached_query cannot cache a query with a data-modifying WITH clause",
                  "A WITH clause inserts, updates or deletes rows.",
                  "Run it directly, without cached_query.");
    if (query->rowMarks != NIL)
      uncacheable(q, "cached_query cannot cache a query that locks rows",
                  "The query uses FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE or FOR KEY SHARE.",
                  "Remove the locking clause, or run the query directly.");
  }
}

void collect_dependencies(PreparedQuery &q, const PlannedStmt *stmt,
                          const std::vector<Oid> &depends_on) {
  Oid trigger_fn = invalidate_trigger_oid();
  std::vector<Oid> tables;
  ListCell *lc;
  foreach (lc, stmt->rtable) {
    RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
    if (rte->rtekind != RTE_RELATION) continue;
    char kind = rte->relkind;
    if (kind == RELKIND_VIEW) continue;  // kept for permission checks; no rows of its own
    if ((kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE) &&
        pg_call([&] { return get_rel_persistence(rte->relid); }) != RELPERSISTENCE_TEMP) {
      // The common case, without naming it (names are for the reasons).
      for (Oid r : table_and_ancestors(rte->relid))
        if (std::find(tables.begin(), tables.end(), r) == tables.end()) tables.push_back(r);
      continue;
    }
    std::string label = relation_label(rte->relid);
    if (kind == RELKIND_MATVIEW) {
      uncacheable(q, "cached_query cannot cache a query that reads a materialized view",
                  "REFRESH MATERIALIZED VIEW " + label + " fires no triggers.",
                  "Read the underlying tables, or run the query directly.");
      continue;
    }
    if (kind == RELKIND_FOREIGN_TABLE) {
      uncacheable(q, "cached_query cannot cache a query that reads a foreign table",
                  "Changes to " + label + " happen on another server.", "Run the query directly.");
      continue;
    }
    if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE) {
      uncacheable(q, "cached_query cannot cache a query that reads " + label,
                  "Only tables and partitioned tables can be watched.", "Run the query directly.");
      continue;
    }
    if (pg_call([&] { return get_rel_persistence(rte->relid); }) == RELPERSISTENCE_TEMP) {
      // (Named without its pg_temp_N schema, which differs from session to session.)
      std::string name = pg_call([&] { return get_rel_name(rte->relid); });
      uncacheable(q, "cached_query cannot cache a query that reads a temporary table",
                  name + " is temporary: other sessions cannot see or invalidate it.",
                  "Run the query directly.");
      continue;
    }
    for (Oid r : table_and_ancestors(rte->relid))
      if (std::find(tables.begin(), tables.end(), r) == tables.end()) tables.push_back(r);
  }
  for (Oid r : depends_on)
    for (Oid a : table_and_ancestors(r))
      if (std::find(tables.begin(), tables.end(), a) == tables.end()) tables.push_back(a);

  for (Oid relid : tables) {
    const Watch watch =
        trigger_fn == InvalidOid ? Watch::kNone : invalidate_trigger_state(relid, trigger_fn);
    if (watch == Watch::kDisabled) {
      std::string label = relation_label(relid);
      uncacheable(q, "cached_query cannot cache a query that reads an unwatched table",
                  "The trigger cachekit_invalidate on " + label +
                      " is disabled, so its changes would not invalidate the cache.",
                  "Run ALTER TABLE " + label + " ENABLE ALWAYS TRIGGER cachekit_invalidate.");
    } else if (watch == Watch::kNone) {
      std::string label = relation_label(relid);
      uncacheable(
          q, "cached_query cannot cache a query that reads an unwatched table",
          "Table " + label + " is not watched, so its changes would not invalidate the cache.",
          "Run SELECT cachekit.watch('" + label + "').");
    }
    if (pg_call([&] { return check_enable_rls(relid, InvalidOid, true); }) == RLS_ENABLED)
      q.row_security = true;
  }
  std::sort(tables.begin(), tables.end());
  q.deps = std::move(tables);
}

// Built-in STABLE functions whose result depends on the connection, the
// session or the transaction rather than on tables: no key can hold what
// they depend on. (VOLATILE ones are refused anyway; pg_stat_get_* are
// matched by name, see check_functions.)
const Oid kConnectionFunctions[] = {
    F_INET_CLIENT_ADDR,
    F_INET_CLIENT_PORT,
    F_INET_SERVER_ADDR,
    F_INET_SERVER_PORT,
    F_PG_BACKEND_PID,
    F_PG_MY_TEMP_SCHEMA,
    F_PG_IS_OTHER_TEMP_SCHEMA,
    F_PG_TRIGGER_DEPTH,
    F_PG_CONF_LOAD_TIME,
    F_PG_CLIENT_ENCODING,
    F_PG_LISTENING_CHANNELS,
    F_PG_CURSOR,
    F_PG_PREPARED_STATEMENT,
    F_PG_SHOW_ALL_SETTINGS,
    F_PG_CURRENT_XACT_ID,
    F_PG_CURRENT_XACT_ID_IF_ASSIGNED,
    F_PG_CURRENT_SNAPSHOT,
    F_TXID_CURRENT,
    F_TXID_CURRENT_IF_ASSIGNED,
    F_TXID_CURRENT_SNAPSHOT,
    F_PG_EVENT_TRIGGER_DDL_COMMANDS,
    F_PG_EVENT_TRIGGER_DROPPED_OBJECTS,
    F_PG_EVENT_TRIGGER_TABLE_REWRITE_OID,
    F_PG_EVENT_TRIGGER_TABLE_REWRITE_REASON,
};

bool is_connection_function(Oid fn) {
  return std::find(std::begin(kConnectionFunctions), std::end(kConnectionFunctions), fn) !=
         std::end(kConnectionFunctions);
}

// The executor checks EXECUTE on every function an expression calls; only
// user functions and built-ins whose ACL was changed can fail the check.
bool execute_can_fail(Oid fn) {
  if (fn >= FirstNormalObjectId) return true;
  return pg_call([&] {
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
    if (!HeapTupleIsValid(tup)) return true;
    bool has_acl = !heap_attisnull(tup, Anum_pg_proc_proacl, nullptr);
    ReleaseSysCache(tup);
    return has_acl;
  });
}

// analysed_text: the rewritten query before planning; plan_text: the plan.
// A VOLATILE function counts even when the planner inlined it away (the
// caller declared it volatile); the tables a function reads are known only
// when it was inlined, i.e. it no longer appears in the plan.
void check_functions(PreparedQuery &q, const char *analysed_text, const char *plan_text,
                     bool have_depends_on) {
  for (Oid fn : functions_in(analysed_text)) {
    if (pg_call([&] { return func_volatile(fn); }) != PROVOLATILE_VOLATILE) continue;
    char *name = pg_call([&] { return format_procedure(fn); });
    uncacheable(
        q, "cached_query cannot cache a query that calls a volatile function",
        std::string("Function ") + name + " is VOLATILE: its result may differ at every call.",
        "Run the query directly, or declare the function STABLE or IMMUTABLE if it is.");
  }
  // SESSION_USER: two logins that SET ROLE to the same role have the same
  // current_user but may see different rows. The plan holds the query's own
  // expressions, views', inlined functions' and row-level security policies'.
  const std::string session_user_node =
      "{SQLVALUEFUNCTION :op " + std::to_string(SVFOP_SESSION_USER) + " ";
  if (strstr(plan_text, session_user_node.c_str()) != nullptr) q.reads_session_user = true;
  for (int op = SVFOP_CURRENT_DATE; op <= SVFOP_LOCALTIMESTAMP_N; ++op) {
    const std::string clock_node = "{SQLVALUEFUNCTION :op " + std::to_string(op) + " ";
    if (strstr(plan_text, clock_node.c_str()) != nullptr) q.reads_clock = true;
  }
  for (Oid fn : functions_in(plan_text)) {
    if (fn == F_SESSION_USER) q.reads_session_user = true;
    if (fn == F_NOW || fn == F_TRANSACTION_TIMESTAMP || fn == F_STATEMENT_TIMESTAMP)
      q.reads_clock = true;
    // current_setting('app.x') reads a setting, not a table: every custom
    // setting then joins the key, as for row-level security (and the
    // session user: current_setting('session_authorization')).
    if (fn == F_CURRENT_SETTING_TEXT || fn == F_CURRENT_SETTING_TEXT_BOOL) {
      q.reads_settings = true;
      q.reads_session_user = true;
    }
    if (std::find(q.plan_functions.begin(), q.plan_functions.end(), fn) == q.plan_functions.end())
      q.plan_functions.push_back(fn);
    if (execute_can_fail(fn) && std::find(q.execute_checked.begin(), q.execute_checked.end(), fn) ==
                                    q.execute_checked.end())
      q.execute_checked.push_back(fn);
    char volatility = pg_call([&] { return func_volatile(fn); });
    if (volatility == PROVOLATILE_VOLATILE) {
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(
          q, "cached_query cannot cache a query that calls a volatile function",
          std::string("Function ") + name + " is VOLATILE: its result may differ at every call.",
          "Run the query directly, or declare the function STABLE or IMMUTABLE if it is.");
    } else if (fn < FirstNormalObjectId && is_connection_function(fn)) {
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(q, "cached_query cannot cache a query whose result depends on the connection",
                  std::string("Function ") + name +
                      " returns a value of this connection, session or transaction.",
                  "Run the query directly, or compute the value first and pass it as a "
                  "parameter ($1).");
    } else if (fn < FirstNormalObjectId &&
               strncmp(pg_call([&] { return get_func_name(fn); }), "pg_stat_get_", 12) == 0) {
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(q, "cached_query cannot cache a query that reads server statistics",
                  std::string("Function ") + name +
                      " reads statistics, which change without any write to a table.",
                  "Run the query directly.");
    } else if (fn >= FirstNormalObjectId && volatility != PROVOLATILE_IMMUTABLE) {
      if (have_depends_on) {
        // depends_on names its tables, but it may read anything else a
        // STABLE function can: a tenant setting, the session user.
        q.reads_settings = true;
        q.reads_session_user = true;
        continue;
      }
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(q, "cached_query cannot see what a non-inlined function reads",
                  std::string("Function ") + name +
                      " is not IMMUTABLE and was not inlined, so the tables it reads are unknown.",
                  "Pass them as depends_on => ARRAY['public.some_table']::regclass[], "
                  "or declare the function IMMUTABLE if it reads no tables.");
    }
  }
}

// The range table entries whose privileges the executor checks
// (ExecCheckRTPerms), copied into the entry's own memory.
void keep_permission_info(PreparedQuery &q, const PlannedStmt *stmt) {
  pg_call([&] {
    q.memory =
        AllocSetContextCreate(CacheMemoryContext, "cachekit prepared query", ALLOCSET_SMALL_SIZES);
    MemoryContext old = MemoryContextSwitchTo(q.memory);
    ListCell *lc;
    foreach (lc, stmt->rtable) {
      RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
      if (rte->rtekind == RTE_RELATION && rte->requiredPerms != 0)
        q.perm_rtable = lappend(q.perm_rtable, copyObjectImpl(rte));
    }
    MemoryContextSwitchTo(old);
  });
}

void prepare_into(PreparedQuery &q, const std::string &text, const std::vector<Oid> &depends_on) {
  // 1. Parse and analyse once with variable parameters, to learn their types
  //    the way PREPARE does.
  Oid *types = nullptr;
  int ntypes = 0;
  pg_call([&] {
    List *raw = pg_parse_query(text.c_str());
    if (list_length(raw) != 1)
      ereport(ERROR,
              (errcode(ERRCODE_SYNTAX_ERROR),
               errmsg("cached_query takes exactly one statement, got %d", list_length(raw))));
    parse_analyze_varparams(linitial_node(RawStmt, raw), text.c_str(), &types, &ntypes, nullptr);
  });
  for (int i = 0; i < ntypes; ++i) {
    if (types[i] == InvalidOid || types[i] == UNKNOWNOID) types[i] = TEXTOID;
    q.param_types.push_back(types[i]);
  }

  // 2. The plan we keep, with those types fixed (re-validated by the plan
  //    cache on its own when tables change).
  q.plan = pg_call([&] {
    SPIPlanPtr plan = SPI_prepare(text.c_str(), ntypes, types);
    if (plan == nullptr)
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
                      errmsg("SPI_prepare failed: %s", SPI_result_code_string(SPI_result))));
    SPI_keepplan(plan);
    return plan;
  });

  const CachedPlanSource *source =
      pg_call([&] { return linitial_node(CachedPlanSource, SPI_plan_get_plan_sources(q.plan)); });
  check_statement(q, source);
  if (source->resultDesc == nullptr)
    throw Error(sqlstate::kFeatureNotSupported, "cached_query needs a query that returns rows");
  for (int i = 0; i < source->resultDesc->natts; ++i)
    q.result_types.push_back(TupleDescAttr(source->resultDesc, i)->atttypid);

  // 3. What it depends on, from the generic plan.
  std::string analysed = pg_call([&] { return nodeToString(source->query_list); });
  q.analysed_digest = sha256_hex(analysed);
  CachedPlan *cplan = pg_call([&] { return SPI_plan_get_cached_plan(q.plan); });
  const PlannedStmt *stmt = linitial_node(PlannedStmt, cplan->stmt_list);
  try {
    ListCell *lc;
    foreach (lc, source->relationOids) q.relations.push_back(lfirst_oid(lc));
    foreach (lc, stmt->relationOids) q.relations.push_back(lfirst_oid(lc));
    analyse_plan(q, linitial_node(Query, source->query_list), stmt, analysed, depends_on);
  } catch (...) {
    pg_call([&] { ReleaseCachedPlan(cplan, CurrentResourceOwner); });
    throw;
  }
  pg_call([&] { ReleaseCachedPlan(cplan, CurrentResourceOwner); });
  std::string fp = sha256_hex(text);
  q.fingerprint = std::stoull(fp.substr(0, 15), nullptr, 16);
}

}  // namespace

void analyse_plan(PreparedQuery &q, const Query *query, const PlannedStmt *stmt,
                  const std::string &analysed_text, const std::vector<Oid> &depends_on) {
  std::string plan_text = pg_call([&] { return nodeToString(stmt); });
  collect_dependencies(q, stmt, depends_on);
  check_functions(q, analysed_text.c_str(), plan_text.c_str(), !depends_on.empty());
  // The analysed query names a SQL function the planner may inline; its body
  // is not in the analysed text. CREATE OR REPLACE gives its pg_proc row a
  // new xmin: part of the digest, so the old results are never hit again.
  std::string versions;
  for (Oid fn : functions_in(analysed_text.c_str())) {
    if (fn < FirstNormalObjectId) continue;
    TransactionId xmin = pg_call([&] {
      HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
      if (!HeapTupleIsValid(tup)) return InvalidTransactionId;
      TransactionId x = HeapTupleHeaderGetRawXmin(tup->t_data);
      ReleaseSysCache(tup);
      return x;
    });
    versions += std::to_string(fn) + "@" + std::to_string(xmin) + ";";
  }
  if (!versions.empty()) q.analysed_digest = sha256_hex(q.analysed_digest + "|" + versions);
  keep_permission_info(q, stmt);
  if (!q.uncacheable)
    q.values = analyse_value_scope(query, stmt, q.deps, depends_on, q.param_types, q.memory);
}

std::string sha256_hex(const std::string &bytes) {
  uint8 digest[PG_SHA256_DIGEST_LENGTH];
  bool ok = pg_call([&] {
    pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
    bool done = ctx != nullptr && pg_cryptohash_init(ctx) == 0 &&
                pg_cryptohash_update(ctx, reinterpret_cast<const uint8 *>(bytes.data()),
                                     bytes.size()) == 0 &&
                pg_cryptohash_final(ctx, digest, sizeof digest) == 0;
    pg_cryptohash_free(ctx);
    return done;
  });
  if (!ok) throw Error(sqlstate::kInternalError, "could not compute a SHA-256 digest");
  return hex_encode(digest, sizeof digest);
}

QueryPin prepare_query(const std::string &query, const std::vector<Oid> &depends_on,
                       const std::function<void()> &connect_spi) {
  // Pinned entries (an outer call's) are retired, not freed: nested calls see
  // invalidations as promptly as outer ones.
  if (prepared_stale) drop_all_prepared();
  if (!retired.empty()) free_unpinned_retired();

  // What changes the meaning of the same text: search_path (as schema OIDs),
  // the role (row-level security policies are part of the plan), depends_on.
  KeyMaterial id;
  id.add('q', query);
  List *path = pg_call([] { return fetch_search_path(true); });
  ListCell *lc;
  foreach (lc, path) id.add_u64('s', lfirst_oid(lc));
  id.add_u64('u', GetUserId());
  for (Oid d : depends_on) id.add_u64('d', d);

  auto it = prepared.find(id.bytes());
  if (it != prepared.end()) {
    use_order.splice(use_order.begin(), use_order, it->second.use);
    QueryPin pin(*it->second.q);
    if (prepared.size() > static_cast<size_t>(settings.max_prepared_queries)) evict_over_limit();
    return pin;
  }

  connect_spi();
  auto q = std::make_unique<PreparedQuery>();
  try {
    prepare_into(*q, query, depends_on);
  } catch (...) {
    free_entry(*q);
    throw;
  }
  auto inserted = prepared.emplace(id.bytes(), Slot{std::move(q), use_order.end()}).first;
  use_order.push_front(&inserted->first);
  inserted->second.use = use_order.begin();
  QueryPin pin(*inserted->second.q);
  evict_over_limit();
  return pin;
}

void check_privileges(const PreparedQuery &q) {
  List *rtable = q.perm_rtable;
  if (rtable != NIL) pg_call([&] { ExecCheckRTPerms(rtable, true); });
  check_execute_privileges(q);
}

void check_execute_privileges(const PreparedQuery &q) {
  const Oid *fns = q.execute_checked.data();
  const size_t nfns = q.execute_checked.size();
  pg_call([&] {
    for (size_t i = 0; i < nfns; ++i)
      if (pg_proc_aclcheck(fns[i], GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(fns[i]));
  });
}

uint64_t plan_invalidations() { return invalidations_seen; }

bool plan_changed_since(uint64_t before, const PreparedQuery &q) {
  if (all_changed_at > before) return true;
  for (Oid rel : q.relations) {
    auto it = relation_changed_at.find(rel);
    if (it != relation_changed_at.end() && it->second > before) return true;
  }
  return false;
}

size_t prepared_query_count() { return prepared.size() + retired.size(); }

std::string prepared_queries_health() {
  return "{\"count\": " + std::to_string(prepared_query_count()) +
         ", \"max\": " + std::to_string(settings.max_prepared_queries) + "}";
}

void install_plan_cache_callbacks() {
  CacheRegisterRelcacheCallback(mark_stale, 0);
  // Those for which the plan cache re-analyses every plan (ResetPlanCache:
  // a new operator can resolve the same text to another function), and
  // functions and roles. Not TYPEOID: every CREATE TABLE sends one, and the
  // plan cache only re-plans (domain checks) on it.
  for (int cache :
       {PROCOID, AUTHOID, NAMESPACEOID, OPEROID, AMOPOPID, FOREIGNSERVEROID, FOREIGNDATAWRAPPEROID})
    CacheRegisterSyscacheCallback(cache, mark_stale_syscache, 0);
}

}  // namespace cachekit::pg
