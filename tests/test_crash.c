/* Crash consistency of checkpoints: `clcnn train` killed (SIGKILL) at
 * random moments, killed at fixed points inside a checkpoint write (the
 * test-only stop CLCNN_TEST_SAVE_STOP, host/internal.h), and saving onto a
 * full disk (a small tmpfs, when the test may mount one). Whatever happened,
 * the last checkpoint loads with its training state.
 *
 *   test_crash            random kills and kills at the fixed points
 *   test_crash full-disk  saves onto a full tmpfs (needs root; skipped otherwise)
 *   test_crash stray      the temporary file of a save killed midway is gone
 *                         once a later save of the same model has run
 *
 * Small data (48 images of 8x8) and the reference device keep it fast. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { SIDE = 8, CLASSES = 4, TRAIN = 48, TEST = 16, KILL_ROUNDS = 24 };

static clcnn_context *api;
static char data_dir[1024], net_path[1024];

static const char net_text[] = "input channels=1 height=8 width=8\n"
                               "conv filters=4 size=3 pad=1\n"
                               "relu\n"
                               "flatten\n"
                               "dense units=4\n"
                               "softmax\n";

static int write_bytes(const char *path, const void *bytes, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(bytes, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* An IDX file of unsigned bytes with the given dimensions. */
static int write_idx(const char *path, const int *dims, int ndim, const unsigned char *data,
                     size_t size) {
    unsigned char header[4 + 4 * 3] = {0, 0, 0x08, (unsigned char)ndim};
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            header[4 + 4 * d + b] = (unsigned char)(dims[d] >> (8 * (3 - b)));
    unsigned char *bytes = malloc(4 + 4 * (size_t)ndim + size);
    if (!bytes)
        return -1;
    memcpy(bytes, header, 4 + 4 * (size_t)ndim);
    memcpy(bytes + 4 + 4 * ndim, data, size);
    int result = write_bytes(path, bytes, 4 + 4 * (size_t)ndim + size);
    free(bytes);
    return result;
}

/* A set whose class shows as a bright square in one quadrant. */
static int write_set(const char *prefix, int count, test_rng *rng) {
    unsigned char *pixels = malloc((size_t)count * SIDE * SIDE), labels[TRAIN];
    if (!pixels)
        return -1;
    for (int i = 0; i < count; i++) {
        labels[i] = (unsigned char)(i % CLASSES);
        unsigned char *image = pixels + (size_t)i * SIDE * SIDE;
        for (int p = 0; p < SIDE * SIDE; p++)
            image[p] = (unsigned char)test_rand_int(rng, 0, 90);
        int top = (labels[i] / 2) * 4, left = (labels[i] % 2) * 4;
        for (int y = top; y < top + 4; y++)
            for (int x = left; x < left + 4; x++)
                image[y * SIDE + x] = (unsigned char)test_rand_int(rng, 150, 255);
    }
    char path[1200];
    int image_dims[3] = {count, SIDE, SIDE}, label_dims[1] = {count};
    snprintf(path, sizeof(path), "%s/%s-images-idx3-ubyte", data_dir, prefix);
    int result = write_idx(path, image_dims, 3, pixels, (size_t)count * SIDE * SIDE);
    snprintf(path, sizeof(path), "%s/%s-labels-idx1-ubyte", data_dir, prefix);
    if (result == 0)
        result = write_idx(path, label_dims, 1, labels, (size_t)count);
    free(pixels);
    return result;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The number of files in dir whose names start with `model`.tmp; prints them. */
static int temporary_files(const char *dir, const char *model) {
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    char prefix[1100];
    snprintf(prefix, sizeof(prefix), "%s.tmp", base);
    DIR *d = opendir(dir);
    int found = 0;
    struct dirent *entry;
    while (d && (entry = readdir(d)) != NULL)
        if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0) {
            printf("temporary file: %s/%s\n", dir, entry->d_name);
            found++;
        }
    if (d)
        closedir(d);
    return found;
}

/* Removes dir/<model>.tmp* (what a killed save leaves until a later save
 * cleans it). */
