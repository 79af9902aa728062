/* Softmax over the last axis as plain loops, computed in double. */
#include "ops.h"

#include <math.h>

void softmax_forward_ref(int64_t rows, int columns, const float *input, float *output) {
    for (int64_t row = 0; row < rows; row++) {
        const float *in = input + row * columns;
        float *out = output + row * columns;
        double largest = in[0];
        for (int j = 1; j < columns; j++)
            largest = max_keep_nan(largest, in[j]);
        double sum = 0.0;
        for (int j = 0; j < columns; j++)
            sum += exp(in[j] - largest);
        for (int j = 0; j < columns; j++)
            out[j] = (float)(exp(in[j] - largest) / sum);
    }
}

void softmax_backward_ref(int64_t rows, int columns, const float *output, const float *grad_output,
                          float *grad_input) {
    for (int64_t row = 0; row < rows; row++) {
        const float *y = output + row * columns;
        const float *g = grad_output + row * columns;
        float *result = grad_input + row * columns;
        double dot = 0.0;
        for (int j = 0; j < columns; j++)
            dot += (double)g[j] * y[j];
        for (int j = 0; j < columns; j++)
            result[j] = (float)(y[j] * (g[j] - dot));
    }
}
