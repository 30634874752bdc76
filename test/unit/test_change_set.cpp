#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/change_set.h"

using cachekit::ChangeSet;
using cachekit::CommitInfo;
using cachekit::Invalidation;
using cachekit::TableChange;
using Strings = std::vector<std::string>;

namespace {

constexpr size_t kNoLimit = 1000000;

TableChange &named(ChangeSet &cs, int depth, uint32_t relid, const char *name) {
  bool created = false;
  TableChange &t = cs.table(depth, relid, &created);
  if (created) {
    t.schema = "public";
    t.table = name;
  }
  return t;
}

CommitInfo info() { return CommitInfo{"app", "2026-01-02 03:04:05+00", 42}; }

Strings sorted(Strings v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(ChangeSet, TableIsCreatedOncePerLevel) {
  ChangeSet cs;
  bool created = false;
  TableChange &a = cs.table(1, 10, &created);
  EXPECT_TRUE(created);
  TableChange &b = cs.table(1, 10, &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(&a, &b);
  cs.table(2, 10, &created);
  EXPECT_TRUE(created);  // a savepoint records its own part
  // References stay valid while other tables are added.
  for (uint32_t r = 100; r < 200; ++r) cs.table(1, r);
  EXPECT_EQ(&a, &cs.table(1, 10));
}

TEST(ChangeSet, ReleasedSavepointMergesIntoItsParent) {
  ChangeSet cs;
  TableChange &top = named(cs, 1, 10, "users");
  top.ops |= cachekit::kOpUpdate;
  cs.add_key(top, "u:*", "u:1", kNoLimit);
  TableChange &sub = named(cs, 2, 10, "users");
  sub.ops |= cachekit::kOpInsert;
  cs.add_key(sub, "u:*", "u:1", kNoLimit);  // also in the parent
  cs.add_key(sub, "u:*", "u:2", kNoLimit);
  TableChange &other = named(cs, 2, 11, "teams");
  cs.add_key(other, "t:*", "t:5", kNoLimit);
  EXPECT_EQ(cs.total_keys(), 4u);  // each level holds its own keys

  cs.release(2);
  EXPECT_EQ(cs.total_keys(), 3u);  // u:1 is held once now
  Invalidation inv = cs.build("ch", info());
  EXPECT_EQ(inv.keys, (Strings{"t:5", "u:1", "u:2"}));
  ASSERT_EQ(inv.messages.size(), 2u);
  EXPECT_NE(inv.messages[0].find("\"operations\": [\"INSERT\", \"UPDATE\"]"), std::string::npos)
      << inv.messages[0];
  EXPECT_NE(inv.messages[1].find("\"table\": \"teams\""), std::string::npos);
}

TEST(ChangeSet, RolledBackSavepointIsDroppedWithEverythingBelowIt) {
  ChangeSet cs;
  TableChange &top = named(cs, 1, 10, "users");
  top.ops |= cachekit::kOpUpdate;
  cs.add_key(top, "u:*", "u:1", kNoLimit);
  TableChange &s2 = named(cs, 2, 10, "users");
  cs.add_key(s2, "u:*", "u:2", kNoLimit);
  TableChange &s3 = named(cs, 3, 12, "docs");
  s3.ops |= cachekit::kOpTruncate;
  s3.add_pattern("d:*");
  cs.add_key(s3, "d:*", "d:1", kNoLimit);
  EXPECT_EQ(cs.total_keys(), 3u);

  cs.rollback(2);  // ROLLBACK TO a savepoint that has a nested one
  EXPECT_EQ(cs.total_keys(), 1u);
  EXPECT_FALSE(cs.empty());
  Invalidation inv = cs.build("ch", info());
  EXPECT_EQ(inv.keys, Strings{"u:1"});
  EXPECT_TRUE(inv.patterns.empty());
  ASSERT_EQ(inv.messages.size(), 1u);
  EXPECT_NE(inv.messages[0].find("\"table\": \"users\""), std::string::npos);
}

TEST(ChangeSet, ReleaseThenRollbackOfTheParent) {
  ChangeSet cs;
  named(cs, 1, 10, "users");
  cs.add_key(named(cs, 3, 11, "teams"), "t:*", "t:1", kNoLimit);
  cs.release(3);  // RELEASE the inner savepoint: its part now belongs to depth 2
  EXPECT_EQ(cs.total_keys(), 1u);
  cs.rollback(2);  // then ROLLBACK TO the outer one
  EXPECT_EQ(cs.total_keys(), 0u);
  Invalidation inv = cs.build("ch", info());
  EXPECT_TRUE(inv.keys.empty());
  ASSERT_EQ(inv.messages.size(), 1u);
}

TEST(ChangeSet, RollbackOfAnEmptyLevelKeepsTheParent) {
  ChangeSet cs;
  cs.add_key(named(cs, 1, 10, "users"), "u:*", "u:1", kNoLimit);
  cs.rollback(2);
  cs.rollback(5);
  EXPECT_EQ(cs.total_keys(), 1u);
  EXPECT_EQ(cs.build("", info()).keys, Strings{"u:1"});
}

// Rules a:{id} and b:{id} on one table, a limit of 5, ten rows: every key
// goes, so both patterns must be flushed, however the calls interleave.
TEST(ChangeSet, OverflowFlushesEveryRuleStatementOrder) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  for (const char *rule : {"a", "b"})  // statement triggers: one rule after the other
    for (int i = 1; i <= 10; ++i)
      cs.add_key(t, std::string(rule) + ":*", std::string(rule) + ":" + std::to_string(i), 5);
  Invalidation inv = cs.build("", info());
  EXPECT_EQ(sorted(inv.patterns), (Strings{"a:*", "b:*"}));
  EXPECT_TRUE(inv.keys.empty());
  EXPECT_EQ(cs.total_keys(), 0u);
}

TEST(ChangeSet, OverflowFlushesEveryRuleRowOrder) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  for (int i = 1; i <= 10; ++i)  // row triggers: rules alternate per row
    for (const char *rule : {"a", "b"})
      cs.add_key(t, std::string(rule) + ":*", std::string(rule) + ":" + std::to_string(i), 5);
  EXPECT_EQ(sorted(cs.build("", info()).patterns), (Strings{"a:*", "b:*"}));
}

// The limit reached by the second rule (its statement trigger runs after the
// first rule's): the first rule adds nothing more, and the keys of it that
// were forgotten must still go, by its pattern.
TEST(ChangeSet, OverflowFlushesARuleThatAddsNothingLater) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  for (int i = 1; i <= 3; ++i) cs.add_key(t, "a:*", "a:" + std::to_string(i), 5);
  for (int i = 1; i <= 3; ++i) cs.add_key(t, "b:*", "b:" + std::to_string(i), 5);
  EXPECT_TRUE(t.overflow);
  Invalidation inv = cs.build("", info());
  EXPECT_EQ(sorted(inv.patterns), (Strings{"a:*", "b:*"}));
  EXPECT_TRUE(inv.keys.empty());
}

