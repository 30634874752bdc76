// Fastly: purge by URL, by surrogate key and everything.
//
// The API as Fastly's generated clients document it (github.com/fastly/fastly-js
// docs/PurgeApi.md; docs.rs/crate/fastly-api, docs/PurgeApi.md):
//   POST /purge/{cached_url}                  one URL: host + path, no scheme
//                                             ("www.example.com/path/to/object-to-purge")
//   POST /service/{service_id}/purge          up to 256 surrogate keys, JSON body
//                                             {"surrogate_keys": [...]}; answers
//                                             {"key": "purge id", ...}
//   POST /service/{service_id}/purge_all      everything; "cannot be done in soft mode"
// Authentication is the Fastly-Key header. "Fastly-Soft-Purge: 1" marks objects
// stale instead of removing them. A purge answers {"status": "ok", "id": "..."}
// (docs.fastly.com/en/guides/purging-via-api: support asks for that id when a purge
// misbehaves, so the first one becomes the batch's provider_id). Errors are JSON
// such as 401 {"msg": "Provided credentials are missing or invalid"}, sometimes
// with a "detail"; "msg" may be an object with an "error_description" (as Go
// clients of the API handle it). Fastly reports its API rate limit in
// Fastly-RateLimit-Remaining and Fastly-RateLimit-Reset (epoch seconds), read
// by its generated clients; a refusal with nothing remaining is throttling.
//
// URL purges have no wildcard form (a prefix is purged with a surrogate key),
// so wildcard paths fail rather than being sent as a literal '*'.
#include <cstdlib>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "core/cdn_batch.h"
#include "core/cdn_provider.h"
#include "core/cdn_rest.h"
#include "core/json.h"

namespace cachekit::cdn {

namespace {

constexpr std::size_t kMaxKeysPerCall = 256;

class Fastly final : public Provider {
 public:
  Fastly(FastlyConfig config, rest::BaseUrl endpoint, rest::BaseUrl site)
      : config_(std::move(config)), endpoint_(std::move(endpoint)), site_(std::move(site)) {}

  const char *name() const override { return "fastly"; }

  Limits limits() const override {
    Limits l;
    // Paths go one request each; 256 keeps a batch of paths the size of a
    // batch of keys, so one transport call stays bounded.
    l.max_items_per_batch = kMaxKeysPerCall;
    l.supports_tags = true;
    l.supports_wildcards = false;
    l.supports_all = true;
    return l;
  }

  SendResult send(const Batch &batch, const Transport &transport) const override {
    rest::Requests requests;
    switch (batch.kind) {
      case PurgeKind::kPaths:
        for (const std::string &path : batch.items) {
          if (is_wildcard(path))
            return rest::failed_without_sending(
                "fastly cannot purge wildcard paths such as " + path +
                "; tag the objects with a surrogate key and purge the key instead");
          HttpRequest r =
              base_request(endpoint_.text() + "/purge/" + site_.authority + site_.path + path);
          if (config_.soft_purge) r.headers.emplace_back("Fastly-Soft-Purge", "1");
          requests.add(std::move(r), "purge of " + path);
        }
        break;
      case PurgeKind::kTags:
        // Keys are separated by spaces in Surrogate-Key headers.
        if (std::string error = rest::invalid_tag_error(batch.items, "fastly surrogate key");
            !error.empty())
          return rest::failed_without_sending(error);
        for (auto &keys : rest::chunks(batch.items, kMaxKeysPerCall)) {
          HttpRequest r =
              base_request(endpoint_.text() + "/service/" + config_.service_id + "/purge");
          r.headers.emplace_back("Content-Type", "application/json");
          if (config_.soft_purge) r.headers.emplace_back("Fastly-Soft-Purge", "1");
          r.body = "{\"surrogate_keys\": " + json_string_array(keys) + "}";
          requests.add(std::move(r), "purge of " + std::to_string(keys.size()) + " surrogate keys");
        }
        break;
      case PurgeKind::kAll:
        // No Fastly-Soft-Purge: purge_all is always hard.
        requests.add(
            base_request(endpoint_.text() + "/service/" + config_.service_id + "/purge_all"),
            "purge_all");
        break;
    }
    return rest::send_and_judge(
        transport, requests, ": ",
        [this](const HttpResponse &resp, rest::Judgement &j, std::string &provider_id) {
          rest::Json body;
          const bool json = rest::parse_json(resp.body, body);
          if (j.verdict == rest::Verdict::kOk) {
            if (provider_id.empty() && json) provider_id = purge_id(body);
            return;
          }
          const std::string why = message(resp, body, json);
          j.error = "fastly answered HTTP " + std::to_string(resp.status) +
                    (why.empty() ? std::string() : ": " + why);
          if (j.verdict == rest::Verdict::kFailed && rate_limited(resp, j.retry_after_s)) {
            j.verdict = rest::Verdict::kRetry;
            j.throttled = true;
          }
        });
  }

