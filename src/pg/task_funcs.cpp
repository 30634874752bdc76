// The SQL functions of the task queue that must see the calling role:
// enqueue(), cancel_task(), retry_task(), task_result(), schedule(),
// unschedule(). None is SECURITY DEFINER, so GetUserId() is the caller,
// through whatever chain of functions. Each checks what the caller may do and
// resolves the task (a function name with the caller's search_path and
// EXECUTE privilege) once; then it calls an internal SECURITY DEFINER function
// (cachekit._enqueue and friends, granted to nobody) through fmgr, which
// checks no EXECUTE privilege, passing the caller's role. So no granted
// function reaches the task tables without these checks, and a task names a
// function by OID: a later CREATE FUNCTION elsewhere cannot redirect it.
#include <algorithm>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "core/cron.h"
#include "core/json.h"
#include "pg/boundary.h"
#include "pg/datum.h"
#include "pg/guc.h"
#include "pg/internal_call.h"
#include "pg/pg_zone.h"
#include "pg/redis_conn.h"
#include "pg/relay_state.h"
#include "pg/sql_function.h"
#include "pg/metric_counters.h"
#include "pg/task_common.h"

extern "C" {
#include "access/xact.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "pgtime.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

using namespace cachekit;
using namespace cachekit::pg;

namespace {

// ---- at commit -------------------------------------------------------------------

int enqueued_in_xact = 0;
bool queues_changed_in_xact = false;
std::vector<int64_t> *cancels_in_xact = nullptr;  // TopMemoryContext-free: new/delete
// Enqueues of this transaction by queue, counted in cachekit_tasks_enqueued
// at commit; those of a subtransaction that rolls back are dropped.
struct PendingEnqueue {
  SubTransactionId subxact;
  std::string queue;
  int n;
};
std::vector<PendingEnqueue> *pending_enqueues = nullptr;

// The current subtransaction's entries are always the last ones (its
// children have ended), so merging and the callbacks look only at the tail:
// the list stays as long as the distinct (subtransaction, queue) pairs.
void note_pending_enqueue(const std::string &queue, int n) {
  if (!pending_enqueues) pending_enqueues = new std::vector<PendingEnqueue>();
  const SubTransactionId sub = GetCurrentSubTransactionId();
  for (auto it = pending_enqueues->rbegin(); it != pending_enqueues->rend() && it->subxact == sub;
       ++it)
    if (it->queue == queue) {
      it->n += n;
      return;
    }
  pending_enqueues->push_back({sub, queue, n});
}

void on_subxact(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
                void *) {
  if (!pending_enqueues) return;
  auto &v = *pending_enqueues;
  if (event == SUBXACT_EVENT_ABORT_SUB) {
    while (!v.empty() && v.back().subxact == mySubid) v.pop_back();
  } else if (event == SUBXACT_EVENT_COMMIT_SUB) {
    // Into the parent's entries (the run just before), merged by queue; in
    // place, without allocating: this runs inside Postgres' commit.
    size_t first = v.size();
    while (first > 0 && v[first - 1].subxact == mySubid) --first;
    size_t parent = first;
    while (parent > 0 && v[parent - 1].subxact == parentSubid) --parent;
    size_t end = first;
    for (size_t i = first; i < v.size(); ++i) {
      size_t j = parent;
      while (j < end && v[j].queue != v[i].queue) ++j;
      if (j < end) {
        v[j].n += v[i].n;
      } else {
        if (end != i) v[end] = std::move(v[i]);
        v[end].subxact = parentSubid;
        ++end;
      }
    }
    v.resize(end);
  }
}

void on_xact(XactEvent event, void *) {
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
    // Nothing here may fail: the transaction is committed.
    if (queues_changed_in_xact) bump_queues_version(MyDatabaseId);
    if (enqueued_in_xact > 0) wake_executors(MyDatabaseId, enqueued_in_xact);
    if (cancels_in_xact)
      for (int64_t id : *cancels_in_xact) cancel_running_task(MyDatabaseId, id);
    if (pending_enqueues)
      for (const PendingEnqueue &p : *pending_enqueues)
        count_tasks_enqueued(MyDatabaseId, p.queue, p.n);
  }
  if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
      event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
      event == XACT_EVENT_PREPARE) {
    // A prepared transaction's tasks are found by the executors' poll after
    // COMMIT PREPARED (cachekit.task_poll_interval).
    enqueued_in_xact = 0;
    queues_changed_in_xact = false;
    if (cancels_in_xact) cancels_in_xact->clear();
    // A prepared transaction's enqueues are not counted (its COMMIT
    // PREPARED runs in another session).
    if (pending_enqueues) std::vector<PendingEnqueue>().swap(*pending_enqueues);
  }
}

