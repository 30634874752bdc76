-- (a) 1-row primary-key lookup through cachekit.cached_query (hit path once warmed).
\set aid random(1, :pk_keys)
SELECT * FROM cachekit.cached_query('SELECT abalance FROM pgbench_accounts WHERE aid = $1', ARRAY[:aid::text]) AS r(abalance int);
