/* Batch normalisation on the OpenCL device (kernels/batchnorm.cl), and the
 * entry points that run it or the reference (host/ref/batchnorm.c). */
#include "batchnorm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Kernels index with int, and their walks step up to a work-group past the
 * end; eps must keep sqrt(var + eps) real. */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int batch, int channels,
                                int spatial, float eps) {
    if (batch < 1 || channels < 1 || spatial < 1 ||
        (int64_t)batch * channels * spatial > INT_MAX - 1024)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: batch %d, channels %d, spatial %d", what, batch, channels,
                         spatial);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: eps must be >= 0, got %g", what,
                         (double)eps);
    return CLCNN_OK;
}

/* Train mode normalises with the batch's statistics and updates the running
 * variance with M / (M - 1): PyTorch refuses a single value per channel.
 * momentum weighs the new statistics against the old. */
static clcnn_status check_train(clcnn_context *ctx, const char *what, int batch, int channels,
                                int spatial, float eps, float momentum) {
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    if ((int64_t)batch * spatial < 2)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: training needs more than one value per channel, got a batch of %d "
                         "with %d per channel",
                         what, batch, spatial);
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: momentum must be between 0 and 1, got %g", what, (double)momentum);
    return CLCNN_OK;
}

int batchnorm_contiguous_walk(const clcnn_context *ctx) {
    return device_is_cpu(ctx);
}

/* The floats per element of the kernels' walks (BATCHNORM_VW): on CPUs
 * (contiguous walks) 16 where a plane holds at least 4 such vectors, else 8
 * or the widest power of two within a smaller H * W (a plane's last vector
 * may overlap the one before: kernels/batchnorm.cl); 1 for the strided walk
 * of GPUs, whose neighbouring work-items already read neighbouring floats.
 * The width sets the lanes the sums run in, so it follows the shape alone,
 * never the device: every CPU sums alike. 16 against 8 (in-process A/B,
 * AMD EPYC with AVX-512): train-mode forward and backward 0.77 and 0.71 of
 * the time at 16 x 28 x 28, 0.83 and 0.85 at 32 x 14 x 14, 0.96 at
 * 64 x 56 x 56; the same kernels built for AVX2 (POCL_LLVM_CPU_NAME=haswell
 * on that machine) 0.90 and 0.97, 0.84 and 1.05. */
static int vector_width(int contiguous, int spatial) {
    const int widest = spatial >= 4 * 16 ? 16 : 8;
    int vw = 1;
    while (contiguous && vw < widest && vw * 2 <= spatial)
        vw *= 2;
    return vw;
}

/* One of the kernels with its work-group size: BATCHNORM_THREADS work-items
 * per channel, halved until both the device and the compiled kernel accept
 * the group. 128 keep a long channel's loads in flight on a GPU; a CPU runs
 * a group's work-items one after the other on one core, where 16 cost fewer
 * rounds of the sums' tree (measured on PoCL, batch 64: 64 channels of 7x7
 * 2.4x, 32 of 14x14 1.1x faster than 128). */
static clcnn_status channel_kernel(clcnn_context *ctx, int contiguous, int spatial,
                                   const char *name, cl_kernel *kernel, size_t *threads) {
    const int vw = vector_width(contiguous, spatial);
    size_t wanted = contiguous ? 16 : 128;
    while (wanted > 1 && ctx->max_work_group_size && wanted > ctx->max_work_group_size)
        wanted /= 2;
    for (;;) {
        char options[128];
        snprintf(options, sizeof(options),
                 "-DBATCHNORM_THREADS=%d -DBATCHNORM_CONTIGUOUS=%d -DBATCHNORM_VW=%d", (int)wanted,
                 contiguous != 0, vw);
        clcnn_status status = runtime_get_kernel(ctx, "batchnorm", name, options, kernel);
        if (status != CLCNN_OK)
            return status;
        const cached_kernel *entry = runtime_kernel_entry(ctx, *kernel);
        const size_t limit = entry && entry->work_group_size ? entry->work_group_size : wanted;
        if (wanted <= limit || wanted == 1) {
            *threads = wanted;
            return CLCNN_OK;
        }
        wanted /= 2;
    }
}

/* On CPUs (contiguous walks) the eval-mode forward and the train-mode
 * forward and backward walk planes (image, channel) in memory order
 * (kernels/batchnorm.cl), where a plane holds at least a vector of 8
 * floats; elsewhere a work-group walks each channel. */
static int by_planes(int contiguous, int spatial) {
    return contiguous && spatial >= 8;
}

/* About 128 KiB of x a work-item of the plane kernels, long enough for
 * the prefetchers, but at least four work-items a compute unit, so that
 * the cores finish together. */
static int planes_per_item(const clcnn_context *ctx, int planes, int spatial) {
    const int64_t items = 4 * (int64_t)(ctx->compute_units ? ctx->compute_units : 1);
    const int share = (int)((planes + items - 1) / items);
    const int long_enough = spatial >= 32768 ? 1 : 32768 / spatial;
    return share < long_enough ? share : long_enough;
}

/* A launch of a CPU-path kernel (contiguous walks) over `items`
 * work-items, each its own work-group, so that they spread over the cores:
 * ceil(planes / planes_per_item) for the plane kernels, one per channel for
 * the channel kernels. */
