-- Per-queue limits and schedule overlap, measured from the runs themselves:
-- a queue's concurrency caps tasks running at once, its rate limit spaces
-- their starts, and a schedule never starts a run while the last one runs.
SET client_min_messages = warning;
CREATE ROLE regress_limits LOGIN IN ROLE cachekit_tasks;
RESET client_min_messages;
CREATE SCHEMA regress_limits;
GRANT USAGE ON SCHEMA regress_limits TO regress_limits;
CREATE TABLE regress_limits.runs (queue text, started timestamptz, ended timestamptz);
GRANT INSERT ON regress_limits.runs TO regress_limits;
CREATE FUNCTION regress_limits.nap(args jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM pg_sleep((args ->> 'seconds')::float8);
    INSERT INTO regress_limits.runs VALUES (args ->> 'queue', t0, clock_timestamp());
END $$;
GRANT EXECUTE ON FUNCTION regress_limits.nap(jsonb) TO regress_limits;

-- Waits (up to 30 s) until `n` runs of `queue` are recorded.
CREATE FUNCTION regress_limits.wait_runs(q text, n int) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    FOR i IN 1..600 LOOP
        SELECT count(*) INTO c FROM regress_limits.runs WHERE queue = q;
        EXIT WHEN c >= n;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN c;
END $$;

-- No task runs twice: 500 tasks, each inserting its own number under a
-- unique constraint, all succeed once with both executors claiming.
CREATE TABLE regress_limits.once (n int PRIMARY KEY);
GRANT INSERT ON regress_limits.once TO regress_limits;
CREATE FUNCTION regress_limits.once(args jsonb) RETURNS void LANGUAGE sql AS $$
    INSERT INTO regress_limits.once VALUES ((args ->> 'n')::int) $$;
GRANT EXECUTE ON FUNCTION regress_limits.once(jsonb) TO regress_limits;
SET ROLE regress_limits;
SELECT count(cachekit.enqueue('default', 'regress_limits.once', jsonb_build_object('n', g), max_attempts => 1))
  FROM generate_series(1, 500) g;
RESET ROLE;
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN NOT EXISTS (SELECT 1 FROM cachekit._tasks WHERE task = 'regress_limits.once(jsonb)'
                                 AND state NOT IN ('succeeded', 'dead'));
        PERFORM pg_sleep(0.05);
    END LOOP;
END $$;
SELECT state, count(*), sum(attempts) AS attempts FROM cachekit._tasks
 WHERE task = 'regress_limits.once(jsonb)' GROUP BY state;
SELECT count(*) AS rows FROM regress_limits.once;

-- Concurrency 1 with two executors: the runs never overlap.
SELECT cachekit.create_queue('regress_one', 1);
SET ROLE regress_limits;
SELECT count(cachekit.enqueue('regress_one', 'regress_limits.nap', '{"queue": "regress_one", "seconds": 0.3}'))
  FROM generate_series(1, 3);
RESET ROLE;
SELECT regress_limits.wait_runs('regress_one', 3) AS runs;
SELECT count(*) AS overlapping_pairs
  FROM regress_limits.runs a JOIN regress_limits.runs b
    ON a.queue = 'regress_one' AND b.queue = 'regress_one' AND a.started < b.started AND b.started < a.ended;

-- A queue that allows both executors does run two at once.
SELECT cachekit.create_queue('regress_two', 2);
SET ROLE regress_limits;
SELECT count(cachekit.enqueue('regress_two', 'regress_limits.nap', '{"queue": "regress_two", "seconds": 2}'))
  FROM generate_series(1, 2);
RESET ROLE;
SELECT regress_limits.wait_runs('regress_two', 2) AS runs;
SELECT count(*) AS overlapping_pairs
  FROM regress_limits.runs a JOIN regress_limits.runs b
    ON a.queue = 'regress_two' AND b.queue = 'regress_two' AND a.started < b.started AND b.started < a.ended;

-- 4 starts a second: 6 tasks take at least 5 gaps of 0.25 s.
SELECT cachekit.create_queue('regress_rate', 10, rate_limit_per_s => 4);
SET ROLE regress_limits;
SELECT count(cachekit.enqueue('regress_rate', 'regress_limits.nap', '{"queue": "regress_rate", "seconds": 0}'))
  FROM generate_series(1, 6);
RESET ROLE;
SELECT regress_limits.wait_runs('regress_rate', 6) AS runs;
SELECT max(started) - min(started) >= interval '1.1 s' AS spaced,
       min(gap) >= interval '0.1 s' AS no_burst
  FROM (SELECT started, started - lag(started) OVER (ORDER BY started) AS gap
          FROM regress_limits.runs WHERE queue = 'regress_rate') s;

-- Schedules: every second, a run that takes 2.5 s. skip: no run starts while
-- the last one is queued or running; queue: the next one waits for it.
SELECT cachekit.create_queue('regress_sched', 10);
SET ROLE regress_limits;
SELECT cachekit.schedule('regress_skip', '1 second', 'regress_sched', 'regress_limits.nap',
                         '{"queue": "skip", "seconds": 2.5}') IS NOT NULL AS scheduled;
SELECT cachekit.schedule('regress_queue', '1 second', 'regress_sched', 'regress_limits.nap',
                         '{"queue": "queue", "seconds": 2.5}', overlap => 'queue') IS NOT NULL AS scheduled;
RESET ROLE;
SELECT regress_limits.wait_runs('skip', 2) >= 2 AS skip_runs, regress_limits.wait_runs('queue', 2) >= 2 AS queue_runs;
SELECT name, skipped > 0 AS skipped_some FROM cachekit.schedules WHERE name LIKE 'regress%' ORDER BY name;
SET ROLE regress_limits;
SELECT cachekit.unschedule('regress_skip'), cachekit.unschedule('regress_queue');
RESET ROLE;
SELECT queue, count(*) FILTER (WHERE overlapped) AS overlapping_runs
  FROM (SELECT a.queue, EXISTS (SELECT 1 FROM regress_limits.runs b
                                 WHERE b.queue = a.queue AND b.started > a.started AND b.started < a.ended) AS overlapped
          FROM regress_limits.runs a WHERE a.queue IN ('skip', 'queue')) s
 GROUP BY queue ORDER BY queue;
-- The queue schedule starts its next run right after the last one ends.
SELECT max(b.started - a.ended) < interval '1 s' AS back_to_back
  FROM regress_limits.runs a JOIN regress_limits.runs b
    ON a.queue = 'queue' AND b.queue = 'queue'
   AND b.started = (SELECT min(c.started) FROM regress_limits.runs c WHERE c.queue = 'queue' AND c.started > a.started);

DELETE FROM cachekit._tasks WHERE role = 'regress_limits'::regrole;
SELECT cachekit.drop_queue(q, cancel => true) FROM unnest(ARRAY['regress_one', 'regress_two', 'regress_rate', 'regress_sched']) q;
DROP SCHEMA regress_limits CASCADE;
DROP ROLE regress_limits;
