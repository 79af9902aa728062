/* The conv layer's dilation= and groups= (PyTorch's Conv2d dilation and
 * groups), through the network file, the tensor table, initialisation, the
 * passes on both devices and the tuning file.
 *
 * 1. Shapes: output sizes floor((H + pad_top + pad_bottom - D*(R-1) - 1) /
 *    stride) + 1, 'same' padding from the window's span D*(R-1) + 1, weight
 *    tensors (K, C/groups, R, S) and their counts, depthwise layers with and
 *    without a channel multiplier.
 * 2. Errors name the file, the line and the reason: channels or filters not
 *    divisible by groups, a dilated window larger than the padded input, bad
 *    values.
 * 3. Initialisation uses torch.nn.init's fans of the (K, C/groups, R, S)
 *    weight: fan_in = C/groups*R*S for He (checked on the spread of the
 *    weights), fan_out = K*R*S for Xavier (the bound).
 * 4. Networks of grouped, dilated and depthwise layers run forward and
 *    backward on the OpenCL device (each kernel family) and the reference
 *    with the same weights: outputs agree within 1e-5 relative, gradients
 *    within 1e-4 and the loss within 1e-5, as tests/test_graph.c holds.
 * 5. Tuning keys: a grouped or dilated shape's tuned configuration is kept
 *    apart from the ordinary shape's, and survives the tuning file.
 */
#include "layers/layer.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1. shapes ----------------------------------------------------------------------------- */

/* Parses text (which must be valid) and checks its last layer. */
static void check_conv(clcnn_context *ctx, const char *text, int c, int h, int w, int64_t weights,
                       int pad_top, int pad_bottom, int pad_left, int pad_right, int test_line) {
    layer *layers = NULL;
    int count = 0;
    if (!CHECK_OK(ctx, netfile_parse(ctx, text, "net.txt", &layers, &count))) {
        fprintf(stderr, "  test line %d\n", test_line);
        return;
    }
    const layer *l = &layers[count - 1];
    const int ok = l->out.c == c && l->out.h == h && l->out.w == w && l->weight_count == weights &&
                   l->pad_top == pad_top && l->pad_bottom == pad_bottom &&
                   l->pad_left == pad_left && l->pad_right == pad_right;
    if (!CHECK(ok))
        fprintf(stderr,
                "  test line %d: got %dx%dx%d, %lld weights, pad %d/%d/%d/%d; expected %dx%dx%d, "
                "%lld weights, pad %d/%d/%d/%d\n",
                test_line, l->out.c, l->out.h, l->out.w, (long long)l->weight_count, l->pad_top,
                l->pad_bottom, l->pad_left, l->pad_right, c, h, w, (long long)weights, pad_top,
                pad_bottom, pad_left, pad_right);
    free(layers);
}

