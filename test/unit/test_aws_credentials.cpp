#include <gtest/gtest.h>

#include "core/aws_credentials.h"
#include "core/error.h"

using cachekit::Error;
using cachekit::parse_aws_credentials;

TEST(AwsCredentials, ReadsTheDefaultProfile) {
  auto c = parse_aws_credentials(
      "# comment\n[other]\naws_access_key_id = OTHER\naws_secret_access_key=no\n\n"
      "[default]\r\naws_access_key_id=AKIDEXAMPLE\r\n  aws_secret_access_key = s3cr3t/+= \r\n");
  EXPECT_EQ(c.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "s3cr3t/+=");
}

TEST(AwsCredentials, ReadsANamedProfileInEitherSpelling) {
  auto c =
      parse_aws_credentials("[profile cdn]\naws_access_key_id=A\naws_secret_access_key=B\n", "cdn");
  EXPECT_EQ(c.access_key_id, "A");
  EXPECT_EQ(c.secret_access_key, "B");
}

TEST(AwsCredentials, MissingPiecesAreErrorsThatNeverShowTheSecret) {
  try {
    parse_aws_credentials("[default]\naws_secret_access_key=TOPSECRET\n");
    FAIL() << "no error";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), "F0000");
    EXPECT_NE(std::string(e.what()).find("aws_access_key_id"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("TOPSECRET"), std::string::npos);
    EXPECT_EQ(e.detail().find("TOPSECRET"), std::string::npos);
  }
  EXPECT_THROW(parse_aws_credentials("[x]\naws_access_key_id=A\naws_secret_access_key=B\n"), Error);
}
