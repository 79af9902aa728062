/* The command-line contract of `clcnn`: devices, summary, forward (with
 * --seed, --weights, --trace, --limit, float32/float64 .npy and IDX input) on
 * both devices, and the errors: each exits non-zero with exactly one line on
 * stderr that names the problem. */
#include "testlib.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the LeNet-5 of examples/lenet5.net, used when CLCNN_SOURCE_DIR does not point at examples/. */
static const char lenet5_text[] = "input   channels=1 height=28 width=28\n"
                                  "conv    filters=6 size=5 pad=2\n"
                                  "relu\n"
                                  "maxpool size=2\n"
                                  "conv    filters=16 size=5\n"
                                  "relu\n"
                                  "maxpool size=2\n"
                                  "flatten\n"
                                  "dense   units=120\n"
                                  "relu\n"
                                  "dense   units=84\n"
                                  "relu\n"
                                  "dense   units=10\n"
                                  "softmax\n";

/* Every layer of LeNet-5 after the input: name, type, shape per image,
 * the summary's shape text and parameter count. */
typedef struct lenet_layer {
    const char *name;
    const char *type;
    int ndim;
    int shape[3];
    const char *shape_text;
    const char *parameters;
} lenet_layer;

static const lenet_layer lenet_layers[] = {
    {"conv1", "conv", 3, {6, 28, 28}, "6 x 28 x 28", "156"},
    {"relu1", "relu", 3, {6, 28, 28}, "6 x 28 x 28", "0"},
    {"maxpool1", "maxpool", 3, {6, 14, 14}, "6 x 14 x 14", "0"},
    {"conv2", "conv", 3, {16, 10, 10}, "16 x 10 x 10", "2,416"},
    {"relu2", "relu", 3, {16, 10, 10}, "16 x 10 x 10", "0"},
    {"maxpool2", "maxpool", 3, {16, 5, 5}, "16 x 5 x 5", "0"},
    {"flatten1", "flatten", 1, {400, 0, 0}, "400", "0"},
    {"dense1", "dense", 1, {120, 0, 0}, "120", "48,120"},
    {"relu3", "relu", 1, {120, 0, 0}, "120", "0"},
    {"dense2", "dense", 1, {84, 0, 0}, "84", "10,164"},
    {"relu4", "relu", 1, {84, 0, 0}, "84", "0"},
    {"dense3", "dense", 1, {10, 0, 0}, "10", "850"},
    {"softmax1", "softmax", 1, {10, 0, 0}, "10", "0"},
};
enum { LENET_LAYERS = sizeof(lenet_layers) / sizeof(lenet_layers[0]) };

/* LeNet-5's parameters in PyTorch's shapes. */
typedef struct parameter_file {
    const char *file;
    int ndim;
    int64_t shape[4];
} parameter_file;

static const parameter_file lenet_parameters[] = {
    {"conv1.weight.npy", 4, {6, 1, 5, 5}},  {"conv1.bias.npy", 1, {6}},
    {"conv2.weight.npy", 4, {16, 6, 5, 5}}, {"conv2.bias.npy", 1, {16}},
    {"dense1.weight.npy", 2, {120, 400}},   {"dense1.bias.npy", 1, {120}},
    {"dense2.weight.npy", 2, {84, 120}},    {"dense2.bias.npy", 1, {84}},
    {"dense3.weight.npy", 2, {10, 84}},     {"dense3.bias.npy", 1, {10}},
};
enum { LENET_PARAMETERS = sizeof(lenet_parameters) / sizeof(lenet_parameters[0]) };

enum { BATCH = 3, IMAGE_SIZE = 28 * 28, OUTPUT_LIMIT = 1 << 16 };

static clcnn_context *files; /* a context only for reading and writing files */
static char lenet_path[1200];

static int64_t lenet_layer_size(const lenet_layer *l) {
    return l->ndim == 3 ? (int64_t)l->shape[0] * l->shape[1] * l->shape[2] : l->shape[0];
}

static int64_t shape_count(const int64_t *shape, int ndim) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    return count;
}

