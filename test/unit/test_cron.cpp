#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "core/cron.h"
#include "core/error.h"

namespace cachekit {
namespace {

int64_t utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return civil_to_seconds(CivilTime{y, mo, d, h, mi, s});
}

std::string show(int64_t t) {
  if (t < 0) return std::to_string(t);
  const CivilTime c = seconds_to_civil(t);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d UTC", c.year, c.month, c.day, c.hour,
           c.minute, c.second);
  return buf;
}

// Compares instants and prints them readably when they differ.
#define EXPECT_TIME(actual, expected) EXPECT_EQ(show(actual), show(expected))

// A Zone backed by libc, for tests only: it changes the process's TZ for its lifetime,
// which the server must never do.
class LibcZone : public Zone {
 public:
  explicit LibcZone(const std::string &name) {
    const char *old = getenv("TZ");
    had_old_ = old != nullptr;
    if (had_old_) old_ = old;
    setenv("TZ", name.c_str(), 1);
    tzset();
  }
  ~LibcZone() override {
    if (had_old_)
      setenv("TZ", old_.c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }
  static bool available(const std::string &name) {
    struct stat st;
    return stat(("/usr/share/zoneinfo/" + name).c_str(), &st) == 0;
  }
  CivilTime to_local(int64_t utc_seconds) const override {
    const std::tm tm = local(utc_seconds);
    return CivilTime{tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour,        tm.tm_min,     tm.tm_sec};
  }
  int64_t utc_offset_at(int64_t utc_seconds) const override { return local(utc_seconds).tm_gmtoff; }

 private:
  static std::tm local(int64_t utc_seconds) {
    const time_t t = static_cast<time_t>(utc_seconds);
    std::tm tm{};
    localtime_r(&t, &tm);
    return tm;
  }
  bool had_old_ = false;
  std::string old_;
};

#define REQUIRE_ZONE(name)        \
  if (!LibcZone::available(name)) \
  GTEST_SKIP() << "tzdata has no zone " << (name) << " (/usr/share/zoneinfo)"

// The next `n` runs strictly after `after`.
std::vector<int64_t> runs(const std::string &spec, int64_t after, int n, const Zone &zone) {
  const CronSchedule s = CronSchedule::parse(spec);
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) {
    after = s.next_after(after, zone);
    if (after < 0) break;
    out.push_back(after);
  }
  return out;
}

std::vector<std::string> shown(const std::vector<int64_t> &ts) {
  std::vector<std::string> out;
  for (int64_t t : ts) out.push_back(show(t));
  return out;
}

void expect_invalid(const std::string &text, const std::string &detail_part) {
  try {
    CronSchedule::parse(text);
    ADD_FAILURE() << "\"" << text << "\" was accepted";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << text;
    EXPECT_EQ(std::string(e.what()), "invalid cron expression \"" + text + "\"");
    EXPECT_NE(e.detail().find(detail_part), std::string::npos)
        << "detail for \"" << text << "\": " << e.detail();
    EXPECT_EQ(e.detail().back(), '.') << e.detail();
  }
}

// --- civil time helpers -------------------------------------------------------

TEST(CivilTime, RoundTripsAndKnowsWeekdaysAndMonthLengths) {
  EXPECT_EQ(utc(1970, 1, 1), 0);
  EXPECT_EQ(utc(2015, 10, 21, 7, 28, 0), 1445412480);
  EXPECT_EQ(utc(2000, 3, 1) - utc(2000, 2, 28), 2 * 86400) << "2000 is a leap year";
  EXPECT_EQ(utc(2100, 3, 1) - utc(2100, 2, 28), 86400) << "2100 is not";
  for (int64_t t : {int64_t{-86400 * 400}, int64_t{0}, int64_t{951782399}, int64_t{4102444800}}) {
    EXPECT_EQ(civil_to_seconds(seconds_to_civil(t)), t);
  }
  const CivilTime c = seconds_to_civil(-1);
  EXPECT_EQ(c.year, 1969);
  EXPECT_EQ(c.second, 59);
  EXPECT_EQ(day_of_week(0), 4) << "1970-01-01 was a Thursday";
  EXPECT_EQ(day_of_week(-1), 3);
  EXPECT_EQ(day_of_week(utc(2026, 3, 8) / 86400), 0) << "a Sunday";
  EXPECT_EQ(days_in_month(2024, 2), 29);
  EXPECT_EQ(days_in_month(2026, 2), 28);
  EXPECT_EQ(days_in_month(2026, 4), 30);
  EXPECT_EQ(days_in_month(2026, 12), 31);
}

