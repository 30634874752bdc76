// cachekit.health(): is Redis reachable, how fast, how full, and what the
// backend's circuit breaker thinks. The probe ignores an open breaker (it is
// a diagnostic) but its outcome feeds the breaker like any call.
#include <chrono>
#include <string>

#include "core/json.h"
#include "core/redis_client.h"
#include "pg/datum.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
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

CK_SQL_FUNCTION(ck_health) {
  return cpp_entry([&]() -> Datum {
    bool cache_ok = false, session_ok = false;
    std::string cache = endpoint_health(RedisTarget::kCache, &cache_ok);
    std::string session = endpoint_health(RedisTarget::kSession, &session_ok);
    bool healthy = cache_ok && session_ok;
    std::string doc = "{\"healthy\": " + std::string(healthy ? "true" : "false") +
                      ", \"redis\": " + cache + ", \"session_redis\": " + session +
                      ", \"shared_preload_libraries\": " + (shmem_available() ? "true" : "false") +
                      "}";
    return jsonb_datum(doc);
  });
}
