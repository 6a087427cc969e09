#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on a GPU machine that may have no package registry
# and no Rust toolchain: run it here, in the repository root, on an x86_64 Linux machine.
#
#   .gpu/noisescope.gz         the noisescope binary (ndarray + wgpu), stripped and gzipped
#   .gpu/models-tests.gz       the models crate's test binary (the wgpu-vs-f64 checks)
#   .gpu/torch_anchor.py       the PyTorch anchor (../shared does not travel)
#   .gpu/datasets/mnist/       full MNIST (11 MB, gzipped IDX) for the online-alignment timing
#   .gl/*.deb                  Debian's Vulkan loader, in case the GPU machine lacks libvulkan1
#
# Both folders are ignored by git (.git/info/exclude); carry them to the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/noisescope-target}"

for d in .gpu .gl; do
    grep -qxF "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
mkdir -p .gpu .gl

cargo build -p noisescope
# The models crate's unit tests, built without running; cargo prints the executable's path.
# Built with --workspace: `-p noisescope-models` alone unifies burn's features differently and
# would compile the wgpu stack a second time.
models_tests=$(cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and m["target"]["name"] == "noisescope_models" and m["target"]["kind"] == ["lib"]):
        print(m["executable"])' | tail -1)
[ -n "$models_tests" ] || { echo "gpu-prepare: could not find the models test binary" >&2; exit 1; }

strip -o .gpu/noisescope "$CARGO_TARGET_DIR/debug/noisescope"
strip -o .gpu/models-tests "$models_tests"
gzip -f -9 .gpu/noisescope .gpu/models-tests

anchor=../shared/bench/torch_anchor.py
[ -f "$anchor" ] || { echo "gpu-prepare: $anchor not found (../shared must sit beside the checkout)" >&2; exit 1; }
cp "$anchor" .gpu/torch_anchor.py
[ -f ../shared/datasets/mnist/train-images-idx3-ubyte.gz ] ||
    { echo "gpu-prepare: ../shared/datasets/mnist not found (full MNIST for gpu-check's step 5)" >&2; exit 1; }
mkdir -p .gpu/datasets/mnist
cp ../shared/datasets/mnist/* .gpu/datasets/mnist/
chmod u+w .gpu/datasets/mnist/*

if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    mkdir -p /tmp/amd64/partial
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 >/dev/null)
fi
du -ch .gpu .gl | tail -1
echo "ready: carry .gpu and .gl, run: bash scripts/gpu-check.sh"
