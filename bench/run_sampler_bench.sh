#!/usr/bin/env bash
# run_sampler_bench.sh — bnkit's samplers and SQLite study against Optuna (Debian's
# python3-optuna) on the synthetic objectives of tests/synthetic.h; prints the markdown tables of
# docs/RESULTS.md ("Tuner: samplers against Optuna"). bnkit and Optuna runs are interleaved
# (each bnkit measurement is followed by the matching Optuna one) so both see the same load.
#
#   bench/run_sampler_bench.sh [--quick] [--only regret|overhead|stress] [--tpe-check]
#
# --tpe-check (separate, ~10 min): bnkit TPE vs Optuna TPE vs Optuna TPE with the PR #5110 fix
# (bench/optuna_peer.py --fix5110) on Branin and Hartmann-6, 40 seeds.
# Environment: BUILD (build dir, /tmp/build-bench), PYTHON (/usr/bin/python3), SEEDS (10),
# BUDGET (100), GP_BUDGET (100), FUNCTIONS and SAMPLERS (of the regret tables),
# RUNDIR (study files; a fresh directory under /tmp),
# MAX_LOAD_WAIT (seconds to wait for the 1-minute load average to drop below 1.5 before the
# timed sections; 300). OPENBLAS_NUM_THREADS defaults to 1 (see docs/RESULTS.md for why).
# --quick: 3 seeds, budget 30, short timing runs (a smoke test, about a minute).
# Needs: cmake, a C compiler, jq, python3-optuna. About 10-15 minutes on 2 cores.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-/tmp/build-bench}
PYTHON=${PYTHON:-/usr/bin/python3}
SEEDS=${SEEDS:-10}
BUDGET=${BUDGET:-100}
GP_BUDGET=${GP_BUDGET:-100}
MAX_LOAD_WAIT=${MAX_LOAD_WAIT:-300}
HISTORIES="50 200 500"
REPS=20
WORKERS=4
TRIALS=200
ONLY=all
ARGS="$*"
FUNCTIONS=${FUNCTIONS:-branin hartmann6 cond}
SAMPLERS=${SAMPLERS:-random sobol tpe tpe-mv gp}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) SEEDS=3 BUDGET=30 GP_BUDGET=30 HISTORIES="50 200" REPS=5 TRIALS=25 MAX_LOAD_WAIT=0 ;;
    --only) ONLY=$2; shift ;;
    --tpe-check) ONLY=tpe-check SEEDS=40 FUNCTIONS="branin hartmann6" SAMPLERS="tpe tpe-mv" ;;
    *) echo "usage: $0 [--quick] [--only regret|overhead|stress] [--tpe-check]" >&2; exit 2 ;;
    esac
    shift
done

RUNDIR=${RUNDIR:-$(mktemp -d /tmp/bnkit-sampler-bench.XXXXXX)}
cmake -S "$ROOT" -B "$BUILD" >/dev/null
cmake --build "$BUILD" -j2 --target bench_samplers >/dev/null
BNK=$BUILD/bench/bench_samplers
OPT=("$PYTHON" "$ROOT/bench/optuna_peer.py")
OPTUNA_VERSION=$("$PYTHON" -c 'import optuna; print(optuna.__version__)')

load1() { cut -d' ' -f1 /proc/loadavg; }

# Waits (up to MAX_LOAD_WAIT s) for the 1-minute load average to fall below 1.5; prints it.
wait_for_low_load() {
    local waited=0
    while [ "$waited" -lt "$MAX_LOAD_WAIT" ] && awk -v l="$(load1)" 'BEGIN { exit !(l >= 1.5) }'; do
        sleep 10
        waited=$((waited + 10))
    done
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (waited ${waited} s for < 1.5)"
}

regret_header() {
    echo "| function | sampler | seeds×trials | best@10 | best@25 | best@50 | best@100" \
        "| final regret ± s.e. | s/study |"
    echo "|---|---|---|---|---|---|---|---|---|"
}

ms() { jq -r '"\(.median_ms)"' <<<"$1" | xargs printf '%.3g'; }

echo "# bnkit samplers vs Optuna $OPTUNA_VERSION"
echo
echo "command: bench/run_sampler_bench.sh $ARGS" \
    "(SEEDS=$SEEDS BUDGET=$BUDGET GP_BUDGET=$GP_BUDGET" \
    "OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS FUNCTIONS='$FUNCTIONS' SAMPLERS='$SAMPLERS')"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
echo "machine: $(nproc) cores, $CPU; $(date -u '+%Y-%m-%d %H:%M UTC'); git $REV (+ working tree)"
echo "study files in $RUNDIR ($(df -T "$RUNDIR" | awk 'NR == 2 { print $2 }'))"
echo

