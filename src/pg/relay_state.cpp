// Shared state of trigger-driven invalidation, between the committing
// backends, the outbox relays and the launcher (worker/).
//
// What lives in shared memory (one RelayShared, followed by
// cachekit.max_databases registry slots):
//
//   counters    what was published, deleted, written, failed (pg_atomic).
//   marks       (database, outbox id) of outbox rows a backend delivered at
//               commit: the relay deletes those rows instead of delivering
//               them again. A backend that finds no free mark drops it; the
//               relay then delivers the row again (at-least-once).
//   registry    one slot per database the launcher (or a committing backend)
//               knows: the pid and latch of its relay, a pause (DROP
//               DATABASE, no extension found), whether the launcher could not
//               start a worker, the backlog flag and the flush requests. A
//               database without a slot has no relay; backlog() answers true
//               for it, so its commits write outbox rows (durable, delivered
//               once a relay serves it). When every slot is taken, the
//               launcher may reuse one of a database whose relay found no
//               extension there (it owes nothing and keeps no state).
//   queue       invalidations that failed after commit or were handed over
//               without an outbox row (pub/sub messages), in commit order,
//               for the relay. Shared memory does not survive a crash: an
//               unclean start makes every relay flush everything once. A
//               relay that is asked to stop delivers its database's entries
//               or writes them to its outbox first; whatever is left when
//               the postmaster exits (a database without a running relay)
//               leaves a marker file in the data directory that makes the
//               next start flush everything, as after a crash.
//
// Locking:
//
//   counters      atomics, no lock.
//   marks_lock    (LWLock) marks[], marks_used and marks_cursor. Exclusive
//                 to add a mark (at commit) and to take them (relay).
//   registry_lock (LWLock) every field of every registry slot, and
//                 registry_seq, global_flush_requests, launcher_pid,
//                 launcher_latch, unserved and scans. Shared to look (the
//                 backlog() and wake_worker() of every commit), exclusive to
//                 change anything.
//                 Also the task executors of each slot (execs[], their
//                 queue reservations and rates[]), incarnation and
//                 executor_runs: a claim reserves its queue under it
//                 exclusively, so two executors cannot both take a queue's
//                 last place.
//   queue_lock    (LWLock) queue[], queue_seq and queue_used. Payloads are
//                 copied in and out while it is held, so an entry never
//                 changes under a reader.
//
// No code path holds two of these locks at once, so there is no lock order.
// Nothing is scanned under a spinlock: the 8,192 marks and the registry are
// walked under their LWLock only. The postmaster's exit callback reads
// everything without locks: by then every other process has exited.
//
// Why the order of operations is safe:
//
//   - One relay per database: register_relay() checks the slot's pid and
//     takes the slot in one critical section under registry_lock, so of two
//     relays started for one database (a launcher restart cannot know about
//     a relay it started before and that has not registered yet) exactly one
//     wins; the other exits before doing anything.
//   - A flush request is a counter bumped under registry_lock; the relay
//     reads it before flushing and records it as done only after the flush
//     went through (flush_done()), so an ERROR, a shutdown or a new request
//     during the flush leaves the flush needed.
//   - A queue entry is freed only after its delivery succeeded or it was
//     written to the outbox and that transaction committed (at-least-once),
//     or by the launcher once the database was dropped. Entries of a
//     database exist only while it has a slot (backends queue only when
//     backlog() is false, which needs a slot), so the launcher frees the
//     entries and marks of exactly the databases whose slots it forgets.
//   - The launcher forgets a slot only if it was taken before the launcher
//     read pg_database (registry_seq) and the database is not there: a
//     database created after that read keeps its slot.
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/relay_state.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "common/controldata_utils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace cachekit::pg {

