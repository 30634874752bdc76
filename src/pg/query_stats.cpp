// Per-query statistics in shared memory.
//
// A fixed-size hash (cachekit.max_query_stats entries) protected by one
// LWLock for its structure; each entry's counters by the entry's spinlock, as
// in pg_stat_statements. When the hash is full, new queries are not tracked
// (counted in the dropped counter) rather than evicting: simple, and the
// reset function frees the space.
#include "pg/query_stats.h"

#include <cstring>

extern "C" {
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
}

#include "pg/guc.h"
#include "pg/metric_counters.h"

namespace cachekit::pg {

namespace {

constexpr int kNsLen = NAMEDATALEN;
constexpr int kQueryLen = 1024;

struct StatsKey {
  Oid dbid;
  Oid userid;  // GetUserId() of the call: whose query text it is
  uint64 fingerprint;
  char ns[kNsLen];
};

struct StatsEntry {
  StatsKey key;  // first
  slock_t mutex;
  char query[kQueryLen];
  uint64 calls, hits, misses;
  uint64 l1_hits;
  uint64 bypasses[static_cast<int>(Bypass::kCount)];
  double hit_ms_total, hit_ms_max, miss_ms_total, miss_ms_max;
  uint64 rows, bytes;
  uint64 generations_digest;
  TimestampTz last_invalidation;
  char scope;
};

struct StatsShared {
  LWLock *lock;
};

StatsShared *stats_shared = nullptr;
HTAB *stats_hash = nullptr;

void copy_truncated(char *dst, size_t size, const std::string &src) {
  size_t n = std::min(src.size(), size - 1);
  // Do not cut a multibyte character in half.
  while (n > 0 && n < src.size() && (static_cast<unsigned char>(src[n]) & 0xC0) == 0x80) --n;
  memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

}  // namespace

const char *bypass_name(Bypass b) {
  switch (b) {
    case Bypass::kWriteInTransaction:
      return "write_in_transaction";
    case Bypass::kIsolationLevel:
      return "isolation_level";
    case Bypass::kRedisUnavailable:
      return "redis_unavailable";
    case Bypass::kUncacheable:
      return "uncacheable";
    case Bypass::kTooLarge:
      return "too_large";
    case Bypass::kHotStandby:
      return "hot_standby";
    case Bypass::kPreparedTransaction:
      return "prepared_transaction";
    case Bypass::kPlanChanged:
      return "plan_changed";
    case Bypass::kCount:
      break;
  }
  return "unknown";
}

Size query_stats_shmem_size() {
  return add_size(MAXALIGN(sizeof(StatsShared)),
                  hash_estimate_size(settings.max_query_stats, sizeof(StatsEntry)));
}

void query_stats_shmem_request() {
  RequestAddinShmemSpace(query_stats_shmem_size());
  RequestNamedLWLockTranche("pg_cachekit_query_stats", 1);
}

void query_stats_shmem_startup() {
  bool found = false;
  stats_shared = static_cast<StatsShared *>(
      ShmemInitStruct("pg_cachekit query stats", sizeof(StatsShared), &found));
  if (!found) stats_shared->lock = &(GetNamedLWLockTranche("pg_cachekit_query_stats"))->lock;
  HASHCTL info;
  info.keysize = sizeof(StatsKey);
  info.entrysize = sizeof(StatsEntry);
  stats_hash = ShmemInitHash("pg_cachekit query stats hash", settings.max_query_stats,
                             settings.max_query_stats, &info, HASH_ELEM | HASH_BLOBS);
}

void record_query_call(uint64_t fingerprint, const std::string &ns, const std::string &query,
                       const QueryCall &call) {
  if (stats_hash == nullptr) return;
  // The per-database counters count every call, also of queries the full
  // hash below no longer tracks.
  count_query_call(call.outcome, call.bypass, call.ms, call.bytes);
  StatsKey key;
  memset(&key, 0, sizeof key);  // padding is part of a HASH_BLOBS key
  key.dbid = MyDatabaseId;
  key.userid = GetUserId();
  key.fingerprint = fingerprint;
  copy_truncated(key.ns, sizeof key.ns, ns);

  LWLockAcquire(stats_shared->lock, LW_SHARED);
  auto *e = static_cast<StatsEntry *>(hash_search(stats_hash, &key, HASH_FIND, nullptr));
  if (e == nullptr) {
    LWLockRelease(stats_shared->lock);
    LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
    bool found = false;
    // The hash would grow past its nominal size while shared memory lasts.
    if (hash_get_num_entries(stats_hash) < settings.max_query_stats)
      e = static_cast<StatsEntry *>(hash_search(stats_hash, &key, HASH_ENTER_NULL, &found));
    else
      e = static_cast<StatsEntry *>(hash_search(stats_hash, &key, HASH_FIND, nullptr)),
      found = true;
    if (e != nullptr && !found) {
      SpinLockInit(&e->mutex);
      memset(reinterpret_cast<char *>(e) + offsetof(StatsEntry, query), 0,
             sizeof(StatsEntry) - offsetof(StatsEntry, query));
      copy_truncated(e->query, sizeof e->query, query);
    }
    if (e == nullptr) {  // full: not tracked
      LWLockRelease(stats_shared->lock);
      return;
    }
  }
  SpinLockAcquire(&e->mutex);
  e->calls++;
  switch (call.outcome) {
    case Outcome::kHit:
      e->hits++;
      if (call.l1_hit) e->l1_hits++;
      e->hit_ms_total += call.ms;
      if (call.ms > e->hit_ms_max) e->hit_ms_max = call.ms;
      break;
    case Outcome::kMiss:
      e->misses++;
      e->miss_ms_total += call.ms;
      if (call.ms > e->miss_ms_max) e->miss_ms_max = call.ms;
      break;
    case Outcome::kBypass:
      e->bypasses[static_cast<int>(call.bypass)]++;
      break;
  }
  e->rows += call.rows;
  e->bytes += call.bytes;
  if (call.outcome != Outcome::kBypass) {
    if (e->generations_digest != 0 && e->generations_digest != call.generations_digest)
      e->last_invalidation = GetCurrentTimestamp();
    e->generations_digest = call.generations_digest;
    if (call.scope != 0) e->scope = call.scope;
  }
  SpinLockRelease(&e->mutex);
  LWLockRelease(stats_shared->lock);
}

std::vector<QueryStatsRow> query_stats_snapshot(Oid dbid, Oid viewer, bool all_text) {
  std::vector<QueryStatsRow> out;
  if (stats_hash == nullptr) return out;
  LWLockAcquire(stats_shared->lock, LW_SHARED);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, stats_hash);
  while (auto *e = static_cast<StatsEntry *>(hash_seq_search(&seq))) {
    if (e->key.dbid != dbid) continue;
    QueryStatsRow r;
    r.dbid = e->key.dbid;
    r.userid = e->key.userid;
    r.text_visible = all_text || e->key.userid == viewer;
    r.ns = e->key.ns;
    r.fingerprint = r.text_visible ? e->key.fingerprint : 0;
    if (r.text_visible) r.query = e->query;
    SpinLockAcquire(&e->mutex);
    r.calls = e->calls;
    r.hits = e->hits;
    r.misses = e->misses;
    r.l1_hits = e->l1_hits;
    memcpy(r.bypasses, e->bypasses, sizeof r.bypasses);
    r.hit_ms_total = e->hit_ms_total;
    r.hit_ms_max = e->hit_ms_max;
    r.miss_ms_total = e->miss_ms_total;
    r.miss_ms_max = e->miss_ms_max;
    r.rows = e->rows;
    r.bytes = e->bytes;
    r.last_invalidation = e->last_invalidation;
    r.scope = e->scope;
    SpinLockRelease(&e->mutex);
    out.push_back(std::move(r));
  }
  LWLockRelease(stats_shared->lock);
  return out;
}

void reset_query_stats() {
  if (stats_hash == nullptr) return;
  LWLockAcquire(stats_shared->lock, LW_EXCLUSIVE);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, stats_hash);
  while (auto *e = static_cast<StatsEntry *>(hash_seq_search(&seq)))
    hash_search(stats_hash, &e->key, HASH_REMOVE, nullptr);
  LWLockRelease(stats_shared->lock);
}

}  // namespace cachekit::pg
