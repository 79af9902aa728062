/* Every configuration the tuner may pick for the register-blocked
 * convolution (kernels/conv2d_direct.cl) must be correct: forward and
 * backward-data against the reference over random shapes for vector widths
 * 1-16, 1-4 vectors and 1-16 positions per work-item, and work-groups of 1
 * and 4 items (the backward-weights configurations are in
 * test_conv_backward.c). Errors against float64 sums, relative to each
 * value's magnitude (the sum of its terms' |values|) as in
 * test_conv_stride1: at most 1e-5. And every configuration computes the
 * same floats in all three operations, bit for bit, so that a wider device
 * or a tuning run never changes a result (the tutorial's figures are the
 * same on AVX2 and AVX-512 machines). */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last two take backward-weights taps by whole channels where the window divides them (3x3). */
static const direct_config configs[] = {
    {16, 1, 8, 4}, {16, 4, 4, 4},  {16, 2, 12, 1}, {16, 1, 16, 4}, {16, 3, 8, 1},
    {8, 4, 6, 4},  {8, 1, 1, 1},   {4, 2, 5, 4},   {2, 3, 2, 1},   {1, 1, 3, 4},
    {1, 4, 16, 1}, {16, 1, 18, 4}, {8, 2, 9, 1},
};
enum {
    CONFIG_COUNT = sizeof(configs) / sizeof(configs[0]),
    SHAPES_PER_CONFIG = 25,
    SAME_FLOATS_SHAPES = 12
};

/* kernel 0: a window of 1 to 5 x 1 to 5, else kernel x kernel. */
static void random_shape(test_rng *r, conv2d_params *p, int kernel) {
    for (;;) {
        p->batch = test_rand_int(r, 1, 3);
        p->in_channels = test_rand_int(r, 1, 40);
        p->out_channels = test_rand_int(r, 1, 40);
        p->in_height = test_rand_int(r, 1, 16);
        p->in_width = test_rand_int(r, 1, 16);
        p->kernel_h = kernel ? kernel : test_rand_int(r, 1, 5);
        p->kernel_w = kernel ? kernel : test_rand_int(r, 1, 5);
        p->stride_h = test_rand_int(r, 1, 3);
        p->stride_w = test_rand_int(r, 1, 3);
        p->pad_top = test_rand_int(r, 0, 2);
        p->pad_left = test_rand_int(r, 0, 2);
        const int pad_bottom = test_rand_int(r, 0, 2), pad_right = test_rand_int(r, 0, 2);
        const int padded_h = p->in_height + p->pad_top + pad_bottom;
        const int padded_w = p->in_width + p->pad_left + pad_right;
        if (p->kernel_h > padded_h || p->kernel_w > padded_w)
            continue;
        p->out_height = (padded_h - p->kernel_h) / p->stride_h + 1;
        p->out_width = (padded_w - p->kernel_w) / p->stride_w + 1;
        p->has_bias = test_rand_int(r, 0, 1);
        return;
    }
}

static float *random_values(test_rng *r, size_t count) {
    float *values = malloc(sizeof(float) * (count ? count : 1));
    for (size_t i = 0; values && i < count; i++)
        values[i] = test_rand_float(r, -1.0f, 1.0f);
    return values;
}

static cl_mem upload(clcnn_context *ctx, const float *values, size_t count) {
    cl_mem buffer = NULL;
    if (buffer_create(ctx, sizeof(float) * count, &buffer) != CLCNN_OK ||
        buffer_write(ctx, buffer, 0, sizeof(float) * count, values) != CLCNN_OK)
        buffer_release(&buffer);
    return buffer;
}

