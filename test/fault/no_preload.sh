#!/usr/bin/env bash
# Without shared_preload_libraries the key/value cache and sessions work, and
# what needs shared memory says so with SQLSTATE 55000 and a HINT. Uses a
# second, short-lived cluster (the shared one preloads the library) against
# the sandbox's Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d /tmp/pg_cachekit_nopreload.XXXXXX)
rmdir "$dir"
cleanup() { CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
# A second sandbox (its own ports and Redis), without the preload.
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_PRELOAD='' test/sandbox start 2>/dev/null)
port=$(sed -n 's/^export PGPORT=//p' <<<"$env_lines")

out=$(PGPORT=$port psql -X -q -At -v ON_ERROR_STOP=1 2>&1 <<'SQL'
CREATE EXTENSION pg_cachekit;
SELECT cachekit.cache_set('fault:nopreload', 'works');
SELECT cachekit.cache_get('fault:nopreload');
SELECT cachekit.session_set('fault-nopreload', '{"a": 1}');
SELECT cachekit.session_get('fault-nopreload') ->> 'a';
SELECT cachekit.health() ->> 'shared_preload_libraries';
SELECT cachekit.cache_delete('fault:nopreload');
DO $$
DECLARE st text; hint text;
BEGIN
    PERFORM * FROM cachekit.cache_stats;
    RAISE EXCEPTION 'cache_stats worked without shared memory';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '% %', st, hint;
END $$;
CREATE TABLE t (id int);
SELECT cachekit.watch('t');
INSERT INTO t VALUES (1);
DO $$
DECLARE st text; hint text;
BEGIN
    PERFORM * FROM cachekit.cached_query('SELECT id FROM t') AS r(id int);
    RAISE EXCEPTION 'cached_query worked without shared memory';
EXCEPTION WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE '% %', st, hint;
END $$;
SQL
)
expected="t
works
t
1
false
1
NOTICE:  55000 Add pg_cachekit to shared_preload_libraries in postgresql.conf and restart the server.

NOTICE:  55000 Add pg_cachekit to shared_preload_libraries in postgresql.conf and restart the server."
if [ "$out" != "$expected" ]; then
	echo "not ok - unexpected output without shared_preload_libraries:"
	diff <(echo "$expected") <(echo "$out") || true
	exit 1
fi
echo "ok - cache and sessions work without shared_preload_libraries; cache_stats and cached_query ask for it (55000 + HINT); watched tables still accept writes"
