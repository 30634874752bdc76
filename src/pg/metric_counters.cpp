// Two fixed-size shared hashes, as query_stats.cpp keeps its own: one entry
// per database (cachekit.max_databases of them, and a few more for databases
// that come and go) and one per (database, queue) (kMaxQueues). One LWLock
// guards their structure. Entries are never removed, so a backend keeps a
// pointer to its own database's entry and counts a cached_query call (the
// hot path) with a few atomic additions and no lock. Queue entries are
// counted once per task, under the entry's spinlock. A full hash counts
// nothing more for new entries: statistics, not bookkeeping.
#include "pg/metric_counters.h"

#include <cstring>

extern "C" {
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "port/atomics.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
}

#include "core/metrics_text.h"
#include "pg/guc.h"

namespace cachekit::pg {

namespace {

constexpr long kMaxQueues = 1024;

// The words of a database's entry.
enum DbWord : int {
  kHits,
  kMisses,
  kBypassesTotal,
  kBypass0,
  kHitBucket0 = kBypass0 + static_cast<int>(Bypass::kCount),
  kMissBucket0 = kHitBucket0 + kLatencyBucketCount,
  kHitUs = kMissBucket0 + kLatencyBucketCount,
  kMissUs,
  kBytes,
  kRelayStarts,
  kExecutorStarts,
  kDbWords
};

struct DbEntry {
  Oid dbid;  // key
  TimestampTz created;
  pg_atomic_uint64 w[kDbWords];
};

struct QueueKey {
  Oid dbid;
  char queue[NAMEDATALEN];
};

struct QueueEntry {
  QueueKey key;
  TimestampTz created;
  slock_t mutex;
  TaskCounters c;
};

struct Shared {
  LWLock *lock;
};

Shared *shared = nullptr;
HTAB *db_hash = nullptr;
HTAB *queue_hash = nullptr;

long max_db_entries() { return settings.max_databases + 16; }

// The entry, created if there is room; nullptr when the hash is full or
// shared memory is missing. Returns with the lock held (shared) when not
// nullptr; the caller releases it.
void init_entry(QueueEntry *e) {
  e->created = GetCurrentTimestamp();
  SpinLockInit(&e->mutex);
  e->c = TaskCounters{};
}
void init_entry(DbEntry *e) {
  e->created = GetCurrentTimestamp();
  for (auto &w : e->w) pg_atomic_init_u64(&w, 0);
}

template <typename Entry, typename Key>
Entry *find_or_enter(HTAB *hash, const Key &key, long max_entries) {
  if (hash == nullptr) return nullptr;
  LWLockAcquire(shared->lock, LW_SHARED);
  auto *e = static_cast<Entry *>(hash_search(hash, &key, HASH_FIND, nullptr));
  if (e != nullptr) return e;
  LWLockRelease(shared->lock);
  LWLockAcquire(shared->lock, LW_EXCLUSIVE);
  bool found = false;
  if (hash_get_num_entries(hash) < max_entries)
    e = static_cast<Entry *>(hash_search(hash, &key, HASH_ENTER_NULL, &found));
  else
    e = static_cast<Entry *>(hash_search(hash, &key, HASH_FIND, nullptr)), found = true;
  if (e != nullptr && !found) init_entry(e);
  // Downgrading is not possible; keeping the exclusive lock for the caller's
  // few additions is as good (it is released right after).
  if (e == nullptr) LWLockRelease(shared->lock);
  return e;
}

QueueKey queue_key(Oid dbid, const std::string &queue) {
  QueueKey key;
  memset(&key, 0, sizeof key);  // padding is part of a HASH_BLOBS key
  key.dbid = dbid;
  strlcpy(key.queue, queue.c_str(), sizeof key.queue);
  return key;
}

template <typename F>
void with_queue(Oid dbid, const std::string &queue, F f) {
  QueueKey key = queue_key(dbid, queue);
  auto *e = find_or_enter<QueueEntry>(queue_hash, key, kMaxQueues);
  if (e == nullptr) return;
  SpinLockAcquire(&e->mutex);
  f(e->c);
  SpinLockRelease(&e->mutex);
  LWLockRelease(shared->lock);
}

// The entry of a database, created if there is room (nullptr: no room or
// no shared memory). Never removed, so a backend may keep the pointer.
DbEntry *db_entry(Oid dbid) {
  auto *e = find_or_enter<DbEntry>(db_hash, dbid, max_db_entries());
  if (e != nullptr) LWLockRelease(shared->lock);
  return e;
}

DbEntry *my_entry = nullptr;    // of MyDatabaseId, once found
bool my_entry_missing = false;  // the hash was full: not asked again by this backend

void add(DbEntry *e, int word, uint64_t n = 1) { pg_atomic_fetch_add_u64(&e->w[word], n); }

}  // namespace

Size metric_counters_shmem_size() {
  return add_size(MAXALIGN(sizeof(Shared)),
                  add_size(hash_estimate_size(max_db_entries(), sizeof(DbEntry)),
                           hash_estimate_size(kMaxQueues, sizeof(QueueEntry))));
}

void metric_counters_shmem_request() {
  RequestAddinShmemSpace(metric_counters_shmem_size());
  RequestNamedLWLockTranche("pg_cachekit_metrics", 1);
}

void metric_counters_shmem_startup() {
  bool found = false;
  shared = static_cast<Shared *>(ShmemInitStruct("pg_cachekit metrics", sizeof(Shared), &found));
  if (!found) shared->lock = &(GetNamedLWLockTranche("pg_cachekit_metrics"))->lock;
  HASHCTL info;
  info.keysize = sizeof(Oid);
  info.entrysize = sizeof(DbEntry);
  db_hash = ShmemInitHash("pg_cachekit metrics databases", max_db_entries(), max_db_entries(),
                          &info, HASH_ELEM | HASH_BLOBS);
  info.keysize = sizeof(QueueKey);
  info.entrysize = sizeof(QueueEntry);
  queue_hash = ShmemInitHash("pg_cachekit metrics queues", kMaxQueues, kMaxQueues, &info,
                             HASH_ELEM | HASH_BLOBS);
}

void count_query_call(Outcome outcome, Bypass bypass, double ms, uint64_t bytes) {
  if (my_entry == nullptr && !my_entry_missing) {
    my_entry = db_entry(MyDatabaseId);
    my_entry_missing = my_entry == nullptr;
  }
  DbEntry *e = my_entry;
  if (e == nullptr) return;
  size_t bucket = outcome == Outcome::kBypass ? 0 : bucket_index(latency_buckets(), ms / 1000.0);
  if (bucket >= static_cast<size_t>(kLatencyBucketCount)) bucket = kLatencyBucketCount - 1;
  const uint64_t us = static_cast<uint64_t>(ms * 1000.0 + 0.5);
  switch (outcome) {
    case Outcome::kHit:
      add(e, kHits);
      add(e, kHitBucket0 + static_cast<int>(bucket));
      add(e, kHitUs, us);
      break;
    case Outcome::kMiss:
      add(e, kMisses);
      add(e, kMissBucket0 + static_cast<int>(bucket));
      add(e, kMissUs, us);
      break;
    case Outcome::kBypass:
      add(e, kBypassesTotal);
      add(e, kBypass0 + static_cast<int>(bypass));
      break;
  }
  if (bytes) add(e, kBytes, bytes);
}

void count_worker_start(Oid dbid, bool executor) {
  if (DbEntry *e = db_entry(dbid)) add(e, executor ? kExecutorStarts : kRelayStarts);
}

void count_tasks_enqueued(Oid dbid, const std::string &queue, uint64_t n) {
  with_queue(dbid, queue, [&](TaskCounters &c) { c.enqueued += n; });
}

void count_task_outcome(Oid dbid, const std::string &queue, const std::string &state, double run_s,
                        double wait_s) {
  with_queue(dbid, queue, [&](TaskCounters &c) {
    if (state == "succeeded") {
      c.succeeded++;
    } else if (state == "failed") {
      c.failed++;
      c.retried++;
    } else if (state == "dead") {
      c.failed++;
      c.dead++;
    } else if (state == "cancelled") {
      c.cancelled++;
    }
    if (run_s >= 0) c.run_seconds += run_s, c.runs++;
    if (wait_s >= 0) c.wait_seconds += wait_s, c.waits++;
  });
}

void forget_metric_counters_except(const Oid *dbs, int n, int64_t scan_started) {
  if (db_hash == nullptr) return;
  auto kept = [&](Oid dbid) {
    for (int i = 0; i < n; ++i)
      if (dbs[i] == dbid) return true;
    return false;
  };
  LWLockAcquire(shared->lock, LW_EXCLUSIVE);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, db_hash);
  while (auto *e = static_cast<DbEntry *>(hash_seq_search(&seq)))
    if (e->created < scan_started && !kept(e->dbid))
      hash_search(db_hash, &e->dbid, HASH_REMOVE, nullptr);
  hash_seq_init(&seq, queue_hash);
  while (auto *e = static_cast<QueueEntry *>(hash_seq_search(&seq)))
    if (e->created < scan_started && !kept(e->key.dbid))
      hash_search(queue_hash, &e->key, HASH_REMOVE, nullptr);
  LWLockRelease(shared->lock);
}

