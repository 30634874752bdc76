-- Every reason a query cannot be cached safely: the error names it, the HINT
-- the fix; cachekit.uncacheable = bypass runs it uncached instead (counted).
CREATE TABLE cu_watched (id int PRIMARY KEY, v int);
CREATE TABLE cu_unwatched (id int PRIMARY KEY, v int);
INSERT INTO cu_watched VALUES (1, 10), (2, 20);
INSERT INTO cu_unwatched VALUES (1, 100);
SELECT cachekit.watch('cu_watched');
CREATE TEMP TABLE cu_temp (id int);
CREATE MATERIALIZED VIEW cu_matview AS SELECT * FROM cu_watched;
CREATE VIEW cu_view_ok AS SELECT id, v * 2 AS v2 FROM cu_watched;
CREATE VIEW cu_view_bad AS SELECT w.id, u.v FROM cu_watched w JOIN cu_unwatched u USING (id);
-- inlinable SQL function: its tables become the query's own dependencies
CREATE FUNCTION cu_sql_srf(int) RETURNS TABLE (v int) LANGUAGE sql STABLE AS 'SELECT v FROM cu_watched WHERE id = $1';
CREATE FUNCTION cu_sql_reads_unwatched() RETURNS SETOF cu_unwatched LANGUAGE sql STABLE AS 'SELECT * FROM cu_unwatched';
-- not inlinable: its tables are invisible (a scalar SQL function that reads a
-- table is never inlined, nor is PL/pgSQL)
CREATE FUNCTION cu_sql_scalar(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT v FROM cu_watched WHERE id = $1';
CREATE SEQUENCE cu_seq;
CREATE FUNCTION cu_plpgsql_stable(int) RETURNS int LANGUAGE plpgsql STABLE AS
    'BEGIN RETURN (SELECT v FROM cu_unwatched WHERE id = $1); END';
CREATE FUNCTION cu_immutable(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN $1 * 3; END';
CREATE FUNCTION cu_volatile() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';

SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_unwatched') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_watched WHERE v > random()') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT cu_volatile()') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT cu_plpgsql_stable(1)') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT cu_sql_scalar(1)') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('WITH d AS (DELETE FROM cu_watched WHERE false RETURNING *) SELECT id FROM d') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_watched FOR UPDATE') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_watched FOR SHARE') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT id FROM cu_temp') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_matview') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_view_bad') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_sql_reads_unwatched()') AS r(v int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT nextval(''cu_seq'')') AS r(v bigint)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT last_value FROM cu_seq') AS r(v bigint)$$)
) AS t(q);

-- cacheable: views and inlined SQL functions over watched tables, IMMUTABLE
-- functions, and non-inlined functions whose tables are named in depends_on
SELECT * FROM cachekit.cached_query('SELECT v2 FROM cu_view_ok ORDER BY id') AS r(v int);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT v FROM cu_sql_srf(2)') AS r(v int);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT cu_immutable(v) FROM cu_watched ORDER BY id') AS r(v int);
SELECT cachekit.last_outcome();
SELECT cachekit.watch('cu_unwatched');
SELECT * FROM cachekit.cached_query('SELECT cu_plpgsql_stable(1)', depends_on => ARRAY['cu_unwatched']::regclass[]) AS r(v int);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT cu_plpgsql_stable(1)', depends_on => ARRAY['cu_unwatched']::regclass[]) AS r(v int);
SELECT cachekit.last_outcome();
-- ... and a write to a depends_on table invalidates
UPDATE cu_unwatched SET v = 101;
SELECT * FROM cachekit.cached_query('SELECT cu_plpgsql_stable(1)', depends_on => ARRAY['cu_unwatched']::regclass[]) AS r(v int);
SELECT cachekit.last_outcome();
-- the inlined function's table is a dependency: a write to it invalidates
UPDATE cu_watched SET v = 21 WHERE id = 2;
SELECT * FROM cachekit.cached_query('SELECT v FROM cu_sql_srf(2)') AS r(v int);
SELECT cachekit.last_outcome();
SELECT cachekit.unwatch('cu_unwatched');
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT v FROM cu_unwatched') AS r(v int)$$);

-- bypass mode: correct rows, counted
SET cachekit.uncacheable = bypass;
SELECT * FROM cachekit.cached_query('SELECT v FROM cu_unwatched') AS r(v int);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT v FROM cu_watched WHERE id = 1 FOR UPDATE') AS r(v int);
SELECT cachekit.last_outcome();
RESET cachekit.uncacheable;
SELECT calls, bypasses ->> 'uncacheable' AS uncacheable
  FROM cachekit.query_stats WHERE query = 'SELECT v FROM cu_unwatched';
