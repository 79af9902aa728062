/* The operations: each has an OpenCL side (host/ops/<op>.c, enqueueing
 * kernels/<op>.cl) and a plain-C reference (host/ref/<op>.c) with the same
 * parameters. Buffers hold NCHW float32. The reference accumulates in
 * double, so it is the more accurate of the two. */
#ifndef CLCNN_OPS_H
#define CLCNN_OPS_H

#include "internal.h"

/* ---- tile configurations ------------------------------------------------ */

/* A tiled GEMM-style kernel's -D parameters (see kernels/gemm.cl). */
typedef struct tile_config {
    int tile_m, tile_n, tile_k;
    int wpt_m, wpt_n;
} tile_config;

/* The configuration used for a kernel family on ctx's device. */
tile_config tile_config_for(const clcnn_context *ctx, const char *family);
/* Writes "-DTILE_M=.. -DTILE_N=.. ..." into buf. */
void tile_config_options(const tile_config *config, char *buf, size_t size);
/* 1 if config obeys the divisibility rules and fits the device's work-group limit. */
int tile_config_valid(const clcnn_context *ctx, const tile_config *config);

/* ---- conv2d --------------------------------------------------------------------- */

typedef struct conv2d_params {
    int batch;
    int in_channels, in_height, in_width;
    int out_channels, kernel_h, kernel_w;
    int stride_h, stride_w, pad_top, pad_left;
    int out_height, out_width;
    int has_bias;
} conv2d_params;

void conv2d_forward_ref(const conv2d_params *p, const float *input, const float *weight,
                        const float *bias, float *output);
clcnn_status conv2d_forward(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                            cl_mem weight, cl_mem bias, cl_mem output);
/* The same with an explicit tile configuration, for the tests and the tuner. */
clcnn_status conv2d_forward_tiled(clcnn_context *ctx, const tile_config *config,
                                  const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                  cl_mem output);

/* ---- gemm: C = alpha * A(m,k) B(k,n) + beta * C + bias (see kernels/gemm.cl) ---- */

typedef enum bias_mode { BIAS_NONE = 0, BIAS_PER_ROW = 1, BIAS_PER_COLUMN = 2 } bias_mode;

typedef struct gemm_params {
    int m, n, k;
    float alpha, beta;
    int a_row_stride, a_col_stride;
    int b_row_stride, b_col_stride;
    int c_row_stride;
    bias_mode bias;
} gemm_params;

void gemm_ref(const gemm_params *p, const float *a, const float *b, float *c, const float *bias);
clcnn_status gemm(clcnn_context *ctx, const gemm_params *p, cl_mem a, cl_mem b, cl_mem c,
                  cl_mem bias);
clcnn_status gemm_tiled(clcnn_context *ctx, const tile_config *config, const gemm_params *p,
                        cl_mem a, cl_mem b, cl_mem c, cl_mem bias);

/* ---- dense: output (batch, out) = input (batch, in) * weight(out, in)^T + bias ---- */

typedef struct dense_params {
    int batch, in_features, out_features;
    int has_bias;
} dense_params;

void dense_forward_ref(const dense_params *p, const float *input, const float *weight,
                       const float *bias, float *output);
clcnn_status dense_forward(clcnn_context *ctx, const dense_params *p, cl_mem input,
                           cl_mem weight, cl_mem bias, cl_mem output);

/* ---- pool2d ----------------------------------------------------------------------- */

typedef enum pool_kind { POOL_MAX, POOL_AVERAGE } pool_kind;

typedef struct pool2d_params {
    pool_kind kind;
    int batch, channels, in_height, in_width;
    int size_h, size_w, stride_h, stride_w, pad_top, pad_left;
    int out_height, out_width;
} pool2d_params;

void pool2d_forward_ref(const pool2d_params *p, const float *input, float *output);
clcnn_status pool2d_forward(clcnn_context *ctx, const pool2d_params *p, cl_mem input,
                            cl_mem output);

/* ---- activations (numbers shared with kernels/activation.cl) ------------------------- */

typedef enum activation_kind {
    ACTIVATION_RELU = 0,
    ACTIVATION_LEAKY = 1,
    ACTIVATION_SIGMOID = 2,
    ACTIVATION_TANH = 3
} activation_kind;

void activation_forward_ref(activation_kind kind, float slope, int64_t count, const float *input,
                            float *output);
clcnn_status activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                int64_t count, cl_mem input, cl_mem output);

/* ---- softmax over the last axis ---------------------------------------------------------- */

void softmax_forward_ref(int64_t rows, int columns, const float *input, float *output);
clcnn_status softmax_forward(clcnn_context *ctx, int64_t rows, int columns, cl_mem input,
                             cl_mem output);

#endif
