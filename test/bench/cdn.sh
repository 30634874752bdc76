#!/usr/bin/env bash
# Benchmark of pg_cachekit's CDN purges against the test fakes on loopback:
# CloudFront (test/cdn/fake_cloudfront.py), Fastly and Cloudflare
# (test/cdn/fake_cdn_api.py) and Varnish 7.1 with test/cdn/varnish.vcl (the
# http provider, PURGE), one provider configured at a time, alternating the
# providers and repeating; medians go to test/bench/results/cdn-<date>.*.
#
# usage: test/bench/cdn.sh                  (full run, ~5-8 minutes on 2 cores)
#        BENCH_QUICK=1 test/bench/cdn.sh    (smoke test: 1 round, fewer paths, ~2 minutes)
#
# Measures (the issue's "Benchmark" section):
#   throughput  N distinct paths queued by BENCH_REQUESTS cdn_purge() calls in
#               one transaction; from its commit returning to the client until
#               no item of the provider is queued, waiting to be sent or in
#               progress: paths/s, and API calls per 1,000 paths counted at the
#               endpoint (fake's log, varnishncsa) and by pg_cachekit
#               (sum of cachekit._cdn_batches.api_calls)
#   latency     one cdn_purge() of one path per transaction, one at a time
#               (the next once the previous is completed, after a pause of
#               5-15 ms): commit returned to the client -> the request
#               received by the endpoint, p50/p99; and when the dispatcher
#               had committed the purge's batch (the run that plans it; the
#               next run sends it)
# Both clocks are CLOCK_REALTIME of this machine: clock_timestamp() in the
# client's session, time.time() in the fakes, Varnish's own timestamps
# (varnishncsa %{VSL:Timestamp:Req[1]}x: the request complete).
#
# Environment (all optional):
#   BENCH_QUICK           1: smoke-test defaults (marked below)
#   BENCH_ROUNDS          rounds; the order of the providers rotates each round (3; quick 1)
#   BENCH_N               paths per throughput run for cloudfront, fastly, cloudflare (10000; quick 2000)
#   BENCH_N_HTTP          paths per throughput run for Varnish (2000; quick 500): one request per path
#   BENCH_REQUESTS        cdn_purge() calls the N paths are split over, in one transaction (10)
#   BENCH_LATENCY_N       latency samples per provider and round (200; quick 50), after 5 unmeasured
#   BENCH_PROVIDERS       subset of "cloudfront fastly cloudflare http" (all four)
#   BENCH_MEASURES        subset of "throughput latency" (both)
#   BENCH_CF_COMPLETE_AFTER  seconds the fake CloudFront takes to complete an invalidation in
#                         throughput runs (0.2; real CloudFront takes minutes); 0 in latency runs
#   BENCH_CF_POLL_MS      cachekit.cdn_poll_interval (100 ms; default 10 s)
#   BENCH_FSYNC           off: fsync and synchronous_commit off (on)
#   BENCH_PG_CONF         lines added to postgresql.conf (e.g. "jit = off"), named in the results
#   BENCH_RESULTS         output folder (test/bench/results)
#   BENCH_TMP             where the scratch folder is made (/tmp); it must be searchable
#                         by the postgres and varnish users
#   BENCH_KEEP_WORK       1: keep the scratch folder (logs, client output)
#   CACHEKIT_PG_BINDIR    Postgres binaries (/usr/lib/postgresql/15/bin)
#
# Starts its own sandbox (test/sandbox, fsync on), fakes, origin and varnishd
# and stops them on exit. Run as root (the cluster then belongs to the
# postgres user; varnishd runs in its jail) or as a user that can run initdb.
# Needs python3 with Debian's python3-botocore (/usr/bin/python3), openssl,
# curl, varnishd and varnishncsa (package varnish) and gnuplot-nox for the
# plot; gnuplot-nox is installed with apt-get when missing. pg_cachekit must
# be installed for that Postgres (make install; tried once when CREATE
# EXTENSION fails). Not part of make test: run by make bench (test/bench/run-all).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/../.." && pwd)
CDN=$REPO/test/cdn
SANDBOX=$REPO/test/sandbox
PG_BINDIR=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3 # Debian's python3-botocore, whatever python3 is first on PATH

