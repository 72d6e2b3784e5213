#!/usr/bin/python3
"""optuna_peer.py -- the Optuna side of bench/bench_samplers.c: the same synthetic objectives
(tests/synthetic.h, reimplemented below term for term, same bounds and log scales), the same
subcommands and flags, the same output lines, so bench/run_sampler_bench.sh can put both in one
table. Run it with Debian's /usr/bin/python3 (python3-optuna); the pyenv python3 lacks Optuna.

  optuna_peer.py regret    --function F --sampler S [--budget N] [--seeds K] [--seed0 B] [--json]
  optuna_peer.py overhead  --function F --sampler S [--history N] [--reps R]
  optuna_peer.py roundtrip --function F --sampler S [--history N] [--reps R] --study PATH
  optuna_peer.py stress    [--workers W] [--trials T] [--sampler S] [--function F] --study PATH

--fix5110 (diagnostic): patch the TPE kernel density bug of Optuna before PR #5110 (#5109).

S: random (RandomSampler), tpe (TPESampler with the installed version's defaults), tpe-mv
(TPESampler(multivariate=True)), sobol (QMCSampler, needs SciPy), gp (GPSampler, Optuna >= 3.6);
a sampler the installed Optuna cannot build is an error (exit 1) naming the reason.

overhead: an in-memory study pre-filled by add_trials with N COMPLETE trials at uniformly random
  points; times R of study.ask() plus the trial's suggest_* calls (where Optuna samples), each
  followed by an untimed tell, so the R suggestions see N .. N+R-1 trials.
roundtrip: the same through SQLite storage (RDB, a fresh file): R timed ask + suggest + tell.
stress: W processes load one fresh SQLite study and each runs T ask/suggest/tell trials with an
  instant objective; counts exceptions ("database is locked" separately), checks the file.
"""
import argparse
import json
import math
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np
import optuna

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")  # ExperimentalWarning for multivariate / QMC

# ---- The synthetic objectives (tests/synthetic.h) -------------------------------------------

PI = 3.14159265358979323846


def branin(t):
    x1 = t.suggest_float("x1", -5, 10)
    x2 = t.suggest_float("x2", 0, 15)
    b, c, tt = 5.1 / (4 * PI * PI), 5 / PI, 1 / (8 * PI)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - tt) * math.cos(x1) + 10


