#include "core/redis_client.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

namespace cachekit {

namespace {

struct ReplyDeleter {
  void operator()(redisReply *r) const {
    if (r != nullptr) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(int ms) {
  timeval tv;
  tv.tv_sec = ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(ms % 1000) * 1000;
  return tv;
}

RedisReply convert(const redisReply *r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i]));
      break;
    case REDIS_REPLY_NIL:
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

// Server error texts end with a period; our messages do not.
std::string server_text(const redisReply *r) {
  std::string s(r->str, r->len);
  while (!s.empty() && (s.back() == '.' || s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// Why the last call on `ctx` failed. Call right after the failing hiredis call
// (errno is still the one it saw).
std::string io_reason(const redisContext *ctx, int saved_errno, const RedisTimeouts &timeouts) {
  if (ctx == nullptr) return "out of memory";
  if (ctx->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
    return "timed out after " + std::to_string(timeouts.command_ms) + " ms";
  if (ctx->err == REDIS_ERR_OOM) return "out of memory";
  if (ctx->err != 0 && ctx->errstr[0] != '\0') return ctx->errstr;
  return "unknown error";
}

void fill_argv(const RedisArgv &argv, std::vector<const char *> &ptrs,
               std::vector<std::size_t> &lens) {
  ptrs.clear();
  lens.clear();
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (std::string_view a : argv) {
    // hiredis never dereferences a zero-length argument, but give it a valid pointer anyway.
    ptrs.push_back(a.data() != nullptr ? a.data() : "");
    lens.push_back(a.size());
  }
}

void check_argv(const RedisArgv &argv) {
  if (argv.empty()) throw Error(sqlstate::kInternalError, "empty Redis command");
}

}  // namespace

RedisClient::RedisClient(RedisEndpoint endpoint, RedisTimeouts timeouts)
    : endpoint_(std::move(endpoint)), timeouts_(timeouts) {}

RedisClient::~RedisClient() { disconnect(); }

void RedisClient::disconnect() {
  unread_ = 0;
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

void RedisClient::fail(const char *sqlstate, const std::string &what) {
  disconnect();
  throw RedisUnavailable(sqlstate, what);
}

void RedisClient::connect() {
  if (ctx_ != nullptr) return;
  const std::string where = endpoint_.address();
  const std::string cannot_connect = "could not connect to Redis at " + where + ": ";

  redisContext *c = nullptr;
  const bool unix_socket = endpoint_.transport == RedisEndpoint::Transport::kUnix;
  if (unix_socket) {
    c = timeouts_.connect_ms > 0 ? redisConnectUnixWithTimeout(endpoint_.socket_path.c_str(),
                                                               to_timeval(timeouts_.connect_ms))
                                 : redisConnectUnix(endpoint_.socket_path.c_str());
  } else {
    c = timeouts_.connect_ms > 0 ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                                           to_timeval(timeouts_.connect_ms))
                                 : redisConnect(endpoint_.host.c_str(), endpoint_.port);
  }
  if (c == nullptr)
    throw RedisUnavailable(sqlstate::kUnableToConnect, cannot_connect + "out of memory");
  if (c->err != 0) {
    std::string msg = cannot_connect + (c->errstr[0] != '\0' ? c->errstr : "unknown error");
    redisFree(c);
    throw RedisUnavailable(sqlstate::kUnableToConnect, msg);
  }
  ctx_ = c;

  if (timeouts_.command_ms > 0 &&
      redisSetTimeout(ctx_, to_timeval(timeouts_.command_ms)) != REDIS_OK)
    fail(sqlstate::kUnableToConnect, cannot_connect + io_reason(ctx_, errno, timeouts_));
  if (!unix_socket && redisEnableKeepAlive(ctx_) != REDIS_OK)
    fail(sqlstate::kUnableToConnect, cannot_connect + io_reason(ctx_, errno, timeouts_));

  // One handshake command; an error reply or an I/O failure makes the
  // connection unusable.
  auto handshake = [&](const RedisArgv &argv, const std::string &refused) {
    std::vector<const char *> ptrs;
    std::vector<std::size_t> lens;
    fill_argv(argv, ptrs, lens);
    void *raw = redisCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
    if (raw == nullptr)
      fail(sqlstate::kUnableToConnect, cannot_connect + io_reason(ctx_, errno, timeouts_));
    ReplyPtr reply(static_cast<redisReply *>(raw));
    if (reply->type == REDIS_REPLY_ERROR)
      fail(sqlstate::kUnableToConnect, refused + ": " + server_text(reply.get()));
  };

  try {
    if (!endpoint_.password.empty()) {
      RedisArgv auth = endpoint_.username.empty()
                           ? RedisArgv{"AUTH", endpoint_.password}
                           : RedisArgv{"AUTH", endpoint_.username, endpoint_.password};
      handshake(auth, "could not authenticate to Redis at " + where);
    }
    if (endpoint_.db != 0) {
      const std::string db = std::to_string(endpoint_.db);
      handshake({"SELECT", db}, "could not select database " + db + " on Redis at " + where);
    }
  } catch (const RedisUnavailable &) {
    throw;
  } catch (...) {
    disconnect();
    throw;
  }
}

RedisReply RedisClient::command(const RedisArgv &argv) {
  check_argv(argv);
  std::vector<const char *> ptrs;
  std::vector<std::size_t> lens;
  fill_argv(argv, ptrs, lens);
  connect();
  void *raw = redisCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data());
  if (raw == nullptr) {
    const int saved_errno = errno;
    fail(sqlstate::kConnectionFailure, "could not communicate with Redis at " +
                                           endpoint_.address() + ": " +
                                           io_reason(ctx_, saved_errno, timeouts_));
  }
  // The reply has been consumed, so the connection stays in sync even if
  // the conversion throws (bad_alloc).
  ReplyPtr reply(static_cast<redisReply *>(raw));
  return convert(reply.get());
}

std::vector<RedisReply> RedisClient::pipeline(const std::vector<RedisArgv> &commands) {
  std::vector<RedisReply> replies;
  if (commands.empty()) return replies;
  for (const RedisArgv &argv : commands) check_argv(argv);
  connect();

  auto io_failure = [&](int saved_errno) {
    fail(sqlstate::kConnectionFailure, "could not communicate with Redis at " +
                                           endpoint_.address() + ": " +
                                           io_reason(ctx_, saved_errno, timeouts_));
  };

  try {
    std::vector<const char *> ptrs;
    std::vector<std::size_t> lens;
    for (const RedisArgv &argv : commands) {
      fill_argv(argv, ptrs, lens);
      if (redisAppendCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()) !=
          REDIS_OK)
        io_failure(errno);
    }
    replies.reserve(commands.size());
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void *raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) io_failure(errno);
      ReplyPtr reply(static_cast<redisReply *>(raw));
      replies.push_back(convert(reply.get()));
    }
  } catch (const RedisUnavailable &) {
    throw;
  } catch (...) {
    // Commands may be half written or replies unread: the connection is out of sync.
    disconnect();
    throw;
  }
  return replies;
}

void RedisClient::send(const std::vector<RedisArgv> &commands) {
  if (commands.empty()) return;
  for (const RedisArgv &argv : commands) check_argv(argv);
  connect();
  auto io_failure = [&](int saved_errno) {
    fail(sqlstate::kConnectionFailure, "could not communicate with Redis at " +
                                           endpoint_.address() + ": " +
                                           io_reason(ctx_, saved_errno, timeouts_));
  };
  try {
    std::vector<const char *> ptrs;
    std::vector<std::size_t> lens;
    for (const RedisArgv &argv : commands) {
      fill_argv(argv, ptrs, lens);
      if (redisAppendCommandArgv(ctx_, static_cast<int>(ptrs.size()), ptrs.data(), lens.data()) !=
          REDIS_OK)
        io_failure(errno);
    }
    // A blocking socket: this returns once the kernel took everything (at
    // once unless its buffer is full; then within the command timeout).
    int done = 0;
    do {
      if (redisBufferWrite(ctx_, &done) != REDIS_OK) io_failure(errno);
    } while (!done);
  } catch (const RedisUnavailable &) {
    throw;
  } catch (...) {
    disconnect();
    throw;
  }
  unread_ += commands.size();
}

std::vector<RedisReply> RedisClient::read_unread() {
  std::vector<RedisReply> replies;
  if (unread_ == 0) return replies;
  if (ctx_ == nullptr) {
    unread_ = 0;
    throw RedisUnavailable(sqlstate::kConnectionFailure,
                           "the connection to Redis at " + endpoint_.address() +
                               " was closed before its replies were read");
  }
  try {
    replies.reserve(unread_);
    while (unread_ > 0) {
      void *raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        const int saved_errno = errno;
        fail(sqlstate::kConnectionFailure, "could not communicate with Redis at " +
                                               endpoint_.address() + ": " +
                                               io_reason(ctx_, saved_errno, timeouts_));
      }
      --unread_;
      ReplyPtr reply(static_cast<redisReply *>(raw));
      replies.push_back(convert(reply.get()));
    }
  } catch (const RedisUnavailable &) {
    throw;
  } catch (...) {
    disconnect();
    throw;
  }
  return replies;
}

