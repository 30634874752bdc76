// The key/value cache functions (cachekit.cache_*).
//
// Keys live under <key_prefix>kv:<namespace>:<key> (pg/kv_keys.h). Values are stored as raw bytes
// so application code reading the same keys sees exactly what SQL wrote (see core/value_codec.h).
// When Redis is unavailable, reads return NULL (a miss), existence tests false, and writes are
// skipped (false / 0 / NULL), with one WARNING per outage; cachekit.strict = on turns that into an
// error.
#include <string>
#include <string_view>
#include <vector>

#include "core/keys.h"
#include "core/value_codec.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/kv_keys.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kClearBatch = 1000;

std::string redis_key(const Arg &key) { return kv_key(required(key, "key")); }

Datum cache_set(FunctionCallInfo fcinfo, const Arg &key, const Arg &value) {
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(key);
    std::string_view v = required(value, "value");
    check_value_size(v.size(), static_cast<size_t>(settings.max_value_bytes));
    std::string ttl = std::to_string(ttl_arg(fcinfo, 2, settings.default_ttl));
    auto reply = run(RedisTarget::kCache, {"SET", k, v, "EX", ttl});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    count(CacheCounter::kSets);
    count(CacheCounter::kBytesOut, v.size());
    PG_RETURN_BOOL(true);
  });
}

enum class As { kText, kBytea, kJsonb };

Datum cache_get(FunctionCallInfo fcinfo, As as) {
  Arg key = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(key);
    count(CacheCounter::kGets);
    auto reply = run(RedisTarget::kCache, {"GET", k});
    if (reply) check_reply(*reply);
    if (!reply || reply->is_nil()) {
      count(CacheCounter::kMisses);
      PG_RETURN_NULL();
    }
    count(CacheCounter::kHits);
    count(CacheCounter::kBytesIn, reply->str.size());
    switch (as) {
      case As::kText:
        check_text(reply->str);
        return text_datum(reply->str);
      case As::kBytea:
        return bytea_datum(reply->str);
      case As::kJsonb:
        return jsonb_datum(reply->str);
    }
    PG_RETURN_NULL();
  });
}

}  // namespace

CK_SQL_FUNCTION(ck_cache_set_text) {
  return cache_set(fcinfo, varlena_arg(fcinfo, 0), varlena_arg(fcinfo, 1));
}

CK_SQL_FUNCTION(ck_cache_set_bytea) {
  return cache_set(fcinfo, varlena_arg(fcinfo, 0), varlena_arg(fcinfo, 1));
}

CK_SQL_FUNCTION(ck_cache_set_jsonb) {
  return cache_set(fcinfo, varlena_arg(fcinfo, 0), jsonb_arg(fcinfo, 1));
}

CK_SQL_FUNCTION(ck_cache_get) { return cache_get(fcinfo, As::kText); }
CK_SQL_FUNCTION(ck_cache_get_bytea) { return cache_get(fcinfo, As::kBytea); }
CK_SQL_FUNCTION(ck_cache_get_jsonb) { return cache_get(fcinfo, As::kJsonb); }

CK_SQL_FUNCTION(ck_cache_delete) {
  // Deconstruct the VARIADIC array before entering C++ code.
  Datum *elems = nullptr;
  bool *nulls = nullptr;
  int n = 0;
  bool array_null = PG_ARGISNULL(0);
  if (!array_null)
    deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls,
                      &n);
  return cpp_entry([&]() -> Datum {
    if (array_null) throw Error(sqlstate::kNullValueNotAllowed, "keys must not be NULL");
    if (n == 0) PG_RETURN_INT32(0);
    std::vector<std::string> keys;
    keys.reserve(n);
    for (int i = 0; i < n; ++i) {
      if (nulls[i]) throw Error(sqlstate::kNullValueNotAllowed, "key must not be NULL");
      text *t = reinterpret_cast<text *>(DatumGetPointer(elems[i]));
      keys.push_back(redis_key(Arg{VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), false}));
    }
    RedisArgv argv{"UNLINK"};
    for (const auto &k : keys) argv.push_back(k);
    auto reply = run(RedisTarget::kCache, argv);
    if (!reply) PG_RETURN_INT32(0);
    check_reply(*reply);
    count(CacheCounter::kDeletes, static_cast<uint64_t>(reply->integer));
    PG_RETURN_INT32(static_cast<int32>(reply->integer));
  });
}

