/* The command line tool under the misuse of issue 11 (rows 3 to 6): each
 * case, tried again, behaves as the Build section says.
 *
 * 1. Divergence: a run whose loss becomes NaN or infinite stops before the
 *    save, with one line naming the epoch and batch and suggesting a lower
 *    learning rate; a fresh run writes no model, a resumed one leaves its
 *    checkpoint byte for byte; the issue's own reproduction (LeNet-5, lr 1,
 *    where the test loss goes NaN while the training loss is still finite)
 *    keeps the last finite epoch, which evaluates to a finite loss.
 * 2. --resume: another network is refused (naming the line that differs);
 *    the same network with other comments and spacing resumes; changed
 *    settings are refused unless --override, which then uses them and says
 *    so; settings the checkpoint's state was made for (the batch) are
 *    refused even then; a resume with nothing left to do is refused.
 * 3. Empty and no-op runs: --epochs 0, --limit 0 and eval --limit 0 are
 *    refused, --test-limit 0 trains and says no test figures were computed.
 * 4. Integer options out of range (ERANGE, above INT_MAX) are refused.
 * 5. Outputs: --save naming a directory or a directory without write
 *    permission is refused before any training, forward --output naming a
 *    directory before the network runs (nothing on stdout).
 * 6. predict tells IDX and .npy files by their content, whatever their names.
 * 7. predict and eval say when outputs are not finite (NaN input, a model
 *    with NaN weights) and exit 1.
 * 8. A save removes MODEL.tmp-PID files whose process is gone, and keeps
 *    those of a live process.
 * 9. A failed export (writes refused by a file size limit) leaves no
 *    directory behind. */
#include "testlib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

enum {
    SIDE = 28,
    IMAGE_SIZE = SIDE * SIDE,
    TRAIN_COUNT = 64,
    TEST_COUNT = 32,
    CLASSES = 10,
    OUTPUT_LIMIT = 1 << 16,
    PATH_SIZE = 1400,
};

static const char small_net_text[] = "input channels=1 height=28 width=28\n"
                                     "conv filters=4 size=5 stride=2\n"
                                     "relu\n"
                                     "maxpool size=2\n"
                                     "flatten\n"
                                     "dense units=10\n"
                                     "softmax\n";

/* The same network with other comments, blank lines and spacing. */
static const char respaced_net_text[] = "# the small network, written differently\n"
                                        "input   channels=1 height=28  width=28\n"
                                        "\n"
                                        "conv filters=4 size=5 stride=2   # first stage\n"
                                        "relu\n"
                                        "maxpool size=2\n"
                                        "flatten\n"
                                        "dense units=10\n"
                                        "softmax\n";

/* Another network: 5 filters. */
static const char other_net_text[] = "input channels=1 height=28 width=28\n"
                                     "conv filters=5 size=5 stride=2\n"
                                     "relu\n"
                                     "maxpool size=2\n"
                                     "flatten\n"
                                     "dense units=10\n"
                                     "softmax\n";

static clcnn_context *api; /* the reference device, for reading files */
static char net_path[PATH_SIZE], data_dir[PATH_SIZE], base_model[PATH_SIZE];

/* ---- files ------------------------------------------------------------------------------ */

