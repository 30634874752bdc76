#include "cli/s3_upload.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "cli/cli_error.h"
#include "cli/file_hash.h"
#include "cli/options.h"
#include "core/curl_handle.h"
#include "core/error.h"

namespace cachekit::cli {

namespace {

constexpr std::size_t kMaxErrorBody = 64 * 1024;
constexpr int kAttempts = 3;

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

// CURLSH is void in curl.h, like CURL: CurlDeleter would take it for an easy handle.
struct ShareDeleter {
  void operator()(CURLSH *s) const { curl_share_cleanup(s); }
};
struct FileCloser {
  void operator()(std::FILE *f) const { std::fclose(f); }
};

[[noreturn]] void bad_endpoint(const std::string &endpoint, const std::string &why) {
  throw CliError(kExitUsage, "invalid S3 endpoint \"" + endpoint + "\"", why,
                 "Give HOST[:PORT] or https://HOST[:PORT].");
}

std::string ascii_lower(std::string s) {
  for (char &c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// The text of the first <tag>...</tag> in an S3 error document, entities decoded.
std::string xml_tag(const std::string &body, const std::string &tag) {
  std::size_t b = body.find("<" + tag + ">");
  if (b == std::string::npos) return {};
  b += tag.size() + 2;
  std::size_t e = body.find("</" + tag + ">", b);
  if (e == std::string::npos) return {};
  std::string raw = body.substr(b, e - b), out;
  static const std::pair<const char *, char> entities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  for (std::size_t i = 0; i < raw.size();) {
    bool done = false;
    for (const auto &[name, c] : entities) {
      std::size_t n = std::strlen(name);
      if (raw.compare(i, n, name) == 0) {
        out += c;
        i += n;
        done = true;
        break;
      }
    }
    if (!done) {
      unsigned char ch = static_cast<unsigned char>(raw[i++]);
      out += (ch < 0x20 && ch != '\t') ? ' ' : static_cast<char>(ch);
    }
  }
  return out;
}

struct Exchange {
  CURLcode rc = CURLE_OK;
  std::string curl_error;  // a sentence
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  double seconds = 0;

  std::string header(const std::string &name) const {
    for (const auto &[n, v] : headers)
      if (ascii_lower(n) == name) return v;
    return {};
  }
};

size_t on_header(char *data, size_t size, size_t count, void *userdata) {
  auto *x = static_cast<Exchange *>(userdata);
  std::size_t len = size * count;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  if (line.rfind("HTTP/", 0) == 0) {
    x->headers.clear();  // a new response (after 100 Continue) starts
  } else if (std::size_t colon = line.find(':'); colon != std::string::npos && colon > 0) {
    std::size_t v = line.find_first_not_of(" \t", colon + 1);
    x->headers.emplace_back(line.substr(0, colon),
                            v == std::string::npos ? std::string() : line.substr(v));
  }
  return len;
}

size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  auto *x = static_cast<Exchange *>(userdata);
  std::size_t len = size * count;
  if (x->body.size() < kMaxErrorBody)
    x->body.append(data, std::min(len, kMaxErrorBody - x->body.size()));
  return len;
}

struct Upload {
  std::FILE *file = nullptr;
  const UploadProgress *progress = nullptr;
};

size_t on_read(char *buffer, size_t size, size_t count, void *userdata) {
  auto *u = static_cast<Upload *>(userdata);
  std::size_t n = std::fread(buffer, 1, size * count, u->file);
  if (n == 0 && std::ferror(u->file)) return CURL_READFUNC_ABORT;
  return n;
}

int on_progress(void *clientp, curl_off_t, curl_off_t, curl_off_t, curl_off_t ulnow) {
  auto *u = static_cast<Upload *>(clientp);
  if (u->progress != nullptr && *u->progress) (*u->progress)(static_cast<std::uint64_t>(ulnow));
  return 0;
}

bool retryable(const Exchange &x) {
  if (x.rc == CURLE_OK) return x.status == 500 || x.status == 503 || x.status == 429;
  return x.rc == CURLE_SEND_ERROR || x.rc == CURLE_RECV_ERROR || x.rc == CURLE_GOT_NOTHING;
}

// What to do about an error S3 answered with; empty when nothing specific.
std::string hint_for(const std::string &code, const Exchange &x) {
  if (code == "SignatureDoesNotMatch")
    return "Check the secret access key (AWS_SECRET_ACCESS_KEY or the credentials file).";
  if (code == "InvalidAccessKeyId")
    return "Check the access key id (AWS_ACCESS_KEY_ID or the credentials file).";
  if (code == "AccessDenied")
    return "The credentials need permission to put objects in the bucket.";
  if (code == "NoSuchBucket") return "Check --bucket (or CACHEKIT_S3_BUCKET).";
  if (code == "XAmzContentSHA256Mismatch")
    return "The file changed while it was being uploaded; run sync again.";
  if (code == "RequestTimeTooSkewed") return "Set this machine's clock right.";
  std::string region = x.header("x-amz-bucket-region");
  if (region.empty()) region = xml_tag(x.body, "Region");
  if (!region.empty())
    return "The bucket is in region " + region + ": give --region " + region + ".";
  return {};
}

}  // namespace

std::string normalize_s3_endpoint(const std::string &endpoint) {
  if (endpoint.empty()) return {};
  for (unsigned char c : endpoint)
    if (c <= 0x20 || c >= 0x7f)
      bad_endpoint(endpoint, "It contains white space or a non-ASCII byte.");
  std::string text = endpoint;
  if (text.find("://") == std::string::npos) text = "https://" + text;
  CurlUrl u;
  try {
    u = new_curl_url();
  } catch (const Error &e) {
    throw CliError(kExitUsage, e.what());
  }
  if (CURLUcode uc = curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0); uc != CURLUE_OK)
    bad_endpoint(endpoint, std::string(curl_url_strerror(uc)) + ".");
  if (ascii_lower(curl_url_part(u.get(), CURLUPART_SCHEME)) != "https")
    bad_endpoint(endpoint, "Only https is allowed: uploads are signed and sent over TLS only.");
  if (!curl_url_part(u.get(), CURLUPART_USER).empty())
    bad_endpoint(endpoint, "It must not contain user information.");
  std::string path = curl_url_part(u.get(), CURLUPART_PATH);
  if (!(path.empty() || path == "/") || !curl_url_part(u.get(), CURLUPART_QUERY).empty() ||
      !curl_url_part(u.get(), CURLUPART_FRAGMENT).empty())
    bad_endpoint(endpoint, "It must not have a path or query; the bucket goes in --bucket.");
  std::string host = curl_url_part(u.get(), CURLUPART_HOST);
  if (host.empty()) bad_endpoint(endpoint, "It has no host.");
  std::string port = curl_url_part(u.get(), CURLUPART_PORT);
  return "https://" + host + (port.empty() ? "" : ":" + port);
}

void check_bucket_name(const std::string &bucket) {
  bool ok = !bucket.empty() && bucket.size() <= 255;
  for (unsigned char c : bucket)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-' || c == '_');
  if (!ok || bucket == "." || bucket == "..")
    throw CliError(kExitUsage, "invalid S3 bucket name \"" + bucket + "\"",
                   "A bucket name consists of letters, digits, '.', '-' and '_'.");
}

void check_region(const std::string &region) {
  bool ok = !region.empty() && region.size() <= 64;
  for (unsigned char c : region)
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok)
    throw CliError(kExitUsage, "invalid AWS region \"" + region + "\"",
                   "A region consists of lower-case letters, digits and '-', like eu-west-1.");
}

