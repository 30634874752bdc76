#!/usr/bin/env bash
# The L1 tier under pressure, on a cluster of its own with a small L1
# (cachekit.l1_size = 1MB) and its own Redis:
#  1. CLOCK: a flood of one-off keys of old generations (a writer keeps
#     invalidating their table) cycles L1 several times while a few hot keys
#     are read: the hot keys stay L1 hits (at most one refill each and 0.5 %
#     of their hits from Redis; plain FIFO would refill each of them from
#     Redis on every cycle).
#  2. Redis stopped: L1 still serves the hot keys, with the right values; a
#     write still changes what the next read returns.
#  3. Miss coalescing: sessions waiting for another session's run of their
#     key take its result from L1 (the lease is released after the store).
#  4. The consistency checker (test/consistency) with L1 on, while pgbench
#     clients hammer hot keys and flood L1 and a writer commits: no stale or
#     phantom read.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_l1
source test/fault/lib_tasks.bash
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""

bin=build/cmake/cachekit_consistency
if [[ ! -x $bin ]]; then
	echo "# $bin is missing; building it" >&2
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >&2
	cmake --build build/cmake -j2 --target cachekit_consistency >&2
fi

dir=$(mktemp -d /tmp/pg_cachekit_l1.XXXXXX)
rmdir "$dir"
work=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_EXTRA_CONF="cachekit.l1_size = '1MB'
max_connections = 40" test/sandbox start 2>/dev/null)
eval "$env_lines"
export PGDATABASE=$db
createdb "$db"
q "SHOW cachekit.l1_size" | grep -qx 1MB || fail "the cluster did not take cachekit.l1_size = 1MB"
q "CREATE EXTENSION pg_cachekit" >/dev/null
q "CREATE TABLE hot (id int PRIMARY KEY, v int); INSERT INTO hot SELECT g, g * 10 FROM generate_series(1, 100) g" >/dev/null
q "CREATE TABLE cold (id int PRIMARY KEY, v int); INSERT INTO cold SELECT g, g FROM generate_series(1, 10) g" >/dev/null
q "SELECT cachekit.watch('hot'), cachekit.watch('cold')" >/dev/null

hot_query='SELECT v FROM hot WHERE id = $1'
cat >"$work/hot.sql" <<SQL
\set id random(1, 100)
SELECT * FROM cachekit.cached_query('$hot_query', ARRAY[:id::text]) AS r(v int);
SQL
# One-off keys (a fresh parameter each call), and of old generations: the
# writer below keeps changing their table.
cat >"$work/flood.sql" <<'SQL'
\set p random(1, 2000000000)
SELECT * FROM cachekit.cached_query('SELECT $1::int + sum(v) FROM cold', ARRAY[:p::text]) AS r(s bigint);
SQL
cat >"$work/cold_writer.sql" <<'SQL'
UPDATE cold SET v = v + 1 WHERE id = 1;
SQL
l1() { q "SELECT (cachekit.health() -> 'l1' ->> '$1')::bigint"; }
hot_stats() { q "SELECT coalesce(sum(hits), 0) || ' ' || coalesce(sum(l1_hits), 0) || ' ' || coalesce(sum(misses), 0) FROM cachekit.query_stats WHERE query = '$hot_query'"; }
start_load() { # $1: hot clients, $2: flood clients
	pgbench -n -f "$work/hot.sql" -c "$1" -j "$1" -T 300 "$db" >"$work/hot.log" 2>&1 &
	pids+=($!)
	pgbench -n -f "$work/flood.sql" -c "$2" -j "$2" -T 300 "$db" >"$work/flood.log" 2>&1 &
	pids+=($!)
	pgbench -n -f "$work/cold_writer.sql" -c 1 -R 20 -T 300 "$db" >"$work/writer.log" 2>&1 &
	pids+=($!)
}
stop_load() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	pids=()
}

# --- 1. CLOCK keeps the hot keys ------------------------------------------
for _ in 1 2; do
	for i in $(seq 1 100); do echo "SELECT * FROM cachekit.cached_query('$hot_query', ARRAY['$i']) AS r(v int);"; done |
		psql -X -q -At -v ON_ERROR_STOP=1 >/dev/null