static char *path_in(char *buf, const char *name) {
    snprintf(buf, PATH_SIZE, "%s/%s", test_dir(), name);
    return buf;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static unsigned char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(n > 0 ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

static int write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int file_holds(const char *path, const unsigned char *bytes, size_t size) {
    size_t n = 0;
    unsigned char *data = read_bytes(path, &n);
    int same = data && n == size && memcmp(data, bytes, size) == 0;
    free(data);
    return same;
}

/* A raw IDX file of unsigned bytes: magic 00 00 08 ndim, big-endian sizes, the values. */
static int write_idx(const char *path, const int *dims, int ndim, const unsigned char *values,
                     size_t count) {
    size_t size = 4 + 4 * (size_t)ndim + count;
    unsigned char *data = malloc(size);
    if (!data)
        return -1;
    data[0] = data[1] = 0;
    data[2] = 8;
    data[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++)
        for (int b = 0; b < 4; b++)
            data[4 + 4 * d + b] = (unsigned char)((unsigned)dims[d] >> (24 - 8 * b));
    memcpy(data + 4 + 4 * ndim, values, count);
    int result = write_bytes(path, data, size);
    free(data);
    return result;
}

/* Images of noise with a brighter square whose place depends on the class. */
static int make_data(void) {
    static unsigned char pixels[TRAIN_COUNT * IMAGE_SIZE], labels[TRAIN_COUNT];
    test_rng rng = {31};
    path_in(data_dir, "tiny");
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST)
        return 0;
    const char *const prefixes[2] = {"train", "t10k"};
    const int counts[2] = {TRAIN_COUNT, TEST_COUNT};
    for (int split = 0; split < 2; split++) {
        for (int i = 0; i < counts[split]; i++) {
            const int label = (i * 7 + split) % CLASSES;
            labels[i] = (unsigned char)label;
            unsigned char *p = pixels + i * IMAGE_SIZE;
            for (int j = 0; j < IMAGE_SIZE; j++)
                p[j] = (unsigned char)test_rand_int(&rng, 0, 100);
            for (int y = 4 + (label / 5) * 12; y < 9 + (label / 5) * 12; y++)
                for (int x = 1 + (label % 5) * 5; x < 6 + (label % 5) * 5; x++)
                    p[y * SIDE + x] = 200;
        }
        char path[PATH_SIZE + 64];
        const int image_dims[3] = {counts[split], SIDE, SIDE}, label_dims[1] = {counts[split]};
        snprintf(path, sizeof(path), "%s/%s-images-idx3-ubyte", data_dir, prefixes[split]);
        if (write_idx(path, image_dims, 3, pixels, (size_t)counts[split] * IMAGE_SIZE) != 0)
            return 0;
        snprintf(path, sizeof(path), "%s/%s-labels-idx1-ubyte", data_dir, prefixes[split]);
        if (write_idx(path, label_dims, 1, labels, (size_t)counts[split]) != 0)
            return 0;
    }
    return 1;
}

/* ---- running clcnn ---------------------------------------------------------------------- */

typedef struct run_result {
    int status;
    char out[OUTPUT_LIMIT], err[OUTPUT_LIMIT];
} run_result;

static run_result run_buffer;

/* Runs `clcnn ARGUMENTS` (prefix: shell commands before it), stdout and stderr apart. */
static run_result *run_with(const char *prefix, const char *arguments) {
    run_result *r = &run_buffer;
    char command[8192], stderr_path[PATH_SIZE];
    path_in(stderr_path, "stderr.txt");
    snprintf(command, sizeof(command), "( %s '%s' %s 2>'%s' )", prefix, clcnn_bin(), arguments,
             stderr_path);
    r->status = run_command(command, r->out, sizeof(r->out));
    r->err[0] = 0;
    FILE *f = fopen(stderr_path, "r");
    if (f) {
        size_t n = fread(r->err, 1, sizeof(r->err) - 1, f);
        r->err[n] = 0;
        fclose(f);
    }
    return r;
}

static run_result *run_clcnn(const char *arguments) {
    return run_with("", arguments);
}

static run_result *run_ok(const char *arguments) {
    run_result *r = run_clcnn(arguments);
    if (!CHECK(r->status == 0) || !CHECK(r->err[0] == 0))
        fprintf(stderr, "clcnn %s\nexited with %d, stdout:\n%s\nstderr:\n%s\n", arguments,
                r->status, r->out, r->err);
    return r;
}

/* A failure: non-zero exit, exactly one line on stderr holding every
 * NULL-terminated substring, and (when quiet) nothing on stdout. */
static run_result *expect_failure(const char *arguments, int quiet, const char *const *substrings) {
    run_result *r = run_clcnn(arguments);
    const char *newline = strchr(r->err, '\n');
    int one_line = r->err[0] != 0 && newline && newline[1] == 0;
    int ok = CHECK(r->status != 0) && CHECK(!quiet || r->out[0] == 0) && CHECK(one_line);
    for (int i = 0; substrings[i]; i++)
        if (!CHECK(strstr(r->err, substrings[i]) != NULL)) {
            fprintf(stderr, "the message lacks '%s'\n", substrings[i]);
            ok = 0;
        }
    if (!ok)
        fprintf(stderr, "clcnn %s\nexited with %d, stdout:\n%s\nstderr:\n%s\n", arguments,
                r->status, r->out, r->err);
    return r;
}

/* Epochs done and the learning rate of a model's training state (-1 when it does not load). */
static int model_epochs(const char *path, double *learning_rate) {
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    int epochs = -1;
    if (clcnn_model_load(api, path, &net, &trainer, NULL) == CLCNN_OK && trainer) {
        epochs = clcnn_trainer_epochs_done(trainer);
        if (learning_rate)
            *learning_rate = clcnn_trainer_config(trainer)->learning_rate;
    }
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    return epochs;
}

/* ---- 1. divergence ---------------------------------------------------------------------- */

static void check_divergence(void) {
    char model[PATH_SIZE], arguments[8192];
    /* A fresh run at an absurd learning rate: no model is written. */
    path_in(model, "diverged.model");
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --batch 16 --lr 1e6 --epochs 3 --save "
             "'%s'",
             net_path, data_dir, model);
    const char *const fresh[] = {"training diverged",          "at epoch 1, batch ",
                                 "lower learning rate",        "nothing was saved",
                                 "diverged.model was written", NULL};
    expect_failure(arguments, 0, fresh);
    CHECK(!file_exists(model));

    /* A resumed run that diverges keeps its checkpoint byte for byte. */
    size_t size = 0;
    unsigned char *before = read_bytes(base_model, &size);
    if (!CHECK(before != NULL))
        return;
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --lr 1e6 --override --epochs 3",
             base_model, data_dir);
    const char *const resumed[] = {"training diverged", "at epoch 2, batch ", "keeps epoch 1",
                                   NULL};
    expect_failure(arguments, 0, resumed);
    CHECK(file_holds(base_model, before, size));
    free(before);

    /* The reproduction: the test loss goes NaN while the training loss is finite. */
    const char *source = getenv("CLCNN_SOURCE_DIR");
    if (!source || !file_exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) {
        fprintf(stderr, "Fashion-MNIST or CLCNN_SOURCE_DIR missing: the LeNet-5 divergence "
                        "is skipped\n");
        return;
    }
    path_in(model, "lenet5-lr1.model");
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s/examples/lenet5.net' --epochs 30 --limit 64 "
             "--test-limit 50 --lr 1 --seed 1 --save '%s'",
             source, model);
    const char *const lenet[] = {"training diverged", "lower learning rate than 1", "keeps epoch",
                                 NULL};
    run_result *r = expect_failure(arguments, 0, lenet);
    const char *keeps = strstr(r->err, "keeps epoch ");
    const char *after = strstr(r->err, " loss is ");
    int kept = keeps ? atoi(keeps + strlen("keeps epoch ")) : -1;
    if (CHECK(keeps && after) && CHECK(kept >= 1)) {
        CHECK(model_epochs(model, NULL) == kept);
        /* The kept model is the last finite one. */
        snprintf(arguments, sizeof(arguments),
                 "--device reference eval '%s' --data /usr/share/datasets/fashion-mnist --limit "
                 "50",
                 model);
        run_ok(arguments);
    }
}

