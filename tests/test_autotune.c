/* Autotuning (host/graph/tuner.c, net_autotune): planning a network tunes
 * the convolution operations the tuning file lacks and adds them to it.
 *
 * 1. Results do not depend on the configuration: two training steps (SGD
 *    with momentum, batchnorm) with autotuning off, with it on, and with
 *    every convolution forced to configurations far from the defaults
 *    (CLCNN_DIRECT) leave every parameter and running statistic and both
 *    losses the same, bit for bit. The register-blocked kernels reduce in
 *    an order that depends on the shape only (kernels/conv2d_direct.cl).
 *    Winograd, which rounds differently, is timed against them for the
 *    stride-1 3x3 convolution and its verdict kept; its fused kernel can
 *    win even on so few channels, and where either of its kernels is
 *    chosen the bit-for-bit check says so and is not made.
 * 2. What is tuned: forward of each convolution and dense layer that runs on
 *    the register-blocked kernels, backward-weights of each trained one and
 *    backward-data only where an input gradient is needed (not for the
 *    first convolution when a trainer trains); each lands in the tuning
 *    file.
 * 3. Once is enough: a network of the same shapes in a new context reads
 *    the file and tunes nothing, and the file stays as it was; one in the
 *    same context finds the table and tunes nothing either.
 * 4. An inference plan tunes forward only.
 * 5. The switches: CLCNN_AUTOTUNE=0 turns it off, clcnn_context_set_autotune
 *    stands over it, CLCNN_DIRECT and CLCNN_NO_TUNING leave nothing to tune.
 * 6. Verdicts are kept per batch class: the powers of two below the full
 *    batch (64 images of 10x10 outputs, 88 of 6x6, to make 64 7x7 maps'
 *    positions) each have their own, the full batch up to twice it one,
 *    and every batch from twice it up one more; a plan for a batch of
 *    another class tunes that shape again without touching the verdicts
 *    of the first.
 *
 * The suite runs with CLCNN_AUTOTUNE=0 (tests/CMakeLists.txt); this test
 * sets the variables it needs itself, with a cache directory of its own.
 * CLCNN_CONV=direct makes every device run the tuned kernels. */
#include "ops.h"
#include "testlib.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 8, CLASSES = 10, STEPS = 2 };

/* Every shape rule at once: a first convolution with 12 input channels
 * (forward and backward-data on the register-blocked kernels, but no input
 * gradient when training), a strided one, a 1x1, a grouped one (the
 * -DGENERAL kernels) and a dense layer. */
static void net_text(const char *prefix, char *text, size_t size) {
    snprintf(text, size,
             "input channels=12 height=10 width=10\n"
             "conv filters=8 size=3 pad=1 bias=false name=%sa\n"
             "batchnorm name=%sa_bn\n"
             "relu name=%sa_relu\n"
             "conv filters=16 size=3 stride=2 pad=1 name=%sb\n"
             "relu name=%sb_relu\n"
             "conv filters=16 size=1 name=%sc\n"
             "conv filters=16 size=3 pad=1 groups=2 name=%sd\n"
             "relu name=%sd_relu\n"
             "globalavgpool name=%spool\n"
             "flatten name=%sflat\n"
             "dense units=10 name=%sfc\n"
             "softmax name=%sprob\n",
             prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix,
             prefix);
}

/* Operations expected tuned for that network trained by a trainer:
 * a forward and backward-weights, b, c, d and fc all three; and for a's
 * forward and backward-weights (the only stride-1 3x3 ungrouped operations)
 * Winograd's verdicts. */
enum { EXPECTED_OPERATIONS = 2 + 3 + 3 + 3 + 3, EXPECTED_WINOGRAD = 2 };
static const char *const verdict_a = "winograd_forward 12 8 10 10 3 3 1 1 1 1 n8 = ";
static const char *const weights_verdict_a =
    "winograd_backward_weights 12 8 10 10 3 3 1 1 1 1 n8 = ";

/* Whether the tuning file's verdict line starting with `verdict` chose
 * Winograd, on either of its kernels: its third number is not 2. */
