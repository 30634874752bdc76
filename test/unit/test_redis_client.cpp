// Tests of RedisClient and ResilientRedis against real, throwaway
// redis-server processes (one per test, on a free port and a unix socket in a
// temporary directory). Skipped when redis-server is not on PATH.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/redis_client.h"
#include "redis_server.h"

namespace cachekit {
namespace {

using namespace std::string_literals;
using test::Clock;
using test::elapsed_ms;
using test::free_port;
using test::RedisServer;
using test::RedisTest;
using Type = RedisReply::Type;

const RedisTimeouts kTimeouts{2000, 2000};

RedisUnavailable expect_unavailable(RedisClient &c, const RedisArgv &argv) {
  try {
    RedisReply r = c.command(argv);
    ADD_FAILURE() << "command succeeded, reply type " << static_cast<int>(r.type) << ": " << r.str;
  } catch (const RedisUnavailable &e) {
    return e;
  } catch (const std::exception &e) {
    ADD_FAILURE() << "unexpected exception: " << e.what();
  }
  return RedisUnavailable(sqlstate::kInternalError, "no exception");
}

// A fixture with one plain server already running.
class RedisClientTest : public RedisTest {
 protected:
  void SetUp() override {
    RedisTest::SetUp();
    if (IsSkipped()) return;
    start(server_);
  }
  RedisServer server_;
};

TEST_F(RedisClientTest, SetGetOverTcp) {
  RedisClient c(server_.tcp(), kTimeouts);
  EXPECT_FALSE(c.connected()) << "connects lazily";
  RedisReply set = c.command({"SET", "greeting", "hello"});
  EXPECT_TRUE(c.connected());
  EXPECT_EQ(set.type, Type::kStatus);
  EXPECT_EQ(set.str, "OK");
  RedisReply get = c.command({"GET", "greeting"});
  EXPECT_EQ(get.type, Type::kString);
  EXPECT_EQ(get.str, "hello");
  RedisReply missing = c.command({"GET", "nope"});
  EXPECT_TRUE(missing.is_nil());
  EXPECT_EQ(missing.type, Type::kNil);
  RedisReply del = c.command({"DEL", "greeting"});
  EXPECT_EQ(del.type, Type::kInteger);
  EXPECT_EQ(del.integer, 1);
}

TEST_F(RedisClientTest, BinarySafeKeysAndValues) {
  std::string value;
  for (int i = 0; i < 256; ++i) value.push_back(static_cast<char>(i));
  value += "\0\0tail"s;
  const std::string key = "bin\0key"s;
  RedisClient c(server_.tcp(), kTimeouts);
  EXPECT_EQ(c.command({"SET", key, value}).str, "OK");
  RedisReply get = c.command({"GET", key});
  ASSERT_EQ(get.type, Type::kString);
  EXPECT_EQ(get.str.size(), value.size());
  EXPECT_EQ(get.str, value);
  EXPECT_EQ(c.command({"STRLEN", key}).integer, static_cast<long long>(value.size()));
  // The NUL is part of the key, not its end.
  EXPECT_TRUE(c.command({"GET", "bin"}).is_nil());
  // Empty values and keys are values too.
  EXPECT_EQ(c.command({"SET", "empty", ""}).str, "OK");
  RedisReply empty = c.command({"GET", "empty"});
  EXPECT_EQ(empty.type, Type::kString);
  EXPECT_EQ(empty.str, "");
}

TEST_F(RedisClientTest, LargeValue) {
  std::string big(8 * 1024 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 % 251);
  RedisClient c(server_.tcp(), kTimeouts);
  EXPECT_EQ(c.command({"SET", "big", big}).str, "OK");
  RedisReply get = c.command({"GET", "big"});
  EXPECT_EQ(get.str.size(), big.size());
  EXPECT_TRUE(get.str == big);
}

TEST_F(RedisClientTest, ReplyTypesAndNestedArrays) {
  RedisClient c(server_.tcp(), kTimeouts);
  RedisReply pong = c.command({"PING"});
  EXPECT_EQ(pong.type, Type::kStatus);
  EXPECT_EQ(pong.str, "PONG");
  RedisReply incr = c.command({"INCRBY", "n", "-5"});
  EXPECT_EQ(incr.type, Type::kInteger);
  EXPECT_EQ(incr.integer, -5);

  c.command({"RPUSH", "list", "a", "", "c\0d"s});
  RedisReply range = c.command({"LRANGE", "list", "0", "-1"});
  ASSERT_EQ(range.type, Type::kArray);
  ASSERT_EQ(range.elements.size(), 3u);
  EXPECT_EQ(range.elements[0].str, "a");
  EXPECT_EQ(range.elements[1].str, "");
  EXPECT_EQ(range.elements[2].str, "c\0d"s);

  RedisReply empty = c.command({"LRANGE", "nolist", "0", "-1"});
  EXPECT_EQ(empty.type, Type::kArray);
  EXPECT_TRUE(empty.elements.empty());

  // SCAN answers [cursor, [keys...]].
  RedisReply scan = c.command({"SCAN", "0", "MATCH", "lis*", "COUNT", "1000"});
  ASSERT_EQ(scan.type, Type::kArray);
  ASSERT_EQ(scan.elements.size(), 2u);
  EXPECT_EQ(scan.elements[0].type, Type::kString);
  EXPECT_EQ(scan.elements[0].str, "0");
  ASSERT_EQ(scan.elements[1].type, Type::kArray);
  ASSERT_EQ(scan.elements[1].elements.size(), 1u);
  EXPECT_EQ(scan.elements[1].elements[0].str, "list");

  // MGET mixes strings and nils.
  RedisReply mget = c.command({"MGET", "n", "missing"});
  ASSERT_EQ(mget.elements.size(), 2u);
  EXPECT_EQ(mget.elements[0].str, "-5");
  EXPECT_TRUE(mget.elements[1].is_nil());
}

TEST_F(RedisClientTest, ErrorRepliesAreReturnedNotThrown) {
  RedisClient c(server_.tcp(), kTimeouts);
  c.command({"RPUSH", "list", "x"});
  RedisReply wrong = c.command({"GET", "list"});
  EXPECT_TRUE(wrong.is_error());
  EXPECT_EQ(wrong.type, Type::kError);
  EXPECT_EQ(wrong.str.rfind("WRONGTYPE", 0), 0u) << wrong.str;
  EXPECT_TRUE(c.connected()) << "an error reply does not break the connection";

  RedisReply unknown = c.command({"NO_SUCH_COMMAND", "x"});
  EXPECT_TRUE(unknown.is_error());
  EXPECT_NE(unknown.str.find("unknown command"), std::string::npos) << unknown.str;

  c.command({"SET", "s", "abc"});
  RedisReply not_int = c.command({"INCR", "s"});
  EXPECT_TRUE(not_int.is_error());
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST_F(RedisClientTest, EmptyCommandIsAProgrammingError) {
  RedisClient c(server_.tcp(), kTimeouts);
  try {
    c.command({});
    FAIL() << "empty command accepted";
  } catch (const RedisUnavailable &) {
    FAIL() << "an empty command is not an outage";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInternalError);
  }
  EXPECT_THROW(c.pipeline({{"PING"}, {}}), Error);
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST_F(RedisClientTest, PipelineRepliesInOrder) {
  RedisClient c(server_.tcp(), kTimeouts);
  std::vector<RedisArgv> commands;
  // RedisArgv holds string_views: the strings must outlive the call.
  std::vector<std::string> keys, amounts;
  for (int i = 0; i < 200; ++i) {
    keys.push_back("k" + std::to_string(i));
    amounts.push_back(std::to_string(i));
  }
  const std::string binary = "a\0b"s;
  for (int i = 0; i < 200; ++i) commands.push_back({"INCRBY", keys[i], amounts[i]});
  commands.push_back({"RPUSH", "list", "x"});
  commands.push_back({"GET", "list"});  // an error in the middle
  commands.push_back({"GET", "k7"});
  commands.push_back({"GET", "missing"});
  commands.push_back({"SET", "bin", binary});
  commands.push_back({"GET", "bin"});
  std::vector<RedisReply> replies = c.pipeline(commands);
  ASSERT_EQ(replies.size(), commands.size());
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(replies[i].type, Type::kInteger);
    EXPECT_EQ(replies[i].integer, i);
  }
  EXPECT_EQ(replies[200].integer, 1);
  EXPECT_TRUE(replies[201].is_error());
  EXPECT_EQ(replies[202].str, "7");
  EXPECT_TRUE(replies[203].is_nil());
  EXPECT_EQ(replies[204].str, "OK");
  EXPECT_EQ(replies[205].str, "a\0b"s);
  // The connection is still in sync afterwards.
  EXPECT_EQ(c.command({"GET", "k199"}).str, "199");
}

TEST_F(RedisClientTest, PipelineWithTransaction) {
  RedisClient c(server_.tcp(), kTimeouts);
  std::vector<RedisReply> replies =
      c.pipeline({{"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"GET", "nope"}, {"EXEC"}});
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[0].str, "OK");
  EXPECT_EQ(replies[1].str, "QUEUED");
  ASSERT_EQ(replies[4].type, Type::kArray);
  ASSERT_EQ(replies[4].elements.size(), 3u);
  EXPECT_EQ(replies[4].elements[0].type, Type::kStatus);
  EXPECT_EQ(replies[4].elements[1].integer, 2);
  EXPECT_TRUE(replies[4].elements[2].is_nil());
}

TEST_F(RedisClientTest, EmptyPipelineDoesNothing) {
  RedisClient c(server_.tcp(), kTimeouts);
  EXPECT_TRUE(c.pipeline({}).empty());
  EXPECT_FALSE(c.connected());
}

TEST_F(RedisClientTest, SelectsTheDatabase) {
  RedisClient db2(server_.tcp(2), kTimeouts);
  RedisClient db0(server_.tcp(0), kTimeouts);
  EXPECT_EQ(db2.command({"SET", "where", "two"}).str, "OK");
  EXPECT_TRUE(db0.command({"GET", "where"}).is_nil());
  EXPECT_EQ(db0.command({"SELECT", "2"}).str, "OK");
  EXPECT_EQ(db0.command({"GET", "where"}).str, "two");
}

TEST_F(RedisClientTest, SelectFailureIsAConnectFailure) {
  RedisClient c(server_.tcp(99), kTimeouts);  // the server has 16 databases
  RedisUnavailable e = expect_unavailable(c, {"PING"});
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_NE(std::string(e.what()).find("could not select database 99"), std::string::npos)
      << e.what();
  EXPECT_FALSE(c.connected());
}

TEST_F(RedisClientTest, UnixSocket) {
  RedisClient c(server_.unix_socket(), kTimeouts);
  EXPECT_EQ(c.command({"SET", "via", "unix"}).str, "OK");
  RedisClient tcp(server_.tcp(), kTimeouts);
  EXPECT_EQ(tcp.command({"GET", "via"}).str, "unix");
  EXPECT_EQ(c.endpoint().address(), server_.socket_path());
}

TEST_F(RedisClientTest, ParsedUrlEndpointsWork) {
  RedisClient tcp(parse_redis_url("redis://127.0.0.1:" + std::to_string(server_.port()) + "/5"),
                  kTimeouts);
  EXPECT_EQ(tcp.command({"SET", "x", "5"}).str, "OK");
  RedisClient unix_db5(parse_redis_url("unix://" + server_.socket_path() + "?db=5"), kTimeouts);
  EXPECT_EQ(unix_db5.command({"GET", "x"}).str, "5");
  RedisClient unix_db0(parse_redis_url("unix://" + server_.socket_path()), kTimeouts);
  EXPECT_TRUE(unix_db0.command({"GET", "x"}).is_nil());
}

TEST_F(RedisClientTest, ConnectionRefused) {
  server_.stop();
  RedisClient c(server_.tcp(), kTimeouts);
  RedisUnavailable e = expect_unavailable(c, {"PING"});
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_EQ(std::string(e.what()), "could not connect to Redis at 127.0.0.1:" +
                                       std::to_string(server_.port()) + ": Connection refused");
  EXPECT_FALSE(c.connected());
  EXPECT_THROW(c.pipeline({{"PING"}}), RedisUnavailable);

  RedisClient u(server_.unix_socket(), kTimeouts);
  RedisUnavailable ue = expect_unavailable(u, {"PING"});
  EXPECT_STREQ(ue.sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_NE(std::string(ue.what()).find("could not connect to Redis at " + server_.socket_path()),
            std::string::npos)
      << ue.what();
}

TEST_F(RedisClientTest, CommandTimeoutDropsTheConnectionAndReconnects) {
  RedisClient c(server_.tcp(), RedisTimeouts{1000, 100});
  ASSERT_EQ(c.command({"PING"}).str, "PONG");
  server_.pause();
  auto t0 = Clock::now();
  RedisUnavailable e = expect_unavailable(c, {"GET", "x"});
  int64_t took = elapsed_ms(t0);
  server_.resume();
  EXPECT_STREQ(e.sqlstate(), sqlstate::kConnectionFailure);
  EXPECT_NE(std::string(e.what()).find("timed out after 100 ms"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server_.port())),
            std::string::npos)
      << e.what();
  EXPECT_GE(took, 90);
  EXPECT_LT(took, 1000);
  EXPECT_FALSE(c.connected());
  // The next call reconnects.
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
  EXPECT_TRUE(c.connected());
}

TEST_F(RedisClientTest, PipelineTimeout) {
  RedisClient c(server_.tcp(), RedisTimeouts{1000, 100});
  ASSERT_EQ(c.command({"SET", "a", "1"}).str, "OK");
  server_.pause();
  EXPECT_THROW(c.pipeline({{"GET", "a"}, {"GET", "a"}}), RedisUnavailable);
  server_.resume();
  EXPECT_FALSE(c.connected());
  std::vector<RedisReply> r = c.pipeline({{"GET", "a"}, {"INCR", "a"}});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].str, "1");
  EXPECT_EQ(r[1].integer, 2);
}

TEST_F(RedisClientTest, ServerGoneThenBack) {
  RedisClient c(server_.tcp(), kTimeouts);
  ASSERT_EQ(c.command({"PING"}).str, "PONG");
  const int port = server_.port();
  server_.stop();
  // The open connection is dead: a command failure.
  RedisUnavailable gone = expect_unavailable(c, {"PING"});
  EXPECT_STREQ(gone.sqlstate(), sqlstate::kConnectionFailure);
  EXPECT_NE(std::string(gone.what()).find("could not communicate with Redis at 127.0.0.1:"),
            std::string::npos)
      << gone.what();
  EXPECT_FALSE(c.connected());
  // Reconnecting is refused.
  EXPECT_STREQ(expect_unavailable(c, {"PING"}).sqlstate(), sqlstate::kUnableToConnect);
  // Back on the same port: the client reconnects by itself.
  start(server_, {}, port);
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
}

TEST_F(RedisTest, PasswordProtectedServer) {
  const std::string password = "pa ss:w@rd/\xc3\xa9";
  RedisServer server;
  start(server, {"--requirepass", password});

  RedisClient good(server.tcp(0, password), kTimeouts);
  EXPECT_EQ(good.command({"PING"}).str, "PONG");

  RedisClient bad(server.tcp(0, "wrong-secret-123"), kTimeouts);
  RedisUnavailable e = expect_unavailable(bad, {"PING"});
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect);
  std::string msg = e.what();
  EXPECT_NE(msg.find("could not authenticate to Redis at 127.0.0.1:"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("wrong-secret-123"), std::string::npos) << msg;
  EXPECT_NE(msg.back(), '.') << msg;
  EXPECT_FALSE(bad.connected());

  // Without a password the connection works, but commands get NOAUTH replies.
  RedisClient none(server.tcp(), kTimeouts);
  RedisReply noauth = none.command({"GET", "x"});
  EXPECT_TRUE(noauth.is_error());
  EXPECT_EQ(noauth.str.rfind("NOAUTH", 0), 0u) << noauth.str;
}

TEST_F(RedisTest, PasswordUrlWithPercentEncoding) {
  RedisServer server;
  start(server, {"--requirepass", "p@ss/w:rd"});
  RedisClient c(
      parse_redis_url("redis://:p%40ss%2Fw%3Ard@127.0.0.1:" + std::to_string(server.port()) + "/1"),
      kTimeouts);
  EXPECT_EQ(c.command({"SET", "k", "v"}).str, "OK");
}

TEST_F(RedisTest, UnixSocketWithDbAndPassword) {
  RedisServer server;
  start(server, {"--requirepass", "s&cret"});
  RedisClient c(parse_redis_url("unix://" + server.socket_path() + "?db=3&password=s%26cret"),
                kTimeouts);
  EXPECT_EQ(c.endpoint().db, 3);
  EXPECT_EQ(c.command({"SET", "k", "in db 3"}).str, "OK");

  RedisClient db0(server.tcp(0, "s&cret"), kTimeouts);
  EXPECT_TRUE(db0.command({"GET", "k"}).is_nil());
  RedisClient db3(server.tcp(3, "s&cret"), kTimeouts);
  EXPECT_EQ(db3.command({"GET", "k"}).str, "in db 3");

  RedisClient wrong(server.unix_socket(3, "nope"), kTimeouts);
  EXPECT_STREQ(expect_unavailable(wrong, {"PING"}).sqlstate(), sqlstate::kUnableToConnect);
}

TEST_F(RedisTest, AclUserAuthenticatesWithUsernameAndPassword) {
  RedisServer server;
  start(server);
  RedisClient admin(server.tcp(), kTimeouts);
  RedisReply acl = admin.command({"ACL", "SETUSER", "alice", "on", ">wonder land", "~*", "+@all"});
  if (acl.is_error()) GTEST_SKIP() << "this redis-server has no ACLs: " << acl.str;

  RedisEndpoint ep = server.tcp();
  ep.username = "alice";
  ep.password = "wonder land";
  RedisClient alice(ep, kTimeouts);
  RedisReply who = alice.command({"ACL", "WHOAMI"});
  EXPECT_EQ(who.str, "alice");

  ep.password = "looking glass";
  RedisClient wrong(ep, kTimeouts);
  RedisUnavailable e = expect_unavailable(wrong, {"PING"});
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_EQ(std::string(e.what()).find("looking glass"), std::string::npos) << e.what();
}

TEST_F(RedisTest, Ipv6Loopback) {
  RedisServer server;
  if (!server.start({}, 0, "::1").empty()) GTEST_SKIP() << "no IPv6 loopback here";
  RedisClient c(parse_redis_url("redis://[::1]:" + std::to_string(server.port()) + "/0"),
                kTimeouts);
  EXPECT_EQ(c.command({"PING"}).str, "PONG");
  EXPECT_EQ(c.endpoint().address(), "[::1]:" + std::to_string(server.port()));
}

// --- ResilientRedis ----------------------------------------------------------

class ResilientRedisTest : public RedisClientTest {
 protected:
  int64_t now_ = 1000000;
  MonotonicClock clock_ = [this] { return now_; };
};

TEST_F(ResilientRedisTest, NotConfigured) {
  ResilientRedis r(clock_);
  EXPECT_FALSE(r.configured());
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_NE(r.last_error().find("not configured"), std::string::npos) << r.last_error();
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
}

TEST_F(ResilientRedisTest, WorksWhenRedisIsUp) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 5000);
  EXPECT_TRUE(r.configured());
  std::optional<RedisReply> pong = r.command({"PING"});
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->str, "PONG");
  auto replies = r.pipeline({{"SET", "a", "1"}, {"GET", "a"}});
  ASSERT_TRUE(replies.has_value());
  ASSERT_EQ(replies->size(), 2u);
  EXPECT_EQ((*replies)[1].str, "1");
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(r.endpoint(), server_.tcp());
}

