/* `clcnn grad` through the command line, on both devices.
 *
 * For some thirty small networks with random weights and inputs, covering
 * every layer type and option and every loss (cross-entropy on a softmax's
 * input or on logits, binary cross-entropy on a sigmoid's input or on a
 * logit, mean squared error with float targets or one-hot integer labels,
 * with and without --loss):
 *   - both devices exit 0, print "loss <value>" and write every gradient
 *     file in PyTorch's shapes (and no bias file for a layer without bias);
 *   - the OpenCL and reference gradients agree within 1e-4 and the losses
 *     within 1e-5;
 *   - the printed loss of each device equals the loss this test computes in
 *     double from that device's own forward output (`clcnn forward --trace`).
 * Plus a dense layer with softmax worked by hand, and the errors: no
 * --labels, labels of the wrong length, a label out of range, --loss bce on
 * a 10-unit output.
 *
 * And a leaky relu with a negative slope worked by hand: its gradient must be
 * decided by the sign of the input, as PyTorch does, since the output is
 * positive on both sides.
 */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { OUTPUT_LIMIT = 1 << 14, MAX_LAYERS = 32 };

static const char *const devices[2] = {"opencl", "reference"};

/* The loss a case must be trained with (what --loss auto picks, or the option given). */
typedef enum expected_loss { LOSS_XENT, LOSS_BCE, LOSS_MSE } expected_loss;

/* What --labels holds. */
typedef enum target_kind {
    TARGET_INT32,        /* class indices (N,) */
    TARGET_INT64,        /* class indices (N,) */
    TARGET_FLOAT_VECTOR, /* float32 (N,): binary targets, or MSE targets of one output */
    TARGET_FLOAT_COLUMN, /* float32 (N, 1) */
    TARGET_FLOAT_MATRIX, /* float32 (N, D): MSE targets of every output */
} target_kind;

typedef struct grad_case {
    const char *text;
    const char *loss_option; /* the --loss value, or NULL for none */
    expected_loss loss;
    int from_last_input; /* 1 when the loss starts at the input of the last layer
                            (cross-entropy on a softmax, BCE on a sigmoid) */
    target_kind targets;
} grad_case;

