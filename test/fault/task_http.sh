#!/usr/bin/env bash
# Built-in http tasks against a real HTTP server on loopback
# (task_http_server.py, which records every connection and request):
# requests arrive exactly as enqueued (method, path, headers, JSON or text
# body), the response is the task's result, 404 is dead at once, 503 with
# Retry-After is retried no sooner than asked and dead after max_attempts, a
# timeout fails with 57014, a body over cachekit.http_max_response_bytes is
# cut and flagged, only members of cachekit_http may enqueue, and
# cachekit.http_allowed_hosts refuses hosts without opening a connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "not ok - $*"; exit 1; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
PY=/usr/bin/python3 # Debian's, whatever python3 comes first on PATH
db=cachekit_task_http
user=fault_http_user   # cachekit_tasks and cachekit_http
plain=fault_http_plain # cachekit_tasks only

dir=$(mktemp -d /tmp/pg_cachekit_task_http.XXXXXX)
server_pid=
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET cachekit.http_allowed_hosts" \
		-c "ALTER SYSTEM RESET cachekit.http_max_response_bytes" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $user" -c "DROP ROLE IF EXISTS $plain" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

$PY test/fault/task_http_server.py "$dir" 2>"$dir/server.err" &
server_pid=$!
for _ in $(seq 1 100); do
	[ -f "$dir/port" ] && break
	sleep 0.05
done
[ -f "$dir/port" ] || fail "the HTTP server did not start: $(cat "$dir/server.err")"
port=$(cat "$dir/port")
base=http://127.0.0.1:$port

dropdb --if-exists "$db" >/dev/null 2>&1
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $user" -c "DROP ROLE IF EXISTS $plain"
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pg_cachekit;
CREATE ROLE $user LOGIN;
CREATE ROLE $plain LOGIN;
GRANT cachekit_tasks, cachekit_http TO $user;
GRANT cachekit_tasks TO $plain;
SQL

q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -c "$1"; }
# enqueue ROLE ARGS_JSON [MORE ENQUEUE ARGUMENTS]: the task id.
enqueue() {
	psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -c "SET ROLE $1" \
		-c "SELECT cachekit.enqueue('default', 'http', \$j\$$2\$j\$::jsonb${3:+, $3})" ||
		{ echo "not ok - enqueue as $1 failed: $2" >&2; exit 1; } # inside $(...): say it on stderr
}
# The SQLSTATE of SQL run as ROLE, or "none".
sqlstate_of() {
	local out
	out=$(psql -X -q -At -d "$db" -v VERBOSITY=verbose -c "SET ROLE $1" -c "$2" 2>&1 || true)
	sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' <<<"$out" | head -1 | grep . || echo none
}
# wait_state ID REGEX [SECONDS]: waits until the task's state matches.
wait_state() {
	local state deadline=$((SECONDS + ${3:-15}))
	while :; do
		state=$(q "SELECT state FROM cachekit.tasks WHERE id = $1")
		[[ $state =~ ^($2)$ ]] && return 0
		[[ $state =~ ^(succeeded|dead|cancelled)$ ]] && fail "task $1 is $state, not $2: $(q "SELECT cachekit.task_status($1)")"
		((SECONDS < deadline)) || fail "task $1 is '$state', not $2, after ${3:-15}s: $(q "SELECT cachekit.task_status($1)")"
		sleep 0.05
	done
}
col() { q "SELECT $2 FROM cachekit.tasks WHERE id = $1"; }
# The requests whose path starts with PREFIX, one JSON object a line.
requests() { jq -c --arg p "$1" 'select(.path | startswith($p))' "$dir/requests.jsonl" 2>/dev/null || true; }
header() { jq -r --arg h "$2" '[.headers[] | select(.[0] | ascii_downcase == $h) | .[1]] | join(",")' <<<"$1"; }
body_of() { jq -r '.body_b64 | @base64d' <<<"$1"; }
connections() { [ -f "$dir/connections.log" ] && wc -l <"$dir/connections.log" || echo 0; }
# A request of our own: the server accepts connections in order, so once it
# answered, every connection opened before it has been counted.
sync_server() {
	$PY -c 'import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
c.request("GET", "/sentinel"); c.getresponse().read()' "$port" || fail "sentinel request failed"
}
# set_setting NAME VALUE: ALTER SYSTEM + reload, then waits until new
# sessions see it. The postmaster signals every child (the executors too)
# before it starts another backend, and an idle executor reloads before it
# claims again.
set_setting() {
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(q "SELECT setting FROM pg_settings WHERE name = '$1'")" = "$2" ] && return 0
		sleep 0.05
	done
	fail "$1 did not become '$2'"
}
# reset_setting NAME: back to its built-in default, waited for like set_setting.
reset_setting() {
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM RESET $1" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(q "SELECT setting = boot_val FROM pg_settings WHERE name = '$1'")" = t ] && return 0
		sleep 0.05
	done
	fail "$1 was not reset"
}
set_setting cachekit.http_allowed_hosts loopback

