// Trigger-driven invalidation for applications: the transaction callbacks.
//
// During the transaction the invalidation trigger (invalidation.cpp) and the
// key rules' capture triggers (key_capture.cpp) record changed tables and
// application keys in the change set (core/change_set.h), one level per
// subtransaction: a released savepoint's level merges into its parent here,
// at PRE_COMMIT_SUB, a rolled-back one is dropped at ABORT_SUB.
//
// Before commit (XACT_EVENT_PRE_COMMIT) the change set becomes one
// Invalidation (pub/sub messages, keys, key patterns). An outbox row holding
// it is inserted in the committing transaction only when it is needed,
// which makes the invalidation durable exactly when the change is:
//  - key patterns (SCAN + UNLINK is the relay's work),
//  - a backlog (older rows wait in the outbox: commit order),
//  - Redis already looks down (circuit breaker not closed).
// Otherwise nothing is written and the backend delivers right after commit;
// should that fail, the invalidation goes to the relay's queue in shared
// memory (and when that is full, or after a crash, the relay flushes
// everything).
//
// Delivery at commit costs no Redis round trip under the transaction's
// locks: at XACT_EVENT_COMMIT the messages and the UNLINK are written to
// the cache connection in one pipeline, and the replies are read at
// RESOURCE_RELEASE_AFTER_LOCKS, when its heavyweight locks are gone but
// COMMIT has not returned yet (at most cachekit.redis_command_timeout_ms).
// So when COMMIT returns, Redis has run them: any reader on any connection
// sees the keys gone, and what commits afterwards publishes afterwards.
// Messages go to the relay's queue, except with cachekit.publish_at_commit
// when nothing of the database waits in the queue (nor a backlog in the
// outbox): then they travel in the same pipeline as the keys.
//
// PREPARE TRANSACTION (XACT_EVENT_PRE_PREPARE) always writes the outbox
// row: COMMIT PREPARED runs no callback in any backend, may come from
// another session or after a restart, and ROLLBACK PREPARED must deliver
// nothing. The row is part of the prepared transaction, so it becomes
// visible exactly when COMMIT PREPARED makes the change visible, and the
// relay delivers it then; ROLLBACK PREPARED discards it with the change.
//
// After commit (XACT_EVENT_COMMIT) with an outbox row: when Redis answers,
// the backend delivers right away (messages, then keys) and marks the row
// delivered in shared memory; the relay deletes marked rows and delivers the
// others. Nothing here can fail the commit. Delivery is at-least-once.
#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "core/change_set.h"
#include "core/delivery.h"
#include "pg/app_events.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/key_capture.h"
#include "pg/redis_conn.h"
#include "pg/relay_state.h"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

ChangeSet changes;
int64 outbox_id = 0;                // written at PRE_COMMIT, delivered at COMMIT
constexpr int64 kNoOutboxRow = -1;  // something to deliver, not written down
Invalidation pending_delivery;

void reset_state() { changes.clear(); }

// Schema and table names per relation, forgotten on any relcache
// invalidation (renames send one): the trigger of every write must not look
// them up each time.
std::unordered_map<Oid, std::pair<std::string, std::string>> names_cache;
void forget_names(Datum, Oid) { names_cache.clear(); }

// The outbox INSERT, prepared once per backend (re-prepared if the
// extension, and so the table, was re-created).
SPIPlanPtr outbox_plan = nullptr;
Oid outbox_plan_table = InvalidOid;

// A released savepoint merges into its parent before the subtransaction
// commits (PRE_COMMIT_SUB, where an error is still an ordinary error); a
// rolled-back one is dropped (destructors only, nothing that can fail).
void on_subxact(SubXactEvent event, SubTransactionId, SubTransactionId, void *) {
  int depth = GetCurrentTransactionNestLevel();
  if (event == SUBXACT_EVENT_ABORT_SUB)
    changes.rollback(depth);
  else if (event == SUBXACT_EVENT_PRE_COMMIT_SUB)
    cpp_entry([depth] { changes.release(depth); });
}

