#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/backoff.h"
#include "core/cron.h"

namespace cachekit {
namespace {

int64_t utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return civil_to_seconds(CivilTime{y, mo, d, h, mi, s});
}

TEST(RetryDelay, FollowsTheAttemptToTheFourthCurveWithoutJitter) {
  const BackoffPolicy p{1.0, 1e9, 0.0};
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 1, 0.5), 1);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 2, 0.5), 16);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 3, 0.5), 81);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 5, 0.5), 625);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 10, 0.5), 10000);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 25, 0.5), 390625);
  const BackoffPolicy half{0.5, 1e9, 0.0};
  EXPECT_DOUBLE_EQ(retry_delay_seconds(half, 4, 0.9), 128);
  // u does not matter without jitter.
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 3, 0.0), retry_delay_seconds(p, 3, 0.999));
  // Attempts below 1 are the first attempt.
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 0, 0.5), 1);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, -3, 0.5), 1);
}

TEST(RetryDelay, IsCapped) {
  const BackoffPolicy p{1.0, 3600, 0.0};
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 7, 0.5), 2401);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 8, 0.5), 3600) << "8^4 = 4096 > 3600";
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 25, 0.5), 3600);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, std::numeric_limits<int>::max(), 0.5), 3600)
      << "no overflow for absurd attempts";
}

TEST(RetryDelay, JitterStaysWithinItsFractionAndNeverAboveTheCap) {
  const BackoffPolicy p;  // 1 s base, 3600 s cap, 10 % jitter
  for (int attempt = 1; attempt <= 30; ++attempt) {
    const double central = std::min(3600.0, std::pow(attempt, 4.0));
    double lo = 1e300, hi = -1;
    for (int i = 0; i < 1000; ++i) {
      const double u = i / 1000.0;
      const double d = retry_delay_seconds(p, attempt, u);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
      ASSERT_GE(d, central * 0.9 - 1e-9) << "attempt " << attempt << " u " << u;
      ASSERT_LE(d, central * 1.1 + 1e-9) << "attempt " << attempt << " u " << u;
      ASSERT_LE(d, 3600.0) << "attempt " << attempt << " u " << u;
    }
    // The jitter is really used: the spread covers most of the allowed band.
    const double band = std::min(central * 1.1, 3600.0) - central * 0.9;
    EXPECT_GT(hi - lo, band * 0.99) << "attempt " << attempt;
  }
  // Capped retries are spread below the cap, not piled on it.
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 20, 0.0), 3240);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 20, 0.5), 3420);
  EXPECT_LT(retry_delay_seconds(p, 20, 0.999), 3600);
  // u grows the delay monotonically within the band.
  EXPECT_LT(retry_delay_seconds(p, 3, 0.1), retry_delay_seconds(p, 3, 0.9));
  EXPECT_DOUBLE_EQ(retry_delay_seconds(p, 3, 0.5), 81);
}

TEST(RetryDelay, CentralValueIsNonDecreasing) {
  for (double base : {0.1, 1.0, 7.5}) {
    for (double cap : {10.0, 3600.0, 86400.0}) {
      const BackoffPolicy p{base, cap, 0.0};
      double prev = 0;
      for (int attempt = 1; attempt <= 100; ++attempt) {
        const double d = retry_delay_seconds(p, attempt, 0.5);
        EXPECT_GE(d, prev) << "base " << base << " cap " << cap << " attempt " << attempt;
        prev = d;
      }
      EXPECT_DOUBLE_EQ(prev, cap);
    }
  }
}

TEST(RetryDelay, ClampsNonsenseInputs) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{-5, 3600, 0.1}, 3, 0.5), 0);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{1, -1, 0.1}, 3, 0.5), 0);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{nan, 3600, 0.1}, 3, 0.5), 0);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{1, inf, 0}, 3, 0.5), 81) << "no cap";
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{inf, 60, 0.1}, 3, 0.5), 57) << "capped";
  EXPECT_TRUE(std::isfinite(retry_delay_seconds(BackoffPolicy{inf, inf, 0.1}, 3, 0.5)));
  // Jitter above 1 is 1: never a negative delay.
  for (double u : {0.0, 0.3, 0.99}) {
    EXPECT_GE(retry_delay_seconds(BackoffPolicy{1, 3600, 5.0}, 3, u), 0);
  }
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{1, 3600, 1.0}, 3, 0.0), 0);
  // u outside [0, 1) is clamped into it.
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{}, 3, -2), 81 * 0.9);
  EXPECT_NEAR(retry_delay_seconds(BackoffPolicy{}, 3, 7), 81 * 1.1, 1e-9);
  EXPECT_DOUBLE_EQ(retry_delay_seconds(BackoffPolicy{}, 3, nan), 81 * 0.9);
}