TEST_F(ResilientRedisTest, ErrorRepliesAreNotFailures) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 5000);
  ASSERT_TRUE(r.command({"RPUSH", "l", "x"}).has_value());
  std::optional<RedisReply> wrong = r.command({"GET", "l"});
  ASSERT_TRUE(wrong.has_value());
  EXPECT_TRUE(wrong->is_error());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(r.breaker().consecutive_failures(), 0u);
  EXPECT_EQ(r.breaker().outages(), 0u);
}

TEST_F(ResilientRedisTest, OpenBreakerRefusesWithoutNetworkIo) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), RedisTimeouts{1000, 100}, 5000);
  ASSERT_EQ(r.command({"INCR", "counter"})->integer, 1);

  // Redis hangs: the call times out and opens the breaker.
  server_.pause();
  auto t0 = Clock::now();
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_GE(elapsed_ms(t0), 90);
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(r.breaker().outages(), 1u);
  EXPECT_STREQ(r.last_error_sqlstate(), sqlstate::kConnectionFailure);
  const std::string failure = r.last_error();
  EXPECT_NE(failure.find("timed out after 100 ms"), std::string::npos) << failure;
  EXPECT_TRUE(r.breaker().take_outage_warning());

  // While open, calls are refused at once: 50 calls would take 5 s if any of
  // them waited for the hung server.
  t0 = Clock::now();
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(r.command({"INCR", "counter"}).has_value());
    EXPECT_FALSE(r.pipeline({{"INCR", "counter"}}).has_value());
    now_ += 10;
  }
  EXPECT_LT(elapsed_ms(t0), 90);
  EXPECT_EQ(r.last_error().rfind("Redis circuit breaker is open", 0), 0u) << r.last_error();
  EXPECT_NE(r.last_error().find(failure), std::string::npos)
      << "keeps the failure that opened it: " << r.last_error();
  EXPECT_STREQ(r.last_error_sqlstate(), sqlstate::kConnectionFailure);
  EXPECT_FALSE(r.breaker().take_outage_warning()) << "one warning per outage";

  // Redis is back, but the interval has not passed: still refused.
  server_.resume();
  now_ += 4499;  // 4999 ms after the failure
  EXPECT_FALSE(r.command({"INCR", "counter"}).has_value());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);

  now_ += 1;  // 5000 ms: the half-open trial goes through and succeeds
  std::optional<RedisReply> n = r.command({"INCR", "counter"});
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->integer, 2) << "none of the refused calls reached Redis";
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(r.breaker().consecutive_failures(), 0u);
  EXPECT_EQ(r.command({"INCR", "counter"})->integer, 3);
}

