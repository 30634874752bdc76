// Shared state of trigger-driven invalidation: the counters, the marks of
// outbox rows delivered at commit, the per-database relay registry (pid,
// latch, backlog, flush, pause) and the relay's queue of invalidations that
// have no outbox row. Backends write it at commit; the relay and the launcher
// (worker/) read and clear it.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "pg/boundary.h"
#include "pg/relay_state.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "common/controldata_utils.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace cachekit::pg {

// ---- shared memory ---------------------------------------------------------
//
// Counters are atomics. Delivered marks: a fixed array of (database, outbox
// id) slots under a spinlock; a backend that finds no free slot drops the
// mark, and the worker then delivers that row again (at-least-once). Worker
// registry: one slot per database with a running worker (pid, latch).

namespace {
constexpr int kDeliveredSlots = 8192;
constexpr int kWorkerSlots = 64;

struct DeliveredMark {
  Oid dbid;  // InvalidOid: free
  int64 id;
  bool patterns_pending;  // messages and keys went out; the patterns are the relay's
};

struct WorkerSlot {
  Oid dbid;
  int pid;
  Latch *latch;
  int64 paused_until;
  bool no_extension;  // the pause only means "no extension found last time"
  bool backlog;       // undelivered rows wait: backends leave delivery to the relay
  bool flush_needed;  // an invalidation could not be kept: flush everything
  uint64 crash_handled;
};

// Invalidations whose delivery after commit failed and that have no outbox
// row: kept here for the relay. Lost in a crash, which is why an unclean
// start makes every relay flush everything (crash_generation).
constexpr int kQueueSlots = 256;
constexpr int kQueueBytes = 16 * 1024;

struct QueueEntry {
  Oid dbid;  // InvalidOid: free
  uint64 seq;
  uint32 len;
  char payload[kQueueBytes];
};

struct AppShared {
  pg_atomic_uint64 counters[static_cast<int>(AppCounter::kCount)];
  slock_t mutex;
  int cursor;
  DeliveredMark delivered[kDeliveredSlots];
  WorkerSlot workers[kWorkerSlots];
  Latch *launcher_latch;
  uint64 crash_generation;  // 1 when this start followed an unclean shutdown
  LWLock *queue_lock;
  uint64 queue_seq;
  QueueEntry queue[kQueueSlots];
};

AppShared *app_shared = nullptr;
}  // namespace

Size relay_state_shmem_size() { return MAXALIGN(sizeof(AppShared)); }

void relay_state_shmem_request() {
  RequestAddinShmemSpace(relay_state_shmem_size());
  RequestNamedLWLockTranche("pg_cachekit_queue", 1);
}

void relay_state_shmem_startup() {
  bool found = false;
  app_shared = static_cast<AppShared *>(
      ShmemInitStruct("pg_cachekit app events", sizeof(AppShared), &found));
  if (found) return;
  for (auto &c : app_shared->counters) pg_atomic_init_u64(&c, 0);
  SpinLockInit(&app_shared->mutex);
  app_shared->cursor = 0;
  for (auto &d : app_shared->delivered) d = DeliveredMark{InvalidOid, 0, false};
  for (auto &w : app_shared->workers)
    w = WorkerSlot{InvalidOid, 0, nullptr, 0, false, false, false, 0};
  app_shared->launcher_latch = nullptr;
  app_shared->queue_lock = &(GetNamedLWLockTranche("pg_cachekit_queue"))->lock;
  app_shared->queue_seq = 0;
  for (auto &q : app_shared->queue) q.dbid = InvalidOid;
  // Shared memory is created at every start and after every crash restart.
  // If the cluster was not shut down cleanly, deliveries that were in flight
  // or queued here are gone: every relay then flushes everything once.
  bool crc_ok = false;
  ControlFileData *control = get_controlfile(DataDir, &crc_ok);
  bool clean =
      crc_ok && (control->state == DB_SHUTDOWNED || control->state == DB_SHUTDOWNED_IN_RECOVERY);
  app_shared->crash_generation = clean ? 0 : 1;
}

void count_app(AppCounter c, uint64_t n) {
  if (app_shared) pg_atomic_fetch_add_u64(&app_shared->counters[static_cast<int>(c)], n);
}

uint64_t app_counter(AppCounter c) {
  return app_shared ? pg_atomic_read_u64(&app_shared->counters[static_cast<int>(c)]) : 0;
}

