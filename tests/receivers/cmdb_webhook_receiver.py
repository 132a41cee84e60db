#!/usr/bin/env python3
"""A CMDB webhook for the tests, enforcing the record contract of docs/exports.md (*Webhook*):

    cmdb_webhook_receiver.py PORT SECRET OUT

X-Aiscout-Signature must be sha256=HMAC-SHA256(SECRET, "<X-Aiscout-Timestamp>.<body>") with a
timestamp within 300 s, Idempotency-Key present, the body {"source": "aiscout", "schema":
"aiscout.cmdb.v1", "push", "batch", "batches", "records"}; each record has type (host, server,
model), key and retired, and a server's host_key (and one of a model's host_keys) is a host
record earlier in the same body. Anything off contract is answered 4xx and nothing is recorded;
accepted records are appended to OUT, one JSON line each. Prints "ready" once listening.
"""
import json
import sys
from http.server import HTTPServer

from receiver import JsonHandler, check_signature, serve

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(JsonHandler):
    def do_POST(self):
        body = self.body().decode()
        try:
            check_signature(self.headers, body, SECRET)
        except PermissionError as e:
            return self.answer(401, {"error": str(e)})
        try:
            assert self.headers["Idempotency-Key"]
            doc = json.loads(body)
            assert doc["source"] == "aiscout" and doc["schema"] == "aiscout.cmdb.v1"
            assert 1 <= doc["batch"] <= doc["batches"] and doc["push"]
            hosts = set()
            for r in doc["records"]:
                assert r["type"] in ("host", "server", "model") and r["key"] and isinstance(r["retired"], bool)
                assert r["last_seen"].endswith("Z")
                if r["type"] == "host":
                    hosts.add(r["key"])
                elif r["type"] == "server":
                    assert r["host_key"] in hosts, f"server {r['key']} before its host"
                else:
                    assert hosts & set(r["host_keys"]), f"model {r['key']} without a host in the batch"
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            return self.answer(400, {"error": str(e)})
        with open(OUT, "a") as f:
            for r in doc["records"]:
                f.write(json.dumps(r) + "\n")
        self.answer(200, {"ok": True})


serve(HTTPServer, PORT, Handler)