static int make_directory(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int write_npy(const char *path, clcnn_dtype dtype, const void *data, int ndim,
                     const int64_t *shape) {
    clcnn_array array = {0};
    array.dtype = dtype;
    array.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        array.shape[d] = shape[d];
    array.data = (void *)data;
    return CHECK_OK(files, clcnn_npy_write(files, path, &array));
}

/* Reads a float32 .npy and checks its shape is (batch, layer shape). */
static int read_output(const char *path, int64_t batch, int ndim, const int *shape,
                       clcnn_array *array) {
    if (!CHECK_OK(files, clcnn_npy_read(files, path, array)))
        return 0;
    int ok = CHECK(array->dtype == CLCNN_FLOAT32) && CHECK(array->ndim == ndim + 1) &&
             CHECK(array->shape[0] == batch);
    for (int d = 0; ok && d < ndim; d++)
        ok = CHECK(array->shape[d + 1] == shape[d]);
    if (!ok) {
        fprintf(stderr, "%s: unexpected dtype or shape\n", path);
        clcnn_array_free(array);
    }
    return ok;
}

/* Runs a clcnn command line (the arguments after the program); returns its exit status. */
static int run_clcnn(const char *arguments, char *output, size_t size) {
    char command[8192];
    snprintf(command, sizeof(command), "'%s' %s", clcnn_bin(), arguments);
    return run_command(command, output, size);
}

/* Runs clcnn and requires exit status 0, printing its output otherwise. */
static int run_clcnn_ok(const char *arguments, char *output, size_t size) {
    int status = run_clcnn(arguments, output, size);
    if (!CHECK(status == 0))
        fprintf(stderr, "clcnn %s\nexited with %d:\n%s\n", arguments, status, output);
    return status == 0;
}

/* Counts the values where a and b differ at all. */
static int64_t count_different(const float *a, const float *b, int64_t n) {
    int64_t different = 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] != b[i])
            different++;
    return different;
}

static float largest_magnitude(const float *values, int64_t n) {
    float largest = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(values[i]) > largest)
            largest = fabsf(values[i]);
    return largest;
}

/* Copies the line of text that starts with word followed by a blank into
 * line; returns 0 if there is none. */
static int find_row(const char *text, const char *word, char *line, size_t size) {
    size_t length = strlen(word);
    const char *start = text;
    while (start && *start) {
        const char *end = strchr(start, '\n');
        size_t line_length = end ? (size_t)(end - start) : strlen(start);
        if (line_length > length && strncmp(start, word, length) == 0 &&
            (start[length] == ' ' || start[length] == '\t')) {
            size_t copied = line_length < size - 1 ? line_length : size - 1;
            memcpy(line, start, copied);
            line[copied] = 0;
            return 1;
        }
        start = end ? end + 1 : NULL;
    }
    return 0;
}

/* ---- devices and summary ------------------------------------------------------------ */

static void check_devices(void) {
    char output[OUTPUT_LIMIT];
    if (!run_clcnn_ok("devices", output, sizeof(output)))
        return;
    if (!CHECK(strstr(output, "platform 0") != NULL) || !CHECK(strstr(output, "device 0") != NULL))
        fprintf(stderr, "clcnn devices printed:\n%s\n", output);
    /* devices takes no arguments */
    CHECK(run_clcnn("devices extra", output, sizeof(output)) != 0);
}