H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
       [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
H_P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
       [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
       [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
       [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(t):
    x = [t.suggest_float("x%d" % (j + 1), 0, 1) for j in range(6)]
    s = 0.0
    for i in range(4):
        inner = sum(H_A[i][j] * (x[j] - H_P[i][j]) ** 2 for j in range(6))
        s += H_ALPHA[i] * math.exp(-inner)
    return -s


def cond(t):
    kind = t.suggest_categorical("kind", ["a", "b", "c"])
    if kind == "a":
        return 0.2 + (t.suggest_float("u", 0, 1) - 0.3) ** 2
    if kind == "b":
        return (math.log10(t.suggest_float("v", 1e-4, 1, log=True)) + 2.0) ** 2 / 4.0
    return 1.0


FUNCTIONS = {"branin": (branin, 0.397887), "hartmann6": (hartmann6, -3.32237),
             "cond": (cond, 0.0)}


def random_params(name, rng):
    """A uniformly random point (log-uniform for v) and its distributions, for add_trials."""
    D = optuna.distributions
    if name == "branin":
        return ({"x1": rng.uniform(-5, 10), "x2": rng.uniform(0, 15)},
                {"x1": D.FloatDistribution(-5, 10), "x2": D.FloatDistribution(0, 15)})
    if name == "hartmann6":
        keys = ["x%d" % (j + 1) for j in range(6)]
        return ({k: rng.uniform(0, 1) for k in keys}, {k: D.FloatDistribution(0, 1) for k in keys})
    kind = ["a", "b", "c"][rng.randint(3)]
    params, dists = {"kind": kind}, {"kind": D.CategoricalDistribution(["a", "b", "c"])}
    if kind == "a":
        params["u"], dists["u"] = rng.uniform(0, 1), D.FloatDistribution(0, 1)
    elif kind == "b":
        params["v"] = math.exp(rng.uniform(math.log(1e-4), 0))
        dists["v"] = D.FloatDistribution(1e-4, 1, log=True)
    return params, dists


def value_of(name, params):
    """The objective at fixed params (a FixedTrial replays the define-by-run function)."""
    return FUNCTIONS[name][0](optuna.trial.FixedTrial(params))


def make_sampler(name, seed):
    S = optuna.samplers
    if name == "random":
        return S.RandomSampler(seed=seed)
    if name == "tpe":
        return S.TPESampler(seed=seed)
    if name == "tpe-mv":
        return S.TPESampler(seed=seed, multivariate=True)
    if name == "sobol":
        import scipy.stats.qmc  # noqa: F401 -- fail now: Optuna imports it at the first trial

        return S.QMCSampler(qmc_type="sobol", seed=seed)
    if name == "gp":
        if not hasattr(S, "GPSampler"):
            raise RuntimeError("optuna %s has no GPSampler (added in 3.6)" % optuna.__version__)
        return S.GPSampler(seed=seed)
    raise ValueError("unknown sampler " + name)


def apply_truncnorm_fix():
    """Optuna 3.1.0 up to PR #5110 (Nov 2023; optuna/optuna#5109): the TPE kernels'
    truncated-normal log density lacks -log(sigma), so each kernel's mass grows with its width
    and narrow kernels count for less than they should. --fix5110 patches that one function as
    the PR did, to tell the bug's effect apart from differences in bnkit."""
    from optuna.samplers._tpe import _truncnorm

    if getattr(_truncnorm, "_bnkit_fixed", False):
        return
    original = _truncnorm.logpdf

    def logpdf(x, a, b, loc=0, scale=1):
        return original(x, a, b, loc, scale) - np.log(scale)

    _truncnorm.logpdf = logpdf
    _truncnorm._bnkit_fixed = True


# ---- Subcommands ----------------------------------------------------------------------------

CHECKPOINTS = [10, 25, 50, 100]


def cmd_regret(a):
    f, fmin = FUNCTIONS[a.function]
    traces, t0 = [], time.perf_counter()
    for s in range(a.seed0, a.seed0 + a.seeds):
        study = optuna.create_study(sampler=make_sampler(a.sampler, s))
        study.optimize(f, n_trials=a.budget)
        best, trace = math.inf, []
        for t in sorted(study.trials, key=lambda t: t.number):
            best = min(best, t.value)
            trace.append(best)
        traces.append(trace)
    per_study = (time.perf_counter() - t0) / a.seeds
    regrets = [tr[-1] - fmin for tr in traces]
    mean = sum(regrets) / len(regrets)
    sd = (math.sqrt(sum((r - mean) ** 2 for r in regrets) / (len(regrets) - 1))
          if len(regrets) > 1 else 0.0)
    se = sd / math.sqrt(len(regrets))
    if a.json:
        print(json.dumps({"impl": "optuna " + optuna.__version__, "function": a.function,
                          "sampler": a.sampler, "budget": a.budget, "seeds": a.seeds,
                          "seed0": a.seed0, "min": fmin, "seconds_per_study": per_study,
                          "mean_regret": mean, "se_regret": se, "best_so_far": traces}))
        return 0
    cells = []
    for c in CHECKPOINTS:
        cells.append(" —" if c > a.budget else
                     " %#.4g" % (sum(tr[c - 1] for tr in traces) / len(traces)))
    print("| %s | optuna %s | %d×%d |%s | %#.3g ± %#.2g | %.2f |"
          % (a.function, a.sampler + ("+fix5110" if a.fix5110 else ""), a.seeds, a.budget,
             " |".join(cells), mean, se, per_study))
    return 0


def prefill(study, a):
    rng = np.random.RandomState(12345)
    trials = []
    for _ in range(a.history):
        params, dists = random_params(a.function, rng)
        trials.append(optuna.trial.create_trial(params=params, distributions=dists,
                                                value=value_of(a.function, params)))
    study.add_trials(trials)


def timed_asks(study, a, include_tell):
    f = FUNCTIONS[a.function][0]
    times = []
    # one untimed warm-up, as bench_samplers does
    for r in range(a.reps + 1):
        t0 = time.perf_counter()
        trial = study.ask()
        v = f(trial)
        if include_tell:
            study.tell(trial, v)
        dt = time.perf_counter() - t0
        if not include_tell:
            study.tell(trial, v)
        if r > 0:
            times.append(dt)
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return med, sum(times) / n


def cmd_overhead(a):
    study = optuna.create_study(sampler=make_sampler(a.sampler, 0))
    prefill(study, a)
    med, mean = timed_asks(study, a, False)
    print(json.dumps({"impl": "optuna " + optuna.__version__, "what": "suggest",
                      "function": a.function, "sampler": a.sampler, "history": a.history,
                      "reps": a.reps, "median_ms": 1e3 * med, "mean_ms": 1e3 * mean}))
    return 0


def fresh(path):
    for suffix in ["", "-journal", "-wal", "-shm"]:
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


def cmd_roundtrip(a):
    fresh(a.study)
    study = optuna.create_study(storage="sqlite:///" + a.study, study_name="bench",
                                sampler=make_sampler(a.sampler, 0))
    prefill(study, a)
    med, mean = timed_asks(study, a, True)
    print(json.dumps({"impl": "optuna " + optuna.__version__, "what": "roundtrip",
                      "function": a.function, "sampler": a.sampler, "history": a.history,
                      "reps": a.reps, "median_ms": 1e3 * med, "mean_ms": 1e3 * mean}))
    return 0


def stress_worker(a, w, queue):
    f = FUNCTIONS[a.function][0]
    done, errors, locked, first = 0, 0, 0, ""
    try:
        study = optuna.load_study(study_name="bench", storage="sqlite:///" + a.study,
                                  sampler=make_sampler(a.sampler, 1000 + w))
    except Exception as e:  # noqa: BLE001 -- counted, not hidden
        queue.put((w, 0, 1, int("database is locked" in str(e)), repr(e)[:200]))
        return
    for _ in range(a.trials):
        try:
            trial = study.ask()
            study.tell(trial, f(trial))
            done += 1
        except Exception as e:  # noqa: BLE001
            errors += 1
            locked += "database is locked" in str(e)
            first = first or repr(e)[:200]
    queue.put((w, done, errors, locked, first))


def cmd_stress(a):
    fresh(a.study)
    optuna.create_study(storage="sqlite:///" + a.study, study_name="bench")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    t0 = time.perf_counter()
    procs = [ctx.Process(target=stress_worker, args=(a, w, queue)) for w in range(a.workers)]
    for p in procs:
        p.start()
    results = sorted(queue.get() for _ in procs)
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="bench", storage="sqlite:///" + a.study)
    trials = study.trials
    numbers = [t.number for t in trials]
    # only points with a float parameter can be told apart (as in bench_samplers.c)
    points = [tuple(sorted(t.params.items())) for t in trials
              if any(isinstance(v, float) for v in t.params.values())]
    done = sum(r[1] for r in results)
    out = {"impl": "optuna " + optuna.__version__, "what": "stress", "function": a.function,
           "sampler": a.sampler, "workers": a.workers, "trials_per_worker": a.trials,
           "done": done, "per_worker": [r[1] for r in results],
           "errors": sum(r[2] for r in results), "database_is_locked": sum(r[3] for r in results),
           "first_error": next((r[4] for r in results if r[4]), ""),
           "failed_workers": sum(p.exitcode != 0 for p in procs), "in_file": len(trials),
           "unfinished": sum(t.state != optuna.trial.TrialState.COMPLETE for t in trials),
           "duplicate_numbers": len(numbers) - len(set(numbers)),
           "duplicate_points": len(points) - len(set(points)),
           "wall_s": round(wall, 3), "trials_per_s": round(done / wall, 1)}
    print(json.dumps(out))
    ok = out["errors"] == 0 and out["failed_workers"] == 0 and done == a.workers * a.trials
    return 0 if ok and out["duplicate_points"] == 0 and out["duplicate_numbers"] == 0 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command", choices=["regret", "overhead", "roundtrip", "stress"])
    p.add_argument("--function", choices=sorted(FUNCTIONS), default="hartmann6")
    p.add_argument("--sampler", choices=["random", "sobol", "tpe", "tpe-mv", "gp"], default="tpe")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed0", type=int, default=0)
    p.add_argument("--history", type=int, default=200)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--study")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fix5110", action="store_true",
                   help="patch the TPE kernel density as PR #5110 did; diagnostic")
    a = p.parse_args()
    if a.fix5110:
        apply_truncnorm_fix()
    if a.command in ("roundtrip", "stress") and not a.study:
        p.error(a.command + " needs --study PATH")
    try:
        make_sampler(a.sampler, 0)
    except (RuntimeError, ImportError) as e:
        print("optuna_peer.py: %s: %s" % (a.sampler, e), file=sys.stderr)
        return 1
    return {"regret": cmd_regret, "overhead": cmd_overhead, "roundtrip": cmd_roundtrip,
            "stress": cmd_stress}[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
