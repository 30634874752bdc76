-- The planner shortcut for SELECT * FROM cachekit.cached_query(...) AS r(...)
-- (cachekit.call_plan): the same rows, errors and privileges as the planner's
-- plan; only that exact shape is taken. The shortcut leaves ARRAY[...] to the
-- executor, so EXPLAIN VERBOSE shows it unfolded; the planner folds it into
-- '{...}'::text[].
CREATE TABLE cp_t (id int PRIMARY KEY, v text);
INSERT INTO cp_t SELECT g, 'v' || g FROM generate_series(1, 10) g;
SELECT cachekit.watch('cp_t');
SHOW cachekit.call_plan;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[3::text]) AS r(v text);
SET cachekit.call_plan = off;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[3::text]) AS r(v text);
RESET cachekit.call_plan;
-- the same estimates as the planner's
CREATE FUNCTION pg_temp.plan_line(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    EXECUTE 'EXPLAIN ' || q INTO l;
    RETURN l;
END $$;
SELECT pg_temp.plan_line($q$SELECT * FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text)$q$) AS shortcut;
SET cachekit.call_plan = off;
SELECT pg_temp.plan_line($q$SELECT * FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text)$q$) AS planner;
RESET cachekit.call_plan;

-- rows: miss then hit, then a write, every omitted argument taking its default
SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[3::text]) AS r(v text);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[3::text]) AS r(v text);
SELECT cachekit.last_outcome();
UPDATE cp_t SET v = 'changed' WHERE id = 3;
SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[3::text]) AS r(v text);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cp_t') AS r(n bigint);
-- positional ttl and namespace are taken; named ones go to the planner
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cp_t', '{}', 30, 'cp') AS r(n bigint);
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cp_t', ttl => 30) AS r(n bigint);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cp_t', '{}', 30, 'cp') AS r(n bigint);
-- columns selected by name, reordered, or some only
SELECT v, id FROM cachekit.cached_query('SELECT id, v FROM cp_t WHERE id < 3 ORDER BY id') AS r(id int, v text);
SELECT r.v FROM cachekit.cached_query('SELECT id, v FROM cp_t WHERE id < 3 ORDER BY id') AS r(id int, v text);
-- the JSON form in FROM
SELECT * FROM cachekit.cached_query_json('SELECT id FROM cp_t WHERE id < 3 ORDER BY id');

-- other shapes are planned as usual (and give the right answer)
SELECT * FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text) WHERE id = 2;
SELECT * FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text) ORDER BY id DESC LIMIT 2;
SELECT count(*) FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text);
SELECT id + 1 AS next FROM cachekit.cached_query('SELECT id FROM cp_t WHERE id = 1') AS r(id int);
SELECT * FROM ROWS FROM (cachekit.cached_query('SELECT id FROM cp_t WHERE id = 1') AS (id int)) WITH ORDINALITY AS r(id, n);
SELECT r.id, t.v FROM cachekit.cached_query('SELECT id FROM cp_t WHERE id = 1') AS r(id int) JOIN cp_t t USING (id);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM cachekit.cached_query('SELECT id, v FROM cp_t') AS r(id int, v text) WHERE id = 2;

-- errors are the function's own, as before
SELECT regress.error_of($q$SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t') AS r(v int)$q$);
SELECT regress.error_of($q$SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY['x']) AS r(v text)$q$);
SELECT regress.error_of($q$SELECT * FROM cachekit.cached_query(NULL) AS r(v text)$q$);

-- prepared statements: parameters evaluated by the executor, custom and
-- generic plans alike, across a write
PREPARE cp_p(text) AS
    SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[$1]) AS r(v text);
EXECUTE cp_p('1');
EXECUTE cp_p('2');
EXECUTE cp_p('3');
EXECUTE cp_p('4');
EXECUTE cp_p('5');
EXECUTE cp_p('6');
UPDATE cp_t SET v = 'again' WHERE id = 6;
EXECUTE cp_p('6');
SELECT generic_plans > 0 AS generic_used FROM pg_prepared_statements WHERE name = 'cp_p';
DEALLOCATE cp_p;

-- a scrollable cursor over the shortcut's plan
BEGIN;
DECLARE cp_c SCROLL CURSOR FOR
    SELECT * FROM cachekit.cached_query('SELECT id FROM cp_t WHERE id <= 4 ORDER BY id') AS r(id int);
FETCH 3 FROM cp_c;
FETCH BACKWARD 2 FROM cp_c;
COMMIT;

-- inside PL/pgSQL (an SPI plan, kept by the function)
CREATE FUNCTION pg_temp.cp_read(i int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE out text;
BEGIN
    SELECT r.v INTO out FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = $1', ARRAY[i::text]) AS r(v text);
    RETURN out;
END $$;
SELECT pg_temp.cp_read(7), pg_temp.cp_read(7);
UPDATE cp_t SET v = 'seven' WHERE id = 7;
SELECT pg_temp.cp_read(7);

-- EXECUTE privilege is checked by the executor under the shortcut too
CREATE ROLE cp_nobody;
GRANT USAGE ON SCHEMA cachekit TO cp_nobody;
GRANT SELECT ON cp_t TO cp_nobody;
SET ROLE cp_nobody;
SELECT regress.error_of($q$SELECT * FROM cachekit.cached_query('SELECT v FROM cp_t WHERE id = 1') AS r(v text)$q$);
RESET ROLE;
-- a function of another name that happens to be written like ours is not taken
CREATE FUNCTION pg_temp.lookalike(q text, p text[] DEFAULT '{}') RETURNS SETOF record
    LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY EXECUTE q; END $$;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM pg_temp.lookalike('SELECT 1', ARRAY[1::text]) AS r(x int);

DROP FUNCTION pg_temp.cp_read(int);
DROP FUNCTION pg_temp.lookalike(text, text[]);
REVOKE ALL ON cp_t FROM cp_nobody;
REVOKE USAGE ON SCHEMA cachekit FROM cp_nobody;
DROP ROLE cp_nobody;
SELECT cachekit.unwatch('cp_t');
DROP TABLE cp_t;
