#!/usr/bin/python3
"""Generate float64 golden data for EVERY batch-normalization mode (tests/test_bn_design.c).

Rerun from the repository root with the Debian interpreter that has torch and numpy:

    /usr/bin/python3 scripts/gen_design_fixtures.py

(Tested with PyTorch 1.13 and NumPy 1.24.) The output is deterministic: every case draws from its
own numpy.random.RandomState(seed), seed = 7000 + 100*case index + attempt, and PyTorch runs
single-threaded. The script deletes and rewrites tests/fixtures/design/ and nothing else.

What it computes. This is a direct statement of /work/shared/DESIGN.md §2 (and the decisions of
docs/batchnorm.md where DESIGN is silent) in torch float64, written from the specification and not
from bnkit's C code. `forward_train` below is the training forward, steps 1-5:
  1. two-pass batch mean and biased variance (variance about the unclipped batch mean);
  2. relative clip when step >= clip_warmup, from the running statistics before the update:
     sigma_R = sqrt(rv_old + eps), mean in rm_old +- d*sigma_R, variance in
     [max(0, (sigma_R/r)^2 - eps), (sigma_R*r)^2 - eps]; then the absolute mean/var clips;
  3. running update with beta_t = momentum, or t/(t+1) when cumulative, k = m/(m-1) when
     unbiased_running_var; then the running clips;
  4. normalise with the clipped batch statistics, the freshly updated running statistics
     (differentiable through the (1-beta_t) share), or Batch Renorm (r and d from the clipped batch
     statistics and the OLD running statistics, then .detach()ed);
  5. y = gamma*xhat + beta, then ReLU when fused.
Every clamp is torch.clamp, whose derivative is 1 inside or on the bound and 0 outside (what
DESIGN and docs/batchnorm.md decision 1 ask for). dx, dgamma and dbeta come from torch AUTOGRAD for
a random dy. center=0 means b = 0 with no gradient, scale=0 means gamma = 1 with no gradient.
The computation runs on the float32-rounded inputs promoted to float64, so the only difference
left between these files and bnkit is bnkit's float32 arithmetic.

Case selection. Each case has a theme that forces some flags (below, CASES); everything else is
drawn at random: layout, shape, momentum in [0, 0.999), cumulative with a random step, eps,
center/scale, unbiased running variance, clip bounds, warm-up, normalize_with, rmax/dmax,
fuse_relu. Clip bounds are put between the sorted per-channel values they clamp, so that in a
clipping case some channels clip and others do not. A draw where any clamped value lies within
1e-6 (relative) of one of its finite bounds, or a fused-ReLU input within 1e-4*y_scale of 0, is
thrown away and redrawn with the next seed, so float32 vs float64 rounding cannot flip a clamp.
Sanity checks before writing: torch.autograd.gradcheck of the whole forward (modes without
Batch Renorm, whose r and d are detached on purpose) and, for plain batch-mode cases with the
unbiased running variance, torch.nn.functional.batch_norm in float64.

Each case is a folder tests/fixtures/design/<case>/:
  inputs (float32)   x, dy        in the layout's memory order: nc (N,C), nchw (N,C,H,W),
                                  nhwc (N,H,W,C); dy only for training
                     gamma, beta  (C,), always present; with scale=0 / center=0 they hold
                                  values that bnkit must ignore
                     running_mean, running_var  (C,), before the step
  expected (float64) y            same layout as x
                     running_mean_out, running_var_out, dx   training only
                     dgamma       training with scale=1 only
                     dbeta        training with center=1 only
  params.txt         key=value lines, one per bnk_bn_config field (layout, train, step, momentum,
                     cumulative, eps, center, scale, unbiased_running_var, mean_clip_lo/hi,
                     var_clip_lo/hi, rel_clip_r, rel_clip_d, clip_warmup, running_mean_clip_lo/hi,
                     running_var_clip_lo/hi, normalize_with = batch|running|renorm, rmax, dmax,
                     fuse_relu); 'inf'/'-inf' for open bounds; doubles written with repr, so they
                     round-trip exactly through strtod. Then four tolerance scales computed here in
                     float64 (not bnkit outputs; 0 where not applicable):
                       y_scale      max over elements of |gamma|*s*r*(|x| + |center|)
                                    + |gamma*d| + |b|: the size of the terms y is formed from
                       dx_scale     max over channels of |gamma|*s*r, times max|dy|: the size of
                                    the terms dx is a difference of
                       dgamma_scale max over channels of sum |dy*xhat|
                       dbeta_scale  max over channels of sum |dy|
                     (s = 1/sqrt(var + eps) of the variance normalised with, center the value
                     subtracted, r and d Batch Renorm's, 1 and 0 otherwise.)
tests/fixtures/design/cases.txt lists the case names, one a line.
"""

