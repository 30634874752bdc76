// cachekit.health(): is Redis reachable, how fast, how full, and what the
// backend's circuit breaker thinks. The probe ignores an open breaker (it is
// a diagnostic) but its outcome feeds the breaker like any call.
#include <chrono>
#include <string>
#include <vector>

#include "core/json.h"
#include "core/health_rules.h"
#include "core/redis_client.h"
#include "core/redis_info.h"
#include "pg/db_metrics.h"
#include "pg/redis_probe.h"
#include "pg/datum.h"
#include "pg/query_plan.h"
#include "pg/extension_objects.h"
#include "pg/guc.h"
#include "pg/l1_cache.h"
#include "pg/relay_state.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "lib/stringinfo.h"
#include "utils/json.h"
#include "utils/timestamp.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

std::string json_number_or_null(const std::string &s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return "null";
  return s;
}

std::string endpoint_health(const RedisProbe &p) {
  std::string out = "{\"status\": " + json_quote(health_status_name(p.status)) +
                    ", \"address\": " + json_quote(p.address) + ", \"db\": " + std::to_string(p.db);
  out += ", \"reachable\": " + std::string(p.reachable ? "true" : "false");
  if (p.reachable) {
    char rtt[32];
    snprintf(rtt, sizeof rtt, "%.3f", p.rtt_ms);
    out += ", \"rtt_ms\": " + std::string(rtt);
    out += ", \"server_version\": " + json_quote(redis_info_field(p.info, "redis_version"));
    out += ", \"used_memory\": " + json_number_or_null(redis_info_field(p.info, "used_memory"));
    out += ", \"maxmemory\": " + json_number_or_null(redis_info_field(p.info, "maxmemory"));
    out += ", \"maxmemory_policy\": " + json_quote(redis_info_field(p.info, "maxmemory_policy"));
    out += ", \"evicted_keys\": " + json_number_or_null(redis_info_field(p.info, "evicted_keys"));
  } else {
    out += ", \"error\": " + json_quote(p.error);
  }
  out += ", \"circuit_breaker\": {\"state\": " + json_quote(CircuitBreaker::state_name(p.breaker)) +
         ", \"consecutive_failures\": " + std::to_string(p.consecutive_failures) +
         ", \"outages\": " + std::to_string(p.outages) +
         ", \"retry_interval_ms\": " + std::to_string(p.retry_interval_ms) + "}}";
  return out;
}

}  // namespace

// The relay of a database, as the registry shows it: "running", or why not.
std::string relay_state_name(const RelayStatus &r, int64 now) {
  if (!r.has_slot) return "no slot";
  if (r.pid != 0) return "running";
  if (r.no_extension) return "no extension";
  if (r.no_worker) return "no worker";
  if (r.paused_until > now) return "paused";
  return "starting";
}

std::string relay_reason(const RelayStatus &r, const RegistryStatus &reg, int64 now) {
  if (!reg.shared_memory)
    return "pg_cachekit is not in shared_preload_libraries: no launcher, no relay";
  if (r.pid != 0) return "";
  if (reg.launcher_pid == 0) return "the launcher is not running (it restarts within seconds)";
  if (!r.has_slot)
    return reg.databases.size() >= static_cast<size_t>(reg.max_databases)
               ? "all " + std::to_string(reg.max_databases) +
                     " relay registry slots (cachekit.max_databases) are taken; invalidations "
                     "wait in the outbox"
               : "the launcher has not looked at this database yet";
  if (r.no_worker)
    return "no background worker slot was free (max_worker_processes); invalidations wait in "
           "the outbox";
  if (r.no_extension) return "its relay found no extension here and looks again soon";
  if (r.paused_until > now)
    return "stopped for DROP/RENAME DATABASE or after an error; restarts in " +
           std::to_string((r.paused_until - now) / 1000000 + 1) + " s";
  return "starting";
}

std::string pid_or_null(int pid) { return pid ? std::to_string(pid) : std::string("null"); }

// The relay of this database, and the registry of all of them.
std::string relay_health() {
  RegistryStatus reg = registry_status();
  RelayStatus mine = relay_status(MyDatabaseId);
  int64 now = GetCurrentTimestamp();
  std::string reason = relay_reason(mine, reg, now);
  std::string out = "\"relay\": {\"running\": " + std::string(mine.pid ? "true" : "false") +
                    ", \"pid\": " + pid_or_null(mine.pid) +
                    ", \"state\": " + json_quote(relay_state_name(mine, now)) +
                    ", \"reason\": " + (reason.empty() ? "null" : json_quote(reason)) +
                    ", \"backlog\": " + (mine.has_slot && !mine.backlog ? "false" : "true") +
                    ", \"flush_pending\": " + (mine.flush_pending ? "true" : "false") +
                    ", \"queue_entries\": " + std::to_string(mine.queue_entries) + "}";
  out += ", \"relays\": {\"launcher_pid\": " + pid_or_null(reg.launcher_pid) +
         ", \"max_databases\": " + std::to_string(reg.max_databases) +
         ", \"databases_without_slot\": " + std::to_string(reg.unserved) +
         ", \"launcher_scans\": " + std::to_string(reg.scans) +
         ", \"queue_entries\": " + std::to_string(reg.queue_entries) + ", \"databases\": [";
  for (size_t i = 0; i < reg.databases.size(); ++i) {
    const RelayStatus &r = reg.databases[i];
    out += std::string(i ? ", " : "") + "{\"datid\": " + std::to_string(r.dbid) +
           ", \"state\": " + json_quote(relay_state_name(r, now)) +
           ", \"pid\": " + pid_or_null(r.pid) +
           ", \"flush_pending\": " + (r.flush_pending ? "true" : "false") + "}";
  }
  return out + "]}";
}