static void check_summary(void) {
    char arguments[2048], output[OUTPUT_LIMIT], line[512];
    snprintf(arguments, sizeof(arguments), "summary '%s'", lenet_path);
    if (!run_clcnn_ok(arguments, output, sizeof(output)))
        return;
    const char *previous_row = output;
    if (CHECK(find_row(output, "input", line, sizeof(line))))
        CHECK(strstr(line, "1 x 28 x 28") != NULL);
    for (int i = 0; i < LENET_LAYERS; i++) {
        const lenet_layer *l = &lenet_layers[i];
        if (!CHECK(find_row(output, l->name, line, sizeof(line)))) {
            fprintf(stderr, "summary has no row for %s:\n%s\n", l->name, output);
            continue;
        }
        /* Rows come in layer order. */
        const char *row = strstr(output, line);
        CHECK(row != NULL && row > previous_row);
        previous_row = row;
        const char *last_word = strrchr(line, ' ');
        int ok = CHECK(strstr(line, l->type) != NULL) &&
                 CHECK(strstr(line, l->shape_text) != NULL) &&
                 CHECK(last_word && strcmp(last_word + 1, l->parameters) == 0);
        if (!ok)
            fprintf(stderr, "summary row '%s': expected %s, %s and %s parameters\n", line, l->type,
                    l->shape_text, l->parameters);
    }
    CHECK(strstr(output, "61,706") != NULL);
    /* summary takes exactly one network */
    CHECK(run_clcnn("summary", output, sizeof(output)) != 0);
}

/* ---- forward ---------------------------------------------------------------------------- */

/* Random images in [0, 1), written as (BATCH, 1, 28, 28) float32. */
static float images[BATCH * IMAGE_SIZE];
static char input_path[1200];

/* Every layer's traced output of one run. */
typedef struct lenet_trace {
    float *layers[LENET_LAYERS];
} lenet_trace;

static void free_trace(lenet_trace *trace) {
    for (int i = 0; i < LENET_LAYERS; i++) {
        free(trace->layers[i]);
        trace->layers[i] = NULL;
    }
}

/* Reads one run's output and trace files, checking their shapes. Returns the
 * output (BATCH x 10 floats, malloc'd) or NULL. */
static float *read_run(const char *output_path, const char *trace_dir, int64_t batch,
                       lenet_trace *trace) {
    clcnn_array array;
    const lenet_layer *last = &lenet_layers[LENET_LAYERS - 1];
    if (!read_output(output_path, batch, last->ndim, last->shape, &array))
        return NULL;
    float *output = array.data;
    for (int i = 0; trace && i < LENET_LAYERS; i++) {
        const lenet_layer *l = &lenet_layers[i];
        char path[1500];
        snprintf(path, sizeof(path), "%s/%02d-%s.npy", trace_dir, i + 1, l->name);
        if (read_output(path, batch, l->ndim, l->shape, &array))
            trace->layers[i] = array.data;
    }
    return output;
}

/* Softmax rows: non-negative, summing to 1. */
static void check_probabilities(const char *where, const float *output, int64_t batch) {
    for (int64_t n = 0; n < batch; n++) {
        double sum = 0;
        int negative = 0;
        for (int k = 0; k < 10; k++) {
            sum += output[n * 10 + k];
            negative += !(output[n * 10 + k] >= 0);
        }
        if (!CHECK(fabs(sum - 1.0) < 1e-5 && negative == 0))
            fprintf(stderr, "%s: row %lld sums to %.9g\n", where, (long long)n, sum);
    }
}

/* Relations that hold inside one run: relu is max(x, 0) of its input,
 * flatten is its input's values, the last layer is the output. */
static void check_trace_consistency(const char *where, const lenet_trace *trace,
                                    const float *output) {
    for (int i = 1; i < LENET_LAYERS; i++) {
        const lenet_layer *l = &lenet_layers[i];
        const float *in = trace->layers[i - 1], *out = trace->layers[i];
        int is_relu = strcmp(l->type, "relu") == 0;
        int is_flatten = strcmp(l->type, "flatten") == 0;
        if (!in || !out || (!is_relu && !is_flatten))
            continue;
        int64_t n = BATCH * lenet_layer_size(l);
        int64_t wrong = 0;
        for (int64_t j = 0; j < n; j++) {
            float want = is_relu && in[j] < 0 ? 0.0f : in[j];
            wrong += out[j] != want;
        }
        if (!CHECK(wrong == 0))
            fprintf(stderr, "%s: %s differs from its input in %lld values\n", where, l->name,
                    (long long)wrong);
    }
    if (trace->layers[LENET_LAYERS - 1])
        CHECK(count_different(trace->layers[LENET_LAYERS - 1], output, BATCH * 10) == 0);
}

