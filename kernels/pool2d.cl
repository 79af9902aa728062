/* Max and average pooling, NCHW, one output per work-item (pooling reads
 * each input about once, so it is bound by memory, not arithmetic).
 *
 * PyTorch's semantics: max pooling ignores the padding; average pooling
 * divides by the window clipped to the padded input (count_include_pad=True).
 * The output size, ceil mode included, is decided by the host.
 */

__kernel void maxpool2d_forward(const __global float *restrict input,
                                __global float *restrict output, const int C, const int H,
                                const int W, const int OH, const int OW, const int size_h,
                                const int size_w, const int stride_h, const int stride_w,
                                const int pad_top, const int pad_left, const int total) {
    const int index = get_global_id(0);
    if (index >= total)
        return;
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int plane = index / (OW * OH); /* n * C + c */
    const int h0 = oh * stride_h - pad_top;
    const int w0 = ow * stride_w - pad_left;
    const int h_begin = max(h0, 0), h_end = min(h0 + size_h, H);
    const int w_begin = max(w0, 0), w_end = min(w0 + size_w, W);
    const __global float *in = input + plane * H * W;
    float best = -INFINITY;
    for (int h = h_begin; h < h_end; h++)
        for (int w = w_begin; w < w_end; w++) {
            const float v = in[h * W + w];
            /* NaN propagates, as in PyTorch. */
            if (v > best || isnan(v))
                best = v;
        }
    output[index] = best;
}

__kernel void avgpool2d_forward(const __global float *restrict input,
                                __global float *restrict output, const int C, const int H,
                                const int W, const int OH, const int OW, const int size_h,
                                const int size_w, const int stride_h, const int stride_w,
                                const int pad_top, const int pad_left, const int total) {
    const int index = get_global_id(0);
    if (index >= total)
        return;
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int plane = index / (OW * OH);
    const int h0 = oh * stride_h - pad_top;
    const int w0 = ow * stride_w - pad_left;
    const int divisor =
        (min(h0 + size_h, H + pad_top) - h0) * (min(w0 + size_w, W + pad_left) - w0);
    const int h_begin = max(h0, 0), h_end = min(h0 + size_h, H);
    const int w_begin = max(w0, 0), w_end = min(w0 + size_w, W);
    const __global float *in = input + plane * H * W;
    float sum = 0.0f;
    for (int h = h_begin; h < h_end; h++)
        for (int w = w_begin; w < w_end; w++)
            sum += in[h * W + w];
    output[index] = sum / (float)divisor;
}
