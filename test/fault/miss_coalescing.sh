#!/usr/bin/env bash
# Miss coalescing: 64 sessions call the same heavy cached_query at once right
# after an invalidation. With cachekit.coalesce_wait_ms the query runs once
# (query_stats: one miss, 63 hits) and every session gets the committed
# value; with coalescing off, it runs in (nearly) every session. A waiter
# never takes the result of another key: sessions asking for another
# parameter run their own query.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_coalesce
source test/fault/lib_tasks.bash
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
work=$(mktemp -d)
cleanup() {
	rm -rf "$work"
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1 || true
createdb "$db"
q "CREATE EXTENSION pg_cachekit" >/dev/null
q "CREATE TABLE big (id int PRIMARY KEY, v int); INSERT INTO big SELECT g, g % 1000 FROM generate_series(1, 1000000) g; ANALYZE big"
q "SELECT cachekit.watch('big')" >/dev/null
heavy="SELECT count(*) AS n, sum(a.v) AS s FROM big a WHERE a.v % \$1::int = 0"

# 64 sessions, released together by an advisory lock the controller holds
# until all 64 wait for it (on a loaded box, starting 64 psql takes seconds:
# a fixed delay let late sessions come one by one, and hit).
run_wave() { # $1: label, $2: coalesce_wait_ms, $3: parameter of half of them (empty: all 7)
	local label=$1 wait=$2 other=$3 i param
	rm -f "$work/locked"
	psql -X -q -At -d "$db" >/dev/null <<SQL &
SELECT pg_advisory_lock(4711);
\! touch $work/locked
DO \$\$ BEGIN
    FOR i IN 1..1200 LOOP
        EXIT WHEN (SELECT count(*) FROM pg_catalog.pg_locks
                    WHERE locktype = 'advisory' AND objid = 4711 AND NOT granted) >= 64;
        PERFORM pg_catalog.pg_sleep(0.05);
    END LOOP;
END \$\$;
SELECT pg_advisory_unlock(4711);
SQL
	local ctl=$!
	for i in $(seq 1 200); do
		[ -e "$work/locked" ] && break
		sleep 0.05
	done
	for i in $(seq 1 64); do
		param=7
		if [ -n "$other" ] && ((i % 2 == 0)); then param=$other; fi
		psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 >"$work/$label.$i" 2>&1 <<SQL &
SET cachekit.coalesce_wait_ms = $wait;
SELECT pg_advisory_lock_shared(4711);
SELECT pg_advisory_unlock_shared(4711);
SELECT '$param:' || n || ':' || s FROM cachekit.cached_query('$heavy', ARRAY['$param']) AS r(n bigint, s bigint);
SELECT cachekit.last_outcome();
SQL
	done
	wait
}
counts() { # misses and hits of the heavy query so far
	q "SELECT coalesce(sum(misses), 0) || ' ' || coalesce(sum(hits), 0) FROM cachekit.query_stats WHERE query LIKE '%FROM big a%'"
}
expected() { q "SELECT '$1:' || count(*) || ':' || sum(v) FROM big WHERE v % $1 = 0"; }

# Coalescing on: after an invalidation, one run.
q "UPDATE big SET v = v WHERE id = 1" >/dev/null
q "SELECT cachekit.query_stats_reset()" >/dev/null
run_wave on 5000 ""
read -r misses hits <<<"$(counts)"
want=$(expected 7)
bad=$(grep -L -x -- "$want" "$work"/on.* || true)
[ -z "$bad" ] || fail "wrong or missing results (want $want) in: $(for f in $bad; do echo "$f: $(tr '\n' ' ' <"$f")"; done | head -5)"
[ "$misses" = 1 ] && [ "$hits" = 63 ] || fail "coalescing on: $misses misses and $hits hits of 64 calls, expected 1 and 63"
echo "ok - 64 concurrent calls after an invalidation: the query ran once (1 miss, 63 hits), all 64 got $want"

# Two keys at once: each runs once, nobody takes the other's result.
q "UPDATE big SET v = v WHERE id = 1" >/dev/null
q "SELECT cachekit.query_stats_reset()" >/dev/null
run_wave two 5000 11
read -r misses hits <<<"$(counts)"
w7=$(expected 7) w11=$(expected 11)
for i in $(seq 1 64); do
	want=$w7
	((i % 2 == 0)) && want=$w11
	grep -q -x -- "$want" "$work/two.$i" || fail "session $i: want $want, got $(tr '\n' ' ' <"$work/two.$i")"
done
[ "$misses" = 2 ] && [ "$hits" = 62 ] || fail "two keys: $misses misses and $hits hits, expected 2 and 62"
echo "ok - 32 + 32 concurrent calls of two keys: each ran once (2 misses, 62 hits), each session got its own key's rows"

# Coalescing off: the baseline runs the query in many sessions.
q "UPDATE big SET v = v WHERE id = 1" >/dev/null
q "SELECT cachekit.query_stats_reset()" >/dev/null
run_wave off 0 ""
read -r misses hits <<<"$(counts)"
((misses >= 4)) || fail "coalescing off: only $misses misses of 64 concurrent calls: the test does not create concurrent misses"
echo "ok - with cachekit.coalesce_wait_ms = 0 the same wave ran the query $misses times"
