#!/usr/bin/env python3
"""A fake Amazon CloudFront invalidation API (2020-05-31) for pg_cachekit's tests.

It answers CreateInvalidation and GetInvalidation over HTTPS on 127.0.0.1 and
checks requests the way CloudFront does, so that a client bug fails here
rather than in production:

- SigV4: the signature is recomputed with botocore's signer (an
  implementation independent of libcurl's) over the headers the request says
  it signed, and compared; a wrong access key id, a missing or malformed
  Authorization header, an X-Amz-Date missing or more than 15 minutes off, a
  credential scope other than us-east-1/cloudfront, or host/x-amz-date not
  among the signed headers are refused with 403 and AWS's error XML.
- The InvalidationBatch body: well-formed, in CloudFront's namespace, nothing
  unexpected in it, Quantity equal to the number of paths (400
  InconsistentQuantities), at most 3000 paths (413 BatchTooLarge), every path
  starting with '/' and '*' only at the end (400 InvalidArgument), a
  CallerReference (400 InvalidArgument), an empty body (400 MissingBody),
  anything unparsable (400 MalformedInput).
- In-progress limits per distribution: at most 3000 individual paths and,
  independently, at most 15 wildcard paths in progress (400
  TooManyInvalidationsInProgress); the two limits are independent, as AWS
  documents.
- CallerReference idempotency: the same reference with the same paths gives
  back the existing invalidation (201, same Id); with other paths, 409
  InvalidationBatchAlreadyExists.
- Another distribution id: 404 NoSuchDistribution; an unknown invalidation:
  404 NoSuchInvalidation.

Invalidations complete --complete-after seconds after creation (negative:
only through the control API).

Control API (unsigned, not part of CloudFront):
  POST /_fake/fail      {"status": 503, "code": "ServiceUnavailable", "message": "...",
                         "count": N, "retry_after": "5", "method": "POST",
                         "body": "raw body instead of error XML",
                         "close": false, "after": false}
      The next N API calls (of that method, when given) fail with that answer.
      "close": the connection is closed without an answer instead.
      "after": the call is processed first and only its answer replaced (with
      "close", a lost response: the invalidation exists, the client does not
      know). Defaults: count 1, code by status (429 Throttling, 503
      ServiceUnavailable, 500 InternalError, 400 TooManyInvalidationsInProgress).
  POST /_fake/complete  {"id": "I..."} or {} for every invalidation
  POST /_fake/config    {"complete_after": seconds}
  POST /_fake/reset     forget invalidations, failures and counters
  GET  /_fake/state     {"invalidations": [{id, caller_reference, paths, status,
                         created}], "counters": {...}, "in_progress": {...}}

Every request is written to --log as one JSON line (never the signature):
"time" (ISO, milliseconds) is when the line is written, after the checks;
"received" (epoch seconds, float) is when the request's headers had arrived,
for latency measurements (test/bench/cdn.sh).
With --port 0 the first line on stdout is "PORT <n>".
"""

import argparse
import datetime
import hashlib
import hmac
import json
import random
import string
import ssl
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
API_PREFIX = "/2020-05-31/distribution/"
REGION = "us-east-1"
SERVICE = "cloudfront"
MAX_PATHS_PER_BATCH = 3000
MAX_PATHS_IN_PROGRESS = 3000
MAX_WILDCARDS_IN_PROGRESS = 15
MAX_SKEW_S = 15 * 60
MAX_BODY = 1 << 20

