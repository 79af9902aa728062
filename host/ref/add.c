/* Element-wise sum of n tensors as plain loops, in double. */
#include "ops/add.h"

void add_forward_ref(int64_t count, int input_count, const float *const *inputs, float *output) {
    for (int64_t i = 0; i < count; i++) {
        double sum = (double)inputs[0][i] + (double)inputs[1][i];
        for (int k = 2; k < input_count; k++)
            sum += inputs[k][i];
        output[i] = (float)sum;
    }
}

void add_backward_ref(int64_t count, int input_count, const float *grad_output,
                      float *const *grad_inputs, const int *accumulate) {
    for (int k = 0; k < input_count; k++) {
        float *grad_input = grad_inputs[k];
        if (!grad_input)
            continue;
        for (int64_t i = 0; i < count; i++) {
            const double g = grad_output[i];
            grad_input[i] = (float)(accumulate[k] ? (double)grad_input[i] + g : g);
        }
    }
}
