#!/usr/bin/env bash
# Benchmark 10 (scale-out, issue 17; docs/scale.md): aiscout-fleet-sim's simulated agents over
# real mTLS against release collectors on this machine.
# 1. sqlite:   one collector on SQLite, AGENTS concurrent agent streams, each a first snapshot
#              of ENTRIES new entries, then deltas for DURATION seconds
#    sqlite-again: the same agents (from the sqlite run's state file) reconnect all at once and
#              send their snapshot again, nearly all unchanged: the steady state of a fleet that
#              re-inventories on a schedule
#    sqlite-steady: the same agents stay connected for DURATION seconds, and each sends a full
#              snapshot (3 changes, the rest unchanged) as soon as its last one is acknowledged,
#              at most every INTERVAL seconds, as the real agent with schedule.snapshot_every = 1
#              and a spool: 2,000 streams that always have a batch waiting, so the rate is what
#              one collector sustains
# 2. pg-1:     one collector on a fresh PostgreSQL database
#    pg-2:     two collectors on one fresh database, the agents split between them
# 3. storm:    the pg-1 agents again (enrolled, from the state file) after the collector was
#              restarted: every agent reconnects at once with a full snapshot (the same seed:
#              nearly all unchanged); time until all are acknowledged, and the store checked
# 4. the database's size per million sightings (pg_total_relation_size of its tables)
# Each run prints the simulator's report (sightings/s over the streaming phase, the first
# snapshots' rate, p50/p99 batch latency, errors) and the collectors' peak RSS; every run
# ends with the store checked against what the simulated agents hold (exit 1 otherwise).
#
# AGENTS (default 2000), ENTRIES per host (300), SHARED share of fleet-wide entries (0.5),
# DURATION seconds of streaming after the first snapshots (60), INTERVAL seconds between two
# snapshots of an agent in sqlite-steady (1), ONLY (a list of the runs above).
source "$(dirname "$0")/common.sh"
need curl

cargo build --release --locked -p aiscout-collector --bin aiscout-collector >&2
cargo build --release --locked -p aiscout-e2e --bin aiscout-fleet-sim >&2
COLLECTOR="$ROOT/target/release/aiscout-collector"
SIM="$ROOT/target/release/aiscout-fleet-sim"
agents=${AGENTS:-2000}
entries=${ENTRIES:-300}
shared=${SHARED:-0.5}
duration=${DURATION:-60}
interval=${INTERVAL:-1}
only=${ONLY:-sqlite sqlite-again sqlite-steady pg-1 pg-2 storm size}
work="$BENCH/scale"
rm -rf "$work"
mkdir -p "$work"
chmod 700 "$work"
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
pids=()
# The databases made for this run, one URL a line: dropped at exit, analysed while it runs.
dbs="$work/dbs"
: > "$dbs"
new_db() { local d; d=$("$ROOT/scripts/postgres-db.sh" create); echo "$d" >> "$dbs"; echo "$d"; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  while read -r d; do "$ROOT/scripts/postgres-db.sh" drop "$d" >/dev/null 2>&1 || true; done < "$dbs"
}
trap cleanup EXIT

# start NAME STORE [PKI_OF]: a collector in $work/NAME on STORE ("" = SQLite), sharing the dev
# PKI of collector PKI_OF when given (replicas trust one CA); sets grpc_NAME, api_NAME, pid_NAME.
start() {
  local name=$1 store=$2 pki_of=${3:-} dir="$work/$1" grpc api
  mkdir -p "$dir/data"
  chmod 700 "$dir" "$dir/data"
  [ -n "$pki_of" ] && cp -a "$work/$pki_of/data/pki" "$dir/data/"
  grpc=$(free_port); api=$(free_port)
  cat > "$dir/collector.toml" <<TOML
data_dir = "$dir/data"
store = "$store"
store_pool_size = 16
listen = "127.0.0.1:$grpc"
api_listen = "127.0.0.1:$api"
[tls]
dev = true
[agents]
# A load test: the per-agent limits would hold back the simulated agents' first snapshots.
batches_per_minute = 1000000
bytes_per_minute = 17179869184
[findings]
interval = "1h"
TOML
  "$COLLECTOR" --config "$dir/collector.toml" serve > "$dir/serve.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$api/healthz" >/dev/null && break; sleep 0.1; done
  eval "grpc_$name=$grpc api_$name=$api pid_$name=$pid"
}

# tokens NAME: an enrollment token for every agent and an API token, made through collector NAME.
tokens() {
  local dir="$work/$1"
  "$COLLECTOR" --config "$dir/collector.toml" token create --uses $((agents * 2)) --ttl 2h > "$dir/token"
  "$COLLECTOR" --config "$dir/collector.toml" api-token create --label bench > "$dir/api-token"
  chmod 600 "$dir/token" "$dir/api-token"
}

