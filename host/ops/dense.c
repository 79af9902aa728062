/* Fully connected layer on the OpenCL device: one GEMM, X * W^T + b. */
#include "ops.h"

static gemm_params dense_forward_gemm(const dense_params *p) {
    gemm_params g = {0};
    g.m = p->batch;
    g.n = p->out_features;
    g.k = p->in_features;
    g.alpha = 1.0f;
    g.beta = 0.0f;
    g.a_row_stride = p->in_features; /* input (batch, in) */
    g.a_col_stride = 1;
    g.b_row_stride = 1; /* B(k, n) = weight[n, k] */
    g.b_col_stride = p->in_features;
    g.c_row_stride = p->out_features;
    g.bias = p->has_bias ? BIAS_PER_COLUMN : BIAS_NONE;
    return g;
}

/* A dense layer is a 1x1 convolution of 1x1 images with in_features channels,
 * and on devices that run the register-blocked convolution that is the faster path. */
conv2d_params dense_as_convolution(const dense_params *p) {
    conv2d_params c = {0};
    c.batch = p->batch;
    c.in_channels = p->in_features;
    c.out_channels = p->out_features;
    c.in_height = c.in_width = c.out_height = c.out_width = 1;
    c.kernel_h = c.kernel_w = c.stride_h = c.stride_w = 1;
    c.has_bias = p->has_bias;
    c.relu = p->relu;
    return c;
}

clcnn_status dense_forward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                           cl_mem input, cl_mem weight, cl_mem bias, cl_mem output,
                           prepared_weights *prepared) {
    if (use_direct_kernels(ctx)) {
        const conv2d_params c = dense_as_convolution(p);
        return conv2d_forward_planned(ctx, plan, &c, input, weight, bias, output, NULL, prepared);
    }
    const gemm_params g = dense_forward_gemm(p);
    clcnn_status status = gemm(ctx, &g, input, weight, output, bias);
    if (status != CLCNN_OK || !p->relu)
        return status;
    return activation_forward(ctx, ACTIVATION_RELU, 0.0f, (int64_t)p->batch * p->out_features,
                              output, output);
}

/* grad_input (batch, in) = grad_output (batch, out) * weight (out, in). */
static gemm_params dense_grad_input_gemm(const dense_params *p) {
    gemm_params g = {0};
    g.m = p->batch;
    g.n = p->in_features;
    g.k = p->out_features;
    g.alpha = 1.0f;
    g.beta = 0.0f;
    g.a_row_stride = p->out_features;
    g.a_col_stride = 1;
    g.b_row_stride = p->in_features;
    g.b_col_stride = 1;
    g.c_row_stride = p->in_features;
    g.bias = BIAS_NONE;
    return g;
}

/* grad_weight (out, in) = grad_output^T * input: the sum over the batch is the product's k. */
static gemm_params dense_grad_weight_gemm(const dense_params *p) {
    gemm_params g = {0};
    g.m = p->out_features;
    g.n = p->in_features;
    g.k = p->batch;
    g.alpha = 1.0f;
    g.beta = 0.0f;
    g.a_row_stride = 1; /* A(m, k) = grad_output[k, m] */
    g.a_col_stride = p->out_features;
    g.b_row_stride = p->in_features;
    g.b_col_stride = 1;
    g.c_row_stride = p->in_features;
    g.bias = BIAS_NONE;
    return g;
}

clcnn_status dense_backward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                            cl_mem input, cl_mem weight, cl_mem grad_output, cl_mem grad_input,
                            cl_mem grad_weight, cl_mem grad_bias) {
    clcnn_status status = CLCNN_OK;
    const conv2d_params c = dense_as_convolution(p);
    if (grad_input && use_direct_kernels(ctx)) {
        status = conv2d_backward_data_planned(ctx, plan, &c, grad_output, weight, grad_input);
    } else if (grad_input) {
        const gemm_params data = dense_grad_input_gemm(p);
        status = gemm(ctx, &data, grad_output, weight, grad_input, NULL);
    }
    if (status != CLCNN_OK || !grad_weight)
        return status;
    if (use_direct_kernels(ctx)) {
        /* The convolution's scratch lives in the context's workspace here: a
         * dense layer's is small, and the transposes that share the
         * workspace are done by the time this runs. */
        cl_mem scratch;
        status = runtime_workspace(ctx, conv2d_backward_weights_scratch_bytes(plan, &c), &scratch);
        if (status != CLCNN_OK)
            return status;
        return conv2d_backward_weights_planned(ctx, plan, &c, input, grad_output, grad_weight,
                                               grad_bias, scratch, NULL);
    }
    const gemm_params weights = dense_grad_weight_gemm(p);
    status = gemm(ctx, &weights, grad_output, input, grad_weight, NULL);
    if (status != CLCNN_OK)
        return status;
    if (!p->has_bias)
        return CLCNN_OK;
    return reduce_channels(ctx, p->batch, p->out_features, 1, grad_output, grad_bias);
}

clcnn_status op_dense_forward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                              buf input, buf weight, buf bias, buf output,
                              prepared_weights *prepared) {
    if (context_is_opencl(ctx))
        return dense_forward(ctx, plan, p, input.mem, weight.mem, bias.mem, output.mem, prepared);
    dense_forward_ref(p, input.host, weight.host, bias.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_dense_backward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                               buf input, buf weight, buf grad_output, buf grad_input,
                               buf grad_weight, buf grad_bias) {
    if (context_is_opencl(ctx))
        return dense_backward(ctx, plan, p, input.mem, weight.mem, grad_output.mem, grad_input.mem,
                              grad_weight.mem, grad_bias.mem);
    dense_backward_ref(p, input.host, weight.host, grad_output.host, grad_input.host,
                       grad_weight.host, grad_bias.host);
    return CLCNN_OK;
}
