#!/bin/sh
# Data-parallel training throughput: the document's model (dense:128,relu,bn,dense:10) on
# Fashion-MNIST, 1 epoch, one thread per rank, `bnkit train` alone and under `mpirun -np 2` with
# synchronised and ghost BN, at global batches 100 and 1000. Prints a markdown table of
# training samples/s and test accuracy.
# Usage: bench/train/mpi.sh BNKIT [MPIEXEC]
set -eu
BNKIT=$1
MPIEXEC=${2:-mpirun}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
field() { sed -n "s/.*\"$1\": \([0-9.e+-]*\).*/\1/p"; }
common="--epochs 1 --threads 1 --val-size 0 --print-every 0 --json"
echo "cores: $(nproc), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| global batch | run | samples/s | test accuracy |"
echo "|---|---|---|---|"
for b in 100 1000; do
    for run in single sync ghost; do
        case $run in
        single) out=$("$BNKIT" train --batch "$b" $common 2>/dev/null) ;;
        sync) out=$("$MPIEXEC" -np 2 --oversubscribe "$BNKIT" train --batch "$b" $common 2>/dev/null) ;;
        ghost) out=$("$MPIEXEC" -np 2 --oversubscribe "$BNKIT" train --batch "$b" --bn-sync off \
            $common 2>/dev/null) ;;
        esac
        label=$([ $run = single ] && echo "1 process" || echo "2 ranks, $run BN")
        printf '| %s | %s | %.0f | %s |\n' "$b" "$label" "$(echo "$out" | field samples_per_sec)" \
            "$(echo "$out" | field test_accuracy)"
    done
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
