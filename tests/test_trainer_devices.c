/* The trainer on the OpenCL device against the trainer on the reference
 * device, and the learning-rate schedules against hand values.
 *
 * Devices: one network (conv, batchnorm, relu, max pooling, dropout, dense)
 * trained from the same weights on the same data for two epochs (12 steps)
 * on each device, with SGD (momentum, weight decay, a step schedule) and
 * with Adam (a cosine schedule). Afterwards every tensor (weights, biases,
 * batchnorm's running statistics) and the optimizer state (momentum; Adam's
 * m and v) must agree. The devices differ by float rounding only (the
 * kernels sum in float, the reference in double), which twelve steps carry
 * to some 1e-7 of a tensor's largest value; the check allows 1e-5 of it,
 * and a control run shows that a momentum (Adam: beta1) of 0.89 instead of
 * 0.9 on the same device, some 1e-1 off, is caught by the same comparison.
 *
 * Schedules: with plain SGD (no momentum, no weight decay) on the reference
 * device, every step's update is -lr * g, with g the gradient the gradient
 * hook sees. The learning rate actually applied, -delta / g, and the one
 * progress reports, are checked in every epoch against values worked by hand:
 *   constant 0.1:                          0.1 every epoch
 *   step 0.1, decay 0.5 every 2 epochs:    0.1, 0.1, 0.05, 0.05, 0.025
 *   cosine 0.1 over 4 epochs:              0.1, 0.1 (1 + cos(pi/4)) / 2 =
 *                                          0.0853553390593274, 0.05,
 *                                          0.0146446609406726 */
#include "internal.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIDE = 8, CLASSES = 4, IMAGES = 96, BATCH = 16, MAX_TENSORS = 32 };

/* The convolution before batchnorm has no bias: batchnorm takes the mean
 * out, so the bias's gradient is zero but for rounding, and Adam, which
 * divides by its size, would turn that rounding into whole steps. */
static const char net_text[] = "input channels=1 height=8 width=8\n"
                               "conv filters=6 size=3 pad=1 bias=false\n"
                               "batchnorm\n"
                               "relu\n"
                               "maxpool size=2\n"
                               "flatten\n"
                               "dropout rate=0.25\n"
                               "dense units=16\n"
                               "relu\n"
                               "dense units=4\n"
                               "softmax\n";

static float images[IMAGES * SIDE * SIDE];
static int32_t labels[IMAGES];

static clcnn_dataset make_data(void) {
    test_rng rng = {4242};
    for (int i = 0; i < IMAGES; i++) {
        labels[i] = i % CLASSES;
        float *image = images + i * SIDE * SIDE;
        for (int p = 0; p < SIDE * SIDE; p++)
            image[p] = test_rand_float(&rng, -0.5f, 0.5f);
        const int top = (labels[i] / 2) * 4, left = (labels[i] % 2) * 4;
        for (int y = top; y < top + 4; y++)
            for (int x = left; x < left + 4; x++)
                image[y * SIDE + x] += 1.0f;
    }
    clcnn_dataset data;
    memset(&data, 0, sizeof(data));
    data.count = IMAGES;
    data.channels = 1;
    data.height = SIDE;
    data.width = SIDE;
    data.classes = CLASSES;
    data.images = images;
    data.labels = labels;
    return data;
}

static clcnn_context *context_on(clcnn_device_kind kind) {
    clcnn_context *ctx =
        kind == CLCNN_DEVICE_OPENCL ? test_opencl_context() : clcnn_context_create();
    if (ctx && kind == CLCNN_DEVICE_REFERENCE &&
        clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK) {
        clcnn_context_destroy(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* A finished run: every tensor by name and the optimizer state. */
typedef struct run_result {
    int ok;
    int tensor_count;
    char names[MAX_TENSORS][64];
    int64_t counts[MAX_TENSORS];
    float *tensors[MAX_TENSORS];
    int64_t state_floats;
    float *state1, *state2;
    int64_t steps;
} run_result;

static void free_result(run_result *r) {
    for (int i = 0; i < r->tensor_count; i++)
        free(r->tensors[i]);
    free(r->state1);
    free(r->state2);
    memset(r, 0, sizeof(*r));
}

/* Trains the network for `epochs` epochs on ctx's device. */
static run_result train_on(clcnn_context *ctx, const clcnn_train_config *config,
                           const clcnn_dataset *data) {
    run_result r;
    memset(&r, 0, sizeof(r));
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "trainer.net", &net)) ||
        !CHECK_OK(ctx, clcnn_net_init_weights(net, 11)) ||
        !CHECK_OK(ctx, clcnn_trainer_create(net, config, &trainer))) {
        clcnn_net_destroy(net);
        return r;
    }
    r.ok = 1;
    for (int e = 0; e < config->epochs && r.ok; e++) {
        double loss, accuracy;
        r.ok = CHECK_OK(ctx, clcnn_trainer_epoch(trainer, data, NULL, NULL, &loss, &accuracy));
    }
    r.tensor_count = clcnn_net_tensor_count(net);
    if (!CHECK(r.tensor_count <= MAX_TENSORS))
        r.tensor_count = 0;
    for (int i = 0; i < r.tensor_count && r.ok; i++) {
        clcnn_tensor_info info;
        r.ok = CHECK_OK(ctx, clcnn_net_tensor_info(net, i, &info));
        snprintf(r.names[i], sizeof(r.names[i]), "%s", info.name);
        r.counts[i] = info.count;
        r.tensors[i] = malloc(sizeof(float) * (size_t)info.count);
        r.ok =
            r.ok && CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, r.tensors[i], info.count));
    }
    if (r.ok && CHECK_OK(ctx, trainer_sync_state_to_host(trainer))) {
        r.state_floats = net->parameter_floats;
        r.state1 = malloc(sizeof(float) * (size_t)r.state_floats);
        r.state2 = malloc(sizeof(float) * (size_t)r.state_floats);
        memcpy(r.state1, trainer->host_state1, sizeof(float) * (size_t)r.state_floats);
        memcpy(r.state2, trainer->host_state2, sizeof(float) * (size_t)r.state_floats);
        r.steps = trainer->step;
    } else {
        r.ok = 0;
    }
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    return r;
}

