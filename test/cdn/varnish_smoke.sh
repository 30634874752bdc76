#!/usr/bin/env bash
# Varnish 7.1 with test/cdn/varnish.vcl purges the way pg_cachekit's http
# provider asks it to: an object is fetched from the origin once, and again
# only after a PURGE, a BAN of its URL, of a prefix of it, of one of its tags,
# or of everything. Requests from another address than 127.0.0.1 are refused.
#
#   test/cdn/varnish_smoke.sh
#
# Needs varnishd (Debian package varnish), curl and /usr/bin/python3.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=varnish.bash
. "$here/varnish.bash"

work=$(mktemp -d /tmp/cdn_varnish_smoke.XXXXXX)
chmod 755 "$work" # varnishd's jail users must reach the instance below it
origin_pid=
cleanup() {
	stop_varnish "$work/varnish"
	if [[ -n $origin_pid ]]; then
		kill "$origin_pid" 2>/dev/null || true
		wait "$origin_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

failures=0
check() { # check NAME EXPECTED ACTUAL
	if [[ $2 == "$3" ]]; then
		echo "ok - $1"
	else
		echo "not ok - $1: expected [$2], got [$3]"
		failures=$((failures + 1))
	fi
}

"$here/origin.py" --port 0 --tags /tagged/=product-42,catalog >"$work/origin.out" 2>"$work/origin.err" &
origin_pid=$!
for ((i = 0; i < 100; i++)); do
	grep -q '^PORT ' "$work/origin.out" 2>/dev/null && break
	sleep 0.05
done
origin_port=$(sed -n 's/^PORT //p' "$work/origin.out")
[[ -n $origin_port ]] || {
	echo "origin did not start: $(cat "$work/origin.err")" >&2
	exit 1
}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_varnish "$port" "$origin_port" "$work/varnish"
V=http://127.0.0.1:$port

counts() { curl -sS "http://127.0.0.1:$origin_port/_origin/counts"; }
served() { # served PATH: how often the origin served PATH
	counts | python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}
get() { curl -sS -o /dev/null "$V$1"; }
# send METHOD PATH [curl args] -> the status line's code and reason ("200 Purged")
send() {
	local method=$1 path=$2
	shift 2
	curl -sS -X "$method" "$V$path" "$@" | sed -n 's:.*<title>\(.*\)</title>.*:\1:p'
}

# PURGE
get /img/a.png
get /img/a.png
check "GET twice: one origin fetch" 1 "$(served /img/a.png)"
check "PURGE answers" "200 Purged" "$(send PURGE /img/a.png)"
get /img/a.png
check "after PURGE: fetched again" 2 "$(served /img/a.png)"
check "PURGE of an uncached path is 200 too" "200 Purged" "$(send PURGE /never/cached)"

# The ACL: only 127.0.0.1 and ::1 may purge (127.0.0.2 is loopback too).
check "PURGE from 127.0.0.2 is refused" "405 Not allowed" \
	"$(send PURGE /img/a.png --interface 127.0.0.2)"
get /img/a.png
check "refused PURGE purged nothing" 2 "$(served /img/a.png)"

# BAN of one URL, exactly
for p in "/p?x=1" "/p?x=10"; do get "$p" && get "$p"; done
check "BAN of a URL" "200 Banned" "$(send BAN "/p?x=1")"
for p in "/p?x=1" "/p?x=10"; do get "$p"; done
check "BAN of a URL: that URL is fetched again" 2 "$(served "/p?x=1")"
check "BAN of a URL: not a longer one" 1 "$(served "/p?x=10")"

# BAN of a prefix ("/img.v2/*"): the '.' is a dot, not any character
for p in /img.v2/a /img.v2/b/c /imgXv2/a; do get "$p" && get "$p"; done
check "BAN of a prefix" "200 Banned" "$(send BAN /img.v2/ -H 'X-Ban-Prefix: 1')"
for p in /img.v2/a /img.v2/b/c /imgXv2/a; do get "$p"; done
check "BAN of a prefix: under it (1)" 2 "$(served /img.v2/a)"
check "BAN of a prefix: under it (2)" 2 "$(served /img.v2/b/c)"
check "BAN of a prefix: not a regex match" 1 "$(served /imgXv2/a)"

# BAN of a tag: by Surrogate-Key, whole tags only
for p in /tagged/a "/q?tags=x,product-42" "/q?tags=product-421"; do get "$p" && get "$p"; done
check "BAN of a tag" "200 Banned" "$(send BAN / -H 'X-Purge-Tag: product-42')"
for p in /tagged/a "/q?tags=x,product-42" "/q?tags=product-421"; do get "$p"; done
check "BAN of a tag: tagged by rule" 2 "$(served /tagged/a)"
check "BAN of a tag: one of two tags" 2 "$(served "/q?tags=x,product-42")"
check "BAN of a tag: not a longer tag" 1 "$(served "/q?tags=product-421")"

# What cannot be expressed safely is refused, not banned wrongly.
check "BAN with a character the VCL cannot match" "400 Cannot ban that" \
	"$(send BAN / -H 'X-Purge-Tag: a|b')"

# BAN of everything
before=$(served /imgXv2/a)
check "BAN of everything" "200 Banned" "$(send BAN / -H 'X-Ban-Prefix: 1')"
get /imgXv2/a
get /img/a.png
check "BAN of everything: fetched again (1)" $((before + 1)) "$(served /imgXv2/a)"
check "BAN of everything: fetched again (2)" 3 "$(served /img/a.png)"

if ((failures > 0)); then
	echo "$failures check(s) failed"
	exit 1
fi
echo "all Varnish checks passed"
