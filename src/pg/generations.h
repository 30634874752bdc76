// Table generations, the server epoch and in-doubt prepared transactions:
// the shared state behind cached_query's correctness guarantee. The argument
// for why the order of operations is safe is in generations.cpp.
#pragma once

#include <cstdint>
#include <vector>

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
}

namespace cachekit::pg {

// What a cache key records for one dependency. `overflow` marks a generation
// taken from the coarse overflow counter because the table did not fit in
// shared memory (cachekit.max_watched_tables).
struct Generation {
  uint64_t value;
  bool overflow;
};

Size generations_shmem_size();
void generations_shmem_request();  // from shmem_request_hook
void generations_shmem_startup();  // from shmem_startup_hook, under AddinShmemInitLock
bool generations_available();

// Changes at every server start and crash restart.
uint64_t server_epoch();

// relid InvalidOid is the database-wide generation, part of every key.
Generation read_generation(Oid dbid, Oid relid);
void bump_generation(Oid dbid, Oid relid);
// For a table that no longer exists: bumps its entry if it has one, else the
// overflow generation (which any reader of it without an entry used), and
// never takes a slot: dropping tables must not use up
// cachekit.max_watched_tables.
void bump_existing_generation(Oid dbid, Oid relid);

// The structural generation S_t of a table watched by a column: bumped by
// the writes that cannot be attributed to value buckets (see
// value_generations.cpp). Without an entry, a shared overflow counter that
// every such table's structural writes bump.
Generation read_structural_generation(Oid dbid, Oid relid);
void bump_structural_generation(Oid dbid, Oid relid);

struct TableStats {
  Oid dbid;
  Oid relid;
  uint64_t generation;
  uint64_t invalidations;
  TimestampTz last_invalidation;  // 0: never
};
std::vector<TableStats> table_stats_snapshot();
void reset_table_stats();
uint64_t overflow_generation();

// Two-phase commit. A prepared transaction's commit is not seen by any commit
// callback, so PREPARE records the transaction as in doubt; readers of the
// database bypass the cache while it is in progress, and the first reader
// after it finished bumps the database generation (invalidating more than
// needed, never late). The table has room for every transaction that can be
// undecided at once (max_prepared_transactions + MaxBackends), and a full
// table first frees the slots of decided transactions. Should it still be
// full (false), PREPARE is refused and readers bypass the cache.
bool register_in_doubt(Oid dbid, TransactionId xid);
// Prepared transactions survive a restart, the in-doubt list does not: the
// first reader of a database after a start registers every prepared
// transaction of the database found in pg_prepared_xacts.
bool prepared_scan_needed(Oid dbid);
void prepared_scan_done(Oid dbid);
// True while some prepared transaction of the database is still undecided.
// Resolves (bumps and forgets) the finished ones.
bool database_in_doubt(Oid dbid);

}  // namespace cachekit::pg
