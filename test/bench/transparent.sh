#!/usr/bin/env bash
# Benchmark of transparent caching (cachekit.transparent, issue 12): the
# application's own SQL, unchanged, served from the cache, against the same
# SQL run by Postgres (transparent off) and through pgpool-II's query cache;
# and what transparent mode costs the statements it does not serve (TPC-B).
#
# usage: test/bench/transparent.sh                 (full run, ~25 minutes)
#        BENCH_QUICK=1 test/bench/transparent.sh   (smoke test: 3 s runs, 1 repetition)
#
# Environment (all optional):
#   BENCH_SECONDS       seconds per pgbench run (default 10; 3 with BENCH_QUICK=1)
#   REPS                repetitions of every variant (default 3; 1 with BENCH_QUICK=1)
#   BENCH_QUICK         1: smoke test defaults (see above)
#   BENCH_CLIENTS       client counts of the read workloads (default "1 8"; -j min(c, 2))
#   BENCH_MODES         pgbench query modes (default "simple prepared")
#   BENCH_WORKLOADS     subset of "hot agg select tpcb" (default: all four)
#   BENCH_VARIANTS      read variants, subset of "transparent direct pgpool transparent_all"
#                       (default "transparent direct pgpool")
#   BENCH_TPCB_CLIENTS  TPC-B clients (default 4)
#   BENCH_TPCB_SECONDS  seconds per TPC-B run (default BENCH_SECONDS)
#   BENCH_TPCB_VARIANTS subset of "off registered registered_pk" (default "off registered")
#   BENCH_SCALE         pgbench scale (default 10 = 1M accounts)
#   BENCH_HOT_KEYS      hot set of the "hot" workload: aid random(1, N) (default 1000)
#   BENCH_CHECKS        stale-read checks per mode after the runs (default 20)
#   BENCH_RESULTS       output folder (default test/bench/results)
#   BENCH_KEEP_WORK     1: keep the scratch folder (pgbench logs, pgpool log) at the end
#
# Starts its own sandbox (test/sandbox, fsync on) and its own pgpool-II, stops
# both on exit; needs pgbench, pgpool2, gnuplot-nox and python3 (the same as
# cached_query.sh, whose pieces it shares through tools/bench_lib.sh). Without
# the transparent mode in the installed build (no cachekit.create_cache), the
# transparent variants and TPC-B are skipped and the rest still runs.
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
read -r -a WORKLOADS <<<"${BENCH_WORKLOADS:-hot agg select tpcb}"
read -r -a VARIANTS <<<"${BENCH_VARIANTS:-transparent direct pgpool}"
read -r -a TPCB_VARIANTS <<<"${BENCH_TPCB_VARIANTS:-off registered}"
TPCB_CLIENTS=${BENCH_TPCB_CLIENTS:-4}
TPCB_SECS=${BENCH_TPCB_SECONDS:-$SECS}
SCALE=${BENCH_SCALE:-10}
HOT_KEYS=${BENCH_HOT_KEYS:-1000}
CHECKS=${BENCH_CHECKS:-20}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$RESULTS/transparent-$STAMP

# The statement of pgbench -S (and of workloads/pk_direct.sql), and the
# aggregate of workloads/agg_direct.sql, as shapes: $1 stands for whatever
# constant or parameter the client sends.
PK_QUERY='SELECT abalance FROM pgbench_accounts WHERE aid = $1'
AGG_QUERY='SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1+5000 GROUP BY bid'
TABLES=(pgbench_accounts pgbench_branches pgbench_tellers pgbench_history)

has() { [[ " ${WORKLOADS[*]} " == *" $1 "* ]]; }

