-- pg_cachekit's side of the task-queue benchmark (test/bench/tasks.sh), and
-- the table of the enqueue-overhead transactions. Run as a superuser (member
-- of cachekit_tasks) in the benchmark database.
\set ON_ERROR_STOP on
CREATE EXTENSION IF NOT EXISTS pg_cachekit;

-- The no-op task: the counterpart of the peers' `async () => {}`.
CREATE FUNCTION public.bench_noop(args jsonb) RETURNS void
LANGUAGE sql AS $$ $$;

-- Pickup latency: the first thing the task does is read the clock
-- (clock_timestamp(), CLOCK_REALTIME, microseconds since the epoch). The
-- driver is told through NOTIFY once the task has committed, and reads the
-- log row if the notification does not come.
CREATE UNLOGGED TABLE public.bench_pickup_log (seq int PRIMARY KEY, started_us bigint NOT NULL);

CREATE FUNCTION public.bench_pickup(args jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  started bigint := (extract(epoch FROM clock_timestamp()) * 1000000)::bigint;
BEGIN
  INSERT INTO public.bench_pickup_log VALUES ((args ->> 'seq')::int, started);
  PERFORM pg_notify('bench_pickup', (args ->> 'seq') || ':' || started);
END
$$;

-- Enqueue overhead: a one-row INSERT transaction, with and without an enqueue.
CREATE TABLE public.bench_rows (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  v int NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