TEST_F(ResilientRedisTest, FailedTrialReopensThenRecovers) {
  const int port = server_.port();
  server_.stop();
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 1000);

  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_STREQ(r.last_error_sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_EQ(r.last_error(), "could not connect to Redis at 127.0.0.1:" + std::to_string(port) +
                                ": Connection refused");
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);
  EXPECT_TRUE(r.breaker().take_outage_warning());

  now_ += 1000;  // trial: still down, re-opens for a full interval
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.last_error().rfind("could not connect", 0), 0u) << r.last_error();
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(r.breaker().consecutive_failures(), 2u);
  EXPECT_EQ(r.breaker().outages(), 1u);
  EXPECT_EQ(r.breaker().open_until_ms(), now_ + 1000);
  EXPECT_FALSE(r.breaker().take_outage_warning());

  start(server_, {}, port);
  now_ += 999;
  EXPECT_FALSE(r.command({"PING"}).has_value());
  now_ += 1;
  ASSERT_TRUE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_FALSE(r.breaker().take_outage_warning());

  // A second outage is counted and warned about again.
  server_.stop();
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.breaker().outages(), 2u);
  EXPECT_TRUE(r.breaker().take_outage_warning());
}

TEST_F(ResilientRedisTest, ProbeIgnoresTheBreakerAndRecordsTheOutcome) {
  const int port = server_.port();
  server_.stop();
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 60000);

  // A failed probe opens the breaker.
  EXPECT_FALSE(r.probe({"PING"}).has_value());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);
  EXPECT_EQ(r.breaker().outages(), 1u);

  start(server_, {}, port);
  EXPECT_FALSE(r.command({"PING"}).has_value()) << "breaker open for a minute";
  // The probe goes to the network anyway, and its success closes the breaker.
  std::optional<RedisReply> pong = r.probe({"PING"});
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->str, "PONG");
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(r.command({"PING"}).has_value());
}

