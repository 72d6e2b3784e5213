#!/usr/bin/python3
"""Generate the PyTorch golden data for standard batch normalization (tests/test_bn_torch.c).

Rerun from the repository root with the Debian interpreter that has torch and numpy:

    /usr/bin/python3 scripts/gen_torch_fixtures.py

(Tested with PyTorch 1.13 and NumPy 1.24.) The output is deterministic: every case seeds its own
generator (torch.manual_seed) and PyTorch runs single-threaded. The script deletes and rewrites
tests/fixtures/torch/ and nothing else.

Each case is a folder tests/fixtures/torch/<case>/ holding float32 .npy files:
  inputs    x, dy                 in the case's memory layout: nc (N,C), nchw (N,C,H,W),
                                  nhwc (N,H,W,C) (a channels_last tensor permuted to NHWC)
            gamma, beta           (C,), absent when the case has affine=False
            running_mean, running_var  (C,), running statistics before the step
  expected  y                     same layout as x
            running_mean_out, running_var_out, dx, dgamma, dbeta   training cases only
                                  (dgamma/dbeta absent without affine)
  params.txt  key=value lines: layout, train, torch_momentum (p, or "none" for the cumulative
            average), eps, unbiased_running_var, cumulative, step, center, scale.
            bnkit's momentum is 1 - p (Keras convention); step is PyTorch's num_batches_tracked
            before the call, so the cumulative factor 1/(step+1) matches bnkit's beta_t = t/(t+1).
tests/fixtures/torch/cases.txt lists the case names, one a line.

The expected values are PyTorch's own float32 results (torch.nn.BatchNorm1d/2d in float32, the
peer bnkit is compared with). For the Keras (biased) running-variance convention PyTorch has no
flag, so running_var_out is computed here with torch ops, (1-p)*rv + p*var_biased(x). Every
float32 result is checked against the same computation in float64 before it is written, so a
fixture that is itself inaccurate stops the script.
"""

import os
import shutil
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch")

# float32 PyTorch vs float64 PyTorch: the fixtures must agree with exact arithmetic to this.
SANITY_ATOL = 1e-5
SANITY_RTOL = 1e-5

# (name, layout, (N, C, H, W), train, torch momentum p or None, eps, unbiased running var,
#  num_batches_tracked before the call, affine)
CASES = [
    # PyTorch convention: unbiased running variance, exponential average with p.
    ("train_nc_p01", "nc", (6, 5, 1, 1), True, 0.1, 1e-5, True, 0, True),
    ("train_nchw_p01", "nchw", (3, 4, 5, 3), True, 0.1, 1e-5, True, 0, True),
    ("train_nhwc_p01", "nhwc", (3, 4, 5, 3), True, 0.1, 1e-5, True, 0, True),
    ("train_nc_p03_eps1e3", "nc", (6, 5, 1, 1), True, 0.3, 1e-3, True, 0, True),
    ("train_nchw_p03_eps1e3", "nchw", (3, 4, 5, 3), True, 0.3, 1e-3, True, 0, True),
    ("train_nhwc_p03_eps1e3", "nhwc", (3, 4, 5, 3), True, 0.3, 1e-3, True, 0, True),
    # Smallest legal batch: m = 2 values, one channel (Bessel factor 2).
    ("train_nc_n2_c1", "nc", (2, 1, 1, 1), True, 0.1, 1e-3, True, 0, True),
    # Keras convention: biased running variance (expected running_var computed here).
    ("biased_nc_p001_eps1e3", "nc", (6, 5, 1, 1), True, 0.01, 1e-3, False, 0, True),
    ("biased_nchw_p001_eps1e3", "nchw", (3, 4, 5, 3), True, 0.01, 1e-3, False, 0, True),
    ("biased_nhwc_p01", "nhwc", (3, 4, 5, 3), True, 0.1, 1e-5, False, 0, True),
    # Cumulative average (momentum=None): factor 1/(num_batches_tracked + 1).
    ("cumulative_nchw_step3", "nchw", (3, 4, 5, 3), True, None, 1e-5, True, 3, True),
    ("cumulative_nhwc_step3", "nhwc", (3, 4, 5, 3), True, None, 1e-5, True, 3, True),
    ("cumulative_nc_step0", "nc", (6, 5, 1, 1), True, None, 1e-5, True, 0, True),
    # Inference with the running statistics.
    ("infer_nc", "nc", (6, 5, 1, 1), False, 0.1, 1e-5, True, 0, True),
    ("infer_nchw", "nchw", (3, 4, 5, 3), False, 0.1, 1e-3, True, 0, True),
    ("infer_nhwc", "nhwc", (3, 4, 5, 3), False, 0.1, 1e-5, True, 0, True),
    # affine=False: no gamma/beta (bnkit center=0, scale=0).
    ("noaffine_nchw_p01", "nchw", (3, 4, 5, 3), True, 0.1, 1e-5, True, 0, False),
    ("noaffine_infer_nhwc", "nhwc", (3, 4, 5, 3), False, 0.1, 1e-5, True, 0, False),
]


