#!/usr/bin/env bash
# The HTTP metrics endpoint (cachekit.metrics_listen, issue 10) against slow,
# malformed, greedy and many clients; the endpoint's limits are
# core/http_endpoint.h's: 8 kB request head, 2 s to send it, 16 connections.
#  a. a client that sends half a request line and waits does not hold up a
#     normal scrape, and is answered 408 (or closed) after the request timeout;
#  b. a request head over 8 kB gets 431;
#  c. POST gets 405 with Allow, an unknown path 404, HEAD 200 without a body;
#  d. more idle connections than the cap: the extra ones get 503 (or a reset),
#     the others 408, and once they are gone the endpoint serves again;
#  e. 50 scrapes, 16 at a time, all get 200 and a whole exposition, while
#     SELECT 1 keeps answering;
#  f. SELECT 1 answers throughout;
#  g. scrapes one after another are not each held up by the relays' once a
#     second publishing.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_metrics_clients
source test/fault/lib_metrics.bash
work=$(mktemp -d)
cleanup() {
	rm -rf "$work"
	metrics_cleanup
}
trap cleanup EXIT
command -v curl >/dev/null || { echo "# curl is not installed"; exit 77; }
started=$SECONDS

dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
endpoint_on
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
expect_series "cachekit_worker_up{database=\"$db\",worker=\"relay\"}" 1 30

# SELECT 1 through a new connection, within 5 s.
select1() { timeout 5 psql -X -q -At -d "$db" -c "SELECT 1" 2>/dev/null | grep -qx 1; }
# Raw clients: python3 - $port MODE ...; prints one line of results.
raw() {
	python3 - "$mport" "$@" <<'PY'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]

