#!/usr/bin/python3
"""A fake S3 endpoint for pg_cachekit-cdn's sync and test commands.

Serves HTTPS on 127.0.0.1 and checks every request the way S3 does: the AWS
SigV4 signature is recomputed from the request as received with botocore's
S3 signer (an implementation independent of libcurl's), every x-amz-* header
must be signed, the date must be within 15 minutes, and the body must match
x-amz-content-sha256 unless that is UNSIGNED-PAYLOAD. Failures are answered
with S3's error documents (403 SignatureDoesNotMatch, InvalidAccessKeyId,
400 XAmzContentSHA256Mismatch, ...). With "Expect: 100-continue" the
signature is checked before the body is accepted, as S3 does.

Buckets are addressed path-style (/BUCKET/KEY) or virtual-hosted
(Host: BUCKET.anything). Supported: PUT object, GET/HEAD object, HEAD bucket.

Control API (not signed; the names cannot be buckets):
  GET  /_fake/state   {"buckets": {NAME: {KEY: {"sha256", "size", "content_type",
                       "puts"}}}, "accepted": N, "rejected": N}
  POST /_fake/fail    {"method": "PUT", "status": 503, "code": "SlowDown",
                       "count": 1}: the next COUNT signed requests with that
                       method get that error instead of being served
  POST /_fake/reset   forget every object, counter and scripted failure

usage: fake_s3.py --cert CERT --key KEY --access-key ID --secret-key SECRET
                  --bucket NAME [--bucket NAME...] [--region us-east-1]
                  [--port 0] [--log FILE]
With --port 0 a free port is chosen; the first line on stdout is "PORT n".
The log has one JSON object a line for every request accepted or rejected;
it never contains the secret key or a signature.
"""
import argparse
import datetime
import hashlib
import hmac
import json
import re
import ssl
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_SKEW = datetime.timedelta(minutes=15)
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request\s*,"
    r"\s*SignedHeaders=([a-z0-9;\-]+)\s*,\s*Signature=([0-9a-f]{64})$"
)


