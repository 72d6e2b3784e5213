#!/bin/sh
# Tuning throughput (trials/hour) of `mpirun -np K bnkit tune` with K = 1, 2, 4 ranks, and of
# `bnkit tune --workers 2` (processes sharing the study file, no MPI) for reference. Trials are
# short on purpose: the document's model (dense:128,relu,bn,dense:10) on Fashion-MNIST, 1 epoch
# on 10000 training samples, one thread per trial, random sampler, no pruning, so the numbers
# measure the tuner's concurrency rather than the sampler. Wall time includes mpirun's start-up
# and the final retraining of the best configuration on rank 0 (both once per run).
# Usage: bench/tune_mpi/run.sh BNKIT [TRIALS] [MPIEXEC]     (TRIALS 40, MPIEXEC mpirun)
# As root, Open MPI needs OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (set here).
set -eu
BNKIT=$1
N=${2:-40}
MPIEXEC=${3:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
train="--model dense:128,relu,bn,dense:10 --epochs 1 --train-size 10000 --threads 1 --print-every 0"
tune="tune --trials $N --sampler random --seed 1 --pruner none"
now() { date +%s.%N; }
row() { # row LABEL SECONDS STUDY
    done_n=$("$BNKIT" trials --study "$3" --json | grep -o '"state":"complete"' | wc -l)
    awk -v l="$1" -v s="$2" -v n="$done_n" 'BEGIN { printf "| %s | %d | %.1f | %.0f |\n", l, n, s, n / s * 3600 }'
}
echo "cores: $(nproc), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "trials: $train"
echo
echo "| run | trials | wall s | trials/hour |"
echo "|---|---|---|---|"
for k in 1 2 4; do
    t0=$(now)
    "$MPIEXEC" -np "$k" --oversubscribe "$BNKIT" $tune --study "$dir/mpi$k.db" -- $train >/dev/null
    t1=$(now)
    row "mpirun -np $k" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$dir/mpi$k.db"
done
t0=$(now)
"$BNKIT" $tune --workers 2 --study "$dir/w2.db" -- $train >/dev/null
t1=$(now)
row "--workers 2 (no MPI)" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$dir/w2.db"
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
