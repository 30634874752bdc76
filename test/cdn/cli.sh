#!/usr/bin/env bash
# pg_cachekit-cdn (the installed binary) against a running sandbox and a fake
# S3 (test/cdn/fake_s3.py, which verifies SigV4 with botocore): sync uploads
# exactly the files of a directory with the right hashes and content types,
# records them in cachekit.assets; a second sync uploads nothing; a changed
# file is the only upload and the only path purged; --dry-run changes
# nothing; a 503 is retried; a wrong secret exits 3 with a clear message that
# shows no secret; a bad --dbname exits 2, usage errors 1; the test, status
# and invalidate commands.
#
# Runs against the sandbox in CACHEKIT_SANDBOX_DIR (tools/run-tests, or after
# eval "$(test/sandbox start)") with pg_cachekit installed. Exits 77 (skip)
# when the extension has no cachekit.cdn_put_asset yet.
# CACHEKIT_CDN_CLI overrides the binary (default: pg_config --bindir).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() {
	echo "not ok - $*"
	for f in out err; do [ -s "${dir:-/nonexistent}/$f" ] && { echo "---- $f"; head -c 3000 "$dir/$f"; }; done
	exit 1
}
ok() { echo "ok - $*"; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
PY=/usr/bin/python3 # Debian's, with python3-botocore
db=cachekit_cdn_cli

if [ -z "${PG_CONFIG:-}" ]; then
	if [ -n "${CACHEKIT_PG_BINDIR:-}" ] && [ -x "$CACHEKIT_PG_BINDIR/pg_config" ]; then
		PG_CONFIG=$CACHEKIT_PG_BINDIR/pg_config
	else
		PG_CONFIG=pg_config
	fi
fi
cli=${CACHEKIT_CDN_CLI:-$("$PG_CONFIG" --bindir)/pg_cachekit-cdn}
[ -x "$cli" ] || fail "$cli does not exist: run make install"

dir=$(mktemp -d /tmp/pg_cachekit_cdn_cli.XXXXXX)
fake_pid=
cleanup() {
	if [ -n "$fake_pid" ]; then kill "$fake_pid" 2>/dev/null || true; fi
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -c "$1"; }

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_cachekit" >/dev/null
# Development hook: SQL to run first (e.g. stand-ins for functions not merged yet).
if [ -n "${CACHEKIT_CDN_CLI_SETUP_SQL:-}" ]; then
	psql -X -q -d "$db" -v ON_ERROR_STOP=1 -f "$CACHEKIT_CDN_CLI_SETUP_SQL" >/dev/null
fi
if [ "$(q "SELECT to_regprocedure('cachekit.cdn_put_asset(text,text,bigint)') IS NOT NULL")" != t ]; then
	echo "skip - pg_cachekit has no cachekit.cdn_put_asset(text, text, bigint) yet"
	exit 77
fi

# --- a test CA and a certificate for 127.0.0.1 ---------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj "/CN=pg_cachekit cdn cli test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
	-keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/san.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
	-days 2 -extfile "$dir/san.ext" -out "$dir/server.crt" 2>/dev/null

# --- the fake S3 ------------------------------------------------------------------
access=AKIDCDNCLITEST
secret='cdnCliTest+Secret/0123456789abcdefXYZ' # must never be printed
wrong_secret='WrongSecret+Value/9876543210zyxwvuts'
region=eu-test-1
bucket=assets
$PY test/cdn/fake_s3.py --cert "$dir/server.crt" --key "$dir/server.key" --port 0 \
	--access-key "$access" --secret-key "$secret" --bucket "$bucket" --region "$region" \
	--log "$dir/s3.jsonl" >"$dir/fake.out" 2>"$dir/fake.err" &
fake_pid=$!
for _ in $(seq 1 100); do
	grep -q '^PORT ' "$dir/fake.out" 2>/dev/null && break
	kill -0 "$fake_pid" 2>/dev/null || fail "fake S3 exited: $(cat "$dir/fake.err")"
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$dir/fake.out")
[ -n "$port" ] || fail "fake S3 did not start: $(cat "$dir/fake.err")"
fake_url=https://127.0.0.1:$port

state() { curl -sS --cacert "$dir/ca.crt" "$fake_url/_fake/state"; }
# obj KEY FIELD: a field of an object in the fake, or "none".
obj() {
	state | $PY -c 'import json,sys; o=json.load(sys.stdin)["buckets"][sys.argv[1]].get(sys.argv[2]); print(o[sys.argv[3]] if o else "none")' "$bucket" "$1" "$2"
}
object_keys() { state | $PY -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)["buckets"][sys.argv[1]])))' "$bucket"; }
puts_logged() { grep -c '"method": "PUT"' "$dir/s3.jsonl" 2>/dev/null || true; }

