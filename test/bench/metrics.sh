#!/usr/bin/env bash
# Benchmark of issue 10's monitoring: what the counters cost cached_query, what
# a scrape costs, and whether scraping slows the workload.
#
# usage: BENCH_BASE_BINDIR=/opt/pg7/usr/lib/postgresql/15/bin BENCH_BASE_BUILD=1 \
#        CACHEKIT_PG_BINDIR=/opt/pg5/usr/lib/postgresql/15/bin test/bench/metrics.sh
#        BENCH_QUICK=1 test/bench/metrics.sh     (smoke test: 3 s runs, 1 repetition, 10 scrapes)
#
#  1. counters: cached_query hit throughput (pgbench, PK lookup that hits,
#     simple protocol) with pg_cachekit from BENCH_BASE_COMMIT (before issue
#     10) against the installed build (HEAD). Each runs in its own sandbox on
#     its own Postgres installation; the two pgbench runs of a pair run one
#     after the other, never at the same time, their order swapped every
#     repetition. Needs BENCH_BASE_BINDIR (skipped without it).
#  2. scrape cost: SELECT cachekit.metrics() and GET /metrics with 1 and with 5
#     databases, each with 50 watched tables, 200 distinct cached queries and
#     10,000 tasks queued in a paused queue: scrapes 1.1 s apart (each makes
#     the relays publish a fresh snapshot) and back to back (within a second
#     the endpoint serves the last snapshot); median, p95, size.
#  3. scraping under load: cached_query hit throughput with a GET /metrics
#     every second in the background against none, alternated (5 databases).
#
# Environment (all optional):
#   CACHEKIT_PG_BINDIR  Postgres of the HEAD build (default /usr/lib/postgresql/15/bin);
#                       pg_cachekit is installed there with make install when missing
#   BENCH_BASE_BINDIR   another Postgres installation with the base build (part 1)
#   BENCH_BASE_BUILD    1: build BENCH_BASE_COMMIT (git archive) and install it into
#                       BENCH_BASE_BINDIR first (never into CACHEKIT_PG_BINDIR)
#   BENCH_BASE_COMMIT   default 61be9b4 (the last commit before issue 10)
#   BENCH_SECONDS       seconds per pgbench run (default 10; 3 with BENCH_QUICK=1)
#   REPS                repetitions (default 5; 1 with BENCH_QUICK=1)
#   BENCH_CLIENTS       client counts (default "1 8"; pgbench -j is min(clients, 2))
#   BENCH_SCRAPES       scrapes per series in part 2 (default 50; 10 with BENCH_QUICK=1)
#   BENCH_PARTS         subset of "counters scrape load" (default all)
#   BENCH_PK_KEYS       distinct cached lookups of the workload (default 1000)
#   BENCH_RESULTS       output folder (default test/bench/results)
#   BENCH_KEEP_WORK     1: keep the scratch folder (pgbench logs, server logs)
#
# Runs as root (clusters belong to postgres) or as a user that can run initdb.
# Writes results/metrics-<date>.{txt,csv,png} and the raw -runs.csv,
# -scrapes.csv, -notes.txt (metrics_report.py makes the report again).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
SANDBOX=$REPO/test/sandbox
WL=$BENCH_DIR/workloads

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	SECS=${BENCH_SECONDS:-3}
	REPS=${REPS:-1}
	SCRAPES=${BENCH_SCRAPES:-10}
else
	SECS=${BENCH_SECONDS:-10}
	REPS=${REPS:-5}
	SCRAPES=${BENCH_SCRAPES:-50}
fi
read -r -a CLIENTS <<<"${BENCH_CLIENTS:-1 8}"
read -r -a PARTS <<<"${BENCH_PARTS:-counters scrape load}"
HEAD_BINDIR=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
BASE_BINDIR=${BENCH_BASE_BINDIR:-}
BASE_COMMIT=${BENCH_BASE_COMMIT:-61be9b4}
PK_KEYS=${BENCH_PK_KEYS:-1000}
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$RESULTS/metrics-$STAMP
TABLES_PER_DB=50
QUERIES_PER_DB=200
TASKS_PER_DB=10000
EXTRA_DBS=4 # the 5-database configuration: bench + 4