/* ---- 2. resume rules -------------------------------------------------------------------- */

static void check_resume(void) {
    char arguments[8192], other[PATH_SIZE], respaced[PATH_SIZE], model[PATH_SIZE];
    size_t size = 0;
    unsigned char *before = read_bytes(base_model, &size);
    if (!CHECK(before != NULL))
        return;
    CHECK(write_text(path_in(other, "other.net"), other_net_text) == 0);
    CHECK(write_text(path_in(respaced, "respaced.net"), respaced_net_text) == 0);

    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --resume '%s' --data '%s' --epochs 2", other,
             base_model, data_dir);
    const char *const network[] = {"other.net: not the network", "line 2",
                                   "conv filters=5 size=5 stride=2",
                                   "conv filters=4 size=5 stride=2", NULL};
    expect_failure(arguments, 1, network);

    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --resume '%s' --data '%s' --epochs 2 --save '%s'",
             respaced, base_model, data_dir, path_in(model, "respaced.model"));
    run_ok(arguments);
    CHECK(model_epochs(model, NULL) == 2);

    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2 --lr 0.1 --momentum "
             "0.5",
             base_model, data_dir);
    const char *const changed[] = {"--lr 0.1 (the checkpoint's: 0.01)",
                                   "--momentum 0.5 (the checkpoint's: 0.9)", "--override", NULL};
    expect_failure(arguments, 1, changed);
    /* Given as the checkpoint has them: nothing differs. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2 --lr 0.01 --batch 16 "
             "--save '%s'",
             base_model, data_dir, path_in(model, "same-settings.model"));
    run_ok(arguments);

    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2 --lr 0.1 --override "
             "--save '%s'",
             base_model, data_dir, path_in(model, "overridden.model"));
    run_result *r = run_ok(arguments);
    if (r->status == 0) {
        CHECK(strstr(r->out, "overriding the checkpoint's settings: --lr 0.1 (the checkpoint's: "
                             "0.01)") != NULL);
        CHECK(strstr(r->out, "with its settings: sgd lr 0.1, momentum 0.9") != NULL);
    }
    double learning_rate = 0.0;
    CHECK(model_epochs(model, &learning_rate) == 2 && learning_rate == 0.1);

    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 2 --batch 8 --override",
             base_model, data_dir);
    const char *const batch[] = {"the batch size cannot change", NULL};
    expect_failure(arguments, 1, batch);

    /* Nothing left to do: the checkpoint's own total, and an --epochs already reached. */
    snprintf(arguments, sizeof(arguments), "--device reference train --resume '%s' --data '%s'",
             base_model, data_dir);
    const char *const done[] = {"has trained 1 epochs already", "nothing to do", "--epochs above 1",
                                NULL};
    expect_failure(arguments, 1, done);
    snprintf(arguments, sizeof(arguments),
             "--device reference train --resume '%s' --data '%s' --epochs 1", base_model, data_dir);
    expect_failure(arguments, 1, done);
    CHECK(file_holds(base_model, before, size));
    free(before);
}

