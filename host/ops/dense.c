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

clcnn_status dense_forward(clcnn_context *ctx, const dense_params *p, cl_mem input,
                           cl_mem weight, cl_mem bias, cl_mem output) {
    const gemm_params g = dense_forward_gemm(p);
    return gemm(ctx, &g, input, weight, output, bias);
}
