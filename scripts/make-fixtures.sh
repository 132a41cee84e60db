#!/usr/bin/env bash
# Regenerate tests/fixtures/ (real model files written by each format's own
# Python library, plus decoys, hazards and expected.json).
#
# Creates (or reuses) a venv at var/fixtures-venv with the pinned packages from
# scripts/fixtures-requirements.txt, then runs scripts/make-fixtures.py.
# The venv is rebuilt whenever the requirements file changes.
#
# Usage: bash scripts/make-fixtures.sh [--check]
#   --check   regenerate into a temporary directory and compare every file's
#             sha256 with the committed tests/fixtures/expected.json
#             (files known to embed a random id are reported, not failed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/var/fixtures-venv"
REQ="$ROOT/scripts/fixtures-requirements.txt"
PYTHON="${PYTHON:-python3}"

source "$ROOT/scripts/venv.sh"
ensure_venv make-fixtures "$VENV" "$REQ"

# Fixed environment so the outputs are as reproducible as the libraries allow.
export TZ=UTC
export PYTHONHASHSEED=0
export KERAS_BACKEND=tensorflow
export TF_CPP_MIN_LOG_LEVEL=3
export TF_ENABLE_ONEDNN_OPTS=0
export CUDA_VISIBLE_DEVICES=""
export MLFLOW_ALLOW_FILE_STORE=true
export LOGNAME=aiscout USER=aiscout
export PYTHONDONTWRITEBYTECODE=1

exec "$VENV/bin/python" "$ROOT/scripts/make-fixtures.py" "$@"
