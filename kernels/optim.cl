/* Optimizer updates over a flat float buffer of parameters, one element per
 * work-item: elements parameter_offset .. + count of weights and grads, with
 * their state at state_offset .. + count (a trainer with frozen layers keeps
 * state only for the spans it trains). The scalar factors that depend only on the step (Adam's bias
 * corrections) are computed once on the host in double and passed in.
 *
 * The order of the float operations is PyTorch 1.13's (torch/optim/sgd.py
 * _single_tensor_sgd and torch/optim/adam.py _single_tensor_adam, the
 * non-fused, non-capturable CPU path, whose scalars are rounded to float),
 * and host/ref/optim.c repeats it exactly, so the two agree to about an ulp.
 * Contraction into fused multiply-adds would change the rounding, so it is off. */
#pragma OPENCL FP_CONTRACT OFF

/* SGD with momentum (dampening 0, no Nesterov), L2 weight decay added to the gradient:
 *   g = g + weight_decay * w            (skipped when weight_decay is 0, as PyTorch does)
 *   v = first_step ? g : momentum * v + g   (skipped when momentum is 0; velocity unused then)
 *   w = w - learning_rate * v           (PyTorch: w.add_(v, alpha=-lr), the same rounding) */
__kernel void sgd_step(__global float *restrict weights, const __global float *restrict grads,
                       __global float *restrict velocity, const long count,
                       const long parameter_offset, const long state_offset,
                       const float learning_rate, const float momentum, const float weight_decay,
                       const int first_step) {
    const size_t index = get_global_id(0);
    if (index >= (size_t)count)
        return;
    const long at = parameter_offset + (long)index, state_at = state_offset + (long)index;
    const float w = weights[at];
    float g = grads[at];
    if (weight_decay != 0.0f)
        g = g + weight_decay * w;
    if (momentum != 0.0f) {
        const float v = first_step ? g : momentum * velocity[state_at] + g;
        velocity[state_at] = v;
        g = v;
    }
    weights[at] = w - learning_rate * g;
}

/* Adam (not AdamW), L2 weight decay added to the gradient. With
 * step_size = lr / (1 - beta1^t) and bias_correction2_sqrt = sqrt(1 - beta2^t)
 * from the host:
 *   g = g + weight_decay * w                     (skipped when weight_decay is 0)
 *   m = beta1 * m + one_minus_beta1 * g          (m.mul_(beta1).add_(g, alpha=1-beta1))
 *   v = beta2 * v + (one_minus_beta2 * g) * g    (v.mul_(beta2).addcmul_(g, g, value=1-beta2))
 *   denom = sqrt(v) / bias_correction2_sqrt + epsilon
 *   w = w - (step_size * m) / denom              (w.addcdiv_(m, denom, value=-step_size)) */
__kernel void adam_step(__global float *restrict weights, const __global float *restrict grads,
                        __global float *restrict first_moment,
                        __global float *restrict second_moment, const long count,
                        const long parameter_offset, const long state_offset, const float step_size,
                        const float beta1, const float one_minus_beta1, const float beta2,
                        const float one_minus_beta2, const float bias_correction2_sqrt,
                        const float epsilon, const float weight_decay) {
    const size_t index = get_global_id(0);
    if (index >= (size_t)count)
        return;
    const long at = parameter_offset + (long)index, state_at = state_offset + (long)index;
    const float w = weights[at];
    float g = grads[at];
    if (weight_decay != 0.0f)
        g = g + weight_decay * w;
    const float m = beta1 * first_moment[state_at] + one_minus_beta1 * g;
    const float v = beta2 * second_moment[state_at] + (one_minus_beta2 * g) * g;
    first_moment[state_at] = m;
    second_moment[state_at] = v;
    const float denom = sqrt(v) / bias_correction2_sqrt + epsilon;
    weights[at] = w - (step_size * m) / denom;
}