DEFAULT_CODES = {
    400: "TooManyInvalidationsInProgress",
    429: "Throttling",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class ApiError(Exception):
    def __init__(self, status, code, message, sender=True, log=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.sender = sender
        self.log = log or {}


def error_xml(code, message, request_id, sender=True):
    return (
        '<?xml version="1.0"?>\n'
        f'<ErrorResponse xmlns="{NS}"><Error><Type>{"Sender" if sender else "Receiver"}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )


def iso(ts):
    return (
        datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


class Verifier(SigV4Auth):
    """botocore's SigV4 over exactly the headers the client said it signed,
    as AWS does (botocore's own selection skips some, such as user-agent)."""

    def __init__(self, credentials, signed_names):
        super().__init__(credentials, SERVICE, REGION)
        self._signed_names = signed_names

    def headers_to_sign(self, request):
        header_map = HTTPHeaders()
        for name in self._signed_names:
            for value in request.headers.get_all(name) or []:
                header_map[name] = value
        return header_map


class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.distribution = args.distribution
        self.access_key = args.access_key
        self.secret_key = args.secret_key
        self.complete_after = args.complete_after
        self.reset()

    def reset(self):
        self.invalidations = {}  # id -> dict
        self.order = []
        self.by_reference = {}
        self.failures = []  # each {"count": n, ...}
        self.counters = {
            "api_calls": 0,
            "accepted": 0,
            "rejected": 0,
            "created": 0,
            "replayed": 0,
            "injected": 0,
            "by_code": {},
        }

    def status_of(self, inv, now):
        if inv["completed_at"] is None and self.complete_after >= 0:
            if now >= inv["created"] + self.complete_after:
                inv["completed_at"] = inv["created"] + self.complete_after
        return "Completed" if inv["completed_at"] is not None else "InProgress"

    def in_progress(self, now):
        paths = wildcards = 0
        for inv in self.invalidations.values():
            if self.status_of(inv, now) == "InProgress":
                paths += len(inv["paths"])
                wildcards += sum(1 for p in inv["paths"] if p.endswith("*"))
        return paths, wildcards

    def take_failure(self, method):
        for f in self.failures:
            if f["count"] > 0 and f.get("method") in (None, method):
                f["count"] -= 1
                rule = dict(f)
                self.failures = [x for x in self.failures if x["count"] > 0]
                return rule
        return None


def new_id():
    return "I" + "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(13))


def parse_batch(body):
    """(paths, caller_reference) from an InvalidationBatch, or ApiError."""
    if not body:
        raise ApiError(400, "MissingBody", "This operation requires a body.")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ApiError(400, "MalformedInput", "Document type declarations are not allowed.")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise ApiError(400, "MalformedInput", f"Invalid XML document: {e}")
    q = lambda name: f"{{{NS}}}{name}"
    if root.tag != q("InvalidationBatch"):
        raise ApiError(
            400, "MalformedInput", f"Unexpected root element {root.tag}; expected InvalidationBatch in {NS}"
        )

    def only(parent, allowed):
        seen = {}
        for child in parent:
            if child.tag not in [q(a) for a in allowed]:
                raise ApiError(400, "MalformedInput", f"Unexpected element {child.tag}")
            if child.tag in seen and child.tag != q("Path"):
                raise ApiError(400, "MalformedInput", f"Element {child.tag} appears twice")
            seen[child.tag] = child
        return seen

    top = only(root, ["Paths", "CallerReference"])
    if q("Paths") not in top:
        raise ApiError(400, "MalformedInput", "Paths is required")
    paths_el = only(top[q("Paths")], ["Quantity", "Items"])
    if q("Quantity") not in paths_el:
        raise ApiError(400, "MalformedInput", "Quantity is required")
    quantity_text = (paths_el[q("Quantity")].text or "").strip()
    if not quantity_text.isdigit():
        raise ApiError(400, "MalformedInput", f"Quantity must be an integer, not {quantity_text!r}")
    quantity = int(quantity_text)
    paths = []
    if q("Items") in paths_el:
        only(paths_el[q("Items")], ["Path"])
        paths = [p.text or "" for p in paths_el[q("Items")]]
    if quantity != len(paths):
        raise ApiError(
            400,
            "InconsistentQuantities",
            f"The value of Quantity ({quantity}) and the size of Items ({len(paths)}) do not match.",
        )
    if not paths:
        raise ApiError(400, "InvalidArgument", "Your request contains no invalidation paths.")
    if len(paths) > MAX_PATHS_PER_BATCH:
        raise ApiError(413, "BatchTooLarge", "Invalidation batch specified is too large.")
    for p in paths:
        if not p.startswith("/") or "*" in p[:-1]:
            raise ApiError(
                400, "InvalidArgument", "Your request contains one or more invalid invalidation paths."
            )
    ref = top.get(q("CallerReference"))
    if ref is None or not (ref.text or "").strip():
        raise ApiError(400, "InvalidArgument", "CallerReference is required.")
    return paths, ref.text


def invalidation_xml(inv, status):
    items = "".join(f"<Path>{escape(p)}</Path>" for p in inv["paths"])
    return (
        '<?xml version="1.0"?>\n'
        f'<Invalidation xmlns="{NS}"><Id>{inv["id"]}</Id><Status>{status}</Status>'
        f'<CreateTime>{iso(inv["created"])}</CreateTime><InvalidationBatch><Paths>'
        f'<Quantity>{len(inv["paths"])}</Quantity><Items>{items}</Items></Paths>'
        f'<CallerReference>{escape(inv["caller_reference"])}</CallerReference>'
        "</InvalidationBatch></Invalidation>"
    )


class Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: eight parallel connects then
    # lose SYNs and wait out TCP's 1 s retransmission (test/bench/cdn.sh).
    request_queue_size = 128


class Handler(BaseHTTPRequestHandler):
    # Headers and body go out in separate writes: without TCP_NODELAY each
    # answer on a kept-alive connection waits ~40 ms for the client's
    # delayed ACK (measured by test/bench/cdn.sh).
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    server_version = "CloudFront"
    sys_version = ""

    def log_message(self, fmt, *args):  # the JSON log replaces stderr noise
        pass

    # --- plumbing -----------------------------------------------------------

    @property
    def state(self):
        return self.server.state

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
        return self.rfile.read(length) if length else b""

    def send(self, status, body, content_type="text/xml", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amz-request-id", self.request_id)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def write_log(self, entry):
        entry = {"time": iso(time.time()), "received": self.received, "method": self.command, "path": self.path, **entry}
        line = json.dumps(entry, sort_keys=True)
        with self.server.log_lock:
            if self.server.log:
                self.server.log.write(line + "\n")
                self.server.log.flush()

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        self.received = time.time()
        self.request_id = "".join(random.choice("0123456789abcdef") for _ in range(32))
        try:
            body = self.read_body()
        except (ValueError, ApiError):
            self.send(400, error_xml("MalformedInput", "Unreadable body.", self.request_id))
            self.close_connection = True
            return
        if self.path.startswith("/_fake/"):
            self.control(body)
        else:
            self.api(body)

    # --- control API ---------------------------------------------------------

    def control(self, body):
        st = self.state
        try:
            args = json.loads(body or b"{}")
        except ValueError:
            self.send(400, '{"error":"bad json"}', "application/json")
            return
        now = time.time()
        with st.lock:
            if self.command == "POST" and self.path == "/_fake/fail":
                rule = {
                    "status": int(args.get("status", 503)),
                    "count": int(args.get("count", 1)),
                    "method": args.get("method"),
                    "close": bool(args.get("close", False)),
                    "after": bool(args.get("after", False)),
                }
                rule["code"] = args.get("code", DEFAULT_CODES.get(rule["status"], "InternalError"))
                rule["message"] = args.get("message", "Injected failure.")
                if "retry_after" in args:
                    rule["retry_after"] = str(args["retry_after"])
                if "body" in args:
                    rule["body"] = args["body"]
                st.failures.append(rule)
                out = {"ok": True}
            elif self.command == "POST" and self.path == "/_fake/complete":
                ids = [args["id"]] if "id" in args else list(st.invalidations)
                done = []
                for i in ids:
                    inv = st.invalidations.get(i)
                    if inv and inv["completed_at"] is None:
                        inv["completed_at"] = now
                        done.append(i)
                out = {"completed": done}
            elif self.command == "POST" and self.path == "/_fake/config":
                if "complete_after" in args:
                    st.complete_after = float(args["complete_after"])
                out = {"complete_after": st.complete_after}
            elif self.command == "POST" and self.path == "/_fake/reset":
                st.reset()
                out = {"ok": True}
            elif self.command == "GET" and self.path == "/_fake/state":
                paths, wildcards = st.in_progress(now)
                out = {
                    "distribution": st.distribution,
                    "invalidations": [
                        {
                            "id": inv["id"],
                            "caller_reference": inv["caller_reference"],
                            "paths": inv["paths"],
                            "status": st.status_of(inv, now),
                            "created": inv["created"],
                        }
                        for inv in (st.invalidations[i] for i in st.order)
                    ],
                    "counters": json.loads(json.dumps(st.counters)),
                    "in_progress": {"paths": paths, "wildcards": wildcards},
                    "pending_failures": [dict(f) for f in st.failures],
                }
            else:
                self.send(404, '{"error":"unknown control call"}', "application/json")
                return
        self.write_log({"outcome": "control"})
        self.send(200, json.dumps(out), "application/json")

    # --- CloudFront API ------------------------------------------------------

    def api(self, body):
        st = self.state
        with st.lock:
            st.counters["api_calls"] += 1
            injected = st.take_failure(self.command)
        log = {}
        if injected and not injected["after"]:
            self.inject(injected, log)
            return
        status, payload, headers = None, None, []
        try:
            log.update(self.authenticate(body))
            status, payload, headers, extra = self.route(body)
            log.update(extra)
            outcome, code = "accepted", None
        except ApiError as e:
            log.update(e.log)
            outcome, code = "rejected", e.code
            status = e.status
            payload = error_xml(e.code, e.message, self.request_id, e.sender)
            headers = []
        with st.lock:
            st.counters[outcome] += 1
            if code:
                st.counters["by_code"][code] = st.counters["by_code"].get(code, 0) + 1
        log.update({"outcome": outcome, "status": status, "code": code})
        if injected:
            log["processed"] = True
            self.inject(injected, log)
            return
        self.write_log(log)
        self.send(status, payload, headers=headers)

    def inject(self, rule, log):
        with self.state.lock:
            self.state.counters["injected"] += 1
        log.update(
            {
                "injected": True,
                "status": None if rule["close"] else rule["status"],
                "code": None if rule["close"] else rule["code"],
                "closed": rule["close"],
            }
        )
        log.setdefault("outcome", "injected")
        self.write_log(log)
        if rule["close"]:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        headers = [("Retry-After", rule["retry_after"])] if "retry_after" in rule else []
        if "body" in rule:
            self.send(rule["status"], rule["body"], "text/html", headers)
        else:
            self.send(
                rule["status"],
                error_xml(rule["code"], rule["message"], self.request_id, rule["status"] < 500),
                headers=headers,
            )

    def authenticate(self, body):
        st = self.state
        auth = self.headers.get("Authorization")
        if auth is None:
            raise ApiError(403, "MissingAuthenticationToken", "Request is missing Authentication Token")
        algo, _, rest = auth.partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            raise ApiError(403, "IncompleteSignature", f"Unsupported AWS 'algorithm': '{algo}'")
        fields = {}
        for part in rest.split(","):
            k, sep, v = part.strip().partition("=")
            if not sep:
                raise ApiError(403, "IncompleteSignature", "Authorization header is not in key=value form.")
            fields[k] = v
        for k in ("Credential", "SignedHeaders", "Signature"):
            if k not in fields:
                raise ApiError(403, "IncompleteSignature", f"Authorization header requires '{k}' parameter.")
        scope = fields["Credential"].split("/")
        if len(scope) != 5:
            raise ApiError(403, "IncompleteSignature", "Credential is not of the form KEY/DATE/REGION/SERVICE/aws4_request.")
        key_id, scope_date, region, service, terminator = scope
        log = {"key_id": key_id}
        if key_id != st.access_key:
            raise ApiError(403, "InvalidClientTokenId", "The security token included in the request is invalid.", log=log)
        amz_date = self.headers.get("X-Amz-Date")
        if amz_date is None:
            raise ApiError(
                403,
                "IncompleteSignature",
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
                log=log,
            )
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            raise ApiError(403, "IncompleteSignature", "Date must be in ISO-8601 'basic format'.", log=log)
        signed = fields["SignedHeaders"].split(";")
        log["signed_headers"] = signed
        for must in ("host", "x-amz-date"):
            if must not in signed:
                raise ApiError(
                    403, "IncompleteSignature", f"'{must}' must be a 'SignedHeader' in the AWS Authorization.", log=log
                )
        if signed != sorted(set(signed)) or any(n != n.lower() for n in signed):
            raise ApiError(403, "SignatureDoesNotMatch", "SignedHeaders must be sorted lower-case names.", log=log)
        if scope_date != amz_date[:8]:
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"'{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
                log=log,
            )
        if region != REGION:
            raise ApiError(403, "SignatureDoesNotMatch", f"Credential should be scoped to a valid region, not '{region}'.", log=log)
        if service != SERVICE:
            raise ApiError(403, "SignatureDoesNotMatch", f"Credential should be scoped to correct service: '{SERVICE}'.", log=log)
        if terminator != "aws4_request":
            raise ApiError(403, "SignatureDoesNotMatch", "Credential should be scoped with a valid terminator: 'aws4_request'.", log=log)
        now = datetime.datetime.now(datetime.timezone.utc)
        if (now - when).total_seconds() > MAX_SKEW_S:
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                f"Signature expired: {amz_date} is now earlier than "
                f"{(now - datetime.timedelta(seconds=MAX_SKEW_S)).strftime('%Y%m%dT%H%M%SZ')}.",
                log=log,
            )
        if (when - now).total_seconds() > MAX_SKEW_S:
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                f"Signature not yet current: {amz_date} is still later than "
                f"{(now + datetime.timedelta(seconds=MAX_SKEW_S)).strftime('%Y%m%dT%H%M%SZ')}.",
                log=log,
            )
        for name in signed:
            if self.headers.get(name) is None:
                raise ApiError(403, "SignatureDoesNotMatch", f"Signed header '{name}' is not in the request.", log=log)
        content_sha = self.headers.get("X-Amz-Content-SHA256")
        if content_sha is not None and content_sha != "UNSIGNED-PAYLOAD":
            if content_sha != hashlib.sha256(body).hexdigest():
                raise ApiError(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    log=log,
                )

        request = AWSRequest(method=self.command, url=f"https://{self.headers.get('Host')}{self.path}", data=body)
        for name, value in self.headers.items():
            request.headers[name.lower()] = value
        request.context["timestamp"] = amz_date
        verifier = Verifier(Credentials(st.access_key, st.secret_key), signed)
        canonical = verifier.canonical_request(request)
        expected = verifier.signature(verifier.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, fields["Signature"]):
            log["canonical_request"] = canonical
            raise ApiError(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                log=log,
            )
        return log

    def route(self, body):
        """(status, payload, headers, log) for an authenticated call, or ApiError."""
        st = self.state
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(API_PREFIX):
            raise ApiError(404, "NotFound", f"No CloudFront operation at {path}.")
        parts = path[len(API_PREFIX) :].split("/")
        if len(parts) < 2 or parts[1] != "invalidation" or len(parts) > 3:
            raise ApiError(404, "NotFound", f"No CloudFront operation at {path}.")
        if parts[0] != st.distribution:
            raise ApiError(404, "NoSuchDistribution", "The specified distribution does not exist.")
        if len(parts) == 3:
            if self.command != "GET":
                raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed here.")
            with st.lock:
                inv = st.invalidations.get(parts[2])
                if inv is None:
                    raise ApiError(404, "NoSuchInvalidation", "The specified invalidation does not exist.")
                status = st.status_of(inv, time.time())
                return 200, invalidation_xml(inv, status), [], {"invalidation_id": inv["id"], "status_seen": status}
        if self.command != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed here.")
        paths, ref = parse_batch(body)
        log = {"caller_reference": ref, "paths": paths}
        now = time.time()
        with st.lock:
            existing = st.by_reference.get(ref)
            if existing is not None:
                inv = st.invalidations[existing]
                if sorted(inv["paths"]) != sorted(paths):
                    raise ApiError(
                        409,
                        "InvalidationBatchAlreadyExists",
                        "The CallerReference you attempted to create the invalidation with is already in use "
                        "by another invalidation batch.",
                        log=log,
                    )
                st.counters["replayed"] += 1
                log.update({"invalidation_id": inv["id"], "replayed": True})
            else:
                in_paths, in_wild = st.in_progress(now)
                wild = sum(1 for p in paths if p.endswith("*"))
                # AWS: "the limit on wildcard invalidation requests is
                # independent of the limit on invalidating files individually".
                if (in_paths - in_wild) + (len(paths) - wild) > MAX_PATHS_IN_PROGRESS or in_wild + wild > MAX_WILDCARDS_IN_PROGRESS:
                    raise ApiError(
                        400,
                        "TooManyInvalidationsInProgress",
                        f"Processing your request would cause you to exceed the maximum number of in-progress "
                        f"invalidations: {in_paths} paths ({in_wild} wildcards) in progress, {len(paths)} "
                        f"({wild} wildcards) requested.",
                        log=log,
                    )
                inv = {
                    "id": new_id(),
                    "caller_reference": ref,
                    "paths": paths,
                    "created": now,
                    "completed_at": None,
                }
                st.invalidations[inv["id"]] = inv
                st.order.append(inv["id"])
                st.by_reference[ref] = inv["id"]
                st.counters["created"] += 1
                log["invalidation_id"] = inv["id"]
            status = st.status_of(inv, now)
            location = f"https://{self.headers.get('Host')}{API_PREFIX}{st.distribution}/invalidation/{inv['id']}"
            return 201, invalidation_xml(inv, status), [("Location", location)], log


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log")
    ap.add_argument("--access-key", default="AKIDEXAMPLE")
    ap.add_argument("--secret-key", default="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    ap.add_argument("--distribution", default="EDFDVBD6EXAMPLE")
    ap.add_argument("--complete-after", type=float, default=1.0)
    args = ap.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    # The handshake then happens in the request's thread, so a client that
    # connects and stalls does not hold up everyone else.
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.state = State(args)
    server.log_lock = threading.Lock()
    server.log = open(args.log, "a", encoding="utf-8") if args.log else None
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
