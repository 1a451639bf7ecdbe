#!/usr/bin/env python3
"""Which files of src/ import which, and the circles among them.

Reads every `crate::a::b` path (in `use` lines and inline) and `super::` path in src/*.rs,
maps each to the file that defines the module, and prints the largest strongly connected
components (files that reach each other through imports) and the imports that run up the
layers. Usage: scripts/import-graph.py [--edges]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_files():
    """Module path (tuple) -> file path, for every .rs file under src/."""
    out = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, ROOT)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            out[tuple(rel)] = os.path.relpath(full, os.path.join(ROOT, ".."))
    return out


def resolve(path, mods):
    """The file of the longest module prefix of `path`."""
    for n in range(len(path), 0, -1):
        if tuple(path[:n]) in mods:
            return mods[tuple(path[:n])]
    return None


def strip_comments(text):
    return "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))


def expand_use(tree):
    """`a::{b, c::d}` -> [[a, b], [a, c, d]] (good enough for import graphs)."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)\{(.*)\}$", tree, re.S)
    if not m:
        return [[p for p in tree.split("::") if p and p != "self" and " as " not in p]]
    prefix = [p for p in m.group(1).split("::") if p]
    depth, cur, parts = 0, "", []
    for ch in m.group(2):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = p.strip().split(" as ")[0]
        if p:
            for e in expand_use(p):
                out.append(prefix + e)
    return out or [prefix]


def edges(mods):
    by_file = {v: k for k, v in mods.items()}
    result = {f: set() for f in by_file}
    for f, modpath in by_file.items():
        text = strip_comments(open(os.path.join(ROOT, "..", f)).read())
        # Stop at the unit tests: what tests import is not the module's dependency.
        text = text.split("#[cfg(test)]\nmod tests")[0]
        paths = []
        for m in re.finditer(r"\buse\s+(crate|super)::([^;]+);", text, re.S):
            base = [] if m.group(1) == "crate" else list(modpath[:-1] if not f.endswith("mod.rs") else modpath[:-1])
            for e in expand_use(m.group(2)):
                paths.append(base + e)
        for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
            paths.append(m.group(1).split("::"))
        for p in paths:
            target = resolve(p, mods)
            if target and target != f:
                result[f].add(target)
    return result


def sccs(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def folder(f):
    return os.path.dirname(f)


def main():
    mods = module_files()
    graph = edges(mods)
    comps = sorted(sccs(graph), key=len, reverse=True)
    cross = [c for c in comps if len(c) > 1]
    print(f"{len(graph)} files; circles (strongly connected components) of more than one file:")
    for c in cross:
        folders = sorted({folder(f) for f in c})
        print(f"  {len(c)} files over {len(folders)} folders: {', '.join(sorted(c))}")
    if not cross:
        print("  none")
    if "--edges" in sys.argv:
        for f in sorted(graph):
            for t in sorted(graph[f]):
                print(f"{f} -> {t}")


if __name__ == "__main__":
    main()