std::string s3_encode_key(std::string_view key) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(key.size());
  for (unsigned char c : key) {
    if (unreserved(c) || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

std::string s3_bucket_url(const S3Location &loc) {
  if (loc.endpoint.empty())
    return "https://" + loc.bucket + ".s3." + loc.region + ".amazonaws.com/";
  return loc.endpoint + "/" + loc.bucket;
}

std::string s3_object_url(const S3Location &loc, std::string_view key) {
  std::string base = loc.endpoint.empty()
                         ? "https://" + loc.bucket + ".s3." + loc.region + ".amazonaws.com"
                         : loc.endpoint + "/" + loc.bucket;
  return base + "/" + s3_encode_key(key);
}

struct S3Client::Impl {
  AwsCredentials credentials;
  bool verbose = false;
  // Each request gets a fresh handle; they share connections (and DNS and
  // TLS sessions) through this, so that one connection serves every request.
  std::unique_ptr<CURLSH, ShareDeleter> connections;

  Exchange perform(const S3Location &loc, const char *method, const std::string &url,
                   const std::string &content_sha256, const std::string &content_type,
                   std::FILE *body, std::uint64_t size, const UploadProgress *progress);
};

Exchange S3Client::Impl::perform(const S3Location &loc, const char *method, const std::string &url,
                                 const std::string &content_sha256, const std::string &content_type,
                                 std::FILE *body, std::uint64_t size,
                                 const UploadProgress *progress) {
  Exchange x;
  Upload upload{body, progress};
  CurlList headers;
  // Only the setup throws cachekit::Error: out of memory, an option libcurl refuses.
  try {
    CurlEasy h("https", "could not configure the S3 request");
    // Unlike the server's transfers, the tool honours https_proxy and
    // no_proxy: it runs where its user does, and goes where it is told.
    h.set(CURLOPT_PROXY, static_cast<const char *>(nullptr));
    h.set(CURLOPT_NOPROXY, static_cast<const char *>(nullptr));
    h.set(CURLOPT_SHARE, connections.get());
    // libcurl signs every header in this list; none may have an empty value
    // (curl would sign it but not send it).
    curl_list_append(headers, "x-amz-content-sha256: " + content_sha256);
    if (!content_type.empty()) curl_list_append(headers, "Content-Type: " + content_type);
    if (!credentials.session_token.empty())
      curl_list_append(headers, "x-amz-security-token: " + credentials.session_token);

    h.set(CURLOPT_URL, url.c_str());
    h.set(CURLOPT_SSL_VERIFYPEER, 1L);
    h.set(CURLOPT_SSL_VERIFYHOST, 2L);
    if (!loc.ca_file.empty()) h.set(CURLOPT_CAINFO, loc.ca_file.c_str());
    h.set(CURLOPT_AWS_SIGV4, ("aws:amz:" + loc.region + ":s3").c_str());
    h.set(CURLOPT_USERNAME, credentials.access_key_id.c_str());
    h.set(CURLOPT_PASSWORD, credentials.secret_access_key.c_str());
    h.set(CURLOPT_HTTPHEADER, headers.get());
    h.set(CURLOPT_USERAGENT, (std::string(kProgramName) + "/" + kVersion).c_str());
    h.set(CURLOPT_CONNECTTIMEOUT, 30L);
    // Large files may take long; a transfer that stalls for a minute has failed.
    h.set(CURLOPT_LOW_SPEED_LIMIT, 1L);
    h.set(CURLOPT_LOW_SPEED_TIME, 60L);
    h.set(CURLOPT_HEADERFUNCTION, on_header);
    h.set(CURLOPT_HEADERDATA, static_cast<void *>(&x));
    h.set(CURLOPT_WRITEFUNCTION, on_body);
    h.set(CURLOPT_WRITEDATA, static_cast<void *>(&x));
    if (std::strcmp(method, "HEAD") == 0) {
      h.set(CURLOPT_NOBODY, 1L);
    } else {
      h.set(CURLOPT_UPLOAD, 1L);  // PUT
      h.set(CURLOPT_READFUNCTION, on_read);
      h.set(CURLOPT_READDATA, static_cast<void *>(&upload));
      h.set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
      if (progress != nullptr && *progress) {
        h.set(CURLOPT_NOPROGRESS, 0L);
        h.set(CURLOPT_XFERINFOFUNCTION, on_progress);
        h.set(CURLOPT_XFERINFODATA, static_cast<void *>(&upload));
      }
    }
    x.rc = curl_easy_perform(h.get());
    if (x.rc != CURLE_OK) {
      x.curl_error = h.error_text(x.rc);
    } else {
      curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &x.status);
    }
    curl_easy_getinfo(h.get(), CURLINFO_TOTAL_TIME, &x.seconds);
  } catch (const Error &e) {
    throw CliError(kExitProvider, e.what(), e.detail());
  }
  if (verbose) {
    if (x.rc == CURLE_OK)
      std::fprintf(stderr, "pg_cachekit-cdn: %s %s -> %ld (%.3f s)\n", method, url.c_str(),
                   x.status, x.seconds);
    else
      std::fprintf(stderr, "pg_cachekit-cdn: %s %s -> %s\n", method, url.c_str(),
                   x.curl_error.c_str());
  }
  return x;
}

S3Client::S3Client(S3Location loc, AwsCredentials credentials, bool verbose)
    : loc_(std::move(loc)), impl_(std::make_unique<Impl>()) {
  impl_->credentials = std::move(credentials);
  impl_->verbose = verbose;
  impl_->connections.reset(curl_share_init());
  if (!impl_->connections) throw CliError(kExitProvider, "could not initialise libcurl");
  for (curl_lock_data data :
       {CURL_LOCK_DATA_CONNECT, CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_SSL_SESSION})
    if (CURLSHcode rc = curl_share_setopt(impl_->connections.get(), CURLSHOPT_SHARE, data);
        rc != CURLSHE_OK)
      throw CliError(kExitProvider, "could not initialise libcurl",
                     std::string("curl_share_setopt failed: ") + curl_share_strerror(rc) + ".");
}

S3Client::~S3Client() = default;

namespace {

std::string host_of(const std::string &url) {
  std::size_t b = url.find("://");
  b = b == std::string::npos ? 0 : b + 3;
  std::size_t e = url.find('/', b);
  return url.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

[[noreturn]] void connection_failed(const std::string &what, const std::string &url,
                                    const Exchange &x) {
  std::string hint;
  if (x.rc == CURLE_PEER_FAILED_VERIFICATION || x.rc == CURLE_SSL_CACERT_BADFILE ||
      x.rc == CURLE_SSL_CONNECT_ERROR)
    hint = "The server's certificate must be trusted: give its CA with --ca-file.";
  throw CliError(kExitProvider, what, "Connecting to " + host_of(url) + " failed: " + x.curl_error,
                 hint);
}

}  // namespace

void S3Client::put_object(const std::string &key, const std::string &file, std::uint64_t size,
                          const std::string &sha256_hex, const std::string &content_type,
                          const UploadProgress &progress) {
  const std::string url = s3_object_url(loc_, key);
  const std::string what = "could not upload \"" + key + "\" to S3 bucket \"" + loc_.bucket + "\"";
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(file.c_str(), "rb"));
    if (!f)
      throw CliError(kExitUsage, "could not open file \"" + file + "\"",
                     std::string(std::strerror(errno)) + ".");
    Exchange x =
        impl_->perform(loc_, "PUT", url, sha256_hex, content_type, f.get(), size, &progress);
    if (x.rc == CURLE_OK && x.status >= 200 && x.status < 300) return;
    if (attempt < kAttempts && retryable(x)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500 << (attempt - 1)));
      continue;
    }
    if (x.rc != CURLE_OK) connection_failed(what, url, x);
    std::string code = xml_tag(x.body, "Code"), message = xml_tag(x.body, "Message");
    std::string detail = "S3 answered " + std::to_string(x.status) +
                         (code.empty() ? std::string() : " " + code) +
                         (message.empty() ? std::string(".") : ": " + message);
    if (!detail.empty() && detail.back() != '.') detail += '.';
    throw CliError(kExitProvider, what, detail, hint_for(code, x));
  }
}

