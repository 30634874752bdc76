#!/usr/bin/env bash
# Benchmark of cachekit.cached_query against plain SQL, pgpool-II's in-memory
# query cache and the "backend GET floor" (one Redis GET from a backend).
#
# usage: test/bench/cached_query.sh          (full run, ~45 minutes)
#        BENCH_QUICK=1 test/bench/cached_query.sh   (smoke test: 3 s runs, 1 repetition)
#
# Environment (all optional):
#   BENCH_SECONDS    seconds per pgbench run (default 10; 3 with BENCH_QUICK=1)
#   REPS             repetitions of every variant (default 3; 1 with BENCH_QUICK=1)
#   BENCH_QUICK      1: smoke test defaults (see above)
#   BENCH_CLIENTS    client counts (default "1 8"; pgbench -j is min(clients, 2))
#   BENCH_MODES      pgbench query modes (default "simple prepared")
#   BENCH_WORKLOADS  subset of "pk agg mixed eq herd tpcb" (default: all six)
#   BENCH_SCALE      pgbench scale (default 10 = 1M accounts)
#   BENCH_PK_KEYS    PK lookups use aid random(1, N) so that all keys can be warmed (default 10000)
#   BENCH_RESULTS    output folder (default test/bench/results)
#   BENCH_KEEP_WORK  1: keep the scratch folder (pgbench logs, pgpool log) at the end
#
# Starts its own sandbox (test/sandbox, fsync on) and its own pgpool-II; stops
# both on exit. Run as root (the clusters then belong to the postgres user) or
# as a user that can run initdb. Needs pgbench, pgpool2, gnuplot-nox and
# python3; pgpool2 and gnuplot-nox are installed with apt-get when missing.
# See test/bench/README.md for what it measures and the caveats.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
WL=$BENCH_DIR/workloads
SANDBOX=$REPO/test/sandbox
# shellcheck source-path=SCRIPTDIR source=tools/bench_lib.sh
source "$BENCH_DIR/tools/bench_lib.sh"

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	SECS=${BENCH_SECONDS:-3}
	REPS=${REPS:-1}
else
	SECS=${BENCH_SECONDS:-10}
	REPS=${REPS:-3}
fi
read -r -a CLIENTS <<<"${BENCH_CLIENTS:-1 8}"
read -r -a MODES <<<"${BENCH_MODES:-simple prepared}"
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-pk agg mixed eq herd tpcb}"
SCALE=${BENCH_SCALE:-10}
PK_KEYS=${BENCH_PK_KEYS:-10000}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$RESULTS/cached_query-$STAMP

PK_QUERY='SELECT abalance FROM pgbench_accounts WHERE aid = $1'
AGG_QUERY='SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1+5000 GROUP BY bid'
EQ_QUERY='SELECT count(*), sum(amount) FROM bench_orders WHERE customer_id = $1'
TABLES=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)
# Per-value variant of the mixed workload: pgbench_accounts watched by aid in
# buckets of this many ids (an aggregate over 5,001 ids then spans 11-12).
MIXED_BUCKET_WIDTH=${BENCH_MIXED_BUCKET_WIDTH:-500}
HERD_ROUNDS=${BENCH_HERD_ROUNDS:-3}

has() { [[ " ${WORKLOADS[*]} " == *" $1 "* ]]; }

