// Generations in shared memory: why cached_query can never serve rows older
// than a commit that finished before the read started.
//
// Every watched table has a 64-bit generation in a shared hash table keyed by
// (database, table); (database, InvalidOid) is the database-wide generation.
// A cache key contains the generations of every table the query depends on.
//
//   writer:  statement trigger records the table  ->  COMMIT becomes visible
//            (ProcArrayEndTransaction)  ->  XACT_EVENT_COMMIT callback bumps
//            the generations (pg_atomic_fetch_add: a full barrier).
//   reader:  reads the generations  ->  takes its snapshot  ->  runs the query
//            ->  stores the rows under a key built from those generations.
//
// Take a writer W whose commit finished before reader R started. W's bump
// happened before W's COMMIT returned, so R reads the bumped generation: R can
// only hit entries stored under it. Any reader R' that stored under the bumped
// generation read it after the bump, hence after W's commit was visible, and
// took its snapshot after that: R' saw W's rows. A reader that read the old
// generation may store late, but only under the old key, which nobody computes
// any more. Aborted transactions never reach the commit callback and bump
// nothing.
//
// Capacity: the hash has cachekit.max_watched_tables table entries (plus one
// per database) and entries are never removed before the next restart. When it is full, a table
// without an entry uses the shared overflow generation, which every such writer bumps: coarser,
// never wrong. A table gains an entry only while there is room, and entries never go away, so a
// table never moves from its own generation back to the overflow one. A dropped table only bumps
// the entry it has (or the overflow one): any role may create and drop temporary tables.
//
// Epoch: a random value chosen when shared memory is initialised, i.e. at
// every start and after a crash restart (which re-creates shared memory), so
// entries written before a restart, whose generations started over, can never
// be hit again.
//
// In-doubt prepared transactions: one slot per transaction that may still
// commit, max_prepared_transactions + MaxBackends of them. A registered
// transaction is in progress until it is decided: it is either prepared (at
// most max_prepared_transactions) or still owned by the backend preparing it
// (at most one per backend, including the one registering). Slots of decided
// transactions are freed (after bumping their database's generation) by the
// database's next reader, or by a registration that finds the table full, so
// a registration always finds a slot.
//
// Tables watched by a column: the same entry holds the table's structural
// generation S_t, and value_generations.cpp the value-bucket counters. A
// reader whose query fixes the column keys on the database generation, S_t
// and its buckets' counters instead of the table generation; every counter
// is bumped at the same point as the table generation (after the commit is
// visible, with a full barrier), so the argument above holds for each of
// them. Why those counters cover every change such a reader can see is in
// value_generations.cpp. Like the table generation, S_t of a table without
// an entry is a shared overflow counter (its own, so that ordinary writes of
// overflowed tables, which bump the table overflow counter, leave value
// readers alone), bumped by every such table's structural writes: coarser,
// never late. A table never moves between its entry and the overflow (see
// Capacity), so writer and reader always agree on which counter S_t is.
//
// Locking: one LWLock protects the hash's structure (LW_SHARED to find an
// entry, LW_EXCLUSIVE to insert) and the in-doubt slots; the counters inside
// entries are atomics.
#include "pg/generations.h"

#include <unordered_map>

extern "C" {
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"
#include "access/transam.h"
#include "access/twophase.h"
#include "common/pg_prng.h"
}

#include "pg/guc.h"

