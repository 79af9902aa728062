/* clcnn_net_forward and clcnn_net_backward on the caller's arrays in place
 * (a device that shares the host's memory, CLCNN_ZERO_COPY): the same bits
 * as through copies, for arrays at any float offset, over several chunks,
 * traced, with input and targets never written, for a network of views
 * and for output and input that are one array; and a bad CLCNN_ZERO_COPY
 * is refused. */
#include "internal.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NETWORKS[][2] = {
    {"convolutions", "input channels=3 height=12 width=12\n"
                     "conv filters=8 size=3 pad=1 bias=false\nbatchnorm\nrelu\nmaxpool size=2\n"
                     "conv filters=6 size=3\nrelu\nflatten\ndense units=5\nsoftmax\n"},
    {"a view of the input", "input channels=2 height=3 width=5\nflatten\n"},
    {"a relu", "input channels=4 height=6 width=6\nrelu\n"},
    {"a dense layer as large as its input",
     "input channels=1 height=4 width=4\nflatten\ndense units=16\n"},
    {"a residual block",
     "input channels=4 height=8 width=8\nconv filters=4 size=3 pad=1\nbatchnorm name=bn\n"
     "add inputs=bn,input\nrelu\n"},
};

enum { BATCH = 37 };

/* A context on the first OpenCL device with CLCNN_ZERO_COPY at value (NULL: unset). */
static clcnn_context *opencl_context(const char *value) {
    if (value)
        setenv("CLCNN_ZERO_COPY", value, 1);
    else
        unsetenv("CLCNN_ZERO_COPY");
    clcnn_context *ctx = clcnn_context_create();
    if (ctx && clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK) {
        clcnn_context_destroy(ctx);
        ctx = NULL;
    }
    unsetenv("CLCNN_ZERO_COPY");
    return ctx;
}

static clcnn_net *network(clcnn_context *ctx, const char *text, const char *name) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, name, &net)) ||
        !CHECK_OK(ctx, clcnn_net_init_weights(net, 5))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    clcnn_net_set_mode(net, CLCNN_MODE_EVAL);
    return net;
}

/* Collects the traced outputs of the last node, and whether the pass
 * wrote the caller's output array in place. */
typedef struct last_output {
    const clcnn_net *net;
    int node;
    int64_t size;
    float *values;
    int output_wrapped;
} last_output;

static clcnn_status keep_last(void *user, int node, const float *values, int64_t first,
                              int64_t count) {
    last_output *last = user;
    last->output_wrapped = last->net->caller_output != NULL;
    if (node == last->node)
        memcpy(last->values + first * last->size, values,
               sizeof(float) * (size_t)(count * last->size));
    return CLCNN_OK;
}

/* Every parameter's gradient and the input's, one after the other. */
static float *gradients(clcnn_context *ctx, clcnn_net *net, int64_t *count) {
    int64_t total = BATCH * clcnn_net_input_size(net);
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        total += info.kind == CLCNN_TENSOR_PARAMETER ? info.count : 0;
    }
    float *values = test_floats(total);
    int64_t used = 0;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        if (info.kind != CLCNN_TENSOR_PARAMETER)
            continue;
        CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, info.name, values + used, info.count));
        used += info.count;
    }
    CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, "input", values + used, total - used));
    *count = total;
    return values;
}

/* clcnn_net_backward in train mode, with class labels (cross-entropy) or
 * targets (MSE): the same loss and gradients, input and targets untouched. */
static void check_backward(clcnn_context *in_place, clcnn_context *copying, clcnn_net *a,
                           clcnn_net *b, const float *images, int with_labels) {
    const size_t in_bytes = sizeof(float) * (size_t)(BATCH * clcnn_net_input_size(a));
    const int64_t out_size = clcnn_net_output_size(a);
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++)
        labels[i] = i % (int)out_size;
    float *input = test_floats(BATCH * clcnn_net_input_size(a));
    float *targets = NULL, *targets_kept = NULL;
    memcpy(input, images, in_bytes);
    if (!with_labels) {
        test_rng rng = {12};
        targets = test_floats(BATCH * out_size);
        targets_kept = test_floats(BATCH * out_size);
        test_fill_signed(&rng, targets, BATCH * out_size);
        memcpy(targets_kept, targets, sizeof(float) * (size_t)(BATCH * out_size));
    }
    const int32_t *given = with_labels ? labels : NULL;
    clcnn_net_set_mode(a, CLCNN_MODE_TRAIN);
    clcnn_net_set_mode(b, CLCNN_MODE_TRAIN);
    double loss_a = 0.0, loss_b = 1.0;
    if (CHECK_OK(copying, clcnn_net_backward(b, input, BATCH, given, targets, &loss_b)) &&
        CHECK_OK(in_place, clcnn_net_backward(a, input, BATCH, given, targets, &loss_a))) {
        CHECK(loss_a == loss_b);
        int64_t count_a, count_b;
        float *from_a = gradients(in_place, a, &count_a), *from_b = gradients(copying, b, &count_b);
        CHECK(count_a == count_b && memcmp(from_a, from_b, sizeof(float) * (size_t)count_a) == 0);
        free(from_a);
        free(from_b);
    }
    CHECK(memcmp(input, images, in_bytes) == 0);
    if (targets)
        CHECK(memcmp(targets, targets_kept, sizeof(float) * (size_t)(BATCH * out_size)) == 0);
    CHECK(a->caller_input == NULL && a->caller_targets == NULL);
    free(input);
    free(targets);
    free(targets_kept);
}

