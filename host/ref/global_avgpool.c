/* Global average pooling as plain loops, in double. */
#include "ops/global_avgpool.h"

void global_avgpool_forward_ref(int batch, int channels, int spatial, const float *input,
                                float *output) {
    const int64_t planes = (int64_t)batch * channels;
    for (int64_t plane = 0; plane < planes; plane++) {
        double sum = 0.0;
        for (int s = 0; s < spatial; s++)
            sum += input[plane * spatial + s];
        output[plane] = (float)(sum / spatial);
    }
}

void global_avgpool_backward_ref(int batch, int channels, int spatial, const float *grad_output,
                                 float *grad_input, int accumulate) {
    if (!grad_input)
        return;
    const int64_t planes = (int64_t)batch * channels;
    for (int64_t plane = 0; plane < planes; plane++) {
        const double g = (double)grad_output[plane] / spatial;
        for (int s = 0; s < spatial; s++) {
            const int64_t i = plane * spatial + s;
            grad_input[i] = (float)(accumulate ? (double)grad_input[i] + g : g);
        }
    }
}
