#include "core/l1_table.h"

#include <algorithm>
#include <cstring>

namespace cachekit {

namespace {

constexpr uint64_t kMagic = 0x636b4c3174626c31ULL;  // "ckL1tbl1"
constexpr int32_t kNone = -1;
constexpr size_t kAlign = 64;
// Fewer blocks than this per partition: not worth a table.
constexpr uint32_t kMinBlocks = 16;

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

uint64_t atomic_load(const uint64_t &v) { return __atomic_load_n(&v, __ATOMIC_RELAXED); }
void atomic_add(uint64_t &v, uint64_t n) { __atomic_fetch_add(&v, n, __ATOMIC_RELAXED); }

}  // namespace

L1Stats &L1Stats::operator+=(const L1Stats &o) {
  hits += o.hits;
  misses += o.misses;
  inserts += o.inserts;
  evictions += o.evictions;
  too_large += o.too_large;
  entries += o.entries;
  used_bytes += o.used_bytes;
  capacity_bytes += o.capacity_bytes;
  return *this;
}

struct L1Table::Header {
  uint64_t magic;
  uint64_t part_bytes;  // each partition's share, kAlign-aligned
};

struct L1Table::Slot {
  uint64_t hash;
  int64_t expires_ms;
  uint32_t key_len;
  uint32_t value_len;
  int32_t first_block;
  int32_t chain;  // next slot of the bucket; of the free list when unused
  uint8_t used;
  uint8_t referenced;  // set by readers (atomic store), cleared by the hand
};

struct alignas(kAlign) L1Table::Part {
  uint32_t nslots, nblocks, nbuckets, hand;
  int32_t free_slot, free_block;
  uint32_t free_blocks, entries;
  uint64_t used_bytes;
  uint64_t buckets_off, slots_off, next_off, blocks_off;  // from the partition's start
  // Counters updated under a shared lock too: atomics, on their own line so
  // that readers counting hits do not share a line with the index fields.
  alignas(kAlign) uint64_t hits;
  uint64_t misses, inserts, evictions, too_large;

  char *self() { return reinterpret_cast<char *>(this); }
  int32_t *buckets() { return reinterpret_cast<int32_t *>(self() + buckets_off); }
  Slot *slots() { return reinterpret_cast<Slot *>(self() + slots_off); }
  int32_t *next() { return reinterpret_cast<int32_t *>(self() + next_off); }
  char *block(int32_t b) { return self() + blocks_off + static_cast<size_t>(b) * kBlockBytes; }

  // Bytes a partition with n blocks needs, and its layout.
  static size_t layout(uint32_t nblocks, Part *p) {
    uint32_t nslots = std::max<uint32_t>(nblocks / 2, 1);
    uint32_t nbuckets = 1;
    while (nbuckets < nslots) nbuckets <<= 1;
    size_t off = align_up(sizeof(Part), kAlign);
    size_t buckets_off = off;
    off = align_up(off + sizeof(int32_t) * nbuckets, alignof(Slot));
    size_t slots_off = off;
    off = align_up(off + sizeof(Slot) * nslots, alignof(int32_t));
    size_t next_off = off;
    off = align_up(off + sizeof(int32_t) * nblocks, kAlign);
    size_t blocks_off = off;
    off += kBlockBytes * nblocks;
    if (p) {
      p->nslots = nslots;
      p->nblocks = nblocks;
      p->nbuckets = nbuckets;
      p->buckets_off = buckets_off;
      p->slots_off = slots_off;
      p->next_off = next_off;
      p->blocks_off = blocks_off;
    }
    return off;
  }

  void reset() {
    hand = 0;
    entries = 0;
    used_bytes = 0;
    for (uint32_t i = 0; i < nbuckets; ++i) buckets()[i] = kNone;
    Slot *s = slots();
    for (uint32_t i = 0; i < nslots; ++i) {
      s[i] = Slot{};
      s[i].chain = i + 1 < nslots ? static_cast<int32_t>(i + 1) : kNone;
    }
    free_slot = 0;
    for (uint32_t i = 0; i < nblocks; ++i)
      next()[i] = i + 1 < nblocks ? static_cast<int32_t>(i + 1) : kNone;
    free_block = 0;
    free_blocks = nblocks;
  }

  uint32_t bucket_of(uint64_t hash) const { return static_cast<uint32_t>(hash) & (nbuckets - 1); }

