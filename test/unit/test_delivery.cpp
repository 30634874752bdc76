// Tests of deliver() (src/core/delivery.h) against real, throwaway
// redis-server processes: pub/sub messages, UNLINK of exact keys in batches,
// SCAN + UNLINK of key patterns, and how delivery stops at the first failure.
// Skipped when redis-server is not on PATH.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/delivery.h"
#include "core/keys.h"
#include "core/redis_client.h"
#include "redis_server.h"

namespace cachekit {
namespace {

using namespace std::string_literals;
using test::Clock;
using test::elapsed_ms;
using test::RedisServer;
using test::RedisTest;

const RedisTimeouts kTimeouts{2000, 2000};
const std::string kChannel = "cachekit:invalidations";

std::vector<std::string> numbered(const std::string &prefix, int n) {
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A pub/sub subscriber on its own plain hiredis connection. Every read waits
// at most 2 s, so a message that never comes fails the test instead of
// hanging it.
class Subscriber {
 public:
  struct Message {
    std::string channel;
    std::string payload;
  };

  explicit Subscriber(int port) {
    const timeval timeout{2, 0};
    ctx_ = redisConnectWithTimeout("127.0.0.1", port, timeout);
    if (ctx_ != nullptr && ctx_->err == 0) redisSetTimeout(ctx_, timeout);
  }
  ~Subscriber() {
    if (ctx_ != nullptr) redisFree(ctx_);
  }
  Subscriber(const Subscriber &) = delete;
  Subscriber &operator=(const Subscriber &) = delete;

  // SUBSCRIBE channel or PSUBSCRIBE pattern; returns once Redis confirmed it,
  // so everything published from then on reaches this subscriber.
  ::testing::AssertionResult subscribe(const std::string &channel) {
    return send_subscribe("SUBSCRIBE", channel);
  }
  ::testing::AssertionResult psubscribe(const std::string &pattern) {
    return send_subscribe("PSUBSCRIBE", pattern);
  }

  // The next message (from SUBSCRIBE or PSUBSCRIBE), or a failure after 2 s.
  ::testing::AssertionResult next(Message &out) {
    redisReply *reply = nullptr;
    if (auto bad = read(reply); !bad) return bad;
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    const bool message =
        reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 && kind(reply) == "message";
    const bool pmessage =
        reply->type == REDIS_REPLY_ARRAY && reply->elements == 4 && kind(reply) == "pmessage";
    if (message || pmessage) {
      const size_t first = pmessage ? 2 : 1;
      out.channel.assign(reply->element[first]->str, reply->element[first]->len);
      out.payload.assign(reply->element[first + 1]->str, reply->element[first + 1]->len);
    } else {
      result = ::testing::AssertionFailure() << "not a pub/sub message, reply type " << reply->type;
    }
    freeReplyObject(reply);
    return result;
  }

 private:
  static std::string kind(const redisReply *reply) {
    const redisReply *e = reply->element[0];
    return e->type == REDIS_REPLY_STRING ? std::string(e->str, e->len) : std::string();
  }

  ::testing::AssertionResult read(redisReply *&reply) {
    if (ctx_ == nullptr) return ::testing::AssertionFailure() << "subscriber: out of memory";
    if (ctx_->err != 0) return ::testing::AssertionFailure() << "subscriber: " << ctx_->errstr;
    void *r = nullptr;
    if (redisGetReply(ctx_, &r) != REDIS_OK || r == nullptr)
      return ::testing::AssertionFailure()
             << "subscriber: no reply within 2 s: " << (ctx_->err != 0 ? ctx_->errstr : "");
    reply = static_cast<redisReply *>(r);
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult send_subscribe(const char *command, const std::string &name) {
    if (ctx_ == nullptr || ctx_->err != 0)
      return ::testing::AssertionFailure()
             << "subscriber could not connect: " << (ctx_ ? ctx_->errstr : "out of memory");
    const char *argv[] = {command, name.data()};
    const size_t argvlen[] = {std::strlen(command), name.size()};
    if (redisAppendCommandArgv(ctx_, 2, argv, argvlen) != REDIS_OK)
      return ::testing::AssertionFailure() << "subscriber: " << ctx_->errstr;
    redisReply *reply = nullptr;
    if (auto bad = read(reply); !bad) return bad;
    const bool confirmed = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                           kind(reply) == (command == "SUBSCRIBE"s ? "subscribe" : "psubscribe");
    freeReplyObject(reply);
    if (!confirmed) return ::testing::AssertionFailure() << command << " was not confirmed";
    return ::testing::AssertionSuccess();
  }

  redisContext *ctx_ = nullptr;
};

class DeliveryTest : public RedisTest {
 protected:
  void SetUp() override {
    RedisTest::SetUp();
    if (IsSkipped()) return;
    start(server_);
    if (HasFatalFailure()) return;
    admin_.emplace(server_.tcp(), kTimeouts);
    redis_.configure(server_.tcp(), kTimeouts, 60000);
  }

  RedisClient &admin() { return *admin_; }

  void set_keys(const std::vector<std::string> &keys) {
    RedisArgv argv{"MSET"};
    for (const std::string &k : keys) {
      argv.push_back(k);
      argv.push_back("v");
    }
    ASSERT_EQ(admin().command(argv).str, "OK");
  }

  std::vector<std::string> all_keys() {
    RedisReply reply = admin().command({"KEYS", "*"});
    std::vector<std::string> out;
    for (const RedisReply &e : reply.elements) out.push_back(e.str);
    return sorted(out);
  }

  long long dbsize() { return admin().command({"DBSIZE"}).integer; }

  // A numeric field of INFO `section`; 0 when absent.
  long long info(const std::string &section, const std::string &field) {
    const std::string text = "\n" + admin().command({"INFO", section}).str;
    size_t at = text.find("\n" + field);
    return at == std::string::npos ? 0 : std::stoll(text.substr(at + 1 + field.size()));
  }

  // How often `command` ran since the last CONFIG RESETSTAT.
  long long calls(const std::string &command) {
    return info("commandstats", "cmdstat_" + command + ":calls=");
  }

  void reset_stats() { ASSERT_EQ(admin().command({"CONFIG", "RESETSTAT"}).str, "OK"); }

  // Publishes a marker on its own channel: a subscriber that gets it next has
  // received nothing else in between.
  void expect_next_is_marker(Subscriber &sub, const std::string &channel) {
    ASSERT_EQ(admin().command({"PUBLISH", channel, "marker"}).integer, 1);
    Subscriber::Message m;
    ASSERT_TRUE(sub.next(m));
    EXPECT_EQ(m.channel, channel);
    EXPECT_EQ(m.payload, "marker") << "an unexpected message arrived first";
  }

  RedisServer server_;
  std::optional<RedisClient> admin_;
  int64_t now_ = 1000000;
  ResilientRedis redis_{[this] { return now_; }};
};

TEST_F(DeliveryTest, EmptyInvalidationDoesNothing) {
  ASSERT_GT(info("stats", "total_connections_received:"), 0);  // the field is there
  reset_stats();
  int between = 0;
  DeliveryResult r = deliver(redis_, Invalidation{}, true, [&] { ++between; });
  EXPECT_EQ(info("stats", "total_connections_received:"), 0) << "not even connected to Redis";
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(between, 0);
  EXPECT_EQ(calls("publish"), 0);
  EXPECT_EQ(calls("unlink"), 0);
  EXPECT_EQ(calls("scan"), 0);
}

TEST_F(DeliveryTest, PublishesMessagesInOrder) {
  Subscriber sub(server_.port());
  ASSERT_TRUE(sub.subscribe(kChannel));

  Invalidation inv;
  inv.channel = kChannel;
  for (int i = 0; i < 200; ++i)
    inv.messages.push_back(R"({"table":"public.t)" + std::to_string(i % 7) + R"(","seq":)" +
                           std::to_string(i) + "}");
  inv.messages.push_back("{\"table\":\"public.\xc3\xa9t\xc3\xa9\",\n\"op\":\"TRUNCATE\"}");
  inv.messages.push_back("");  // binary-safe, even an empty payload

  reset_stats();
  DeliveryResult r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.published, inv.messages.size());
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(calls("publish"), static_cast<long long>(inv.messages.size()));

  for (size_t i = 0; i < inv.messages.size(); ++i) {
    Subscriber::Message m;
    ASSERT_TRUE(sub.next(m)) << "message " << i;
    EXPECT_EQ(m.channel, kChannel);
    ASSERT_EQ(m.payload, inv.messages[i]) << "message " << i << " out of order or altered";
  }
  // Nothing more (no duplicates): the next message is one published after.
  expect_next_is_marker(sub, kChannel);
}

TEST_F(DeliveryTest, EmptyChannelOrNoMessagesPublishesNothing) {
  Subscriber sub(server_.port());
  ASSERT_TRUE(sub.psubscribe("*"));  // sees a publication on any channel, even ""
  set_keys({"k"});
  reset_stats();

  Invalidation no_channel;
  no_channel.messages = {"{\"table\":\"public.t\"}", "{}"};
  no_channel.keys = {"k"};
  DeliveryResult r = deliver(redis_, no_channel, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(r.keys_deleted, 1u) << "the rest of the invalidation is still delivered";

  Invalidation no_messages;
  no_messages.channel = kChannel;
  r = deliver(redis_, no_messages, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.published, 0u);

  EXPECT_EQ(calls("publish"), 0);
  expect_next_is_marker(sub, "marker-channel");
}

TEST_F(DeliveryTest, UnlinksKeysAndCountsTheOnesThatExisted) {
  set_keys({"q:a", "q:b", "kv:c", "other"});
  Invalidation inv;
  inv.keys = {"q:a", "missing", "q:b", "kv:c", "also-missing"};
  int between = 0;
  DeliveryResult r = deliver(redis_, inv, true, [&] { ++between; });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 3u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(between, 1);
  EXPECT_EQ(all_keys(), std::vector<std::string>{"other"});

  // Delivering again (at-least-once retry) is harmless: nothing existed.
  r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(all_keys(), std::vector<std::string>{"other"});
}

TEST_F(DeliveryTest, UnlinksInBatchesOfAThousand) {
  ASSERT_EQ(kDeliveryBatch, 1000u);
  const std::vector<std::string> keep = numbered("keep:", 10);
  set_keys(keep);
  for (int n : {1, 999, 1000, 1001, 2500}) {
    SCOPED_TRACE("keys: " + std::to_string(n));
    const std::vector<std::string> keys = numbered("q:", n);
    set_keys(keys);
    reset_stats();
    // The callback runs before each batch: the database shrinks by one batch
    // between calls.
    std::vector<long long> sizes;
    Invalidation inv;
    inv.keys = keys;
    DeliveryResult r = deliver(redis_, inv, true, [&] { sizes.push_back(dbsize()); });
    EXPECT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.keys_deleted, static_cast<uint64_t>(n));
    const long long batches = (n + 999) / 1000;
    EXPECT_EQ(calls("unlink"), batches);
    std::vector<long long> expected;
    for (long long b = 0; b < batches; ++b) expected.push_back(10 + n - 1000 * b);
    EXPECT_EQ(sizes, expected);
    EXPECT_EQ(all_keys(), sorted(keep));
  }
}

TEST_F(DeliveryTest, PatternsDeleteOnlyMatchingKeys) {
  // Keys with glob metacharacters in them, matched literally through
  // glob_escape, next to keys an unescaped pattern would also match.
  const std::string star_prefix = "q:a*b:";
  const std::string glob_prefix = "q:[ab]?\\";
  const std::vector<std::string> deleted_by_key = {"q:users:1", "kv:exact"};
  const std::vector<std::string> deleted_by_pattern = {"q:users:2", "q:users:3", star_prefix + "1",
                                                       star_prefix + "2", glob_prefix + "x"};
  const std::vector<std::string> kept = {"q:users",   "q:orders:1", "kv:q:users:1",
                                         "Q:users:4", "q:axb:1",    "q:a*bc:1",
                                         "q:a!\\x",   "q:b?x",      "q:[ab]?x"};
  set_keys(concat(concat(deleted_by_key, deleted_by_pattern), kept));
  // The decoys do match the unescaped patterns.
  EXPECT_EQ(admin().command({"KEYS", star_prefix + "*"}).elements.size(), 3u);
  EXPECT_EQ(admin().command({"KEYS", glob_prefix + "*"}).elements.size(), 0u)
      << "unescaped, the backslash escapes the star";
  EXPECT_EQ(admin().command({"KEYS", "q:[ab]?*"}).elements.size(), 6u);

  Invalidation inv;
  inv.keys = {"q:users:1", "kv:exact", "missing"};
  inv.patterns = {"q:users:*", glob_escape(star_prefix) + "*", glob_escape(glob_prefix) + "*",
                  "nothing:matches:*"};
  DeliveryResult r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, deleted_by_key.size());
  EXPECT_EQ(r.pattern_keys_deleted, deleted_by_pattern.size());
  EXPECT_EQ(all_keys(), sorted(kept));
}

TEST(PatternIsBounded, NeedsALiteralPrefix) {
  for (const char *ok : {"q:*", "a", "user:{x}", "u*", "a?", "a[b]*", "a\\*", "]*", "x:*:*"})
    EXPECT_TRUE(pattern_is_bounded(ok)) << ok;
  for (const char *bad : {"", "*", "**", "?", "?x*", "[a-z]*", "[", "\\*", "\\a*", "*:user"})
    EXPECT_FALSE(pattern_is_bounded(bad)) << bad;
}

// A pattern read from a table is data: one that would match every key is
// not scanned at all, the others (and the exact keys) still are.
TEST_F(DeliveryTest, PatternsWithoutLiteralPrefixAreNotScanned) {
  const std::vector<std::string> others = {"app:1", "other:2", "*", "?", "[x]", "\\y", "q"};
  set_keys(concat(others, {"q:p:1", "q:p:2", "q:k:1"}));
  Invalidation inv;
  inv.keys = {"q:k:1"};
  inv.patterns = {"*", "?*", "[a-z]*", "\\**", "", "q:p:*", "*:p:*"};
  reset_stats();
  DeliveryResult r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 1u);
  EXPECT_EQ(r.pattern_keys_deleted, 2u);
  EXPECT_EQ(r.rejected_patterns,
            (std::vector<std::string>{"*", "?*", "[a-z]*", "\\**", "", "*:p:*"}));
  EXPECT_EQ(calls("scan"), 1) << "only the bounded pattern was scanned";
  EXPECT_EQ(all_keys(), sorted(others));

