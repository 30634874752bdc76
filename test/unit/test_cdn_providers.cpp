#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cdn_provider.h"
#include "core/cdn_rest.h"
#include "core/error.h"
#include "core/host_allowlist.h"
#include "core/http_request.h"

extern char **environ;

namespace cachekit::cdn {
namespace {

using rest::Json;

// A transport that records every call and answers each request with what
// `answer` says (by default 200 with `default_body`).
struct FakeTransport {
  std::vector<std::vector<HttpRequest>> calls;
  std::function<HttpExchange(const HttpRequest &, std::size_t index)> answer;
  std::string default_body = "{\"status\": \"ok\", \"id\": \"1-2-3\"}";

  Transport transport() {
    return [this](const std::vector<HttpRequest> &reqs) {
      calls.push_back(reqs);
      std::vector<HttpExchange> out;
      for (std::size_t i = 0; i < reqs.size(); ++i) {
        if (answer) {
          out.push_back(answer(reqs[i], i));
        } else {
          HttpExchange x;
          x.response.status = 200;
          x.response.body = default_body;
          out.push_back(x);
        }
      }
      return out;
    };
  }

  std::vector<HttpRequest> all() const {
    std::vector<HttpRequest> out;
    for (const auto &c : calls) out.insert(out.end(), c.begin(), c.end());
    return out;
  }
};

HttpExchange status(long code, std::string body = {},
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
  HttpExchange x;
  x.response.status = code;
  x.response.body = std::move(body);
  x.response.headers = std::move(headers);
  return x;
}

HttpExchange failure(const char *state, const char *message) {
  HttpExchange x;
  x.failed = true;
  x.sqlstate = state;
  x.message = message;
  return x;
}

std::string header(const HttpRequest &r, const std::string &name) {
  for (const auto &h : r.headers)
    if (h.first == name) return h.second;
  return "<absent>";
}

Batch batch(PurgeKind kind, std::vector<std::string> items) {
  Batch b;
  b.id = 7;
  b.kind = kind;
  b.items = std::move(items);
  b.caller_reference = "cachekit-7";
  return b;
}

// The error a make_* call throws; fails the test when it throws none.
Error config_error(const std::function<void()> &make) {
  try {
    make();
  } catch (const Error &e) {
    return e;
  }
  ADD_FAILURE() << "no error thrown";
  return Error("00000", "");
}

void expect_no_secret(const Error &e, const std::string &secret) {
  EXPECT_EQ(std::string(e.what()).find(secret), std::string::npos) << e.what();
  EXPECT_EQ(e.detail().find(secret), std::string::npos) << e.detail();
  EXPECT_EQ(e.hint().find(secret), std::string::npos) << e.hint();
}

std::vector<std::string> numbered(const std::string &prefix, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// The strings of a JSON array member.
std::vector<std::string> strings_of(const std::string &body, const char *member) {
  Json doc;
  EXPECT_TRUE(rest::parse_json(body, doc)) << body;
  std::vector<std::string> out;
  const Json *arr = doc.get(member);
  EXPECT_TRUE(arr != nullptr && arr->type == Json::Type::kArray) << body;
  if (arr == nullptr) return out;
  for (const Json &v : arr->array) out.push_back(v.string);
  return out;
}

// ---------------------------------------------------------------- rest helpers

TEST(CdnRest, ParsesJsonAnswers) {
  Json doc;
  ASSERT_TRUE(rest::parse_json(
      R"( {"success": false, "errors": [{"code": 10000, "message": "Auth \"x\"\n\u00e9\ud83d\ude00"}],
           "n": -1.5e2, "t": true, "z": null, "o": {}} )",
      doc));
  EXPECT_FALSE(doc.get("success")->boolean);
  const Json &err = doc.get("errors")->array.at(0);
  EXPECT_EQ(err.get("code")->string, "10000");
  EXPECT_EQ(err.get("code")->number, 10000);
  EXPECT_EQ(err.get("message")->string, "Auth \"x\"\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(doc.get("n")->number, -150);
  EXPECT_TRUE(doc.get("t")->boolean);
  EXPECT_EQ(doc.get("z")->type, Json::Type::kNull);
  EXPECT_EQ(doc.get("o")->type, Json::Type::kObject);
  EXPECT_EQ(doc.get("missing"), nullptr);

  for (const char *bad : {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1}x", "\"\x01\"", "01x", "tru",
                          "{\"a\":\"\\q\"}", "<html>502 Bad Gateway</html>"})
    EXPECT_FALSE(rest::parse_json(bad, doc)) << bad;
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(rest::parse_json(deep, doc)) << "nesting is bounded";
}

TEST(CdnRest, ExcerptsRedactSecretsAndStayShort) {
  EXPECT_EQ(rest::excerpt("bad\r\n  token  s3cr3t here", {"s3cr3t"}), "bad token [redacted] here");
  const std::string long_body(1000, 'x');
  const std::string e = rest::excerpt(long_body, {}, 50);
  EXPECT_EQ(e, std::string(50, 'x') + "...");
  // Never cut inside a UTF-8 sequence.
  std::string accents;
  for (int i = 0; i < 40; ++i) accents += "\xc3\xa9";
  const std::string cut = rest::excerpt(accents, {}, 51);
  EXPECT_EQ(cut, accents.substr(0, 50) + "...");
}

