#!/usr/bin/env bash
# Two-phase commit and trigger-driven invalidation, with a real subscriber.
# A prepared transaction is decided later, maybe by another session, maybe
# after a restart, and no commit callback runs then: what it invalidates
# (key deletions, pub/sub messages) is written to the outbox at PREPARE, as
# part of the prepared transaction, and the relay delivers it once COMMIT
# PREPARED made it visible; ROLLBACK PREPARED discards it.
#  1. PREPARE, then COMMIT PREPARED from another session: nothing is
#     delivered while the transaction is prepared; after the commit the key
#     is deleted and the message (with the prepared transaction's xid) arrives;
#  2. ROLLBACK PREPARED: the key stays, no message, no outbox row left;
#  3. a server restart between PREPARE and COMMIT PREPARED: same as 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_2pc_outbox
data_dir="$CACHEKIT_SANDBOX_DIR/data"
bindir=${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
rc() { redis-cli -p "$CACHEKIT_REDIS_PORT" "$@"; }
fail() { echo "not ok - $*" >&2; exit 1; }  # stderr: also from inside $(...)
tmp=$(mktemp -d)
sub_pid=
cleanup() {
	[ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
	rm -rf "$tmp"
	# A prepared transaction left behind would hold its locks (and the
	# database) forever.
	for gid in $(psql -X -At -d postgres -c "SELECT gid FROM pg_prepared_xacts WHERE database = '$db'" 2>/dev/null); do
		psql -X -q -d "$db" -c "ROLLBACK PREPARED '$gid'" >/dev/null 2>&1 || true
	done
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

subscribe() {
	stdbuf -oL redis-cli -p "$CACHEKIT_REDIS_PORT" --csv subscribe cachekit:invalidate >"$tmp/sub.csv" &
	sub_pid=$!
	for _ in $(seq 1 50); do grep -q subscribe "$tmp/sub.csv" 2>/dev/null && return 0; sleep 0.1; done
	fail "subscriber did not start"
}
# This database's table messages received so far: "table<TAB>ops<TAB>keys<TAB>xid" per line.
messages() {
	python3 -c '
import csv, json, sys
for row in csv.reader(open(sys.argv[1]), escapechar="\\", doublequote=False):
    if len(row) == 3 and row[0] == "message":
        m = json.loads(row[2])
        if m.get("database") == sys.argv[2] and "table" in m:
            print(m["table"], ",".join(m["operations"]), ",".join(m["keys"]), m["xid"], sep="\t")
' "$tmp/sub.csv" "$db"
}
# Waits until a message for the given keys arrives; prints its xid.
wait_message() {  # $1: comma-separated keys
	local line deadline=$((SECONDS + 30))
	while ((SECONDS < deadline)); do
		# awk reads everything (no early exit): a SIGPIPE would fail the pipeline.
		line=$(messages | awk -F '\t' -v k="$1" '$3 == k && !f { print $4; f = 1 }')
		if [ -n "$line" ]; then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	fail "no message for keys $1 within 30 s; got: $(messages | tr '\n' ';')"
}
has_message() { messages | awk -F '\t' -v k="$1" '$3 == k { f = 1 } END { exit !f }'; }
wait_key_gone() {
	for _ in $(seq 1 300); do [ "$(rc exists "$1")" = "0" ] && return 0; sleep 0.1; done
	fail "key $1 still in Redis 30 s after COMMIT PREPARED"
}
prepare_update() {  # $1: id, $2: gid; prints the prepared transaction's xid
	q "BEGIN; UPDATE tp_users SET name = name || '+' WHERE id = $1; PREPARE TRANSACTION '$2'"
	psql -X -At -d postgres -c "SELECT transaction FROM pg_prepared_xacts WHERE gid = '$2'"
}
# A committed write whose message arrives after anything the relay delivered
# before it, and an empty outbox: the relay has done a full cycle (it starts
# with its flush, if one is due). A barrier instead of a sleep.
barrier() {  # $1: id
	rc set "tp:$1" x >/dev/null
	q "UPDATE tp_users SET name = name || '.' WHERE id = $1"
	wait_message "tp:$1" >/dev/null
	# The relay delivers outbox rows in its cycle; let it finish one.
	for _ in $(seq 1 300); do [ "$(q "SELECT count(*) FROM cachekit.outbox")" = "0" ] && return 0; sleep 0.1; done
	fail "outbox not drained"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE tp_users (id int PRIMARY KEY, name text)"
q "INSERT INTO tp_users SELECT g, 'u' || g FROM generate_series(1, 9) g"
q "SELECT cachekit.invalidate_key_on('tp_users', 'tp:{id}')" >/dev/null
[ "$(psql -X -At -c "SHOW max_prepared_transactions")" -gt 0 ] || fail "max_prepared_transactions is 0 in the sandbox"
subscribe
# After an unclean start (an earlier test crashed the server) a database's
# relay flushes all its rules' keys once, when it first looks: let it do so
# before keys are set.
barrier 7

# 1. COMMIT PREPARED from another session
rc set tp:2 x >/dev/null
xid=$(prepare_update 2 ck_2pc_a)
barrier 8
[ "$(rc exists tp:2)" = "1" ] || fail "the key was deleted before COMMIT PREPARED"
if has_message tp:2; then fail "a message was published before COMMIT PREPARED"; fi
psql -X -q -d "$db" -c "COMMIT PREPARED 'ck_2pc_a'"
got=$(wait_message tp:2)
wait_key_gone tp:2
[ "$got" = "$xid" ] || fail "the message carries xid $got, the prepared transaction was $xid"
echo "ok - COMMIT PREPARED from another session: key deleted, message published (xid $xid)"

# 2. ROLLBACK PREPARED
rc set tp:3 x >/dev/null
prepare_update 3 ck_2pc_b >/dev/null
psql -X -q -d "$db" -c "ROLLBACK PREPARED 'ck_2pc_b'"
barrier 9
[ "$(rc exists tp:3)" = "1" ] || fail "ROLLBACK PREPARED deleted the key"
if has_message tp:3; then fail "ROLLBACK PREPARED published a message"; fi
[ "$(q "SELECT count(*) FROM cachekit.outbox")" = "0" ] || fail "ROLLBACK PREPARED left an outbox row"
echo "ok - ROLLBACK PREPARED: key kept, no message, no outbox row"

# 3. a restart between PREPARE and COMMIT PREPARED
rc set tp:4 x >/dev/null
xid=$(prepare_update 4 ck_2pc_c)
as_postgres "$bindir/pg_ctl" -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -m fast -w restart >/dev/null
for _ in $(seq 1 100); do pg_isready -q && break; sleep 0.1; done
[ "$(psql -X -At -d postgres -c "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'ck_2pc_c'")" = "1" ] ||
	fail "the prepared transaction did not survive the restart"
if has_message tp:4; then fail "a message was published before COMMIT PREPARED (restart)"; fi
barrier 6
rc set tp:4 x >/dev/null # whatever a start-up flush did: the commit must delete it
psql -X -q -d "$db" -c "COMMIT PREPARED 'ck_2pc_c'"
got=$(wait_message tp:4)
wait_key_gone tp:4
[ "$got" = "$xid" ] || fail "after the restart the message carries xid $got, the prepared transaction was $xid"
echo "ok - restart between PREPARE and COMMIT PREPARED: key deleted, message published (xid $xid)"
