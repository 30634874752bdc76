#include "core/cron.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <vector>

#include "core/error.h"

namespace cachekit {

namespace {

constexpr int64_t kSecondsPerDay = 86400;
// next_after gives up after this many days ("within 10 years", leap days included).
constexpr int64_t kHorizonDays = 3660;
// Beyond year 9999 civil arithmetic is pointless; refusing keeps every sum below far
// from overflow.
constexpr int64_t kMaxSupportedUtc = 253402300799 - (kHorizonDays + 2) * kSecondsPerDay;
constexpr int64_t kMinSupportedUtc = -62135596800;  // 0001-01-01
constexpr int64_t kMaxIntervalSeconds = 86400;

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = floor_div(y, 400);
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int *year, int *month, int *day) {
  z += 719468;
  const int64_t era = floor_div(z, 146097);
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int>(yoe + era * 400 + (m <= 2));
  *month = static_cast<int>(m);
  *day = static_cast<int>(d);
}

// Lowest set bit of `bits` at position >= from, or -1.
int next_bit(uint64_t bits, int from) {
  if (from >= 64) return -1;
  const uint64_t masked = bits & (~uint64_t{0} << from);
  return masked == 0 ? -1 : __builtin_ctzll(masked);
}

std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool all_digits(const std::string &s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool all_letters(const std::string &s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0;
  });
}

