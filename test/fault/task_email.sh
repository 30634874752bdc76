#!/usr/bin/env bash
# Built-in email tasks against a real SMTP server on loopback
# (task_smtp_server.py, aiosmtpd): the delivered message has the envelope
# recipients To + Cc + Bcc, From/To/Cc headers and no Bcc header, an RFC 2047
# Subject that decodes back to the UTF-8 original, multipart/alternative with
# both parts intact (dot-stuffing included); only members of cachekit_email
# may enqueue, a missing "to" is refused at enqueue, a header injection is
# dead without sending, and with the server down the task fails with 08001
# and is delivered by its retry once the server is back.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "not ok - $*"; exit 1; }
[ -n "${CACHEKIT_SANDBOX_DIR:-}" ] || fail "run under tools/run-tests or after eval \"\$(test/sandbox start)\""
PY=/usr/bin/python3 # Debian's, which has python3-aiosmtpd
$PY -c 'import aiosmtpd' 2>/dev/null || fail "python3-aiosmtpd is not installed for $PY (tools/deps installs it)"
db=cachekit_task_email
user=fault_mail_user   # cachekit_tasks and cachekit_email
plain=fault_mail_plain # cachekit_tasks only

dir=$(mktemp -d /tmp/pg_cachekit_task_email.XXXXXX)
mail=$dir/mail
mkdir "$mail"
server_pid=
cleanup() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET cachekit.smtp_url" -c "ALTER SYSTEM RESET cachekit.smtp_from" \
		-c "ALTER SYSTEM RESET cachekit.task_max_backoff" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
	dropdb --if-exists "$db" >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $user" -c "DROP ROLE IF EXISTS $plain" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

smtp_port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_smtp() {
	rm -f "$mail/ready"
	$PY test/fault/task_smtp_server.py "$mail" "$smtp_port" 2>>"$dir/server.err" &
	server_pid=$!
	for _ in $(seq 1 200); do
		[ -f "$mail/ready" ] && return 0
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.05
	done
	fail "the SMTP server did not start: $(cat "$dir/server.err")"
}
stop_smtp() {
	kill "$server_pid"
	wait "$server_pid" 2>/dev/null || true
	server_pid=
}
start_smtp

dropdb --if-exists "$db" >/dev/null 2>&1
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP ROLE IF EXISTS $user" -c "DROP ROLE IF EXISTS $plain"
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pg_cachekit;
CREATE ROLE $user LOGIN;
CREATE ROLE $plain LOGIN;
GRANT cachekit_tasks, cachekit_email TO $user;
GRANT cachekit_tasks TO $plain;
SQL

q() { psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -c "$1"; }
# enqueue ARGS_JSON [MORE ENQUEUE ARGUMENTS]: the task id, enqueued as $user.
enqueue() {
	psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 -c "SET ROLE $user" \
		-c "SELECT cachekit.enqueue('email', 'email', \$j\$$1\$j\$::jsonb${2:+, $2})" ||
		{ echo "not ok - enqueue failed: $1" >&2; exit 1; } # inside $(...): say it on stderr
}
# The SQLSTATE of SQL run as ROLE, or "none".
sqlstate_of() {
	local out
	out=$(psql -X -q -At -d "$db" -v VERBOSITY=verbose -c "SET ROLE $1" -c "$2" 2>&1 || true)
	sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' <<<"$out" | head -1 | grep . || echo none
}
# wait_state ID REGEX [SECONDS]: waits until the task's state matches.
wait_state() {
	local state deadline=$((SECONDS + ${3:-15}))
	while :; do
		state=$(q "SELECT state FROM cachekit.tasks WHERE id = $1")
		[[ $state =~ ^($2)$ ]] && return 0
		[[ $state =~ ^(succeeded|dead|cancelled)$ ]] && fail "task $1 is $state, not $2: $(q "SELECT cachekit.task_status($1)")"
		((SECONDS < deadline)) || fail "task $1 is '$state', not $2, after ${3:-15}s: $(q "SELECT cachekit.task_status($1)")"
		sleep 0.05
	done
}
col() { q "SELECT $2 FROM cachekit.tasks WHERE id = $1"; }
delivered() { find "$mail" -name '*.json' | wc -l; }
set_setting() { # NAME VALUE: ALTER SYSTEM + reload, waited for in new sessions
	psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 100); do
		[ "$(q "SELECT setting FROM pg_settings WHERE name = '$1'")" = "$2" ] && return 0
		sleep 0.05
	done
	fail "$1 did not become '$2'"
}
set_setting cachekit.smtp_url "smtp://127.0.0.1:$smtp_port"
set_setting cachekit.smtp_from "Fault Sender <sender@example.org>"

