// The session store (cachekit.session_*): jsonb documents under
// <key_prefix>sess:<namespace>:<sid> on the session Redis database, with a sliding ttl
// that the application extends with session_touch().
#include <string>

#include "core/keys.h"
#include "core/value_codec.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/kv_keys.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

using namespace cachekit;
using namespace cachekit::pg;

namespace {

std::string redis_key(const Arg &sid) { return session_key(required(sid, "session id")); }

}  // namespace

CK_SQL_FUNCTION(ck_session_set) {
  Arg sid = varlena_arg(fcinfo, 0);
  Arg data = jsonb_arg(fcinfo, 1);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(sid);
    std::string_view v = required(data, "session data");
    check_value_size(v.size(), static_cast<size_t>(settings.max_value_bytes));
    std::string ttl = std::to_string(ttl_arg(fcinfo, 2, settings.session_ttl));
    auto reply = run(RedisTarget::kSession, {"SET", k, v, "EX", ttl});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    count(CacheCounter::kSets);
    count(CacheCounter::kBytesOut, v.size());
    PG_RETURN_BOOL(true);
  });
}

CK_SQL_FUNCTION(ck_session_get) {
  Arg sid = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(sid);
    count(CacheCounter::kGets);
    auto reply = run(RedisTarget::kSession, {"GET", k});
    if (reply) check_reply(*reply);
    if (!reply || reply->is_nil()) {
      count(CacheCounter::kMisses);
      PG_RETURN_NULL();
    }
    count(CacheCounter::kHits);
    count(CacheCounter::kBytesIn, reply->str.size());
    return jsonb_datum(reply->str);
  });
}

CK_SQL_FUNCTION(ck_session_touch) {
  Arg sid = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    std::string k = redis_key(sid);
    std::string ttl = std::to_string(ttl_arg(fcinfo, 1, settings.session_ttl));
    auto reply = run(RedisTarget::kSession, {"EXPIRE", k, ttl});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    PG_RETURN_BOOL(reply->integer == 1);
  });
}

CK_SQL_FUNCTION(ck_session_delete) {
  Arg sid = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    auto reply = run(RedisTarget::kSession, {"UNLINK", redis_key(sid)});
    if (!reply) PG_RETURN_BOOL(false);
    check_reply(*reply);
    count(CacheCounter::kDeletes, static_cast<uint64_t>(reply->integer));
    PG_RETURN_BOOL(reply->integer == 1);
  });
}
