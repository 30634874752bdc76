#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/host_allowlist.h"
#include "core/http_request.h"

namespace cachekit {
namespace {

using Clock = std::chrono::steady_clock;

// A one-connection-at-a-time HTTP/1.1 server on 127.0.0.1 for the tests. The
// handler gets the raw request (head and body) and returns the raw response;
// an empty response means "never answer" (the connection is held until the
// client gives up or the server stops).
class TestHttpServer {
 public:
  using Handler = std::function<std::string(const std::string &request)>;

  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
        listen(listen_fd_, 16) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0 ||
        pipe(stop_pipe_) != 0)
      throw std::runtime_error("test http server setup failed");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { run(); });
  }

  ~TestHttpServer() {
    char c = 'x';
    (void)!write(stop_pipe_[1], &c, 1);
    thread_.join();
    close(listen_fd_);
    close(stop_pipe_[0]);
    close(stop_pipe_[1]);
  }

  int port() const { return port_; }
  std::string url(const std::string &path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return connections_.load(); }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  // Waits for fd to become readable; false when the server is stopping.
  bool wait_readable(int fd) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    while (poll(fds, 2, -1) < 0) {
    }
    return (fds[1].revents & POLLIN) == 0;
  }

  void run() {
    while (wait_readable(listen_fd_)) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      serve(fd);
      close(fd);
    }
  }

  void serve(int fd) {
    std::string request;
    std::size_t need = std::string::npos;
    char buf[4096];
    while (need == std::string::npos || request.size() < need) {
      if (!wait_readable(fd)) return;
      ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) return;
      request.append(buf, static_cast<std::size_t>(n));
      std::size_t head_end = request.find("\r\n\r\n");
      if (need == std::string::npos && head_end != std::string::npos) {
        std::size_t length = 0;
        std::string head = request.substr(0, head_end);
        for (char &ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::size_t at = head.find("\r\ncontent-length:");
        if (at != std::string::npos) length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
        need = head_end + 4 + length;
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(request);
    }
    std::string response = handler_(request);
    if (response.empty()) {
      while (wait_readable(fd) && read(fd, buf, sizeof buf) > 0) {
      }
      return;
    }
    for (std::size_t sent = 0; sent < response.size();) {
      ssize_t n = send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;  // the client stopped reading (body cap)
      sent += static_cast<std::size_t>(n);
    }
    shutdown(fd, SHUT_WR);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string respond(int status, const std::string &reason, const std::string &body,
                    const std::string &extra_headers = "") {
  return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n" + extra_headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

bool has_header(const HttpResponse &r, const std::string &name, const std::string &value) {
  for (const auto &[n, v] : r.headers)
    if (n == name && v == value) return true;
  return false;
}

// Runs the request and returns the error it must throw.
Error http_error(const HttpRequest &req, const HostAllowList &allow, std::size_t cap = 1024) {
  try {
    perform_http(req, allow, cap);
  } catch (const Error &e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << req.method << " " << req.url;
  return Error(sqlstate::kInternalError, "no error");
}

const HostAllowList kLoopback = HostAllowList::parse("loopback");

TEST(HttpRequest, GetReturnsStatusHeadersAndBody) {
  TestHttpServer server([](const std::string &) {
    return respond(201, "Created", "hello",
                   "Content-Type: text/plain\r\nX-Two: a\r\nX-Two: b\r\nX-Folded: one\r\n two\r\n");
  });
  HttpRequest req;
  req.url = server.url("/path?q=1");
  HttpResponse r = perform_http(req, kLoopback, 1024);
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "hello");
  EXPECT_FALSE(r.body_truncated);
  EXPECT_TRUE(has_header(r, "Content-Type", "text/plain"));
  EXPECT_TRUE(has_header(r, "X-Two", "a"));
  EXPECT_TRUE(has_header(r, "X-Two", "b"));
  EXPECT_TRUE(has_header(r, "X-Folded", "one two"));
  EXPECT_TRUE(has_header(r, "Content-Length", "5"));
  EXPECT_EQ(r.retry_after_seconds, -1);
  EXPECT_GT(r.total_seconds, 0);
  EXPECT_LT(r.total_seconds, 10);
  ASSERT_EQ(server.connections(), 1);
  std::string request = server.requests().at(0);
  EXPECT_EQ(request.rfind("GET /path?q=1 HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nUser-Agent: pg_cachekit\r\n"), std::string::npos) << request;
}

TEST(HttpRequest, PostSendsHeadersAndBody) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "{}"); });
  HttpRequest req;
  req.method = "post";
  req.url = server.url("/hook");
  req.headers = {
      {"Authorization", "Bearer abc"}, {"Content-Type", "application/json"}, {"X-Empty", ""}};
  req.body = std::string(2000, 'x');  // large enough for curl's Expect: 100-continue
  auto start = Clock::now();
  HttpResponse r = perform_http(req, kLoopback, 1024);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(900));  // no 1 s Expect wait
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(server.requests().size(), 1u);
  std::string request = server.requests()[0];
  EXPECT_EQ(request.rfind("POST /hook HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nAuthorization: Bearer abc\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nContent-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(request.find("\r\nX-Empty:"), std::string::npos);
  EXPECT_NE(request.find("\r\nContent-Length: 2000\r\n"), std::string::npos);
  EXPECT_EQ(request.find("Expect:"), std::string::npos);
  EXPECT_EQ(request.substr(request.size() - 2000), req.body);
}

TEST(HttpRequest, OtherMethods) {
  TestHttpServer server([](const std::string &request) {
    if (request.rfind("HEAD", 0) == 0)
      return std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    return respond(204, "No Content", "");
  });
  for (const char *method : {"PUT", "PATCH", "DELETE", "OPTIONS", "GET"}) {
    HttpRequest req;
    req.method = method;
    req.url = server.url("/r");
    req.body = std::string(method) == "DELETE" ? "" : "data";
    HttpResponse r = perform_http(req, kLoopback, 1024);
    EXPECT_EQ(r.status, 204) << method;
    std::string request = server.requests().back();
    EXPECT_EQ(request.rfind(std::string(method) + " /r HTTP/1.1\r\n", 0), 0u) << request;
    // No Content-Type unless the task gives one (curl would say form-urlencoded).
    EXPECT_EQ(request.find("Content-Type"), std::string::npos) << request;
    if (!req.body.empty()) {
      EXPECT_NE(request.find("\r\nContent-Length: 4\r\n"), std::string::npos) << request;
      EXPECT_EQ(request.substr(request.size() - 4), "data") << method;
    }
  }
  HttpRequest put;
  put.method = "PUT";
  put.url = server.url("/empty");
  perform_http(put, kLoopback, 1024);
  EXPECT_NE(server.requests().back().find("\r\nContent-Length: 0\r\n"), std::string::npos);

  HttpRequest head;
  head.method = "HEAD";
  head.url = server.url("/h");
  HttpResponse r = perform_http(head, kLoopback, 1024);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(has_header(r, "Content-Length", "5"));
}

TEST(HttpRequest, BodyIsCapped) {
  std::string big(200000, 'b');
  TestHttpServer server([&big](const std::string &) { return respond(200, "OK", big); });
  HttpRequest req;
  req.url = server.url();
  HttpResponse r = perform_http(req, kLoopback, 1000);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, big.substr(0, 1000));
  EXPECT_TRUE(r.body_truncated);

  HttpResponse exact = perform_http(req, kLoopback, big.size());
  EXPECT_EQ(exact.body.size(), big.size());
  EXPECT_FALSE(exact.body_truncated);

  HttpResponse none = perform_http(req, kLoopback, 0);
  EXPECT_EQ(none.status, 200);
  EXPECT_EQ(none.body, "");
  EXPECT_TRUE(none.body_truncated);
}

