#!/usr/bin/env bash
# Transparent caching (cachekit.transparent) under faults and real clients:
#  1. a libpq client (test/transparent/protocol.cpp): hits return the bytes
#     and row description of the direct statement, text and binary, unnamed
#     and named prepared statements, pipeline and single-row mode;
#  2. Redis stopped: L1 still serves the right rows; with L1 off the
#     statement bypasses and still answers; a write committed meanwhile is
#     seen; Redis back: hits again;
#  3. a session holding a key's lease (paused before its store) is
#     terminated: a session waiting for that key is not stuck, answers with
#     the right rows, and the next call hits;
#  4. a database without pg_cachekit whose owner made a look-alike schema
#     "cachekit" with an _invalidate() trigger function: nothing is served
#     there (its "watched" table would never be invalidated).
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_transparent
source test/fault/lib_tasks.bash
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""

bin=build/cmake/cachekit_protocol
if [[ ! -x $bin ]]; then
	echo "# $bin is missing; building it" >&2
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
	cmake --build build/cmake -j2 --target cachekit_protocol >&2
fi

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	test/sandbox redis-start >/dev/null 2>&1 || true
	dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
createdb "$db"
export PGDATABASE=$db
q "CREATE EXTENSION pg_cachekit" >/dev/null

# 1. A real client.
"$bin" || fail "the libpq client saw a difference (see above)"
echo "ok - libpq client: text and binary, unnamed, named, pipeline, single-row"

# 2. Redis stopped.
q "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g * 10 FROM generate_series(1, 20) g" >/dev/null
q "SELECT cachekit.watch('t')" >/dev/null
tq() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "SET cachekit.transparent = 'all'" -c "$1" -c "SELECT cachekit.last_outcome()" 2>/dev/null | tr '\n' ' '; }
got=$(tq "SELECT v FROM t WHERE id = 3")
[ "$got" = "30 miss " ] || fail "before the outage: got '$got'"
got=$(tq "SELECT v FROM t WHERE id = 3")
[ "$got" = "30 hit " ] || fail "before the outage: got '$got'"
test/sandbox redis-stop >/dev/null
got=$(tq "SELECT v FROM t WHERE id = 3")
[ "$got" = "30 hit " ] || fail "Redis stopped, L1 on: got '$got', want an L1 hit"
got=$(psql -X -q -At -d "$db" -c "SET cachekit.transparent = 'all'" -c "SET cachekit.l1 = off" \
	-c "SELECT v FROM t WHERE id = 3" -c "SELECT cachekit.last_outcome()" 2>/dev/null | tr '\n' ' ')
[ "$got" = "30 bypass:redis_unavailable " ] || fail "Redis stopped, L1 off: got '$got'"
q "UPDATE t SET v = 31 WHERE id = 3"
got=$(tq "SELECT v FROM t WHERE id = 3")
[ "$got" = "31 bypass:redis_unavailable " ] || fail "Redis stopped, after a write: got '$got'"
echo "ok - Redis stopped: L1 serves, L1 off bypasses, a write is seen"
test/sandbox redis-start >/dev/null
wait_for 10 "Redis back" bash -c "[ \"\$(psql -X -q -At -d $db -c \"SET cachekit.transparent = 'all'\" -c 'SELECT v FROM t WHERE id = 4' -c 'SELECT cachekit.last_outcome()' | tr '\n' ' ')\" = '40 miss ' ]"
got=$(tq "SELECT v FROM t WHERE id = 4")
[ "$got" = "40 hit " ] || fail "Redis back: got '$got'"
echo "ok - Redis back: miss, then hit"

# 3. The lease holder terminated before its store.
q "CREATE TABLE agg (g int, v int); INSERT INTO agg SELECT g % 5, g FROM generate_series(1, 50000) g" >/dev/null
q "SELECT cachekit.watch('agg')" >/dev/null
stmt="SELECT g, sum(v) FROM agg GROUP BY g ORDER BY g"
want=$(q "$stmt" | tr '\n' ' ')
psql -X -q -At -d "$db" -c "SELECT pg_advisory_lock(4242)" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
pids+=($!)
wait_for 10 "the lock holder" bash -c "[ \"\$(psql -X -At -d $db -c \"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND granted\")\" = 1 ]"
psql -X -q -At -d "$db" -c "SET cachekit.transparent = 'all'" -c "SET cachekit.debug_pause_lock = 4242" \
	-c "SET cachekit.debug_pause_at = 'before_store'" -c "SET application_name = 'lease_holder'" \
	-c "$stmt" >/dev/null 2>&1 &
pids+=($!)
wait_for 10 "the lease holder to wait before its store" bash -c "[ \"\$(psql -X -At -d $db -c \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lease_holder' AND wait_event_type = 'Lock'\")\" = 1 ]"
start=$(now_ms)
waiter_out=$(mktemp)
psql -X -q -At -d "$db" -c "SET cachekit.transparent = 'all'" -c "SET cachekit.coalesce_wait_ms = 20000" \
	-c "SET application_name = 'waiter'" -c "$stmt" -c "SELECT cachekit.last_outcome()" >"$waiter_out" 2>&1 &
waiter=$!
wait_for 10 "the waiter to wait for the lease" bash -c "[ \"\$(psql -X -At -d $db -c \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waiter' AND state = 'active'\")\" = 1 ]"
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'lease_holder'" >/dev/null
wait "$waiter" || fail "the waiter failed: $(cat "$waiter_out")"
elapsed=$(($(now_ms) - start))
got=$(tr '\n' ' ' <"$waiter_out")
rm -f "$waiter_out"
[ "$got" = "${want}miss " ] || fail "the waiter: got '$got', want '${want}miss ' (it runs the statement itself)"
got=$(psql -X -q -At -d "$db" -c "SET cachekit.transparent = 'all'" -c "SET cachekit.coalesce_wait_ms = 20000" \
	-c "$stmt" -c "SELECT cachekit.last_outcome()" | tr '\n' ' ')
[ "$got" = "${want}hit " ] || fail "after the lease holder's end: got '$got', want '${want}hit '"
((elapsed < 15000)) || fail "the waiter took ${elapsed} ms: it waited for a dead lease"
echo "ok - a terminated lease holder does not hold up the waiter (${elapsed} ms), whose result is then a hit"

# 4. The look-alike schema.
fake=cachekit_transparent_fake
dropdb --if-exists --force "$fake" >/dev/null 2>&1 || true
createdb "$fake"
psql -X -q -v ON_ERROR_STOP=1 -d "$fake" >/dev/null <<'SQL'
CREATE SCHEMA cachekit;
CREATE FUNCTION cachekit._invalidate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t VALUES (1, 1);
CREATE TRIGGER cachekit_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON t
    FOR EACH STATEMENT EXECUTE FUNCTION cachekit._invalidate();
SQL
plan=$(psql -X -q -At -d "$fake" -c "SET cachekit.transparent = 'all'" -c "EXPLAIN (COSTS OFF) SELECT v FROM t WHERE id = 1")
dropdb --force "$fake"
[[ $plan != *cachekit* ]] || fail "a look-alike schema made a table count as watched: $plan"
echo "ok - no transparent caching where pg_cachekit is not installed, whatever a database owner names \"cachekit\""
