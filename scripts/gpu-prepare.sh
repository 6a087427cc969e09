#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that may have no package registry
# and no Rust toolchain: run it here, in the repository root, on an x86_64 Linux machine.
#
#   .gpu/noisescope.xz         the noisescope binary (ndarray + wgpu), stripped, xz-compressed
#   .gpu/noisescope-fusion.xz  the same with burn's kernel fusion and autotune (`gpu-fusion`)
#   .gpu/models-tests.xz       the models crate's test binary (the wgpu-vs-f64 checks)
#   .gpu/models-tests-fusion.xz  the same, built with fusion
#   .gpu/torch_anchor.py       the PyTorch anchor (../shared does not travel)
#   .gl/*.deb                  Debian's Vulkan loader, in case the GPU machine lacks libvulkan1
#   .gpu-data/datasets/mnist/  full MNIST (11 MB, gzipped IDX) for step 5, the online-alignment
#                              timing: carry it only where it fits beside the others
#
# The folders are ignored by git (.git/info/exclude); carry .gpu and .gl to the GPU machine
# (at most 64 MiB in one device call, checked below). xz, not gzip: the four binaries take
# about 62 MB instead of 102 MB (gpu-check unpacks them with Python's lzma).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/noisescope-target}"

for d in .gpu .gl .gpu-data; do
    grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
rm -f .gpu/*.gz
mkdir -p .gpu .gl

# The models crate's unit tests, built without running; cargo prints the executable's path.
# Built with --workspace: `-p noisescope-models` alone unifies burn's features differently and
# would compile the wgpu stack a second time.
models_tests() {
    cargo test --workspace "$@" --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["name"] == "noisescope_models" and m["target"]["kind"] == ["lib"]):
        print(m["executable"])' | tail -1
}

# Both builds share the target folder: burn and what depends on it are compiled once per
# feature set (the fusion set is a second full burn build: about 23 minutes on 2 idle cores,
# docs/performance.md, attempt 9).
for build in plain fusion; do
    features=(); suffix=""
    [ "$build" = fusion ] && features=(--features noisescope/gpu-fusion) && suffix=-fusion
    cargo build --workspace "${features[@]}"
    strip -o ".gpu/noisescope$suffix" "$CARGO_TARGET_DIR/debug/noisescope"
    t=$(models_tests "${features[@]}")
    [ -n "$t" ] || { echo "gpu-prepare: could not find the models test binary ($build)" >&2; exit 1; }
    strip -o ".gpu/models-tests$suffix" "$t"
    xz -f -9e -T2 ".gpu/noisescope$suffix" ".gpu/models-tests$suffix"
done
# Leave the plain binary in place for whoever runs target/debug/noisescope next.
cargo build --workspace

anchor=../shared/bench/torch_anchor.py
[ -f "$anchor" ] || { echo "gpu-prepare: $anchor not found (../shared must sit beside the checkout)" >&2; exit 1; }
cp "$anchor" .gpu/torch_anchor.py
[ -f ../shared/datasets/mnist/train-images-idx3-ubyte.gz ] ||
    { echo "gpu-prepare: ../shared/datasets/mnist not found (full MNIST for gpu-check's step 5)" >&2; exit 1; }
rm -rf .gpu/datasets
mkdir -p .gpu-data/datasets/mnist
cp ../shared/datasets/mnist/* .gpu-data/datasets/mnist/
chmod u+w .gpu-data/datasets/mnist/*

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 >/dev/null)
fi
du -ch .gpu .gl | tail -1
total=$(du -cb .gpu .gl | tail -1 | cut -f1)
if [ "$total" -gt $((64 * 1024 * 1024)) ]; then
    echo "gpu-prepare: .gpu and .gl hold $((total / 1048576)) MiB, over the device call's 64 MiB carry limit" >&2
    exit 1
fi
data=$(du -cb .gpu-data | tail -1 | cut -f1)
if [ $((total + data)) -le $((64 * 1024 * 1024)) ]; then
    echo "carry .gpu-data too: $(((total + data) / 1048576)) MiB in all"
else
    echo "no room for .gpu-data ($((data / 1048576)) MiB) beside them: gpu-check skips step 5 (BINS=plain in a second call with .gpu-data runs it)"
fi
echo "ready: carry .gpu and .gl, run: bash scripts/gpu-check.sh"
