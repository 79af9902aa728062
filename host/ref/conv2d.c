/* Convolution as plain loops: the oracle for kernels/conv2d.cl. */
#include "ops.h"

void conv2d_forward_ref(const conv2d_params *p, const float *input, const float *weight,
                        const float *bias, float *output) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    for (int n = 0; n < p->batch; n++)
        for (int k = 0; k < K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double sum = p->has_bias ? bias[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++) {
                            const int ih = oh * p->stride_h - p->pad_top + r;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int s = 0; s < S; s++) {
                                const int iw = ow * p->stride_w - p->pad_left + s;
                                if (iw < 0 || iw >= W)
                                    continue;
                                sum += (double)weight[((int64_t)(k * C + c) * R + r) * S + s] *
                                       input[((int64_t)(n * C + c) * H + ih) * W + iw];
                            }
                        }
                    output[((int64_t)(n * K + k) * OH + oh) * OW + ow] = (float)sum;
                }
}
