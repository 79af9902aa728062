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
 * -D WPT_W: results per step of a work-item along a row, 1 (one result per
 * work-item: GPUs) or more (CPU devices, where PoCL's cost per work-item
 * would otherwise outweigh a few taps' work: 16 ran 3x3 depthwise layers
 * about five times as fast as 1). With WPT_W 1 (and for strides of 3 or
 * more) the taps read a clamped address and select zero outside the input
 * rather than branching, so the results' loops stay straight-line code;
 * otherwise they read vectors (see ROW_VECTORS). -D TILE_ROWS: the rows of results a work-item computes
 * (forward: output rows, backward-data: input rows), 1 or more; with row
 * vectors each row's sum is a chain of multiply-adds of its own, and 8 rows
 * keep a CPU's two FMA units busy through their latency where one row's
 * chain had bound the work-item. Any shape works. Launch: forward global
 * (X, ceil(OH / TILE_ROWS), N*K), backward-data (X, ceil(H / TILE_ROWS),
 * N*C), any local size, where X is ceil(OW / WPT_W) (resp. W) or fewer: a
 * work-item steps along the row by X * WPT_W results (CHUNK_STEP), so with
 * X = 1 it walks the whole row; backward-weights as described there. */
#ifndef WPT_W
#define WPT_W 1
#endif
#ifndef TILE_ROWS
#define TILE_ROWS 1
#endif

/* Private arrays read or written as vectors. A CPU device may keep them on
 * its worker threads' stacks aligned to no more than 16 bytes, where
 * whether a vector access straddles a 4 KiB page then depends on how deep
 * the process put those stacks (its thread-local storage, i.e. which
 * libraries it loaded): PoCL on an AVX-512 Xeon ran this file's forward in
 * 3.1 ms in one program and 4.8 ms in the same program with 16 more bytes
 * of thread-local storage. Aligned to 64, no access straddles a page. */
#define VECTOR_ALIGNED __attribute__((aligned(64)))

/* With WPT_W 4, 8 or 16 and stride 1 or 2 along the row, a work-item reads
 * each tap's inputs as one vector (for stride 2, the even lanes of two)
 * instead of WPT_W clamped scalar reads; where the taps leave the input it
 * zeroes the lanes outside (lanes_outside) or reads from a span (fill_span).
 * Each result sums the same products in the same order on every walk; a tap
 * in the padding adds w * 0 on the vector walks. */
#if WPT_W == 4 || WPT_W == 8 || WPT_W == 16
#define ROW_VECTORS 1
#define JOIN(a, b) a##b
#define VECTOR_OF(type, n) JOIN(type, n)
#define VECTOR_TYPE(n) VECTOR_OF(float, n)
#define VECTOR_LOAD(n) JOIN(vload, n)
#define VECTOR_STORE(n) JOIN(vstore, n)
typedef VECTOR_TYPE(WPT_W) row_vector;
#define load_row(p) VECTOR_LOAD(WPT_W)(0, p)
#define store_row(v, p) VECTOR_STORE(WPT_W)(v, 0, p)
/* The even lanes of 2 * WPT_W floats, from loads of at most 8: a 16-float
 * vector changes the calling convention where the CPU has no AVX-512, and
 * the compiler says so on stderr. */
#if WPT_W == 16
#define load_row_stride2(p)                                                                        \
    ((float16)(vload8(0, p).even, vload8(1, p).even, vload8(2, p).even, vload8(3, p).even))
#elif WPT_W == 8
#define load_row_stride2(p) ((float8)(vload8(0, p).even, vload8(1, p).even))
#else
#define load_row_stride2(p) (vload8(0, p).even)
#endif
typedef VECTOR_OF(int, WPT_W) lane_mask;
#if WPT_W == 16
#define LANES (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#elif WPT_W == 8
#define LANES (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#else
#define LANES (int4)(0, 1, 2, 3)
#endif
/* Lanes j of a row's vector whose column first + step * j lies outside [0,
 * limit), and all of them when the row itself lies outside: select()'s
 * mask for the zeros that stand in for the padding. */
