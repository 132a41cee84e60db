#!/usr/bin/env bash
# Fuzzes the model-format probers with cargo-fuzz (libFuzzer + AddressSanitizer).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to every file in agent/fuzz/fuzz_targets/.
# FUZZ_JOBS=N runs N targets at once (default 1; one libFuzzer process per core is the most
# that helps).
#
# Each run seeds agent/fuzz/corpus/<target>/ with the committed fixtures that fit the target
# (tests/fixtures/{models,hazards,decoys} and the MLflow MLmodel), then runs the target with
# memory and time bounds: an input that panics, takes more than 10 s, grows the process past
# 512 MB or makes a single allocation over 256 MB is a crash. libFuzzer writes it to
# agent/fuzz/artifacts/<target>/; the log of each run is agent/fuzz/logs/<target>.log.
# Exits non-zero, printing the artifact paths, if any target crashed.
#
# Only the stable toolchain is assumed: RUSTC_BOOTSTRAP=1 lets it take the nightly-only flags
# (-Zsanitizer) cargo-fuzz passes. The fuzz crate is its own workspace (agent/fuzz/Cargo.toml)
# and builds into agent/fuzz/target, never the shared target/.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_DIR=agent/fuzz
FIXTURES=tests/fixtures
LIBFUZZER_FLAGS=(-max_len=65536 -rss_limit_mb=512 -malloc_limit_mb=256 -timeout=10 -print_final_stats=1)

seconds=60
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
jobs=${FUZZ_JOBS:-1}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "FUZZ_JOBS must be a positive integer, not '$jobs'" >&2; exit 2; }

