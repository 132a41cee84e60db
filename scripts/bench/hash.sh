#!/usr/bin/env bash
# Benchmark 1: hashing one 2 GiB model file, aiscout against `openssl dgst -sha256`.
# Both read the same file from the page cache; the figure is throughput (GiB/s) and the ratio
# aiscout / openssl (target: >= 0.9).
source "$(dirname "$0")/common.sh"
file="$BENCH/big-2GiB.safetensors"
if [ ! -f "$file" ]; then
  python3 - "$file" <<'PY'
import json, os, sys
n = 2 * 1024**3 - 4096
h = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(len(h).to_bytes(8, "little")); f.write(h)
    chunk = os.urandom(1 << 24)
    left = n
    while left:
        f.write(chunk[:min(left, len(chunk))]); left -= min(left, len(chunk))
PY
fi
size=$(stat -c %s "$file")
hyperfine -N -w 1 -r 5 --export-json "$BENCH/hash.json" \
  "openssl dgst -sha256 $file" \
  "$AGENT scan --only models --no-cache --json $file" >&2
openssl_s=$(hstat "$BENCH/hash.json" 0 mean)
aiscout_s=$(hstat "$BENCH/hash.json" 1 mean)
gib=$(python3 -c "print($size / 2**30)")
echo "hash: file $(python3 -c "print(f'{$gib:.2f}')") GiB; openssl $(python3 -c "print(f'{$gib/$openssl_s:.2f}')") GiB/s; aiscout $(python3 -c "print(f'{$gib/$aiscout_s:.2f}')") GiB/s; ratio aiscout/openssl throughput $(ratio "$openssl_s" "$aiscout_s") (target >= 0.9)"
