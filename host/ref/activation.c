/* Element-wise activations as plain loops, computed in double. */
#include "ops.h"

#include <math.h>

static float activate(activation_kind kind, float slope, float x) {
    switch (kind) {
    case ACTIVATION_RELU:
        return x > 0.0f ? x : 0.0f;
    case ACTIVATION_LEAKY:
        return x > 0.0f ? x : x * slope;
    case ACTIVATION_SIGMOID:
        return (float)(1.0 / (1.0 + exp(-(double)x)));
    case ACTIVATION_TANH:
        return (float)tanh((double)x);
    }
    return x;
}

void activation_forward_ref(activation_kind kind, float slope, int64_t count, const float *input,
                            float *output) {
    for (int64_t i = 0; i < count; i++)
        output[i] = activate(kind, slope, input[i]);
}