/* Worst |a - b| over n values relative to the largest |b| (or 1e-12). */
static double error_of(const float *a, const float *b, int64_t n) {
    double largest = 1e-12, worst = 0;
    for (int64_t i = 0; i < n; i++)
        largest = fmax(largest, fabs(b[i]));
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    }
    return worst / largest;
}

/* The worst error over every tensor and the optimizer state; prints the
 * ones above tolerance (when report is set). */
static double compare(const run_result *a, const run_result *b, double tolerance, int report,
                      const char *what) {
    double worst = 0;
    if (!a->ok || !b->ok || a->tensor_count != b->tensor_count ||
        a->state_floats != b->state_floats || a->steps != b->steps)
        return INFINITY;
    for (int i = 0; i < a->tensor_count; i++) {
        const double e = error_of(a->tensors[i], b->tensors[i], a->counts[i]);
        if (report && e > tolerance)
            printf("%s: %s differs by %.3g of its largest value\n", what, a->names[i], e);
        worst = fmax(worst, e);
    }
    const float *states[2][2] = {{a->state1, b->state1}, {a->state2, b->state2}};
    for (int s = 0; s < 2; s++) {
        const double e = error_of(states[s][0], states[s][1], a->state_floats);
        if (report && e > tolerance)
            printf("%s: optimizer state %d differs by %.3g of its largest value\n", what, s + 1, e);
        worst = fmax(worst, e);
    }
    return worst;
}

static void check_devices(clcnn_context *opencl, clcnn_context *reference,
                          const clcnn_dataset *data, clcnn_optimizer optimizer) {
    const double tolerance = 1e-5;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.epochs = 2;
    config.batch_size = BATCH;
    config.seed = 5;
    config.optimizer = optimizer;
    const char *name = optimizer == CLCNN_SGD ? "SGD with momentum" : "Adam";
    if (optimizer == CLCNN_SGD) {
        config.learning_rate = 0.05;
        config.momentum = 0.9;
        config.weight_decay = 1e-3;
        config.schedule = CLCNN_SCHEDULE_STEP;
        config.step_epochs = 1;
        config.decay = 0.5;
    } else {
        config.learning_rate = 0.01;
        config.schedule = CLCNN_SCHEDULE_COSINE;
    }
    run_result on_device = train_on(opencl, &config, data);
    run_result on_reference = train_on(reference, &config, data);
    CHECK(on_reference.steps == 2 * IMAGES / BATCH);
    /* Adam's state 2 (v) and SGD's unused state 2 are compared too. */
    const double error = compare(&on_device, &on_reference, tolerance, 1, name);
    CHECK(error <= tolerance);
    /* The control: a different momentum (beta1 for Adam) on the reference. */
    clcnn_train_config other = config;
    if (optimizer == CLCNN_SGD)
        other.momentum = 0.89;
    else
        other.beta1 = 0.89;
    run_result control = train_on(reference, &other, data);
    const double control_error = compare(&control, &on_reference, tolerance, 0, name);
    CHECK(control_error > 10 * tolerance);
    printf("%s, %lld steps: OpenCL against the reference trainer, worst difference %.3g of a "
           "tensor's largest value (allowed %.0e); %s 0.89 instead of 0.9 gives %.3g\n",
           name, (long long)on_reference.steps, error, tolerance,
           optimizer == CLCNN_SGD ? "momentum" : "beta1", control_error);
    free_result(&on_device);
    free_result(&on_reference);
    free_result(&control);
}

/* ---- schedules --------------------------------------------------------------------------- */

