#!/usr/bin/env bash
# Benchmark of trigger-driven invalidation (issue: pub/sub, key rules, outbox).
# In one run, on a throwaway cluster with fsync on:
#   1. pgbench TPC-B: no extension objects vs the four tables watched (pub/sub
#      through the relay's queue) vs watched plus a key rule on
#      pgbench_accounts, and watched with publishing off (generations only,
#      what cached_query needs); alternated, repeated, medians and ratios.
#      Variants ending in _pac (watched_pac, watched_rule_pac) run with
#      cachekit.publish_at_commit = on;
#   2. commit -> subscriber latency (p50/p99) of the pub/sub message;
#   3. a bulk UPDATE of 1M rows with and without a key rule.
# Environment: BENCH_SECONDS (default 20), REPS (default 3), CLIENTS (default 4),
# BULK_ROWS (default 1000000), LATENCY_N (default 2000), PARTS (default "1 2 3"),
# CPU_PER_TX=1 (part 1 also measures server + Redis CPU per transaction with perf stat).
# BENCH_QUICK=1: 5 s, 1 rep, 200k rows. VARIANTS (default "plain watched_nopublish watched
# watched_rule"), BENCH_NO_BUILD=1 (use what is installed), CACHEKIT_SANDBOX_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ -n "${BENCH_QUICK:-}" ]; then
	SECS=${BENCH_SECONDS:-5}; REPS=${REPS:-1}; BULK_ROWS=${BULK_ROWS:-200000}; LATENCY_N=${LATENCY_N:-500}
else
	SECS=${BENCH_SECONDS:-20}; REPS=${REPS:-3}; BULK_ROWS=${BULK_ROWS:-1000000}; LATENCY_N=${LATENCY_N:-2000}
fi
CLIENTS=${CLIENTS:-4}
stamp=$(date -u +%Y%m%d-%H%M)
out=test/bench/results/invalidation-$stamp.txt
mkdir -p test/bench/results

if [ -z "${BENCH_NO_BUILD:-}" ]; then
	tools/deps
	make -s -j2 >/dev/null && { [ "$(id -u)" -eq 0 ] && make -s install >/dev/null || sudo make -s install >/dev/null; }
fi
if [[ " ${PARTS:-1 2 3} " == *" 2 "* ]]; then
	cmake -S . -B build/cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build/cmake -j2 --target cachekit_commit_to_message >/dev/null
fi

export CACHEKIT_SANDBOX_DIR=${CACHEKIT_SANDBOX_DIR:-/tmp/pg_cachekit_bench_invalidation}
export CACHEKIT_SANDBOX_FSYNC=on
trap 'test/sandbox stop >/dev/null 2>&1 || true' EXIT
eval "$(test/sandbox start 2>/dev/null)"
export PGDATABASE=bench
createdb bench
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
q "CREATE EXTENSION pg_cachekit"
pgbench -q -i -s 10 >/dev/null 2>&1
tables="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history"

set_variant() {
	q "SELECT cachekit.drop_key_rule(name) FROM cachekit.key_rules" >/dev/null
	for t in $tables; do q "SELECT cachekit.unwatch('$t')" >/dev/null; done
	q "ALTER SYSTEM RESET cachekit.invalidation_channel"
	q "ALTER SYSTEM RESET cachekit.publish_at_commit"
	case $1 in *_pac) q "ALTER SYSTEM SET cachekit.publish_at_commit = on" ;; esac
	case $1 in
	plain) ;;
	watched_nopublish)
		q "ALTER SYSTEM SET cachekit.invalidation_channel = ''"
		for t in $tables; do q "SELECT cachekit.watch('$t')" >/dev/null; done ;;
	watched | watched_pac) for t in $tables; do q "SELECT cachekit.watch('$t')" >/dev/null; done ;;
	watched_rule | watched_rule_pac)
		for t in $tables; do q "SELECT cachekit.watch('$t')" >/dev/null; done
		q "SELECT cachekit.invalidate_key_on('pgbench_accounts', 'acct:{aid}')" >/dev/null ;;
	esac
	q "SELECT pg_reload_conf()" >/dev/null
	q "CHECKPOINT"
}

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

