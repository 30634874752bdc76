#!/usr/bin/env bash
# Worker log lines (issue 10, "Health and logs"), in a cluster of its own that
# logs with log_destination = 'jsonlog' at log_min_messages = debug1, with
# secrets configured the way users do: a Redis password (requirepass, in
# cachekit.redis_password_file), Fastly and Cloudflare API token files, an
# SMTP password file, and an Authorization header in an http task. Then
# failures: a function task, an email task and an http task that fail, retry
# and die; a Fastly purge refused for a wrong token (failed) and a Cloudflare
# purge answered 500 once (retried); Redis paused and resumed under the relay.
#
#   (a) every line of the .json log is one JSON object;
#   (b) every line of a pg_cachekit worker (jsonlog's backend_type) starts
#       with its component prefix, and the lines name the tasks, CDN batches
#       and requests by the ids cachekit.tasks / cachekit.cdn_requests have;
#   (c) no configured secret appears in any log file (json or stderr).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() {
	echo "not ok - $*"
	exit 1
}
PY=/usr/bin/python3

redis_pw="Redis-Secret-$RANDOM$RANDOM"
fastly_token="fastly-Secret-$RANDOM$RANDOM"     # what the fake accepts
fastly_configured="fastly-Wrong-$RANDOM$RANDOM" # what the token file holds
cf_token="cloudflare-Secret-$RANDOM$RANDOM"
smtp_pw="Smtp-Secret-$RANDOM$RANDOM"
http_secret="Http-Secret-$RANDOM$RANDOM"
secrets=("$redis_pw" "$fastly_token" "$fastly_configured" "$cf_token" "$smtp_pw" "$http_secret")