namespace cachekit::pg {

namespace {

// Slots freed per pass under the lock (a fixed-size batch on the stack).
constexpr int kResolveBatch = 64;

struct GenKey {
  Oid dbid;
  Oid relid;
};

struct GenEntry {
  GenKey key;  // must be first (hash key)
  pg_atomic_uint64 generation;
  pg_atomic_uint64 structural;  // S_t, see value_generations.cpp
  pg_atomic_uint64 invalidations;
  pg_atomic_uint64 last_invalidation;  // TimestampTz
  pg_atomic_uint32 prepared_scanned;   // database entries: pg_prepared_xacts read since start
};

struct InDoubt {
  Oid dbid;  // InvalidOid: free slot
  TransactionId xid;
};

struct GenShared {
  LWLock *lock;
  uint64 epoch;
  pg_atomic_uint64 overflow;
  pg_atomic_uint64 overflow_structural;  // S_t of tables without an entry
  pg_atomic_uint32 in_doubt_count;       // fast path: zero means nothing to check
};

GenShared *gen_shared = nullptr;
HTAB *gen_hash = nullptr;
InDoubt *in_doubt = nullptr;  // in_doubt_slots() entries, protected by gen_shared->lock

// Fixed once shared memory is sized: both are PGC_POSTMASTER, and
// MaxBackends is known by the time shmem_request_hook runs.
int in_doubt_slots() { return max_prepared_xacts + MaxBackends; }

GenEntry *find_or_insert_locked(const GenKey &key) {
  LWLockAcquire(gen_shared->lock, LW_SHARED);
  auto *entry = static_cast<GenEntry *>(hash_search(gen_hash, &key, HASH_FIND, nullptr));
  LWLockRelease(gen_shared->lock);
  if (entry != nullptr) return entry;

  LWLockAcquire(gen_shared->lock, LW_EXCLUSIVE);
  bool found = false;
  // A shared dynahash keeps allocating elements past its nominal size while
  // shared memory lasts: the capacity is enforced here.
  entry = static_cast<GenEntry *>(hash_search(gen_hash, &key, HASH_FIND, nullptr));
  // Database-wide entries (relid 0) always get one: every key includes them.
  if (entry == nullptr && key.relid != InvalidOid &&
      hash_get_num_entries(gen_hash) >= settings.max_watched_tables) {
    LWLockRelease(gen_shared->lock);
    return nullptr;
  }
  if (entry == nullptr)
    entry = static_cast<GenEntry *>(hash_search(gen_hash, &key, HASH_ENTER_NULL, &found));
  else
    found = true;
  if (entry != nullptr && !found) {
    pg_atomic_init_u64(&entry->generation, 0);
    pg_atomic_init_u64(&entry->structural, 0);
    pg_atomic_init_u64(&entry->invalidations, 0);
    pg_atomic_init_u64(&entry->last_invalidation, 0);
    pg_atomic_init_u32(&entry->prepared_scanned, 0);
  }
  LWLockRelease(gen_shared->lock);
  return entry;  // nullptr: full
}

// Entries are never removed while the server runs (and a restart ends every
// backend), so a backend may remember where an entry lives and read its
// atomics without taking the lock again.
std::unordered_map<uint64, GenEntry *> known_entries;

GenEntry *find_or_insert(const GenKey &key) {
  const uint64 local_key = (static_cast<uint64>(key.dbid) << 32) | key.relid;
  auto known = known_entries.find(local_key);
  if (known != known_entries.end()) return known->second;
  GenEntry *entry = find_or_insert_locked(key);
  // The memo is an optimisation; this also runs in the commit callback,
  // where nothing may throw.
  if (entry != nullptr) try {
      known_entries.emplace(local_key, entry);
    } catch (...) {
    }
  return entry;
}

GenEntry *find_existing(const GenKey &key) {
  const uint64 local_key = (static_cast<uint64>(key.dbid) << 32) | key.relid;
  auto known = known_entries.find(local_key);
  if (known != known_entries.end()) return known->second;
  LWLockAcquire(gen_shared->lock, LW_SHARED);
  auto *entry = static_cast<GenEntry *>(hash_search(gen_hash, &key, HASH_FIND, nullptr));
  LWLockRelease(gen_shared->lock);
  return entry;
}

void bump_entry(GenEntry *e) {
  if (e == nullptr) {
    pg_atomic_fetch_add_u64(&gen_shared->overflow, 1);
    return;
  }
  pg_atomic_fetch_add_u64(&e->generation, 1);
  pg_atomic_fetch_add_u64(&e->invalidations, 1);
  pg_atomic_write_u64(&e->last_invalidation, static_cast<uint64>(GetCurrentTimestamp()));
}

}  // namespace

Size generations_shmem_size() {
  Size size = add_size(MAXALIGN(sizeof(GenShared)),
                       hash_estimate_size(settings.max_watched_tables, sizeof(GenEntry)));
  return add_size(size, MAXALIGN(mul_size(in_doubt_slots(), sizeof(InDoubt))));
}

void generations_shmem_request() {
  RequestAddinShmemSpace(generations_shmem_size());
  RequestNamedLWLockTranche("pg_cachekit_generations", 1);
}

void generations_shmem_startup() {
  bool found = false;
  gen_shared = static_cast<GenShared *>(
      ShmemInitStruct("pg_cachekit generations", sizeof(GenShared), &found));
  if (!found) {
    gen_shared->lock = &(GetNamedLWLockTranche("pg_cachekit_generations"))->lock;
    // Random rather than a timestamp: two restarts in the same microsecond,
    // or a clock set back, must still give a new epoch.
    uint64 epoch = 0;
    if (!pg_strong_random(&epoch, sizeof epoch))
      epoch = static_cast<uint64>(GetCurrentTimestamp()) ^ (static_cast<uint64>(MyProcPid) << 32);
    gen_shared->epoch = epoch;
    pg_atomic_init_u64(&gen_shared->overflow, 0);
    pg_atomic_init_u64(&gen_shared->overflow_structural, 0);
    pg_atomic_init_u32(&gen_shared->in_doubt_count, 0);
  }
  bool slots_found = false;
  in_doubt = static_cast<InDoubt *>(ShmemInitStruct("pg_cachekit in-doubt transactions",
                                                    mul_size(in_doubt_slots(), sizeof(InDoubt)),
                                                    &slots_found));
  if (!slots_found)
    for (int i = 0; i < in_doubt_slots(); ++i)
      in_doubt[i] = InDoubt{InvalidOid, InvalidTransactionId};
  HASHCTL info;
  info.keysize = sizeof(GenKey);
  info.entrysize = sizeof(GenEntry);
  gen_hash = ShmemInitHash("pg_cachekit generation hash", settings.max_watched_tables,
                           settings.max_watched_tables, &info, HASH_ELEM | HASH_BLOBS);
}

bool generations_available() { return gen_shared != nullptr; }

uint64_t server_epoch() { return gen_shared->epoch; }

uint64_t overflow_generation() { return pg_atomic_read_u64(&gen_shared->overflow); }

Generation read_generation(Oid dbid, Oid relid) {
  GenEntry *e = find_or_insert(GenKey{dbid, relid});
  if (e == nullptr) return Generation{pg_atomic_read_u64(&gen_shared->overflow), true};
  return Generation{pg_atomic_read_u64(&e->generation), false};
}

void bump_generation(Oid dbid, Oid relid) { bump_entry(find_or_insert(GenKey{dbid, relid})); }

// A reader inserting the entry after the lookup found none read the
// generation after this commit was visible, as with bump_generation.
void bump_existing_generation(Oid dbid, Oid relid) {
  bump_entry(find_existing(GenKey{dbid, relid}));
}

Generation read_structural_generation(Oid dbid, Oid relid) {
  GenEntry *e = find_or_insert(GenKey{dbid, relid});
  if (e == nullptr) return Generation{pg_atomic_read_u64(&gen_shared->overflow_structural), true};
  return Generation{pg_atomic_read_u64(&e->structural), false};
}

void bump_structural_generation(Oid dbid, Oid relid) {
  GenEntry *e = find_or_insert(GenKey{dbid, relid});
  if (e == nullptr)
    pg_atomic_fetch_add_u64(&gen_shared->overflow_structural, 1);
  else
    pg_atomic_fetch_add_u64(&e->structural, 1);
}

std::vector<TableStats> table_stats_snapshot() {
  std::vector<TableStats> out;
  LWLockAcquire(gen_shared->lock, LW_SHARED);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, gen_hash);
  while (auto *e = static_cast<GenEntry *>(hash_seq_search(&seq))) {
    out.push_back(TableStats{e->key.dbid, e->key.relid, pg_atomic_read_u64(&e->generation),
                             pg_atomic_read_u64(&e->invalidations),
                             static_cast<TimestampTz>(pg_atomic_read_u64(&e->last_invalidation))});
  }
  LWLockRelease(gen_shared->lock);
  return out;
}

