#!/usr/bin/env python3
"""Join `noisescope bench --json FILE` with `torch_anchor.py --json FILE` and print, per
workload, the time ratio noisescope / PyTorch (eager, the fastest PyTorch method for the same
problem) next to the issue's target and to the floor (approx. FLOPs over this device's measured
matmul rate, bytes over its copy bandwidth, from noisescope's own HW rows).

Rows are matched on (workload, params_str): a noisescope row lists in `anchor` the PyTorch
`params_str` values it answers. Only rows with status "ok" and a median are compared.

usage: bench_ratio.py NOISESCOPE.json TORCH.json [--markdown OUT.md]
Standard library only, so it runs wherever torch_anchor.py runs.
"""

import json
import sys

# Ratio noisescope / PyTorch eager, at most (the GPU issue's table).
TARGETS = {"W1": 1.5, "W2": 1.0, "W3": 0.3, "W4": 1.0, "W5": 1.5, "W6": 1.5}


def load(path):
    with open(path) as f:
        doc = json.load(f)
    if "rows" not in doc:
        sys.exit(f"{path}: not a bench document (no 'rows')")
    return doc


def ok(row):
    return row.get("status") == "ok" and isinstance(row.get("median_ms"), (int, float))


def fmt(v, digits=3):
    if v is None:
        return "–"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if a < 1 else f"{v:.{max(0, digits - len(str(int(a))))}f}"


def floors(ours):
    """(FLOP/s, bytes/s) measured by noisescope's HW rows on its device."""
    rate = bw = None
    for r in ours["rows"]:
        if not ok(r) or r["workload"] != "HW":
            continue
        t = r.get("throughput", {})
        if t.get("unit") == "TFLOP/s":
            rate = t["value"] * 1e12
        elif t.get("unit", "").startswith("GB/s"):
            bw = t["value"] * 1e9
    return rate, bw


def floor_ms(row, rate, bw):
    extra = row.get("extra", {})
    flops, nbytes = extra.get("approx_flops"), extra.get("approx_bytes")
    parts = []
    if flops and rate:
        parts.append(flops / rate)
    if nbytes and bw:
        parts.append(nbytes / bw)
    return max(parts) * 1e3 if parts else None


def join(ours, torch):
    index = {}
    for t in torch["rows"]:
        if ok(t) and "compiled" not in t.get("name", ""):
            index.setdefault((t["workload"], t.get("params_str", "")), []).append(t)
    rate, bw = floors(ours)
    lines = []
    for r in ours["rows"]:
        if r["workload"] == "HW" or not ok(r):
            continue
        cands = [t for a in r.get("anchor", [r.get("params_str", "")]) for t in index.get((r["workload"], a), [])]
        # The anchor's W6 rows name the noisy and the plain step; compare like with like.
        if r["workload"] == "W6":
            plain = "reference" in r["name"]
            cands = [t for t in cands if ("reference" in t["name"]) == plain]
        best = min(cands, key=lambda t: t["median_ms"]) if cands else None
        ratio = r["median_ms"] / best["median_ms"] if best else None
        fl = floor_ms(r, rate, bw)
        lines.append(
            {
                "workload": r["workload"],
                "problem": r.get("params_str", ""),
                "ours": r["name"],
                "ours_ms": r["median_ms"],
                "torch": best["name"] if best else None,
                "torch_ms": best["median_ms"] if best else None,
                "ratio": ratio,
                "target": TARGETS.get(r["workload"]) if best and "reference" not in r["name"] else None,
                "floor_ms": fl,
                "over_floor": r["median_ms"] / fl if fl else None,
            }
        )
    # W3 end to end: per-sample gradients then the top-k of Σ₁, as each tool does it.
    for model in ("a", "b"):
        mine = [r for r in ours["rows"] if ok(r) and r["workload"] == "W3" and r.get("params", {}).get("model") == model]
        theirs = [t for t in torch["rows"] if ok(t) and t["workload"] == "W3" and t.get("params", {}).get("model") == model]
        ps = [r for r in mine if r["name"] == "per-sample grads (factored)"]
        top = [r for r in mine if r["name"].startswith("sigma top")]
        tps = [t for t in theirs if t["name"].startswith("per-sample grads")]
        ttop = [t for t in theirs if t["name"].startswith("sigma top")]
        if ps and top and tps and ttop:
            a = ps[0]["median_ms"] + top[0]["median_ms"]
            b = tps[0]["median_ms"] + ttop[0]["median_ms"]
            lines.append(
                {
                    "workload": "W3",
                    "problem": f"({model}) end to end: " + top[0].get("params_str", ""),
                    "ours": "factored grads + top-k",
                    "ours_ms": a,
                    "torch": "vmap(grad)->G + gram eigh",
                    "torch_ms": b,
                    "ratio": a / b,
                    "target": TARGETS["W3"],
                    "floor_ms": None,
                    "over_floor": None,
                }
            )
    return lines, rate, bw


