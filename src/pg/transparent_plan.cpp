// Transparent caching, planner side: see transparent_plan.h.
#include "pg/transparent_plan.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <list>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "core/key_material.h"
#include "pg/boundary.h"
#include "pg/extension_objects.h"
#include "pg/guc.h"
#include "pg/shmem.h"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/planmain.h"
#include "optimizer/planner.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "storage/lmgr.h"
#include "catalog/pg_type.h"
#include "utils/inval.h"
#include "utils/plancache.h"
#include "utils/queryjumble.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

namespace cachekit::pg {

int executor_depth = 0;
bool transparent_busy = false;

TransparentPlan::~TransparentPlan() {
  if (q.memory != nullptr) MemoryContextDelete(q.memory);
  q.memory = nullptr;
}

namespace {

planner_hook_type prev_planner = nullptr;

// Postgres 15 declares walkers and mutators without their arguments.
using Walker = bool (*)(Node *, void *);
using Mutator = Node *(*)(Node *, void *);
auto as_walker(Walker w) { return reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(w)); }
auto as_mutator(Mutator m) {
  return reinterpret_cast<Node *(*)()>(reinterpret_cast<void (*)()>(m));
}

// ---- the fingerprint --------------------------------------------------

// A parameter becomes a constant of its type, as a literal in its place
// would be: the jumble then sees `id = $1` and `id = 7` alike.
Node *params_as_constants(Node *node, void *context) {
  if (node == nullptr) return nullptr;
  if (IsA(node, Param) && castNode(Param, node)->paramkind == PARAM_EXTERN) {
    auto *p = castNode(Param, node);
    Const *c = makeConst(p->paramtype, p->paramtypmod, p->paramcollid, sizeof(int32),
                         Int32GetDatum(p->paramid), false, true);
    c->location = p->location;
    return reinterpret_cast<Node *>(c);
  }
  if (IsA(node, Query))
    return reinterpret_cast<Node *>(
        query_tree_mutator(castNode(Query, node), as_mutator(params_as_constants), context, 0));
  Node *out = expression_tree_mutator(node, as_mutator(params_as_constants), context);
  // An implicit cast of a constant is a constant of the cast's type, as the
  // parameter in its place would be: `amount > 500` (an integer cast to
  // numeric) and `amount > $1` (a numeric parameter), `LIMIT 5` and
  // `LIMIT $1`, are one shape.
  if (IsA(out, FuncExpr)) {
    auto *f = castNode(FuncExpr, out);
    if (f->funcformat == COERCE_IMPLICIT_CAST && list_length(f->args) == 1 &&
        IsA(linitial(f->args), Const)) {
      auto *arg = castNode(Const, linitial(f->args));
      Const *c = makeConst(f->funcresulttype, -1, f->funccollid, sizeof(int32), Int32GetDatum(0),
                           arg->constisnull, true);
      c->location = arg->location;
      return reinterpret_cast<Node *>(c);
    }
  } else if (IsA(out, RelabelType) && IsA(castNode(RelabelType, out)->arg, Const)) {
    auto *r = castNode(RelabelType, out);
    auto *arg = castNode(Const, r->arg);
    Const *c = makeConst(r->resulttype, r->resulttypmod, r->resultcollid, sizeof(int32),
                         Int32GetDatum(0), arg->constisnull, true);
    c->location = arg->location;
    return reinterpret_cast<Node *>(c);
  }
  return out;
}

// The analysed statement without its positions in the source text, so that
// the same statement sent with other spacing, or inside EXPLAIN ANALYZE,
// has the same key. Only the fields themselves go: a name containing the
// same characters is printed with its spaces escaped ("\ ").
std::string without_locations(const std::string &text) {
  static const char *const fields[] = {":location ", ":stmt_location ", ":stmt_len "};
  std::string out;
  out.reserve(text.size());
  size_t copied = 0;
  for (size_t at = text.find(" :"); at != std::string::npos; at = text.find(" :", at + 2)) {
    if (at > 0 && text[at - 1] == '\\') continue;
    for (const char *f : fields) {
      const size_t len = strlen(f);
      if (text.compare(at + 1, len, f) != 0) continue;
      size_t end = at + 1 + len;
      if (end < text.size() && text[end] == '-') ++end;
      const size_t digits = end;
      while (end < text.size() && isdigit(static_cast<unsigned char>(text[end]))) ++end;
      if (end > digits) {
        out.append(text, copied, at - copied);
        copied = end;
        at = end - 2;
      }
      break;
    }
  }
  out.append(text, copied, std::string::npos);
  return out;
}

// ---- the registry -----------------------------------------------------

std::unordered_map<uint64_t, Registration> registry;
std::unordered_set<uint16_t> registry_outlines;  // the fingerprints' top 16 bits
bool registry_valid = false;
Oid registry_oid = InvalidOid;

// cachekit._caches changed (its statement trigger sends a relcache
// invalidation), here or in another backend: read it again, and re-plan
// this backend's cached plans, which were wrapped or not by the old one.
void registry_changed(Datum, Oid relid) {
  if (relid == InvalidOid || (registry_oid != InvalidOid && relid == registry_oid)) {
    registry_valid = false;
    ResetPlanCache();
  }
}

void memo_invalidated(Datum, Oid);
void memo_invalidated_syscache(Datum, int, uint32);

struct RegistryRow {
  int64 fingerprint;
  bool ttl_null;
  int32 ttl;
  char *ns;  // nullptr: default
};

// Columns of cachekit._caches (sql/): fingerprint 1, ttl 3, namespace 4.
// Read directly, without the caller's privileges: planning any statement
// of any role consults it.
void load_registry() {
  registry.clear();
  registry_outlines.clear();
  registry_oid = InvalidOid;
  ExtensionObjects o = pg_call([] { return find_extension_objects(); });
  if (!OidIsValid(o.caches)) {
    registry_valid = true;  // until the extension is created (checked per call)
    return;
  }
  List *rows = NIL;
  const Oid relid = o.caches;
  pg_call([&] {
    Relation rel = table_open(relid, AccessShareLock);
    Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
    SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, nullptr);
    HeapTuple tup;
    TupleDesc desc = RelationGetDescr(rel);
    while (HeapTupleIsValid(tup = systable_getnext(scan))) {
      auto *row = static_cast<RegistryRow *>(palloc0(sizeof(RegistryRow)));
      bool isnull = false;
      row->fingerprint = DatumGetInt64(heap_getattr(tup, 1, desc, &isnull));
      Datum ttl = heap_getattr(tup, 3, desc, &row->ttl_null);
      if (!row->ttl_null) row->ttl = DatumGetInt32(ttl);
      Datum ns = heap_getattr(tup, 4, desc, &isnull);
      row->ns = isnull ? nullptr : TextDatumGetCString(ns);
      rows = lappend(rows, row);
    }
    systable_endscan(scan);
    UnregisterSnapshot(snapshot);
    table_close(rel, AccessShareLock);
  });
  ListCell *lc;
  foreach (lc, rows) {
    auto *row = static_cast<RegistryRow *>(lfirst(lc));
    Registration r;
    if (!row->ttl_null) r.ttl = row->ttl;
    if (row->ns) r.ns = row->ns;
    registry[static_cast<uint64_t>(row->fingerprint)] = r;
    registry_outlines.insert(static_cast<uint16_t>(static_cast<uint64_t>(row->fingerprint) >> 48));
  }
  registry_oid = relid;
  registry_valid = true;
}