{
echo "# pg_cachekit invalidation benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores"
echo "# command: test/bench/invalidation.sh (BENCH_SECONDS=$SECS REPS=$REPS CLIENTS=$CLIENTS BULK_ROWS=$BULK_ROWS)"
echo "# fsync on, synchronous_commit on; Redis on loopback"
echo
} | tee "$out"
PARTS=${PARTS:-1 2 3}
part() { [[ " $PARTS " == *" $1 "* ]]; }
if part 1; then
echo "## 1. pgbench TPC-B (scale 10, -c $CLIENTS -j 2 -T $SECS), variants alternated, $REPS repetitions" | tee -a "$out"
variants=${VARIANTS:-plain watched_nopublish watched watched_rule}
declare -A tps cpu
PGDATA_DIR=$CACHEKIT_SANDBOX_DIR/data
for rep in $(seq 1 "$REPS"); do
	for v in $variants; do
		set_variant "$v"
		if [ -n "${CPU_PER_TX:-}" ]; then
			# CPU of the server (postmaster and its children, inherited) and
			# Redis per transaction: far less sensitive than TPS to other load
			# on a shared machine. perf runs longer than pgbench so that the
			# backends' counts are in (they are added when the backends exit).
			# perf first: only backends forked after it attached are counted.
			perf stat -x, -e task-clock -p "$(head -1 "$PGDATA_DIR/postmaster.pid"),$(cat "$CACHEKIT_SANDBOX_DIR/redis.pid")" \
				-o "$CACHEKIT_SANDBOX_DIR/perf.out" -- sleep $((SECS + 3)) 2>/dev/null &
			pp=$!
			sleep 0.5
			pgbench -n -b tpcb-like -c "$CLIENTS" -j 2 -T "$SECS" >"$CACHEKIT_SANDBOX_DIR/pgbench.out" 2>/dev/null
			wait $pp || true
			t=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$CACHEKIT_SANDBOX_DIR/pgbench.out")
			n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$CACHEKIT_SANDBOX_DIR/pgbench.out")
			c=$(awk -F, -v n="$n" '/task-clock/ {printf "%.1f", $1 * 1000 / n}' "$CACHEKIT_SANDBOX_DIR/perf.out")
			cpu[$v]="${cpu[$v]:-} $c"
			echo "  rep $rep $v: $t tps, $c us CPU per transaction" | tee -a "$out"
		else
			t=$(pgbench -n -b tpcb-like -c "$CLIENTS" -j 2 -T "$SECS" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
			echo "  rep $rep $v: $t tps" | tee -a "$out"
		fi
		tps[$v]="${tps[$v]:-} $t"
	done
done
plain_median=$(echo "${tps[plain]}" | tr ' ' '\n' | grep . | median)
for v in $variants; do
	m=$(echo "${tps[$v]}" | tr ' ' '\n' | grep . | median)
	awk -v v="$v" -v m="$m" -v p="$plain_median" 'BEGIN {printf "  %-18s median %8.1f tps   ratio to plain %.3f  (loss %.1f %%)\n", v, m, m/p, (1-m/p)*100}' | tee -a "$out"
done
if [ -n "${CPU_PER_TX:-}" ]; then
	plain_cpu=$(echo "${cpu[plain]}" | tr ' ' '\n' | grep . | median)
	for v in $variants; do
		m=$(echo "${cpu[$v]}" | tr ' ' '\n' | grep . | median)
		awk -v v="$v" -v m="$m" -v p="$plain_cpu" 'BEGIN {printf "  %-18s median %8.1f us CPU per transaction   ratio to plain %.3f\n", v, m, m/p}' | tee -a "$out"
	done
fi
q "SELECT outbox_written, delivered_at_commit, delivered_by_worker, delivery_failures, outbox_depth FROM cachekit.invalidation_stats" |
	sed 's/^/  outbox_written|at_commit|by_worker|failures|depth: /' | tee -a "$out"
fi

if part 2; then
echo | tee -a "$out"
echo "## 2. commit -> subscriber latency ($LATENCY_N single-row UPDATE commits)" | tee -a "$out"
set_variant plain
q "CREATE TABLE bench_latency (id int PRIMARY KEY, v int); INSERT INTO bench_latency SELECT g, 0 FROM generate_series(1, 100) g"
q "SELECT cachekit.watch('bench_latency')" >/dev/null
build/cmake/cachekit_commit_to_message "$CACHEKIT_REDIS_PORT" "$LATENCY_N" | sed 's/^/  /' | tee -a "$out"
fi

if part 3; then
echo | tee -a "$out"
echo "## 3. bulk UPDATE of $BULK_ROWS rows, with and without a key rule (alternated, $REPS repetitions, ms)" | tee -a "$out"
q "CREATE TABLE bench_bulk (id int PRIMARY KEY, v int)"
q "INSERT INTO bench_bulk SELECT g, 0 FROM generate_series(1, $BULK_ROWS) g"
q "VACUUM ANALYZE bench_bulk"
declare -A bulk
for rep in $(seq 1 "$REPS"); do
	for v in plain rule; do
		q "SELECT cachekit.drop_key_rule(name) FROM cachekit.key_rules" >/dev/null
		q "SELECT cachekit.unwatch('bench_bulk')" >/dev/null
		[ "$v" = rule ] && q "SELECT cachekit.invalidate_key_on('bench_bulk', 'bulk:{id}')" >/dev/null
		q "VACUUM bench_bulk" ; q "CHECKPOINT"
		ms=$(psql -X -q -At -c '\timing on' -c "UPDATE bench_bulk SET v = v + 1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')
		bulk[$v]="${bulk[$v]:-} $ms"
		echo "  rep $rep $v: $ms ms" | tee -a "$out"
	done
done
p=$(echo "${bulk[plain]}" | tr ' ' '\n' | grep . | median)
r=$(echo "${bulk[rule]}" | tr ' ' '\n' | grep . | median)
awk -v p="$p" -v r="$r" 'BEGIN {printf "  median without rule %.0f ms, with rule %.0f ms: ratio %.3f (+%.1f %%)\n", p, r, r/p, (r/p-1)*100}' | tee -a "$out"
q "SELECT keys_overflowed, patterns_flushed FROM cachekit.invalidation_stats" | sed 's/^/  keys_overflowed|patterns_flushed: /' | tee -a "$out"
fi
echo "results: $out"
