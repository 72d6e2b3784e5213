#!/usr/bin/env python3
"""PyTorch peer for bench/train/run.sh: trains the same model as `bnkit train` on the same
Fashion-MNIST files with the same hyperparameters and prints one JSON line like
`bnkit train --json` (test_accuracy, samples_per_sec, seconds).

Run with Debian's python3-torch: /usr/bin/python3 bench/train/torch_train.py --model mlp --epochs 1
"""
import argparse
import gzip
import json
import time

import numpy as np
import torch
import torch.nn as nn

DATA = "/usr/share/datasets/fashion-mnist"


def idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(split):
    x = idx(f"{DATA}/{split}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    y = idx(f"{DATA}/{split}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y)


def model(kind, momentum, eps):
    if kind == "mlp":  # dense:128,relu,bn,dense:10
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(),
                             nn.BatchNorm1d(128, eps=eps, momentum=momentum), nn.Linear(128, 10))
    # conv:32:3,bn,relu,maxpool:2,conv:64:3,bn,relu,maxpool:2,flatten,dense:128,bn,relu,dense:10
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32, eps=eps, momentum=momentum), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64, eps=eps, momentum=momentum), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.BatchNorm1d(128, eps=eps, momentum=momentum), nn.ReLU(),
        nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    net = model(args.model, momentum=0.1, eps=1e-3)  # bnkit: --bn-momentum 0.9 --bn-eps 1e-3
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    train_time = 0.0
    seen = 0
    for _ in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        t0 = time.perf_counter()
        for i in range(0, len(xtr) - 1, args.batch):
            idx_ = perm[i:i + args.batch]
            opt.zero_grad()
            loss = loss_fn(net(xtr[idx_]), ytr[idx_])
            loss.backward()
            opt.step()
            seen += len(idx_)
        train_time += time.perf_counter() - t0
    net.eval()
    with torch.no_grad():
        correct = sum((net(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                      for i in range(0, len(xte), 1000))
    print(json.dumps({"test_accuracy": correct / len(xte), "samples_per_sec": seen / train_time,
                      "seconds": time.perf_counter() - start, "epochs": args.epochs}))


if __name__ == "__main__":
    main()
