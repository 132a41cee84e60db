#!/usr/bin/env bash
# The second agent build the self-update tests update to (tests/tests/self_update.rs): the same
# sources built with AISCOUT_BUILD_VERSION=9.9.9, so it states 9.9.9 (agent/src/main.rs), then
# stripped to target/debug/update-test/aiscout-agent-9.9.9 (a debug binary is over the
# updater's 256 MiB bound). Only the agent's binary crate reads the variable, so cargo rebuilds
# that crate alone, twice (with it, then without, to put the 0.x build back).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
out="$target/debug/update-test"
mkdir -p "$out"
AISCOUT_BUILD_VERSION=9.9.9 cargo build -p aiscout-agent --bin aiscout-agent --locked
strip -o "$out/aiscout-agent-9.9.9.new" "$target/debug/aiscout-agent"
mv -f "$out/aiscout-agent-9.9.9.new" "$out/aiscout-agent-9.9.9"
cargo build -p aiscout-agent --bin aiscout-agent --locked
"$out/aiscout-agent-9.9.9" --version | grep -qx 'aiscout-agent 9.9.9'
"$target/debug/aiscout-agent" --version | grep -qvx 'aiscout-agent 9.9.9'
echo "$out/aiscout-agent-9.9.9: $(stat -c %s "$out/aiscout-agent-9.9.9") bytes"