// --- parsing -----------------------------------------------------------------

TEST(CronParse, AcceptsEverySyntaxAndNormalises) {
  const std::pair<const char *, const char *> cases[] = {
      {"*/15 * * * *", "*/15 * * * *"},
      {"  0   9\t* *  MON-FRI ", "0 9 * * mon-fri"},
      {"1,2,3 0-5 1-31/2 JAN-Mar,dec sun,7", "1,2,3 0-5 1-31/2 jan-mar,dec sun,7"},
      {"5/10 */2 * feb *", "5/10 */2 * feb *"},
      {"@yearly", "@yearly"},
      {"@annually", "@yearly"},
      {"@Monthly", "@monthly"},
      {"@weekly", "@weekly"},
      {"@daily", "@daily"},
      {"@midnight", "@daily"},
      {"@hourly", "@hourly"},
      {"30 seconds", "every 30 seconds"},
      {"1 second", "every 1 second"},
      {"1 seconds", "every 1 second"},
      {"120 Seconds", "every 2 minutes"},
      {"5 minutes", "every 5 minutes"},
      {"1 minute", "every 1 minute"},
      {"every 45 seconds", "every 45 seconds"},
      {"86400 seconds", "every 1440 minutes"},
      {"1440 minutes", "every 1440 minutes"},
  };
  for (const auto &[text, normal] : cases) {
    SCOPED_TRACE(text);
    const CronSchedule s = CronSchedule::parse(text);
    EXPECT_EQ(s.describe(), normal);
    // What views show can be fed back in.
    EXPECT_EQ(CronSchedule::parse(s.describe()).describe(), normal);
  }
  EXPECT_FALSE(CronSchedule::parse("* * * * *").is_interval());
  EXPECT_EQ(CronSchedule::parse("* * * * *").interval_seconds(), 0);
  EXPECT_TRUE(CronSchedule::parse("30 seconds").is_interval());
  EXPECT_EQ(CronSchedule::parse("30 seconds").interval_seconds(), 30);
  EXPECT_EQ(CronSchedule::parse("2 minutes").interval_seconds(), 120);
  EXPECT_EQ(CronSchedule::parse("86400 seconds").interval_seconds(), 86400);
}