typedef struct schedule_probe {
    clcnn_net *net;
    int64_t floats;
    float *before, *gradient;
    double reported[8], applied[8];
    int applied_count[8];
} schedule_probe;

static void read_parameters(clcnn_net *net, float *out) {
    memcpy(out, net->host_parameters, sizeof(float) * (size_t)net->parameter_floats);
}

static clcnn_status record_gradient(void *user, float *gradients, int64_t count,
                                    clcnn_gradient_step *step) {
    schedule_probe *probe = user;
    memcpy(probe->gradient, gradients, sizeof(float) * (size_t)count);
    read_parameters(probe->net, probe->before);
    return CLCNN_OK;
}

static int after_batch(void *user, const clcnn_progress *progress) {
    schedule_probe *probe = user;
    const int e = progress->epoch - 1;
    if (progress->batch == 1)
        probe->reported[e] = progress->learning_rate;
    /* lr = -(after - before) / g over the values with a sizeable gradient. */
    float *after = malloc(sizeof(float) * (size_t)probe->floats);
    read_parameters(probe->net, after);
    double sum = 0;
    int n = 0;
    for (int64_t i = 0; i < probe->floats; i++)
        if (fabs(probe->gradient[i]) > 1e-3) {
            sum += -((double)after[i] - probe->before[i]) / probe->gradient[i];
            n++;
        }
    free(after);
    if (n > 0 && progress->batch == 1) {
        probe->applied[e] = sum / n;
        probe->applied_count[e] = n;
    }
    return 0; /* go on */
}

static void check_schedule(clcnn_context *reference, const clcnn_dataset *data,
                           clcnn_schedule schedule, int epochs, const double *hand,
                           const char *name) {
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.epochs = epochs;
    config.batch_size = BATCH;
    config.learning_rate = 0.1;
    config.momentum = 0.0;
    config.weight_decay = 0.0;
    config.schedule = schedule;
    config.decay = 0.5;
    config.step_epochs = 2;
    /* A network without dropout or batchnorm, so every step is plain. */
    const char *text = "input channels=1 height=8 width=8\nflatten\ndense units=4\nsoftmax\n";
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (!CHECK_OK(reference, clcnn_net_from_string(reference, text, "schedule.net", &net)) ||
        !CHECK_OK(reference, clcnn_net_init_weights(net, 3)) ||
        !CHECK_OK(reference, clcnn_trainer_create(net, &config, &trainer))) {
        clcnn_net_destroy(net);
        return;
    }
    schedule_probe probe;
    memset(&probe, 0, sizeof(probe));
    probe.net = net;
    probe.floats = net->parameter_floats;
    probe.before = calloc((size_t)probe.floats, sizeof(float));
    probe.gradient = calloc((size_t)probe.floats, sizeof(float));
    CHECK_OK(reference, clcnn_trainer_set_gradient_hook(trainer, record_gradient, &probe));
    for (int e = 0; e < epochs; e++) {
        double loss, accuracy;
        if (!CHECK_OK(reference,
                      clcnn_trainer_epoch(trainer, data, after_batch, &probe, &loss, &accuracy)))
            break;
    }
    printf("%-8s schedule, lr by epoch (hand / reported / applied):", name);
    for (int e = 0; e < epochs; e++) {
        printf(" %.6g/%.6g/%.6g", hand[e], probe.reported[e], probe.applied[e]);
        CHECK(fabs(probe.reported[e] - hand[e]) <= 1e-12 * hand[e]);
        /* -delta / g in float: the update rounds to float. */
        CHECK(probe.applied_count[e] > 0);
        CHECK(fabs(probe.applied[e] - hand[e]) <= 1e-4 * hand[e]);
    }
    printf("\n");
    free(probe.before);
    free(probe.gradient);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
}

int main(void) {
    clcnn_dataset data = make_data();
    clcnn_context *reference = context_on(CLCNN_DEVICE_REFERENCE);
    clcnn_context *opencl = context_on(CLCNN_DEVICE_OPENCL);
    if (!CHECK(reference != NULL) || !CHECK(opencl != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(opencl));
    check_devices(opencl, reference, &data, CLCNN_SGD);
    check_devices(opencl, reference, &data, CLCNN_ADAM);

    static const double constant[5] = {0.1, 0.1, 0.1, 0.1, 0.1};
    static const double step[5] = {0.1, 0.1, 0.05, 0.05, 0.025};
    static const double cosine[4] = {0.1, 0.0853553390593274, 0.05, 0.0146446609406726};
    check_schedule(reference, &data, CLCNN_SCHEDULE_CONSTANT, 5, constant, "constant");
    check_schedule(reference, &data, CLCNN_SCHEDULE_STEP, 5, step, "step");
    check_schedule(reference, &data, CLCNN_SCHEDULE_COSINE, 4, cosine, "cosine");
    clcnn_context_destroy(opencl);
    clcnn_context_destroy(reference);
    return test_finish();
}
