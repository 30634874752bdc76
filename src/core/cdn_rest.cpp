#include "core/cdn_rest.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <exception>

#include "core/backoff.h"
#include "core/error.h"

namespace cachekit::cdn::rest {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_control(unsigned char c) { return c < 0x20 || c == 0x7f; }

[[noreturn]] void bad_setting(const char *setting, const std::string &what,
                              const char *subject = "The value") {
  throw Error(sqlstate::kInvalidParameterValue, std::string("invalid ") + setting,
              std::string(subject) + " " + what + ".");
}

bool host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

class JsonParser {
 public:
  explicit JsonParser(std::string_view s) : s_(s) {}

  bool document(Json &out) {
    if (!value(out, 0)) return false;
    blanks();
    return pos_ == s_.size();
  }

 private:
  void blanks() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool value(Json &out, int depth) {
    if (depth > 64) return false;
    blanks();
    if (pos_ >= s_.size()) return false;
    const char c = s_[pos_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out.type = Json::Type::kString;
      return string(out.string);
    }
    if (literal("true")) {
      out.type = Json::Type::kBool;
      out.boolean = true;
      return true;
    }
    if (literal("false")) {
      out.type = Json::Type::kBool;
      return true;
    }
    if (literal("null")) return true;
    return number(out);
  }

  bool number(Json &out) {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (!digits()) return false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return false;
    }
    out.type = Json::Type::kNumber;
    out.string = std::string(s_.substr(start, pos_ - start));
    out.number = std::strtod(out.string.c_str(), nullptr);
    return true;
  }

  bool hex4(uint32_t &v) {
    if (pos_ + 4 > s_.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return false;
    }
    return true;
  }

  static void utf8(uint32_t cp, std::string &out) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool string(std::string &out) {
    ++pos_;  // the opening quote
    out.clear();
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out.push_back(e);
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && s_.substr(pos_, 2) == "\\u") {
            const std::size_t save = pos_;
            pos_ += 2;
            uint32_t low;
            if (hex4(low) && low >= 0xdc00 && low < 0xe000)
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            else
              pos_ = save;
          }
          utf8(cp, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool array(Json &out, int depth) {
    ++pos_;
    out.type = Json::Type::kArray;
    blanks();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      out.array.emplace_back();
      if (!value(out.array.back(), depth + 1)) return false;
      blanks();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == ']') {
        ++pos_;
        return true;
      }
      if (s_[pos_++] != ',') return false;
    }
  }

  bool object(Json &out, int depth) {
    ++pos_;
    out.type = Json::Type::kObject;
    blanks();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      blanks();
      if (pos_ >= s_.size() || s_[pos_] != '"') return false;
      std::string key;
      if (!string(key)) return false;
      blanks();
      if (pos_ >= s_.size() || s_[pos_++] != ':') return false;
      out.object.emplace_back(std::move(key), Json{});
      if (!value(out.object.back().second, depth + 1)) return false;
      blanks();
      if (pos_ >= s_.size()) return false;
      if (s_[pos_] == '}') {
        ++pos_;
        return true;
      }
      if (s_[pos_++] != ',') return false;
    }
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

}  // namespace