TEST(CronParse, RejectsEachClassOfBadInput) {
  expect_invalid("", "empty");
  expect_invalid("   ", "empty");
  expect_invalid("* * * *", "5 fields");
  expect_invalid("* * * * * *", "but 6 were given");
  expect_invalid("60 * * * *", "minute field \"60\" has value 60, which is outside 0-59");
  expect_invalid("* 24 * * *", "hour field");
  expect_invalid("* * 0 * *", "day-of-month field");
  expect_invalid("* * 32 * *", "outside 1-31");
  expect_invalid("* * * 13 *", "month field");
  expect_invalid("* * * 0 *", "outside 1-12");
  expect_invalid("* * * * 8", "day-of-week field");
  expect_invalid("* * * foo *", "nor a month name (jan-dec)");
  expect_invalid("* * * * funday", "nor a weekday name (sun-sat)");
  expect_invalid("* * * * monday", "weekday name");
  expect_invalid("x * * * *", "which is not a number in 0-59");
  expect_invalid("* mon * * *", "hour field \"mon\"");
  expect_invalid("-1 * * * *", "incomplete range");
  expect_invalid("1- * * * *", "incomplete range");
  expect_invalid("1-2-3 * * * *", "\"2-3\"");
  expect_invalid("5-1 * * * *", "range 5-1, which starts after it ends");
  expect_invalid("* * * dec-jan *", "starts after it ends");
  expect_invalid("1,,2 * * * *", "empty list item");
  expect_invalid("1, * * * *", "empty list item");
  expect_invalid("*/0 * * * *", "step \"0\"");
  expect_invalid("*/61 * * * *", "from 1 to 60");
  expect_invalid("*/x * * * *", "step \"x\"");
  expect_invalid("*/ * * * *", "step \"\"");
  expect_invalid("/5 * * * *", "step without a range");
  expect_invalid("* * * * 1/2/3", "step \"2/3\"");
  expect_invalid("99999999999 * * * *", "outside 0-59");
  expect_invalid("@reboot", "Unknown schedule name \"@reboot\"");
  expect_invalid("@daily extra", "must stand alone");
  expect_invalid("0 seconds", "zero");
  expect_invalid("86401 seconds", "longer");
  expect_invalid("1441 minutes", "longer");
  expect_invalid("99999999999999999999 seconds", "longer");
  expect_invalid("5 hours", "unit \"hours\" is not supported");
  expect_invalid("x seconds", "count \"x\"");
  expect_invalid("-5 seconds", "count \"-5\"");
  expect_invalid("every", "N seconds");
  expect_invalid("every 5", "N seconds");
}

// --- next run in UTC ---------------------------------------------------------

TEST(CronNext, OrdinarySpecs) {
  const UtcZone z;
  const auto next = [&z](const char *spec, int64_t after) {
    return CronSchedule::parse(spec).next_after(after, z);
  };
  EXPECT_TIME(next("*/15 * * * *", utc(2026, 1, 1, 0, 7)), utc(2026, 1, 1, 0, 15));
  EXPECT_TIME(next("*/15 * * * *", utc(2026, 1, 1, 0, 14, 59)), utc(2026, 1, 1, 0, 15));
  EXPECT_TIME(next("*/15 * * * *", utc(2026, 1, 1, 0, 15)), utc(2026, 1, 1, 0, 30))
      << "strictly after";
  EXPECT_TIME(next("*/15 * * * *", utc(2026, 1, 1, 23, 50)), utc(2026, 1, 2));
  EXPECT_TIME(next("* * * * *", utc(2026, 1, 1, 0, 0, 1)), utc(2026, 1, 1, 0, 1));
  // 2026-01-02 is a Friday.
  EXPECT_TIME(next("0 9 * * mon-fri", utc(2026, 1, 2, 10)), utc(2026, 1, 5, 9));
  EXPECT_TIME(next("0 9 * * mon-fri", utc(2026, 1, 2, 8)), utc(2026, 1, 2, 9));
  EXPECT_TIME(next("30 4 1 * *", utc(2026, 1, 1, 5)), utc(2026, 2, 1, 4, 30));
  EXPECT_TIME(next("0 0 1 1 *", utc(2026, 12, 31, 23, 59, 59)), utc(2027, 1, 1));
  EXPECT_TIME(next("0 12 * jun *", utc(2026, 1, 1)), utc(2026, 6, 1, 12));
  EXPECT_TIME(next("0 0 * * 7", utc(2026, 1, 1)), utc(2026, 1, 4)) << "7 is Sunday";
  EXPECT_TIME(next("0 0 * * sun", utc(2026, 1, 1)), utc(2026, 1, 4));
  EXPECT_TIME(next("0 0 * * 5-7", utc(2026, 1, 3, 1)), utc(2026, 1, 4)) << "sat then sun";
}