class S3Error(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class State:
    def __init__(self, buckets):
        self.lock = threading.Lock()
        self.bucket_names = list(buckets)
        self.reset()

    def reset(self):
        self.buckets = {b: {} for b in self.bucket_names}
        self.accepted = 0
        self.rejected = 0
        self.failures = []  # [{"method", "status", "code", "count"}]


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
    server_version = "FakeS3"
    sys_version = ""

    # --- plumbing ---------------------------------------------------------

    def log_message(self, fmt, *args):  # keep stderr quiet; the JSON log says it all
        pass

    def parse_request(self):
        self.auth_result = None  # (ok, S3Error or None, info) once checked
        self.log_info = {}
        return super().parse_request()

    def log_event(self, status, code=None):
        cfg = self.server.cfg
        st = self.server.state
        with st.lock:
            if code is None and status < 400:
                st.accepted += 1
            elif not self.path.startswith("/_fake/"):
                st.rejected += 1
        if not cfg.log:
            return
        entry = {
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "method": self.command,
            "path": self.path,
            "status": status,
            "code": code,
            "expect_100": self.headers.get("Expect", "").lower() == "100-continue",
        }
        entry.update(self.log_info)
        with self.server.log_lock, open(cfg.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def send_xml_error(self, err, close=False):
        doc = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            % (escape(err.code), escape(err.message))
        )
        for k, v in err.extra.items():
            doc += "<%s>%s</%s>" % (k, escape(str(v)), k)
        doc += "<RequestId>FAKE</RequestId></Error>"
        body = doc.encode()
        self.send_response(err.status)
        self.send_header("Content-Type", "application/xml")
        if err.extra.get("Region"):
            self.send_header("x-amz-bucket-region", err.extra["Region"])
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.log_event(err.status, err.code)

    def send_plain(self, status, body=b"", content_type=None, headers=()):
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- addressing ---------------------------------------------------------

    def target(self):
        """(bucket, key) from the Host header and the raw path; key "" for the bucket."""
        raw_path = urllib.parse.urlsplit(self.path).path
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        for b in self.server.state.bucket_names:
            if host.startswith(b.lower() + "."):
                return b, urllib.parse.unquote(raw_path[1:])
        parts = raw_path[1:].split("/", 1)
        bucket = urllib.parse.unquote(parts[0])
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        return bucket, key

    # --- SigV4 ----------------------------------------------------------------

    def check_auth(self):
        """Raises S3Error unless the request carries a valid signature."""
        cfg = self.server.cfg
        authz = self.headers.get("Authorization")
        if not authz:
            raise S3Error(403, "AccessDenied", "Access Denied")
        m = AUTH_RE.match(authz.strip())
        if not m:
            raise S3Error(
                400, "AuthorizationHeaderMalformed", "The authorization header is malformed."
            )
        access_key, date, region, service, signed, signature = m.groups()
        signed_names = signed.split(";")
        self.log_info.update(
            {"access_key": access_key, "region": region, "signed_headers": signed_names}
        )
        if access_key != cfg.access_key:
            raise S3Error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
                AWSAccessKeyId=access_key,
            )
        if service != "s3":
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; incorrect service '%s'." % service,
            )
        if region != cfg.region:
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; the region '%s' is wrong; expecting '%s'"
                % (region, cfg.region),
                Region=cfg.region,
            )
        if signed_names != sorted(signed_names) or "host" not in signed_names:
            raise S3Error(
                400, "AuthorizationHeaderMalformed", "SignedHeaders must be sorted and name host."
            )
        for name in self.headers.keys():
            if name.lower().startswith("x-amz-") and name.lower() not in signed_names:
                raise S3Error(
                    403,
                    "AccessDenied",
                    "There were headers present in the request which were not signed",
                    HeadersNotSigned=name.lower(),
                )
        content_sha = self.headers.get("x-amz-content-sha256")
        if content_sha is None:
            raise S3Error(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        if content_sha != "UNSIGNED-PAYLOAD" and not re.fullmatch(r"[0-9a-f]{64}", content_sha):
            raise S3Error(
                400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a hex SHA-256."
            )
        self.log_info["content_sha256"] = content_sha
        amz_date = self.headers.get("x-amz-date", "")
        try:
            when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc
            )
        except ValueError:
            raise S3Error(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        if amz_date[:8] != date:
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; the date does not match x-amz-date.",
            )
        if abs(datetime.datetime.now(datetime.timezone.utc) - when) > MAX_SKEW:
            raise S3Error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )

        # Recompute the signature from what arrived: the raw request target,
        # and the signed headers' values (repeated headers joined by ',').
        headers = {}
        for name in signed_names:
            values = self.headers.get_all(name)
            if values is None:
                raise S3Error(
                    403,
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                    AWSAccessKeyId=access_key,
                )
            headers[name] = ",".join(values)
        req = AWSRequest(method=self.command, url="https://%s%s" % (headers["host"], self.path),
                         headers=headers, data=b"")
        req.context["timestamp"] = amz_date
        signer = S3SigV4Auth(Credentials(cfg.access_key, cfg.secret_key), "s3", cfg.region)
        canonical = signer.canonical_request(req)
        string_to_sign = signer.string_to_sign(req, canonical)
        expected = signer.signature(string_to_sign, req)
        if signer.signed_headers(signer.headers_to_sign(req)) != signed or not hmac.compare_digest(
            expected, signature
        ):
            raise S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your key and signing method.",
                AWSAccessKeyId=access_key,
                StringToSign=string_to_sign,
                CanonicalRequest=canonical,
            )

    def authenticate(self, close_on_error=False):
        """True if signed correctly; otherwise the error has been sent."""
        if self.auth_result is None:
            try:
                self.check_auth()
                self.auth_result = (True, None)
            except S3Error as e:
                self.auth_result = (False, e)
                self.send_xml_error(e, close=True)
                return False
        return self.auth_result[0]

    def handle_expect_100(self):
        # As S3: refuse before the body is sent when the signature is wrong.
        if not self.path.startswith("/_fake/") and not self.authenticate():
            return False
        return super().handle_expect_100()

    def scripted_failure(self):
        st = self.server.state
        with st.lock:
            for f in st.failures:
                if f["count"] > 0 and f.get("method", self.command) == self.command:
                    f["count"] -= 1
                    return S3Error(
                        int(f.get("status", 503)),
                        f.get("code", "SlowDown"),
                        f.get("message", "Please reduce your request rate."),
                    )
        return None

    # --- methods --------------------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def do_PUT(self):
        if self.path.startswith("/_fake/"):
            return self.send_xml_error(S3Error(405, "MethodNotAllowed", "Not allowed"), close=True)
        if not self.authenticate():
            return
        try:
            body = self.read_body()
        except S3Error as e:
            return self.send_xml_error(e, close=True)
        bucket, key = self.target()
        self.log_info.update({"bucket": bucket, "key": key, "size": len(body)})
        content_sha = self.headers["x-amz-content-sha256"]
        actual = hashlib.sha256(body).hexdigest()
        if content_sha != "UNSIGNED-PAYLOAD" and content_sha != actual:
            return self.send_xml_error(
                S3Error(
                    400,
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                    ClientComputedContentSHA256=content_sha,
                    S3ComputedContentSHA256=actual,
                )
            )
        failure = self.scripted_failure()
        if failure:
            return self.send_xml_error(failure)
        st = self.server.state
        with st.lock:
            if bucket not in st.buckets:
                err = S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
            elif not key:
                err = S3Error(400, "InvalidRequest", "A key is required")
            else:
                err = None
                old = st.buckets[bucket].get(key)
                st.buckets[bucket][key] = {
                    "sha256": actual,
                    "size": len(body),
                    "content_type": self.headers.get("Content-Type"),
                    "puts": (old["puts"] if old else 0) + 1,
                    "body": body,
                }
        if err:
            return self.send_xml_error(err)
        self.log_info["content_type"] = self.headers.get("Content-Type")
        self.send_plain(200, headers=[("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
        self.log_event(200)

    def do_GET(self):
        if self.path == "/_fake/state":
            st = self.server.state
            with st.lock:
                doc = {
                    "buckets": {
                        b: {k: {f: v for f, v in o.items() if f != "body"} for k, o in objs.items()}
                        for b, objs in st.buckets.items()
                    },
                    "accepted": st.accepted,
                    "rejected": st.rejected,
                }
            return self.send_plain(200, json.dumps(doc, sort_keys=True).encode(), "application/json")
        self.get_or_head()

    def do_HEAD(self):
        self.get_or_head()

    def get_or_head(self):
        if not self.authenticate():
            return
        failure = self.scripted_failure()
        if failure:
            return self.send_xml_error(failure)
        bucket, key = self.target()
        self.log_info.update({"bucket": bucket, "key": key})
        st = self.server.state
        with st.lock:
            objs = st.buckets.get(bucket)
            obj = objs.get(key) if objs is not None and key else None
        if objs is None:
            return self.send_xml_error(
                S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
            )
        if not key:
            if self.command == "HEAD":
                self.send_plain(200, headers=[("x-amz-bucket-region", self.server.cfg.region)])
                return self.log_event(200)
            return self.send_xml_error(S3Error(501, "NotImplemented", "ListObjects is not faked"))
        if obj is None:
            return self.send_xml_error(S3Error(404, "NoSuchKey", "The specified key does not exist."))
        self.send_plain(200, obj["body"], obj["content_type"] or "binary/octet-stream")
        self.log_event(200)

    def do_POST(self):
        st = self.server.state
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if self.path == "/_fake/reset":
            with st.lock:
                st.reset()
            return self.send_plain(204)
        if self.path == "/_fake/fail":
            spec = json.loads(raw or b"{}")
            spec.setdefault("count", 1)
            with st.lock:
                st.failures.append(spec)
            return self.send_plain(204)
        if not self.authenticate():
            return
        self.send_xml_error(S3Error(501, "NotImplemented", "Not faked"))

    def do_DELETE(self):
        if not self.authenticate():
            return
        self.send_xml_error(S3Error(501, "NotImplemented", "Not faked"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log")
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--bucket", action="append", required=True)
    ap.add_argument("--region", default="us-east-1")
    cfg = ap.parse_args()

    server = Server(("127.0.0.1", cfg.port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cfg.cert, cfg.key)
    # The handshake runs in the request's thread, not in accept().
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.cfg = cfg
    server.state = State(cfg.bucket)
    server.log_lock = threading.Lock()
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
