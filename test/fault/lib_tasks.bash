# Shared by the task queue's fault scripts (task_*.sh); sourced, not run
# (named .bash so that tools/run-tests does not take it for a fault script).
#
# The sourcing script sets `db` (its own database) before calling anything
# here, and `set -euo pipefail` itself. Settings changed with set_guc are
# reset by tasks_cleanup, which the scripts call from their EXIT trap.
: "${db:?set db before sourcing lib_tasks.bash}"
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
data_dir="$CACHEKIT_SANDBOX_DIR/data"
executor_type='pg_cachekit task executor'
gucs_changed=()

as_postgres() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
qdb() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
fail() {
	echo "not ok - $*"
	exit 1
}
wait_for() { # $1: seconds, $2: description, rest: command that must succeed
	local seconds=$1 what=$2
	local deadline=$((SECONDS + seconds))
	shift 2
	until "$@"; do
		((SECONDS < deadline)) || fail "timed out after $seconds s waiting for: $what; tasks: $(task_summary)"
		sleep 0.1
	done
}
# Tasks by state, and the first unfinished ones (id:state/attempts).
task_summary() {
	q "SELECT coalesce((SELECT string_agg(state || ' ' || n, ', ') FROM (SELECT state, count(*) n FROM cachekit.tasks GROUP BY 1 ORDER BY 1) s), 'no tasks')
	       || '; unfinished: ' || coalesce((SELECT string_agg(id || ':' || state || '/' || attempts, ' ') FROM (SELECT id, state, attempts FROM cachekit.tasks
	          WHERE state IN ('queued', 'running', 'failed') ORDER BY id LIMIT 20) u), 'none')" 2>&1 || true
}
# Milliseconds since some fixed point, for run times.
now_ms() { date +%s%3N; }

# ALTER SYSTEM for the length of the script (every database's workers see
# it). Returns once a new connection sees the value: the postmaster has then
# reloaded and signalled its children, and an executor applies a reload
# before it claims anything.
set_guc() { # $1: name, $2: value in the setting's unit (as pg_settings shows it)
	qdb postgres "ALTER SYSTEM SET $1 = '$2'"
	gucs_changed+=("$1")
	qdb postgres "SELECT pg_reload_conf()" >/dev/null
	wait_for 10 "$1 to be $2 after a reload" guc_is "$1" "$2"
}
guc_is() { [ "$(qdb postgres "SELECT setting FROM pg_settings WHERE name = '$1'")" = "$2" ]; }
unset_guc() { # $1: name
	qdb postgres "ALTER SYSTEM RESET $1"
	qdb postgres "SELECT pg_reload_conf()" >/dev/null
}
reset_gucs() {
	local g
	for g in "${gucs_changed[@]}"; do qdb postgres "ALTER SYSTEM RESET $g" || true; done
	gucs_changed=()
	qdb postgres "SELECT pg_reload_conf()" >/dev/null || true
}

server_up() { qdb postgres "SELECT 1" >/dev/null 2>&1; }
restart() { # $1: shutdown mode
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -m "$1" -w stop >/dev/null
	as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null
}

# cachekit.task_workers: the executors each database gets.
task_workers() { q "SELECT current_setting('cachekit.task_workers')"; }

# Pids of the task executors of $db (one a line).
executor_pids() {
	qdb postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = '$executor_type' AND datname = '$db' ORDER BY pid" 2>/dev/null
}
executor_count() { executor_pids | grep -c . || true; }
# The executor running task $1, from its activity line ("pg_cachekit task <id>: ...").
executor_of() {
	qdb postgres "SELECT pid FROM pg_stat_activity WHERE backend_type = '$executor_type' AND datname = '$db' AND query LIKE 'pg_cachekit task $1: %'" 2>/dev/null
}
has_executors() { # $1: how many at least
	[ "$(executor_count)" -ge "$1" ]
}
# Waits for $db's executors; says why when there are none (no worker slot...).
wait_executors() { # $1: how many at least, $2: seconds
	local deadline=$((SECONDS + $2))
	until has_executors "$1"; do
		if ((SECONDS >= deadline)); then
			fail "$db has $(executor_count) task executors after $2 s, expected at least $1; relay: $(q "SELECT cachekit.health() -> 'invalidation' -> 'relay'" 2>&1)"
		fi
		sleep 0.1
	done
}