BaseUrl parse_base_url(const std::string &url, const char *setting, bool https_only) {
  if (url.empty()) bad_setting(setting, "is empty");
  for (unsigned char c : url)
    if (is_control(c) || c == ' ' || c >= 0x80)
      bad_setting(setting, "contains a control character, a space or a non-ASCII byte");
  BaseUrl out;
  const std::size_t colon = url.find("://");
  if (colon == std::string::npos) bad_setting(setting, "is not an absolute http or https URL");
  for (std::size_t i = 0; i < colon; ++i) out.scheme.push_back(lower(url[i]));
  if (out.scheme != "http" && out.scheme != "https")
    bad_setting(setting, "is not an absolute http or https URL");
  if (https_only && out.scheme != "https") bad_setting(setting, "must be an https URL");
  const std::size_t start = colon + 3;
  const std::size_t end = url.find_first_of("/?#", start);
  out.authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (end != std::string::npos) out.path = url.substr(end);
  if (out.authority.find('@') != std::string::npos)
    bad_setting(setting, "must not contain user information");
  // host, [v6 literal], optionally :port
  std::string host = out.authority, port;
  if (!host.empty() && host[0] == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string::npos || close == 1) bad_setting(setting, "has a malformed host");
    for (std::size_t i = 1; i < close; ++i)
      if (!(std::isxdigit(static_cast<unsigned char>(host[i])) || host[i] == ':' || host[i] == '.'))
        bad_setting(setting, "has a malformed host");
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') bad_setting(setting, "has a malformed host");
      port = host.substr(close + 2);
      if (port.empty()) bad_setting(setting, "has an empty port");
    }
  } else {
    const std::size_t c = host.find(':');
    if (c != std::string::npos) {
      port = host.substr(c + 1);
      host.resize(c);
      if (port.empty()) bad_setting(setting, "has an empty port");
    }
    if (host.empty()) bad_setting(setting, "has no host");
    for (char ch : host)
      if (!host_char(ch)) bad_setting(setting, "has a malformed host");
  }
  if (!port.empty()) {
    if (port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      bad_setting(setting, "has a malformed port");
    const long n = std::strtol(port.c_str(), nullptr, 10);
    if (n < 1 || n > 65535) bad_setting(setting, "has a port outside 1-65535");
  }
  if (out.path.find_first_of("?#") != std::string::npos)
    bad_setting(setting, "must not have a query or a fragment");
  while (!out.path.empty() && out.path.back() == '/') out.path.pop_back();
  return out;
}

void check_header_value(const std::string &value, const char *setting, const char *subject) {
  if (value.empty()) bad_setting(setting, "is empty", subject);
  for (unsigned char c : value)
    if (is_control(c)) bad_setting(setting, "contains a control character", subject);
  if (value.front() == ' ' || value.back() == ' ')
    bad_setting(setting, "starts or ends with a space", subject);
}

void check_id(const std::string &value, const char *setting) {
  if (value.empty()) bad_setting(setting, "is empty");
  if (value.size() > 64) bad_setting(setting, "is longer than 64 characters");
  for (char c : value)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      bad_setting(setting, "may contain only letters, digits, '-' and '_'");
}

HttpRequest new_request(std::string method, std::string url, const Common &common) {
  HttpRequest r;
  r.method = std::move(method);
  r.url = std::move(url);
  r.timeout_ms = common.timeout_ms;
  r.ca_file = common.ca_file;
  return r;
}

std::string invalid_tag_error(const std::vector<std::string> &tags, const std::string &noun,
                              std::string_view also_forbidden, const char *also_named) {
  for (const std::string &tag : tags) {
    bool ok = !tag.empty();
    for (unsigned char c : tag)
      ok = ok && c > 0x20 && c != 0x7f &&
           also_forbidden.find(static_cast<char>(c)) == std::string_view::npos;
    if (!ok)
      return noun + " \"" + excerpt(tag, {}, 80) + "\" is empty or contains " +
             (*also_named != '\0' ? std::string(also_named) + ", " : std::string()) +
             "white space or a control character";
  }
  return {};
}

const Json *Json::get(std::string_view key) const {
  if (type != Type::kObject) return nullptr;
  for (const auto &kv : object)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

bool parse_json(std::string_view text, Json &out) {
  out = Json{};
  JsonParser p(text);
  return p.document(out);
}

const std::string *find_header(const HttpResponse &response, std::string_view name) {
  for (const auto &h : response.headers)
    if (iequals(h.first, name)) return &h.second;
  return nullptr;
}

double retry_after(const HttpResponse &response) {
  if (response.retry_after_seconds >= 0) return response.retry_after_seconds;
  const std::string *v = find_header(response, "Retry-After");
  if (v == nullptr) return -1;
  return parse_retry_after(*v, static_cast<int64_t>(std::time(nullptr)));
}

std::string excerpt(std::string_view body, const std::vector<std::string> &secrets,
                    std::size_t max) {
  std::string text(body.substr(0, std::min(body.size(), max * 4)));
  for (const std::string &s : secrets) {
    if (s.empty()) continue;
    for (std::size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 10))
      text.replace(at, s.size(), "[redacted]");
  }
  std::string out;
  for (unsigned char c : text) {
    const char ch = is_control(c) ? ' ' : static_cast<char>(c);
    if (ch == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(ch);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.size() > max) {
    out.resize(max);
    // Do not end inside a UTF-8 sequence.
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xc0) == 0x80) out.pop_back();
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xc0) out.pop_back();
    out += "...";
  }
  return out;
}

