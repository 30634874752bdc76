-- (a) 1-row primary-key lookup, plain SQL (direct to Postgres, or through pgpool).
-- Keys are restricted to 1..:pk_keys (pgbench -D pk_keys=N, default 10000) so that every key can be warmed in both caches.
\set aid random(1, :pk_keys)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
