/* Channel sums on the OpenCL device: kernels/reduce.cl. */
#include "ops.h"

#include <stdio.h>

/* Work-items per column: enough to keep a long column's loads in flight,
 * halved until the device accepts the work-group. */
static size_t reduce_threads(const clcnn_context *ctx) {
    size_t threads = 128;
    while (threads > 1 && ctx->max_work_group_size && threads > ctx->max_work_group_size)
        threads /= 2;
    return threads;
}

clcnn_status reduce_channels(clcnn_context *ctx, int outer, int columns, int inner, cl_mem in,
                             cl_mem out) {
    /* CPUs stream a contiguous share per work-item (kernels/reduce.cl). */
    const int contiguous = device_is_cpu(ctx);
    return reduce_channels_walk(ctx, contiguous, outer, columns, inner, in, out);
}

clcnn_status reduce_channels_walk(clcnn_context *ctx, int contiguous, int outer, int columns,
                                  int inner, cl_mem in, cl_mem out) {
    if (outer < 0 || columns < 0 || inner < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "reduce_channels: bad shape outer %d, columns %d, inner %d", outer,
                         columns, inner);
    const size_t threads = reduce_threads(ctx);
    char options[64];
    snprintf(options, sizeof(options), "-DREDUCE_THREADS=%d -DREDUCE_CONTIGUOUS=%d", (int)threads,
             contiguous);
    const kernel_arg args[] = {
        {sizeof(cl_mem), &in},   {sizeof(cl_mem), &out}, {sizeof(int), &outer},
        {sizeof(int), &columns}, {sizeof(int), &inner},
    };
    const size_t local[1] = {threads};
    const size_t global[1] = {(size_t)columns * threads};
    return runtime_run(ctx, "reduce", "reduce_channels", options, "reduce_channels",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}