static clcnn_status cpu_launch(clcnn_context *ctx, const char *name, int spatial,
                               const kernel_arg *args, int count, int items) {
    cl_kernel kernel;
    size_t threads;
    clcnn_status status = channel_kernel(ctx, 1, spatial, name, &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    const size_t local[1] = {1};
    const size_t global[1] = {(size_t)items};
    return runtime_launch(ctx, kernel, name, count, args, 1, global, local);
}

/* A plane kernel streams its outputs past the caches (kernels/batchnorm.cl's
 * stream_real) where the `tensors` tensors of `floats` floats it reads and
 * writes are larger than the device's cache together: the outputs' lines
 * would be evicted before the next layer reads them anyway. */
static int streams_output(const clcnn_context *ctx, int64_t floats, int tensors) {
    return ctx->cache_bytes && (uint64_t)floats * tensors * sizeof(float) > ctx->cache_bytes;
}

/* The work-items of a plane kernel. */
static int plane_items(int planes, int per_item) {
    return (planes + per_item - 1) / per_item;
}

/* The train-mode statistics over planes (batchnorm_plane_moments, then
 * batchnorm_channel_statistics) into `statistics` (BATCHNORM_SAVED_FLOATS a
 * channel), the running statistics moved with update. Without update
 * running_mean, running_var and bias may be any buffers: the shift they set
 * is read only by a backward that masks its relu from x. */
static clcnn_status plane_statistics(clcnn_context *ctx, int batch, int channels, int spatial,
                                     float eps, float momentum, cl_mem x, cl_mem weight,
                                     cl_mem bias, cl_mem running_mean, cl_mem running_var,
                                     cl_mem statistics, int update) {
    const int planes = batch * channels, per_item = planes_per_item(ctx, planes, spatial);
    cl_mem moments;
    clcnn_status status = runtime_workspace(ctx, sizeof(float) * 3 * (size_t)planes, &moments);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg plane_args[] = {
        {sizeof(cl_mem), &x},     {sizeof(cl_mem), &moments}, {sizeof(int), &planes},
        {sizeof(int), &channels}, {sizeof(int), &spatial},    {sizeof(int), &per_item},
    };
    status = cpu_launch(ctx, "batchnorm_plane_moments", spatial, plane_args,
                        sizeof(plane_args) / sizeof(plane_args[0]), plane_items(planes, per_item));
    if (status != CLCNN_OK)
        return status;
    const kernel_arg channel_args[] = {
        {sizeof(cl_mem), &moments},     {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias},        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &statistics},
        {sizeof(int), &batch},          {sizeof(int), &channels},
        {sizeof(int), &spatial},        {sizeof(float), &eps},
        {sizeof(float), &momentum},     {sizeof(int), &update},
    };
    return cpu_launch(ctx, "batchnorm_channel_statistics", spatial, channel_args,
                      sizeof(channel_args) / sizeof(channel_args[0]), channels);
}

/* Where a caller keeps no statistics (saved NULL), the plane kernels keep
 * them in a buffer of their own for the call: the graph always passes
 * `saved`, so this is off the training step's path. */
static clcnn_status statistics_buffer(clcnn_context *ctx, int channels, cl_mem saved, cl_mem *out) {
    *out = saved;
    return saved
               ? CLCNN_OK
               : buffer_create(ctx, sizeof(float) * BATCHNORM_SAVED_FLOATS * (size_t)channels, out);
}

static clcnn_status forward_train_planes(clcnn_context *ctx, int batch, int channels, int spatial,
                                         float eps, float momentum, cl_mem x, cl_mem weight,
                                         cl_mem bias, cl_mem running_mean, cl_mem running_var,
                                         cl_mem y, cl_mem saved, int relu,
                                         const batchnorm_residual *residual) {
    cl_mem statistics;
    clcnn_status status = statistics_buffer(ctx, channels, saved, &statistics);
    if (status != CLCNN_OK)
        return status;
    status = plane_statistics(ctx, batch, channels, spatial, eps, momentum, x, weight, bias,
                              running_mean, running_var, statistics, 1);
    /* Without a residual the kernel never reads skip: x stands in. */
    const int has_skip = residual != NULL;
    cl_mem skip = has_skip ? residual->skip : x;
    const int planes = batch * channels, per_item = planes_per_item(ctx, planes, spatial);
    const int stream = streams_output(ctx, (int64_t)planes * spatial, 2 + has_skip);
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},    {sizeof(cl_mem), &statistics}, {sizeof(cl_mem), &y},
        {sizeof(cl_mem), &skip}, {sizeof(int), &has_skip},      {sizeof(int), &relu},
        {sizeof(int), &planes},  {sizeof(int), &channels},      {sizeof(int), &spatial},
        {sizeof(int), &stream},  {sizeof(int), &per_item},
    };
    if (status == CLCNN_OK)
        status = cpu_launch(ctx, "batchnorm_normalise_planes", spatial, args,
                            sizeof(args) / sizeof(args[0]), plane_items(planes, per_item));
    if (!saved)
        buffer_release(&statistics);
    return status;
}

/* The relu masks of the backward kernels (kernels/batchnorm.cl). */
enum { RELU_FROM_Y = 1, RELU_FROM_X = 2 };