[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
[[ $REPS =~ ^[0-9]+$ && $REPS -gt 0 ]] || die "REPS must be a positive integer"
for w in "${WORKLOADS[@]}"; do
	[[ $w =~ ^(pk|agg|mixed|eq|herd|tpcb)$ ]] || die "unknown workload '$w' in BENCH_WORKLOADS"
done
for m in "${MODES[@]}"; do
	[[ $m =~ ^(simple|extended|prepared)$ ]] || die "unknown pgbench mode '$m' in BENCH_MODES"
done

bench_require_tools

# --- scratch space, cleanup ------------------------------------------------

bench_workdir
RUNS=$WORK/runs.csv
FLAGS=$WORK/flags.txt
: >"$FLAGS"
# One row per pgbench run; cache_hits/cache_lookups: hits of the cache the
# variant uses, during that run (empty for direct, floor and TPC-B).
echo "rep,workload,mode,clients,variant,tps,latency_ms,failed,cache,cache_hits,cache_lookups" >"$RUNS"
bench_traps

# --- sandbox ----------------------------------------------------------------

# Cached entries must outlive the whole run (pgpool's memqcache_expire = 0
# means never): the default ttl of 300 s would expire warmed keys mid-run.
# No checkpoints or autovacuum in the middle of a 10 s run: they would hit
# whichever variant happens to run then (one CHECKPOINT after pgbench -i).
SANDBOX_CONF="cachekit.default_ttl = 86400
checkpoint_timeout = '1h'
max_wal_size = '8GB'
autovacuum = off"
bench_start_sandbox "$SANDBOX_CONF"

log "pgbench -i -s $SCALE"
pgbench -i -s "$SCALE" -q postgres >"$LOGS/init.log" 2>&1 || {
	tail "$LOGS/init.log" >&2
	die "pgbench -i failed"
}
watch_all() { for t in "${TABLES[@]}"; do psqlx -c "SELECT cachekit.watch('$t')" >/dev/null; done; }
unwatch_all() { for t in "${TABLES[@]}"; do psqlx -c "SELECT cachekit.unwatch('$t')" >/dev/null; done; }
watch_all
# watch_by TABLE [COLUMN [BUCKET_WIDTH]]: the table watched as a whole, or by
# a column (per-value generations).
watch_by() {
	if [[ -n ${2:-} ]]; then
		psqlx -c "SELECT cachekit.watch('$1', by => '$2'${3:+, bucket_width => '$3'})" >/dev/null
	else
		psqlx -c "SELECT cachekit.watch('$1')" >/dev/null
	fi
}
if has eq; then
	log "bench_orders: 1,000 customers x 1,000 orders"
	psqlx -c "CREATE TABLE bench_orders (id int PRIMARY KEY, customer_id int NOT NULL, amount int NOT NULL)"
	psqlx -c "INSERT INTO bench_orders SELECT g, (g - 1) / 1000 + 1, g % 97 FROM generate_series(1, 1000000) g"
	psqlx -c "CREATE INDEX ON bench_orders (customer_id)"
	psqlx -c "VACUUM ANALYZE bench_orders"
	watch_by bench_orders
fi
psqlx -c 'CREATE SEQUENCE bench_warm_seq'
psqlx -c CHECKPOINT

# --- pgpool -----------------------------------------------------------------

bench_start_pgpool

# "hits calls" of cached_query since the last query_stats_reset().
ck_counters() {
	psqlx -F ' ' -c 'SELECT coalesce(sum(hits), 0), coalesce(sum(calls), 0) FROM cachekit.query_stats'
}

# --- runs -------------------------------------------------------------------

# run_one REP WORKLOAD MODE CLIENTS VARIANT PORT pgbench-args...
# Appends "tps,latency" of one pgbench run to $RUNS; for the cached variants
# also the hit counts of the cache involved.
run_one() {
	local rep=$1 wl=$2 mode=$3 c=$4 variant=$5 port=$6
	shift 6
	local j=$((c < 2 ? c : 2)) logf="$LOGS/$wl-$mode-c$c-$variant-r$rep.log"
	local before=() after=() tps lat failed rc=0 cache= options=
	case $variant in
	cached_*) cache=cachekit ;;
	pgpool) cache=pgpool ;;
	esac
	# The variants of cached_query differ by session settings only.
	case $variant in
	cached_l1off) options="-c cachekit.l1=off" ;;
	cached_noshortcut) options="-c cachekit.l1=off -c cachekit.call_plan=off" ;;
	cached_nocoalesce) options="-c cachekit.coalesce_wait_ms=0" ;;
	esac
	if [[ $cache == cachekit ]]; then
		psqlx -c 'SELECT cachekit.query_stats_reset()' >/dev/null
	elif [[ $cache == pgpool ]]; then
		read -r -a before <<<"$(pool_cache_counters)"
	fi
	local length=(-T "$SECS")
	[[ $wl == herd ]] && length=(-t 1)
	PGOPTIONS=$options pgbench -n -h 127.0.0.1 -p "$port" -U postgres -M "$mode" -c "$c" -j "$j" "${length[@]}" \
		-D pk_keys="$PK_KEYS" -D scale="$SCALE" "$@" postgres >"$logf" 2>&1 || rc=$?
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logf" | tail -n 1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$logf" | tail -n 1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$logf" | tail -n 1)
	if ((rc != 0)) || [[ -z $tps || -z $lat ]]; then
		# An aborted run's figures cover only part of the clients: not used.
		note "ANOMALY: pgbench exited $rc for $wl/$mode/c$c/$variant (rep $rep), run not counted; log: $(grep -m 3 -iE 'error|abort' "$logf" | tr '\n' ' ')"
		tps=nan
		lat=nan
	fi
	if [[ -n $failed && $failed != 0 ]]; then
		note "ANOMALY: $failed failed transactions in $wl/$mode/c$c/$variant (rep $rep)"
	fi
	local hits=
	if [[ $cache == cachekit ]]; then
		read -r -a after <<<"$(ck_counters)"
		hits="${after[0]},${after[1]}"
	elif [[ $cache == pgpool ]]; then
		read -r -a after <<<"$(pool_cache_counters)"
		# num_selects counts the SELECTs that went to the backend (misses).
		hits="$((after[0] - before[0])),$((after[0] - before[0] + after[1] - before[1]))"
	else
		hits=","
	fi
	echo "$rep,$wl,$mode,$c,$variant,$tps,$lat,${failed:-0},$cache,$hits" >>"$RUNS"
	printf 'bench: rep %d %-5s %-8s c%-2s %-12s %10s tps %8s ms\n' "$rep" "$wl" "$mode" "$c" "$variant" "$tps" "$lat" >&2
}

