/* The worked examples 1-5 of README.md, reproduced exactly on both devices, through
 * the C API (with a trace callback to see every layer) and through the
 * command line (`clcnn forward --trace`, `clcnn summary`).
 *
 * The examples are small integers, so every value is compared with ==.
 * Batches repeat the example image scaled by 1, 2, 3 and 0.5: none of the
 * example networks has a non-zero bias and every layer is positively
 * homogeneous (conv, relu, max pooling, flatten), so image n's outputs are
 * the example's outputs times the same scale, still exact in float. */
#include "internal.h"
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { MAX_LAYER_VALUES = 32, MAX_IMAGE_VALUES = 32, MAX_EXPECTED_LAYERS = 6 };

/* One layer's expected output for the unscaled image. */
typedef struct expected_layer {
    const char *name;
    int ndim;     /* 3 for (C, H, W), 1 for a vector */
    int shape[3]; /* C, H, W or units in shape[0] */
    float values[MAX_LAYER_VALUES];
} expected_layer;

typedef struct worked_example {
    const char *id; /* names the scratch directory */
    const char *title;
    const char *network;
    int channels, height, width;
    float image[MAX_IMAGE_VALUES];
    const char *conv_name; /* the layer that gets the kernel; NULL if there is none */
    int weight_shape[4];   /* K, C, R, S */
    float weight[16];
    int has_bias;    /* the conv has bias=true: its bias is set to zeros */
    int layer_count; /* layers after the input */
    expected_layer layers[MAX_EXPECTED_LAYERS];
} worked_example;

static const worked_example examples[] = {
    {
        .id = "1",
        .title = "example 1 (vertical edges, relu, 2x2 max pooling stride 1, flatten)",
        .network = "input channels=1 height=5 width=5\n"
                   "conv filters=1 size=3 bias=false\n"
                   "relu\n"
                   "maxpool size=2 stride=1\n"
                   "flatten\n",
        .channels = 1,
        .height = 5,
        .width = 5,
        .image = {1, 2, 0, 2, 1, 0, 1, 3, 1, 0, 2, 2, 1, 0, 1, 1, 0, 1, 3, 2, 0, 1, 2, 2, 1},
        .conv_name = "conv1",
        .weight_shape = {1, 1, 3, 3},
        .weight = {-1, 0, 1, -1, 0, 1, -1, 0, 1},
        .layer_count = 4,
        .layers =
            {
                {"conv1", 3, {1, 3, 3}, {1, -2, -2, 2, 1, -2, 1, 2, 0}},
                {"relu1", 3, {1, 3, 3}, {1, 0, 0, 2, 1, 0, 1, 2, 0}},
                {"maxpool1", 3, {1, 2, 2}, {2, 1, 2, 2}},
                {"flatten1", 1, {4, 0, 0}, {2, 1, 2, 2}},
            },
    },
    {
        .id = "2",
        .title = "example 2 (bottom-row kernel, 2x2 max pooling stride 2 in ceil mode)",
        .network = "input channels=1 height=5 width=5\n"
                   "conv filters=1 size=3 bias=false\n"
                   "maxpool size=2 stride=2 ceil=true\n",
        .channels = 1,
        .height = 5,
        .width = 5,
        .image = {0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 1, 0},
        .conv_name = "conv1",
        .weight_shape = {1, 1, 3, 3},
        .weight = {0, 0, 0, 0, 0, 0, 1, 0, 1},
        .layer_count = 2,
        .layers =
            {
                {"conv1", 3, {1, 3, 3}, {1, 2, 1, 0, 2, 0, 1, 2, 1}},
                {"maxpool1", 3, {1, 2, 2}, {2, 1, 2, 1}},
            },
    },
    {
        /* README.md names (0,0) = 7 and (1,1) = 13; the sharpen kernel leaves
         * a linear ramp unchanged, so the whole output is the centre 3x3. */
        .id = "3a",
        .title = "example 3a (sharpen kernel on the 1..25 ramp)",
        .network = "input channels=1 height=5 width=5\n"
                   "conv filters=1 size=3 bias=false\n",
        .channels = 1,
        .height = 5,
        .width = 5,
        .image = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
                  14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25},
        .conv_name = "conv1",
        .weight_shape = {1, 1, 3, 3},
        .weight = {0, -1, 0, -1, 5, -1, 0, -1, 0},
        .layer_count = 1,
        .layers =
            {
                {"conv1", 3, {1, 3, 3}, {7, 8, 9, 12, 13, 14, 17, 18, 19}},
            },
    },
    {
        .id = "3b",
        .title = "example 3b (2x2 max pooling, stride 2, of a 4x4 image)",
        .network = "input channels=1 height=4 width=4\n"
                   "maxpool size=2 stride=2\n"
                   "flatten\n",
        .channels = 1,
        .height = 4,
        .width = 4,
        .image = {1, 3, 2, 4, 5, 7, 6, 8, 9, 11, 10, 12, 13, 15, 14, 16},
        .conv_name = NULL,
        .layer_count = 2,
        .layers =
            {
                {"maxpool1", 3, {1, 2, 2}, {7, 8, 15, 16}},
                {"flatten1", 1, {4, 0, 0}, {7, 8, 15, 16}},
            },
    },
    {
        /* The bias is on here (set to zero) so that bias handling is on the path. */
        .id = "4",
        .title = "example 4 (2x2 kernel [[1,0],[0,-1]] on 1..9)",
        .network = "input channels=1 height=3 width=3\n"
                   "conv filters=1 size=2 bias=true\n",
        .channels = 1,
        .height = 3,
        .width = 3,
        .image = {1, 2, 3, 4, 5, 6, 7, 8, 9},
        .conv_name = "conv1",
        .weight_shape = {1, 1, 2, 2},
        .weight = {1, 0, 0, -1},
        .has_bias = 1,
        .layer_count = 1,
        .layers =
            {
                {"conv1", 3, {1, 2, 2}, {-4, -4, -4, -4}},
            },
    },
};
enum { EXAMPLE_COUNT = sizeof(examples) / sizeof(examples[0]) };

