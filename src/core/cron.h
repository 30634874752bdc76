// Periodic schedules for the task queue: cron expressions and fixed intervals.
//
// Accepted text (case-insensitive, fields separated by blanks):
//  - 5-field cron "minute hour day-of-month month day-of-week" with *, lists (1,2),
//    ranges (1-5), steps (*/15, 1-30/5, 5/10 = from 5 to the field's end), month names
//    jan-dec, weekday names sun-sat, weekdays 0-7 (0 and 7 are Sunday);
//  - @yearly (= @annually), @monthly, @weekly, @daily (= @midnight), @hourly;
//  - "N seconds", "N second", "N minutes", "N minute", optionally preceded by "every",
//    for 1 <= N seconds <= 86400 in all.
//
// Day matching follows Vixie cron: when both day-of-month and day-of-week are restricted
// (neither field starts with '*'), a day matches if EITHER matches ("0 0 13 * fri" runs on
// every 13th and every Friday); otherwise both must match, so "*/2" in one field still
// counts as unrestricted, as in Vixie cron.
//
// Time zones: cron fields are matched against the wall clock of a caller-supplied Zone, so
// that the server can use Postgres' own tz code and never touches the process's TZ.
// Daylight-saving transitions are handled like Vixie cron and systemd:
//  - A job whose hour field is fixed (a value, a list or a range, anything not starting
//    with '*') runs once per matching wall-clock time, whatever the clock does:
//    * a matching time skipped by a spring-forward gap (02:30 on the day New York goes
//      from 02:00 to 03:00) runs once, at the first instant after the gap (03:00 local);
//      several skipped times collapse into that one run;
//    * a matching time that happens twice in a fall-back overlap (01:30 when New York
//      goes from 02:00 back to 01:00) runs only at its first occurrence, so a fixed-hour
//      job never runs twice in one night.
//  - A job whose hour field starts with '*' ("*", "*/2") is a job about elapsed time and
//    follows the real clock: it runs at every instant whose wall-clock time matches. In a
//    gap the skipped times simply do not happen ("0 * * * *" runs at 01:00 and then 03:00
//    EDT, one real hour apart); in an overlap the repeated times run again ("0 * * * *"
//    runs at 01:00 EDT, 01:00 EST and 02:00 EST, every real hour; "*/15 * * * *" every 15
//    real minutes). Neither gets extra runs.
// Zones whose offsets are not whole hours (Australia/Lord_Howe shifts by 30 minutes)
// follow the same rules.
#pragma once

#include <cstdint>
#include <string>

namespace cachekit {

// A wall-clock reading; month 1-12, day 1-31, hour 0-23, minute 0-59, second 0-60.
struct CivilTime {
  int year, month, day, hour, minute, second;
};

// Seconds since 1970-01-01 00:00:00 of the wall clock `t`, as if it were UTC (proleptic
// Gregorian calendar, no leap seconds). Fields are not range checked; 60 seconds carry.
int64_t civil_to_seconds(const CivilTime &t);
// The inverse of civil_to_seconds.
CivilTime seconds_to_civil(int64_t seconds);
// 0 = Sunday ... 6 = Saturday, as cron counts, of a day counted from 1970-01-01.
int day_of_week(int64_t days_since_epoch);
int days_in_month(int year, int month);

// Time-zone rules, supplied by the caller. Offsets are seconds EAST of UTC (UTC+1 =>
// +3600). The two functions must agree: to_local(t) is seconds_to_civil(t +
// utc_offset_at(t)).
class Zone {
 public:
  virtual ~Zone() = default;
  virtual CivilTime to_local(int64_t utc_seconds) const = 0;
  virtual int64_t utc_offset_at(int64_t utc_seconds) const = 0;
};

class UtcZone : public Zone {
 public:
  CivilTime to_local(int64_t utc_seconds) const override;
  int64_t utc_offset_at(int64_t) const override { return 0; }
};

class CronSchedule {
 public:
  // Throws cachekit::Error with SQLSTATE 22023 (invalid_parameter_value), message
  // `invalid cron expression "<text>"` and a detail naming the field and the problem.
  static CronSchedule parse(const std::string &text);

  bool is_interval() const { return interval_seconds_ > 0; }
  // 0 for a cron schedule.
  int64_t interval_seconds() const { return interval_seconds_; }

  // The first run strictly after `after_utc` (epoch seconds), or -1 if there is none
  // within 10 years ("0 0 31 2 *"). An interval schedule runs at anchor_utc + k * N for
  // every integer k (anchor_utc is the schedule's creation time); a cron schedule is
  // matched against the wall clock of `zone` with the DST rules above and ignores the
  // anchor. Cost grows with the number of days skipped, not minutes: a Feb 29 job is
  // found in microseconds.
  int64_t next_after(int64_t after_utc, const Zone &zone, int64_t anchor_utc = 0) const;

  // Normalised text for views, accepted again by parse(): "*/15 * * * *", "0 9 * * mon-fri",
  // "@daily", "every 30 seconds", "every 5 minutes".
  std::string describe() const;

 private:
  CronSchedule() = default;

  bool day_matches(int64_t days) const;
  // The first wall-clock time (civil_to_seconds scale, whole minutes) >= local that
  // matches every field, or INT64_MIN if none before local_limit.
  int64_t next_wall_time(int64_t local, int64_t local_limit) const;

  std::string text_;  // normalised, see describe()
  int64_t interval_seconds_ = 0;
  uint64_t minutes_ = 0;  // bit n: minute n
  uint32_t hours_ = 0;    // bit n: hour n
  uint32_t doms_ = 0;     // bit n: day n of the month, 1-31
  uint32_t months_ = 0;   // bit n: month n, 1-12
  uint32_t dows_ = 0;     // bit n: weekday n, 0 = Sunday
  bool dom_star_ = false;
  bool dow_star_ = false;
  bool hour_star_ = false;
};

}  // namespace cachekit
