/* Max and average pooling as plain loops, with PyTorch's padding rules
 * (count_include_pad either way for the average). */
#include "ops.h"

#include <math.h>

/* Average pooling's divisor for the window at (h0, w0): the window clipped
 * to the padded input, or to the input alone with exclude_pad. */
static int average_divisor(const pool2d_params *p, int h0, int w0) {
    const int H = p->in_height, W = p->in_width;
    const int top = p->exclude_pad ? 0 : p->pad_top, left = p->exclude_pad ? 0 : p->pad_left;
    const int bottom = p->exclude_pad ? 0 : pool2d_pad_bottom(p);
    const int right = p->exclude_pad ? 0 : pool2d_pad_right(p);
    const int h_begin = h0 > -top ? h0 : -top, w_begin = w0 > -left ? w0 : -left;
    const int h_end = h0 + p->size_h < H + bottom ? h0 + p->size_h : H + bottom;
    const int w_end = w0 + p->size_w < W + right ? w0 + p->size_w : W + right;
    return (h_end - h_begin) * (w_end - w_begin);
}

void pool2d_forward_ref(const pool2d_params *p, const float *input, float *output) {
    const int H = p->in_height, W = p->in_width, OH = p->out_height, OW = p->out_width;
    for (int plane = 0; plane < p->batch * p->channels; plane++) {
        const float *in = input + (int64_t)plane * H * W;
        float *out = output + (int64_t)plane * OH * OW;
        for (int oh = 0; oh < OH; oh++)
            for (int ow = 0; ow < OW; ow++) {
                const int h0 = oh * p->stride_h - p->pad_top;
                const int w0 = ow * p->stride_w - p->pad_left;
                const int h_begin = h0 > 0 ? h0 : 0;
                const int w_begin = w0 > 0 ? w0 : 0;
                const int h_end = h0 + p->size_h < H ? h0 + p->size_h : H;
                const int w_end = w0 + p->size_w < W ? w0 + p->size_w : W;
                const int divisor = average_divisor(p, h0, w0);
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

/* Output o covers input position i along an axis when
 * o * stride - pad <= i < o * stride - pad + size; these give the range of such o
 * for q = i + pad, the end exclusive and clipped to the outputs that exist. */
static int first_covering_output(int padded_position, int size, int stride) {
    return padded_position < size ? 0 : (padded_position - size) / stride + 1;
}

static int covering_outputs_end(int padded_position, int stride, int outputs) {
    int end = padded_position / stride + 1;
    return end < outputs ? end : outputs;
}

/* The plane offset max pooling chose for a window clipped to the input: the
 * first maximum in row-major order, with the forward's test (a NaN is the
 * maximum); a window of -inf keeps its first element, as in PyTorch. */
static int window_argmax(const float *in, int W, int h_begin, int h_end, int w_begin, int w_end) {
    int chosen = h_begin * W + w_begin;
    float best = -INFINITY;
    for (int h = h_begin; h < h_end; h++)
        for (int w = w_begin; w < w_end; w++) {
            const float v = in[h * W + w];
            if (v > best || isnan(v)) {
                best = v;
                chosen = h * W + w;
            }
        }
    return chosen;
}

/* Written as a gather over the windows covering each input element, like the
 * kernels, so each sum is accumulated in double without a scratch buffer.
 * Max pooling finds each window's choice again rather than keeping the
 * forward's: the reference stays independent of the device's indices. */
void pool2d_backward_ref(const pool2d_params *p, const float *input, const float *grad_output,
                         float *grad_input, int accumulate) {
    const int H = p->in_height, W = p->in_width, OH = p->out_height, OW = p->out_width;
    for (int plane = 0; plane < p->batch * p->channels; plane++) {
        const float *in = input + (int64_t)plane * H * W;
        const float *grad = grad_output + (int64_t)plane * OH * OW;
        float *grad_in = grad_input + (int64_t)plane * H * W;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                const int oh_begin = first_covering_output(h + p->pad_top, p->size_h, p->stride_h);
                const int oh_end = covering_outputs_end(h + p->pad_top, p->stride_h, OH);
                const int ow_begin = first_covering_output(w + p->pad_left, p->size_w, p->stride_w);
                const int ow_end = covering_outputs_end(w + p->pad_left, p->stride_w, OW);
                double sum = 0.0;
                for (int oh = oh_begin; oh < oh_end; oh++)
                    for (int ow = ow_begin; ow < ow_end; ow++) {
                        const int h0 = oh * p->stride_h - p->pad_top;
                        const int w0 = ow * p->stride_w - p->pad_left;
                        const double g = grad[oh * OW + ow];
                        if (p->kind == POOL_MAX) {
                            const int h_begin = h0 > 0 ? h0 : 0;
                            const int w_begin = w0 > 0 ? w0 : 0;
                            const int h_end = h0 + p->size_h < H ? h0 + p->size_h : H;
                            const int w_end = w0 + p->size_w < W ? w0 + p->size_w : W;
                            if (window_argmax(in, W, h_begin, h_end, w_begin, w_end) == h * W + w)
                                sum += g;
                        } else {
                            sum += g / average_divisor(p, h0, w0);
                        }
                    }
                /* The sum rounded once, then added: the kernels add in float, so the
                 * two differ by rounding only. */
                grad_in[h * W + w] = accumulate ? grad_in[h * W + w] + (float)sum : (float)sum;
            }
    }
}