/* The factor image n of a batch is scaled by. */
static float scale_of_image(int64_t n) {
    static const float scales[4] = {1.0f, 2.0f, 3.0f, 0.5f};
    return scales[n % 4];
}

static int64_t layer_size(const expected_layer *l) {
    return l->ndim == 3 ? (int64_t)l->shape[0] * l->shape[1] * l->shape[2] : l->shape[0];
}

static int64_t weight_count(const worked_example *ex) {
    return (int64_t)ex->weight_shape[0] * ex->weight_shape[1] * ex->weight_shape[2] *
           ex->weight_shape[3];
}

static int64_t image_size(const worked_example *ex) {
    return (int64_t)ex->channels * ex->height * ex->width;
}

/* batch copies of the example image, image n scaled by scale_of_image(n). */
static float *make_batch(const worked_example *ex, int64_t batch) {
    int64_t size = image_size(ex);
    float *images = malloc(sizeof(float) * (size_t)(batch * size));
    if (!images)
        return NULL;
    for (int64_t n = 0; n < batch; n++)
        for (int64_t i = 0; i < size; i++)
            images[n * size + i] = ex->image[i] * scale_of_image(n);
    return images;
}

/* Compares batch images of one layer's output with the expected values
 * exactly; prints the first few differences. Returns the number of wrong values. */
static int64_t compare_layer(const char *where, const expected_layer *expected, const float *values,
                             int64_t batch) {
    int64_t size = layer_size(expected);
    int64_t wrong = 0;
    for (int64_t n = 0; n < batch; n++) {
        for (int64_t i = 0; i < size; i++) {
            float want = expected->values[i] * scale_of_image(n);
            float got = values[n * size + i];
            if (got == want)
                continue;
            if (wrong < 5)
                fprintf(stderr, "%s: %s image %lld value %lld: got %.9g, expected %g\n", where,
                        expected->name, (long long)n, (long long)i, got, want);
            wrong++;
        }
    }
    return wrong;
}

/* ---- through the C API --------------------------------------------------------- */

/* Every traced layer's output for the whole batch, and how many images of
 * each layer the callback has seen. */
typedef struct trace_record {
    int64_t batch;
    int layer_count;
    int64_t sizes[MAX_EXPECTED_LAYERS + 1];
    float *layers[MAX_EXPECTED_LAYERS + 1];
    int64_t images_seen[MAX_EXPECTED_LAYERS + 1];
    int bad_calls;
} trace_record;

static clcnn_status record_layer(void *user, int layer_index, const float *values, int64_t first,
                                 int64_t count) {
    trace_record *record = user;
    if (layer_index < 1 || layer_index >= record->layer_count || first < 0 || count < 1 ||
        first + count > record->batch) {
        record->bad_calls++;
        return CLCNN_OK;
    }
    int64_t size = record->sizes[layer_index];
    memcpy(record->layers[layer_index] + first * size, values,
           sizeof(float) * (size_t)(count * size));
    record->images_seen[layer_index] += count;
    return CLCNN_OK;
}

