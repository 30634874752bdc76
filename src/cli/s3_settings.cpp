#include "cli/s3_settings.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cli/cli_error.h"

namespace cachekit::cli {

namespace {

std::string env(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? v : "";
}

}  // namespace

S3Location resolve_s3_location(const Options &o, Db &db) {
  S3Location loc;
  loc.bucket = !o.bucket.empty() ? o.bucket : env("CACHEKIT_S3_BUCKET");
  std::string region = !o.region.empty() ? o.region : env("AWS_REGION");
  if (region.empty()) region = env("AWS_DEFAULT_REGION");
  if (loc.bucket.empty() || region.empty()) {
    // current_setting(name, true): NULL, not an error, where the setting is unknown.
    Result r = db.exec(
        "SELECT current_setting('cachekit.cdn_s3_bucket', true), "
        "current_setting('cachekit.cdn_aws_region', true)");
    if (loc.bucket.empty()) loc.bucket = r.value(0, 0).value_or("");
    if (region.empty()) region = r.value(0, 1).value_or("");
  }
  loc.region = region.empty() ? "us-east-1" : region;
  if (!loc.bucket.empty()) check_bucket_name(loc.bucket);
  check_region(loc.region);
  loc.endpoint =
      normalize_s3_endpoint(!o.s3_endpoint.empty() ? o.s3_endpoint : env("CACHEKIT_S3_ENDPOINT"));
  loc.ca_file = o.ca_file;
  if (!loc.ca_file.empty() && access(loc.ca_file.c_str(), R_OK) != 0)
    throw CliError(kExitUsage, "could not read CA file \"" + loc.ca_file + "\"",
                   std::string(std::strerror(errno)) + ".");
  return loc;
}

std::optional<AwsCredentials> resolve_credentials(const Options &o) {
  if (!o.credentials_file.empty()) return credentials_from_file(o.credentials_file, o.profile);
  return credentials_from_environment();
}

void require_function(Db &db, const std::string &signature) {
  Result r = db.exec("SELECT to_regprocedure($1) IS NOT NULL", {signature});
  if (r.text(0, 0) == "t") return;
  throw CliError(kExitDatabase, "function " + signature + " does not exist",
                 "pg_cachekit with CDN support is not installed in " + db.describe() + ".",
                 "Run CREATE EXTENSION pg_cachekit (or ALTER EXTENSION pg_cachekit UPDATE) in "
                 "that database.");
}

}  // namespace cachekit::cli
