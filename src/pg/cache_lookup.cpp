// One use of the result cache: see cache_lookup.h. Moved here from
// cached_query.cpp so that the transparent path runs the same code.
#include "pg/cache_lookup.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/key_material.h"
#include "core/keys.h"
#include "pg/boundary.h"
#include "pg/generations.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/l1_cache.h"
#include "pg/leases.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/value_plan.h"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
}

namespace cachekit::pg {

namespace {

// Settings that change what a query returns or how its values print.
const char *const kOutputSettings[] = {
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "extra_float_digits",
    "bytea_output",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "standard_conforming_strings",
    "row_security",
    "default_text_search_config",
    "xmlbinary",
    "xmloption",
    "transform_null_equals",
    "search_path",
};

// The built-in settings' records, found once: GetConfigOption's search by
// name, fifteen times per call, was a visible part of a hit. Built-in
// records are static and never replaced (custom ones are, when their
// extension defines them: those are looked up by name every time).
struct config_generic *output_records[std::size(kOutputSettings)];
bool output_records_found = false;

// GetConfigOption's formatting, for a record in hand.
const char *setting_text(struct config_generic *record, char *buffer, size_t size) {
  switch (record->vartype) {
    case PGC_BOOL:
      return *reinterpret_cast<struct config_bool *>(record)->variable ? "on" : "off";
    case PGC_INT:
      snprintf(buffer, size, "%d", *reinterpret_cast<struct config_int *>(record)->variable);
      return buffer;
    case PGC_REAL:
      snprintf(buffer, size, "%g", *reinterpret_cast<struct config_real *>(record)->variable);
      return buffer;
    case PGC_STRING:
      return *reinterpret_cast<struct config_string *>(record)->variable;
    case PGC_ENUM: {
      auto *e = reinterpret_cast<struct config_enum *>(record);
      return pg_call([&] { return config_enum_lookup_by_value(e, *e->variable); });
    }
  }
  return nullptr;
}

void find_output_records() {
  if (output_records_found) return;
  struct config_generic **vars = get_guc_variables();
  int n = GetNumConfigOptions();
  for (size_t k = 0; k < std::size(kOutputSettings); ++k) {
    output_records[k] = nullptr;
    for (int i = 0; i < n; ++i)
      if (pg_strcasecmp(vars[i]->name, kOutputSettings[k]) == 0) output_records[k] = vars[i];
    if (!output_records[k])
      throw Error(sqlstate::kInternalError, "setting not found",
                  std::string("The built-in setting ") + kOutputSettings[k] + " does not exist.");
  }
  output_records_found = true;
}

void add_settings(KeyMaterial &km, bool row_security) {
  find_output_records();
  char buffer[64];
  for (size_t k = 0; k < std::size(kOutputSettings); ++k) {
    const char *name = kOutputSettings[k];
    const char *v = setting_text(output_records[k], buffer, sizeof(buffer));
    km.add('o', name);
    if (v)
      km.add('v', v);
    else
      km.add_null('v');
  }
  // Row-level security policies often read custom settings
  // (current_setting('app.tenant_id')), and so may the query itself: then
  // every custom setting counts.
  if (row_security) {
    struct config_generic **vars = get_guc_variables();
    int n = GetNumConfigOptions();
    for (int i = 0; i < n; ++i) {
      const char *name = vars[i]->name;
      if (strchr(name, '.') == nullptr || strncmp(name, "cachekit.", 9) == 0) continue;
      const char *v = pg_call([&] { return GetConfigOption(name, true, false); });
      km.add('c', name);
      if (v)
        km.add('v', v);
      else
        km.add_null('v');
    }
  }
  for (const std::string &name : key_settings_listed()) {
    const char *v = pg_call([&] { return GetConfigOption(name.c_str(), true, false); });
    km.add('k', name);
    if (v)
      km.add('v', v);
    else
      km.add_null('v');
  }
}

// CacheCall::context from the settings part of a key: compared in this
// backend only, so the bytes themselves, not a digest.
std::string context_of(const KeyMaterial &set) {
  KeyMaterial km;
  km.add_u64('U', GetUserId());
  km.add_u64('L', GetSessionUserId());
  km.add('Z', set.bytes());
  return km.bytes();
}

// Prepared transactions left from before a restart were never seen by this
// server's PREPARE callback: register them all as in doubt (coarse: the whole
// database, never late).
// False when they do not all fit (they always should, see generations.h):
// the caller then bypasses the cache and the next call scans again.
bool register_prepared_after_restart() {
  std::vector<TransactionId> xids;
  pg_call([&] {
    int ret = SPI_execute(
        "SELECT transaction FROM pg_catalog.pg_prepared_xacts "
        "WHERE database = pg_catalog.current_database()",
        true, 0);
    if (ret != SPI_OK_SELECT)
      ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not read pg_prepared_xacts")));
  });
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull = false;
    Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
    if (!isnull) xids.push_back(DatumGetTransactionId(d));
  }
  for (TransactionId xid : xids)
    if (!pg_call([&] { return register_in_doubt(MyDatabaseId, xid); })) return false;
  prepared_scan_done(MyDatabaseId);
  return true;
}

int requested_ttl(std::optional<int> given, const std::string &ns) {
  if (given) return *given;
  if (!ns.empty()) {
    int ttl = pg_call([&] {
      Datum arg = CStringGetTextDatum(ns.c_str());
      Oid argtype = TEXTOID;
      int ret =
          SPI_execute_with_args("SELECT ttl FROM cachekit.namespace_ttls WHERE namespace = $1", 1,
                                &argtype, &arg, nullptr, true, 1);
      if (ret != SPI_OK_SELECT || SPI_processed == 0) return 0;
      bool isnull = false;
      Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
      return isnull ? 0 : DatumGetInt32(d);
    });
    if (ttl > 0) return ttl;
  }
  return settings.default_ttl;
}

}  // namespace

