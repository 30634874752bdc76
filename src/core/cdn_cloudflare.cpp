// Cloudflare: purge by URL, by URL prefix, by cache tag and everything.
//
// The API (developers.cloudflare.com/api/go/resources/cache/methods/purge):
//   POST /zones/{zone_id}/purge_cache with exactly one of
//     {"files": ["https://www.example.com/css/styles.css", ...]}  full URLs
//     {"prefixes": ["www.example.com/foo/", ...]}                  host/path, no scheme
//     {"tags": [...]}, {"hosts": [...]}, {"purge_everything": true}
// authenticated by "Authorization: Bearer <API token>". Every plan allows 100
// operations per request (developers.cloudflare.com/cache/how-to/purge-cache/,
// "Max operations per request"; Enterprise 500 for URLs). Answers are
//   {"success": true, "errors": [], "messages": [], "result": {"id": "..."}}
//   {"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], ...}
// Prefixes purge whole directories: they end at a path separator, cannot carry a
// query string, and have at most 31 path separators
// (developers.cloudflare.com/cache/how-to/purge-cache/purge_by_prefix/), so a
// wildcard path is accepted only as "/dir/*".
#include <string>
#include <utility>
#include <vector>

#include "core/cdn_batch.h"
#include "core/cdn_provider.h"
#include "core/cdn_rest.h"
#include "core/json.h"

namespace cachekit::cdn {

namespace {

constexpr std::size_t kMaxPerRequest = 100;
constexpr std::size_t kMaxPrefixSeparators = 31;

class Cloudflare final : public Provider {
 public:
  Cloudflare(CloudflareConfig config, rest::BaseUrl endpoint, rest::BaseUrl site)
      : config_(std::move(config)), endpoint_(std::move(endpoint)), site_(std::move(site)) {}

  const char *name() const override { return "cloudflare"; }

  Limits limits() const override {
    Limits l;
    l.max_items_per_batch = kMaxPerRequest;
    l.supports_tags = true;
    l.supports_wildcards = true;
    l.supports_all = true;
    return l;
  }

  SendResult send(const Batch &batch, const Transport &transport) const override {
    rest::Requests requests;
    auto add = [&](const char *field, const std::vector<std::string> &values) {
      for (auto &chunk : rest::chunks(values, kMaxPerRequest))
        requests.add(request("{\"" + std::string(field) + "\": " + json_string_array(chunk) + "}"),
                     "purge of " + std::to_string(chunk.size()) + " " + field);
    };
    switch (batch.kind) {
      case PurgeKind::kPaths: {
        std::vector<std::string> files, prefixes;
        for (const std::string &path : batch.items) {
          if (!is_wildcard(path)) {
            files.push_back(site_.text() + path);
            continue;
          }
          std::string error;
          if (!prefix_ok(path, error)) return rest::failed_without_sending(error);
          prefixes.push_back(site_.authority + site_.path + path.substr(0, path.size() - 1));
        }
        // Cloudflare takes one kind of purge per request.
        add("files", files);
        add("prefixes", prefixes);
        break;
      }
      case PurgeKind::kTags:
        // Cache-Tag headers are comma-separated lists.
        if (std::string error =
                rest::invalid_tag_error(batch.items, "cloudflare cache tag", ",", "a comma");
            !error.empty())
          return rest::failed_without_sending(error);
        add("tags", batch.items);
        break;
      case PurgeKind::kAll:
        requests.add(request("{\"purge_everything\": true}"), "purge_everything");
        break;
    }
    return rest::send_and_judge(
        transport, requests, ": ",
        [this](const HttpResponse &resp, rest::Judgement &j, std::string &provider_id) {
          rest::Json body;
          const bool json = rest::parse_json(resp.body, body);
          const rest::Json *success = json ? body.get("success") : nullptr;
          const bool succeeded =
              success != nullptr && success->type == rest::Json::Type::kBool && success->boolean;
          if (j.verdict == rest::Verdict::kOk && succeeded) {
            if (provider_id.empty())
              if (const rest::Json *result = body.get("result"))
                if (const rest::Json *id = result->get("id");
                    id && id->type == rest::Json::Type::kString)
                  provider_id = id->string;
            return;
          }
          // A 2xx that is not {"success": true} did not purge anything we know of.
          if (j.verdict == rest::Verdict::kOk) j.verdict = rest::Verdict::kFailed;
          std::string why = json ? api_errors(body) : std::string();
          if (why.empty()) why = rest::excerpt(resp.body, {config_.api_token});
          j.error = "cloudflare answered HTTP " + std::to_string(resp.status) +
                    (why.empty() ? std::string() : ": " + why);
        });
  }

 private:
  HttpRequest request(std::string body) const {
    HttpRequest r = rest::new_request(
        "POST", endpoint_.text() + "/zones/" + config_.zone_id + "/purge_cache", config_.common);
    r.headers.emplace_back("Authorization", "Bearer " + config_.api_token);
    r.headers.emplace_back("Content-Type", "application/json");
    r.headers.emplace_back("Accept", "application/json");
    r.body = std::move(body);
    return r;
  }

  bool prefix_ok(const std::string &path, std::string &error) const {
    if (path.size() < 2 || path[path.size() - 2] != '/') {
      error = "cloudflare purges prefixes only up to a \"/\": " + path +
              " must end in \"/*\", such as /img/*";
      return false;
    }
    if (path.find('?') != std::string::npos) {
      error = "cloudflare cannot purge a prefix with a query string: " + path;
      return false;
    }
    std::size_t separators = 0;
    for (char c : site_.path + path) separators += c == '/';
    if (separators > kMaxPrefixSeparators) {
      error = "cloudflare purges prefixes of at most " + std::to_string(kMaxPrefixSeparators) +
              " path separators: " + path;
      return false;
    }
    return true;
  }

  // "code: message; code: message" from {"errors": [...]}, or "".
  std::string api_errors(const rest::Json &body) const {
    const rest::Json *errors = body.get("errors");
    if (errors == nullptr || errors->type != rest::Json::Type::kArray) return {};
    std::string out;
    for (const rest::Json &e : errors->array) {
      const rest::Json *code = e.get("code");
      const rest::Json *message = e.get("message");
      if (!out.empty()) out += "; ";
      out += "error ";
      out += code && code->type == rest::Json::Type::kNumber ? code->string : "?";
      if (message && message->type == rest::Json::Type::kString) out += " " + message->string;
    }
    return rest::excerpt(out, {config_.api_token}, 300);
  }

  CloudflareConfig config_;
  rest::BaseUrl endpoint_, site_;
};

}  // namespace

std::unique_ptr<Provider> make_cloudflare(CloudflareConfig config) {
  rest::check_id(config.zone_id, "cachekit.cdn_cloudflare_zone_id");
  // The worker reads the token from the file that setting names.
  rest::check_header_value(config.api_token, "cachekit.cdn_cloudflare_api_token_file",
                           "The token in that file");
  rest::BaseUrl endpoint =
      rest::parse_base_url(config.endpoint, "cachekit.cdn_cloudflare_endpoint", true);
  rest::BaseUrl site = rest::parse_base_url(config.base_url, "cachekit.cdn_base_url", false);
  return std::make_unique<Cloudflare>(std::move(config), std::move(endpoint), std::move(site));
}

}  // namespace cachekit::cdn
