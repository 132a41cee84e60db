#!/usr/bin/env python3
"""Writes a tree of ordinary small files for the scan benchmarks.

usage: make-tree.py DIR [FILES]

FILES (default 200,000) files spread over nested directories (about 100 files per directory,
three levels deep), 20 % of them named *.bin or *.dat with random bytes (the names a model
scanner has to open), the rest source, text, config and image-like files it should not.
Deterministic (seeded), so two runs give the same tree.
"""
import os
import random
import sys

ORDINARY = ["py", "txt", "json", "md", "c", "h", "html", "css", "js", "yaml", "png", "jpg", "csv", "log", "sh", "toml"]


def main() -> None:
    root = sys.argv[1]
    total = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    rnd = random.Random(20261125)
    per_dir = 100
    dirs = (total + per_dir - 1) // per_dir
    made = 0
    payload = rnd.randbytes(1 << 16)
    for d in range(dirs):
        path = os.path.join(root, f"a{d // 400:03d}", f"b{(d // 20) % 20:02d}", f"c{d % 20:02d}")
        os.makedirs(path, exist_ok=True)
        for i in range(per_dir):
            if made >= total:
                return
            if made % 5 == 0:
                name = f"blob{i}.{'bin' if i % 2 else 'dat'}"
            else:
                name = f"file{i}.{ORDINARY[(made + i) % len(ORDINARY)]}"
            size = rnd.randint(64, 4096)
            start = rnd.randint(0, len(payload) - size)
            with open(os.path.join(path, name), "wb") as f:
                f.write(payload[start:start + size])
            made += 1


if __name__ == "__main__":
    main()