std::vector<std::string> split_blanks(const std::string &text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::vector<std::string> split_on(const std::string &s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

[[noreturn]] void fail(const std::string &text, const std::string &detail) {
  throw Error(sqlstate::kInvalidParameterValue, "invalid cron expression \"" + text + "\"", detail);
}

const char *const kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
const char *const kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

struct FieldSpec {
  const char *name;
  int min, max;
  // Names for min, min+1, ...; nullptr when the field takes numbers only.
  const char *const *names;
  int name_count;
};

const FieldSpec kMinuteField = {"minute", 0, 59, nullptr, 0};
const FieldSpec kHourField = {"hour", 0, 23, nullptr, 0};
const FieldSpec kDomField = {"day-of-month", 1, 31, nullptr, 0};
const FieldSpec kMonthField = {"month", 1, 12, kMonthNames, 12};
// 7 is accepted as a second Sunday and folded onto 0 after parsing.
const FieldSpec kDowField = {"day-of-week", 0, 7, kDayNames, 7};

class FieldParser {
 public:
  FieldParser(const std::string &text, const FieldSpec &spec, const std::string &field)
      : text_(text), spec_(spec), field_(field) {}

  uint64_t parse() {
    uint64_t bits = 0;
    for (const std::string &item : split_on(field_, ',')) {
      if (item.empty()) fail_field("has an empty list item");
      bits |= parse_item(item);
    }
    return bits;
  }

 private:
  [[noreturn]] void fail_field(const std::string &why) const {
    fail(text_, std::string("The ") + spec_.name + " field \"" + field_ + "\" " + why + ".");
  }

  std::string range_text() const {
    return std::to_string(spec_.min) + "-" + std::to_string(spec_.max);
  }

  int parse_value(const std::string &s) const {
    if (all_digits(s)) {
      // Nine digits cannot overflow an int; anything longer is out of range anyway.
      int v = s.size() > 9 ? INT_MAX : std::stoi(s);
      if (v < spec_.min || v > spec_.max)
        fail_field("has value " + s + ", which is outside " + range_text());
      return v;
    }
    if (spec_.names != nullptr) {
      const std::string l = lower(s);
      for (int i = 0; i < spec_.name_count; ++i)
        if (l == spec_.names[i]) return spec_.min + i;
      fail_field("has \"" + s + "\", which is neither a number in " + range_text() + " nor a " +
                 (spec_.names == kMonthNames ? "month" : "weekday") + " name (" + spec_.names[0] +
                 "-" + spec_.names[spec_.name_count - 1] + ")");
    }
    fail_field("has \"" + s + "\", which is not a number in " + range_text());
  }

  uint64_t parse_item(const std::string &item) const {
    std::string base = item;
    int step = 1;
    bool has_step = false;
    const size_t slash = item.find('/');
    if (slash != std::string::npos) {
      base = item.substr(0, slash);
      const std::string step_text = item.substr(slash + 1);
      const int span = spec_.max - spec_.min + 1;
      if (!all_digits(step_text) || step_text.size() > 9 || std::stoi(step_text) < 1 ||
          std::stoi(step_text) > span)
        fail_field("has step \"" + step_text + "\", which is not a number from 1 to " +
                   std::to_string(span));
      step = std::stoi(step_text);
      has_step = true;
      if (base.empty()) fail_field("has a step without a range before the '/'");
    }
    int lo, hi;
    if (base == "*") {
      lo = spec_.min;
      hi = spec_.max;
    } else {
      const size_t dash = base.find('-');
      if (dash != std::string::npos) {
        const std::string a = base.substr(0, dash), b = base.substr(dash + 1);
        if (a.empty() || b.empty()) fail_field("has an incomplete range \"" + base + "\"");
        lo = parse_value(a);
        hi = parse_value(b);
        if (lo > hi) fail_field("has range " + base + ", which starts after it ends");
      } else {
        lo = parse_value(base);
        // "5/10" means from 5 to the end of the field in steps of 10.
        hi = has_step ? spec_.max : lo;
      }
    }
    uint64_t bits = 0;
    for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
    return bits;
  }

  const std::string &text_;
  const FieldSpec &spec_;
  const std::string &field_;
};

struct Resolved {
  // Instants whose wall-clock time is the one asked for: 0 (a gap), 1, or 2 (an overlap).
  int count = 0;
  int64_t first = 0;
  int64_t last = 0;
  // For a gap: the first instant after it, or -1 if the zone behaved inconsistently.
  int64_t gap_end = -1;
};

int64_t local_seconds(const Zone &zone, int64_t t) { return t + zone.utc_offset_at(t); }

// Every UTC instant at which the wall clock of `zone` reads `wall` (civil_to_seconds
// scale). The offsets in force a day before and a day after cover one transition; the
// offsets at the resulting guesses cover a transition close to the wall time itself.
Resolved resolve_wall_time(const Zone &zone, int64_t wall) {
  std::vector<int64_t> offsets;
  auto add = [&offsets](int64_t off) {
    if (std::find(offsets.begin(), offsets.end(), off) == offsets.end()) offsets.push_back(off);
  };
  const int64_t before = zone.utc_offset_at(wall - kSecondsPerDay);
  const int64_t after = zone.utc_offset_at(wall + kSecondsPerDay);
  add(before);
  add(after);
  add(zone.utc_offset_at(wall - before));
  add(zone.utc_offset_at(wall - after));

  Resolved r;
  for (int64_t off : offsets) {
    const int64_t t = wall - off;
    if (civil_to_seconds(zone.to_local(t)) != wall) continue;
    if (r.count == 0) {
      r.first = r.last = t;
      r.count = 1;
    } else if (t != r.first && t != r.last) {
      r.first = std::min(r.first, t);
      r.last = std::max(r.last, t);
      r.count = 2;
    }
  }
  if (r.count > 0) return r;

  // A gap: the wall clock jumps over `wall`. Find the first instant whose wall-clock
  // time is later; the local clock only moves forward within the bracket.
  const auto [min_off, max_off] = std::minmax_element(offsets.begin(), offsets.end());
  int64_t lo = wall - *max_off, hi = wall - *min_off;
  if (local_seconds(zone, lo) > wall || local_seconds(zone, hi) <= wall) return r;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (local_seconds(zone, mid) > wall)
      hi = mid;
    else
      lo = mid;
  }
  r.gap_end = hi;
  return r;
}

}  // namespace

int64_t civil_to_seconds(const CivilTime &t) {
  return days_from_civil(t.year, t.month, t.day) * kSecondsPerDay + int64_t{t.hour} * 3600 +
         int64_t{t.minute} * 60 + t.second;
}

CivilTime seconds_to_civil(int64_t seconds) {
  const int64_t days = floor_div(seconds, kSecondsPerDay);
  const int64_t secs = seconds - days * kSecondsPerDay;
  CivilTime c{};
  civil_from_days(days, &c.year, &c.month, &c.day);
  c.hour = static_cast<int>(secs / 3600);
  c.minute = static_cast<int>(secs % 3600 / 60);
  c.second = static_cast<int>(secs % 60);
  return c;
}