// ---- resolving a task --------------------------------------------------------------

Oid role_oid(const char *name) {
  return pg_call([&] { return get_role_oid(name, true); });
}

bool member_of(const char *group) {
  Oid g = role_oid(group);
  return OidIsValid(g) && pg_call([&] { return has_privs_of_role(GetUserId(), g); });
}

struct ResolvedTask {
  std::string kind;  // function | http | email
  std::string task;  // regprocedure text, or the kind
  Oid func = InvalidOid;
};

ResolvedTask resolve_task(const std::string &task) {
  ResolvedTask r;
  if (task == "http" || task == "email") {
    const char *role = task == "http" ? "cachekit_http" : "cachekit_email";
    if (!member_of(role))
      throw Error(sqlstate::kInsufficientPrivilege,
                  "permission denied to enqueue " + task + " tasks",
                  "Only members of " + std::string(role) + " may enqueue them.",
                  "GRANT " + std::string(role) + " TO the role that enqueues.");
    r.kind = r.task = task;
    return r;
  }
  if (task == "cdn_purge" || task == "cdn_dispatch")
    throw Error(sqlstate::kFeatureNotSupported, "CDN purges are not enqueued as tasks",
                "Purges are queued by cachekit.cdn_purge(), which also queues their dispatch.",
                "Call cachekit.cdn_purge(paths).");
  r.kind = "function";
  r.func = pg_call([&] {
    List *names = stringToQualifiedNameList(task.c_str());
    Oid types[1] = {JSONBOID};
    return LookupFuncName(names, 1, types, true);
  });
  if (!OidIsValid(r.func))
    throw Error("42883", "function " + task + "(jsonb) does not exist",
                "A task names an SQL function that takes one jsonb argument, or one of the kinds "
                "http and email.",
                "Create the function, or schema-qualify its name.");
  TaskFunction f = pg_call([&] { return describe_task_function(r.func); });
  if (!f.ok) throw Error(sqlstate::kWrongObjectType, f.problem, f.detail);
  if (pg_call([&] { return pg_proc_aclcheck(r.func, GetUserId(), ACL_EXECUTE); }) != ACLCHECK_OK)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied for function " + std::string(f.signature));
  r.task = f.signature;
  return r;
}

bool can_login(Oid role) {
  return pg_call([&] {
    HeapTuple tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
    if (!HeapTupleIsValid(tup)) return false;
    bool login = reinterpret_cast<Form_pg_authid>(GETSTRUCT(tup))->rolcanlogin;
    ReleaseSysCache(tup);
    return login;
  });
}

std::string arg_text(FunctionCallInfo fcinfo, int i, const char *what) {
  if (PG_ARGISNULL(i))
    throw Error(sqlstate::kNullValueNotAllowed, std::string(what) + " must not be NULL");
  return pg_call([&] { return std::string(TextDatumGetCString(PG_GETARG_DATUM(i))); });
}

// The chained task (enqueue's `then`): {"task": ..., "queue": ..., "args":
// ..., "priority": ..., "max_attempts": ..., "timeout": ..., "then": ...},
// resolved now as the caller, stored with the function's OID.
Value resolve_chain(Datum then, const std::string &queue, int depth);

