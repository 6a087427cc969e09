#!/usr/bin/env python3
"""Recompute noisescope's probes of a checkpoint with torch.func and compare them.

For the run's θ (`torch_load.load_run`: same model, θ layout, data, targets and loss), with
torch.func (per-sample gradients by `vmap(grad)`, Hessian-vector products by
forward-over-reverse `jvp(grad)`, batched with `vmap`):

- on the whole training set: L(θ) and ∇L(θ) (no weight decay), against the run's metrics
  line of that step and noisescope's gradient from one GD step (`crosscheck_numpy.py`
  explains the trick: noisescope prints no gradient);
- on the probes' samples (the first `probes.samples`, all when unset), with H the Hessian of
  L + (γ/2)‖θ‖² (γ the run's weight decay, as noisescope's probes take it):
  - the top-k eigenvalues of H: Lanczos with full reorthogonalization (`--lanczos-steps`),
    or `eigh` of the full Hessian when D ≤ `--eigh-max-dim`;
  - Tr H: Hutchinson with Rademacher probes (mean ± standard error), and exactly,
    Σ_j e_jᵀ H e_j over D unit vectors in vmapped blocks, when D ≤ `--exact-trace-max-dim`
    and the measured cost fits `--exact-trace-max-time`; for nets piecewise linear in θ's
    entries (ReLU, max-pooling, identity, linear models) also exactly and cheaply as
    Tr G_F + γD, because there ∂²f/∂θ_i² = 0, so diag H = diag G_F;
  - Tr Σ₁ = (1/N) Σ_n ‖g_n − ḡ‖² (SPEC §1: 1/N, as `crates/probe/src/covariance.rs`);
  - Tr(HΣ₁) = (1/N) Σ_n (g_n − ḡ)ᵀ H (g_n − ḡ), exact (N Hessian products, as
    `crates/probe/src/escape.rs`), Tr(HΣ̄) = Tr H · Tr Σ₁ / D and their ratio;
- noisescope's numbers: `noisescope probe --probes spectrum,escape,noise` on a temporary copy
  of the run (config and the one checkpoint; `probe` writes into the run directory), with
  `probes.top_k` = k, `probes.lanczos_steps` = `--lanczos-steps` and Hutchinson Tr H with
  `--ns-hutchinson` probes (`--ns-set` adds settings, e.g.
  `--ns-set 'probes.trace_h_sigma={method="exact"}'`), or its JSON from `--ns-json FILE`;
- where installed, curvlinops (`HessianLinearOperator`: scipy `eigsh`, `hutchinson_trace`)
  and PyHessian (power iteration with deflation, Hutchinson) on the same model and loss
  (their Hessian has no weight decay: γ and γD are added).

It prints a markdown table: torch, noisescope, relative error, and for noisescope's
stochastic estimates their distance from the exact value in standard errors; then the times.

Usage:
    python scripts/torch_crosscheck.py RUN_DIR [--f64] [--step N] [--lanczos-k 5]
        [--lanczos-steps 100] [--hutchinson 100] [--exact-trace-max-dim 100000]
        [--exact-trace-max-time 900] [--no-exact-trace] [--eigh-max-dim 2000]
        [--noisescope PATH | --ns-json FILE | --no-noisescope] [--ns-hutchinson N]
        [--ns-exact-trace] [--ns-exact-trace-max-dim 4000] [--ns-set KEY=VALUE ...]
        [--no-libs] [--memory 1] [--data-dir DIR] [--threads 1]

noisescope's own Tr H is Hutchinson unless D ≤ --ns-exact-trace-max-dim (or --ns-exact-trace):
its exact trace materializes the D × D identity (crates/probe/src/trace.rs), 10 GB at
D = 50 890.

Example (the quickstart, f64 reference on an f32 run):
    noisescope train --config configs/quickstart.toml --out /tmp/quick
    python scripts/torch_crosscheck.py /tmp/quick --f64 --noisescope target/release/noisescope
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import warnings

import numpy as np
import torch
from torch.func import grad, jvp, vmap

warnings.filterwarnings("ignore", message=".*torch.jit.script.*")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_load as tl  # noqa: E402
import crosscheck_numpy as cn  # noqa: E402  (its noisescope helpers)


class Timer:
    """Collects named wall-clock times."""

    def __init__(self):
        self.times = {}

    def __call__(self, name):
        timer = self

        class _T:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                timer.times[name] = time.perf_counter() - self.t

        return _T()


def activation_floats(spec: tl.NetSpec) -> int:
    """Values one sample's forward pass produces (for sizing vmapped blocks)."""
    total, width = 0, spec.in_dim
    for layer in spec.layers:
        if layer.kind == "dense":
            width = layer.outputs
        elif layer.kind == "conv":
            h, w = layer.hw
            width = layer.c_out * (h - layer.kernel + 1) * (w - layer.kernel + 1)
        elif layer.kind == "pool":
            width = width // 4
        elif layer.kind == "frozen":
            width = layer.matrix.shape[0]
        total += width
    return total