int64_t steady_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

ResilientRedis::ResilientRedis(MonotonicClock clock) : clock_(std::move(clock)) {
  if (!clock_) clock_ = steady_now_ms;
}

void ResilientRedis::configure(const RedisEndpoint &endpoint, const RedisTimeouts &timeouts,
                               int64_t retry_interval_ms) {
  breaker_.set_retry_interval(retry_interval_ms);
  if (client_ && client_->endpoint() == endpoint && client_->timeouts() == timeouts) return;
  settle();  // the old connection's replies, before it goes
  const bool new_endpoint = !client_ || client_->endpoint() != endpoint;
  client_ = std::make_unique<RedisClient>(endpoint, timeouts);
  // A failure of the old endpoint says nothing about the new one.
  if (new_endpoint) breaker_.reset();
}

const RedisEndpoint &ResilientRedis::endpoint() const {
  static const RedisEndpoint kUnconfigured;
  return client_ ? client_->endpoint() : kUnconfigured;
}

void ResilientRedis::record_unavailable(const RedisUnavailable &e) {
  breaker_.record_failure(clock_());
  last_failure_ = e.what();
  last_error_ = last_failure_;
  std::memcpy(last_error_sqlstate_, e.sqlstate(), sizeof last_error_sqlstate_);
}

void ResilientRedis::settle() noexcept {
  if (!deferred_) return;
  deferred_ = false;
  const uint64_t token = deferred_token_;
  bool ok = false;
  std::string error;
  std::vector<RedisReply> replies;
  try {
    replies = client_->read_unread();
    breaker_.record_success();
    ok = true;
    for (const RedisReply &r : replies)
      if (r.is_error()) {
        ok = false;
        error = r.str;
        break;
      }
  } catch (const RedisUnavailable &e) {
    record_unavailable(e);
    error = e.what();
  } catch (...) {
    // Out of memory: the connection was dropped, the outcome is unknown.
    error = "the replies could not be read";
  }
  if (!deferred_handler_) return;
  try {
    deferred_handler_(token, ok, replies, error);
  } catch (...) {
    // The handler must not throw; nothing sensible is left to do here.
  }
}