# ---- 1. Regret -------------------------------------------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = regret ]; then
    echo "## Mean best value after 10/25/50/100 trials, final mean regret ± s.e. ($SEEDS seeds)"
    echo
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (s/study is wall time per study)"
    for fn in $FUNCTIONS; do
        echo
        regret_header
        for s in $SAMPLERS; do
            b=$BUDGET
            [ "$s" = gp ] && b=$GP_BUDGET
            "$BNK" regret --function "$fn" --sampler "$s" --budget "$b" --seeds "$SEEDS"
            if ! "${OPT[@]}" regret --function "$fn" --sampler "$s" --budget "$b" \
                --seeds "$SEEDS" 2>"$RUNDIR/err"; then
                why=$(tail -n1 "$RUNDIR/err" | sed 's/^optuna_peer.py: //')
                echo "| $fn | optuna $s | — | n/a: $why ||||||"
            fi
        done
    done
    echo
fi

# ---- 1b. TPE check (not part of "all": about 10 minutes) -----------------------------------
# bnkit's TPE against Optuna's, and against Optuna patched with PR #5110 (optuna#5109: until
# that fix, Optuna's TPE kernel log density lacks -log(sigma)), on more seeds.
if [ "$ONLY" = tpe-check ]; then
    echo "## TPE check: mean best value, final mean regret ± s.e. ($SEEDS seeds)"
    echo
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    for fn in $FUNCTIONS; do
        echo
        regret_header
        for s in $SAMPLERS; do
            "$BNK" regret --function "$fn" --sampler "$s" --budget "$BUDGET" --seeds "$SEEDS"
            "${OPT[@]}" regret --function "$fn" --sampler "$s" --budget "$BUDGET" --seeds "$SEEDS"
            "${OPT[@]}" regret --function "$fn" --sampler "$s" --budget "$BUDGET" \
                --seeds "$SEEDS" --fix5110
        done
    done
    echo
fi

# ---- 2. Overhead -----------------------------------------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = overhead ]; then
    echo "## Suggestion time, median ms over $REPS suggestions (in-memory; Hartmann-6 and Branin)"
    echo
    wait_for_low_load
    for fn in hartmann6 branin; do
        echo
        printf '| %s: sampler |' "$fn"
        for n in $HISTORIES; do printf ' bnkit @%s | optuna @%s |' "$n" "$n"; done
        echo
        printf '|---|'
        for n in $HISTORIES; do printf -- '---|---|'; done
        echo
        for s in random tpe tpe-mv gp; do
            printf '| %s |' "$s"
            for n in $HISTORIES; do
                printf ' %s |' "$(ms "$("$BNK" overhead --function "$fn" --sampler "$s" \
                    --history "$n" --reps "$REPS")")"
                if [ "$s" = gp ]; then
                    printf ' n/a |'
                else
                    printf ' %s |' "$(ms "$("${OPT[@]}" overhead --function "$fn" --sampler "$s" \
                        --history "$n" --reps "$REPS")")"
                fi
            done
            echo
        done
    done
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "## ask + tell round trip through SQLite, median ms over $REPS (Hartmann-6)"
    echo
    wait_for_low_load
    echo
    printf '| sampler |'
    for n in $HISTORIES; do printf ' bnkit @%s | optuna RDB @%s |' "$n" "$n"; done
    echo
    printf '|---|'
    for n in $HISTORIES; do printf -- '---|---|'; done
    echo
    for s in random tpe; do
        printf '| %s |' "$s"
        for n in $HISTORIES; do
            printf ' %s |' "$(ms "$("$BNK" roundtrip --function hartmann6 --sampler "$s" \
                --history "$n" --reps "$REPS" --study "$RUNDIR/rt-bnkit.db")")"
            printf ' %s |' "$(ms "$("${OPT[@]}" roundtrip --function hartmann6 --sampler "$s" \
                --history "$n" --reps "$REPS" --study "$RUNDIR/rt-optuna.db")")"
        done
        echo
    done
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
fi

# ---- 3. Stress -------------------------------------------------------------------------------
if [ "$ONLY" = all ] || [ "$ONLY" = stress ]; then
    echo "## Stress: $WORKERS processes × $TRIALS trials on one SQLite study" \
        "(Hartmann-6, instant objective)"
    echo
    wait_for_low_load
    echo
    echo "| impl | sampler | trials done / expected | errors | 'database is locked'" \
        "| duplicate numbers / points | unfinished | wall s | trials/s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    stress_row() {
        jq -r --arg exp "$((WORKERS * TRIALS))" \
            '"| \(.impl) | \(.sampler) | \(.done) / \($exp) | \(.errors)"
             + " | \(.database_is_locked // "—")"
             + " | \(.duplicate_numbers) / \(.duplicate_points) | \(.unfinished)"
             + " | \(.wall_s) | \(.trials_per_s) |"' <<<"$1"
    }
    for s in random tpe; do
        stress_row "$("$BNK" stress --workers "$WORKERS" --trials "$TRIALS" --sampler "$s" \
            --study "$RUNDIR/stress-bnkit.db" || true)"
        stress_row "$("${OPT[@]}" stress --workers "$WORKERS" --trials "$TRIALS" --sampler "$s" \
            --study "$RUNDIR/stress-optuna.db" || true)"
    done
    echo
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
fi
