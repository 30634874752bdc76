-- Mixed workload, 5%: update one account inside the aggregated range (aid 1000..25000).
-- In an explicit transaction for every variant: pgpool-II 4.3 in raw mode
-- leaves an autocommitted UPDATE sent with the extended protocol (-M extended,
-- -M prepared) inside its internal transaction, so pgbench aborts the client
-- ("end of script reached without completing the last transaction") and the
-- row lock stays held (same symptom as pgpool/pgpool2 issue #172).
\set aid random(1000, 25000)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
END;
