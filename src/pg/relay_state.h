// The relay's shared state (see relay_state.cpp): counters, delivered
// marks, the per-database registry and the queue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// Shared memory: counters and the marks of outbox rows delivered at commit.
Size relay_state_shmem_size();
void relay_state_shmem_request();
void relay_state_shmem_startup();

enum class AppCounter : int {
  kMessagesPublished,
  kKeysDeleted,
  kPatternsFlushed,
  kOutboxWritten,
  kDeliveredAtCommit,
  kDeliveredByWorker,
  kDeliveryFailures,
  kKeysOverflowed,
  kCount
};
void count_app(AppCounter c, uint64_t n = 1);
uint64_t app_counter(AppCounter c);

// patterns_pending: messages and keys went out, the key patterns are left
// to the relay.
void mark_delivered(Oid dbid, int64_t id, bool patterns_pending);
struct Delivered {
  int64_t id;
  bool patterns_pending;
};
// Outbox rows of `dbid` the backends delivered themselves; the relay deletes
// them (after the pending patterns) instead of delivering them again.
std::vector<Delivered> take_delivered(Oid dbid);

// Backlog: a backend could not deliver, so older rows wait in the outbox (or
// no relay has looked at the outbox since the server started). While it is
// set, backends leave delivery to the relay (which goes in id order); the
// relay clears it once the outbox is empty.
void set_backlog(Oid dbid);

// The relay's queue of invalidations that failed after commit and have no
// outbox row (payload: the outbox's JSON form). queue_push returns false when
// it does not fit; the caller then sets flush_needed.
struct QueuedInvalidation {
  uint64_t seq;
  std::string payload;
};
bool queue_push(Oid dbid, const std::string &payload);
std::vector<QueuedInvalidation> queue_peek(Oid dbid);
void queue_remove(Oid dbid, uint64_t seq);
// Everything must be invalidated once: an invalidation could not be kept, or
// the server did not shut down cleanly. take_ clears it.
void set_flush_needed(Oid dbid);
bool take_flush_needed(Oid dbid);
bool backlog(Oid dbid);
void clear_backlog(Oid dbid);

// The worker of a database registers its latch so backends can wake it.
void register_worker_latch(Oid dbid, int pid);
void unregister_worker_latch(Oid dbid);
void wake_worker(Oid dbid);
// pid of the running worker of a database (0: none).
int worker_pid(Oid dbid);
// Launcher: a database whose worker was stopped for DROP DATABASE etc. is
// left alone until this time (TimestampTz; 0: no pause).
void pause_worker(Oid dbid, int64_t until, bool no_extension = false);
void register_launcher_latch();
// Frees the slots of databases not in `dbs` that have no running relay.
void forget_workers_except(const Oid *dbs, int n);
int64_t worker_paused_until(Oid dbid);

}  // namespace cachekit::pg
