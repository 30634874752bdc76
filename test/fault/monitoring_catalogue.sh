#!/usr/bin/env bash
# The monitoring files against the real thing: the Grafana dashboard and the
# alert rules use only families and labels of the catalogue
# (monitoring/metric_names.txt) and parse with promtool; the alert rules'
# unit tests pass; and what cachekit.metrics() really emits has exactly the
# catalogue's families, types and order (families that need a CDN provider
# or the HTTP endpoint may be absent). A family added to the code but not to
# the catalogue, or renamed, fails here.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_mon_catalogue
source test/fault/lib_tasks.bash
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
command -v promtool >/dev/null || fail "promtool (Debian's prometheus) is not installed: tools/deps installs it"
out=$(mktemp)
cleanup() {
	rm -f "$out"
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1 || true
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE EXTENSION pg_cachekit;
CREATE TABLE t (id int PRIMARY KEY, v int);
INSERT INTO t VALUES (1, 1);
SELECT cachekit.watch('t');
SELECT * FROM cachekit.cached_query('SELECT v FROM t') AS r(v int);
UPDATE t SET v = 2;
SQL
psql -X -At -d "$db" -c 'SELECT cachekit.metrics()' >"$out"
python3 test/monitoring/check_dashboard.py --exposition "$out" \
	--allow-missing cachekit_metrics_snapshot_age_seconds,cachekit_cdn_batches,cachekit_cdn_api_calls_total,cachekit_cdn_throttled_total,cachekit_cdn_retries_total,cachekit_cdn_batches_completed_total,cachekit_cdn_batches_failed_total,cachekit_cdn_purged_items_total,cachekit_cdn_provider_reachable,cachekit_cdn_queued_items
promtool check metrics <"$out" || fail "promtool check metrics refused cachekit.metrics()"
echo "ok - cachekit.metrics() passes promtool check metrics"
