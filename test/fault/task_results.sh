#!/usr/bin/env bash
# Task results in Redis (cachekit.result_ttl): a succeeded task's result is
# stored under <key_prefix>task:<database oid>:<id> with the ttl, and
# task_result() reads it from there first (a value planted in Redis wins); with
# Redis down a task still succeeds (storing its result never fails it) and
# task_result() answers from the table.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "not ok - $*"; exit 1; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
db=cachekit_task_results
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
cleanup() {
	test/sandbox redis-start >/dev/null 2>&1 || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE FUNCTION answer(args jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT jsonb_build_object('n', args -> 'n') \$\$"
dboid=$(q "SELECT oid FROM pg_database WHERE datname = current_database()")

wait_state() { # id state
	for _ in $(seq 300); do
		[ "$(q "SELECT state FROM cachekit.tasks WHERE id = $1")" = "$2" ] && return 0
		sleep 0.1
	done
	fail "task $1 did not reach state $2 (it is $(q "SELECT state FROM cachekit.tasks WHERE id = $1"))"
}

id=$(q "SELECT cachekit.enqueue('default', 'answer', '{\"n\": 1}')")
wait_state "$id" succeeded
# The executor stores the result in Redis after it committed the success:
# wait for it (10 s at most; then the check below says what Redis holds).
for _ in $(seq 100); do [ "$(r exists "ck:task:$dboid:$id")" = 1 ] && break; sleep 0.1; done
stored=$(r get "ck:task:$dboid:$id")
[ "$stored" = '{"n": 1}' ] || fail "Redis holds '$stored' for task $id, expected {\"n\": 1}"
ttl=$(r ttl "ck:task:$dboid:$id")
[ "$ttl" -gt 3500 ] && [ "$ttl" -le 3600 ] || fail "result ttl is $ttl, expected cachekit.result_ttl (3600 s)"
echo "ok - a result is kept in Redis with cachekit.result_ttl"

# task_result() reads Redis first: a value planted there wins over the table.
r set "ck:task:$dboid:$id" '{"from": "redis"}' >/dev/null
[ "$(q "SELECT cachekit.task_result($id)")" = '{"from": "redis"}' ] || fail "task_result() did not read Redis first"
r del "ck:task:$dboid:$id" >/dev/null
[ "$(q "SELECT cachekit.task_result($id)")" = '{"n": 1}' ] || fail "task_result() did not fall back to the table"
echo "ok - task_result() reads Redis first, then the table"

test/sandbox redis-stop >/dev/null 2>&1
id2=$(q "SELECT cachekit.enqueue('default', 'answer', '{\"n\": 2}')")
wait_state "$id2" succeeded
[ "$(q "SELECT cachekit.task_result($id2)" 2>/dev/null)" = '{"n": 2}' ] || fail "task_result() with Redis down"
echo "ok - with Redis down a task succeeds and its result comes from the table"
