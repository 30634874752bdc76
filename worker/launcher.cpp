// The launcher: one background worker per cluster (registered from
// shared_preload_libraries), which starts an outbox relay (outbox_relay.cpp)
// for every database that accepts connections and is not a template, and
// notices new databases. A relay that finds no extension in its database
// exits and marks the database paused for a few seconds; the launcher looks
// again after that. DROP DATABASE, ALTER DATABASE ... RENAME and CREATE
// DATABASE ... TEMPLATE need the database to themselves: a utility hook stops
// its relay first and pauses it (see stop_relay_for()).
#include "pg/app_events.h"
#include "pg/boundary.h"
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
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_launcher_main(Datum arg);
}

namespace {

constexpr int kMaxDatabases = 64;
constexpr long kScanMs = 2000;

struct Relay {
  Oid dbid;
  BackgroundWorkerHandle *handle;
};

Relay relays[kMaxDatabases];
ProcessUtility_hook_type prev_utility = nullptr;

void start_relay(Oid dbid, Relay *slot) {
  BackgroundWorker w;
  memset(&w, 0, sizeof w);
  w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
  w.bgw_start_time = BgWorkerStart_RecoveryFinished;
  w.bgw_restart_time = BGW_NEVER_RESTART;
  snprintf(w.bgw_library_name, BGW_MAXLEN, "pg_cachekit");
  snprintf(w.bgw_function_name, BGW_MAXLEN, "ck_outbox_relay_main");
  snprintf(w.bgw_name, BGW_MAXLEN, "pg_cachekit outbox relay for database %u", dbid);
  snprintf(w.bgw_type, BGW_MAXLEN, "pg_cachekit outbox relay");
  w.bgw_main_arg = ObjectIdGetDatum(dbid);
  w.bgw_notify_pid = MyProcPid;
  BackgroundWorkerHandle *handle = nullptr;
  if (RegisterDynamicBackgroundWorker(&w, &handle)) *slot = Relay{dbid, handle};
}

bool relay_running(const Relay &r) {
  pid_t pid;
  return r.handle != nullptr && GetBackgroundWorkerPid(r.handle, &pid) != BGWH_STOPPED;
}

void scan_databases() {
  Oid dbs[kMaxDatabases];
  int n = 0;
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  PushActiveSnapshot(GetTransactionSnapshot());
  Relation rel = table_open(DatabaseRelationId, AccessShareLock);
  TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
  HeapTuple tup;
  while (n < kMaxDatabases && HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection))) {
    auto *db = reinterpret_cast<Form_pg_database>(GETSTRUCT(tup));
    if (db->datallowconn && !db->datistemplate) dbs[n++] = db->oid;
  }
  table_endscan(scan);
  table_close(rel, AccessShareLock);
  PopActiveSnapshot();
  CommitTransactionCommand();

  // Forget dropped databases, here and in shared memory.
  for (auto &r : relays) {
    bool exists = false;
    for (int i = 0; i < n; ++i) exists = exists || r.dbid == dbs[i];
    if (r.dbid != InvalidOid && !exists && !relay_running(r)) r = Relay{InvalidOid, nullptr};
  }
  cachekit::pg::forget_workers_except(dbs, n);

  TimestampTz now = GetCurrentTimestamp();
  for (int i = 0; i < n; ++i) {
    Relay *slot = nullptr;
    Relay *free_slot = nullptr;
    for (auto &r : relays) {
      if (r.dbid == dbs[i]) slot = &r;
      if (r.dbid == InvalidOid && !free_slot) free_slot = &r;
    }
    if (slot && relay_running(*slot)) continue;
    if (cachekit::pg::worker_paused_until(dbs[i]) > now) continue;
    if (!slot) slot = free_slot;
    if (slot) start_relay(dbs[i], slot);
  }
}

}  // namespace

extern "C" void ck_launcher_main(Datum) {
  pqsignal(SIGTERM, die);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  BackgroundWorkerUnblockSignals();
  // No database: pg_database is a shared catalog.
  BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
  pgstat_report_appname("pg_cachekit launcher");
  for (auto &r : relays) r = Relay{InvalidOid, nullptr};
  cachekit::pg::register_launcher_latch();
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
  w.bgw_restart_time = 10;
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
  int pid = worker_pid(dbid);
  if (pid == 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 500 && worker_pid(dbid) == pid; ++i) {
    CHECK_FOR_INTERRUPTS();
    pg_usleep(10000L);
  }
}

}  // namespace cachekit::pg

namespace {

void utility_hook(PlannedStmt *pstmt, const char *query, bool readOnlyTree,
                  ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *env,
                  DestReceiver *dest, QueryCompletion *qc) {
  Node *stmt = pstmt->utilityStmt;
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
}

}  // namespace cachekit::pg