TEST_F(ResilientRedisTest, ProgrammingErrorInTrialDoesNotWedgeTheBreaker) {
  const int port = server_.port();
  server_.stop();
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 1000);
  EXPECT_FALSE(r.command({"PING"}).has_value());
  start(server_, {}, port);
  now_ += 1000;
  EXPECT_THROW(r.command({}), Error);
  EXPECT_NE(r.breaker().state(), CircuitBreaker::State::kHalfOpen);
  now_ += 1000;
  EXPECT_TRUE(r.command({"PING"}).has_value());
  // In a closed breaker, such an error is not counted as a failure at all.
  EXPECT_THROW(r.command({}), Error);
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
}

TEST_F(ResilientRedisTest, ConfigureReplacesTheClientOnlyWhenNeeded) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 1000);
  auto client_id = [&r] {
    std::optional<RedisReply> id = r.command({"CLIENT", "ID"});
    EXPECT_TRUE(id.has_value());
    return id ? id->integer : -1;
  };
  const long long first = client_id();

  // Same endpoint and timeouts: the connection is kept; the interval changes.
  r.configure(server_.tcp(), kTimeouts, 2500);
  EXPECT_EQ(client_id(), first);
  EXPECT_EQ(r.breaker().retry_interval(), 2500);

  // Other timeouts: a new connection.
  r.configure(server_.tcp(), RedisTimeouts{kTimeouts.connect_ms, kTimeouts.command_ms + 1}, 2500);
  const long long second = client_id();
  EXPECT_NE(second, first);

  // Another endpoint (database): a new connection, in that database.
  r.configure(server_.tcp(4), RedisTimeouts{kTimeouts.connect_ms, kTimeouts.command_ms + 1}, 2500);
  EXPECT_NE(client_id(), second);
  ASSERT_TRUE(r.command({"SET", "db", "four"}).has_value());
  RedisClient check(server_.tcp(4), kTimeouts);
  EXPECT_EQ(check.command({"GET", "db"}).str, "four");
  EXPECT_EQ(r.endpoint().db, 4);
}

