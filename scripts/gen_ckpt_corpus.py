#!/usr/bin/env python3
"""Writes the seed corpus of the checkpoint-header fuzzer, tests/fuzz/corpus_ckpt/.

    /usr/bin/python3 scripts/gen_ckpt_corpus.py          # from the repository root

The files are bnkit checkpoints (safetensors) written with the standard library alone, which
also shows how another tool produces a file `bnkit eval` loads: a valid `dense:2` model with
only the required metadata, a valid standardised `dense:3,relu,bn,dense:2` model with every
metadata key, and two broken ones (a truncated data section, an F16 tensor).
"""
import json
import os
import struct

OUT = os.path.join("tests", "fuzz", "corpus_ckpt")

BN_CONFIG = json.dumps({
    "momentum": 0.9, "cumulative": False, "eps": 0.001, "center": True, "scale": True,
    "unbiased_running_var": False, "mean_clip": ["-inf", "inf"], "var_clip": [0.0, "inf"],
    "rel_clip_r": "inf", "rel_clip_d": "inf", "clip_warmup": 0,
    "running_mean_clip": ["-inf", "inf"], "running_var_clip": [0.0, "inf"],
    "normalize_with": "batch", "rmax": 3.0, "dmax": 5.0, "fuse_relu": False,
}, separators=(",", ":"))


def checkpoint(tensors, meta, dtype="F32", cut=0):
    """tensors: list of (name, shape, values); returns the file's bytes."""
    header, data = {"__metadata__": meta}, b""
    for name, shape, values in tensors:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    blob = struct.pack("<Q", len(text)) + text + data
    return blob[: len(blob) - cut]


def main():
    os.makedirs(OUT, exist_ok=True)
    minimal = {"format": "bnkit", "version": "1", "spec": "dense:2", "in_shape": "2,1,1",
               "bn_config": BN_CONFIG}
    dense2 = [("0.dense.weight", [2, 2], [1, 2, 3, 4]), ("0.dense.bias", [2], [0.5, -0.5])]
    full = dict(minimal, spec="dense:3,relu,bn,dense:2", in_shape="1,1,2", bn_step="42",
                dropout="0.5", seed="7", data="csv:train.csv", test_data="csv:test.csv",
                scaling="standardize", folded="false")
    mlp = [("0.dense.weight", [3, 2], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]),
           ("0.dense.bias", [3], [0, 0.1, 0]),
           ("2.bn.gamma", [3], [1, 1.5, 0.5]), ("2.bn.beta", [3], [0, 0.2, -0.2]),
           ("2.bn.running_mean", [3], [0.1, 0.2, 0.3]), ("2.bn.running_var", [3], [1, 2, 0.5]),
           ("3.dense.weight", [2, 3], [1, -1, 0.5, 0.25, 0, 2]), ("3.dense.bias", [2], [0, 0]),
           ("input.mean", [1, 1, 2], [0.5, -0.5]), ("input.std", [1, 1, 2], [1, 2])]
    files = {
        "valid_dense2.safetensors": checkpoint(dense2, minimal),
        "valid_mlp_standardize.safetensors": checkpoint(mlp, full),
        "bad_truncated.safetensors": checkpoint(mlp, full, cut=5),
        "bad_dtype_f16.safetensors": checkpoint(dense2, minimal, dtype="F16"),
    }
    for name, blob in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(blob)
        print(f"wrote {os.path.join(OUT, name)} ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
