-- Mixed workload, 5%: update one account inside the aggregated range (aid 1000..25000).
\set aid random(1000, 25000)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
