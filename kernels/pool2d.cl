/* Max and average pooling, NCHW (pooling reads each input about once, so it
 * is bound by memory, not arithmetic).
 *
 * PyTorch's semantics: max pooling ignores the padding; average pooling
 * divides by the window clipped to the padded input (count_include_pad=True)
 * or, with exclude_pad, by its cells on the input (count_include_pad=False).
 * Padding may differ before and after (pad_top/pad_bottom, pad_left/pad_right).
 * The output size, ceil mode included, is decided by the host.
 *
 * -DWINDOW_H=.. -DWINDOW_W=.. make the window size a constant (the host
 * passes the layer's), so the window loops unroll and a CPU compiler can
 * vectorise across work-items; without them the size_h/size_w arguments count.
 * ITEM_SPAN (-D, default 1) is the run of elements of a row one work-item
 * of max pooling's backward takes, as in kernels/activation.cl, and the run
 * of outputs of a row one work-item of max pooling's forward and of the 2x2
 * kernels (maxpool2d_*_2x2, below) takes.
 */
#ifdef WINDOW_H
#define window_h WINDOW_H
#define window_w WINDOW_W
#else
#define window_h size_h
#define window_w size_w
#endif
#ifndef ITEM_SPAN
#define ITEM_SPAN 1
#endif

/* Average pooling's divisor for the window at (h0, w0): the window clipped
 * to the padded input (count_include_pad=True), or with exclude_pad to the
 * input alone. */
int average_divisor(const int H, const int W, const int size_h, const int size_w,
                    const int pad_top, const int pad_left, const int pad_bottom,
                    const int pad_right, const int exclude_pad, const int h0, const int w0) {
    const int top = exclude_pad ? 0 : pad_top, left = exclude_pad ? 0 : pad_left;
    const int bottom = exclude_pad ? 0 : pad_bottom, right = exclude_pad ? 0 : pad_right;
    return (min(h0 + size_h, H + bottom) - max(h0, -top)) *
           (min(w0 + size_w, W + right) - max(w0, -left));
}

/* The maximum of the window at (h0, w0) clipped to the input and, in
 * *chosen, its offset in the plane: the first maximum in row-major order. A
 * NaN is the maximum (the last NaN, as in PyTorch), and a window of -inf
 * keeps its first element, as PyTorch's index starts there. */
float window_max(const __global float *in, const int H, const int W, const int size_h,
                 const int size_w, const int h0, const int w0, int *chosen) {
    float best = -INFINITY;
    int at = max(h0, 0) * W + max(w0, 0);
#pragma unroll
    for (int dh = 0; dh < window_h; dh++) {
        const int h = h0 + dh;
#pragma unroll
        for (int dw = 0; dw < window_w; dw++) {
            const int w = w0 + dw;
            if (h < 0 || h >= H || w < 0 || w >= W)
                continue;
            const float v = in[h * W + w];
            /* NaN propagates, as in PyTorch. */
            if (v > best || isnan(v)) {
                best = v;
                at = h * W + w;
            }
        }
    }
    *chosen = at;
    return best;
}

/* A work-item's run of up to ITEM_SPAN elements of one row of `width`
 * elements, rows counted over all planes: run r of row `row` (plane *
 * height + y) covers columns [begin, end). */
typedef struct row_run {
    int row, plane, y, begin, end;
} row_run;

row_run row_run_of(const int run, const int height, const int width) {
    row_run r;
    const int runs_per_row = (width + ITEM_SPAN - 1) / ITEM_SPAN;
    r.row = run / runs_per_row;
    r.begin = (run - r.row * runs_per_row) * ITEM_SPAN;
    r.end = min(r.begin + ITEM_SPAN, width);
    r.plane = r.row / height;
    r.y = r.row - r.plane * height;
    return r;
}

/* Max pooling's forward, any shape: a work-item takes a run of up to
 * ITEM_SPAN outputs of one output row (on PoCL's CPU device, AMD EPYC AVX2,
 * 1.2 to 1.35 times as fast as one output per work-item on 3x3 windows).
 * A forward that backward follows (save) also writes each window's choice
 * (its offset in the input plane, PyTorch's indices), so backward need not
 * look for the maximum again; without save, indices is not touched (any
 * buffer may be passed). Launch planes * OH * ceil(OW / ITEM_SPAN)
 * work-items. */
