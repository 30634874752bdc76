#!/usr/bin/env bash
# monitoring/postgres_exporter/queries.yaml with the real
# prometheus-postgres-exporter (Debian's): after a little work (cached_query
# misses and hits, a write to a watched table, tasks that succeed and die, a
# CDN purge), every query of the file yields series, with values that match
# the work and move with more of it; the exporter reports no error for them,
# runs as a role that is not a superuser, and promtool check metrics parses
# its output with no lint problem in our families. Skipped (77) only when the
# exporter is not installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_pg_exporter
source test/fault/lib_tasks.bash
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
exporter=$(command -v prometheus-postgres-exporter || true)
if [ -z "$exporter" ]; then
	echo "ok - skipped: prometheus-postgres-exporter is not installed"
	exit 77
fi
command -v promtool >/dev/null || fail "promtool (Debian's prometheus) is not installed: tools/deps installs it"
queries=monitoring/postgres_exporter/queries.yaml
role=cachekit_exporter_test
work=
exporter_pid=

cleanup() {
	[ -z "$exporter_pid" ] || kill "$exporter_pid" 2>/dev/null || true
	reset_gucs
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	qdb postgres "DROP ROLE IF EXISTS $role" >/dev/null 2>&1 || true
	[ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
cleanup
work=$(mktemp -d /tmp/pg_cachekit_exporter.XXXXXX)

createdb "$db"
q "CREATE EXTENSION pg_cachekit"
# What the queries file asks of the exporter's role (see its header).
qdb postgres "CREATE ROLE $role LOGIN IN ROLE pg_monitor"
q "CREATE TABLE orders (id int PRIMARY KEY, amount numeric NOT NULL)"
q "INSERT INTO orders SELECT g, g FROM generate_series(1, 100) g"
q "SELECT cachekit.watch('orders')" >/dev/null
q "CREATE FUNCTION noop(args jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT args \$\$"
q "CREATE FUNCTION broken(args jsonb) RETURNS void LANGUAGE plpgsql AS \$\$ BEGIN RAISE EXCEPTION 'broken on purpose'; END \$\$"

cached() { # prints the outcome of one cached_query call
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" \
		-c "SELECT count(*) FROM cachekit.cached_query('SELECT sum(amount) FROM orders WHERE id > \$1', ARRAY['10']) AS r(s numeric)" \
		-c "SELECT cachekit.last_outcome()" | tail -1
}
[ "$(cached)" = miss ] || fail "the first cached_query was not a miss"
[ "$(cached)" = hit ] || fail "the second cached_query was not a hit"
q "UPDATE orders SET amount = amount + 1 WHERE id = 42"
[ "$(cached)" = miss ] || fail "cached_query after the committed write to orders was not a miss"

ok_id=$(q "SELECT cachekit.enqueue('default', 'noop', '{}')")
dead_id=$(q "SELECT cachekit.enqueue('default', 'broken', '{}', max_attempts => 1)")
task_in() { [ "$(q "SELECT state FROM cachekit.tasks WHERE id = $1")" = "$2" ]; }
wait_for 30 "task $ok_id to succeed" task_in "$ok_id" succeeded
wait_for 30 "task $dead_id to die" task_in "$dead_id" dead

# A CDN provider (http) pointing at a port nobody listens on: the purge stays
# unsent, which is all the CDN queries need.
closed_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
set_guc cachekit.cdn_enabled on
set_guc cachekit.cdn_provider http
set_guc cachekit.cdn_http_purge_url "http://127.0.0.1:$closed_port"
q "SELECT cachekit.cdn_purge(ARRAY['/products/1.html'])" >/dev/null
echo "ok - work done: cached_query miss, hit, invalidation, miss; a task succeeded, one died; a purge queued"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DATA_SOURCE_NAME="postgresql://$role@${PGHOST:-127.0.0.1}:$PGPORT/$db?sslmode=disable" \
	"$exporter" --web.listen-address="127.0.0.1:$port" --extend.query-path="$queries" --log.level=info \
	>"$work/exporter.log" 2>&1 &
exporter_pid=$!
scrape() { # $1: output file
	curl -sS --max-time 10 -o "$1" "http://127.0.0.1:$port/metrics" 2>/dev/null && grep -q '^pg_up 1$' "$1"
}
wait_for 30 "the exporter to answer with pg_up 1 ($(tail -3 "$work/exporter.log" 2>/dev/null))" scrape "$work/m1"

# value NAME LABELS...: the value of the one series of NAME whose labels
# include every LABEL (name="value"); empty when there is none.
value() {
	local file=$1 name=$2
	shift 2
	awk -v name="$name" -v want="$*" '
		index($0, name "{") == 1 || $1 == name {
			n = split(want, w, " "); ok = 1
			for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) ok = 0
			if (ok) { print $NF; found++ }
		}
		END { if (found > 1) print "ambiguous" }' "$file"
}
expect() { # FILE OP NUMBER NAME LABELS...: the series exists and compares
	local file=$1 op=$2 want=$3 name=$4
	shift 4
	local got
	got=$(value "$file" "$name" "$@")
	[ -n "$got" ] && [ "$got" != ambiguous ] || fail "no single series $name{$*} (got '${got}'): $(grep "^$name" "$file" | head -5)"
	python3 -c "import sys; g=float(sys.argv[1]); w=float(sys.argv[3]); sys.exit(0 if {'>=': g >= w, '==': g == w, '>': g > w}[sys.argv[2]] else 1)" \
		"$got" "$op" "$want" || fail "$name{$*} is $got, expected $op $want"
}

m=$work/m1
d="database=\"$db\""
grep -q '^pg_exporter_last_scrape_error 0$' "$m" || fail "the exporter reports a scrape error: $(grep '^pg_exporter_last_scrape_error' "$m"); log: $(grep -i error "$work/exporter.log" | head -5)"
# Every query of the file gave at least one series.
keys=$(sed -n 's/^\(pg_cachekit_[a-z_]*\):$/\1/p' "$queries")
[ "$(echo "$keys" | wc -l)" -ge 8 ] || fail "found only these queries in $queries: $keys"
for key in $keys; do
	grep -q "^${key}_[a-z_]*{" "$m" || fail "query $key gave no series"
done
echo "ok - every query of the file gives series ($(echo "$keys" | wc -l) queries), pg_exporter_last_scrape_error 0"

expect "$m" '==' 1 pg_cachekit_query_hits_total "$d" 'role="postgres"'
expect "$m" '==' 2 pg_cachekit_query_misses_total "$d" 'role="postgres"'
expect "$m" '==' 3 pg_cachekit_query_calls_total "$d" 'role="postgres"'
expect "$m" '>' 0 pg_cachekit_query_mean_hit_seconds "$d"
expect "$m" '>' 0 pg_cachekit_query_mean_miss_seconds "$d"
expect "$m" '>=' 1 pg_cachekit_table_invalidations_total "$d" 'table="orders"'
expect "$m" '>' 1e9 pg_cachekit_table_last_invalidation_timestamp_seconds "$d" 'table="orders"'
expect "$m" '>=' 1 pg_cachekit_invalidation_messages_published_total "$d"
expect "$m" '>=' 0 pg_cachekit_invalidation_outbox_depth "$d"
expect "$m" '>=' 1 pg_cachekit_queue_succeeded_kept "$d" 'queue="default"'
expect "$m" '==' 1 pg_cachekit_queue_dead_kept "$d" 'queue="default"'
expect "$m" '==' 0 pg_cachekit_queue_paused "$d" 'queue="default"'
expect "$m" '==' 1 pg_cachekit_redis_up 'endpoint="cache"'
expect "$m" '==' 1 pg_cachekit_redis_up 'endpoint="session"'
expect "$m" '>' 0 pg_cachekit_redis_used_memory_bytes 'endpoint="cache"'
expect "$m" '>=' 0 pg_cachekit_health_status 'component="overall"'
expect "$m" '==' 1 pg_cachekit_cdn_configured "$d" 'provider="http"'
expect "$m" '==' 1 pg_cachekit_cdn_enabled "$d" 'provider="http"'
expect "$m" '==' 0 pg_cachekit_health_status 'component="relay"'
expect "$m" '==' 0 pg_cachekit_health_status 'component="redis"'
expect "$m" '==' 0 pg_cachekit_health_status 'component="queue:default"'
echo "ok - values match the work: 1 hit, 2 misses, invalidations of orders, 1 task succeeded and 1 dead, Redis up, the purge"

# The counters move: one more hit and one more write.
[ "$(cached)" = hit ] || fail "cached_query after the miss was not a hit"
before_inv=$(value "$m" pg_cachekit_table_invalidations_total "$d" 'table="orders"')
q "UPDATE orders SET amount = amount + 1 WHERE id = 43"
scrape "$work/m2" || fail "second scrape failed"
expect "$work/m2" '==' 2 pg_cachekit_query_hits_total "$d" 'role="postgres"'
expect "$work/m2" '>' "$before_inv" pg_cachekit_table_invalidations_total "$d" 'table="orders"'
echo "ok - a second scrape shows one more hit and another invalidation"

# Our metrics are typed and described; none takes a name of the catalogue.
for name in pg_cachekit_query_hits_total pg_cachekit_table_invalidations_total pg_cachekit_queue_depth pg_cachekit_redis_up; do
	grep -q "^# HELP $name ." "$m" || fail "no HELP for $name"
	grep -q "^# TYPE $name " "$m" || fail "no TYPE for $name"
done
grep -q '^# TYPE pg_cachekit_query_hits_total counter$' "$m" || fail "pg_cachekit_query_hits_total is not a counter"
! grep -q '^cachekit_' "$m" || fail "the exporter serves a cachekit_* name, which the catalogue owns: $(grep '^cachekit_' "$m" | head -3)"

# promtool: exit 0 (clean) or 3 (lint problems only); anything else is a
# parse error. Lint problems are ignored for the exporter's own families
# (pg_stat_*, pg_locks_count, pg_settings_* — including pg_settings_cachekit_*,
# which the exporter names from our settings' units), not for ours.
rc=0
promtool check metrics <"$m" >"$work/promtool.out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "promtool check metrics failed ($rc): $(head -5 "$work/promtool.out")"
! grep -q '^pg_cachekit_' "$work/promtool.out" || fail "promtool lint on our metrics: $(grep '^pg_cachekit_' "$work/promtool.out")"
echo "ok - promtool check metrics parses the output; no lint problem in pg_cachekit_* ($(grep -c . "$work/promtool.out" || true) about the exporter's own families ignored)"

if grep -E 'level=error|Error running query' "$work/exporter.log" >"$work/errors"; then
	fail "the exporter logged errors: $(head -5 "$work/errors")"
fi
echo "ok - the exporter logged no error"
