/* Convolution on the OpenCL device: kernels/conv2d.cl. */
#include "ops.h"

#include <string.h>

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

/* Rounds channels up to a whole number of a work-item's channel vectors. */
static int padded_channels(int channels, const direct_config *config) {
    int block = config->vw * config->nv;
    return (channels + block - 1) / block * block;
}

/* Transposes the weights into the workspace for the register-blocked kernels. */
static clcnn_status transpose_weights(clcnn_context *ctx, const char *kernel_name,
                                      const direct_config *config, const conv2d_params *p,
                                      cl_mem weight, int padded, cl_mem *out) {
    const int other = strcmp(kernel_name, "conv2d_transpose_for_forward") == 0
                          ? p->in_channels
                          : p->out_channels;
    size_t count = (size_t)p->kernel_h * p->kernel_w * other * padded;
    clcnn_status status = runtime_workspace(ctx, sizeof(float) * count, out);
    char options[128];
    direct_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel(ctx, "conv2d_direct", kernel_name, options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weight},       {sizeof(cl_mem), out},
        {sizeof(int), &p->in_channels},  {sizeof(int), &p->out_channels},
        {sizeof(int), &p->kernel_h},     {sizeof(int), &p->kernel_w},
        {sizeof(int), &padded},
    };
    const size_t local[1] = {64};
    const size_t global[1] = {count};
    return runtime_launch(ctx, kernel, kernel_name, sizeof(args) / sizeof(args[0]), args, 1,
                          global, local);
}

clcnn_status conv2d_forward_direct(clcnn_context *ctx, const direct_config *config,
                                   const conv2d_params *p, cl_mem input, cl_mem weight,
                                   cl_mem bias, cl_mem output) {
    const int padded = padded_channels(p->out_channels, config);
    cl_mem transposed;
    clcnn_status status = transpose_weights(ctx, "conv2d_transpose_for_forward", config, p,
                                            weight, padded, &transposed);
    char options[128];
    direct_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel(ctx, "conv2d_direct", "conv2d_forward_direct", options,
                                    &kernel);
    if (status != CLCNN_OK)
        return status;
    const int positions = p->batch * p->out_height * p->out_width;
    cl_mem bias_arg = p->has_bias ? bias : weight;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},          {sizeof(cl_mem), &transposed},
        {sizeof(cl_mem), &bias_arg},       {sizeof(cl_mem), &output},
        {sizeof(int), &p->in_channels},    {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width},       {sizeof(int), &p->out_channels},
        {sizeof(int), &p->kernel_h},       {sizeof(int), &p->kernel_w},
        {sizeof(int), &p->stride_h},       {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},        {sizeof(int), &p->pad_left},
        {sizeof(int), &p->out_height},     {sizeof(int), &p->out_width},
        {sizeof(int), &positions},         {sizeof(int), &p->has_bias},
        {sizeof(int), &padded},
    };
    const size_t local[2] = {1, (size_t)config->group};
    const size_t global[2] = {(size_t)(padded / (config->vw * config->nv)),
                              (size_t)((positions + config->wpt_p - 1) / config->wpt_p)};
    return runtime_launch(ctx, kernel, "conv2d_forward_direct", sizeof(args) / sizeof(args[0]),
                          args, 2, global, local);
}

