/* What `bnkit tune` (cmd_tune.c) shares with its MPI driver (cmd_tune_mpi.c): the job, training
 * one trial, the progress line. Internal to the CLI.
 *
 * Under mpirun/srun with more than one rank, rank 0 owns the study file and the sampler and
 * every rank (0 included) runs one trial at a time in a forked child process; the other ranks
 * ask, report and tell over MPI and never open the study file. */
#ifndef BNKIT_CLI_TUNE_MPI_H
#define BNKIT_CLI_TUNE_MPI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bnkit/tune.h"

/* Everything a worker needs, fixed before any fork. */
typedef struct bnk__tune_job {
    const char *path;
    bnk_study_config cfg;
    int64_t budget;
    double stale_seconds;
    int threads_per_worker; /* 0: leave --threads / OpenMP's default alone */
    int ntrain;
    char **train_argv; /* fixed training options */
    FILE *log;
    double start;
} bnk__tune_job;

/* How a trial ended, for bnk_study_tell. */
typedef struct bnk__tune_outcome {
    bnk_trial_state state; /* COMPLETE, PRUNED or FAILED                           */
    double value;          /* the objective (last reported one when PRUNED); NaN   */
    char reason[160];      /* FAILED: why                                          */
} bnk__tune_outcome;

/* Called after every epoch with the validation accuracy and the trainer's diagnostics of the
 * epoch (diag->step == epoch); returns true to stop the trial. */
typedef bool (*bnk__tune_report_fn)(void *user, int64_t epoch, double value,
                                    const bnk_trial_epoch *diag);

/* Trains point x with the job's fixed options (no test set, no log), calling report after each
 * epoch, and says how the trial ended. Prints nothing. */
void bnk__tune_trial_train(const bnk__tune_job *job, const bnk_point *x, bnk__tune_report_fn report,
                           void *user, bnk__tune_outcome *out);

/* One progress line on job->log after trial `id` finished (its outcome, best so far, counts,
 * elapsed, ETA). */
void bnk__tune_progress(const bnk__tune_job *job, bnk_study *study, int64_t id, const char *worker);

/* Unix time in seconds. */
double bnk__tune_now(void);

#ifdef BNKIT_HAVE_MPI
/* True when launched by an MPI launcher with more than one rank: the distributed path. */
bool bnk__tune_mpi_enabled(void);

/* Runs the study over all ranks; returns a CLI exit status. An error that every rank sees (a
 * refused --workers, a study file rank 0 cannot open) is printed and returned by rank 0 alone;
 * the others return BNK_CLI_OK without running anything (and *root false), and rank 0's
 * failure aborts the job. *root is set on rank 0, which then prints the summary.
 * workers: the --workers value (anything but 1 is refused under MPI). */
int bnk__tune_mpi_run(bnk__tune_job *job, int64_t workers, bool *root);
#endif

#endif /* BNKIT_CLI_TUNE_MPI_H */
