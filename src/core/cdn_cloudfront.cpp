// CloudFront's invalidation API as a cdn::Provider.
//
// A batch is one CreateInvalidation whose CallerReference is the batch's
// stable reference: CloudFront answers a repeat of the same batch with the
// invalidation it already made, so a retry after a lost response can never
// create a second one. That is also why a 201 whose body cannot be read is
// retried rather than failed.
#include "core/cdn_cloudfront.h"

#include <strings.h>

#include <ctime>
#include <optional>
#include <string_view>
#include <utility>

#include "core/backoff.h"
#include "core/error.h"
#include "core/xml_text.h"

namespace cachekit::cdn {
namespace {

constexpr char kApiPath[] = "/2020-05-31/distribution/";
constexpr char kXmlns[] = "http://cloudfront.amazonaws.com/doc/2020-05-31/";
constexpr std::size_t kMaxPaths = 3000;
constexpr std::size_t kMaxWildcardsInProgress = 15;
constexpr std::size_t kMaxErrorBytes = 512;

constexpr char kSettingDistribution[] = "cachekit.cdn_cloudfront_distribution_id";
constexpr char kSettingEndpoint[] = "cachekit.cdn_cloudfront_endpoint";
constexpr char kSettingKeyId[] = "cachekit.cdn_aws_access_key_id";
// The secret is never a setting (Postgres logs a changed setting's value).
constexpr char kSettingCredentialsFile[] = "cachekit.cdn_aws_credentials_file";
constexpr char kCredentialsHint[] =
    "Put aws_access_key_id and aws_secret_access_key in the [default] profile of the file named "
    "by cachekit.cdn_aws_credentials_file (cachekit.cdn_aws_access_key_id overrides the key id).";

// CloudFront's ids (distributions, invalidations) are upper-case letters and
// digits; checking that also keeps anything else out of the URL path.
bool cloudfront_id(const std::string &s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

bool access_key_id(const std::string &s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
      return false;
  return true;
}

bool region_name(const std::string &s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

bool has_space_or_control(const std::string &s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7f) return true;
  return false;
}

// "https://host[:port][/path]" without a trailing '/', or nullopt.
std::optional<std::string> endpoint_base(std::string url) {
  std::size_t scheme_end;
  if (strncasecmp(url.c_str(), "https://", 8) == 0)
    scheme_end = 8;
  else if (strncasecmp(url.c_str(), "http://", 7) == 0)
    scheme_end = 7;
  else
    return std::nullopt;
  if (has_space_or_control(url) || url.find_first_of("?#@\\") != std::string::npos)
    return std::nullopt;
  while (url.size() > scheme_end && url.back() == '/') url.pop_back();
  const std::size_t host_end = url.find('/', scheme_end);
  const std::string authority = url.substr(scheme_end, host_end - scheme_end);
  if (authority.empty() || authority[0] == ':') return std::nullopt;
  return url;
}

[[noreturn]] void bad_config(std::string message, const char *detail, std::string hint = {}) {
  throw Error(sqlstate::kInvalidParameterValue, message, detail, std::move(hint));
}

const std::string *header(const HttpResponse &r, const char *name) {
  for (const auto &h : r.headers)
    if (strcasecmp(h.first.c_str(), name) == 0) return &h.second;
  return nullptr;
}

class CloudFront : public Provider {
 public:
  CloudFront(CloudFrontConfig config, std::string base, std::function<int64_t()> now_utc)
      : config_(std::move(config)), base_(std::move(base)), now_utc_(std::move(now_utc)) {}

  const char *name() const override { return "cloudfront"; }

  Limits limits() const override {
    Limits l;
    l.max_items_per_batch = kMaxPaths;
    // Wildcard paths count towards both limits.
    l.max_in_progress_paths = kMaxPaths;
    l.max_in_progress_wildcards = kMaxWildcardsInProgress;
    l.supports_tags = false;
    l.supports_wildcards = true;
    l.supports_all = true;
    return l;
  }

  SendResult send(const Batch &batch, const Transport &transport) const override {
    std::vector<std::string> all;
    const std::vector<std::string> *paths = &batch.items;
    switch (batch.kind) {
      case PurgeKind::kTags:
        return failed("CloudFront has no tag purges");
      case PurgeKind::kAll:
        all.emplace_back("/*");
        paths = &all;
        break;
      case PurgeKind::kPaths:
        break;
    }
    if (paths->empty()) return failed("an invalidation needs at least one path");
    if (paths->size() > kMaxPaths)
      return failed("an invalidation takes at most " + std::to_string(kMaxPaths) + " paths, not " +
                    std::to_string(paths->size()));
    if (batch.caller_reference.empty()) return failed("the batch has no caller reference");

    HttpRequest req =
        signed_request("POST", base_ + kApiPath + config_.distribution_id + "/invalidation");
    try {
      req.body = cloudfront_invalidation_batch_xml(*paths, batch.caller_reference);
    } catch (const Error &e) {
      return failed(std::string(e.what()) + ": " + e.detail());
    }
    req.headers.emplace_back("Content-Type", "text/xml");

    SendResult r;
    const HttpExchange x = exchange(req, transport, &r);
    if (succeeded(x, r)) read_invalidation(x.response, &r);
    return r;
  }

  SendResult poll(const Batch &batch, const std::string &provider_id,
                  const Transport &transport) const override {
    (void)batch;
    if (!cloudfront_id(provider_id)) return failed("not a CloudFront invalidation id");
    const HttpRequest req = signed_request(
        "GET", base_ + kApiPath + config_.distribution_id + "/invalidation/" + provider_id);
    SendResult r;
    const HttpExchange x = exchange(req, transport, &r);
    if (succeeded(x, r)) {
      read_invalidation(x.response, &r);
      if (r.outcome != Outcome::kRetry && r.provider_id != provider_id) {
        r.outcome = Outcome::kRetry;
        r.error = "CloudFront answered for another invalidation";
      }
    }
    return r;
  }

 private:
  static SendResult failed(std::string message) {
    SendResult r;
    r.outcome = Outcome::kFailed;
    r.error = std::move(message);
    return r;
  }

  HttpRequest signed_request(const char *method, std::string url) const {
    HttpRequest req;
    req.method = method;
    req.url = std::move(url);
    req.timeout_ms = config_.common.timeout_ms;
    req.ca_file = config_.common.ca_file;
    req.aws_sigv4 = "aws:amz:" + config_.region + ":cloudfront";
    req.user = config_.access_key_id;
    req.password = config_.secret_access_key;
    return req;
  }

  static bool succeeded(const HttpExchange &x, const SendResult &r) {
    return r.reachable && x.response.status >= 200 && x.response.status < 300;
  }

  // Sends req and classifies every answer but a 2xx, which the caller reads
  // (r->outcome is left at kRetry for it).
  HttpExchange exchange(const HttpRequest &req, const Transport &transport, SendResult *r) const {
    std::vector<HttpExchange> got = transport({req});
    r->api_calls = 1;
    r->outcome = Outcome::kRetry;
    if (got.size() != 1) {
      r->error = "the HTTP transport returned no answer";
      return {};
    }
    HttpExchange x = std::move(got[0]);
    if (x.failed) {
      const std::string &s = x.sqlstate;
      const bool transient = s == sqlstate::kUnableToConnect || s == sqlstate::kConnectionFailure ||
                             s == sqlstate::kQueryCanceled;
      r->outcome = transient ? Outcome::kRetry : Outcome::kFailed;
      r->error = clean(x.detail.empty() ? x.message : x.message + ": " + x.detail);
      return x;
    }
    r->reachable = true;
    const long status = x.response.status;
    if (status >= 200 && status < 300) return x;
    classify_error(x.response, r);
    return x;
  }

  void classify_error(const HttpResponse &resp, SendResult *r) const {
    std::string code, message;
    try {
      code = xml_element_text(resp.body, "ErrorResponse/Error/Code").value_or("");
      message = xml_element_text(resp.body, "ErrorResponse/Error/Message").value_or("");
    } catch (const Error &) {
      // Not CloudFront's error document (a proxy's HTML page, a truncated
      // body): the status decides.
      code.clear();
      message.clear();
    }
    const long status = resp.status;
    const bool throttle_code = code == "Throttling" || code == "ThrottlingException" ||
                               code == "RequestLimitExceeded" ||
                               code == "TooManyInvalidationsInProgress";
    r->throttled = throttle_code || status == 429;
    const bool retry = r->throttled || status >= 500;
    r->outcome = retry ? Outcome::kRetry : Outcome::kFailed;
    if (code.empty())
      r->error = "CloudFront answered HTTP " + std::to_string(status);
    else
      r->error = clean(message.empty() ? code : code + ": " + message);
    if (retry) {
      if (const std::string *v = header(resp, "Retry-After"))
        r->retry_after_s = parse_retry_after(*v, now_utc_());
    }
  }

  // Fills r from an Invalidation document (CreateInvalidation's 201,
  // GetInvalidation's 200).
  void read_invalidation(const HttpResponse &resp, SendResult *r) const {
    std::string_view doc = resp.body;
    std::string cut;
    if (resp.body_truncated) {
      // The answer echoes the whole batch after Id and Status (3000 paths
      // can outgrow the transport's body cap); without the echo the rest is
      // a complete document.
      const std::size_t echo = doc.find("<InvalidationBatch");
      if (echo == std::string_view::npos) {
        r->outcome = Outcome::kRetry;
        r->error = "CloudFront's answer was cut short before the invalidation's status";
        return;
      }
      cut = std::string(doc.substr(0, echo)) + "</Invalidation>";
      doc = cut;
    }
    std::optional<std::string> id, status;
    try {
      id = xml_element_text(doc, "Invalidation/Id");
      status = xml_element_text(doc, "Invalidation/Status");
    } catch (const Error &e) {
      r->outcome = Outcome::kRetry;
      r->error = "CloudFront's answer is not readable: " + e.detail();
      return;
    }
    if (!id || !cloudfront_id(*id) || !status) {
      r->outcome = Outcome::kRetry;
      r->error = "CloudFront's answer has no invalidation id and status";
      return;
    }
    r->provider_id = *id;
    if (*status == "Completed") {
      r->outcome = Outcome::kCompleted;
    } else if (*status == "InProgress") {
      r->outcome = Outcome::kInProgress;
    } else {
      r->outcome = Outcome::kRetry;
      r->error = clean("unknown invalidation status " + *status);
    }
  }

  // Text from the server or from curl, made safe to store and show: no
  // credential (whoever echoes it), no control characters, bounded length.
  std::string clean(std::string s) const {
    for (const std::string *secret : {&config_.secret_access_key, &config_.access_key_id}) {
      if (secret->empty()) continue;
      for (std::size_t at = s.find(*secret); at != std::string::npos; at = s.find(*secret, at + 3))
        s.replace(at, secret->size(), "***");
    }
    for (char &c : s)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    if (s.size() > kMaxErrorBytes) {
      std::size_t cut = kMaxErrorBytes;
      while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;
      s.resize(cut);
      s += "...";
    }
    return s;
  }

  CloudFrontConfig config_;
  std::string base_;
  std::function<int64_t()> now_utc_;
};

}  // namespace

std::string cloudfront_invalidation_batch_xml(const std::vector<std::string> &paths,
                                              const std::string &caller_reference) {
  std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InvalidationBatch xmlns=\"";
  xml += kXmlns;
  xml += "\"><Paths><Quantity>" + std::to_string(paths.size()) + "</Quantity><Items>";
  for (const std::string &p : paths) xml += "<Path>" + xml_escape(p) + "</Path>";
  xml += "</Items></Paths><CallerReference>" + xml_escape(caller_reference) +
         "</CallerReference></InvalidationBatch>";
  return xml;
}

std::unique_ptr<Provider> make_cloudfront(CloudFrontConfig config,
                                          std::function<int64_t()> now_utc) {
  if (config.distribution_id.empty())
    bad_config(std::string(kSettingDistribution) + " is not set",
               "The CloudFront provider needs the id of the distribution to invalidate.",
               std::string("Set ") + kSettingDistribution + " to the id of the distribution.");
  if (!cloudfront_id(config.distribution_id))
    bad_config(std::string(kSettingDistribution) + " is not a CloudFront distribution id",
               "A distribution id consists of upper-case letters and digits.");
  const std::optional<std::string> base = endpoint_base(config.endpoint);
  if (!base)
    bad_config(std::string(kSettingEndpoint) + " is not an http or https URL",
               "The endpoint must be of the form https://host[:port][/path], without user "
               "information, query or fragment.");
  if (!region_name(config.region))
    bad_config("the CloudFront signing region is not an AWS region name",
               "A region name consists of lower-case letters, digits and hyphens.");
  if (config.access_key_id.empty())
    bad_config(std::string(kSettingKeyId) + " is not set",
               "Neither the setting nor the credentials file gives an access key id.",
               kCredentialsHint);
  if (!access_key_id(config.access_key_id))
    bad_config(std::string(kSettingKeyId) + " is not an AWS access key id",
               "An access key id consists of letters, digits and underscores.");
  if (config.secret_access_key.empty())
    bad_config(std::string(kSettingCredentialsFile) + " gives no AWS secret access key",
               "CloudFront requests are signed with the secret access key from that file.",
               kCredentialsHint);
  if (has_space_or_control(config.secret_access_key))
    bad_config(
        std::string("the AWS secret access key in ") + kSettingCredentialsFile + " is not valid",
        "It contains white space or a control character.");
  if (!now_utc) now_utc = [] { return static_cast<int64_t>(std::time(nullptr)); };
  return std::make_unique<CloudFront>(std::move(config), *base, std::move(now_utc));
}

std::unique_ptr<Provider> make_cloudfront(CloudFrontConfig config) {
  return make_cloudfront(std::move(config), nullptr);
}

}  // namespace cachekit::cdn
