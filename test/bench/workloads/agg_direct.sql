-- (b) ~1 ms aggregate over 5001 rows, 20 distinct keys, plain SQL.
\set a random(1,20) * 1000
SELECT bid, count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :a AND :a+5000 GROUP BY bid;
