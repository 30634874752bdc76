#!/usr/bin/env bash
# The HTTP metrics endpoint (cachekit.metrics_listen, issue 10) under a real
# workload:
#  1. cached_query hits and misses, invalidations of a watched table,
#     key/value calls and tasks (one succeeds, one fails, is retried and goes
#     dead) move exactly the counters they should on GET /metrics, and
#     cachekit.metrics() shows the same families and values for the database;
#  2. promtool check metrics passes on both expositions, without a word;
#  3. a real Prometheus scrapes the endpoint and answers a query with the
#     value the workload produced;
#  4. health: Redis stopped → /health 503 with redis "down",
#     cachekit_redis_up 0, health() "down"; Redis back → 200 "ok". A relay
#     terminated and restarted by the launcher counts as a start;
#  5. privileges: no query text and no key names on the endpoint; in SQL a
#     cachekit_user sees its own per-query series only, pg_monitor all of
#     them, a role with neither gets 42501.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_metrics_endpoint
source test/fault/lib_metrics.bash
roles=(ck_metrics_alice ck_metrics_bob ck_metrics_monitor ck_metrics_nobody)
prom_pid=
prom_dir=
stopped_pid=
cleanup() {
	[ -z "$stopped_pid" ] || kill -CONT "$stopped_pid" 2>/dev/null || true
	if [ -n "$prom_pid" ]; then kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; fi
	[ -n "$prom_dir" ] && rm -rf "$prom_dir"
	metrics_cleanup
	for r in "${roles[@]}"; do qdb postgres "DROP ROLE IF EXISTS $r" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
command -v curl >/dev/null || { echo "# curl is not installed"; exit 77; }
started=$SECONDS

dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
endpoint_on
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE items (id int PRIMARY KEY, v text)"
q "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 10) g"
q "SELECT cachekit.watch('items')" >/dev/null
q "SELECT cachekit.create_queue('metrics_q', 2)" >/dev/null
q "CREATE FUNCTION ok_task(a jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT a \$\$"
q "CREATE FUNCTION bad_task(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'metrics test failure'; END \$\$"
dbq="database=\"$db\""
has_relay() { [ "$(qdb postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = '$relay_type' AND datname = '$db'")" = "1" ]; }
wait_for 30 "a relay in $db" has_relay
# The database shows on the endpoint once its relay has published, and the
# baseline below must come from a snapshot taken after watch() (which counts
# as the table's first invalidation): a relay publishes at most once a second,
# and its first snapshot may predate the setup.
expect_series "cachekit_worker_up{$dbq,worker=\"relay\"}" 1 20
expect_series "cachekit_table_invalidations_total{$dbq,table=\"public.items\"}" 1 20

# ---- 1. the workload moves the counters --------------------------------------------------
secret_alias=zz_secret_literal_4711
secret_key=ck_metrics_secret_key_name
query="SELECT count(*) AS $secret_alias FROM items WHERE id > \$1"
# One cached_query call; prints its outcome (hit, miss...).
cq() { q "SELECT count(*) FROM cachekit.cached_query('$query', ARRAY['0']) AS r(n bigint); SELECT cachekit.last_outcome()" | tail -n 1; }

series=(
	"cachekit_query_cache_operations_total{$dbq,result=\"hit\"}"
	"cachekit_query_cache_operations_total{$dbq,result=\"miss\"}"
	"cachekit_query_cache_duration_seconds_count{$dbq,result=\"hit\"}"
	"cachekit_query_cache_duration_seconds_count{$dbq,result=\"miss\"}"
	"cachekit_query_cache_duration_seconds_bucket{$dbq,result=\"hit\",le=\"+Inf\"}"
	"cachekit_table_invalidations_total{$dbq,table=\"public.items\"}"
	"cachekit_kv_operations_total{operation=\"set\",result=\"ok\"}"
	"cachekit_kv_operations_total{operation=\"get\",result=\"hit\"}"
	"cachekit_kv_operations_total{operation=\"get\",result=\"miss\"}"
	"cachekit_kv_operations_total{operation=\"delete\",result=\"ok\"}"
	"cachekit_kv_bytes_total{direction=\"written\"}"
	"cachekit_kv_bytes_total{direction=\"read\"}"
	"cachekit_tasks_enqueued_total{$dbq,queue=\"metrics_q\"}"
	"cachekit_tasks_succeeded_total{$dbq,queue=\"metrics_q\"}"
	"cachekit_tasks_failed_total{$dbq,queue=\"metrics_q\"}"
	"cachekit_tasks_retried_total{$dbq,queue=\"metrics_q\"}"
	"cachekit_tasks_dead_total{$dbq,queue=\"metrics_q\"}"
	"cachekit_task_run_seconds_count{$dbq,queue=\"metrics_q\"}"
	"cachekit_task_wait_seconds_count{$dbq,queue=\"metrics_q\"}"
	"cachekit_queue_dead{$dbq,queue=\"metrics_q\"}"
)
# hits +3, misses +2 (one before and one after the table changed), two
# committed UPDATEs, 2 sets of 5 and 7 bytes, a hit (5 bytes) and a miss, one
# of two keys deleted; a task that succeeds, one with 2 attempts that both
# fail (failed 2, retried 1, dead 1; 3 runs, 2 first attempts waited for).
deltas=(3 2 3 2 3 2 2 1 1 1 12 5 2 1 2 1 1 3 2 1)
declare -A before
text=$(scrape)
for s in "${series[@]}"; do
	v=$(int_of "$s" <<<"$text")
	[ "$v" = absent ] && v=0 # a queue or table not counted yet
	before[$s]=$v
done

outcomes="$(cq) $(cq) $(cq)"
q "UPDATE items SET v = 'x' WHERE id = 1"
q "UPDATE items SET v = 'y' WHERE id = 2"
outcomes+=" $(cq) $(cq)"
[ "$outcomes" = "miss hit hit miss hit" ] || fail "cached_query outcomes: $outcomes, expected miss hit hit miss hit"
q "SELECT cachekit.cache_set('$secret_key', 'hello')" >/dev/null
q "SELECT cachekit.cache_set('${secret_key}_2', 'goodbye')" >/dev/null
[ "$(q "SELECT cachekit.cache_get('$secret_key')")" = "hello" ] || fail "cache_get of a key just set"
[ -z "$(q "SELECT cachekit.cache_get('${secret_key}_none')")" ] || fail "cache_get of a missing key"
[ "$(q "SELECT cachekit.cache_delete('${secret_key}_2', '${secret_key}_none')")" = "1" ] || fail "cache_delete"
ok_id=$(q "SELECT cachekit.enqueue('metrics_q', 'ok_task', '{\"n\": 1}')")
bad_id=$(q "SELECT cachekit.enqueue('metrics_q', 'bad_task', '{}', max_attempts => 2)")
state_is() { [ "$(q "SELECT state FROM cachekit.tasks WHERE id = $1")" = "$2" ]; }
wait_for 30 "task $ok_id to succeed" state_is "$ok_id" succeeded
wait_for 30 "task $bad_id to go dead" state_is "$bad_id" dead

for i in "${!series[@]}"; do
	s=${series[$i]}
	expect_series "$s" $((before[$s] + deltas[i]))
done
text=$(scrape)
fp=$(q "SELECT fingerprint FROM cachekit.query_stats WHERE query LIKE '%$secret_alias%'")
[ -n "$fp" ] || fail "the query is not in cachekit.query_stats"
got=$(int_of "cachekit_query_hits_total{$dbq,namespace=\"\",fingerprint=\"$fp\"}" <<<"$text")
[ "$got" = 3 ] || fail "cachekit_query_hits_total for the query's fingerprint is $got, expected 3"
got=$(int_of "cachekit_query_misses_total{$dbq,namespace=\"\",fingerprint=\"$fp\"}" <<<"$text")
[ "$got" = 2 ] || fail "cachekit_query_misses_total for the query's fingerprint is $got, expected 2"
# Every histogram bucket is cumulative and none exceeds the count.
bad=$(awk -v p="cachekit_query_cache_duration_seconds_bucket{$dbq,result=\"hit\"," \
	'index($0, p) == 1 { if ($2 + 0 < last || $2 + 0 > 3) print; last = $2 + 0 }' <<<"$text")
[ -z "$bad" ] || fail "hit duration buckets not cumulative or above the count: $bad"
echo "ok - the workload moved the counters on /metrics by exactly what it did (hits +3, misses +2, table invalidations +2, kv, tasks)"

# The SQL producer: the same families for this database (the endpoint adds
# only its snapshot age) and the same values for the counters the workload
# stopped moving.
sql=$(q "SELECT cachekit.metrics()")
families() { grep '^# TYPE ' | awk '{ print $3 }'; }
sql_fam=$(families <<<"$sql" | sort -u)
http_fam=$(families <<<"$text" | grep -vx cachekit_metrics_snapshot_age_seconds | sort -u)
[ "$sql_fam" = "$http_fam" ] || fail "families differ between cachekit.metrics() and /metrics: $(diff <(echo "$sql_fam") <(echo "$http_fam") | grep '^[<>]' | tr '\n' ' ')"
for s in "${series[@]:0:6}" "${series[@]:12:7}"; do
	a=$(int_of "$s" <<<"$sql")
	b=$(int_of "$s" <<<"$text")
	[ "$a" = "$b" ] || fail "$s: cachekit.metrics() says $a, /metrics $b"
done
grep -q "^cachekit_metrics_snapshot_age_seconds{$dbq} " <<<"$text" || fail "no snapshot age for $db on /metrics"
echo "ok - cachekit.metrics() has the same families ($(wc -l <<<"$sql_fam")) and values as /metrics"

# ---- 2. promtool ----------------------------------------------------------------------------
if command -v promtool >/dev/null; then
	for what in endpoint sql; do
		if [ $what = endpoint ]; then body=$text; else body=$sql; fi
		out=$(promtool check metrics <<<"$body" 2>&1) || fail "promtool check metrics rejects the $what exposition: $out"
		[ -z "$out" ] || fail "promtool check metrics has remarks on the $what exposition: $out"
	done
	echo "ok - promtool check metrics passes on /metrics and cachekit.metrics() without remarks"
else
	echo "ok - # SKIP promtool is not installed"
fi

# ---- 3. a real Prometheus -------------------------------------------------------------------
if command -v prometheus >/dev/null; then
	prom_dir=$(mktemp -d)
	pport=$(free_port)
	cat >"$prom_dir/prometheus.yml" <<-EOF
		global:
		  scrape_interval: 2s
		  scrape_timeout: 2s
		scrape_configs:
		  - job_name: pg_cachekit
		    static_configs:
		      - targets: ['127.0.0.1:$mport']
	EOF
	chmod -R a+rwX "$prom_dir"
	prometheus --config.file="$prom_dir/prometheus.yml" --storage.tsdb.path="$prom_dir/data" \
		--web.listen-address="127.0.0.1:$pport" >"$prom_dir/log" 2>&1 &
	prom_pid=$!
	papi="http://127.0.0.1:$pport/api/v1"
	target_up() {
		curl -s --max-time 2 "$papi/targets" | python3 -c '
import json, sys
t = json.load(sys.stdin)["data"]["activeTargets"]
sys.exit(0 if t and t[0]["health"] == "up" else 1)' 2>/dev/null
	}
	wait_for 30 "Prometheus to scrape the endpoint (target up); log: $(tail -n 5 "$prom_dir/log" 2>/dev/null)" target_up
	hits=$(int_of "cachekit_query_cache_operations_total{$dbq,result=\"hit\"}" <<<"$text")
	prom_value() { # $1: PromQL; the first sample's value, or "none"
		curl -s --max-time 2 -G "$papi/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "none")'
	}
	prom_has() { [ "$(prom_value "$1")" = "$2" ]; }
	wait_for 20 "Prometheus to return $hits for the hit counter (it has $(prom_value "cachekit_query_cache_operations_total{$dbq,result=\"hit\"}"))" \
		prom_has "cachekit_query_cache_operations_total{$dbq,result=\"hit\"}" "$hits"
	# Over the last minute: one slow scrape (a loaded machine) marks the
	# series stale until the next one, which is not what is tested here.
	got=$(prom_value "last_over_time(cachekit_tasks_dead_total{$dbq,queue=\"metrics_q\"}[1m])")
	[ "$got" = "1" ] || fail "Prometheus has $got for cachekit_tasks_dead_total, expected 1"
	got=$(prom_value "max_over_time(up{job=\"pg_cachekit\"}[1m])")
	[ "$got" = "1" ] || fail "Prometheus' up for the endpoint is $got"
	kill "$prom_pid"
	wait "$prom_pid" 2>/dev/null || true
	prom_pid=
	echo "ok - a real Prometheus scraped the endpoint (target up) and answers hits = $hits through its HTTP API"
else
	echo "ok - # SKIP prometheus is not installed"
fi

# ---- 4. health ------------------------------------------------------------------------------
health_json() { # $1: python expression on the document d
	python3 -c "import json, sys; d = json.load(open(sys.argv[1])); print($1)" "$scrape_file"
}
code=$(get /health)
[ "$code" = 200 ] || fail "/health answered $code with everything up: $(cat "$scrape_file")"
[ "$(health_json 'd["status"]')" = ok ] || fail "/health status is not ok: $(cat "$scrape_file")"
[ "$(health_json '[x["status"] for x in d["databases"] if x["database"] == "'"$db"'"][0]')" = ok ] ||
	fail "/health has no ok entry for $db: $(cat "$scrape_file")"
[ "$(q "SELECT cachekit.health() ->> 'status'")" = ok ] || fail "health() is not ok with everything up"

test/sandbox redis-stop
health_down() { [ "$(get /health)" = 503 ]; }
wait_for 15 "/health to answer 503 with Redis stopped" health_down
[ "$(health_json 'd["status"]')" = down ] || fail "/health with Redis stopped: $(cat "$scrape_file")"
[ "$(health_json 'd["redis"]["status"]')" = down ] || fail "/health redis with Redis stopped: $(cat "$scrape_file")"
got=$(scrape | int_of 'cachekit_redis_up{endpoint="cache"}')
[ "$got" = 0 ] || fail "cachekit_redis_up{endpoint=\"cache\"} is $got with Redis stopped"
got=$(q "SELECT cachekit.health() ->> 'status'")
[ "$got" = down ] || fail "health() ->> 'status' is $got with Redis stopped, expected down"
psql_ok() { timeout 5 psql -X -q -At -d "$db" -c "SELECT 1" >/dev/null; }
psql_ok || fail "SELECT 1 failed with Redis stopped"
echo "ok - Redis stopped: /health 503 (redis down), cachekit_redis_up 0, health() down"

test/sandbox redis-start
health_ok() { [ "$(get /health)" = 200 ] && [ "$(health_json 'd["status"]')" = ok ]; }
wait_for 30 "/health to answer 200 ok with Redis back" health_ok
sql_ok() { [ "$(q "SELECT cachekit.health() ->> 'status'")" = ok ]; }
wait_for 30 "health() to be ok with Redis back" sql_ok
expect_series 'cachekit_redis_up{endpoint="cache"}' 1
echo "ok - Redis back: /health 200 ok, cachekit_redis_up 1, health() ok"

starts="cachekit_worker_starts_total{$dbq,worker=\"relay\"}"
n=$(scrape | int_of "$starts")
[ "$n" != absent ] && [ "$n" -ge 1 ] || fail "$starts is $n"
relay_pid=$(qdb postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = '$relay_type' AND datname = '$db'")
qdb postgres "SELECT pg_terminate_backend($relay_pid)" >/dev/null
new_relay() {
	local p
	p=$(qdb postgres "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE backend_type = '$relay_type' AND datname = '$db'")
	[ "$p" != 0 ] && [ "$p" != "$relay_pid" ]
}
wait_for 60 "the launcher to start a new relay for $db" new_relay
expect_series "$starts" $((n + 1)) 20
expect_series "cachekit_worker_up{$dbq,worker=\"relay\"}" 1
echo "ok - a terminated relay restarted by the launcher: $starts went from $n to $((n + 1))"

# A relay that stops answering (SIGSTOP: alive, registered, silent) makes its
# database "down" on /health once its snapshot is 10 s old; SIGCONT heals it.
relay_pid=$(qdb postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = '$relay_type' AND datname = '$db'")
stopped_pid=$relay_pid
kill -STOP "$relay_pid"
health_is() { [ "$(get /health)" = "$1" ] && grep -q "$2" "$scrape_file"; }
wait_for 30 "/health to say the stopped relay does not answer" health_is 200 "the database's relay does not answer"
grep -q '^{"status": "degraded"' "$scrape_file" || fail "one database's stuck relay should degrade /health, not take it down: $(head -c 300 "$scrape_file")"
code=$(get /metrics)
[ "$code" = 200 ] || fail "/metrics answered $code while a relay was stopped"
kill -CONT "$relay_pid"
stopped_pid=
wait_for 30 "/health to be 200 once the relay answers again" health_is 200 '"status": "ok"'
echo "ok - a relay stopped with SIGSTOP: its database down on /health with the reason after 10 s, the server degraded (200; /metrics still 200); SIGCONT: ok"

# ---- 5. privileges --------------------------------------------------------------------------
text=$(scrape)
! grep -q "$secret_alias" <<<"$text" || fail "/metrics shows query text ($secret_alias)"
! grep -q "$secret_key" <<<"$text" || fail "/metrics shows a key name ($secret_key)"
code=$(get /health)
! grep -q -e "$secret_alias" -e "$secret_key" "$scrape_file" || fail "/health shows query text or a key name"
echo "ok - no query text and no key names on /metrics and /health"

for r in "${roles[@]}"; do qdb postgres "SET client_min_messages = warning; DROP ROLE IF EXISTS $r" >/dev/null; done
qdb postgres "CREATE ROLE ck_metrics_alice; GRANT cachekit_user TO ck_metrics_alice"
qdb postgres "CREATE ROLE ck_metrics_bob; GRANT cachekit_user TO ck_metrics_bob"
qdb postgres "CREATE ROLE ck_metrics_monitor; GRANT pg_monitor TO ck_metrics_monitor"
qdb postgres "CREATE ROLE ck_metrics_nobody"
q "GRANT USAGE ON SCHEMA public TO PUBLIC; GRANT SELECT ON items TO ck_metrics_alice, ck_metrics_bob"
as_role() { q "SET ROLE $1; $2"; }
as_role ck_metrics_alice "SELECT * FROM cachekit.cached_query('SELECT count(*) AS alice_q FROM items', '{}') AS r(n bigint)" >/dev/null
as_role ck_metrics_bob "SELECT * FROM cachekit.cached_query('SELECT max(id) AS bob_q FROM items', '{}') AS r(n int)" >/dev/null
fp_of() { q "SELECT fingerprint FROM cachekit.query_stats WHERE query LIKE '%$1%'"; }
fp_alice=$(fp_of alice_q)
fp_bob=$(fp_of bob_q)
[ -n "$fp_alice" ] && [ -n "$fp_bob" ] || fail "the roles' queries are not in query_stats"
fps_seen_by() { # fingerprints of the per-query series the role sees, sorted
	as_role "$1" "SELECT cachekit.metrics()" | grep "^cachekit_query_misses_total{$dbq," |
		sed 's/.*fingerprint="\([^"]*\)".*/\1/' | sort | tr '\n' ' '
}
got=$(fps_seen_by ck_metrics_alice)
[ "$got" = "$fp_alice " ] || fail "cachekit_user alice sees per-query series [$got], expected only her own [$fp_alice]"
got=$(fps_seen_by ck_metrics_bob)
[ "$got" = "$fp_bob " ] || fail "cachekit_user bob sees per-query series [$got], expected only his own [$fp_bob]"
want=$(printf '%s\n' "$fp" "$fp_alice" "$fp_bob" | sort | tr '\n' ' ')
got=$(fps_seen_by ck_metrics_monitor)
[ "$got" = "$want" ] || fail "pg_monitor sees per-query series [$got], expected all [$want]"
out=$(psql -X -q -At -v VERBOSITY=verbose -d "$db" -c "SET ROLE ck_metrics_nobody; SELECT cachekit.metrics()" 2>&1) &&
	fail "a role without cachekit_user or pg_monitor could call cachekit.metrics()"
grep -q "ERROR:  42501" <<<"$out" || fail "cachekit.metrics() without privileges: $out"
echo "ok - cachekit.metrics(): cachekit_user sees its own per-query series, pg_monitor all, others get 42501"

echo "# metrics_endpoint.sh took $((SECONDS - started)) s"
