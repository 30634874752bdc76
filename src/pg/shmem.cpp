// What lives in shared memory, and why it is safe without locks.
//
// CkShared holds the key/value cache counters as 64-bit atomics: every
// backend adds to them with pg_atomic_fetch_add_u64 and readers sum nothing,
// so no lock is needed and a reader may see counters from slightly different
// instants (as pg_stat_statements' readers may). cache_stats_reset() stores
// zeroes one counter at a time; an increment racing with a reset may survive
// it, which is acceptable for statistics.
//
// The structure is allocated once by the postmaster (shmem_request_hook asks
// for the size, shmem_startup_hook initialises it under AddinShmemInitLock) and
// is found by every backend in the same hooks. The table generations and
// server epoch of cached_query live in generations.cpp (with the argument for
// why their order of operations is safe), value-bucket generations in
// value_generations.cpp, per-query statistics in query_stats.cpp, the L1 tier
// of cached_query results in l1_cache.cpp; all are set up from the same two
// hooks.
#include <string>

#include "core/error.h"
#include "pg/relay_state.h"
#include "pg/generations.h"
#include "pg/l1_cache.h"
#include "pg/leases.h"
#include "pg/metric_counters.h"
#include "pg/metrics_board.h"
#include "pg/query_stats.h"
#include "pg/shmem.h"
#include "pg/value_generations.h"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

namespace cachekit::pg {

namespace {

struct CkShared {
  pg_atomic_uint64 counters[static_cast<int>(CacheCounter::kCount)];
  pg_atomic_uint64 stats_reset;  // TimestampTz of the last reset
};

CkShared *shared = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

void request_shmem() {
  if (prev_shmem_request_hook) prev_shmem_request_hook();
  RequestAddinShmemSpace(MAXALIGN(sizeof(CkShared)));
  generations_shmem_request();
  value_generations_shmem_request();
  relay_state_shmem_request();
  query_stats_shmem_request();
  leases_shmem_request();
  l1_shmem_request();
  metric_counters_shmem_request();
  metrics_board_shmem_request();
}

void startup_shmem() {
  if (prev_shmem_startup_hook) prev_shmem_startup_hook();
  bool found = false;
  LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
  shared = static_cast<CkShared *>(ShmemInitStruct("pg_cachekit", sizeof(CkShared), &found));
  if (!found) {
    for (auto &c : shared->counters) pg_atomic_init_u64(&c, 0);
    pg_atomic_init_u64(&shared->stats_reset, static_cast<uint64>(GetCurrentTimestamp()));
  }
  generations_shmem_startup();
  value_generations_shmem_startup();
  relay_state_shmem_startup();
  query_stats_shmem_startup();
  leases_shmem_startup();
  l1_shmem_startup();
  metric_counters_shmem_startup();
  metrics_board_shmem_startup();
  LWLockRelease(AddinShmemInitLock);
}

}  // namespace

void install_shmem_hooks() {
  prev_shmem_request_hook = shmem_request_hook;
  shmem_request_hook = request_shmem;
  prev_shmem_startup_hook = shmem_startup_hook;
  shmem_startup_hook = startup_shmem;
}

bool shmem_available() { return shared != nullptr; }

void count(CacheCounter c, uint64_t n) {
  if (shared) pg_atomic_fetch_add_u64(&shared->counters[static_cast<int>(c)], n);
}

uint64_t counter_value(CacheCounter c) {
  return shared ? pg_atomic_read_u64(&shared->counters[static_cast<int>(c)]) : 0;
}

void reset_cache_counters() {
  if (!shared) return;
  for (auto &c : shared->counters) pg_atomic_write_u64(&c, 0);
  pg_atomic_write_u64(&shared->stats_reset, static_cast<uint64>(GetCurrentTimestamp()));
}

int64_t cache_stats_reset_time() {
  return shared ? static_cast<int64_t>(pg_atomic_read_u64(&shared->stats_reset)) : 0;
}

void require_shmem(const char *feature) {
  if (shared) return;
  throw Error(
      sqlstate::kObjectNotInPrerequisiteState,
      std::string(feature) + " requires pg_cachekit to be loaded via shared_preload_libraries",
      "The key/value cache and session functions work without it; shared statistics, "
      "cached_query and the background workers do not.",
      "Add pg_cachekit to shared_preload_libraries in postgresql.conf and restart the "
      "server.");
}

}  // namespace cachekit::pg
