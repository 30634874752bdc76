// A tiny HTTP/1.x server for GET /metrics and /health inside a background worker.
//
// One thread, non-blocking sockets and poll(): the worker calls poll_once() in its loop and
// checks its own latch and shutdown flag in between, so a scrape never keeps the worker from
// stopping. Every connection carries one request and is closed after the reply
// ("Connection: close"), and every phase has a deadline, so slow or hostile clients (a
// request dribbled byte by byte, a reply never read, too many connections) cost a bounded
// amount of memory and time and never hold up other scrapes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cachekit {

struct HttpEndpointLimits {
  size_t max_request_bytes = 8192;  // request line + headers
  int request_timeout_ms = 2000;    // from accept to a complete request head
  int write_timeout_ms = 5000;      // from the complete request to the reply's last byte
  int max_clients = 16;             // open connections; more are answered 503 and closed
};

struct HttpRequestHead {
  std::string method;
  std::string target;  // as sent, e.g. "/metrics?x=1"
};

struct HttpReply {
  int status = 200;
  std::string content_type;
  std::string body;
};

// Parses the request line and headers (up to and including the blank line; a lone "\n" ends
// lines too, and blank lines before the request line are skipped). nullopt while incomplete;
// throws cachekit::Error for a malformed head (the endpoint answers 400): a bad request line,
// a version other than HTTP/1.0 or 1.1, a header line without a token and colon, an
// obsolete folded header line, control characters.
std::optional<HttpRequestHead> parse_http_request_head(const std::string &buffer);
// The same, also setting *head_length to the bytes of the head (blank line included).
std::optional<HttpRequestHead> parse_http_request_head(const std::string &buffer,
                                                       size_t *head_length);

// "host:port" as the cachekit.metrics_listen setting takes it.
struct ListenAddress {
  std::string host;  // an IPv4 or IPv6 literal ("localhost" becomes 127.0.0.1)
  uint16_t port;
  bool ipv6;
};
// Throws cachekit::Error (invalid parameter value) for anything but an IPv4 literal,
// "[IPv6 literal]" or "localhost", a colon, and a port 0-65535. For a GUC check hook too.
ListenAddress parse_listen_address(const std::string &listen);

// "OK", "Not Found", ...: the reason phrase of a status line.
const char *http_reason_phrase(int status);

class HttpEndpoint {
 public:
  // Binds and listens; port 0 picks a free port (see port()). Throws cachekit::Error: invalid
  // parameter value for a bad address, system error (58000) naming the address and the errno
  // text when the socket cannot be bound.
  explicit HttpEndpoint(const std::string &listen, HttpEndpointLimits limits = {});
  ~HttpEndpoint();  // closes the listening socket and every connection
  HttpEndpoint(const HttpEndpoint &) = delete;
  HttpEndpoint &operator=(const HttpEndpoint &) = delete;

  uint16_t port() const;
  // Open client connections (safe to read from another thread).
  size_t open_clients() const;

  // Waits at most timeout_ms (negative: until the next deadline or activity; returns early on
  // EINTR or activity): accepts, reads, answers each complete request by calling handler on
  // this thread, writes without blocking (unfinished writes go on in later calls). Only GET
  // and HEAD reach the handler (HEAD: the handler's headers, no body); other methods get 405
  // with "Allow: GET, HEAD". A head larger than max_request_bytes gets 431, a malformed one
  // 400, a client silent past request_timeout_ms 408; a reply not taken within
  // write_timeout_ms is cut off. Every reply has Content-Length and Connection: close, then
  // the connection is closed. A handler exception (std::exception) gives 500 with a short
  // body and the endpoint goes on.
  void poll_once(int timeout_ms, const std::function<HttpReply(const HttpRequestHead &)> &handler);

 private:
  struct Client;
  void accept_clients(int64_t now);
  void queue_reply(Client &c, const HttpReply &reply, bool head_only, int64_t now);
  void on_readable(Client &c, int64_t now,
                   const std::function<HttpReply(const HttpRequestHead &)> &handler);
  void on_writable(Client &c, int64_t now);
  void close_client(size_t i);

  HttpEndpointLimits limits_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  int64_t accept_paused_until_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<size_t> open_clients_{0};
};

}  // namespace cachekit
