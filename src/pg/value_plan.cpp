// Per-value invalidation, reader side.
//
// A dependency t (a table watched by a column c) is keyed on values only
// when the analysed query proves that its result depends on no row of t
// whose c lies outside the buckets its parameters give:
//   - t appears exactly once in the plan's flattened range table (which
//     holds every subquery, sublink, CTE, view, inlined SQL function and
//     row-level security policy), and is not named in depends_on (a function
//     the planner cannot see into reads it);
//   - that occurrence is in the FROM clause of the top-level query or of a
//     subquery (or view) reached from it through FROM clauses only (not a
//     WITH query, set operation or sublink), without TABLESAMPLE: a query's
//     result is a function of what its FROM items return;
//   - an AND-conjunct of that level's WHERE clause is `t.c = X`, `t.c IN (X, ...)`
//     / `t.c = ANY(A)`, or, with a bucket width, a lower and an upper bound
//     `t.c >= A AND t.c <= B` (BETWEEN; < and > too), with the type's
//     default btree operators, the column's collation, and X, A, B
//     constants, parameters or immutable expressions of them of the
//     column's type;
//   - t neither inherits from nor is inherited by another table.
// WHERE filters every row the FROM clause produces, and each carries at most
// one row of t; the conditions are strict (checked), so a row of t outside the set,
// or a row null-extended by an outer join, never survives it, and removing
// such rows changes nothing. GROUP BY, HAVING, windows, DISTINCT and LIMIT
// only see what WHERE let through.
//
// Anything else depends on the whole table, with the reason kept for
// last_dependencies(). At call time a NULL value, an empty range or more
// than cachekit.value_max_buckets buckets do the same, for that call.
#include "pg/value_plan.h"

#include <algorithm>

#include "core/json.h"
#include "pg/boundary.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/query_plan.h"
#include "pg/value_generations.h"
#include "pg/sql_function.h"
#include "pg/datum.h"

