#!/bin/sh
# CLI tests of `bnkit train`: a run on a generated CSV (outputs, --json keys, --metrics lines),
# error exits (2 usage, 1 runtime, 3 divergence) with one-line messages, and a short real-data
# smoke test on Fashion-MNIST (skipped, exit 77, when the data set is not installed).
# Usage: test_cli_train.sh BNKIT [smoke]
set -u
BNKIT=$1
MODE=${2:-cli}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect_exit CODE NEEDLE ARGS...: exit status CODE, and exactly one stderr line containing NEEDLE
expect_exit() {
    want=$1
    needle=$2
    shift 2
    "$BNKIT" train "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "bnkit train $*: exit $got, want $want; stderr: $(cat "$dir/err")"
    [ "$(wc -l <"$dir/err")" -eq 1 ] || fail "bnkit train $*: want one stderr line, got: $(cat "$dir/err")"
    grep -q "^bnkit: train: .*$needle" "$dir/err" || fail "bnkit train $*: stderr lacks '$needle': $(cat "$dir/err")"
}

if [ "$MODE" = smoke ]; then
    [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || exit 77
    # The document's model, 1 epoch on 5000 images: a floor well below what it reaches
    # (~0.80 measured) but far above chance (0.10), so a broken trainer fails.
    "$BNKIT" train --train-size 5000 --val-size 1000 --epochs 1 --print-every 0 --json \
        >"$dir/out" 2>"$dir/err" || fail "smoke run failed: $(cat "$dir/err")"
    acc=$(sed -n 's/.*"test_accuracy": \([0-9.]*\).*/\1/p' "$dir/out")
    [ -n "$acc" ] || fail "no test_accuracy in $(cat "$dir/out")"
    awk -v a="$acc" 'BEGIN { exit !(a >= 0.70) }' || fail "test accuracy $acc below the 0.70 floor"
    echo "smoke: test accuracy $acc after 1 epoch on 5000 images"
    exit 0
fi

# Two separable classes: label = (a + b > 0).
awk 'BEGIN { srand(1); print "label,a,b";
             for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/train.csv"
awk 'BEGIN { srand(2); for (i = 0; i < 100; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                                   printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/test.csv"
common="--data csv:$dir/train.csv --test-data csv:$dir/test.csv --model dense:16,relu,bn,dense:2 --batch 20 --val-size 60 --lr 0.01"

"$BNKIT" train $common --epochs 6 --print-every 0 --json --metrics "$dir/m.jsonl" --bn-momentum 0.9 \
    >"$dir/out" 2>"$dir/err" || fail "training run failed: $(cat "$dir/err")"
for key in test_accuracy val_accuracy train_loss epochs samples_per_sec seconds; do
    grep -q "\"$key\": " "$dir/out" || fail "--json output lacks $key: $(cat "$dir/out")"
done
[ "$(wc -l <"$dir/out")" -eq 1 ] || fail "--json: stdout must hold only the summary: $(cat "$dir/out")"
grep -q '"epochs": 6' "$dir/out" || fail "expected 6 epochs: $(cat "$dir/out")"
acc=$(sed -n 's/.*"test_accuracy": \([0-9.]*\).*/\1/p' "$dir/out")
awk -v a="$acc" 'BEGIN { exit !(a >= 0.9) }' || fail "separable data: test accuracy $acc < 0.9"
[ "$(wc -l <"$dir/m.jsonl")" -eq 6 ] || fail "--metrics: want 6 lines"
grep -q '"grad_norm": {"0.dense.weight"' "$dir/m.jsonl" || fail "--metrics lacks grad norms"
# Epochs shorter than the 10-step sampling interval (4 steps here) still get gradient norms.
"$BNKIT" train $common --batch 60 --epochs 3 --print-every 0 --metrics "$dir/short.jsonl" \
    >/dev/null 2>"$dir/short.err" || fail "short-epoch run failed: $(cat "$dir/short.err")"
[ "$(grep -c '"grad_norm": {"0.dense.weight": [0-9]' "$dir/short.jsonl")" -eq 3 ] ||
    fail "every epoch needs gradient norms: $(cat "$dir/short.jsonl")"
grep -q '"bn": {"2.bn": {"mean_abs_running_mean"' "$dir/m.jsonl" || fail "--metrics lacks BN summary"
grep -q "epoch 6: train loss" "$dir/err" || fail "progress lines go to stderr with --json"

# Same seed, same result (single thread: GEMM reduction order depends on the thread count).
"$BNKIT" train $common --epochs 2 --print-every 0 --json --threads 1 --seed 5 >"$dir/a" 2>/dev/null
"$BNKIT" train $common --epochs 2 --print-every 0 --json --threads 1 --seed 5 >"$dir/b" 2>/dev/null
sed 's/"samples_per_sec.*//' "$dir/a" >"$dir/a2"
sed 's/"samples_per_sec.*//' "$dir/b" >"$dir/b2"
cmp -s "$dir/a2" "$dir/b2" || fail "same seed gave different results: $(cat "$dir/a") vs $(cat "$dir/b")"

# Usage errors (2), runtime failures (1), divergence (3).
expect_exit 2 "layer 2 'softmax'" $common --model dense:8,softmax,dense:2
expect_exit 2 "epochs must be >= 1" $common --epochs 0
expect_exit 2 "unknown option --no-such-flag" $common --no-such-flag
expect_exit 2 "eps must be finite and > 0" $common --bn-eps 0
expect_exit 2 "momentum must be in" $common --bn-momentum=-0.5
expect_exit 2 "--optimizer: unknown value 'rmsprop'" $common --optimizer rmsprop
expect_exit 2 "outputs 1 scores\|must output a vector" $common --model dense:8,relu,dense:1
expect_exit 1 "" --data "csv:$dir/missing.csv" --model dense:4,dense:2
printf 'label,a\n0,1\n1,x\n' >"$dir/bad.csv"
expect_exit 1 "bad.csv:3" --data "csv:$dir/bad.csv" --model dense:4,dense:2
expect_exit 3 "diverged" $common --optimizer sgd --lr 1e30 --epochs 2
echo "bnkit train CLI: all checks passed"