__kernel void maxpool2d_forward(const __global float *restrict input,
                                __global float *restrict output, __global int *restrict indices,
                                const int save, const int C, const int H, const int W,
                                const int OH, const int OW, const int size_h, const int size_w,
                                const int stride_h, const int stride_w, const int pad_top,
                                const int pad_left, const int pad_bottom, const int pad_right,
                                const int exclude_pad, const int runs) {
    const int run = get_global_id(0);
    if (run >= runs)
        return;
    const row_run r = row_run_of(run, OH, OW);
    const int row = r.row, plane = r.plane, oh = r.y, ow_begin = r.begin, end = r.end;
    const __global float *in = input + plane * H * W;
    for (int ow = ow_begin; ow < end; ow++) {
        int chosen;
        output[row * OW + ow] = window_max(in, H, W, size_h, size_w, oh * stride_h - pad_top,
                                           ow * stride_w - pad_left, &chosen);
        if (save)
            indices[row * OW + ow] = chosen;
    }
}

/* Max pooling 2x2 at stride 2 without padding, every window on the input
 * (2 * OH <= H, 2 * OW <= W; the host's choice, maxpool2d_forward takes
 * every other shape). A work-item takes a run of up to ITEM_SPAN outputs of
 * one output row, 4 at a time: one vector load of 8 contiguous inputs from
 * each of the windows' two rows, whose even and odd lanes are the windows'
 * left and right columns. On PoCL's CPU device (AMD EPYC, AVX2) this took
 * a tenth of the time of one output per work-item on 64 channels of 56x56.
 * (8 outputs at a time were no faster on 56x56 and slower on rows of 7 or
 * 14 outputs, and 16-float vectors make PoCL warn on CPUs without
 * AVX-512.) */
__kernel void maxpool2d_forward_2x2(const __global float *restrict input,
                                    __global float *restrict output, __global int *restrict indices,
                                    const int save, const int H, const int W, const int OH,
                                    const int OW, const int runs) {
    const int run = get_global_id(0);
    if (run >= runs)
        return;
    const row_run r = row_run_of(run, OH, OW);
    const int row = r.row, plane = r.plane, oh = r.y, ow_begin = r.begin, end = r.end;
    const __global float *in = input + plane * H * W;
    __global float *out = output + row * OW;
    __global int *out_indices = indices + row * OW;
    /* A run shorter than a vector: one output at a time. */
    if (end - ow_begin < 4) {
        for (int ow = ow_begin; ow < end; ow++) {
            int chosen;
            out[ow] = window_max(in, H, W, 2, 2, 2 * oh, 2 * ow, &chosen);
            if (save)
                out_indices[ow] = chosen;
        }
        return;
    }
    const int top = 2 * oh * W; /* the windows' upper row, offset in the plane */
    /* The last vector ends at the run's end: when the run is no multiple of 4
     * it overlaps the one before and writes some outputs again, with the
     * same values. */
    for (int next = ow_begin; next < end; next += 4) {
        const int ow = min(next, end - 4);
        const float8 upper = vload8(0, in + top + 2 * ow);
        const float8 lower = vload8(0, in + top + W + 2 * ow);
        const int4 left = top + 2 * (ow + (int4)(0, 1, 2, 3)); /* each window's first element */
        /* window_max's test in row-major order: the first maximum, the last
         * NaN. Starting from the first element rather than -inf keeps it
         * just as window_max does when nothing is larger (a window of -inf). */
        float4 best = upper.even;
        int4 chosen = left;
        int4 take = isnan(upper.odd) | (upper.odd > best);
        best = select(best, upper.odd, take);
        chosen = select(chosen, left + 1, take);
        take = isnan(lower.even) | (lower.even > best);
        best = select(best, lower.even, take);
        chosen = select(chosen, left + W, take);
        take = isnan(lower.odd) | (lower.odd > best);
        best = select(best, lower.odd, take);
        chosen = select(chosen, left + W + 1, take);
        vstore4(best, 0, out + ow);
        if (save)
            vstore4(chosen, 0, out_indices + ow);
    }
}

/* One output per work-item. */
__kernel void avgpool2d_forward(const __global float *restrict input,
                                __global float *restrict output, const int C, const int H,
                                const int W, const int OH, const int OW, const int size_h,
                                const int size_w, const int stride_h, const int stride_w,
                                const int pad_top, const int pad_left, const int pad_bottom,
                                const int pad_right, const int exclude_pad, const int total) {
    const int index = get_global_id(0);
    if (index >= total)
        return;
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int plane = index / (OW * OH);
    const int h0 = oh * stride_h - pad_top;
    const int w0 = ow * stride_w - pad_left;
    const int divisor = average_divisor(H, W, size_h, size_w, pad_top, pad_left, pad_bottom,
                                        pad_right, exclude_pad, h0, w0);
    const __global float *in = input + plane * H * W;
    float sum = 0.0f;
#pragma unroll
    for (int dh = 0; dh < window_h; dh++) {
        const int h = h0 + dh;
#pragma unroll
        for (int dw = 0; dw < window_w; dw++) {
            const int w = w0 + dw;
            if (h >= 0 && h < H && w >= 0 && w < W)
                sum += in[h * W + w];
        }
    }
    output[index] = sum / (float)divisor;
}

