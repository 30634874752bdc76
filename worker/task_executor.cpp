// A task executor: one of cachekit.task_workers background workers per
// database, started by the launcher (launcher.cpp) once the database's relay
// found the extension there. Same design as the relay: started with the
// database in bgw_main_arg and its index in bgw_extra, registered in shared
// memory by itself (a second one for the same index exits at once), and it
// trusts only the extension's own tables (pg_depend), which it reads and
// writes as the extension owner inside a security-restricted operation with
// search_path pinned to pg_catalog.
//
// A task, in transactions:
//
//   claim  The queue of the highest-priority runnable row gets a place
//          reserved in shared memory (per-queue concurrency and rate limit),
//          then that queue's highest-priority row (FOR UPDATE SKIP LOCKED, so
//          two executors never take the same row) becomes `running`, with its
//          attempt counted and this run's claim token.
//   run    The task, as the role that enqueued it (below), then its outcome
//          in the same transaction: `succeeded` with its result (and the
//          chained task enqueued), `failed` with a retry time, or `dead`. So
//          an SQL task's effects and its success commit together.
//
// Under load the run's transaction also claims the executor's next task: one
// commit a task, and each claim is as durable as that commit. An idle
// executor claims in a short transaction of its own, committed
// asynchronously (the run's commit flushes it). A claimed task that has not
// started when the executor stops is put back as it was.
//
// A claim belongs to a live executor: when the executor is gone (killed, the
// server crashed or restarted), the relay finds its running rows by their
// token (live_claims()) and returns them to the queue as a failed attempt.
// At-least-once: a task whose executor died after the task's side effects
// outside the database (HTTP, e-mail) runs again.
//
// Running as the enqueuer: session_user and current_user become the task's
// role (SetSessionAuthorization, then SetUserIdAndSecContext with
// SECURITY_LOCAL_USERID_CHANGE, under which SET ROLE and SET SESSION
// AUTHORIZATION fail, also through set_config()). The role must still exist,
// still be allowed to log in if it could when it enqueued, still be a member
// of cachekit_tasks or cachekit_admin (and cachekit_http / cachekit_email for those kinds) and
// still have EXECUTE on the function; otherwise the task is dead with the
// reason. The role's own settings (ALTER ROLE ... SET) apply. Whatever the
// task changed in the session is undone before the next one: settings, temp
// tables, prepared statements, cursors, LISTEN, advisory locks.
//
// Woken by a latch that enqueue sets at commit; cachekit.task_poll_interval
// is the safety net. SIGTERM (shutdown, pg_terminate_backend, DROP DATABASE)
// cancels the running task, which goes back to the queue as a failed attempt
// to be retried at once, and the executor exits; a second SIGTERM is die().
#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "core/json.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/extension_objects.h"
#include "pg/guc.h"
#include "pg/metric_counters.h"
#include "pg/redis_conn.h"
#include "pg/relay_state.h"
#include "pg/spi_text.h"
#include "pg/task_common.h"
#include "pg/worker_log.h"
#include "worker/cdn_dispatch.h"
#include "worker/task_kinds.h"

