"""Fleet benchmarks driven by scripts/bench/fleet.sh (see there); stdlib only.

1. file-to-sighting latency: a new model file is written into a watched directory of a running
   agent daemon; the time until the collector's API lists its sighting.
2. idle footprint: the agent daemon's resident memory and CPU share over a window in which
   nothing changes on disk (runtimes collections and the watch still run).
"""

import json
import os
import struct
import sys
import time
import urllib.request


def api(port, token, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def sighted_paths(port, token):
    paths = set()
    assets = api(port, token, "/api/v1/assets?kind=model&limit=1000")["items"]
    for a in assets:
        detail = api(port, token, f"/api/v1/assets/{a['id']}")
        for s in detail["sightings_page"]["items"]:
            if s["removed_at_ms"] is None:
                paths.add(s["path"])
    return paths


def write_npy(path, n):
    """A valid NumPy .npy file (format 1.0) holding float32 values 0..n-1: distinct per n."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % n
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    with open(path + ".part", "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(struct.pack(f"<{n}f", *range(n)))
    os.rename(path + ".part", path)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return cpu, rss


def latency(port, token, root, runs):
    times = []
    for i in range(runs):
        path = os.path.join(root, f"new-{i}.npy")
        write_npy(path, 1000 + i)
        start = time.monotonic()
        while path not in sighted_paths(port, token):
            if time.monotonic() - start > 120:
                sys.exit(f"latency: {path} not sighted after 120 s")
            time.sleep(0.05)
        times.append(time.monotonic() - start)
    times.sort()
    print(f"latency: new model file to sighting in the API, {runs} files: "
          f"median {times[len(times) // 2]:.2f} s, max {times[-1]:.2f} s")


def idle(pid, seconds):
    cpu0, _ = proc_stat(pid)
    start = time.monotonic()
    peak = 0
    samples = []
    while time.monotonic() - start < seconds:
        time.sleep(1)
        _, rss = proc_stat(pid)
        samples.append(rss)
        peak = max(peak, rss)
    cpu1, rss = proc_stat(pid)
    wall = time.monotonic() - start
    print(f"idle: {wall:.0f} s window: CPU {100 * (cpu1 - cpu0) / wall:.3f} % of one core, "
          f"RSS mean {sum(samples) / len(samples) / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, end {rss / 1024:.1f} MiB")


def main():
    mode, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "latency":
        latency(port, token, sys.argv[4], int(sys.argv[5]))
    elif mode == "idle":
        idle(int(sys.argv[4]), float(sys.argv[5]))
    elif mode == "count":
        print(len(sighted_paths(port, token)))


if __name__ == "__main__":
    main()