done
q "SELECT cachekit.query_stats_reset()" >/dev/null
read -r hits0 l1_hits0 misses0 <<<"$(hot_stats)"
[ "$hits0 $l1_hits0 $misses0" = "0 0 0" ] || fail "query_stats not reset: $hits0 $l1_hits0 $misses0"
capacity=$(l1 capacity_bytes)
slots=$((capacity / 512))  # core/l1_table: a slot per two 256-byte blocks
evictions0=$(l1 evictions)
target=$((evictions0 + 4 * slots))
start_load 2 3
deadline=$((SECONDS + 120))
until (($(l1 evictions) >= target)); do
	((SECONDS < deadline)) || fail "the flood evicted only $(($(l1 evictions) - evictions0)) entries in 120 s (wanted $((4 * slots)))"
	sleep 0.5
done
stop_load
read -r hits l1_hits misses <<<"$(hot_stats)"
evicted=$(($(l1 evictions) - evictions0))
((hits >= 1000)) || fail "the hot readers made only $hits hits"
((misses == 0)) || fail "$misses misses of hot keys (they were in Redis)"
# FIFO would refill each of the 100 hot keys from Redis on every turn (400+
# reads from Redis); CLOCK keeps them, allowing one refill of each (a stall of
# the hot readers on a loaded machine long enough for a whole turn) and 0.5 %.
((hits - l1_hits <= 100 + hits / 200)) ||
	fail "hot keys: $l1_hits of $hits hits from L1 while the flood evicted $evicted entries (~$((evicted / slots)) turns of L1)"
echo "ok - a flood of one-off keys of old generations evicted $evicted L1 entries (~$((evicted / slots)) times L1's $slots slots); hot keys: $l1_hits of $hits hits served from L1"

# --- 2. Redis stopped -------------------------------------------------------
# Every hot key back in L1 (a Redis hit refills one that was evicted), and
# a query of the other table.
cold_query='SELECT sum(v) FROM cold'
for i in $(seq 1 100); do echo "SELECT * FROM cachekit.cached_query('$hot_query', ARRAY['$i']) AS r(v int);"; done |
	psql -X -q -At -v ON_ERROR_STOP=1 >/dev/null
q "SELECT * FROM cachekit.cached_query('$cold_query') AS r(s bigint)" >/dev/null
cold_sum=$(q "SELECT sum(v) FROM cold")
read -r hits0 l1_hits0 misses0 <<<"$(hot_stats)"
CACHEKIT_SANDBOX_DIR=$dir test/sandbox redis-stop
got=$(for i in $(seq 1 100); do echo "SELECT $i || ':' || v FROM cachekit.cached_query('$hot_query', ARRAY['$i']) AS r(v int);"; done |
	psql -X -q -At -v ON_ERROR_STOP=1 2>&1)
want=$(q "SELECT id || ':' || v FROM hot ORDER BY id")
[ "$got" = "$want" ] || fail "with Redis stopped, L1 served: $(diff <(echo "$want") <(echo "$got") | head -5)"
read -r hits l1_hits misses <<<"$(hot_stats)"
((l1_hits - l1_hits0 == 100)) || fail "with Redis stopped: $((l1_hits - l1_hits0)) of 100 reads from L1"
q "UPDATE hot SET v = -1 WHERE id = 7" >/dev/null
got=$(psql -X -q -At -v ON_ERROR_STOP=1 2>/dev/null <<SQL
SELECT v FROM cachekit.cached_query('$hot_query', ARRAY['7']) AS r(v int);
SELECT cachekit.last_outcome();
SELECT v FROM cachekit.cached_query('$hot_query', ARRAY['8']) AS r(v int);
SELECT cachekit.last_outcome();
SELECT s FROM cachekit.cached_query('$cold_query') AS r(s bigint);
SELECT cachekit.last_outcome();
SQL
)
# The write changed the table's generation: every key of it is new (and
# Redis is down); the other table's entry is still in L1.
[ "$got" = "-1"$'\nbypass:redis_unavailable\n80\nbypass:redis_unavailable\n'"$cold_sum"$'\nhit' ] ||
	fail "after a write with Redis stopped: $(tr '\n' ' ' <<<"$got")"
