#include "core/delivery.h"

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
  if (!inv.channel.empty() && !inv.messages.empty()) {
    std::vector<RedisArgv> cmds;
    cmds.reserve(inv.messages.size());
    for (const auto &m : inv.messages) cmds.push_back({"PUBLISH", inv.channel, m});
    auto replies = redis.pipeline(cmds);
    if (!replies) return failed(r, redis), r;
    for (const auto &rep : *replies)
      if (rep.is_error()) return r.error = rep.str, r;
    r.published = inv.messages.size();
  }
  for (size_t i = 0; i < inv.keys.size(); i += kDeliveryBatch) {
    if (between) between();
    RedisArgv argv{"UNLINK"};
    for (size_t j = i; j < inv.keys.size() && j < i + kDeliveryBatch; ++j)
      argv.push_back(inv.keys[j]);
    auto reply = redis.command(argv);
    if (!reply) return failed(r, redis), r;
    if (reply->is_error()) return r.error = reply->str, r;
    r.keys_deleted += static_cast<uint64_t>(reply->integer);
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