if [[ ${BENCH_QUICK:-0} == 1 ]]; then
	ROUNDS=${BENCH_ROUNDS:-1}
	N=${BENCH_N:-2000}
	N_HTTP=${BENCH_N_HTTP:-500}
	LATENCY_N=${BENCH_LATENCY_N:-50}
else
	ROUNDS=${BENCH_ROUNDS:-3}
	N=${BENCH_N:-10000}
	N_HTTP=${BENCH_N_HTTP:-2000}
	LATENCY_N=${BENCH_LATENCY_N:-200}
fi
REQUESTS=${BENCH_REQUESTS:-10}
LATENCY_WARMUP=5
CF_COMPLETE_AFTER=${BENCH_CF_COMPLETE_AFTER:-0.2}
CF_POLL_MS=${BENCH_CF_POLL_MS:-100}
FSYNC=${BENCH_FSYNC:-on}
PG_CONF=${BENCH_PG_CONF:-}
read -r -a PROVIDERS <<<"${BENCH_PROVIDERS:-cloudfront fastly cloudflare http}"
read -r -a MEASURES <<<"${BENCH_MEASURES:-throughput latency}"
RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$RESULTS/cdn-$STAMP
DB=cachekit_cdn_bench
SITE=https://www.example.com # cachekit.cdn_base_url: Fastly and Cloudflare purge full URLs
# Secrets of the fakes; made up, never printed.
AWS_KEY_ID=AKIDCACHEKITBENCH
AWS_SECRET=benchSecretKey/K7MDENG+bPxRfiCYBENCHKEY
API_TOKEN=bench-api-token-0123456789