TEST_F(ResilientRedisTest, NewEndpointIsTriedAtOnce) {
  RedisEndpoint dead = server_.tcp();
  dead.port = free_port();
  ResilientRedis r(clock_);
  r.configure(dead, kTimeouts, 60000);
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kOpen);
  // Same endpoint again: still open.
  r.configure(dead, kTimeouts, 60000);
  EXPECT_FALSE(r.command({"PING"}).has_value());
  // The administrator fixes the URL: no need to wait out the old outage.
  r.configure(server_.tcp(), kTimeouts, 60000);
  EXPECT_TRUE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(r.breaker().outages(), 1u);
}

TEST_F(ResilientRedisTest, DefaultClockIsTheSteadyClock) {
  int64_t a = steady_now_ms();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int64_t b = steady_now_ms();
  EXPECT_GE(b - a, 20);
  EXPECT_LT(b - a, 5000);

  ResilientRedis r;
  r.configure(server_.tcp(), kTimeouts, 50);
  ASSERT_TRUE(r.command({"PING"}).has_value());
  server_.stop();
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.last_error().rfind("Redis circuit breaker is open", 0), 0u) << r.last_error();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_FALSE(r.command({"PING"}).has_value());
  EXPECT_EQ(r.last_error().rfind("could not connect", 0), 0u)
      << "after the interval the call went to the network: " << r.last_error();
}

