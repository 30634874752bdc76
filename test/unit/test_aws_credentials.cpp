#include <gtest/gtest.h>

#include <string>

#include "core/aws_credentials.h"
#include "core/error.h"

using cachekit::Error;
using cachekit::parse_aws_credentials;

namespace {

// The error parse_aws_credentials throws for `text`, checked to hold none of
// the values in it (every value in these tests contains "SECRET").
Error error_for(const std::string &text, const std::string &profile = "default") {
  try {
    parse_aws_credentials(text, profile);
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), "F0000");
    EXPECT_EQ(std::string(e.what()).find("SECRET"), std::string::npos) << e.what();
    EXPECT_EQ(e.detail().find("SECRET"), std::string::npos) << e.detail();
    EXPECT_EQ(e.hint().find("SECRET"), std::string::npos) << e.hint();
    return e;
  }
  ADD_FAILURE() << "no error for: " << text;
  return Error("00000", "");
}

}  // namespace

TEST(AwsCredentials, ReadsTheDefaultProfile) {
  auto c = parse_aws_credentials(
      "# comment\n[other]\naws_access_key_id = OTHER\naws_secret_access_key=no\n"
      "aws_session_token = OTHERTOKEN\n\n"
      "[default]\r\naws_access_key_id=AKIDEXAMPLE\r\n  aws_secret_access_key = s3cr3t/+= \r\n");
  EXPECT_EQ(c.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "s3cr3t/+=");
  EXPECT_EQ(c.session_token, "") << "another profile's token";
}

TEST(AwsCredentials, ReadsANamedProfileInEitherSpelling) {
  auto c =
      parse_aws_credentials("[profile cdn]\naws_access_key_id=A\naws_secret_access_key=B\n", "cdn");
  EXPECT_EQ(c.access_key_id, "A");
  EXPECT_EQ(c.secret_access_key, "B");
}

TEST(AwsCredentials, ReadsTheSessionTokenOfTemporaryCredentials) {
  auto c = parse_aws_credentials(
      "[default]\naws_access_key_id = ASIAEXAMPLE\n; a comment\naws_secret_access_key = s\n"
      "aws_session_token = FwoGZXIvYXdzE//token==\n");
  EXPECT_EQ(c.access_key_id, "ASIAEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "s");
  EXPECT_EQ(c.session_token, "FwoGZXIvYXdzE//token==");
}

TEST(AwsCredentials, MissingPiecesAreErrorsThatNeverShowTheSecret) {
  Error e =
      error_for("[default]\naws_secret_access_key=TOPSECRET\naws_session_token=SECRETTOKEN\n");
  EXPECT_NE(std::string(e.what()).find("aws_access_key_id"), std::string::npos) << e.what();
  e = error_for("[default]\naws_access_key_id=SECRETID\naws_session_token=SECRETTOKEN\n");
  EXPECT_NE(std::string(e.what()).find("aws_secret_access_key"), std::string::npos) << e.what();
  e = error_for("[x]\naws_access_key_id=SECRETID\naws_secret_access_key=SECRETKEY\n");
  EXPECT_NE(std::string(e.what()).find("no profile \"default\""), std::string::npos) << e.what();
  // A secret on a line without '=' is skipped, never quoted.
  e = error_for("[default]\naws_access_key_id=A\nSECRETVALUEWITHOUTEQUALS\n");
  EXPECT_NE(std::string(e.what()).find("aws_secret_access_key"), std::string::npos) << e.what();
  e = error_for("", "cdn");
  EXPECT_NE(std::string(e.what()).find("no profile \"cdn\""), std::string::npos) << e.what();
}

TEST(AwsCredentials, ErrorsNameTheFileWhenGivenOne) {
  try {
    parse_aws_credentials("[default]\naws_access_key_id=A\n", "default",
                          "/home/u/.aws/credentials");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(),
                 "AWS credentials profile \"default\" of \"/home/u/.aws/credentials\" lacks "
                 "aws_secret_access_key");
  }
  try {
    parse_aws_credentials("", "cdn", "creds");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "AWS credentials file \"creds\" has no profile \"cdn\"");
  }
}

TEST(AwsCredentials, AHeaderWithACommentStillStartsItsProfile) {
  auto c = cachekit::parse_aws_credentials(
      "[default]\naws_access_key_id=DEF\naws_secret_access_key=defsecret\n"
      "[prod] # production\naws_access_key_id=PROD\naws_secret_access_key=prodsecret\n");
  EXPECT_EQ(c.access_key_id, "DEF");
  EXPECT_EQ(c.secret_access_key, "defsecret");
  // An unclosed header names no profile.
  EXPECT_THROW(
      cachekit::parse_aws_credentials("[default\naws_access_key_id=X\naws_secret_access_key=Y\n"),
      cachekit::Error);
}