 private:
  HttpRequest base_request(std::string url) const {
    HttpRequest r = rest::new_request("POST", std::move(url), config_.common);
    r.headers.emplace_back("Fastly-Key", config_.api_token);
    r.headers.emplace_back("Accept", "application/json");
    return r;
  }

  static bool rate_limited(const HttpResponse &resp, double &wait_s) {
    const std::string *remaining = rest::find_header(resp, "Fastly-RateLimit-Remaining");
    if (remaining == nullptr || *remaining != "0") return false;
    if (const std::string *reset = rest::find_header(resp, "Fastly-RateLimit-Reset")) {
      const double at = std::strtod(reset->c_str(), nullptr);
      const double now = static_cast<double>(std::time(nullptr));
      if (at > now) wait_s = at - now;
    }
    return true;
  }

  // {"status": "ok", "id": "..."} for URL purges; {"key": "id", ...} for bulk.
  static std::string purge_id(const rest::Json &body) {
    if (const rest::Json *id = body.get("id"); id && id->type == rest::Json::Type::kString)
      return id->string;
    if (body.type == rest::Json::Type::kObject && !body.object.empty() &&
        body.get("status") == nullptr &&
        body.object.front().second.type == rest::Json::Type::kString)
      return body.object.front().second.string;
    return {};
  }

  std::string message(const HttpResponse &resp, const rest::Json &body, bool json) const {
    if (json) {
      const rest::Json *msg = body.get("msg");
      const rest::Json *detail = body.get("detail");
      std::string out;
      if (msg && msg->type == rest::Json::Type::kString) out = msg->string;
      if (msg && msg->type == rest::Json::Type::kObject)
        if (const rest::Json *d = msg->get("error_description");
            d && d->type == rest::Json::Type::kString)
          out = d->string;
      if (detail && detail->type == rest::Json::Type::kString && !detail->string.empty())
        out += (out.empty() ? "" : " (") + detail->string + (out.empty() ? "" : ")");
      if (!out.empty()) return rest::excerpt(out, {config_.api_token});
    }
    return rest::excerpt(resp.body, {config_.api_token});
  }

  FastlyConfig config_;
  rest::BaseUrl endpoint_, site_;
};

}  // namespace

std::unique_ptr<Provider> make_fastly(FastlyConfig config) {
  rest::check_id(config.service_id, "cachekit.cdn_fastly_service_id");
  // The worker reads the token from the file that setting names.
  rest::check_header_value(config.api_token, "cachekit.cdn_fastly_api_token_file",
                           "The token in that file");
  rest::BaseUrl endpoint =
      rest::parse_base_url(config.endpoint, "cachekit.cdn_fastly_endpoint", true);
  rest::BaseUrl site = rest::parse_base_url(config.base_url, "cachekit.cdn_base_url", false);
  return std::make_unique<Fastly>(std::move(config), std::move(endpoint), std::move(site));
}

}  // namespace cachekit::cdn
