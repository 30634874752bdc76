// Trigger-driven invalidation for applications.
//
// During the transaction: the statement trigger of every watched table
// records the table and the operation; the capture triggers of key rules
// (AFTER ... FOR EACH STATEMENT with transition tables, so one call per
// statement however many rows) expand the rules' templates from OLD and NEW
// rows into a set of keys. Savepoints get their own level: a rolled-back
// subtransaction's tables and keys are dropped, a released one's merge into
// its parent. The key set is bounded by cachekit.max_keys_per_xact; beyond
// it the table switches to deleting by the rule's key pattern (SCAN +
// UNLINK, done by the background worker), so a 1M-row UPDATE keeps a
// bounded amount of memory.
//
// Before commit (XACT_EVENT_PRE_COMMIT): one outbox row with everything to
// deliver is inserted in the committing transaction, so the invalidation is
// durable exactly when the change is, whatever happens to Redis or to the
// server afterwards. This is the cost every invalidating transaction pays.
//
// After commit (XACT_EVENT_COMMIT): when Redis answers, the backend delivers
// right away (messages, then keys) and marks the outbox row delivered in
// shared memory; the worker deletes marked rows and delivers the others.
// Nothing here can fail the commit: a Redis failure just leaves the row to
// the worker. Delivery is at-least-once.
#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/delivery.h"
#include "core/json.h"
#include "core/key_template.h"
#include "pg/app_events.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/invalidation.h"
#include "pg/redis_conn.h"
#include "pg/shmem.h"
#include "pg/sql_function.h"

extern "C" {
#include "access/htup_details.h"
#include "access/relation.h"
#include "catalog/pg_class.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_func.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "common/controldata_utils.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr size_t kKeysListed = 100;  // keys named in one pub/sub message

struct TableEvent {
  Oid relid = InvalidOid;
  std::string schema, table;
  uint8_t ops = 0;
  uint64_t rows = 0;
  bool rows_known = false;
  uint64_t stmt_key = 0;  // (command id, event) whose rows were counted last
  uint64_t stmt_rows = 0;
  bool overflow = false;  // keys beyond the bound: delete by pattern
  std::unordered_set<std::string> keys;
  std::vector<std::string> patterns;
};

struct Level {
  std::vector<TableEvent> tables;
};

std::vector<Level> levels;  // levels[i]: subtransaction nest level i + 1
size_t total_keys = 0;
int64 outbox_id = 0;                // written at PRE_COMMIT, delivered at COMMIT
constexpr int64 kNoOutboxRow = -1;  // something to deliver, not written down
Invalidation pending_delivery;

void reset_state() {
  levels.clear();
  total_keys = 0;
}

Level &current_level() {
  size_t depth = static_cast<size_t>(GetCurrentTransactionNestLevel());
  while (levels.size() < depth) levels.emplace_back();
  return levels[depth - 1];
}

// Schema and table names per relation, forgotten on any relcache
// invalidation (renames send one): the statement trigger of every write
// must not look them up each time.
std::unordered_map<Oid, std::pair<std::string, std::string>> names_cache;
void forget_names(Datum, Oid) { names_cache.clear(); }

TableEvent &table_event(Oid relid) {
  Level &level = current_level();
  for (auto &t : level.tables)
    if (t.relid == relid) return t;
  TableEvent t;
  t.relid = relid;
  auto it = names_cache.find(relid);
  if (it == names_cache.end()) {
    char *nsp = pg_call([&] { return get_namespace_name(get_rel_namespace(relid)); });
    char *rel = pg_call([&] { return get_rel_name(relid); });
    it = names_cache
             .emplace(relid,
                      std::make_pair(std::string(nsp ? nsp : ""), std::string(rel ? rel : "")))
             .first;
  }
  t.schema = it->second.first;
  t.table = it->second.second;
  level.tables.push_back(std::move(t));
  return level.tables.back();
}

// The outbox INSERT, prepared once per backend (re-prepared if the
// extension, and so the table, was re-created).
SPIPlanPtr outbox_plan = nullptr;
Oid outbox_plan_table = InvalidOid;

void add_pattern(TableEvent &t, const std::string &p) {
  if (std::find(t.patterns.begin(), t.patterns.end(), p) == t.patterns.end())
    t.patterns.push_back(p);
}

void merge_into(Level &parent, Level &child) {
  for (auto &c : child.tables) {
    auto it = std::find_if(parent.tables.begin(), parent.tables.end(),
                           [&](const TableEvent &p) { return p.relid == c.relid; });
    if (it == parent.tables.end()) {
      parent.tables.push_back(std::move(c));
      continue;
    }
    it->ops |= c.ops;
    it->rows += c.rows;
    it->rows_known = it->rows_known || c.rows_known;
    it->overflow = it->overflow || c.overflow;
    for (auto &p : c.patterns) add_pattern(*it, p);
    size_t before = it->keys.size() + c.keys.size();
    it->keys.merge(c.keys);
    total_keys -= before - it->keys.size();  // duplicates across levels
  }
}

size_t level_keys(const Level &l) {
  size_t n = 0;
  for (const auto &t : l.tables) n += t.keys.size();
  return n;
}

// A released savepoint merges into its parent before the subtransaction
// commits (PRE_COMMIT_SUB, where an error is still an ordinary error); a
// rolled-back one is dropped (destructors only, nothing that can fail).
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
  if (event != SUBXACT_EVENT_PRE_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB) return;
  size_t depth = static_cast<size_t>(GetCurrentTransactionNestLevel());
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    while (levels.size() >= depth && !levels.empty()) {
      total_keys -= std::min(total_keys, level_keys(levels.back()));
      levels.pop_back();
    }
    return;
  }
  cpp_entry([depth] {
    while (levels.size() >= depth && levels.size() > 1) {
      Level child = std::move(levels.back());
      levels.pop_back();
      merge_into(levels.back(), child);
    }
  });
}