namespace {
constexpr int kDeliveredSlots = 8192;
constexpr int kQueueSlots = 256;
constexpr int kQueueBytes = 16 * 1024;
constexpr const char *kTranche = "pg_cachekit_relay";
constexpr int kQueueNameBytes = 64;  // queue names are at most 63 bytes (CHECK in the table)
constexpr int kRateStates = 16;      // rate-limited queues per database
// In the data directory: work was left in shared memory at the last exit.
constexpr const char *kFlushMarker = "pg_cachekit.flush_needed";

struct DeliveredMark {
  Oid dbid;  // InvalidOid: free
  int64 id;
  bool patterns_pending;  // messages and keys went out; the patterns are the relay's
};

// One task executor of a database. `queue` is the queue of the task it has
// claimed (empty: none): the reservation that per-queue concurrency counts.
struct ExecutorSlot {
  int pid;  // 0: none
  Latch *latch;
  uint32 run;  // the low half of this run's claim token
  bool idle;   // waiting on its latch for work
  int64 task_id;
  char queue[kQueueNameBytes];
  // cancel_task() of the task it runs: read by its SIGINT handler, which
  // cancels only that task (not whatever it runs by the time the signal lands).
  pg_atomic_uint64 cancel_for;
};

// When a rate-limited queue may start its next task.
struct RateState {
  char queue[kQueueNameBytes];  // empty: free
  int64 next_at;                // TimestampTz
};

struct RelaySlot {
  Oid dbid;      // InvalidOid: free
  uint64 since;  // registry_seq when the slot was taken
  int pid;       // the relay's; 0: none running
  Latch *latch;
  int64 paused_until;  // TimestampTz
  bool no_extension;   // the pause means "no extension found last time"
  bool no_worker;      // the launcher could not start a worker
  bool backlog;        // undelivered rows wait: backends leave delivery to the relay
  uint64 flush_requests;
  uint64 flushes_done;  // flush_requests covered by the last complete flush
  uint64 global_done;   // global_flush_requests covered by it
  // Task executors (worker/task_executor.cpp). Zeroed with the slot.
  bool extension_present;        // the relay found pg_cachekit here: executors may start
  uint32 queues_version;         // bumped when cachekit._queues changes (executors re-read it)
  int64 executors_paused_until;  // TimestampTz: DROP/RENAME DATABASE wants them gone
  ExecutorSlot execs[kMaxTaskWorkers];
  RateState rates[kRateStates];
};

// The entries' heads lie together, apart from their payloads: every push,
// peek and remove scans them all, and must not touch a page per entry.
struct QueueEntry {
  Oid dbid;  // InvalidOid: free
  uint32 len;
  uint64 seq;
};

struct RelayShared {
  pg_atomic_uint64 counters[static_cast<int>(AppCounter::kCount)];
  LWLock *registry_lock;
  LWLock *marks_lock;
  LWLock *queue_lock;
  int nslots;  // constant after start
  // registry_lock
  uint64 registry_seq;
  uint64 global_flush_requests;  // 1 when this start needs a flush everywhere
  int launcher_pid;
  Latch *launcher_latch;
  int unserved;
  uint64 scans;
  // Claim tokens: incarnation (this shared memory's) in the high half, a
  // counter of executor runs in the low half.
  uint32 incarnation;
  uint32 executor_runs;
  // marks_lock
  int marks_used;
  int marks_cursor;
  DeliveredMark marks[kDeliveredSlots];
  // queue_lock
  uint64 queue_seq;
  int queue_used;
  QueueEntry queue[kQueueSlots];
  char queue_payload[kQueueSlots][kQueueBytes];  // of queue[i]
};

RelayShared *rs = nullptr;
RelaySlot *slots = nullptr;  // rs->nslots of them, right after *rs

// Holds an LWLock for a scope; released on every exit, exceptions included.
class Locked {
 public:
  Locked(LWLock *lock, LWLockMode mode) : lock_(lock) { LWLockAcquire(lock_, mode); }
  ~Locked() { LWLockRelease(lock_); }
  Locked(const Locked &) = delete;
  Locked &operator=(const Locked &) = delete;