# run [ENV=VALUE...] -- ARGS...: the tool with the right credentials unless
# overridden; stdout in $dir/out, stderr in $dir/err, exit status in $rc.
# Whatever it printed must not contain either secret.
s3_args=(--bucket "$bucket" --region "$region" --s3-endpoint "127.0.0.1:$port" --ca-file "$dir/ca.crt")
run() {
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	rc=0
	env -u CACHEKIT_S3_BUCKET -u CACHEKIT_S3_ENDPOINT -u AWS_REGION -u AWS_DEFAULT_REGION -u AWS_SESSION_TOKEN \
		AWS_ACCESS_KEY_ID="$access" AWS_SECRET_ACCESS_KEY="$secret" "${envs[@]}" \
		"$cli" --dbname "dbname=$db" "$@" >"$dir/out" 2>"$dir/err" </dev/null || rc=$?
	if grep -qF -e "$secret" -e "$wrong_secret" "$dir/out" "$dir/err"; then
		fail "a secret was printed by: $*"
	fi
}
expect_rc() { [ "$rc" = "$1" ] || fail "$2: exit status $rc, expected $1"; }

# --- the fake itself checks what it claims to ------------------------------------
printf 'hello' >"$dir/hello.txt"
code=$(curl -sS -o "$dir/body" -w '%{http_code}' --cacert "$dir/ca.crt" -T "$dir/hello.txt" \
	-H "x-amz-content-sha256: $(printf 'other' | sha256sum | cut -d' ' -f1)" \
	--aws-sigv4 "aws:amz:$region:s3" -u "$access:$secret" "$fake_url/$bucket/probe.txt")
[ "$code" = 400 ] && grep -q XAmzContentSHA256Mismatch "$dir/body" || fail "the fake accepted a body that does not match x-amz-content-sha256 ($code)"
code=$(curl -sS -o "$dir/body" -w '%{http_code}' --cacert "$dir/ca.crt" -T "$dir/hello.txt" \
	-H "x-amz-content-sha256: $(sha256sum <"$dir/hello.txt" | cut -d' ' -f1)" \
	--aws-sigv4 "aws:amz:$region:s3" -u "$access:$wrong_secret" "$fake_url/$bucket/probe.txt")
[ "$code" = 403 ] && grep -q SignatureDoesNotMatch "$dir/body" || fail "the fake accepted a wrong signature ($code)"
code=$(curl -sS -o "$dir/body" -w '%{http_code}' --cacert "$dir/ca.crt" -T "$dir/hello.txt" \
	-H "x-amz-content-sha256: $(sha256sum <"$dir/hello.txt" | cut -d' ' -f1)" \
	--aws-sigv4 "aws:amz:$region:s3" -u "$access:$secret" "$fake_url/$bucket/probe.txt")
[ "$code" = 200 ] || fail "the fake refused a correctly signed PUT ($code: $(cat "$dir/body"))"
curl -sS --cacert "$dir/ca.crt" -X POST "$fake_url/_fake/reset" >/dev/null
: >"$dir/s3.jsonl"
ok "the fake S3 refuses bad signatures and bodies, accepts a curl-signed PUT"

