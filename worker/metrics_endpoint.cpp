// The HTTP endpoint (cachekit.metrics_listen): GET /metrics and GET /health
// for Prometheus and load balancers, without a separate exporter.
//
// One background worker per cluster, registered at server start when the
// setting is not empty. It has no database connection and runs no SQL: it
// renders what shared memory holds (the cluster's counters and each
// database's snapshot, published by that database's relay when a scrape
// asks, see metrics_board.h) plus its own look at Redis. So a scrape never
// takes a lock on a table, never waits on a query, and answers within a
// bounded time: at most kSnapshotWaitMs for fresh snapshots plus the Redis
// timeouts (cached for a second, so concurrent scrapes share one probe).
// Slow and hostile clients are the core endpoint's business
// (core/http_endpoint.h: size limits, deadlines, a connection cap).
//
// Nothing here shows query text or key names: per-query series carry the
// fingerprint only, and only the top cachekit.metrics_top_queries of each
// database.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/http_endpoint.h"
#include "core/json.h"
#include "core/metrics_text.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/metrics.h"
#include "pg/metrics_board.h"
#include "pg/relay_state.h"
#include "pg/worker_log.h"
#include "worker/launcher.h"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_metrics_endpoint_main(Datum arg);
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kSnapshotWaitMs = 500;
constexpr int kSnapshotPollMs = 10;
// A snapshot older than this belongs to a database whose relay is gone (or
// that was dropped): left out.
constexpr int64_t kSnapshotMaxAgeUs = 300 * USECS_PER_SEC;
constexpr double kRedisProbeCacheS = 1.0;
// A database whose snapshot is older than this did not answer the last
// scrapes: its relay is gone or stuck, and /health says so.
constexpr int64_t kSnapshotStaleUs = 10 * USECS_PER_SEC;

struct RedisCache {
  std::chrono::steady_clock::time_point at;
  bool valid = false;
  RedisProbe cache, session;
};
RedisCache redis_cache;

void probe_redis_cached() {
  auto now = std::chrono::steady_clock::now();
  if (redis_cache.valid &&
      std::chrono::duration<double>(now - redis_cache.at).count() < kRedisProbeCacheS)
    return;
  redis_cache.cache = probe_redis(RedisTarget::kCache);
  redis_cache.session = probe_redis(RedisTarget::kSession);
  redis_cache.at = std::chrono::steady_clock::now();
  redis_cache.valid = true;
}

// Asks every relay for a snapshot and waits (bounded) until each database
// whose relay runs has answered this request.
std::vector<MetricsSnapshot> fresh_snapshots() {
  uint64_t seq = request_metrics();
  wake_all_relays();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSnapshotWaitMs);
  for (;;) {
    std::vector<MetricsSnapshotHead> heads = metrics_snapshot_heads();
    RegistryStatus reg = registry_status();
    TimestampTz now = GetCurrentTimestamp();
    bool all = true;
    for (const RelayStatus &r : reg.databases) {
      if (r.pid == 0 || !r.extension_present) continue;
      // A relay publishes at most once a second: a snapshot from within
      // that second is as fresh as this request will get, and waiting for
      // another would only hold up the endpoint (and every client on it).
      bool answered = false;
      for (const MetricsSnapshotHead &h : heads)
        answered = answered ||
                   (h.dbid == r.dbid && (h.seq >= seq || now - h.published_at < USECS_PER_SEC));
      all = all && answered;
    }
    if (all || std::chrono::steady_clock::now() >= deadline || ShutdownRequestPending) break;
    pg_usleep(kSnapshotPollMs * 1000L);
  }
  std::vector<MetricsSnapshot> snaps = metrics_snapshots();
  // A dropped database leaves the registry: its last snapshot goes with it.
  RegistryStatus reg = registry_status();
  TimestampTz now = GetCurrentTimestamp();
  std::vector<MetricsSnapshot> out;
  for (MetricsSnapshot &s : snaps) {
    bool known = false;
    for (const RelayStatus &r : reg.databases) known = known || r.dbid == s.dbid;
    if (known && now - s.published_at <= kSnapshotMaxAgeUs) out.push_back(std::move(s));
  }
  return out;
}

HttpReply metrics_reply() {
  std::vector<MetricsSnapshot> snaps = fresh_snapshots();
  probe_redis_cached();
  MetricSamples m;
  add_cluster_samples(m);
  add_redis_status(m, redis_cache.cache);
  add_redis_status(m, redis_cache.session);
  TimestampTz now = GetCurrentTimestamp();
  for (const MetricsSnapshot &s : snaps) {
    try {
      m.append(MetricSamples::parse(s.samples));
    } catch (const std::exception &) {
      // A snapshot that does not parse is left out; its age still shows.
    }
    m.add("cachekit_metrics_snapshot_age_seconds", {{"database", s.name}},
          static_cast<double>(now - s.published_at) / USECS_PER_SEC);
  }
  HttpReply r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = render_exposition(m);
  return r;
}

