#!/usr/bin/env python3
"""Turn the outputs of scripts/bench/peers.sh into one Markdown table.

Usage: python3 scripts/bench/peers_table.py --corpus DIR --results var/bench/peers

One row per entry of DIR/expected.json (benign and hostile), one column per tool:
  ✓  flagged      · not flagged (or not scanned)      E  error / crash
A SavedModel directory entry takes the worst result over the files inside it
(✓ before E before ·).
Under the tables: the files where a peer and aiscout disagree (a peer flags a file
aiscout does not, or aiscout flags a benign file), then the hostile files no peer flags.

How each tool's output is read:
  picklescan  picklescan.out (CLI at -l DEBUG). A file is the one named by the last
              top-level "Scanning file <path>" line; every later line belongs to it.
              ✓: at least one "<id>: dangerous import '<module> <name>' FOUND" line
                 (picklescan's Dangerous level, which its "Dangerous globals" count
                 adds up; Suspicious globals are not counted).
              E: "ERROR: parsing pickle in <id>" (picklescan's scan_err), or the process
                 logged "Unhandled exception" while on the file, or it died before
                 reaching a file with an extension it scans.
              Warnings ("could not parse ... as pickle", "Invalid file ... in zip
              archive", "Invalid PyTorch magic number") are listed as notes, not E.
  modelscan   modelscan.json (-r json). ✓: any entry in "issues" (any severity,
              CRITICAL/HIGH/MEDIUM/LOW) whose source is the file or a member of it
              ("<file>:<member>"). E: any entry in "errors" for it. "skipped" entries
              are notes. No JSON at all: every row is E.
  fickling    fickling.out (one JSON record per file, see peers.sh).
              ✓: severity LIKELY_UNSAFE or higher (LIKELY_UNSAFE,
                 LIKELY_OVERTLY_MALICIOUS, OVERTLY_MALICIOUS).
              E: the scan raised, or fickling reported parse/read errors for the file
                 and did not flag it. Files fickling's routing skips are notes.
  modelaudit  modelaudit.json (scan --format json). An issue belongs to the file its
              "location" names, once the " (pos N)", " (decompressed)", " (layer: ...)"
              style suffixes are cut off; "<file>:<member>" and "<dir>/<file>" map to
              the entry as for modelscan. An issue located outside the corpus (ONNX
              external-data findings are located at the external path, e.g.
              /etc/passwd) belongs to the file of the issue before it in the report,
              which lists each file's issues together.
              ✓: any issue of severity warning or critical (what modelaudit's exit code 1
                 counts; info is not). The note column also gives critical alone.
              E: modelaudit marks the file with an operational error (file_metadata
                 "operational_error", or an asset of type "error") and did not flag it.
                 Inconclusive coverage ("analysis_incomplete") is a note. No JSON at
                 all: every row is E.
  aiscout     aiscout.out: `aiscout-agent check --json DIR`,
              {"files": [{"path", "verdict": safe|suspicious|dangerous|error, ...}]}.
              ✓: suspicious or dangerous. E: error. A missing binary or unparseable
              output prints "not built" in its column.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

TOOLS = ["picklescan", "modelscan", "fickling", "modelaudit", "aiscout"]
PEERS = TOOLS[:4]
FLAG, CLEAN, ERR = "✓", "·", "E"
# extensions picklescan's directory walk scans (scanner.py); others are never opened
PICKLESCAN_EXTS = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dat", ".data", ".zip", ".npz", ".7z"}


class Corpus:
    def __init__(self, root: Path):
        self.root = root
        exp = json.loads((root / "expected.json").read_text())
        self.rows = [dict(e, kind="benign", expect="safe") for e in exp["benign"]]
        self.rows += [dict(e, kind="hostile", expect=e["min_verdict"]) for e in exp["hostile"]]
        # longest first, so a member "a.pt:archive/data.pkl" or "dir/saved_model.pb" finds its entry
        self.paths = sorted((r["path"] for r in self.rows), key=len, reverse=True)

    def entry(self, reported: str) -> str | None:
        """The corpus entry a tool's path/id belongs to (absolute or relative, maybe with ':member')."""
        s = reported.strip()
        root = str(self.root)
        if s.startswith(root + "/"):
            s = s[len(root) + 1:]
        for p in self.paths:
            if s == p or s.startswith(p + ":") or s.startswith(p + "/"):
                return p
        # relative to some other directory (e.g. "tests/fixtures/safety/hostile/x.pkl")
        for p in self.paths:
            for sep in ("", ":", "/"):
                if ("/" + p + sep) in s and (sep or s.endswith("/" + p)):
                    return p
        return None


def combine(statuses) -> str:
    statuses = list(statuses)
    if FLAG in statuses:
        return FLAG
    if ERR in statuses:
        return ERR
    return CLEAN


