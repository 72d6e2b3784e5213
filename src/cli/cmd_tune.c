/* `bnkit tune`: hyperparameter search over `bnkit train` options (BN flags first), with a
 * resumable SQLite study shared by worker processes.
 *
 *   bnkit tune --study s.db --trials 40 --sampler gp [--param DEF ...] [--workers 2]
 *              [-- <bnkit train options fixed for every trial>]
 *
 * Each worker loops: reap trials of dead workers, ask the study for a point (the sampler runs
 * inside the study's write transaction), train with it (reporting validation accuracy and the
 * trainer's diagnostics every epoch so that the pruner can stop it and the report can say where
 * gradients vanished or a trial overfitted; a heartbeat thread keeps the trial alive), tell the
 * result. At the end the best configuration is trained once more and evaluated on the test
 * set, which no trial touches.
 *
 * Under mpirun/srun with several ranks, cmd_tune_mpi.c takes over after option parsing: rank 0
 * owns the study, every rank runs trials in forked children (bnk__tune_trial_train is shared). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bnkit/train.h"
#include "bnkit/tune.h"
#include "cli/cli.h"
#include "cli/tune_common.h"
#include "cli/tune_mpi.h"

static const char *const CTX = "tune";

static const bnk_cli_opt tune_opts[] = {
    {"study", "FILE", "SQLite study file (created if missing; re-running resumes it)"},
    {"name", "NAME", "study name inside the file (default)"},
    {"trials", "N", "trial budget: trials to finish, counting complete, pruned and failed (30)"},
    {"sampler", "grid|random|sobol|tpe|gp", "search strategy (tpe)"},
    {"seed", "N", "sampler seed (0)"},
    {"grid-points", "K", "grid: values per continuous range (5)"},
    {"multivariate", NULL, "tpe: model the parameters jointly"},
    {"pruner", "none|median|asha", "stop unpromising trials early (median)"},
    {"prune-percentile", "P",
     "median: stop a trial worse than the P-th percentile of the others, (0, 100] (50)"},
    {"workers", "N", "worker processes sharing the study (1)"},
    {"param", "DEF",
     "a searched option, repeatable: NAME=float|log|int|logint:LO:HI or "
     "NAME=cat:A,B[@PARENT=V1|V2] (default: the built-in BN space)"},
    {"default-space", NULL, "start from the built-in BN space even with --param"},
    {"stale-seconds", "S", "a trial without heartbeat for S s is failed and re-issued (60)"},
    {"json", NULL, "print the final summary as JSON on stdout"},
    {"help", NULL, "print this help"},
};
enum { N_TUNE_OPTS = sizeof tune_opts / sizeof tune_opts[0], MAX_TRAIN_ARGS = 128 };

typedef bnk__tune_job tune_job;

double bnk__tune_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- Heartbeat thread ---------------------------------------------------------------------- */

typedef struct heartbeat {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    const char *path, *name;
    int64_t trial;
} heartbeat;

static void *heartbeat_main(void *arg) {
    heartbeat *hb = arg;
    bnk_study *study = NULL;
    /* its own connection: a bnk_study handle is not shared between threads */
    if (bnk_study_open_existing(&study, hb->path, hb->name) != BNK_OK) return NULL;
    pthread_mutex_lock(&hb->lock);
    while (!hb->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_cond_timedwait(&hb->wake, &hb->lock, &until);
        if (!hb->stop) bnk_study_heartbeat(study, hb->trial);
    }
    pthread_mutex_unlock(&hb->lock);
    bnk_study_close(study);
    return NULL;
}

static bool heartbeat_start(heartbeat *hb, const tune_job *job, int64_t trial) {
    memset(hb, 0, sizeof *hb);
    pthread_mutex_init(&hb->lock, NULL);
    pthread_cond_init(&hb->wake, NULL);
    hb->path = job->path;
    hb->name = job->cfg.name;
    hb->trial = trial;
    return pthread_create(&hb->thread, NULL, heartbeat_main, hb) == 0;
}

static void heartbeat_stop(heartbeat *hb) {
    pthread_mutex_lock(&hb->lock);
    hb->stop = true;
    pthread_cond_signal(&hb->wake);
    pthread_mutex_unlock(&hb->lock);
    pthread_join(hb->thread, NULL);
    pthread_mutex_destroy(&hb->lock);
    pthread_cond_destroy(&hb->wake);
}

/* ---- One trial ----------------------------------------------------------------------------- */

typedef struct train_ctx {
    bnk__tune_report_fn report;
    void *user;
    double last_value;
} train_ctx;

/* The study's record of an epoch: losses, accuracies, the flags, the smallest per-tensor
 * gradient norm and the running-variance range over every BN layer. */
