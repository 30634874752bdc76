// The health rules of cachekit.health() and GET /health (METRICS.md, "Health"), as pure
// functions of what the glue observed, so that both producers judge alike.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace cachekit {

// Outbox rows waiting this long mean delivery lags: degraded.
inline constexpr double kOutboxDegradedAgeSeconds = 60;
// A runnable task waiting this long means the queue lags: degraded.
inline constexpr double kQueueDegradedAgeSeconds = 300;
// Failed CDN batches or throttling within this window make a provider degraded (the glue
// counts failed_batches_recent and throttled_recent over it).
inline constexpr double kCdnRecentWindowSeconds = 15 * 60;

// Ordered by severity after kOff; kOff means "not configured" and never makes things worse.
enum class HealthStatus { kOff, kOk, kDegraded, kDown };

const char *health_status_name(HealthStatus s);  // "off", "ok", "degraded", "down"
int health_status_value(HealthStatus s);         // ok 0, degraded 1, down 2, off -1

// The worst of the statuses, off ignored; off when all are off (or none given).
HealthStatus worst_status(std::initializer_list<HealthStatus> statuses);
HealthStatus worst_status(const std::vector<HealthStatus> &statuses);

// redis / session_redis: unreachable or circuit open -> down; circuit half-open -> degraded.
HealthStatus redis_status(bool reachable, bool circuit_open, bool circuit_half_open);
// launcher / relay.
HealthStatus relay_status(bool running);
// wanted = cachekit.task_workers: 0 -> off; all running -> ok; some -> degraded; none -> down.
HealthStatus executors_status(int wanted, int running);
// Rows waiting with no relay -> down; oldest >= kOutboxDegradedAgeSeconds -> degraded.
HealthStatus outbox_status(int64_t depth, double oldest_age_s, bool relay_running);
// runnable > 0 with no executors -> down (even when paused: nothing would run it on resume);
// paused or oldest runnable >= kQueueDegradedAgeSeconds -> degraded.
HealthStatus queue_status(bool paused, int64_t runnable, double oldest_runnable_s, int executors);

struct CdnProviderHealthInput {
  bool configured;
  bool enabled;
  bool ever_attempted;
  bool last_reachable;
  int64_t waiting_items;
  int64_t failed_batches_recent;
  bool throttled_recent;
};
// Not configured or disabled: off with no waiting work, degraded with work waiting (it will not
// go out). Otherwise: last attempt unreachable with work waiting -> down; failed batches or
// throttling in the recent window, or a last attempt unreachable -> degraded; else ok.
HealthStatus cdn_provider_status(const CdnProviderHealthInput &in);

}  // namespace cachekit
