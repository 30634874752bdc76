#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "core/error.h"
#include "core/value_codec.h"

namespace cachekit {
namespace {

using namespace std::string_literals;

TEST(ValueCodec, SizeAtTheLimitIsAccepted) {
  EXPECT_NO_THROW(check_value_size(0, 0));
  EXPECT_NO_THROW(check_value_size(0, 1024));
  EXPECT_NO_THROW(check_value_size(1023, 1024));
  EXPECT_NO_THROW(check_value_size(1024, 1024));
}

TEST(ValueCodec, SizeOneOverTheLimitIsRejected) {
  try {
    check_value_size(1025, 1024);
    FAIL() << "1025 bytes accepted with a limit of 1024";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kProgramLimitExceeded);
    EXPECT_STREQ(e.what(), "value is too large for the cache");
    EXPECT_NE(e.detail().find("1025"), std::string::npos) << e.detail();
    EXPECT_NE(e.detail().find("1024"), std::string::npos) << e.detail();
    EXPECT_EQ(e.hint(), "Raise cachekit.max_value_bytes or store a smaller value.");
  }
  EXPECT_THROW(check_value_size(1, 0), Error);
  EXPECT_THROW(check_value_size(static_cast<std::size_t>(-1), 1u << 20), Error);
}

TEST(ValueCodec, TextWithoutNulIsAccepted) {
  EXPECT_NO_THROW(check_text_compatible(""));
  EXPECT_NO_THROW(check_text_compatible("hello"));
  EXPECT_NO_THROW(check_text_compatible("\xff\xfe\x01\n\t"));
}

void expect_nul_at(const std::string &value, std::size_t offset) {
  SCOPED_TRACE(offset);
  try {
    check_text_compatible(value);
    FAIL() << "value with a NUL byte accepted as text";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kCharacterNotInRepertoire);
    EXPECT_STREQ(e.what(), "cached value cannot be read as text");
    EXPECT_EQ(e.detail(), "It contains a NUL byte at offset " + std::to_string(offset) + ".");
    EXPECT_EQ(e.hint(), "Use cachekit.cache_get_bytea() for binary values.");
  }
}

TEST(ValueCodec, NulIsRejectedWithItsOffset) {
  expect_nul_at("\0"s, 0);
  expect_nul_at("\0abc"s, 0);
  expect_nul_at("abc\0"s, 3);
  expect_nul_at("ab\0c\0d"s, 2);  // the first one
  std::string big(100000, 'x');
  big[77777] = '\0';
  expect_nul_at(big, 77777);
}

}  // namespace
}  // namespace cachekit
