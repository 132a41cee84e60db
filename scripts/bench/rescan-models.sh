#!/usr/bin/env bash
# Benchmark 3b: a model corpus (about 2 GiB of safetensors, GGUF and NumPy files), cold scan
# then rescan (target: 0 bytes hashed, rescan <= 25 % of the cold time).
source "$(dirname "$0")/common.sh"
corpus="$BENCH/models"
if [ ! -d "$corpus" ]; then
  python3 - "$corpus" <<'PY'
import json, os, struct, sys
root = sys.argv[1]
os.makedirs(root)
rnd = os.urandom(1 << 24)
def fill(f, n):
    while n:
        k = min(n, len(rnd)); f.write(rnd[:k]); n -= k
for i in range(8):  # safetensors, 128 MiB each
    n = 128 * 2**20
    h = json.dumps({"w": {"dtype": "F32", "shape": [n // 4], "data_offsets": [0, n]}}).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(f"{root}/model-{i}.safetensors", "wb") as f:
        f.write(len(h).to_bytes(8, "little")); f.write(h); fill(f, n)
for i in range(4):  # GGUF v3, one F32 tensor of 64 MiB
    n = 64 * 2**20
    def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    ti = s("w") + struct.pack("<I", 1) + struct.pack("<Q", n // 4) + struct.pack("<I", 0) + struct.pack("<Q", 0)
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + ti
    head += b"\0" * ((32 - len(head) % 32) % 32)
    with open(f"{root}/llm-{i}.gguf", "wb") as f:
        f.write(head); fill(f, n)
for i in range(8):  # NumPy, 32 MiB each
    n = 32 * 2**20
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % (n // 4)
    d += " " * (63 - (10 + len(d)) % 64) + "\n"
    with open(f"{root}/arr-{i}.npy", "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()); fill(f, n)
PY
  find "$corpus" -type d -exec touch -h -d '1 hour ago' {} +
fi
state="$BENCH/state-models"
hyperfine -N -w 1 -r 5 --prepare "rm -rf $state" --export-json "$BENCH/models-cold.json" \
  "$AGENT scan --only models --json --state-dir $state $corpus" >&2
rm -rf "$state"
"$AGENT" scan --only models --json --state-dir "$state" "$corpus" >"$BENCH/models-cold-scan.json"
hyperfine -N -w 2 -r 20 --export-json "$BENCH/models-warm.json" "$AGENT scan --only models --json --state-dir $state $corpus" >&2
"$AGENT" scan --only models --json --state-dir "$state" "$corpus" >"$BENCH/models-warm-scan.json"
cold_s=$(hstat "$BENCH/models-cold.json" 0 mean)
warm_s=$(hstat "$BENCH/models-warm.json" 0 mean)
echo "models: $(scanstat "$BENCH/models-cold-scan.json" models) models, $(( $(scanstat "$BENCH/models-cold-scan.json" bytes_hashed) / 1048576 )) MiB hashed cold in $(python3 -c "print(f'{$cold_s*1000:.0f}')") ms"
echo "models: rescan $(python3 -c "print(f'{$warm_s*1000:.1f}')") ms = $(python3 -c "print(f'{100*$warm_s/$cold_s:.1f}')") % of cold (target <= 25); bytes hashed $(scanstat "$BENCH/models-warm-scan.json" bytes_hashed); cache hits $(scanstat "$BENCH/models-warm-scan.json" hash_cache_hits)"
