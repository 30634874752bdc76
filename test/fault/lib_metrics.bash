# Shared by the metrics endpoint's fault scripts (metrics_*.sh); sourced, not
# run (named .bash so that tools/run-tests does not take it for a fault script).
#
# The sourcing script sets `db` before calling anything here, and
# `set -euo pipefail` itself. cachekit.metrics_listen is postmaster-level:
# endpoint_on sets it with ALTER SYSTEM and restarts the sandbox's server,
# metrics_cleanup (call it from the EXIT trap) resets it and restarts again,
# so the scripts after this one see the sandbox as it was.
: "${db:?set db before sourcing lib_metrics.bash}"
# q, qdb, fail, wait_for, as_postgres, server_up, bindir, data_dir.
source "$(dirname "${BASH_SOURCE[0]}")/lib_tasks.bash"
relay_type='pg_cachekit outbox relay'
mport=
base=
scrape_file=$(mktemp)

restart_server() {
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -m fast -w stop >/dev/null 2>&1 || true
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null
	wait_for 30 "the server to accept connections" server_up
}

# A TCP port nobody listens on, from below the ephemeral range (as test/sandbox
# picks its own).
free_port() {
	python3 - <<'PY'
import random, socket
for _ in range(1000):
    port = random.randint(20000, 32000)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

endpoint_answers() { curl -s -o /dev/null --max-time 2 "$base/health"; }
endpoint_on() {
	mport=$(free_port)
	base="http://127.0.0.1:$mport"
	qdb postgres "ALTER SYSTEM SET cachekit.metrics_listen = '127.0.0.1:$mport'"
	restart_server
	wait_for 30 "the metrics endpoint on 127.0.0.1:$mport" endpoint_answers
}

metrics_cleanup() {
	rm -f "$scrape_file"
	test/sandbox redis-start >/dev/null 2>&1 || true
	if ! server_up; then
		as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null 2>&1 || true
	fi
	dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
	if [ -n "$(qdb postgres "SELECT setting FROM pg_settings WHERE name = 'cachekit.metrics_listen'" 2>/dev/null)" ]; then
		qdb postgres "ALTER SYSTEM RESET cachekit.metrics_listen" >/dev/null 2>&1 || true
		restart_server || true
	fi
}

# GET $1 (a path); the body in $scrape_file, the status code on stdout.
get() { curl -sS --max-time 10 -o "$scrape_file" -w '%{http_code}' "$base$1"; }
# GET /metrics, which must answer 200; the body on stdout.
scrape() {
	local code
	code=$(get /metrics) || fail "GET /metrics failed"
	[ "$code" = "200" ] || fail "GET /metrics answered $code: $(head -c 300 "$scrape_file")"
	cat "$scrape_file"
}
# The value of one series ("name{label=\"v\",...}" exactly as exposed) in the
# exposition on stdin; "absent" when it is not there.
value_of() {
	awk -v s="$1" 'index($0, s " ") == 1 { print $2; found = 1; exit } END { if (!found) print "absent" }'
}
# Values as integers ("2", not "2.0" or "2e+00"); "absent" stays.
int_of() { value_of "$1" | awk '$1 == "absent" { print; next } { printf "%d\n", $1 }'; }

# Scrapes until series $1 reaches at least $2 (a snapshot is published at
# most once a second, so scrapes are 1.1 s apart), then requires exactly $2.
# Fails with the last value after $3 seconds (default 20).
expect_series() {
	local series=$1 want=$2 seconds=${3:-20} got
	local deadline=$((SECONDS + seconds))
	while :; do
		got=$(scrape | int_of "$series")
		[ "$got" != "absent" ] && [ "$got" -ge "$want" ] && break
		((SECONDS < deadline)) || fail "$series is $got after $seconds s, expected $want"
		sleep 1.1
	done
	[ "$got" = "$want" ] || fail "$series is $got, expected exactly $want"
}
