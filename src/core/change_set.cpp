// See change_set.h for the rules this implements.
#include "core/change_set.h"

#include <algorithm>
#include <utility>

#include "core/json.h"

namespace cachekit {

size_t TableChange::key_count() const {
  size_t n = 0;
  for (const auto &r : keys) n += r.keys.size();
  return n;
}

void TableChange::add_pattern(const std::string &pattern) {
  if (std::find(patterns.begin(), patterns.end(), pattern) == patterns.end())
    patterns.push_back(pattern);
}

TableChange &ChangeSet::table(int depth, uint32_t relid, bool *created) {
  if (depth < 1) depth = 1;
  while (levels_.size() < static_cast<size_t>(depth)) levels_.emplace_back();
  Level &level = levels_[depth - 1];
  if (created) *created = false;
  for (auto &t : level.tables)
    if (t->relid == relid) return *t;
  level.tables.push_back(std::make_unique<TableChange>());
  level.tables.back()->relid = relid;
  if (created) *created = true;
  return *level.tables.back();
}

ChangeSet::KeyOutcome ChangeSet::add_key(TableChange &t, const std::string &pattern,
                                         std::string key, size_t limit) {
  if (t.overflow) {
    t.add_pattern(pattern);
    return KeyOutcome::kCovered;
  }
  auto rule = std::find_if(t.keys.begin(), t.keys.end(),
                           [&](const RuleKeys &r) { return r.pattern == pattern; });
  if (rule != t.keys.end() && rule->keys.count(key) != 0) return KeyOutcome::kKnown;
  if (total_keys_ >= limit) {
    // Bounded memory: forget this table's keys; every rule that produced
    // one deletes by its pattern instead, and so does the rule at hand.
    for (const auto &r : t.keys) {
      if (!r.keys.empty()) t.add_pattern(r.pattern);
      total_keys_ -= std::min(total_keys_, r.keys.size());
    }
    t.keys.clear();
    t.add_pattern(pattern);
    t.overflow = true;
    return KeyOutcome::kOverflowed;
  }
  if (rule == t.keys.end()) {
    t.keys.push_back(RuleKeys{pattern, {}});
    rule = std::prev(t.keys.end());
  }
  rule->keys.insert(std::move(key));
  ++total_keys_;
  return KeyOutcome::kAdded;
}

void ChangeSet::count_rows(TableChange &t, uint64_t statement, const std::string &rule,
                           uint64_t rows, bool per_row) {
  if (!t.rows_known || t.statement != statement) {
    t.statement = statement;
    t.statement_rows = 0;
    t.statement_rule_rows.clear();
  }
  uint64_t seen = rows;
  if (per_row) seen = t.statement_rule_rows[rule] += rows;
  if (seen > t.statement_rows) {
    t.rows += seen - t.statement_rows;
    t.statement_rows = seen;
  }
  t.rows_known = true;
}

size_t ChangeSet::level_keys(const Level &l) {
  size_t n = 0;
  for (const auto &t : l.tables) n += t->key_count();
  return n;
}

void ChangeSet::merge_into(Level &parent, Level &child) {
  for (auto &c : child.tables) {
    auto it =
        std::find_if(parent.tables.begin(), parent.tables.end(),
                     [&](const std::unique_ptr<TableChange> &p) { return p->relid == c->relid; });
    if (it == parent.tables.end()) {
      parent.tables.push_back(std::move(c));
      continue;
    }
    TableChange &p = **it;
    p.ops |= c->ops;
    p.rows += c->rows;
    p.rows_known = p.rows_known || c->rows_known;
    if (c->rows_known) {  // the child's statements came later
      p.statement = c->statement;
      p.statement_rows = c->statement_rows;
      p.statement_rule_rows = std::move(c->statement_rule_rows);
    }
    p.overflow = p.overflow || c->overflow;
    for (const auto &pat : c->patterns) p.add_pattern(pat);
    for (auto &ck : c->keys) {
      auto pk = std::find_if(p.keys.begin(), p.keys.end(),
                             [&](const RuleKeys &r) { return r.pattern == ck.pattern; });
      if (pk == p.keys.end()) {
        p.keys.push_back(std::move(ck));
        continue;
      }
      size_t before = pk->keys.size() + ck.keys.size();
      pk->keys.merge(ck.keys);
      total_keys_ -= std::min(total_keys_, before - pk->keys.size());  // in both levels
    }
  }
}

void ChangeSet::release(int depth) {
  if (depth < 2) return;
  while (levels_.size() >= static_cast<size_t>(depth) && levels_.size() > 1) {
    Level child = std::move(levels_.back());
    levels_.pop_back();
    merge_into(levels_.back(), child);
  }
}

void ChangeSet::rollback(int depth) {
  if (depth < 1) depth = 1;
  while (levels_.size() >= static_cast<size_t>(depth)) {
    total_keys_ -= std::min(total_keys_, level_keys(levels_.back()));
    levels_.pop_back();
  }
}

void ChangeSet::clear() {
  levels_.clear();
  total_keys_ = 0;
}

bool ChangeSet::empty() const {
  for (const auto &l : levels_)
    if (!l.tables.empty()) return false;
  return true;
}

bool ChangeSet::has_keys() const {
  for (const auto &l : levels_)
    for (const auto &t : l.tables)
      if (t->key_count() != 0 || !t->patterns.empty()) return true;
  return false;
}

namespace {

std::vector<std::string> sorted_keys(const TableChange &t) {
  std::vector<std::string> all;
  all.reserve(t.key_count());
  for (const auto &r : t.keys) all.insert(all.end(), r.keys.begin(), r.keys.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

const char *const kOpNames[] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"};

}  // namespace

std::string table_message(const TableChange &t, const CommitInfo &ctx) {
  std::vector<std::string> ops;
  for (int i = 0; i < 4; ++i)
    if (t.ops & (1 << i)) ops.emplace_back(kOpNames[i]);
  std::vector<std::string> listed = sorted_keys(t);
  bool more = t.overflow || listed.size() > kKeysListed;
  if (listed.size() > kKeysListed) listed.resize(kKeysListed);
  bool flush = !t.patterns.empty() || (t.ops & kOpTruncate);
  return "{\"database\": " + json_quote(ctx.database) + ", \"schema\": " + json_quote(t.schema) +
         ", \"table\": " + json_quote(t.table) + ", \"operations\": " + json_string_array(ops) +
         ", \"rows\": " + (t.rows_known ? std::to_string(t.rows) : std::string("null")) +
         ", \"commit_time\": " + json_quote(ctx.commit_time) +
         ", \"xid\": " + std::to_string(ctx.xid) + ", \"keys\": " + json_string_array(listed) +
         ", \"keys_overflow\": " + (more ? "true" : "false") +
         ", \"flush\": " + (flush ? "true" : "false") + "}";
}

Invalidation ChangeSet::build(const std::string &channel, const CommitInfo &ctx) {
  Invalidation inv;
  inv.channel = channel;
  while (levels_.size() > 1) {  // released savepoints not merged yet
    Level child = std::move(levels_.back());
    levels_.pop_back();
    merge_into(levels_.back(), child);
  }
  if (levels_.empty()) return inv;
  for (const auto &t : levels_.front().tables) {
    if (!channel.empty()) inv.messages.push_back(table_message(*t, ctx));
    for (const auto &r : t->keys) inv.keys.insert(inv.keys.end(), r.keys.begin(), r.keys.end());
    for (const auto &p : t->patterns)
      if (std::find(inv.patterns.begin(), inv.patterns.end(), p) == inv.patterns.end())
        inv.patterns.push_back(p);
  }
  std::sort(inv.keys.begin(), inv.keys.end());
  inv.keys.erase(std::unique(inv.keys.begin(), inv.keys.end()), inv.keys.end());
  return inv;
}

}  // namespace cachekit
