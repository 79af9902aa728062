/* Softmax on the OpenCL device: kernels/softmax.cl. */
#include "ops.h"

clcnn_status softmax_forward(clcnn_context *ctx, int64_t rows, int columns, cl_mem input,
                             cl_mem output) {
    const clcnn_status status = require_int_size(ctx, "softmax", rows * columns);
    if (status != CLCNN_OK)
        return status;
    const int rows32 = (int)rows;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},
        {sizeof(cl_mem), &output},
        {sizeof(int), &rows32},
        {sizeof(int), &columns},
    };
    const size_t local[1] = {16};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "softmax", "softmax_forward", "", "softmax_forward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

clcnn_status softmax_backward(clcnn_context *ctx, int64_t rows, int columns, cl_mem output,
                              cl_mem grad_output, cl_mem grad_input) {
    const clcnn_status status = require_int_size(ctx, "softmax gradient", rows * columns);
    if (status != CLCNN_OK)
        return status;
    const int rows32 = (int)rows;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &output}, {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},
        {sizeof(int), &rows32},    {sizeof(int), &columns},
    };
    const size_t local[1] = {16};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "softmax", "softmax_backward", "", "softmax_backward",
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

clcnn_status op_softmax_forward(clcnn_context *ctx, int64_t rows, int columns, buf input,
                                buf output) {
    if (context_is_opencl(ctx))
        return softmax_forward(ctx, rows, columns, input.mem, output.mem);
    softmax_forward_ref(rows, columns, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_softmax_backward(clcnn_context *ctx, int64_t rows, int columns, buf output,
                                 buf grad_output, buf grad_input) {
    if (context_is_opencl(ctx))
        return softmax_backward(ctx, rows, columns, output.mem, grad_output.mem, grad_input.mem);
    softmax_backward_ref(rows, columns, output.host, grad_output.host, grad_input.host);
    return CLCNN_OK;
}
