/* Convolution on the OpenCL device: kernels/conv2d.cl. */
#include "ops.h"

clcnn_status conv2d_forward_tiled(clcnn_context *ctx, const tile_config *config,
                                  const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                  cl_mem output) {
    if (!tile_config_valid(ctx, config))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "conv2d: invalid tile configuration");
    char options[256];
    tile_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "conv2d", "conv2d_forward", options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int columns = p->batch * p->out_height * p->out_width;
    /* A bias-less layer still needs a valid buffer argument; the kernel never reads it. */
    cl_mem bias_arg = p->has_bias ? bias : weight;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},          {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias_arg},       {sizeof(cl_mem), &output},
        {sizeof(int), &p->in_channels},    {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width},       {sizeof(int), &p->out_channels},
        {sizeof(int), &p->kernel_h},       {sizeof(int), &p->kernel_w},
        {sizeof(int), &p->stride_h},       {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},        {sizeof(int), &p->pad_left},
        {sizeof(int), &p->out_height},     {sizeof(int), &p->out_width},
        {sizeof(int), &columns},           {sizeof(int), &p->has_bias},
    };
    const size_t local[2] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m)};
    const size_t global[2] = {
        (size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
        (size_t)((p->out_channels + config->tile_m - 1) / config->tile_m) * local[1]};
    return runtime_launch(ctx, kernel, "conv2d_forward", sizeof(args) / sizeof(args[0]), args, 2,
                          global, local);
}

clcnn_status conv2d_forward(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                            cl_mem weight, cl_mem bias, cl_mem output) {
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_forward_tiled(ctx, &config, p, input, weight, bias, output);
}
