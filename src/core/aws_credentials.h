// AWS credentials in the shared credentials file format (~/.aws/credentials):
//
//   [default]
//   aws_access_key_id = AKIA...
//   aws_secret_access_key = ...
//   aws_session_token = ...        (temporary credentials only)
//
// pg_cachekit reads them from cachekit.cdn_aws_credentials_file (the server)
// or --credentials-file (pg_cachekit-cdn) rather than from settings, because
// Postgres logs a changed setting's value on reload. This is the one parser
// of that format: the command-line tool calls it too.
#pragma once

#include <string>

namespace cachekit {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty: none (long-term keys)
};

// The keys of `profile` (default: "default"). Throws cachekit::Error (F0000)
// when the profile or one of its two keys is missing; the message names the
// profile and key, never a value. Lines that are neither a section nor
// key = value are skipped, so that no part of one can reach a message.
// `file`, when given, is named in the messages.
AwsCredentials parse_aws_credentials(const std::string &text,
                                     const std::string &profile = "default",
                                     const std::string &file = {});

}  // namespace cachekit