// --- deferred commands ----------------------------------------------------------

struct Outcome {
  int calls = 0;
  uint64_t token = 0;
  bool ok = false;
  std::vector<RedisReply> replies;
  std::string error;
};

ResilientRedis::DeferredHandler recorder(Outcome &o) {
  return [&o](uint64_t token, bool ok, const std::vector<RedisReply> &replies,
              const std::string &error) {
    ++o.calls;
    o.token = token;
    o.ok = ok;
    o.replies = replies;
    o.error = error;
  };
}

TEST_F(ResilientRedisTest, DeferredRepliesAreReadBeforeTheNextCommand) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 5000);
  Outcome o;
  r.set_deferred_handler(recorder(o));
  ASSERT_TRUE(r.command({"MSET", "k1", "a", "k2", "b"}).has_value());
  ASSERT_TRUE(r.send_deferred({{"UNLINK", "k1", "k2", "k3"}, {"INCR", "n"}}, 42));
  EXPECT_TRUE(r.has_deferred());
  EXPECT_EQ(o.calls, 0) << "nothing read yet";
  // The next command on the connection: the deferred replies come first, and
  // Redis ran the deferred commands before it (one connection is FIFO).
  std::optional<RedisReply> get = r.command({"GET", "k1"});
  ASSERT_TRUE(get.has_value());
  EXPECT_TRUE(get->is_nil());
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.token, 42u);
  EXPECT_TRUE(o.ok);
  ASSERT_EQ(o.replies.size(), 2u);
  EXPECT_EQ(o.replies[0].integer, 2);
  EXPECT_EQ(o.replies[1].integer, 1);
  EXPECT_FALSE(r.has_deferred());
  r.settle();
  EXPECT_EQ(o.calls, 1) << "reported once";
}

