/* Grouped and dilated convolutions (PyTorch's groups= and dilation=): every
 * OpenCL implementation against the reference, and the reference against
 * finite differences.
 *
 * 1. Random shapes with groups 1, 2, 3, 4, C (depthwise) and 2C (depthwise
 *    with a channel multiplier of 2), dilation 1 to 3 drawn per axis,
 *    strides 1 to 3, and padding none, symmetric, asymmetric (the last rows
 *    and columns may be reached by no window) or 'same' (from the window's
 *    extent D*(R-1) + 1, as the conv layer computes it). Each shape runs
 *    forward, backward-data and backward-weights (with the bias gradient)
 *    through:
 *    - the local-memory tiled kernels (kernels/conv2d.cl, -DGROUPED /
 *      -DDILATED variants) under the device's tile configuration and, on a
 *      subset, another one;
 *    - the register-blocked kernels (kernels/conv2d_direct.cl, the same
 *      variants) under explicit configurations in turn, covering vector
 *      widths 1 to 16, 1 to 4 vectors and 1 to 16 positions (or taps) per
 *      work-item and work-groups of 1 to 4;
 *    - the depthwise kernels (kernels/conv2d_depthwise.cl), which are
 *      correct for any number of channels per group although the library
 *      only picks them for one, as each family builds them (one result per
 *      work-item for the tiled family, 8 or 16 results on each of 8 rows for
 *      the register-blocked one: a third as many shapes run again as a
 *      device of the other vector width);
 *    - the public entry points with each family selected (as CLCNN_CONV
 *      would), i.e. what a layer runs, with the configurations the library
 *      picks for the shape.
 *    The register-blocked kernels and the entry points also run each
 *    forward with a fused relu (p.relu), which must give relu(output) bit
 *    for bit. Then depthwise shapes up to 80 wide through the register-blocked
 *    family's depthwise kernels and entry points, whose work-items read
 *    vectors inside a row and scalars at its edges.
 * 2. Finite differences: a float64 forward written in this file, loss =
 *    sum(forward(x) * G); central differences with respect to every input
 *    element, weight and bias against the reference gradients (and the
 *    public entry points on both families), |fd - g| / max(|fd|, 1e-2) <=
 *    1e-4, as tests/test_conv_backward.c.
 *
 * Tolerances as tests/test_ops_forward.c and tests/test_conv_backward.c:
 * max_relative_error(device, reference, n, 1.0) <= 1e-5; the shapes keep
 * every forward and backward-data reduction (C/groups*R*S and
 * K/groups*R*S taps) at most 300 long, and a weight gradient summed over
 * more than 512 output positions is held to 1e-5 * sqrt(positions / 512)
 * (see test_conv_backward.c). Output buffers are filled with NaN first, so
 * a value a kernel fails to write shows. Shapes come from a fixed seed and
 * are printed when they fail.
 */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double tolerance = 1e-5;
static const double finite_difference_tolerance = 1e-4;

enum { RANDOM_SHAPES = 120, WIDE_DEPTHWISE_SHAPES = 80, FINITE_DIFFERENCE_SHAPES = 24 };

/* The register-blocked configurations the shapes take in turn: every vector
 * width, vector count and number of positions per work-item the tuner
 * (host/graph/tuner.c) chooses from, and odd ones. */
static const direct_config direct_configs[] = {
    {16, 1, 8, 4}, {8, 2, 4, 4}, {4, 3, 5, 1},  {1, 1, 3, 4},  {16, 4, 4, 4},
    {2, 2, 16, 2}, {8, 1, 2, 4}, {4, 1, 12, 4}, {16, 2, 1, 1}, {4, 4, 6, 4},
};
enum { DIRECT_CONFIG_COUNT = sizeof(direct_configs) / sizeof(direct_configs[0]) };

/* A second tile configuration, on every fourth shape. */
static const tile_config extra_tiles = {24, 12, 5, 3, 2};

/* ---- buffers ----------------------------------------------------------------------------------
 */

static clcnn_status upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    const size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(float);
    clcnn_status status = buffer_create(ctx, bytes, out);
    if (status != CLCNN_OK || count <= 0)
        return status;
    return buffer_write(ctx, *out, 0, (size_t)count * sizeof(float), values);
}

/* A device buffer of count floats, all NaN. */
static clcnn_status upload_nan(clcnn_context *ctx, int64_t count, cl_mem *out) {
    float *values = test_floats(count);
    for (int64_t i = 0; i < count; i++)
        values[i] = NAN;
    clcnn_status status = upload(ctx, values, count, out);
    free(values);
    return status;
}

