// The outbox relay: one background worker per database that has the
// extension, started by the launcher (launcher.cpp).
//
// Trust: the relay starts as the bootstrap superuser in a database that
// someone else may own, so before it reads or runs anything there it finds
// pg_cachekit in pg_extension and its tables through pg_depend (never by
// name: see extension_objects.h), and it runs all its SQL as the extension's
// owner inside a security-restricted operation, with search_path pinned to
// pg_catalog. Without the extension it exits at once. What it reads from the
// outbox and the key rules is data: a key pattern that could match every key
// (no literal prefix) is never scanned, only warned about and counted.
//
// Every cycle, in one transaction: a flush of everything if one is owed,
// the queue of invalidations without outbox rows (shared memory), delete the
// outbox rows the committing backends already delivered (their marks), then
// deliver the rows nobody delivered, oldest id first, and delete them. A row
// is left to its backend for a grace period (the command timeout plus one
// second): the backend delivers right after commit, and the relay must not
// race it. The first failure stops the cycle so later rows never overtake an
// earlier one; the next cycle retries (at-least-once: a row whose delivery
// failed half-way is delivered again in full). Between cycles the queue is
// delivered without a transaction, as soon as a backend wakes the relay.
//
// Asked to stop (SIGTERM: shutdown in any mode but immediate,
// pg_terminate_backend, DROP DATABASE), the relay finishes or abandons the
// current step, then delivers its database's queue entries once more or,
// failing that, writes them to the outbox before it exits: nothing committed
// is lost because the relay stopped.
// A second SIGTERM ends it at once (die()).
#include <chrono>
#include <string>
#include <vector>

#include "core/delivery.h"
#include "core/json.h"
#include "core/key_template.h"
#include "pg/boundary.h"
#include "pg/extension_objects.h"
#include "pg/guc.h"
#include "pg/metric_counters.h"
#include "pg/metrics.h"
#include "pg/metrics_board.h"
#include "pg/redis_conn.h"
#include "pg/relay_state.h"
#include "pg/worker_log.h"
#include "worker/task_maintenance.h"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_outbox_relay_main(Datum arg);
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

constexpr int kBatch = 50;
constexpr long kNapMs = 250;
constexpr int64 kNoExtensionPauseUs = 30 * USECS_PER_SEC;

Oid relay_db = InvalidOid;
// A cycle found the extension here: until then the relay does nothing at all
// (not even the queue, which needs no transaction).
bool extension_seen = false;
// Off for the last delivery attempt at shutdown, which must not be cut short
// by the shutdown request that caused it.
bool stop_on_shutdown = true;

void on_exit_unregister(int, Datum) { unregister_relay(relay_db); }

// SIGTERM: the first asks for an orderly stop (see shut_down()); another one
// while that stop is under way is die(), so that nothing the relay waits for
// (a lock, a standby, Redis) can keep the server from stopping or the relay
// from being terminated. What the queue still holds then, the postmaster
// notices at exit.
void on_sigterm(SIGNAL_ARGS) {
  if (ShutdownRequestPending)
    die(postgres_signal_arg);
  else
    SignalHandlerForShutdownRequest(postgres_signal_arg);
}

// A lock the relay waits for longer than this (someone altering or locking
// the outbox, a prepared transaction holding its rows) makes the cycle fail:
// the relay exits with an error and the launcher starts another later. A lock
// wait ends only on die() or cancel, which the orderly stop never sends.
constexpr const char *kLockTimeout = "5s";

// Thrown between delivery steps when the relay is asked to stop.
struct ShutdownRequested {};

void between_steps() {
  pg_call([] { CHECK_FOR_INTERRUPTS(); });
  if (stop_on_shutdown && ShutdownRequestPending) throw ShutdownRequested{};
}

// Since when deliveries to Redis fail (0: they do not): the outage is
// logged once when it starts and once when it ends, not every cycle.
TimestampTz redis_failing_since = 0;