static const grad_case cases[] = {
    /* cross-entropy on the softmax's input */
    {"input channels=1 height=6 width=6\nconv filters=3 size=3\nrelu\nmaxpool size=2\nflatten\n"
     "dense units=4\nsoftmax\n",
     NULL, LOSS_XENT, 1, TARGET_INT32},
    {"input channels=2 height=7 width=5\nconv filters=4 size=3x2 stride=2 pad=1\ntanh\nflatten\n"
     "dense units=5 bias=false\nsoftmax\n",
     "xent", LOSS_XENT, 1, TARGET_INT64},
    {"input channels=3 height=5 width=5\nconv filters=2 size=1 bias=false\nleaky\n"
     "avgpool size=2 stride=1\nflatten\ndense units=3\nsoftmax\n",
     "auto", LOSS_XENT, 1, TARGET_INT32},
    {"input channels=1 height=4 width=4\nflatten\nsoftmax\n", NULL, LOSS_XENT, 1, TARGET_INT32},
    {"input channels=2 height=6 width=6\nconv filters=3 size=3 pad=same\nsigmoid\n"
     "maxpool size=3 stride=2 ceil=true\nflatten\ndense units=6 name=scores\nsoftmax\n",
     NULL, LOSS_XENT, 1, TARGET_INT64},
    {"input channels=2 height=6 width=7\nconv filters=2 size=2x3 stride=1x2 pad=2x1\nrelu\n"
     "maxpool size=2x3 stride=1x2\nflatten\ndense units=3\nsoftmax\n",
     NULL, LOSS_XENT, 1, TARGET_INT32},
    {"input channels=1 height=7 width=7\nrelu\nmaxpool size=3 stride=2 pad=1 ceil=true\nflatten\n"
     "dense units=3\nsoftmax\n",
     NULL, LOSS_XENT, 1, TARGET_INT32},
    {"input channels=3 height=8 width=8\nconv filters=4 size=3 pad=1\nrelu\n"
     "conv filters=4 size=3 pad=1 bias=false\nrelu\nmaxpool size=2\nconv filters=2 size=1\n"
     "flatten\ndense units=8\nrelu\ndense units=3\nsoftmax\n",
     NULL, LOSS_XENT, 1, TARGET_INT32},
    {"input channels=1 height=4 width=4\nconv filters=2 size=3 name=first\nflatten name=flat\n"
     "dense units=3 name=head\nsoftmax name=probabilities\n",
     NULL, LOSS_XENT, 1, TARGET_INT64},
    /* --loss xent on a network not ending in softmax: the output as logits */
    {"input channels=1 height=5 width=5\nconv filters=2 size=2 pad=1\nrelu\nflatten\n"
     "dense units=4\n",
     "xent", LOSS_XENT, 0, TARGET_INT32},
    {"input channels=2 height=4 width=4\navgpool size=2 pad=1 ceil=true\nflatten\ndense units=3\n"
     "tanh\n",
     "xent", LOSS_XENT, 0, TARGET_INT64},
    {"input channels=2 height=7 width=7\navgpool size=2 stride=3\nconv filters=2 size=2\nsigmoid\n"
     "flatten\ndense units=2\n",
     "xent", LOSS_XENT, 0, TARGET_INT64},
    /* binary cross-entropy on the sigmoid's input */
    {"input channels=1 height=6 width=6\nconv filters=2 size=3\nrelu\nflatten\ndense units=1\n"
     "sigmoid\n",
     NULL, LOSS_BCE, 1, TARGET_FLOAT_VECTOR},
    {"input channels=2 height=5 width=4\nmaxpool size=2 stride=1 pad=1\nflatten\n"
     "dense units=1 bias=false\nsigmoid\n",
     "bce", LOSS_BCE, 1, TARGET_FLOAT_COLUMN},
    {"input channels=1 height=5 width=5\nconv filters=1 size=5\nsigmoid\n", NULL, LOSS_BCE, 1,
     TARGET_FLOAT_COLUMN},
    {"input channels=1 height=3 width=3\ntanh\nflatten\ndense units=1\nsigmoid\n", "auto", LOSS_BCE,
     1, TARGET_INT32},
    /* --loss bce on a network not ending in sigmoid: the output as a logit */
    {"input channels=2 height=4 width=4\nconv filters=2 size=3 pad=1 bias=false\nleaky slope=0.2\n"
     "flatten\ndense units=1\n",
     "bce", LOSS_BCE, 0, TARGET_FLOAT_VECTOR},
    {"input channels=1 height=4 width=6\navgpool size=2x3\nflatten\ndense units=1\ntanh\n", "bce",
     LOSS_BCE, 0, TARGET_FLOAT_COLUMN},
    /* mean squared error with float targets */
    {"input channels=1 height=6 width=6\nconv filters=2 size=3x5 pad=1x2\nrelu\nflatten\n"
     "dense units=3\n",
     NULL, LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=3 height=6 width=6\nconv filters=2 size=3 stride=2 pad=same\n", NULL, LOSS_MSE,
     0, TARGET_FLOAT_MATRIX},
    {"input channels=2 height=7 width=7\nmaxpool size=3 stride=2 pad=1 ceil=true\n"
     "conv filters=2 size=2 stride=2x1\nsigmoid\n",
     NULL, LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=1 height=8 width=8\nconv filters=3 size=3 stride=2 pad=same\ntanh\n"
     "avgpool size=2 stride=1 pad=1\nflatten\ndense units=2 bias=false\n",
     "mse", LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=2 height=5 width=5\nleaky slope=1.5\nconv filters=3 size=2\nflatten\n"
     "dense units=1\n",
     NULL, LOSS_MSE, 0, TARGET_FLOAT_VECTOR},
    {"input channels=1 height=6 width=5\nconv filters=2 size=3 pad=2\nmaxpool size=2 stride=3\n"
     "flatten\ndense units=4\nsigmoid\n",
     "auto", LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=2 height=3 width=4\nsoftmax\n", "mse", LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=1 height=5 width=5\nleaky\nconv filters=2 size=3 pad=same\nflatten\n"
     "dense units=2\ntanh\n",
     NULL, LOSS_MSE, 0, TARGET_FLOAT_MATRIX},
    {"input channels=1 height=4 width=4\nflatten\ndense units=1\nsigmoid\n", "mse", LOSS_MSE, 0,
     TARGET_FLOAT_COLUMN},
    /* mean squared error with integer labels, one-hot */
    {"input channels=1 height=5 width=5\nconv filters=2 size=3\nrelu\nflatten\ndense units=5\n",
     NULL, LOSS_MSE, 0, TARGET_INT32},
    {"input channels=2 height=4 width=4\nconv filters=3 size=1\nflatten\ndense units=3\ntanh\n",
     "mse", LOSS_MSE, 0, TARGET_INT64},
    {"input channels=1 height=6 width=6\nconv filters=2 size=3 pad=1\nflatten\ndense units=4\n"
     "softmax\n",
     "mse", LOSS_MSE, 0, TARGET_INT32},
    {"input channels=3 height=3 width=3\nconv filters=2 size=1\n", NULL, LOSS_MSE, 0, TARGET_INT64},
};
enum { CASE_COUNT = sizeof(cases) / sizeof(cases[0]) };

static clcnn_context *files; /* a context on the reference device, for files and shapes */
static double worst_device_gradient_error, worst_device_loss_error, worst_recomputed_loss_error;

/* ---- files ---------------------------------------------------------------------------------- */

static int write_npy(const char *path, clcnn_dtype dtype, int ndim, const int64_t *shape,
                     void *data) {
    clcnn_array array = {0};
    array.dtype = dtype;
    array.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        array.shape[i] = shape[i];
    array.data = data;
    return CHECK_OK(files, clcnn_npy_write(files, path, &array));
}