TEST(CdnRest, BaseUrls) {
  auto u = rest::parse_base_url("HTTPS://www.example.com:8443/shop/", "s", false);
  EXPECT_EQ(u.scheme, "https");
  EXPECT_EQ(u.authority, "www.example.com:8443");
  EXPECT_EQ(u.path, "/shop");
  EXPECT_EQ(u.text(), "https://www.example.com:8443/shop");
  EXPECT_EQ(rest::parse_base_url("http://[::1]:6081", "s", false).authority, "[::1]:6081");
  EXPECT_EQ(rest::parse_base_url("http://127.0.0.1", "s", false).path, "");
  for (const char *bad : {"", "www.example.com", "ftp://x", "http://", "http://user:pw@host/",
                          "http://h:0", "http://h:99999", "http://h:x", "http://h/?q=1",
                          "http://h/#f", "http://h/a b", "http://bad_host!/", "http://[::1/"}) {
    Error e = config_error([&] { rest::parse_base_url(bad, "cachekit.some_url", false); });
    EXPECT_STREQ(e.sqlstate(), "22023") << bad;
    EXPECT_STREQ(e.what(), "invalid cachekit.some_url") << bad;
  }
  Error e = config_error([] { rest::parse_base_url("http://api.example.com", "x", true); });
  EXPECT_NE(e.detail().find("https"), std::string::npos);
}

// ---------------------------------------------------------------------- Fastly

FastlyConfig fastly_config() {
  FastlyConfig c;
  c.endpoint = "https://127.0.0.1:4443/";
  c.service_id = "SU1Z0isxPaozGVKXdv0eY";
  c.api_token = "fastly-secret-token";
  c.base_url = "https://www.example.com";
  c.common.timeout_ms = 1234;
  c.common.ca_file = "/tmp/ca.pem";
  return c;
}

TEST(CdnFastly, ConfigurationErrorsNameTheSettingNeverTheToken) {
  struct Case {
    std::function<void(FastlyConfig &)> change;
    const char *setting;
  };
  const std::vector<Case> cases = {
      {[](FastlyConfig &c) { c.service_id.clear(); }, "cachekit.cdn_fastly_service_id"},
      {[](FastlyConfig &c) { c.service_id = "a/../b"; }, "cachekit.cdn_fastly_service_id"},
      {[](FastlyConfig &c) { c.api_token.clear(); }, "cachekit.cdn_fastly_api_token_file"},
      {[](FastlyConfig &c) { c.api_token = "fastly-secret-token\r\nX-Evil: 1"; },
       "cachekit.cdn_fastly_api_token_file"},
      {[](FastlyConfig &c) { c.base_url = "www.example.com"; }, "cachekit.cdn_base_url"},
      {[](FastlyConfig &c) { c.base_url.clear(); }, "cachekit.cdn_base_url"},
      {[](FastlyConfig &c) { c.endpoint = "http://api.fastly.com"; },
       "cachekit.cdn_fastly_endpoint"},
  };
  for (const Case &k : cases) {
    FastlyConfig c = fastly_config();
    k.change(c);
    Error e = config_error([&] { make_fastly(c); });
    EXPECT_STREQ(e.sqlstate(), "22023") << k.setting;
    EXPECT_NE(std::string(e.what()).find(k.setting), std::string::npos) << e.what();
    expect_no_secret(e, "fastly-secret-token");
  }
  EXPECT_NO_THROW(make_fastly(fastly_config()));
}

TEST(CdnFastly, Limits) {
  auto p = make_fastly(fastly_config());
  EXPECT_STREQ(p->name(), "fastly");
  const Limits l = p->limits();
  EXPECT_EQ(l.max_items_per_batch, 256u);
  EXPECT_TRUE(l.supports_tags);
  EXPECT_FALSE(l.supports_wildcards);
  EXPECT_TRUE(l.supports_all);
  EXPECT_EQ(l.max_in_progress_paths, 0u);
}

TEST(CdnFastly, PathsArePurgedOneRequestEachInOneTransportCall) {
  FastlyConfig c = fastly_config();
  c.base_url = "https://www.example.com:8443/shop/";
  auto p = make_fastly(c);
  FakeTransport t;
  const SendResult r =
      p->send(batch(PurgeKind::kPaths, {"/img/a.png", "/search?q=a%20b", "/"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.api_calls, 3);
  EXPECT_TRUE(r.reachable);
  EXPECT_EQ(r.provider_id, "1-2-3");
  ASSERT_EQ(t.calls.size(), 1u) << "one transport call: the transport runs them in parallel";
  const auto &reqs = t.calls[0];
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].url, "https://127.0.0.1:4443/purge/www.example.com:8443/shop/img/a.png");
  EXPECT_EQ(reqs[1].url, "https://127.0.0.1:4443/purge/www.example.com:8443/shop/search?q=a%20b");
  EXPECT_EQ(reqs[2].url, "https://127.0.0.1:4443/purge/www.example.com:8443/shop/");
  for (const auto &req : reqs) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(header(req, "Fastly-Key"), "fastly-secret-token");
    EXPECT_EQ(header(req, "Accept"), "application/json");
    EXPECT_EQ(header(req, "Fastly-Soft-Purge"), "<absent>");
    EXPECT_EQ(req.timeout_ms, 1234);
    EXPECT_EQ(req.ca_file, "/tmp/ca.pem");
  }
}

TEST(CdnFastly, SoftPurgeHeaderOnPathsAndKeysButNotOnPurgeAll) {
  FastlyConfig c = fastly_config();
  c.soft_purge = true;
  auto p = make_fastly(c);
  FakeTransport t;
  p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  t.default_body = "{\"k\": \"108-1\"}";
  p->send(batch(PurgeKind::kTags, {"k"}), t.transport());
  t.default_body = "{\"status\": \"ok\"}";
  const SendResult all = p->send(batch(PurgeKind::kAll, {}), t.transport());
  ASSERT_EQ(t.calls.size(), 3u);
  EXPECT_EQ(header(t.calls[0][0], "Fastly-Soft-Purge"), "1");
  EXPECT_EQ(header(t.calls[1][0], "Fastly-Soft-Purge"), "1");
  EXPECT_EQ(header(t.calls[2][0], "Fastly-Soft-Purge"), "<absent>");
  EXPECT_EQ(t.calls[2][0].url, "https://127.0.0.1:4443/service/SU1Z0isxPaozGVKXdv0eY/purge_all");
  EXPECT_EQ(header(t.calls[2][0], "Fastly-Key"), "fastly-secret-token");
  EXPECT_EQ(all.outcome, Outcome::kCompleted);
  EXPECT_EQ(all.api_calls, 1);
}

