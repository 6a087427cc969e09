#!/usr/bin/env bash
# Zhu et al. (2019) Fig. 2 as a CPU campaign (docs/zhu2019-fashionmnist.md): one `escape`
# process per seed, each pinned to one core, writing its units into
# results/zhu2019-fashionmnist/seed-N/<dynamic>/. Re-running continues every unfinished unit
# from its latest checkpoint, bit for bit, and skips finished ones; grow the campaign breadth
# first with --until.
#
#   scripts/zhu2019-campaign.sh [--until STEP] [--bin PATH] [--first-core K] SEED [SEED ...]
#
# e.g. scripts/zhu2019-campaign.sh --until 1000 0 1   (seeds 0 and 1 side by side, to step 1000)
#      scripts/zhu2019-campaign.sh --first-core 1 2   (seed 2 on core 1, beside a run on core 0)
#
# The i-th seed given runs on core (K + i) mod the number of cores (K = 0 by default).
# Without --bin the script builds and runs the release binary (`cargo build --release`).
#
# Each process runs on one core (taskset): the host kernels split their sums over the cores
# they see, so the thread count is part of a trajectory's bits. One core per process keeps a
# continuation on another machine identical to an uninterrupted run. For the same reason the
# matrix products stay in matrixmultiply (`--blas none`), the engine every unit started on,
# whether or not the machine has OpenBLAS (convyu's dense layers are small: it gains little).
set -euo pipefail
cd "$(dirname "$0")/.."

until_arg=()
bin=""
first_core=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --until) until_arg=(--until "$2"); shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --first-core) first_core="$2"; shift 2 ;;
        -h|--help) sed -n 2,20p "$0"; exit 0 ;;
        *) break ;;
    esac
done
if [[ $# -eq 0 ]]; then
    echo "usage: $0 [--until STEP] [--bin PATH] [--first-core K] SEED [SEED ...]" >&2
    exit 2
fi
if [[ -z "$bin" ]]; then
    # The release build: a unit runs days, and the dev build (our crates' overflow checks,
    # opt-level 1 outside the kernel crates) ran `hessian-20` up to 20% slower
    # (docs/performance.md, attempt 13).
    # Both builds give the same bits. Building burn a second time takes about 20 minutes once.
    cargo build --quiet --release
    bin="${CARGO_TARGET_DIR:-target}/release/noisescope"
fi
data="${NOISESCOPE_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd || true)}"
if [[ -z "$data" ]]; then
    echo "$0: set NOISESCOPE_DATA to the folder holding fashion-mnist (../shared/datasets)" >&2
    exit 2
fi
cores=$(nproc)
pids=()
i=0
for seed in "$@"; do
    out="results/zhu2019-fashionmnist/seed-$seed"
    mkdir -p "$out"
    core=$(((first_core + i) % cores))
    echo "seed $seed on core $core → $out (log: $out/campaign.log)"
    taskset -c "$core" "$bin" --quiet --blas none escape --config configs/zhu2019/fashionmnist-escape.toml \
        --data-dir "$data" --out "$out" --set "run.seed=$seed" "${until_arg[@]}" \
        >>"$out/campaign.log" 2>&1 &
    pids+=($!)
    i=$((i + 1))
done
status=0
for p in "${pids[@]}"; do
    wait "$p" || status=1
done
exit $status
