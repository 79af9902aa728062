/* Element-wise activations on the OpenCL device: kernels/activation.cl. */
#include "ops.h"

clcnn_status activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                int64_t count, cl_mem input, cl_mem output) {
    cl_kernel kernel;
    clcnn_status status = require_int_size(ctx, "activation", count);
    if (status == CLCNN_OK)
        status = runtime_get_elementwise_kernel(ctx, "activation", "activation_forward", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    const int kind32 = (int)kind;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input}, {sizeof(cl_mem), &output}, {sizeof(int), &count32},
        {sizeof(int), &kind32},   {sizeof(float), &slope},
    };
    return runtime_launch_elementwise(ctx, kernel, "activation_forward",
                                      sizeof(args) / sizeof(args[0]), args, count);
}

clcnn_status activation_backward(clcnn_context *ctx, activation_kind kind, float slope,
                                 int64_t count, cl_mem output, cl_mem grad_output,
                                 cl_mem grad_input) {
    cl_kernel kernel;
    clcnn_status status = require_int_size(ctx, "activation gradient", count);
    if (status == CLCNN_OK)
        status = runtime_get_elementwise_kernel(ctx, "activation", "activation_backward", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    const int kind32 = (int)kind;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &output}, {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &grad_input},
        {sizeof(int), &count32},   {sizeof(int), &kind32},         {sizeof(float), &slope},
    };
    return runtime_launch_elementwise(ctx, kernel, "activation_backward",
                                      sizeof(args) / sizeof(args[0]), args, count);
}

clcnn_status op_activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                   int64_t count, buf input, buf output) {
    if (context_is_opencl(ctx))
        return activation_forward(ctx, kind, slope, count, input.mem, output.mem);
    activation_forward_ref(kind, slope, count, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_activation_backward(clcnn_context *ctx, activation_kind kind, float slope,
                                    int64_t count, buf output, buf grad_output, buf grad_input) {
    if (context_is_opencl(ctx))
        return activation_backward(ctx, kind, slope, count, output.mem, grad_output.mem,
                                   grad_input.mem);
    activation_backward_ref(kind, slope, count, output.host, grad_output.host, grad_input.host);
    return CLCNN_OK;
}