/* ---- 3, 4, 5. empty runs, integer ranges, outputs ---------------------------------------- */

static void check_options(void) {
    char arguments[8192], model[PATH_SIZE + 64], dir[PATH_SIZE];
    struct {
        const char *options;
        const char *message;
    } refused[] = {
        {"--epochs 0", "--epochs 0: nothing to train"},
        {"--limit 0", "--limit 0: no training images"},
        {"--limit 99999999999999999999", "--limit: 99999999999999999999 is out of range"},
        {"--epochs 99999999999", "--epochs: 99999999999 is out of range (0 to 2147483647)"},
        {"--batch 4294967297", "--batch: 4294967297 is out of range"},
        {"--step-epochs 99999999999", "--step-epochs: 99999999999 is out of range"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        snprintf(arguments, sizeof(arguments), "--device reference train '%s' --data '%s' %s",
                 net_path, data_dir, refused[i].options);
        const char *const message[] = {refused[i].message, NULL};
        expect_failure(arguments, 1, message);
    }
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s' --limit 0",
             base_model, data_dir);
    const char *const eval_empty[] = {"--limit 0: no test images", NULL};
    expect_failure(arguments, 1, eval_empty);

    /* --test-limit 0 trains, and says the test figures are not computed. */
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --test-limit 0 --save '%s'",
             net_path, data_dir, path_in(model, "no-test.model"));
    run_result *r = run_ok(arguments);
    if (r->status == 0) {
        CHECK(strstr(r->out, "no test images (--test-limit 0): the test loss and accuracy are "
                             "not computed") != NULL);
        CHECK(strstr(r->out, "| no test images |") != NULL);
        CHECK(strstr(r->out, "test loss 0") == NULL); /* no figures for no images */
    }

    /* --save naming a directory: refused before anything is trained. */
    path_in(dir, "a-directory.model");
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", net_path, data_dir,
             dir);
    const char *const is_directory[] = {"a-directory.model: cannot save the model there: it is a "
                                        "directory",
                                        NULL};
    expect_failure(arguments, 1, is_directory);
    /* forward --output too, before the network runs. */
    snprintf(arguments, sizeof(arguments),
             "--device reference forward '%s' --seed 1 --input '%s/t10k-images-idx3-ubyte' "
             "--output '%s'",
             net_path, data_dir, dir);
    const char *const output_directory[] = {"cannot save the output there: it is a directory",
                                            NULL};
    expect_failure(arguments, 1, output_directory);
    if (geteuid() != 0) {
        path_in(dir, "read-only");
        CHECK(mkdir(dir, 0555) == 0 || errno == EEXIST);
        snprintf(model, sizeof(model), "%s/x.model", dir);
        snprintf(arguments, sizeof(arguments),
                 "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", net_path,
                 data_dir, model);
        const char *const read_only[] = {"cannot save the model there", "read-only",
                                         "Permission denied", NULL};
        expect_failure(arguments, 1, read_only);
    } else {
        fprintf(stderr, "running as root: the unwritable directory case is skipped\n");
    }
}