Value enqueue_row(const std::string &queue, const ResolvedTask &t, Datum args, Value run_at,
                  int priority, int max_attempts, Value unique_key, Value timeout, Value next) {
  if (max_attempts < 1 || max_attempts > 1000)
    throw Error(sqlstate::kInvalidParameterValue, "max_attempts must be between 1 and 1000");
  if (!timeout.null && pg_call([&] {
        Interval *iv = DatumGetIntervalP(timeout.d);
        return iv->month * (int64)(30 * USECS_PER_DAY) + iv->day * USECS_PER_DAY + iv->time <= 0;
      }))
    throw Error(sqlstate::kInvalidParameterValue, "timeout must be positive");
  const std::vector<Oid> types = {TEXTOID,        TEXTOID, TEXTOID, OIDOID,  JSONBOID,
                                  TIMESTAMPTZOID, INT4OID, INT4OID, TEXTOID, INTERVALOID,
                                  JSONBOID,       OIDOID,  INT8OID, TEXTOID, BOOLOID};
  std::vector<Value> v = {text_val(queue),
                          text_val(t.kind),
                          text_val(t.task),
                          OidIsValid(t.func) ? val(ObjectIdGetDatum(t.func)) : Value{},
                          val(args),
                          run_at,
                          val(Int32GetDatum(priority)),
                          val(Int32GetDatum(max_attempts)),
                          unique_key,
                          timeout,
                          next,
                          val(ObjectIdGetDatum(GetUserId())),
                          Value{},
                          Value{},
                          val(BoolGetDatum(can_login(GetUserId())))};
  return call_internal("_enqueue", types, v);
}

void check_args_object(Datum args) {
  bool object = pg_call([&] { return JB_ROOT_IS_OBJECT(DatumGetJsonbP(args)); });
  if (!object)
    throw Error(sqlstate::kInvalidParameterValue, "task arguments must be a jsonb object");
}

Value resolve_chain(Datum then, const std::string &parent_queue, int depth) {
  if (depth > 10)
    throw Error(sqlstate::kProgramLimitExceeded, "chained tasks are nested too deeply",
                "At most 10 tasks follow one another through \"then\".");
  check_args_object(then);
  auto member = [&](const char *key) -> std::optional<std::string> {
    return pg_call([&]() -> std::optional<std::string> {
      std::optional<std::string> out;
      Jsonb *jb = DatumGetJsonbP(then);
      JsonbValue k;
      k.type = jbvString;
      k.val.string.val = const_cast<char *>(key);
      k.val.string.len = static_cast<int>(strlen(key));
      JsonbValue *v = findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
      if (v == nullptr || v->type == jbvNull) return out;
      if (v->type == jbvString) {
        out = std::string(v->val.string.val, v->val.string.len);
      } else if (v->type == jbvNumeric) {
        out = std::string(
            DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric))));
      } else {
        // Objects (args, then) as their text.
        Jsonb *sub = JsonbValueToJsonb(v);
        out = std::string(JsonbToCString(nullptr, &sub->root, VARSIZE(sub)));
      }
      return out;
    });
  };
  std::optional<std::string> task = member("task");
  if (!task)
    throw Error(sqlstate::kInvalidParameterValue, "a chained task needs \"task\"",
                "\"then\" is an object like {\"task\": \"app.next_step\", \"args\": {}}.");
  ResolvedTask r = resolve_task(*task);
  std::string json = "{\"kind\":" + json_quote(r.kind) + ",\"task\":" + json_quote(r.task);
  if (OidIsValid(r.func)) json += ",\"func\":" + std::to_string(r.func);
  // The parent's queue unless it names another.
  std::string queue = member("queue").value_or(parent_queue);
  json += ",\"queue\":" + json_quote(queue);
  std::optional<std::string> args = member("args");
  if (args) {
    Datum a = jsonb_datum(*args);
    check_args_object(a);
    json += ",\"args\":" + *args;
  }
  for (const char *key : {"priority", "max_attempts"})
    if (auto v = member(key))
      json += ",\"" + std::string(key) + "\":" + std::to_string(std::stoi(*v));
  if (auto v = member("timeout")) json += ",\"timeout\":" + json_quote(*v);
  if (auto v = member("then")) {
    Value inner = resolve_chain(jsonb_datum(*v), queue, depth + 1);
    json += ",\"then\":" + pg_call([&] {
              return std::string(JsonbToCString(nullptr, &DatumGetJsonbP(inner.d)->root,
                                                VARSIZE(DatumGetJsonbP(inner.d))));
            });
  }
  json += "}";
  return val(jsonb_datum(json));
}