# Variant order, rotated by one per repetition so that no variant always
# runs first (right after a warm-up) or last.
rotate() {
	local k=$1
	shift
	local a=("$@")
	k=$((k % ${#a[@]}))
	echo "${a[@]:k}" "${a[@]:0:k}"
}

warm_caches() {
	local mode n
	log "warming cached_query: $PK_KEYS PK keys and 20 aggregate keys"
	psqlx -c "SELECT cachekit.cache_set('bench_floor_k', 'x', 86400)" >/dev/null
	psqlx -c "SELECT count(*) FROM generate_series(1, $PK_KEYS) g,
	          LATERAL cachekit.cached_query('$PK_QUERY', ARRAY[g::text]) AS r(abalance int)" >/dev/null
	psqlx -c "SELECT count(*) FROM generate_series(1, 20) g,
	          LATERAL cachekit.cached_query('$AGG_QUERY', ARRAY[(g * 1000)::text]) AS r(bid int, count bigint, sum bigint)" >/dev/null
	for mode in "${MODES[@]}"; do
		log "warming pgpool (-M $mode): same texts as the benchmark scripts"
		for spec in "pk:$PK_KEYS" "agg:20"; do
			n=${spec#*:}
			psqlx -c 'ALTER SEQUENCE bench_warm_seq RESTART 1'
			pgbench -n -h 127.0.0.1 -p "$PGPOOL_PORT" -U postgres -M "$mode" -c 1 -t "$n" \
				-f "$WL/warm_${spec%%:*}_pgpool.sql" postgres >"$LOGS/warm-${spec%%:*}-$mode.log" 2>&1 ||
				die "pgpool warm-up failed: $(tail -n 3 "$LOGS/warm-${spec%%:*}-$mode.log")"
		done
	done
}

check_hits() {
	local rep=$1 out direct cached
	out=$(psqlx -c "SELECT * FROM cachekit.cached_query('$PK_QUERY', ARRAY['4242']) AS r(abalance int)" \
		-c 'SELECT cachekit.last_outcome()' | tail -n 1)
	note "rep $rep: after warm-up, cached_query PK aid=4242 -> last_outcome() = $out"
	[[ $out == hit ]] || note "ANOMALY: expected a hit for the warmed PK key 4242, got '$out'"
	out=$(psqlx -c "SELECT * FROM cachekit.cached_query('$AGG_QUERY', ARRAY['7000']) AS r(bid int, count bigint, sum bigint)" \
		-c 'SELECT cachekit.last_outcome()' | tail -n 1)
	note "rep $rep: after warm-up, cached_query aggregate a=7000 -> last_outcome() = $out"
	[[ $out == hit ]] || note "ANOMALY: expected a hit for the warmed aggregate key 7000, got '$out'"
	direct=$(psqlx -c "SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN 7000 AND 7000+5000 GROUP BY bid ORDER BY 1" | tr '\n' ' ')
	cached=$(psqlx -c "SELECT * FROM cachekit.cached_query('$AGG_QUERY', ARRAY['7000']) AS r(bid int, count bigint, sum bigint) ORDER BY 1" | tr '\n' ' ')
	if [[ $direct == "$cached" ]]; then
		note "rep $rep: cached aggregate a=7000 equals the direct result ($direct)"
	else
		note "ANOMALY: cached aggregate a=7000 '$cached' differs from direct '$direct'"
	fi
	direct=$(pgpoolx -c "SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN 7000 AND 7000+5000 GROUP BY bid;" | tr '\n' ' ')
	[[ $direct == "$cached" ]] || note "ANOMALY: pgpool's aggregate a=7000 '$direct' differs from cached_query's '$cached'"
	note "rep $rep: pgpool SHOW POOL_CACHE after warm-up: $(pgpoolx -F ' ' -c 'SHOW POOL_CACHE' | awk '{ printf "num_cache_hits=%s num_selects(misses)=%s cache_hit_ratio=%s num_cache_entries=%s", $1, $2, $3, $6 }')"
}

read_workload() {
	local rep=$1 wl=$2 mode c v
	for mode in "${MODES[@]}"; do
		for c in "${CLIENTS[@]}"; do
			for v in $(rotate "$((rep - 1))" direct cached_query cached_l1off cached_noshortcut pgpool floor); do
				case $v in
				direct) run_one "$rep" "$wl" "$mode" "$c" direct "$PG_PORT" -f "$WL/${wl}_direct.sql" ;;
				cached_*) run_one "$rep" "$wl" "$mode" "$c" "$v" "$PG_PORT" -f "$WL/${wl}_cached.sql" ;;
				pgpool) run_one "$rep" "$wl" "$mode" "$c" pgpool "$PGPOOL_PORT" -f "$WL/${wl}_direct.sql" ;;
				floor) run_one "$rep" "$wl" "$mode" "$c" floor "$PG_PORT" -f "$WL/floor.sql" ;;
				esac
			done
		done
	done
}

