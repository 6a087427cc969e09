#!/usr/bin/env python3
"""Load a noisescope run into PyTorch (or plain numpy): its model, θ, training data and loss.

A noisescope run directory holds `config.toml` (the resolved run config) and its parameters θ,
either as `model.safetensors` at the top level or in the checkpoint that `checkpoints/latest`
names (`checkpoints/step-NNNNNNN/model.safetensors`). This module rebuilds, from those files
alone, what noisescope computed on:

- θ: the flat tensor `theta` of `model.safetensors` (F32 or F64), read without the
  `safetensors` package (8-byte little-endian header length, JSON header, raw bytes).
- The layout of θ: the zoo's parameter blocks in layer order (`crates/models/src/zoo.rs`);
  a dense layer's block is W [out, in] row-major then b [out] (PyTorch's `nn.Linear`
  orientation), a convolution's W [c_out, c_in, kh, kw] then b [c_out] (`nn.Conv2d`'s).
  The per-block tensors that noisescope also stores beside `theta` are checked against it.
- The model: every zoo model (mlp, two-layer, fixed-output-relu, linear, softmax-regression,
  convyu, toy2d) as an `nn.Module` whose parameter names are noisescope's block names
  (`dense0.weight`, `conv1.bias`, `hidden.weight`, ...), with activations flat between
  layers as in noisescope (a convolution reads [n, c·h·w] as [n, c, h, w]).
- The data: the same subset and preprocessing (`crates/data/src`): IDX images with the first
  `train` images, Zhu et al.'s random labels, the pixel normalization computed in f64 and
  stored as f32; the synthetic sets (toy2d, uniform-square, teacher-student). Random labels
  and synthetic draws are reproduced bit for bit: ChaCha8 seeded by `seed_from_u64`
  (rand_core 0.9's PCG32 expansion), rand 0.9's integer and float range sampling, and
  rand_distr 0.5's ziggurat normal sampler are reimplemented below.
- The targets: one-hot for a classifier with several outputs, the label value for a net with
  one output on labelled data (`Net::adapt`), the regression values otherwise.
- The loss, per sample, then averaged over the N samples (L = (1/N) Σ ℓ_n):
  `mse` ½‖f − y‖² (summed over outputs, with the ½: not `nn.MSELoss`), `cross-entropy`
  −Σ_c y_c log softmax(f)_c, `clipped-mse` ½(clamp(f, δ, 1 − δ) − y)², `toy2d` Zhu et al.'s
  2-D potential. The run's weight decay γ adds (γ/2)‖θ‖² to the objective whose Hessian the
  probes measure, never to the reported training loss.

Everything but `load_run` and `build_module` is numpy-only (torch is imported lazily), so
`scripts/crosscheck_numpy.py` uses this module without torch.

Usage:
    python scripts/torch_load.py RUN_DIR [--step N] [--f64] [--data-dir DIR] [--test]

prints the loss and accuracy of θ on the training set (and the test set with --test) and
compares them with the run's `metrics.jsonl` line of the same step (else `summary.json`).

As a library:
    from torch_load import load_run
    run = load_run("runs/quick", dtype=torch.float64)
    loss = run.loss_fn(run.model(run.X), run.Y)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------------


def _parse_toml_fallback(text: str) -> dict:
    """A minimal TOML reader for the configs noisescope writes (tables, dotted table headers,
    `key = value` with strings, numbers, booleans, arrays and inline tables on one line), for
    Pythons older than 3.11 without `tomllib`."""
    import re

    def value(s: str) -> Any:
        s = s.strip()
        if s.startswith("{"):
            out: dict = {}
            inner = s[1:-1].strip()
            for part in _split_top(inner):
                k, v = part.split("=", 1)
                _assign(out, [p.strip().strip('"') for p in k.strip().split(".")], value(v))
            return out
        if s.startswith("["):
            inner = s[1:-1].strip().rstrip(",")
            return [value(p) for p in _split_top(inner)] if inner else []
        if s.startswith('"'):
            return json.loads(s)
        if s.startswith("'"):
            return s[1:-1]
        if s in ("true", "false"):
            return s == "true"
        if s in ("inf", "+inf", "-inf", "nan", "+nan", "-nan"):
            return float(s)
        t = s.replace("_", "")
        if re.fullmatch(r"[+-]?\d+", t):
            return int(t)
        return float(t)

    def _assign(d: dict, keys: list, v: Any) -> None:
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = v

    root: dict = {}
    cur = root
    pending = ""
    for raw in text.splitlines():
        line = pending + raw
        stripped = _strip_comment(line).strip()
        if not stripped:
            pending = ""
            continue
        if stripped.count("[") > stripped.count("]") or stripped.count("{") > stripped.count("}"):
            pending = stripped + " "
            continue
        pending = ""
        if stripped.startswith("[[") or (stripped.startswith("[") and "=" not in stripped):
            if stripped.startswith("[["):
                raise ValueError("arrays of tables are not supported by the fallback reader")
            keys = [k.strip().strip('"') for k in stripped[1:-1].split(".")]
            cur = root
            for k in keys:
                cur = cur.setdefault(k, {})
            continue
        k, v = stripped.split("=", 1)
        _assign(cur, [p.strip().strip('"') for p in k.strip().split(".")], value(v))
    return root


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            break
        out.append(ch)
    return "".join(out)


def _split_top(s: str) -> list:
    """Splits `s` at commas outside brackets, braces and strings."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(s):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    if s[start:].strip():
        parts.append(s[start:])
    return [p.strip() for p in parts if p.strip()]


