// CDN providers: how a batch of purges becomes API calls, and what the
// answers mean. Pure C++ (no Postgres headers), unit-tested without a
// network: the HTTP transport is passed in (the worker passes
// perform_http_many with the provider's allow-list).
//
// The worker (worker/cdn_dispatch.cpp) owns queueing, deduplication across
// requests, retries and state; a provider only sends one batch (or polls
// one in-progress invalidation) and classifies the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/http_request.h"

namespace cachekit::cdn {

enum class PurgeKind { kPaths, kTags, kAll };

// What one batch row holds. Paths start with '/', may end in '*' (a
// wildcard / prefix purge) and are already percent-encoded where needed.
struct Batch {
  int64_t id = 0;
  PurgeKind kind = PurgeKind::kPaths;
  std::vector<std::string> items;  // paths or tags; empty for kAll
  // Unique per batch and the same on every retry of it (CloudFront's
  // CallerReference: a retry then can never create a second invalidation).
  std::string caller_reference;
};

enum class Outcome {
  kCompleted,   // the provider has purged (or accepted a purge that needs no tracking)
  kInProgress,  // accepted, still running (CloudFront): poll() until completed
  kRetry,       // worth another attempt: 429, 5xx, throttling, network errors
  kFailed,      // can never succeed as sent (4xx such as AccessDenied): the provider's message
};

struct SendResult {
  Outcome outcome = Outcome::kRetry;
  std::string provider_id;    // CloudFront invalidation id
  std::string error;          // the provider's code and message; never a credential
  double retry_after_s = -1;  // Retry-After when the provider gave one
  int api_calls = 0;          // HTTP requests made
  bool reachable = false;     // at least one HTTP response came back
  bool throttled = false;     // 429, Throttling, TooManyInvalidationsInProgress
};

// What a provider can take per request and in flight.
struct Limits {
  std::size_t max_items_per_batch = 1;        // paths/tags per API request (or per batch for http)
  std::size_t max_in_progress_paths = 0;      // 0: no limit (CloudFront: 3000)
  std::size_t max_in_progress_wildcards = 0;  // 0: no limit (CloudFront: 15)
  bool supports_tags = false;
  bool supports_wildcards = false;
  bool supports_all = true;
};

using Transport = std::function<std::vector<HttpExchange>(const std::vector<HttpRequest> &)>;

class Provider {
 public:
  virtual ~Provider() = default;
  virtual const char *name() const = 0;  // "cloudfront", "fastly", "cloudflare", "http"
  virtual Limits limits() const = 0;
  // The batch's items fit limits() (the caller splits); a kind the provider
  // does not support is kFailed with a message saying so.
  virtual SendResult send(const Batch &batch, const Transport &transport) const = 0;
  // Only providers that answer kInProgress are polled.
  virtual SendResult poll(const Batch &batch, const std::string &provider_id,
                          const Transport &transport) const {
    (void)batch, (void)provider_id, (void)transport;
    SendResult r;
    r.outcome = Outcome::kCompleted;
    return r;
  }
};

// Common to every provider's configuration.
struct Common {
  long timeout_ms = 30000;  // per HTTP request
  std::string ca_file;      // CA bundle for TLS verification; empty: the system's
};

struct CloudFrontConfig {
  Common common;
  std::string endpoint = "https://cloudfront.amazonaws.com";  // overridable for tests
  std::string distribution_id;
  std::string region = "us-east-1";  // CloudFront signs in us-east-1
  std::string access_key_id, secret_access_key;
};

struct FastlyConfig {
  Common common;
  std::string endpoint = "https://api.fastly.com";
  std::string service_id;
  std::string api_token;
  bool soft_purge = false;
  std::string base_url;  // the site's URL: a path purge purges base_url + path
};

struct CloudflareConfig {
  Common common;
  std::string endpoint = "https://api.cloudflare.com/client/v4";
  std::string zone_id;
  std::string api_token;
  std::string base_url;  // files are purged by full URL: base_url + path
};

struct HttpPurgeConfig {
  Common common;
  std::string purge_url_base;    // e.g. "http://127.0.0.1:6081": a path purges base + path
  std::string method = "PURGE";  // PURGE or BAN
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers on every request
  int max_parallel = 8;
};

// Throw cachekit::Error (22023) for a configuration that cannot work (missing
// id, bad endpoint URL, bad method), naming the setting but never a secret.
std::unique_ptr<Provider> make_cloudfront(CloudFrontConfig config);
std::unique_ptr<Provider> make_fastly(FastlyConfig config);
std::unique_ptr<Provider> make_cloudflare(CloudflareConfig config);
std::unique_ptr<Provider> make_http_purge(HttpPurgeConfig config);

}  // namespace cachekit::cdn