# The 20 aggregate texts exactly as pgbench -M simple sends them (psql sends
# a statement with its semicolon, like pgbench: same pgpool cache key).
agg_texts() {
	local a
	for ((a = 1000; a <= 20000; a += 1000)); do
		echo "SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN $a AND $a+5000 GROUP BY bid;"
	done
}

# After a mixed run (no writer left): does the cache still hold results that
# differ from what Postgres returns? Checks the 20 aggregate keys.
stale_check() {
	local rep=$1 mode=$2 c=$3 variant=$4 truth got n before after
	truth=$(agg_texts | psqlx -f -)
	case $variant in
	cached_*)
		got=$(psqlx -c "SELECT r.* FROM generate_series(1, 20) g,
		                LATERAL cachekit.cached_query('$AGG_QUERY', ARRAY[(g * 1000)::text]) AS r(bid int, count bigint, sum bigint)
		                ORDER BY g")
		n=$(paste -d'#' <(echo "$truth") <(echo "$got") | awk -F'#' '$1 != $2' | wc -l)
		note "rep $rep: mixed $mode c$c $variant: $n of 20 aggregate keys stale after the run"
		;;
	pgpool)
		if [[ $mode != simple ]]; then
			return 0 # entries cached under -M prepared/extended are out of psql's reach
		fi
		read -r -a before <<<"$(pool_cache_counters)"
		got=$(agg_texts | pgpoolx -f -)
		read -r -a after <<<"$(pool_cache_counters)"
		n=$(paste -d'#' <(echo "$truth") <(echo "$got") | awk -F'#' '$1 != $2' | wc -l)
		note "rep $rep: mixed $mode c$c pgpool: $n of 20 aggregate keys stale after the run ($((after[0] - before[0])) of the 20 reads were pgpool cache hits)"
		;;
	*) return 0 ;;
	esac
	if ((n > 0)); then
		note "ANOMALY: $variant returned stale aggregates for $n of 20 keys after mixed $mode c$c (rep $rep)"
		echo "mixed $mode $c $variant stale" >>"$FLAGS"
	fi
}