Verdict judge_exchange(const HttpExchange &exchange, std::string &error) {
  if (exchange.failed) {
    error = exchange.message;
    if (!exchange.detail.empty()) error += ": " + exchange.detail;
    const std::string state = exchange.sqlstate;
    if (state == sqlstate::kInsufficientPrivilege || state == sqlstate::kInvalidParameterValue)
      return Verdict::kFailed;
    return Verdict::kRetry;
  }
  const long status = exchange.response.status;
  if (status >= 200 && status < 300) return Verdict::kOk;
  error = "HTTP " + std::to_string(status);
  return http_status_retryable(status) ? Verdict::kRetry : Verdict::kFailed;
}

void ResultBuilder::add(Verdict verdict, const std::string &error, const HttpExchange &exchange,
                        bool throttled, double retry_after_s) {
  if (!exchange.failed) {
    reachable_ = true;
    if (exchange.response.status == 429 || throttled) throttled_ = true;
    if (verdict == Verdict::kRetry)
      retry_after_s_ = std::max({retry_after_s_, retry_after_s, retry_after(exchange.response)});
  }
  if (verdict == Verdict::kFailed && failed_++ == 0) first_failed_ = error;
  if (verdict == Verdict::kRetry && retry_++ == 0) first_retry_ = error;
}

SendResult ResultBuilder::finish(int api_calls) {
  SendResult r;
  r.api_calls = api_calls;
  r.reachable = reachable_;
  r.throttled = throttled_;
  r.provider_id = provider_id;
  auto more = [](std::size_t n) {
    return n > 1 ? " (and " + std::to_string(n - 1) + " more)" : std::string();
  };
  if (failed_ > 0) {
    r.outcome = Outcome::kFailed;
    r.error = first_failed_ + more(failed_);
  } else if (retry_ > 0) {
    r.outcome = Outcome::kRetry;
    r.error = first_retry_ + more(retry_);
    r.retry_after_s = retry_after_s_;
  } else {
    r.outcome = Outcome::kCompleted;
  }
  return r;
}

SendResult failed_without_sending(std::string error) {
  SendResult r;
  r.outcome = Outcome::kFailed;
  r.error = std::move(error);
  return r;
}

std::vector<HttpExchange> send_all(const Transport &transport,
                                   const std::vector<HttpRequest> &requests, std::string &error) {
  std::vector<HttpExchange> out;
  try {
    out = transport(requests);
  } catch (const std::exception &e) {
    // perform_http_many throws only when curl itself fails; its messages
    // carry no request data.
    error = std::string("http transport failed: ") + e.what();
    return {};
  }
  if (out.size() != requests.size()) {
    error = "http transport answered " + std::to_string(out.size()) + " of " +
            std::to_string(requests.size()) + " requests";
    return {};
  }
  return out;
}

SendResult send_and_judge(const Transport &transport, const Requests &requests,
                          const char *separator, const ResponseJudge &judge) {
  if (requests.requests.empty()) {
    SendResult r;
    r.outcome = Outcome::kCompleted;
    return r;
  }
  std::string transport_error;
  const std::vector<HttpExchange> exchanges =
      send_all(transport, requests.requests, transport_error);
  if (exchanges.empty()) {
    SendResult r;
    r.error = transport_error;
    return r;  // kRetry
  }
  ResultBuilder results;
  for (std::size_t i = 0; i < exchanges.size(); ++i) {
    Judgement j;
    j.verdict = judge_exchange(exchanges[i], j.error);
    if (!exchanges[i].failed) judge(exchanges[i].response, j, results.provider_id);
    if (j.verdict != Verdict::kOk) j.error = requests.labels[i] + separator + j.error;
    results.add(j.verdict, j.error, exchanges[i], j.throttled, j.retry_after_s);
  }
  return results.finish(static_cast<int>(requests.requests.size()));
}

std::vector<std::vector<std::string>> chunks(const std::vector<std::string> &items, std::size_t n) {
  n = std::max<std::size_t>(n, 1);
  std::vector<std::vector<std::string>> out;
  for (std::size_t i = 0; i < items.size(); i += n)
    out.emplace_back(items.begin() + static_cast<std::ptrdiff_t>(i),
                     items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), i + n)));
  return out;
}

}  // namespace cachekit::cdn::rest
