/* Global average pooling on the OpenCL device (kernels/global_pool.cl), and
 * the entry points that run it or the reference (host/ref/global_avgpool.c). */
#include "global_avgpool.h"

#include <limits.h>

/* Kernels index with int. */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int batch, int channels,
                                int spatial) {
    if (batch < 0 || channels < 1 || spatial < 1 || (int64_t)batch * channels * spatial > INT_MAX)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: batch %d, channels %d, spatial %d", what, batch, channels,
                         spatial);
    return CLCNN_OK;
}

/* The forward's planes per work-item (kernels/global_pool.cl,
 * GLOBAL_POOL_PLANES): 8 independent sums keep the processor busy, where one
 * plane's chain of dependent additions had kept it waiting. Both kernels
 * build with the same options, as one program. */
#define POOL_PLANES_PER_ITEM 8
#define GLOBAL_POOL_OPTIONS "-DGLOBAL_POOL_PLANES=" CLCNN_STRINGIFY_VALUE(POOL_PLANES_PER_ITEM)

clcnn_status global_avgpool_forward(clcnn_context *ctx, int batch, int channels, int spatial,
                                    cl_mem input, cl_mem output) {
    clcnn_status status = check_shape(ctx, "global_avgpool_forward", batch, channels, spatial);
    if (status != CLCNN_OK)
        return status;
    const int planes = batch * channels;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},
        {sizeof(cl_mem), &output},
        {sizeof(int), &planes},
        {sizeof(int), &spatial},
    };
    /* Small groups spread the few work-items over compute units. */
    const size_t local[1] = {16};
    const size_t global[1] = {((size_t)planes + POOL_PLANES_PER_ITEM - 1) / POOL_PLANES_PER_ITEM};
    return runtime_run(ctx, "global_pool", "global_avgpool_forward", GLOBAL_POOL_OPTIONS,
                       "global_avgpool_forward", sizeof(args) / sizeof(args[0]), args, 1, global,
                       local);
}

clcnn_status global_avgpool_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                     cl_mem grad_output, cl_mem grad_input, int accumulate) {
    clcnn_status status = check_shape(ctx, "global_avgpool_backward", batch, channels, spatial);
    if (status != CLCNN_OK || !grad_input)
        return status;
    const int planes = batch * channels;
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input}, {sizeof(int), &planes},
        {sizeof(int), &spatial},        {sizeof(int), &accumulate32},
    };
    const size_t local[1] = {64};
    const size_t global[1] = {(size_t)planes};
    return runtime_run(ctx, "global_pool", "global_avgpool_backward", GLOBAL_POOL_OPTIONS,
                       "global_avgpool_backward", sizeof(args) / sizeof(args[0]), args, 1, global,
                       local);
}

/* ---- entry points ---------------------------------------------------------------------- */

clcnn_status op_global_avgpool_forward(clcnn_context *ctx, int batch, int channels, int spatial,
                                       buf input, buf output) {
    clcnn_status status = check_shape(ctx, "op_global_avgpool_forward", batch, channels, spatial);
    if (status != CLCNN_OK)
        return status;
    if (!buf_present(ctx, input) || !buf_present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "op_global_avgpool_forward: missing a tensor");
    if (context_is_opencl(ctx))
        return global_avgpool_forward(ctx, batch, channels, spatial, input.mem, output.mem);
    global_avgpool_forward_ref(batch, channels, spatial, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_global_avgpool_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                        buf grad_output, buf grad_input, int accumulate) {
    clcnn_status status = check_shape(ctx, "op_global_avgpool_backward", batch, channels, spatial);
    if (status != CLCNN_OK || !buf_present(ctx, grad_input))
        return status;
    if (!buf_present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "op_global_avgpool_backward: no grad_output");
    if (context_is_opencl(ctx))
        return global_avgpool_backward(ctx, batch, channels, spatial, grad_output.mem,
                                       grad_input.mem, accumulate);
    global_avgpool_backward_ref(batch, channels, spatial, grad_output.host, grad_input.host,
                                accumulate);
    return CLCNN_OK;
}