// ---- plans kept for their nodes ----------------------------------------

struct PlanSlot {
  std::shared_ptr<TransparentPlan> plan;
  std::list<uint64_t>::iterator use;
};
std::unordered_map<uint64_t, PlanSlot> plans;
std::list<uint64_t> plan_use;  // most recently used first
uint64_t next_plan_id = 1;

// Simple-protocol statements make a plan per execution, used once:
// least recently used go first, prepared statements' plans stay.
size_t plans_kept() { return static_cast<size_t>(settings.max_prepared_queries) * 4 + 64; }

uint64_t remember(std::shared_ptr<TransparentPlan> tp, uint64_t id = 0) {
  if (id == 0) id = next_plan_id++;
  if (plans.count(id) != 0) return id;
  plan_use.push_front(id);
  plans.emplace(id, PlanSlot{std::move(tp), plan_use.begin()});
  while (plans.size() > plans_kept()) {
    plans.erase(plan_use.back());
    plan_use.pop_back();
  }
  return id;
}

// ---- the planner hook --------------------------------------------------

struct ParamTypes {
  Oid *types;
  int n;
};

bool collect_param_types(Node *node, void *context) {
  if (node == nullptr) return false;
  if (IsA(node, Param) && castNode(Param, node)->paramkind == PARAM_EXTERN) {
    auto *p = castNode(Param, node);
    auto *pt = static_cast<ParamTypes *>(context);
    if (p->paramid > 0 && p->paramid <= 65535) {
      if (p->paramid > pt->n) {
        pt->types = static_cast<Oid *>(repalloc(pt->types, sizeof(Oid) * p->paramid));
        for (int i = pt->n; i < p->paramid; ++i) pt->types[i] = InvalidOid;
        pt->n = p->paramid;
      }
      pt->types[p->paramid - 1] = p->paramtype;
    }
    return false;
  }
  if (IsA(node, Query))
    return query_tree_walker(castNode(Query, node), as_walker(collect_param_types), context, 0);
  return expression_tree_walker(node, as_walker(collect_param_types), context);
}

