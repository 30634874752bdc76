#!/usr/bin/env bash
# A task executor killed with SIGKILL in the middle of a task (issue 8, fault
# tests): the postmaster restarts everything, the relay finds the running
# task's claim gone and returns it to the queue, and it runs again.
#  1. one 3 s task, killed once it runs: it succeeds on its second attempt,
#     the killed attempt's effects are gone, no task stays running;
#  2. 20 short tasks, an executor killed while they drain: every one
#     succeeds and its effects are committed exactly once.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_fault_task_kill
source test/fault/lib_tasks.bash
trap tasks_cleanup EXIT
tasks_cleanup

start=$(now_ms)
setup_task_db
wait_executors "$(task_workers)" 30

# 1. One task, killed mid-run.
id=$(q_durable "SELECT cachekit.enqueue('default', 'fault.work', '{\"n\": 1, \"sleep\": 3}')")
# Sets pid to the executor running task $1.
running_task() { pid=$(executor_of "$1") && [ -n "$pid" ] && in_state "$1" running; }
wait_for 10 "task $id to run" running_task "$id"
# The claim is committed asynchronously (the run's commit flushes it): make
# it durable, so that the crash interrupts a claimed attempt.
flush_wal
kill -9 "$pid"
echo "# killed executor $pid running task $id"
wait_for 10 "the killed executor $pid to be gone" bash -c "! kill -0 $pid 2>/dev/null"
wait_for 45 "task $id to succeed after its executor was killed" in_state "$id" succeeded
got=$(q "SELECT attempts || ' ' || (result = args) || ' ' || (last_error IS NULL) FROM cachekit.tasks WHERE id = $id")
[ "$got" = "2 true true" ] || fail "task $id after the kill: attempts, result = args, no error: $got, expected 2 true true"
got=$(q "SELECT count(*) || ' ' || count(*) FILTER (WHERE pid = $pid) FROM fault.results WHERE n = 1")
[ "$got" = "1 0" ] || fail "committed runs of task $id, and runs by the killed executor: $got, expected 1 0"
all_finished || fail "tasks left unfinished: $(q "SELECT string_agg(id || ':' || state, ', ') FROM cachekit.tasks WHERE state NOT IN ('succeeded')")"
echo "ok - a task whose executor was killed with SIGKILL ran again and succeeded on attempt 2, the killed run left nothing"

# 2. Twenty short tasks, an executor killed while they drain: the one it
# kills runs a longer task (run 21, first by priority), so that the kill
# surely interrupts a claimed run. The kill, a few psql calls after they
# start, must come while the long one runs (10 s) and before half the short
# ones are done (6 s: with 2 executors they drain one at a time).
q "TRUNCATE fault.results"
q "SELECT cachekit.create_queue('fault_kill', 3)" >/dev/null
wait_executors "$(task_workers)" 30
long=$(q_durable "SELECT cachekit.enqueue('fault_kill', 'fault.work', '{\"n\": 21, \"sleep\": 10}', priority => 10)")
enqueue_work 20 0.6 fault_kill
wait_for 10 "task $long to run" running_task "$long"
flush_wal
left=$(q "SELECT count(*) FROM cachekit.tasks WHERE queue = 'fault_kill' AND state <> 'succeeded'")
kill -9 "$pid"
echo "# killed executor $pid running task $long with $left of 21 tasks unfinished"
((left >= 10)) || fail "only $left of the 21 tasks were unfinished at the kill (they drained too fast to test anything)"
wait_for 10 "the killed executor $pid to be gone" bash -c "! kill -0 $pid 2>/dev/null"
wait_for 45 "the 21 tasks to finish after the kill" all_finished
check_each_once 21 fault_kill "21 tasks with an executor killed"
got=$(q "SELECT attempts FROM cachekit.tasks WHERE id = $long")
[ "$got" = "2" ] || fail "task $long, running in the killed executor: attempts $got, expected 2"
echo "ok - 20 short tasks and a long one with the long one's executor killed: all succeeded, each committed once, the killed one on attempt 2"
echo "# $(($(now_ms) - start)) ms"