static int winograd_chosen(const char *text, const char *verdict) {
    const char *line = strstr(text, verdict);
    int numbers[4];
    return line &&
           sscanf(line + strlen(verdict), "%d %d %d %d", &numbers[0], &numbers[1], &numbers[2],
                  &numbers[3]) == 4 &&
           numbers[2] != 2;
}

static const char *const variables[] = {"CLCNN_AUTOTUNE", "CLCNN_DIRECT", "CLCNN_NO_TUNING"};

/* A context on the test's OpenCL device with only name=value of the
 * variables above set while it selects it (name NULL: none). */
static clcnn_context *context_with(const char *name, const char *value) {
    for (size_t i = 0; i < sizeof(variables) / sizeof(variables[0]); i++)
        unsetenv(variables[i]);
    if (name)
        setenv(name, value, 1);
    clcnn_context *ctx = test_opencl_context();
    if (name)
        unsetenv(name);
    CHECK(ctx != NULL);
    return ctx;
}

/* What two training steps leave: every tensor's floats, then the losses. */
typedef struct outcome {
    float *values;
    int64_t count;
    double losses[STEPS];
} outcome;

static void make_batch(float *images, int32_t *labels) {
    test_rng r = {12345};
    for (int i = 0; i < BATCH * 12 * 10 * 10; i++)
        images[i] = test_rand_float(&r, -1.0f, 1.0f);
    for (int i = 0; i < BATCH; i++)
        labels[i] = test_rand_int(&r, 0, CLASSES - 1);
}

static clcnn_net *make_net(clcnn_context *ctx, const char *prefix) {
    char text[2048];
    net_text(prefix, text, sizeof(text));
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "autotune.net", &net)))
        return NULL;
    if (!CHECK_OK(ctx, clcnn_net_init_weights(net, 7))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Two steps of SGD with momentum on the same batch; 0 after a failed check. */
static int train_steps(clcnn_context *ctx, clcnn_net *net, outcome *out) {
    static float images[BATCH * 12 * 10 * 10];
    static int32_t labels[BATCH];
    make_batch(images, labels);
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = BATCH;
    config.learning_rate = 0.05;
    config.momentum = 0.9;
    clcnn_trainer *trainer = NULL;
    int ok = CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    for (int s = 0; ok && s < STEPS; s++)
        ok = CHECK_OK(ctx,
                      clcnn_trainer_step(trainer, images, labels, BATCH, &out->losses[s], NULL));
    clcnn_trainer_destroy(trainer);
    out->count = 0;
    for (int t = 0; ok && t < clcnn_net_tensor_count(net); t++) {
        clcnn_tensor_info info;
        ok = CHECK_OK(ctx, clcnn_net_tensor_info(net, t, &info));
        out->count += info.count;
    }
    out->values = ok ? malloc(sizeof(float) * (size_t)out->count) : NULL;
    int64_t at = 0;
    for (int t = 0; ok && out->values && t < clcnn_net_tensor_count(net); t++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, t, &info);
        ok = CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, out->values + at, info.count));
        at += info.count;
    }
    return ok && out->values != NULL;
}

/* One run from a fresh context: its outcome, and how many operations it autotuned. */
static int run(const char *name, const char *value, int api_switch, outcome *out, int *tuned) {
    clcnn_context *ctx = context_with(name, value);
    if (!ctx)
        return 0;
    if (api_switch >= 0)
        CHECK_OK(ctx, clcnn_context_set_autotune(ctx, api_switch));
    clcnn_net *net = make_net(ctx, "");
    const int ok = net && train_steps(ctx, net, out);
    *tuned = ctx->autotuned_operations;
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return ok;
}

static int same_outcome(const outcome *a, const outcome *b) {
    return a->count == b->count &&
           memcmp(a->values, b->values, sizeof(float) * (size_t)a->count) == 0 &&
           memcmp(a->losses, b->losses, sizeof(a->losses)) == 0;
}

/* The tuning file in the test's cache directory: its path into path, and
 * its text (malloc'd), or NULL when there is none. */
