#!/bin/sh
# CLI tests of checkpoints: `bnkit train --save`, `bnkit eval` (reproduces train's test loss
# and accuracy exactly), `bnkit export --fold-bn` (same accuracy, loss within 1e-5), and the
# error exits (2 usage, 1 runtime) with one-line messages for missing, corrupt and truncated
# files.
# Usage: test_cli_checkpoint.sh BNKIT
set -u
BNKIT=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

# expect_exit CODE NEEDLE CMD ARGS...: exit status CODE, one stderr line containing NEEDLE,
# nothing on stdout
expect_exit() {
    want=$1
    needle=$2
    cmd=$3
    shift 3
    "$BNKIT" "$cmd" "$@" >"$dir/out" 2>"$dir/err"
    got=$?
    [ "$got" -eq "$want" ] || fail "bnkit $cmd $*: exit $got, want $want; stderr: $(cat "$dir/err")"
    [ "$(wc -l <"$dir/err")" -eq 1 ] || fail "bnkit $cmd $*: want one stderr line, got: $(cat "$dir/err")"
    grep -q "^bnkit: $cmd: .*$needle" "$dir/err" || fail "bnkit $cmd $*: stderr lacks '$needle': $(cat "$dir/err")"
    [ ! -s "$dir/out" ] || fail "bnkit $cmd $*: stdout not empty: $(cat "$dir/out")"
}

# json_field FILE KEY: the number after "KEY": in a one-line JSON object
json_field() {
    sed -n "s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$1"
}