lane_mask lanes_outside(const int first, const int step, const int limit, const int row_outside) {
    const lane_mask column = LANES * step + first;
    /* Vector comparisons give -1 (every bit set) for true, as select() wants its MSB. */
    return (column < 0) | (column >= limit) | (lane_mask)(row_outside ? -1 : 0);
}
/* Row i of a tile (i < TILE_ROWS), first_row + i * row_step of a plane of
 * `height` rows `width` wide: line[i] is the nearest row of the plane from
 * `column` on, row_outside[i] whether the row lies outside the plane or
 * past the tile's `rows`, its lanes then all zeroed (lanes_outside). */
void tile_lines(const __global float *plane, const int first_row, const int row_step,
                const int height, const int width, const int column, const int rows,
                const __global float *line[TILE_ROWS], int row_outside[TILE_ROWS]) {
#pragma unroll
    for (int i = 0; i < TILE_ROWS; i++) {
        const int row = first_row + i * row_step;
        row_outside[i] = i >= rows || row < 0 || row >= height;
        line[i] = plane + clamp(row, 0, height - 1) * width + column;
    }
}

/* Where a work-item's taps leave the input and their vectors would leave
 * the channel's plane too (a plane's first and last rows), it copies what
 * they read of each input row into a private span, zeros outside the input,
 * and reads each tap's vector from there. A span holds 2 * WPT_W +
 * EDGE_REACH floats, so taps reaching up to EDGE_REACH columns (dilation *
 * (S - 1)) past the first lane's, at strides 1 and 2, take the vector walks;
 * others keep the scalar one. */
#define EDGE_REACH 32
/* Room for the zeros' last vector past a span's 2 * WPT_W + EDGE_REACH floats. */
typedef float edge_span[3 * WPT_W + EDGE_REACH];

/* span[i] = line[first + i] for first + i in [0, limit), else 0, for i < length:
 * zeros a vector at a time, then the part inside the row copied over them,
 * a vector at a time but for its last few floats. */
void fill_span(edge_span span, const __global float *line, const int first, const int length,
               const int limit) {
    for (int i = 0; i < length; i += WPT_W)
        store_row((row_vector)(0.0f), span + i);
    const int inside_from = clamp(-first, 0, length);
    const int inside_to = clamp(limit - first, inside_from, length);
    int i = inside_from;
    for (; i + WPT_W <= inside_to; i += WPT_W)
        store_row(load_row(line + first + i), span + i);
    for (; i < inside_to; i++)
        span[i] = line[first + i];
}

/* -D TAPS_S: the filters' width S, where the host builds the kernel for
 * it, so that a tap row's loop below unrolls (otherwise S, an argument). */
#ifdef TAPS_S
#define TILE_S TAPS_S
#define TILE_S_UNROLL _Pragma("unroll")
#else
#define TILE_S S
#define TILE_S_UNROLL
#endif

/* The taps s < S of one tap row, weights taps[s], into the sums total[i]
 * of a work-item's rows i, LOAD giving row i's vector for tap s. */
#define TILE_TAPS(LOAD)                                                                            \
    do {                                                                                           \
        TILE_S_UNROLL for (int s = 0; s < TILE_S; s++) {                                           \
            const float w = taps[s];                                                               \
            _Pragma("unroll") for (int i = 0; i < TILE_ROWS; i++) total[i] =                       \
                fma(w, LOAD, total[i]);                                                            \
        }                                                                                          \
    } while (0)

/* The first `count` lanes of v to out (all of them when count >= WPT_W). */
void store_row_lanes(const row_vector v, __global float *out, const int count) {
    if (count >= WPT_W) {
        store_row(v, out);
        return;
    }
    float lanes[WPT_W] VECTOR_ALIGNED;
    store_row(v, lanes);
    for (int j = 0; j < count; j++)
        out[j] = lanes[j];
}
#else
#define ROW_VECTORS 0
#endif

/* A work-item's next chunk of WPT_W results along a row: the launch's
 * first dimension may be narrower than the row (one work-item a row on CPU
 * devices, whose per-item cost, divisions included, then comes once). */
#define CHUNK_STEP (int)(get_global_size(0) * WPT_W)

/* output[n, k, oh, ow] = bias[k] + sum over c < Cg, r, s of
 * weight[k, c, r, s] * input[n, group*Cg + c, ih, iw]. */