import math
import os
import shutil
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "design")

INF = math.inf
NEAR_BOUND_RTOL = 1e-6  # a clamped value this close (relative) to a bound: redraw the case
RELU_NEAR_ZERO = 1e-4   # a fused-ReLU input within this * y_scale of 0: redraw the case
MAX_ATTEMPTS = 100

# (theme, forced settings). Keys are those of draw_config; anything not forced is drawn at random.
# "clip" keys take "active" (bounds between channel values), "wide" (finite but not reached) or
# "off"; the layouts cycle nc, nchw, nhwc unless forced.
CASES = [
    ("batch", dict(mode="batch", clips="none", cumulative=False, unbiased=False)),
    ("batch_unbiased", dict(mode="batch", clips="none", cumulative=False, unbiased=True)),
    ("batch_unbiased_b", dict(mode="batch", clips="none", cumulative=False, unbiased=True)),
    ("cumulative_step0", dict(mode="batch", clips="none", cumulative=True, step=0)),
    ("cumulative_stepk", dict(mode="batch", clips="none", cumulative=True)),
    ("cumulative_unbiased", dict(mode="batch", cumulative=True, unbiased=True)),
    ("no_center", dict(center=False, scale=True)),
    ("no_scale", dict(center=True, scale=False)),
    ("no_affine", dict(center=False, scale=False)),
    ("mean_clip", dict(mode="batch", mean_clip="active", clips="none_else")),
    ("var_clip", dict(mode="batch", var_clip="active", clips="none_else")),
    ("abs_clips", dict(mean_clip="active", var_clip="active")),
    ("abs_clips_wide", dict(mean_clip="wide", var_clip="wide", rel="off")),
    ("rel_r", dict(rel="r", warm="active")),
    ("rel_d", dict(rel="d", warm="active")),
    ("rel_rd", dict(rel="rd", warm="active", mode="batch")),
    ("rel_rd_wide", dict(rel="rd_wide", warm="active")),
    ("rel_warmup_pending", dict(rel="rd", warm="pending")),
    ("rel_warmup_equal", dict(rel="rd", warm="equal")),
    ("rel_then_abs", dict(rel="rd", warm="active", mean_clip="active", var_clip="active")),
    ("running_mean_clip", dict(running_mean_clip="active")),
    ("running_var_clip", dict(running_var_clip="active")),
    ("running_clips", dict(running_mean_clip="active", running_var_clip="active")),
    ("norm_running", dict(mode="running", clips="none")),
    ("norm_running_unbiased", dict(mode="running", unbiased=True)),
    ("norm_running_cumulative", dict(mode="running", cumulative=True)),
    ("norm_running_clips", dict(mode="running", mean_clip="active", var_clip="active",
                                running_mean_clip="active", running_var_clip="active")),
    ("norm_running_rel", dict(mode="running", rel="rd", warm="active")),
    ("renorm_clipped", dict(mode="renorm", renorm_lim="active")),
    ("renorm_unclipped", dict(mode="renorm", renorm_lim="wide")),
    ("renorm_rel_abs", dict(mode="renorm", rel="rd", warm="active", mean_clip="active",
                            var_clip="active")),
    ("renorm_cumulative", dict(mode="renorm", cumulative=True, renorm_lim="active")),
    ("relu_batch", dict(mode="batch", relu=True)),
    ("relu_running", dict(mode="running", relu=True)),
    ("relu_renorm", dict(mode="renorm", relu=True)),
    ("m2", dict(layout="nc", shape=(2, 3, 1, 1))),
    ("hw1", dict(layout="nchw", shape=(3, 4, 1, 1))),
    ("c9_tail", dict(layout="nhwc", shape=(2, 9, 3, 2))),
    ("random_a", dict()),
    ("random_b", dict()),
    ("infer", dict(train=False, layout="nc")),
    ("infer", dict(train=False, layout="nchw")),
    ("infer", dict(train=False, layout="nhwc")),
    ("infer_relu", dict(train=False, relu=True)),
]