/* ---- 6, 7. predict by content; non-finite outputs ---------------------------------------- */

static void check_predict(void) {
    char arguments[8192], source[PATH_SIZE + 64], renamed[PATH_SIZE], npy[PATH_SIZE];
    /* The IDX test images under a name that says nothing. */
    snprintf(source, sizeof(source), "%s/t10k-images-idx3-ubyte", data_dir);
    size_t size = 0;
    unsigned char *bytes = read_bytes(source, &size);
    if (CHECK(bytes != NULL))
        CHECK(write_bytes(path_in(renamed, "images.bin"), bytes, size) == 0);
    free(bytes);
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s' --limit 3",
             base_model, renamed);
    run_result *r = run_ok(arguments);
    if (r->status == 0)
        CHECK(strstr(r->out, "images.bin[2]:") != NULL && strstr(r->out, "images.bin[3]:") == NULL);

    /* A .npy with one NaN pixel, named .data. */
    float pixels[IMAGE_SIZE];
    for (int i = 0; i < IMAGE_SIZE; i++)
        pixels[i] = (float)(i % 17) / 17.0f;
    pixels[300] = NAN;
    clcnn_array array = {CLCNN_FLOAT32, 4, {1, 1, SIDE, SIDE}, pixels};
    CHECK_OK(api, clcnn_npy_write(api, path_in(npy, "nan-pixel.data"), &array));
    snprintf(arguments, sizeof(arguments), "--device reference predict '%s' '%s'", base_model, npy);
    const char *const nonfinite[] = {"not finite", "for 1 of 1 images",
                                     "their input holds 1 NaN or infinite values", NULL};
    r = expect_failure(arguments, 0, nonfinite);
    CHECK(strstr(r->out, "nan-pixel.data: not finite: 10 of 10 outputs are NaN or infinite") !=
          NULL);
    snprintf(arguments, sizeof(arguments), "--device opencl predict '%s' '%s'", base_model, npy);
    expect_failure(arguments, 0, nonfinite);

    /* A model with NaN weights: eval says its outputs are not finite. */
    char exported[PATH_SIZE], nan_model[PATH_SIZE], bias_path[PATH_SIZE + 64];
    path_in(exported, "exported");
    snprintf(arguments, sizeof(arguments), "export '%s' '%s'", base_model, exported);
    if (run_ok(arguments)->status != 0)
        return;
    const float bias[4] = {0.0f, NAN, 0.0f, 0.0f};
    clcnn_array bias_array = {CLCNN_FLOAT32, 1, {4}, (void *)bias};
    snprintf(bias_path, sizeof(bias_path), "%s/conv1.bias.npy", exported);
    CHECK_OK(api, clcnn_npy_write(api, bias_path, &bias_array));
    snprintf(arguments, sizeof(arguments), "import '%s/network.net' '%s' '%s'", exported, exported,
             path_in(nan_model, "nan.model"));
    if (run_ok(arguments)->status != 0)
        return;
    snprintf(arguments, sizeof(arguments), "--device reference eval '%s' --data '%s'", nan_model,
             data_dir);
    const char *const eval_nonfinite[] = {"eval: the test loss is nan", "not finite", NULL};
    expect_failure(arguments, 0, eval_nonfinite);
}