// The task's owner and state, read as the extension owner.
struct TaskRow {
  bool found = false;
  Oid role = InvalidOid;
  std::string state;
  Value result;
};

TaskRow task_row(int64_t id) {
  TaskRow row;
  Value v = call_internal("_task_result_row", {INT8OID}, {val(Int64GetDatum(id))});
  if (v.null) return row;
  pg_call([&] {
    HeapTupleHeader tup = DatumGetHeapTupleHeader(v.d);
    bool isnull;
    Datum role = GetAttributeByNum(tup, 1, &isnull);
    if (isnull) return;
    row.found = true;
    row.role = DatumGetObjectId(role);
    Datum state = GetAttributeByNum(tup, 2, &isnull);
    row.state = isnull ? "" : TextDatumGetCString(state);
    Datum result = GetAttributeByNum(tup, 3, &isnull);
    row.result = isnull ? Value{} : val(result);
  });
  return row;
}

TaskRow managed_task(int64_t id) {
  TaskRow row = task_row(id);
  if (!row.found) throw Error("42704", "task " + std::to_string(id) + " does not exist");
  bool may = member_of("cachekit_admin") || pg_call([&] {
               return SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(row.role)) &&
                      has_privs_of_role(GetUserId(), row.role);
             });
  if (!may)
    throw Error(sqlstate::kInsufficientPrivilege,
                "permission denied for task " + std::to_string(id),
                "Only the role that enqueued it and members of cachekit_admin may act on it.");
  return row;
}

}  // namespace

namespace cachekit::pg {

void note_enqueued_in_xact(const std::string &queue, int n) {
  enqueued_in_xact += n;
  note_pending_enqueue(queue, n);
}

void install_task_callbacks() {
  RegisterXactCallback(on_xact, nullptr);
  RegisterSubXactCallback(on_subxact, nullptr);
}

}  // namespace cachekit::pg

CK_SQL_FUNCTION(ck_enqueue) {
  return cpp_entry([&]() -> Datum {
    std::string queue = arg_text(fcinfo, 0, "queue");
    std::string task = arg_text(fcinfo, 1, "task");
    Datum args = PG_ARGISNULL(2) ? jsonb_datum("{}") : PG_GETARG_DATUM(2);
    check_args_object(args);
    ResolvedTask r = resolve_task(task);
    validate_builtin_args(r.kind, args);
    Value run_at = PG_ARGISNULL(3) ? Value{} : val(PG_GETARG_DATUM(3));
    int priority = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
    int max_attempts = PG_ARGISNULL(5) ? 25 : PG_GETARG_INT32(5);
    Value unique_key = PG_ARGISNULL(6) ? Value{} : val(PG_GETARG_DATUM(6));
    Value timeout = PG_ARGISNULL(7) ? Value{} : val(PG_GETARG_DATUM(7));
    Value next = PG_ARGISNULL(8) ? Value{} : resolve_chain(PG_GETARG_DATUM(8), queue, 1);
    Value id =
        enqueue_row(queue, r, args, run_at, priority, max_attempts, unique_key, timeout, next);
    ++enqueued_in_xact;
    note_pending_enqueue(queue, 1);
    return id.d;
  });
}

CK_SQL_FUNCTION(ck_cancel_task) {
  return cpp_entry([&]() -> Datum {
    int64_t id = PG_GETARG_INT64(0);
    managed_task(id);
    Value v = call_internal("_change_task", {INT8OID, TEXTOID},
                            {val(Int64GetDatum(id)), text_val("cancel")});
    std::string outcome = pg_call([&] { return std::string(TextDatumGetCString(v.d)); });
    if (outcome == "cancelling") {
      if (!cancels_in_xact) cancels_in_xact = new std::vector<int64_t>();
      cancels_in_xact->push_back(id);
    }
    return v.d;
  });
}