clcnn_status conv2d_forward(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                            cl_mem weight, cl_mem bias, cl_mem output) {
    if (use_direct_kernels(ctx)) {
        const direct_config config = direct_config_for(ctx, p->out_channels);
        return conv2d_forward_direct(ctx, &config, p, input, weight, bias, output);
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_forward_tiled(ctx, &config, p, input, weight, bias, output);
}

/* ---- backward data ---------------------------------------------------------------------- */

/* The same with an explicit tile configuration (for tests and a tuner; not in ops.h yet). */
clcnn_status conv2d_backward_data_tiled(clcnn_context *ctx, const tile_config *config,
                                        const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                        cl_mem grad_input) {
    if (!tile_config_valid(ctx, config))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward data: invalid tile configuration");
    char options[256];
    tile_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    clcnn_status status =
        runtime_get_kernel(ctx, "conv2d", "conv2d_backward_data", options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int columns = p->batch * p->in_height * p->in_width;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output},  {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &grad_input},   {sizeof(int), &p->in_channels},
        {sizeof(int), &p->in_height},    {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_channels}, {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},     {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},     {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},     {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},    {sizeof(int), &columns},
    };
    const size_t local[2] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m)};
    const size_t global[2] = {(size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((p->in_channels + config->tile_m - 1) / config->tile_m) *
                                  local[1]};
    return runtime_launch(ctx, kernel, "conv2d_backward_data", sizeof(args) / sizeof(args[0]), args,
                          2, global, local);
}

clcnn_status conv2d_backward_data_direct(clcnn_context *ctx, const direct_config *config,
                                         const conv2d_params *p, cl_mem grad_output,
                                         cl_mem weight, cl_mem grad_input) {
    const int padded = padded_channels(p->in_channels, config);
    cl_mem transposed;
    clcnn_status status = transpose_weights(ctx, "conv2d_transpose_for_backward_data", config, p,
                                            weight, padded, &transposed);
    char options[128];
    direct_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel(ctx, "conv2d_direct", "conv2d_backward_data_direct", options,
                                    &kernel);
    if (status != CLCNN_OK)
        return status;
    const int positions = p->batch * p->in_height * p->in_width;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output},    {sizeof(cl_mem), &transposed},
        {sizeof(cl_mem), &grad_input},     {sizeof(int), &p->in_channels},
        {sizeof(int), &p->in_height},      {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_channels},   {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},       {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},       {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},       {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},      {sizeof(int), &positions},
        {sizeof(int), &padded},
    };
    const size_t local[2] = {1, (size_t)config->group};
    const size_t global[2] = {(size_t)(padded / (config->vw * config->nv)),
                              (size_t)((positions + config->wpt_p - 1) / config->wpt_p)};
    return runtime_launch(ctx, kernel, "conv2d_backward_data_direct",
                          sizeof(args) / sizeof(args[0]), args, 2, global, local);
}

