#!/usr/bin/env bash
# The GPU check in one call, on a machine with an NVIDIA GPU (prepared by scripts/gpu-prepare.sh
# on a build machine; carry .gpu and .gl). Every step has a timeout, ≈ 11.5 minutes if all ran
# out (give the device call timeout_s = 600; step 5 runs last, so it is what a slow run loses);
# typically 7 minutes:
#   1. the wgpu test subset on the real GPU: the models crate's wgpu-vs-f64 tests, the CLI's
#      wgpu-vs-ndarray training run, and the bench's own checks;
#   2. `noisescope bench` on wgpu (Vulkan on the NVIDIA driver), JSON rows;
#   3. PyTorch's anchor on the same card, JSON rows;
#   4. one table: noisescope / PyTorch per workload (scripts/bench_ratio.py);
#   5. the online alignment probe's overhead on full MNIST (issue 8's 10% target), 300 steps.
# Results go to $OUT (or ./gpu-out): bench.json, torch.json, ratios.md, online-alignment/, logs.
# Set QUICK=1 for the anchor's quick sizes; BENCH_ARGS for extra bench options.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu-out}"
mkdir -p "$out"
log() { echo "[gpu-check $(date +%T)] $*"; }

# The Vulkan loader, if the machine has none.
if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'

# Unpacked outside the checkout, so that a later call does not carry 200 MB of binaries.
bin=/tmp/noisescope-gpu-bin
mkdir -p "$bin"
gunzip -c .gpu/noisescope.gz > "$bin/noisescope" && chmod +x "$bin/noisescope"
gunzip -c .gpu/models-tests.gz > "$bin/models-tests" && chmod +x "$bin/models-tests"
ns=$bin/noisescope
# Runtime paths: the checkout's datasets and the crates' folders (tests read CARGO_MANIFEST_DIR).
export NOISESCOPE_DATA=$PWD/datasets

status=0
log "devices"
"$ns" --backend wgpu data info mnist-small --json > "$out/wgpu-info.json" 2> "$out/wgpu-info.err" ||
    { log "wgpu found no usable adapter:"; cat "$out/wgpu-info.err"; status=1; }
grep -h '"device"' "$out/wgpu-info.json" 2>/dev/null

log "1/5 wgpu tests: models (f32 on the GPU against f64 on the CPU, every zoo model)"
NOISESCOPE_REQUIRE_WGPU=1 CARGO_MANIFEST_DIR=$PWD/crates/models timeout 120 "$bin/models-tests" backends --nocapture \
    2>&1 | tee "$out/models-tests.log" | tail -5
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

log "1/5 wgpu tests: the quickstart run on wgpu and on ndarray agree"
for b in ndarray wgpu; do
    timeout 60 "$ns" --backend "$b" -q train --config configs/quickstart.toml --set steps=200 \
        --out "$out/quickstart-$b" > "$out/quickstart-$b.log" 2>&1 || { log "train on $b failed"; status=1; }
done
python3 - "$out" <<'EOF' || status=1
import json, sys
out = sys.argv[1]
a, b = (json.load(open(f"{out}/quickstart-{k}/summary.json")) for k in ("ndarray", "wgpu"))
def flat(d, p=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, p + k + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield p + k, float(v)
fa, fb = dict(flat(a)), dict(flat(b))
keys = [k for k in fa if k in fb and ("loss" in k or "accuracy" in k) and "time" not in k]
bad = [(k, fa[k], fb[k]) for k in keys if k in fb and abs(fa[k] - fb[k]) > 1e-3 * max(1.0, abs(fa[k]))]
print(f"compared {len(keys)} loss/accuracy figures; {len(bad)} differ by more than 1e-3")
for k, x, y in bad[:10]:
    print(f"  {k}: ndarray {x} wgpu {y}")
sys.exit(1 if bad or not keys else 0)
EOF

log "2/5 noisescope bench on wgpu"
quick=(); [ "${QUICK:-0}" = 1 ] && quick=(--quick)
# shellcheck disable=SC2086
timeout 180 "$ns" --backend wgpu bench "${quick[@]}" --budget-s 150 ${BENCH_ARGS:-} --json "$out/bench.json" \
    2>&1 | tee "$out/bench.log" | tail -60
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

log "3/5 PyTorch anchor"
PYTHONUNBUFFERED=1 timeout 180 python3 .gpu/torch_anchor.py "${quick[@]}" --budget-s 150 --hard-limit-s 170 --json "$out/torch.json" \
    > "$out/torch.log" 2>&1 || status=1
tail -5 "$out/torch.log"

log "4/5 ratios"
python3 scripts/bench_ratio.py "$out/bench.json" "$out/torch.json" --markdown "$out/ratios.md" || status=1
log "5/5 online alignment probe on full MNIST (wgpu): probe time against training time"
timeout 90 "$ns" --backend wgpu -q train --config configs/wangwu/online-alignment-mnist.toml \
    --data-dir .gpu/datasets --set steps=300 --out "$out/online-alignment" \
    > "$out/online-alignment.log" 2>&1 || { log "online alignment run failed"; status=1; }
python3 - "$out/online-alignment/summary.json" <<'EOF' || status=1
import json, sys
t = json.load(open(sys.argv[1]))["time"]
print(f"train {t['train_s']:.2f} s, probes {t['probe_s']:.2f} s, eval {t['eval_s']:.2f} s: "
      f"probe overhead {100 * t['probe_s'] / t['train_s']:.0f}% of training")
EOF

log "done (status $status); files in $out"
exit $status