static char *tuning_file(char *path, size_t size) {
    char dir[1100];
    snprintf(dir, sizeof(dir), "%s/clcnn", test_path("cache/home"));
    path[0] = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "tuning-", 7) == 0 && strstr(e->d_name, ".tmp-") == NULL)
            snprintf(path, size, "%s/%s", dir, e->d_name);
    if (d)
        closedir(d);
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    char *text = calloc(1, 1 << 16);
    if (text)
        text[fread(text, 1, (1 << 16) - 1, f)] = 0;
    fclose(f);
    return text;
}

static int count_entries(const char *text) {
    int entries = 0;
    for (const char *p = text; p && (p = strstr(p, " = ")) != NULL; p += 3)
        entries++;
    return entries;
}

/* The pointwise kernel's verdicts expected for c (1x1 on 5x5 planes),
 * forward and backward-data: tuning races that kernel only where the
 * device's vectors fill a plane (none with 16-wide vectors, both with
 * 8-wide ones on 16 registers), as the tuner itself says. */
static int expected_pointwise_verdicts(clcnn_context *ctx) {
    clcnn_net *net = make_net(ctx, "");
    if (!net)
        return -1;
    const conv2d_params p = layer_conv2d_params(&net->layers[net_find_layer(net, "c")], BATCH);
    const int verdicts = tuning_races_pointwise(ctx, 0, &p) + tuning_races_pointwise(ctx, 1, &p);
    clcnn_net_destroy(net);
    return verdicts;
}

static int count_pointwise_verdicts(const char *text) {
    int verdicts = 0;
    for (const char *p = text; p && (p = strstr(p, "pointwise_")) != NULL; p++)
        verdicts++;
    return verdicts;
}

/* ---- 1 and 2 -------------------------------------------------------------------------------- */

static void check_same_results_and_entries(void) {
    char path[1400];
    outcome off = {0}, on = {0};
    int tuned = -1;
    /* The context's switch off, over the default of on. */
    if (!run(NULL, NULL, 0, &off, &tuned))
        return;
    CHECK(tuned == 0);
    char *text = tuning_file(path, sizeof(path));
    CHECK(text == NULL);
    free(text);
    printf("autotuning off: losses %.9g %.9g\n", off.losses[0], off.losses[1]);

    if (run(NULL, NULL, -1, &on, &tuned)) {
        printf("autotuning on: %d operations tuned, losses %.9g %.9g\n", tuned, on.losses[0],
               on.losses[1]);
        CHECK(tuned == EXPECTED_OPERATIONS);
    }
    clcnn_context *ctx = context_with(NULL, NULL);
    const int pointwise = ctx ? expected_pointwise_verdicts(ctx) : -1;
    text = tuning_file(path, sizeof(path));
    if (CHECK(text != NULL)) {
        printf("%s:\n%s", path, text);
        CHECK(count_pointwise_verdicts(text) == pointwise);
        CHECK(count_entries(text) == EXPECTED_OPERATIONS + EXPECTED_WINOGRAD + pointwise);
        CHECK(strstr(text, verdict_a) != NULL);
        CHECK(strstr(text, weights_verdict_a) != NULL);
        if (winograd_chosen(text, verdict_a) || winograd_chosen(text, weights_verdict_a))
            printf("Winograd was chosen for a's forward or backward-weights: results differ by "
                   "its rounding, "
                   "not compared bit for bit\n");
        else
            CHECK(on.values && same_outcome(&on, &off));
    }
    free(on.values);
    free(text);

    /* Which entries: read back through a context's table. */
    clcnn_net *net = ctx ? make_net(ctx, "") : NULL;
    if (net) {
        const char *layers[] = {"a", "b", "c", "d", "fc"};
        for (size_t i = 0; i < sizeof(layers) / sizeof(layers[0]); i++) {
            const conv2d_params p =
                layer_conv2d_params(&net->layers[net_find_layer(net, layers[i])], BATCH);
            const int first = i == 0;
            if (!CHECK(tuning_has(ctx, "forward", &p)) ||
                !CHECK(tuning_has(ctx, "backward_weights", &p)) ||
                !CHECK(tuning_has(ctx, "backward_data", &p) == !first))
                fprintf(stderr, "layer %s\n", layers[i]);
        }
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);

    /* Configurations far from the defaults, and from each other. */
    const char *forced[] = {"4,1,3", "16,2,5"};
    for (size_t i = 0; i < sizeof(forced) / sizeof(forced[0]); i++) {
        outcome other = {0};
        if (run("CLCNN_DIRECT", forced[i], -1, &other, &tuned)) {
            printf("CLCNN_DIRECT=%s: losses %.9g %.9g\n", forced[i], other.losses[0],
                   other.losses[1]);
            CHECK(tuned == 0);
            if (!CHECK(same_outcome(&other, &off)))
                fprintf(stderr, "CLCNN_DIRECT=%s changed the results\n", forced[i]);
        }
        free(other.values);
    }
    free(off.values);
}