extern "C" {
#include "postgres.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

PGDLLEXPORT void ck_task_executor_main(Datum arg);
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

Oid exec_db = InvalidOid;
int exec_index = -1;
int64 claim_token = 0;
pg_atomic_uint64 *cancel_flag = nullptr;
// The task this executor runs (0: none): its SIGINT and SIGTERM handlers
// cancel only while there is one.
volatile int64 running_task = 0;
// Whether that task can be interrupted by a query cancel: SQL functions only.
// An http or email exchange does not look (its timeout bounds it), and the
// CDN dispatch would take the cancel as an error of its own bookkeeping.
volatile sig_atomic_t running_interruptible = 0;

void on_exit_unregister(int, Datum) { unregister_executor(exec_db, exec_index); }

void cancel_running_task_now() {
  InterruptPending = true;
  QueryCancelPending = true;
}

void on_sigterm(SIGNAL_ARGS) {
  int save_errno = errno;
  if (ShutdownRequestPending) die(postgres_signal_arg);
  ShutdownRequestPending = true;
  if (running_task != 0) cancel_running_task_now();
  SetLatch(MyLatch);
  errno = save_errno;
}

// SIGINT cancels the running task: from the task's own timeout (the
// statement_timeout and lock_timeout handlers signal their own process) or
// from cancel_task(), which names the task it means: a signal that lands
// after that task ended does not cancel the next one.
void on_sigint(SIGNAL_ARGS) {
  int save_errno = errno;
  int64 task = running_task;
  uint64 wanted = cancel_flag ? pg_atomic_read_u64(cancel_flag) : 0;
  if (task != 0 && running_interruptible &&
      (wanted == 0 || wanted == static_cast<uint64>(task) ||
       get_timeout_indicator(STATEMENT_TIMEOUT, false) ||
       get_timeout_indicator(LOCK_TIMEOUT, false)))
    cancel_running_task_now();
  SetLatch(MyLatch);
  errno = save_errno;
}

// ---- the extension's tables and the executor's own SQL -------------------------------

struct Tables {
  ExtensionObjects objects;
  std::string tasks, queues;  // quoted, schema-qualified
};

// Found through the catalogs once, and again after any invalidation of
// either table (dropped, replaced, altered) or every few seconds (a new
// extension owner): the lookups cost more than a no-op task.
std::optional<Tables> known_tables;
bool tables_stale = true;
TimestampTz tables_found_at = 0;

void on_relcache_inval(Datum, Oid relid) {
  if (!known_tables || relid == InvalidOid || relid == known_tables->objects.tasks ||
      relid == known_tables->objects.queues)
    tables_stale = true;
}

std::optional<Tables> find_tables() {
  if (known_tables && !tables_stale &&
      GetCurrentTimestamp() - tables_found_at < 5 * USECS_PER_SEC) {
    // Locked by OID first: that takes in pending invalidations, and the
    // table cannot go away until this transaction ends.
    pg_call([&] { LockRelationOid(known_tables->objects.tasks, RowExclusiveLock); });
    if (!tables_stale) return known_tables;
  }
  tables_stale = false;
  Tables t;
  t.objects = pg_call([] { return find_extension_objects(); });
  if (!OidIsValid(t.objects.tasks) || !OidIsValid(t.objects.queues)) {
    known_tables.reset();
    return std::nullopt;
  }
  pg_call([&] { LockRelationOid(t.objects.tasks, RowExclusiveLock); });
  ExtensionObjects again = pg_call([] { return find_extension_objects(); });
  if (again.tasks != t.objects.tasks || again.queues != t.objects.queues ||
      again.owner != t.objects.owner) {
    known_tables.reset();
    return std::nullopt;
  }
  t.tasks = pg_call([&] { return qualified_name(t.objects.tasks); });
  t.queues = pg_call([&] { return qualified_name(t.objects.queues); });
  known_tables = t;
  tables_found_at = GetCurrentTimestamp();
  return known_tables;
}

// Runs f as the extension owner in a security-restricted operation, names
// resolved in pg_catalog only. An error ends the transaction (and, in this
// worker, the worker), which restores both.
template <typename F>
auto as_owner(const Tables &t, F f) -> decltype(f()) {
  Oid save_user;
  int save_sec;
  GetUserIdAndSecContext(&save_user, &save_sec);
  int nest = pg_call([] { return NewGUCNestLevel(); });
  pg_call([] {
    (void)set_config_option("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION,
                            GUC_ACTION_SAVE, true, 0, false);
    // The claim must walk the runnable index in its order (and stop at the
    // first row it can lock), whatever stale statistics of a table that
    // churns this fast suggest: a bitmap scan plus sort reads every row.
    (void)set_config_option("enable_bitmapscan", "off", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE,
                            true, 0, false);
    (void)set_config_option("enable_sort", "off", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true,
                            0, false);
  });
  SetUserIdAndSecContext(t.objects.owner,
                         save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    SetUserIdAndSecContext(save_user, save_sec);
    pg_call([&] { AtEOXact_GUC(true, nest); });
  } else {
    auto result = f();
    SetUserIdAndSecContext(save_user, save_sec);
    pg_call([&] { AtEOXact_GUC(true, nest); });
    return result;
  }
}

using Row = SpiRow;

std::vector<Row> sql(const std::string &text, const std::vector<Oid> &types,
                     const std::vector<std::optional<std::string>> &args) {
  return spi_text_query(text, types, args);
}

// ---- queues ------------------------------------------------------------------------

struct Queue {
  std::string name;
  int concurrency;
  double rate;  // per second; 0: none
};
std::vector<Queue> queues;  // not paused
uint32 queues_seen = UINT32_MAX;
TimestampTz queues_loaded_at = 0;

void load_queues(const Tables &t) {
  uint32 version = queues_version(exec_db);
  TimestampTz now = GetCurrentTimestamp();
  // The version catches changes at their commit; the age, a change whose
  // commit bumped nothing (a relay-less moment, a restore).
  if (version == queues_seen && now - queues_loaded_at < 10 * USECS_PER_SEC) return;
  std::vector<Row> rows = sql("SELECT name, concurrency, coalesce(rate_limit_per_s, 0) FROM " +
                                  t.queues + " WHERE NOT paused",
                              {}, {});
  queues.clear();
  for (const Row &r : rows) queues.push_back(Queue{*r[0], std::stoi(*r[1]), std::stod(*r[2])});
  queues_seen = version;
  queues_loaded_at = now;
}

const Queue *queue_named(const std::string &name) {
  for (const Queue &q : queues)
    if (q.name == name) return &q;
  return nullptr;
}

// ---- claiming ------------------------------------------------------------------------

struct Claimed {
  int64 id = 0;
  std::string queue, kind, task, args, next;
  Oid func = InvalidOid;
  Oid role = InvalidOid;
  bool role_could_login = false;
  int attempts = 0;
  int max_attempts = 1;
  int64 timeout_ms = 0;
  double wait_s = -1;  // first attempts: due -> started (cachekit_task_wait_seconds)
};

enum class ClaimResult { kClaimed, kNothing, kNoExtension };

// Nothing to do until this time (TimestampTz), at the latest.
TimestampTz next_due = 0;

ClaimResult claim(const Tables &t, Claimed *out) {
  load_queues(t);
  TimestampTz now = GetCurrentTimestamp();
  std::vector<std::string> eligible;
  TimestampTz rate_wait = 0;
  for (const Queue &q : queues) {
    int64_t retry_at = 0;
    if (!queue_has_room(exec_db, q.name.c_str(), q.concurrency, q.rate, now, &retry_at)) {
      if (retry_at > 0 && (rate_wait == 0 || retry_at < rate_wait)) rate_wait = retry_at;
      continue;
    }
    eligible.push_back(q.name);
  }
  auto as_array = [](const std::vector<std::string> &names) {
    std::string a = "{";
    for (const std::string &n : names) {
      if (a.size() > 1) a += ",";
      a += json_quote(n);  // "..." quoting is also array-literal quoting
    }
    return a + "}";
  };
  // The queue's place is taken before its row is chosen: two executors that
  // chose rows first (SKIP LOCKED) and took places after could start a
  // lower-priority task of a one-at-a-time queue while the higher one was
  // locked by the other executor, which then found the place gone. A queue
  // whose place is gone, or whose runnable rows are all locked (by another
  // executor, or by an application's transaction), is left out and the
  // choice made again among the others.
  const std::string runnable = " c WHERE c.state IN ('queued', 'failed') AND c.run_at <= now() ";
  const std::string order = " ORDER BY c.priority DESC, c.run_at, c.id LIMIT 1";
  std::vector<std::string> due_queues = eligible;
  std::vector<Row> rows;
  while (!eligible.empty()) {
    std::vector<Row> candidate =
        sql("SELECT c.queue FROM " + t.tasks + runnable + "AND c.queue = ANY ($1)" + order,
            {TEXTARRAYOID}, {as_array(eligible)});
    if (candidate.empty()) break;
    const std::string queue_name = *candidate[0][0];
    eligible.erase(std::remove(eligible.begin(), eligible.end(), queue_name), eligible.end());
    const Queue *q = queue_named(queue_name);
    RateTaken rate;
    if (!q || !reserve_queue(exec_db, exec_index, queue_name.c_str(), q->concurrency, q->rate,
                             GetCurrentTimestamp(), &rate))
      continue;
    rows = sql(
        "UPDATE " + t.tasks +
            " t SET state = 'running', attempts = t.attempts + 1, started_at = clock_timestamp(), "
            "finished_at = NULL, claim = $2 "
            "WHERE t.id = (SELECT c.id FROM " +
            t.tasks + runnable + "AND c.queue = $1" + order +
            " FOR UPDATE SKIP LOCKED) "
            "RETURNING t.id, t.queue, t.kind, t.task, t.func, t.args, t.next, t.role, "
            "t.role_could_login, t.attempts, t.max_attempts, "
            "(extract(epoch FROM coalesce(t.timeout, make_interval(secs => $3))) * 1000)::int8, "
            "CASE WHEN t.attempts = 1 THEN extract(epoch FROM t.started_at - "
            "greatest(t.created_at, t.run_at))::float8 END",
        {TEXTOID, INT8OID, FLOAT8OID},
        {queue_name, std::to_string(claim_token), std::to_string(settings.task_default_timeout_s)});
    if (!rows.empty()) break;
    // Its runnable rows are locked: the place and the rate step go back.
    release_queue(exec_db, exec_index, &rate);
  }
  if (rows.empty()) {
    std::vector<Row> due =
        sql("SELECT (extract(epoch FROM min(run_at) - now()) * 1000)::int8 FROM " + t.tasks +
                " WHERE state IN ('queued', 'failed') AND queue = ANY ($1)",
            {TEXTARRAYOID}, {as_array(due_queues)});
    next_due = 0;
    if (!due.empty() && due[0][0])
      next_due = now + std::max<int64>(0, std::stoll(*due[0][0])) * 1000;
    if (rate_wait != 0 && (next_due == 0 || rate_wait < next_due)) next_due = rate_wait;
    // Rows due now but locked or in full queues: look again at the next
    // poll, not at once (a lock can be held for long).
    if (next_due != 0 && next_due <= now) next_due = 0;
    return ClaimResult::kNothing;
  }
  const Row &r = rows[0];
  Claimed c;
  c.id = std::stoll(*r[0]);
  c.queue = *r[1];
  c.kind = *r[2];
  c.task = *r[3];
  c.func = r[4] ? static_cast<Oid>(std::stoul(*r[4])) : InvalidOid;
  c.args = *r[5];
  c.next = r[6].value_or("");
  c.role = static_cast<Oid>(std::stoul(*r[7]));
  c.role_could_login = *r[8] == "t";
  c.attempts = std::stoi(*r[9]);
  c.max_attempts = std::stoi(*r[10]);
  c.timeout_ms = std::stoll(*r[11]);
  c.wait_s = r[12] ? std::max(0.0, strtod(r[12]->c_str(), nullptr)) : -1;
  set_reserved_task(exec_db, exec_index, c.id);
  *out = std::move(c);
  return ClaimResult::kClaimed;
}

// ---- running ----------------------------------------------------------------------------

struct Outcome {
  enum Kind { kSucceeded, kFailed, kDead, kCancelled } kind = kFailed;
  std::string result;  // jsonb text; empty: NULL
  std::string sqlstate, message, detail, hint;
  double retry_after_s = -1;  // HTTP Retry-After
  bool retry_now = false;     // interrupted by a shutdown: back to the queue at once
  bool wake = false;          // it queued a task that is due now (cdn_dispatch's successor)
};

Outcome error_outcome(const char *sqlstate, const std::string &message,
                      const std::string &detail = {}, const std::string &hint = {}) {
  Outcome o;
  o.kind = Outcome::kFailed;
  o.sqlstate = sqlstate;
  o.message = message;
  o.detail = detail;
  o.hint = hint;
  return o;
}

Outcome dead_outcome(const char *sqlstate, const std::string &message,
                     const std::string &detail = {}) {
  Outcome o = error_outcome(sqlstate, message, detail);
  o.kind = Outcome::kDead;
  return o;
}

bool role_member(Oid role, const char *group) {
  Oid g = pg_call([&] { return get_role_oid(group, true); });
  return OidIsValid(g) && pg_call([&] { return has_privs_of_role(role, g); });
}

// What the role must still have for the task to run (checked again at run
// time: a revoke between enqueue and run counts). Empty: may run.
std::optional<Outcome> role_problem(const Claimed &c) {
  struct RoleInfo {
    bool exists;
    bool can_login;
    char name[NAMEDATALEN];
  } info{};
  pg_call([&] {
    HeapTuple tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(c.role));
    if (!HeapTupleIsValid(tup)) return;
    auto *a = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup));
    info.exists = true;
    info.can_login = a->rolcanlogin;
    strlcpy(info.name, NameStr(a->rolname), sizeof info.name);
    ReleaseSysCache(tup);
  });
  if (!info.exists)
    return dead_outcome("42704", "the role that enqueued the task no longer exists",
                        "Role " + std::to_string(c.role) + " was dropped.");
  std::string who = info.name;
  if (c.role_could_login && !info.can_login)
    return dead_outcome("28000", "role \"" + who + "\" may no longer log in",
                        "The task runs as the role that enqueued it, which has lost LOGIN.");
  if (!role_member(c.role, "cachekit_tasks") && !role_member(c.role, "cachekit_admin"))
    return dead_outcome(sqlstate::kInsufficientPrivilege,
                        "role \"" + who + "\" may no longer run tasks",
                        "It is no longer a member of cachekit_tasks (or cachekit_admin).");
  if (c.kind == "http" && !role_member(c.role, "cachekit_http"))
    return dead_outcome(sqlstate::kInsufficientPrivilege,
                        "role \"" + who + "\" may no longer run http tasks",
                        "It is no longer a member of cachekit_http.");
  if (c.kind == "email" && !role_member(c.role, "cachekit_email"))
    return dead_outcome(sqlstate::kInsufficientPrivilege,
                        "role \"" + who + "\" may no longer run email tasks",
                        "It is no longer a member of cachekit_email.");
  if (c.kind == "function") {
    TaskFunction f = pg_call([&] { return describe_task_function(c.func); });
    if (!f.ok) return dead_outcome(sqlstate::kWrongObjectType, f.problem, f.detail ? f.detail : "");
    if (pg_call([&] { return pg_proc_aclcheck(c.func, c.role, ACL_EXECUTE); }) != ACLCHECK_OK)
      return dead_outcome(sqlstate::kInsufficientPrivilege,
                          "permission denied for function " + std::string(f.signature),
                          "Role \"" + who + "\" lost EXECUTE on it after enqueuing the task.");
  }
  return std::nullopt;
}

