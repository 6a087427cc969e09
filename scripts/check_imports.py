#!/usr/bin/env python3
"""Checks that no source file of a crate imports, directly or through others, a file that
imports it back: the `crate::…` and `super::…` paths of every file (in `use` statements and
inline) are resolved to the files of the modules they name, and every cycle of that graph is
reported. Exit status 1 when there is one.

    scripts/check_imports.py [CRATE_DIR ...]     (default: every crates/*/)

Paths are read from the text (comments left out), so a path inside a string counts too; a
file's own inline modules belong to that file. Test code is left out: `#[cfg(test)] mod … {}`
blocks and `#[cfg(test)] mod x;` files (tests may import what they test, and helpers).
"""

import re
import sys
from pathlib import Path

USE = re.compile(r"\buse\s+((?:crate|super|self)\b[^;]*);", re.S)
INLINE = re.compile(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
COMMENT = re.compile(r"//[^\n]*")


TEST_ATTR = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*([;{])")


def without_tests(text):
    """`text` less its `#[cfg(test)] mod … { … }` blocks: tests may import what they test."""
    out, pos = [], 0
    for m in TEST_ATTR.finditer(text):
        if m.start() < pos or m.group(2) != "{":
            continue
        depth, j = 0, m.end() - 1
        for j in range(m.end() - 1, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
        out.append(text[pos : m.start()])
        pos = j + 1
    out.append(text[pos:])
    return "".join(out)


def test_only(text):
    """The modules a file declares as `#[cfg(test)] mod x;`: test helpers, not architecture."""
    return {m.group(1) for m in TEST_ATTR.finditer(text) if m.group(2) == ";"}


def expand(path):
    """`a::{b, c::{d, e}}` → [a::b, a::c::d, a::c::e] (aliases and globs dropped)."""
    path = re.sub(r"\s+", "", path)
    i = path.find("{")
    if i < 0:
        return [path.split(" as ")[0].removesuffix("::*")]
    depth, j = 0, i
    for j in range(i, len(path)):
        depth += {"{": 1, "}": -1}.get(path[j], 0)
        if depth == 0:
            break
    head, body, tail = path[:i], path[i + 1 : j], path[j + 1 :]
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(body[start:k])
            start = k + 1
    parts.append(body[start:])
    out = []
    for p in parts:
        if p and p != "self":
            out += expand(head + p + tail)
        elif p == "self":
            out.append(head.removesuffix("::"))
    return out


def modules(src):
    """Module path (tuple) → file, from the crate root's `mod` declarations down."""
    root = src / "lib.rs" if (src / "lib.rs").exists() else src / "main.rs"
    found = {}

    def walk(file, path):
        found[path] = file
        # A `#[path = "…"]` module or an inline one is not followed: it lives in this file.
        text = COMMENT.sub("", file.read_text())
        skip = test_only(text)
        for name in MOD.findall(without_tests(text)):
            if name in skip:
                continue
            base = file.parent if file.name in ("lib.rs", "main.rs", "mod.rs") else file.with_suffix("")
            for cand in (base / f"{name}.rs", base / name / "mod.rs"):
                if cand.exists():
                    walk(cand, path + (name,))
                    break

    walk(root, ())
    return found


def resolve(path, here, mods):
    """The file of the longest module prefix of a `crate::`/`super::`/`self::` path."""
    parts = path.split("::")
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    else:
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                base = base[:-1]
        rest = parts
    for n in range(len(rest), -1, -1):
        key = base + tuple(rest[:n])
        if key in mods:
            return mods[key]
    return None


def cycles(graph):
    """The strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def check(crate):
    src = crate / "src"
    mods = modules(src)
    graph = {}
    for path, file in mods.items():
        text = without_tests(COMMENT.sub("", file.read_text()))
        targets = set()
        for use in USE.findall(text):
            targets.update(expand(use))
        targets.update(INLINE.findall(text))
        deps = {resolve(t, path, mods) for t in targets}
        graph[file] = sorted(d for d in deps if d is not None and d != file and d.name not in ("lib.rs", "main.rs"))
    found = cycles(graph)
    for comp in found:
        names = [str(f.relative_to(crate.parent.parent)) for f in comp]
        print(f"{crate.name}: files importing each other: {', '.join(names)}")
        for f in comp:
            back = [str(d.relative_to(src)) for d in graph[f] if d in comp]
            print(f"  {f.relative_to(src)} imports {', '.join(back)}")
    return len(found)


def main():
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in sys.argv[1:]] or sorted(p for p in (root / "crates").iterdir() if (p / "src").is_dir())
    bad = sum(check(c.resolve()) for c in crates)
    if bad:
        print(f"{bad} import cycle(s)")
        return 1
    print(f"no import cycles in {len(crates)} crate(s)")
    # The binary is a thin shell (docs/architecture.md): reported, so that growth shows.
    lines = {c.name: sum(len(f.read_text().splitlines()) for f in (c / "src").rglob("*.rs")) for c in crates}
    if "cli" in lines and len(lines) > 1:
        print(f"crates/cli holds {lines['cli']} of {sum(lines.values())} Rust lines ({100 * lines['cli'] / sum(lines.values()):.1f}%; the rule is at most 25%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
