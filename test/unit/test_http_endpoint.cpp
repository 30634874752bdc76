#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/http_endpoint.h"

namespace cachekit {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Polls cond every few milliseconds for at most timeout_ms.
bool eventually(const std::function<bool()> &cond, int timeout_ms = 5000) {
  const auto start = Clock::now();
  while (ms_since(start) < timeout_ms) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

// ---- parsing --------------------------------------------------------------------------------

TEST(HttpRequestHead, ParsesCompleteHeads) {
  auto h = parse_http_request_head("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->method, "GET");
  EXPECT_EQ(h->target, "/metrics?x=1");
  h = parse_http_request_head("HEAD /health HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->method, "HEAD");
  EXPECT_EQ(h->target, "/health");
  // Bare LF line ends, empty lines before the request line, data after the head.
  h = parse_http_request_head("\r\n\nGET / HTTP/1.1\nHost: a\n\nbody bytes");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->target, "/");
  size_t len = 0;
  h = parse_http_request_head("\r\nGET / HTTP/1.1\r\nA: b\r\n\r\nrest", &len);
  ASSERT_TRUE(h);
  EXPECT_EQ(len, 26u);
  h = parse_http_request_head("DELETE /x HTTP/1.1\r\nX-Empty:\r\nX-Tab: a\tb\r\n\r\n");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->method, "DELETE");
}

TEST(HttpRequestHead, IncompleteHeadsWait) {
  for (const char *partial :
       {"", "\r", "\r\n", "G", "GET", "GET /metrics HTTP/1.1", "GET /metrics HTTP/1.1\r",
        "GET /metrics HTTP/1.1\r\n", "GET /metrics HTTP/1.1\r\nHost: a\r\n",
        "GET /metrics HTTP/1.1\r\nHost: a\r\n\r", "GET /metrics HTTP/1.1\r\nHos"}) {
    EXPECT_FALSE(parse_http_request_head(partial)) << partial;
  }
}

TEST(HttpRequestHead, RejectsMalformedHeads) {
  for (const std::string &bad : std::vector<std::string>{
           "GET /metrics\r\n\r\n",                                     // HTTP/0.9
           "GET  /metrics HTTP/1.1\r\n\r\n",                           // two spaces
           "GET /metrics HTTP/1.1 \r\n\r\n",                           // trailing space
           "GET /me trics HTTP/1.1\r\n\r\n",                           // space in the target
           "GET /metrics HTTP/2.0\r\n\r\n",                            // not HTTP/1.x
           "GET /metrics http/1.1\r\n\r\n",                            // case matters
           "G(T /metrics HTTP/1.1\r\n\r\n",                            // not a token
           " /metrics HTTP/1.1\r\n\r\n",                               // no method
           "GET /m\xc3\xa9trics HTTP/1.1\r\n\r\n",                     // non-ASCII target
           "GET /metrics HTTP/1.1\r\nHost a\r\n\r\n",                  // no colon
           "GET /metrics HTTP/1.1\r\n: a\r\n\r\n",                     // no name
           "GET /metrics HTTP/1.1\r\nHost : a\r\n\r\n",                // space before the colon
           "GET /metrics HTTP/1.1\r\nA: b\r\n c\r\n\r\n",              // obs-fold
           "GET /metrics HTTP/1.1\r\nA: b\x01\r\n\r\n",                // control character
           "GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n",                 // bare CR
           std::string("GET /metrics HTTP/1.1\r\nA: \0\r\n\r\n", 31),  // NUL
       }) {
    EXPECT_THROW(parse_http_request_head(bad), Error) << bad;
  }
  // A request line that can never become valid is refused before its end.
  EXPECT_THROW(parse_http_request_head("\x16\x03\x01\x02\x00"), Error) << "a TLS ClientHello";
  EXPECT_THROW(parse_http_request_head("GET /\x01"), Error);
}

TEST(ListenAddress, Parses) {
  auto a = parse_listen_address("127.0.0.1:9187");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 9187);
  EXPECT_FALSE(a.ipv6);
  a = parse_listen_address("localhost:0");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 0);
  a = parse_listen_address("[::1]:65535");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 65535);
  EXPECT_TRUE(a.ipv6);
  a = parse_listen_address("0.0.0.0:80");
  EXPECT_EQ(a.host, "0.0.0.0");
  for (const char *bad :
       {"", "127.0.0.1", "127.0.0.1:", ":9187", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x",
        "127.0.0.1:123456", "::1:9187", "[::1]9187", "[::1]:", "[127.0.0.1]:80", "example.com:80",
        "127.1:80", "127.0.0.1 :80", "[::1]:80 "}) {
    try {
      parse_listen_address(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error &e) {
      EXPECT_STREQ(e.sqlstate(), "22023") << bad;
    }
  }
}

