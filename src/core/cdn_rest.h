// What the Fastly, Cloudflare and HTTP PURGE/BAN providers share: checking
// the configured URLs, reading the small JSON answers of the cloud APIs, and
// turning one HTTP exchange into an Outcome. Internal to the providers.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cdn_provider.h"
#include "core/http_request.h"

namespace cachekit::cdn::rest {

// An absolute http(s) URL without user information, query or fragment.
struct BaseUrl {
  std::string scheme;     // "http" or "https", lower case
  std::string authority;  // host, or host:port when the URL names a port, as written
  std::string path;       // "" or "/shop": no trailing '/'
  std::string text() const { return scheme + "://" + authority + path; }
};

// Throws cachekit::Error 22023 naming `setting` (never the value: a URL may
// be secret-adjacent, and the message goes to logs) when `url` is not such a
// URL, or is http when `https_only`.
BaseUrl parse_base_url(const std::string &url, const char *setting, bool https_only);

// Throws 22023 naming `setting` unless `value` is non-empty and fits in an
// HTTP header field (no control characters, no leading or trailing blank).
// `subject` starts the detail ("The token in that file").
void check_header_value(const std::string &value, const char *setting,
                        const char *subject = "The value");

// Throws 22023 naming `setting` unless `value` is 1-64 characters of
// [A-Za-z0-9_-] (service and zone ids end up in a URL path).
void check_id(const std::string &value, const char *setting);

// A request to `url` with `common`'s timeout and CA file, so that no
// provider can send one without them.
HttpRequest new_request(std::string method, std::string url, const Common &common);

// "" when every one of `tags` is non-empty and free of white space, control
// characters and `also_forbidden` (named in the error as `also_named`, such
// as "a comma"); else an error that quotes the first bad one as `noun`
// ("cache tag"). Caches keep tags in headers as lists separated by blanks
// (or commas), so such a tag could never have been set on an object.
std::string invalid_tag_error(const std::vector<std::string> &tags, const std::string &noun,
                              std::string_view also_forbidden = {}, const char *also_named = "");

// A parsed JSON value: enough to read an API's answer, nothing more.
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;  // kString; for kNumber the number as written
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;

  // The member `key` of an object, or nullptr.
  const Json *get(std::string_view key) const;
};

// False when `text` is not one JSON value (with surrounding white space).
// Nesting deeper than 64 levels counts as malformed.
bool parse_json(std::string_view text, Json &out);

// The first header field called `name` (case-insensitive), or nullptr.
const std::string *find_header(const HttpResponse &response, std::string_view name);

// The Retry-After of a response in seconds from now, or -1 when it has none.
double retry_after(const HttpResponse &response);

// At most `max` bytes of `body` for an error message: control characters
// become spaces, runs of blanks shrink to one, and any of `secrets` (tokens,
// header values) that the server echoed back is replaced by "[redacted]".
std::string excerpt(std::string_view body, const std::vector<std::string> &secrets,
                    std::size_t max = 200);

// How one exchange ended, before the provider looks at the body.
enum class Verdict { kOk, kRetry, kFailed };

// failed exchanges: a connection, TLS or timeout error is worth another
// attempt; a refused host (42501) or a request the transport rejected (22023)
// can never succeed. Then: 2xx ok, http_status_retryable() retry, the rest
// failed. `error` gets a description of anything but kOk.
Verdict judge_exchange(const HttpExchange &exchange, std::string &error);

// Folds per-request verdicts into one SendResult: kFailed if any request
// failed for good (retrying cannot fix it), else kRetry if any asked for
// another attempt, else kCompleted. Keeps the first error of the deciding
// kind and the largest Retry-After.
class ResultBuilder {
 public:
  // `throttled` and `retry_after_s` for throttling that a provider signals
  // other than by 429 and Retry-After.
  void add(Verdict verdict, const std::string &error, const HttpExchange &exchange,
           bool throttled = false, double retry_after_s = -1);
  SendResult finish(int api_calls);
  std::string provider_id;  // the caller may set it (the first purge id seen)

 private:
  std::size_t failed_ = 0, retry_ = 0;
  std::string first_failed_, first_retry_;
  double retry_after_s_ = -1;
  bool reachable_ = false, throttled_ = false;
};

// A result that sent nothing: kFailed with `error`.
SendResult failed_without_sending(std::string error);

// Sends `requests` through `transport` in one call, and checks that one
// exchange came back for each request. Throws nothing: a transport that
// throws, or answers with the wrong count, gives an empty vector and `error`.
std::vector<HttpExchange> send_all(const Transport &transport,
                                   const std::vector<HttpRequest> &requests, std::string &error);

// The requests of one send(), each with a label ("purge of /a.png") that
// starts the errors about it.
struct Requests {
  std::vector<HttpRequest> requests;
  std::vector<std::string> labels;

  void add(HttpRequest request, std::string label) {
    requests.push_back(std::move(request));
    labels.push_back(std::move(label));
  }
};

// One exchange as judge_exchange() saw it, for the provider to revise from
// the response: a 2xx whose body says nothing was purged is kFailed, a
// refusal that a provider knows to be throttling is kRetry.
struct Judgement {
  Verdict verdict = Verdict::kOk;
  std::string error;  // judge_exchange()'s description; without the label
  bool throttled = false;
  double retry_after_s = -1;
};

// Looks at the response to one request; may set `provider_id` (empty until
// a response sets it). Called only for exchanges that got a response.
using ResponseJudge = std::function<void(const HttpResponse &response, Judgement &judgement,
                                         std::string &provider_id)>;

// What send() does once its requests are built: none is kCompleted without
// calling the transport; a transport failure is kRetry; otherwise every
// exchange is judged (judge_exchange, then `judge`), errors are prefixed
// with the request's label and `separator`, and ResultBuilder folds them.
SendResult send_and_judge(const Transport &transport, const Requests &requests,
                          const char *separator, const ResponseJudge &judge);

// The items of `items` in chunks of at most `n` (n >= 1).
std::vector<std::vector<std::string>> chunks(const std::vector<std::string> &items, std::size_t n);

}  // namespace cachekit::cdn::rest
