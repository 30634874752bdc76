// The launcher: one background worker per cluster (registered from
// shared_preload_libraries). Every couple of seconds, and when a backend
// wakes it, it reads pg_database and sees to it that every database that
// accepts connections and is not a template has exactly one outbox relay
// (outbox_relay.cpp):
//
//  - Which relay serves which database lives in shared memory (the registry
//    of relay_state.h), not here: a launcher that restarts finds the running
//    relays there. A relay registers itself atomically and exits at once if
//    another one serves its database already, so one started twice (by a
//    launcher that died before the first one registered) goes away.
//  - A relay that finds no pg_cachekit extension in its database does
//    nothing there, exits and pauses the database for a while; a backend of
//    that database that hands it work ends the pause (wake_worker()).
//  - Limits are never silent: a database beyond cachekit.max_databases gets
//    no slot, and one for which no background worker is free
//    (max_worker_processes) no relay; each is warned about once and shown by
//    cachekit.health(), and its commits stay durable in its outbox.
//  - A dropped database is forgotten, with its queue entries and marks.
//
// DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE ... TEMPLATE
// need the database to themselves: a utility hook stops its relay first and
// pauses it (see stop_relay_for()).
#include "pg/boundary.h"
#include "pg/guc.h"
#include "pg/metric_counters.h"
#include "pg/relay_state.h"
#include "pg/worker_log.h"
#include "worker/launcher.h"

extern "C" {
#include "postgres.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_launcher_main(Datum arg);
}

using namespace cachekit::pg;

namespace {

constexpr long kScanMs = 2000;
// A database that could not get a slot or a worker this many scans in a row
// is warned about (once): at start, and while relays of databases without
// the extension come and go, a slot or a worker is often missing for a scan
// or two.
constexpr int kWarnAfterScans = 3;

// What this launcher knows of one database (TopMemoryContext; forgotten
// when the database is dropped). The registry in shared memory is the truth
// about relays; this is the launcher's own bookkeeping.
struct Known {
  Oid dbid;
  BackgroundWorkerHandle *handle;                      // the relay it started, until seen stopped
  BackgroundWorkerHandle *executors[kMaxTaskWorkers];  // likewise, task executors
  TimestampTz no_extension_until;  // evicted from the registry without extension
  int slot_misses;
  int worker_misses;
  int executor_misses;  // scans in a row an executor could not be started
  bool warned_slot;
  bool warned_worker;
};
List *known = NIL;                 // of Known *
MemoryContext scan_cxt = nullptr;  // reset at every scan
ProcessUtility_hook_type prev_utility = nullptr;

Known *known_for(Oid dbid) {
  ListCell *lc;
  foreach (lc, known) {
    auto *k = static_cast<Known *>(lfirst(lc));
    if (k->dbid == dbid) return k;
  }
  MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
  auto *k = static_cast<Known *>(palloc0(sizeof(Known)));
  k->dbid = dbid;
  known = lappend(known, k);
  MemoryContextSwitchTo(old);
  return k;
}

// Frees the handles of relays that stopped, and forgets dropped databases
// (once their relay, if any, is gone).
void tidy_known(const Oid *dbs, int n) {
  ListCell *lc;
  foreach (lc, known) {
    auto *k = static_cast<Known *>(lfirst(lc));
    pid_t pid;
    if (k->handle && GetBackgroundWorkerPid(k->handle, &pid) == BGWH_STOPPED) {
      pfree(k->handle);
      k->handle = nullptr;
    }
    bool running = k->handle != nullptr;
    for (auto &h : k->executors) {
      if (h && GetBackgroundWorkerPid(h, &pid) == BGWH_STOPPED) {
        pfree(h);
        h = nullptr;
      }
      running = running || h != nullptr;
    }
    bool present = false;
    for (int i = 0; i < n && !present; ++i) present = dbs[i] == k->dbid;
    if (present || running) continue;
    pfree(k);
    known = foreach_delete_current(known, lc);
  }
}

void warn_no_slot(Known *k, const char *dbname) {
  if (k->warned_slot || ++k->slot_misses < kWarnAfterScans) return;
  k->warned_slot = true;
  ereport(WARNING,
          (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
           worker_errmsg(LogComponent::kLauncher, "no outbox relay for database \"%s\"", dbname),
           errdetail("All %d relay registry slots (cachekit.max_databases) are taken. Its "
                     "invalidations wait in its outbox until a relay serves it.",
                     settings.max_databases),
           errhint("Raise cachekit.max_databases and restart the server.")));
}

void warn_no_worker(Known *k, const char *dbname) {
  if (k->warned_worker || ++k->worker_misses < kWarnAfterScans) return;
  k->warned_worker = true;
  ereport(WARNING, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                    worker_errmsg(LogComponent::kLauncher,
                                  "could not start an outbox relay for database \"%s\"", dbname),
                    errdetail("No background worker slot is free (max_worker_processes is %d). Its "
                              "invalidations wait in its outbox until a relay can start.",
                              max_worker_processes),
                    errhint("Raise max_worker_processes and restart the server.")));
}

