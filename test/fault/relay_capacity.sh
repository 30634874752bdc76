#!/usr/bin/env bash
# More databases than relays is never silent (issue 7, item 14): with
# cachekit.max_databases = 2 one database gets no registry slot, and with
# max_worker_processes too low one gets no worker. Each time the launcher
# warns once, cachekit.health() of that database says why its relay is not
# running, and its commits stay durable (outbox rows, delivered once a relay
# serves it). Uses its own short-lived sandbox.
set -euo pipefail
cd "$(dirname "$0")/../.."
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=$(mktemp -d /tmp/pg_cachekit_relaycap.XXXXXX)
rmdir "$dir"
cleanup() { CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_EXTRA_CONF="cachekit.max_databases = 2" test/sandbox start 2>/dev/null)
eval "$env_lines"
log="$dir/postgres.log"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
r() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*"; exit 1; }
wait_for() {  # $1: seconds, $2: description, rest: command that must succeed
	local deadline=$((SECONDS + $1)) what=$2
	shift 2
	until "$@" >/dev/null; do
		((SECONDS < deadline)) || fail "timed out waiting for: $what"
		sleep 0.1
	done
}
relay() { q "$1" "SELECT cachekit.health() -> 'invalidation' -> 'relay' ->> '$2'"; }
restart() { as_postgres "$bindir/pg_ctl" -D "$dir/data" -m fast -w restart -l "$log" >/dev/null; }
scans() { q "$1" "SELECT cachekit.health() -> 'invalidation' -> 'relays' ->> 'launcher_scans'"; }
scanned_since() { [ "$(scans "$1")" -ge "$2" ]; }

[ "$(q postgres "SHOW cachekit.max_databases")" = "2" ] || fail "cachekit.max_databases not applied"
for d in db_a db_b db_c; do
	createdb "$d"
	q "$d" "CREATE EXTENSION pg_cachekit"
	q "$d" "CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (1, 'a')"
	q "$d" "SELECT cachekit.invalidate_key_on('users', 'app:cap:$d:{id}')" >/dev/null
done
# postgres, db_a, db_b and db_c accept connections; two slots. The launcher
# warns about a database once it went without a slot for a few scans.
without_slot() {
	local d
	for d in db_a db_b db_c; do
		[ "$(relay "$d" state)" = "no slot" ] && grep -q "no outbox relay for database \"$d\"" "$log" && echo "$d" && return 0
	done
	return 1
}
wait_for 60 "a database without a slot, warned about" without_slot
s=$(scans db_a)
wait_for 30 "a few more launcher scans" scanned_since db_a $((s + 3))
set -- $(without_slot)
x=$1
[ "$(relay "$x" running)" = "false" ] || fail "$x has no slot but a running relay"
relay "$x" reason | grep -q "cachekit.max_databases" || fail "health() does not say why: $(relay "$x" reason)"
[ "$(q "$x" "SELECT cachekit.health() -> 'invalidation' -> 'relays' ->> 'databases_without_slot'")" -ge 1 ] ||
	fail "health() does not count the databases without a slot"
[ "$(grep -c "cachekit launcher: no outbox relay for database \"$x\"" "$log")" = "1" ] ||
	fail "expected exactly one WARNING about $x, got $(grep -c "no outbox relay for database \"$x\"" "$log")"
echo "ok - $x gets no slot with cachekit.max_databases = 2: warned once, health() says why"

# Its commits are durable: an outbox row each, the key left for a relay.
r set "app:cap:$x:1" cached >/dev/null
q "$x" "UPDATE users SET name = 'b' WHERE id = 1"
[ "$(q "$x" "SELECT count(*) FROM cachekit.outbox")" = "1" ] || fail "the commit in $x wrote no outbox row"
[ "$(relay "$x" queue_entries)" = "0" ] || fail "the commit in $x went to the queue, which no relay serves"
sleep 1
[ "$(r exists "app:cap:$x:1")" = "1" ] || fail "who deleted the key in $x without a relay?"
echo "ok - commits in $x (no relay) are kept in its outbox"

# Enough slots: the relay comes and delivers.
q postgres "ALTER SYSTEM SET cachekit.max_databases = 8"
restart
key_gone() { [ "$(r exists "$1")" = "0" ]; }
wait_for 30 "the relay of $x to deliver its outbox" key_gone "app:cap:$x:1"
[ "$(q "$x" "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "the outbox of $x was not emptied"
echo "ok - with cachekit.max_databases raised, $x gets its relay and its outbox is delivered"

# Not enough background workers: the logical replication launcher and ours
# take two of three; the third serves one database at a time.
q postgres "ALTER SYSTEM SET max_worker_processes = 3"
restart
without_worker() {
	local d
	for d in db_a db_b db_c; do
		[ "$(relay "$d" state)" = "no worker" ] && grep -q "could not start an outbox relay for database \"$d\"" "$log" && echo "$d" && return 0
	done
	return 1
}
wait_for 60 "a database without a worker, warned about" without_worker
s=$(scans db_a)
wait_for 30 "a few more launcher scans" scanned_since db_a $((s + 3))
set -- $(without_worker)
y=$1
relay "$y" reason | grep -q "max_worker_processes" || fail "health() does not say why: $(relay "$y" reason)"
[ "$(grep -c "cachekit launcher: could not start an outbox relay for database \"$y\"" "$log")" = "1" ] ||
	fail "expected exactly one WARNING about $y"
r set "app:cap:$y:1" cached >/dev/null
q "$y" "UPDATE users SET name = 'c' WHERE id = 1"
[ "$(q "$y" "SELECT count(*) FROM cachekit.outbox")" = "1" ] || fail "the commit in $y wrote no outbox row"
echo "ok - $y gets no worker with max_worker_processes = 3: warned once, health() says why, commits kept in its outbox"
