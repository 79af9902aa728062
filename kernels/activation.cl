/* Element-wise activations. kind: 0 relu, 1 leaky relu (slope), 2 sigmoid, 3 tanh.
 * The host's activation_kind enum uses the same numbers. */

float activate(const float x, const int kind, const float slope) {
    switch (kind) {
    case 0:
        return x > 0.0f ? x : 0.0f;
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
    default:
        return tanh(x);
    }
}

__kernel void activation_forward(const __global float *restrict input,
                                 __global float *restrict output, const int count,
                                 const int kind, const float slope) {
    const int index = get_global_id(0);
    if (index < count)
        output[index] = activate(input[index], kind, slope);
}