[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
[[ $REPS =~ ^[0-9]+$ && $REPS -gt 0 ]] || die "REPS must be a positive integer"
[[ $TPCB_SECS =~ ^[0-9]+$ && $TPCB_SECS -gt 0 ]] || die "BENCH_TPCB_SECONDS must be a positive integer"
[[ $HOT_KEYS =~ ^[0-9]+$ && $HOT_KEYS -gt 0 ]] || die "BENCH_HOT_KEYS must be a positive integer"
[[ $CHECKS =~ ^[0-9]+$ ]] || die "BENCH_CHECKS must be a non-negative integer"
for w in "${WORKLOADS[@]}"; do
	[[ $w =~ ^(hot|agg|select|tpcb)$ ]] || die "unknown workload '$w' in BENCH_WORKLOADS"
done
for m in "${MODES[@]}"; do
	[[ $m =~ ^(simple|extended|prepared)$ ]] || die "unknown pgbench mode '$m' in BENCH_MODES"
done
for v in "${VARIANTS[@]}"; do
	[[ $v =~ ^(transparent|direct|pgpool|transparent_all)$ ]] || die "unknown variant '$v' in BENCH_VARIANTS"
done
for v in "${TPCB_VARIANTS[@]}"; do
	[[ $v =~ ^(off|registered|registered_pk)$ ]] || die "unknown variant '$v' in BENCH_TPCB_VARIANTS"
done

bench_require_tools
bench_workdir
RUNS=$WORK/runs.csv
# One row per pgbench run; cache_hits/cache_lookups: hits and lookups of the
# cache the variant goes through, during that run (cachekit.caches deltas for
# the transparent and direct variants, SHOW POOL_CACHE deltas for pgpool).
echo "rep,workload,mode,clients,variant,tps,latency_ms,failed,cache,cache_hits,cache_lookups" >"$RUNS"
bench_traps

# --- sandbox ----------------------------------------------------------------

# Same server settings as cached_query.sh: warmed entries outlive the run,
# no checkpoint or autovacuum inside a measured window.
SANDBOX_CONF="cachekit.default_ttl = 86400
checkpoint_timeout = '1h'
max_wal_size = '8GB'
autovacuum = off"
bench_start_sandbox "$SANDBOX_CONF"

# What of the transparent mode this build has: the setting (enough for
# transparent = all), the registry (create_cache: transparent = registered,
# TPC-B), the cachekit.caches view (hit counts; else cachekit.query_stats).
# Variants the build cannot run are skipped; direct and pgpool always run.
TRANSPARENT='' REGISTRY='' CACHES_VIEW=''
[[ $(psqlx -c "SELECT count(*) FROM pg_settings WHERE name = 'cachekit.transparent'") == 1 ]] && TRANSPARENT=1
[[ $(psqlx -c "SELECT to_regproc('cachekit.create_cache') IS NOT NULL AND to_regproc('cachekit.drop_cache') IS NOT NULL") == t ]] && REGISTRY=1
[[ $(psqlx -c "SELECT to_regclass('cachekit.caches') IS NOT NULL") == t ]] && CACHES_VIEW=1
if [[ -z $TRANSPARENT || -z $REGISTRY ]]; then
	skip=()
	for v in "${VARIANTS[@]}"; do
		if [[ $v == transparent || ($v == transparent_all && -z $TRANSPARENT) ]]; then skip+=("$v"); fi
	done
	read -r -a VARIANTS <<<"$(for v in "${VARIANTS[@]}"; do [[ " ${skip[*]} " == *" $v "* ]] || echo -n "$v "; done)"
	read -r -a WORKLOADS <<<"$(for w in "${WORKLOADS[@]}"; do [[ $w == tpcb ]] || echo -n "$w "; done)"
	note "NOTE: the installed pg_cachekit has $([[ -n $TRANSPARENT ]] && echo "cachekit.transparent but no" || echo "no cachekit.transparent and no") cachekit.create_cache/drop_cache: skipped ${skip[*]:-no read variant} and TPC-B"
fi
if [[ -n $TRANSPARENT && -z $CACHES_VIEW ]]; then
	note "NOTE: no cachekit.caches view in this build: hit counts from cachekit.query_stats"
fi
# The variant whose session the checks read through: registered if it runs,
# else all; none without the transparent mode.
SERVED=
for v in transparent transparent_all; do
	if [[ -z $SERVED && " ${VARIANTS[*]} " == *" $v "* ]]; then SERVED=$v; fi
done

log "pgbench -i -s $SCALE"
pgbench -i -s "$SCALE" -q postgres >"$LOGS/init.log" 2>&1 || {
	tail "$LOGS/init.log" >&2
	die "pgbench -i failed"
}
for t in "${TABLES[@]}"; do psqlx -c "SELECT cachekit.watch('$t')" >/dev/null; done
psqlx -c 'CREATE SEQUENCE bench_warm_seq'
if [[ -n $REGISTRY ]]; then
	psqlx -c "SELECT cachekit.create_cache('$PK_QUERY')" >/dev/null
	psqlx -c "SELECT cachekit.create_cache('$AGG_QUERY')" >/dev/null
fi
psqlx -c CHECKPOINT

bench_start_pgpool

# "hits calls" of the transparent path: summed over the registered shapes
# (cachekit.caches), or over cachekit.query_stats (which also counts
# transparent calls; no cached_query runs here) when the view is missing.
ck_counters() {
	if [[ -n $CACHES_VIEW ]]; then
		psqlx -F ' ' -c 'SELECT coalesce(sum(hits), 0), coalesce(sum(calls), 0) FROM cachekit.caches'
	elif [[ -n $TRANSPARENT ]]; then
		psqlx -F ' ' -c 'SELECT coalesce(sum(hits), 0), coalesce(sum(calls), 0) FROM cachekit.query_stats'
	else
		echo "0 0"
	fi
}

# Session settings of a variant (pgbench and psql pass them through PGOPTIONS).
variant_options() {
	case $1 in
	transparent | registered | registered_pk) echo "-c cachekit.transparent=registered" ;;
	transparent_all) echo "-c cachekit.transparent=all" ;;
	off) echo "-c cachekit.transparent=off" ;;
	*) echo "" ;; # direct and pgpool: the server's default, off
	esac
}

