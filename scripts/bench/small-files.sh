#!/usr/bin/env bash
# Benchmark 3c: one `scan --only models` process over ~1,000 small model files (a few MB in
# all: pickles, safetensors, GGUF and NumPy files) against reading every byte once
# (`tar -cf - DIR | cat > /dev/null`), both from the page cache. Target: the scan within 2x.
# The scan starts with no state directory each run (a first scan: creating the state directory
# and its cache is part of the cost).
source "$(dirname "$0")/common.sh"
corpus="$BENCH/small-models"
if [ ! -d "$corpus" ]; then
  python3 - "$corpus" <<'PY'
import json, os, pickle, random, struct, sys
root = sys.argv[1]
rnd = random.Random(20261205)
def blob(n): return rnd.randbytes(n)
for i in range(1000):
    d = os.path.join(root, f"project{i // 100:02d}", f"run{(i // 10) % 10}")
    os.makedirs(d, exist_ok=True)
    n = rnd.randrange(1024, 8192) // 4 * 4
    kind = i % 4
    if kind == 0:  # a pickled state dict of plain lists (stdlib pickle, protocol 4)
        with open(f"{d}/model-{i}.pkl", "wb") as f:
            pickle.dump({"weights": [rnd.random() for _ in range(n // 8)], "step": i}, f, protocol=4)
    elif kind == 1:  # safetensors
        h = json.dumps({"w": {"dtype": "F32", "shape": [n // 4], "data_offsets": [0, n]}}).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(f"{d}/model-{i}.safetensors", "wb") as f:
            f.write(len(h).to_bytes(8, "little")); f.write(h); f.write(blob(n))
    elif kind == 2:  # GGUF v3 with one F32 tensor
        def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
        kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
        ti = s("w") + struct.pack("<I", 1) + struct.pack("<Q", n // 4) + struct.pack("<I", 0) + struct.pack("<Q", 0)
        head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + ti
        head += b"\0" * ((32 - len(head) % 32) % 32)
        with open(f"{d}/model-{i}.gguf", "wb") as f:
            f.write(head); f.write(blob(n))
    else:  # NumPy
        h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % (n // 4)
        h += " " * (63 - (10 + len(h)) % 64) + "\n"
        with open(f"{d}/arr-{i}.npy", "wb") as f:
            f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()); f.write(blob(n))
PY
fi
files=$(find "$corpus" -type f | wc -l)
bytes=$(du -sb "$corpus" | cut -f1)
state="$BENCH/state-small"
hyperfine -N -w 3 -r 20 --export-json "$BENCH/small-read.json" "bash -c 'tar -cf - $corpus | cat > /dev/null'" >&2
hyperfine -N -w 3 -r 20 --prepare "rm -rf $state" --export-json "$BENCH/small-scan.json" \
  "$AGENT scan --only models --json --state-dir $state $corpus" >&2
hyperfine -N -w 3 -r 20 --export-json "$BENCH/small-nocache.json" \
  "$AGENT scan --only models --json --no-cache $corpus" >&2
"$AGENT" scan --only models --json --no-cache "$corpus" >"$BENCH/small-scan-doc.json"
read_s=$(hstat "$BENCH/small-read.json" 0 mean)
scan_s=$(hstat "$BENCH/small-scan.json" 0 mean)
nocache_s=$(hstat "$BENCH/small-nocache.json" 0 mean)
ms() { python3 -c "print(f'{float(\"$1\")*1000:.1f}')"; }
echo "small files: $files files, $((bytes / 1024)) KiB, $(scanstat "$BENCH/small-scan-doc.json" models) models"
echo "small files: tar|cat $(ms "$read_s") ms; scan (new state dir) $(ms "$scan_s") ms = $(ratio "$scan_s" "$read_s") x (target <= 2); scan --no-cache $(ms "$nocache_s") ms = $(ratio "$nocache_s" "$read_s") x"
