#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/row_codec.h"

namespace cachekit {
namespace {

using namespace std::string_literals;

using Value = std::optional<std::string>;
using Row = std::vector<Value>;

constexpr uint32_t kInt4 = 23;
constexpr uint32_t kInt8 = 20;
constexpr uint32_t kText = 25;
constexpr uint32_t kBytea = 17;

std::string encode(const std::vector<uint32_t> &types, const std::vector<Row> &rows) {
  RowEncoder enc(types);
  for (const Row &row : rows) {
    for (const Value &v : row) {
      if (v)
        enc.add_value(*v);
      else
        enc.add_null();
    }
    enc.end_row();
  }
  EXPECT_EQ(enc.rows(), rows.size());
  return enc.finish();
}

// No valid sample holds more; a mangled header may announce billions of
// zero-column rows, which only cost time to walk, so stop there.
constexpr size_t kMaxRowsRead = 1000000;

struct Decoded {
  std::vector<uint32_t> types;
  uint64_t announced_rows = 0;
  std::vector<Row> rows;
  bool corrupt = false;
};

// Reads everything; nullopt when open() refuses the bytes.
std::optional<Decoded> decode(std::string_view data) {
  std::optional<RowDecoder> dec = RowDecoder::open(data);
  if (!dec) return std::nullopt;
  Decoded out;
  out.types = dec->column_types();
  out.announced_rows = dec->rows();
  while (dec->next_row()) {
    Row row;
    for (size_t i = 0; i < out.types.size(); ++i) {
      std::optional<std::string_view> c = dec->column(i);
      row.push_back(c ? Value(std::string(*c)) : std::nullopt);
    }
    out.rows.push_back(std::move(row));
    // Never more rows than the header announced.
    if (out.rows.size() > out.announced_rows) {
      ADD_FAILURE() << "decoder returned more rows than announced";
      break;
    }
    if (out.rows.size() >= kMaxRowsRead) return out;
  }
  out.corrupt = dec->corrupt();
  EXPECT_FALSE(dec->next_row()) << "next_row() after the end must stay false";
  return out;
}

// True if the bytes are refused: open() says nullopt, or reading ends corrupt.
bool rejected(std::string_view data) {
  std::optional<Decoded> d = decode(data);
  return !d || d->corrupt;
}

// A heap copy of exactly `len` bytes, so that AddressSanitizer reports any
// read past the end (a std::string's spare capacity would hide it).
std::unique_ptr<char[]> exact_copy(std::string_view src, size_t len) {
  std::unique_ptr<char[]> p(new char[len == 0 ? 1 : len]);
  if (len > 0) memcpy(p.get(), src.data(), len);
  return p;
}

void put_u32(std::string &b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

void put_u64(std::string &b, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// A header built by hand: magic, version, ncols, types, nrows.
std::string header(uint32_t ncols, const std::vector<uint32_t> &types, uint64_t nrows,
                   uint8_t version = kRowFormatVersion) {
  std::string b = "CKR";
  b.push_back(static_cast<char>(version));
  put_u32(b, ncols);
  for (uint32_t t : types) put_u32(b, t);
  put_u64(b, nrows);
  return b;
}

void expect_round_trip(const std::vector<uint32_t> &types, const std::vector<Row> &rows) {
  std::string bytes = encode(types, rows);
  std::optional<Decoded> d = decode(bytes);
  ASSERT_TRUE(d.has_value()) << "open() refused a fresh encoding";
  EXPECT_FALSE(d->corrupt);
  EXPECT_EQ(d->types, types);
  EXPECT_EQ(d->announced_rows, rows.size());
  EXPECT_EQ(d->rows, rows);
}

// Several valid encodings of different shapes, for the corruption tests.
std::vector<std::string> sample_encodings() {
  std::vector<std::string> out;
  out.push_back(encode({kInt4, kText}, {{"1"s, "one"s}, {"2"s, std::nullopt}, {"3"s, ""s}}));
  out.push_back(encode({kBytea}, {{"\0\x01\xff"s}, {std::nullopt}, {""s}}));
  out.push_back(encode({kInt4, kInt8, kText}, {}));                  // no rows
  out.push_back(encode({}, {{}, {}, {}}));                           // no columns
  out.push_back(encode({}, {}));                                     // nothing at all
  out.push_back(encode({kText}, {{std::nullopt}, {std::nullopt}}));  // NULLs only
  out.push_back(encode({kText}, {{""s}}));                           // one empty string
  return out;
}

// --- round trips -------------------------------------------------------------

TEST(RowCodec, RoundTripNullsEmptyStringsAndText) {
  expect_round_trip({kInt4, kText, kText}, {
                                               {"1"s, "hello"s, std::nullopt},
                                               {std::nullopt, ""s, "x"s},
                                               {"3"s, std::nullopt, ""s},
                                               {std::nullopt, std::nullopt, std::nullopt},
                                               {""s, ""s, ""s},
                                           });
}

TEST(RowCodec, NullAndEmptyStringStayDistinct) {
  std::string bytes = encode({kText, kText}, {{std::nullopt, ""s}});
  std::optional<RowDecoder> dec = RowDecoder::open(bytes);
  ASSERT_TRUE(dec.has_value());
  ASSERT_TRUE(dec->next_row());
  EXPECT_FALSE(dec->column(0).has_value());
  ASSERT_TRUE(dec->column(1).has_value());
  EXPECT_EQ(dec->column(1)->size(), 0u);
  EXPECT_FALSE(dec->next_row());
  EXPECT_FALSE(dec->corrupt());
}

TEST(RowCodec, RoundTripBinaryBytesIncludingNul) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  // Values that look like a length field or the NULL marker must not confuse it.
  expect_round_trip({kBytea, kBytea}, {
                                          {"\0"s, "\0\0\0\0"s},
                                          {"a\0b"s, "\xff\xff\xff\xff"s},
                                          {all_bytes, std::nullopt},
                                          {"CKR\x01"s, ""s},
                                      });
}

TEST(RowCodec, ZeroRows) {
  expect_round_trip({kInt4, kText}, {});
  std::string bytes = encode({kInt4, kText}, {});
  std::optional<RowDecoder> dec = RowDecoder::open(bytes);
  ASSERT_TRUE(dec.has_value());
  EXPECT_EQ(dec->rows(), 0u);
  EXPECT_FALSE(dec->next_row());
  EXPECT_FALSE(dec->corrupt());
}

TEST(RowCodec, ZeroColumns) {
  // SELECT FROM t: rows without columns are still rows.
  expect_round_trip({}, {{}, {}, {}, {}});
  expect_round_trip({}, {{}});
  expect_round_trip({}, {});
}

TEST(RowCodec, ManyRows) {
  std::vector<Row> rows;
  for (int i = 0; i < 20000; ++i) {
    rows.push_back({std::to_string(i),
                    i % 7 == 0 ? Value() : Value(std::string(i % 50, 'a' + i % 26)),
                    i % 3 == 0 ? ""s : "x"s});
  }
  expect_round_trip({kInt4, kText, kText}, rows);
}

TEST(RowCodec, LargeValue) {
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  expect_round_trip({kBytea}, {{big}, {std::nullopt}, {big.substr(1)}});
}

TEST(RowCodec, ColumnTypesPreserved) {
  std::vector<uint32_t> types = {kInt4, kInt8,       kText,       kBytea, 0u,
                                 1u,    0x7FFFFFFFu, 0xFFFFFFFFu, 16384u};
  std::vector<Row> rows = {Row(types.size(), "v"s), Row(types.size(), std::nullopt)};
  expect_round_trip(types, rows);
  // Order matters and is kept.
  expect_round_trip({kText, kInt4}, {{"a"s, "1"s}});
  std::optional<Decoded> a = decode(encode({kText, kInt4}, {}));
  std::optional<Decoded> b = decode(encode({kInt4, kText}, {}));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->types, b->types);
}

TEST(RowCodec, LayoutMatchesTheDocumentedFormat) {
  std::string bytes = encode({kInt4, kText}, {{"42"s, std::nullopt}});
  std::string want = header(2, {kInt4, kText}, 1);
  put_u32(want, 2);
  want += "42";
  put_u32(want, 0xFFFFFFFFu);
  EXPECT_EQ(bytes, want);
  EXPECT_EQ(bytes.substr(0, 4), "CKR\x01"s);
}

TEST(RowCodec, EncoderCountsRowsAndSize) {
  RowEncoder enc({kText});
  size_t empty = enc.size();
  EXPECT_EQ(enc.rows(), 0u);
  enc.add_value("abc");
  enc.end_row();
  enc.add_null();
  enc.end_row();
  EXPECT_EQ(enc.rows(), 2u);
  EXPECT_EQ(enc.size(), empty + 4 + 3 + 4);
  std::string bytes = enc.finish();
  EXPECT_EQ(bytes.size(), empty + 4 + 3 + 4);
}

TEST(RowCodec, EncoderRejectsRowsWithTheWrongColumnCount) {
  {
    RowEncoder enc({kInt4, kText});
    enc.add_value("1");
    try {
      enc.end_row();
      FAIL() << "a row with 1 of 2 columns was accepted";
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), sqlstate::kInternalError);
    }
  }
  {
    RowEncoder enc({kInt4});
    enc.add_value("1");
    enc.add_null();
    EXPECT_THROW(enc.end_row(), Error);
  }
  {
    RowEncoder enc({});
    EXPECT_NO_THROW(enc.end_row());
    enc.add_null();
    EXPECT_THROW(enc.end_row(), Error);
  }
}

