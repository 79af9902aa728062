/* Element-wise sums on the OpenCL device (kernels/combine.cl), and the
 * entry points that run them or the reference (host/ref/add.c). */
#include "add.h"

#include <limits.h>
#include <stdlib.h>

/* Kernels index with int; the entry points gather the inputs in arrays of
 * LAYER_MAX_INPUTS. A sum needs two inputs; a backward may have one
 * destination (the graph adds a gradient into another that way). */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int64_t count,
                                int input_count, int min_inputs) {
    if (count < 0 || count > INT_MAX || input_count < min_inputs || input_count > LAYER_MAX_INPUTS)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: %d inputs of %lld elements (%d to %d inputs)", what,
                         input_count, (long long)count, min_inputs, LAYER_MAX_INPUTS);
    return CLCNN_OK;
}

clcnn_status add_forward(clcnn_context *ctx, int64_t count, int input_count, const cl_mem *inputs,
                         cl_mem output, int relu) {
    clcnn_status status = check_shape(ctx, "add_forward", count, input_count, 2);
    if (status != CLCNN_OK)
        return status;
    /* Each launch reads an element of its two operands before it writes it:
     * the output may be one of the first launch's inputs, which nothing
     * reads after it. */
    for (int k = 2; k < input_count; k++)
        if (inputs[k] == output)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "add_forward: the output is input %d", k);
    cl_kernel kernel;
    status = runtime_get_elementwise_kernel(ctx, "combine", "add_forward", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    /* ((in0 + in1) + in2) + ...: each launch after the first adds one input to the output. */
    for (int k = 1; k < input_count && status == CLCNN_OK; k++) {
        const cl_mem *first = k == 1 ? &inputs[0] : &output;
        const int relu_now = relu && k == input_count - 1;
        const kernel_arg args[] = {
            {sizeof(cl_mem), first}, {sizeof(cl_mem), &inputs[k]}, {sizeof(cl_mem), &output},
            {sizeof(int), &count32}, {sizeof(int), &relu_now},
        };
        status = runtime_launch_elementwise(ctx, kernel, "add_forward",
                                            sizeof(args) / sizeof(args[0]), args, count);
    }
    return status;
}

clcnn_status add_backward(clcnn_context *ctx, int64_t count, int input_count, cl_mem grad_output,
                          cl_mem relu_y, const cl_mem *grad_inputs, const int *accumulate) {
    clcnn_status status = check_shape(ctx, "add_backward", count, input_count, 1);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    status = runtime_get_elementwise_kernel(ctx, "combine", "add_backward", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    const int relu = relu_y != NULL;
    cl_mem relu_arg = relu ? relu_y : grad_output;
    /* Two destinations a launch; the same buffer twice goes one after the other. */
    int k = 0;
    while (k < input_count && status == CLCNN_OK) {
        if (!grad_inputs[k]) {
            k++;
            continue;
        }
        int next = k + 1;
        while (next < input_count && !grad_inputs[next])
            next++;
        const int has_second = next < input_count && grad_inputs[next] != grad_inputs[k];
        const int second = has_second ? next : k;
        const int accumulate_first = accumulate[k] != 0;
        const int accumulate_second = accumulate[second] != 0;
        const kernel_arg args[] = {
            {sizeof(cl_mem), &grad_output},
            {sizeof(cl_mem), &relu_arg},
            {sizeof(int), &relu},
            {sizeof(cl_mem), &grad_inputs[k]},
            {sizeof(int), &accumulate_first},
            {sizeof(cl_mem), &grad_inputs[second]},
            {sizeof(int), &has_second},
            {sizeof(int), &accumulate_second},
            {sizeof(int), &count32},
        };
        status = runtime_launch_elementwise(ctx, kernel, "add_backward",
                                            sizeof(args) / sizeof(args[0]), args, count);
        k = has_second ? next + 1 : k + 1;
    }
    return status;
}

/* ---- entry points ---------------------------------------------------------------------- */

/* 1 if a and b are the same storage on ctx's device. */
static int same_storage(const clcnn_context *ctx, buf a, buf b) {
    return context_is_opencl(ctx) ? a.mem == b.mem : a.host == b.host;
}

clcnn_status op_add_forward(clcnn_context *ctx, int64_t count, int input_count, const buf *inputs,
                            buf output, int relu) {
    clcnn_status status = check_shape(ctx, "op_add_forward", count, input_count, 2);
    if (status != CLCNN_OK)
        return status;
    if (relu && !context_is_opencl(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "op_add_forward: the reference runs a relu as a layer of its own");
    if (!buf_present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_forward: no output");
    for (int k = 0; k < input_count; k++) {
        if (!buf_present(ctx, inputs[k]))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_forward: no input %d", k);
        if (k > 1 && same_storage(ctx, inputs[k], output))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "op_add_forward: the output is input %d", k);
    }
    if (context_is_opencl(ctx)) {
        cl_mem mems[LAYER_MAX_INPUTS];
        for (int k = 0; k < input_count; k++)
            mems[k] = inputs[k].mem;
        return add_forward(ctx, count, input_count, mems, output.mem, relu);
    }
    const float *hosts[LAYER_MAX_INPUTS];
    for (int k = 0; k < input_count; k++)
        hosts[k] = inputs[k].host;
    add_forward_ref(count, input_count, hosts, output.host);
    return CLCNN_OK;
}

clcnn_status op_add_backward(clcnn_context *ctx, int64_t count, int input_count, buf grad_output,
                             buf relu_y, const buf *grad_inputs, const int *accumulate) {
    clcnn_status status = check_shape(ctx, "op_add_backward", count, input_count, 1);
    if (status != CLCNN_OK)
        return status;
    if (!buf_present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_backward: no grad_output");
    const int relu = buf_present(ctx, relu_y);
    if (relu && !context_is_opencl(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "op_add_backward: the reference runs a relu as a layer of its own");
    if (context_is_opencl(ctx)) {
        cl_mem mems[LAYER_MAX_INPUTS];
        for (int k = 0; k < input_count; k++)
            mems[k] = grad_inputs[k].mem;
        return add_backward(ctx, count, input_count, grad_output.mem, relu ? relu_y.mem : NULL,
                            mems, accumulate);
    }
    float *hosts[LAYER_MAX_INPUTS];
    for (int k = 0; k < input_count; k++)
        hosts[k] = grad_inputs[k].host;
    add_backward_ref(count, input_count, grad_output.host, hosts, accumulate);
    return CLCNN_OK;
}