static clcnn_status download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    return buffer_read(ctx, buffer, 0, (size_t)count * sizeof(float), values);
}

/* ---- shapes -----------------------------------------------------------------------------------
 */

typedef struct group_case {
    conv2d_params p;
    int pad_bottom, pad_right;
    int same; /* the padding is 'same' */
} group_case;

static int groups_of(const conv2d_params *p) {
    return conv2d_groups(p);
}

static int64_t input_count(const conv2d_params *p) {
    return (int64_t)p->batch * p->in_channels * p->in_height * p->in_width;
}

static int64_t output_count(const conv2d_params *p) {
    return (int64_t)p->batch * p->out_channels * p->out_height * p->out_width;
}

static int64_t weight_count(const conv2d_params *p) {
    return (int64_t)p->out_channels * (p->in_channels / groups_of(p)) * p->kernel_h * p->kernel_w;
}

static int reduction_steps(const conv2d_params *p) {
    return p->batch * p->out_height * p->out_width;
}

static double weights_bound(const conv2d_params *p) {
    const int steps = reduction_steps(p);
    return steps <= 512 ? tolerance : tolerance * sqrt((double)steps / 512.0);
}

static void describe_case(const group_case *c, char *buf, size_t size) {
    const conv2d_params *p = &c->p;
    snprintf(buf, size,
             "N=%d C=%d H=%d W=%d K=%d R=%d S=%d groups=%d dilation=%dx%d stride=%dx%d "
             "pad top/left/bottom/right=%d/%d/%d/%d%s out=%dx%d bias=%d",
             p->batch, p->in_channels, p->in_height, p->in_width, p->out_channels, p->kernel_h,
             p->kernel_w, groups_of(p), conv2d_dilation_h(p), conv2d_dilation_w(p), p->stride_h,
             p->stride_w, p->pad_top, p->pad_left, c->pad_bottom, c->pad_right,
             c->same ? " (same)" : "", p->out_height, p->out_width, p->has_bias);
}

/* 'same' along one axis as host/layers/conv.c computes it: ceil(input / stride)
 * outputs, the total padding split with the odd one after. */
static void same_padding(int input, int effective, int stride, int *before, int *after) {
    const int outputs = (input + stride - 1) / stride;
    int total = (outputs - 1) * stride + effective - input;
    if (total < 0)
        total = 0;
    *before = total / 2;
    *after = total - total / 2;
}

/* One axis: size, stride, dilation, padding (style 0 none, 1 symmetric, 2
 * asymmetric, 3 same) and the output size; 0 outputs if the window does not fit. */
static int draw_axis(test_rng *rng, int max_size, int kernel, int style, int *size, int *stride,
                     int *dilation, int *before, int *after) {
    *size = test_rand_int(rng, 1, max_size);
    *stride = test_rand_int(rng, 1, 3);
    *dilation = test_rand_int(rng, 1, 3);
    const int effective = *dilation * (kernel - 1) + 1;
    if (style == 0) {
        *before = *after = 0;
    } else if (style == 1) {
        *before = *after = test_rand_int(rng, 0, 3);
    } else if (style == 2) {
        *before = test_rand_int(rng, 0, 4);
        *after = test_rand_int(rng, 0, 4);
    } else {
        same_padding(*size, effective, *stride, before, after);
    }
    const int padded = *size + *before + *after;
    return padded < effective ? 0 : (padded - effective) / *stride + 1;
}

/* Channels per group and groups by style: groups 1, 2, 3, 4 with up to
 * `most` channels per group, then depthwise (groups = C, K = C) and
 * depthwise with a multiplier of 2 (K = 2C), C up to 2 * most. */
static void draw_channels(test_rng *rng, int style, int most, conv2d_params *p) {
    static const int group_counts[] = {1, 2, 3, 4};
    if (style < 4) {
        p->groups = group_counts[style];
        p->in_channels = p->groups * test_rand_int(rng, 1, most);
        p->out_channels = p->groups * test_rand_int(rng, 1, most);
    } else {
        p->in_channels = test_rand_int(rng, 1, 2 * most);
        p->groups = p->in_channels;
        p->out_channels = p->in_channels * (style == 4 ? 1 : 2);
    }
}