  // Without patterns (the committing backend), nothing is rejected.
  r = deliver(redis_, inv, false);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(r.rejected_patterns.empty());
}

Invalidation entry(const std::string &channel, std::vector<std::string> messages,
                   std::vector<std::string> keys = {}) {
  Invalidation inv;
  inv.channel = channel;
  inv.messages = std::move(messages);
  inv.keys = std::move(keys);
  return inv;
}

TEST(GroupByChannel, ConsecutiveRunsKeepTheirChannel) {
  EXPECT_TRUE(group_by_channel({}).empty());
  std::vector<Invalidation> queue = {
      entry("a", {"m1"}, {"k1"}),  // 0
      entry("a", {"m2"}),          // 1
      entry("b", {"m3"}, {"k3"}),  // 2: another channel, a new group
      entry("a", {}, {"k4"}),      // 3: no message: joins whatever comes before
      entry("", {"m5"}, {"k5"}),   // 4: no channel: publishes nothing, joins
      entry("a", {"m6"}),          // 5: back to a: a new group, not merged into 0
  };
  std::vector<DeliveryGroup> g = group_by_channel(queue);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].end, 2u);
  EXPECT_EQ(g[0].inv.channel, "a");
  EXPECT_EQ(g[0].inv.messages, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(g[0].inv.keys, (std::vector<std::string>{"k1"}));
  EXPECT_EQ(g[1].end, 5u);
  EXPECT_EQ(g[1].inv.channel, "b");
  EXPECT_EQ(g[1].inv.messages, (std::vector<std::string>{"m3"}));
  EXPECT_EQ(g[1].inv.keys, (std::vector<std::string>{"k3", "k4", "k5"}));
  EXPECT_EQ(g[2].end, 6u);
  EXPECT_EQ(g[2].inv.channel, "a");
  EXPECT_EQ(g[2].inv.messages, (std::vector<std::string>{"m6"}));
}

