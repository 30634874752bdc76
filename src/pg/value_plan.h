// Per-value invalidation, reader side: which dependencies of a prepared
// cached_query can key on value buckets instead of the table generation
// (decided once, at prepare time, from the analysed query and its plan),
// and at call time the buckets its parameters give.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/key_material.h"
#include "pg/value_bucket.h"

extern "C" {
#include "postgres.h"
#include "nodes/parsenodes.h"
#include "nodes/plannodes.h"
#include "utils/memutils.h"
}

namespace cachekit::pg {

struct PreparedQuery;

// One dependency of a prepared query.
struct DependencyScope {
  Oid relid = InvalidOid;
  std::string label;  // schema-qualified name
  bool by_value = false;
  // by_value: how the top-level WHERE fixes the column. The expressions
  // (constants, parameters and immutable functions of them) live in the
  // prepared query's memory.
  ValueColumn col;
  enum class Kind { kEquals, kAnyOf, kRange } kind = Kind::kEquals;
  Expr *value = nullptr;  // kEquals: the value; kAnyOf: the array; kRange: lower bound
  Expr *upper = nullptr;  // kRange
  std::string reason;     // !by_value: why it depends on the whole table
};

struct ValueScope {
  std::vector<DependencyScope> deps;  // in the order of PreparedQuery::deps
};

// Decides each dependency's scope. top: the analysed, rewritten query; stmt:
// its plan; memory: where the kept expressions go.
std::shared_ptr<const ValueScope> analyse_value_scope(const Query *top, const PlannedStmt *stmt,
                                                      const std::vector<Oid> &deps,
                                                      const std::vector<Oid> &depends_on,
                                                      const std::vector<Oid> &param_types,
                                                      MemoryContext memory);

// The generations of every dependency, for the key (read before the
// query's snapshot): per value-scoped dependency its structural generation
// and its buckets' counters, else the table generation. Remembers the
// decision for last_dependencies(). Returns whether any dependency was keyed
// on values.
bool add_dependency_generations(const PreparedQuery &q,
                                const std::vector<std::optional<std::string>> &params,
                                KeyMaterial &gens);
// A call that reads no generations (bypass) depends on nothing.
void clear_last_dependencies();

}  // namespace cachekit::pg