LAYOUTS = ("nc", "nchw", "nhwc")


# ---- the specification ----------------------------------------------------------------------

def red_dims(x):
    return (0,) if x.dim() == 2 else (0, 2, 3)


def bc(v, x):
    """Per-channel vector (C,) broadcast against the logical tensor x."""
    return v.reshape(1, -1) if x.dim() == 2 else v.reshape(1, -1, 1, 1)


class Clamps:
    """Applies torch.clamp and records (what, value, lo, hi) for the near-bound check."""

    def __init__(self):
        self.seen = []

    def __call__(self, what, v, lo, hi):
        lo_t = torch.as_tensor(lo, dtype=torch.float64).expand_as(v)
        hi_t = torch.as_tensor(hi, dtype=torch.float64).expand_as(v)
        self.seen.append((what, v.detach().clone(), lo_t.detach().clone(), hi_t.detach().clone()))
        return torch.clamp(v, min=lo_t, max=hi_t)


def forward_train(cfg, x, gamma, beta, rm_old, rv_old, clamps):
    """DESIGN.md §2 training forward in float64. x: logical (N,C) or (N,C,H,W); gamma, beta:
    (C,) tensors (ones/zeros constants when scale/center are off); rm_old, rv_old: (C,)
    constants. Returns y and the intermediates (for bounds, scales and checks)."""
    dims = red_dims(x)
    m = x.numel() // x.shape[1]
    eps = cfg["eps"]
    # 1. two-pass batch statistics
    mu_b = x.mean(dim=dims)
    var_b = ((x - bc(mu_b, x)) ** 2).mean(dim=dims)
    mu, var = mu_b, var_b
    # 2. relative clip (running statistics before the update), then absolute clips
    sig_r = torch.sqrt(rv_old + eps)
    rel_on = cfg["step"] >= cfg["clip_warmup"]
    pre_rel = (mu.detach().clone(), var.detach().clone())
    if rel_on and cfg["rel_clip_d"] != INF:
        d = cfg["rel_clip_d"]
        mu = clamps("rel mean", mu, rm_old - d * sig_r, rm_old + d * sig_r)
    if rel_on and cfg["rel_clip_r"] != INF:
        r = cfg["rel_clip_r"]
        lo = torch.clamp((sig_r / r) ** 2 - eps, min=0.0)
        hi = (sig_r * r) ** 2 - eps
        var = clamps("rel var", var, lo, hi)
    pre_abs = (mu.detach().clone(), var.detach().clone())
    mu = clamps("mean_clip", mu, cfg["mean_clip_lo"], cfg["mean_clip_hi"])
    var = clamps("var_clip", var, cfg["var_clip_lo"], cfg["var_clip_hi"])
    # 3. running update, then running clips
    t = cfg["step"]
    beta_t = t / (t + 1.0) if cfg["cumulative"] else cfg["momentum"]
    k = m / (m - 1.0) if cfg["unbiased_running_var"] else 1.0
    rm_new = beta_t * rm_old + (1.0 - beta_t) * mu
    rv_new = beta_t * rv_old + (1.0 - beta_t) * k * var
    pre_run = (rm_new.detach().clone(), rv_new.detach().clone())
    rm_new = clamps("running_mean_clip", rm_new, cfg["running_mean_clip_lo"],
                    cfg["running_mean_clip_hi"])
    rv_new = clamps("running_var_clip", rv_new, cfg["running_var_clip_lo"],
                    cfg["running_var_clip_hi"])
    # 4. normalise
    c = x.shape[1]
    raw_r = raw_d = None
    rr = torch.ones(c, dtype=torch.float64)
    dd = torch.zeros(c, dtype=torch.float64)
    mode = cfg["normalize_with"]
    if mode == "batch":
        center, s = mu, 1.0 / torch.sqrt(var + eps)
        xhat = (x - bc(center, x)) * bc(s, x)
    elif mode == "running":
        center, s = rm_new, 1.0 / torch.sqrt(rv_new + eps)
        xhat = (x - bc(center, x)) * bc(s, x)
    elif mode == "renorm":
        std = torch.sqrt(var + eps)
        raw_r = (std / sig_r).detach()
        raw_d = ((mu - rm_old) / sig_r).detach()
        rr = clamps("renorm r", raw_r, 1.0 / cfg["rmax"], cfg["rmax"]).detach()
        dd = clamps("renorm d", raw_d, -cfg["dmax"], cfg["dmax"]).detach()
        center, s = mu, 1.0 / std
        xhat = (x - bc(center, x)) * bc(s, x) * bc(rr, x) + bc(dd, x)
    else:
        raise ValueError(mode)
    # 5. affine, fused ReLU
    pre_relu = bc(gamma, x) * xhat + bc(beta, x)
    y = torch.relu(pre_relu) if cfg["fuse_relu"] else pre_relu
    return y, dict(mu_b=mu_b.detach(), var_b=var_b.detach(), pre_rel=pre_rel, pre_abs=pre_abs,
                   pre_run=pre_run, rm_new=rm_new, rv_new=rv_new, center=center.detach(),
                   s=s.detach(), r=rr, d=dd, xhat=xhat.detach(), pre_relu=pre_relu.detach(),
                   sig_r=sig_r, raw_r=raw_r, raw_d=raw_d)


