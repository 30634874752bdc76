#!/usr/bin/python3
"""A cacheable origin for the Varnish tests: counts the requests it serves.

    origin.py [--port N] [--log FILE] [--tags PREFIX=TAG[,TAG...]]...

Listens on 127.0.0.1 (plain HTTP; --port 0, the default, picks a free port and
the first line on stdout is "PORT n"). Every GET or HEAD for a path answers 200
with "Cache-Control: max-age=3600", a body naming the path and how often it
was served, and the object's tags in both forms caches read them:
"Surrogate-Key: a b" (Fastly, space-separated) and "Cache-Tag: a,b"
(Cloudflare, comma-separated). Tags come from the query ("?tags=a,b") or from
--tags rules: a path starting with PREFIX gets TAGs (every matching rule
adds its tags). --log appends one JSON object per request: {"t", "method",
"path"}.

Control (never cached: answered with Cache-Control: no-store, and meant to be
asked directly, not through the cache):
  GET  /_origin/counts   {"/path?query": times served, ...}
  POST /_origin/reset    forget the counts
"""
import argparse
import http.server
import json
import threading
import time
import urllib.parse

LOCK = threading.Lock()
COUNTS = {}


class Handler(http.server.BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY each
    # answer on a kept-alive connection waits ~40 ms for the client's
    # delayed ACK (measured by test/bench/cdn.sh).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "cachekit-test-origin"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_origin/"):
            return self.control(url.path)
        if ARGS.log:
            with LOCK, open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"t": time.time(), "method": self.command,
                                    "path": self.path}) + "\n")
        if self.command not in ("GET", "HEAD"):
            return self.reply(405, b"method not allowed\n",
                              {"Content-Type": "text/plain", "Cache-Control": "no-store"})
        with LOCK:
            COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
            n = COUNTS[self.path]
        tags = []
        for prefix, rule_tags in RULES:
            if url.path.startswith(prefix):
                tags.extend(rule_tags)
        for value in urllib.parse.parse_qs(url.query).get("tags", []):
            tags.extend(t for t in value.split(",") if t)
        headers = {"Content-Type": "text/plain", "Cache-Control": "max-age=3600"}
        if tags:
            headers["Surrogate-Key"] = " ".join(tags)
            headers["Cache-Tag"] = ",".join(tags)
        body = ("%s served %d time(s)\n" % (self.path, n)).encode()
        return self.reply(200, body, headers)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any

    def control(self, path):
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store"}
        if path == "/_origin/counts" and self.command == "GET":
            with LOCK:
                body = json.dumps(COUNTS, sort_keys=True)
            return self.reply(200, body.encode(), headers)
        if path == "/_origin/reset" and self.command == "POST":
            with LOCK:
                COUNTS.clear()
            return self.reply(200, b"{}", headers)
        return self.reply(404, b"{}", headers)


def rule(text):
    prefix, sep, tags = text.partition("=")
    if not sep or not prefix.startswith("/") or not tags:
        raise argparse.ArgumentTypeError("expected PREFIX=TAG[,TAG...], PREFIX starting with /")
    return prefix, [t for t in tags.split(",") if t]


class Server(http.server.ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: eight parallel connects then
    # lose SYNs and wait out TCP's 1 s retransmission (test/bench/cdn.sh).
    request_queue_size = 128
    daemon_threads = True


def main():
    global ARGS, RULES
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--tags", type=rule, action="append", default=[])
    ARGS = p.parse_args()
    RULES = ARGS.tags
    server = Server(("127.0.0.1", ARGS.port), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


ARGS = None
RULES = []

if __name__ == "__main__":
    main()
