#!/bin/sh
# Sampler comparison on the real objective: bnkit's grid, random, TPE and GP samplers and
# Optuna's TPE (optuna_bnkit.py) each search the built-in BN space for the source document's
# model (dense:128,relu,bn,dense:10, Fashion-MNIST, validation accuracy), without pruning, for
# TRIALS trials and several seeds. Prints the best validation accuracy after 5, 10, ... trials,
# as mean (min-max) over the seeds, one row per sampler, as a markdown table.
# Usage: bench/tune_real/run.sh BNKIT [TRIALS] [SEEDS] [EPOCHS]
set -eu
BNKIT=$1
TRIALS=${2:-20}
SEEDS=${3:-3}
EPOCHS=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fixed="--epochs $EPOCHS --threads 1 --print-every 0"

# curve FILE: "<number> <value>" lines in trial order -> best-so-far after each trial.
curve() { sort -n "$1" | awk '$2 == $2 + 0 && $2 > b { b = $2 } { print NR, (b == "" ? 0 : b) }'; }

for sampler in grid random tpe gp optuna-tpe; do
    s=1
    while [ "$s" -le "$SEEDS" ]; do
        out="$dir/$sampler.$s"
        if [ "$sampler" = grid ] && [ "$s" -gt 1 ]; then
            cp "$dir/grid.1.raw" "$out.raw" # the grid has no seed: one run stands for all
        elif [ "$sampler" = optuna-tpe ]; then
            /usr/bin/python3 "$here/optuna_bnkit.py" --bnkit "$BNKIT" --trials "$TRIALS" \
                --seed "$s" -- $fixed >"$out.raw"
        else
            "$BNKIT" tune --study "$out.db" --sampler "$sampler" --seed "$s" --trials "$TRIALS" \
                --grid-points 3 --pruner none -- $fixed >/dev/null 2>&1
            "$BNKIT" trials --study "$out.db" --json |
                sed -n 's/.*"number":\([0-9]*\),"state":"\([a-z]*\)".*"value":\([0-9.enul]*\).*/\1 \3/p' \
                    >"$out.raw"
        fi
        curve "$out.raw" >"$out.curve"
        s=$((s + 1))
    done
done

printf '| sampler |'
k=5
while [ "$k" -le "$TRIALS" ]; do printf ' after %d |' "$k"; k=$((k + 5)); done
printf '\n|---|'
k=5
while [ "$k" -le "$TRIALS" ]; do printf -- '---|'; k=$((k + 5)); done
printf '\n'
for sampler in grid random tpe gp optuna-tpe; do
    printf '| %s |' "$sampler"
    k=5
    while [ "$k" -le "$TRIALS" ]; do
        cat "$dir/$sampler".*.curve | awk -v k="$k" '$1 == k { n++; s += $2;
            if (n == 1 || $2 < lo) lo = $2; if (n == 1 || $2 > hi) hi = $2 }
            END { if (n) printf " %.2f %% (%.2f-%.2f) |", 100 * s / n, 100 * lo, 100 * hi;
                  else printf " - |" }'
        k=$((k + 5))
    done
    printf '\n'
done