TEST(HttpRequest, RedirectIsNotFollowed) {
  TestHttpServer server([](const std::string &) {
    return respond(302, "Found", "", "Location: http://127.0.0.1:1/elsewhere\r\n");
  });
  HttpRequest req;
  req.url = server.url();
  HttpResponse r = perform_http(req, kLoopback, 1024);
  EXPECT_EQ(r.status, 302);
  EXPECT_TRUE(has_header(r, "Location", "http://127.0.0.1:1/elsewhere"));
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpRequest, RetryableStatusKeepsRetryAfterHeader) {
  TestHttpServer server(
      [](const std::string &) { return respond(503, "Unavailable", "", "Retry-After: 7\r\n"); });
  HttpRequest req;
  req.url = server.url();
  HttpResponse r = perform_http(req, kLoopback, 1024);
  EXPECT_EQ(r.status, 503);
  EXPECT_TRUE(has_header(r, "Retry-After", "7"));
  EXPECT_EQ(r.retry_after_seconds, -1);  // the caller parses it
  EXPECT_TRUE(http_status_retryable(r.status));
  for (long s : {429L, 500L, 502L, 503L, 504L}) EXPECT_TRUE(http_status_retryable(s)) << s;
  for (long s : {200L, 201L, 301L, 400L, 401L, 404L, 409L, 501L, 505L})
    EXPECT_FALSE(http_status_retryable(s)) << s;
}

