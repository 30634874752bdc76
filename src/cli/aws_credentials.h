// AWS credentials for S3 requests: from the environment (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) or from a credentials file in the
// AWS ini format, read by the server's parser (core/aws_credentials.h).
// Nothing here ever prints or returns the secret in a message.
#pragma once

#include <optional>
#include <string>

#include "core/aws_credentials.h"

namespace cachekit::cli {

using AwsCredentials = cachekit::AwsCredentials;

// nullopt when neither variable is set; CliError(kExitUsage) when only one is.
std::optional<AwsCredentials> credentials_from_environment();

// The [profile] section of an AWS credentials file (aws_access_key_id,
// aws_secret_access_key, aws_session_token; '#' and ';' comments). Throws
// CliError(kExitUsage) when the file cannot be read or lacks the profile or a key.
AwsCredentials credentials_from_file(const std::string &file, const std::string &profile);

// Parsing only, for tests: `text` is the file's content, `file` names it in messages.
AwsCredentials parse_credentials(const std::string &text, const std::string &profile,
                                 const std::string &file);

}  // namespace cachekit::cli
