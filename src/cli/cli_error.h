// Errors of the pg_cachekit-cdn command-line tool and the exit codes they end
// the program with. Messages follow the Postgres style (lower case, no final
// period); detail and hint are full sentences. None of them ever contains a
// secret: not the AWS secret key, a session token, a signature or a password.
#pragma once

#include <stdexcept>
#include <string>

namespace cachekit::cli {

// Documented in --help and docs/cdn-cli.md; scripts depend on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,     // bad options or arguments, missing settings, unreadable DIR
  kExitDatabase = 2,  // connection or SQL error
  kExitProvider = 3,  // S3 upload or check failed, a provider is unreachable
  kExitWait = 4,      // invalidate --wait timed out, or a purge failed
};

class CliError : public std::runtime_error {
 public:
  CliError(ExitCode code, const std::string &message, std::string detail = {},
           std::string hint = {})
      : std::runtime_error(message),
        code_(code),
        detail_(std::move(detail)),
        hint_(std::move(hint)) {}

  ExitCode code() const noexcept { return code_; }
  const std::string &detail() const noexcept { return detail_; }
  const std::string &hint() const noexcept { return hint_; }

 private:
  ExitCode code_;
  std::string detail_;
  std::string hint_;
};

}  // namespace cachekit::cli
