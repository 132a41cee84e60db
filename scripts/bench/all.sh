#!/usr/bin/env bash
# Runs every benchmark (model discovery, host inventory, fleet, exports, dashboard); the figures go
# into README.md.
set -euo pipefail
dir="$(dirname "$0")"
bash "$dir/hash.sh"
bash "$dir/scan-tree.sh"
bash "$dir/rescan-models.sh"
bash "$dir/runtimes.sh"
bash "$dir/fleet.sh"
bash "$dir/export-memory.sh"
bash "$dir/dashboard.sh"