class Result:
    def __init__(self, tool: str):
        self.tool = tool
        self.status: dict[str, list[str]] = {}
        self.notes: dict[str, set[str]] = {}
        self.available = True
        self.summary_note = ""
        self.time = None
        self.verdicts: dict[str, list[str]] = {}

    def add(self, entry: str | None, status: str):
        if entry is not None:
            self.status.setdefault(entry, []).append(status)

    def note(self, entry: str | None, text: str):
        if entry is not None:
            self.notes.setdefault(entry, set()).add(text)

    def get(self, entry: str) -> str:
        if not self.available:
            return "–"
        return combine(self.status.get(entry, [CLEAN]))


def read_time(results: Path, tool: str):
    f = results / f"{tool}.time"
    return float(f.read_text()) if f.exists() else None


def read_rc(results: Path, tool: str):
    f = results / f"{tool}.rc"
    return int(f.read_text()) if f.exists() else None


def parse_picklescan(corpus: Corpus, results: Path) -> Result:
    r = Result("picklescan")
    out = results / "picklescan.out"
    if not out.exists():
        r.available, r.summary_note = False, "no output"
        return r
    current = None
    reached: set[str] = set()
    crashed = False
    found_re = re.compile(r"^(.*): dangerous import '(.+)' FOUND")
    for line in out.read_text(errors="replace").splitlines():
        m = re.match(r"^Scanning file (.+?)( in (zip|7z) archive .+)?$", line)
        if m and not m.group(2):
            current = corpus.entry(m.group(1))
            if current:
                reached.add(current)
            continue
        m = found_re.match(line)
        if m:
            r.add(current, FLAG)
            continue
        if line.startswith("ERROR: parsing pickle in"):
            r.add(current, ERR)
            r.note(current, "parse error")
        elif line.startswith("Unhandled exception"):
            crashed = True
            r.add(current, ERR)
            r.note(current, "picklescan died here (Unhandled exception)")
        elif "could not parse" in line and "as pickle" in line:
            r.note(current, "warning: could not parse as pickle")
        elif line.startswith("Invalid file ") and " in zip archive " in line:
            r.note(current, "warning: " + line.split(":", 1)[-1].strip()[:80])
        elif "Invalid PyTorch magic number" in line:
            r.note(current, "warning: invalid PyTorch magic number")
    for row in corpus.rows:
        if row["path"] in reached:
            continue
        if crashed and Path(row["path"]).suffix in PICKLESCAN_EXTS:
            r.add(row["path"], ERR)
            r.note(row["path"], "not reached: picklescan died earlier")
        elif Path(row["path"]).suffix not in PICKLESCAN_EXTS or (corpus.root / row["path"]).is_dir():
            r.note(row["path"], "not scanned (extension)")
    r.time = read_time(results, "picklescan")
    return r


def parse_modelscan(corpus: Corpus, results: Path) -> Result:
    r = Result("modelscan")
    r.time = read_time(results, "modelscan")
    f = results / "modelscan.json"
    try:
        rep = json.loads(f.read_text())
    except (OSError, ValueError):
        for row in corpus.rows:
            r.add(row["path"], ERR)
        r.summary_note = f"no JSON report (exit {read_rc(results, 'modelscan')})"
        return r
    for issue in rep.get("issues", []):
        e = corpus.entry(issue.get("source", ""))
        r.add(e, FLAG)
        r.note(e, f"{issue.get('severity')}: {issue.get('module')}.{issue.get('operator')}")
    for err in rep.get("errors", []):
        e = corpus.entry(str(err.get("source", "")))
        if e is None and not err.get("source"):
            r.summary_note += f" global error: {err.get('description', '')[:100]};"
        r.add(e, ERR)
        r.note(e, f"error {err.get('category')}: {str(err.get('description', ''))[:90]}")
    skipped = rep.get("summary", {}).get("skipped", {}).get("skipped_files", [])
    for s in skipped:
        e = corpus.entry(str(s.get("source", "")))
        r.note(e, f"skipped {s.get('category')}: {str(s.get('description', ''))[:70]}")
    return r


