/* bench_samplers — bnkit's samplers and SQLite study measured on the synthetic objectives of
 * tests/synthetic.h, with the same command-line shape as bench/optuna_peer.py (the Optuna side)
 * so that bench/run_sampler_bench.sh can run both and print one comparison table.
 *
 *   bench_samplers regret    --function F --sampler S [--budget N] [--seeds K] [--seed0 B] [--json]
 *   bench_samplers overhead  --function F --sampler S [--history N] [--reps R]
 *   bench_samplers roundtrip --function F --sampler S [--history N] [--reps R] --study PATH
 *   bench_samplers stress    [--workers W] [--trials T] [--sampler S] [--function F] --study PATH
 *
 * F: branin, hartmann6, cond (the conditional toy). S: random, sobol, tpe, tpe-mv (multivariate
 * TPE), gp; every other sampler setting is bnkit's default.
 *
 * regret: K sequential studies (seeds B..B+K-1) of N trials each; prints one markdown row: the
 *   mean over seeds of the best value after 10/25/50/100 trials, the mean regret (best - known
 *   minimum) after N trials ± its standard error, and the seconds per study. --json prints every
 *   seed's best-so-far trace instead.
 * overhead: a history of N COMPLETE trials at uniformly random points; times R calls of
 *   bnk_sampler_suggest (the suggestion alone), each followed by appending the suggested trial,
 *   so the R suggestions see N .. N+R-1 trials.
 * roundtrip: a fresh study file filled to N trials by ask/tell (not timed), then R timed
 *   bnk_study_ask + bnk_study_tell round trips.
 * stress: W processes share one fresh study file, each asking and telling T trials (budget W*T)
 *   with an instant objective; counts errors, checks the file afterwards for missing, unfinished
 *   or duplicate trials (ids, numbers, and points with a float parameter), prints wall time and
 *   trials/s.
 *
 * Exit status: 0 ok, 1 runtime failure (including any error or duplicate in stress), 2 usage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bnkit/tune.h"
#include "synthetic.h"

/* ---- Problems, samplers, options -------------------------------------------------------- */

typedef struct problem {
    const char *name;
    void (*space)(bnk_space *);
    double (*f)(const bnk_point *);
    double min;
} problem;

static const problem problems[] = {
    {"branin", bnk_synth_branin_space, bnk_synth_branin, BNK_SYNTH_BRANIN_MIN},
    {"hartmann6", bnk_synth_hartmann6_space, bnk_synth_hartmann6, BNK_SYNTH_HARTMANN6_MIN},
    {"cond", bnk_synth_cond_space, bnk_synth_cond, BNK_SYNTH_COND_MIN},
};
enum { NPROBLEMS = sizeof problems / sizeof problems[0] };

typedef struct options {
    const char *command;
    const problem *fn;
    const char *sampler_name;
    bnk_sampler_config sampler;
    int64_t budget, seeds, seed0, history, reps, workers, trials;
    const char *study;
    bool json;
} options;