static bnk_trial_epoch epoch_diag(const bnk_epoch_metrics *m) {
    bnk_trial_epoch e = bnk_trial_epoch_empty();
    e.step = m->epoch;
    e.train_loss = m->train_loss;
    e.train_accuracy = m->train_accuracy;
    e.val_loss = m->val_loss;
    e.val_accuracy = m->val_accuracy;
    e.vanishing_gradients = m->vanishing_gradients;
    e.overfitting = m->overfitting;
    for (int k = 0; k < m->ntensors && k < BNK_TRAIN_MAX_TENSORS; k++)
        if (isfinite(m->grad_norm[k]) && !(m->grad_norm[k] >= e.min_grad_norm)) {
            e.min_grad_norm = m->grad_norm[k];
            snprintf(e.min_grad_tensor, sizeof e.min_grad_tensor, "%s", m->tensor_name[k]);
        }
    for (int k = 0; k < m->nbn && k < BNK_TRAIN_MAX_TENSORS; k++) {
        if (!(m->bn_min_running_var[k] >= e.bn_min_running_var))
            e.bn_min_running_var = m->bn_min_running_var[k];
        if (!(m->bn_max_running_var[k] <= e.bn_max_running_var))
            e.bn_max_running_var = m->bn_max_running_var[k];
    }
    return e;
}

static bool on_epoch(const bnk_epoch_metrics *m, void *user) {
    train_ctx *t = user;
    t->last_value = m->val_accuracy;
    const bnk_trial_epoch diag = epoch_diag(m);
    return t->report(t->user, m->epoch, m->val_accuracy, &diag);
}

static void outcome_failed(bnk__tune_outcome *out, const char *reason) {
    out->state = BNK_TRIAL_FAILED;
    out->value = NAN;
    snprintf(out->reason, sizeof out->reason, "%s", reason);
}

void bnk__tune_trial_train(const tune_job *job, const bnk_point *x, bnk__tune_report_fn report,
                           void *user, bnk__tune_outcome *out) {
    bnk_train_config tc;
    char reason[160] = "";
    memset(out, 0, sizeof *out);
    int rc = bnk__tune_train_config(CTX, job->ntrain, job->train_argv, &job->cfg.space, x,
                                    job->threads_per_worker, &tc, reason, sizeof reason);
    if (rc != BNK_CLI_OK) {
        outcome_failed(out, reason);
        return;
    }
    tc.no_test = true;
    tc.log = NULL;
    train_ctx t = {.report = report, .user = user, .last_value = NAN};
    bnk_train_result res;
    bnk_status st = bnk_train_run(&tc, on_epoch, &t, &res, NULL);
    if (st != BNK_OK) {
        outcome_failed(out, bnk_errmsg());
    } else if (res.diverged) {
        snprintf(reason, sizeof reason, "diverged: NaN/Inf loss at step %lld",
                 (long long)res.diverged_step);
        outcome_failed(out, reason);
    } else if (res.stopped_early) {
        out->state = BNK_TRIAL_PRUNED;
        out->value = t.last_value;
    } else if (isnan(res.val_accuracy)) {
        outcome_failed(out, "no validation accuracy: give the trials --val-size > 0");
    } else {
        out->state = BNK_TRIAL_COMPLETE;
        out->value = res.val_accuracy;
    }
}

typedef struct trial_ctx {
    bnk_study *study;
    int64_t id;
    bnk_status report_status;
} trial_ctx;

static bool report_epoch(void *user, int64_t epoch, double value, const bnk_trial_epoch *diag) {
    trial_ctx *t = user;
    bool prune = false;
    bnk_status st = bnk_study_report_ex(t->study, t->id, epoch, value, diag, &prune);
    if (st != BNK_OK) t->report_status = st;
    return prune || st != BNK_OK;
}

/* Trains point x; tells the study how it went. Returns BNK_OK unless the study itself failed. */
static bnk_status run_trial(const tune_job *job, bnk_study *study, int64_t id, const bnk_point *x) {
    trial_ctx t = {.study = study, .id = id, .report_status = BNK_OK};
    heartbeat hb;
    bool hb_on = heartbeat_start(&hb, job, id);
    bnk__tune_outcome out;
    bnk__tune_trial_train(job, x, report_epoch, &t, &out);
    if (hb_on) heartbeat_stop(&hb);
    if (t.report_status != BNK_OK) return t.report_status;
    return bnk_study_tell(study, id, out.state, out.value,
                          out.state == BNK_TRIAL_FAILED ? out.reason : NULL);
}

