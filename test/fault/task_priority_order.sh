#!/usr/bin/env bash
# A queue that runs one task at a time runs its tasks in priority order
# (then enqueue order), with every executor of the database competing for
# them: 20 rounds of 12 tasks with 5 priorities, enqueued while the queue is
# paused, then resumed (executors see it at their next poll, and hand the
# queue's place over from task to task). Before the
# executors reserved the queue's place before choosing its row, two of them
# could each lock a row and the one that lost the place put its row back
# after the other had started a later one (1 round in 15 on a 2-core box).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "not ok - $*"; exit 1; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
db=cachekit_task_priority_order
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
# --force: a failure leaves the lock holder below connected for a minute.
cleanup() { dropdb --if-exists --force "$db" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE runs (n int, prio int, at timestamptz DEFAULT clock_timestamp())"
q "CREATE FUNCTION rec(args jsonb) RETURNS jsonb LANGUAGE sql AS
   \$\$ INSERT INTO runs (n, prio) VALUES ((args ->> 'n')::int, (args ->> 'p')::int) RETURNING NULL::jsonb \$\$"
q "SELECT cachekit.create_queue('serial', 1)" >/dev/null
workers=$(q "SELECT current_setting('cachekit.task_workers')")
[ "$workers" -ge 2 ] || fail "needs at least 2 executors (cachekit.task_workers = $workers)"
for _ in $(seq 300); do
	[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit task executor' AND datname = current_database()")" -ge 2 ] && break
	sleep 0.1
done
running=$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit task executor' AND datname = current_database()")
[ "$running" -ge 2 ] || fail "only $running task executors started in 30 s"
rounds=20
for round in $(seq 1 $rounds); do
	q "TRUNCATE runs"
	q "SELECT cachekit.pause_queue('serial')" >/dev/null
	q "SELECT count(cachekit.enqueue('serial', 'rec', jsonb_build_object('n', g, 'p', g * 7919 % 5),
	                                 priority => g * 7919 % 5)) FROM generate_series(1, 12) g" >/dev/null
	q "SELECT cachekit.resume_queue('serial')" >/dev/null
	for _ in $(seq 300); do [ "$(q "SELECT count(*) FROM runs")" = 12 ] && break; sleep 0.1; done
	[ "$(q "SELECT count(*) FROM runs")" = 12 ] || fail "round $round: $(q "SELECT count(*) FROM runs") of 12 tasks ran in 30 s"
	got=$(q "SELECT string_agg(n::text, ',' ORDER BY at) FROM runs")
	want=$(q "SELECT string_agg(n::text, ',' ORDER BY prio DESC, n) FROM runs")
	[ "$got" = "$want" ] || fail "round $round: ran $got, priority order is $want"
done
echo "ok - a one-at-a-time queue ran $rounds × 12 tasks in priority order with $workers executors competing"

# A queue whose only runnable row is locked by an application's transaction
# (SELECT ... FOR UPDATE, as cancel_task takes): the other queues' tasks
# still run, and the executors wait for their next poll instead of trying
# that queue again at once (before: a busy loop, and the other queues
# starved, since the locked row stayed the best candidate).
q "SELECT cachekit.create_queue('other', 1)" >/dev/null
q "TRUNCATE runs"
q "SELECT cachekit.pause_queue('serial')" >/dev/null
locked=$(q "SELECT cachekit.enqueue('serial', 'rec', '{\"n\": 1, \"p\": 9}', priority => 9)")
# Held until the checks below are done (then cancelled): a fixed length
# could run out on a loaded machine while they still expect the lock. Its
# stderr is the cancel's error; a lock that was never taken fails below.
psql -X -q -d "$db" -c "BEGIN" -c "SELECT 1 FROM cachekit._tasks WHERE id = $locked FOR UPDATE" \
	-c "SELECT pg_sleep(60)" -c "COMMIT" >/dev/null 2>&1 &
holder=$!
holder_locks() {
	[ "$(q "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	        WHERE a.query LIKE '%pg_sleep(60)%' AND l.locktype = 'transactionid'")" -ge 1 ]
}
for _ in $(seq 100); do holder_locks && break; sleep 0.1; done
holder_locks || fail "the row lock of task $locked was not taken within 10 s"
q "SELECT cachekit.resume_queue('serial')" >/dev/null
sleep 1.5 # the queue resumed, its row locked, seen by the executors' polls
pids=$(q "SELECT string_agg(pid::text, ' ') FROM pg_stat_activity
          WHERE backend_type = 'pg_cachekit task executor' AND datname = current_database()")
cpu() { local t=0 p; for p in $pids; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
t1=$(cpu)
q "SELECT cachekit.enqueue('other', 'rec', '{\"n\": 2, \"p\": 0}')" >/dev/null
for _ in $(seq 20); do [ "$(q "SELECT count(*) FROM runs WHERE n = 2")" = 1 ] && break; sleep 0.1; done
[ "$(q "SELECT count(*) FROM runs WHERE n = 2")" = 1 ] || fail "a task of another queue did not run within 2 s while a row of 'serial' was locked"
sleep 1
ticks=$(($(cpu) - t1))
hz=$(getconf CLK_TCK)
# About 2.5 s measured: a busy loop would be most of it on each executor.
((ticks * 4 < hz)) || fail "the task executors used $ticks CPU ticks ($hz a second) while a row was locked"
[ "$(q "SELECT count(*) FROM runs WHERE n = 1")" = 0 ] || fail "the locked task ran while locked"
holder_locks || fail "the row lock of task $locked ended before the checks"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
   WHERE datname = current_database() AND query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()" >/dev/null
wait "$holder" || true
for _ in $(seq 50); do [ "$(q "SELECT count(*) FROM runs WHERE n = 1")" = 1 ] && break; sleep 0.1; done
[ "$(q "SELECT count(*) FROM runs WHERE n = 1")" = 1 ] || fail "the locked task did not run within 5 s of the lock's end"
echo "ok - a locked row of one queue: another queue's task ran, executors idle ($ticks ticks), the row ran once unlocked"
