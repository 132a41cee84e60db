# Shared setup for the benchmark scripts (sourced).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/var/bench"
AGENT="${CARGO_TARGET_DIR:-$ROOT/target}/release/aiscout-agent"
mkdir -p "$BENCH"

need() {
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "installing $tool" >&2
      apt-get update -qq >/dev/null && apt-get install -y -qq "$tool" >/dev/null
    fi
  done
}
need hyperfine python3 openssl
[ -x /usr/bin/time ] || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; }

cargo build --release --locked --bin aiscout-agent >&2

# hyperfine's statistic (mean|min) in seconds of the benchmark numbered $2 in export $1.
hstat() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][int(sys.argv[2])]; print(r[sys.argv[3]])" "$1" "$2" "$3"; }
# A field of the stats object of a scan document.
scanstat() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['stats'][sys.argv[2]])" "$1" "$2"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"; }
