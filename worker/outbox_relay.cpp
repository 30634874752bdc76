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
#include "pg/app_events.h"
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
    if (!nulls[i]) out.push_back(TextDatumGetCString(elems[i]));
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

// One cycle; true when the extension is (still) there.
bool relay_cycle() {
  if (!extension_present()) return false;
  delete_rows(take_delivered(relay_db));

  int grace_ms = settings.command_timeout_ms + 1000;
  pg_call([&] {
    Oid types[2] = {INT4OID, INT4OID};
    Datum args[2] = {Int32GetDatum(grace_ms), Int32GetDatum(kBatch)};
    int ret = SPI_execute_with_args(
        "SELECT id, coalesce(payload->>'channel', ''),"
        " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'messages')),"
        " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'keys')),"
        " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(payload->'patterns'))"
        " FROM cachekit.outbox"
        " WHERE created_at < pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $1 / "
        "1000.0)"
        " ORDER BY id LIMIT $2",
        2, types, args, nullptr, true, 0);
    if (ret != SPI_OK_SELECT) elog(ERROR, "could not read the pg_cachekit outbox");
  });
  SPITupleTable *rows = SPI_tuptable;
  uint64 n = SPI_processed;
  std::vector<int64_t> done;
  ResilientRedis &redis = redis_for(RedisTarget::kCache);
  for (uint64 i = 0; i < n; ++i) {
    bool isnull;
    HeapTuple tup = rows->vals[i];
    int64_t id = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 1, &isnull));
    Invalidation inv;
    inv.channel =
        pg_call([&] { return TextDatumGetCString(SPI_getbinval(tup, rows->tupdesc, 2, &isnull)); });
    inv.messages = text_array(SPI_getbinval(tup, rows->tupdesc, 3, &isnull));
    inv.keys = text_array(SPI_getbinval(tup, rows->tupdesc, 4, &isnull));
    inv.patterns = text_array(SPI_getbinval(tup, rows->tupdesc, 5, &isnull));
    DeliveryResult r = deliver(redis, inv, true, [] { pg_call([] { CHECK_FOR_INTERRUPTS(); }); });
    if (!r.ok) {
      count_app(AppCounter::kDeliveryFailures);
      break;  // keep commit order: later rows wait for this one
    }
    count_app(AppCounter::kMessagesPublished, r.published);
    count_app(AppCounter::kKeysDeleted, r.keys_deleted + r.pattern_keys_deleted);
    count_app(AppCounter::kPatternsFlushed, inv.patterns.size());
    count_app(AppCounter::kDeliveredByWorker);
    done.push_back(id);
  }
  delete_rows(done);
  return true;
}

}  // namespace

extern "C" void ck_outbox_relay_main(Datum arg) {
  relay_db = DatumGetObjectId(arg);
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(relay_db, InvalidOid, 0);
  pgstat_report_appname("pg_cachekit outbox relay");
  register_worker_latch(relay_db, MyProcPid);
  before_shmem_exit(on_exit_unregister, 0);
  // Should this relay die on an error, the launcher waits this long before
  // starting another (no restart loop).
  pause_worker(relay_db, GetCurrentTimestamp() + 5 * USECS_PER_SEC);

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    SPI_connect();
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
