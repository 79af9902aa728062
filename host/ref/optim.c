/* Optimizer updates as plain loops. Unlike the other references these work in
 * float, repeating kernels/optim.cl operation by operation (the order is
 * PyTorch 1.13's, documented there), so the two agree to about an ulp.
 * This relies on the host compiler not fusing a*b + c into one rounding: the
 * build targets the baseline x86-64 / generic ISA, which has no FMA.
 *
 * Parameters are assumed valid (host/ops/optim.c checks them): step >= 1,
 * Adam's betas in [0, 1). state1 may be NULL for SGD with momentum 0, and
 * state2 is unused by SGD. */
#include "ops.h"

#include <math.h>

static void sgd_step_ref(const optimizer_params *p, int64_t count, float *weights,
                         const float *grads, float *velocity) {
    const float learning_rate = p->learning_rate;
    const float momentum = p->momentum;
    const float weight_decay = p->weight_decay;
    const int first_step = p->step == 1;
    for (int64_t i = 0; i < count; i++) {
        const float w = weights[i];
        float g = grads[i];
        if (weight_decay != 0.0f)
            g = g + weight_decay * w;
        if (momentum != 0.0f) {
            /* PyTorch starts the buffer as a copy of the first gradient. */
            const float v = first_step ? g : momentum * velocity[i] + g;
            velocity[i] = v;
            g = v;
        }
        weights[i] = w - learning_rate * g;
    }
}

static void adam_step_ref(const optimizer_params *p, int64_t count, float *weights,
                          const float *grads, float *first_moment, float *second_moment) {
    /* The same derivation as host/ops/optim.c: double, then one rounding each. */
    const double bias_correction1 = 1.0 - pow((double)p->beta1, (double)p->step);
    const double bias_correction2 = 1.0 - pow((double)p->beta2, (double)p->step);
    const float step_size = (float)((double)p->learning_rate / bias_correction1);
    const float bias_correction2_sqrt = (float)sqrt(bias_correction2);
    const float one_minus_beta1 = (float)(1.0 - (double)p->beta1);
    const float one_minus_beta2 = (float)(1.0 - (double)p->beta2);
    const float beta1 = p->beta1;
    const float beta2 = p->beta2;
    const float epsilon = p->epsilon;
    const float weight_decay = p->weight_decay;
    for (int64_t i = 0; i < count; i++) {
        const float w = weights[i];
        float g = grads[i];
        if (weight_decay != 0.0f)
            g = g + weight_decay * w;
        const float m = beta1 * first_moment[i] + one_minus_beta1 * g;
        const float v = beta2 * second_moment[i] + (one_minus_beta2 * g) * g;
        first_moment[i] = m;
        second_moment[i] = v;
        const float denom = sqrtf(v) / bias_correction2_sqrt + epsilon;
        weights[i] = w - (step_size * m) / denom;
    }
}

void optimizer_step_ref(const optimizer_params *p, int64_t count, float *weights,
                        const float *grads, float *state1, float *state2) {
    weights += p->parameter_offset;
    grads += p->parameter_offset;
    /* SGD without momentum may have no state at all. */
    if (state1)
        state1 += p->state_offset;
    if (state2)
        state2 += p->state_offset;
    if (p->kind == OPTIMIZER_SGD)
        sgd_step_ref(p, count, weights, grads, state1);
    else
        adam_step_ref(p, count, weights, grads, state1, state2);
}
