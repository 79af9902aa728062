/* Element-wise activations on the OpenCL device: kernels/activation.cl. */
#include "ops.h"

clcnn_status activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                int64_t count, cl_mem input, cl_mem output) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "activation", "activation_forward", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    const int kind32 = (int)kind;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input}, {sizeof(cl_mem), &output}, {sizeof(int), &count32},
        {sizeof(int), &kind32},   {sizeof(float), &slope},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_launch(ctx, kernel, "activation_forward", sizeof(args) / sizeof(args[0]), args,
                          1, global, local);
}

clcnn_status activation_backward(clcnn_context *ctx, activation_kind kind, float slope,
                                 int64_t count, cl_mem output, cl_mem grad_output,
                                 cl_mem grad_input) {
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel(ctx, "activation", "activation_backward", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    const int kind32 = (int)kind;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &output}, {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},
        {sizeof(int), &count32},   {sizeof(int), &kind32},         {sizeof(float), &slope},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)count};
    return runtime_launch(ctx, kernel, "activation_backward", sizeof(args) / sizeof(args[0]), args,
                          1, global, local);
}
