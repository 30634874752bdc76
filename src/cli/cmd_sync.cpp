// sync DIR: hash every file, compare with the asset manifest, upload the new
// and changed files to S3, then record them and queue the purge of the paths
// the manifest says changed, in one transaction. The manifest is written only
// after the bucket has the bytes, and the purge commits together with the
// manifest rows: a sync cut short leaves no recorded change unpurged, and the
// next sync uploads again whatever was not recorded.
#include <unistd.h>

#include <cstdio>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cli/asset_scan.h"
#include "cli/cli_error.h"
#include "cli/commands.h"
#include "cli/content_type.h"
#include "cli/db.h"
#include "cli/file_hash.h"
#include "cli/progress.h"
#include "cli/s3_settings.h"
#include "cli/s3_upload.h"

namespace cachekit::cli {

namespace {

struct ManifestEntry {
  std::string hash;
  std::optional<long long> size;
};

struct Planned {
  LocalFile file;
  std::string sha256;
  bool is_new = false;
};

std::string lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string plural(std::size_t n, const char *one, const char *many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

int run_sync(const Options &o) {
  const std::string &dir = o.args[0];
  std::vector<LocalFile> files = scan_directory(dir);

  Db db = Db::connect(o.dbname, o.verbose);
  require_function(db, "cachekit.cdn_put_asset(text,text,bigint)");
  require_function(db, "cachekit.cdn_purge(text[])");
  S3Location loc = resolve_s3_location(o, db);
  std::optional<AwsCredentials> credentials = resolve_credentials(o);
  if (!o.dry_run) {
    if (loc.bucket.empty())
      throw CliError(kExitUsage, "no S3 bucket given",
                     "Neither --bucket, CACHEKIT_S3_BUCKET nor the server setting "
                     "cachekit.cdn_s3_bucket names one.",
                     "Give --bucket NAME.");
    if (!credentials)
      throw CliError(kExitUsage, "no AWS credentials given",
                     "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set.",
                     "Set them, or give --credentials-file.");
  }

  std::unordered_map<std::string, ManifestEntry> manifest;
  {
    Result m = db.exec("SELECT path, content_hash, size FROM cachekit.assets");
    for (int i = 0; i < m.rows(); ++i) {
      std::optional<long long> size;
      if (!m.is_null(i, 2)) size = std::stoll(m.text(i, 2));
      manifest[m.text(i, 0)] = ManifestEntry{lower(m.value(i, 1).value_or("")), size};
    }
  }

  const bool terminal = isatty(STDERR_FILENO) != 0;
  Progress progress(o.progress.value_or(terminal), terminal);
  std::vector<Planned> plan;
  std::size_t unchanged = 0;
  std::uint64_t total_bytes = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    progress.hashing(i, files.size());
    FileDigest d = sha256_file(files[i].file);
    files[i].size = d.size;  // what was hashed is what must go up
    auto it = manifest.find(files[i].path);
    if (it != manifest.end() && it->second.hash == d.sha256_hex &&
        (!it->second.size || *it->second.size == static_cast<long long>(d.size))) {
      ++unchanged;
      continue;
    }
    plan.push_back(Planned{files[i], d.sha256_hex, it == manifest.end()});
    total_bytes += d.size;
  }
  progress.hashing(files.size(), files.size());
  progress.finish();

  if (o.dry_run) {
    std::vector<std::string> purges;
    for (const Planned &p : plan) {
      std::printf("would upload %s (%s, %s)\n", p.file.path.c_str(),
                  human_bytes(p.file.size).c_str(), p.is_new ? "new" : "changed");
      if (!p.is_new) purges.push_back(p.file.path);
    }
    std::printf(
        "dry run: %s would be uploaded (%s) to %s, %s unchanged; %s would be purged\n",
        plural(plan.size(), "file", "files").c_str(), human_bytes(total_bytes).c_str(),
        loc.bucket.empty() ? "no bucket (none given)" : ("bucket \"" + loc.bucket + "\"").c_str(),
        plural(unchanged, "file", "files").c_str(), plural(purges.size(), "path", "paths").c_str());
    for (const std::string &p : purges) std::printf("would purge %s\n", p.c_str());
    return 0;
  }

  std::vector<const Planned *> uploaded;
  std::optional<CliError> upload_error;
  if (!plan.empty()) {
    S3Client s3(loc, *credentials, o.verbose);
    std::uint64_t done_bytes = 0;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const Planned &p = plan[i];
      try {
        s3.put_object(p.file.path.substr(1), p.file.file, p.file.size, p.sha256,
                      guess_content_type(p.file.path), [&](std::uint64_t sent) {
                        progress.uploading(i, plan.size(), done_bytes, total_bytes, sent);
                      });
      } catch (const CliError &e) {
        upload_error = e;
        break;
      }
      done_bytes += p.file.size;
      uploaded.push_back(&p);
      progress.uploaded(i + 1, plan.size(), done_bytes, total_bytes, p.file.path);
    }
    progress.finish();
  }

  std::vector<std::string> changed;
  std::optional<std::string> request_id;
  if (!uploaded.empty()) {
    db.exec("BEGIN");
    for (const Planned *p : uploaded) {
      Result r = db.exec("SELECT cachekit.cdn_put_asset($1, $2, $3)",
                         {p->file.path, p->sha256, std::to_string(p->file.size)});
      if (r.value(0, 0).value_or("f") == "t") changed.push_back(p->file.path);
      std::printf("uploaded %s (%s, %s)\n", p->file.path.c_str(), human_bytes(p->file.size).c_str(),
                  p->is_new ? "new" : "changed");
    }
    if (!changed.empty())
      request_id = db.exec("SELECT cachekit.cdn_purge($1::text[])", {text_array_literal(changed)})
                       .value(0, 0);
    db.exec("COMMIT");
  }

  std::uint64_t uploaded_bytes = 0;
  for (const Planned *p : uploaded) uploaded_bytes += p->file.size;
  std::string purge = changed.empty() ? "nothing to purge"
                      : request_id    ? "purge request " + *request_id + " queued for " +
                                         plural(changed.size(), "path", "paths")
                                   : "no purge queued for " +
                                         plural(changed.size(), "changed path", "changed paths") +
                                         " (CDN purges are disabled)";
  std::printf("sync: %s uploaded (%s) to bucket \"%s\", %s unchanged; %s\n",
              plural(uploaded.size(), "file", "files").c_str(), human_bytes(uploaded_bytes).c_str(),
              loc.bucket.c_str(), plural(unchanged, "file", "files").c_str(), purge.c_str());
  if (upload_error) {
    std::fflush(stdout);
    throw CliError(
        upload_error->code(), upload_error->what(),
        upload_error->detail() +
            (uploaded.empty()
                 ? std::string()
                 : " The " + plural(uploaded.size(), "file", "files") + " uploaded before it " +
                       (uploaded.size() == 1 ? "is" : "are") + " recorded in the manifest."),
        upload_error->hint());
  }
  return 0;
}

}  // namespace cachekit::cli
