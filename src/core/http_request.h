// One HTTP request for a built-in http task, through libcurl.
//
// Called from a background worker's main thread; no signals (CURLOPT_NOSIGNAL),
// no threads of our own. What the request may reach is decided by a
// HostAllowList twice: on the URL's host before anything is resolved, and on
// every address curl is about to connect to (CURLOPT_OPENSOCKETFUNCTION), so a
// refused host fails without a connection attempt and DNS rebinding cannot get
// around the list. Redirects are not followed (a 3xx is the result), proxies
// from the environment are ignored, and only http and https are spoken.
//
// AWS Signature Version 4 is libcurl's own (CURLOPT_AWS_SIGV4). What libcurl
// 7.88.1 (Debian 12) does, read from its lib/http_aws_sigv4.c and checked
// against botocore's SigV4Auth/S3SigV4Auth by test_http_request.cpp:
// - It adds two headers: "Authorization: AWS4-HMAC-SHA256 Credential=<user>/
//   <date>/<region>/<service>/aws4_request, SignedHeaders=..., Signature=..."
//   and "X-Amz-Date: <yyyymmddThhmmssZ>" (X-<provider2>-Date in general).
// - It signs host, x-amz-date and every header of CURLOPT_HTTPHEADER, names
//   lower-cased, values trimmed, but none that it adds itself (User-Agent,
//   Content-Length, Content-Type for a form, Expect). A removal entry such
//   as "Content-Type:" or an empty-value entry "Name;" is signed although it
//   is not sent as signed, repeated names are not merged, and a name that is
//   a prefix of another ("x-a", "x-a-b") may be sorted wrongly.
// - The payload hash is the SHA-256 of CURLOPT_POSTFIELDS (of nothing when
//   there are none), whatever the method. It sends no x-amz-content-sha256
//   header, not even for service "s3" (libcurl 8.0 added that). A given
//   x-amz-content-sha256 header is signed and its value taken verbatim as
//   the payload hash.
// - A given X-Amz-Date is used as the signing time but then sent twice; a
//   given Date header is used as the signing time when there is no
//   X-Amz-Date (and garbles it); a given Authorization header turns signing
//   off.
// - The path and the query are signed as written in the URL: the query is
//   not sorted or re-encoded (libcurl 8.3 added that), the path not encoded
//   a second time as services other than S3 expect.
// perform_http therefore refuses, for a signed request (22023): an aws_sigv4
// value without all four parts; a missing user or password; Authorization,
// Date and X-Amz-Date headers; empty or repeated headers, and names that
// would be sorted wrongly; a body without Content-Type; a path of anything
// but unreserved characters and single slashes (for S3 also "//" and %XX in
// upper-case hex); a query that is not name=value pairs sorted by name, of
// unreserved characters and %XX. A signed request goes without our
// "Expect:" and "Content-Type:" removals, so a body over 1 MiB gets
// libcurl's unsigned "Expect: 100-continue". For service "s3" it adds
// x-amz-content-sha256 unless given: the hash of nothing for an empty body,
// else UNSIGNED-PAYLOAD (there is no SHA-256 here: give the header to have
// the body signed).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/host_allowlist.h"

namespace cachekit {

struct HttpRequest {
  std::string method = "GET";  // GET HEAD POST PUT PATCH DELETE OPTIONS PURGE BAN
  std::string url;             // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  long timeout_ms = 30000;  // whole request, connect included; 1 ms to 24 h
  // AWS Signature Version 4, computed by libcurl (CURLOPT_AWS_SIGV4), e.g.
  // "aws:amz:us-east-1:cloudfront"; empty: not signed. user/password are then
  // the access key id and the secret; they never appear in an error, and
  // are refused without aws_sigv4.
  std::string aws_sigv4;
  std::string user, password;
  // CA bundle that verifies the server (CURLOPT_CAINFO), instead of the
  // system's CAs; empty: the system's. Verification is never turned off.
  std::string ca_file;
};

struct HttpResponse {
  long status = 0;
  // The final response's header fields in order, names as sent by the server.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool body_truncated = false;  // the body was longer than max_body_bytes
  // Not parsed here: the caller reads the Retry-After field from headers.
  double retry_after_seconds = -1;
  double total_seconds = 0;
};

// Throws cachekit::Error:
//   22023  bad method, URL, header (a CR/LF/NUL anywhere in it), timeout or
//          body; for a signed request also what is listed at the top
//   42501  the host, or every address it resolved to, is not allowed; no
//          connection was opened; the message names the host
//   08001  name resolution, connection or TLS handshake (certificate
//          verification included) failed
//   08006  the connection failed after it was established
//   57014  the request took longer than timeout_ms
// curl's error text is in the detail. Header values, the body, user
// information and the query string of the URL never appear in an error.
HttpResponse perform_http(const HttpRequest &req, const HostAllowList &allow,
                          std::size_t max_body_bytes);

// One exchange of perform_http_many: the response, or the error that
// perform_http would have thrown (failed set, the rest as in cachekit::Error).
struct HttpExchange {
  HttpResponse response;
  bool failed = false;
  std::string sqlstate, message, detail, hint;
};

// Several requests at once through libcurl's multi interface, at most
// max_parallel in flight; results in the order of `reqs`. Each request is
// checked and restricted exactly as by perform_http, and its timeout starts
// when it does. A request that fails does not stop the others. Throws only
// for failures of curl itself, and 22023 for max_parallel < 1. Connections
// may be reused between requests to the same host (libcurl checks that the
// TLS settings match); each new one passes the allow-list.
std::vector<HttpExchange> perform_http_many(const std::vector<HttpRequest> &reqs,
                                            const HostAllowList &allow, std::size_t max_body_bytes,
                                            int max_parallel);

// 429, 500, 502, 503 and 504: worth another attempt (after Retry-After when
// the response has one).
bool http_status_retryable(long status);

}  // namespace cachekit
