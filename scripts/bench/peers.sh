#!/usr/bin/env bash
# Run the peer model scanners and aiscout over a safety corpus, then print one
# Markdown table (scripts/bench/peers_table.py).
#
# Usage: bash scripts/bench/peers.sh [CORPUS_DIR]     (default: tests/fixtures/safety)
#
# Peers, pinned in scripts/bench/peers-requirements.txt and installed into
# var/peers-venv, except modelaudit, pinned in scripts/bench/peers-modelaudit-requirements.txt
# and installed into var/peers-modelaudit-venv (it needs numpy 2, modelscan numpy 1.26).
# Each venv is rebuilt when its file changes; the install time is written to
# var/bench/peers/install.txt:
#   picklescan  one process: picklescan -p DIR -l DEBUG (DEBUG gives the
#               "Scanning file" lines that attribute a crash to a file)
#   modelscan   one process: modelscan -p DIR -r json -o modelscan.json --show-skipped
#   fickling    one process: a Python loop over every file under DIR that routes
#               each file the way fickling's own multi-file CLI mode
#               (fickling.cli._scan_huggingface) does: find_file_properties, then
#               loader.scan_zip_archive / loader.scan_file (graceful=True), which
#               call fickling.analysis.check_safety on each pickle.
#   modelaudit  one process: modelaudit scan DIR --format json --output modelaudit.json
#               --no-cache (no result cache, so every run scans), telemetry off
#               (PROMPTFOO_DISABLE_TELEMETRY=1, NO_ANALYTICS=1). A file counts as
#               flagged when the report has an issue of severity warning or critical
#               located in it or in a member of it (the issues behind its exit code 1).
#   aiscout     target/release/aiscout-agent check --json DIR, built first with cargo
#               unless $AISCOUT_AGENT names a binary (a missing one shows as "not built").
# Every run is timed (wall clock of the one process) and limited to
# $PEERS_TIMEOUT seconds (default 900).
# Raw outputs: var/bench/peers/ ($PEERS_OUT). The table goes to stdout and table.md.
#
# The tools only read the files. Nothing here loads or unpickles the corpus.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CORPUS="$(cd "${1:-$ROOT/tests/fixtures/safety}" && pwd)"
VENV="$ROOT/var/peers-venv"
REQ="$ROOT/scripts/bench/peers-requirements.txt"
MA_VENV="$ROOT/var/peers-modelaudit-venv"
MA_REQ="$ROOT/scripts/bench/peers-modelaudit-requirements.txt"
OUT="${PEERS_OUT:-$ROOT/var/bench/peers}"
AGENT="${AISCOUT_AGENT:-$ROOT/target/release/aiscout-agent}"
TIMEOUT="${PEERS_TIMEOUT:-900}"
PYTHON="${PYTHON:-python3}"   # modelscan 0.8.8 wants Python 3.10-3.12