# --- runs -------------------------------------------------------------------

# run_one REP WORKLOAD MODE CLIENTS VARIANT PORT pgbench-args...
# Appends one pgbench run to $RUNS with the hits and lookups of the cache
# the variant went through.
run_one() {
	local rep=$1 wl=$2 mode=$3 c=$4 variant=$5 port=$6
	shift 6
	local j=$((c < 2 ? c : 2)) logf="$LOGS/$wl-$mode-c$c-$variant-r$rep.log"
	local before=() after=() tps lat failed rc=0 cache='' hits
	if [[ $variant == pgpool ]]; then
		cache=pgpool
		read -r -a before <<<"$(pool_cache_counters)"
	else
		cache=cachekit
		read -r -a before <<<"$(ck_counters)"
	fi
	PGOPTIONS=$(variant_options "$variant") pgbench -n -h 127.0.0.1 -p "$port" -U postgres -M "$mode" \
		-c "$c" -j "$j" -T "$([[ $wl == tpcb ]] && echo "$TPCB_SECS" || echo "$SECS")" -D pk_keys="$HOT_KEYS" "$@" postgres >"$logf" 2>&1 || rc=$?
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
	if [[ $cache == pgpool ]]; then
		read -r -a after <<<"$(pool_cache_counters)"
		# num_selects counts the SELECTs that went to the backend (misses).
		hits="$((after[0] - before[0])),$((after[0] - before[0] + after[1] - before[1]))"
	else
		read -r -a after <<<"$(ck_counters)"
		hits="$((after[0] - before[0])),$((after[1] - before[1]))"
		# Transparent off, or a shape that is not registered: nothing may
		# go through the cache.
		if [[ $variant == direct || $variant == off ]] && ((after[1] != before[1])); then
			note "ANOMALY: $((after[1] - before[1])) statements of $wl/$mode/c$c/$variant (rep $rep) went through the cache with transparent off"
		fi
		if [[ $variant == registered ]] && ((after[1] != before[1])); then
			note "ANOMALY: $((after[1] - before[1])) TPC-B statements (rep $rep, $mode) went through the cache although none of their shapes is registered"
		fi
	fi
	echo "$rep,$wl,$mode,$c,$variant,$tps,$lat,${failed:-0},$cache,$hits" >>"$RUNS"
	printf 'bench: rep %d %-6s %-8s c%-2s %-15s %10s tps %8s ms  hits/lookups %s\n' \
		"$rep" "$wl" "$mode" "$c" "$variant" "$tps" "$lat" "${hits/,//}" >&2
}

