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
            const float y = (float)sum;
            output[(int64_t)n * p->out_features + o] = p->relu && y <= 0.0f ? 0.0f : y;
        }
}

void dense_backward_ref(const dense_params *p, const float *input, const float *weight,
                        const float *grad_output, float *grad_input, float *grad_weight,
                        float *grad_bias) {
    const int B = p->batch, I = p->in_features, O = p->out_features;
    for (int n = 0; grad_input && n < B; n++)
        for (int i = 0; i < I; i++) {
            double sum = 0.0;
            for (int o = 0; o < O; o++)
                sum += (double)grad_output[(int64_t)n * O + o] * weight[(int64_t)o * I + i];
            grad_input[(int64_t)n * I + i] = (float)sum;
        }
    if (!grad_weight)
        return;
    for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
            double sum = 0.0;
            for (int n = 0; n < B; n++)
                sum += (double)grad_output[(int64_t)n * O + o] * input[(int64_t)n * I + i];
            grad_weight[(int64_t)o * I + i] = (float)sum;
        }
    if (!p->has_bias)
        return;
    for (int o = 0; o < O; o++) {
        double sum = 0.0;
        for (int n = 0; n < B; n++)
            sum += grad_output[(int64_t)n * O + o];
        grad_bias[o] = (float)sum;
    }
}
