// The outbox relay: one background worker per database that has the
// extension, started by the launcher (launcher.cpp).
//
// Every cycle, in one transaction: delete the outbox rows the committing
// backends already delivered (their marks in shared memory), then deliver
// the rows nobody delivered, oldest id first, and delete them. A row is left
// to its backend for a grace period (the command timeout plus one second):
// the backend delivers right after commit, and the relay must not race it.
// The first failure stops the cycle so later rows never overtake an earlier
// one; the next cycle retries (at-least-once: a row whose delivery failed
// half-way is delivered again in full).
//
// It sleeps on its latch, which backends set when they leave work behind,
// and wakes at least every 250 ms otherwise.
#include <string>
#include <vector>

#include "core/delivery.h"
#include "core/json.h"
#include "core/key_template.h"
#include "pg/relay_state.h"
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/redis_conn.h"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "commands/dbcommands.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_outbox_relay_main(Datum arg);
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kBatch = 50;
constexpr long kNapMs = 250;

Oid relay_db = InvalidOid;

void on_exit_unregister(int, Datum) { unregister_worker_latch(relay_db); }

std::vector<std::string> text_array(Datum d) {
  std::vector<std::string> out;
  Datum *elems;
  bool *nulls;
  int n;
  pg_call([&] {
    deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
  });
  for (int i = 0; i < n; ++i)
    if (!nulls[i]) out.push_back(pg_call([&] { return TextDatumGetCString(elems[i]); }));
  return out;
}

Datum int8_array(const std::vector<int64_t> &ids) {
  std::vector<Datum> d;
  for (int64_t id : ids) d.push_back(Int64GetDatum(id));
  return pg_call([&] {
    return PointerGetDatum(
        construct_array(d.data(), static_cast<int>(d.size()), INT8OID, 8, true, TYPALIGN_DOUBLE));
  });
}

void delete_rows(const std::vector<int64_t> &ids) {
  if (ids.empty()) return;
  Datum arg = int8_array(ids);
  pg_call([&] {
    Oid type = INT8ARRAYOID;
    SPI_execute_with_args("DELETE FROM cachekit.outbox WHERE id = ANY ($1)", 1, &type, &arg,
                          nullptr, false, 0);
  });
}

