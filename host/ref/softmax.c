/* Softmax over the last axis as plain loops, computed in double. */
#include "ops.h"

#include <math.h>

void softmax_forward_ref(int64_t rows, int columns, const float *input, float *output) {
    for (int64_t row = 0; row < rows; row++) {
        const float *in = input + row * columns;
        float *out = output + row * columns;
        double largest = in[0];
        for (int j = 1; j < columns; j++)
            largest = fmax(largest, in[j]);
        double sum = 0.0;
        for (int j = 0; j < columns; j++)
            sum += exp(in[j] - largest);
        for (int j = 0; j < columns; j++)
            out[j] = (float)(exp(in[j] - largest) / sum);
    }
}