CK_SQL_FUNCTION(ck_cache_exists) {
  Arg key = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    auto reply = run(RedisTarget::kCache, {"EXISTS", redis_key(key)});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    PG_RETURN_BOOL(reply->integer > 0);
  });
}

CK_SQL_FUNCTION(ck_cache_ttl) {
  Arg key = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    auto reply = run(RedisTarget::kCache, {"TTL", redis_key(key)});
    if (reply) check_reply(*reply);
    // Redis answers -2 for a missing key, -1 for a key without expiry.
    if (!reply || reply->integer == -2) PG_RETURN_NULL();
    PG_RETURN_INT32(static_cast<int32>(reply->integer));
  });
}

CK_SQL_FUNCTION(ck_cache_expire) {
  Arg key = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(key);
    if (PG_ARGISNULL(1)) throw Error(sqlstate::kNullValueNotAllowed, "ttl must not be NULL");
    std::string ttl = std::to_string(ttl_arg(fcinfo, 1, 0));
    auto reply = run(RedisTarget::kCache, {"EXPIRE", k, ttl});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    PG_RETURN_BOOL(reply->integer == 1);
  });
}

CK_SQL_FUNCTION(ck_cache_incr) {
  Arg key = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(key);
    if (PG_ARGISNULL(1)) throw Error(sqlstate::kNullValueNotAllowed, "increment must not be NULL");
    std::string by = std::to_string(PG_GETARG_INT64(1));
    std::string ttl = std::to_string(ttl_arg(fcinfo, 2, settings.default_ttl));
    // EXPIRE ... NX gives a new counter the ttl without extending a live one.
    auto replies = run_pipeline(RedisTarget::kCache, {{"INCRBY", k, by}, {"EXPIRE", k, ttl, "NX"}});
    if (!replies) PG_RETURN_NULL();
    const RedisReply &r = (*replies)[0];
    if (r.is_error() && r.str.rfind("WRONGTYPE", 0) != 0)
      throw Error(sqlstate::kNumericValueOutOfRange, "cached value cannot be incremented", r.str,
                  "cache_incr works on keys holding a 64-bit integer, or on missing keys.");
    check_reply(r);
    count(CacheCounter::kSets);
    PG_RETURN_INT64(r.integer);
  });
}

CK_SQL_FUNCTION(ck_cache_clear) {
  Arg prefix = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string_view p = required(prefix, "prefix");
    std::string pattern = kv_prefix_pattern(p);
    std::string cursor = "0";
    int64 deleted = 0;
    // SCAN + UNLINK in batches: never KEYS, which blocks Redis for the whole
    // keyspace. Keys written during the scan may or may not be removed.
    do {
      check_for_interrupts();
      auto reply = run(RedisTarget::kCache,
                       {"SCAN", cursor, "MATCH", pattern, "COUNT", std::to_string(kClearBatch)});
      if (!reply) break;
      check_reply(*reply);
      if (reply->elements.size() != 2)
        throw Error(sqlstate::kSystemError, "unexpected reply from Redis to SCAN");
      cursor = reply->elements[0].str;
      const auto &found = reply->elements[1].elements;
      if (found.empty()) continue;
      RedisArgv argv{"UNLINK"};
      for (const auto &k : found) argv.push_back(k.str);
      auto unlinked = run(RedisTarget::kCache, argv);
      if (!unlinked) break;
      check_reply(*unlinked);
      deleted += unlinked->integer;
    } while (cursor != "0");
    count(CacheCounter::kDeletes, static_cast<uint64_t>(deleted));
    PG_RETURN_INT64(deleted);
  });
}