# 1. Only members of cachekit_http may enqueue http tasks.
code=$(sqlstate_of "$plain" "SELECT cachekit.enqueue('default', 'http', '{\"url\": \"$base/json?tag=plain\"}')")
[ "$code" = 42501 ] || fail "a role without cachekit_http enqueued an http task (SQLSTATE $code)"
[ "$(q "SELECT count(*) FROM cachekit._tasks")" = 0 ] || fail "a refused enqueue left a task row"
echo "ok - a role that is only in cachekit_tasks cannot enqueue http tasks (42501)"

# 2. GET with headers: the request as sent, the response as the result.
id=$(enqueue "$user" "{\"url\": \"$base/json?tag=get&x=%C3%A9\", \"method\": \"GET\",
  \"headers\": {\"X-Fault\": \"get-1\", \"Accept\": \"application/json\", \"X-Unicode\": \"ok\"}}")
wait_state "$id" succeeded
req=$(requests "/json?tag=get")
[ "$(wc -l <<<"$req")" = 1 ] || fail "GET: expected one request, got: $req"
[ "$(jq -r .method <<<"$req")" = GET ] || fail "GET arrived as $(jq -r .method <<<"$req")"
[ "$(jq -r .path <<<"$req")" = "/json?tag=get&x=%C3%A9" ] || fail "GET path: $(jq -r .path <<<"$req")"
[ "$(header "$req" x-fault)" = get-1 ] || fail "GET: X-Fault header: $req"
[ "$(header "$req" accept)" = application/json ] || fail "GET: Accept header: $req"
[ "$(header "$req" host)" = "127.0.0.1:$port" ] || fail "GET: Host header: $req"
[ -z "$(body_of "$req")" ] || fail "GET sent a body: $req"
result=$(col "$id" result)
[ "$(jq -r .status <<<"$result")" = 200 ] || fail "GET result status: $result"
[ "$(jq -r .truncated <<<"$result")" = false ] || fail "GET result truncated: $result"
[ "$(jq -c '.body | fromjson' <<<"$result")" = '{"hello":"world","n":42}' ] || fail "GET result body: $result"
[ "$(jq -r '.headers["X-Served-By"]' <<<"$result")" = fault-http ] || fail "GET result headers: $result"
[ "$(jq -r '.headers["Content-Type"]' <<<"$result")" = application/json ] || fail "GET result Content-Type: $result"
# task_result(), as the enqueuer, is the same.
[ "$(psql -X -q -At -d "$db" -c "SET ROLE $user" -c "SELECT cachekit.task_result($id) = (SELECT result FROM cachekit.tasks WHERE id = $id)")" = t ] ||
	fail "task_result($id) differs from the stored result"
echo "ok - GET with headers reaches the server as sent; status, headers and body are the result"

# 3. POST with a JSON object body: sent as JSON, Content-Type application/json.
id=$(enqueue "$user" "{\"url\": \"$base/echo?tag=post-object\", \"method\": \"POST\",
  \"headers\": {\"X-Fault\": \"post-object\"}, \"body\": {\"name\": \"Grüße 🎉\", \"list\": [1, 2.5, null, true]}}")
wait_state "$id" succeeded
req=$(requests "/echo?tag=post-object")
[ "$(wc -l <<<"$req")" = 1 ] || fail "POST object: expected one request, got: $req"
[ "$(jq -r .method <<<"$req")" = POST ] || fail "POST object arrived as $(jq -r .method <<<"$req")"
[ "$(header "$req" content-type)" = application/json ] || fail "POST object: Content-Type: $req"
[ "$(header "$req" x-fault)" = post-object ] || fail "POST object: X-Fault: $req"
[ "$(body_of "$req" | jq -cS .)" = '{"list":[1,2.5,null,true],"name":"Grüße 🎉"}' ] ||
	fail "POST object body arrived as: $(body_of "$req")"
