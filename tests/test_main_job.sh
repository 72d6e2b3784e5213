#!/bin/sh
# The main job (`make run` = scripts/main-job.sh) on a tiny budget: it writes the report and
# prints the best configuration; re-running it resumes the study instead of starting over, and
# a larger budget continues it.
# Skipped (exit 77) when Debian's dataset-fashion-mnist is not installed.
# Usage: test_main_job.sh MAIN_JOB_SH BNKIT
set -u
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || exit 77
JOB=$1
BNKIT=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
quick="--train-size 1000 --val-size 500 --epochs 1 --threads 1 --print-every 0"
count() { "$BNKIT" trials --study "$dir/run/study.db" --json | grep -o '"number":' | wc -l; }

sh "$JOB" "$BNKIT" "$dir/run" 3 $quick >"$dir/out1" 2>"$dir/err1" || fail "first run: $(cat "$dir/err1")"
grep -q "best configuration" "$dir/out1" || fail "no best configuration: $(cat "$dir/out1")"
grep -q "report: $dir/run/report.html" "$dir/out1" || fail "report path not printed"
[ -s "$dir/run/report.html" ] || fail "no report written"
[ "$(count)" -eq 3 ] || fail "want 3 trials after the first run, got $(count)"

sh "$JOB" "$BNKIT" "$dir/run" 3 $quick >"$dir/out2" 2>"$dir/err2" || fail "second run: $(cat "$dir/err2")"
[ "$(count)" -eq 3 ] || fail "re-running must resume, not add trials: $(count) trials"
grep -q "best configuration" "$dir/out2" || fail "the resumed run prints no best configuration"

sh "$JOB" "$BNKIT" "$dir/run" 4 $quick >"$dir/out3" 2>"$dir/err3" || fail "third run: $(cat "$dir/err3")"
[ "$(count)" -eq 4 ] || fail "a budget of 4 must add one trial: $(count) trials"
echo "main job: all checks passed"
