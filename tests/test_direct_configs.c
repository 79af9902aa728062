/* Every configuration the tuner may pick for the register-blocked
 * convolution (kernels/conv2d_direct.cl) must be correct: forward and
 * backward-data against the reference over random shapes for vector widths
 * 1-16, 1-4 vectors and 1-16 positions per work-item, and work-groups of 1
 * and 4 items (the backward-weights configurations are in
 * test_conv_backward.c). Tolerance as test_ops_forward's: |a-b| / max(|b|, 1)
 * <= 1e-5. */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const direct_config configs[] = {
    {16, 1, 8, 4}, {16, 4, 4, 4}, {16, 2, 12, 1}, {16, 1, 16, 4}, {16, 3, 8, 1}, {8, 4, 6, 4},
    {8, 1, 1, 1},  {4, 2, 5, 4},  {2, 3, 2, 1},   {1, 1, 3, 4},   {1, 4, 16, 1},
};
enum { CONFIG_COUNT = sizeof(configs) / sizeof(configs[0]), SHAPES_PER_CONFIG = 25 };

static void random_shape(test_rng *r, conv2d_params *p) {
    for (;;) {
        p->batch = test_rand_int(r, 1, 3);
        p->in_channels = test_rand_int(r, 1, 40);
        p->out_channels = test_rand_int(r, 1, 40);
        p->in_height = test_rand_int(r, 1, 16);
        p->in_width = test_rand_int(r, 1, 16);
        p->kernel_h = test_rand_int(r, 1, 5);
        p->kernel_w = test_rand_int(r, 1, 5);
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
    float *expected_output = malloc(sizeof(float) * out_count);
    float *expected_grad = malloc(sizeof(float) * in_count);
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
    if (CHECK(input && weight && bias && grad_output && expected_output && expected_grad &&
              actual_output && actual_grad && input_buffer && weight_buffer && bias_buffer &&
              grad_output_buffer && output_buffer && grad_input_buffer) &&
        CHECK_OK(ctx, conv2d_forward_direct(ctx, c, p, input_buffer, weight_buffer,
                                            p->has_bias ? bias_buffer : NULL, output_buffer)) &&
        CHECK_OK(ctx, conv2d_backward_data_direct(ctx, c, p, grad_output_buffer, weight_buffer,
                                                  grad_input_buffer)) &&
        CHECK_OK(ctx,
                 buffer_read(ctx, output_buffer, 0, sizeof(float) * out_count, actual_output)) &&
        CHECK_OK(ctx,
                 buffer_read(ctx, grad_input_buffer, 0, sizeof(float) * in_count, actual_grad))) {
        conv2d_forward_ref(p, input, weight, bias, expected_output);
        conv2d_backward_data_ref(p, grad_output, weight, expected_grad);
        double forward_error =
            max_relative_error(actual_output, expected_output, (int64_t)out_count, 1.0);
        double data_error = max_relative_error(actual_grad, expected_grad, (int64_t)in_count, 1.0);
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
    free(expected_grad);
    free(actual_output);
    free(actual_grad);
    return worst;
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
            random_shape(&r, &p);
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
    clcnn_context_destroy(ctx);
    return test_finish();
}
