-- Redis down, hung and back: reads miss, writes are skipped, one WARNING per
-- outage, the circuit breaker makes each call fail fast, and the backend
-- recovers by itself. Stops and restarts the sandbox's real Redis.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cachekit;
CREATE EXTENSION IF NOT EXISTS pgtap;
RESET client_min_messages;
SET cachekit.redis_connect_timeout_ms = 200;
SET cachekit.redis_command_timeout_ms = 200;
SET cachekit.redis_retry_interval_ms = 60000;

CREATE FUNCTION pg_temp.timed(sql text) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE sql;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SET client_min_messages = error;   -- the outage WARNING is checked by the regress suite

SELECT plan(22);

SELECT ok(cachekit.cache_set('tap:down:k', 'before'), 'write while Redis is up');
SELECT is(cachekit.cache_get('tap:down:k'), 'before', 'read while Redis is up');

\! test/sandbox redis-stop >/dev/null 2>&1

-- First call after the outage: fails (connection refused), opens the breaker.
SELECT is(cachekit.cache_get('tap:down:k'), NULL, 'read during outage is a miss');
SELECT is(cachekit.cache_set('tap:down:k', 'during'), false, 'write during outage is skipped');
SELECT is(cachekit.cache_exists('tap:down:k'), false, 'exists during outage is false');
SELECT is(cachekit.cache_delete('tap:down:k'), 0, 'delete during outage deletes nothing');
SELECT is(cachekit.cache_incr('tap:down:n'), NULL, 'incr during outage is NULL');
SELECT is(cachekit.session_get('tap-sid'), NULL, 'session read during outage is a miss');
SELECT is(cachekit.health() ->> 'healthy', 'false', 'health() reports the outage');
SELECT is(cachekit.health() -> 'redis' ->> 'reachable', 'false', 'health() says Redis is unreachable');
SELECT is(cachekit.health() -> 'redis' -> 'circuit_breaker' ->> 'state', 'open', 'breaker is open');

-- While the breaker is open, 2000 calls cost far less than one connect timeout each.
SELECT cmp_ok(pg_temp.timed($$SELECT count(cachekit.cache_get('tap:down:' || g)) FROM generate_series(1, 2000) g$$),
              '<', 1000::double precision,
              '2000 reads with the breaker open take under 1 s in all (a shared CI box; each call costs microseconds)');

SET cachekit.strict = on;
SELECT throws_ok($$SELECT cachekit.cache_get('tap:down:k')$$, '08001', NULL,
                 'strict mode raises connection errors');
RESET cachekit.strict;

\! test/sandbox redis-start >/dev/null 2>&1

-- The breaker keeps failing fast until its interval passes; then one call retries.
SELECT is(cachekit.cache_get('tap:down:k'), NULL, 'still failing fast inside the retry interval');
SET cachekit.redis_retry_interval_ms = 100;
SELECT pg_sleep(0.15);
SELECT ok(cachekit.cache_set('tap:down:k', 'after'), 'write after recovery');
SELECT is(cachekit.cache_get('tap:down:k'), 'after', 'read after recovery');
SELECT is(cachekit.health() -> 'redis' -> 'circuit_breaker' ->> 'state', 'closed', 'breaker closed again');

-- A hung Redis (SIGSTOP: connects succeed, commands never answer).
SET cachekit.redis_retry_interval_ms = 60000;
SET cachekit.redis_command_timeout_ms = 100;
\! test/sandbox redis-pause >/dev/null 2>&1
SELECT cmp_ok(pg_temp.timed($$SELECT cachekit.cache_get('tap:down:k')$$), '<', 1000::double precision,
              'the first call to a hung Redis gives up after the command timeout');
SELECT cmp_ok(pg_temp.timed($$SELECT count(cachekit.cache_get('tap:down:' || g)) FROM generate_series(1, 200) g$$),
              '<', 1000::double precision,
              'later calls do not wait: 200 reads take under 1 s in all, not 200 command timeouts (20 s)');
\! test/sandbox redis-resume >/dev/null 2>&1
-- The 100 ms timeout was for the hang; a just-resumed Redis on a loaded
-- machine may take longer for one reply.
SET cachekit.redis_command_timeout_ms = 5000;
SET cachekit.redis_retry_interval_ms = 50;
SELECT pg_sleep(0.1);
SELECT is(cachekit.cache_get('tap:down:k'), 'after', 'recovers after a hang');
SELECT is(cachekit.cache_delete('tap:down:k', 'tap:down:n'), 1, 'cleanup');
SELECT ok((cachekit.health() -> 'redis' ->> 'rtt_ms')::float > 0, 'health() measures a round trip');

SELECT * FROM finish();