/* Shape `index` (its groups style is index % 6): heights up to max_size,
 * widths up to max_width, batch up to max_batch, up to `most` channels per
 * group. With most <= 12 and R, S <= 5 the reductions stay within 300 taps. */
static group_case draw_case(test_rng *rng, int index, int max_size, int max_width, int max_batch,
                            int most) {
    group_case c;
    for (;;) {
        memset(&c, 0, sizeof(c));
        conv2d_params *p = &c.p;
        p->batch = test_rand_int(rng, 1, max_batch);
        draw_channels(rng, index % 6, most, p);
        p->kernel_h = test_rand_int(rng, 1, 5);
        p->kernel_w = test_rand_int(rng, 0, 1) ? p->kernel_h : test_rand_int(rng, 1, 5);
        const int style = test_rand_int(rng, 0, 3);
        c.same = style == 3;
        p->out_height = draw_axis(rng, max_size, p->kernel_h, style, &p->in_height, &p->stride_h,
                                  &p->dilation_h, &p->pad_top, &c.pad_bottom);
        p->out_width = draw_axis(rng, max_width, p->kernel_w, style, &p->in_width, &p->stride_w,
                                 &p->dilation_w, &p->pad_left, &c.pad_right);
        p->has_bias = test_rand_int(rng, 0, 3) != 0;
        const double work =
            (double)output_count(p) * (p->in_channels / p->groups) * p->kernel_h * p->kernel_w;
        if (p->out_height > 0 && p->out_width > 0 && work <= 2e6)
            return c;
    }
}

/* ---- one implementation against the reference ---------------------------------------------------
 */

/* The implementations a shape runs through. */
typedef enum implementation {
    TILED,           /* conv2d_*_tiled under a tile configuration */
    DIRECT,          /* conv2d_*_direct under a register-blocked configuration */
    DEPTHWISE_TILED, /* conv2d_*_depthwise as the tiled family builds them */
    DEPTHWISE,       /* and as the register-blocked family does */
    ENTRY_TILED,     /* conv2d_forward etc. with the tiled family selected */
    ENTRY_DIRECT,    /* and with the register-blocked one */
    IMPLEMENTATIONS, /* count */
} implementation;

static const char *const implementation_names[IMPLEMENTATIONS] = {
    "tiled kernels",
    "register-blocked kernels",
    "depthwise kernels, tiled family",
    "depthwise kernels, register-blocked family",
    "entry points, tiled family",
    "entry points, register-blocked family"};

typedef struct op_result {
    int shapes, failures;
    double worst;
} op_result;

/* Per implementation: forward, backward-data, backward-weights+bias. */
static op_result results[IMPLEMENTATIONS][3];

static int record(op_result *r, double error, double bound) {
    r->shapes++;
    if (isnan(error))
        error = INFINITY;
    if (error > r->worst)
        r->worst = error;
    const int ok = error <= bound;
    if (!ok)
        r->failures++;
    return ok;
}

/* Forwards run again with a fused relu (fused_relu_matches), and how many
 * of them differed from the relu applied after. */
static int relu_runs, relu_failures;

/* The family the context runs as it resolved it, restored after each run. */
static int device_direct;
static tile_config device_tiles;

/* What one shape's data and reference results are. */
typedef struct case_data {
    float *input, *weight, *bias, *grad_output;
    float *output_ref, *grad_input_ref, *grad_weight_ref, *grad_bias_ref;
} case_data;

static case_data make_case_data(const conv2d_params *p, uint64_t seed) {
    test_rng rng = {seed};
    case_data d;
    d.input = test_floats(input_count(p));
    d.weight = test_floats(weight_count(p));
    d.bias = test_floats(p->out_channels);
    d.grad_output = test_floats(output_count(p));
    test_fill_signed(&rng, d.input, input_count(p));
    test_fill_signed(&rng, d.weight, weight_count(p));
    test_fill_signed(&rng, d.bias, p->out_channels);
    test_fill_signed(&rng, d.grad_output, output_count(p));
    d.output_ref = test_floats(output_count(p));
    d.grad_input_ref = test_floats(input_count(p));
    d.grad_weight_ref = test_floats(weight_count(p));
    d.grad_bias_ref = test_floats(p->out_channels);
    conv2d_forward_ref(p, d.input, d.weight, d.bias, d.output_ref);
    conv2d_backward_data_ref(p, d.grad_output, d.weight, d.grad_input_ref);
    conv2d_backward_weights_ref(p, d.input, d.grad_output, d.grad_weight_ref, d.grad_bias_ref);
    return d;
}

