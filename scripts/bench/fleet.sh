#!/usr/bin/env bash
# Benchmark 5 (fleet): a collector and one agent daemon (release builds) on loopback.
# 1. latency: a new model file in a watched directory until its sighting is in the HTTP API
#    (FILES files, default 10);
# 2. idle: the agent's RSS and CPU over IDLE_SECONDS (default 600) with nothing changing; the
#    agent runs its default schedule (runtimes every 5 minutes) with every section enabled.
# Goals (issue 5): idle RSS <= 25 MiB, idle CPU <= 0.5 %; a new model within seconds.
source "$(dirname "$0")/common.sh"
need curl
cargo build --release --locked --bin aiscout-collector >&2
COLLECTOR="$ROOT/target/release/aiscout-collector"
files=${FILES:-10}
idle_seconds=${IDLE_SECONDS:-600}
work="$BENCH/fleet"
rm -rf "$work"
mkdir -p "$work/models"
chmod 700 "$work"
cp "$ROOT"/tests/fixtures/models/* "$work/models/" 2>/dev/null || true
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
grpc_port=$(free_port)
api_port=$(free_port)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
cat >"$work/collector.toml" <<TOML
data_dir = "$work/collector"
listen = "127.0.0.1:$grpc_port"
api_listen = "127.0.0.1:$api_port"
[tls]
dev = true
TOML
"$COLLECTOR" --config "$work/collector.toml" serve >"$work/collector.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
"$COLLECTOR" --config "$work/collector.toml" token create --label bench >"$work/token"
token=$("$COLLECTOR" --config "$work/collector.toml" api-token create --label bench)
cat >"$work/agent.toml" <<TOML
state_dir = "$work/agent"
[collector]
url = "https://127.0.0.1:$grpc_port"
ca_file = "$work/collector/pki/ca.pem"
enrollment_token_file = "$work/token"
[scan]
roots = ["$work/models"]
TOML
"$AGENT" run --config "$work/agent.toml" >"$work/agent.log" 2>&1 &
agent_pid=$!
pids+=($agent_pid)
expected=$(find "$work/models" -maxdepth 1 -type f | wc -l)
for _ in $(seq 600); do
  seen=$(python3 "$ROOT/scripts/bench/fleet.py" count "$api_port" "$token" 2>/dev/null || echo 0)
  [ "$seen" -ge 1 ] && break
  sleep 0.5
done
echo "fleet: first inventory landed ($seen model sightings of $expected fixture files; not every fixture is a model)"
python3 "$ROOT/scripts/bench/fleet.py" latency "$api_port" "$token" "$work/models" "$files"
sleep 5  # let the last rescan settle before measuring idle
python3 "$ROOT/scripts/bench/fleet.py" idle "$api_port" "$token" "$agent_pid" "$idle_seconds"