# --- the directory to sync -----------------------------------------------------------
site=$dir/site
mkdir -p "$site/css" "$site/js" "$site/img" "$site/fonts" "$site/.well-known" "$site/big" "$dir/outside"
printf '<!doctype html><title>x</title>\n' >"$site/index.html"
printf 'body { color: red }\n' >"$site/css/app.css"
printf 'console.log(1)\n' >"$site/js/app.js"
printf '<svg xmlns="http://www.w3.org/2000/svg"/>\n' >"$site/img/logo one.svg"
printf 'wOF2' >"$site/fonts/café+x.woff2"
: >"$site/.well-known/empty.txt"
head -c 3000000 /dev/urandom >"$site/big/data.bin"
printf 'not part of the site\n' >"$dir/outside/secret.txt"
ln -s "$dir/outside" "$site/linked" # a directory link: not followed
expected_paths=$(cd "$site" && find . -type f | sed 's|^\.||' | sort)
[ "$(wc -l <<<"$expected_paths")" = 7 ] || fail "test setup: $expected_paths"

# --- usage and connection errors --------------------------------------------------------
run -- ; expect_rc 1 "no command"
run -- sync; expect_rc 1 "sync without DIR"
run -- sync "$site" --wait; expect_rc 1 "sync --wait"
run -- frobnicate; expect_rc 1 "unknown command"
grep -q 'unknown command' "$dir/err" || fail "no message for an unknown command"
run -- sync "$dir/missing"; expect_rc 1 "sync of a missing directory"
run -- sync "$site" --s3-endpoint "http://127.0.0.1:$port" --bucket "$bucket"; expect_rc 1 "http endpoint"
run AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= -- sync "$site" "${s3_args[@]}"; expect_rc 1 "sync without credentials"
grep -q 'no AWS credentials' "$dir/err" || fail "no message for missing credentials"
run -- sync "$site" --region "$region" --s3-endpoint "127.0.0.1:$port" --ca-file "$dir/ca.crt"
expect_rc 1 "sync without a bucket"
grep -q 'no S3 bucket' "$dir/err" || fail "no message for a missing bucket"
run -- --help; expect_rc 0 "--help"
grep -q '^Exit status:' "$dir/out" && grep -q '4  invalidate --wait' "$dir/out" || fail "--help does not list the exit codes"
ok "usage errors exit 1"

rc=0
env AWS_ACCESS_KEY_ID="$access" AWS_SECRET_ACCESS_KEY="$secret" "$cli" status \
	--dbname "host=127.0.0.1 port=1 dbname=$db connect_timeout=5" >"$dir/out" 2>"$dir/err" || rc=$?
expect_rc 2 "--dbname with a port nobody listens on"
grep -q 'could not connect to the database' "$dir/err" || fail "no connection error message"
run -- status --dbname "dbname=${db}_does_not_exist"; expect_rc 2 "--dbname naming a missing database"
ok "a bad --dbname exits 2"

# --- dry run on an empty manifest ---------------------------------------------------------
run -- sync "$site" --dry-run "${s3_args[@]}"; expect_rc 0 "sync --dry-run"
while IFS= read -r p; do
	grep -qF "would upload $p (" "$dir/out" || fail "dry run does not list $p"
done <<<"$expected_paths"
grep -q '/linked/' "$dir/out" && fail "dry run follows a directory link"
[ "$(puts_logged)" = 0 ] || fail "dry run uploaded something"
[ "$(q "SELECT count(*) FROM cachekit.assets")" = 0 ] || fail "dry run wrote the manifest"
ok "sync --dry-run lists every file and changes nothing"

# --- first sync -------------------------------------------------------------------------------
run -- sync "$site" "${s3_args[@]}" --progress; expect_rc 0 "first sync"
[ "$(object_keys)" = "$(sed 's|^/||' <<<"$expected_paths" | sort)" ] ||
	fail "the bucket does not hold exactly the site's files: $(object_keys | tr '\n' ' ')"