static void check_network(clcnn_context *in_place, clcnn_context *copying, const char *name,
                          const char *text) {
    clcnn_net *a = network(in_place, text, name), *b = network(copying, text, name);
    if (!a || !b) {
        clcnn_net_destroy(a);
        clcnn_net_destroy(b);
        return;
    }
    /* Chunks of 8 images: 37 run in five, the last short. */
    int64_t largest = net_largest_activation(a);
    a->forward_chunk_floats = 8 * largest;
    b->forward_chunk_floats = 8 * largest;
    const int64_t in_size = clcnn_net_input_size(a), out_size = clcnn_net_output_size(a);
    test_rng rng = {11};
    const size_t in_bytes = sizeof(float) * (size_t)(BATCH * in_size);
    const size_t out_bytes = sizeof(float) * (size_t)(BATCH * out_size);
    float *images = test_floats(BATCH * in_size), *expected = test_floats(BATCH * out_size);
    float *input = test_floats(BATCH * in_size + 3), *before = test_floats(BATCH * in_size + 3);
    float *output = test_floats(BATCH * out_size + 3);
    test_fill_signed(&rng, images, BATCH * in_size);
    test_fill_signed(&rng, input, BATCH * in_size + 3);
    CHECK_OK(copying, clcnn_net_forward(b, images, BATCH, expected, NULL, NULL));
    /* Arrays 0 to 3 floats past an allocation's start. */
    for (int offset = 0; offset < 4; offset++) {
        memcpy(input + offset, images, in_bytes);
        memcpy(before, input, in_bytes + 3 * sizeof(float));
        memset(output, 0xff, out_bytes + 3 * sizeof(float));
        if (!CHECK_OK(in_place,
                      clcnn_net_forward(a, input + offset, BATCH, output + offset, NULL, NULL)))
            continue;
        if (!CHECK(memcmp(output + offset, expected, out_bytes) == 0))
            printf("  %s, offset %d: not the copying forward's output\n", name, offset);
        CHECK(memcmp(input, before, in_bytes + 3 * sizeof(float)) == 0);
    }
    /* Traced (unfolded, so other floats where batchnorm follows a
     * convolution): every node's output read back, the last one's the result. */
    last_output last = {b, clcnn_net_layer_count(a) - 1, out_size, test_floats(BATCH * out_size),
                        0};
    float *traced = test_floats(BATCH * out_size);
    CHECK_OK(copying, clcnn_net_forward(b, images, BATCH, traced, keep_last, &last));
    CHECK(!last.output_wrapped);
    last.net = a;
    if (CHECK_OK(in_place, clcnn_net_forward(a, images, BATCH, output, keep_last, &last))) {
        CHECK(memcmp(output, traced, out_bytes) == 0);
        CHECK(memcmp(last.values, traced, out_bytes) == 0);
        /* In place unless the output is the input's storage (views only). */
        CHECK(last.output_wrapped == (a->plan.root[last.node] != 0));
    }
    /* One array for input and output, when they are as large: the output
     * is then a copy, since a layer could overwrite images still to be read. */
    if (in_size == out_size) {
        float *both = test_floats(BATCH * in_size);
        memcpy(both, images, in_bytes);
        if (CHECK_OK(in_place, clcnn_net_forward(a, both, BATCH, both, keep_last, &last))) {
            CHECK(memcmp(both, traced, out_bytes) == 0);
            CHECK(!last.output_wrapped);
        }
        free(both);
    }
    free(traced);
    if (clcnn_net_tensor_count(a) > 0)
        check_backward(in_place, copying, a, b, images, strstr(text, "softmax") != NULL);
    CHECK(a->caller_input == NULL && a->caller_output == NULL);
    free(last.values);
    free(images);
    free(input);
    free(before);
    free(expected);
    free(output);
    clcnn_net_destroy(a);
    clcnn_net_destroy(b);
}

int main(void) {
    clcnn_context *in_place = opencl_context("1"), *copying = opencl_context("0");
    if (!in_place || !copying) {
        test_skip("no OpenCL device");
        clcnn_context_destroy(in_place);
        clcnn_context_destroy(copying);
        return test_finish();
    }
    CHECK(in_place->config.zero_copy == 1 && copying->config.zero_copy == 0);
    /* The default: in place where the device shares the host's memory. */
    clcnn_context *plain = opencl_context(NULL);
    if (CHECK(plain != NULL))
        CHECK(plain->config.zero_copy == (plain->host_unified_memory == CL_TRUE));
    clcnn_context_destroy(plain);
    for (size_t i = 0; i < sizeof(NETWORKS) / sizeof(NETWORKS[0]); i++)
        check_network(in_place, copying, NETWORKS[i][0], NETWORKS[i][1]);

    setenv("CLCNN_ZERO_COPY", "yes", 1);
    clcnn_context *bad = clcnn_context_create();
    if (CHECK(bad != NULL)) {
        CHECK(clcnn_context_select_device(bad, CLCNN_DEVICE_OPENCL, -1, -1) ==
              CLCNN_ERROR_INVALID_ARGUMENT);
        CHECK(strstr(clcnn_last_error(bad), "CLCNN_ZERO_COPY='yes'") != NULL);
    }
    clcnn_context_destroy(bad);
    unsetenv("CLCNN_ZERO_COPY");
    clcnn_context_destroy(in_place);
    clcnn_context_destroy(copying);
    return test_finish();
}
