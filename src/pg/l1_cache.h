// The L1 tier of cached_query: results kept in the server's shared memory
// under the same key string as in Redis (core/l1_table.h holds the layout
// and the CLOCK eviction).
//
// Why an L1 entry is as fresh as the Redis entry of its key: the key is a
// digest of everything the result depends on, the generations of every table
// the query reads included (generations.cpp). An entry is only ever filled
// with what cached_query stores in Redis under that key, or with what a Redis
// GET of that key returned; a writer's commit changes the generations and so
// the key every later call builds, and the old entry is simply never looked
// up again. Nothing in that argument involves Redis being reachable, so L1
// serves while Redis is down. An entry never outlives the Redis entry it
// copies: its expiry is the ttl of the SET, or the remaining PTTL of the GET.
//
// Locks: one LWLock per partition (key hash); lookups take it shared and copy
// the value out, so readers never wait for each other; inserts take it
// exclusive. Present only with shared_preload_libraries and
// cachekit.l1_size > 0.
#pragma once

#include <cstdint>
#include <string>

#include "core/l1_table.h"

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

Size l1_shmem_size();
void l1_shmem_request();
void l1_shmem_startup();

// The tier exists (cachekit.l1_size > 0, shared memory) and this session
// has cachekit.l1 on.
bool l1_active();

// True and `value` set on a live entry of `key`.
bool l1_lookup(const std::string &key, std::string &value);

// The clock of L1 expiries (milliseconds, monotonic, common to all
// backends). Read it before sending the Redis command whose ttl an entry
// copies: Redis starts its ttl later, so the entry expires no later.
int64_t l1_clock_ms();

// Keeps `value` under `key` until l1_clock_ms() reaches expires_ms (refused,
// and counted, above cachekit.l1_max_entry).
void l1_store(const std::string &key, const std::string &value, int64_t expires_ms);

// Drops every entry.
void l1_clear();

struct L1Status {
  bool present = false;  // shared memory holds a table
  uint64_t size_bytes = 0;
  L1Stats stats;
};
L1Status l1_status();

}  // namespace cachekit::pg
