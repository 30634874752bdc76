-- Warm-up of pgpool's query cache for agg_direct.sql: keys 1000..20000 in order.
SELECT nextval('bench_warm_seq') * 1000 AS a \gset
SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :a AND :a+5000 GROUP BY bid;
