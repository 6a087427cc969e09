#!/usr/bin/env python3
"""Cross-check noisescope's loss, gradient and gradient noise with numpy alone (no torch).

For a run's checkpoint θ this recomputes, in float64 from θ and the f32 features exactly as
noisescope stored them (`torch_load.py`'s numpy part rebuilds the data, random labels and
synthetic draws included):

- L(θ), the mean training loss over all N training samples;
- ∇L(θ), by a hand-written backward pass through every zoo layer (dense, 2-D convolution,
  2 × 2 max-pooling, tanh/ReLU, frozen linear maps, bias), without weight decay;
- Tr Σ₁ = (1/N) Σ_n ‖g_n − ḡ‖² and the top-k eigenvalues of Σ₁ (SPEC §1: 1/N, not
  1/(N − 1)), on the probes' sample subset (`probes.samples`, the first samples), through
  the N × N centred Gram matrix of the per-sample gradients;

and compares them with what the noisescope binary reports for the same θ:

- loss and gradient: noisescope has no command that prints a gradient, so the script takes
  one full-batch GD step from the checkpoint with noisescope itself
  (`noisescope train --config RUN/config.toml --set init={from=CKPT} --set noise={dynamic="gd"}
  --set optimizer={lr=η} --set steps=1 ...` into a temporary folder) and reads
  ∇L(θ) = (θ₀ − θ₁)/η from the two checkpoints, and L(θ₀) from that run's step-0 metrics
  line. η is a power of two (exact products) near ‖θ‖_∞/‖∇L‖_∞, so that θ₁ − θ₀ is as
  large as θ and the f32 rounding of θ₁ costs about 2⁻²⁴‖∇L‖_∞ per entry. With momentum 0,
  weight decay 0 and a constant schedule the step is exactly θ₁ = θ₀ − η ∇L(θ₀).
  `--gradient FILE` instead reads a safetensors file with tensors `gradient` [D] and `loss`
  [1] (the output a future `noisescope probe --dump-gradient FILE` would write);
- Tr Σ₁ and the Σ₁ eigenvalues: `noisescope probe --probes noise` on a temporary copy of the
  run (config and the one checkpoint: `probe` writes its JSON and figures into the run).

Exit status: 0 when every checked error is within its tolerance, 1 when one is not, 2 on a
usage or run error. Checked errors and their tolerances:

    run precision   loss     gradient   Tr Σ₁, Σ₁ eigenvalues
    f32             1e-5     1e-5       1e-4
    f64             1e-11    1e-11      1e-9

The loss and the Σ₁ quantities are compared as |ns − numpy|/|numpy|. The gradient is compared
as ‖g_ns − g‖ / RMS‖g_n‖, RMS‖g_n‖ = ((1/N) Σ_n ‖∇ℓ_n‖²)^½: ∇L is a mean of N per-sample
gradients, and f32 sums are off by about 1e-7·RMS‖g_n‖ whatever ‖∇L‖ is, so near a minimum
(‖∇L‖ ≪ RMS‖g_n‖) ‖g_ns − g‖/‖∇L‖ reaches 1e-3 in f32 without anything being wrong (the
toy2d run does). That ratio, the largest entry error and the cosine are printed too, and the
per-block errors, without a check. Measured (f32): loss ≤ 5e-7, gradient ≤ 3e-7, Σ₁ ≤ 3e-6;
(f64): ≤ 1e-14. `--rtol-scale` multiplies every tolerance.

Usage:
    python scripts/crosscheck_numpy.py RUN_DIR [--step N] [--data-dir DIR]
        [--noisescope PATH] [--gradient FILE] [--top-k 5] [--no-noise] [--rtol-scale 1]

The noisescope binary is `--noisescope`, else $NOISESCOPE_BIN, else `noisescope` on PATH,
else target/release/noisescope of this checkout. A CI check:

    noisescope train --config configs/quickstart.toml --set steps=200 --out /tmp/q
    python scripts/crosscheck_numpy.py /tmp/q --noisescope target/release/noisescope
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_load as tl  # noqa: E402  (numpy-only part; torch is never imported)

TOLERANCES = {
    "f32": {"loss": 1e-5, "gradient": 1e-5, "noise": 1e-4},
    "f64": {"loss": 1e-11, "gradient": 1e-11, "noise": 1e-9},
}

# ---------------------------------------------------------------------------------------------
# A numpy network: forward, backward, per-sample gradient Gram matrix
# ---------------------------------------------------------------------------------------------


def im2col(a: np.ndarray, c: int, hw: tuple, k: int) -> np.ndarray:
    """Patches [n, c·k·k, L] of a [n, c·h·w], rows ordered (channel, kernel row, column)."""
    n = a.shape[0]
    h, w = hw
    win = np.lib.stride_tricks.sliding_window_view(a.reshape(n, c, h, w), (k, k), axis=(2, 3))
    ho, wo = h - k + 1, w - k + 1
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * k * k, ho * wo)


def col2im(cols: np.ndarray, c: int, hw: tuple, k: int) -> np.ndarray:
    """The adjoint of im2col: [n, c·k·k, L] → [n, c·h·w]."""
    n = cols.shape[0]
    h, w = hw
    ho, wo = h - k + 1, w - k + 1
    cols = cols.reshape(n, c, k, k, ho, wo)
    out = np.zeros((n, c, h, w))
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + ho, j : j + wo] += cols[:, :, i, j]
    return out.reshape(n, -1)


class NumpyNet:
    """The zoo net of `spec` at θ, in float64. Frozen matrices are rounded to the run's
    precision first, as noisescope builds them."""

    def __init__(self, spec: tl.NetSpec, theta: np.ndarray, precision: str):
        self.spec = spec
        self.theta = theta.astype(np.float64)
        self.p = self.spec.unflatten(self.theta)
        cast = np.float32 if precision == "f32" else np.float64
        self.frozen = {l.name: l.matrix.astype(cast).astype(np.float64) for l in spec.layers if l.kind == "frozen"}

    def forward(self, x: np.ndarray) -> tuple:
        """(f [n, o], the activations a_0 = x, …, a_L, and the pooling argmaxes)."""
        acts, memo = [x.astype(np.float64)], {}
        for li, layer in enumerate(self.spec.layers):
            a = acts[-1]
            n = a.shape[0]
            k = layer.kind
            if k == "dense":
                z = a @ self.p[f"{layer.name}.weight"].T + self.p[f"{layer.name}.bias"]
            elif k == "conv":
                P = im2col(a, layer.c_in, layer.hw, layer.kernel)
                W = self.p[f"{layer.name}.weight"].reshape(layer.c_out, -1)
                z = (np.einsum("op,npl->nol", W, P) + self.p[f"{layer.name}.bias"][None, :, None]).reshape(n, -1)
                memo[li] = P
            elif k == "pool":
                h, w = layer.hw
                win = a.reshape(n, layer.c_in, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)
                win = win.reshape(n, layer.c_in, h // 2, w // 2, 4)  # (0,0), (0,1), (1,0), (1,1)
                arg = win.argmax(-1)  # the first maximum, as noisescope's strict `>`
                memo[li] = arg
                z = np.take_along_axis(win, arg[..., None], -1)[..., 0].reshape(n, -1)
            elif k == "act":
                z = {"tanh": np.tanh, "relu": lambda t: np.maximum(t, 0.0), "identity": lambda t: t}[layer.act](a)
            elif k == "frozen":
                z = a @ self.frozen[layer.name].T
            elif k == "bias":
                z = a + self.p[layer.name]
            acts.append(z)
        return acts[-1], acts, memo

    def backward(self, acts: list, memo: dict, delta: np.ndarray, per_sample: bool = False) -> tuple:
        """Back-propagates δ = ∂(Σ_n c_n ℓ_n)/∂f. Returns (gradient [D], per-sample factors):
        the factors, when asked, are one entry per parameter block group, ("outer", δ_n, â_n)
        for a dense layer (g_n = δ_n â_nᵀ, â = [a, 1]) or ("rows", G_l [n, D_l])."""
        grads, factors = {}, []
        for li in range(len(self.spec.layers) - 1, -1, -1):
            layer = self.spec.layers[li]
            a_in, a_out = acts[li], acts[li + 1]
            n = a_in.shape[0]
            k = layer.kind
            if k == "dense":
                W = self.p[f"{layer.name}.weight"]
                grads[f"{layer.name}.weight"] = delta.T @ a_in
                grads[f"{layer.name}.bias"] = delta.sum(0)
                if per_sample:
                    factors.append(("outer", delta, np.concatenate([a_in, np.ones((n, 1))], 1)))
                delta = delta @ W
            elif k == "conv":
                P = memo[li]
                L = P.shape[2]
                d3 = delta.reshape(n, layer.c_out, L)
                grads[f"{layer.name}.weight"] = np.einsum("nol,npl->op", d3, P).reshape(
                    self.p[f"{layer.name}.weight"].shape
                )
                grads[f"{layer.name}.bias"] = d3.sum((0, 2))
                if per_sample:
                    gw = np.einsum("nol,npl->nop", d3, P).reshape(n, -1)
                    factors.append(("rows", np.concatenate([gw, d3.sum(2)], 1)))
                W = self.p[f"{layer.name}.weight"].reshape(layer.c_out, -1)
                delta = col2im(np.einsum("op,nol->npl", W, d3), layer.c_in, layer.hw, layer.kernel)
            elif k == "pool":
                h, w = layer.hw
                arg = memo[li]
                out = np.zeros((n, layer.c_in, h // 2, w // 2, 4))
                np.put_along_axis(out, arg[..., None], delta.reshape(n, layer.c_in, h // 2, w // 2, 1), -1)
                out = out.reshape(n, layer.c_in, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5)
                delta = out.reshape(n, -1)
            elif k == "act":
                if layer.act == "tanh":
                    delta = delta * (1.0 - a_out**2)
                elif layer.act == "relu":
                    delta = delta * (a_in > 0.0)
            elif k == "frozen":
                delta = delta @ self.frozen[layer.name]
            elif k == "bias":
                grads[layer.name] = delta.sum(0)
                if per_sample:
                    factors.append(("rows", delta))
        g = np.concatenate([grads[b.name].reshape(-1) for b in self.spec.blocks])
        return g, factors


def loss_values(loss: dict, f: np.ndarray, y) -> np.ndarray:
    """ℓ_n, [n] (`crates/models/src/loss.rs`)."""
    kind = loss["kind"]
    if kind == "mse":
        return 0.5 * ((f - y) ** 2).sum(1)
    if kind == "cross-entropy":
        m = f.max(1, keepdims=True)
        logp = f - m - np.log(np.exp(f - m).sum(1, keepdims=True))
        return -(logp * y).sum(1)
    if kind == "clipped-mse":
        d = loss["delta"]
        return 0.5 * ((np.clip(f, d, 1.0 - d) - y) ** 2).sum(1)
    if kind == "toy2d":
        q1, q2, _, _ = _toy(f)
        return np.minimum(q1, q2)
    raise ValueError(kind)


def _toy(f):
    k1, k2 = math.cos(math.pi / 4), math.sin(math.pi / 4)
    a, b = f[:, 0] - 1.0, f[:, 1] - 1.0
    s, t = a * k1 - b * k2, a * k1 + b * k2
    q1 = 10.0 * s**2 + 100.0 * t**2
    q2 = (f[:, 0] + 1.0) ** 2 + (f[:, 1] + 1.0) ** 2
    return q1, q2, s, t


def loss_grad(loss: dict, f: np.ndarray, y) -> np.ndarray:
    """∂ℓ_n/∂f_n, [n, o]."""
    kind = loss["kind"]
    if kind == "mse":
        return f - y
    if kind == "cross-entropy":
        e = np.exp(f - f.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True) * y.sum(1, keepdims=True) - y
    if kind == "clipped-mse":
        d = loss["delta"]
        return (np.clip(f, d, 1.0 - d) - y) * ((f > d) & (f < 1.0 - d))
    if kind == "toy2d":
        k1, k2 = math.cos(math.pi / 4), math.sin(math.pi / 4)
        q1, q2, s, t = _toy(f)
        gs, gt = 20.0 * s, 200.0 * t
        sharp = np.stack([(gs + gt) * k1, (gt - gs) * k2], 1)
        flat = 2.0 * (f + 1.0)
        return np.where((q2 < q1)[:, None], flat, sharp)
    raise ValueError(kind)


def loss_and_gradient(net: NumpyNet, x: np.ndarray, y) -> tuple:
    """(L, ∇L) with L = (1/N) Σ ℓ_n."""
    f, acts, memo = net.forward(x)
    n = x.shape[0]
    L = float(loss_values(net.spec.loss, f, y).mean())
    g, _ = net.backward(acts, memo, loss_grad(net.spec.loss, f, y) / n)
    return L, g


def per_sample_sq_norms(net: NumpyNet, x: np.ndarray, y, chunk: int = 500) -> np.ndarray:
    """‖g_n‖² = ‖∇ℓ_n‖² for every sample, [n]."""
    out = []
    for s in range(0, x.shape[0], chunk):
        f, acts, memo = net.forward(x[s : s + chunk])
        yy = None if y is None else y[s : s + chunk]
        _, factors = net.backward(acts, memo, loss_grad(net.spec.loss, f, yy), per_sample=True)
        sq = 0.0
        for fac in factors:
            if fac[0] == "outer":
                sq = sq + (fac[1] ** 2).sum(1) * (fac[2] ** 2).sum(1)
            else:
                sq = sq + (fac[1] ** 2).sum(1)
        out.append(sq)
    return np.concatenate(out)


def gradient_noise(net: NumpyNet, x: np.ndarray, y, k: int, chunk: int = 500) -> tuple:
    """(Tr Σ₁, top-k eigenvalues of Σ₁) from the N × N Gram matrix K = G Gᵀ of the
    per-sample gradients: Σ₁ = (1/N) G_cᵀ G_c has the nonzero eigenvalues of
    (1/N) P K P, P = I − 11ᵀ/N."""
    n = x.shape[0]
    K = np.zeros((n, n))
    parts = []
    for s in range(0, n, chunk):
        f, acts, memo = net.forward(x[s : s + chunk])
        yy = None if y is None else y[s : s + chunk]
        _, factors = net.backward(acts, memo, loss_grad(net.spec.loss, f, yy), per_sample=True)
        parts.append(factors)
    # K[i, j] = Σ_blocks ⟨g_i, g_j⟩, block by block over chunk pairs.
    for bi, fi in enumerate(parts):
        for bj, fj in enumerate(parts):
            if bj < bi:
                continue
            blk = 0.0
            for a, b in zip(fi, fj):
                if a[0] == "outer":  # ⟨δ_i â_iᵀ, δ_j â_jᵀ⟩ = (δ_i·δ_j)(â_i·â_j)
                    blk = blk + (a[1] @ b[1].T) * (a[2] @ b[2].T)
                else:
                    blk = blk + a[1] @ b[1].T
            i0, j0 = bi * chunk, bj * chunk
            K[i0 : i0 + blk.shape[0], j0 : j0 + blk.shape[1]] = blk
            K[j0 : j0 + blk.shape[1], i0 : i0 + blk.shape[0]] = blk.T
    r = K.mean(1)
    Kc = (K - r[:, None] - r[None, :] + r.mean()) / n
    vals = np.linalg.eigvalsh(Kc)[::-1]
    return float(np.trace(Kc)), vals[:k]


# ---------------------------------------------------------------------------------------------
# noisescope's side
# ---------------------------------------------------------------------------------------------


def find_noisescope(arg) -> str:
    for cand in [arg, os.environ.get("NOISESCOPE_BIN"), shutil.which("noisescope"), str(tl.REPO / "target/release/noisescope")]:
        if cand and Path(cand).is_file():
            return cand
    raise FileNotFoundError("no noisescope binary: pass --noisescope PATH or set NOISESCOPE_BIN")


def ns_global(a) -> list:
    out = ["--quiet", "--threads", str(a.threads)]
    if a.data_dir:
        out += ["--data-dir", a.data_dir]
    return out


def _toml_str(p: Path) -> str:
    return json.dumps(str(p))  # a TOML basic string


def ns_gd_step(ns: str, a, files: tl.RunFiles, cfg: dict, lr: float, tmp: Path) -> tuple:
    """One full-batch GD step with noisescope from the checkpoint: (θ₁ as f64, L(θ₀) from
    the step-0 metrics line)."""
    out = tmp / f"gd-step-{lr:g}"
    sets = [
        "steps=1",
        "log_every=1",
        "checkpoint_every=1",
        "keep_checkpoints=0",
        f"init={{from={_toml_str(files.checkpoint_dir)}}}",
        f"optimizer={{lr={lr!r}}}",
        'noise={dynamic="gd"}',
        "probes.every=0",
    ]
    if cfg["data"]["kind"] != "toy2d":  # no test set to evaluate after the step
        sets.append("data.test=0")
    cmd = [ns, *ns_global(a), "train", "--config", str(files.config), "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stdout}{r.stderr}")
    theta1 = tl.load_theta(out / "checkpoints" / "step-0000001" / "model.safetensors").astype(np.float64)
    line0 = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert line0["step"] == 0
    return theta1, float(line0["train_loss"]), cmd


def ns_probe(ns: str, a, files: tl.RunFiles, tmp: Path, probes: str, sets: list) -> tuple:
    """`noisescope probe --probes PROBES --set S ...` on a copy of the run (its config and the
    one checkpoint, so the run itself is never written to); its JSON and the command."""
    copy = tmp / "probe-run"
    ck = copy / "checkpoints" / files.checkpoint_dir.name
    ck.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(files.config, copy / "config.toml")
    shutil.copytree(files.checkpoint_dir, ck)
    (copy / "checkpoints" / "latest").write_text(ck.name)
    cmd = [ns, *ns_global(a), "--json", "probe", "--run", str(copy), "--probes", probes]
    for s in sets:
        cmd += ["--set", s]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout), cmd


def ns_probe_noise(ns: str, a, files: tl.RunFiles, k: int, tmp: Path) -> tuple:
    """`noisescope probe --probes noise` on a copy of the run: its probes, samples, command."""
    out, cmd = ns_probe(ns, a, files, tmp, "noise", [f"probes.top_k={k}"])
    return out["probes"], out["samples"], cmd


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run directory or checkpoint folder")
    ap.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    ap.add_argument("--data-dir", default=None, help="dataset folder (as noisescope's --data-dir)")
    ap.add_argument("--noisescope", default=None, help="the noisescope binary")
    ap.add_argument("--threads", type=int, default=1, help="noisescope's --threads (default 1)")
    ap.add_argument("--gradient", default=None, help="safetensors file with `gradient` [D] and `loss` [1] from noisescope")
    ap.add_argument("--gd-lr", type=float, default=None, help="η of the GD step (default: a power of two near ‖θ‖∞/‖∇L‖∞)")
    ap.add_argument("--top-k", type=int, default=5, help="Σ₁ eigenvalues to compare (default 5)")
    ap.add_argument("--no-noise", action="store_true", help="skip Tr Σ₁ and the Σ₁ eigenvalues")
    ap.add_argument("--rtol-scale", type=float, default=1.0, help="multiply every tolerance by this")
    ap.add_argument("--keep", action="store_true", help="keep the temporary noisescope runs")
    a = ap.parse_args(argv)

    try:
        files = tl.locate(a.run, a.step)
        cfg = tl.read_toml(files.config)
        precision = tl.run_precision(cfg)
        spec = tl.net_spec(cfg["model"])
        theta = tl.load_theta(files.model)
        tl.check_blocks(spec, files.model, theta)
        train = tl.load_data(cfg, a.data_dir, "train")
    except Exception as e:  # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        return 2
    tol = {k: v * a.rtol_scale for k, v in TOLERANCES[precision].items()}
    net = NumpyNet(spec, theta, precision)
    y = train.targets(spec.out_dim)
    print(f"run {files.run_dir}, θ {files.model} ({precision}, D = {spec.dim})")
    print(f"model {spec.name}, loss {spec.loss['kind']}, N = {train.n} training samples; numpy in float64")

    t = time.perf_counter()
    L, g = loss_and_gradient(net, train.x, y)
    t_grad = time.perf_counter() - t
    rows = []  # (quantity, numpy, noisescope, rel. error, tolerance or None)
    tmp = Path(tempfile.mkdtemp(prefix="ns-crosscheck-"))
    commands = []
    try:
        ns = None
        if a.gradient:
            st = tl.read_safetensors(Path(a.gradient))
            g_ns, L_ns = st["gradient"].astype(np.float64), float(st["loss"].reshape(-1)[0])
            source = a.gradient
        else:
            ns = find_noisescope(a.noisescope)
            gmax = float(np.abs(g).max())
            lr = a.gd_lr
            if lr is None:
                ratio = float(np.abs(theta).max()) / gmax if gmax > 0 else 1.0
                lr = 2.0 ** min(max(math.floor(math.log2(max(ratio, 1e-300))), 0), 40)
            theta1, L_ns, cmd = ns_gd_step(ns, a, files, cfg, lr, tmp)
            commands.append(cmd)
            g_ns = (theta.astype(np.float64) - theta1) / lr
            source = f"one noisescope GD step, η = {lr:g}: ∇L = (θ₀ − θ₁)/η"
        gn = float(np.linalg.norm(g))
        gns = float(np.linalg.norm(g_ns))
        diff = float(np.linalg.norm(g_ns - g))
        # The scale of the terms ∇L averages: an f32 mean of N per-sample gradients is off by
        # about ε·RMS‖g_n‖, which near a minimum (‖∇L‖ ≪ RMS‖g_n‖) is large relative to ‖∇L‖.
        rms = float(np.sqrt(per_sample_sq_norms(net, train.x, y).mean()))
        rows.append(("loss L(θ)", L, L_ns, tl.rel_err(L_ns, L), tol["loss"]))
        rows.append(("∇L: ‖Δ‖ / RMS‖g_n‖", gn, gns, diff / rms if rms > 0 else diff, tol["gradient"]))
        rows.append(("∇L: ‖Δ‖ / ‖∇L‖", gn, gns, diff / gn if gn > 0 else diff, None))
        mx = float(np.abs(g).max())
        rows.append(("∇L: max abs Δ / max abs ∇L", mx, float(np.abs(g_ns).max()), float(np.abs(g_ns - g).max()) / mx if mx > 0 else 0.0, None))
        rows.append(("∇L: cosine", 1.0, float(g @ g_ns) / (gn * gns) if gn * gns > 0 else 0.0, 1.0 - (float(g @ g_ns) / (gn * gns) if gn * gns > 0 else 0.0), None))
        for b in spec.blocks:
            sl = slice(b.offset, b.offset + b.size)
            nb = float(np.linalg.norm(g[sl]))
            rows.append((f"  ∇L[{b.name}]", nb, float(np.linalg.norm(g_ns[sl])), float(np.linalg.norm(g_ns[sl] - g[sl])) / nb if nb > 0 else 0.0, None))
        t_noise = None
        if not a.no_noise:
            ns = ns or find_noisescope(a.noisescope)
            k = max(1, min(a.top_k, spec.dim))
            probes, samples, cmd = ns_probe_noise(ns, a, files, k, tmp)
            commands.append(cmd)
            sub = train.first(cfg.get("probes", {}).get("samples"))
            assert sub.n == samples, (sub.n, samples)
            t = time.perf_counter()
            tr, top = gradient_noise(net, sub.x, sub.targets(spec.out_dim), k)
            t_noise = time.perf_counter() - t
            rows.append((f"Tr Σ₁ (N = {sub.n})", tr, probes["trace_sigma"], tl.rel_err(probes["trace_sigma"], tr), tol["noise"]))
            for i, v in enumerate(probes.get("sigma_top", [])):
                rows.append((f"  λ{i + 1}(Σ₁)", float(top[i]), v, tl.rel_err(v, float(top[i])), tol["noise"]))
    except Exception as e:  # noqa: BLE001
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"noisescope gradient: {source}")
    for c in commands:
        print("  $ " + " ".join(c))
    print(f"numpy: loss and gradient {t_grad:.2f} s" + (f", per-sample Gram matrix {t_noise:.2f} s" if t_noise else ""))
    print()
    print(f"| quantity | numpy (f64) | noisescope ({precision}) | rel. error | tolerance | |")
    print("|---|---:|---:|---:|---:|---|")
    failed = 0
    for q, ours, theirs, err, t in rows:
        if t is None:  # information, not a check
            print(f"| {q} | {ours:.10g} | {theirs:.10g} | {err:.2e} | – | |")
            continue
        ok = err <= t and math.isfinite(err)
        failed += not ok
        print(f"| {q} | {ours:.10g} | {theirs:.10g} | {err:.2e} | {t:.0e} | {'ok' if ok else 'FAIL'} |")
    print()
    print("all within tolerance" if not failed else f"{failed} quantities outside their tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