// The role's own settings (ALTER ROLE ... [IN DATABASE ...] SET), as a login
// would get them, at the current GUC nest level.
void apply_role_settings(Oid role) {
  Relation rel = table_open(DbRoleSettingRelationId, AccessShareLock);
  Snapshot snap = RegisterSnapshot(GetCatalogSnapshot(DbRoleSettingRelationId));
  ApplySetting(snap, MyDatabaseId, role, rel, PGC_S_DATABASE_USER);
  ApplySetting(snap, InvalidOid, role, rel, PGC_S_USER);
  UnregisterSnapshot(snap);
  table_close(rel, AccessShareLock);
}

// Calls the function inside a subtransaction as `role`. Plain C: nothing in
// this frame has a destructor, so the PG_TRY longjmp skips nothing. Returns
// the error (copied into `keep`), or NULL with *result set (jsonb text in
// `keep`, or NULL for void / SQL NULL).
ErrorData *call_function_as(Oid func, Oid role, const char *args, int64 timeout_ms,
                            MemoryContext keep, char **result) {
  MemoryContext cxt = CurrentMemoryContext;
  ResourceOwner owner = CurrentResourceOwner;
  Oid save_user;
  int save_sec;
  ErrorData *volatile edata = nullptr;
  *result = nullptr;
  GetUserIdAndSecContext(&save_user, &save_sec);
  BeginInternalSubTransaction(nullptr);
  MemoryContextSwitchTo(cxt);
  PG_TRY();
  {
    int nest = NewGUCNestLevel();
    SetSessionAuthorization(role, superuser_arg(role));
    SetUserIdAndSecContext(role, SECURITY_LOCAL_USERID_CHANGE);
    apply_role_settings(role);
    if (timeout_ms > 0)
      enable_timeout_after(STATEMENT_TIMEOUT,
                           static_cast<int>(std::min<int64>(timeout_ms, INT_MAX)));
    PushActiveSnapshot(GetTransactionSnapshot());
    Datum arg = DirectFunctionCall1(jsonb_in, CStringGetDatum(args));
    LOCAL_FCINFO(fcinfo, 1);
    FmgrInfo flinfo;
    fmgr_info(func, &flinfo);
    InitFunctionCallInfoData(*fcinfo, &flinfo, 1, InvalidOid, nullptr, nullptr);
    fcinfo->args[0].value = arg;
    fcinfo->args[0].isnull = false;
    Datum value = FunctionCallInvoke(fcinfo);
    if (!fcinfo->isnull && get_func_rettype(func) == JSONBOID) {
      char *text = JsonbToCString(nullptr, &DatumGetJsonbP(value)->root, -1);
      *result = MemoryContextStrdup(keep, text);
    }
    PopActiveSnapshot();
    if (timeout_ms > 0) disable_timeout(STATEMENT_TIMEOUT, false);
    // What the task SET goes away with its nest level; its role with these.
    AtEOXact_GUC(false, nest);
    SetUserIdAndSecContext(save_user, save_sec);
    SetSessionAuthorization(BOOTSTRAP_SUPERUSERID, true);
    ReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
  }
  PG_CATCH();
  {
    if (timeout_ms > 0) disable_timeout(STATEMENT_TIMEOUT, false);
    MemoryContextSwitchTo(keep);
    edata = CopyErrorData();
    FlushErrorState();
    // Restores the user, security context and settings of before the
    // subtransaction; the session user is not transactional.
    RollbackAndReleaseCurrentSubTransaction();
    MemoryContextSwitchTo(cxt);
    CurrentResourceOwner = owner;
    SetSessionAuthorization(BOOTSTRAP_SUPERUSERID, true);
  }
  PG_END_TRY();
  return edata;
}