static void test_shapes(clcnn_context *ctx) {
    /* (10 - 2*2 - 1) / 1 + 1 = 6, (12 - 5) + 1 = 8; weights 4 x 6/2 x 3 x 3 */
    check_conv(ctx,
               "input channels=6 height=10 width=12\nconv filters=4 size=3 dilation=2 groups=2\n",
               4, 6, 8, 4 * 3 * 9, 0, 0, 0, 0, __LINE__);
    /* dilation per axis, stride and padding: (9 + 2 - 3*2 - 1) / 2 + 1 = 3, (9 + 2 - 2 - 1) + 1 = 9
     */
    check_conv(
        ctx,
        "input channels=2 height=9 width=9\nconv filters=2 size=3 dilation=3x1 pad=1 stride=2x1\n",
        2, 3, 9, 2 * 2 * 9, 1, 1, 1, 1, __LINE__);
    /* 'same' pads the span 5x7 of a 3x3 kernel dilated 2x3: totals 4 and 6 */
    check_conv(ctx,
               "input channels=6 height=9 width=9\nconv filters=12 size=3 groups=6 dilation=2x3 "
               "pad=same\n",
               12, 9, 9, 12 * 1 * 9, 2, 2, 3, 3, __LINE__);
    /* 'same' with stride 2: ceil(10 / 2) = 5 outputs, total (5-1)*2 + 5 - 10 = 3 */
    check_conv(ctx,
               "input channels=3 height=10 width=10\nconv filters=3 size=3 groups=3 dilation=2 "
               "stride=2 pad=same\n",
               3, 5, 5, 3 * 1 * 9, 1, 2, 1, 2, __LINE__);
    /* depthwise with a channel multiplier of 2, and a 1x1 grouped layer */
    check_conv(ctx, "input channels=3 height=5 width=5\nconv filters=6 size=3 groups=3 pad=1\n", 6,
               5, 5, 6 * 1 * 9, 1, 1, 1, 1, __LINE__);
    check_conv(ctx, "input channels=8 height=4 width=4\nconv filters=12 size=1 groups=4\n", 12, 4,
               4, 12 * 2, 0, 0, 0, 0, __LINE__);
    /* dilation=1 and groups=1 are the defaults */
    check_conv(ctx,
               "input channels=3 height=7 width=7\nconv filters=5 size=3 dilation=1 groups=1\n", 5,
               5, 5, 5 * 3 * 9, 0, 0, 0, 0, __LINE__);
    /* the widest window that fits: span 1 + 3*(3-1) = 7 of 5 + 2 */
    check_conv(ctx, "input channels=1 height=5 width=5\nconv filters=1 size=3 dilation=3 pad=1\n",
               1, 1, 1, 9, 1, 1, 1, 1, __LINE__);

    /* The tensor table has PyTorch's weight shape. */
    clcnn_net *net = NULL;
    if (CHECK_OK(ctx,
                 clcnn_net_from_string(
                     ctx, "input channels=6 height=8 width=8\nconv filters=9 size=3x2 groups=3\n",
                     "net.txt", &net))) {
        clcnn_tensor_info info;
        CHECK_OK(ctx, clcnn_net_tensor_info(net, 0, &info));
        CHECK(strcmp(info.name, "conv1.weight") == 0 && info.ndim == 4 && info.shape[0] == 9 &&
              info.shape[1] == 2 && info.shape[2] == 3 && info.shape[3] == 2 &&
              info.count == 9 * 2 * 3 * 2);
        CHECK(clcnn_net_parameter_count(net) == 9 * 2 * 3 * 2 + 9);
        clcnn_net_destroy(net);
    }
}

/* ---- 2. errors ----------------------------------------------------------------------------- */

/* Parses text that must fail with status and a message containing expected. */
static void expect_error(clcnn_context *ctx, const char *text, clcnn_status expected_status,
                         const char *expected, int test_line) {
    layer *layers = NULL;
    int count = -1;
    const clcnn_status status = netfile_parse(ctx, text, "net.txt", &layers, &count);
    const char *message = clcnn_last_error(ctx);
    if (!CHECK(status == expected_status && strstr(message, expected) != NULL && layers == NULL)) {
        fprintf(stderr, "  test line %d: got %s \"%s\", expected %s containing \"%s\"\n", test_line,
                clcnn_status_name(status), message, clcnn_status_name(expected_status), expected);
        if (status == CLCNN_OK)
            free(layers);
    }
}

#define IN6 "input channels=6 height=5 width=5\n"

