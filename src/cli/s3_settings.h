// Where sync and test find the S3 bucket, region, endpoint and credentials:
// the command line first, then the environment, then the server's settings
// (cachekit.cdn_s3_bucket, cachekit.cdn_aws_region). Credentials never come
// from the server.
#pragma once

#include <optional>
#include <string>

#include "cli/aws_credentials.h"
#include "cli/db.h"
#include "cli/options.h"
#include "cli/s3_upload.h"

namespace cachekit::cli {

// The bucket is left empty when none is given anywhere; every other field is
// checked (CliError(kExitUsage) for a bad name, region, endpoint or CA file).
S3Location resolve_s3_location(const Options &o, Db &db);

// --credentials-file, else the environment; nullopt when neither has any.
std::optional<AwsCredentials> resolve_credentials(const Options &o);

// Throws CliError(kExitDatabase) naming the function when it is missing, e.g.
// "cachekit.cdn_put_asset(text,text,bigint)", with a hint to install/update.
void require_function(Db &db, const std::string &signature);

}  // namespace cachekit::cli