TEST(CronNext, StepRanges) {
  const UtcZone z;
  EXPECT_EQ(shown(runs("1-30/10 * * * *", utc(2026, 1, 1), 4, z)),
            shown({utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 11), utc(2026, 1, 1, 0, 21),
                   utc(2026, 1, 1, 1, 1)}));
  EXPECT_EQ(shown(runs("5/20 * * * *", utc(2026, 1, 1), 4, z)),
            shown({utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 0, 25), utc(2026, 1, 1, 0, 45),
                   utc(2026, 1, 1, 1, 5)}));
  EXPECT_EQ(
      shown(runs("0 */6 * * *", utc(2026, 1, 1, 1), 4, z)),
      shown({utc(2026, 1, 1, 6), utc(2026, 1, 1, 12), utc(2026, 1, 1, 18), utc(2026, 1, 2, 0)}));
  EXPECT_EQ(shown(runs("0 0 * */5 *", utc(2026, 1, 31, 1), 3, z)),
            shown({utc(2026, 6, 1), utc(2026, 6, 2), utc(2026, 6, 3)}))
      << "months 1, 6, 11";
  EXPECT_EQ(shown(runs("0 0 * * 1-5/2", utc(2026, 1, 1), 3, z)),
            shown({utc(2026, 1, 2), utc(2026, 1, 5), utc(2026, 1, 7)}))
      << "mon, wed, fri";
  EXPECT_EQ(shown(runs("0,30 8-9 * * *", utc(2026, 1, 1), 5, z)),
            shown({utc(2026, 1, 1, 8), utc(2026, 1, 1, 8, 30), utc(2026, 1, 1, 9),
                   utc(2026, 1, 1, 9, 30), utc(2026, 1, 2, 8)}));
}

TEST(CronNext, MonthEndsAndLeapYears) {
  const UtcZone z;
  EXPECT_EQ(shown(runs("0 0 31 * *", utc(2026, 1, 1), 4, z)),
            shown({utc(2026, 1, 31), utc(2026, 3, 31), utc(2026, 5, 31), utc(2026, 7, 31)}));
  EXPECT_EQ(shown(runs("0 0 30 * *", utc(2026, 1, 30), 2, z)),
            shown({utc(2026, 3, 30), utc(2026, 4, 30)}));
  EXPECT_EQ(shown(runs("0 0 29 2 *", utc(2026, 1, 1), 3, z)),
            shown({utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)}));
  // 2100 is not a leap year: eight years between two Feb 29ths.
  EXPECT_TIME(CronSchedule::parse("0 0 29 2 *").next_after(utc(2096, 3, 1), z), utc(2104, 2, 29));
  EXPECT_TIME(CronSchedule::parse("0 0 29 2 *").next_after(utc(2024, 2, 29), z), utc(2028, 2, 29));
  EXPECT_EQ(CronSchedule::parse("0 0 31 2 *").next_after(utc(2026, 1, 1), z), -1);
  EXPECT_EQ(CronSchedule::parse("0 0 30 2 *").next_after(utc(2026, 1, 1), z), -1);
  EXPECT_EQ(CronSchedule::parse("0 0 31 apr,jun,sep,nov *").next_after(utc(2026, 1, 1), z), -1);
}

TEST(CronNext, IsFastForRareDates) {
  const UtcZone z;
  const CronSchedule leap = CronSchedule::parse("0 0 29 2 *");
  const CronSchedule never = CronSchedule::parse("0 0 31 2 *");
  const int kCalls = 200;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t sum = 0;
  for (int i = 0; i < kCalls; ++i) {
    sum += leap.next_after(utc(2096, 3, 1) + i, z);
    sum += never.next_after(utc(2026, 1, 1) + i, z);
  }
  const auto us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_NE(sum, 0);
  // Well under a millisecond per call, even for the ten-year search that finds nothing.
  EXPECT_LT(us / (2 * kCalls), 200) << us << " us for " << 2 * kCalls << " calls";
}

