#!/usr/bin/env bash
# Pub/sub and the durable outbox, end to end, with a real subscriber:
#  1. a scripted sequence of transactions: the subscriber receives exactly one
#     message per changed watched table per committed transaction, in commit
#     order, with the expected operations, rows and keys; rolled-back work
#     publishes nothing;
#  2. Redis down: commits succeed without waiting, their invalidations wait in
#     the outbox; the server then crashes (immediate stop) right after the
#     commits; after restart and with Redis back, the relay delivers every
#     message in order and deletes every key, none lost.
set -euo pipefail
cd "$(dirname "$0")/../.."
db=cachekit_pubsub
data_dir="$CACHEKIT_SANDBOX_DIR/data"
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
fail() { echo "not ok - $*"; exit 1; }
tmp=$(mktemp -d)
sub_pid=
sub_file=
cleanup() {
	[ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
	rm -rf "$tmp"
	test/sandbox redis-start >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "ALTER SYSTEM RESET cachekit.redis_url" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
}
trap cleanup EXIT

subscribe() {  # $1: output file
	# Line-buffered: the file must hold every message when the subscriber is stopped.
	stdbuf -oL redis-cli -p "$CACHEKIT_REDIS_PORT" --csv subscribe cachekit:invalidate >"$1" &
	sub_pid=$!
	sub_file=$1
	for _ in $(seq 1 50); do grep -q subscribe "$1" 2>/dev/null && return 0; sleep 0.1; done
	fail "subscriber did not start"
}
# $1: how many messages (as messages counts them) to wait for: one Redis
# published may not be in the file yet. After 30 s the comparison says what
# is missing; once they are there, a moment more lets one too many show.
stop_subscriber() {
	local deadline=$((SECONDS + 30))
	while (($(messages "$sub_file" 2>/dev/null | wc -l) < $1)) && ((SECONDS < deadline)); do sleep 0.1; done
	sleep 0.3
	kill "$sub_pid" 2>/dev/null
	wait "$sub_pid" 2>/dev/null || true
	sub_pid=
}
# The messages received, one JSON document per line (redis-cli --csv quotes
# them), without flush-everything messages.
messages() {
	python3 -c '
import csv, json, sys
for row in csv.reader(open(sys.argv[1]), escapechar="\\", doublequote=False):
    if len(row) == 3 and row[0] == "message":
        m = json.loads(row[2])
        if m.get("all") or m.get("database") != "cachekit_pubsub":
            continue  # flushes of everything (after an unclean start), other databases
        print(json.dumps({k: m[k] for k in ("table", "operations", "rows", "keys", "keys_overflow", "flush")}, sort_keys=True))
' "$1"
}
# Nothing may be delivered before the subscriber listens (pub/sub keeps no
# history): point every backend and the relay at a closed port while Redis
# comes back, and at the real Redis again once the subscriber is in place.
hold_delivery() {
	q "ALTER SYSTEM SET cachekit.redis_url = 'redis://127.0.0.1:1/0'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	# The relay reads the new setting at its next cycle (every 250 ms); no
	# query can observe that, so give it many cycles (a loaded machine may
	# not run it for a while).
	sleep 3
}
release_delivery() {
	q "ALTER SYSTEM RESET cachekit.redis_url" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
}

# The outbox and the relay's queue in shared memory (a failed delivery
# without an outbox row): an entry leaves the queue once Redis took it.
queue_entries() { q "SELECT cachekit.health() -> 'invalidation' -> 'relay' ->> 'queue_entries'"; }
wait_outbox_empty() {
	for _ in $(seq 1 300); do
		[ "$(q "SELECT count(*) FROM cachekit.outbox")" = "0" ] && [ "$(queue_entries)" = "0" ] && return 0
		sleep 0.1
	done
	fail "outbox not drained: $(q "SELECT count(*) FROM cachekit.outbox") rows and $(queue_entries) queue entries left"
}

dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
q "CREATE EXTENSION pg_cachekit"
q "CREATE TABLE accounts (id int PRIMARY KEY, owner int, balance int)"
q "CREATE TABLE notes (id int PRIMARY KEY, body text)"
q "INSERT INTO accounts SELECT g, g % 3, 100 FROM generate_series(1, 6) g"
q "SELECT cachekit.watch('notes')" >/dev/null
q "SELECT cachekit.invalidate_key_on('accounts', 'acct:{id}')" >/dev/null
q "SELECT cachekit.invalidate_key_on('accounts', 'owner:{owner}:total', name => 'owner_total')" >/dev/null

# 1. scripted transactions, one after the other
subscribe "$tmp/sub1.csv"
q "UPDATE accounts SET balance = balance + 1 WHERE id = 1"
q "BEGIN; UPDATE accounts SET balance = 0 WHERE id = 2; ROLLBACK"
q "BEGIN; UPDATE accounts SET balance = 5 WHERE id IN (2, 3); INSERT INTO notes VALUES (1, 'n'); COMMIT"
q "BEGIN; DELETE FROM accounts WHERE id = 4; SAVEPOINT s; UPDATE accounts SET owner = 9 WHERE id = 5; ROLLBACK TO s; COMMIT"
q "INSERT INTO notes VALUES (2, 'm')"
q "TRUNCATE notes"
q "TRUNCATE accounts"
q "INSERT INTO accounts VALUES (4, 1, 100)"
wait_outbox_empty
stop_subscriber 8
messages "$tmp/sub1.csv" >"$tmp/got1"
cat >"$tmp/want1" <<'JSON'
{"flush": false, "keys": ["acct:1", "owner:1:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 1, "table": "accounts"}
{"flush": false, "keys": ["acct:2", "acct:3", "owner:0:total", "owner:2:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 2, "table": "accounts"}
{"flush": false, "keys": [], "keys_overflow": false, "operations": ["INSERT"], "rows": null, "table": "notes"}
{"flush": false, "keys": ["acct:4", "owner:1:total"], "keys_overflow": false, "operations": ["DELETE"], "rows": 1, "table": "accounts"}
{"flush": false, "keys": [], "keys_overflow": false, "operations": ["INSERT"], "rows": null, "table": "notes"}
{"flush": true, "keys": [], "keys_overflow": false, "operations": ["TRUNCATE"], "rows": null, "table": "notes"}
{"flush": true, "keys": [], "keys_overflow": false, "operations": ["TRUNCATE"], "rows": null, "table": "accounts"}
{"flush": false, "keys": ["acct:4", "owner:1:total"], "keys_overflow": false, "operations": ["INSERT"], "rows": 1, "table": "accounts"}
JSON
diff -u "$tmp/want1" "$tmp/got1" || fail "messages differ from the scripted transactions"
echo "ok - the subscriber got exactly one message per table per committed transaction, in order"

# The messages of part 2, in commit order (the row values are fixed below).
want_outage() {
	cat <<'JSON'
{"flush": false, "keys": ["acct:1", "owner:1:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 1, "table": "accounts"}
{"flush": false, "keys": ["acct:2", "owner:2:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 1, "table": "accounts"}
{"flush": false, "keys": ["acct:3", "owner:0:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 1, "table": "accounts"}
{"flush": false, "keys": [], "keys_overflow": false, "operations": ["INSERT"], "rows": null, "table": "notes"}
JSON
}
set_app_keys() { redis-cli -p "$CACHEKIT_REDIS_PORT" mset acct:1 x acct:2 x acct:3 x acct:6 x owner:0:total x owner:1:total x owner:2:total x >/dev/null; }
app_keys_left() { redis-cli -p "$CACHEKIT_REDIS_PORT" --scan --pattern '*' | { grep -E '^(acct|owner)' || true; } | sort | tr '\n' ' '; }
reset_accounts() {
	q "INSERT INTO accounts SELECT g, g % 3, 100 FROM generate_series(1, 6) g ON CONFLICT (id) DO UPDATE SET balance = 100"
	q "DELETE FROM notes WHERE id = 3"
	wait_outbox_empty
}
outage_commits() {
	for i in 1 2 3; do q "UPDATE accounts SET balance = balance + $i WHERE id = $i"; done
	q "INSERT INTO notes VALUES (3, 'down')"
}

# 2. Redis down: the commits succeed at once. The first one's delivery fails
# after commit (it had no outbox row: Redis looked fine) and goes to the
# relay's queue in shared memory; it marks a backlog, so the next commits
# write outbox rows. Redis back: everything arrives, in commit order.
reset_accounts
test/sandbox redis-stop
start=$(date +%s%N)
outage_commits
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
depth=$(q "SELECT count(*) FROM cachekit.outbox")
[ "$depth" = "3" ] || fail "expected 3 outbox rows (the first commit is queued in memory), got $depth"
[ "$(q "SELECT cachekit.health() -> 'invalidation' ->> 'outbox_depth'")" = "3" ] || fail "health() does not show the outbox depth"
[ "$(q "SELECT outbox_depth FROM cachekit.invalidation_stats")" = "3" ] || fail "invalidation_stats does not show the outbox depth"
echo "ok - 4 commits with Redis down took ${elapsed_ms} ms in all (psql start-up included); 1 queued after its commit, 3 in the outbox"
hold_delivery
test/sandbox redis-start
set_app_keys
subscribe "$tmp/sub2.csv"
release_delivery
# A commit right after Redis is back must not overtake the four waiting ones.
q "UPDATE accounts SET balance = 0 WHERE id = 6"
wait_outbox_empty
stop_subscriber 5
messages "$tmp/sub2.csv" >"$tmp/got2"
{ want_outage; echo '{"flush": false, "keys": ["acct:6", "owner:0:total"], "keys_overflow": false, "operations": ["UPDATE"], "rows": 1, "table": "accounts"}'; } >"$tmp/want2"
diff -u "$tmp/want2" "$tmp/got2" || fail "after the outage the relay delivered other messages than committed"
[ -z "$(app_keys_left)" ] || fail "keys left after delivery: '$(app_keys_left)'"
echo "ok - after Redis came back all 5 messages arrived in commit order and every key was deleted"

# 3. Redis down and a crash right after the commits: the queued one is lost
# with shared memory, the outbox rows survive (synchronous commit). After the
# unclean start the relay first flushes everything (a flush message and every
# key the rules can produce), then delivers the outbox rows in order.
reset_accounts
test/sandbox redis-stop
export PGOPTIONS="-c synchronous_commit=on"
outage_commits
unset PGOPTIONS
as_postgres "${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}"/pg_ctl -D "$data_dir" -m immediate stop >/dev/null
as_postgres "${CACHEKIT_PG_BINDIR:-/usr/lib/postgresql/15/bin}"/pg_ctl -D "$data_dir" -l "$CACHEKIT_SANDBOX_DIR/postgres.log" -w start >/dev/null
[ "$(q "SELECT count(*) FROM cachekit.outbox")" = "3" ] || fail "outbox rows lost in the crash"
[ "$(q "SELECT string_agg(balance::text, ',' ORDER BY id) FROM accounts WHERE id <= 3")" = "101,102,103" ] ||
	fail "the committed changes did not survive the crash"
hold_delivery
test/sandbox redis-start
set_app_keys
redis-cli -p "$CACHEKIT_REDIS_PORT" set unrelated:key x >/dev/null
subscribe "$tmp/sub3.csv"
release_delivery
wait_outbox_empty
for _ in $(seq 1 50); do [ -z "$(app_keys_left)" ] && break; sleep 0.1; done
stop_subscriber 3 # and the flush before them, which messages leaves out
python3 - "$tmp/sub3.csv" <<'PY' || fail "after the crash: no flush-everything message first"
import csv, json, sys
# Other databases' relays flush too after the crash: keep this database's messages.
msgs = [json.loads(r[2]) for r in csv.reader(open(sys.argv[1]), escapechar="\\", doublequote=False)
        if len(r) == 3 and r[0] == "message"]
msgs = [m for m in msgs if m.get("database") == "cachekit_pubsub"]
assert msgs and msgs[0].get("all") is True and msgs[0].get("flush") is True, msgs[:1]
tables = [m.get("table") for m in msgs[1:]]
assert tables == ["accounts", "accounts", "notes"], tables
PY
[ -z "$(app_keys_left)" ] || fail "keys left after the crash flush: '$(app_keys_left)'"
[ "$(redis-cli -p "$CACHEKIT_REDIS_PORT" exists unrelated:key)" = "1" ] || fail "the flush deleted a key no rule can produce"
echo "ok - after a crash right after the commits: a flush-everything message, then the outbox rows in order; every rule key deleted, other keys kept"