# Read-your-writes on one connection: read a sum, update a row it covers,
# read again; three times, so -M prepared re-executes the statements. Counts
# the second reads that miss the update.
rw_probe() {
	local rep=$1 mode variant port script out stale
	for mode in "${MODES[@]}"; do
		for variant in cached_query pgpool; do
			if [[ $variant == pgpool ]]; then
				port=$PGPOOL_PORT script=$WL/probe_plain.sql
			else
				port=$PG_PORT script=$WL/probe_cached.sql
			fi
			out=$(pgbench -n -h 127.0.0.1 -p "$port" -U postgres -M "$mode" -c 1 -t 3 -f "$script" postgres 2>&1 | grep '^probe' || true)
			stale=$(echo "$out" | awk '$1 == "probe" && $3 != $2 + 7' | wc -l)
			note "rep $rep: read-your-writes probe, $variant -M $mode: $stale of 3 reads after an UPDATE were stale ($(echo "$out" | awk '{ printf "%s->%s ", $2, $3 }'))"
			[[ $(echo "$out" | grep -c '^probe') == 3 ]] || note "ANOMALY: read-your-writes probe $variant -M $mode did not complete"
			if ((stale > 0)); then
				note "ANOMALY: $variant -M $mode served a result older than the session's own committed UPDATE ($stale of 3 reads)"
				# Its figures in the workloads with writes come from a cache
				# that misses invalidations: flagged in the table.
				echo "mixed $mode * $variant stale" >>"$FLAGS"
			fi
		done
	done
}

mixed_workload() {
	local rep=$1 mode c v
	for mode in "${MODES[@]}"; do
		for c in "${CLIENTS[@]}"; do
			for v in $(rotate "$((rep - 1))" direct cached_query cached_value pgpool); do
				case $v in
				direct) run_one "$rep" mixed "$mode" "$c" direct "$PG_PORT" \
					-f "$WL/agg_direct.sql@80" -f "$WL/pk_uncached.sql@15" -f "$WL/update_agg_range.sql@5" ;;
				cached_query) run_one "$rep" mixed "$mode" "$c" cached_query "$PG_PORT" \
					-f "$WL/agg_cached.sql@80" -f "$WL/pk_uncached.sql@15" -f "$WL/update_agg_range.sql@5" ;;
				cached_value)
					watch_by pgbench_accounts aid "$MIXED_BUCKET_WIDTH"
					run_one "$rep" mixed "$mode" "$c" cached_value "$PG_PORT" \
						-f "$WL/agg_cached.sql@80" -f "$WL/pk_uncached.sql@15" -f "$WL/update_agg_range.sql@5"
					;;
				pgpool) run_one "$rep" mixed "$mode" "$c" pgpool "$PGPOOL_PORT" \
					-f "$WL/agg_direct.sql@80" -f "$WL/pk_uncached.sql@15" -f "$WL/update_agg_range.sql@5" ;;
				esac
				stale_check "$rep" "$mode" "$c" "$v"
				if [[ $v == cached_value ]]; then watch_by pgbench_accounts; fi
			done
		done
	done
}

