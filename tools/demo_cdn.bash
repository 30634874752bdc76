#!/usr/bin/env bash
# The web side of tools/demo's CDN section, run from its psql session with \!
# so that each request shows up between the SQL it depends on:
#
#   tools/demo_cdn.bash get PATH N      GET PATH through Varnish, print whether
#                                       Varnish had it cached; the origin must
#                                       have served PATH N times by then
#   tools/demo_cdn.bash wait-config on|off
#                                       until a new connection sees the CDN
#                                       settings on (as tools/demo sets them) or off
#   tools/demo_cdn.bash wait-purges     until every purge request is completed
#
# tools/demo exports CACHEKIT_DEMO_VARNISH_PORT, CACHEKIT_DEMO_ORIGIN_PORT and
# CACHEKIT_DEMO_CDN_DIR. psql 15 ignores the exit status of \!, so a failed
# check also writes CACHEKIT_DEMO_CDN_DIR/failed, which tools/demo looks at
# after the session.
set -euo pipefail

varnish=${CACHEKIT_DEMO_VARNISH_PORT:?run by tools/demo}
origin=${CACHEKIT_DEMO_ORIGIN_PORT:?run by tools/demo}
dir=${CACHEKIT_DEMO_CDN_DIR:?run by tools/demo}

fail() {
	echo "demo_cdn: $*" | tee -a "$dir/failed" >&2
	exit 1
}
q() { psql -X -q -At -v ON_ERROR_STOP=1 -c "$1"; }
# Polls the function $3 every 0.1 s for up to $1 seconds.
wait_until() { # $1: seconds, $2: what, $3: function
	local deadline=$((SECONDS + $1))
	until "$3"; do
		((SECONDS < deadline)) || fail "timed out after $1 s waiting for $2"
		sleep 0.1
	done
}
served() { # times the origin served $1 (its counts: {"/path": n, ...})
	local counts
	counts=$(curl -sS --fail --max-time 5 "http://127.0.0.1:$origin/_origin/counts") || fail "the origin does not answer"
	if [[ $counts =~ "\"$1\": "([0-9]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo 0; fi
}

case ${1:-} in
get)
	path=${2:?get PATH N} want=${3:?get PATH N}
	x_cache=$(curl -sS --fail --max-time 5 -o /dev/null -w '%header{x-cache}' "http://127.0.0.1:$varnish$path") ||
		fail "GET $path through Varnish failed"
	n=$(served "$path")
	case $x_cache in
	HIT) from="from Varnish's cache" ;;
	*) from="fetched from the origin" ;;
	esac
	printf 'GET %s through Varnish: %s, %s (origin count: %s)\n' "$path" "$x_cache" "$from" "$n"
	[ "$n" = "$want" ] || fail "the origin served $path $n times, expected $want"
	;;
wait-config)
	case ${2:-} in
	on) want="on|http://127.0.0.1:$varnish" ;;
	off) want="off|" ;;
	*) fail "wait-config on|off" ;;
	esac
	config_is() { [ "$(q "SELECT current_setting('cachekit.cdn_enabled') || '|' || current_setting('cachekit.cdn_http_purge_url')")" = "$want" ]; }
	wait_until 10 "the CDN settings to be $2 after the reload" config_is
	;;
wait-purges)
	# A purge request is sent after its commit by a dispatch task that the
	# server's task executors run; a failed one does not come back.
	purges_done() {
		local states
		states=$(q "SELECT string_agg(DISTINCT state, ',') FROM cachekit.cdn_requests")
		[[ ,$states, != *,failed,* ]] || fail "a purge failed: $(q "SELECT string_agg(request_id || ': ' || last_error, '; ') FROM cachekit.cdn_requests WHERE state = 'failed'")"
		[ "$states" = completed ]
	}
	wait_until 20 "the purge requests to complete" purges_done
	;;
*)
	echo "usage: tools/demo_cdn.bash get PATH N | wait-config on|off | wait-purges" >&2
	exit 2
	;;
esac