static clcnn_status backward_planes(clcnn_context *ctx, int batch, int channels, int spatial,
                                    float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                    cl_mem grad_x, int accumulate, cl_mem grad_weight,
                                    cl_mem grad_bias, cl_mem saved, cl_mem relu_y,
                                    const batchnorm_residual *residual) {
    cl_mem statistics;
    clcnn_status status = statistics_buffer(ctx, channels, saved, &statistics);
    if (status != CLCNN_OK)
        return status;
    /* Kept statistics mask a fused relu from x, unless a residual was added
     * before it; recomputed ones from relu_y, as the channel kernels do. */
    int mask = relu_y ? RELU_FROM_Y : 0;
    if (saved && relu_y && !residual)
        mask = RELU_FROM_X;
    if (!saved)
        status = plane_statistics(ctx, batch, channels, spatial, eps, 0.0f, x, weight, weight,
                                  weight, weight, statistics, 0);
    const int planes = batch * channels, per_item = planes_per_item(ctx, planes, spatial);
    cl_mem sums, coefficients;
    if (status == CLCNN_OK)
        status = runtime_workspace(ctx, sizeof(float) * 2 * (size_t)planes, &sums);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_BATCHNORM_CHANNELS,
                                 sizeof(float) * 3 * (size_t)channels, &coefficients);
    /* Absent buffers are never touched: x stands in. */
    cl_mem relu_arg = relu_y ? relu_y : x;
    if (status == CLCNN_OK) {
        const kernel_arg args[] = {
            {sizeof(cl_mem), &x},     {sizeof(cl_mem), &grad_y},     {sizeof(cl_mem), &relu_arg},
            {sizeof(int), &mask},     {sizeof(cl_mem), &statistics}, {sizeof(cl_mem), &sums},
            {sizeof(int), &planes},   {sizeof(int), &channels},      {sizeof(int), &spatial},
            {sizeof(int), &per_item},
        };
        status = cpu_launch(ctx, "batchnorm_plane_gradient_sums", spatial, args,
                            sizeof(args) / sizeof(args[0]), plane_items(planes, per_item));
    }
    if (status == CLCNN_OK) {
        const kernel_arg args[] = {
            {sizeof(cl_mem), &sums},      {sizeof(cl_mem), &statistics},
            {sizeof(cl_mem), &weight},    {sizeof(cl_mem), &grad_weight},
            {sizeof(cl_mem), &grad_bias}, {sizeof(cl_mem), &coefficients},
            {sizeof(int), &batch},        {sizeof(int), &channels},
            {sizeof(int), &spatial},
        };
        status = cpu_launch(ctx, "batchnorm_channel_gradient", spatial, args,
                            sizeof(args) / sizeof(args[0]), channels);
    }
    const int want_grad_x = grad_x != NULL;
    const int accumulate32 = accumulate != 0;
    cl_mem grad_x_arg = want_grad_x ? grad_x : x;
    const int want_grad_skip = residual && residual->grad_skip;
    const int accumulate_skip = want_grad_skip && residual->accumulate_skip;
    cl_mem grad_skip = want_grad_skip ? residual->grad_skip : x;
    if (status == CLCNN_OK && (want_grad_x || want_grad_skip)) {
        /* It reads x, grad_y and with RELU_FROM_Y relu_y, and writes its gradients. */
        const int stream = streams_output(ctx, (int64_t)planes * spatial,
                                          2 + (mask == RELU_FROM_Y) + want_grad_x + want_grad_skip);
        const kernel_arg args[] = {
            {sizeof(cl_mem), &x},           {sizeof(cl_mem), &grad_y},
            {sizeof(cl_mem), &relu_arg},    {sizeof(int), &mask},
            {sizeof(cl_mem), &statistics},  {sizeof(cl_mem), &coefficients},
            {sizeof(cl_mem), &grad_x_arg},  {sizeof(int), &want_grad_x},
            {sizeof(int), &accumulate32},   {sizeof(cl_mem), &grad_skip},
            {sizeof(int), &want_grad_skip}, {sizeof(int), &accumulate_skip},
            {sizeof(int), &planes},         {sizeof(int), &channels},
            {sizeof(int), &spatial},        {sizeof(int), &stream},
            {sizeof(int), &per_item},
        };
        status = cpu_launch(ctx, "batchnorm_input_gradient_planes", spatial, args,
                            sizeof(args) / sizeof(args[0]), plane_items(planes, per_item));
    }
    if (!saved)
        buffer_release(&statistics);
    return status;
}

/* A launch of one work-group of `threads` per channel. */
static clcnn_status channel_launch(clcnn_context *ctx, cl_kernel kernel, const char *name,
                                   size_t threads, int channels, const kernel_arg *args,
                                   int count) {
    const size_t local[1] = {threads};
    const size_t global[1] = {(size_t)channels * threads};
    return runtime_launch(ctx, kernel, name, count, args, 1, global, local);
}

clcnn_status batchnorm_forward_train(clcnn_context *ctx, int contiguous, int batch, int channels,
                                     int spatial, float eps, float momentum, cl_mem x,
                                     cl_mem weight, cl_mem bias, cl_mem running_mean,
                                     cl_mem running_var, cl_mem y, cl_mem saved, int relu,
                                     const batchnorm_residual *residual) {
    clcnn_status status =
        check_train(ctx, "batchnorm_forward_train", batch, channels, spatial, eps, momentum);
    if (status != CLCNN_OK)
        return status;
    if (by_planes(contiguous, spatial))
        return forward_train_planes(ctx, batch, channels, spatial, eps, momentum, x, weight, bias,
                                    running_mean, running_var, y, saved, relu, residual);
    cl_kernel kernel;
    size_t threads;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_forward_train", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    /* Without saved the kernel never touches that argument: y stands in. */
    const int save = saved != NULL;
    cl_mem saved_arg = save ? saved : y;
    /* Without a residual the kernel never reads skip: x stands in. */
    const int has_skip = residual != NULL;
    cl_mem skip = has_skip ? residual->skip : x;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},           {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias},        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &y},
        {sizeof(cl_mem), &saved_arg},   {sizeof(int), &save},
        {sizeof(int), &relu},           {sizeof(int), &batch},
        {sizeof(int), &channels},       {sizeof(int), &spatial},
        {sizeof(float), &eps},          {sizeof(float), &momentum},
        {sizeof(cl_mem), &skip},        {sizeof(int), &has_skip},
    };
    return channel_launch(ctx, kernel, "batchnorm_forward_train", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status batchnorm_forward_eval(clcnn_context *ctx, int contiguous, int batch, int channels,
                                    int spatial, float eps, cl_mem x, cl_mem weight, cl_mem bias,
                                    cl_mem running_mean, cl_mem running_var, cl_mem y, int relu) {
    clcnn_status status = check_shape(ctx, "batchnorm_forward_eval", batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    /* The planes kernel's last two arguments; the channel kernel takes the others. */
    const int planes = batch * channels, per_item = planes_per_item(ctx, planes, spatial);
    const int stream = streams_output(ctx, (int64_t)planes * spatial, 2);
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},           {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias},        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &y},
        {sizeof(int), &batch},          {sizeof(int), &channels},
        {sizeof(int), &spatial},        {sizeof(float), &eps},
        {sizeof(int), &relu},           {sizeof(int), &stream},
        {sizeof(int), &per_item},
    };
    const int count = sizeof(args) / sizeof(args[0]);
    if (by_planes(contiguous, spatial))
        return cpu_launch(ctx, "batchnorm_forward_eval_planes", spatial, args, count,
                          plane_items(planes, per_item));
    cl_kernel kernel;
    size_t threads;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_forward_eval", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    return channel_launch(ctx, kernel, "batchnorm_forward_eval", threads, channels, args,
                          count - 2);
}