TEST(GroupByChannel, EntriesWithoutMessagesTakeTheNextChannel) {
  std::vector<DeliveryGroup> g =
      group_by_channel({entry("x", {}, {"k1"}), entry("b", {"m1"}), entry("b", {"m2"})});
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].end, 3u);
  EXPECT_EQ(g[0].inv.channel, "b");
  EXPECT_EQ(g[0].inv.messages, (std::vector<std::string>{"m1", "m2"}));
  EXPECT_EQ(g[0].inv.keys, (std::vector<std::string>{"k1"}));
}

TEST(InvalidationJson, OutboxPayloadForm) {
  Invalidation inv = entry("ch\"1", {"{\"t\": 1}"}, {"k:1", "k\n2"});
  inv.patterns = {"p:*"};
  EXPECT_EQ(invalidation_json(inv),
            R"({"channel": "ch\"1", "messages": ["{\"t\": 1}"], "keys": ["k:1", "k\n2"], )"
            R"("patterns": ["p:*"]})");
  EXPECT_EQ(invalidation_json(Invalidation{}),
            R"({"channel": "", "messages": [], "keys": [], "patterns": []})");
}

// Delivered group by group, each message reaches the subscribers of its own
// channel, in queue order.
TEST_F(DeliveryTest, GroupsPublishOnTheirOwnChannels) {
  Subscriber sub(server_.port());
  ASSERT_TRUE(sub.psubscribe("ch:*"));
  std::vector<DeliveryGroup> groups = group_by_channel(
      {entry("ch:a", {"1"}), entry("ch:b", {"2"}), entry("ch:b", {"3"}), entry("ch:a", {"4"})});
  ASSERT_EQ(groups.size(), 3u);
  for (const DeliveryGroup &g : groups) EXPECT_TRUE(deliver(redis_, g.inv, true).ok);
  const std::vector<std::pair<std::string, std::string>> want = {
      {"ch:a", "1"}, {"ch:b", "2"}, {"ch:b", "3"}, {"ch:a", "4"}};
  for (const auto &w : want) {
    Subscriber::Message m;
    ASSERT_TRUE(sub.next(m));
    EXPECT_EQ(m.channel, w.first);
    EXPECT_EQ(m.payload, w.second);
  }
  expect_next_is_marker(sub, "ch:marker");
}