state_of() { q "SELECT state FROM cachekit.tasks WHERE id = $1"; }
in_state() { # $1: task id, $2: state
	[ "$(state_of "$1" 2>/dev/null)" = "$2" ]
}
# True once no task of $db is queued, running or waiting for a retry.
all_finished() {
	[ "$(q "SELECT count(*) FROM cachekit.tasks WHERE state IN ('queued', 'running', 'failed')" 2>/dev/null)" = "0" ]
}

# A database with the extension and a results table, whose executors run.
setup_task_db() {
	createdb "$db"
	q "CREATE EXTENSION pg_cachekit"
	q "CREATE SCHEMA fault"
	# One row per committed run of a task (a run's effects commit with its
	# success, so a run cut short leaves none).
	q "CREATE TABLE fault.results (n int8 NOT NULL, pid int4 NOT NULL DEFAULT pg_backend_pid(), at timestamptz NOT NULL DEFAULT clock_timestamp())"
	q "CREATE TABLE fault.wal_marks (at timestamptz DEFAULT clock_timestamp())"
	# Records run n, then sleeps: {"n": ..., "sleep": seconds}.
	q "CREATE FUNCTION fault.work(a jsonb) RETURNS jsonb LANGUAGE plpgsql AS \$\$
	   BEGIN
	       INSERT INTO fault.results (n) VALUES ((a->>'n')::int8);
	       PERFORM pg_sleep((a->>'sleep')::float8);
	       RETURN a;
	   END \$\$"
}

tasks_cleanup() {
	# A script that failed half-way may have left the server stopped.
	if ! server_up; then
		as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null 2>&1 || true
		wait_for 30 "the server to accept connections again" server_up
	fi
	reset_gucs
	dropdb --if-exists --force "$db" >/dev/null 2>&1 || true
}

# The sandbox runs with synchronous_commit off: a crash (kill -9, immediate
# shutdown) may lose a commit that others could already see. Enqueues that
# must survive, and the point before a crash, are flushed explicitly.
q_durable() { q "SET synchronous_commit = on; $1"; }
# Flushes all WAL written so far (claims, commits seen by this script): a
# synchronous commit flushes up to its record, but only one that wrote WAL
# (an xid alone, txid_current(), commits asynchronously).
flush_wal() { q_durable "INSERT INTO fault.wal_marks DEFAULT VALUES"; }

# Enqueues fault.work runs n = 1..$1 sleeping $2 s each on queue $3, durably.
enqueue_work() {
	q_durable "SELECT count(cachekit.enqueue('$3', 'fault.work', jsonb_build_object('n', n, 'sleep', $2))) FROM generate_series(1, $1) n" >/dev/null
}

# Every task of the queue succeeded, and each of runs 1..$1 committed its effects
# exactly once: a run's insert commits with its success, so a run that was
# cut short left nothing and a second committed run would be a double run.
check_each_once() { # $1: how many runs, $2: their queue, $3: what for the messages
	local n=$1 queue=$2 what=$3 got
	got=$(q "SELECT count(*) FILTER (WHERE state = 'succeeded') || ' ' || count(*) FROM cachekit.tasks WHERE queue = '$queue'")
	[ "$got" = "$n $n" ] || fail "$what: succeeded/all tasks: $got, expected $n $n; not succeeded: $(q "SELECT string_agg(id || ':' || state || '/' || attempts, ', ') FROM cachekit.tasks WHERE queue = '$queue' AND state <> 'succeeded'")"
	got=$(q "SELECT count(*) FROM generate_series(1, $n) g(n) WHERE (SELECT count(*) FROM fault.results r WHERE r.n = g.n) <> 1")
	[ "$got" = "0" ] || fail "$what: runs not committed exactly once (n:count): $(q "SELECT string_agg(g.n || ':' || (SELECT count(*) FROM fault.results r WHERE r.n = g.n), ', ') FROM generate_series(1, $n) g(n) WHERE (SELECT count(*) FROM fault.results r WHERE r.n = g.n) <> 1")"
	got=$(q "SELECT count(*) FROM fault.results WHERE n NOT BETWEEN 1 AND $n")
	[ "$got" = "0" ] || fail "$what: $got results of runs that were never enqueued"
}
has_no_executors() { [ "$(executor_count)" = "0" ]; }
