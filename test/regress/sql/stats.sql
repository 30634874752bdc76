-- cache_stats counts the operations of all backends since the last reset.
SELECT cachekit.cache_stats_reset();
SELECT gets, hits, misses, hit_rate, sets, deletes, errors, bytes_in, bytes_out, redis_ops,
       mean_op_time_ms IS NULL AS no_mean_yet, stats_reset > now() - interval '1 minute' AS reset_now
  FROM cachekit.cache_stats;

SELECT cachekit.cache_set('regress:stats:a', 'abcd');       -- 1 set, 4 bytes out
SELECT cachekit.cache_get('regress:stats:a');               -- 1 get, hit, 4 bytes in
SELECT cachekit.cache_get('regress:stats:absent');          -- 1 get, miss
SELECT cachekit.cache_delete('regress:stats:a', 'regress:stats:absent');  -- 1 delete
SELECT gets, hits, misses, hit_rate, sets, deletes, errors, bytes_in, bytes_out, redis_ops,
       mean_op_time_ms > 0 AS has_mean
  FROM cachekit.cache_stats;

SELECT cachekit.cache_stats_reset();
SELECT gets, sets, redis_ops FROM cachekit.cache_stats;
