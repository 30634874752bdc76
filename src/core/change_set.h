// The per-transaction change set of trigger-driven invalidation: which
// watched tables a transaction changed (operations, rows) and which
// application keys its key rules produced, one level per subtransaction.
//
// Pure C++ (no Postgres headers) so that the rules below are unit-tested:
//  - a released savepoint's level merges into its parent, a rolled-back
//    one is dropped with everything it recorded;
//  - the key set is bounded (cachekit.max_keys_per_xact): when adding a key
//    would pass the limit, the table's keys are forgotten and every rule
//    that had produced one of them deletes by its key pattern instead, and
//    so does every rule whose keys are skipped afterwards (overflow). No key
//    of any rule is ever dropped without its pattern;
//  - a statement seen by several capture triggers (several rules, or a
//    statement-level and a row-level trigger of the same rule, which both
//    fire under session_replication_role = replica) counts its rows once;
//  - at commit, one pub/sub message per table and the outbox payload.
// The glue (src/pg/app_events.cpp) maps subtransaction nest levels onto
// depth and Postgres relation OIDs onto TableChange::relid.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/delivery.h"

namespace cachekit {

enum TableOp : uint8_t { kOpInsert = 1, kOpUpdate = 2, kOpDelete = 4, kOpTruncate = 8 };

// Keys one rule (named by its pattern) produced for one table.
struct RuleKeys {
  std::string pattern;
  std::unordered_set<std::string> keys;
};

struct TableChange {
  uint32_t relid = 0;
  std::string schema, table;
  uint8_t ops = 0;  // TableOp bits
  uint64_t rows = 0;
  bool rows_known = false;  // only key rules count rows
  bool overflow = false;    // past the key limit: new keys go by their rule's pattern
  std::vector<RuleKeys> keys;
  std::vector<std::string> patterns;  // SCAN MATCH patterns to delete by

  // The statement whose rows were counted last, and how many each rule saw
  // of it (see ChangeSet::count_rows).
  uint64_t statement = 0;
  uint64_t statement_rows = 0;
  std::unordered_map<std::string, uint64_t> statement_rule_rows;

  size_t key_count() const;
  void add_pattern(const std::string &pattern);
};

// What a message names besides the table.
struct CommitInfo {
  std::string database;
  std::string commit_time;
  uint64_t xid = 0;
};

inline constexpr size_t kKeysListed = 100;  // keys named in one pub/sub message

class ChangeSet {
 public:
  // The record of `relid` at subtransaction depth `depth` (1: the top
  // transaction), created on first use; `created` tells the caller to fill
  // in schema and table. The reference stays valid until that level is
  // merged, dropped or cleared, whatever else is recorded meanwhile.
  TableChange &table(int depth, uint32_t relid, bool *created = nullptr);

  enum class KeyOutcome {
    kAdded,       // a new key
    kKnown,       // already there
    kOverflowed,  // this key passed the limit: the table now goes by patterns
    kCovered,     // the table is past the limit: the rule's pattern covers it
  };
  // A key of the rule with SCAN pattern `pattern`; `limit` is the bound on
  // keys held by the whole transaction.
  KeyOutcome add_key(TableChange &t, const std::string &pattern, std::string key, size_t limit);

  // `rows` rows of one statement seen by one capture trigger of `rule`:
  // `per_row` for a row-level trigger (one call per row, so the rule's calls
  // add up), otherwise a statement-level one (all rows in one call). The
  // table counts, per statement, the most rows any rule saw.
  static void count_rows(TableChange &t, uint64_t statement, const std::string &rule, uint64_t rows,
                         bool per_row);

  // The subtransaction at `depth` ends: released (merged into its parent,
  // with any deeper level left unmerged) or rolled back (dropped).
  void release(int depth);
  void rollback(int depth);
  void clear();

  bool empty() const;
  // Keys held, over all levels (what the limit bounds).
  size_t total_keys() const { return total_keys_; }
  // Does any table have keys or patterns (anything a key rule produced)?
  bool has_keys() const;

  // At commit: merges every level into the top one and returns what to
  // deliver. Messages only when `channel` is not empty; keys sorted and
  // unique; patterns unique.
  Invalidation build(const std::string &channel, const CommitInfo &ctx);

 private:
  struct Level {
    std::vector<std::unique_ptr<TableChange>> tables;
  };
  void merge_into(Level &parent, Level &child);
  static size_t level_keys(const Level &l);

  std::vector<Level> levels_;  // levels_[i]: depth i + 1
  size_t total_keys_ = 0;
};

// The pub/sub message of one changed table.
std::string table_message(const TableChange &t, const CommitInfo &ctx);

}  // namespace cachekit