def forward_infer(cfg, x, gamma, beta, rm, rv):
    """DESIGN.md §2 inference forward: gamma*(x - rm)/sqrt(rv + eps) + b, ReLU when fused."""
    s = 1.0 / torch.sqrt(rv + cfg["eps"])
    pre = bc(gamma, x) * (x - bc(rm, x)) * bc(s, x) + bc(beta, x)
    y = torch.relu(pre) if cfg["fuse_relu"] else pre
    return y, dict(center=rm, s=s, r=torch.ones_like(rm), d=torch.zeros_like(rm), pre_relu=pre)


# ---- drawing a case -------------------------------------------------------------------------

def default_cfg():
    return dict(layout="nc", train=True, step=0, momentum=0.99, cumulative=False, eps=1e-3,
                center=True, scale=True, unbiased_running_var=False, mean_clip_lo=-INF,
                mean_clip_hi=INF, var_clip_lo=0.0, var_clip_hi=INF, rel_clip_r=INF, rel_clip_d=INF,
                clip_warmup=0, running_mean_clip_lo=-INF, running_mean_clip_hi=INF,
                running_var_clip_lo=0.0, running_var_clip_hi=INF, normalize_with="batch",
                rmax=3.0, dmax=5.0, fuse_relu=False)


def between(rs, vals):
    """A threshold strictly between two adjacent distinct sorted values, so that some of vals
    are below it and some above (needs two distinct values)."""
    v = np.sort(np.asarray(vals, dtype=np.float64))
    gaps = [i for i in range(len(v) - 1) if v[i + 1] > v[i]]
    if not gaps:  # one channel: put the threshold on either side of it
        return v[0] + rs.choice([-1.0, 1.0]) * (0.3 * abs(v[0]) + 0.1)
    i = gaps[rs.randint(len(gaps))]
    f = rs.uniform(0.3, 0.7)
    return v[i] + f * (v[i + 1] - v[i])


def interval(rs, vals, kind, nonneg=False):
    """(lo, hi) for an absolute clamp on vals: 'active' clips the extreme channels on at least
    one side and leaves others alone; 'wide' is finite but never reached; 'off' is open."""
    v = np.sort(np.asarray(vals, dtype=np.float64))
    span = max(v[-1] - v[0], 1e-3 * max(abs(v[-1]), 1.0))
    if kind == "off":
        return (0.0 if nonneg else -INF), INF
    if kind == "wide":
        lo = v[0] - rs.uniform(0.2, 1.0) * span
        if nonneg:
            lo = max(0.0, v[0] * rs.uniform(0.2, 0.8))
        return lo, v[-1] + rs.uniform(0.2, 1.0) * span
    side = rs.choice(["lo", "hi", "both"]) if len(v) >= 3 else rs.choice(["lo", "hi"])
    lo = -INF
    hi = INF
    if side == "both":  # clip the lowest and the highest channel, leave the middle ones
        lo = v[0] + rs.uniform(0.3, 0.7) * (v[1] - v[0])
        hi = v[-2] + rs.uniform(0.3, 0.7) * (v[-1] - v[-2])
    elif side == "lo":
        lo = between(rs, v)
    else:
        hi = between(rs, v)
    if nonneg:
        lo = max(lo, 0.0)
    return lo, hi