PlannedStmt *next_planner(Query *parse, const char *query_string, int cursor_options,
                          ParamListInfo bound_params) {
  if (prev_planner) return prev_planner(parse, query_string, cursor_options, bound_params);
  return standard_planner(parse, query_string, cursor_options, bound_params);
}

// Functions the planner evaluates (estimates, constant folding) run their
// statements inside this planning: not at the top level.
struct PlanningDepth {
  PlanningDepth() { ++executor_depth; }
  ~PlanningDepth() { --executor_depth; }
};

// Cheap checks first: most statements stop here.
bool may_wrap(const Query *parse) {
  return settings.transparent != kTransparentOff && !transparent_busy && executor_depth == 0 &&
         MyBackendType == B_BACKEND && parse->commandType == CMD_SELECT &&
         parse->utilityStmt == nullptr && parse->rowMarks == NIL && !parse->hasModifyingCTE &&
         !parse->hasForUpdate && shmem_available();
}

void add_relation(PlannedStmt *stmt, Oid relid) {
  if (!list_member_oid(stmt->relationOids, relid))
    stmt->relationOids = lappend_oid(stmt->relationOids, relid);
}

// The child's output, as the node's: the same columns (junk ones too, with
// their origin for RowDescription), read from the node's scan tuple.
// custom_scan_tlist points at the child's columns (OUTER_VAR, the child
// being the node's lefttree too) so that EXPLAIN VERBOSE can name them.
CustomScan *make_node(Plan *child, uint64_t id) {
  CustomScan *cs = makeNode(CustomScan);
  Plan *p = &cs->scan.plan;
  p->startup_cost = child->startup_cost;
  p->total_cost = child->total_cost;
  p->plan_rows = child->plan_rows;
  p->plan_width = child->plan_width;
  p->parallel_aware = false;
  p->parallel_safe = false;
  p->plan_node_id = INT_MAX - 1;  // not under a Gather: never looked up by id
  p->lefttree = child;
  cs->scan.scanrelid = 0;
  cs->flags = 0;
  cs->custom_plans = list_make1(child);
  cs->methods = &transparent_scan_methods;
  cs->custom_private = list_make1(makeString(psprintf(UINT64_FORMAT, id)));
  ListCell *lc;
  foreach (lc, child->targetlist) {
    auto *tle = lfirst_node(TargetEntry, lc);
    Var *outer = makeVarFromTargetEntry(OUTER_VAR, tle);
    cs->custom_scan_tlist = lappend(
        cs->custom_scan_tlist,
        makeTargetEntry(reinterpret_cast<Expr *>(outer), tle->resno, tle->resname, tle->resjunk));
    TargetEntry *out = flatCopyTargetEntry(tle);
    out->expr = reinterpret_cast<Expr *>(makeVarFromTargetEntry(INDEX_VAR, tle));
    p->targetlist = lappend(p->targetlist, out);
  }
  return cs;
}

