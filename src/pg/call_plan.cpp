// A plan without the planner for the statement applications send most:
//
//   SELECT * FROM cachekit.cached_query('...', ARRAY[...]) AS r(a int, ...)
//
// Sent with the simple protocol, that statement is parsed, analysed and
// planned at every call, and on a hit planning cost about as much as the
// whole lookup: const-folding the arguments builds an executor state to
// evaluate ARRAY[...], and the defaults of the omitted arguments are read
// back from pg_proc. The plan is always the same, a Function Scan of the
// call, so this hook builds it directly for exactly that shape (one call of
// cached_query or cached_query_json in FROM, its columns selected as they
// are: no WHERE, ORDER BY, LIMIT, grouping, locking or other relation) and
// leaves everything else to the planner. The arguments are evaluated by the
// executor as any Function Scan's are, so the call sees the same values.
//
// Postgres code only below (a planner hook, called by Postgres and calling
// nothing of ours): no C++ object lives in these frames, so an ereport from
// a catalog lookup can unwind them.
#include "pg/call_plan.h"

#include "pg/guc.h"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "jit/jit.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/plannodes.h"
#include "optimizer/planner.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
}

namespace {

planner_hook_type prev_planner = nullptr;

// The last function found to be (or not to be) one of ours, with the
// defaults of its trailing arguments. Forgotten on any pg_proc change
// (CREATE OR REPLACE, DROP EXTENSION), so an OID that came back for another
// function is looked up again.
struct KnownFunction {
  Oid oid;
  bool ours;
  int nargs;
  List *defaults;  // in fn_cxt; the last list_length(defaults) arguments
};
KnownFunction known = {InvalidOid, false, 0, NIL};
MemoryContext fn_cxt = nullptr;

void forget_function(Datum, int, uint32) {
  known.oid = InvalidOid;
  known.ours = false;
  known.defaults = NIL;
  if (fn_cxt) MemoryContextReset(fn_cxt);
}

// Ours: a C function of this library whose symbol is one of the two entry
// points (whatever schema the extension was installed in).
bool is_our_call(Oid funcid) {
  if (funcid == known.oid) return known.ours;
  forget_function(0, 0, 0);
  HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
  if (!HeapTupleIsValid(tup)) return false;
  auto *proc = reinterpret_cast<Form_pg_proc>(GETSTRUCT(tup));
  bool ours = false;
  if (proc->prolang == ClanguageId) {
    bool isnull = false;
    Datum src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
    Datum bin = isnull ? 0 : SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
    if (!isnull) {
      char *s = TextDatumGetCString(src);
      char *b = TextDatumGetCString(bin);
      const char *base = strrchr(b, '/');
      base = base ? base + 1 : b;
      ours = (strcmp(s, "ck_cached_query") == 0 || strcmp(s, "ck_cached_query_json") == 0) &&
             (strcmp(base, "pg_cachekit") == 0 || strcmp(base, "pg_cachekit.so") == 0);
    }
  }
  List *defaults = NIL;
  if (ours && proc->pronargdefaults > 0) {
    bool isnull = false;
    Datum d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proargdefaults, &isnull);
    if (isnull) {
      ours = false;
    } else {
      if (!fn_cxt)
        fn_cxt =
            AllocSetContextCreate(TopMemoryContext, "cachekit call plan", ALLOCSET_SMALL_SIZES);
      MemoryContext old = MemoryContextSwitchTo(fn_cxt);
      defaults = castNode(List, stringToNode(TextDatumGetCString(d)));
      MemoryContextSwitchTo(old);
    }
  }
  known.oid = funcid;
  known.ours = ours;
  known.nargs = proc->pronargs;
  known.defaults = defaults;
  ReleaseSysCache(tup);
  return ours;
}

// The call's arguments with the omitted trailing ones filled in from their
// defaults, or NIL when the call is not plain positional.
List *full_arguments(FuncExpr *call) {
  if (call->funcvariadic) return NIL;
  ListCell *lc;
  foreach (lc, call->args) {
    if (IsA(lfirst(lc), NamedArgExpr)) return NIL;
  }
  int given = list_length(call->args);
  int ndefaults = list_length(known.defaults);
  if (given > known.nargs || given + ndefaults < known.nargs) return NIL;
  List *args = list_copy(call->args);
  for (int i = given; i < known.nargs; ++i)
    args = lappend(args, copyObjectImpl(list_nth(known.defaults, i - (known.nargs - ndefaults))));
  return args;
}

