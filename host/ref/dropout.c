/* Inverted dropout as a plain loop, and the generator its mask comes from
 * (shared with the OpenCL side through ops/dropout.h). */
#include "ops/dropout.h"

uint64_t dropout_bits(uint64_t seed, uint64_t counter) {
    uint64_t z = seed + (counter + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint32_t dropout_threshold(float rate) {
    /* Exact: a float times a power of two, below 2^32 for rate < 1. */
    return (uint32_t)((double)rate * 4294967296.0);
}

float dropout_scale(float rate) {
    return (float)(1.0 / (1.0 - (double)rate));
}

/* to = from * mask * scale, or to += that. Float operations, as the kernel
 * does them, so the two agree bit for bit (a product of two floats and a sum
 * computed in double and rounded once would give the same floats). */
static void dropout_apply_ref(const dropout_params *p, const float *from, float *to,
                              int accumulate) {
    const int active = p->training && p->rate > 0.0f;
    const uint32_t threshold = dropout_threshold(p->rate);
    const float scale = dropout_scale(p->rate);
    /* (first_image + n) * per_image + e is the first element's counter + i. */
    const uint64_t base = (uint64_t)p->first_image * (uint64_t)p->per_image;
    for (int64_t i = 0; i < p->count; i++) {
        float value = from[i];
        if (active) {
            const uint32_t draw = (uint32_t)(dropout_bits(p->seed, base + (uint64_t)i) >> 32);
            value = value * (draw >= threshold ? scale : 0.0f); /* NaN stays NaN */
        }
        to[i] = accumulate ? to[i] + value : value;
    }
}

void dropout_forward_ref(const dropout_params *p, const float *input, float *output) {
    dropout_apply_ref(p, input, output, 0);
}

void dropout_backward_ref(const dropout_params *p, const float *grad_output, float *grad_input,
                          int accumulate) {
    dropout_apply_ref(p, grad_output, grad_input, accumulate);
}
