#!/usr/bin/env python3
"""Drive a bnkit study from your own PyTorch training loop with `bnkit ask` / `bnkit tell`.

bnkit chooses the BN hyperparameters (its samplers, pruner and crash-safe SQLite study);
PyTorch trains. Momentum is asked for in bnkit's (Keras) convention and converted to PyTorch's:
torch momentum = 1 - bnkit momentum.

    python3 examples/pytorch_ask_tell.py --bnkit build/bnkit --study /tmp/torch.db --trials 8

Needs Debian's python3-torch. CI runs it when torch is installed (tests/CMakeLists.txt).
"""
import argparse
import json
import subprocess

import torch
import torch.nn as nn


def bnkit(exe, *args):
    out = subprocess.run([exe, *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def make_data(seed, n=600):
    """Two noisy classes in 20 dimensions; a stand-in for the user's data."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 20, generator=g)
    y = (x[:, :5].sum(1) + 0.5 * torch.randn(n, generator=g) > 0).long()
    return x[: n * 2 // 3], y[: n * 2 // 3], x[n * 2 // 3 :], y[n * 2 // 3 :]


def train(params, data, epochs, report):
    torch.manual_seed(0)
    xtr, ytr, xva, yva = data
    model = nn.Sequential(
        nn.Linear(20, 32),
        nn.ReLU(),
        nn.BatchNorm1d(32, eps=params["bn.eps"], momentum=1.0 - params["bn.momentum"]),
        nn.Linear(32, 2),
    )
    opt = torch.optim.Adam(model.parameters(), lr=params["lr"])
    acc = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        for i in range(0, len(xtr), 50):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xtr[i : i + 50]), ytr[i : i + 50])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(xva).argmax(1) == yva).float().mean().item()
        if report(epoch, acc):  # the study's pruner says stop
            return acc, True
    return acc, False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bnkit", default="build/bnkit")
    ap.add_argument("--study", default="/tmp/bnkit-torch.db")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    space = ["--param", "bn.momentum=log:0.7:0.999", "--param", "bn.eps=log:1e-5:1e-2",
             "--param", "lr=log:1e-3:3e-2"]
    data = make_data(0)
    for _ in range(args.trials):
        trial = bnkit(args.bnkit, "ask", "--study", args.study, "--trials", str(args.trials),
                      "--sampler", "tpe", "--pruner", "median", *space)
        if trial.get("id") is None:  # budget used up
            break
        tid = str(trial["id"])

        def report(epoch, acc):
            return bnkit(args.bnkit, "tell", "--study", args.study, "--trial", tid,
                         "--step", str(epoch), "--value", repr(acc))["prune"]

        acc, pruned = train(trial["params"], data, args.epochs, report)
        subprocess.run([args.bnkit, "tell", "--study", args.study, "--trial", tid, "--value",
                        repr(acc)] + (["--state", "pruned"] if pruned else []), check=True)
        print(f"trial {trial['number']}: {trial['params']} -> {acc:.3f}"
              + (" (pruned)" if pruned else ""))
    best = bnkit(args.bnkit, "best", "--study", args.study, "--json")
    print("best:", json.dumps(best["params"]), "value", best["value"])


if __name__ == "__main__":
    main()