static int usage(const char *msg) {
    if (msg) fprintf(stderr, "bench_samplers: %s\n", msg);
    fprintf(stderr,
            "usage: bench_samplers regret    --function F --sampler S [--budget N] [--seeds K] "
            "[--seed0 B] [--json]\n"
            "       bench_samplers overhead  --function F --sampler S [--history N] [--reps R]\n"
            "       bench_samplers roundtrip --function F --sampler S [--history N] [--reps R] "
            "--study PATH\n"
            "       bench_samplers stress    [--workers W] [--trials T] [--sampler S] "
            "[--function F] --study PATH\n"
            "F: branin | hartmann6 | cond;  S: random | sobol | tpe | tpe-mv | gp\n");
    return 2;
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_sampler(const char *name, bnk_sampler_config *cfg) {
    bnk_sampler_kind kind;
    const bool mv = strcmp(name, "tpe-mv") == 0;
    if (mv)
        kind = BNK_SAMPLER_TPE;
    else if (bnk_sampler_kind_parse(name, &kind) != BNK_OK || kind == BNK_SAMPLER_GRID)
        return false;
    *cfg = bnk_sampler_config_default(kind);
    cfg->multivariate = mv;
    return true;
}

/* 0 ok, 2 usage error (message printed). */
static int parse_options(int argc, char **argv, options *o) {
    *o = (options){.fn = &problems[1],
                   .sampler_name = "tpe",
                   .budget = 100,
                   .seeds = 10,
                   .history = 200,
                   .reps = 20,
                   .workers = 4,
                   .trials = 200};
    parse_sampler("tpe", &o->sampler);
    if (argc < 2) return usage(NULL);
    o->command = argv[1];
    for (int a = 2; a < argc; a++) {
        const char *flag = argv[a];
        if (strcmp(flag, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "bench_samplers: %s: missing value\n", flag);
            return usage(NULL);
        }
        const char *val = argv[++a];
        bool ok = true;
        if (strcmp(flag, "--function") == 0) {
            o->fn = NULL;
            for (int k = 0; k < NPROBLEMS; k++)
                if (strcmp(val, problems[k].name) == 0) o->fn = &problems[k];
            ok = o->fn != NULL;
        } else if (strcmp(flag, "--sampler") == 0) {
            o->sampler_name = val;
            ok = parse_sampler(val, &o->sampler);
        } else if (strcmp(flag, "--budget") == 0) {
            ok = parse_int(val, 1, 100000, &o->budget);
        } else if (strcmp(flag, "--seeds") == 0) {
            ok = parse_int(val, 1, 100000, &o->seeds);
        } else if (strcmp(flag, "--seed0") == 0) {
            ok = parse_int(val, 0, INT64_MAX / 2, &o->seed0);
        } else if (strcmp(flag, "--history") == 0) {
            ok = parse_int(val, 0, 100000, &o->history);
        } else if (strcmp(flag, "--reps") == 0) {
            ok = parse_int(val, 1, 100000, &o->reps);
        } else if (strcmp(flag, "--workers") == 0) {
            ok = parse_int(val, 1, 256, &o->workers);
        } else if (strcmp(flag, "--trials") == 0) {
            ok = parse_int(val, 1, 1000000, &o->trials);
        } else if (strcmp(flag, "--study") == 0) {
            o->study = val;
        } else {
            fprintf(stderr, "bench_samplers: unknown option '%s'\n", flag);
            return usage(NULL);
        }
        if (!ok) {
            fprintf(stderr, "bench_samplers: %s: bad value '%s'\n", flag, val);
            return usage(NULL);
        }
    }
    return 0;
}

/* ---- Helpers ------------------------------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *context) {
    fprintf(stderr, "bench_samplers: %s: %s\n", context, bnk_errmsg());
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and mean of t[n] (sorts t). */
static void median_mean(double *t, int64_t n, double *median, double *mean) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    double s = 0;
    for (int64_t k = 0; k < n; k++) s += t[k];
    *mean = s / (double)n;
}

static void complete_trial(bnk_trial *t, int64_t number, double loss) {
    t->id = number + 1;
    t->number = number;
    t->state = BNK_TRIAL_COMPLETE;
    t->value = t->loss = loss;
    t->curve = NULL;
    t->ncurve = 0;
}

/* ---- regret -------------------------------------------------------------------------------- */

enum { NCHECK = 4 };
static const int64_t checkpoints[NCHECK] = {10, 25, 50, 100};

