#!/usr/bin/python3
"""bnkit's BN kernels beside oneDNN and PyTorch on issue 5's shapes, interleaved in one run, with
a STREAM triad measured in the same run (docs/PERFORMANCE.md).

    /usr/bin/python3 bench/bn/compare.py --build /tmp/build-perf [--threads 1] [--rounds 2]
        [--shapes A,B,C,D,E,F,100x32x28x28] [--layouts nchw,nhwc,nchw16c]
        [--ops fwd_train,fwd_infer,bwd] [--min-time 0.3] [--json results.jsonl] [--no-torch]
        [--no-dnnl]

For every case (shape x layout x op) it runs bnkit (`bnkit bench bn --json`), then oneDNN
(bench_bn_dnnl), then PyTorch (bench_bn_torch.py, in this process), and repeats that `rounds`
times, keeping each peer's best median: the peers see the same machine state, and a burst of
load from elsewhere hurts one round rather than one peer. The triad (bench_triad, the same
thread count) runs before and after; the table's "% triad" is bnkit's effective bandwidth over
the better of the two. Ratios are peer time / bnkit time: above 1, bnkit is faster. The load
average is printed with the table, since the machine may be shared. A shape is a name of
issue 5's set or NxCxHxW; the blocked layouts nchw16c and nchw8c (oneDNN's nChw16c, nChw8c,
its preferred ones) compare bnkit with oneDNN only (PyTorch has no such layout).
"""
import argparse
import json
import os
import subprocess
import sys

SHAPES = {"A": (32, 64, 56, 56), "B": (32, 256, 56, 56), "C": (32, 512, 28, 28),
          "D": (32, 2048, 7, 7), "E": (256, 128, 1, 1), "F": (100, 128, 1, 1)}
OPS = ["fwd_train", "fwd_infer", "bwd"]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def triad(build, threads):
    exe = os.path.join(build, "bench", "bn", "bench_triad")
    return run_json([exe, "--threads", str(threads), "--json"])[0]["best_gbs"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", required=True, help="CMake build directory")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--shapes", default="A,B,C,D,E,F", help="names A..F or NxCxHxW")
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--layouts", default="nchw,nhwc",
                    help="for the 4-D shapes (E, F: nc): nchw, nhwc, nchw16c, nchw8c")
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--kernel", help="bnkit kernel (default: the library's choice)")
    ap.add_argument("--json", help="also write every measurement to this JSON Lines file")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-dnnl", action="store_true")
    a = ap.parse_args()

    bnkit = os.path.join(a.build, "bnkit")
    dnnl = os.path.join(a.build, "bench", "bn", "bench_bn_dnnl")
    torch_case = None
    if not a.no_torch:
        try:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from bench_bn_torch import time_case as torch_case  # noqa: E402
        except ImportError as e:
            print("PyTorch peer skipped: %s" % e, file=sys.stderr)

    load0 = loadavg()
    tri0 = triad(a.build, a.threads)
    cases = []
    for name in a.shapes.split(","):
        shape = SHAPES[name] if name in SHAPES else tuple(int(v) for v in name.split("x"))
        layouts = ["nc"] if shape[2:] == (1, 1) else a.layouts.split(",")
        for layout in layouts:
            for op in a.ops.split(","):
                cases.append((name, shape, layout, op))

    best = {}  # (case, peer) -> record with the smallest median
    records = []
    for rnd in range(a.rounds):
        for name, shape, layout, op in cases:
            sh = ",".join(map(str, shape))
            peers = [("bnkit", [bnkit, "bench", "bn", "--shape", sh, "--layout", layout,
                                "--op", op, "--threads", str(a.threads), "--min-time",
                                str(a.min_time), "--json"]
                      + (["--kernel", a.kernel] if a.kernel else []))]
            if not a.no_dnnl:
                peers.append(("onednn", [dnnl, "--shape", sh, "--layout", layout, "--op", op,
                                         "--threads", str(a.threads), "--min-time",
                                         str(a.min_time), "--json"]))
            for peer, cmd in peers:
                r = run_json(cmd)[0]
                r.update(peer=peer, name=name, round=rnd)
                records.append(r)
                key = (name, layout, op, peer)
                if key not in best or r["median_us"] < best[key]["median_us"]:
                    best[key] = r
            if torch_case and layout in ("nchw", "nhwc", "nc"):
                r = torch_case(op, layout, shape, a.threads, a.min_time)
                r.update(peer="pytorch", name=name, round=rnd)
                records.append(r)
                key = (name, layout, op, "pytorch")
                if key not in best or r["median_us"] < best[key]["median_us"]:
                    best[key] = r
    tri1 = triad(a.build, a.threads)
    load1 = loadavg()
    tri = max(tri0, tri1)

    print("threads %d; load average before %s, after %s; STREAM triad %.1f GB/s before, "
          "%.1f after (%% triad uses %.1f)" % (a.threads, load0, load1, tri0, tri1, tri))
    print()
    print("| case | op | layout | bnkit kernel | bnkit us | GB/s | % triad | oneDNN us (impl) "
          "| oneDNN/bnkit | PyTorch us | PyTorch/bnkit |")
    print("|---|---|---|---|---:|---:|---:|---|---:|---:|---:|")
    for name, shape, layout, op in cases:
        b = best[(name, layout, op, "bnkit")]
        row = "| %s | %s | %s | %s | %.1f | %.1f | %.0f%% |" % (
            name, op, layout, b["kernel"], b["median_us"], b["gbs"], 100 * b["gbs"] / tri)
        d = best.get((name, layout, op, "onednn"))
        row += (" %.1f (%s) | %.2f |" % (d["median_us"], d["kernel"],
                                        d["median_us"] / b["median_us"]) if d else " - | - |")
        t = best.get((name, layout, op, "pytorch"))
        row += (" %.1f | %.2f |" % (t["median_us"], t["median_us"] / b["median_us"])
                if t else " - | - |")
        print(row)
    if a.json:
        with open(a.json, "w") as f:
            meta = {"bench": "meta", "threads": a.threads, "load_before": load0,
                    "load_after": load1, "triad_before_gbs": tri0, "triad_after_gbs": tri1}
            f.write(json.dumps(meta) + "\n")
            for r in records:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