/* Reads a float32 .npy of exactly this shape into *array; 0 (after a failed check) otherwise. */
static int read_float32(const char *path, int ndim, const int64_t *shape, clcnn_array *array) {
    if (!CHECK_OK(files, clcnn_npy_read(files, path, array)))
        return 0;
    int ok = array->dtype == CLCNN_FLOAT32 && array->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = array->shape[i] == shape[i];
    if (!ok) {
        fprintf(stderr, "%s: dtype %d, %d dimensions (%lld, ...), expected float32 with %d\n", path,
                (int)array->dtype, array->ndim, (long long)array->shape[0], ndim);
        clcnn_array_free(array);
    }
    return CHECK(ok);
}

static int file_exists(const char *path) {
    struct stat info;
    return stat(path, &info) == 0;
}

/* ---- the loss, recomputed in double --------------------------------------------------------- */

/* The mean loss over the batch of the logits (batch x units, float32), and a
 * magnitude for its rounding: the sums of absolute values of what it adds up
 * (logsumexp - z_label: |logsumexp| + |z_label|; softplus(z) - z t:
 * softplus(z) + |z t|; (y - t)^2: |y - t| (|y| + |t|)). */
static double recompute_loss(expected_loss loss, const float *logits, int64_t batch, int64_t units,
                             const int64_t *class_labels, const double *float_targets,
                             double *magnitude) {
    double sum = 0.0, magnitude_sum = 0.0;
    for (int64_t n = 0; n < batch; n++) {
        const float *z = logits + n * units;
        if (loss == LOSS_XENT) {
            double largest = z[0];
            for (int64_t j = 1; j < units; j++)
                largest = fmax(largest, z[j]);
            double exponentials = 0.0;
            for (int64_t j = 0; j < units; j++)
                exponentials += exp((double)z[j] - largest);
            double log_sum = largest + log(exponentials);
            double picked = z[class_labels[n]];
            sum += log_sum - picked;
            magnitude_sum += fabs(log_sum) + fabs(picked);
        } else if (loss == LOSS_BCE) {
            double logit = z[0];
            double target = float_targets ? float_targets[n] : (double)class_labels[n];
            double softplus = fmax(logit, 0.0) + log1p(exp(-fabs(logit)));
            sum += softplus - logit * target;
            magnitude_sum += softplus + fabs(logit * target);
        } else {
            for (int64_t j = 0; j < units; j++) {
                double target = float_targets ? float_targets[n * units + j]
                                              : (class_labels[n] == j ? 1.0 : 0.0);
                double difference = (double)z[j] - target;
                sum += difference * difference / (double)units;
                magnitude_sum +=
                    fabs(difference) * (fabs((double)z[j]) + fabs(target)) / (double)units;
            }
        }
    }
    *magnitude = magnitude_sum / (double)batch;
    return sum / (double)batch;
}

/* ---- running clcnn -------------------------------------------------------------------------- */

/* Runs `clcnn --device D grad ...`; returns 1 and the printed loss when it
 * exits 0 and prints "loss <value> (...)". */
static int run_grad(const char *device, const char *net_path, const char *weights_dir,
                    const char *input_path, const char *labels_path, const char *loss_option,
                    const char *output_dir, double *loss) {
    char command[8000], output[OUTPUT_LIMIT];
    char loss_words[64] = "";
    if (loss_option)
        snprintf(loss_words, sizeof(loss_words), " --loss %s", loss_option);
    snprintf(command, sizeof(command),
             "'%s' --device %s grad '%s' --weights '%s' --input '%s' --labels '%s' --output '%s'%s",
             clcnn_bin(), device, net_path, weights_dir, input_path, labels_path, output_dir,
             loss_words);
    int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0)) {
        fprintf(stderr, "%s\n  -> exit %d: %s\n", command, status, output);
        return 0;
    }
    if (!CHECK(strncmp(output, "loss ", 5) == 0 && sscanf(output + 5, "%lf", loss) == 1)) {
        fprintf(stderr, "%s\n  -> unexpected output: %s\n", command, output);
        return 0;
    }
    return 1;
}

static int run_forward_trace(const char *device, const char *net_path, const char *weights_dir,
                             const char *input_path, const char *trace_dir) {
    char command[8000], output[OUTPUT_LIMIT];
    snprintf(command, sizeof(command),
             "'%s' --device %s forward '%s' --weights '%s' --input '%s' --trace '%s'", clcnn_bin(),
             device, net_path, weights_dir, input_path, trace_dir);
    int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0)) {
        fprintf(stderr, "%s\n  -> exit %d: %s\n", command, status, output);
        return 0;
    }
    return 1;
}

/* ---- one random case ------------------------------------------------------------------------ */

/* |a - b| / max(|b|, 1% of the largest |b|): values that cancel to almost
 * nothing are measured against the size of the gradient as a whole, where
 * float rounding of the sums that produce them lives. */
static double gradient_difference(const float *a, const float *b, int64_t count) {
    double largest = 0.0;
    for (int64_t i = 0; i < count; i++)
        largest = fmax(largest, fabs((double)b[i]));
    double worst = 0.0;
    for (int64_t i = 0; i < count; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i]))
            return INFINITY;
        double difference = fabs((double)a[i] - (double)b[i]);
        if (difference == 0.0)
            continue;
        worst = fmax(worst, difference / fmax(fabs((double)b[i]), 0.01 * largest));
    }
    return worst;
}