TEST_F(DeliveryTest, KeyDeletedByKeyIsNotCountedAgainByPattern) {
  set_keys({"q:t:1", "q:t:2", "q:t:3"});
  Invalidation inv;
  inv.keys = {"q:t:1", "q:t:2"};
  inv.patterns = {"q:t:*", "q:t:*"};  // the second finds nothing left
  DeliveryResult r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 2u);
  EXPECT_EQ(r.pattern_keys_deleted, 1u);
  EXPECT_EQ(dbsize(), 0);
}

TEST_F(DeliveryTest, PatternDeletionAcrossManyScanSteps) {
  const std::vector<std::string> doomed = numbered("q:t:", 2500);
  const std::vector<std::string> kept = numbered("q:u:", 100);
  set_keys(doomed);
  set_keys(kept);
  reset_stats();
  int between = 0;
  Invalidation inv;
  inv.patterns = {"q:t:*"};
  DeliveryResult r = deliver(redis_, inv, true, [&] { ++between; });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.pattern_keys_deleted, 2500u);
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(all_keys(), sorted(kept));
  // Scanned with COUNT 1000: a few steps (each returns at least 1000 of the
  // 2600 keys, matching or not), the callback before each.
  EXPECT_GE(calls("scan"), 2);
  EXPECT_LE(calls("scan"), 5);
  EXPECT_EQ(between, calls("scan"));
  EXPECT_GE(calls("unlink"), 2);
  EXPECT_LE(calls("unlink"), calls("scan"));
}

