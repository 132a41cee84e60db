#!/usr/bin/env bash
# Measures what the agent's two capabilities give it (docs/rollout.md, "Privileges"): runs the
# real agent as an unprivileged user, the way its systemd unit does (User=, ambient
# capabilities, bounding set, no new privileges), with both capabilities, each one alone and
# none, and checks what it sees of
#   - a model file in a directory only root may read (mode 0700), and
#   - a process of another user (`nobody`) holding a model file open and mapped, with an
#     ML variable (HF_HOME) in its environment.
# Beside each agent run, the same user reads the raw kernel interfaces (the file, the
# directory, /proc/<pid>/{fd,fd/N,maps,environ}) so the table shows where each refusal comes
# from. Needs root, setpriv (util-linux) and python3.
#
# usage: scripts/check-capabilities.sh [AGENT_BINARY] [RESULTS_MARKDOWN_FILE]
#   AGENT_BINARY: default /usr/bin/aiscout-agent, else the package build's binary.
# Exits non-zero when the measured results differ from the documented ones.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${1:-}
if [ -z "$BIN" ]; then
  for candidate in /usr/bin/aiscout-agent "${CARGO_TARGET_DIR:-$ROOT/target}"/x86_64-unknown-linux-gnu/dist/aiscout-agent; do
    if [ -x "$candidate" ]; then BIN=$candidate; break; fi
  done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "check-capabilities.sh: no agent binary (give its path)" >&2
  exit 2
fi
RESULTS=${2:-}
[ "$(id -u)" -eq 0 ] || { echo "check-capabilities.sh: must run as root" >&2; exit 2; }

USER_NAME=aiscout-capcheck
HOLDER=nobody
WORK=$(mktemp -d /var/tmp/aiscout-capcheck.XXXXXX)
HOLDER_PID=
created_user=0

NETNS=aiscout-capcheck-$$
SERVER_PIDS=()

