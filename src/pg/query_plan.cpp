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
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/key_material.h"
#include "pg/boundary.h"
#include "pg/invalidation.h"
#include "pg/query_plan.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "nodes/nodes.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "tcop/tcopprot.h"
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
}

namespace cachekit::pg {

namespace {

std::unordered_map<std::string, std::unique_ptr<PreparedQuery>> prepared;
bool prepared_stale = false;  // set by invalidation callbacks, acted on at next use

void mark_stale(Datum, Oid) { prepared_stale = true; }
void mark_stale_syscache(Datum, int, uint32) { prepared_stale = true; }

void drop_all_prepared() {
  for (auto &entry : prepared)
    if (entry.second->plan != nullptr) {
      SPIPlanPtr plan = entry.second->plan;
      entry.second->plan = nullptr;
      pg_call([&] { SPI_freeplan(plan); });
    }
  prepared.clear();
  prepared_stale = false;
}

Oid invalidate_trigger_oid() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_invalidate")));
    return LookupFuncName(name, 0, nullptr, true);
  });
}

bool has_invalidate_trigger(Oid relid, Oid trigger_fn) {
  return pg_call([&] {
    bool found = false;
    Relation rel = relation_open(relid, AccessShareLock);
    if (rel->trigdesc != nullptr)
      for (int i = 0; i < rel->trigdesc->numtriggers; ++i)
        if (rel->trigdesc->triggers[i].tgfoid == trigger_fn &&
            rel->trigdesc->triggers[i].tgenabled != TRIGGER_DISABLED)
          found = true;
    relation_close(rel, AccessShareLock);
    return found;
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
    if (trigger_fn == InvalidOid || !has_invalidate_trigger(relid, trigger_fn)) {
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
  for (Oid fn : functions_in(plan_text)) {
    // current_setting('app.x') reads a setting, not a table: every custom
    // setting then joins the key, as for row-level security.
    if (fn == F_CURRENT_SETTING_TEXT || fn == F_CURRENT_SETTING_TEXT_BOOL) q.reads_settings = true;
    char volatility = pg_call([&] { return func_volatile(fn); });
    if (volatility == PROVOLATILE_VOLATILE) {
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(
          q, "cached_query cannot cache a query that calls a volatile function",
          std::string("Function ") + name + " is VOLATILE: its result may differ at every call.",
          "Run the query directly, or declare the function STABLE or IMMUTABLE if it is.");
    } else if (fn >= FirstNormalObjectId && volatility != PROVOLATILE_IMMUTABLE &&
               !have_depends_on) {
      char *name = pg_call([&] { return format_procedure(fn); });
      uncacheable(q, "cached_query cannot see what a non-inlined function reads",
                  std::string("Function ") + name +
                      " is not IMMUTABLE and was not inlined, so the tables it reads are unknown.",
                  "Pass them as depends_on => ARRAY['public.some_table']::regclass[], "
                  "or declare the function IMMUTABLE if it reads no tables.");
    }
  }
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
  std::string plan_text = pg_call([&] { return nodeToString(stmt); });
  try {
    collect_dependencies(q, stmt, depends_on);
    check_functions(q, analysed.c_str(), plan_text.c_str(), !depends_on.empty());
  } catch (...) {
    pg_call([&] { ReleaseCachedPlan(cplan, CurrentResourceOwner); });
    throw;
  }
  pg_call([&] { ReleaseCachedPlan(cplan, CurrentResourceOwner); });
  std::string fp = sha256_hex(text);
  q.fingerprint = std::stoull(fp.substr(0, 15), nullptr, 16);
}

}  // namespace

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

int active_calls = 0;

PreparedQuery &prepare_query(const std::string &query, const std::vector<Oid> &depends_on,
                             const std::function<void()> &connect_spi) {
  // A cached_query nested in another one's query must not free the plan the
  // outer call is running: drop stale entries only from the outermost call.
  if (prepared_stale && active_calls <= 1) drop_all_prepared();

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
  if (it != prepared.end()) return *it->second;

  connect_spi();
  auto q = std::make_unique<PreparedQuery>();
  try {
    prepare_into(*q, query, depends_on);
  } catch (...) {
    if (q->plan != nullptr) {
      SPIPlanPtr plan = q->plan;
      q->plan = nullptr;
      pg_call([&] { SPI_freeplan(plan); });
    }
    throw;
  }
  PreparedQuery &ref = *q;
  prepared.emplace(id.bytes(), std::move(q));
  return ref;
}

void install_plan_cache_callbacks() {
  CacheRegisterRelcacheCallback(mark_stale, 0);
  CacheRegisterSyscacheCallback(PROCOID, mark_stale_syscache, 0);
  CacheRegisterSyscacheCallback(AUTHOID, mark_stale_syscache, 0);
  CacheRegisterSyscacheCallback(NAMESPACEOID, mark_stale_syscache, 0);
}

}  // namespace cachekit::pg