void reset_table_stats() {
  LWLockAcquire(gen_shared->lock, LW_SHARED);
  HASH_SEQ_STATUS seq;
  hash_seq_init(&seq, gen_hash);
  // Only the statistics: the generations themselves must never go back.
  while (auto *e = static_cast<GenEntry *>(hash_seq_search(&seq))) {
    pg_atomic_write_u64(&e->invalidations, 0);
    pg_atomic_write_u64(&e->last_invalidation, 0);
  }
  LWLockRelease(gen_shared->lock);
}

bool prepared_scan_needed(Oid dbid) {
  GenEntry *e = find_or_insert(GenKey{dbid, InvalidOid});
  // Without an entry the database uses the overflow generation; scanning
  // every time is then the safe answer.
  return e == nullptr || pg_atomic_read_u32(&e->prepared_scanned) == 0;
}

void prepared_scan_done(Oid dbid) {
  GenEntry *e = find_or_insert(GenKey{dbid, InvalidOid});
  if (e != nullptr) pg_atomic_write_u32(&e->prepared_scanned, 1);
}

namespace {

// Frees up to kResolveBatch slots of decided transactions (of database
// `dbid`, or of any database when dbid is InvalidOid). The outcome is
// visible now (the transaction left the proc array). Bump first, forget the
// slot second: a reader that finds the slot gone (or the counter at zero)
// must already see the bumped generation. Readers that still see the slot in
// between bump again, which is harmless. Only slots found decided before the
// bump are freed: one decided after it would need a bump of its own.
// Sets *undecided when a transaction of `dbid` is still in progress; returns
// whether a full batch was found (there may be more).
bool resolve_decided(Oid dbid, bool *undecided) {
  int slot[kResolveBatch];
  InDoubt seen[kResolveBatch];
  int n = 0;
  bool full = false;
  LWLockAcquire(gen_shared->lock, LW_SHARED);
  for (int i = 0; i < in_doubt_slots(); ++i) {
    const InDoubt &d = in_doubt[i];
    if (d.dbid == InvalidOid || (dbid != InvalidOid && d.dbid != dbid)) continue;
    if (TransactionIdIsInProgress(d.xid)) {
      if (undecided) *undecided = true;
    } else if (n == kResolveBatch) {
      full = true;
    } else {
      slot[n] = i;
      seen[n++] = d;
    }
  }
  LWLockRelease(gen_shared->lock);
  for (int k = 0; k < n; ++k) {
    bool bumped = false;
    for (int m = 0; m < k && !bumped; ++m) bumped = seen[m].dbid == seen[k].dbid;
    if (!bumped) bump_generation(seen[k].dbid, InvalidOid);
  }
  if (n > 0) {
    LWLockAcquire(gen_shared->lock, LW_EXCLUSIVE);
    for (int k = 0; k < n; ++k) {
      InDoubt &d = in_doubt[slot[k]];
      if (d.dbid == seen[k].dbid && d.xid == seen[k].xid) {
        d = InDoubt{InvalidOid, InvalidTransactionId};
        pg_atomic_fetch_sub_u32(&gen_shared->in_doubt_count, 1);
      }
    }
    LWLockRelease(gen_shared->lock);
  }
  return full;
}

// 1: registered (or already there), 0: no free slot.
int try_register(Oid dbid, TransactionId xid) {
  int free_slot = -1;
  LWLockAcquire(gen_shared->lock, LW_EXCLUSIVE);
  for (int i = 0; i < in_doubt_slots(); ++i) {
    const InDoubt &d = in_doubt[i];
    // Concurrent first readers after a restart register the same
    // transactions: once is enough, and keeps the table within its bound.
    if (d.dbid == dbid && d.xid == xid) {
      LWLockRelease(gen_shared->lock);
      return 1;
    }
    if (d.dbid == InvalidOid && free_slot < 0) free_slot = i;
  }
  if (free_slot >= 0) {
    in_doubt[free_slot] = InDoubt{dbid, xid};
    pg_atomic_fetch_add_u32(&gen_shared->in_doubt_count, 1);
  }
  LWLockRelease(gen_shared->lock);
  return free_slot >= 0 ? 1 : 0;
}

}  // namespace

bool register_in_doubt(Oid dbid, TransactionId xid) {
  if (try_register(dbid, xid)) return true;
  // Full: some slots may belong to transactions decided since, whose
  // databases had no reader yet to free them.
  resolve_decided(InvalidOid, nullptr);
  return try_register(dbid, xid) == 1;
}

bool database_in_doubt(Oid dbid) {
  if (pg_atomic_read_u32(&gen_shared->in_doubt_count) == 0) return false;
  bool undecided = false;
  // Each full pass frees a batch; bounded all the same.
  for (int pass = 0; pass <= in_doubt_slots() / kResolveBatch; ++pass)
    if (!resolve_decided(dbid, &undecided)) break;
  return undecided;
}

}  // namespace cachekit::pg