cleanup() {
  if [ -n "$HOLDER_PID" ]; then kill "$HOLDER_PID" 2>/dev/null || true; wait "$HOLDER_PID" 2>/dev/null || true; fi
  for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  ip netns del "$NETNS" 2>/dev/null || true
  rm -rf "$WORK"
  if [ "$created_user" = 1 ]; then userdel "$USER_NAME" 2>/dev/null || true; groupdel "$USER_NAME" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The agent's stand-in user: a system user with no home and no login shell, like `aiscout`.
if ! getent passwd "$USER_NAME" >/dev/null; then
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$USER_NAME"
  created_user=1
fi

chmod 0755 "$WORK"
mkdir -m 0700 "$WORK/rootonly"
cp tests/fixtures/models/tiny-llama.gguf "$WORK/rootonly/secret.gguf"
chmod 0600 "$WORK/rootonly/secret.gguf"
mkdir -m 0755 "$WORK/shared"
cp tests/fixtures/models/single.safetensors "$WORK/shared/held.safetensors"
chmod 0644 "$WORK/shared/held.safetensors"

# Another user's ML process: holds the model open (fd 3) and mapped, HF_HOME in its environment.
setpriv --reuid="$HOLDER" --regid=nogroup --clear-groups --inh-caps=-all -- \
  env -i PATH=/usr/bin:/bin HF_HOME=/srv/hf-cache python3 -c '
import mmap, os, sys, time
f = open(sys.argv[1], "rb")
os.dup2(f.fileno(), 3)
m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
print("ready", flush=True)
time.sleep(600)
' "$WORK/shared/held.safetensors" >"$WORK/holder.out" 2>&1 &
HOLDER_PID=$!
for _ in $(seq 50); do grep -q ready "$WORK/holder.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/holder.out" || { cat "$WORK/holder.out" >&2; echo "check-capabilities.sh: the holder did not start" >&2; exit 1; }

as_user() { # as_user CAPS CMD...: CAPS like "+dac_read_search,+sys_ptrace" or "" for none
  local caps=$1; shift
  local set="-all"; [ -n "$caps" ] && set="-all,$caps"
  setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups --no-new-privs \
    --inh-caps="$set" --ambient-caps="$set" --bounding-set="$set" -- "$@"
}

probe() { # probe CAPS LABEL CMD...: "ok" or "denied"
  local caps=$1; shift
  if as_user "$caps" "$@" >/dev/null 2>&1; then echo ok; else echo denied; fi
}

declare -A CASES=(
  [both]="+dac_read_search,+sys_ptrace"
  [dac_read_search]="+dac_read_search"
  [sys_ptrace]="+sys_ptrace"
  [none]=""
)
ORDER=(both dac_read_search sys_ptrace none)
: >"$WORK/rows"
for case in "${ORDER[@]}"; do
  caps=${CASES[$case]}
  # What the capability set is, as the kernel reports it for the agent's user.
  capeff=$(as_user "$caps" grep CapEff /proc/self/status | awk '{print $2}')
  raw_file=$(probe "$caps" cat "$WORK/rootonly/secret.gguf")
  raw_dir=$(probe "$caps" ls "$WORK/rootonly")
  raw_fd=$(probe "$caps" ls "/proc/$HOLDER_PID/fd")
  raw_fdlink=$(probe "$caps" readlink -e "/proc/$HOLDER_PID/fd/3")
  raw_maps=$(probe "$caps" cat "/proc/$HOLDER_PID/maps")
  raw_environ=$(probe "$caps" cat "/proc/$HOLDER_PID/environ")
  as_user "$caps" env -i PATH=/usr/bin:/bin HOME=/nonexistent "$BIN" scan --json --no-cache \
    --only models,runtimes "$WORK/rootonly" "$WORK/shared" >"$WORK/scan-$case.json" 2>"$WORK/scan-$case.err" || true
  python3 - "$WORK/scan-$case.json" "$WORK" "$HOLDER_PID" "$case" "$capeff" \
    "$raw_file" "$raw_dir" "$raw_fd" "$raw_fdlink" "$raw_maps" "$raw_environ" >>"$WORK/rows" <<'PY'
import json, sys
path, work, pid, case, capeff, *raw = sys.argv[1:]
pid = int(pid)
try:
    doc = json.load(open(path))
except ValueError as e:
    print(f"check-capabilities.sh: the agent printed no JSON document ({case}): {e}", file=sys.stderr)
    doc = {}
secret = f"{work}/rootonly/secret.gguf"
held = f"{work}/shared/held.safetensors"
found = any(m.get("path") == secret for m in doc.get("models", []))
runtime = next((r for r in doc.get("runtimes", []) if r.get("pid") == pid), None)
restricted = next((r for r in doc.get("restricted_processes", []) if r.get("pid") == pid), None)
if runtime:
    via = sorted({v for o in runtime.get("open_models", []) if o.get("path") == held for v in o.get("via", [])})
    env = "HF_HOME" in (runtime.get("environment") or {})
    unreadable = runtime.get("unreadable", [])
    seen = "runtimes"
elif restricted:
    via, env, unreadable, seen = [], False, restricted.get("unreadable", []), "restricted_processes"
else:
    via, env, unreadable, seen = [], False, [], "not listed"
print("\t".join([case, capeff, *raw, "yes" if found else "no", seen, "+".join(via) or "-",
                 "yes" if env else "no", ",".join(unreadable) or "-"]))
PY
done

header="| capabilities | CapEff | read 0600 root file | list 0700 root dir | list /proc/PID/fd | readlink /proc/PID/fd/N | read /proc/PID/maps | read /proc/PID/environ | agent: model in root-only dir | agent: other user's process in | agent: its open model seen via | agent: its HF_HOME read | agent: unreadable parts |"
{
  echo "$header"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r -a row; do
    printf '|'; for cell in "${row[@]}"; do printf ' %s |' "$cell"; done; printf '\n'
  done <"$WORK/rows"
} | tee "$WORK/table.md"
[ -n "$RESULTS" ] && cp "$WORK/table.md" "$RESULTS"
echo "(agent: $BIN, $("$BIN" --version); kernel $(uname -r))"

# The documented results (docs/rollout.md, "Privileges"); a difference fails the check.
expected=$(cat <<'EOF'
both	ok	ok	ok	ok	ok	ok	yes	runtimes	fd+mmap	yes	-
dac_read_search	ok	ok	ok	denied	denied	denied	yes	restricted_processes	-	no	exe,maps,fd
sys_ptrace	denied	denied	denied	denied	ok	denied	no	runtimes	mmap	no	fd,environ
none	denied	denied	denied	denied	denied	denied	no	restricted_processes	-	no	exe,maps,fd
EOF
)
measured=$(cut -f1,3- "$WORK/rows")
if [ "$measured" != "$expected" ]; then
  echo "check-capabilities.sh: the measured results differ from the documented ones" >&2
  diff <(echo "$expected") <(echo "$measured") >&2 || true
  for case in "${ORDER[@]}"; do sed -n '1,5p' "$WORK/scan-$case.err" >&2; done
  exit 1
fi
echo "check-capabilities.sh: CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE read every file and other users' /proc/<pid>/{maps,fd,environ}; each alone misses its half"

# The degraded feature: without CAP_SYS_ADMIN the agent cannot enter another network namespace,
# so `--identify-servers` does not ask a server there (and says why); a server in the host's
# namespace is asked as before. Two fake Ollama servers (the agent knows Ollama by its command
# line), one in a namespace made here, one on the host, on the same port.
cat >"$WORK/ollama" <<'PY'
import http.server, json, sys
port, version = int(sys.argv[2]), sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"version": version} if self.path == "/api/version" else {"models": []}
        data = json.dumps(body).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
