/* Max and average pooling on the OpenCL device: kernels/pool2d.cl. */
#include "ops.h"

#include <stdio.h>

/* The kernels index the input and the output with int. */
static clcnn_status check_int_sizes(clcnn_context *ctx, const pool2d_params *p) {
    const int64_t planes = (int64_t)p->batch * p->channels;
    clcnn_status status =
        require_int_size(ctx, "pooling input", planes * p->in_height * p->in_width);
    if (status == CLCNN_OK)
        status = require_int_size(ctx, "pooling output", planes * p->out_height * p->out_width);
    return status;
}

clcnn_status pool2d_forward(clcnn_context *ctx, const pool2d_params *p, cl_mem input,
                            cl_mem output) {
    const int pad_bottom = pool2d_pad_bottom(p), pad_right = pool2d_pad_right(p);
    const char *name = p->kind == POOL_MAX ? "maxpool2d_forward" : "avgpool2d_forward";
    char options[64];
    snprintf(options, sizeof(options), "-DWINDOW_H=%d -DWINDOW_W=%d", p->size_h, p->size_w);
    cl_kernel kernel;
    clcnn_status status = check_int_sizes(ctx, p);
    if (status == CLCNN_OK)
        status = runtime_get_kernel(ctx, "pool2d", name, options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int total = p->batch * p->channels * p->out_height * p->out_width;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},       {sizeof(cl_mem), &output},   {sizeof(int), &p->channels},
        {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width}, {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},   {sizeof(int), &p->size_h},   {sizeof(int), &p->size_w},
        {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w}, {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},    {sizeof(int), &pad_bottom},  {sizeof(int), &pad_right},
        {sizeof(int), &p->exclude_pad}, {sizeof(int), &total},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)total};
    return runtime_launch(ctx, kernel, name, sizeof(args) / sizeof(args[0]), args, 1, global,
                          local);
}

clcnn_status pool2d_backward(clcnn_context *ctx, const pool2d_params *p, cl_mem input,
                             cl_mem grad_output, cl_mem grad_input) {
    const int pad_bottom = pool2d_pad_bottom(p), pad_right = pool2d_pad_right(p);
    const int is_max = p->kind == POOL_MAX;
    /* Windows that do not overlap scatter, one work-item per output, into a
     * zeroed gradient; overlapping ones gather, one work-item per input
     * element (see kernels/pool2d.cl). */
    const int scatter = p->stride_h >= p->size_h && p->stride_w >= p->size_w;
    const char *name = scatter
                           ? (is_max ? "maxpool2d_backward_scatter" : "avgpool2d_backward_scatter")
                           : (is_max ? "maxpool2d_backward" : "avgpool2d_backward");
    char options[64];
    snprintf(options, sizeof(options), "-DWINDOW_H=%d -DWINDOW_W=%d", p->size_h, p->size_w);
    cl_kernel kernel;
    clcnn_status status = check_int_sizes(ctx, p);
    if (status == CLCNN_OK)
        status = runtime_get_kernel(ctx, "pool2d", name, options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int in_count = p->batch * p->channels * p->in_height * p->in_width;
    /* Windows that tile the input exactly write every element themselves. */
    const int tiled_exactly = p->stride_h == p->size_h && p->stride_w == p->size_w &&
                              p->pad_top == 0 && p->pad_left == 0 && pad_bottom == 0 &&
                              pad_right == 0 && p->out_height * p->stride_h == p->in_height &&
                              p->out_width * p->stride_w == p->in_width;
    if (scatter && !tiled_exactly) {
        const float zero = 0.0f;
        status = cl_check(ctx,
                          clEnqueueFillBuffer(ctx->queue, grad_input, &zero, sizeof(zero), 0,
                                              sizeof(float) * (size_t)in_count, 0, NULL, NULL),
                          "clEnqueueFillBuffer");
        if (status != CLCNN_OK)
            return status;
    }
    const int total = scatter ? p->batch * p->channels * p->out_height * p->out_width : in_count;
    const kernel_arg shape_args[] = {
        {sizeof(int), &p->channels},   {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_height}, {sizeof(int), &p->out_width},   {sizeof(int), &p->size_h},
        {sizeof(int), &p->size_w},     {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},    {sizeof(int), &p->pad_left},    {sizeof(int), &pad_bottom},
        {sizeof(int), &pad_right},     {sizeof(int), &p->exclude_pad}, {sizeof(int), &total},
    };
    enum { SHAPE_ARG_COUNT = sizeof(shape_args) / sizeof(shape_args[0]) };
    /* Average pooling does not look at the input, so its kernel does not take it. */
    kernel_arg args[3 + SHAPE_ARG_COUNT];
    int arg_count = 0;
    if (is_max)
        args[arg_count++] = (kernel_arg){sizeof(cl_mem), &input};
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &grad_output};
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &grad_input};
    for (int i = 0; i < SHAPE_ARG_COUNT; i++)
        args[arg_count++] = shape_args[i];
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)total};
    return runtime_launch(ctx, kernel, name, arg_count, args, 1, global, local);
}

clcnn_status op_pool2d_forward(clcnn_context *ctx, const pool2d_params *p, buf input, buf output) {
    if (context_is_opencl(ctx))
        return pool2d_forward(ctx, p, input.mem, output.mem);
    pool2d_forward_ref(p, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_pool2d_backward(clcnn_context *ctx, const pool2d_params *p, buf input,
                                buf grad_output, buf grad_input) {
    if (context_is_opencl(ctx))
        return pool2d_backward(ctx, p, input.mem, grad_output.mem, grad_input.mem);
    pool2d_backward_ref(p, input.host, grad_output.host, grad_input.host);
    return CLCNN_OK;
}