// Results are kept in the types' binary form (send/receive: exact, whatever
// the output settings); a column of an anonymous record type cannot be read
// back, nor one of a type without those functions.
void check_output_types(PreparedQuery &q, List *tlist) {
  ListCell *lc;
  foreach (lc, tlist) {
    auto *tle = lfirst_node(TargetEntry, lc);
    const Oid type = pg_call([&] { return exprType(reinterpret_cast<Node *>(tle->expr)); });
    bool ok = pg_call([&] {
      Oid base = getBaseType(type);
      if (base == RECORDOID || base == RECORDARRAYOID || get_typtype(base) == TYPTYPE_PSEUDO)
        return false;
      Oid elem = get_element_type(base);
      if (elem == RECORDOID) return false;
      HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(base));
      if (!HeapTupleIsValid(tup)) return false;
      auto *t = reinterpret_cast<Form_pg_type>(GETSTRUCT(tup));
      bool binary = OidIsValid(t->typsend) && OidIsValid(t->typreceive);
      ReleaseSysCache(tup);
      return binary;
    });
    if (ok || q.uncacheable) continue;
    q.uncacheable = true;
    q.reason = "a statement returning a column of type " +
               std::string(pg_call([&] { return format_type_be(type); })) +
               " is never served from the cache";
    q.detail =
        "Results are kept in binary form; an anonymous record (ROW(...), a "
        "set-returning function's record) or a type without send and receive "
        "functions cannot be read back.";
    q.hint = "Select the record's fields as columns.";
  }
}

// The analysis of a statement kept for its next plans: a prepared statement
// whose parameters make Postgres choose custom plans is planned at every
// execution, and deciding what its key depends on cost more than its hit.
// Keyed by the analysed statement (parameters as parameters), the role,
// search_path, options and the plan's relations (partitions pruned by the
// bound values change them); emptied with the plan memo below, at any
// invalidation that could change it.
struct KeptAnalysis {
  std::shared_ptr<TransparentPlan> plan;
  uint64_t id;
  std::list<std::string>::iterator use;
};
std::unordered_map<std::string, KeptAnalysis> analyses;
std::list<std::string> analyses_use;

struct Wrapped;
Wrapped attach(PlannedStmt *stmt, const std::shared_ptr<TransparentPlan> &tp, uint64_t id,
               int cursor_options);

std::string analysis_key(const std::string &base, const PlannedStmt *stmt) {
  std::string key = base;
  ListCell *lc;
  foreach (lc, stmt->relationOids) key += "r" + std::to_string(lfirst_oid(lc));
  return key;
}

void keep_analysis(const std::string &key, const std::shared_ptr<TransparentPlan> &plan,
                   uint64_t id) {
  analyses_use.push_front(key);
  analyses.emplace(key, KeptAnalysis{plan, id, analyses_use.begin()});
  while (analyses.size() > static_cast<size_t>(settings.max_prepared_queries)) {
    analyses.erase(analyses_use.back());
    analyses_use.pop_back();
  }
}

struct Wrapped {
  PlannedStmt *stmt;
  std::shared_ptr<TransparentPlan> plan;  // null: not wrapped
  uint64_t id;
};

Wrapped wrap(PlannedStmt *stmt, Query *pristine, const std::string &analysed,
             const std::string &digest, uint64_t fp, const std::optional<Registration> &reg,
             int cursor_options, const std::string &base_key) {
  if (stmt->commandType != CMD_SELECT || stmt->planTree == nullptr || stmt->hasModifyingCTE ||
      stmt->rowMarks != NIL || stmt->utilityStmt != nullptr)
    return {stmt, nullptr, 0};
  const std::string akey = analysis_key(base_key, stmt);
  auto kept = analyses.find(akey);
  if (kept != analyses.end()) {
    analyses_use.splice(analyses_use.begin(), analyses_use, kept->second.use);
    if (!kept->second.plan) return {stmt, nullptr, 0};
    return attach(stmt, kept->second.plan, remember(kept->second.plan, kept->second.id),
                  cursor_options);
  }
  auto tp = std::make_shared<TransparentPlan>();
  tp->fingerprint = fp;
  tp->q.fingerprint = fp;
  tp->registered = reg.has_value();
  if (reg) {
    tp->ttl = reg->ttl;
    tp->ns = reg->ns;
  }
  ParamTypes pt{nullptr, 0};
  pg_call([&] {
    pt.types = static_cast<Oid *>(palloc0(sizeof(Oid)));
    query_tree_walker(pristine, as_walker(collect_param_types), &pt, 0);
  });
  tp->q.param_types.assign(pt.types, pt.types + pt.n);
  tp->q.analysed_digest = digest;
  analyse_plan(tp->q, pristine, stmt, analysed, {});
  check_output_types(tp->q, stmt->planTree->targetlist);
  // `all`: only what can be cached; a registered shape is wrapped anyway,
  // so that EXPLAIN and cachekit.caches say why it is not served.
  // Nor, with `all`, what reads the clock: the application did not ask for
  // `now()` to keep the miss's value for the ttl.
  if (!reg && (tp->q.uncacheable || tp->q.deps.empty() || tp->q.reads_clock)) {
    keep_analysis(akey, nullptr, 0);
    return {stmt, nullptr, 0};
  }
  const uint64_t id = remember(tp);
  keep_analysis(akey, tp, id);
  return attach(stmt, tp, id, cursor_options);
}