const char *op_names[] = {"INSERT", "UPDATE", "DELETE", "TRUNCATE"};

std::string message_for(const TableEvent &t, const std::string &db, const std::string &when,
                        uint64 xid) {
  std::vector<std::string> ops;
  for (int i = 0; i < 4; ++i)
    if (t.ops & (1 << i)) ops.emplace_back(op_names[i]);
  std::vector<std::string> listed;
  for (const auto &k : t.keys) {
    if (listed.size() == kKeysListed) break;
    listed.push_back(k);
  }
  std::sort(listed.begin(), listed.end());
  bool more = t.overflow || t.keys.size() > listed.size();
  std::string m =
      "{\"database\": " + json_quote(db) + ", \"schema\": " + json_quote(t.schema) +
      ", \"table\": " + json_quote(t.table) + ", \"operations\": " + json_string_array(ops) +
      ", \"rows\": " + (t.rows_known ? std::to_string(t.rows) : std::string("null")) +
      ", \"commit_time\": " + json_quote(when) + ", \"xid\": " + std::to_string(xid) +
      ", \"keys\": " + json_string_array(listed) +
      ", \"keys_overflow\": " + (more ? "true" : "false") +
      ", \"flush\": " + (t.patterns.empty() && !(t.ops & kOpTruncate) ? "false" : "true") + "}";
  return m;
}