TEST(ChangeSet, OverflowReportsOnceAndCoversLaterKeys) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  using K = ChangeSet::KeyOutcome;
  EXPECT_EQ(cs.add_key(t, "a:*", "a:1", 2), K::kAdded);
  EXPECT_EQ(cs.add_key(t, "a:*", "a:1", 2), K::kKnown);
  EXPECT_EQ(cs.add_key(t, "a:*", "a:2", 2), K::kAdded);
  EXPECT_EQ(cs.add_key(t, "a:*", "a:2", 2), K::kKnown);  // a duplicate is not a new key
  EXPECT_EQ(cs.add_key(t, "a:*", "a:3", 2), K::kOverflowed);
  EXPECT_TRUE(t.overflow);
  EXPECT_EQ(t.patterns, Strings{"a:*"});
  EXPECT_EQ(cs.add_key(t, "a:*", "a:4", 2), K::kCovered);
  EXPECT_EQ(cs.add_key(t, "c:*", "c:1", 2), K::kCovered);  // a rule that had no key yet
  EXPECT_EQ(sorted(t.patterns), (Strings{"a:*", "c:*"}));
  EXPECT_EQ(cs.total_keys(), 0u);
}

TEST(ChangeSet, OverflowOfOneTableKeepsTheOthersKeys) {
  ChangeSet cs;
  TableChange &small = named(cs, 1, 10, "teams");
  cs.add_key(small, "t:*", "t:1", 3);
  cs.add_key(small, "t:*", "t:2", 3);
  TableChange &big = named(cs, 1, 11, "users");
  cs.add_key(big, "u:*", "u:1", 3);
  cs.add_key(big, "u:*", "u:2", 3);  // the limit is reached here
  EXPECT_TRUE(big.overflow);
  EXPECT_FALSE(small.overflow);
  EXPECT_EQ(cs.total_keys(), 2u);
  Invalidation inv = cs.build("", info());
  EXPECT_EQ(inv.keys, (Strings{"t:1", "t:2"}));
  EXPECT_EQ(inv.patterns, Strings{"u:*"});
}

