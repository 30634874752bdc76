#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
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

TEST(HttpRequest, PurgeAndBan) {
  TestHttpServer server([](const std::string &) { return respond(200, "Purged", "ok"); });
  HttpRequest purge;
  purge.method = "purge";
  purge.url = server.url("/assets/app.css");
  EXPECT_EQ(perform_http(purge, kLoopback, 1024).status, 200);
  std::string request = server.requests().back();
  EXPECT_EQ(request.rfind("PURGE /assets/app.css HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_EQ(request.find("Content-Length"), std::string::npos) << request;

  HttpRequest ban;
  ban.method = "BAN";
  ban.url = server.url("/");
  ban.headers = {{"X-Ban-Url", "^/assets/"}};
  EXPECT_EQ(perform_http(ban, kLoopback, 1024).status, 200);
  request = server.requests().back();
  EXPECT_EQ(request.rfind("BAN / HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_NE(request.find("\r\nX-Ban-Url: ^/assets/\r\n"), std::string::npos) << request;

  ban.body = "obj.http.x-tag ~ a";
  ban.headers.push_back({"Content-Type", "text/plain"});
  perform_http(ban, kLoopback, 1024);
  request = server.requests().back();
  EXPECT_EQ(request.rfind("BAN / HTTP/1.1\r\n", 0), 0u) << request;
  EXPECT_EQ(request.substr(request.size() - ban.body.size()), ban.body);
}

// --- Servers in Python: TLS, SigV4 checked by botocore, parallel requests ---

// A threaded HTTP/1.1 server on 127.0.0.1, configured by a JSON object in
// argv[1]: "dir" (it writes DIR/port once listening), "cert"/"key" (serve
// HTTPS), "sigv4" (check each request's signature with botocore), "hold" and
// "total" (hold each request until min(hold, total - answered) are in flight,
// 3 s at most, so that parallel clients meet there while a serial one cannot,
// then 0.2 s more unless more than `hold` arrive). Answers
// every request with 200 and a JSON description of it; GET /_fake/state
// tells how many requests were answered and how many were in flight at once.
constexpr const char kPyServer[] = R"PY(
import datetime, json, os, re, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
cfg = json.loads(sys.argv[1])
cond = threading.Condition()
state = {"inflight": 0, "max_inflight": 0, "answered": 0}

def verify(h, body):
    # What AWS does: recompute the signature over the headers the client
    # says it signed, with the secret it shares, and compare.
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    sig = cfg["sigv4"]
    auth = h.headers.get_all("Authorization") or []
    if len(auth) != 1:
        return "not one Authorization header"
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/, ]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}", auth[0])
    if not m:
        return "malformed Authorization header"
    if m.group(1, 3, 4) != (sig["key"], sig["region"], sig["service"]):
        return "wrong credential scope"
    dates = h.headers.get_all("X-Amz-Date") or []
    if len(dates) != 1:
        return "%d X-Amz-Date headers" % len(dates)
    when = datetime.datetime.strptime(dates[0], "%Y%m%dT%H%M%SZ")
    if abs((when - datetime.datetime.utcnow()).total_seconds()) > 900 or dates[0][:8] != m.group(2):
        return "stale or inconsistent date"
    scheme = "https" if cfg.get("cert") else "http"
    req = AWSRequest(method=h.command, url=scheme + "://" + h.headers["Host"] + h.path, data=body)
    for name in m.group(5).split(";"):
        values = h.headers.get_all(name)
        if not values:
            return "signed header %r not sent" % name
        for v in values:
            req.headers[name] = v
    req.context["timestamp"] = dates[0]
    signer = (S3SigV4Auth if sig["service"] == "s3" else SigV4Auth)(
        Credentials(sig["key"], sig["secret"]), sig["service"], sig["region"])
    if sig["service"] == "s3":
        sent = h.headers.get("X-Amz-Content-SHA256")
        if sent is None:
            return "no X-Amz-Content-SHA256 header"
        if sent != "UNSIGNED-PAYLOAD" and sent != signer.payload(req):
            return "X-Amz-Content-SHA256 is not the body's hash"
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    expected = "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, Signature=%s" % (
        signer.scope(req), signer.signed_headers(signer.headers_to_sign(req)), signature)
    return "ok" if expected == auth[0] else "mismatch; canonical request:\n" + canonical

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, doc):
        data = json.dumps(doc, sort_keys=True).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_fake/state":
            with cond:
                return self.reply({"answered": state["answered"], "max_inflight": state["max_inflight"]})
        doc = {"method": self.command, "path": self.path, "body": body.decode("latin-1"),
               "headers": [k.lower() for k in self.headers.keys()],
               "amz": {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("x-amz-")}}
        if "sigv4" in cfg:
            doc["sigv4"] = verify(self, body)
        with cond:
            state["inflight"] += 1
            state["max_inflight"] = max(state["max_inflight"], state["inflight"])
            cond.notify_all()
            if cfg.get("hold"):
                cond.wait_for(lambda: state["inflight"] >= min(cfg["hold"], cfg["total"] - state["answered"]),
                              timeout=3)
                # A client with more in flight than it may have shows it now.
                cond.wait_for(lambda: state["inflight"] > cfg["hold"], timeout=0.2)
            # Counted out before the client can see the answer and start another.
            state["inflight"] -= 1
            state["answered"] += 1
            cond.notify_all()
        self.reply(doc)
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = handle_any
    do_PURGE = do_BAN = handle_any

class Server(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass  # clients that refuse the certificate are part of the tests

server = Server(("127.0.0.1", 0), Handler)
if cfg.get("cert"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg["cert"], cfg["key"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
with open(os.path.join(cfg["dir"], "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(cfg["dir"], "port.tmp"), os.path.join(cfg["dir"], "port"))
server.serve_forever()
)PY";

int run_quietly(const std::vector<std::string> &argv, pid_t *pid_out = nullptr) {
  std::vector<char *> args;
  for (const std::string &a : argv) args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  if (pid_out != nullptr) {
    *pid_out = pid;
    return 0;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Debian's Python first: its python3-botocore is the reference for SigV4.
std::string python_with(const char *module) {
  for (const char *python : {"/usr/bin/python3", "python3"})
    if (run_quietly({python, "-c", std::string("import ") + module}) == 0) return python;
  return {};
}

std::string file_text(const std::filesystem::path &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::filesystem::path kMakeTestCa =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "cdn" / "make_test_ca.sh";

// A scratch directory with a test CA in ca/, and kPyServer processes.
class PyServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ckhttp-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }

  void TearDown() override {
    for (pid_t pid : pids_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // Runs make_test_ca.sh into dir_/name.
  void make_ca(const std::string &name = "ca") {
    ASSERT_TRUE(std::filesystem::exists(kMakeTestCa)) << kMakeTestCa;
    ASSERT_EQ(run_quietly({kMakeTestCa.string(), (dir_ / name).string()}), 0);
  }
  std::string ca_path(const std::string &file, const std::string &name = "ca") const {
    return (dir_ / name / file).string();
  }

  // Starts kPyServer with `config` (JSON members, without braces) and
  // returns its port; 0 after a failure.
  int start(const std::string &python, const std::string &config) {
    std::filesystem::path state = dir_ / ("server" + std::to_string(pids_.size()));
    std::filesystem::create_directory(state);
    std::string json =
        "{\"dir\": \"" + state.string() + "\"" + (config.empty() ? "" : ", ") + config + "}";
    pid_t pid;
    if (run_quietly({python, "-c", kPyServer, json}, &pid) != 0) {
      ADD_FAILURE() << "could not start " << python;
      return 0;
    }
    pids_.push_back(pid);
    auto deadline = Clock::now() + std::chrono::seconds(15);
    while (!std::filesystem::exists(state / "port")) {
      int status;
      if (waitpid(pid, &status, WNOHANG) != 0) {
        pids_.pop_back();
        ADD_FAILURE() << "test server exited";
        return 0;
      }
      if (Clock::now() > deadline) {
        ADD_FAILURE() << "test server did not start";
        return 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return std::stoi(file_text(state / "port"));
  }

  std::filesystem::path dir_;
  std::vector<pid_t> pids_;
};

std::string url_of(const char *scheme, int port, const std::string &path,
                   const char *host = "127.0.0.1") {
  return std::string(scheme) + "://" + host + ":" + std::to_string(port) + path;
}

bool contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

// --- TLS with a test CA ------------------------------------------------------

TEST_F(PyServerTest, MakeTestCaIsIdempotent) {
  ASSERT_NO_FATAL_FAILURE(make_ca());
  std::string ca = file_text(ca_path("ca.pem"));
  std::string cert = file_text(ca_path("server.pem"));
  std::string key = file_text(ca_path("server-key.pem"));
  EXPECT_TRUE(contains(ca, "BEGIN CERTIFICATE"));
  EXPECT_TRUE(contains(cert, "BEGIN CERTIFICATE"));
  EXPECT_TRUE(contains(key, "PRIVATE KEY"));
  ASSERT_NO_FATAL_FAILURE(make_ca());
  EXPECT_EQ(file_text(ca_path("ca.pem")), ca);
  EXPECT_EQ(file_text(ca_path("server.pem")), cert);
  EXPECT_EQ(file_text(ca_path("server-key.pem")), key);
  // A server certificate that no longer matches its CA is made again.
  std::filesystem::remove(ca_path("ca.pem"));
  ASSERT_NO_FATAL_FAILURE(make_ca("other"));
  std::filesystem::copy_file(ca_path("ca.pem", "other"), ca_path("ca.pem"));
  ASSERT_NO_FATAL_FAILURE(make_ca());
  EXPECT_NE(file_text(ca_path("server.pem")), cert);
  EXPECT_EQ(run_quietly({"openssl", "verify", "-CAfile", ca_path("ca.pem"), ca_path("server.pem")}),
            0);
}

TEST_F(PyServerTest, HttpsVerifiesAgainstCaFile) {
  std::string python = python_with("ssl");
  if (python.empty()) GTEST_SKIP() << "no python3";
  ASSERT_NO_FATAL_FAILURE(make_ca());
  ASSERT_NO_FATAL_FAILURE(make_ca("other"));
  int port = start(python, "\"cert\": \"" + ca_path("server.pem") + "\", \"key\": \"" +
                               ca_path("server-key.pem") + "\"");
  ASSERT_NE(port, 0);

  HttpRequest req;
  req.url = url_of("https", port, "/tls");
  req.ca_file = ca_path("ca.pem");
  HttpResponse r = perform_http(req, kLoopback, 4096);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.body, "\"path\": \"/tls\"")) << r.body;

  // The name in the certificate's subjectAltName verifies too.
  HttpRequest by_name = req;
  by_name.url = url_of("https", port, "/name", "localhost");
  EXPECT_EQ(perform_http(by_name, HostAllowList::parse("localhost,loopback"), 4096).status, 200);

  HttpRequest state = req;
  state.url = url_of("https", port, "/_fake/state");
  EXPECT_TRUE(contains(perform_http(state, kLoopback, 4096).body, "\"answered\": 2"));

  // The system's CAs, another CA, no CA file: the handshake fails, 08001.
  for (std::string ca : {std::string(), ca_path("ca.pem", "other"), ca_path("missing.pem")}) {
    HttpRequest bad = req;
    bad.ca_file = ca;
    Error e = http_error(bad, kLoopback);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kUnableToConnect) << ca << ": " << e.what();
    EXPECT_TRUE(contains(e.what(), "127.0.0.1")) << e.what();
    EXPECT_FALSE(e.detail().empty());
  }
  EXPECT_TRUE(contains(perform_http(state, kLoopback, 4096).body, "\"answered\": 2"));
}

// --- AWS Signature Version 4 -------------------------------------------------

// AWS's documentation example credentials.
constexpr const char kAccessKey[] = "AKIDEXAMPLE";
constexpr const char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

std::string sigv4_config(const char *service, const char *secret = kSecret) {
  return std::string("\"sigv4\": {\"key\": \"") + kAccessKey + "\", \"secret\": \"" + secret +
         "\", \"region\": \"us-east-1\", \"service\": \"" + service + "\"}";
}

HttpRequest signed_request(const std::string &url, const char *service) {
  HttpRequest req;
  req.url = url;
  req.aws_sigv4 = std::string("aws:amz:us-east-1:") + service;
  req.user = kAccessKey;
  req.password = kSecret;
  return req;
}

class SigV4Test : public PyServerTest {
 protected:
  void SetUp() override {
    PyServerTest::SetUp();
    python_ = python_with("botocore");
    if (python_.empty()) GTEST_SKIP() << "python3-botocore is not installed";
  }
  std::string python_;
};

TEST_F(SigV4Test, PostBodyIsSignedAsBotocoreExpects) {
  int port = start(python_, sigv4_config("cloudfront"));
  ASSERT_NE(port, 0);
  HttpRequest req = signed_request(url_of("http", port, "/2020-05-31/distribution/E1/invalidation"),
                                   "cloudfront");
  req.method = "POST";
  req.headers = {{"Content-Type", "text/xml"}, {"X-Custom", "  two   spaces "}};
  req.body = "<InvalidationBatch><CallerReference>b1</CallerReference></InvalidationBatch>";
  HttpResponse r = perform_http(req, kLoopback, 8192);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
  EXPECT_TRUE(contains(r.body, "\"body\": \"<InvalidationBatch>")) << r.body;
  // libcurl adds X-Amz-Date and no payload hash header for this service.
  EXPECT_TRUE(contains(r.body, "\"amz\": {\"x-amz-date\": \"")) << r.body;
  EXPECT_FALSE(contains(r.body, "x-amz-content-sha256")) << r.body;

  // The same request checked with another secret does not verify: the check
  // above is not vacuous.
  int other = start(python_, sigv4_config("cloudfront", "another-secret"));
  ASSERT_NE(other, 0);
  req.url = url_of("http", other, "/2020-05-31/distribution/E1/invalidation");
  r = perform_http(req, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"mismatch")) << r.body;
}

TEST_F(SigV4Test, OtherMethodsQueriesAndGivenPayloadHash) {
  int port = start(python_, sigv4_config("execute-api"));
  ASSERT_NE(port, 0);
  for (const char *method : {"GET", "HEAD", "DELETE", "PUT", "PURGE"}) {
    HttpRequest req = signed_request(
        url_of("http", port, "/stage/items/a-b_c.d~e?Action=List&max-items=10&x=%2F"),
        "execute-api");
    req.method = method;
    if (std::string(method) == "PUT") {
      req.body = "{\"a\": 1}";
      req.headers = {{"Content-Type", "application/json"}};
    }
    HttpResponse r = perform_http(req, kLoopback, 8192);
    EXPECT_EQ(r.status, 200) << method;
    if (std::string(method) != "HEAD") {
      EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << method << ": " << r.body;
    }
  }
  // A given x-amz-content-sha256 is what libcurl signs as the payload hash:
  // botocore takes it from the header too, and the signature verifies.
  HttpRequest req = signed_request(url_of("http", port, "/stage/p"), "execute-api");
  req.method = "POST";
  req.body = "hi";
  req.headers = {
      {"Content-Type", "text/plain"},
      {"x-amz-content-sha256", "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"}};
  HttpResponse r = perform_http(req, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
}

TEST_F(SigV4Test, S3GetsThePayloadHashHeader) {
  int port = start(python_, sigv4_config("s3"));
  ASSERT_NE(port, 0);
  HttpRequest get = signed_request(url_of("http", port, "/bucket/dir//a%20key.txt"), "s3");
  HttpResponse r = perform_http(get, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
  EXPECT_TRUE(contains(r.body,
                       "\"x-amz-content-sha256\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e"
                       "4649b934ca495991b7852b855\""))
      << r.body;

  HttpRequest put = signed_request(url_of("http", port, "/bucket/key"), "s3");
  put.method = "PUT";
  put.body = "hi";
  put.headers = {{"Content-Type", "text/plain"}};
  r = perform_http(put, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
  EXPECT_TRUE(contains(r.body, "\"x-amz-content-sha256\": \"UNSIGNED-PAYLOAD\"")) << r.body;

  put.headers.push_back(
      {"X-Amz-Content-Sha256", "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"});
  r = perform_http(put, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
  // A hash that is not the body's is sent as given (and refused by S3).
  put.body = "ho";
  r = perform_http(put, kLoopback, 8192);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"X-Amz-Content-SHA256 is not the body's hash\""))
      << r.body;
}

TEST_F(SigV4Test, SignedOverHttpsWithCaFile) {
  ASSERT_NO_FATAL_FAILURE(make_ca());
  int port = start(python_, sigv4_config("cloudfront") + ", \"cert\": \"" + ca_path("server.pem") +
                                "\", \"key\": \"" + ca_path("server-key.pem") + "\"");
  ASSERT_NE(port, 0);
  HttpRequest req = signed_request(
      url_of("https", port, "/2020-05-31/distribution/E1/invalidation", "localhost"), "cloudfront");
  req.method = "POST";
  req.ca_file = ca_path("ca.pem");
  req.headers = {{"Content-Type", "text/xml"}};
  req.body = "<InvalidationBatch/>";
  HttpResponse r = perform_http(req, HostAllowList::parse("localhost,loopback"), 8192);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(contains(r.body, "\"sigv4\": \"ok\"")) << r.body;
}

// What libcurl 7.88 would sign wrongly is refused before any connection, and
// no error names the credentials.
TEST(HttpRequest, SignedRequestRefusals) {
  TestHttpServer server([](const std::string &) { return respond(200, "OK", "x"); });
  auto base = [&](const std::string &path = "/p", const char *service = "cloudfront") {
    HttpRequest req = signed_request(server.url(path), service);
    req.method = "POST";
    req.body = "x";
    req.headers = {{"Content-Type", "text/plain"}};
    return req;
  };
  std::vector<std::pair<std::string, HttpRequest>> cases;
  auto add = [&](const std::string &what, std::function<void(HttpRequest &)> change,
                 const std::string &path = "/p", const char *service = "cloudfront") {
    HttpRequest req = base(path, service);
    change(req);
    cases.emplace_back(what, req);
  };
  for (const char *spec : {"aws", "aws:amz", "aws:amz:us-east-1", "aws:amz:us-east-1:s3:x",
                           "aws:amz::s3", "aws:a mz:us-east-1:s3", "aws:amz:us-east-1:s3\n"})
    add(std::string("sigv4 ") + spec, [spec](HttpRequest &r) { r.aws_sigv4 = spec; });
  add("no user", [](HttpRequest &r) { r.user.clear(); });
  add("no password", [](HttpRequest &r) { r.password.clear(); });
  add("no Content-Type", [](HttpRequest &r) { r.headers.clear(); });
  add("empty PUT without Content-Type", [](HttpRequest &r) {
    r.method = "PUT";
    r.body.clear();
    r.headers.clear();
  });
  for (const char *name : {"Authorization", "date", "X-Amz-Date"})
    add(name, [name](HttpRequest &r) { r.headers.push_back({name, "v"}); });
  add("empty header", [](HttpRequest &r) { r.headers.push_back({"X-Empty", ""}); });
  add("blank header", [](HttpRequest &r) { r.headers.push_back({"X-Blank", "  "}); });
  add("repeated header", [](HttpRequest &r) {
    r.headers.push_back({"X-Twice", "1"});
    r.headers.push_back({"x-twice", "2"});
  });
  add("prefix names", [](HttpRequest &r) {
    r.headers.push_back({"X-A", "1"});
    r.headers.push_back({"X-A-B", "2"});
  });
  add("host prefix", [](HttpRequest &r) { r.headers.push_back({"Host-Name", "1"}); });
  for (const char *path : {"/a%20b", "/a//b", "/a!b", "/a%2f", "/a:b"})
    add(
        std::string("path ") + path, [](HttpRequest &) {}, path);
  for (const char *path : {"/a%2f", "/a%2", "/a!b"})
    add(
        std::string("s3 path ") + path,
        [](HttpRequest &r) { r.aws_sigv4 = "aws:amz:us-east-1:s3"; }, path, "s3");
  for (const char *query : {"?b=1&a=2", "?a", "?a=1&", "?a=%2f", "?a=b/c", "?a=2&a=1", "?=1"})
    add(
        std::string("query ") + query, [](HttpRequest &) {}, std::string("/p") + query);
  for (auto &[what, req] : cases) {
    Error e = http_error(req, kLoopback);
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue) << what << ": " << e.what();
    for (const std::string &text : {std::string(e.what()), e.detail(), e.hint()}) {
      EXPECT_FALSE(contains(text, kSecret)) << what;
      EXPECT_FALSE(contains(text, kAccessKey)) << what;
    }
  }
  EXPECT_EQ(server.connections(), 0);

  // Credentials are for aws_sigv4 only.
  HttpRequest basic;
  basic.url = server.url();
  basic.user = "someone";
  EXPECT_STREQ(http_error(basic, kLoopback).sqlstate(), sqlstate::kInvalidParameterValue);
  basic.user.clear();
  basic.password = kSecret;
  Error e = http_error(basic, kLoopback);
  EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
  EXPECT_FALSE(contains(e.what(), kSecret));
  EXPECT_FALSE(contains(e.detail(), kSecret));
  EXPECT_EQ(server.connections(), 0);

  // Canonical paths and queries, and an empty signed GET, pass.
  HttpRequest ok = base("/a-b/c_d.e~f/?a=1&a=2&b=%2F&c=");
  EXPECT_EQ(perform_http(ok, kLoopback, 1024).status, 200);
  HttpRequest get = signed_request(server.url("/"), "cloudfront");
  EXPECT_EQ(perform_http(get, kLoopback, 1024).status, 200);
  EXPECT_EQ(server.connections(), 2);
}

TEST(HttpRequest, SignedRequestErrorsHideCredentials) {
  int port;
  {
    TestHttpServer gone([](const std::string &) { return std::string(); });
    port = gone.port();
  }
  HttpRequest req = signed_request("http://127.0.0.1:" + std::to_string(port) + "/", "cloudfront");
  Error refused = http_error(req, kLoopback);
  EXPECT_STREQ(refused.sqlstate(), sqlstate::kUnableToConnect);

  TestHttpServer silent([](const std::string &) { return std::string(); });
  req.url = silent.url();
  req.timeout_ms = 300;
  Error timeout = http_error(req, kLoopback);
  EXPECT_STREQ(timeout.sqlstate(), sqlstate::kQueryCanceled);
  // The request did carry the signature.
  ASSERT_EQ(silent.requests().size(), 1u);
  EXPECT_TRUE(contains(silent.requests()[0], "\r\nAuthorization: AWS4-HMAC-SHA256 Credential="));

  Error not_allowed = http_error(req, HostAllowList::parse("10.0.0.0/8"));
  EXPECT_STREQ(not_allowed.sqlstate(), sqlstate::kInsufficientPrivilege);
  for (const Error *e : {&refused, &timeout, &not_allowed})
    for (const std::string &text : {std::string(e->what()), e->detail(), e->hint()}) {
      EXPECT_FALSE(contains(text, kSecret)) << text;
      EXPECT_FALSE(contains(text, kAccessKey)) << text;
    }
}

// --- perform_http_many -------------------------------------------------------

std::string state_of(int port) {
  HttpRequest req;
  req.url = url_of("http", port, "/_fake/state");
  return perform_http(req, kLoopback, 4096).body;
}

TEST_F(PyServerTest, ManyRunsAtMostMaxParallelAtOnce) {
  std::string python = python_with("json");
  if (python.empty()) GTEST_SKIP() << "no python3";
  struct Case {
    int requests, max_parallel, expected_overlap;
  };
  for (Case c : {Case{7, 3, 3}, Case{5, 2, 2}, Case{4, 10, 4}, Case{3, 1, 1}}) {
    SCOPED_TRACE(std::to_string(c.requests) + " requests, " + std::to_string(c.max_parallel) +
                 " at once");
    int port = start(python, "\"hold\": " + std::to_string(c.expected_overlap) +
                                 ", \"total\": " + std::to_string(c.requests));
    ASSERT_NE(port, 0);
    std::vector<HttpRequest> reqs(c.requests);
    for (int i = 0; i < c.requests; ++i)
      reqs[i].url = url_of("http", port, "/r" + std::to_string(i));
    std::vector<HttpExchange> out = perform_http_many(reqs, kLoopback, 4096, c.max_parallel);
    ASSERT_EQ(out.size(), reqs.size());
    for (int i = 0; i < c.requests; ++i) {
      EXPECT_FALSE(out[i].failed) << out[i].message << ": " << out[i].detail;
      EXPECT_EQ(out[i].response.status, 200);
      EXPECT_TRUE(contains(out[i].response.body, "\"path\": \"/r" + std::to_string(i) + "\""))
          << i << ": " << out[i].response.body;
    }
    // The server held every request until `expected_overlap` were in flight
    // (3 s at most), then a little longer: a serial client never gets there,
    // an unbounded one goes past it.
    EXPECT_EQ(state_of(port), "{\"answered\": " + std::to_string(c.requests) +
                                  ", \"max_inflight\": " + std::to_string(c.expected_overlap) +
                                  "}");
  }
}

TEST(HttpRequestMany, FailuresStayWithTheirRequest) {
  TestHttpServer server([](const std::string &request) {
    std::string path = request.substr(request.find(' ') + 1);
    path = path.substr(0, path.find(' '));
    return respond(200, "OK", "reply for " + path);
  });
  TestHttpServer silent([](const std::string &) { return std::string(); });
  int closed_port;
  {
    TestHttpServer gone([](const std::string &) { return std::string(); });
    closed_port = gone.port();
  }
  std::vector<HttpRequest> reqs(8);
  reqs[0].url = server.url("/first");
  reqs[1].url = "http://10.1.2.3/";  // not on the list: no connection
  reqs[2].url = server.url("/second");
  reqs[3].url = server.url("/fourth");
  reqs[3].headers = {{"X-Bad", "a\r\nX-Evil: 1"}};
  reqs[4].url = server.url("/third");
  reqs[4].method = "TRACE";
  reqs[5].url = "http://127.0.0.1:" + std::to_string(closed_port) + "/";
  reqs[6].url = silent.url("/slow");
  reqs[6].timeout_ms = 300;
  reqs[7].url = server.url("/last");
  reqs[7].method = "PURGE";
  std::vector<HttpExchange> out = perform_http_many(reqs, kLoopback, 4096, 3);
  ASSERT_EQ(out.size(), 8u);
  for (int i : {0, 2, 7}) {
    EXPECT_FALSE(out[i].failed) << i << ": " << out[i].message;
    EXPECT_EQ(out[i].response.status, 200) << i;
  }
  EXPECT_EQ(out[0].response.body, "reply for /first");
  EXPECT_EQ(out[2].response.body, "reply for /second");
  EXPECT_EQ(out[7].response.body, "reply for /last");
  struct Expected {
    int index;
    const char *sqlstate;
    const char *in_message;
  };
  for (Expected x : {Expected{1, sqlstate::kInsufficientPrivilege, "\"10.1.2.3\""},
                     Expected{3, sqlstate::kInvalidParameterValue, "X-Bad"},
                     Expected{4, sqlstate::kInvalidParameterValue, "method"},
                     Expected{5, sqlstate::kUnableToConnect, "127.0.0.1"},
                     Expected{6, sqlstate::kQueryCanceled, "timed out after 300 ms"}}) {
    const HttpExchange &e = out[x.index];
    EXPECT_TRUE(e.failed) << x.index;
    EXPECT_EQ(e.sqlstate, x.sqlstate) << x.index << ": " << e.message;
    EXPECT_TRUE(contains(e.message, x.in_message)) << x.index << ": " << e.message;
    EXPECT_EQ(e.response.status, 0) << x.index;
  }
  EXPECT_EQ(out[1].hint, "Add it to cachekit.http_allowed_hosts.");
  // Exactly the allowed requests reached the server, each once.
  std::vector<std::string> seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  int purges = 0;
  for (const std::string &r : seen) purges += r.rfind("PURGE /last HTTP/1.1\r\n", 0) == 0;
  EXPECT_EQ(purges, 1);

  // The allow-list's check at connect time holds in parallel too: a listed
  // name that resolves to loopback, which the list does not allow.
  std::vector<HttpRequest> named(2);
  named[0].url = "http://localhost:" + std::to_string(server.port()) + "/";
  named[1].url = "http://localhost:" + std::to_string(server.port()) + "/again";
  out = perform_http_many(named, HostAllowList::parse("localhost"), 4096, 2);
  for (const HttpExchange &x : out) {
    EXPECT_TRUE(x.failed);
    EXPECT_EQ(x.sqlstate, sqlstate::kInsufficientPrivilege) << x.message;
    EXPECT_TRUE(contains(x.detail, "127.0.0.1")) << x.detail;
    EXPECT_TRUE(contains(x.detail, "no connection was made")) << x.detail;
  }
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpRequestMany, SameChecksAsPerformHttp) {
  std::string big(100000, 'b');
  TestHttpServer server([&big](const std::string &) {
    return respond(302, "Found", big, "Location: http://127.0.0.1:1/\r\n");
  });
  setenv("http_proxy", "http://192.0.2.1:3128", 1);
  std::vector<HttpRequest> reqs(2);
  reqs[0].url = server.url("/a");
  reqs[1].url = server.url("/b");
  reqs[1].method = "POST";
  reqs[1].body = "payload";
  std::vector<HttpExchange> out = perform_http_many(reqs, kLoopback, 100, 2);
  unsetenv("http_proxy");
  for (const HttpExchange &x : out) {
    EXPECT_FALSE(x.failed) << x.message << ": " << x.detail;
    EXPECT_EQ(x.response.status, 302);  // not followed
    EXPECT_EQ(x.response.body, big.substr(0, 100));
    EXPECT_TRUE(x.response.body_truncated);
  }
  ASSERT_EQ(server.connections(), 2);
  std::string post =
      server.requests()[0].rfind("POST", 0) == 0 ? server.requests()[0] : server.requests()[1];
  EXPECT_EQ(post.rfind("POST /b HTTP/1.1\r\n", 0), 0u) << post;
  EXPECT_FALSE(contains(post, "Content-Type")) << post;
  EXPECT_EQ(post.substr(post.size() - 7), "payload");

  EXPECT_TRUE(perform_http_many({}, kLoopback, 100, 1).empty());
  try {
    perform_http_many(reqs, kLoopback, 100, 0);
    ADD_FAILURE() << "max_parallel 0 accepted";
  } catch (const Error &e) {
    EXPECT_STREQ(e.sqlstate(), sqlstate::kInvalidParameterValue);
  }
  EXPECT_EQ(server.connections(), 2);
}

}  // namespace
}  // namespace cachekit
