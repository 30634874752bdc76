#include <gtest/gtest.h>

#include <string>

#include "core/redis_info.h"

namespace cachekit {
namespace {

const std::string kInfo =
    "# Server\r\n"
    "redis_version:7.0.15\r\n"
    "redis_mode:standalone\r\n"
    "\r\n"
    "# Memory\r\n"
    "used_memory_rss:2048\r\n"
    "used_memory:1024\r\n"
    "used_memory_human:1.00K\r\n"
    "maxmemory:0\r\n"
    "maxmemory_policy:noeviction\r\n"
    "mem_fragmentation_ratio:1.25\r\n"
    "\r\n"
    "# Stats\r\n"
    "evicted_keys:17\r\n"
    "empty_field:\r\n"
    "negative:-3\r\n"
    "\r\n"
    "# Keyspace\r\n"
    "db0:keys=3,expires=1,avg_ttl=0\r\n"
    "expired_keys:99";  // last line without its CRLF

TEST(RedisInfo, FindsWholeFieldNames) {
  EXPECT_EQ(redis_info_field(kInfo, "redis_version"), "7.0.15");
  EXPECT_EQ(redis_info_field(kInfo, "used_memory"), "1024") << "not used_memory_rss";
  EXPECT_EQ(redis_info_field(kInfo, "used_memory_rss"), "2048");
  EXPECT_EQ(redis_info_field(kInfo, "maxmemory"), "0") << "not maxmemory_policy";
  EXPECT_EQ(redis_info_field(kInfo, "maxmemory_policy"), "noeviction");
  EXPECT_EQ(redis_info_field(kInfo, "db0"), "keys=3,expires=1,avg_ttl=0");
  EXPECT_EQ(redis_info_field(kInfo, "expired_keys"), "99");
  EXPECT_EQ(redis_info_field(kInfo, "empty_field"), "");
}

TEST(RedisInfo, AbsentFieldsAreEmpty) {
  EXPECT_EQ(redis_info_field(kInfo, "nope"), "");
  EXPECT_EQ(redis_info_field(kInfo, "memory"), "") << "only at the start of a line";
  EXPECT_EQ(redis_info_field(kInfo, "keys"), "") << "not inside a value";
  EXPECT_EQ(redis_info_field(kInfo, "Server"), "");
  EXPECT_EQ(redis_info_field(kInfo, ""), "");
  EXPECT_EQ(redis_info_field("", "used_memory"), "");
  EXPECT_EQ(redis_info_field("used_memory", "used_memory"), "");
}

TEST(RedisInfo, LfOnlyAndFirstLine) {
  EXPECT_EQ(redis_info_field("a:1\nb:2\n", "a"), "1");
  EXPECT_EQ(redis_info_field("a:1\nb:2\n", "b"), "2");
  EXPECT_EQ(redis_info_field("xa:1\na:2\n", "a"), "2");
  EXPECT_EQ(redis_info_field("a:1\r\na:2\r\n", "a"), "1") << "the first line wins";
}

TEST(RedisInfo, Numbers) {
  EXPECT_EQ(redis_info_number(kInfo, "used_memory"), 1024.0);
  EXPECT_EQ(redis_info_number(kInfo, "maxmemory"), 0.0);
  EXPECT_EQ(redis_info_number(kInfo, "mem_fragmentation_ratio"), 1.25);
  EXPECT_EQ(redis_info_number(kInfo, "evicted_keys"), 17.0);
  EXPECT_EQ(redis_info_number(kInfo, "expired_keys"), 99.0);
  EXPECT_EQ(redis_info_number(kInfo, "negative"), -3.0);
  EXPECT_EQ(redis_info_number("big:18446744073709551615\r\n", "big"), 18446744073709551615.0);
  EXPECT_FALSE(redis_info_number(kInfo, "used_memory_human")) << "1.00K is not a number";
  EXPECT_FALSE(redis_info_number(kInfo, "redis_version"));
  EXPECT_FALSE(redis_info_number(kInfo, "empty_field"));
  EXPECT_FALSE(redis_info_number(kInfo, "nope"));
  EXPECT_FALSE(redis_info_number("x:inf\r\n", "x"));
  EXPECT_FALSE(redis_info_number("x:nan\r\n", "x"));
  EXPECT_FALSE(redis_info_number("x: 1\r\n", "x"));
  EXPECT_FALSE(redis_info_number("x:1 \r\n", "x"));
}

}  // namespace
}  // namespace cachekit