// Inserts the payload into cachekit.outbox as the table's owner; returns the
// row's id, or 0 when the extension is being dropped in this transaction.
int64 insert_outbox_row(const std::string &payload) {
  Oid outbox =
      pg_call([] { return get_relname_relid("outbox", get_namespace_oid("cachekit", true)); });
  if (outbox == InvalidOid) return 0;
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
  return id;
}

// PRE_COMMIT and PRE_PREPARE: build what to deliver; store it in the outbox
// when needed (always for a prepared transaction).
void prepare_delivery(bool prepared) {
  if (changes.empty()) return;
  const bool publish = settings.invalidation_channel && settings.invalidation_channel[0] != '\0';
  if (!publish && !changes.has_keys()) return;  // the common cached_query-only case

  // The database's name does not change while a backend is connected to it.
  static std::string db;
  if (db.empty()) db = pg_call([] { return get_database_name(MyDatabaseId); });
  CommitInfo ctx;
  ctx.database = db;
  ctx.commit_time = pg_call([] { return timestamptz_to_str(GetCurrentTimestamp()); });
  ctx.xid = U64FromFullTransactionId(GetTopFullTransactionIdIfAny());
  Invalidation inv = changes.build(publish ? settings.invalidation_channel : "", ctx);
  if (inv.messages.empty() && inv.keys.empty() && inv.patterns.empty()) return;

  bool durable = prepared || !inv.patterns.empty() || backlog(MyDatabaseId) ||
                 redis_for(RedisTarget::kCache).breaker().state() != CircuitBreaker::State::kClosed;
  if (!durable) {
    outbox_id = kNoOutboxRow;
    pending_delivery = std::move(inv);
    return;
  }
  int64 id = insert_outbox_row(invalidation_json(inv));
  if (id == 0) return;  // extension being dropped in this transaction
  outbox_id = id;
  pending_delivery = std::move(inv);
}

// The delivery of the committing transaction, between COMMIT (sent) and
// the release of its locks (replies read): what was sent, for the relay
// should it fail, and the connection it went on.
Invalidation in_flight;
ResilientRedis *in_flight_on = nullptr;

// Hands an invalidation that could not be delivered to the relay, as
// delivery at commit always did.
void hand_to_relay(const Invalidation &inv) noexcept {
  set_backlog(MyDatabaseId);
  try {
    if (!queue_push(MyDatabaseId, encode_invalidation(inv))) set_flush_needed(MyDatabaseId);
  } catch (...) {
    set_flush_needed(MyDatabaseId);  // out of memory: nothing left to deliver from
  }
  wake_worker(MyDatabaseId);
}

// The replies of what send_at_commit() sent (read after the locks are
// released, or before this backend's next command on the connection,
// whichever comes first; the handler of the cache connection's deferred
// commands). A failure hands everything to the relay (at-least-once: some
// of it may have gone through).
void on_replies(uint64_t, bool ok, const std::vector<RedisReply> &replies,
                const std::string &) noexcept {
  Invalidation inv = std::move(in_flight);
  in_flight = Invalidation{};
  if (ok) {
    const size_t messages = inv.channel.empty() ? 0 : inv.messages.size();
    uint64_t deleted = 0;
    for (size_t i = messages; i < replies.size(); ++i)
      deleted += static_cast<uint64_t>(replies[i].integer);
    count_app(AppCounter::kMessagesPublished, messages);
    count_app(AppCounter::kKeysDeleted, deleted);
    count_app(AppCounter::kDeliveredAtCommit);
    return;
  }
  count_app(AppCounter::kDeliveryFailures);
  hand_to_relay(inv);
}

