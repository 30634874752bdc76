#!/usr/bin/env bash
# A commit held after XACT_EVENT_PRE_COMMIT but before it becomes visible must
# not let a reader store the old rows under a generation that already counts
# the write: the generation is bumped only once the commit is visible.
#
# A synchronous-commit wait on a standby that never answers holds a commit
# exactly there (SyncRepWaitForLSN runs between the commit record and
# ProcArrayEndTransaction). While the writer waits, a reader caches the rows
# it can see (the old ones); pg_cancel_backend then releases the writer (its
# commit is already durable locally, so it completes), and the reader's next
# read must return the new row, not a hit on the old one.
#
# Only sessions that SET synchronous_commit = on wait: the sandbox runs with it
# off, so the other backends (relay, launcher) are not held.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_sync_window
tmp=$(mktemp -d /tmp/pg_cachekit_sync_window.XXXXXX)
bg_pids=()
fail() {
	echo "not ok - $*"
	exit 1
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
qpg() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres -c "$1"; }
read_v() { q "SELECT v || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT v FROM sw WHERE id = 1') AS r(v text)"; }

# True while process $1 runs (a finished, not yet reaped child is a zombie
# that kill -0 still sees).
running() {
	local state
	state=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
	[[ -n $state && $state != Z ]]
}

set_standby_names() {
	qpg "ALTER SYSTEM SET synchronous_standby_names = '$1'"
	qpg "SELECT pg_reload_conf()" >/dev/null
}

cleanup() {
	local pid
	# Resetting the setting wakes every waiter; then end what is left of ours.
	qpg "ALTER SYSTEM RESET synchronous_standby_names" >/dev/null 2>&1 || true
	qpg "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	qpg "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	      WHERE application_name LIKE 'sync_window_%'" >/dev/null 2>&1 || true
	for pid in "${bg_pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# start_commit NAME SQL: runs SQL with synchronous_commit = on in a background
# session named NAME; its pid goes to LAST_PID, its output to $tmp/NAME.out.
start_commit() {
	PGAPPNAME="sync_window_$1" psql -X -At -v ON_ERROR_STOP=1 -d "$db" \
		-c "SET synchronous_commit = on" -c "$2" >"$tmp/$1.out" 2>&1 &
	LAST_PID=$!
	bg_pids+=("$LAST_PID")
}

# held NAME PID: 0 once session NAME waits for the standby, 1 if its psql
# ended without waiting; fails after 30 s.
held() {
	local wait_event
	for _ in $(seq 1 300); do
		wait_event=$(q "SELECT wait_event FROM pg_stat_activity WHERE application_name = 'sync_window_$1'")
		[ "$wait_event" = SyncRep ] && return 0
		running "$2" || return 1
		sleep 0.1
	done
	fail "session $1 neither committed nor waited for the standby within 30 s"
}

# release NAME PID: cancel the wait (the commit is already durable locally,
# so it completes with a WARNING) and wait for the psql to end.
release() {
	q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'sync_window_$1'" >/dev/null
	for _ in $(seq 1 300); do
		running "$2" || return 0
		sleep 0.1
	done
	fail "session $1 still runs 30 s after pg_cancel_backend"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE sw (id int PRIMARY KEY, v text NOT NULL); INSERT INTO sw VALUES (1, 'before')"
q "CREATE TABLE sw_probe (n int)"
q "SELECT cachekit.watch('sw')" >/dev/null

set_standby_names nobody
# The checkpointer publishes the new setting to waiting commits on its own
# schedule after the reload: probe with a throwaway write until one is held.
probe_held=no
for attempt in $(seq 1 50); do
	start_commit probe "INSERT INTO sw_probe VALUES ($attempt)"
	if held probe "$LAST_PID"; then
		release probe "$LAST_PID"
		probe_held=yes
		break
	fi
	sleep 0.1
done
[ "$probe_held" = yes ] || fail "synchronous_standby_names = 'nobody' never held a commit"
echo "ok - a commit waits for the missing standby"

[ "$(read_v)" = "before miss" ] || fail "first read"
[ "$(read_v)" = "before hit" ] || fail "second read should hit"

start_commit writer "UPDATE sw SET v = 'after' WHERE id = 1"
writer_pid=$LAST_PID
held writer "$writer_pid" || fail "the writer's commit was not held: $(cat "$tmp/writer.out")"
[ "$(q "SELECT v FROM sw WHERE id = 1")" = before ] || fail "the held commit is already visible"
got=$(read_v)
case $got in
"before hit" | "before miss") ;;
*) fail "read during the held commit returned '$got'" ;;
esac
echo "ok - while the commit is held, cached_query returns the old row ($got)"

release writer "$writer_pid"
grep -q "already committed locally" "$tmp/writer.out" ||
	fail "the writer was not released by the cancel: $(cat "$tmp/writer.out")"
[ "$(q "SELECT v FROM sw WHERE id = 1")" = after ] || fail "the released commit is not visible"
got=$(read_v)
[ "$got" = "after miss" ] ||
	fail "after the held commit became visible cached_query returned '$got' (stored during the hold under a generation that already counted the write)"
[ "$(read_v)" = "after hit" ] || fail "the cache does not hit again"
echo "ok - after the held commit becomes visible the next read is fresh"

set_standby_names ''