// PRE_COMMIT: build what to deliver and store it in the outbox.
void write_outbox() {
  if (levels.empty()) return;
  while (levels.size() > 1) {  // released savepoints not yet merged
    Level child = std::move(levels.back());
    levels.pop_back();
    merge_into(levels.back(), child);
  }
  Level &top = levels.front();
  if (top.tables.empty()) return;
  const bool publish = settings.invalidation_channel && settings.invalidation_channel[0] != '\0';
  bool any_keys = false;
  for (const auto &t : top.tables) any_keys = any_keys || !t.keys.empty() || !t.patterns.empty();
  if (!publish && !any_keys) return;  // nothing to deliver: the common cached_query-only case

  Oid outbox =
      pg_call([] { return get_relname_relid("outbox", get_namespace_oid("cachekit", true)); });
  if (outbox == InvalidOid) return;  // extension being dropped in this transaction

  // The database's name does not change while a backend is connected to it.
  static std::string db;
  if (db.empty()) db = pg_call([] { return get_database_name(MyDatabaseId); });
  std::string when = pg_call([] { return timestamptz_to_str(GetCurrentTimestamp()); });
  uint64 xid = U64FromFullTransactionId(GetTopFullTransactionIdIfAny());

  Invalidation inv;
  inv.channel = settings.invalidation_channel ? settings.invalidation_channel : "";
  for (const auto &t : top.tables) {
    if (!inv.channel.empty()) inv.messages.push_back(message_for(t, db, when, xid));
    for (const auto &k : t.keys) inv.keys.push_back(k);
    for (const auto &p : t.patterns) inv.patterns.push_back(p);
  }
  if (inv.messages.empty() && inv.keys.empty() && inv.patterns.empty()) return;
  std::sort(inv.keys.begin(), inv.keys.end());
  inv.keys.erase(std::unique(inv.keys.begin(), inv.keys.end()), inv.keys.end());

  // The common case writes nothing: Redis answers (as far as this backend
  // knows) and no older invalidation waits, so the backend delivers right
  // after commit. Should that delivery fail, the invalidation goes to the
  // relay's queue in shared memory (and after a crash, all is flushed).
  // The outbox row is for when Redis already looks down, when older rows
  // wait (order), and for key patterns (the relay's work).
  bool durable = !inv.patterns.empty() || backlog(MyDatabaseId) ||
                 redis_for(RedisTarget::kCache).breaker().state() != CircuitBreaker::State::kClosed;
  if (!durable) {
    outbox_id = kNoOutboxRow;
    pending_delivery = std::move(inv);
    return;
  }

  std::string payload = "{\"channel\": " + json_quote(inv.channel) +
                        ", \"messages\": " + json_string_array(inv.messages) +
                        ", \"keys\": " + json_string_array(inv.keys) +
                        ", \"patterns\": " + json_string_array(inv.patterns) + "}";

  // The outbox is not writable by ordinary roles: insert as its owner.
  Oid owner = pg_call([&] {
    HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(outbox));
    Oid o = HeapTupleIsValid(tup) ? ((Form_pg_class)GETSTRUCT(tup))->relowner : InvalidOid;
    if (HeapTupleIsValid(tup)) ReleaseSysCache(tup);
    return o;
  });
  int64 id = pg_call([&] {
    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    SetUserIdAndSecContext(owner,
                           save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    // The statement's snapshot is gone by pre-commit.
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid argtype = TEXTOID;
    if (outbox_plan != nullptr && outbox_plan_table != outbox) {
      SPI_freeplan(outbox_plan);
      outbox_plan = nullptr;
    }
    if (outbox_plan == nullptr) {
      SPIPlanPtr plan = SPI_prepare(
          "INSERT INTO cachekit.outbox (payload) VALUES ($1::pg_catalog.jsonb) RETURNING id", 1,
          &argtype);
      if (plan == nullptr) elog(ERROR, "could not prepare the pg_cachekit outbox insert");
      SPI_keepplan(plan);
      outbox_plan = plan;
      outbox_plan_table = outbox;
    }
    Datum arg = CStringGetTextDatum(payload.c_str());
    int ret = SPI_execute_plan(outbox_plan, &arg, nullptr, false, 1);
    if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
      elog(ERROR, "could not write the pg_cachekit outbox");
    bool isnull = false;
    int64 new_id =
        DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    PopActiveSnapshot();
    SPI_finish();
    SetUserIdAndSecContext(save_user, save_sec);
    return new_id;
  });
  count_app(AppCounter::kOutboxWritten);
  outbox_id = id;
  pending_delivery = std::move(inv);
}

