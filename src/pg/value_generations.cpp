// Value-bucket generations in shared memory.
//
// A table watched by a column (cachekit.watch(t, by => 'customer_id')) keeps
// its table generation A_t (generations.cpp), bumped by every write as
// before, and gains two more kinds of counter:
//
//   S_t         the table's structural generation (in its generations.cpp
//               entry), bumped by writes that cannot be attributed to values:
//               TRUNCATE, invalidate(t) (and so DDL, watch and unwatch), a
//               transaction that touched more than kMaxBucketsPerTable
//               buckets of t, a row whose column the value trigger cannot
//               read (value_trigger.cpp).
//   slot[i]     cachekit.value_generations atomic counters. A value's bucket
//               (the hash of the value, or floor(value / bucket_width)) and
//               the table map to slot hash(database, table, bucket) & mask.
//
// A reader whose query fixes the column (`col = $1`, `col IN (...)`, a
// bounded range; query_plan.cpp decides from the analysed query) keys on the
// database generation, S_t and the slots of its buckets instead of A_t.
//
//   writer:  AFTER ROW trigger records the slots of OLD's and NEW's values
//            (or marks the table structural)  ->  COMMIT becomes visible  ->
//            XACT_EVENT_COMMIT bumps A_t, S_t or the recorded slots
//            (pg_atomic_fetch_add: a full barrier), exactly where and how
//            generations.cpp's argument bumps A_t.
//   reader:  reads the database generation, S_t and its slots  ->  takes its
//            snapshot  ->  runs the query  ->  stores under those values.
//
// Why that is enough: a value reader's rows depend only on the rows of t
// whose column value lies in its buckets (t appears once in the query, in
// the top-level FROM, and a top-level AND-conjunct of WHERE requires the
// value to be in the set; an outer join cannot bring back a filtered-out row
// because the condition is strict). A committed change of such a row had
// that value in OLD or NEW: the trigger recorded its slot, or the
// transaction bumped S_t instead. Either counter is in the reader's key, so
// generations.cpp's argument applies to it unchanged: a reader starting
// after the commit reads the bumped counter, and only readers that read it
// after the commit was visible can have stored under it. Slots shared by
// several buckets (collisions) are bumped more often than their buckets
// change: more misses, never a stale hit. No slot is ever allocated, so
// there is nothing to run out of.
//
// Rolled-back subtransactions keep their recorded slots (as A_t does):
// more invalidation, never less. Aborted transactions bump nothing.
//
// Two-phase commit: PREPARE registers the transaction as in doubt whenever
// it recorded anything (invalidation.cpp), readers of the database bypass the
// cache until it is decided, and the first reader after that bumps the
// database generation, which is in every key, value readers' included.
//
// The counters are never reset while the server runs; a restart changes the
// epoch (generations.cpp), which is in every key.
#include "pg/value_generations.h"

extern "C" {
#include "common/hashfn.h"
#include "port/atomics.h"
#include "storage/shmem.h"
}

#include "pg/guc.h"

namespace cachekit::pg {

namespace {

pg_atomic_uint64 *slots = nullptr;

uint64 slot_count() { return static_cast<uint64>(settings.value_generations); }

}  // namespace

Size value_generations_shmem_size() { return mul_size(slot_count(), sizeof(pg_atomic_uint64)); }

void value_generations_shmem_request() { RequestAddinShmemSpace(value_generations_shmem_size()); }

void value_generations_shmem_startup() {
  bool found = false;
  slots = static_cast<pg_atomic_uint64 *>(
      ShmemInitStruct("pg_cachekit value generations", value_generations_shmem_size(), &found));
  if (!found)
    for (uint64 i = 0; i < slot_count(); ++i) pg_atomic_init_u64(&slots[i], 0);
}

bool value_generations_available() { return slots != nullptr; }

uint32_t value_slot(Oid dbid, Oid relid, uint64_t bucket) {
  uint64 h = hash_combine64(hash_bytes_uint32_extended(dbid, relid), bucket);
  h = hash_bytes_extended(reinterpret_cast<const unsigned char *>(&h), sizeof h, 0);
  // cachekit.value_generations is a power of two (its check hook).
  return static_cast<uint32_t>(h & (slot_count() - 1));
}

uint64_t read_value_slot(uint32_t slot) { return pg_atomic_read_u64(&slots[slot]); }

void bump_value_slot(uint32_t slot) { pg_atomic_fetch_add_u64(&slots[slot], 1); }

}  // namespace cachekit::pg