void debug_pause(int point) {
  if (settings.debug_pause_lock == 0 || settings.debug_pause_at != point) return;
  int64 key = settings.debug_pause_lock;
  pg_call([&] {
    DirectFunctionCall1(pg_advisory_lock_int8, Int64GetDatum(key));
    DirectFunctionCall1(pg_advisory_unlock_int8, Int64GetDatum(key));
  });
}

CacheCall::~CacheCall() { release(); }

void CacheCall::release() {
  if (lease_held) release_lease(stored);
  lease_held = false;
}

void CacheCall::bypass(Bypass why) {
  use_cache = false;
  call.outcome = Outcome::kBypass;
  call.bypass = why;
}

void check_bypasses(CacheCall &c, const PreparedQuery &q, const std::function<void()> &need_spi) {
  if (q.uncacheable) {
    if (settings.uncacheable == kUncacheableError)
      throw Error(sqlstate::kFeatureNotSupported, q.reason, q.detail, q.hint);
    c.bypass(Bypass::kUncacheable);
  } else if (RecoveryInProgress()) {
    c.bypass(Bypass::kHotStandby);
  } else if (IsolationUsesXactSnapshot()) {
    c.bypass(Bypass::kIsolationLevel);
  } else {
    // (changed_in_transaction also answers true after invalidate_all().)
    bool wrote = changed_in_transaction(InvalidOid);
    for (Oid d : q.deps) wrote = wrote || changed_in_transaction(d);
    if (wrote) c.bypass(Bypass::kWriteInTransaction);
    if (c.use_cache && prepared_scan_needed(MyDatabaseId)) {
      need_spi();
      if (!register_prepared_after_restart()) c.bypass(Bypass::kPreparedTransaction);
    }
    if (c.use_cache && pg_call([] { return database_in_doubt(MyDatabaseId); }))
      c.bypass(Bypass::kPreparedTransaction);
  }
}

void build_query_key(CacheCall &c, const PreparedQuery &q,
                     const std::vector<std::optional<std::string>> &params, const std::string &ns) {
  clear_last_dependencies();
  if (!c.use_cache) return;
  // (The transparent path's statement already has a snapshot here.)
  debug_pause(kPauseBeforeGenerations);
  KeyMaterial km;
  km.add_u64('S', GetSystemIdentifier());
  km.add_u64('D', MyDatabaseId);
  km.add_u64('E', server_epoch());
  km.add('A', q.analysed_digest);
  km.add_u64('U', GetUserId());
  if (q.reads_session_user) km.add_u64('L', GetSessionUserId());
  km.add('N', ns);
  for (size_t i = 0; i < params.size(); ++i) {
    km.add_u64('T', i < q.param_types.size() ? q.param_types[i] : InvalidOid);
    if (params[i])
      km.add('P', *params[i]);
    else
      km.add_null('P');
  }
  KeyMaterial gens;
  Generation db = read_generation(MyDatabaseId, InvalidOid);
  gens.add_u64('d', db.value);
  gens.add_u64('o', db.overflow ? 1 : 0);
  // Per dependency the table generation, or for a table watched by a
  // column whose values the query fixes, its structural generation and
  // the counters of those values' buckets (value_plan.h).
  c.call.scope = add_dependency_generations(q, params, gens) ? 'v' : 't';
  km.add('G', gens.bytes());
  // Read once, for the key and the context.
  KeyMaterial set;
  add_settings(set, q.row_security || q.reads_settings);
  km.add('Z', set.bytes());
  c.key = build_key(settings.key_prefix, keyspace::kQuery, sha256_hex(km.bytes()));
  if (c.lenient) c.context = context_of(set);
  c.call.generations_digest = std::hash<std::string>{}(gens.bytes());
}

std::string key_context(const PreparedQuery &q) {
  KeyMaterial set;
  add_settings(set, q.row_security || q.reads_settings);
  return context_of(set);
}

namespace {

// False for an error reply the call tolerates (CacheCall::lenient); raises
// the others, as check_reply does.
bool reply_usable(const CacheCall &c, const RedisReply &reply) {
  if (reply.is_error() && c.lenient && !settings.strict) return false;
  check_reply(reply);
  return true;
}

}  // namespace