def hardware(ours, torch):
    out = []
    for r in ours["rows"]:
        if r["workload"] != "HW" or not ok(r):
            continue
        ts = [t for t in torch["rows"] if ok(t) and t["workload"] == "HW" and t.get("params_str") == r.get("params_str")]
        best = min(ts, key=lambda t: t["median_ms"]) if ts else None
        out.append((r, best))
    return out


def render(ours, torch, lines, rate, bw):
    om, tm = ours.get("meta", {}), torch.get("meta", {})
    md = []
    md.append(f"noisescope: {om.get('backend')} on {om.get('device')} (quick={om.get('quick')})  ")
    md.append(f"PyTorch {tm.get('torch')} on {tm.get('device_name', tm.get('device'))} (quick={tm.get('quick')})  ")
    if om.get("quick") != tm.get("quick"):
        md.append("**warning: the two files were run at different sizes (quick differs)**  ")
    md.append(
        f"floor from noisescope's HW rows: matmul {fmt(rate / 1e12 if rate else None)} TFLOP/s, copy {fmt(bw / 1e9 if bw else None)} GB/s"
    )
    md.append("")
    md.append("| workload | problem | noisescope | ms | PyTorch (fastest eager) | ms | ratio | target | met | floor ms | × floor |")
    md.append("|---|---|---|---:|---|---:|---:|---:|---|---:|---:|")
    for l in lines:
        met = "" if l["target"] is None or l["ratio"] is None else ("yes" if l["ratio"] <= l["target"] else "**no**")
        md.append(
            f"| {l['workload']} | {l['problem']} | {l['ours']} | {fmt(l['ours_ms'])} | {l['torch'] or '–'} | {fmt(l['torch_ms'])} "
            f"| {fmt(l['ratio'])} | {fmt(l['target'])} | {met} | {fmt(l['floor_ms'])} | {fmt(l['over_floor'])} |"
        )
    hw = hardware(ours, torch)
    if hw:
        md.append("")
        md.append("| hardware | noisescope | PyTorch | ratio of rates |")
        md.append("|---|---:|---:|---:|")
        for r, t in hw:
            mine = r["throughput"]
            theirs = t.get("throughput", {}) if t else {}
            ratio = mine["value"] / theirs["value"] if theirs.get("value") else None
            md.append(
                f"| {r['name']} {r['params_str']} | {fmt(mine['value'])} {mine['unit']} | "
                f"{fmt(theirs.get('value'))} {theirs.get('unit', '')} | {fmt(ratio)} |"
            )
    return "\n".join(md)


def take_markdown(argv):
    """(the file name after --markdown or None, argv without the option and its value)."""
    if "--markdown" not in argv:
        return None, list(argv)
    i = argv.index("--markdown")
    if i + 1 >= len(argv):
        sys.exit("--markdown needs a file name")
    return argv[i + 1], argv[:i] + argv[i + 2 :]


def main(argv):
    out, rest = take_markdown(argv[1:])
    args = [a for a in rest if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    ours, torch = load(args[0]), load(args[1])
    lines, rate, bw = join(ours, torch)
    text = render(ours, torch, lines, rate, bw)
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