// The plan, wrapped in the node that names its analysis.
Wrapped attach(PlannedStmt *stmt, const std::shared_ptr<TransparentPlan> &tp, uint64_t id,
               int cursor_options) {
  if (!tp) return {stmt, nullptr, 0};
  const TransparentPlan &t = *tp;
  pg_call([&] {
    CustomScan *cs = make_node(stmt->planTree, id);
    Plan *top = &cs->scan.plan;
    // The node reads forward only; a scroll cursor gets its rows kept.
    if (cursor_options & CURSOR_OPT_SCROLL) {
      top = materialize_finished_plan(top);
      top->plan_node_id = INT_MAX - 2;
    }
    stmt->planTree = top;
    // Re-plan when what the key depends on changes: a watched ancestor
    // (only the table read is in the range table), any function the plan
    // calls (Postgres records user functions only; a REVOKE on a built-in
    // must re-plan, so that the hit checks it).
    for (Oid d : t.q.deps) add_relation(stmt, d);
    for (Oid fn : t.q.plan_functions) {
      PlanInvalItem *item = makeNode(PlanInvalItem);
      item->cacheId = PROCOID;
      item->hashValue = GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(fn));
      stmt->invalItems = lappend(stmt->invalItems, item);
    }
  });
  return {stmt, tp, id};
}

// ---- plans made before, for the simple protocol ------------------------
//
// A statement sent as text is planned at every execution, and for a hit
// that planning (and deciding what the key depends on) cost more than the
// hit itself. A plan is a function of the analysed statement (constants
// included), the catalogs and the planner's settings; so, as the plan cache
// does for prepared statements, the wrapped plan of an analysed statement
// is kept and a copy returned for the same analysed statement, until any
// invalidation of the kinds that make the plan cache re-plan (relations,
// functions, types, operators, roles, schemas) empties the memo. Statements
// with bound parameter values (custom plans of prepared statements, whose
// plan may hold those values) are never kept; plans that depend on the role
// or are transient neither.

struct Memo {
  PlannedStmt *stmt;  // in `memory`; nullptr: `all` mode did not wrap it
  MemoryContext memory;
  std::shared_ptr<TransparentPlan> plan;
  uint64_t id;
  std::list<std::string>::iterator use;
};
std::unordered_map<std::string, Memo> memo;
std::list<std::string> memo_use;  // most recently used first
bool memo_stale = false;

size_t memo_kept() { return static_cast<size_t>(settings.max_prepared_queries); }

void forget_memo_entry(Memo &m) {
  if (m.memory != nullptr) MemoryContextDelete(m.memory);
  m.memory = nullptr;
}

void clear_memo() {
  for (auto &[key, m] : memo) forget_memo_entry(m);
  memo.clear();
  memo_use.clear();
  analyses.clear();
  analyses_use.clear();
  memo_stale = false;
}

void memo_invalidated(Datum, Oid) { memo_stale = true; }
void memo_invalidated_syscache(Datum, int, uint32) { memo_stale = true; }

