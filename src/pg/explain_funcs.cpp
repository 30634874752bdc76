// cachekit.explain(query): what the cache would do with a statement, for
// the transparent path and for cached_query, without running it: the
// analysis both paths make (transparent_plan.h's analyse_shape, the one the
// planner hook and create_cache use), shown as a jsonb document.
//
// Like Postgres' EXPLAIN without ANALYZE, it plans as the caller and needs
// the privileges running the statement would need (SELECT on its tables,
// EXECUTE on its functions): the document names tables, columns and
// registrations, which a role that may not read them should not learn
// through a cache.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "pg/boundary.h"
#include "pg/cache_lookup.h"
#include "pg/datum.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/query_plan.h"
#include "pg/query_stats.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"
#include "pg/transparent_plan.h"
#include "pg/value_plan.h"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
}

namespace cachekit::pg {

namespace {

const char *bool_json(bool b) { return b ? "true" : "false"; }

std::string null_or_quoted(const std::string &s) { return s.empty() ? "null" : json_quote(s); }

const char *mode_name(int mode) {
  switch (mode) {
    case kTransparentRegistered:
      return "registered";
    case kTransparentAll:
      return "all";
    default:
      return "off";
  }
}

const char *match_name(DependencyScope::Kind kind) {
  switch (kind) {
    case DependencyScope::Kind::kAnyOf:
      return "any";
    case DependencyScope::Kind::kRange:
      return "range";
    default:
      return "equals";
  }
}

std::string table_label(Oid relid) {
  return pg_call([&] {
    char *nsp = get_namespace_name(get_rel_namespace(relid));
    char *rel = get_rel_name(relid);
    return std::string((nsp && rel) ? quote_qualified_identifier(nsp, rel) : "?");
  });
}

// analyse_shape marks these before planning; the planner hook never wraps
// them, not even a registered shape (may_wrap in transparent_plan.cpp).
bool never_wrapped(const PreparedQuery &q) {
  return q.uncacheable && (q.reason.rfind("a statement that locks rows", 0) == 0 ||
                           q.reason.rfind("a statement with a data-modifying WITH", 0) == 0);
}

// Whether the planner hook would wrap the statement in the current mode
// (transparent_plan.cpp: may_wrap, transparent_planner, wrap), and if not,
// why.
struct Wrapping {
  bool wrapped = false;
  std::string why_not;
};

Wrapping transparent_wrapping(const TransparentPlan &tp) {
  const PreparedQuery &q = tp.q;
  if (settings.transparent == kTransparentOff) return {false, "cachekit.transparent is off"};
  if (!shmem_available()) return {false, "pg_cachekit is not in shared_preload_libraries"};
  if (never_wrapped(q)) return {false, q.reason};
  if (tp.registered) return {true, ""};
  if (settings.transparent != kTransparentAll)
    return {false, "the statement's shape is not registered with cachekit.create_cache"};
  if (q.uncacheable) return {false, q.reason};
  if (q.deps.empty()) return {false, "the statement reads no table"};
  if (q.reads_clock)
    return {false,
            "the statement reads the clock (now(), CURRENT_DATE...): served only when registered"};
  return {true, ""};
}

std::string dependencies_json(const PreparedQuery &q) {
  std::string out = "[";
  for (size_t i = 0; i < q.deps.size(); ++i) {
    if (i > 0) out += ", ";
    const DependencyScope *d = q.values && i < q.values->deps.size() ? &q.values->deps[i] : nullptr;
    out += "{\"table\": " + json_quote(d ? d->label : table_label(q.deps[i]));
    if (d && d->by_value) {
      out += ", \"scope\": \"value\", \"column\": " + json_quote(d->col.name) +
             ", \"match\": " + json_quote(match_name(d->kind));
    } else {
      out += ", \"scope\": \"table\"";
      if (d && !d->col.name.empty()) out += ", \"column\": " + json_quote(d->col.name);
      // An uncacheable statement's dependencies get no scope analysis.
      out += ", \"reason\": " + (d ? null_or_quoted(d->reason) : std::string("null"));
    }
    out += "}";
  }
  return out + "]";
}

// What the key of one call holds besides the statement's analysed form and
// its parameters' values (cache_lookup.cpp, build_query_key).
std::string key_json(const PreparedQuery &q) {
  std::vector<std::string> types;
  for (Oid t : q.param_types)
    types.push_back(pg_call([&] { return std::string(format_type_be(t)); }));
  bool values = false;
  for (size_t i = 0; q.values && i < q.values->deps.size(); ++i)
    values = values || q.values->deps[i].by_value;
  return "{\"role\": true, \"session_user\": " + std::string(bool_json(q.reads_session_user)) +
         ", \"settings\": " + json_string_array(key_setting_names()) +
         ", \"key_settings\": " + json_string_array(key_settings_listed()) +
         ", \"custom_settings\": " + bool_json(q.row_security || q.reads_settings) +
         ", \"row_security\": " + bool_json(q.row_security) +
         ", \"parameters\": " + json_string_array(types) + ", \"generations\": " +
         json_quote(values ? "per table, and per value bucket for value-scoped dependencies"
                           : "per table") +
         "}";
}

// cached_query's own fingerprint of a text (query_stats.fingerprint of its
// calls), as query_plan.cpp computes it.
int64_t cached_query_fingerprint(const std::string &text) {
  return static_cast<int64_t>(std::stoull(sha256_hex(text).substr(0, 15), nullptr, 16));
}

// When a call does not use the cache although the statement is cacheable,
// by the names query_stats' bypasses and last_outcome() use.
struct BypassCase {
  Bypass bypass;
  const char *when;
};
const BypassCase kBypasses[] = {
    {Bypass::kWriteInTransaction,
     "the transaction wrote a dependency (it must see its own writes)"},
    {Bypass::kIsolationLevel,
     "REPEATABLE READ or SERIALIZABLE: the transaction's snapshot is older"},
    {Bypass::kPreparedTransaction,
     "a prepared transaction of this database is not yet committed or rolled back"},
    {Bypass::kHotStandby, "the server is a hot standby"},
    {Bypass::kRedisUnavailable, "Redis is unavailable (L1 still serves what it holds)"},
    {Bypass::kTooLarge, "the result is larger than cachekit.max_result_bytes (runs, not stored)"},
    {Bypass::kPlanChanged, "the statement was re-planned while it ran (runs, not stored)"},
};

std::string bypasses_json() {
  std::string out = "[";
  for (const BypassCase &b : kBypasses) {
    if (out.size() > 1) out += ", ";
    out += "{\"bypass\": " + json_quote(bypass_name(b.bypass)) +
           ", \"when\": " + json_quote(b.when) + "}";
  }
  return out + "]";
}

// The bypass a call made now, in this transaction, would take, of those
// known without Redis: the order is check_bypasses' (cache_lookup.cpp).
const char *bypass_now(const PreparedQuery &q) {
  if (q.uncacheable) return bypass_name(Bypass::kUncacheable);
  if (RecoveryInProgress()) return bypass_name(Bypass::kHotStandby);
  if (IsolationUsesXactSnapshot()) return bypass_name(Bypass::kIsolationLevel);
  bool wrote = changed_in_transaction(InvalidOid);
  for (Oid d : q.deps) wrote = wrote || changed_in_transaction(d);
  if (wrote) return bypass_name(Bypass::kWriteInTransaction);
  if (shmem_available() && pg_call([] { return database_in_doubt(MyDatabaseId); }))
    return bypass_name(Bypass::kPreparedTransaction);
  return nullptr;
}

// An error's cursor position points into the statement given, not into the
// query that called explain(): report it as an internal query, as SPI does.
void statement_position(void *arg) {
  int position = geterrposition();
  if (position <= 0) return;
  errposition(0);
  internalerrposition(position);
  internalerrquery(static_cast<const char *>(arg));
}

class ErrorPosition {
 public:
  explicit ErrorPosition(const char *text) {
    callback_.callback = statement_position;
    callback_.arg = const_cast<char *>(text);
    callback_.previous = error_context_stack;
    error_context_stack = &callback_;
  }
  ~ErrorPosition() { error_context_stack = callback_.previous; }
  ErrorPosition(const ErrorPosition &) = delete;
  ErrorPosition &operator=(const ErrorPosition &) = delete;

