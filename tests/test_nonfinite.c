/* NaN and infinity propagate through every layer as in PyTorch, on both
 * devices (issue 11, row 4).
 *
 * Each case is a one-layer network (after the input) run by
 * clcnn_net_forward on an input of 2 images x 2 channels x 4 x 4 whose
 * values are finite except one or two planted NaN or infinities. What
 * PyTorch gives is known element by element without running it:
 *   - element-wise layers (relu, leaky, relu6, sigmoid, tanh, dropout in
 *     train mode) map a NaN to NaN in its own place and +-inf to their
 *     limits (relu(+inf) = inf, relu(-inf) = 0, relu6(+inf) = 6,
 *     sigmoid(+inf) = 1, tanh(-inf) = -1), every other element finite;
 *     dropout's dropped elements are NaN * 0 = NaN too;
 *   - max and average pooling: exactly the windows holding the NaN are NaN
 *     (a max window with +inf is +inf);
 *   - softmax: the whole row of a NaN is NaN (the last axis, W, of an image;
 *     the whole image after flatten);
 *   - batchnorm: train mode (batch statistics) makes the NaN's whole channel
 *     NaN in every image and leaves the other channel finite; eval mode only
 *     the element itself;
 *   - conv: exactly the outputs whose window reaches the NaN, in every
 *     output channel; dense: every unit of that image;
 *   - globalavgpool: that image's channel.
 * The losses (clcnn_net_backward) of a batch with a NaN logit are NaN for
 * cross-entropy, binary cross-entropy and MSE. Every expectation is checked
 * on the reference device and the OpenCL device alike. */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 2, C = 2, H = 4, W = 4, IMAGE = C * H * W, MAX_OUT = 4096 };

/* What an output element must be. */
typedef enum expect_kind { FINITE, IS_NAN, POS_INF, ZERO, EQUALS } expect_kind;

typedef struct expectation {
    expect_kind kind;
    float value; /* for EQUALS */
} expectation;

static int meets(float got, expectation e) {
    switch (e.kind) {
    case FINITE:
        return isfinite(got);
    case IS_NAN:
        return isnan(got);
    case POS_INF:
        return isinf(got) && got > 0;
    case ZERO:
        return got == 0.0f;
    case EQUALS:
        return got == e.value;
    }
    return 0;
}

/* A finite input with values in [-2, 2]. */
static void finite_input(float *x) {
    test_rng r = {42};
    for (int i = 0; i < N * IMAGE; i++)
        x[i] = test_rand_float(&r, -2.0f, 2.0f);
}

static int index_of(int n, int c, int h, int w) {
    return ((n * C + c) * H + h) * W + w;
}

/* Runs "input ...\n<layer>" on ctx in mode on x; checks every output
 * against expected(position) and reports the first mismatch. */
typedef expectation (*expect_fn)(int n, int64_t i, int64_t per_image);

static void check_layer(clcnn_context *ctx, const char *device, const char *layer_text,
                        clcnn_mode mode, const float *x, expect_fn expected) {
    char text[512];
    snprintf(text, sizeof(text), "input channels=%d height=%d width=%d\n%s\n", C, H, W, layer_text);
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "nonfinite.net", &net)))
        return;
    CHECK_OK(ctx, clcnn_net_init_weights(net, 5));
    CHECK_OK(ctx, clcnn_net_set_mode(net, mode));
    const int64_t per_image = clcnn_net_output_size(net);
    static float out[MAX_OUT];
    for (int64_t i = 0; i < N * per_image; i++)
        out[i] = 12345.0f; /* overwritten by a correct forward */
    if (CHECK(N * per_image <= MAX_OUT) &&
        CHECK_OK(ctx, clcnn_net_forward(net, x, N, out, NULL, NULL))) {
        int bad = 0;
        for (int n = 0; n < N; n++)
            for (int64_t i = 0; i < per_image; i++) {
                const float got = out[n * per_image + i];
                if (!meets(got, expected(n, i, per_image)) && bad++ == 0) {
                    CHECK(0);
                    fprintf(stderr, "%s, %s, %s mode: image %d output %lld is %g, expected %s\n",
                            device, layer_text, mode == CLCNN_MODE_TRAIN ? "train" : "eval", n,
                            (long long)i, got,
                            (const char *[]){"finite", "NaN", "+inf", "0",
                                             "a given value"}[expected(n, i, per_image).kind]);
                }
            }
        CHECK(bad == 0);
    }
    clcnn_net_destroy(net);
}

