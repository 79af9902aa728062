/* Winograd F(2x2, 3x3) convolution on the OpenCL device
 * (kernels/conv2d_winograd.cl says how): the filters' and the tiles'
 * transforms, the 16 products as 1x1 convolutions on the direct forward
 * kernel, the products' transform. Its twin on the host is the plain
 * convolution, conv2d_forward_ref. */
#include "ops.h"

#include <limits.h>

conv2d_params conv2d_winograd_products_params(const conv2d_params *p) {
    conv2d_params m = {0};
    m.batch = p->batch;
    m.in_channels = p->in_channels;
    m.in_height = m.out_height = (p->out_height + 1) / 2;
    m.in_width = m.out_width = (p->out_width + 1) / 2;
    m.out_channels = p->out_channels;
    m.kernel_h = m.kernel_w = 1;
    m.stride_h = m.stride_w = 1;
    return m;
}

/* The floats from one of the 16 parts of a transformed tensor of count
 * floats to the next: count rounded up to whole cache lines, and one line
 * more where that is a multiple of 4 KiB, whose 16 streams (a transform
 * reads or writes all of them at once) would share one set of a CPU's L1
 * cache, more of them than it has ways. Parts 1 MiB apart (512 channels at
 * 7x7, batch 32) had made the tiles' and filters' transforms 2.5 and 1.4
 * times as slow, and Winograd slower than the direct kernels. */
static int64_t part_stride(int64_t count) {
    const int64_t lines = (count + 15) / 16 * 16;
    return lines % 1024 == 0 ? lines + 16 : lines;
}

/* The floats from one part of a transformed (N, channels, TH, TW) tensor to the next. */
static int64_t transformed_part(const conv2d_params *p, int channels) {
    const conv2d_params m = conv2d_winograd_products_params(p);
    return part_stride((int64_t)m.batch * channels * m.out_height * m.out_width);
}

int conv2d_winograd_fits(const clcnn_context *ctx, const conv2d_params *p) {
    /* Padded output channels are fewer than 2 * K + 16 for every configuration. */
    const cl_ulong floats = ctx->max_alloc_bytes / sizeof(float);
    const int64_t limit = floats < INT_MAX ? (int64_t)floats : INT_MAX;
    return conv2d_is_plain(p) && p->kernel_h == 3 && p->kernel_w == 3 && p->stride_h == 1 &&
           p->stride_w == 1 && 16 * transformed_part(p, p->in_channels) <= limit &&
           16 * transformed_part(p, p->out_channels) <= limit &&
           16 * part_stride(p->in_channels * (2 * (int64_t)p->out_channels + 16)) <= limit;
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

/* flip_transpose: p is conv2d_backward_data_as_forward of the convolution whose
 * (p->in_channels, p->out_channels, 3, 3) filters `weight` holds. */
direct_config conv2d_winograd_products_config(const clcnn_context *ctx, const conv2d_params *p) {
    const conv2d_params m = conv2d_winograd_products_params(p);
    return direct_config_for_conv(ctx, "forward", &m, m.out_channels);
}

clcnn_status conv2d_forward_winograd(clcnn_context *ctx, const direct_config *config,
                                     const conv2d_params *p, cl_mem input, cl_mem weight,
                                     int flip_transpose, cl_mem bias, cl_mem output) {
    if (!conv2d_winograd_fits(ctx, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Winograd convolution: needs a 3x3 stride-1 ungrouped convolution "
                         "whose transformed tiles fit the device's largest allocation");
    const conv2d_params m = conv2d_winograd_products_params(p);
    const int padded = conv2d_direct_padded_channels(m.out_channels, config);
    const int tiles_h = m.out_height, tiles_w = m.out_width;
    const int tile_stride = (int)transformed_part(p, p->in_channels);
    const int product_stride = (int)transformed_part(p, p->out_channels);
    const int filter_items = p->in_channels * padded;
    const int filter_stride = (int)part_stride(filter_items);
    const int tile_items = p->batch * p->in_channels * tiles_h * tiles_w;
    const int product_items = p->batch * p->out_channels * tiles_h * tiles_w;
    cl_mem tiles, products, filters;
    clcnn_status status = runtime_scratch(ctx, SCRATCH_WINOGRAD_TILES,
                                          sizeof(float) * 16 * (size_t)tile_stride, &tiles);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS,
                                 sizeof(float) * 16 * (size_t)product_stride, &products);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_FILTERS,
                                 sizeof(float) * 16 * (size_t)filter_stride, &filters);
    if (status != CLCNN_OK)
        return status;

    const kernel_arg filter_args[] = {
        {sizeof(cl_mem), &weight},       {sizeof(cl_mem), &filters}, {sizeof(int), &p->in_channels},
        {sizeof(int), &p->out_channels}, {sizeof(int), &padded},     {sizeof(int), &flip_transpose},
        {sizeof(int), &filter_stride},
    };
    status = launch_1d(ctx, "winograd_transform_filters", 7, filter_args, filter_items);

    const kernel_arg tile_args[] = {
        {sizeof(cl_mem), &input},    {sizeof(cl_mem), &tiles},   {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width}, {sizeof(int), &p->pad_top}, {sizeof(int), &p->pad_left},
        {sizeof(int), &tiles_h},     {sizeof(int), &tiles_w},    {sizeof(int), &tile_items},
        {sizeof(int), &tile_stride},
    };
    if (status == CLCNN_OK)
        status = launch_1d(ctx, "winograd_transform_tiles", 10, tile_args, tile_items);

    for (int xi = 0; xi < 16 && status == CLCNN_OK; xi++) {
        const direct_forward_operands o = {.input = tiles,
                                           .input_offset = xi * tile_stride,
                                           .transposed = filters,
                                           .weight_offset = xi * filter_stride,
                                           .output = products,
                                           .output_offset = xi * product_stride};
        status = conv2d_forward_direct_launch(ctx, config, &m, &o);
    }

    cl_mem bias_arg = p->has_bias ? bias : products;
    const kernel_arg product_args[] = {
        {sizeof(cl_mem), &products},    {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output},      {sizeof(int), &p->out_channels},
        {sizeof(int), &p->out_height},  {sizeof(int), &p->out_width},
        {sizeof(int), &tiles_h},        {sizeof(int), &tiles_w},
        {sizeof(int), &p->has_bias},    {sizeof(int), &product_items},
        {sizeof(int), &product_stride},
    };
    if (status == CLCNN_OK)
        status = launch_1d(ctx, "winograd_transform_products", 11, product_args, product_items);
    return status;
}
