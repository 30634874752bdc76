// What the task SQL functions (task_funcs.cpp), the executors and the
// scheduler (worker/) agree on.
#pragma once

#include <cstdint>
#include <string>

extern "C" {
#include "postgres.h"
}

namespace cachekit::pg {

// Whether a function can be a task: one jsonb argument, returns jsonb or
// void, a plain function (not a procedure, aggregate or set-returning).
// Postgres-style (may ereport; strings palloc'd): call through pg_call.
struct TaskFunction {
  bool ok;
  const char *problem;    // errmsg when not ok
  const char *detail;     // errdetail when not ok
  const char *signature;  // regprocedure text, e.g. app.send_report(jsonb)
  Oid result_type;
};
TaskFunction describe_task_function(Oid fn);

// Shape checks of a built-in kind's arguments at enqueue, so a malformed task
// fails in the caller's transaction rather than later in an executor.
void validate_builtin_args(const std::string &kind, Datum args);

// Where cachekit.result_ttl keeps a task's result in Redis.
std::string task_result_key(Oid dbid, int64_t id);

void install_task_callbacks();

// A task was queued in this transaction (outside enqueue(), e.g. a CDN
// purge's dispatch task): the executors are woken when it commits.
void note_enqueued_in_xact(const std::string &queue, int n);

}  // namespace cachekit::pg
