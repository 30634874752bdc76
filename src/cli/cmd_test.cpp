// test: is the configuration usable? The server's view of every provider
// (cachekit.cdn_status()), and, when a bucket is known, a signed HEAD of the
// S3 bucket that sync uploads to. One line per check; exit 3 if any failed.
#include <cstdio>
#include <string>

#include "cli/cli_error.h"
#include "cli/commands.h"
#include "cli/db.h"
#include "cli/s3_settings.h"
#include "cli/s3_upload.h"

namespace cachekit::cli {

namespace {

struct Checks {
  int failed = 0;
  void ok(const std::string &what) { std::printf("ok      %s\n", what.c_str()); }
  void note(const std::string &what) { std::printf("note    %s\n", what.c_str()); }
  void fail(const std::string &what, const std::string &why = {}) {
    ++failed;
    std::printf("FAILED  %s%s%s\n", what.c_str(), why.empty() ? "" : ": ", why.c_str());
  }
};

}  // namespace

int run_test(const Options &o) {
  Db db = Db::connect(o.dbname, o.verbose);
  Checks checks;
  checks.ok("connected to " + db.describe());

  Result s = db.exec(
      "SELECT coalesce(s.j->>'enabled', 'false'), p.key, "
      "coalesce(p.value->>'configured', 'false'), p.value->>'reachable', "
      "coalesce(p.value->>'failures', '0'), p.value->>'last_error' "
      "FROM (SELECT cachekit.cdn_status() AS j) s "
      "LEFT JOIN LATERAL jsonb_each(CASE jsonb_typeof(s.j->'providers') WHEN 'object' "
      "THEN s.j->'providers' ELSE '{}' END) p ON true ORDER BY p.key");
  if (s.rows() > 0 && s.text(0, 0) == "true")
    checks.ok("CDN purges are enabled");
  else
    checks.fail("CDN purges are disabled", "set cachekit.cdn_enabled = on");
  int configured = 0;
  for (int i = 0; i < s.rows(); ++i) {
    if (s.is_null(i, 1)) continue;
    std::string name = s.text(i, 1);
    if (s.text(i, 2) != "true") {
      checks.note("provider " + name + " is not configured");
      continue;
    }
    ++configured;
    std::optional<std::string> reachable = s.value(i, 3);
    if (!reachable)
      checks.note("provider " + name + " is configured; not contacted yet");
    else if (*reachable == "true")
      checks.ok("provider " + name + " is configured and reachable");
    else
      checks.fail("provider " + name + " is configured but unreachable",
                  s.value(i, 5).value_or(s.text(i, 4) + " failures"));
  }
  if (configured == 0) checks.fail("no CDN provider is configured");

  S3Location loc = resolve_s3_location(o, db);
  if (loc.bucket.empty()) {
    checks.note(
        "S3 sync is not configured (no --bucket, CACHEKIT_S3_BUCKET or "
        "cachekit.cdn_s3_bucket)");
  } else {
    std::string what = "S3 bucket \"" + loc.bucket + "\" at " + s3_bucket_url(loc);
    std::optional<AwsCredentials> credentials;
    std::string why = "no AWS credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
    try {
      credentials = resolve_credentials(o);
    } catch (const CliError &e) {
      why = e.what();
    }
    if (!credentials) {
      checks.fail(what, why);
    } else {
      try {
        S3Client(loc, *credentials, o.verbose).head_bucket();
        checks.ok(what + " is reachable with these credentials");
      } catch (const CliError &e) {
        checks.fail(what, e.detail() + (e.hint().empty() ? "" : " " + e.hint()));
      }
    }
  }
  if (checks.failed > 0) {
    std::fflush(stdout);
    throw CliError(kExitProvider, std::to_string(checks.failed) +
                                      (checks.failed == 1 ? " check failed" : " checks failed"));
  }
  return 0;
}

}  // namespace cachekit::cli
