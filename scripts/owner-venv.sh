#!/usr/bin/env bash
# Creates (or reuses) var/owner-venv with tests/owner-requirements.txt and, without their
# dependencies, tests/owner-nodeps-requirements.txt (torch: its CUDA wheels are not needed),
# and prints the venv's path. The end-to-end owner test (tests/tests/owner.rs) scans it;
# scripts/test.sh calls this first so the install time shows on its own.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv owner-tests "$root/var/owner-venv" "$root/tests/owner-requirements.txt" \
    "$root/tests/owner-nodeps-requirements.txt"
echo "$root/var/owner-venv"
