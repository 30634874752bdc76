// Two fixed-size shared hashes, as query_stats.cpp keeps its own: one entry
// per database (cachekit.max_databases of them, and a few more for databases
// that come and go) and one per (database, queue) (kMaxQueues). One LWLock
// guards their structure, each entry's spinlock its counters, so the hot
// path (a cached_query hit) takes the lock shared and a spinlock for a few
// additions. A full hash counts nothing more for new entries: statistics,
// not bookkeeping.
#include "pg/metric_counters.h"

#include <cstring>

extern "C" {
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
}

#include "core/metrics_text.h"
#include "pg/guc.h"

namespace cachekit::pg {

namespace {

constexpr long kMaxQueues = 1024;

struct DbEntry {
  Oid dbid;  // key
  slock_t mutex;
  DatabaseCounters c;
};

struct QueueKey {
  Oid dbid;
  char queue[NAMEDATALEN];
};

struct QueueEntry {
  QueueKey key;
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
  if (e != nullptr && !found) {
    SpinLockInit(&e->mutex);
    e->c = decltype(e->c){};
  }
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

template <typename F>
void with_database(Oid dbid, F f) {
  auto *e = find_or_enter<DbEntry>(db_hash, dbid, max_db_entries());
  if (e == nullptr) return;
  SpinLockAcquire(&e->mutex);
  f(e->c);
  SpinLockRelease(&e->mutex);
  LWLockRelease(shared->lock);
}

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
  size_t bucket = outcome == Outcome::kBypass ? 0 : bucket_index(latency_buckets(), ms / 1000.0);
  if (bucket >= static_cast<size_t>(kLatencyBucketCount)) bucket = kLatencyBucketCount - 1;
  with_database(MyDatabaseId, [&](DatabaseCounters &c) {
    switch (outcome) {
      case Outcome::kHit:
        c.hits++;
        c.hit_buckets[bucket]++;
        c.hit_seconds += ms / 1000.0;
        break;
      case Outcome::kMiss:
        c.misses++;
        c.miss_buckets[bucket]++;
        c.miss_seconds += ms / 1000.0;
        break;
      case Outcome::kBypass:
        c.bypasses_total++;
        c.bypasses[static_cast<int>(bypass)]++;
        break;
    }
    c.bytes += bytes;
  });
}

void count_worker_start(Oid dbid, bool executor) {
  with_database(dbid, [&](DatabaseCounters &c) {
    if (executor)
      c.executor_starts++;
    else
      c.relay_starts++;
  });
}

void count_tasks_enqueued(Oid dbid, const std::string &queue, uint64_t n) {
  with_queue(dbid, queue, [&](TaskCounters &c) { c.enqueued += n; });
}

void count_task_outcome(Oid dbid, const std::string &queue, const std::string &state,
                        double run_s, double wait_s) {
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

DatabaseCounters database_counters(Oid dbid) {
  DatabaseCounters out;
  if (db_hash == nullptr) return out;
  LWLockAcquire(shared->lock, LW_SHARED);
  auto *e = static_cast<DbEntry *>(hash_search(db_hash, &dbid, HASH_FIND, nullptr));
  if (e != nullptr) {
    SpinLockAcquire(&e->mutex);
    out = e->c;
    SpinLockRelease(&e->mutex);
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
