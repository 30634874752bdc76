#include "core/http_endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <system_error>

#include "core/error.h"

namespace cachekit {

// ---- request head -------------------------------------------------------------------------

namespace {

bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

[[noreturn]] void bad_request(const std::string &why) {
  throw Error(sqlstate::kInvalidParameterValue, "malformed HTTP request: " + why);
}

// A request line so far (no newline yet): reject bytes it can never contain, so that a TLS
// handshake or binary noise is answered at once rather than after the timeout.
void check_partial_request_line(const std::string &b, size_t from) {
  for (size_t i = from; i < b.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(b[i]);
    if (c == '\r' && i + 1 == b.size()) break;
    if (c < 0x20 || c >= 0x7f) bad_request("invalid byte in the request line");
  }
}

HttpRequestHead parse_request_line(const std::string &line) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.find(' ', sp2 + 1) != std::string::npos)
    bad_request("the request line is not \"method target version\"");
  HttpRequestHead head;
  head.method = line.substr(0, sp1);
  head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string version = line.substr(sp2 + 1);
  if (head.method.empty()) bad_request("empty method");
  for (unsigned char c : head.method)
    if (!is_tchar(c)) bad_request("invalid method");
  if (head.target.empty()) bad_request("empty target");
  for (unsigned char c : head.target)
    if (c <= 0x20 || c >= 0x7f) bad_request("invalid byte in the target");
  if (version != "HTTP/1.1" && version != "HTTP/1.0") bad_request("unsupported HTTP version");
  return head;
}

void check_header_line(const std::string &line) {
  if (line[0] == ' ' || line[0] == '\t') bad_request("obsolete line folding");
  const size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0) bad_request("header line without a name");
  for (size_t i = 0; i < colon; ++i)
    if (!is_tchar(static_cast<unsigned char>(line[i]))) bad_request("invalid header name");
  for (size_t i = colon + 1; i < line.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(line[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) bad_request("control character in a header");
  }
}

}  // namespace

std::optional<HttpRequestHead> parse_http_request_head(const std::string &buffer) {
  return parse_http_request_head(buffer, nullptr);
}

std::optional<HttpRequestHead> parse_http_request_head(const std::string &buffer,
                                                       size_t *head_length) {
  size_t pos = 0;
  // RFC 9112 2.2: ignore empty lines before the request line.
  while (pos < buffer.size()) {
    if (buffer[pos] == '\n')
      pos += 1;
    else if (buffer.compare(pos, 2, "\r\n") == 0)
      pos += 2;
    else
      break;
  }
  std::optional<HttpRequestHead> head;
  while (true) {
    const size_t nl = buffer.find('\n', pos);
    if (nl == std::string::npos) {
      if (!head) check_partial_request_line(buffer, pos);
      return std::nullopt;
    }
    std::string line = buffer.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find('\r') != std::string::npos) bad_request("bare carriage return");
    if (line.find('\0') != std::string::npos) bad_request("NUL byte");
    pos = nl + 1;
    if (!head) {
      head = parse_request_line(line);
    } else if (line.empty()) {
      if (head_length) *head_length = pos;
      return head;
    } else {
      check_header_line(line);
    }
  }
}

// ---- listen address -----------------------------------------------------------------------

namespace {

[[noreturn]] void bad_listen(const std::string &listen) {
  throw Error(sqlstate::kInvalidParameterValue, "invalid listen address \"" + listen + "\"",
              "The address must be host:port with an IPv4 address, a bracketed IPv6 address "
              "or localhost as the host, and a port from 0 to 65535.",
              "Use for example '127.0.0.1:9187' or '[::1]:9187'.");
}

}  // namespace

ListenAddress parse_listen_address(const std::string &listen) {
  ListenAddress a{};
  std::string port;
  if (!listen.empty() && listen[0] == '[') {
    const size_t close = listen.find("]:");
    if (close == std::string::npos) bad_listen(listen);
    a.host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
    a.ipv6 = true;
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) bad_listen(listen);
    a.host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (a.host == "localhost") a.host = "127.0.0.1";
    a.ipv6 = false;
  }
  unsigned char buf[sizeof(struct in6_addr)];
  if (a.host.empty() || inet_pton(a.ipv6 ? AF_INET6 : AF_INET, a.host.c_str(), buf) != 1)
    bad_listen(listen);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    bad_listen(listen);
  const unsigned long p = std::stoul(port);
  if (p > 65535) bad_listen(listen);
  a.port = static_cast<uint16_t>(p);
  return a;
}

const char *http_reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

// ---- endpoint -----------------------------------------------------------------------------

namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string errno_text(int e) { return std::generic_category().message(e); }

std::string format_address(const ListenAddress &a) {
  return (a.ipv6 ? "[" + a.host + "]" : a.host) + ":" + std::to_string(a.port);
}

// How long a closed-for-writing connection may still send before it is closed: reading what
// the client sent after its request keeps close() from resetting the connection before the
// client has read the reply.
constexpr int kLingerMs = 1000;