static void free_case_data(case_data *d) {
    free(d->input);
    free(d->weight);
    free(d->bias);
    free(d->grad_output);
    free(d->output_ref);
    free(d->grad_input_ref);
    free(d->grad_weight_ref);
    free(d->grad_bias_ref);
}

/* The scratch bytes backward-weights needs on implementation `which`. */
static size_t scratch_bytes_for(clcnn_context *ctx, implementation which,
                                const direct_config *config, const conv2d_params *p) {
    if (which == DIRECT)
        return conv2d_backward_weights_direct_scratch_bytes(config, p);
    if (which == DEPTHWISE || which == DEPTHWISE_TILED)
        return (size_t)conv2d_backward_weights_slices(p) * (size_t)weight_count(p) * sizeof(float);
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    return conv2d_backward_weights_scratch_bytes(&plan, p);
}

static clcnn_status forward_on(clcnn_context *ctx, implementation which,
                               const direct_config *config, const tile_config *tiles,
                               const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                               cl_mem output) {
    switch (which) {
    case TILED:
        return conv2d_forward_tiled(ctx, tiles, p, input, weight, bias, output);
    case DIRECT:
        return conv2d_forward_direct(ctx, config, p, input, weight, bias, output);
    case DEPTHWISE_TILED:
    case DEPTHWISE:
        return conv2d_forward_depthwise(ctx, p, input, weight, bias, output);
    default:
        return conv2d_forward(ctx, p, input, weight, bias, output);
    }
}

/* A relu fused into the forward (p->relu, which the register-blocked
 * kernels apply as they store and the entry points after the others) gives
 * bit for bit relu(output), output being the same forward's without it. */
static int fused_relu_matches(clcnn_context *ctx, implementation which, const direct_config *config,
                              const group_case *c, const case_data *d, const float *output) {
    conv2d_params p = c->p;
    p.relu = 1;
    const int64_t outputs = output_count(&p);
    float *fused = test_floats(outputs);
    if (which == ENTRY_TILED)
        ctx->config.direct = 0;
    else if (which == ENTRY_DIRECT)
        ctx->config.direct = 1;
    cl_mem input_buf = NULL, weight_buf = NULL, bias_buf = NULL, output_buf = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, d->input, input_count(&p), &input_buf)) &&
             CHECK_OK(ctx, upload(ctx, d->weight, weight_count(&p), &weight_buf)) &&
             CHECK_OK(ctx, upload(ctx, d->bias, p.out_channels, &bias_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, outputs, &output_buf)) &&
             CHECK_OK(ctx, forward_on(ctx, which, config, &device_tiles, &p, input_buf, weight_buf,
                                      bias_buf, output_buf)) &&
             CHECK_OK(ctx, download(ctx, output_buf, fused, outputs));
    for (int64_t i = 0; ok && i < outputs; i++) {
        const float expected = output[i] <= 0.0f ? 0.0f : output[i];
        ok = memcmp(&expected, &fused[i], sizeof(float)) == 0;
    }
    buffer_release(&input_buf);
    buffer_release(&weight_buf);
    buffer_release(&bias_buf);
    buffer_release(&output_buf);
    ctx->config.direct = device_direct;
    free(fused);
    return ok;
}

/* Runs the three operations of one shape on one implementation into
 * output, grad_input, grad_weight and grad_bias (host copies). */
