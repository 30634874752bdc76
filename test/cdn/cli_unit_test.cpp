// Unit tests of pg_cachekit-cdn's pieces that need no server: S3 key
// encoding and URLs, endpoint checks, credentials files, Content-Type
// guessing, the directory scan, hashing, option parsing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli/asset_scan.h"
#include "cli/aws_credentials.h"
#include "cli/cli_error.h"
#include "cli/content_type.h"
#include "cli/db.h"
#include "cli/file_hash.h"
#include "cli/options.h"
#include "cli/progress.h"
#include "cli/s3_upload.h"

namespace cli = cachekit::cli;
namespace fs = std::filesystem;

namespace {

cli::ExitCode code_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const cli::CliError &e) {
    return e.code();
  }
  return cli::kExitOk;
}

cli::Options parse(std::vector<std::string> args) {
  std::vector<char *> argv;
  static std::string name = "pg_cachekit-cdn";
  argv.push_back(name.data());
  for (auto &a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return cli::parse_options(static_cast<int>(argv.size() - 1), argv.data());
}

}  // namespace

TEST(CdnCliS3, EncodesKeysLikeSigV4) {
  EXPECT_EQ(cli::s3_encode_key("css/app.css"), "css/app.css");
  EXPECT_EQ(cli::s3_encode_key("a b+c=d&e"), "a%20b%2Bc%3Dd%26e");
  EXPECT_EQ(cli::s3_encode_key("x~y_z-1.2"), "x~y_z-1.2");
  EXPECT_EQ(cli::s3_encode_key("%41?#"), "%2541%3F%23");
  EXPECT_EQ(cli::s3_encode_key("caf\xc3\xa9.js"), "caf%C3%A9.js");  // upper-case hex
}

TEST(CdnCliS3, UrlsVirtualHostedAndPathStyle) {
  cli::S3Location aws{"assets", "eu-west-1", "", ""};
  EXPECT_EQ(cli::s3_object_url(aws, "css/a b.css"),
            "https://assets.s3.eu-west-1.amazonaws.com/css/a%20b.css");
  EXPECT_EQ(cli::s3_bucket_url(aws), "https://assets.s3.eu-west-1.amazonaws.com/");
  cli::S3Location local{"assets", "us-east-1", "https://127.0.0.1:9000", ""};
  EXPECT_EQ(cli::s3_object_url(local, "js/app.js"), "https://127.0.0.1:9000/assets/js/app.js");
  EXPECT_EQ(cli::s3_bucket_url(local), "https://127.0.0.1:9000/assets");
}

TEST(CdnCliS3, EndpointsAreHttpsHostAndPortOnly) {
  EXPECT_EQ(cli::normalize_s3_endpoint("127.0.0.1:9000"), "https://127.0.0.1:9000");
  EXPECT_EQ(cli::normalize_s3_endpoint("https://s3.example.com/"), "https://s3.example.com");
  EXPECT_EQ(cli::normalize_s3_endpoint("[::1]:9000"), "https://[::1]:9000");
  EXPECT_EQ(cli::normalize_s3_endpoint(""), "");
  for (const char *bad : {"http://127.0.0.1:9000", "https://h/bucket", "https://h/?x=1",
                          "https://user:pw@h", "h o", "ftp://h"})
    EXPECT_EQ(code_of([&] { cli::normalize_s3_endpoint(bad); }), cli::kExitUsage) << bad;
}

TEST(CdnCliS3, BucketAndRegionNamesAreChecked) {
  EXPECT_EQ(code_of([] { cli::check_bucket_name("my-assets.example"); }), cli::kExitOk);
  EXPECT_EQ(code_of([] { cli::check_bucket_name("a/b"); }), cli::kExitUsage);
  EXPECT_EQ(code_of([] { cli::check_bucket_name("a?b"); }), cli::kExitUsage);
  EXPECT_EQ(code_of([] { cli::check_bucket_name(""); }), cli::kExitUsage);
  EXPECT_EQ(code_of([] { cli::check_region("eu-central-1"); }), cli::kExitOk);
  // ':' would split curl's "aws:amz:REGION:s3" differently.
  EXPECT_EQ(code_of([] { cli::check_region("us-east-1:x"); }), cli::kExitUsage);
}

TEST(CdnCliCredentials, ReadsTheProfileAndNeverQuotesALine) {
  const std::string text =
      "# comment\n[other]\naws_access_key_id = OTHER\naws_secret_access_key = nope\n"
      "[default]\naws_access_key_id=AKIDEXAMPLE\n  aws_secret_access_key = s3cr3t/Key+x \n"
      "; another comment\naws_session_token = tok\n";
  cli::AwsCredentials c = cli::parse_credentials(text, "default", "f");
  EXPECT_EQ(c.access_key_id, "AKIDEXAMPLE");
  EXPECT_EQ(c.secret_access_key, "s3cr3t/Key+x");
  EXPECT_EQ(c.session_token, "tok");
  EXPECT_EQ(cli::parse_credentials(text, "other", "f").access_key_id, "OTHER");
  EXPECT_EQ(code_of([&] { cli::parse_credentials(text, "missing", "f"); }), cli::kExitUsage);
  try {
    cli::parse_credentials("[default]\nSECRETVALUEWITHOUTEQUALS\n", "default", "f");
    FAIL() << "no error";
  } catch (const cli::CliError &e) {
    EXPECT_EQ(std::string(e.what()).find("SECRETVALUE"), std::string::npos);
    EXPECT_EQ(e.detail().find("SECRETVALUE"), std::string::npos);
  }
  EXPECT_EQ(
      code_of([] { cli::parse_credentials("[default]\naws_access_key_id=x\n", "default", "f"); }),
      cli::kExitUsage);
}