def parse_fickling(corpus: Corpus, results: Path) -> Result:
    r = Result("fickling")
    r.time = read_time(results, "fickling")
    out = results / "fickling.out"
    seen = set()
    if out.exists():
        for line in out.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            e = corpus.entry(rec["path"])
            if e is None:
                continue
            seen.add(e)
            if "crash" in rec:
                r.add(e, ERR)
                r.note(e, "crash: " + rec["crash"][:90])
                continue
            if rec.get("flagged"):
                r.add(e, FLAG)
            elif rec.get("errors"):
                r.add(e, ERR)
            else:
                r.add(e, CLEAN)
            if rec.get("severity") not in (None, "LIKELY_SAFE"):
                r.note(e, rec["severity"])
            if rec.get("errors"):
                r.note(e, "errors: " + "; ".join(x[:70] for x in rec["errors"][:2]))
            if rec.get("route", "").startswith("skipped"):
                r.note(e, rec["route"])
    rc = read_rc(results, "fickling")
    if rc not in (0, None):
        r.summary_note = f"process exit {rc}"
        for row in corpus.rows:
            if row["path"] not in seen:
                r.add(row["path"], ERR)
                r.note(row["path"], "not reached: process died")
    return r


def modelaudit_location(location: str) -> str:
    """A modelaudit issue location without its " (pos 63)"-style suffixes."""
    return location.split(" (", 1)[0]


def parse_modelaudit(corpus: Corpus, results: Path) -> Result:
    r = Result("modelaudit")
    r.time = read_time(results, "modelaudit")
    try:
        rep = json.loads((results / "modelaudit.json").read_text())
    except (OSError, ValueError):
        for row in corpus.rows:
            r.add(row["path"], ERR)
        r.summary_note = f"no JSON report (exit {read_rc(results, 'modelaudit')})"
        return r
    root = str(corpus.root)
    rank = {"critical": 2, "warning": 1}
    worst: dict[str, tuple[int, str]] = {}  # entry -> most severe (rank, message) seen
    critical: set[str] = set()
    previous = None  # the entry of the last issue located inside the corpus
    for issue in rep.get("issues", []):
        loc = issue.get("location")
        if not isinstance(loc, str):
            continue
        loc = modelaudit_location(loc)
        e = corpus.entry(loc)
        if e is None and not loc.startswith(root + "/"):
            e = previous
        previous = e if e is not None else previous
        if e is None:
            continue
        sev = str(issue.get("severity", "")).lower()
        if sev in rank:
            r.add(e, FLAG)
            if sev == "critical":
                critical.add(e)
            msg = f"{sev}: {issue.get('rule_code') or ''} {str(issue.get('message', ''))[:70]}".replace("  ", " ")
            if worst.get(e, (0, ""))[0] < rank[sev]:
                worst[e] = (rank[sev], msg)
    for e, (_, msg) in worst.items():
        r.note(e, msg)
    scanned = set()
    outside = []  # operational errors on files that are not corpus entries (README.md)
    for path, meta in (rep.get("file_metadata") or {}).items():
        if not isinstance(meta, dict):
            continue
        e = corpus.entry(path)
        if e is None:
            if meta.get("operational_error"):
                outside.append(f"{Path(path).name} ({meta.get('operational_error_reason')})")
            continue
        scanned.add(e)
        if meta.get("operational_error"):
            r.add(e, ERR)
            r.note(e, f"operational error: {meta.get('operational_error_reason')}")
        elif meta.get("analysis_incomplete") or meta.get("scan_outcome") == "inconclusive":
            r.note(e, "inconclusive coverage")
    for asset in rep.get("assets", []):
        e = corpus.entry(str(asset.get("path", "")))
        if e is not None:
            scanned.add(e)
            if asset.get("type") == "error":
                r.add(e, ERR)
                r.note(e, "error asset")
    for row in corpus.rows:
        if row["path"] not in scanned:
            r.note(row["path"], "not scanned")
    hostile = sum(x["kind"] == "hostile" and x["path"] in critical for x in corpus.rows)
    benign = sum(x["kind"] == "benign" and x["path"] in critical for x in corpus.rows)
    r.summary_note = f"critical only: {hostile} hostile, {benign} benign"
    if outside:
        r.summary_note += f"; exit {read_rc(results, 'modelaudit')}: operational error on " + ", ".join(outside)
    return r


def parse_aiscout(corpus: Corpus, results: Path) -> Result:
    r = Result("aiscout")
    r.time = read_time(results, "aiscout")
    if (results / "aiscout.missing").exists():
        r.available, r.summary_note = False, "not built"
        return r
    try:
        doc = json.loads((results / "aiscout.out").read_text())
        files = doc["files"]
    except (OSError, ValueError, KeyError, TypeError):
        r.available = False
        r.summary_note = f"not built (the binary has no usable `check --json`: exit {read_rc(results, 'aiscout')})"
        return r
    for f in files:
        e = corpus.entry(str(f.get("path", "")))
        v = f.get("verdict")
        r.add(e, {"suspicious": FLAG, "dangerous": FLAG, "error": ERR}.get(v, CLEAN))
        if e is not None:
            r.verdicts.setdefault(e, []).append(v)
        for fd in f.get("findings", [])[:2]:
            r.note(e, f"{fd.get('severity')}: {fd.get('kind')} {str(fd.get('detail', ''))[:60]}")
    return r


