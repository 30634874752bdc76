-- The L1 tier: cached_query results in shared memory, under their Redis key.
-- How a call was served comes from cachekit.query_stats: l1_hits counts the
-- hits served from shared memory, hits all hits.
CREATE TABLE l1_t (id int PRIMARY KEY, v int);
INSERT INTO l1_t SELECT g, g FROM generate_series(1, 100) g;
SELECT cachekit.watch('l1_t');
SHOW cachekit.l1;
SHOW cachekit.l1_max_entry;

-- 'sum source': source is l1, redis (a hit from Redis), or last_outcome().
CREATE FUNCTION pg_temp.served(sql text, p int, ttl int DEFAULT NULL) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    h0 bigint; l0 bigint; h1 bigint; l1 bigint; s text;
BEGIN
    SELECT coalesce(sum(hits), 0), coalesce(sum(l1_hits), 0) INTO h0, l0
      FROM cachekit.query_stats WHERE query = sql;
    SELECT r.s INTO s FROM cachekit.cached_query(sql, ARRAY[p::text], ttl) AS r(s text);
    SELECT coalesce(sum(hits), 0), coalesce(sum(l1_hits), 0) INTO h1, l1
      FROM cachekit.query_stats WHERE query = sql;
    RETURN s || ' ' || CASE WHEN l1 > l0 THEN 'l1' WHEN h1 > h0 THEN 'redis'
                            ELSE cachekit.last_outcome() END;
END $$;
CREATE FUNCTION pg_temp.sum_to(p int, ttl int DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT pg_temp.served('SELECT sum(v)::text FROM l1_t WHERE id <= $1', p, ttl) $$;

-- a miss fills L1 and Redis; the next call is served from L1
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(10);

-- a Redis hit fills L1: stored with L1 off (Redis only), then read with it on
SET cachekit.l1 = off;
SELECT pg_temp.sum_to(20);
SELECT pg_temp.sum_to(20);
RESET cachekit.l1;
SELECT pg_temp.sum_to(20);
SELECT pg_temp.sum_to(20);

-- with L1 off for the session, hits come from Redis although L1 has them
SET cachekit.l1 = off;
SELECT pg_temp.sum_to(10);
RESET cachekit.l1;
SELECT pg_temp.sum_to(10);

-- a commit changes the key: the next call misses (never the old L1 entry)
UPDATE l1_t SET v = v + 1000 WHERE id = 1;
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(20);
-- also for a write of the database's generation (invalidate_all)
SELECT cachekit.invalidate_all();
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(10);
-- and inside the transaction that wrote the table: bypassed, its own rows
BEGIN;
UPDATE l1_t SET v = v + 1000 WHERE id = 2;
SELECT pg_temp.sum_to(10);
ROLLBACK;
SELECT pg_temp.sum_to(10);

-- the JSON form shares the tier
SELECT cachekit.cached_query_json('SELECT id, v FROM l1_t WHERE id <= $1 ORDER BY id', ARRAY['2']);
SELECT cachekit.cached_query_json('SELECT id, v FROM l1_t WHERE id <= $1 ORDER BY id', ARRAY['2']);
SELECT l1_hits FROM cachekit.query_stats WHERE query = 'SELECT id, v FROM l1_t WHERE id <= $1 ORDER BY id';

-- roles: another role has its own entry (the role is in the key), and one
-- without SELECT on the table is refused before L1 is looked at
CREATE ROLE regress_l1_bob IN ROLE cachekit_user;
CREATE ROLE regress_l1_eve IN ROLE cachekit_user;
GRANT SELECT ON l1_t TO regress_l1_bob;
SET ROLE regress_l1_bob;
SELECT pg_temp.sum_to(10);
SELECT pg_temp.sum_to(10);
SET ROLE regress_l1_eve;
SELECT regress.error_of($$SELECT * FROM cachekit.cached_query('SELECT sum(v)::text FROM l1_t WHERE id <= $1', ARRAY['10']) AS r(s text)$$);
RESET ROLE;

-- a result above cachekit.l1_max_entry is served from Redis only
CREATE FUNCTION pg_temp.wide(p int) RETURNS text LANGUAGE sql AS $$
    SELECT regexp_replace(pg_temp.served('SELECT repeat(''x'', $1)', p), '^x+ ', '') $$;
SELECT (cachekit.health() -> 'l1' ->> 'too_large')::int AS too_large_before \gset
SET cachekit.l1_max_entry = '1kB';
SELECT pg_temp.wide(2000);
SELECT pg_temp.wide(2000);
SELECT pg_temp.wide(2000);
SELECT pg_temp.wide(500);
SELECT pg_temp.wide(500);
SELECT (cachekit.health() -> 'l1' ->> 'too_large')::int - :too_large_before AS too_large;
RESET cachekit.l1_max_entry;

-- ttl: an entry does not outlive its ttl in L1
SELECT pg_temp.sum_to(30, 3);
SELECT pg_temp.sum_to(30, 3);
SELECT pg_sleep(3.2);
SELECT pg_temp.sum_to(30, 3);
-- nor the Redis entry it was filled from: 4 s in Redis, read after 2 s, so
-- L1 keeps it for the remaining 2 s only (not 4)
SET cachekit.l1 = off;
SELECT pg_temp.sum_to(40, 4);
SELECT pg_sleep(2);
RESET cachekit.l1;
SELECT pg_temp.sum_to(40, 4);
SELECT pg_temp.sum_to(40, 4);
SELECT pg_sleep(2.5);
SELECT pg_temp.sum_to(40, 4);

-- Redis down: L1 still serves (the generations argument does not involve
-- Redis); a write still changes the key; without L1 the call bypasses
\set VERBOSITY terse
SET cachekit.redis_retry_interval_ms = 0;
SELECT pg_temp.sum_to(50);
\! test/sandbox redis-stop >/dev/null 2>&1
SELECT pg_temp.sum_to(50);
SELECT pg_temp.sum_to(50);
SET cachekit.l1 = off;
SELECT pg_temp.sum_to(50);
RESET cachekit.l1;
UPDATE l1_t SET v = v + 1000 WHERE id = 50;
SELECT pg_temp.sum_to(50);
\! test/sandbox redis-start >/dev/null 2>&1
SELECT pg_temp.sum_to(50);
SELECT pg_temp.sum_to(50);
RESET cachekit.redis_retry_interval_ms;
\set VERBOSITY default

-- health() and metrics() show the tier
SELECT jsonb_object_keys(cachekit.health() -> 'l1') ORDER BY 1;
SELECT (h ->> 'hits')::int > 0 AS hits, (h ->> 'entries')::int > 0 AS entries,
       (h ->> 'used_bytes')::int > 0 AS used, (h ->> 'size_bytes')::bigint = 64 * 1024 * 1024 AS size
FROM (SELECT cachekit.health() -> 'l1' AS h) AS s;
SELECT regexp_replace(line, ' [0-9.e+]+$', '') AS family
FROM regexp_split_to_table(cachekit.metrics(), E'\n') AS line
WHERE line LIKE 'cachekit_l1%';

DROP OWNED BY regress_l1_bob, regress_l1_eve;
DROP ROLE regress_l1_bob, regress_l1_eve;
SELECT cachekit.unwatch('l1_t');
DROP TABLE l1_t;
