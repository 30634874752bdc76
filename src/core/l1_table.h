// The storage of the L1 tier: cached_query results kept in the server's
// shared memory under their Redis key, laid out in one byte buffer the caller
// provides (pg/l1_cache.cpp gives it a fixed shared-memory segment).
//
// The buffer holds only offsets, never pointers: every backend maps it at its
// own address. It is cut into kPartitions partitions by key hash; the caller
// locks one partition at a time -- shared for lookup(), exclusive for
// everything that changes it. A partition is
//   - a hash index (bucket heads, chains through the entry slots),
//   - entry slots (hash, full key length, value length, expiry, first block,
//     reference bit),
//   - fixed-size blocks holding each entry's key then value, chained, with a
//     free list.
// The full key is stored and compared: two keys with the same hash never
// answer for each other.
//
// Eviction is CLOCK (second chance) over the slots: a lookup that finds an
// entry sets its reference bit with an atomic store (readers hold the lock
// shared and never serialise each other); the hand, moved only by inserts,
// clears set bits and evicts entries whose bit is clear or that expired. An
// entry whose key is no longer built -- its generations are old -- is never
// looked up again, so it loses its bit on the hand's next pass and goes on
// the pass after, before any entry that is still being read. A new entry
// starts without the bit: an entry used once does not push out one in use.
//
// Expired entries are absent to lookup() (the caller's clock: a monotonic
// millisecond count common to all processes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cachekit {

struct L1Stats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;  // entries dropped to make room (expired or not referenced)
  uint64_t too_large = 0;  // entries refused by the size limit
  uint64_t entries = 0;
  uint64_t used_bytes = 0;      // key and value bytes of the entries
  uint64_t capacity_bytes = 0;  // block bytes
  L1Stats &operator+=(const L1Stats &o);
};

class L1Table {
 public:
  static constexpr int kPartitions = 16;
  static constexpr size_t kBlockBytes = 256;

  // The smallest buffer format() accepts.
  static size_t min_bytes();
  // Lays out an empty table over [base, base + bytes); false (nothing
  // written) when bytes < min_bytes(). base must be 8-byte aligned.
  static bool format(void *base, size_t bytes);

  // A view of a table format() laid out at base (in this or another process).
  explicit L1Table(void *base) : base_(static_cast<char *>(base)) {}

  static uint64_t hash(std::string_view key);
  static int partition_of(uint64_t hash) { return static_cast<int>(hash >> 60) % kPartitions; }

  // Key plus value bytes one entry may have: a quarter of a partition, so
  // that an insert never has to empty a partition.
  size_t max_entry_bytes() const;

  // Partition lock held shared. True and `value` set when a live entry of
  // `key` exists; sets its reference bit.
  bool lookup(uint64_t hash, std::string_view key, int64_t now_ms, std::string &value);

  enum class Stored { kStored, kTooLarge };
  // Partition lock held exclusive. Replaces an entry of the same key.
  // kTooLarge (counted) when key + value exceed `limit` or max_entry_bytes().
  Stored insert(uint64_t hash, std::string_view key, std::string_view value, int64_t expires_ms,
                int64_t now_ms, size_t limit);
  // No lock needed: counts an entry the caller refused before locking.
  void count_too_large(uint64_t hash);

  // Partition lock held exclusive.
  bool remove(uint64_t hash, std::string_view key);
  void clear(int partition);

  // Partition lock held shared (counters are atomic; entries and bytes need
  // the lock to be of one instant).
  L1Stats stats(int partition) const;

 private:
  struct Header;
  struct Part;
  struct Slot;
  Part *part(int p) const;
  char *base_;
};

}  // namespace cachekit
