#!/usr/bin/python3
"""Generate the PyTorch golden data for end-to-end training (tests/test_nn_torch.c).

Rerun from the repository root with the Debian interpreter that has torch and numpy:

    /usr/bin/python3 scripts/gen_nn_fixtures.py

(Tested with PyTorch 1.13 and NumPy 1.24.) The output is deterministic: every case seeds its own
generator and PyTorch runs single-threaded. The script deletes and rewrites tests/fixtures/nn/
and nothing else. `--dump DIR` additionally writes, for debugging a mismatch, every layer's
output and input gradient of the first step to DIR/<case>/ (not part of the fixtures).

Each case trains a bnkit model spec, translated token by token into torch.nn modules, with Adam
(lr 1e-3, betas 0.9/0.999, eps 1e-8, no weight decay) for STEPS steps of one batch each, in
training mode, with mean softmax cross-entropy. Cases:
  mlp  the source document's model "dense:128,relu,bn,dense:10" on 1x28x28 inputs;
  cnn  a small version of the issue's CNN on 1x12x12 inputs (the pools give 6x6, then 3x3).
Mapping: dense -> Flatten + Linear; conv:F:K -> Conv2d(padding K//2); maxpool:K -> MaxPool2d(K,
K); bn -> BatchNorm1d after a dense/flatten, BatchNorm2d after conv/pool (eps 1e-3, momentum
p = 0.1, i.e. bnkit momentum 0.9, unbiased running variance as PyTorch); flatten -> Flatten.
PyTorch flattens each sample as (C, H, W), as bnkit does.

tests/fixtures/nn/<case>/ holds:
  params.txt    key=value: spec, in_c, in_h, in_w, batch, steps, lr, beta1, beta2, adam_eps,
                bn_eps, bn_momentum_torch (bnkit's momentum is 1 - this), unbiased_running_var
  x.npy         (steps*batch, in_c, in_h, in_w) float32, uniform in [-1, 1) (zero-mean, like
                standardised pixels; see INPUTS below); step k uses rows [k*batch, (k+1)*batch)
  labels.npy    (steps*batch,) float32 integer class indices: class c is the c-th horizontal
                band (tenth of the flattened image) with the largest mean
  <name>.npy    every bnkit tensor before training, named as bnk_model_tensor() names it:
                "<layer index>.<dense|conv|bn>.<weight|bias|gamma|beta|running_mean|running_var>"
                with the layer index counted over the spec tokens from 0, PyTorch shapes.
                Weights and biases are PyTorch's default initialisation; BN gamma, beta and the
                running statistics are perturbed from 1, 0, 0, 1 so that loading them matters.
  <name>.final.npy  the same tensors after the last step (running statistics included)
  losses.npy    (steps,) float64: PyTorch's float32 loss of step k's forward, before its update
  <i>.bn.running_mean.bias_part.npy  (C,) float64, for a BN directly after a biased dense/conv
                layer: the part of its final running mean that comes from that bias (see
                bias_parts() below)
  <name>.sensitive.npy  (k,) float64 flat indices, for a parameter with elements whose Adam
                updates rounding noise decides (see adam_sensitivity() and SENS_MAX below);
                absent when there are none
tests/fixtures/nn/cases.txt lists the case names.

INPUTS are zero-mean on purpose. With raw [0, 1) pixels most of the MLP's hidden units are
active for all 16 samples of a batch, and then the gradient of their dense bias is exactly zero
(the BN after the ReLU removes any shift); in float32 it is rounding noise of ~1e-9, which Adam
(m/(sqrt(v)+eps), eps 1e-8) turns into updates of up to 0.9*lr in a random direction. That made
float32 PyTorch itself disagree with float64 PyTorch by 5e-5 relative in the loss, too close to
the 1e-4 bound to test bnkit with. Zero-mean inputs keep every loss within ~2e-7 of float64.
(Biases directly followed by a BN, as in the CNN, have the same noise-driven updates but do not
change the loss at all; see bias_parts() and adam_sensitivity().)

The same training also runs in float64 from the same float32 start; the script stops if the
float32 losses are not within 1e-5 relative of it, and prints how far the float32 final tensors
are from the float64 ones (the C test's tolerances for final parameters cite these numbers). It
also stops unless every loss after the first differs from the loss of the same model without
updates by more than 2e-4 relative, so a test that ignored the optimiser could not pass.
"""

import argparse
import os
import shutil
import sys
import types

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "nn")

LR = 1e-3
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
BN_EPS = 1e-3
BN_P = 0.1  # PyTorch momentum; bnkit's is 1 - BN_P
CLASSES = 10