static int run_implementation(clcnn_context *ctx, implementation which, const direct_config *config,
                              const tile_config *tiles, const conv2d_params *p, const case_data *d,
                              float *output, float *grad_input, float *grad_weight,
                              float *grad_bias) {
    if (which == ENTRY_TILED || which == DEPTHWISE_TILED)
        ctx->config.direct = 0;
    else if (which == ENTRY_DIRECT || which == DEPTHWISE)
        ctx->config.direct = 1;
    ctx->config.tiles = device_tiles;
    const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
    cl_mem input_buf = NULL, weight_buf = NULL, bias_buf = NULL, grad_output_buf = NULL;
    cl_mem output_buf = NULL, grad_input_buf = NULL, grad_weight_buf = NULL;
    cl_mem grad_bias_buf = NULL, scratch = NULL;
    const size_t scratch_bytes = scratch_bytes_for(ctx, which, config, p);
    int ok = CHECK_OK(ctx, upload(ctx, d->input, inputs, &input_buf)) &&
             CHECK_OK(ctx, upload(ctx, d->weight, weights, &weight_buf)) &&
             CHECK_OK(ctx, upload(ctx, d->bias, p->out_channels, &bias_buf)) &&
             CHECK_OK(ctx, upload(ctx, d->grad_output, outputs, &grad_output_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, outputs, &output_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, inputs, &grad_input_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, weights, &grad_weight_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, p->out_channels, &grad_bias_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, (int64_t)(scratch_bytes / sizeof(float)), &scratch));
    if (ok) {
        clcnn_status forward =
            forward_on(ctx, which, config, tiles, p, input_buf, weight_buf, bias_buf, output_buf);
        clcnn_status data, weights_status;
        switch (which) {
        case TILED:
            data = conv2d_backward_data_tiled(ctx, tiles, p, grad_output_buf, weight_buf,
                                              grad_input_buf);
            weights_status = conv2d_backward_weights_tiled(
                ctx, tiles, p, input_buf, grad_output_buf, grad_weight_buf, grad_bias_buf, scratch);
            break;
        case DIRECT:
            data = conv2d_backward_data_direct(ctx, config, p, grad_output_buf, weight_buf,
                                               grad_input_buf);
            weights_status =
                conv2d_backward_weights_direct(ctx, config, p, input_buf, grad_output_buf,
                                               grad_weight_buf, grad_bias_buf, scratch);
            break;
        case DEPTHWISE_TILED:
        case DEPTHWISE:
            data =
                conv2d_backward_data_depthwise(ctx, p, grad_output_buf, weight_buf, grad_input_buf);
            weights_status = conv2d_backward_weights_depthwise(
                ctx, p, input_buf, grad_output_buf, grad_weight_buf, grad_bias_buf, scratch);
            break;
        default:
            data = conv2d_backward_data(ctx, p, grad_output_buf, weight_buf, grad_input_buf);
            weights_status = conv2d_backward_weights(ctx, p, input_buf, grad_output_buf,
                                                     grad_weight_buf, grad_bias_buf, scratch);
            break;
        }
        ok = CHECK_OK(ctx, forward) && CHECK_OK(ctx, data) && CHECK_OK(ctx, weights_status) &&
             CHECK_OK(ctx, download(ctx, output_buf, output, outputs)) &&
             CHECK_OK(ctx, download(ctx, grad_input_buf, grad_input, inputs)) &&
             CHECK_OK(ctx, download(ctx, grad_weight_buf, grad_weight, weights)) &&
             CHECK_OK(ctx, download(ctx, grad_bias_buf, grad_bias, p->out_channels));
    }
    cl_mem *buffers[] = {&input_buf,       &weight_buf,    &bias_buf,
                         &grad_output_buf, &output_buf,    &grad_input_buf,
                         &grad_weight_buf, &grad_bias_buf, &scratch};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++)
        buffer_release(buffers[i]);
    ctx->config.direct = device_direct;
    return ok;
}

/* One shape on one implementation against the reference; returns 1 if within bounds. */
static int check_implementation(clcnn_context *ctx, implementation which,
                                const direct_config *config, const tile_config *tiles,
                                const group_case *c, const case_data *d) {
    const conv2d_params *p = &c->p;
    float *output = test_floats(output_count(p));
    float *grad_input = test_floats(input_count(p));
    float *grad_weight = test_floats(weight_count(p));
    float *grad_bias = test_floats(p->out_channels);
    int ok = run_implementation(ctx, which, config, tiles, p, d, output, grad_input, grad_weight,
                                grad_bias);
    if (ok) {
        const double forward_error =
            max_relative_error(output, d->output_ref, output_count(p), 1.0);
        const double data_error =
            max_relative_error(grad_input, d->grad_input_ref, input_count(p), 1.0);
        double weights_error =
            max_relative_error(grad_weight, d->grad_weight_ref, weight_count(p), 1.0);
        if (p->has_bias) {
            const double bias_error =
                max_relative_error(grad_bias, d->grad_bias_ref, p->out_channels, 1.0);
            if (bias_error > weights_error || isnan(bias_error))
                weights_error = bias_error;
        }
        int forward_ok = record(&results[which][0], forward_error, tolerance);
        if (which == DIRECT || which == ENTRY_TILED || which == ENTRY_DIRECT) {
            relu_runs++;
            if (!fused_relu_matches(ctx, which, config, c, d, output)) {
                relu_failures++;
                forward_ok = 0;
            }
        }
        const int data_ok = record(&results[which][1], data_error, tolerance);
        const int weights_ok = record(&results[which][2], weights_error, weights_bound(p));
        ok = CHECK(forward_ok) && CHECK(data_ok) && CHECK(weights_ok);
        if (!ok) {
            char shape[300], label[80] = "";
            describe_case(c, shape, sizeof(shape));
            if (which == DIRECT)
                snprintf(label, sizeof(label), " vw %d nv %d wpt %d group %d", config->vw,
                         config->nv, config->wpt_p, config->group);
            if (which == TILED)
                snprintf(label, sizeof(label), " tiles %d,%d,%d,%d,%d", tiles->tile_m,
                         tiles->tile_n, tiles->tile_k, tiles->wpt_m, tiles->wpt_n);
            printf("FAILED: %s%s: %s: forward %.3g, backward data %.3g, weights/bias %.3g "
                   "(bound %.3g)\n",
                   implementation_names[which], label, shape, forward_error, data_error,
                   weights_error, weights_bound(p));
        }
    }
    free(output);
    free(grad_input);
    free(grad_weight);
    free(grad_bias);
    return ok;
}