# Equality-keyed mixed workload: 95 % one customer's aggregate, 5 % an
# UPDATE of one order of a random customer. cached_query with the table
# watched as a whole, and watched by customer_id (per-value generations).
eq_workload() {
	local rep=$1 mode c v
	for mode in "${MODES[@]}"; do
		for c in "${CLIENTS[@]}"; do
			for v in $(rotate "$((rep - 1))" direct cached_query cached_value pgpool); do
				case $v in
				direct) run_one "$rep" eq "$mode" "$c" direct "$PG_PORT" -f "$WL/eq_direct.sql@95" -f "$WL/eq_update.sql@5" ;;
				cached_query | cached_value)
					if [[ $v == cached_value ]]; then watch_by bench_orders customer_id; else watch_by bench_orders; fi
					warm_eq
					run_one "$rep" eq "$mode" "$c" "$v" "$PG_PORT" -f "$WL/eq_cached.sql@95" -f "$WL/eq_update.sql@5"
					eq_stale_check "$rep" "$mode" "$c" "$v"
					;;
				pgpool)
					warm_eq_pgpool "$mode"
					run_one "$rep" eq "$mode" "$c" pgpool "$PGPOOL_PORT" -f "$WL/eq_direct.sql@95" -f "$WL/eq_update.sql@5"
					;;
				esac
			done
		done
	done
	watch_by bench_orders
}

warm_eq() {
	psqlx -c "SELECT count(*) FROM generate_series(1, 1000) c,
	          LATERAL cachekit.cached_query('$EQ_QUERY', ARRAY[c::text]) AS r(n bigint, total bigint)" >/dev/null
}

warm_eq_pgpool() {
	psqlx -c 'ALTER SEQUENCE bench_warm_seq RESTART 1'
	pgbench -n -h 127.0.0.1 -p "$PGPOOL_PORT" -U postgres -M "$1" -c 1 -t 1000 \
		-f "$WL/warm_eq_pgpool.sql" postgres >"$LOGS/warm-eq-$1.log" 2>&1 ||
		note "ANOMALY: pgpool eq warm-up failed: $(tail -n 3 "$LOGS/warm-eq-$1.log" | tr '\n' ' ')"
}

