#!/usr/bin/env bash
# Quick start: build, start a collector in dev mode (generated CA) with its data under
# var/quickstart/, enroll and start one agent for this machine, wait until its first inventory
# has landed, print host and asset counts, the API URL with a token, and how to stop both.
#
# Usage: scripts/quickstart.sh [ROOT...]   (default root: $HOME)
# Ports: 17443 (gRPC) and 17080 (API) when free, else free ones the system picks. Setting
# AISCOUT_GRPC_PORT or AISCOUT_API_PORT asks for that port: when something else holds it, the
# script stops at once naming the port and what holds it.
# AISCOUT_QUICKSTART_DIR: where state and logs go (default var/quickstart).
# AISCOUT_PROFILE=debug: use the debug binaries (tests; the default builds release).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
qs="${AISCOUT_QUICKSTART_DIR:-$root/var/quickstart}"
profile="${AISCOUT_PROFILE:-release}"

fail() { echo "quickstart: $*" >&2; exit 1; }
command -v curl >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null; }
command -v ss >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq iproute2 >/dev/null; }

# What listens on TCP port $1 on this machine ("" when nothing does): pid and program.
holder() {
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -1 | sed 's/users:((//; s/))//'
}
# The pids listening on TCP port $1.
listening_pids() { ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
# A port the system hands out as free now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Port for $1 (a name), from the variable $2 when set (then it must be free), else $3 when
# free, else a free one.
pick_port() {
  local name=$1 asked=${!2:-} default=$3 held
  if [ -n "$asked" ]; then
    held=$(holder "$asked")
    [ -z "$held" ] || fail "$name port $asked ($2) is already in use by $held; free it or choose another port"
    echo "$asked"
  elif [ -z "$(holder "$default")" ]; then
    echo "$default"
  else
    echo "quickstart: $name port $default is in use by $(holder "$default"); using a free port" >&2
    free_port
  fi
}

if [ "$profile" = release ]; then
  echo "== building aiscout (release)"
  cargo build --release --locked --bin aiscout-agent --bin aiscout-collector
else
  echo "== building aiscout ($profile)"
  cargo build --locked --bin aiscout-agent --bin aiscout-collector
fi
bin="$root/target/$profile"
[ "$profile" != debug ] || bin="$root/target/debug"
collector="$bin/aiscout-collector"
agent="$bin/aiscout-agent"

# A previous quick start is stopped first, so ports and state are ours.
for pidfile in "$qs/agent.pid" "$qs/collector.pid"; do
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  fi
done
grpc_port=$(pick_port gRPC AISCOUT_GRPC_PORT 17443)
api_port=$(pick_port API AISCOUT_API_PORT 17080)
[ "$grpc_port" != "$api_port" ] || api_port=$(free_port)
mkdir -p "$qs"
chmod 700 "$qs"
cat >"$qs/collector.toml" <<TOML
data_dir = "$qs/collector"
listen = "127.0.0.1:$grpc_port"
api_listen = "127.0.0.1:$api_port"
[tls]
dev = true
TOML

echo "== starting the collector (dev mode) on 127.0.0.1:$grpc_port, API on 127.0.0.1:$api_port"
nohup "$collector" --config "$qs/collector.toml" serve >"$qs/collector.log" 2>&1 &
collector_pid=$!
echo "$collector_pid" >"$qs/collector.pid"
# Ready when our collector (not another program) holds both ports and answers /healthz.
ours() { listening_pids "$1" | grep -qx "$collector_pid"; }
for _ in $(seq 100); do
  kill -0 "$collector_pid" 2>/dev/null || { tail -5 "$qs/collector.log" >&2; fail "the collector stopped; log: $qs/collector.log"; }
  if ours "$api_port" && ours "$grpc_port" && curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null; then break; fi
  sleep 0.1
done
for port in "$grpc_port" "$api_port"; do
  ours "$port" || fail "port $port is not held by the collector started (pid $collector_pid) but by '$(holder "$port")'; log: $qs/collector.log"
done
curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null || fail "the collector does not answer on 127.0.0.1:$api_port; log: $qs/collector.log"

"$collector" --config "$qs/collector.toml" token create --uses 1 --ttl 1h --label quickstart >"$qs/enroll.token"
chmod 600 "$qs/enroll.token"
api_token=$("$collector" --config "$qs/collector.toml" api-token create --label quickstart)
# The dashboard's sign-in token: read to view, admin to acknowledge, export to download.
(umask 077 && "$collector" --config "$qs/collector.toml" api-token create --label quickstart-dashboard \
  --scope read --scope admin --scope export >"$qs/dashboard.token")

roots=("$@")
[ ${#roots[@]} -gt 0 ] || roots=("$HOME")
roots_toml=$(printf '"%s", ' "${roots[@]}")
cat >"$qs/agent.toml" <<TOML
state_dir = "$qs/agent"
[collector]
url = "https://127.0.0.1:$grpc_port"
ca_file = "$qs/collector/pki/ca.pem"
enrollment_token_file = "$qs/enroll.token"
[scan]
roots = [${roots_toml%, }]
TOML
"$agent" validate --config "$qs/agent.toml" >/dev/null

echo "== starting the agent for this machine (roots: ${roots[*]})"
nohup "$agent" run --config "$qs/agent.toml" >"$qs/agent.log" 2>&1 &
echo $! >"$qs/agent.pid"

# From the API answer at $1: its "total" ($2 = total) or the sum of its items' sightings
# ($2 = sightings); nothing (never a traceback) when the answer is not what we expect.
api_field() {
  curl -sf -H "Authorization: Bearer $api_token" "http://127.0.0.1:$api_port$1" | python3 -c '
import json, sys
try:
    doc = json.load(sys.stdin)
    if sys.argv[1] == "total":
        print(int(doc["total"]))
    else:
        print(sum(int(h["sightings"]) for h in doc["items"]))
except Exception:
    pass' "$2" 2>/dev/null || true
}
# Whether the agent started now has had an inventory acknowledged (its own status says so: a
# collector kept from an earlier quick start already holds the last one).
agent_sent() {
  "$agent" status --json --config "$qs/agent.toml" 2>/dev/null | python3 -c '
import json, sys
try:
    doc = json.load(sys.stdin)
    sys.exit(0 if doc.get("pid") == int(sys.argv[1]) and doc.get("last_send_ok_at_ms") else 1)
except Exception:
    sys.exit(1)' "$(cat "$qs/agent.pid")"
}
echo "== waiting for the first inventory"
hosts=0
for _ in $(seq 600); do
  hosts=$(api_field /api/v1/hosts total)
  seen=$(api_field /api/v1/hosts sightings)
  if agent_sent && [ "${hosts:-0}" -ge 1 ] 2>/dev/null && [ "${seen:-0}" -ge 1 ] 2>/dev/null; then break; fi
  kill -0 "$(cat "$qs/agent.pid")" 2>/dev/null || { tail -5 "$qs/agent.log" >&2; fail "the agent stopped; log: $qs/agent.log"; }
  kill -0 "$collector_pid" 2>/dev/null || { tail -5 "$qs/collector.log" >&2; fail "the collector stopped; log: $qs/collector.log"; }
  sleep 0.5
done
agent_sent && [ "${hosts:-0}" -ge 1 ] 2>/dev/null || fail "no inventory after 5 minutes; logs: $qs/agent.log $qs/collector.log"

echo
echo "hosts: $hosts"
for kind in model framework runtime tooling; do
  echo "$kind assets: $(api_field "/api/v1/assets?kind=$kind&limit=1" total)"
done
echo
echo "dashboard: http://127.0.0.1:$api_port/ui/ (sign in with the token in $qs/dashboard.token)"
echo "API:      curl -H 'Authorization: Bearer $api_token' http://127.0.0.1:$api_port/api/v1/assets?kind=model"
echo "agent:    $agent status --config $qs/agent.toml"
echo "docs:     docs/collector.md (API), docs/scan-json.md (entries)"
echo "logs:     $qs/collector.log $qs/agent.log"
echo "stop:     kill \$(cat $qs/agent.pid) \$(cat $qs/collector.pid)"