static void run_random_shapes(clcnn_context *ctx, int shapes, uint64_t seed) {
    test_rng rng = {seed};
    int depthwise_picked = 0, grouped = 0, dilated = 0;
    for (int index = 0; index < shapes; index++) {
        const group_case c = draw_case(&rng, index, 20, 20, 3, 12);
        const conv2d_params *p = &c.p;
        depthwise_picked += conv2d_runs_depthwise(p);
        grouped += groups_of(p) > 1;
        dilated += conv2d_dilation_h(p) > 1 || conv2d_dilation_w(p) > 1;
        case_data d = make_case_data(p, seed * 1000 + (uint64_t)index);

        check_implementation(ctx, TILED, NULL, &device_tiles, &c, &d);
        if (index % 4 == 0)
            check_implementation(ctx, TILED, NULL, &extra_tiles, &c, &d);
        /* The configurations in turn, each on every style of groups (the
         * ones the library picks run through the entry points below). */
        check_implementation(ctx, DIRECT, &direct_configs[index / 6 % DIRECT_CONFIG_COUNT], NULL,
                             &c, &d);
        check_implementation(ctx, DEPTHWISE_TILED, NULL, NULL, &c, &d);
        check_implementation(ctx, DEPTHWISE, NULL, NULL, &c, &d);
        check_implementation(ctx, ENTRY_TILED, NULL, NULL, &c, &d);
        check_implementation(ctx, ENTRY_DIRECT, NULL, NULL, &c, &d);
        free_case_data(&d);
    }
    printf("%d random shapes: %d grouped, %d dilated, %d on the depthwise kernels by default\n",
           shapes, grouped, dilated, depthwise_picked);
    if (shapes >= 6) /* every style of groups drawn */
        CHECK(depthwise_picked > 0 && depthwise_picked < shapes);

    /* Depthwise shapes with rows up to 80 wide, where the register-blocked
     * family's work-items read whole vectors (WPT_W results) inside the row
     * and the scalar walk is left to the rows' edges. */
    int wide = 0;
    const int wide_shapes = test_scaled_count(WIDE_DEPTHWISE_SHAPES);
    for (int index = 0; index < wide_shapes; index++) {
        const group_case c = draw_case(&rng, 4 + index % 2, 6, 80, 3, 12);
        wide += c.p.in_width >= 48;
        case_data d = make_case_data(&c.p, seed * 1000 + (uint64_t)(shapes + index));
        check_implementation(ctx, DEPTHWISE, NULL, NULL, &c, &d);
        check_implementation(ctx, ENTRY_DIRECT, NULL, NULL, &c, &d);
        free_case_data(&d);
    }
    printf("%d depthwise shapes up to 80 wide, %d at least 48 wide\n", wide_shapes, wide);

    /* Depthwise backward-weights over several slices that cut rows apart
     * (3 images of 31 x 37 outputs, 3441 positions, in 6 slices of 574),
     * 3x3, 1x3 and 2x2 filters, and a channel multiplier of 2: the CPU
     * family's kernel per filter channel picks its rows' parts up there. */
    static const int filters[3][2] = {{3, 3}, {1, 3}, {2, 2}};
    for (int f = 0; f < 3; f++) {
        group_case c;
        memset(&c, 0, sizeof(c));
        conv2d_params *p = &c.p;
        p->batch = 3;
        p->in_channels = 4;
        p->out_channels = f == 2 ? 8 : 4;
        p->groups = 4;
        p->kernel_h = filters[f][0];
        p->kernel_w = filters[f][1];
        p->stride_h = p->stride_w = 1;
        p->dilation_h = p->dilation_w = 1;
        p->pad_top = c.pad_bottom = p->kernel_h / 2;
        p->pad_left = c.pad_right = p->kernel_w / 2;
        p->in_height = 31 - 1 + p->kernel_h - 2 * p->pad_top;
        p->in_width = 37 - 1 + p->kernel_w - 2 * p->pad_left;
        p->out_height = 31;
        p->out_width = 37;
        p->has_bias = 1;
        CHECK(conv2d_backward_weights_slices(p) > 1);
        case_data d = make_case_data(p, seed * 1000 + 900 + (uint64_t)f);
        check_implementation(ctx, DEPTHWISE, NULL, NULL, &c, &d);
        check_implementation(ctx, ENTRY_DIRECT, NULL, NULL, &c, &d);
        free_case_data(&d);
    }
    printf("%d forwards with a fused relu, %d differing from the relu applied after\n", relu_runs,
           relu_failures);
    CHECK(relu_runs > 0 && relu_failures == 0);
    CHECK(wide >= wide_shapes / 4);
    static const char *const ops[3] = {"forward", "backward data", "backward weights+bias"};
    for (int i = 0; i < IMPLEMENTATIONS; i++)
        for (int op = 0; op < 3; op++)
            printf("%-42s %-22s %4d runs, worst error %.3g%s\n", implementation_names[i], ops[op],
                   results[i][op].shapes, results[i][op].worst,
                   results[i][op].failures ? "  FAILED" : "");
}

