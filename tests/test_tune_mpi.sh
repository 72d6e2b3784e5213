#!/bin/sh
# Distributed tuning: `mpirun -np 3 bnkit tune` on a small generated CSV problem. Rank 0 owns the
# study; checks the budget, unique points, a trial child killed with SIGKILL (failed "worker
# died", re-issued, budget met), resuming, a whole rank killed (the job aborts, the re-run
# resumes), the refusals (--workers under mpirun, a study with other settings), and the
# trainer's per-epoch diagnostics stored for the trials of every rank.
# Usage: test_tune_mpi.sh MPIEXEC BNKIT   (as root: OMPI_ALLOW_RUN_AS_ROOT=1 and _CONFIRM=1)
set -u
MPIEXEC=$1
BNKIT=$2
dir=$(mktemp -d)
mpid=
cleanup() {
    [ -n "$mpid" ] && kill -9 "$mpid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
count() { # count STATE FILE: trials in that state in a `trials --json` dump
    grep -o "\"state\":\"$1\"" "$2" | wc -l
}
ntrials() { grep -o '"number":[0-9]*' "$1" | wc -l; }
mpi() { # mpi NP ARGS...: bnkit on NP ranks of this machine
    np=$1
    shift
    "$MPIEXEC" -np "$np" --oversubscribe "$BNKIT" "$@"
}
# rank_pid R: the process of MPI rank R started by mpirun $mpid (its children share its env)
rank_pid() {
    for p in $(pgrep -P "$mpid"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
            echo "$p" && return 0
    done
    return 1
}
# wait_child R: waits (up to 30 s) until rank R runs a trial child; prints its pid
wait_child() {
    i=0
    while [ $i -lt 600 ]; do
        r=$(rank_pid "$1") && c=$(pgrep -P "$r" | head -n 1) && [ -n "$c" ] && echo "$c" && return 0
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

awk 'BEGIN { srand(1); print "label,a,b";
             for (i = 0; i < 400; i++) { a = rand() * 2 - 1; b = rand() * 2 - 1;
                                         printf "%d,%.4f,%.4f\n", (a + b > 0), a, b } }' >"$dir/train.csv"
train="--data=csv:$dir/train.csv --model=dense:8,relu,bn,dense:2 --batch=20 --val-size=100 --epochs=2 --print-every=0 --threads=1"
space="--param bn.momentum=log:0.5:0.99 --param lr=log:1e-3:3e-2 --param bn.normalize_with=cat:batch,renorm --param bn.rmax=float:1:3@bn.normalize_with=renorm"

# 3 ranks, a budget of 8: exactly 8 finished trials, distinct points, every rank ran trials,
# and only rank 0 printed (one summary).
mpi 3 tune --study "$dir/s.db" --trials 8 --sampler random --seed 3 $space -- $train \
    >"$dir/out" 2>"$dir/err" || fail "mpirun tune failed: $(cat "$dir/err")"
grep -q "3 MPI ranks" "$dir/out" || fail "no MPI header: $(cat "$dir/out")"
[ "$(grep -c "best configuration" "$dir/out")" -eq 1 ] || fail "want one summary: $(cat "$dir/out")"
[ -s "$dir/err" ] && fail "stderr not empty: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/s.db" --json >"$dir/t.json" || fail "trials --json failed"
[ "$(ntrials "$dir/t.json")" -eq 8 ] || fail "want 8 trials: $(cat "$dir/t.json")"
[ $(($(count complete "$dir/t.json") + $(count pruned "$dir/t.json") + $(count failed "$dir/t.json"))) -eq 8 ] ||
    fail "want 8 finished trials: $(cat "$dir/t.json")"
pts=$(grep -o '"params":{[^}]*}' "$dir/t.json" | sort -u | wc -l)
[ "$pts" -eq 8 ] || fail "points repeated: $pts distinct of 8"
for r in 0 1 2; do
    grep -q "\"worker\":\"rank-$r\"" "$dir/t.json" || fail "rank $r ran no trial: $(cat "$dir/t.json")"
done
# The trainer's diagnostics came through the child's pipe and the REPORT messages: the report
# has them for trials of every rank.
"$BNKIT" report --study "$dir/s.db" --json "$dir/r.json" 2>"$dir/err" || fail "report: $(cat "$dir/err")"
tr -d ' \n' <"$dir/r.json" >"$dir/r1.json"
for r in 0 1 2; do
    grep -q "\"epochs\":\[{\"step\":1,\"train_loss\":[0-9][^]]*\],\"worker\":\"rank-$r\"" "$dir/r1.json" ||
        fail "no diagnostics for the trials of rank $r: $(cat "$dir/r.json")"
done
[ "$("$BNKIT" trials --study "$dir/s.db" | grep -cE '^ +[0-9]+ +(complete|pruned|failed) ')" -eq 8 ] ||
    fail "bnkit trials must list 8 finished trials: $("$BNKIT" trials --study "$dir/s.db")"

# A 3x3 grid on 3 ranks: every grid point exactly once, then DONE for everybody.
mpi 3 tune --study "$dir/g.db" --trials 100 --sampler grid --grid-points 3 \
    --param bn.momentum=float:0.5:0.9 --param lr=log:1e-3:1e-2 -- $train >/dev/null 2>"$dir/err" ||
    fail "grid on 3 ranks failed: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/g.db" --json >"$dir/t.json"
[ "$(ntrials "$dir/t.json")" -eq 9 ] || fail "a 3x3 grid must give 9 trials: $(cat "$dir/t.json")"
pts=$(grep -o '"params":{[^}]*}' "$dir/t.json" | sort -u | wc -l)
[ "$pts" -eq 9 ] || fail "grid points repeated: $pts distinct of 9"

# Rank 1's trial child killed with SIGKILL: that trial is failed "worker died" and re-issued,
# the budget of 6 is met, the job succeeds. Longer trials so that the child is caught alive.
long="$train --epochs=60"
"$MPIEXEC" -np 3 --oversubscribe "$BNKIT" tune --study "$dir/k.db" --trials 6 --sampler random \
    --pruner none $space -- $long >"$dir/out" 2>"$dir/err" &
mpid=$!
child=$(wait_child 1) || fail "rank 1 never started a trial process"
kill -9 "$child"
wait "$mpid" || fail "the job failed after a trial process was killed: $(cat "$dir/err")"
mpid=
grep -q "killed by signal 9" "$dir/out" || fail "rank 0 did not log the killed trial: $(cat "$dir/out")"
"$BNKIT" trials --study "$dir/k.db" --json >"$dir/t.json"
[ "$(count running "$dir/t.json")" -eq 0 ] || fail "running trials left: $(cat "$dir/t.json")"
died=$(grep -o '"worker":"rank-1","reason":"worker died"' "$dir/t.json" | wc -l)
[ "$died" -eq 1 ] || fail "want one trial of rank-1 failed 'worker died': $(cat "$dir/t.json")"
[ "$(count failed "$dir/t.json")" -eq 1 ] || fail "only the killed trial may fail: $(cat "$dir/t.json")"
[ "$(count complete "$dir/t.json")" -eq 6 ] || fail "budget of 6 not met: $(cat "$dir/t.json")"
[ "$(ntrials "$dir/t.json")" -eq 7 ] || fail "want 6 trials + the killed one: $(cat "$dir/t.json")"

# Re-running the same command resumes: nothing left to do at budget 6, two more at budget 8.
mpi 3 tune --study "$dir/k.db" --trials 6 --sampler random --pruner none $space -- $long \
    >"$dir/out" 2>"$dir/err" || fail "resume at the same budget failed: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/k.db" --json >"$dir/t.json"
[ "$(ntrials "$dir/t.json")" -eq 7 ] || fail "resume at the met budget ran trials: $(cat "$dir/t.json")"
mpi 3 tune --study "$dir/k.db" --trials 8 --sampler random --pruner none $space -- $long \
    >"$dir/out" 2>"$dir/err" || fail "resume to 8 failed: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/k.db" --json >"$dir/t.json"
[ "$(ntrials "$dir/t.json")" -eq 9 ] || fail "resume to 8 must add 2 trials: $(cat "$dir/t.json")"
[ "$(count complete "$dir/t.json")" -eq 8 ] || fail "budget of 8 not met: $(cat "$dir/t.json")"

# A whole rank killed: mpirun aborts the job, leaving trials RUNNING in the study; re-running the
# command (with a short --stale-seconds so that they are reaped at once) completes the budget.
"$MPIEXEC" -np 3 --oversubscribe "$BNKIT" tune --study "$dir/r.db" --trials 5 --sampler random \
    --pruner none $space -- $long >"$dir/out" 2>"$dir/err" &
mpid=$!
wait_child 2 >/dev/null || fail "rank 2 never started a trial process"
kill -9 "$(rank_pid 2)"
wait "$mpid" && fail "the job must fail when a rank is killed"
mpid=
"$BNKIT" trials --study "$dir/r.db" --json >"$dir/t.json"
[ "$(count running "$dir/t.json")" -ge 1 ] || fail "no running trial left by the aborted job"
sleep 2
mpi 3 tune --study "$dir/r.db" --trials 5 --sampler random --pruner none --stale-seconds 1 \
    $space -- $long >"$dir/out" 2>"$dir/err" || fail "resume after a killed rank: $(cat "$dir/err")"
"$BNKIT" trials --study "$dir/r.db" --json >"$dir/t.json"
[ "$(count running "$dir/t.json")" -eq 0 ] || fail "running trials left after resume"
[ "$(count complete "$dir/t.json")" -eq 5 ] || fail "budget not met after resume: $(cat "$dir/t.json")"
[ "$(count failed "$dir/t.json")" -eq "$(grep -o '"reason":"worker died"' "$dir/t.json" | wc -l)" ] ||
    fail "only reaped trials may fail: $(cat "$dir/t.json")"

# --workers is refused under mpirun, with one bnkit error line (printed by rank 0 only).
mpi 2 tune --study "$dir/w.db" --trials 2 --workers 2 -- $train >/dev/null 2>"$dir/err"
[ $? -eq 2 ] || fail "--workers under mpirun must be a usage error: $(cat "$dir/err")"
[ "$(grep -c "^bnkit: tune: --workers cannot be combined" "$dir/err")" -eq 1 ] ||
    fail "want one error line about --workers: $(cat "$dir/err")"
[ -e "$dir/w.db" ] && fail "the refused run created the study file"
# A study that rank 0 cannot open as asked (another space) is refused the same way: exit 2.
cp "$dir/s.db" "$dir/copy.db"
mpi 2 tune --study "$dir/s.db" --trials 8 --sampler random --seed 3 --param lr=log:1e-4:1e-1 \
    -- $train >/dev/null 2>"$dir/err"
[ $? -eq 2 ] || fail "a changed search space must be a usage error: $(cat "$dir/err")"
[ "$(grep -c "^bnkit: tune: .*exists with other settings" "$dir/err")" -eq 1 ] ||
    fail "want one error line about the settings: $(cat "$dir/err")"
cmp -s "$dir/s.db" "$dir/copy.db" || fail "the refused run modified the study"
echo "bnkit tune under MPI: all checks passed"
