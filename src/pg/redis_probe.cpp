#include "pg/redis_probe.h"

#include <chrono>

#include "core/redis_info.h"

namespace cachekit::pg {

RedisProbe probe_redis(RedisTarget target) {
  RedisProbe p;
  p.name = target == RedisTarget::kCache ? "redis" : "session_redis";
  ResilientRedis &redis = redis_for(target);
  p.address = redis.endpoint().address();
  p.db = redis.endpoint().db;
  auto start = std::chrono::steady_clock::now();
  auto pong = redis.probe({"PING"});
  p.rtt_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  p.reachable = pong && !pong->is_error();
  if (p.reachable) {
    auto info = redis.probe({"INFO"});
    if (info && !info->is_error()) p.info = info->str;
  } else {
    p.error = pong ? pong->str : redis.last_error();
  }
  const CircuitBreaker &b = redis.breaker();
  p.breaker = b.state();
  p.consecutive_failures = b.consecutive_failures();
  p.outages = b.outages();
  p.retry_interval_ms = b.retry_interval();
  p.status = redis_status(p.reachable, p.breaker == CircuitBreaker::State::kOpen,
                          p.breaker == CircuitBreaker::State::kHalfOpen);
  return p;
}

void add_redis_samples(MetricSamples &out, const RedisProbe &p) {
  Labels l = {{"endpoint", p.name == std::string("redis") ? "cache" : "session"}};
  out.add("cachekit_redis_up", l, p.reachable ? 1 : 0);
  if (!p.reachable) return;
  out.add("cachekit_redis_rtt_seconds", l, p.rtt_ms / 1000.0);
  auto field = [&](const char *family, const char *name) {
    if (auto v = redis_info_number(p.info, name)) out.add(family, l, *v);
  };
  field("cachekit_redis_used_memory_bytes", "used_memory");
  field("cachekit_redis_maxmemory_bytes", "maxmemory");
  field("cachekit_redis_evicted_keys_total", "evicted_keys");
  field("cachekit_redis_expired_keys_total", "expired_keys");
}

}  // namespace cachekit::pg