/* ---- the planted values and what each layer must make of them ---------------------------- */

/* A NaN at image 1, channel 0, (1, 2); +inf at image 0, channel 1, (2, 1); -inf at image 0,
 * channel 0, (3, 3). */
static const int nan_at[4] = {1, 0, 1, 2}, pinf_at[4] = {0, 1, 2, 1}, ninf_at[4] = {0, 0, 3, 3};

static int at(const int *where, int n, int64_t i) {
    return n == where[0] && i == (where[1] * H + where[2]) * W + where[3];
}

static expectation relu_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    if (at(nan_at, n, i))
        return (expectation){IS_NAN, 0};
    if (at(pinf_at, n, i))
        return (expectation){POS_INF, 0};
    if (at(ninf_at, n, i))
        return (expectation){ZERO, 0};
    return (expectation){FINITE, 0};
}

static expectation relu6_expect(int n, int64_t i, int64_t per_image) {
    if (at(pinf_at, n, i))
        return (expectation){EQUALS, 6.0f};
    return relu_expect(n, i, per_image);
}

static expectation sigmoid_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    if (at(nan_at, n, i))
        return (expectation){IS_NAN, 0};
    if (at(pinf_at, n, i))
        return (expectation){EQUALS, 1.0f};
    if (at(ninf_at, n, i))
        return (expectation){ZERO, 0};
    return (expectation){FINITE, 0};
}

static expectation tanh_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    if (at(nan_at, n, i))
        return (expectation){IS_NAN, 0};
    if (at(pinf_at, n, i))
        return (expectation){EQUALS, 1.0f};
    if (at(ninf_at, n, i))
        return (expectation){EQUALS, -1.0f};
    return (expectation){FINITE, 0};
}

/* Only the NaN planted (no infinities): element-wise layers keep it in its place. */
static expectation nan_only_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    return at(nan_at, n, i) ? (expectation){IS_NAN, 0} : (expectation){FINITE, 0};
}

/* Pooling 2x2 with stride 1 (3x3 outputs): window (oh, ow) covers rows oh..oh+1, columns
 * ow..ow+1. The NaN at (1, 2) of image 1 channel 0; +inf at (2, 1) of image 0 channel 1. */
static int window_holds(int64_t i, const int *where, int n, int image) {
    const int OW = W - 1, OH = H - 1;
    const int c = (int)(i / (OH * OW)), oh = (int)(i / OW % OH), ow = (int)(i % OW);
    return n == image && c == where[1] && where[2] >= oh && where[2] <= oh + 1 && where[3] >= ow &&
           where[3] <= ow + 1;
}

static expectation maxpool_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    if (window_holds(i, nan_at, n, nan_at[0]))
        return (expectation){IS_NAN, 0};
    if (window_holds(i, pinf_at, n, pinf_at[0]))
        return (expectation){POS_INF, 0};
    return (expectation){FINITE, 0};
}

static expectation avgpool_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    return window_holds(i, nan_at, n, nan_at[0]) ? (expectation){IS_NAN, 0}
                                                 : (expectation){FINITE, 0};
}

/* conv 3 filters 3x3 pad 1 (4x4 outputs): output (oh, ow) reads rows oh-1..oh+1, columns
 * ow-1..ow+1 of every channel. */
static expectation conv_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    const int oh = (int)(i / W % H), ow = (int)(i % W);
    const int reaches = n == nan_at[0] && nan_at[2] >= oh - 1 && nan_at[2] <= oh + 1 &&
                        nan_at[3] >= ow - 1 && nan_at[3] <= ow + 1;
    return reaches ? (expectation){IS_NAN, 0} : (expectation){FINITE, 0};
}

