-- Floor: one Redis GET from the backend (cachekit.cache_get), nothing else.
-- The key has no colon: pgbench -M prepared would take ':k' in 'bench:k' for
-- a variable and turn it into a parameter.
SELECT cachekit.cache_get('bench_floor_k');
