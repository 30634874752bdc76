#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/l1_table.h"

namespace cachekit {
namespace {

// A buffer with guard bytes on both sides: the table must stay inside.
class Buffer {
 public:
  explicit Buffer(size_t bytes) : bytes_(bytes), mem_(bytes + 2 * kGuard + 64, '\xAB') {}
  void *data() {
    auto p = reinterpret_cast<uintptr_t>(mem_.data()) + kGuard;
    return reinterpret_cast<void *>((p + 7) / 8 * 8);
  }
  size_t size() const { return bytes_; }
  bool guards_intact() {
    char *start = static_cast<char *>(data());
    for (char *c = mem_.data(); c < start; ++c)
      if (*c != '\xAB') return false;
    for (char *c = start + bytes_; c < mem_.data() + mem_.size(); ++c)
      if (*c != '\xAB') return false;
    return true;
  }

 private:
  static constexpr size_t kGuard = 256;
  size_t bytes_;
  std::vector<char> mem_;
};

constexpr int64_t kNow = 1000000;
constexpr int64_t kLater = kNow + 3600 * 1000;
constexpr size_t kNoLimit = SIZE_MAX;

std::string key_of(int i) { return "ck:q:" + std::to_string(i) + std::string(64, 'k'); }

struct Table {
  Buffer buf;
  L1Table t;
  explicit Table(size_t bytes) : buf(bytes), t((L1Table::format(buf.data(), bytes), buf.data())) {}
  bool put(const std::string &k, const std::string &v, int64_t expires = kLater,
           size_t limit = kNoLimit) {
    return t.insert(L1Table::hash(k), k, v, expires, kNow, limit) == L1Table::Stored::kStored;
  }
  bool get(const std::string &k, std::string &v, int64_t now = kNow) {
    return t.lookup(L1Table::hash(k), k, now, v);
  }
  L1Stats stats() {
    L1Stats s;
    for (int p = 0; p < L1Table::kPartitions; ++p) s += t.stats(p);
    return s;
  }
};

TEST(L1Table, RefusesTooSmallABuffer) {
  Buffer b(L1Table::min_bytes() - 1);
  EXPECT_FALSE(L1Table::format(b.data(), b.size()));
  EXPECT_TRUE(b.guards_intact());
}

TEST(L1Table, StoresAndReturnsValuesOfEverySize) {
  Table tb(1 << 20);
  std::vector<std::string> values;
  for (size_t n : {0, 1, 100, 255, 256, 257, 1000, 4096, 10000}) {
    std::string v(n, '\0');
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<char>(i * 7 + n);
    values.push_back(v);
  }
  for (size_t i = 0; i < values.size(); ++i) ASSERT_TRUE(tb.put(key_of(i), values[i]));
  for (size_t i = 0; i < values.size(); ++i) {
    std::string got = "junk";
    ASSERT_TRUE(tb.get(key_of(i), got)) << i;
    EXPECT_EQ(got, values[i]) << i;
  }
  std::string got;
  EXPECT_FALSE(tb.get(key_of(999), got));
  L1Stats s = tb.stats();
  EXPECT_EQ(s.entries, values.size());
  EXPECT_EQ(s.inserts, values.size());
  EXPECT_EQ(s.hits, values.size());
  EXPECT_EQ(s.misses, 1u);
  EXPECT_TRUE(tb.buf.guards_intact());
}

TEST(L1Table, ComparesTheWholeKeyNotItsHash) {
  Table tb(1 << 20);
  const std::string a = key_of(1), b = key_of(2);
  const uint64_t h = L1Table::hash(a);
  ASSERT_EQ(tb.t.insert(h, a, "rows of a", kLater, kNow, kNoLimit), L1Table::Stored::kStored);
  std::string got;
  // Same hash, same length, other key: a collision must not answer.
  EXPECT_FALSE(tb.t.lookup(h, b, kNow, got));
  ASSERT_EQ(tb.t.insert(h, b, "rows of b", kLater, kNow, kNoLimit), L1Table::Stored::kStored);
  ASSERT_TRUE(tb.t.lookup(h, a, kNow, got));
  EXPECT_EQ(got, "rows of a");
  ASSERT_TRUE(tb.t.lookup(h, b, kNow, got));
  EXPECT_EQ(got, "rows of b");
}

TEST(L1Table, AnExpiredEntryIsAbsent) {
  Table tb(1 << 20);
  ASSERT_TRUE(tb.put(key_of(1), "v", kNow + 500));
  std::string got;
  EXPECT_TRUE(tb.get(key_of(1), got, kNow + 499));
  EXPECT_FALSE(tb.get(key_of(1), got, kNow + 500));
}

TEST(L1Table, AnInsertReplacesTheEntryOfTheSameKey) {
  Table tb(1 << 20);
  ASSERT_TRUE(tb.put(key_of(1), std::string(1000, 'a'), kNow + 10));
  ASSERT_TRUE(tb.put(key_of(1), "b", kLater));
  std::string got;
  ASSERT_TRUE(tb.get(key_of(1), got, kNow + 20));
  EXPECT_EQ(got, "b");
  EXPECT_EQ(tb.stats().entries, 1u);
  EXPECT_EQ(tb.stats().used_bytes, key_of(1).size() + 1);
}

TEST(L1Table, RefusesEntriesAboveTheLimitOrAQuarterOfAPartition) {
  Table tb(1 << 20);
  const size_t cap = tb.t.max_entry_bytes();
  EXPECT_GE(cap, 8 * 1024u);
  EXPECT_LE(cap, (1u << 20) / L1Table::kPartitions / 4);
  const std::string k = key_of(1);
  EXPECT_FALSE(tb.put(k, std::string(101 - k.size(), 'x'), kLater, 100));
  EXPECT_TRUE(tb.put(k, std::string(100 - k.size(), 'x'), kLater, 100));
  EXPECT_FALSE(tb.put(key_of(2), std::string(cap, 'x')));
  EXPECT_TRUE(tb.put(key_of(3), std::string(cap - key_of(3).size(), 'x')));
  EXPECT_EQ(tb.stats().too_large, 2u);
  std::string got;
  EXPECT_FALSE(tb.get(key_of(2), got));
  EXPECT_TRUE(tb.buf.guards_intact());
}

// The requirement: entries of old generations (never read again)
// must not crowd out live ones (read all the time).
TEST(L1Table, OneOffEntriesDoNotCrowdOutEntriesInUse) {
  Table tb(1 << 20);
  const std::string value(600, 'v');  // 3 blocks with the key
  std::vector<std::string> hot;
  for (int i = 0; i < 64; ++i) hot.push_back("hot:" + key_of(i));
  for (const auto &k : hot) ASSERT_TRUE(tb.put(k, value));
  // Forty times the table's capacity in one-off keys, the hot ones read
  // between (as concurrent sessions would).
  const uint64_t capacity = tb.stats().capacity_bytes;
  const int one_offs = static_cast<int>(40 * capacity / (value.size() + 80));
  std::string got;
  int hot_misses = 0;
  for (int i = 0; i < one_offs; ++i) {
    ASSERT_TRUE(tb.put("old:" + key_of(i), value));
    if (i % 20 == 0)
      for (const auto &k : hot) hot_misses += !tb.get(k, got);
  }
  EXPECT_EQ(hot_misses, 0);
  for (const auto &k : hot) EXPECT_TRUE(tb.get(k, got)) << k;
  EXPECT_GT(tb.stats().evictions, static_cast<uint64_t>(one_offs / 2));
  EXPECT_LE(tb.stats().used_bytes, capacity);
  EXPECT_TRUE(tb.buf.guards_intact());
}

// Plain FIFO would fail the test above; so does a table whose readers do
// not mark what they read. This shows the test can tell.
TEST(L1Table, WithoutReadsEntriesAreEvictedInTurn) {
  Table tb(1 << 20);
  const std::string value(600, 'v');
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(tb.put("hot:" + key_of(i), value));
  const int one_offs = static_cast<int>(4 * tb.stats().capacity_bytes / (value.size() + 80));
  for (int i = 0; i < one_offs; ++i) ASSERT_TRUE(tb.put("old:" + key_of(i), value));
  std::string got;
  int hot_left = 0;
  for (int i = 0; i < 64; ++i) hot_left += tb.get("hot:" + key_of(i), got);
  EXPECT_EQ(hot_left, 0);
}

// Keys of one partition, so that the test fills exactly one.
std::vector<std::string> keys_of_partition(int p, int n, const std::string &tag) {
  std::vector<std::string> out;
  for (int i = 0; static_cast<int>(out.size()) < n; ++i) {
    std::string k = tag + key_of(i);
    if (L1Table::partition_of(L1Table::hash(k)) == p) out.push_back(k);
  }
  return out;
}

TEST(L1Table, ExpiredEntriesGoBeforeReferencedOnes) {
  Table tb(1 << 20);
  const std::string value(150, 'v');  // one block with the key
  const int per_part = static_cast<int>(tb.t.stats(0).capacity_bytes / L1Table::kBlockBytes / 2);
  // Fill partition 0: every entry read (referenced), half of them expiring.
  auto a = keys_of_partition(0, per_part, "a");
  std::string got;
  for (int i = 0; i < per_part; ++i) {
    ASSERT_TRUE(tb.put(a[i], value, i % 2 ? kLater : kNow + 10));
    ASSERT_TRUE(tb.get(a[i], got));
  }
  ASSERT_EQ(tb.t.stats(0).evictions, 0u);
  // Half as many new entries after the expiry: the expired ones make room.
  for (const auto &k : keys_of_partition(0, per_part / 2, "b"))
    ASSERT_EQ(tb.t.insert(L1Table::hash(k), k, value, kLater, kNow + 20, kNoLimit),
              L1Table::Stored::kStored);
  int live_left = 0;
  for (int i = 1; i < per_part; i += 2) live_left += tb.get(a[i], got, kNow + 20);
  EXPECT_EQ(live_left, per_part / 2);
}

TEST(L1Table, RemoveAndClear) {
  Table tb(1 << 20);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(tb.put(key_of(i), "v" + std::to_string(i)));
  EXPECT_TRUE(tb.t.remove(L1Table::hash(key_of(5)), key_of(5)));
  EXPECT_FALSE(tb.t.remove(L1Table::hash(key_of(5)), key_of(5)));
  std::string got;
  EXPECT_FALSE(tb.get(key_of(5), got));
  EXPECT_EQ(tb.stats().entries, 99u);
  for (int p = 0; p < L1Table::kPartitions; ++p) tb.t.clear(p);
  EXPECT_EQ(tb.stats().entries, 0u);
  EXPECT_EQ(tb.stats().used_bytes, 0u);
  EXPECT_FALSE(tb.get(key_of(6), got));
  // The space is reusable after a clear.
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(tb.put(key_of(i), std::string(3000, 'z')));
  ASSERT_TRUE(tb.get(key_of(99), got));
  EXPECT_EQ(got, std::string(3000, 'z'));
}

// Offsets only: another process maps the same memory at another address.
TEST(L1Table, WorksAtAnotherAddress) {
  Table tb(1 << 20);
  ASSERT_TRUE(tb.put(key_of(1), "one"));
  ASSERT_TRUE(tb.put(key_of(2), std::string(5000, 't')));
  // Same alignment modulo 64 as the original, as a shared mapping would be.
  std::vector<char> copy(tb.buf.size() + 128);
  uintptr_t src = reinterpret_cast<uintptr_t>(tb.buf.data());
  uintptr_t dst = reinterpret_cast<uintptr_t>(copy.data());
  dst += ((src % 64) - (dst % 64) + 64) % 64;
  memcpy(reinterpret_cast<void *>(dst), tb.buf.data(), tb.buf.size());
  L1Table other(reinterpret_cast<void *>(dst));
  std::string got;
  ASSERT_TRUE(other.lookup(L1Table::hash(key_of(2)), key_of(2), kNow, got));
  EXPECT_EQ(got, std::string(5000, 't'));
}

TEST(L1Table, ManyInsertsKeepTheAccountingExact) {
  Table tb(L1Table::min_bytes() * 4);
  std::string got;
  for (int i = 0; i < 20000; ++i) {
    std::string v(static_cast<size_t>((i * 37) % 900), static_cast<char>('a' + i % 26));
    ASSERT_TRUE(tb.put(key_of(i % 500), v, kNow + 1 + i % 7 * 1000));
    if (i % 3 == 0 && tb.get(key_of((i * 7) % 500), got)) {
      ASSERT_TRUE(got.empty() || got.find_first_not_of(got[0]) == std::string::npos);
    }
  }
  L1Stats s = tb.stats();
  EXPECT_LE(s.used_bytes, s.capacity_bytes);
  EXPECT_EQ(s.inserts, 20000u);
  EXPECT_TRUE(tb.buf.guards_intact());
}

}  // namespace
}  // namespace cachekit