static void test_errors(clcnn_context *ctx) {
    const clcnn_status parse = CLCNN_ERROR_PARSE, shape = CLCNN_ERROR_SHAPE;
    expect_error(ctx, IN6 "conv filters=5 size=3 groups=2\n", parse,
                 "net.txt:2: conv: filters=5 is not divisible by groups=2", __LINE__);
    expect_error(ctx, IN6 "relu\nconv filters=8 size=3 groups=4\n", shape,
                 "net.txt:3: conv: 6 input channels are not divisible by groups=4", __LINE__);
    expect_error(ctx, IN6 "conv filters=12 size=1 groups=12\n", shape,
                 "net.txt:2: conv: 6 input channels are not divisible by groups=12", __LINE__);
    expect_error(ctx, IN6 "conv filters=1 size=3 dilation=3\n", shape,
                 "net.txt:2: conv: kernel 3x3 with dilation 3x3 spans 7x7, more than the padded "
                 "input 5x5",
                 __LINE__);
    expect_error(ctx, IN6 "conv filters=1 size=2x3 dilation=5x1 pad=0x1\n", shape,
                 "net.txt:2: conv: kernel 2x3 with dilation 5x1 spans 6x3, more than the padded "
                 "input 5x7",
                 __LINE__);
    expect_error(ctx, IN6 "conv filters=1 size=3 dilation=600000\n", shape,
                 "net.txt:2: conv: kernel 3x3 with dilation 600000x600000 spans 1200001x1200001, "
                 "more than 1000000",
                 __LINE__);
    /* Without dilation the message stays what it was. */
    expect_error(ctx, IN6 "conv filters=2 size=7 groups=2 dilation=1\n", shape,
                 "net.txt:2: conv: kernel 7x7 is larger than the padded input 5x5", __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 dilation=0\n", parse,
                 "net.txt:2: conv: 'dilation' must be a positive integer or HxW (e.g. 3 or 3x5), "
                 "got '0'",
                 __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 dilation=2x\n", parse,
                 "net.txt:2: conv: 'dilation' must be a positive integer or HxW", __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 groups=0\n", parse,
                 "net.txt:2: conv: 'groups' must be a positive integer, got '0'", __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 groups=2x1\n", parse,
                 "net.txt:2: conv: 'groups' must be a positive integer, got '2x1'", __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 groups=\n", parse,
                 "net.txt:2: conv: missing value for 'groups'", __LINE__);
    expect_error(ctx, IN6 "conv filters=2 size=3 dilations=2\n", parse,
                 "net.txt:2: conv: unknown key 'dilations' (expected filters, size, stride, pad, "
                 "bias, filter, dilation, groups, name)",
                 __LINE__);
    /* Pooling takes neither. */
    expect_error(ctx, IN6 "maxpool size=2 dilation=2\n", parse,
                 "net.txt:2: maxpool: unknown key 'dilation'", __LINE__);
}

/* ---- 3. initialisation ------------------------------------------------------------------ */

/* Initialises text's conv1 with seed and returns its weights' root mean
 * square and largest magnitude. */
static int conv1_weight_spread(clcnn_context *ctx, const char *text, double *rms, double *largest) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "net.txt", &net)))
        return 0;
    clcnn_tensor_info info;
    int ok = CHECK_OK(ctx, clcnn_net_init_weights(net, 99)) &&
             CHECK_OK(ctx, clcnn_net_tensor_info(net, 0, &info));
    float *values = ok ? malloc(sizeof(float) * (size_t)info.count) : NULL;
    ok = ok && values &&
         CHECK_OK(ctx, clcnn_net_get_tensor(net, "conv1.weight", values, info.count));
    if (ok) {
        double sum = 0.0;
        *largest = 0.0;
        for (int64_t i = 0; i < info.count; i++) {
            sum += (double)values[i] * values[i];
            *largest = fmax(*largest, fabs(values[i]));
        }
        *rms = sqrt(sum / (double)info.count);
    }
    free(values);
    clcnn_net_destroy(net);
    return ok;
}

static void test_initialisation(clcnn_context *ctx) {
    double rms, largest;
    /* He before a relu: std sqrt(2 / fan_in), fan_in = 1 * 3 * 3 for a
     * depthwise layer (0.471; with fan_in = 64 * 9 it would be 0.059). 4096
     * normal draws give the std within a few percent. */
    if (conv1_weight_spread(ctx,
                            "input channels=64 height=5 width=5\n"
                            "conv filters=4096 size=3 groups=64 pad=1\nrelu\n",
                            &rms, &largest))
        CHECK(fabs(rms - sqrt(2.0 / 9.0)) < 0.03 * sqrt(2.0 / 9.0));
    /* groups=2 of 16 channels: fan_in 8 * 9 = 72 */
    if (conv1_weight_spread(ctx,
                            "input channels=16 height=5 width=5\n"
                            "conv filters=512 size=3 groups=2 pad=1\nrelu\n",
                            &rms, &largest))
        CHECK(fabs(rms - sqrt(2.0 / 72.0)) < 0.03 * sqrt(2.0 / 72.0));
    /* Xavier uniform otherwise: bound sqrt(6 / (fan_in + fan_out)) with
     * fan_in = 2 * 9 and fan_out = K * 9 = 64 * 9 (PyTorch's fan_out is
     * size(0) * receptive field, groups or not). */
    const double bound = sqrt(6.0 / (2 * 9 + 64 * 9));
    if (conv1_weight_spread(ctx,
                            "input channels=8 height=5 width=5\n"
                            "conv filters=64 size=3 groups=4 pad=1\ntanh\n",
                            &rms, &largest))
        CHECK(largest <= bound && largest > 0.95 * bound &&
              fabs(rms - bound / sqrt(3.0)) < 0.1 * bound);
}