// A delivery's outcome, for the outage log lines. `row`: the outbox row it
// was for (0: the queue or a flush).
void note_delivery(const DeliveryResult &r, int64_t row) {
  if (r.ok && redis_failing_since != 0) {
    long secs;
    int usecs;
    TimestampDifference(redis_failing_since, GetCurrentTimestamp(), &secs, &usecs);
    redis_failing_since = 0;
    worker_log(LOG, LogComponent::kRelay, {}, nullptr,
               "delivering invalidations to Redis again after " + std::to_string(secs) + " s");
  } else if (!r.ok && redis_failing_since == 0) {
    redis_failing_since = GetCurrentTimestamp();
    // The error names the server (host and port), never the password.
    worker_log(LOG, LogComponent::kRelay, row ? outbox_row_subject(row) : std::string(), "08006",
               "cannot deliver invalidations to Redis: " + r.error,
               "Logged once per outage. The relay keeps what it could not deliver (its queue, "
               "the outbox) and retries every cycle.");
  }
}

// deliver(), but a shutdown request abandons it (as a failure, not counted).
DeliveryResult deliver_now(const Invalidation &inv, int64_t row = 0) {
  try {
    DeliveryResult r = deliver(redis_for(RedisTarget::kCache), inv, true, between_steps);
    note_delivery(r, row);
    return r;
  } catch (const ShutdownRequested &) {
    DeliveryResult r;
    r.error = "the relay is shutting down";
    return r;
  }
}

// Never the pattern itself in the line: it is (part of) a key name.
void warn(const std::string &subject, const std::string &message, const char *detail,
          const std::string &hint) {
  worker_log(WARNING, LogComponent::kRelay, subject, "22023", message, detail, hint);
}

constexpr const char *kUnboundedDetail =
    "The relay never deletes by a pattern that does not start with literal text: it could match "
    "every key of the Redis database.";

// Counts a delivery; rejected patterns are warned about by the caller.
void count_delivery(const DeliveryResult &r, size_t patterns) {
  count_app(AppCounter::kMessagesPublished, r.published);
  count_app(AppCounter::kKeysDeleted, r.keys_deleted + r.pattern_keys_deleted);
  count_app(AppCounter::kPatternsFlushed, patterns - r.rejected_patterns.size());
  if (!r.rejected_patterns.empty()) {
    count_app(AppCounter::kPatternsRejected, r.rejected_patterns.size());
    count_app(AppCounter::kDeliveryFailures);
  }
}

// ---- SQL, as the extension owner ----------------------------------------------

// What this transaction may touch; empty outbox: no extension here.
struct Target {
  ExtensionObjects objects;
  std::string outbox;  // quoted, schema-qualified names for SQL text
  std::string key_rules;
};

Target find_target() {
  Target t;
  t.objects = pg_call([] { return find_extension_objects(); });
  if (!OidIsValid(t.objects.outbox)) return Target{};
  pg_call([&] {
    // Locked, then checked again: it cannot be dropped (or swapped) between
    // here and the statements below.
    LockRelationOid(t.objects.outbox, RowExclusiveLock);
    if (OidIsValid(t.objects.key_rules)) LockRelationOid(t.objects.key_rules, AccessShareLock);
  });
  ExtensionObjects again = pg_call([] { return find_extension_objects(); });
  if (again.outbox != t.objects.outbox || again.key_rules != t.objects.key_rules ||
      again.owner != t.objects.owner)
    return Target{};
  t.outbox = pg_call([&] { return qualified_name(t.objects.outbox); });
  if (OidIsValid(t.objects.key_rules))
    t.key_rules = pg_call([&] { return qualified_name(t.objects.key_rules); });
  return t;
}