void look_up(CacheCall &c, const std::function<bool(const std::string &)> &serve_bytes) {
  if (!c.use_cache) return;
  auto serve = [&](const std::string &stored) {
    if (!serve_bytes(stored)) return false;
    c.call.outcome = Outcome::kHit;
    c.call.bytes = stored.size();
    return true;
  };
  const std::string &key = c.key;
  // L1 first: its entry under this key is as fresh as Redis' (l1_cache.h),
  // also while Redis is down.
  c.l1_on = l1_active();
  auto serve_l1 = [&] {
    std::string value;
    if (!l1_lookup(key, value) || !serve(value)) return false;
    c.call.l1_hit = true;
    return true;
  };
  // Redis: false when it is unavailable. A hit fills L1 for the time the
  // Redis entry has left, so that L1 never keeps it longer.
  auto serve_redis = [&] {
    if (!c.l1_on) {
      auto reply = run(RedisTarget::kCache, {"GET", key});
      if (!reply || !reply_usable(c, *reply)) return false;
      if (!reply->is_nil()) serve(reply->str);
      return true;
    }
    const int64_t sent = l1_clock_ms();
    auto replies = run_pipeline(RedisTarget::kCache, {{"GET", key}, {"PTTL", key}});
    if (!replies) return false;
    const RedisReply &value = (*replies)[0];
    if (!reply_usable(c, value)) return false;
    // PTTL: -2 gone since the GET, -1 no expiry (not set by cached_query).
    // An error (a Redis ACL allowing GET and SET only) leaves L1 unfilled:
    // it must not fail a call that Redis answered.
    const RedisReply &remaining = (*replies)[1];
    const long long pttl = remaining.is_error() ? -2 : remaining.integer;
    const int64_t ttl_ms = pttl == -1 ? int64_t{settings.max_ttl} * 1000 : pttl;
    if (!value.is_nil() && serve(value.str) && ttl_ms > 0) l1_store(key, value.str, sent + ttl_ms);
    return true;
  };
  if (c.l1_on) serve_l1();
  if (c.call.outcome != Outcome::kHit && !serve_redis()) c.bypass(Bypass::kRedisUnavailable);

  // A miss while another session runs the same key: wait for its result
  // (bounded), then look again; otherwise this call runs the query and
  // holds the key's lease until it has stored the result (leases.h).
  if (c.use_cache && c.call.outcome == Outcome::kMiss && settings.coalesce_wait_ms > 0) {
    debug_pause(kPauseBeforeLease);
    LeaseOutcome lo = take_lease(key);
    auto serve_again = [&] {
      if ((c.l1_on && serve_l1()) || (serve_redis() && c.call.outcome == Outcome::kHit))
        count_coalesced();
    };
    if (lo == LeaseOutcome::kOwner) {
      c.lease_held = true;
    } else if (lo == LeaseOutcome::kOwnerLookAgain) {
      c.lease_held = true;
      serve_again();
      if (c.call.outcome == Outcome::kHit) c.release();  // waiters find it too
    } else if (lo == LeaseOutcome::kWait) {
      const int wait_ms = settings.coalesce_wait_ms;
      const char *k = key.c_str();
      // No C++ objects in the frame a query cancel would longjmp over.
      bool released = pg_call([&] { return wait_for_lease(k, wait_ms); });
      if (released) serve_again();
    }
  }
}

void store_result(CacheCall &c, const std::string &value, int ttl) {
  c.call.bytes = value.size();
  debug_pause(kPauseBeforeStore);
  const int64_t sent = l1_clock_ms();
  auto reply = run(RedisTarget::kCache, {"SET", c.key, value, "EX", std::to_string(ttl)});
  if (reply && !reply_usable(c, *reply)) return;  // not stored: nor in L1
  c.stored = reply.has_value();
  if (c.l1_on) l1_store(c.key, value, sent + int64_t{ttl} * 1000);
}

// Capped by cachekit.max_ttl: any caller chooses the ttl, and how long an
// entry may live (in Redis memory, and past whatever Redis did not hear of)
// is the DBA's to bound.
int result_ttl(std::optional<int> ttl, const std::string &ns) {
  return std::min(requested_ttl(ttl, ns), settings.max_ttl);
}

std::string last_outcome = "none";

std::string outcome_text(const QueryCall &call) {
  if (call.outcome == Outcome::kHit) return "hit";
  if (call.outcome == Outcome::kMiss) return "miss";
  return std::string("bypass:") + bypass_name(call.bypass);
}

std::vector<Oid> output_functions(const std::vector<Oid> &types) {
  std::vector<Oid> out(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    bool varlena;
    Oid t = types[i];
    pg_call([&] { getTypeOutputInfo(t, &out[i], &varlena); });
  }
  return out;
}

std::vector<std::string> key_settings_listed() {
  std::vector<std::string> names;
  if (settings.key_settings == nullptr) return names;
  std::string list = settings.key_settings;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    std::string name =
        list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    if (!name.empty()) names.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

std::vector<std::string> key_setting_names() {
  return std::vector<std::string>(std::begin(kOutputSettings), std::end(kOutputSettings));
}

}  // namespace cachekit::pg
