#!/usr/bin/env bash
# Dashboard pages under load: every page must answer in under 300 ms with 10,000 hosts and
# 50,000 assets in the store (issue 16). Fills a database through the real ingest path
# (collector/examples/fill_store.rs: 10,000 hosts × 20 sightings over a pool of 40,000 model
# digests, one in 50 dangerous, every 20th host silent), starts a release collector on it, waits
# for its first findings evaluation, signs in with a read token (the session cookie, as a
# browser does) and fetches each page RUNS times (default 20) with curl. Prints the store's size
# and, per page, the median, 95th percentile and slowest time; exits 1 when a page's 95th
# percentile is over the target. README's Performance section quotes the table.
#   scripts/bench/dashboard.sh [RUNS]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
RUNS=${1:-20}
BENCH="$ROOT/var/bench/dashboard"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
TARGET_MS=300
command -v curl >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq curl >/dev/null; }
command -v sqlite3 >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq sqlite3 >/dev/null; }
cargo build --release --locked --bin aiscout-collector --example fill_store >&2
COLLECTOR="$TARGET/release/aiscout-collector"
mkdir -p "$BENCH"
dir="$BENCH/fleet"
if [ ! -s "$dir/data/inventory.db" ]; then
  rm -rf "$dir" && mkdir -p "$dir/data"
  echo "filling 10,000 hosts × 20 sightings (model pool 40,000)" >&2
  "$TARGET/release/examples/fill_store" "$dir/data/inventory.db" 10000 20 40000
fi
# shellcheck source=scripts/bench/serve.sh
. "$ROOT/scripts/bench/serve.sh"
serve_collector "$dir" "$COLLECTOR"
token=$("$COLLECTOR" --config "$dir/collector.toml" api-token create --scope read --label bench)
base="http://127.0.0.1:$api"
get() { curl -sf -H "Authorization: Bearer $token" "$base$1"; }
db="$dir/data/inventory.db"
echo "store: $(sqlite3 "$db" 'SELECT COUNT(*) FROM agents') hosts, $(sqlite3 "$db" 'SELECT COUNT(*) FROM assets') assets, $(sqlite3 "$db" 'SELECT COUNT(*) FROM sightings') sightings, $(sqlite3 "$db" "SELECT COUNT(*) FROM findings WHERE state IN ('open','reopened')") open findings; $(du -m "$db" | cut -f1) MiB" >&2
host=$(get "/api/v1/hosts?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["agent_id"])')
model=$(get "/api/v1/assets?kind=model&verdict=dangerous&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
finding=$(get "/api/v1/findings?severity=critical&limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
cookie="aiscout_session=$token"
printf '| page | median | p95 | slowest | bytes |\n|---|---|---|---|---|\n'
fail=0
for path in "/ui/" "/ui/findings" "/ui/findings?severity=critical&state=open" "/ui/findings?mapping=LLM03:2025" \
  "/ui/findings/$finding" "/ui/models" "/ui/models?verdict=dangerous" "/ui/models?q=m4242" "/ui/models/$model" \
  "/ui/hosts" "/ui/hosts?status=silent" "/ui/hosts/$host" "/ui/graph?host=$host" "/ui/graph?asset=$model" "/ui/exports"; do
  : > "$dir/times"
  for _ in $(seq "$RUNS"); do
    out=$(curl -s -o "$dir/page" -w '%{http_code} %{time_total}' -H "Cookie: $cookie" "$base$path")
    code=${out%% *}
    [ "$code" = 200 ] || { echo "$path answered $code" >&2; exit 1; }
    echo "${out##* }" >> "$dir/times"
  done
  read -r median p95 worst < <(sort -n "$dir/times" | awk '{t[NR]=$1} END {printf "%d %d %d\n", t[int((NR+1)/2)]*1000, t[int(NR*0.95+0.5)]*1000, t[NR]*1000}')
  printf '| `%s` | %d ms | %d ms | %d ms | %d |\n' "${path//$host/HOST}" "$median" "$p95" "$worst" "$(stat -c %s "$dir/page")" | sed "s/$model/MODEL/; s/$finding/FINDING/"
  [ "$p95" -lt "$TARGET_MS" ] || fail=1
done
echo "collector RSS $(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status") MiB (peak $(awk '/VmHWM/ {print int($2/1024)}' "/proc/$pid/status") MiB)" >&2
[ "$fail" = 0 ] || { echo "a page's 95th percentile is ${TARGET_MS} ms or more" >&2; exit 1; }
