#include "core/http_request.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <string>

#include "core/error.h"

namespace cachekit {

namespace {

constexpr long kMaxTimeoutMs = 24L * 60 * 60 * 1000;
constexpr const char *kMethods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(const std::string &a, const char *b) {
  std::size_t n = std::char_traits<char>::length(b);
  if (a.size() != n) return false;
  for (std::size_t i = 0; i < n; ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// RFC 9110 token characters.
bool token_char(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

[[noreturn]] void invalid(const std::string &message, std::string detail = {}) {
  throw Error(sqlstate::kInvalidParameterValue, message, std::move(detail));
}

struct CurlDeleter {
  void operator()(CURL *h) const { curl_easy_cleanup(h); }
  void operator()(CURLU *u) const { curl_url_cleanup(u); }
  void operator()(curl_slist *l) const { curl_slist_free_all(l); }
};
using EasyHandle = std::unique_ptr<CURL, CurlDeleter>;
using UrlHandle = std::unique_ptr<CURLU, CurlDeleter>;
using HeaderList = std::unique_ptr<curl_slist, CurlDeleter>;

std::string url_part(CURLU *url, CURLUPart part) {
  char *value = nullptr;
  if (curl_url_get(url, part, &value, 0) != CURLUE_OK || value == nullptr) return {};
  std::string out(value);
  curl_free(value);
  return out;
}

std::string address_text(const struct sockaddr *sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

struct Transfer {
  const HostAllowList *allow = nullptr;
  bool host_is_name = false;
  int sockets_opened = 0;
  std::string refused;  // addresses refused by the allow-list, comma-separated
  HttpResponse *response = nullptr;
  std::size_t max_body_bytes = 0;
};

// The allow-list's last word: curl asks us for every socket it connects with,
// after resolving, so the address checked is the address used.
curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
  auto *t = static_cast<Transfer *>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN ||
      !t->allow->address_allowed(&address->addr, t->host_is_name)) {
    if (!t->refused.empty()) t->refused += ", ";
    t->refused += address_text(&address->addr);
    return CURL_SOCKET_BAD;
  }
  curl_socket_t fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) ++t->sockets_opened;
  return fd;
}

std::string trim_ows(const std::string &s) {
  std::size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  std::size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

size_t on_header(char *data, size_t size, size_t count, void *userdata) {
  auto *t = static_cast<Transfer *>(userdata);
  size_t len = size * count;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  auto &headers = t->response->headers;
  if (line.rfind("HTTP/", 0) == 0) {
    headers.clear();  // a new (final or interim 1xx) response starts
  } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
    if (!headers.empty()) headers.back().second += " " + trim_ows(line);  // obsolete folding
  } else if (std::size_t colon = line.find(':'); colon != std::string::npos && colon > 0) {
    headers.emplace_back(line.substr(0, colon), trim_ows(line.substr(colon + 1)));
  }
  return len;
}

size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  auto *t = static_cast<Transfer *>(userdata);
  size_t len = size * count;
  std::string &body = t->response->body;
  size_t room = t->max_body_bytes - body.size();
  if (len <= room) {
    body.append(data, len);
    return len;
  }
  // Stop downloading at the cap instead of reading a huge body to discard it.
  body.append(data, room);
  t->response->body_truncated = true;
  return 0;
}

bool connect_phase_error(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
      return true;
    default:
      return false;
  }
}

void check_header(const std::string &name, const std::string &value, bool *has_expect,
                  bool *has_content_type) {
  if (name.empty()) invalid("http header name must not be empty");
  for (unsigned char c : name)
    if (!token_char(c))
      invalid("invalid http header name",
              "A header name may contain only letters, digits and !#$%&'*+-.^_`|~.");
  for (unsigned char c : value)
    if (c == '\r' || c == '\n' || c == '\0')
      invalid("value of http header \"" + name + "\" contains a line break or NUL",
              "Header values must be a single line.");
  if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding"))
    invalid("http header \"" + name + "\" cannot be set", "It is derived from the request body.");
  if (iequals(name, "Expect")) *has_expect = true;
  if (iequals(name, "Content-Type")) *has_content_type = true;
}

template <typename T>
void setopt(CURL *h, CURLoption option, T value) {
  CURLcode rc = curl_easy_setopt(h, option, value);
  if (rc != CURLE_OK)
    throw Error(sqlstate::kInternalError, "could not configure http request",
                std::string("curl_easy_setopt failed: ") + curl_easy_strerror(rc) + ".");
}

}  // namespace