print("ready", flush=True)
srv.serve_forever()
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ip netns add "$NETNS"
ip netns exec "$NETNS" ip link set lo up
python3 "$WORK/ollama" serve "$port" 1.0.0-host >"$WORK/host-server.out" 2>&1 &
SERVER_PIDS+=($!)
ip netns exec "$NETNS" python3 "$WORK/ollama" serve "$port" 2.0.0-netns >"$WORK/ns-server.out" 2>&1 &
SERVER_PIDS+=($!)
for _ in $(seq 50); do
  grep -q ready "$WORK/host-server.out" 2>/dev/null && grep -q ready "$WORK/ns-server.out" 2>/dev/null && break
  sleep 0.1
done
as_user "${CASES[both]}" env -i PATH=/usr/bin:/bin HOME=/nonexistent "$BIN" scan --json --no-cache \
  --only runtimes --identify-servers >"$WORK/identify.json" 2>"$WORK/identify.err" || true
identities=$(python3 - "$WORK/identify.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for r in doc.get("runtimes", []):
    cmd = r.get("cmdline", [])
    for tag in ("1.0.0-host", "2.0.0-netns"):
        if tag in cmd:
            i = r.get("identity") or {}
            print(f"{tag}\t{i.get('version')}\t{i.get('error')}")
PY
)
echo "identify_servers with both capabilities (no CAP_SYS_ADMIN):"
printf '  %s\n' "${identities//$'\n'/$'\n'  }"
host_line=$(grep '^1.0.0-host' <<<"$identities" || true)
ns_line=$(grep '^2.0.0-netns' <<<"$identities" || true)
if [ "$(cut -f2 <<<"$host_line")" != "1.0.0-host" ] \
  || [[ "$(cut -f3 <<<"$ns_line")" != "not asked: cannot enter the server's network namespace: "* ]]; then
  echo "check-capabilities.sh: identify_servers did not degrade as documented" >&2
  exit 1
fi
if [ -n "$RESULTS" ]; then
  {
    echo
    echo "identify_servers, both capabilities: host server \`version = $(cut -f2 <<<"$host_line")\`;"
    echo "server in another network namespace: \`error = \"$(cut -f3 <<<"$ns_line")\"\`"
  } >>"$RESULTS"
fi
echo "check-capabilities.sh: a server in another network namespace is not asked, and the document says why"