# warm PORT VARIANT MODE SCRIPT N: N statements of SCRIPT, keys in order
# (the warm_*_pgpool.sql scripts walk them with bench_warm_seq), with the
# very text and protocol the measured runs use.
warm() {
	local port=$1 variant=$2 mode=$3 script=$4 n=$5 logf
	logf="$LOGS/warm-$(basename "$script" .sql)-$variant-$mode.log"
	psqlx -c 'ALTER SEQUENCE bench_warm_seq RESTART 1'
	PGOPTIONS=$(variant_options "$variant") pgbench -n -h 127.0.0.1 -p "$port" -U postgres -M "$mode" -c 1 -t "$n" \
		-f "$script" postgres >"$logf" 2>&1 ||
		note "ANOMALY: warm-up $script $variant -M $mode failed: $(tail -n 3 "$logf" | tr '\n' ' ')"
}

warm_caches() {
	local mode v port
	for mode in "${MODES[@]}"; do
		for v in "${VARIANTS[@]}"; do
			case $v in
			direct) continue ;;
			pgpool) port=$PGPOOL_PORT ;;
			*) port=$PG_PORT ;;
			esac
			log "warming $v (-M $mode): $HOT_KEYS hot keys, 20 aggregate keys"
			if has hot; then warm "$port" "$v" "$mode" "$WL/warm_pk_pgpool.sql" "$HOT_KEYS"; fi
			if has agg; then warm "$port" "$v" "$mode" "$WL/warm_agg_pgpool.sql" 20; fi
		done
	done
}

# outcomes SQL...: in one transparent session, each statement followed by
# SELECT cachekit.last_outcome(); prints the outcomes, space-separated
# (a statement that outputs nothing, such as PREPARE, reports the outcome
# before it).
outcomes() {
	local args=() s
	for s in "$@"; do args+=(-c "$s" -c 'SELECT $$outcome$$, cachekit.last_outcome()'); done
	PGOPTIONS=$(variant_options "$SERVED") psqlx -F ' ' "${args[@]}" | awk '$1 == "outcome" { printf "%s%s", sep, $2; sep = " " }'
}

# After the warm-up: the statements the benchmark sends are served (hit), in
# simple and in prepared form, and give the direct answer.
check_hits() {
	local rep=$1 out direct cached explain oc=()
	[[ -n $SERVED ]] || return 0
	local pk='SELECT abalance FROM pgbench_accounts WHERE aid = 42;'
	local agg='SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN 7000 AND 7000+5000 GROUP BY bid;'
	if has hot; then
		out=$(outcomes "$pk")
		note "rep $rep: after warm-up, $SERVED PK aid=42 (simple) -> last_outcome() = $out"
		[[ $out == hit ]] || note "ANOMALY: expected a hit for the warmed PK key 42, got '$out'"
		# The first EXECUTE is informative (whether the literal and the
		# parameter form share a key); the second must be a hit.
		read -r -a oc <<<"$(outcomes "PREPARE p(int) AS ${PK_QUERY}" 'EXECUTE p(42)' 'EXECUTE p(42)')"
		note "rep $rep: after warm-up, $SERVED PK aid=42, SQL PREPARE then EXECUTE twice -> last_outcome() = ${oc[1]:-?}, ${oc[2]:-?}"
		[[ ${oc[2]:-} == hit ]] || note "ANOMALY: expected a hit for the second EXECUTE of a prepared PK lookup, got '${oc[2]:-}'"
	fi
	if has agg; then
		out=$(outcomes "$agg")
		note "rep $rep: after warm-up, $SERVED aggregate a=7000 -> last_outcome() = $out"
		[[ $out == hit ]] || note "ANOMALY: expected a hit for the warmed aggregate key 7000, got '$out'"
		direct=$(psqlx -c "$agg" | sort | tr '\n' ' ')
		cached=$(PGOPTIONS=$(variant_options "$SERVED") psqlx -c "$agg" | sort | tr '\n' ' ')
		if [[ $direct == "$cached" ]]; then
			note "rep $rep: $SERVED aggregate a=7000 equals the direct result ($direct)"
		else
			note "ANOMALY: $SERVED aggregate a=7000 '$cached' differs from direct '$direct'"
		fi
	fi
	if ((rep == 1)); then
		explain=$(PGOPTIONS=$(variant_options "$SERVED") psqlx -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) $pk" | tr '\n' '|')
		note "rep $rep: EXPLAIN ANALYZE of the PK statement, $SERVED: $explain"
		[[ $explain == *"Custom Scan (cachekit)"* ]] || note "ANOMALY: no Custom Scan (cachekit) node in the transparent plan of the PK statement"
	fi
}

