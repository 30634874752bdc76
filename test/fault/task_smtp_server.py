#!/usr/bin/python3
"""A loopback SMTP server for test/fault/task_email.sh (aiosmtpd, Debian's
python3-aiosmtpd, installed for /usr/bin/python3).

    task_smtp_server.py DIR PORT

Listens on 127.0.0.1:PORT (plain SMTP, no STARTTLS, no AUTH), touches
DIR/ready once it accepts connections, and writes every message it accepts
as DIR/<n>.eml (the DATA exactly as received, CRLF line ends) and
DIR/<n>.json ({"mail_from", "rcpt_tos"}: the envelope), the .json last, so a
message is complete once its .json exists; n goes on from the messages
already in DIR.
"""
import itertools
import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller

DIR, PORT = sys.argv[1], int(sys.argv[2])
# Numbered on from the messages already there: a restarted server adds to them.
counter = itertools.count(1 + sum(f.endswith(".json") for f in os.listdir(DIR)))


class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = next(counter)
        with open(os.path.join(DIR, "%d.eml" % n), "wb") as f:
            f.write(envelope.original_content)
        tmp = os.path.join(DIR, "%d.json.tmp" % n)
        with open(tmp, "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(tmp, os.path.join(DIR, "%d.json" % n))
        return "250 OK"


controller = Controller(Handler(), hostname="127.0.0.1", port=PORT)
controller.start()  # returns once the server answers on the port
open(os.path.join(DIR, "ready"), "w").close()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
controller.stop()