 private:
  LWLock *lock_;
};

int configured_slots() { return std::max(1, settings.max_databases); }

// registry_lock held.
RelaySlot *slot_find(Oid dbid) {
  for (int i = 0; i < rs->nslots; ++i)
    if (slots[i].dbid == dbid) return &slots[i];
  return nullptr;
}

bool slot_flush_pending(const RelaySlot &s) {
  return s.flush_requests != s.flushes_done || s.global_done < rs->global_flush_requests;
}

// registry_lock held exclusively. With `evict`, when no slot is free, one of
// a database whose relay found no extension (and that owes nothing) is
// reused; *evicted then names it (and its pause).
RelaySlot *slot_take(Oid dbid, RelaySlot *evicted = nullptr) {
  if (RelaySlot *s = slot_find(dbid)) return s;
  RelaySlot *free_slot = nullptr;
  for (int i = 0; i < rs->nslots && !free_slot; ++i)
    if (slots[i].dbid == InvalidOid) free_slot = &slots[i];
  for (int i = 0; i < rs->nslots && !free_slot && evicted; ++i) {
    RelaySlot &s = slots[i];
    if (s.no_extension && s.pid == 0 && !slot_flush_pending(s)) {
      *evicted = s;
      free_slot = &s;
    }
  }
  if (!free_slot) return nullptr;
  // Until a relay has looked at this database's outbox (after a start or a
  // crash), older rows may be waiting there: backlog.
  *free_slot = RelaySlot{dbid, ++rs->registry_seq, 0, nullptr, 0, false, false, true, 0, 0, 0};
  memset(free_slot->execs, 0, sizeof free_slot->execs);
  free_slot->queues_version = 0;
  free_slot->executors_paused_until = 0;
  memset(free_slot->rates, 0, sizeof free_slot->rates);
  free_slot->extension_present = false;
  return free_slot;
}

// Frees the queue entries and marks of databases whose slots were freed
// (sorted). Takes queue_lock, then marks_lock, never together.
void free_entries_of(const std::vector<Oid> &gone, uint64 max_seq) {
  if (gone.empty()) return;
  auto is_gone = [&](Oid d) { return std::binary_search(gone.begin(), gone.end(), d); };
  {
    Locked lock(rs->queue_lock, LW_EXCLUSIVE);
    for (auto &q : rs->queue)
      if (q.dbid != InvalidOid && q.seq <= max_seq && is_gone(q.dbid)) {
        q.dbid = InvalidOid;
        --rs->queue_used;
      }
  }
  Locked lock(rs->marks_lock, LW_EXCLUSIVE);
  for (auto &d : rs->marks)
    if (d.dbid != InvalidOid && is_gone(d.dbid)) {
      d = DeliveredMark{InvalidOid, 0, false};
      --rs->marks_used;
    }
}

// A registered pid whose process is gone (it cannot unregister when it is
// killed, but then the postmaster restarts everything anyway; belt and braces).
bool alive(int pid) { return pid != 0 && (kill(pid, 0) == 0 || errno != ESRCH); }

// The postmaster, at exit (and before re-creating shared memory after a
// crash): is anything committed still only in shared memory, or a flush
// still owed? Then the next start must flush everything, as after a crash.
// No locks: every other process has exited.
void at_postmaster_exit(int, Datum) {
  if (rs == nullptr) return;
  bool owed = false;
  for (const QueueEntry &q : rs->queue) owed = owed || q.dbid != InvalidOid;
  for (int i = 0; i < rs->nslots; ++i)
    owed = owed || (slots[i].dbid != InvalidOid && slot_flush_pending(slots[i]));
  // Databases the launcher never served (or never looked at) owe the flush
  // of this start too.
  owed = owed || (rs->global_flush_requests > 0 && (rs->scans == 0 || rs->unserved > 0));
  if (!owed) return;
  int fd = open(kFlushMarker, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return;  // nothing to report to: the log is going away
  static const char text[] =
      "pg_cachekit: invalidations were left undelivered at shutdown; the next start flushes "
      "every database's keys once\n";
  ssize_t written = write(fd, text, sizeof text - 1);
  (void)written;
  (void)fsync(fd);
  close(fd);
  int dir = open(".", O_RDONLY);
  if (dir >= 0) {
    (void)fsync(dir);
    close(dir);
  }
}

}  // namespace

Size relay_state_shmem_size() {
  return add_size(MAXALIGN(sizeof(RelayShared)), mul_size(configured_slots(), sizeof(RelaySlot)));
}

void relay_state_shmem_request() {
  RequestAddinShmemSpace(relay_state_shmem_size());
  RequestNamedLWLockTranche(kTranche, 3);
}

void relay_state_shmem_startup() {
  bool found = false;
  rs = static_cast<RelayShared *>(
      ShmemInitStruct("pg_cachekit relay state", relay_state_shmem_size(), &found));
  slots =
      reinterpret_cast<RelaySlot *>(reinterpret_cast<char *>(rs) + MAXALIGN(sizeof(RelayShared)));
  if (found) return;
  for (auto &c : rs->counters) pg_atomic_init_u64(&c, 0);
  LWLockPadded *locks = GetNamedLWLockTranche(kTranche);
  rs->registry_lock = &locks[0].lock;
  rs->marks_lock = &locks[1].lock;
  rs->queue_lock = &locks[2].lock;
  rs->nslots = configured_slots();
  rs->registry_seq = 0;
  rs->launcher_pid = 0;
  rs->launcher_latch = nullptr;
  rs->unserved = 0;
  rs->scans = 0;
  // Tasks claimed under an earlier shared memory (before a crash or a
  // restart) belong to executors that are gone: a different incarnation
  // makes that plain (see live_claims()).
  rs->incarnation =
      static_cast<uint32>(GetCurrentTimestamp() ^ (static_cast<int64>(getpid()) << 20));
  rs->executor_runs = 0;
  for (int i = 0; i < rs->nslots; ++i) slots[i].dbid = InvalidOid;
  rs->marks_used = 0;
  rs->marks_cursor = 0;
  for (auto &d : rs->marks) d = DeliveredMark{InvalidOid, 0, false};
  rs->queue_seq = 0;
  rs->queue_used = 0;
  for (auto &q : rs->queue) q.dbid = InvalidOid;
  // Shared memory is created at every start and after every crash restart.
  // If the cluster was not shut down cleanly, deliveries that were in flight
  // or queued here are gone; if it was, but work was left (the marker), the
  // same: every relay then flushes everything once.
  bool crc_ok = false;
  ControlFileData *control = get_controlfile(DataDir, &crc_ok);
  bool clean =
      crc_ok && (control->state == DB_SHUTDOWNED || control->state == DB_SHUTDOWNED_IN_RECOVERY);
  bool marker = access(kFlushMarker, F_OK) == 0;
  if (marker) (void)unlink(kFlushMarker);  // owed again at exit if not done by then
  rs->global_flush_requests = clean && !marker ? 0 : 1;
  // The postmaster only: its exit is where work left in shared memory is
  // noticed. shmem_exit() clears the callbacks before shared memory is
  // re-created, so this registers once per shared memory.
  if (!IsUnderPostmaster) on_shmem_exit(at_postmaster_exit, 0);
}

void count_app(AppCounter c, uint64_t n) {
  if (rs) pg_atomic_fetch_add_u64(&rs->counters[static_cast<int>(c)], n);
}

uint64_t app_counter(AppCounter c) {
  return rs ? pg_atomic_read_u64(&rs->counters[static_cast<int>(c)]) : 0;
}

// ---- delivered marks --------------------------------------------------------

void mark_delivered(Oid dbid, int64 id, bool patterns_pending) {
  if (!rs) return;
  Locked lock(rs->marks_lock, LW_EXCLUSIVE);
  if (rs->marks_used == kDeliveredSlots) return;
  for (int n = 0; n < kDeliveredSlots; ++n) {
    int i = (rs->marks_cursor + n) % kDeliveredSlots;
    if (rs->marks[i].dbid == InvalidOid) {
      rs->marks[i] = DeliveredMark{dbid, id, patterns_pending};
      rs->marks_cursor = (i + 1) % kDeliveredSlots;
      ++rs->marks_used;
      return;
    }
  }
}

std::vector<Delivered> take_delivered(Oid dbid) {
  std::vector<Delivered> ids;
  if (!rs) return ids;
  constexpr size_t kTake = 256;
  ids.reserve(kTake);
  Locked lock(rs->marks_lock, LW_EXCLUSIVE);
  int seen = 0;
  for (int i = 0; i < kDeliveredSlots && seen < rs->marks_used && ids.size() < kTake; ++i) {
    DeliveredMark &d = rs->marks[i];
    if (d.dbid == InvalidOid) continue;
    ++seen;
    if (d.dbid != dbid) continue;
    ids.push_back(Delivered{d.id, d.patterns_pending});  // no allocation: reserved above
    d = DeliveredMark{InvalidOid, 0, false};
    --rs->marks_used;
    --seen;
  }
  return ids;
}

// ---- registry -----------------------------------------------------------------

void set_backlog(Oid dbid) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_take(dbid)) s->backlog = true;
}