TEST(CronNext, VixieDayOfMonthOrDayOfWeek) {
  const UtcZone z;
  // Both restricted: the 13th OR any Friday.
  EXPECT_EQ(shown(runs("0 0 13 * fri", utc(2026, 1, 1), 6, z)),
            shown({utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13), utc(2026, 1, 16),
                   utc(2026, 1, 23), utc(2026, 1, 30)}));
  // A field starting with '*' is unrestricted, so the other must match too: days
  // 1, 11, 21, 31 that are Mondays.
  EXPECT_EQ(shown(runs("0 0 */10 * mon", utc(2026, 1, 1), 4, z)),
            shown({utc(2026, 5, 11), utc(2026, 6, 1), utc(2026, 8, 31), utc(2026, 9, 21)}));
  // Only day-of-month restricted.
  EXPECT_EQ(shown(runs("0 0 13 * *", utc(2026, 1, 1), 2, z)),
            shown({utc(2026, 1, 13), utc(2026, 2, 13)}));
  // Only day-of-week restricted.
  EXPECT_EQ(shown(runs("0 0 * * fri", utc(2026, 1, 1), 2, z)),
            shown({utc(2026, 1, 2), utc(2026, 1, 9)}));
  // The month still has to match in the OR case.
  EXPECT_EQ(shown(runs("0 0 13 feb fri", utc(2026, 1, 1), 3, z)),
            shown({utc(2026, 2, 6), utc(2026, 2, 13), utc(2026, 2, 20)}));
}

TEST(CronNext, Names) {
  const UtcZone z;
  const int64_t after = utc(2026, 1, 1, 0, 30);  // a Thursday
  const auto next = [&](const char *spec) {
    return CronSchedule::parse(spec).next_after(after, z);
  };
  EXPECT_TIME(next("@yearly"), utc(2027, 1, 1));
  EXPECT_TIME(next("@annually"), utc(2027, 1, 1));
  EXPECT_TIME(next("@monthly"), utc(2026, 2, 1));
  EXPECT_TIME(next("@weekly"), utc(2026, 1, 4));
  EXPECT_TIME(next("@daily"), utc(2026, 1, 2));
  EXPECT_TIME(next("@midnight"), utc(2026, 1, 2));
  EXPECT_TIME(next("@hourly"), utc(2026, 1, 1, 1));
}

TEST(CronNext, IntervalsCountFromTheAnchor) {
  const UtcZone z;
  const CronSchedule s = CronSchedule::parse("30 seconds");
  const int64_t anchor = utc(2026, 1, 1, 0, 0, 7);
  EXPECT_TIME(s.next_after(anchor, z, anchor), anchor + 30);
  EXPECT_TIME(s.next_after(anchor + 29, z, anchor), anchor + 30);
  EXPECT_TIME(s.next_after(anchor + 30, z, anchor), anchor + 60);
  EXPECT_TIME(s.next_after(anchor + 3600 * 24 * 365 + 1, z, anchor), anchor + 3600 * 24 * 365 + 30)
      << "no drift after a year";
  // Before the anchor the same grid continues backwards.
  EXPECT_TIME(s.next_after(anchor - 45, z, anchor), anchor - 30);
  EXPECT_TIME(s.next_after(anchor - 1, z, anchor), anchor);
  const CronSchedule m = CronSchedule::parse("5 minutes");
  EXPECT_TIME(m.next_after(anchor + 1, z, anchor), anchor + 300);
  // Wall-clock changes are irrelevant to an interval.
  const CronSchedule d = CronSchedule::parse("86400 seconds");
  EXPECT_TIME(d.next_after(anchor, z, anchor), anchor + 86400);
}

// --- daylight-saving time ----------------------------------------------------

