// One LWLock guards the slots: a publish or a read copies at most 64 kB
// under it, once per scrape per database.
#include "pg/metrics_board.h"

#include <cstring>

extern "C" {
#include "port/atomics.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

#include "core/health_rules.h"
#include "core/json.h"
#include "pg/guc.h"

namespace cachekit::pg {

namespace {

constexpr size_t kSlotBytes = 64 * 1024;

struct BoardSlot {
  Oid dbid;  // InvalidOid: free
  char name[NAMEDATALEN];
  uint64 seq;
  TimestampTz published_at;
  bool truncated;
  int status;
  uint32 samples_len;
  uint32 health_len;
  char data[kSlotBytes];  // samples, then health
};

struct Board {
  LWLock *lock;
  pg_atomic_uint64 request_seq;
  int nslots;
  BoardSlot slots[FLEXIBLE_ARRAY_MEMBER];
};

Board *board = nullptr;

bool wanted() { return settings.metrics_listen != nullptr && settings.metrics_listen[0] != '\0'; }

Size board_size() {
  return add_size(offsetof(Board, slots), mul_size(sizeof(BoardSlot), settings.max_databases));
}

}  // namespace

Size metrics_board_shmem_size() { return wanted() ? board_size() : 0; }

void metrics_board_shmem_request() {
  if (!wanted()) return;
  RequestAddinShmemSpace(board_size());
  RequestNamedLWLockTranche("pg_cachekit_metrics_board", 1);
}

void metrics_board_shmem_startup() {
  if (!wanted()) return;
  bool found = false;
  board = static_cast<Board *>(ShmemInitStruct("pg_cachekit metrics board", board_size(), &found));
  if (!found) {
    board->lock = &(GetNamedLWLockTranche("pg_cachekit_metrics_board"))->lock;
    pg_atomic_init_u64(&board->request_seq, 0);
    board->nslots = settings.max_databases;
    for (int i = 0; i < board->nslots; ++i) {
      board->slots[i].dbid = InvalidOid;
      board->slots[i].published_at = 0;
    }
  }
}

bool metrics_board_enabled() { return board != nullptr; }

uint64_t request_metrics() { return board ? pg_atomic_add_fetch_u64(&board->request_seq, 1) : 0; }

uint64_t metrics_request_seq() { return board ? pg_atomic_read_u64(&board->request_seq) : 0; }

void publish_metrics(const MetricsSnapshot &snap) {
  if (!board) return;
  // Samples are whole lines; a snapshot that does not fit keeps the lines
  // that do (the health document is small and always kept).
  // A health document is never cut (half a JSON object would break the
  // whole /health body): one too large is replaced by its status.
  std::string small;
  const std::string *health = &snap.health;
  if (snap.health.size() > kSlotBytes / 4) {
    small =
        "{\"status\": " + json_quote(health_status_name(static_cast<HealthStatus>(snap.status))) +
        ", \"truncated\": true}";
    health = &small;
  }
  size_t health_len = health->size();
  size_t samples_len = snap.samples.size();
  bool truncated = snap.truncated;
  if (samples_len + health_len > kSlotBytes) {
    size_t cut = snap.samples.rfind('\n', kSlotBytes - health_len - 1);
    samples_len = cut == std::string::npos ? 0 : cut + 1;
    truncated = true;
  }
  LWLockAcquire(board->lock, LW_EXCLUSIVE);
  BoardSlot *slot = nullptr, *free_slot = nullptr, *oldest = nullptr;
  for (int i = 0; i < board->nslots && slot == nullptr; ++i) {
    BoardSlot &s = board->slots[i];
    if (s.dbid == snap.dbid) slot = &s;
    if (s.dbid == InvalidOid && free_slot == nullptr) free_slot = &s;
    if (oldest == nullptr || s.published_at < oldest->published_at) oldest = &s;
  }
  if (slot == nullptr) slot = free_slot ? free_slot : oldest;
  slot->dbid = snap.dbid;
  strlcpy(slot->name, snap.name.c_str(), sizeof slot->name);
  slot->seq = snap.seq;
  slot->published_at = snap.published_at;
  slot->truncated = truncated;
  slot->status = snap.status;
  slot->samples_len = static_cast<uint32>(samples_len);
  slot->health_len = static_cast<uint32>(health_len);
  memcpy(slot->data, snap.samples.data(), samples_len);
  memcpy(slot->data + samples_len, health->data(), health_len);
  LWLockRelease(board->lock);
}

std::vector<MetricsSnapshotHead> metrics_snapshot_heads() {
  std::vector<MetricsSnapshotHead> out;
  if (!board) return out;
  LWLockAcquire(board->lock, LW_SHARED);
  for (int i = 0; i < board->nslots; ++i)
    if (board->slots[i].dbid != InvalidOid)
      out.push_back({board->slots[i].dbid, board->slots[i].seq, board->slots[i].published_at});
  LWLockRelease(board->lock);
  return out;
}

std::vector<MetricsSnapshot> metrics_snapshots() {
  std::vector<MetricsSnapshot> out;
  if (!board) return out;
  LWLockAcquire(board->lock, LW_SHARED);
  for (int i = 0; i < board->nslots; ++i) {
    const BoardSlot &s = board->slots[i];
    if (s.dbid == InvalidOid) continue;
    MetricsSnapshot m;
    m.dbid = s.dbid;
    m.name = s.name;
    m.seq = s.seq;
    m.published_at = s.published_at;
    m.truncated = s.truncated;
    m.status = s.status;
    m.samples.assign(s.data, s.samples_len);
    m.health.assign(s.data + s.samples_len, s.health_len);
    out.push_back(std::move(m));
  }
  LWLockRelease(board->lock);
  return out;
}

}  // namespace cachekit::pg