DatabaseCounters database_counters(Oid dbid) {
  DatabaseCounters out;
  if (db_hash == nullptr) return out;
  LWLockAcquire(shared->lock, LW_SHARED);
  auto *e = static_cast<DbEntry *>(hash_search(db_hash, &dbid, HASH_FIND, nullptr));
  if (e != nullptr) {
    auto r = [&](int w) { return pg_atomic_read_u64(&e->w[w]); };
    out.hits = r(kHits);
    out.misses = r(kMisses);
    out.bypasses_total = r(kBypassesTotal);
    for (int i = 0; i < static_cast<int>(Bypass::kCount); ++i) out.bypasses[i] = r(kBypass0 + i);
    for (int i = 0; i < kLatencyBucketCount; ++i) {
      out.hit_buckets[i] = r(kHitBucket0 + i);
      out.miss_buckets[i] = r(kMissBucket0 + i);
    }
    out.hit_seconds = r(kHitUs) / 1e6;
    out.miss_seconds = r(kMissUs) / 1e6;
    out.bytes = r(kBytes);
    out.relay_starts = r(kRelayStarts);
    out.executor_starts = r(kExecutorStarts);
  }
  LWLockRelease(shared->lock);
  return out;
}

std::vector<QueueCounters> queue_counters(Oid dbid) {
  std::vector<QueueCounters> out;
  if (queue_hash == nullptr) return out;
  LWLockAcquire(shared->lock, LW_SHARED);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, queue_hash);
  while (auto *e = static_cast<QueueEntry *>(hash_seq_search(&seq))) {
    if (e->key.dbid != dbid) continue;
    QueueCounters q;
    q.queue = e->key.queue;
    SpinLockAcquire(&e->mutex);
    q.counters = e->c;
    SpinLockRelease(&e->mutex);
    out.push_back(std::move(q));
  }
  LWLockRelease(shared->lock);
  return out;
}

}  // namespace cachekit::pg