bool extension_present() {
  return pg_call([] {
    int ret = SPI_execute("SELECT pg_catalog.to_regclass('cachekit.outbox') IS NOT NULL", true, 1);
    bool isnull = true;
    return ret == SPI_OK_SELECT && SPI_processed == 1 &&
           DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
}

// Rows of the outbox, decoded. `where` selects them (parameters: $1 grace
// in ms, $2 batch size, $3 ids).
struct Row {
  int64_t id;
  Invalidation inv;
};

std::vector<Row> fetch(const char *where, int grace_ms, const std::vector<int64_t> &ids) {
  Datum ids_arr = int8_array(ids);
  std::string sql =
      "SELECT id, coalesce(payload->>'channel', ''),"
      " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'messages')),"
      " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'keys')),"
      " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'patterns'))"
      " FROM cachekit.outbox WHERE ";
  sql += where;
  sql += " ORDER BY id LIMIT $2";
  pg_call([&] {
    Oid types[3] = {INT4OID, INT4OID, INT8ARRAYOID};
    Datum args[3] = {Int32GetDatum(grace_ms), Int32GetDatum(kBatch), ids_arr};
    // Not read-only: a fresh command id, so rows deleted earlier in this
    // transaction are gone.
    int ret = SPI_execute_with_args(sql.c_str(), 3, types, args, nullptr, false, 0);
    if (ret != SPI_OK_SELECT) elog(ERROR, "could not read the pg_cachekit outbox");
  });
  std::vector<Row> rows;
  SPITupleTable *t = SPI_tuptable;
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull;
    HeapTuple tup = t->vals[i];
    Row r;
    r.id = DatumGetInt64(SPI_getbinval(tup, t->tupdesc, 1, &isnull));
    r.inv.channel =
        pg_call([&] { return TextDatumGetCString(SPI_getbinval(tup, t->tupdesc, 2, &isnull)); });
    r.inv.messages = text_array(SPI_getbinval(tup, t->tupdesc, 3, &isnull));
    r.inv.keys = text_array(SPI_getbinval(tup, t->tupdesc, 4, &isnull));
    r.inv.patterns = text_array(SPI_getbinval(tup, t->tupdesc, 5, &isnull));
    rows.push_back(std::move(r));
  }
  return rows;
}

// Delivers rows in order; returns false at the first failure.
bool deliver_rows(std::vector<Row> &rows, bool patterns_only, std::vector<int64_t> &done) {
  ResilientRedis &redis = redis_for(RedisTarget::kCache);
  for (Row &row : rows) {
    if (patterns_only) {
      row.inv.messages.clear();
      row.inv.keys.clear();
    }
    DeliveryResult r =
        deliver(redis, row.inv, true, [] { pg_call([] { CHECK_FOR_INTERRUPTS(); }); });
    if (!r.ok) {
      count_app(AppCounter::kDeliveryFailures);
      return false;
    }
    count_app(AppCounter::kMessagesPublished, r.published);
    count_app(AppCounter::kKeysDeleted, r.keys_deleted + r.pattern_keys_deleted);
    count_app(AppCounter::kPatternsFlushed, row.inv.patterns.size());
    if (!patterns_only) count_app(AppCounter::kDeliveredByWorker);
    done.push_back(row.id);
  }
  return true;
}

int64_t outbox_count() {
  return pg_call([] {
    if (SPI_execute("SELECT count(*) FROM cachekit.outbox", false, 1) != SPI_OK_SELECT ||
        SPI_processed != 1)
      elog(ERROR, "could not count the pg_cachekit outbox");
    bool isnull;
    return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
}

// One cycle; true when the extension is (still) there.
// Everything of this database, once: a pub/sub message saying so and every
// key any key rule can produce (SCAN + UNLINK of the rules' patterns).
bool flush_everything() {
  std::vector<std::string> templates;
  pg_call([] {
    if (SPI_execute("SELECT template FROM cachekit._key_rules", false, 0) != SPI_OK_SELECT)
      elog(ERROR, "could not read the pg_cachekit key rules");
  });
  for (uint64 i = 0; i < SPI_processed; ++i)
    templates.push_back(
        pg_call([&] { return SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1); }));
  Invalidation inv;
  inv.channel = settings.invalidation_channel ? settings.invalidation_channel : "";
  std::string db = pg_call([] { return get_database_name(MyDatabaseId); });
  inv.messages.push_back("{\"database\": " + json_quote(db) +
                         ", \"flush\": true, \"all\": true, \"reason\": "
                         "\"invalidations may have been lost (crash or overflow)\"}");
  for (const auto &t : templates) inv.patterns.push_back(KeyTemplate::parse(t).pattern());
  DeliveryResult r = deliver(redis_for(RedisTarget::kCache), inv, true,
                             [] { pg_call([] { CHECK_FOR_INTERRUPTS(); }); });
  if (!r.ok) {
    count_app(AppCounter::kDeliveryFailures);
    return false;
  }
  count_app(AppCounter::kMessagesPublished, r.published);
  count_app(AppCounter::kKeysDeleted, r.pattern_keys_deleted);
  count_app(AppCounter::kPatternsFlushed, inv.patterns.size());
  return true;
}

// Invalidations queued in shared memory by the backends: pub/sub messages
// of their commits, and whatever their own delivery after commit could not
// send. All queued entries go out together, in queue (commit) order, in as
// few pipelines as possible.
bool deliver_queue() {
  std::vector<QueuedInvalidation> queued = queue_peek(relay_db);
  if (queued.empty()) return true;
  Invalidation all;
  for (const QueuedInvalidation &q : queued) {
    Invalidation one;
    if (decode_invalidation(q.payload, &one))
      append_invalidation(all, one);
    else
      set_flush_needed(relay_db);  // unreadable entry: cover it by a flush
  }
  DeliveryResult r = deliver(redis_for(RedisTarget::kCache), all, true,
                             [] { pg_call([] { CHECK_FOR_INTERRUPTS(); }); });
  if (!r.ok) {
    count_app(AppCounter::kDeliveryFailures);
    return false;
  }
  count_app(AppCounter::kMessagesPublished, r.published);
  count_app(AppCounter::kKeysDeleted, r.keys_deleted + r.pattern_keys_deleted);
  count_app(AppCounter::kDeliveredByWorker, queued.size());
  for (const QueuedInvalidation &q : queued) queue_remove(relay_db, q.seq);
  return true;
}

bool relay_cycle() {
  if (!extension_present()) return false;
  const int grace_ms = settings.command_timeout_ms + 1000;

  // Oldest first: a flush covers whatever was lost, then the queue (failed
  // deliveries without outbox rows), then the outbox.
  if (take_flush_needed(relay_db) && !flush_everything()) {
    set_flush_needed(relay_db);  // Redis still down: again next cycle
    return true;
  }
  if (!deliver_queue()) return true;

  // Rows the backends delivered: delete them, after their key patterns.
  std::vector<int64_t> delivered, pending;
  for (const Delivered &d : take_delivered(relay_db))
    (d.patterns_pending ? pending : delivered).push_back(d.id);
  delete_rows(delivered);
  if (!pending.empty()) {
    std::vector<Row> rows = fetch("id = ANY ($3)", grace_ms, pending);
    std::vector<int64_t> done;
    deliver_rows(rows, true, done);
    delete_rows(done);
    if (done.size() < rows.size()) return true;  // Redis failed: next cycle
  }

  // Rows nobody delivered. Normally only rows past the grace period (their
  // backend failed or died); with a backlog every row, since backends leave
  // theirs to the relay then. Oldest first; stop at the first failure.
  const bool backlogged = backlog(relay_db);
  const char *where = backlogged ? "true"
                                 : "created_at < pg_catalog.clock_timestamp() - "
                                   "pg_catalog.make_interval(secs => $1 / 1000.0)";
  for (;;) {
    std::vector<Row> rows = fetch(where, grace_ms, {});
    std::vector<int64_t> done;
    bool ok = deliver_rows(rows, false, done);
    delete_rows(done);
    if (!ok) return true;
    if (rows.size() < static_cast<size_t>(kBatch)) break;
  }
  // Caught up: backends may deliver again themselves.
  if (backlogged && outbox_count() == 0 && queue_peek(relay_db).empty()) clear_backlog(relay_db);
  return true;
}

}  // namespace

extern "C" void ck_outbox_relay_main(Datum arg) {
  relay_db = DatumGetObjectId(arg);
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(relay_db, InvalidOid, 0);
  // The relay runs as a superuser: never resolve names through a search_path
  // that the database's owner could have set (ALTER DATABASE ... SET).
  SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);
  pgstat_report_appname("pg_cachekit outbox relay");
  register_worker_latch(relay_db, MyProcPid);
  before_shmem_exit(on_exit_unregister, 0);
  // Should this relay die on an error, the launcher waits this long before
  // starting another (no restart loop).
  pause_worker(relay_db, GetCurrentTimestamp() + 5 * USECS_PER_SEC);

  TimestampTz last_full_cycle = 0;
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    // The hot path: queued messages, woken by the committing backends, with
    // no transaction (shared memory and Redis only). The outbox, the marks
    // and flushes need a transaction: every kNapMs, or at once when needed.
    bool queue_ok = cpp_entry([] { return deliver_queue(); });
    TimestampTz now = GetCurrentTimestamp();
    bool full =
        !queue_ok || backlog(relay_db) || now - last_full_cycle >= kNapMs * USECS_PER_SEC / 1000;
    if (!full) {
      (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kNapMs,
                      PG_WAIT_EXTENSION);
      ResetLatch(MyLatch);
      continue;
    }
    last_full_cycle = now;
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
    PushActiveSnapshot(GetTransactionSnapshot());
    pgstat_report_activity(STATE_RUNNING, "pg_cachekit outbox relay");
    bool present = cpp_entry([] { return relay_cycle(); });
    SPI_finish();
    PopActiveSnapshot();
    CommitTransactionCommand();
    pgstat_report_activity(STATE_IDLE, nullptr);
    if (!present) {
      // No extension in this database: the launcher looks again later.
      pause_worker(relay_db, GetCurrentTimestamp() + 10 * USECS_PER_SEC, true);
      proc_exit(0);
    }
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kNapMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
