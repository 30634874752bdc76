# Shared by the CDN fault scripts (cdn_*.sh); sourced after lib_tasks.bash.
#
# A test CA (test/cdn/make_test_ca.sh) in a directory the server's OS user
# can read, the fakes started on loopback with --port 0, secret files owned
# by the server's user, and waits on cachekit.cdn_requests.
: "${db:?set db before sourcing lib_cdn.bash}"
PY=/usr/bin/python3 # Debian's python3-botocore, whatever python3 is first on PATH
cdn_dir=$(mktemp -d /tmp/pg_cachekit_cdn.XXXXXX)
chmod 755 "$cdn_dir"
fake_pids=()

cdn_ca() {
	test/cdn/make_test_ca.sh "$cdn_dir/tls" >/dev/null
	chmod 755 "$cdn_dir/tls"
	chmod 644 "$cdn_dir/tls/ca.pem"
}

# start_fake NAME COMMAND...: runs a fake that prints "PORT n" first; sets
# fake_port. Its stdout/stderr go to $cdn_dir/NAME.out.
start_fake() {
	local name=$1
	shift
	"$@" >"$cdn_dir/$name.out" 2>&1 &
	fake_pids+=($!)
	local deadline=$((SECONDS + 15))
	until grep -q '^PORT ' "$cdn_dir/$name.out" 2>/dev/null; do
		((SECONDS < deadline)) || fail "fake $name did not start: $(cat "$cdn_dir/$name.out")"
		sleep 0.05
	done
	fake_port=$(sed -n 's/^PORT //p' "$cdn_dir/$name.out" | head -1)
}

# A file only the server's OS user can read (what secret files must be).
secret_file() { # $1: path, $2: content
	printf '%s\n' "$2" >"$1"
	chmod 600 "$1"
	if [ "$(id -u)" -eq 0 ]; then chown postgres "$1"; fi
}

# curl to a fake's control API over TLS with the test CA.
fake_api() { # $1: port, $2: method, $3: path, [$4: JSON body]
	curl -sS --fail --cacert "$cdn_dir/tls/ca.pem" -X "$2" ${4:+-H 'Content-Type: application/json' -d "$4"} \
		"https://127.0.0.1:$1$3"
}

# States of a request's rows in cdn_requests ("provider:state" a line).
request_states() { q "SELECT string_agg(provider || ':' || state, ' ' ORDER BY provider) FROM cachekit.cdn_requests WHERE request_id = $1"; }
request_done() { # $1: request id, $2: wanted state of every provider row
	[ "$(q "SELECT count(*) FILTER (WHERE state <> '$2') || '/' || count(*) FROM cachekit.cdn_requests WHERE request_id = $1")" = "0/$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $1")" ] &&
		[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $1")" != "0" ]
}
wait_request() { # $1: request id, $2: state, $3: seconds
	wait_for "${3:-30}" "request $1 to be $2 (now: $(request_states "$1"); batches: $(batch_summary))" request_done "$1" "$2"
}
batch_summary() {
	q "SELECT coalesce(string_agg(provider || '#' || id || ':' || state || '/' || attempts || coalesce(' ' || left(last_error, 80), ''), ', ' ORDER BY id), 'none') FROM (SELECT * FROM cachekit._cdn_batches ORDER BY id DESC LIMIT 8) b" 2>&1 || true
}

cdn_cleanup() {
	local p
	for p in "${fake_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$cdn_dir"
}