class Curvature:
    """H (of L + (γ/2)‖θ‖² on the probe samples) and the per-sample gradients at θ."""

    def __init__(self, run: tl.TorchRun, X, Y, budget_bytes: float):
        self.run, self.X, self.Y = run, X, Y
        self.theta = run.theta
        self.D = run.theta.numel()
        self.N = X.shape[0]

        def objective(th):
            return run.objective_theta(th, X, Y)

        def hvp(v):
            return jvp(grad(objective), (self.theta,), (v,))[1]

        self._hvp = hvp
        self._bhvp = vmap(hvp)
        per_dir = self.N * activation_floats(run.spec) * run.theta.element_size() * 8
        self.block = int(max(1, min(512, budget_bytes // max(per_dir, 1))))

    def hvp_rows(self, V):
        """H V for the rows of V [k, D], in blocks."""
        out = []
        for s in range(0, V.shape[0], self.block):
            out.append(self._bhvp(V[s : s + self.block]))
        return torch.cat(out, 0)

    def per_sample_gradients(self, chunk: int = 256):
        """G [N, D]: ∇ℓ_n (no weight decay)."""
        run = self.run

        def ps(th, x, y):
            f = run.forward_theta(th, x[None])
            return run.loss_fn.per_sample(f, None if y is None else y[None]).sum()

        g = vmap(grad(ps), in_dims=(None, 0, None if self.Y is None else 0))
        out = []
        for s in range(0, self.N, chunk):
            out.append(g(self.theta, self.X[s : s + chunk], None if self.Y is None else self.Y[s : s + chunk]))
        return torch.cat(out, 0)


def lanczos(mv, D: int, k: int, steps: int, dtype, seed: int = 0):
    """Top-k eigenvalues of a symmetric operator by Lanczos with full reorthogonalization
    (twice), the basis in float64. Returns (values descending, residual bounds, steps)."""
    gen = torch.Generator().manual_seed(seed)
    m = min(steps, D)
    V = torch.zeros(m + 1, D, dtype=torch.float64)
    v = torch.randn(D, generator=gen, dtype=torch.float64)
    V[0] = v / v.norm()
    alphas, betas = [], []
    for j in range(m):
        w = mv(V[j].to(dtype)).to(torch.float64)
        a = float(w @ V[j])
        alphas.append(a)
        w = w - a * V[j] - (betas[-1] * V[j - 1] if j > 0 else 0.0)
        for _ in range(2):
            w = w - V[: j + 1].T @ (V[: j + 1] @ w)
        b = float(w.norm())
        betas.append(b)
        if b <= 1e-12 * max(abs(a), 1.0):
            break
        V[j + 1] = w / b
    n = len(alphas)
    T = torch.diag(torch.tensor(alphas, dtype=torch.float64))
    if n > 1:
        off = torch.tensor(betas[: n - 1], dtype=torch.float64)
        T += torch.diag(off, 1) + torch.diag(off, -1)
    evals, evecs = torch.linalg.eigh(T)
    idx = torch.argsort(evals, descending=True)[:k]
    res = (betas[n - 1] * evecs[-1, idx]).abs()
    return evals[idx].tolist(), res.tolist(), n


def hutchinson(curv: Curvature, probes: int, seed: int = 1):
    """Tr H ≈ mean of zᵀ H z over Rademacher z; (mean, standard error, values)."""
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for s in range(0, probes, curv.block):
        b = min(curv.block, probes - s)
        Z = (torch.randint(0, 2, (b, curv.D), generator=gen) * 2 - 1).to(curv.theta.dtype)
        vals += (curv.hvp_rows(Z) * Z).sum(1).double().tolist()
    v = np.array(vals)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else math.inf
    return float(v.mean()), float(se), v


def exact_trace(curv: Curvature, max_time: float):
    """Σ_j e_jᵀ H e_j over all D coordinates in blocks; (trace, seconds) or (None, estimate)
    when the first block says it would take longer than max_time."""
    D, B = curv.D, curv.block
    total = 0.0
    t0 = time.perf_counter()
    for s in range(0, D, B):
        b = min(B, D - s)
        E = torch.zeros(b, D, dtype=curv.theta.dtype)
        idx = torch.arange(b)
        E[idx, s + idx] = 1.0
        total += float(curv.hvp_rows(E)[idx, s + idx].double().sum())
        if s == 0:
            est = (time.perf_counter() - t0) * D / b
            if est > max_time:
                return None, est
    return total, time.perf_counter() - t0


def is_piecewise_linear(spec: tl.NetSpec) -> bool:
    """Whether f is affine in each single entry of θ (ReLU, identity, max-pooling, dense,
    convolution, frozen maps, biases): then diag ∇²f = 0 and diag H = diag G_F."""
    return all(layer.kind != "act" or layer.act in ("relu", "identity") for layer in spec.layers)


def ggn_trace(curv: Curvature) -> float:
    """Tr G_F = (1/N) Σ_n ‖Λ_n^{1/2} J_n‖_F², by o vmapped backward passes with the columns
    of Λ_n^{1/2} as output cotangents (Λ the loss Hessian in the output)."""
    run = curv.run
    kind = run.spec.loss["kind"]
    o = run.spec.out_dim
    with torch.no_grad():
        f = run.forward_theta(curv.theta, curv.X)
    if kind == "mse":
        S = torch.eye(o, dtype=f.dtype).expand(curv.N, o, o)
    elif kind == "cross-entropy":
        p = torch.softmax(f, -1)
        # Λ = diag p − ppᵀ = S Sᵀ with S = diag √p − p √pᵀ.
        sp = p.sqrt()
        S = torch.diag_embed(sp) - p[:, :, None] * sp[:, None, :]
    elif kind == "clipped-mse":
        d = run.spec.loss["delta"]
        inside = ((f > d) & (f < 1.0 - d)).to(f.dtype)
        S = torch.diag_embed(inside)
    elif kind == "toy2d":
        return float("nan")
    else:
        raise ValueError(kind)

    def jt(th, x, s):  # J_nᵀ s for one sample
        return torch.func.vjp(lambda t: run.forward_theta(t, x[None])[0], th)[1](s)[0]

    total = 0.0
    for c in range(o):
        cols = S[:, :, c]
        for a in range(0, curv.N, 256):
            g = vmap(jt, in_dims=(None, 0, 0))(curv.theta, curv.X[a : a + 256], cols[a : a + 256])
            total += float((g.double() ** 2).sum())
    return total / curv.N


def files_dim(files: tl.RunFiles) -> int:
    return tl.net_spec(tl.read_toml(files.config)["model"]).dim


def run_noisescope_probe(ns: str, a, files: tl.RunFiles, k: int, tmp: Path) -> tuple:
    exact = a.ns_exact_trace or files_dim(files) <= a.ns_exact_trace_max_dim
    trace = '{method="exact"}' if exact else f'{{method="hutchinson",probes={a.ns_hutchinson or a.hutchinson}}}'
    sets = [f"probes.top_k={k}", f"probes.lanczos_steps={a.lanczos_steps}", f"probes.trace_h={trace}", *a.ns_set]
    return cn.ns_probe(ns, a, files, tmp, "spectrum,escape,noise", sets)


def library_checks(run: tl.TorchRun, X, Y, k: int, probes: int, timer: Timer) -> dict:
    """Top-k eigenvalues and Hutchinson Tr H from curvlinops and PyHessian, where installed
    (γ added to eigenvalues and γD to traces: their Hessian is of L alone)."""
    out = {}
    gamma, D = run.weight_decay, run.theta.numel()
    params = [p for p in run.model.parameters()]
    try:
        from curvlinops import HessianLinearOperator
        from curvlinops.trace.hutchinson import hutchinson_trace
        from scipy.sparse.linalg import eigsh

        H = HessianLinearOperator(run.model, run.loss_fn, params, [(X, Y)], check_deterministic=False)
        with timer("curvlinops eigsh"):
            vals = eigsh(H.to_scipy(), k=min(k, D - 1), which="LA", tol=1e-6, return_eigenvectors=False)
        out["curvlinops_top"] = sorted((float(v) + gamma for v in vals), reverse=True)
        if probes < D:
            torch.manual_seed(2)
            with timer("curvlinops Hutchinson"):
                out["curvlinops_trace"] = float(hutchinson_trace(H, probes)) + gamma * D
    except ImportError as e:
        out["curvlinops_error"] = f"not installed ({e})"
    except Exception as e:  # noqa: BLE001
        out["curvlinops_error"] = repr(e)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pyhessian import hessian as pyh

        torch.manual_seed(3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its backward(create_graph=True) warns
            hc = pyh(run.model, run.loss_fn, data=(X, Y), cuda=False)
            with timer("PyHessian eigenvalues"):
                vals, _ = hc.eigenvalues(maxIter=100, tol=1e-5, top_n=k)
            out["pyhessian_top"] = [float(v) + gamma for v in vals]
            with timer("PyHessian trace"):
                tr = hc.trace(maxIter=probes, tol=1e-3)
            out["pyhessian_trace"] = (float(np.mean(tr)) + gamma * D, len(tr))
        run.model.zero_grad(set_to_none=True)
    except ImportError as e:
        out["pyhessian_error"] = f"not installed ({e})"
    except Exception as e:  # noqa: BLE001
        out["pyhessian_error"] = repr(e)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run directory or checkpoint folder")
    ap.add_argument("--step", type=int, help="checkpoint step (default: latest)")
    ap.add_argument("--f64", action="store_true", help="compute in float64 (default: the run's precision)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch and noisescope threads (default 1)")
    ap.add_argument("--lanczos-k", type=int, default=5, help="top Hessian eigenvalues (default 5)")
    ap.add_argument("--lanczos-steps", type=int, default=100, help="Lanczos steps, torch and noisescope (default 100)")
    ap.add_argument("--eigh-max-dim", type=int, default=2000, help="full Hessian and eigh up to this D (default 2000)")
    ap.add_argument("--hutchinson", type=int, default=100, help="Hutchinson probes for Tr H (default 100)")
    ap.add_argument("--exact-trace-max-dim", type=int, default=100000, help="exact Tr H by HVPs up to this D (default 1e5)")
    ap.add_argument("--exact-trace-max-time", type=float, default=900.0, help="skip the exact Tr H when its estimate exceeds this (s)")
    ap.add_argument("--no-exact-trace", action="store_true", help="skip the exact Tr H by HVPs")
    ap.add_argument("--memory", type=float, default=1.0, help="GB for a block of vmapped HVPs (default 1)")
    ap.add_argument("--noisescope", default=None, help="the noisescope binary (as crosscheck_numpy.py)")
    ap.add_argument("--ns-json", default=None, help="take noisescope's probe values from this JSON (a probe file or `probe --json`)")
    ap.add_argument("--no-noisescope", action="store_true", help="torch only")
    ap.add_argument("--ns-hutchinson", type=int, default=None, help="noisescope's Tr H probes (default: --hutchinson)")
    ap.add_argument("--ns-exact-trace", action="store_true", help="noisescope's Tr H exact (D products) whatever D")
    ap.add_argument("--ns-exact-trace-max-dim", type=int, default=4000,
                    help="noisescope's Tr H exact up to this D (default 4000; its exact trace builds a D×D "
                    "identity, 10 GB at D = 50 890)")
    ap.add_argument("--ns-set", action="append", default=[], help="extra `probe --set` settings (repeatable)")
    ap.add_argument("--no-libs", action="store_true", help="skip curvlinops and PyHessian")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    timer = Timer()
    with timer("load"):
        run = tl.load_run(a.run, torch.float64 if a.f64 else None, a.step, a.data_dir)
    spec, cfg = run.spec, run.cfg
    D = spec.dim
    k = max(1, min(a.lanczos_k, D))
    samples = cfg.get("probes", {}).get("samples")
    X, Y = run.X, run.Y
    if samples is not None and samples < X.shape[0]:
        X, Y = X[:samples], None if Y is None else Y[:samples]
    curv = Curvature(run, X, Y, a.memory * 1e9)
    print(f"run {run.files.run_dir}, θ {run.files.model} ({tl.run_precision(cfg)}), torch in {run.theta.dtype}")
    print(f"model {spec.name}, D = {D}, loss {spec.loss['kind']}, γ = {run.weight_decay}; "
          f"training set N = {run.X.shape[0]}, probe samples N = {curv.N}; HVP block {curv.block}")

    t = {}  # torch values
    with timer("loss and gradient (training set)"):
        t["loss"] = float(run.loss_theta(run.theta))
        g = grad(run.loss_theta)(run.theta).double().numpy()
    if D <= a.eigh_max_dim:
        with timer(f"full Hessian ({D}×{D}) and eigh"):
            Hm = torch.func.hessian(lambda th: run.objective_theta(th, X, Y))(run.theta).double()
            ev = torch.linalg.eigvalsh((Hm + Hm.T) / 2)
        t["top"] = ev.flip(0)[:k].tolist()
        t["top_how"] = "eigh of the full Hessian"
        t["trace_exact"] = float(Hm.diagonal().sum())
        t["trace_exact_how"] = "diagonal of the full Hessian"
    else:
        with timer(f"Lanczos ({a.lanczos_steps} steps)"):
            top, res, steps = lanczos(curv._hvp, D, k, a.lanczos_steps, run.theta.dtype)
        t["top"], t["top_res"] = top, res
        t["top_how"] = f"Lanczos, {steps} steps, full reorthogonalization"
        if not a.no_exact_trace and D <= a.exact_trace_max_dim:
            with timer(f"exact Tr H ({D} HVPs, blocks of {curv.block})"):
                tr, secs = exact_trace(curv, a.exact_trace_max_time)
            if tr is None:
                print(f"exact Tr H skipped: {D} HVPs would take about {secs:.0f} s (> --exact-trace-max-time)")
                timer.times.pop(f"exact Tr H ({D} HVPs, blocks of {curv.block})", None)
            else:
                t["trace_exact"], t["trace_exact_how"] = tr, f"Σ e_jᵀHe_j, {D} HVPs"
    with timer(f"Hutchinson Tr H ({a.hutchinson} probes)"):
        t["trace_hutch"], t["trace_hutch_se"], _ = hutchinson(curv, a.hutchinson)
    if is_piecewise_linear(spec) and spec.loss["kind"] != "toy2d":
        with timer("Tr G_F (exact Tr H, piecewise-linear net)"):
            t["trace_ggn"] = ggn_trace(curv) + run.weight_decay * D
    with timer(f"per-sample gradients ({curv.N}×{D})"):
        G = curv.per_sample_gradients()
        gbar = G.mean(0)
        Gd = G.double()
        t["trace_sigma"] = float((Gd**2).sum() / curv.N - (Gd.mean(0) ** 2).sum())
        Gc = G - gbar
    with timer(f"exact Tr(HΣ₁) ({curv.N} HVPs)"):
        hs = 0.0
        for s in range(0, curv.N, curv.block):
            Vb = Gc[s : s + curv.block]
            hs += float((curv.hvp_rows(Vb) * Vb).double().sum())
        t["trace_h_sigma"] = hs / curv.N
    tr_h = t.get("trace_exact", t.get("trace_ggn", t["trace_hutch"]))
    t["trace_h_sigma_iso"] = tr_h * t["trace_sigma"] / D
    t["escape_ratio"] = t["trace_h_sigma"] / t["trace_h_sigma_iso"]

    # noisescope
    ns_vals, ns_time, commands = {}, None, []
    ns_loss, ns_grad = None, None
    line, where = tl.run_metrics(run.files.run_dir, run.files.step)
    if line is not None and "train_loss" in line:
        ns_loss = (line["train_loss"], where)
    tmp = Path(tempfile.mkdtemp(prefix="ns-torch-crosscheck-"))
    try:
        if a.ns_json:
            j = json.loads(Path(a.ns_json).read_text())
            ns_vals, ns_time = j.get("probes", j), j.get("time_s")
        elif not a.no_noisescope:
            ns = cn.find_noisescope(a.noisescope)
            with timer("noisescope probe (wall)"):
                j, cmd = run_noisescope_probe(ns, a, run.files, k, tmp)
            commands.append(cmd)
            ns_vals, ns_time = j["probes"], j.get("time_s")
            assert j["samples"] == curv.N, (j["samples"], curv.N)
            theta0 = tl.load_theta(run.files.model).astype(np.float64)
            gmax = float(np.abs(g).max())
            ratio = float(np.abs(theta0).max()) / gmax if gmax > 0 else 1.0
            lr = 2.0 ** min(max(math.floor(math.log2(max(ratio, 1e-300))), 0), 40)
            with timer("noisescope GD step (wall)"):
                theta1, L0, cmd = cn.ns_gd_step(ns, a, run.files, cfg, lr, tmp)
            commands.append(cmd)
            ns_grad = (theta0 - theta1) / lr
            ns_loss = (L0, f"step-0 line of a one-step noisescope GD run (η = {lr:g})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    libs = {} if a.no_libs else library_checks(run, X, Y, k, a.hutchinson, timer)

    # The table.
    def fmt(v):
        return "–" if v is None else f"{v:.8g}"

    rows = []

    def row(q, tv, nv, note=""):
        err = None if (tv is None or nv is None) else tl.rel_err(nv, tv)
        rows.append(f"| {q} | {fmt(tv)} | {fmt(nv)} | {'–' if err is None else f'{err:.2e}'} | {note} |")

    row(f"L(θ), training set (N = {run.X.shape[0]})", t["loss"], None if ns_loss is None else ns_loss[0],
        "" if ns_loss is None else ns_loss[1])
    gn = float(np.linalg.norm(g))
    if ns_grad is not None:
        rows.append(f"| ∇L(θ): ‖g_ns − g‖/‖g‖ | {gn:.8g} | {float(np.linalg.norm(ns_grad)):.8g} | "
                    f"{float(np.linalg.norm(ns_grad - g)) / gn:.2e} | ‖∇L‖ in the value columns |")
    else:
        row("‖∇L(θ)‖", gn, None)
    ns_top = ns_vals.get("hessian_top") or []
    for i in range(k):
        note = t["top_how"] if i == 0 else ""
        if "top_res" in t:
            note += f" (Ritz residual bound {t['top_res'][i]:.0e})"
        row(f"λ{i + 1}(H)", t["top"][i], ns_top[i] if i < len(ns_top) else None, note.strip())
    ref = t.get("trace_exact", t.get("trace_ggn"))
    ref_how = t.get("trace_exact_how", "Tr G_F + γD" if "trace_ggn" in t else None)
    ns_tr, ns_se = ns_vals.get("trace_h"), ns_vals.get("trace_h_se")
    if ns_tr is None:
        ns_how = ""
    elif ns_se:
        ns_how = f"noisescope Hutchinson ± {ns_se:.3g}"
        if ref is not None:
            ns_how += f" ({(ns_tr - ref) / ns_se:+.2f} SE from the exact value)"
    else:
        ns_how = "noisescope exact"
    if ref is not None:
        row("Tr H", ref, ns_tr, f"torch {ref_how}; {ns_how}")
    if "trace_exact" in t and "trace_ggn" in t:
        row("Tr H = Tr G_F + γD (piecewise-linear net)", t["trace_ggn"], None,
            f"vs exact: {tl.rel_err(t['trace_ggn'], t['trace_exact']):.1e}")
    zt = "" if ref is None else f" ({(t['trace_hutch'] - ref) / t['trace_hutch_se']:+.2f} SE from the exact value)"
    row(f"Tr H, torch Hutchinson ({a.hutchinson} probes)", t["trace_hutch"], ns_tr if ref is None else None,
        f"± {t['trace_hutch_se']:.3g}{zt}" + ("" if ref is not None else f"; {ns_how}"))
    row(f"Tr Σ₁ (N = {curv.N}, 1/N)", t["trace_sigma"], ns_vals.get("trace_sigma"), "")
    hs_se = ns_vals.get("trace_h_sigma_se")
    note = "exact"
    if hs_se:
        note = f"ns Hutchinson ± {hs_se:.3g}: {(ns_vals['trace_h_sigma'] - t['trace_h_sigma']) / hs_se:+.2f} SE"
    row("Tr(HΣ₁)", t["trace_h_sigma"], ns_vals.get("trace_h_sigma"), note)
    row("Tr(HΣ̄) = Tr H·Tr Σ₁/D", t["trace_h_sigma_iso"], ns_vals.get("trace_h_sigma_iso"), "ns: its Tr H estimate")
    row("Tr(HΣ₁)/Tr(HΣ̄)", t["escape_ratio"], ns_vals.get("escape_ratio"), "")
    for name in ("curvlinops", "pyhessian"):
        if f"{name}_top" in libs:
            for i, v in enumerate(libs[f"{name}_top"]):
                row(f"λ{i + 1}(H) {name}", t["top"][i], v,
                    "scipy eigsh (ARPACK)" if name == "curvlinops" else "power iteration + deflation")
        if f"{name}_trace" in libs:
            tv = libs[f"{name}_trace"]
            tv, cnt = (tv if isinstance(tv, tuple) else (tv, a.hutchinson))
            row(f"Tr H {name} Hutchinson", ref if ref is not None else t["trace_hutch"], tv,
                f"{cnt} probes; compared with {'exact' if ref is not None else 'torch Hutchinson'}")
        if f"{name}_error" in libs:
            rows.append(f"| {name} | – | – | – | {libs[f'{name}_error'][:120]} |")

    print()
    print("| quantity | torch | noisescope / library | rel. error | note |")
    print("|---|---:|---:|---:|---|")
    print("\n".join(rows))
    print()
    print("| step | seconds |")
    print("|---|---:|")
    for name, s in timer.times.items():
        print(f"| torch: {name} | {s:.2f} |" if "noisescope" not in name else f"| {name} | {s:.2f} |")
    if ns_time is not None:
        print(f"| noisescope probe (its own time_s) | {ns_time:.2f} |")
    for c in commands:
        print("  $ " + " ".join(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
