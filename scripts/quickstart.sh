#!/usr/bin/env bash
# Quick start: build, start a collector in dev mode (generated CA) with its data under
# var/quickstart/, enroll and start one agent for this machine, wait until its first inventory
# has landed, print host and asset counts, the API URL with a token, and how to stop both.
# Usage: scripts/quickstart.sh [ROOT...]   (default root: $HOME)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
qs="$root/var/quickstart"
grpc_port=${AISCOUT_GRPC_PORT:-17443}
api_port=${AISCOUT_API_PORT:-17080}
command -v curl >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null; }

echo "== building aiscout (release)"
cargo build --release --locked --bin aiscout-agent --bin aiscout-collector
collector="$root/target/release/aiscout-collector"
agent="$root/target/release/aiscout-agent"

# A previous quick start is stopped first, so ports and state are ours.
for pidfile in "$qs/agent.pid" "$qs/collector.pid"; do
  if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; rm -f "$pidfile"; fi
done
sleep 1
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
echo $! >"$qs/collector.pid"
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null || { echo "collector did not start: $qs/collector.log" >&2; exit 1; }

"$collector" --config "$qs/collector.toml" token create --uses 1 --ttl 1h --label quickstart >"$qs/enroll.token"
chmod 600 "$qs/enroll.token"
api_token=$("$collector" --config "$qs/collector.toml" api-token create --label quickstart)

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

api() { curl -sf -H "Authorization: Bearer $api_token" "http://127.0.0.1:$api_port$1"; }
count() { python3 -c "import json,sys; print(json.load(sys.stdin)['total'])"; }
echo "== waiting for the first inventory"
for _ in $(seq 600); do
  hosts=$(api /api/v1/hosts | count)
  seen=$(api /api/v1/hosts | python3 -c "import json,sys; print(sum(h['sightings'] for h in json.load(sys.stdin)['items']))")
  if [ "$hosts" -ge 1 ] && [ "$seen" -ge 1 ]; then break; fi
  kill -0 "$(cat "$qs/agent.pid")" 2>/dev/null || { echo "agent stopped: $qs/agent.log" >&2; tail -5 "$qs/agent.log" >&2; exit 1; }
  sleep 0.5
done
[ "${hosts:-0}" -ge 1 ] || { echo "no inventory after 5 minutes: $qs/agent.log" >&2; exit 1; }

echo
echo "hosts: $hosts"
for kind in model framework runtime tooling; do
  echo "$kind assets: $(api "/api/v1/assets?kind=$kind&limit=1" | count)"
done
echo
echo "API:      curl -H 'Authorization: Bearer $api_token' http://127.0.0.1:$api_port/api/v1/assets?kind=model"
echo "docs:     docs/collector.md (API), docs/scan-json.md (entries)"
echo "logs:     $qs/collector.log $qs/agent.log"
echo "stop:     kill \$(cat $qs/agent.pid) \$(cat $qs/collector.pid)"
