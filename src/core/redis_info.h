// Fields of the text that Redis' INFO command answers ("field:value\r\n" lines, "# Section"
// headers), for health reports and the Redis gauges of the metrics.
#pragma once

#include <optional>
#include <string>

namespace cachekit {

// The value of the first line "field:value" (up to "\r" or "\n"), or "" when no line starts
// with "field:". Only whole field names match: "used_memory" is not "used_memory_rss".
std::string redis_info_field(const std::string &info, const std::string &field);

// The field as a finite number ("1234", "1.03"), or nullopt when absent or not a number.
std::optional<double> redis_info_number(const std::string &info, const std::string &field);

}  // namespace cachekit
