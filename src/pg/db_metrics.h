// What one database contributes to the metrics and to health: the counters
// kept in shared memory for it, and gauges read from its extension tables
// (outbox, queues, CDN). Computed by cachekit.metrics() / health() in the
// caller's database, and by each database's relay for the HTTP endpoint
// (which has no database connection of its own).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

#include "core/health_rules.h"
#include "core/metrics_text.h"

namespace cachekit::pg {

struct QueueGauges {
  std::string name;
  bool paused = false;
  int64_t depth = 0, running = 0, waiting_retry = 0, dead = 0;
  double oldest_s = 0;
  HealthStatus status = HealthStatus::kOk;
};

struct CdnProviderGauges {
  std::string name;
  bool configured = false;  // listed in cachekit.cdn_provider with its ids set
  std::optional<bool> reachable;
  int64_t api_calls = 0, throttled = 0, retries = 0, failed_batches = 0, completed_batches = 0,
          purged_items = 0;
  int64_t queued_items = 0;
  int64_t batches_queued = 0, batches_in_progress = 0, batches_completed = 0, batches_failed = 0;
  int64_t failed_recent = 0;  // batches failed within kCdnRecentWindowSeconds
  int64_t retrying = 0;       // open batches that have been tried before
  std::string last_error;
  HealthStatus status = HealthStatus::kOff;
};

struct DatabaseState {
  Oid dbid = InvalidOid;
  std::string name;
  bool extension = false;  // pg_cachekit is installed here
  int64_t outbox_depth = 0;
  double outbox_oldest_s = 0;
  std::vector<QueueGauges> queues;
  std::vector<CdnProviderGauges> cdn;
  // Invalidations per watched table (schema-qualified name) and of the
  // whole database (invalidate_all), from shared memory.
  std::vector<std::pair<std::string, uint64_t>> tables;
  std::optional<uint64_t> database_invalidations;
  // From the registry.
  bool relay_running = false;
  int executors = 0;
  HealthStatus relay = HealthStatus::kDown, executors_status = HealthStatus::kDown,
               outbox = HealthStatus::kOk, overall = HealthStatus::kOk;
};

// In a transaction of the database: reads its extension tables as the
// extension owner (owner_query.h). Throws on errors.
DatabaseState collect_database_state();

// Which per-query series to add.
struct QuerySeries {
  bool all_roles = false;  // every role's queries (else only the viewer's)
  Oid viewer = InvalidOid;
  int top = -1;  // at most this many, by time saved (-1: all)
};

// The database's families (everything with a `database` label).
void add_database_samples(MetricSamples &out, const DatabaseState &s, const QuerySeries &queries);

// The database's health document: {"database":..., "status":..., "relay":
// {...}, "executors": {...}, "outbox": {...}, "queues": {...}, "cdn": {...}}.
std::string database_health_json(const DatabaseState &s);

}  // namespace cachekit::pg