// What a task may have left in this session, gone before the next task:
// DISCARD ALL, less what only a client session has.
void reset_session() {
  PortalHashTableDeleteAll();
  DropAllPreparedStatements();
  Async_UnlistenAll();
  LockReleaseAll(USER_LOCKMETHOD, true);
  ResetTempTableNamespace();
  ResetSequenceCaches();
}

Outcome run_function(const Claimed &c, MemoryContext keep) {
  char *result = nullptr;
  ErrorData *e = pg_call([&] {
    return call_function_as(c.func, c.role, c.args.c_str(), c.timeout_ms, keep, &result);
  });
  pg_call([] { reset_session(); });
  if (e == nullptr) {
    Outcome o;
    o.kind = Outcome::kSucceeded;
    if (result) o.result = result;
    return o;
  }
  char code[6];
  const char *s = unpack_sql_state(e->sqlerrcode);
  memcpy(code, s, 6);
  Outcome o = error_outcome(code, e->message ? e->message : "", e->detail ? e->detail : "",
                            e->hint ? e->hint : "");
  return o;
}

Outcome run_task(const Claimed &c, MemoryContext keep) {
  if (std::optional<Outcome> problem = role_problem(c)) return *problem;
  if (c.kind == "function") return run_function(c, keep);
  TaskKindResult r;
  try {
    Datum args = jsonb_datum(c.args);
    if (c.kind == "http")
      r = run_http_task(args, c.timeout_ms);
    else if (c.kind == "email")
      r = run_email_task(args, c.timeout_ms);
    else if (c.kind == "cdn_dispatch" && known_tables)
      r = as_owner(*known_tables, [&] { return run_cdn_dispatch(c.role); });
    else
      return dead_outcome(sqlstate::kFeatureNotSupported, c.kind + " tasks are not available yet");
  } catch (const PgError &) {
    throw;  // a Postgres error in the glue: the transaction is gone
  } catch (const Error &e) {
    return error_outcome(e.sqlstate(), e.what(), e.detail(), e.hint());
  }
  Outcome o;
  o.result = r.result_json;
  o.wake = r.wake_after_commit;
  if (r.ok) {
    o.kind = Outcome::kSucceeded;
  } else {
    o = error_outcome(r.sqlstate.c_str(), r.message, r.detail);
    o.result = r.result_json;
    o.retry_after_s = r.retry_after_s;
    if (!r.retryable) o.kind = Outcome::kDead;
  }
  return o;
}

