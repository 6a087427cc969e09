#!/usr/bin/env python3
"""Copies the Zhu et al. Fig. 2 campaign's state into docs/zhu2019-fashionmnist.md.

Run `noisescope plot results/zhu2019-fashionmnist` first: it writes the figure, table.md and
summary.json that this script reads. The page's units line and table sit between
`<!-- units:begin -->…<!-- units:end -->` and `<!-- table:begin -->…<!-- table:end -->`;
the figure is copied to docs/figures/zhu2019-fashionmnist.svg. The wall-time table between
`<!-- costs:begin -->…<!-- costs:end -->` and the paired comparisons between
`<!-- paired:begin -->…<!-- paired:end -->` (every dynamic with GD, and the paper's claim:
each noise aligned with H with each isotropic or diagonal noise) come from the units' own
metric lines.

    python3 scripts/zhu2019-page.py
"""

import json
import math
import re
import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "zhu2019-fashionmnist"
PAGE = ROOT / "docs" / "zhu2019-fashionmnist.md"
CONFIG = ROOT / "configs" / "zhu2019" / "fashionmnist-escape.toml"
SEEDS_PLANNED = 3  # the three seeds
_CAMPAIGN = tomllib.loads(CONFIG.read_text())
# The dynamics in the campaign config's order, and the steps between probe points.
ORDER = _CAMPAIGN["dynamics"]
BLOCK = _CAMPAIGN["run"]["probes"]["every"]


def seed_dirs() -> list[tuple[int, Path]]:
    """The campaign's seed-N folders, by N (other names are ignored)."""
    found = []
    for d in RESULTS.glob("seed-*"):
        tail = d.name.removeprefix("seed-")
        if d.is_dir() and tail.isdigit():
            found.append((int(tail), d))
    return sorted(found)


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def probe_points(seed_dir: Path, dyn: str) -> dict[int, dict]:
    """A unit's metric lines that hold a probe point, by step; {} without a unit."""
    metrics = seed_dir / dyn / "metrics.jsonl"
    if not metrics.is_file():
        return {}
    points = {}
    for line in metrics.read_text().splitlines():
        try:
            m = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a stop mid-write
        if "probes" in m and "step" in m:
            points[m["step"]] = m
    return points


def signed(x: float, digits: int) -> str:
    """+0.12 or −0.12 (the typographic minus of the page's prose; ±0 prints as +0.00)."""
    text = f"{x:+.{digits}f}"
    if float(text) == 0.0:
        text = "+" + text[1:]
    return text.replace("-", "\u2212")


def mean_and_se(xs: list[float]) -> tuple[float, float | None]:
    """The mean over the seeds and its standard error (None for one seed)."""
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1) / n)


def mean_se(xs: list[float], digits: int) -> str:
    """mean ± s.e. over the seeds (the mean alone for one seed)."""
    mean, se = mean_and_se(xs)
    if se is None:
        return signed(mean, digits)
    return f"{signed(mean, digits)} ± {se:.{digits}f}"


# The paper's claim compares the noises aligned with H (SGD, Hessian, leading, 1st eigenvector;
# `ggn` is ours) with isotropic and diagonal noise.
ALIGNED = [d for d in ("sgd", "lowrank-20", "hessian-20", "hessian-top1", "ggn") if d in ORDER]
BASELINES = [d for d in ("iso-const", "iso-dynamic", "diag") if d in ORDER]


def per_seed(diffs: list[float], pairs: list[tuple[dict, dict, str]]) -> str:
    """Each seed's difference, labelled with its seed: "+0.30 (0), +0.74 (1), …"."""
    return ", ".join(
        f"{signed(x, 2)} ({name.removeprefix('seed-')})" for x, (_, _, name) in zip(diffs, pairs)
    )


def t_ratio(xs: list[float]) -> str:
    """mean / s.e. over the seeds, the paired t statistic (– below two seeds)."""
    mean, se = mean_and_se(xs)
    return signed(mean / se, 1) if se else "–"