static void remove_temporary_files(const char *model) {
    char command[2400];
    snprintf(command, sizeof(command), "rm -f '%s'.tmp*", model);
    if (system(command) != 0)
        fprintf(stderr, "cannot run %s\n", command);
}

/* Epochs done in the model at path, or -1 when it does not load with a
 * training state (the error printed). */
static int model_epochs(const char *path) {
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    int epochs = -1;
    if (clcnn_model_load(api, path, &net, &trainer, NULL) != CLCNN_OK)
        printf("%s does not load: %s\n", path, clcnn_last_error(api));
    else if (!trainer)
        printf("%s has no training state\n", path);
    else
        epochs = clcnn_trainer_epochs_done(trainer);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    return epochs;
}

/* Starts `clcnn --device reference train ...` with stdout and stderr to
 * log, and CLCNN_TEST_SAVE_STOP=stop when stop is not NULL. Resumes model
 * when resume is set, else trains net_path afresh. */
static pid_t start_training(const char *model, int resume, int epochs, const char *stop,
                            const char *log) {
    char epochs_text[32];
    snprintf(epochs_text, sizeof(epochs_text), "%d", epochs);
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    if (stop)
        setenv("CLCNN_TEST_SAVE_STOP", stop, 1);
    else
        unsetenv("CLCNN_TEST_SAVE_STOP");
    if (resume)
        execl(clcnn_bin(), clcnn_bin(), "--device", "reference", "train", "--resume", model,
              "--data", data_dir, "--epochs", epochs_text, (char *)NULL);
    else
        execl(clcnn_bin(), clcnn_bin(), "--device", "reference", "train", net_path, "--data",
              data_dir, "--epochs", epochs_text, "--batch", "8", "--momentum", "0.9", "--save",
              model, (char *)NULL);
    _exit(127);
}