[ "$(col "$id" "result->>'body'" | jq -cS .)" = '{"list":[1,2.5,null,true],"name":"Grüße 🎉"}' ] ||
	fail "POST object: echoed body in the result: $(col "$id" result)"
# An explicit Content-Type is kept.
id=$(enqueue "$user" "{\"url\": \"$base/echo?tag=post-typed\", \"method\": \"PUT\",
  \"headers\": {\"content-type\": \"application/vnd.fault+json\"}, \"body\": [1, \"two\"]}")
wait_state "$id" succeeded
req=$(requests "/echo?tag=post-typed")
[ "$(jq -r .method <<<"$req")" = PUT ] || fail "PUT arrived as $(jq -r .method <<<"$req")"
[ "$(header "$req" content-type)" = application/vnd.fault+json ] || fail "PUT: Content-Type replaced: $req"
[ "$(body_of "$req" | jq -c .)" = '[1,"two"]' ] || fail "PUT array body: $(body_of "$req")"
echo "ok - POST/PUT with a JSON object or array body: sent as JSON, Content-Type application/json unless given"

# 4. POST with a string body: the exact bytes, the given Content-Type.
text=$'line one, «quoted» ✓\nline "two"\ttab\\'
id=$(enqueue "$user" "$(jq -cn --arg url "$base/echo?tag=post-text" --arg b "$text" \
	'{url: $url, method: "POST", headers: {"Content-Type": "text/plain; charset=utf-8", "X-Fault": "post-text"}, body: $b}')")
wait_state "$id" succeeded
req=$(requests "/echo?tag=post-text")
[ "$(wc -l <<<"$req")" = 1 ] || fail "POST text: expected one request, got: $req"
[ "$(header "$req" content-type)" = "text/plain; charset=utf-8" ] || fail "POST text: Content-Type: $req"
[ "$(body_of "$req")" = "$text" ] || fail "POST text body arrived as: $(body_of "$req")"
[ "$(jq -r .body_b64 <<<"$req")" = "$(printf '%s' "$text" | base64 -w0)" ] || fail "POST text: bytes differ"
[ "$(col "$id" "result->>'body'")" = "$text" ] || fail "POST text: result body: $(col "$id" result)"
echo "ok - POST with a string body sends exactly its bytes"

# 5. 404: dead at once, the response kept.
id=$(enqueue "$user" "{\"url\": \"$base/notfound?tag=404\"}")
wait_state "$id" dead
[ "$(col "$id" attempts)" = 1 ] || fail "404: attempts $(col "$id" attempts)"
[ "$(col "$id" "result->>'status'")" = 404 ] || fail "404: result $(col "$id" result)"
[ "$(col "$id" "result->>'body'")" = "no such thing here" ] || fail "404: result body $(col "$id" result)"
[ "$(col "$id" "last_error->>'sqlstate'")" = 58000 ] || fail "404: last_error $(col "$id" last_error)"
[ "$(requests "/notfound?tag=404" | wc -l)" = 1 ] || fail "404: the server saw $(requests "/notfound?tag=404" | wc -l) requests"
echo "ok - a 404 is dead after one attempt with the response stored"

# 6. 503 with Retry-After: 2: failed, retried no sooner than 2 s later, then
#    dead after max_attempts 2. (The backoff alone would retry after ~1 s.)
id=$(enqueue "$user" "{\"url\": \"$base/busy?tag=503\"}" "max_attempts => 2")
wait_state "$id" failed
[ "$(col "$id" attempts)" = 1 ] || fail "503: attempts $(col "$id" attempts)"
[ "$(col "$id" "last_error->>'sqlstate'")" = 58000 ] || fail "503: last_error $(col "$id" last_error)"
[ "$(col "$id" "result->>'status'")" = 503 ] || fail "503: result $(col "$id" result)"
[ "$(col "$id" "result->'headers'->>'Retry-After'")" = 2 ] || fail "503: result headers $(col "$id" result)"
run_at=$(col "$id" "extract(epoch FROM run_at)")
t1=$(requests "/busy?tag=503" | head -1 | jq -r .t)
awk -v r="$run_at" -v t="$t1" 'BEGIN { exit !(r - t >= 1.95 && r - t <= 3) }' ||
	fail "503: retry planned $(awk -v r="$run_at" -v t="$t1" 'BEGIN { print r - t }') s after the request, Retry-After said 2"
