// Signed S3 requests through libcurl: PUT object (streamed from a file) and
// HEAD bucket. The signature is libcurl's own AWS SigV4 (CURLOPT_AWS_SIGV4,
// "aws:amz:REGION:s3"). libcurl 7.88 neither adds x-amz-content-sha256 nor
// can hash a streamed body, but it signs every header we set and takes the
// payload hash of its canonical request from x-amz-content-sha256 when
// present; so we send the file's SHA-256 there and S3 checks the body
// against it. TLS is always verified (--ca-file adds a CA, nothing turns it
// off), redirects are not followed, and no secret reaches a message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cli/aws_credentials.h"

namespace cachekit::cli {

struct S3Location {
  std::string bucket;
  std::string region = "us-east-1";
  // "" for AWS (virtual-hosted: https://BUCKET.s3.REGION.amazonaws.com/KEY);
  // else "https://HOST[:PORT]", addressed path-style (https://HOST[:PORT]/BUCKET/KEY).
  std::string endpoint;
  std::string ca_file;  // "" for the system's CAs
};

// Checks and normalises an endpoint given as HOST[:PORT] or https://HOST[:PORT]
// (an optional final '/'); throws CliError(kExitUsage) for anything else,
// http:// included: signed uploads go over TLS only.
std::string normalize_s3_endpoint(const std::string &endpoint);

// Throw CliError(kExitUsage) for names S3 would refuse; they also keep the
// URL and the signing scope free of anything that could change their meaning.
void check_bucket_name(const std::string &bucket);
void check_region(const std::string &region);

// AWS SigV4 URI encoding of an object key: every byte except A-Z a-z 0-9 - _ . ~
// and '/' as %XX with upper-case hex. S3 signs the path encoded once.
std::string s3_encode_key(std::string_view key);

std::string s3_bucket_url(const S3Location &loc);
std::string s3_object_url(const S3Location &loc, std::string_view key);

// bytes_sent of the current file, for progress.
using UploadProgress = std::function<void(std::uint64_t bytes_sent)>;

class S3Client {
 public:
  S3Client(S3Location loc, AwsCredentials credentials, bool verbose);
  ~S3Client();
  S3Client(const S3Client &) = delete;
  S3Client &operator=(const S3Client &) = delete;

  // PUT the file's bytes as object `key`. sha256_hex and size are those the
  // file had when hashed; S3 refuses the upload if the bytes sent differ.
  // 500, 503, 429 and broken connections are tried again (3 attempts in all).
  // Throws CliError(kExitProvider) with S3's error code and message.
  void put_object(const std::string &key, const std::string &file, std::uint64_t size,
                  const std::string &sha256_hex, const std::string &content_type,
                  const UploadProgress &progress = {});

  // HEAD bucket; throws CliError(kExitProvider) saying why it is not usable.
  void head_bucket();

  const S3Location &location() const { return loc_; }

 private:
  struct Impl;
  S3Location loc_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cachekit::cli