def read_toml(path: Path) -> dict:
    """A TOML file as a dict (`tomllib`, else `tomli`, else a minimal reader)."""
    text = Path(path).read_text()
    try:
        import tomllib  # Python ≥ 3.11

        return tomllib.loads(text)
    except ImportError:
        pass
    try:
        import tomli

        return tomli.loads(text)
    except ImportError:
        return _parse_toml_fallback(text)


# ---------------------------------------------------------------------------------------------
# Run directories, checkpoints and safetensors
# ---------------------------------------------------------------------------------------------

_ST_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def read_safetensors(path: Path) -> dict:
    """All tensors of a safetensors file as numpy arrays (little-endian), by name."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        lo, hi = info["data_offsets"]
        arr = np.frombuffer(data[base + lo : base + hi], dtype=_ST_DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out


@dataclass
class RunFiles:
    """Where a run's config and θ are."""

    run_dir: Path
    config: Path
    model: Path  # the model.safetensors holding θ
    step: Optional[int]  # the checkpoint's step (None for a top-level model.safetensors)

    @property
    def checkpoint_dir(self) -> Path:
        return self.model.parent


def _step_folders(d: Path) -> list:
    out = []
    if d.is_dir():
        for p in d.iterdir():
            n = p.name
            if n.startswith("step-") and n[5:].isdigit() and p.is_dir():
                out.append((int(n[5:]), p))
    return sorted(out)


def locate(path, step: Optional[int] = None) -> RunFiles:
    """The config and θ of `path`: a run directory (its top-level `model.safetensors`, else
    checkpoint `step`, else the checkpoint `checkpoints/latest` names, else the newest
    `step-N` folder), or a checkpoint folder `RUN/checkpoints/step-N`."""
    p = Path(path)
    if (p / "config.toml").is_file():
        run_dir = p
        if step is not None:
            ck = p / "checkpoints" / f"step-{step:07d}"
        elif (p / "model.safetensors").is_file():
            return RunFiles(p, p / "config.toml", p / "model.safetensors", None)
        else:
            latest = p / "checkpoints" / "latest"
            if latest.is_file():
                ck = p / "checkpoints" / latest.read_text().strip()
            else:
                folders = _step_folders(p / "checkpoints")
                if not folders:
                    raise FileNotFoundError(f"{p}: no model.safetensors and no checkpoint")
                ck = folders[-1][1]
    elif (p / "model.safetensors").is_file() and (p.parent.parent / "config.toml").is_file():
        run_dir, ck = p.parent.parent, p
    else:
        raise FileNotFoundError(f"{p}: not a run directory (no config.toml) nor a checkpoint")
    model = ck / "model.safetensors"
    if not model.is_file():
        raise FileNotFoundError(f"{model}: missing")
    s = int(ck.name[5:]) if ck.name.startswith("step-") and ck.name[5:].isdigit() else None
    return RunFiles(run_dir, run_dir / "config.toml", model, s)


def load_theta(model_file: Path) -> np.ndarray:
    """θ, [D], in the stored precision."""
    t = read_safetensors(model_file)
    if "theta" not in t:
        raise KeyError(f"{model_file}: no tensor `theta`")
    theta = t["theta"]
    if theta.ndim != 1 or theta.size == 0:
        raise ValueError(f"{model_file}: `theta` has shape {theta.shape}, expected [D]")
    return theta


def run_precision(cfg: dict) -> str:
    """`f32` or `f64`: the element type the run computed in."""
    return cfg.get("precision", "f32")


# ---------------------------------------------------------------------------------------------
# The zoo: layers, layout, loss
# ---------------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One layer of a zoo net, as `crates/models/src/zoo.rs` builds it.

    kind: `dense` (i → o), `conv` (c_in → c_out, k × k kernel, valid, stride 1, on h × w),
    `pool` (2 × 2 max-pooling, stride 2, of c planes of h × w), `act` (tanh, relu,
    identity), `frozen` (z = a Mᵀ with a fixed M [o, i], outside θ), `bias` (z = a + b).
    """

    kind: str
    name: str
    inputs: int = 0
    outputs: int = 0
    act: str = ""
    c_in: int = 0
    c_out: int = 0
    kernel: int = 0
    hw: tuple = (0, 0)
    matrix: Optional[np.ndarray] = None  # frozen: M [o, i] as f64 values

    def blocks(self) -> list:
        """(name, shape) of this layer's parameter blocks, in θ order."""
        if self.kind == "dense":
            return [(f"{self.name}.weight", (self.outputs, self.inputs)), (f"{self.name}.bias", (self.outputs,))]
        if self.kind == "conv":
            k = self.kernel
            return [(f"{self.name}.weight", (self.c_out, self.c_in, k, k)), (f"{self.name}.bias", (self.c_out,))]
        if self.kind == "bias":
            return [(self.name, (self.outputs,))]
        return []