mkdir -p "$OUT"
rm -f "$OUT"/*.out "$OUT"/*.err "$OUT"/*.rc "$OUT"/*.time "$OUT"/*.json "$OUT"/aiscout.missing

source "$ROOT/scripts/venv.sh"
# install_venv LABEL VENV REQ: ensure_venv; after a fresh install, LABEL's lines in
# install.txt are replaced (the other venv's lines stay)
install_venv() {
    local label=$1 venv=$2 req=$3
    ensure_venv "$label" "$venv" "$req"
    [ -n "$VENV_INSTALL_SECONDS" ] || return 0
    touch "$OUT/install.txt"
    grep -v "^$label: " "$OUT/install.txt" > "$OUT/install.txt.new" || true
    {
        echo "$label: pip install -r ${req#"$ROOT"/}: $VENV_INSTALL_SECONDS s"
        echo "$label: venv size: $(du -sh "$venv" | cut -f1)"
        echo "$label: packages: $("$venv/bin/python" -m pip list --format=freeze 2>/dev/null | wc -l)"
    } >> "$OUT/install.txt.new"
    mv "$OUT/install.txt.new" "$OUT/install.txt"
}
install_venv peers "$VENV" "$REQ"
install_venv peers-modelaudit "$MA_VENV" "$MA_REQ"
# versions VENV PACKAGE...: "package version" lines
versions() {
    "$1/bin/python" - "${@:2}" <<'PY'
import importlib.metadata as md
import sys
for p in sys.argv[1:]:
    print(f"{p} {md.version(p)}")
PY
}
{
    echo "python $("$VENV/bin/python" -c 'import sys; print(sys.version.split()[0])')"
    versions "$VENV" picklescan modelscan fickling py7zr h5py tensorflow-cpu numpy
    versions "$MA_VENV" modelaudit modelaudit-picklescan numpy | sed 's/^numpy /numpy (modelaudit venv) /'
} > "$OUT/versions.txt"

export TF_CPP_MIN_LOG_LEVEL=3 CUDA_VISIBLE_DEVICES="" PYTHONDONTWRITEBYTECODE=1
export PROMPTFOO_DISABLE_TELEMETRY=1 NO_ANALYTICS=1   # modelaudit sends usage telemetry by default
WORK="$(mktemp -d)"   # scratch cwd: no modelscan-settings.toml or other files get picked up
trap 'rm -rf "$WORK"' EXIT

# run_timed NAME CMD...: stdout -> NAME.out, stderr -> NAME.err, exit status -> NAME.rc,
# wall-clock seconds -> NAME.time
run_timed() {
    local name=$1 rc=0 t0 t1
    shift
    echo "peers: running $name" >&2
    t0=$(date +%s.%N)
    (cd "$WORK" && timeout "$TIMEOUT" "$@") > "$OUT/$name.out" 2> "$OUT/$name.err" || rc=$?
    t1=$(date +%s.%N)
    echo "$rc" > "$OUT/$name.rc"
    awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f\n", b-a}' > "$OUT/$name.time"
}

# load averages (1, 5, 15 min) around the runs: wall times compare only on a quiet machine
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" > "$OUT/load.txt"
run_timed picklescan "$VENV/bin/picklescan" -p "$CORPUS" -l DEBUG
run_timed modelscan "$VENV/bin/modelscan" -p "$CORPUS" -r json -o "$OUT/modelscan.json" --show-skipped

cat > "$OUT/fickling_scan.py" <<'PY'
# One process, every file under argv[1]; routing as in fickling.cli._scan_huggingface.
import json
import sys
import types
from pathlib import Path, PurePosixPath

# fickling.polyglot imports torch only for torch.serialization._is_zipfile; torch is
# not installed, so provide that function, with torch's own logic (the first four
# bytes are the zip local-header magic).
def _is_zipfile(f):
    start = f.tell()
    magic = f.read(4)
    f.seek(start)
    return magic == b"PK\x03\x04"

if "torch" not in sys.modules:
    torch = types.ModuleType("torch")
    serialization = types.ModuleType("torch.serialization")
    serialization._is_zipfile = _is_zipfile
    torch.serialization = serialization
    sys.modules["torch"] = torch
    sys.modules["torch.serialization"] = serialization

from fickling.analysis import Severity
from fickling.cli import HF_RAW_PICKLE_EXTENSIONS, HF_ZIP_PICKLE_EXTENSIONS
from fickling.loader import scan_file, scan_zip_archive
from fickling.polyglot import find_file_properties

root = Path(sys.argv[1])
records = []
for p in sorted(x for x in root.rglob("*") if x.is_file()):
    rec = {"path": p.relative_to(root).as_posix()}
    try:
        ext = PurePosixPath(p.name).suffix.lower()
        props = find_file_properties(str(p))
        if props["is_torch_zip"] or props["is_standard_zip"] or ext in HF_ZIP_PICKLE_EXTENSIONS:
            rec["route"] = "zip"
            results = list(scan_zip_archive(str(p), graceful=True).values())
        elif props["is_valid_pickle"] or ext in HF_RAW_PICKLE_EXTENSIONS:
            rec["route"] = "pickle"
            results = [scan_file(str(p), graceful=True)]
        elif props.get("is_7z") or props["is_tar"] or props["is_numpy_pickle"]:
            rec["route"] = "skipped: 7z/tar/numpy-pickle not supported"
            results = []
        else:
            rec["route"] = "skipped: not a pickle"
            results = []
        sev = max((r.severity for r in results), default=Severity.LIKELY_SAFE, key=lambda s: s.value[0])
        rec["severity"] = sev.name
        rec["flagged"] = sev.value[0] >= Severity.LIKELY_UNSAFE.value[0]
        rec["errors"] = [e for r in results for e in r.errors]
    except Exception as e:  # a crash on one file must not hide the others
        rec["crash"] = f"{type(e).__name__}: {e}"
    records.append(rec)
    print(json.dumps(rec), flush=True)
PY
run_timed fickling "$VENV/bin/python" "$OUT/fickling_scan.py" "$CORPUS"
run_timed modelaudit "$MA_VENV/bin/modelaudit" scan "$CORPUS" --format json --output "$OUT/modelaudit.json" --no-cache

if [ -z "${AISCOUT_AGENT:-}" ] && command -v cargo >/dev/null 2>&1; then
    (cd "$ROOT" && cargo build --release --locked --bin aiscout-agent >&2)
fi
if [ -x "$AGENT" ]; then
    run_timed aiscout "$AGENT" check --json "$CORPUS"
else
    echo "not built: $AGENT" > "$OUT/aiscout.missing"
fi

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.txt"

python3 "$ROOT/scripts/bench/peers_table.py" --corpus "$CORPUS" --results "$OUT" | tee "$OUT/table.md"