/* forward --seed with --trace on one device; returns the output, fills trace. */
static float *run_seeded(const char *device, lenet_trace *trace) {
    char dir[1200], output_path[1300], trace_dir[1300], arguments[8192], output[OUTPUT_LIMIT];
    char name[64];
    snprintf(name, sizeof(name), "seeded-%s", device);
    snprintf(dir, sizeof(dir), "%s", test_path(name));
    snprintf(output_path, sizeof(output_path), "%s/output.npy", dir);
    snprintf(trace_dir, sizeof(trace_dir), "%s/trace", dir);
    if (!CHECK(make_directory(dir) == 0))
        return NULL;
    snprintf(arguments, sizeof(arguments),
             "--device %s forward '%s' --seed 42 --input '%s' --output '%s' --trace '%s'", device,
             lenet_path, input_path, output_path, trace_dir);
    if (!run_clcnn_ok(arguments, output, sizeof(output)))
        return NULL;
    float *result = read_run(output_path, trace_dir, BATCH, trace);
    if (result) {
        check_probabilities(device, result, BATCH);
        check_trace_consistency(device, trace, result);
    }
    return result;
}

/* The OpenCL device and the reference, on the same seeded weights, agree
 * within 1e-5 relative in every layer. A value is measured against itself,
 * or against a tenth of its layer's largest value when it is smaller than
 * that: a float32 sum of hundreds of products added in another order differs
 * by a few ulps of its terms, not of a result that cancels to almost nothing
 * (the errors seen are about 3e-7 of each layer's largest value). */
static double layer_relative_error(const float *got, const float *want, int64_t n) {
    double floor = 0.1 * largest_magnitude(want, n);
    return max_relative_error(got, want, n, floor > 1e-30 ? floor : 1e-30);
}

static void check_devices_agree(void) {
    lenet_trace reference = {0}, opencl = {0};
    float *reference_output = run_seeded("reference", &reference);
    float *opencl_output = run_seeded("opencl", &opencl);
    if (reference_output && opencl_output) {
        double error = layer_relative_error(opencl_output, reference_output, BATCH * 10);
        if (!CHECK(error <= 1e-5))
            fprintf(stderr, "outputs differ between devices: %.3g relative\n", error);
    }
    for (int i = 0; i < LENET_LAYERS; i++) {
        if (!reference.layers[i] || !opencl.layers[i])
            continue;
        int64_t n = BATCH * lenet_layer_size(&lenet_layers[i]);
        double error = layer_relative_error(opencl.layers[i], reference.layers[i], n);
        if (!CHECK(error <= 1e-5))
            fprintf(stderr, "layer %s differs between devices: %.3g relative\n",
                    lenet_layers[i].name, error);
    }
    free_trace(&reference);
    free_trace(&opencl);
    free(reference_output);
    free(opencl_output);
}

/* Runs forward on the reference device with the given weight options and
 * input; returns the output (malloc'd) or NULL. */
static float *run_forward(const char *name, const char *weight_options, const char *input,
                          const char *extra, int64_t batch) {
    char output_path[1300], arguments[4096], output[OUTPUT_LIMIT];
    snprintf(output_path, sizeof(output_path), "%s", test_path(name));
    snprintf(arguments, sizeof(arguments),
             "--device reference forward '%s' %s --input '%s' --output '%s' %s", lenet_path,
             weight_options, input, output_path, extra);
    if (!run_clcnn_ok(arguments, output, sizeof(output)))
        return NULL;
    return read_run(output_path, NULL, batch, NULL);
}

/* --weights DIR from files written with clcnn_npy_write gives what the API
 * gives with the same values; and --seed S is the same as the weights the
 * API's clcnn_net_init_weights(S) saves. */