// Runs of a schedule as documented in cron.h, computed by brute force: every UTC minute is
// examined in order, with the highest wall-clock time seen so far telling repeated times
// from new ones and revealing skipped ones. Independent of CronSchedule's search.
std::vector<int64_t> reference_runs(const std::function<bool(const CivilTime &)> &matches,
                                    bool wildcard_hour, int64_t from, int64_t to,
                                    const Zone &zone) {
  std::vector<int64_t> out;
  int64_t high = civil_to_seconds(zone.to_local(from));
  for (int64_t t = from + 60; t <= to; t += 60) {
    const int64_t wall = civil_to_seconds(zone.to_local(t));
    bool run;
    if (wildcard_hour) {
      run = matches(zone.to_local(t));
    } else {
      run = wall > high && matches(zone.to_local(t));
      for (int64_t w = high + 60; !run && w < wall; w += 60) run = matches(seconds_to_civil(w));
    }
    if (run) out.push_back(t);
    high = std::max(high, wall);
  }
  return out;
}

struct DstSpec {
  const char *spec;
  bool wildcard_hour;
  std::function<bool(const CivilTime &)> matches;
};

const std::vector<DstSpec> &dst_specs() {
  static const std::vector<DstSpec> specs = {
      {"0 2 * * *", false, [](const CivilTime &c) { return c.hour == 2 && c.minute == 0; }},
      {"30 2 * * *", false, [](const CivilTime &c) { return c.hour == 2 && c.minute == 30; }},
      {"30 1 * * *", false, [](const CivilTime &c) { return c.hour == 1 && c.minute == 30; }},
      {"15 2 * * *", false, [](const CivilTime &c) { return c.hour == 2 && c.minute == 15; }},
      {"*/15 2 * * *", false, [](const CivilTime &c) { return c.hour == 2 && c.minute % 15 == 0; }},
      {"0 1-3 * * *", false,
       [](const CivilTime &c) { return c.hour >= 1 && c.hour <= 3 && c.minute == 0; }},
      {"*/15 * * * *", true, [](const CivilTime &c) { return c.minute % 15 == 0; }},
      {"0 * * * *", true, [](const CivilTime &c) { return c.minute == 0; }},
      {"30 * * * *", true, [](const CivilTime &c) { return c.minute == 30; }},
      {"0 */2 * * *", true, [](const CivilTime &c) { return c.hour % 2 == 0 && c.minute == 0; }},
  };
  return specs;
}

// Every spec's runs across [from, to] agree with the brute-force reference, and no
// fixed-hour job runs twice on one local date.
void check_against_reference(const Zone &zone, int64_t from, int64_t to) {
  for (const DstSpec &d : dst_specs()) {
    SCOPED_TRACE(d.spec);
    const CronSchedule s = CronSchedule::parse(d.spec);
    std::vector<int64_t> got;
    for (int64_t t = s.next_after(from, zone); t >= 0 && t <= to; t = s.next_after(t, zone))
      got.push_back(t);
    EXPECT_EQ(shown(got), shown(reference_runs(d.matches, d.wildcard_hour, from, to, zone)));
    if (!d.wildcard_hour && std::string(d.spec).find_first_of(",-/") == std::string::npos) {
      for (size_t i = 1; i < got.size(); ++i) {
        const CivilTime a = zone.to_local(got[i - 1]), b = zone.to_local(got[i]);
        EXPECT_FALSE(a.year == b.year && a.month == b.month && a.day == b.day)
            << "ran twice on one day: " << show(got[i - 1]) << " and " << show(got[i]);
      }
    }
    // Asking from inside the window (every minute) gives the next reference run.
    for (int64_t t = from; t < to - 86400; t += 420) {
      const int64_t next = s.next_after(t, zone);
      const auto it = std::upper_bound(got.begin(), got.end(), t);
      ASSERT_NE(it, got.end());
      ASSERT_EQ(show(next), show(*it)) << "after " << show(t);
    }
  }
}