def pick(rs, forced, key, choices, p=None):
    if key in forced:
        return forced[key]
    return choices[rs.choice(len(choices), p=p)]


def draw_inputs(rs, layout, shape, offset):
    n, c, h, w = shape
    loc = rs.uniform(-3.0, 3.0, size=c) + offset
    spread = rs.uniform(0.3, 2.5, size=c)
    lshape = (n, c) if layout == "nc" else (n, c, h, w)
    cshape = (1, c) if layout == "nc" else (1, c, 1, 1)
    x = rs.standard_normal(lshape) * spread.reshape(cshape) + loc.reshape(cshape)
    dy = rs.standard_normal(lshape)
    sign = np.where(rs.uniform(size=c) < 0.2, -1.0, 1.0)
    gamma = rs.uniform(0.5, 1.5, size=c) * sign
    beta = rs.standard_normal(c) * 0.5
    rm = loc + rs.standard_normal(c) * 0.7 * spread
    rv = spread ** 2 * rs.uniform(0.4, 2.5, size=c)
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731 — the stored precision
    return dict(x=f32(x), dy=f32(dy), gamma=f32(gamma), beta=f32(beta), running_mean=f32(rm),
                running_var=f32(rv))


def to_t(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32).astype(np.float64))


def draw_case(rs, idx, theme, forced):
    cfg = default_cfg()
    cfg["train"] = forced.get("train", True)
    cfg["layout"] = forced.get("layout", LAYOUTS[idx % 3])
    layout = cfg["layout"]
    if "shape" in forced:
        shape = forced["shape"]
    else:
        needs_c3 = any(forced.get(k) == "active" for k in
                       ("mean_clip", "var_clip", "running_mean_clip", "running_var_clip",
                        "renorm_lim"))
        c = rs.randint(3 if needs_c3 or "rel" in forced else 1, 11)
        if layout == "nc":
            shape = (rs.randint(2, 17), c, 1, 1)
        else:
            shape = (rs.randint(2, 4), c, rs.randint(1, 7), rs.randint(1, 7))
    offset = 0.0 if rs.uniform() < 0.8 else rs.choice([-20.0, 20.0])
    data = draw_inputs(rs, layout, shape, offset)

    cfg["eps"] = float(pick(rs, forced, "eps", [1e-5, 1e-3, 1e-2, 0.1]))
    cfg["center"] = bool(pick(rs, forced, "center", [True, False], p=[0.8, 0.2]))
    cfg["scale"] = bool(pick(rs, forced, "scale", [True, False], p=[0.8, 0.2]))
    cfg["fuse_relu"] = bool(pick(rs, forced, "relu", [False, True], p=[0.75, 0.25]))
    cfg["momentum"] = float(rs.uniform(0.0, 0.999))
    cfg["step"] = int(rs.randint(0, 12))
    if "step" in forced:
        cfg["step"] = forced["step"]
    if not cfg["train"]:
        cfg["cumulative"] = bool(rs.uniform() < 0.5)
        # inference ignores the training-only fields; draw some so that the test shows it does
        cfg["normalize_with"] = ["batch", "running", "renorm"][rs.randint(3)]
        cfg["unbiased_running_var"] = bool(rs.uniform() < 0.5)
        return cfg, data, shape
    cfg["cumulative"] = bool(pick(rs, forced, "cumulative", [False, True], p=[0.7, 0.3]))
    cfg["unbiased_running_var"] = bool(pick(rs, forced, "unbiased", [False, True]))
    cfg["normalize_with"] = pick(rs, forced, "mode", ["batch", "running", "renorm"])
    clips_default = "off" if forced.get("clips") in ("none", "none_else") else None

    def clip_kind(key):
        if key in forced:
            return forced[key]
        if clips_default:
            return clips_default
        return ["off", "wide", "active"][rs.choice(3, p=[0.6, 0.2, 0.2])]

    x, gamma, beta = to_t(data["x"]), to_t(data["gamma"]), to_t(data["beta"])
    rm, rv = to_t(data["running_mean"]), to_t(data["running_var"])

    def probe():
        with torch.no_grad():
            return forward_train(cfg, x, gamma, beta, rm, rv, Clamps())[1]

    # relative clip: r and d between the channels' distances from the running statistics
    rel = forced.get("rel") or ("off" if clips_default else
                                ["off", "r", "d", "rd", "rd_wide"][rs.randint(5)])
    warm = forced.get("warm") or ["active", "pending", "equal"][rs.randint(3)]
    if rel != "off":
        st = probe()
        mu_b, var_b = st["mu_b"].numpy(), st["var_b"].numpy()
        sig_r = np.sqrt(rv.numpy() + cfg["eps"])
        ud = np.abs(mu_b - rm.numpy()) / sig_r
        ur = np.abs(np.log(np.sqrt(var_b + cfg["eps"]) / sig_r))
        if rel == "rd_wide":
            cfg["rel_clip_d"] = float(ud.max() * rs.uniform(1.2, 2.0) + 0.1)
            cfg["rel_clip_r"] = float(math.exp(ur.max() * rs.uniform(1.2, 2.0) + 0.05))
        else:
            if "d" in rel:
                cfg["rel_clip_d"] = float(max(between(rs, ud), 0.0))
            if "r" in rel:
                cfg["rel_clip_r"] = float(math.exp(max(between(rs, ur), 0.0)))
        if warm == "active":
            cfg["clip_warmup"] = int(rs.randint(0, cfg["step"] + 1))
        elif warm == "equal":
            cfg["clip_warmup"] = cfg["step"]
        else:
            cfg["clip_warmup"] = cfg["step"] + int(rs.randint(1, 5))
    else:
        cfg["clip_warmup"] = int(rs.randint(0, 5))
    # absolute clips, from the values after the relative clip
    st = probe()
    mk, vk = clip_kind("mean_clip"), clip_kind("var_clip")
    lo, hi = interval(rs, st["pre_abs"][0].numpy(), mk)
    cfg["mean_clip_lo"], cfg["mean_clip_hi"] = float(lo), float(hi)
    cfg["var_clip_lo"], cfg["var_clip_hi"] = map(float, interval(rs, st["pre_abs"][1].numpy(), vk,
                                                              nonneg=True))
    # running clips, from the updated running statistics
    st = probe()
    rmk, rvk = clip_kind("running_mean_clip"), clip_kind("running_var_clip")
    lo, hi = interval(rs, st["pre_run"][0].numpy(), rmk)
    cfg["running_mean_clip_lo"], cfg["running_mean_clip_hi"] = float(lo), float(hi)
    lo, hi = interval(rs, st["pre_run"][1].numpy(), rvk, nonneg=True)
    cfg["running_var_clip_lo"], cfg["running_var_clip_hi"] = float(lo), float(hi)
    # Batch Renorm limits
    lim = forced.get("renorm_lim") or ["default", "active", "wide"][rs.randint(3)]
    if cfg["normalize_with"] == "renorm" and lim != "default":
        st = probe()
        ur = np.abs(np.log(st["raw_r"].numpy()))
        ud = np.abs(st["raw_d"].numpy())
        if lim == "active":
            cfg["rmax"] = float(math.exp(between(rs, np.append(ur, 0.0))))
            cfg["dmax"] = float(between(rs, np.append(ud, 0.0)))
        else:
            cfg["rmax"] = float(math.exp(ur.max()) * rs.uniform(1.1, 2.0))
            cfg["dmax"] = float(ud.max() * rs.uniform(1.1, 2.0) + 0.05)
    elif lim != "default":
        cfg["rmax"] = float(rs.uniform(1.0, 5.0))
        cfg["dmax"] = float(rs.uniform(0.0, 6.0))
    return cfg, data, shape


