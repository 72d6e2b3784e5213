#!/bin/sh
# Training throughput, bnkit vs PyTorch 1.13 in the same run, interleaved: the document's model
# (dense:128,relu,bn,dense:10) and the CNN, Adam 1e-3, batch 100, BN momentum 0.9 (PyTorch 0.1),
# eps 1e-3, on Fashion-MNIST; 1 and 2 threads. Prints a markdown table of training samples/s
# and the ratio bnkit / PyTorch, plus the peak memory of bnkit's MLP run.
# Usage: bench/train/run.sh BNKIT [EPOCHS_MLP] [EPOCHS_CNN]   (EPOCHS_CNN 0 skips the CNN)
set -eu
BNKIT=$1
EM=${2:-2}
EC=${3:-1}
here=$(dirname "$0")
cnn="conv:32:3,bn,relu,maxpool:2,conv:64:3,bn,relu,maxpool:2,flatten,dense:128,bn,relu,dense:10"
field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p"; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| model | threads | bnkit samples/s | PyTorch samples/s | bnkit / PyTorch |"
echo "|---|---|---|---|---|"
for m in mlp cnn; do
    [ $m = cnn ] && [ "$EC" -eq 0 ] && continue
    for t in 1 2; do
        if [ $m = mlp ]; then spec="dense:128,relu,bn,dense:10"; e=$EM; else spec=$cnn; e=$EC; fi
        b=$("$BNKIT" train --model "$spec" --epochs "$e" --threads "$t" --val-size 0 --print-every 0 \
            --bn-momentum 0.9 --bn-eps 1e-3 --json 2>/dev/null | field samples_per_sec)
        p=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t /usr/bin/python3 "$here/torch_train.py" --model $m --epochs "$e" \
            --threads "$t" | field samples_per_sec)
        r=$(awk -v b="$b" -v p="$p" 'BEGIN { printf "%.2f", b / p }')
        printf '| %s | %s | %.0f | %.0f | %s |\n' "$m" "$t" "$b" "$p" "$r"
    done
done
rss=$( { /usr/bin/time -v "$BNKIT" train --epochs 1 --threads 1 --print-every 0 >/dev/null; } 2>&1 |
    sed -n 's/.*Maximum resident set size (kbytes): //p')
echo "peak memory of the MLP run: $((rss / 1024)) MB"
