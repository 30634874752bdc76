// Miss coalescing: when several sessions miss the same cached_query key at
// once, one runs the query (it holds the key's lease) and the others wait,
// bounded by cachekit.coalesce_wait_ms, for its result to appear in Redis.
//
// Why a waiter may take that result: the key is a digest of everything the
// result depends on, the generations of the query's tables included, so the
// lease holder stores exactly what the waiter's own miss would have stored
// under the same key (its snapshot, like the waiter's would have been, is
// taken after those generations were read). A waiter never takes a result
// of another key: a lease is for one key digest.
//
// The table is a fixed array of slots in shared memory, a key's slot chosen
// by its digest; a slot held for another key means "no coalescing" for this
// one (the call simply runs). Each slot has a spinlock and a condition
// variable. A backend holds at most one lease, released when its call ends
// (also on error, and at backend exit).
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

Size leases_shmem_size();
void leases_shmem_request();
void leases_shmem_startup();

enum class LeaseOutcome { kOwner, kOwnerLookAgain, kWait, kNone };

// Tries to take the lease of `key` (a cache key). kOwner: this backend runs
// the query and must call release_lease(); kOwnerLookAgain: the same, but
// the last lease released in the slot was this key's, released after its
// holder stored the result, maybe after this backend's lookup missed: look
// again before running (the query would run twice); kWait: another backend
// runs it;
// kNone: no coalescing (table busy or missing).
LeaseOutcome take_lease(const std::string &key);

// Waits until the lease of `key` is released or `timeout_ms` passed; true
// when it was released (the result may now be in Redis). May raise a
// Postgres error (a query cancel while waiting): call through pg_call.
bool wait_for_lease(const char *key, int timeout_ms);

// Releases this backend's lease, if it holds one; wakes the waiters. Never
// raises an error (safe in destructors and abort callbacks). `stored`: the
// result is in Redis now (the next owner of the key's lease looks again).
void release_lease(bool stored = false);

// Calls that took another backend's result after waiting (cluster-wide).
void count_coalesced();
uint64_t coalesced_calls();

}  // namespace cachekit::pg
