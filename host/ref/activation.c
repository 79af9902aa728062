/* Element-wise activations as plain loops, computed in double. */
#include "ops.h"

#include <math.h>

static float activate(activation_kind kind, float slope, float x) {
    switch (kind) {
    case ACTIVATION_RELU:
        return x <= 0.0f ? 0.0f : x; /* NaN falls through to x, as in PyTorch */
    case ACTIVATION_LEAKY:
        return x > 0.0f ? x : x * slope;
    case ACTIVATION_SIGMOID:
        return (float)(1.0 / (1.0 + exp(-(double)x)));
    case ACTIVATION_TANH:
        return (float)tanh((double)x);
    case ACTIVATION_RELU6:
        return x <= 0.0f ? 0.0f : x >= 6.0f ? 6.0f : x;
    }
    return x;
}

void activation_forward_ref(activation_kind kind, float slope, int64_t count, const float *input,
                            float *output) {
    for (int64_t i = 0; i < count; i++)
        output[i] = activate(kind, slope, input[i]);
}

/* relu, leaky and relu6 select rather than multiply, so an infinite gradient
 * where y <= 0 gives 0 (relu) rather than inf * 0 = NaN, as PyTorch does.
 * relu6 passes g only where 0 < y < 6, which is where 0 < x < 6 (ops.h). */
static double activation_gradient(activation_kind kind, float slope, double y, double g) {
    switch (kind) {
    case ACTIVATION_RELU:
        return y <= 0.0 ? 0.0 : g; /* a NaN output passes g, as threshold_backward */
    case ACTIVATION_LEAKY:
        return y > 0.0 ? g : g * slope;
    case ACTIVATION_SIGMOID:
        return g * y * (1.0 - y);
    case ACTIVATION_TANH:
        return g * (1.0 - y * y);
    case ACTIVATION_RELU6:
        return y <= 0.0 || y >= 6.0 ? 0.0 : g; /* NaN passes g, as hardtanh_backward */
    }
    return g;
}

void activation_backward_ref(activation_kind kind, float slope, int64_t count, const float *output,
                             const float *grad_output, float *grad_input) {
    /* Element by element, each read before its write, so grad_input may alias either input. */
    for (int64_t i = 0; i < count; i++)
        grad_input[i] = (float)activation_gradient(kind, slope, output[i], grad_output[i]);
}