void S3Client::head_bucket() {
  const std::string url = s3_bucket_url(loc_);
  const std::string what = "S3 bucket \"" + loc_.bucket + "\" is not usable";
  static const std::string empty_sha256 = sha256_hex("");
  for (int attempt = 1;; ++attempt) {
    Exchange x = impl_->perform(loc_, "HEAD", url, empty_sha256, "", nullptr, 0, nullptr);
    if (x.rc == CURLE_OK && x.status >= 200 && x.status < 300) return;
    if (attempt < kAttempts && retryable(x)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500 << (attempt - 1)));
      continue;
    }
    if (x.rc != CURLE_OK) connection_failed(what, url, x);
    // A HEAD response has no body: the status says what S3 thinks.
    std::string detail = "HEAD " + url + " answered " + std::to_string(x.status) + ".";
    std::string hint;
    std::string region = x.header("x-amz-bucket-region");
    if (x.status == 404) {
      hint = "Check --bucket (or CACHEKIT_S3_BUCKET): the bucket does not exist.";
    } else if ((x.status == 301 || x.status == 400) && !region.empty() && region != loc_.region) {
      hint = "The bucket is in region " + region + ": give --region " + region + ".";
    } else if (x.status == 403) {
      hint =
          "The credentials were refused or lack permission: check AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY (or the credentials file).";
    }
    throw CliError(kExitProvider, what, detail, hint);
  }
}

}  // namespace cachekit::cli
