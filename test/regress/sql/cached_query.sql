-- cached_query: hits, misses, invalidation at commit, parameters, the JSON
-- form, bypasses, namespaces and the statistics views.
SELECT cachekit.query_stats_reset();
CREATE TABLE cq_items (id int PRIMARY KEY, owner text NOT NULL, amount numeric NOT NULL, day date);
INSERT INTO cq_items SELECT g, 'user' || (g % 3), g * 10, date '2026-01-01' + g FROM generate_series(1, 12) g;
SELECT cachekit.watch('cq_items');
SELECT table_name, parent, partitioned FROM cachekit.watched_tables WHERE table_name = 'cq_items'::regclass;

CREATE FUNCTION pg_temp.totals() RETURNS TABLE (owner text, total numeric) LANGUAGE sql AS $$
    SELECT * FROM cachekit.cached_query('SELECT owner, sum(amount) FROM cq_items GROUP BY owner ORDER BY owner')
        AS r(owner text, total numeric) $$;

SELECT * FROM pg_temp.totals();
SELECT cachekit.last_outcome();
SELECT * FROM pg_temp.totals();
SELECT cachekit.last_outcome();

-- a committed write invalidates; a rolled-back one does not
UPDATE cq_items SET amount = amount + 1000 WHERE id = 3;
SELECT * FROM pg_temp.totals();
SELECT cachekit.last_outcome();
BEGIN;
UPDATE cq_items SET amount = 0;
ROLLBACK;
SELECT * FROM pg_temp.totals();
SELECT cachekit.last_outcome();

-- parameters: types are inferred like PREPARE's; values and NULLs are part of the key
SELECT * FROM cachekit.cached_query('SELECT id, amount FROM cq_items WHERE id = $1', ARRAY['4'])
    AS r(id int, amount numeric);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT id, amount FROM cq_items WHERE id = $1', ARRAY['5'])
    AS r(id int, amount numeric);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT id, amount FROM cq_items WHERE id = $1', ARRAY['4'])
    AS r(id int, amount numeric);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cq_items WHERE day > $1 AND owner = $2',
                                    ARRAY['2026-01-10', 'user1']) AS r(n bigint);
SELECT * FROM cachekit.cached_query('SELECT coalesce($1, ''none'') AS v', ARRAY[NULL]) AS r(v text);
SELECT * FROM cachekit.cached_query('SELECT coalesce($1, ''none'') AS v', ARRAY['']) AS r(v text);

-- NULLs and every value survive the round trip through Redis
SELECT * FROM cachekit.cached_query('SELECT NULL::int AS a, ''''::text AS b, ''x\y"z''::text AS c, day FROM cq_items WHERE id = 1')
    AS r(a int, b text, c text, day date);
SELECT * FROM cachekit.cached_query('SELECT NULL::int AS a, ''''::text AS b, ''x\y"z''::text AS c, day FROM cq_items WHERE id = 1')
    AS r(a int, b text, c text, day date);
SELECT cachekit.last_outcome();

-- the JSON form
SELECT cachekit.cached_query_json('SELECT id, owner FROM cq_items WHERE id <= $1 ORDER BY id', ARRAY['2']);
SELECT cachekit.cached_query_json('SELECT id, owner FROM cq_items WHERE id <= $1 ORDER BY id', ARRAY['2']);
SELECT cachekit.last_outcome();
SELECT cachekit.cached_query_json('SELECT id FROM cq_items WHERE id < 0');

-- a transaction that wrote a dependency reads its own writes, uncached
BEGIN;
UPDATE cq_items SET amount = -1 WHERE id = 4;
SELECT * FROM cachekit.cached_query('SELECT id, amount FROM cq_items WHERE id = $1', ARRAY['4'])
    AS r(id int, amount numeric);
SELECT cachekit.last_outcome();
ROLLBACK;
-- REPEATABLE READ and SERIALIZABLE read their own snapshot, uncached
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM cachekit.cached_query('SELECT id, amount FROM cq_items WHERE id = $1', ARRAY['4'])
    AS r(id int, amount numeric);
SELECT cachekit.last_outcome();
COMMIT;

-- manual invalidation, per table and for the whole database
SELECT cachekit.invalidate('cq_items');
SELECT * FROM pg_temp.totals() LIMIT 1;
SELECT cachekit.last_outcome();
SELECT * FROM pg_temp.totals() LIMIT 1;
SELECT cachekit.last_outcome();
SELECT cachekit.invalidate_all();
SELECT * FROM pg_temp.totals() LIMIT 1;
SELECT cachekit.last_outcome();

-- results above cachekit.max_result_bytes are returned, not stored
SET cachekit.max_result_bytes = 100;
SELECT count(*) FROM cachekit.cached_query('SELECT * FROM cq_items')
    AS r(id int, owner text, amount numeric, day date);
SELECT cachekit.last_outcome();
RESET cachekit.max_result_bytes;

-- namespaces: part of the key, with their own default ttl
SELECT cachekit.set_namespace_ttl('reports', 77);
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cq_items', namespace => 'reports') AS r(n bigint);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cq_items') AS r(n bigint);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM cq_items', namespace => 'reports') AS r(n bigint);
SELECT cachekit.last_outcome();
SELECT namespace, ttl FROM cachekit.namespace_ttls;

-- statistics
SELECT namespace, query, calls, hits, misses, bypassed, hit_rate, rows > 0 AS has_rows,
       mean_hit_ms > 0 AS timed_hits, mean_miss_ms > 0 AS timed_misses, slow
  FROM cachekit.query_stats ORDER BY query, namespace NULLS FIRST;
SELECT bypasses FROM cachekit.query_stats WHERE query = 'SELECT id, amount FROM cq_items WHERE id = $1';
SELECT table_name, invalidations, last_invalidation IS NOT NULL AS has_time
  FROM cachekit.table_stats WHERE table_name = 'cq_items'::regclass;
SELECT cachekit.query_stats_reset();
SELECT count(*) FROM cachekit.query_stats;

-- bad input
SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT * FROM cachekit.cached_query(NULL) AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT 1', ttl => 0) AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT id FROM cq_items WHERE id = $1') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT id FROM cq_items WHERE id = $1', ARRAY['1', '2']) AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT id FROM cq_items WHERE id = $1', ARRAY['one']) AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT id, owner FROM cq_items') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT owner FROM cq_items') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELEC 1') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT 1; SELECT 2') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT * FROM no_such_table') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('INSERT INTO cq_items VALUES (100, ''x'', 1) RETURNING id') AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT 1', namespace => repeat('n', 64)) AS r(a int)$$),
    ($$SELECT * FROM cachekit.cached_query('SELECT 1', depends_on => ARRAY[NULL]::regclass[]) AS r(a int)$$),
    ($$SELECT cachekit.watch('pg_temp.nope')$$),
    ($$SELECT cachekit.set_namespace_ttl('x', 0)$$)
) AS t(q);
SELECT count(*) AS no_row_inserted FROM cq_items WHERE id = 100;
