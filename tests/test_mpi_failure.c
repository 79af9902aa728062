/* How mpirun -np 2 clcnn train fails: every rank ends, soon, with a clear
 * message, whatever goes wrong on one rank.
 * - Rank 1 cannot open its device (CLCNN_DEVICE names one that is not
 *   there): it says so and every rank ends, with a failure status.
 * - Rank 1 has another learning rate, or another training set, than rank 0:
 *   the start-up comparison names it, nobody trains, no model is written.
 * - Rank 1 is killed with SIGKILL in the middle of training: the job ends
 *   within 30 s with a message, and the last checkpoint, written by rank 0
 *   alone after the epoch before, still loads. */
#include "mpitest.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define DEADLINE_SECONDS 30.0

static const char *mpiexec;
static char net_path[1200];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* "ENVIRONMENT clcnn --device DEVICE train NET --data ... OPTIONS" for one rank. */
static void rank_command(char *out, size_t size, const char *environment, const char *device,
                         const char *options) {
    snprintf(out, size,
             "%s %s --device %s train %s --data %s --limit 256 --test-limit 64 --epochs 1 "
             "--batch 16 %s",
             environment, clcnn_bin(), device, net_path, mpi_fashion_dir, options);
}

/* Rank 0 on the reference device, rank 1 on device1 with other environment
 * variables and options. */
static int run_two(const char *model, const char *environment1, const char *device1,
                   const char *options1, char *output, size_t size, double *seconds) {
    static char prefix[1400], rank0[4000], rank1[4000], command[10000], save[1400], options[2000];
    mpi_prefix(prefix, sizeof(prefix), mpiexec, 1);
    snprintf(save, sizeof(save), "--save %s", test_path(model));
    rank_command(rank0, sizeof(rank0), "", "reference", save);
    snprintf(options, sizeof(options), "%s %s", save, options1);
    rank_command(rank1, sizeof(rank1), environment1, device1, options);
    snprintf(command, sizeof(command), "%s %s : -np 1 %s", prefix, rank0, rank1);
    const double start = now();
    const int status = run_command(command, output, size);
    *seconds = now() - start;
    return status;
}

static void check_device_failure(void) {
    static char output[65536];
    double seconds = 0.0;
    const int status = run_two("device.model", "env CLCNN_DEVICE=0:9", "opencl", "", output,
                               sizeof(output), &seconds);
    printf("rank 1 without a device: exit %d after %.1f s\n", status, seconds);
    if (!CHECK(status != 0 && strstr(output, "rank 1 of 2") &&
               strstr(output, "rank 1 of 2 failed: stopping every rank")))
        printf("%s\n", output);
    CHECK(seconds < DEADLINE_SECONDS);
    CHECK(access(test_path("device.model"), F_OK) != 0);
}

static void check_mismatch(const char *options1, const char *expected) {
    static char output[65536];
    double seconds = 0.0;
    const int status =
        run_two("mismatch.model", "", "reference", options1, output, sizeof(output), &seconds);
    printf("rank 1 with %s: exit %d after %.1f s\n", options1, status, seconds);
    if (!CHECK(status != 0 && strstr(output, expected) != NULL))
        printf("expected '%s' in:\n%s\n", expected, output);
    CHECK(seconds < DEADLINE_SECONDS);
    CHECK(strstr(output, "epoch 1/1") == NULL);
    CHECK(access(test_path("mismatch.model"), F_OK) != 0);
}