/* A gradient file of the case: its name and the shape it must have. */
typedef struct gradient_file {
    char name[300];
    int ndim;
    int64_t shape[4];
} gradient_file;

static void run_case(int number, const grad_case *c, test_rng *rng) {
    char name[64], net_path[1200], weights_dir[1200], input_path[1200], labels_path[1200];
    snprintf(name, sizeof(name), "case%02d", number);
    snprintf(net_path, sizeof(net_path), "%s/%s.net", test_dir(), name);
    snprintf(weights_dir, sizeof(weights_dir), "%s/%s-weights", test_dir(), name);
    snprintf(input_path, sizeof(input_path), "%s/%s-input.npy", test_dir(), name);
    snprintf(labels_path, sizeof(labels_path), "%s/%s-labels.npy", test_dir(), name);
    if (!CHECK(write_text(net_path, c->text) == 0) || !CHECK(mkdir(weights_dir, 0755) == 0))
        return;

    clcnn_net *net = NULL;
    if (!CHECK_OK(files, clcnn_net_from_string(files, c->text, name, &net)))
        return;
    const int layer_count = clcnn_net_layer_count(net);
    const int last = layer_count - 1;
    const int logits_index = c->from_last_input ? last - 1 : last;
    clcnn_layer_info infos[MAX_LAYERS];
    for (int i = 0; i < layer_count && i < MAX_LAYERS; i++)
        clcnn_net_layer_info(net, i, &infos[i]);
    const int64_t input_size = clcnn_net_input_size(net);
    const int64_t output_size = clcnn_net_output_size(net);
    int64_t logits_size = 1;
    for (int d = 0; d < infos[logits_index].ndim; d++)
        logits_size *= infos[logits_index].shape[d];

    /* weights: uniform with the variance 1 / fan_in; biases in [-0.5, 0.5] */
    gradient_file grad_files[2 * MAX_LAYERS + 1];
    int grad_file_count = 0;
    for (int i = 1; i < layer_count; i++) {
        const clcnn_layer_info *info = &infos[i];
        if (info->weight_count == 0)
            continue;
        int64_t fan_in = info->weight_count / info->weight_shape[0];
        float limit = (float)sqrt(3.0 / (double)fan_in);
        float *weight = malloc(sizeof(float) * (size_t)info->weight_count);
        for (int64_t j = 0; j < info->weight_count; j++)
            weight[j] = test_rand_float(rng, -limit, limit);
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.weight.npy", weights_dir, info->name);
        write_npy(path, CLCNN_FLOAT32, info->weight_ndim, info->weight_shape, weight);
        free(weight);
        gradient_file *file = &grad_files[grad_file_count++];
        snprintf(file->name, sizeof(file->name), "%s.weight.grad.npy", info->name);
        file->ndim = info->weight_ndim;
        memcpy(file->shape, info->weight_shape, sizeof(file->shape));
        if (info->bias_count > 0) {
            float *bias = malloc(sizeof(float) * (size_t)info->bias_count);
            for (int64_t j = 0; j < info->bias_count; j++)
                bias[j] = test_rand_float(rng, -0.5f, 0.5f);
            snprintf(path, sizeof(path), "%s/%s.bias.npy", weights_dir, info->name);
            write_npy(path, CLCNN_FLOAT32, 1, &info->bias_count, bias);
            free(bias);
            file = &grad_files[grad_file_count++];
            snprintf(file->name, sizeof(file->name), "%s.bias.grad.npy", info->name);
            file->ndim = 1;
            file->shape[0] = info->bias_count;
        }
    }

    const int64_t batch = test_rand_int(rng, 1, 4);
    gradient_file *input_file = &grad_files[grad_file_count++];
    snprintf(input_file->name, sizeof(input_file->name), "input.grad.npy");
    input_file->ndim = 4;
    input_file->shape[0] = batch;
    for (int d = 0; d < 3; d++)
        input_file->shape[d + 1] = infos[0].shape[d];
    float *images = malloc(sizeof(float) * (size_t)(batch * input_size));
    for (int64_t j = 0; j < batch * input_size; j++)
        images[j] = test_rand_float(rng, -1.5f, 1.5f);
    write_npy(input_path, CLCNN_FLOAT32, 4, input_file->shape, images);
    free(images);

    /* labels or targets */
    int64_t class_labels[16];
    double *float_targets = NULL;
    if (c->targets == TARGET_INT32 || c->targets == TARGET_INT64) {
        int64_t classes = c->loss == LOSS_BCE ? 2 : logits_size;
        int32_t labels32[16];
        for (int64_t n = 0; n < batch; n++) {
            class_labels[n] = test_rand_int(rng, 0, (int)classes - 1);
            labels32[n] = (int32_t)class_labels[n];
        }
        if (c->targets == TARGET_INT32)
            write_npy(labels_path, CLCNN_INT32, 1, &batch, labels32);
        else
            write_npy(labels_path, CLCNN_INT64, 1, &batch, class_labels);
    } else {
        int64_t per_image = c->loss == LOSS_MSE ? output_size : 1;
        float_targets = malloc(sizeof(double) * (size_t)(batch * per_image));
        float *values = malloc(sizeof(float) * (size_t)(batch * per_image));
        for (int64_t j = 0; j < batch * per_image; j++) {
            if (c->loss == LOSS_BCE)
                values[j] =
                    j % 2 ? test_rand_float(rng, 0.0f, 1.0f) : (float)test_rand_int(rng, 0, 1);
            else
                values[j] = test_rand_float(rng, -1.0f, 1.0f);
            float_targets[j] = values[j];
        }
        int64_t shape[2] = {batch, per_image};
        write_npy(labels_path, CLCNN_FLOAT32, c->targets == TARGET_FLOAT_VECTOR ? 1 : 2, shape,
                  values);
        free(values);
    }

    /* both devices: grad, then forward --trace for the loss */
    double printed_loss[2] = {0, 0};
    int ran[2] = {0, 0};
    char grad_dirs[2][1200];
    for (int d = 0; d < 2; d++) {
        char trace_dir[1200];
        snprintf(grad_dirs[d], sizeof(grad_dirs[d]), "%s/%s-grad-%s", test_dir(), name, devices[d]);
        snprintf(trace_dir, sizeof(trace_dir), "%s/%s-trace-%s", test_dir(), name, devices[d]);
        ran[d] = run_grad(devices[d], net_path, weights_dir, input_path, labels_path,
                          c->loss_option, grad_dirs[d], &printed_loss[d]) &&
                 run_forward_trace(devices[d], net_path, weights_dir, input_path, trace_dir);
        if (!ran[d])
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%02d-%s.npy", trace_dir, logits_index,
                 infos[logits_index].name);
        clcnn_array logits;
        if (!CHECK_OK(files, clcnn_npy_read(files, path, &logits)))
            continue;
        if (CHECK(logits.dtype == CLCNN_FLOAT32 &&
                  clcnn_array_count(&logits) == batch * logits_size)) {
            double magnitude = 0.0;
            double expected = recompute_loss(c->loss, logits.data, batch, logits_size, class_labels,
                                             float_targets, &magnitude);
            double error =
                fabs(printed_loss[d] - expected) / fmax(fmax(fabs(expected), magnitude), 1e-30);
            worst_recomputed_loss_error = fmax(worst_recomputed_loss_error, error);
            if (!CHECK(error <= 1e-5))
                fprintf(stderr, "%s on %s: printed loss %.9g, recomputed %.9g (error %.3g)\n%s",
                        name, devices[d], printed_loss[d], expected, error, c->text);
        }
        clcnn_array_free(&logits);
    }

    if (ran[0] && ran[1]) {
        double error = fabs(printed_loss[0] - printed_loss[1]) / fmax(fabs(printed_loss[1]), 1e-30);
        worst_device_loss_error = fmax(worst_device_loss_error, error);
        if (!CHECK(error <= 1e-5))
            fprintf(stderr, "%s: loss %.9g on opencl, %.9g on reference\n%s", name, printed_loss[0],
                    printed_loss[1], c->text);
    }

    /* every gradient file on both devices, in PyTorch's shapes, and the two devices agreeing */
    for (int f = 0; f < grad_file_count && ran[0] && ran[1]; f++) {
        clcnn_array arrays[2];
        int read[2];
        for (int d = 0; d < 2; d++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%.299s", grad_dirs[d], grad_files[f].name);
            read[d] = read_float32(path, grad_files[f].ndim, grad_files[f].shape, &arrays[d]);
        }
        if (read[0] && read[1]) {
            double error =
                gradient_difference(arrays[0].data, arrays[1].data, clcnn_array_count(&arrays[1]));
            worst_device_gradient_error = fmax(worst_device_gradient_error, error);
            if (!CHECK(error <= 1e-4))
                fprintf(stderr, "%s: %s differs between the devices by %.3g\n%s", name,
                        grad_files[f].name, error, c->text);
        }
        for (int d = 0; d < 2; d++)
            if (read[d])
                clcnn_array_free(&arrays[d]);
    }
    /* a layer without bias has no bias gradient */
    for (int i = 1; i < layer_count && ran[1]; i++) {
        if (infos[i].weight_count > 0 && infos[i].bias_count == 0) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s.bias.grad.npy", grad_dirs[1], infos[i].name);
            CHECK(!file_exists(path));
        }
    }
    free(float_targets);
    clcnn_net_destroy(net);
}

