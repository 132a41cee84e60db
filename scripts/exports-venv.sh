#!/usr/bin/env bash
# Creates (or reuses) var/exports-venv with the reference validators of the export formats
# (tests/exports-requirements.txt: cyclonedx-python-lib[json-validation], spdx-python-model) and
# prints its Python. The export tests run scripts/check-exports.py with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
ensure_venv exports-validators "$root/var/exports-venv" "$root/tests/exports-requirements.txt"
echo "$root/var/exports-venv/bin/python"
