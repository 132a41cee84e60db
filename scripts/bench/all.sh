#!/usr/bin/env bash
# Runs every benchmark (model discovery, host inventory, fleet); the figures go into README.md.
set -euo pipefail
dir="$(dirname "$0")"
bash "$dir/hash.sh"
bash "$dir/scan-tree.sh"
bash "$dir/rescan-models.sh"
bash "$dir/runtimes.sh"
bash "$dir/fleet.sh"