// ---- the endpoint on loopback ------------------------------------------------------------

// Runs poll_once in a loop on its own thread, like the worker's main loop.
class Server {
 public:
  // big: the body of /big, fixed before the server thread starts.
  explicit Server(HttpEndpointLimits limits = {}, std::string big = {})
      : big_body(std::move(big)), endpoint_("127.0.0.1:0", limits) {
    thread_ = std::thread([this] {
      while (!stop_.load())
        endpoint_.poll_once(20, [this](const HttpRequestHead &h) { return handle(h); });
    });
  }
  ~Server() {
    stop_.store(true);
    thread_.join();
  }
  uint16_t port() const { return endpoint_.port(); }
  size_t open_clients() const { return endpoint_.open_clients(); }
  int calls() const { return calls_.load(); }
  const std::string big_body;

 private:
  HttpReply handle(const HttpRequestHead &h) {
    ++calls_;
    if (h.target == "/metrics") return {200, "text/plain; version=0.0.4", "cachekit_up 1\n"};
    if (h.target == "/big") return {200, "text/plain", big_body};
    if (h.target == "/throw") throw std::runtime_error("boom");
    return {404, "text/plain", "not found\n"};
  }

  HttpEndpoint endpoint_;
  std::atomic<bool> stop_{false};
  std::atomic<int> calls_{0};
  std::thread thread_;
};