static void check_example_api(clcnn_context *ctx, const char *device, const worked_example *ex,
                              int64_t batch) {
    char where[256];
    snprintf(where, sizeof(where), "%s, API on %s, batch %lld", ex->title, device,
             (long long)batch);
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, ex->network, ex->title, &net)))
        return;
    /* Chunks of at most 32 of these small images, so that 300 run in several. */
    net->forward_chunk_floats = 32 * 5 * 5 * 8;
    CHECK(clcnn_net_layer_count(net) == ex->layer_count + 1);
    CHECK(clcnn_net_input_size(net) == image_size(ex));
    for (int i = 0; i < ex->layer_count && i + 1 < clcnn_net_layer_count(net); i++) {
        const expected_layer *expected = &ex->layers[i];
        clcnn_layer_info info;
        CHECK_OK(ctx, clcnn_net_layer_info(net, i + 1, &info));
        CHECK(strcmp(info.name, expected->name) == 0);
        CHECK(info.ndim == expected->ndim);
        for (int d = 0; d < expected->ndim; d++)
            CHECK(info.shape[d] == expected->shape[d]);
    }
    if (ex->conv_name) {
        CHECK_OK(ctx, clcnn_net_set_parameter(net, ex->conv_name, "weight", ex->weight,
                                              weight_count(ex)));
        if (ex->has_bias) {
            float zeros[16] = {0};
            CHECK_OK(ctx, clcnn_net_set_parameter(net, ex->conv_name, "bias", zeros,
                                                  ex->weight_shape[0]));
        }
    }

    const expected_layer *last = &ex->layers[ex->layer_count - 1];
    float *images = make_batch(ex, batch);
    float *output = calloc((size_t)(batch * layer_size(last)), sizeof(float));
    trace_record record = {0};
    record.batch = batch;
    record.layer_count = ex->layer_count + 1;
    int allocated = images && output;
    for (int i = 1; i <= ex->layer_count; i++) {
        record.sizes[i] = layer_size(&ex->layers[i - 1]);
        record.layers[i] = calloc((size_t)(batch * record.sizes[i]), sizeof(float));
        allocated = allocated && record.layers[i];
    }
    if (CHECK(allocated) &&
        CHECK_OK(ctx, clcnn_net_forward(net, images, batch, output, record_layer, &record))) {
        CHECK(record.bad_calls == 0);
        CHECK(compare_layer(where, last, output, batch) == 0);
        for (int i = 1; i <= ex->layer_count; i++) {
            CHECK(record.images_seen[i] == batch);
            CHECK(compare_layer(where, &ex->layers[i - 1], record.layers[i], batch) == 0);
        }
        /* Without a trace the output must be the same. */
        memset(output, 0, sizeof(float) * (size_t)(batch * layer_size(last)));
        if (CHECK_OK(ctx, clcnn_net_forward(net, images, batch, output, NULL, NULL)))
            CHECK(compare_layer(where, last, output, batch) == 0);
    }
    for (int i = 1; i <= ex->layer_count; i++)
        free(record.layers[i]);
    free(images);
    free(output);
    clcnn_net_destroy(net);
}

static void check_examples_api(clcnn_context *ctx, const char *device) {
    /* 300 images run in more than one chunk of the forward pass (check_example_api). */
    const int64_t batches[] = {1, 4, 300};
    for (int e = 0; e < EXAMPLE_COUNT; e++)
        for (int b = 0; b < 3; b++)
            check_example_api(ctx, device, &examples[e], batches[b]);
}

/* ---- through the command line ----------------------------------------------------- */

static int make_directory(const char *path) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

static int write_float_npy(clcnn_context *ctx, const char *path, const float *values, int ndim,
                           const int64_t *shape) {
    clcnn_array array = {0};
    array.dtype = CLCNN_FLOAT32;
    array.ndim = ndim;
    for (int d = 0; d < ndim; d++)
        array.shape[d] = shape[d];
    array.data = (void *)values;
    return CHECK_OK(ctx, clcnn_npy_write(ctx, path, &array));
}