__kernel void conv2d_depthwise_forward(
    const __global float *restrict input, const __global float *restrict weight,
    const __global float *restrict bias, __global float *restrict output, const int C, const int H,
    const int W, const int K, const int R, const int S, const int stride_h, const int stride_w,
    const int pad_top, const int pad_left, const int dilation_h, const int dilation_w, const int OH,
    const int OW, const int groups, const int has_bias) {
    const int first_oh = get_global_id(1) * TILE_ROWS;
    const int plane = get_global_id(2); /* n*K + k */
    if (first_oh >= OH)
        return;
    const int rows = min(TILE_ROWS, OH - first_oh);
    const int n = plane / K;
    const int k = plane - n * K;
    const int Cg = C / groups;
    const int first_channel = k / (K / groups) * Cg;
    const __global float *image = input + (n * C + first_channel) * H * W;
    const __global float *filter = weight + k * Cg * R * S;
    const float add = has_bias ? bias[k] : 0.0f;
    __global float *out = output + (plane * OH + first_oh) * OW;
#if ROW_VECTORS
    /* The last tap's last read past a chunk's left (for stride 2, the odd
     * lane after the last result, which the even lanes' load reads too). */
    const int reach = stride_w * WPT_W - 1 + dilation_w * (S - 1);
#endif

    for (int first_ow = get_global_id(0) * WPT_W; first_ow < OW; first_ow += CHUNK_STEP) {
        const int left = first_ow * stride_w - pad_left;
#if ROW_VECTORS
        const int inside = (stride_w == 1 || stride_w == 2) && left >= 0 && left + reach < W &&
                           first_ow + WPT_W <= OW;
        if ((stride_w == 1 || stride_w == 2) && reach < 2 * WPT_W + EDGE_REACH) {
            row_vector total[TILE_ROWS] VECTOR_ALIGNED;
            edge_span span[TILE_ROWS] VECTOR_ALIGNED;
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                total[i] = 0.0f;
            const int row_step = stride_h * W;
            const int top = first_oh * stride_h - pad_top;
            for (int c = 0; c < Cg; c++)
                for (int r = 0; r < R; r++) {
                    const int first_ih = top + r * dilation_h;
                    const __global float *taps = filter + (c * R + r) * S;
                    if (inside && first_ih >= 0 && first_ih + (TILE_ROWS - 1) * stride_h < H) {
                        const __global float *line = image + (c * H + first_ih) * W + left;
                        if (stride_w == 1)
                            TILE_TAPS(load_row(line + i * row_step + s * dilation_w));
                        else
                            TILE_TAPS(load_row_stride2(line + i * row_step + s * dilation_w));
                        continue;
                    }
                    /* Where the taps leave the input but their vectors stay
                     * in the channel's plane, they read the floats beside
                     * the row (rows outside: the nearest row) and zero the
                     * lanes outside. */
                    const int top_row = clamp(first_ih, 0, H - 1);
                    const int bottom_row = clamp(first_ih + (TILE_ROWS - 1) * stride_h, 0, H - 1);
                    if (top_row * W + left >= 0 && bottom_row * W + left + reach < H * W) {
                        /* Every row real (a row's edges only): lines a
                         * row_step apart and a mask per tap alone. */
                        if (rows == TILE_ROWS && top_row == first_ih &&
                            bottom_row == first_ih + (TILE_ROWS - 1) * stride_h) {
                            const __global float *line = image + (c * H + first_ih) * W + left;
                            if (stride_w == 1)
                                TILE_TAPS(select(load_row(line + i * row_step + s * dilation_w),
                                                 (row_vector)(0.0f),
                                                 lanes_outside(left + s * dilation_w, 1, W, 0)));
                            else
                                TILE_TAPS(
                                    select(load_row_stride2(line + i * row_step + s * dilation_w),
                                           (row_vector)(0.0f),
                                           lanes_outside(left + s * dilation_w, 2, W, 0)));
                            continue;
                        }
                        const __global float *line[TILE_ROWS];
                        int row_outside[TILE_ROWS];
                        tile_lines(image + c * H * W, first_ih, stride_h, H, W, left, rows, line,
                                   row_outside);
                        if (stride_w == 1)
                            TILE_TAPS(select(load_row(line[i] + s * dilation_w), (row_vector)(0.0f),
                                             lanes_outside(left + s * dilation_w, 1, W,
                                                           row_outside[i])));
                        else
                            TILE_TAPS(select(load_row_stride2(line[i] + s * dilation_w),
                                             (row_vector)(0.0f),
                                             lanes_outside(left + s * dilation_w, 2, W,
                                                           row_outside[i])));
                        continue;
                    }
                    /* A row outside the input (or past the tile's last) reads zeros. */
#pragma unroll
                    for (int i = 0; i < TILE_ROWS; i++) {
                        const int ih = first_ih + i * stride_h;
                        const int real = i < rows && ih >= 0 && ih < H;
                        fill_span(span[i], image + (real ? (c * H + ih) * W : 0), left, reach + 1,
                                  real ? W : 0);
                    }
                    if (stride_w == 1)
                        TILE_TAPS(load_row(span[i] + s * dilation_w));
                    else
                        TILE_TAPS(load_row_stride2(span[i] + s * dilation_w));
                }
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                if (i < rows)
                    store_row_lanes(total[i] + add, out + i * OW + first_ow, OW - first_ow);
            continue;
        }
#endif
        for (int i = 0; i < rows; i++) {
            const int top = (first_oh + i) * stride_h - pad_top;
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
            for (int j = 0; j < WPT_W && first_ow + j < OW; j++)
                out[i * OW + first_ow + j] = sum[j] + add;
        }
    }
}