/* Backward passes. Every grad_input element belongs to one work-item (its
 * own, or its run's), which sums the gradients of the output windows that
 * cover it, so no two work-items write the same element (no atomics) and
 * the sum order is fixed (deterministic). Every grad_input element is
 * written, zero when no window covers it (stride larger than the window);
 * with accumulate the gradient is added to what grad_input holds (the input
 * has other readers).
 *
 * Output o covers input position i along an axis when
 *   o * stride - pad <= i < o * stride - pad + size,
 * so with q = i + pad: o from (q - size) / stride + 1 (0 when q < size) up to
 * q / stride, clipped to the outputs that exist.
 */

int first_covering_output(const int padded_position, const int size, const int stride) {
    return padded_position < size ? 0 : (padded_position - size) / stride + 1;
}

/* One past the last output covering the position. */
int covering_outputs_end(const int padded_position, const int stride, const int outputs) {
    return min(padded_position / stride + 1, outputs);
}

/* Max pooling from the indices its forward wrote. A work-item owns a run of
 * up to ITEM_SPAN elements of one input row: it zeroes them (unless
 * accumulating), then visits in row-major order every window that covers
 * one of them and adds the window's gradient to the element the window
 * chose, if that is one of its own. So each element gets the sum of the
 * windows that chose it, in row-major window order, with no atomics. With a
 * run of one element this is the gather of each element over its covering
 * windows; a longer run reads each covering window once, not once per
 * element it covers. (A gather per element inside the run does not
 * vectorise on PoCL's CPU target either: LLVM's cost model refuses its
 * loads from computed places, so it would only do more work.)
 * Launch `runs` = planes * H * ceil(W / ITEM_SPAN) work-items. */
__kernel void maxpool2d_backward_indices(
    const __global int *restrict indices, const __global float *restrict grad_output,
    __global float *restrict grad_input, const int C, const int H, const int W, const int OH,
    const int OW, const int size_h, const int size_w, const int stride_h, const int stride_w,
    const int pad_top, const int pad_left, const int pad_bottom, const int pad_right,
    const int exclude_pad, const int accumulate, const int runs) {
    const int run = get_global_id(0);
    if (run >= runs)
        return;
    const row_run r = row_run_of(run, H, W);
    const int row = r.row, plane = r.plane, h = r.y, w_begin = r.begin;
    const int length = r.end - r.begin;
    __global float *out = grad_input + row * W + w_begin;
    if (!accumulate)
        for (int i = 0; i < length; i++)
            out[i] = 0.0f;
    const int oh_begin = first_covering_output(h + pad_top, size_h, stride_h);
    const int oh_end = covering_outputs_end(h + pad_top, stride_h, OH);
    const int ow_begin = first_covering_output(w_begin + pad_left, size_w, stride_w);
    const int ow_end = covering_outputs_end(w_begin + length - 1 + pad_left, stride_w, OW);
    const __global int *chosen = indices + plane * OH * OW;
    const __global float *grad = grad_output + plane * OH * OW;
    const int first = h * W + w_begin; /* the run's offset in the plane */
    for (int oh = oh_begin; oh < oh_end; oh++)
        for (int ow = ow_begin; ow < ow_end; ow++) {
            const int o = oh * OW + ow;
            const int at = chosen[o] - first;
            if (at >= 0 && at < length)
                out[at] += grad[o];
        }
}

/* Max pooling's backward for maxpool2d_forward_2x2's shapes. Its windows do
 * not overlap, so each input element is in one window at most, and a
 * work-item writes the whole windows of its run of up to ITEM_SPAN outputs
 * of one output row without a race: the window's gradient to the element
 * its index names, 0 to the other three (with accumulate, they keep their
 * values); the same sums as maxpool2d_backward_indices (0 + g, or with
 * accumulate the element + g). Elements in no window (an odd last row or
 * column) are the host's to zero. 4 outputs at a time: two vector stores
 * per window row instead of a run's search through the indices of every
 * window that covers it. The rest of the run one output at a time (a
 * vector overlapping the one before would add twice with accumulate). */
