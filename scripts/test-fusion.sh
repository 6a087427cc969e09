#!/usr/bin/env bash
# The wgpu tests with burn's kernel fusion and autotune on (the `gpu-fusion` build), on the
# first wgpu adapter: lavapipe on a CPU-only machine, the GPU elsewhere. Not part of CI: the
# fusion build is a second burn build (see docs/performance.md for its time), so it runs here
# when the GPU build changes, or before a GPU call.
#
#   scripts/test-fusion.sh            # the five wgpu tests (every test whose name has "wgpu")
#   scripts/test-fusion.sh FILTER     # any other cargo test filter
#
# They cover what fusion could change: every zoo model's passes against f64 on the CPU, a
# training run against ndarray, the chunked reductions over axes longer than 2¹⁶ (wrong in
# one piece on lavapipe), the refusal of f64 on wgpu, the device listing and one shard per
# device.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/noisescope-target}"
export NOISESCOPE_REQUIRE_WGPU=1
# Autotune's cache for these runs, out of the user's own.
export NOISESCOPE_TUNE_CACHE="${NOISESCOPE_TUNE_CACHE:-$CARGO_TARGET_DIR/tune-cache-tests}"
export NOISESCOPE_DATA="${NOISESCOPE_DATA:-$(cd ../shared/datasets 2>/dev/null && pwd || true)}"
start=$(date +%s)
cargo test --workspace --no-fail-fast --features noisescope/gpu-fusion -- "${1:-wgpu}"
echo "test-fusion: passed in $(( $(date +%s) - start )) s (build included)"
