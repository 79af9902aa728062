/* Concatenation along channels on the OpenCL device (kernels/combine.cl),
 * and the entry points that run it or the reference (host/ref/concat.c). */
#include "concat.h"

#include <limits.h>

/* The slice must lie inside the output; kernels index with int. */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int batch, int in_channels,
                                int out_channels, int channel_offset, int spatial) {
    if (batch < 0 || in_channels < 1 || spatial < 1 || channel_offset < 0 ||
        (int64_t)channel_offset + in_channels > out_channels ||
        (int64_t)batch * out_channels * spatial > INT_MAX)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: batch %d, %d channels at offset %d of %d, spatial %d",
                         what, batch, in_channels, channel_offset, out_channels, spatial);
    return CLCNN_OK;
}

clcnn_status concat_forward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                            int channel_offset, int spatial, cl_mem input, cl_mem output) {
    clcnn_status status = check_shape(ctx, "concat_forward", batch, in_channels, out_channels,
                                      channel_offset, spatial);
    if (status != CLCNN_OK)
        return status;
    const int count = batch * in_channels * spatial;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},     {sizeof(cl_mem), &output},      {sizeof(int), &in_channels},
        {sizeof(int), &out_channels}, {sizeof(int), &channel_offset}, {sizeof(int), &spatial},
        {sizeof(int), &count},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "combine", "concat_forward", "", "concat_forward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

clcnn_status concat_backward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                             int channel_offset, int spatial, cl_mem grad_output, cl_mem grad_input,
                             int accumulate) {
    clcnn_status status = check_shape(ctx, "concat_backward", batch, in_channels, out_channels,
                                      channel_offset, spatial);
    if (status != CLCNN_OK || !grad_input)
        return status;
    const int count = batch * in_channels * spatial;
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},  {sizeof(int), &in_channels},
        {sizeof(int), &out_channels},   {sizeof(int), &channel_offset}, {sizeof(int), &spatial},
        {sizeof(int), &count},          {sizeof(int), &accumulate32},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "combine", "concat_backward", "", "concat_backward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

/* ---- entry points ---------------------------------------------------------------------- */

clcnn_status op_concat_forward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                               int channel_offset, int spatial, buf input, buf output) {
    clcnn_status status = check_shape(ctx, "op_concat_forward", batch, in_channels, out_channels,
                                      channel_offset, spatial);
    if (status != CLCNN_OK)
        return status;
    if (!buf_present(ctx, input) || !buf_present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_concat_forward: missing a tensor");
    if (context_is_opencl(ctx))
        return concat_forward(ctx, batch, in_channels, out_channels, channel_offset, spatial,
                              input.mem, output.mem);
    concat_forward_ref(batch, in_channels, out_channels, channel_offset, spatial, input.host,
                       output.host);
    return CLCNN_OK;
}

clcnn_status op_concat_backward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                                int channel_offset, int spatial, buf grad_output, buf grad_input,
                                int accumulate) {
    clcnn_status status = check_shape(ctx, "op_concat_backward", batch, in_channels, out_channels,
                                      channel_offset, spatial);
    if (status != CLCNN_OK || !buf_present(ctx, grad_input))
        return status;
    if (!buf_present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_concat_backward: no grad_output");
    if (context_is_opencl(ctx))
        return concat_backward(ctx, batch, in_channels, out_channels, channel_offset, spatial,
                               grad_output.mem, grad_input.mem, accumulate);
    concat_backward_ref(batch, in_channels, out_channels, channel_offset, spatial, grad_output.host,
                        grad_input.host, accumulate);
    return CLCNN_OK;
}
