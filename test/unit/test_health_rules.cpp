#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/health_rules.h"

namespace cachekit {
namespace {

constexpr HealthStatus kOff = HealthStatus::kOff;
constexpr HealthStatus kOk = HealthStatus::kOk;
constexpr HealthStatus kDegraded = HealthStatus::kDegraded;
constexpr HealthStatus kDown = HealthStatus::kDown;

TEST(HealthRules, NamesAndValues) {
  EXPECT_STREQ(health_status_name(kOff), "off");
  EXPECT_STREQ(health_status_name(kOk), "ok");
  EXPECT_STREQ(health_status_name(kDegraded), "degraded");
  EXPECT_STREQ(health_status_name(kDown), "down");
  EXPECT_EQ(health_status_value(kOff), -1);
  EXPECT_EQ(health_status_value(kOk), 0);
  EXPECT_EQ(health_status_value(kDegraded), 1);
  EXPECT_EQ(health_status_value(kDown), 2);
}

TEST(HealthRules, WorstIgnoresOff) {
  EXPECT_EQ(worst_status({}), kOff);
  EXPECT_EQ(worst_status({kOff, kOff}), kOff);
  EXPECT_EQ(worst_status({kOff, kOk}), kOk);
  EXPECT_EQ(worst_status({kOk, kOff}), kOk);
  EXPECT_EQ(worst_status({kOk, kDegraded, kOk}), kDegraded);
  EXPECT_EQ(worst_status({kDown, kDegraded, kOff, kOk}), kDown);
  EXPECT_EQ(worst_status({kDegraded, kOff}), kDegraded);
  EXPECT_EQ(worst_status(std::vector<HealthStatus>{}), kOff);
  EXPECT_EQ(worst_status(std::vector<HealthStatus>{kOff, kDegraded, kOk}), kDegraded);
  EXPECT_EQ(worst_status(std::vector<HealthStatus>{kOk, kDown}), kDown);
}

TEST(HealthRules, Redis) {
  EXPECT_EQ(redis_status(true, false, false), kOk);
  EXPECT_EQ(redis_status(true, false, true), kDegraded);
  EXPECT_EQ(redis_status(true, true, false), kDown);
  EXPECT_EQ(redis_status(false, false, false), kDown);
  EXPECT_EQ(redis_status(false, false, true), kDown);
  EXPECT_EQ(redis_status(false, true, false), kDown);
}

TEST(HealthRules, RelayAndLauncher) {
  EXPECT_EQ(relay_status(true), kOk);
  EXPECT_EQ(relay_status(false), kDown);
}

TEST(HealthRules, Executors) {
  EXPECT_EQ(executors_status(0, 0), kOff);
  EXPECT_EQ(executors_status(0, 1), kOff);
  EXPECT_EQ(executors_status(-1, 0), kOff);
  EXPECT_EQ(executors_status(4, 4), kOk);
  EXPECT_EQ(executors_status(4, 5), kOk) << "one leaving after a settings change";
  EXPECT_EQ(executors_status(4, 3), kDegraded);
  EXPECT_EQ(executors_status(4, 1), kDegraded);
  EXPECT_EQ(executors_status(4, 0), kDown);
  EXPECT_EQ(executors_status(1, 0), kDown);
}

TEST(HealthRules, Outbox) {
  EXPECT_EQ(kOutboxDegradedAgeSeconds, 60);
  EXPECT_EQ(outbox_status(0, 0, true), kOk);
  EXPECT_EQ(outbox_status(0, 0, false), kOk) << "empty needs no relay";
  EXPECT_EQ(outbox_status(10, 59.9, true), kOk);
  EXPECT_EQ(outbox_status(10, 60, true), kDegraded);
  EXPECT_EQ(outbox_status(1, 3600, true), kDegraded);
  EXPECT_EQ(outbox_status(1, 0.5, false), kDown);
  EXPECT_EQ(outbox_status(1, 3600, false), kDown);
  EXPECT_EQ(outbox_status(1, std::nan(""), true), kOk);
}

TEST(HealthRules, Queue) {
  EXPECT_EQ(kQueueDegradedAgeSeconds, 300);
  EXPECT_EQ(queue_status(false, 0, 0, 2), kOk);
  EXPECT_EQ(queue_status(false, 0, 0, 0), kOk) << "nothing to run needs no executors";
  EXPECT_EQ(queue_status(false, 5, 10, 2), kOk);
  EXPECT_EQ(queue_status(false, 5, 299.9, 2), kOk);
  EXPECT_EQ(queue_status(false, 5, 300, 2), kDegraded);
  EXPECT_EQ(queue_status(true, 0, 0, 2), kDegraded);
  EXPECT_EQ(queue_status(true, 5, 10, 2), kDegraded);
  EXPECT_EQ(queue_status(false, 1, 0, 0), kDown);
  EXPECT_EQ(queue_status(false, 1, 1000, 0), kDown);
  EXPECT_EQ(queue_status(true, 1, 0, 0), kDown) << "nothing would run it once resumed either";
}

CdnProviderHealthInput cdn(bool configured, bool enabled, bool tried, bool reachable,
                           int64_t waiting, int64_t failed, bool throttled) {
  return CdnProviderHealthInput{configured, enabled, tried, reachable, waiting, failed, throttled};
}

TEST(HealthRules, CdnProvider) {
  EXPECT_EQ(kCdnRecentWindowSeconds, 900);
  // Not configured or disabled.
  EXPECT_EQ(cdn_provider_status(cdn(false, false, false, false, 0, 0, false)), kOff);
  EXPECT_EQ(cdn_provider_status(cdn(false, true, false, false, 0, 0, false)), kOff);
  EXPECT_EQ(cdn_provider_status(cdn(true, false, true, true, 0, 0, false)), kOff);
  EXPECT_EQ(cdn_provider_status(cdn(true, false, true, true, 3, 0, false)), kDegraded)
      << "work waiting for a disabled provider does not go out";
  // Configured and enabled.
  EXPECT_EQ(cdn_provider_status(cdn(true, true, false, false, 0, 0, false)), kOk) << "never tried";
  EXPECT_EQ(cdn_provider_status(cdn(true, true, false, false, 5, 0, false)), kOk)
      << "never tried, work waiting for its first batch";
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, true, 5, 0, false)), kOk);
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, true, 0, 1, false)), kDegraded);
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, true, 0, 0, true)), kDegraded);
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, false, 0, 2, false)), kDegraded)
      << "unreachable but nothing waiting";
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, false, 0, 0, false)), kDegraded);
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, false, 1, 0, false)), kDown);
  EXPECT_EQ(cdn_provider_status(cdn(true, true, true, false, 1, 4, true)), kDown);
}

}  // namespace
}  // namespace cachekit
