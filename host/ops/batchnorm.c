/* Batch normalisation on the OpenCL device (kernels/batchnorm.cl), and the
 * entry points that run it or the reference (host/ref/batchnorm.c). */
#include "batchnorm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>

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
    return (ctx->device_type & CL_DEVICE_TYPE_CPU) != 0;
}

/* The floats per element of the kernels' walks (BATCHNORM_VW): on CPUs
 * (contiguous walks) the widest of 8, 4, 2 that divides H * W, so every
 * image's plane starts a whole vector; 1 for the strided walk of GPUs, whose
 * neighbouring work-items already read neighbouring floats. */
static int vector_width(int contiguous, int spatial) {
    if (!contiguous)
        return 1;
    for (int vw = 8; vw > 1; vw /= 2)
        if (spatial % vw == 0)
            return vw;
    return 1;
}

/* One of the kernels with its work-group size: BATCHNORM_THREADS work-items
 * per channel (128, enough to keep a long channel's loads in flight), halved
 * until both the device and the compiled kernel accept the group; and the
 * spatial size it takes, in vectors. */
static clcnn_status channel_kernel(clcnn_context *ctx, int contiguous, int spatial,
                                   const char *name, cl_kernel *kernel, size_t *threads,
                                   int *vectors) {
    const int vw = vector_width(contiguous, spatial);
    *vectors = spatial / vw; /* the kernel's spatial, in vectors of vw */
    size_t wanted = 128;
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
                                     cl_mem running_var, cl_mem y) {
    clcnn_status status =
        check_train(ctx, "batchnorm_forward_train", batch, channels, spatial, eps, momentum);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    size_t threads;
    int vectors;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_forward_train", &kernel, &threads,
                            &vectors);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},           {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias},        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &y},
        {sizeof(int), &batch},          {sizeof(int), &channels},
        {sizeof(int), &vectors},        {sizeof(float), &eps},
        {sizeof(float), &momentum},
    };
    return channel_launch(ctx, kernel, "batchnorm_forward_train", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status batchnorm_forward_eval(clcnn_context *ctx, int contiguous, int batch, int channels,
                                    int spatial, float eps, cl_mem x, cl_mem weight, cl_mem bias,
                                    cl_mem running_mean, cl_mem running_var, cl_mem y) {
    clcnn_status status = check_shape(ctx, "batchnorm_forward_eval", batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    size_t threads;
    int vectors;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_forward_eval", &kernel, &threads,
                            &vectors);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},           {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &bias},        {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &y},
        {sizeof(int), &batch},          {sizeof(int), &channels},
        {sizeof(int), &vectors},        {sizeof(float), &eps},
    };
    return channel_launch(ctx, kernel, "batchnorm_forward_eval", threads, channels, args,
                          sizeof(args) / sizeof(args[0]));
}

clcnn_status batchnorm_backward(clcnn_context *ctx, int contiguous, int batch, int channels,
                                int spatial, float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                cl_mem grad_x, int accumulate, cl_mem grad_weight,
                                cl_mem grad_bias) {
    clcnn_status status = check_shape(ctx, "batchnorm_backward", batch, channels, spatial, eps);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    size_t threads;
    int vectors;
    status =
        channel_kernel(ctx, contiguous, spatial, "batchnorm_backward", &kernel, &threads, &vectors);
    if (status != CLCNN_OK)
        return status;
    const int want_grad_x = grad_x != NULL;
    const int accumulate32 = accumulate != 0;
    /* Without grad_x the kernel never touches that argument: x stands in. */
    cl_mem grad_x_arg = want_grad_x ? grad_x : x;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},          {sizeof(cl_mem), &grad_y},      {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &grad_x_arg}, {sizeof(cl_mem), &grad_weight}, {sizeof(cl_mem), &grad_bias},
        {sizeof(int), &batch},         {sizeof(int), &channels},       {sizeof(int), &vectors},
        {sizeof(float), &eps},         {sizeof(int), &want_grad_x},    {sizeof(int), &accumulate32},
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
    int vectors;
    status = channel_kernel(ctx, contiguous, spatial, "batchnorm_backward_eval", &kernel, &threads,
                            &vectors);
    if (status != CLCNN_OK)
        return status;
    const int want_grad_x = grad_x != NULL;
    const int accumulate32 = accumulate != 0;
    /* Without grad_x the kernel never touches that argument: x stands in. */
    cl_mem grad_x_arg = want_grad_x ? grad_x : x;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &x},           {sizeof(cl_mem), &grad_y},
        {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &running_mean},
        {sizeof(cl_mem), &running_var}, {sizeof(cl_mem), &grad_x_arg},
        {sizeof(cl_mem), &grad_weight}, {sizeof(cl_mem), &grad_bias},
        {sizeof(int), &batch},          {sizeof(int), &channels},
        {sizeof(int), &vectors},        {sizeof(float), &eps},
        {sizeof(int), &want_grad_x},    {sizeof(int), &accumulate32},
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
    const size_t global[1] = {(size_t)channels * (size_t)per_channel + (size_t)channels};
    return runtime_launch(ctx, kernel, "batchnorm_fold", sizeof(args) / sizeof(args[0]), args, 1,
                          global, NULL);
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