  bool key_equals(const Slot &s, std::string_view key) {
    if (s.key_len != key.size()) return false;
    size_t done = 0;
    for (int32_t b = s.first_block; done < key.size(); b = next()[b]) {
      size_t n = std::min(kBlockBytes, key.size() - done);
      if (memcmp(block(b), key.data() + done, n) != 0) return false;
      done += n;
    }
    return true;
  }

  int32_t find(uint64_t hash, std::string_view key) {
    Slot *s = slots();
    for (int32_t i = buckets()[bucket_of(hash)]; i != kNone; i = s[i].chain)
      if (s[i].hash == hash && key_equals(s[i], key)) return i;
    return kNone;
  }

  // Copies `len` bytes starting `from` bytes into the entry's chain.
  void read(const Slot &s, size_t from, size_t len, char *out) {
    int32_t b = s.first_block;
    for (; from >= kBlockBytes; from -= kBlockBytes) b = next()[b];
    while (len > 0) {
      size_t n = std::min(kBlockBytes - from, len);
      memcpy(out, block(b) + from, n);
      out += n;
      len -= n;
      from = 0;
      b = next()[b];
    }
  }

  void write(const Slot &s, size_t from, const char *in, size_t len) {
    int32_t b = s.first_block;
    for (; from >= kBlockBytes; from -= kBlockBytes) b = next()[b];
    while (len > 0) {
      size_t n = std::min(kBlockBytes - from, len);
      memcpy(block(b) + from, in, n);
      in += n;
      len -= n;
      from = 0;
      b = next()[b];
    }
  }

  void unlink(int32_t i) {
    Slot *s = slots();
    int32_t *link = &buckets()[bucket_of(s[i].hash)];
    while (*link != i) link = &s[*link].chain;
    *link = s[i].chain;
    // The blocks go back to the free list, chain and all.
    int32_t last = s[i].first_block;
    uint32_t n = 1;
    while (next()[last] != kNone) {
      last = next()[last];
      ++n;
    }
    next()[last] = free_block;
    free_block = s[i].first_block;
    free_blocks += n;
    used_bytes -= s[i].key_len + s[i].value_len;
    --entries;
    s[i].used = 0;
    s[i].chain = free_slot;
    free_slot = i;
  }

