-- The key/value cache and the session store are per database: keys are
-- <key_prefix>kv:<namespace>:<key>, the namespace being the database's name
-- unless a superuser sets cachekit.kv_namespace (for instance with ALTER
-- DATABASE ... SET) to share deliberately. Statistics of other databases are
-- not returned either.
SELECT current_database() AS regress_db \gset
SELECT cachekit.cache_clear('kvns:');
SELECT cachekit.cache_set('kvns:cart:alice', 'mine');
SELECT cachekit.session_set('kvns-s1', '{"db": "mine"}');
CREATE TABLE kvns_t (id int);
SELECT cachekit.watch('kvns_t');
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM kvns_t') AS r(n bigint);

CREATE DATABASE regress_kv_other;
\c regress_kv_other
SET client_min_messages = warning;
CREATE EXTENSION pg_cachekit;
RESET client_min_messages;
SELECT cachekit.cache_get('kvns:cart:alice') IS NULL AS other_database_misses;
SELECT cachekit.cache_set('kvns:cart:alice', 'theirs');
SELECT cachekit.session_get('kvns-s1') IS NULL AS other_sessions_miss;
SELECT cachekit.session_set('kvns-s1', '{"db": "theirs"}');
SELECT cachekit.cache_clear('kvns:');
CREATE TABLE kvns_other (id int);
SELECT cachekit.watch('kvns_other');
SELECT * FROM cachekit.cached_query('SELECT count(*) FROM kvns_other') AS r(n bigint);
SELECT count(*) AS own_stats FROM cachekit.query_stats() WHERE query LIKE '%kvns_other%';

\c :regress_db
-- untouched by the other database's writes and cache_clear
SELECT cachekit.cache_get('kvns:cart:alice');
SELECT cachekit.session_get('kvns-s1');
\! redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern 'ck:kv:*kvns:cart:alice' | sort
-- no statistics of the other database, not even from the functions
SELECT count(*) AS foreign_query_stats FROM cachekit.query_stats()
 WHERE dbid <> (SELECT oid FROM pg_database WHERE datname = current_database()) OR query LIKE '%kvns_other%';
SELECT count(*) AS foreign_table_stats FROM cachekit.table_stats()
 WHERE dbid <> (SELECT oid FROM pg_database WHERE datname = current_database());

-- Sharing on purpose: the other database uses this one's namespace.
ALTER DATABASE regress_kv_other SET cachekit.kv_namespace = :'regress_db';
\c regress_kv_other
SELECT cachekit.cache_get('kvns:cart:alice');
SELECT cachekit.session_get('kvns-s1');
SHOW cachekit.kv_namespace;
\c :regress_db
-- only a superuser may choose the namespace
CREATE ROLE regress_kvns LOGIN IN ROLE cachekit_user;
SET ROLE regress_kvns;
SELECT regress.error_of($$SET cachekit.kv_namespace = 'someone-else'$$);
RESET ROLE;
SELECT regress.error_of($$SET cachekit.kv_namespace = '$$ || repeat('n', 64) || $$'$$);
DROP ROLE regress_kvns;
DROP DATABASE regress_kv_other WITH (FORCE);
SELECT cachekit.cache_delete('kvns:cart:alice');
SELECT cachekit.session_delete('kvns-s1');
DROP TABLE kvns_t;