sb=$(mktemp -d /tmp/pg_cachekit_worker_logs.XXXXXX)
rmdir "$sb"
http_dir=$(mktemp -d /tmp/pg_cachekit_worker_logs_http.XXXXXX)
http_pid=
cleanup() {
	[ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null || true
	rm -rf "$http_dir"
	[ -n "${cdn_dir:-}" ] && cdn_cleanup
	# Without the password again, so that the sandbox can shut Redis down.
	if [ -n "${CACHEKIT_REDIS_PORT:-}" ] && [ "${CACHEKIT_SANDBOX_DIR:-}" = "$sb" ]; then
		test/sandbox redis-resume 2>/dev/null || true
		redis-cli -p "$CACHEKIT_REDIS_PORT" -a "$redis_pw" --no-auth-warning config set requirepass "" >/dev/null 2>&1 || true
	fi
	CACHEKIT_SANDBOX_DIR=$sb test/sandbox stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A cluster of its own: jsonlog needs the logging collector, and the
# shared sandbox logs to stderr.
# The metrics endpoint too: its lines are a worker's like the others'.
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$sb" \
	CACHEKIT_SANDBOX_EXTRA_CONF="log_destination = 'jsonlog'
logging_collector = on
log_directory = 'log'
log_min_messages = debug1
cachekit.metrics_listen = '127.0.0.1:$metrics_port'" test/sandbox start 2>/dev/null)
eval "$env_lines"
db=cachekit_worker_logs
source test/fault/lib_tasks.bash
source test/fault/lib_cdn.bash
log_dir=$sb/data/log

# Redis with a password, kept in a file only the server's user can read.
redis-cli -p "$CACHEKIT_REDIS_PORT" config set requirepass "$redis_pw" >/dev/null
secret_file "$cdn_dir/redis.pw" "$redis_pw"
set_guc cachekit.redis_password_file "$cdn_dir/redis.pw"

# Fastly (a wrong token: refused) and Cloudflare (500 once: retried).
cdn_ca
tls=(--cert "$cdn_dir/tls/server.pem" --key "$cdn_dir/tls/server-key.pem")
start_fake fastly "$PY" test/cdn/fake_cdn_api.py --api fastly "${tls[@]}" --token "$fastly_token" --id svc1 --log "$cdn_dir/fastly.log"
fport=$fake_port
start_fake cloudflare "$PY" test/cdn/fake_cdn_api.py --api cloudflare "${tls[@]}" --token "$cf_token" --id zone1 --log "$cdn_dir/cloudflare.log"
cport=$fake_port
secret_file "$cdn_dir/fastly.token" "$fastly_configured"
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

# SMTP with a user and a password file, on a port where nothing listens.
smtp_port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
secret_file "$cdn_dir/smtp.pw" "$smtp_pw"
set_guc cachekit.smtp_url "smtp://127.0.0.1:$smtp_port"
set_guc cachekit.smtp_username mailer
set_guc cachekit.smtp_password_file "$cdn_dir/smtp.pw"
set_guc cachekit.smtp_from sender@example.com
set_guc cachekit.task_max_backoff 1

# An HTTP endpoint that answers 503 (task_http_server.py's /busy).
$PY test/fault/task_http_server.py "$http_dir" 2>"$http_dir/server.err" &
http_pid=$!
for _ in $(seq 1 100); do
	[ -f "$http_dir/port" ] && break
	sleep 0.05
done
[ -f "$http_dir/port" ] || fail "the HTTP server did not start: $(cat "$http_dir/server.err")"
http_port=$(cat "$http_dir/port")

setup_task_db
wait_executors 1 30
q "CREATE FUNCTION fault.always_fails(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
   BEGIN RAISE EXCEPTION 'always fails (n=%)', a->>'n' USING ERRCODE = 'division_by_zero'; END \$\$"

# Tasks that fail, retry and die.
fid=$(q "SELECT cachekit.enqueue('default', 'fault.always_fails', '{\"n\": 7}', max_attempts => 3)")
eid=$(q "SELECT cachekit.enqueue('default', 'email', '{\"to\": \"someone@example.com\", \"subject\": \"s\", \"text\": \"t\"}', max_attempts => 2)")
hid=$(q "SELECT cachekit.enqueue('default', 'http', jsonb_build_object('url', 'http://127.0.0.1:$http_port/busy?after=0', 'method', 'POST', 'headers', jsonb_build_object('Authorization', 'Bearer $http_secret')), max_attempts => 2)")
for id in "$fid" "$eid" "$hid"; do wait_for 60 "task $id to die" in_state "$id" dead; done
[ "$(grep -c "$http_secret" "$http_dir/requests.jsonl")" = 2 ] || fail "the http task did not send its Authorization header twice"

# CDN: Fastly refuses the token (failed); Cloudflare answers 500 once.
fake_api "$cport" POST /_fake/fail '{"status": 500, "count": 1}' >/dev/null
rid=$(q "SELECT cachekit.cdn_purge(ARRAY['/logs.html'])")
wait_for 60 "Fastly to fail request $rid" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $rid AND provider = 'fastly'\" | grep -qx failed"
wait_for 60 "Cloudflare to complete request $rid" bash -c "psql -X -At -d $db -c \"SELECT state FROM cachekit.cdn_requests WHERE request_id = $rid AND provider = 'cloudflare'\" | grep -qx completed"

# Redis paused under the relay: a commit's invalidation waits, then goes.
q "CREATE TABLE fault.watched (id int PRIMARY KEY, v text); INSERT INTO fault.watched VALUES (1, 'a')"
q "SELECT cachekit.watch('fault.watched')" >/dev/null
test/sandbox redis-pause
q "UPDATE fault.watched SET v = 'b'" >/dev/null 2>&1
json_has() { cat "$log_dir"/*.json 2>/dev/null | grep -qF -- "$1"; }
wait_for 30 "the relay to log the outage" json_has "cachekit relay: cannot deliver invalidations to Redis"
test/sandbox redis-resume
wait_for 30 "the relay to log that Redis is back" json_has "cachekit relay: delivering invalidations to Redis again"
echo "ok - failures caused: tasks $fid (function), $eid (email), $hid (http) dead; CDN request $rid failed at Fastly, retried at Cloudflare; a Redis outage under the relay"

# (a) and (b): the json log, read by Python.
ls "$log_dir"/*.json >/dev/null 2>&1 || fail "no .json log in $log_dir: $(ls "$log_dir")"
$PY - "$log_dir" >"$sb/worker_lines.txt" <<'PY' || fail "$(cat "$sb/worker_lines.txt")"
import glob, json, re, sys
ours = {"pg_cachekit launcher": ("launcher",), "pg_cachekit outbox relay": ("relay", "maintenance"),
        "pg_cachekit task executor": ("executor", "cdn"), "pg_cachekit metrics endpoint": ("metrics",)}
bad, lines = [], []
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                rec = json.loads(line)
            except ValueError as e:
                print("line %d of %s is not JSON (%s): %r" % (n, path, e, line[:200]))
                sys.exit(1)
            if not isinstance(rec, dict):
                print("line %d of %s is not an object" % (n, path))
                sys.exit(1)
            kinds = ours.get(rec.get("backend_type"))
            if kinds is None:
                continue
            msg = rec.get("message", "")
            m = re.match(r"cachekit (\w+): ", msg)
            if not m or m.group(1) not in kinds:
                bad.append("%s: %s" % (rec["backend_type"], msg))
            lines.append(rec["backend_type"] + "\t" + rec.get("error_severity", "") + "\t" + msg.replace("\n", " "))
if bad:
    print("worker lines without their component prefix: " + " | ".join(bad[:10]))
    sys.exit(1)
print("\n".join(lines))
PY
echo "ok - every line of the json log is a JSON object; every worker line starts with its component prefix ($(wc -l <"$sb/worker_lines.txt") lines)"

has_line() {
	grep -qE -- "$1" "$sb/worker_lines.txt" && return 0
	cat "$sb/worker_lines.txt"
	fail "no worker log line matching (the worker lines are above): $1"
}
has_line $'^pg_cachekit launcher\tLOG\tcachekit launcher: started$'
has_line $'^pg_cachekit metrics endpoint\tLOG\tcachekit metrics: serving /metrics and /health on 127.0.0.1:'"$metrics_port"'$'
has_line $'^pg_cachekit outbox relay\tLOG\tcachekit relay: serving database "'"$db"'"$'
has_line $'^pg_cachekit task executor\tDEBUG\tcachekit executor: executor [0-9]+ started$'
has_line "cachekit executor: task $fid: attempt 1 of 3 failed \\(fault.always_fails\\(jsonb\\) on queue \"default\"\\), retry in [0-9.]+ s: always fails \\(n=7\\)$"
has_line "cachekit executor: task $fid: attempt 3 of 3 failed \\(fault.always_fails\\(jsonb\\) on queue \"default\"\\), the task is dead: always fails \\(n=7\\)$"
has_line "cachekit executor: task $eid: attempt 1 of 2 failed \\(email on queue \"default\"\\), retry in "
has_line "cachekit executor: task $eid: attempt 2 of 2 failed \\(email on queue \"default\"\\), the task is dead: "
has_line "cachekit executor: task $hid: attempt 2 of 2 failed \\(http on queue \"default\"\\), the task is dead: HTTP 503 from POST request$"
# The stored message is the logged one.
for id in "$fid" "$eid" "$hid"; do
	msg=$(q "SELECT last_error->>'message' FROM cachekit.tasks WHERE id = $id")
	grep -qF "cachekit executor: task $id: attempt" "$sb/worker_lines.txt" && grep -F "cachekit executor: task $id: " "$sb/worker_lines.txt" | grep -qF ": $msg" ||
		fail "task $id's lines do not end with its stored message \"$msg\""
done
# Every task a line names exists, and only failed ones are named.
for id in $(grep -oE 'cachekit (executor|maintenance): task [0-9]+:' "$sb/worker_lines.txt" | grep -oE '[0-9]+' | sort -u); do
	[ "$(q "SELECT count(*) FROM cachekit.tasks WHERE id = $id AND last_error IS NOT NULL")" = 1 ] ||
		fail "a log line names task $id, which is not a failed task of cachekit.tasks"
done
echo "ok - task failures are logged with the task's id, name, queue, attempt, what happens next and the stored message"

fb=$(q "SELECT b.id FROM cachekit._cdn_batches b WHERE b.provider = 'fastly' AND b.state = 'failed' AND EXISTS (SELECT 1 FROM cachekit._cdn_queue q WHERE q.batch_id = b.id AND q.request_id = $rid)")
cb=$(q "SELECT b.id FROM cachekit._cdn_batches b WHERE b.provider = 'cloudflare' AND b.attempts >= 2 AND EXISTS (SELECT 1 FROM cachekit._cdn_queue q WHERE q.batch_id = b.id AND q.request_id = $rid)")
[ -n "$fb" ] && [ -n "$cb" ] || fail "batches of request $rid: $(batch_summary)"
stored=$(q "SELECT last_error FROM cachekit._cdn_batches WHERE id = $fb")
has_line $'^pg_cachekit task executor\tLOG\tcachekit cdn: cdn batch '"$fb"': fastly purge failed: .*401.* \(cdn requests '"$rid"'\)$'
grep -F "cachekit cdn: cdn batch $fb: " "$sb/worker_lines.txt" | grep -qF "$stored" || fail "batch $fb's line does not carry its last_error \"$stored\""
has_line $'^pg_cachekit task executor\tLOG\tcachekit cdn: cdn batch '"$cb"': cloudflare purge attempt 1 failed, retry in [0-9.]+ s: .*500.* \(cdn requests '"$rid"'\)$'
for id in $(grep -oE 'cachekit cdn: cdn batch [0-9]+:' "$sb/worker_lines.txt" | grep -oE '[0-9]+' | sort -u); do
	[ "$(q "SELECT count(*) FROM cachekit._cdn_batches WHERE id = $id")" = 1 ] || fail "a log line names CDN batch $id, which does not exist"
done
for id in $(grep -oE '\(cdn requests [0-9, ]+' "$sb/worker_lines.txt" | grep -oE '[0-9]+' | sort -u); do
	[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $id")" -ge 1 ] || fail "a log line names CDN request $id, which cachekit.cdn_requests does not have"
done
echo "ok - CDN batch failures and retries are logged with the batch id, provider, the provider's answer and the request ids"

[ "$(grep -c 'cachekit relay: cannot deliver invalidations to Redis' "$sb/worker_lines.txt")" = 1 ] ||
	fail "the outage was logged $(grep -c 'cachekit relay: cannot deliver invalidations to Redis' "$sb/worker_lines.txt") times, expected once"
[ "$(grep -c 'cachekit relay: delivering invalidations to Redis again' "$sb/worker_lines.txt")" = 1 ] ||
	fail "the end of the outage was logged $(grep -c 'cachekit relay: delivering invalidations to Redis again' "$sb/worker_lines.txt") times, expected once"
echo "ok - a Redis outage under the relay is logged once when it starts and once when it ends"

# (c) No secret in any log file: the json log, the collector's stderr
# files, the server's stderr (pg_ctl -l) and the sandbox Redis' log; nor in
# what the metrics endpoint and cachekit.metrics()/health() show (after the
# failures above, with their errors stored).
# A database's snapshot is refreshed at most once a second, and /metrics
# waits only 500 ms for a relay's first one: scrape about once a second until
# the dead tasks show (20 s at most).
scrape_deadline=$((SECONDS + 20))
until curl -sf "http://127.0.0.1:$metrics_port/metrics" >"$sb/scrape-metrics.log" &&
	grep -q '^cachekit_tasks_dead_total{database="'"$db"'",queue="default"} [1-9]' "$sb/scrape-metrics.log"; do
	((SECONDS < scrape_deadline)) ||
		fail "GET /metrics failed or does not show the dead tasks after 20 s: $(grep tasks_dead "$sb/scrape-metrics.log")"
	sleep 1.1
done
curl -s "http://127.0.0.1:$metrics_port/health" >"$sb/scrape-health.log" || fail "GET /health failed"
q "SELECT cachekit.metrics(), cachekit.health(), cachekit.cdn_status()" >"$sb/sql-metrics.log"
logs=("$log_dir"/* "$sb"/*.log)
for s in "${secrets[@]}"; do
	if grep -lF -- "$s" "${logs[@]}" >"$sb/leaks.txt" 2>/dev/null; then
		fail "a configured secret appears in $(tr '\n' ' ' <"$sb/leaks.txt")"
	fi
done
# The check sees what it looks for: the secrets are where they belong.
grep -qF "$http_secret" "$http_dir/requests.jsonl" && grep -qF "$redis_pw" "$cdn_dir/redis.pw" || fail "the secret check looks for the wrong strings"
echo "ok - no configured secret (Redis password, API tokens, SMTP password, Authorization header) in ${#logs[@]} log files"
