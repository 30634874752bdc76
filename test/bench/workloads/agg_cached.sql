-- (b) the same aggregate through cachekit.cached_query.
\set a random(1,20) * 1000
SELECT * FROM cachekit.cached_query('SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1+5000 GROUP BY bid', ARRAY[:a::text]) AS r(bid int, count bigint, sum bigint);