extern "C" {
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/params.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteManip.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

namespace cachekit::pg {

namespace {

std::string label_of(Oid relid) {
  return pg_call([&] {
    char *nsp = get_namespace_name(get_rel_namespace(relid));
    char *rel = get_rel_name(relid);
    return (nsp && rel) ? quote_qualified_identifier(nsp, rel) : pstrdup("?");
  });
}

// The query level whose FROM clause reads relid, searching from q down
// through subqueries in FROM clauses (views included) only: a query's result
// is a function of what its FROM items return, so if that level's result
// depends only on some values' rows, so does the whole query's.
bool find_level(const Query *q, Node *node, Oid relid, const Query **level, int *rtindex,
                std::string *why) {
  if (node == nullptr) return false;
  if (IsA(node, JoinExpr)) {
    auto *j = castNode(JoinExpr, node);
    return find_level(q, j->larg, relid, level, rtindex, why) ||
           find_level(q, j->rarg, relid, level, rtindex, why);
  }
  if (IsA(node, FromExpr)) {
    ListCell *lc;
    foreach (lc, castNode(FromExpr, node)->fromlist)
      if (find_level(q, static_cast<Node *>(lfirst(lc)), relid, level, rtindex, why)) return true;
    return false;
  }
  if (!IsA(node, RangeTblRef)) return false;
  const int index = castNode(RangeTblRef, node)->rtindex;
  auto *rte = static_cast<RangeTblEntry *>(list_nth(q->rtable, index - 1));
  if (rte->rtekind == RTE_RELATION && rte->relid == relid) {
    if (rte->tablesample != nullptr) {
      *why = "the table is read with TABLESAMPLE";
      return false;
    }
    *level = q;
    *rtindex = index;
    return true;
  }
  if (rte->rtekind == RTE_SUBQUERY && rte->subquery != nullptr)
    return find_level(rte->subquery, reinterpret_cast<Node *>(rte->subquery->jointree), relid,
                      level, rtindex, why);
  return false;
}

void conjuncts(Node *node, std::vector<Node *> &out) {
  if (node == nullptr) return;
  if (is_andclause(node)) {
    ListCell *lc;
    foreach (lc, castNode(BoolExpr, node)->args) conjuncts(static_cast<Node *>(lfirst(lc)), out);
    return;
  }
  out.push_back(node);
}

bool is_column(Node *node, int rtindex, AttrNumber attnum) {
  if (node != nullptr && IsA(node, RelabelType)) node = (Node *)castNode(RelabelType, node)->arg;
  if (node == nullptr || !IsA(node, Var)) return false;
  auto *v = castNode(Var, node);
  return v->varno == rtindex && v->varattno == attnum && v->varlevelsup == 0;
}

// True for what a value computed before the query runs cannot contain:
// columns of any query level (a LATERAL subquery's outer references too),
// aggregates, sublinks, and parameters other than the caller's ($n).
bool not_a_call_value(Node *node, void *) {
  if (node == nullptr) return false;
  if (IsA(node, Var) || IsA(node, PlaceHolderVar) || IsA(node, Aggref) || IsA(node, WindowFunc) ||
      IsA(node, GroupingFunc) || IsA(node, SubLink) || IsA(node, SubPlan))
    return true;
  if (IsA(node, Param)) return castNode(Param, node)->paramkind != PARAM_EXTERN;
  return expression_tree_walker(
      node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)()>(not_a_call_value)), nullptr);
}

// Why `expr` cannot give a value at call time, or "" when it can.
std::string value_problem(Node *expr) {
  return pg_call([&]() -> const char * {
    if (not_a_call_value(expr, nullptr))
      return "it reads a column, a subquery or a value computed by the query";
    if (contain_mutable_functions(expr)) return "it is not an immutable expression";
    return "";
  });
}

struct Match {
  DependencyScope::Kind kind;
  Expr *value;
  Expr *upper;
};

// Finds the best condition on the column among the conjuncts: equality, then
// IN/ANY, then a bounded range (with a width). `near` collects why a
// conjunct on the column did not qualify.
bool find_condition(const std::vector<Node *> &conds, int rtindex, const ValueColumn &col, Match *m,
                    std::string *near) {
  Expr *eq = nullptr, *any = nullptr, *lower = nullptr, *upper = nullptr;
  for (Node *n : conds) {
    if (IsA(n, OpExpr)) {
      auto *op = castNode(OpExpr, n);
      if (list_length(op->args) != 2) continue;
      Node *l = static_cast<Node *>(linitial(op->args));
      Node *r = static_cast<Node *>(lsecond(op->args));
      bool var_left = is_column(l, rtindex, col.attnum);
      bool var_right = !var_left && is_column(r, rtindex, col.attnum);
      if (!var_left && !var_right) continue;
      Node *other = var_left ? r : l;
      const bool eq_op = op->opno == col.eq_opr;
      const bool range_op = col.kind != 'h' && OidIsValid(op->opno) &&
                            (op->opno == col.lt_opr || op->opno == col.le_opr ||
                             op->opno == col.gt_opr || op->opno == col.ge_opr);
      if (!eq_op && !range_op) {
        if (near->empty())
          *near = "the comparison of " + col.name +
                  " does not use the equality or ordering operator of its type (a comparison "
                  "across types, or an operator other than =, IN, BETWEEN)";
        continue;
      }
      if (OidIsValid(col.collation) && op->inputcollid != col.collation) {
        if (near->empty()) *near = col.name + " is compared under another collation";
        continue;
      }
      // A NULL-extended row (outer join) must never pass: the operator
      // must return NULL for NULL.
      const Oid opno = op->opno;
      if (!pg_call([&] { return op_strict(opno); })) {
        if (near->empty()) *near = "the comparison of " + col.name + " is not strict";
        continue;
      }
      std::string problem = value_problem(other);
      if (!problem.empty()) {
        if (near->empty()) *near = "the value compared with " + col.name + ": " + problem;
        continue;
      }
      if (eq_op) {
        if (eq == nullptr) eq = reinterpret_cast<Expr *>(other);
        continue;
      }
      // Column on the left: < <= give an upper bound; on the right, a lower.
      const bool less = op->opno == col.lt_opr || op->opno == col.le_opr;
      if (less == var_left) {
        if (upper == nullptr) upper = reinterpret_cast<Expr *>(other);
      } else if (lower == nullptr) {
        lower = reinterpret_cast<Expr *>(other);
      }
    } else if (IsA(n, ScalarArrayOpExpr)) {
      auto *op = castNode(ScalarArrayOpExpr, n);
      if (list_length(op->args) != 2 ||
          !is_column(static_cast<Node *>(linitial(op->args)), rtindex, col.attnum))
        continue;
      if (!op->useOr || op->opno != col.eq_opr) {
        if (near->empty()) *near = col.name + " is compared with ALL or another operator than =";
        continue;
      }
      if (OidIsValid(col.collation) && op->inputcollid != col.collation) {
        if (near->empty()) *near = col.name + " is compared under another collation";
        continue;
      }
      const Oid opno = op->opno;
      if (!pg_call([&] { return op_strict(opno); })) {
        if (near->empty()) *near = "the comparison of " + col.name + " is not strict";
        continue;
      }
      Node *arr = static_cast<Node *>(lsecond(op->args));
      std::string problem = value_problem(arr);
      if (!problem.empty()) {
        if (near->empty()) *near = "the values compared with " + col.name + ": " + problem;
        continue;
      }
      if (any == nullptr) any = reinterpret_cast<Expr *>(arr);
    }
  }
  if (eq) {
    *m = Match{DependencyScope::Kind::kEquals, eq, nullptr};
  } else if (any) {
    *m = Match{DependencyScope::Kind::kAnyOf, any, nullptr};
  } else if (lower && upper) {
    *m = Match{DependencyScope::Kind::kRange, lower, upper};
  } else {
    if ((lower || upper) && near->empty())
      *near = "the range of " + col.name + " has only one bound";
    return false;
  }
  return true;
}

// The reason a dependency depends on the whole table, or "" with *m set.
std::string decide(const Query *top, const PlannedStmt *stmt, Oid relid,
                   const std::vector<Oid> &depends_on, ValueColumn *col, Match *m) {
  std::string why;
  if (!value_column_of(relid, col, &why)) return why;
  if (std::find(depends_on.begin(), depends_on.end(), relid) != depends_on.end())
    return "the table is named in depends_on";
  if (table_and_ancestors(relid).size() > 1 || pg_call([&] { return has_subclass(relid); }))
    return "the table inherits from or is inherited by another table";
  int occurrences = 0;
  ListCell *lc;
  foreach (lc, stmt->rtable) {
    auto *rte = lfirst_node(RangeTblEntry, lc);
    if (rte->rtekind == RTE_RELATION && rte->relid == relid) ++occurrences;
  }
  if (occurrences != 1)
    return "the table is read " + std::to_string(occurrences) + " times in the query";
  const Query *level = nullptr;
  int rtindex = 0;
  std::string where;
  if (!find_level(top, reinterpret_cast<Node *>(top->jointree), relid, &level, &rtindex, &where))
    return where.empty() ? "the table is read in a WITH query, a set operation (UNION, INTERSECT, "
                           "EXCEPT), a sublink or a function, not in a FROM clause"
                         : where;
  std::vector<Node *> conds;
  conjuncts(level->jointree->quals, conds);
  std::string near;
  if (find_condition(conds, rtindex, *col, m, &near)) return "";
  if (!near.empty()) return near;
  return "no condition of the WHERE clause (joined by AND) fixes " + col->name + " to values";
}

// Call-time state of the last call, for last_dependencies().
std::shared_ptr<const ValueScope> last_scope;
struct CallDecision {
  int64_t buckets;     // -1: whole table
  const char *reason;  // call-time reason, when the prepared scope was by value
};
std::vector<CallDecision> last_decisions;

}  // namespace

