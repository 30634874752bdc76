#!/usr/bin/env bash
# pg_cachekit-cdn, the command-line tool, against the sandbox and a fake S3
# that verifies SigV4 with botocore: test/cdn/cli.sh does the work; this
# wrapper turns CDN purges on for it (the http provider, pointed at a port
# where nothing listens: the tool's purges are queued, not delivered here;
# delivery is cdn_cloudfront.sh's and cdn_http_varnish.sh's business).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || {
	echo "not ok - run under tools/run-tests or after eval \"\$(test/sandbox start)\""
	exit 1
}
db=cachekit_cdn_cli
source test/fault/lib_tasks.bash
trap reset_gucs EXIT
set_guc cachekit.cdn_enabled on
set_guc cachekit.cdn_provider http
set_guc cachekit.cdn_http_purge_url http://127.0.0.1:9
test/cdn/cli.sh