/* ---- 4. both devices ----------------------------------------------------------------------- */

static const char *const device_networks[] = {
    /* grouped and dilated layers of every kind, a depthwise one with a multiplier */
    "input channels=4 height=11 width=10\n"
    "conv filters=8 size=3 groups=2 dilation=2 pad=same\n"
    "relu\n"
    "conv filters=16 size=3 groups=8 stride=2 pad=1\n"
    "tanh\n"
    "conv filters=16 size=3x2 groups=16 dilation=2x1 pad=2x1\n"
    "sigmoid\n"
    "conv filters=6 size=1 groups=2 bias=false\n"
    "flatten\n"
    "dense units=5\n"
    "softmax\n",
    /* a residual block around a depthwise-separable pair */
    "input channels=6 height=9 width=9\n"
    "conv filters=6 size=3 groups=6 pad=same dilation=3 name=dw\n"
    "relu\n"
    "conv filters=6 size=1 name=pw\n"
    "add inputs=pw,input\n"
    "conv filters=12 size=3 groups=3 stride=2 dilation=2 pad=2\n"
    "globalavgpool\n"
    "flatten\n"
    "dense units=3\n"
    "softmax\n",
};

typedef struct run_result {
    float *output;
    double loss;
    float *gradients; /* every parameter's in tensor order, then the input's */
    int64_t gradient_count;
} run_result;

static int run(clcnn_context *ctx, const char *text, int batch, const float *input,
               const int32_t *labels, run_result *out) {
    memset(out, 0, sizeof(*out));
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "net.txt", &net)))
        return 0;
    int ok = CHECK_OK(ctx, clcnn_net_init_weights(net, 5));
    const int64_t out_size = clcnn_net_output_size(net), in_size = clcnn_net_input_size(net);
    int64_t count = batch * in_size;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        count += info.count;
    }
    out->output = malloc(sizeof(float) * (size_t)(batch * out_size));
    out->gradients = malloc(sizeof(float) * (size_t)count);
    out->gradient_count = count;
    ok = ok && out->output && out->gradients &&
         CHECK_OK(ctx, clcnn_net_forward(net, input, batch, out->output, NULL, NULL)) &&
         CHECK_OK(ctx, clcnn_net_backward(net, input, batch, labels, NULL, &out->loss));
    int64_t used = 0;
    for (int i = 0; ok && i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        ok = CHECK_OK(
            ctx, clcnn_net_get_tensor_gradient(net, info.name, out->gradients + used, info.count));
        used += info.count;
    }
    ok = ok && CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, "input", out->gradients + used,
                                                           batch * in_size));
    clcnn_net_destroy(net);
    return ok;
}

static void free_result(run_result *r) {
    free(r->output);
    free(r->gradients);
}

/* Each network on the reference and on opencl (its family as `label` says). */
static void test_devices(clcnn_context *reference, clcnn_context *opencl, const char *label) {
    test_rng rng = {4242};
    for (size_t n = 0; n < sizeof(device_networks) / sizeof(device_networks[0]); n++) {
        const int batch = 3;
        clcnn_net *probe = NULL;
        if (!CHECK_OK(reference,
                      clcnn_net_from_string(reference, device_networks[n], "net.txt", &probe)))
            continue;
        const int64_t in_size = clcnn_net_input_size(probe);
        const int classes = (int)clcnn_net_output_size(probe);
        clcnn_net_destroy(probe);
        float *input = malloc(sizeof(float) * (size_t)(batch * in_size));
        for (int64_t i = 0; i < batch * in_size; i++)
            input[i] = test_rand_float(&rng, -1.0f, 1.0f);
        int32_t labels[3];
        for (int i = 0; i < batch; i++)
            labels[i] = test_rand_int(&rng, 0, classes - 1);
        run_result want, got;
        if (run(reference, device_networks[n], batch, input, labels, &want) &&
            run(opencl, device_networks[n], batch, input, labels, &got)) {
            const double output_error =
                max_relative_error(got.output, want.output, batch * classes, 1.0);
            const double gradient_error =
                max_relative_error(got.gradients, want.gradients, want.gradient_count, 1.0);
            const double loss_error = fabs(got.loss - want.loss) / fmax(fabs(want.loss), 1e-30);
            printf("network %zu, %s: output error %.3g, gradient error %.3g, loss error %.3g\n",
                   n + 1, label, output_error, gradient_error, loss_error);
            CHECK(output_error <= 1e-5 && gradient_error <= 1e-4 && loss_error <= 1e-5);
        }
        free_result(&want);
        free_result(&got);
        free(input);
    }
}

