// One look at a Redis endpoint for health() and the metrics: PING (timed),
// then INFO. The probe ignores an open circuit breaker (it is a diagnostic)
// but its outcome feeds the breaker like any call.
#pragma once

#include <string>

#include "core/circuit_breaker.h"
#include "core/health_rules.h"
#include "core/metrics_text.h"
#include "pg/redis_conn.h"

namespace cachekit::pg {

struct RedisProbe {
  const char *name;  // "redis" (the cache) or "session_redis"
  std::string address;
  int db = 0;
  bool reachable = false;
  double rtt_ms = 0;
  std::string info;   // INFO's text when reachable
  std::string error;  // why not reachable
  CircuitBreaker::State breaker = CircuitBreaker::State::kClosed;
  int consecutive_failures = 0;
  uint64_t outages = 0;
  int retry_interval_ms = 0;
  HealthStatus status = HealthStatus::kDown;
};

RedisProbe probe_redis(RedisTarget target);

// The cachekit_redis_* series of a probe (label endpoint = cache | session).
void add_redis_samples(MetricSamples &out, const RedisProbe &p);

}  // namespace cachekit::pg