def logical_shape(layout, n, c, h, w):
    return (n, c) if layout == "nc" else (n, c, h, w)


def to_torch_format(t, layout):
    """The tensor PyTorch runs on: channels_last memory for nhwc."""
    if layout == "nhwc":
        return t.contiguous(memory_format=torch.channels_last)
    return t.contiguous()


def to_stored(t, layout):
    """Logical (N,C[,H,W]) tensor -> numpy float32 array in the case's memory layout."""
    if layout == "nhwc":
        t = t.permute(0, 2, 3, 1)
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def make_bn(layout, c, p, eps, affine, dtype):
    cls = torch.nn.BatchNorm1d if layout == "nc" else torch.nn.BatchNorm2d
    return cls(c, eps=eps, momentum=p, affine=affine, track_running_stats=True, dtype=dtype)


def run_bn(case, dtype, data):
    """One PyTorch BN call in dtype; returns a dict of logical-layout outputs."""
    _, layout, (n, c, h, w), train, p, eps, unbiased, k, affine = case
    bn = make_bn(layout, c, p, eps, affine, dtype)
    with torch.no_grad():
        if affine:
            bn.weight.copy_(data["gamma"])
            bn.bias.copy_(data["beta"])
        bn.running_mean.copy_(data["running_mean"])
        bn.running_var.copy_(data["running_var"])
        bn.num_batches_tracked.fill_(k)
    bn.train(train)

    x = to_torch_format(data["x"].detach().clone().to(dtype), layout).requires_grad_(train)
    y = bn(x)
    if layout == "nhwc" and not y.is_contiguous(memory_format=torch.channels_last):
        raise RuntimeError("%s: PyTorch did not keep channels_last" % case[0])
    out = {"y": y.detach()}
    if not train:
        return out

    dy = to_torch_format(data["dy"].to(dtype), layout)
    y.backward(dy)
    out["dx"] = x.grad.detach()
    if affine:
        out["dgamma"] = bn.weight.grad.detach()
        out["dbeta"] = bn.bias.grad.detach()
    out["running_mean_out"] = bn.running_mean.detach().clone()
    if unbiased:
        out["running_var_out"] = bn.running_var.detach().clone()
    else:
        # Keras convention, which PyTorch lacks: run <- (1-p)*run + p*var_biased(batch).
        dims = [0] if layout == "nc" else [0, 2, 3]
        xd = data["x"].to(dtype)
        var_b = xd.var(dim=dims, unbiased=False)
        rv = data["running_var"].to(dtype)
        out["running_var_out"] = (1.0 - p) * rv + p * var_b
    if bn.num_batches_tracked.item() != k + 1:
        raise RuntimeError("%s: num_batches_tracked did not advance" % case[0])
    return out


def make_data(case, seed):
    name, layout, (n, c, h, w), train, p, eps, unbiased, k, affine = case
    g = torch.Generator().manual_seed(seed)
    shape = logical_shape(layout, n, c, h, w)
    bshape = (1, c) if layout == "nc" else (1, c, 1, 1)
    # Per-channel location and spread so that channels differ visibly.
    loc = (torch.rand(bshape, generator=g) * 4.0 - 2.0)
    spread = torch.rand(bshape, generator=g) * 2.5 + 0.5
    x = torch.randn(shape, generator=g) * spread + loc
    data = {
        "x": x.float(),
        "dy": torch.randn(shape, generator=g).float(),
        "running_mean": (torch.randn(c, generator=g) * 0.5).float(),
        "running_var": (torch.rand(c, generator=g) * 1.5 + 0.5).float(),
    }
    if affine:
        # |gamma| in [0.5, 1.5), about one in five negative.
        sign = 1.0 - 2.0 * (torch.rand(c, generator=g) < 0.2).float()
        data["gamma"] = ((torch.rand(c, generator=g) + 0.5) * sign).float()
        data["beta"] = (torch.randn(c, generator=g) * 0.5).float()
    return data


