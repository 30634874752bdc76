-- Floor: one Redis GET from the backend (cachekit.cache_get), nothing else.
SELECT cachekit.cache_get('bench:k');
