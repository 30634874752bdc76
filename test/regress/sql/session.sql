-- Session store: jsonb documents on the session Redis database (db 1 of
-- cachekit.redis_url unless cachekit.session_redis_url says otherwise).
SELECT cachekit.session_set('regress-sid-1', '{"user_id": 42, "roles": ["a", "b"]}');
SELECT cachekit.session_get('regress-sid-1');
SELECT cachekit.session_get('regress-sid-absent') IS NULL AS miss_is_null;

-- sessions are not cache keys, and cache keys are not sessions
SELECT cachekit.cache_get('regress-sid-1') IS NULL AS not_in_cache_namespace;
SELECT cachekit.cache_set('regress-sid-2', '{"x": 1}'::jsonb);
SELECT cachekit.session_get('regress-sid-2') IS NULL AS cache_key_not_a_session;
SELECT cachekit.cache_delete('regress-sid-2');

-- ttl: default cachekit.session_ttl, explicit, sliding with touch
SELECT cachekit.session_set('regress-sid-ttl', '{}', 5);
SELECT cachekit.session_touch('regress-sid-ttl', 3600);
SELECT cachekit.session_touch('regress-sid-absent');
SELECT cachekit.session_set('regress-sid-short', '{"n": 1}', 1);
SELECT pg_sleep(2.1);
SELECT cachekit.session_get('regress-sid-short') IS NULL AS expired;

-- overwrite and delete
SELECT cachekit.session_set('regress-sid-1', '{"user_id": 43}');
SELECT cachekit.session_get('regress-sid-1') ->> 'user_id' AS user_id;
SELECT cachekit.session_delete('regress-sid-1');
SELECT cachekit.session_delete('regress-sid-1');
SELECT cachekit.session_get('regress-sid-1') IS NULL AS deleted;

-- the session database is a separate Redis database from the cache
SELECT (cachekit.health() -> 'session_redis' ->> 'db')::int
     <> (cachekit.health() -> 'redis' ->> 'db')::int AS separate_databases;

SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT cachekit.session_set(NULL, '{}')$$),
    ($$SELECT cachekit.session_set('', '{}')$$),
    ($$SELECT cachekit.session_set('s', NULL)$$),
    ($$SELECT cachekit.session_set('s', '{}', 0)$$),
    ($$SELECT cachekit.session_touch('s', -1)$$),
    ($$SELECT cachekit.session_get(repeat('s', 600))$$),
    ($$SET cachekit.session_redis_url = 'redis://127.0.0.1:notaport/1'$$)
) AS t(q);
SELECT cachekit.session_delete('regress-sid-ttl');