def check_close(name, key, got32, ref64):
    a = got32.double()
    diff = (a - ref64).abs()
    bound = SANITY_ATOL + SANITY_RTOL * ref64.abs()
    if not bool((diff <= bound).all()):
        i = int(torch.argmax(diff - bound))
        raise RuntimeError("%s: %s: float32 PyTorch disagrees with float64 at flat index %d: "
                           "%.9g vs %.9g" % (name, key, i, a.flatten()[i], ref64.flatten()[i]))
    return float(diff.max())


def check_formulas(case, data, out32):
    """Independent NumPy float64 statement of DESIGN.md §2 (the mapping the C test relies on):
    factor f = p, or 1/(k+1) for the cumulative average; run <- (1-f)*run + f*batch."""
    name, layout, (n, c, h, w), train, p, eps, unbiased, k, affine = case
    axes = (0,) if layout == "nc" else (0, 2, 3)
    bshape = (1, c) if layout == "nc" else (1, c, 1, 1)
    x = data["x"].double().numpy()
    rm = data["running_mean"].double().numpy()
    rv = data["running_var"].double().numpy()
    g = data["gamma"].double().numpy() if affine else np.ones(c)
    b = data["beta"].double().numpy() if affine else np.zeros(c)
    if train:
        m = x.size // c
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        f = 1.0 / (k + 1) if p is None else p
        want = {
            "running_mean_out": (1 - f) * rm + f * mean,
            "running_var_out": (1 - f) * rv + f * var * (m / (m - 1.0) if unbiased else 1.0),
        }
        center, v = mean, var
    else:
        want = {}
        center, v = rm, rv
    want["y"] = (x - center.reshape(bshape)) / np.sqrt(v.reshape(bshape) + eps) * \
        g.reshape(bshape) + b.reshape(bshape)
    for key, ref in want.items():
        got = out32[key].double().numpy()
        if not np.allclose(got, ref, rtol=SANITY_RTOL, atol=SANITY_ATOL):
            raise RuntimeError("%s: %s differs from the DESIGN formula" % (name, key))


def write_case(case, data, out32):
    name, layout, (n, c, h, w), train, p, eps, unbiased, k, affine = case
    d = os.path.join(OUT, name)
    os.makedirs(d)
    for key in ("x", "dy", "gamma", "beta", "running_mean", "running_var"):
        if key in data:
            arr = to_stored(data[key], layout) if key in ("x", "dy") else \
                np.ascontiguousarray(data[key].numpy().astype(np.float32))
            np.save(os.path.join(d, key + ".npy"), arr)
    for key, t in out32.items():
        arr = to_stored(t, layout) if key in ("y", "dx") else \
            np.ascontiguousarray(t.numpy().astype(np.float32))
        np.save(os.path.join(d, key + ".npy"), arr)
    with open(os.path.join(d, "params.txt"), "w") as f:
        f.write("layout=%s\n" % layout)
        f.write("train=%d\n" % (1 if train else 0))
        f.write("torch_momentum=%s\n" % ("none" if p is None else repr(p)))
        f.write("eps=%r\n" % eps)
        f.write("unbiased_running_var=%d\n" % (1 if unbiased else 0))
        f.write("cumulative=%d\n" % (1 if p is None else 0))
        f.write("step=%d\n" % k)
        f.write("center=%d\n" % (1 if affine else 0))
        f.write("scale=%d\n" % (1 if affine else 0))


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    names = []
    for idx, case in enumerate(CASES):
        name = case[0]
        data = make_data(case, 1000 + idx)
        out32 = run_bn(case, torch.float32, data)
        out64 = run_bn(case, torch.float64, data)
        worst = {key: check_close(name, key, out32[key], out64[key]) for key in out32}
        check_formulas(case, data, out32)
        write_case(case, data, out32)
        names.append(name)
        print("%-26s max |f32 - f64|: %s" % (
            name, ", ".join("%s %.1e" % (kk, v) for kk, v in worst.items())))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        for name in names:
            f.write(name + "\n")
    print("wrote %d cases to %s" % (len(names), os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
