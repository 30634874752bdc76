#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/redis_url.h"

namespace cachekit {
namespace {

using Transport = RedisEndpoint::Transport;

// Parses `url`, expecting failure; returns the error.
Error parse_error(const std::string &url) {
  try {
    parse_redis_url(url);
  } catch (const Error &e) {
    return e;
  }
  ADD_FAILURE() << "parse_redis_url accepted " << url;
  return Error(sqlstate::kInternalError, "accepted");
}

void expect_invalid(const std::string &url, const std::string &message_part,
                    const char *state = sqlstate::kInvalidParameterValue) {
  SCOPED_TRACE(url);
  Error e = parse_error(url);
  EXPECT_STREQ(e.sqlstate(), state);
  EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
  // Postgres style: no final period.
  std::string msg = e.what();
  ASSERT_FALSE(msg.empty());
  EXPECT_NE(msg.back(), '.') << msg;
}

TEST(RedisUrl, HostOnlyUsesDefaults) {
  RedisEndpoint ep = parse_redis_url("redis://localhost");
  EXPECT_EQ(ep.transport, Transport::kTcp);
  EXPECT_EQ(ep.host, "localhost");
  EXPECT_EQ(ep.port, 6379);
  EXPECT_EQ(ep.db, 0);
  EXPECT_EQ(ep.username, "");
  EXPECT_EQ(ep.password, "");
  EXPECT_EQ(ep.address(), "localhost:6379");
}

TEST(RedisUrl, DefaultEndpointMatchesDefaultUrl) {
  EXPECT_EQ(parse_redis_url("redis://127.0.0.1:6379/0"), RedisEndpoint());
  EXPECT_EQ(parse_redis_url("redis://127.0.0.1/"), RedisEndpoint());
}

TEST(RedisUrl, HostPortDb) {
  RedisEndpoint ep = parse_redis_url("redis://cache.example.com:6380/5");
  EXPECT_EQ(ep.host, "cache.example.com");
  EXPECT_EQ(ep.port, 6380);
  EXPECT_EQ(ep.db, 5);
  EXPECT_EQ(ep.address(), "cache.example.com:6380");
}

TEST(RedisUrl, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_redis_url("REDIS://h:1/2").port, 1);
  EXPECT_EQ(parse_redis_url("Unix:///tmp/r.sock").transport, Transport::kUnix);
}

TEST(RedisUrl, PasswordOnly) {
  RedisEndpoint ep = parse_redis_url("redis://:s3cret@10.0.0.1:7000/3");
  EXPECT_EQ(ep.username, "");
  EXPECT_EQ(ep.password, "s3cret");
  EXPECT_EQ(ep.host, "10.0.0.1");
  EXPECT_EQ(ep.port, 7000);
  EXPECT_EQ(ep.db, 3);
}

TEST(RedisUrl, UsernameAndPasswordArePercentDecoded) {
  RedisEndpoint ep = parse_redis_url("redis://app%2Duser:p%40ss%3Aw%2Fo%25rd@host");
  EXPECT_EQ(ep.username, "app-user");
  EXPECT_EQ(ep.password, "p@ss:w/o%rd");
  EXPECT_EQ(ep.host, "host");
}

TEST(RedisUrl, UnencodedSpecialCharactersInPassword) {
  // The user info ends at the last '@'.
  RedisEndpoint ep = parse_redis_url("redis://alice:p@ss/w:rd@host:6390/1");
  EXPECT_EQ(ep.username, "alice");
  EXPECT_EQ(ep.password, "p@ss/w:rd");
  EXPECT_EQ(ep.host, "host");
  EXPECT_EQ(ep.port, 6390);
  EXPECT_EQ(ep.db, 1);
}

TEST(RedisUrl, EmptyUserInfoMeansNoAuth) {
  EXPECT_EQ(parse_redis_url("redis://@h").password, "");
  EXPECT_EQ(parse_redis_url("redis://:@h").password, "");
}

TEST(RedisUrl, Ipv6) {
  RedisEndpoint ep = parse_redis_url("redis://[::1]:6379/2");
  EXPECT_EQ(ep.host, "::1");
  EXPECT_EQ(ep.port, 6379);
  EXPECT_EQ(ep.db, 2);
  EXPECT_EQ(ep.address(), "[::1]:6379");

  RedisEndpoint ep2 = parse_redis_url("redis://:pw@[fe80::1%eth0]");
  EXPECT_EQ(ep2.host, "fe80::1%eth0");
  EXPECT_EQ(ep2.port, 6379);
  EXPECT_EQ(ep2.password, "pw");
}

TEST(RedisUrl, UnixSocket) {
  RedisEndpoint ep = parse_redis_url("unix:///var/run/redis/redis.sock");
  EXPECT_EQ(ep.transport, Transport::kUnix);
  EXPECT_EQ(ep.socket_path, "/var/run/redis/redis.sock");
  EXPECT_EQ(ep.db, 0);
  EXPECT_EQ(ep.password, "");
  EXPECT_EQ(ep.address(), "/var/run/redis/redis.sock");
}

TEST(RedisUrl, UnixSocketWithDbAndPassword) {
  RedisEndpoint ep = parse_redis_url("unix:///tmp/redis.sock?db=4&password=a%26b%3Dc");
  EXPECT_EQ(ep.transport, Transport::kUnix);
  EXPECT_EQ(ep.socket_path, "/tmp/redis.sock");
  EXPECT_EQ(ep.db, 4);
  EXPECT_EQ(ep.password, "a&b=c");

  RedisEndpoint ep2 = parse_redis_url("unix:///tmp/redis.sock?password=x&db=7&username=bob");
  EXPECT_EQ(ep2.db, 7);
  EXPECT_EQ(ep2.password, "x");
  EXPECT_EQ(ep2.username, "bob");
}

TEST(RedisUrl, EqualityComparesEveryField) {
  RedisEndpoint a = parse_redis_url("redis://:pw@h:1/2");
  EXPECT_EQ(a, parse_redis_url("redis://:pw@h:1/2"));
  EXPECT_NE(a, parse_redis_url("redis://:pw2@h:1/2"));
  EXPECT_NE(a, parse_redis_url("redis://:pw@h:1/3"));
  EXPECT_NE(a, parse_redis_url("redis://:pw@h:2/2"));
  EXPECT_NE(a, parse_redis_url("redis://:pw@g:1/2"));
  EXPECT_NE(a, parse_redis_url("redis://u:pw@h:1/2"));
  EXPECT_NE(parse_redis_url("unix:///a"), parse_redis_url("unix:///b"));
}

TEST(RedisUrl, RejectsEmpty) {
  Error e = parse_error("");
  EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
  EXPECT_STREQ(e.what(), "Redis URL must not be empty");
}

TEST(RedisUrl, RejectsUnknownScheme) {
  expect_invalid("http://localhost:6379", "unsupported scheme");
  expect_invalid("redis+sentinel://localhost", "unsupported scheme");
  expect_invalid("localhost:6379", "missing scheme");
  expect_invalid("redis:/localhost", "missing scheme");
  expect_invalid("://localhost", "unsupported scheme");
}

TEST(RedisUrl, RejectsTls) {
  Error e = parse_error("rediss://:pw@localhost:6380");
  EXPECT_STREQ(e.sqlstate(), sqlstate::kFeatureNotSupported);
  EXPECT_NE(std::string(e.what()).find("rediss://"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("not supported"), std::string::npos);
  EXPECT_FALSE(e.hint().empty());
}

TEST(RedisUrl, RejectsBadPorts) {
  expect_invalid("redis://h:0", "port must be a number between 1 and 65535");
  expect_invalid("redis://h:65536", "port must be");
  expect_invalid("redis://h:70000", "port must be");
  expect_invalid("redis://h:99999999999999999999", "port must be");
  expect_invalid("redis://h:", "port must be");
  expect_invalid("redis://h:abc", "port must be");
  expect_invalid("redis://h:-1", "port must be");
  expect_invalid("redis://h:+80", "port must be");
  expect_invalid("redis://[::1]:0", "port must be");
  EXPECT_EQ(parse_redis_url("redis://h:65535").port, 65535);
  EXPECT_EQ(parse_redis_url("redis://h:1").port, 1);
}

TEST(RedisUrl, RejectsBadDatabases) {
  expect_invalid("redis://h/abc", "database number");
  expect_invalid("redis://h/-1", "database number");
  expect_invalid("redis://h/1.5", "unexpected characters after the database number");
  expect_invalid("redis://h/2/", "unexpected characters after the database number");
  expect_invalid("redis://h/2/extra", "unexpected characters after the database number");
  expect_invalid("redis://h/2#frag", "unexpected characters after the database number");
  expect_invalid("redis://h/1000001", "database number must be between 0 and 1000000");
  expect_invalid("redis://h/99999999999", "database number must be between");
  expect_invalid("unix:///s?db=x", "database number");
  expect_invalid("unix:///s?db=", "database number is missing");
  expect_invalid("unix:///s?db=1&db=2", "given more than once");
  EXPECT_EQ(parse_redis_url("redis://h/1000000").db, 1000000);
}

TEST(RedisUrl, RejectsEmptyOrInvalidHost) {
  expect_invalid("redis://", "host is missing");
  expect_invalid("redis://:6379", "host is missing");
  expect_invalid("redis://:pw@", "host is missing");
  expect_invalid("redis://:pw@:6379/0", "host is missing");
  expect_invalid("redis://[]:6379", "host is missing");
  expect_invalid("redis://ho$t", "host name contains invalid characters");
  expect_invalid("redis://::1", "IPv6 addresses must be enclosed in brackets");
  expect_invalid("redis://[::1", "missing \"]\"");
  expect_invalid("redis://[::1]x", "unexpected characters after the IPv6 address");
  expect_invalid("redis://[zz]", "invalid IPv6 address");
}

TEST(RedisUrl, RejectsTrailingJunk) {
  expect_invalid("redis://h:6379?db=1", "query parameters are not supported");
  expect_invalid("redis://h#x", "unexpected characters after the host");
  expect_invalid("redis://h:6379 ", "spaces or control characters");
  expect_invalid(" redis://h", "spaces or control characters");
  expect_invalid(std::string("redis://h\0x", 11), "spaces or control characters");
}

TEST(RedisUrl, RejectsMalformedUserInfo) {
  expect_invalid("redis://:bad%zzpw@h", "bad percent-encoding in the password");
  expect_invalid("redis://:bad%2@h", "bad percent-encoding in the password");
  expect_invalid("redis://a%g1:pw@h", "bad percent-encoding in the user name");
}

TEST(RedisUrl, UserNameWithoutPasswordLeavesThePasswordToTheFile) {
  // cachekit.redis_password_file supplies the password.
  for (const char *url : {"redis://alice@h", "redis://alice:@h"}) {
    RedisEndpoint ep = parse_redis_url(url);
    EXPECT_EQ(ep.username, "alice") << url;
    EXPECT_EQ(ep.password, "") << url;
    EXPECT_EQ(ep.redacted(), "redis://alice@h:6379/0") << url;
  }
  RedisEndpoint ep = parse_redis_url("unix:///s?username=bob");
  EXPECT_EQ(ep.username, "bob");
  EXPECT_EQ(ep.password, "");
}

TEST(RedisUrl, RejectsMalformedUnixUrls) {
  expect_invalid("unix://relative/path.sock", "must be absolute");
  expect_invalid("unix://", "must be absolute");
  expect_invalid("unix:///s?timeout=5", "unknown query parameter");
  expect_invalid("unix:///s?password", "query parameter without a value");
  expect_invalid("unix:///s?password=a&password=b", "given more than once");
  expect_invalid("unix:///s%00x", "NUL");
  expect_invalid("unix:///" + std::string(200, 'a'), "too long");
}

TEST(RedisUrl, ErrorMessagesNeverContainThePassword) {
  const std::string secret = "Sup3rS3cretPw";
  const std::string urls[] = {
      "redis://:" + secret + "@h:0",
      "redis://:" + secret + "@h:99999",
      "redis://:" + secret + "@h/notadb",
      "redis://:" + secret + "@/0",
      "redis://:" + secret + "@h?x=1",
      "redis://:" + secret + "%zz@h",
      "redis://:" + secret,  // forgot "@host": the password sits where the port belongs
      "redis://h:" + secret,
      "redis://user:" + secret + "@ho$t",
      "rediss://:" + secret + "@h",
      "http://:" + secret + "@h",
      secret + "://h",
      ":" + secret + "@h",
      "unix:///s?password=" + secret + "&db=x",
      "unix:///s?password=" + secret + "&" + secret + "=1",
      "unix:///s?password=" + secret + "&password=" + secret,
      "unix://" + secret + "?password=" + secret,
      "redis://:" + secret + " @h",
  };
  for (const std::string &url : urls) {
    SCOPED_TRACE(url);
    Error e = parse_error(url);
    EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
    EXPECT_EQ(e.detail().find(secret), std::string::npos) << e.detail();
    EXPECT_EQ(e.hint().find(secret), std::string::npos) << e.hint();
  }
}

TEST(RedisUrl, RedactedEndpoint) {
  EXPECT_EQ(parse_redis_url("redis://:secret@h:1/2").redacted(), "redis://:********@h:1/2");
  EXPECT_EQ(parse_redis_url("redis://bob:secret@h").redacted(), "redis://bob:********@h:6379/0");
  EXPECT_EQ(parse_redis_url("redis://h").redacted(), "redis://h:6379/0");
  EXPECT_EQ(parse_redis_url("redis://[::1]:7/3").redacted(), "redis://[::1]:7/3");
  EXPECT_EQ(parse_redis_url("unix:///tmp/r.sock?db=2&password=secret").redacted(),
            "unix:///tmp/r.sock?db=2&password=********");
  EXPECT_EQ(parse_redis_url("unix:///tmp/r.sock").redacted(), "unix:///tmp/r.sock");
  // The redacted form parses back to the same endpoint, minus the password.
  RedisEndpoint ep = parse_redis_url("redis://a%40b:p%40ss@h:9/4");
  RedisEndpoint back = parse_redis_url(ep.redacted());
  EXPECT_EQ(back.username, "a@b");
  EXPECT_EQ(back.password, "********");
  EXPECT_EQ(back.host, "h");
  EXPECT_EQ(back.db, 4);
}

TEST(RedisUrl, RedactWellFormedUrls) {
  EXPECT_EQ(redact_redis_url("redis://:secret@h:6379/0"), "redis://********@h:6379/0");
  EXPECT_EQ(redact_redis_url("redis://bob:secret@h"), "redis://********@h");
  EXPECT_EQ(redact_redis_url("redis://h:6379/1"), "redis://h:6379/1");
  EXPECT_EQ(redact_redis_url("redis://[::1]:6379/1"), "redis://[::1]:6379/1");
  EXPECT_EQ(redact_redis_url("unix:///tmp/r.sock?db=1&password=secret"),
            "unix:///tmp/r.sock?db=1&password=********");
  EXPECT_EQ(redact_redis_url("unix:///tmp/r.sock?PASSWORD=secret&db=1"),
            "unix:///tmp/r.sock?PASSWORD=********&db=1");
  EXPECT_EQ(redact_redis_url(""), "");
}

TEST(RedisUrl, RedactMalformedUrls) {
  const std::string secret = "hunter2XY";
  const std::string urls[] = {
      "redis://:" + secret + "@h:notaport",
      "redis://:" + secret + "@@h",
      "redis://:p@" + secret + "@h",
      "redis://:" + secret,
      "redis://h:" + secret,
      "redis:/:" + secret + "@h",
      ":" + secret + "@h",
      "rediss://u:" + secret + "@h",
      "unix:///s?db=1&password=" + secret,
      "unix:///s?password=" + secret + "@x",
      "redis://:a&password=" + secret + "@h",
      "unix:///s?x=1&password=" + secret + "&password=" + secret,
  };
  for (const std::string &url : urls) {
    SCOPED_TRACE(url);
    std::string r = redact_redis_url(url);
    EXPECT_EQ(r.find(secret), std::string::npos) << r;
    EXPECT_NE(r.find("********"), std::string::npos) << r;
  }
  // The host stays visible, so the redacted form is still useful.
  EXPECT_EQ(redact_redis_url("redis://:" + secret + "@h:notaport"), "redis://********@h:notaport");
}

}  // namespace
}  // namespace cachekit
