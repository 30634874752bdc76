// cachekit.health(): is Redis reachable, how fast, how full, and what the
// backend's circuit breaker thinks. The probe ignores an open breaker (it is
// a diagnostic) but its outcome feeds the breaker like any call.
#include <chrono>
#include <string>

#include "core/json.h"
#include "core/redis_client.h"
#include "pg/relay_state.h"
#include "pg/datum.h"
#include "pg/query_plan.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "lib/stringinfo.h"
#include "utils/json.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

// Value of `field` in the text of INFO ("field:value\r\n" lines).
std::string info_field(const std::string &info, const std::string &field) {
  std::string needle = field + ":";
  size_t pos = 0;
  while ((pos = info.find(needle, pos)) != std::string::npos) {
    if (pos == 0 || info[pos - 1] == '\n') {
      size_t start = pos + needle.size();
      size_t end = info.find_first_of("\r\n", start);
      return info.substr(start, end == std::string::npos ? std::string::npos : end - start);
    }
    pos += needle.size();
  }
  return {};
}

std::string json_number_or_null(const std::string &s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return "null";
  return s;
}

std::string endpoint_health(RedisTarget target, bool *reachable) {
  ResilientRedis &redis = redis_for(target);
  auto start = std::chrono::steady_clock::now();
  auto pong = redis.probe({"PING"});
  double rtt_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::string out = "{\"address\": " + json_quote(redis.endpoint().address()) +
                    ", \"db\": " + std::to_string(redis.endpoint().db);
  bool ok = pong && !pong->is_error();
  *reachable = ok;
  out += ", \"reachable\": " + std::string(ok ? "true" : "false");
  if (ok) {
    char rtt[32];
    snprintf(rtt, sizeof rtt, "%.3f", rtt_ms);
    out += ", \"rtt_ms\": " + std::string(rtt);
    auto info = redis.probe({"INFO"});
    std::string text = info && !info->is_error() ? info->str : std::string();
    out += ", \"server_version\": " + json_quote(info_field(text, "redis_version"));
    out += ", \"used_memory\": " + json_number_or_null(info_field(text, "used_memory"));
    out += ", \"maxmemory\": " + json_number_or_null(info_field(text, "maxmemory"));
    out += ", \"maxmemory_policy\": " + json_quote(info_field(text, "maxmemory_policy"));
  } else {
    out += ", \"error\": " + json_quote(pong ? pong->str : redis.last_error());
  }
  const CircuitBreaker &b = redis.breaker();
  out += ", \"circuit_breaker\": {\"state\": " + json_quote(CircuitBreaker::state_name(b.state())) +
         ", \"consecutive_failures\": " + std::to_string(b.consecutive_failures()) +
         ", \"outages\": " + std::to_string(b.outages()) +
         ", \"retry_interval_ms\": " + std::to_string(b.retry_interval()) + "}}";
  return out;
}

}  // namespace

// Trigger-driven invalidation: counters and what waits in the outbox of this
// database (the outbox is read as the extension owner would: health() is
// granted to cachekit_user, the table is not).
std::string invalidation_health() {
  std::string out = "{";
  const char *names[] = {"messages_published", "keys_deleted",        "patterns_flushed",
                         "outbox_written",     "delivered_at_commit", "delivered_by_worker",
                         "delivery_failures",  "keys_overflowed"};
  for (int i = 0; i < static_cast<int>(AppCounter::kCount); ++i)
    out += std::string(i ? ", " : "") + "\"" + names[i] +
           "\": " + std::to_string(app_counter(static_cast<AppCounter>(i)));
  int64 depth = -1;
  double oldest = -1;
  pg_call([&] {
    Oid outbox = get_relname_relid("outbox", get_namespace_oid("cachekit", true));
    if (outbox == InvalidOid) return;
    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(outbox));
    Oid owner = HeapTupleIsValid(tup) ? ((Form_pg_class)GETSTRUCT(tup))->relowner : save_user;
    if (HeapTupleIsValid(tup)) ReleaseSysCache(tup);
    SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
    if (SPI_connect() == SPI_OK_CONNECT) {
      // Runs as the outbox owner with the caller's search_path: every name
      // and operator is schema-qualified.
      if (SPI_execute("SELECT pg_catalog.count(*), pg_catalog.date_part('epoch',"
                      " pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-)"
                      " pg_catalog.min(created_at)) FROM cachekit.outbox",
                      true, 1) == SPI_OK_SELECT &&
          SPI_processed == 1) {
        bool isnull = false;
        depth =
            DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        char *age = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
        oldest = age ? strtod(age, nullptr) : -1;
      }
      SPI_finish();
    }
    SetUserIdAndSecContext(save_user, save_sec);
  });
  out += ", \"outbox_depth\": " + (depth >= 0 ? std::to_string(depth) : std::string("null"));
  char buf[32];
  snprintf(buf, sizeof buf, "%.3f", oldest);
  out += ", \"oldest_undelivered_s\": " + (oldest >= 0 ? std::string(buf) : std::string("null"));
  return out + "}";
}

CK_SQL_FUNCTION(ck_health) {
  return cpp_entry([&]() -> Datum {
    bool cache_ok = false, session_ok = false;
    std::string cache = endpoint_health(RedisTarget::kCache, &cache_ok);
    std::string session = endpoint_health(RedisTarget::kSession, &session_ok);
    bool healthy = cache_ok && session_ok;
    std::string doc = "{\"healthy\": " + std::string(healthy ? "true" : "false") +
                      ", \"redis\": " + cache + ", \"session_redis\": " + session +
                      ", \"shared_preload_libraries\": " + (shmem_available() ? "true" : "false") +
                      ", \"invalidation\": " + invalidation_health() +
                      ", \"prepared_queries\": " + prepared_queries_health() + "}";
    return jsonb_datum(doc);
  });
}
