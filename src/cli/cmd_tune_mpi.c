/* `mpirun -np K bnkit tune ...`: distributed tuning. Rank 0 owns the study file (SQLite) and
 * the sampler; every rank, 0 included, runs one trial at a time in a forked child process, so K
 * ranks run K trials concurrently. The other ranks never open the study file: only rank 0's
 * host needs it.
 *
 * Protocol (one fixed-size message, tune_msg, tag TAG_REQ to rank 0 and TAG_REPLY back):
 *   ASK                      -> TRIAL (id, point) or DONE (budget used up / grid exhausted)
 *   REPORT (id, step, value, diag) -> PRUNE (0 go on, 1 prune, 2 stop: the trial is no longer
 *                               running); diag: the trainer's diagnostics of the epoch
 *                               (bnk_trial_epoch, stored by bnk_study_report_ex) when has_diag
 *   HEARTBEAT (id)              every 5 s (or --stale-seconds / 4) while a trial runs; no reply
 *   TELL (id, state, value, reason, detail)                      no reply
 * Rank 0 serves these between polls of its own trial child's pipe (MPI_Iprobe; MPI calls stay
 * on the main thread) and, once its own share is done, until every rank has been told DONE.
 *
 * The trial child trains and talks to its parent rank over two pipes (the same tune_msg up, one
 * answer byte down); it never calls MPI nor touches the study. A child killed by a signal from
 * outside (SIGKILL, SIGTERM, ..., e.g. the OOM killer) becomes FAILED "worker died", which the
 * study re-issues; a child that crashes by itself (SIGSEGV, SIGABRT, ...) or exits without a
 * result becomes FAILED with that reason and counts against the budget. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "bnkit/mpi.h"
#include "cli/cli.h"
#include "cli/tune_mpi.h"
#include "core/internal.h"

static const char *const CTX = "tune";

enum { TAG_REQ = 7301, TAG_REPLY = 7302 };
enum { HEARTBEAT_SECONDS = 5, ROOT_POLL_MS = 10, WORKER_POLL_MS = 1000 };

/* Seconds between heartbeats of a running trial: 5, or a quarter of --stale-seconds when that
 * is shorter, so that a short --stale-seconds never reaps a live trial. */
static double heartbeat_interval(const bnk__tune_job *job) {
    const double q = job->stale_seconds / 4;
    return q < HEARTBEAT_SECONDS ? q : HEARTBEAT_SECONDS;
}

typedef enum msg_kind {
    MSG_ASK,
    MSG_REPORT,
    MSG_HEARTBEAT,
    MSG_TELL,
    MSG_TRIAL,
    MSG_DONE,
    MSG_PRUNE
} msg_kind;

enum { ANSWER_GO_ON = 0, ANSWER_PRUNE = 1, ANSWER_STOP = 2 };

/* Sent as MPI_BYTE: every rank runs the same bnkit build. Also the child -> parent pipe
 * message (smaller than PIPE_BUF, so a write is atomic). */
typedef struct tune_msg {
    int32_t kind;  /* msg_kind                                                        */
    int32_t state; /* TELL: bnk_trial_state; PRUNE: ANSWER_*                           */
    int64_t id;    /* the trial                                                       */
    int64_t step;  /* REPORT: 1-based epoch                                           */
    double value;  /* REPORT, TELL                                                    */
    double x[BNK_SPACE_MAX_PARAMS]; /* TRIAL: the point                                */
    char reason[160];               /* TELL: the failure reason stored in the study   */
    char detail[96];                /* TELL: what became of the trial process (log)    */
    int32_t has_diag;               /* REPORT: diag is filled in                       */
    bnk_trial_epoch diag;           /* REPORT: the trainer's diagnostics of the epoch  */
} tune_msg;

/* The child writes one tune_msg per write(2): atomic only up to PIPE_BUF bytes. */
#ifdef PIPE_BUF
_Static_assert(sizeof(tune_msg) <= PIPE_BUF, "tune_msg must fit in one atomic pipe write");
#endif

