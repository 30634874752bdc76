#include <sys/stat.h>

#include <chrono>
#include <string>
#include <utility>

#include "core/redis_url.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/worker_log.h"

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

// In a worker with its prefix ("cachekit relay: ..."); a backend's client
// sees the message as it is.
void warn(const char *message, const std::string &detail, const char *hint) {
  worker_log(WARNING, log_component(), {}, "08006", message, detail, hint);
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
          : "Put the Redis password in a file readable only by the server's operating system "
            "user and set cachekit.redis_password_file to its path.";
  if (settings.strict)
    throw Error(oom ? sqlstate::kOutOfMemory : sqlstate::kUnableToConnect, what, reply.str, hint);
  if (!c.refusal_warned) {
    c.refusal_warned = true;
    warn(what, reply.str, hint);
  }
  return true;
}

// cachekit.redis_password_file, read when the setting changes and when the
// file does (its identity and times are compared at most once a second), so
// a rotated password reaches every backend without a reload.
struct PasswordFile {
  std::string path;
  struct stat st {};
  bool exists = false;
  std::string password;
  std::chrono::steady_clock::time_point checked{};
};

PasswordFile password_file;

bool same_file(const struct stat &a, const struct stat &b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size &&
         a.st_mode == b.st_mode && a.st_uid == b.st_uid && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec &&
         a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// Re-reads the file if it may have changed; bumps redis_config_generation
// when what it yields did, so that connections are re-made with it.
void refresh_password_file() {
  const char *setting = settings.redis_password_file ? settings.redis_password_file : "";
  auto now = std::chrono::steady_clock::now();
  PasswordFile &f = password_file;
  if (f.path == setting && now - f.checked < std::chrono::seconds(1)) return;
  f.checked = now;
  struct stat st {};
  const bool exists = setting[0] != '\0' && stat(setting, &st) == 0;
  if (f.path == setting && exists == f.exists && (!exists || same_file(st, f.st))) return;
  f.path = setting;
  f.exists = exists;
  f.st = st;
  std::string password;
  if (setting[0] != '\0') {
    try {
      password = read_password_file(setting);
    } catch (const Error &e) {
      // Like a wrong password: Redis will refuse the connection, and the
      // calls are skipped with a warning (or fail under cachekit.strict).
      warn("Redis password file is not used", e.detail(), e.hint().c_str());
    }
  }
  if (password != f.password) {
    f.password = std::move(password);
    ++redis_config_generation;
  }
}

RedisEndpoint with_file_password(RedisEndpoint ep) {
  if (ep.password.empty()) ep.password = password_file.password;
  return ep;
}

}  // namespace

RedisEndpoint session_endpoint() {
  if (settings.session_redis_url && settings.session_redis_url[0] != '\0')
    return with_file_password(parse_redis_url(settings.session_redis_url));
  RedisEndpoint ep = with_file_password(parse_redis_url(settings.redis_url));
  ep.db = 1;
  return ep;
}

ResilientRedis &redis_for(RedisTarget target) {
  Connection &c = connections[static_cast<int>(target)];
  refresh_password_file();
  if (c.generation != redis_config_generation) {
    RedisEndpoint ep = target == RedisTarget::kCache
                           ? with_file_password(parse_redis_url(settings.redis_url))
                           : session_endpoint();
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
