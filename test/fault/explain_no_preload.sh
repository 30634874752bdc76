#!/usr/bin/env bash
# Without shared_preload_libraries, cachekit.explain still analyses (and says
# the transparent path cannot serve: its planner hook needs the shared
# memory), and cachekit.candidates works without query_stats (which needs
# it) and without pg_stat_statements. A second, short-lived cluster, as in
# no_preload.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d /tmp/pg_cachekit_explain_nopreload.XXXXXX)
rmdir "$dir"
cleanup() { CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_PRELOAD='' test/sandbox start 2>/dev/null)
port=$(sed -n 's/^export PGPORT=//p' <<<"$env_lines")
host=$(sed -n 's/^export PGHOST=//p' <<<"$env_lines")

out=$(PGPORT=$port PGHOST=$host PGUSER=postgres PGDATABASE=postgres psql -X -q -At -v ON_ERROR_STOP=1 2>&1 <<'SQL'
CREATE EXTENSION pg_cachekit;
CREATE TABLE t (id int PRIMARY KEY, v int);
SELECT cachekit.watch('t');
SET cachekit.transparent = 'all';
SELECT e ->> 'cacheable', e #>> '{transparent,wrapped}', e #>> '{transparent,reason}',
       e #>> '{dependencies,0,table}'
  FROM cachekit.explain('SELECT v FROM t WHERE id = 1') e;
SELECT count(*) FROM cachekit.candidates;
SQL
)
expected="
true|false|pg_cachekit is not in shared_preload_libraries|public.t
0"
if [ "$out" != "$expected" ]; then
	echo "not ok - explain/candidates without shared_preload_libraries:"
	diff <(echo "$expected") <(echo "$out") || true
	exit 1
fi
echo "ok - without shared_preload_libraries explain analyses (transparent: not served, says why) and candidates returns no rows instead of failing"