/* One shape, both operations, one configuration; returns the worst error. */
static double check_shape(clcnn_context *ctx, const direct_config *c, const conv2d_params *p,
                          test_rng *r) {
    const size_t in_count = (size_t)p->batch * p->in_channels * p->in_height * p->in_width;
    const size_t out_count = (size_t)p->batch * p->out_channels * p->out_height * p->out_width;
    const size_t weight_count =
        (size_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
    float *input = random_values(r, in_count), *weight = random_values(r, weight_count);
    float *bias = random_values(r, (size_t)p->out_channels);
    float *grad_output = random_values(r, out_count);
    double *expected_output = test_doubles((int64_t)out_count);
    double *output_magnitude = test_doubles((int64_t)out_count);
    double *expected_grad = test_doubles((int64_t)in_count);
    double *grad_magnitude = test_doubles((int64_t)in_count);
    float *actual_output = malloc(sizeof(float) * out_count);
    float *actual_grad = malloc(sizeof(float) * in_count);
    double worst = INFINITY;
    cl_mem input_buffer = upload(ctx, input, in_count);
    cl_mem weight_buffer = upload(ctx, weight, weight_count);
    cl_mem bias_buffer = upload(ctx, bias, (size_t)p->out_channels);
    cl_mem grad_output_buffer = upload(ctx, grad_output, out_count);
    /* NaN where a kernel writes nothing would show as an error. */
    for (size_t i = 0; i < out_count; i++)
        actual_output[i] = NAN;
    for (size_t i = 0; i < in_count; i++)
        actual_grad[i] = NAN;
    cl_mem output_buffer = upload(ctx, actual_output, out_count);
    cl_mem grad_input_buffer = upload(ctx, actual_grad, in_count);
    if (CHECK(input && weight && bias && grad_output && actual_output && actual_grad &&
              input_buffer && weight_buffer && bias_buffer && grad_output_buffer && output_buffer &&
              grad_input_buffer) &&
        CHECK_OK(ctx, conv2d_forward_direct(ctx, c, p, input_buffer, weight_buffer,
                                            p->has_bias ? bias_buffer : NULL, output_buffer)) &&
        CHECK_OK(ctx, conv2d_backward_data_direct(ctx, c, p, grad_output_buffer, weight_buffer,
                                                  grad_input_buffer)) &&
        CHECK_OK(ctx,
                 buffer_read(ctx, output_buffer, 0, sizeof(float) * out_count, actual_output)) &&
        CHECK_OK(ctx,
                 buffer_read(ctx, grad_input_buffer, 0, sizeof(float) * in_count, actual_grad))) {
        conv2d_forward64(p, input, weight, bias, expected_output, output_magnitude);
        conv2d_backward_data64(p, grad_output, weight, expected_grad, grad_magnitude);
        const double forward_error = worst_scaled_error(actual_output, expected_output,
                                                        output_magnitude, (int64_t)out_count);
        const double data_error =
            worst_scaled_error(actual_grad, expected_grad, grad_magnitude, (int64_t)in_count);
        worst = forward_error > data_error ? forward_error : data_error;
    }
    cl_mem *buffers[] = {&input_buffer,       &weight_buffer, &bias_buffer,
                         &grad_output_buffer, &output_buffer, &grad_input_buffer};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++)
        buffer_release(buffers[i]);
    free(input);
    free(weight);
    free(bias);
    free(grad_output);
    free(expected_output);
    free(output_magnitude);
    free(expected_grad);
    free(grad_magnitude);
    free(actual_output);
    free(actual_grad);
    return worst;
}

/* A strided forward whose positions lie along the output's rows
 * (-DROW_POSITIONS, which needs AVX-512's 32 vector registers: the device
 * is made to report 16-float vectors) reads its planar input itself,
 * padding and all, with no zero-padded copy: random shapes of 1-40
 * channels (below 64, planar) with padding 1-2 and an output width a
 * work-item's run divides, under every configuration, against float64 sums
 * at 1e-5, and no conv2d_pad_input launched. */
