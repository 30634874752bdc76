#include "core/delivery.h"

#include "core/json.h"
#include "core/le_bytes.h"

#include <algorithm>

namespace cachekit {

namespace {
bool failed(DeliveryResult &r, const ResilientRedis &redis) {
  r.ok = false;
  r.error = redis.last_error();
  return false;
}
}  // namespace

bool pattern_is_bounded(std::string_view pattern) {
  return !pattern.empty() &&
         std::string_view("*?[\\").find(pattern.front()) == std::string_view::npos;
}

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
      if (!pattern_is_bounded(pattern)) {
        r.rejected_patterns.push_back(pattern);
        continue;
      }
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

namespace cachekit {

namespace {
void put_str(std::string &b, const std::string &s) {
  put_le32(b, static_cast<uint32_t>(s.size()));
  b += s;
}
bool get_str(std::string_view d, size_t &pos, std::string &s) {
  uint32_t n = 0;
  if (!get_le32(d, pos, n) || d.size() - pos < n) return false;
  s.assign(d.data() + pos, n);
  pos += n;
  return true;
}
void put_list(std::string &b, const std::vector<std::string> &l) {
  put_le32(b, static_cast<uint32_t>(l.size()));
  for (const auto &s : l) put_str(b, s);
}
bool get_list(std::string_view d, size_t &pos, std::vector<std::string> &l) {
  uint32_t n = 0;
  if (!get_le32(d, pos, n) || n > d.size() - pos) return false;  // each item takes >= 4 bytes
  l.resize(n);
  for (auto &s : l)
    if (!get_str(d, pos, s)) return false;
  return true;
}
}  // namespace

std::string encode_invalidation(const Invalidation &inv) {
  std::string b;
  put_str(b, inv.channel);
  put_list(b, inv.messages);
  put_list(b, inv.keys);
  put_list(b, inv.patterns);
  return b;
}

bool decode_invalidation(std::string_view bytes, Invalidation *out) {
  size_t pos = 0;
  Invalidation inv;
  if (!get_str(bytes, pos, inv.channel) || !get_list(bytes, pos, inv.messages) ||
      !get_list(bytes, pos, inv.keys) || !get_list(bytes, pos, inv.patterns) || pos != bytes.size())
    return false;
  *out = std::move(inv);
  return true;
}

void append_invalidation(Invalidation &a, const Invalidation &b) {
  if (a.channel.empty()) a.channel = b.channel;
  a.messages.insert(a.messages.end(), b.messages.begin(), b.messages.end());
  a.keys.insert(a.keys.end(), b.keys.begin(), b.keys.end());
  a.patterns.insert(a.patterns.end(), b.patterns.begin(), b.patterns.end());
}

std::vector<DeliveryGroup> group_by_channel(const std::vector<Invalidation> &queue) {
  std::vector<DeliveryGroup> groups;
  for (size_t i = 0; i < queue.size(); ++i) {
    const Invalidation &e = queue[i];
    // Without messages the channel means nothing: such an entry joins any
    // group, and a group without messages takes the next entry's channel.
    const bool publishes = !e.channel.empty() && !e.messages.empty();
    bool joins = !groups.empty();
    if (joins && publishes) {
      const Invalidation &g = groups.back().inv;
      joins = g.messages.empty() || g.channel == e.channel;
    }
    if (!joins) groups.push_back(DeliveryGroup{Invalidation{}, i});
    Invalidation &g = groups.back().inv;
    if (publishes) {
      g.channel = e.channel;
      g.messages.insert(g.messages.end(), e.messages.begin(), e.messages.end());
    }
    g.keys.insert(g.keys.end(), e.keys.begin(), e.keys.end());
    g.patterns.insert(g.patterns.end(), e.patterns.begin(), e.patterns.end());
    groups.back().end = i + 1;
  }
  return groups;
}

std::string invalidation_json(const Invalidation &inv) {
  return "{\"channel\": " + json_quote(inv.channel) +
         ", \"messages\": " + json_string_array(inv.messages) +
         ", \"keys\": " + json_string_array(inv.keys) +
         ", \"patterns\": " + json_string_array(inv.patterns) + "}";
}

}  // namespace cachekit
