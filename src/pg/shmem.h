// Shared memory of pg_cachekit (present only when the library is in
// shared_preload_libraries).
#pragma once

#include <cstdint>

namespace cachekit::pg {

// Key/value cache and session counters, summed over all backends.
enum class CacheCounter : int {
  kGets,
  kHits,
  kMisses,
  kSets,
  kDeletes,
  kErrors,
  kBytesIn,   // bytes received from Redis (values read)
  kBytesOut,  // bytes sent to Redis (values written)
  kOps,       // Redis operations timed in kOpTimeUs
  kOpTimeUs,
  kCount
};

void install_shmem_hooks();
bool shmem_available();

// No-ops when shared memory is not available: the plain cache functions work
// without shared_preload_libraries, they are just not counted.
void count(CacheCounter c, uint64_t n = 1);
uint64_t counter_value(CacheCounter c);
void reset_cache_counters();
int64_t cache_stats_reset_time();  // TimestampTz

// Throws cachekit::Error (55000) with a HINT naming shared_preload_libraries
// when the library was loaded without it. `feature` names what was wanted.
void require_shmem(const char *feature);

}  // namespace cachekit::pg
