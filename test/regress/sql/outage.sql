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
