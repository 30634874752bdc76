# shellcheck shell=bash
# Pieces shared by the pgbench benchmarks that put pg_cachekit next to
# pgpool-II's query cache (cached_query.sh, transparent.sh). Sourced, not run.
#
# The sourcing script sets REPO (repository root) and SANDBOX (test/sandbox)
# before calling anything here. bench_workdir sets WORK, SB, PP, LOGS, NOTES;
# bench_start_sandbox sets SANDBOX_UP, PG_PORT (and the PG* variables);
# bench_start_pgpool sets PGPOOL_PID, PGPOOL_PORT.

log() { echo "bench: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}
note() { echo "$*" | tee -a "$NOTES" >&2; }

apt_install() {
	log "installing $* (apt-get)"
	[[ $EUID -eq 0 ]] || die "$* missing and not root: install it (apt-get install $*)"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; then
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
	fi
}

# pgbench and python3 must be there; pgpool2 and gnuplot-nox are installed
# when missing. Sets PGPOOL.
bench_require_tools() {
	command -v pgbench >/dev/null || die "pgbench not found (postgresql-client-15)"
	command -v python3 >/dev/null || die "python3 not found"
	PGPOOL=$(command -v pgpool || true)
	if [[ -z $PGPOOL ]]; then
		apt_install pgpool2
		# The Debian package may start its own service: that one is not ours and
		# listens on 5433/9898 only, so it is left alone.
		PGPOOL=$(command -v pgpool) || die "pgpool not found after installing pgpool2"
	fi
	if ! command -v gnuplot >/dev/null; then
		apt_install gnuplot-nox || log "warning: could not install gnuplot-nox; no plot"
	fi
}

# Commands that must run as the cluster owner.
as_pg() {
	if [[ $EUID -eq 0 ]]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

free_ports() {
	python3 - "$1" <<'PY'
import random, socket, sys
wanted, found = int(sys.argv[1]), []
for _ in range(1000):
    if len(found) == wanted:
        break
    port = random.randint(20000, 32000)
    if port in found:
        continue
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    found.append(port)
print(" ".join(map(str, found)))
PY
}

# Variant order, rotated by one per repetition so that no variant always
# runs first (right after a warm-up) or last.
rotate() {
	local k=$1
	shift
	local a=("$@")
	k=$((k % ${#a[@]}))
	echo "${a[@]:k}" "${a[@]:0:k}"
}

psqlx() { psql -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# Scratch space: WORK (removed at exit unless the run failed or
# BENCH_KEEP_WORK=1), SB (sandbox), PP (pgpool), LOGS (pgbench logs), NOTES.
bench_workdir() {
	WORK=$(mktemp -d /tmp/ckbench.XXXXXX)
	chmod 755 "$WORK"
	SB=$WORK/sb
	PP=$WORK/pgpool
	LOGS=$WORK/logs
	NOTES=$WORK/notes.txt
	mkdir -p "$LOGS" "$PP" "$PP/oiddir"
	[[ $EUID -eq 0 ]] && chown -R postgres: "$PP"
	: >"$NOTES"
	SANDBOX_UP=
	PGPOOL_PID=
}

stop_pgpool() {
	[[ -n $PGPOOL_PID ]] || return 0
	as_pg "$PGPOOL" -f "$PP/pgpool.conf" -m fast stop >/dev/null 2>&1 || true
	local deadline=$((SECONDS + 20))
	while kill -0 "$PGPOOL_PID" 2>/dev/null; do
		if ((SECONDS >= deadline)); then
			log "pgpool did not stop; sending SIGTERM to its main process"
			if [[ -f $PP/pgpool.pid ]]; then
				kill -TERM "$(<"$PP/pgpool.pid")" 2>/dev/null || true
			fi
			sleep 2
			kill -TERM "$PGPOOL_PID" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
	wait "$PGPOOL_PID" 2>/dev/null || true
	PGPOOL_PID=
}

# EXIT trap: stops pgpool and the sandbox, shows the logs' tails on failure.
bench_cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	stop_pgpool
	if ((rc != 0)); then
		log "failed (exit $rc); last lines of the logs:"
		for f in "$PP/pgpool.log" "$SB/postgres.log"; do
			[[ -s $f ]] && {
				echo "--- $f" >&2
				tail -n 20 "$f" >&2
			}
		done
	fi
	if [[ -n $SANDBOX_UP ]]; then
		CACHEKIT_SANDBOX_DIR=$SB "$SANDBOX" stop
	fi
	if ((rc == 0)) && [[ ${BENCH_KEEP_WORK:-0} != 1 ]]; then
		rm -rf -- "$WORK"
	else
		log "scratch files (pgbench logs) kept in $WORK"
	fi
	exit "$rc"
}

bench_traps() {
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# bench_start_sandbox EXTRA_CONF: the sandbox with fsync on, pg_cachekit
# created (make install first if CREATE EXTENSION fails).
bench_start_sandbox() {
	local env
	log "starting the sandbox in $SB (fsync on)"
	env=$(CACHEKIT_SANDBOX_DIR=$SB CACHEKIT_SANDBOX_FSYNC=on \
		CACHEKIT_SANDBOX_EXTRA_CONF="$1" "$SANDBOX" start)
	SANDBOX_UP=1
	eval "$env"
	PG_PORT=$PGPORT
	if ! psqlx -c 'CREATE EXTENSION pg_cachekit' 2>"$WORK/create.err"; then
		log "CREATE EXTENSION failed ($(head -n 1 "$WORK/create.err")); running make install"
		make -C "$REPO" install >"$WORK/make-install.log" 2>&1 || die "make install failed: see $WORK/make-install.log"
		psqlx -c 'CREATE EXTENSION pg_cachekit'
	fi
}

# pgpool-II in raw mode with its in-memory query cache (no expiry, auto
# invalidation on), in front of the sandbox's Postgres (Unix socket).
bench_start_pgpool() {
	local deadline
	read -r PGPOOL_PORT PCP_PORT <<<"$(free_ports 2)"
	[[ -n $PGPOOL_PORT && -n $PCP_PORT ]] || die "no free ports for pgpool"
	cat >"$PP/pgpool.conf" <<CONF
backend_clustering_mode = 'raw'
listen_addresses = '127.0.0.1'
port = $PGPOOL_PORT
socket_dir = '$PP'
pcp_listen_addresses = '127.0.0.1'
pcp_port = $PCP_PORT
pcp_socket_dir = '$PP'
wd_ipc_socket_dir = '$PP'
pid_file_name = '$PP/pgpool.pid'
logdir = '$PP'
use_watchdog = off
backend_hostname0 = '$SB'
backend_port0 = $PG_PORT
backend_flag0 = 'DISALLOW_TO_FAILOVER'
enable_pool_hba = off
pool_passwd = ''
num_init_children = 16
max_pool = 2
load_balance_mode = off
health_check_period = 0
log_min_messages = warning
memory_cache_enabled = on
memqcache_method = 'shmem'
memqcache_total_size = 256MB
memqcache_max_num_cache = 200000
memqcache_expire = 0
memqcache_auto_cache_invalidation = on
memqcache_maxcache = 400kB
memqcache_cache_block_size = 1MB
memqcache_oiddir = '$PP/oiddir'
CONF
	: >"$PP/pcp.conf"
	: >"$PP/pool_hba.conf"
	[[ $EUID -eq 0 ]] && chown postgres: "$PP"/*.conf

	log "starting pgpool on 127.0.0.1:$PGPOOL_PORT (backend $SB:$PG_PORT)"
	if [[ $EUID -eq 0 ]]; then
		(cd / && exec runuser -u postgres -- "$PGPOOL" -n -f "$PP/pgpool.conf" -F "$PP/pcp.conf" \
			-a "$PP/pool_hba.conf") >"$PP/pgpool.log" 2>&1 &
	else
		"$PGPOOL" -n -f "$PP/pgpool.conf" -F "$PP/pcp.conf" -a "$PP/pool_hba.conf" >"$PP/pgpool.log" 2>&1 &
	fi
	PGPOOL_PID=$!
	deadline=$((SECONDS + 30))
	until psql -X -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U postgres -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
		kill -0 "$PGPOOL_PID" 2>/dev/null || die "pgpool exited at startup"
		((SECONDS < deadline)) || die "pgpool does not accept connections on port $PGPOOL_PORT"
		sleep 0.3
	done
}

pgpoolx() { psql -X -q -At -h 127.0.0.1 -p "$PGPOOL_PORT" -U postgres -d postgres "$@"; }

# "num_cache_hits num_selects" of pgpool's query cache.
pool_cache_counters() {
	pgpoolx -F ' ' -c 'SHOW POOL_CACHE' | awk 'NR == 1 { print $1, $2 }'
}

# The library the server preloaded (later installs do not change it).
bench_library_line() {
	local lib pgc=${PG_CONFIG:-pg_config}
	[[ -x ${CACHEKIT_PG_BINDIR:-}/pg_config ]] && pgc=$CACHEKIT_PG_BINDIR/pg_config
	lib="$("$pgc" --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)/pg_cachekit.so"
	echo "library: $lib, installed $(date -u -r "$lib" +%Y-%m-%dT%H:%M:%SZ), sha256 $(sha256sum "$lib" | cut -c1-12), extension $(psqlx -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_cachekit'")"
}
