#!/usr/bin/env bash
# cachekit.candidates with pg_stat_statements preloaded and installed: the
# most expensive statements it saw (normalised, $n for constants), each
# analysed by cachekit.explain; registered shapes found by fingerprint;
# other roles' texts hidden as pg_stat_statements hides them; a normalised
# text that does not parse back is listed with the error as its reason. The
# shared sandbox does not preload pg_stat_statements (it would change other
# tests' EXPLAIN VERBOSE output and the benchmarks), so this uses a second,
# short-lived cluster against its own Redis.
set -euo pipefail
cd "$(dirname "$0")/../.."

dir=$(mktemp -d /tmp/pg_cachekit_pgss.XXXXXX)
rmdir "$dir"
cleanup() { CACHEKIT_SANDBOX_DIR=$dir test/sandbox stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
env_lines=$(env -u CACHEKIT_REDIS_PORT -u CACHEKIT_PGPORT CACHEKIT_SANDBOX_DIR="$dir" \
	CACHEKIT_SANDBOX_PRELOAD='pg_cachekit,pg_stat_statements' test/sandbox start 2>/dev/null)
port=$(sed -n 's/^export PGPORT=//p' <<<"$env_lines")
host=$(sed -n 's/^export PGHOST=//p' <<<"$env_lines")
sql() { PGPORT=$port PGHOST=$host PGUSER=postgres PGDATABASE=postgres psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

sql <<'SQL' >/dev/null
CREATE EXTENSION pg_cachekit;
CREATE EXTENSION pg_stat_statements;
CREATE TABLE cand_items (id int PRIMARY KEY, owner_id int, v text);
INSERT INTO cand_items SELECT g, g % 10, 'v' || g FROM generate_series(1, 5000) g;
SELECT cachekit.watch('cand_items', by => 'owner_id');
CREATE TABLE cand_unwatched (id int PRIMARY KEY);
CREATE ROLE cand_app LOGIN;
GRANT USAGE ON SCHEMA cachekit TO cand_app;
GRANT cachekit_user TO cand_app;
GRANT SELECT ON cand_items TO cand_app;
SELECT cachekit.create_cache('SELECT v FROM cand_items WHERE id = $1');
SELECT pg_stat_statements_reset();
SQL
# The application's statements, with different constants (one shape each).
sql >/dev/null <<'SQL'
SELECT v FROM cand_items WHERE id = 1;
SELECT v FROM cand_items WHERE id = 2;
SELECT v FROM cand_items WHERE id = 3;
SELECT count(*) FROM cand_items WHERE owner_id = 4;
SELECT count(*) FROM cand_items WHERE owner_id = 5;
SELECT id FROM cand_unwatched WHERE id = 7;
SELECT id, random() FROM cand_items WHERE id = 8;
SELECT count(*) FROM cand_items WHERE v > 'v1' AND now() - interval '1 day' < now();
UPDATE cand_items SET v = v WHERE id = 9;
SQL
# Another role's statement (a superuser sees every role's texts; cand_app
# only its own).
PGPORT=$port PGHOST=$host PGUSER=cand_app PGDATABASE=postgres psql -X -q -At \
	-c "SELECT owner_id FROM cand_items WHERE id = 11" >/dev/null

fail=0
check() { # name expected actual
	if [[ $2 == "$3" ]]; then
		echo "ok - $1"
	else
		echo "not ok - $1"
		diff <(echo "$2") <(echo "$3") || true
		fail=1
	fi
}

out=$(sql -F ' | ' -c "SELECT query, calls, registered, qualifies, coalesce(reason, '-'), dependencies
                         FROM cachekit.candidates WHERE source = 'pg_stat_statements'
                          AND query ~ 'cand_' ORDER BY query")
check "pg_stat_statements' statements, normalised, each analysed" \
"SELECT count(*) FROM cand_items WHERE owner_id = \$1 | 2 | f | t | - | {public.cand_items}
SELECT count(*) FROM cand_items WHERE v > \$1 AND now() - interval \$2 < now() | 1 |  | f | syntax error at or near \"\$2\" | 
SELECT id FROM cand_unwatched WHERE id = \$1 | 1 | f | f | cached_query cannot cache a query that reads an unwatched table | {public.cand_unwatched}
SELECT id, random() FROM cand_items WHERE id = \$1 | 1 | f | f | cached_query cannot cache a query that calls a volatile function | {public.cand_items}
SELECT owner_id FROM cand_items WHERE id = \$1 | 1 | f | t | - | {public.cand_items}
SELECT v FROM cand_items WHERE id = \$1 | 3 | t | t | - | {public.cand_items}" "$out"

# The fingerprint is the registered shape's.
out=$(sql -c "SELECT c.fingerprint = k.fingerprint FROM cachekit.candidates c
                JOIN cachekit.caches k ON k.query = 'SELECT v FROM cand_items WHERE id = \$1'
               WHERE c.query = 'SELECT v FROM cand_items WHERE id = \$1'")
check "a candidate's fingerprint is its registered shape's" "t" "$out"

# Ordered by total time, pg_stat_statements' queryid kept.
out=$(sql -c "SELECT bool_and(queryid IS NOT NULL) AND bool_and(total_ms >= 0) AND bool_and(mean_ms >= 0)
                     AND (array_agg(total_ms))[1] = max(total_ms)
                FROM cachekit.candidates WHERE source = 'pg_stat_statements'")
check "pg_stat_statements rows carry queryid and timings, most expensive first" "t" "$out"

# cand_app sees its own statement only (pg_stat_statements hides the
# others' texts), and no UPDATE or extension call is a candidate.
out=$(PGPORT=$port PGHOST=$host PGUSER=cand_app PGDATABASE=postgres psql -X -q -At \
	-c "SELECT query FROM cachekit.candidates WHERE source = 'pg_stat_statements' ORDER BY query")
check "another role sees only the texts pg_stat_statements shows it" \
	"SELECT owner_id FROM cand_items WHERE id = \$1" "$out"
out=$(sql -c "SELECT count(*) FROM cachekit.candidates WHERE query ~* '^\s*update|cachekit\.'")
check "no UPDATE and no call of the extension among the candidates" "0" "$out"

exit $fail