/* ---- 5. tuning keys ------------------------------------------------------------------------ */

static int same_config(direct_config a, direct_config b) {
    return a.vw == b.vw && a.nv == b.nv && a.wpt_p == b.wpt_p && a.group == b.group;
}

static void test_tuning_keys(void) {
    /* A cache directory of the test's own, so that no tuning file of the
     * user's is read. */
    setenv("XDG_CACHE_HOME", test_dir(), 1);
    unsetenv("CLCNN_NO_TUNING");
    unsetenv("CLCNN_DIRECT");
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return;
    const conv2d_params plain = {.batch = 2,
                                 .in_channels = 8,
                                 .in_height = 12,
                                 .in_width = 12,
                                 .out_channels = 8,
                                 .kernel_h = 3,
                                 .kernel_w = 3,
                                 .stride_h = 1,
                                 .stride_w = 1,
                                 .pad_top = 1,
                                 .pad_left = 1,
                                 .out_height = 12,
                                 .out_width = 12};
    conv2d_params grouped = plain, dilated = plain, dilated_w = plain;
    grouped.groups = 2;
    dilated.dilation_h = 2;
    dilated.dilation_w = 1;
    dilated_w.dilation_h = 1;
    dilated_w.dilation_w = 2;
    const direct_config defaults = direct_config_for_conv(ctx, "forward", &plain, 8);
    const direct_config for_grouped = {4, 1, 5, 2}, for_dilated = {8, 1, 3, 1};
    CHECK(!same_config(defaults, for_grouped) && !same_config(defaults, for_dilated));
    CHECK_OK(ctx, tuning_remember(ctx, "forward", &grouped, &for_grouped));
    CHECK_OK(ctx, tuning_remember(ctx, "forward", &dilated, &for_dilated));
    CHECK(same_config(direct_config_for_conv(ctx, "forward", &grouped, 4), for_grouped));
    CHECK(same_config(direct_config_for_conv(ctx, "forward", &dilated, 8), for_dilated));
    CHECK(same_config(direct_config_for_conv(ctx, "forward", &plain, 8), defaults));
    CHECK(same_config(direct_config_for_conv(ctx, "forward", &dilated_w, 8), defaults));
    CHECK_OK(ctx, tuning_save(ctx));
    clcnn_context_destroy(ctx);

    /* A later context reads them back under the same keys. */
    ctx = test_opencl_context();
    if (CHECK(ctx != NULL)) {
        CHECK(same_config(direct_config_for_conv(ctx, "forward", &grouped, 4), for_grouped));
        CHECK(same_config(direct_config_for_conv(ctx, "forward", &dilated, 8), for_dilated));
        CHECK(same_config(direct_config_for_conv(ctx, "forward", &plain, 8), defaults));
        clcnn_context_destroy(ctx);
    }
}

int main(void) {
    clcnn_context *reference = clcnn_context_create();
    if (!CHECK(reference != NULL))
        return test_finish();
    CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, 0, 0));
    test_shapes(reference);
    test_errors(reference);
    test_initialisation(reference);

    /* The OpenCL device with each kernel family (read when the device is selected). */
    static const char *const families[2] = {"tiled", "direct"};
    for (int i = 0; i < 2; i++) {
        setenv("CLCNN_CONV", families[i], 1);
        clcnn_context *opencl = test_opencl_context();
        unsetenv("CLCNN_CONV");
        if (CHECK(opencl != NULL)) {
            test_devices(reference, opencl, families[i]);
            clcnn_context_destroy(opencl);
        }
    }
    clcnn_context_destroy(reference);
    test_tuning_keys();
    return test_finish();
}