// ---- recording the outcome -----------------------------------------------------------------

std::string error_json(const Claimed &c, const Outcome &o) {
  std::string j =
      "{\"sqlstate\":" + json_quote(o.sqlstate) + ",\"message\":" + json_quote(o.message);
  if (!o.detail.empty()) j += ",\"detail\":" + json_quote(o.detail);
  if (!o.hint.empty()) j += ",\"hint\":" + json_quote(o.hint);
  j += ",\"attempt\":" + std::to_string(c.attempts) + "}";
  return j;
}

// An attempt that did not succeed, for the operator: the task's id, name
// and queue, the attempt, what happens next and the error message as stored
// in last_error (never the task's arguments). Successes are not logged:
// cachekit.tasks and the metrics have them.
void log_outcome(const Claimed &c, const Outcome &o, const std::string &state, double delay) {
  std::string attempt =
      "attempt " + std::to_string(c.attempts) + " of " + std::to_string(c.max_attempts);
  std::string what = " (" + c.task + " on queue " + json_quote(c.queue) + ")";
  std::string text;
  if (state == "failed") {
    char in[32];
    snprintf(in, sizeof in, "%.1f", delay);
    text = attempt + " failed" + what + ", retry in " + in + " s: " + o.message;
  } else if (state == "dead") {
    text = attempt + " failed" + what + ", the task is dead: " + o.message;
  } else if (state == "cancelled") {
    text = "cancelled while running" + what + ", " + attempt;
  } else {
    return;
  }
  worker_log(LOG, LogComponent::kExecutor, task_subject(c.id),
             state == "cancelled" ? nullptr : o.sqlstate.c_str(), text);
}