// --- what the decoder refuses ------------------------------------------------

TEST(RowCodec, RejectsWrongMagic) {
  std::string good = encode({kText}, {{"x"s}});
  ASSERT_FALSE(rejected(good));
  for (size_t i = 0; i < 3; ++i) {
    for (char c : {'\0', 'c', 'X', '\xff'}) {
      std::string bad = good;
      if (bad[i] == c) continue;
      bad[i] = c;
      SCOPED_TRACE(i);
      EXPECT_FALSE(RowDecoder::open(bad).has_value());
    }
  }
  EXPECT_FALSE(RowDecoder::open("").has_value());
  EXPECT_FALSE(RowDecoder::open("CKR").has_value());
  EXPECT_FALSE(RowDecoder::open("ckr\x01"s + good.substr(4)).has_value());
  EXPECT_FALSE(RowDecoder::open("plain text value").has_value());
}

TEST(RowCodec, RejectsOtherVersions) {
  std::string good = encode({kText}, {{"x"s}});
  for (int v : {0, 2, 3, 0x7F, 0x80, 0xFF}) {
    if (v == kRowFormatVersion) continue;
    std::string bad = good;
    bad[3] = static_cast<char>(v);
    SCOPED_TRACE(v);
    EXPECT_FALSE(RowDecoder::open(bad).has_value());
  }
  EXPECT_FALSE(RowDecoder::open(header(0, {}, 0, 2)).has_value());
  EXPECT_TRUE(RowDecoder::open(header(0, {}, 0, kRowFormatVersion)).has_value());
}