static int cmd_regret(const options *o) {
    bnk_space space;
    o->fn->space(&space);
    const int64_t n = o->budget, K = o->seeds;
    bnk_trial *h = calloc((size_t)n, sizeof *h);
    double *trace = calloc((size_t)(n * K), sizeof *trace); /* [K][n] best so far */
    if (!h || !trace) {
        free(h);
        free(trace);
        fprintf(stderr, "bench_samplers: out of memory\n");
        return 1;
    }
    const double t0 = now_seconds();
    for (int64_t s = 0; s < K; s++) {
        bnk_sampler_config cfg = o->sampler;
        cfg.seed = (uint64_t)(o->seed0 + s);
        double best = INFINITY;
        for (int64_t k = 0; k < n; k++) {
            memset(&h[k], 0, sizeof h[k]);
            if (bnk_sampler_suggest(&cfg, &space, h, k, k, &h[k].x) != BNK_OK) {
                free(h);
                free(trace);
                return fail("suggest");
            }
            complete_trial(&h[k], k, o->fn->f(&h[k].x));
            if (h[k].loss < best) best = h[k].loss;
            trace[s * n + k] = best;
        }
    }
    const double per_study = (now_seconds() - t0) / (double)K;
    double regret = 0, r2 = 0;
    for (int64_t s = 0; s < K; s++) {
        const double r = trace[s * n + n - 1] - o->fn->min;
        regret += r / (double)K;
        r2 += r * r;
    }
    const double sd =
        K > 1 ? sqrt(fmax(0, (r2 - (double)K * regret * regret) / (double)(K - 1))) : 0;
    const double se = sd / sqrt((double)K);
    if (o->json) {
        printf("{\"impl\": \"bnkit\", \"function\": \"%s\", \"sampler\": \"%s\", \"budget\": %lld, "
               "\"seeds\": %lld, \"seed0\": %lld, \"min\": %.9g, \"seconds_per_study\": %.6g, "
               "\"mean_regret\": %.9g, \"se_regret\": %.9g, \"best_so_far\": [",
               o->fn->name, o->sampler_name, (long long)n, (long long)K, (long long)o->seed0,
               o->fn->min, per_study, regret, se);
        for (int64_t s = 0; s < K; s++) {
            printf("%s[", s ? ", " : "");
            for (int64_t k = 0; k < n; k++) printf("%s%.9g", k ? ", " : "", trace[s * n + k]);
            printf("]");
        }
        printf("]}\n");
    } else {
        printf("| %s | bnkit %s | %lld×%lld |", o->fn->name, o->sampler_name, (long long)K,
               (long long)n);
        for (int c = 0; c < NCHECK; c++) {
            if (checkpoints[c] > n) {
                printf(" — |");
                continue;
            }
            double m = 0;
            for (int64_t s = 0; s < K; s++) m += trace[s * n + checkpoints[c] - 1] / (double)K;
            printf(" %#.4g |", m);
        }
        printf(" %#.3g ± %#.2g | %.2f |\n", regret, se, per_study);
    }
    free(h);
    free(trace);
    return 0;
}

/* ---- overhead ------------------------------------------------------------------------------ */

static int cmd_overhead(const options *o) {
    bnk_space space;
    o->fn->space(&space);
    const int64_t N = o->history, R = o->reps;
    bnk_trial *h = calloc((size_t)(N + R), sizeof *h);
    double *t = calloc((size_t)R, sizeof *t);
    if (!h || !t) {
        free(h);
        free(t);
        fprintf(stderr, "bench_samplers: out of memory\n");
        return 1;
    }
    int rc = 0;
    bnk_sampler_config rnd = bnk_sampler_config_default(BNK_SAMPLER_RANDOM);
    rnd.seed = 12345;
    for (int64_t k = 0; k < N && rc == 0; k++) { /* the synthetic history: random points */
        if (bnk_sampler_suggest(&rnd, &space, NULL, 0, k, &h[k].x) != BNK_OK) rc = fail("history");
        complete_trial(&h[k], k, o->fn->f(&h[k].x));
    }
    bnk_sampler_config cfg = o->sampler;
    bnk_point warm;
    if (rc == 0 && bnk_sampler_suggest(&cfg, &space, h, N, N, &warm) != BNK_OK) /* not timed */
        rc = fail("suggest");
    for (int64_t r = 0; r < R && rc == 0; r++) {
        const double t0 = now_seconds();
        if (bnk_sampler_suggest(&cfg, &space, h, N + r, N + r, &h[N + r].x) != BNK_OK) {
            rc = fail("suggest");
            break;
        }
        t[r] = now_seconds() - t0;
        complete_trial(&h[N + r], N + r, o->fn->f(&h[N + r].x));
    }
    if (rc == 0) {
        double med, mean;
        median_mean(t, R, &med, &mean);
        printf("{\"impl\": \"bnkit\", \"what\": \"suggest\", \"function\": \"%s\", \"sampler\": "
               "\"%s\", \"history\": %lld, \"reps\": %lld, \"median_ms\": %.4f, \"mean_ms\": "
               "%.4f}\n",
               o->fn->name, o->sampler_name, (long long)N, (long long)R, 1e3 * med, 1e3 * mean);
    }
    free(h);
    free(t);
    return rc;
}

/* ---- roundtrip and stress: the SQLite study ----------------------------------------------- */

static bnk_study_config study_config(const options *o) {
    bnk_study_config c = bnk_study_config_default();
    snprintf(c.name, sizeof c.name, "bench");
    snprintf(c.objective, sizeof c.objective, "%s", o->fn->name);
    c.maximize = false;
    o->fn->space(&c.space);
    c.sampler = o->sampler;
    c.pruner = bnk_pruner_config_default(BNK_PRUNER_NONE);
    return c;
}