awk 'BEGIN { srand(1); print "label,a,b";
             for (i = 0; i < 300; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/train.csv"
awk 'BEGIN { srand(2); for (i = 0; i < 100; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                                   printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/test.csv"
common="--data csv:$dir/train.csv --test-data csv:$dir/test.csv --batch 20 --val-size 60 --lr 0.01 --epochs 3 --print-every 0"

# The document's model shape (BN after the ReLU: folded forward) and BN before the ReLU
# (folded backward), with standardised inputs (the statistics travel in the checkpoint).
for model in dense:16,relu,bn,dense:2 dense:16,bn,relu,dense:2; do
    for scaling in unit standardize; do
        ck="$dir/m.safetensors"
        "$BNKIT" train $common --model $model --scaling $scaling --json --save "$ck" \
            >"$dir/train.json" 2>"$dir/err" || fail "train --save ($model, $scaling): $(cat "$dir/err")"
        [ -s "$ck" ] || fail "train --save wrote nothing"
        ls "$dir" | grep -q '\.tmp' && fail "train --save left a temporary file"
        # eval with the recorded test set and the training batch size: the numbers train printed
        "$BNKIT" eval --checkpoint "$ck" --batch 20 --json >"$dir/eval.json" 2>"$dir/err" ||
            fail "eval ($model, $scaling): $(cat "$dir/err")"
        for key in loss accuracy samples data split checkpoint; do
            grep -q "\"$key\": " "$dir/eval.json" || fail "eval --json lacks $key: $(cat "$dir/eval.json")"
        done
        [ "$(json_field "$dir/eval.json" accuracy)" = "$(json_field "$dir/train.json" test_accuracy)" ] ||
            fail "eval accuracy $(cat "$dir/eval.json") != train's $(cat "$dir/train.json")"
        [ "$(json_field "$dir/eval.json" loss)" = "$(json_field "$dir/train.json" test_loss)" ] ||
            fail "eval loss $(cat "$dir/eval.json") != train's $(cat "$dir/train.json")"
        grep -q '"samples": 100' "$dir/eval.json" || fail "eval: want 100 samples: $(cat "$dir/eval.json")"
        # export --fold-bn: no bn left, same accuracy, loss within 1e-5 relative
        "$BNKIT" export --checkpoint "$ck" --out "$dir/f.safetensors" --fold-bn >"$dir/out" 2>"$dir/err" ||
            fail "export ($model): $(cat "$dir/err")"
        grep -q "^spec: dense:16,relu,dense:2$" "$dir/out" || fail "export spec: $(cat "$dir/out")"
        grep -q "^folded: 2.bn -> 3.dense (forward)$\|^folded: 1.bn -> 0.dense (backward)$" "$dir/out" ||
            fail "export summary: $(cat "$dir/out")"
        "$BNKIT" eval --checkpoint "$dir/f.safetensors" --batch 20 --json >"$dir/feval.json" 2>"$dir/err" ||
            fail "eval of the folded model: $(cat "$dir/err")"
        [ "$(json_field "$dir/feval.json" accuracy)" = "$(json_field "$dir/eval.json" accuracy)" ] ||
            fail "folded accuracy $(cat "$dir/feval.json") != $(cat "$dir/eval.json")"
        awk -v a="$(json_field "$dir/feval.json" loss)" -v b="$(json_field "$dir/eval.json" loss)" \
            'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }' ||
            fail "folded loss $(cat "$dir/feval.json") vs $(cat "$dir/eval.json")"
    done
done

# the human-readable line, another data set and split handling
"$BNKIT" eval --checkpoint "$dir/m.safetensors" --data "csv:$dir/train.csv" >"$dir/out" 2>"$dir/err" ||
    fail "eval --data: $(cat "$dir/err")"
grep -q "^loss [0-9.]* accuracy [0-9.]* on 300 samples (csv:$dir/train.csv)$" "$dir/out" ||
    fail "eval line: $(cat "$dir/out")"

# errors: usage (2)
expect_exit 2 "--checkpoint FILE is required" eval
expect_exit 2 "--batch must be in" eval --checkpoint "$dir/m.safetensors" --batch 0
expect_exit 2 "--split: unknown value 'val'" eval --checkpoint "$dir/m.safetensors" --split val
expect_exit 2 "unknown option --bogus" eval --bogus
expect_exit 2 "--checkpoint IN and --out OUT are required" export --checkpoint "$dir/m.safetensors"
expect_exit 2 "nothing to do: --fold-bn" export --checkpoint "$dir/m.safetensors" --out "$dir/x"
printf 'label,a,b,c\n0,1,2,3\n1,3,2,1\n' >"$dir/three.csv"
expect_exit 2 "samples of shape 3x1x1 but the model expects 2x1x1" eval --checkpoint "$dir/m.safetensors" \
    --data "csv:$dir/three.csv"
printf 'label,a,b\n0,1,2\n5,3,2\n' >"$dir/six.csv"
expect_exit 2 "has 6 classes but the model outputs 2 scores" eval --checkpoint "$dir/m.safetensors" \
    --data "csv:$dir/six.csv"
expect_exit 2 "--save is not a training option here" tune --study "$dir/s.db" --trials 1 -- --save "$dir/x"
"$BNKIT" train $common --model dense:16,relu,bn,relu,dense:2 --save "$dir/u.safetensors" >/dev/null 2>&1 ||
    fail "train of an unfoldable model failed"
expect_exit 2 "layer 3 'bn' (tensors 2.bn.\*) cannot be folded" export --checkpoint "$dir/u.safetensors" \
    --out "$dir/uf.safetensors" --fold-bn
[ ! -e "$dir/uf.safetensors" ] || fail "a failed export left its output"

# errors: runtime (1): missing, corrupt, truncated checkpoints; unwritable outputs
expect_exit 1 "cannot open '$dir/none.safetensors'" eval --checkpoint "$dir/none.safetensors"
printf 'not a checkpoint at all' >"$dir/junk.safetensors"
expect_exit 1 "junk.safetensors: header length .* exceeds the limit" eval --checkpoint "$dir/junk.safetensors"
head -c 100 "$dir/m.safetensors" >"$dir/short.safetensors"
expect_exit 1 "short.safetensors: truncated: header length" eval --checkpoint "$dir/short.safetensors"
size=$(wc -c <"$dir/m.safetensors")
head -c $((size - 3)) "$dir/m.safetensors" >"$dir/cut.safetensors"
expect_exit 1 "cut.safetensors: tensor .* (truncated file?)" eval --checkpoint "$dir/cut.safetensors"
expect_exit 1 "cut.safetensors: tensor" export --checkpoint "$dir/cut.safetensors" --out "$dir/o" --fold-bn
expect_exit 1 "--out $dir/no/such/o: cannot write in directory" export --checkpoint "$dir/m.safetensors" \
    --out "$dir/no/such/o" --fold-bn
expect_exit 1 "--save $dir/no/such/m: cannot write in directory" train $common --model dense:4,dense:2 \
    --save "$dir/no/such/m"

# a diverged run saves nothing
expect_exit 3 "diverged" train $common --model dense:4,relu,bn,dense:2 --optimizer sgd --lr 1e30 \
    --save "$dir/div.safetensors"
[ ! -e "$dir/div.safetensors" ] || fail "a diverged run wrote a checkpoint"

echo "checkpoint CLI: ok"
