// Minimal JSON text building: a string literal with the escapes JSON
// requires. Documents are assembled by the callers; nothing here parses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace cachekit {

// "..." with \" \\ \n \r \t and \u00XX for other control bytes. Bytes >= 0x80
// pass through (the callers hand in UTF-8 text).
std::string json_quote(std::string_view s);

// ["a", "b"] from strings (each quoted).
std::string json_string_array(const std::vector<std::string> &items);

}  // namespace cachekit
