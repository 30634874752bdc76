#include "core/health_rules.h"

namespace cachekit {

const char *health_status_name(HealthStatus s) {
  switch (s) {
    case HealthStatus::kOff:
      return "off";
    case HealthStatus::kOk:
      return "ok";
    case HealthStatus::kDegraded:
      return "degraded";
    case HealthStatus::kDown:
      return "down";
  }
  return "down";
}

int health_status_value(HealthStatus s) {
  switch (s) {
    case HealthStatus::kOff:
      return -1;
    case HealthStatus::kOk:
      return 0;
    case HealthStatus::kDegraded:
      return 1;
    case HealthStatus::kDown:
      return 2;
  }
  return 2;
}

namespace {

template <typename It>
HealthStatus worst_of(It begin, It end) {
  HealthStatus worst = HealthStatus::kOff;
  for (It it = begin; it != end; ++it)
    if (static_cast<int>(*it) > static_cast<int>(worst)) worst = *it;
  return worst;
}

}  // namespace

HealthStatus worst_status(std::initializer_list<HealthStatus> statuses) {
  return worst_of(statuses.begin(), statuses.end());
}

HealthStatus worst_status(const std::vector<HealthStatus> &statuses) {
  return worst_of(statuses.begin(), statuses.end());
}

HealthStatus redis_status(bool reachable, bool circuit_open, bool circuit_half_open) {
  if (!reachable || circuit_open) return HealthStatus::kDown;
  if (circuit_half_open) return HealthStatus::kDegraded;
  return HealthStatus::kOk;
}

HealthStatus relay_status(bool running) {
  return running ? HealthStatus::kOk : HealthStatus::kDown;
}

HealthStatus executors_status(int wanted, int running) {
  if (wanted <= 0) return HealthStatus::kOff;
  if (running >= wanted) return HealthStatus::kOk;
  if (running <= 0) return HealthStatus::kDown;
  return HealthStatus::kDegraded;
}

HealthStatus outbox_status(int64_t depth, double oldest_age_s, bool relay_running) {
  if (depth <= 0) return HealthStatus::kOk;
  if (!relay_running) return HealthStatus::kDown;
  // NaN (an unknown age) is not evidence of lag.
  if (oldest_age_s >= kOutboxDegradedAgeSeconds) return HealthStatus::kDegraded;
  return HealthStatus::kOk;
}

HealthStatus queue_status(bool paused, int64_t runnable, double oldest_runnable_s, int executors) {
  if (runnable > 0 && executors <= 0) return HealthStatus::kDown;
  if (paused) return HealthStatus::kDegraded;
  if (runnable > 0 && oldest_runnable_s >= kQueueDegradedAgeSeconds) return HealthStatus::kDegraded;
  return HealthStatus::kOk;
}

HealthStatus cdn_provider_status(const CdnProviderHealthInput &in) {
  const bool waiting = in.waiting_items > 0;
  if (!in.configured || !in.enabled) return waiting ? HealthStatus::kDegraded : HealthStatus::kOff;
  const bool unreachable = in.ever_attempted && !in.last_reachable;
  if (unreachable && waiting) return HealthStatus::kDown;
  if (unreachable || in.failed_batches_recent > 0 || in.throttled_recent)
    return HealthStatus::kDegraded;
  return HealthStatus::kOk;
}

}  // namespace cachekit