read_workload() {
	local rep=$1 wl=$2 mode c v port args
	case $wl in
	hot) args=(-f "$WL/pk_direct.sql") ;; # aid random(1, pk_keys = BENCH_HOT_KEYS)
	agg) args=(-f "$WL/agg_direct.sql") ;;
	select) args=(-S) ;; # pgbench's built-in select-only script
	esac
	for mode in "${MODES[@]}"; do
		for c in "${CLIENTS[@]}"; do
			for v in $(rotate "$((rep - 1))" "${VARIANTS[@]}"); do
				port=$PG_PORT
				[[ $v == pgpool ]] && port=$PGPOOL_PORT
				run_one "$rep" "$wl" "$mode" "$c" "$v" "$port" "${args[@]}"
			done
		done
	done
}

# TPC-B with transparent off vs registered. Only the aggregate's shape is
# registered then (PK_QUERY is dropped: it is TPC-B's own SELECT), so none
# of TPC-B's statements qualifies and "registered" measures what the
# planner hook costs a statement it does not serve. registered_pk (optional)
# keeps PK_QUERY registered: TPC-B's SELECT then goes through the cache node
# and bypasses (the transaction wrote pgbench_accounts).
tpcb_workload() {
	local rep=$1 mode v
	if ((rep == 1)); then
		# Unmeasured: the first writes to each page after the checkpoint
		# write full-page images; get them out of the way.
		log "TPC-B warm-up (${TPCB_SECS}s, not measured)"
		pgbench -n -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$TPCB_CLIENTS" -j 2 -T "$TPCB_SECS" -b tpcb-like postgres \
			>"$LOGS/tpcb-warmup.log" 2>&1 || note "ANOMALY: TPC-B warm-up failed: $(tail -n 2 "$LOGS/tpcb-warmup.log" | tr '\n' ' ')"
	fi
	for mode in "${MODES[@]}"; do
		for v in $(rotate "$((rep - 1))" "${TPCB_VARIANTS[@]}"); do
			if [[ $v == registered_pk ]]; then
				psqlx -c "SELECT cachekit.create_cache('$PK_QUERY')" >/dev/null
			else
				psqlx -c "SELECT cachekit.drop_cache('$PK_QUERY')" >/dev/null
			fi
			run_one "$rep" tpcb "$mode" "$TPCB_CLIENTS" "$v" "$PG_PORT" -b tpcb-like
		done
	done
	psqlx -c "SELECT cachekit.create_cache('$PK_QUERY')" >/dev/null
	# TPC-B wrote pgbench_accounts straight to Postgres: pgpool never saw
	# it. One UPDATE through pgpool drops its entries of the table, so that
	# the next repetition's pgpool warm-up stores fresh results.
	pgpoolx -c 'UPDATE pgbench_accounts SET abalance = abalance WHERE aid = 1' >/dev/null
}

