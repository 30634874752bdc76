#!/usr/bin/env bash
# Entries written before a server restart (or a crash restart) are never
# served after it, even when the generations after the restart climb back to
# the very values they had before: the server epoch is part of every key.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_epoch
data_dir="$CACHEKIT_SANDBOX_DIR/data"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1" | grep -v "^$" || true; }
read_v() { q "SELECT v || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT v FROM epoch_t WHERE id = 1') AS r(v text)"; }
wait_ready() { for _ in $(seq 1 600); do pg_isready -q && return 0; sleep 0.1; done; echo "server did not come back"; return 1; }
fail() { echo "not ok - $*"; exit 1; }

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1 || true' EXIT
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE epoch_t (id int PRIMARY KEY, v text); INSERT INTO epoch_t VALUES (1, 'before')"
q "SELECT cachekit.watch('epoch_t')"        # generation 1 after this commit

# A generation-1 entry holding 'before'.
[ "$(read_v)" = "before miss" ] || fail "first read"
[ "$(read_v)" = "before hit" ] || fail "second read should hit"

check_after_restart() {
	local how=$1 value=$2
	# After the restart the table's generation starts from 0 again: one
	# write brings it back to 1, the generation the old entry was stored under.
	q "UPDATE epoch_t SET v = '$value'"
	local got
	got=$(read_v)
	[ "$got" = "$value miss" ] || fail "after $how: expected '$value miss', got '$got' (an entry from before the restart was served)"
	echo "ok - after $how the pre-restart entry is not served ($got)"
	[ "$(read_v)" = "$value hit" ] || fail "after $how: the cache does not hit again"
}

as_postgres "${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}"/pg_ctl -D "$data_dir" -m fast -w restart >/dev/null
wait_ready
check_after_restart "a clean restart" "after-restart"

# A crash restart: kill -9 of a backend makes the postmaster re-create shared memory.
q "UPDATE epoch_t SET v = 'before'"         # generation 2
q "SELECT cachekit.invalidate_all()"
[ "$(read_v)" = "before miss" ] || fail "read before crash"
psql -X -At -d "$db" -c "SELECT pg_backend_pid(), pg_sleep(30)" >/dev/null 2>&1 &
victim=
for _ in $(seq 1 100); do
	victim=$(psql -X -At -d "$db" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_backend_pid(), pg_sleep%' AND pid <> pg_backend_pid() LIMIT 1")
	[ -n "$victim" ] && break
	sleep 0.1
done
[ -n "$victim" ] || fail "no backend to kill"
kill -9 "$victim"
sleep 1
wait_ready
sleep 1
# Generations restart at 0; three commits bring epoch_t back to 2 and the
# database generation back to where the old key had it (1).
q "UPDATE epoch_t SET v = 'x'"
q "SELECT cachekit.invalidate_all()"
check_after_restart "a crash restart" "after-crash"
wait
echo "ok - epoch changes at every start and crash restart"