// Unsolicited bytes read from a rejected or lingering connection per call.
constexpr size_t kDrainBytes = 16384;

std::string build_reply(const HttpReply &reply, bool head_only, const char *extra_headers) {
  std::string out =
      "HTTP/1.1 " + std::to_string(reply.status) + " " + http_reason_phrase(reply.status) + "\r\n";
  if (!reply.content_type.empty()) out += "Content-Type: " + reply.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n";
  out += "Connection: close\r\n";
  out += extra_headers;
  out += "\r\n";
  if (!head_only) out += reply.body;
  return out;
}

HttpReply text_reply(int status, const char *text) {
  return HttpReply{status, "text/plain; charset=utf-8", text};
}

bool reply_is_sane(const HttpReply &r) {
  if (r.status < 100 || r.status > 999) return false;
  for (unsigned char c : r.content_type)
    if (c < 0x20 || c == 0x7f) return false;  // no header injection
  return true;
}

void drain(int fd) {
  char buf[4096];
  size_t total = 0;
  while (total < kDrainBytes) {
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
}

}  // namespace

struct HttpEndpoint::Client {
  enum class State { kReading, kWriting, kLingering, kClosed };
  int fd = -1;
  State state = State::kReading;
  std::string in;
  std::string out;
  size_t out_off = 0;
  int64_t deadline = 0;
};

HttpEndpoint::HttpEndpoint(const std::string &listen, HttpEndpointLimits limits) : limits_(limits) {
  const ListenAddress a = parse_listen_address(listen);
  const int family = a.ipv6 ? AF_INET6 : AF_INET;
  listen_fd_ = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0)
    throw Error(sqlstate::kSystemError,
                "could not create a socket for the metrics endpoint: " + errno_text(errno));
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_storage ss;
  std::memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (a.ipv6) {
    auto *sin6 = reinterpret_cast<struct sockaddr_in6 *>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(a.port);
    inet_pton(AF_INET6, a.host.c_str(), &sin6->sin6_addr);
    len = sizeof *sin6;
  } else {
    auto *sin = reinterpret_cast<struct sockaddr_in *>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(a.port);
    inet_pton(AF_INET, a.host.c_str(), &sin->sin_addr);
    len = sizeof *sin;
  }
  if (bind(listen_fd_, reinterpret_cast<struct sockaddr *>(&ss), len) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    const int e = errno;
    ::close(listen_fd_);
    listen_fd_ = -1;
    throw Error(sqlstate::kSystemError,
                "could not listen on " + format_address(a) + " for metrics: " + errno_text(e),
                std::string(), "Set cachekit.metrics_listen to a free local address and port.");
  }
  len = sizeof ss;
  getsockname(listen_fd_, reinterpret_cast<struct sockaddr *>(&ss), &len);
  port_ = ntohs(a.ipv6 ? reinterpret_cast<struct sockaddr_in6 *>(&ss)->sin6_port
                       : reinterpret_cast<struct sockaddr_in *>(&ss)->sin_port);
}

HttpEndpoint::~HttpEndpoint() {
  for (auto &c : clients_)
    if (c->fd >= 0) ::close(c->fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

uint16_t HttpEndpoint::port() const { return port_; }

size_t HttpEndpoint::open_clients() const { return open_clients_.load(); }

void HttpEndpoint::accept_clients(int64_t now) {
  // Bounded so that a flood of connections cannot keep this call from serving the others.
  for (int i = 0; i < 64; ++i) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      // Out of descriptors or memory: the pending connection keeps the listener readable,
      // so stop polling it for a moment instead of spinning.
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
        accept_paused_until_ = now + 100;
      return;
    }
    if (clients_.size() >= static_cast<size_t>(limits_.max_clients)) {
      // Best effort: the reply fits any socket buffer, and a client that has not sent its
      // request yet may see a reset instead, which is just as final.
      drain(fd);
      const std::string busy =
          build_reply(text_reply(503, "too many connections\n"), false, "Retry-After: 1\r\n");
      (void)!send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      shutdown(fd, SHUT_WR);
      drain(fd);
      ::close(fd);
      continue;
    }
    auto c = std::make_unique<Client>();
    c->fd = fd;
    c->deadline = now + limits_.request_timeout_ms;
    clients_.push_back(std::move(c));
    open_clients_.store(clients_.size());
  }
}

void HttpEndpoint::queue_reply(Client &c, const HttpReply &reply, bool head_only, int64_t now) {
  const char *extra = reply.status == 405 ? "Allow: GET, HEAD\r\n" : "";
  c.out = build_reply(reply, head_only, extra);
  c.out_off = 0;
  std::string().swap(c.in);
  c.state = Client::State::kWriting;
  c.deadline = now + limits_.write_timeout_ms;
  on_writable(c, now);
}

