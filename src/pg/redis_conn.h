// The backend's Redis connections and the policy for when Redis fails.
//
// One connection per endpoint per backend (the cache and, when it is another
// server or database, the session store), opened lazily on first use, kept
// for the backend's life, re-established after a failure behind a circuit
// breaker (cachekit.redis_retry_interval_ms).
//
// When Redis is unavailable, run() returns nullopt after emitting at most one
// WARNING per outage, so callers treat reads as misses and skip writes; with
// cachekit.strict = on it throws instead. Redis error replies that mean the
// caller's request was wrong (WRONGTYPE, a non-integer INCR) are thrown as
// errors; OOM (Redis full) and NOAUTH (password missing) are treated like
// unavailability: the call is skipped with one WARNING.
//
// The password comes from the URL or, when the URL has none, from
// cachekit.redis_password_file (re-read when the file changes).
#pragma once

#include <optional>
#include <vector>

#include "core/redis_client.h"

namespace cachekit::pg {

enum class RedisTarget { kCache, kSession };

// The connection for `target`, (re)configured from the current settings.
ResilientRedis &redis_for(RedisTarget target);

std::optional<RedisReply> run(RedisTarget target, const RedisArgv &argv);
std::optional<std::vector<RedisReply>> run_pipeline(RedisTarget target,
                                                    const std::vector<RedisArgv> &commands);

// Throws cachekit::Error for an error reply (after run() handled OOM/NOAUTH).
void check_reply(const RedisReply &reply);

// The endpoint the session store uses: cachekit.session_redis_url, or
// database 1 of cachekit.redis_url when that is empty.
RedisEndpoint session_endpoint();

}  // namespace cachekit::pg
