#!/usr/bin/env python3
"""Import cycles between the modules (files) of a crate, from its `use` lines and paths.

Usage: scripts/module-cycles.py [SRC_DIR] [--tests]   (default agent/src)

A module is one file (`a/b.rs` or `a/b/mod.rs` is `a::b`). An edge A -> B is any path in A's
code that names B or an item in it: `crate::b::x`, `super::x`, `self::c::x`, or a bare
`c::x` naming a child module. Unit-test modules (`#[cfg(test)] mod tests { .. }` and files named
`tests.rs`/`tests/`) are left out unless --tests is given: they sit beside what they test.
Prints each cycle (a strongly connected component of more than one module) and their count,
twice: over every edge, then without the edges from a module to its own ancestors (a child
using its parent's types is its natural context; a cycle that remains runs between siblings or
across the tree). Exits 0: it measures, it does not judge.
"""
import os
import re
import sys


def module_of(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def strip_tests(text):
    # Drop `#[cfg(test)] mod NAME { ... }` blocks by brace matching.
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def inline_modules(text):
    """(start, end) of every inline `mod name { .. }` block."""
    spans = []
    for m in re.finditer(r"\bmod\s+\w+\s*\{", text):
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        spans.append((m.end(), j))
    return spans


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] if '"' not in line else line for line in text.splitlines())


def expand_use(tree):
    """`a::{b, c::{d}}` -> ["a::b", "a::c::d"] (enough for module resolution)."""
    tree = tree.strip()
    m = re.match(r"^(.*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p2 for p in parts if p.strip() for p2 in expand_use(prefix + p.strip())]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    with_tests = "--tests" in sys.argv
    src = args[0] if args else "agent/src"
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                mod = module_of(src, p)
                if not with_tests and (mod and mod[-1] == "tests" or "tests" in mod):
                    continue
                files[mod] = p
    modules = set(files)
    edges = {m: set() for m in modules}
    for mod, path in files.items():
        text = open(path, encoding="utf-8").read()
        if not with_tests:
            text = strip_tests(text)
        text = strip_comments(text)
        inline = inline_modules(text)
        paths = []
        for u in re.finditer(r"\buse\s+([^;]+);", text):
            depth = sum(1 for a, b in inline if a <= u.start() < b)
            paths += [(p, depth) for p in expand_use(u.group(1))]
        for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
            depth = sum(1 for a, b in inline if a <= m.start() < b)
            paths.append((m.group(1), depth))
        for p, depth in paths:
            p = re.sub(r"\s+as\s+\w+$", "", p.strip()).replace(" ", "")
            segs = [s for s in p.split("::") if s]
            if not segs:
                continue
            if segs[0] == "crate":
                base, segs = (), segs[1:]
            elif segs[0] in ("super", "self"):
                # `self`/`super` are relative to the module itself (a file `x.rs` is module x);
                # inside an inline `mod y { .. }` the first `super`s stay in the file.
                base, inner = mod, depth
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        if inner:
                            inner -= 1
                        else:
                            base = base[:-1]
                    segs = segs[1:]
                if inner:
                    continue
            elif mod + (segs[0],) in modules:
                base = mod
            else:
                continue
            target = base
            for s in segs:
                if target + (s,) in modules:
                    target = target + (s,)
                else:
                    break
            if target != mod and target in modules and target != ():
                edges[mod].add(target)
    report("every edge", modules, edges)
    upward = {m: {t for t in ts if t != m[: len(t)]} for m, ts in edges.items()}
    report("without child-to-ancestor edges", modules, upward)


def report(title, modules, edges):
    # Tarjan's strongly connected components.
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    for v in sorted(modules):
        if v not in index:
            visit(v)
    cycles = sorted((sorted("::".join(m) or "crate" for m in c) for c in sccs if len(c) > 1), key=len, reverse=True)
    print(f"== {title}")
    for c in cycles:
        print(f"cycle of {len(c)} modules: {' '.join(c)}")
    print(f"{len(cycles)} cycles, {sum(map(len, cycles))} modules in cycles, {len(modules)} modules")


if __name__ == "__main__":
    main()