/* ---- the hand-worked case ------------------------------------------------------------------ */

/* Two inputs, a dense layer of two units, softmax; a batch of two:
 *   W = [[1, -1], [0.5, 2]], b = [0.25, -0.5], x1 = [1, 2], x2 = [-1, 0.5], labels 1, 0.
 *   z1 = W x1 + b = [-0.75, 4],  z2 = W x2 + b = [-1.25, 0].
 *   p1 = softmax(z1): p1[0] = 1 / (1 + e^4.75);  p2[0] = 1 / (1 + e^1.25).
 *   L = (-log p1[1] - log p2[0]) / 2 = (log(1 + e^-4.75) + log(1 + e^1.25)) / 2.
 *   dL/dz = (p - onehot) / N:  dz1 = [p1[0], -p1[0]] / 2,  dz2 = [p2[0] - 1, 1 - p2[0]] / 2.
 *   dW = dz^T x (dW[i][j] = dz1[i] x1[j] + dz2[i] x2[j]),  db = dz1 + dz2,  dx = dz W. */
static void hand_worked_case(void) {
    const char *text = "input channels=2 height=1 width=1\nflatten\ndense units=2\nsoftmax\n";
    char net_path[1200], weights_dir[1200], input_path[1200], labels_path[1200], path[4096];
    snprintf(net_path, sizeof(net_path), "%s/hand.net", test_dir());
    snprintf(weights_dir, sizeof(weights_dir), "%s/hand-weights", test_dir());
    snprintf(input_path, sizeof(input_path), "%s/hand-input.npy", test_dir());
    snprintf(labels_path, sizeof(labels_path), "%s/hand-labels.npy", test_dir());
    if (!CHECK(write_text(net_path, text) == 0) || !CHECK(mkdir(weights_dir, 0755) == 0))
        return;
    float weight[4] = {1.0f, -1.0f, 0.5f, 2.0f};
    float bias[2] = {0.25f, -0.5f};
    float images[4] = {1.0f, 2.0f, -1.0f, 0.5f};
    int32_t labels[2] = {1, 0};
    const int64_t weight_shape[2] = {2, 2}, bias_shape[1] = {2}, input_shape[4] = {2, 2, 1, 1},
                  labels_shape[1] = {2};
    snprintf(path, sizeof(path), "%s/dense1.weight.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 2, weight_shape, weight);
    snprintf(path, sizeof(path), "%s/dense1.bias.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 1, bias_shape, bias);
    write_npy(input_path, CLCNN_FLOAT32, 4, input_shape, images);
    write_npy(labels_path, CLCNN_INT32, 1, labels_shape, labels);

    const double p1_first = 1.0 / (1.0 + exp(4.75));
    const double p2_first = 1.0 / (1.0 + exp(1.25));
    const double expected_loss = (log1p(exp(-4.75)) + log1p(exp(1.25))) / 2.0;
    const double dz[2][2] = {{p1_first / 2.0, -p1_first / 2.0},
                             {(p2_first - 1.0) / 2.0, (1.0 - p2_first) / 2.0}};
    const double x[2][2] = {{1.0, 2.0}, {-1.0, 0.5}};
    const double w[2][2] = {{1.0, -1.0}, {0.5, 2.0}};
    double expected_weight[4], expected_bias[2], expected_input[4];
    for (int i = 0; i < 2; i++) {
        expected_bias[i] = dz[0][i] + dz[1][i];
        for (int j = 0; j < 2; j++)
            expected_weight[i * 2 + j] = dz[0][i] * x[0][j] + dz[1][i] * x[1][j];
    }
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 2; j++)
            expected_input[n * 2 + j] = dz[n][0] * w[0][j] + dz[n][1] * w[1][j];
    /* The numbers, for a reader checking by hand (p1[0] = 0.0086, p2[0] = 0.2227). */
    const double written_loss = 0.75527178;
    const double written_weight[4] = {0.3929, -0.1857, -0.3929, 0.1857};
    const double written_bias[2] = {-0.3844, 0.3844};
    const double written_input[4] = {0.0021, -0.0129, -0.1943, 1.1659};
    CHECK(fabs(expected_loss - written_loss) < 1e-8);
    for (int i = 0; i < 4; i++) {
        CHECK(fabs(expected_weight[i] - written_weight[i]) < 1e-4);
        CHECK(fabs(expected_input[i] - written_input[i]) < 1e-4);
    }
    for (int i = 0; i < 2; i++)
        CHECK(fabs(expected_bias[i] - written_bias[i]) < 1e-4);

    for (int d = 0; d < 2; d++) {
        char output_dir[1200];
        snprintf(output_dir, sizeof(output_dir), "%s/hand-grad-%s", test_dir(), devices[d]);
        double loss = 0.0;
        if (!run_grad(devices[d], net_path, weights_dir, input_path, labels_path, NULL, output_dir,
                      &loss))
            continue;
        if (!CHECK(fabs(loss - expected_loss) <= 1e-6))
            fprintf(stderr, "hand-worked on %s: loss %.9g, expected %.9g\n", devices[d], loss,
                    expected_loss);
        const char *names[3] = {"dense1.weight.grad.npy", "dense1.bias.grad.npy", "input.grad.npy"};
        const double *expected[3] = {expected_weight, expected_bias, expected_input};
        const int ndims[3] = {2, 1, 4};
        const int64_t *shapes[3] = {weight_shape, bias_shape, input_shape};
        const int counts[3] = {4, 2, 4};
        for (int f = 0; f < 3; f++) {
            clcnn_array array;
            snprintf(path, sizeof(path), "%s/%s", output_dir, names[f]);
            if (!read_float32(path, ndims[f], shapes[f], &array))
                continue;
            const float *values = array.data;
            for (int i = 0; i < counts[f]; i++) {
                if (!CHECK(fabs((double)values[i] - expected[f][i]) <= 1e-6))
                    fprintf(stderr, "hand-worked on %s: %s[%d] = %.9g, by hand %.9g\n", devices[d],
                            names[f], i, (double)values[i], expected[f][i]);
            }
            clcnn_array_free(&array);
        }
    }
}

/* input (-1, 2) -> leaky slope -0.25 -> (0.25, 2) -> dense [1, 1] -> 2.25; MSE
 * against 0 is 5.0625 with d/dy = 4.5, so the input gradient is
 * (4.5 * -0.25, 4.5) = (-1.125, 4.5). */
static void negative_slope_case(void) {
    const char *text = "input channels=1 height=1 width=2\nleaky slope=-0.25\nflatten\n"
                       "dense units=1 bias=false\n";
    char net_path[1200], weights_dir[1200], input_path[1200], targets_path[1200], path[4096];
    snprintf(net_path, sizeof(net_path), "%s/negative.net", test_dir());
    snprintf(weights_dir, sizeof(weights_dir), "%s/negative-weights", test_dir());
    snprintf(input_path, sizeof(input_path), "%s/negative-input.npy", test_dir());
    snprintf(targets_path, sizeof(targets_path), "%s/negative-targets.npy", test_dir());
    if (!CHECK(write_text(net_path, text) == 0) || !CHECK(mkdir(weights_dir, 0755) == 0))
        return;
    float weight[2] = {1.0f, 1.0f}, image[2] = {-1.0f, 2.0f}, target[1] = {0.0f};
    const int64_t weight_shape[2] = {1, 2}, input_shape[4] = {1, 1, 1, 2},
                  target_shape[2] = {1, 1};
    snprintf(path, sizeof(path), "%s/dense1.weight.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 2, weight_shape, weight);
    write_npy(input_path, CLCNN_FLOAT32, 4, input_shape, image);
    write_npy(targets_path, CLCNN_FLOAT32, 2, target_shape, target);
    for (int d = 0; d < 2; d++) {
        char output_dir[1200];
        snprintf(output_dir, sizeof(output_dir), "%s/negative-grad-%s", test_dir(), devices[d]);
        double loss = 0.0;
        if (!run_grad(devices[d], net_path, weights_dir, input_path, targets_path, NULL,
                      output_dir, &loss))
            continue;
        CHECK(fabs(loss - 5.0625) <= 1e-6);
        clcnn_array array;
        snprintf(path, sizeof(path), "%s/input.grad.npy", output_dir);
        if (!read_float32(path, 4, input_shape, &array))
            continue;
        const float *values = array.data;
        if (!CHECK(fabs(values[0] + 1.125) <= 1e-6 && fabs(values[1] - 4.5) <= 1e-6))
            fprintf(stderr, "negative slope on %s: input gradient (%g, %g), by hand (-1.125, 4.5)\n",
                    devices[d], (double)values[0], (double)values[1]);
        clcnn_array_free(&array);
    }
}

/* ---- errors --------------------------------------------------------------------------------- */

/* Runs command (stdout discarded): it must exit non-zero with exactly one
 * line on stderr containing every one of the words, and write no input gradient. */
static void expect_error(const char *what, const char *command, const char *output_dir,
                         const char *word1, const char *word2) {
    char full[8100], output[OUTPUT_LIMIT], path[4096];
    /* run_command adds 2>&1 after the group: stderr to the capture, stdout discarded */
    snprintf(full, sizeof(full), "{ %s 2>&1 >/dev/null; }", command);
    int status = run_command(full, output, sizeof(output));
    size_t length = strlen(output);
    int one_line =
        length > 0 && output[length - 1] == '\n' && strchr(output, '\n') == output + length - 1;
    int ok = CHECK(status != 0) & CHECK(one_line) & CHECK(strstr(output, word1) != NULL) &
             CHECK(word2 == NULL || strstr(output, word2) != NULL);
    snprintf(path, sizeof(path), "%s/input.grad.npy", output_dir);
    ok &= CHECK(!file_exists(path));
    if (!ok)
        fprintf(stderr, "%s: exit %d, stderr: %s\n", what, status, output);
}

static void error_cases(void) {
    const char *text = "input channels=1 height=4 width=4\nconv filters=2 size=3\nrelu\nflatten\n"
                       "dense units=10\nsoftmax\n";
    char net_path[1200], weights_dir[1200], input_path[1200], path[4096];
    snprintf(net_path, sizeof(net_path), "%s/errors.net", test_dir());
    snprintf(weights_dir, sizeof(weights_dir), "%s/errors-weights", test_dir());
    snprintf(input_path, sizeof(input_path), "%s/errors-input.npy", test_dir());
    if (!CHECK(write_text(net_path, text) == 0) || !CHECK(mkdir(weights_dir, 0755) == 0))
        return;
    float conv_weight[18], conv_bias[2], dense_weight[80], dense_bias[10], images[3 * 16];
    for (int i = 0; i < 18; i++)
        conv_weight[i] = (float)((i % 5) - 2) * 0.25f;
    for (int i = 0; i < 80; i++)
        dense_weight[i] = (float)((i % 7) - 3) * 0.125f;
    for (int i = 0; i < 2; i++)
        conv_bias[i] = 0.1f * (float)i;
    for (int i = 0; i < 10; i++)
        dense_bias[i] = 0.0f;
    for (int i = 0; i < 48; i++)
        images[i] = (float)(i % 9) / 9.0f;
    const int64_t conv_shape[4] = {2, 1, 3, 3}, conv_bias_shape[1] = {2}, dense_shape[2] = {10, 8},
                  dense_bias_shape[1] = {10}, input_shape[4] = {3, 1, 4, 4};
    snprintf(path, sizeof(path), "%s/conv1.weight.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 4, conv_shape, conv_weight);
    snprintf(path, sizeof(path), "%s/conv1.bias.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 1, conv_bias_shape, conv_bias);
    snprintf(path, sizeof(path), "%s/dense1.weight.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 2, dense_shape, dense_weight);
    snprintf(path, sizeof(path), "%s/dense1.bias.npy", weights_dir);
    write_npy(path, CLCNN_FLOAT32, 1, dense_bias_shape, dense_bias);
    write_npy(input_path, CLCNN_FLOAT32, 4, input_shape, images);

    char good_labels[1200], short_labels[1200], bad_labels[1200], float_labels[1200];
    snprintf(good_labels, sizeof(good_labels), "%s/errors-good.npy", test_dir());
    snprintf(short_labels, sizeof(short_labels), "%s/errors-short.npy", test_dir());
    snprintf(bad_labels, sizeof(bad_labels), "%s/errors-bad.npy", test_dir());
    snprintf(float_labels, sizeof(float_labels), "%s/errors-float.npy", test_dir());
    int32_t good[3] = {0, 9, 4}, out_of_range[3] = {0, 12, 4};
    float floats[3] = {0.0f, 9.0f, 4.0f};
    const int64_t three[1] = {3}, two[1] = {2};
    write_npy(good_labels, CLCNN_INT32, 1, three, good);
    write_npy(short_labels, CLCNN_INT32, 1, two, good);
    write_npy(bad_labels, CLCNN_INT32, 1, three, out_of_range);
    write_npy(float_labels, CLCNN_FLOAT32, 1, three, floats);

    for (int d = 0; d < 2; d++) {
        char output_dir[1200], command[8000], what[200];
        snprintf(output_dir, sizeof(output_dir), "%s/errors-grad-%s", test_dir(), devices[d]);
        /* the good labels work, so every failure below is the one named */
        double loss = 0.0;
        char good_dir[1200];
        snprintf(good_dir, sizeof(good_dir), "%s/errors-good-grad-%s", test_dir(), devices[d]);
        CHECK(run_grad(devices[d], net_path, weights_dir, input_path, good_labels, NULL, good_dir,
                       &loss));

        snprintf(what, sizeof(what), "no --labels on %s", devices[d]);
        snprintf(command, sizeof(command),
                 "'%s' --device %s grad '%s' --weights '%s' --input '%s' --output '%s'",
                 clcnn_bin(), devices[d], net_path, weights_dir, input_path, output_dir);
        expect_error(what, command, output_dir, "--labels", NULL);

        /* labels that the command refuses, and what its message names */
        const struct {
            const char *what, *labels, *option, *said, *also_said;
        } refused[] = {
            {"labels of the wrong length", short_labels, "", "errors-short.npy", "3"},
            {"a label out of range", bad_labels, "", "errors-bad.npy: label 12", "10"},
            {"float labels for cross-entropy", float_labels, "", "errors-float.npy: cross-entropy",
             "integer class labels"},
            {"--loss bce on 10 units", good_labels, " --loss bce", "binary cross-entropy", "10"},
        };
        for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
            snprintf(what, sizeof(what), "%s on %s", refused[k].what, devices[d]);
            snprintf(command, sizeof(command),
                     "'%s' --device %s grad '%s' --weights '%s' --input '%s' --labels '%s' "
                     "--output '%s'%s",
                     clcnn_bin(), devices[d], net_path, weights_dir, input_path, refused[k].labels,
                     output_dir, refused[k].option);
            expect_error(what, command, output_dir, refused[k].said, refused[k].also_said);
        }
    }
}

int main(void) {
    files = clcnn_context_create();
    if (!files || clcnn_context_select_device(files, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    test_rng rng = {20240611};
    for (int i = 0; i < CASE_COUNT; i++)
        run_case(i, &cases[i], &rng);
    printf("%d networks: worst gradient difference between the devices %.3g, worst loss "
           "difference %.3g, worst difference of a printed loss from the recomputed one %.3g\n",
           CASE_COUNT, worst_device_gradient_error, worst_device_loss_error,
           worst_recomputed_loss_error);
    hand_worked_case();
    negative_slope_case();
    error_cases();
    clcnn_context_destroy(files);
    return test_finish();
}
