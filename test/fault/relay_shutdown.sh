#!/usr/bin/env bash
# Nothing committed is lost across a clean restart (issue 7, item 11).
#
# Redis is paused (CLIENT PAUSE ... ALL, for 15 s), a commit changes a row
# with a key rule: its key deletion after commit times out and goes to the
# relay's queue in shared memory. Then the server restarts cleanly:
#  1. fast and smart shutdown: the relay, asked to stop, cannot deliver the
#     queue and writes it to the outbox; after the restart the outbox row is
#     there and, once Redis answers, the key is deleted;
#  2. the same commit in a database whose relay is kept away (ALTER DATABASE
#     ... RENAME stops it for 30 s): nobody can write its queue entry down, so
#     the postmaster leaves a marker at exit and the next start flushes
#     everything once, which deletes the key by its rule's pattern.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
data_dir="$CACHEKIT_SANDBOX_DIR/data"
db=cachekit_shutdown
db2=cachekit_shutdown_norelay
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*"; exit 1; }
cleanup() {
	wait_unpaused >/dev/null 2>&1 || true
	for d in "$db" "$db2" "${db2}_moved"; do dropdb --if-exists "$d" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
cleanup

relay() { q "$1" "SELECT cachekit.health() -> 'invalidation' -> 'relay' ->> '$2'"; }
wait_for() {  # $1: seconds, $2: description, rest: command that must succeed
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after ${deadline}s waiting for: $what"
		sleep 0.1
	done
}
caught_up() { [ "$(relay "$1" backlog)" = "false" ] && [ "$(relay "$1" running)" = "true" ]; }
key_gone() { [ "$(r exists "$1")" = "0" ]; }
# How long Redis stays paused: it must outlast the commit, the checks and a
# stop and start of the server (about 2 s, much more on a loaded machine),
# or the relay delivers before the outbox and the flush are checked. Nothing
# ends a pause early (CLIENT UNPAUSE itself waits for the end of a PAUSE
# ALL), so wait_unpaused waits out the rest of it.
pause_ms=10000
wait_unpaused() { timeout $((pause_ms / 1000 + 15)) redis-cli -p "$CACHEKIT_REDIS_PORT" ping >/dev/null; }
restart() {  # $1: shutdown mode
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -m "$1" -w stop >/dev/null
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null
}
setup_db() {  # $1: database, $2: key prefix
	createdb "$1"
	q "$1" "CREATE EXTENSION pg_cachekit"
	q "$1" "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')"
	q "$1" "SELECT cachekit.invalidate_key_on('users', '$2:{id}')" >/dev/null
}
# A commit while Redis hangs: its key deletion after commit fails (command
# timeout) and lands in the relay's queue.
commit_while_paused() {  # $1: database
	# Not SIGSTOP: a stopped Redis would still run the UNLINK that the
	# backend gave up on once it resumes; a paused one drops it with the
	# connection, as a Redis that was really unreachable would.
	r client pause "$pause_ms" all >/dev/null
	q "$1" "UPDATE users SET name = name || 'x' WHERE id = 1"
	[ "$(relay "$1" queue_entries)" -ge 1 ] || fail "the failed delivery did not go to the queue: $(relay "$1" queue_entries)"
	[ "$(q "$1" "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "the commit wrote an outbox row (Redis looked down already?)"
}

setup_db "$db" app:shutdown:user
for mode in fast smart; do
	wait_for 30 "the relay of $db to catch up" caught_up "$db"
	r set app:shutdown:user:1 cached >/dev/null
	commit_while_paused "$db"
	restart "$mode"
	# Before Redis answers again: the queue entry was written to the outbox.
	[ "$(q "$db" "SELECT count(*) FROM cachekit.outbox")" -ge 1 ] ||
		fail "$mode shutdown: the queued invalidation was not written to the outbox"
	wait_unpaused
	wait_for 30 "the key to be deleted after a $mode restart" key_gone app:shutdown:user:1
	echo "ok - $mode shutdown with a failed delivery queued: kept in the outbox, key deleted once Redis answers"
done

# 2. No relay to write the queue down: the postmaster's marker.
setup_db "$db2" app:shutdown2:user
wait_for 30 "the relay of $db2 to catch up" caught_up "$db2"
q postgres "ALTER DATABASE $db2 RENAME TO ${db2}_moved"
q postgres "ALTER DATABASE ${db2}_moved RENAME TO $db2"
[ "$(relay "$db2" running)" = "false" ] || fail "ALTER DATABASE ... RENAME did not stop the relay"
r set app:shutdown2:user:1 cached >/dev/null
commit_while_paused "$db2"
restart fast
[ "$(q "$db2" "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "a relay wrote the queue down after all"
[ -e "$data_dir/pg_cachekit.flush_needed" ] && fail "the marker was not consumed at start"
[ "$(relay "$db2" flush_pending)" = "true" ] || fail "no flush pending after a shutdown that left a queue entry behind"
wait_unpaused
wait_for 30 "the key to be deleted by the flush after the restart" key_gone app:shutdown2:user:1
echo "ok - a queued invalidation no relay could write down makes the next start flush everything"
