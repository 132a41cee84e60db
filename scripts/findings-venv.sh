#!/usr/bin/env bash
# Creates (or reuses) var/findings-venv with tests/findings-requirements.txt installed without
# dependencies (a real vulnerable keras for the findings tests) and prints the venv's path.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
empty="$(mktemp)"
trap 'rm -f "$empty"' EXIT
ensure_venv findings-tests "$root/var/findings-venv" "$empty" "$root/tests/findings-requirements.txt"
echo "$root/var/findings-venv"
