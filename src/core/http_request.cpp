#include "core/http_request.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/curl_handle.h"
#include "core/error.h"

namespace cachekit {

namespace {

constexpr long kMaxTimeoutMs = 24L * 60 * 60 * 1000;
constexpr const char *kMethods[] = {"GET",    "HEAD",    "POST",  "PUT", "PATCH",
                                    "DELETE", "OPTIONS", "PURGE", "BAN"};
// SHA-256 of nothing: the payload hash of an S3 request without a body.
constexpr const char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr std::size_t kMaxSigV4Part = 64;  // libcurl's limit per part

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

bool alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 9110 token characters.
bool token_char(unsigned char c) {
  return alnum(c) ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 3986 unreserved characters: the only ones SigV4 leaves unencoded.
bool unreserved(unsigned char c) {
  return alnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

bool upper_hex(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

// Only unreserved characters and %XX with upper-case hex: how SigV4 encodes.
bool sigv4_encoded(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (unreserved(static_cast<unsigned char>(s[i]))) continue;
    if (s[i] != '%' || i + 2 >= s.size() || !upper_hex(s[i + 1]) || !upper_hex(s[i + 2]))
      return false;
    i += 2;
  }
  return true;
}

[[noreturn]] void invalid(const std::string &message, std::string detail = {}) {
  throw Error(sqlstate::kInvalidParameterValue, message, std::move(detail));
}

std::string trim_ows(std::string_view s) {
  std::size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  std::size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::string address_text(const struct sockaddr *sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in *>(sa)->sin_addr, buf, sizeof buf);
  else if (sa->sa_family == AF_INET6)
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6 *>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

// CURLOPT_AWS_SIGV4's "provider1:provider2:region:service", all four given:
// libcurl would otherwise guess region and service from the host name, which
// is wrong for global endpoints such as cloudfront.amazonaws.com.
struct SigV4 {
  std::string date_header;    // "x-amz-date"
  std::string sha256_header;  // "x-amz-content-sha256"
  bool s3 = false;            // S3 wants the payload hash as a header and a singly encoded path
};

SigV4 parse_sigv4(const std::string &spec) {
  std::vector<std::string> parts(1);
  for (char c : spec) {
    if (c == ':')
      parts.emplace_back();
    else
      parts.back() += c;
  }
  bool ok = parts.size() == 4;
  for (const std::string &part : parts) {
    ok = ok && !part.empty() && part.size() <= kMaxSigV4Part;
    for (unsigned char c : part) ok = ok && (alnum(c) || c == '-' || c == '_' || c == '.');
  }
  if (!ok)
    invalid("invalid aws_sigv4 value",
            "It must be four parts separated by colons (provider, header provider, region, "
            "service), as in \"aws:amz:us-east-1:cloudfront\".");
  SigV4 sig;
  std::string provider2;
  for (char c : parts[1]) provider2 += ascii_lower(c);
  sig.date_header = "x-" + provider2 + "-date";
  sig.sha256_header = "x-" + provider2 + "-content-sha256";
  sig.s3 = parts[3] == "s3";
  return sig;
}

// libcurl 7.88 signs the path and the query exactly as written in the URL,
// where AWS recomputes their canonical form; what would differ is refused
// here instead of being answered with a 403.
void check_sigv4_target(const std::string &path, const std::string &query, bool s3) {
  bool ok = true;
  for (std::size_t i = 0; ok && i < path.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(path[i]);
    if (c == '/') {
      // Other services collapse "//"; S3 keys may contain it.
      ok = s3 || i + 1 == path.size() || path[i + 1] != '/';
    } else if (c == '%' && s3) {
      ok = i + 2 < path.size() && upper_hex(path[i + 1]) && upper_hex(path[i + 2]);
      i += 2;
    } else {
      ok = unreserved(c);
    }
  }
  if (!ok)
    invalid("path of an http request signed with aws_sigv4 is not in canonical form",
            s3 ? "libcurl 7.88 signs the path as written: use only letters, digits, \"-._~/\" "
                 "and percent-encoded bytes in upper-case hex."
               : "libcurl 7.88 signs the path as written, where this service encodes it a "
                 "second time: use only letters, digits, \"-._~\" and single slashes.");
  std::string_view prev_name, prev_value;
  std::size_t start = 0;
  while (!query.empty() && start <= query.size()) {
    std::size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    std::string_view pair = std::string_view(query).substr(start, end - start);
    std::size_t eq = pair.find('=');
    std::string_view name = pair.substr(0, eq), value;
    if (eq != std::string_view::npos) value = pair.substr(eq + 1);
    if (eq == std::string_view::npos || name.empty() || !sigv4_encoded(name) ||
        !sigv4_encoded(value) ||
        (start > 0 && (name < prev_name || (name == prev_name && value < prev_value))))
      invalid("query of an http request signed with aws_sigv4 is not in canonical form",
              "libcurl 7.88 signs the query as written: give every parameter as name=value, "
              "sorted by name, with bytes other than letters, digits and \"-._~\" "
              "percent-encoded in upper-case hex.");
    prev_name = name;
    prev_value = value;
    start = end + 1;
  }
}

// One request made ready for libcurl: checked, its handle configured, and
// everything the handle points to kept next to it. Lives on the heap and
// stays put: curl holds pointers into it.
struct Prepared {
  std::string host;
  long timeout_ms = 0;
  std::size_t index = 0;  // in perform_http_many's requests
  // Read and written by the callbacks.
  const HostAllowList *allow = nullptr;
  bool host_is_name = false;
  int sockets_opened = 0;
  std::string refused;  // addresses refused by the allow-list, comma-separated
  HttpResponse response;
  std::size_t max_body_bytes = 0;
  // Declared last, destroyed first: the handle points to the URL and list.
  CurlUrl url;
  CurlList headers;
  std::unique_ptr<CurlEasy> easy;
};

// The allow-list's last word: curl asks us for every socket it connects with,
// after resolving, so the address checked is the address used.
curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
  auto *p = static_cast<Prepared *>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN ||
      !p->allow->address_allowed(&address->addr, p->host_is_name)) {
    if (!p->refused.empty()) p->refused += ", ";
    p->refused += address_text(&address->addr);
    return CURL_SOCKET_BAD;
  }
  curl_socket_t fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd != CURL_SOCKET_BAD) ++p->sockets_opened;
  return fd;
}

size_t on_header(char *data, size_t size, size_t count, void *userdata) {
  auto *p = static_cast<Prepared *>(userdata);
  size_t len = size * count;
  std::string line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  auto &headers = p->response.headers;
  if (line.rfind("HTTP/", 0) == 0) {
    headers.clear();  // a new (final or interim 1xx) response starts
  } else if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
    if (!headers.empty()) headers.back().second += " " + trim_ows(line);  // obsolete folding
  } else if (std::size_t colon = line.find(':'); colon != std::string::npos && colon > 0) {
    headers.emplace_back(line.substr(0, colon), trim_ows(std::string_view(line).substr(colon + 1)));
  }
  return len;
}

size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  auto *p = static_cast<Prepared *>(userdata);
  size_t len = size * count;
  std::string &body = p->response.body;
  size_t room = p->max_body_bytes - body.size();
  if (len <= room) {
    body.append(data, len);
    return len;
  }
  // Stop downloading at the cap instead of reading a huge body to discard it.
  body.append(data, room);
  p->response.body_truncated = true;
  return 0;
}

