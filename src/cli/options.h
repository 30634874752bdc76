// Command line of pg_cachekit-cdn: one command, its arguments, and options
// that may appear anywhere (GNU getopt_long order).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace cachekit::cli {

struct Options {
  std::string command;                // status, sync, invalidate, test; empty with --help/--version
  std::vector<std::string> args;      // DIR for sync, PATH... for invalidate
  std::optional<std::string> dbname;  // conninfo string or URI; else the libpq environment
  // S3 (sync, test). Empty: taken from the environment, then the server's settings.
  std::string bucket, region, s3_endpoint, ca_file;
  std::string credentials_file, profile = "default";
  bool dry_run = false;
  std::optional<bool> progress;  // unset: when stderr is a terminal
  bool verbose = false;
  bool wait = false;
  double timeout_seconds = 300;
  long limit = 10;
  bool json = false;
  bool help = false, version = false;
};

// Throws CliError(kExitUsage) for anything it cannot make sense of.
Options parse_options(int argc, char **argv);

const char *usage_text();

inline constexpr const char kProgramName[] = "pg_cachekit-cdn";
inline constexpr const char kVersion[] = "0.1.0";

}  // namespace cachekit::cli
