#!/usr/bin/env bash
# The checks that need a GPU, in one call on a machine with an NVIDIA GPU (the device tool):
#   - the models' wgpu checks (f32 products of every zoo model against f64 ndarray);
#   - `noisescope data info` and `noisescope bench` on wgpu, and bench on ndarray for a
#     same-machine baseline.
# Prepared here, on the CPU machine, from the repository root:
#   mkdir -p .gpu && gzip -c $TARGET/debug/noisescope > .gpu/noisescope.gz
#   gzip -c $(cargo test -p noisescope-models --lib --no-run 2>&1 | grep -o '/[^ )]*noisescope_models-[0-9a-f]*') > .gpu/models-tests.gz
#   and the Vulkan loader's .debs in .gl (see the device tool's README); both folders are
#   listed in .git/info/exclude and named in the call's `carry`.
# Results land in $OUT (or /tmp/gpu-out).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT" /tmp/bin
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
for b in .gpu/*.gz; do
  gunzip -c "$b" > "/tmp/bin/$(basename "$b" .gz)" && chmod +x "/tmp/bin/$(basename "$b" .gz)"
done
nvidia-smi -L || true

step() { echo; echo "== $1 ($(date +%T))"; }
step "wgpu adapter and data info"
timeout 300 /tmp/bin/noisescope data info mnist-small --backend wgpu 2>&1 | head -8
step "models: wgpu f32 checks against f64 ndarray"
NOISESCOPE_REQUIRE_WGPU=1 timeout 300 /tmp/bin/models-tests backends 2>&1 | tail -5
step "bench on wgpu"
timeout 300 /tmp/bin/noisescope bench --backend wgpu 2>&1 | tee "$OUT/bench-wgpu.txt"
step "bench on ndarray, same machine"
timeout 300 /tmp/bin/noisescope bench 2>&1 | tee "$OUT/bench-ndarray.txt"
step "done"