void check_header(const std::string &name, const std::string &value) {
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
}

// What libcurl 7.88 would sign wrongly (see http_request.h).
void check_signed_header(const HttpRequest &req, std::size_t i, const SigV4 &sig) {
  const std::string &name = req.headers[i].first;
  if (iequals(name, "Authorization") || iequals(name, "Date") || iequals(name, sig.date_header))
    invalid("http header \"" + name + "\" cannot be set on a request signed with aws_sigv4",
            "The signature sets the Authorization and date headers itself.");
  if (trim_ows(req.headers[i].second).empty())
    invalid("http header \"" + name + "\" of a request signed with aws_sigv4 must not be empty",
            "libcurl 7.88 cannot sign a header without a value.");
  for (std::size_t k = 0; k < i; ++k)
    if (iequals(req.headers[k].first, name))
      invalid("http header \"" + name + "\" is given twice on a request signed with aws_sigv4",
              "libcurl 7.88 signs repeated headers wrongly; give the values in one header, "
              "separated by commas.");
}

// libcurl 7.88 sorts "name:value" lines where SigV4 sorts names: they differ
// when a name continues another with a character sorting before ':'
// ("x-a" and "x-a-b").
void check_signed_header_order(const HttpRequest &req, const SigV4 &sig) {
  std::vector<std::string> names = {"host", sig.date_header};
  for (const auto &header : req.headers) {
    std::string lower;
    for (char c : header.first) lower += ascii_lower(c);
    names.push_back(std::move(lower));
  }
  for (const std::string &a : names)
    for (const std::string &b : names)
      if (b.size() > a.size() && b.compare(0, a.size(), a) == 0 && b[a.size()] < ':')
        invalid("http header names \"" + a + "\" and \"" + b +
                    "\" cannot both be signed with aws_sigv4",
                "libcurl 7.88 would sort them in the wrong order.");
}