/* Runs training to completion; returns its exit status (128 + signal). */
static int train(const char *model, int resume, int epochs, const char *log) {
    pid_t pid = start_training(model, resume, epochs, NULL, log);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void print_log(const char *log) {
    FILE *f = fopen(log, "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f))
        printf("  | %s", line);
    if (f)
        fclose(f);
}

/* ---- random kills ----------------------------------------------------------------------- */

/* Rounds of: train (afresh until a checkpoint exists, then resuming it),
 * SIGKILL after a random 0-300 ms. After every round the checkpoint, once
 * there, loads with its training state and has not gone back. */
static void check_random_kills(void) {
    char model[1100], log[1100];
    snprintf(model, sizeof(model), "%s", test_path("random.model"));
    snprintf(log, sizeof(log), "%s", test_path("random.log"));
    test_rng rng = {20261130};
    int epochs = 0, left_temporary = 0, advanced = 0;
    for (int round = 0; round < KILL_ROUNDS; round++) {
        int exists = file_exists(model);
        pid_t pid = start_training(model, exists, 1000000, NULL, log);
        if (!CHECK(pid > 0))
            return;
        struct timespec delay = {0, (long)test_rand_int(&rng, 0, 300) * 1000000L};
        nanosleep(&delay, NULL);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            printf("round %d: training ended by itself (status %d)\n", round, status);
            print_log(log);
        }
        if (!file_exists(model)) {
            /* Killed before its first checkpoint: only possible before any. */
            CHECK(epochs == 0);
            continue;
        }
        int now = model_epochs(model);
        if (!CHECK(now >= 1 && now >= epochs))
            printf("round %d: the checkpoint went from epoch %d to %d\n", round, epochs, now);
        advanced += now > epochs;
        epochs = now;
        if (temporary_files(test_dir(), model) > 0) {
            left_temporary++;
            /* Until the next save removes it (see check_stray_removed). */
            remove_temporary_files(model);
        }
    }
    CHECK(epochs > 0);
    printf("%d kill rounds: the checkpoint reached epoch %d, advanced in %d rounds; %d kills "
           "left a temporary file\n",
           KILL_ROUNDS, epochs, advanced, left_temporary);
    /* The last checkpoint resumes to one more epoch. */
    CHECK(train(model, 1, epochs + 1, log) == 0);
    CHECK(model_epochs(model) == epochs + 1);
    CHECK(temporary_files(test_dir(), model) == 0);
}

/* ---- kills at fixed points of a save ---------------------------------------------------- */

/* Stops the third checkpoint's save at `point` (CLCNN_TEST_SAVE_STOP), looks
 * at the files while it is stopped, kills it there, and checks what loads:
 * the second checkpoint until the rename, the third after it. */
static void check_kill_at(const char *point, int expect_epochs) {
    char model[1100], log[1100], temporary[1200], stop[64];
    snprintf(model, sizeof(model), "%s", test_path("stopped.model"));
    snprintf(log, sizeof(log), "%s", test_path("stopped.log"));
    unlink(model);
    remove_temporary_files(model);
    snprintf(stop, sizeof(stop), "3:%s", point);
    pid_t pid = start_training(model, 0, 5, stop, log);
    if (!CHECK(pid > 0))
        return;
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", model, (int)pid);
    int status = 0;
    waitpid(pid, &status, WUNTRACED);
    if (!CHECK(WIFSTOPPED(status))) {
        printf("%s: training was not stopped in its third save (status %d)\n", point, status);
        print_log(log);
        return;
    }
    /* While stopped there. */
    if (strcmp(point, "partial") == 0) {
        /* Part of the file written: it is there, and it is no model. */
        CHECK(file_size(temporary) > 0);
        clcnn_net *net = NULL;
        CHECK(clcnn_model_load(api, temporary, &net, NULL, NULL) != CLCNN_OK);
        clcnn_net_destroy(net);
    } else if (strcmp(point, "written") == 0) {
        /* Complete and synced, not yet renamed: the third checkpoint. */
        CHECK(model_epochs(temporary) == 3);
    } else {
        CHECK(!file_exists(temporary));
    }
    CHECK(model_epochs(model) == expect_epochs);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (!CHECK(model_epochs(model) == expect_epochs))
        printf("killed at '%s' of the third save: the model is not the checkpoint of epoch %d\n",
               point, expect_epochs);
    CHECK(file_exists(temporary) == (strcmp(point, "renamed") != 0));

    /* Resumed for one more epoch it gives what an uninterrupted run gives. */
    char straight[1100];
    snprintf(straight, sizeof(straight), "%s", test_path("straight.model"));
    remove_temporary_files(model);
    if (CHECK(train(model, 1, expect_epochs + 1, log) == 0) &&
        CHECK(train(straight, 0, expect_epochs + 1, log) == 0)) {
        long size = file_size(model);
        CHECK(size > 0 && size == file_size(straight));
        char command[2400];
        snprintf(command, sizeof(command), "cmp -s '%s' '%s'", model, straight);
        if (!CHECK(system(command) == 0))
            printf("killed at '%s' and resumed: the model differs from an uninterrupted run\n",
                   point);
    }
}

/* ---- the next save removes a killed save's temporary file ------------------------------ */

static void check_stray_removed(void) {
    char model[1100], log[1100], temporary[1200];
    snprintf(model, sizeof(model), "%s", test_path("stray.model"));
    snprintf(log, sizeof(log), "%s", test_path("stray.log"));
    pid_t pid = start_training(model, 0, 5, "2:partial", log);
    if (!CHECK(pid > 0))
        return;
    int status = 0;
    waitpid(pid, &status, WUNTRACED);
    CHECK(WIFSTOPPED(status));
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", model, (int)pid);
    if (!CHECK(file_exists(temporary)) || !CHECK(model_epochs(model) == 1))
        return;
    /* The next save of the model, by another process. */
    CHECK(train(model, 1, 2, log) == 0);
    CHECK(model_epochs(model) == 2);
    /* The save removes the temporary files of dead processes. */
    CHECK(!file_exists(temporary));
    CHECK(temporary_files(test_dir(), model) == 0);
}

/* ---- a full disk ------------------------------------------------------------------------ */

/* Fills the file system of dir to the last block with dir/filler. */
static int fill(const char *dir) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/filler", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return -1;
    static char block[4096];
    while (write(fd, block, sizeof(block)) > 0)
        ;
    int full = errno == ENOSPC;
    while (write(fd, block, 1) > 0)
        ;
    close(fd);
    return full ? 0 : -1;
}