# 1. Refused at enqueue: without cachekit_email (42501), without "to" (22023).
code=$(sqlstate_of "$plain" "SELECT cachekit.enqueue('email', 'email', '{\"to\": \"x@example.com\", \"text\": \"hi\"}')")
[ "$code" = 42501 ] || fail "a role without cachekit_email enqueued an email task (SQLSTATE $code)"
code=$(sqlstate_of "$user" "SELECT cachekit.enqueue('email', 'email', '{\"subject\": \"no recipient\", \"text\": \"hi\"}')")
[ "$code" = 22023 ] || fail "an email task without \"to\" was not refused with 22023 (SQLSTATE $code)"
code=$(sqlstate_of "$user" "SELECT cachekit.enqueue('email', 'email', '{\"to\": 42, \"text\": \"hi\"}')")
[ "$code" = 22023 ] || fail "an email task with a number as \"to\" was not refused with 22023 (SQLSTATE $code)"
[ "$(q "SELECT count(*) FROM cachekit._tasks")" = 0 ] || fail "a refused enqueue left a task row"
echo "ok - email tasks: refused at enqueue without cachekit_email (42501) and without \"to\" (22023)"

# 2. A message with To (array), Cc, Bcc, a UTF-8 subject, text and html.
subject="Grüße 🎉"
text=$'Hallo Ännchen,\nGrüße 🎉 aus dem Test.\n.\n.leading dot\nFrom the start of a line\n'"$(printf 'word%.0s ' $(seq 1 60))"$'\nend'
html=$'<p>Grüße <b>🎉</b></p>\n<p>second &amp; last</p>'
args=$(jq -cn --arg s "$subject" --arg t "$text" --arg h "$html" '{
	to: ["Ännchen Example <ann@example.com>", "bob@example.com"], cc: "Carol <carol@example.net>",
	bcc: ["dave@example.org"], subject: $s, text: $t, html: $h}')
id=$(enqueue "$args")
wait_state "$id" succeeded
[ "$(col "$id" "result = '{\"sent\": true, \"recipients\": 4}'")" = t ] || fail "email result: $(col "$id" result)"
[ "$(delivered)" = 1 ] || fail "$(delivered) messages delivered, want 1"
out=$(SUBJECT=$subject TEXT=$text HTML=$html $PY - "$mail/1.eml" "$mail/1.json" <<'PY' 2>&1
import email, email.policy, email.header, email.utils, json, os, sys

raw = open(sys.argv[1], "rb").read()
env = json.load(open(sys.argv[2]))
problems = []
def check(ok, what):
    if not ok:
        problems.append(what)

check(env["mail_from"] == "sender@example.org", "envelope sender %r" % env["mail_from"])
want = ["ann@example.com", "bob@example.com", "carol@example.net", "dave@example.org"]
check(sorted(env["rcpt_tos"]) == want, "envelope recipients %r, want %r" % (env["rcpt_tos"], want))
head = raw.split(b"\r\n\r\n", 1)[0]
check(all(b < 0x80 for b in head), "non-ASCII bytes in the header")
check(b"\n" not in raw.replace(b"\r\n", b""), "a bare LF in the message")
check(max(len(l) for l in raw.split(b"\r\n")) <= 998, "a line longer than 998 bytes")
check(b"dave@example.org" not in raw, "the Bcc address is in the message")

msg = email.message_from_bytes(raw, policy=email.policy.default)
check("Bcc" not in msg, "a Bcc header")
raw_subject = email.message_from_bytes(raw, policy=email.policy.compat32)["Subject"]
check("=?utf-8?" in str(raw_subject).lower(), "Subject is not an RFC 2047 encoded-word: %r" % raw_subject)
decoded = str(email.header.make_header(email.header.decode_header(str(raw_subject))))
check(decoded == os.environ["SUBJECT"], "Subject decodes to %r" % decoded)
check(msg["Subject"] == os.environ["SUBJECT"], "Subject (policy.default) is %r" % msg["Subject"])

def addrs(name):
    h = msg[name]
    return [(a.display_name, a.addr_spec) for a in h.addresses] if h is not None else None
check(addrs("From") == [("Fault Sender", "sender@example.org")], "From %r" % addrs("From"))
check(addrs("To") == [("Ännchen Example", "ann@example.com"), ("", "bob@example.com")], "To %r" % addrs("To"))
check(addrs("Cc") == [("Carol", "carol@example.net")], "Cc %r" % addrs("Cc"))
check(msg["MIME-Version"] == "1.0", "MIME-Version %r" % msg["MIME-Version"])
check(msg["Date"] is not None and msg["Date"].datetime is not None, "no Date")
check(msg["Message-ID"] is not None and str(msg["Message-ID"]).endswith("@example.org>"),
      "Message-ID %r" % msg["Message-ID"])

check(msg.get_content_type() == "multipart/alternative", "Content-Type %s" % msg.get_content_type())
parts = list(msg.iter_parts()) if msg.is_multipart() else []
check([p.get_content_type() for p in parts] == ["text/plain", "text/html"],
      "parts %r" % [p.get_content_type() for p in parts])
for part, want in zip(parts, [os.environ["TEXT"], os.environ["HTML"]]):
    check(part.get_content_charset() == "utf-8", "%s charset %r" % (part.get_content_type(), part.get_content_charset()))
    got = part.get_content().replace("\r\n", "\n")
    check(got in (want, want + "\n"), "%s decodes to %r, want %r" % (part.get_content_type(), got, want))
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
) || fail "the delivered message: $out"
echo "ok - delivered: envelope To+Cc+Bcc, From/To/Cc headers, no Bcc, RFC 2047 Subject decoding to \"$subject\", multipart/alternative with both parts intact"

