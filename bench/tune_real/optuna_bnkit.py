#!/usr/bin/python3
"""optuna_bnkit.py -- Optuna's TPE driving `bnkit train` on the real objective, the peer of
bench/tune_real/run.sh's bnkit studies: the same search space as bnkit's built-in BN space
(src/tune/space.c, bnkit_space_default_bn), the same fixed training options, the same
objective (validation accuracy of `bnkit train --json`), no pruning.

  optuna_bnkit.py --bnkit PATH --trials N --seed S [--sampler tpe|random] -- <train options>

Prints one line per trial: "<trial number> <value>" (value is nan for a failed run).
Run it with Debian's /usr/bin/python3 (python3-optuna).
"""
import argparse
import json
import math
import subprocess
import sys

import optuna


def suggest(trial):
    """bnkit's built-in BN space, parameter for parameter, as `bnkit train` options."""
    args = [
        "--bn-momentum", trial.suggest_float("bn.momentum", 0.7, 0.999, log=True),
        "--bn-eps", trial.suggest_float("bn.eps", 1e-6, 1e-2, log=True),
        "--bn-rel-clip-r", trial.suggest_float("bn.rel_clip_r", 1.1, 100.0, log=True),
        "--bn-rel-clip-d", trial.suggest_float("bn.rel_clip_d", 0.1, 100.0, log=True),
    ]
    mode = trial.suggest_categorical("bn.normalize_with", ["batch", "running", "renorm"])
    args += ["--bn-normalize-with", mode]
    if mode == "renorm":
        args += ["--bn-rmax", trial.suggest_float("bn.rmax", 1.0, 5.0),
                 "--bn-dmax", trial.suggest_float("bn.dmax", 0.0, 10.0)]
    args += ["--lr", trial.suggest_float("lr", 1e-4, 1e-2, log=True)]
    return [str(a) if not isinstance(a, float) else repr(a) for a in args]


def main():
    argv = sys.argv[1:]
    fixed = []
    if "--" in argv:
        cut = argv.index("--")
        argv, fixed = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser()
    ap.add_argument("--bnkit", required=True)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (optuna.samplers.TPESampler(seed=args.seed) if args.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=args.seed))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        cmd = [args.bnkit, "train", *fixed, *suggest(trial), "--json"]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            return float("nan")  # diverged (exit 3) or failed: Optuna records it as failed
        return json.loads(run.stdout)["val_accuracy"]

    for _ in range(args.trials):
        trial = study.ask()
        value = objective(trial)
        if math.isnan(value):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, value)
        print(trial.number, value, flush=True)


if __name__ == "__main__":
    main()
