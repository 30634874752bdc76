#!/usr/bin/env bash
# Backend CPU time per transaction of one pgbench client, for settings
# variants of cachekit.transparent run alternately: a finer measure than TPS
# of what the extension costs statements it does not serve (TPS on this
# shared 2-core box moves by +-7 % between runs).
#
# usage: test/bench/tools/cpu_per_xact.sh OUT VARIANT...
#   e.g. MODES=simple REPS=8 test/bench/tools/cpu_per_xact.sh /tmp/cpu.txt off registered
# Against the server the PG* environment names (a local one: the backend's
# /proc/PID/stat is read), in a database initialised by `pgbench -i`, with
# whatever shapes the comparison needs registered (cachekit.create_cache).
# Environment: MODES (default "simple prepared"), REPS (default 5),
#   PGBENCH (default pgbench), PGBENCH_ARGS (default -S), SECONDS_MEASURED (default 6).
# Per run: the backend's utime+stime ticks and the database's xact_commit,
# read 1.5 s after the start and SECONDS_MEASURED later; prints the median
# microseconds per transaction per mode and variant.
set -euo pipefail
out=$1
shift
: >"$out"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
commits() { psql -X -At -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
hz=$(getconf CLK_TCK)
for mode in ${MODES:-simple prepared}; do
	for i in $(seq 1 "${REPS:-5}"); do
		vs=("$@")
		if ((i % 2 == 0)); then mapfile -t vs < <(printf '%s\n' "$@" | tac); fi
		for v in "${vs[@]}"; do
			# shellcheck disable=SC2086
			PGOPTIONS="-c cachekit.transparent=$v" "${PGBENCH:-pgbench}" -n ${PGBENCH_ARGS:--S} -M "$mode" -c 1 -j 1 \
				-T $((${SECONDS_MEASURED:-6} + 3)) >/dev/null 2>&1 &
			bench=$!
			sleep 1.5
			pid=$(psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1")
			c1=$(commits)
			t1=$(ticks "$pid")
			sleep "${SECONDS_MEASURED:-6}"
			t2=$(ticks "$pid")
			c2=$(commits)
			wait "$bench"
			# the two reads of xact_commit are transactions too
			echo "$mode $i $v $(((t2 - t1) * 1000000000 / hz / (c2 - c1 - 2)))" >>"$out" # ns per transaction
		done
	done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, _, variant, ns = line.split()
    runs[(mode, variant)].append(int(ns))
for (mode, variant), xs in sorted(runs.items()):
    print(f"{mode:9s} {variant:11s} median {statistics.median(xs) / 1000:.2f} us/transaction  runs {[round(x / 1000, 1) for x in xs]}")
PY
