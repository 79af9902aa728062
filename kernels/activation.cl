/* Element-wise activations. kind: 0 relu, 1 leaky relu (slope), 2 sigmoid, 3 tanh,
 * 4 relu6. The host's activation_kind enum uses the same numbers.
 * NaN propagates, as in PyTorch: the comparisons are written so that a NaN
 * (for which every comparison is false) falls through to x itself. */

/* ITEM_SPAN (-D, default 1): the consecutive elements each work-item takes.
 * Launch ceil(count / ITEM_SPAN) work-items, any local size. */
#ifndef ITEM_SPAN
#define ITEM_SPAN 1
#endif

float activate(const float x, const int kind, const float slope) {
    switch (kind) {
    case 0:
        return x <= 0.0f ? 0.0f : x;
    case 1:
        return x > 0.0f ? x : x * slope;
    case 2:
        /* Both branches avoid exp overflow to inf / inf. */
        if (x >= 0.0f)
            return 1.0f / (1.0f + exp(-x));
        else {
            const float e = exp(x);
            return e / (1.0f + e);
        }
    case 4:
        return x <= 0.0f ? 0.0f : x >= 6.0f ? 6.0f : x;
    default:
        /* tanh rounds to +-1 in float from |x| = 9.01 on; saying so makes
         * tanh(+-inf) exactly +-1, as PyTorch, whatever the device's tanh
         * gives there (NaN fails the test and stays NaN). */
        return fabs(x) >= 10.0f ? copysign(1.0f, x) : tanh(x);
    }
}

/* No restrict: output may be the input buffer (in place), and each
 * work-item reads its element before writing it. */
__kernel void activation_forward(const __global float *input, __global float *output,
                                 const int count, const int kind, const float slope) {
    const size_t first = get_global_id(0) * ITEM_SPAN;
    const size_t end = min(first + ITEM_SPAN, (size_t)count);
    /* A loop per kind: with the kind a constant, the loops without exp or
     * tanh become SIMD loops (a run of relu at 3x the speed of the loop
     * that switches per element). */
#define ACTIVATE_RANGE(k)                                                                          \
    for (size_t i = first; i < end; i++)                                                           \
        output[i] = activate(input[i], k, slope);
    switch (kind) {
    case 0:
        ACTIVATE_RANGE(0) break;
    case 1:
        ACTIVATE_RANGE(1) break;
    case 4:
        ACTIVATE_RANGE(4) break;
    default:
        ACTIVATE_RANGE(kind)
    }
}

/* The gradient from the forward output y, so that the forward's input need
 * not be kept. No restrict: grad_input may be the grad_output buffer (in
 * place), and each work-item reads its element before writing it.
 * relu, leaky and relu6 select rather than multiply, so an infinite gradient
 * where y <= 0 gives 0 (relu) instead of inf * 0 = NaN, as PyTorch does.
 * relu6: 0 < y < 6 exactly where 0 < x < 6, PyTorch's hardtanh rule, so no
 * gradient at 0 and 6 themselves. */
float activation_gradient(const float y, const float g, const int kind, const float slope) {
    switch (kind) {
    case 0:
        return y <= 0.0f ? 0.0f : g; /* a NaN output passes g, as threshold_backward */
    case 1:
        return y > 0.0f ? g : g * slope;
    case 2:
        return g * y * (1.0f - y);
    case 4:
        return y <= 0.0f || y >= 6.0f ? 0.0f : g; /* NaN passes g, as hardtanh_backward */
    default:
        /* (1 - y)(1 + y) rather than 1 - y*y: 1 - y is exact near |y| = 1,
         * where 1 - y*y would cancel to a few significant bits. */
        return g * ((1.0f - y) * (1.0f + y));
    }
}

__kernel void activation_backward(const __global float *output, const __global float *grad_output,
                                  __global float *grad_input, const int count, const int kind,
                                  const float slope) {
    const size_t first = get_global_id(0) * ITEM_SPAN;
    const size_t end = min(first + ITEM_SPAN, (size_t)count);
    for (size_t i = first; i < end; i++)
        grad_input[i] = activation_gradient(output[i], grad_output[i], kind, slope);
}
