#!/usr/bin/env python3
"""Copies the Zhu et al. Fig. 2 campaign's state into docs/zhu2019-fashionmnist.md.

Run `noisescope plot results/zhu2019-fashionmnist` first: it writes the figure, table.md and
summary.json that this script reads. The page's units line and table sit between
`<!-- units:begin -->…<!-- units:end -->` and `<!-- table:begin -->…<!-- table:end -->`;
the figure is copied to docs/figures/zhu2019-fashionmnist.svg.

    python3 scripts/zhu2019-page.py
"""

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "zhu2019-fashionmnist"
PAGE = ROOT / "docs" / "zhu2019-fashionmnist.md"
SEEDS_PLANNED = 3  # the three seeds


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
    PAGE.write_text(text)
    shutil.copyfile(
        RESULTS / "figures" / "escape-seeds.svg",
        ROOT / "docs" / "figures" / "zhu2019-fashionmnist.svg",
    )
    print(f"{PAGE.relative_to(ROOT)}: {line}")


if __name__ == "__main__":
    main()
