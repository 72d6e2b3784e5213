#!/usr/bin/env python3
"""Reads a bnkit checkpoint the way a NumPy/PyTorch user would, without bnkit.

    /usr/bin/python3 scripts/check_safetensors.py model.safetensors
    /usr/bin/python3 scripts/check_safetensors.py model.safetensors --x X.npy --y Y.npy

The file is parsed by hand with NumPy (the `safetensors` package is not needed; when it is
installed its reader is cross-checked too): the 8-byte little-endian header length, the JSON
header, and every tensor's bytes as little-endian float32. The layout rules bnkit enforces are
checked (offsets tile the data section, no trailing bytes, F32 only), the metadata and tensors
are printed, and, when PyTorch is installed, the model is rebuilt as a torch.nn.Sequential from
the metadata's spec and loaded with load_state_dict(strict=True). With --x (features, float,
(N, F) or (N, C, H, W), scaled as the checkpoint's `scaling` says except that uint8 data must be
given already divided by 255) and --y (integer labels), it prints the mean cross-entropy and the
accuracy of the model in eval mode, to compare with `bnkit eval --data npy:X.npy,Y.npy`.
Exit status 0 when the file is a valid bnkit checkpoint, 1 otherwise. Run it by hand; the test
suite does not depend on Python.
"""
import argparse
import json
import struct
import sys

import numpy as np


def fail(msg):
    print(f"check_safetensors: {msg}", file=sys.stderr)
    sys.exit(1)


def read_checkpoint(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail(f"{path}: {len(blob)} bytes, too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        fail(f"{path}: header length {n} runs past the end")
    if (8 + n) % 8:
        fail(f"{path}: data section not 8-byte aligned (header length {n})")
    header = json.loads(blob[8 : 8 + n].decode("utf-8"))
    data = blob[8 + n :]
    meta = header.pop("__metadata__", None)
    if meta is None or meta.get("format") != "bnkit":
        fail(f"{path}: no bnkit __metadata__")
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    at = 0
    for begin, end, name in spans:
        if begin != at:
            fail(f"{path}: tensor {name} starts at {begin}, expected {at}")
        at = end
    if at != len(data):
        fail(f"{path}: {len(data) - at} bytes after the last tensor")
    tensors = {}
    for name, v in header.items():
        if v["dtype"] != "F32":
            fail(f"{path}: tensor {name} has dtype {v['dtype']}")
        begin, end = v["data_offsets"]
        arr = np.frombuffer(data[begin:end], dtype="<f4").reshape(v["shape"])
        tensors[name] = arr
    return meta, tensors


def cross_check_safetensors(path, tensors):
    try:
        from safetensors.numpy import load_file  # optional
    except ImportError:
        print("safetensors package: not installed (skipped the cross-check)")
        return
    theirs = load_file(path)
    assert set(theirs) == set(tensors), "tensor names differ from the safetensors reader's"
    for k in tensors:
        assert np.array_equal(theirs[k], tensors[k]), f"{k} differs from the safetensors reader's"
    print("safetensors package: same tensors")


def torch_model(meta, tensors):
    import torch
    from torch import nn

    bn_cfg = json.loads(meta["bn_config"])
    c, h, w = (int(v) for v in meta["in_shape"].split(","))
    layers, state, shape = [], {}, (c, h, w)
    for i, tok in enumerate(meta["spec"].split(",")):
        parts = tok.strip().split(":")
        kind, args = parts[0], [float(a) for a in parts[1:]]
        if kind == "dense":
            units = int(args[0])
            layers.append(nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), units)))
            state[f"{i}.1.weight"] = tensors[f"{i}.dense.weight"]
            state[f"{i}.1.bias"] = tensors[f"{i}.dense.bias"]
            shape = (units, 1, 1)
        elif kind == "conv":
            f_, k = int(args[0]), int(args[1])
            stride = int(args[2]) if len(args) > 2 else 1
            pad = int(args[3]) if len(args) > 3 else k // 2
            layers.append(nn.Conv2d(shape[0], f_, k, stride, pad))
            state[f"{i}.weight"] = tensors[f"{i}.conv.weight"]
            state[f"{i}.bias"] = tensors[f"{i}.conv.bias"]
            oh = (shape[1] + 2 * pad - k) // stride + 1
            ow = (shape[2] + 2 * pad - k) // stride + 1
            shape = (f_, oh, ow)
        elif kind == "maxpool":
            k = int(args[0])
            s = int(args[1]) if len(args) > 1 else k
            layers.append(nn.MaxPool2d(k, s))
            shape = (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
        elif kind == "bn":
            ch = shape[0]
            planar = shape[1] * shape[2] > 1
            bn = (nn.BatchNorm2d if planar else nn.BatchNorm1d)(ch, eps=bn_cfg["eps"])
            # NC after dense (BatchNorm1d on (N, C)), NCHW after conv (BatchNorm2d)
            layers.append(nn.Sequential(nn.Identity() if planar else nn.Flatten(), bn,
                                        nn.ReLU() if bn_cfg["fuse_relu"] else nn.Identity()))
            one, zero = np.ones(ch, np.float32), np.zeros(ch, np.float32)
            state[f"{i}.1.weight"] = tensors[f"{i}.bn.gamma"] if bn_cfg["scale"] else one
            state[f"{i}.1.bias"] = tensors[f"{i}.bn.beta"] if bn_cfg["center"] else zero
            state[f"{i}.1.running_mean"] = tensors[f"{i}.bn.running_mean"]
            state[f"{i}.1.running_var"] = tensors[f"{i}.bn.running_var"]
            state[f"{i}.1.num_batches_tracked"] = np.array(int(meta.get("bn_step", "0")))
        elif kind == "relu":
            layers.append(nn.ReLU())
        elif kind == "dropout":
            layers.append(nn.Dropout(float(args[0]) if args else float(meta.get("dropout", 0.5))))
        elif kind == "flatten":
            layers.append(nn.Flatten())
            shape = (int(np.prod(shape)), 1, 1)
        else:
            fail(f"unknown layer {tok}")
    model = nn.Sequential(*layers)
    # strict: every tensor of the checkpoint lands somewhere and nothing is left uninitialised
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, strict=True)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--x", help="features .npy (N, F) or (N, C, H, W)")
    ap.add_argument("--y", help="labels .npy (N,)")
    a = ap.parse_args()
    meta, tensors = read_checkpoint(a.checkpoint)
    print("metadata:")
    for k, v in meta.items():
        print(f"  {k} = {v}")
    print("tensors:")
    for k, v in tensors.items():
        print(f"  {k:28s} {str(tuple(v.shape)):18s} mean {float(v.mean()):+.6f}")
    cross_check_safetensors(a.checkpoint, tensors)
    try:
        import torch
    except ImportError:
        print("torch: not installed (skipped the rebuild)")
        return
    model = torch_model(meta, tensors)
    print(f"torch: rebuilt {meta['spec']} and loaded {len(tensors)} tensors (strict)")
    if a.x and a.y:
        c, h, w = (int(v) for v in meta["in_shape"].split(","))
        x = np.load(a.x).astype(np.float32).reshape(-1, c, h, w)
        y = np.load(a.y).astype(np.int64)
        if meta.get("scaling") == "standardize":
            x = (x - tensors["input.mean"]) / tensors["input.std"]
        with torch.no_grad():
            logits = model(torch.from_numpy(x))
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
            acc = (logits.argmax(1).numpy() == y).mean()
        print(f"torch: loss {loss:.9g} accuracy {acc:.9g} on {len(y)} samples")


if __name__ == "__main__":
    main()
