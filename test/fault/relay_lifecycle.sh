#!/usr/bin/env bash
# The relay's lifecycle (issue 7, items 13 and 14):
#  1. the launcher terminated twice: every database keeps exactly one relay
#     (a restarted launcher finds the running ones), and DROP DATABASE of a
#     served database succeeds;
#  2. queue entries of a database that is dropped are freed (they used to
#     hold queue slots until the next restart);
#  3. a relay stopped in the middle of a flush of everything (SIGTERM while
#     it SCANs) leaves the flush owed: the next relay does it again, so no
#     key a rule can produce survives.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
data_dir="$CACHEKIT_SANDBOX_DIR/data"
db=cachekit_lifecycle
db_drop=cachekit_lifecycle_drop
db_q=cachekit_lifecycle_queue
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*"; exit 1; }
cleanup() {
	for d in "$db" "$db_drop" "$db_q" "${db_q}_moved"; do dropdb --if-exists "$d" >/dev/null 2>&1 || true; done
	r eval "for _, k in ipairs(redis.call('keys', 'app:lifecycle:*')) do redis.call('unlink', k) end" 0 >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

wait_for() {  # $1: seconds, $2: description, rest: command that must succeed
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out waiting for: $what"
		sleep 0.1
	done
}
relays_of() { q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit outbox relay' AND datname = '$1'"; }
launcher_pid() { q postgres "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit launcher'"; }
one_relay() { [ "$(relays_of "$1")" = "1" ]; }
new_launcher() { local p; p=$(launcher_pid); [ "$p" != "0" ] && [ "$p" != "$1" ]; }

for d in "$db" "$db_drop"; do
	createdb "$d"
	q "$d" "CREATE EXTENSION pg_cachekit"
	wait_for 30 "a relay in $d" one_relay "$d"
done

# 1. Terminate the launcher twice; after each restart, watch for a few
# launcher scans: never a second relay for a database.
for round in 1 2; do
	old=$(launcher_pid)
	[ "$old" != "0" ] || fail "no launcher running"
	q postgres "SELECT pg_terminate_backend($old)" >/dev/null
	wait_for 30 "a new launcher after terminating $old" new_launcher "$old"
	deadline=$((SECONDS + 4))
	while ((SECONDS < deadline)); do
		dup=$(q postgres "SELECT string_agg(datname || ': ' || n, ', ') FROM (SELECT datname, count(*) AS n
		       FROM pg_stat_activity WHERE backend_type = 'pg_cachekit outbox relay' GROUP BY datname) c WHERE n > 1")
		[ -z "$dup" ] || fail "round $round: more than one relay for a database after a launcher restart ($dup)"
		sleep 0.2
	done
	for d in "$db" "$db_drop"; do one_relay "$d" || fail "round $round: no relay for $d"; done
done
echo "ok - the launcher terminated twice: still exactly one relay per database"
out=$(dropdb "$db_drop" 2>&1) || fail "DROP DATABASE of a served database failed: $out"
echo "ok - DROP DATABASE of a database with a relay succeeds after launcher restarts"

# 2. Queue entries of a dropped database. Its relay kept away (ALTER DATABASE
# ... RENAME stops it for 30 s), a commit's pub/sub message stays queued.
total_queued() { q "$db" "SELECT cachekit.health() -> 'invalidation' -> 'relays' ->> 'queue_entries'"; }
createdb "$db_q"
q "$db_q" "CREATE EXTENSION pg_cachekit"
q "$db_q" "CREATE TABLE t (id int)"
q "$db_q" "SELECT cachekit.watch('t')" >/dev/null
wait_for 30 "a relay in $db_q" one_relay "$db_q"
wait_for 30 "the relay of $db_q to catch up" \
	test "$(q "$db_q" "SELECT cachekit.health() -> 'invalidation' -> 'relay' ->> 'backlog'")" = "false"
before=$(total_queued)
q postgres "ALTER DATABASE $db_q RENAME TO ${db_q}_moved"
q postgres "ALTER DATABASE ${db_q}_moved RENAME TO $db_q"
q "$db_q" "INSERT INTO t VALUES (1)"
q "$db_q" "INSERT INTO t VALUES (2)"
[ "$(total_queued)" -ge $((before + 2)) ] || fail "the messages were not queued (relay stopped?): $(total_queued)"
dropdb "$db_q"
queue_back() { [ "$(total_queued)" -le "$before" ]; }
wait_for 15 "the dropped database's queue entries to be freed" queue_back
echo "ok - the queue entries of a dropped database are freed by the launcher"

# 3. A flush of everything, stopped half-way. The marker file makes the next
# start flush every database, as if the last shutdown had left work behind.
q "$db" "CREATE TABLE f (id int PRIMARY KEY)"
q "$db" "SELECT cachekit.invalidate_key_on('f', 'app:lifecycle:f:{id}')" >/dev/null
keys=300000
others=$(r dbsize)
r eval "for i = 1, $keys do redis.call('set', 'app:lifecycle:f:' .. i, 'v') end" 0 >/dev/null
# Cheap enough to poll while the relay SCANs (KEYS would stall it); nothing
# else writes to Redis meanwhile. Checked with a real count at the end.
left() { echo $(($(r dbsize) - others)); }
as_postgres touch "$data_dir/pg_cachekit.flush_needed"
as_postgres "$bindir/pg_ctl" -D "$data_dir" -m fast -w restart -l "$CACHEKIT_SANDBOX_DIR/postgres.log" >/dev/null
started() { [ "$(left)" -lt $((keys - 2000)) ]; }
wait_for 30 "the flush to start deleting" started
q postgres "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit outbox relay' AND datname = '$db'" >/dev/null
n=$(left)
[ "$n" -gt 0 ] || fail "the flush finished before the relay was stopped (test too fast: raise keys)"
echo "# relay stopped with $n of $keys keys left"
none_left() { [ "$(left)" = "0" ]; }
wait_for 60 "the next relay to finish the flush" none_left
[ "$(r eval "return #redis.call('keys', 'app:lifecycle:f:*')" 0)" = "0" ] || fail "keys of the rule survived the flush"
echo "ok - a relay stopped during a flush of everything leaves it owed; the next relay finishes it"
