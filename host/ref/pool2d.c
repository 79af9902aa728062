/* Max and average pooling as plain loops, with PyTorch's padding rules. */
#include "ops.h"

#include <math.h>

void pool2d_forward_ref(const pool2d_params *p, const float *input, float *output) {
    const int H = p->in_height, W = p->in_width, OH = p->out_height, OW = p->out_width;
    for (int plane = 0; plane < p->batch * p->channels; plane++) {
        const float *in = input + (int64_t)plane * H * W;
        float *out = output + (int64_t)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const int h0 = oh * p->stride_h - p->pad_top;
                const int w0 = ow * p->stride_w - p->pad_left;
                /* The padded window, clipped to the padded input: avg's divisor. */
                const int h_padded_end = h0 + p->size_h < H + p->pad_top ? h0 + p->size_h
                                                                          : H + p->pad_top;
                const int w_padded_end = w0 + p->size_w < W + p->pad_left ? w0 + p->size_w
                                                                           : W + p->pad_left;
                const int divisor = (h_padded_end - h0) * (w_padded_end - w0);
                const int h_begin = h0 > 0 ? h0 : 0;
                const int w_begin = w0 > 0 ? w0 : 0;
                const int h_end = h0 + p->size_h < H ? h0 + p->size_h : H;
                const int w_end = w0 + p->size_w < W ? w0 + p->size_w : W;
                double sum = 0.0;
                float best = -INFINITY;
                for (int h = h_begin; h < h_end; h++)
                    for (int w = w_begin; w < w_end; w++) {
                        const float v = in[h * W + w];
                        sum += v;
                        if (v > best || isnan(v))
                            best = v;
                    }
                out[oh * OW + ow] = p->kind == POOL_MAX ? best : (float)(sum / divisor);
            }
    }
}
