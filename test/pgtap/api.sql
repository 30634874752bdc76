-- The SQL surface: every function with its signature, return type and grants.
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cachekit;
CREATE EXTENSION IF NOT EXISTS pgtap;
RESET client_min_messages;

SELECT plan(63);

SELECT has_schema('cachekit');
SELECT has_role(r) FROM unnest(ARRAY['cachekit_user', 'cachekit_session', 'cachekit_admin']) r;

SELECT function_returns('cachekit', f, args, ret) FROM (VALUES
    ('cache_set', ARRAY['text', 'text', 'integer'], 'boolean'),
    ('cache_set', ARRAY['text', 'bytea', 'integer'], 'boolean'),
    ('cache_set', ARRAY['text', 'jsonb', 'integer'], 'boolean'),
    ('cache_get', ARRAY['text'], 'text'),
    ('cache_get_bytea', ARRAY['text'], 'bytea'),
    ('cache_get_jsonb', ARRAY['text'], 'jsonb'),
    ('cache_delete', ARRAY['text[]'], 'integer'),
    ('cache_exists', ARRAY['text'], 'boolean'),
    ('cache_ttl', ARRAY['text'], 'integer'),
    ('cache_expire', ARRAY['text', 'integer'], 'boolean'),
    ('cache_incr', ARRAY['text', 'bigint', 'integer'], 'bigint'),
    ('cache_clear', ARRAY['text'], 'bigint'),
    ('session_set', ARRAY['text', 'jsonb', 'integer'], 'boolean'),
    ('session_get', ARRAY['text'], 'jsonb'),
    ('session_touch', ARRAY['text', 'integer'], 'boolean'),
    ('session_delete', ARRAY['text'], 'boolean'),
    ('health', ARRAY[]::text[], 'jsonb'),
    ('cache_stats_reset', ARRAY[]::text[], 'void'),
    ('cached_query', ARRAY['text', 'text[]', 'integer', 'text', 'regclass[]'], 'setof record'),
    ('cached_query_json', ARRAY['text', 'text[]', 'integer', 'text', 'regclass[]'], 'jsonb'),
    ('watch', ARRAY['regclass', 'text', 'text'], 'void'),
    ('unwatch', ARRAY['regclass'], 'void'),
    ('invalidate', ARRAY['regclass'], 'void'),
    ('invalidate_all', ARRAY[]::text[], 'void'),
    ('set_namespace_ttl', ARRAY['text', 'integer'], 'void'),
    ('last_outcome', ARRAY[]::text[], 'text'),
    ('last_dependencies', ARRAY[]::text[], 'jsonb'),
    ('query_stats_reset', ARRAY[]::text[], 'void'),
    ('table_stats_reset', ARRAY[]::text[], 'void')
) AS t(f, args, ret);
SELECT has_view('cachekit', v, v || ' view') FROM unnest(ARRAY['query_stats', 'table_stats', 'watched_tables']) v;
SELECT columns_are('cachekit', 'query_stats', ARRAY['namespace', 'fingerprint', 'query', 'calls', 'hits',
    'misses', 'bypassed', 'bypasses', 'hit_rate', 'mean_hit_ms', 'max_hit_ms', 'mean_miss_ms', 'max_miss_ms',
    'rows', 'bytes', 'last_invalidation', 'slow', 'userid', 'l1_hits', 'scope']);
SELECT function_privs_are('cachekit', 'cached_query', ARRAY['text', 'text[]', 'integer', 'text', 'regclass[]'],
                          'cachekit_user', ARRAY['EXECUTE']);
SELECT function_privs_are('cachekit', 'invalidate_all', ARRAY[]::text[], 'cachekit_user', ARRAY[]::text[]);
SELECT is(current_setting('cachekit.uncacheable'), 'error', 'uncacheable defaults to error');
SELECT throws_ok($$SET cachekit.uncacheable = 'sometimes'$$, '22023', NULL, 'uncacheable takes error or bypass');
SELECT is(current_setting('cachekit.max_watched_tables'), '4096', 'max_watched_tables defaults to 4096');
SELECT is(current_setting('cachekit.value_generations'), '65536', 'value_generations defaults to 65536');

SELECT has_view('cachekit', 'cache_stats', 'cache_stats view');
SELECT columns_are('cachekit', 'cache_stats', ARRAY['gets', 'hits', 'misses', 'hit_rate', 'sets',
    'deletes', 'errors', 'bytes_in', 'bytes_out', 'redis_ops', 'mean_op_time_ms', 'stats_reset']);

-- nothing for PUBLIC, everything through the group roles
CREATE ROLE tap_public_only;
SELECT is(count(*), 0::bigint, 'PUBLIC may execute no cachekit function')
  FROM pg_proc WHERE pronamespace = 'cachekit'::regnamespace
   AND has_function_privilege('tap_public_only', oid, 'EXECUTE');
SELECT ok(NOT has_table_privilege('tap_public_only', 'cachekit.cache_stats', 'SELECT'),
          'PUBLIC may not read cache_stats');
SELECT function_privs_are('cachekit', 'cache_get', ARRAY['text'], 'cachekit_user', ARRAY['EXECUTE']);
SELECT function_privs_are('cachekit', 'session_get', ARRAY['text'], 'cachekit_session', ARRAY['EXECUTE']);
SELECT function_privs_are('cachekit', 'session_get', ARRAY['text'], 'cachekit_user', ARRAY[]::text[]);
SELECT function_privs_are('cachekit', 'cache_clear', ARRAY['text'], 'cachekit_admin', ARRAY['EXECUTE']);
SELECT function_privs_are('cachekit', 'cache_clear', ARRAY['text'], 'cachekit_user', ARRAY[]::text[]);
SELECT function_privs_are('cachekit', 'cache_stats_reset', ARRAY[]::text[], 'cachekit_user', ARRAY[]::text[]);
DROP ROLE tap_public_only;

-- settings exist, with the documented defaults
SELECT is(current_setting('cachekit.default_ttl'), '5min', 'default_ttl is 300 s');
SELECT is(current_setting('cachekit.key_prefix'), 'ck:', 'key_prefix is ck:');
SELECT is(current_setting('cachekit.strict'), 'off', 'strict is off');
SELECT is(current_setting('cachekit.session_redis_url'), '', 'session_redis_url defaults to empty (db 1)');
CREATE ROLE tap_plain;
SET ROLE tap_plain;
SELECT throws_ok($$SET cachekit.redis_url = 'redis://127.0.0.1:1/0'$$, '42501', NULL,
                 'redis_url can only be set by superusers');
RESET ROLE;
DROP ROLE tap_plain;
SELECT is((SELECT context FROM pg_settings WHERE name = 'cachekit.key_prefix'), 'superuser',
          'key_prefix can only be set by superusers');
SELECT throws_ok($$SET cachekit.no_such_setting = 1$$, '42602', NULL,
                 'the cachekit. prefix is reserved: unknown settings are rejected');

-- a Redis key written through SQL is readable by any Redis client, byte for byte
SELECT ok(cachekit.cache_set('tap:api:raw', '\x00ff00'::bytea), 'store binary');
SELECT is(cachekit.cache_get_bytea('tap:api:raw'), '\x00ff00'::bytea, 'binary round trip with NUL bytes');
SELECT is(cachekit.cache_delete('tap:api:raw'), 1, 'delete');
SELECT * FROM finish();
