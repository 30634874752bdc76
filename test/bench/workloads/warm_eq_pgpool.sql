-- Warms pgpool's cache with the texts eq_direct.sql sends (customers 1..1000, in order).
SELECT nextval('bench_warm_seq') AS c \gset
SELECT count(*), sum(amount) FROM bench_orders WHERE customer_id = :c;
