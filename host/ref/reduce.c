/* Channel sums as plain loops: the oracle for kernels/reduce.cl. */
#include "ops.h"

void reduce_channels_ref(int outer, int columns, int inner, const float *in, float *out) {
    for (int j = 0; j < columns; j++) {
        double sum = 0.0;
        for (int i = 0; i < outer; i++)
            for (int k = 0; k < inner; k++)
                sum += in[((int64_t)i * columns + j) * inner + k];
        out[j] = (float)sum;
    }
}