TEST(CronDst, NewYorkSpringForward) {
  REQUIRE_ZONE("America/New_York");
  const LibcZone z("America/New_York");
  // 2026-03-08 02:00 EST (07:00 UTC) becomes 03:00 EDT.
  const auto r = [&z](const char *spec, int n) {
    return shown(runs(spec, utc(2026, 3, 7, 12), n, z));
  };
  EXPECT_EQ(r("0 2 * * *", 2), shown({utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)}))
      << "02:00 does not exist: once, at 03:00 EDT";
  EXPECT_EQ(r("30 2 * * *", 2), shown({utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)}));
  EXPECT_EQ(r("*/15 2 * * *", 2), shown({utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)}))
      << "four skipped times, one run";
  EXPECT_EQ(r("0 3 * * *", 2), shown({utc(2026, 3, 8, 7), utc(2026, 3, 9, 7)}));
  EXPECT_EQ(shown(runs("0 * * * *", utc(2026, 3, 8, 5, 30), 3, z)),
            shown({utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)}))
      << "01:00 EST, 03:00 EDT, 04:00 EDT: every real hour";
  EXPECT_EQ(shown(runs("*/15 * * * *", utc(2026, 3, 8, 6, 40), 3, z)),
            shown({utc(2026, 3, 8, 6, 45), utc(2026, 3, 8, 7), utc(2026, 3, 8, 7, 15)}))
      << "no extra run for the gap";
  check_against_reference(z, utc(2026, 3, 6), utc(2026, 3, 11));
}

TEST(CronDst, NewYorkFallBack) {
  REQUIRE_ZONE("America/New_York");
  const LibcZone z("America/New_York");
  // 2026-11-01 02:00 EDT (06:00 UTC) becomes 01:00 EST: 01:00-01:59 happens twice.
  const int64_t from = utc(2026, 10, 31, 12);
  EXPECT_EQ(shown(runs("30 1 * * *", from, 2, z)),
            shown({utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)}))
      << "first occurrence only";
  EXPECT_EQ(shown(runs("0 2 * * *", from, 2, z)),
            shown({utc(2026, 11, 1, 7), utc(2026, 11, 2, 7)}));
  EXPECT_EQ(shown(runs("30 2 * * *", from, 1, z)), shown({utc(2026, 11, 1, 7, 30)}));
  EXPECT_EQ(shown(runs("*/15 1 * * *", from, 5, z)),
            shown({utc(2026, 11, 1, 5), utc(2026, 11, 1, 5, 15), utc(2026, 11, 1, 5, 30),
                   utc(2026, 11, 1, 5, 45), utc(2026, 11, 2, 6)}));
  EXPECT_EQ(shown(runs("0 * * * *", utc(2026, 11, 1, 4, 30), 3, z)),
            shown({utc(2026, 11, 1, 5), utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)}))
      << "01:00 EDT, 01:00 EST, 02:00 EST: every real hour";
  EXPECT_EQ(shown(runs("*/15 * * * *", utc(2026, 11, 1, 5, 40), 3, z)),
            shown({utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6), utc(2026, 11, 1, 6, 15)}));
  // Asked during the second 01:xx, a fixed-hour job that already ran stays done.
  EXPECT_TIME(CronSchedule::parse("45 1 * * *").next_after(utc(2026, 11, 1, 6, 10), z),
              utc(2026, 11, 2, 6, 45));
  check_against_reference(z, utc(2026, 10, 30), utc(2026, 11, 3));
}

TEST(CronDst, BerlinBothTransitions) {
  REQUIRE_ZONE("Europe/Berlin");
  const LibcZone z("Europe/Berlin");
  // 2026-03-29 02:00 CET (01:00 UTC) becomes 03:00 CEST.
  EXPECT_EQ(shown(runs("0 2 * * *", utc(2026, 3, 28, 12), 2, z)),
            shown({utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)}));
  EXPECT_EQ(shown(runs("30 2 * * *", utc(2026, 3, 28, 12), 2, z)),
            shown({utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)}));
  EXPECT_EQ(shown(runs("0 * * * *", utc(2026, 3, 28, 23, 30), 2, z)),
            shown({utc(2026, 3, 29, 0), utc(2026, 3, 29, 1)}));
  check_against_reference(z, utc(2026, 3, 27), utc(2026, 3, 31));
  // 2026-10-25 03:00 CEST (01:00 UTC) becomes 02:00 CET: 02:00-02:59 happens twice.
  EXPECT_EQ(shown(runs("0 2 * * *", utc(2026, 10, 24, 12), 2, z)),
            shown({utc(2026, 10, 25, 0), utc(2026, 10, 26, 1)}));
  EXPECT_EQ(shown(runs("30 2 * * *", utc(2026, 10, 24, 12), 2, z)),
            shown({utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)}));
  EXPECT_EQ(shown(runs("0 * * * *", utc(2026, 10, 24, 22, 30), 4, z)),
            shown({utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1),
                   utc(2026, 10, 25, 2)}));
  check_against_reference(z, utc(2026, 10, 23), utc(2026, 10, 27));
}

