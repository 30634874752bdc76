#include "core/delivery.h"

#include <algorithm>

namespace cachekit {

namespace {
bool failed(DeliveryResult &r, const ResilientRedis &redis) {
  r.ok = false;
  r.error = redis.last_error();
  return false;
}
}  // namespace

DeliveryResult deliver(ResilientRedis &redis, const Invalidation &inv, bool include_patterns,
                       const std::function<void()> &between) {
  DeliveryResult r;
  // One pipeline per batch: the messages and the first UNLINK batch travel
  // together, so the common case (a few messages, a few keys) costs one
  // round trip.
  size_t next_key = 0;
  bool first = true;
  while (first || next_key < inv.keys.size()) {
    std::vector<RedisArgv> cmds;
    size_t messages = 0;
    if (first && !inv.channel.empty())
      for (const auto &m : inv.messages) cmds.push_back({"PUBLISH", inv.channel, m}), ++messages;
    first = false;
    size_t keys_end = std::min(inv.keys.size(), next_key + kDeliveryBatch);
    if (keys_end > next_key) {
      if (between) between();
      RedisArgv unlink{"UNLINK"};
      for (size_t j = next_key; j < keys_end; ++j) unlink.push_back(inv.keys[j]);
      cmds.push_back(std::move(unlink));
    }
    next_key = keys_end;
    if (cmds.empty()) break;
    auto replies = redis.pipeline(cmds);
    if (!replies) return failed(r, redis), r;
    // Count everything that went through, then report the first error.
    std::string first_error;
    for (size_t i = 0; i < replies->size(); ++i) {
      const RedisReply &rep = (*replies)[i];
      if (rep.is_error()) {
        if (first_error.empty()) first_error = rep.str;
      } else if (i < messages) {
        ++r.published;
      } else {
        r.keys_deleted += static_cast<uint64_t>(rep.integer);
      }
    }
    if (!first_error.empty()) return r.error = first_error, r;
  }
  if (include_patterns) {
    for (const auto &pattern : inv.patterns) {
      std::string cursor = "0";
      do {
        if (between) between();
        auto reply = redis.command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
        if (!reply) return failed(r, redis), r;
        if (reply->is_error() || reply->elements.size() != 2)
          return r.error = reply->is_error() ? reply->str : "unexpected SCAN reply", r;
        cursor = reply->elements[0].str;
        const auto &found = reply->elements[1].elements;
        if (found.empty()) continue;
        RedisArgv argv{"UNLINK"};
        for (const auto &k : found) argv.push_back(k.str);
        auto unlinked = redis.command(argv);
        if (!unlinked) return failed(r, redis), r;
        if (unlinked->is_error()) return r.error = unlinked->str, r;
        r.pattern_keys_deleted += static_cast<uint64_t>(unlinked->integer);
      } while (cursor != "0");
    }
  }
  r.ok = true;
  return r;
}

}  // namespace cachekit
