/* Element-wise activations. kind: 0 relu, 1 leaky relu (slope), 2 sigmoid, 3 tanh,
 * 4 relu6. The host's activation_kind enum uses the same numbers.
 * NaN propagates, as in PyTorch: the comparisons are written so that a NaN
 * (for which every comparison is false) falls through to x itself. */

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

__kernel void activation_forward(const __global float *restrict input,
                                 __global float *restrict output, const int count, const int kind,
                                 const float slope) {
    const int index = get_global_id(0);
    if (index < count)
        output[index] = activate(input[index], kind, slope);
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
    const int index = get_global_id(0);
    if (index < count)
        grad_input[index] = activation_gradient(output[index], grad_output[index], kind, slope);
}
