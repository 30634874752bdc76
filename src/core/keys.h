// Redis key layout.
//
// Every key pg_cachekit writes is  <cachekit.key_prefix><key space><rest>.
// The key space keeps the key/value cache, sessions and cached query results
// apart, so that no key a SQL caller chooses through cache_set() can ever
// equal the key of a cached query result of another role.
//   kv:<ns>:   cache_set / cache_get keys (the caller's key, verbatim bytes)
//   sess:<ns>: session store (on the session database)
//   q:         cached_query results (hash keys; the database is in the hash)
// <ns> is cachekit.kv_namespace, by default the database's name, so that the
// users of one database cannot read or overwrite another database's keys on a
// shared Redis; databases that set the same namespace share deliberately.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace cachekit {

inline constexpr std::size_t kMaxKeyBytes = 512;
inline constexpr std::size_t kMaxPrefixBytes = 64;
// A database name's limit (NAMEDATALEN - 1), before encoding.
inline constexpr std::size_t kMaxNamespaceBytes = 63;

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

// The namespace segment as it appears in a key: '%' and ':' percent-encoded,
// so the segment ends at its first ':' and namespace "a:b" with key "c" never
// meets namespace "a" with key "b:c".
std::string encode_namespace(std::string_view ns);

// <prefix><keyspace><encoded ns>:<key>
std::string namespaced_key(std::string_view prefix, std::string_view keyspace, std::string_view ns,
                           std::string_view key);

// Throws cachekit::Error (22023) when the namespace is longer than
// kMaxNamespaceBytes.
void validate_namespace(std::string_view ns);

// Throws cachekit::Error (22023) unless a key rule template starts with
// literal text without Redis glob characters (* ? [ \). Its key pattern
// (TRUNCATE, overflow) is that prefix followed by '*' and more: with no prefix
// it would match every key in the Redis database. Templates that are
// malformed otherwise are left to KeyTemplate::parse. `reserved` is
// cachekit.key_prefix: a prefix that starts with it, or that it starts with
// ('c' for 'ck:'), would let a rule delete pg_cachekit's own keys, those of
// other databases included.
void validate_template_prefix(std::string_view key_template, std::string_view reserved = {});

// Escapes Redis glob metacharacters (* ? [ ] \) so that the result matches the
// input literally in SCAN MATCH.
std::string glob_escape(std::string_view s);

// Pattern matching every key that starts with prefix+keyspace+key_prefix.
std::string prefix_pattern(std::string_view prefix, std::string_view keyspace,
                           std::string_view key_prefix);

}  // namespace cachekit