TEST(CdnCliContentType, ByExtension) {
  EXPECT_EQ(cli::guess_content_type("/css/app.css"), "text/css");
  EXPECT_EQ(cli::guess_content_type("/JS/APP.JS"), "text/javascript");
  EXPECT_EQ(cli::guess_content_type("/img/logo.svg"), "image/svg+xml");
  EXPECT_EQ(cli::guess_content_type("/fonts/a.woff2"), "font/woff2");
  EXPECT_EQ(cli::guess_content_type("/README"), "application/octet-stream");
  EXPECT_EQ(cli::guess_content_type("/dir.d/.hidden"), "application/octet-stream");
  EXPECT_EQ(cli::guess_content_type("/x.unknownext"), "application/octet-stream");
}

TEST(CdnCliDb, TextArrayLiteralQuotesEverything) {
  EXPECT_EQ(cli::text_array_literal({}), "{}");
  EXPECT_EQ(cli::text_array_literal({"/a b", "/q\"x", "/b\\s", "NULL", "/{c,d}"}),
            "{\"/a b\",\"/q\\\"x\",\"/b\\\\s\",\"NULL\",\"/{c,d}\"}");
}

TEST(CdnCliScan, ManifestPathsAndSymlinks) {
  char tmpl[] = "/tmp/cachekit_cli_scan.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  fs::path root(tmpl);
  fs::create_directories(root / "dist/css");
  fs::create_directories(root / "outside");
  std::ofstream(root / "dist/css/app.css") << "body{}";
  std::ofstream(root / "dist/index.html") << "<html>";
  std::ofstream(root / "outside/secret.txt") << "x";
  fs::create_symlink(root / "dist/index.html", root / "dist/alias.html");
  fs::create_directory_symlink(root / "outside", root / "dist/linkdir");
  fs::create_symlink(root / "nowhere", root / "dist/broken");

  for (std::string dir : {(root / "dist").string(), (root / "dist").string() + "/",
                          (root / "dist/css/..").string()}) {
    std::vector<cli::LocalFile> files = cli::scan_directory(dir);
    std::vector<std::string> paths;
    for (const auto &f : files) paths.push_back(f.path);
    EXPECT_EQ(paths, (std::vector<std::string>{"/alias.html", "/css/app.css", "/index.html"}))
        << dir;
    EXPECT_EQ(files[1].size, 6u);
  }
  EXPECT_EQ(code_of([&] { cli::scan_directory((root / "missing").string()); }), cli::kExitUsage);
  fs::remove_all(root);
}

TEST(CdnCliScan, Utf8) {
  EXPECT_TRUE(cli::valid_utf8("caf\xc3\xa9"));
  EXPECT_FALSE(cli::valid_utf8("caf\xe9"));
  EXPECT_FALSE(cli::valid_utf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(cli::valid_utf8("\xed\xa0\x80"));  // surrogate
}

TEST(CdnCliHash, Sha256) {
  EXPECT_EQ(cli::sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  char path[] = "/tmp/cachekit_cli_hash.XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string big(200000, 'a');
  ASSERT_EQ(write(fd, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  close(fd);
  cli::FileDigest d = cli::sha256_file(path);
  EXPECT_EQ(d.size, big.size());
  EXPECT_EQ(d.sha256_hex, cli::sha256_hex(big));
  unlink(path);
  EXPECT_EQ(code_of([&] { cli::sha256_file(path); }), cli::kExitUsage);
}

TEST(CdnCliOptions, CommandsAndTheirOptions) {
  cli::Options o = parse({"sync", "dist", "--dry-run", "--bucket=b", "-d", "dbname=x"});
  EXPECT_EQ(o.command, "sync");
  EXPECT_EQ(o.args, std::vector<std::string>{"dist"});
  EXPECT_TRUE(o.dry_run);
  EXPECT_EQ(o.bucket, "b");
  EXPECT_EQ(o.dbname.value_or(""), "dbname=x");
  o = parse({"invalidate", "/a", "/b", "--wait", "--timeout", "2.5"});
  EXPECT_EQ(o.args.size(), 2u);
  EXPECT_DOUBLE_EQ(o.timeout_seconds, 2.5);
  EXPECT_TRUE(parse({"--help"}).help);
  for (std::vector<std::string> bad : {std::vector<std::string>{},
                                       {"frobnicate"},
                                       {"sync"},
                                       {"sync", "a", "b"},
                                       {"invalidate"},
                                       {"status", "x"},
                                       {"status", "--dry-run"},
                                       {"invalidate", "/a", "--timeout=5"},
                                       {"invalidate", "/a", "--wait", "--timeout=nan"},
                                       {"status", "--limit=0"},
                                       {"sync", "d", "--no-such-option"},
                                       {"sync", "d", "--bucket"},
                                       {"test", "--json"}})
    EXPECT_EQ(code_of([&] { parse(bad); }), cli::kExitUsage);
}

TEST(CdnCliProgress, HumanBytes) {
  EXPECT_EQ(cli::human_bytes(0), "0 B");
  EXPECT_EQ(cli::human_bytes(1023), "1023 B");
  EXPECT_EQ(cli::human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(cli::human_bytes(5ull << 30), "5.0 GiB");
}
