-- pg_cachekit 0.1.0: key/value cache, session store, health and statistics.
\echo Use "CREATE EXTENSION pg_cachekit" to load this file. \quit

-- Group roles. Roles are cluster-wide: another database may have created them
-- already, and DROP EXTENSION leaves them (as it must; they may hold grants
-- elsewhere). Nothing here is granted to PUBLIC.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_user') THEN
        CREATE ROLE cachekit_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_session') THEN
        CREATE ROLE cachekit_session NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'cachekit_admin') THEN
        CREATE ROLE cachekit_admin NOLOGIN;
    END IF;
END
$roles$;

GRANT USAGE ON SCHEMA cachekit TO cachekit_user, cachekit_session, cachekit_admin;

-- Key/value cache ----------------------------------------------------------

CREATE FUNCTION cachekit.cache_set(key text, value text, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_text' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key text, value bytea, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_set(key text, value jsonb, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_set_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_get(key text)
RETURNS text AS 'MODULE_PATHNAME', 'ck_cache_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_bytea(key text)
RETURNS bytea AS 'MODULE_PATHNAME', 'ck_cache_get_bytea' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_get_jsonb(key text)
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_cache_get_jsonb' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION cachekit.cache_delete(VARIADIC keys text[])
RETURNS integer AS 'MODULE_PATHNAME', 'ck_cache_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_exists(key text)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_exists' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_ttl(key text)
RETURNS integer AS 'MODULE_PATHNAME', 'ck_cache_ttl' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_expire(key text, ttl integer)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_cache_expire' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_incr(key text, by bigint DEFAULT 1, ttl integer DEFAULT NULL)
RETURNS bigint AS 'MODULE_PATHNAME', 'ck_cache_incr' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.cache_clear(prefix text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ck_cache_clear' LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION cachekit.cache_set(text, text, integer) IS
    'Store a value under key for ttl seconds (default cachekit.default_ttl); false if Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_get(text) IS
    'The value stored under key, or NULL on a miss or when Redis is unavailable';
COMMENT ON FUNCTION cachekit.cache_delete(text[]) IS 'Delete keys; returns how many existed';
COMMENT ON FUNCTION cachekit.cache_ttl(text) IS
    'Remaining seconds to live; -1 for a key without expiry; NULL if the key does not exist';
COMMENT ON FUNCTION cachekit.cache_clear(text) IS
    'Delete every cache key starting with prefix (SCAN + UNLINK in batches); returns how many';

-- Session store -------------------------------------------------------------

CREATE FUNCTION cachekit.session_set(sid text, data jsonb, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_set' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_get(sid text)
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_session_get' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_touch(sid text, ttl integer DEFAULT NULL)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_touch' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION cachekit.session_delete(sid text)
RETURNS boolean AS 'MODULE_PATHNAME', 'ck_session_delete' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Health and statistics -----------------------------------------------------

CREATE FUNCTION cachekit.health()
RETURNS jsonb AS 'MODULE_PATHNAME', 'ck_health' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION cachekit.health() IS
    'Redis reachability, round trip, version, memory, eviction policy and circuit-breaker state';

CREATE FUNCTION cachekit.cache_stats(
    OUT gets bigint, OUT hits bigint, OUT misses bigint, OUT sets bigint, OUT deletes bigint,
    OUT errors bigint, OUT bytes_in bigint, OUT bytes_out bigint, OUT redis_ops bigint,
    OUT mean_op_time_ms double precision, OUT stats_reset timestamptz)
RETURNS record AS 'MODULE_PATHNAME', 'ck_cache_stats' LANGUAGE C VOLATILE PARALLEL SAFE;

CREATE VIEW cachekit.cache_stats AS
    SELECT s.gets, s.hits, s.misses,
           CASE WHEN s.gets > 0 THEN pg_catalog.round(s.hits::numeric / s.gets, 4) END AS hit_rate,
           s.sets, s.deletes, s.errors, s.bytes_in, s.bytes_out, s.redis_ops,
           s.mean_op_time_ms, s.stats_reset
    FROM cachekit.cache_stats() AS s;
COMMENT ON VIEW cachekit.cache_stats IS
    'Key/value and session operations of all backends since the last cache_stats_reset()';

CREATE FUNCTION cachekit.cache_stats_reset()
RETURNS void AS 'MODULE_PATHNAME', 'ck_cache_stats_reset' LANGUAGE C VOLATILE PARALLEL SAFE;

-- Privileges ----------------------------------------------------------------

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cachekit FROM PUBLIC;
REVOKE ALL ON cachekit.cache_stats FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    cachekit.cache_set(text, text, integer), cachekit.cache_set(text, bytea, integer),
    cachekit.cache_set(text, jsonb, integer), cachekit.cache_get(text),
    cachekit.cache_get_bytea(text), cachekit.cache_get_jsonb(text),
    cachekit.cache_delete(text[]), cachekit.cache_exists(text), cachekit.cache_ttl(text),
    cachekit.cache_expire(text, integer), cachekit.cache_incr(text, bigint, integer),
    cachekit.health(), cachekit.cache_stats()
TO cachekit_user;
GRANT SELECT ON cachekit.cache_stats TO cachekit_user;

GRANT EXECUTE ON FUNCTION
    cachekit.session_set(text, jsonb, integer), cachekit.session_get(text),
    cachekit.session_touch(text, integer), cachekit.session_delete(text)
TO cachekit_session;

GRANT EXECUTE ON FUNCTION cachekit.cache_clear(text), cachekit.cache_stats_reset()
TO cachekit_admin;