TEST(RowCodec, RejectsEveryTruncation) {
  for (const std::string &good : sample_encodings()) {
    SCOPED_TRACE(testing::PrintToString(good));
    ASSERT_FALSE(rejected(good));
    for (size_t len = 0; len < good.size(); ++len) {
      SCOPED_TRACE(len);
      std::unique_ptr<char[]> copy = exact_copy(good, len);
      EXPECT_TRUE(rejected(std::string_view(copy.get(), len)));
    }
  }
}

TEST(RowCodec, RejectsTrailingGarbage) {
  for (const std::string &good : sample_encodings()) {
    SCOPED_TRACE(testing::PrintToString(good));
    for (const std::string &tail : {"\0"s, "x"s, "\0\0\0\0"s, "\xff\xff\xff\xff"s, good}) {
      SCOPED_TRACE(testing::PrintToString(tail));
      EXPECT_TRUE(rejected(good + tail));
    }
  }
}

TEST(RowCodec, RejectsAbsurdColumnCounts) {
  // Must be refused before anything is allocated for them.
  for (uint32_t ncols : {0xFFFFFFFFu, 0x80000000u, 0x40000000u, 1000u, 3u}) {
    SCOPED_TRACE(ncols);
    std::string b = header(ncols, {kText, kText}, 0);  // fewer types than announced
    EXPECT_FALSE(RowDecoder::open(b).has_value());
  }
  // Announcing fewer columns than the rows carry is caught as garbage too.
  std::string good = encode({kText, kText}, {{"a"s, "b"s}});
  std::string fewer = header(1, {kText}, 1) + good.substr(header(2, {kText, kText}, 1).size());
  EXPECT_TRUE(rejected(fewer));
}

