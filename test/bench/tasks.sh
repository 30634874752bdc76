#!/usr/bin/env bash
# Benchmark of pg_cachekit's task queue against graphile-worker 0.16.6 and
# pg-boss 10.4.2 (npm, pinned in test/bench/tasks/package-lock.json), all on
# the same throwaway Postgres, in one run, alternating the systems and
# repeating; medians and ratios go to test/bench/results/.
#
# usage: test/bench/tasks.sh                  (full run, ~35-60 minutes on 2 cores)
#        BENCH_QUICK=1 test/bench/tasks.sh    (smoke test: N=5000, 1 round, ~5 minutes)
#
# Measures (each the same way for the three systems; test/bench/README.md):
#   throughput  enqueue N no-op jobs (pgbench, 8 clients, one job per
#               transaction) with no consumer running, then release the
#               consumers and time the drain until none is left
#   steady      a producer enqueues at a fixed rate (pgbench -R) for T
#               seconds while the consumers run: achieved completion rate
#   pickup      one job at a time on an idle queue: commit returned to the
#               enqueuer -> handler start, p50/p99
#   overhead    a one-row INSERT transaction with and without an enqueue in it
#               (pgbench, alternating): % of latency added; with synchronous_commit
#               on (durable) and off (the enqueue's CPU cost, without fsync waits)
#
# Environment (all optional):
#   BENCH_QUICK             1: smoke-test defaults (marked below)
#   BENCH_ROUNDS            rounds; the order of the systems rotates each round (3; quick 1)
#   BENCH_N                 jobs enqueued then drained (50000; quick 5000)
#   BENCH_STEADY_RATE       producer rate in jobs/s (500)
#   BENCH_STEADY_SECONDS    producer run time (20; quick 5)
#   BENCH_LATENCY_N         pickup samples per system and round (500; quick 100)
#   BENCH_OVERHEAD_SECONDS  seconds per overhead pgbench run (10; quick 3)
#   BENCH_OVERHEAD_CLIENTS  client counts of the overhead runs ("1 8")
#   BENCH_SYSTEMS           subset of "cachekit graphile pgboss" (all three)
#   BENCH_MEASURES          subset of "throughput steady pickup overhead" (all)
#   BENCH_CONCURRENCY       jobs run at once by each system (8)
#   BENCH_FSYNC             off: fsync and synchronous_commit off (on)
#   PGBOSS_BATCH_SIZE       pg-boss work() batchSize (100; its default is 1)
#   PGBOSS_POLL_SECONDS     pg-boss pollingIntervalSeconds (0.5, its minimum; default 2)
#   BENCH_RESULTS           output folder (test/bench/results)
#   BENCH_NPM_CACHE         where the pinned npm packages are installed
#                           (${XDG_CACHE_HOME:-~/.cache}/pg_cachekit/bench-tasks)
#   BENCH_KEEP_WORK         1: keep the scratch folder (logs, pgbench output)
#   CACHEKIT_PG_BINDIR      Postgres binaries (/usr/lib/postgresql/15/bin)
#
# Starts its own sandbox (test/sandbox, fsync on, cachekit.task_workers = 8)
# and stops it on exit. Run as root (the cluster then belongs to the postgres
# user) or as a user that can run initdb. Needs pgbench, python3, Node.js >= 20
# with npm and gnuplot-nox; gnuplot-nox (and Node.js/npm, if missing) are
# installed with apt-get. pg_cachekit must be installed for that Postgres
# (make install; tried once when CREATE EXTENSION fails). Not part of make
# test: run by make bench (test/bench/run-all).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
TASKS=$BENCH_DIR/tasks
SANDBOX=$REPO/test/sandbox
PG_BINDIR=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	ROUNDS=${BENCH_ROUNDS:-1}
	N=${BENCH_N:-5000}
	STEADY_SECONDS=${BENCH_STEADY_SECONDS:-5}
	LATENCY_N=${BENCH_LATENCY_N:-100}
	OVERHEAD_SECONDS=${BENCH_OVERHEAD_SECONDS:-3}