all_targets=()
for f in "$FUZZ_DIR"/fuzz_targets/*.rs; do
  all_targets+=("$(basename "$f" .rs)")
done
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  if [[ ! -f $FUZZ_DIR/fuzz_targets/$t.rs ]]; then
    echo "unknown fuzz target '$t'; targets: ${all_targets[*]}" >&2
    exit 2
  fi
done

export RUSTC_BOOTSTRAP=1
cargo=(cargo)
if command -v rustup >/dev/null 2>&1; then
  cargo=(cargo +stable)
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  "${cargo[@]}" install cargo-fuzz --locked
fi

# ---- seed corpora -------------------------------------------------------------------------

# Fixture files (models, hazards, decoys and the MLflow run) whose name matches a pattern.
fixtures() {
  local args=() p
  for p in "$@"; do
    args+=(${args[@]:+-o} -iname "$p")
  done
  find "$FIXTURES/models" "$FIXTURES/hazards" "$FIXTURES/decoys" "$FIXTURES/mlruns" -type f \( "${args[@]}" \) | sort
}

# Fixture files that start with a zip local-file or end-of-central-directory signature.
zip_fixtures() {
  local f
  find "$FIXTURES/models" "$FIXTURES/hazards" "$FIXTURES/decoys" -type f | sort | while read -r f; do
    if [[ $(head -c 2 "$f" | tr -d '\0') == PK ]]; then
      echo "$f"
    fi
  done
}

# The Keras configs of the fixtures: config.json of each .keras (unzipped into
# $FUZZ_DIR/corpus/.keras_config_seeds/, ignored like the corpus) and each Keras .h5 whole (its
# model_config JSON is inside).
keras_configs() {
  local f dir=$FUZZ_DIR/corpus/.keras_config_seeds
  mkdir -p "$dir"
  find "$FIXTURES" -name '*.keras' -type f | sort | while read -r f; do
    if unzip -p "$f" config.json >"$dir/$(basename "$f").config.json" 2>/dev/null; then
      echo "$dir/$(basename "$f").config.json"
    fi
  done
  find "$FIXTURES/safety" -name '*.h5' -type f | sort
}

# Real rpm headers (the blobs of an rpm SQLite database's Packages table): two small packages,
# one with an epoch and several files, built with rpmbuild and registered with
# `rpm --justdb` in a throwaway database under $FUZZ_DIR/corpus/.rpm_seeds/ (nothing is
# installed on the machine). Skipped, with a note, where rpm is missing.
rpm_headers() {
  local dir=$FUZZ_DIR/corpus/.rpm_seeds top db
  if ! command -v rpmbuild >/dev/null || ! command -v rpm >/dev/null; then
    echo "   rpm_header: rpm/rpmbuild missing (apt-get install rpm); no real headers seeded" >&2
    return 0
  fi
  rm -rf "$dir"
  mkdir -p "$dir/src"
  top=$(cd "$dir" && pwd)/top
  db=$(cd "$dir" && pwd)/db
  echo "weights" >"$dir/src/model.pkl"
  cat >"$dir/a.spec" <<SPEC
Name: aiscout-seed-a
Version: 1.2
Release: 3
Epoch: 4
Summary: fuzz seed
License: MIT
BuildArch: noarch
%description
fuzz seed with an epoch and several files
%install
mkdir -p %{buildroot}/usr/share/aiscout-seed-a/sub
cp $(cd "$dir/src" && pwd)/model.pkl %{buildroot}/usr/share/aiscout-seed-a/model.pkl
cp $(cd "$dir/src" && pwd)/model.pkl %{buildroot}/usr/share/aiscout-seed-a/sub/other.bin
%files
/usr/share/aiscout-seed-a
SPEC
  sed -e 's/aiscout-seed-a/aiscout-seed-b/g; s/^Epoch: 4$//; s/^Version: 1.2$/Version: 0.9~rc1/' "$dir/a.spec" >"$dir/b.spec"
  for spec in a b; do
    rpmbuild -bb --nodeps --quiet --define "_topdir $top" "$dir/$spec.spec" >/dev/null 2>&1 || return 0
  done
  rpm --dbpath "$db" --initdb >/dev/null 2>&1 || return 0
  rpm --dbpath "$db" -i --justdb --nodeps --nosignature "$top"/RPMS/noarch/*.rpm >/dev/null 2>&1 || return 0
  python3 - "$db/rpmdb.sqlite" "$dir" <<'PY'
import sqlite3, sys
db, out = sys.argv[1], sys.argv[2]
for i, (blob,) in enumerate(sqlite3.connect(db).execute("select blob from Packages")):
    with open(f"{out}/header-{i}.bin", "wb") as f:
        f.write(blob)
PY
  find "$dir" -maxdepth 1 -name 'header-*.bin' | sort
}

# Index into formats::FUZZ_NAMES (agent/src/formats/mod.rs) of the name that fits a fixture.
name_index() {
  case "$(basename "$1" | tr '[:upper:]' '[:lower:]')" in
    *.gguf) echo 0 ;;
    saved_model.pb) echo 1 ;;
    mlmodel) echo 2 ;;
    *.xml) echo 3 ;;
    *.safetensors) echo 4 ;;
    *.npy) echo 5 ;;
    *.npz) echo 6 ;;
    *.pt) echo 7 ;;
    *.pth) echo 8 ;;
    pytorch_model.bin) echo 9 ;;
    *.joblib) echo 10 ;;
    *.tflite) echo 11 ;;
    *.h5) echo 12 ;;
    *.keras) echo 13 ;;
    *.mlmodel) echo 14 ;;
    *.onnx) echo 15 ;;
    *.pkl) echo 16 ;;
    *.pickle) echo 17 ;;
    *) echo 19 ;;
  esac
}

# Index into NAMES in fuzz_targets/safety.rs of the name that fits a fixture.
safety_index() {
  case "$(basename "$1" | tr '[:upper:]' '[:lower:]')" in
    *.pkl | *.pickle) echo 0 ;;
    *.pt | *.pth) echo 1 ;;
    *.joblib) echo 2 ;;
    *.npy) echo 3 ;;
    *.npz) echo 4 ;;
    *.h5) echo 5 ;;
    *.keras) echo 6 ;;
    saved_model.pb) echo 7 ;;
    *.onnx) echo 8 ;;
    *.7z) echo 9 ;;
    mlmodel) echo 11 ;;
    *.gguf) echo 12 ;;
    *) echo 10 ;;
  esac
}

# seed TARGET: copies the files named on stdin into the target's corpus.
seed() {
  local target=$1 dir=$FUZZ_DIR/corpus/$1 f dest n=0
  mkdir -p "$dir"
  while read -r f; do
    [[ -f $f ]] || continue
    dest=$dir/seed-$(echo "${f#"$FIXTURES"/}" | tr '/' '_')
    if [[ $target == identify_all ]]; then
      { printf "\\x$(printf %02x "$(name_index "$f")")"; cat "$f"; } >"$dest"
    elif [[ $target == safety ]]; then
      { printf "\\x$(printf %02x "$(safety_index "$f")")"; cat "$f"; } >"$dest"
    else
      cp "$f" "$dest"
    fi
    n=$((n + 1))
  done
  echo "   $target: $n seeds"
}

seed_target() {
  case "$1" in
    gguf) fixtures '*.gguf' ;;
    tf_savedmodel) fixtures '*.pb' ;;
    mlflow) fixtures 'MLmodel' '*.yaml' ;;
    openvino) fixtures '*.xml' ;;
    safetensors) fixtures '*.safetensors' '*.safetensors.index.json' ;;
    numpy) fixtures '*.npy' ;;
    zip) zip_fixtures ;;
    pytorch_legacy) fixtures '*.pt' '*.pth' '*.pkl' '*.pickle' ;;
    joblib) fixtures '*.joblib' ;;
    tflite) fixtures '*.tflite' ;;
    keras_h5) fixtures '*.h5' '*.hdf5' ;;
    coreml) fixtures '*.mlmodel' ;;
    onnx) fixtures '*.onnx' ;;
    pickle | pickle_walk) fixtures '*.pkl' '*.pickle' 'sk_plain.joblib' 'legacy.pt' 'notes.pt' ;;
    identify_all) find "$FIXTURES/models" "$FIXTURES/hazards" "$FIXTURES/decoys" -type f | sort; fixtures 'MLmodel' ;;
    safety) find "$FIXTURES/safety" -type f -size -64k ! -name '*.json' ! -name '*.md' | sort ;;
    # Whole GGUFs read as text still hold their templates; libFuzzer finds the rest.
    chat_template) find "$FIXTURES/safety" -name 'chat_template*.gguf' | sort ;;
    keras_config) keras_configs ;;
    # The snapshot blobs of the remote-code fixtures: config.json and modeling sources.
    remote_code) find "$FIXTURES/safety" -path '*/blobs/*' -type f -size -64k | sort ;;
    archive) find "$FIXTURES/safety" "$FIXTURES/decoys" -type f -size -64k \( -name '*.zip' -o -name '*.tar' -o -name '*.7z' \
      -o -name '*.bz2' -o -name '*.mar' -o -name '*.nemo' -o -name '*.skops' -o -name '*.bin' -o -name '*.pt' \) | sort ;;
    rpm_header) rpm_headers ;;
    *) ;;
  esac | seed "$1"
}

echo "== seeding $FUZZ_DIR/corpus/ from $FIXTURES"
for t in "${targets[@]}"; do
  seed_target "$t"
done

# ---- build and run ------------------------------------------------------------------------

echo "== building fuzz targets (cargo-fuzz, stable + RUSTC_BOOTSTRAP=1, into $FUZZ_DIR/target)"
(cd agent && "${cargo[@]}" fuzz build)

mkdir -p "$FUZZ_DIR/logs"

# run_target TARGET: runs one target for $seconds; its exit status is libFuzzer's.
run_target() {
  local t=$1 log=$FUZZ_DIR/logs/$1.log
  (cd agent && "${cargo[@]}" fuzz run "$t" -- -max_total_time="$seconds" "${LIBFUZZER_FLAGS[@]}") >"$log" 2>&1
}

# report TARGET STATUS: prints the run's summary, or the crash and its artifact.
report() {
  local t=$1 rc=$2 log=$FUZZ_DIR/logs/$1.log done_line execs
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}' || true)
  if [[ $rc -eq 0 ]]; then
    echo "ok    $t: ${execs:-?} execs; ${done_line:-no DONE line}"
    return 0
  fi
  echo "FAIL  $t (exit $rc), log: $log"
  grep -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|==ERROR|SUMMARY:' -A 2 "$log" | head -n 20 | sed 's/^/      /' || true
  if grep -q 'Test unit written to' "$log"; then
    grep -o 'Test unit written to .*' "$log" | sed 's/^Test unit written to /      artifact: /'
  else
    tail -n 20 "$log" | sed 's/^/      /'
  fi
  return 1
}

echo "== fuzzing ${#targets[@]} target(s), ${seconds}s each, $jobs at a time: ${LIBFUZZER_FLAGS[*]}"
failed=()
declare -A pid_target=()
finish_one() {
  local pid rc=0
  wait -n -p pid "${!pid_target[@]}" || rc=$?
  local t=${pid_target[$pid]}
  unset "pid_target[$pid]"
  report "$t" "$rc" || failed+=("$t")
}
for t in "${targets[@]}"; do
  while [[ ${#pid_target[@]} -ge $jobs ]]; do
    finish_one
  done
  run_target "$t" &
  pid_target[$!]=$t
done
while [[ ${#pid_target[@]} -gt 0 ]]; do
  finish_one
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "== crashes in: ${failed[*]} (inputs under $FUZZ_DIR/artifacts/; reproduce: cd agent && RUSTC_BOOTSTRAP=1 cargo +stable fuzz run TARGET ARTIFACT)"
  exit 1
fi
echo "== no crashes"
