#include "cli/options.h"

#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace {

enum LongOnly : int {
  kBucket = 256,
  kRegion,
  kEndpoint,
  kCaFile,
  kCredentialsFile,
  kProfile,
  kProgress,
  kNoProgress,
  kWait,
  kTimeout,
  kLimit,
  kJson,
};

[[noreturn]] void usage_error(const std::string &message) {
  throw CliError(kExitUsage, message, {},
                 std::string("Try \"") + kProgramName + " --help\" for more information.");
}

// "--timeout" must be a positive number of seconds; strtod alone accepts "nan", "inf" and "1x".
double parse_seconds(const char *text, const char *option) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v <= 0 || v > 86400)
    usage_error(std::string("invalid value \"") + text + "\" for " + option +
                ": a number of seconds between 0 and 86400 is expected");
  return v;
}

long parse_count(const char *text, const char *option) {
  char *end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 1 || v > 100000)
    usage_error(std::string("invalid value \"") + text + "\" for " + option +
                ": a whole number between 1 and 100000 is expected");
  return v;
}

}  // namespace

const char *usage_text() {
  return R"(pg_cachekit-cdn manages pg_cachekit's CDN purges and the asset manifest.

Usage:
  pg_cachekit-cdn [OPTION]... status      show the CDN providers and recent purge requests
  pg_cachekit-cdn [OPTION]... sync DIR    upload new and changed files of DIR to S3, record them
                                          in the asset manifest and queue purges of changed paths
  pg_cachekit-cdn [OPTION]... invalidate PATH...
                                          queue a purge of PATHs and print the request id
  pg_cachekit-cdn [OPTION]... test        check the CDN configuration and reachability

Connection (the libpq environment: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, ...):
  -d, --dbname=CONNINFO        database to connect to (a conninfo string or URI)

S3 (sync, test):
      --bucket=NAME            bucket (default: $CACHEKIT_S3_BUCKET, then the server's
                               cachekit.cdn_s3_bucket)
      --region=REGION          region (default: $AWS_REGION, then cachekit.cdn_aws_region,
                               then us-east-1)
      --s3-endpoint=HOST[:PORT]
                               S3-compatible endpoint, addressed path-style as
                               https://HOST[:PORT]/BUCKET/KEY (default: $CACHEKIT_S3_ENDPOINT;
                               unset: https://BUCKET.s3.REGION.amazonaws.com/KEY)
      --ca-file=FILE           CA certificates that verify the endpoint (default: the system's)
      --credentials-file=FILE  AWS credentials file (ini); default: $AWS_ACCESS_KEY_ID,
                               $AWS_SECRET_ACCESS_KEY and $AWS_SESSION_TOKEN
      --profile=NAME           profile of the credentials file (default: default)

Commands' options:
  -n, --dry-run                sync: show what would be uploaded and purged, change nothing
      --progress, --no-progress
                               sync: show progress on stderr (default: when it is a terminal)
      --wait                   invalidate: wait until every provider completed or failed
      --timeout=SECONDS        invalidate --wait: give up after SECONDS (default: 300)
      --limit=N                status: show the N most recent purge requests (default: 10)
      --json                   status: print the status and the requests as JSON
  -v, --verbose                say what is done (secrets are never shown)
  -h, --help                   show this help, then exit
  -V, --version                show the version, then exit

Exit status:
  0  success
  1  usage error: bad options or arguments, missing S3 settings or credentials, unreadable DIR
  2  could not connect to the database, or an SQL command failed
  3  an S3 request failed (upload, bucket check), or a configured provider is unreachable
  4  invalidate --wait: timed out, or a purge failed at a provider
)";
}

Options parse_options(int argc, char **argv) {
  static const struct option long_options[] = {
      {"dbname", required_argument, nullptr, 'd'},
      {"bucket", required_argument, nullptr, kBucket},
      {"region", required_argument, nullptr, kRegion},
      {"s3-endpoint", required_argument, nullptr, kEndpoint},
      {"ca-file", required_argument, nullptr, kCaFile},
      {"credentials-file", required_argument, nullptr, kCredentialsFile},
      {"profile", required_argument, nullptr, kProfile},
      {"dry-run", no_argument, nullptr, 'n'},
      {"progress", no_argument, nullptr, kProgress},
      {"no-progress", no_argument, nullptr, kNoProgress},
      {"wait", no_argument, nullptr, kWait},
      {"timeout", required_argument, nullptr, kTimeout},
      {"limit", required_argument, nullptr, kLimit},
      {"json", no_argument, nullptr, kJson},
      {"verbose", no_argument, nullptr, 'v'},
      {"help", no_argument, nullptr, 'h'},
      {"version", no_argument, nullptr, 'V'},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  bool timeout_given = false, limit_given = false;
  // getopt prints its own complaint; ours carries the same information.
  opterr = 0;
  optind = 1;
  int c;
  while ((c = getopt_long(argc, argv, ":d:nvhV", long_options, nullptr)) != -1) {
    switch (c) {
      case 'd':
        o.dbname = optarg;
        break;
      case kBucket:
        o.bucket = optarg;
        break;
      case kRegion:
        o.region = optarg;
        break;
      case kEndpoint:
        o.s3_endpoint = optarg;
        break;
      case kCaFile:
        o.ca_file = optarg;
        break;
      case kCredentialsFile:
        o.credentials_file = optarg;
        break;
      case kProfile:
        o.profile = optarg;
        break;
      case 'n':
        o.dry_run = true;
        break;
      case kProgress:
        o.progress = true;
        break;
      case kNoProgress:
        o.progress = false;
        break;
      case kWait:
        o.wait = true;
        break;
      case kTimeout:
        o.timeout_seconds = parse_seconds(optarg, "--timeout");
        timeout_given = true;
        break;
      case kLimit:
        o.limit = parse_count(optarg, "--limit");
        limit_given = true;
        break;
      case kJson:
        o.json = true;
        break;
      case 'v':
        o.verbose = true;
        break;
      case 'h':
        o.help = true;
        break;
      case 'V':
        o.version = true;
        break;
      case ':':
        usage_error(std::string("option ") + argv[optind - 1] + " needs a value");
      default:
        usage_error(std::string("unknown option \"") +
                    (optopt != 0 ? std::string("-") + static_cast<char>(optopt)
                                 : std::string(argv[optind - 1])) +
                    "\"");
    }
  }
  if (o.help || o.version) return o;
  if (optind >= argc) usage_error("no command given");
  o.command = argv[optind++];
  for (int i = optind; i < argc; ++i) o.args.emplace_back(argv[i]);

  auto only_for = [&o](bool used, const char *option, const char *command) {
    if (used && o.command != command)
      usage_error(std::string("option ") + option + " is only for the " + command + " command");
  };
  if (o.command == "status" || o.command == "test") {
    if (!o.args.empty()) usage_error("command " + o.command + " takes no arguments");
  } else if (o.command == "sync") {
    if (o.args.size() != 1) usage_error("command sync takes one argument, the directory");
  } else if (o.command == "invalidate") {
    if (o.args.empty()) usage_error("command invalidate needs at least one path");
  } else {
    usage_error("unknown command \"" + o.command + "\"");
  }
  only_for(o.dry_run, "--dry-run", "sync");
  only_for(o.progress.has_value(), "--progress", "sync");
  only_for(o.wait, "--wait", "invalidate");
  only_for(timeout_given, "--timeout", "invalidate");
  only_for(o.json, "--json", "status");
  only_for(limit_given, "--limit", "status");
  if (timeout_given && !o.wait) usage_error("option --timeout needs --wait");
  return o;
}

}  // namespace cachekit::cli