clcnn_status batchnorm_backward(clcnn_context *ctx, int contiguous, int batch, int channels,
                                int spatial, float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                cl_mem grad_x, int accumulate, cl_mem grad_weight, cl_mem grad_bias,
                                cl_mem saved, cl_mem relu_y, const batchnorm_residual *residual) {
    clcnn_status status = check_shape(ctx, "batchnorm_backward", batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    if (by_planes(contiguous, spatial))
        return backward_planes(ctx, batch, channels, spatial, eps, x, grad_y, weight, grad_x,
                               accumulate, grad_weight, grad_bias, saved, relu_y, residual);
    const char *name = saved ? "batchnorm_backward_saved" : "batchnorm_backward";
    cl_kernel kernel;
    size_t threads;
    status = channel_kernel(ctx, contiguous, spatial, name, &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    const int want_grad_x = grad_x != NULL;
    const int accumulate32 = accumulate != 0;
    /* Without grad_x (relu_y) the kernel never touches that argument: x stands in. */
    cl_mem grad_x_arg = want_grad_x ? grad_x : x;
    const int relu = relu_y != NULL;
    cl_mem relu_arg = relu ? relu_y : x;
    /* Without the skip's gradient the kernels never touch grad_skip: x stands in. */
    const int has_residual = residual != NULL;
    const int want_grad_skip = has_residual && residual->grad_skip;
    const int accumulate_skip = want_grad_skip && residual->accumulate_skip;
    cl_mem grad_skip = want_grad_skip ? residual->grad_skip : x;
    if (saved) {
        const kernel_arg args[] = {
            {sizeof(cl_mem), &x},           {sizeof(cl_mem), &grad_y},
            {sizeof(int), &relu},           {sizeof(cl_mem), &weight},
            {sizeof(cl_mem), &saved},       {sizeof(cl_mem), &grad_x_arg},
            {sizeof(cl_mem), &grad_weight}, {sizeof(cl_mem), &grad_bias},
            {sizeof(int), &batch},          {sizeof(int), &channels},
            {sizeof(int), &spatial},        {sizeof(int), &want_grad_x},
            {sizeof(int), &accumulate32},   {sizeof(cl_mem), &relu_arg},
            {sizeof(int), &has_residual},   {sizeof(cl_mem), &grad_skip},
            {sizeof(int), &want_grad_skip}, {sizeof(int), &accumulate_skip},
        };
        return channel_launch(ctx, kernel, name, threads, channels, args,
                              sizeof(args) / sizeof(args[0]));
    }
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},
        {sizeof(cl_mem), &grad_y},
        {sizeof(cl_mem), &relu_arg},
        {sizeof(int), &relu},
        {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &grad_x_arg},
        {sizeof(cl_mem), &grad_weight},
        {sizeof(cl_mem), &grad_bias},
        {sizeof(int), &batch},
        {sizeof(int), &channels},
        {sizeof(int), &spatial},
        {sizeof(float), &eps},
        {sizeof(int), &want_grad_x},
        {sizeof(int), &accumulate32},
        {sizeof(cl_mem), &grad_skip},
        {sizeof(int), &want_grad_skip},
        {sizeof(int), &accumulate_skip},
    };
    return channel_launch(ctx, kernel, "batchnorm_backward", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status batchnorm_backward_eval(clcnn_context *ctx, int contiguous, int batch, int channels,
                                     int spatial, float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                     cl_mem running_mean, cl_mem running_var, cl_mem grad_x,
                                     int accumulate, cl_mem grad_weight, cl_mem grad_bias) {
    clcnn_status status =
        check_shape(ctx, "batchnorm_backward_eval", batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    size_t threads;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_backward_eval", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    const int want_grad_x = grad_x != NULL, want_params = grad_weight != NULL;
    const int accumulate32 = accumulate != 0;
    /* The kernel never touches an argument it is told is not wanted: x and
     * running_var stand in. */
    cl_mem grad_x_arg = want_grad_x ? grad_x : x;
    cl_mem grad_weight_arg = want_params ? grad_weight : running_var;
    cl_mem grad_bias_arg = want_params ? grad_bias : running_var;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},
        {sizeof(cl_mem), &grad_y},
        {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var},
        {sizeof(cl_mem), &grad_x_arg},
        {sizeof(cl_mem), &grad_weight_arg},
        {sizeof(cl_mem), &grad_bias_arg},
        {sizeof(int), &batch},
        {sizeof(int), &channels},
        {sizeof(int), &spatial},
        {sizeof(float), &eps},
        {sizeof(int), &want_grad_x},
        {sizeof(int), &want_params},
        {sizeof(int), &accumulate32},
    };
    return channel_launch(ctx, kernel, "batchnorm_backward_eval", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status batchnorm_fold(clcnn_context *ctx, int channels, int per_channel, float eps,
                            cl_mem weight, cl_mem bias, cl_mem bn_weight, cl_mem bn_bias,
                            cl_mem running_mean, cl_mem running_var, cl_mem folded_weight,
                            cl_mem folded_bias) {
    clcnn_status status = check_shape(ctx, "batchnorm_fold", 1, channels, per_channel, eps);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    status = runtime_get_kernel(ctx, "batchnorm", "batchnorm_fold", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int has_bias = bias != NULL;
    /* Without a bias the kernel never reads that argument: weight stands in. */
    cl_mem bias_arg = has_bias ? bias : weight;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &bias_arg},
        {sizeof(int), &has_bias},       {sizeof(cl_mem), &bn_weight},
        {sizeof(cl_mem), &bn_bias},     {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &folded_weight},
        {sizeof(cl_mem), &folded_bias}, {sizeof(int), &channels},
        {sizeof(int), &per_channel},    {sizeof(float), &eps},
    };
    /* A work-group of the runtime's choosing would be the whole launch, and
     * PoCL builds a kernel anew for each work-group size it meets: one build
     * for every channel count. */
    return runtime_launch_runs(ctx, kernel, "batchnorm_fold", sizeof(args) / sizeof(args[0]), args,
                               (int64_t)channels * per_channel + channels);
}

/* ---- entry points ---------------------------------------------------------------------- */

/* An error naming the first of count tensors that is missing, else CLCNN_OK. */
static clcnn_status require(clcnn_context *ctx, const char *what, int count, const buf *bufs,
                            const char *const *names) {
    for (int i = 0; i < count; i++)
        if (!buf_present(ctx, bufs[i]))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: no %s", what, names[i]);
    return CLCNN_OK;
}

/* A fused relu is the OpenCL kernels' (the graph fuses only there). */
static clcnn_status require_opencl_for_relu(clcnn_context *ctx, const char *what, int relu) {
    if (relu && !context_is_opencl(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the reference runs a relu or an add as a layer of its own", what);
    return CLCNN_OK;
}

/* ---- synchronised across ranks (ops/batchnorm.h) ----------------------------------------- */

int64_t batchnorm_sync_floats(int channels) {
    return 1 + (int64_t)BATCHNORM_DEVICE_FLOATS * channels;
}

void batchnorm_combine_moments(const double *all, int ranks, int64_t stride, int64_t at,
                               double *count, double *mean, double *m2) {
    double n = 0.0, mu = 0.0, squares = 0.0;
    for (int r = 0; r < ranks; r++) {
        const double *part = all + (int64_t)r * stride;
        const double n_r = part[0];
        if (n_r == 0.0)
            continue; /* a rank without images adds nothing */
        const double total = n + n_r;
        const double delta = part[at] - mu;
        mu += delta * (n_r / total);
        squares += part[at + 1] + delta * delta * (n * n_r / total);
        n = total;
    }
    *count = n;
    *mean = mu;
    *m2 = squares;
}

void batchnorm_combine_forward(const double *all, int ranks, int64_t stride, int channels,
                               double *combined) {
    for (int c = 0; c < channels; c++) {
        double n, mean, m2;
        batchnorm_combine_moments(all, ranks, stride, 1 + (int64_t)c * BATCHNORM_FORWARD_FIELDS, &n,
                                  &mean, &m2);
        double *out = combined + 1 + (int64_t)c * BATCHNORM_FORWARD_COMBINED;
        out[0] = mean;
        out[1] = m2 / n;
        out[2] = m2 / (n - 1.0);
        combined[0] = n;
    }
}

void batchnorm_combine_backward(const double *all, int ranks, int64_t stride, const double *mine,
                                int channels, float eps, double *combined) {
    const double own = mine[0];
    for (int c = 0; c < channels; c++) {
        const int64_t at = 1 + (int64_t)c * BATCHNORM_BACKWARD_FIELDS;
        double n, mean, m2;
        batchnorm_combine_moments(all, ranks, stride, at, &n, &mean, &m2);
        const double invstd = 1.0 / sqrt(m2 / n + eps);
        /* The ranks' sums in this rank's scale (ops/batchnorm.h), and sums
         * of dy * (x - mean) moved from each rank's own mean to the global
         * one: sum(dy (x - mean)) = sum(dy (x - mean_q)) + (mean_q - mean) sum(dy). */
        double sum_dy = 0.0, sum_dy_dev = 0.0;
        for (int q = 0; q < ranks && own > 0.0; q++) {
            const double *part = all + (int64_t)q * stride;
            if (part[0] == 0.0)
                continue;
            const double weight = part[0] / own;
            sum_dy += weight * part[at + 2];
            sum_dy_dev += weight * (part[at + 3] + (part[at] - mean) * part[at + 2]);
        }
        const double *m = mine + at;
        double *out = combined + 1 + (int64_t)c * BATCHNORM_BACKWARD_COMBINED;
        out[0] = mean;
        out[1] = invstd;
        out[2] = sum_dy;
        out[3] = sum_dy_dev * invstd;
        out[4] = (m[3] + (m[0] - mean) * m[2]) * invstd;
        out[5] = m[2];
        combined[0] = n;
    }
}

/* The sync ops' checks: batch may be 0 (a rank without images), and the
 * exchange's buffers must hold the layer's. */
static clcnn_status check_sync(clcnn_context *ctx, const char *what, const rank_sync *sync,
                               int batch, int channels, int spatial, float eps) {
    clcnn_status status = check_shape(ctx, what, batch > 0 ? batch : 1, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    if (batch < 0 || !sync || !sync->gather || sync->ranks < 1 ||
        sync->capacity < batchnorm_sync_floats(channels))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: no exchange of batch statistics for %d channels and batch %d", what,
                         channels, batch);
    return CLCNN_OK;
}

/* This rank's contribution (ops/batchnorm.h) on an OpenCL device: the
 * batchnorm_moments kernel's sums about a rough mean, read to the host and
 * turned into the mean and M2 in double. grad_y NULL in forward. */
static clcnn_status device_contribution(clcnn_context *ctx, rank_sync *sync, int batch,
                                        int channels, int spatial, cl_mem x, cl_mem grad_y) {
    const int with_gradient = grad_y != NULL;
    const int fields = with_gradient ? BATCHNORM_BACKWARD_FIELDS : BATCHNORM_FORWARD_FIELDS;
    const int sums = with_gradient ? 5 : 3; /* per channel, from the kernel */
    const double count = (double)batch * spatial;
    double *out = sync->mine;
    out[0] = count;
    if (batch == 0) {
        memset(out + 1, 0, sizeof(double) * (size_t)fields * (size_t)channels);
        return CLCNN_OK;
    }
    cl_kernel kernel;
    size_t threads;
    clcnn_status status = channel_kernel(ctx, batchnorm_contiguous_walk(ctx), spatial,
                                         "batchnorm_moments", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    /* Without a gradient the kernel never reads grad_y: x stands in. */
    cl_mem grad_y_arg = with_gradient ? grad_y : x;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},
        {sizeof(cl_mem), &grad_y_arg},
        {sizeof(cl_mem), &sync->device},
        {sizeof(int), &batch},
        {sizeof(int), &channels},
        {sizeof(int), &spatial},
        {sizeof(int), &with_gradient},
    };
    status = channel_launch(ctx, kernel, "batchnorm_moments", threads, channels, args,
                            sizeof(args) / sizeof(args[0]));
    if (status == CLCNN_OK)
        status = buffer_read(ctx, sync->device, 0, sizeof(float) * (size_t)sums * (size_t)channels,
                             sync->floats);
    if (status != CLCNN_OK)
        return status;
    for (int c = 0; c < channels; c++) {
        const float *m = sync->floats + (int64_t)c * sums;
        double *o = out + 1 + (int64_t)c * fields;
        const double correction = m[1] / count;
        const double squares = m[2] - m[1] * correction;
        o[0] = m[0] + correction;
        o[1] = squares < 0.0 ? 0.0 : squares; /* a NaN stays */
        if (with_gradient) {
            o[2] = m[3];
            o[3] = m[4] - correction * m[3];
        }
    }
    return CLCNN_OK;
}

/* Every rank's contribution of count doubles into sync->all. */
static clcnn_status exchange(clcnn_context *ctx, rank_sync *sync, int64_t count, const char *what) {
    clcnn_status status = sync->gather(sync->user, sync->mine, sync->all, count);
    if (status != CLCNN_OK)
        return set_error(ctx, status, "%s: the batch statistics hook returned %s", what,
                         clcnn_status_name(status));
    return CLCNN_OK;
}

/* As PyTorch: a batch statistic of one value has no variance. Every rank
 * sees the same count, so every rank stops alike. */
static clcnn_status check_global_count(clcnn_context *ctx, const char *what, double count) {
    if (count < 2.0)
        return set_error(ctx, CLCNN_ERROR_SHAPE,
                         "%s: training needs more than one value per channel, but the ranks' "
                         "batch has %.0f",
                         what, count);
    return CLCNN_OK;
}

/* A double as two floats whose sum is it to about 2^-48 (hi, then lo). */
static void split_double(double value, float *hi, float *lo) {
    *hi = (float)value;
    *lo = (float)(value - *hi);
}

clcnn_status op_batchnorm_forward_train_sync(clcnn_context *ctx, rank_sync *sync, int batch,
                                             int channels, int spatial, float eps, float momentum,
                                             buf x, buf weight, buf bias, buf running_mean,
                                             buf running_var, buf y) {
    const char *what = "op_batchnorm_forward_train_sync";
    static const char *const names[] = {"x", "weight", "bias", "running_mean", "running_var", "y"};
    const buf bufs[] = {x, weight, bias, running_mean, running_var, y};
    clcnn_status status = check_sync(ctx, what, sync, batch, channels, spatial, eps);
    if (status == CLCNN_OK && !(momentum >= 0.0f && momentum <= 1.0f))
        status = set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                           "%s: momentum must be between 0 and 1, got %g", what, (double)momentum);
    if (status == CLCNN_OK)
        status = require(ctx, what, 6, bufs, names);
    if (status != CLCNN_OK)
        return status;
    const int opencl = context_is_opencl(ctx);
    if (opencl)
        status = device_contribution(ctx, sync, batch, channels, spatial, x.mem, NULL);
    else
        batchnorm_contribution_ref(batch, channels, spatial, x.host, NULL, sync->mine);
    if (status == CLCNN_OK)
        status = exchange(ctx, sync, 1 + (int64_t)BATCHNORM_FORWARD_FIELDS * channels, what);
    if (status != CLCNN_OK)
        return status;
    double *combined = sync->combined;
    batchnorm_combine_forward(sync->all, sync->ranks,
                              1 + (int64_t)BATCHNORM_FORWARD_FIELDS * channels, channels, combined);
    status = check_global_count(ctx, what, combined[0]);
    if (status != CLCNN_OK)
        return status;
    if (!opencl) {
        batchnorm_forward_apply_ref(batch, channels, spatial, eps, momentum, combined, x.host,
                                    weight.host, bias.host, running_mean.host, running_var.host,
                                    y.host);
        return CLCNN_OK;
    }
    /* Per channel: the mean as two floats, the variance, the unbiased one. */
    for (int c = 0; c < channels; c++) {
        const double *s = combined + 1 + (int64_t)c * BATCHNORM_FORWARD_COMBINED;
        float *f = sync->floats + (int64_t)c * 4;
        split_double(s[0], &f[0], &f[1]);
        f[2] = (float)s[1];
        f[3] = (float)s[2];
    }
    status = buffer_write(ctx, sync->device, 0, sizeof(float) * 4 * (size_t)channels, sync->floats);
    cl_kernel kernel;
    size_t threads;
    if (status == CLCNN_OK)
        status = channel_kernel(ctx, batchnorm_contiguous_walk(ctx), spatial,
                                "batchnorm_forward_apply", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x.mem},
        {sizeof(cl_mem), &weight.mem},
        {sizeof(cl_mem), &bias.mem},
        {sizeof(cl_mem), &sync->device},
        {sizeof(cl_mem), &running_mean.mem},
        {sizeof(cl_mem), &running_var.mem},
        {sizeof(cl_mem), &y.mem},
        {sizeof(int), &batch},
        {sizeof(int), &channels},
        {sizeof(int), &spatial},
        {sizeof(float), &eps},
        {sizeof(float), &momentum},
    };
    return channel_launch(ctx, kernel, "batchnorm_forward_apply", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status op_batchnorm_backward_sync(clcnn_context *ctx, rank_sync *sync, int batch,
                                        int channels, int spatial, float eps, buf x, buf grad_y,
                                        buf weight, buf grad_x, int accumulate, buf grad_weight,
                                        buf grad_bias) {
    const char *what = "op_batchnorm_backward_sync";
    static const char *const names[] = {"x", "grad_y", "weight", "grad_weight", "grad_bias"};
    const buf bufs[] = {x, grad_y, weight, grad_weight, grad_bias};
    clcnn_status status = check_sync(ctx, what, sync, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 5, bufs, names);
    if (status != CLCNN_OK)
        return status;
    const int opencl = context_is_opencl(ctx);
    const int64_t stride = 1 + (int64_t)BATCHNORM_BACKWARD_FIELDS * channels;
    if (opencl)
        status = device_contribution(ctx, sync, batch, channels, spatial, x.mem, grad_y.mem);
    else
        batchnorm_contribution_ref(batch, channels, spatial, x.host, grad_y.host, sync->mine);
    if (status == CLCNN_OK)
        status = exchange(ctx, sync, stride, what);
    if (status != CLCNN_OK)
        return status;
    double *combined = sync->combined;
    batchnorm_combine_backward(sync->all, sync->ranks, stride, sync->mine, channels, eps, combined);
    status = check_global_count(ctx, what, combined[0]);
    if (status != CLCNN_OK)
        return status;
    const int want_grad_x = buf_present(ctx, grad_x);
    if (!opencl) {
        batchnorm_backward_apply_ref(batch, channels, spatial, combined, x.host, grad_y.host,
                                     weight.host, want_grad_x ? grad_x.host : NULL, accumulate,
                                     grad_weight.host, grad_bias.host);
        return CLCNN_OK;
    }
    /* Per channel the kernel's coefficients (kernels/batchnorm.cl): the mean
     * as two floats, invstd, mean_dy = sum_dy / M, k = sum(dy (x - mean))
     * invstd^2 / M, and this rank's grad_weight and grad_bias. */
    const double count = combined[0];
    for (int c = 0; c < channels; c++) {
        const double *s = combined + 1 + (int64_t)c * BATCHNORM_BACKWARD_COMBINED;
        float *f = sync->floats + (int64_t)c * BATCHNORM_DEVICE_FLOATS;
        split_double(s[0], &f[0], &f[1]);
        f[2] = (float)s[1];
        f[3] = (float)(s[2] / count);
        f[4] = (float)(s[3] * s[1] / count);
        f[5] = (float)s[4];
        f[6] = (float)s[5];
    }
    status = buffer_write(ctx, sync->device, 0,
                          sizeof(float) * BATCHNORM_DEVICE_FLOATS * (size_t)channels, sync->floats);
    cl_kernel kernel;
    size_t threads;
    if (status == CLCNN_OK)
        status = channel_kernel(ctx, batchnorm_contiguous_walk(ctx), spatial,
                                "batchnorm_backward_apply", &kernel, &threads);
    if (status != CLCNN_OK)
        return status;
    const int accumulate32 = accumulate != 0;
    /* Without grad_x the kernel never touches that argument: x stands in. */
    cl_mem grad_x_arg = want_grad_x ? grad_x.mem : x.mem;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x.mem},         {sizeof(cl_mem), &grad_y.mem},
        {sizeof(cl_mem), &weight.mem},    {sizeof(cl_mem), &sync->device},
        {sizeof(cl_mem), &grad_x_arg},    {sizeof(cl_mem), &grad_weight.mem},
        {sizeof(cl_mem), &grad_bias.mem}, {sizeof(int), &batch},
        {sizeof(int), &channels},         {sizeof(int), &spatial},
        {sizeof(int), &want_grad_x},      {sizeof(int), &accumulate32},
    };
    return channel_launch(ctx, kernel, "batchnorm_backward_apply", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status op_batchnorm_forward_train(clcnn_context *ctx, int batch, int channels, int spatial,
                                        float eps, float momentum, buf x, buf weight, buf bias,
                                        buf running_mean, buf running_var, buf y, buf saved,
                                        int relu, const batchnorm_residual *residual) {
    const char *what = "op_batchnorm_forward_train";
    static const char *const names[] = {"x", "weight", "bias", "running_mean", "running_var", "y"};
    const buf bufs[] = {x, weight, bias, running_mean, running_var, y};
    clcnn_status status = check_train(ctx, what, batch, channels, spatial, eps, momentum);
    if (status == CLCNN_OK)
        status = require(ctx, what, 6, bufs, names);
    if (status == CLCNN_OK)
        status = require_opencl_for_relu(ctx, what, relu || residual);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_forward_train(ctx, batchnorm_contiguous_walk(ctx), batch, channels,
                                       spatial, eps, momentum, x.mem, weight.mem, bias.mem,
                                       running_mean.mem, running_var.mem, y.mem, saved.mem, relu,
                                       residual);
    batchnorm_forward_train_ref(batch, channels, spatial, eps, momentum, x.host, weight.host,
                                bias.host, running_mean.host, running_var.host, y.host);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_forward_eval(clcnn_context *ctx, int batch, int channels, int spatial,
                                       float eps, buf x, buf weight, buf bias, buf running_mean,
                                       buf running_var, buf y, int relu) {
    const char *what = "op_batchnorm_forward_eval";
    static const char *const names[] = {"x", "weight", "bias", "running_mean", "running_var", "y"};
    const buf bufs[] = {x, weight, bias, running_mean, running_var, y};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 6, bufs, names);
    if (status == CLCNN_OK)
        status = require_opencl_for_relu(ctx, what, relu);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_forward_eval(ctx, batchnorm_contiguous_walk(ctx), batch, channels, spatial,
                                      eps, x.mem, weight.mem, bias.mem, running_mean.mem,
                                      running_var.mem, y.mem, relu);
    batchnorm_forward_eval_ref(batch, channels, spatial, eps, x.host, weight.host, bias.host,
                               running_mean.host, running_var.host, y.host);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                   float eps, buf x, buf grad_y, buf weight, buf grad_x,
                                   int accumulate, buf grad_weight, buf grad_bias, buf saved,
                                   buf relu_y, const batchnorm_residual *residual) {
    const char *what = "op_batchnorm_backward";
    static const char *const names[] = {"x", "grad_y", "weight", "grad_weight", "grad_bias"};
    const buf bufs[] = {x, grad_y, weight, grad_weight, grad_bias};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 5, bufs, names);
    if (status == CLCNN_OK)
        status = require_opencl_for_relu(ctx, what, buf_present(ctx, relu_y) || residual);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_backward(ctx, batchnorm_contiguous_walk(ctx), batch, channels, spatial,
                                  eps, x.mem, grad_y.mem, weight.mem,
                                  buf_present(ctx, grad_x) ? grad_x.mem : NULL, accumulate,
                                  grad_weight.mem, grad_bias.mem, saved.mem, relu_y.mem, residual);
    batchnorm_backward_ref(batch, channels, spatial, eps, x.host, grad_y.host, weight.host,
                           buf_present(ctx, grad_x) ? grad_x.host : NULL, accumulate,
                           grad_weight.host, grad_bias.host);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_backward_eval(clcnn_context *ctx, int batch, int channels, int spatial,
                                        float eps, buf x, buf grad_y, buf weight, buf running_mean,
                                        buf running_var, buf grad_x, int accumulate,
                                        buf grad_weight, buf grad_bias) {
    const char *what = "op_batchnorm_backward_eval";
    /* A frozen layer wants no parameter gradients: both absent. */
    const int want_params = buf_present(ctx, grad_weight);
    static const char *const names[] = {"x",           "grad_y",      "weight",   "running_mean",
                                        "running_var", "grad_weight", "grad_bias"};
    const buf bufs[] = {x, grad_y, weight, running_mean, running_var, grad_weight, grad_bias};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, want_params ? 7 : 5, bufs, names);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_backward_eval(
            ctx, batchnorm_contiguous_walk(ctx), batch, channels, spatial, eps, x.mem, grad_y.mem,
            weight.mem, running_mean.mem, running_var.mem,
            buf_present(ctx, grad_x) ? grad_x.mem : NULL, accumulate,
            want_params ? grad_weight.mem : NULL, want_params ? grad_bias.mem : NULL);
    batchnorm_backward_eval_ref(
        batch, channels, spatial, eps, x.host, grad_y.host, weight.host, running_mean.host,
        running_var.host, buf_present(ctx, grad_x) ? grad_x.host : NULL, accumulate,
        want_params ? grad_weight.host : NULL, want_params ? grad_bias.host : NULL);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_fold(clcnn_context *ctx, int channels, int per_channel, float eps,
                               buf weight, buf bias, buf bn_weight, buf bn_bias, buf running_mean,
                               buf running_var, buf folded_weight, buf folded_bias) {
    const char *what = "op_batchnorm_fold";
    static const char *const names[] = {"weight",       "bn_weight",   "bn_bias",
                                        "running_mean", "running_var", "folded_weight",
                                        "folded_bias"};
    const buf bufs[] = {weight,      bn_weight,     bn_bias,    running_mean,
                        running_var, folded_weight, folded_bias};
    clcnn_status status = check_shape(ctx, what, 1, channels, per_channel, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 7, bufs, names);
    if (status != CLCNN_OK)
        return status;
    const int has_bias = buf_present(ctx, bias);
    if (context_is_opencl(ctx))
        return batchnorm_fold(
            ctx, channels, per_channel, eps, weight.mem, has_bias ? bias.mem : NULL, bn_weight.mem,
            bn_bias.mem, running_mean.mem, running_var.mem, folded_weight.mem, folded_bias.mem);
    batchnorm_fold_ref(channels, per_channel, eps, weight.host, has_bias ? bias.host : NULL,
                       bn_weight.host, bn_bias.host, running_mean.host, running_var.host,
                       folded_weight.host, folded_bias.host);
    return CLCNN_OK;
}
