/* Convolution as plain loops: the oracle for kernels/conv2d*.cl. Groups and
 * dilation as PyTorch's: output channel k of group g = k / (K / groups) reads
 * input channels g * Cg .. g * Cg + Cg - 1 (Cg = C / groups), and its tap
 * (r, s) reads the input dilation_h * r rows and dilation_w * s columns from
 * its window's corner. */
#include "ops.h"

void conv2d_forward_ref(const conv2d_params *p, const float *input, const float *weight,
                        const float *bias, float *output) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    const int Cg = C / conv2d_groups(p), Kg = K / conv2d_groups(p);
    const int DH = conv2d_dilation_h(p), DW = conv2d_dilation_w(p);
    for (int n = 0; n < p->batch; n++)
        for (int k = 0; k < K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const int first_channel = k / Kg * Cg;
                    double sum = p->has_bias ? bias[k] : 0.0;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < R; r++) {
                            const int ih = oh * p->stride_h - p->pad_top + r * DH;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int s = 0; s < S; s++) {
                                const int iw = ow * p->stride_w - p->pad_left + s * DW;
                                if (iw < 0 || iw >= W)
                                    continue;
                                sum +=
                                    (double)weight[((int64_t)(k * Cg + c) * R + r) * S + s] *
                                    input[((int64_t)(n * C + first_channel + c) * H + ih) * W + iw];
                            }
                        }
                    const float y = (float)sum;
                    output[((int64_t)(n * K + k) * OH + oh) * OW + ow] =
                        p->relu && y <= 0.0f ? 0.0f : y;
                }
}

void conv2d_backward_data_ref(const conv2d_params *p, const float *grad_output, const float *weight,
                              float *grad_input) {
    conv2d_backward_data_into_ref(p, grad_output, weight, grad_input, 0);
}

void conv2d_backward_data_into_ref(const conv2d_params *p, const float *grad_output,
                                   const float *weight, float *grad_input, int accumulate) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    const int Cg = C / conv2d_groups(p), Kg = K / conv2d_groups(p);
    const int DH = conv2d_dilation_h(p), DW = conv2d_dilation_w(p);
    /* Each input pixel gathers from the output positions whose window covers it:
     * oh*stride_h - pad_top + r*DH == ih, i.e. oh = (ih + pad_top - r*DH) / stride_h when
     * exact, over the output channels of its channel's group. */
    for (int n = 0; n < p->batch; n++)
        for (int ci = 0; ci < C; ci++)
            for (int ih = 0; ih < H; ih++)
                for (int iw = 0; iw < W; iw++) {
                    const int group = ci / Cg, c = ci - group * Cg;
                    double sum = 0.0;
                    for (int k = group * Kg; k < (group + 1) * Kg; k++)
                        for (int r = 0; r < R; r++) {
                            const int dh = ih + p->pad_top - r * DH;
                            if (dh < 0 || dh % p->stride_h != 0 || dh / p->stride_h >= OH)
                                continue;
                            const int oh = dh / p->stride_h;
                            for (int s = 0; s < S; s++) {
                                const int dw = iw + p->pad_left - s * DW;
                                if (dw < 0 || dw % p->stride_w != 0 || dw / p->stride_w >= OW)
                                    continue;
                                const int ow = dw / p->stride_w;
                                sum += (double)weight[((int64_t)(k * Cg + c) * R + r) * S + s] *
                                       grad_output[((int64_t)(n * K + k) * OH + oh) * OW + ow];
                            }
                        }
                    float *at = &grad_input[((int64_t)(n * C + ci) * H + ih) * W + iw];
                    *at = accumulate ? *at + (float)sum : (float)sum;
                }
}

void conv2d_backward_weights_ref(const conv2d_params *p, const float *input,
                                 const float *grad_output, float *grad_weight, float *grad_bias) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    const int Cg = C / conv2d_groups(p), Kg = K / conv2d_groups(p);
    const int DH = conv2d_dilation_h(p), DW = conv2d_dilation_w(p);
    for (int k = 0; k < K; k++)
        for (int c = 0; c < Cg; c++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    const int ci = k / Kg * Cg + c;
                    double sum = 0.0;
                    for (int n = 0; n < p->batch; n++)
                        for (int oh = 0; oh < OH; oh++) {
                            const int ih = oh * p->stride_h - p->pad_top + r * DH;
                            if (ih < 0 || ih >= H)
                                continue;
                            for (int ow = 0; ow < OW; ow++) {
                                const int iw = ow * p->stride_w - p->pad_left + s * DW;
                                if (iw < 0 || iw >= W)
                                    continue;
                                sum += (double)
                                           grad_output[((int64_t)(n * K + k) * OH + oh) * OW + ow] *
                                       input[((int64_t)(n * C + ci) * H + ih) * W + iw];
                            }
                        }
                    grad_weight[((int64_t)(k * Cg + c) * R + r) * S + s] = (float)sum;
                }
    if (p->has_bias)
        reduce_channels_ref(p->batch, K, OH * OW, grad_output, grad_bias);
}
