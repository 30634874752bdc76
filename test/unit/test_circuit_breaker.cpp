#include <gtest/gtest.h>

#include <string>

#include "core/circuit_breaker.h"

namespace cachekit {
namespace {

using State = CircuitBreaker::State;

TEST(CircuitBreaker, StartsClosedAndAllowsCalls) {
  CircuitBreaker b(1000);
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_EQ(b.retry_interval(), 1000);
  EXPECT_TRUE(b.allow(0));
  EXPECT_TRUE(b.allow(123456));
  EXPECT_EQ(b.consecutive_failures(), 0u);
  EXPECT_EQ(b.outages(), 0u);
  EXPECT_FALSE(b.take_outage_warning()) << "no outage, nothing to warn about";
}

TEST(CircuitBreaker, FailureOpensAndRefusesUntilIntervalPassed) {
  CircuitBreaker b(1000);
  b.record_failure(5000);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.open_until_ms(), 6000);
  EXPECT_EQ(b.consecutive_failures(), 1u);
  EXPECT_EQ(b.outages(), 1u);
  EXPECT_FALSE(b.allow(5000));
  EXPECT_FALSE(b.allow(5500));
  EXPECT_FALSE(b.allow(5999));
  EXPECT_EQ(b.state(), State::kOpen);
  // Exactly at the deadline one call goes through.
  EXPECT_TRUE(b.allow(6000));
  EXPECT_EQ(b.state(), State::kHalfOpen);
}

TEST(CircuitBreaker, HalfOpenLetsExactlyOneCallThrough) {
  CircuitBreaker b(100);
  b.record_failure(0);
  EXPECT_TRUE(b.allow(250));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.allow(250));
  EXPECT_FALSE(b.allow(10000));
  EXPECT_EQ(b.state(), State::kHalfOpen);
}

TEST(CircuitBreaker, SuccessInHalfOpenCloses) {
  CircuitBreaker b(100);
  b.record_failure(0);
  ASSERT_TRUE(b.allow(100));
  b.record_success();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_EQ(b.consecutive_failures(), 0u);
  EXPECT_EQ(b.outages(), 1u);
  EXPECT_TRUE(b.allow(100));
  EXPECT_TRUE(b.allow(101));
}

TEST(CircuitBreaker, FailureInHalfOpenReopensForAFullInterval) {
  CircuitBreaker b(100);
  b.record_failure(0);
  ASSERT_TRUE(b.allow(150));
  b.record_failure(170);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_EQ(b.open_until_ms(), 270);
  EXPECT_EQ(b.consecutive_failures(), 2u);
  EXPECT_EQ(b.outages(), 1u) << "still the same outage";
  EXPECT_FALSE(b.allow(171));
  EXPECT_FALSE(b.allow(269));
  EXPECT_TRUE(b.allow(270));
  EXPECT_EQ(b.state(), State::kHalfOpen);
}

TEST(CircuitBreaker, OutageWarningOncePerOutage) {
  CircuitBreaker b(100);
  b.record_failure(0);
  EXPECT_TRUE(b.take_outage_warning());
  EXPECT_FALSE(b.take_outage_warning());
  // More failures in the same outage: still no second warning.
  ASSERT_TRUE(b.allow(100));
  b.record_failure(100);
  EXPECT_FALSE(b.take_outage_warning());
  EXPECT_FALSE(b.take_outage_warning());
  // Recovery re-arms the warning for the next outage.
  ASSERT_TRUE(b.allow(200));
  b.record_success();
  EXPECT_FALSE(b.take_outage_warning());
  b.record_failure(300);
  EXPECT_EQ(b.outages(), 2u);
  EXPECT_TRUE(b.take_outage_warning());
  EXPECT_FALSE(b.take_outage_warning());
}

TEST(CircuitBreaker, OutagesCountsClosedToOpenTransitions) {
  CircuitBreaker b(10);
  int64_t now = 0;
  for (int outage = 1; outage <= 3; ++outage) {
    b.record_failure(now);
    EXPECT_EQ(b.outages(), static_cast<uint64_t>(outage));
    for (int retry = 0; retry < 2; ++retry) {
      now += 10;
      ASSERT_TRUE(b.allow(now));
      b.record_failure(now);
    }
    EXPECT_EQ(b.outages(), static_cast<uint64_t>(outage));
    EXPECT_EQ(b.consecutive_failures(), 3u);
    now += 10;
    ASSERT_TRUE(b.allow(now));
    b.record_success();
  }
  EXPECT_EQ(b.outages(), 3u);
}

TEST(CircuitBreaker, FailureWhileOpenExtendsTheInterval) {
  // A health probe may fail while the breaker is open.
  CircuitBreaker b(100);
  b.record_failure(0);
  b.record_failure(50);
  EXPECT_EQ(b.open_until_ms(), 150);
  EXPECT_EQ(b.outages(), 1u);
  EXPECT_FALSE(b.allow(120));
  EXPECT_TRUE(b.allow(150));
}

TEST(CircuitBreaker, SuccessWhileOpenCloses) {
  // A successful health probe closes an open breaker at once.
  CircuitBreaker b(100000);
  b.record_failure(0);
  b.record_success();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_TRUE(b.allow(1));
}

TEST(CircuitBreaker, ZeroIntervalRetriesImmediately) {
  CircuitBreaker b(0);
  b.record_failure(42);
  EXPECT_EQ(b.state(), State::kOpen);
  EXPECT_TRUE(b.allow(42));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  EXPECT_FALSE(b.allow(42));
}

TEST(CircuitBreaker, IntervalChangeAppliesToTheNextFailure) {
  CircuitBreaker b(100);
  b.set_retry_interval(5000);
  EXPECT_EQ(b.retry_interval(), 5000);
  b.record_failure(1000);
  EXPECT_EQ(b.open_until_ms(), 6000);
  EXPECT_FALSE(b.allow(5999));
}

TEST(CircuitBreaker, IntervalChangeWhileOpenTakesEffectAtOnce) {
  CircuitBreaker b(60000);
  b.record_failure(1000);
  EXPECT_FALSE(b.allow(2000));
  b.set_retry_interval(100);  // counted from the failure, not from now
  EXPECT_EQ(b.open_until_ms(), 1100);
  EXPECT_TRUE(b.allow(2000));
  EXPECT_EQ(b.state(), State::kHalfOpen);
  b.record_failure(2000);
  b.set_retry_interval(5000);  // lengthening works the same way
  EXPECT_FALSE(b.allow(6999));
  EXPECT_TRUE(b.allow(7000));
}

TEST(CircuitBreaker, ResetForgetsTheOutageButKeepsTheCount) {
  CircuitBreaker b(1000);
  b.record_failure(0);
  EXPECT_TRUE(b.take_outage_warning());
  b.reset();
  EXPECT_EQ(b.state(), State::kClosed);
  EXPECT_EQ(b.consecutive_failures(), 0u);
  EXPECT_EQ(b.outages(), 1u);
  EXPECT_TRUE(b.allow(1));
  b.record_failure(2);
  EXPECT_EQ(b.outages(), 2u);
  EXPECT_TRUE(b.take_outage_warning());
}

TEST(CircuitBreaker, StateNames) {
  EXPECT_EQ(std::string(CircuitBreaker::state_name(State::kClosed)), "closed");
  EXPECT_EQ(std::string(CircuitBreaker::state_name(State::kOpen)), "open");
  EXPECT_EQ(std::string(CircuitBreaker::state_name(State::kHalfOpen)), "half-open");
}

}  // namespace
}  // namespace cachekit