static void check_full_disk(void) {
    if (geteuid() != 0) {
        test_skip("the full-disk check mounts a tmpfs, which needs root");
        return;
    }
    char mount_dir[1100], command[2400], model[1200], log[1100], filler[1200];
    snprintf(mount_dir, sizeof(mount_dir), "%s", test_path("full"));
    snprintf(log, sizeof(log), "%s", test_path("full.log"));
    mkdir(mount_dir, 0755);
    snprintf(command, sizeof(command),
             "mount -t tmpfs -o size=128k,nr_inodes=64 clcnn-test-full '%s' 2>&1", mount_dir);
    if (system(command) != 0) {
        test_skip("cannot mount a tmpfs on %s (no CAP_SYS_ADMIN here?)", mount_dir);
        rmdir(mount_dir);
        return;
    }
    snprintf(model, sizeof(model), "%s/full.model", mount_dir);
    snprintf(filler, sizeof(filler), "%s/filler", mount_dir);
    if (CHECK(train(model, 0, 1, log) == 0) && CHECK(model_epochs(model) == 1)) {
        long size = file_size(model);
        FILE *f = fopen(model, "rb");
        unsigned char *before = malloc((size_t)size);
        CHECK(f && before && fread(before, 1, (size_t)size, f) == (size_t)size);
        if (f)
            fclose(f);
        /* No room at all, then room for part of the file (one page). */
        for (int room = 0; room <= 4096; room += 4096) {
            CHECK(fill(mount_dir) == 0);
            if (room > 0)
                CHECK(truncate(filler, file_size(filler) - room) == 0);
            int status = train(model, 1, 3, log);
            if (!CHECK(status != 0 && status < 128)) {
                printf("resuming onto a full disk (%d bytes free): status %d\n", room, status);
                print_log(log);
            }
            /* The checkpoint is as it was, and nothing else is left. */
            CHECK(file_size(model) == size);
            f = fopen(model, "rb");
            unsigned char *after = malloc((size_t)size);
            CHECK(f && after && fread(after, 1, (size_t)size, f) == (size_t)size &&
                  memcmp(before, after, (size_t)size) == 0);
            if (f)
                fclose(f);
            free(after);
            CHECK(model_epochs(model) == 1);
            CHECK(temporary_files(mount_dir, model) == 0);
            unlink(filler);
        }
        free(before);
        /* With room again the checkpoint resumes. */
        CHECK(train(model, 1, 2, log) == 0);
        CHECK(model_epochs(model) == 2);
    }
    snprintf(command, sizeof(command), "umount '%s'", mount_dir);
    CHECK(system(command) == 0);
    rmdir(mount_dir);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "kill";
    api = clcnn_context_create();
    if (!CHECK(api != NULL) ||
        !CHECK_OK(api, clcnn_context_select_device(api, CLCNN_DEVICE_REFERENCE, -1, -1)))
        return test_finish();
    snprintf(data_dir, sizeof(data_dir), "%s", test_path("data"));
    snprintf(net_path, sizeof(net_path), "%s", test_path("crash.net"));
    mkdir(data_dir, 0755);
    test_rng rng = {42};
    if (!CHECK(write_text(net_path, net_text) == 0) ||
        !CHECK(write_set("train", TRAIN, &rng) == 0) || !CHECK(write_set("t10k", TEST, &rng) == 0))
        return test_finish();

    if (strcmp(mode, "kill") == 0) {
        check_random_kills();
        check_kill_at("partial", 2);
        check_kill_at("written", 2);
        check_kill_at("renamed", 3);
    } else if (strcmp(mode, "full-disk") == 0) {
        check_full_disk();
    } else if (strcmp(mode, "stray") == 0) {
        check_stray_removed();
    } else {
        fprintf(stderr, "usage: test_crash [kill|full-disk|stray]\n");
        CHECK(0);
    }
    clcnn_context_destroy(api);
    return test_finish();
}
