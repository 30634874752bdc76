#!/usr/bin/env bash
# Two providers at once, Fastly and Cloudflare, through test/cdn/fake_cdn_api.py
# (which checks the token, the body shape and the per-request limits as the
# services do): every purge goes to each of them, in each one's shape.
#   - paths: Fastly one URL purge per path, Cloudflare one files call with
#     full URLs; a prefix is Cloudflare's, and fails for Fastly with a reason;
#   - tags: 300 tags are 2 Fastly calls (256 + 44) and 3 Cloudflare calls
#     (100 each); purge-all is purge_all / purge_everything;
#   - a 429 with Retry-After from one provider delays only that provider;
#   - a wrong token fails with the service's answer, and the token is in no
#     view, status or log line.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_cdn_fastly_cloudflare
source test/fault/lib_tasks.bash
source test/fault/lib_cdn.bash
fastly_token='fastly-TOKEN-6f1c2b'
cf_token='cloudflare-TOKEN-9a8b7c'
cleanup() {
	reset_gucs
	cdn_cleanup
	[ -n "${CDN_KEEP_DB:-}" ] || dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1 || true

cdn_ca
tls=(--cert "$cdn_dir/tls/server.pem" --key "$cdn_dir/tls/server-key.pem")
start_fake fastly "$PY" test/cdn/fake_cdn_api.py --api fastly "${tls[@]}" --token "$fastly_token" --id svc1 --log "$cdn_dir/fastly.log"
fport=$fake_port
start_fake cloudflare "$PY" test/cdn/fake_cdn_api.py --api cloudflare "${tls[@]}" --token "$cf_token" --id zone1 --log "$cdn_dir/cloudflare.log"
cport=$fake_port
# What a fake accepted since its last reset: "kind item" lines in order.
purged() { fake_api "$1" GET /_fake/state | $PY -c 'import json, sys; [print(p["kind"], p["item"]) for p in json.load(sys.stdin)["purged"]]'; }
calls() { fake_api "$1" GET /_fake/state | $PY -c 'import json, sys; print(json.load(sys.stdin)["accepted"])'; }
reset() { fake_api "$fport" POST /_fake/reset '{}' >/dev/null; fake_api "$cport" POST /_fake/reset '{}' >/dev/null; }

secret_file "$cdn_dir/fastly.token" "$fastly_token"
secret_file "$cdn_dir/cloudflare.token" "$cf_token"
set_guc cachekit.cdn_enabled on
set_guc cachekit.cdn_provider fastly,cloudflare
set_guc cachekit.cdn_base_url https://www.example.com
set_guc cachekit.cdn_ca_file "$cdn_dir/tls/ca.pem"
set_guc cachekit.cdn_fastly_endpoint "https://127.0.0.1:$fport"
set_guc cachekit.cdn_fastly_service_id svc1
set_guc cachekit.cdn_fastly_api_token_file "$cdn_dir/fastly.token"
set_guc cachekit.cdn_cloudflare_endpoint "https://127.0.0.1:$cport"
set_guc cachekit.cdn_cloudflare_zone_id zone1
set_guc cachekit.cdn_cloudflare_api_token_file "$cdn_dir/cloudflare.token"
set_guc cachekit.task_max_backoff 2
set_guc cachekit.cdn_poll_interval 300
setup_task_db
wait_executors 1 30

# Paths: each provider in its own shape.
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/a.html', '/b.html'])")
wait_request "$id" completed 30
[ "$(purged "$fport" | sort | tr '\n' ' ')" = "url www.example.com/a.html url www.example.com/b.html " ] ||
	fail "Fastly got: $(purged "$fport" | tr '\n' ' ')"
[ "$(purged "$cport" | sort | tr '\n' ' ')" = "files https://www.example.com/a.html files https://www.example.com/b.html " ] ||
	fail "Cloudflare got: $(purged "$cport" | tr '\n' ' ')"
[ "$(calls "$cport")" = 1 ] || fail "Cloudflare needed $(calls "$cport") calls for 2 files"
echo "ok - a purge goes to both providers: Fastly one URL purge per path, Cloudflare one files call"

# A prefix: Cloudflare's prefixes; Fastly cannot, and says so.
reset
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/img/*'])")
wait_for 30 "the prefix purge to finish for both" bash -c "[ \"\$(psql -X -At -d $db -c \"SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $id AND state IN ('completed', 'failed')\")\" = 2 ]"
[ "$(request_states "$id")" = "cloudflare:completed fastly:failed" ] || fail "prefix purge: $(request_states "$id")"
q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'" | grep -qi "prefix\|wildcard" ||
	fail "Fastly's refusal says: $(q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'")"
[ "$(purged "$cport")" = "prefixes www.example.com/img/" ] || fail "Cloudflare got: $(purged "$cport")"
[ -z "$(purged "$fport")" ] || fail "Fastly was sent a prefix"
echo "ok - a prefix purge is Cloudflare's prefixes; Fastly fails it with a reason, sending nothing"

# 300 tags: within each API's per-request limit.
reset
id=$(q "SELECT cachekit.cdn_purge_tags(ARRAY(SELECT 'tag-' || g FROM generate_series(1, 300) g))")
wait_request "$id" completed 30
[ "$(calls "$fport")/$(purged "$fport" | grep -c '^key ')" = 2/300 ] || fail "Fastly: $(calls "$fport") calls, $(purged "$fport" | grep -c '^key ') keys"
[ "$(calls "$cport")/$(purged "$cport" | grep -c '^tags ')" = 3/300 ] || fail "Cloudflare: $(calls "$cport") calls, $(purged "$cport" | grep -c '^tags ') tags"
[ "$(purged "$fport" | sort -u | wc -l)" = 300 ] || fail "Fastly got a tag twice"
echo "ok - 300 tags: Fastly 2 calls (256 + 44 keys), Cloudflare 3 calls (100 each), none twice"

# Purge-all.
reset
id=$(q "SELECT cachekit.cdn_purge_all()")
wait_request "$id" completed 30
[ "$(purged "$fport")" = "all svc1" ] && [ "$(purged "$cport")" = "purge_everything zone1" ] ||
	fail "purge-all: Fastly $(purged "$fport"), Cloudflare $(purged "$cport")"
echo "ok - purge-all is Fastly's purge_all and Cloudflare's purge_everything"

# A 429 with Retry-After from Cloudflare delays Cloudflare only.
reset
fake_api "$cport" POST /_fake/fail '{"status": 429, "count": 1, "retry_after": 2}' >/dev/null
t0=$(now_ms)
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/throttled.html'])")
wait_for 30 "Fastly to complete" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'\" | grep -qx completed"
fastly_ms=$(($(now_ms) - t0))
wait_request "$id" completed 30
cf_ms=$(($(now_ms) - t0))
# Fastly's batch went out once and finished long before Cloudflare's retry,
# by the dispatcher's own clock (wall time of this script varies with load).
gap_ms=$(q "SELECT (extract(epoch FROM c.completed_at - f.completed_at) * 1000)::int || ' ' || f.attempts
              FROM cachekit.cdn_requests c, cachekit.cdn_requests f
             WHERE c.request_id = $id AND c.provider = 'cloudflare' AND f.request_id = $id AND f.provider = 'fastly'")
read -r gap_ms fastly_attempts <<<"$gap_ms"
((gap_ms >= 1000 && fastly_attempts == 1 && cf_ms >= 1900)) ||
	fail "Fastly completed $gap_ms ms before Cloudflare after $fastly_attempts attempt(s) (seen after $fastly_ms ms), Cloudflare after $cf_ms ms (Retry-After: 2)"
q "SELECT (cachekit.cdn_status() -> 'providers' -> 'cloudflare' ->> 'throttled')::int" | grep -qx '[1-9][0-9]*' || fail "no throttling counted"
echo "ok - Cloudflare's 429 (Retry-After 2) delays Cloudflare by 2 s ($cf_ms ms), Fastly not (done $gap_ms ms before it, 1 attempt)"

# A provider that cannot be configured (its token file is gone): its purges
# wait, cdn_status() says why, and they go out once the setting is fixed.
reset
set_guc cachekit.cdn_cloudflare_api_token_file "$cdn_dir/missing.token"
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/waits.html'])")
wait_for 30 "Fastly to complete" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'\" | grep -qx completed"
wait_for 30 "cdn_status() to report the configuration error" bash -c "psql -X -At -d $db -c \"SELECT cachekit.cdn_status() -> 'providers' -> 'cloudflare' ->> 'last_error'\" | grep -q '^configuration: Cloudflare API token file cannot be used'"
[ "$(q "SELECT state FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'cloudflare'")" = queued ] || fail "a misconfigured provider's purge is $(request_states "$id")"
q "SELECT cachekit.cdn_status()::text" | grep -qF "$cdn_dir" && fail "cdn_status() shows the token file's path"
set_guc cachekit.cdn_cloudflare_api_token_file "$cdn_dir/cloudflare.token"
wait_request "$id" completed 30
[ "$(purged "$cport")" = "files https://www.example.com/waits.html" ] || fail "after the fix Cloudflare got: $(purged "$cport")"
echo "ok - a misconfigured provider's purges wait (cdn_status() says why) and go out once it is fixed"

# A wrong token: the service's refusal, and no token anywhere.
secret_file "$cdn_dir/fastly.token" "not-the-token"
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/denied.html'])")
wait_for 30 "Fastly to fail" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'\" | grep -qx failed"
q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'" | grep -q "401" ||
	fail "wrong token: $(q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'fastly'")"
wait_for 30 "Cloudflare to complete" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $id AND provider = 'cloudflare'\" | grep -qx completed"
for t in "$fastly_token" "$cf_token" not-the-token; do
	if q "SELECT string_agg(coalesce(last_error, ''), ' ') FROM cachekit._cdn_batches" | grep -qF "$t" ||
		q "SELECT cachekit.cdn_status()::text" | grep -qF "$t" ||
		grep -qF "$t" "$CACHEKIT_SANDBOX_DIR/postgres.log" "$cdn_dir/fastly.log" "$cdn_dir/cloudflare.log"; then
		fail "a token appears in a view, cdn_status(), the server log or a fake's log"
	fi
done
echo "ok - a wrong token fails with Fastly's 401; no token in views, status or logs"