// One statement records the outcome; a cancel_task() that came while the
// task ran wins (the caller then rolls back an SQL task's effects). Returns
// the state recorded ("" when the row was no longer this executor's).
std::string record(const Tables &t, const Claimed &c, Outcome o, bool *chained,
                   std::string *chained_queue) {
  *chained = false;
  if (o.kind == Outcome::kFailed && c.attempts >= c.max_attempts) o.kind = Outcome::kDead;
  const char *state = o.kind == Outcome::kSucceeded   ? "succeeded"
                      : o.kind == Outcome::kDead      ? "dead"
                      : o.kind == Outcome::kCancelled ? "cancelled"
                                                      : "failed";
  double delay = 0;
  if (o.kind == Outcome::kFailed && !o.retry_now) {
    BackoffPolicy policy;
    policy.max_seconds = settings.task_max_backoff_s;
    delay = retry_delay_seconds(policy, c.attempts, static_cast<double>(random()) / 2147483648.0);
    if (o.retry_after_s >= 0)
      delay = std::min<double>(std::max(delay, o.retry_after_s), settings.task_max_backoff_s);
  }
  std::optional<std::string> result =
      o.result.empty() ? std::nullopt : std::optional<std::string>(o.result);
  std::optional<std::string> error =
      o.kind == Outcome::kSucceeded ? std::nullopt : std::optional<std::string>(error_json(c, o));
  // The retry delay counts from the failure: now() is when the attempt
  // started, and a task that ran longer than its delay would retry at once.
  std::vector<Row> rows = sql(
      "UPDATE " + t.tasks +
          " SET state = CASE WHEN cancel_requested THEN 'cancelled' ELSE $3 END, "
          "finished_at = CASE WHEN cancel_requested OR $3 <> 'failed' THEN clock_timestamp() END, "
          "run_at = CASE WHEN $3 = 'failed' THEN clock_timestamp() + make_interval(secs => $4) "
          "ELSE run_at END, "
          "result = $5, last_error = $6, claim = NULL "
          "WHERE id = $1 AND claim = $2 AND state = 'running' RETURNING state, next",
      {INT8OID, INT8OID, TEXTOID, FLOAT8OID, JSONBOID, JSONBOID},
      {std::to_string(c.id), std::to_string(claim_token), std::string(state), std::to_string(delay),
       result, error});
  if (rows.empty()) return "";
  std::string recorded = *rows[0][0];
  log_outcome(c, o, recorded, delay);
  if (recorded == "succeeded" && rows[0][1]) {
    // The chained task, in this transaction: it exists exactly when this
    // one's success is committed.
    std::vector<Row> q =
        sql("SELECT n->>'queue', cachekit._enqueue(n->>'queue', n->>'kind', n->>'task', "
            "(n->>'func')::oid, "
            "coalesce(n->'args', '{}'), NULL, coalesce((n->>'priority')::int4, 0), "
            "coalesce((n->>'max_attempts')::int4, 25), NULL, (n->>'timeout')::interval, n->'then', "
            "$2, $3, NULL, $4) FROM (SELECT $1::jsonb AS n) s",
            {JSONBOID, OIDOID, INT8OID, BOOLOID},
            {*rows[0][1], std::to_string(c.role), std::to_string(c.id),
             std::string(c.role_could_login ? "t" : "f")});
    *chained = true;
    if (!q.empty() && q[0][0]) *chained_queue = *q[0][0];
  }
  return recorded;
}

// ---- one task -------------------------------------------------------------------------------

MemoryContext task_cxt = nullptr;

// Starts a transaction with SPI and a snapshot; `f` runs in cpp_entry.
template <typename F>
void transaction(F f) {
  SetCurrentStatementStartTimestamp();
  StartTransactionCommand();
  if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  PushActiveSnapshot(GetTransactionSnapshot());
  cpp_entry([&] { f(); });
}

void end_transaction(bool commit) {
  SPI_finish();
  PopActiveSnapshot();
  if (commit)
    CommitTransactionCommand();
  else
    AbortCurrentTransaction();
}