bool backlog(Oid dbid) {
  if (!rs) return false;
  Locked lock(rs->registry_lock, LW_SHARED);
  // No slot: no relay has looked at its outbox, or none ever will (registry
  // full). Either way, older invalidations may wait: keep commits durable.
  RelaySlot *s = slot_find(dbid);
  return !s || s->backlog;
}

void clear_backlog(Oid dbid) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_find(dbid)) s->backlog = false;
}

void set_flush_needed(Oid dbid) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_take(dbid))
    ++s->flush_requests;
  else
    ++rs->global_flush_requests;  // nowhere to note it for this database: everywhere
}

FlushRequest flush_request(Oid dbid) {
  FlushRequest r;
  if (!rs) return r;
  Locked lock(rs->registry_lock, LW_SHARED);
  r.global_requests = rs->global_flush_requests;
  if (RelaySlot *s = slot_find(dbid)) {
    r.requests = s->flush_requests;
    r.needed = slot_flush_pending(*s);
  } else {
    r.needed = r.global_requests > 0;
  }
  return r;
}

void flush_done(Oid dbid, const FlushRequest &seen) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_find(dbid)) {
    s->flushes_done = std::max<uint64>(s->flushes_done, seen.requests);
    s->global_done = std::max<uint64>(s->global_done, seen.global_requests);
  }
}

