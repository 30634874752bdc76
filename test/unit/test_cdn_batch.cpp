#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/cdn_batch.h"
#include "core/error.h"

namespace cachekit::cdn {
namespace {

std::string path_error(const std::string &path) {
  try {
    normalize_path(path);
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), "22023") << path;
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << path;
  return {};
}

TEST(CdnPath, KeepsSafeCharactersAndEscapes) {
  EXPECT_EQ(normalize_path("/img/logo.png"), "/img/logo.png");
  EXPECT_EQ(normalize_path("/"), "/");
  EXPECT_EQ(normalize_path("/a-b_c.d~e!$&'()+,;=:@/x?q=1&r=2"), "/a-b_c.d~e!$&'()+,;=:@/x?q=1&r=2");
  EXPECT_EQ(normalize_path("/a%2Fb%2f"), "/a%2Fb%2f") << "escapes are kept as written";
  EXPECT_EQ(normalize_path("/img/*"), "/img/*");
  EXPECT_EQ(normalize_path("/*"), "/*");
  EXPECT_EQ(normalize_path("/star%2A"), "/star%2A");
}

TEST(CdnPath, PercentEncodesEverythingElse) {
  EXPECT_EQ(normalize_path("/caf\xc3\xa9"), "/caf%C3%A9");
  EXPECT_EQ(normalize_path("/100%"), "/100%25");
  EXPECT_EQ(normalize_path("/a%zz%4"), "/a%25zz%254");
  EXPECT_EQ(normalize_path("/a\"<>\\^`{|}[]#"), "/a%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D%23");
  // Idempotent: a normalized path is its own normal form.
  for (const char *p : {"/caf\xc3\xa9", "/100%", "/a\"<>#", "/x/*"})
    EXPECT_EQ(normalize_path(normalize_path(p)), normalize_path(p)) << p;
}

TEST(CdnPath, RefusesWhatCannotBeAPurgePath) {
  EXPECT_EQ(path_error(""), "cdn path must start with \"/\"");
  EXPECT_EQ(path_error("img/a.png"), "cdn path must start with \"/\"");
  EXPECT_EQ(path_error("https://www.example.com/a"), "cdn path must start with \"/\"");
  for (const char *bad : {"/a b", "/a\tb", "/a\nb", "/a\rb", "/a\x7f"})
    EXPECT_EQ(path_error(bad), "cdn path contains a control character or white space") << bad;
  EXPECT_EQ(path_error(std::string("/a\0b", 4)),
            "cdn path contains a control character or white space");
  EXPECT_EQ(path_error("/a*b"), "cdn path has \"*\" before its end");
  EXPECT_EQ(path_error("/a/**"), "cdn path has \"*\" before its end");
}

TEST(CdnPath, LengthIsCountedAfterEncoding) {
  const std::string fits = "/" + std::string(kMaxPathBytes - 1, 'a');
  EXPECT_EQ(normalize_path(fits), fits);
  EXPECT_EQ(path_error(fits + "b"), "cdn path is too long");
  // 1365 bytes that each become three: 1 + 4095 = 4096.
  const std::string encoded = "/" + std::string(1365, '\xff');
  EXPECT_EQ(normalize_path(encoded).size(), kMaxPathBytes);
  EXPECT_EQ(path_error(encoded + "\xff"), "cdn path is too long");
}

Limits limits(std::size_t per_batch, std::size_t max_paths = 0, std::size_t max_wild = 0,
              bool wildcards = true, bool tags = true) {
  Limits l;
  l.max_items_per_batch = per_batch;
  l.max_in_progress_paths = max_paths;
  l.max_in_progress_wildcards = max_wild;
  l.supports_wildcards = wildcards;
  l.supports_tags = tags;
  return l;
}

std::vector<std::string> flat(const Plan &plan) {
  std::vector<std::string> out;
  for (const auto &b : plan.batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

// Every distinct input item in exactly one of the four lists, batches within
// the per-batch limit and none empty.
void check_partition(const std::vector<std::string> &input, const Plan &plan,
                     std::size_t per_batch) {
  std::multiset<std::string> out;
  for (const auto &b : plan.batches) {
    EXPECT_FALSE(b.empty());
    EXPECT_LE(b.size(), per_batch);
    out.insert(b.begin(), b.end());
  }
  out.insert(plan.left.begin(), plan.left.end());
  for (const auto &c : plan.covered) out.insert(c.first);
  out.insert(plan.rejected.begin(), plan.rejected.end());
  const std::set<std::string> distinct(input.begin(), input.end());
  EXPECT_EQ(out.size(), distinct.size()) << "no item twice";
  EXPECT_TRUE(std::equal(out.begin(), out.end(), distinct.begin(), distinct.end()))
      << "every item somewhere";
}

TEST(CdnPlan, TenThousandPathsFitTheLimitsWithoutDuplicates) {
  std::vector<std::string> items;
  for (int i = 0; i < 10000; ++i) items.push_back("/asset/" + std::to_string(i % 7000) + ".js");
  for (const std::size_t per_batch : {1, 100, 256, 3000}) {
    const Plan plan = plan_batches(items, limits(per_batch), 0, 0);
    check_partition(items, plan, per_batch);
    EXPECT_TRUE(plan.left.empty());
    EXPECT_TRUE(plan.covered.empty());
    const auto sent = flat(plan);
    ASSERT_EQ(sent.size(), 7000u);
    EXPECT_EQ(plan.batches.size(), (7000 + per_batch - 1) / per_batch);
    // First-occurrence order is kept.
    for (int i = 0; i < 7000; ++i) ASSERT_EQ(sent[i], "/asset/" + std::to_string(i) + ".js");
  }
}

TEST(CdnPlan, InProgressBudgetsLeaveTheRestForLater) {
  // CloudFront: 3,000 paths and 15 wildcards in progress, counted apart.
  std::vector<std::string> items;
  for (int i = 0; i < 10000; ++i) items.push_back("/f/" + std::to_string(i));
  for (int i = 0; i < 40; ++i) items.push_back("/w" + std::to_string(i) + "/*");
  const Limits cf = limits(3000, 3000, 15);

  Plan plan = plan_batches(items, cf, 0, 0);
  check_partition(items, plan, 3000);
  auto sent = flat(plan);
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(), is_wildcard), 15);
  EXPECT_EQ(sent.size(), 3015u);
  EXPECT_EQ(plan.left.size(), 10040u - 3015u);
  EXPECT_EQ(plan.left.front(), "/f/3000");

  plan = plan_batches(items, cf, 2990, 10);
  check_partition(items, plan, 3000);
  sent = flat(plan);
  EXPECT_EQ(std::count_if(sent.begin(), sent.end(), is_wildcard), 5);
  EXPECT_EQ(sent.size(), 15u);
  EXPECT_EQ(sent[9], "/f/9");

  // Already over a limit (the provider's count changed): nothing of that kind.
  plan = plan_batches(items, cf, 5000, 0);
  sent = flat(plan);
  EXPECT_EQ(sent.size(), 15u);
  EXPECT_TRUE(std::all_of(sent.begin(), sent.end(), is_wildcard));
  plan = plan_batches(items, cf, 0, 15);
  sent = flat(plan);
  EXPECT_EQ(sent.size(), 3000u);
  EXPECT_TRUE(std::none_of(sent.begin(), sent.end(), is_wildcard));
}

TEST(CdnPlan, WildcardsCoverWhatTheyPurge) {
  const std::vector<std::string> items = {"/img/a.png", "/imgx",     "/img/*", "/img/x/*",
                                          "/img",       "/img/",     "/css*",  "/css/site.css",
                                          "/cs",        "/img/a.png"};
  const Plan plan = plan_batches(items, limits(100), 0, 0);
  check_partition(items, plan, 100);
  EXPECT_EQ(flat(plan), (std::vector<std::string>{"/imgx", "/img/*", "/img", "/css*", "/cs"}));
  const std::map<std::string, std::string> covered(plan.covered.begin(), plan.covered.end());
  EXPECT_EQ(covered, (std::map<std::string, std::string>{{"/img/a.png", "/img/*"},
                                                         {"/img/x/*", "/img/*"},
                                                         {"/img/", "/img/*"},
                                                         {"/css/site.css", "/css*"}}));
}

TEST(CdnPlan, APathUnderAWildcardLeftForLaterIsSentNow) {
  const std::vector<std::string> items = {"/a/*", "/b/*", "/b/1", "/b/2/*", "/a/1"};
  const Plan plan = plan_batches(items, limits(100, 0, 1), 0, 0);
  check_partition(items, plan, 100);
  EXPECT_EQ(flat(plan), (std::vector<std::string>{"/a/*", "/b/1"}));
  EXPECT_EQ(plan.left, (std::vector<std::string>{"/b/*", "/b/2/*"}))
      << "a wildcard under a left one is left too";
  ASSERT_EQ(plan.covered.size(), 1u);
  EXPECT_EQ(plan.covered[0], (std::pair<std::string, std::string>{"/a/1", "/a/*"}));
}

TEST(CdnPlan, WildcardsAreRejectedForProvidersWithoutThem) {
  const std::vector<std::string> items = {"/img/*", "/img/a.png", "/b", "/img/*"};
  const Plan plan = plan_batches(items, limits(256, 0, 0, false), 0, 0);
  check_partition(items, plan, 256);
  EXPECT_EQ(flat(plan), (std::vector<std::string>{"/img/a.png", "/b"})) << "nothing covered";
  EXPECT_EQ(plan.rejected, std::vector<std::string>{"/img/*"});
}

TEST(CdnPlan, TagsAreOnlyDeduplicatedAndSplit) {
  std::vector<std::string> tags;
  for (int i = 0; i < 600; ++i) tags.push_back("t" + std::to_string(i % 300));
  tags.push_back("x*");
  Plan plan = plan_batches(tags, limits(256, 1, 1), 10, 10, PurgeKind::kTags);
  check_partition(tags, plan, 256);
  EXPECT_EQ(plan.batches.size(), 2u);
  EXPECT_EQ(flat(plan).size(), 301u) << "budgets and wildcards do not apply to tags";
  plan = plan_batches(tags, limits(256, 0, 0, true, false), 0, 0, PurgeKind::kTags);
  EXPECT_TRUE(plan.batches.empty());
  EXPECT_EQ(plan.rejected.size(), 301u);
}

TEST(CdnPlan, PurgeAll) {
  Plan plan = plan_batches({}, limits(100), 0, 0, PurgeKind::kAll);
  ASSERT_EQ(plan.batches.size(), 1u);
  EXPECT_TRUE(plan.batches[0].empty());
  Limits none = limits(100);
  none.supports_all = false;
  EXPECT_TRUE(plan_batches({}, none, 0, 0, PurgeKind::kAll).batches.empty());
}

TEST(CdnPlan, RandomPlansKeepEveryPromise) {
  std::mt19937 rng(20240909);
  const std::vector<std::string> parts = {"a", "b", "ab", "c"};
  for (int round = 0; round < 300; ++round) {
    std::vector<std::string> items;
    const int n = static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) {
      std::string p;
      const int depth = 1 + static_cast<int>(rng() % 3);
      for (int d = 0; d < depth; ++d) p += "/" + parts[rng() % parts.size()];
      if (rng() % 4 == 0) p += (rng() % 2) ? "/*" : "*";
      items.push_back(p);
    }
    const Limits l = limits(1 + rng() % 20, rng() % 3 ? 0 : rng() % 30, rng() % 3 ? 0 : rng() % 5,
                            rng() % 4 != 0);
    const std::size_t ipp = rng() % 10, ipw = rng() % 3;
    const Plan plan = plan_batches(items, l, ipp, ipw);
    SCOPED_TRACE("round " + std::to_string(round));
    check_partition(items, plan, l.max_items_per_batch);

    const auto sent = flat(plan);
    const auto wild = std::count_if(sent.begin(), sent.end(), is_wildcard);
    const auto exact = static_cast<long>(sent.size()) - wild;
    auto budget = [](std::size_t limit, std::size_t used) -> long {
      return limit == 0 ? 1L << 40 : static_cast<long>(limit > used ? limit - used : 0);
    };
    EXPECT_LE(wild, budget(l.max_in_progress_wildcards, ipw));
    EXPECT_LE(exact, budget(l.max_in_progress_paths, ipp));
    // Something is left only when its budget is used up.
    for (const auto &item : plan.left) {
      const long expected = is_wildcard(item) ? budget(l.max_in_progress_wildcards, ipw)
                                              : budget(l.max_in_progress_paths, ipp);
      EXPECT_EQ(is_wildcard(item) ? wild : exact, expected) << item;
    }
    // Covered items start with a sent wildcard's prefix; no sent item does
    // (other than the wildcard itself).
    const std::set<std::string> sent_set(sent.begin(), sent.end());
    for (const auto &[item, by] : plan.covered) {
      EXPECT_TRUE(l.supports_wildcards);
      EXPECT_TRUE(sent_set.count(by)) << by;
      EXPECT_EQ(item.compare(0, by.size() - 1, by, 0, by.size() - 1), 0) << item << " " << by;
    }
    for (const auto &w : sent) {
      if (!is_wildcard(w)) continue;
      for (const auto &other : sent) {
        if (other == w) continue;
        EXPECT_NE(other.compare(0, w.size() - 1, w, 0, w.size() - 1), 0) << other << " " << w;
      }
    }
    for (const auto &r : plan.rejected) EXPECT_TRUE(is_wildcard(r) && !l.supports_wildcards);
  }
}

}  // namespace
}  // namespace cachekit::cdn