/* ---- finite differences ------------------------------------------------------------------------
 */

/* The forward convolution in float64, written apart from host/ref: sum over
 * every output of G * (bias + the window's products). */
static double convolution_loss(const conv2d_params *p, const double *input, const double *weight,
                               const double *bias, const double *grad_output) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    const int G = groups_of(p), Cg = C / G, Kg = K / G;
    double loss = 0.0;
    for (int n = 0; n < p->batch; n++)
        for (int g = 0; g < G; g++)
            for (int kg = 0; kg < Kg; kg++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const int k = g * Kg + kg;
                        double y = p->has_bias ? bias[k] : 0.0;
                        for (int cg = 0; cg < Cg; cg++)
                            for (int r = 0; r < R; r++)
                                for (int s = 0; s < S; s++) {
                                    const int ih =
                                        oh * p->stride_h + r * conv2d_dilation_h(p) - p->pad_top;
                                    const int iw =
                                        ow * p->stride_w + s * conv2d_dilation_w(p) - p->pad_left;
                                    if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                        y += weight[((k * Cg + cg) * R + r) * S + s] *
                                             input[((n * C + g * Cg + cg) * H + ih) * W + iw];
                                }
                        loss += y * grad_output[((n * K + k) * OH + oh) * OW + ow];
                    }
    return loss;
}

static void finite_differences(const conv2d_params *p, double *input, double *weight, double *bias,
                               const double *grad_output, double *values, int64_t count,
                               double *gradient) {
    const double h = 1e-6;
    for (int64_t i = 0; i < count; i++) {
        const double saved = values[i];
        values[i] = saved + h;
        const double above = convolution_loss(p, input, weight, bias, grad_output);
        values[i] = saved - h;
        const double below = convolution_loss(p, input, weight, bias, grad_output);
        values[i] = saved;
        gradient[i] = (above - below) / (2.0 * h);
    }
}

/* Worst finite-difference error of a set of gradients (the bias's only with a bias). */
static double gradient_error(const conv2d_params *p, const double *fd_input,
                             const double *fd_weight, const double *fd_bias,
                             const float *grad_input, const float *grad_weight,
                             const float *grad_bias) {
    double worst = fmax(test_fd_error(fd_input, grad_input, input_count(p), 1e-2),
                        test_fd_error(fd_weight, grad_weight, weight_count(p), 1e-2));
    if (p->has_bias)
        worst = fmax(worst, test_fd_error(fd_bias, grad_bias, p->out_channels, 1e-2));
    return worst;
}