TEST(CdnFastly, SurrogateKeysGoInBulkCallsOfAtMost256) {
  auto p = make_fastly(fastly_config());
  FakeTransport t;
  t.default_body = "{\"key0\": \"108-1\", \"key1\": \"108-2\"}";
  const std::vector<std::string> keys = numbered("key", 300);
  const SendResult r = p->send(batch(PurgeKind::kTags, keys), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.api_calls, 2);
  EXPECT_EQ(r.provider_id, "108-1");
  ASSERT_EQ(t.calls.size(), 1u);
  ASSERT_EQ(t.calls[0].size(), 2u);
  std::vector<std::string> sent;
  for (const auto &req : t.calls[0]) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(req.url, "https://127.0.0.1:4443/service/SU1Z0isxPaozGVKXdv0eY/purge");
    EXPECT_EQ(header(req, "Content-Type"), "application/json");
    EXPECT_EQ(header(req, "Accept"), "application/json");
    const auto part = strings_of(req.body, "surrogate_keys");
    EXPECT_LE(part.size(), 256u);
    sent.insert(sent.end(), part.begin(), part.end());
  }
  EXPECT_EQ(t.calls[0][0].body.find("\"surrogate_keys\""), 1u);
  EXPECT_EQ(sent, keys);
}

TEST(CdnFastly, RefusesWildcardsAndBadKeysWithoutSending) {
  auto p = make_fastly(fastly_config());
  FakeTransport t;
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/a", "/img/*"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find("wildcard"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("/img/*"), std::string::npos) << r.error;
  EXPECT_EQ(r.api_calls, 0);
  r = p->send(batch(PurgeKind::kTags, {"ok", "two words"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find("two words"), std::string::npos) << r.error;
  EXPECT_TRUE(t.calls.empty());
}

TEST(CdnFastly, ClassifiesAnswers) {
  auto p = make_fastly(fastly_config());
  FakeTransport t;
  // 401: fails with Fastly's message, never the token.
  t.answer = [](const HttpRequest &, std::size_t) {
    return status(401, "{\"msg\":\"Provided credentials are missing or invalid\"}");
  };
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/a", "/b"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find("HTTP 401: Provided credentials are missing or invalid"),
            std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("purge of /a"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("1 more"), std::string::npos) << r.error;
  EXPECT_TRUE(r.reachable);

  // One 503 with Retry-After among successes: retry the batch.
  t.answer = [](const HttpRequest &, std::size_t i) {
    return i == 1 ? status(503, "busy", {{"retry-after", "7"}}) : status(200, "{}");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a", "/b", "/c"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_DOUBLE_EQ(r.retry_after_s, 7);
  EXPECT_FALSE(r.throttled);
  EXPECT_EQ(r.error, "purge of /b: fastly answered HTTP 503: busy");
  t.answer = [](const HttpRequest &, std::size_t) { return status(502); };
  r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.error, "purge of /a: fastly answered HTTP 502");
  EXPECT_DOUBLE_EQ(r.retry_after_s, -1);

  // 429: throttled.
  t.answer = [](const HttpRequest &, std::size_t) { return status(429, "{\"msg\":\"slow\"}"); };
  r = p->send(batch(PurgeKind::kAll, {}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_TRUE(r.throttled);

  // Refused with the API rate limit used up: throttling, not a failure.
  t.answer = [](const HttpRequest &, std::size_t) {
    return status(403, "{\"msg\":\"API rate limit exceeded\"}",
                  {{"Fastly-RateLimit-Remaining", "0"}});
  };
  r = p->send(batch(PurgeKind::kTags, {"k"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_TRUE(r.throttled);

  // A failure for good wins over a retry: retrying cannot fix it.
  t.answer = [](const HttpRequest &, std::size_t i) {
    return i == 0 ? status(503) : status(404, "{\"msg\":\"Record not found\",\"detail\":\"x\"}");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a", "/b"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find("Record not found (x)"), std::string::npos) << r.error;

  // Connection failures: retry, unreachable.
  t.answer = [](const HttpRequest &, std::size_t) {
    return failure("08001", "could not connect to api.fastly.com");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_FALSE(r.reachable);
  EXPECT_EQ(r.api_calls, 1);

  // A host the allow-list refuses never becomes reachable by retrying.
  t.answer = [](const HttpRequest &, std::size_t) {
    return failure("42501", "host is not allowed");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);

  // A token echoed back by the server is not repeated.
  t.answer = [](const HttpRequest &, std::size_t) {
    return status(400, "bad key fastly-secret-token given");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error.find("fastly-secret-token"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("[redacted]"), std::string::npos) << r.error;
}

TEST(CdnFastly, ATransportThatThrowsOrMiscountsMeansRetry) {
  auto p = make_fastly(fastly_config());
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/a"}),
                         [](const std::vector<HttpRequest> &) -> std::vector<HttpExchange> {
                           throw std::runtime_error("curl_multi_perform failed");
                         });
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_NE(r.error.find("curl_multi_perform failed"), std::string::npos);
  r = p->send(batch(PurgeKind::kPaths, {"/a", "/b"}),
              [](const std::vector<HttpRequest> &) { return std::vector<HttpExchange>(1); });
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_NE(r.error.find("1 of 2"), std::string::npos) << r.error;
}

// ------------------------------------------------------------------ Cloudflare

CloudflareConfig cloudflare_config() {
  CloudflareConfig c;
  c.endpoint = "https://127.0.0.1:4444/client/v4";
  c.zone_id = "023e105f4ecef8ad9ca31a8372d0c353";
  c.api_token = "cf-secret-token";
  c.base_url = "https://www.example.com";
  return c;
}

const char kCloudflareOk[] =
    R"({"success": true, "errors": [], "messages": [], "result": {"id": "purge-1"}})";

TEST(CdnCloudflare, ConfigurationErrorsNameTheSettingNeverTheToken) {
  struct Case {
    std::function<void(CloudflareConfig &)> change;
    const char *setting;
  };
  const std::vector<Case> cases = {
      {[](CloudflareConfig &c) { c.zone_id.clear(); }, "cachekit.cdn_cloudflare_zone_id"},
      {[](CloudflareConfig &c) { c.zone_id = "zone?x=1"; }, "cachekit.cdn_cloudflare_zone_id"},
      {[](CloudflareConfig &c) { c.api_token.clear(); }, "cachekit.cdn_cloudflare_api_token_file"},
      {[](CloudflareConfig &c) { c.api_token = "cf-secret-token\n"; },
       "cachekit.cdn_cloudflare_api_token_file"},
      {[](CloudflareConfig &c) { c.base_url = "https://user:cf-secret-token@x/"; },
       "cachekit.cdn_base_url"},
      {[](CloudflareConfig &c) { c.endpoint = "http://api.cloudflare.com"; },
       "cachekit.cdn_cloudflare_endpoint"},
  };
  for (const Case &k : cases) {
    CloudflareConfig c = cloudflare_config();
    k.change(c);
    Error e = config_error([&] { make_cloudflare(c); });
    EXPECT_STREQ(e.sqlstate(), "22023") << k.setting;
    EXPECT_NE(std::string(e.what()).find(k.setting), std::string::npos) << e.what();
    expect_no_secret(e, "cf-secret-token");
  }
}

TEST(CdnCloudflare, Limits) {
  auto p = make_cloudflare(cloudflare_config());
  EXPECT_STREQ(p->name(), "cloudflare");
  const Limits l = p->limits();
  EXPECT_EQ(l.max_items_per_batch, 100u);
  EXPECT_TRUE(l.supports_tags);
  EXPECT_TRUE(l.supports_wildcards);
  EXPECT_TRUE(l.supports_all);
}

TEST(CdnCloudflare, FilesAndPrefixesGoInSeparateRequests) {
  CloudflareConfig c = cloudflare_config();
  c.base_url = "https://www.example.com/shop";
  auto p = make_cloudflare(c);
  FakeTransport t;
  t.default_body = kCloudflareOk;
  const SendResult r =
      p->send(batch(PurgeKind::kPaths, {"/img/a.png", "/css/*", "/q?x=1", "/*"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.provider_id, "purge-1");
  EXPECT_EQ(r.api_calls, 2);
  ASSERT_EQ(t.calls.size(), 1u);
  ASSERT_EQ(t.calls[0].size(), 2u);
  for (const auto &req : t.calls[0]) {
    EXPECT_EQ(req.method, "POST");
    EXPECT_EQ(
        req.url,
        "https://127.0.0.1:4444/client/v4/zones/023e105f4ecef8ad9ca31a8372d0c353/purge_cache");
    EXPECT_EQ(header(req, "Authorization"), "Bearer cf-secret-token");
    EXPECT_EQ(header(req, "Content-Type"), "application/json");
  }
  EXPECT_EQ(strings_of(t.calls[0][0].body, "files"),
            (std::vector<std::string>{"https://www.example.com/shop/img/a.png",
                                      "https://www.example.com/shop/q?x=1"}));
  EXPECT_EQ(strings_of(t.calls[0][1].body, "prefixes"),
            (std::vector<std::string>{"www.example.com/shop/css/", "www.example.com/shop/"}));
}

TEST(CdnCloudflare, AtMost100ItemsPerRequest) {
  auto p = make_cloudflare(cloudflare_config());
  FakeTransport t;
  t.default_body = kCloudflareOk;
  const auto paths = numbered("/p", 250);
  SendResult r = p->send(batch(PurgeKind::kPaths, paths), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted);
  EXPECT_EQ(r.api_calls, 3);
  std::vector<std::string> files;
  for (const auto &req : t.all()) {
    const auto part = strings_of(req.body, "files");
    EXPECT_LE(part.size(), 100u);
    files.insert(files.end(), part.begin(), part.end());
  }
  ASSERT_EQ(files.size(), 250u);
  EXPECT_EQ(files[249], "https://www.example.com/p249");

  t.calls.clear();
  r = p->send(batch(PurgeKind::kTags, numbered("t", 101)), t.transport());
  EXPECT_EQ(r.api_calls, 2);
  EXPECT_EQ(strings_of(t.all()[1].body, "tags"), std::vector<std::string>{"t100"});

  t.calls.clear();
  r = p->send(batch(PurgeKind::kAll, {}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted);
  ASSERT_EQ(t.all().size(), 1u);
  Json doc;
  ASSERT_TRUE(rest::parse_json(t.all()[0].body, doc));
  ASSERT_EQ(doc.object.size(), 1u);
  EXPECT_TRUE(doc.get("purge_everything")->boolean);
}

TEST(CdnCloudflare, RefusesPrefixesItCannotPurge) {
  auto p = make_cloudflare(cloudflare_config());
  FakeTransport t;
  for (const char *bad : {"/img*", "/a?b/*"}) {
    const SendResult r = p->send(batch(PurgeKind::kPaths, {"/ok", bad}), t.transport());
    EXPECT_EQ(r.outcome, Outcome::kFailed) << bad;
    EXPECT_NE(r.error.find(bad), std::string::npos) << r.error;
  }
  std::string deep;
  for (int i = 0; i < 31; ++i) deep += "/d";
  EXPECT_EQ(p->send(batch(PurgeKind::kPaths, {deep + "/*"}), t.transport()).outcome,
            Outcome::kFailed)
      << "32 separators";
  EXPECT_EQ(p->send(batch(PurgeKind::kTags, {"a,b"}), t.transport()).outcome, Outcome::kFailed);
  EXPECT_TRUE(t.calls.empty());
  t.default_body = kCloudflareOk;
  EXPECT_EQ(p->send(batch(PurgeKind::kPaths, {deep.substr(2) + "/*"}), t.transport()).outcome,
            Outcome::kCompleted)
      << "31 separators";
}

TEST(CdnCloudflare, ClassifiesAnswers) {
  auto p = make_cloudflare(cloudflare_config());
  FakeTransport t;
  t.answer = [](const HttpRequest &, std::size_t) {
    return status(403,
                  R"({"success":false,"errors":[{"code":10000,"message":"Authentication error"}],
                          "messages":[],"result":null})");
  };
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find("HTTP 403: error 10000 Authentication error"), std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.find("cf-secret-token"), std::string::npos);

  t.answer = [](const HttpRequest &, std::size_t) {
    return status(429, R"({"success":false,"errors":[{"code":971,"message":"throttled"}]})",
                  {{"Retry-After", "30"}});
  };
  r = p->send(batch(PurgeKind::kTags, {"t"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_TRUE(r.throttled);
  EXPECT_DOUBLE_EQ(r.retry_after_s, 30);

  t.answer = [](const HttpRequest &, std::size_t) {
    return status(502, "<html>bad gateway</html>");
  };
  r = p->send(batch(PurgeKind::kAll, {}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry);
  EXPECT_NE(r.error.find("bad gateway"), std::string::npos) << r.error;

  // A 2xx that does not say success purged nothing we can rely on.
  for (const char *body :
       {R"({"success": false, "errors": [{"code": 1, "message": "m"}]})", "not json", "{}"}) {
    t.answer = [&](const HttpRequest &, std::size_t) { return status(200, body); };
    r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
    EXPECT_EQ(r.outcome, Outcome::kFailed) << body;
  }
}

// -------------------------------------------------------------------- HTTP

HttpPurgeConfig http_config(const char *method) {
  HttpPurgeConfig c;
  c.purge_url_base = "http://127.0.0.1:6081";
  c.method = method;
  c.headers = {{"Host", "www.example.com"}, {"X-Purge-Secret", "purge-secret-value"}};
  return c;
}

TEST(CdnHttpPurge, ConfigurationErrors) {
  struct Case {
    std::function<void(HttpPurgeConfig &)> change;
    const char *setting;
  };
  const std::vector<Case> cases = {
      {[](HttpPurgeConfig &c) { c.purge_url_base.clear(); }, "cachekit.cdn_http_purge_url"},
      {[](HttpPurgeConfig &c) { c.purge_url_base = "gopher://x"; }, "cachekit.cdn_http_purge_url"},
      {[](HttpPurgeConfig &c) { c.method = "DELETE"; }, "cachekit.cdn_http_method"},
      {[](HttpPurgeConfig &c) {
         c.headers = {{"X-Purge-Secret", "purge-secret-value\r\nX: y"}};
       },
       "cachekit.cdn_http_headers"},
      {[](HttpPurgeConfig &c) {
         c.headers = {{"Bad Name", "purge-secret-value"}};
       },
       "cachekit.cdn_http_headers"},
      {[](HttpPurgeConfig &c) { c.max_parallel = 0; }, "max_parallel"},
  };
  for (const Case &k : cases) {
    HttpPurgeConfig c = http_config("PURGE");
    k.change(c);
    Error e = config_error([&] { make_http_purge(c); });
    EXPECT_STREQ(e.sqlstate(), "22023") << k.setting;
    EXPECT_NE(std::string(e.what()).find(k.setting), std::string::npos) << e.what();
    expect_no_secret(e, "purge-secret-value");
  }
  EXPECT_NO_THROW(make_http_purge(http_config("ban"))) << "the method is case-insensitive";
}

TEST(CdnHttpPurge, LimitsDependOnTheMethod) {
  const Limits purge = make_http_purge(http_config("PURGE"))->limits();
  EXPECT_EQ(purge.max_items_per_batch, 100u);
  EXPECT_FALSE(purge.supports_tags);
  EXPECT_FALSE(purge.supports_wildcards);
  EXPECT_FALSE(purge.supports_all);
  const Limits ban = make_http_purge(http_config("BAN"))->limits();
  EXPECT_TRUE(ban.supports_tags);
  EXPECT_TRUE(ban.supports_wildcards);
  EXPECT_TRUE(ban.supports_all);
  EXPECT_STREQ(make_http_purge(http_config("BAN"))->name(), "http");
}

TEST(CdnHttpPurge, PurgeSendsOneRequestPerPath) {
  HttpPurgeConfig c = http_config("PURGE");
  c.purge_url_base = "http://127.0.0.1:6081/site/";
  auto p = make_http_purge(c);
  FakeTransport t;
  t.answer = [](const HttpRequest &, std::size_t i) { return status(i == 1 ? 404 : 200); };
  const SendResult r = p->send(batch(PurgeKind::kPaths, {"/a", "/b?x=1", "/c"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << "404 to a PURGE: not cached, as wanted";
  EXPECT_EQ(r.api_calls, 3);
  ASSERT_EQ(t.calls.size(), 1u);
  ASSERT_EQ(t.calls[0].size(), 3u);
  EXPECT_EQ(t.calls[0][1].url, "http://127.0.0.1:6081/site/b?x=1");
  for (const auto &req : t.calls[0]) {
    EXPECT_EQ(req.method, "PURGE");
    EXPECT_EQ(header(req, "Host"), "www.example.com");
    EXPECT_EQ(header(req, "X-Purge-Secret"), "purge-secret-value");
    EXPECT_EQ(header(req, "X-Ban-Prefix"), "<absent>");
  }
}

TEST(CdnHttpPurge, PurgeCannotDoWildcardsTagsOrEverything) {
  auto p = make_http_purge(http_config("PURGE"));
  FakeTransport t;
  for (const Batch &b : {batch(PurgeKind::kPaths, {"/a", "/img/*"}), batch(PurgeKind::kTags, {"t"}),
                         batch(PurgeKind::kAll, {})}) {
    const SendResult r = p->send(b, t.transport());
    EXPECT_EQ(r.outcome, Outcome::kFailed);
    EXPECT_NE(r.error.find("BAN"), std::string::npos) << r.error;
  }
  EXPECT_TRUE(t.calls.empty());
}

TEST(CdnHttpPurge, BanConvention) {
  auto p = make_http_purge(http_config("ban"));
  FakeTransport t;
  EXPECT_EQ(p->send(batch(PurgeKind::kPaths, {"/a.png", "/img/*", "/*"}), t.transport()).outcome,
            Outcome::kCompleted);
  EXPECT_EQ(p->send(batch(PurgeKind::kTags, {"product-42", "t2"}), t.transport()).outcome,
            Outcome::kCompleted);
  EXPECT_EQ(p->send(batch(PurgeKind::kAll, {}), t.transport()).outcome, Outcome::kCompleted);
  const auto reqs = t.all();
  ASSERT_EQ(reqs.size(), 6u);
  for (const auto &req : reqs) EXPECT_EQ(req.method, "BAN");
  EXPECT_EQ(reqs[0].url, "http://127.0.0.1:6081/a.png");
  EXPECT_EQ(header(reqs[0], "X-Ban-Prefix"), "<absent>");
  EXPECT_EQ(reqs[1].url, "http://127.0.0.1:6081/img/");
  EXPECT_EQ(header(reqs[1], "X-Ban-Prefix"), "1");
  EXPECT_EQ(reqs[2].url, "http://127.0.0.1:6081/");
  EXPECT_EQ(header(reqs[2], "X-Ban-Prefix"), "1");
  EXPECT_EQ(reqs[3].url, "http://127.0.0.1:6081/");
  EXPECT_EQ(header(reqs[3], "X-Purge-Tag"), "product-42");
  EXPECT_EQ(header(reqs[3], "X-Ban-Prefix"), "<absent>");
  EXPECT_EQ(header(reqs[4], "X-Purge-Tag"), "t2");
  EXPECT_EQ(reqs[5].url, "http://127.0.0.1:6081/");
  EXPECT_EQ(header(reqs[5], "X-Ban-Prefix"), "1");
  EXPECT_EQ(header(reqs[5], "X-Purge-Tag"), "<absent>");
  EXPECT_EQ(p->send(batch(PurgeKind::kTags, {"a b"}), t.transport()).outcome, Outcome::kFailed);
}

TEST(CdnHttpPurge, ClassifiesAnswersPerPath) {
  auto p = make_http_purge(http_config("BAN"));
  FakeTransport t;
  // 404 to a BAN is not "already gone": the URL is wrong.
  t.answer = [](const HttpRequest &, std::size_t) { return status(404, "no"); };
  EXPECT_EQ(p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport()).outcome, Outcome::kFailed);

  t.answer = [](const HttpRequest &, std::size_t i) {
    return i == 2 ? status(405,
                           "<!DOCTYPE html>\n<html>\n  <head>\n    <title>405 Not allowed</title>"
                           "\n  </head><body>purge-secret-value</body></html>")
                  : status(204);
  };
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/a", "/b", "/c"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "BAN /c answered HTTP 405: 405 Not allowed");

  t.answer = [](const HttpRequest &, std::size_t i) {
    if (i == 0) return failure("57014", "http request timed out");
    if (i == 1) return status(503, "<html>purge-secret-value</html>", {{"Retry-After", "3"}});
    return status(200);
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a", "/b", "/c"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kRetry) << "some paths need another attempt: resend the batch";
  EXPECT_TRUE(r.reachable);
  EXPECT_DOUBLE_EQ(r.retry_after_s, 3);
  EXPECT_NE(r.error.find("BAN /a http request timed out"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("1 more"), std::string::npos) << r.error;

  t.answer = [](const HttpRequest &, std::size_t) {
    return status(403, "denied: purge-secret-value");
  };
  r = p->send(batch(PurgeKind::kPaths, {"/a"}), t.transport());
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "BAN /a answered HTTP 403: denied: [redacted]");
}

// ------------------------------ the providers against test/cdn/fake_cdn_api.py

// Runs argv with stdout to `out` (or /dev/null); returns the pid, or -1.
pid_t spawn(const std::vector<std::string> &argv, const std::string &out = "/dev/null") {
  std::vector<char *> args;
  for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

int run(const std::vector<std::string> &argv) {
  const pid_t pid = spawn(argv);
  if (pid < 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const std::filesystem::path &path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The worker's transport, one request after another (perform_http_many runs
// them in parallel; the wire format is the same).
std::vector<HttpExchange> loopback_transport(const std::vector<HttpRequest> &reqs) {
  static const HostAllowList allow = HostAllowList::parse("loopback");
  std::vector<HttpExchange> out;
  for (const HttpRequest &req : reqs) {
    HttpExchange x;
    try {
      x.response = perform_http(req, allow, 1 << 20);
    } catch (const Error &e) {
      x.failed = true;
      x.sqlstate = e.sqlstate();
      x.message = e.what();
      x.detail = e.detail();
    }
    out.push_back(std::move(x));
  }
  return out;
}

class FakeApi : public ::testing::TestWithParam<const char *> {
 protected:
  void SetUp() override {
    const std::filesystem::path cdn =
        std::filesystem::path(__FILE__).parent_path().parent_path() / "cdn";
    if (access("/usr/bin/python3", X_OK) != 0 || access("/usr/bin/openssl", X_OK) != 0)
      GTEST_SKIP() << "needs /usr/bin/python3 and /usr/bin/openssl";
    char tmpl[] = "/tmp/ckcdnfake-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(run({"/bin/bash", (cdn / "make_test_ca.sh").string(), dir_.string()}), 0);
    ca_ = (dir_ / "ca.pem").string();
    pid_ = spawn(
        {"/usr/bin/python3", (cdn / "fake_cdn_api.py").string(), "--api", GetParam(), "--cert",
         (dir_ / "server.pem").string(), "--key", (dir_ / "server-key.pem").string(), "--token",
         "fake-good-token", "--id", "svc1", "--id", "zone1", "--port", "0"},
        (dir_ / "out").string());
    ASSERT_GT(pid_, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      const std::string out = slurp(dir_ / "out");
      if (out.rfind("PORT ", 0) == 0 && out.find('\n') != std::string::npos) {
        endpoint_ = "https://127.0.0.1:" + out.substr(5, out.find('\n') - 5);
        break;
      }
      int status;
      ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0) << "the fake exited";
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the fake did not start";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Json control(const char *method, const std::string &path, const std::string &body = {}) {
    HttpRequest r;
    r.method = method;
    r.url = endpoint_ + path;
    r.body = body;
    r.ca_file = ca_;
    const HttpResponse resp = perform_http(r, HostAllowList::parse("loopback"), 1 << 22);
    Json doc;
    EXPECT_EQ(resp.status, 200) << resp.body;
    EXPECT_TRUE(rest::parse_json(resp.body, doc)) << resp.body;
    return doc;
  }

  // "kind:item" for everything the fake accepted, in order.
  std::vector<std::string> purged() {
    std::vector<std::string> out;
    const Json state = control("GET", "/_fake/state");
    for (const Json &p : state.get("purged")->array)
      out.push_back(p.get("kind")->string + ":" + p.get("item")->string);
    return out;
  }

  std::unique_ptr<Provider> provider(const std::string &token = "fake-good-token",
                                     bool with_ca = true) {
    if (std::string(GetParam()) == "fastly") {
      FastlyConfig c;
      c.endpoint = endpoint_;
      c.service_id = "svc1";
      c.api_token = token;
      c.base_url = "https://www.example.com";
      c.common.ca_file = with_ca ? ca_ : "";
      c.common.timeout_ms = 10000;
      return make_fastly(c);
    }
    CloudflareConfig c;
    c.endpoint = endpoint_ + "/client/v4";
    c.zone_id = "zone1";
    c.api_token = token;
    c.base_url = "https://www.example.com";
    c.common.ca_file = with_ca ? ca_ : "";
    c.common.timeout_ms = 10000;
    return make_cloudflare(c);
  }

  bool fastly() const { return std::string(GetParam()) == "fastly"; }

  std::filesystem::path dir_;
  std::string ca_, endpoint_;
  pid_t pid_ = -1;
};

TEST_P(FakeApi, PurgesReachTheApiAsItExpectsThem) {
  auto p = provider();
  SendResult r = p->send(batch(PurgeKind::kPaths, {"/img/a.png", "/b?x=1"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_FALSE(r.provider_id.empty());
  EXPECT_TRUE(r.reachable);
  r = p->send(batch(PurgeKind::kTags, numbered("k", 300)), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_EQ(r.api_calls, fastly() ? 2 : 3);
  r = p->send(batch(PurgeKind::kAll, {}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;

  const auto got = purged();
  ASSERT_EQ(got.size(), 303u);
  if (fastly()) {
    EXPECT_EQ(got[0], "url:www.example.com/img/a.png");
    EXPECT_EQ(got[1], "url:www.example.com/b?x=1");
    EXPECT_EQ(got[2], "key:k0");
    EXPECT_EQ(got[301], "key:k299");
    EXPECT_EQ(got[302], "all:svc1");
  } else {
    EXPECT_EQ(got[0], "files:https://www.example.com/img/a.png");
    EXPECT_EQ(got[1], "files:https://www.example.com/b?x=1");
    EXPECT_EQ(got[2], "tags:k0");
    EXPECT_EQ(got[302], "purge_everything:zone1");
    r = p->send(batch(PurgeKind::kPaths, {"/css/*", "/x"}), loopback_transport);
    EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
    const auto more = purged();
    EXPECT_EQ(more.at(303), "files:https://www.example.com/x");
    EXPECT_EQ(more.at(304), "prefixes:www.example.com/css/");
  }
}

TEST_P(FakeApi, AWrongTokenFailsWithTheApisMessage) {
  const SendResult r =
      provider("fake-bad-token")->send(batch(PurgeKind::kPaths, {"/a"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.error.find(fastly() ? "HTTP 401: Provided credentials are missing or invalid"
                                  : "HTTP 403: error 10000 Authentication error"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(r.error.find("fake-bad-token"), std::string::npos);
  EXPECT_TRUE(purged().empty());
}

TEST_P(FakeApi, ThrottlingAndOutagesAreRetried) {
  auto p = provider();
  control("POST", "/_fake/fail", R"({"status": 429, "count": 1, "retry_after": 4})");
  SendResult r = p->send(batch(PurgeKind::kAll, {}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kRetry) << r.error;
  EXPECT_TRUE(r.throttled);
  EXPECT_DOUBLE_EQ(r.retry_after_s, 4);
  control("POST", "/_fake/fail", R"({"status": 503, "count": 1})");
  r = p->send(batch(PurgeKind::kTags, {"t"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kRetry) << r.error;
  EXPECT_FALSE(r.throttled);
  r = p->send(batch(PurgeKind::kTags, {"t"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  EXPECT_EQ(purged().size(), 1u);
}

TEST_P(FakeApi, TlsIsVerified) {
  const SendResult r =
      provider("fake-good-token", false)->send(batch(PurgeKind::kAll, {}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kRetry) << "the system's CAs do not know the test CA";
  EXPECT_FALSE(r.reachable);
  EXPECT_TRUE(purged().empty());
}

INSTANTIATE_TEST_SUITE_P(CdnProviders, FakeApi, ::testing::Values("fastly", "cloudflare"));

// ------------------- the http provider against Varnish with test/cdn/varnish.vcl

class VarnishPurge : public ::testing::Test {
 protected:
  void SetUp() override {
    cdn_ = std::filesystem::path(__FILE__).parent_path().parent_path() / "cdn";
    for (const char *tool : {"/usr/sbin/varnishd", "/usr/bin/python3", "/usr/bin/curl"})
      if (access(tool, X_OK) != 0) GTEST_SKIP() << "needs " << tool << " (Debian: varnish)";
    char tmpl[] = "/tmp/ckcdnvarnish-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // varnishd's jail users (varnish, vcache) must reach the instance below.
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    origin_pid_ = spawn({"/usr/bin/python3", (cdn_ / "origin.py").string(), "--port", "0", "--tags",
                         "/tagged/=product-42"},
                        (dir_ / "origin.out").string());
    ASSERT_GT(origin_pid_, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      const std::string out = slurp(dir_ / "origin.out");
      if (out.rfind("PORT ", 0) == 0 && out.find('\n') != std::string::npos) {
        origin_ = "http://127.0.0.1:" + out.substr(5, out.find('\n') - 5);
        break;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the origin did not start";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // A port nobody listens on right now (a race with other tests is unlikely).
    const int port = free_port();
    ASSERT_GT(port, 0);
    varnish_ = "http://127.0.0.1:" + std::to_string(port);
    ASSERT_EQ(varnish_bash("start_varnish " + std::to_string(port) + " " +
                           origin_.substr(origin_.rfind(':') + 1) + " " + (dir_ / "v").string()),
              0)
        << slurp(dir_ / "v" / "varnishd.log");
    started_ = true;
  }

  void TearDown() override {
    if (started_) varnish_bash("stop_varnish " + (dir_ / "v").string());
    if (origin_pid_ > 0) {
      kill(origin_pid_, SIGTERM);
      waitpid(origin_pid_, nullptr, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  int varnish_bash(const std::string &command) {
    return run({"/bin/bash", "-c", ". " + (cdn_ / "varnish.bash").string() + " && " + command});
  }

  static int free_port() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
      port = ntohs(addr.sin_port);
    close(fd);
    return port;
  }

  // A GET through Varnish.
  void get(const std::string &path) {
    HttpRequest r;
    r.url = varnish_ + path;
    EXPECT_EQ(perform_http(r, HostAllowList::parse("loopback"), 1 << 16).status, 200) << path;
  }

  // How often the origin served `path`.
  int served(const std::string &path) {
    HttpRequest r;
    r.url = origin_ + "/_origin/counts";
    const HttpResponse resp = perform_http(r, HostAllowList::parse("loopback"), 1 << 20);
    Json doc;
    EXPECT_TRUE(rest::parse_json(resp.body, doc)) << resp.body;
    const Json *n = doc.get(path);
    return n ? static_cast<int>(n->number) : 0;
  }

  std::unique_ptr<Provider> provider(const char *method) {
    HttpPurgeConfig c;
    c.purge_url_base = varnish_;
    c.method = method;
    c.common.timeout_ms = 10000;
    return make_http_purge(c);
  }

  std::filesystem::path cdn_, dir_;
  std::string origin_, varnish_;
  pid_t origin_pid_ = -1;
  bool started_ = false;
};

TEST_F(VarnishPurge, PurgeAndBanMakeTheNextRequestAMissAtTheOrigin) {
  const std::vector<std::string> paths = {"/img/a.png", "/img.v2/a",           "/imgXv2/a",
                                          "/tagged/x",  "/q?tags=product-421", "/p?x=1"};
  for (const auto &p : paths) {
    get(p);
    get(p);
    ASSERT_EQ(served(p), 1) << p << " is cached";
  }
  auto purge = provider("PURGE");
  SendResult r =
      purge->send(batch(PurgeKind::kPaths, {"/img/a.png", "/not/cached"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  get("/img/a.png");
  EXPECT_EQ(served("/img/a.png"), 2);

  auto ban = provider("BAN");
  r = ban->send(batch(PurgeKind::kPaths, {"/img.v2/*", "/p?x=1"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  r = ban->send(batch(PurgeKind::kTags, {"product-42"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  for (const auto &p : paths) get(p);
  EXPECT_EQ(served("/img.v2/a"), 2) << "under the banned prefix";
  EXPECT_EQ(served("/imgXv2/a"), 1) << "the prefix's '.' is not a regex wildcard";
  EXPECT_EQ(served("/p?x=1"), 2);
  EXPECT_EQ(served("/tagged/x"), 2) << "tagged product-42";
  EXPECT_EQ(served("/q?tags=product-421"), 1) << "another tag";
  EXPECT_EQ(served("/img/a.png"), 2) << "untouched since its PURGE";

  r = ban->send(batch(PurgeKind::kAll, {}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kCompleted) << r.error;
  get("/imgXv2/a");
  EXPECT_EQ(served("/imgXv2/a"), 2);

  // A tag the VCL cannot match safely is refused, and the batch fails.
  r = ban->send(batch(PurgeKind::kTags, {"a|b"}), loopback_transport);
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(r.error, "BAN of tag a|b answered HTTP 400: 400 Cannot ban that");
}

}  // namespace
}  // namespace cachekit::cdn