# ---- evaluation -----------------------------------------------------------------------------

def evaluate(cfg, data):
    """Runs the float64 specification; returns (expected arrays in logical layout, scales,
    clamps record, intermediates)."""
    x = to_t(data["x"]).requires_grad_(cfg["train"])
    c = x.shape[1]
    gamma = to_t(data["gamma"]).requires_grad_(cfg["train"]) if cfg["scale"] else \
        torch.ones(c, dtype=torch.float64)
    beta = to_t(data["beta"]).requires_grad_(cfg["train"]) if cfg["center"] else \
        torch.zeros(c, dtype=torch.float64)
    rm, rv = to_t(data["running_mean"]), to_t(data["running_var"])
    clamps = Clamps()
    if cfg["train"]:
        y, st = forward_train(cfg, x, gamma, beta, rm, rv, clamps)
        dy = to_t(data["dy"])
        y.backward(dy)
        out = dict(y=y.detach(), running_mean_out=st["rm_new"].detach(),
                   running_var_out=st["rv_new"].detach(), dx=x.grad.detach())
        if cfg["scale"]:
            out["dgamma"] = gamma.grad.detach()
        if cfg["center"]:
            out["dbeta"] = beta.grad.detach()
    else:
        with torch.no_grad():
            y, st = forward_infer(cfg, x, gamma, beta, rm, rv)
        out = dict(y=y)
    # tolerance scales (see the module docstring)
    xd = x.detach()
    a = (gamma.detach().abs() * st["s"] * st["r"])
    term = bc(a, xd) * (xd.abs() + bc(st["center"].abs(), xd)) + \
        bc((gamma.detach() * st["d"]).abs() + beta.detach().abs(), xd)
    scales = dict(y_scale=float(term.max()), dx_scale=0.0, dgamma_scale=0.0, dbeta_scale=0.0)
    if cfg["train"]:
        dy = to_t(data["dy"])
        g = dy * (st["pre_relu"] > 0) if cfg["fuse_relu"] else dy
        dims = red_dims(xd)
        scales["dx_scale"] = float(a.max() * dy.abs().max())
        scales["dgamma_scale"] = float((g * st["xhat"]).abs().sum(dim=dims).max())
        scales["dbeta_scale"] = float(g.abs().sum(dim=dims).max())
    return out, scales, clamps, st


