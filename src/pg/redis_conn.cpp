#include <chrono>
#include <string>

#include "core/redis_url.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"

namespace cachekit::pg {

namespace {

struct Connection {
  ResilientRedis redis;
  uint64_t generation = 0;      // redis_config_generation it was configured at
  bool refusal_warned = false;  // OOM / NOAUTH reported since the last success
};

Connection connections[2];

RedisTimeouts current_timeouts() {
  return RedisTimeouts{settings.connect_timeout_ms, settings.command_timeout_ms};
}

void warn(const char *message, const std::string &detail, const char *hint) {
  pg_call([&] {
    ereport(WARNING, (errcode(ERRCODE_CONNECTION_FAILURE), errmsg("%s", message),
                      errdetail("%s", detail.c_str()), errhint("%s", hint)));
  });
}

// Redis did not answer. The cause (with the server address, never the
// password) goes to the DETAIL so the message itself stays stable.
void handle_unavailable(Connection &c, const char *sqlstate, const std::string &why) {
  count(CacheCounter::kErrors);
  if (settings.strict)
    throw Error(sqlstate, "Redis is unavailable", why,
                "Set cachekit.strict = off to treat an unavailable Redis as a cache miss.");
  if (c.redis.breaker().take_outage_warning())
    warn("Redis is unavailable, cache reads miss and writes are skipped", why,
         "This warning is shown once per outage and backend; see cachekit.health().");
}

void observe(std::chrono::steady_clock::time_point start) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  count(CacheCounter::kOps);
  count(CacheCounter::kOpTimeUs, static_cast<uint64_t>(us));
}

bool is_oom(const RedisReply &r) { return r.is_error() && r.str.rfind("OOM", 0) == 0; }
bool is_noauth(const RedisReply &r) { return r.is_error() && r.str.rfind("NOAUTH", 0) == 0; }

template <typename Result>
std::optional<Result> finish(Connection &c, std::optional<Result> result) {
  if (!result) {
    handle_unavailable(c, c.redis.last_error_sqlstate(), c.redis.last_error());
    return std::nullopt;
  }
  return result;
}

// Redis answered, but refuses to do its job: full, or the password is
// missing. Like an outage for the caller (skip, warn once), not a bad call.
bool refused(Connection &c, const RedisReply &reply) {
  if (!is_oom(reply) && !is_noauth(reply)) return false;
  count(CacheCounter::kErrors);
  const bool oom = is_oom(reply);
  const char *what = oom ? "Redis is full, cache writes are skipped"
                         : "Redis requires authentication, cache calls are skipped";
  const char *hint =
      oom ? "Raise maxmemory or set an eviction policy such as allkeys-lru in Redis."
          : "Put the password in cachekit.redis_url (redis://:password@host:port/db).";
  if (settings.strict)
    throw Error(oom ? sqlstate::kOutOfMemory : sqlstate::kUnableToConnect, what, reply.str, hint);
  if (!c.refusal_warned) {
    c.refusal_warned = true;
    warn(what, reply.str, hint);
  }
  return true;
}

}  // namespace

RedisEndpoint session_endpoint() {
  if (settings.session_redis_url && settings.session_redis_url[0] != '\0')
    return parse_redis_url(settings.session_redis_url);
  RedisEndpoint ep = parse_redis_url(settings.redis_url);
  ep.db = 1;
  return ep;
}

ResilientRedis &redis_for(RedisTarget target) {
  Connection &c = connections[static_cast<int>(target)];
  if (c.generation != redis_config_generation) {
    RedisEndpoint ep =
        target == RedisTarget::kCache ? parse_redis_url(settings.redis_url) : session_endpoint();
    c.redis.configure(ep, current_timeouts(), settings.retry_interval_ms);
    c.generation = redis_config_generation;
  }
  return c.redis;
}

std::optional<RedisReply> run(RedisTarget target, const RedisArgv &argv) {
  Connection &c = connections[static_cast<int>(target)];
  ResilientRedis &redis = redis_for(target);
  auto start = std::chrono::steady_clock::now();
  std::optional<RedisReply> reply = finish(c, redis.command(argv));
  if (!reply) return reply;
  observe(start);
  if (refused(c, *reply)) return std::nullopt;
  if (!reply->is_error()) c.refusal_warned = false;
  return reply;
}

std::optional<std::vector<RedisReply>> run_pipeline(RedisTarget target,
                                                    const std::vector<RedisArgv> &commands) {
  Connection &c = connections[static_cast<int>(target)];
  ResilientRedis &redis = redis_for(target);
  auto start = std::chrono::steady_clock::now();
  auto replies = finish(c, redis.pipeline(commands));
  if (!replies) return replies;
  observe(start);
  for (const RedisReply &r : *replies)
    if (refused(c, r)) return std::nullopt;
  return replies;
}

void check_reply(const RedisReply &reply) {
  if (!reply.is_error()) return;
  if (reply.str.rfind("WRONGTYPE", 0) == 0)
    throw Error(sqlstate::kWrongObjectType, "Redis key holds a value of another type", reply.str,
                "pg_cachekit reads and writes plain string values only.");
  throw Error(sqlstate::kSystemError, "Redis returned an error", reply.str);
}

}  // namespace cachekit::pg