CACHEKIT_SANDBOX_DIR=$dir test/sandbox redis-start
echo "ok - Redis stopped: 100 hot keys served from L1 with the right values; a write changed the next reads of its table (bypass, -1), another table's entry still hit"

# --- 3. Waiters of a lease look in L1 first -----------------------------------
q "CREATE TABLE big AS SELECT g AS id, g % 1000 AS v FROM generate_series(1, 1000000) g" >/dev/null
q "SELECT cachekit.watch('big')" >/dev/null
heavy='SELECT count(*) AS n, sum(v) AS s FROM big WHERE v % $1::int = 0'
want=$(q "SELECT count(*) || ':' || sum(v) FROM big WHERE v % 7 = 0")
q "SELECT * FROM cachekit.cached_query('$heavy', ARRAY['7']) AS r(n bigint, s bigint)" >/dev/null
q "UPDATE big SET v = v WHERE id = 1" >/dev/null
q "SELECT cachekit.query_stats_reset()" >/dev/null
coalesced() { q "SELECT (regexp_match(cachekit.metrics(), 'cachekit_query_cache_coalesced_total ([0-9]+)'))[1]"; }
coalesced0=$(coalesced)
# 16 sessions released together by an advisory lock held here.
psql -X -q -At -c "SELECT pg_advisory_lock(4712); SELECT pg_sleep(2); SELECT pg_advisory_unlock(4712)" >/dev/null &
ctl=$!
sleep 0.5
wave=()
for i in $(seq 1 16); do
	psql -X -q -At -v ON_ERROR_STOP=1 >"$work/wave.$i" 2>&1 <<SQL &
SET cachekit.coalesce_wait_ms = 10000;
SELECT pg_advisory_lock_shared(4712);
SELECT pg_advisory_unlock_shared(4712);
SELECT n || ':' || s FROM cachekit.cached_query('$heavy', ARRAY['7']) AS r(n bigint, s bigint);
SQL
	wave+=($!)
done
wait "$ctl" "${wave[@]}"
bad=$(grep -L -x -- "$want" "$work"/wave.* || true)
[ -z "$bad" ] || fail "coalesced wave: wrong results (want $want) in $(for f in $bad; do tr '\n' ' ' <"$f"; done | head -c 300)"
read -r hits l1_hits misses <<<"$(q "SELECT sum(hits) || ' ' || sum(l1_hits) || ' ' || sum(misses) FROM cachekit.query_stats WHERE query = '$heavy'")"
((misses == 1 && hits == 15)) || fail "coalesced wave: $misses misses, $hits hits of 16 calls (expected 1 and 15)"
((l1_hits == 15)) || fail "coalesced wave: $l1_hits of the 15 hits came from L1"
waited=$(($(coalesced) - coalesced0))
((waited >= 1)) || fail "coalesced wave: no call waited for the lease (the test did not make concurrent misses)"
echo "ok - 16 concurrent calls after an invalidation: one ran the query; 15 hits from L1, $waited of them after waiting for its lease ($want)"

# --- 4. Consistency under load with L1 on ------------------------------------
cdb=cachekit_l1_consistency
createdb "$cdb"
qdb "$cdb" "CREATE EXTENSION pg_cachekit" >/dev/null
start_load 2 2
rc=0
PGDATABASE=$cdb "$bin" --writers 3 --readers 4 --ops 2000 --seed 11 >"$work/consistency.log" 2>&1 || rc=$?
stop_load
l1_hits_c=$(qdb "$cdb" "SELECT coalesce(sum(l1_hits), 0) FROM cachekit.query_stats")
dropdb "$cdb"
((rc == 0)) || fail "consistency checker with L1 on under load (exit $rc): $(tail -5 "$work/consistency.log")"
((l1_hits_c > 0)) || fail "the consistency checker's reads never hit L1"
echo "ok - consistency checker (3 writers, 4 readers, seed 11) with L1 on, under hot-key and flood load: no stale or phantom read ($l1_hits_c L1 hits)"
