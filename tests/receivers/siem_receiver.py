#!/usr/bin/env python3
"""A SIEM endpoint for the tests, enforcing its contract: `siem_receiver.py KIND PORT SECRET OUT`.

KIND is webhook, splunk_hec or elastic. Every accepted event id is appended to OUT, one per
line; anything off contract is answered 4xx and nothing is recorded:
- webhook: X-Aiscout-Signature is sha256=HMAC-SHA256(SECRET, "<X-Aiscout-Timestamp>.<body>"),
  the timestamp is within 300 s, Idempotency-Key is present, the body is {"source", "events"}
  and each event has id, seq, action and finding.severity;
- splunk_hec: POST /services/collector/event, "Authorization: Splunk SECRET", the body is
  concatenated HEC objects each with time, host, source "aiscout", sourcetype and event.id;
- elastic: POST /_bulk, "Authorization: ApiKey SECRET", NDJSON pairs of {"create": {"_index",
  "_id"}} and an ECS document with event.kind "alert", event.category, rule.id and @timestamp;
  an _id seen before answers 409 for that item, as Elasticsearch does.
Prints "ready" once listening.
"""
import json
import sys
from http.server import HTTPServer

from receiver import JsonHandler, check_signature, serve

KIND, PORT, SECRET, OUT = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
SEEN = set()


def record(ids):
    with open(OUT, "a") as f:
        for i in ids:
            f.write(i + "\n")


class Handler(JsonHandler):
    def do_POST(self):
        body = self.body().decode()
        try:
            ids, reply = getattr(self, KIND)(body)
        except (ValueError, KeyError, TypeError, AssertionError) as e:
            return self.answer(400, {"error": str(e)})
        except PermissionError as e:
            return self.answer(401, {"error": str(e)})
        record(ids)
        self.answer(200, reply)

    def webhook(self, body):
        check_signature(self.headers, body, SECRET)
        assert self.headers["Idempotency-Key"]
        doc = json.loads(body)
        assert doc["source"] == "aiscout"
        ids = []
        for e in doc["events"]:
            assert e["action"].startswith("finding.") and e["finding"]["severity"] and e["seq"] > 0
            ids.append(e["id"])
        return ids, {"ok": True}

    def splunk_hec(self, body):
        assert self.path == "/services/collector/event", self.path
        if self.headers.get("Authorization") != f"Splunk {SECRET}":
            raise PermissionError("bad token")
        decoder, at, ids = json.JSONDecoder(), 0, []
        while at < len(body):
            obj, at = decoder.raw_decode(body, at)
            assert obj["source"] == "aiscout" and obj["sourcetype"] == "aiscout:finding"
            assert isinstance(obj["time"], int) and "host" in obj
            ids.append(obj["event"]["id"])
        return ids, {"text": "Success", "code": 0}

    def elastic(self, body):
        assert self.path == "/_bulk", self.path
        if self.headers.get("Authorization") != f"ApiKey {SECRET}":
            raise PermissionError("bad api key")
        assert self.headers.get("Content-Type") == "application/x-ndjson"
        lines = [l for l in body.split("\n") if l]
        assert len(lines) % 2 == 0
        ids, items = [], []
        for action, doc in zip(lines[0::2], lines[1::2]):
            meta = json.loads(action)["create"]
            doc = json.loads(doc)
            assert meta["_index"] and doc["event"]["kind"] == "alert" and doc["event"]["category"]
            assert doc["rule"]["id"] and doc["@timestamp"] and doc["event"]["id"] == meta["_id"]
            if meta["_id"] in SEEN:
                items.append({"create": {"_id": meta["_id"], "status": 409}})
            else:
                SEEN.add(meta["_id"])
                ids.append(meta["_id"])
                items.append({"create": {"_id": meta["_id"], "status": 201}})
        errors = any(i["create"]["status"] != 201 for i in items)
        return ids, {"errors": errors, "items": items}


serve(HTTPServer, PORT, Handler)
