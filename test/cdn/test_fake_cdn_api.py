#!/usr/bin/env python3
"""Checks that fake_cdn_api.py refuses what Fastly and Cloudflare refuse, so
that a provider test passing against it means something: wrong tokens, wrong
body shapes, too many items, unknown services and zones. Also its scripted
failures and its state. Needs openssl (test/cdn/make_test_ca.sh).
"""

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

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "fake-good-token"


class Fake:
    def __init__(self, api, workdir):
        self.log = os.path.join(workdir, api + ".log")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fake_cdn_api.py"), "--api", api,
             "--cert", os.path.join(workdir, "server.pem"),
             "--key", os.path.join(workdir, "server-key.pem"),
             "--token", TOKEN, "--port", "0", "--log", self.log],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError("the fake did not start: %r" % line)
        self.port = int(line.split()[1])
        self.ctx = ssl.create_default_context(cafile=os.path.join(workdir, "ca.pem"))

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        return resp.status, json.loads(raw) if raw else None, dict(resp.getheaders())

    def state(self):
        return self.call("GET", "/_fake/state")[1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc.stdout.close()


class FakeCdnApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fake_cdn_api_test.")
        subprocess.run(["bash", os.path.join(HERE, "make_test_ca.sh"), cls.dir], check=True)
        cls.fastly = Fake("fastly", cls.dir)
        cls.cloudflare = Fake("cloudflare", cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.fastly.stop()
        cls.cloudflare.stop()
        shutil.rmtree(cls.dir)

    def setUp(self):
        for fake in (self.fastly, self.cloudflare):
            fake.call("POST", "/_fake/reset")

    # ------------------------------------------------------------ Fastly
    def fastly_keys(self, keys, **headers):
        return self.fastly.call("POST", "/service/svc1/purge", {"surrogate_keys": keys},
                                {"Fastly-Key": TOKEN, "Content-Type": "application/json",
                                 **headers})

    def test_fastly_refuses_a_wrong_or_missing_token(self):
        for headers in ({"Fastly-Key": "wrong"}, {}):
            status, body, _ = self.fastly.call("POST", "/purge/www.example.com/a.png",
                                               headers=headers)
            self.assertEqual(status, 401)
            self.assertEqual(body, {"msg": "Provided credentials are missing or invalid"})
        self.assertEqual(self.fastly.state()["purged"], [])

    def test_fastly_url_purge(self):
        status, body, _ = self.fastly.call("POST", "/purge/www.example.com/a.png?v=2",
                                           headers={"Fastly-Key": TOKEN,
                                                    "Fastly-Soft-Purge": "1"})
        self.assertEqual(status, 200)
        self.assertEqual(body["status"], "ok")
        self.assertTrue(body["id"])
        self.assertEqual(self.fastly.state()["purged"],
                         [{"kind": "url", "item": "www.example.com/a.png?v=2", "soft": True}])

    def test_fastly_bulk_keys_at_most_256(self):
        status, body, _ = self.fastly_keys(["k%d" % i for i in range(257)])
        self.assertEqual(status, 400)
        self.assertIn("256", body["detail"])
        status, body, _ = self.fastly_keys(["k%d" % i for i in range(256)])
        self.assertEqual(status, 200)
        self.assertEqual(sorted(body), sorted("k%d" % i for i in range(256)))
        self.assertEqual(len(self.fastly.state()["purged"]), 256)

    def test_fastly_refuses_bad_bodies_and_unknown_services(self):
        for doc in ({"keys": ["a"]}, {"surrogate_keys": []}, {"surrogate_keys": ["a b"]},
                    {"surrogate_keys": "a"}, ["a"]):
            self.assertEqual(self.fastly.call(
                "POST", "/service/svc1/purge", doc,
                {"Fastly-Key": TOKEN, "Content-Type": "application/json"})[0], 400, doc)
        self.assertEqual(self.fastly.call("POST", "/service/svc1/purge", {"surrogate_keys": ["a"]},
                                          {"Fastly-Key": TOKEN})[0], 400, "no Content-Type")
        status, body, _ = self.fastly.call("POST", "/service/nope/purge_all",
                                           headers={"Fastly-Key": TOKEN})
        self.assertEqual(status, 404)
        self.assertIn("nope", body["detail"])
        self.assertEqual(self.fastly.call("POST", "/service/svc1/purge_all",
                                          headers={"Fastly-Key": TOKEN,
                                                   "Fastly-Soft-Purge": "1"})[0],
                         400, "purge_all cannot be soft")
        self.assertEqual(self.fastly.call("GET", "/service/svc1/purge_all",
                                          headers={"Fastly-Key": TOKEN})[0], 405)
        self.assertEqual(self.fastly.state()["accepted"], 0)

    def test_fastly_scripted_failures(self):
        self.fastly.call("POST", "/_fake/fail", {"status": 503, "count": 2, "retry_after": 3})
        for _ in range(2):
            status, _, headers = self.fastly.call("POST", "/service/svc1/purge_all",
                                                  headers={"Fastly-Key": TOKEN})
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("Retry-After"), "3")
        status, body, _ = self.fastly.call("POST", "/service/svc1/purge_all",
                                           headers={"Fastly-Key": TOKEN})
        self.assertEqual((status, body), (200, {"status": "ok"}))
        state = self.fastly.state()
        self.assertEqual((state["injected"], state["accepted"]), (2, 1))
        self.assertEqual(state["api_calls_by_status"], {"503": 2, "200": 1})

    def test_the_log_never_has_the_token(self):
        self.fastly.call("POST", "/service/svc1/purge_all", headers={"Fastly-Key": TOKEN})
        self.cloudflare.call("POST", "/zones/zone1/purge_cache", {"purge_everything": True},
                             {"Authorization": "Bearer " + TOKEN,
                              "Content-Type": "application/json"})
        for fake in (self.fastly, self.cloudflare):
            with open(fake.log, encoding="utf-8") as f:
                text = f.read()
            self.assertTrue(text)
            self.assertNotIn(TOKEN, text)

    # -------------------------------------------------------- Cloudflare
    def cf(self, body, token=TOKEN, zone="zone1", prefix="/client/v4"):
        return self.cloudflare.call("POST", "%s/zones/%s/purge_cache" % (prefix, zone), body,
                                    {"Authorization": "Bearer " + token,
                                     "Content-Type": "application/json"})

    def test_cloudflare_refuses_a_wrong_token(self):
        status, body, _ = self.cf({"purge_everything": True}, token="wrong")
        self.assertEqual(status, 403)
        self.assertFalse(body["success"])
        self.assertEqual(body["errors"][0]["code"], 10000)
        self.assertEqual(self.cloudflare.state()["purged"], [])

    def test_cloudflare_body_shape_and_limits(self):
        files = ["https://www.example.com/%d" % i for i in range(101)]
        for doc in ({"files": files[:1], "tags": ["t"]}, {}, {"purge_everything": False},
                    {"files": []}, {"files": ["/relative"]},
                    {"prefixes": ["https://www.example.com/img/"]},
                    {"prefixes": ["www.example.com/img/?x=1"]}, {"tags": ["a,b"]},
                    {"other": ["x"]}):
            status, body, _ = self.cf(doc)
            self.assertEqual(status, 400, doc)
            self.assertFalse(body["success"], doc)
        status, body, _ = self.cf({"files": files})
        self.assertEqual(status, 400)
        self.assertEqual(body["errors"][0]["code"], 1015)
        self.assertEqual(self.cf({"purge_everything": True}, zone="other")[0], 404)
        self.assertEqual(self.cloudflare.state()["accepted"], 0)

    def test_cloudflare_purges(self):
        for doc in ({"files": ["https://www.example.com/a"]},
                    {"prefixes": ["www.example.com/img/"]}, {"tags": ["t1", "t2"]},
                    {"files": [{"url": "https://www.example.com/b", "headers": {}}]}):
            status, body, _ = self.cf(doc)
            self.assertEqual(status, 200, doc)
            self.assertEqual(body["success"], True)
            self.assertEqual((body["errors"], body["messages"]), ([], []))
            self.assertTrue(body["result"]["id"])
        self.assertEqual(self.cf({"purge_everything": True}, prefix="")[0], 200)
        self.assertEqual(
            [p["kind"] + ":" + p["item"] for p in self.cloudflare.state()["purged"]],
            ["files:https://www.example.com/a", "prefixes:www.example.com/img/", "tags:t1",
             "tags:t2", "files:https://www.example.com/b", "purge_everything:zone1"])

    def test_cloudflare_scripted_throttling(self):
        self.cloudflare.call("POST", "/_fake/fail", {"status": 429, "count": 1, "retry_after": 9})
        status, body, headers = self.cf({"purge_everything": True})
        self.assertEqual(status, 429)
        self.assertFalse(body["success"])
        self.assertEqual(headers.get("Retry-After"), "9")
        self.assertEqual(self.cf({"purge_everything": True})[0], 200)
        self.assertEqual(self.cloudflare.call("POST", "/_fake/fail", {"status": 200})[0], 400,
                         "only failures can be scripted")


if __name__ == "__main__":
    unittest.main()
