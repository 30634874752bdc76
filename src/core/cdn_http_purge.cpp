// Varnish, nginx and other caches purged by plain HTTP requests.
//
// One request per item, all handed to the transport at once (the worker's
// transport runs them through curl's multi interface, max_parallel at a time):
//
//   method  item            request                                      cache side
//   PURGE   /img/a.png      PURGE {base}/img/a.png                       drop that object
//   BAN     /img/a.png      BAN {base}/img/a.png                         ban that URL
//   BAN     /img/*          BAN {base}/img/ + "X-Ban-Prefix: 1"          ban URLs starting /img/
//   BAN     tag t           BAN {base}/ + "X-Purge-Tag: t"               ban objects tagged t
//   BAN     everything      BAN {base}/ + "X-Ban-Prefix: 1"              ban every URL
//
// test/cdn/varnish.vcl implements that convention (bans test the object's own
// URL and tag headers, so Varnish's ban lurker can apply them in the
// background). PURGE has no prefix, tag or "everything" form.
//
// Answers: 2xx is done. PURGE's 404 is done too: nginx's cache_purge answers
// 404 when the object was not cached, which is the state a purge wants.
// 429 and 5xx (and connection failures) are retried; any other status (405 from
// a cache that does not allow the purge, 403) fails with the status and the
// start of the body. A batch is completed only when every request succeeded;
// when some must be retried the whole batch is sent again, which is harmless:
// purging or banning the same thing twice leaves the cache in the same state.
#include <string>
#include <utility>
#include <vector>

#include "core/cdn_batch.h"
#include "core/cdn_provider.h"
#include "core/cdn_rest.h"
#include "core/error.h"

namespace cachekit::cdn {

namespace {

constexpr std::size_t kMaxPerBatch = 100;

class HttpPurge final : public Provider {
 public:
  HttpPurge(HttpPurgeConfig config, rest::BaseUrl base)
      : config_(std::move(config)), base_(std::move(base)), ban_(config_.method == "BAN") {
    for (const auto &h : config_.headers) secrets_.push_back(h.second);
  }

  const char *name() const override { return "http"; }

  Limits limits() const override {
    Limits l;
    l.max_items_per_batch = kMaxPerBatch;
    l.supports_tags = ban_;
    l.supports_wildcards = ban_;
    l.supports_all = ban_;
    return l;
  }

  SendResult send(const Batch &batch, const Transport &transport) const override {
    rest::Requests requests;
    switch (batch.kind) {
      case PurgeKind::kPaths:
        for (const std::string &path : batch.items) {
          if (!is_wildcard(path)) {
            requests.add(request(path, {}), config_.method + " " + path);
          } else if (!ban_) {
            return rest::failed_without_sending(
                "PURGE cannot purge wildcard paths such as " + path +
                "; set cachekit.cdn_http_method to BAN for prefix purges");
          } else {
            requests.add(request(path.substr(0, path.size() - 1), {"X-Ban-Prefix", "1"}),
                         "BAN " + path);
          }
        }
        break;
      case PurgeKind::kTags:
        if (!ban_)
          return rest::failed_without_sending(
              "PURGE cannot purge by tag; set cachekit.cdn_http_method to BAN for tag purges");
        // The tag goes into a header and, in the VCL, into a ban regex (escaped there).
        if (std::string error = rest::invalid_tag_error(batch.items, "cache tag"); !error.empty())
          return rest::failed_without_sending(error);
        for (const std::string &tag : batch.items)
          requests.add(request("/", {"X-Purge-Tag", tag}), "BAN of tag " + tag);
        break;
      case PurgeKind::kAll:
        if (!ban_)
          return rest::failed_without_sending(
              "PURGE cannot purge everything; set cachekit.cdn_http_method to BAN to purge "
              "everything");
        requests.add(request("/", {"X-Ban-Prefix", "1"}), "BAN of everything");
        break;
    }
    return rest::send_and_judge(
        transport, requests, " ",
        [this](const HttpResponse &resp, rest::Judgement &j, std::string &) {
          if (!ban_ && resp.status == 404) j.verdict = rest::Verdict::kOk;
          if (j.verdict == rest::Verdict::kOk) return;
          const std::string why = reason(resp.body);
          j.error =
              "answered HTTP " + std::to_string(resp.status) + (why.empty() ? "" : ": " + why);
        });
  }

 private:
  HttpRequest request(const std::string &path, std::pair<std::string, std::string> header) const {
    HttpRequest r = rest::new_request(config_.method, base_.text() + path, config_.common);
    r.headers = config_.headers;
    if (!header.first.empty()) r.headers.push_back(std::move(header));
    return r;
  }

  // Varnish's synthetic error pages are HTML whose <title> says it all
  // ("405 Not allowed"); anything else: the start of the body.
  std::string reason(const std::string &body) const {
    const std::size_t open = body.find("<title>");
    if (open != std::string::npos) {
      const std::size_t close = body.find("</title>", open);
      if (close != std::string::npos)
        return rest::excerpt(body.substr(open + 7, close - open - 7), secrets_);
    }
    return rest::excerpt(body, secrets_);
  }

  HttpPurgeConfig config_;
  rest::BaseUrl base_;
  bool ban_;
  std::vector<std::string> secrets_;  // header values: may hold a purge secret
};

bool header_name_ok(const std::string &name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          std::string("!#$%&'*+-.^_`|~").find(c) != std::string::npos))
      return false;
  return true;
}

}  // namespace

std::unique_ptr<Provider> make_http_purge(HttpPurgeConfig config) {
  rest::BaseUrl base =
      rest::parse_base_url(config.purge_url_base, "cachekit.cdn_http_purge_url", false);
  std::string method;
  for (char c : config.method) method.push_back((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
  if (method != "PURGE" && method != "BAN")
    throw Error(sqlstate::kInvalidParameterValue, "invalid cachekit.cdn_http_method",
                "The method must be PURGE or BAN.");
  config.method = method;
  for (const auto &h : config.headers) {
    if (!header_name_ok(h.first))
      throw Error(sqlstate::kInvalidParameterValue, "invalid cachekit.cdn_http_headers",
                  "A header name is empty or not an HTTP token.");
    // Values may be purge secrets: never quoted in the error.
    rest::check_header_value(h.second, "cachekit.cdn_http_headers", "A header value");
  }
  if (config.max_parallel < 1 || config.max_parallel > 1000)
    throw Error(sqlstate::kInvalidParameterValue,
                "invalid max_parallel for the http purge provider",
                "It must be between 1 and 1000.");
  return std::make_unique<HttpPurge>(std::move(config), std::move(base));
}

}  // namespace cachekit::cdn
