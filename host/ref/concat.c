/* Concatenation along channels, one input at a time, as plain copies. */
#include "ops/concat.h"

void concat_forward_ref(int batch, int in_channels, int out_channels, int channel_offset,
                        int spatial, const float *input, float *output) {
    const int64_t slice = (int64_t)in_channels * spatial;
    for (int n = 0; n < batch; n++) {
        const float *from = input + n * slice;
        float *to = output + ((int64_t)n * out_channels + channel_offset) * spatial;
        for (int64_t i = 0; i < slice; i++)
            to[i] = from[i];
    }
}

void concat_backward_ref(int batch, int in_channels, int out_channels, int channel_offset,
                         int spatial, const float *grad_output, float *grad_input, int accumulate) {
    if (!grad_input)
        return;
    const int64_t slice = (int64_t)in_channels * spatial;
    for (int n = 0; n < batch; n++) {
        const float *from = grad_output + ((int64_t)n * out_channels + channel_offset) * spatial;
        float *to = grad_input + n * slice;
        for (int64_t i = 0; i < slice; i++)
            to[i] = (float)(accumulate ? (double)to[i] + (double)from[i] : (double)from[i]);
    }
}