CK_SQL_FUNCTION(ck_retry_task) {
  return cpp_entry([&]() -> Datum {
    int64_t id = PG_GETARG_INT64(0);
    managed_task(id);
    Value v = call_internal("_change_task", {INT8OID, TEXTOID},
                            {val(Int64GetDatum(id)), text_val("retry")});
    ++enqueued_in_xact;
    return v.d;
  });
}

CK_SQL_FUNCTION(ck_task_result) {
  return cpp_entry([&]() -> Datum {
    if (PG_ARGISNULL(0)) PG_RETURN_NULL();
    int64_t id = PG_GETARG_INT64(0);
    TaskRow row = managed_task(id);
    if (settings.result_ttl_s > 0) {
      std::optional<RedisReply> reply =
          run(RedisTarget::kCache, {"GET", task_result_key(MyDatabaseId, id)});
      if (reply && reply->type == RedisReply::Type::kString) return jsonb_datum(reply->str);
    }
    if (row.result.null) PG_RETURN_NULL();
    return row.result.d;
  });
}

CK_SQL_FUNCTION(ck_schedule) {
  return cpp_entry([&]() -> Datum {
    std::string name = arg_text(fcinfo, 0, "name");
    std::string cron = arg_text(fcinfo, 1, "cron");
    std::string queue = arg_text(fcinfo, 2, "queue");
    std::string task = arg_text(fcinfo, 3, "task");
    Datum args = PG_ARGISNULL(4) ? jsonb_datum("{}") : PG_GETARG_DATUM(4);
    std::string zone_name = PG_ARGISNULL(5) ? "UTC" : arg_text(fcinfo, 5, "time_zone");
    std::string overlap = PG_ARGISNULL(6) ? "skip" : arg_text(fcinfo, 6, "overlap");
    if (overlap != "skip" && overlap != "queue")
      throw Error(sqlstate::kInvalidParameterValue, "overlap must be skip or queue",
                  "skip: a run that comes while the last one is queued or running is skipped; "
                  "queue: it starts once the last one is done.");
    check_args_object(args);
    CronSchedule schedule = CronSchedule::parse(cron);
    PgZone zone = PgZone::named(zone_name);
    ResolvedTask r = resolve_task(task);
    validate_builtin_args(r.kind, args);
    int64_t now = timestamptz_to_unix(GetCurrentTimestamp());
    int64_t next = schedule.next_after(now, zone, now);
    Value next_run = next < 0 ? Value{} : val(TimestampTzGetDatum(unix_to_timestamptz(next)));
    call_internal(
        "_put_schedule",
        {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, OIDOID, JSONBOID, TEXTOID, OIDOID,
         TIMESTAMPTZOID},
        {text_val(name), text_val(cron), text_val(zone.name()), text_val(queue), text_val(r.kind),
         text_val(r.task), OidIsValid(r.func) ? val(ObjectIdGetDatum(r.func)) : Value{}, val(args),
         text_val(overlap), val(ObjectIdGetDatum(GetUserId())), next_run});
    if (next_run.null) PG_RETURN_NULL();
    return next_run.d;
  });
}

CK_SQL_FUNCTION(ck_unschedule) {
  return cpp_entry([&]() -> Datum {
    std::string name = arg_text(fcinfo, 0, "name");
    return call_internal("_drop_schedule", {TEXTOID, OIDOID},
                         {text_val(name), val(ObjectIdGetDatum(GetUserId()))})
        .d;
  });
}

// AFTER ... FOR EACH STATEMENT on cachekit._queues: executors re-read the
// queues after this transaction commits.
CK_SQL_FUNCTION(ck_queues_changed) {
  return cpp_entry([&]() -> Datum {
    queues_changed_in_xact = true;
    return PointerGetDatum(nullptr);
  });
}
