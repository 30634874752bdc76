// The L1 tier in shared memory: see l1_cache.h for why it is correct and
// core/l1_table.h for the layout and the eviction.
//
// The segment (cachekit.l1_size) is requested by the postmaster, laid out
// once under AddinShmemInitLock (shmem.cpp) and found by every backend at
// the same point. The partition locks are a named LWLock tranche, one lock
// per L1Table partition.
#include "pg/l1_cache.h"

#include <algorithm>
#include <chrono>

#include "pg/boundary.h"
#include "pg/guc.h"

extern "C" {
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

namespace cachekit::pg {

namespace {

constexpr const char *kTranche = "pg_cachekit_l1";

struct L1Shared {
  LWLockPadded *locks;
  Size bytes;  // of the table, after this header
  bool formatted;
};

L1Shared *l1_shared = nullptr;
void *l1_base = nullptr;

Size table_bytes() { return static_cast<Size>(settings.l1_size_kb) * 1024; }

LWLock *lock_of(int partition) { return &l1_shared->locks[partition].lock; }

// Holds a partition lock; released however the scope ends (a copy that
// throws bad_alloc included).
class PartitionLock {
 public:
  PartitionLock(int partition, LWLockMode mode) : lock_(lock_of(partition)) {
    LWLock *l = lock_;
    pg_call([&] { LWLockAcquire(l, mode); });
  }
  ~PartitionLock() { LWLockRelease(lock_); }
  PartitionLock(const PartitionLock &) = delete;
  PartitionLock &operator=(const PartitionLock &) = delete;

 private:
  LWLock *lock_;
};

bool present() { return l1_shared != nullptr && l1_shared->formatted; }

}  // namespace

Size l1_shmem_size() {
  if (table_bytes() == 0) return 0;
  return add_size(MAXALIGN(sizeof(L1Shared)), table_bytes());
}

void l1_shmem_request() {
  if (table_bytes() == 0) return;
  RequestAddinShmemSpace(l1_shmem_size());
  RequestNamedLWLockTranche(kTranche, L1Table::kPartitions);
}

void l1_shmem_startup() {
  if (table_bytes() == 0) return;
  bool found = false;
  l1_shared = static_cast<L1Shared *>(ShmemInitStruct("pg_cachekit l1", l1_shmem_size(), &found));
  l1_base = reinterpret_cast<char *>(l1_shared) + MAXALIGN(sizeof(L1Shared));
  if (found) return;
  l1_shared->locks = GetNamedLWLockTranche(kTranche);
  l1_shared->bytes = table_bytes();
  l1_shared->formatted = L1Table::format(l1_base, l1_shared->bytes);
  if (!l1_shared->formatted)
    ereport(LOG,
            (errmsg("pg_cachekit: cachekit.l1_size is too small for the L1 tier, which is off"),
             errhint("Set cachekit.l1_size to at least %zu kB, or 0.",
                     (L1Table::min_bytes() + 1023) / 1024)));
}

bool l1_active() { return settings.l1 && present(); }

// CLOCK_MONOTONIC (steady_clock): one clock for all backends.
int64_t l1_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool l1_lookup(const std::string &key, std::string &value) {
  if (!l1_active()) return false;
  L1Table t(l1_base);
  const uint64_t h = L1Table::hash(key);
  PartitionLock lock(L1Table::partition_of(h), LW_SHARED);
  return t.lookup(h, key, l1_clock_ms(), value);
}

void l1_store(const std::string &key, const std::string &value, int64_t expires_ms) {
  if (!l1_active()) return;
  L1Table t(l1_base);
  const uint64_t h = L1Table::hash(key);
  const size_t limit = static_cast<size_t>(settings.l1_max_entry);
  // Refused before taking the lock: a result too large for L1 that keeps
  // being read from Redis costs no exclusive lock per read.
  if (key.size() + value.size() > std::min(limit, t.max_entry_bytes())) {
    t.count_too_large(h);
    return;
  }
  const int64_t now = l1_clock_ms();
  if (expires_ms <= now) return;
  PartitionLock lock(L1Table::partition_of(h), LW_EXCLUSIVE);
  t.insert(h, key, value, expires_ms, now, limit);
}

void l1_clear() {
  if (!present()) return;
  L1Table t(l1_base);
  for (int p = 0; p < L1Table::kPartitions; ++p) {
    PartitionLock lock(p, LW_EXCLUSIVE);
    t.clear(p);
  }
}

L1Status l1_status() {
  L1Status s;
  if (!present()) return s;
  s.present = true;
  s.size_bytes = l1_shared->bytes;
  L1Table t(l1_base);
  for (int p = 0; p < L1Table::kPartitions; ++p) {
    PartitionLock lock(p, LW_SHARED);
    s.stats += t.stats(p);
  }
  return s;
}

}  // namespace cachekit::pg