void store_result_in_redis(int64 id, const std::string &result) {
  if (settings.result_ttl_s <= 0 || result.empty()) return;
  // Never fails the task: the table has the result.
  try {
    run(RedisTarget::kCache,
        {"SET", task_result_key(exec_db, id), result, "EX", std::to_string(settings.result_ttl_s)});
  } catch (const std::exception &) {
  }
}

// The next task, claimed in the transaction that recorded the last one.
std::optional<Claimed> claimed_next;

// A claim in a transaction of its own (the executor was idle).
ClaimResult claim_alone(Claimed *c) {
  ClaimResult got = ClaimResult::kNothing;
  transaction([&] {
    std::optional<Tables> tables = find_tables();
    if (!tables) {
      got = ClaimResult::kNoExtension;
      return;
    }
    got = as_owner(*tables, [&] { return claim(*tables, c); });
  });
  if (got != ClaimResult::kClaimed) {
    end_transaction(true);
    if (got == ClaimResult::kNoExtension) proc_exit(0);
    return got;
  }
  // The claim needs no flush of its own: the run's commit flushes the WAL up
  // to and past it. Lost in a crash before that, the task is simply still
  // queued.
  int save_sync = synchronous_commit;
  synchronous_commit = SYNCHRONOUS_COMMIT_OFF;
  end_transaction(true);
  synchronous_commit = save_sync;
  return got;
}

// Runs a claimed task and records its outcome; in the same transaction, the
// next task is claimed (one commit a task when there is work, and that
// claim is durable with it).
bool run_claimed(const Claimed &c) {
  const uint64 me = static_cast<uint64>(c.id);
  running_interruptible = c.kind == "function";
  running_task = c.id;
  // cancel_for names the task a cancel_task() meant. This task: it came
  // between the claim and here, while on_sigint ignored signals (no task
  // ran); the task is not started, its attempt is recorded as cancelled.
  // Another task: stale (the run that consumed it cleared it, see below,
  // unless the executor restarted), dropped.
  bool cancelled_early = false;
  if (cancel_flag) {
    uint64 wanted = pg_atomic_read_u64(cancel_flag);
    if (wanted != 0 && wanted != me) pg_atomic_compare_exchange_u64(cancel_flag, &wanted, 0);
    cancelled_early = pg_atomic_read_u64(cancel_flag) == me;
  }
  pgstat_report_activity(STATE_RUNNING,
                         ("pg_cachekit task " + std::to_string(c.id) + ": " + c.task).c_str());
  Outcome o;
  bool chained = false;
  std::string recorded, chained_queue;
  double run_s = -1;
  transaction([&] {
    auto started = std::chrono::steady_clock::now();
    o = cancelled_early ? error_outcome("57014", "canceling statement due to user request",
                                        "cancel_task() came before the task started.")
                        : run_task(c, task_cxt);
    run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    running_task = 0;
    running_interruptible = 0;
    // A cancel or timeout the task did not consume (one that came as its
    // function returned, or before a task that was not started) was for the
    // task: its outcome is recorded below (cancelled, when cancel_task asked),
    // not thrown at the recording, which would lose the attempt and run the
    // task again; nor may a stale timeout indicator make on_sigint take the
    // next task's cancel for its own.
    QueryCancelPending = false;
    (void)get_timeout_indicator(STATEMENT_TIMEOUT, true);
    (void)get_timeout_indicator(LOCK_TIMEOUT, true);
    if (ShutdownRequestPending && o.kind == Outcome::kFailed && o.sqlstate == "57014") {
      o.message = "the task executor was stopped while the task ran";
      o.detail = "Server shutdown or pg_terminate_backend(); the task is tried again at once.";
      o.sqlstate = "57P01";
      o.retry_now = true;
    }
    std::optional<Tables> t = find_tables();
    if (!t) return;
    recorded = as_owner(*t, [&] { return record(*t, c, o, &chained, &chained_queue); });
    // A cancel of this run is spent (recorded above: cancel_task() holds the
    // row until it commits, and signals none once the row is not running).
    // Left, it would cancel this task again after a retry_task().
    if (cancel_flag) {
      uint64 spent = me;
      pg_atomic_compare_exchange_u64(cancel_flag, &spent, 0);
    }
    if (recorded.empty() || (recorded == "cancelled" && c.kind == "function")) return;
    if (ShutdownRequestPending || exec_index >= settings.task_workers) return;
    // This task's place in its queue is free now; the next one takes one.
    release_queue(exec_db, exec_index);
    Claimed next;
    if (as_owner(*t, [&] { return claim(*t, &next); }) == ClaimResult::kClaimed)
      claimed_next = std::move(next);
  });
  running_task = 0;
  if (recorded.empty()) {
    // The row is no longer this run's (it cannot be, short of a bug in the
    // reclaim): nothing of the task may commit without its outcome.
    claimed_next.reset();
    end_transaction(false);
    release_queue(exec_db, exec_index);
    pgstat_report_activity(STATE_IDLE, nullptr);
    return true;
  }
  if (recorded == "cancelled" && c.kind == "function") {
    // cancel_task() while it ran: its effects go, only the state stays.
    end_transaction(false);
    chained = false;
    transaction([&] {
      std::optional<Tables> t = find_tables();
      if (!t) return;
      as_owner(*t, [&] {
        sql("UPDATE " + t->tasks +
                " SET state = 'cancelled', finished_at = clock_timestamp(), claim = NULL "
                "WHERE id = $1 AND state = 'running'",
            {INT8OID}, {std::to_string(c.id)});
      });
    });
  }
  end_transaction(true);
  count_task_outcome(exec_db, c.queue, recorded, run_s, c.wait_s);
  if (chained) count_tasks_enqueued(exec_db, chained_queue, 1);
  if (!claimed_next) release_queue(exec_db, exec_index);
  // A chained task, or one given back by a shutdown of this executor, is for
  // another executor now.
  if (chained || o.retry_now || o.wake) wake_executors(exec_db, 1);
  if (o.kind == Outcome::kSucceeded) store_result_in_redis(c.id, o.result);
  pgstat_report_activity(STATE_IDLE, nullptr);
  return true;
}

