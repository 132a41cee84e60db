#!/usr/bin/env bash
# Runs every benchmark of the model discovery engine; the figures go into README.md.
set -euo pipefail
dir="$(dirname "$0")"
bash "$dir/hash.sh"
bash "$dir/scan-tree.sh"
bash "$dir/rescan-models.sh"