/* The output row whose window reaches input row ih with tap r, or -1. */
int reaching_row(const int ih, const int r, const int pad_top, const int dilation_h,
                 const int stride_h, const int OH) {
    const int dh = ih + pad_top - r * dilation_h;
    const int oh = dh / stride_h;
    return dh < 0 || oh * stride_h != dh || oh >= OH ? -1 : oh;
}

#if ROW_VECTORS
/* Stride 2 along the row: the even and the odd input columns of a chunk
 * each take their gradient from a run of adjacent output columns, so
 * backward-data sums them as two vectors of half the width and interleaves
 * those (interleave_halves) into the chunk. */
#if WPT_W == 16
#define HALF_W 8
#define INTERLEAVE_MASK (uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)
#elif WPT_W == 8
#define HALF_W 4
#define INTERLEAVE_MASK (uint8)(0, 4, 1, 5, 2, 6, 3, 7)
#else
#define HALF_W 2
#define INTERLEAVE_MASK (uint4)(0, 2, 1, 3)
#endif
typedef VECTOR_TYPE(HALF_W) half_row;
#define interleave_halves(even, odd) shuffle2(even, odd, INTERLEAVE_MASK)

/* HALF_W floats of a row `width` long from column `start` on, zeros for
 * the columns outside it. */