bool register_relay(Oid dbid) {
  if (!rs) return false;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_take(dbid);
  if (!s) return false;
  if (s->pid != 0 && s->pid != MyProcPid && alive(s->pid)) return false;
  s->pid = MyProcPid;
  s->latch = &MyProc->procLatch;
  s->no_extension = false;
  s->no_worker = false;
  return true;
}

void unregister_relay(Oid dbid) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (s && s->pid == MyProcPid) {
    s->pid = 0;
    s->latch = nullptr;
  }
}

void wake_worker(Oid dbid) {
  if (!rs) return;
  Latch *latch = nullptr;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    RelaySlot *s = slot_find(dbid);
    if (s && s->pid != 0) latch = s->latch;
  }
  if (latch == nullptr) {
    // No relay: it may have found no extension here last time, which is no
    // longer true (this backend just used it). Ask the launcher now, with a
    // slot if one is free (the launcher starts relays for slots it finds).
    Locked lock(rs->registry_lock, LW_EXCLUSIVE);
    RelaySlot *s = slot_take(dbid);
    if (s && s->no_extension) s->paused_until = 0, s->no_extension = false;
    latch = rs->launcher_latch;
  }
  if (latch) SetLatch(latch);
}

void wake_all_relays() {
  if (!rs) return;
  std::vector<Latch *> latches;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    for (int i = 0; i < rs->nslots; ++i)
      if (slots[i].dbid != InvalidOid && slots[i].pid != 0) latches.push_back(slots[i].latch);
  }
  for (Latch *l : latches) SetLatch(l);
}

int worker_pid(Oid dbid) {
  if (!rs) return 0;
  Locked lock(rs->registry_lock, LW_SHARED);
  RelaySlot *s = slot_find(dbid);
  return s ? s->pid : 0;
}

void pause_worker(Oid dbid, int64_t until, bool no_extension) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_take(dbid)) s->paused_until = until, s->no_extension = no_extension;
}

// ---- launcher -------------------------------------------------------------------

void register_launcher_latch() {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  rs->launcher_pid = MyProcPid;
  rs->launcher_latch = &MyProc->procLatch;
}

void unregister_launcher_latch() {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (rs->launcher_pid == MyProcPid) {
    rs->launcher_pid = 0;
    rs->launcher_latch = nullptr;
  }
}

LauncherScan launcher_scan_begin() {
  LauncherScan scan{0, 0};
  if (!rs) return scan;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    scan.registry_seq = rs->registry_seq;
  }
  Locked lock(rs->queue_lock, LW_SHARED);
  scan.queue_seq = rs->queue_seq;
  return scan;
}

SlotView launcher_claim(Oid dbid, bool take) {
  SlotView v;
  if (!rs) return v;
  RelaySlot evicted{};
  uint64 queue_seq = 0;
  {
    Locked lock(rs->registry_lock, LW_EXCLUSIVE);
    RelaySlot *s = take ? slot_take(dbid, &evicted) : slot_find(dbid);
    if (s) {
      if (s->pid != 0 && !alive(s->pid)) s->pid = 0, s->latch = nullptr;
      v.has_slot = true;
      v.pid = s->pid;
      v.paused_until = s->paused_until;
      v.extension_present = s->extension_present && s->pid != 0;
      v.executors_paused_until = s->executors_paused_until;
    }
    v.evicted = evicted.dbid;
    v.evicted_until = evicted.paused_until;
  }
  if (v.evicted != InvalidOid) {
    {
      Locked lock(rs->queue_lock, LW_SHARED);
      queue_seq = rs->queue_seq;
    }
    free_entries_of({v.evicted}, queue_seq);
  }
  return v;
}

void set_no_worker(Oid dbid, bool no_worker) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_find(dbid)) s->no_worker = no_worker;
}

void launcher_scan_end(int unserved) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  rs->unserved = unserved;
  ++rs->scans;
}

void forget_databases_except(const Oid *dbs, int n, const LauncherScan &scan) {
  if (!rs) return;
  std::vector<Oid> present(dbs, dbs + n);
  std::sort(present.begin(), present.end());
  std::vector<Oid> gone;
  gone.reserve(static_cast<size_t>(rs->nslots));
  {
    Locked lock(rs->registry_lock, LW_EXCLUSIVE);
    for (int i = 0; i < rs->nslots; ++i) {
      RelaySlot &s = slots[i];
      if (s.dbid == InvalidOid || s.pid != 0 || s.since > scan.registry_seq ||
          std::binary_search(present.begin(), present.end(), s.dbid))
        continue;
      gone.push_back(s.dbid);  // reserved: no allocation under the lock
      s.dbid = InvalidOid;
    }
  }
  std::sort(gone.begin(), gone.end());
  free_entries_of(gone, scan.queue_seq);
}

