#!/usr/bin/env bash
# Creates (or reuses) var/process-venv with tests/process-requirements.txt and prints the path
# of its python. The end-to-end process tests call it; scripts/test.sh calls it first so the
# install time shows on its own.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv process-tests "$root/var/process-venv" "$root/tests/process-requirements.txt"
echo "$root/var/process-venv/bin/python"
