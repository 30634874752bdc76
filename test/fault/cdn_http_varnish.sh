#!/usr/bin/env bash
# CDN purges through a real Varnish 7.1 on loopback (test/cdn/varnish.vcl, the
# http provider's PURGE/BAN convention) in front of a counting origin
# (test/cdn/origin.py): an object cached by Varnish is fetched from the origin
# again only after pg_cachekit purged it.
#   - cdn_purge() with PURGE: the next request is a miss at the origin;
#   - a purge rule (cdn_purge_on): an UPDATE purges the old and the new page
#     at commit, a rolled-back UPDATE purges nothing;
#   - 300 paths: one PURGE each, sent in parallel, all recorded completed;
#   - BAN: a prefix (/img/*) and a tag purge what they cover and nothing else;
#   - Varnish down, then back: the purge is delivered when it returns;
#   - a purge URL whose host cachekit.http_allowed_hosts refuses fails
#     without a connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_cdn_varnish
source test/fault/lib_tasks.bash
source test/fault/lib_cdn.bash
source test/cdn/varnish.bash
cleanup() {
	stop_varnish "$cdn_dir/varnish" 2>/dev/null || true
	reset_gucs
	cdn_cleanup
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT
dropdb --if-exists "$db" >/dev/null 2>&1 || true

start_fake origin "$PY" test/cdn/origin.py --port 0 --tags /shop/=shop
origin=$fake_port
vport=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_varnish "$vport" "$origin" "$cdn_dir/varnish" >/dev/null || fail "varnish did not start"

get() { curl -sS -o /dev/null "http://127.0.0.1:$vport$1"; }
served() { # times the origin served $1
	curl -sS "http://127.0.0.1:$origin/_origin/counts" | $PY -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], 0))' "$1"
}
cached() { # $1: path: fetched through Varnish twice, served by the origin once more than before
	local before
	before=$(served "$1")
	get "$1"
	get "$1"
	[ "$(served "$1")" = $((before + 1)) ] || fail "Varnish did not cache $1 (origin served it $(served "$1") times)"
}

set_guc cachekit.cdn_enabled on
set_guc cachekit.cdn_provider http
set_guc cachekit.cdn_http_purge_url "http://127.0.0.1:$vport"
set_guc cachekit.task_max_backoff 1
setup_task_db
wait_executors 1 30

# PURGE.
cached /a.html
cached /b.html
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/a.html'])")
wait_request "$id" completed 30
get /a.html
get /b.html
[ "$(served /a.html)" = 2 ] || fail "after the purge /a.html was served $(served /a.html) times by the origin, expected 2"
[ "$(served /b.html)" = 1 ] || fail "the purge of /a.html also purged /b.html"
echo "ok - cdn_purge(): Varnish fetches the purged page from the origin again, and only it"

# A purge rule: OLD and NEW pages at commit; nothing for a rollback.
q "CREATE TABLE products (id int PRIMARY KEY, slug text)"
q "INSERT INTO products VALUES (1, 'red')"
q "SELECT cachekit.cdn_purge_on('products', '/p/{slug}.html')" >/dev/null
cached /p/red.html
cached /p/blue.html
q "BEGIN; UPDATE products SET slug = 'blue' WHERE id = 1; ROLLBACK" >/dev/null
q "UPDATE products SET slug = 'blue' WHERE id = 1"
rid=$(q "SELECT max(request_id) FROM cachekit.cdn_requests WHERE source = 'products:/p/{slug}.html'")
wait_request "$rid" completed 30
[ "$(q "SELECT paths FROM cachekit.cdn_requests WHERE request_id = $rid")" = "{/p/blue.html,/p/red.html}" ] ||
	fail "the rule's request: $(q "SELECT paths FROM cachekit.cdn_requests WHERE request_id = $rid")"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE source = 'products:/p/{slug}.html'")" = 1 ] ||
	fail "the rolled-back UPDATE queued a purge"
get /p/red.html
get /p/blue.html
[ "$(served /p/red.html)$(served /p/blue.html)" = 22 ] || fail "the rule did not purge both pages"
echo "ok - a purge rule purges the old and the new page at commit; a rollback purges nothing"

# 300 paths: one PURGE each, in parallel.
id=$(q "SELECT cachekit.cdn_purge(ARRAY(SELECT '/many/' || g FROM generate_series(1, 300) g))")
wait_request "$id" completed 60
[ "$(q "SELECT sum(api_calls) FROM cachekit._cdn_batches b WHERE b.id IN (SELECT batch_id FROM cachekit._cdn_queue WHERE request_id = $id)")" = 300 ] ||
	fail "300 paths took $(q "SELECT sum(api_calls) FROM cachekit._cdn_batches") requests"
echo "ok - 300 paths: 300 PURGE requests, all completed"

# BAN: a prefix and a tag.
set_guc cachekit.cdn_http_method BAN
cached /img/1.png
cached /img/2.png
cached /imgs.html
cached /shop/shoe.html
cached /about.html
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/img/*'])")
wait_request "$id" completed 30
id=$(q "SELECT cachekit.cdn_purge_tags(ARRAY['shop'])")
wait_request "$id" completed 30
for p in /img/1.png /img/2.png /imgs.html /shop/shoe.html /about.html; do get "$p"; done
[ "$(served /img/1.png)$(served /img/2.png)$(served /shop/shoe.html)" = 222 ] || fail "the prefix or tag BAN missed an object"
[ "$(served /imgs.html)$(served /about.html)" = 11 ] || fail "a BAN purged an object it does not cover"
echo "ok - BAN: /img/* and tag shop purge what they cover and nothing else"

# Varnish down, then back on the same port.
cached /later.html
stop_varnish "$cdn_dir/varnish"
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/later.html'])")
wait_for 30 "an attempt while Varnish is down" bash -c "[ \"\$(psql -X -At -d $db -c 'SELECT attempts FROM cachekit.cdn_requests WHERE request_id = $id')\" -ge 1 ]"
[ "$(request_states "$id")" = "http:sent" ] || fail "while Varnish is down the request is $(request_states "$id")"
start_varnish "$vport" "$origin" "$cdn_dir/varnish" >/dev/null || fail "varnish did not start again"
wait_request "$id" completed 60
echo "ok - Varnish down: the purge waits and is delivered when it is back"

# A purge URL the allow-list refuses: failed, nothing connected.
set_guc cachekit.http_allowed_hosts 10.9.9.9
id=$(q "SELECT cachekit.cdn_purge(ARRAY['/refused.html'])")
wait_request "$id" failed 30
q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id" | grep -q "not allowed" ||
	fail "refused host: $(q "SELECT last_error FROM cachekit.cdn_requests WHERE request_id = $id")"
echo "ok - a purge URL outside cachekit.http_allowed_hosts fails without a connection"
