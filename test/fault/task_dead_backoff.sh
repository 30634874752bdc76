#!/usr/bin/env bash
# A task that always fails goes dead after max_attempts, its retries spaced
# by the backoff policy (issue 8, fault tests): attempt n fails, and attempt
# n + 1 starts min(cachekit.task_max_backoff, n^4 s) +-10 % after that
# failure (jitter never above the cap; each attempt runs 0.5 s first, so a
# delay counted from the attempt's start would show). With the cap at 10 s and max_attempts 4 the gaps are
# about 1 s, 9-10 s (16 s capped) and 9-10 s (81 s capped): the curve grows
# (faster than n^3) and is capped. Then the task is dead with the last error
# (SQLSTATE, message, detail, hint, attempt 4) and is not tried again.
#
# Each attempt records its start and the moment it fails through dblink:
# the task's own transaction is rolled back by its failure. The moment is
# taken by the dblink session, once connected (which can take a while on a
# loaded machine); what remains until the failure is recorded is slack.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_fault_task_backoff
source test/fault/lib_tasks.bash
trap tasks_cleanup EXIT
tasks_cleanup

start=$(now_ms)
cap=10
setup_task_db
q "CREATE EXTENSION dblink SCHEMA fault" 2>/dev/null || {
	echo "# dblink is not available: cannot record the attempts of a failing task"
	exit 77
}
q "CREATE TABLE fault.attempts (started_at timestamptz NOT NULL, failed_at timestamptz NOT NULL, pid int4 NOT NULL)"
q "CREATE FUNCTION fault.always_fails(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   DECLARE
       started timestamptz := clock_timestamp();
   BEGIN
       PERFORM pg_sleep(0.5);
       PERFORM fault.dblink_exec(format('dbname=%s port=%s host=%s', current_database(), current_setting('port'),
                                        split_part(current_setting('unix_socket_directories'), ',', 1)),
                                 format('INSERT INTO fault.attempts VALUES (%L, clock_timestamp(), %s)', started, pg_backend_pid()));
       RAISE EXCEPTION 'always fails (n=%)', a->>'n' USING ERRCODE = 'division_by_zero',
             DETAIL = 'The fault script wants it so.', HINT = 'Do not retry.';
   END \$\$"
set_guc cachekit.task_max_backoff "$cap"
wait_executors 1 30

id=$(q "SELECT cachekit.enqueue('default', 'fault.always_fails', '{\"n\": 7}', max_attempts => 4)")
wait_for 40 "task $id to go dead after 4 attempts" in_state "$id" dead
got=$(q "SELECT attempts || ' ' || (finished_at IS NOT NULL) || ' ' || last_error::text FROM cachekit.tasks WHERE id = $id")
want='4 true {"hint": "Do not retry.", "detail": "The fault script wants it so.", "attempt": 4, "message": "always fails (n=7)", "sqlstate": "22012"}'
[ "$got" = "$want" ] || fail "dead task: attempts, finished, last error: $got, expected $want"
got=$(q "SELECT count(*) FROM fault.attempts")
[ "$got" = "4" ] || fail "$got attempts recorded, expected 4"

# Gap n: from the failure of attempt n to the start of n + 1. Delay c(n) =
# min(cap, n^4) in [0.9 c, min(1.1 c, cap)]; recording the failure and the
# pickup add a little (the executors wake at the retry time, not at their
# poll), up to 3 s on a loaded machine. Uncapped, gap 2 would be 14.4 s or
# more, above the 13 s allowed.
attempt_gaps="SELECT row_number() OVER (ORDER BY started_at) AS n,
                     extract(epoch FROM lead(started_at) OVER (ORDER BY started_at) - failed_at) AS gap
              FROM fault.attempts"
gaps=$(q "SELECT string_agg(n || ':' || round(gap, 3), ' ' ORDER BY n) FROM ($attempt_gaps) g WHERE gap IS NOT NULL")
echo "# gaps between attempts (s): $gaps (cap $cap s)"
bad=$(q "SELECT string_agg(format('gap %s: %s s, expected %s to %s s', n, round(gap, 3), round(lo, 3), round(hi, 3)), '; ')
         FROM (SELECT n, gap, 0.9 * c - 0.05 AS lo, least(1.1 * c, $cap) + 3 AS hi
               FROM ($attempt_gaps) g,
                    LATERAL (SELECT least($cap, power(n, 4))::numeric AS c) c
               WHERE gap IS NOT NULL) x
         WHERE gap NOT BETWEEN lo AND hi")
[ -z "$bad" ] || fail "retries outside the backoff policy: $bad"
echo "ok - a task that always fails: dead after exactly 4 attempts with its last error, retries spaced min($cap s, n^4 s) +-10 %"

# Dead is final: nothing claims it again (an absence: no event to poll for).
sleep 1.5
got=$(q "SELECT state || ' ' || attempts || ' ' || (SELECT count(*) FROM fault.attempts) FROM cachekit.tasks WHERE id = $id")
[ "$got" = "dead 4 4" ] || fail "the dead task 1.5 s later: state, attempts, recorded attempts: $got, expected dead 4 4"
echo "ok - the dead task was not tried again"
echo "# $(($(now_ms) - start)) ms"
