#!/usr/bin/env bash
# Validates the collector's OpenAPI document (collector/data/openapi.json, served at
# /api/v1/openapi.json) with the reference validator from PyPI (openapi-spec-validator), in a
# venv under var/ kept between runs. The Rust test api::tests checks it names exactly the routes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=var/openapi-venv
if [ ! -x "$venv/bin/openapi-spec-validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator==0.7.*'
fi
"$venv/bin/openapi-spec-validator" collector/data/openapi.json
