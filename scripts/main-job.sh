#!/bin/sh
# The main job behind `make run`: a BN hyperparameter study of the source document's model
# (dense:128,relu,bn,dense:10, Adam 1e-3, batch 100, 10 epochs on Fashion-MNIST) over the
# built-in BN space with the GP sampler, median pruning and 2 worker processes, then its HTML
# report. Re-running resumes the study (same file, same settings) instead of starting over.
# Usage: scripts/main-job.sh BNKIT RUN_DIR [TRIALS] [extra bnkit train options...]
#   TRIALS defaults to 200; extra training options (e.g. --train-size 1000 for a quick check)
#   follow the fixed ones, so they win.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: scripts/main-job.sh BNKIT RUN_DIR [TRIALS] [bnkit train options...]" >&2
    exit 2
fi
BNKIT=$1
DIR=$2
TRIALS=${3:-200}
[ $# -ge 3 ] && shift 3 || shift $#
mkdir -p "$DIR"
"$BNKIT" tune --study "$DIR/study.db" --sampler gp --pruner median --workers 2 --trials "$TRIALS" \
    -- --epochs 10 "$@"
"$BNKIT" report --study "$DIR/study.db" --out "$DIR/report.html"
echo "report: $DIR/report.html"