static void check_weights_directory(void) {
    char dir[1200], path[1500], options[1400];
    snprintf(dir, sizeof(dir), "%s", test_path("weights"));
    if (!CHECK(make_directory(dir) == 0))
        return;
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    if (!CHECK(ctx != NULL) ||
        !CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1)) ||
        !CHECK_OK(ctx, clcnn_net_from_file(ctx, lenet_path, &net))) {
        clcnn_context_destroy(ctx);
        return;
    }
    test_rng rng = {12345};
    for (int i = 0; i < LENET_PARAMETERS; i++) {
        const parameter_file *p = &lenet_parameters[i];
        int64_t count = shape_count(p->shape, p->ndim);
        float *values = malloc(sizeof(float) * (size_t)count);
        if (!CHECK(values != NULL))
            continue;
        for (int64_t j = 0; j < count; j++)
            values[j] = test_rand_float(&rng, -0.3f, 0.3f);
        snprintf(path, sizeof(path), "%s/%s", dir, p->file);
        write_npy(path, CLCNN_FLOAT32, values, p->ndim, p->shape);
        /* "conv1.weight.npy" -> layer "conv1", parameter "weight" */
        char layer_name[32], which[16];
        const char *dot = strchr(p->file, '.');
        snprintf(layer_name, sizeof(layer_name), "%.*s", (int)(dot - p->file), p->file);
        snprintf(which, sizeof(which), "%s", strncmp(dot, ".bias", 5) == 0 ? "bias" : "weight");
        CHECK_OK(ctx, clcnn_net_set_parameter(net, layer_name, which, values, count));
        free(values);
    }
    float expected[BATCH * 10];
    CHECK_OK(ctx, clcnn_net_forward(net, images, BATCH, expected, NULL, NULL));
    snprintf(options, sizeof(options), "--weights '%s'", dir);
    float *output = run_forward("weights-output.npy", options, input_path, "", BATCH);
    if (output)
        CHECK(count_different(output, expected, BATCH * 10) == 0);
    free(output);

    /* --seed 7 against the weights clcnn_net_init_weights(7) saves */
    snprintf(dir, sizeof(dir), "%s", test_path("seed7-weights"));
    CHECK_OK(ctx, clcnn_net_init_weights(net, 7));
    CHECK_OK(ctx, clcnn_net_save_weights(net, dir));
    float *seeded = run_forward("seed7-output.npy", "--seed 7", input_path, "", BATCH);
    snprintf(options, sizeof(options), "--weights '%s'", dir);
    float *loaded = run_forward("seed7-loaded-output.npy", options, input_path, "", BATCH);
    if (seeded && loaded)
        CHECK(count_different(seeded, loaded, BATCH * 10) == 0);
    free(seeded);
    free(loaded);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

/* float64 input, a single (C, H, W) image, --limit and raw IDX input all
 * give what the float32 (N, C, H, W) input gives. */
