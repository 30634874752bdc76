#include "core/redis_info.h"

#include <charconv>
#include <cmath>

namespace cachekit {

std::string redis_info_field(const std::string &info, const std::string &field) {
  if (field.empty()) return {};
  const std::string needle = field + ":";
  size_t pos = 0;
  while ((pos = info.find(needle, pos)) != std::string::npos) {
    if (pos == 0 || info[pos - 1] == '\n') {
      const size_t start = pos + needle.size();
      const size_t end = info.find_first_of("\r\n", start);
      return info.substr(start, end == std::string::npos ? std::string::npos : end - start);
    }
    pos += 1;
  }
  return {};
}

std::optional<double> redis_info_number(const std::string &info, const std::string &field) {
  const std::string text = redis_info_field(info, field);
  if (text.empty()) return std::nullopt;
  double v = 0;
  const char *end = text.data() + text.size();
  auto r = std::from_chars(text.data(), end, v);
  // from_chars also reads "inf" and "nan", which INFO never means as numbers.
  if (r.ec != std::errc() || r.ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace cachekit