std::string seconds_or_null(bool known, double s) {
  if (!known) return "null";
  char buf[32];
  snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// Trigger-driven invalidation: counters, what waits in the outbox of this
// database (as collect_database_state() read it), and its relay.
std::string invalidation_health(const DatabaseState &db) {
  std::string out = "{";
  const char *names[] = {"messages_published", "keys_deleted",        "patterns_flushed",
                         "outbox_written",     "delivered_at_commit", "delivered_by_worker",
                         "delivery_failures",  "keys_overflowed",     "patterns_rejected"};
  static_assert(sizeof names / sizeof names[0] == static_cast<size_t>(AppCounter::kCount));
  for (int i = 0; i < static_cast<int>(AppCounter::kCount); ++i)
    out += std::string(i ? ", " : "") + "\"" + names[i] +
           "\": " + std::to_string(app_counter(static_cast<AppCounter>(i)));
  out += ", \"outbox_depth\": " +
         (db.extension ? std::to_string(db.outbox_depth) : std::string("null"));
  out += ", \"oldest_undelivered_s\": " +
         seconds_or_null(db.extension && db.outbox_depth > 0, db.outbox_oldest_s);
  out += ", " + relay_health();
  return out + "}";
}

// The task queue of this database: its executors (shared memory) and what
// waits in its queues (as collect_database_state() read them).
std::string tasks_health(const DatabaseState &db) {
  RelayStatus mine = relay_status(MyDatabaseId);
  int64 runnable = 0, running = 0, dead = 0;
  double oldest = 0;
  for (const QueueGauges &q : db.queues) {
    runnable += q.depth;
    running += q.running;
    dead += q.dead;
    oldest = std::max(oldest, q.oldest_s);
  }
  std::string state = settings.task_workers == 0                ? "off"
                      : mine.executors >= settings.task_workers ? "ok"
                      : mine.executors > 0                      ? "degraded"
                                                                : "down";
  return "{\"state\": " + json_quote(state) +
         ", \"task_workers\": " + std::to_string(settings.task_workers) +
         ", \"executors\": " + std::to_string(mine.executors) +
         ", \"busy\": " + std::to_string(mine.executors_busy) +
         ", \"runnable\": " + std::to_string(runnable) +
         ", \"running\": " + std::to_string(running) + ", \"dead\": " + std::to_string(dead) +
         ", \"oldest_runnable_s\": " + seconds_or_null(runnable > 0, oldest) + "}";
}

// The L1 tier: null when it has no shared memory (cachekit.l1_size = 0, or
// no shared_preload_libraries).
static std::string l1_health() {
  L1Status l1 = l1_status();
  if (!l1.present) return "null";
  auto n = [](uint64_t v) { return std::to_string(v); };
  const L1Stats &s = l1.stats;
  return "{\"enabled\": " + std::string(settings.l1 ? "true" : "false") +
         ", \"size_bytes\": " + n(l1.size_bytes) + ", \"capacity_bytes\": " + n(s.capacity_bytes) +
         ", \"used_bytes\": " + n(s.used_bytes) + ", \"entries\": " + n(s.entries) +
         ", \"hits\": " + n(s.hits) + ", \"misses\": " + n(s.misses) +
         ", \"inserts\": " + n(s.inserts) + ", \"evictions\": " + n(s.evictions) +
         ", \"too_large\": " + n(s.too_large) + "}";
}

CK_SQL_FUNCTION(ck_health) {
  return cpp_entry([&]() -> Datum {
    RedisProbe cache = probe_redis(RedisTarget::kCache);
    RedisProbe session = probe_redis(RedisTarget::kSession);
    bool healthy = cache.reachable && session.reachable;
    // Every component's status ("off": not configured), and the worst of
    // them overall; the database's own components (workers, outbox, queues,
    // CDN providers) come from the same code as the metrics.
    // The extension's tables are read once, for all of the document.
    DatabaseState db = collect_database_state();
    std::string db_doc = shmem_available() ? database_health_json(db) : std::string("null");
    HealthStatus db_status = shmem_available() ? db.overall : HealthStatus::kDown;
    HealthStatus overall = worst_status({cache.status, session.status, db_status});
    std::string doc =
        "{\"status\": " + json_quote(health_status_name(overall)) +
        ", \"healthy\": " + std::string(healthy ? "true" : "false") +
        ", \"redis\": " + endpoint_health(cache) +
        ", \"session_redis\": " + endpoint_health(session) + ", \"database\": " + db_doc +
        ", \"shared_preload_libraries\": " + (shmem_available() ? "true" : "false") +
        ", \"invalidation\": " + invalidation_health(db) + ", \"tasks\": " + tasks_health(db) +
        ", \"prepared_queries\": " + prepared_queries_health() + ", \"l1\": " + l1_health() + "}";
    return jsonb_datum(doc);
  });
}
