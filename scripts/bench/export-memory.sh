#!/usr/bin/env bash
# Exports stream: the collector's peak memory must not grow with the inventory. Fills two
# databases through the real ingest path (collector/examples/fill_store.rs: 100 and 1,000 hosts
# of 1,000 sightings each, so 100,000 and 1,000,000 sightings), then measures, for each format:
#   1. `aiscout-collector export` to a file: peak RSS (/usr/bin/time's maximum resident set) and
#      wall time;
#   2. the running collector answering `GET /api/v1/export`, once its start-up findings
#      evaluation is done: its resident memory just before the download and the highest of
#      its samples (every 20 ms) during it, and the download's time.
# Each export's row count is checked (sightings: hosts × 1,000 rows), so an empty database
# cannot pass for a flat one.
# Prints a table; README's Performance section quotes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/var/bench/export"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
[ -x /usr/bin/time ] || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; }
command -v curl >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null; }
cargo build --release --locked --bin aiscout-collector --example fill_store >&2
COLLECTOR="$TARGET/release/aiscout-collector"
mkdir -p "$BENCH"

# An export with its serial number and timestamps blanked (they differ between two exports).
without_serial() { sed -E 's/urn:uuid:[0-9a-f-]{36}|urn:aiscout:spdx:[0-9a-f-]{36}|"(timestamp|created)":"[^"]*"/X/g' "$1"; }
# shellcheck source=scripts/bench/serve.sh
. "$ROOT/scripts/bench/serve.sh"

printf '| sightings | format | CLI peak RSS | CLI time | server RSS before → peak during | HTTP time | bytes |\n'
printf '|---|---|---|---|---|---|---|\n'
for hosts in 100 1000; do
  dir="$BENCH/fleet-$hosts"
  if [ ! -s "$dir/data/inventory.db" ]; then
    rm -rf "$dir" && mkdir -p "$dir/data"
    echo "filling $hosts hosts × 1000 sightings" >&2
    "$TARGET/release/examples/fill_store" "$dir/data/inventory.db" "$hosts" 1000
  fi
  # The first findings evaluation reads the whole inventory (docs/findings.md, Limits):
  # serve_collector waits for it, so the export's own memory is what is measured.
  serve_collector "$dir" "$COLLECTOR"
  token=$("$COLLECTOR" --config "$dir/collector.toml" api-token create --scope export)
  echo "collector serving $((hosts * 1000)) sightings: VmHWM after start-up and the first findings evaluation $(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status") MiB, VmRSS $(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status") MiB" >&2
  for spec in "csv sightings" "jsonl sightings" "csv assets" "cyclonedx -" "spdx -"; do
    set -- $spec; format=$1; rows=$2
    args=(--format "$format"); [ "$rows" != "-" ] && args+=(--rows "$rows")
    /usr/bin/time -f '%M %e' -o "$dir/time" "$COLLECTOR" --config "$dir/collector.toml" export "${args[@]}" \
      --out "$dir/out" 2>/dev/null
    read -r rss secs < "$dir/time"
    bytes=$(stat -c %s "$dir/out")
    if [ "$rows" = sightings ]; then
      [ "$format" = csv ] && lines=$(($(wc -l < "$dir/out") - 1)) || lines=$(wc -l < "$dir/out")
      [ "$lines" -eq $((hosts * 1000)) ] || { echo "$format: $lines rows, not $((hosts * 1000))" >&2; exit 1; }
    fi
    before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    query="format=$format"; [ "$rows" != "-" ] && query="$query&rows=$rows"
    start=$(date +%s.%N)
    curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$api/api/v1/export?$query" -o "$dir/http-out" &
    curl_pid=$!
    after=$before
    while kill -0 "$curl_pid" 2>/dev/null; do
      now=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status"); [ "$now" -gt "$after" ] && after=$now
      sleep 0.02
    done
    wait "$curl_pid"
    http=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
    cmp -s <(without_serial "$dir/out") <(without_serial "$dir/http-out") \
      || { echo "$format: the HTTP export differs from the command line's" >&2; exit 1; }
    label="$format"; [ "$rows" != "-" ] && label="$format ($rows)"
    printf '| %s | %s | %d MiB | %s s | %d → %d MiB | %s s | %s |\n' "$((hosts * 1000))" "$label" \
      "$((rss / 1024))" "$secs" "$((before / 1024))" "$((after / 1024))" "$http" "$bytes"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  trap - EXIT
done