 private:
  ErrorContextCallback callback_;
};

std::string explain_json(const std::string &text) {
  std::shared_ptr<TransparentPlan> tp;
  {
    ErrorPosition position(text.c_str());
    tp = analyse_shape(text, "explain");
  }
  // analyse_shape leaves the registration to its caller.
  if (std::optional<Registration> reg = find_registration(tp->fingerprint)) {
    tp->registered = true;
    tp->ttl = reg->ttl;
    tp->ns = reg->ns;
  }
  const PreparedQuery &q = tp->q;
  check_privileges(q);
  const Wrapping w = transparent_wrapping(*tp);
  const bool cacheable = !q.uncacheable;
  // Why a statement is not served transparently: not wrapped, or wrapped
  // (a registered shape) but bypassing as uncacheable.
  const std::string not_served = !w.wrapped ? w.why_not : cacheable ? "" : q.reason;
  const char *now_name = bypass_now(q);
  const std::string now = now_name ? json_quote(now_name) : "null";
  std::string registration = "null";
  if (tp->registered) {
    registration = "{\"ttl\": " + (tp->ttl ? std::to_string(*tp->ttl) : std::string("null")) +
                   ", \"namespace\": " + null_or_quoted(tp->ns) + "}";
  }
  return "{\"cacheable\": " + std::string(bool_json(cacheable)) +
         ", \"reason\": " + null_or_quoted(q.reason) + ", \"detail\": " + null_or_quoted(q.detail) +
         ", \"hint\": " + null_or_quoted(q.hint) +
         // A hit returns the time its miss read (cached_query documents it).
         ", \"reads_clock\": " + bool_json(q.reads_clock) +
         ", \"fingerprint\": " + std::to_string(static_cast<int64_t>(tp->fingerprint)) +
         ", \"registered\": " + bool_json(tp->registered) + ", \"registration\": " + registration +
         ", \"transparent\": {\"mode\": " + json_quote(mode_name(settings.transparent)) +
         ", \"registrable\": " + bool_json(cacheable && !q.deps.empty()) +
         ", \"wrapped\": " + bool_json(w.wrapped) +
         ", \"served\": " + bool_json(w.wrapped && cacheable) +
         ", \"reason\": " + null_or_quoted(not_served) +
         "}, \"cached_query\": {\"cacheable\": " + bool_json(cacheable) +
         ", \"fingerprint\": " + std::to_string(cached_query_fingerprint(text)) +
         "}, \"dependencies\": " + dependencies_json(q) + ", \"key\": " + key_json(q) +
         ", \"bypasses\": " + bypasses_json() + ", \"bypass_now\": " + now + "}";
}

}  // namespace

}  // namespace cachekit::pg

using namespace cachekit;
using namespace cachekit::pg;

CK_SQL_FUNCTION(ck_explain) {
  Arg query = varlena_arg(fcinfo, 0);
  return cpp_entry(
      [&]() -> Datum { return jsonb_datum(explain_json(std::string(required(query, "query")))); });
}
