#!/usr/bin/python3
"""PyTorch's batch normalization, timed the way `bnkit bench bn` times bnkit's (the PyTorch
peer of bench/bn/compare.py; docs/PERFORMANCE.md).

    /usr/bin/python3 bench/bn/bench_bn_torch.py --shape 32,64,56,56 --layout nhwc \
        --op fwd_train [--threads 1] [--min-time 0.3] [--json]

Debian's python3-torch (1.13). Training forward is F.batch_norm(training=True) under no_grad
(it also updates the running statistics, as bnkit does); inference is training=False; backward
is aten.native_batch_norm_backward with the saved statistics of one training forward, i.e. the
kernel autograd would call, without the autograd bookkeeping around it. NHWC is
torch.channels_last; NC is a 2-D tensor. Each call is timed alone with perf_counter_ns, so the
times include PyTorch's Python-side dispatch (a few microseconds, visible on small shapes).
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

EPS = 1e-3
MOMENTUM = 0.01  # PyTorch's p = 1 - bnkit's default momentum 0.99
BYTES = {"fwd_train": 8, "fwd_infer": 8, "bwd": 12}


def make_call(op, layout, shape):
    """A zero-argument function running op once on tensors of shape in layout."""
    n, c, h, w = shape
    g = torch.Generator().manual_seed(1)
    dims = (n, c) if layout == "nc" else (n, c, h, w)
    x = torch.randn(dims, generator=g) + 0.5
    dy = torch.randn(dims, generator=g)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    weight = 1.0 + 0.1 * torch.randn(c, generator=g)
    bias = 0.1 * torch.randn(c, generator=g)
    rm, rv = torch.zeros(c), torch.ones(c)
    if op == "fwd_train":
        return lambda: F.batch_norm(x, rm, rv, weight, bias, True, MOMENTUM, EPS)
    if op == "fwd_infer":
        return lambda: F.batch_norm(x, rm, rv, weight, bias, False, MOMENTUM, EPS)
    _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
        x, weight, bias, rm, rv, True, MOMENTUM, EPS)
    mask = [True, True, True]
    return lambda: torch.ops.aten.native_batch_norm_backward(
        dy, x, weight, rm, rv, save_mean, save_invstd, True, EPS, mask)


def time_case(op, layout, shape, threads, min_time=0.3):
    """Median and minimum microseconds of op, as a dict like bnkit's JSON lines."""
    torch.set_num_threads(threads)
    with torch.no_grad():
        call = make_call(op, layout, shape)
        t0, warm = time.perf_counter(), 0
        while warm < 2 or time.perf_counter() - t0 < 0.05:
            call()
            warm += 1
        per = (time.perf_counter() - t0) / warm
        reps = max(5, min(200000, int(min_time / max(per, 1e-9))))
        times = []
        for _ in range(reps):
            a = time.perf_counter_ns()
            call()
            times.append((time.perf_counter_ns() - a) * 1e-3)
    med = statistics.median(times)
    numel = shape[0] * shape[1] * shape[2] * shape[3]
    return {"bench": "bn", "peer": "pytorch", "op": op, "layout": layout,
            "shape": list(shape), "threads": threads,
            "kernel": "torch %s" % torch.__version__, "median_us": med,
            "min_us": min(times), "reps": reps,
            "gbs": BYTES[op] * numel / (med * 1e-6) * 1e-9}


def parse_shape(s):
    dims = [int(v) for v in s.split(",")]
    if len(dims) == 2:
        dims += [1, 1]
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError("expected N,C,H,W or N,C, got %r" % s)
    return tuple(dims)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=parse_shape, required=True)
    ap.add_argument("--layout", choices=["nchw", "nhwc", "nc"], required=True)
    ap.add_argument("--op", choices=sorted(BYTES), required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.layout == "nc" and a.shape[2:] != (1, 1):
        ap.error("--layout nc needs H = W = 1")
    r = time_case(a.op, a.layout, a.shape, a.threads, a.min_time)
    if a.json:
        print(json.dumps(r))
    else:
        print("pytorch %s %s %s threads %d: median %.1f us, min %.1f us, %.2f GB/s"
              % (a.op, a.layout, "x".join(map(str, a.shape)), a.threads,
                 r["median_us"], r["min_us"], r["gbs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