/* One progress line after a trial: its outcome, the best so far, counts, elapsed and ETA. */
void bnk__tune_progress(const tune_job *job, bnk_study *study, int64_t id, const char *worker) {
    bnk_trial *trials = NULL;
    int64_t n = 0;
    if (bnk_study_trials(study, &trials, &n) != BNK_OK) return;
    int64_t done = 0, best = -1;
    const bnk_trial *me = NULL;
    for (int64_t i = 0; i < n; i++) {
        const bnk_trial *t = &trials[i];
        if (t->id == id) me = t;
        if (t->state != BNK_TRIAL_RUNNING && strcmp(t->reason, "worker died") != 0) done++;
        if (t->state == BNK_TRIAL_COMPLETE && (best < 0 || t->loss < trials[best].loss)) best = i;
    }
    if (me) {
        const double elapsed = bnk__tune_now() - job->start;
        fprintf(job->log, "[%s] trial %lld %-8s", worker, (long long)me->number,
                bnk_trial_state_str(me->state));
        if (isfinite(me->value)) fprintf(job->log, " %s %.4f", job->cfg.objective, me->value);
        if (me->reason[0]) fprintf(job->log, " (%s)", me->reason);
        if (best >= 0)
            fprintf(job->log, " | best %.4f (trial %lld)", trials[best].value,
                    (long long)trials[best].number);
        fprintf(job->log, " | %lld/%lld done, %.0f s", (long long)done, (long long)job->budget,
                elapsed);
        if (done > 0 && done < job->budget)
            fprintf(job->log, ", ETA %.0f s",
                    elapsed / (double)done * (double)(job->budget - done));
        fprintf(job->log, "\n");
        fflush(job->log);
    }
    bnk_trials_free(trials, n);
}

/* The worker loop; returns a CLI exit status. */
static int worker(const tune_job *job, int index) {
    char name[64];
    char host[32] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d:w%d", host, (int)getpid(), index);
    bnk_study *study = NULL;
    bnk_status st = bnk_study_open(&study, job->path, &job->cfg);
    while (st == BNK_OK) {
        int64_t id;
        bnk_point x;
        if ((st = bnk_study_reap(study, job->stale_seconds, NULL)) != BNK_OK) break;
        if ((st = bnk_study_ask(study, name, job->budget, &id, &x)) != BNK_OK || id < 0) break;
        st = run_trial(job, study, id, &x);
        if (st == BNK_ERR_PARAM) {
            /* the trial was reaped while this worker still ran it (a heartbeat went missing
             * for --stale-seconds): it is recorded as failed and re-issued; carry on */
            fprintf(job->log, "[%s] warning: %s; result dropped\n", name, bnk_errmsg());
            st = BNK_OK;
            continue;
        }
        if (st != BNK_OK) break;
        bnk__tune_progress(job, study, id, name);
    }
    if (st != BNK_OK) bnk__cli_error(CTX, "%s: %s", job->path, bnk_errmsg());
    bnk_study_close(study);
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}

/* Runs the workers: in this process for one, forked processes for more. */
static int run_workers(const tune_job *job, int workers) {
    if (workers == 1) return worker(job, 0);
    fflush(NULL);
    pid_t pids[64];
    int started = 0, rc = BNK_CLI_OK;
    for (int w = 0; w < workers; w++) {
        pid_t pid = fork();
        if (pid == 0) _exit(worker(job, w));
        if (pid < 0) {
            bnk__cli_error(CTX, "cannot start worker %d: %s", w, strerror(errno));
            rc = BNK_CLI_FAIL;
            break;
        }
        pids[started++] = pid;
    }
    for (int w = 0; w < started; w++) {
        int status = 0;
        while (waitpid(pids[w], &status, 0) < 0 && errno == EINTR) continue;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (WIFSIGNALED(status))
                bnk__cli_error(CTX,
                               "worker %d was killed by signal %d; its trial will be "
                               "re-issued when the study is resumed",
                               w, WTERMSIG(status));
            if (rc == BNK_CLI_OK) rc = WIFEXITED(status) ? WEXITSTATUS(status) : BNK_CLI_FAIL;
        }
    }
    return rc;
}

/* ---- The end: best trials and the test accuracy of the best configuration ------------------ */

static int finish(const tune_job *job, bool json) {
    bnk_study *study = NULL;
    bnk_status st = bnk_study_open(&study, job->path, &job->cfg);
    bnk_trial *trials = NULL;
    int64_t n = 0;
    if (st == BNK_OK) st = bnk_study_trials(study, &trials, &n);
    bnk_study_close(study);
    if (st != BNK_OK) {
        bnk__cli_error(CTX, "%s: %s", job->path, bnk_errmsg());
        return bnk__cli_exit_for(st);
    }
    const bnk_trial *best = bnk__tune_print_summary(job->log, &job->cfg, trials, n, 5);
    int rc = BNK_CLI_OK;
    double test_acc = NAN;
    if (best) {
        /* the test set is used exactly once: for the winner, retrained with the same seed */
        bnk_train_config tc;
        char reason[160];
        rc = bnk__tune_train_config(CTX, job->ntrain, job->train_argv, &job->cfg.space, &best->x, 0,
                                    &tc, reason, sizeof reason);
        bnk_train_result res;
        if (rc == BNK_CLI_OK) {
            st = bnk_train_run(&tc, NULL, NULL, &res, NULL);
            if (st == BNK_OK) {
                test_acc = res.test_accuracy;
                if (isfinite(test_acc))
                    fprintf(job->log, "test accuracy of the best configuration: %.4f\n", test_acc);
            } else {
                bnk__cli_error(CTX, "retraining the best configuration: %s", bnk_errmsg());
                rc = bnk__cli_exit_for(st);
            }
        }
    }
    if (json) bnk__tune_print_json_summary(stdout, &job->cfg, trials, n, best, test_acc);
    bnk_trials_free(trials, n);
    return rc;
}