/* One ask + tell with the objective; *id < 0 when the budget is used up. */
static bnk_status ask_tell(bnk_study *s, const options *o, const char *worker, int64_t budget,
                           int64_t *id) {
    bnk_point x;
    bnk_status st = bnk_study_ask(s, worker, budget, id, &x);
    if (st == BNK_OK && *id >= 0)
        st = bnk_study_tell(s, *id, BNK_TRIAL_COMPLETE, o->fn->f(&x), NULL);
    return st;
}

static int fresh_file(const char *path) {
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (int k = 0; k < 4; k++) {
        char p[4096];
        snprintf(p, sizeof p, "%s%s", path, suffixes[k]);
        if (unlink(p) != 0 && errno != ENOENT) {
            fprintf(stderr, "bench_samplers: cannot remove %s: %s\n", p, strerror(errno));
            return 1;
        }
    }
    return 0;
}

static int cmd_roundtrip(const options *o) {
    if (!o->study) return usage("roundtrip needs --study PATH");
    if (fresh_file(o->study)) return 1;
    const bnk_study_config cfg = study_config(o);
    bnk_study *s;
    if (bnk_study_open(&s, o->study, &cfg) != BNK_OK) return fail(o->study);
    const int64_t N = o->history, R = o->reps;
    int rc = 0;
    int64_t id;
    for (int64_t k = 0; k < N && rc == 0; k++) /* fill the study: not timed */
        if (ask_tell(s, o, "fill", INT64_MAX, &id) != BNK_OK) rc = fail("fill");
    double *t = calloc((size_t)R, sizeof *t);
    if (!t) rc = 1;
    for (int64_t r = 0; r < R && rc == 0; r++) {
        const double t0 = now_seconds();
        if (ask_tell(s, o, "bench", INT64_MAX, &id) != BNK_OK) rc = fail("ask/tell");
        t[r] = now_seconds() - t0;
    }
    if (rc == 0) {
        double med, mean;
        median_mean(t, R, &med, &mean);
        printf("{\"impl\": \"bnkit\", \"what\": \"roundtrip\", \"function\": \"%s\", \"sampler\": "
               "\"%s\", \"history\": %lld, \"reps\": %lld, \"median_ms\": %.4f, \"mean_ms\": "
               "%.4f}\n",
               o->fn->name, o->sampler_name, (long long)N, (long long)R, 1e3 * med, 1e3 * mean);
    }
    free(t);
    bnk_study_close(s);
    return rc;
}

/* A stress worker (a child process): opens the study, asks and tells up to `trials` trials;
 * exits with 0 when all went through, 1 otherwise; writes "done errors" to fd. */
static int stress_worker(const options *o, int w, int fd) {
    char name[32];
    snprintf(name, sizeof name, "worker-%d", w);
    bnk_study *s;
    int64_t done = 0, errors = 0;
    if (bnk_study_open_existing(&s, o->study, "bench") != BNK_OK) {
        fprintf(stderr, "bench_samplers: %s: open: %s\n", name, bnk_errmsg());
        errors++;
    } else {
        for (int64_t k = 0; k < o->trials; k++) {
            int64_t id;
            if (ask_tell(s, o, name, o->workers * o->trials, &id) != BNK_OK) {
                if (errors++ < 5) fprintf(stderr, "bench_samplers: %s: %s\n", name, bnk_errmsg());
                continue;
            }
            if (id < 0) break;
            done++;
        }
        bnk_study_close(s);
    }
    char buf[64];
    const int len = snprintf(buf, sizeof buf, "%lld %lld\n", (long long)done, (long long)errors);
    const bool wrote = write(fd, buf, (size_t)len) == len;
    return errors == 0 && wrote ? 0 : 1;
}

/* Whether x has an active FLOAT parameter: only such points can be told apart as duplicates
 * (two trials may legitimately share a categorical or integer value). */
static bool has_float(const bnk_space *space, const bnk_point *x) {
    for (int i = 0; i < space->n; i++)
        if (space->params[i].kind == BNK_PARAM_FLOAT && !isnan(x->v[i])) return true;
    return false;
}

static bool same_point(const bnk_point *a, const bnk_point *b, int n) {
    for (int i = 0; i < n; i++)
        if (!(a->v[i] == b->v[i] || (isnan(a->v[i]) && isnan(b->v[i])))) return false;
    return true;
}