void mark_delivered(Oid dbid, int64 id, bool patterns_pending) {
  if (!app_shared) return;
  SpinLockAcquire(&app_shared->mutex);
  for (int n = 0; n < kDeliveredSlots; ++n) {
    int i = (app_shared->cursor + n) % kDeliveredSlots;
    if (app_shared->delivered[i].dbid == InvalidOid) {
      app_shared->delivered[i] = DeliveredMark{dbid, id, patterns_pending};
      app_shared->cursor = (i + 1) % kDeliveredSlots;
      break;
    }
  }
  SpinLockRelease(&app_shared->mutex);
}

std::vector<Delivered> take_delivered(Oid dbid) {
  std::vector<Delivered> ids;
  if (!app_shared) return ids;
  ids.reserve(256);
  SpinLockAcquire(&app_shared->mutex);
  for (auto &d : app_shared->delivered)
    if (d.dbid == dbid && ids.size() < ids.capacity()) {
      ids.push_back(Delivered{d.id, d.patterns_pending});  // no allocation: reserved above
      d = DeliveredMark{InvalidOid, 0, false};
    }
  SpinLockRelease(&app_shared->mutex);
  return ids;
}

namespace {
WorkerSlot *slot_for(Oid dbid, bool create) {
  WorkerSlot *slot = nullptr;
  for (auto &w : app_shared->workers)
    if (w.dbid == dbid) slot = &w;
  if (!slot && create)
    for (auto &w : app_shared->workers)
      if (w.dbid == InvalidOid && !slot) {
        slot = &w;
        // Until a relay has looked at this database's outbox (after a start
        // or a crash), older rows may be waiting there.
        *slot = WorkerSlot{dbid, 0, nullptr, 0, false, true, false, 0};
      }
  return slot;
}

// Runs f on the database's slot (nullptr when there is none and `create` is
// false, or no slot is free) under the spinlock: f must be a few plain
// assignments, nothing that can throw or take long.
template <typename F>
auto with_slot(Oid dbid, bool create, F f) -> decltype(f(nullptr)) {
  SpinLockAcquire(&app_shared->mutex);
  auto result = f(slot_for(dbid, create));
  SpinLockRelease(&app_shared->mutex);
  return result;
}
}  // namespace

void set_backlog(Oid dbid) {
  if (!app_shared) return;
  with_slot(dbid, true, [](WorkerSlot *slot) { return slot ? (slot->backlog = true) : false; });
}

bool backlog(Oid dbid) {
  if (!app_shared) return false;
  // No relay has looked yet: assume older invalidations wait.
  return with_slot(dbid, false, [](WorkerSlot *slot) { return !slot || slot->backlog; });
}

void clear_backlog(Oid dbid) {
  if (!app_shared) return;
  with_slot(dbid, false, [](WorkerSlot *slot) { return slot ? (slot->backlog = false) : false; });
}

void register_worker_latch(Oid dbid, int pid) {
  if (!app_shared) return;
  SpinLockAcquire(&app_shared->mutex);
  WorkerSlot *slot = nullptr;
  for (auto &w : app_shared->workers)
    if (w.dbid == dbid) slot = &w;
  if (!slot)
    for (auto &w : app_shared->workers)
      if (w.dbid == InvalidOid && !slot) slot = &w;
  if (slot) {
    int64 paused = slot->dbid == dbid ? slot->paused_until : 0;
    bool backlog = slot->dbid != dbid || slot->backlog;
    bool flush = slot->dbid == dbid && slot->flush_needed;
    uint64 handled = slot->dbid == dbid ? slot->crash_handled : 0;
    *slot = WorkerSlot{dbid, pid, &MyProc->procLatch, paused, false, backlog, flush, handled};
  }
  SpinLockRelease(&app_shared->mutex);
}

void unregister_worker_latch(Oid dbid) {
  if (!app_shared) return;
  SpinLockAcquire(&app_shared->mutex);
  for (auto &w : app_shared->workers)
    if (w.dbid == dbid && w.pid == MyProcPid) {
      w.pid = 0;
      w.latch = nullptr;
    }
  SpinLockRelease(&app_shared->mutex);
}

void wake_worker(Oid dbid) {
  if (!app_shared) return;
  Latch *latch = nullptr;
  SpinLockAcquire(&app_shared->mutex);
  for (auto &w : app_shared->workers)
    if (w.dbid == dbid && w.pid != 0) latch = w.latch;
  if (latch == nullptr) {
    // No relay: it last found no extension here, which is no longer true
    // (this backend just used it). Ask the launcher to start one now.
    for (auto &w : app_shared->workers)
      if (w.dbid == dbid && w.no_extension) w.paused_until = 0, w.no_extension = false;
    latch = app_shared->launcher_latch;
  }
  SpinLockRelease(&app_shared->mutex);
  if (latch) SetLatch(latch);
}