@dataclass
class Block:
    name: str
    shape: tuple
    offset: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class NetSpec:
    """A zoo model: its layers, loss and θ layout."""

    name: str
    layers: list
    loss: dict  # {"kind": ..., "delta": ...}
    in_dim: int
    out_dim: int
    blocks: list = field(default_factory=list)

    @property
    def dim(self) -> int:
        return sum(b.size for b in self.blocks)

    def unflatten(self, theta):
        """θ [D] (numpy or torch) → {block name: view of shape}."""
        return {b.name: theta[b.offset : b.offset + b.size].reshape(b.shape) for b in self.blocks}


def _signs(width: int, scale: float) -> np.ndarray:
    return np.array([[scale if j < width // 2 else -scale for j in range(width)]], dtype=np.float64)


def net_spec(model: dict) -> NetSpec:
    """The zoo net of a `[model]` config table."""
    kind = model["model"]
    L = []
    if kind == "mlp":
        widths = list(model["widths"])
        act = model["activation"]
        for l in range(len(widths) - 1):
            if l > 0:
                L.append(Layer("act", f"act{l - 1}", act=act))
            L.append(Layer("dense", f"dense{l}", inputs=widths[l], outputs=widths[l + 1]))
        loss = dict(model["loss"])
        in_dim, out_dim = widths[0], widths[-1]
    elif kind == "fixed-output-relu":
        h = model["width"]
        L = [
            Layer("dense", "hidden", inputs=2, outputs=h),
            Layer("act", "relu", act="relu"),
            Layer("frozen", "output", matrix=_signs(h, 1.0)),
        ]
        loss = {"kind": "clipped-mse", "delta": model["delta"]}
        in_dim, out_dim = 2, 1
    elif kind == "two-layer":
        i, m = model["inputs"], model["width"]
        L = [
            Layer("dense", "hidden", inputs=i, outputs=m),
            Layer("act", "act", act=model["activation"]),
            Layer("frozen", "output", matrix=_signs(m, 1.0 / math.sqrt(m))),
        ]
        loss = {"kind": "mse"}
        in_dim, out_dim = i, 1
    elif kind == "linear":
        L = [Layer("dense", "linear", inputs=model["inputs"], outputs=1)]
        loss = {"kind": "mse"}
        in_dim, out_dim = model["inputs"], 1
    elif kind == "softmax-regression":
        L = [Layer("dense", "linear", inputs=model["inputs"], outputs=model["classes"])]
        loss = {"kind": "cross-entropy"}
        in_dim, out_dim = model["inputs"], model["classes"]
    elif kind == "convyu":
        L = [
            Layer("conv", "conv0", c_in=1, c_out=10, kernel=5, hw=(28, 28)),
            Layer("pool", "pool0", c_in=10, hw=(24, 24)),
            Layer("act", "relu0", act="relu"),
            Layer("conv", "conv1", c_in=10, c_out=10, kernel=5, hw=(12, 12)),
            Layer("pool", "pool1", c_in=10, hw=(8, 8)),
            Layer("act", "relu1", act="relu"),
            Layer("dense", "dense0", inputs=160, outputs=50),
            Layer("act", "relu2", act="relu"),
            Layer("dense", "dense1", inputs=50, outputs=10),
        ]
        loss = {"kind": "cross-entropy"}
        in_dim, out_dim = 784, 10
    elif kind == "toy2d":
        L = [
            Layer("frozen", "negate", matrix=np.array([[-1.0, 0.0], [0.0, -1.0]])),
            Layer("bias", "w", outputs=2),
        ]
        loss = {"kind": "toy2d"}
        in_dim, out_dim = 2, 2
    else:
        raise ValueError(f"unknown zoo model `{kind}`")
    spec = NetSpec(kind, L, loss, in_dim, out_dim)
    off = 0
    for layer in L:
        for name, shape in layer.blocks():
            spec.blocks.append(Block(name, tuple(shape), off))
            off += int(np.prod(shape))
    return spec


def check_blocks(spec: NetSpec, model_file: Path, theta: np.ndarray) -> None:
    """Checks θ's size against the layout, and every per-block tensor noisescope stored
    beside `theta` against the layout's slice of θ (name, shape and values)."""
    if theta.size != spec.dim:
        raise ValueError(f"{model_file}: θ has {theta.size} entries, the {spec.name} net has D = {spec.dim}")
    tensors = read_safetensors(model_file)
    for b in spec.blocks:
        if b.name not in tensors:
            continue  # older checkpoints hold θ only
        t = tensors[b.name]
        if tuple(t.shape) != b.shape or not np.array_equal(t.reshape(-1), theta[b.offset : b.offset + b.size]):
            raise ValueError(f"{model_file}: block {b.name} {t.shape} disagrees with θ[{b.offset}..] as {b.shape}")


# ---------------------------------------------------------------------------------------------
# Random numbers: rand_chacha 0.9's ChaCha8Rng, rand 0.9 and rand_distr 0.5 samplers
# ---------------------------------------------------------------------------------------------

_M32 = 0xFFFFFFFF


def _pcg32_words(state: int, n: int) -> list:
    """rand_core 0.9 `SeedableRng::seed_from_u64`: n u32 words of the PCG32 expansion."""
    mul, inc = 6364136223846793005, 11634580027462260723
    out = []
    for _ in range(n):
        state = (state * mul + inc) & 0xFFFFFFFFFFFFFFFF
        xorshifted = (((state >> 18) ^ state) >> 27) & _M32
        rot = state >> 59
        out.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & _M32)
    return out


def chacha_blocks(key: list, first_block: int, n_blocks: int, rounds: int = 8) -> np.ndarray:
    """n ChaCha keystream blocks (counter first_block, ..., stream 0) as u32 words in
    output order: [n · 16]."""
    st = np.zeros((16, n_blocks), dtype=np.uint32)
    st[0:4] = np.array([0x61707865, 0x3320646E, 0x79622D32, 0x6B206574], dtype=np.uint32)[:, None]
    st[4:12] = np.array(key, dtype=np.uint32)[:, None]
    ctr = np.arange(first_block, first_block + n_blocks, dtype=np.uint64)
    st[12] = (ctr & np.uint64(_M32)).astype(np.uint32)
    st[13] = (ctr >> np.uint64(32)).astype(np.uint32)
    x = [st[i].copy() for i in range(16)]

    def rotl(v, c):
        return (v << np.uint32(c)) | (v >> np.uint32(32 - c))

    def qr(a, b, c, d):
        x[a] += x[b]; x[d] ^= x[a]; x[d] = rotl(x[d], 16)  # noqa: E702
        x[c] += x[d]; x[b] ^= x[c]; x[b] = rotl(x[b], 12)  # noqa: E702
        x[a] += x[b]; x[d] ^= x[a]; x[d] = rotl(x[d], 8)  # noqa: E702
        x[c] += x[d]; x[b] ^= x[c]; x[b] = rotl(x[b], 7)  # noqa: E702

    for _ in range(rounds // 2):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)  # noqa: E702
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)  # noqa: E702
    out = np.stack([x[i] + st[i] for i in range(16)], axis=1)  # [n, 16]
    return out.reshape(-1)


def _ziggurat_tables() -> tuple:
    """rand_distr 0.5's ZIG_NORM_X and ZIG_NORM_F, regenerated as its `ziggurat_tables.py`
    does (Doornik's ZIGNOR, 256 layers) and rounded through the 18 decimals the Rust file
    holds; one entry of F is the Rust file's decimal, which today's libm `exp` rounds the
    other way."""
    f = lambda x: math.exp(-x * x / 2.0)  # noqa: E731
    finv = lambda y: math.sqrt(-2.0 * math.log(y))  # noqa: E731
    r, v = 3.6541528853610088, 0.00492867323399
    xs = [0.0] * 257
    xs[0], xs[1] = v / f(r), r
    for i in range(2, 256):
        xs[i] = finv(v / xs[i - 1] + f(xs[i - 1]))
    fs = [f(t) for t in xs]
    xs = [float("%.18f" % t) for t in xs]
    fs = [float("%.18f" % t) for t in fs]
    fs[94] = 0.206405406398679298
    return xs, fs, float("%.18f" % r)


_ZIG_X, _ZIG_F, _ZIG_R = _ziggurat_tables()


class ChaCha8:
    """rand_chacha 0.9's `ChaCha8Rng::seed_from_u64(seed)` as a sequential u32 stream, with
    the rand 0.9 / rand_distr 0.5 samplers noisescope's data code draws."""

    def __init__(self, seed: int):
        self.key = _pcg32_words(seed & 0xFFFFFFFFFFFFFFFF, 8)
        self.block = 0
        self.buf: list = []
        self.i = 0

    def next_u32(self) -> int:
        if self.i >= len(self.buf):
            n = 64
            self.buf = chacha_blocks(self.key, self.block, n).tolist()
            self.block += n
            self.i = 0
        v = self.buf[self.i]
        self.i += 1
        return v

    def next_u64(self) -> int:
        lo = self.next_u32()
        return lo | (self.next_u32() << 32)

    def f64(self) -> float:
        """`rng.random::<f64>()`: 53 high bits, [0, 1)."""
        return (self.next_u64() >> 11) * 2.0**-53

    def open01(self) -> float:
        """`Open01` for f64: (0, 1)."""
        return (1.0 + (self.next_u64() >> 12) * 2.0**-52) - (1.0 - 2.0**-53)

    def range_f64(self, low: float, high: float) -> float:
        """`rng.random_range(low..high)` for f64 (UniformFloat::sample_single)."""
        v = (1.0 + (self.next_u64() >> 12) * 2.0**-52) - 1.0
        return v * (high - low) + low

    def range_usize(self, low: int, high: int) -> int:
        """`rng.random_range(low..high)` for usize < 2³² (UniformUsize::sample_single through
        UniformInt<u32>, the widening-multiply method with one extra draw)."""
        rng = (high - 1 - low + 1) & _M32
        if rng == 0:
            return low + self.next_u32()
        m = self.next_u32() * rng
        result, lo = m >> 32, m & _M32
        if lo > ((-rng) & _M32):
            new_hi = (self.next_u32() * rng) >> 32
            if lo + new_hi > _M32:
                result += 1
        return low + result

    def normal(self) -> float:
        """rand_distr 0.5 `StandardNormal` for f64 (ziggurat)."""
        X, F, R = _ZIG_X, _ZIG_F, _ZIG_R
        while True:
            bits = self.next_u64()
            i = bits & 0xFF
            u = (2.0 + (bits >> 12) * 2.0**-51) - 3.0
            x = u * X[i]
            if abs(x) < X[i + 1]:
                return x
            if i == 0:
                xx, yy = 1.0, 0.0
                while -2.0 * yy < xx * xx:
                    x_ = self.open01()
                    y_ = self.open01()
                    xx = math.log(x_) / R
                    yy = math.log(y_)
                return xx - R if u < 0.0 else R - xx
            if F[i + 1] + (F[i] - F[i + 1]) * self.f64() < math.exp(-x * x / 2.0):
                return x


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
KNOWN_IMAGE_SETS = {"mnist", "fashion-mnist", "mnist-small", "fashion-mnist-small"}


@dataclass
class Data:
    """n samples: inputs x [n, dim] (f32, as noisescope stores features), class labels
    [n] (or None), regression values [n, k] (or None), the number of classes."""

    x: np.ndarray
    labels: Optional[np.ndarray] = None
    values: Optional[np.ndarray] = None
    classes: int = 0

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def targets(self, out_dim: int) -> Optional[np.ndarray]:
        """The targets the loss compares f with (`Net::adapt` and `DeviceDataset::upload`):
        the label value for a one-output net on labelled data, one-hot labels for several
        outputs, else the regression values; f32, [n, out_dim] (None without targets)."""
        if self.labels is not None:
            if out_dim == 1:
                return self.labels.astype(np.float32)[:, None]
            y = np.zeros((self.n, self.classes), dtype=np.float32)
            y[np.arange(self.n), self.labels] = 1.0
            return y
        return self.values

    def first(self, n: Optional[int]) -> "Data":
        """The first n samples (the probes' `samples` subset)."""
        if n is None or n >= self.n:
            return self
        return Data(
            self.x[:n],
            None if self.labels is None else self.labels[:n],
            None if self.values is None else self.values[:n],
            self.classes,
        )


def dataset_dirs(name: str, data_dir=None) -> list:
    """noisescope's search path (`crates/data/src/locate.rs`): --data-dir/<name>, --data-dir,
    $NOISESCOPE_DATA/<name>, $NOISESCOPE_DATA, ./datasets/<name>, the checkout's
    datasets/<name>, /usr/share/datasets/<name>."""
    out = []
    for root in [data_dir, os.environ.get("NOISESCOPE_DATA") or None]:
        if root:
            out += [Path(root) / name, Path(root)]
    out += [Path("datasets") / name, REPO / "datasets" / name, Path("/usr/share/datasets") / name]
    return out


def _find_file(d: Path, fname: str) -> Optional[Path]:
    for cand in (d / fname, d / fname[:-3]):
        if cand.is_file():
            return cand
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4 : 4 + 4 * nd])
    return np.frombuffer(raw[4 + 4 * nd :], dtype=np.uint8)[: int(np.prod(dims))].reshape(dims)


