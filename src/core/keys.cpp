#include "core/keys.h"

#include <string>

#include "core/error.h"

namespace cachekit {

void validate_key(std::string_view key, std::string_view what) {
  if (key.empty())
    throw Error(sqlstate::kInvalidParameterValue, std::string(what) + " must not be empty");
  if (key.size() > kMaxKeyBytes)
    throw Error(sqlstate::kInvalidParameterValue, std::string(what) + " is too long",
                "Keys are limited to " + std::to_string(kMaxKeyBytes) + " bytes; this one has " +
                    std::to_string(key.size()) + " bytes.");
}

void validate_prefix(std::string_view prefix) {
  if (prefix.size() > kMaxPrefixBytes)
    throw Error(sqlstate::kInvalidParameterValue, "key prefix is too long",
                "Key prefixes are limited to " + std::to_string(kMaxPrefixBytes) +
                    " bytes; this one has " + std::to_string(prefix.size()) + " bytes.");
}

std::string build_key(std::string_view prefix, std::string_view keyspace, std::string_view key) {
  std::string out;
  out.reserve(prefix.size() + keyspace.size() + key.size());
  out.append(prefix);
  out.append(keyspace);
  out.append(key);
  return out;
}

std::string glob_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    switch (c) {
      case '*':
      case '?':
      case '[':
      case ']':
      case '\\':
        out.push_back('\\');
        break;
      default:
        break;
    }
    out.push_back(c);
  }
  return out;
}

std::string prefix_pattern(std::string_view prefix, std::string_view keyspace,
                           std::string_view key_prefix) {
  std::string out = glob_escape(build_key(prefix, keyspace, key_prefix));
  out.push_back('*');
  return out;
}

}  // namespace cachekit
