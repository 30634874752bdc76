#include "core/aws_credentials.h"

#include <sstream>

#include "core/error.h"

namespace cachekit {

namespace {

std::string trim(const std::string &s) {
  std::size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

}  // namespace

AwsCredentials parse_aws_credentials(const std::string &text, const std::string &profile,
                                     const std::string &file) {
  AwsCredentials out;
  bool found = false, in_profile = false;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      // "[name]", maybe followed by a comment; an unclosed header names no
      // profile, so the keys below it belong to none (never to the last one).
      std::size_t close = line.find(']');
      std::string name =
          close == std::string::npos ? std::string() : trim(line.substr(1, close - 1));
      // The config file's spelling, "[profile name]", is accepted too.
      if (name.rfind("profile ", 0) == 0) name = trim(name.substr(8));
      in_profile = name == profile;
      found = found || in_profile;
      continue;
    }
    if (!in_profile) continue;
    std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (key == "aws_access_key_id") out.access_key_id = value;
    if (key == "aws_secret_access_key") out.secret_access_key = value;
    if (key == "aws_session_token") out.session_token = value;
  }
  const std::string quoted_file = file.empty() ? std::string() : " \"" + file + "\"";
  if (!found)
    throw Error(sqlstate::kConfigFileError,
                "AWS credentials file" + quoted_file + " has no profile \"" + profile + "\"",
                "The file must have a [" + profile + "] section.");
  if (out.access_key_id.empty() || out.secret_access_key.empty())
    throw Error(sqlstate::kConfigFileError,
                "AWS credentials profile \"" + profile + "\"" +
                    (file.empty() ? std::string() : " of" + quoted_file) + " lacks " +
                    (out.access_key_id.empty() ? "aws_access_key_id" : "aws_secret_access_key"),
                "Both aws_access_key_id and aws_secret_access_key must be set.");
  return out;
}

}  // namespace cachekit
