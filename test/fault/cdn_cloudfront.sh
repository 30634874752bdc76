#!/usr/bin/env bash
# CDN purges to CloudFront, through test/cdn/fake_cloudfront.py, which checks
# every request as CloudFront would (SigV4 recomputed with botocore, the
# InvalidationBatch, in-progress limits, CallerReference idempotency):
#   - a purge is one signed CreateInvalidation, polled until Completed, and
#     nothing is sent for a rolled-back purge;
#   - paths queued by several requests are sent once;
#   - 503 and TooManyInvalidationsInProgress are retried (Retry-After
#     honoured), AccessDenied-style refusals fail with the provider's message;
#   - a lost response (invalidation created, answer never arrived) is resent
#     with the same CallerReference: one invalidation, not two;
#   - the endpoint down, then back: every request delivered exactly once;
#   - fast and immediate shutdown right after purges commit: delivered once
#     each after the restart;
#   - 10,000 paths: batches of at most 3,000, at most 15 wildcards in
#     progress, no path twice;
#   - the secret never appears in cdn_requests, cdn_status() or the log.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_cdn_cloudfront
source test/fault/lib_tasks.bash
source test/fault/lib_cdn.bash
secret='wJalrXUtnFEMI/K7MDENG+bPxRfiCYSECRETKEY'
cleanup() {
	reset_gucs
	cdn_cleanup
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1 || true

cdn_ca
fake() { # [$1: port]
	start_fake cloudfront "$PY" test/cdn/fake_cloudfront.py --cert "$cdn_dir/tls/server.pem" \
		--key "$cdn_dir/tls/server-key.pem" --port "${1:-0}" --log "$cdn_dir/cloudfront.log" \
		--access-key AKIDCACHEKITTEST --secret-key "$secret" --distribution E2CACHEKIT --complete-after 0.5
}
fake
port=$fake_port
api() { fake_api "$port" "$@"; }
invalidations() { api GET /_fake/state | $PY -c 'import json,sys; print(len(json.load(sys.stdin)["invalidations"]))'; }

secret_file "$cdn_dir/credentials" "[default]
aws_access_key_id = AKIDCACHEKITTEST
aws_secret_access_key = $secret"
set_guc cachekit.cdn_enabled on
set_guc cachekit.cdn_provider cloudfront
set_guc cachekit.cdn_cloudfront_distribution_id E2CACHEKIT
set_guc cachekit.cdn_cloudfront_endpoint "https://127.0.0.1:$port"
set_guc cachekit.cdn_aws_credentials_file "$cdn_dir/credentials"
set_guc cachekit.cdn_ca_file "$cdn_dir/tls/ca.pem"
set_guc cachekit.cdn_poll_interval 200
set_guc cachekit.task_max_backoff 2
setup_task_db
wait_executors 1 30

# One purge: one signed invalidation, completed.
q "BEGIN; SELECT cachekit.cdn_purge(ARRAY['/never-sent']); ROLLBACK" >/dev/null
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/index.html', '/img/*'])")
wait_request "$id" completed 30
[ "$(invalidations)" = 1 ] || fail "one purge made $(invalidations) invalidations"
api GET /_fake/state | $PY -c '
import json, sys
inv = json.load(sys.stdin)["invalidations"][0]
assert sorted(inv["paths"]) == ["/img/*", "/index.html"], inv
assert inv["caller_reference"].startswith("pg_cachekit-"), inv' || fail "the invalidation is not the purge"
pid=$(q "SELECT provider_id FROM cachekit.cdn_requests WHERE request_id = $id")
[ -n "$pid" ] || fail "no CloudFront invalidation id recorded"
echo "ok - a purge is one signed invalidation ($pid), polled to completed; a rolled-back one sent nothing"

# Paths of several requests, queued together (dispatch paused), are sent once.
q "SELECT cachekit.pause_queue('cdn')" >/dev/null
a=$(q "SELECT cachekit.cdn_purge(ARRAY['/shared', '/a'])")
b=$(q "SELECT cachekit.cdn_purge(ARRAY['/shared', '/b'])")
before=$(invalidations)
q "SELECT cachekit.resume_queue('cdn')" >/dev/null
wait_request "$a" completed 30
wait_request "$b" completed 30
api GET /_fake/state | $PY -c '
import json, sys
invs = json.load(sys.stdin)["invalidations"][int(sys.argv[1]):]
paths = [p for i in invs for p in i["paths"]]
assert sorted(paths) == ["/a", "/b", "/shared"], paths' "$before" || fail "queued requests were not deduplicated"
echo "ok - paths queued by two requests go in one invalidation, each once"

# 503 twice, then TooManyInvalidationsInProgress with Retry-After: retried.
api POST /_fake/fail '{"status": 503, "count": 2, "method": "POST"}' >/dev/null
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/retry-503'])")
wait_request "$id" completed 60
api POST /_fake/fail '{"status": 400, "code": "TooManyInvalidationsInProgress", "count": 1, "retry_after": "1", "method": "POST"}' >/dev/null
t0=$(now_ms)
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/retry-throttled'])")
wait_request "$id" completed 60
(($(now_ms) - t0 >= 900)) || fail "Retry-After 1 was not honoured ($(($(now_ms) - t0)) ms)"
[ "$(q "SELECT attempts FROM cachekit.cdn_requests WHERE request_id = $id")" = 2 ] ||
	fail "throttled purge: $(q "SELECT attempts FROM cachekit.cdn_requests WHERE request_id = $id") attempts"
q "SELECT (cachekit.cdn_status() -> 'providers' -> 'cloudfront' ->> 'throttled')::int >= 1" | grep -qx t ||
	fail "cdn_status() counted no throttling"
echo "ok - 503 and TooManyInvalidationsInProgress are retried, Retry-After honoured"

# A lost response: CloudFront created the invalidation, the answer never
# came. The retry carries the same CallerReference and gets the same one.
before=$(invalidations)
api POST /_fake/fail '{"close": true, "after": true, "count": 1, "method": "POST"}' >/dev/null
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/lost-answer'])")
wait_request "$id" completed 60
[ "$(($(invalidations) - before))" = 1 ] || fail "a lost answer made $(($(invalidations) - before)) invalidations"
[ "$(q "SELECT attempts FROM cachekit.cdn_requests WHERE request_id = $id")" -ge 2 ] || fail "the lost answer was not retried"
echo "ok - a lost response is resent with the same CallerReference: one invalidation"

# Refused for good: the provider's message, no retry storm, no secret.
api POST /_fake/fail '{"status": 403, "code": "AccessDenied", "message": "User is not authorized to perform cloudfront:CreateInvalidation", "count": 1, "method": "POST"}' >/dev/null
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/denied'])")
wait_request "$id" failed 30
q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id" | grep -q "AccessDenied: User is not authorized" ||
	fail "failed purge says: $(q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id")"
echo "ok - AccessDenied fails the request with CloudFront's message"

# The endpoint down, then back on the same port.
kill "${fake_pids[0]}"
wait "${fake_pids[0]}" 2>/dev/null || true
down=()
for i in 1 2 3; do down+=("$(q "SELECT cachekit.cdn_purge(ARRAY['/down-$i'])")"); done
wait_for 30 "a failed attempt against the stopped endpoint" \
	bash -c "[ \"\$(psql -X -At -d $db -c \"SELECT coalesce(max(attempts), 0) FROM cachekit.cdn_requests WHERE request_id = ${down[0]}\")\" -ge 1 ]"
q "SELECT (cachekit.cdn_status() -> 'providers' -> 'cloudfront' ->> 'reachable')" | grep -qx false ||
	fail "cdn_status() does not say the endpoint is unreachable: $(q "SELECT cachekit.cdn_status()")"
fake "$port"
for r in "${down[@]}"; do wait_request "$r" completed 60; done
api GET /_fake/state | $PY -c '
import json, sys
paths = [p for i in json.load(sys.stdin)["invalidations"] for p in i["paths"]]
assert sorted(paths) == ["/down-1", "/down-2", "/down-3"], paths' || fail "after the outage the paths were not sent exactly once"
echo "ok - endpoint down, then back: every request delivered exactly once"

# Shutdowns right after purges commit (fast, then immediate: a crash): after
# the restart every purge is delivered, each path in exactly one invalidation.
before=$(invalidations)
for mode in fast immediate; do
	# Committed durably (the sandbox runs with synchronous_commit = off,
	# under which a crash may take back a commit, purge included).
	for i in 1 2 3; do q "SET synchronous_commit = on; SELECT cachekit.cdn_purge(ARRAY['/$mode-$i'])" >/dev/null; done
	restart "$mode"
	wait_for 30 "the server after a $mode shutdown" server_up
done
wait_executors 1 60
for mode in fast immediate; do
	for i in 1 2 3; do
		id=$(q "SELECT request_id FROM cachekit.cdn_requests WHERE paths = '{/$mode-$i}'")
		wait_request "$id" completed 90
	done
done
api GET /_fake/state | $PY -c '
import json, sys
invs = json.load(sys.stdin)["invalidations"][int(sys.argv[1]):]
paths = sorted(p for i in invs for p in i["paths"])
want = sorted("/%s-%d" % (m, i) for m in ("fast", "immediate") for i in (1, 2, 3))
assert paths == want, paths' "$before" || fail "after the shutdowns the paths were not sent exactly once"
echo "ok - fast and immediate shutdown right after the commits: every purge delivered once after the restart"

# 10,000 paths (20 wildcards): within CloudFront's limits, none twice.
api POST /_fake/config '{"complete_after": 0.3}' >/dev/null
id=$(q "SELECT cachekit.cdn_purge(ARRAY(SELECT '/bulk/' || g || '.html' FROM generate_series(1, 9980) g) || ARRAY(SELECT '/bulkdir/' || g || '/*' FROM generate_series(1, 20) g))")
wait_request "$id" completed 120
api GET /_fake/state | $PY -c '
import json, sys
s = json.load(sys.stdin)
invs = [i for i in s["invalidations"] if any(p.startswith("/bulk") for p in i["paths"])]
paths = [p for i in invs for p in i["paths"]]
assert len(paths) == 10000 and len(set(paths)) == 10000, (len(paths), len(set(paths)))
assert max(len(i["paths"]) for i in invs) <= 3000
print(len(invs))' >"$cdn_dir/bulk" || fail "10,000 paths were not sent once each within the batch limit"
# The one refusal in the log is the injected one: the dispatcher kept within
# the in-progress limits by itself.
refused=$(grep -c "TooManyInvalidationsInProgress" "$cdn_dir/cloudfront.log" || true)
[ "$refused" = 1 ] || fail "CloudFront refused $refused requests for in-progress limits (1 was injected)"
echo "ok - 10,000 paths: $(cat "$cdn_dir/bulk") invalidations of at most 3,000 paths, none twice, no in-progress limit hit"

# No secret anywhere we write.
if q "SELECT string_agg(coalesce(last_error, ''), ' ') FROM cachekit._cdn_batches" | grep -qF "$secret" ||
	q "SELECT cachekit.cdn_status()::text" | grep -qF "$secret" ||
	grep -qF "$secret" "$CACHEKIT_SANDBOX_DIR/postgres.log"; then
	fail "the AWS secret appears in a view, cdn_status() or the server log"
fi
echo "ok - the secret is in no view, status or log line"
