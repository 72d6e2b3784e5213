#!/bin/sh
# `mpirun -np 2 bnkit train`: only rank 0 prints and writes. --json gives exactly one JSON
# object on stdout, --metrics one line per epoch, the log names the BN mode once, --save writes
# a checkpoint that `bnkit eval` reads; --bn-sync off says ghost BN; a bad --bn-sync value is a
# usage error.
# Usage: test_train_mpi_cli.sh MPIEXEC BNKIT
set -u
MPIEXEC=$1
BNKIT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# Two separable classes: label = (a + b > 0).
awk 'BEGIN { srand(1); print "label,a,b";
             for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/train.csv"
common="--data csv:$dir/train.csv --model dense:16,relu,bn,dense:2 --batch 20 --val-size 60 --lr 0.01 --threads 1"

"$MPIEXEC" -np 2 --oversubscribe "$BNKIT" train $common --epochs 2 --json --metrics "$dir/m.jsonl" \
    --save "$dir/model.safetensors" >"$dir/out" 2>"$dir/err" || fail "mpirun train failed: $(cat "$dir/err")"
[ "$(wc -l <"$dir/out")" -eq 1 ] || fail "--json: want one line on stdout, got: $(cat "$dir/out")"
[ "$(grep -c '^{.*}$' "$dir/out")" -eq 1 ] || fail "--json: not one JSON object: $(cat "$dir/out")"
grep -q '"epochs": 2' "$dir/out" || fail "--json: want 2 epochs: $(cat "$dir/out")"
[ "$(wc -l <"$dir/m.jsonl")" -eq 2 ] || fail "--metrics: want 2 lines (rank 0 only), got $(wc -l <"$dir/m.jsonl")"
[ "$(grep -c 'synchronised BN' "$dir/err")" -eq 1 ] || fail "log: want one 'synchronised BN' line: $(cat "$dir/err")"
[ "$(grep -c '^epoch 2:' "$dir/err")" -eq 1 ] || fail "log: want one 'epoch 2:' line: $(cat "$dir/err")"
"$BNKIT" eval --checkpoint "$dir/model.safetensors" --data "csv:$dir/train.csv" >"$dir/eval" 2>&1 ||
    fail "bnkit eval of the checkpoint failed: $(cat "$dir/eval")"

"$MPIEXEC" -np 2 --oversubscribe "$BNKIT" train $common --epochs 1 --bn-sync off --json \
    >"$dir/out" 2>"$dir/err" || fail "mpirun train --bn-sync off failed: $(cat "$dir/err")"
[ "$(wc -l <"$dir/out")" -eq 1 ] || fail "--bn-sync off --json: want one line: $(cat "$dir/out")"
[ "$(grep -c 'ghost BN' "$dir/err")" -eq 1 ] || fail "log: want one 'ghost BN' line: $(cat "$dir/err")"

"$MPIEXEC" -np 2 --oversubscribe "$BNKIT" train $common --epochs 1 --bn-sync maybe \
    >"$dir/out" 2>"$dir/err" && fail "--bn-sync maybe: want a failure"
grep -q "bnkit: train: --bn-sync: unknown value 'maybe'" "$dir/err" || fail "--bn-sync maybe: $(cat "$dir/err")"
echo "ok"