void keep_in_memo(const std::string &key, const Wrapped &w) {
  Memo m{nullptr, nullptr, w.plan, w.id, memo_use.end()};
  if (w.plan) {
    pg_call([&] {
      m.memory = AllocSetContextCreate(CacheMemoryContext, "cachekit transparent plan",
                                       ALLOCSET_SMALL_SIZES);
      MemoryContext old = MemoryContextSwitchTo(m.memory);
      m.stmt = static_cast<PlannedStmt *>(copyObjectImpl(w.stmt));
      MemoryContextSwitchTo(old);
    });
  }
  memo_use.push_front(key);
  m.use = memo_use.begin();
  memo.emplace(key, std::move(m));
  while (memo.size() > memo_kept()) {
    auto victim = memo.find(memo_use.back());
    forget_memo_entry(victim->second);
    memo.erase(victim);
    memo_use.pop_back();
  }
}

PlannedStmt *transparent_planner(Query *parse, const char *query_string, int cursor_options,
                                 ParamListInfo bound_params) {
  if (!may_wrap(parse)) return next_planner(parse, query_string, cursor_options, bound_params);
  return cpp_entry([&]() -> PlannedStmt * {
    // Most statements of an application are not registered: tell them
    // apart by their outline before copying and jumbling the tree.
    if (settings.transparent != kTransparentAll && !outline_registered(shape_outline(parse)))
      return pg_call(
          [&] { return next_planner(parse, query_string, cursor_options, bound_params); });
    // Before planning: the planner scribbles on its input.
    uint64_t fp = statement_fingerprint(parse);
    std::optional<Registration> reg = find_registration(fp);
    // Not where pg_cachekit is not installed (a look-alike schema "cachekit"
    // is not it): the registry is read only from the extension's own table.
    if (!OidIsValid(registry_oid))
      return pg_call(
          [&] { return next_planner(parse, query_string, cursor_options, bound_params); });
    if (!reg && settings.transparent != kTransparentAll)
      return pg_call(
          [&] { return next_planner(parse, query_string, cursor_options, bound_params); });
    Query *pristine = pg_call([&] { return static_cast<Query *>(copyObjectImpl(parse)); });
    std::string analysed = without_locations(pg_call([&] { return nodeToString(pristine); }));
    // "b": results in binary form (transparent_scan.cpp); never the key of
    // a cached_query result, kept as text.
    const std::string digest = "b" + sha256_hex(analysed);

    std::string key;
    const bool plan_reusable = bound_params == nullptr || bound_params->numParams == 0;
    {
      KeyMaterial id;
      id.add('a', digest);
      id.add_u64('u', GetUserId());
      List *path = pg_call([] { return fetch_search_path(true); });
      ListCell *lc;
      foreach (lc, path) id.add_u64('s', lfirst_oid(lc));
      id.add_u64('c', static_cast<uint64_t>(cursor_options));
      id.add_u64('m', static_cast<uint64_t>(settings.transparent));
      key = id.bytes();
      if (memo_stale) clear_memo();
      auto it = plan_reusable ? memo.find(key) : memo.end();
      if (it != memo.end() && it->second.stmt != nullptr) {
        // The planner's locks (partitions, inheritance children, inlined
        // functions' tables: parse analysis locked only the tables named),
        // taken as the plan cache takes them for a reused plan; a lock may
        // bring invalidations that make the kept plan stale.
        PlannedStmt *kept = it->second.stmt;
        pg_call([&] {
          ListCell *lc;
          foreach (lc, kept->rtable) {
            auto *rte = lfirst_node(RangeTblEntry, lc);
            if (rte->rtekind == RTE_RELATION) LockRelationOid(rte->relid, rte->rellockmode);
          }
        });
        if (memo_stale) {
          clear_memo();
          it = memo.end();
        }
      }
      if (it != memo.end()) {
        Memo &m = it->second;
        memo_use.splice(memo_use.begin(), memo_use, m.use);
        if (m.stmt == nullptr) {
          PlanningDepth depth;
          return pg_call(
              [&] { return next_planner(parse, query_string, cursor_options, bound_params); });
        }
        remember(m.plan, m.id);
        PlannedStmt *kept = m.stmt;
        return pg_call([&] {
          auto *copy = static_cast<PlannedStmt *>(copyObjectImpl(kept));
          copy->queryId = parse->queryId;
          copy->stmt_location = parse->stmt_location;
          copy->stmt_len = parse->stmt_len;
          return copy;
        });
      }
    }
    PlannedStmt *stmt = nullptr;
    {
      PlanningDepth depth;
      stmt =
          pg_call([&] { return next_planner(parse, query_string, cursor_options, bound_params); });
    }
    if (memo_stale) clear_memo();  // (planning took locks: invalidations)
    Wrapped w = wrap(stmt, pristine, analysed, digest, fp, reg, cursor_options, key);
    if (plan_reusable && !w.stmt->transientPlan && !w.stmt->dependsOnRole) keep_in_memo(key, w);
    return w.stmt;
  });
}

}  // namespace