/* The process whose parent is `parent` and whose environment says it is rank `rank`, or -1. */
static pid_t find_rank(pid_t parent, int rank) {
    DIR *proc = opendir("/proc");
    if (!proc)
        return -1;
    char wanted[64];
    snprintf(wanted, sizeof(wanted), "OMPI_COMM_WORLD_RANK=%d", rank);
    pid_t found = -1;
    for (struct dirent *e; found < 0 && (e = readdir(proc)) != NULL;) {
        const pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[300], stat[1024];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof(stat) - 1, f);
        fclose(f);
        stat[n] = 0;
        /* pid (comm) state ppid ...: comm may hold spaces, so start after its ')'. */
        const char *close = strrchr(stat, ')');
        int ppid = -1;
        if (!close || sscanf(close + 1, " %*c %d", &ppid) != 1 || ppid != parent)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
        f = fopen(path, "r");
        if (!f)
            continue;
        static char environment[1 << 16];
        n = fread(environment, 1, sizeof(environment) - 1, f);
        fclose(f);
        for (size_t at = 0; at < n; at += strlen(environment + at) + 1)
            if (strcmp(environment + at, wanted) == 0)
                found = pid;
    }
    closedir(proc);
    return found;
}

static void check_killed_rank(void) {
    static char prefix[1400], rank_part[4000], command[10000], save[1400], log[1300];
    mpi_prefix(prefix, sizeof(prefix), mpiexec, 2);
    snprintf(save, sizeof(save), "--save %s --epochs 4", test_path("killed.model"));
    rank_command(rank_part, sizeof(rank_part), "", "reference", save);
    /* 1024 images an epoch instead of 256 (a later --limit wins). */
    snprintf(log, sizeof(log), "%s", test_path("killed.log"));
    snprintf(command, sizeof(command), "exec %s %s --limit 1024 > %s 2>&1", prefix, rank_part, log);
    const pid_t mpirun = fork();
    if (mpirun == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
    }
    if (!CHECK(mpirun > 0))
        return;
    /* The first checkpoint: epoch 1 is over and epoch 2 is under way. */
    const double start = now();
    int status = 0, ended = 0;
    while (access(test_path("killed.model"), F_OK) != 0 && now() - start < 300.0 && !ended)
        if (waitpid(mpirun, &status, WNOHANG) == mpirun)
            ended = 1;
        else
            usleep(50000);
    if (!CHECK(!ended && access(test_path("killed.model"), F_OK) == 0)) {
        printf("no checkpoint to start from\n");
        if (!ended) {
            kill(-mpirun, SIGKILL);
            waitpid(mpirun, &status, 0);
        }
        return;
    }
    usleep(300000);
    const pid_t victim = find_rank(mpirun, 1);
    CHECK(victim > 0);
    const double killed = now();
    if (victim > 0)
        kill(victim, SIGKILL);
    while (!ended && now() - killed < DEADLINE_SECONDS + 30.0) {
        if (waitpid(mpirun, &status, WNOHANG) == mpirun)
            ended = 1;
        else
            usleep(50000);
    }
    const double seconds = now() - killed;
    if (!ended) {
        kill(-mpirun, SIGKILL);
        waitpid(mpirun, &status, 0);
    }
    static char output[65536];
    char cat[1400];
    snprintf(cat, sizeof(cat), "cat %s", log);
    run_command(cat, output, sizeof(output));
    printf("rank 1 killed with SIGKILL in epoch 2: the job ended after %.1f s, status %d\n",
           seconds, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK(ended && seconds < DEADLINE_SECONDS);
    CHECK(!WIFEXITED(status) || WEXITSTATUS(status) != 0);
    /* mpirun names the rank and the signal. */
    if (!CHECK(strstr(output, "rank 1") && strstr(output, "signal 9")))
        printf("%s\n", output);
    CHECK(strstr(output, "epoch 4/4:") == NULL);
    model_tensors model;
    CHECK(read_model(test_path("killed.model"), &model));
    free_model(&model);
}

int main(void) {
    mpiexec = mpi_launcher();
    if (!mpiexec)
        return MPI_TEST_SKIPPED;
    const char *source = getenv("CLCNN_SOURCE_DIR");
    snprintf(net_path, sizeof(net_path), "%s/examples/lenet5.net", source ? source : ".");
    check_device_failure();
    check_mismatch("--lr 0.02", "rank 1 has another set of training options than rank 0");
    check_mismatch("--limit 255", "rank 1 has another training set than rank 0");
    check_killed_rank();
    return test_finish();
}
