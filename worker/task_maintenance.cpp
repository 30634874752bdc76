// The task queue's housekeeping, done by the database's relay in its cycle
// (every 250 ms, in its transaction, as the extension owner in a
// security-restricted operation): tasks of executors that are gone go back
// to the queue, and due schedules enqueue their tasks.
//
// Schedules: a due schedule enqueues its task as the role that created it
// (the executor checks that role's privileges again when the task runs).
// overlap = skip: while the task of its last run is still queued, running or
// waiting for a retry, a due run is skipped (counted). overlap = queue: the
// run waits (pending) and starts as soon as the last one is done; runs
// missed meanwhile are one run, not a burst. Runs missed while the server
// was down are likewise one run at start. Scheduled tasks get max_attempts
// 1: the schedule's next run is their retry.
#include <optional>
#include <string>
#include <vector>

#include "core/cron.h"
#include "core/json.h"
#include "pg/boundary.h"
#include "pg/extension_objects.h"
#include "pg/metric_counters.h"
#include "pg/pg_zone.h"
#include "pg/relay_state.h"
#include "pg/spi_text.h"
#include "pg/subtransaction.h"
#include "pg/task_common.h"
#include "pg/worker_log.h"
#include "worker/task_maintenance.h"

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
}

namespace cachekit::pg {

namespace {

using Row = SpiRow;

std::vector<Row> query(const std::string &text, const std::vector<Oid> &types,
                       const std::vector<std::optional<std::string>> &args) {
  return spi_text_query(text, types, args);
}

std::string int8_array(const std::vector<int64_t> &ids) {
  std::string a = "{";
  for (size_t i = 0; i < ids.size(); ++i) a += (i ? "," : "") + std::to_string(ids[i]);
  return a + "}";
}

// Running tasks whose executor is gone: a failed attempt (dead when it was
// the last), to be retried at once.
int reclaim(Oid dbid, const std::string &tasks) {
  LiveClaims c = live_claims(dbid);
  const int64_t incarnation = static_cast<int64_t>(c.incarnation & 0x7fffffffu);
  std::vector<Row> rows = query(
      "UPDATE " + tasks +
          " t SET state = CASE WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'failed' END, "
          "run_at = now(), claim = NULL, "
          "finished_at = CASE WHEN t.attempts >= t.max_attempts THEN clock_timestamp() END, "
          "last_error = jsonb_build_object('sqlstate', '57P01', 'message', "
          "'the task executor stopped while running the task', 'detail', "
          "'The executor exited or the server restarted before the task finished.', "
          "'attempt', t.attempts) "
          "WHERE t.state = 'running' AND t.claim IS NOT NULL AND ((t.claim >> 32) <> $1 OR "
          "((t.claim & 4294967295) <= $2 AND t.claim <> ALL ($3))) "
          "RETURNING t.id, t.state, t.attempts, t.max_attempts, t.queue",
      {INT8OID, INT8OID, INT8ARRAYOID},
      {std::to_string(incarnation), std::to_string(c.issued), int8_array(c.live)});
  for (const Row &r : rows)
    worker_log(LOG, LogComponent::kMaintenance, task_subject(std::stoll(*r[0])), "57P01",
               "attempt " + *r[2] + " of " + *r[3] + " on queue " + json_quote(*r[4]) +
                   " ended with its executor, " +
                   (*r[1] == "dead" ? "the task is dead" : "retry at once"));
  return static_cast<int>(rows.size());
}

// Enqueues the due runs; returns how many tasks it enqueued.
int run_schedules(const std::string &schedules, const std::string &tasks) {
  std::vector<Row> due = query(
      "SELECT s.name, s.cron, s.time_zone, s.queue, s.kind, s.task, s.func, s.args, s.overlap, "
      "s.role, extract(epoch FROM s.anchor)::int8, s.next_run IS NULL, "
      "s.next_run <= now(), s.pending, "
      "coalesce((SELECT t.state IN ('queued', 'running', 'failed') FROM " +
          tasks +
          " t WHERE t.id = s.last_task), false), "
          "extract(epoch FROM now())::int8 "
          "FROM " +
          schedules +
          " s WHERE s.next_run IS NULL OR s.next_run <= now() OR s.pending "
          "FOR UPDATE OF s SKIP LOCKED",
      {}, {});
  int enqueued = 0;
  for (const Row &r : due) {
    const std::string &name = *r[0];
    const bool first = *r[11] == "t", is_due = r[12] == std::optional<std::string>("t");
    const bool pending = *r[13] == "t", last_active = *r[14] == "t";
    const int64_t now = std::stoll(*r[15]);
    std::optional<std::string> next_run;
    if (first || is_due) {
      // A schedule whose text no longer parses (or zone no longer exists)
      // stops, with its next run NULL, instead of failing the relay.
      try {
        CronSchedule cron = CronSchedule::parse(*r[1]);
        PgZone zone = PgZone::named(*r[2]);
        int64_t next = cron.next_after(now, zone, std::stoll(*r[10]));
        if (next >= 0) next_run = std::to_string(next);
      } catch (const Error &) {
      }
    }
    bool run = (is_due || pending) && !first;
    bool wait = false;
    if (run && last_active) {
      run = false;
      wait = *r[8] == "queue";
    }
    if (run) {
      query("UPDATE " + schedules +
                " SET last_task = cachekit._enqueue($2, $3, $4, $5, $6, NULL, 0, 1, NULL, NULL, "
                "NULL, $7, NULL, $1, false), last_run = now(), runs = runs + 1, pending = false "
                "WHERE name = $1",
            {TEXTOID, TEXTOID, TEXTOID, TEXTOID, OIDOID, JSONBOID, OIDOID},
            {name, r[3], r[4], r[5], r[6], r[7], r[9]});
      ++enqueued;
      // Counted at the relay's commit (a rolled-back cycle enqueued nothing).
      note_enqueued_in_xact(*r[3], 1);
    } else if (is_due && !first) {
      query("UPDATE " + schedules +
                " SET skipped = skipped + CASE WHEN $2 THEN 0 ELSE 1 END, pending = $2 "
                "WHERE name = $1",
            {TEXTOID, BOOLOID}, {name, std::string(wait ? "t" : "f")});
    }
    if (first || is_due)
      query("UPDATE " + schedules + " SET next_run = to_timestamp($2) WHERE name = $1",
            {TEXTOID, INT8OID}, {name, next_run});
  }
  return enqueued;
}

}  // namespace

namespace {

int maintain(Oid dbid, const ExtensionObjects &objects) {
  if (!OidIsValid(objects.tasks)) return 0;
  std::string tasks = pg_call([&] { return qualified_name(objects.tasks); });
  int woken = reclaim(dbid, tasks);
  if (OidIsValid(objects.schedules)) {
    std::string schedules = pg_call([&] { return qualified_name(objects.schedules); });
    woken += run_schedules(schedules, tasks);
  }
  return woken;
}

}  // namespace

// In a subtransaction: whatever goes wrong with the tasks (a lock timeout, a
// broken schedule row) is a WARNING and is rolled back, and the relay goes on
// delivering invalidations, which must not wait for the task queue (see
// pg/subtransaction.h for why a PgError may stop there).
int task_maintenance(Oid dbid, const ExtensionObjects &objects) {
  int woken = 0;
  std::string failure;
  if (in_subtransaction([&] { woken = maintain(dbid, objects); }, &failure)) return woken;
  pg_call([&] {
    ereport(WARNING, (worker_errmsg(LogComponent::kMaintenance, "failed: %s", failure.c_str()),
                      errdetail("Tasks of dead executors are reclaimed and due schedules started "
                                "at the relay's next cycle.")));
  });
  return 0;
}

}  // namespace cachekit::pg
