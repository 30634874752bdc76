-- Transparent caching: the application's own SELECTs served from the cache
-- (cachekit.transparent), with cached_query's key rules and bypasses.
CREATE TABLE tr_items (id int PRIMARY KEY, owner text NOT NULL, amount numeric(10,2), tags text[]);
INSERT INTO tr_items SELECT g, 'user' || (g % 3), g * 1.5, ARRAY['t' || g, NULL] FROM generate_series(1, 30) g;
INSERT INTO tr_items VALUES (31, 'odd "owner", with\tabs', NULL, NULL);
CREATE TABLE tr_unwatched (id int PRIMARY KEY, v int);
INSERT INTO tr_unwatched VALUES (1, 10);
SELECT cachekit.watch('tr_items');

-- only cachekit_admin registers shapes
SET ROLE cachekit_user;
SELECT cachekit.create_cache('SELECT amount FROM tr_items WHERE id = $1');
RESET ROLE;

-- a shape: constants and parameters ignored
SELECT cachekit.create_cache('SELECT amount FROM tr_items WHERE id = $1')
     = cachekit.create_cache('SELECT amount FROM tr_items WHERE id = 17') AS same_shape;
SELECT cachekit.create_cache('SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner', ttl => 60) IS NOT NULL AS registered;
-- an implicitly cast constant is a constant of the cast's type: one shape
SELECT cachekit.create_cache('SELECT id FROM tr_items WHERE amount > $1 ORDER BY id LIMIT $2')
     = cachekit.create_cache('SELECT id FROM tr_items WHERE amount > 40 ORDER BY id LIMIT 3') AS same_shape;
SELECT cachekit.drop_cache('SELECT id FROM tr_items WHERE amount > $1 ORDER BY id LIMIT $2');
-- LIMIT and OFFSET, DISTINCT and ORDER BY: jumbled alike by Postgres 15,
-- told apart by the fingerprint's outline
SELECT cachekit.create_cache('SELECT id FROM tr_items ORDER BY id LIMIT $1')
     = cachekit.create_cache('SELECT id FROM tr_items ORDER BY id OFFSET $1') AS same_shape,
       cachekit.create_cache('SELECT DISTINCT id FROM tr_items')
     = cachekit.create_cache('SELECT id FROM tr_items ORDER BY id') AS same_shape_too;
SELECT cachekit.drop_cache(q) FROM unnest(ARRAY['SELECT id FROM tr_items ORDER BY id LIMIT $1',
    'SELECT id FROM tr_items ORDER BY id OFFSET $1', 'SELECT DISTINCT id FROM tr_items',
    'SELECT id FROM tr_items ORDER BY id']) q;
SELECT query, ttl, namespace, calls FROM cachekit.caches ORDER BY query;

-- statements that could never be served are refused, with the reason
SELECT cachekit.create_cache('SELECT v FROM tr_unwatched');
SELECT cachekit.create_cache('SELECT random(), id FROM tr_items');
SELECT cachekit.create_cache('SELECT id FROM tr_items FOR UPDATE');
SELECT cachekit.create_cache('SELECT 1');
SELECT cachekit.create_cache('SELECT pg_backend_pid(), id FROM tr_items');
SELECT cachekit.create_cache('UPDATE tr_items SET owner = owner');
SELECT cachekit.create_cache('SELECT 1; SELECT 2');
SELECT cachekit.create_cache('SELEC 1');
SELECT cachekit.create_cache('SELECT * FROM tr_nowhere');
SELECT cachekit.create_cache('SELECT amount FROM tr_items WHERE id = $1', ttl => 0);
CREATE TEMP TABLE tr_temp (id int);
SELECT cachekit.create_cache('SELECT id FROM tr_temp');
CREATE MATERIALIZED VIEW tr_mv AS SELECT id FROM tr_items;
SELECT cachekit.create_cache('SELECT id FROM tr_mv');
CREATE FUNCTION tr_stable(int) RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN $1; END $$;
SELECT cachekit.create_cache('SELECT tr_stable(id) FROM tr_items');
SELECT cachekit.create_cache('SELECT pg_stat_get_numscans(''tr_items''::regclass), id FROM tr_items');
SELECT cachekit.create_cache('WITH d AS (DELETE FROM tr_items WHERE false RETURNING id) SELECT id FROM d');
DROP MATERIALIZED VIEW tr_mv;
DROP TABLE tr_temp;

-- off: nothing is wrapped
EXPLAIN (COSTS OFF) SELECT amount FROM tr_items WHERE id = 5;