typedef struct tuner {
    bnk__tune_job *job;
    int rank, size;
    bnk_study *study;  /* rank 0 only                                  */
    int remote_active; /* rank 0: ranks not yet answered DONE           */
} tuner;

/* ---- MPI messages ---------------------------------------------------------------------------- */

static void msg_init(tune_msg *m, msg_kind kind, int64_t id) {
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->id = id;
}

static bnk_status send_msg(const tune_msg *m, int dest, int tag) {
    if (MPI_Send(m, (int)sizeof *m, MPI_BYTE, dest, tag, MPI_COMM_WORLD) != MPI_SUCCESS)
        return bnk__fail(BNK_ERR_IO, "MPI_Send to rank %d failed", dest);
    return BNK_OK;
}

static bnk_status recv_reply(tune_msg *m) {
    if (MPI_Recv(m, (int)sizeof *m, MPI_BYTE, 0, TAG_REPLY, MPI_COMM_WORLD, MPI_STATUS_IGNORE) !=
        MPI_SUCCESS)
        return bnk__fail(BNK_ERR_IO, "MPI_Recv from rank 0 failed");
    return BNK_OK;
}

/* ---- Rank 0: the study ----------------------------------------------------------------------- */

static bnk_status root_ask(tuner *t, int src, int64_t *id, bnk_point *x) {
    char worker[32];
    snprintf(worker, sizeof worker, "rank-%d", src);
    bnk_status st = bnk_study_reap(t->study, t->job->stale_seconds, NULL);
    if (st == BNK_OK) st = bnk_study_ask(t->study, worker, t->job->budget, id, x);
    return st;
}

/* PRUNE answer for a report; a trial that is no longer running (reaped) is told to stop. */
static bnk_status root_report(tuner *t, const tune_msg *m, int *answer) {
    bool prune = false;
    bnk_status st = bnk_study_report_ex(t->study, m->id, m->step, m->value,
                                        m->has_diag ? &m->diag : NULL, &prune);
    *answer = prune ? ANSWER_PRUNE : ANSWER_GO_ON;
    if (st == BNK_ERR_PARAM) {
        *answer = ANSWER_STOP;
        return BNK_OK;
    }
    return st;
}

static bnk_status root_tell(tuner *t, int src, const tune_msg *m) {
    char worker[32];
    snprintf(worker, sizeof worker, "rank-%d", src);
    const bnk__tune_job *job = t->job;
    bnk_status st = bnk_study_tell(t->study, m->id, (bnk_trial_state)m->state, m->value,
                                   m->state == BNK_TRIAL_FAILED ? m->reason : NULL);
    if (st == BNK_ERR_PARAM) {
        /* reaped while it ran (no heartbeat for --stale-seconds): failed and re-issued */
        fprintf(job->log, "[%s] warning: %s; result dropped\n", worker, bnk_errmsg());
        fflush(job->log);
        return BNK_OK;
    }
    if (st != BNK_OK) return st;
    bnk__tune_progress(job, t->study, m->id, worker);
    if (m->detail[0]) {
        fprintf(job->log, "[%s]   %s\n", worker, m->detail);
        fflush(job->log);
    }
    return BNK_OK;
}