while IFS= read -r p; do
	h=$(sha256sum <"$site$p" | cut -d' ' -f1)
	size=$(stat -c %s "$site$p")
	[ "$(obj "${p#/}" sha256)" = "$h" ] || fail "wrong bytes in the bucket for $p"
	row=$(psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -v p="$p" <<<"SELECT content_hash || ' ' || size FROM cachekit.assets WHERE path = :'p'")
	[ "$row" = "$h $size" ] || fail "manifest row for $p is '$row', expected '$h $size'"
done <<<"$expected_paths"
[ "$(q "SELECT count(*) FROM cachekit.assets")" = 7 ] || fail "manifest rows: $(q "SELECT string_agg(path, ' ') FROM cachekit.assets")"
[ "$(obj css/app.css content_type)" = text/css ] || fail "css content type: $(obj css/app.css content_type)"
[ "$(obj js/app.js content_type)" = text/javascript ] || fail "js content type"
[ "$(obj 'img/logo one.svg' content_type)" = image/svg+xml ] || fail "svg content type"
[ "$(obj big/data.bin content_type)" = application/octet-stream ] || fail "bin content type"
grep -q '"path": "/assets/img/logo%20one.svg"' "$dir/s3.jsonl" || fail "the key with a space was not percent-encoded once"
grep -q '"path": "/assets/fonts/caf%C3%A9%2Bx.woff2"' "$dir/s3.jsonl" || fail "the UTF-8 key was not percent-encoded"
$PY - "$dir/s3.jsonl" <<'PY' || fail "an upload was not signed as S3 wants it"
import json, sys
puts = [json.loads(l) for l in open(sys.argv[1]) if '"PUT"' in l]
assert len(puts) == 7, len(puts)
for p in puts:
    assert p["status"] == 200, p
    assert {"host", "x-amz-content-sha256", "x-amz-date", "content-type"} <= set(p["signed_headers"]), p
    assert p["content_sha256"] != "UNSIGNED-PAYLOAD", p
PY
grep -q 'uploaded 7/7' "$dir/err" || fail "--progress printed no progress: $(cat "$dir/err")"
grep -q '^sync: 7 files uploaded' "$dir/out" || fail "no summary line"
ok "sync uploads exactly the site's files, signed, with their hashes and types, and records them"

# --- nothing changed: nothing uploaded ------------------------------------------------------------
puts=$(puts_logged)
requests=$(q "SELECT count(*) FROM cachekit.cdn_requests")
run -- sync "$site" "${s3_args[@]}"; expect_rc 0 "second sync"
[ "$(puts_logged)" = "$puts" ] || fail "the second sync uploaded again"
grep -q '^sync: 0 files uploaded .*7 files unchanged; nothing to purge' "$dir/out" || fail "summary: $(cat "$dir/out")"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests")" = "$requests" ] || fail "the second sync queued a purge"
ok "a second sync uploads and purges nothing"

# --- one changed file: one upload, one purged path ---------------------------------------------------
printf 'body { color: blue }\n' >"$site/css/app.css"
new_hash=$(sha256sum <"$site/css/app.css" | cut -d' ' -f1)
run -- sync "$site" "${s3_args[@]}"; expect_rc 0 "sync after a change"
[ "$(puts_logged)" = $((puts + 1)) ] || fail "expected one upload, the log has $(($(puts_logged) - puts))"
[ "$(obj css/app.css sha256)" = "$new_hash" ] && [ "$(obj css/app.css puts)" = 2 ] || fail "css/app.css was not replaced"
[ "$(obj js/app.js puts)" = 1 ] || fail "js/app.js was uploaded again"
[ "$(q "SELECT content_hash FROM cachekit.assets WHERE path = '/css/app.css'")" = "$new_hash" ] || fail "manifest not updated"
id=$(sed -n 's/^sync: 1 file uploaded .* purge request \([0-9]*\) queued for 1 path$/\1/p' "$dir/out")
[ -n "$id" ] || fail "no purge request for the changed file: $(cat "$dir/out")"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $id AND paths <> '{/css/app.css}'")" = 0 ] ||
	fail "request $id purges more than /css/app.css: $(q "SELECT paths FROM cachekit.cdn_requests WHERE request_id = $id")"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id > $id")" = 0 ] || fail "more than one purge request"
ok "a changed file is the only upload and the only path purged (request $id)"