TEST(RetryAfter, DeltaSeconds) {
  const int64_t now = utc(2026, 1, 1);
  EXPECT_DOUBLE_EQ(parse_retry_after("120", now), 120);
  EXPECT_DOUBLE_EQ(parse_retry_after("0", now), 0);
  EXPECT_DOUBLE_EQ(parse_retry_after("  30\t", now), 30) << "optional whitespace";
  EXPECT_DOUBLE_EQ(parse_retry_after("007", now), 7);
  EXPECT_DOUBLE_EQ(parse_retry_after("99999999999999999999", now), 1e20);
  EXPECT_DOUBLE_EQ(parse_retry_after("-5", now), 0) << "negative clamps to now";
}

TEST(RetryAfter, HttpDates) {
  const int64_t now = utc(2015, 10, 21, 7, 0, 0);
  EXPECT_DOUBLE_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), 28 * 60);
  EXPECT_DOUBLE_EQ(parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", now), 28 * 60);
  EXPECT_DOUBLE_EQ(parse_retry_after("Wed Oct 21 07:28:00 2015", now), 28 * 60);
  EXPECT_DOUBLE_EQ(parse_retry_after("Thu Oct  1 07:00:00 2015", utc(2015, 9, 30, 7)), 86400)
      << "asctime pads the day with a space";
  EXPECT_DOUBLE_EQ(parse_retry_after("Thu, 22 Oct 2015 07:00:00 GMT", now), 86400);
  EXPECT_DOUBLE_EQ(parse_retry_after("Sat, 29 Feb 2020 00:00:00 GMT", utc(2020, 2, 28)), 86400);
  EXPECT_DOUBLE_EQ(parse_retry_after("Tue, 31 Dec 2030 23:59:60 GMT", utc(2031, 1, 1)), 0)
      << "a leap second is accepted";
  // In the past: retry now.
  EXPECT_DOUBLE_EQ(parse_retry_after("Wed, 21 Oct 2015 06:00:00 GMT", now), 0);
  EXPECT_DOUBLE_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 0);
  // RFC 850 two-digit years more than 50 years ahead belong to the previous century.
  EXPECT_DOUBLE_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 0);
  EXPECT_DOUBLE_EQ(parse_retry_after("Friday, 01-Jan-65 00:00:00 GMT", now),
                   static_cast<double>(utc(2065, 1, 1) - now));
}

TEST(RetryAfter, GarbageIsMinusOne) {
  const int64_t now = utc(2015, 10, 21, 7, 0, 0);
  for (const char *v : {"",
                        "   ",
                        "soon",
                        "1.5",
                        "12abc",
                        "abc12",
                        "+5",
                        "- 5",
                        "--5",
                        "0x10",
                        "Wed, 21 Oct 2015 07:28:00",
                        "Wed, 21 Oct 2015 07:28:00 UTC",
                        "Wed, 32 Oct 2015 07:28:00 GMT",
                        "Wed, 29 Feb 2015 07:28:00 GMT",
                        "Wed, 21 Foo 2015 07:28:00 GMT",
                        "Wed, 21 Oct 2015 24:00:00 GMT",
                        "Wed, 21 Oct 2015 07:60:00 GMT",
                        "Wed, 21 Oct 2015 7:28:00 GMT",
                        "Xyz, 21 Oct 2015 07:28:00 GMT",
                        "Wed, 21 Oct 15 07:28:00 GMT",
                        "Wednesday, 21-Oct-2015 07:28:00 GMT",
                        "Wed Oct 21 07:28:00",
                        "Wed Oct 123 07:28:00 2015",
                        "2015-10-21T07:28:00Z"}) {
    EXPECT_EQ(parse_retry_after(v, now), -1) << "\"" << v << "\"";
  }
}

}  // namespace
}  // namespace cachekit