# float32 PyTorch losses vs float64 PyTorch losses, relative.
SANITY_LOSS_RTOL = 1e-5
# Parameters whose Adam update moves by more than this times a change of their gradient, at any
# step (float64 run), are listed as sensitive (see adam_sensitivity()). Float32 gradients are
# off by ~1e-8 (sums of ~1e-2 terms), which moves the others by at most ~1e-6 per step.
SENS_MAX = 100.0
# Every loss after the first vs the loss of the same batches without updates, relative: at
# least twice the C test's bound (1e-4), so that a model that ignored its updates fails there.
SANITY_MOVED_RTOL = 2e-4

# (name, spec, (in_c, in_h, in_w), batch, steps, seed)
CASES = [
    ("mlp", "dense:128,relu,bn,dense:10", (1, 28, 28), 16, 20, 2001),
    ("cnn", "conv:8:3,bn,relu,maxpool:2,conv:16:3,bn,relu,maxpool:2,flatten,dense:32,bn,relu,"
     "dense:10", (1, 12, 12), 16, 20, 2002),
]


class Dense(torch.nn.Module):
    """bnkit's dense: flattens its input, then a Linear."""

    def __init__(self, fan_in, units):
        super().__init__()
        self.linear = torch.nn.Linear(fan_in, units)

    def forward(self, x):
        return self.linear(torch.flatten(x, 1))