/* Answers every request waiting in the queue. */
static bnk_status serve(tuner *t) {
    for (;;) {
        int flag = 0;
        MPI_Status ms;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQ, MPI_COMM_WORLD, &flag, &ms) != MPI_SUCCESS)
            return bnk__fail(BNK_ERR_IO, "MPI_Iprobe failed");
        if (!flag) return BNK_OK;
        tune_msg m, r;
        const int src = ms.MPI_SOURCE;
        if (MPI_Recv(&m, (int)sizeof m, MPI_BYTE, src, TAG_REQ, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return bnk__fail(BNK_ERR_IO, "MPI_Recv from rank %d failed", src);
        bnk_status st = BNK_OK;
        switch ((msg_kind)m.kind) {
        case MSG_ASK: {
            int64_t id = -1;
            bnk_point x;
            if ((st = root_ask(t, src, &id, &x)) != BNK_OK) return st;
            msg_init(&r, id < 0 ? MSG_DONE : MSG_TRIAL, id);
            if (id >= 0)
                memcpy(r.x, x.v, sizeof r.x);
            else
                t->remote_active--;
            st = send_msg(&r, src, TAG_REPLY);
            break;
        }
        case MSG_REPORT: {
            int answer;
            if ((st = root_report(t, &m, &answer)) != BNK_OK) return st;
            msg_init(&r, MSG_PRUNE, m.id);
            r.state = answer;
            st = send_msg(&r, src, TAG_REPLY);
            break;
        }
        case MSG_HEARTBEAT:
            st = bnk_study_heartbeat(t->study, m.id);
            if (st == BNK_ERR_PARAM) st = BNK_OK; /* reaped: its REPORT/TELL will say so */
            break;
        case MSG_TELL:
            st = root_tell(t, src, &m);
            break;
        default:
            st = bnk__fail(BNK_ERR_FORMAT, "unknown message %d from rank %d", (int)m.kind, src);
        }
        if (st != BNK_OK) return st;
    }
}

/* ---- Every rank: the study as seen from here ------------------------------------------------- */

static bnk_status do_ask(tuner *t, int64_t *id, bnk_point *x) {
    if (t->rank == 0) return root_ask(t, 0, id, x);
    tune_msg m;
    msg_init(&m, MSG_ASK, -1);
    bnk_status st = send_msg(&m, 0, TAG_REQ);
    if (st == BNK_OK) st = recv_reply(&m);
    if (st != BNK_OK) return st;
    *id = m.kind == MSG_TRIAL ? m.id : -1;
    memcpy(x->v, m.x, sizeof x->v);
    return BNK_OK;
}

static bnk_status do_report(tuner *t, const tune_msg *m, int *answer) {
    if (t->rank == 0) return root_report(t, m, answer);
    tune_msg r;
    bnk_status st = send_msg(m, 0, TAG_REQ);
    if (st == BNK_OK) st = recv_reply(&r);
    *answer = st == BNK_OK ? r.state : ANSWER_STOP;
    return st;
}

static bnk_status do_heartbeat(tuner *t, int64_t id) {
    if (t->rank == 0) {
        bnk_status st = bnk_study_heartbeat(t->study, id);
        return st == BNK_ERR_PARAM ? BNK_OK : st;
    }
    tune_msg m;
    msg_init(&m, MSG_HEARTBEAT, id);
    return send_msg(&m, 0, TAG_REQ);
}

static bnk_status do_tell(tuner *t, const tune_msg *m) {
    if (t->rank == 0) return root_tell(t, 0, m);
    return send_msg(m, 0, TAG_REQ);
}

/* ---- The trial child ------------------------------------------------------------------------- */

typedef struct child_ctx {
    int up, down; /* pipe ends: to the parent, from the parent */
    int64_t id;
} child_ctx;

static bool child_report(void *user, int64_t epoch, double value, const bnk_trial_epoch *diag) {
    const child_ctx *c = user;
    tune_msg m;
    msg_init(&m, MSG_REPORT, c->id);
    m.step = epoch;
    m.value = value;
    if (diag) {
        m.has_diag = 1;
        m.diag = *diag;
    }
    unsigned char answer = ANSWER_STOP;
    if (bnk__write_all(c->up, &m, sizeof m) != 0 || bnk__read_full(c->down, &answer, 1) != 1)
        _exit(BNK_CLI_FAIL); /* the parent is gone */
    return answer != ANSWER_GO_ON;
}

static void child_main(const bnk__tune_job *job, int64_t id, const bnk_point *x, int up, int down,
                       pid_t parent) {
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* do not train on for a rank that was killed */
#endif
    if (getppid() != parent) _exit(BNK_CLI_FAIL);
    signal(SIGPIPE, SIG_DFL);
    child_ctx c = {.up = up, .down = down, .id = id};
    bnk__tune_outcome out;
    bnk__tune_trial_train(job, x, child_report, &c, &out);
    tune_msg m;
    msg_init(&m, MSG_TELL, id);
    m.state = (int32_t)out.state;
    m.value = out.value;
    snprintf(m.reason, sizeof m.reason, "%s", out.reason);
    _exit(bnk__write_all(up, &m, sizeof m) == 0 ? BNK_CLI_OK : BNK_CLI_FAIL);
}

