-- Warm-up of pgpool's query cache for pk_direct.sql: walks keys 1..N in order
-- (a sequence through \gset), then sends the very text pk_direct.sql sends.
SELECT nextval('bench_warm_seq') AS aid \gset
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