TEST(ChangeSet, OverflowInASavepointThenMerged) {
  ChangeSet cs;
  TableChange &top = named(cs, 1, 10, "users");
  cs.add_key(top, "a:*", "a:1", 3);
  TableChange &sub = named(cs, 2, 10, "users");
  cs.add_key(sub, "b:*", "b:1", 3);
  cs.add_key(sub, "b:*", "b:2", 3);
  cs.add_key(sub, "b:*", "b:3", 3);  // over the limit in the savepoint
  EXPECT_TRUE(sub.overflow);
  cs.release(2);
  TableChange &merged = cs.table(1, 10);
  EXPECT_TRUE(merged.overflow);
  cs.add_key(merged, "a:*", "a:2", 3);  // later keys of any rule: by pattern
  Invalidation inv = cs.build("", info());
  EXPECT_EQ(inv.keys, Strings{"a:1"});
  EXPECT_EQ(sorted(inv.patterns), (Strings{"a:*", "b:*"}));
}

TEST(ChangeSet, OverflowInARolledBackSavepointIsForgotten) {
  ChangeSet cs;
  TableChange &top = named(cs, 1, 10, "users");
  cs.add_key(top, "a:*", "a:1", 2);
  TableChange &sub = named(cs, 2, 10, "users");
  cs.add_key(sub, "a:*", "a:2", 2);
  cs.add_key(sub, "a:*", "a:3", 2);
  EXPECT_TRUE(sub.overflow);
  cs.rollback(2);
  EXPECT_EQ(cs.total_keys(), 1u);
  EXPECT_EQ(cs.add_key(cs.table(1, 10), "a:*", "a:4", 2), ChangeSet::KeyOutcome::kAdded);
  Invalidation inv = cs.build("", info());
  EXPECT_EQ(inv.keys, (Strings{"a:1", "a:4"}));
  EXPECT_TRUE(inv.patterns.empty());
}

TEST(ChangeSet, KeyLimitCountsEveryLevel) {
  ChangeSet cs;
  cs.add_key(named(cs, 1, 10, "users"), "a:*", "a:1", 3);
  cs.add_key(named(cs, 2, 11, "teams"), "t:*", "t:1", 3);
  cs.add_key(named(cs, 3, 12, "docs"), "d:*", "d:1", 3);
  EXPECT_EQ(cs.total_keys(), 3u);
  // The fourth key anywhere passes the limit.
  EXPECT_EQ(cs.add_key(cs.table(3, 12), "d:*", "d:2", 3), ChangeSet::KeyOutcome::kOverflowed);
  EXPECT_EQ(cs.total_keys(), 2u);  // docs' own key went with it
  cs.rollback(3);
  EXPECT_EQ(cs.total_keys(), 2u);
  cs.release(2);
  EXPECT_EQ(cs.total_keys(), 2u);
  cs.clear();
  EXPECT_EQ(cs.total_keys(), 0u);
  EXPECT_TRUE(cs.empty());
}

TEST(ChangeSet, RowsOfOneStatementAreCountedOnce) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  // Two rules' statement triggers see the same 10 rows.
  ChangeSet::count_rows(t, 1, "a", 10, false);
  ChangeSet::count_rows(t, 1, "b", 10, false);
  EXPECT_EQ(t.rows, 10u);
  // session_replication_role = replica: row triggers of both rules, then the
  // statement triggers, for a 3-row statement.
  for (int i = 0; i < 3; ++i) {
    ChangeSet::count_rows(t, 2, "a", 1, true);
    ChangeSet::count_rows(t, 2, "b", 1, true);
  }
  ChangeSet::count_rows(t, 2, "a", 3, false);
  ChangeSet::count_rows(t, 2, "b", 3, false);
  EXPECT_EQ(t.rows, 13u);
  // The apply worker: row triggers only.
  for (int i = 0; i < 4; ++i) ChangeSet::count_rows(t, 3, "a", 1, true);
  EXPECT_EQ(t.rows, 17u);
  EXPECT_TRUE(t.rows_known);
}