// ---- queue ----------------------------------------------------------------------

bool queue_push(Oid dbid, const std::string &payload) {
  if (!rs || payload.size() > static_cast<size_t>(kQueueBytes)) return false;
  Locked lock(rs->queue_lock, LW_EXCLUSIVE);
  for (int i = 0; i < kQueueSlots; ++i)
    if (QueueEntry &q = rs->queue[i]; q.dbid == InvalidOid) {
      q.dbid = dbid;
      q.seq = ++rs->queue_seq;
      q.len = static_cast<uint32>(payload.size());
      memcpy(rs->queue_payload[i], payload.data(), payload.size());
      ++rs->queue_used;
      return true;
    }
  return false;
}

std::vector<QueuedInvalidation> queue_peek(Oid dbid) {
  std::vector<QueuedInvalidation> out;
  if (!rs) return out;
  std::vector<std::pair<uint64, int>> found;
  found.reserve(kQueueSlots);
  Locked lock(rs->queue_lock, LW_SHARED);
  if (rs->queue_used == 0) return out;
  for (int i = 0; i < kQueueSlots; ++i)
    if (rs->queue[i].dbid == dbid) found.emplace_back(rs->queue[i].seq, i);
  std::sort(found.begin(), found.end());
  // Copied under the lock: another process may free an entry (the launcher
  // for a dropped database) the moment it is released.
  out.reserve(found.size());
  for (const auto &f : found) {
    const QueueEntry &q = rs->queue[f.second];
    out.push_back(QueuedInvalidation{f.first, std::string(rs->queue_payload[f.second], q.len)});
  }
  return out;
}

void queue_remove(Oid dbid, uint64 seq) { queue_remove(dbid, std::vector<uint64_t>{seq}); }

void queue_remove(Oid dbid, const std::vector<uint64_t> &seqs) {
  if (!rs || seqs.empty()) return;
  Locked lock(rs->queue_lock, LW_EXCLUSIVE);
  for (auto &q : rs->queue)
    if (q.dbid == dbid && std::find(seqs.begin(), seqs.end(), q.seq) != seqs.end()) {
      q.dbid = InvalidOid;
      --rs->queue_used;
    }
}

int queue_count(Oid dbid) {
  if (!rs) return 0;
  Locked lock(rs->queue_lock, LW_SHARED);
  if (dbid == InvalidOid) return rs->queue_used;
  int n = 0;
  for (const auto &q : rs->queue) n += q.dbid == dbid;
  return n;
}

// ---- task executors ---------------------------------------------------------------

namespace {

// registry_lock held. Executors of `s` with a reservation for `queue`.
int reserved_for(const RelaySlot &s, const char *queue) {
  int n = 0;
  for (const ExecutorSlot &e : s.execs) n += e.pid != 0 && strcmp(e.queue, queue) == 0;
  return n;
}

// registry_lock held. The rate state of a queue; with `take`, a free one (or
// the oldest, whose queue then merely starts a little early) when it has none.
RateState *rate_of(RelaySlot &s, const char *queue, bool take) {
  RateState *free_state = nullptr;
  RateState *oldest = &s.rates[0];
  for (RateState &r : s.rates) {
    if (strcmp(r.queue, queue) == 0) return &r;
    if (r.queue[0] == '\0' && !free_state) free_state = &r;
    if (r.next_at < oldest->next_at) oldest = &r;
  }
  if (!take) return nullptr;
  RateState *r = free_state ? free_state : oldest;
  strlcpy(r->queue, queue, sizeof r->queue);
  r->next_at = 0;
  return r;
}

}  // namespace

void set_extension_present(Oid dbid, bool present) {
  if (!rs) return;
  Latch *launcher = nullptr;
  {
    Locked lock(rs->registry_lock, LW_EXCLUSIVE);
    RelaySlot *s = slot_find(dbid);
    if (!s) return;
    // Newly found: the launcher starts the executors now, not at its next scan.
    if (present && !s->extension_present) launcher = rs->launcher_latch;
    s->extension_present = present;
  }
  if (launcher) SetLatch(launcher);
}

int64_t register_executor(Oid dbid, int index) {
  if (!rs || index < 0 || index >= kMaxTaskWorkers) return 0;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (!s) return 0;
  ExecutorSlot &e = s->execs[index];
  if (e.pid != 0 && e.pid != MyProcPid && alive(e.pid)) return 0;
  e = ExecutorSlot{};
  e.pid = MyProcPid;
  e.latch = &MyProc->procLatch;
  e.run = ++rs->executor_runs;
  return static_cast<int64_t>((static_cast<uint64>(rs->incarnation) << 32) | e.run) &
         INT64CONST(0x7fffffffffffffff);
}

