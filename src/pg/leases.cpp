#include "pg/leases.h"

#include <cstring>

extern "C" {
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
}

namespace cachekit::pg {

namespace {

constexpr int kSlots = 1024;
constexpr size_t kDigestBytes = 16;

struct Slot {
  slock_t mutex;
  int owner;  // pid; 0: free
  unsigned char digest[kDigestBytes];
  // The key whose lease was released last after a store: a session that
  // missed before that holder stored, and takes the lease after it released,
  // looks again. (Not after a release without a store: a result too large or
  // refused would cost every later miss of the key a second lookup.)
  unsigned char released_digest[kDigestBytes];
  ConditionVariable released;
};

struct Leases {
  pg_atomic_uint64 coalesced;
  Slot slots[kSlots];
};

Leases *leases = nullptr;
int held = -1;  // the slot of this backend's lease
bool exit_hook = false;

// 128 bits of the key (two FNV-1a hashes): which key a lease is for. Keys
// end with a SHA-256 of their inputs, so distinct keys differ throughout.
void digest_of(const char *key, unsigned char *out) {
  uint64_t a = 1469598103934665603ULL, b = 0x84222325cbf29ce4ULL;
  for (const char *p = key; *p; ++p) {
    const char c = *p;
    a = (a ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    b = (b ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL + 0x9e3779b97f4a7c15ULL;
  }
  memcpy(out, &a, sizeof a);
  memcpy(out + sizeof a, &b, sizeof b);
}

int slot_of(const unsigned char *digest) {
  uint64_t h;
  memcpy(&h, digest, sizeof h);
  return static_cast<int>(h % kSlots);
}

void release_at_exit(int, Datum) { release_lease(); }

}  // namespace

Size leases_shmem_size() { return MAXALIGN(sizeof(Leases)); }

void leases_shmem_request() { RequestAddinShmemSpace(leases_shmem_size()); }

void leases_shmem_startup() {
  bool found = false;
  leases = static_cast<Leases *>(ShmemInitStruct("pg_cachekit leases", sizeof(Leases), &found));
  if (found) return;
  pg_atomic_init_u64(&leases->coalesced, 0);
  for (Slot &s : leases->slots) {
    SpinLockInit(&s.mutex);
    s.owner = 0;
    memset(s.released_digest, 0, kDigestBytes);
    ConditionVariableInit(&s.released);
  }
}

LeaseOutcome take_lease(const std::string &key) {
  if (leases == nullptr || held >= 0) return LeaseOutcome::kNone;
  if (!exit_hook) {
    before_shmem_exit(release_at_exit, 0);
    exit_hook = true;
  }
  unsigned char d[kDigestBytes];
  digest_of(key.c_str(), d);
  int i = slot_of(d);
  Slot &s = leases->slots[i];
  LeaseOutcome out;
  SpinLockAcquire(&s.mutex);
  if (s.owner == 0) {
    s.owner = MyProcPid;
    memcpy(s.digest, d, kDigestBytes);
    out = memcmp(s.released_digest, d, kDigestBytes) == 0 ? LeaseOutcome::kOwnerLookAgain
                                                          : LeaseOutcome::kOwner;
  } else if (memcmp(s.digest, d, kDigestBytes) == 0 && s.owner != MyProcPid) {
    out = LeaseOutcome::kWait;
  } else {
    out = LeaseOutcome::kNone;
  }
  SpinLockRelease(&s.mutex);
  if (out == LeaseOutcome::kOwner || out == LeaseOutcome::kOwnerLookAgain) held = i;
  return out;
}

bool wait_for_lease(const char *key, int timeout_ms) {
  if (leases == nullptr) return false;
  unsigned char d[kDigestBytes];
  digest_of(key, d);
  Slot &s = leases->slots[slot_of(d)];
  TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
  bool released = false;
  ConditionVariablePrepareToSleep(&s.released);
  for (;;) {
    SpinLockAcquire(&s.mutex);
    released = s.owner == 0 || memcmp(s.digest, d, kDigestBytes) != 0;
    SpinLockRelease(&s.mutex);
    if (released) break;
    long left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
    if (left <= 0) break;
    (void)ConditionVariableTimedSleep(&s.released, left, PG_WAIT_EXTENSION);
  }
  ConditionVariableCancelSleep();
  return released;
}

void release_lease(bool stored) {
  if (leases == nullptr || held < 0) return;
  Slot &s = leases->slots[held];
  held = -1;
  SpinLockAcquire(&s.mutex);
  bool mine = s.owner == MyProcPid;
  if (mine) {
    s.owner = 0;
    if (stored)
      memcpy(s.released_digest, s.digest, kDigestBytes);
    else if (memcmp(s.released_digest, s.digest, kDigestBytes) == 0)
      memset(s.released_digest, 0, kDigestBytes);
  }
  SpinLockRelease(&s.mutex);
  if (mine) ConditionVariableBroadcast(&s.released);
}

void count_coalesced() {
  if (leases) pg_atomic_fetch_add_u64(&leases->coalesced, 1);
}

uint64_t coalesced_calls() { return leases ? pg_atomic_read_u64(&leases->coalesced) : 0; }

}  // namespace cachekit::pg