def near_bound(cfg, clamps, st, scales):
    """Why this draw must be redrawn, or None."""
    for what, v, lo, hi in clamps.seen:
        for b in (lo, hi):
            fin = torch.isfinite(b)
            dist = (v - b).abs()
            size = torch.maximum(v.abs(), b.abs())
            bad = fin & (dist <= NEAR_BOUND_RTOL * size)
            if bool(bad.any()):
                return "%s within %g of a bound" % (what, NEAR_BOUND_RTOL)
    if cfg["fuse_relu"]:
        if bool((st["pre_relu"].abs() <= RELU_NEAR_ZERO * scales["y_scale"]).any()):
            return "ReLU input near 0"
    return None


def clip_summary(cfg, clamps):
    """How many channels each clamp moved (for the log)."""
    parts = []
    for what, v, lo, hi in clamps.seen:
        moved = int(((v < lo) | (v > hi)).sum())
        bounded = (torch.isfinite(lo) & (lo != 0)).any() or torch.isfinite(hi).any()
        if moved or bounded:
            parts.append("%s %d/%d" % (what, moved, v.numel()))
    return ", ".join(parts)


def sanity(name, cfg, data):
    """Checks of the specification code itself: gradcheck (everything except Batch Renorm, whose
    r, d are detached by design), and torch.nn.functional.batch_norm on plain cases."""
    if not cfg["train"]:
        return
    c = data["gamma"].shape[0]
    if cfg["normalize_with"] != "renorm":
        rm, rv = to_t(data["running_mean"]), to_t(data["running_var"])

        def f(x, g, b):
            gg = g if cfg["scale"] else torch.ones(c, dtype=torch.float64)
            bb = b if cfg["center"] else torch.zeros(c, dtype=torch.float64)
            return forward_train(cfg, x, gg, bb, rm, rv, Clamps())[0]
        args = (to_t(data["x"]).requires_grad_(), to_t(data["gamma"]).requires_grad_(),
                to_t(data["beta"]).requires_grad_())
        if not torch.autograd.gradcheck(f, args, eps=1e-7, atol=1e-6, rtol=1e-5):
            raise RuntimeError("%s: gradcheck failed" % name)
    open_keys = ["mean_clip_lo", "mean_clip_hi", "var_clip_lo", "var_clip_hi", "rel_clip_r",
                 "rel_clip_d", "running_mean_clip_lo", "running_mean_clip_hi",
                 "running_var_clip_lo", "running_var_clip_hi"]
    plain = (cfg["normalize_with"] == "batch" and cfg["unbiased_running_var"] and
             not cfg["fuse_relu"] and cfg["center"] and cfg["scale"] and
             all(cfg[k] == default_cfg()[k] for k in open_keys))
    if plain:
        t = cfg["step"]
        p = 1.0 / (t + 1.0) if cfg["cumulative"] else 1.0 - cfg["momentum"]
        x = to_t(data["x"]).requires_grad_()
        g, b = to_t(data["gamma"]).requires_grad_(), to_t(data["beta"]).requires_grad_()
        rm, rv = to_t(data["running_mean"]), to_t(data["running_var"])
        y = torch.nn.functional.batch_norm(x, rm, rv, g, b, True, p, cfg["eps"])
        y.backward(to_t(data["dy"]))
        out, _, _, _ = evaluate(cfg, data)
        for key, got in (("y", y.detach()), ("running_mean_out", rm), ("running_var_out", rv),
                         ("dx", x.grad), ("dgamma", g.grad), ("dbeta", b.grad)):
            if not torch.allclose(got, out[key], rtol=1e-10, atol=1e-12):
                raise RuntimeError("%s: %s differs from F.batch_norm" % (name, key))
        print("  %s: matches torch.nn.functional.batch_norm" % name)


