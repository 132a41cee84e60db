#!/usr/bin/env bash
# Installs Debian's chromium when it is missing and creates (or reuses) var/browser-venv with
# playwright (tests/browser-requirements.txt); prints its Python. The dashboard's browser test
# (tests/tests/dashboard.rs) drives the system Chromium with it: playwright never downloads a
# browser here (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if ! command -v chromium >/dev/null; then
    echo "browser-venv: installing chromium (apt)" >&2
    # Another apt or dpkg run (the package tests) may hold the lock: wait for it.
    for _ in $(seq 1 60); do
        if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then break; fi
        apt-get update -qq >/dev/null 2>&1 || true
        sleep 5
    done
    command -v chromium >/dev/null || { echo "browser-venv: cannot install chromium" >&2; exit 1; }
fi
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv browser "$root/var/browser-venv" "$root/tests/browser-requirements.txt"
echo "$root/var/browser-venv/bin/python"
