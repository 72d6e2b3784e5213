#!/bin/sh
# Runs examples/pytorch_ask_tell.py (a PyTorch loop driven by `bnkit ask`/`tell`) when Debian's
# python3-torch is installed; skipped (exit 77) otherwise.
BNKIT=$1
EXAMPLE=$2
/usr/bin/python3 -c 'import torch' 2>/dev/null || exit 77
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
/usr/bin/python3 "$EXAMPLE" --bnkit "$BNKIT" --study "$dir/torch.db" --trials 6 --epochs 3 >"$dir/out" 2>&1 ||
    { cat "$dir/out"; exit 1; }
grep -q '^best:' "$dir/out" || { cat "$dir/out"; exit 1; }
[ "$(grep -c '^trial ' "$dir/out")" -eq 6 ] || { cat "$dir/out"; exit 1; }
cat "$dir/out"
