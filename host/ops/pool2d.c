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

/* A layer's kernels, forward and backward, come from one program built for
 * its window (a constant the loops unroll with) and the device's span of
 * elements per work-item. */
static clcnn_status get_pool_kernel(clcnn_context *ctx, const pool2d_params *p, const char *name,
                                    cl_kernel *kernel) {
    clcnn_status status = check_int_sizes(ctx, p);
    if (status != CLCNN_OK)
        return status;
    char options[96];
    snprintf(options, sizeof(options), "-DWINDOW_H=%d -DWINDOW_W=%d %s", p->size_h, p->size_w,
             ctx->config.item_span_options);
    return runtime_get_kernel(ctx, "pool2d", name, options, kernel);
}

/* The shapes of the 2x2 max-pooling kernels (kernels/pool2d.cl): 2x2 windows
 * at stride 2, no padding before, every window on the input (floor mode, or
 * ceil mode where it adds no window). Padding after is then never reached,
 * so it does not matter. */
static int is_max_2x2(const pool2d_params *p) {
    return p->kind == POOL_MAX && p->size_h == 2 && p->size_w == 2 && p->stride_h == 2 &&
           p->stride_w == 2 && p->pad_top == 0 && p->pad_left == 0 &&
           2 * p->out_height <= p->in_height && 2 * p->out_width <= p->in_width;
}

/* The max-pooling kernels' work-items: a run of up to ITEM_SPAN outputs of a
 * row each. */
static int output_row_runs(clcnn_context *ctx, const pool2d_params *p) {
    const int span = ctx->config.item_span;
    return p->batch * p->channels * p->out_height * ((p->out_width + span - 1) / span);
}

/* Max pooling's kernels take runs of a row per work-item (total runs),
 * average pooling's one element each (total elements). */
static clcnn_status launch_pool(clcnn_context *ctx, cl_kernel kernel, const char *name, int is_max,
                                int arg_count, const kernel_arg *args, int total) {
    if (is_max)
        return runtime_launch_runs(ctx, kernel, name, arg_count, args, total);
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)total};
    return runtime_launch(ctx, kernel, name, arg_count, args, 1, global, local);
}

clcnn_status pool2d_forward(clcnn_context *ctx, const pool2d_params *p, cl_mem input, cl_mem output,
                            cl_mem indices) {
    const int pad_bottom = pool2d_pad_bottom(p), pad_right = pool2d_pad_right(p);
    if (indices && p->kind != POOL_MAX)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "pool2d_forward: only max pooling writes indices");
    const int is_max = p->kind == POOL_MAX, save = indices != NULL;
    /* Without save, the output stands in for the indices: never touched. */
    cl_mem indices_arg = save ? indices : output;
    cl_kernel kernel;
    clcnn_status status;
    if (is_max_2x2(p)) {
        status = get_pool_kernel(ctx, p, "maxpool2d_forward_2x2", &kernel);
        if (status != CLCNN_OK)
            return status;
        const int runs = output_row_runs(ctx, p);
        const kernel_arg args[] = {
            {sizeof(cl_mem), &input},       {sizeof(cl_mem), &output},
            {sizeof(cl_mem), &indices_arg}, {sizeof(int), &save},
            {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
            {sizeof(int), &p->out_height},  {sizeof(int), &p->out_width},
            {sizeof(int), &runs},
        };
        return runtime_launch_runs(ctx, kernel, "maxpool2d_forward_2x2",
                                   (int)(sizeof(args) / sizeof(args[0])), args, runs);
    }
    const char *name = is_max ? "maxpool2d_forward" : "avgpool2d_forward";
    status = get_pool_kernel(ctx, p, name, &kernel);
    if (status != CLCNN_OK)
        return status;
    /* Max pooling: a run of outputs of a row per work-item; average pooling:
     * one output each. */
    const int total =
        is_max ? output_row_runs(ctx, p) : p->batch * p->channels * p->out_height * p->out_width;
    const kernel_arg shape_args[] = {
        {sizeof(int), &p->channels},   {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_height}, {sizeof(int), &p->out_width},   {sizeof(int), &p->size_h},
        {sizeof(int), &p->size_w},     {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},    {sizeof(int), &p->pad_left},    {sizeof(int), &pad_bottom},
        {sizeof(int), &pad_right},     {sizeof(int), &p->exclude_pad}, {sizeof(int), &total},
    };
    enum { SHAPE_ARG_COUNT = sizeof(shape_args) / sizeof(shape_args[0]) };
    /* Max pooling takes the indices and whether to write them; average
     * pooling neither. */
    kernel_arg args[4 + SHAPE_ARG_COUNT];
    int arg_count = 0;
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &input};
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &output};
    if (is_max) {
        args[arg_count++] = (kernel_arg){sizeof(cl_mem), &indices_arg};
        args[arg_count++] = (kernel_arg){sizeof(int), &save};
    }
    for (int i = 0; i < SHAPE_ARG_COUNT; i++)
        args[arg_count++] = shape_args[i];
    return launch_pool(ctx, kernel, name, is_max, arg_count, args, total);
}

/* Before a scatter (windows that do not overlap) that does not accumulate:
 * zero grad_input unless the windows tile the input exactly, when they
 * write every element themselves. */
