// A throwaway redis-server for unit tests: started on a free TCP port and a
// unix socket in a temporary directory, killed (and the directory removed)
// when the object goes away; it can be paused (SIGSTOP) to simulate a hung
// server and stopped to simulate an outage. Plus RedisTest, a gtest fixture
// base that skips when redis-server is not on PATH.
//
// Header-only (everything inline) so that several test files can share it.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "core/redis_client.h"

extern char **environ;

namespace cachekit {
namespace test {

using Clock = std::chrono::steady_clock;

inline std::string find_redis_server() {
  const char *path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/redis-server";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// A TCP port nobody listens on right now.
inline int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

inline int64_t elapsed_ms(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
}

class RedisServer {
 public:
  RedisServer() = default;
  RedisServer(const RedisServer &) = delete;
  RedisServer &operator=(const RedisServer &) = delete;
  ~RedisServer() {
    stop();
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Starts redis-server with `extra` arguments, on `port` (0: a free one).
  // Returns an empty string on success, else what went wrong.
  std::string start(const std::vector<std::string> &extra = {}, int port = 0,
                    const std::string &bind = "127.0.0.1") {
    if (dir_.empty()) {
      char tmpl[] = "/tmp/ckredis-XXXXXX";
      if (mkdtemp(tmpl) == nullptr) return std::string("mkdtemp failed: ") + std::strerror(errno);
      dir_ = tmpl;
    }
    std::string last_error;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = port != 0 ? port : free_port();
      bind_ = bind;
      std::string error = spawn(extra, bind);
      if (error.empty()) return {};
      last_error = error;
      if (port != 0) break;  // a fixed port: do not try others
    }
    return last_error;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    unlink(socket_path().c_str());
  }

  // SIGKILL without resuming first: what the server had not read is lost.
  void kill_paused() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    unlink(socket_path().c_str());
  }

  void pause() { ASSERT_EQ(kill(pid_, SIGSTOP), 0); }
  void resume() { ASSERT_EQ(kill(pid_, SIGCONT), 0); }

  int port() const { return port_; }
  std::string socket_path() const { return dir_ + "/redis.sock"; }

  RedisEndpoint tcp(int db = 0, const std::string &password = {}) const {
    RedisEndpoint ep;
    ep.host = bind_;
    ep.port = port_;
    ep.db = db;
    ep.password = password;
    return ep;
  }
  RedisEndpoint unix_socket(int db = 0, const std::string &password = {}) const {
    RedisEndpoint ep;
    ep.transport = RedisEndpoint::Transport::kUnix;
    ep.host.clear();
    ep.port = 0;
    ep.socket_path = socket_path();
    ep.db = db;
    ep.password = password;
    return ep;
  }

 private:
  std::string spawn(const std::vector<std::string> &extra, const std::string &bind) {
    const std::string log = dir_ + "/redis.log";
    std::vector<std::string> args = {"redis-server",
                                     "--port",
                                     std::to_string(port_),
                                     "--bind",
                                     bind,
                                     "--save",
                                     "",
                                     "--appendonly",
                                     "no",
                                     "--daemonize",
                                     "no",
                                     "--dir",
                                     dir_,
                                     "--logfile",
                                     log,
                                     "--unixsocket",
                                     socket_path(),
                                     "--unixsocketperm",
                                     "700"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char *> argv;
    for (std::string &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, "redis-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return std::string("could not start redis-server: ") + std::strerror(rc);
    pid_ = pid;

    // Wait until it answers on both endpoints.
    auto started = Clock::now();
    while (elapsed_ms(started) < 10000) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        std::ifstream in(log);
        std::stringstream text;
        text << in.rdbuf();
        return "redis-server exited at startup; log:\n" + text.str();
      }
      if (answers(tcp()) && answers(unix_socket())) return {};
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    return "redis-server did not answer within 10 s";
  }

  static bool answers(const RedisEndpoint &ep) {
    try {
      RedisClient c(ep, RedisTimeouts{200, 200});
      c.command({"PING"});  // any reply, even NOAUTH, means it is up
      return true;
    } catch (const RedisUnavailable &) {
      return false;
    }
  }

  std::string dir_;
  std::string bind_ = "127.0.0.1";
  pid_t pid_ = -1;
  int port_ = 0;
};

class RedisTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // What Postgres backends do too: a write to a socket the server closed
    // must fail with EPIPE, not kill the process.
    signal(SIGPIPE, SIG_IGN);
  }

  void SetUp() override {
    if (find_redis_server().empty()) GTEST_SKIP() << "redis-server is not on PATH";
  }

  // Starts `s` or fails the test.
  void start(RedisServer &s, const std::vector<std::string> &extra = {}, int port = 0) {
    std::string error = s.start(extra, port);
    ASSERT_EQ(error, "");
  }
};

}  // namespace test
}  // namespace cachekit