/* The TELL for a child that ended without one. */
static void child_death(tune_msg *m, int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const bool crash = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL ||
                           sig == SIGABRT || sig == SIGSYS;
        if (crash) {
            snprintf(m->reason, sizeof m->reason, "trial process crashed: signal %d (%s)", sig,
                     strsignal(sig));
        } else {
            /* killed from outside: the budget is re-issued (the study's reaping reason) */
            snprintf(m->reason, sizeof m->reason, "worker died");
            snprintf(m->detail, sizeof m->detail,
                     "trial process killed by signal %d (%s); the trial is re-issued", sig,
                     strsignal(sig));
        }
    } else {
        snprintf(m->reason, sizeof m->reason, "trial process exited with status %d and no result",
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
}

/* Runs trial id at x in a child process and tells the study how it ended. Rank 0 serves the
 * other ranks meanwhile. Returns BNK_OK unless the study or MPI failed. */
static bnk_status run_trial(tuner *t, int64_t id, const bnk_point *x) {
    int up[2], down[2];
    if (pipe(up) != 0) return bnk__fail(BNK_ERR_IO, "pipe: %s", strerror(errno));
    if (pipe(down) != 0) {
        close(up[0]);
        close(up[1]);
        return bnk__fail(BNK_ERR_IO, "pipe: %s", strerror(errno));
    }
    fflush(NULL);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
        close(up[0]);
        close(down[1]);
        child_main(t->job, id, x, up[1], down[0], parent);
    }
    close(up[1]);
    close(down[0]);
    if (pid < 0) {
        close(up[0]);
        close(down[1]);
        return bnk__fail(BNK_ERR_IO, "cannot start a trial process: %s", strerror(errno));
    }
    tune_msg told;
    bool have_told = false;
    bnk_status st = BNK_OK;
    double last_hb = bnk__tune_now();
    const double hb_every = heartbeat_interval(t->job);
    int wait_ms = t->rank == 0 ? ROOT_POLL_MS : WORKER_POLL_MS;
    if (wait_ms > 1000 * hb_every) wait_ms = (int)(1000 * hb_every) + 1;
    while (st == BNK_OK) {
        struct pollfd p = {.fd = up[0], .events = POLLIN};
        int n = poll(&p, 1, wait_ms);
        if (n < 0 && errno != EINTR) {
            st = bnk__fail(BNK_ERR_IO, "poll: %s", strerror(errno));
            break;
        }
        if (n > 0) {
            tune_msg m;
            if (bnk__read_full(up[0], &m, sizeof m) != (ssize_t)sizeof m)
                break; /* EOF: the child ended */
            if (m.kind == MSG_REPORT) {
                int answer = ANSWER_STOP;
                st = do_report(t, &m, &answer);
                unsigned char a = (unsigned char)answer;
                (void)bnk__write_all(down[1], &a, 1); /* a child that died meanwhile: EOF next */
            } else if (m.kind == MSG_TELL) {
                told = m;
                have_told = true;
            }
        }
        if (st == BNK_OK && t->rank == 0) st = serve(t);
        if (st == BNK_OK && bnk__tune_now() - last_hb >= hb_every) {
            st = do_heartbeat(t, id);
            last_hb = bnk__tune_now();
        }
    }
    close(up[0]);
    close(down[1]);
    if (st != BNK_OK) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
    if (st != BNK_OK) return st;
    if (!have_told) {
        msg_init(&told, MSG_TELL, id);
        told.state = BNK_TRIAL_FAILED;
        told.value = NAN;
        child_death(&told, status);
    }
    return do_tell(t, &told);
}

/* ---- The loops ------------------------------------------------------------------------------- */