def build(spec, in_shape):
    """spec -> (torch.nn.Sequential with one module per token, {bnkit name: tensor getter}).

    Each entry of the map is (name, module, attribute) so that values can be read and written
    in place."""
    c, h, w = in_shape
    flat = False  # True once the activation is (features,) per sample
    mods, names = [], []
    for i, tok in enumerate(spec.split(",")):
        parts = tok.split(":")
        kind, args = parts[0], [int(a) for a in parts[1:]]
        if kind == "dense":
            m = Dense(c * h * w, args[0])
            c, h, w, flat = args[0], 1, 1, True
            names += [("%d.dense.weight" % i, m.linear, "weight"),
                      ("%d.dense.bias" % i, m.linear, "bias")]
        elif kind == "conv":
            f, k = args[0], args[1]
            m = torch.nn.Conv2d(c, f, k, stride=1, padding=k // 2)
            c, h, w = f, h + 2 * (k // 2) - k + 1, w + 2 * (k // 2) - k + 1
            names += [("%d.conv.weight" % i, m, "weight"), ("%d.conv.bias" % i, m, "bias")]
        elif kind == "maxpool":
            k = args[0]
            m = torch.nn.MaxPool2d(k, k)
            h, w = (h - k) // k + 1, (w - k) // k + 1
        elif kind == "relu":
            m = torch.nn.ReLU()
        elif kind == "bn":
            cls = torch.nn.BatchNorm1d if flat else torch.nn.BatchNorm2d
            m = cls(c, eps=BN_EPS, momentum=BN_P)
            names += [("%d.bn.%s" % (i, a), m, b) for a, b in (
                ("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
                ("running_var", "running_var"))]
        elif kind == "flatten":
            m = torch.nn.Flatten()
            c, h, w, flat = c * h * w, 1, 1, True
        else:
            raise ValueError("unsupported token %r" % tok)
        mods.append(m)
    if (c, h, w) != (CLASSES, 1, 1):
        raise ValueError("%s: output is %dx%dx%d, not %d classes" % (spec, c, h, w, CLASSES))
    return torch.nn.Sequential(*mods), names


def make_case(case):
    """Initial tensors (float32 numpy, by bnkit name), inputs and labels."""
    name, spec, in_shape, batch, steps, seed = case
    torch.manual_seed(seed)
    model, names = build(spec, in_shape)  # PyTorch's default initialisation
    g = torch.Generator().manual_seed(seed + 1)
    init = {}
    for tname, mod, attr in names:
        t = getattr(mod, attr).detach().clone().float()
        field = tname.rsplit(".", 1)[1]
        if field == "gamma":
            t = torch.rand(t.shape, generator=g) * 0.4 + 0.8
        elif field == "beta":
            t = torch.randn(t.shape, generator=g) * 0.1
        elif field == "running_mean":
            t = torch.randn(t.shape, generator=g) * 0.1
        elif field == "running_var":
            t = torch.rand(t.shape, generator=g) + 0.5
        init[tname] = t.numpy().astype(np.float32)
    total = steps * batch
    x = torch.rand((total,) + tuple(in_shape), generator=g) * 2.0 - 1.0
    # Class c is the horizontal band (c-th tenth of the flattened image) with the largest mean.
    d = int(np.prod(in_shape))
    band = torch.arange(d) * CLASSES // d
    teacher = (band.unsqueeze(0) == torch.arange(CLASSES).unsqueeze(1)).float()
    teacher = teacher / teacher.sum(dim=1, keepdim=True)
    labels = torch.argmax(x.reshape(total, -1) @ teacher.t(), dim=1)
    return init, x.numpy().astype(np.float32), labels.numpy()


def train(case, init, x, labels, dtype, dump_dir=None, lr=LR):
    """Runs the case in dtype. Returns losses ([steps] float64), final (tensors by name), parts
    (bias parts by BN running-mean name, see bias_parts()) and sens (by parameter name, each
    element's largest Adam sensitivity over the steps, see adam_sensitivity())."""
    name, spec, in_shape, batch, steps, seed = case
    model, names = build(spec, in_shape)
    parts = {bn: (bias, np.zeros(getattr(mod, attr).shape)) for bn, bias, mod, attr in
             bias_parts(names)}
    sens = {}
    model = model.to(dtype)
    with torch.no_grad():
        for tname, mod, attr in names:
            getattr(mod, attr).copy_(torch.from_numpy(init[tname]).to(dtype))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS, eps=ADAM_EPS,
                           weight_decay=0.0)
    xs = torch.from_numpy(x).to(dtype)
    ys = torch.from_numpy(labels).long()
    losses = []
    for k in range(steps):
        xb, yb = xs[k * batch:(k + 1) * batch], ys[k * batch:(k + 1) * batch]
        opt.zero_grad()
        for bn, (bias, acc) in parts.items():
            b = getattr(bias[0], bias[1]).detach().double().numpy()
            acc += BN_P * (1.0 - BN_P) ** (steps - 1 - k) * b
        if dump_dir is not None and k == 0:
            acts = [xb.clone().requires_grad_(True)]
            for mod in model:
                out = mod(acts[-1])
                out.retain_grad()
                acts.append(out)
            loss = torch.nn.functional.cross_entropy(acts[-1], yb)
            loss.backward()
            os.makedirs(dump_dir, exist_ok=True)
            for i, a in enumerate(acts[1:]):
                np.save(os.path.join(dump_dir, "act%d.npy" % i), a.detach().numpy())
                np.save(os.path.join(dump_dir, "grad%d.npy" % i), a.grad.numpy())
            for tname, mod, attr in names:
                t = getattr(mod, attr)
                if t.grad is not None:
                    np.save(os.path.join(dump_dir, tname + ".grad.npy"), t.grad.numpy())
        else:
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
        losses.append(loss.item())
        opt.step()
        for tname, mod, attr in names:
            t = getattr(mod, attr)
            if t.grad is None:
                continue
            st = opt.state[t]
            s = adam_sensitivity(t.grad.double().numpy(), st["exp_avg"].double().numpy(),
                                 st["exp_avg_sq"].double().numpy(), k + 1, lr)
            sens[tname] = np.maximum(sens[tname], s) if tname in sens else s
    final = {tname: getattr(mod, attr).detach().clone().double().numpy()
             for tname, mod, attr in names}
    return types.SimpleNamespace(losses=np.array(losses, dtype=np.float64), final=final,
                                 parts={bn: acc for bn, (_, acc) in parts.items()}, sens=sens)


def adam_sensitivity(g, m, v, t, lr):
    """|d(update)/d(g)| of Adam's step t, where update = lr*m^/(sqrt(v^)+eps) with m and v the
    moments after the step (m^ = m/bc1, v^ = v/bc2), for each element of gradient g:
        lr * |(1-b1)/bc1/(s+eps) - m^*(1-b2)*g/(bc2*s*(s+eps)^2)|,  s = sqrt(v^).
    A gradient that is exactly 0 counts as 0: such zeros (a ReLU that blocks every sample) are
    exact in any implementation. Where every gradient so far is tiny, s is tiny too and the
    update approaches lr*sign(g): rounding noise in g then decides the update."""
    b1, b2 = BETAS
    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    mh, s = m / bc1, np.sqrt(v / bc2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (1.0 - b1) / bc1 / (s + ADAM_EPS) - \
            np.where(s > 0, mh * (1.0 - b2) * g / (bc2 * s * (s + ADAM_EPS) ** 2), 0.0)
    return np.where(g == 0.0, 0.0, lr * np.abs(d))


def bias_parts(names):
    """The BN layers directly after a biased dense/conv layer: [(bn running_mean name, (module,
    attr) of the bias, module, attr)].

    The gradient of such a bias is exactly zero (the BN removes any shift), so in float32 its
    Adam updates are driven by rounding noise and differ between any two implementations; the
    BN's running mean absorbs those differences. With b_k the bias during step k's forward, the
    part of the final running mean that comes from the bias is sum_k p*(1-p)^(steps-1-k)*b_k
    (the running mean is an exponential average of batch means, and the batch mean of the
    layer's output is the mean without bias plus b_k). The fixture stores that part so that the
    C test can compare running_mean - part, which does not depend on the noise."""
    by_name = {t: (m, a) for t, m, a in names}
    out = []
    for t, m, a in names:
        idx, kind, field = t.split(".")
        if field == "bias" and kind in ("dense", "conv"):
            bn = "%d.bn.running_mean" % (int(idx) + 1)
            if bn in by_name:
                out.append((bn, (m, a), m, a))
    return out


def write_case(case, init, x, labels, losses, final, parts, sensitive):
    name, spec, (in_c, in_h, in_w), batch, steps, seed = case
    d = os.path.join(OUT, name)
    os.makedirs(d)
    np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x))
    np.save(os.path.join(d, "labels.npy"), labels.astype(np.float32))
    np.save(os.path.join(d, "losses.npy"), losses)
    for tname, arr in init.items():
        np.save(os.path.join(d, tname + ".npy"), np.ascontiguousarray(arr))
        np.save(os.path.join(d, tname + ".final.npy"),
                np.ascontiguousarray(final[tname].astype(np.float32)))
    for bn, part in parts.items():
        np.save(os.path.join(d, bn + ".bias_part.npy"), part)
    for tname, idx in sensitive.items():
        if len(idx):
            np.save(os.path.join(d, tname + ".sensitive.npy"), idx.astype(np.float64))
    with open(os.path.join(d, "params.txt"), "w") as f:
        f.write("spec=%s\n" % spec)
        f.write("in_c=%d\nin_h=%d\nin_w=%d\n" % (in_c, in_h, in_w))
        f.write("batch=%d\nsteps=%d\n" % (batch, steps))
        f.write("lr=%r\nbeta1=%r\nbeta2=%r\nadam_eps=%r\n" % (LR, BETAS[0], BETAS[1], ADAM_EPS))
        f.write("bn_eps=%r\nbn_momentum_torch=%r\nunbiased_running_var=1\n" % (BN_EPS, BN_P))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dump", metavar="DIR", help="also write step-0 activations to DIR/<case>")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for case in CASES:
        name = case[0]
        init, x, labels = make_case(case)
        dump = os.path.join(args.dump, name) if args.dump else None
        r32 = train(case, init, x, labels, torch.float32, dump)
        r64 = train(case, init, x, labels, torch.float64)
        losses, final, parts = r32.losses, r32.final, r32.parts
        losses64, final64, parts64 = r64.losses, r64.final, r64.parts
        sensitive = {t: np.flatnonzero(r64.sens[t] > SENS_MAX) for t in r64.sens}
        rel = np.abs(losses - losses64) / np.abs(losses64)
        if not (rel <= SANITY_LOSS_RTOL).all():
            raise RuntimeError("%s: float32 losses differ from float64 by %.3g relative at step "
                               "%d" % (name, rel.max(), int(np.argmax(rel))))
        frozen = train(case, init, x, labels, torch.float32, lr=0.0).losses
        moved = np.abs(losses - frozen)[1:] / np.abs(frozen[1:])
        if not (moved > SANITY_MOVED_RTOL).all():
            raise RuntimeError("%s: the loss at step %d hardly depends on the updates (%.3g)" % (
                name, 1 + int(np.argmin(moved)), moved.min()))
        write_case(case, init, x, labels, losses, final, parts, sensitive)
        print("%s: loss %.6f -> %.6f; max rel |loss f32 - f64| %.2e; min rel effect of the "
              "updates %.2e; classes %s" % (name, losses[0], losses[-1], rel.max(), moved.min(),
                                          np.bincount(labels, minlength=CLASSES)))
        for tname in final:
            diff = np.abs(final[tname] - final64[tname])
            moved = np.abs(final64[tname] - init[tname].astype(np.float64))
            print("  %-22s max|f32-f64| %.2e  max|param| %.2e  max|moved| %.2e" % (
                tname, diff.max(), np.abs(final64[tname]).max(), moved.max()))
            if tname in sensitive and len(sensitive[tname]):
                keep = np.ones(diff.size, dtype=bool)
                keep[sensitive[tname]] = False
                print("  %-22s %d sensitive; the others: max|f32-f64| %.2e, max sensitivity "
                      "%.2e" % ("", len(sensitive[tname]), diff.reshape(-1)[keep].max(initial=0),
                                r64.sens[tname].reshape(-1)[keep].max(initial=0)))
            if tname in parts:
                diff = np.abs((final[tname] - parts[tname]) - (final64[tname] - parts64[tname]))
                print("  %-22s max|f32-f64| %.2e  (running_mean - bias part)" % ("", diff.max()))
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        for case in CASES:
            f.write(case[0] + "\n")
    print("wrote %d cases to %s" % (len(CASES), os.path.relpath(OUT, ROOT)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
