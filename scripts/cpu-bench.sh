#!/usr/bin/env bash
# noisescope against PyTorch on this machine's CPU, in one script run (docs/performance.md):
# `noisescope bench` and ../shared/bench/torch_anchor.py at the same sizes, one after the
# other, each alone on the machine, then the ratio table of scripts/bench_ratio.py and
# noisescope's own CNN rows (no PyTorch twin).
#
#   scripts/cpu-bench.sh [--full] [--bin PATH] [--before PATH] [--python PY] [--out DIR]
#
#   --full      the anchor's full sizes (default: --quick, about 6 minutes in all)
#   --bin       the noisescope binary to time (default: cargo build, then the dev binary)
#   --before    a second noisescope binary, timed in the same run (a before/after table)
#   --python    a Python with torch; default: the virtual environment in
#               $NOISESCOPE_TORCH_VENV (default ~/.cache/noisescope-torch), created with
#               `pip install torch numpy` when missing (outside the repository; PyPI's Linux
#               wheel is large, a few GB with its CUDA libraries, and runs on the CPU too)
#   --out       where the JSON and markdown go (default bench-cpu/, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."

size=--quick
bin=""
before=""
python=""
out=bench-cpu
while [[ $# -gt 0 ]]; do
    case "$1" in
        --full) size=""; shift ;;
        --bin) bin="$2"; shift 2 ;;
        --before) before="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n 2,16p "$0"; exit 0 ;;
        *) echo "$0: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
anchor=../shared/bench/torch_anchor.py
if [[ ! -f "$anchor" ]]; then
    echo "$0: $anchor not found (the anchor lives in ../shared/bench/)" >&2
    exit 2
fi
if [[ -z "$bin" ]]; then
    cargo build --quiet
    bin="${CARGO_TARGET_DIR:-target}/debug/noisescope"
fi
for b in "$bin" ${before:+"$before"}; do
    [[ -x "$b" ]] || { echo "$0: $b is not an executable" >&2; exit 2; }
done
if [[ -z "$python" ]]; then
    venv="${NOISESCOPE_TORCH_VENV:-$HOME/.cache/noisescope-torch}"
    if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
        echo "setting up PyTorch in $venv (pip install torch numpy) …"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet torch numpy
    fi
    python="$venv/bin/python"
fi
"$python" -c "import torch" || { echo "$0: $python cannot import torch" >&2; exit 2; }
mkdir -p "$out"

echo "== noisescope ($bin) bench $size"
"$bin" --quiet bench $size --json "$out/noisescope.json" >"$out/noisescope.txt"
if [[ -n "$before" ]]; then
    echo "== before: noisescope ($before) bench $size"
    "$before" --quiet bench $size --json "$out/noisescope-before.json" >"$out/noisescope-before.txt"
fi
echo "== PyTorch anchor ($("$python" -c 'import torch; print(torch.__version__)'), --device cpu) $size"
"$python" "$anchor" $size --device cpu --json "$out/torch.json" >"$out/torch.txt" 2>&1

cnn_rows() {
    python3 - "$1" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
print()
print("| noisescope only | problem | row | median |")
print("|---|---|---|---:|")
for r in doc["rows"]:
    if r["workload"] == "CNN":
        ms = r.get("median_ms")
        print(f"| CNN | {r['params_str']} | {r['name']} | {ms:.1f} ms |" if ms else
              f"| CNN | {r['params_str']} | {r['name']} | {r.get('status')} |")
PY
}
if [[ -n "$before" ]]; then
    echo
    echo "## before ($before)"
    python3 scripts/bench_ratio.py "$out/noisescope-before.json" "$out/torch.json" \
        --markdown "$out/ratios-before.md"
    cnn_rows "$out/noisescope-before.json"
fi
echo
echo "## noisescope ($bin)"
python3 scripts/bench_ratio.py "$out/noisescope.json" "$out/torch.json" --markdown "$out/ratios.md"
cnn_rows "$out/noisescope.json"
echo
echo "JSON and markdown in $out/"