static void check_input_forms(void) {
    float *baseline = run_forward("baseline.npy", "--seed 3", input_path, "", BATCH);
    if (!baseline)
        return;

    double as_double[BATCH * IMAGE_SIZE];
    for (int i = 0; i < BATCH * IMAGE_SIZE; i++)
        as_double[i] = images[i];
    char path[1300];
    snprintf(path, sizeof(path), "%s", test_path("input64.npy"));
    int64_t shape[4] = {BATCH, 1, 28, 28};
    if (write_npy(path, CLCNN_FLOAT64, as_double, 4, shape)) {
        float *output = run_forward("output64.npy", "--seed 3", path, "", BATCH);
        if (output)
            CHECK(count_different(output, baseline, BATCH * 10) == 0);
        free(output);
    }

    /* one image without the batch axis */
    snprintf(path, sizeof(path), "%s", test_path("single.npy"));
    if (write_npy(path, CLCNN_FLOAT32, images, 3, shape + 1)) {
        float *output = run_forward("single-output.npy", "--seed 3", path, "", 1);
        if (output)
            CHECK(count_different(output, baseline, 10) == 0);
        free(output);
    }

    /* --limit 2 runs the first two images */
    float *limited = run_forward("limited.npy", "--seed 3", input_path, "--limit 2", 2);
    if (limited)
        CHECK(count_different(limited, baseline, 2 * 10) == 0);
    free(limited);

    /* A raw IDX file of two 28x28 images (magic 0x00000803: unsigned bytes,
     * 3 dimensions, sizes big-endian), and the same pixels / 255 as .npy. */
    unsigned char idx[16 + 2 * IMAGE_SIZE] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28};
    float scaled[2 * IMAGE_SIZE];
    for (int i = 0; i < 2 * IMAGE_SIZE; i++) {
        idx[16 + i] = (unsigned char)((i * 37 + i / 28 * 11) % 256);
        scaled[i] = idx[16 + i] / 255.0f;
    }
    char idx_path[1300], scaled_path[1300];
    snprintf(idx_path, sizeof(idx_path), "%s", test_path("images-idx3-ubyte"));
    snprintf(scaled_path, sizeof(scaled_path), "%s", test_path("idx-as-npy.npy"));
    FILE *f = fopen(idx_path, "wb");
    int written = f && fwrite(idx, 1, sizeof(idx), f) == sizeof(idx);
    if (f)
        written = fclose(f) == 0 && written;
    int64_t scaled_shape[4] = {2, 1, 28, 28};
    if (CHECK(written) && write_npy(scaled_path, CLCNN_FLOAT32, scaled, 4, scaled_shape)) {
        float *from_idx = run_forward("idx-output.npy", "--seed 3", idx_path, "", 2);
        float *from_npy = run_forward("idx-npy-output.npy", "--seed 3", scaled_path, "", 2);
        if (from_idx && from_npy) {
            CHECK(count_different(from_idx, from_npy, 2 * 10) == 0);
            check_probabilities("IDX input", from_idx, 2);
        }
        free(from_idx);
        free(from_npy);
    }
    free(baseline);
}

/* ---- errors ------------------------------------------------------------------------------ */

/* Runs clcnn with arguments that must fail: non-zero exit status, nothing on
 * stdout, exactly one line on stderr containing every one of the NULL-
 * terminated substrings. */
static void check_failure(const char *what, const char *arguments, const char *const *substrings) {
    char command[8192], stdout_text[OUTPUT_LIMIT], stderr_path[1300];
    snprintf(stderr_path, sizeof(stderr_path), "%s", test_path("stderr.txt"));
    /* The parentheses keep stderr in the file despite run_command's 2>&1. */
    snprintf(command, sizeof(command), "( '%s' %s 2>'%s' )", clcnn_bin(), arguments, stderr_path);
    int status = run_command(command, stdout_text, sizeof(stdout_text));
    char stderr_text[OUTPUT_LIMIT] = "";
    FILE *f = fopen(stderr_path, "r");
    if (f) {
        size_t n = fread(stderr_text, 1, sizeof(stderr_text) - 1, f);
        stderr_text[n] = 0;
        fclose(f);
    }
    const char *newline = strchr(stderr_text, '\n');
    int one_line =
        stderr_text[0] != 0 && stderr_text[0] != '\n' && newline != NULL && newline[1] == 0;
    int ok = CHECK(status != 0) && CHECK(stdout_text[0] == 0) && CHECK(one_line);
    for (int i = 0; substrings[i]; i++)
        if (!CHECK(strstr(stderr_text, substrings[i]) != NULL)) {
            fprintf(stderr, "%s: the message lacks '%s'\n", what, substrings[i]);
            ok = 0;
        }
    if (!ok)
        fprintf(stderr, "%s: clcnn %s\nexited with %d, stdout:\n%s\nstderr:\n%s\n", what, arguments,
                status, stdout_text, stderr_text);
}