# The PostgreSQL server of this machine runs with autovacuum off: without the ANALYZE it would
# run, the planner keeps the statistics of empty tables, and after the first snapshots the
# verification's listings took 30 s a page. While the benchmark runs, its databases are
# analysed every 20 s, as autovacuum would; the collector warns about a server without it.
analyze_loop() {
  while sleep 20; do
    while read -r d; do psql -q "$d" -c "ANALYZE" >/dev/null 2>&1 || true; done < "$dbs"
  done
}
if [ "$(psql -qtA "postgres://root@127.0.0.1:5432/postgres" -c "SHOW autovacuum" 2>/dev/null)" = "off" ]; then
  analyze_loop &
  pids+=("$!")
fi

# The SQLite collector, once its runs are done, leaves the cores to PostgreSQL.
stop_sqlite() { if [ -n "${pid_sqlite:-}" ]; then kill "$pid_sqlite" 2>/dev/null || true; pid_sqlite=""; fi; }

rss() { awk '/VmHWM/ {printf "%d MiB", $2 / 1024}' "/proc/$1/status"; }

# sim NAME URLS SECONDS [EXTRA...]: the simulator against URLS (comma-separated) streaming for
# SECONDS after the first snapshots, checked through NAME's API.
sim() {
  local name=$1 urls=$2 seconds=$3; shift 3
  local dir="$work/$name" api_var="api_$name"
  "$SIM" --collector "$urls" --ca "$dir/data/pki/ca.pem" --token-file "$dir/token" \
    --agents "$agents" --entries "$entries" --shared "$shared" --duration "$seconds" \
    --api "http://127.0.0.1:${!api_var}" --api-token-file "$dir/api-token" --drain-timeout 900 --json "$@" \
    > "$dir/report.json" || echo "$name: the simulator reported a failure (the line below says which)" >&2
}

# show LABEL REPORT PIDS...: one line of the report's figures and the collectors' peak RSS.
show() {
  local label=$1 report=$2; shift 2
  local rss_list=""
  for p in "$@"; do rss_list="$rss_list $(rss "$p")"; done
  python3 - "$label" "$report" "$rss_list" <<'PY'
import json, sys
label, path, rss = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
lat = r["latency"]
v = r.get("verification") or {}
print(f"{label}: {r['agents']} agents, {r['sightings_acked']} sightings acked; "
      f"streaming {r['sightings_per_s']:.0f}/s, first snapshots {r['initial_snapshot_sightings_per_s']:.0f}/s "
      f"in {r['initial_snapshot_s']:.1f} s; batch p50 {lat['p50_ms']:.0f} ms p99 {lat['p99_ms']:.0f} ms; "
      f"errors {r['errors']}; unflushed agents {r['unflushed_agents']}; verified {v.get('ok')}; "
      f"collector peak RSS{rss}")
PY
}

for run in $only; do
  case $run in
    sqlite)
      start sqlite ""
      tokens sqlite
      sim sqlite "https://127.0.0.1:$grpc_sqlite" "$duration" --ramp 10 --state "$work/sqlite/state.json"
      show "1. sqlite, one collector" "$work/sqlite/report.json" "$pid_sqlite"
      ;;
    sqlite-again)
      sim sqlite "https://127.0.0.1:$grpc_sqlite" 0 --state "$work/sqlite/state.json"
      mv "$work/sqlite/report.json" "$work/sqlite/again.json"
      show "1. sqlite, the same agents again at once (snapshots nearly all unchanged)" "$work/sqlite/again.json" "$pid_sqlite"
      ;;
    sqlite-steady)
      sim sqlite "https://127.0.0.1:$grpc_sqlite" "$duration" --state "$work/sqlite/state.json" \
        --ramp "$interval" --delta-interval "$interval" --snapshot-every 1
      mv "$work/sqlite/report.json" "$work/sqlite/steady.json"
      show "1. sqlite, sustained: $duration s of full snapshots, each agent's next when its last is acknowledged" \
        "$work/sqlite/steady.json" "$pid_sqlite"
      ;;
    pg-1)
      stop_sqlite
      db=$(new_db)
      start pg1 "$db"
      tokens pg1
      sim pg1 "https://127.0.0.1:$grpc_pg1" "$duration" --ramp 10 --state "$work/pg1/state.json"
      show "2. postgresql, one collector" "$work/pg1/report.json" "$pid_pg1"
      ;;
    pg-2)
      stop_sqlite
      db2=$(new_db)
      start pga "$db2"
      start pgb "$db2" pga
      tokens pga
      cp "$work/pga/token" "$work/pga/api-token" "$work/pgb/"
      sim pga "https://127.0.0.1:$grpc_pga,https://127.0.0.1:$grpc_pgb" "$duration" --ramp 10
      show "2. postgresql, two collectors" "$work/pga/report.json" "$pid_pga" "$pid_pgb"
      kill "$pid_pga" "$pid_pgb"
      ;;
    storm)
      # The pg-1 collector restarts; every agent of pg-1's state file reconnects at once.
      kill "$pid_pg1"; wait "$pid_pg1" 2>/dev/null || true
      "$COLLECTOR" --config "$work/pg1/collector.toml" serve >> "$work/pg1/serve.log" 2>&1 &
      pid_pg1=$!; pids+=("$pid_pg1")
      for _ in $(seq 200); do curl -sf "http://127.0.0.1:$api_pg1/healthz" >/dev/null && break; sleep 0.1; done
      sim pg1 "https://127.0.0.1:$grpc_pg1" 0 --state "$work/pg1/state.json"
      cp "$work/pg1/report.json" "$work/pg1/storm.json"
      show "3. reconnect storm (every agent at once, a new snapshot each)" "$work/pg1/storm.json" "$pid_pg1"
      ;;
    size)
      url=$(head -n 1 "$dbs")
      psql -qtA "$url" -c "SELECT count(*), pg_database_size(current_database()) FROM sightings" | {
        IFS='|' read -r rows bytes
        echo "4. postgresql: $rows sightings in $((bytes / 1048576)) MiB: $((bytes / (rows > 0 ? rows : 1))) bytes a sighting, $((bytes / (rows > 0 ? rows : 1) * 1000000 / 1048576)) MiB per million"
      }
      ;;
  esac
done
