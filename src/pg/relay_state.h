// The relay's shared state (see relay_state.cpp for what lives where and
// which lock guards it): counters, delivered marks, the per-database relay
// registry (with its backlog and flush flags) and the queue.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

extern "C" {
#include "postgres.h"
#include "port/atomics.h"
}

namespace cachekit::pg {

// Shared memory (sized by cachekit.max_databases).
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
  kPatternsRejected,  // key patterns without a literal prefix, never scanned
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
// no relay has looked at the outbox since the server started, or the
// database has no registry slot at all). While it is set, backends write
// every invalidation to the outbox and leave delivery to the relay (which
// goes in id order); the relay clears it once the outbox is empty.
void set_backlog(Oid dbid);
bool backlog(Oid dbid);
void clear_backlog(Oid dbid);

// The relay's queue of invalidations that have no outbox row (payload:
// encode_invalidation()). queue_push returns false when it does not fit; the
// caller then sets flush_needed. queue_peek copies the entries of a database
// in queue order; queue_remove frees one after it was delivered or written
// to the outbox.
struct QueuedInvalidation {
  uint64_t seq;
  std::string payload;
};
bool queue_push(Oid dbid, const std::string &payload);
std::vector<QueuedInvalidation> queue_peek(Oid dbid);
void queue_remove(Oid dbid, uint64_t seq);
void queue_remove(Oid dbid, const std::vector<uint64_t> &seqs);  // under one lock
// Entries of a database (InvalidOid: of all databases).
int queue_count(Oid dbid);

// Everything of a database must be invalidated once (an invalidation could
// not be kept). The relay reads a FlushRequest before flushing and hands it
// back to flush_done() only once the flush succeeded: a request that came in
// meanwhile, or a flush that failed, errored or was interrupted, leaves the
// database needing another one. An unclean start (or a clean one that left
// work undone, see the marker file in relay_state.cpp) requests a flush of
// every database.
void set_flush_needed(Oid dbid);
struct FlushRequest {
  bool needed = false;
  uint64_t requests = 0;         // the database's own requests seen
  uint64_t global_requests = 0;  // cluster-wide requests seen
};
FlushRequest flush_request(Oid dbid);
void flush_done(Oid dbid, const FlushRequest &seen);

// The relay of a database. register_relay() is atomic: false when another
// live relay already serves the database (that one keeps it; the caller must
// exit) or the database has no registry slot.
bool register_relay(Oid dbid);
void unregister_relay(Oid dbid);
void wake_worker(Oid dbid);
// Sets the latch of every running relay (a metrics scrape wants snapshots).
void wake_all_relays();
// pid of the running relay of a database (0: none).
int worker_pid(Oid dbid);
// A database whose relay was stopped for DROP DATABASE etc., or that had no
// extension, is left alone until this time (TimestampTz; 0: no pause).
void pause_worker(Oid dbid, int64_t until, bool no_extension = false);

// The launcher.
void register_launcher_latch();
void unregister_launcher_latch();
struct LauncherScan {
  uint64_t registry_seq;
  uint64_t queue_seq;
};
// Taken before the launcher reads pg_database: only what existed before it
// may be forgotten for being absent there.
LauncherScan launcher_scan_begin();
// The database's slot; with `take`, taken if it has none: a free one, or
// else one of a database whose relay found no extension there (evicted: the
// launcher remembers its pause itself). What the launcher needs to decide.
struct SlotView {
  bool has_slot = false;
  int pid = 0;
  int64_t paused_until = 0;
  Oid evicted = InvalidOid;
  int64_t evicted_until = 0;
  bool extension_present = false;  // its relay runs and found the extension
  int64_t executors_paused_until = 0;
};
SlotView launcher_claim(Oid dbid, bool take);
// The launcher could (not) start a worker for the database.
void set_no_worker(Oid dbid, bool no_worker);
// End of a scan: `unserved` databases found no slot.
void launcher_scan_end(int unserved);
// Forgets databases not in `dbs` (dropped since), with their queue entries
// and marks; a database with a running relay is kept until it exits.
void forget_databases_except(const Oid *dbs, int n, const LauncherScan &scan);

// ---- task executors (worker/task_executor.cpp) ----
// Executors per database at most (cachekit.task_workers).
constexpr int kMaxTaskWorkers = 32;
// The relay found pg_cachekit in its database: the launcher starts executors.
void set_extension_present(Oid dbid, bool present);
// Registers executor `index` of a database: its claim token (see
// live_claims()), or 0 when another live executor holds the index or the
// database has no slot (the caller must exit).
int64_t register_executor(Oid dbid, int index);
void unregister_executor(Oid dbid, int index);
void executor_idle(Oid dbid, int index, bool idle);
// Sets the latches of up to n idle executors (n <= 0: all idle ones).
void wake_executors(Oid dbid, int n);
// May a task of `queue` start now (its concurrency and rate limit)? When the
// rate limit says no, *retry_at says when it will say yes.
bool queue_has_room(Oid dbid, const char *queue, int concurrency, double rate_per_s, int64_t now,
                    int64_t *retry_at);
// What a reservation did to its queue's rate state, so that a place given
// back unused gives its step back too.
struct RateTaken {
  int64_t before = 0;  // next_at before the reservation
  int64_t after = 0;   // next_at it set; 0: no rate limit
};
// The same check, and the place taken, atomically (for no task yet: see
// set_reserved_task); when it says no, the claim tries another queue.
bool reserve_queue(Oid dbid, int index, const char *queue, int concurrency, double rate_per_s,
                   int64_t now, RateTaken *rate = nullptr);
// With `rate`: the place was not used, and its rate step is given back
// unless another reservation of the queue took a step since.
void release_queue(Oid dbid, int index, const RateTaken *rate = nullptr);
// The task a reserved place runs, once its row is claimed (cancel_task finds
// the executor by it).
void set_reserved_task(Oid dbid, int index, int64_t task_id);
// A running task whose claim token is not among `live` but lower than the
// next one to be issued (same incarnation), or of another incarnation, was
// claimed by an executor that is gone.
struct LiveClaims {
  uint32_t incarnation = 0;
  uint32_t issued = 0;
  std::vector<int64_t> live;
};
LiveClaims live_claims(Oid dbid);
// DROP DATABASE and the like need the database to themselves: no executor
// may start there (or stay, once started) until then.
void pause_executors(Oid dbid, int64_t until);
bool executors_paused(Oid dbid);
// cachekit._queues changed (at commit); executors compare versions.
void bump_queues_version(Oid dbid);
uint32_t queues_version(Oid dbid);
// cancel_task() of a running task, after commit: SIGINT to its executor,
// whose handler cancels only if it still runs that task.
void cancel_running_task(Oid dbid, int64_t task_id);
// The word that handler compares with its running task (in shared memory).
pg_atomic_uint64 *executor_cancel_flag(Oid dbid, int index);
// pid of the executor running a task (0: none).
int executor_running(Oid dbid, int64_t task_id);
// For the launcher: pid per executor index (0: none; dead ones cleared).
std::vector<int> executor_pids(Oid dbid);

// For cachekit.health().
struct RelayStatus {
  Oid dbid = InvalidOid;
  bool has_slot = false;
  int pid = 0;
  int64_t paused_until = 0;
  bool no_extension = false;
  bool no_worker = false;
  bool backlog = false;
  bool flush_pending = false;
  int queue_entries = 0;
  bool extension_present = false;
  int executors = 0;
  int executors_busy = 0;
};
struct RegistryStatus {
  bool shared_memory = false;
  int launcher_pid = 0;
  int max_databases = 0;
  int unserved = 0;  // at the launcher's last scan
  uint64_t scans = 0;
  int queue_entries = 0;
  std::vector<RelayStatus> databases;
};
RelayStatus relay_status(Oid dbid);
RegistryStatus registry_status();

}  // namespace cachekit::pg