log() { echo "bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
has() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
[[ $SECS =~ ^[0-9]+$ && $SECS -gt 0 ]] || die "BENCH_SECONDS must be a positive integer"
[[ $REPS =~ ^[0-9]+$ && $REPS -gt 0 ]] || die "REPS must be a positive integer"
[[ $SCRAPES =~ ^[0-9]+$ && $SCRAPES -gt 1 ]] || die "BENCH_SCRAPES must be an integer > 1"
for p in "${PARTS[@]}"; do [[ $p =~ ^(counters|scrape|load)$ ]] || die "unknown part '$p'"; done
for t in pgbench psql curl python3 nm; do command -v "$t" >/dev/null || die "$t not found"; done
[[ -x $HEAD_BINDIR/initdb ]] || die "no Postgres in $HEAD_BINDIR"
if has counters; then
	if [[ -z $BASE_BINDIR ]]; then
		log "BENCH_BASE_BINDIR not set: part 1 (counters, base vs HEAD) skipped"
		PARTS=("${PARTS[@]/counters/}")
	else
		[[ -x $BASE_BINDIR/initdb ]] || die "no Postgres in $BASE_BINDIR"
		[[ $(realpath "$BASE_BINDIR") != $(realpath "$HEAD_BINDIR") ]] ||
			die "BENCH_BASE_BINDIR must be another Postgres installation than CACHEKIT_PG_BINDIR"
	fi
fi

as_pg() { if [[ $EUID -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

WORK=$(mktemp -d /tmp/ckmetrics.XXXXXX)
chmod 755 "$WORK"
LOGS=$WORK/logs
RUNS=$WORK/runs.csv
SCR=$WORK/scrapes.csv
NOTES=$WORK/notes.txt
mkdir -p "$LOGS"
echo "part,rep,clients,variant,tps,latency_ms,hits,calls,scrapes" >"$RUNS"
echo "config,kind,spacing,seq,ms,bytes,status" >"$SCR"
: >"$NOTES"
note() { echo "$*" | tee -a "$NOTES" >&2; }
SANDBOXES=()
SCRAPER_PID=

cleanup() {
	local rc=$? sb
	set +e
	trap - EXIT INT TERM
	[[ -n $SCRAPER_PID ]] && kill "$SCRAPER_PID" 2>/dev/null && wait "$SCRAPER_PID" 2>/dev/null
	if ((rc != 0)); then
		for sb in "${SANDBOXES[@]}"; do
			echo "--- $sb/postgres.log" >&2
			tail -n 15 "$sb/postgres.log" >&2
		done
	fi
	for sb in "${SANDBOXES[@]}"; do
		cp "$sb/postgres.log" "$LOGS/$(basename "$sb")-postgres.log" 2>/dev/null
		CACHEKIT_SANDBOX_DIR=$sb CACHEKIT_PG_BINDIR=${SB_BINDIR[$sb]} "$SANDBOX" stop
	done
	if ((rc == 0)) && [[ ${BENCH_KEEP_WORK:-0} != 1 ]]; then rm -rf -- "$WORK"; else log "scratch files kept in $WORK"; fi
	exit "$rc"
}
declare -A SB_BINDIR SB_PORT
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- builds ---------------------------------------------------------------------

lib_of() { echo "$("$1/pg_config" --pkglibdir)/pg_cachekit.so"; }
if has counters && [[ ${BENCH_BASE_BUILD:-0} == 1 ]]; then
	log "building $BASE_COMMIT into $BASE_BINDIR"
	mkdir -p "$WORK/base-src"
	git -C "$REPO" archive "$BASE_COMMIT" | tar -x -C "$WORK/base-src"
	make -C "$WORK/base-src" -j2 PG_CONFIG="$BASE_BINDIR/pg_config" >"$LOGS/base-build.log" 2>&1 ||
		die "base build failed: $LOGS/base-build.log"
	make -C "$WORK/base-src" PG_CONFIG="$BASE_BINDIR/pg_config" install >>"$LOGS/base-build.log" 2>&1 ||
		die "base install failed"
fi
if [[ ! -f $(lib_of "$HEAD_BINDIR") ]]; then
	log "no pg_cachekit in $HEAD_BINDIR: make install"
	make -C "$REPO" -j2 PG_CONFIG="$HEAD_BINDIR/pg_config" install >"$LOGS/head-build.log" 2>&1 || die "make install failed"
fi
# The counters are what part 1 is about: the base library must not have them.
describe_lib() { # $1 variant, $2 bindir
	local lib n
	lib=$(lib_of "$2")
	n=$(nm -C "$lib" 2>/dev/null | grep -c 'count_query_call' || true)
	note "library $1: $lib, installed $(date -r "$lib" '+%F %T'), sha256 $(sha256sum "$lib" | cut -c1-16), count_query_call symbols: $n"
	echo "$n"
}
note "git HEAD of $REPO: $(git -C "$REPO" log -1 --format='%h %s' 2>/dev/null || echo '?')"
[[ $(describe_lib head "$HEAD_BINDIR") -gt 0 ]] || die "the HEAD library has no count_query_call: not a build with issue 10"
if has counters; then
	note "base commit: $(git -C "$REPO" log -1 --format='%h %s' "$BASE_COMMIT")"
	[[ $(describe_lib base "$BASE_BINDIR") -eq 0 ]] || die "the library in $BASE_BINDIR has the counters: not a build of $BASE_COMMIT"
fi

# --- sandboxes ------------------------------------------------------------------

# jit off: nothing here is costly enough to be compiled, and one build may
# carry the extension's bitcode while the other does not.
SANDBOX_CONF="cachekit.default_ttl = 86400
checkpoint_timeout = '1h'
max_wal_size = '8GB'
autovacuum = off
jit = off"
start_sb() { # $1 name, $2 bindir
	local sb=$WORK/$1 env
	SB_BINDIR[$sb]=$2
	SANDBOXES+=("$sb")
	env=$(CACHEKIT_SANDBOX_DIR=$sb CACHEKIT_PG_BINDIR=$2 CACHEKIT_SANDBOX_FSYNC=on \
		CACHEKIT_SANDBOX_EXTRA_CONF="$SANDBOX_CONF" "$SANDBOX" start)
	SB_PORT[$1]=$(sed -n 's/^export PGPORT=//p' <<<"$env")
}
# psql against sandbox $1, database $2
sq() {
	local name=$1 db=$2
	shift 2
	psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "${SB_PORT[$name]}" -U postgres -d "$db" "$@"
}
setup_bench_db() { # $1 sandbox name: pgbench -s 1, the workload's keys warmed
	local n=$1 out
	sq "$n" postgres -c 'CREATE DATABASE bench'
	sq "$n" bench -c 'CREATE EXTENSION pg_cachekit'
	pgbench -i -s 1 -q -h 127.0.0.1 -p "${SB_PORT[$n]}" -U postgres bench >"$LOGS/$n-init.log" 2>&1 || die "pgbench -i failed"
	sq "$n" bench -c "SELECT cachekit.watch('pgbench_accounts')" >/dev/null
	sq "$n" bench -c CHECKPOINT
	warm "$n"
}
warm() {
	local out
	out=$(sq "$1" bench -c "SELECT count(*) FROM generate_series(1, $PK_KEYS) g,
		LATERAL cachekit.cached_query('SELECT abalance FROM pgbench_accounts WHERE aid = \$1', ARRAY[g::text]) AS r(abalance int)" \
		-c "SELECT * FROM cachekit.cached_query('SELECT abalance FROM pgbench_accounts WHERE aid = \$1', ARRAY['1']) AS r(abalance int)" \
		-c 'SELECT cachekit.last_outcome()' | tail -n 1)
	[[ $out == hit ]] || note "ANOMALY: $1: after the warm-up a lookup was '$out', not hit"
}

# run_one PART REP CLIENTS VARIANT SANDBOX: one pgbench run of the hit workload.
run_one() {
	local part=$1 rep=$2 c=$3 variant=$4 n=$5
	local j=$((c < 2 ? c : 2)) logf="$LOGS/$part-c$3-$4-r$2.log" tps lat rc=0 hc scrapes=
	sq "$n" bench -c 'SELECT cachekit.query_stats_reset()' >/dev/null
	if [[ $variant == scrape1s ]]; then start_scraper "$part-c$c-r$rep"; fi
	pgbench -n -h 127.0.0.1 -p "${SB_PORT[$n]}" -U postgres -M simple -c "$c" -j "$j" -T "$SECS" \
		-D pk_keys="$PK_KEYS" -f "$WL/pk_cached.sql" bench >"$logf" 2>&1 || rc=$?
	if [[ $variant == scrape1s ]]; then
		stop_scraper "under_load_c$c"
		scrapes=$SCRAPES_DONE
	fi
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$logf" | tail -n 1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$logf" | tail -n 1)
	if ((rc != 0)) || [[ -z $tps ]]; then
		note "ANOMALY: pgbench exited $rc in $part c$c $variant rep $rep; not counted: $(grep -m 2 -iE 'error|abort' "$logf" | tr '\n' ' ')"
		tps=nan lat=nan
	fi
	hc=$(sq "$n" bench -F , -c 'SELECT coalesce(sum(hits), 0), coalesce(sum(calls), 0) FROM cachekit.query_stats')
	echo "$part,$rep,$c,$variant,$tps,$lat,$hc,$scrapes" >>"$RUNS"
	printf 'bench: %-8s rep %d c%-2s %-9s %10s tps %8s ms  hits,calls %s\n' "$part" "$rep" "$c" "$variant" "$tps" "$lat" "$hc" >&2
}

# Variants of a pair in rotating order: the first of rep 1 goes second in rep 2.
pair_order() { # $1 rep, $2 $3 variants
	if (($1 % 2)); then echo "$2 $3"; else echo "$3 $2"; fi
}

# --- part 1: counters on the hot path --------------------------------------------

if has counters; then
	log "part 1: sandboxes for base ($BASE_BINDIR) and head ($HEAD_BINDIR)"
	start_sb base "$BASE_BINDIR"
	start_sb head "$HEAD_BINDIR"
	setup_bench_db base
	setup_bench_db head
	for rep in $(seq 1 "$REPS"); do
		for c in "${CLIENTS[@]}"; do
			for v in $(pair_order "$rep" base head); do run_one counters "$rep" "$c" "$v" "$v"; done
		done
	done
	# Out of the way of parts 2 and 3 (cleanup's stop is then a no-op).
	cp "$WORK/base/postgres.log" "$LOGS/base-postgres.log" 2>/dev/null || true
	CACHEKIT_SANDBOX_DIR=$WORK/base CACHEKIT_PG_BINDIR=$BASE_BINDIR "$SANDBOX" stop
fi

report() {
	{
		echo "settings: pgbench -n -M simple -T $SECS -c {${CLIENTS[*]}} -j min(c,2), $REPS repetitions, workload pk_cached.sql over $PK_KEYS warmed keys; $SCRAPES scrapes per series"
		echo "sandboxes: fsync and synchronous_commit on, cachekit.default_ttl 86400, autovacuum off, checkpoint_timeout 1h, jit off"
		echo "machine: $(nproc) cores, load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
	} >>"$NOTES"
	grep -h 'ERROR\|FATAL\|PANIC' "$WORK"/head/postgres.log 2>/dev/null | grep -v 'canceling statement\|terminating connection\|due to administrator command' | head -n 5 |
		sed 's/^/ANOMALY: server log: /' >>"$NOTES" || true
	mkdir -p "$RESULTS"
	cp "$RUNS" "$OUT-runs.csv"
	cp "$SCR" "$OUT-scrapes.csv"
	cp "$NOTES" "$OUT-notes.txt"
	python3 "$BENCH_DIR/metrics_report.py" --runs "$OUT-runs.csv" --scrapes "$OUT-scrapes.csv" --notes "$OUT-notes.txt" --out "$OUT"
	log "results: $OUT.txt"
}

if ! has scrape && ! has load; then
	report
	exit 0
fi

# --- the endpoint ------------------------------------------------------------------

if [[ -z ${SB_PORT[head]:-} ]]; then
	start_sb head "$HEAD_BINDIR"
	setup_bench_db head
fi
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$MPORT/metrics
sq head postgres -c "ALTER SYSTEM SET cachekit.metrics_listen = '127.0.0.1:$MPORT'"
as_pg "$HEAD_BINDIR/pg_ctl" -D "$WORK/head/data" -l "$WORK/head/postgres.log" -m fast -w restart >/dev/null
deadline=$((SECONDS + 30))
until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$MPORT/health"; do
	((SECONDS < deadline)) || die "the metrics endpoint does not answer on 127.0.0.1:$MPORT"
	sleep 0.2
done
note "endpoint: $URL (cachekit.metrics_top_queries default: the top 20 queries of each database on HTTP)"

# 50 watched tables (one write each after watch), 200 distinct cached queries
# (a miss, then a hit), 10,000 tasks queued in a paused queue.
load_db() {
	local db=$1
	sq head postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
		sq head postgres -c "CREATE DATABASE $db"
	sq head "$db" -c 'CREATE EXTENSION IF NOT EXISTS pg_cachekit'
	sq head "$db" >/dev/null <<SQL
DO \$\$ BEGIN
  FOR i IN 1..$TABLES_PER_DB LOOP
    EXECUTE format('CREATE TABLE bench_t%s (id int PRIMARY KEY, v int)', i);
    EXECUTE format('INSERT INTO bench_t%s SELECT g, g FROM generate_series(1, 100) g', i);
    PERFORM cachekit.watch(format('bench_t%s', i)::regclass);
  END LOOP;
END \$\$;
DO \$\$ BEGIN
  FOR i IN 1..$TABLES_PER_DB LOOP EXECUTE format('UPDATE bench_t%s SET v = v + 1 WHERE id = 1', i); END LOOP;
END \$\$;
SELECT count(*) FROM generate_series(1, $QUERIES_PER_DB) k, generate_series(1, 2) twice,
  LATERAL cachekit.cached_query(format('SELECT sum(v) FROM bench_t%s WHERE id <= %s', 1 + k % $TABLES_PER_DB, k)) AS r(s bigint);
CREATE FUNCTION bench_noop(a jsonb) RETURNS jsonb LANGUAGE sql AS 'SELECT a';
SELECT cachekit.create_queue('bench_paused', 1, NULL, true);
SELECT count(cachekit.enqueue('bench_paused', 'bench_noop', jsonb_build_object('i', g))) FROM generate_series(1, $TASKS_PER_DB) g;
SQL
}
# Scrapes 1.1 s apart until the endpoint shows every database of the config
# with its 10,000 queued tasks (a relay publishes at most once a second).
wait_config() {
	local db want deadline=$((SECONDS + 90)) body
	while :; do
		body=$(curl -s --max-time 5 "$URL" || true)
		want=0
		for db in "$@"; do
			grep -q "^cachekit_queue_depth{database=\"$db\",queue=\"bench_paused\"} $TASKS_PER_DB\b" <<<"$body" || want=1
		done
		((want == 0)) && return 0
		((SECONDS < deadline)) || die "the endpoint does not show the queued tasks of $* after 90 s"
		sleep 1.1
	done
}

# One series of scrapes: SQL and HTTP alternating 1.1 s apart (each makes the
# relays publish: the endpoint's snapshot is older than a second), then each
# back to back. Rows in $SCR.
measure_config() { # $1 config label
	local cfg=$1 i f=$WORK/spaced-$1.psql g=$WORK/b2b-$1.psql
	local curlfmt='http %{time_total} %{size_download} %{http_code}\n'
	{
		echo '\timing on'
		for i in $(seq 1 "$SCRAPES"); do
			echo 'SELECT octet_length(cachekit.metrics());'
			echo '\! sleep 1.1'
			echo "\\! curl -s -o /dev/null --max-time 10 -w '$curlfmt' $URL"
			echo '\! sleep 1.1'
		done
	} >"$f"
	sq head bench -f "$f" >"$LOGS/spaced-$cfg.out"
	parse_scrapes "$cfg" spaced <"$LOGS/spaced-$cfg.out"
	{
		echo '\timing on'
		for i in $(seq 1 "$SCRAPES"); do echo 'SELECT octet_length(cachekit.metrics());'; done
	} >"$g"
	sleep 1.1
	{
		sq head bench -f "$g"
		for i in $(seq 1 "$SCRAPES"); do curl -s -o /dev/null --max-time 10 -w "$curlfmt" "$URL"; done
	} >"$LOGS/b2b-$cfg.out"
	parse_scrapes "$cfg" back_to_back <"$LOGS/b2b-$cfg.out"
	curl -s "$URL" >"$LOGS/exposition-$cfg.txt"
	sq head bench -c 'SELECT cachekit.metrics()' >"$LOGS/sql-exposition-$cfg.txt"
	note "$cfg: HTTP exposition $(wc -c <"$LOGS/exposition-$cfg.txt") bytes, $(grep -vc '^#' "$LOGS/exposition-$cfg.txt") series; SQL (database bench only) $(wc -c <"$LOGS/sql-exposition-$cfg.txt") bytes, $(grep -vc '^#' "$LOGS/sql-exposition-$cfg.txt") series"
}
# psql -At output: "<bytes>" then "Time: <ms> ms" per SQL scrape; "http <s> <bytes> <code>" per GET.
parse_scrapes() { # $1 config, $2 spacing
	awk -v cfg="$1" -v sp="$2" -v OFS=, '
		/^http / { nh++; print cfg, "http", sp, nh, $2 * 1000, $3, $4; next }
		/^[0-9]+$/ { bytes = $1; next }
		/^Time: / { ns++; print cfg, "sql", sp, ns, $2, bytes, "ok" }' >>"$SCR"
}

SCRAPE_LOG=
start_scraper() { # $1 label: GET /metrics, then 1 s pause, until stopped
	SCRAPE_LOG=$WORK/scraper-$1.out
	(
		trap 'exit 0' TERM
		while :; do
			curl -s -o "$SCRAPE_LOG.body" --max-time 10 -w 'http %{time_total} %{size_download} %{http_code}\n' "$URL" >>"$SCRAPE_LOG"
			sleep 1
		done
	) &
	SCRAPER_PID=$!
}
SCRAPES_DONE=
stop_scraper() { # $1 config label of the scrapes; their number in SCRAPES_DONE
	kill "$SCRAPER_PID" 2>/dev/null || true
	wait "$SCRAPER_PID" 2>/dev/null || true
	SCRAPER_PID=
	parse_scrapes "$1" periodic <"$SCRAPE_LOG"
	SCRAPES_DONE=$(grep -c '^http ' "$SCRAPE_LOG" || true)
	# Which databases the last scrape under load had, and how old their numbers were.
	note "last scrape of $(basename "$SCRAPE_LOG" .out): $(grep '^cachekit_metrics_snapshot_age_seconds{' "$SCRAPE_LOG.body" |
		sed 's/.*database="\([^"]*\)"} \(.*\)/\1 \2 s/' | paste -sd, -)"
}

# --- part 2: cost of a scrape --------------------------------------------------------

log "loading database bench: $TABLES_PER_DB watched tables, $QUERIES_PER_DB cached queries, $TASKS_PER_DB paused tasks"
load_db bench
if has scrape; then
	wait_config bench
	log "part 2: 1 database"
	measure_config db1
fi
dbs=(bench)
for i in $(seq 2 $((EXTRA_DBS + 1))); do
	log "loading database bench$i"
	load_db "bench$i"
	dbs+=("bench$i")
done
wait_config "${dbs[@]}"
if has scrape; then
	log "part 2: ${#dbs[@]} databases"
	measure_config "db${#dbs[@]}"
fi
note "databases with pg_cachekit in the scrape configurations: db1 = bench; db${#dbs[@]} = ${dbs[*]}"

# --- part 3: scraping under load -----------------------------------------------------

if has load; then
	warm head
	log "part 3: hit throughput, GET /metrics every second vs none (${#dbs[@]} databases)"
	for rep in $(seq 1 "$REPS"); do
		for c in "${CLIENTS[@]}"; do
			for v in $(pair_order "$rep" noscrape scrape1s); do run_one load "$rep" "$c" "$v" head; done
		done
	done
	curl -s "$URL" >"$LOGS/exposition-after-load.txt"
	note "after part 3 (query_stats reset before each run): HTTP exposition $(wc -c <"$LOGS/exposition-after-load.txt") bytes, $(grep -vc '^#' "$LOGS/exposition-after-load.txt") series"
fi

# --- report ------------------------------------------------------------------------------

report
