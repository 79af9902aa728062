/* Winograd F(2x2, 3x3) convolution on the OpenCL device
 * (kernels/conv2d_winograd.cl says how): the filters' and the tiles'
 * transforms, the 16 products as a grouped 1x1 convolution on the direct
 * kernels, the products' transform. Its twin on the host is the plain
 * convolution, conv2d_forward_ref. */
#include "ops.h"

#include <limits.h>

/* The 1x1 convolution in 16 groups that multiplies the transformed tiles of
 * p (N, 16*C, TH, TW) by the transformed filters (16*K, C). */
static conv2d_params products_params(const conv2d_params *p) {
    conv2d_params m = {0};
    m.batch = p->batch;
    m.in_channels = 16 * p->in_channels;
    m.in_height = m.out_height = (p->out_height + 1) / 2;
    m.in_width = m.out_width = (p->out_width + 1) / 2;
    m.out_channels = 16 * p->out_channels;
    m.kernel_h = m.kernel_w = 1;
    m.stride_h = m.stride_w = 1;
    m.groups = 16;
    return m;
}

static int64_t tile_floats(const conv2d_params *p, int channels) {
    const conv2d_params m = products_params(p);
    return (int64_t)m.batch * 16 * channels * m.out_height * m.out_width;
}

int conv2d_winograd_fits(const conv2d_params *p) {
    return conv2d_is_plain(p) && p->kernel_h == 3 && p->kernel_w == 3 && p->stride_h == 1 &&
           p->stride_w == 1 && tile_floats(p, p->in_channels) <= INT_MAX &&
           tile_floats(p, p->out_channels) <= INT_MAX &&
           (int64_t)16 * p->in_channels * p->out_channels <= INT_MAX;
}

/* Only on request (CLCNN_WINOGRAD=1): on an AMD EPYC (AVX2, PoCL, 2 cores;
 * bench/RESULTS.md) it ran at 0.21-0.46x the direct kernels' speed with
 * 16-64 channels, where the transformed tiles (four times the input) cost
 * more memory traffic than the multiplications they save, and at 0.82-1.10x
 * with 128-512, where the grouped 1x1 products run at 47-65 GFLOP/s. */
int conv2d_runs_winograd(const clcnn_context *ctx, const conv2d_params *p) {
    return ctx->config.winograd && conv2d_winograd_fits(p);
}

static clcnn_status launch_1d(clcnn_context *ctx, const char *name, int arg_count,
                              const kernel_arg *args, int64_t items) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "conv2d_winograd", name, "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const size_t local[1] = {64};
    const size_t global[1] = {(size_t)((items + 63) / 64 * 64)};
    return runtime_launch(ctx, kernel, name, arg_count, args, 1, global, local);
}

/* flip_transpose: p is backward_data_as_forward of the convolution whose
 * (p->in_channels, p->out_channels, 3, 3) filters `weight` holds. */
clcnn_status conv2d_forward_winograd(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                     cl_mem weight, int flip_transpose, cl_mem bias,
                                     cl_mem output) {
    if (!conv2d_winograd_fits(p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Winograd convolution: needs a 3x3 stride-1 ungrouped convolution");
    const conv2d_params m = products_params(p);
    const int tiles_h = m.out_height, tiles_w = m.out_width;
    const int64_t tiles_in = tile_floats(p, p->in_channels);
    const int64_t tiles_out = tile_floats(p, p->out_channels);
    const int64_t filters = (int64_t)16 * p->in_channels * p->out_channels;
    cl_mem tiles, products, transformed;
    clcnn_status status =
        runtime_scratch(ctx, SCRATCH_WINOGRAD_TILES, sizeof(float) * (size_t)tiles_in, &tiles);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS, sizeof(float) * (size_t)tiles_out,
                                 &products);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_FILTERS, sizeof(float) * (size_t)filters,
                                 &transformed);
    if (status != CLCNN_OK)
        return status;

    const kernel_arg filter_args[] = {
        {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &transformed},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->out_channels},
        {sizeof(int), &flip_transpose},
    };
    status = launch_1d(ctx, "winograd_transform_filters", 5, filter_args,
                       (int64_t)p->in_channels * p->out_channels);

    const int tile_count = (int)(tiles_in / 16);
    const kernel_arg tile_args[] = {
        {sizeof(cl_mem), &input},     {sizeof(cl_mem), &tiles},    {sizeof(int), &p->in_channels},
        {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width}, {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},  {sizeof(int), &tiles_h},     {sizeof(int), &tiles_w},
        {sizeof(int), &tile_count},
    };
    if (status == CLCNN_OK)
        status = launch_1d(ctx, "winograd_transform_tiles", 10, tile_args, tile_count);

    if (status == CLCNN_OK) {
        const direct_config config = direct_config_for_conv(ctx, "forward", &m, p->out_channels);
        status = conv2d_forward_direct(ctx, &config, &m, tiles, transformed, NULL, products);
    }

    const int product_count = (int)(tiles_out / 16);
    cl_mem bias_arg = p->has_bias ? bias : products;
    const kernel_arg product_args[] = {
        {sizeof(cl_mem), &products},   {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output},     {sizeof(int), &p->out_channels},
        {sizeof(int), &p->out_height}, {sizeof(int), &p->out_width},
        {sizeof(int), &tiles_h},       {sizeof(int), &tiles_w},
        {sizeof(int), &p->has_bias},   {sizeof(int), &product_count},
    };
    if (status == CLCNN_OK)
        status = launch_1d(ctx, "winograd_transform_products", 10, product_args, product_count);
    return status;
}
