// Counters behind cachekit.metrics() that no view had: cached_query outcomes
// and latency histograms per database, worker starts, and task outcomes per
// queue. Cumulative since the server started (Prometheus counters: never
// reset by the *_stats_reset() functions, which reset the views).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

#include "pg/query_stats.h"

namespace cachekit::pg {

// Buckets of the latency histograms: core/metrics_text's latency_buckets()
// and +Inf.
constexpr int kLatencyBucketCount = 16;

struct DatabaseCounters {
  uint64_t hits = 0, misses = 0, bypasses_total = 0;
  uint64_t bypasses[static_cast<int>(Bypass::kCount)] = {};
  uint64_t hit_buckets[kLatencyBucketCount] = {};
  uint64_t miss_buckets[kLatencyBucketCount] = {};
  double hit_seconds = 0, miss_seconds = 0;
  uint64_t bytes = 0;
  uint64_t relay_starts = 0, executor_starts = 0;
};

struct TaskCounters {
  uint64_t enqueued = 0, succeeded = 0, failed = 0, retried = 0, dead = 0, cancelled = 0;
  double run_seconds = 0;
  uint64_t runs = 0;
  double wait_seconds = 0;
  uint64_t waits = 0;
};

Size metric_counters_shmem_size();
void metric_counters_shmem_request();
void metric_counters_shmem_startup();

// A cached_query call of this database (from record_query_call).
void count_query_call(Outcome outcome, Bypass bypass, double ms, uint64_t bytes);
void count_worker_start(Oid dbid, bool executor);
// Committed enqueues (see task_funcs.cpp).
void count_tasks_enqueued(Oid dbid, const std::string &queue, uint64_t n);
// An attempt's recorded outcome: state is succeeded, failed (to be retried),
// dead or cancelled. run_s: the attempt's run time; wait_s < 0: not a first
// attempt (the wait of first attempts only, as queue_stats shows it).
void count_task_outcome(Oid dbid, const std::string &queue, const std::string &state, double run_s,
                        double wait_s);

// The launcher, after reading pg_database: entries of dropped databases go
// (no backend of a dropped database is left to hold a pointer to one). Only
// entries made before `scan_started` (TimestampTz, taken before pg_database
// was read): a database created since is not in dbs but is no dropped one.
void forget_metric_counters_except(const Oid *dbs, int n, int64_t scan_started);

DatabaseCounters database_counters(Oid dbid);
struct QueueCounters {
  std::string queue;
  TaskCounters counters;
};
std::vector<QueueCounters> queue_counters(Oid dbid);

}  // namespace cachekit::pg