def read_images(name: str, split: str, data_dir=None) -> tuple:
    """(pixels [n, rows·cols] uint8, labels [n]) of a registry image dataset."""
    if name not in KNOWN_IMAGE_SETS:
        raise ValueError(f"unknown image dataset `{name}` (known: {sorted(KNOWN_IMAGE_SETS)})")
    fi, fl = IDX_FILES[split]
    for d in dataset_dirs(name, data_dir):
        pi, pl = _find_file(d, fi), _find_file(d, fl)
        # locate.rs takes the first folder holding all four files.
        if pi and pl and all(_find_file(d, f) for pair in IDX_FILES.values() for f in pair):
            imgs, labels = read_idx(pi), read_idx(pl)
            return imgs.reshape(imgs.shape[0], -1), labels.astype(np.int64)
    raise FileNotFoundError(f"dataset {name} not found in {[str(d) for d in dataset_dirs(name, data_dir)]}")


def normalize(pixels: np.ndarray, norm: dict) -> np.ndarray:
    """`Normalization::apply`: computed in f64, stored as f32."""
    p = np.arange(256, dtype=np.float64)
    kind = norm.get("kind", "centered")
    if kind == "centered":
        table = (p - 127.5) / 127.5
    elif kind == "unit-interval":
        table = p / 255.0
    elif kind == "standardize":
        table = (p / 255.0 - norm["mean"]) / norm["std"]
    else:
        raise ValueError(f"unknown normalization `{kind}`")
    return table.astype(np.float32)[pixels]


