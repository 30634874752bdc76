#include "cli/aws_credentials.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace {

std::string trim(const std::string &s) {
  std::size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  std::size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

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
  std::istringstream in(text);
  std::string line, section;
  bool found = false;
  AwsCredentials c;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t[0] == '[') {
      std::size_t close = t.find(']');
      if (close == std::string::npos)
        throw CliError(
            kExitUsage, "syntax error in AWS credentials file \"" + file + "\"",
            "Line " + std::to_string(lineno) + " opens a section but does not close it.");
      section = trim(t.substr(1, close - 1));
      // ~/.aws/config spells it "[profile NAME]"; accept that too.
      if (section.rfind("profile ", 0) == 0) section = trim(section.substr(8));
      if (section == profile) found = true;
      continue;
    }
    std::size_t eq = t.find('=');
    if (eq == std::string::npos)
      // Never quote the line: it may be a secret with the '=' missing.
      throw CliError(kExitUsage, "syntax error in AWS credentials file \"" + file + "\"",
                     "Line " + std::to_string(lineno) + " is neither a section nor key = value.");
    if (section != profile) continue;
    std::string key = trim(t.substr(0, eq)), value = trim(t.substr(eq + 1));
    if (key == "aws_access_key_id")
      c.access_key_id = value;
    else if (key == "aws_secret_access_key")
      c.secret_access_key = value;
    else if (key == "aws_session_token")
      c.session_token = value;
  }
  if (!found)
    throw CliError(kExitUsage,
                   "AWS credentials file \"" + file + "\" has no profile \"" + profile + "\"", {},
                   "Give the section name with --profile.");
  if (c.access_key_id.empty() || c.secret_access_key.empty())
    throw CliError(kExitUsage, "profile \"" + profile + "\" of AWS credentials file \"" + file +
                                   "\" lacks aws_access_key_id or aws_secret_access_key");
  return c;
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