wait_state "$id" dead 10
[ "$(col "$id" attempts)" = 2 ] || fail "503: dead after $(col "$id" attempts) attempts"
mapfile -t times < <(requests "/busy?tag=503" | jq -r .t)
((${#times[@]} == 2)) || fail "503: the server saw ${#times[@]} requests, want 2"
awk -v a="${times[0]}" -v b="${times[1]}" -v r="$run_at" 'BEGIN { exit !(b >= r - 0.01 && b - a >= 1.95 && b - a < 6) }' ||
	fail "503: second request $(awk -v a="${times[0]}" -v b="${times[1]}" 'BEGIN { print b - a }') s after the first, want 2 s (Retry-After)"
echo "ok - a 503 with Retry-After: 2 is retried after 2 s ($(awk -v a="${times[0]}" -v b="${times[1]}" 'BEGIN { printf "%.2f", b - a }') s), dead after max_attempts 2"

# 7. Timeouts: timeout_ms in the arguments, and the task's own timeout.
#    The server answers 4 s after a request arrives: failed in under 3.5 s
#    from before the enqueues, they did not wait for it (in milliseconds:
#    SECONDS counts whole seconds).
start_ms=$(date +%s%3N)
id1=$(enqueue "$user" "{\"url\": \"$base/slow?tag=timeout-arg&ms=4000\", \"timeout_ms\": 500}" "max_attempts => 3")
id2=$(enqueue "$user" "{\"url\": \"$base/slow?tag=timeout-task&ms=4000\"}" "max_attempts => 3, timeout => '400 ms'")
wait_state "$id1" failed 10
wait_state "$id2" failed 10
elapsed_ms=$(($(date +%s%3N) - start_ms))
((elapsed_ms < 3500)) || fail "timeouts: the tasks failed only after ${elapsed_ms} ms, the server answers after 4000 ms"
for id in "$id1" "$id2"; do
	[ "$(col "$id" "last_error->>'sqlstate'")" = 57014 ] || fail "timeout: task $id last_error $(col "$id" last_error)"
	q "SELECT cachekit.cancel_task($id)" >/dev/null
done
[ "$(requests "/slow?tag=timeout-arg" | wc -l)" -ge 1 ] || fail "timeout: the slow request never arrived"
echo "ok - a request slower than timeout_ms or the task's timeout fails with 57014"

# 7b. cancel_task of a running http task: the exchange is not interrupted
#     (README, Known limits), its attempt is recorded as cancelled once it
#     ends, and the request is not sent again. (The pending cancel used to
#     abort that recording: the attempt was lost and the task ran twice.)
id=$(enqueue "$user" "{\"url\": \"$base/slow?tag=cancel-running&ms=1500\"}" "max_attempts => 3")
deadline=$((SECONDS + 15))
until [ "$(requests "/slow?tag=cancel-running" | wc -l)" -ge 1 ]; do
	((SECONDS < deadline)) || fail "cancel: the request never arrived: $(q "SELECT cachekit.task_status($id)")"
	sleep 0.05
done
[ "$(q "SELECT cachekit.cancel_task($id)")" = cancelling ] || fail "cancel: a running http task was not 'cancelling'"
deadline=$((SECONDS + 15))
until [ "$(col "$id" state)" = cancelled ]; do
	((SECONDS < deadline)) || fail "cancel: task $id is $(col "$id" state) after 15 s: $(q "SELECT cachekit.task_status($id)")"
	sleep 0.05
done
sleep 2 # a second attempt would have started by now (first retry: about 1 s)
[ "$(col "$id" "state || ' ' || attempts")" = "cancelled 1" ] ||
	fail "cancel: task $id is $(col "$id" "state || ' ' || attempts") (want cancelled after 1 attempt)"
[ "$(requests "/slow?tag=cancel-running" | wc -l)" = 1 ] ||
	fail "cancel: the server got $(requests "/slow?tag=cancel-running" | wc -l) requests of a cancelled task"
echo "ok - cancel_task of a running http task: cancelled after its exchange, 1 attempt, 1 request"

# 8. A body over cachekit.http_max_response_bytes is cut and flagged; a body
#    that is not text (NUL, invalid UTF-8) is kept as base64; a cut through a
#    two-byte character drops that character (jsonb holds valid text only).
set_setting cachekit.http_max_response_bytes 1001
id1=$(enqueue "$user" "{\"url\": \"$base/big?tag=big&n=5000\"}")
id2=$(enqueue "$user" "{\"url\": \"$base/big?tag=small&n=1001\"}")
id3=$(enqueue "$user" "{\"url\": \"$base/big?tag=utf8&kind=utf8&n=3000\"}")
id4=$(enqueue "$user" "{\"url\": \"$base/big?tag=binary&kind=binary&n=600\"}")
for id in "$id1" "$id2" "$id3" "$id4"; do wait_state "$id" succeeded; done
[ "$(col "$id1" "result->>'truncated'")" = true ] || fail "5000-byte body not flagged truncated: $(col "$id1" "result - 'body'")"
[ "$(col "$id1" "octet_length(result->>'body')")" = 1001 ] || fail "truncated body has $(col "$id1" "octet_length(result->>'body')") bytes, want 1001"
[ "$(col "$id1" "result->>'body' = left(repeat('0123456789', 101), 1001)")" = t ] || fail "truncated body is not the first 1001 bytes"
[ "$(col "$id2" "result->>'truncated'")" = false ] || fail "a body of exactly the limit was flagged truncated"
[ "$(col "$id2" "octet_length(result->>'body')")" = 1001 ] || fail "a body of exactly the limit was cut"
[ "$(col "$id3" "result->>'truncated'")" = true ] || fail "UTF-8 body not flagged truncated"
[ "$(col "$id3" "result->>'body' = repeat('é', 500)")" = t ] ||
	fail "a UTF-8 body cut at 1001 bytes is not 500 whole characters: $(col "$id3" "octet_length(result->>'body')") bytes"
[ "$(col "$id4" "attempts || ' ' || (result->'body' = 'null') || ' ' || (result->>'truncated')")" = "1 true false" ] ||
	fail "binary body: $(col "$id4" "attempts || ' ' || (result - 'body_base64')")"
expected=$($PY -c 'import base64; print(base64.b64encode((bytes(range(256)) * 3)[:600]).decode())')
[ "$(col "$id4" "result->>'body_base64'")" = "$expected" ] || fail "binary body: body_base64 is not the bytes sent"
echo "ok - a body over cachekit.http_max_response_bytes is cut to it and flagged truncated; a binary body is kept as body_base64"
reset_setting cachekit.http_max_response_bytes

# 9. The allow-list, on an address literal and on names, without connecting.
refused() { # URL: dead with 42501, and not one connection opened
	local before id
	sync_server
	before=$(connections)
	id=$(enqueue "$user" "{\"url\": \"$1\"}")
	wait_state "$id" dead
	[ "$(col "$id" "last_error->>'sqlstate'")" = 42501 ] || fail "$1 under $(q "SHOW cachekit.http_allowed_hosts"): $(col "$id" last_error)"
	[ "$(col "$id" attempts)" = 1 ] || fail "a refused host was tried $(col "$id" attempts) times"
	sync_server
	[ "$(connections)" = $((before + 1)) ] ||
		fail "$1 under $(q "SHOW cachekit.http_allowed_hosts"): $(($(connections) - before - 1)) connection(s) reached the server"
}
allowed() { # URL: succeeds and reaches the server
	local id tag=allow-$RANDOM
	id=$(enqueue "$user" "{\"url\": \"$1?tag=$tag\"}")
	wait_state "$id" succeeded
	[ "$(requests "/json?tag=$tag" | wc -l)" = 1 ] || fail "$1 under $(q "SHOW cachekit.http_allowed_hosts") did not reach the server"
}
allowed "$base/json"
set_setting cachekit.http_allowed_hosts 10.0.0.0/8
refused "$base/json?tag=cidr"
set_setting cachekit.http_allowed_hosts loopback
refused "http://localhost:$port/json?tag=name-not-listed"
# A name entry alone does not open internal addresses (DNS rebinding): the
# check runs on the resolved address, at connect time.
set_setting cachekit.http_allowed_hosts localhost
refused "http://localhost:$port/json?tag=name-to-loopback"
set_setting cachekit.http_allowed_hosts "localhost, loopback"
allowed "http://localhost:$port/json"
[ -z "$(requests "/json?tag=cidr")$(requests "/json?tag=name-")" ] || fail "a refused request reached the server"
echo "ok - cachekit.http_allowed_hosts: 127.0.0.1 under loopback; refused (42501, no connection) under 10.0.0.0/8; localhost only when listed by name and its address allowed"
