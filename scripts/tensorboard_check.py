#!/usr/bin/env python3
"""Reads noisescope's TensorBoard event files with TensorBoard's own reader and checks that
every value equals the run's metrics.jsonl.

    python scripts/tensorboard_check.py DIR

DIR is a run directory or an experiment's folder (every run under it is checked). For each
run, every number of every metric line (tagged with its JSON path joined by '/', e.g.
`probes/lambda_max`; `step` is the event's step) must be a scalar at that step whose value
is the line's value rounded to float32 (TensorBoard's `simple_value`), with no scalar the
lines do not hold; the run must also carry its provenance text. Needs `tensorboard` (pip).
Exits 1 on the first mismatch, naming the run, step and tag.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing import event_accumulator


def flatten(prefix, value, out):
    """The numbers of a metric line under their '/'-joined paths (as noisescope writes)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if prefix == "" and k == "step":
                continue
            flatten(f"{prefix}/{k}" if prefix else k, v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            flatten(f"{prefix}/{i}" if prefix else str(i), v, out)


def runs_under(root):
    for p in sorted([root, *root.rglob("*")]):
        if p.is_dir() and (p / "metrics.jsonl").is_file() and (p / "config.toml").is_file():
            yield p


def check_run(run):
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l]
    acc = event_accumulator.EventAccumulator(
        str(run), size_guidance={event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    tags = acc.Tags()
    got = {}
    for tag in tags["scalars"]:
        for e in acc.Scalars(tag):
            if (e.step, tag) in got:
                raise SystemExit(f"{run}: step {e.step}, {tag}: written twice")
            got[(e.step, tag)] = e.value
    expected = {}
    for line in lines:
        flat = {}
        flatten("", line, flat)
        for tag, v in flat.items():
            expected[(line["step"], tag)] = v
    for key, v in expected.items():
        if key not in got:
            raise SystemExit(f"{run}: step {key[0]}, {key[1]}: missing from the event file")
        want = float(np.float32(v))
        have = got[key]
        if not (have == want or (math.isnan(have) and math.isnan(want))):
            raise SystemExit(f"{run}: step {key[0]}, {key[1]}: {have!r} != {want!r} (JSONL {v!r})")
    extra = sorted(set(got) - set(expected))
    if extra:
        raise SystemExit(f"{run}: scalars the lines do not hold: {extra[:5]}")
    if lines and "provenance" not in tags["tensors"]:
        raise SystemExit(f"{run}: no provenance text (tensors: {tags['tensors']})")
    return len(expected)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = Path(sys.argv[1])
    runs = list(runs_under(root))
    if not runs:
        raise SystemExit(f"{root}: no run directory under it")
    total = 0
    for run in runs:
        n = check_run(run)
        total += n
        print(f"{run}: {n} values equal")
    print(f"{len(runs)} run(s), {total} values: every one equals metrics.jsonl")


if __name__ == "__main__":
    main()
