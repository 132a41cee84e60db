#!/usr/bin/env bash
# Quick start: build the agent and scan your home directory for models.
# (The fleet quick start — collector, enrollment, streaming — arrives with the fleet pipeline.)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

echo "== building aiscout (release)"
cargo build --release --locked --bin aiscout-agent

out="$root/var/quickstart"
mkdir -p "$out"
target="${1:-$HOME}"
echo "== scanning $target"
"$root/target/release/aiscout-agent" scan --state-dir "$out/state" --json "$target" >"$out/scan.json"
"$root/target/release/aiscout-agent" scan --state-dir "$out/state" "$target"
echo
echo "inventory (JSON, docs/scan-json.md): $out/scan.json"
echo "hash cache: $out/state (a second run hashes nothing that has not changed)"