std::shared_ptr<const ValueScope> analyse_value_scope(const Query *top, const PlannedStmt *stmt,
                                                      const std::vector<Oid> &deps,
                                                      const std::vector<Oid> &depends_on,
                                                      const std::vector<Oid> &,
                                                      MemoryContext memory) {
  auto scope = std::make_shared<ValueScope>();
  for (Oid relid : deps) {
    DependencyScope d;
    d.relid = relid;
    d.label = label_of(relid);
    Match m{};
    d.reason = decide(top, stmt, relid, depends_on, &d.col, &m);
    if (d.reason.empty()) {
      d.by_value = true;
      d.kind = m.kind;
      // Planned copies in the entry's memory: constant-folded, with their
      // operators' functions looked up, ready for ExecInitExpr at call time.
      pg_call([&] {
        MemoryContext old = MemoryContextSwitchTo(memory);
        d.value = expression_planner(static_cast<Expr *>(copyObjectImpl(m.value)));
        if (m.upper) d.upper = expression_planner(static_cast<Expr *>(copyObjectImpl(m.upper)));
        MemoryContextSwitchTo(old);
      });
    }
    scope->deps.push_back(std::move(d));
  }
  return scope;
}

namespace {

// The parameters as the executor sees them, converted from their text once
// per call and only when a value needs them.
struct CallParams {
  const PreparedQuery *q;
  const std::vector<std::optional<std::string>> *text;
  ParamListInfo list = nullptr;
};

ParamListInfo param_list(CallParams &p) {
  if (p.list != nullptr) return p.list;
  const size_t n = p.text->size();
  ParamListInfo list = pg_call([&] { return makeParamList(static_cast<int>(n)); });
  for (size_t i = 0; i < n; ++i) {
    ParamExternData &prm = list->params[i];
    prm.ptype = p.q->param_types[i];
    prm.pflags = PARAM_FLAG_CONST;
    prm.isnull = !(*p.text)[i].has_value();
    prm.value = 0;
    if (prm.isnull) continue;
    const char *s = (*p.text)[i]->c_str();
    const Oid type = prm.ptype;
    prm.value = pg_call([&] {
      Oid input, ioparam;
      getTypeInputInfo(type, &input, &ioparam);
      return OidInputFunctionCall(input, const_cast<char *>(s), ioparam, -1);
    });
  }
  list->numParams = static_cast<int>(n);
  p.list = list;
  return list;
}

// The value of a kept expression for this call. Allocates in the current
// memory context (the caller's short-lived one).
Datum evaluate(Expr *e, CallParams &p, bool *isnull) {
  if (IsA(e, Const)) {
    *isnull = castNode(Const, e)->constisnull;
    return castNode(Const, e)->constvalue;
  }
  ParamListInfo list = param_list(p);
  if (IsA(e, Param) && castNode(Param, e)->paramkind == PARAM_EXTERN) {
    int id = castNode(Param, e)->paramid;
    if (id >= 1 && id <= list->numParams) {
      *isnull = list->params[id - 1].isnull;
      return list->params[id - 1].value;
    }
  }
  return pg_call([&] {
    ExprContext *ec = CreateStandaloneExprContext();
    ec->ecxt_param_list_info = list;
    ExprState *state = ExecInitExpr(e, nullptr);
    Datum d = ExecEvalExpr(state, ec, isnull);
    FreeExprContext(ec, true);
    return d;
  });
}

// The buckets of one value-scoped dependency for this call; false (with the
// reason) when the call must depend on the whole table.
bool call_buckets(const DependencyScope &d, CallParams &p, std::vector<uint64_t> &buckets,
                  const char **reason) {
  const size_t max = static_cast<size_t>(settings.value_max_buckets);
  const ValueColumn &col = d.col;
  bool isnull = false;
  Datum v = evaluate(d.value, p, &isnull);
  if (isnull) {
    *reason = "the value is NULL";
    return false;
  }
  switch (d.kind) {
    case DependencyScope::Kind::kEquals:
      buckets.push_back(pg_call([&] { return value_bucket(col, v); }));
      return true;
    case DependencyScope::Kind::kAnyOf: {
      Datum *elems = nullptr;
      bool *nulls = nullptr;
      int n = 0;
      pg_call([&] {
        ArrayType *arr = DatumGetArrayTypeP(v);
        int16 typlen;
        bool typbyval;
        char typalign;
        get_typlenbyvalalign(ARR_ELEMTYPE(arr), &typlen, &typbyval, &typalign);
        deconstruct_array(arr, ARR_ELEMTYPE(arr), typlen, typbyval, typalign, &elems, &nulls, &n);
      });
      // NULL elements match no row.
      for (int i = 0; i < n; ++i) {
        if (nulls[i]) continue;
        Datum e = elems[i];
        buckets.push_back(pg_call([&] { return value_bucket(col, e); }));
      }
      break;
    }
    case DependencyScope::Kind::kRange: {
      bool upper_null = false;
      Datum u = evaluate(d.upper, p, &upper_null);
      if (upper_null) {
        *reason = "the value is NULL";
        return false;
      }
      const int64_t lo = pg_call([&] { return value_bucket_number(col, v); });
      const int64_t hi = pg_call([&] { return value_bucket_number(col, u); });
      if (hi < lo) {
        *reason = "the range is empty";
        return false;
      }
      // (unsigned: hi - lo may not fit an int64)
      if (static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) >= max) {
        *reason = "the range covers more buckets than cachekit.value_max_buckets";
        return false;
      }
      for (int64_t b = lo;; ++b) {
        buckets.push_back(static_cast<uint64_t>(b));
        if (b == hi) break;
      }
      break;
    }
  }
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  if (buckets.size() > max) {
    *reason = "the values fall into more buckets than cachekit.value_max_buckets";
    return false;
  }
  if (buckets.empty()) {
    *reason = "every value is NULL";
    return false;
  }
  return true;
}

}  // namespace