TEST(CronDst, LordHoweHalfHourShift) {
  REQUIRE_ZONE("Australia/Lord_Howe");
  const LibcZone z("Australia/Lord_Howe");
  // 2026-10-04 02:00 +10:30 (15:30 UTC the day before) becomes 02:30 +11.
  EXPECT_EQ(shown(runs("0 2 * * *", utc(2026, 10, 3, 0), 2, z)),
            shown({utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15)}));
  EXPECT_EQ(shown(runs("15 2 * * *", utc(2026, 10, 3, 0), 1, z)),
            shown({utc(2026, 10, 3, 15, 30)}));
  EXPECT_EQ(shown(runs("30 2 * * *", utc(2026, 10, 3, 0), 2, z)),
            shown({utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 30)}))
      << "02:30 exists: it is the first instant after the gap";
  EXPECT_EQ(shown(runs("0 * * * *", utc(2026, 10, 3, 14), 2, z)),
            shown({utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16)}));
  EXPECT_EQ(shown(runs("*/15 * * * *", utc(2026, 10, 3, 15, 10), 2, z)),
            shown({utc(2026, 10, 3, 15, 15), utc(2026, 10, 3, 15, 30)}));
  check_against_reference(z, utc(2026, 10, 1), utc(2026, 10, 6));
  // 2026-04-05 02:00 +11 (15:00 UTC the day before) becomes 01:30 +10:30.
  EXPECT_EQ(shown(runs("30 1 * * *", utc(2026, 4, 4, 0), 2, z)),
            shown({utc(2026, 4, 4, 14, 30), utc(2026, 4, 5, 15)}));
  EXPECT_EQ(shown(runs("30 * * * *", utc(2026, 4, 4, 14), 3, z)),
            shown({utc(2026, 4, 4, 14, 30), utc(2026, 4, 4, 15), utc(2026, 4, 4, 16)}));
  EXPECT_EQ(shown(runs("0 2 * * *", utc(2026, 4, 4, 0), 1, z)), shown({utc(2026, 4, 4, 15, 30)}));
  check_against_reference(z, utc(2026, 4, 2), utc(2026, 4, 7));
}

TEST(CronDst, ZoneRulesDoNotLeakIntoUtcSchedules) {
  REQUIRE_ZONE("America/New_York");
  const LibcZone ny("America/New_York");
  // The same spec, the same instant, two zones: cron fields are wall-clock times.
  const CronSchedule s = CronSchedule::parse("0 9 * * *");
  EXPECT_TIME(s.next_after(utc(2026, 7, 1), UtcZone()), utc(2026, 7, 1, 9));
  EXPECT_TIME(s.next_after(utc(2026, 7, 1), ny), utc(2026, 7, 1, 13));
  EXPECT_TIME(s.next_after(utc(2026, 12, 1), ny), utc(2026, 12, 1, 14));
  // A far-away run across several transitions still lands on the right wall time.
  EXPECT_TIME(CronSchedule::parse("0 2 29 2 *").next_after(utc(2026, 7, 1), ny),
              utc(2028, 2, 29, 7));
}

}  // namespace
}  // namespace cachekit
