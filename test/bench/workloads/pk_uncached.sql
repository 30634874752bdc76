-- Mixed workload, 15%: PK lookup over the whole table, plain SQL, not cached by the application.
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