else
	ROUNDS=${BENCH_ROUNDS:-3}
	N=${BENCH_N:-50000}
	STEADY_SECONDS=${BENCH_STEADY_SECONDS:-20}
	LATENCY_N=${BENCH_LATENCY_N:-500}
	OVERHEAD_SECONDS=${BENCH_OVERHEAD_SECONDS:-10}
fi
STEADY_RATE=${BENCH_STEADY_RATE:-500}
# Producer connections of the steady run (pgbench -R spreads the rate over them).
STEADY_CLIENTS=8
FSYNC=${BENCH_FSYNC:-on}
# Overhead runs with synchronous_commit on (durable, when fsync is on) and off.
if [[ $FSYNC == on ]]; then OVERHEAD_COMMITS=(on off); else OVERHEAD_COMMITS=(off); fi
LATENCY_WARMUP=20
read -r -a OVERHEAD_CLIENTS <<<"${BENCH_OVERHEAD_CLIENTS:-1 8}"
read -r -a SYSTEMS <<<"${BENCH_SYSTEMS:-cachekit graphile pgboss}"
read -r -a MEASURES <<<"${BENCH_MEASURES:-throughput steady pickup overhead}"
export TASKS_CONCURRENCY=${BENCH_CONCURRENCY:-8}
export PGBOSS_BATCH_SIZE=${PGBOSS_BATCH_SIZE:-100}
export PGBOSS_POLL_SECONDS=${PGBOSS_POLL_SECONDS:-0.5}
# The enqueuers of the throughput measure: pgbench clients (-j 2).
ENQUEUE_CLIENTS=8
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
NPM_CACHE=${BENCH_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pg_cachekit/bench-tasks}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$RESULTS/tasks-$STAMP
DB=cachekit_tasks_bench

