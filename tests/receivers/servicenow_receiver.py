#!/usr/bin/env python3
"""A ServiceNow instance for the tests, enforcing the Identification and Reconciliation contract
the CMDB push relies on (docs/exports.md, *CMDB push*):

    servicenow_receiver.py PORT USER PASSWORD DATA_SOURCES CLASSES THROTTLE_EVERY

DATA_SOURCES and CLASSES are comma-separated: the discovery_source choices registered, and the
tables the instance has (the host classes cmdb_ci_linux_server, cmdb_ci_win_server and
cmdb_ci_computer always exist). Every THROTTLE_EVERY-th POST (0: never) is answered 429 with
`Retry-After: 1`.

- Every request needs `Authorization: Basic USER:PASSWORD`, else 401.
- `GET /api/now/table/sys_db_object?sysparm_query=nameINa,b&sysparm_fields=name` lists which of
  the named tables exist: {"result": [{"name": ...}]}.
- `POST /api/now/identifyreconcile?sysparm_data_source=X` identifies and writes;
  `POST /api/now/identifyreconcile/query` identifies only. The answer is HTTP 200
  {"result": {"items": [{"className", "operation", "sysId", "identifierEntrySysId",
  "inputIndices", "errors", "errorCount"}], "relations": [...]}}, one item per input item:
  - a missing or unregistered data source: INVALID_INPUT_DATA on every item;
  - an unknown class, values that are not strings, no name, no sys_object_source_info with
    source_name, source_native_key and a `YYYY-MM-DD HH:MM:SS` source_recency_timestamp:
    INVALID_INPUT_DATA;
  - a dependent CI (any class but the host classes) without a `Runs on::Runs` relation
    (parent: it, child: a host item of the same payload that was not refused) whose key is not
    already in the table: MISSING_DEPENDENCY;
  - otherwise reconciled on (source_name, source_native_key): INSERT the first time, UPDATE
    when the class or values changed, NO_CHANGE otherwise.
- `GET /__table` (no auth): {"rows": [...], "stats": {...}} for the test to inspect: the
  requests, the 429s sent, requests that came back less than a second after a 429 (early),
  the writing and the query POSTs.
Prints "ready" once listening.
"""
import base64
import json
import re
import sys
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from receiver import JsonHandler, serve

PORT, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3]
DATA_SOURCES = set(filter(None, sys.argv[4].split(",")))
HOST_CLASSES = {"cmdb_ci_linux_server", "cmdb_ci_win_server", "cmdb_ci_computer"}
CLASSES = set(filter(None, sys.argv[5].split(","))) | HOST_CLASSES
THROTTLE_EVERY = int(sys.argv[6])
RECENCY = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

LOCK = threading.Lock()
TABLE = {}  # (source_name, native key) -> row
STATS = {"requests": 0, "posts": 0, "throttled": 0, "early": 0, "writes": 0, "queries": 0,
         "unauthorized": 0, "data_sources": []}
LAST_429 = [0.0]


def item_result(cls, index, errors, operation=None, sys_id="Unknown"):
    return {"className": cls, "operation": operation, "sysId": sys_id, "identifierEntrySysId": "Unknown",
            "inputIndices": [index], "errorCount": len(errors),
            "errors": [{"error": e, "message": m} for e, m in errors]}


