#!/usr/bin/python3
"""A fake Fastly or Cloudflare purge API on 127.0.0.1, over HTTPS, that checks
requests the way the service does.

    fake_cdn_api.py --api fastly|cloudflare --cert CERT --key KEY --token TOKEN
                    [--id ID ...] [--port N] [--log FILE]

--port 0 (the default) picks a free port; the first line on stdout is then
"PORT n", printed once the server accepts connections. --id names a Fastly
service id or Cloudflare zone id that exists (repeatable; default "svc1" /
"zone1"); other ids answer 404. --log appends one JSON object per request:
{"t", "method", "path", "status", "outcome": accepted|rejected|injected,
"reason", "items"}; the token is never logged.

Fastly (as its API documents it, see src/core/cdn_fastly.cpp):
  POST /purge/{host}/{path}                 Fastly-Key; {"status": "ok", "id": ...}
  POST /service/{id}/purge                  Fastly-Key, Content-Type: application/json,
                                            {"surrogate_keys": [1-256 strings]};
                                            answers {"key": "purge id", ...}
  POST /service/{id}/purge/{key}            one key
  POST /service/{id}/purge_all              {"status": "ok"}; Fastly-Soft-Purge is
                                            refused (purge_all cannot be soft)
  A wrong or missing Fastly-Key: 401 {"msg": "Provided credentials are missing or invalid"}.

Cloudflare (see src/core/cdn_cloudflare.cpp):
  POST [/client/v4]/zones/{id}/purge_cache  Authorization: Bearer TOKEN, a JSON object
                                            with exactly one of files, tags, prefixes,
                                            hosts (1-100 items) or purge_everything: true
  Success: {"success": true, "errors": [], "messages": [], "result": {"id": ...}}.
  A wrong token: 403 with error code 10000 "Authentication error". Error codes
  other than 10000 are this fake's own (1012 bad body, 1015 too many items,
  7003 unknown zone), not Cloudflare's.

Control API (no authentication):
  POST /_fake/fail {"status": 429|500|503, "count": N, "retry_after": S}
       the next N purge requests answer `status` (with Retry-After: S when given)
       before any other check
  GET  /_fake/state  {"requests", "accepted", "rejected", "injected", "api_calls_by_status",
       "purged": [{"kind", "item", "soft"}...] in the order they were accepted}
  POST /_fake/reset  forget the state (not the scripted failures)
"""
import argparse
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time
import urllib.parse

LOCK = threading.Lock()
STATE = {"requests": 0, "accepted": 0, "rejected": 0, "injected": 0,
         "api_calls_by_status": {}, "purged": []}
FAILS = []  # [{"status", "count", "retry_after"}]
PURGE_SEQ = [0]


def new_state():
    STATE.update({"requests": 0, "accepted": 0, "rejected": 0, "injected": 0,
                  "api_calls_by_status": {}, "purged": []})


def next_id():
    PURGE_SEQ[0] += 1
    return "%d-%d-%06d" % (108, int(time.time()), PURGE_SEQ[0])


class Rejected(Exception):
    def __init__(self, status, body, reason):
        super().__init__(reason)
        self.status, self.body, self.reason = status, body, reason


def fastly_error(status, msg, detail=None):
    body = {"msg": msg}
    if detail:
        body["detail"] = detail
    return Rejected(status, body, msg + ((": " + detail) if detail else ""))


def cloudflare_error(status, code, message):
    return Rejected(status, {"success": False, "errors": [{"code": code, "message": message}],
                             "messages": [], "result": None}, "%d %s" % (code, message))