clcnn_status conv2d_backward_data(clcnn_context *ctx, const conv2d_params *p, cl_mem grad_output,
                                  cl_mem weight, cl_mem grad_input) {
    if (use_direct_kernels(ctx)) {
        const direct_config config = direct_config_for(ctx, p->in_channels);
        return conv2d_backward_data_direct(ctx, &config, p, grad_output, weight, grad_input);
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_backward_data_tiled(ctx, &config, p, grad_output, weight, grad_input);
}

/* ---- backward weights ------------------------------------------------------------------- */

/* The reduction over batch and output pixels is cut into slices that run as
 * separate work-groups. A slice gets at least this many terms: short enough
 * that a work-item's float sum stays accurate (and a GPU gets work-groups
 * enough), long enough that the partial tiles and the second pass stay small
 * next to the GEMM itself... */
enum { MIN_STEPS_PER_SLICE = 512 };
/* ...there are at most this many slices... */
enum { MAX_SLICES = 64 };
/* ...and the partial sums of a very large filter bank stay within 64 MiB,
 * since such a layer has work-groups enough without many slices. */
static const int64_t max_scratch_floats = (int64_t)1 << 24;

static int64_t weight_count(const conv2d_params *p) {
    return (int64_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
}

/* The number of reduction slices: a function of the shape only, not of the
 * tile configuration, so the scratch size does not change with CLCNN_TILES. */
static int backward_weights_slices(const conv2d_params *p) {
    const int64_t steps = (int64_t)p->batch * p->out_height * p->out_width;
    int64_t slices = steps / MIN_STEPS_PER_SLICE;
    if (slices > MAX_SLICES)
        slices = MAX_SLICES;
    const int64_t weights = weight_count(p);
    if (weights > 0 && slices * weights > max_scratch_floats)
        slices = max_scratch_floats / weights;
    if (slices < 1)
        slices = 1;
    return (int)slices;
}

size_t conv2d_backward_weights_scratch_bytes(const clcnn_context *ctx, const conv2d_params *p) {
    /* With a single slice the GEMM writes grad_weight directly and the scratch
     * is unused; it is still at least one float so that it can be allocated. */
    const int64_t floats = backward_weights_slices(p) * weight_count(p);
    return (size_t)(floats > 0 ? floats : 1) * sizeof(float);
}

/* The same with an explicit tile configuration (for tests and a tuner; not in ops.h yet). */
clcnn_status conv2d_backward_weights_tiled(clcnn_context *ctx, const tile_config *config,
                                           const conv2d_params *p, cl_mem input, cl_mem grad_output,
                                           cl_mem grad_weight, cl_mem grad_bias, cl_mem scratch) {
    if (!tile_config_valid(ctx, config))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: invalid tile configuration");
    const int slices = backward_weights_slices(p);
    if (slices > 1 && !scratch)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: no scratch buffer for %d slices", slices);
    char options[256];
    tile_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    clcnn_status status =
        runtime_get_kernel(ctx, "conv2d", "conv2d_backward_weights", options, &kernel);
    if (status != CLCNN_OK)
        return status;

    const int steps = p->batch * p->out_height * p->out_width;
    const int slice_length = (steps + slices - 1) / slices;
    const int columns = p->in_channels * p->kernel_h * p->kernel_w;
    cl_mem partial = slices > 1 ? scratch : grad_weight;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},        {sizeof(cl_mem), &grad_output},
        {sizeof(cl_mem), &partial},      {sizeof(int), &p->in_channels},
        {sizeof(int), &p->in_height},    {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_channels}, {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},     {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},     {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},     {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},    {sizeof(int), &steps},
        {sizeof(int), &slice_length},
    };
    const size_t local[3] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m), 1};
    const size_t global[3] = {(size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((p->out_channels + config->tile_m - 1) / config->tile_m) *
                                  local[1],
                              (size_t)slices};
    status = runtime_launch(ctx, kernel, "conv2d_backward_weights", sizeof(args) / sizeof(args[0]),
                            args, 3, global, local);
    if (status != CLCNN_OK)
        return status;

    if (slices > 1) {
        cl_kernel sum_kernel;
        status = runtime_get_kernel(ctx, "conv2d", "conv2d_sum_slices", "", &sum_kernel);
        if (status != CLCNN_OK)
            return status;
        const int count = (int)weight_count(p);
        const kernel_arg sum_args[] = {
            {sizeof(cl_mem), &scratch},
            {sizeof(cl_mem), &grad_weight},
            {sizeof(int), &count},
            {sizeof(int), &slices},
        };
        size_t sum_local[1] = {64};
        if (ctx->max_work_group_size && sum_local[0] > ctx->max_work_group_size)
            sum_local[0] = ctx->max_work_group_size;
        const size_t sum_global[1] = {(size_t)count};
        status = runtime_launch(ctx, sum_kernel, "conv2d_sum_slices",
                                sizeof(sum_args) / sizeof(sum_args[0]), sum_args, 1, sum_global,
                                sum_local);
        if (status != CLCNN_OK)
            return status;
    }

    if (p->has_bias)
        return reduce_channels(ctx, p->batch, p->out_channels, p->out_height * p->out_width,
                               grad_output, grad_bias);
    return CLCNN_OK;
}

clcnn_status conv2d_backward_weights(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                     cl_mem grad_output, cl_mem grad_weight, cl_mem grad_bias,
                                     cl_mem scratch) {
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_backward_weights_tiled(ctx, &config, p, input, grad_output, grad_weight,
                                         grad_bias, scratch);
}
