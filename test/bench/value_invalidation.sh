#!/usr/bin/env bash
# Per-value invalidation benchmark (issue 11, part 3), against a running
# sandbox (eval "$(test/sandbox start)"; PG* variables set):
#
#  1. equality-keyed mixed workload: orders (1M rows, 10,000 customers), a
#     per-customer aggregate through cached_query (95 %) and single-row
#     UPDATEs of random orders, hence random customers (5 %); pgbench, 8
#     clients; the table watched as a whole vs watched by customer_id,
#     alternated; hit rate from cachekit.query_stats and TPS per run;
#  3. (run second) read-only hits of the same query, table vs value scope;
#  2. a 1M-row UPDATE on an unwatched table, a watched one and one watched by
#     customer_id, alternated, VACUUM between runs.
#
# usage: test/bench/value_invalidation.sh
# Environment: REPS (default 3), SECS (pgbench seconds, default 20),
#              CLIENTS (default 8), OUT (result file, default
#              test/bench/results/value_invalidation-<stamp>.txt)
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-3}
SECS=${SECS:-20}
CLIENTS=${CLIENTS:-8}
OUT=${OUT:-test/bench/results/value_invalidation-$(date +%Y%m%d-%H%M%S).txt}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { echo "$*" | tee -a "$OUT"; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }

q "CREATE EXTENSION IF NOT EXISTS pg_cachekit"
q "SET client_min_messages = warning; DROP TABLE IF EXISTS vb_orders, vb_none, vb_table, vb_value"
q "CREATE TABLE vb_orders (id int PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL)"
q "INSERT INTO vb_orders SELECT g, 1 + (g % 10000), g % 100 FROM generate_series(1, 1000000) g"
q "CREATE INDEX ON vb_orders (customer_id)"
q "VACUUM ANALYZE vb_orders"

cat >"$work/read.sql" <<'SQL'
\set c random(1, 10000)
SELECT * FROM cachekit.cached_query('SELECT count(*), sum(amount) FROM vb_orders WHERE customer_id = $1', ARRAY[:c::text]) AS r(n bigint, s bigint);
SQL
cat >"$work/write.sql" <<'SQL'
\set id random(1, 1000000)
UPDATE vb_orders SET amount = amount + 1 WHERE id = :id;
SQL

say "# value_invalidation benchmark $(date -u +%FT%TZ), $(nproc) cores, other builds may be running"
say "# 1. mixed: 95 % cached per-customer aggregate, 5 % UPDATE of a random order; $CLIENTS clients, ${SECS}s, pgbench simple protocol"
say "variant rep tps hits misses hit_rate"
for rep in $(seq 1 "$REPS"); do
	for variant in table value; do
		if [[ $variant == table ]]; then
			q "SELECT cachekit.watch('vb_orders')" >/dev/null
		else
			q "SELECT cachekit.watch('vb_orders', by => 'customer_id')" >/dev/null
		fi
		# Warm every customer's entry, then count from zero.
		q "SELECT count(*) FROM generate_series(1, 10000) c, LATERAL cachekit.cached_query('SELECT count(*), sum(amount) FROM vb_orders WHERE customer_id = \$1', ARRAY[c::text]) AS r(n bigint, s bigint)" >/dev/null
		q "SELECT cachekit.query_stats_reset()" >/dev/null
		tps=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$work/read.sql@95" -f "$work/write.sql@5" 2>/dev/null |
			awk '/^tps = / {print $3}')
		read -r hits misses < <(q "SELECT coalesce(sum(hits),0), coalesce(sum(misses),0) FROM cachekit.query_stats WHERE query LIKE '%vb_orders WHERE customer_id%'" | tr '|' ' ')
		rate=$(awk -v h="$hits" -v m="$misses" 'BEGIN {printf "%.4f", (h + m) ? h / (h + m) : 0}')
		say "$variant $rep $tps $hits $misses $rate"
	done
done

say "# 3. read-only: the same aggregate, every customer warm, no writes: the hit path's cost of value scope"
say "variant rep tps hits misses"
for rep in $(seq 1 "$REPS"); do
	for variant in table value; do
		if [[ $variant == table ]]; then
			q "SELECT cachekit.watch('vb_orders')" >/dev/null
		else
			q "SELECT cachekit.watch('vb_orders', by => 'customer_id')" >/dev/null
		fi
		q "SELECT count(*) FROM generate_series(1, 10000) c, LATERAL cachekit.cached_query('SELECT count(*), sum(amount) FROM vb_orders WHERE customer_id = \$1', ARRAY[c::text]) AS r(n bigint, s bigint)" >/dev/null
		q "SELECT cachekit.query_stats_reset()" >/dev/null
		tps=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -f "$work/read.sql" 2>/dev/null | awk '/^tps = / {print $3}')
		read -r hits misses < <(q "SELECT coalesce(sum(hits),0), coalesce(sum(misses),0) FROM cachekit.query_stats WHERE query LIKE '%vb_orders WHERE customer_id%'" | tr '|' ' ')
		say "ro-$variant $rep $tps $hits $misses"
	done
done

say "# 2. one UPDATE of all 1M rows (ms): unwatched, watched, watched by customer_id"
q "CREATE TABLE vb_none AS SELECT * FROM vb_orders"
q "CREATE TABLE vb_table AS SELECT * FROM vb_orders"
q "CREATE TABLE vb_value AS SELECT * FROM vb_orders"
q "SELECT cachekit.watch('vb_table')" >/dev/null
q "SELECT cachekit.watch('vb_value', by => 'customer_id')" >/dev/null
q "VACUUM ANALYZE vb_none, vb_table, vb_value"
say "variant rep ms"
for rep in $(seq 1 "$REPS"); do
	for t in none table value; do
		ms=$(psql -X -q -At -c '\timing on' -c "UPDATE vb_$t SET amount = amount + 1" | awk '/^Time:/ {print $2}')
		say "$t $rep $ms"
		q "VACUUM vb_$t"
	done
done
q "DROP TABLE vb_orders, vb_none, vb_table, vb_value"
say "# medians"
awk '/^(table|value) [0-9]+ [0-9.]+ [0-9]+ [0-9]+ / {tps[$1] = tps[$1] " " $3; hr[$1] = hr[$1] " " $6}
     /^(none|table|value) [0-9]+ [0-9.]+$/ {ms[$1] = ms[$1] " " $3}
     /^ro-(table|value) [0-9]+ [0-9.]+ / {ro[$1] = ro[$1] " " $3}
     function med(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }; return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END {
       for (v in ro) printf "read-only %s: median tps %s\n", v, med(ro[v]);
       for (v in tps) printf "mixed %s: median tps %s, median hit rate %s\n", v, med(tps[v]), med(hr[v]);
       if ("none" in ms) printf "1M-row UPDATE: median ms none %s, table %s (%.3f), value %s (%.3f)\n", med(ms["none"]), med(ms["table"]), med(ms["table"]) / med(ms["none"]), med(ms["value"]), med(ms["value"]) / med(ms["none"]);
     }' "$OUT" | tee -a "$OUT"