# --- dry run with a change pending: nothing changes -----------------------------------------------------
printf 'console.log(2)\n' >"$site/js/app.js"
old_js=$(q "SELECT content_hash FROM cachekit.assets WHERE path = '/js/app.js'")
puts=$(puts_logged)
requests=$(q "SELECT count(*) FROM cachekit.cdn_requests")
run -- sync "$site" "${s3_args[@]}" -n; expect_rc 0 "dry run with a change"
grep -qx 'would upload /js/app.js (15 B, changed)' "$dir/out" || fail "dry run: $(cat "$dir/out")"
grep -qx 'would purge /js/app.js' "$dir/out" || fail "dry run does not name the purge"
[ "$(grep -c '^would upload' "$dir/out")" = 1 ] || fail "dry run would upload more than the change"
[ "$(puts_logged)" = "$puts" ] || fail "dry run uploaded"
[ "$(q "SELECT content_hash FROM cachekit.assets WHERE path = '/js/app.js'")" = "$old_js" ] || fail "dry run wrote the manifest"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests")" = "$requests" ] || fail "dry run queued a purge"
ok "sync --dry-run shows the pending upload and purge and changes nothing"

# --- a wrong secret: exit 3, said clearly, never shown --------------------------------------------------
run AWS_SECRET_ACCESS_KEY="$wrong_secret" -- sync "$site" "${s3_args[@]}" --verbose
expect_rc 3 "sync with a wrong secret"
grep -q 'error: could not upload "js/app.js" to S3 bucket "assets"' "$dir/err" || fail "unclear message: $(cat "$dir/err")"
grep -q 'SignatureDoesNotMatch' "$dir/err" && grep -q 'HINT:.*secret access key' "$dir/err" || fail "no reason/hint: $(cat "$dir/err")"
[ "$(q "SELECT content_hash FROM cachekit.assets WHERE path = '/js/app.js'")" = "$old_js" ] || fail "a failed upload was recorded"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests")" = "$requests" ] || fail "a failed upload queued a purge"
[ "$(obj js/app.js puts)" = 1 ] || fail "the fake stored a badly signed upload"
run AWS_ACCESS_KEY_ID=AKIDNOBODY -- sync "$site" "${s3_args[@]}"; expect_rc 3 "unknown access key"
grep -q 'InvalidAccessKeyId' "$dir/err" || fail "no InvalidAccessKeyId: $(cat "$dir/err")"
run -- sync "$site" "${s3_args[@]}" --region us-west-2; expect_rc 3 "wrong region"
grep -q 'HINT:.*region eu-test-1' "$dir/err" || fail "no region hint: $(cat "$dir/err")"
ok "a wrong secret, key or region exits 3 with S3's reason and no secret"

# --- a 503 is retried; untrusted certificates are refused -------------------------------------------------
curl -sS --cacert "$dir/ca.crt" -X POST -d '{"method": "PUT", "status": 503, "code": "SlowDown", "count": 1}' "$fake_url/_fake/fail"
run -- sync "$site" "${s3_args[@]}" --progress; expect_rc 0 "sync after a 503"
[ "$(obj js/app.js puts)" = 2 ] || fail "js/app.js not uploaded after the 503"
[ "$(grep '"key": "js/app.js"' "$dir/s3.jsonl" | grep -c '"code": "SlowDown"')" = 1 ] || fail "no 503 was served"
grep -q 'uploaded 1/1' "$dir/err" || fail "no progress line"
run -- sync "$site" --bucket "$bucket" --region "$region" --s3-endpoint "127.0.0.1:$port"
expect_rc 0 "nothing to upload needs no TLS"
printf 'x\n' >>"$site/index.html"
run -- sync "$site" --bucket "$bucket" --region "$region" --s3-endpoint "127.0.0.1:$port"
expect_rc 3 "sync to an endpoint whose CA is not given"
grep -q 'HINT:.*--ca-file' "$dir/err" || fail "no --ca-file hint: $(cat "$dir/err")"
ok "a 503 is retried; an untrusted certificate is refused (exit 3)"