uint64_t statement_fingerprint(Query *query) {
  uint64_t jumbled = pg_call([&] {
    auto *marked =
        reinterpret_cast<Query *>(params_as_constants(reinterpret_cast<Node *>(query), nullptr));
    JumbleState *js = JumbleQuery(marked, "");
    if (js) {
      pfree(js->jumble);
      pfree(js->clocations);
      pfree(js);
    }
    return marked->queryId;
  });
  return (static_cast<uint64_t>(shape_outline(query)) << 48) | (jumbled & 0xFFFFFFFFFFFFULL);
}

uint16_t shape_outline(const Query *query) {
  // Only what JumbleQuery hashes (or what follows from it: hasAggs from the
  // target list and HAVING), so that one statement, however it reaches the
  // planner, has one outline. It is finer than Postgres 15's jumbling, which
  // leaves no mark of an absent clause: LIMIT $1 and OFFSET $1, DISTINCT a
  // and ORDER BY a jumble alike, and are two shapes here.
  const uint64_t parts[] = {
      static_cast<uint64_t>(query->commandType),
      static_cast<uint64_t>(list_length(query->rtable)),
      static_cast<uint64_t>(list_length(query->targetList)),
      static_cast<uint64_t>(list_length(query->groupClause)),
      static_cast<uint64_t>(list_length(query->groupingSets)),
      static_cast<uint64_t>(list_length(query->windowClause)),
      static_cast<uint64_t>(list_length(query->distinctClause)),
      static_cast<uint64_t>(list_length(query->sortClause)),
      static_cast<uint64_t>(list_length(query->cteList)),
      static_cast<uint64_t>(query->limitOption),
      static_cast<uint64_t>(query->hasAggs) |
          static_cast<uint64_t>(query->havingQual != nullptr) << 1 |
          static_cast<uint64_t>(query->limitCount != nullptr) << 2 |
          static_cast<uint64_t>(query->limitOffset != nullptr) << 3 |
          static_cast<uint64_t>(query->setOperations != nullptr) << 4 |
          static_cast<uint64_t>(query->jointree != nullptr && query->jointree->quals != nullptr)
              << 5,
  };
  uint64_t h = 14695981039346656037ULL;  // FNV-1a over the parts
  for (uint64_t part : parts) {
    h ^= part;
    h *= 1099511628211ULL;
  }
  return static_cast<uint16_t>(h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48));
}

std::shared_ptr<TransparentPlan> analyse_shape(const std::string &text, const char *caller) {
  Query *query = nullptr;
  Oid *types = nullptr;
  int ntypes = 0;
  pg_call([&] {
    List *raw = pg_parse_query(text.c_str());
    if (list_length(raw) != 1)
      ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
                      errmsg("%s takes exactly one statement, got %d", caller, list_length(raw))));
    List *queries = pg_analyze_and_rewrite_varparams(linitial_node(RawStmt, raw), text.c_str(),
                                                     &types, &ntypes, nullptr);
    if (list_length(queries) != 1)
      ereport(
          ERROR,
          (errcode(ERRCODE_FEATURE_NOT_SUPPORTED), errmsg("%s takes a SELECT statement", caller),
           errdetail("The statement is rewritten into %d statements.", list_length(queries))));
    query = linitial_node(Query, queries);
  });
  if (query->commandType != CMD_SELECT || query->utilityStmt != nullptr)
    throw Error(sqlstate::kFeatureNotSupported, std::string(caller) + " takes a SELECT statement",
                "Only SELECT statements are served from the cache.");
  auto tp = std::make_shared<TransparentPlan>();
  tp->fingerprint = statement_fingerprint(query);
  tp->q.fingerprint = tp->fingerprint;
  for (int i = 0; i < ntypes; ++i)
    tp->q.param_types.push_back(types[i] == InvalidOid || types[i] == UNKNOWNOID ? TEXTOID
                                                                                 : types[i]);
  if (query->rowMarks != NIL || query->hasForUpdate) {
    tp->q.uncacheable = true;
    tp->q.reason = "a statement that locks rows is never served from the cache";
    tp->q.detail = "The statement uses FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE or FOR KEY SHARE.";
    tp->q.hint = "Remove the locking clause.";
  } else if (query->hasModifyingCTE) {
    tp->q.uncacheable = true;
    tp->q.reason = "a statement with a data-modifying WITH clause is never served from the cache";
    tp->q.detail = "A WITH clause inserts, updates or deletes rows.";
  }
  Query *pristine = pg_call([&] { return static_cast<Query *>(copyObjectImpl(query)); });
  std::string analysed = without_locations(pg_call([&] { return nodeToString(pristine); }));
  tp->q.analysed_digest = sha256_hex(analysed);
  PlannedStmt *stmt = nullptr;
  {
    struct Guard {
      Guard() { transparent_busy = true; }
      ~Guard() { transparent_busy = false; }
    } busy;
    stmt = pg_call(
        [&] { return pg_plan_query(query, text.c_str(), CURSOR_OPT_PARALLEL_OK, nullptr); });
  }
  analyse_plan(tp->q, pristine, stmt, analysed, {});
  check_output_types(tp->q, stmt->planTree->targetlist);
  return tp;
}

