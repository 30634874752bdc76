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
};

inline constexpr size_t kDeliveryBatch = 1000;

// Messages and the first UNLINK batch in one pipeline (one round trip in the
// common case), further key batches after it, then patterns with SCAN +
// UNLINK. Stops at the first failure (ok = false): delivery is at-least-once,
// a retry repeats what already went through. `between` runs before every key
// batch and every SCAN step (the worker checks for interrupts there).
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

}  // namespace cachekit
