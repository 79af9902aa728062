/* Fully connected layer as plain loops. */
#include "ops.h"

void dense_forward_ref(const dense_params *p, const float *input, const float *weight,
                       const float *bias, float *output) {
    for (int n = 0; n < p->batch; n++)
        for (int o = 0; o < p->out_features; o++) {
            double sum = p->has_bias ? bias[o] : 0.0;
            const float *x = input + (int64_t)n * p->in_features;
            const float *w = weight + (int64_t)o * p->in_features;
            for (int i = 0; i < p->in_features; i++)
                sum += (double)w[i] * x[i];
            output[(int64_t)n * p->out_features + o] = (float)sum;
        }
}