void unregister_executor(Oid dbid, int index) {
  if (!rs || index < 0 || index >= kMaxTaskWorkers) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (s && s->execs[index].pid == MyProcPid) s->execs[index] = ExecutorSlot{};
}

void executor_idle(Oid dbid, int index, bool idle) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (s && s->execs[index].pid == MyProcPid) s->execs[index].idle = idle;
}

void wake_executors(Oid dbid, int n) {
  if (!rs) return;
  Latch *latches[kMaxTaskWorkers];
  int count = 0;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    RelaySlot *s = slot_find(dbid);
    if (!s) return;
    // Idle ones first: a busy executor looks for more work when it is done
    // anyway. With none idle, one latch is set so a task committed while
    // every executor was between its last claim and its sleep is not missed.
    for (const ExecutorSlot &e : s->execs)
      if (e.pid != 0 && e.idle && (n <= 0 || count < n)) latches[count++] = e.latch;
    if (count == 0)
      for (const ExecutorSlot &e : s->execs)
        if (e.pid != 0 && count == 0) latches[count++] = e.latch;
  }
  for (int i = 0; i < count; ++i) SetLatch(latches[i]);
}

bool queue_has_room(Oid dbid, const char *queue, int concurrency, double rate_per_s, int64_t now,
                    int64_t *retry_at) {
  if (!rs) return false;
  Locked lock(rs->registry_lock, LW_SHARED);
  RelaySlot *s = slot_find(dbid);
  if (!s) return false;
  if (reserved_for(*s, queue) >= concurrency) return false;
  if (rate_per_s > 0) {
    RateState *r = rate_of(*s, queue, false);
    if (r && r->next_at > now) {
      if (retry_at) *retry_at = r->next_at;
      return false;
    }
  }
  return true;
}

bool reserve_queue(Oid dbid, int index, const char *queue, int concurrency, double rate_per_s,
                   int64_t now, RateTaken *rate) {
  if (!rs) return false;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (!s || s->execs[index].pid != MyProcPid) return false;
  if (reserved_for(*s, queue) >= concurrency) return false;
  if (rate_per_s > 0) {
    RateState *r = rate_of(*s, queue, true);
    if (r->next_at > now) return false;
    int64 step = static_cast<int64>(USECS_PER_SEC / rate_per_s);
    // One start per step, no burst: a queue idle for a while starts one
    // task now and the next a step later.
    if (rate) rate->before = r->next_at;
    r->next_at = std::max<int64>(r->next_at, now) + step;
    if (rate) rate->after = r->next_at;
  }
  ExecutorSlot &e = s->execs[index];
  strlcpy(e.queue, queue, sizeof e.queue);
  e.task_id = 0;
  return true;
}

void release_queue(Oid dbid, int index, const RateTaken *rate) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (s && s->execs[index].pid == MyProcPid) {
    if (rate && rate->after != 0 && s->execs[index].queue[0] != '\0') {
      RateState *r = rate_of(*s, s->execs[index].queue, false);
      if (r && r->next_at == rate->after) r->next_at = rate->before;
    }
    s->execs[index].queue[0] = '\0';
    s->execs[index].task_id = 0;
  }
}

void set_reserved_task(Oid dbid, int index, int64_t task_id) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  RelaySlot *s = slot_find(dbid);
  if (s && s->execs[index].pid == MyProcPid) s->execs[index].task_id = task_id;
}

void pause_executors(Oid dbid, int64_t until) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_take(dbid)) s->executors_paused_until = until;
}

bool executors_paused(Oid dbid) {
  if (!rs) return false;
  Locked lock(rs->registry_lock, LW_SHARED);
  RelaySlot *s = slot_find(dbid);
  return s && s->executors_paused_until > GetCurrentTimestamp();
}

void bump_queues_version(Oid dbid) {
  if (!rs) return;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_find(dbid)) ++s->queues_version;
}

uint32_t queues_version(Oid dbid) {
  if (!rs) return 0;
  Locked lock(rs->registry_lock, LW_SHARED);
  RelaySlot *s = slot_find(dbid);
  return s ? s->queues_version : 0;
}

void cancel_running_task(Oid dbid, int64_t task_id) {
  if (!rs) return;
  int pid = 0;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    if (RelaySlot *s = slot_find(dbid))
      for (ExecutorSlot &e : s->execs)
        if (e.pid != 0 && e.task_id == task_id) {
          pg_atomic_write_u64(&e.cancel_for, static_cast<uint64>(task_id));
          pid = e.pid;
        }
  }
  if (pid != 0) kill(pid, SIGINT);
}