// One design for every per-database worker: started here with the
// database in bgw_main_arg (and its index in bgw_extra), never restarted by
// the postmaster, registered in shared memory by itself (a second one for
// the same place exits at once), trusting only the extension's own objects.
// The relay (outbox_relay.cpp) is kind -1; task executor i is kind i.
BackgroundWorkerHandle *start_worker(Oid dbid, int kind) {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_cachekit");
  if (kind < 0) {
    snprintf(w.bgw_function_name, BGW_MAXLEN, "ck_outbox_relay_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_cachekit outbox relay for database %u", dbid);
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_cachekit outbox relay");
  } else {
    snprintf(w.bgw_function_name, BGW_MAXLEN, "ck_task_executor_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "pg_cachekit task executor %d for database %u", kind, dbid);
    snprintf(w.bgw_type, BGW_MAXLEN, "pg_cachekit task executor");
    memcpy(w.bgw_extra, &kind, sizeof kind);
  }
  w.bgw_main_arg = ObjectIdGetDatum(dbid);
  w.bgw_notify_pid = MyProcPid;
  BackgroundWorkerHandle *handle = nullptr;
  MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
  bool ok = RegisterDynamicBackgroundWorker(&w, &handle);
  MemoryContextSwitchTo(old);
  return ok ? handle : nullptr;
}

// True when the worker was registered (it may still fail to start: then
// its handle says stopped at the next scan and it is tried again).
bool start_relay(Known *k) {
  k->handle = start_worker(k->dbid, -1);
  set_no_worker(k->dbid, k->handle == nullptr);
  return k->handle != nullptr;
}

// The executors a database should have and lacks: only once its relay runs
// and found the extension there. An executor beyond cachekit.task_workers
// (lowered by a reload) exits by itself.
void start_executors(Known *k, const char *dbname) {
  if (settings.task_workers <= 0) return;
  std::vector<int> pids = cpp_entry([&] { return executor_pids(k->dbid); });
  for (int i = 0; i < settings.task_workers && i < kMaxTaskWorkers; ++i) {
    if (pids[i] != 0 || k->executors[i]) continue;
    k->executors[i] = start_worker(k->dbid, i);
    if (!k->executors[i]) {
      if (++k->executor_misses == kWarnAfterScans)
        ereport(WARNING,
                (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
                 worker_errmsg(LogComponent::kLauncher,
                               "could not start task executor %d for database \"%s\"", i, dbname),
                 errdetail("No background worker slot is free (max_worker_processes is %d). "
                           "Its tasks wait until an executor can start.",
                           max_worker_processes),
                 errhint("Raise max_worker_processes (the launcher, plus per database one relay "
                         "and cachekit.task_workers executors) and restart the server.")));
      return;
    }
  }
  k->executor_misses = 0;
}

void scan_databases() {
  MemoryContextReset(scan_cxt);
  // Before reading pg_database: a database created after this point keeps
  // its slot even though this scan does not see it.
  LauncherScan token = launcher_scan_begin();
  const TimestampTz scan_started = GetCurrentTimestamp();
  List *dbs = NIL;
  List *names = NIL;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  Relation rel = table_open(DatabaseRelationId, AccessShareLock);
  TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
  HeapTuple tup;
  while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection))) {
    auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
    if (!db->datallowconn || db->datistemplate) continue;
    MemoryContext old = MemoryContextSwitchTo(scan_cxt);
    dbs = lappend_oid(dbs, db->oid);
    names = lappend(names, pstrdup(NameStr(db->datname)));
    MemoryContextSwitchTo(old);
  }
  table_endscan(scan);
  table_close(rel, AccessShareLock);
  PopActiveSnapshot();
  CommitTransactionCommand();
  // Back in TopMemoryContext (the transaction's contexts are gone).

  int n = list_length(dbs);
  Oid *ids = static_cast<Oid *>(MemoryContextAlloc(scan_cxt, sizeof(Oid) * (n + 1)));
  for (int i = 0; i < n; ++i) ids[i] = list_nth_oid(dbs, i);
  // Dropped databases: their slots, queue entries and marks.
  cpp_entry([&] { forget_databases_except(ids, n, token); });
  forget_metric_counters_except(ids, n, scan_started);
  tidy_known(ids, n);

  TimestampTz now = GetCurrentTimestamp();
  int unserved = 0;
  for (int i = 0; i < n; ++i) {
    const char *name = static_cast<const char *>(list_nth(names, i));
    Known *k = known_for(ids[i]);
    // Checked recently and found without the extension, then its slot went
    // to another database: not again before its pause is over.
    bool take = k->no_extension_until <= now;
    // Evicting allocates (the evicted database's entries are freed).
    SlotView v = cpp_entry([&] { return launcher_claim(ids[i], take); });
    if (v.evicted != InvalidOid) known_for(v.evicted)->no_extension_until = v.evicted_until;
    if (!v.has_slot) {
      if (!take) continue;
      ++unserved;
      warn_no_slot(k, name);
      continue;
    }
    k->slot_misses = 0;
    k->warned_slot = false;
    if (v.pid != 0) {  // running
      k->worker_misses = 0;
      k->warned_worker = false;
      if (v.extension_present && v.executors_paused_until <= now) start_executors(k, name);
      continue;
    }
    if (k->handle) continue;             // started, not registered yet
    if (v.paused_until > now) continue;  // DROP DATABASE etc., or no extension
    if (start_relay(k))
      k->worker_misses = 0;
    else
      warn_no_worker(k, name);
  }
  launcher_scan_end(unserved);
}

