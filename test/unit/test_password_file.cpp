// cachekit.redis_password_file: what read_password_file accepts and refuses,
// and that its password authenticates against a Redis started with
// requirepass.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/redis_client.h"
#include "core/redis_url.h"
#include "redis_server.h"

namespace cachekit {
namespace {

class PasswordFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckpwfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string &name, const std::string &content, mode_t mode) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << content;
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  // The error's message and detail; "accepted" when there was none.
  static std::string refusal(const std::string &path) {
    try {
      read_password_file(path);
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), sqlstate::kConfigFileError);
      return std::string(e.what()) + " | " + e.detail();
    }
    return "accepted";
  }

  std::string dir_;
};

TEST_F(PasswordFile, ReadsTheFirstLineWithoutItsEnd) {
  EXPECT_EQ(read_password_file(write("a", "s3cret\n", 0600)), "s3cret");
  EXPECT_EQ(read_password_file(write("b", "s3cret", 0400)), "s3cret");
  EXPECT_EQ(read_password_file(write("c", "s3cret\r\nignored\n", 0600)), "s3cret");
  EXPECT_EQ(read_password_file(write("d", " spaced pw \n", 0600)), " spaced pw ");
  EXPECT_EQ(read_password_file(write("e", "", 0600)), "");
}

TEST_F(PasswordFile, RefusesGroupOrWorldAccess) {
  for (mode_t mode : {0640, 0604, 0660, 0644, 0666, 0610}) {
    std::string path = write("pw" + std::to_string(mode), "leaked-pw\n", mode);
    std::string why = refusal(path);
    EXPECT_NE(why.find("group or world access"), std::string::npos)
        << std::oct << mode << ": " << why;
    EXPECT_EQ(why.find("leaked-pw"), std::string::npos) << why;
  }
}

TEST_F(PasswordFile, RefusesFilesOfOtherUsers) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the file away";
  std::string path = write("theirs", "pw\n", 0600);
  ASSERT_EQ(chown(path.c_str(), 65534, 65534), 0);
  EXPECT_NE(refusal(path).find("must be owned by the database server's user or by root"),
            std::string::npos);
}

TEST_F(PasswordFile, RefusesMissingFilesAndDirectories) {
  EXPECT_NE(refusal(dir_ + "/missing").find("No such file"), std::string::npos);
  EXPECT_NE(refusal(dir_ + "/missing").find("Redis password file cannot be used"),
            std::string::npos);
  EXPECT_NE(refusal(dir_).find("not a regular file"), std::string::npos);
}

class PasswordFileRedis : public test::RedisTest {};

TEST_F(PasswordFileRedis, PasswordFromTheFileAuthenticates) {
  test::RedisServer server;
  std::string error = server.start({"--requirepass", "from-the-file"});
  if (!error.empty()) GTEST_SKIP() << error;
  char tmpl[] = "/tmp/ckpwfile-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/pw";
  std::ofstream(path) << "from-the-file\n";
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);

  RedisEndpoint ep = parse_redis_url("redis://127.0.0.1:" + std::to_string(server.port()) + "/0");
  {
    RedisClient without(ep, {500, 500});
    RedisReply r = without.command({"SET", "k", "v"});
    EXPECT_TRUE(r.is_error());
    EXPECT_EQ(r.str.rfind("NOAUTH", 0), 0u) << r.str;
  }
  ep.password = read_password_file(path);
  RedisClient with(ep, {500, 500});
  EXPECT_EQ(with.command({"SET", "k", "v"}).str, "OK");
  EXPECT_EQ(with.command({"GET", "k"}).str, "v");
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace cachekit