void HttpEndpoint::on_readable(Client &c, int64_t now,
                               const std::function<HttpReply(const HttpRequestHead &)> &handler) {
  bool eof = false, newline = false;
  char buf[4096];
  // One byte past the limit tells "exactly at the limit" from "over it".
  while (c.in.size() <= limits_.max_request_bytes) {
    const size_t room = limits_.max_request_bytes + 1 - c.in.size();
    const ssize_t n = recv(c.fd, buf, room < sizeof buf ? room : sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      newline |= std::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr;
      continue;
    }
    if (n == 0) {
      eof = true;
    } else if (errno == EINTR) {
      continue;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      c.state = Client::State::kClosed;
      return;
    }
    break;
  }
  std::optional<HttpRequestHead> head;
  try {
    // Request-line bytes are checked as they come; the head only once a line ends.
    size_t head_length = 0;
    if (newline || c.in.find('\n') == std::string::npos)
      head = parse_http_request_head(c.in, &head_length);
    if (head && head_length > limits_.max_request_bytes) head.reset();
  } catch (const Error &) {
    queue_reply(c, text_reply(400, "bad request\n"), false, now);
    return;
  }
  if (!head) {
    if (c.in.size() > limits_.max_request_bytes) {
      queue_reply(c, text_reply(431, "request header fields too large\n"), false, now);
    } else if (eof) {
      c.state = Client::State::kClosed;  // gave up before finishing its request
    }
    return;
  }
  const bool head_only = head->method == "HEAD";
  if (head->method != "GET" && !head_only) {
    queue_reply(c, text_reply(405, "method not allowed\n"), false, now);
    return;
  }
  HttpReply reply;
  try {
    reply = handler(*head);
    if (!reply_is_sane(reply)) reply = text_reply(500, "internal error\n");
  } catch (...) {
    // Whatever went wrong stays in the worker's log (the handler's business); a scraper
    // only learns that it did.
    reply = text_reply(500, "internal error\n");
  }
  queue_reply(c, reply, head_only, now);
}

void HttpEndpoint::on_writable(Client &c, int64_t now) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    } else {
      c.state = Client::State::kClosed;
      return;
    }
  }
  std::string().swap(c.out);
  shutdown(c.fd, SHUT_WR);
  c.state = Client::State::kLingering;
  c.deadline = now + std::min(kLingerMs, limits_.request_timeout_ms);
}

void HttpEndpoint::close_client(size_t i) {
  ::close(clients_[i]->fd);
  clients_.erase(clients_.begin() + static_cast<std::ptrdiff_t>(i));
  open_clients_.store(clients_.size());
}

void HttpEndpoint::poll_once(int timeout_ms,
                             const std::function<HttpReply(const HttpRequestHead &)> &handler) {
  int64_t now = now_ms();
  std::vector<struct pollfd> fds;
  fds.reserve(clients_.size() + 1);
  const bool poll_listener = accept_paused_until_ <= now;
  int64_t wake = timeout_ms < 0 ? INT64_MAX : now + timeout_ms;
  if (!poll_listener) wake = std::min(wake, accept_paused_until_);
  for (const auto &c : clients_) {
    short events = c->state == Client::State::kWriting ? POLLOUT : POLLIN;
    fds.push_back({c->fd, events, 0});
    wake = std::min(wake, c->deadline);
  }
  // The listener goes last so that clients_ and fds share indices.
  if (poll_listener) fds.push_back({listen_fd_, POLLIN, 0});
  const int64_t wait = wake == INT64_MAX ? -1 : std::max<int64_t>(0, wake - now);
  const int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min<int64_t>(wait, 1 << 30)));
  if (n < 0 && errno != EINTR)
    throw Error(sqlstate::kSystemError,
                "could not poll the metrics endpoint: " + errno_text(errno));
  now = now_ms();
  const size_t polled = clients_.size();
  if (n > 0) {
    for (size_t i = 0; i < polled; ++i) {
      Client &c = *clients_[i];
      const short re = fds[i].revents;
      if (re == 0) continue;
      switch (c.state) {
        case Client::State::kReading:
          on_readable(c, now, handler);
          break;
        case Client::State::kWriting:
          on_writable(c, now);
          break;
        case Client::State::kLingering: {
          char buf[4096];
          const ssize_t got = recv(c.fd, buf, sizeof buf, 0);
          if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            c.state = Client::State::kClosed;
          break;
        }
        case Client::State::kClosed:
          break;
      }
    }
  }
  const bool listener_ready = n > 0 && poll_listener && fds.back().revents != 0;
  for (size_t i = 0; i < clients_.size(); ++i) {
    Client &c = *clients_[i];
    if (c.state == Client::State::kClosed || now < c.deadline) continue;
    if (c.state == Client::State::kReading)
      queue_reply(c, text_reply(408, "request timeout\n"), false, now);
    else
      c.state = Client::State::kClosed;  // reply not taken in time, or lingering done
  }
  for (size_t i = clients_.size(); i-- > 0;)
    if (clients_[i]->state == Client::State::kClosed) close_client(i);
  // After the sweep: connections that ended in this round must not count
  // against max_clients.
  if (listener_ready) accept_clients(now);
}

}  // namespace cachekit