class Client {
 public:
  explicit Client(uint16_t port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    if (rcvbuf > 0) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin;
    std::memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<struct sockaddr *>(&sin), sizeof sin) == 0;
    EXPECT_TRUE(connected_) << std::strerror(errno);
  }
  ~Client() { close(); }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send(const std::string &data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Everything until the server closes (or an error / the 10 s receive timeout).
  std::string read_all() {
    std::string out;
    char buf[65536];
    while (true) {
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof_ = n == 0;
        last_errno_ = n < 0 ? errno : 0;
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  // Whether anything (data or EOF) can be read right now.
  bool readable(int timeout_ms = 0) {
    struct pollfd p = {fd_, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  bool eof() const { return eof_; }
  int last_errno() const { return last_errno_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  int last_errno_ = 0;
};

std::string get(uint16_t port, const std::string &target, const std::string &method = "GET") {
  Client c(port);
  c.send(method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
  return c.read_all();
}

std::string body_of(const std::string &response) {
  const size_t p = response.find("\r\n\r\n");
  return p == std::string::npos ? std::string() : response.substr(p + 4);
}

TEST(HttpEndpoint, GetIsAnswered) {
  Server s;
  ASSERT_NE(s.port(), 0);
  Client c(s.port());
  c.send("GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
  const std::string r = c.read_all();
  EXPECT_TRUE(c.eof()) << "the server closes after the reply";
  EXPECT_EQ(r,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4\r\n"
            "Content-Length: 14\r\n"
            "Connection: close\r\n"
            "\r\n"
            "cachekit_up 1\n");
  const std::string nf = get(s.port(), "/nope");
  EXPECT_EQ(nf.rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << nf;
  EXPECT_EQ(body_of(nf), "not found\n");
  EXPECT_TRUE(eventually([&] { return s.open_clients() == 0; }));
}

TEST(HttpEndpoint, HeadHasNoBody) {
  Server s;
  const std::string r = get(s.port(), "/metrics", "HEAD");
  EXPECT_EQ(r,
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/plain; version=0.0.4\r\n"
            "Content-Length: 14\r\n"
            "Connection: close\r\n"
            "\r\n");
  EXPECT_EQ(s.calls(), 1) << "HEAD reaches the handler";
}

TEST(HttpEndpoint, OtherMethodsGet405) {
  Server s;
  for (const char *m : {"POST", "PUT", "DELETE", "OPTIONS", "get"}) {
    const std::string r = get(s.port(), "/metrics", m);
    EXPECT_EQ(r.rfind("HTTP/1.1 405 Method Not Allowed\r\n", 0), 0u) << m << ": " << r;
    EXPECT_NE(r.find("\r\nAllow: GET, HEAD\r\n"), std::string::npos) << r;
    EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos) << r;
  }
  EXPECT_EQ(s.calls(), 0);
}

TEST(HttpEndpoint, RequestSplitOverSeveralWrites) {
  Server s;
  Client c(s.port());
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\n\r\n";
  for (size_t i = 0; i < req.size(); i += 7) {
    c.send(req.substr(i, 7));
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    if (i + 7 < req.size()) {
      EXPECT_FALSE(c.readable()) << "answered before the head was complete";
    }
  }
  const std::string r = c.read_all();
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(body_of(r), "cachekit_up 1\n");
  EXPECT_EQ(s.calls(), 1);
}

TEST(HttpEndpoint, MalformedRequestGets400) {
  Server s;
  Client c(s.port());
  c.send("GET /metrics HTTP/1.1\r\nbad header\r\n\r\n");
  const std::string r = c.read_all();
  EXPECT_EQ(r.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << r;
  Client tls(s.port());
  tls.send(std::string("\x16\x03\x01\x00\xa5\x01\x00\x00", 8));
  const std::string r2 = tls.read_all();
  EXPECT_EQ(r2.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << "without waiting for more";
  EXPECT_EQ(s.calls(), 0);
}

TEST(HttpEndpoint, OversizedHeadGets431) {
  HttpEndpointLimits limits;
  limits.max_request_bytes = 1024;
  Server s(limits);
  Client c(s.port());
  c.send("GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(20000, 'a') + "\r\n\r\n");
  const std::string r = c.read_all();
  EXPECT_EQ(r.rfind("HTTP/1.1 431 Request Header Fields Too Large\r\n", 0), 0u) << r;
  EXPECT_EQ(s.calls(), 0);

  // A head of exactly the limit is fine; one byte more is not.
  const std::string start = "GET /metrics HTTP/1.1\r\nX-Padding: ";
  const std::string exact = start + std::string(1024 - start.size() - 4, 'b') + "\r\n\r\n";
  ASSERT_EQ(exact.size(), 1024u);
  Client ok(s.port());
  ok.send(exact);
  EXPECT_EQ(ok.read_all().rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
  Client over(s.port());
  over.send(start + std::string(1024 - start.size() - 3, 'b') + "\r\n\r\n");
  EXPECT_EQ(over.read_all().rfind("HTTP/1.1 431 ", 0), 0u);
}

TEST(HttpEndpoint, SlowClientsTimeOutWithoutHoldingUpOthers) {
  HttpEndpointLimits limits;
  limits.request_timeout_ms = 800;
  Server s(limits);
  const auto start = Clock::now();
  Client slow(s.port());
  slow.send("GET /metrics HTTP/1.1\r\nHo");
  // Another client sends one byte at a time: a steady trickle does not extend its deadline.
  Client trickle(s.port());
  std::atomic<bool> stop_trickle{false};
  std::thread trickler([&] {
    const std::string req = "GET /metrics HTTP/1.1\r\nX-Slow: " + std::string(1000, 'x');
    for (char ch : req) {
      if (stop_trickle.load() || !trickle.send(std::string(1, ch))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  // Served at once while both are pending.
  const std::string r = get(s.port(), "/metrics");
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_FALSE(slow.readable()) << "the slow client has not timed out yet";
  EXPECT_LT(ms_since(start), 800);

  const std::string r408 = slow.read_all();
  EXPECT_EQ(r408.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << r408;
  EXPECT_TRUE(slow.eof());
  EXPECT_GE(ms_since(start), 700);

  ASSERT_TRUE(trickle.readable(5000));
  const std::string t408 = trickle.read_all();
  stop_trickle.store(true);
  trickler.join();
  EXPECT_EQ(t408.rfind("HTTP/1.1 408 Request Timeout\r\n", 0), 0u) << t408;
  EXPECT_LT(ms_since(start), 4000);
  EXPECT_EQ(s.calls(), 1);
  EXPECT_TRUE(eventually([&] { return s.open_clients() == 0; }));
}

TEST(HttpEndpoint, ClientsBeyondTheLimitAreTurnedAway) {
  HttpEndpointLimits limits;
  limits.max_clients = 2;
  limits.request_timeout_ms = 10000;
  Server s(limits);
  auto idle1 = std::make_unique<Client>(s.port());
  auto idle2 = std::make_unique<Client>(s.port());
  ASSERT_TRUE(eventually([&] { return s.open_clients() == 2; }));

  Client extra(s.port());
  extra.send("GET /metrics HTTP/1.1\r\n\r\n");
  const auto start = Clock::now();
  const std::string r = extra.read_all();
  EXPECT_LT(ms_since(start), 3000) << "closed at once, not after the request timeout";
  // Either the 503 arrived or the connection was reset under it; never served.
  EXPECT_TRUE(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0) == 0 ||
              (r.empty() && (extra.eof() || extra.last_errno() == ECONNRESET)))
      << r << " errno " << extra.last_errno();
  EXPECT_EQ(s.calls(), 0);
  EXPECT_EQ(s.open_clients(), 2u);

  idle1.reset();
  idle2.reset();
  ASSERT_TRUE(eventually([&] { return s.open_clients() == 0; })) << "closed when clients leave";
  EXPECT_EQ(get(s.port(), "/metrics").rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(HttpEndpoint, HandlerExceptionGives500AndTheEndpointGoesOn) {
  Server s;
  const std::string r = get(s.port(), "/throw");
  EXPECT_EQ(r.rfind("HTTP/1.1 500 Internal Server Error\r\n", 0), 0u) << r;
  EXPECT_EQ(body_of(r), "internal error\n") << "the exception text stays inside";
  EXPECT_EQ(get(s.port(), "/metrics").rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
}

TEST(HttpEndpoint, LargeRepliesArriveWhole) {
  std::string big(8 << 20, ' ');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  Server s({}, big);
  const std::string r = get(s.port(), "/big");
  EXPECT_NE(r.find("\r\nContent-Length: 8388608\r\n"), std::string::npos);
  EXPECT_TRUE(body_of(r) == s.big_body) << "body of " << body_of(r).size() << " bytes";
}

TEST(HttpEndpoint, AReaderThatNeverReadsIsCutOffWithoutBlockingOthers) {
  HttpEndpointLimits limits;
  limits.write_timeout_ms = 700;
  Server s(limits, std::string(16 << 20, 'z'));
  Client stuck(s.port(), 4096);
  stuck.send("GET /big HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(eventually([&] { return s.calls() == 1; }));
  const auto start = Clock::now();
  // Others are served while the big reply is stuck.
  for (int i = 0; i < 3; ++i) {
    const std::string r = get(s.port(), "/metrics");
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  }
  EXPECT_LT(ms_since(start), 700) << "served before the stuck one's write timeout";
  EXPECT_GE(s.open_clients(), 1u);
  ASSERT_TRUE(eventually([&] { return s.open_clients() == 0; })) << "the stuck one is closed";
  const std::string got = stuck.read_all();
  EXPECT_LT(got.size(), s.big_body.size()) << "the reply was cut off";
}

TEST(HttpEndpoint, ClientGivingUpMidRequestIsForgotten) {
  Server s;
  {
    Client c(s.port());
    c.send("GET /metr");
    ASSERT_TRUE(eventually([&] { return s.open_clients() == 1; }));
  }
  EXPECT_TRUE(eventually([&] { return s.open_clients() == 0; }));
  EXPECT_EQ(s.calls(), 0);
}

TEST(HttpEndpoint, ClientThatShutsDownItsWriteSideIsStillAnswered) {
  Server s;
  Client c(s.port());
  c.send("GET /metrics HTTP/1.0\r\n\r\n");
  c.shutdown_write();  // as `printf ... | nc -N` does: the request and EOF arrive together
  const std::string r = c.read_all();
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_EQ(body_of(r), "cachekit_up 1\n");
}

TEST(HttpEndpoint, BusyPortThrows) {
  HttpEndpoint first("127.0.0.1:0");
  const std::string addr = "127.0.0.1:" + std::to_string(first.port());
  try {
    HttpEndpoint second(addr);
    FAIL() << "bound twice to " << addr;
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), "58000");
    const std::string m = e.what();
    EXPECT_NE(m.find(addr), std::string::npos) << m;
    EXPECT_NE(m.find("Address already in use"), std::string::npos) << m;
  }
  EXPECT_THROW(HttpEndpoint("nonsense"), Error);
}

TEST(HttpEndpoint, DestructorClosesConnections) {
  auto e = std::make_unique<HttpEndpoint>("localhost:0");
  Client c(e->port());
  c.send("GET /metr");
  for (int i = 0; i < 10 && e->open_clients() == 0; ++i)
    e->poll_once(50, [](const HttpRequestHead &) { return HttpReply{}; });
  ASSERT_EQ(e->open_clients(), 1u);
  e.reset();
  EXPECT_EQ(c.read_all(), "");
  EXPECT_TRUE(c.eof() || c.last_errno() == ECONNRESET);
}

TEST(HttpEndpoint, PollOnceReturnsWithinItsTimeout) {
  HttpEndpoint e("127.0.0.1:0");
  const auto start = Clock::now();
  e.poll_once(100, [](const HttpRequestHead &) { return HttpReply{}; });
  const int64_t took = ms_since(start);
  EXPECT_GE(took, 90);
  EXPECT_LT(took, 2000);
  const auto start0 = Clock::now();
  e.poll_once(0, [](const HttpRequestHead &) { return HttpReply{}; });
  EXPECT_LT(ms_since(start0), 50);
}

TEST(HttpEndpoint, Ipv6Loopback) {
  std::unique_ptr<HttpEndpoint> e;
  try {
    e = std::make_unique<HttpEndpoint>("[::1]:0");
  } catch (const Error &err) {
    GTEST_SKIP() << "no IPv6 loopback here: " << err.what();
  }
  const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  struct sockaddr_in6 sin6;
  std::memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(e->port());
  sin6.sin6_addr = in6addr_loopback;
  ASSERT_EQ(connect(fd, reinterpret_cast<struct sockaddr *>(&sin6), sizeof sin6), 0);
  const std::string req = "GET /health HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  std::string got;
  for (int i = 0; i < 100; ++i) {
    e->poll_once(20, [](const HttpRequestHead &h) {
      return HttpReply{200, "application/json", "{\"target\": \"" + h.target + "\"}"};
    });
    char buf[1024];
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n == 0) break;
  }
  ::close(fd);
  EXPECT_EQ(body_of(got), "{\"target\": \"/health\"}") << got;
}

}  // namespace
}  // namespace cachekit
