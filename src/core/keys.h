// Redis key layout.
//
// Every key pg_cachekit writes is  <cachekit.key_prefix><namespace><rest>.
// The namespace segment keeps the key/value cache, sessions and (later) cached
// query results apart, so that no key a SQL caller chooses through cache_set()
// can ever equal the key of a cached query result of another role.
//   kv:    cache_set / cache_get keys (the caller's key, verbatim bytes)
//   sess:  session store (on the session database)
//   q:     cached_query results (hash keys)
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cachekit {

inline constexpr std::size_t kMaxKeyBytes = 512;
inline constexpr std::size_t kMaxPrefixBytes = 64;

namespace keyspace {
inline constexpr std::string_view kKeyValue = "kv:";
inline constexpr std::string_view kSession = "sess:";
inline constexpr std::string_view kQuery = "q:";
}  // namespace keyspace

// Throws cachekit::Error: empty key (22023), key over kMaxKeyBytes (22023).
// `what` names the argument in messages ("key", "session id").
void validate_key(std::string_view key, std::string_view what = "key");

// Throws cachekit::Error (22023) when the prefix is longer than kMaxPrefixBytes.
void validate_prefix(std::string_view prefix);

std::string build_key(std::string_view prefix, std::string_view keyspace, std::string_view key);

// Escapes Redis glob metacharacters (* ? [ ] \) so that the result matches the
// input literally in SCAN MATCH.
std::string glob_escape(std::string_view s);

// Pattern matching every key that starts with prefix+keyspace+key_prefix.
std::string prefix_pattern(std::string_view prefix, std::string_view keyspace,
                           std::string_view key_prefix);

}  // namespace cachekit