class Handler(http.server.BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY each
    # answer on a kept-alive connection waits ~40 ms for the client's
    # delayed ACK (measured by test/bench/cdn.sh).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "fake-cdn-api"

    def log_message(self, *args):  # quiet: the log file has what matters
        pass

    # ------------------------------------------------------------ plumbing
    def reply(self, status, obj, headers=None):
        out = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)

    def log(self, status, outcome, reason="", items=0):
        if not ARGS.log:
            return
        line = json.dumps({"t": time.time(), "method": self.command, "path": self.path,
                           "status": status, "outcome": outcome, "reason": reason,
                           "items": items})
        with LOCK:
            with open(ARGS.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        raw = self.body()
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_fake/"):
            return self.control(path, raw)
        with LOCK:
            STATE["requests"] += 1
            injected = None
            if FAILS:
                injected = FAILS[0]
                injected["count"] -= 1
                if injected["count"] <= 0:
                    FAILS.pop(0)
        if injected is not None:
            status = injected["status"]
            headers = {}
            if injected.get("retry_after") is not None:
                headers["Retry-After"] = str(injected["retry_after"])
            if ARGS.api == "fastly":
                body = {"msg": "injected failure %d" % status}
            else:
                body = {"success": False, "errors": [{"code": 971 if status == 429 else 1000,
                                                      "message": "injected failure %d" % status}],
                        "messages": [], "result": None}
            with LOCK:
                STATE["injected"] += 1
                self.count_status(status)
            self.log(status, "injected", "scripted failure")
            return self.reply(status, body, headers)
        try:
            if self.command != "POST":
                raise (fastly_error(405, "Method not allowed") if ARGS.api == "fastly"
                       else cloudflare_error(405, 10405, "Method not allowed"))
            if ARGS.api == "fastly":
                status, answer, purged = self.fastly(path, raw)
            else:
                status, answer, purged = self.cloudflare(path, raw)
        except Rejected as r:
            with LOCK:
                STATE["rejected"] += 1
                self.count_status(r.status)
            self.log(r.status, "rejected", r.reason)
            return self.reply(r.status, r.body)
        with LOCK:
            STATE["accepted"] += 1
            STATE["purged"].extend(purged)
            self.count_status(status)
        self.log(status, "accepted", items=len(purged))
        return self.reply(status, answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

    @staticmethod
    def count_status(status):
        key = str(status)
        STATE["api_calls_by_status"][key] = STATE["api_calls_by_status"].get(key, 0) + 1

    def control(self, path, raw):
        if path == "/_fake/state" and self.command == "GET":
            with LOCK:
                snapshot = json.loads(json.dumps(STATE))
            return self.reply(200, snapshot)
        if path == "/_fake/reset" and self.command == "POST":
            with LOCK:
                new_state()
            return self.reply(200, {"ok": True})
        if path == "/_fake/fail" and self.command == "POST":
            try:
                spec = json.loads(raw or b"{}")
                status = int(spec["status"])
                count = int(spec.get("count", 1))
                retry_after = spec.get("retry_after")
            except (ValueError, KeyError, TypeError) as e:
                return self.reply(400, {"error": "bad failure spec: %s" % e})
            if status < 400 or status > 599 or count < 1:
                return self.reply(400, {"error": "status must be 4xx/5xx and count >= 1"})
            with LOCK:
                FAILS.append({"status": status, "count": count, "retry_after": retry_after})
            return self.reply(200, {"ok": True})
        return self.reply(404, {"error": "no such control endpoint"})

    # -------------------------------------------------------------- Fastly
    def fastly(self, path, raw):
        if self.headers.get("Fastly-Key") != ARGS.token:
            raise fastly_error(401, "Provided credentials are missing or invalid")
        soft = self.headers.get("Fastly-Soft-Purge") is not None
        if path.startswith("/purge/"):
            cached = path[len("/purge/"):]
            query = urllib.parse.urlsplit(self.path).query
            if query:
                cached += "?" + query
            if not re.match(r"^[A-Za-z0-9.\-]+(:[0-9]+)?(/|$)", cached):
                raise fastly_error(400, "Bad request", "the cached URL must start with a host")
            return 200, {"status": "ok", "id": next_id()}, [
                {"kind": "url", "item": cached, "soft": soft}]
        m = re.match(r"^/service/([^/]+)/(purge_all|purge)(?:/(.+))?$", path)
        if not m:
            raise fastly_error(404, "Record not found", "no such endpoint")
        service, action, key = m.groups()
        if service not in ARGS.id:
            raise fastly_error(404, "Record not found",
                               "Cannot find service '%s'" % service)
        if action == "purge_all":
            if key is not None:
                raise fastly_error(404, "Record not found", "no such endpoint")
            if soft:
                raise fastly_error(400, "Bad request", "purge_all cannot be a soft purge")
            return 200, {"status": "ok"}, [{"kind": "all", "item": service, "soft": False}]
        if key is not None:
            key = urllib.parse.unquote(key)
            return 200, {"status": "ok", "id": next_id()}, [
                {"kind": "key", "item": key, "soft": soft}]
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise fastly_error(400, "Bad request", "Content-Type must be application/json")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise fastly_error(400, "Bad request", "the body is not JSON")
        keys = doc.get("surrogate_keys") if isinstance(doc, dict) else None
        if (not isinstance(doc, dict) or set(doc) != {"surrogate_keys"}
                or not isinstance(keys, list) or not keys
                or not all(isinstance(k, str) and k and " " not in k for k in keys)):
            raise fastly_error(400, "Bad request",
                               "expected {\"surrogate_keys\": [non-empty strings]}")
        if len(keys) > 256:
            raise fastly_error(400, "Bad request",
                               "at most 256 surrogate keys per request, got %d" % len(keys))
        return 200, {k: next_id() for k in keys}, [
            {"kind": "key", "item": k, "soft": soft} for k in keys]

    # ---------------------------------------------------------- Cloudflare
    def cloudflare(self, path, raw):
        auth = self.headers.get("Authorization") or ""
        if auth != "Bearer " + ARGS.token:
            raise cloudflare_error(403, 10000, "Authentication error")
        m = re.match(r"^(?:/client/v4)?/zones/([^/]+)/purge_cache$", path)
        if not m:
            raise cloudflare_error(404, 7000, "No route for that URI")
        zone = m.group(1)
        if zone not in ARGS.id:
            raise cloudflare_error(404, 7003, "Could not route to %s, perhaps your object "
                                   "identifier is invalid?" % path)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise cloudflare_error(400, 1012, "Content-Type must be application/json")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise cloudflare_error(400, 1012, "Request body is not valid JSON")
        kinds = ("files", "tags", "prefixes", "hosts", "purge_everything")
        if not isinstance(doc, dict) or len(doc) != 1 or next(iter(doc)) not in kinds:
            raise cloudflare_error(400, 1012, "Request must contain exactly one of "
                                   + ", ".join(kinds))
        kind, value = next(iter(doc.items()))
        result = {"success": True, "errors": [], "messages": [], "result": {"id": next_id()}}
        if kind == "purge_everything":
            if value is not True:
                raise cloudflare_error(400, 1012, "purge_everything must be true")
            return 200, result, [{"kind": "purge_everything", "item": zone, "soft": False}]
        if not isinstance(value, list) or not value:
            raise cloudflare_error(400, 1012, "%s must be a non-empty array" % kind)
        if len(value) > 100:
            raise cloudflare_error(400, 1015, "You may only purge up to 100 %s at a time, "
                                   "got %d" % (kind, len(value)))
        items = []
        for v in value:
            if kind == "files" and isinstance(v, dict):
                v = v.get("url")
            if not isinstance(v, str) or not v:
                raise cloudflare_error(400, 1012, "%s must hold non-empty strings" % kind)
            if kind == "files" and not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
                raise cloudflare_error(400, 1012, "files must be absolute URLs: %s" % v)
            if kind == "prefixes" and ("://" in v or "?" in v or "#" in v
                                       or not re.match(r"^[A-Za-z0-9.\-]+(:[0-9]+)?(/\S*)?$", v)):
                raise cloudflare_error(400, 1012, "prefixes are host/path without scheme or "
                                       "query: %s" % v)
            if kind == "tags" and ("," in v or " " in v):
                raise cloudflare_error(400, 1012, "tags cannot contain commas or spaces")
            items.append({"kind": kind, "item": v, "soft": False})
        return 200, result, items


class Server(http.server.ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: eight parallel connects then
    # lose SYNs and wait out TCP's 1 s retransmission (test/bench/cdn.sh).
    request_queue_size = 128
    daemon_threads = True
    ssl_context = None

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread: a client
        # that never completes one cannot stall the accept loop.
        try:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-request is not the test's business


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--api", choices=("fastly", "cloudflare"), required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--id", action="append", default=None)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    ARGS = p.parse_args()
    if not ARGS.id:
        ARGS.id = ["svc1" if ARGS.api == "fastly" else "zone1"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ARGS.cert, ARGS.key)
    server = Server(("127.0.0.1", ARGS.port), Handler)
    server.ssl_context = ctx
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


ARGS = None

if __name__ == "__main__":
    main()
