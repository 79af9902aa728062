/* Inverted dropout on the OpenCL device (kernels/dropout.cl), and the entry
 * points that run it or the reference (host/ref/dropout.c). */
#include "dropout.h"

#include <limits.h>

/* Kernels index with int; the mask needs a rate below 1 (scale 1/(1-rate))
 * and counters from a place in the batch. */
static clcnn_status check_params(clcnn_context *ctx, const char *what, const dropout_params *p) {
    if (p->count < 0 || p->count > INT_MAX || p->per_image < 1 || p->first_image < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: bad shape: %lld elements, %lld per image, first image %lld", what,
                         (long long)p->count, (long long)p->per_image, (long long)p->first_image);
    if (!(p->rate >= 0.0f && p->rate < 1.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the rate must be at least 0 and below 1, got %g", what,
                         (double)p->rate);
    return CLCNN_OK;
}

static clcnn_status dropout_apply(clcnn_context *ctx, const char *what, const dropout_params *p,
                                  cl_mem from, cl_mem to, int accumulate) {
    clcnn_status status = check_params(ctx, what, p);
    if (status != CLCNN_OK)
        return status;
    const int count32 = (int)p->count;
    const cl_ulong seed = p->seed;
    const cl_ulong base = (cl_ulong)p->first_image * (cl_ulong)p->per_image;
    const cl_uint threshold = dropout_threshold(p->rate);
    const float scale = dropout_scale(p->rate);
    /* Rate 0 keeps everything: the identity, without drawing. */
    const int active = p->training && p->rate > 0.0f;
    const int accumulate32 = accumulate != 0;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &from},   {sizeof(cl_mem), &to},     {sizeof(int), &count32},
        {sizeof(cl_ulong), &seed}, {sizeof(cl_ulong), &base}, {sizeof(cl_uint), &threshold},
        {sizeof(float), &scale},   {sizeof(int), &active},    {sizeof(int), &accumulate32},
    };
    const size_t local[1] = {256};
    const size_t global[1] = {(size_t)p->count};
    return runtime_run(ctx, "dropout", "dropout_apply", "", what, sizeof(args) / sizeof(args[0]),
                       args, 1, global, local);
}

clcnn_status dropout_forward(clcnn_context *ctx, const dropout_params *p, cl_mem input,
                             cl_mem output) {
    return dropout_apply(ctx, "dropout_forward", p, input, output, 0);
}

clcnn_status dropout_backward(clcnn_context *ctx, const dropout_params *p, cl_mem grad_output,
                              cl_mem grad_input, int accumulate) {
    return dropout_apply(ctx, "dropout_backward", p, grad_output, grad_input, accumulate);
}

/* ---- entry points ---------------------------------------------------------------------- */

clcnn_status op_dropout_forward(clcnn_context *ctx, const dropout_params *p, buf input,
                                buf output) {
    clcnn_status status = check_params(ctx, "op_dropout_forward", p);
    if (status != CLCNN_OK)
        return status;
    if (!buf_present(ctx, input) || !buf_present(ctx, output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "op_dropout_forward: no input or output");
    if (context_is_opencl(ctx))
        return dropout_forward(ctx, p, input.mem, output.mem);
    dropout_forward_ref(p, input.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_dropout_backward(clcnn_context *ctx, const dropout_params *p, buf grad_output,
                                 buf grad_input, int accumulate) {
    clcnn_status status = check_params(ctx, "op_dropout_backward", p);
    if (status != CLCNN_OK || !buf_present(ctx, grad_input))
        return status;
    if (!buf_present(ctx, grad_output))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "op_dropout_backward: no grad_output");
    if (context_is_opencl(ctx))
        return dropout_backward(ctx, p, grad_output.mem, grad_input.mem, accumulate);
    dropout_backward_ref(p, grad_output.host, grad_input.host, accumulate);
    return CLCNN_OK;
}
