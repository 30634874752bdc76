-- Thundering herd: every client asks for the same heavy aggregate (over the
-- whole of pgbench_accounts) right after it was invalidated.
SELECT * FROM cachekit.cached_query('SELECT bid, count(*), sum(abalance), max(abalance) FROM pgbench_accounts GROUP BY bid') AS r(bid int, n bigint, s bigint, m int);
