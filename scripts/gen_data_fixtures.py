#!/usr/bin/env python3
"""Writes the seed corpora of the IDX and CSV fuzzers (tests/fuzz/idx_fuzz.c, csv_fuzz.c).

tests/test_data.c writes its own inputs into a temporary directory; only the fuzzers start from
checked-in files. Rerun from the repository root with any Python 3 (standard library only):

    python3 scripts/gen_data_fixtures.py

Outputs (all tiny, checked in):
    tests/fuzz/corpus_idx/*.bin   idx_fuzz inputs: 2 bytes little-endian k, an images file of k
                                  bytes, then a labels file. Valid pairs (2 images of 2x3,
                                  1 image of 1x1, 11 classes), and refused ones: truncated
                                  images, trailing byte, count mismatch, bad magic, absurd dims
    tests/fuzz/corpus_csv/*.csv   csv_fuzz inputs: with/without header, CRLF, blank tail,
                                  spaces; and refused ones: ragged, NaN, negative/fractional
                                  label, blank line inside the data
"""
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IDX = os.path.join(ROOT, "tests", "fuzz", "corpus_idx")
CSV = os.path.join(ROOT, "tests", "fuzz", "corpus_csv")


def images(n, rows, cols, magic=0x803, data=None):
    if data is None:
        data = bytes((i * 37 + 5) & 0xFF for i in range(n * rows * cols))
    return struct.pack(">IIII", magic, n, rows, cols) + data


def labels(n, values=None, magic=0x801):
    if values is None:
        values = [i % 10 for i in range(n)]
    return struct.pack(">II", magic, n) + bytes(values)


def pair(img, lab):
    return struct.pack("<H", len(img)) + img + lab


IDX_SEEDS = {
    "valid_2x2x3.bin": pair(images(2, 2, 3), labels(2, [3, 7])),
    "valid_1x1x1.bin": pair(images(1, 1, 1), labels(1, [10])),
    "valid_4x3x2.bin": pair(images(4, 3, 2), labels(4, [0, 1, 2, 255])),
    "bad_truncated.bin": pair(images(2, 2, 3)[:-1], labels(2)),
    "bad_trailing.bin": pair(images(2, 2, 3) + b"\0", labels(2)),
    "bad_count.bin": pair(images(2, 2, 3), labels(3)),
    "bad_magic.bin": pair(images(2, 2, 3, magic=0x80D), labels(2)),
    "bad_absurd.bin": pair(images(0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, data=b""), labels(2)),
}

CSV_SEEDS = {
    "valid_plain.csv": b"2,0.5,-1,2e-3\n0,1,2,3\n4,-0.25,1e3,0\n",
    "valid_header_crlf.csv": b"label,a,b\r\n1,0.5,2\r\n0,3,4\r\n",
    "valid_blank_tail.csv": b"1, 2 ,\t3\n0,4,5\n\n  \n",
    "valid_no_newline.csv": b"7,1e-30,-3.5",
    "bad_ragged.csv": b"1,2,3\n0,1\n",
    "bad_nan.csv": b"1,2\n0,nan\n",
    "bad_label.csv": b"1,2\n-1,3\n1.5,4\n",
    "bad_blank_inside.csv": b"1,2\n\n3,4\n",
}


def main():
    for directory, seeds in ((IDX, IDX_SEEDS), (CSV, CSV_SEEDS)):
        os.makedirs(directory, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
