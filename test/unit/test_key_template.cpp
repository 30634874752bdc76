#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/key_template.h"

using cachekit::KeyTemplate;
using Values = std::vector<std::optional<std::string>>;

TEST(KeyTemplate, ExpandsPlaceholders) {
  auto t = KeyTemplate::parse("user_reports:{user_id}");
  ASSERT_EQ(t.columns(), std::vector<std::string>{"user_id"});
  EXPECT_EQ(t.expand({"42"}), "user_reports:42");
}

TEST(KeyTemplate, SeveralAndRepeatedPlaceholders) {
  auto t = KeyTemplate::parse("report:{id}:{kind}:{id}");
  EXPECT_EQ(t.columns(), (std::vector<std::string>{"id", "kind"}));
  EXPECT_EQ(t.expand({"7", "pdf"}), "report:7:pdf:7");
}

TEST(KeyTemplate, HostileValuesCannotChangeTheShape) {
  auto t = KeyTemplate::parse("u:{id}:x");
  std::string nul("a\0b", 3);
  EXPECT_EQ(t.expand({"a:b"}), "u:a%3Ab:x");
  EXPECT_EQ(t.expand({"{id}"}), "u:%7Bid%7D:x");
  EXPECT_EQ(t.expand({"a b*?[]"}), "u:a%20b%2A%3F%5B%5D:x");
  EXPECT_EQ(t.expand({nul}), "u:a%00b:x");
  EXPECT_EQ(t.expand({"\xff\xfe"}), "u:%FF%FE:x");
  EXPECT_EQ(t.expand({"%41"}), "u:%2541:x");  // '%' itself is encoded: no ambiguity
  EXPECT_EQ(t.expand({"Az09-._"}), "u:Az09-._:x");
  // No value can produce a ':' inside the placeholder.
  for (int c = 0; c < 256; ++c) {
    auto k = t.expand({std::string(1, static_cast<char>(c))});
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->find(':', 2), k->size() - 2) << "byte " << c;
  }
}

TEST(KeyTemplate, NullGivesNoKey) {
  auto t = KeyTemplate::parse("u:{id}");
  EXPECT_EQ(t.expand({std::nullopt}), std::nullopt);
  EXPECT_EQ(t.expand({""}), "u:");
}

TEST(KeyTemplate, EscapedBraces) {
  auto t = KeyTemplate::parse("{{lit}}:{id}");
  EXPECT_EQ(t.expand({"1"}), "{lit}:1");
  EXPECT_EQ(t.pattern(), "{lit}:*");
}

TEST(KeyTemplate, PatternEscapesGlobCharacters) {
  EXPECT_EQ(KeyTemplate::parse("a*b?:{id}:[x]").pattern(), "a\\*b\\?:*:\\[x\\]");
  EXPECT_EQ(KeyTemplate::parse("plain").pattern(), "plain");
}

TEST(KeyTemplate, RejectsMalformedTemplates) {
  for (const char *bad : {"", "u:{id", "u:{}", "u:}", "u:{a{b}}", "{"}) {
    try {
      KeyTemplate::parse(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const cachekit::Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22023") << bad;
    }
  }
  EXPECT_THROW(KeyTemplate::parse(std::string(600, 'k')), cachekit::Error);
}

#include "core/delivery.h"

TEST(InvalidationCodec, RoundTripsAndRejectsTruncation) {
  cachekit::Invalidation inv;
  inv.channel = "cachekit:invalidate";
  inv.messages = {"{\"table\": \"t\"}", std::string("\0x", 2)};
  inv.keys = {"a", "", "user:1"};
  inv.patterns = {"user:*"};
  std::string bytes = cachekit::encode_invalidation(inv);
  cachekit::Invalidation back;
  ASSERT_TRUE(cachekit::decode_invalidation(bytes, &back));
  EXPECT_EQ(back.channel, inv.channel);
  EXPECT_EQ(back.messages, inv.messages);
  EXPECT_EQ(back.keys, inv.keys);
  EXPECT_EQ(back.patterns, inv.patterns);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(cachekit::decode_invalidation(std::string_view(bytes.data(), n), &back)) << n;
  EXPECT_FALSE(cachekit::decode_invalidation(bytes + "x", &back));
  cachekit::Invalidation merged;
  cachekit::append_invalidation(merged, inv);
  cachekit::append_invalidation(merged, inv);
  EXPECT_EQ(merged.channel, inv.channel);
  EXPECT_EQ(merged.messages.size(), 4u);
  EXPECT_EQ(merged.keys.size(), 6u);
}