/* ---- 8, 9. leftovers -------------------------------------------------------------------- */

static void check_leftovers(void) {
    char model[PATH_SIZE], stale[PATH_SIZE + 64], live[PATH_SIZE + 64], arguments[8192];
    path_in(model, "swept.model");
    /* A process that has exited: its pid names a stale temporary file. */
    fflush(NULL);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    if (!CHECK(child > 0))
        return;
    waitpid(child, NULL, 0);
    snprintf(stale, sizeof(stale), "%s.tmp-%d", model, (int)child);
    snprintf(live, sizeof(live), "%s.tmp-%d", model, (int)getpid());
    CHECK(write_text(stale, "left by a killed save") == 0);
    CHECK(write_text(live, "a save in progress") == 0);
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --save '%s'", net_path, data_dir,
             model);
    run_ok(arguments);
    CHECK(!file_exists(stale));
    CHECK(file_exists(live));
    unlink(live);

    /* An export whose writes fail (a file size limit of 0, the signal ignored). */
    char exported[PATH_SIZE];
    path_in(exported, "failed-export");
    snprintf(arguments, sizeof(arguments), "export '%s' '%s'", base_model, exported);
    run_result *r = run_with("trap '' XFSZ; ulimit -f 0;", arguments);
    if (CHECK(r->status != 0))
        CHECK(!file_exists(exported));
    else
        fprintf(stderr, "export under ulimit -f 0 succeeded: %s\n", r->out);
}

int main(void) {
    api = clcnn_context_create();
    if (!CHECK(api != NULL) ||
        !CHECK_OK(api, clcnn_context_select_device(api, CLCNN_DEVICE_REFERENCE, -1, -1)))
        return test_finish();
    CHECK(write_text(path_in(net_path, "small.net"), small_net_text) == 0);
    if (!CHECK(make_data()))
        return test_finish();
    /* The checkpoint the checks resume and predict with: one epoch of batch 16, lr 0.01. */
    char arguments[8192];
    snprintf(arguments, sizeof(arguments),
             "--device reference train '%s' --data '%s' --epochs 1 --batch 16 --save '%s'",
             net_path, data_dir, path_in(base_model, "base.model"));
    if (run_ok(arguments)->status != 0)
        return test_finish();
    check_divergence();
    check_resume();
    check_options();
    check_predict();
    check_leftovers();
    clcnn_context_destroy(api);
    return test_finish();
}