/* ---- 3 and 4 -------------------------------------------------------------------------------- */

static void check_tuned_once(void) {
    char path[1400];
    char *before = tuning_file(path, sizeof(path));
    if (!CHECK(before != NULL))
        return;
    clcnn_context *ctx = context_with(NULL, NULL);
    if (!ctx) {
        free(before);
        return;
    }
    /* The same shapes under other names: the file has them all. */
    outcome again = {0};
    clcnn_net *twin = make_net(ctx, "twin_");
    if (twin && train_steps(ctx, twin, &again))
        CHECK(ctx->autotuned_operations == 0);
    free(again.values);
    clcnn_net *second = make_net(ctx, "second_");
    if (second && train_steps(ctx, second, &again))
        CHECK(ctx->autotuned_operations == 0);
    free(again.values);
    clcnn_net_destroy(twin);
    clcnn_net_destroy(second);
    char *after = tuning_file(path, sizeof(path));
    CHECK(after != NULL && strcmp(before, after) == 0);
    free(before);
    free(after);

    /* A shape not seen yet, planned for inference: forward only. */
    clcnn_net *net = NULL;
    const char *text = "input channels=12 height=6 width=6\n"
                       "conv filters=24 size=3 pad=1 name=wide\n"
                       "globalavgpool\n";
    if (CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "inference.net", &net))) {
        float images[2 * 12 * 6 * 6] = {0}, output[2 * 24];
        CHECK_OK(ctx, clcnn_net_forward(net, images, 2, output, NULL, NULL));
        const conv2d_params p = layer_conv2d_params(&net->layers[1], 2);
        CHECK(ctx->autotuned_operations == 1);
        CHECK(tuning_has(ctx, "forward", &p));
        CHECK(!tuning_has(ctx, "backward_data", &p));
        CHECK(!tuning_has(ctx, "backward_weights", &p));
        after = tuning_file(path, sizeof(path));
        /* Its forward and Winograd's verdict. */
        CHECK(count_entries(after) ==
              EXPECTED_OPERATIONS + EXPECTED_WINOGRAD + expected_pointwise_verdicts(ctx) + 2);
        CHECK(strstr(after, "forward 12 24 6 6 3 3 1 1 1 1 n2 = ") != NULL);
        free(after);

        /* 6: batch 3 is of batch 2's class, 4 of another; 87 is below the
         * full batch of 6x6 outputs (88), in the class of 64. */
        const conv2d_params three = layer_conv2d_params(&net->layers[1], 3);
        const conv2d_params four = layer_conv2d_params(&net->layers[1], 4);
        const conv2d_params below = layer_conv2d_params(&net->layers[1], 87);
        const conv2d_params full = layer_conv2d_params(&net->layers[1], 88);
        CHECK(tuning_full_batch(&full) == 88);
        CHECK(tuning_has(ctx, "forward", &three));
        CHECK(!tuning_has(ctx, "forward", &four));
        CHECK(!tuning_has(ctx, "forward", &full));
        float *many = calloc(88 * 12 * 6 * 6, sizeof(float)),
              *many_out = malloc(88 * 24 * sizeof(float));
        if (CHECK(many && many_out) &&
            CHECK_OK(ctx, clcnn_net_forward(net, many, 88, many_out, NULL, NULL))) {
            CHECK(ctx->autotuned_operations == 2);
            CHECK(tuning_has(ctx, "forward", &full));
            CHECK(!tuning_has(ctx, "forward", &below));
            CHECK(tuning_has(ctx, "forward", &p));
            after = tuning_file(path, sizeof(path));
            CHECK(after && strstr(after, "forward 12 24 6 6 3 3 1 1 1 1 = ") != NULL);
            CHECK(count_entries(after) ==
                  EXPECTED_OPERATIONS + EXPECTED_WINOGRAD + expected_pointwise_verdicts(ctx) + 4);
            free(after);
        }
        /* From twice the full batch up, one class more: 175 is of 88's,
         * 176 and 1000 of their own, tuned at 176. */
        const conv2d_params short_of_twice = layer_conv2d_params(&net->layers[1], 175);
        const conv2d_params twice = layer_conv2d_params(&net->layers[1], 176);
        const conv2d_params thousand = layer_conv2d_params(&net->layers[1], 1000);
        CHECK(tuning_batch_class(&below) == 64);
        CHECK(tuning_batch_class(&full) == 88);
        CHECK(tuning_batch_class(&short_of_twice) == 88);
        CHECK(tuning_batch_class(&twice) == 176);
        CHECK(tuning_batch_class(&thousand) == 176);
        CHECK(tuning_has(ctx, "forward", &short_of_twice));
        CHECK(!tuning_has(ctx, "forward", &thousand));
        free(many);
        free(many_out);
        many = calloc(200 * 12 * 6 * 6, sizeof(float));
        many_out = malloc(200 * 24 * sizeof(float));
        if (CHECK(many && many_out) &&
            CHECK_OK(ctx, clcnn_net_forward(net, many, 200, many_out, NULL, NULL))) {
            CHECK(ctx->autotuned_operations == 3);
            CHECK(tuning_has(ctx, "forward", &thousand));
            CHECK(tuning_has(ctx, "forward", &full));
            after = tuning_file(path, sizeof(path));
            CHECK(after && strstr(after, "forward 12 24 6 6 3 3 1 1 1 1 n176 = ") != NULL);
            CHECK(after && strstr(after, "forward 12 24 6 6 3 3 1 1 1 1 = ") != NULL);
            CHECK(count_entries(after) ==
                  EXPECTED_OPERATIONS + EXPECTED_WINOGRAD + expected_pointwise_verdicts(ctx) + 6);
            free(after);
        }
        free(many);
        free(many_out);
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

/* ---- 5 ------------------------------------------------------------------------------------ */

static void check_switches(void) {
    clcnn_context *ctx = context_with("CLCNN_AUTOTUNE", "0");
    if (ctx) {
        CHECK(!autotune_enabled(ctx));
        CHECK_OK(ctx, clcnn_context_set_autotune(ctx, 1));
        CHECK(autotune_enabled(ctx));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_AUTOTUNE", "1");
    if (ctx) {
        CHECK(autotune_enabled(ctx));
        CHECK_OK(ctx, clcnn_context_set_autotune(ctx, 0));
        CHECK(!autotune_enabled(ctx));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_DIRECT", "8,1,4");
    if (ctx) {
        CHECK_OK(ctx, clcnn_context_set_autotune(ctx, 1));
        CHECK(!autotune_enabled(ctx));
        clcnn_context_destroy(ctx);
    }
    ctx = context_with("CLCNN_NO_TUNING", "1");
    if (ctx) {
        CHECK(!autotune_enabled(ctx));
        clcnn_context_destroy(ctx);
    }
    clcnn_context *reference = clcnn_context_create();
    if (CHECK(reference != NULL)) {
        CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, -1, -1));
        CHECK(!autotune_enabled(reference));
        clcnn_context_destroy(reference);
    }
}

int main(void) {
    /* Not created here: on a clean machine the cache directory does not
     * exist yet either, and the tuning file must land all the same (it did
     * not, and a second context then tuned again and could choose otherwise). */
    setenv("XDG_CACHE_HOME", test_path("cache/home"), 1);
    setenv("CLCNN_CONV", "direct", 1);
    clcnn_context *probe = test_opencl_context();
    if (!probe) {
        test_skip("no OpenCL device");
        return test_finish();
    }
    clcnn_context_destroy(probe);
    check_same_results_and_entries();
    check_tuned_once();
    check_switches();
    return test_finish();
}
