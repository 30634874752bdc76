#!/usr/bin/env bash
# Cached reads on a logical-replication subscriber stay fresh, key rules
# delete their keys there, and CDN purge rules queue their purges there. The apply worker writes with
# session_replication_role = replica and fires row triggers only (statement
# triggers only for TRUNCATE): the extension's row triggers (ENABLE REPLICA)
# and its statement triggers (ENABLE ALWAYS) must cover every change.
#
# A second, throwaway cluster is the publisher (wal_level = logical, no
# extension); the sandbox is the subscriber, with the extension, a watched
# table, a key rule and the sandbox's Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_logical_sub
pubdb=cachekit_logical_pub
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() { echo "not ok - $*"; exit 1; }
rc() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
tmp=$(mktemp -d)
sub_pid=

pdir=$(mktemp -d /tmp/pg_cachekit_publisher.XXXXXX)
[ "$(id -u)" -eq 0 ] && chown postgres "$pdir" && chmod 700 "$pdir"
pport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sq() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
pq() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pport" -U postgres -d "$pubdb" -c "$1"; }
cleanup() {
	[ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
	rm -rf "$tmp"
	# The subscription's slot lives on the publisher: drop it while the
	# publisher is up, or detach it from the slot if that fails.
	if ! psql -X -q -d "$db" -c "DROP SUBSCRIPTION IF EXISTS ck_sub" >/dev/null 2>&1; then
		psql -X -q -d "$db" -c "ALTER SUBSCRIPTION ck_sub DISABLE" >/dev/null 2>&1 || true
		psql -X -q -d "$db" -c "ALTER SUBSCRIPTION ck_sub SET (slot_name = NONE)" >/dev/null 2>&1 || true
		psql -X -q -d "$db" -c "DROP SUBSCRIPTION IF EXISTS ck_sub" >/dev/null 2>&1 || true
	fi
	as_postgres "$bindir/pg_ctl" -D "$pdir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$pdir"
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "ALTER SYSTEM RESET cachekit.cdn_enabled" -c "ALTER SYSTEM RESET cachekit.cdn_provider" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The publisher.
as_postgres "$bindir/initdb" -D "$pdir/data" --auth=trust -U postgres --encoding=UTF8 --locale=C.UTF-8 >"$pdir/initdb.log" 2>&1 ||
	{ cat "$pdir/initdb.log"; fail "initdb of the publisher failed"; }
as_postgres "$bindir/pg_ctl" -D "$pdir/data" -l "$pdir/publisher.log" -w -t 30 \
	-o "-p $pport -c listen_addresses=127.0.0.1 -c unix_socket_directories=$pdir -c wal_level=logical -c fsync=off" \
	start >/dev/null || { cat "$pdir/publisher.log"; fail "the publisher did not start"; }
psql -X -q -h 127.0.0.1 -p "$pport" -U postgres -d postgres -c "CREATE DATABASE $pubdb"
pq "CREATE TABLE lr (id int PRIMARY KEY, v text)"
pq "INSERT INTO lr VALUES (1, 'one'), (2, 'two')"
pq "CREATE PUBLICATION ck_pub FOR TABLE lr"

# The subscriber: the sandbox.
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
sq "CREATE EXTENSION pg_cachekit"
sq "CREATE TABLE lr (id int PRIMARY KEY, v text)"
sq "SELECT cachekit.watch('lr')" >/dev/null
sq "SELECT cachekit.invalidate_key_on('lr', 'lr:{id}')" >/dev/null
# A CDN purge rule; its purges stay queued (queue cdn paused) for the check.
psql -X -q -d postgres -c "ALTER SYSTEM SET cachekit.cdn_enabled = on" -c "ALTER SYSTEM SET cachekit.cdn_provider = 'http'" \
	-c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 100); do [ "$(sq "SHOW cachekit.cdn_enabled")" = on ] && break; sleep 0.1; done
sq "SELECT cachekit.pause_queue('cdn')" >/dev/null
sq "SELECT cachekit.cdn_purge_on('lr', '/lr/{v}.html', 'lr pages')" >/dev/null
# After an unclean start (an earlier test crashed the server) a database's
# relay flushes all its rules' keys once, when it first looks. Until then
# commits leave their invalidation in the outbox: one commit and an empty
# outbox afterwards mean the relay has done it.
sq "CREATE TABLE lr_barrier (id int)"
sq "SELECT cachekit.watch('lr_barrier')" >/dev/null
sq "INSERT INTO lr_barrier VALUES (1)"
for _ in $(seq 1 300); do [ "$(sq "SELECT count(*) FROM cachekit.outbox")" = "0" ] && break; sleep 0.1; done
[ "$(sq "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "the relay did not drain the outbox"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning" \
	-c "CREATE SUBSCRIPTION ck_sub CONNECTION 'host=127.0.0.1 port=$pport user=postgres dbname=$pubdb' PUBLICATION ck_pub"
for _ in $(seq 1 300); do
	[ "$(sq "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'")" = "0" ] &&
		[ "$(sq "SELECT count(*) FROM lr")" = "2" ] && break
	sleep 0.1
done
[ "$(sq "SELECT count(*) FROM lr")" = "2" ] || fail "the initial copy did not reach the subscriber"

read_sub() {
	sq "SELECT coalesce(string_agg(id || '=' || v, ',' ORDER BY id), '-') || ' ' || cachekit.last_outcome()
	      FROM cachekit.cached_query('SELECT id, v FROM lr') AS r(id int, v text)"
}
# Polls the subscriber (plain SELECT, not cached) until $1 holds.
wait_sub() {
	for _ in $(seq 1 300); do [ "$(sq "$1")" = "t" ] && return 0; sleep 0.1; done
	fail "the subscriber did not apply the change within 30 s ($1)"
}
# Key rules delete at commit (patterns: by the relay), so poll briefly.
wait_keys_gone() {
	local k
	for k in "$@"; do
		for _ in $(seq 1 300); do [ "$(rc exists "$k")" = "0" ] && continue 2; sleep 0.1; done
		fail "key $k still in Redis after the change was applied on the subscriber"
	done
}
# This database's table messages: "table<TAB>operations<TAB>rows<TAB>keys".
messages() {
	python3 -c '
import csv, json, sys
for row in csv.reader(open(sys.argv[1]), escapechar="\\", doublequote=False):
    if len(row) == 3 and row[0] == "message":
        m = json.loads(row[2])
        if m.get("database") == sys.argv[2] and "table" in m and "INSERT" not in m["operations"]:
            print(m["table"], ",".join(m["operations"]), m["rows"], ",".join(m["keys"]), sep="\t")
' "$tmp/sub.csv" "$db"
}
cache_warm() {  # $1: the rows expected
	read_sub >/dev/null
	local got
	got=$(read_sub)
	[ "$got" = "$1 hit" ] || fail "expected a hit with '$1' before the change, got '$got'"
}
check_fresh() {  # $1: what, $2: rows expected
	local got
	got=$(read_sub)
	[ "$got" = "$2 miss" ] || fail "after $1 on the publisher the subscriber's cached_query returned '$got', expected '$2 miss'"
}

cache_warm "1=one,2=two"
rc mset lr:1 x lr:2 x lr:3 x lr:other x >/dev/null
pq "INSERT INTO lr VALUES (3, 'three')"
wait_sub "SELECT EXISTS (SELECT 1 FROM lr WHERE id = 3)"
check_fresh INSERT "1=one,2=two,3=three"
wait_keys_gone lr:3
[ "$(rc exists lr:1 lr:2)" = "2" ] || fail "INSERT of row 3 deleted other rows' keys"
echo "ok - INSERT on the publisher: the subscriber's next cached_query is fresh, lr:3 deleted"

cache_warm "1=one,2=two,3=three"
rc mset lr:1 x lr:2 x lr:3 x >/dev/null
# The INSERT's message may still be in the relay's queue: let it go before
# listening (messages() also leaves INSERTs out, for one taken from the
# queue and not yet published).
for _ in $(seq 1 300); do
	[ "$(sq "SELECT cachekit.health()->'invalidation'->'relay'->>'queue_entries'")" = 0 ] && break
	sleep 0.1
done
stdbuf -oL redis-cli -p "$CACHEKIT_REDIS_PORT" --csv subscribe cachekit:invalidate >"$tmp/sub.csv" &
sub_pid=$!
for _ in $(seq 1 50); do grep -q subscribe "$tmp/sub.csv" 2>/dev/null && break; sleep 0.1; done
pq "UPDATE lr SET v = v || '!' WHERE id IN (1, 2)"
wait_sub "SELECT v = 'two!' FROM lr WHERE id = 2"
check_fresh UPDATE "1=one!,2=two!,3=three"
wait_keys_gone lr:1 lr:2
[ "$(rc exists lr:3)" = "1" ] || fail "UPDATE of rows 1 and 2 deleted lr:3"
# One message for the applied transaction, its two rows counted once each
# although every row fires the row triggers of the table.
deadline=$((SECONDS + 10))
while ((SECONDS < deadline)) && [ -z "$(messages)" ]; do sleep 0.1; done
kill "$sub_pid" 2>/dev/null; wait "$sub_pid" 2>/dev/null || true; sub_pid=
[ "$(messages)" = "$(printf 'lr\tUPDATE\t2\tlr:1,lr:2')" ] || fail "the apply worker published: '$(messages)'"
echo "ok - UPDATE on the publisher: fresh on the subscriber, lr:1 and lr:2 deleted, one message with rows = 2"
# The purge rule fired in the apply worker: the old and new pages of both rows.
[ "$(sq "SELECT paths FROM cachekit.cdn_requests WHERE source = 'lr pages' AND paths @> '{/lr/two%21.html}'")" = \
	"{/lr/one%21.html,/lr/one.html,/lr/two%21.html,/lr/two.html}" ] ||
	fail "the CDN purge rule on the subscriber queued: $(sq "SELECT string_agg(paths::text, ' ') FROM cachekit.cdn_requests WHERE source = 'lr pages'")"
echo "ok - UPDATE on the publisher: the subscriber's CDN purge rule queued the old and new pages"

cache_warm "1=one!,2=two!,3=three"
rc mset lr:1 x lr:2 x lr:3 x >/dev/null
pq "DELETE FROM lr WHERE id = 1"
wait_sub "SELECT NOT EXISTS (SELECT 1 FROM lr WHERE id = 1)"
check_fresh DELETE "2=two!,3=three"
wait_keys_gone lr:1
[ "$(rc exists lr:2 lr:3)" = "2" ] || fail "DELETE of row 1 deleted other rows' keys"
echo "ok - DELETE on the publisher: fresh on the subscriber, lr:1 deleted"

cache_warm "2=two!,3=three"
rc mset lr:2 x lr:3 x lr:99 x >/dev/null
pq "TRUNCATE lr"
wait_sub "SELECT NOT EXISTS (SELECT 1 FROM lr)"
check_fresh TRUNCATE "-"
wait_keys_gone lr:2 lr:3 lr:99 lr:other
echo "ok - TRUNCATE on the publisher: fresh on the subscriber, every lr:* key deleted (pattern)"