# Stale reads after a write committed on another connection. One pgbench
# client (-t CHECKS, so -M prepared re-executes its prepared statements) per
# mode reads a hot key twice (the second read is served by the cache), has
# another connection commit abalance + 1 on that row (\shell psql), and reads
# it again: the third read must see the increment. Transparent; for
# comparison pgpool with the UPDATE sent through pgpool (a write it sees) and
# pgpool_unseen with the UPDATE sent straight to Postgres (never seen by
# pgpool: stale by design, the case the issue contrasts with).
stale_checks() {
	local mode v port wport upd script out n stale before=() after=()
	((CHECKS > 0)) || return 0
	for v in transparent pgpool pgpool_unseen; do
		case $v in
		transparent)
			[[ -n $SERVED ]] || continue
			port=$PG_PORT wport=$PG_PORT
			;;
		pgpool) port=$PGPOOL_PORT wport=$PGPOOL_PORT ;;
		pgpool_unseen) port=$PGPOOL_PORT wport=$PG_PORT ;;
		esac
		upd=$WORK/update-$v.sh
		cat >"$upd" <<SH
#!/bin/sh
# A committed UPDATE on a connection of its own (not the reader's).
PGOPTIONS= exec psql -X -q -At -h 127.0.0.1 -p $wport -U postgres -d postgres -v ON_ERROR_STOP=1 \\
	-c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = \$1"
SH
		chmod 755 "$upd"
		script=$WORK/stale-$v.sql
		cat >"$script" <<SQL
\\set aid random(1, $HOT_KEYS)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid \\gset r0_
SELECT abalance FROM pgbench_accounts WHERE aid = :aid \\gset r1_
\\shell $upd :aid
SELECT abalance FROM pgbench_accounts WHERE aid = :aid \\gset r2_
\\shell echo check :aid :r0_abalance :r1_abalance :r2_abalance
SQL
		for mode in "${MODES[@]}"; do
			read -r -a before <<<"$(ck_counters)"
			out=$(PGOPTIONS=$(variant_options "${v/#transparent/$SERVED}") pgbench -n -h 127.0.0.1 -p "$port" -U postgres -M "$mode" -c 1 \
				-t "$CHECKS" -f "$script" postgres 2>&1 | tee "$LOGS/stale-$v-$mode.log" | grep '^check' || true)
			read -r -a after <<<"$(ck_counters)"
			n=$(echo "$out" | grep -c '^check' || true)
			stale=$(echo "$out" | awk '$1 == "check" && $5 != $3 + 1' | wc -l)
			if [[ $v == transparent ]]; then
				note "stale check, $SERVED -M $mode: $stale stale of $n reads after a committed UPDATE on another connection (cache counters during the check: $((after[0] - before[0])) hits of $((after[1] - before[1])) lookups)"
				# Every second read should have been a hit; fewer hits and the
				# third reads may not have had a cached entry to go stale.
				if ((after[0] - before[0] < n)); then
					note "ANOMALY: only $((after[0] - before[0])) cache hits in $n stale checks (-M $mode): the check did not exercise cached entries"
				fi
			elif [[ $v == pgpool ]]; then
				note "stale check, pgpool -M $mode (UPDATE through pgpool): $stale stale of $n reads after a committed UPDATE on another connection"
			else
				note "stale check, pgpool -M $mode (UPDATE straight to Postgres, expected stale): $stale stale of $n reads after a committed UPDATE on another connection"
			fi
			((n == CHECKS)) || note "ANOMALY: stale check $v -M $mode ran $n of $CHECKS checks: $(grep -m 2 -iE 'error|abort' "$LOGS/stale-$v-$mode.log" | tr '\n' ' ')"
			if ((stale > 0)) && [[ $v != pgpool_unseen ]]; then
				note "STALE: $v -M $mode returned a value older than a committed UPDATE $stale times ($(echo "$out" | awk '$1 == "check" && $5 != $3 + 1 { printf "aid %s: %s -> %s; ", $2, $3, $5 }'))"
			fi
			echo "${v/#transparent/$SERVED},$mode,$n,$stale" >>"$WORK/stale.csv"
		done
	done
}