bool ResilientRedis::send_deferred(const std::vector<RedisArgv> &commands, uint64_t token) {
  settle();
  if (commands.empty()) return false;
  auto sent = guarded<bool>(
      [&](RedisClient &c) {
        c.send(commands);
        return true;
      },
      true);
  if (!sent) return false;
  deferred_ = true;
  deferred_token_ = token;
  return true;
}

template <typename T, typename F>
std::optional<T> ResilientRedis::guarded(F &&call, bool honour_breaker) {
  // Replies of deferred commands come first on the connection.
  settle();
  if (!client_) {
    last_error_ = "the Redis connection is not configured";
    std::memcpy(last_error_sqlstate_, sqlstate::kUnableToConnect, sizeof last_error_sqlstate_);
    return std::nullopt;
  }
  const int64_t now = clock_();
  if (honour_breaker && !breaker_.allow(now)) {
    int64_t wait = breaker_.open_until_ms() - now;
    if (wait < 0) wait = 0;
    last_error_ = "Redis circuit breaker is open, next retry in " + std::to_string(wait) + " ms";
    if (!last_failure_.empty()) last_error_ += " (last error: " + last_failure_ + ")";
    return std::nullopt;
  }
  try {
    T result = call(*client_);
    breaker_.record_success();
    return std::optional<T>(std::move(result));
  } catch (const RedisUnavailable &e) {
    record_unavailable(e);
    return std::nullopt;
  } catch (...) {
    // Not an outage (a programming error, out of memory), but a trial call of
    // a half-open breaker must not leave it half-open forever.
    if (breaker_.state() == CircuitBreaker::State::kHalfOpen) breaker_.record_failure(clock_());
    throw;
  }
}

std::optional<RedisReply> ResilientRedis::command(const RedisArgv &argv) {
  return guarded<RedisReply>([&](RedisClient &c) { return c.command(argv); }, true);
}

std::optional<std::vector<RedisReply>> ResilientRedis::pipeline(
    const std::vector<RedisArgv> &commands) {
  return guarded<std::vector<RedisReply>>([&](RedisClient &c) { return c.pipeline(commands); },
                                          true);
}

std::optional<RedisReply> ResilientRedis::probe(const RedisArgv &argv) {
  return guarded<RedisReply>([&](RedisClient &c) { return c.command(argv); }, false);
}

}  // namespace cachekit