// Runs f as the extension owner in a security-restricted operation (no SET
// ROLE, no temporary objects, nothing that outlives it).
template <typename F>
auto as_owner(const Target &t, F f) -> decltype(f()) {
  Oid save_user;
  int save_sec;
  GetUserIdAndSecContext(&save_user, &save_sec);
  SetUserIdAndSecContext(t.objects.owner,
                         save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  try {
    auto result = f();
    SetUserIdAndSecContext(save_user, save_sec);
    return result;
  } catch (...) {
    SetUserIdAndSecContext(save_user, save_sec);
    throw;
  }
}

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

void delete_rows(const Target &t, const std::vector<int64_t> &ids) {
  if (ids.empty()) return;
  Datum arg = int8_array(ids);
  std::string sql = "DELETE FROM " + t.outbox + " WHERE id OPERATOR(pg_catalog.=) ANY ($1)";
  pg_call([&] {
    Oid type = INT8ARRAYOID;
    if (SPI_execute_with_args(sql.c_str(), 1, &type, &arg, nullptr, false, 0) != SPI_OK_DELETE)
      elog(ERROR, "could not delete from the pg_cachekit outbox");
  });
}

// Rows of the outbox, decoded. `where` selects them (parameters: $1 grace
// in ms, $2 batch size, $3 ids).
struct Row {
  int64_t id;
  Invalidation inv;
};

// A payload member as a text[]; anything but an array of it reads as empty,
// so a malformed payload cannot make the relay fail forever.
std::string text_list(const char *member) {
  return std::string(
             " ARRAY(SELECT pg_catalog.jsonb_array_elements_text(CASE WHEN "
             "pg_catalog.jsonb_typeof(payload OPERATOR(pg_catalog.->) '") +
         member + "') OPERATOR(pg_catalog.=) 'array' THEN payload OPERATOR(pg_catalog.->) '" +
         member + "' ELSE '[]'::pg_catalog.jsonb END))";
}

std::vector<Row> fetch(const Target &t, const char *where, int grace_ms,
                       const std::vector<int64_t> &ids) {
  Datum ids_arr = int8_array(ids);
  std::string sql =
      "SELECT id, CASE WHEN pg_catalog.jsonb_typeof(payload OPERATOR(pg_catalog.->) 'channel')"
      " OPERATOR(pg_catalog.=) 'string' THEN payload OPERATOR(pg_catalog.->>) 'channel'"
      " ELSE '' END," +
      text_list("messages") + "," + text_list("keys") + "," + text_list("patterns") + " FROM " +
      t.outbox + " WHERE " + where + " ORDER BY id LIMIT $2";
  pg_call([&] {
    Oid types[3] = {INT4OID, INT4OID, INT8ARRAYOID};
    Datum args[3] = {Int32GetDatum(grace_ms), Int32GetDatum(kBatch), ids_arr};
    // Not read-only: a fresh command id, so rows deleted earlier in this
    // transaction are gone.
    int ret = SPI_execute_with_args(sql.c_str(), 3, types, args, nullptr, false, 0);
    if (ret != SPI_OK_SELECT) elog(ERROR, "could not read the pg_cachekit outbox");
  });
  std::vector<Row> rows;
  SPITupleTable *tt = SPI_tuptable;
  for (uint64 i = 0; i < SPI_processed; ++i) {
    bool isnull;
    HeapTuple tup = tt->vals[i];
    Row r;
    r.id = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
    r.inv.channel =
        pg_call([&] { return TextDatumGetCString(SPI_getbinval(tup, tt->tupdesc, 2, &isnull)); });
    r.inv.messages = text_array(SPI_getbinval(tup, tt->tupdesc, 3, &isnull));
    r.inv.keys = text_array(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
    r.inv.patterns = text_array(SPI_getbinval(tup, tt->tupdesc, 5, &isnull));
    rows.push_back(std::move(r));
  }
  return rows;
}

// Delivers rows in order; returns false at the first failure.
bool deliver_rows(std::vector<Row> &rows, bool patterns_only, std::vector<int64_t> &done) {
  for (Row &row : rows) {
    if (patterns_only) {
      row.inv.messages.clear();
      row.inv.keys.clear();
    }
    DeliveryResult r = deliver_now(row.inv, row.id);
    if (!r.ok) {
      if (!ShutdownRequestPending) count_app(AppCounter::kDeliveryFailures);
      return false;
    }
    count_delivery(r, row.inv.patterns.size());
    if (!r.rejected_patterns.empty())
      warn(outbox_row_subject(row.id),
           std::to_string(r.rejected_patterns.size()) +
               " key pattern(s) without a literal prefix not used",
           kUnboundedDetail,
           "Find out who wrote the row: only the extension's owner can write the outbox.");
    if (!patterns_only) count_app(AppCounter::kDeliveredByWorker);
    done.push_back(row.id);
  }
  return true;
}

int64_t outbox_count(const Target &t) {
  std::string sql = "SELECT pg_catalog.count(*) FROM " + t.outbox;
  return pg_call([&] {
    if (SPI_execute(sql.c_str(), false, 1) != SPI_OK_SELECT || SPI_processed != 1)
      elog(ERROR, "could not count the pg_cachekit outbox");
    bool isnull;
    return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
  });
}

// Everything of this database, once: a pub/sub message saying so and every
// key any key rule can produce (SCAN + UNLINK of the rules' patterns, each
// checked: a rule whose pattern has no literal prefix is skipped and warned
// about).
bool flush_everything(const Target &t) {
  std::string db = pg_call([] { return get_database_name(MyDatabaseId); });
  Invalidation inv;
  inv.channel = settings.invalidation_channel ? settings.invalidation_channel : "";
  inv.messages.push_back("{\"database\": " + json_quote(db) +
                         ", \"flush\": true, \"all\": true, \"reason\": "
                         "\"invalidations may have been lost (crash or overflow)\"}");
  if (!t.key_rules.empty()) {
    std::string sql = "SELECT name, template FROM " + t.key_rules + " ORDER BY name";
    pg_call([&] {
      if (SPI_execute(sql.c_str(), false, 0) != SPI_OK_SELECT)
        elog(ERROR, "could not read the pg_cachekit key rules");
    });
    SPITupleTable *tt = SPI_tuptable;
    const uint64 n = SPI_processed;
    for (uint64 i = 0; i < n; ++i) {
      char *name = pg_call([&] { return SPI_getvalue(tt->vals[i], tt->tupdesc, 1); });
      char *text = pg_call([&] { return SPI_getvalue(tt->vals[i], tt->tupdesc, 2); });
      std::string rule = name ? name : "";
      std::string pattern;
      try {
        pattern = KeyTemplate::parse(text ? text : "").pattern();
      } catch (const Error &) {
        // Left empty: refused below like any pattern without a prefix.
      }
      if (pattern_is_bounded(pattern)) {
        inv.patterns.push_back(pattern);
        continue;
      }
      count_app(AppCounter::kPatternsRejected);
      count_app(AppCounter::kDeliveryFailures);
      warn({},
           "key rule " + json_quote(rule) + " of database " + json_quote(db) +
               " has a key pattern without a literal prefix",
           kUnboundedDetail,
           "Drop it with SELECT cachekit.drop_key_rule(" + json_quote(rule) +
               ") and create it again with a template that starts with literal text.");
    }
  }
  DeliveryResult r = deliver_now(inv);
  if (!r.ok) {
    if (!ShutdownRequestPending) count_app(AppCounter::kDeliveryFailures);
    return false;
  }
  count_delivery(r, inv.patterns.size());
  return true;
}

// ---- the queue (shared memory) ----------------------------------------------------

struct Decoded {
  std::vector<uint64_t> seqs;
  std::vector<Invalidation> invs;
};

// This database's queue entries in order. An entry that does not decode is
// dropped and covered by a flush of everything.
Decoded decode_queue() {
  Decoded d;
  for (QueuedInvalidation &q : queue_peek(relay_db)) {
    Invalidation one;
    if (!decode_invalidation(q.payload, &one)) {
      set_flush_needed(relay_db);
      queue_remove(relay_db, q.seq);
      continue;
    }
    d.seqs.push_back(q.seq);
    d.invs.push_back(std::move(one));
  }
  return d;
}

// Invalidations queued in shared memory by the backends: pub/sub messages
// of their commits, and whatever their own delivery after commit could not
// send. In queue (commit) order, each on the channel it was committed with:
// consecutive entries of one channel share a pipeline.
bool deliver_queue() {
  Decoded d = decode_queue();
  if (d.invs.empty()) return true;
  size_t begin = 0;
  for (const DeliveryGroup &g : group_by_channel(d.invs)) {
    DeliveryResult r = deliver_now(g.inv);
    if (!r.ok) {
      if (!ShutdownRequestPending || !stop_on_shutdown) count_app(AppCounter::kDeliveryFailures);
      return false;
    }
    count_delivery(r, g.inv.patterns.size());
    if (!r.rejected_patterns.empty())
      warn({},
           std::to_string(r.rejected_patterns.size()) +
               " key pattern(s) of queued invalidations without a literal prefix not used",
           kUnboundedDetail, "Report this as a bug of pg_cachekit.");
    count_app(AppCounter::kDeliveredByWorker, g.end - begin);
    queue_remove(relay_db, std::vector<uint64_t>(d.seqs.begin() + begin, d.seqs.begin() + g.end));
    begin = g.end;
  }
  return true;
}

// At shutdown, when Redis did not take the queue: its entries become outbox
// rows (after the rows already there: at-least-once, and commit order
// except for what committed while Redis was failing). Returns the entries
// written, to be freed once the transaction committed.
std::vector<uint64_t> persist_queue(const Target &t) {
  Decoded d = decode_queue();
  std::string sql = "INSERT INTO " + t.outbox + " (payload) VALUES ($1::pg_catalog.jsonb)";
  for (const Invalidation &inv : d.invs) {
    std::string payload = invalidation_json(inv);
    pg_call([&] {
      Oid type = TEXTOID;
      Datum arg = CStringGetTextDatum(payload.c_str());
      if (SPI_execute_with_args(sql.c_str(), 1, &type, &arg, nullptr, false, 0) != SPI_OK_INSERT)
        elog(ERROR, "could not write the pg_cachekit outbox");
    });
  }
  count_app(AppCounter::kOutboxWritten, d.invs.size());
  return d.seqs;
}

// ---- cycles ---------------------------------------------------------------------

// One cycle (transaction open, SPI connected, as the owner).
void relay_cycle(const Target &t) {
  const int grace_ms = settings.command_timeout_ms + 1000;

  // Oldest first: a flush covers whatever was lost, then the queue (failed
  // deliveries without outbox rows), then the outbox. The flush counts as
  // done only once it went through.
  FlushRequest flush = flush_request(relay_db);
  if (flush.needed) {
    if (!flush_everything(t)) return;  // Redis still down: again next cycle
    flush_done(relay_db, flush);
  }
  if (!deliver_queue()) return;

  // Rows the backends delivered: delete them, after their key patterns.
  std::vector<int64_t> delivered, pending;
  for (const Delivered &d : take_delivered(relay_db))
    (d.patterns_pending ? pending : delivered).push_back(d.id);
  delete_rows(t, delivered);
  if (!pending.empty()) {
    std::vector<Row> rows = fetch(t, "id OPERATOR(pg_catalog.=) ANY ($3)", grace_ms, pending);
    std::vector<int64_t> done;
    deliver_rows(rows, true, done);
    delete_rows(t, done);
    if (done.size() < rows.size()) return;  // Redis failed: next cycle
  }

  // Rows nobody delivered. Normally only rows past the grace period (their
  // backend failed or died); with a backlog every row, since backends leave
  // theirs to the relay then. Oldest first; stop at the first failure.
  const bool backlogged = backlog(relay_db);
  const char *where = backlogged ? "true"
                                 : "created_at OPERATOR(pg_catalog.<) (pg_catalog.clock_timestamp()"
                                   " OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1"
                                   " OPERATOR(pg_catalog./) 1000.0))";
  for (;;) {
    if (ShutdownRequestPending) return;
    std::vector<Row> rows = fetch(t, where, grace_ms, {});
    std::vector<int64_t> done;
    bool ok = deliver_rows(rows, false, done);
    delete_rows(t, done);
    if (!ok) return;
    if (rows.size() < static_cast<size_t>(kBatch)) break;
  }
  // Caught up: backends may deliver again themselves.
  if (backlogged && outbox_count(t) == 0 && queue_count(relay_db) == 0) clear_backlog(relay_db);
}

// Runs f(target) in a transaction, as the owner; false when this database
// has no pg_cachekit (nothing was run then).
template <typename F>
bool in_transaction(F f) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  PushActiveSnapshot(GetTransactionSnapshot());
  pgstat_report_activity(STATE_RUNNING, "pg_cachekit outbox relay");
  bool present = cpp_entry([&] {
    Target t = find_target();
    if (t.outbox.empty()) return false;
    as_owner(t, [&] {
      f(t);
      return true;
    });
    return true;
  });
  SPI_finish();
  PopActiveSnapshot();
  CommitTransactionCommand();
  pgstat_report_activity(STATE_IDLE, nullptr);
  return present;
}

// Asked to stop: deliver the queue once more, or keep it in the outbox.
// Whatever a failure here leaves in the queue (or a backend queues after
// this) the postmaster notices at exit: the next start flushes everything.
void shut_down() {
  if (!extension_seen || queue_count(relay_db) == 0) return;
  stop_on_shutdown = false;
  if (cpp_entry([] { return deliver_queue(); }) && queue_count(relay_db) == 0) return;
  std::vector<uint64_t> written;
  if (!in_transaction([&](const Target &t) { written = persist_queue(t); })) return;
  // Committed: they are outbox rows now. Backends leave delivery to the
  // relay until one has caught up with them.
  queue_remove(relay_db, written);
  set_backlog(relay_db);
  ereport(LOG, (worker_errmsg(LogComponent::kRelay,
                              "%zu queued invalidations written to the outbox at shutdown",
                              written.size()),
                errdetail("Redis did not take them; the next relay delivers them.")));
}

}  // namespace