int day_of_week(int64_t days_since_epoch) {
  // 1970-01-01 was a Thursday.
  const int64_t r = (days_since_epoch + 4) % 7;
  return static_cast<int>(r < 0 ? r + 7 : r);
}

int days_in_month(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return kDays[month - 1];
}

CivilTime UtcZone::to_local(int64_t utc_seconds) const { return seconds_to_civil(utc_seconds); }

CronSchedule CronSchedule::parse(const std::string &text) {
  std::vector<std::string> tokens = split_blanks(text);
  if (tokens.empty()) fail(text, "The expression is empty.");

  CronSchedule s;
  std::string first = lower(tokens[0]);
  if (first[0] == '@') {
    static const struct {
      const char *name, *expansion, *normal;
    } kNames[] = {
        {"@yearly", "0 0 1 1 *", "@yearly"},   {"@annually", "0 0 1 1 *", "@yearly"},
        {"@monthly", "0 0 1 * *", "@monthly"}, {"@weekly", "0 0 * * 0", "@weekly"},
        {"@daily", "0 0 * * *", "@daily"},     {"@midnight", "0 0 * * *", "@daily"},
        {"@hourly", "0 * * * *", "@hourly"},
    };
    if (tokens.size() != 1) fail(text, "A schedule name such as " + first + " must stand alone.");
    for (const auto &n : kNames) {
      if (first == n.name) {
        s = parse(n.expansion);
        s.text_ = n.normal;
        return s;
      }
    }
    fail(text, "Unknown schedule name \"" + tokens[0] +
                   "\"; the names are @yearly, @annually, @monthly, @weekly, @daily, "
                   "@midnight and @hourly.");
  }

  // Interval form: "[every] N seconds|second|minutes|minute".
  const bool every = first == "every";
  if (every || (tokens.size() == 2 && all_letters(tokens[1]))) {
    const size_t base = every ? 1 : 0;
    if (tokens.size() != base + 2)
      fail(text, "An interval is written as \"N seconds\" or \"N minutes\".");
    const std::string &count = tokens[base];
    const std::string unit = lower(tokens[base + 1]);
    int64_t unit_seconds;
    if (unit == "second" || unit == "seconds")
      unit_seconds = 1;
    else if (unit == "minute" || unit == "minutes")
      unit_seconds = 60;
    else
      fail(text, "The interval unit \"" + tokens[base + 1] +
                     "\" is not supported; use seconds or minutes.");
    if (!all_digits(count))
      fail(text, "The interval count \"" + count + "\" is not a positive whole number.");
    const int64_t n = count.size() > 9 ? INT64_MAX / 60 : std::stoll(count);
    if (n < 1 || n * unit_seconds > kMaxIntervalSeconds)
      fail(text, "An interval must be between 1 second and 86400 seconds (1 day), but \"" + count +
                     " " + tokens[base + 1] + "\" is " + (n < 1 ? std::string("zero") : "longer") +
                     ".");
    s.interval_seconds_ = n * unit_seconds;
    if (s.interval_seconds_ % 60 == 0) {
      const int64_t m = s.interval_seconds_ / 60;
      s.text_ = "every " + std::to_string(m) + (m == 1 ? " minute" : " minutes");
    } else {
      const int64_t n_s = s.interval_seconds_;
      s.text_ = "every " + std::to_string(n_s) + (n_s == 1 ? " second" : " seconds");
    }
    return s;
  }

  if (tokens.size() != 5)
    fail(text,
         "A cron expression has 5 fields (minute hour day-of-month month day-of-week), "
         "but " +
             std::to_string(tokens.size()) + (tokens.size() == 1 ? " was" : " were") + " given.");
  for (std::string &t : tokens) t = lower(t);
  s.minutes_ = FieldParser(text, kMinuteField, tokens[0]).parse();
  s.hours_ = static_cast<uint32_t>(FieldParser(text, kHourField, tokens[1]).parse());
  s.doms_ = static_cast<uint32_t>(FieldParser(text, kDomField, tokens[2]).parse());
  s.months_ = static_cast<uint32_t>(FieldParser(text, kMonthField, tokens[3]).parse());
  uint32_t dows = static_cast<uint32_t>(FieldParser(text, kDowField, tokens[4]).parse());
  if (dows & (1u << 7)) dows = (dows & ~(1u << 7)) | 1u;
  s.dows_ = dows;
  s.hour_star_ = tokens[1][0] == '*';
  s.dom_star_ = tokens[2][0] == '*';
  s.dow_star_ = tokens[4][0] == '*';
  s.text_ = tokens[0] + " " + tokens[1] + " " + tokens[2] + " " + tokens[3] + " " + tokens[4];
  return s;
}