namespace {

void ensure_registry() {
  if (!registry_valid || (registry_oid == InvalidOid && OidIsValid(pg_call([] {
                            return get_extension_oid("pg_cachekit", true);
                          }))))
    load_registry();
}

}  // namespace

bool outline_registered(uint16_t outline) {
  ensure_registry();
  return registry_outlines.count(outline) > 0;
}

std::optional<Registration> find_registration(uint64_t fingerprint) {
  ensure_registry();
  auto it = registry.find(fingerprint);
  if (it == registry.end()) return std::nullopt;
  return it->second;
}

int registered_ttl(const TransparentPlan &plan) {
  int ttl = plan.ttl.value_or(0);
  if (ttl <= 0 && !plan.ns.empty()) {
    const Oid relid = pg_call([] { return find_extension_objects().namespace_ttls; });
    if (OidIsValid(relid)) {
      const char *ns = plan.ns.c_str();
      ttl = pg_call([&] {
        int found = 0;
        Relation rel = table_open(relid, AccessShareLock);
        Snapshot snapshot = RegisterSnapshot(GetLatestSnapshot());
        SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, nullptr);
        HeapTuple tup;
        TupleDesc desc = RelationGetDescr(rel);
        while (found == 0 && HeapTupleIsValid(tup = systable_getnext(scan))) {
          bool isnull = false;
          Datum name = heap_getattr(tup, 1, desc, &isnull);
          if (isnull || strcmp(TextDatumGetCString(name), ns) != 0) continue;
          Datum t = heap_getattr(tup, 2, desc, &isnull);
          if (!isnull) found = DatumGetInt32(t);
        }
        systable_endscan(scan);
        UnregisterSnapshot(snapshot);
        table_close(rel, AccessShareLock);
        return found;
      });
    }
  }
  if (ttl <= 0) ttl = settings.default_ttl;
  return std::min(ttl, settings.max_ttl);
}

std::shared_ptr<TransparentPlan> find_transparent_plan(const CustomScan *node) {
  if (node->custom_private == NIL) return nullptr;
  const char *s = strVal(linitial(node->custom_private));
  uint64_t id = strtoull(s, nullptr, 10);
  auto it = plans.find(id);
  if (it == plans.end()) return nullptr;
  plan_use.splice(plan_use.begin(), plan_use, it->second.use);
  return it->second.plan;
}

void install_transparent_planner() {
  prev_planner = planner_hook;
  planner_hook = transparent_planner;
  CacheRegisterRelcacheCallback(registry_changed, 0);
  CacheRegisterRelcacheCallback(memo_invalidated, 0);
  for (int cache : {PROCOID, TYPEOID, AUTHOID, NAMESPACEOID, OPEROID, AMOPOPID})
    CacheRegisterSyscacheCallback(cache, memo_invalidated_syscache, 0);
}

}  // namespace cachekit::pg