extern "C" void ck_outbox_relay_main(Datum arg) {
  relay_db = DatumGetObjectId(arg);
  set_log_component(LogComponent::kRelay);
  // A flag, not die(): the relay must not leave with invalidations only it
  // holds (see shut_down()).
  pqsignal(SIGTERM, on_sigterm);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(relay_db, InvalidOid, 0);
  // Names are resolved in pg_catalog only, whatever search_path the
  // database's owner set for it (ALTER DATABASE ... SET).
  SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);
  // The relay's commits need only local durability, and must not wait for a
  // synchronous standby: that wait ends only on die() or cancel, so a standby
  // that never answers (or synchronous_standby_names naming none that exists)
  // would hang the relay and with it every shutdown. What it commits are
  // deletions of outbox rows already delivered (lost in a failover, a row is
  // delivered again: at-least-once) and, at shutdown, queue entries written to
  // the outbox; a connected standby still receives that WAL before the
  // server stops, as walsenders stream up to the shutdown checkpoint.
  SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
  SetConfigOption("lock_timeout", kLockTimeout, PGC_SUSET, PGC_S_OVERRIDE);
  pgstat_report_appname("pg_cachekit outbox relay");
  // One relay per database: if another serves it, this one was started
  // twice (a launcher restart) and leaves without touching anything.
  if (!register_relay(relay_db)) {
    ereport(DEBUG1,
            (worker_errmsg(LogComponent::kRelay, "another relay serves database %u", relay_db)));
    proc_exit(0);
  }
  before_shmem_exit(on_exit_unregister, 0);
  // Should this relay die on an error, the launcher waits this long before
  // starting another (no restart loop).
  pause_worker(relay_db, GetCurrentTimestamp() + 5 * USECS_PER_SEC);

  TimestampTz last_full_cycle = 0;
  uint64_t metrics_answered = 0;
  std::chrono::steady_clock::time_point metrics_published_at{};
  for (;;) {
    if (ShutdownRequestPending) {
      // DEBUG1: Postgres logs the shutdown itself; a relay stopped alone
      // (DROP DATABASE, pg_terminate_backend) is the launcher's to restart.
      ereport(DEBUG1, (worker_errmsg(LogComponent::kRelay, "stopping")));
      shut_down();
      proc_exit(0);
    }
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    // The hot path: queued messages, woken by the committing backends, with
    // no transaction (shared memory and Redis only). The outbox, the marks
    // and flushes need a transaction: every kNapMs, or at once when needed.
    bool queue_ok = extension_seen && cpp_entry([] { return deliver_queue(); });
    TimestampTz now = GetCurrentTimestamp();
    bool full =
        !queue_ok || backlog(relay_db) || now - last_full_cycle >= kNapMs * USECS_PER_SEC / 1000;
    if (full && !ShutdownRequestPending) {
      last_full_cycle = now;
      int runnable = 0;
      std::string dbname;
      if (!in_transaction([&](const Target &t) {
            if (!extension_seen) {
              char *name = pg_call([] { return get_database_name(MyDatabaseId); });
              dbname = name ? name : "";
            }
            // First: the tasks need no Redis, and a cycle that finds Redis
            // down ends early.
            runnable = task_maintenance(relay_db, t.objects);
            relay_cycle(t);
          })) {
        // No extension in this database: nothing to flush here either. The
        // launcher looks again later, or when a backend here wakes it.
        // DEBUG1: in a database without the extension this happens every
        // pause (30 s), for as long as the server runs.
        ereport(DEBUG1, (worker_errmsg(LogComponent::kRelay, "no pg_cachekit in this database")));
        cpp_entry([] { flush_done(relay_db, flush_request(relay_db)); });
        set_extension_present(relay_db, false);
        pause_worker(relay_db, GetCurrentTimestamp() + kNoExtensionPauseUs, true);
        proc_exit(0);
      }
      if (!extension_seen) {
        set_extension_present(relay_db, true);
        // Counted once the extension is found: relays of databases without
        // it come and go every 30 s and must not take counter entries.
        count_worker_start(relay_db, false);
        // LOG: once per relay (server start, or a relay that had to restart).
        ereport(LOG,
                (worker_errmsg(LogComponent::kRelay, "serving database \"%s\"", dbname.c_str())));
      }
      extension_seen = true;
      if (runnable > 0) wake_executors(relay_db, runnable);
    }
    // A scrape of the HTTP endpoint asked for this database's metrics
    // (answered at most once a second; the endpoint waits only briefly).
    if (extension_seen && !ShutdownRequestPending && metrics_board_enabled()) {
      uint64_t wanted = metrics_request_seq();
      // A monotonic clock: a wall clock stepped back must not stop snapshots.
      auto at = std::chrono::steady_clock::now();
      if (wanted > metrics_answered && at - metrics_published_at >= std::chrono::seconds(1)) {
        metrics_answered = wanted;
        metrics_published_at = at;
        publish_database_metrics(wanted);
      }
    }
    if (ShutdownRequestPending) continue;
    // Background workers report table statistics themselves (autovacuum
    // must hear of the outbox and task rows they delete and update).
    (void)pgstat_report_stat(false);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kNapMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}
