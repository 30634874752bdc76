-- Key/value cache functions against the sandbox Redis.
SELECT cachekit.cache_clear('regress:');

-- text, bytea and jsonb values
SELECT cachekit.cache_set('regress:greeting', 'hello');
SELECT cachekit.cache_get('regress:greeting');
SELECT cachekit.cache_exists('regress:greeting'), cachekit.cache_exists('regress:absent');
SELECT cachekit.cache_get('regress:absent') IS NULL AS miss_is_null;

SELECT cachekit.cache_set('regress:bin', '\x00010200ff00'::bytea);
SELECT cachekit.cache_get_bytea('regress:bin');
SELECT length(cachekit.cache_get_bytea('regress:bin'));

SELECT cachekit.cache_set('regress:doc', '{"b": [1, 2, {"c": null}], "a": "x"}'::jsonb);
SELECT cachekit.cache_get_jsonb('regress:doc');
SELECT cachekit.cache_get('regress:doc');     -- jsonb is stored as its text form

-- values round-trip byte for byte, whatever they contain
SELECT cachekit.cache_set('regress:utf8', 'grüße, 東京, 🎉');
SELECT cachekit.cache_get('regress:utf8');
SELECT cachekit.cache_set('regress:allbytes', decode(string_agg(lpad(to_hex(b), 2, '0'), ''), 'hex'))
  FROM generate_series(0, 255) b;
SELECT cachekit.cache_get_bytea('regress:allbytes') =
       decode(string_agg(lpad(to_hex(b), 2, '0'), ''), 'hex') AS all_256_bytes_roundtrip
  FROM generate_series(0, 255) b;

-- binary values cannot be read as text or jsonb
\set VERBOSITY default
SELECT cachekit.cache_get('regress:bin');
SELECT cachekit.cache_set('regress:notjson', 'not json');
SELECT cachekit.cache_get_jsonb('regress:notjson');

-- keys are binary-safe text; spaces, colons, glob characters are literal
SELECT cachekit.cache_set('regress:we*ird [key]?', 'w');
SELECT cachekit.cache_get('regress:we*ird [key]?'), cachekit.cache_get('regress:weXird [key]?');

-- ttl
SELECT cachekit.cache_set('regress:ttl', 'v', 100);
SELECT cachekit.cache_ttl('regress:ttl') BETWEEN 99 AND 100 AS ttl_set;
SELECT cachekit.cache_expire('regress:ttl', 5000);
SELECT cachekit.cache_ttl('regress:ttl') BETWEEN 4999 AND 5000 AS ttl_extended;
SELECT cachekit.cache_expire('regress:absent', 10);
SELECT cachekit.cache_ttl('regress:absent') IS NULL AS absent_ttl_null;
SET cachekit.default_ttl = 42;
SELECT cachekit.cache_set('regress:dflt', 'v');
SELECT cachekit.cache_ttl('regress:dflt') BETWEEN 41 AND 42 AS default_ttl_used;
RESET cachekit.default_ttl;
SELECT cachekit.cache_set('regress:short', 'v', 1);
SELECT pg_sleep(2.1);
SELECT cachekit.cache_get('regress:short') IS NULL AS expired,
       cachekit.cache_exists('regress:short') AS still_exists;

-- counters
SELECT cachekit.cache_incr('regress:n');
SELECT cachekit.cache_incr('regress:n', 41);
SELECT cachekit.cache_incr('regress:n', -50);
SELECT cachekit.cache_ttl('regress:n') BETWEEN 1 AND 300 AS counter_has_ttl;
SELECT cachekit.cache_incr('regress:greeting');
SELECT cachekit.cache_set('regress:big', '9223372036854775807');
SELECT cachekit.cache_incr('regress:big');

-- delete and clear
SELECT cachekit.cache_delete('regress:greeting', 'regress:bin', 'regress:absent');
SELECT cachekit.cache_get('regress:greeting') IS NULL AS deleted;
SELECT cachekit.cache_delete(VARIADIC ARRAY[]::text[]);
SELECT cachekit.cache_set('regress:clear:' || g, g::text) FROM generate_series(1, 2500) g \g /dev/null
SELECT cachekit.cache_set('regress:clearX', 'keep');
SELECT cachekit.cache_clear('regress:clear:');
SELECT cachekit.cache_get('regress:clearX');
SELECT cachekit.cache_clear('regress:we*');    -- a literal prefix, not a pattern
SELECT cachekit.cache_get('regress:we*ird [key]?') IS NULL AS cleared_literal_prefix;

-- keys live under cachekit.key_prefix and the kv: namespace
SET cachekit.key_prefix = 'other:';
SELECT cachekit.cache_get('regress:doc') IS NULL AS other_prefix_misses;
SELECT cachekit.cache_set('regress:doc', 'other');
RESET cachekit.key_prefix;
SELECT cachekit.cache_get_jsonb('regress:doc');
SET cachekit.key_prefix = 'other:';
SELECT cachekit.cache_clear('');
RESET cachekit.key_prefix;

-- bad input: each with its SQLSTATE
SELECT regress.error_of(q) FROM (VALUES
    ($$SELECT cachekit.cache_set(NULL, 'v')$$),
    ($$SELECT cachekit.cache_get(NULL)$$),
    ($$SELECT cachekit.cache_set('', 'v')$$),
    ($$SELECT cachekit.cache_set(repeat('k', 513), 'v')$$),
    ($$SELECT cachekit.cache_set(repeat('k', 512), 'v')$$),
    ($$SELECT cachekit.cache_set('regress:k', NULL::text)$$),
    ($$SELECT cachekit.cache_set('regress:k', 'v', 0)$$),
    ($$SELECT cachekit.cache_set('regress:k', 'v', -5)$$),
    ($$SELECT cachekit.cache_expire('regress:k', NULL)$$),
    ($$SELECT cachekit.cache_incr('regress:k', NULL)$$),
    ($$SELECT cachekit.cache_delete('regress:a', NULL)$$),
    ($$SELECT cachekit.cache_delete(VARIADIC NULL::text[])$$),
    ($$SELECT cachekit.cache_clear(NULL)$$),
    ($$SET cachekit.default_ttl = 0$$),
    ($$SET cachekit.key_prefix = 'ck:regress:this-prefix-is-longer-than-sixty-four-bytes-which-is-the-limit:'$$),
    ($$SET cachekit.redis_url = 'http://127.0.0.1:6379'$$),
    ($$SET cachekit.redis_url = 'redis://:s3cret-pw@127.0.0.1:99999/0'$$)
) AS t(q);
SET cachekit.max_value_bytes = 10;
SELECT regress.error_of($$SELECT cachekit.cache_set('regress:k', repeat('v', 11))$$);
SELECT cachekit.cache_set('regress:k', repeat('v', 10));
RESET cachekit.max_value_bytes;

SELECT cachekit.cache_clear('regress:');
SELECT cachekit.cache_delete(repeat('k', 512));
