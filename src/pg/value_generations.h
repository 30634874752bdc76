// Value-bucket generations: the shared counters behind per-value
// invalidation of tables watched by a column (watch(t, by => 'col')). The
// argument for why a reader keyed on them is never stale is in
// value_generations.cpp.
#pragma once

#include <cstdint>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

Size value_generations_shmem_size();
void value_generations_shmem_request();  // from shmem_request_hook
void value_generations_shmem_startup();  // from shmem_startup_hook, under AddinShmemInitLock
bool value_generations_available();

// The counter a bucket of a table maps to. Different buckets may share a
// slot: that only invalidates more.
uint32_t value_slot(Oid dbid, Oid relid, uint64_t bucket);
uint64_t read_value_slot(uint32_t slot);
void bump_value_slot(uint32_t slot);

}  // namespace cachekit::pg