// Sends the invalidation (messages, then one UNLINK) at COMMIT in one
// write, without waiting: the replies are read in after_locks_released(),
// so the transaction's locks are not held across a Redis round trip, and
// still before COMMIT returns to the client: any reader, on any
// connection, sees the keys gone once it has, and a transaction that
// commits after it returned publishes after it (commit order). False when
// this is not the simple case (more than one batch of keys): the caller
// delivers as before. Takes inv when true.
bool send_at_commit(Invalidation &inv) {
  if (inv.keys.size() > kDeliveryBatch) return false;
  ResilientRedis &redis = redis_for(RedisTarget::kCache);
  static bool handler_set = false;
  if (!handler_set) {
    redis.set_deferred_handler(on_replies);
    handler_set = true;
  }
  redis.settle();  // an earlier batch is reported with its own in_flight
  in_flight = std::move(inv);
  std::vector<RedisArgv> cmds;
  cmds.reserve(in_flight.messages.size() + 1);
  if (!in_flight.channel.empty())
    for (const std::string &m : in_flight.messages)
      cmds.push_back({"PUBLISH", in_flight.channel, m});
  if (!in_flight.keys.empty()) {
    RedisArgv unlink{"UNLINK"};
    unlink.reserve(in_flight.keys.size() + 1);
    for (const std::string &k : in_flight.keys) unlink.push_back(k);
    cmds.push_back(std::move(unlink));
  }
  if (cmds.empty()) return true;
  if (!redis.send_deferred(cmds, 0)) {
    on_replies(0, false, {}, redis.last_error());
    return true;
  }
  in_flight_on = &redis;
  return true;
}

// Resource owners are released after the COMMIT callbacks; at
// RESOURCE_RELEASE_AFTER_LOCKS of the top transaction its heavyweight locks
// (and with them the waits of other writers on its rows) are gone, and the
// client has not been told of the commit yet.
void after_locks_released(ResourceReleasePhase phase, bool, bool is_top_level, void *) {
  if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !is_top_level || in_flight_on == nullptr) return;
  ResilientRedis *redis = in_flight_on;
  in_flight_on = nullptr;
  redis->settle();  // bounded by cachekit.redis_command_timeout_ms; never throws
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
      // shared memory (commit order), or with publish_at_commit and nothing
      // queued before them, along with the keys (send_at_commit).
      Invalidation &now = inv;
      if (!backlog(MyDatabaseId)) {
        if (settings.publish_at_commit && queue_count(MyDatabaseId) == 0 && send_at_commit(now))
          return;
        if (!now.channel.empty() && !now.messages.empty()) {
          Invalidation messages;
          messages.channel = now.channel;
          messages.messages.swap(now.messages);
          if (queue_push(MyDatabaseId, encode_invalidation(messages)))
            wake_worker(MyDatabaseId);
          else
            now.messages.swap(messages.messages);
        }
        if (now.messages.empty() && now.keys.empty()) return;
        if (now.messages.empty() && send_at_commit(now)) return;
      }
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

void forget_delivery() {
  outbox_id = 0;
  pending_delivery = Invalidation{};
}

void on_xact(XactEvent event, void *) {
  switch (event) {
    case XACT_EVENT_PRE_COMMIT:
      cpp_entry([] { prepare_delivery(false); });
      reset_state();
      break;
    case XACT_EVENT_COMMIT:
      deliver_after_commit();
      reset_state();
      break;
    case XACT_EVENT_PRE_PREPARE:
      // The outbox row is part of the prepared transaction; the relay
      // delivers it once COMMIT PREPARED makes it visible. Nothing is left
      // for this backend to deliver.
      cpp_entry([] { prepare_delivery(true); });
      forget_delivery();
      reset_state();
      break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
      forget_delivery();
      reset_state();
      break;
    default:
      break;
  }
}

}  // namespace

namespace cachekit::pg {

void install_app_event_callbacks() {
  CacheRegisterRelcacheCallback(forget_names, 0);
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
  RegisterResourceReleaseCallback(after_locks_released, nullptr);
  install_key_capture_callbacks();
}

ChangeSet &transaction_changes() { return changes; }

TableChange &changed_table(Oid relid) {
  bool created = false;
  TableChange &t = changes.table(GetCurrentTransactionNestLevel(), relid, &created);
  if (!created) return t;
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
  return t;
}

void note_statement(Oid relid, uint8_t op) {
  TableChange &t = changed_table(relid);
  t.ops |= op;
  // TRUNCATE has no rows to read: every key rule of the table deletes by
  // pattern instead.
  if (op == kOpTruncate)
    for (const std::string &p : rule_patterns(relid)) t.add_pattern(p);
}

}  // namespace cachekit::pg
