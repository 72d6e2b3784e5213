#!/bin/sh
# CLI tests of the tuner: `bnkit tune` on a small generated CSV problem (budget, resume, workers,
# a killed worker), `bnkit trials/best --json`, `bnkit ask/tell`, and refusal of foreign files.
# Usage: test_cli_tune.sh BNKIT
set -u
BNKIT=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
count() { # count STATE FILE: trials in that state in a `trials --json` dump
    grep -o "\"state\":\"$1\"" "$2" | wc -l
}

awk 'BEGIN { srand(1); print "label,a,b";
             for (i = 0; i < 400; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/train.csv"
train="--data=csv:$dir/train.csv --model=dense:8,relu,bn,dense:2 --batch=20 --val-size=100 --epochs=3 --print-every=0 --threads=1"
space="--param bn.momentum=log:0.5:0.99 --param lr=log:1e-3:3e-2 --param bn.normalize_with=cat:batch,renorm --param bn.rmax=float:1:3@bn.normalize_with=renorm"

# A budget of 6 with the random sampler, then resume to 9: exactly 9 trials, numbers unique.
"$BNKIT" tune --study "$dir/s.db" --trials 6 --sampler random --seed 3 $space -- $train \
    >"$dir/out" 2>"$dir/err" || fail "tune failed: $(cat "$dir/err")"
grep -q "best configuration" "$dir/out" || fail "no best configuration: $(cat "$dir/out")"
grep -q "pt " "$dir/out" || fail "momentum not shown in PyTorch's convention"
"$BNKIT" trials --study "$dir/s.db" --json >"$dir/t.json" || fail "trials --json failed"
[ $(($(count complete "$dir/t.json") + $(count pruned "$dir/t.json") + $(count failed "$dir/t.json"))) -eq 6 ] ||
    fail "want 6 finished trials: $(cat "$dir/t.json")"
for key in '"id":' '"state":' '"params":' '"value":' '"bn.momentum_pytorch":' '"epochs":[{"step":1,' \
    '"min_grad_norm":'; do
    grep -qF "$key" "$dir/t.json" || fail "trials --json lacks $key"
done
"$BNKIT" tune --study "$dir/s.db" --trials 9 --sampler random --seed 3 $space -- $train \
    >"$dir/out" 2>"$dir/err" || fail "resume failed: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/s.db" --json >"$dir/t.json"
n=$(grep -o '"number":[0-9]*' "$dir/t.json" | sort -u | wc -l)
[ "$n" -eq 9 ] || fail "after resuming to 9: $n distinct trials"
"$BNKIT" best --study "$dir/s.db" --json | grep -q '"state":"complete"' || fail "best --json"

# Every trial stored the trainer's per-epoch diagnostics; the report and its exports show them.
"$BNKIT" report --study "$dir/s.db" --out "$dir/r.html" --json "$dir/r.json" --csv "$dir/r.csv" \
    2>"$dir/err" || fail "report failed: $(cat "$dir/err")"
for key in '"epochs": \[' '"train_loss": [0-9]' '"val_loss": [0-9]' '"train_accuracy": [0-9]' \
    '"vanishing_gradients": \(true\|false\)' '"overfitting": \(true\|false\)' \
    '"min_grad_tensor": "[0-9]*\.[a-z]*\.[a-z_]*"' '"bn_min_running_var": [0-9]'; do
    grep -q "$key" "$dir/r.json" || fail "report --json lacks $key"
done
# the 9 trials ran 3 epochs (pruned ones fewer): one diagnostics record per reported epoch
[ "$(grep -c '"step":' "$dir/r.json")" -ge 9 ] || fail "too few epochs of diagnostics"
head -1 "$dir/r.csv" | grep -q ',train_loss,train_accuracy,val_loss,val_accuracy,' ||
    fail "report --csv lacks the diagnostics columns"
grep -q "the trainer.s flags, stored for 9 of 9 trials" "$dir/r.html" ||
    fail "the report's summary does not use the stored diagnostics"

# The same study with another space is refused (usage error), the file untouched.
cp "$dir/s.db" "$dir/copy.db"
"$BNKIT" tune --study "$dir/s.db" --trials 9 --sampler random --param lr=log:1e-4:1e-1 -- $train \
    >/dev/null 2>"$dir/err"
[ $? -eq 2 ] || fail "a changed search space must be a usage error: $(cat "$dir/err")"

# --prune-percentile: 50 is the median the study was made with; another value is a changed
# pruner (refused); values outside (0, 100] are usage errors with a one-line message.
"$BNKIT" tune --study "$dir/s.db" --trials 9 --sampler random --seed 3 --prune-percentile 50 $space \
    -- $train >/dev/null 2>"$dir/err" || fail "--prune-percentile 50 must match the median study: $(cat "$dir/err")"
"$BNKIT" tune --study "$dir/s.db" --trials 9 --sampler random --seed 3 --prune-percentile 75 $space \
    -- $train >/dev/null 2>"$dir/err"
[ $? -eq 2 ] && grep -q "pruner.percentile is 50 in the file, 75 here" "$dir/err" ||
    fail "a changed percentile must be refused: $(cat "$dir/err")"
for p in 0 -5 100.5 abc; do
    "$BNKIT" tune --study "$dir/p.db" --prune-percentile "$p" -- $train >/dev/null 2>"$dir/err"
    [ $? -eq 2 ] && [ "$(wc -l <"$dir/err")" -eq 1 ] && grep -q -- "--prune-percentile" "$dir/err" ||
        fail "--prune-percentile $p must be a one-line usage error: $(cat "$dir/err")"
done
[ ! -e "$dir/p.db" ] || fail "a bad --prune-percentile must not create the study file"

# Foreign files are refused and never modified.
printf 'not a database\n' >"$dir/foreign.db"
cp "$dir/foreign.db" "$dir/foreign.orig"
"$BNKIT" tune --study "$dir/foreign.db" --trials 2 -- $train >/dev/null 2>"$dir/err"
[ $? -eq 1 ] || fail "a foreign file must be refused (exit 1): $(cat "$dir/err")"
[ "$(wc -l <"$dir/err")" -eq 1 ] || fail "one error line: $(cat "$dir/err")"
cmp -s "$dir/foreign.db" "$dir/foreign.orig" || fail "the foreign file was modified"

# Two workers on a grid: every grid point exactly once.
"$BNKIT" tune --study "$dir/g.db" --trials 100 --sampler grid --grid-points 3 --workers 2 \
    --param bn.momentum=float:0.5:0.9 --param lr=log:1e-3:1e-2 -- $train >/dev/null 2>"$dir/err" ||
    fail "grid with 2 workers failed: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/g.db" --json >"$dir/t.json"
n=$(grep -o '"number":[0-9]*' "$dir/t.json" | wc -l)
[ "$n" -eq 9 ] || fail "a 3x3 grid must give 9 trials, got $n"
pts=$(grep -o '"params":{[^}]*}' "$dir/t.json" | sort -u | wc -l)
[ "$pts" -eq 9 ] || fail "grid points repeated: $pts distinct of 9"

# A worker killed mid-study: the re-run reaps its trial and completes the budget.
"$BNKIT" tune --study "$dir/k.db" --trials 6 --sampler random --workers 2 --stale-seconds 1 \
    $space -- $train --epochs=20 >/dev/null 2>&1 &
tpid=$!
sleep 2
pkill -9 -P "$tpid" 2>/dev/null
kill -9 "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
sleep 1
"$BNKIT" tune --study "$dir/k.db" --trials 6 --sampler random --stale-seconds 1 $space \
    -- $train --epochs=20 >/dev/null 2>"$dir/err" || fail "resume after kill: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/k.db" --json >"$dir/t.json"
[ "$(count running "$dir/t.json")" -eq 0 ] || fail "running trials left after resume"
done_n=$(($(count complete "$dir/t.json") + $(count pruned "$dir/t.json")))
died=$(grep -o '"reason":"worker died"' "$dir/t.json" | wc -l)
other_failed=$(($(count failed "$dir/t.json") - died))
[ $((done_n + other_failed)) -eq 6 ] || fail "budget not completed after a kill: $(cat "$dir/t.json")"

# ask / tell from an outside loop.
"$BNKIT" ask --study "$dir/a.db" --trials 2 --sampler tpe --param x=float:0:1 >"$dir/q.json" ||
    fail "ask failed"
id=$(sed -n 's/.*"id":\([0-9]*\).*/\1/p' "$dir/q.json")
[ -n "$id" ] || fail "ask printed no id: $(cat "$dir/q.json")"
"$BNKIT" tell --study "$dir/a.db" --trial "$id" --step 1 --value 0.5 | grep -q '"prune"' ||
    fail "tell --step must print the pruning decision"
"$BNKIT" tell --study "$dir/a.db" --trial "$id" --step 2 --value 0.6 --train-loss 0.25 \
    --val-accuracy 0.6 --overfitting >/dev/null || fail "tell --step with diagnostics failed"
"$BNKIT" tell --study "$dir/a.db" --trial "$id" --value 0.7 --train-loss 0.25 2>/dev/null
[ $? -eq 2 ] || fail "--train-loss without --step must be a usage error"
"$BNKIT" tell --study "$dir/a.db" --trial "$id" --value 0.75 || fail "tell failed"
"$BNKIT" tell --study "$dir/a.db" --trial "$id" --value 0.75 2>/dev/null &&
    fail "telling a finished trial twice must fail"
"$BNKIT" report --study "$dir/a.db" --out "$dir/a.html" --json "$dir/a.json" 2>"$dir/err" ||
    fail "report of the ask/tell study failed: $(cat "$dir/err")"
tr -d ' \n' <"$dir/a.json" | grep -q '"step":2,"train_loss":0.25,"train_accuracy":null,"val_loss":null,"val_accuracy":0.59999999999999998,"vanishing_gradients":false,"overfitting":true' ||
    fail "tell's diagnostics not in the report: $(cat "$dir/a.json")"
"$BNKIT" ask --study "$dir/a.db" --trials 2 >/dev/null || fail "second ask (stored config)"
"$BNKIT" ask --study "$dir/a.db" --trials 2 | grep -q '"id": null' || fail "budget of 2 not enforced"
# The document's relative clip is searchable (R and D as separate options), and the best
# configuration says that PyTorch and Keras have no equivalent instead of printing a wrong one.
"$BNKIT" tune --study "$dir/c.db" --trials 2 --sampler random --pruner none \
    --param bn.rel_clip_r=log:1.5:3 --param bn.rel_clip_d=log:0.5:2 -- $train >"$dir/out" \
    2>"$dir/err" || fail "tune over the relative clip failed: $(cat "$dir/err")"
grep -q -- "--bn-rel-clip-r" "$dir/out" || fail "best command lacks --bn-rel-clip-r: $(cat "$dir/out")"
grep -q "no built-in equivalent (clipped statistics)" "$dir/out" ||
    fail "PyTorch line must say clipping has no equivalent: $(cat "$dir/out")"
echo "bnkit tune CLI: all checks passed"