clcnn_status op_batchnorm_forward_train(clcnn_context *ctx, int batch, int channels, int spatial,
                                        float eps, float momentum, buf x, buf weight, buf bias,
                                        buf running_mean, buf running_var, buf y) {
    const char *what = "op_batchnorm_forward_train";
    static const char *const names[] = {"x", "weight", "bias", "running_mean", "running_var", "y"};
    const buf bufs[] = {x, weight, bias, running_mean, running_var, y};
    clcnn_status status = check_train(ctx, what, batch, channels, spatial, eps, momentum);
    if (status == CLCNN_OK)
        status = require(ctx, what, 6, bufs, names);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_forward_train(ctx, batchnorm_contiguous_walk(ctx), batch, channels,
                                       spatial, eps, momentum, x.mem, weight.mem, bias.mem,
                                       running_mean.mem, running_var.mem, y.mem);
    batchnorm_forward_train_ref(batch, channels, spatial, eps, momentum, x.host, weight.host,
                                bias.host, running_mean.host, running_var.host, y.host);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_forward_eval(clcnn_context *ctx, int batch, int channels, int spatial,
                                       float eps, buf x, buf weight, buf bias, buf running_mean,
                                       buf running_var, buf y) {
    const char *what = "op_batchnorm_forward_eval";
    static const char *const names[] = {"x", "weight", "bias", "running_mean", "running_var", "y"};
    const buf bufs[] = {x, weight, bias, running_mean, running_var, y};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 6, bufs, names);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_forward_eval(ctx, batchnorm_contiguous_walk(ctx), batch, channels, spatial,
                                      eps, x.mem, weight.mem, bias.mem, running_mean.mem,
                                      running_var.mem, y.mem);
    batchnorm_forward_eval_ref(batch, channels, spatial, eps, x.host, weight.host, bias.host,
                               running_mean.host, running_var.host, y.host);
    return CLCNN_OK;
}

clcnn_status op_batchnorm_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                   float eps, buf x, buf grad_y, buf weight, buf grad_x,
                                   int accumulate, buf grad_weight, buf grad_bias) {
    const char *what = "op_batchnorm_backward";
    static const char *const names[] = {"x", "grad_y", "weight", "grad_weight", "grad_bias"};
    const buf bufs[] = {x, grad_y, weight, grad_weight, grad_bias};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 5, bufs, names);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_backward(ctx, batchnorm_contiguous_walk(ctx), batch, channels, spatial,
                                  eps, x.mem, grad_y.mem, weight.mem,
                                  buf_present(ctx, grad_x) ? grad_x.mem : NULL, accumulate,
                                  grad_weight.mem, grad_bias.mem);
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
    static const char *const names[] = {"x",           "grad_y",      "weight",   "running_mean",
                                        "running_var", "grad_weight", "grad_bias"};
    const buf bufs[] = {x, grad_y, weight, running_mean, running_var, grad_weight, grad_bias};
    clcnn_status status = check_shape(ctx, what, batch, channels, spatial, eps);
    if (status == CLCNN_OK)
        status = require(ctx, what, 7, bufs, names);
    if (status != CLCNN_OK)
        return status;
    if (context_is_opencl(ctx))
        return batchnorm_backward_eval(ctx, batchnorm_contiguous_walk(ctx), batch, channels,
                                       spatial, eps, x.mem, grad_y.mem, weight.mem,
                                       running_mean.mem, running_var.mem,
                                       buf_present(ctx, grad_x) ? grad_x.mem : NULL, accumulate,
                                       grad_weight.mem, grad_bias.mem);
    batchnorm_backward_eval_ref(batch, channels, spatial, eps, x.host, grad_y.host, weight.host,
                                running_mean.host, running_var.host,
                                buf_present(ctx, grad_x) ? grad_x.host : NULL, accumulate,
                                grad_weight.host, grad_bias.host);
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
