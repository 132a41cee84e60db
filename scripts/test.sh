#!/usr/bin/env bash
# Every check and every test: formatting, clippy (-D warnings), unit, property and end-to-end
# tests, then the packages (built, installed, checked and purged as root). CI (.ci/run) runs
# exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# Each step says when it starts (seconds into the run), so a slow CI shows where its time went.
say() { echo "== [$(( $(date +%s) - START ))s] $*"; }

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

say "cargo fmt --check"
cargo fmt --all -- --check

# What is downloaded and installed rather than compiled (the Python venvs, Chromium, rpm) runs
# in the background while clippy and the build keep both cores busy; its log is shown when it
# is waited for, and a failure there fails the run. It goes in this order, one thing at a time
# (the apt installs must not race each other for dpkg's lock).
prep_log=$(mktemp)
(
  set -e
  echo "== python venv for the process tests (tests/process-requirements.txt, reused when unchanged)"
  scripts/process-venv.sh >/dev/null
  echo "== python venv for the owner test (tests/owner-*requirements.txt, reused when unchanged)"
  scripts/owner-venv.sh >/dev/null
  echo "== python venv with a real vulnerable package for the findings tests (tests/findings-requirements.txt)"
  scripts/findings-venv.sh >/dev/null
  echo "== python venv with the reference validators of the exports (tests/exports-requirements.txt)"
  scripts/exports-venv.sh >/dev/null
  echo "== Chromium (Debian) and a playwright venv for the dashboard's browser test (tests/browser-requirements.txt)"
  scripts/browser-venv.sh >/dev/null
  echo "== the API's OpenAPI document, by the reference validator (scripts/check-openapi.sh)"
  scripts/check-openapi.sh
  echo "== rpm and rpmbuild for the rpm owner test (Debian's rpm package)"
  command -v rpmbuild >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq rpm >/dev/null; }
  echo "== done in $(( $(date +%s) - START ))s from the start of the run"
) >"$prep_log" 2>&1 &
prep_pid=$!
say "in the background: python venvs, the OpenAPI validator, Chromium, rpm (pid $prep_pid)"

say "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "build binaries (the end-to-end tests run them)"
cargo build --workspace --bins --locked
say "the second agent build the self-update tests update to (scripts/build-agent-v2.sh)"
scripts/build-agent-v2.sh
say "waiting for the background preparation (its log follows)"
prep_rc=0
wait "$prep_pid" || prep_rc=$?
cat "$prep_log"
rm -f "$prep_log"
[ "$prep_rc" -eq 0 ] || { echo "the background preparation failed (exit $prep_rc)" >&2; exit 1; }
say "tests"
cargo test --workspace --locked
say "PostgreSQL: a fresh database (scripts/postgres-db.sh), dropped when the run ends"
PG_URL=$(scripts/postgres-db.sh create)
trap 'scripts/postgres-db.sh drop "$PG_URL" || true' EXIT
say "the store conformance suite and everything built on the store, against PostgreSQL"
AISCOUT_TEST_POSTGRES=$PG_URL cargo test -p aiscout-collector --lib --locked -- --include-ignored \
  store:: findings:: export:: cmdb:: ui:: api:: server:: grpc::
say "quickstart with its ports taken (scripts/test-quickstart.sh)"
scripts/test-quickstart.sh
say "packages: build .deb and .rpm, install, check, purge (scripts/test-packages.sh)"
scripts/test-packages.sh
say "deployment manifests: Kubernetes (kubernetes-validate, offline), macOS profiles (plistlib)"
scripts/test-manifests.sh
say "Ansible role, for real on this machine (-c local): installs, enrolls, idempotent, purged"
scripts/test-ansible.sh
say "done"