TEST_F(DeliveryTest, WithoutPatternsPatternKeysAreLeftAlone) {
  set_keys({"q:users:1", "q:users:2", "q:users:3"});
  Invalidation inv;
  inv.keys = {"q:users:1"};
  inv.patterns = {"q:users:*"};
  reset_stats();
  DeliveryResult r = deliver(redis_, inv, false);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 1u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(calls("scan"), 0);
  EXPECT_EQ(all_keys(), (std::vector<std::string>{"q:users:2", "q:users:3"}));

  // The same invalidation with patterns does delete them.
  r = deliver(redis_, inv, true);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(r.pattern_keys_deleted, 2u);
  EXPECT_EQ(dbsize(), 0);
}

TEST_F(DeliveryTest, BetweenRunsBeforeEachBatchAndScanStep) {
  set_keys(numbered("q:k:", 2500));
  set_keys(numbered("q:p:", 3000));
  Invalidation inv;
  inv.channel = kChannel;
  inv.messages = {"m1", "m2"};
  inv.keys = numbered("q:k:", 2500);
  inv.patterns = {"q:p:*"};
  reset_stats();
  int between = 0;
  DeliveryResult r = deliver(redis_, inv, true, [&] { ++between; });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.published, 2u);
  EXPECT_EQ(r.keys_deleted, 2500u);
  EXPECT_EQ(r.pattern_keys_deleted, 3000u);
  // 3 UNLINK batches of exact keys, then one call per SCAN step; none for
  // the messages (a single pipeline).
  EXPECT_GE(calls("scan"), 2);
  EXPECT_EQ(between, 3 + calls("scan"));

  // Messages only: no batches, no calls.
  between = 0;
  Invalidation messages_only;
  messages_only.channel = kChannel;
  messages_only.messages = {"m"};
  r = deliver(redis_, messages_only, true, [&] { ++between; });
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(between, 0);
}

