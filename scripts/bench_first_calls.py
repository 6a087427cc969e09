#!/usr/bin/env python3
"""Side by side, per bench row, the first call (kernel compilation and, in a gpu-fusion build,
autotune's tuning included: what a user waits for at start-up) and the steady median of one
or more `noisescope bench --json FILE` documents, typically the plain and the gpu-fusion
build on one device.

Rows are matched on (workload, name, params_str). Each column is headed by the file's name and
its build (`gpu_fusion` in the document's meta).

usage: bench_first_calls.py BENCH.json [BENCH.json ...] [--markdown OUT.md]
Standard library only.
"""

import os
import sys

from bench_ratio import load, take_markdown


def key(row):
    return (row.get("workload"), row.get("name"), row.get("params_str"))


def ms(v):
    if not isinstance(v, (int, float)):
        return "–"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def main(argv):
    out, argv = take_markdown(argv)
    if not argv:
        sys.exit(__doc__)
    docs = [(p, load(p)) for p in argv]
    keys = []
    for _, d in docs:
        for r in d["rows"]:
            if key(r) not in keys:
                keys.append(key(r))
    heads = []
    for p, d in docs:
        meta = d.get("meta", {})
        build = "gpu-fusion" if meta.get("gpu_fusion") else "plain"
        heads.append(f"{os.path.basename(p)} ({build})")
    lines = [
        "| workload | row | params | "
        + " | ".join(f"{h}: first call ms | {h}: median ms" for h in heads)
        + " |",
        "|---|---|---|" + "---:|---:|" * len(heads),
    ]
    for k in keys:
        cells = []
        for _, d in docs:
            row = next((r for r in d["rows"] if key(r) == k), None)
            if row is None or row.get("status") != "ok":
                cells += [row.get("status", "–") if row else "–", "–"]
            else:
                cells += [ms(row.get("first_call_ms")), ms(row.get("median_ms"))]
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])
