#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/key_material.h"

namespace cachekit {
namespace {

using namespace std::string_literals;

using Field = std::pair<char, std::optional<std::string>>;

std::string material(const std::vector<Field> &fields) {
  KeyMaterial m;
  for (const Field &f : fields) {
    if (f.second)
      m.add(f.first, *f.second);
    else
      m.add_null(f.first);
  }
  return m.bytes();
}

std::string le64(uint64_t v) {
  std::string b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  return b;
}

TEST(KeyMaterial, StartsEmpty) {
  KeyMaterial m;
  EXPECT_TRUE(m.bytes().empty());
}

TEST(KeyMaterial, FieldLayoutIsTagLengthValue) {
  KeyMaterial m;
  m.add('q', "ab");
  EXPECT_EQ(m.bytes(), "q"s + le64(2) + "ab");
  m.add('p', "");
  EXPECT_EQ(m.bytes(), "q"s + le64(2) + "ab" + "p" + le64(0));
  m.add_null('n');
  EXPECT_EQ(m.bytes(), "q"s + le64(2) + "ab" + "p" + le64(0) + "n" + le64(UINT64_MAX));
  m.add_u64('g', 0x0102030405060708ull);
  EXPECT_EQ(m.bytes(), "q"s + le64(2) + "ab" + "p" + le64(0) + "n" + le64(UINT64_MAX) + "g" +
                           le64(UINT64_MAX - 1) + le64(0x0102030405060708ull));
}

TEST(KeyMaterial, NumberDiffersFromItsBytesAsAString) {
  KeyMaterial number, text;
  number.add_u64('g', 0x0102030405060708ull);
  text.add('g', le64(0x0102030405060708ull));
  EXPECT_NE(number.bytes(), text.bytes());
}

TEST(KeyMaterial, DifferentSplitsGiveDifferentBytes) {
  EXPECT_NE(material({{'p', "ab"s}, {'p', "c"s}}), material({{'p', "a"s}, {'p', "bc"s}}));
  EXPECT_NE(material({{'p', "abc"s}}), material({{'p', "ab"s}, {'p', "c"s}}));
  EXPECT_NE(material({{'p', "abc"s}, {'p', ""s}}), material({{'p', "abc"s}}));
  EXPECT_NE(material({{'p', ""s}, {'p', "abc"s}}), material({{'p', "abc"s}, {'p', ""s}}));
  // A value that contains what looks like the next field's encoding.
  std::string forged = "x"s + "p" + le64(1) + "y";
  EXPECT_NE(material({{'p', forged}}), material({{'p', "x"s}, {'p', "y"s}}));
  EXPECT_NE(material({{'q', "SELECT $1"s}, {'p', "a"s}}), material({{'q', "SELECT $1a"s}}));
}

TEST(KeyMaterial, NullDiffersFromEmptyAndFromAnyString) {
  EXPECT_NE(material({{'p', std::nullopt}}), material({{'p', ""s}}));
  EXPECT_NE(material({{'p', std::nullopt}}), material({{'p', "NULL"s}}));
  EXPECT_NE(material({{'p', std::nullopt}}), material({{'p', "\0"s}}));
  EXPECT_NE(material({{'p', std::nullopt}}),
            material({{'p', "\xff\xff\xff\xff\xff\xff\xff\xff"s}}));
  EXPECT_NE(material({{'p', std::nullopt}}), material({}));
  EXPECT_NE(material({{'p', std::nullopt}, {'p', ""s}}),
            material({{'p', ""s}, {'p', std::nullopt}}));
  EXPECT_NE(material({{'p', std::nullopt}, {'p', std::nullopt}}), material({{'p', std::nullopt}}));
  EXPECT_EQ(material({{'p', std::nullopt}}), material({{'p', std::nullopt}}));
}

TEST(KeyMaterial, OrderMatters) {
  EXPECT_NE(material({{'p', "1"s}, {'p', "2"s}}), material({{'p', "2"s}, {'p', "1"s}}));
  EXPECT_NE(material({{'a', "x"s}, {'b', "y"s}}), material({{'b', "y"s}, {'a', "x"s}}));
  EXPECT_NE(material({{'a', "x"s}, {'b', "x"s}}), material({{'b', "x"s}, {'a', "x"s}}));
  KeyMaterial u1, u2;
  u1.add_u64('g', 1);
  u1.add_u64('g', 2);
  u2.add_u64('g', 2);
  u2.add_u64('g', 1);
  EXPECT_NE(u1.bytes(), u2.bytes());
}

TEST(KeyMaterial, TagMatters) {
  EXPECT_NE(material({{'q', "x"s}}), material({{'p', "x"s}}));
  EXPECT_NE(material({{'q', std::nullopt}}), material({{'p', std::nullopt}}));
  EXPECT_NE(material({{'\0', "x"s}}), material({{'\x01', "x"s}}));
}

TEST(KeyMaterial, SameInputSameBytes) {
  std::vector<Field> f = {{'q', "SELECT 1"s}, {'p', std::nullopt}, {'p', "a\0b"s}, {'p', ""s}};
  EXPECT_EQ(material(f), material(f));
}

TEST(KeyMaterial, BinaryValuesAreKeptVerbatim) {
  EXPECT_NE(material({{'p', "a\0b"s}}), material({{'p', "a"s}}));
  EXPECT_NE(material({{'p', "a\0b"s}}), material({{'p', "a\0c"s}}));
  EXPECT_EQ(material({{'p', "a\0b"s}}).size(), 1u + 8u + 3u);
}

TEST(KeyMaterial, U64ValuesAreDistinct) {
  auto u = [](uint64_t v) {
    KeyMaterial m;
    m.add_u64('g', v);
    return m.bytes();
  };
  EXPECT_NE(u(0), u(1));
  EXPECT_NE(u(1), u(256));
  EXPECT_NE(u(1), u(uint64_t{1} << 56));
  EXPECT_NE(u(UINT64_MAX), u(UINT64_MAX - 1));
  EXPECT_EQ(u(42), u(42));
  EXPECT_EQ(u(0).size(), 1u + 8u + 8u);
  // A number differs from its decimal text under the same tag.
  EXPECT_NE(u(42), material({{'g', "42"s}}));
  KeyMaterial null_g;
  null_g.add_null('g');
  EXPECT_NE(u(UINT64_MAX), null_g.bytes());
}

TEST(KeyMaterial, ClearStartsOver) {
  KeyMaterial m;
  m.add('q', "abc");
  m.add_null('p');
  m.clear();
  EXPECT_TRUE(m.bytes().empty());
  m.add('q', "x");
  EXPECT_EQ(m.bytes(), material({{'q', "x"s}}));
}

// Random field sequences over a tiny alphabet (many near-collisions): equal
// bytes must mean equal sequences.
TEST(KeyMaterial, RandomSequencesNeverCollide) {
  std::mt19937 rng(7);
  std::map<std::string, std::vector<Field>> seen;
  for (int iter = 0; iter < 50000; ++iter) {
    std::vector<Field> fields;
    size_t n = rng() % 4;
    for (size_t i = 0; i < n; ++i) {
      char tag = "pq"[rng() % 2];
      if (rng() % 5 == 0) {
        fields.push_back({tag, std::nullopt});
        continue;
      }
      std::string v;
      size_t len = rng() % 4;
      for (size_t j = 0; j < len; ++j) v.push_back("ab\0"[rng() % 3]);
      fields.push_back({tag, v});
    }
    std::string bytes = material(fields);
    auto [it, inserted] = seen.emplace(bytes, fields);
    if (!inserted) {
      ASSERT_EQ(it->second, fields) << "two field sequences share their bytes";
    }
  }
  EXPECT_GT(seen.size(), 1000u);
}

TEST(HexEncode, Basics) {
  EXPECT_EQ(hex_encode(nullptr, 0), "");
  const unsigned char bytes[] = {0x00, 0x0f, 0xf0, 0xff, 0xab, 0x10, 0x09};
  EXPECT_EQ(hex_encode(bytes, sizeof bytes), "000ff0ffab1009");
  EXPECT_EQ(hex_encode(bytes, 1), "00");
}

TEST(HexEncode, EveryByteIsTwoLowerCaseDigits) {
  unsigned char all[256];
  for (int i = 0; i < 256; ++i) all[i] = static_cast<unsigned char>(i);
  std::string hex = hex_encode(all, sizeof all);
  ASSERT_EQ(hex.size(), 512u);
  const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(hex[2 * i], digits[i / 16]);
    EXPECT_EQ(hex[2 * i + 1], digits[i % 16]);
  }
}

TEST(HexEncode, Sha256SizedDigest) {
  unsigned char digest[32];
  for (int i = 0; i < 32; ++i) digest[i] = static_cast<unsigned char>(0xA0 + i);
  std::string hex = hex_encode(digest, sizeof digest);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 8), "a0a1a2a3");
  EXPECT_EQ(hex.substr(56), "bcbdbebf");
}

}  // namespace
}  // namespace cachekit