TEST_F(ResilientRedisTest, SettleReportsErrorReplies) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 5000);
  Outcome o;
  r.set_deferred_handler(recorder(o));
  ASSERT_TRUE(r.command({"RPUSH", "l", "x"}).has_value());
  ASSERT_TRUE(r.send_deferred({{"INCR", "l"}}, 7));
  r.settle();
  EXPECT_EQ(o.calls, 1);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("WRONGTYPE"), std::string::npos) << o.error;
  EXPECT_EQ(r.breaker().state(), CircuitBreaker::State::kClosed) << "an error reply is no outage";
}

TEST_F(ResilientRedisTest, SendDoesNotWaitForAPausedServer) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), RedisTimeouts{1000, 300}, 5000);
  Outcome o;
  r.set_deferred_handler(recorder(o));
  ASSERT_TRUE(r.command({"SET", "k", "v"}).has_value());
  server_.pause();
  auto t0 = Clock::now();
  ASSERT_TRUE(r.send_deferred({{"UNLINK", "k"}}, 1));
  EXPECT_LT(elapsed_ms(t0), 100) << "sending must not wait for the reply";
  // Reading it is bounded by the command timeout, and a failure.
  r.settle();
  int64_t took = elapsed_ms(t0);
  EXPECT_GE(took, 250);
  EXPECT_LT(took, 2000);
  EXPECT_EQ(o.calls, 1);
  EXPECT_FALSE(o.ok);
  EXPECT_NE(o.error.find("timed out"), std::string::npos) << o.error;
  EXPECT_EQ(r.breaker().consecutive_failures(), 1u);
  server_.resume();
}