# --- test -----------------------------------------------------------------------------------------------
run -- test "${s3_args[@]}"
grep -q "^ok      S3 bucket \"$bucket\" at $fake_url/$bucket is reachable" "$dir/out" || fail "test: $(cat "$dir/out")"
if grep -q '^FAILED' "$dir/out"; then expect_rc 3 "test with a failed check"; else expect_rc 0 "test"; fi
run AWS_SECRET_ACCESS_KEY="$wrong_secret" -- test "${s3_args[@]}"; expect_rc 3 "test with a wrong secret"
grep -q "^FAILED  S3 bucket \"$bucket\".*answered 403" "$dir/out" || fail "test: $(cat "$dir/out")"
run -- test "${s3_args[@]}" --bucket nosuchbucket; expect_rc 3 "test with a missing bucket"
grep -q '^FAILED  S3 bucket "nosuchbucket".*does not exist' "$dir/out" || fail "test: $(cat "$dir/out")"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$access" "$secret" >"$dir/credentials"
run AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= -- test "${s3_args[@]}" --credentials-file "$dir/credentials"
grep -q "^ok      S3 bucket \"$bucket\".*reachable" "$dir/out" || fail "test --credentials-file: $(cat "$dir/out")"
ok "test checks the bucket with a signed HEAD and reports the providers"

# The server's settings name the bucket and region when nothing else does
# (only where they can be set per database; postgresql.conf-only settings cannot).
if psql -X -q -d "$db" -v ON_ERROR_STOP=1 -c "ALTER DATABASE $db SET cachekit.cdn_s3_bucket = '$bucket'" \
	-c "ALTER DATABASE $db SET cachekit.cdn_aws_region = '$region'" >/dev/null 2>&1; then
	run -- test --s3-endpoint "127.0.0.1:$port" --ca-file "$dir/ca.crt"
	grep -q "^ok      S3 bucket \"$bucket\" at $fake_url/$bucket is reachable" "$dir/out" ||
		fail "bucket and region from the server's settings: $(cat "$dir/out")"
	run CACHEKIT_S3_BUCKET=nosuchbucket -- test --s3-endpoint "127.0.0.1:$port" --ca-file "$dir/ca.crt"
	grep -q '^FAILED  S3 bucket "nosuchbucket"' "$dir/out" || fail "CACHEKIT_S3_BUCKET does not override the server's setting"
	psql -X -q -d "$db" -c "ALTER DATABASE $db RESET ALL" >/dev/null
	ok "bucket and region default to cachekit.cdn_s3_bucket and cachekit.cdn_aws_region"
else
	echo "ok - # skip cachekit.cdn_s3_bucket cannot be set per database here"
fi

# --- status and invalidate ----------------------------------------------------------------------------------
run -- status; expect_rc 0 "status"
grep -q '^CDN purges: ' "$dir/out" && grep -q '^Recent purge requests:' "$dir/out" || fail "status: $(cat "$dir/out")"
run -- status --json --limit 3; expect_rc 0 "status --json"
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "enabled" in d["status"] and len(d["recent_requests"]) <= 3' "$dir/out" ||
	fail "status --json: $(cat "$dir/out")"
run -- invalidate /a.css '/b c.js'; expect_rc 0 "invalidate"
id=$(cat "$dir/out")
[[ $id =~ ^[0-9]+$ ]] || fail "invalidate printed '$id', not a request id"
[ "$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $id AND paths <> '{/a.css,\"/b c.js\"}'")" = 0 ] ||
	fail "request $id has other paths"
run -- invalidate /c.css --wait --timeout 1.5
unfinished=$(q "SELECT count(*) FROM cachekit.cdn_requests WHERE request_id = $(head -1 "$dir/out") AND state NOT IN ('completed', 'failed')")
case $rc in
0) [ "$unfinished" = 0 ] || fail "--wait returned 0 for an unfinished request" ;;
4) grep -q 'has not finished after\|failed at' "$dir/err" || fail "--wait: $(cat "$dir/err")" ;;
*) fail "invalidate --wait exited $rc: $(cat "$dir/err")" ;;
esac
ok "status, status --json and invalidate (--wait exited $rc)"