{
	echo "date: $(date -Is)"
	echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src sql 2>/dev/null || echo ' (src/ or sql/ modified)')"
	# What the server actually loaded (preloaded at start: later installs do not change it).
	bench_library_line
	echo "host: $(nproc) cores, $(uname -r); $(psqlx -c 'SELECT version()' | cut -d, -f1); $("$PGPOOL" --version 2>&1)"
	echo "settings: ${SECS}s per run, $REPS repetitions, clients ${CLIENTS[*]} (-j min(c,2)), modes ${MODES[*]}, scale $SCALE ($((SCALE * 100000)) accounts), hot set aid random(1, $HOT_KEYS), TPC-B $TPCB_CLIENTS clients ${TPCB_SECS}s per run"
	echo "variants: ${VARIANTS[*]}; TPC-B: ${TPCB_VARIANTS[*]}; workloads: ${WORKLOADS[*]}"
	echo "postgres: fsync and synchronous_commit on, $(echo "$SANDBOX_CONF" | paste -sd, - | sed 's/,/, /g')"
	if [[ -n $CACHES_VIEW ]]; then echo "registered shapes: $(psqlx -c 'SELECT string_agg(query, $$ | $$ ORDER BY query) FROM cachekit.caches')"; fi
} >>"$NOTES"
echo "variant,mode,checks,stale" >"$WORK/stale.csv"

log "runs of ${SECS}s, $REPS repetitions, workloads ${WORKLOADS[*]}, variants ${VARIANTS[*]}"
for ((rep = 1; rep <= REPS; rep++)); do
	# The previous repetition's TPC-B invalidated both caches: warm again.
	if has hot || has agg; then
		warm_caches
		check_hits "$rep"
	fi
	if has hot; then read_workload "$rep" hot; fi
	if has agg; then read_workload "$rep" agg; fi
	# Last of the reads: its misses over the whole table store entries that
	# may push the hot keys out of L1.
	if has select; then read_workload "$rep" select; fi
	if has hot || has agg || has select; then
		note "rep $rep: pgpool SHOW POOL_CACHE after the read workloads: $(pgpoolx -F ' ' -c 'SHOW POOL_CACHE' | awk '{ printf "num_cache_hits=%s num_selects(misses)=%s cache_hit_ratio=%s num_cache_entries=%s", $1, $2, $3, $6 }')"
	fi
	if has tpcb; then tpcb_workload "$rep"; fi
done
stale_checks
if [[ -n $CACHES_VIEW ]]; then
	note "cachekit.caches at the end: $(psqlx -F ' ' -c 'SELECT fingerprint, calls, hits, misses, bypasses, l1_hits FROM cachekit.caches ORDER BY query' | paste -sd ';' -)"
fi

if grep -qi 'error\|fatal\|panic' "$PP/pgpool.log"; then
	note "pgpool log has errors: $(grep -i -m 5 'error\|fatal\|panic' "$PP/pgpool.log" | tr '\n' ' ')"
fi

mkdir -p "$RESULTS"
cp "$RUNS" "$OUT-runs.csv"
cp "$NOTES" "$OUT-notes.txt"
cp "$WORK/stale.csv" "$OUT-stale.csv"
# The report can be made again from these files:
#   test/bench/transparent_report.py --runs R-runs.csv --notes R-notes.txt --stale R-stale.csv --out R
python3 "$BENCH_DIR/transparent_report.py" --runs "$OUT-runs.csv" --notes "$OUT-notes.txt" \
	--stale "$OUT-stale.csv" --out "$OUT"
log "wrote $OUT.txt, $OUT.csv, $OUT-runs.csv$([[ -f $OUT.png ]] && echo ", $OUT.png")"