log() { echo "bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
has_measure() { [[ " ${MEASURES[*]} " == *" $1 "* ]]; }
has_system() { [[ " ${SYSTEMS[*]} " == *" $1 "* ]]; }
posint() { [[ $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || die "$1 must be a positive integer (got '$2')"; }

posint BENCH_ROUNDS "$ROUNDS"
posint BENCH_N "$N"
posint BENCH_STEADY_RATE "$STEADY_RATE"
posint BENCH_STEADY_SECONDS "$STEADY_SECONDS"
posint BENCH_LATENCY_N "$LATENCY_N"
posint BENCH_OVERHEAD_SECONDS "$OVERHEAD_SECONDS"
posint BENCH_CONCURRENCY "$TASKS_CONCURRENCY"
posint PGBOSS_BATCH_SIZE "$PGBOSS_BATCH_SIZE"
[[ $FSYNC =~ ^(on|off)$ ]] || die "BENCH_FSYNC must be on or off"
if ! [[ $PGBOSS_POLL_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
	! python3 -c "import sys; sys.exit(float('$PGBOSS_POLL_SECONDS') < 0.5)"; then
	die "PGBOSS_POLL_SECONDS must be a number >= 0.5 (pg-boss' minimum)"
fi
for c in "${OVERHEAD_CLIENTS[@]}"; do posint BENCH_OVERHEAD_CLIENTS "$c"; done
for s in "${SYSTEMS[@]}"; do
	[[ $s =~ ^(cachekit|graphile|pgboss)$ ]] || die "unknown system '$s' in BENCH_SYSTEMS"
done
for m in "${MEASURES[@]}"; do
	[[ $m =~ ^(throughput|steady|pickup|overhead)$ ]] || die "unknown measure '$m' in BENCH_MEASURES"
done
# pgbench -t is per client: N is rounded down to a multiple of the clients.
N=$((N / ENQUEUE_CLIENTS * ENQUEUE_CLIENTS))
((N > 0)) || die "BENCH_N must be at least $ENQUEUE_CLIENTS"

# --- tools -------------------------------------------------------------------

apt_install() {
	log "installing $* (apt-get)"
	[[ $EUID -eq 0 ]] || die "$* missing and not root: install it (apt-get install $*)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; then
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
	fi
}
command -v pgbench >/dev/null || die "pgbench not found (postgresql-client-15)"
command -v python3 >/dev/null || die "python3 not found"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	apt_install nodejs npm
fi
if ! command -v gnuplot >/dev/null; then
	apt_install gnuplot-nox || log "warning: could not install gnuplot-nox; no plot"
fi

node_major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# The pinned peers, installed once per lock file into a cache folder outside
# the repository. Debian 12's own nodejs is 18; pg-boss 10 needs 20: then
# Node 20 itself comes from npm (package node, which ships the binary).
install_peers() {
	local lock_sum dir tmp
	lock_sum=$(cat "$TASKS/package.json" "$TASKS/package-lock.json" | sha256sum | cut -c1-16)
	dir=$NPM_CACHE/$lock_sum
	NODE=$(command -v node)
	if (($(node_major "$NODE") < 20)); then
		if [[ ! -x $NPM_CACHE/node20/node_modules/.bin/node ]]; then
			log "node $("$NODE" --version) is too old for pg-boss 10; installing Node 20 from npm into $NPM_CACHE/node20"
			mkdir -p "$NPM_CACHE/node20"
			(cd "$NPM_CACHE/node20" && timeout 600 npm install --no-audit --no-fund --loglevel=error --prefix . node@20 >/dev/null) ||
				die "could not install Node 20 from npm"
		fi
		NODE=$NPM_CACHE/node20/node_modules/.bin/node
		(($(node_major "$NODE") >= 20)) || die "no Node.js >= 20"
	fi
	if [[ ! -f $dir/.installed ]]; then
		log "npm ci (graphile-worker, pg-boss, pg as pinned) into $dir"
		mkdir -p "$NPM_CACHE"
		tmp=$(mktemp -d "$NPM_CACHE/.install.XXXXXX")
		cp "$TASKS/package.json" "$TASKS/package-lock.json" "$tmp/"
		(cd "$tmp" && PATH=$(dirname "$NODE"):$PATH timeout 600 npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
			rm -rf "$tmp"
			die "npm ci failed (network access to the npm registry is needed once)"
		}
		touch "$tmp/.installed"
		rm -rf "$dir"
		mv "$tmp" "$dir"
	fi
	export TASKS_NODE_PREFIX=$dir
}
install_peers
log "node $("$NODE" --version); peers from $TASKS_NODE_PREFIX"

# --- scratch space, cleanup ----------------------------------------------------

WORK=$(mktemp -d /tmp/ckbench-tasks.XXXXXX)
chmod 755 "$WORK"
SB=$WORK/sb
LOGS=$WORK/logs
RUNS=$WORK/runs.csv
SAMPLES=$WORK/pickup.csv
NOTES=$WORK/notes.txt
mkdir -p "$LOGS"
export TASKS_WORK=$WORK TASKS_LOG_DIR=$LOGS
echo "round,measure,system,clients,metric,value" >"$RUNS"
echo "round,system,seq,latency_ms" >"$SAMPLES"
: >"$NOTES"
SANDBOX_UP=
DRIVER_PID=

note() { echo "$*" | tee -a "$NOTES" >&2; }

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if [[ -n $DRIVER_PID ]] && kill -0 "$DRIVER_PID" 2>/dev/null; then
		# timeout passes the signal on; the driver stops the peer worker
		# processes it started.
		kill -TERM "$DRIVER_PID" 2>/dev/null
		local deadline=$((SECONDS + 15))
		while kill -0 "$DRIVER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -KILL "$DRIVER_PID" 2>/dev/null
	fi
	if ((rc != 0)); then
		log "failed (exit $rc); last lines of the logs:"
		for f in "$LOGS"/*.log "$SB/postgres.log"; do
			[[ -s $f ]] && {
				echo "--- $f" >&2
				tail -n 15 "$f" >&2
			}
		done
	fi
	if [[ -n $SANDBOX_UP ]]; then
		CACHEKIT_SANDBOX_DIR=$SB "$SANDBOX" stop
	fi
	if ((rc == 0)) && [[ ${BENCH_KEEP_WORK:-0} != 1 ]]; then
		rm -rf -- "$WORK"
	else
		log "scratch files kept in $WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- sandbox -----------------------------------------------------------------

log "starting the sandbox in $SB (fsync $FSYNC)"
# Durable commits as in production (every enqueue and every completion is a
# commit). No checkpoint in the middle of a run: one CHECKPOINT before each
# measured run instead. Autovacuum stays on: queue tables live on it.
# max_worker_processes: launcher, relay and 8 executors need more than 8.
SANDBOX_CONF="cachekit.task_workers = $TASKS_CONCURRENCY
max_worker_processes = 32
checkpoint_timeout = '1h'
max_wal_size = '8GB'"
SANDBOX_ENV=$(CACHEKIT_SANDBOX_DIR=$SB CACHEKIT_SANDBOX_FSYNC=$FSYNC CACHEKIT_PG_BINDIR=$PG_BINDIR \
	CACHEKIT_SANDBOX_EXTRA_CONF="$SANDBOX_CONF" "$SANDBOX" start)
SANDBOX_UP=1
eval "$SANDBOX_ENV"
export PGDATABASE=$DB
psqlx() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

createdb "$DB"
if ! psqlx -c 'CREATE EXTENSION pg_cachekit' 2>"$WORK/create.err"; then
	log "CREATE EXTENSION failed ($(head -n 1 "$WORK/create.err")); running make install"
	make -C "$REPO" install >"$WORK/make-install.log" 2>&1 || die "make install failed: see $WORK/make-install.log"
	psqlx -c 'CREATE EXTENSION pg_cachekit'
fi
psqlx -f "$TASKS/setup.sql" >/dev/null

# --- driver --------------------------------------------------------------------

# run_driver SECONDS args...: one driver command, bounded in time. Not in a
# command substitution: there it would run in a subshell, where a signal to
# this script waits for it to end; here `wait` returns at once and cleanup
# stops it. Its JSON line is left in $OUTPUT.
OUTPUT=
run_driver() {
	local limit=$1 rc=0
	shift
	OUTPUT=
	timeout --kill-after=20 "$limit" "$NODE" "$TASKS/driver.mjs" "$@" >"$WORK/driver.out" 2>>"$LOGS/driver.log" &
	DRIVER_PID=$!
	wait "$DRIVER_PID" || rc=$?
	DRIVER_PID=
	if ((rc != 0)); then
		tail -n 5 "$LOGS/driver.log" >&2
		return "$rc"
	fi
	OUTPUT=$(<"$WORK/driver.out")
}

# run_bg SECONDS LOG command...: a long command (pgbench), bounded in time,
# in the background for the same reason as run_driver.
run_bg() {
	local limit=$1 logf=$2 rc=0
	shift 2
	timeout --kill-after=20 "$limit" "$@" >"$logf" 2>&1 &
	DRIVER_PID=$!
	wait "$DRIVER_PID" || rc=$?
	DRIVER_PID=
	return "$rc"
}

# record ROUND MEASURE SYSTEM CLIENTS JSON: every number (or boolean) of the
# driver's JSON as one row of the long-format runs file.
record() {
	python3 - "$@" >>"$RUNS" <<'PY'
import json, sys
rnd, measure, system, clients, text = sys.argv[1:6]
for k, v in json.loads(text).items():
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, (int, float)):
        print(f"{rnd},{measure},{system},{clients},{k},{v}")
PY
}

json_field() { python3 -c 'import json, sys; v = json.loads(sys.argv[1]).get(sys.argv[2]); print("" if v is None else v)' "$1" "$2"; }

log "setting up the peers' schemas (their own migrations)"
run_driver 300 setup || die "driver setup failed (see $LOGS/driver.log)"
VERSIONS=$OUTPUT
printf "SELECT cachekit.enqueue('default', 'public.bench_noop');\n" >"$WORK/enqueue_cachekit.sql"
for s in plain "${SYSTEMS[@]}"; do
	{
		echo "BEGIN;"
		echo "INSERT INTO public.bench_rows (v) VALUES (1);"
		[[ $s == plain ]] || cat "$WORK/enqueue_$s.sql"
		echo "END;"
	} >"$WORK/overhead_$s.sql"
done

# No consumer may run while jobs are enqueued for a drain or the enqueue
# overhead is measured: the peers' worker processes are started by the driver
# for a measure only; pg_cachekit's executors are stopped (task_workers = 0).
hold_all() {
	if has_system cachekit; then
		run_driver 120 hold --system cachekit || die "cannot stop pg_cachekit's executors"
	fi
}

# --- per-system housekeeping -----------------------------------------------------

# Remove every job of a system (finished or not) and vacuum its tables, so
# that each measured run starts from empty, vacuumed tables.
clean() {
	case $1 in
	# The task tables are not writable by users; the superuser may.
	cachekit) psqlx -c 'TRUNCATE cachekit._tasks' -c 'VACUUM (ANALYZE) cachekit._tasks' ;;
	graphile) psqlx -c 'TRUNCATE graphile_worker._private_jobs' -c 'VACUUM (ANALYZE) graphile_worker._private_jobs' ;;
	pgboss) psqlx -c 'TRUNCATE pgboss.job, pgboss.archive' -c 'VACUUM (ANALYZE) pgboss.job' ;;
	esac
}
clean_all() { for s in "${SYSTEMS[@]}"; do clean "$s"; done; }

# Order of the systems in round R: rotated by one each round.
rotate() {
	local k=$1
	shift
	local a=("$@")
	k=$((k % ${#a[@]}))
	echo "${a[@]:k}" "${a[@]:0:k}"
}

pgbench_tps() { sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$1" | tail -n 1; }
pgbench_lat() { sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$1" | tail -n 1; }

# pickup: a pause of 10 ms + uniform(0, J) between jobs, J = the system's
# polling period if it polls for new jobs (pg-boss), else 20 ms.
jitter_ms() {
	if [[ $1 == pgboss ]]; then
		python3 -c "print(int(float('$PGBOSS_POLL_SECONDS') * 1000))"
	else
		echo 20
	fi
}

# --- measures ------------------------------------------------------------------

throughput() {
	local r=$1 s=$2
	local logf=$LOGS/enqueue-$s-r$r.log tps lat res
	clean "$s"
	hold_all
	psqlx -c CHECKPOINT
	run_bg $((600 + N / 20)) "$logf" pgbench -n -M prepared -c "$ENQUEUE_CLIENTS" -j 2 -t $((N / ENQUEUE_CLIENTS)) -f "$WORK/enqueue_$s.sql" ||
		die "enqueue pgbench failed for $s: $(tail -n 3 "$logf")"
	tps=$(pgbench_tps "$logf")
	lat=$(pgbench_lat "$logf")
	echo "$r,throughput,$s,$ENQUEUE_CLIENTS,enqueue_rate,$tps" >>"$RUNS"
	echo "$r,throughput,$s,$ENQUEUE_CLIENTS,enqueue_latency_ms,$lat" >>"$RUNS"
	run_driver $((900 + N / 20)) drain --system "$s" --n "$N" --timeout $((600 + N / 50)) || die "drain failed for $s"
	res=$OUTPUT
	record "$r" throughput "$s" "$TASKS_CONCURRENCY" "$res"
	printf 'bench: round %d throughput %-8s enqueue %8.1f jobs/s, drain %8.1f jobs/s (%s s)\n' "$r" "$s" "$tps" \
		"$(json_field "$res" rate)" "$(json_field "$res" seconds)" >&2
	[[ $(json_field "$res" timed_out) == True || $(json_field "$res" timed_out) == true ]] &&
		note "ANOMALY: round $r: $s did not drain $N jobs within the timeout ($(json_field "$res" "done") done)"
	[[ $(json_field "$res" failed) == 0 ]] || note "ANOMALY: round $r: $s: $(json_field "$res" failed) no-op jobs failed or were retried"
	clean "$s"
}

steady() {
	local r=$1 s=$2 res
	clean "$s"
	psqlx -c CHECKPOINT
	run_driver $((STEADY_SECONDS + 600)) steady --system "$s" --rate "$STEADY_RATE" --seconds "$STEADY_SECONDS" \
		--clients "$STEADY_CLIENTS" --script "$WORK/enqueue_$s.sql" --catchup-timeout 300 || die "steady run failed for $s"
	res=$OUTPUT
	record "$r" steady "$s" "$STEADY_CLIENTS" "$res"
	printf 'bench: round %d steady     %-8s enqueued %8.1f jobs/s, completed %8.1f jobs/s, backlog at the end %s\n' "$r" "$s" \
		"$(json_field "$res" enqueue_rate)" "$(json_field "$res" completion_rate)" "$(json_field "$res" backlog_end)" >&2
	[[ $(json_field "$res" failed) == 0 ]] || note "ANOMALY: round $r: $s: $(json_field "$res" failed) no-op jobs failed or were retried (steady)"
	[[ -n $(json_field "$res" catchup_s) ]] || note "ANOMALY: round $r: $s had not caught up 300 s after the producer stopped"
	clean "$s"
}

pickup() {
	local r=$1 s=$2
	local res j samples=$WORK/pickup-$s-r$r.csv
	clean "$s"
	j=$(jitter_ms "$s")
	run_driver $((600 + (LATENCY_N + LATENCY_WARMUP) * (100 + 2 * j) / 1000)) pickup --system "$s" \
		--n "$LATENCY_N" --warmup "$LATENCY_WARMUP" --gap-ms 10 --jitter-ms "$j" --out "$samples" ||
		die "pickup run failed for $s"
	res=$OUTPUT
	record "$r" pickup "$s" 1 "$res"
	tail -n +2 "$samples" | sed "s/^/$r,$s,/" >>"$SAMPLES"
	printf 'bench: round %d pickup     %-8s p50 %8.3f ms, p99 %8.3f ms (%s samples)\n' "$r" "$s" \
		"$(json_field "$res" p50_ms)" "$(json_field "$res" p99_ms)" "$(json_field "$res" samples)" >&2
	[[ $(json_field "$res" lost) == 0 ]] || note "ANOMALY: round $r: $s: $(json_field "$res" lost) pickup jobs not seen within 15 s"
	clean "$s"
}

overhead() {
	local r=$1 c v logf tps lat commit measure
	hold_all
	for commit in "${OVERHEAD_COMMITS[@]}"; do
		# synchronous_commit off (per session, PGOPTIONS): the commit does not
		# wait for the WAL flush, so the figure is the enqueue's CPU cost
		# rather than fsync latency, which swings widely on this disk.
		measure=overhead
		[[ $FSYNC == on && $commit == off ]] && measure=overhead_nosync
		for c in "${OVERHEAD_CLIENTS[@]}"; do
			for v in $(rotate "$((r - 1))" plain "${SYSTEMS[@]}"); do
				logf=$LOGS/$measure-$v-c$c-r$r.log
				psqlx -c CHECKPOINT
				PGOPTIONS="-c synchronous_commit=$commit" run_bg $((OVERHEAD_SECONDS + 300)) "$logf" \
					pgbench -n -M prepared -c "$c" -j $((c < 2 ? c : 2)) -T "$OVERHEAD_SECONDS" -f "$WORK/overhead_$v.sql" ||
					die "overhead pgbench failed for $v: $(tail -n 3 "$logf")"
				tps=$(pgbench_tps "$logf")
				lat=$(pgbench_lat "$logf")
				echo "$r,$measure,$v,$c,tps,$tps" >>"$RUNS"
				echo "$r,$measure,$v,$c,latency_ms,$lat" >>"$RUNS"
				printf 'bench: round %d %-15s %-8s c%-2d %9.1f tps %8.3f ms\n' "$r" "$measure" "$v" "$c" "$tps" "$lat" >&2
				[[ $v == plain ]] || clean "$v"
			done
		done
	done
	psqlx -c 'TRUNCATE public.bench_rows'
}

# --- run -------------------------------------------------------------------------

run_driver 120 clock || die "clock check failed"
CLOCK=$OUTPUT
{
	echo "date: $(date -Is)"
	echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src sql worker 2>/dev/null || echo ' (src/, sql/ or worker/ modified)')"
	lib="$("$PG_BINDIR/pg_config" --pkglibdir 2>/dev/null || echo "$PG_BINDIR/../lib")/pg_cachekit.so"
	echo "library: $lib, installed $(date -u -r "$lib" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo '?'), sha256 $(sha256sum "$lib" 2>/dev/null | cut -c1-12), extension $(psqlx -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cachekit'")"
	echo "host: $(nproc) cores, $(uname -r); $(psqlx -c 'SELECT version()' | cut -d, -f1); versions $VERSIONS"
	echo "settings: $ROUNDS rounds (system order rotated each round), N=$N, steady ${STEADY_RATE} jobs/s for ${STEADY_SECONDS}s (pgbench -R, $STEADY_CLIENTS clients), pickup $LATENCY_N samples after $LATENCY_WARMUP unmeasured, overhead ${OVERHEAD_SECONDS}s runs at clients ${OVERHEAD_CLIENTS[*]} with synchronous_commit ${OVERHEAD_COMMITS[*]}"
	echo "postgres: fsync and synchronous_commit $FSYNC, $(echo "$SANDBOX_CONF" | paste -sd, - | sed 's/,/, /g'); CHECKPOINT before each measured run; job tables emptied and vacuumed between runs"
	echo "pg_cachekit: cachekit.task_workers = $TASKS_CONCURRENCY (queue 'default', concurrency $(psqlx -c "SELECT concurrency FROM cachekit._queues WHERE name = 'default'")), task public.bench_noop (SQL function, empty body); no executor (task_workers = 0) during enqueue and overhead runs; executors started and the queue paused before a measure, resumed at its start"
	echo "graphile-worker: run({pgPool (max 10, its default), concurrency: $TASKS_CONCURRENCY}), other options default (pollInterval 2000 ms, LISTEN/NOTIFY wake-up), NO_LOG_SUCCESS=1; enqueue: SELECT graphile_worker.add_job('bench', '{}')"
	echo "pg-boss: $TASKS_CONCURRENCY x work('bench', {batchSize: $PGBOSS_BATCH_SIZE, pollingIntervalSeconds: $PGBOSS_POLL_SECONDS}) (documented defaults: batchSize 1, pollingIntervalSeconds 2, minimum 0.5), pool max 10 (default), other options default; enqueue: the INSERT its send() issues (captured from the package); bound: $TASKS_CONCURRENCY x $PGBOSS_BATCH_SIZE / ${PGBOSS_POLL_SECONDS}s = $(python3 -c "print(round($TASKS_CONCURRENCY * $PGBOSS_BATCH_SIZE / $PGBOSS_POLL_SECONDS))") jobs/s"
	echo "clock: Node wall clock (performance.timeOrigin + performance.now()) vs clock_timestamp(): $CLOCK (violations = server readings outside the client's bracket)"
} >>"$NOTES"
[[ $(json_field "$CLOCK" violations) == 0 ]] || note "ANOMALY: the Node clock and clock_timestamp() disagree by up to $(json_field "$CLOCK" worst_us) us: pickup figures are off by as much"

log "$ROUNDS rounds: ${MEASURES[*]} for ${SYSTEMS[*]}"
for ((r = 1; r <= ROUNDS; r++)); do
	order=$(rotate "$((r - 1))" "${SYSTEMS[@]}")
	log "round $r of $ROUNDS, order: $order"
	if has_measure throughput; then for s in $order; do throughput "$r" "$s"; done; fi
	if has_measure steady; then for s in $order; do steady "$r" "$s"; done; fi
	if has_measure pickup; then for s in $order; do pickup "$r" "$s"; done; fi
	if has_measure overhead; then overhead "$r"; fi
done

if grep -qiE 'PANIC|FATAL|server process .* terminated' "$SB/postgres.log" 2>/dev/null; then
	note "postgres log: $(grep -iE -m 5 'PANIC|FATAL|server process .* terminated' "$SB/postgres.log" | tr '\n' ' ')"
fi

mkdir -p "$RESULTS"
cp "$RUNS" "$OUT-runs.csv"
cp "$SAMPLES" "$OUT-pickup.csv"
cp "$NOTES" "$OUT-notes.txt"
# The report can be made again from these three files:
#   test/bench/tasks_report.py --runs R-runs.csv --pickup R-pickup.csv --notes R-notes.txt --out R
python3 "$BENCH_DIR/tasks_report.py" --runs "$OUT-runs.csv" --pickup "$OUT-pickup.csv" --notes "$OUT-notes.txt" --out "$OUT"
log "wrote $OUT.txt, $OUT.csv, $OUT-runs.csv, $OUT-pickup.csv$([[ -f $OUT.png ]] && echo ", $OUT.png")"