static void check_strided_unpadded(clcnn_context *ctx, test_rng *r) {
    const cl_uint device_width = ctx->preferred_vector_width;
    ctx->preferred_vector_width = 16;
    CHECK_OK(ctx, clcnn_profile_enable(ctx, 1));
    double worst = 0.0;
    int shapes = 0, padded = 0;
    for (int i = 0; i < CONFIG_COUNT; i++) {
        for (int s = 0; s < 8; s++) {
            conv2d_params p = {0};
            random_shape(r, &p, 3);
            p.stride_w = test_rand_int(r, 2, 3);
            p.pad_top = test_rand_int(r, 1, 2);
            p.pad_left = test_rand_int(r, 1, 2);
            /* A multiple of 4-7 positions, which a run of 4-7 (or 4-14
             * with one vector of channels) divides; the right padding 0-2. */
            p.out_width = test_rand_int(r, 4, 7) * test_rand_int(r, 1, 3);
            p.in_width = (p.out_width - 1) * p.stride_w + 3 - p.pad_left - test_rand_int(r, 0, 2);
            p.out_height = (p.in_height + 2 * p.pad_top - 3) / p.stride_h + 1;
            if (p.out_height < 1 || p.in_width < 1) {
                s--;
                continue;
            }
            const int before = test_kernel_launches(ctx, "conv2d_pad_input");
            const double error = check_shape(ctx, &configs[i], &p, r);
            padded += test_kernel_launches(ctx, "conv2d_pad_input") - before;
            shapes++;
            worst = error > worst ? error : worst;
            if (!CHECK(error <= 1e-5))
                printf("FAILED: unpadded strided forward, vw %d nv %d wpt %d: N=%d C=%d H=%d W=%d "
                       "K=%d stride %dx%d pad %d/%d out %dx%d: error %.3g\n",
                       configs[i].vw, configs[i].nv, configs[i].wpt_p, p.batch, p.in_channels,
                       p.in_height, p.in_width, p.out_channels, p.stride_h, p.stride_w, p.pad_top,
                       p.pad_left, p.out_height, p.out_width, error);
        }
    }
    CHECK(padded == 0);
    printf("strided forward from the input itself: %d shapes, %d padded copies, worst error "
           "%.3g\n",
           shapes, padded, worst);
    CHECK_OK(ctx, clcnn_profile_enable(ctx, 0));
    ctx->preferred_vector_width = device_width;
}

/* The three operations of a random shape under every configuration,
 * against the first's floats bit for bit: the sums run in an order that the
 * shape alone sets. Channels up to 140, so that some 3x3 shapes run the
 * forward in channel blocks. */
