-- Equality-keyed mixed workload, 5%: change one order of a random customer.
-- An explicit transaction for the reason given in update_agg_range.sql.
\set c random(1, 1000)
\set k random(0, 999)
\set delta random(-50, 50)
BEGIN;
UPDATE bench_orders SET amount = amount + :delta WHERE id = :c * 1000 - :k;
END;
