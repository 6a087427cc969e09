#!/usr/bin/env bash
# The GPU check in one call, on a machine with an NVIDIA GPU (prepared by scripts/gpu-prepare.sh
# on a build machine; carry .gpu and .gl). Two builds are checked side by side: the default one
# ("plain") and `gpu-fusion` (burn's kernel fusion and autotune). Every step has a timeout,
# ≈ 9.8 minutes if all ran out (give the device call timeout_s = 600; step 5 runs last, so it
# is what a slow run loses):
#   1. the wgpu test subset on the real GPU, for both builds: the models crate's wgpu-vs-f64
#      tests and the CLI's wgpu-vs-ndarray training run (the bench's own checks run in 2);
#   2. `noisescope bench` on wgpu with each build, JSON rows (the fusion build's first calls
#      include autotune's tuning, from an empty cache under $OUT/tune-cache);
#   3. PyTorch's anchor on the same card, JSON rows;
#   4. two tables, noisescope / PyTorch per workload, one per build (scripts/bench_ratio.py),
#      and the first-call latencies of both builds side by side;
#   5. the online alignment probe's overhead on full MNIST (issue 8's 10% target), 300 steps,
#      when .gpu-data was carried (it does not fit beside both builds in one call).
# Results go to $OUT (or ./gpu-out): bench.json, bench-fusion.json, torch.json, ratios.md,
# ratios-fusion.md, first-calls.md, online-alignment/, logs. Set QUICK=1 for quick sizes
# (bench and anchor); BENCH_ARGS for extra bench options; BINS=plain or BINS=fusion for one
# build only.
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
read -r -a builds <<< "${BINS:-plain fusion}"
suffix() { if [ "$1" = fusion ]; then echo -fusion; fi; }
for b in "${builds[@]}"; do
    x=$(suffix "$b")
    for f in noisescope models-tests; do
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            ".gpu/$f$x.xz" "$bin/$f$x" && chmod +x "$bin/$f$x"
    done
done
ns=$bin/noisescope$(suffix "${builds[0]}")
# The fusion build's tuned kernels: an empty cache, so its first calls show the tuning cost.
export NOISESCOPE_TUNE_CACHE=$out/tune-cache
# Runtime paths: the checkout's datasets and the crates' folders (tests read CARGO_MANIFEST_DIR).
export NOISESCOPE_DATA=$PWD/datasets

status=0
log "devices"
"$ns" --backend wgpu data info mnist-small --json > "$out/wgpu-info.json" 2> "$out/wgpu-info.err" ||
    { log "wgpu found no usable adapter:"; cat "$out/wgpu-info.err"; status=1; }
grep -h '"device"' "$out/wgpu-info.json" 2>/dev/null

for b in "${builds[@]}"; do
    x=$(suffix "$b")
    log "1/5 wgpu tests ($b): models (f32 on the GPU against f64 on the CPU, every zoo model)"
    NOISESCOPE_REQUIRE_WGPU=1 CARGO_MANIFEST_DIR=$PWD/crates/models timeout 90 "$bin/models-tests$x" backends --nocapture \
        2>&1 | tee "$out/models-tests$x.log" | tail -5
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done

log "1/5 wgpu tests: the quickstart run on wgpu (each build) and on ndarray agree"
timeout 40 "$ns" --backend ndarray -q train --config configs/quickstart.toml --set steps=200 \
    --out "$out/quickstart-ndarray" > "$out/quickstart-ndarray.log" 2>&1 || { log "train on ndarray failed"; status=1; }
for b in "${builds[@]}"; do
    x=$(suffix "$b")
    timeout 60 "$bin/noisescope$x" --backend wgpu -q train --config configs/quickstart.toml --set steps=200 \
        --out "$out/quickstart-wgpu$x" > "$out/quickstart-wgpu$x.log" 2>&1 || { log "train on wgpu ($b) failed"; status=1; }
    python3 - "$out" "wgpu$x" <<'EOF' || status=1
import json, sys
out, other = sys.argv[1], sys.argv[2]
a, b = (json.load(open(f"{out}/quickstart-{k}/summary.json")) for k in ("ndarray", other))
def flat(d, p=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from flat(v, p + k + ".")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            yield p + k, float(v)
fa, fb = dict(flat(a)), dict(flat(b))
keys = [k for k in fa if k in fb and ("loss" in k or "accuracy" in k) and "time" not in k]
bad = [(k, fa[k], fb[k]) for k in keys if k in fb and abs(fa[k] - fb[k]) > 1e-3 * max(1.0, abs(fa[k]))]
print(f"{other}: compared {len(keys)} loss/accuracy figures with ndarray; {len(bad)} differ by more than 1e-3")
for k, x, y in bad[:10]:
    print(f"  {k}: ndarray {x} {other} {y}")
sys.exit(1 if bad or not keys else 0)
EOF
done

quick=(); [ "${QUICK:-0}" = 1 ] && quick=(--quick)
for b in "${builds[@]}"; do
    x=$(suffix "$b")
    log "2/5 noisescope bench on wgpu ($b build)"
    # shellcheck disable=SC2086
    timeout 140 "$bin/noisescope$x" --backend wgpu bench "${quick[@]}" --budget-s 100 ${BENCH_ARGS:-} \
        --json "$out/bench$x.json" 2>&1 | tee "$out/bench$x.log" | tail -40
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done

log "3/5 PyTorch anchor"
PYTHONUNBUFFERED=1 timeout 140 python3 .gpu/torch_anchor.py "${quick[@]}" --budget-s 110 --hard-limit-s 130 --json "$out/torch.json" \
    > "$out/torch.log" 2>&1 || status=1
tail -5 "$out/torch.log"

log "4/5 ratios"
jsons=()
for b in "${builds[@]}"; do
    x=$(suffix "$b")
    echo "## $b build"
    python3 scripts/bench_ratio.py "$out/bench$x.json" "$out/torch.json" --markdown "$out/ratios$x.md" || status=1
    jsons+=("$out/bench$x.json")
done
python3 scripts/bench_first_calls.py "${jsons[@]}" --markdown "$out/first-calls.md" || status=1
if [ -d .gpu-data/datasets/mnist ]; then
log "5/5 online alignment probe on full MNIST (wgpu): probe time against training time"
timeout 60 "$ns" --backend wgpu -q train --config configs/wangwu/online-alignment-mnist.toml \
    --data-dir .gpu-data/datasets --set steps=300 --out "$out/online-alignment" \
    > "$out/online-alignment.log" 2>&1 || { log "online alignment run failed"; status=1; }
python3 - "$out/online-alignment/summary.json" <<'EOF' || status=1
import json, sys
t = json.load(open(sys.argv[1]))["time"]
print(f"train {t['train_s']:.2f} s, probes {t['probe_s']:.2f} s, eval {t['eval_s']:.2f} s: "
      f"probe overhead {100 * t['probe_s'] / t['train_s']:.0f}% of training")
EOF

else
log "5/5 skipped: .gpu-data (full MNIST) was not carried"
fi

log "done (status $status); files in $out"
exit $status
