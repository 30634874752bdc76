#!/usr/bin/env bash
# A/B of the L1 tier on the hit path: the ~1 ms aggregate of
# test/bench/workloads/agg_cached.sql (20 keys, all hits after warming),
# cachekit.l1 on vs off (PGOPTIONS), alternated, plus a direct SELECT 1 as
# the floor. Against a running sandbox (eval "$(test/sandbox start)").
#
# usage: test/bench/l1_ab.sh [seconds per run (5)] [repetitions (3)] [clients (8)]
# Prints one line per run and the medians; tps of pgbench (excluding
# connection time).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5} reps=${2:-3} clients=${3:-8}
db=${BENCH_DB:-cachekit_l1_bench}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! psql -X -q -At -d "$db" -c "SELECT 1 FROM pgbench_accounts LIMIT 1" >/dev/null 2>&1; then
	createdb "$db"
	pgbench -i -q -s 10 "$db" >/dev/null 2>&1
	psql -X -q -d "$db" -c "CREATE EXTENSION pg_cachekit" -c "SELECT cachekit.watch('pgbench_accounts')" >/dev/null
fi
cp test/bench/workloads/agg_cached.sql "$work/agg.sql"
echo 'SELECT 1;' >"$work/one.sql"
# Warm both tiers: every key once with L1 off (Redis), then with it on.
for l1 in off on; do
	for a in $(seq 1 20); do
		echo "SELECT count(*) FROM cachekit.cached_query('SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN \$1 AND \$1+5000 GROUP BY bid', ARRAY['$((a * 1000))']) AS r(bid int, count bigint, sum bigint);"
	done | PGOPTIONS="-c cachekit.l1=$l1" psql -X -q -At -d "$db" >/dev/null
done
run() { # mode variant
	local mode=$1 variant=$2 opts="" script=$work/agg.sql
	[ "$variant" = off ] && opts="-c cachekit.l1=off"
	[ "$variant" = select1 ] && script=$work/one.sql
	PGOPTIONS=$opts pgbench -n -M "$mode" -c "$clients" -j 2 -T "$secs" -f "$script" "$db" 2>/dev/null |
		sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}
declare -A all
for rep in $(seq 1 "$reps"); do
	for mode in simple prepared; do
		for variant in on off select1; do
			tps=$(run "$mode" "$variant")
			echo "rep $rep $mode l1=$variant: $tps tps"
			all[$mode.$variant]+="$tps "
		done
	done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for mode in simple prepared; do
	on=$(median "${all[$mode.on]}") off=$(median "${all[$mode.off]}") one=$(median "${all[$mode.select1]}")
	printf '%s: l1 on %s, l1 off %s (on/off %.2f), SELECT 1 %s (SELECT 1/on %.2f)\n' "$mode" "$on" "$off" \
		"$(echo "$on / $off" | bc -l)" "$one" "$(echo "$one / $on" | bc -l)"
done