log() { echo "bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
has_measure() { [[ " ${MEASURES[*]} " == *" $1 "* ]]; }
posint() { [[ $2 =~ ^[0-9]+$ && $2 -gt 0 ]] || die "$1 must be a positive integer (got '$2')"; }

posint BENCH_ROUNDS "$ROUNDS"
posint BENCH_N "$N"
posint BENCH_N_HTTP "$N_HTTP"
posint BENCH_REQUESTS "$REQUESTS"
posint BENCH_LATENCY_N "$LATENCY_N"
posint BENCH_CF_POLL_MS "$CF_POLL_MS"
((CF_POLL_MS >= 10)) || die "BENCH_CF_POLL_MS must be at least 10 (cachekit.cdn_poll_interval's minimum)"
[[ $CF_COMPLETE_AFTER =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_CF_COMPLETE_AFTER must be a number of seconds"
[[ $FSYNC =~ ^(on|off)$ ]] || die "BENCH_FSYNC must be on or off"
for p in "${PROVIDERS[@]}"; do
	[[ $p =~ ^(cloudfront|fastly|cloudflare|http)$ ]] || die "unknown provider '$p' in BENCH_PROVIDERS"
done
for m in "${MEASURES[@]}"; do
	[[ $m =~ ^(throughput|latency)$ ]] || die "unknown measure '$m' in BENCH_MEASURES"
done
# The paths of a throughput run are split evenly over the requests.
((N % REQUESTS == 0 && N_HTTP % REQUESTS == 0)) || die "BENCH_N and BENCH_N_HTTP must be multiples of BENCH_REQUESTS ($REQUESTS)"

# --- tools -------------------------------------------------------------------

command -v psql >/dev/null || die "psql not found (postgresql-client-15)"
[[ -x $PY ]] && $PY -c 'import botocore' 2>/dev/null || die "$PY with botocore not found (python3-botocore)"
command -v curl >/dev/null || die "curl not found"
command -v openssl >/dev/null || die "openssl not found"
if [[ " ${PROVIDERS[*]} " == *" http "* ]]; then
	command -v varnishncsa >/dev/null || die "varnishncsa not found (package varnish)"
fi
if ! command -v gnuplot >/dev/null; then
	log "installing gnuplot-nox (apt-get)"
	if [[ $EUID -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends gnuplot-nox >/dev/null ||
			log "warning: could not install gnuplot-nox; no plot"
	else
		log "warning: gnuplot missing and not root; no plot"
	fi
fi
# shellcheck source=../cdn/varnish.bash
. "$CDN/varnish.bash"

# --- scratch space, cleanup ----------------------------------------------------

WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/ckbench-cdn.XXXXXX")
chmod 755 "$WORK" # the server (postgres) reads the CA and secrets, varnishd its VCL dir
SB=$WORK/sb
LOGS=$WORK/logs
RUNS=$WORK/runs.csv
SAMPLES=$WORK/latency.csv
NOTES=$WORK/notes.txt
mkdir -p "$LOGS"
echo "round,measure,provider,metric,value" >"$RUNS"
echo "round,provider,seq,latency_ms,from_before_commit_ms,planned_ms" >"$SAMPLES"
: >"$NOTES"
SANDBOX_UP=
PIDS=() # fakes, origin, varnishncsa
VARNISH_DIR=

note() { echo "$*" | tee -a "$NOTES" >&2; }

cleanup() {
	local rc=$? p
	set +e
	trap - EXIT INT TERM
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[[ -n $VARNISH_DIR ]] && stop_varnish "$VARNISH_DIR"
	if ((rc != 0)); then
		log "failed (exit $rc); last lines of the logs:"
		for f in "$LOGS"/*.out "$LOGS"/*.err "$SB/postgres.log"; do
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

# A file only the server's OS user can read (what secret files must be).
secret_file() { # PATH CONTENT
	printf '%s\n' "$2" >"$1"
	chmod 600 "$1"
	if [[ $EUID -eq 0 ]]; then chown postgres "$1"; fi
}

# The fakes answer with two writes (headers, then body) on sockets without
# TCP_NODELAY: on a kept-alive connection each answer then waits for the
# client's delayed ACK (~40 ms on Linux), which would be measured as if it
# were pg_cachekit's. They run with socketserver's own switch for it
# (StreamRequestHandler.disable_nagle_algorithm), set from outside. exec:
# the background job's pid is then the fake's own, for cleanup to stop.
nodelay_py() { # SCRIPT ARGS...
	exec "$PY" -c 'import runpy, socketserver, sys
socketserver.StreamRequestHandler.disable_nagle_algorithm = True
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")' "$@"
}

# start_fake NAME COMMAND...: runs a server that prints "PORT n" first; sets PORT.
PORT=
start_fake() {
	local name=$1 deadline=$((SECONDS + 15))
	shift
	"$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" &
	PIDS+=($!)
	until grep -q '^PORT ' "$LOGS/$name.out" 2>/dev/null; do
		kill -0 "${PIDS[-1]}" 2>/dev/null || die "$name exited: $(cat "$LOGS/$name.err")"
		((SECONDS < deadline)) || die "$name did not start in 15 s"
		sleep 0.05
	done
	PORT=$(sed -n 's/^PORT //p' "$LOGS/$name.out" | head -n 1)
}

# --- sandbox -----------------------------------------------------------------

log "starting the sandbox in $SB (fsync $FSYNC)"
# Durable commits as in production (a purge request and every dispatch run
# are commits). No checkpoint in the middle of a run: one before each
# measured run instead.
SANDBOX_CONF="checkpoint_timeout = '1h'
max_wal_size = '8GB'"
SANDBOX_ENV=$(CACHEKIT_SANDBOX_DIR=$SB CACHEKIT_SANDBOX_FSYNC=$FSYNC CACHEKIT_PG_BINDIR=$PG_BINDIR \
	CACHEKIT_SANDBOX_EXTRA_CONF="$SANDBOX_CONF${PG_CONF:+
$PG_CONF}" "$SANDBOX" start)
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
# bench.wait_idle(provider, timeout, poll): returns (done_at) once nothing of
# the provider is unbatched, waiting to be sent or in progress, as epoch
# seconds of clock_timestamp(); -1 on timeout. A procedure that commits
# between looks, so that the wait holds no snapshot back.
psqlx <<'SQL'
CREATE SCHEMA bench;
CREATE PROCEDURE bench.wait_idle(provider text, timeout_s float8, poll_s float8, INOUT done_at float8 DEFAULT NULL)
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout_s * interval '1 second';
BEGIN
    LOOP
        IF NOT EXISTS (SELECT 1 FROM cachekit._cdn_queue q WHERE q.provider = wait_idle.provider AND q.batch_id IS NULL)
           AND NOT EXISTS (SELECT 1 FROM cachekit._cdn_batches b
                           WHERE b.provider = wait_idle.provider AND b.state IN ('queued', 'in_progress')) THEN
            done_at := extract(epoch FROM clock_timestamp());
            RETURN;
        END IF;
        IF clock_timestamp() > deadline THEN
            done_at := -1;
            RETURN;
        END IF;
        COMMIT;
        PERFORM pg_sleep(poll_s);
    END LOOP;
END $$;
SQL

# --- endpoints -----------------------------------------------------------------

log "starting the fakes and varnishd"
"$CDN/make_test_ca.sh" "$WORK/tls" >/dev/null
chmod 755 "$WORK/tls"
chmod 644 "$WORK/tls/ca.pem"
declare -A ENDPOINT_LOG
has_provider() { [[ " ${PROVIDERS[*]} " == *" $1 "* ]]; }
if has_provider cloudfront; then
	start_fake cloudfront nodelay_py "$CDN/fake_cloudfront.py" --cert "$WORK/tls/server.pem" --key "$WORK/tls/server-key.pem" \
		--port 0 --log "$LOGS/cloudfront.jsonl" --access-key "$AWS_KEY_ID" --secret-key "$AWS_SECRET" \
		--distribution E2CACHEKITBENCH --complete-after "$CF_COMPLETE_AFTER"
	CF_PORT=$PORT
	ENDPOINT_LOG[cloudfront]=$LOGS/cloudfront.jsonl
	secret_file "$WORK/aws-credentials" "[default]
aws_access_key_id = $AWS_KEY_ID
aws_secret_access_key = $AWS_SECRET"
fi
if has_provider fastly; then
	start_fake fastly nodelay_py "$CDN/fake_cdn_api.py" --api fastly --cert "$WORK/tls/server.pem" \
		--key "$WORK/tls/server-key.pem" --token "$API_TOKEN" --id svc1 --port 0 --log "$LOGS/fastly.jsonl"
	FASTLY_PORT=$PORT
	ENDPOINT_LOG[fastly]=$LOGS/fastly.jsonl
	secret_file "$WORK/fastly-token" "$API_TOKEN"
fi
if has_provider cloudflare; then
	start_fake cloudflare nodelay_py "$CDN/fake_cdn_api.py" --api cloudflare --cert "$WORK/tls/server.pem" \
		--key "$WORK/tls/server-key.pem" --token "$API_TOKEN" --id zone1 --port 0 --log "$LOGS/cloudflare.jsonl"
	CLOUDFLARE_PORT=$PORT
	ENDPOINT_LOG[cloudflare]=$LOGS/cloudflare.jsonl
	secret_file "$WORK/cloudflare-token" "$API_TOKEN"
fi
if has_provider http; then
	start_fake origin "$PY" "$CDN/origin.py" --port 0
	ORIGIN_PORT=$PORT
	VARNISH_PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	start_varnish "$VARNISH_PORT" "$ORIGIN_PORT" "$WORK/varnish" || die "varnishd did not start"
	VARNISH_DIR=$WORK/varnish
	# Every PURGE as "received_at method url status" (the request complete, µs).
	varnishncsa -n "$VARNISH_DIR/n" -w "$LOGS/varnish.ncsa" -q 'ReqMethod eq "PURGE"' \
		-F '%{VSL:Timestamp:Req[1]}x %m %U %s' 2>"$LOGS/varnishncsa.err" &
	PIDS+=($!)
	ENDPOINT_LOG[http]=$LOGS/varnish.ncsa
fi

# --- settings --------------------------------------------------------------------

# set_gucs NAME=VALUE...: ALTER SYSTEM, reload, and wait until a new session
# sees the last one (the executors apply a reload before they claim a task).
set_gucs() {
	local kv name value
	for kv in "$@"; do
		name=${kv%%=*}
		value=${kv#*=}
		psqlx -d postgres -c "ALTER SYSTEM SET $name = '$value'"
	done
	psqlx -d postgres -c 'SELECT pg_reload_conf()' >/dev/null
	local deadline=$((SECONDS + 10))
	until [[ $(psqlx -d postgres -c "SELECT current_setting('$name')") == "$value" ]]; do
		((SECONDS < deadline)) || die "$name is not $value 10 s after a reload"
		sleep 0.1
	done
}

GUCS=(cachekit.cdn_enabled=on "cachekit.cdn_ca_file=$WORK/tls/ca.pem" "cachekit.cdn_base_url=$SITE"
	"cachekit.cdn_poll_interval=$CF_POLL_MS")
has_provider cloudfront && GUCS+=(cachekit.cdn_cloudfront_distribution_id=E2CACHEKITBENCH
	"cachekit.cdn_cloudfront_endpoint=https://127.0.0.1:$CF_PORT" "cachekit.cdn_aws_credentials_file=$WORK/aws-credentials")
has_provider fastly && GUCS+=(cachekit.cdn_fastly_service_id=svc1 "cachekit.cdn_fastly_endpoint=https://127.0.0.1:$FASTLY_PORT"
	"cachekit.cdn_fastly_api_token_file=$WORK/fastly-token")
has_provider cloudflare && GUCS+=(cachekit.cdn_cloudflare_zone_id=zone1
	"cachekit.cdn_cloudflare_endpoint=https://127.0.0.1:$CLOUDFLARE_PORT/client/v4"
	"cachekit.cdn_cloudflare_api_token_file=$WORK/cloudflare-token")
has_provider http && GUCS+=("cachekit.cdn_http_purge_url=http://127.0.0.1:$VARNISH_PORT" cachekit.cdn_http_method=PURGE)
set_gucs "${GUCS[@]}"
# The dispatcher runs in the task executors; wait for them.
deadline=$((SECONDS + 30))
until (($(psqlx -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_cachekit task executor' AND datname = '$DB'") >= 1)); do
	((SECONDS < deadline)) || die "no task executor for $DB after 30 s"
	sleep 0.1
done

# CloudFront completes invalidations after --complete-after seconds; latency
# runs measure the way to CreateInvalidation only, so there it is 0.
cf_complete_after() {
	curl -sS --fail --cacert "$WORK/tls/ca.pem" -X POST -H 'Content-Type: application/json' \
		-d "{\"complete_after\": $1}" "https://127.0.0.1:$CF_PORT/_fake/config" >/dev/null
}

# --- per-run housekeeping ------------------------------------------------------------

# Waits until no dispatch task is queued, running or waiting for a retry,
# then empties the CDN and task tables and vacuums them, so that every
# measured run starts from empty tables.
clean() {
	local deadline=$((SECONDS + 30))
	until [[ $(psqlx -c "SELECT count(*) FROM cachekit.tasks WHERE state IN ('queued', 'running', 'failed')") == 0 ]]; do
		((SECONDS < deadline)) || {
			note "ANOMALY: dispatch tasks still pending 30 s after a run: $(psqlx -c "SELECT string_agg(id || ':' || state, ' ') FROM cachekit.tasks WHERE state IN ('queued', 'running', 'failed')")"
			break
		}
		sleep 0.1
	done
	psqlx -c 'TRUNCATE cachekit._cdn_queue, cachekit._cdn_batches, cachekit._cdn_requests, cachekit._tasks' \
		-c 'VACUUM (ANALYZE) cachekit._cdn_queue, cachekit._cdn_batches, cachekit._cdn_requests, cachekit._tasks'
}

use_provider() { # PROVIDER: the only one purges go to
	set_gucs "cachekit.cdn_provider=$1"
}

# Varnish writes its log asynchronously: wait until varnishncsa has written
# every PURGE that the run's batches say they sent (or 5 s).
wait_endpoint_log() { # PROVIDER START_LINES EXPECTED
	[[ $1 == http ]] || return 0
	local deadline=$((SECONDS + 5))
	while (($(wc -l <"${ENDPOINT_LOG[http]}") - $2 < $3)) && ((SECONDS < deadline)); do sleep 0.05; done
}

lines_of() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

# --- measures --------------------------------------------------------------------

throughput() {
	local r=$1 p=$2 n=$N per start_lines out db
	[[ $p == http ]] && n=$N_HTTP
	per=$((n / REQUESTS))
	clean
	use_provider "$p"
	[[ $p == cloudfront ]] && cf_complete_after "$CF_COMPLETE_AFTER"
	psqlx -c CHECKPOINT
	start_lines=$(lines_of "${ENDPOINT_LOG[$p]}")
	out=$LOGS/throughput-$p-r$r.out
	timeout 900 psql -X -q -At -v ON_ERROR_STOP=1 >"$out" 2>"$LOGS/throughput-$p-r$r.err" <<-SQL || die "throughput run failed for $p: $(tail -n 3 "$LOGS/throughput-$p-r$r.err")"
		BEGIN;
		SELECT count(cachekit.cdn_purge(ARRAY(SELECT format('/tp/r$r/$p/%s/%s.html', k, g) FROM generate_series(1, $per) g)))
		  FROM generate_series(1, $REQUESTS) k \gset
		SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
		COMMIT;
		SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
		CALL bench.wait_idle('$p', 600, 0.005) \gset
		\echo T :t0 :t1 :done_at
	SQL
	db=$(psqlx -F ' ' -c "SELECT count(*), coalesce(sum(api_calls), 0), count(*) FILTER (WHERE state = 'failed'),
	                            coalesce(sum(cardinality(items)) FILTER (WHERE state = 'completed'), 0)
	                       FROM cachekit._cdn_batches WHERE provider = '$p'")
	wait_endpoint_log "$p" "$start_lines" "$(echo "$db" | cut -d' ' -f2)"
	$PY "$BENCH_DIR/cdn_report.py" analyse --measure throughput --round "$r" --provider "$p" --paths "$n" \
		--client "$out" --log "${ENDPOINT_LOG[$p]}" --skip "$start_lines" --db "$db" \
		--runs "$RUNS" --samples "$SAMPLES" >>"$WORK/anomalies" || die "analysis failed for $p throughput"
}

latency() {
	local r=$1 p=$2 start_lines out i total=$((LATENCY_N + LATENCY_WARMUP)) db
	clean
	use_provider "$p"
	[[ $p == cloudfront ]] && cf_complete_after 0
	psqlx -c CHECKPOINT
	start_lines=$(lines_of "${ENDPOINT_LOG[$p]}")
	out=$LOGS/latency-$p-r$r.out
	{
		echo '\set ON_ERROR_STOP 1'
		for ((i = 1; i <= total; i++)); do
			cat <<-SQL
				BEGIN;
				SELECT cachekit.cdn_purge(ARRAY['/lat/r$r/$p/$i.html']) AS rid, extract(epoch FROM clock_timestamp()) AS t0 \gset
				COMMIT;
				SELECT extract(epoch FROM clock_timestamp()) AS t1 \gset
				CALL bench.wait_idle('$p', 15, 0.002) \gset
				SELECT coalesce(max(extract(epoch FROM b.created_at)), -1) AS planned
				  FROM cachekit._cdn_queue q JOIN cachekit._cdn_batches b ON b.id = q.batch_id WHERE q.request_id = :rid \gset
				\echo S $i :rid :t0 :t1 :done_at :planned
				SELECT pg_sleep(0.005 + random() * 0.010);
			SQL
		done
	} >"$WORK/latency.sql"
	timeout $((120 + total)) psql -X -q -At -v ON_ERROR_STOP=1 -f "$WORK/latency.sql" >"$out" 2>"$LOGS/latency-$p-r$r.err" ||
		die "latency run failed for $p: $(tail -n 3 "$LOGS/latency-$p-r$r.err")"
	db=$(psqlx -F ' ' -c "SELECT count(*), coalesce(sum(api_calls), 0), count(*) FILTER (WHERE state = 'failed'),
	                            coalesce(sum(cardinality(items)) FILTER (WHERE state = 'completed'), 0)
	                       FROM cachekit._cdn_batches WHERE provider = '$p'")
	wait_endpoint_log "$p" "$start_lines" "$(echo "$db" | cut -d' ' -f2)"
	$PY "$BENCH_DIR/cdn_report.py" analyse --measure latency --round "$r" --provider "$p" --paths "$total" \
		--warmup "$LATENCY_WARMUP" --client "$out" --log "${ENDPOINT_LOG[$p]}" --skip "$start_lines" --db "$db" \
		--runs "$RUNS" --samples "$SAMPLES" >>"$WORK/anomalies" || die "analysis failed for $p latency"
}

# Order of the providers in round R: rotated by one each round.
rotate() {
	local k=$1
	shift
	local a=("$@")
	k=$((k % ${#a[@]}))
	echo "${a[@]:k}" "${a[@]:0:k}"
}

# --- run -------------------------------------------------------------------------

{
	echo "date: $(date -Is)"
	echo "commit: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD -- src sql worker 2>/dev/null || echo ' (src/, sql/ or worker/ modified)')"
	lib="$("$PG_BINDIR/pg_config" --pkglibdir 2>/dev/null || echo "$PG_BINDIR/../lib")/pg_cachekit.so"
	echo "library: $lib, installed $(date -u -r "$lib" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo '?'), sha256 $(sha256sum "$lib" 2>/dev/null | cut -c1-12), extension $(psqlx -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cachekit'")"
	echo "host: $(nproc) cores, $(uname -r); $(psqlx -c 'SELECT version()' | cut -d, -f1); $(curl --version | head -n 1 | cut -d' ' -f1-2); Python $($PY -c 'import platform; print(platform.python_version())')"
	echo "settings: $ROUNDS rounds (provider order rotated each round); throughput: $N paths (Varnish: $N_HTTP) in $REQUESTS cdn_purge() calls of one transaction; latency: $LATENCY_N samples per provider and round after $LATENCY_WARMUP unmeasured, one path per purge, one purge at a time, 5-15 ms apart"
	echo "postgres: fsync and synchronous_commit $FSYNC, $(echo "$SANDBOX_CONF" | paste -sd, - | sed 's/,/, /g'); jit = $(psqlx -c 'SHOW jit')${PG_CONF:+ (BENCH_PG_CONF: $(echo "$PG_CONF" | paste -sd, - | sed 's/,/, /g'))}; cachekit.task_workers = $(psqlx -c "SHOW cachekit.task_workers") (queue cdn: concurrency $(psqlx -c "SELECT concurrency FROM cachekit._queues WHERE name = 'cdn'")); CHECKPOINT before each measured run; CDN and task tables emptied and vacuumed between runs; one provider in cachekit.cdn_provider at a time"
	echo "cloudfront: fake_cloudfront.py (SigV4 checked with botocore), --complete-after ${CF_COMPLETE_AFTER}s in throughput runs and 0 in latency runs, cachekit.cdn_poll_interval = ${CF_POLL_MS}ms. Real CloudFront takes minutes to complete an invalidation: its figure is pg_cachekit's overhead plus the fake's delay, not CloudFront's; at most 3,000 paths are in progress at once, so N paths take at least ceil(N/3000) x ${CF_COMPLETE_AFTER}s"
	echo "fakes: run with TCP_NODELAY on their connections (socketserver's disable_nagle_algorithm, set by this script): without it every answer on a kept-alive connection waits ~40 ms for the client's delayed ACK"
	echo "fastly, cloudflare: fake_cdn_api.py over TLS (test CA); Fastly purges one URL per request (POST /purge/{host}/{path}), Cloudflare up to 100 files per request; cachekit.cdn_base_url = $SITE"
	echo "http: Varnish $(varnishd -V 2>&1 | head -n 1 | sed -n 's/.*varnish-\([0-9.]*\).*/\1/p') with test/cdn/varnish.vcl, cachekit.cdn_http_method = PURGE (one request per path, 8 in parallel), paths not cached (PURGE answers 200 either way)"
	echo "timestamps: client: clock_timestamp() of the purging session (before COMMIT, and right after COMMIT returned); endpoints: fake_cloudfront.py 'received' (headers arrived), fake_cdn_api.py 't' (logged before answering), varnishncsa Timestamp:Req (request complete); all CLOCK_REALTIME on this machine"
} >>"$NOTES"

log "$ROUNDS rounds: ${MEASURES[*]} for ${PROVIDERS[*]}"
: >"$WORK/anomalies"
for ((r = 1; r <= ROUNDS; r++)); do
	order=$(rotate "$((r - 1))" "${PROVIDERS[@]}")
	log "round $r of $ROUNDS, order: $order"
	if has_measure throughput; then for p in $order; do throughput "$r" "$p"; done; fi
	if has_measure latency; then for p in $order; do latency "$r" "$p"; done; fi
done
clean
cat "$WORK/anomalies" >>"$NOTES"

if grep -qiE 'PANIC|FATAL|server process .* terminated' "$SB/postgres.log" 2>/dev/null; then
	note "postgres log: $(grep -iE -m 5 'PANIC|FATAL|server process .* terminated' "$SB/postgres.log" | tr '\n' ' ')"
fi
for s in "$AWS_SECRET" "$API_TOKEN"; do
	if grep -rqF -- "$s" "$SB/postgres.log" "$LOGS"/*.jsonl "$LOGS"/*.out 2>/dev/null; then
		note "ANOMALY: a secret of the fakes appears in the server log or an endpoint log"
	fi
done

mkdir -p "$RESULTS"
cp "$RUNS" "$OUT-runs.csv"
cp "$SAMPLES" "$OUT-latency.csv"
cp "$NOTES" "$OUT-notes.txt"
# The report can be made again from these three files:
#   test/bench/cdn_report.py report --runs R-runs.csv --samples R-latency.csv --notes R-notes.txt --out R
$PY "$BENCH_DIR/cdn_report.py" report --runs "$OUT-runs.csv" --samples "$OUT-latency.csv" --notes "$OUT-notes.txt" --out "$OUT"
cat "$OUT.txt"
log "wrote $OUT.txt, $OUT.csv, $OUT-runs.csv, $OUT-latency.csv$([[ -f $OUT.png ]] && echo ", $OUT.png")"
