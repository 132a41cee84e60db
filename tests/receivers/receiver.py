"""What the test receivers share (siem_receiver.py, cmdb_webhook_receiver.py,
servicenow_receiver.py): a quiet JSON handler, aiscout's webhook signature check, and serving.

The receivers run as scripts from this directory, which Python puts on the module path.
"""
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


def check_signature(headers, body, secret):
    """Raises PermissionError unless X-Aiscout-Signature is sha256=HMAC-SHA256(secret,
    "<X-Aiscout-Timestamp>.<body>") with a timestamp within 300 s."""
    ts = headers.get("X-Aiscout-Timestamp", "0")
    want = "sha256=" + hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, headers.get("X-Aiscout-Signature", "")):
        raise PermissionError("bad signature")
    if abs(time.time() - int(ts)) > 300:
        raise PermissionError("stale timestamp")


def serve(server_class, port, handler):
    server = server_class(("127.0.0.1", port), handler)
    print("ready", flush=True)
    server.serve_forever()