# 2b. Plain ASCII text only (sent 7bit, so lines starting with a dot rely on
#     SMTP dot-stuffing) and a sender of its own.
text=$'retried\n.\n..two dots\n.\r\nend'
id=$(enqueue "$(jq -cn --arg t "$text" '{to: "bob@example.com", from: "Other <other@example.org>", subject: "plain", text: $t}')")
wait_state "$id" succeeded
[ "$(delivered)" = 2 ] || fail "plain text: $(delivered) messages delivered, want 2"
out=$(TEXT=$text $PY - "$mail/2.eml" "$mail/2.json" <<'PY' 2>&1
import email, email.policy, json, os, sys
raw = open(sys.argv[1], "rb").read()
env = json.load(open(sys.argv[2]))
msg = email.message_from_bytes(raw, policy=email.policy.default)
want = os.environ["TEXT"].replace("\r\n", "\n")
got = msg.get_content().replace("\r\n", "\n") if not msg.is_multipart() else None
problems = [p for ok, p in [
    (env["mail_from"] == "other@example.org", "envelope sender %r" % env["mail_from"]),
    (env["rcpt_tos"] == ["bob@example.com"], "envelope recipients %r" % env["rcpt_tos"]),
    (msg["From"].addresses[0].addr_spec == "other@example.org", "From %r" % msg["From"]),
    (msg.get_content_type() == "text/plain", "Content-Type %s" % msg.get_content_type()),
    (msg["Content-Transfer-Encoding"] in (None, "7bit"), "Content-Transfer-Encoding %r" % msg["Content-Transfer-Encoding"]),
    (got in (want, want + "\n"), "body %r, want %r" % (got, want)),
] if not ok]
print("\n".join(problems))
sys.exit(1 if problems else 0)
PY
) || fail "the plain message: $out"
echo "ok - a plain ASCII message (7bit, lines starting with dots) arrives intact, from the task's own sender"

# 3. A header injection through the subject: dead (22023), nothing sent.
id=$(enqueue '{"to": "ann@example.com", "subject": "hi\r\nBcc: eve@example.com", "text": "x"}')
wait_state "$id" dead
[ "$(col "$id" "last_error->>'sqlstate'")" = 22023 ] || fail "header injection: $(col "$id" last_error)"
[ "$(col "$id" attempts)" = 1 ] || fail "header injection tried $(col "$id" attempts) times"
[ "$(delivered)" = 2 ] || fail "a message with a CR LF in its subject was sent"
echo "ok - a CR LF in the subject is refused when the task runs (dead, 22023) and nothing is sent"

# 4. The SMTP server is down: failed with 08001, retried, delivered once it
#    is back. Retries at most 2 s apart, so however long the restart takes
#    the next retry is near.
set_setting cachekit.task_max_backoff 2
stop_smtp
id=$(enqueue '{"to": ["ann@example.com"], "subject": "after the outage", "text": "retried"}' "max_attempts => 10")
wait_state "$id" failed
# The retry comes about a second later, maybe before this read (on a loaded
# machine): running again then, with the failure's error still stored.
row=$(col "$id" "state || ' ' || attempts || ' ' || (last_error->>'sqlstate')")
[[ $row =~ ^(failed|running)\ [123]\ 08001$ ]] || fail "server down: $row, $(col "$id" last_error)"
start_smtp
wait_state "$id" succeeded 15
[ "$(col "$id" attempts)" -ge 2 ] || fail "after the outage: succeeded after $(col "$id" attempts) attempts"
[ "$(delivered)" = 3 ] || fail "after the outage: $(delivered) messages delivered, want 3"
[ "$(jq -c .rcpt_tos "$mail/3.json")" = '["ann@example.com"]' ] || fail "after the outage: envelope $(cat "$mail/3.json")"
grep -q '^Subject: after the outage' "$mail/3.eml" || fail "after the outage: wrong message delivered"
echo "ok - with the SMTP server down the task fails (08001) and its retry delivers it"
