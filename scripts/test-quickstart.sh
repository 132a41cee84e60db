#!/usr/bin/env bash
# The first run, with its default ports taken by another program that answers HTTP with
# garbage: quickstart must pick free ports and still reach a first inventory, and must stop at
# once naming the port and its holder when asked for a taken port; never a traceback.
# Uses the debug binaries scripts/test.sh built.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
holders=()
cleanup() {
  for f in "$work"/qs*/agent.pid "$work"/qs*/collector.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  for p in "${holders[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Another program on both default ports, answering every request with 200 and a non-JSON body.
for port in 17080 17443; do
  python3 - "$port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"<html>not aiscout</html>")
    def log_message(self, *a): pass
try:
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
except OSError:
    pass  # already taken by something else: taken all the same
PY
  holders+=($!)
done
sleep 1
mkdir -p "$work/models"
cp tests/fixtures/models/tiny.onnx "$work/models/"

echo "== quickstart with its default ports taken"
AISCOUT_PROFILE=debug AISCOUT_QUICKSTART_DIR="$work/qs1" scripts/quickstart.sh "$work/models" >"$work/out1" 2>&1 || {
  cat "$work/out1"; echo "FAIL: quickstart failed with its default ports taken" >&2; exit 1; }
grep -q "hosts: 1" "$work/out1" || { cat "$work/out1"; echo "FAIL: no inventory reported" >&2; exit 1; }
grep -q "model assets: 1" "$work/out1" || { cat "$work/out1"; echo "FAIL: the model was not inventoried" >&2; exit 1; }
grep -q "port 17080 is in use" "$work/out1" || { cat "$work/out1"; echo "FAIL: the taken port was not named" >&2; exit 1; }
! grep -q "Traceback" "$work/out1" || { cat "$work/out1"; echo "FAIL: a traceback" >&2; exit 1; }
# Run again over the same directory: the collector already holds the last inventory, so the
# script must wait for the new agent's own (its status is healthy the moment the script ends).
AISCOUT_PROFILE=debug AISCOUT_QUICKSTART_DIR="$work/qs1" scripts/quickstart.sh "$work/models" >"$work/out1b" 2>&1 || {
  cat "$work/out1b"; echo "FAIL: quickstart failed when run again" >&2; exit 1; }
target/debug/aiscout-agent status --config "$work/qs1/agent.toml" >"$work/status1b" || {
  cat "$work/status1b"; echo "FAIL: run again, quickstart ended before the new agent had sent its inventory" >&2; exit 1; }
kill "$(cat "$work/qs1/agent.pid")" "$(cat "$work/qs1/collector.pid")"

echo "== quickstart asked for a taken port"
start=$(date +%s)
if AISCOUT_PROFILE=debug AISCOUT_QUICKSTART_DIR="$work/qs2" AISCOUT_API_PORT=17080 scripts/quickstart.sh "$work/models" >"$work/out2" 2>&1; then
  cat "$work/out2"; echo "FAIL: quickstart ran on a taken port" >&2; exit 1
fi
elapsed=$(( $(date +%s) - start ))
grep -q "API port 17080 (AISCOUT_API_PORT) is already in use by" "$work/out2" || { cat "$work/out2"; echo "FAIL: the message does not name the port and its holder" >&2; exit 1; }
! grep -q "Traceback" "$work/out2" || { cat "$work/out2"; echo "FAIL: a traceback" >&2; exit 1; }
[ ! -f "$work/qs2/collector.pid" ] || { echo "FAIL: a collector was started on a taken port" >&2; exit 1; }
echo "quickstart: free ports picked when the defaults are taken; a taken port asked for is refused in ${elapsed}s: $(grep -o 'already in use by.*' "$work/out2" | head -1)"
