// cachekit.query_stats: per-query statistics of cached_query in shared
// memory, keyed by database, role, namespace and query fingerprint (as
// pg_stat_statements keys by user, database and query id), and shown as
// pg_stat_statements shows them: rows of the current database only, and
// another role's query text only to members of pg_read_all_stats (or
// cachekit_admin).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

namespace cachekit::pg {

// Why a call did not use the cache. Names are the view's column suffixes.
enum class Bypass : int {
  kWriteInTransaction,  // the transaction wrote a dependency
  kIsolationLevel,      // REPEATABLE READ / SERIALIZABLE
  kRedisUnavailable,
  kUncacheable,  // cachekit.uncacheable = bypass
  kTooLarge,     // result above cachekit.max_result_bytes (ran, not stored)
  kHotStandby,
  kPreparedTransaction,  // a prepared transaction of this database is undecided
  kPlanChanged,          // re-planned while it ran (ran, not stored)
  kCount
};
const char *bypass_name(Bypass b);

enum class Outcome { kHit, kMiss, kBypass };

struct QueryCall {
  Outcome outcome;
  Bypass bypass;  // when outcome == kBypass
  double ms;
  uint64_t rows;
  uint64_t bytes;
  uint64_t generations_digest;  // changes when a dependency was invalidated
  bool l1_hit = false;          // a hit served from shared memory (l1_cache.h)
  char scope = 0;  // 'v': keyed on value buckets of some dependency, 't': on tables only
};

Size query_stats_shmem_size();
void query_stats_shmem_request();
void query_stats_shmem_startup();

void record_query_call(uint64_t fingerprint, const std::string &ns, const std::string &query,
                       const QueryCall &call);

struct QueryStatsRow {
  Oid dbid;
  Oid userid;
  bool text_visible;  // false: query is empty and the fingerprint must not be shown
  std::string ns;
  uint64_t fingerprint;
  std::string query;
  uint64_t calls, hits, misses;
  uint64_t l1_hits;  // of the hits
  uint64_t bypasses[static_cast<int>(Bypass::kCount)];
  double hit_ms_total, hit_ms_max, miss_ms_total, miss_ms_max;
  uint64_t rows, bytes;
  TimestampTz last_invalidation;
  char scope;  // of the last call that used the cache (0: none yet)
};
// The rows of database dbid; query text only of viewer's own rows unless
// all_text.
std::vector<QueryStatsRow> query_stats_snapshot(Oid dbid, Oid viewer, bool all_text);
void reset_query_stats();

}  // namespace cachekit::pg
