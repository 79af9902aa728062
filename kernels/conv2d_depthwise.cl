/* Grouped convolutions with few input channels per group, above all
 * depthwise ones (groups = C, each output channel reading one input channel;
 * K = m*C with a channel multiplier m): each work-item sums its group's few
 * channels x R x S taps directly for WPT_W consecutive results of one row.
 * The GEMM-style kernels of conv2d.cl and conv2d_direct.cl would reduce over
 * one channel's R*S taps there, with tiles or vectors of channels left
 * mostly empty.
 *
 * NCHW float32, PyTorch's semantics, as conv2d.cl with groups and dilation:
 * with Cg = C / groups and Kg = K / groups input and output channels per
 * group, output channel k reads input channels (k / Kg) * Cg .. + Cg-1, and
 * weight (K, Cg, R, S)'s tap (r, s) reads the input dilation_h*r rows and
 * dilation_w*s columns from the window's corner
 * (oh*stride_h - pad_top, ow*stride_w - pad_left).
 *
 * -D WPT_W: results per work-item along a row, 1 (one result per work-item:
 * GPUs) or more (CPU devices, where PoCL's cost per work-item would
 * otherwise outweigh a few taps' work: 16 runs 3x3 depthwise layers about
 * five times as fast as 1). The taps read a clamped address and select zero
 * outside the input rather than branching, so the results' loops stay
 * straight-line code. Any shape works. Launch: forward global
 * (ceil(OW / WPT_W), OH, N*K), backward-data (ceil(W / WPT_W), H, N*C), any
 * local size; backward-weights as described there. */
#ifndef WPT_W
#define WPT_W 1
#endif

/* output[n, k, oh, ow] = bias[k] + sum over c < Cg, r, s of
 * weight[k, c, r, s] * input[n, group*Cg + c, ih, iw]. */
__kernel void conv2d_depthwise_forward(
    const __global float *restrict input, const __global float *restrict weight,
    const __global float *restrict bias, __global float *restrict output, const int C, const int H,
    const int W, const int K, const int R, const int S, const int stride_h, const int stride_w,
    const int pad_top, const int pad_left, const int dilation_h, const int dilation_w, const int OH,
    const int OW, const int groups, const int has_bias) {
    const int first_ow = get_global_id(0) * WPT_W;
    const int oh = get_global_id(1);
    const int plane = get_global_id(2); /* n*K + k */
    if (first_ow >= OW || oh >= OH)
        return;
    const int n = plane / K;
    const int k = plane - n * K;
    const int Cg = C / groups;
    const int first_channel = k / (K / groups) * Cg;
    const int top = oh * stride_h - pad_top;
    const int left = first_ow * stride_w - pad_left;
    const __global float *image = input + (n * C + first_channel) * H * W;
    const __global float *filter = weight + k * Cg * R * S;

    float sum[WPT_W];
    for (int j = 0; j < WPT_W; j++)
        sum[j] = 0.0f;
    for (int c = 0; c < Cg; c++)
        for (int r = 0; r < R; r++) {
            const int ih = top + r * dilation_h;
            if (ih < 0 || ih >= H)
                continue;
            const __global float *line = image + (c * H + ih) * W;
            for (int s = 0; s < S; s++) {
                const float w = filter[(c * R + r) * S + s];
#pragma unroll
                for (int j = 0; j < WPT_W; j++) {
                    const int iw = left + j * stride_w + s * dilation_w;
                    const int inside = iw >= 0 && iw < W;
                    const float x = line[inside ? iw : 0];
                    sum[j] = fma(w, inside ? x : 0.0f, sum[j]);
                }
            }
        }
    const float add = has_bias ? bias[k] : 0.0f;
    __global float *out = output + (plane * OH + oh) * OW;
    for (int j = 0; j < WPT_W && first_ow + j < OW; j++)
        out[first_ow + j] = sum[j] + add;
}

/* grad_input[n, ci, ih, iw] = sum over the Kg output channels k of ci's group
 * and taps r, s with ih = oh*stride_h - pad_top + r*dilation_h (and the same
 * along the width) for some oh in [0, OH) of
 * weight[k, ci - group*Cg, r, s] * grad_output[n, k, oh, ow]. Every element
 * is written, zero where no output reaches it. */