def paired() -> str:
    """Each dynamic against GD from the same seed's θ*, at the last step every unit has
    probed: the differences in test accuracy and in expected sharpness, mean ± s.e. over the
    seeds, the paired t statistic and the accuracy differences seed by seed. Then the claim's
    own comparison: each noise aligned with H against each isotropic or diagonal noise, in
    test accuracy, paired the same way, with the differences seed by seed."""
    seeds = [d for _, d in seed_dirs()]
    points = {(d.name, dyn): probe_points(d, dyn) for d in seeds for dyn in ORDER}
    started = [p for p in points.values() if p]
    if not started:
        return "\n(no unit has a probe point yet)\n"
    step = min(max(p) for p in started)

    def pairs_of(dyn: str, base: str) -> list[tuple[dict, dict, str]]:
        found = [
            (points[(d.name, dyn)].get(step), points[(d.name, base)].get(step), d.name)
            for d in seeds
        ]
        return [(a, b, name) for a, b, name in found if a and b]

    rows = []
    for dyn in (d for d in ORDER if d != "gd"):
        pairs = pairs_of(dyn, "gd")
        if not pairs:
            continue
        gain = [100 * (a["test_acc"] - g["test_acc"]) for a, g, _ in pairs]
        sharp = [a["probes"]["sharpness"] - g["probes"]["sharpness"] for a, g, _ in pairs]
        rows.append(
            f"| `{dyn}` | {len(pairs)} | {mean_se(gain, 2)} | {t_ratio(gain)} "
            f"| {per_seed(gain, pairs)} "
            f"| {mean_se(sharp, 5)} |"
        )
    head = (
        f"Paired with GD at step {step} (each dynamic minus GD from the same seed's θ*; mean ± "
        "s.e. over the seeds; t = mean / s.e.):\n\n"
        "| dynamic | seeds | test accuracy − GD's (points) | t | per seed (seed) | expected "
        "sharpness − GD's |\n|---|---:|---:|---:|---|---:|\n"
    )
    text = "\n" + head + "\n".join(rows) + "\n"
    claim = []
    for dyn in ALIGNED:
        cells = []
        for base in BASELINES:
            pairs = pairs_of(dyn, base)
            diff = [100 * (a["test_acc"] - b["test_acc"]) for a, b, _ in pairs]
            cells.append(
                f"{mean_se(diff, 2)} (t {t_ratio(diff)}; {per_seed(diff, pairs)})" if diff else "–"
            )
        claim.append(f"| `{dyn}` | " + " | ".join(cells) + " |")
    if claim and BASELINES:
        text += (
            f"\nThe claim's comparison at step {step}: test accuracy of each noise aligned with H "
            "minus that of each isotropic or diagonal noise, paired by seed (points, mean ± "
            "s.e., t; then each seed's difference (seed)):\n\n| dynamic | "
            + " | ".join(f"− `{b}`" for b in BASELINES)
            + " |\n|---|"
            + "---:|" * len(BASELINES)
            + "\n"
            + "\n".join(claim)
            + "\n"
        )
    return text


def costs() -> str:
    """Wall time per dynamic from every unit's metrics.jsonl.

    A unit's `time_s` is its clock since step 0, summed over resumed runs; `probe_time_s` is
    the probe point logged on that line. A block's time is the clock's increase from one probe
    point to the next less the later point's probe time: the steps, plus the evaluation logged
    at the point (test and training sets), the checkpoint writes and, where a process resumed,
    its start-up. The clocks count whatever else shared the machine (builds, tests, paused
    processes), so the fastest block is the cleanest figure and the total is an upper bound.
    """
    rows = []
    for dyn in ORDER:
        blocks, probes, totals, seeds = [], [], [], 0
        for _, seed_dir in seed_dirs():
            points = {
                step: m
                for step, m in probe_points(seed_dir, dyn).items()
                if "time_s" in m and "probe_time_s" in m and step % BLOCK == 0
            }
            if not points:
                continue
            seeds += 1
            probes += [m["probe_time_s"] for m in points.values()]
            for step, m in points.items():
                before = points.get(step - BLOCK)
                if before is not None:
                    blocks.append((m["time_s"] - before["time_s"] - m["probe_time_s"]) / BLOCK)
            totals.append(max(m["time_s"] for m in points.values()) / 3600)
        if not blocks:
            continue
        rows.append(
            f"| `{dyn}` | {seeds} | {len(blocks)} | {min(blocks):.3f} s | {median(blocks):.3f} s "
            f"| {min(probes):.0f} s | {median(probes):.0f} s | {sum(totals) / len(totals):.1f} h |"
        )
    head = (
        f"| dynamic | seeds | blocks of {BLOCK} steps | per step, fastest block | per step, median "
        "block | probe point, fastest | probe point, median | clock per unit (mean) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return "\n" + head + "\n".join(rows) + "\n"


def replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:begin -->)(.*?)(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        sys.exit(f"{PAGE}: no <!-- {name}:begin --> … <!-- {name}:end --> markers")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def main() -> None:
    try:
        summary = json.loads((RESULTS / "summary.json").read_text())
        table = (RESULTS / "table.md").read_text()
    except FileNotFoundError as e:
        sys.exit(f"{e.filename}: missing; run `noisescope plot {RESULTS}` first")
    units = summary["units"]
    planned = SEEDS_PLANNED * 9
    steps = [d["step"] for d in summary["dynamics"].values()]
    reached = f"; every started unit has reached step {min(steps)}" if steps else ""
    line = (
        f"{units['completed']} of {planned} units (3 seeds × 9 dynamics) have run their "
        f"{summary['steps']} steps; {units['started']} have started, on seeds "
        f"{', '.join(str(s) for s in summary['seeds'])}{reached}."
    )
    text = PAGE.read_text()
    text = replace(text, "units", line)
    # table.md: a first line about the units, a blank line, then the table.
    body = table.split("\n\n", 1)[1] if "\n\n" in table else table
    text = replace(text, "table", "\n" + body.rstrip("\n") + "\n")
    text = replace(text, "costs", costs())
    text = replace(text, "paired", paired())
    PAGE.write_text(text)
    shutil.copyfile(
        RESULTS / "figures" / "escape-seeds.svg",
        ROOT / "docs" / "figures" / "zhu2019-fashionmnist.svg",
    )
    print(f"{PAGE.relative_to(ROOT)}: {line}")


if __name__ == "__main__":
    main()
