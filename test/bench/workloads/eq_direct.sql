-- Equality-keyed mixed workload, 95%: one customer's order count and total, plain SQL.
\set c random(1, 1000)
SELECT count(*), sum(amount) FROM bench_orders WHERE customer_id = :c;