TEST(HttpRequest, TimeoutIs57014) {
  TestHttpServer server([](const std::string &) { return std::string(); });
  HttpRequest req;
  req.url = server.url();
  req.timeout_ms = 300;
  req.headers = {{"Authorization", "Bearer s3cret-token"}};
  auto start = Clock::now();
  Error e = http_error(req, kLoopback);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kQueryCanceled);
  EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos);
  EXPECT_EQ(e.detail().find("s3cret"), std::string::npos);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpRequest, RefusedAddressMakesNoConnection) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "x"); });
  HttpRequest req;
  req.url = server.url("/?token=s3cret");
  Error e = http_error(req, HostAllowList::parse("10.0.0.0/8"));
  EXPECT_STREQ(e.sqlstate(), sqlstate::kInsufficientPrivilege);
  EXPECT_NE(std::string(e.what()).find("\"127.0.0.1\""), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos);
  EXPECT_EQ(e.detail().find("s3cret"), std::string::npos);
  EXPECT_EQ(server.connections(), 0);

  Error nothing = http_error(req, HostAllowList::parse(""));
  EXPECT_STREQ(nothing.sqlstate(), sqlstate::kInsufficientPrivilege);
  EXPECT_EQ(server.connections(), 0);
}

// A listed name that resolves to loopback is refused at connect time unless
// loopback is allowed too: what DNS rebinding would exploit.
TEST(HttpRequest, NameResolvingToLoopbackIsCheckedAtConnect) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "x"); });
  HttpRequest req;
  req.url = "http://localhost:" + std::to_string(server.port()) + "/";

  Error unlisted = http_error(req, kLoopback);  // loopback, but the name is not listed
  EXPECT_STREQ(unlisted.sqlstate(), sqlstate::kInsufficientPrivilege);
  EXPECT_NE(std::string(unlisted.what()).find("\"localhost\""), std::string::npos);

  for (const char *setting : {"localhost", "*", "*,10.0.0.0/8"}) {
    Error e = http_error(req, HostAllowList::parse(setting));
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInsufficientPrivilege) << setting;
    EXPECT_NE(e.detail().find("127.0.0.1"), std::string::npos) << setting << ": " << e.detail();
    EXPECT_NE(e.detail().find("no connection was made"), std::string::npos) << e.detail();
  }
  EXPECT_EQ(server.connections(), 0);

  HttpResponse r = perform_http(req, HostAllowList::parse("localhost,loopback"), 1024);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpRequest, EnvironmentProxyIsIgnored) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "direct"); });
  // A proxy on a refused address: using it would fail the request.
  setenv("http_proxy", "http://192.0.2.1:3128", 1);
  setenv("HTTP_PROXY", "http://192.0.2.1:3128", 1);
  setenv("all_proxy", "http://192.0.2.1:3128", 1);
  HttpRequest req;
  req.url = server.url();
  req.timeout_ms = 5000;
  HttpResponse r;
  EXPECT_NO_THROW(r = perform_http(req, kLoopback, 1024));
  unsetenv("http_proxy");
  unsetenv("HTTP_PROXY");
  unsetenv("all_proxy");
  EXPECT_EQ(r.body, "direct");
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpRequest, HeaderInjectionRefused) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "x"); });
  HttpRequest req;
  req.url = server.url();
  for (const char *value : {"v\r\nX-Evil: 1", "v\nX-Evil: 1", "v\rX"}) {
    req.headers = {{"X-Token", value}};
    Error e = http_error(req, kLoopback);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
    EXPECT_NE(std::string(e.what()).find("X-Token"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("Evil"), std::string::npos) << e.what();
    EXPECT_EQ(e.detail().find("Evil"), std::string::npos);
  }
  req.headers = {{std::string("X-Nul"), std::string("a\0b", 3)}};
  EXPECT_STREQ(http_error(req, kLoopback).sqlstate(), sqlstate::kInvalidParameterValue);
  for (const char *name : {"X-Evil: 1\r\nX", "Bad Name", "Bad:Name", "", "X\xc3\xa4"}) {
    req.headers = {{name, "v"}};
    Error e = http_error(req, kLoopback);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << name;
    EXPECT_EQ(std::string(e.what()).find("Evil"), std::string::npos) << e.what();
  }
  for (const char *name : {"Content-Length", "transfer-encoding"}) {
    req.headers = {{name, "5"}};
    EXPECT_STREQ(http_error(req, kLoopback).sqlstate(), sqlstate::kInvalidParameterValue);
  }
  EXPECT_EQ(server.connections(), 0);
}