SET cachekit.transparent = registered;
EXPLAIN (COSTS OFF) SELECT amount FROM tr_items WHERE id = 5;
-- not registered: planned as usual
EXPLAIN (COSTS OFF) SELECT owner FROM tr_items WHERE id = 5;
EXPLAIN (COSTS OFF) UPDATE tr_items SET owner = owner WHERE id = 5;

-- miss, hit, another constant, and the key ignores spacing
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
SELECT amount FROM tr_items WHERE id = 6;
SELECT cachekit.last_outcome();
SELECT   amount   FROM tr_items   WHERE id = 5;
SELECT cachekit.last_outcome();
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT amount FROM tr_items WHERE id = 5;

-- a committed write invalidates; a rolled-back one does not
UPDATE tr_items SET amount = 99.99 WHERE id = 5;
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
BEGIN;
UPDATE tr_items SET amount = 1 WHERE id = 5;
-- own write: bypass, and it sees its own write
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
ROLLBACK;
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();

-- the aggregate, with ORDER BY and NULLs and odd text, identical on a hit
SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;
SELECT cachekit.last_outcome();
SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;
SELECT cachekit.last_outcome();

-- all: every cacheable SELECT of watched tables; others untouched
SET cachekit.transparent = 'all';
SELECT id, tags FROM tr_items WHERE id > 28 ORDER BY amount DESC NULLS LAST;
SELECT id, tags FROM tr_items WHERE id > 28 ORDER BY amount DESC NULLS LAST;
SELECT cachekit.last_outcome();
EXPLAIN (COSTS OFF) SELECT v FROM tr_unwatched;
EXPLAIN (COSTS OFF) SELECT random() FROM tr_items;
EXPLAIN (COSTS OFF) SELECT id FROM tr_items WHERE id = 1 FOR SHARE;
EXPLAIN (COSTS OFF) SELECT now();
-- the clock: `all` does not serve it (a hit would keep the miss's time)
EXPLAIN (COSTS OFF) SELECT count(*) FROM tr_items WHERE id > 0 AND now() > '2000-01-01';
EXPLAIN (COSTS OFF) SELECT id FROM tr_items WHERE id = 1 AND CURRENT_DATE > '2000-01-01';
-- a literal 'now' is a constant of the statement: in the key, served
EXPLAIN (COSTS OFF) SELECT id FROM tr_items WHERE id = 1 AND 'now'::timestamptz > '2000-01-01';
-- a join with an unwatched table: not served
EXPLAIN (COSTS OFF) SELECT i.id FROM tr_items i JOIN tr_unwatched u ON u.id = i.id;
-- REPEATABLE READ: bypass
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM tr_items;
SELECT cachekit.last_outcome();
COMMIT;
-- too large to store: runs, returns every row
SET cachekit.max_result_bytes = 40;
SELECT count(*) FROM (SELECT id FROM tr_items ORDER BY id) s;
SELECT cachekit.last_outcome();
SELECT id FROM tr_items WHERE id <= 12 ORDER BY id;
SELECT cachekit.last_outcome();
RESET cachekit.max_result_bytes;

-- prepared statements, generic plan, across invalidations
SET cachekit.transparent = registered;
SET plan_cache_mode = force_generic_plan;
PREPARE tr_p(int) AS SELECT amount FROM tr_items WHERE id = $1;
EXECUTE tr_p(7);
SELECT cachekit.last_outcome();
EXECUTE tr_p(7);
SELECT cachekit.last_outcome();
EXECUTE tr_p(8);
SELECT cachekit.last_outcome();
UPDATE tr_items SET amount = 7.77 WHERE id = 7;
EXECUTE tr_p(7);
SELECT cachekit.last_outcome();
EXECUTE tr_p(7);
SELECT cachekit.last_outcome();
EXPLAIN (COSTS OFF) EXECUTE tr_p(7);
-- the mode changes: the prepared statement follows
SET cachekit.transparent = off;
EXPLAIN (COSTS OFF) EXECUTE tr_p(7);
SET cachekit.transparent = registered;
-- drop_cache: no longer served, in this and other sessions' next plans
SELECT cachekit.drop_cache('SELECT amount FROM tr_items WHERE id = 1');
SELECT cachekit.drop_cache('SELECT amount FROM tr_items WHERE id = 1');
EXPLAIN (COSTS OFF) EXECUTE tr_p(7);
SELECT cachekit.create_cache('SELECT amount FROM tr_items WHERE id = $1') IS NOT NULL AS again;
EXPLAIN (COSTS OFF) EXECUTE tr_p(7);
DEALLOCATE tr_p;
RESET plan_cache_mode;

-- a registered shape that can no longer be cached runs, bypassing
SELECT cachekit.unwatch('tr_items');
EXPLAIN (COSTS OFF) SELECT amount FROM tr_items WHERE id = 5;
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
SELECT cachekit.watch('tr_items');

-- cursors: rows fetched in pieces; a portal closed early stores nothing
BEGIN;
DECLARE tr_c CURSOR FOR SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;
FETCH 1 FROM tr_c;
FETCH 1 FROM tr_c;
CLOSE tr_c;
COMMIT;
SELECT cachekit.last_outcome();
BEGIN;
DECLARE tr_c CURSOR FOR SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;
FETCH 2 FROM tr_c;
FETCH ALL FROM tr_c;
CLOSE tr_c;
COMMIT;
SELECT cachekit.last_outcome();
BEGIN;
DECLARE tr_s SCROLL CURSOR FOR SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;
FETCH ALL FROM tr_s;
FETCH BACKWARD 2 FROM tr_s;
CLOSE tr_s;
COMMIT;
SELECT cachekit.last_outcome();

-- a statement of a function called by a query is not served; DO blocks' are
CREATE FUNCTION tr_amount(int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE a numeric;
BEGIN
  SELECT amount INTO a FROM tr_items WHERE id = $1;
  RETURN a;
END $$;
SELECT amount FROM tr_items WHERE id = 10;
SELECT cachekit.last_outcome() AS before;
SELECT tr_amount(9);
SELECT cachekit.last_outcome() AS after;
EXPLAIN (COSTS OFF) SELECT tr_amount(9);
DO $$ DECLARE a numeric; BEGIN SELECT amount INTO a FROM tr_items WHERE id = 9; RAISE NOTICE 'amount %', a; END $$;
SELECT cachekit.last_outcome() AS after_do;
DO $$ DECLARE a numeric; BEGIN SELECT amount INTO a FROM tr_items WHERE id = 9; RAISE NOTICE 'amount %', a; END $$;
SELECT cachekit.last_outcome() AS after_do_again;

-- EXPLAIN VERBOSE names the child's columns
EXPLAIN (VERBOSE, COSTS OFF) SELECT owner, sum(amount) AS total, count(*) FROM tr_items GROUP BY owner ORDER BY owner;

-- a prepared transaction that wrote a table: readers bypass until it is decided
BEGIN;
UPDATE tr_items SET amount = 5.55 WHERE id = 11;
PREPARE TRANSACTION 'tr_2pc';
SELECT amount FROM tr_items WHERE id = 11;
SELECT cachekit.last_outcome();
COMMIT PREPARED 'tr_2pc';
SELECT amount FROM tr_items WHERE id = 11;
SELECT cachekit.last_outcome();
-- writes under session_replication_role = replica still invalidate
SELECT amount FROM tr_items WHERE id = 11;
SET session_replication_role = replica;
UPDATE tr_items SET amount = 6.66 WHERE id = 11;
RESET session_replication_role;
SELECT amount FROM tr_items WHERE id = 11;
SELECT cachekit.last_outcome();

-- roles: keyed by role; a role without SELECT gets the executor's error
GRANT SELECT ON tr_items TO cachekit_user;
SET ROLE cachekit_user;
SET cachekit.transparent = registered;
SELECT amount FROM tr_items WHERE id = 5;
SELECT cachekit.last_outcome();
RESET ROLE;
REVOKE SELECT ON tr_items FROM cachekit_user;
CREATE ROLE tr_nobody;
GRANT USAGE ON SCHEMA cachekit TO tr_nobody;
SELECT amount FROM tr_items WHERE id = 5;
SET ROLE tr_nobody;
SET cachekit.transparent = registered;
SELECT amount FROM tr_items WHERE id = 5;
RESET ROLE;
-- row-level security: each role its own rows
CREATE TABLE tr_docs (id int PRIMARY KEY, owner name NOT NULL, body text);
INSERT INTO tr_docs VALUES (1, 'cachekit_user', 'mine'), (2, 'tr_nobody', 'theirs');
ALTER TABLE tr_docs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tr_own ON tr_docs USING (owner = current_user);
GRANT SELECT ON tr_docs TO cachekit_user, tr_nobody;
SELECT cachekit.watch('tr_docs');
SELECT cachekit.create_cache('SELECT id, body FROM tr_docs ORDER BY id') IS NOT NULL AS registered;
SET ROLE cachekit_user;
SELECT id, body FROM tr_docs ORDER BY id;
SELECT id, body FROM tr_docs ORDER BY id;
SELECT cachekit.last_outcome();
RESET ROLE;
SET ROLE tr_nobody;
SELECT id, body FROM tr_docs ORDER BY id;
RESET ROLE;

-- a role that may not use the cache (not cachekit_user) is not served
SET ROLE tr_nobody;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id, body FROM tr_docs ORDER BY id;
RESET ROLE;

-- anonymous records cannot be read back from their binary form: not cached
SET cachekit.transparent = 'all';
EXPLAIN (COSTS OFF) SELECT (id, owner) FROM tr_items WHERE id = 1;
SELECT cachekit.create_cache('SELECT ROW(id, owner) FROM tr_items WHERE id = $1');
-- a named composite type can
CREATE TYPE tr_pair AS (id int, owner text);
SELECT (id, owner)::tr_pair AS p FROM tr_items WHERE id = 1;
SELECT (id, owner)::tr_pair AS p FROM tr_items WHERE id = 1;
SELECT cachekit.last_outcome();

-- a cursor fetched after a SET: its rows are not stored under its key
BEGIN;
SET LOCAL app.tenant = '1';
DECLARE tr_t CURSOR FOR SELECT id FROM tr_items WHERE owner = 'user' || current_setting('app.tenant') ORDER BY id LIMIT 2;
SET LOCAL app.tenant = '2';
FETCH ALL FROM tr_t;
COMMIT;
SELECT cachekit.last_outcome();
SET app.tenant = '1';
SELECT id FROM tr_items WHERE owner = 'user' || current_setting('app.tenant') ORDER BY id LIMIT 2;
SELECT cachekit.last_outcome();
RESET app.tenant;

-- the body of an inlined SQL function is part of the key
CREATE FUNCTION tr_recent() RETURNS SETOF tr_items LANGUAGE sql STABLE AS $$ SELECT * FROM tr_items WHERE id > 28 $$;
SELECT count(*) FROM tr_recent();
SELECT count(*) FROM tr_recent();
SELECT cachekit.last_outcome();
CREATE OR REPLACE FUNCTION tr_recent() RETURNS SETOF tr_items LANGUAGE sql STABLE AS $$ SELECT * FROM tr_items WHERE id > 25 $$;
SELECT count(*) FROM tr_recent();
SELECT cachekit.last_outcome();
DROP FUNCTION tr_recent();

-- a parameter the statement does not use, on a table watched by value
SELECT cachekit.watch('tr_items', by => 'id');
PREPARE tr_u(int, int) AS SELECT amount FROM tr_items WHERE id = $2;
EXECUTE tr_u(1, 12);
EXECUTE tr_u(1, 12);
SELECT cachekit.last_outcome();
DEALLOCATE tr_u;
SELECT cachekit.watch('tr_items');
SET cachekit.transparent = registered;

-- the caches view counts every role's calls
SELECT query, calls > 0 AS called, hits > 0 AS hit, misses > 0 AS missed, bypasses > 0 AS bypassed
FROM cachekit.caches ORDER BY query;

-- a new operator earlier in search_path: the same text now calls another
-- function; simple and prepared statements are planned again (miss, the
-- new result), never served the old operator's result
CREATE SCHEMA tr_s;
CREATE FUNCTION public.tr_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE FUNCTION tr_s.tr_ne(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> $2';
CREATE OPERATOR public.=== (FUNCTION = public.tr_eq, LEFTARG = int, RIGHTARG = int);
SET cachekit.transparent = 'all';
SET search_path = tr_s, public;
SELECT count(*) FROM tr_items WHERE id === 1;
SELECT count(*) FROM tr_items WHERE id === 1;
SELECT cachekit.last_outcome();
PREPARE tr_op AS SELECT count(*) FROM tr_items WHERE id === 1;
EXECUTE tr_op;
SELECT cachekit.last_outcome();
CREATE OPERATOR tr_s.=== (FUNCTION = tr_s.tr_ne, LEFTARG = int, RIGHTARG = int);
SELECT count(*) AS expected FROM tr_items WHERE id <> 1;
SELECT count(*) FROM tr_items WHERE id === 1;
SELECT cachekit.last_outcome();
EXECUTE tr_op;
SELECT cachekit.last_outcome();
DEALLOCATE tr_op;
RESET search_path;
DROP SCHEMA tr_s CASCADE;
DROP OPERATOR public.=== (int, int);
DROP FUNCTION public.tr_eq(int, int);

RESET cachekit.transparent;
SELECT cachekit.drop_cache(query) FROM cachekit.caches ORDER BY query;
DROP TABLE tr_docs;
DROP TYPE tr_pair;
DROP FUNCTION tr_amount(int);
DROP FUNCTION tr_stable(int);
REVOKE USAGE ON SCHEMA cachekit FROM tr_nobody;
DROP ROLE tr_nobody;
DROP TABLE tr_items, tr_unwatched;
