#!/usr/bin/env bash
# Benchmark 4: one runtime collection (`scan --only runtimes`) on a host with 500 more
# processes than it had, 20 of them Python processes with onnxruntime loaded and a model open (target:
# well under one second of CPU). Prints CPU seconds (user + system) and wall time.
source "$(dirname "$0")/common.sh"
python="$("$ROOT/scripts/process-venv.sh")"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
model="$ROOT/tests/fixtures/models/tiny.onnx"
for _ in $(seq 20); do
  "$python" "$ROOT/tests/procs/hold_onnx.py" "$model" >/dev/null &
  pids+=($!)
done
for _ in $(seq 480); do
  sleep 3600 &
  pids+=($!)
done
sleep 5  # let the Python processes import onnxruntime and open the model
out="$BENCH/runtimes.json"
"$AGENT" scan --json --only runtimes > "$out"
processes=$(scanstat "$out" processes)
ml=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['runtimes']))" "$out")
cpu=()
for _ in $(seq 10); do
  /usr/bin/time -f "%U %S" -o "$BENCH/time.txt" "$AGENT" scan --json --only runtimes > /dev/null
  cpu+=("$(awk '{print $1 + $2}' "$BENCH/time.txt")")
done
hyperfine -N -w 2 -r 10 --export-json "$BENCH/runtimes-hf.json" "$AGENT scan --json --only runtimes" >/dev/null
mean_cpu=$(printf '%s\n' "${cpu[@]}" | awk '{s += $1} END {printf "%.3f", s / NR}')
max_cpu=$(printf '%s\n' "${cpu[@]}" | sort -g | tail -1)
echo "runtimes: $processes processes examined, $ml reported (ML or servers)"
echo "runtimes: CPU per collection (user+sys, 10 runs) mean ${mean_cpu}s, max ${max_cpu}s"
echo "runtimes: wall mean $(python3 -c "import sys; print(f'{float(sys.argv[1]) * 1000:.0f}')" "$(hstat "$BENCH/runtimes-hf.json" 0 mean)") ms"
