// Thin synchronous Redis client over hiredis, plus the resilient wrapper the
// backend uses (lazy connect, reconnect after failure, circuit breaker).
//
// Everything here is pure C++: no Postgres headers, no palloc, no ereport.
// Failures are reported as exceptions (RedisUnavailable) or as replies of type
// kError (a Redis error reply such as WRONGTYPE or OOM).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/circuit_breaker.h"
#include "core/error.h"
#include "core/redis_url.h"

struct redisContext;

namespace cachekit {

struct RedisReply {
  enum class Type { kNil, kStatus, kError, kInteger, kString, kArray };
  Type type = Type::kNil;
  long long integer = 0;
  std::string str;  // kStatus, kError, kString
  std::vector<RedisReply> elements;

  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
};

// The connection is unusable (refused, timed out, reset, authentication
// failed, protocol error). SQLSTATE 08006 (08001 for connect failures).
class RedisUnavailable : public Error {
 public:
  using Error::Error;
};

struct RedisTimeouts {
  int connect_ms = 200;
  int command_ms = 200;
  bool operator==(const RedisTimeouts &o) const {
    return connect_ms == o.connect_ms && command_ms == o.command_ms;
  }
};

using RedisArgv = std::vector<std::string_view>;

class RedisClient {
 public:
  RedisClient(RedisEndpoint endpoint, RedisTimeouts timeouts);
  ~RedisClient();
  RedisClient(const RedisClient &) = delete;
  RedisClient &operator=(const RedisClient &) = delete;

  // Connects (AUTH, SELECT) if not connected. Throws RedisUnavailable.
  void connect();
  bool connected() const { return ctx_ != nullptr; }
  void disconnect();

  // One command; arguments are binary-safe. Connects first if needed. On any
  // I/O error or timeout the connection is dropped and RedisUnavailable is
  // thrown. Error replies are returned, not thrown.
  RedisReply command(const RedisArgv &argv);
  // Several commands in one round trip; one reply per command, in order.
  std::vector<RedisReply> pipeline(const std::vector<RedisArgv> &commands);

  // Writes the commands (one write in the common case) without reading
  // their replies; read_unread() reads them. Until then
  // command() and pipeline() must not be called (their replies would be
  // taken for these): ResilientRedis guarantees that. Throws
  // RedisUnavailable when the commands could not be written.
  void send(const std::vector<RedisArgv> &commands);
  // The replies of everything send() wrote, in order. Throws
  // RedisUnavailable (and forgets them) when they cannot be read.
  std::vector<RedisReply> read_unread();
  size_t unread() const { return unread_; }

  const RedisEndpoint &endpoint() const { return endpoint_; }
  const RedisTimeouts &timeouts() const { return timeouts_; }

 private:
  [[noreturn]] void fail(const char *sqlstate, const std::string &what);

  RedisEndpoint endpoint_;
  RedisTimeouts timeouts_;
  redisContext *ctx_ = nullptr;
  size_t unread_ = 0;  // replies of send() not read yet
};

// Milliseconds on a monotonic clock; replaceable in tests.
using MonotonicClock = std::function<int64_t()>;
int64_t steady_now_ms();

// A RedisClient behind a circuit breaker: what a backend keeps per Redis
// endpoint for its whole life.
class ResilientRedis {
 public:
  explicit ResilientRedis(MonotonicClock clock = steady_now_ms);

  // (Re)configures; drops the connection if the endpoint or timeouts changed.
  void configure(const RedisEndpoint &endpoint, const RedisTimeouts &timeouts,
                 int64_t retry_interval_ms);

  // nullopt when the breaker refused the call or the call failed with
  // RedisUnavailable (the failure is recorded and last_error() describes it).
  std::optional<RedisReply> command(const RedisArgv &argv);
  std::optional<std::vector<RedisReply>> pipeline(const std::vector<RedisArgv> &commands);

  // Like command(), but ignores an open breaker (for health checks).
  std::optional<RedisReply> probe(const RedisArgv &argv);

  // Deferred commands: written now, their replies read before the next
  // command on this connection (a Redis connection is FIFO, so that command
  // sees their effect) or by settle(). The caller learns the outcome from
  // the handler, called once per send_deferred() that returned true: ok
  // when every reply came back and none was an error. At most one batch is
  // outstanding: send_deferred() settles the previous one first.
  using DeferredHandler = std::function<void(
      uint64_t token, bool ok, const std::vector<RedisReply> &replies, const std::string &error)>;
  void set_deferred_handler(DeferredHandler handler) { deferred_handler_ = std::move(handler); }
  // false (nothing outstanding, no handler call) when the breaker refused
  // or the write failed (recorded like any failure).
  bool send_deferred(const std::vector<RedisArgv> &commands, uint64_t token);
  // Reads the outstanding replies now, if any (bounded by the command
  // timeout), and reports them to the handler. Never throws.
  void settle() noexcept;
  bool has_deferred() const { return deferred_; }

  const CircuitBreaker &breaker() const { return breaker_; }
  CircuitBreaker &breaker() { return breaker_; }
  const std::string &last_error() const { return last_error_; }
  const char *last_error_sqlstate() const { return last_error_sqlstate_; }
  bool configured() const { return client_ != nullptr; }
  const RedisEndpoint &endpoint() const;

 private:
  template <typename T, typename F>
  std::optional<T> guarded(F &&call, bool honour_breaker);

  void record_unavailable(const RedisUnavailable &e);

  MonotonicClock clock_;
  CircuitBreaker breaker_;
  DeferredHandler deferred_handler_;
  bool deferred_ = false;
  uint64_t deferred_token_ = 0;
  std::unique_ptr<RedisClient> client_;
  std::string last_error_;
  std::string last_failure_;  // text of the last real failure (not "breaker is open")
  char last_error_sqlstate_[6] = "08006";
};

}  // namespace cachekit