__kernel void maxpool2d_backward_2x2(const __global int *restrict indices,
                                     const __global float *restrict grad_output,
                                     __global float *restrict grad_input, const int H, const int W,
                                     const int OH, const int OW, const int accumulate,
                                     const int runs) {
    const int run = get_global_id(0);
    if (run >= runs)
        return;
    const row_run r = row_run_of(run, OH, OW);
    const int row = r.row, plane = r.plane, oh = r.y, ow_begin = r.begin, end = r.end;
    __global float *grad_in = grad_input + plane * H * W;
    const __global int *chosen = indices + row * OW;
    const __global float *grad = grad_output + row * OW;
    const int top = 2 * oh * W; /* the windows' upper row, offset in the plane */
    int ow = ow_begin;
    for (; ow + 4 <= end; ow += 4) {
        const int4 at = vload4(0, chosen + ow);
        const float4 g = vload4(0, grad + ow);
        const int4 left = top + 2 * (ow + (int4)(0, 1, 2, 3)); /* each window's first element */
#pragma unroll
        for (int dh = 0; dh < 2; dh++) {
            __global float *place = grad_in + top + dh * W + 2 * ow;
            const float8 old = accumulate ? vload8(0, place) : (float8)(0.0f);
            float8 sums;
            sums.even = select(old.even, old.even + g, at == left + dh * W);
            sums.odd = select(old.odd, old.odd + g, at == left + dh * W + 1);
            vstore8(sums, 0, place);
        }
    }
    for (; ow < end; ow++) {
        const int left = top + 2 * ow;
#pragma unroll
        for (int dh = 0; dh < 2; dh++)
#pragma unroll
            for (int dw = 0; dw < 2; dw++) {
                const int place = left + dh * W + dw;
                const float old = accumulate ? grad_in[place] : 0.0f;
                grad_in[place] = chosen[ow] == place ? old + grad[ow] : old;
            }
    }
}

__kernel void avgpool2d_backward(const __global float *restrict grad_output,
                                 __global float *restrict grad_input, const int C, const int H,
                                 const int W, const int OH, const int OW, const int size_h,
                                 const int size_w, const int stride_h, const int stride_w,
                                 const int pad_top, const int pad_left, const int pad_bottom,
                                 const int pad_right, const int exclude_pad, const int accumulate,
                                 const int total) {
    const int index = get_global_id(0);
    if (index >= total)
        return;
    const int w = index % W;
    const int h = (index / W) % H;
    const int plane = index / (W * H);
    const int oh_begin = first_covering_output(h + pad_top, size_h, stride_h);
    const int oh_end = covering_outputs_end(h + pad_top, stride_h, OH);
    const int ow_begin = first_covering_output(w + pad_left, size_w, stride_w);
    const int ow_end = covering_outputs_end(w + pad_left, stride_w, OW);
    const __global float *grad = grad_output + plane * OH * OW;
    float sum = 0.0f;
    for (int oh = oh_begin; oh < oh_end; oh++) {
        const int h0 = oh * stride_h - pad_top;
        for (int ow = ow_begin; ow < ow_end; ow++) {
            const int w0 = ow * stride_w - pad_left;
            /* the forward's divisor */
            sum += grad[oh * OW + ow] / (float)average_divisor(H, W, size_h, size_w, pad_top,
                                                               pad_left, pad_bottom, pad_right,
                                                               exclude_pad, h0, w0);
        }
    }
    grad_input[index] = accumulate ? grad_input[index] + sum : sum;
}

/* Average pooling's backward for windows that do not overlap (stride >= size
 * on both axes), one work-item per output: each input element belongs to at
 * most one window, so the window's share can be written straight to its
 * input elements without a race. Without accumulate the host zeroes
 * grad_input first for the elements no window covers. A scatter reads each
 * gradient once; the gather above reads every covering window again for
 * every element. */
__kernel void avgpool2d_backward_scatter(const __global float *restrict grad_output,
                                         __global float *restrict grad_input, const int C,
                                         const int H, const int W, const int OH, const int OW,
                                         const int size_h, const int size_w, const int stride_h,
                                         const int stride_w, const int pad_top, const int pad_left,
                                         const int pad_bottom, const int pad_right,
                                         const int exclude_pad, const int accumulate,
                                         const int total) {
    const int index = get_global_id(0);
    if (index >= total)
        return;
    const int ow = index % OW;
    const int oh = (index / OW) % OH;
    const int plane = index / (OW * OH);
    const int h0 = oh * stride_h - pad_top;
    const int w0 = ow * stride_w - pad_left;
    const int divisor = average_divisor(H, W, size_h, size_w, pad_top, pad_left, pad_bottom,
                                        pad_right, exclude_pad, h0, w0);
    const int h_begin = max(h0, 0), h_end = min(h0 + size_h, H);
    const int w_begin = max(w0, 0), w_end = min(w0 + size_w, W);
    const float share = grad_output[index] / (float)divisor;
    __global float *grad = grad_input + plane * H * W;
    for (int h = h_begin; h < h_end; h++)
        for (int w = w_begin; w < w_end; w++)
            grad[h * W + w] = accumulate ? grad[h * W + w] + share : share;
}