bool http_status_retryable(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

HttpResponse perform_http(const HttpRequest &req, const HostAllowList &allow,
                          std::size_t max_body_bytes) {
  std::string method;
  for (char c : req.method) method.push_back(ascii_upper(c));
  bool method_ok = false;
  for (const char *m : kMethods) method_ok = method_ok || method == m;
  if (!method_ok)
    invalid("unsupported http method",
            "The method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS.");
  if (method == "HEAD" && !req.body.empty()) invalid("http HEAD request cannot have a body");
  if (req.timeout_ms < 1 || req.timeout_ms > kMaxTimeoutMs)
    invalid("http timeout must be between 1 ms and 24 hours");

  if (req.url.empty()) invalid("http url must not be empty");
  for (unsigned char c : req.url)
    if (c <= 0x20 || c >= 0x7f)
      invalid("invalid http url",
              "The URL contains white space, a control character or a non-ASCII byte; "
              "percent-encode it.");
  UrlHandle url(curl_url());
  if (!url) throw Error(sqlstate::kOutOfMemory, "out of memory");
  if (CURLUcode uc = curl_url_set(url.get(), CURLUPART_URL, req.url.c_str(), 0); uc != CURLUE_OK)
    invalid("invalid http url", std::string(curl_url_strerror(uc)) + ".");
  std::string scheme = url_part(url.get(), CURLUPART_SCHEME);
  if (!iequals(scheme, "http") && !iequals(scheme, "https"))
    invalid("http url must use http or https");
  std::string host = url_part(url.get(), CURLUPART_HOST);
  if (host.empty()) invalid("http url has no host");

  if (!allow.host_name_allowed(host))
    throw Error(sqlstate::kInsufficientPrivilege,
                "http requests to host \"" + host + "\" are not allowed",
                "The host is not in cachekit.http_allowed_hosts.",
                "Add it to cachekit.http_allowed_hosts.");

  bool has_expect = false, has_content_type = false;
  HeaderList headers;
  auto add_header = [&headers](const std::string &line) {
    curl_slist *next = curl_slist_append(headers.get(), line.c_str());
    if (next == nullptr) throw Error(sqlstate::kOutOfMemory, "out of memory");
    (void)headers.release();
    headers.reset(next);
  };
  for (const auto &[name, value] : req.headers) {
    check_header(name, value, &has_expect, &has_content_type);
    // "Name:" would remove the header; "Name;" is curl's way to send it empty.
    add_header(value.empty() ? name + ";" : name + ": " + value);
  }
  bool sends_body = !req.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  // curl would otherwise wait for 100-continue on large bodies and label any
  // body as a form; the task's body is sent as given.
  if (!has_expect) add_header("Expect:");
  if (sends_body && !has_content_type) add_header("Content-Type:");

  EasyHandle h(curl_easy_init());
  if (!h) throw Error(sqlstate::kOutOfMemory, "out of memory");
  HttpResponse response;
  Transfer t;
  t.allow = &allow;
  t.host_is_name = !HostAllowList::is_address_literal(host);
  t.response = &response;
  t.max_body_bytes = max_body_bytes;
  char errbuf[CURL_ERROR_SIZE] = "";

  CURL *c = h.get();
  setopt(c, CURLOPT_NOSIGNAL, 1L);
  setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  // The URL object we checked is the one curl uses: no second parse to differ.
  setopt(c, CURLOPT_CURLU, url.get());
  setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  // An empty proxy beats http_proxy and friends from the environment, which
  // would otherwise connect to the proxy instead of the checked address.
  setopt(c, CURLOPT_PROXY, "");
  setopt(c, CURLOPT_NOPROXY, "*");
  setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  setopt(c, CURLOPT_OPENSOCKETDATA, &t);
  setopt(c, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req.timeout_ms);
  setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  setopt(c, CURLOPT_HEADERDATA, &t);
  setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  setopt(c, CURLOPT_WRITEDATA, &t);
  setopt(c, CURLOPT_USERAGENT, "pg_cachekit");
  setopt(c, CURLOPT_HTTPHEADER, headers.get());
  if (method == "HEAD") {
    setopt(c, CURLOPT_NOBODY, 1L);
  } else if (sends_body) {
    setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    setopt(c, CURLOPT_POSTFIELDS, req.body.data());
    if (method != "POST") setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method != "GET") {
    setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }

  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_WRITE_ERROR && response.body_truncated) rc = CURLE_OK;
  if (rc != CURLE_OK) {
    std::string why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    if (t.sockets_opened == 0 && !t.refused.empty())
      throw Error(sqlstate::kInsufficientPrivilege,
                  "http requests to host \"" + host + "\" are not allowed",
                  "It resolved to " + t.refused +
                      ", which cachekit.http_allowed_hosts does not allow; no connection was "
                      "made.",
                  "Loopback, private and link-local addresses must be allowed by an address, "
                  "network or loopback entry.");
    std::string detail = why + ".";
    if (!t.refused.empty())
      detail += " Addresses refused by cachekit.http_allowed_hosts: " + t.refused + ".";
    if (rc == CURLE_OPERATION_TIMEDOUT)
      throw Error(sqlstate::kQueryCanceled,
                  "http request to host \"" + host + "\" timed out after " +
                      std::to_string(req.timeout_ms) + " ms",
                  detail);
    if (connect_phase_error(rc))
      throw Error(sqlstate::kUnableToConnect, "could not connect to http host \"" + host + "\"",
                  detail);
    throw Error(sqlstate::kConnectionFailure, "http request to host \"" + host + "\" failed",
                detail);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &response.total_seconds);
  return response;
}

}  // namespace cachekit