HttpReply health_reply() {
  std::vector<MetricsSnapshot> snaps = fresh_snapshots();
  probe_redis_cached();
  RegistryStatus reg = registry_status();
  HealthStatus launcher = cachekit::relay_status(reg.launcher_pid != 0);
  std::vector<HealthStatus> all = {redis_cache.cache.status, redis_cache.session.status, launcher};
  auto redis_json = [](const RedisProbe &p) {
    std::string j = "{\"status\": " + json_quote(health_status_name(p.status)) +
                    ", \"reachable\": " + (p.reachable ? "true" : "false");
    if (!p.reachable) j += ", \"error\": " + json_quote(p.error);
    return j + "}";
  };
  std::string dbs;
  TimestampTz now = GetCurrentTimestamp();
  for (const MetricsSnapshot &s : snaps) {
    if (s.health.empty()) continue;
    std::string doc = s.health;
    HealthStatus status = static_cast<HealthStatus>(s.status);
    if (now - s.published_at > kSnapshotStaleUs) {
      // What it last said is history; that it says nothing now is the news.
      status = HealthStatus::kDown;
      doc = "{\"database\": " + json_quote(s.name) + ", \"status\": \"down\", \"reason\": " +
            json_quote("no snapshot for " + std::to_string((now - s.published_at) / USECS_PER_SEC) +
                       " s: the database's relay does not answer") +
            ", \"last_snapshot\": " + s.health + "}";
    }
    dbs += (dbs.empty() ? "" : ", ") + doc;
    // One database's trouble degrades the server; only what all of them
    // need (Redis, the launcher) takes it down (503): a load balancer should
    // not drop the whole server for one tenant's stuck relay.
    all.push_back(status == HealthStatus::kDown ? HealthStatus::kDegraded : status);
  }
  HealthStatus overall = worst_status(all);
  HttpReply r;
  r.status = overall == HealthStatus::kDown ? 503 : 200;
  r.content_type = "application/json";
  r.body = "{\"status\": " + json_quote(health_status_name(overall)) +
           ", \"redis\": " + redis_json(redis_cache.cache) +
           ", \"session_redis\": " + redis_json(redis_cache.session) +
           ", \"launcher\": {\"status\": " + json_quote(health_status_name(launcher)) +
           "}, \"databases\": [" + dbs + "]}\n";
  return r;
}

HttpReply handle(const HttpRequestHead &req) {
  std::string path = req.target.substr(0, req.target.find('?'));
  if (path == "/metrics") return metrics_reply();
  if (path == "/health") return health_reply();
  HttpReply r;
  r.status = path == "/" ? 200 : 404;
  r.content_type = "text/plain; charset=utf-8";
  r.body = path == "/" ? "pg_cachekit: GET /metrics (Prometheus), GET /health (JSON)\n"
                       : "not found: try /metrics or /health\n";
  return r;
}

}  // namespace

extern "C" void ck_metrics_endpoint_main(Datum) {
  pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  set_log_component(LogComponent::kMetrics);
  pgstat_report_appname("pg_cachekit metrics endpoint");
  std::string listen = settings.metrics_listen ? settings.metrics_listen : "";
  // The endpoint lives as long as the worker; an address that cannot be
  // bound is an ERROR (logged), and the postmaster tries again later.
  std::unique_ptr<HttpEndpoint> endpoint = cpp_entry([&] {
    try {
      return std::make_unique<HttpEndpoint>(listen);
    } catch (const Error &e) {
      throw Error(e.sqlstate(), e.what(), e.detail(),
                  "Check cachekit.metrics_listen; the endpoint is tried again in 10 seconds.");
    }
  });
  ereport(LOG, (worker_errmsg(LogComponent::kMetrics, "serving /metrics and /health on %s",
                              listen.c_str())));
  while (!ShutdownRequestPending) {
    if (!PostmasterIsAlive()) proc_exit(1);
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    // Postgres calls (shared memory, settings, ereport) stay on this thread:
    // the handler runs inside poll_once, here.
    cpp_entry([&] { endpoint->poll_once(250, handle); });
  }
  endpoint.reset();
  proc_exit(0);
}

namespace cachekit::pg {

void register_metrics_endpoint() {
  if (settings.metrics_listen == nullptr || settings.metrics_listen[0] == '\0') return;
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS;
  // Also on a standby: its Redis and relays are worth watching too.
  w.bgw_start_time = BgWorkerStart_ConsistentState;
  w.bgw_restart_time = 10;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_cachekit");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "ck_metrics_endpoint_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_cachekit metrics endpoint");
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_cachekit metrics endpoint");
  RegisterBackgroundWorker(&w);
}

}  // namespace cachekit::pg