__kernel void conv2d_depthwise_backward_data(const __global float *restrict grad_output,
                                             const __global float *restrict weight,
                                             __global float *restrict grad_input, const int C,
                                             const int H, const int W, const int K, const int R,
                                             const int S, const int stride_h, const int stride_w,
                                             const int pad_top, const int pad_left,
                                             const int dilation_h, const int dilation_w,
                                             const int OH, const int OW, const int groups) {
    const int first_iw = get_global_id(0) * WPT_W;
    const int ih = get_global_id(1);
    const int plane = get_global_id(2); /* n*C + ci */
    if (first_iw >= W || ih >= H)
        return;
    const int n = plane / C;
    const int ci = plane - n * C;
    const int Cg = C / groups, Kg = K / groups;
    const int group = ci / Cg;
    const int c = ci - group * Cg;

    float sum[WPT_W];
    for (int j = 0; j < WPT_W; j++)
        sum[j] = 0.0f;
    for (int k = group * Kg; k < (group + 1) * Kg; k++) {
        const __global float *gradient = grad_output + (n * K + k) * OH * OW;
        const __global float *filter = weight + (k * Cg + c) * R * S;
        for (int r = 0; r < R; r++) {
            /* The output row whose window reaches ih with tap r, if any. */
            const int dh = ih + pad_top - r * dilation_h;
            const int oh = dh / stride_h;
            if (dh < 0 || oh * stride_h != dh || oh >= OH)
                continue;
            const __global float *line = gradient + oh * OW;
            for (int s = 0; s < S; s++) {
                const float w = filter[r * S + s];
                /* The first column's offset in the output's strided grid. */
                const int dw = first_iw + pad_left - s * dilation_w;
                if (stride_w == 1) {
                    /* Every column is reached (if inside the output): three
                     * times as fast on PoCL as the phases below. */
#pragma unroll
                    for (int j = 0; j < WPT_W; j++) {
                        const int ow = dw + j;
                        const int reaches = ow >= 0 && ow < OW;
                        const float g = line[reaches ? ow : 0];
                        sum[j] = fma(w, reaches ? g : 0.0f, sum[j]);
                    }
                    continue;
                }
                /* dw = ow * stride_w + phase (floor division); each next
                 * column moves the phase on by one, with no division. */
                int ow = dw >= 0 ? dw / stride_w : -((stride_w - 1 - dw) / stride_w);
                int phase = dw - ow * stride_w;
#pragma unroll
                for (int j = 0; j < WPT_W; j++) {
                    const int reaches = phase == 0 && ow >= 0 && ow < OW;
                    const float g = line[reaches ? ow : 0];
                    sum[j] = fma(w, reaches ? g : 0.0f, sum[j]);
                    const int wraps = phase == stride_w - 1;
                    phase = wraps ? 0 : phase + 1;
                    ow += wraps;
                }
            }
        }
    }
    __global float *out = grad_input + (plane * H + ih) * W;
    for (int j = 0; j < WPT_W && first_iw + j < W; j++)
        out[first_iw + j] = sum[j];
}

/* grad_weight[k, c, r, s] = sum over positions (n, oh, ow) of
 * grad_output[n, k, oh, ow] * input[n, group*Cg + c, ih, iw]: one work-item
 * per weight i < count = K*Cg*R*S (the first dimension) and slice of the
 * positions, slice_length each (the second). With one slice the sums go to
 * grad_weight, otherwise slice z's to partial[z * count + i], which
 * conv2d_sum_slices (conv2d.cl) adds. Each output row's products are summed
 * from zero before they join the total, so no float sum runs over a whole
 * slice. WPT_W plays no part. */
__kernel void conv2d_depthwise_backward_weights(
    const __global float *restrict input, const __global float *restrict grad_output,
    __global float *restrict partial, const int C, const int H, const int W, const int K,
    const int R, const int S, const int stride_h, const int stride_w, const int pad_top,
    const int pad_left, const int dilation_h, const int dilation_w, const int OH, const int OW,
    const int groups, const int positions, const int slice_length, const int count) {
    const int index = get_global_id(0);
    const int slice = get_global_id(1);
    if (index >= count)
        return;
    const int s = index % S;
    const int r = index / S % R;
    const int Cg = C / groups;
    const int c = index / (S * R) % Cg;
    const int k = index / (S * R * Cg);
    const int channel = k / (K / groups) * Cg + c;
    const int OHW = OH * OW;
    /* Where tap (r, s) of output position (0, 0) reads; an output position
     * (oh, ow) reads oh*stride_h rows and ow*stride_w columns further. */
    const int tap_h = r * dilation_h - pad_top;
    const int tap_w = s * dilation_w - pad_left;
    /* The output columns whose tap lies inside the input: [first_ow, end_ow). */
    const int first_ow = tap_w >= 0 ? 0 : (-tap_w + stride_w - 1) / stride_w;
    const int end_ow = W - tap_w <= 0 ? 0 : min(OW, (W - tap_w + stride_w - 1) / stride_w);

    const int first_position = slice * slice_length;
    const int end_position = min(first_position + slice_length, positions);
    float total = 0.0f;
    int position = first_position;
    while (position < end_position) {
        /* One output row (n, oh), or the part of it in this slice. */
        const int n = position / OHW;
        const int pixel = position - n * OHW;
        const int oh = pixel / OW;
        const int row_start = pixel - oh * OW;
        const int row_end = min(OW, row_start + (end_position - position));
        const int ih = oh * stride_h + tap_h;
        if (ih >= 0 && ih < H) {
            const __global float *gradient = grad_output + (n * K + k) * OHW + oh * OW;
            const __global float *line = input + ((n * C + channel) * H + ih) * W;
            float row_sum = 0.0f;
            for (int ow = max(row_start, first_ow); ow < min(row_end, end_ow); ow++)
                row_sum = fma(gradient[ow], line[ow * stride_w + tap_w], row_sum);
            total += row_sum;
        }
        position += row_end - row_start;
    }
    partial[slice * count + index] = total;
}