TEST_F(ResilientRedisTest, ServerKilledBeforeTheReplyIsAFailure) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), RedisTimeouts{1000, 2000}, 5000);
  Outcome o;
  r.set_deferred_handler(recorder(o));
  ASSERT_TRUE(r.command({"PING"}).has_value());
  server_.pause();
  ASSERT_TRUE(r.send_deferred({{"UNLINK", "k"}}, 9));
  server_.kill_paused();  // the command is never read
  std::optional<RedisReply> next = r.command({"PING"});
  EXPECT_FALSE(next.has_value()) << "the server is gone";
  EXPECT_EQ(o.calls, 1);
  EXPECT_EQ(o.token, 9u);
  EXPECT_FALSE(o.ok);
}

TEST_F(ResilientRedisTest, ReconfiguringSettlesFirst) {
  ResilientRedis r(clock_);
  r.configure(server_.tcp(), kTimeouts, 5000);
  Outcome o;
  r.set_deferred_handler(recorder(o));
  ASSERT_TRUE(r.send_deferred({{"SET", "moved", "1"}}, 3));
  r.configure(server_.unix_socket(), kTimeouts, 5000);
  EXPECT_EQ(o.calls, 1);
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(r.command({"GET", "moved"})->str, "1");
}

}  // namespace
}  // namespace cachekit