half_row row_half(const __global float *row, const int start, const int width) {
    if (start >= 0 && start + HALF_W <= width)
        return VECTOR_LOAD(HALF_W)(0, row + start);
    float lanes[HALF_W] VECTOR_ALIGNED;
    for (int j = 0; j < HALF_W; j++)
        lanes[j] = start + j >= 0 && start + j < width ? row[start + j] : 0.0f;
    return VECTOR_LOAD(HALF_W)(0, lanes);
}
#endif

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
    const int first_ih = get_global_id(1) * TILE_ROWS;
    const int plane = get_global_id(2); /* n*C + ci */
    if (first_ih >= H)
        return;
    const int rows = min(TILE_ROWS, H - first_ih);
    const int n = plane / C;
    const int ci = plane - n * C;
    const int Cg = C / groups, Kg = K / groups;
    const int group = ci / Cg;
    const int c = ci - group * Cg;
    __global float *out = grad_input + (plane * H + first_ih) * W;
    const int taps_reach = dilation_w * (S - 1);

    for (int first_iw = get_global_id(0) * WPT_W; first_iw < W; first_iw += CHUNK_STEP) {
#if ROW_VECTORS
        /* Stride 1 along the row: lane j of tap s reads gradient column
         * first + j + taps_reach - s * dilation_w. With every tap's columns
         * inside the output's row, a vector read per tap, as the forward;
         * at the edges, from a span. */
        const int first = first_iw + pad_left - taps_reach;
        const int inside = first >= 0 && first_iw + pad_left + WPT_W <= OW && first_iw + WPT_W <= W;
        if (stride_w == 1 && taps_reach <= EDGE_REACH) {
            row_vector total[TILE_ROWS] VECTOR_ALIGNED;
            edge_span span[TILE_ROWS] VECTOR_ALIGNED;
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                total[i] = 0.0f;
            for (int k = group * Kg; k < (group + 1) * Kg; k++) {
                const __global float *gradient = grad_output + (n * K + k) * OH * OW;
                const __global float *filter = weight + (k * Cg + c) * R * S;
                for (int r = 0; r < R; r++) {
                    const __global float *taps = filter + r * S;
                    /* With stride 1 down the columns, row i takes gradient row first_oh + i. */
                    const int first_oh = first_ih + pad_top - r * dilation_h;
                    if (inside && stride_h == 1 && first_oh >= 0 && first_oh + TILE_ROWS <= OH) {
                        const __global float *line = gradient + first_oh * OW + first + taps_reach;
                        TILE_TAPS(load_row(line + i * OW - s * dilation_w));
                        continue;
                    }
                    /* As the forward: vectors that leave the row but stay in
                     * the channel's plane read beside it (rows no gradient
                     * row reaches: the nearest row) and zero the lanes
                     * outside. */
                    if (stride_h == 1 && clamp(first_oh, 0, OH - 1) * OW + first >= 0 &&
                        clamp(first_oh + TILE_ROWS - 1, 0, OH - 1) * OW + first + WPT_W +
                                taps_reach <= OH * OW) {
                        /* Every row real (a row's edges only): lines OW
                         * apart and a mask per tap alone. */
                        if (rows == TILE_ROWS && first_oh >= 0 && first_oh + TILE_ROWS <= OH) {
                            const __global float *line =
                                gradient + first_oh * OW + first + taps_reach;
                            TILE_TAPS(select(load_row(line + i * OW - s * dilation_w),
                                             (row_vector)(0.0f),
                                             lanes_outside(first + taps_reach - s * dilation_w, 1,
                                                           OW, 0)));
                            continue;
                        }
                        const __global float *line[TILE_ROWS];
                        int row_outside[TILE_ROWS];
                        tile_lines(gradient, first_oh, 1, OH, OW, first + taps_reach, rows, line,
                                   row_outside);
                        TILE_TAPS(select(load_row(line[i] - s * dilation_w), (row_vector)(0.0f),
                                         lanes_outside(first + taps_reach - s * dilation_w, 1, OW,
                                                       row_outside[i])));
                        continue;
                    }
                    /* A row no gradient row reaches (or past the tile's last) reads zeros. */
#pragma unroll
                    for (int i = 0; i < TILE_ROWS; i++) {
                        const int oh = i < rows ? reaching_row(first_ih + i, r, pad_top,
                                                               dilation_h, stride_h, OH)
                                                : -1;
                        fill_span(span[i], gradient + max(oh, 0) * OW, first, WPT_W + taps_reach,
                                  oh >= 0 ? OW : 0);
                    }
                    TILE_TAPS(load_row(span[i] + taps_reach - s * dilation_w));
                }
            }
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                if (i < rows)
                    store_row_lanes(total[i], out + i * W + first_iw, W - first_iw);
            continue;
        }
        /* Stride 2 along the row: tap s reaches the input columns iw with
         * iw + pad_left - s * dilation_w = 2 ow, the even or the odd ones of
         * the chunk (first_iw is even), from the output columns start,
         * start + 1, ...: one half vector of gradient per tap and row (the
         * scalar walk below, phase by phase, had run 13 times as long as
         * the forward at 64 channels, 56x56). Each input's sum takes its
         * taps in the same order as there, without the ones that do not
         * reach it. */
        if (stride_w == 2) {
            half_row even[TILE_ROWS] VECTOR_ALIGNED, odd[TILE_ROWS] VECTOR_ALIGNED;
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                even[i] = odd[i] = 0.0f;
            for (int k = group * Kg; k < (group + 1) * Kg; k++) {
                const __global float *gradient = grad_output + (n * K + k) * OH * OW;
                const __global float *filter = weight + (k * Cg + c) * R * S;
                for (int r = 0; r < R; r++) {
                    int oh[TILE_ROWS];
#pragma unroll
                    for (int i = 0; i < TILE_ROWS; i++)
                        oh[i] = i < rows ? reaching_row(first_ih + i, r, pad_top, dilation_h,
                                                        stride_h, OH)
                                         : -1;
                    TILE_S_UNROLL for (int s = 0; s < TILE_S; s++) {
                        const int shift = pad_left - s * dilation_w;
                        const int odd_lanes = shift & 1;
                        /* An even number halved exactly, negative ones too. */
                        const int start = (first_iw + odd_lanes + shift) >> 1;
                        const half_row w = (half_row)(filter[r * S + s]);
#pragma unroll
                        for (int i = 0; i < TILE_ROWS; i++) {
                            if (oh[i] < 0)
                                continue;
                            const half_row g = row_half(gradient + oh[i] * OW, start, OW);
                            if (odd_lanes)
                                odd[i] = fma(w, g, odd[i]);
                            else
                                even[i] = fma(w, g, even[i]);
                        }
                    }
                }
            }
#pragma unroll
            for (int i = 0; i < TILE_ROWS; i++)
                if (i < rows)
                    store_row_lanes(interleave_halves(even[i], odd[i]), out + i * W + first_iw,
                                    W - first_iw);
            continue;
        }
#endif
        for (int i = 0; i < rows; i++) {
            const int ih = first_ih + i;
            float sum[WPT_W];
            for (int j = 0; j < WPT_W; j++)
                sum[j] = 0.0f;
            for (int k = group * Kg; k < (group + 1) * Kg; k++) {
                const __global float *gradient = grad_output + (n * K + k) * OH * OW;
                const __global float *filter = weight + (k * Cg + c) * R * S;
                for (int r = 0; r < R; r++) {
                    const int oh = reaching_row(ih, r, pad_top, dilation_h, stride_h, OH);
                    if (oh < 0)
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
            for (int j = 0; j < WPT_W && first_iw + j < W; j++)
                out[i * W + first_iw + j] = sum[j];
        }
    }
}

/* grad_weight[k, c, r, s] = sum over positions (n, oh, ow) of
 * grad_output[n, k, oh, ow] * input[n, group*Cg + c, ih, iw]: one work-item
 * per weight i < count = K*Cg*R*S (the first dimension) and slice of the
 * positions, slice_length each (the second). With one slice the sums go to
 * grad_weight, otherwise slice z's to partial[z * count + i], which
 * conv2d_sum_slices (conv2d.cl) adds. Each output row's products are summed
 * from zero before they join the total, so no float sum runs over a whole
 * slice. With WPT_W 4, 8 or 16 and stride 1 along the rows, a row's
 * products are summed in WPT_W lanes first, then across them. */
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
            const int end = min(row_end, end_ow);
            int ow = max(row_start, first_ow);
            float row_sum = 0.0f;
#if ROW_VECTORS
            if (stride_w == 1 && end - ow >= WPT_W) {
                row_vector products = 0.0f;
                for (; ow + WPT_W <= end; ow += WPT_W)
                    products = fma(load_row(gradient + ow), load_row(line + ow + tap_w), products);
                float lanes[WPT_W] VECTOR_ALIGNED;
                store_row(products, lanes);
                for (int j = 0; j < WPT_W; j++)
                    row_sum += lanes[j];
            }
#endif
            for (; ow < end; ow++)
                row_sum = fma(gradient[ow], line[ow * stride_w + tap_w], row_sum);
            total += row_sum;
        }
        position += row_end - row_start;
    }
    partial[slice * count + index] = total;
}