// COMMIT: the change is visible; deliver now if Redis answers. Never throws.
void deliver_after_commit() noexcept {
  if (outbox_id == 0) return;
  int64 id = outbox_id;
  outbox_id = 0;
  try {
    Invalidation inv = std::move(pending_delivery);
    pending_delivery = Invalidation{};
    if (id == kNoOutboxRow) {
      // Nothing durable was written. Messages go to the relay's queue in
      // shared memory (in commit order, and no Redis round trip while this
      // transaction still holds its locks); keys are deleted right here, so
      // that COMMIT returns only once the application's keys are gone.
      Invalidation now = inv;
      if (!inv.channel.empty() && !inv.messages.empty()) {
        Invalidation messages{inv.channel, inv.messages, {}, {}};
        if (queue_push(MyDatabaseId, encode_invalidation(messages))) {
          now.messages.clear();
          wake_worker(MyDatabaseId);
        }
      }
      if (now.messages.empty() && now.keys.empty()) return;
      bool delivered = false;
      if (!backlog(MyDatabaseId)) {
        DeliveryResult r = deliver(redis_for(RedisTarget::kCache), now, false);
        delivered = r.ok;
        if (r.ok) {
          count_app(AppCounter::kMessagesPublished, r.published);
          count_app(AppCounter::kKeysDeleted, r.keys_deleted);
          count_app(AppCounter::kDeliveredAtCommit);
        } else {
          count_app(AppCounter::kDeliveryFailures);
        }
      }
      if (!delivered) {
        set_backlog(MyDatabaseId);
        if (!queue_push(MyDatabaseId, encode_invalidation(now))) set_flush_needed(MyDatabaseId);
        wake_worker(MyDatabaseId);
      }
      return;
    }
    // Older rows wait in the outbox: deliver through the relay too, so that
    // this one does not overtake them.
    if (backlog(MyDatabaseId)) {
      wake_worker(MyDatabaseId);
      return;
    }
    ResilientRedis &redis = redis_for(RedisTarget::kCache);
    DeliveryResult r = deliver(redis, inv, false);  // pattern deletions take long: the relay's
    if (!r.ok) {
      count_app(AppCounter::kDeliveryFailures);
      set_backlog(MyDatabaseId);
      wake_worker(MyDatabaseId);
      return;
    }
    count_app(AppCounter::kMessagesPublished, r.published);
    count_app(AppCounter::kKeysDeleted, r.keys_deleted);
    count_app(AppCounter::kDeliveredAtCommit);
    mark_delivered(MyDatabaseId, id, !inv.patterns.empty());
    if (!inv.patterns.empty()) wake_worker(MyDatabaseId);
  } catch (...) {
    // Out of memory or a configuration error. An outbox row stays for the
    // relay; without one, nothing is left to deliver from: flush everything.
    set_backlog(MyDatabaseId);
    if (id == kNoOutboxRow) set_flush_needed(MyDatabaseId);
    wake_worker(MyDatabaseId);
  }
}

void on_xact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
      cpp_entry([] { write_outbox(); });
      reset_state();
      break;
    case XACT_EVENT_COMMIT:
      deliver_after_commit();
      reset_state();
      break;
    case XACT_EVENT_PRE_PREPARE:
      // The outbox row is part of the prepared transaction; the worker
      // delivers it once COMMIT PREPARED makes it visible.
      cpp_entry([] { write_outbox(); });
      outbox_id = 0;
      pending_delivery = Invalidation{};
      reset_state();
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      outbox_id = 0;
      pending_delivery = Invalidation{};
      reset_state();
      break;
    default:
      break;
  }
}

// ---- key rules ------------------------------------------------------------

Oid capture_fn_oid() {
  return pg_call([] {
    List *name = list_make2(makeString(pstrdup("cachekit")), makeString(pstrdup("_capture_keys")));
    return LookupFuncName(name, 0, nullptr, true);
  });
}

struct Rule {
  KeyTemplate tmpl;
  std::vector<int> attnums;          // per template column
  std::vector<int> changed_attnums;  // UPDATE filter; empty: any change
};

std::vector<int> attnums_for(Relation rel, const std::vector<std::string> &names) {
  std::vector<int> out;
  TupleDesc desc = RelationGetDescr(rel);
  for (const auto &n : names) {
    int found = 0;
    for (int i = 0; i < desc->natts; ++i) {
      Form_pg_attribute a = TupleDescAttr(desc, i);
      if (!a->attisdropped && n == NameStr(a->attname)) found = i + 1;
    }
    if (found == 0)
      throw Error("42703",
                  "key rule names column \"" + n + "\" which " +
                      std::string(RelationGetRelationName(rel)) + " does not have",
                  {}, "Drop and re-create the key rule.");
    out.push_back(found);
  }
  return out;
}

