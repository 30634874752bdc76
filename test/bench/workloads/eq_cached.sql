-- Equality-keyed mixed workload, 95%: one customer's order count and total
-- through cachekit.cached_query (1,000 customers, 1,000 orders each).
\set c random(1, 1000)
SELECT * FROM cachekit.cached_query('SELECT count(*), sum(amount) FROM bench_orders WHERE customer_id = $1', ARRAY[:c::text]) AS r(n bigint, total bigint);
