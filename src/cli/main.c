/* bnkit — the command-line tool: `bnkit <command> [options]`.
 *
 * Adding a command: write `int bnk__cmd_<name>(int argc, char **argv)` in cmd_<name>.c, declare
 * it in cli.h, add one row to the table below and the file to bnkit_cli in CMakeLists.txt. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#ifdef BNKIT_HAVE_MPI
#include "bnkit/mpi.h"
#endif

typedef struct bnk_cli_command {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *summary;
} bnk_cli_command;

static const bnk_cli_command commands[] = {
    {"bn", bnk__cmd_bn, "one BN forward (and backward) on .npy files"},
    {"demo", bnk__cmd_demo, "a short demonstration of the BN layer"},
    {"train", bnk__cmd_train, "train a model with BN on a data set"},
    {"tune", bnk__cmd_tune, "search BN hyperparameters (resumable SQLite study, workers)"},
    {"ask", bnk__cmd_ask, "start a trial of a study from your own training loop (JSON)"},
    {"tell", bnk__cmd_tell, "report a trial's result or intermediate value"},
    {"trials", bnk__cmd_trials, "list the trials of a study"},
    {"best", bnk__cmd_best, "print the best trial of a study"},
    {"eval", bnk__cmd_eval, "loss and accuracy of a checkpoint (bnkit train --save)"},
    {"export", bnk__cmd_export, "write an inference checkpoint with BN folded (--fold-bn)"},
    {"report", bnk__cmd_report, "HTML report of a study (charts, importance); CSV/JSON export"},
    {"bench", bnk__cmd_bench, "kernel benchmarks: bnkit bench bn (BN forward/backward)"},
};

static void print_usage(FILE *f) {
    fprintf(f, "usage: bnkit <command> [options]\n"
               "       bnkit <command> --help\n"
               "       bnkit --version\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nExit status: 0 ok, 1 runtime failure (I/O, corrupt file, memory), "
               "2 usage error.\n");
}

static const bnk_cli_command *find_command(const char *name) {
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Output that could not be written (a full disk, a closed pipe) is a runtime failure. */
static int finish(const char *ctx, int rc) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        bnk__cli_error(ctx, "cannot write standard output: %s", strerror(errno));
        return BNK_CLI_FAIL;
    }
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        bnk__cli_error(NULL, "missing command (see 'bnkit --help')");
        return BNK_CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        if (strcmp(cmd, "help") == 0 && argc > 2) {
            const bnk_cli_command *c = find_command(argv[2]);
            if (!c) {
                bnk__cli_error(NULL, "%s: unknown command (see 'bnkit --help')", argv[2]);
                return BNK_CLI_USAGE;
            }
            char *sub[] = {argv[2], "--help", NULL};
            return finish(c->name, c->run(2, sub));
        }
        print_usage(stdout);
        return finish("help", BNK_CLI_OK);
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("bnkit %s\n", BNK_CLI_VERSION);
        return finish("version", BNK_CLI_OK);
    }
    if (cmd[0] == '-') {
        bnk__cli_error(NULL, "unknown option %s (see 'bnkit --help')", cmd);
        return BNK_CLI_USAGE;
    }
    const bnk_cli_command *c = find_command(cmd);
    if (!c) {
        bnk__cli_error(NULL, "%s: unknown command (see 'bnkit --help')", cmd);
        return BNK_CLI_USAGE;
    }
#ifdef BNKIT_HAVE_MPI
    /* Under mpirun/srun every rank runs the command; the commands that distribute (train,
     * tune) look at bnk_mpi_active(). A rank that fails aborts the job so that the others do
     * not wait for it forever in a collective call. */
    if (bnk_mpi_launched()) {
        if (bnk_mpi_init(&argc, &argv) != BNK_OK) {
            bnk__cli_error(cmd, "%s", bnk_errmsg());
            return BNK_CLI_FAIL;
        }
        int rc = finish(c->name, c->run(argc - 1, argv + 1));
        if (rc != BNK_CLI_OK) MPI_Abort(MPI_COMM_WORLD, rc);
        bnk_mpi_finalize();
        return rc;
    }
#endif
    return finish(c->name, c->run(argc - 1, argv + 1));
}
