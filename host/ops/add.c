/* Element-wise sums on the OpenCL device (kernels/combine.cl), and the
 * entry points that run them or the reference (host/ref/add.c). */
#include "add.h"

#include <limits.h>
#include <stdlib.h>

/* Kernels index with int. */
static clcnn_status check_shape(clcnn_context *ctx, const char *what, int64_t count,
                                int input_count) {
    if (count < 0 || count > INT_MAX || input_count < 2)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: %d inputs of %lld elements (at least 2 inputs)", what,
                         input_count, (long long)count);
    return CLCNN_OK;
}

clcnn_status add_forward(clcnn_context *ctx, int64_t count, int input_count, const cl_mem *inputs,
                         cl_mem output) {
    clcnn_status status = check_shape(ctx, "add_forward", count, input_count);
    if (status != CLCNN_OK)
        return status;
    for (int k = 0; k < input_count; k++)
        if (inputs[k] == output)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "add_forward: the output is input %d", k);
    cl_kernel kernel;
    status = runtime_get_kernel(ctx, "combine", "add_forward", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    /* ((in0 + in1) + in2) + ...: each launch after the first adds one input to the output. */
    for (int k = 1; k < input_count && status == CLCNN_OK; k++) {
        const cl_mem *first = k == 1 ? &inputs[0] : &output;
        const kernel_arg args[] = {
            {sizeof(cl_mem), first},
            {sizeof(cl_mem), &inputs[k]},
            {sizeof(cl_mem), &output},
            {sizeof(int), &count32},
        };
        const size_t local[1] = {256};
        const size_t global[1] = {(size_t)count};
        status = runtime_launch(ctx, kernel, "add_forward", sizeof(args) / sizeof(args[0]), args, 1,
                                global, local);
    }
    return status;
}

clcnn_status add_backward(clcnn_context *ctx, int64_t count, int input_count, cl_mem grad_output,
                          const cl_mem *grad_inputs, const int *accumulate) {
    clcnn_status status = check_shape(ctx, "add_backward", count, input_count);
    if (status != CLCNN_OK)
        return status;
    cl_kernel kernel;
    status = runtime_get_kernel(ctx, "combine", "add_backward", "", &kernel);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)count;
    /* One destination after the other, so the same buffer may come twice. */
    for (int k = 0; k < input_count && status == CLCNN_OK; k++) {
        if (!grad_inputs[k])
            continue;
        const int accumulate32 = accumulate[k] != 0;
        const kernel_arg args[] = {
            {sizeof(cl_mem), &grad_output},
            {sizeof(cl_mem), &grad_inputs[k]},
            {sizeof(int), &count32},
            {sizeof(int), &accumulate32},
        };
        const size_t local[1] = {256};
        const size_t global[1] = {(size_t)count};
        status = runtime_launch(ctx, kernel, "add_backward", sizeof(args) / sizeof(args[0]), args,
                                1, global, local);
    }
    return status;
}

/* ---- entry points ---------------------------------------------------------------------- */

/* 1 if b holds storage on ctx's device. */
static int present(const clcnn_context *ctx, buf b) {
    return context_is_opencl(ctx) ? b.mem != NULL : b.host != NULL;
}

/* 1 if a and b are the same storage on ctx's device. */
static int same_storage(const clcnn_context *ctx, buf a, buf b) {
    return context_is_opencl(ctx) ? a.mem == b.mem : a.host == b.host;
}

clcnn_status op_add_forward(clcnn_context *ctx, int64_t count, int input_count, const buf *inputs,
                            buf output) {
    clcnn_status status = check_shape(ctx, "op_add_forward", count, input_count);
    if (status != CLCNN_OK)
        return status;
    if (!present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_forward: no output");
    for (int k = 0; k < input_count; k++) {
        if (!present(ctx, inputs[k]))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_forward: no input %d", k);
        if (same_storage(ctx, inputs[k], output))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "op_add_forward: the output is input %d", k);
    }
    if (context_is_opencl(ctx)) {
        cl_mem *mems = malloc((size_t)input_count * sizeof(cl_mem));
        if (!mems)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "op_add_forward: out of memory");
        for (int k = 0; k < input_count; k++)
            mems[k] = inputs[k].mem;
        status = add_forward(ctx, count, input_count, mems, output.mem);
        free(mems);
        return status;
    }
    const float **hosts = malloc((size_t)input_count * sizeof(float *));
    if (!hosts)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "op_add_forward: out of memory");
    for (int k = 0; k < input_count; k++)
        hosts[k] = inputs[k].host;
    add_forward_ref(count, input_count, hosts, output.host);
    free(hosts);
    return CLCNN_OK;
}

clcnn_status op_add_backward(clcnn_context *ctx, int64_t count, int input_count, buf grad_output,
                             const buf *grad_inputs, const int *accumulate) {
    clcnn_status status = check_shape(ctx, "op_add_backward", count, input_count);
    if (status != CLCNN_OK)
        return status;
    if (!present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_add_backward: no grad_output");
    if (context_is_opencl(ctx)) {
        cl_mem *mems = malloc((size_t)input_count * sizeof(cl_mem));
        if (!mems)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "op_add_backward: out of memory");
        for (int k = 0; k < input_count; k++)
            mems[k] = grad_inputs[k].mem;
        status = add_backward(ctx, count, input_count, grad_output.mem, mems, accumulate);
        free(mems);
        return status;
    }
    float **hosts = malloc((size_t)input_count * sizeof(float *));
    if (!hosts)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "op_add_backward: out of memory");
    for (int k = 0; k < input_count; k++)
        hosts[k] = grad_inputs[k].host;
    add_backward_ref(count, input_count, grad_output.host, hosts, accumulate);
    free(hosts);
    return CLCNN_OK;
}