std::string CronSchedule::describe() const { return text_; }

bool CronSchedule::day_matches(int64_t days) const {
  int y, m, d;
  civil_from_days(days, &y, &m, &d);
  if (!(months_ & (1u << m))) return false;
  const bool dom_ok = (doms_ & (1u << d)) != 0;
  const bool dow_ok = (dows_ & (1u << day_of_week(days))) != 0;
  if (dom_star_ || dow_star_) return dom_ok && dow_ok;
  return dom_ok || dow_ok;
}

int64_t CronSchedule::next_wall_time(int64_t local, int64_t local_limit) const {
  const int64_t start = floor_div(local + 59, 60) * 60;
  int64_t days = floor_div(start, kSecondsPerDay);
  int secs = static_cast<int>(start - days * kSecondsPerDay);
  int hour = secs / 3600, minute = secs % 3600 / 60;
  while (days * kSecondsPerDay <= local_limit) {
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (!(months_ & (1u << m))) {
      // Skip the rest of a month that never matches in one step.
      days = m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1);
      hour = minute = 0;
      continue;
    }
    if (day_matches(days)) {
      for (int h = next_bit(hours_, hour); h >= 0; h = next_bit(hours_, h + 1)) {
        const int mm = next_bit(minutes_, h == hour ? minute : 0);
        if (mm < 0) continue;
        const int64_t wall = days * kSecondsPerDay + int64_t{h} * 3600 + int64_t{mm} * 60;
        return wall <= local_limit ? wall : INT64_MIN;
      }
    }
    ++days;
    hour = minute = 0;
  }
  return INT64_MIN;
}

int64_t CronSchedule::next_after(int64_t after_utc, const Zone &zone, int64_t anchor_utc) const {
  if (is_interval()) {
    const int64_t n = interval_seconds_;
    // Work on the difference so that neither operand has to be near zero.
    if (after_utc > kMaxSupportedUtc || after_utc < kMinSupportedUtc ||
        anchor_utc > kMaxSupportedUtc || anchor_utc < kMinSupportedUtc)
      return -1;
    return anchor_utc + (floor_div(after_utc - anchor_utc, n) + 1) * n;
  }
  if (after_utc > kMaxSupportedUtc || after_utc < kMinSupportedUtc) return -1;

  const int64_t start = after_utc + 1;
  const int64_t off_now = zone.utc_offset_at(start);
  const int64_t off_tomorrow = zone.utc_offset_at(start + kSecondsPerDay);
  // A fall-back transition within the next day can make the next run's wall-clock time
  // earlier than the wall clock now, hence the smaller offset.
  int64_t wall = start + std::min(off_now, off_tomorrow);
  const int64_t wall_limit =
      start + std::max(off_now, off_tomorrow) + kHorizonDays * kSecondsPerDay;

  int64_t best = -1;
  int64_t stop_wall = wall_limit;
  for (;;) {
    const int64_t w = next_wall_time(wall, stop_wall);
    if (w == INT64_MIN) break;
    wall = w + 60;

    const Resolved r = resolve_wall_time(zone, w);
    int64_t candidates[2];
    int n = 0;
    if (r.count == 0) {
      if (!hour_star_ && r.gap_end >= 0) candidates[n++] = r.gap_end;
    } else {
      candidates[n++] = r.first;
      if (hour_star_ && r.count == 2) candidates[n++] = r.last;
    }
    for (int i = 0; i < n; ++i) {
      const int64_t c = candidates[i];
      if (c <= after_utc || (best >= 0 && c >= best)) continue;
      best = c;
      // A later wall-clock time maps to an earlier instant only across a fall-back
      // transition, and then by at most the size of the shift: look that far ahead.
      const int64_t shift =
          std::max(zone.utc_offset_at(c - kSecondsPerDay), off_now) - zone.utc_offset_at(c);
      stop_wall = std::min(stop_wall, w + std::max<int64_t>(shift, 0));
    }
  }
  return best;
}

}  // namespace cachekit
