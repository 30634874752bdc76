#include "cli/aws_credentials.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_error.h"
#include "core/error.h"

namespace cachekit::cli {

namespace {

std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

std::optional<AwsCredentials> credentials_from_environment() {
  AwsCredentials c{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"),
                   env("AWS_SESSION_TOKEN")};
  if (c.access_key_id.empty() && c.secret_access_key.empty()) return std::nullopt;
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CliError(
        kExitUsage, "incomplete AWS credentials in the environment",
        std::string(c.access_key_id.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID") +
            " is set but " +
            (c.access_key_id.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY") + " is not.");
  return c;
}

AwsCredentials parse_credentials(const std::string &text, const std::string &profile,
                                 const std::string &file) {
  try {
    return parse_aws_credentials(text, profile, file);
  } catch (const Error &e) {
    // The parser names the file, the profile and the key, never a value.
    throw CliError(kExitUsage, e.what(), e.detail(), "Check --credentials-file and --profile.");
  }
}

AwsCredentials credentials_from_file(const std::string &file, const std::string &profile) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw CliError(kExitUsage, "could not open AWS credentials file \"" + file + "\"",
                   std::string(std::strerror(errno)) + ".");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_credentials(text.str(), profile, file);
}

}  // namespace cachekit::cli
