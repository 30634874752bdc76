// Redis keys of the key/value cache and the session store:
// <cachekit.key_prefix>kv:<namespace>:<key> and ...sess:<namespace>:<sid>,
// where the namespace is cachekit.kv_namespace or, when that is empty, the
// current database's name (see core/keys.h).
#pragma once

#include <string>
#include <string_view>

namespace cachekit::pg {

// Validates the key (throws cachekit::Error) and returns the Redis key.
std::string kv_key(std::string_view key);
std::string session_key(std::string_view sid);

// SCAN MATCH pattern of every key/value key of this namespace starting with
// key_prefix (taken literally).
std::string kv_prefix_pattern(std::string_view key_prefix);

}  // namespace cachekit::pg