std::vector<std::string> split_commas(const char *s) {
  std::vector<std::string> out;
  std::string cur;
  for (const char *p = s; *p; ++p) {
    if (*p == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(*p);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// Text of one attribute of the slot's tuple (nullopt for NULL).
std::optional<std::string> attr_text(TupleTableSlot *slot, int attnum) {
  bool isnull = false;
  Datum d = pg_call([&] { return slot_getattr(slot, attnum, &isnull); });
  if (isnull) return std::nullopt;
  Oid type = TupleDescAttr(slot->tts_tupleDescriptor, attnum - 1)->atttypid;
  char *s = pg_call([&] {
    Oid out;
    bool varlena;
    getTypeOutputInfo(type, &out, &varlena);
    return OidOutputFunctionCall(out, d);
  });
  return std::string(s);
}

bool attr_equal(TupleTableSlot *a, TupleTableSlot *b, int attnum) {
  auto x = attr_text(a, attnum), y = attr_text(b, attnum);
  return x == y;
}

void add_key(TableEvent &t, const Rule &rule, std::string key) {
  if (t.overflow) return;
  if (total_keys >= static_cast<size_t>(settings.max_keys_per_xact)) {
    // Bounded memory: forget the keys of this table, delete by pattern.
    total_keys -= std::min(total_keys, t.keys.size());
    t.keys.clear();
    t.overflow = true;
    add_pattern(t, rule.tmpl.pattern());
    count_app(AppCounter::kKeysOverflowed);
    return;
  }
  if (t.keys.insert(std::move(key)).second) ++total_keys;
}

void keys_from(TableEvent &t, const Rule &rule, TupleTableSlot *slot) {
  std::vector<std::optional<std::string>> values;
  values.reserve(rule.attnums.size());
  for (int a : rule.attnums) values.push_back(attr_text(slot, a));
  if (auto key = rule.tmpl.expand(values)) add_key(t, rule, std::move(*key));
}

}  // namespace

namespace cachekit::pg {

void install_app_event_callbacks() {
  CacheRegisterRelcacheCallback(forget_names, 0);
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

void note_statement(Oid relid, uint8_t op) {
  TableEvent &t = table_event(relid);
  t.ops |= op;
  if (op != kOpTruncate) return;
  // TRUNCATE has no transition tables: every key rule of the table deletes
  // by pattern instead.
  Oid fn = capture_fn_oid();
  // The statement holds a lock on the table, so its relcache entry (and the
  // trigger arguments in it) stays valid while we read them.
  TriggerDesc *trigdesc = pg_call([&] {
    Relation rel = relation_open(relid, NoLock);
    TriggerDesc *desc = rel->trigdesc;
    relation_close(rel, NoLock);
    return desc;
  });
  if (trigdesc == nullptr) return;
  for (int i = 0; i < trigdesc->numtriggers; ++i) {
    Trigger *tg = &trigdesc->triggers[i];
    if (tg->tgfoid == fn && tg->tgnargs >= 2)
      add_pattern(t, KeyTemplate::parse(tg->tgargs[1]).pattern());
  }
}

}  // namespace cachekit::pg

// AFTER INSERT/UPDATE/DELETE ... FOR EACH STATEMENT with transition tables;
// arguments: rule name, template, comma-separated UPDATE columns.
CK_SQL_FUNCTION(ck_capture_keys) {
  return cpp_entry([&]() -> Datum {
    if (!CALLED_AS_TRIGGER(fcinfo))
      throw Error(sqlstate::kObjectNotInPrerequisiteState,
                  "cachekit._capture_keys() must be called as a trigger");
    auto *td = reinterpret_cast<TriggerData *>(fcinfo->context);
    Trigger *tg = td->tg_trigger;
    if (tg->tgnargs < 3) throw Error(sqlstate::kInternalError, "key rule trigger lacks arguments");
    Rule rule{KeyTemplate::parse(tg->tgargs[1]), {}, {}};
    rule.attnums = attnums_for(td->tg_relation, rule.tmpl.columns());
    rule.changed_attnums = attnums_for(td->tg_relation, split_commas(tg->tgargs[2]));
    Oid relid = RelationGetRelid(td->tg_relation);
    TableEvent &t = table_event(relid);
    bool is_update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
    t.ops |= TRIGGER_FIRED_BY_INSERT(td->tg_event) ? kOpInsert : is_update ? kOpUpdate : kOpDelete;

    TupleDesc desc = RelationGetDescr(td->tg_relation);
    TupleTableSlot *old_slot = nullptr, *new_slot = nullptr;
    pg_call([&] {
      if (td->tg_oldtable) {
        old_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
        tuplestore_rescan(td->tg_oldtable);
      }
      if (td->tg_newtable) {
        new_slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
        tuplestore_rescan(td->tg_newtable);
      }
    });
    // Output strings of each row are freed with the row: a 1M-row statement
    // must not keep 1M allocations alive.
    MemoryContext row_cxt = pg_call([] {
      return AllocSetContextCreate(CurrentMemoryContext, "pg_cachekit key capture",
                                   ALLOCSET_SMALL_SIZES);
    });
    MemoryContext outer_cxt = CurrentMemoryContext;
    uint64 rows = 0;
    for (;;) {
      bool have_old = old_slot && pg_call([&] {
                        return tuplestore_gettupleslot(td->tg_oldtable, true, false, old_slot);
                      });
      bool have_new = new_slot && pg_call([&] {
                        return tuplestore_gettupleslot(td->tg_newtable, true, false, new_slot);
                      });
      if (!have_old && !have_new) break;
      ++rows;
      if ((rows & 4095) == 0) check_for_interrupts();
      if (t.overflow) continue;  // only counting from here on
      MemoryContextReset(row_cxt);
      MemoryContextSwitchTo(row_cxt);
      // UPDATE OF columns: OLD and NEW transition rows come in pairs.
      bool changed = true;
      if (is_update && have_old && have_new && !rule.changed_attnums.empty()) {
        changed = false;
        for (int a : rule.changed_attnums) changed = changed || !attr_equal(old_slot, new_slot, a);
      }
      if (changed && have_old) keys_from(t, rule, old_slot);
      if (changed && have_new) keys_from(t, rule, new_slot);
      MemoryContextSwitchTo(outer_cxt);
    }
    MemoryContextSwitchTo(outer_cxt);
    MemoryContextDelete(row_cxt);
    pg_call([&] {
      if (old_slot) ExecDropSingleTupleTableSlot(old_slot);
      if (new_slot) ExecDropSingleTupleTableSlot(new_slot);
    });
    // Several rules on one table see the same rows of the same statement:
    // count them once per (command, event).
    uint64_t stmt_key = (static_cast<uint64_t>(GetCurrentCommandId(false)) << 4) |
                        (td->tg_event & TRIGGER_EVENT_OPMASK);
    if (t.rows_known && t.stmt_key == stmt_key) {
      if (rows > t.stmt_rows) t.rows += rows - t.stmt_rows, t.stmt_rows = rows;
    } else {
      t.rows += rows;
      t.stmt_key = stmt_key;
      t.stmt_rows = rows;
    }
    t.rows_known = true;
    return PointerGetDatum(nullptr);
  });
}

CK_SQL_FUNCTION(ck_template_columns) {
  Arg tmpl = varlena_arg(fcinfo, 0);
  return cpp_entry([&]() -> Datum {
    KeyTemplate t = KeyTemplate::parse(required(tmpl, "template"));
    std::vector<Datum> items;
    for (const auto &c : t.columns()) items.push_back(text_datum(c));
    return pg_call([&] {
      return PointerGetDatum(construct_array(items.data(), static_cast<int>(items.size()), TEXTOID,
                                             -1, false, TYPALIGN_INT));
    });
  });
}
