-- Read-your-writes probe, plain SQL (run through pgpool): read a sum over the
-- aggregated range, update one row of it, read the very same text again.
-- The second read must see the update: s1 = s0 + 7. pgbench -t 3 on one
-- connection, so -M prepared re-executes the prepared statements.
SELECT sum(abalance) AS s FROM pgbench_accounts WHERE aid BETWEEN 1000 AND 26000 \gset
\set s0 :s
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid = 1001;
END;
SELECT sum(abalance) AS s FROM pgbench_accounts WHERE aid BETWEEN 1000 AND 26000 \gset
\shell echo probe :s0 :s