/* Reads a float32 .npy written by clcnn and checks its shape is (batch, layer shape). */
static int read_layer_npy(clcnn_context *ctx, const char *path, const expected_layer *expected,
                          int64_t batch, clcnn_array *array) {
    if (!CHECK_OK(ctx, clcnn_npy_read(ctx, path, array)))
        return 0;
    int ok = CHECK(array->dtype == CLCNN_FLOAT32) && CHECK(array->ndim == expected->ndim + 1) &&
             CHECK(array->shape[0] == batch);
    for (int d = 0; ok && d < expected->ndim; d++)
        ok = CHECK(array->shape[d + 1] == expected->shape[d]);
    if (!ok) {
        fprintf(stderr, "%s: unexpected dtype or shape\n", path);
        clcnn_array_free(array);
    }
    return ok;
}

static void check_example_cli(clcnn_context *ctx, const char *device, int example_index,
                              int64_t batch) {
    const worked_example *ex = &examples[example_index];
    char where[256], dir[1200], net_path[1300], weights_dir[1300], input_path[1300];
    char output_path[1300], trace_dir[1300], path[1500];
    snprintf(where, sizeof(where), "%s, CLI on %s, batch %lld", ex->title, device,
             (long long)batch);
    char name[64];
    snprintf(name, sizeof(name), "example%s-%s-batch%lld", ex->id, device, (long long)batch);
    snprintf(dir, sizeof(dir), "%s", test_path(name));
    snprintf(net_path, sizeof(net_path), "%s/example.net", dir);
    snprintf(weights_dir, sizeof(weights_dir), "%s/weights", dir);
    snprintf(input_path, sizeof(input_path), "%s/input.npy", dir);
    snprintf(output_path, sizeof(output_path), "%s/output.npy", dir);
    snprintf(trace_dir, sizeof(trace_dir), "%s/trace", dir);
    if (!CHECK(make_directory(dir) == 0) || !CHECK(make_directory(weights_dir) == 0) ||
        !CHECK(write_text(net_path, ex->network) == 0))
        return;

    if (ex->conv_name) {
        int64_t shape[4] = {ex->weight_shape[0], ex->weight_shape[1], ex->weight_shape[2],
                            ex->weight_shape[3]};
        snprintf(path, sizeof(path), "%s/%s.weight.npy", weights_dir, ex->conv_name);
        write_float_npy(ctx, path, ex->weight, 4, shape);
        if (ex->has_bias) {
            float zeros[16] = {0};
            snprintf(path, sizeof(path), "%s/%s.bias.npy", weights_dir, ex->conv_name);
            write_float_npy(ctx, path, zeros, 1, shape);
        }
    }
    float *images = make_batch(ex, batch);
    if (!CHECK(images != NULL))
        return;
    int64_t input_shape[4] = {batch, ex->channels, ex->height, ex->width};
    int written = write_float_npy(ctx, input_path, images, 4, input_shape);
    free(images);
    if (!written)
        return;

    char command[8192], output[8192];
    snprintf(command, sizeof(command),
             "'%s' --device %s forward '%s' --weights '%s' --input '%s' --output '%s' "
             "--trace '%s'",
             clcnn_bin(), device, net_path, weights_dir, input_path, output_path, trace_dir);
    int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0)) {
        fprintf(stderr, "%s: '%s' exited with %d:\n%s\n", where, command, status, output);
        return;
    }

    const expected_layer *last = &ex->layers[ex->layer_count - 1];
    clcnn_array array;
    if (read_layer_npy(ctx, output_path, last, batch, &array)) {
        CHECK(compare_layer(where, last, array.data, batch) == 0);
        clcnn_array_free(&array);
    }
    for (int i = 0; i < ex->layer_count; i++) {
        const expected_layer *expected = &ex->layers[i];
        snprintf(path, sizeof(path), "%s/%02d-%s.npy", trace_dir, i + 1, expected->name);
        if (read_layer_npy(ctx, path, expected, batch, &array)) {
            CHECK(compare_layer(where, expected, array.data, batch) == 0);
            clcnn_array_free(&array);
        }
    }
}

static void check_examples_cli(clcnn_context *ctx) {
    const char *devices[2] = {"reference", "opencl"};
    const int64_t batches[2] = {1, 4};
    for (int d = 0; d < 2; d++)
        for (int e = 0; e < EXAMPLE_COUNT; e++)
            for (int b = 0; b < 2; b++)
                check_example_cli(ctx, devices[d], e, batches[b]);
}

/* ---- example 5: parameter counts ----------------------------------------------------- */

/* conv 3x3, 3 -> 8: 224; conv 3x3, 8 -> 16: 1,168; dense 1,568 -> 128:
 * 200,832; dense 128 -> 10: 1,290. A 28x56 input makes the second pooling
 * leave 16 x 7 x 14 = 1,568 values. */
