#!/usr/bin/env bash
# On a hot standby no trigger fires, so nothing would invalidate: cached_query
# must bypass the cache there (counted), and return the replica's rows.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_standby
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() { echo "not ok - $*"; exit 1; }

rdir=$(mktemp -d /tmp/pg_cachekit_standby.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres "$rdir" && chmod 700 "$rdir"
rport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
	as_postgres "$bindir/pg_ctl" -D "$rdir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$rdir"
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION pg_cachekit;
CREATE TABLE s (id int PRIMARY KEY, v text);
INSERT INTO s VALUES (1, 'first');
SELECT cachekit.watch('s') \g /dev/null
SQL

as_postgres "$bindir/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$rdir/data" -R -X stream -c fast
as_postgres "$bindir/pg_ctl" -D "$rdir/data" -l "$rdir/replica.log" -w \
	-o "-p $rport -c unix_socket_directories=$rdir -c listen_addresses=127.0.0.1" start >/dev/null
rq() { psql -X -q -At -h 127.0.0.1 -p "$rport" -d "$db" -v ON_ERROR_STOP=1 -c "$1"; }
# The insert position, not the write position: the sandbox runs with
# synchronous_commit = off, so a commit may not be written out yet.
wait_replay() {
	local lsn
	lsn=$(psql -X -At -d "$db" -c "SELECT pg_current_wal_insert_lsn()")
	for _ in $(seq 1 100); do
		[ "$(rq "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = "t" ] && return 0
		sleep 0.1
	done
	fail "replica did not catch up"
}
read_replica() { rq "SELECT v || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT v FROM s WHERE id = 1') AS r(v text)"; }

wait_replay
[ "$(rq "SELECT pg_is_in_recovery()")" = "t" ] || fail "not a standby"
[ "$(read_replica)" = "first bypass:hot_standby" ] || fail "standby read: $(read_replica)"
[ "$(read_replica)" = "first bypass:hot_standby" ] || fail "standby must never hit"
psql -X -q -d "$db" -c "UPDATE s SET v = 'second'"
wait_replay
got=$(read_replica)
[ "$got" = "second bypass:hot_standby" ] || fail "standby returned '$got' after the primary's commit was replayed"
[ "$(rq "SELECT bypasses ->> 'hot_standby' FROM cachekit.query_stats WHERE query = 'SELECT v FROM s WHERE id = 1'")" = "3" ] ||
	fail "hot_standby bypasses not counted"
echo "ok - on a hot standby cached_query bypasses the cache (counted) and returns the replayed rows"

# The same through transparent caching: the statement as the application
# sends it, served by the cache node on the primary, bypassing on the standby.
read_transparent() {
	psql -X -q -At -h 127.0.0.1 -p "$rport" -d "$db" -v ON_ERROR_STOP=1 -c "SET cachekit.transparent = 'all'" \
		-c "SELECT v FROM s WHERE id = 1" -c "SELECT cachekit.last_outcome()" | tr '\n' ' '
}
[ "$(read_transparent)" = "second bypass:hot_standby " ] || fail "standby, transparent: $(read_transparent)"
psql -X -q -d "$db" -c "UPDATE s SET v = 'third'"
wait_replay
got=$(read_transparent)
[ "$got" = "third bypass:hot_standby " ] || fail "standby, transparent, after the primary's commit: '$got'"
echo "ok - on a hot standby a transparently served statement bypasses the cache and returns the replayed rows"