static void print_help(const bnk_cli_optgroup *g) {
    printf("usage: bnkit tune --study FILE [options] [-- <bnkit train options>]\n\n"
           "Searches BN (and any other `bnkit train`) hyperparameters to maximise validation\n"
           "accuracy. Options after `--` are passed to every trial (e.g. -- --epochs 5).\n"
           "Re-running the same command resumes the study; several processes may share it.\n\n"
           "options:\n");
    bnk__cli_print_opts(stdout, g);
}

int bnk__cmd_tune(int argc, char **argv) {
    const char *vals[N_TUNE_OPTS], *train_args[MAX_TRAIN_ARGS];
    bnk_cli_optgroup group = {"", tune_opts, N_TUNE_OPTS, vals};
    int ntrain = 0;
    int rc = bnk__cli_parse(CTX, argc, argv, &group, 1, train_args, MAX_TRAIN_ARGS, &ntrain);
    if (rc != BNK_CLI_OK) return rc;
    if (bnk__cli_value(&group, "help")) {
        print_help(&group);
        return BNK_CLI_OK;
    }
    tune_job job = {.log = bnk__cli_value(&group, "json") ? stderr : stdout,
                    .start = bnk__tune_now()};
    job.path = bnk__cli_value(&group, "study");
    if (!job.path) {
        bnk__cli_error(CTX, "--study FILE is required");
        return BNK_CLI_USAGE;
    }
    int64_t workers = 1, trials = 30;
    double stale = 60;
    const char *v;
    if ((v = bnk__cli_value(&group, "trials")) &&
        (rc = bnk__cli_parse_int64(CTX, "--trials", v, &trials)) != BNK_CLI_OK)
        return rc;
    if ((v = bnk__cli_value(&group, "workers")) &&
        (rc = bnk__cli_parse_int64(CTX, "--workers", v, &workers)) != BNK_CLI_OK)
        return rc;
    if ((v = bnk__cli_value(&group, "stale-seconds")) &&
        (rc = bnk__cli_parse_double(CTX, "--stale-seconds", v, &stale)) != BNK_CLI_OK)
        return rc;
    if (trials < 1 || workers < 1 || workers > 64 || !(stale > 0)) {
        bnk__cli_error(CTX, "--trials must be >= 1, --workers in [1, 64], --stale-seconds > 0");
        return BNK_CLI_USAGE;
    }
    job.budget = trials;
    job.stale_seconds = stale;
    if ((rc = bnk__tune_study_config(CTX, argc, argv, &group, ntrain, train_args, &job.cfg)) !=
        BNK_CLI_OK)
        return rc;
    job.ntrain = ntrain;
    job.train_argv = (char **)train_args;
#ifdef BNKIT_HAVE_MPI
    if (bnk__tune_mpi_enabled()) {
        /* launched by mpirun/srun on several ranks: rank 0 owns the study, every rank runs
         * trials (cmd_tune_mpi.c); only rank 0 prints the summary */
        bool root = false;
        rc = bnk__tune_mpi_run(&job, workers, &root);
        if (rc != BNK_CLI_OK || !root) return rc;
        return finish(&job, bnk__cli_value(&group, "json") != NULL);
    }
#endif
    /* share the cores between workers unless the trials say --threads themselves */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (workers > 1) job.threads_per_worker = cores > workers ? (int)(cores / workers) : 1;
    char pruner[32];
    bnk_pruner_describe(&job.cfg.pruner, pruner, sizeof pruner);
    fprintf(job.log, "study %s '%s': %s sampler, %s pruner, budget %lld trials, %lld worker%s\n",
            job.path, job.cfg.name, bnk_sampler_kind_str(job.cfg.sampler.kind), pruner,
            (long long)trials, (long long)workers, workers > 1 ? "s" : "");
    rc = run_workers(&job, (int)workers);
    if (rc != BNK_CLI_OK) return rc;
    return finish(&job, bnk__cli_value(&group, "json") != NULL);
}
