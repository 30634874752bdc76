#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/keys.h"

namespace cachekit {
namespace {

using namespace std::string_literals;

Error key_error(std::string_view key, std::string_view what = "key") {
  try {
    validate_key(key, what);
  } catch (const Error &e) {
    return e;
  }
  ADD_FAILURE() << "validate_key accepted a key of " << key.size() << " bytes";
  return Error(sqlstate::kInternalError, "accepted");
}

TEST(Keys, BuildKeyConcatenatesVerbatim) {
  EXPECT_EQ(build_key("app:", keyspace::kKeyValue, "user:42"), "app:kv:user:42");
  EXPECT_EQ(build_key("", keyspace::kSession, "abc"), "sess:abc");
  EXPECT_EQ(build_key("p", keyspace::kQuery, ""), "pq:");
  std::string binary = "a\0b\xff"s;
  EXPECT_EQ(build_key("x:", keyspace::kKeyValue, binary), "x:kv:a\0b\xff"s);
  EXPECT_EQ(build_key("x:", keyspace::kKeyValue, binary).size(), 9u);
}

TEST(Keys, NamespacesKeepKeysApart) {
  // A caller-chosen kv key can never equal a query-result or session key.
  std::string q = build_key("p:", keyspace::kQuery, "abc");
  for (const std::string &k : {"q:abc"s, "abc"s, ":q:abc"s}) {
    EXPECT_NE(build_key("p:", keyspace::kKeyValue, k), q);
    EXPECT_NE(build_key("p:", keyspace::kKeyValue, k), build_key("p:", keyspace::kSession, "abc"));
  }
}

TEST(Keys, ValidateKeyAcceptsUpTo512Bytes) {
  EXPECT_NO_THROW(validate_key("k"));
  EXPECT_NO_THROW(validate_key(std::string(511, 'x')));
  EXPECT_NO_THROW(validate_key(std::string(kMaxKeyBytes, 'x')));
  EXPECT_EQ(kMaxKeyBytes, 512u);
}

TEST(Keys, ValidateKeyRejects513Bytes) {
  Error e = key_error(std::string(513, 'x'));
  EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
  EXPECT_STREQ(e.what(), "key is too long");
  EXPECT_EQ(e.detail(), "Keys are limited to 512 bytes; this one has 513 bytes.");

  Error big = key_error(std::string(100000, 'x'), "session id");
  EXPECT_STREQ(big.what(), "session id is too long");
  EXPECT_EQ(big.detail(), "Keys are limited to 512 bytes; this one has 100000 bytes.");
}

TEST(Keys, ValidateKeyCountsBytesNotCharacters) {
  // 171 three-byte characters are 513 bytes.
  std::string s;
  for (int i = 0; i < 171; ++i) s += "\xe2\x82\xac";  // U+20AC
  ASSERT_EQ(s.size(), 513u);
  EXPECT_STREQ(key_error(s).what(), "key is too long");
  s.resize(510);
  EXPECT_NO_THROW(validate_key(s));
}

TEST(Keys, ValidateKeyRejectsEmpty) {
  Error e = key_error("");
  EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
  EXPECT_STREQ(e.what(), "key must not be empty");
  EXPECT_STREQ(key_error("", "session id").what(), "session id must not be empty");
}

TEST(Keys, ValidateKeyAllowsBinaryBytes) {
  EXPECT_NO_THROW(validate_key("\0"s));
  EXPECT_NO_THROW(validate_key("a\0b\r\n\xff\x01 *?[]\\"s));
  EXPECT_NO_THROW(validate_key(std::string(512, '\0')));
  EXPECT_STREQ(key_error(std::string(513, '\0')).what(), "key is too long");
}

TEST(Keys, ValidatePrefix) {
  EXPECT_NO_THROW(validate_prefix(""));
  EXPECT_NO_THROW(validate_prefix(std::string(64, 'p')));
  try {
    validate_prefix(std::string(65, 'p'));
    FAIL() << "65-byte prefix accepted";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
    EXPECT_STREQ(e.what(), "key prefix is too long");
    EXPECT_NE(e.detail().find("65 bytes"), std::string::npos) << e.detail();
  }
}

TEST(Keys, GlobEscape) {
  EXPECT_EQ(glob_escape(""), "");
  EXPECT_EQ(glob_escape("plain:key-1"), "plain:key-1");
  EXPECT_EQ(glob_escape("*"), "\\*");
  EXPECT_EQ(glob_escape("?"), "\\?");
  EXPECT_EQ(glob_escape("["), "\\[");
  EXPECT_EQ(glob_escape("]"), "\\]");
  EXPECT_EQ(glob_escape("\\"), "\\\\");
  EXPECT_EQ(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
  EXPECT_EQ(glob_escape("[^a-z]*"), "\\[^a-z\\]\\*");
  EXPECT_EQ(glob_escape("\\*"), "\\\\\\*");
  EXPECT_EQ(glob_escape("a\0*"s), "a\0\\*"s);
}

TEST(Keys, PrefixPattern) {
  EXPECT_EQ(prefix_pattern("app:", keyspace::kKeyValue, "user:"), "app:kv:user:*");
  EXPECT_EQ(prefix_pattern("", keyspace::kKeyValue, ""), "kv:*");
  // Metacharacters anywhere (prefix, key prefix) are matched literally.
  EXPECT_EQ(prefix_pattern("a*", keyspace::kKeyValue, "*"), "a\\*kv:\\**");
  EXPECT_EQ(prefix_pattern("[x]", keyspace::kSession, "?\\"), "\\[x\\]sess:\\?\\\\*");
  // Only the final '*' is unescaped.
  std::string p = prefix_pattern("p:", keyspace::kKeyValue, "**??[[");
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p.back(), '*');
  EXPECT_EQ(p, "p:kv:\\*\\*\\?\\?\\[\\[*");
}

TEST(Keys, NamespacedKeysKeepDatabasesApart) {
  EXPECT_EQ(namespaced_key("ck:", keyspace::kKeyValue, "shop", "cart:alice"),
            "ck:kv:shop:cart:alice");
  EXPECT_EQ(namespaced_key("ck:", keyspace::kSession, "shop", "abc"), "ck:sess:shop:abc");
  // The segment ends at the first ':': a ':' in a namespace cannot make
  // (ns "a:b", key "c") equal (ns "a", key "b:c").
  EXPECT_NE(namespaced_key("ck:", keyspace::kKeyValue, "a:b", "c"),
            namespaced_key("ck:", keyspace::kKeyValue, "a", "b:c"));
  EXPECT_EQ(namespaced_key("ck:", keyspace::kKeyValue, "a:b", "c"), "ck:kv:a%3Ab:c");
  // and '%' is encoded too, so an encoded-looking name stays distinct.
  EXPECT_NE(namespaced_key("", keyspace::kKeyValue, "a%3Ab", "c"),
            namespaced_key("", keyspace::kKeyValue, "a:b", "c"));
  EXPECT_EQ(encode_namespace("50%:x"), "50%25%3Ax");
  EXPECT_EQ(encode_namespace(""), "");
  EXPECT_EQ(encode_namespace("grüße db"), "grüße db");
}

TEST(Keys, NamespacePatternStaysInsideTheNamespace) {
  // cache_clear of one namespace never reaches another's keys.
  EXPECT_EQ(prefix_pattern("ck:", keyspace::kKeyValue, encode_namespace("d*b") + ":" + "x"),
            "ck:kv:d\\*b:x*");
}

TEST(Keys, ValidateNamespace) {
  EXPECT_NO_THROW(validate_namespace(""));
  EXPECT_NO_THROW(validate_namespace(std::string(63, 'n')));
  try {
    validate_namespace(std::string(64, 'n'));
    ADD_FAILURE() << "accepted a 64-byte namespace";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
    EXPECT_STREQ(e.what(), "key namespace is too long");
  }
}

std::string template_prefix_error(std::string_view t, std::string_view reserved = {}) {
  try {
    validate_template_prefix(t, reserved);
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
    return e.what();
  }
  return "accepted";
}

TEST(Keys, TemplateMustNotReachTheCachesOwnKeys) {
  const std::string reach = "key template would reach pg_cachekit's own keys";
  EXPECT_EQ(template_prefix_error("ck:kv:otherdb:{id}", "ck:"), reach);
  EXPECT_EQ(template_prefix_error("ck:{id}", "ck:"), reach);
  EXPECT_EQ(template_prefix_error("c{id}", "ck:"), reach);  // pattern c* matches ck:...
  EXPECT_EQ(template_prefix_error("ckx:{id}", "ck:"), "accepted");
  EXPECT_EQ(template_prefix_error("user:{id}", "ck:"), "accepted");
  EXPECT_EQ(template_prefix_error("ck:{id}"), "accepted");  // no reserved prefix given
}

TEST(Keys, TemplateMustStartWithLiteralText) {
  EXPECT_EQ(template_prefix_error("user:{id}"), "accepted");
  EXPECT_EQ(template_prefix_error("u{id}"), "accepted");
  EXPECT_EQ(template_prefix_error("static-key"), "accepted");
  EXPECT_EQ(template_prefix_error("{{literal}}:{id}"), "accepted");  // "{literal}:" is literal
  EXPECT_EQ(template_prefix_error("x]:{id}"), "accepted");           // ']' alone is no wildcard
  const std::string no_prefix = "key template must start with literal text";
  EXPECT_EQ(template_prefix_error("{name}"), no_prefix);
  EXPECT_EQ(template_prefix_error("{id}:user"), no_prefix);
  EXPECT_EQ(template_prefix_error(""), no_prefix);
  const std::string glob = "literal prefix of a key template must not contain *, ?, [ or \\";
  EXPECT_EQ(template_prefix_error("*:{id}"), glob);
  EXPECT_EQ(template_prefix_error("user?:{id}"), glob);
  EXPECT_EQ(template_prefix_error("a[b]:{id}"), glob);
  EXPECT_EQ(template_prefix_error("a\\b:{id}"), glob);
  // Only the prefix counts: glob characters after the first placeholder are
  // escaped in the pattern.
  EXPECT_EQ(template_prefix_error("user:{id}:*"), "accepted");
}

}  // namespace
}  // namespace cachekit
