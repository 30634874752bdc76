// Delivering committed invalidations to Redis: pub/sub messages and key
// deletions (and, from the background worker, deletions by key pattern).
// Used by the committing backend right after commit and by the outbox relay;
// pure C++ so both share it and it is unit-tested against a real Redis.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/redis_client.h"

namespace cachekit {

struct Invalidation {
  std::string channel;                // empty: publish nothing
  std::vector<std::string> messages;  // JSON documents, one per table
  std::vector<std::string> keys;      // exact keys to UNLINK
  std::vector<std::string> patterns;  // SCAN MATCH patterns to UNLINK (worker only)
};

struct DeliveryResult {
  bool ok = false;
  uint64_t published = 0;
  uint64_t keys_deleted = 0;  // keys that existed
  uint64_t pattern_keys_deleted = 0;
  std::string error;
  // Patterns refused by pattern_is_bounded(): not scanned, and not a reason
  // to stop (retrying would refuse them again).
  std::vector<std::string> rejected_patterns;
};

inline constexpr size_t kDeliveryBatch = 1000;

// A key pattern is data read from a table (the outbox, the key rules): the
// relay runs it only when it starts with a non-empty literal prefix, i.e.
// no glob metacharacter (* ? [ \) comes before some literal text, so that no
// pattern can match every key of the Redis database ("*", "{id}" expanded,
// "[a-z]*", "" ...). A template's pattern() has that shape exactly when the
// template starts with literal text.
bool pattern_is_bounded(std::string_view pattern);

// Messages and the first UNLINK batch in one pipeline (one round trip in the
// common case), further key batches after it, then patterns with SCAN +
// UNLINK (only bounded ones: the others go to rejected_patterns). Stops at
// the first failure (ok = false): delivery is at-least-once, a retry repeats
// what already went through. `between` runs before every key batch and every
// SCAN step (the worker checks for interrupts there; an exception it throws
// leaves deliver() unchanged).
DeliveryResult deliver(ResilientRedis &redis, const Invalidation &inv, bool include_patterns,
                       const std::function<void()> &between = {});

}  // namespace cachekit

namespace cachekit {

// A compact binary form of an Invalidation (length-prefixed strings), for
// the relay's queue in shared memory. decode() returns false for bytes that
// are not a complete encoding.
std::string encode_invalidation(const Invalidation &inv);
bool decode_invalidation(std::string_view bytes, Invalidation *out);

// Appends b's messages, keys and patterns to a (same channel assumed).
void append_invalidation(Invalidation &a, const Invalidation &b);

// Queued invalidations merged into as few deliveries as possible without
// changing what goes where: consecutive entries that publish on the same
// channel (or publish nothing) share one delivery, in queue order; an entry
// on another channel starts the next. Entries [previous end, end) of the
// input make up `inv`.
struct DeliveryGroup {
  Invalidation inv;
  size_t end;
};
std::vector<DeliveryGroup> group_by_channel(const std::vector<Invalidation> &queue);

// The outbox's JSON form of an invalidation (cachekit.outbox.payload):
// {"channel": ..., "messages": [...], "keys": [...], "patterns": [...]}.
std::string invalidation_json(const Invalidation &inv);

}  // namespace cachekit