void on_launcher_exit(int, Datum) { unregister_launcher_latch(); }

}  // namespace

extern "C" void ck_launcher_main(Datum) {
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  // No database: pg_database is a shared catalog.
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  pgstat_report_appname("pg_cachekit launcher");
  set_log_component(LogComponent::kLauncher);
  // Once per server start (and after a restart of the launcher alone): LOG,
  // so the server log shows when pg_cachekit's workers came up.
  ereport(LOG, (worker_errmsg(LogComponent::kLauncher, "started")));
  scan_cxt =
      AllocSetContextCreate(TopMemoryContext, "pg_cachekit launcher scan", ALLOCSET_DEFAULT_SIZES);
  register_launcher_latch();
  before_shmem_exit(on_launcher_exit, 0);
  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    scan_databases();
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, kScanMs,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
  }
}

namespace cachekit::pg {

void register_launcher() {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  // Terminated (pg_terminate_backend) or failed: back soon; the relays it
  // started keep running meanwhile.
  w.bgw_restart_time = 2;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_cachekit");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "ck_launcher_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_cachekit launcher");
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_cachekit launcher");
  RegisterBackgroundWorker(&w);
}

// Stops the relay of a database that a command needs to itself, and keeps
// the launcher from restarting it for a while.
void stop_relay_for(const char *dbname) {
  Oid dbid = get_database_oid(dbname, true);
  if (dbid == InvalidOid) return;
  // Only for someone the command will let through (the command checks again).
  if (!superuser() && !pg_database_ownercheck(dbid, GetUserId())) return;
  pause_worker(dbid, GetCurrentTimestamp() + 30 * USECS_PER_SEC);
  pause_executors(dbid, GetCurrentTimestamp() + 30 * USECS_PER_SEC);
  int pid = worker_pid(dbid);
  std::vector<int> executors = executor_pids(dbid);
  for (int e : executors)
    if (e != 0) kill(e, SIGTERM);
  if (pid != 0) kill(pid, SIGTERM);
  for (int i = 0; i < 500; ++i) {
    bool any = worker_pid(dbid) != 0;
    for (int e : executor_pids(dbid)) any = any || e != 0;
    if (!any) break;
    CHECK_FOR_INTERRUPTS();
    pg_usleep(10000L);
  }
}

}  // namespace cachekit::pg

namespace {

// CREATE EXTENSION pg_cachekit in this transaction: at commit, the
// database's relay is wanted now, not after the pause its last look (no
// extension yet) left.
bool extension_created = false;

void on_xact(XactEvent event, void *) {
  if (!extension_created) return;
  if (event == XACT_EVENT_COMMIT) wake_worker(MyDatabaseId);
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
      event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
    extension_created = false;
}

void utility_hook(PlannedStmt *pstmt, const char *query, bool readOnlyTree,
                  ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *env,
                  DestReceiver *dest, QueryCompletion *qc) {
  Node *stmt = pstmt->utilityStmt;
  if (IsA(stmt, CreateExtensionStmt) &&
      strcmp(castNode(CreateExtensionStmt, stmt)->extname, "pg_cachekit") == 0)
    extension_created = true;
  if (IsA(stmt, DropdbStmt)) {
    cachekit::pg::stop_relay_for(castNode(DropdbStmt, stmt)->dbname);
  } else if (IsA(stmt, RenameStmt) && castNode(RenameStmt, stmt)->renameType == OBJECT_DATABASE) {
    cachekit::pg::stop_relay_for(castNode(RenameStmt, stmt)->subname);
  } else if (IsA(stmt, CreatedbStmt)) {
    ListCell *lc;
    foreach (lc, castNode(CreatedbStmt, stmt)->options) {
      DefElem *opt = lfirst_node(DefElem, lc);
      if (strcmp(opt->defname, "template") == 0) cachekit::pg::stop_relay_for(defGetString(opt));
    }
  }
  if (prev_utility)
    prev_utility(pstmt, query, readOnlyTree, context, params, env, dest, qc);
  else
    standard_ProcessUtility(pstmt, query, readOnlyTree, context, params, env, dest, qc);
}

}  // namespace

namespace cachekit::pg {

void install_utility_hook() {
  prev_utility = ProcessUtility_hook;
  ProcessUtility_hook = utility_hook;
  RegisterXactCallback(on_xact, nullptr);
}

}  // namespace cachekit::pg
