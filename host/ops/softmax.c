/* Softmax on the OpenCL device: kernels/softmax.cl. */
#include "ops.h"

clcnn_status softmax_forward(clcnn_context *ctx, int64_t rows, int columns, cl_mem input,
                             cl_mem output) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "softmax", "softmax_forward", "", &kernel);
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
    return runtime_launch(ctx, kernel, "softmax_forward", sizeof(args) / sizeof(args[0]), args, 1,
                          global, local);
}

clcnn_status softmax_backward(clcnn_context *ctx, int64_t rows, int columns, cl_mem output,
                              cl_mem grad_output, cl_mem grad_input) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "softmax", "softmax_backward", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int rows32 = (int)rows;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &output}, {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},
        {sizeof(int), &rows32},    {sizeof(int), &columns},
    };
    const size_t local[1] = {16};
    const size_t global[1] = {(size_t)rows};
    return runtime_launch(ctx, kernel, "softmax_backward", sizeof(args) / sizeof(args[0]), args, 1,
                          global, local);
}