TEST(RowCodec, RejectsAbsurdRowCounts) {
  std::string one_row = encode({kText}, {{"abc"s}});
  std::string body = one_row.substr(header(1, {kText}, 1).size());
  for (uint64_t nrows : {UINT64_MAX, UINT64_MAX / 4, uint64_t{1} << 32, uint64_t{2}}) {
    SCOPED_TRACE(nrows);
    EXPECT_TRUE(rejected(header(1, {kText}, nrows) + body));
  }
  // Fewer rows than the bytes hold: leftover bytes.
  EXPECT_TRUE(rejected(header(1, {kText}, 0) + body));
  // Many columns times many rows must not overflow the size check.
  std::vector<uint32_t> wide(1000, kText);
  EXPECT_TRUE(rejected(header(1000, wide, UINT64_MAX / 1000 + 1)));
  EXPECT_TRUE(rejected(header(1000, wide, UINT64_MAX)));
}

TEST(RowCodec, RejectsLengthsPastTheEnd) {
  for (uint32_t len : {0xFFFFFFFEu, 0x80000000u, 4u, 5u}) {
    SCOPED_TRACE(len);
    std::string b = header(1, {kText}, 1);
    put_u32(b, len);
    b += "abc";
    std::unique_ptr<char[]> copy = exact_copy(b, b.size());
    EXPECT_TRUE(rejected(std::string_view(copy.get(), b.size())));
  }
}

// Every single-byte change of a valid encoding either still decodes or is
// refused; none may crash or read out of bounds (run it under ASan/UBSan).
TEST(RowCodec, SurvivesEverySingleByteChange) {
  for (const std::string &good : sample_encodings()) {
    for (size_t i = 0; i < good.size(); ++i) {
      for (int delta : {1, 0x7F, 0x80, 0xFF}) {
        std::string bad = good;
        bad[i] = static_cast<char>(static_cast<uint8_t>(bad[i]) + delta);
        std::unique_ptr<char[]> copy = exact_copy(bad, bad.size());
        (void)decode(std::string_view(copy.get(), bad.size()));
      }
    }
  }
}

TEST(RowCodec, SurvivesRandomBytes) {
  std::mt19937 rng(12345);
  std::string prefix = header(2, {kText, kText}, 3);
  for (int iter = 0; iter < 20000; ++iter) {
    size_t len = rng() % 64;
    std::string b = (iter % 2 == 0) ? prefix : ""s;
    if (iter % 4 == 1) b = "CKR\x01"s;
    for (size_t i = 0; i < len; ++i)
      b.push_back(static_cast<char>(rng() % 8 == 0 ? 0xFF : rng() % 6));
    std::unique_ptr<char[]> copy = exact_copy(b, b.size());
    (void)decode(std::string_view(copy.get(), b.size()));
  }
}

}  // namespace
}  // namespace cachekit

TEST(RowCodecCaps, AbsurdColumnlessRowCountIsRejected) {
  using cachekit::RowDecoder;
  using cachekit::RowEncoder;
  RowEncoder enc({});
  enc.end_row();
  std::string bytes = enc.finish();
  ASSERT_TRUE(RowDecoder::open(bytes).has_value());
  // Patch the row count (the 8 bytes after magic, version and ncols) to 2^40.
  uint64_t huge = 1ull << 40;
  for (int i = 0; i < 8; ++i) bytes[8 + i] = static_cast<char>((huge >> (8 * i)) & 0xFF);
  EXPECT_FALSE(RowDecoder::open(bytes).has_value());
}
