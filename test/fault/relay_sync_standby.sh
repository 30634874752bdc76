#!/usr/bin/env bash
# Nothing the relay waits for keeps the server from stopping (issue 7 review,
# relay item 1).
#  1. synchronous_standby_names names a standby that never answers: a
#     durable invalidation (the outbox row of a prepared transaction, then
#     committed by a session with synchronous_commit = local) is delivered
#     and its row deleted by the relay, and `pg_ctl -m fast restart`
#     completes. Before the fix, the relay's commit of the DELETE waited for
#     the standby forever and so did the shutdown.
#  2. a prepared transaction holds a lock on the outbox: the relay gives up
#     waiting for it (lock_timeout), the fast restart completes, and the
#     relay catches up once the lock is gone; a second SIGTERM (pg_terminate_backend
#     twice) ends the waiting relay at once.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
data_dir="$CACHEKIT_SANDBOX_DIR/data"
db=cachekit_syncrep
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { timeout 20 psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*"; exit 1; }
start() { as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w -t 60 start >/dev/null; }
reset_sync() {
	timeout 20 psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM RESET synchronous_standby_names" \
		-c "ALTER SYSTEM RESET synchronous_commit"
}
cleanup() {
	if ! reset_sync >/dev/null 2>&1; then
		# A shutdown that hung (the bug): end it the hard way.
		as_postgres "$bindir/pg_ctl" -D "$data_dir" -m immediate -w stop >/dev/null 2>&1 || true
		as_postgres sed -i '/^synchronous_/d' "$data_dir/postgresql.auto.conf"
		start
	fi
	q postgres "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	# A prepared transaction left behind would hold its locks (and the
	# database) forever.
	for gid in $(psql -X -At -d postgres -c "SELECT gid FROM pg_prepared_xacts WHERE database = '$db'" 2>/dev/null); do
		q "$db" "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

relay() { q "$db" "SELECT cachekit.health() -> 'invalidation' -> 'relay' ->> '$1'"; }
wait_for() {  # $1: seconds, $2: description, rest: command that must succeed
	local secs=$1 deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after ${secs}s waiting for: $what"
		sleep 0.2
	done
}
caught_up() { [ "$(relay backlog)" = "false" ] && [ "$(relay running)" = "true" ]; }
outbox_empty() { [ "$(q "$db" "SELECT count(*) FROM cachekit.outbox")" = "0" ]; }
key_gone() { [ "$(r exists "$1")" = "0" ]; }
# A commit waiting for the standby (a probe; cancelled once seen).
sync_rep_waits() {
	[ "$(q "$db" "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO probe%'")" = "1" ]
}
fast_restart() {  # $1: what is pending
	local t0=$SECONDS
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -m fast -w -t 30 stop >/dev/null ||
		fail "pg_ctl -m fast stop did not complete within 30 s with $1"
	start
	echo "# fast restart with $1: $((SECONDS - t0)) s"
}

createdb "$db"
q "$db" "CREATE EXTENSION pg_cachekit"
q "$db" "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')"
q "$db" "CREATE TABLE probe (id int)"
q "$db" "SELECT cachekit.invalidate_key_on('users', 'app:syncrep:user:{id}')" >/dev/null
wait_for 30 "the relay to catch up" caught_up

# 1. A synchronous standby that never answers.
# The sandbox runs with synchronous_commit = off: on for everyone here.
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM SET synchronous_standby_names = 'nobody'" \
	-c "ALTER SYSTEM SET synchronous_commit = on"
q postgres "SELECT pg_reload_conf()" >/dev/null
timeout 30 psql -X -q -d "$db" -c "SET synchronous_commit = on" -c "INSERT INTO probe VALUES (1)" >/dev/null 2>&1 &
probe=$!
wait_for 10 "commits to wait for the synchronous standby" sync_rep_waits
q "$db" "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query LIKE 'INSERT INTO probe%'" >/dev/null
wait "$probe" || true
# A prepared transaction's invalidation is an outbox row, delivered by the
# relay once COMMIT PREPARED made it visible.
commit_prepared_update() {
	r set app:syncrep:user:1 cached >/dev/null
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET synchronous_commit = local" -c "BEGIN" \
		-c "UPDATE users SET name = name || 'x' WHERE id = 1" -c "PREPARE TRANSACTION 'ck_syncrep'"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET synchronous_commit = local" -c "COMMIT PREPARED 'ck_syncrep'"
}
commit_prepared_update
wait_for 30 "the key to be deleted" key_gone app:syncrep:user:1
wait_for 30 "the relay to delete the outbox row (its commit must not wait for the standby)" outbox_empty
echo "ok - the relay's commits do not wait for a synchronous standby"
# And one more pending when the server stops.
commit_prepared_update
fast_restart "a synchronous standby that never answers"
wait_for 30 "the key to be deleted after the restart" key_gone app:syncrep:user:1
wait_for 30 "the outbox row to be deleted after the restart" outbox_empty
echo "ok - pg_ctl -m fast restart completes with a synchronous standby that never answers"
reset_sync
q postgres "SELECT pg_reload_conf()" >/dev/null

# 2. A prepared transaction holding a lock on the outbox the relay needs.
wait_for 30 "the relay to catch up" caught_up
q "$db" "BEGIN; LOCK TABLE cachekit.outbox IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'ck_lock_outbox'"
relay_waits_for_lock() {
	[ "$(q "$db" "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'pg_cachekit outbox relay' AND wait_event_type = 'Lock'")" = "1" ]
}
wait_for 10 "the relay to wait for the lock" relay_waits_for_lock
# A second SIGTERM ends it at once, before its lock_timeout (5 s). Two sent
# back to back can reach it as one (a signal already pending is not queued
# again): send it again every half second until the relay is gone.
relay_pid=$(q "$db" "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'pg_cachekit outbox relay'")
q "$db" "SELECT pg_terminate_backend($relay_pid, 0)" >/dev/null
relay_gone() { ! kill -0 "$relay_pid" 2>/dev/null; }
sigterm_again() {
	relay_gone && return 0
	q "$db" "SELECT pg_terminate_backend($relay_pid, 0)" >/dev/null 2>&1 || true
	sleep 0.3
	relay_gone
}
wait_for 3 "the relay to exit on a second SIGTERM" sigterm_again
echo "ok - a second SIGTERM ends a relay that waits for a lock"
wait_for 30 "the next relay to wait for the lock" relay_waits_for_lock
fast_restart "the relay waiting for a lock on the outbox"
q "$db" "COMMIT PREPARED 'ck_lock_outbox'"
commit_prepared_update
wait_for 30 "the key to be deleted once the lock is gone" key_gone app:syncrep:user:1
wait_for 30 "the outbox row to be deleted once the lock is gone" outbox_empty
echo "ok - pg_ctl -m fast restart completes while the relay waits for a lock on the outbox"