def status_of(s, timeout):
    """First status code the server sends, 'reset' or 'closed' (EOF before a status line),
    'silent' (nothing within timeout)."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return "silent"
    except ConnectionResetError:
        return "reset"
    if not data:
        return "closed"
    parts = data.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "garbage"

if mode == "slow":
    # Half a request line, then nothing: the status and how long it took.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /metr")
    t0 = time.monotonic()
    st = status_of(s, 10)
    print(st, round(time.monotonic() - t0, 2))
elif mode == "idle":
    # n connections that send nothing, opened together; each one's fate.
    n = int(sys.argv[3])
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    t0 = time.monotonic()
    fates = [status_of(s, 8) for s in socks]
    for s in socks:
        s.close()
    print(" ".join(sorted(fates)), round(time.monotonic() - t0, 2))
elif mode == "head":
    # HEAD /metrics: the status and the bytes after the headers (none expected).
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    print(head.split(b" ")[1].decode(), len(body))
PY
}

# ---- a. a slow client ---------------------------------------------------------------------
raw slow >"$work/slow" &
slow_pid=$!
sleep 0.3
t0=$(date +%s%N)
code=$(get /metrics)
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$code" = 200 ] || fail "a scrape next to a slow client answered $code"
((ms < 5000)) || fail "a scrape next to a slow client took $ms ms"
select1 || fail "SELECT 1 failed next to a slow client"
wait "$slow_pid" || fail "the slow client's script failed"
read -r st secs <"$work/slow"
case $st in 408 | closed | reset) ;; *) fail "the slow client got '$st' after $secs s, expected 408 or a close" ;; esac
python3 -c "import sys; sys.exit(0 if 1.5 <= float(sys.argv[1]) <= 6 else 1)" "$secs" ||
	fail "the slow client was answered after $secs s, expected about the 2 s request timeout"
echo "ok - a half-sent request does not hold up a scrape (200 in $ms ms); it got $st after $secs s"

# ---- b, c. size limit, methods, paths -----------------------------------------------------
pad=$(head -c 9000 /dev/zero | tr '\0' a)
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "X-Pad: $pad" "$base/metrics")
[ "$code" = 431 ] || fail "a 9 kB request head got $code, expected 431"
many=()
for i in $(seq 40); do many+=(-H "X-Pad-$i: ${pad:0:250}"); done
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "${many[@]}" "$base/metrics")
[ "$code" = 431 ] || fail "40 headers of 250 bytes got $code, expected 431"
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "X-Pad: ${pad:0:4000}" "$base/metrics")
[ "$code" = 200 ] || fail "a 4 kB request head got $code, expected 200"
echo "ok - request heads over 8 kB get 431, a 4 kB one 200"

code=$(curl -sS --max-time 5 -o /dev/null -D "$work/h" -w '%{http_code}' -X POST --data 'x=1' "$base/metrics")
[ "$code" = 405 ] || fail "POST /metrics got $code, expected 405"
grep -qi '^Allow: GET, HEAD' "$work/h" || fail "the 405 has no Allow header: $(tr -d '\r' <"$work/h" | tr '\n' '|')"
code=$(get /nope)
[ "$code" = 404 ] || fail "GET /nope got $code, expected 404"
read -r code body <<<"$(raw head)"
[ "$code" = 200 ] && [ "$body" = 0 ] || fail "HEAD /metrics got $code with $body body bytes"
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "$base/metrics?x=1")
[ "$code" = 200 ] || fail "GET /metrics?x=1 got $code"
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' --http1.0 "$base/health")
[ "$code" = 200 ] || fail "HTTP/1.0 GET /health got $code"
select1 || fail "SELECT 1 failed after the malformed requests"
echo "ok - POST 405 (Allow: GET, HEAD), unknown path 404, HEAD 200 without a body"

# ---- d. more idle connections than the cap ------------------------------------------------
fates=$(raw idle 24)
read -r -a f <<<"$fates"
n408=0 nrej=0
for x in "${f[@]:0:24}"; do
	case $x in 408) n408=$((n408 + 1)) ;; 503 | reset | closed) nrej=$((nrej + 1)) ;; esac
done
[ "$n408" = 16 ] && [ "$nrej" = 8 ] || fail "24 idle connections: ${f[*]:0:24} (in ${f[24]} s), expected 16 × 408 and 8 × 503/reset"
serves() { [ "$(get /metrics)" = 200 ]; }
t0=$(date +%s%N)
wait_for 3 "the endpoint to serve again after the idle connections" serves
select1 || fail "SELECT 1 failed after the idle connections"
echo "ok - 24 idle connections: 8 over the cap refused at once, 16 timed out (408); then scrapes get 200 again"

# ---- e. many scrapes at once --------------------------------------------------------------
seq 50 | xargs -P 16 -I{} sh -c "curl -s --max-time 20 -o '$work/m{}' -w '%{http_code}' '$base/metrics' >'$work/c{}'" &
burst=$!
t0=$SECONDS
slowest=0
while kill -0 "$burst" 2>/dev/null; do
	s0=$(date +%s%N)
	select1 || fail "SELECT 1 failed during 50 concurrent scrapes"
	s=$((($(date +%s%N) - s0) / 1000000))
	((s > slowest)) && slowest=$s
	sleep 0.1
done
wait "$burst" || true
bad=
for i in $(seq 50); do
	c=$(cat "$work/c$i" 2>/dev/null || echo none)
	if [ "$c" != 200 ] || ! grep -qx 'cachekit_up 1' "$work/m$i" || ! grep -q "^cachekit_component_status" "$work/m$i"; then
		bad+=" $i:$c"
	fi
done
[ -z "$bad" ] || fail "scrapes that did not get 200 and a whole exposition (n:status):$bad"
if command -v promtool >/dev/null; then
	out=$(promtool check metrics <"$work/m50" 2>&1) && [ -z "$out" ] || fail "promtool on a concurrent scrape: $out"
fi
echo "ok - 50 scrapes, 16 at a time: all 200 with a whole exposition in $((SECONDS - t0)) s; SELECT 1 meanwhile took at most $slowest ms"

# ---- g. scrapes one after another ---------------------------------------------------------
t0=$(date +%s%N)
for i in $(seq 20); do
	code=$(get /metrics)
	[ "$code" = 200 ] || fail "scrape $i of 20 in a row got $code"
done
ms=$((($(date +%s%N) - t0) / 1000000))
((ms < 6000)) || fail "20 scrapes in a row took $ms ms: each waited for a snapshot the relay would not publish within its once a second (10 s or more)"
echo "ok - 20 scrapes in a row took $ms ms"

echo "# metrics_clients.sh took $((SECONDS - started)) s"