bool add_dependency_generations(const PreparedQuery &q,
                                const std::vector<std::optional<std::string>> &params,
                                KeyMaterial &gens) {
  const ValueScope *scope = q.values.get();
  last_scope = q.values;
  last_decisions.clear();
  bool any_value = false;
  CallParams p{&q, &params};
  MemoryContext tmp = nullptr;
  std::vector<uint64_t> buckets;
  std::vector<uint32_t> slots;
  for (size_t i = 0; i < q.deps.size(); ++i) {
    const Oid d = q.deps[i];
    const DependencyScope *ds =
        scope != nullptr && i < scope->deps.size() && scope->deps[i].relid == d ? &scope->deps[i]
                                                                                : nullptr;
    CallDecision decision{-1, nullptr};
    if (ds != nullptr && ds->by_value && value_generations_available()) {
      if (tmp == nullptr)
        tmp = pg_call([] {
          return AllocSetContextCreate(CurrentMemoryContext, "cachekit value buckets",
                                       ALLOCSET_SMALL_SIZES);
        });
      MemoryContext old = MemoryContextSwitchTo(tmp);
      buckets.clear();
      bool ok = false;
      try {
        ok = call_buckets(*ds, p, buckets, &decision.reason);
      } catch (...) {
        MemoryContextSwitchTo(old);
        throw;
      }
      MemoryContextSwitchTo(old);
      if (ok) {
        slots.clear();
        for (uint64_t b : buckets) slots.push_back(value_slot(MyDatabaseId, d, b));
        std::sort(slots.begin(), slots.end());
        slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
        Generation s = read_structural_generation(MyDatabaseId, d);
        gens.add_u64('r', d);
        gens.add_u64(s.overflow ? 'X' : 's', s.value);
        // The watch's setting: the same slot numbers mean other buckets under another one.
        gens.add('c', ds->col.name);
        gens.add_u64('w', static_cast<uint64_t>(ds->col.width));
        for (uint32_t slot : slots) {
          gens.add_u64('b', slot);
          gens.add_u64('n', read_value_slot(slot));
        }
        decision.buckets = static_cast<int64_t>(buckets.size());
        any_value = true;
      }
    }
    if (decision.buckets < 0) {
      Generation g = read_generation(MyDatabaseId, d);
      gens.add_u64('r', d);
      gens.add_u64(g.overflow ? 'O' : 'g', g.value);
    }
    last_decisions.push_back(decision);
  }
  if (tmp != nullptr) pg_call([&] { MemoryContextDelete(tmp); });
  return any_value;
}

void clear_last_dependencies() {
  last_scope.reset();
  last_decisions.clear();
}

}  // namespace cachekit::pg

using namespace cachekit;
using namespace cachekit::pg;

// cachekit.last_dependencies(): what the session's last cached_query call
// keyed on, per dependency.
CK_SQL_FUNCTION(ck_last_dependencies) {
  return cpp_entry([&]() -> Datum {
    std::string out = "[";
    for (size_t i = 0; last_scope && i < last_decisions.size() && i < last_scope->deps.size();
         ++i) {
      const DependencyScope &d = last_scope->deps[i];
      const CallDecision &c = last_decisions[i];
      if (i > 0) out += ", ";
      out += "{\"table\": " + json_quote(d.label);
      if (c.buckets >= 0) {
        out += ", \"scope\": \"value\", \"column\": " + json_quote(d.col.name) +
               ", \"buckets\": " + std::to_string(c.buckets);
      } else {
        out += ", \"scope\": \"table\"";
        if (d.by_value) out += ", \"column\": " + json_quote(d.col.name);
        out += ", \"reason\": " + json_quote(c.reason ? c.reason : d.reason);
      }
      out += "}";
    }
    out += "]";
    return jsonb_datum(out);
  });
}