enum { RESULTS = 4 }; /* output, grad_input, grad_weight, grad_bias */
static void check_same_floats(clcnn_context *ctx, test_rng *r, int kernel) {
    conv2d_params p = {0};
    random_shape(r, &p, kernel);
    p.in_channels = test_rand_int(r, 1, 140);
    p.out_channels = test_rand_int(r, 1, 70);
    const size_t inputs = (size_t)p.batch * p.in_channels * p.in_height * p.in_width;
    const size_t outputs = (size_t)p.batch * p.out_channels * p.out_height * p.out_width;
    const size_t weights = (size_t)p.out_channels * p.in_channels * p.kernel_h * p.kernel_w;
    const size_t counts[RESULTS] = {outputs, inputs, weights, (size_t)p.out_channels};
    float *input = random_values(r, inputs), *weight = random_values(r, weights);
    float *bias = random_values(r, (size_t)p.out_channels);
    float *grad_output = random_values(r, outputs);
    cl_mem in[4] = {upload(ctx, input, inputs), upload(ctx, weight, weights),
                    upload(ctx, bias, (size_t)p.out_channels), upload(ctx, grad_output, outputs)};
    float *first[RESULTS], *other[RESULTS];
    cl_mem out[RESULTS];
    int made = in[0] && in[1] && in[2] && in[3];
    for (int k = 0; k < RESULTS; k++) {
        first[k] = random_values(r, counts[k]);
        other[k] = random_values(r, counts[k]);
        out[k] = upload(ctx, first[k], counts[k]);
        made = made && first[k] && other[k] && out[k];
    }
    int differing = 0;
    const int ready = CHECK(made);
    for (int i = 0; ready && i < CONFIG_COUNT; i++) {
        const direct_config *c = &configs[i];
        float **result = i == 0 ? first : other;
        const size_t scratch_floats = conv2d_backward_weights_direct_scratch_bytes(c, &p) / 4 + 1;
        float *zeros = calloc(scratch_floats, sizeof(float));
        cl_mem scratch = zeros ? upload(ctx, zeros, scratch_floats) : NULL;
        free(zeros);
        int ok = CHECK(scratch != NULL) &&
                 CHECK_OK(ctx, conv2d_forward_direct(ctx, c, &p, in[0], in[1],
                                                     p.has_bias ? in[2] : NULL, out[0])) &&
                 CHECK_OK(ctx, conv2d_backward_data_direct(ctx, c, &p, in[3], in[1], out[1])) &&
                 CHECK_OK(ctx, conv2d_backward_weights_direct(ctx, c, &p, in[0], in[3], out[2],
                                                              out[3], scratch));
        buffer_release(&scratch);
        for (int k = 0; ok && k < RESULTS; k++)
            ok = CHECK_OK(ctx, buffer_read(ctx, out[k], 0, sizeof(float) * counts[k], result[k]));
        if (!ok)
            break;
        for (int k = 0; i > 0 && k < RESULTS; k++)
            if (memcmp(first[k], other[k], sizeof(float) * counts[k])) {
                differing++;
                printf("FAILED: vw %d nv %d wpt %d: other floats (result %d) than vw %d nv %d wpt "
                       "%d for N=%d C=%d H=%d W=%d K=%d R=%d S=%d stride %dx%d\n",
                       c->vw, c->nv, c->wpt_p, k, configs[0].vw, configs[0].nv, configs[0].wpt_p,
                       p.batch, p.in_channels, p.in_height, p.in_width, p.out_channels, p.kernel_h,
                       p.kernel_w, p.stride_h, p.stride_w);
            }
    }
    CHECK(differing == 0);
    for (size_t k = 0; k < sizeof(in) / sizeof(in[0]); k++)
        buffer_release(&in[k]);
    for (int k = 0; k < RESULTS; k++) {
        buffer_release(&out[k]);
        free(first[k]);
        free(other[k]);
    }
    free(input);
    free(weight);
    free(bias);
    free(grad_output);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    test_rng r = {20261122};
    for (int i = 0; i < CONFIG_COUNT; i++) {
        const direct_config *c = &configs[i];
        double worst = 0.0;
        for (int s = 0; s < SHAPES_PER_CONFIG; s++) {
            conv2d_params p = {0};
            random_shape(&r, &p, 0);
            double error = check_shape(ctx, c, &p, &r);
            if (!CHECK(error <= 1e-5))
                printf("FAILED: vw %d nv %d wpt %d group %d: N=%d C=%d H=%d W=%d K=%d R=%d S=%d "
                       "stride %dx%d pad %d/%d out %dx%d bias %d: error %.3g\n",
                       c->vw, c->nv, c->wpt_p, c->group, p.batch, p.in_channels, p.in_height,
                       p.in_width, p.out_channels, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w,
                       p.pad_top, p.pad_left, p.out_height, p.out_width, p.has_bias, error);
            if (error > worst)
                worst = error;
        }
        printf("direct vw %2d nv %d wpt %2d group %d: %d shapes, forward and backward-data, "
               "worst error %.3g\n",
               c->vw, c->nv, c->wpt_p, c->group, SHAPES_PER_CONFIG, worst);
    }
    check_strided_unpadded(ctx, &r);
    /* Every other shape 3x3, whose taps the configurations of 9 and 18 take by whole channels. */
    for (int s = 0; s < SAME_FLOATS_SHAPES; s++)
        check_same_floats(ctx, &r, s % 2 ? 3 : 0);
    printf("%d shapes, half of them 3x3: every configuration the same floats as the first "
           "(forward, backward-data, backward-weights)\n",
           SAME_FLOATS_SHAPES);
    clcnn_context_destroy(ctx);
    return test_finish();
}