#if ROW_VECTORS
/* The same gradient for filters of at most 3 x 3 taps at stride 1 along the
 * rows, on CPU devices: one work-item per filter channel (k, c), i.e. per
 * R*S weights (the first dimension, K*Cg of them), and slice. It reads each
 * of its rows' gradient vectors once and multiplies it into all R*S taps'
 * sums, written out so that they stay in registers (the kernel above reads
 * every gradient once per tap, and sums it in one chain a work-item).
 * Columns whose taps all lie inside the input run as vectors of WPT_W, the
 * others, at the rows' edges and the slice's cuts, one column at a time.
 * The vectors' lanes join the totals every ROWS_PER_FLUSH rows, so that no
 * float sum runs over a whole slice. Writes partial as the kernel above. */
#define ROWS_PER_FLUSH 8
#define TAP_ROWS 3
#define TAP_COLUMNS 3

float row_vector_sum(const row_vector v) {
    float lanes[WPT_W] VECTOR_ALIGNED;
    store_row(v, lanes);
    float sum = 0.0f;
    for (int j = 0; j < WPT_W; j++)
        sum += lanes[j];
    return sum;
}

__kernel void conv2d_depthwise_backward_weights_rows(
    const __global float *restrict input, const __global float *restrict grad_output,
    __global float *restrict partial, const int C, const int H, const int W, const int K,
    const int R, const int S, const int stride_h, const int stride_w, const int pad_top,
    const int pad_left, const int dilation_h, const int dilation_w, const int OH, const int OW,
    const int groups, const int positions, const int slice_length, const int count) {
    const int Cg = C / groups;
    const int pair = get_global_id(0); /* k * Cg + c */
    const int slice = get_global_id(1);
    if (pair >= K * Cg)
        return;
    const int k = pair / Cg;
    const int channel = k / (K / groups) * Cg + (pair - k * Cg);
    const int OHW = OH * OW;
    /* The output columns where every tap's column ow + s*dilation_w - pad_left is inside. */
    const int vector_from = pad_left;
    const int vector_to = min(OW, W + pad_left - dilation_w * (S - 1));

    row_vector sums[TAP_ROWS][TAP_COLUMNS];
    float total[TAP_ROWS][TAP_COLUMNS];
#pragma unroll
    for (int r = 0; r < TAP_ROWS; r++)
#pragma unroll
        for (int s = 0; s < TAP_COLUMNS; s++) {
            sums[r][s] = 0.0f;
            total[r][s] = 0.0f;
        }
    const int first_position = slice * slice_length;
    const int end_position = min(first_position + slice_length, positions);
    int position = first_position;
    int n = first_position / OHW;
    int oh = (first_position - n * OHW) / OW;
    int row_start = first_position - n * OHW - oh * OW;
    int rows = 0;
    while (position < end_position) {
        /* Output row (n, oh), or its part [row_start, row_end) in this slice. */
        const int row_end = min(OW, row_start + (end_position - position));
        const __global float *gradient = grad_output + ((n * K + k) * OH + oh) * OW;
        const __global float *plane = input + (n * C + channel) * H * W;
        /* Tap row r's input row, shifted so that column ow's tap s reads
         * line[r][ow + s * dilation_w]; NULL outside the input. */
        const __global float *line[TAP_ROWS];
#pragma unroll
        for (int r = 0; r < TAP_ROWS; r++) {
            const int ih = oh * stride_h + r * dilation_h - pad_top;
            line[r] = r < R && ih >= 0 && ih < H ? plane + ih * W - pad_left : NULL;
        }
        const int from = max(row_start, vector_from);
        int ow = from;
        for (; ow + WPT_W <= min(row_end, vector_to); ow += WPT_W) {
            const row_vector g = load_row(gradient + ow);
#pragma unroll
            for (int r = 0; r < TAP_ROWS; r++)
                if (line[r])
#pragma unroll
                    for (int s = 0; s < TAP_COLUMNS; s++)
                        if (s < S)
                            sums[r][s] = fma(g, load_row(line[r] + ow + s * dilation_w), sums[r][s]);
        }
        /* The columns before the vectors, then those after them. */
        for (int part = 0; part < 2; part++) {
            const int part_end = part == 0 ? min(from, row_end) : row_end;
            for (int column = part == 0 ? row_start : ow; column < part_end; column++) {
                const float g = gradient[column];
#pragma unroll
                for (int r = 0; r < TAP_ROWS; r++)
                    if (line[r])
#pragma unroll
                        for (int s = 0; s < TAP_COLUMNS; s++) {
                            const int iw = column + s * dilation_w - pad_left;
                            if (s < S && iw >= 0 && iw < W)
                                total[r][s] =
                                    fma(g, line[r][column + s * dilation_w], total[r][s]);
                        }
            }
        }
        position += row_end - row_start;
        row_start = 0;
        if (++oh == OH) {
            oh = 0;
            n++;
        }
        if (++rows == ROWS_PER_FLUSH || position >= end_position) {
            rows = 0;
#pragma unroll
            for (int r = 0; r < TAP_ROWS; r++)
#pragma unroll
                for (int s = 0; s < TAP_COLUMNS; s++) {
                    total[r][s] += row_vector_sum(sums[r][s]);
                    sums[r][s] = 0.0f;
                }
        }
    }
    for (int r = 0; r < R; r++)
        for (int s = 0; s < S; s++)
            partial[slice * count + (pair * R + r) * S + s] = total[r][s];
}
#endif