static int cmd_stress(const options *o) {
    if (!o->study) return usage("stress needs --study PATH");
    if (fresh_file(o->study)) return 1;
    const bnk_study_config cfg = study_config(o);
    bnk_study *s;
    if (bnk_study_open(&s, o->study, &cfg) != BNK_OK) return fail(o->study);
    bnk_study_close(s); /* never carried across fork() */
    const int W = (int)o->workers;
    int fds[256][2];
    pid_t pids[256];
    const double t0 = now_seconds();
    for (int w = 0; w < W; w++) {
        if (pipe(fds[w]) != 0) {
            perror("bench_samplers: pipe");
            return 1;
        }
        pids[w] = fork();
        if (pids[w] < 0) {
            perror("bench_samplers: fork");
            return 1;
        }
        if (pids[w] == 0) {
            close(fds[w][0]);
            _exit(stress_worker(o, w, fds[w][1]));
        }
        close(fds[w][1]);
    }
    int64_t done = 0, errors = 0;
    int failed_workers = 0;
    char per_worker[1024] = "";
    for (int w = 0; w < W; w++) {
        char buf[64] = "";
        const ssize_t got = read(fds[w][0], buf, sizeof buf - 1);
        close(fds[w][0]);
        long long d = 0, e = 0;
        if (got <= 0 || sscanf(buf, "%lld %lld", &d, &e) != 2) e = 1; /* died without a word */
        int status;
        if (waitpid(pids[w], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed_workers++;
        done += d;
        errors += e;
        const size_t used = strlen(per_worker);
        snprintf(per_worker + used, sizeof per_worker - used, "%s%lld", w ? ", " : "", d);
    }
    const double wall = now_seconds() - t0;
    /* Check the file: every trial present once, finished, no point handed out twice. */
    bnk_trial *tr = NULL;
    int64_t n = 0, unfinished = 0, dup_ids = 0, dup_numbers = 0, dup_points = 0;
    if (bnk_study_open_existing(&s, o->study, "bench") != BNK_OK ||
        bnk_study_trials(s, &tr, &n) != BNK_OK) {
        bnk_study_close(s);
        return fail("check");
    }
    for (int64_t a = 0; a < n; a++) {
        unfinished += tr[a].state != BNK_TRIAL_COMPLETE;
        for (int64_t b = a + 1; b < n; b++) {
            dup_ids += tr[a].id == tr[b].id;
            dup_numbers += tr[a].number == tr[b].number;
            dup_points +=
                has_float(&cfg.space, &tr[a].x) && same_point(&tr[a].x, &tr[b].x, cfg.space.n);
        }
    }
    bnk_trials_free(tr, n);
    bnk_study_close(s);
    const int64_t expected = o->workers * o->trials;
    printf("{\"impl\": \"bnkit\", \"what\": \"stress\", \"function\": \"%s\", \"sampler\": \"%s\", "
           "\"workers\": %d, \"trials_per_worker\": %lld, \"done\": %lld, \"per_worker\": [%s], "
           "\"errors\": %lld, \"failed_workers\": %d, \"in_file\": %lld, \"unfinished\": %lld, "
           "\"duplicate_ids\": %lld, \"duplicate_numbers\": %lld, \"duplicate_points\": %lld, "
           "\"wall_s\": %.3f, \"trials_per_s\": %.1f}\n",
           o->fn->name, o->sampler_name, W, (long long)o->trials, (long long)done, per_worker,
           (long long)errors, failed_workers, (long long)n, (long long)unfinished,
           (long long)dup_ids, (long long)dup_numbers, (long long)dup_points, wall,
           (double)done / wall);
    const bool ok = errors == 0 && failed_workers == 0 && done == expected && n == expected &&
                    unfinished == 0 && dup_ids == 0 && dup_numbers == 0 && dup_points == 0;
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    options o;
    const int rc = parse_options(argc, argv, &o);
    if (rc) return rc;
    if (strcmp(o.command, "regret") == 0) return cmd_regret(&o);
    if (strcmp(o.command, "overhead") == 0) return cmd_overhead(&o);
    if (strcmp(o.command, "roundtrip") == 0) return cmd_roundtrip(&o);
    if (strcmp(o.command, "stress") == 0) return cmd_stress(&o);
    return usage("unknown command");
}
