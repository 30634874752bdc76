-- Read-your-writes probe through cachekit.cached_query (see probe_plain.sql).
SELECT s FROM cachekit.cached_query('SELECT sum(abalance)::bigint AS s FROM pgbench_accounts WHERE aid BETWEEN 1000 AND 26000') AS r(s bigint) \gset
\set s0 :s
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 1001;
END;
SELECT s FROM cachekit.cached_query('SELECT sum(abalance)::bigint AS s FROM pgbench_accounts WHERE aid BETWEEN 1000 AND 26000') AS r(s bigint) \gset
\shell echo probe :s0 :s