static clcnn_status zero_uncovered(clcnn_context *ctx, const pool2d_params *p, cl_mem grad_input) {
    const int tiled_exactly =
        p->stride_h == p->size_h && p->stride_w == p->size_w && p->pad_top == 0 &&
        p->pad_left == 0 && pool2d_pad_bottom(p) == 0 && pool2d_pad_right(p) == 0 &&
        p->out_height * p->stride_h == p->in_height && p->out_width * p->stride_w == p->in_width;
    if (tiled_exactly)
        return CLCNN_OK;
    const int in_count = p->batch * p->channels * p->in_height * p->in_width;
    const float zero = 0.0f;
    return cl_check(ctx,
                    clEnqueueFillBuffer(ctx->queue, grad_input, &zero, sizeof(zero), 0,
                                        sizeof(float) * (size_t)in_count, 0, NULL, NULL),
                    "clEnqueueFillBuffer");
}

/* Max pooling's backward for the 2x2 kernels' shapes: a scatter from each
 * output's index (kernels/pool2d.cl, maxpool2d_backward_2x2). */
static clcnn_status max_2x2_backward(clcnn_context *ctx, const pool2d_params *p, cl_mem indices,
                                     cl_mem grad_output, cl_mem grad_input, int accumulate) {
    cl_kernel kernel;
    clcnn_status status = get_pool_kernel(ctx, p, "maxpool2d_backward_2x2", &kernel);
    if (status == CLCNN_OK && !accumulate)
        status = zero_uncovered(ctx, p, grad_input);
    if (status != CLCNN_OK)
        return status;
    const int runs = output_row_runs(ctx, p);
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &indices},   {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},
        {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width},    {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width}, {sizeof(int), &accumulate32},   {sizeof(int), &runs},
    };
    return runtime_launch_runs(ctx, kernel, "maxpool2d_backward_2x2",
                               (int)(sizeof(args) / sizeof(args[0])), args, runs);
}

clcnn_status pool2d_backward(clcnn_context *ctx, const pool2d_params *p, cl_mem indices,
                             cl_mem grad_output, cl_mem grad_input, int accumulate) {
    const int pad_bottom = pool2d_pad_bottom(p), pad_right = pool2d_pad_right(p);
    const int is_max = p->kind == POOL_MAX;
    if (is_max && !indices)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "pool2d_backward: max pooling needs the indices its forward wrote");
    if (is_max && is_max_2x2(p))
        return max_2x2_backward(ctx, p, indices, grad_output, grad_input, accumulate);
    /* Max pooling reads the indices, a run of elements per work-item;
     * average pooling scatters, one work-item per output, when windows do not
     * overlap (stride >= size), and otherwise gathers, one work-item per
     * input element (see kernels/pool2d.cl). */
    const int scatter = !is_max && p->stride_h >= p->size_h && p->stride_w >= p->size_w;
    const char *name = is_max    ? "maxpool2d_backward_indices"
                       : scatter ? "avgpool2d_backward_scatter"
                                 : "avgpool2d_backward";
    cl_kernel kernel;
    clcnn_status status = get_pool_kernel(ctx, p, name, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int in_count = p->batch * p->channels * p->in_height * p->in_width;
    if (scatter && !accumulate) {
        status = zero_uncovered(ctx, p, grad_input);
        if (status != CLCNN_OK)
            return status;
    }
    const int span = ctx->config.item_span;
    const int rows = p->batch * p->channels * p->in_height;
    const int total = is_max    ? rows * ((p->in_width + span - 1) / span)
                      : scatter ? p->batch * p->channels * p->out_height * p->out_width
                                : in_count;
    const int accumulate32 = accumulate != 0;
    const kernel_arg shape_args[] = {
        {sizeof(int), &p->channels},   {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
        {sizeof(int), &p->out_height}, {sizeof(int), &p->out_width},   {sizeof(int), &p->size_h},
        {sizeof(int), &p->size_w},     {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},    {sizeof(int), &p->pad_left},    {sizeof(int), &pad_bottom},
        {sizeof(int), &pad_right},     {sizeof(int), &p->exclude_pad}, {sizeof(int), &accumulate32},
        {sizeof(int), &total},
    };
    enum { SHAPE_ARG_COUNT = sizeof(shape_args) / sizeof(shape_args[0]) };
    /* Average pooling needs no indices, so its kernels do not take them. */
    kernel_arg args[3 + SHAPE_ARG_COUNT];
    int arg_count = 0;
    if (is_max)
        args[arg_count++] = (kernel_arg){sizeof(cl_mem), &indices};
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &grad_output};
    args[arg_count++] = (kernel_arg){sizeof(cl_mem), &grad_input};
    for (int i = 0; i < SHAPE_ARG_COUNT; i++)
        args[arg_count++] = shape_args[i];
    return launch_pool(ctx, kernel, name, is_max, arg_count, args, total);
}

clcnn_status op_pool2d_forward(clcnn_context *ctx, const pool2d_params *p, buf input, buf output,
                               buf indices) {
    if (context_is_opencl(ctx))
        return pool2d_forward(ctx, p, input.mem, output.mem, indices.mem);
    pool2d_forward_ref(p, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_pool2d_backward(clcnn_context *ctx, const pool2d_params *p, buf input, buf indices,
                                buf grad_output, buf grad_input, int accumulate) {
    if (!buf_present(ctx, grad_input))
        return CLCNN_OK;
    if (context_is_opencl(ctx))
        return pool2d_backward(ctx, p, indices.mem, grad_output.mem, grad_input.mem, accumulate);
    pool2d_backward_ref(p, input.host, grad_output.host, grad_input.host, accumulate);
    return CLCNN_OK;
}