/* The image of the NaN is NaN throughout (softmax over a row, dense). */
static expectation image_expect(int n, int64_t i, int64_t per_image) {
    (void)i;
    (void)per_image;
    return n == nan_at[0] ? (expectation){IS_NAN, 0} : (expectation){FINITE, 0};
}

/* softmax over W: the NaN's row. */
static expectation row_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    return n == nan_at[0] && i / W == nan_at[1] * H + nan_at[2] ? (expectation){IS_NAN, 0}
                                                                : (expectation){FINITE, 0};
}

/* The NaN's channel, in every image (batch statistics), after a per-channel layer. */
static expectation channel_expect(int n, int64_t i, int64_t per_image) {
    (void)n;
    const int c = (int)(i / (per_image / C));
    return c == nan_at[1] ? (expectation){IS_NAN, 0} : (expectation){FINITE, 0};
}

/* globalavgpool: (C, 1, 1) per image, the NaN's channel of its image. */
static expectation global_expect(int n, int64_t i, int64_t per_image) {
    (void)per_image;
    return n == nan_at[0] && i == nan_at[1] ? (expectation){IS_NAN, 0} : (expectation){FINITE, 0};
}

static void check_device(clcnn_context *ctx, const char *device) {
    float with_all[N * IMAGE], with_nan[N * IMAGE];
    finite_input(with_all);
    finite_input(with_nan);
    with_all[index_of(nan_at[0], nan_at[1], nan_at[2], nan_at[3])] = NAN;
    with_all[index_of(pinf_at[0], pinf_at[1], pinf_at[2], pinf_at[3])] = INFINITY;
    with_all[index_of(ninf_at[0], ninf_at[1], ninf_at[2], ninf_at[3])] = -INFINITY;
    with_nan[index_of(nan_at[0], nan_at[1], nan_at[2], nan_at[3])] = NAN;

    check_layer(ctx, device, "relu", CLCNN_MODE_EVAL, with_all, relu_expect);
    check_layer(ctx, device, "leaky slope=0.1", CLCNN_MODE_EVAL, with_nan, nan_only_expect);
    check_layer(ctx, device, "relu6", CLCNN_MODE_EVAL, with_all, relu6_expect);
    check_layer(ctx, device, "sigmoid", CLCNN_MODE_EVAL, with_all, sigmoid_expect);
    check_layer(ctx, device, "tanh", CLCNN_MODE_EVAL, with_all, tanh_expect);
    check_layer(ctx, device, "dropout rate=0.5", CLCNN_MODE_TRAIN, with_nan, nan_only_expect);
    check_layer(ctx, device, "dropout rate=0.5", CLCNN_MODE_EVAL, with_nan, nan_only_expect);
    check_layer(ctx, device, "maxpool size=2 stride=1", CLCNN_MODE_EVAL, with_all, maxpool_expect);
    check_layer(ctx, device, "avgpool size=2 stride=1", CLCNN_MODE_EVAL, with_nan, avgpool_expect);
    check_layer(ctx, device, "conv filters=3 size=3 pad=1", CLCNN_MODE_EVAL, with_nan, conv_expect);
    check_layer(ctx, device, "softmax", CLCNN_MODE_EVAL, with_nan, row_expect);
    check_layer(ctx, device, "flatten\nsoftmax", CLCNN_MODE_EVAL, with_nan, image_expect);
    check_layer(ctx, device, "batchnorm", CLCNN_MODE_TRAIN, with_nan, channel_expect);
    check_layer(ctx, device, "batchnorm", CLCNN_MODE_EVAL, with_nan, nan_only_expect);
    check_layer(ctx, device, "globalavgpool", CLCNN_MODE_EVAL, with_nan, global_expect);
    check_layer(ctx, device, "flatten\ndense units=5", CLCNN_MODE_EVAL, with_nan, image_expect);

    /* Every loss of a batch with a NaN (one image's logits) is NaN. */
    const char *const losses[] = {"flatten\ndense units=3\nsoftmax",
                                  "flatten\ndense units=1\nsigmoid", "flatten\ndense units=3"};
    for (int k = 0; k < 3; k++) {
        char text[256];
        snprintf(text, sizeof(text), "input channels=%d height=%d width=%d\n%s\n", C, H, W,
                 losses[k]);
        clcnn_net *net = NULL;
        if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "loss.net", &net)))
            continue;
        CHECK_OK(ctx, clcnn_net_init_weights(net, 5));
        const int32_t labels[N] = {1, 0};
        const float targets[N * 3] = {0.5f, 0.0f, 1.0f, 1.0f, 0.0f, 0.0f};
        double loss = 0.0;
        const clcnn_status status =
            k == 0 ? clcnn_net_backward(net, with_nan, N, labels, NULL, &loss)
                   : clcnn_net_backward(net, with_nan, N, NULL, targets, &loss);
        if (CHECK_OK(ctx, status) && !CHECK(isnan(loss)))
            fprintf(stderr, "%s: the loss after '%s' is %g, expected NaN\n", device, losses[k],
                    loss);
        clcnn_net_destroy(net);
    }
}

