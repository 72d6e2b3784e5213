#!/usr/bin/env python3
"""Writes the NumPy-made .npy files that tests/test_npy.c and the npy fuzzer start from.

Rerun from the repository root with a Python that has NumPy (on the dev box that is the system
interpreter, not the pyenv one on PATH):

    /usr/bin/python3 scripts/gen_npy_fixtures.py

Outputs (all tiny, checked in):
    tests/fixtures/npy/f32_2x3.npy      float32, shape (2, 3): -1.0 -0.5 0.0 0.5 1.0 1.5
    tests/fixtures/npy/f64_4.npy        float64, shape (4,):   0.1 -2.5 1e-300 pi
    tests/fuzz/corpus_npy/*.npy         fuzzer seeds: valid 1.0/2.0 files, a Fortran-order file
                                        (refused) and a truncated one (refused)

The values are exactly representable or are plain decimal literals, so the C test can compare
with ==. np.save output is byte-for-byte what bnk_npy_write produces for the same array, and the
test checks that too.
"""
import io
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "npy")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus_npy")


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version)
    return buf.getvalue()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(data)} bytes)")


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)

    f32 = (np.arange(6, dtype=np.float32) * np.float32(0.5) - np.float32(1.0)).reshape(2, 3)
    f64 = np.array([0.1, -2.5, 1e-300, np.pi], dtype=np.float64)
    np.save(os.path.join(FIXTURES, "f32_2x3.npy"), f32)
    np.save(os.path.join(FIXTURES, "f64_4.npy"), f64)
    for name in ("f32_2x3.npy", "f64_4.npy"):
        print(f"wrote tests/fixtures/npy/{name}")

    write(os.path.join(CORPUS, "valid_f32_2x3_v1.npy"), npy_bytes(f32))
    write(os.path.join(CORPUS, "valid_f64_scalar_v2.npy"),
          npy_bytes(np.array(2.5, dtype=np.float64), version=(2, 0)))
    write(os.path.join(CORPUS, "bad_fortran_order.npy"),
          npy_bytes(np.asfortranarray(np.ones((2, 2), dtype=np.float32))))
    write(os.path.join(CORPUS, "bad_truncated.npy"), npy_bytes(f64)[:-3])


if __name__ == "__main__":
    main()