pg_atomic_uint64 *executor_cancel_flag(Oid dbid, int index) {
  if (!rs) return nullptr;
  Locked lock(rs->registry_lock, LW_SHARED);
  RelaySlot *s = slot_find(dbid);
  return s ? &s->execs[index].cancel_for : nullptr;
}

LiveClaims live_claims(Oid dbid) {
  LiveClaims c;
  if (!rs) return c;
  c.live.reserve(kMaxTaskWorkers);
  Locked lock(rs->registry_lock, LW_SHARED);
  c.incarnation = rs->incarnation;
  c.issued = rs->executor_runs;
  if (RelaySlot *s = slot_find(dbid))
    for (const ExecutorSlot &e : s->execs)
      if (e.pid != 0)
        c.live.push_back(
            static_cast<int64_t>((static_cast<uint64>(rs->incarnation) << 32) | e.run) &
            INT64CONST(0x7fffffffffffffff));
  return c;
}

int executor_running(Oid dbid, int64_t task_id) {
  if (!rs) return 0;
  Locked lock(rs->registry_lock, LW_SHARED);
  if (RelaySlot *s = slot_find(dbid))
    for (const ExecutorSlot &e : s->execs)
      if (e.pid != 0 && e.task_id == task_id) return e.pid;
  return 0;
}

std::vector<int> executor_pids(Oid dbid) {
  std::vector<int> pids(kMaxTaskWorkers, 0);
  if (!rs) return pids;
  Locked lock(rs->registry_lock, LW_EXCLUSIVE);
  if (RelaySlot *s = slot_find(dbid))
    for (int i = 0; i < kMaxTaskWorkers; ++i) {
      ExecutorSlot &e = s->execs[i];
      if (e.pid != 0 && !alive(e.pid)) e = ExecutorSlot{};
      pids[i] = e.pid;
    }
  return pids;
}

// ---- health ---------------------------------------------------------------------

namespace {
// registry_lock held.
RelayStatus status_of(const RelaySlot &s) {
  RelayStatus r;
  r.dbid = s.dbid;
  r.has_slot = true;
  r.pid = s.pid;
  r.paused_until = s.paused_until;
  r.no_extension = s.no_extension;
  r.no_worker = s.no_worker;
  r.backlog = s.backlog;
  r.flush_pending = slot_flush_pending(s);
  r.extension_present = s.extension_present;
  for (const ExecutorSlot &e : s.execs) {
    r.executors += e.pid != 0;
    r.executors_busy += e.pid != 0 && e.task_id != 0;
  }
  return r;
}
}  // namespace

RelayStatus relay_status(Oid dbid) {
  RelayStatus r;
  r.dbid = dbid;
  if (!rs) return r;
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    if (RelaySlot *s = slot_find(dbid)) r = status_of(*s);
  }
  r.queue_entries = queue_count(dbid);
  return r;
}

RegistryStatus registry_status() {
  RegistryStatus r;
  if (!rs) return r;
  r.shared_memory = true;
  r.databases.reserve(static_cast<size_t>(rs->nslots));
  {
    Locked lock(rs->registry_lock, LW_SHARED);
    r.launcher_pid = rs->launcher_pid;
    r.max_databases = rs->nslots;
    r.unserved = rs->unserved;
    r.scans = rs->scans;
    for (int i = 0; i < rs->nslots; ++i)
      if (slots[i].dbid != InvalidOid) r.databases.push_back(status_of(slots[i]));
  }
  r.queue_entries = queue_count(InvalidOid);
  return r;
}

}  // namespace cachekit::pg

CK_SQL_FUNCTION(ck_app_invalidation_stats) {
  return cpp_entry([&]() -> Datum {
    require_shmem("cachekit.invalidation_stats");
    constexpr int kCols = static_cast<int>(AppCounter::kCount);
    Datum values[kCols];
    bool nulls[kCols] = {};
    for (int i = 0; i < kCols; ++i)
      values[i] = Int64GetDatum(static_cast<int64>(app_counter(static_cast<AppCounter>(i))));
    return pg_call([&] {
      TupleDesc tupdesc;
      if (get_call_result_type(fcinfo, nullptr, &tupdesc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "return type must be a row type");
      // The SQL declaration may name fewer counters than there are (the
      // newest are in health() only).
      if (tupdesc->natts > kCols) elog(ERROR, "return type has more columns than counters");
      return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
    });
  });
}
