// Latency from a commit to a Redis pub/sub subscriber receiving its
// invalidation message. One connection updates a watched table N times
// (autocommit); a hiredis subscriber in the same process waits for each
// message. Prints p50/p90/p99/max of two intervals, in microseconds:
//   sent -> received      from sending the UPDATE to receiving the message
//   returned -> received  from the commit returning to the client to receiving
//                         the message (negative: the message arrived first)
// Usage: commit_to_message <redis port> <iterations>   (libpq settings from PG*)
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using Clock = std::chrono::steady_clock;

static long us(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

static void report(const char *name, std::vector<long> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) { return v[std::min(v.size() - 1, static_cast<size_t>(p * v.size()))]; };
  std::printf("%-22s n=%zu p50=%ld p90=%ld p99=%ld max=%ld (us)\n", name, v.size(), pct(0.50),
              pct(0.90), pct(0.99), v.back());
}

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <redis port> <iterations>\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  int n = std::atoi(argv[2]);
  PGconn *pg = PQconnectdb("");
  if (PQstatus(pg) != CONNECTION_OK) {
    std::fprintf(stderr, "postgres: %s", PQerrorMessage(pg));
    return 1;
  }
  redisContext *sub = redisConnect("127.0.0.1", port);
  if (sub == nullptr || sub->err) {
    std::fprintf(stderr, "redis: cannot connect\n");
    return 1;
  }
  redisReply *r = static_cast<redisReply *>(redisCommand(sub, "SUBSCRIBE cachekit:invalidate"));
  freeReplyObject(r);
  std::vector<long> sent_to_recv, returned_to_recv;
  for (int i = 0; i < n; ++i) {
    std::string sql =
        "UPDATE bench_latency SET v = v + 1 WHERE id = " + std::to_string(i % 100 + 1);
    auto sent = Clock::now();
    PGresult *res = PQexec(pg, sql.c_str());
    auto returned = Clock::now();
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      std::fprintf(stderr, "update failed: %s", PQerrorMessage(pg));
      return 1;
    }
    PQclear(res);
    void *msg = nullptr;
    if (redisGetReply(sub, &msg) != REDIS_OK) {
      std::fprintf(stderr, "redis read failed\n");
      return 1;
    }
    auto received = Clock::now();
    freeReplyObject(msg);
    sent_to_recv.push_back(us(sent, received));
    returned_to_recv.push_back(us(returned, received));
  }
  report("sent -> received", sent_to_recv);
  report("returned -> received", returned_to_recv);
  redisFree(sub);
  PQfinish(pg);
  return 0;
}