bool queue_push(Oid dbid, const std::string &payload) {
  if (!app_shared || payload.size() > static_cast<size_t>(kQueueBytes)) return false;
  bool pushed = false;
  LWLockAcquire(app_shared->queue_lock, LW_EXCLUSIVE);
  for (auto &q : app_shared->queue)
    if (q.dbid == InvalidOid) {
      q.dbid = dbid;
      q.seq = ++app_shared->queue_seq;
      q.len = static_cast<uint32>(payload.size());
      memcpy(q.payload, payload.data(), payload.size());
      pushed = true;
      break;
    }
  LWLockRelease(app_shared->queue_lock);
  return pushed;
}

std::vector<QueuedInvalidation> queue_peek(Oid dbid) {
  std::vector<QueuedInvalidation> out;
  if (!app_shared) return out;
  std::vector<std::pair<uint64, int>> found;
  found.reserve(kQueueSlots);
  LWLockAcquire(app_shared->queue_lock, LW_SHARED);
  for (int i = 0; i < kQueueSlots; ++i)
    if (app_shared->queue[i].dbid == dbid) found.emplace_back(app_shared->queue[i].seq, i);
  std::sort(found.begin(), found.end());
  LWLockRelease(app_shared->queue_lock);
  // Entries are only removed by this relay, so they stay put while copied.
  for (const auto &f : found) {
    const QueueEntry &q = app_shared->queue[f.second];
    out.push_back(QueuedInvalidation{f.first, std::string(q.payload, q.len)});
  }
  return out;
}

void queue_remove(Oid dbid, uint64 seq) {
  if (!app_shared) return;
  LWLockAcquire(app_shared->queue_lock, LW_EXCLUSIVE);
  for (auto &q : app_shared->queue)
    if (q.dbid == dbid && q.seq == seq) q.dbid = InvalidOid;
  LWLockRelease(app_shared->queue_lock);
}

void set_flush_needed(Oid dbid) {
  if (!app_shared) return;
  with_slot(dbid, true,
            [](WorkerSlot *slot) { return slot ? (slot->flush_needed = true) : false; });
}

bool take_flush_needed(Oid dbid) {
  if (!app_shared) return false;
  SpinLockAcquire(&app_shared->mutex);
  WorkerSlot *slot = slot_for(dbid, true);
  bool flush = false;
  if (slot) {
    flush = slot->flush_needed || slot->crash_handled < app_shared->crash_generation;
    slot->flush_needed = false;
    slot->crash_handled = app_shared->crash_generation;
  }
  SpinLockRelease(&app_shared->mutex);
  return flush;
}

void forget_workers_except(const Oid *dbs, int n) {
  if (!app_shared) return;
  SpinLockAcquire(&app_shared->mutex);
  for (auto &w : app_shared->workers) {
    bool keep = w.dbid == InvalidOid || w.pid != 0;
    for (int i = 0; i < n && !keep; ++i) keep = w.dbid == dbs[i];
    if (!keep) w = WorkerSlot{InvalidOid, 0, nullptr, 0, false, false, false, 0};
  }
  SpinLockRelease(&app_shared->mutex);
}

void register_launcher_latch() {
  if (!app_shared) return;
  SpinLockAcquire(&app_shared->mutex);
  app_shared->launcher_latch = &MyProc->procLatch;
  SpinLockRelease(&app_shared->mutex);
}

int worker_pid(Oid dbid) {
  if (!app_shared) return 0;
  return with_slot(dbid, false, [](WorkerSlot *slot) { return slot ? slot->pid : 0; });
}

void pause_worker(Oid dbid, int64_t until, bool no_extension) {
  if (!app_shared) return;
  with_slot(dbid, true, [until, no_extension](WorkerSlot *slot) {
    if (slot) slot->paused_until = until, slot->no_extension = no_extension;
    return slot != nullptr;
  });
}

int64_t worker_paused_until(Oid dbid) {
  if (!app_shared) return 0;
  return with_slot(dbid, false, [](WorkerSlot *slot) {
    return slot ? static_cast<int64_t>(slot->paused_until) : 0;
  });
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
      return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(tupdesc), values, nulls));
    });
  });
}