// Leaving with a claimed task that has not started: put it back as it was
// (not an attempt), for another executor.
void give_back_claimed_next() {
  if (!claimed_next) return;
  Claimed c = std::move(*claimed_next);
  claimed_next.reset();
  transaction([&] {
    std::optional<Tables> t = find_tables();
    if (!t) return;
    as_owner(*t, [&] {
      sql("UPDATE " + t->tasks +
              " SET state = CASE WHEN attempts = 1 THEN 'queued' ELSE 'failed' END, "
              "attempts = attempts - 1, claim = NULL WHERE id = $1 AND claim = $2",
          {INT8OID, INT8OID}, {std::to_string(c.id), std::to_string(claim_token)});
    });
  });
  end_transaction(true);
  release_queue(exec_db, exec_index);
  wake_executors(exec_db, 1);
}

// True when a task ran (loop again at once); false: wait for work.
bool run_one() {
  MemoryContextReset(task_cxt);
  Claimed c;
  ClaimResult got = ClaimResult::kNothing;
  if (claimed_next) {
    c = std::move(*claimed_next);
    claimed_next.reset();
    got = ClaimResult::kClaimed;
  } else {
    got = claim_alone(&c);
    if (got != ClaimResult::kClaimed) return false;
  }
  return run_claimed(c);
}

}  // namespace

extern "C" void ck_task_executor_main(Datum arg) {
  exec_db = DatumGetObjectId(arg);
  memcpy(&exec_index, MyBgworkerEntry->bgw_extra, sizeof exec_index);
  set_log_component(LogComponent::kExecutor);
  pqsignal(SIGTERM, on_sigterm);
  pqsignal(SIGHUP, SignalHandlerForConfigReload);
  pqsignal(SIGINT, on_sigint);
  BackgroundWorkerUnblockSignals();
  BackgroundWorkerInitializeConnectionByOid(exec_db, InvalidOid, 0);
  pgstat_report_appname("pg_cachekit task executor");
  claim_token = register_executor(exec_db, exec_index);
  if (claim_token == 0) proc_exit(0);
  // Started just before DROP DATABASE (or RENAME) stopped the others: not
  // registered yet, it was not asked to stop; it must not stay either.
  if (executors_paused(exec_db)) {
    unregister_executor(exec_db, exec_index);
    proc_exit(0);
  }
  before_shmem_exit(on_exit_unregister, 0);
  count_worker_start(exec_db, true);
  cancel_flag = executor_cancel_flag(exec_db, exec_index);
  // DEBUG1, start and stop: cachekit.task_workers of them per database; the
  // relay's LOG line says the database is served.
  ereport(DEBUG1, (worker_errmsg(LogComponent::kExecutor, "executor %d started", exec_index)));
  task_cxt = AllocSetContextCreate(TopMemoryContext, "pg_cachekit task", ALLOCSET_DEFAULT_SIZES);
  CacheRegisterRelcacheCallback(on_relcache_inval, 0);

  for (;;) {
    CHECK_FOR_INTERRUPTS();
    if (ConfigReloadPending) {
      ConfigReloadPending = false;
      ProcessConfigFile(PGC_SIGHUP);
    }
    if (ShutdownRequestPending || exec_index >= settings.task_workers ||
        executors_paused(exec_db)) {
      give_back_claimed_next();
      ereport(DEBUG1, (worker_errmsg(LogComponent::kExecutor, "executor %d stopping", exec_index)));
      proc_exit(0);
    }
    if (run_one()) {
      (void)pgstat_report_stat(false);  // at most once a second, by itself
      continue;
    }
    long wait_ms = settings.task_poll_interval_ms;
    if (next_due != 0) {
      long until = static_cast<long>((next_due - GetCurrentTimestamp()) / 1000) + 1;
      wait_ms = std::max(1L, std::min(wait_ms, until));
    }
    // Background workers report their table statistics themselves: without
    // this, autovacuum never hears of the dead rows every task leaves.
    pgstat_report_stat(true);
    executor_idle(exec_db, exec_index, true);
    (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, wait_ms,
                    PG_WAIT_EXTENSION);
    ResetLatch(MyLatch);
    executor_idle(exec_db, exec_index, false);
  }
}