static void run_finite_differences(clcnn_context *ctx, int shapes, uint64_t seed) {
    test_rng rng = {seed};
    op_result reference = {0}, entry[2] = {{0}, {0}};
    for (int index = 0; index < shapes; index++) {
        /* Few channels: the differences evaluate the whole loss twice per value. */
        const group_case c = draw_case(&rng, index, 9, 9, 2, 2);
        const conv2d_params *p = &c.p;
        case_data d = make_case_data(p, seed * 1000 + (uint64_t)index);
        const int64_t inputs = input_count(p), weights = weight_count(p), K = p->out_channels;
        double *input64 = test_to_doubles(d.input, inputs),
               *weight64 = test_to_doubles(d.weight, weights);
        double *bias64 = test_to_doubles(d.bias, K);
        double *grad_output64 = test_to_doubles(d.grad_output, output_count(p));
        double *fd_input = test_doubles(inputs), *fd_weight = test_doubles(weights);
        double *fd_bias = test_doubles(K);
        finite_differences(p, input64, weight64, bias64, grad_output64, input64, inputs, fd_input);
        finite_differences(p, input64, weight64, bias64, grad_output64, weight64, weights,
                           fd_weight);
        if (p->has_bias)
            finite_differences(p, input64, weight64, bias64, grad_output64, bias64, K, fd_bias);

        const double reference_error = gradient_error(
            p, fd_input, fd_weight, fd_bias, d.grad_input_ref, d.grad_weight_ref, d.grad_bias_ref);
        int ok = record(&reference, reference_error, finite_difference_tolerance);
        double entry_error[2] = {0.0, 0.0};
        for (int family = 0; family < 2; family++) {
            float *output = test_floats(output_count(p));
            float *grad_input = test_floats(inputs), *grad_weight = test_floats(weights);
            float *grad_bias = test_floats(K);
            entry_error[family] = INFINITY;
            if (run_implementation(ctx, family ? ENTRY_DIRECT : ENTRY_TILED, NULL, NULL, p, &d,
                                   output, grad_input, grad_weight, grad_bias))
                entry_error[family] = gradient_error(p, fd_input, fd_weight, fd_bias, grad_input,
                                                     grad_weight, grad_bias);
            ok = record(&entry[family], entry_error[family], finite_difference_tolerance) && ok;
            free(output);
            free(grad_input);
            free(grad_weight);
            free(grad_bias);
        }
        if (!CHECK(ok)) {
            char shape[300];
            describe_case(&c, shape, sizeof(shape));
            printf("FAILED: finite differences, %s: reference %.3g, tiled entry points %.3g, "
                   "register-blocked entry points %.3g\n",
                   shape, reference_error, entry_error[0], entry_error[1]);
        }
        free(input64);
        free(weight64);
        free(bias64);
        free(grad_output64);
        free(fd_input);
        free(fd_weight);
        free(fd_bias);
        free_case_data(&d);
    }
    printf("finite differences vs reference backward            %4d shapes, worst error %.3g\n",
           reference.shapes, reference.worst);
    printf("finite differences vs entry points, tiled           %4d shapes, worst error %.3g\n",
           entry[0].shapes, entry[0].worst);
    printf("finite differences vs entry points, register-blocked %3d shapes, worst error %.3g\n",
           entry[1].shapes, entry[1].worst);
}

int main(void) {
    /* The test picks families and tiles itself. */
    unsetenv("CLCNN_TILES");
    unsetenv("CLCNN_CONV");
    unsetenv("CLCNN_DIRECT");
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    device_direct = ctx->config.direct;
    device_tiles = ctx->config.tiles;
    printf("device: %s\n", clcnn_device_name(ctx));
    const double start = clock_seconds();
    CHECK(tile_config_valid(ctx, &extra_tiles));
    run_random_shapes(ctx, test_scaled_count(RANDOM_SHAPES), 7);
    /* The register-blocked family's depthwise kernels take 16 results a
     * step where the device prefers 16-float vectors (and rows are longer
     * than 8), 8 elsewhere: the other width's too, on a third as many. */
    const cl_uint width = ctx->preferred_vector_width;
    ctx->preferred_vector_width = width >= 16 ? 8 : 16;
    printf("as a device that prefers %u-float vectors:\n", ctx->preferred_vector_width);
    run_random_shapes(ctx, test_scaled_count(RANDOM_SHAPES) / 3, 8);
    ctx->preferred_vector_width = width;
    run_finite_differences(ctx, test_scaled_count(FINITE_DIFFERENCE_SHAPES), 17);
    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(ctx);
    return test_finish();
}