// The shape described at the top, or nullptr.
RangeTblFunction *plain_call(Query *parse) {
  if (parse->commandType != CMD_SELECT || parse->utilityStmt || parse->hasAggs ||
      parse->hasWindowFuncs || parse->hasTargetSRFs || parse->hasSubLinks || parse->hasDistinctOn ||
      parse->hasRecursive || parse->hasModifyingCTE || parse->hasForUpdate ||
      parse->hasRowSecurity || parse->cteList || parse->groupClause || parse->groupingSets ||
      parse->havingQual || parse->windowClause || parse->distinctClause || parse->sortClause ||
      parse->limitOffset || parse->limitCount || parse->rowMarks || parse->setOperations ||
      parse->constraintDeps || parse->returningList || list_length(parse->rtable) != 1 ||
      !parse->jointree || list_length(parse->jointree->fromlist) != 1 || parse->jointree->quals)
    return nullptr;
  auto *ref = static_cast<Node *>(linitial(parse->jointree->fromlist));
  if (!IsA(ref, RangeTblRef) || castNode(RangeTblRef, ref)->rtindex != 1) return nullptr;
  auto *rte = static_cast<RangeTblEntry *>(linitial(parse->rtable));
  if (rte->rtekind != RTE_FUNCTION || rte->funcordinality || rte->lateral ||
      list_length(rte->functions) != 1)
    return nullptr;
  auto *rtfunc = static_cast<RangeTblFunction *>(linitial(rte->functions));
  if (!IsA(rtfunc->funcexpr, FuncExpr)) return nullptr;
  auto *call = castNode(FuncExpr, rtfunc->funcexpr);
  ListCell *lc;
  foreach (lc, parse->targetList) {
    auto *tle = static_cast<TargetEntry *>(lfirst(lc));
    if (tle->resjunk || !IsA(tle->expr, Var)) return nullptr;
    auto *var = castNode(Var, tle->expr);
    if (var->varno != 1 || var->varlevelsup != 0 || var->varattno <= 0) return nullptr;
  }
  if (!is_our_call(call->funcid)) return nullptr;
  return rtfunc;
}

PlannedStmt *plan_call(Query *parse, RangeTblFunction *rtfunc, List *args) {
  auto *call = static_cast<FuncExpr *>(copyObjectImpl(rtfunc->funcexpr));
  call->args = args;
  auto *planned = static_cast<RangeTblFunction *>(copyObjectImpl(rtfunc));
  planned->funcexpr = reinterpret_cast<Node *>(call);

  FunctionScan *scan = makeNode(FunctionScan);
  Plan *plan = &scan->scan.plan;
  // What the planner estimates for a set-returning C function without a
  // support function (prorows 1000, cost of one call).
  ListCell *lc2;
  plan->startup_cost = 0;
  plan->total_cost = 10;
  plan->plan_rows = 1000;
  int width = 0;
  ListCell *lc;
  forboth(lc, planned->funccoltypes, lc2, planned->funccoltypmods) {
    width += get_typavgwidth(lfirst_oid(lc), lfirst_int(lc2));
  }
  plan->plan_width = width;
  plan->parallel_aware = false;
  plan->parallel_safe = false;
  plan->plan_node_id = 0;
  plan->targetlist = static_cast<List *>(copyObjectImpl(parse->targetList));
  plan->qual = NIL;
  scan->scan.scanrelid = 1;
  scan->functions = list_make1(planned);
  scan->funcordinality = false;

  // The plan depends on the function (CREATE OR REPLACE, DROP), as the
  // planner records for any user function.
  PlanInvalItem *inval = makeNode(PlanInvalItem);
  inval->cacheId = PROCOID;
  inval->hashValue = GetSysCacheHashValue1(PROCOID, ObjectIdGetDatum(call->funcid));

  PlannedStmt *stmt = makeNode(PlannedStmt);
  stmt->commandType = CMD_SELECT;
  stmt->queryId = parse->queryId;
  stmt->hasReturning = false;
  stmt->hasModifyingCTE = false;
  stmt->canSetTag = parse->canSetTag;
  stmt->transientPlan = false;
  stmt->dependsOnRole = false;
  stmt->parallelModeNeeded = false;
  stmt->jitFlags = PGJIT_NONE;
  stmt->planTree = plan;
  stmt->rtable = static_cast<List *>(copyObjectImpl(parse->rtable));
  stmt->resultRelations = NIL;
  stmt->appendRelations = NIL;
  stmt->subplans = NIL;
  stmt->rewindPlanIDs = nullptr;
  stmt->rowMarks = NIL;
  stmt->relationOids = NIL;
  stmt->invalItems = list_make1(inval);
  stmt->paramExecTypes = NIL;
  stmt->utilityStmt = nullptr;
  stmt->stmt_location = parse->stmt_location;
  stmt->stmt_len = parse->stmt_len;
  return stmt;
}

PlannedStmt *call_planner(Query *parse, const char *query_string, int cursor_options,
                          ParamListInfo bound_params) {
  if (cachekit::pg::settings.call_plan) {
    RangeTblFunction *rtfunc = plain_call(parse);
    if (rtfunc) {
      List *args = full_arguments(castNode(FuncExpr, rtfunc->funcexpr));
      if (args != NIL) return plan_call(parse, rtfunc, args);
    }
  }
  if (prev_planner) return prev_planner(parse, query_string, cursor_options, bound_params);
  return standard_planner(parse, query_string, cursor_options, bound_params);
}

}  // namespace

namespace cachekit::pg {

void install_call_planner() {
  prev_planner = planner_hook;
  planner_hook = call_planner;
  CacheRegisterSyscacheCallback(PROCOID, forget_function, 0);
}

}  // namespace cachekit::pg
