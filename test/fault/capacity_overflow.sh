#!/usr/bin/env bash
# More watched tables than cachekit.max_watched_tables: the tables without a
# slot share one coarse generation. Invalidation gets coarser (a write to any
# of them invalidates all of their cached results), never late. Uses its own
# short-lived sandbox with the smallest capacity.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d /tmp/pg_cachekit_capacity.XXXXXX)
rmdir "$dir"
cleanup() { CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_EXTRA_CONF="cachekit.max_watched_tables = 16" test/sandbox start 2>/dev/null)
eval "$env_lines"
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
read_t() { q "SELECT v || ' ' || cachekit.last_outcome() FROM cachekit.cached_query('SELECT v::text FROM t$1') AS r(v text)"; }
fail() { echo "not ok - $*"; exit 1; }

q "CREATE EXTENSION pg_cachekit" >/dev/null
[ "$(q "SHOW cachekit.max_watched_tables")" = "16" ] || fail "capacity setting not applied"
for i in $(seq 1 40); do
	q "CREATE TABLE t$i (v int); INSERT INTO t$i VALUES ($i); SELECT cachekit.watch('t$i')" >/dev/null
done
# Every table asks for a slot (watch() bumps it); 16 fit, the rest overflow.
for i in $(seq 1 40); do read_t "$i" >/dev/null; done
slots=$(q "SELECT count(*) FROM cachekit.table_stats WHERE table_name IS NOT NULL")
[ "$slots" -le 16 ] || fail "more slots than the capacity: $slots"

# t40 and t39 have no slot: they share the overflow generation.
[ "$(read_t 40)" = "40 hit" ] || fail "t40 should hit"
q "UPDATE t40 SET v = 400" >/dev/null
[ "$(read_t 40)" = "400 miss" ] || fail "a write to an overflowed table was not seen"
[ "$(read_t 40)" = "400 hit" ] || fail "t40 should hit again"
q "UPDATE t39 SET v = 390" >/dev/null
[ "$(read_t 40)" = "400 miss" ] || fail "coarse generation: a write to t39 should invalidate t40 too"
[ "$(read_t 39)" = "390 miss" ] || fail "t39 stale"
# A table with its own slot is not disturbed by overflow writes.
[ "$(read_t 1)" = "1 hit" ] || fail "t1 should still hit"
q "UPDATE t1 SET v = 10" >/dev/null
[ "$(read_t 1)" = "10 miss" ] || fail "t1 stale"

# A table watched by a column without a slot of its own: its structural
# generation is a shared overflow counter (coarse: any overflowed table's
# TRUNCATE or invalidate() invalidates it), its value buckets work as always.
q "CREATE TABLE tv (k int NOT NULL, v int NOT NULL); INSERT INTO tv VALUES (1, 1), (2, 2);
   SELECT cachekit.watch('tv', by => 'k')" >/dev/null
read_v() { q "SELECT v || ' ' || cachekit.last_outcome() || ' ' || (cachekit.last_dependencies()->0->>'scope')
                FROM cachekit.cached_query('SELECT sum(v)::text FROM tv WHERE k = \$1', ARRAY['$1']) AS r(v text)"; }
read_v 1 >/dev/null
[ "$(read_v 1)" = "1 hit value" ] || fail "tv k=1 should hit, by value"
q "UPDATE tv SET v = 20 WHERE k = 2" >/dev/null
[ "$(read_v 1)" = "1 hit value" ] || fail "a write to k=2 should leave k=1 cached"
q "UPDATE tv SET v = 10 WHERE k = 1" >/dev/null
[ "$(read_v 1)" = "10 miss value" ] || fail "tv k=1 stale after a write to k=1"
[ "$(read_v 1)" = "10 hit value" ] || fail "tv k=1 should hit"
q "UPDATE t39 SET v = 391" >/dev/null
[ "$(read_v 1)" = "10 hit value" ] || fail "a plain write to another overflowed table should leave tv cached"
q "TRUNCATE t39" >/dev/null
[ "$(read_v 1)" = "10 miss value" ] || fail "coarse structural generation: TRUNCATE t39 should invalidate tv too"
q "TRUNCATE tv" >/dev/null
[ -z "$(q "SELECT v FROM cachekit.cached_query('SELECT sum(v)::text FROM tv WHERE k = \$1', ARRAY['1']) AS r(v text) WHERE v IS NOT NULL")" ] ||
	fail "tv stale after TRUNCATE"
echo "ok - $slots generation slots for 40 watched tables; overflowed tables share a coarse generation (a value-watched one a coarse structural one), no stale read"