# ---- writing --------------------------------------------------------------------------------

def to_stored(a, layout):
    """Logical (N,C[,H,W]) -> the layout's memory order."""
    a = np.asarray(a)
    if layout == "nhwc":
        a = a.transpose(0, 2, 3, 1)
    return np.ascontiguousarray(a)


def fmt(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v)  # 'inf', '-inf' or a round-tripping decimal
    return str(v)


PARAM_KEYS = ["layout", "train", "step", "momentum", "cumulative", "eps", "center", "scale",
              "unbiased_running_var", "mean_clip_lo", "mean_clip_hi", "var_clip_lo",
              "var_clip_hi", "rel_clip_r", "rel_clip_d", "clip_warmup", "running_mean_clip_lo",
              "running_mean_clip_hi", "running_var_clip_lo", "running_var_clip_hi",
              "normalize_with", "rmax", "dmax", "fuse_relu"]


def write_case(name, cfg, data, out, scales):
    d = os.path.join(OUT, name)
    os.makedirs(d)
    layout = cfg["layout"]
    for key in ("x", "dy", "gamma", "beta", "running_mean", "running_var"):
        if key == "dy" and not cfg["train"]:
            continue
        arr = data[key]
        if key in ("x", "dy"):
            arr = to_stored(arr, layout)
        np.save(os.path.join(d, key + ".npy"), np.ascontiguousarray(arr, dtype=np.float32))
    for key, t in out.items():
        arr = t.numpy()
        if key in ("y", "dx"):
            arr = to_stored(arr, layout)
        np.save(os.path.join(d, key + ".npy"), np.ascontiguousarray(arr, dtype=np.float64))
    with open(os.path.join(d, "params.txt"), "w") as f:
        for key in PARAM_KEYS:
            f.write("%s=%s\n" % (key, fmt(cfg[key])))
        for key in ("y_scale", "dx_scale", "dgamma_scale", "dbeta_scale"):
            f.write("%s=%s\n" % (key, repr(float(scales[key]))))


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    names = []
    for idx, (theme, forced) in enumerate(CASES):
        for attempt in range(MAX_ATTEMPTS):
            rs = np.random.RandomState(7000 + 100 * idx + attempt)
            cfg, data, shape = draw_case(rs, idx, theme, forced)
            out, scales, clamps, st = evaluate(cfg, data)
            why = near_bound(cfg, clamps, st, scales)
            if why is None:
                break
            print("  %s: seed %d redrawn: %s" % (theme, 7000 + 100 * idx + attempt, why))
        else:
            raise RuntimeError("%s: no usable draw in %d attempts" % (theme, MAX_ATTEMPTS))
        name = "%02d_%s_%s" % (idx, theme, cfg["layout"])
        sanity(name, cfg, data)
        write_case(name, cfg, data, out, scales)
        names.append(name)
        n, c, h, w = shape
        print("%-34s %dx%dx%dx%d %-7s%s%s%s%s %s" % (
            name, n, c, h, w, cfg["normalize_with"] if cfg["train"] else "infer",
            " cum" if cfg["cumulative"] else "", " unb" if cfg["unbiased_running_var"] else "",
            " relu" if cfg["fuse_relu"] else "",
            "" if cfg["center"] and cfg["scale"] else " c%d s%d" % (cfg["center"], cfg["scale"]),
            clip_summary(cfg, clamps)))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        for name in names:
            f.write(name + "\n")
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(OUT) for fn in fns)
    print("wrote %d cases, %d bytes, to %s" % (len(names), total, os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