def reconcile(payload, data_source, commit):
    items = payload.get("items")
    relations = payload.get("relations") or []
    if not isinstance(items, list):
        raise ValueError("items must be a list")
    results, pending, refused = [], {}, set()
    for index, item in enumerate(items):
        cls = item.get("className")
        errors = []
        info = item.get("sys_object_source_info") or {}
        values = item.get("values")
        key = (info.get("source_name"), info.get("source_native_key"))
        if data_source not in DATA_SOURCES:
            errors.append(("INVALID_INPUT_DATA", f"data source {data_source!r} is not a discovery_source choice"))
        elif cls not in CLASSES:
            errors.append(("INVALID_INPUT_DATA", f"no table {cls!r}"))
        elif not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            errors.append(("INVALID_INPUT_DATA", "values must map field names to strings"))
        elif not values.get("name"):
            errors.append(("INVALID_INPUT_DATA", "name is required"))
        elif not key[0] or not key[1] or not RECENCY.match(info.get("source_recency_timestamp", "")):
            errors.append(("INVALID_INPUT_DATA", "sys_object_source_info needs source_name, source_native_key "
                                                 "and source_recency_timestamp"))
        elif cls not in HOST_CLASSES:
            related = any(
                r.get("type") == "Runs on::Runs" and r.get("parent") == index
                and isinstance(r.get("child"), int) and 0 <= r["child"] < len(items)
                and items[r["child"]].get("className") in HOST_CLASSES and r["child"] not in refused
                for r in relations)
            if not related and key not in TABLE:
                errors.append(("MISSING_DEPENDENCY", f"{cls} depends on a host that is neither in the payload "
                                                     "nor known"))
        if errors:
            refused.add(index)
            results.append(item_result(cls, index, errors))
            continue
        old = pending.get(key) or TABLE.get(key)
        if old is None:
            operation, sys_id = "INSERT", uuid.uuid4().hex
        elif old["className"] == cls and old["values"] == values:
            operation, sys_id = "NO_CHANGE", old["sysId"]
        else:
            operation, sys_id = "UPDATE", old["sysId"]
        pending[key] = {"className": cls, "values": values, "sysId": sys_id, "source_name": key[0],
                        "source_native_key": key[1], "recency": info["source_recency_timestamp"],
                        "lookup": item.get("lookup", []), "operation": operation,
                        "history": (old or {}).get("history", []) + [operation]}
        results.append(item_result(cls, index, [], operation, sys_id))
    if commit:
        TABLE.update(pending)
    return {"items": results, "relations": [{"errors": []} for _ in relations]}


class Handler(JsonHandler):
    def authorized(self):
        want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") == want:
            return True
        STATS["unauthorized"] += 1
        self.answer(401, {"error": {"message": "User Not Authenticated",
                                    "detail": "Required to provide Auth information"}, "status": "failure"})
        return False

    def do_GET(self):
        url = urlparse(self.path)
        with LOCK:
            if url.path == "/__table":
                return self.answer(200, {"rows": list(TABLE.values()), "stats": STATS})
            STATS["requests"] += 1
            if not self.authorized():
                return
            if url.path != "/api/now/table/sys_db_object":
                return self.answer(404, {"error": {"message": "no such path"}})
            query = parse_qs(url.query)
            assert query.get("sysparm_fields") == ["name"], query
            wanted = query["sysparm_query"][0]
            assert wanted.startswith("nameIN"), wanted
            names = wanted[len("nameIN"):].split(",")
            self.answer(200, {"result": [{"name": n} for n in names if n in CLASSES]})

    def do_POST(self):
        url = urlparse(self.path)
        body = self.body()
        with LOCK:
            STATS["requests"] += 1
            STATS["posts"] += 1
            if time.time() - LAST_429[0] < 0.95:
                STATS["early"] += 1
            if not self.authorized():
                return
            if THROTTLE_EVERY and STATS["posts"] % THROTTLE_EVERY == 0:
                STATS["throttled"] += 1
                LAST_429[0] = time.time()
                return self.answer(429, {"error": {"message": "Too many requests"}}, [("Retry-After", "1")])
            if url.path not in ("/api/now/identifyreconcile", "/api/now/identifyreconcile/query"):
                return self.answer(404, {"error": {"message": "no such path"}})
            commit = url.path == "/api/now/identifyreconcile"
            data_source = parse_qs(url.query).get("sysparm_data_source", [None])[0]
            STATS["data_sources"].append(data_source)
            STATS["writes" if commit else "queries"] += 1
            try:
                result = reconcile(json.loads(body), data_source, commit)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                return self.answer(400, {"error": {"message": f"bad payload: {e}"}})
            self.answer(200, {"result": result})


serve(ThreadingHTTPServer, PORT, Handler)
