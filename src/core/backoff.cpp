#include "core/backoff.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "core/cron.h"

namespace cachekit {

double retry_delay_seconds(const BackoffPolicy &p, int attempt, double u) {
  auto not_nan = [](double v) { return std::isnan(v) ? 0.0 : v; };
  const double base = std::max(0.0, not_nan(p.base_seconds));
  // An infinite cap is no cap; the largest double keeps the arithmetic below finite.
  const double cap =
      std::min(std::numeric_limits<double>::max(), std::max(0.0, not_nan(p.max_seconds)));
  const double jitter = std::min(1.0, std::max(0.0, not_nan(p.jitter)));
  u = std::min(std::nextafter(1.0, 0.0), std::max(0.0, not_nan(u)));
  const double a = attempt < 1 ? 1.0 : static_cast<double>(attempt);

  // An infinite base or a^4 beyond double range is absorbed by the cap.
  const double central = std::min(cap, base * a * a * a * a);
  const double lo = central * (1.0 - jitter);
  const double hi = std::min(central * (1.0 + jitter), cap);
  return std::max(0.0, lo + u * (hi - lo));
}

namespace {

const char *const kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                               "jul", "aug", "sep", "oct", "nov", "dec"};
const char *const kShortDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
const char *const kLongDays[] = {"monday", "tuesday",  "wednesday", "thursday",
                                 "friday", "saturday", "sunday"};

std::string lower(const std::string &s) {
  std::string out = s;
  for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_digits(const std::string &s, size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

int month_index(const std::string &s) {
  const std::string l = lower(s);
  for (int i = 0; i < 12; ++i)
    if (l == kMonths[i]) return i + 1;
  return 0;
}

bool in_list(const std::string &s, const char *const *list, int n) {
  const std::string l = lower(s);
  for (int i = 0; i < n; ++i)
    if (l == list[i]) return true;
  return false;
}

// "HH:MM:SS"; seconds may be 60 (a leap second), which simply carries.
bool parse_clock(const std::string &s, int *h, int *m, int *sec) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  if (!is_digits(s.substr(0, 2), 2) || !is_digits(s.substr(3, 2), 2) ||
      !is_digits(s.substr(6, 2), 2))
    return false;
  *h = std::stoi(s.substr(0, 2));
  *m = std::stoi(s.substr(3, 2));
  *sec = std::stoi(s.substr(6, 2));
  return *h <= 23 && *m <= 59 && *sec <= 60;
}

std::vector<std::string> split_spaces(const std::string &s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// Epoch seconds of an HTTP-date, or false.
bool parse_http_date(const std::string &value, int64_t now_utc, int64_t *out) {
  const std::vector<std::string> f = split_spaces(value);
  CivilTime t{};
  if (f.size() == 6 && f[0].size() == 4 && f[0][3] == ',' &&
      in_list(f[0].substr(0, 3), kShortDays, 7)) {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    if (!is_digits(f[1], 2) || !is_digits(f[3], 4) || f[5] != "GMT") return false;
    t.day = std::stoi(f[1]);
    t.month = month_index(f[2]);
    t.year = std::stoi(f[3]);
    if (!parse_clock(f[4], &t.hour, &t.minute, &t.second)) return false;
  } else if (f.size() == 4 && !f[0].empty() && f[0].back() == ',' &&
             in_list(f[0].substr(0, f[0].size() - 1), kLongDays, 7)) {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::string &d = f[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-' || f[3] != "GMT") return false;
    if (!is_digits(d.substr(0, 2), 2) || !is_digits(d.substr(7, 2), 2)) return false;
    t.day = std::stoi(d.substr(0, 2));
    t.month = month_index(d.substr(3, 3));
    // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
    const int yy = std::stoi(d.substr(7, 2));
    const int now_year = seconds_to_civil(now_utc).year;
    int year = now_year / 100 * 100 + yy;
    if (year > now_year + 50) year -= 100;
    t.year = year;
    if (!parse_clock(f[2], &t.hour, &t.minute, &t.second)) return false;
  } else if (f.size() == 5 && in_list(f[0], kShortDays, 7)) {
    // asctime: Sun Nov  6 08:49:37 1994
    if (f[2].empty() || f[2].size() > 2 || !is_digits(f[2], f[2].size()) || !is_digits(f[4], 4))
      return false;
    t.month = month_index(f[1]);
    t.day = std::stoi(f[2]);
    t.year = std::stoi(f[4]);
    if (!parse_clock(f[3], &t.hour, &t.minute, &t.second)) return false;
  } else {
    return false;
  }
  if (t.month == 0 || t.day < 1 || t.day > days_in_month(t.year, t.month)) return false;
  *out = civil_to_seconds(t);
  return true;
}

}  // namespace

double parse_retry_after(const std::string &value, int64_t now_utc) {
  const size_t b = value.find_first_not_of(" \t");
  if (b == std::string::npos) return -1;
  const size_t e = value.find_last_not_of(" \t");
  const std::string v = value.substr(b, e - b + 1);

  const bool negative = v[0] == '-';
  const std::string digits = negative ? v.substr(1) : v;
  if (is_digits(digits, digits.size()) && !digits.empty()) {
    if (negative) return 0;
    // Digits beyond double precision only matter for absurd values; strtod rounds.
    return std::strtod(digits.c_str(), nullptr);
  }
  int64_t when;
  if (!parse_http_date(v, now_utc, &when)) return -1;
  return when <= now_utc ? 0.0 : static_cast<double>(when - now_utc);
}

}  // namespace cachekit