/* Activation gradients at a NaN output, as PyTorch's backward functions:
 * relu's threshold_backward and relu6's hardtanh_backward pass the gradient
 * (their tests y <= 0, y >= 6 are false for NaN), leaky's multiplies it by
 * the slope (y > 0 is false). */
static void check_activation_gradients(clcnn_context *ctx, const char *device) {
    const float y[3] = {NAN, 1.0f, -0.5f}, g[3] = {2.0f, 3.0f, 5.0f};
    const struct {
        activation_kind kind;
        float want[3];
    } cases[] = {
        {ACTIVATION_RELU, {2.0f, 3.0f, 0.0f}},
        {ACTIVATION_RELU6, {2.0f, 3.0f, 0.0f}},
        {ACTIVATION_LEAKY, {0.2f, 3.0f, 0.5f}},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        float got[3] = {-1.0f, -1.0f, -1.0f};
        if (context_is_opencl(ctx)) {
            cl_mem out = NULL, grad = NULL, result = NULL;
            if (CHECK_OK(ctx, buffer_create(ctx, sizeof(y), &out)) &&
                CHECK_OK(ctx, buffer_create(ctx, sizeof(g), &grad)) &&
                CHECK_OK(ctx, buffer_create(ctx, sizeof(got), &result)) &&
                CHECK_OK(ctx, buffer_write(ctx, out, 0, sizeof(y), y)) &&
                CHECK_OK(ctx, buffer_write(ctx, grad, 0, sizeof(g), g)) &&
                CHECK_OK(ctx, op_activation_backward(ctx, cases[k].kind, 0.1f, 3, (buf){NULL, out},
                                                     (buf){NULL, grad}, (buf){NULL, result})))
                CHECK_OK(ctx, buffer_read(ctx, result, 0, sizeof(got), got));
            buffer_release(&out);
            buffer_release(&grad);
            buffer_release(&result);
        } else {
            CHECK_OK(ctx,
                     op_activation_backward(ctx, cases[k].kind, 0.1f, 3, (buf){(float *)y, NULL},
                                            (buf){(float *)g, NULL}, (buf){got, NULL}));
        }
        for (int i = 0; i < 3; i++)
            if (!CHECK(fabsf(got[i] - cases[k].want[i]) <= 1e-6f))
                fprintf(stderr, "%s: activation %d gradient %d is %g, expected %g\n", device,
                        (int)cases[k].kind, i, got[i], cases[k].want[i]);
    }
}

int main(void) {
    clcnn_context *reference = clcnn_context_create();
    clcnn_context *opencl = test_opencl_context();
    if (!reference || !opencl)
        return 1;
    CHECK_OK(reference, clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, 0, 0));
    check_device(reference, "reference");
    check_device(opencl, "opencl");
    check_activation_gradients(reference, "reference");
    check_activation_gradients(opencl, "opencl");
    clcnn_context_destroy(reference);
    clcnn_context_destroy(opencl);
    return test_finish();
}