static bnk_status root_loop(tuner *t) {
    bool local_done = false;
    bnk_status st = BNK_OK;
    while (st == BNK_OK && (!local_done || t->remote_active > 0)) {
        if (!local_done) {
            int64_t id = -1;
            bnk_point x;
            if ((st = root_ask(t, 0, &id, &x)) != BNK_OK) break;
            if (id < 0)
                local_done = true;
            else
                st = run_trial(t, id, &x);
            continue;
        }
        st = serve(t);
        if (st == BNK_OK) poll(NULL, 0, ROOT_POLL_MS);
    }
    return st;
}

static bnk_status worker_loop(tuner *t) {
    for (;;) {
        int64_t id = -1;
        bnk_point x;
        bnk_status st = do_ask(t, &id, &x);
        if (st != BNK_OK || id < 0) return st;
        if ((st = run_trial(t, id, &x)) != BNK_OK) return st;
    }
}

bool bnk__tune_mpi_enabled(void) {
    int size = 1;
    if (!bnk_mpi_active()) return false;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size > 1;
}

/* Ranks on this node, to share its cores between their trials. */
static int local_ranks(void) {
    MPI_Comm node;
    int n = 1;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) !=
        MPI_SUCCESS)
        return 1;
    MPI_Comm_size(node, &n);
    MPI_Comm_free(&node);
    return n;
}

int bnk__tune_mpi_run(bnk__tune_job *job, int64_t workers, bool *root) {
    tuner t = {.job = job};
    MPI_Comm_rank(MPI_COMM_WORLD, &t.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &t.size);
    *root = t.rank == 0;
    if (workers != 1) {
        /* every rank refuses; rank 0 says why and alone fails (main() then aborts the job with
         * its status): one error line instead of one per rank */
        if (t.rank == 0)
            bnk__cli_error(CTX, "--workers cannot be combined with mpirun/srun: every MPI rank "
                                "runs one trial at a time; use -np N for N concurrent trials");
        fflush(stderr);
        MPI_Barrier(MPI_COMM_WORLD);
        return t.rank == 0 ? BNK_CLI_USAGE : BNK_CLI_OK;
    }
    /* share each node's cores between its ranks unless the trials say --threads themselves */
    const int nlocal = local_ranks();
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (nlocal > 1) job->threads_per_worker = cores > nlocal ? (int)(cores / nlocal) : 1;
    signal(SIGPIPE, SIG_IGN); /* a trial child that died: EPIPE, not the end of the rank */

    /* rank 0 opens the study (checking its configuration); everybody learns how it went */
    int rc = BNK_CLI_OK;
    if (t.rank == 0) {
        bnk_status st = bnk_study_open(&t.study, job->path, &job->cfg);
        if (st != BNK_OK) {
            bnk__cli_error(CTX, "%s: %s", job->path, bnk_errmsg());
            rc = bnk__cli_exit_for(st);
        }
        fflush(stderr);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rc != BNK_CLI_OK) return t.rank == 0 ? rc : BNK_CLI_OK;

    bnk_status st;
    if (t.rank == 0) {
        char pruner[32];
        bnk_pruner_describe(&job->cfg.pruner, pruner, sizeof pruner);
        fprintf(job->log,
                "study %s '%s': %s sampler, %s pruner, budget %lld trials, %d MPI ranks "
                "(one trial each)\n",
                job->path, job->cfg.name, bnk_sampler_kind_str(job->cfg.sampler.kind), pruner,
                (long long)job->budget, t.size);
        fflush(job->log);
        t.remote_active = t.size - 1;
        st = root_loop(&t);
        if (st != BNK_OK) bnk__cli_error(CTX, "%s: %s", job->path, bnk_errmsg());
        bnk_study_close(t.study);
    } else {
        st = worker_loop(&t);
        if (st != BNK_OK) bnk__cli_error(CTX, "rank %d: %s", t.rank, bnk_errmsg());
    }
    return st == BNK_OK ? BNK_CLI_OK : bnk__cli_exit_for(st);
}
