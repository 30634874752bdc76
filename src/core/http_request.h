// One HTTP request for a built-in http task, through libcurl.
//
// Called from a background worker's main thread; no signals (CURLOPT_NOSIGNAL),
// no threads of our own. What the request may reach is decided by a
// HostAllowList twice: on the URL's host before anything is resolved, and on
// every address curl is about to connect to (CURLOPT_OPENSOCKETFUNCTION), so a
// refused host fails without a connection attempt and DNS rebinding cannot get
// around the list. Redirects are not followed (a 3xx is the result), proxies
// from the environment are ignored, and only http and https are spoken.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/host_allowlist.h"

namespace cachekit {

struct HttpRequest {
  std::string method = "GET";  // GET HEAD POST PUT PATCH DELETE OPTIONS
  std::string url;             // http:// or https://
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  long timeout_ms = 30000;  // whole request, connect included; 1 ms to 24 h
  // AWS Signature Version 4, computed by libcurl (CURLOPT_AWS_SIGV4), e.g.
  // "aws:amz:us-east-1:cloudfront"; empty: not signed. user/password are then
  // the access key id and the secret; they never appear in an error.
  std::string aws_sigv4;
  std::string user, password;
  // CA bundle that verifies the server (CURLOPT_CAINFO); empty: the system's.
  // Verification is never turned off.
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
//   22023  bad method, URL, header (a CR/LF/NUL anywhere in it), timeout or body
//   42501  the host, or every address it resolved to, is not allowed; no
//          connection was opened; the message names the host
//   08001  name resolution, connection or TLS handshake failed
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
  std::string sqlstate, message, detail;
};

// Several requests at once through libcurl's multi interface, at most
// max_parallel in flight; results in the order of `reqs`. Each request is
// checked and restricted exactly as by perform_http. A request that fails
// does not stop the others. Throws only for failures of curl itself.
std::vector<HttpExchange> perform_http_many(const std::vector<HttpRequest> &reqs,
                                            const HostAllowList &allow,
                                            std::size_t max_body_bytes, int max_parallel);

// 429, 500, 502, 503 and 504: worth another attempt (after Retry-After when
// the response has one).
bool http_status_retryable(long status);

}  // namespace cachekit