Invalidation everything(int keys) {
  Invalidation inv;
  inv.channel = kChannel;
  inv.messages = {"m1", "m2", "m3"};
  inv.keys = numbered("q:k:", keys);
  inv.patterns = {"q:p:*"};
  return inv;
}

TEST_F(DeliveryTest, RedisDown) {
  const int port = server_.port();
  server_.stop();
  int between = 0;
  DeliveryResult r = deliver(redis_, everything(2500), true, [&] { ++between; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "could not connect to Redis at 127.0.0.1:" + std::to_string(port) +
                         ": Connection refused");
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  // Three key batches; at most the first one was attempted (the messages may
  // travel with it).
  EXPECT_LE(between, 1) << "stopped at the first failure";

  // Keys only: the first batch fails (now at the open breaker).
  between = 0;
  Invalidation keys_only;
  keys_only.keys = {"a", "b"};
  r = deliver(redis_, keys_only, true, [&] { ++between; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_NE(r.error.find("Connection refused"), std::string::npos) << r.error;
  EXPECT_EQ(between, 1);
}

TEST_F(DeliveryTest, RedisGoesDownBetweenKeyBatches) {
  set_keys(numbered("q:k:", 2500));
  int between = 0;
  DeliveryResult r = deliver(redis_, everything(2500), true, [&] {
    if (++between == 2) server_.stop();  // after the first batch went through
  });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("could not communicate with Redis at 127.0.0.1:", 0), 0u) << r.error;
  EXPECT_EQ(r.published, 3u);
  EXPECT_EQ(r.keys_deleted, 1000u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(between, 2) << "stopped at the first failure";
}

TEST_F(DeliveryTest, RedisGoesDownDuringPatternScan) {
  set_keys(numbered("q:k:", 10));
  set_keys(numbered("q:p:", 5000));
  int between = 0;
  long long left = -1;
  DeliveryResult r = deliver(redis_, everything(10), true, [&] {
    // 1: the key batch, 2: the first SCAN step, 3: the second SCAN step.
    if (++between == 3) {
      left = dbsize();
      server_.stop();
    }
  });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("could not communicate with Redis at 127.0.0.1:", 0), 0u) << r.error;
  EXPECT_EQ(r.published, 3u);
  EXPECT_EQ(r.keys_deleted, 10u);
  ASSERT_GT(left, 0);
  EXPECT_LT(left, 5000) << "the first SCAN step deleted some";
  EXPECT_EQ(r.pattern_keys_deleted, static_cast<uint64_t>(5000 - left));
  EXPECT_EQ(between, 3) << "stopped at the first failure";
}

TEST_F(DeliveryTest, ConnectionLostWhileUnlinkingWhatAPatternFound) {
  // Redis drops a connection whose query buffer outgrows
  // client-query-buffer-limit (1 MB at least), without a reply: the UNLINK of
  // a 2 MB key that SCAN found (and that was SET before the limit was
  // lowered) loses the connection after the SCAN succeeded.
  set_keys(numbered("q:p:", 10));
  ASSERT_EQ(admin().command({"SET", "big:" + std::string(2 * 1024 * 1024, 'x'), "v"}).str, "OK");
  ASSERT_EQ(admin().command({"CONFIG", "SET", "client-query-buffer-limit", "1mb"}).str, "OK");
  reset_stats();
  int between = 0;
  Invalidation inv;
  inv.patterns = {"q:p:*", "big:*"};
  DeliveryResult r = deliver(redis_, inv, true, [&] { ++between; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("could not communicate with Redis at 127.0.0.1:", 0), 0u) << r.error;
  EXPECT_EQ(r.pattern_keys_deleted, 10u);
  EXPECT_EQ(calls("scan"), 2) << "one SCAN step per pattern";
  EXPECT_EQ(between, 2);
  EXPECT_EQ(dbsize(), 1);
}

TEST_F(DeliveryTest, HungRedisFailsInBoundedTime) {
  redis_.configure(server_.tcp(), RedisTimeouts{1000, 100}, 60000);
  server_.pause();
  auto t0 = Clock::now();
  DeliveryResult r = deliver(redis_, everything(10), true);
  const int64_t took = elapsed_ms(t0);
  server_.resume();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("timed out after 100 ms"), std::string::npos) << r.error;
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(r.keys_deleted, 0u);
  EXPECT_GE(took, 90);
  EXPECT_LT(took, 1000);
}

TEST_F(DeliveryTest, RedisHangsBetweenKeyBatches) {
  redis_.configure(server_.tcp(), RedisTimeouts{1000, 100}, 60000);
  set_keys(numbered("q:k:", 1500));
  int between = 0;
  Clock::time_point paused_at;
  DeliveryResult r = deliver(redis_, everything(1500), true, [&] {
    if (++between == 2) {
      server_.pause();
      paused_at = Clock::now();
    }
  });
  const int64_t took = elapsed_ms(paused_at);
  server_.resume();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("timed out after 100 ms"), std::string::npos) << r.error;
  EXPECT_EQ(r.published, 3u);
  EXPECT_EQ(r.keys_deleted, 1000u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(between, 2);
  EXPECT_GE(took, 90);
  EXPECT_LT(took, 1000);
}

TEST_F(DeliveryTest, OpenBreakerFailsWithoutNetworkIo) {
  redis_.configure(server_.tcp(), RedisTimeouts{1000, 100}, 60000);
  Subscriber sub(server_.port());
  ASSERT_TRUE(sub.psubscribe("*"));
  const std::vector<std::string> keys = numbered("q:k:", 10);
  const std::vector<std::string> pattern_keys = numbered("q:p:", 10);
  set_keys(keys);
  set_keys(pattern_keys);

  // A hung Redis opens the breaker.
  server_.pause();
  EXPECT_FALSE(redis_.command({"PING"}).has_value());
  ASSERT_EQ(redis_.breaker().state(), CircuitBreaker::State::kOpen);

  // Still hung: any call that went to the network would wait 100 ms.
  int between = 0;
  auto t0 = Clock::now();
  DeliveryResult r = deliver(redis_, everything(2500), true, [&] { ++between; });
  Invalidation keys_only;
  keys_only.keys = keys;
  DeliveryResult r2 = deliver(redis_, keys_only, true);
  Invalidation patterns_only;
  patterns_only.patterns = {"q:p:*"};
  DeliveryResult r3 = deliver(redis_, patterns_only, true);
  const int64_t took = elapsed_ms(t0);
  server_.resume();

  EXPECT_LT(took, 90);
  for (const DeliveryResult *d : {&r, &r2, &r3}) {
    EXPECT_FALSE(d->ok);
    EXPECT_EQ(d->error.rfind("Redis circuit breaker is open", 0), 0u) << d->error;
    EXPECT_NE(d->error.find("timed out after 100 ms"), std::string::npos)
        << "names the failure that opened it: " << d->error;
    EXPECT_EQ(d->published, 0u);
    EXPECT_EQ(d->keys_deleted, 0u);
    EXPECT_EQ(d->pattern_keys_deleted, 0u);
  }
  EXPECT_LE(between, 1) << "three key batches, at most the first one attempted";
  EXPECT_EQ(redis_.breaker().state(), CircuitBreaker::State::kOpen);

  // Nothing reached Redis.
  EXPECT_EQ(all_keys(), sorted(concat(keys, pattern_keys)));
  expect_next_is_marker(sub, "marker-channel");
}

// Error replies (here: ACL denials) are not outages, but delivery stops there.
TEST_F(DeliveryTest, ErrorRepliesStopDelivery) {
  RedisReply acl = admin().command({"ACL", "SETUSER", "relay", "on", ">pw", "resetkeys", "~q:*",
                                    "resetchannels", "&" + kChannel, "+@all"});
  if (acl.is_error()) GTEST_SKIP() << "this redis-server has no ACLs: " << acl.str;
  ASSERT_EQ(
      admin().command({"ACL", "SETUSER", "noscan", "on", ">pw", "~*", "&*", "+@all", "-scan"}).str,
      "OK");
  RedisEndpoint ep = server_.tcp();
  ep.username = "relay";
  ep.password = "pw";
  redis_.configure(ep, kTimeouts, 60000);

  // PUBLISH refused: nothing published, and of the three key batches at most
  // the first (which may travel with the messages) was attempted.
  Invalidation wrong_channel = everything(2500);
  wrong_channel.channel = "elsewhere";
  set_keys(wrong_channel.keys);
  set_keys(numbered("q:p:", 10));
  int between = 0;
  DeliveryResult r = deliver(redis_, wrong_channel, true, [&] { ++between; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("NOPERM", 0), 0u) << r.error;
  EXPECT_EQ(r.published, 0u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_LE(between, 1);
  EXPECT_GE(dbsize(), 1500 + 10) << "later batches and the patterns were not attempted";
  ASSERT_EQ(admin().command({"FLUSHALL"}).str, "OK");

  const std::vector<std::string> keys = numbered("q:k:", 1000);
  set_keys(keys);
  set_keys({"secret:1"});

  // The second UNLINK batch is refused: the first one counts.
  Invalidation inv = everything(0);
  inv.keys = concat(keys, {"secret:1"});
  between = 0;
  r = deliver(redis_, inv, true, [&] { ++between; });
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("NOPERM", 0), 0u) << r.error;
  EXPECT_EQ(r.published, 3u);
  EXPECT_EQ(r.keys_deleted, 1000u);
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(between, 2);
  EXPECT_EQ(all_keys(), std::vector<std::string>{"secret:1"});

  // UNLINK of what a pattern found is refused.
  set_keys({"q:p:1"});
  Invalidation all_pattern;
  all_pattern.patterns = {"secret:*"};
  r = deliver(redis_, all_pattern, true);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("NOPERM", 0), 0u) << r.error;
  EXPECT_EQ(r.pattern_keys_deleted, 0u);
  EXPECT_EQ(dbsize(), 2);

  // SCAN refused.
  ep.username = "noscan";
  redis_.configure(ep, kTimeouts, 60000);
  Invalidation patterns_only;
  patterns_only.patterns = {"q:p:*"};
  r = deliver(redis_, patterns_only, true);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.rfind("NOPERM", 0), 0u) << r.error;
  EXPECT_EQ(dbsize(), 2);

  // None of this was an outage.
  EXPECT_EQ(redis_.breaker().state(), CircuitBreaker::State::kClosed);
  EXPECT_EQ(redis_.breaker().outages(), 0u);
}

}  // namespace
}  // namespace cachekit
