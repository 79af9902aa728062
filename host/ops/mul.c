/* Element-wise products on the OpenCL device (kernels/combine.cl), and the
 * entry points that run them or the reference (host/ref/mul.c). */
#include "mul.h"

#include <limits.h>

/* Kernels index with int. */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int batch, int channels,
                                int spatial, int broadcast) {
    if (batch < 0 || channels < 1 || spatial < 1 || (broadcast != 0 && broadcast != 1) ||
        (int64_t)batch * channels * spatial > INT_MAX)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: batch %d, channels %d, spatial %d, broadcast %d", what,
                         batch, channels, spatial, broadcast);
    return CLCNN_OK;
}

clcnn_status mul_forward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                         cl_mem a, cl_mem b, cl_mem output) {
    clcnn_status status = check_shape(ctx, "mul_forward", batch, channels, spatial, broadcast);
    if (status != CLCNN_OK)
        return status;
    const int count = batch * channels * spatial;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &a},  {sizeof(cl_mem), &b},    {sizeof(cl_mem), &output},
        {sizeof(int), &count}, {sizeof(int), &spatial}, {sizeof(int), &broadcast},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "combine", "mul_forward", "", "mul_forward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

/* grad = grad_output * other, other broadcast per plane or not (kernels/combine.cl mul_backward).
 */
static clcnn_status product_gradient(clcnn_context *ctx, int count, int spatial, int broadcast,
                                     cl_mem grad_output, cl_mem other, cl_mem grad,
                                     int accumulate) {
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &other}, {sizeof(cl_mem), &grad},
        {sizeof(int), &count},          {sizeof(int), &spatial},  {sizeof(int), &broadcast},
        {sizeof(int), &accumulate32},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "combine", "mul_backward", "", "mul_backward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

/* grad_b of a broadcast b: one work-item per plane sums its plane. */
static clcnn_status broadcast_gradient(clcnn_context *ctx, int planes, int spatial,
                                       cl_mem grad_output, cl_mem a, cl_mem grad_b,
                                       int accumulate) {
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &a},    {sizeof(cl_mem), &grad_b},
        {sizeof(int), &planes},         {sizeof(int), &spatial}, {sizeof(int), &accumulate32},
    };
    /* Few planes, each a long loop: small groups spread them over compute units. */
    const size_t local[1] = {64};
    const size_t global[1] = {(size_t)planes};
    return runtime_run(ctx, "combine", "mul_backward_broadcast", "", "mul_backward_broadcast",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

clcnn_status mul_backward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                          cl_mem a, cl_mem b, cl_mem grad_output, cl_mem grad_a, int accumulate_a,
                          cl_mem grad_b, int accumulate_b) {
    clcnn_status status = check_shape(ctx, "mul_backward", batch, channels, spatial, broadcast);
    if (status != CLCNN_OK)
        return status;
    const int planes = batch * channels;
    const int count = planes * spatial;
    /* grad_a first, then grad_b: for a tensor multiplied by itself they may be one buffer. */
    if (grad_a)
        status =
            product_gradient(ctx, count, spatial, broadcast, grad_output, b, grad_a, accumulate_a);
    if (status != CLCNN_OK || !grad_b)
        return status;
    if (broadcast)
        return broadcast_gradient(ctx, planes, spatial, grad_output, a, grad_b, accumulate_b);
    return product_gradient(ctx, count, spatial, 0, grad_output, a, grad_b, accumulate_b);
}

/* ---- entry points ---------------------------------------------------------------------- */

clcnn_status op_mul_forward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                            buf a, buf b, buf output) {
    clcnn_status status = check_shape(ctx, "op_mul_forward", batch, channels, spatial, broadcast);
    if (status != CLCNN_OK)
        return status;
    if (!buf_present(ctx, a) || !buf_present(ctx, b) || !buf_present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_mul_forward: missing a tensor");
    if (context_is_opencl(ctx))
        return mul_forward(ctx, batch, channels, spatial, broadcast, a.mem, b.mem, output.mem);
    mul_forward_ref(batch, channels, spatial, broadcast, a.host, b.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_mul_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                             int broadcast, buf a, buf b, buf grad_output, buf grad_a,
                             int accumulate_a, buf grad_b, int accumulate_b) {
    clcnn_status status = check_shape(ctx, "op_mul_backward", batch, channels, spatial, broadcast);
    if (status != CLCNN_OK)
        return status;
    const int want_a = buf_present(ctx, grad_a), want_b = buf_present(ctx, grad_b);
    if ((want_a || want_b) && !buf_present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_mul_backward: no grad_output");
    if (want_a && !buf_present(ctx, b))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_mul_backward: grad_a needs b");
    if (want_b && !buf_present(ctx, a))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_mul_backward: grad_b needs a");
    if (context_is_opencl(ctx))
        return mul_backward(ctx, batch, channels, spatial, broadcast, a.mem, b.mem, grad_output.mem,
                            grad_a.mem, accumulate_a, grad_b.mem, accumulate_b);
    mul_backward_ref(batch, channels, spatial, broadcast, a.host, b.host, grad_output.host,
                     grad_a.host, accumulate_a, grad_b.host, accumulate_b);
    return CLCNN_OK;
}