static void check_errors(void) {
    char arguments[8192], path[1600], dir[1300], output_path[1300];
    snprintf(output_path, sizeof(output_path), "%s", test_path("error-output.npy"));

    const char *const unknown_command[] = {"unknown command", "frobnicate", NULL};
    check_failure("unknown command", "frobnicate", unknown_command);

    const char *const unknown_option[] = {"unknown option", "--bogus", NULL};
    snprintf(arguments, sizeof(arguments),
             "forward '%s' --seed 1 --input '%s' --output '%s' --bogus 1", lenet_path, input_path,
             output_path);
    check_failure("unknown option", arguments, unknown_option);

    const char *const missing_input[] = {"--input", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --output '%s'", lenet_path,
             output_path);
    check_failure("missing --input", arguments, missing_input);

    const char *const missing_weights[] = {"--weights", "--seed", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --input '%s' --output '%s'", lenet_path,
             input_path, output_path);
    check_failure("neither --weights nor --seed", arguments, missing_weights);

    const char *const missing_value[] = {"--input", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input", lenet_path);
    check_failure("option without its value", arguments, missing_value);

    /* a network file with a syntax error on line 3 */
    snprintf(path, sizeof(path), "%s", test_path("bad.net"));
    CHECK(write_text(path, "input channels=1 height=28 width=28\n"
                           "# a comment line counts\n"
                           "conv filters=6 size 5\n"
                           "relu\n") == 0);
    const char *const syntax[] = {"bad.net:3", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'", path,
             input_path, output_path);
    check_failure("syntax error (forward)", arguments, syntax);
    snprintf(arguments, sizeof(arguments), "summary '%s'", path);
    check_failure("syntax error (summary)", arguments, syntax);

    const char *const missing_net[] = {"no-such-network.net", NULL};
    snprintf(arguments, sizeof(arguments), "summary '%s'", test_path("no-such-network.net"));
    check_failure("nonexistent network file", arguments, missing_net);

    /* a weights directory without conv1.weight.npy */
    snprintf(dir, sizeof(dir), "%s", test_path("empty-weights"));
    CHECK(make_directory(dir) == 0);
    const char *const missing_weight[] = {"conv1", "conv1.weight.npy", "(6, 1, 5, 5)", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --weights '%s' --input '%s' --output '%s'",
             lenet_path, dir, input_path, output_path);
    check_failure("missing weight file", arguments, missing_weight);

    /* conv1.weight.npy of shape (6, 1, 3, 3), then a bias of 5 values */
    snprintf(dir, sizeof(dir), "%s", test_path("misshaped-weights"));
    CHECK(make_directory(dir) == 0);
    float zeros[6 * 25] = {0};
    int64_t small_kernel[4] = {6, 1, 3, 3};
    snprintf(path, sizeof(path), "%s/conv1.weight.npy", dir);
    write_npy(path, CLCNN_FLOAT32, zeros, 4, small_kernel);
    const char *const misshaped[] = {"conv1", "(6, 1, 3, 3)", "(6, 1, 5, 5)", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --weights '%s' --input '%s' --output '%s'",
             lenet_path, dir, input_path, output_path);
    check_failure("mis-shaped weight file", arguments, misshaped);
    int64_t right_kernel[4] = {6, 1, 5, 5}, short_bias[1] = {5};
    write_npy(path, CLCNN_FLOAT32, zeros, 4, right_kernel);
    snprintf(path, sizeof(path), "%s/conv1.bias.npy", dir);
    write_npy(path, CLCNN_FLOAT32, zeros, 1, short_bias);
    const char *const misshaped_bias[] = {"conv1.bias.npy", "(5,)", "(6,)", NULL};
    check_failure("mis-shaped bias file", arguments, misshaped_bias);

    /* input of shape (2, 1, 28, 27) */
    snprintf(path, sizeof(path), "%s", test_path("wrong-shape.npy"));
    int64_t wrong_shape[4] = {2, 1, 28, 27};
    write_npy(path, CLCNN_FLOAT32, images, 4, wrong_shape);
    const char *const wrong_input[] = {"wrong-shape.npy", "(2, 1, 28, 27)", "28, 28", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'",
             lenet_path, path, output_path);
    check_failure("input of the wrong shape", arguments, wrong_input);
    CHECK(!file_exists(output_path));

    /* integer images */
    snprintf(path, sizeof(path), "%s", test_path("integers.npy"));
    int pixels[IMAGE_SIZE] = {0};
    int64_t one_image[4] = {1, 1, 28, 28};
    write_npy(path, CLCNN_INT32, pixels, 4, one_image);
    const char *const integer_input[] = {"integers.npy", "float", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'",
             lenet_path, path, output_path);
    check_failure("integer input", arguments, integer_input);

    /* a text file named .npy */
    snprintf(path, sizeof(path), "%s", test_path("garbage.npy"));
    CHECK(write_text(path, "this is not a NumPy file\n") == 0);
    const char *const garbage[] = {"garbage.npy", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'",
             lenet_path, path, output_path);
    check_failure("malformed .npy input", arguments, garbage);

    /* a .npy cut short in its data */
    snprintf(path, sizeof(path), "%s", test_path("truncated.npy"));
    int64_t full_shape[4] = {BATCH, 1, 28, 28};
    if (write_npy(path, CLCNN_FLOAT32, images, 4, full_shape))
        CHECK(truncate(path, 128 + 1000) == 0);
    const char *const truncated[] = {"truncated.npy", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'",
             lenet_path, path, output_path);
    check_failure("truncated .npy input", arguments, truncated);

    const char *const nonexistent[] = {"no-such-input.npy", NULL};
    snprintf(arguments, sizeof(arguments), "forward '%s' --seed 1 --input '%s' --output '%s'",
             lenet_path, test_path("no-such-input.npy"), output_path);
    check_failure("nonexistent input", arguments, nonexistent);

    const char *const bogus_device[] = {"--device", "bogus", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device bogus forward '%s' --seed 1 --input '%s' --output '%s'", lenet_path,
             input_path, output_path);
    check_failure("--device bogus", arguments, bogus_device);

    const char *const no_platform[] = {"platform 7", NULL};
    snprintf(arguments, sizeof(arguments),
             "--platform 7 forward '%s' --seed 1 --input '%s' --output '%s'", lenet_path,
             input_path, output_path);
    check_failure("--platform 7", arguments, no_platform);

    const char *const no_device[] = {"device 9", NULL};
    snprintf(arguments, sizeof(arguments),
             "--device-index 9 forward '%s' --seed 1 --input '%s' --output '%s'", lenet_path,
             input_path, output_path);
    check_failure("--device-index 9", arguments, no_device);

    const char *const bad_number[] = {"--platform", "x", NULL};
    snprintf(arguments, sizeof(arguments),
             "--platform x forward '%s' --seed 1 --input '%s' --output '%s'", lenet_path,
             input_path, output_path);
    check_failure("--platform x", arguments, bad_number);
    CHECK(!file_exists(output_path));
}

int main(void) {
    files = clcnn_context_create();
    if (!CHECK(files != NULL))
        return test_finish();
    const char *source_dir = getenv("CLCNN_SOURCE_DIR");
    if (source_dir && *source_dir) {
        snprintf(lenet_path, sizeof(lenet_path), "%s/examples/lenet5.net", source_dir);
    } else {
        fprintf(stderr, "CLCNN_SOURCE_DIR is not set: using a copy of the LeNet-5 of examples/lenet5.net\n");
        snprintf(lenet_path, sizeof(lenet_path), "%s", test_path("lenet5.net"));
        CHECK(write_text(lenet_path, lenet5_text) == 0);
    }
    CHECK(file_exists(lenet_path));

    test_rng rng = {2024};
    for (int i = 0; i < BATCH * IMAGE_SIZE; i++)
        images[i] = test_rand_float(&rng, 0.0f, 1.0f);
    snprintf(input_path, sizeof(input_path), "%s", test_path("input.npy"));
    int64_t shape[4] = {BATCH, 1, 28, 28};
    write_npy(input_path, CLCNN_FLOAT32, images, 4, shape);

    check_devices();
    check_summary();
    check_devices_agree();
    check_weights_directory();
    check_input_forms();
    check_errors();

    clcnn_context_destroy(files);
    return test_finish();
}
