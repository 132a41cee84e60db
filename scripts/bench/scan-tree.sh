#!/usr/bin/env bash
# Benchmarks 2 and 3a: a 200,000-file tree of ordinary small files (20 % named .bin/.dat).
#  - cold scan (empty state directory) against `find TREE -type f` (target: <= 3x), peak RSS
#    (target: <= 64 MiB);
#  - rescan with the state kept (target: 0 bytes hashed, <= 25 % of the cold time).
# Directory mtimes are moved an hour back first, as on any tree that was not written in the
# last two seconds (listing records younger than that are deliberately not trusted).
source "$(dirname "$0")/common.sh"
tree="$BENCH/tree200k"
if [ ! -d "$tree" ]; then
  python3 scripts/bench/make-tree.py "$tree" 200000
  find "$tree" -type d -exec touch -h -d '1 hour ago' {} +
fi
state="$BENCH/state-tree"
hyperfine -N -w 3 -r 20 --export-json "$BENCH/find.json" "find $tree -type f" >&2
hyperfine -N -w 1 -r 20 --prepare "rm -rf $state" --export-json "$BENCH/cold.json" \
  "$AGENT scan --only models --json --state-dir $state $tree" >&2
rm -rf "$state"
/usr/bin/time -f "%M" -o "$BENCH/cold.rss" "$AGENT" scan --only models --json --state-dir "$state" "$tree" >"$BENCH/cold-scan.json"
hyperfine -N -w 2 -r 20 --export-json "$BENCH/warm.json" "$AGENT scan --only models --json --state-dir $state $tree" >&2
/usr/bin/time -f "%M" -o "$BENCH/warm.rss" "$AGENT" scan --only models --json --state-dir "$state" "$tree" >"$BENCH/warm-scan.json"

find_s=$(hstat "$BENCH/find.json" 0 mean)
cold_s=$(hstat "$BENCH/cold.json" 0 mean)
warm_s=$(hstat "$BENCH/warm.json" 0 mean)
echo "tree: $(scanstat "$BENCH/cold-scan.json" files_seen) files, $(scanstat "$BENCH/cold-scan.json" candidates) candidates opened"
echo "tree: find $(python3 -c "print(f'{$find_s*1000:.0f}')") ms; cold scan $(python3 -c "print(f'{$cold_s*1000:.0f}')") ms = $(ratio "$cold_s" "$find_s") x find (target <= 3); peak RSS $(( $(cat "$BENCH/cold.rss") / 1024 )) MiB (target <= 64)"
echo "tree: rescan $(python3 -c "print(f'{$warm_s*1000:.0f}')") ms = $(python3 -c "print(f'{100*$warm_s/$cold_s:.0f}')") % of cold (target <= 25); bytes hashed $(scanstat "$BENCH/warm-scan.json" bytes_hashed); peak RSS $(( $(cat "$BENCH/warm.rss") / 1024 )) MiB"