std::unique_ptr<Prepared> prepare(const HttpRequest &req, const HostAllowList &allow,
                                  std::size_t max_body_bytes) {
  std::string method;
  for (char c : req.method) method.push_back(ascii_upper(c));
  bool method_ok = false;
  for (const char *m : kMethods) method_ok = method_ok || method == m;
  if (!method_ok)
    invalid("unsupported http method",
            "The method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, PURGE, "
            "BAN.");
  if (method == "HEAD" && !req.body.empty()) invalid("http HEAD request cannot have a body");
  if (req.timeout_ms < 1 || req.timeout_ms > kMaxTimeoutMs)
    invalid("http timeout must be between 1 ms and 24 hours");

  auto p = std::make_unique<Prepared>();
  if (req.url.empty()) invalid("http url must not be empty");
  for (unsigned char c : req.url)
    if (c <= 0x20 || c >= 0x7f)
      invalid("invalid http url",
              "The URL contains white space, a control character or a non-ASCII byte; "
              "percent-encode it.");
  p->url = new_curl_url();
  CURLU *url = p->url.get();
  if (CURLUcode uc = curl_url_set(url, CURLUPART_URL, req.url.c_str(), 0); uc != CURLUE_OK)
    invalid("invalid http url", std::string(curl_url_strerror(uc)) + ".");
  std::string scheme = curl_url_part(url, CURLUPART_SCHEME);
  if (!iequals(scheme, "http") && !iequals(scheme, "https"))
    invalid("http url must use http or https");
  p->host = curl_url_part(url, CURLUPART_HOST);
  if (p->host.empty()) invalid("http url has no host");

  if (!allow.host_name_allowed(p->host))
    throw Error(sqlstate::kInsufficientPrivilege,
                "http requests to host \"" + p->host + "\" are not allowed",
                "The host is not in cachekit.http_allowed_hosts.",
                "Add it to cachekit.http_allowed_hosts.");

  bool signing = !req.aws_sigv4.empty();
  SigV4 sig;
  if (signing) {
    sig = parse_sigv4(req.aws_sigv4);
    if (req.user.empty() || req.password.empty())
      invalid("http request signed with aws_sigv4 needs a user and a password",
              "They are the access key id and the secret access key.");
    check_sigv4_target(curl_url_part(url, CURLUPART_PATH), curl_url_part(url, CURLUPART_QUERY),
                       sig.s3);
  } else if (!req.user.empty() || !req.password.empty()) {
    invalid("http user and password are used only with aws_sigv4",
            "Send other credentials in an Authorization header.");
  }
  if (req.ca_file.find('\0') != std::string::npos) invalid("http CA file name contains a NUL");

  bool has_expect = false, has_content_type = false, has_payload_hash = false;
  for (std::size_t i = 0; i < req.headers.size(); ++i) {
    const auto &[name, value] = req.headers[i];
    check_header(name, value);
    if (signing) check_signed_header(req, i, sig);
    has_expect = has_expect || iequals(name, "Expect");
    has_content_type = has_content_type || iequals(name, "Content-Type");
    has_payload_hash = has_payload_hash || (signing && iequals(name, sig.sha256_header));
    // "Name:" would remove the header; "Name;" is curl's way to send it empty.
    curl_list_append(p->headers, value.empty() ? name + ";" : name + ": " + value);
  }
  if (signing) check_signed_header_order(req, sig);
  bool sends_body = !req.body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
  if (!signing) {
    // curl would otherwise wait for 100-continue on large bodies and label any
    // body as a form; the task's body is sent as given.
    if (!has_expect) curl_list_append(p->headers, "Expect:");
    if (sends_body && !has_content_type) curl_list_append(p->headers, "Content-Type:");
  } else {
    // libcurl 7.88 would sign those two removals as empty headers it then
    // does not send; a signed body needs its type given instead.
    if (sends_body && !has_content_type)
      invalid("http request signed with aws_sigv4 needs a Content-Type header",
              "Its body would otherwise be sent as an unsigned "
              "application/x-www-form-urlencoded.");
    // libcurl 7.88 neither sends this header for S3 nor can it hash a body
    // it is not given as POSTFIELDS; it takes the header's value as the
    // payload hash.
    if (sig.s3 && !has_payload_hash)
      curl_list_append(p->headers, sig.sha256_header + ": " +
                                       (req.body.empty() ? kEmptySha256 : "UNSIGNED-PAYLOAD"));
  }

  p->timeout_ms = req.timeout_ms;
  p->allow = &allow;
  p->host_is_name = !HostAllowList::is_address_literal(p->host);
  p->max_body_bytes = max_body_bytes;
  p->easy = std::make_unique<CurlEasy>("http,https", "could not configure http request");
  CurlEasy &h = *p->easy;
  // The URL object we checked is the one curl uses: no second parse to differ.
  h.set(CURLOPT_CURLU, url);
  h.set(CURLOPT_PRIVATE, static_cast<void *>(p.get()));
  h.set(CURLOPT_OPENSOCKETFUNCTION, open_socket);
  h.set(CURLOPT_OPENSOCKETDATA, static_cast<void *>(p.get()));
  h.set(CURLOPT_TIMEOUT_MS, req.timeout_ms);
  h.set(CURLOPT_CONNECTTIMEOUT_MS, req.timeout_ms);
  h.set(CURLOPT_HEADERFUNCTION, on_header);
  h.set(CURLOPT_HEADERDATA, static_cast<void *>(p.get()));
  h.set(CURLOPT_WRITEFUNCTION, on_body);
  h.set(CURLOPT_WRITEDATA, static_cast<void *>(p.get()));
  h.set(CURLOPT_USERAGENT, "pg_cachekit");
  h.set(CURLOPT_HTTPHEADER, p->headers.get());
  if (!req.ca_file.empty()) {
    h.set(CURLOPT_CAINFO, req.ca_file.c_str());
    // Only the given CA: Debian's libcurl also trusts /etc/ssl/certs by path.
    h.set(CURLOPT_CAPATH, static_cast<const char *>(nullptr));
  }
  if (signing) {
    h.set(CURLOPT_AWS_SIGV4, req.aws_sigv4.c_str());
    h.set(CURLOPT_USERNAME, req.user.c_str());
    h.set(CURLOPT_PASSWORD, req.password.c_str());
  }
  if (method == "HEAD") {
    h.set(CURLOPT_NOBODY, 1L);
  } else if (sends_body) {
    // Also what libcurl hashes for the signature.
    h.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    h.set(CURLOPT_POSTFIELDS, req.body.data());
    if (method != "POST") h.set(CURLOPT_CUSTOMREQUEST, method.c_str());
  } else if (method != "GET") {
    h.set(CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  return p;
}

// The response of a transfer that ended with `rc`, or the error it is.
HttpResponse finish(Prepared &p, CURLcode rc) {
  if (rc == CURLE_WRITE_ERROR && p.response.body_truncated) rc = CURLE_OK;
  if (rc != CURLE_OK) {
    if (p.sockets_opened == 0 && !p.refused.empty())
      throw Error(sqlstate::kInsufficientPrivilege,
                  "http requests to host \"" + p.host + "\" are not allowed",
                  "It resolved to " + p.refused +
                      ", which cachekit.http_allowed_hosts does not allow; no connection was "
                      "made.",
                  "Loopback, private and link-local addresses must be allowed by an address, "
                  "network or loopback entry.");
    std::string detail = p.easy->error_text(rc);
    if (!p.refused.empty())
      detail += " Addresses refused by cachekit.http_allowed_hosts: " + p.refused + ".";
    if (rc == CURLE_OPERATION_TIMEDOUT)
      throw Error(sqlstate::kQueryCanceled,
                  "http request to host \"" + p.host + "\" timed out after " +
                      std::to_string(p.timeout_ms) + " ms",
                  detail);
    if (curl_connect_failure(rc))
      throw Error(sqlstate::kUnableToConnect, "could not connect to http host \"" + p.host + "\"",
                  detail);
    throw Error(sqlstate::kConnectionFailure, "http request to host \"" + p.host + "\" failed",
                detail);
  }
  curl_easy_getinfo(p.easy->get(), CURLINFO_RESPONSE_CODE, &p.response.status);
  curl_easy_getinfo(p.easy->get(), CURLINFO_TOTAL_TIME, &p.response.total_seconds);
  return std::move(p.response);
}

struct CurlMultiDeleter {
  void operator()(CURLM *m) const { curl_multi_cleanup(m); }
};

void check_multi(CURLMcode mc) {
  if (mc != CURLM_OK)
    throw Error(sqlstate::kInternalError, "could not run http requests",
                std::string("The curl multi interface failed: ") + curl_multi_strerror(mc) + ".");
}

}  // namespace

bool http_status_retryable(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

HttpResponse perform_http(const HttpRequest &req, const HostAllowList &allow,
                          std::size_t max_body_bytes) {
  std::unique_ptr<Prepared> p = prepare(req, allow, max_body_bytes);
  return finish(*p, curl_easy_perform(p->easy->get()));
}

std::vector<HttpExchange> perform_http_many(const std::vector<HttpRequest> &reqs,
                                            const HostAllowList &allow, std::size_t max_body_bytes,
                                            int max_parallel) {
  if (max_parallel < 1) invalid("number of parallel http requests must be at least 1");
  std::vector<HttpExchange> out(reqs.size());
  auto fail = [&out](std::size_t i, const Error &e) {
    out[i].failed = true;
    out[i].sqlstate = e.sqlstate();
    out[i].message = e.what();
    out[i].detail = e.detail();
    out[i].hint = e.hint();
  };
  std::unique_ptr<CURLM, CurlMultiDeleter> multi(curl_multi_init());
  if (!multi) throw Error(sqlstate::kOutOfMemory, "out of memory");
  // After `multi`, so destroyed before it: an easy handle's cleanup detaches
  // it from the multi handle when an error unwinds this.
  std::vector<std::unique_ptr<Prepared>> transfers(reqs.size());

  // Transfers are added only as others finish, not queued inside curl, so
  // that a waiting request's timeout does not start before it does.
  std::size_t next = 0;
  int active = 0;
  auto start_more = [&] {
    while (active < max_parallel && next < reqs.size()) {
      std::size_t i = next++;
      try {
        transfers[i] = prepare(reqs[i], allow, max_body_bytes);
      } catch (const Error &e) {
        fail(i, e);
        continue;
      }
      transfers[i]->index = i;
      check_multi(curl_multi_add_handle(multi.get(), transfers[i]->easy->get()));
      ++active;
    }
  };

  start_more();
  while (active > 0) {
    int running = 0;
    check_multi(curl_multi_perform(multi.get(), &running));
    int queued = 0;
    while (CURLMsg *msg = curl_multi_info_read(multi.get(), &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *easy = msg->easy_handle;
      CURLcode rc = msg->data.result;  // msg is gone once the handle is removed
      char *priv = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
      auto *p = reinterpret_cast<Prepared *>(priv);
      check_multi(curl_multi_remove_handle(multi.get(), easy));
      --active;
      try {
        out[p->index].response = finish(*p, rc);
      } catch (const Error &e) {
        fail(p->index, e);
      }
      transfers[p->index].reset();
    }
    start_more();
    // Returns at once when a handle was just added (it is due now).
    if (active > 0) check_multi(curl_multi_poll(multi.get(), nullptr, 0, 1000, nullptr));
  }
  return out;
}

}  // namespace cachekit
