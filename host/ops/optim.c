/* Optimizer updates on the OpenCL device: kernels/optim.cl.
 *
 * Parameters are checked here as PyTorch's optimizers check them; the
 * reference (host/ref/optim.c) assumes they are valid. */
#include "ops.h"

#include <math.h>

static const size_t elements_per_group = 64;

static clcnn_status check_params(clcnn_context *ctx, const optimizer_params *p, int64_t count) {
    if (!p)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "optimizer_step: no parameters");
    if (count < 0 || p->parameter_offset < 0 || p->state_offset < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "optimizer_step: count %lld, offsets %lld and %lld", (long long)count,
                         (long long)p->parameter_offset, (long long)p->state_offset);
    if (p->step < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "optimizer_step: step %lld (the first update is step 1)",
                         (long long)p->step);
    /* The negated forms also refuse NaN. */
    if (!(p->learning_rate >= 0.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "invalid learning rate %g",
                         (double)p->learning_rate);
    if (!(p->weight_decay >= 0.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "invalid weight decay %g",
                         (double)p->weight_decay);
    if (p->kind == OPTIMIZER_SGD) {
        if (!(p->momentum >= 0.0f))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "invalid momentum %g",
                             (double)p->momentum);
        return CLCNN_OK;
    }
    if (p->kind == OPTIMIZER_ADAM) {
        /* beta2 = 1 would make the bias correction 1 - beta2^t zero. */
        if (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "invalid Adam betas %g, %g (each must be in [0, 1))", (double)p->beta1,
                             (double)p->beta2);
        if (!(p->epsilon >= 0.0f))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "invalid Adam epsilon %g",
                             (double)p->epsilon);
        return CLCNN_OK;
    }
    return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown optimizer kind %d", (int)p->kind);
}

static clcnn_status sgd_step(clcnn_context *ctx, const optimizer_params *p, int64_t count,
                             cl_mem weights, cl_mem grads, cl_mem velocity) {
    /* With momentum 0 the kernel never touches the velocity, so it may be NULL. */
    if (p->momentum != 0.0f && !velocity)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "optimizer_step: SGD with momentum needs a velocity buffer");
    const cl_long count64 = count, parameter_offset = p->parameter_offset,
                  state_offset = p->state_offset;
    const int first_step = p->step == 1;
    /* The kernel computes in float, as PyTorch does with its double scalars. */
    const float learning_rate = (float)p->learning_rate;
    const float momentum = (float)p->momentum;
    const float weight_decay = (float)p->weight_decay;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weights},           {sizeof(cl_mem), &grads},
        {sizeof(cl_mem), &velocity},          {sizeof(cl_long), &count64},
        {sizeof(cl_long), &parameter_offset}, {sizeof(cl_long), &state_offset},
        {sizeof(float), &learning_rate},      {sizeof(float), &momentum},
        {sizeof(float), &weight_decay},       {sizeof(int), &first_step},
    };
    const size_t local[1] = {elements_per_group};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "optim", "sgd_step", "", "sgd_step", sizeof(args) / sizeof(args[0]),
                       args, 1, global, local);
}

static clcnn_status adam_step(clcnn_context *ctx, const optimizer_params *p, int64_t count,
                              cl_mem weights, cl_mem grads, cl_mem first_moment,
                              cl_mem second_moment) {
    if (!first_moment || !second_moment)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "optimizer_step: Adam needs both moment buffers");
    /* The step-dependent factors in double, each rounded to float once, exactly
     * as host/ref/optim.c derives them (and as PyTorch passes Python floats). */
    const double bias_correction1 = 1.0 - pow((double)p->beta1, (double)p->step);
    const double bias_correction2 = 1.0 - pow((double)p->beta2, (double)p->step);
    const float step_size = (float)((double)p->learning_rate / bias_correction1);
    const float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    const float one_minus_beta1 = (float)(1.0 - (double)p->beta1);
    const float one_minus_beta2 = (float)(1.0 - (double)p->beta2);
    const float beta1 = (float)p->beta1;
    const float beta2 = (float)p->beta2;
    const float epsilon = (float)p->epsilon;
    const float weight_decay = (float)p->weight_decay;
    const cl_long count64 = count, parameter_offset = p->parameter_offset,
                  state_offset = p->state_offset;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weights},
        {sizeof(cl_mem), &grads},
        {sizeof(cl_mem), &first_moment},
        {sizeof(cl_mem), &second_moment},
        {sizeof(cl_long), &count64},
        {sizeof(cl_long), &parameter_offset},
        {sizeof(cl_long), &state_offset},
        {sizeof(float), &step_size},
        {sizeof(float), &beta1},
        {sizeof(float), &one_minus_beta1},
        {sizeof(float), &beta2},
        {sizeof(float), &one_minus_beta2},
        {sizeof(float), &bias_correction2_sqrt},
        {sizeof(float), &epsilon},
        {sizeof(float), &weight_decay},
    };
    const size_t local[1] = {elements_per_group};
    const size_t global[1] = {(size_t)count};
    return runtime_run(ctx, "optim", "adam_step", "", "adam_step", sizeof(args) / sizeof(args[0]),
                       args, 1, global, local);
}

clcnn_status optimizer_step(clcnn_context *ctx, const optimizer_params *p, int64_t count,
                            cl_mem weights, cl_mem grads, cl_mem state1, cl_mem state2) {
    clcnn_status status = check_params(ctx, p, count);
    if (status != CLCNN_OK)
        return status;
    if (count == 0)
        return CLCNN_OK;
    if (p->kind == OPTIMIZER_SGD)
        return sgd_step(ctx, p, count, weights, grads, state1);
    return adam_step(ctx, p, count, weights, grads, state1, state2);
}
