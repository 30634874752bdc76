-- Per-backend prepared queries: at most cachekit.max_prepared_queries of
-- them (least recently used go first), never freeing one a running call
-- uses, and never used once invalidated, nested calls included.
CREATE TABLE pq_t (id int PRIMARY KEY, v text);
INSERT INTO pq_t SELECT g, 'v' || g FROM generate_series(1, 30) g;
SELECT cachekit.watch('pq_t');
SHOW cachekit.max_prepared_queries;
SET cachekit.max_prepared_queries = 5;
CREATE FUNCTION pg_temp.read_all() RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(r.v, ',' ORDER BY i) FROM generate_series(1, 30) i,
        LATERAL cachekit.cached_query(format('SELECT v FROM pq_t WHERE id = %s', i)) AS r(v text) $$;
SELECT pg_temp.read_all();
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared,
       (cachekit.health() -> 'prepared_queries' ->> 'max')::int AS max;
-- evicted queries are prepared again, with the same keys: hits, right rows
SELECT pg_temp.read_all();
SELECT cachekit.last_outcome();
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared;
UPDATE pq_t SET v = 'new' WHERE id IN (1, 30);
SELECT pg_temp.read_all();
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared;
-- a lower limit applies at the next call
SET cachekit.max_prepared_queries = 2;
SELECT * FROM cachekit.cached_query('SELECT v FROM pq_t WHERE id = 2') AS r(v text);
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared;

-- nested calls: with room for one query, the outer call's plan is kept while
-- the inner one runs, and dropped afterwards
SET cachekit.max_prepared_queries = 1;
SET cachekit.uncacheable = bypass;
CREATE FUNCTION pq_inner(i int) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT v FROM cachekit.cached_query(format('SELECT v FROM pq_t WHERE id = %s', i)) AS r(v text));
END $$;
SELECT * FROM cachekit.cached_query('SELECT pq_inner(g) FROM generate_series(2, 6) g') AS r(v text);
SELECT cachekit.last_outcome();
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared;
SELECT * FROM cachekit.cached_query('SELECT v FROM pq_t WHERE id = 2') AS r(v text);
SELECT (cachekit.health() -> 'prepared_queries' ->> 'count')::int AS prepared;
RESET cachekit.max_prepared_queries;

-- a nested call after an invalidation that happened inside the outer call
-- prepares its query again instead of using the stale form (which would
-- hit the entry cached while the view read the other table)
CREATE TABLE pq_a (id int PRIMARY KEY, v text);
CREATE TABLE pq_b (id int PRIMARY KEY, v text);
INSERT INTO pq_a VALUES (1, 'from a');
INSERT INTO pq_b VALUES (1, 'from b');
SELECT cachekit.watch('pq_a');
SELECT cachekit.watch('pq_b');
CREATE VIEW pq_v AS SELECT v FROM pq_a;
CREATE FUNCTION pq_flip() RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    CREATE OR REPLACE VIEW pq_v AS SELECT v FROM pq_b;
    RETURN (SELECT v FROM cachekit.cached_query('SELECT v FROM pq_v') AS r(v text))
        || ' (' || cachekit.last_outcome() || ')';
END $$;
SELECT * FROM cachekit.cached_query('SELECT v FROM pq_v') AS r(v text);
SELECT * FROM cachekit.cached_query('SELECT v FROM pq_v') AS r(v text);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT pq_flip()') AS r(v text);
SELECT * FROM cachekit.cached_query('SELECT v FROM pq_v') AS r(v text);
RESET cachekit.uncacheable;

-- a new operator earlier in search_path: Postgres re-analyses every plan
-- (the same text now calls another function); so must the prepared query,
-- whose key holds the analysed form. Without it the next call hit the
-- result of the old operator. The functions exist before, so that only the
-- operator's invalidation is new.
CREATE SCHEMA pq_s;
CREATE FUNCTION public.pq_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE FUNCTION pq_s.pq_ne(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 <> $2';
CREATE OPERATOR public.=== (FUNCTION = public.pq_eq, LEFTARG = int, RIGHTARG = int);
CREATE TABLE pq_o (id int PRIMARY KEY);
INSERT INTO pq_o SELECT generate_series(1, 5);
SELECT cachekit.watch('pq_o');
SET search_path = pq_s, public;
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM pq_o WHERE id === 1') AS r(n bigint);
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM pq_o WHERE id === 1') AS r(n bigint);
SELECT cachekit.last_outcome();
CREATE OPERATOR pq_s.=== (FUNCTION = pq_s.pq_ne, LEFTARG = int, RIGHTARG = int);
SELECT count(*) AS direct FROM pq_o WHERE id === 1;
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM pq_o WHERE id === 1') AS r(n bigint);
SELECT cachekit.last_outcome();
RESET search_path;
DROP SCHEMA pq_s CASCADE;
DROP OPERATOR public.=== (int, int);
DROP FUNCTION public.pq_eq(int, int);
DROP TABLE pq_o;

DROP VIEW pq_v;
DROP TABLE pq_t, pq_a, pq_b;
DROP FUNCTION pq_inner(int), pq_flip();