# After an eq run: every customer's cached aggregate equals the table's.
eq_stale_check() {
	local rep=$1 mode=$2 c=$3 variant=$4 n
	n=$(psqlx -c "SELECT count(*) FROM generate_series(1, 1000) g,
	              LATERAL cachekit.cached_query('$EQ_QUERY', ARRAY[g::text]) AS r(n bigint, total bigint),
	              LATERAL (SELECT count(*) AS n, sum(amount) AS total FROM bench_orders WHERE customer_id = g) d
	              WHERE (r.n, r.total) IS DISTINCT FROM (d.n, d.total)")
	note "rep $rep: eq $mode c$c $variant: $n of 1000 customer aggregates stale after the run"
	if ((n > 0)); then
		note "ANOMALY: $variant returned stale customer aggregates for $n of 1000 customers after eq $mode c$c (rep $rep)"
		echo "eq $mode $c $variant stale" >>"$FLAGS"
	fi
}

# Thundering herd: 64 clients ask at once for one heavy aggregate that was
# just invalidated; with miss coalescing one of them runs it and the others
# take its result. One transaction per client (-t 1); "TPS" is 64 over the
# time until the last answer, hit% the share that did not run the query.
herd_workload() {
	local rep=$1 v i
	for v in $(rotate "$((rep - 1))" cached_query cached_nocoalesce); do
		for ((i = 1; i <= HERD_ROUNDS; i++)); do
			psqlx -c "SELECT cachekit.invalidate('pgbench_accounts')" >/dev/null
			run_one "$rep" herd simple 64 "$v" "$PG_PORT" -f "$WL/herd_cached.sql"
		done
	done
}

tpcb_workload() {
	local rep=$1 mode c v
	if ((rep == 1)); then
		# Unmeasured: the first writes to each page after the checkpoint
		# write full-page images; get them out of the way.
		log "TPC-B warm-up (${SECS}s, not measured)"
		pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 8 -j 2 -T "$SECS" -b tpcb-like postgres \
			>"$LOGS/tpcb-warmup.log" 2>&1 || note "ANOMALY: TPC-B warm-up failed: $(tail -n 2 "$LOGS/tpcb-warmup.log" | tr '\n' ' ')"
	fi
	for mode in "${MODES[@]}"; do
		for c in "${CLIENTS[@]}"; do
			for v in $(rotate "$((rep - 1))" unwatched watched); do
				[[ $v == unwatched ]] && unwatch_all
				run_one "$rep" tpcb "$mode" "$c" "$v" "$PG_PORT" -b tpcb-like
				[[ $v == unwatched ]] && watch_all
			done
		done
	done
	local n
	n=$(psqlx -c "SELECT count(*) FROM cachekit.watched_tables WHERE table_name::text LIKE 'pgbench\_%'")
	[[ $n == "${#TABLES[@]}" ]] || note "ANOMALY: $n watched tables after TPC-B, expected ${#TABLES[@]}"
}

{
	echo "date: $(date -Is)"
	echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src sql 2>/dev/null || echo ' (src/ or sql/ modified)')"
	# What the server actually loaded (preloaded at start: later installs do not change it).
	bench_library_line
	echo "host: $(nproc) cores, $(uname -r); $(psqlx -c 'SELECT version()' | cut -d, -f1); $("$PGPOOL" --version 2>&1)"
	echo "settings: ${SECS}s per run, $REPS repetitions, clients ${CLIENTS[*]} (-j min(c,2)), modes ${MODES[*]}, scale $SCALE, PK keys random(1, $PK_KEYS)"
	echo "postgres: fsync and synchronous_commit on, $(echo "$SANDBOX_CONF" | paste -sd, - | sed 's/,/, /g')"
} >>"$NOTES"

log "runs of ${SECS}s, $REPS repetitions, workloads ${WORKLOADS[*]}"
for ((rep = 1; rep <= REPS; rep++)); do
	# The mixed and TPC-B workloads of the previous repetition invalidated
	# both caches (they update pgbench_accounts): warm again.
	if has pk || has agg; then
		warm_caches
		check_hits "$rep"
	fi
	has pk && read_workload "$rep" pk
	has agg && read_workload "$rep" agg
	if has pk || has agg; then
		note "rep $rep: pgpool SHOW POOL_CACHE after the read workloads: $(pgpoolx -F ' ' -c 'SHOW POOL_CACHE' | awk '{ printf "num_cache_hits=%s num_selects(misses)=%s cache_hit_ratio=%s", $1, $2, $3 }')"
	fi
	((rep == 1)) && rw_probe "$rep"
	has mixed && mixed_workload "$rep"
	has eq && eq_workload "$rep"
	has herd && herd_workload "$rep"
	has tpcb && tpcb_workload "$rep"
done

if grep -qi 'error\|fatal\|panic' "$PP/pgpool.log"; then
	note "pgpool log has errors: $(grep -i -m 5 'error\|fatal\|panic' "$PP/pgpool.log" | tr '\n' ' ')"
fi

mkdir -p "$RESULTS"
cp "$RUNS" "$OUT-runs.csv"
cp "$NOTES" "$OUT-notes.txt"
cp "$FLAGS" "$OUT-flags.txt"
# The report can be made again from these three files:
#   test/bench/cached_query_report.py --runs R-runs.csv --notes R-notes.txt --flags R-flags.txt --out R
python3 "$BENCH_DIR/cached_query_report.py" --runs "$OUT-runs.csv" --notes "$OUT-notes.txt" \
	--flags "$OUT-flags.txt" --out "$OUT"
log "wrote $OUT.txt, $OUT.csv, $OUT-runs.csv$([[ -f $OUT.png ]] && echo ", $OUT.png")"
