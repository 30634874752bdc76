#!/usr/bin/env bash
# The key deletion of a commit (key rules, no outbox row): sent to Redis at
# COMMIT, its reply read once the transaction's locks are released, before
# COMMIT returns.
#  1. read-your-writes: 200 times, a session sets a key, commits an UPDATE
#     whose rule names it and reads the key from Redis at once (on another
#     connection, as an application does): it is always gone;
#  2. Redis paused (SIGSTOP) at commit: the committing session's COMMIT
#     returns within the command timeout, and a session waiting for one of
#     its locks is not held behind that wait (the locks went before it);
#     after SIGCONT the key is deleted;
#  3. Redis killed between the send and the reply: the commit returns, the
#     invalidation goes to the relay, and the key is deleted once Redis is
#     back.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_commit_keys
tmp=$(mktemp -d /tmp/pg_cachekit_commit_keys.XXXXXX)
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
qpg() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
rc() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() {
	echo "not ok - $*"
	exit 1
}
now_ms() { date +%s%3N; }
cleanup() {
	test/sandbox redis-start >/dev/null 2>&1 || true
	qpg "ALTER SYSTEM RESET cachekit.redis_retry_interval_ms" >/dev/null 2>&1 || true
	qpg "ALTER SYSTEM RESET cachekit.redis_url" >/dev/null 2>&1 || true
	qpg "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_gone KEY SECONDS
wait_gone() {
	local i
	for i in $(seq 1 $(($2 * 10))); do
		[ "$(rc exists "$1")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE ck_keys (id int PRIMARY KEY, v int)"
q "INSERT INTO ck_keys SELECT g, 0 FROM generate_series(1, 200) g"
q "SELECT cachekit.invalidate_key_on('ck_keys', 'ckk:{id}')" >/dev/null
# wait_no_backlog: a new database has one until its relay has looked at the
# outbox; meanwhile commits write outbox rows (the path not tested here).
wait_no_backlog() {
	local i
	for i in $(seq 1 300); do
		[ "$(q "SELECT cachekit.health()->'invalidation'->'relay'->>'backlog'")" = false ] && return 0
		sleep 0.1
	done
	fail "the backlog was never cleared"
}
wait_no_backlog

# 1. One session; each UPDATE commits on its own and the key is read right
# after COMMIT returned.
written_before=$(q "SELECT outbox_written FROM cachekit.invalidation_stats")
for i in $(seq 1 200); do
	echo "\\! redis-cli -p $CACHEKIT_REDIS_PORT set ckk:$i old >/dev/null"
	echo "UPDATE ck_keys SET v = v + 1 WHERE id = $i;"
	echo "\\! [ \"\$(redis-cli -p $CACHEKIT_REDIS_PORT get ckk:$i)\" = '' ] || echo stale $i"
done >"$tmp/loop.sql"
# A generous Redis timeout: one slow reply on a loaded machine (over the
# sandbox's 200 ms) would open the circuit breaker and send commits to the
# outbox, which is not what this part tests.
PGOPTIONS="-c cachekit.redis_command_timeout_ms=5000 -c cachekit.redis_connect_timeout_ms=5000" \
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$tmp/loop.sql" >"$tmp/loop.out" 2>&1 || fail "loop: $(cat "$tmp/loop.out")"
grep -q stale "$tmp/loop.out" && fail "a key was still there right after COMMIT: $(grep -c stale "$tmp/loop.out") of 200"
[ "$(q "SELECT outbox_written FROM cachekit.invalidation_stats")" = "$written_before" ] ||
	fail "the simple case wrote outbox rows"
echo "ok - 200 commits: every key was gone as soon as COMMIT returned"

# 2. Redis paused. The committing session waits for the reply at most its
# command timeout (5 s here), after its locks are released: a session
# waiting for one of them gets it long before that. (Another writer of the
# same row would not wait anyway: the commit is visible by then. A
# transaction-level advisory lock stands for any heavyweight lock, e.g. of
# DDL or LOCK TABLE.)
rc set ckk:1 old >/dev/null
failures_before=$(q "SELECT delivery_failures FROM cachekit.invalidation_stats")
test/sandbox redis-pause
start=$(now_ms)
PGOPTIONS="-c cachekit.redis_command_timeout_ms=5000" \
	psql -X -q -At -d "$db" -c "BEGIN" -c "SELECT pg_advisory_xact_lock(4711)" \
	-c "UPDATE ck_keys SET v = v + 1 WHERE id = 1" -c "COMMIT" >"$tmp/a.out" 2>&1 &
a_pid=$!
sleep 0.5
psql -X -q -At -d "$db" -c "SET lock_timeout = '10s'" -c "SELECT pg_advisory_xact_lock(4711)" \
	>"$tmp/b.out" 2>&1 || fail "second session: $(cat "$tmp/b.out")"
b_ms=$(($(now_ms) - start))
a_waiting=no
kill -0 "$a_pid" 2>/dev/null && a_waiting=yes
wait "$a_pid" || fail "the COMMIT failed while Redis was paused: $(cat "$tmp/a.out")"
a_ms=$(($(now_ms) - start))
((b_ms < 4000)) && [ $a_waiting = yes ] ||
	fail "the second session got the lock after ${b_ms} ms, COMMIT returned after ${a_ms} ms: the lock was held across the Redis wait"
((a_ms < 10000)) || fail "COMMIT took ${a_ms} ms with Redis paused (command timeout 5000 ms)"
[ "$(q "SELECT delivery_failures FROM cachekit.invalidation_stats")" -gt "$failures_before" ] ||
	fail "the timed-out deletion was not counted as a failed delivery"
test/sandbox redis-resume
wait_gone ckk:1 30 || fail "after SIGCONT the key was never deleted"
echo "ok - Redis paused: COMMIT returned in ${a_ms} ms (timeout 5000), the lock it held was free after ${b_ms} ms, the key went after SIGCONT"

# 3. Redis killed while the committing session waits for the reply. The
# relay retries only every 5 s; and is pointed at a closed port while Redis
# restarts, until the key is set again on it (the restarted Redis is empty).
qpg "ALTER SYSTEM SET cachekit.redis_retry_interval_ms = 5000" >/dev/null
qpg "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
wait_no_backlog  # part 2 set one
rc set ckk:2 old >/dev/null
failures_before=$(q "SELECT delivery_failures FROM cachekit.invalidation_stats")
test/sandbox redis-pause
PGOPTIONS="-c cachekit.redis_command_timeout_ms=10000" \
	psql -X -q -At -d "$db" -c "UPDATE ck_keys SET v = v + 1 WHERE id = 2" >"$tmp/c.out" 2>&1 &
c_pid=$!
sleep 1
kill -0 "$c_pid" 2>/dev/null || fail "COMMIT returned before Redis was killed"
kill -9 "$(cat "$CACHEKIT_SANDBOX_DIR/redis.pid")"
start=$(now_ms)
wait "$c_pid" || fail "the COMMIT failed when Redis was killed: $(cat "$tmp/c.out")"
c_ms=$(($(now_ms) - start))
((c_ms < 5000)) || fail "COMMIT took ${c_ms} ms after Redis died"
[ "$(q "SELECT delivery_failures FROM cachekit.invalidation_stats")" -gt "$failures_before" ] ||
	fail "the lost reply was not counted as a failed delivery"
qpg "ALTER SYSTEM SET cachekit.redis_url = 'redis://127.0.0.1:1/0'" >/dev/null
qpg "SELECT pg_reload_conf()" >/dev/null
sleep 2  # the relay reads settings every cycle (250 ms); no query shows it
test/sandbox redis-start
rc set ckk:2 old >/dev/null
qpg "ALTER SYSTEM RESET cachekit.redis_url" >/dev/null
qpg "SELECT pg_reload_conf()" >/dev/null
wait_gone ckk:2 30 || fail "the relay never deleted the key after Redis came back"
echo "ok - Redis killed before the reply: COMMIT returned ${c_ms} ms later, the relay deleted the key once Redis was back"

# 4. cachekit.publish_at_commit: the message travels with the keys, sent by
# the committing backend itself (the relay is not involved), before COMMIT
# returns.
wait_no_backlog
q "SELECT cachekit.watch('ck_keys')" >/dev/null
# Nothing may be left in the relay's queue (part 3's retries): while it is
# not empty, publish_at_commit queues too, to keep commit order.
for i in $(seq 1 300); do
	[ "$(q "SELECT cachekit.health()->'invalidation'->'relay'->>'queue_entries'")" = 0 ] && break
	sleep 0.1
done
rc set ckk:3 old >/dev/null
by_worker=$(q "SELECT delivered_by_worker FROM cachekit.invalidation_stats")
published=$(q "SELECT messages_published FROM cachekit.invalidation_stats")
PGOPTIONS="-c cachekit.publish_at_commit=on" q "UPDATE ck_keys SET v = v + 1 WHERE id = 3"
[ "$(rc exists ckk:3)" = 0 ] || fail "publish_at_commit: the key was still there after COMMIT"
[ "$(q "SELECT messages_published FROM cachekit.invalidation_stats")" -gt "$published" ] ||
	fail "publish_at_commit: no message was published by the time COMMIT returned"
[ "$(q "SELECT delivered_by_worker FROM cachekit.invalidation_stats")" = "$by_worker" ] ||
	fail "publish_at_commit: the relay delivered it"
echo "ok - publish_at_commit: message and key deletion went out with the commit, not through the relay"
