#!/usr/bin/env python3
"""Checks that fake_cloudfront.py refuses what CloudFront refuses.

Requests are signed with botocore's SigV4 signer; the point is that the fake
can say no: a tampered signature, body, key or date is refused, as are bad
batches and batches beyond the in-progress limits.
"""

import datetime
import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_ID = "AKIDFAKETEST1"
SECRET = "fakeSecretKey/For+Tests0123456789abcdefg"
DIST = "E2FAKEDIST42"
NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"


def batch_xml(paths, ref, quantity=None, ns=NS):
    items = "".join(f"<Path>{p}</Path>" for p in paths)
    q = len(paths) if quantity is None else quantity
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><InvalidationBatch xmlns="{ns}"><Paths>'
        f"<Quantity>{q}</Quantity><Items>{items}</Items></Paths>"
        f"<CallerReference>{ref}</CallerReference></InvalidationBatch>"
    ).encode()


class FakeCloudFrontTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fake_cloudfront_test.")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        key = os.path.join(cls.dir, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", key, "-out", cls.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        cls.log = os.path.join(cls.dir, "log.jsonl")
        cls.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_cloudfront.py"), "--port", "0",
             "--cert", cls.cert, "--key", key, "--log", cls.log, "--access-key", KEY_ID,
             "--secret-key", SECRET, "--distribution", DIST, "--complete-after", "-1"],
            stdout=subprocess.PIPE, text=True,
        )
        line = cls.proc.stdout.readline()
        if not line.startswith("PORT "):
            cls.proc.kill()
            raise RuntimeError(f"fake did not start: {line!r}")
        cls.port = int(line.split()[1])
        cls.ctx = ssl.create_default_context(cafile=cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.proc.stdout.close()
        shutil.rmtree(cls.dir)

    def setUp(self):
        self.control("POST", "/_fake/reset")
        self.control("POST", "/_fake/config", {"complete_after": -1})

    # --- helpers -------------------------------------------------------------

    def raw(self, method, path, body=b"", headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

    def control(self, method, path, args=None):
        status, _, body = self.raw(method, path, json.dumps(args or {}).encode())
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def signed_headers(self, method, path, body=b"", key=KEY_ID, secret=SECRET,
                       when=None, region="us-east-1", service="cloudfront", extra=None):
        """Headers of a request signed by botocore, at time `when` (default now)."""
        req = AWSRequest(method=method, url=f"https://127.0.0.1:{self.port}{path}", data=body,
                         headers=dict(extra or {}))
        auth = SigV4Auth(Credentials(key, secret), service, region)
        when = when or datetime.datetime.now(datetime.timezone.utc)
        # add_auth would take the clock's time; signing in the past needs the
        # same steps with our own timestamp.
        req.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        auth._modify_request_before_signing(req)
        canonical = auth.canonical_request(req)
        signature = auth.signature(auth.string_to_sign(req, canonical), req)
        auth._inject_signature_to_request(req, signature)
        headers = dict(req.headers.items())
        headers["Host"] = f"127.0.0.1:{self.port}"
        return headers

    def create(self, paths, ref, **kw):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        body = kw.pop("body", None) or batch_xml(paths, ref)
        headers = self.signed_headers("POST", path, body, extra={"Content-Type": "text/xml"}, **kw)
        return self.raw("POST", path, body, headers)

    def get(self, inv_id, dist=DIST):
        path = f"/2020-05-31/distribution/{dist}/invalidation/{inv_id}"
        return self.raw("GET", path, b"", self.signed_headers("GET", path))

    def assertAwsError(self, answer, status, code):
        got_status, _, body = answer
        self.assertEqual(got_status, status, body)
        self.assertIn(f"<Code>{code}</Code>", body)
        self.assertIn("<ErrorResponse", body)

    @staticmethod
    def element(body, name):
        return body.split(f"<{name}>", 1)[1].split(f"</{name}>", 1)[0]

    # --- signatures ----------------------------------------------------------

    def test_a_correctly_signed_batch_is_accepted_and_completes(self):
        status, headers, body = self.create(["/a", "/img/*"], "ref-1")
        self.assertEqual(status, 201, body)
        inv = self.element(body, "Id")
        self.assertEqual(self.element(body, "Status"), "InProgress")
        self.assertTrue(headers["Location"].endswith(f"/invalidation/{inv}"))
        status, _, body = self.get(inv)
        self.assertEqual((status, self.element(body, "Status")), (200, "InProgress"))
        self.assertIn("<Path>/img/*</Path>", body)
        self.control("POST", "/_fake/complete", {"id": inv})
        status, _, body = self.get(inv)
        self.assertEqual(self.element(body, "Status"), "Completed")
        state = self.control("GET", "/_fake/state")
        self.assertEqual(state["invalidations"][0]["paths"], ["/a", "/img/*"])
        self.assertEqual(state["invalidations"][0]["caller_reference"], "ref-1")
        self.assertEqual(state["counters"]["accepted"], 3)
        self.assertEqual(state["counters"]["rejected"], 0)

    def test_a_tampered_signature_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        body = batch_xml(["/a"], "ref-t")
        headers = self.signed_headers("POST", path, body, extra={"Content-Type": "text/xml"})
        last = headers["Authorization"][-1]
        headers["Authorization"] = headers["Authorization"][:-1] + ("0" if last != "0" else "1")
        self.assertAwsError(self.raw("POST", path, body, headers), 403, "SignatureDoesNotMatch")
        state = self.control("GET", "/_fake/state")
        self.assertEqual(state["invalidations"], [])
        self.assertEqual(state["counters"]["by_code"], {"SignatureDoesNotMatch": 1})

    def test_a_body_changed_after_signing_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        headers = self.signed_headers("POST", path, batch_xml(["/a"], "ref-b"),
                                      extra={"Content-Type": "text/xml"})
        forged = batch_xml(["/b"], "ref-b")
        headers["Content-Length"] = str(len(forged))
        self.assertAwsError(self.raw("POST", path, forged, headers), 403, "SignatureDoesNotMatch")

    def test_a_signed_header_changed_after_signing_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        body = batch_xml(["/a"], "ref-h")
        headers = self.signed_headers("POST", path, body, extra={"Content-Type": "text/xml"})
        self.assertIn("content-type", headers["Authorization"])
        headers["Content-Type"] = "application/xml"
        self.assertAwsError(self.raw("POST", path, body, headers), 403, "SignatureDoesNotMatch")

    def test_the_wrong_secret_is_refused(self):
        self.assertAwsError(self.create(["/a"], "r", secret=SECRET + "x"), 403, "SignatureDoesNotMatch")

    def test_an_unknown_key_id_is_refused(self):
        self.assertAwsError(self.create(["/a"], "r", key="AKIDOTHER"), 403, "InvalidClientTokenId")

    def test_no_authorization_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        self.assertAwsError(self.raw("POST", path, batch_xml(["/a"], "r")), 403,
                            "MissingAuthenticationToken")

    def test_dates_more_than_15_minutes_off_are_refused(self):
        now = datetime.datetime.now(datetime.timezone.utc)
        for delta in (-16, 16):
            self.assertAwsError(self.create(["/a"], "r", when=now + datetime.timedelta(minutes=delta)),
                                403, "SignatureDoesNotMatch")
        status, _, body = self.create(["/a"], "r", when=now - datetime.timedelta(minutes=10))
        self.assertEqual(status, 201, body)

    def test_missing_x_amz_date_or_unsigned_host_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        body = batch_xml(["/a"], "r")
        headers = self.signed_headers("POST", path, body)
        del headers["X-Amz-Date"]
        self.assertAwsError(self.raw("POST", path, body, headers), 403, "IncompleteSignature")
        headers = self.signed_headers("POST", path, body)
        headers["Authorization"] = headers["Authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
        self.assertNotIn("host;", headers["Authorization"])
        self.assertAwsError(self.raw("POST", path, body, headers), 403, "IncompleteSignature")

    def test_the_wrong_scope_is_refused(self):
        self.assertAwsError(self.create(["/a"], "r", region="eu-west-1"), 403, "SignatureDoesNotMatch")
        self.assertAwsError(self.create(["/a"], "r", service="s3"), 403, "SignatureDoesNotMatch")

    def test_a_wrong_payload_hash_is_refused(self):
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        body = batch_xml(["/a"], "r")
        wrong = hashlib.sha256(b"other").hexdigest()
        headers = self.signed_headers("POST", path, body, extra={"X-Amz-Content-SHA256": wrong})
        self.assertAwsError(self.raw("POST", path, body, headers), 400, "XAmzContentSHA256Mismatch")

    # --- the batch -----------------------------------------------------------

    def test_bad_batches_are_refused_like_cloudfront(self):
        cases = [
            (batch_xml(["/a", "/b"], "r", quantity=3), 400, "InconsistentQuantities"),
            (batch_xml(["a"], "r"), 400, "InvalidArgument"),
            (batch_xml(["/a*b"], "r"), 400, "InvalidArgument"),
            (batch_xml([], "r"), 400, "InvalidArgument"),
            (batch_xml(["/a"], ""), 400, "InvalidArgument"),
            (batch_xml(["/a"], "r", ns="http://example.com/"), 400, "MalformedInput"),
            (b"<InvalidationBatch", 400, "MalformedInput"),
            (batch_xml(["/a"], "r").replace(b"</Paths>", b"</Paths><Extra/>"), 400, "MalformedInput"),
            (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><x/>', 400, "MalformedInput"),
            (batch_xml([f"/{i}" for i in range(3001)], "r"), 413, "BatchTooLarge"),
        ]
        for body, status, code in cases:
            with self.subTest(code=code, body=body[:120]):
                self.assertAwsError(self.create(None, None, body=body), status, code)
        path = f"/2020-05-31/distribution/{DIST}/invalidation"
        self.assertAwsError(self.raw("POST", path, b"", self.signed_headers("POST", path)), 400, "MissingBody")
        self.assertEqual(self.control("GET", "/_fake/state")["invalidations"], [])

    def test_unknown_distribution_and_invalidation(self):
        path = "/2020-05-31/distribution/EOTHER/invalidation"
        body = batch_xml(["/a"], "r")
        self.assertAwsError(self.raw("POST", path, body, self.signed_headers("POST", path, body)), 404,
                            "NoSuchDistribution")
        self.assertAwsError(self.get("INOPE"), 404, "NoSuchInvalidation")
        self.assertAwsError(self.get("INOPE", dist="EOTHER"), 404, "NoSuchDistribution")

    # --- idempotency and limits ----------------------------------------------

    def test_a_repeated_caller_reference(self):
        status, _, first = self.create(["/a", "/b"], "ref-same")
        self.assertEqual(status, 201, first)
        status, _, again = self.create(["/b", "/a"], "ref-same")
        self.assertEqual(status, 201, again)
        self.assertEqual(self.element(again, "Id"), self.element(first, "Id"))
        self.assertAwsError(self.create(["/a", "/c"], "ref-same"), 409, "InvalidationBatchAlreadyExists")
        state = self.control("GET", "/_fake/state")
        self.assertEqual(len(state["invalidations"]), 1)
        self.assertEqual(state["counters"]["replayed"], 1)

    def test_in_progress_limits(self):
        wild = [f"/w{i}/*" for i in range(15)]
        self.assertEqual(self.create(wild, "w1")[0], 201)
        self.assertAwsError(self.create(["/x/*"], "w2"), 400, "TooManyInvalidationsInProgress")
        self.assertEqual(self.create(["/plain"], "p0")[0], 201, "plain paths are still allowed")
        self.control("POST", "/_fake/complete")
        self.assertEqual(self.create(["/x/*"], "w2")[0], 201, "room again once completed")
        self.control("POST", "/_fake/complete")
        self.assertEqual(self.create([f"/p/{i}" for i in range(2000)], "p1")[0], 201)
        self.assertAwsError(self.create([f"/q/{i}" for i in range(1001)], "p2"), 400,
                            "TooManyInvalidationsInProgress")
        self.assertEqual(self.create([f"/q/{i}" for i in range(1000)], "p3")[0], 201)
        state = self.control("GET", "/_fake/state")
        self.assertEqual(state["in_progress"], {"paths": 3000, "wildcards": 0})

    def test_invalidations_complete_on_their_own_after_the_configured_time(self):
        self.control("POST", "/_fake/config", {"complete_after": 0.3})
        inv = self.element(self.create(["/a"], "t1")[2], "Id")
        self.assertEqual(self.element(self.get(inv)[2], "Status"), "InProgress")
        deadline = time.time() + 5
        while self.element(self.get(inv)[2], "Status") != "Completed":
            self.assertLess(time.time(), deadline, "never completed")
            time.sleep(0.05)

    # --- failure injection -----------------------------------------------------

    def test_injected_failures_apply_to_the_next_calls_only(self):
        self.control("POST", "/_fake/fail", {"status": 503, "count": 2, "retry_after": 7})
        for _ in range(2):
            status, headers, body = self.create(["/a"], "f1")
            self.assertAwsError((status, headers, body), 503, "ServiceUnavailable")
            self.assertEqual(headers["Retry-After"], "7")
        self.assertEqual(self.create(["/a"], "f1")[0], 201)
        self.control("POST", "/_fake/fail", {"status": 429, "method": "GET"})
        self.assertEqual(self.create(["/b"], "f2")[0], 201, "a GET-only failure spares a POST")
        self.assertAwsError(self.get("IANY"), 429, "Throttling")
        self.control("POST", "/_fake/fail", {"status": 400, "code": "TooManyInvalidationsInProgress"})
        self.assertAwsError(self.create(["/c"], "f3"), 400, "TooManyInvalidationsInProgress")
        state = self.control("GET", "/_fake/state")
        self.assertEqual(state["counters"]["injected"], 4)
        self.assertEqual(len(state["invalidations"]), 2)

    def test_a_lost_response_leaves_the_invalidation_in_place(self):
        self.control("POST", "/_fake/fail", {"close": True, "after": True})
        with self.assertRaises((http.client.HTTPException, ConnectionError, ssl.SSLError)):
            self.create(["/a"], "lost")
        state = self.control("GET", "/_fake/state")
        self.assertEqual(len(state["invalidations"]), 1)
        status, _, body = self.create(["/a"], "lost")
        self.assertEqual(status, 201)
        self.assertEqual(self.element(body, "Id"), state["invalidations"][0]["id"])

    def test_the_log_has_every_call_and_no_signature(self):
        self.create(["/a"], "log-1")
        self.create(["/a"], "log-2", secret="wrong")
        with open(self.log) as f:
            lines = [json.loads(line) for line in f]
        api = [e for e in lines if e.get("outcome") != "control"]
        self.assertEqual([e["outcome"] for e in api[-2:]], ["accepted", "rejected"])
        self.assertEqual(api[-1]["code"], "SignatureDoesNotMatch")
        with open(self.log) as f:
            text = f.read()
        self.assertNotIn("Signature=", text)
        self.assertNotIn(SECRET, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