TEST(ChangeSet, RowsAddUpAcrossSavepoints) {
  ChangeSet cs;
  ChangeSet::count_rows(named(cs, 1, 10, "users"), 1, "a", 2, false);
  ChangeSet::count_rows(named(cs, 2, 10, "users"), 2, "a", 3, false);
  cs.release(2);
  EXPECT_EQ(cs.table(1, 10).rows, 5u);
}

TEST(ChangeSet, MessageJson) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  t.ops = cachekit::kOpUpdate | cachekit::kOpDelete;
  cs.add_key(t, "u:*", "u:2", kNoLimit);
  cs.add_key(t, "v:*", "v:\"1\"", kNoLimit);
  cs.add_key(t, "u:*", "u:1", kNoLimit);
  ChangeSet::count_rows(t, 1, "u", 2, false);
  TableChange &n = named(cs, 1, 11, "notes");
  n.ops = cachekit::kOpTruncate;
  Invalidation inv = cs.build("cachekit:invalidate", info());
  EXPECT_EQ(inv.channel, "cachekit:invalidate");
  ASSERT_EQ(inv.messages.size(), 2u);
  EXPECT_EQ(inv.messages[0],
            "{\"database\": \"app\", \"schema\": \"public\", \"table\": \"users\", "
            "\"operations\": [\"UPDATE\", \"DELETE\"], \"rows\": 2, "
            "\"commit_time\": \"2026-01-02 03:04:05+00\", \"xid\": 42, "
            "\"keys\": [\"u:1\", \"u:2\", \"v:\\\"1\\\"\"], \"keys_overflow\": false, "
            "\"flush\": false}");
  EXPECT_EQ(inv.messages[1],
            "{\"database\": \"app\", \"schema\": \"public\", \"table\": \"notes\", "
            "\"operations\": [\"TRUNCATE\"], \"rows\": null, "
            "\"commit_time\": \"2026-01-02 03:04:05+00\", \"xid\": 42, "
            "\"keys\": [], \"keys_overflow\": false, \"flush\": true}");
}

TEST(ChangeSet, OutboxPayloadIsTheInvalidationsJson) {
  Invalidation inv{"ch", {"{\"m\": 1}"}, {"k:1", "k:2"}, {"k:*"}};
  EXPECT_EQ(cachekit::invalidation_json(inv),
            "{\"channel\": \"ch\", \"messages\": [\"{\\\"m\\\": 1}\"], \"keys\": [\"k:1\", "
            "\"k:2\"], \"patterns\": [\"k:*\"]}");
}

TEST(ChangeSet, MessageListsTheFirstHundredKeysSorted) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  t.ops = cachekit::kOpInsert;
  for (int i = 0; i < 150; ++i) {
    char key[16];
    snprintf(key, sizeof key, "u:%03d", 149 - i);
    cs.add_key(t, "u:*", key, kNoLimit);
  }
  std::string m = cachekit::table_message(t, info());
  EXPECT_NE(m.find("\"keys\": [\"u:000\", \"u:001\""), std::string::npos);
  EXPECT_NE(m.find("\"u:099\"]"), std::string::npos);
  EXPECT_EQ(m.find("u:100"), std::string::npos);
  EXPECT_NE(m.find("\"keys_overflow\": true, \"flush\": false"), std::string::npos);
  Invalidation inv = cs.build("", info());
  EXPECT_TRUE(inv.messages.empty());  // no channel: keys only
  EXPECT_EQ(inv.keys.size(), 150u);
}

TEST(ChangeSet, OverflowedTableSaysSoInItsMessage) {
  ChangeSet cs;
  TableChange &t = named(cs, 1, 10, "users");
  t.ops = cachekit::kOpUpdate;
  cs.add_key(t, "a:*", "a:1", 1);
  cs.add_key(t, "b:*", "b:1", 1);
  std::string m = cachekit::table_message(t, info());
  EXPECT_NE(m.find("\"keys\": [], \"keys_overflow\": true, \"flush\": true"), std::string::npos)
      << m;
}

TEST(ChangeSet, PatternsAreUniqueAcrossTables) {
  ChangeSet cs;  // partitions carry their parent's rules: same pattern
  named(cs, 1, 10, "p1").add_pattern("e:*");
  named(cs, 1, 11, "p2").add_pattern("e:*");
  named(cs, 1, 11, "p2").add_pattern("e:*");
  EXPECT_TRUE(cs.has_keys());
  EXPECT_EQ(cs.build("", info()).patterns, Strings{"e:*"});
}
