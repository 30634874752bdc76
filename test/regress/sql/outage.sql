-- One WARNING per outage and backend, however many calls fail, and again for
-- the next outage. Stops and restarts the sandbox's real Redis.
\set VERBOSITY terse
SET cachekit.redis_retry_interval_ms = 0;   -- no breaker delay: every call really retries
SELECT cachekit.cache_set('regress:outage', 'before');
\! test/sandbox redis-stop >/dev/null 2>&1
SELECT cachekit.cache_get('regress:outage') IS NULL AS miss;   -- the one WARNING
SELECT cachekit.cache_set('regress:outage', 'during');          -- skipped, silent
SELECT cachekit.session_get('sid') IS NULL AS miss;            -- other connection: its own outage
SELECT count(cachekit.cache_get('regress:outage:' || g)) FROM generate_series(1, 50) g;
SELECT (cachekit.health() -> 'redis' -> 'circuit_breaker' ->> 'outages')::int >= 1 AS outage_counted;
\! test/sandbox redis-start >/dev/null 2>&1
SELECT cachekit.cache_get('regress:outage') IS NULL AS skipped_write_not_applied;  -- Redis restarted empty
SELECT cachekit.cache_set('regress:outage', 'after');
\! test/sandbox redis-stop >/dev/null 2>&1
SELECT cachekit.cache_get('regress:outage') IS NULL AS miss;   -- a new outage: WARNING again
SELECT cachekit.cache_get('regress:outage') IS NULL AS miss;
\! test/sandbox redis-start >/dev/null 2>&1
SELECT cachekit.cache_get('regress:outage');
SELECT cachekit.cache_delete('regress:outage');

-- Redis full (maxmemory reached, noeviction): writes are skipped with one
-- WARNING, reads still work; strict mode raises 53200.
SELECT cachekit.cache_set('regress:full', 'kept');
\! redis-cli -p "$CACHEKIT_REDIS_PORT" config set maxmemory 1 >/dev/null
SELECT cachekit.cache_set('regress:full', repeat('x', 1000)) AS stored;   -- WARNING
SELECT cachekit.cache_set('regress:full2', 'y') AS stored;                -- silent
SELECT cachekit.cache_get('regress:full') AS still_readable;
SET cachekit.strict = on;
SELECT regress.error_of($$SELECT cachekit.cache_set('regress:full', 'z')$$);
RESET cachekit.strict;
\! redis-cli -p "$CACHEKIT_REDIS_PORT" config set maxmemory 0 >/dev/null
SELECT cachekit.cache_set('regress:full', 'fits again') AS stored;

-- Redis wants a password we do not have: calls are skipped with one WARNING.
\! redis-cli -p "$CACHEKIT_REDIS_PORT" config set requirepass regress-pw >/dev/null
SET cachekit.redis_connect_timeout_ms = 201;   -- new timeouts: a new connection
SELECT cachekit.cache_get('regress:full') IS NULL AS miss;                -- WARNING
SELECT cachekit.cache_get('regress:full') IS NULL AS miss;                -- silent
\! redis-cli -p "$CACHEKIT_REDIS_PORT" -a regress-pw --no-auth-warning config set requirepass '' >/dev/null
SELECT cachekit.cache_get('regress:full');
SELECT cachekit.cache_delete('regress:full', 'regress:full2');

-- cached_query with Redis down: correct rows, from the database, counted
CREATE TABLE outage_t (id int PRIMARY KEY, v text);
INSERT INTO outage_t VALUES (1, 'one');
SELECT cachekit.watch('outage_t');
SELECT * FROM cachekit.cached_query('SELECT v FROM outage_t WHERE id = $1', ARRAY['1']) AS r(v text);
SELECT cachekit.last_outcome();
\! test/sandbox redis-stop >/dev/null 2>&1
UPDATE outage_t SET v = 'uno';
SELECT * FROM cachekit.cached_query('SELECT v FROM outage_t WHERE id = $1', ARRAY['1']) AS r(v text);
SELECT cachekit.last_outcome();
\! test/sandbox redis-start >/dev/null 2>&1
SET cachekit.redis_retry_interval_ms = 0;
SELECT * FROM cachekit.cached_query('SELECT v FROM outage_t WHERE id = $1', ARRAY['1']) AS r(v text);
SELECT cachekit.last_outcome();
SELECT * FROM cachekit.cached_query('SELECT v FROM outage_t WHERE id = $1', ARRAY['1']) AS r(v text);
SELECT cachekit.last_outcome();
SELECT bypasses ->> 'redis_unavailable' AS redis_unavailable
  FROM cachekit.query_stats WHERE query = 'SELECT v FROM outage_t WHERE id = $1';
DROP TABLE outage_t;
