#!/usr/bin/python3
"""A loopback HTTP endpoint for test/fault/task_http.sh.

    task_http_server.py DIR

Listens on 127.0.0.1 on a free port, writes the port to DIR/port once it
accepts connections, and records

  DIR/connections.log  one line per accepted TCP connection, written before
                       the connection is handed to a handler thread, so a
                       connection accepted before another is logged before it
  DIR/requests.jsonl   one JSON object per request, written before the
                       response: {"t": epoch seconds at arrival, "method",
                       "path" (with the query), "headers": [[name, value]...],
                       "body_b64"}

Answers by path (query parameters in brackets):

  /json       200, a JSON object, Content-Type application/json, X-Served-By
  /echo       200, the request body back, its Content-Type
  /notfound   404, a short text body
  /busy       503, Retry-After: [after, default 2]
  /slow       200 after [ms, default 3000] milliseconds
  /big        200, [n] bytes: "0123456789" repeated, or [kind=utf8] "é"
              repeated (two bytes each), or [kind=binary] bytes 0x00-0xff
              repeated
  anything    200, "ok"
"""
import base64
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

DIR = sys.argv[1]
LOCK = threading.Lock()


def append(name, line):
    with LOCK:
        with open(os.path.join(DIR, name), "a", encoding="utf-8") as f:
            f.write(line + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the test reads requests.jsonl
        pass

    def handle_any(self):
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        append("requests.jsonl", json.dumps({
            "t": arrived,
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_b64": base64.b64encode(body).decode("ascii"),
        }))
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        status, headers, out = 200, {"Content-Type": "text/plain"}, b"ok"
        if url.path == "/json":
            headers = {"Content-Type": "application/json", "X-Served-By": "fault-http"}
            out = json.dumps({"hello": "world", "n": 42}).encode()
        elif url.path == "/echo":
            headers = {"Content-Type": self.headers.get("Content-Type", "application/octet-stream")}
            out = body
        elif url.path == "/notfound":
            status, out = 404, b"no such thing here"
        elif url.path == "/busy":
            status, out = 503, b"busy, come back later"
            headers["Retry-After"] = q.get("after", "2")
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", "3000")) / 1000)
        elif url.path == "/big":
            n = int(q.get("n", "1000"))
            unit = {"utf8": "é".encode(), "binary": bytes(range(256))}.get(q.get("kind"), b"0123456789")
            out = (unit * (n // len(unit) + 1))[:n]
            headers["Content-Type"] = "application/octet-stream"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if self.command != "HEAD":
                self.wfile.write(out)
        except OSError:  # the client gave up (a timeout test)
            pass
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def verify_request(self, request, client_address):
        # Called in the accepting thread for every connection, in order.
        append("connections.log", "%f %s:%d" % (time.time(), *client_address))
        return True


server = Server(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
