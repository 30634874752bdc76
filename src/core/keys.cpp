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

std::string encode_namespace(std::string_view ns) {
  std::string out;
  out.reserve(ns.size());
  for (char c : ns) {
    if (c == '%')
      out.append("%25");
    else if (c == ':')
      out.append("%3A");
    else
      out.push_back(c);
  }
  return out;
}

std::string namespaced_key(std::string_view prefix, std::string_view keyspace, std::string_view ns,
                           std::string_view key) {
  std::string out = build_key(prefix, keyspace, encode_namespace(ns));
  out.push_back(':');
  out.append(key);
  return out;
}

void validate_namespace(std::string_view ns) {
  if (ns.size() > kMaxNamespaceBytes)
    throw Error(sqlstate::kInvalidParameterValue, "key namespace is too long",
                "Namespaces are limited to " + std::to_string(kMaxNamespaceBytes) +
                    " bytes; this one has " + std::to_string(ns.size()) + " bytes.");
}

void validate_template_prefix(std::string_view t, std::string_view reserved) {
  std::string prefix;
  for (size_t i = 0; i < t.size(); ++i) {
    const bool doubled = i + 1 < t.size() && t[i + 1] == t[i];
    if (t[i] == '{' || t[i] == '}') {
      if (!doubled) break;  // a placeholder (or a stray '}' that parse rejects)
      ++i;
    }
    prefix.push_back(t[i]);
  }
  if (prefix.empty())
    throw Error(sqlstate::kInvalidParameterValue, "key template must start with literal text",
                "Its key pattern, used on TRUNCATE and when a transaction changes too many rows, "
                "would match every key in the Redis database.",
                "Start the template with a fixed prefix, as in 'user_reports:{user_id}'.");
  if (prefix.find_first_of("*?[\\") != std::string::npos)
    throw Error(sqlstate::kInvalidParameterValue,
                "literal prefix of a key template must not contain *, ?, [ or \\",
                "Redis reads these characters as wildcards in key patterns.",
                "Start the template with a prefix made of other characters.");
  const std::string_view p(prefix);
  if (!reserved.empty() &&
      (p.substr(0, reserved.size()) == reserved || reserved.substr(0, p.size()) == p))
    throw Error(sqlstate::kInvalidParameterValue, "key template would reach pg_cachekit's own keys",
                "Its literal prefix \"" + prefix + "\" overlaps cachekit.key_prefix \"" +
                    std::string(reserved) +
                    "\", under which the cache keeps every database's keys.",
                "Start the template with a prefix of the application's own.");
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
