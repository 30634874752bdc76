#!/usr/bin/env bash
# Prepared transactions outlive a restart; pg_cachekit then learns of them
# from pg_prepared_xacts at the first cached_query of the database (all of
# them: it cannot tell which wrote a watched table). With more of them than it
# used to have room for (64), cached_query must bypass the cache (never fail)
# while they are undecided, and read fresh rows once they are committed.
# 60 of them write the watched table, 10 another one: before the restart no
# more than 64 are registered, so this also ran on the old fixed-size table.
# Needs max_prepared_transactions > 70 (test/sandbox sets 100).
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_prepared_many
n=70
n_watched=60
data_dir="$CACHEKIT_SANDBOX_DIR/data"
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
read_n() { q "SELECT n || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT count(*) FROM pm_t') AS r(n bigint)"; }
wait_ready() { for _ in $(seq 1 100); do pg_isready -q && return 0; sleep 0.1; done; echo "server did not come back"; return 1; }
fail() { echo "not ok - $*"; exit 1; }
cleanup() {
	# Never leave prepared transactions behind: they would hold their locks
	# and block DROP DATABASE (and the scripts after this one).
	psql -X -q -At -d "$db" -c "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()" 2>/dev/null |
		while read -r gid; do psql -X -q -d "$db" -c "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true; done
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}

max=$(psql -X -At -c "SHOW max_prepared_transactions")
((max > n)) || { echo "skip: max_prepared_transactions is $max, need more than $n"; exit 77; }
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
trap cleanup EXIT
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE pm_t (id int PRIMARY KEY); INSERT INTO pm_t VALUES (0)"
q "CREATE TABLE pm_other (id int PRIMARY KEY)"
q "SELECT cachekit.watch('pm_t')" >/dev/null
[ "$(read_n)" = "1 miss" ] || fail "first read"
[ "$(read_n)" = "1 hit" ] || fail "second read should hit"

for i in $(seq 1 $n); do
	table=pm_t
	((i <= n_watched)) || table=pm_other
	echo "BEGIN; INSERT INTO $table VALUES ($i); PREPARE TRANSACTION 'pm_$i';"
done | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
[ "$(q "SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()")" = "$n" ] ||
	fail "not all $n transactions were prepared"

as_postgres "$bindir/pg_ctl" -D "$data_dir" -m fast -w restart >/dev/null
wait_ready
got=$(read_n 2>&1) || fail "cached_query failed with $n prepared transactions after a restart: $got"
[ "$got" = "1 bypass:prepared_transaction" ] || fail "expected '1 bypass:prepared_transaction', got '$got'"
echo "ok - after a restart with $n prepared transactions cached_query bypasses ($got)"

for i in $(seq 1 $n); do echo "COMMIT PREPARED 'pm_$i';"; done | psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
got=$(read_n)
[ "$got" = "$((n_watched + 1)) miss" ] || fail "after COMMIT PREPARED: expected '$((n_watched + 1)) miss', got '$got'"
[ "$(read_n)" = "$((n_watched + 1)) hit" ] || fail "the cache does not hit again"
echo "ok - after COMMIT PREPARED the reads are fresh and cached again"