static const char parameter_network[] = "input channels=3 height=28 width=56\n"
                                        "conv filters=8 size=3 pad=1\n"
                                        "relu\n"
                                        "maxpool size=2\n"
                                        "conv filters=16 size=3 pad=1\n"
                                        "relu\n"
                                        "maxpool size=2\n"
                                        "flatten\n"
                                        "dense units=128\n"
                                        "relu\n"
                                        "dense units=10\n"
                                        "softmax\n";

typedef struct expected_count {
    const char *name;
    int64_t weights, biases;
    const char *shown; /* as the summary prints the layer's total */
} expected_count;

static const expected_count parameter_counts[] = {
    {"conv1", 216, 8, "224"},           {"conv2", 1152, 16, "1,168"},  {"flatten1", 0, 0, "0"},
    {"dense1", 200704, 128, "200,832"}, {"dense2", 1280, 10, "1,290"},
};
enum { PARAMETER_COUNT_ROWS = sizeof(parameter_counts) / sizeof(parameter_counts[0]) };

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

/* The summary row of each layer names its parameter count, and the total is there. */
static void check_summary_text(const char *text) {
    char line[512];
    for (int i = 0; i < PARAMETER_COUNT_ROWS; i++) {
        const expected_count *row = &parameter_counts[i];
        if (!CHECK(find_row(text, row->name, line, sizeof(line)))) {
            fprintf(stderr, "no summary row for %s in:\n%s\n", row->name, text);
            continue;
        }
        /* The count is the row's last word. */
        const char *last_word = strrchr(line, ' ');
        if (!CHECK(last_word && strcmp(last_word + 1, row->shown) == 0))
            fprintf(stderr, "summary row '%s': expected the count %s\n", line, row->shown);
    }
    CHECK(strstr(text, "16 x 7 x 14") != NULL);
    CHECK(strstr(text, "1568") != NULL);
    CHECK(strstr(text, "203,514") != NULL);
}

static void check_parameter_counts(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, parameter_network, "example 5", &net)))
        return;
    for (int i = 0; i < PARAMETER_COUNT_ROWS; i++) {
        const expected_count *row = &parameter_counts[i];
        int found = 0;
        for (int j = 0; j < clcnn_net_layer_count(net); j++) {
            clcnn_layer_info info;
            if (clcnn_net_layer_info(net, j, &info) != CLCNN_OK ||
                strcmp(info.name, row->name) != 0)
                continue;
            found = 1;
            CHECK(info.weight_count == row->weights);
            CHECK(info.bias_count == row->biases);
        }
        if (!CHECK(found))
            fprintf(stderr, "example 5: no layer %s\n", row->name);
    }
    clcnn_layer_info flatten;
    CHECK_OK(ctx, clcnn_net_layer_info(net, 7, &flatten));
    CHECK(flatten.ndim == 1 && flatten.shape[0] == 1568);
    CHECK(clcnn_net_parameter_count(net) == 224 + 1168 + 200832 + 1290);

    char text[8192];
    if (CHECK_OK(ctx, clcnn_net_summary(net, text, sizeof(text))))
        check_summary_text(text);
    clcnn_net_destroy(net);

    char net_path[1300], command[4096], output[8192];
    snprintf(net_path, sizeof(net_path), "%s", test_path("example5.net"));
    if (!CHECK(write_text(net_path, parameter_network) == 0))
        return;
    snprintf(command, sizeof(command), "'%s' summary '%s'", clcnn_bin(), net_path);
    int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0))
        fprintf(stderr, "'%s' exited with %d:\n%s\n", command, status, output);
    check_summary_text(output);
    CHECK(strstr(output, "224") && strstr(output, "1,168") && strstr(output, "200,832") &&
          strstr(output, "1,290"));
}

int main(void) {
    clcnn_context *reference = clcnn_context_create();
    if (CHECK(reference != NULL) &&
        CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, -1, -1)))
        check_examples_api(reference, "reference");

    clcnn_context *opencl = test_opencl_context();
    if (CHECK(opencl != NULL))
        check_examples_api(opencl, "opencl");

    /* A context only for reading and writing files. */
    clcnn_context *files = clcnn_context_create();
    if (CHECK(files != NULL)) {
        check_examples_cli(files);
        check_parameter_counts(files);
    }
    clcnn_context_destroy(files);
    clcnn_context_destroy(opencl);
    clcnn_context_destroy(reference);
    return test_finish();
}
