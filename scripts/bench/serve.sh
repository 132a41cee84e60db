# Sourced by the benchmarks that time a serving collector (export-memory.sh, dashboard.sh).
#
# serve_collector DIR COLLECTOR
#   Writes DIR/collector.toml (data in DIR/data, dev TLS, free ports, findings every hour),
#   starts COLLECTOR serve on it (log in DIR/serve.log), waits for its API, then for its
#   start-up findings evaluation (which logs only when findings change) to end: the process
#   has used no CPU time for two seconds. Sets pid (killed on exit) and api (the API's port).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve_collector() {
  local dir=$1 collector=$2 grpc last now idle
  grpc=$(free_port); api=$(free_port)
  cat > "$dir/collector.toml" <<TOML
data_dir = "$dir/data"
listen = "127.0.0.1:$grpc"
api_listen = "127.0.0.1:$api"
[tls]
dev = true
names = ["localhost", "127.0.0.1"]
[findings]
interval = "1h"
TOML
  "$collector" --config "$dir/collector.toml" serve > "$dir/serve.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$api/healthz" >/dev/null && break; sleep 0.1; done
  last=-1; idle=0
  while [ "$idle" -lt 4 ]; do
    now=$(awk '{print $14 + $15}' "/proc/$pid/stat"); if [ "$now" = "$last" ]; then idle=$((idle + 1)); else idle=0; fi
    last=$now; sleep 0.5
  done
}