  // CLOCK: until `blocks` blocks and a slot are free. Bounded: two turns of
  // the hand clear every bit and evict everything.
  void make_room(uint32_t blocks, int64_t now_ms) {
    Slot *s = slots();
    for (uint64_t steps = 0; (free_blocks < blocks || free_slot == kNone) && steps < 3ULL * nslots;
         ++steps) {
      uint32_t i = hand;
      hand = hand + 1 < nslots ? hand + 1 : 0;
      if (!s[i].used) continue;
      if (s[i].referenced && s[i].expires_ms > now_ms) {
        s[i].referenced = 0;
        continue;
      }
      unlink(static_cast<int32_t>(i));
      atomic_add(evictions, 1);
    }
  }
};

size_t L1Table::min_bytes() {
  return align_up(sizeof(Header), kAlign) + kAlign +
         kPartitions * align_up(Part::layout(kMinBlocks, nullptr), kAlign);
}

bool L1Table::format(void *base, size_t bytes) {
  if (bytes < min_bytes()) return false;
  char *b = static_cast<char *>(base);
  // The partitions start kAlign-aligned whatever the base's alignment.
  size_t head = align_up(sizeof(Header), kAlign);
  size_t start_pad = align_up(reinterpret_cast<uintptr_t>(b) + head, kAlign) -
                     (reinterpret_cast<uintptr_t>(b) + head);
  size_t part_bytes = (bytes - head - start_pad) / kPartitions / kAlign * kAlign;
  // The most blocks that fit: start from the block bytes alone, then shrink.
  uint32_t nblocks = static_cast<uint32_t>(std::min<size_t>(part_bytes / kBlockBytes, INT32_MAX));
  while (nblocks >= kMinBlocks && Part::layout(nblocks, nullptr) > part_bytes) {
    size_t over = Part::layout(nblocks, nullptr) - part_bytes;
    nblocks -= static_cast<uint32_t>(
        std::min<size_t>(nblocks, std::max<size_t>(1, over / (kBlockBytes + 8))));
  }
  if (nblocks < kMinBlocks) return false;
  auto *h = reinterpret_cast<Header *>(b);
  h->magic = kMagic;
  h->part_bytes = part_bytes;
  L1Table t(base);
  for (int p = 0; p < kPartitions; ++p) {
    Part *pt = t.part(p);
    memset(static_cast<void *>(pt), 0, sizeof(Part));
    Part::layout(nblocks, pt);
    pt->reset();
  }
  return true;
}

L1Table::Part *L1Table::part(int p) const {
  const auto *h = reinterpret_cast<const Header *>(base_);
  uintptr_t first =
      align_up(reinterpret_cast<uintptr_t>(base_) + align_up(sizeof(Header), kAlign), kAlign);
  return reinterpret_cast<Part *>(first + static_cast<size_t>(p) * h->part_bytes);
}

uint64_t L1Table::hash(std::string_view key) {
  // FNV-1a, then a finaliser so the top bits (the partition) mix all bytes.
  uint64_t h = 1469598103934665603ULL;
  for (char c : key) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

size_t L1Table::max_entry_bytes() const { return part(0)->nblocks / 4 * kBlockBytes; }

bool L1Table::lookup(uint64_t hash, std::string_view key, int64_t now_ms, std::string &value) {
  Part *p = part(partition_of(hash));
  int32_t i = p->find(hash, key);
  Slot *s = i == kNone ? nullptr : &p->slots()[i];
  if (s == nullptr || s->expires_ms <= now_ms) {
    atomic_add(p->misses, 1);
    return false;
  }
  value.resize(s->value_len);
  p->read(*s, s->key_len, s->value_len, value.data());
  // Only a clear bit is written: a hot entry's line is not dirtied per hit.
  if (!__atomic_load_n(&s->referenced, __ATOMIC_RELAXED))
    __atomic_store_n(&s->referenced, 1, __ATOMIC_RELAXED);
  atomic_add(p->hits, 1);
  return true;
}

L1Table::Stored L1Table::insert(uint64_t hash, std::string_view key, std::string_view value,
                                int64_t expires_ms, int64_t now_ms, size_t limit) {
  Part *p = part(partition_of(hash));
  const size_t total = key.size() + value.size();
  if (total > limit || total > max_entry_bytes() || key.empty()) {
    atomic_add(p->too_large, 1);
    return Stored::kTooLarge;
  }
  int32_t old = p->find(hash, key);
  if (old != kNone) p->unlink(old);
  const uint32_t blocks = static_cast<uint32_t>((total + kBlockBytes - 1) / kBlockBytes);
  p->make_room(blocks, now_ms);
  // Cannot happen for an entry of at most a quarter of the blocks (the
  // hand's second turn evicts everything); kept so that a bug costs an entry,
  // not the shared memory around it.
  if (p->free_slot == kNone || p->free_blocks < blocks) {
    atomic_add(p->too_large, 1);
    return Stored::kTooLarge;
  }
  int32_t i = p->free_slot;
  Slot &s = p->slots()[i];
  p->free_slot = s.chain;
  s.hash = hash;
  s.expires_ms = expires_ms;
  s.key_len = static_cast<uint32_t>(key.size());
  s.value_len = static_cast<uint32_t>(value.size());
  s.used = 1;
  s.referenced = 0;
  // Take `blocks` blocks off the free list, then fill them.
  s.first_block = p->free_block;
  int32_t last = p->free_block;
  for (uint32_t n = 1; n < blocks; ++n) last = p->next()[last];
  p->free_block = p->next()[last];
  p->next()[last] = kNone;
  p->free_blocks -= blocks;
  p->write(s, 0, key.data(), key.size());
  p->write(s, key.size(), value.data(), value.size());
  s.chain = p->buckets()[p->bucket_of(hash)];
  p->buckets()[p->bucket_of(hash)] = i;
  p->used_bytes += total;
  ++p->entries;
  atomic_add(p->inserts, 1);
  return Stored::kStored;
}

void L1Table::count_too_large(uint64_t hash) { atomic_add(part(partition_of(hash))->too_large, 1); }

bool L1Table::remove(uint64_t hash, std::string_view key) {
  Part *p = part(partition_of(hash));
  int32_t i = p->find(hash, key);
  if (i == kNone) return false;
  p->unlink(i);
  return true;
}

void L1Table::clear(int partition) { part(partition)->reset(); }

L1Stats L1Table::stats(int partition) const {
  Part *p = part(partition);
  L1Stats s;
  s.hits = atomic_load(p->hits);
  s.misses = atomic_load(p->misses);
  s.inserts = atomic_load(p->inserts);
  s.evictions = atomic_load(p->evictions);
  s.too_large = atomic_load(p->too_large);
  s.entries = p->entries;
  s.used_bytes = p->used_bytes;
  s.capacity_bytes = static_cast<uint64_t>(p->nblocks) * kBlockBytes;
  return s;
}

}  // namespace cachekit