def random_labels(labels: np.ndarray, indices, classes: int, seed: int) -> np.ndarray:
    """`ImageDataset::randomize_labels_at`: one `random_range(0..classes)` per index, in order."""
    rng = ChaCha8(seed)
    out = labels.copy()
    for i in indices:
        out[i] = rng.range_usize(0, classes)
    return out


def toy2d(n: int, seed: int) -> Data:
    rng = ChaCha8(seed)
    s, c = math.sin(math.pi / 4), math.cos(math.pi / 4)
    x = np.empty((n, 2), dtype=np.float32)
    for k in range(n):
        a = rng.normal() * math.sqrt(10.0)
        b = rng.normal()
        x[k] = ((a * c + b * s) * 0.01, (-a * s + b * c) * 0.01)
    return Data(x)


def uniform_square(n: int, seed: int) -> Data:
    rng = ChaCha8(seed)
    x = np.empty((n, 2), dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for k in range(n):
        a = rng.range_f64(-2.0, 2.0)
        b = rng.range_f64(-2.0, 2.0)
        x[k] = (a, b)
        labels[k] = int(a >= b)
    return Data(x, labels, None, 2)


def spectrum_values(spec: dict, dim: int) -> list:
    kind = spec["kind"]
    if kind == "power-law":
        return [float(j) ** -spec["alpha"] for j in range(1, dim + 1)]
    if kind == "rank":
        return [1.0 if j < spec["rank"] else float(spec["floor"]) for j in range(dim)]
    if kind == "explicit":
        return [float(v) for v in spec["values"]]
    raise ValueError(f"unknown spectrum `{kind}`")


def teacher_student(cfg: dict, n: int, teacher_seed: int, sample_seed: int) -> Data:
    """`TeacherStudent::sample_with`, summing in noisescope's order (bit-exact f32 data)."""
    d = cfg["dim"]
    sd = [math.sqrt(v) for v in spectrum_values(cfg["spectrum"], d)]
    trng = ChaCha8(teacher_seed)
    teacher = cfg["teacher"]
    sqrt_d = math.sqrt(d)
    if teacher["kind"] == "linear":
        w = [trng.normal() / sqrt_d for _ in range(d)]

        def label(row):
            s = 0.0
            for a, b in zip(row, w):
                s += a * b
            return s

    elif teacher["kind"] == "two-layer-tanh":
        width = teacher["width"]
        w = [trng.normal() / sqrt_d for _ in range(width * d)]
        a = [trng.normal() for _ in range(width)]

        def label(row):
            total = 0.0
            for h in range(width):
                s = 0.0
                for p, q in zip(w[h * d : (h + 1) * d], row):
                    s += p * q
                total += a[h] * math.tanh(s)
            return total / math.sqrt(width)

    else:
        raise ValueError(f"unknown teacher `{teacher['kind']}`")
    rng = ChaCha8(sample_seed)
    noise = float(cfg.get("noise_std", 0.0))
    x = np.empty((n, d), dtype=np.float32)
    y = np.empty((n, 1), dtype=np.float32)
    for k in range(n):
        row = [s * rng.normal() for s in sd]
        y[k, 0] = label(row) + noise * rng.normal()
        x[k] = row
    return Data(x, None, y, 0)


def load_data(cfg: dict, data_dir=None, split: str = "train") -> Optional[Data]:
    """The run's training (or test) set as `crates/cli/src/experiment.rs::features` builds it;
    None for a run without that split."""
    data = cfg["data"]
    seed = int(cfg.get("seed", 0))
    kind = data["kind"]
    if kind == "images":
        name = data["name"]
        norm = data.get("normalization", {"kind": "centered"})
        if split == "train":
            pixels, labels = read_images(name, "train", data_dir)
            noisy = int(data.get("random_labels", 0))
            clean = data.get("train")
            clean = len(labels) - min(noisy, len(labels)) if clean is None else int(clean)
            if clean + noisy > len(labels):
                raise ValueError(f"{name}: asked for {clean + noisy} training images, it has {len(labels)}")
            pixels, labels = pixels[: clean + noisy], labels[: clean + noisy]
            if noisy > 0:
                labels = random_labels(labels, range(clean, clean + noisy), 10, seed)
        else:
            test = data.get("test")
            if test == 0:
                return None
            pixels, labels = read_images(name, "test", data_dir)
            if test is not None:
                pixels, labels = pixels[:test], labels[:test]
        return Data(normalize(pixels, norm), labels, None, 10)
    if kind == "toy2d":
        return toy2d(data["n"], seed) if split == "train" else None
    if kind == "uniform-square":
        if split == "train":
            return uniform_square(data["n"], seed)
        t = int(data.get("test", 0))
        return uniform_square(t, seed ^ 0xFFFFFFFF) if t > 0 else None
    if kind == "teacher-student":
        if split == "train":
            return teacher_student(data, data["n"], seed, (seed + 1) & 0xFFFFFFFFFFFFFFFF)
        t = int(data.get("test", 0))
        return teacher_student(data, t, seed, (seed + 2) & 0xFFFFFFFFFFFFFFFF) if t > 0 else None
    raise ValueError(f"unknown data kind `{kind}`")


# ---------------------------------------------------------------------------------------------
# Metrics of the run
# ---------------------------------------------------------------------------------------------


def run_metrics(run_dir: Path, step: Optional[int]) -> tuple:
    """(line, where): the `metrics.jsonl` line of `step` (the last line when step is None),
    else `summary.json`'s `final` when its step matches; (None, reason) otherwise."""
    m = Path(run_dir) / "metrics.jsonl"
    if m.is_file():
        lines = [json.loads(t) for t in m.read_text().splitlines() if t.strip()]
        if lines:
            if step is None:
                return lines[-1], f"{m} (last line, step {lines[-1].get('step')})"
            for line in reversed(lines):
                if line.get("step") == step:
                    return line, f"{m} (step {step})"
    s = Path(run_dir) / "summary.json"
    if s.is_file():
        final = json.loads(s.read_text()).get("final", {})
        if step is None or final.get("step") == step:
            return final, f"{s} (final, step {final.get('step')})"
    return None, f"no metrics line for step {step}"


def rel_err(a: float, b: float) -> float:
    """|a − b| / |b| (|a − b| when b = 0)."""
    d = abs(a - b)
    return d / abs(b) if b != 0 else d


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def build_module(spec: NetSpec, dtype=None):
    """The zoo net as an `nn.Module` whose parameters carry noisescope's block names, in θ
    order; frozen matrices are buffers (cast from their f64 values, as noisescope does)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    dtype = dtype or torch.float32

    class NoisescopeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.spec = spec
            for layer in spec.layers:
                if layer.kind == "dense":
                    setattr(self, layer.name, nn.Linear(layer.inputs, layer.outputs, dtype=dtype))
                elif layer.kind == "conv":
                    setattr(self, layer.name, nn.Conv2d(layer.c_in, layer.c_out, layer.kernel, dtype=dtype))
                elif layer.kind == "bias":
                    self.register_parameter(layer.name, nn.Parameter(torch.zeros(layer.outputs, dtype=dtype)))
                elif layer.kind == "frozen":
                    self.register_buffer(f"{layer.name}_matrix", torch.tensor(layer.matrix, dtype=dtype))
            names = [n for n, _ in self.named_parameters()]
            assert names == [b.name for b in spec.blocks], (names, spec.blocks)

        def forward(self, x):
            a = x
            n = a.shape[0]
            for layer in spec.layers:
                k = layer.kind
                if k == "dense":
                    a = getattr(self, layer.name)(a)
                elif k == "conv":
                    h, w = layer.hw
                    a = getattr(self, layer.name)(a.reshape(n, layer.c_in, h, w)).reshape(n, -1)
                elif k == "pool":
                    h, w = layer.hw
                    a = F.max_pool2d(a.reshape(n, layer.c_in, h, w), 2).reshape(n, -1)
                elif k == "act":
                    a = {"tanh": torch.tanh, "relu": torch.relu, "identity": lambda t: t}[layer.act](a)
                elif k == "frozen":
                    a = a @ getattr(self, f"{layer.name}_matrix").T
                elif k == "bias":
                    a = a + getattr(self, layer.name)
            return a

    return NoisescopeNet()


def make_loss(loss: dict):
    """The per-sample loss as an `nn.Module`: `per_sample(f, y)` [n], `forward(f, y)` their
    mean (`reduction = "mean"`, as the curvature libraries expect)."""
    import torch
    from torch import nn

    kind = loss["kind"]
    delta = float(loss.get("delta", 0.0))
    k1, k2 = math.cos(math.pi / 4), math.sin(math.pi / 4)

    class NoisescopeLoss(nn.Module):
        reduction = "mean"

        def per_sample(self, f, y):
            if kind == "mse":
                return 0.5 * ((f - y) ** 2).sum(-1)
            if kind == "cross-entropy":
                return -(torch.log_softmax(f, -1) * y).sum(-1)
            if kind == "clipped-mse":
                return 0.5 * ((f.clamp(delta, 1.0 - delta) - y) ** 2).sum(-1)
            if kind == "toy2d":
                f0, f1 = f[..., 0], f[..., 1]
                a, b = f0 - 1.0, f1 - 1.0
                s, t = a * k1 - b * k2, a * k1 + b * k2
                q1 = 10.0 * s**2 + 100.0 * t**2
                q2 = (f0 + 1.0) ** 2 + (f1 + 1.0) ** 2
                return torch.minimum(q1, q2)
            raise ValueError(f"unknown loss `{kind}`")

        def forward(self, f, y):
            return self.per_sample(f, y).mean()

    return NoisescopeLoss()


@dataclass
class TorchRun:
    """A run loaded into PyTorch.

    model: the zoo net (an nn.Module) with θ loaded; params: its parameters by block name;
    theta: θ as one flat tensor [D]; X, Y, labels: the training set (all N samples; Y the
    targets, None for toy2d; labels None without classes); loss_fn: mean per-sample loss;
    cfg: the run config; spec: the zoo net and θ layout; files: where it came from;
    weight_decay: γ of the objective L + (γ/2)‖θ‖² whose Hessian the probes take;
    test: (X, Y, labels) of the test set or None.
    """

    model: Any
    params: dict
    theta: Any
    X: Any
    Y: Any
    labels: Any
    loss_fn: Any
    cfg: dict
    spec: NetSpec
    files: RunFiles
    weight_decay: float
    test: Any = None

    def forward_theta(self, theta, x):
        """f(x; θ) for a flat θ (differentiable in θ, for torch.func)."""
        from torch.func import functional_call

        return functional_call(self.model, self.spec.unflatten(theta), (x,))

    def loss_theta(self, theta, x=None, y=None):
        """L(θ) = mean per-sample loss on (x, y) (default: the training set)."""
        x = self.X if x is None else x
        y = self.Y if y is None else y
        return self.loss_fn(self.forward_theta(theta, x), y)

    def objective_theta(self, theta, x=None, y=None):
        """L(θ) + (γ/2)‖θ‖²: the objective whose Hessian noisescope's probes take."""
        out = self.loss_theta(theta, x, y)
        if self.weight_decay != 0.0:
            out = out + 0.5 * self.weight_decay * (theta * theta).sum()
        return out


def _to_torch(d: Optional[Data], spec: NetSpec, dtype):
    import torch

    if d is None:
        return None
    y = d.targets(spec.out_dim)
    return (
        torch.tensor(d.x, dtype=torch.float32).to(dtype),
        None if y is None else torch.tensor(y, dtype=torch.float32).to(dtype),
        None if d.labels is None else torch.tensor(d.labels),
    )


def load_run(path, dtype=None, step=None, data_dir=None, with_test=False) -> TorchRun:
    """Loads a run (or checkpoint folder) into PyTorch in `dtype` (default: the run's
    precision). Inputs are noisescope's f32 features cast to dtype, θ is cast from its stored
    precision, as noisescope does for a run of the other precision."""
    import torch

    files = locate(path, step)
    cfg = read_toml(files.config)
    if dtype is None:
        dtype = torch.float64 if run_precision(cfg) == "f64" else torch.float32
    spec = net_spec(cfg["model"])
    theta_np = load_theta(files.model)
    check_blocks(spec, files.model, theta_np)
    model = build_module(spec, dtype)
    theta = torch.tensor(theta_np).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(spec.unflatten(theta)[name])
    train = load_data(cfg, data_dir, "train")
    X, Y, labels = _to_torch(train, spec, dtype)
    test = _to_torch(load_data(cfg, data_dir, "test"), spec, dtype) if with_test else None
    wd = float(cfg.get("optimizer", {}).get("weight_decay", 0.0))
    return TorchRun(
        model, dict(model.named_parameters()), theta, X, Y, labels, make_loss(spec.loss), cfg, spec, files, wd, test
    )


def accuracy(f, labels) -> Optional[float]:
    """`Net::accuracy`: argmax f = label (several outputs), 1[f > ½] = label (one output)."""
    if labels is None:
        return None
    pred = (f[:, 0] > 0.5).long() if f.shape[1] == 1 else f.argmax(1)
    return float((pred == labels).double().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run directory or checkpoint folder")
    ap.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    ap.add_argument("--f64", action="store_true", help="compute in float64 (default: the run's precision)")
    ap.add_argument("--data-dir", default=None, help="dataset folder (as noisescope's --data-dir)")
    ap.add_argument("--test", action="store_true", help="also evaluate the test set")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = ap.parse_args(argv)

    import torch

    torch.set_num_threads(a.threads)
    run = load_run(a.run, torch.float64 if a.f64 else None, a.step, a.data_dir, with_test=a.test)
    s = run.spec
    print(f"run {run.files.run_dir}  θ {run.files.model} ({run_precision(run.cfg)}, D = {s.dim})")
    print(f"model {s.name}, loss {s.loss['kind']}, computing in {run.theta.dtype}, {run.X.shape[0]} training samples")
    for b in s.blocks:
        print(f"  {b.name:16s} {str(b.shape):18s} θ[{b.offset}:{b.offset + b.size}]")
    ours = {}
    with torch.no_grad():
        f = run.model(run.X)
        ours["train_loss"] = float(run.loss_fn(f, run.Y))
        ours["train_acc"] = accuracy(f, run.labels)
        if run.test is not None:
            ft = run.model(run.test[0])
            ours["test_loss"] = float(run.loss_fn(ft, run.test[1]))
            ours["test_acc"] = accuracy(ft, run.test[2])
    line, where = run_metrics(run.files.run_dir, run.files.step)
    print(f"noisescope: {where}")
    print(f"{'quantity':12s} {'torch':>22s} {'noisescope':>22s} {'rel. error':>11s}")
    for k, v in ours.items():
        if v is None:
            continue
        ns = None if line is None else line.get(k)
        if ns is None:
            print(f"{k:12s} {v:22.15g} {'-':>22s}")
        else:
            print(f"{k:12s} {v:22.15g} {ns:22.15g} {rel_err(v, ns):11.3e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