TEST(HttpRequest, BadRequestsRefused) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "x"); });
  auto expect_invalid = [&](HttpRequest req) {
    Error e = http_error(req, HostAllowList::parse("loopback,*"));
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue)
        << req.method << " " << req.url << ": " << e.what();
  };
  HttpRequest req;
  req.url = server.url();
  for (const char *method : {"TRACE", "CONNECT", "GET ", "", "G\r\nET"}) {
    HttpRequest r = req;
    r.method = method;
    expect_invalid(r);
  }
  for (std::string url :
       {std::string("ftp://127.0.0.1:") + std::to_string(server.port()) + "/",
        std::string("file:///etc/passwd"), std::string("127.0.0.1/"), std::string("http://:80/"),
        std::string("http://127.0.0.1:99999/"), std::string(""), server.url("/a b"),
        server.url("/\r\nX: y"), std::string("gopher://127.0.0.1/")}) {
    HttpRequest r = req;
    r.url = url;
    expect_invalid(r);
  }
  HttpRequest head = req;
  head.method = "HEAD";
  head.body = "x";
  expect_invalid(head);
  for (long t : {0L, -5L, 25L * 60 * 60 * 1000}) {
    HttpRequest r = req;
    r.timeout_ms = t;
    expect_invalid(r);
  }
  EXPECT_EQ(server.connections(), 0);
}

TEST(HttpRequest, ConnectionRefusedIs08001) {
  int port;
  {
    TestHttpServer gone([](const std::string &) { return std::string(); });
    port = gone.port();
  }  // closed: nothing listens on the port any more
  HttpRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  Error e = http_error(req, kLoopback);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect);
  EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos);
  EXPECT_FALSE(e.detail().empty());
}

TEST(HttpRequest, ConnectionClosedMidResponseIs08006) {
  TestHttpServer server([](const std::string &) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
  });
  HttpRequest req;
  req.url = server.url();
  Error e = http_error(req, kLoopback);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kConnectionFailure) << e.what() << " " << e.detail();
}

}  // namespace
}  // namespace cachekit