def print_disagreements(corpus: Corpus, res: dict[str, Result]) -> None:
    """Files where a peer flags and aiscout does not, and benign files aiscout flags."""
    print("\n### Where a peer and aiscout disagree\n")
    if not res["aiscout"].available:
        print("aiscout was not run.")
        return
    lines = []
    for row in corpus.rows:
        if res["aiscout"].get(row["path"]) == FLAG:
            if row["kind"] == "benign":
                lines.append(f"* `{row['path']}` (benign): aiscout flags it, a false alarm")
            continue
        peers = [t for t in PEERS if res[t].get(row["path"]) == FLAG]
        if not peers:
            continue
        who = ", ".join(peers)
        if row["kind"] == "hostile":
            lines.append(f"* `{row['path']}` (hostile): flagged by {who}, not by aiscout")
        else:
            lines.append(f"* `{row['path']}` (benign): flagged by {who} (a false alarm), not by aiscout")
    hostile_beats = sum("(hostile)" in x for x in lines)
    aiscout_fa = sum("aiscout flags it" in x for x in lines)
    print(f"Hostile files a peer flags and aiscout does not: {hostile_beats}. "
          f"Benign files aiscout flags: {aiscout_fa}. "
          f"Benign files only peers flag: {len(lines) - hostile_beats - aiscout_fa}.\n")
    for x in lines:
        print(x)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--notes", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    corpus = Corpus(args.corpus.resolve())
    res = {
        "picklescan": parse_picklescan(corpus, args.results),
        "modelscan": parse_modelscan(corpus, args.results),
        "fickling": parse_fickling(corpus, args.results),
        "modelaudit": parse_modelaudit(corpus, args.results),
        "aiscout": parse_aiscout(corpus, args.results),
    }

    print(f"## Safety corpus: {corpus.root}\n")
    print("| file | expected | " + " | ".join(TOOLS) + " |")
    print("| --- | --- | " + " | ".join(":---:" for _ in TOOLS) + " |")
    for row in corpus.rows:
        cells = [res[t].get(row["path"]) for t in TOOLS]
        print(f"| `{row['path']}` | {row['expect']} | " + " | ".join(cells) + " |")

    benign = [r for r in corpus.rows if r["kind"] == "benign"]
    hostile = [r for r in corpus.rows if r["kind"] == "hostile"]
    print("\n| tool | hostile caught | false alarms on benign | errors (E) | wall time | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t in TOOLS:
        r = res[t]
        if not r.available:
            print(f"| {t} | {r.summary_note or 'not built'} | | | | |")
            continue
        caught = sum(r.get(x["path"]) == FLAG for x in hostile)
        fa = sum(r.get(x["path"]) == FLAG for x in benign)
        errs = sum(r.get(x["path"]) == ERR for x in corpus.rows)
        tm = f"{r.time:.2f} s" if r.time is not None else "?"
        print(f"| {t} | {caught}/{len(hostile)} | {fa}/{len(benign)} | {errs} | {tm} | {r.summary_note.strip()} |")
    if not res["aiscout"].available:
        print(f"\naiscout: {res['aiscout'].summary_note}")
    else:
        rank = {"safe": 0, "suspicious": 1, "dangerous": 2}
        ok = sum(
            max((rank.get(v, -1) for v in res["aiscout"].verdicts.get(x["path"], [])), default=-1) >= rank[x["expect"]]
            for x in hostile
        )
        print(f"\naiscout verdict at or above min_verdict: {ok}/{len(hostile)}")

    print_disagreements(corpus, res)

    missed = [x for x in hostile if all(res[t].get(x["path"]) != FLAG for t in PEERS)]
    print(f"\n### Hostile files no peer flags ({len(missed)})\n")
    if not missed:
        print("None.")
    for x in missed:
        print(f"* `{x['path']}` ({x['expect']}): {x['technique']}")
    for t in PEERS:
        only = [x["path"] for x in hostile if res[t].get(x["path"]) == FLAG
                and all(res[o].get(x["path"]) != FLAG for o in PEERS if o != t)]
        if only:
            print(f"\nOnly {t} flags: " + ", ".join(f"`{p}`" for p in only))

    if args.notes:
        print("\n### Notes per tool\n")
        for t in TOOLS:
            r = res[t]
            if not r.notes:
                continue
            print(f"**{t}**\n")
            for row in corpus.rows:
                n = r.notes.get(row["path"])
                if n:
                    print(f"* `{row['path']}`: " + "; ".join(sorted(n)))
            print()
    for name in ("versions.txt", "install.txt", "load.txt"):
        f = args.results / name
        if f.exists():
            print(f"{name}: " + "; ".join(line for line in f.read_text().splitlines() if line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
