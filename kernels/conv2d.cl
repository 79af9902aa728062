/* Convolution as an implicit GEMM, NCHW, float32.
 *
 *   output[n, k, oh, ow] = bias[k] + sum over (c, r, s) of
 *                          weight[k, c, r, s] * input[n, c, oh*stride_h - pad_top + r,
 *                                                            ow*stride_w - pad_left + s]
 *
 * GEMM view: rows = output channels K, columns = N*OH*OW output pixels,
 * reduction = C*R*S taps. A work-group computes a TILE_M x TILE_N block of the
 * output, walking the reduction TILE_K taps at a time: it gathers the weight
 * block and the input block "as im2col would" into local memory (zero where
 * the tap falls into the padding), then every work-item accumulates a
 * WPT_M x WPT_N register tile from local memory.
 *
 * Tile parameters (-D, defaults below). Rules: TILE_M % WPT_M == 0 and
 * TILE_N % WPT_N == 0. Launch with local size (TILE_N/WPT_N, TILE_M/WPT_M)
 * and global size (ceil(N*OH*OW/TILE_N) * TILE_N/WPT_N, ceil(K/TILE_M) * TILE_M/WPT_M).
 * Any shape works: edge tiles are filled with zeros and not stored.
 */
#ifndef TILE_M
#define TILE_M 32
#endif
#ifndef TILE_N
#define TILE_N 32
#endif
#ifndef TILE_K
#define TILE_K 16
#endif
#ifndef WPT_M
#define WPT_M 4
#endif
#ifndef WPT_N
#define WPT_N 4
#endif

#define THREADS_M (TILE_M / WPT_M)
#define THREADS_N (TILE_N / WPT_N)
#define THREADS (THREADS_M * THREADS_N)

/* Marks a column or tap outside the problem: its row falls outside any input. */
#define OUTSIDE (-(1 << 28))

/* Grouped and dilated convolutions (PyTorch's groups= and dilation=) run
 * on a variant of the same kernels built with -DGENERAL, which host/ops/conv2d.c
 * adds only when groups or a dilation is not 1: without it the macros below
 * expand to the ordinary convolution's code, so its programs stay exactly
 * what they were. One variant serves both, to keep the programs few.
 *
 * -DGENERAL: the kernels take the number of groups, then dilation_h and
 * dilation_w after their other arguments. C and K are one group's channel
 * counts, and each group is the GEMM above of its own: group g reads input
 * channels g*C .. g*C + C-1 and filters g*K .. g*K + K-1 of the
 * (groups*K, C, R, S) weights, and writes output channels g*K .. g*K + K-1.
 * The third NDRange dimension is the group (for backward-weights: groups x
 * slices, slices fastest). Tap (r, s) reads the input dilation_h*r rows and
 * dilation_w*s columns from the window's corner. */
#ifdef GENERAL
#define GROUPS_PARAM , const int groups
#define GROUPS_ARG , groups
#define IMAGE_C (C * groups) /* channels of a whole input image */
#define IMAGE_K (K * groups) /* and of an output image */
#define DILATION_PARAMS , const int dilation_h, const int dilation_w
#define DILATION_ARGS , dilation_h, dilation_w
#define DILATE_H(r) ((r) * dilation_h)
#define DILATE_W(s) ((s) * dilation_w)
#else
#define GROUPS_PARAM
#define GROUPS_ARG
#define IMAGE_C C
#define IMAGE_K K
#define DILATION_PARAMS
#define DILATION_ARGS
#define DILATE_H(r) r
#define DILATE_W(s) s
#endif

/* sums += the products of a chunk of TILE_K taps held in local memory: a
 * (TILE_K x TILE_M) and b (TILE_K x TILE_N), this work-item's WPT_M x WPT_N
 * of them. */
void add_tile_products(__local const float (*a)[TILE_M], __local const float (*b)[TILE_N],
                       const int local_m, const int local_n, float sums[WPT_M][WPT_N]) {
    for (int kk = 0; kk < TILE_K; kk++) {
        float a_values[WPT_M], b_values[WPT_N];
        for (int wm = 0; wm < WPT_M; wm++)
            a_values[wm] = a[kk][local_m + wm * THREADS_M];
        for (int wn = 0; wn < WPT_N; wn++)
            b_values[wn] = b[kk][local_n + wn * THREADS_N];
        for (int wm = 0; wm < WPT_M; wm++)
            for (int wn = 0; wn < WPT_N; wn++)
                sums[wm][wn] = fma(a_values[wm], b_values[wn], sums[wm][wn]);
    }
}

/* add_tile_products in two levels, for the backward kernels' long
 * reductions: the chunk's products are added up from zero, then the chunk's
 * sum joins acc, so no float sum runs over the whole reduction (an error
 * growing with its length). */
void add_chunk_products(__local const float (*a)[TILE_M], __local const float (*b)[TILE_N],
                        const int local_m, const int local_n, float acc[WPT_M][WPT_N]) {
    float chunk[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            chunk[wm][wn] = 0.0f;
    add_tile_products(a, b, local_m, local_n, chunk);
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] += chunk[wm][wn];
}

__kernel void conv2d_forward(const __global float *restrict input,
                             const __global float *restrict weight,
                             const __global float *restrict bias, __global float *restrict output,
                             const int C, const int H, const int W, const int K, const int R,
                             const int S, const int stride_h, const int stride_w,
                             const int pad_top, const int pad_left, const int OH, const int OW,
                             const int columns, const int has_bias GROUPS_PARAM DILATION_PARAMS) {
    __local float weight_tile[TILE_K][TILE_M];
    __local float input_tile[TILE_K][TILE_N];
    /* Index arithmetic hoisted out of the gather: each column's image offset
     * and top-left input corner once per work-group, each tap's offset once
     * per chunk, so the gather itself has no divisions. */
    __local int column_base[TILE_N], column_h0[TILE_N], column_w0[TILE_N];
    __local int tap_offset[TILE_K], tap_r[TILE_K], tap_s[TILE_K];

    const int local_n = get_local_id(0);
    const int local_m = get_local_id(1);
    const int thread = local_m * THREADS_N + local_n;
    const int first_column = get_group_id(0) * TILE_N;
    const int first_row = get_group_id(1) * TILE_M;
    const int RS = R * S;
    const int CRS = C * RS;
    const int OHW = OH * OW;
#ifdef GENERAL
    /* This work-group's group: its input channels, filters, bias and output channels. */
    const int group = get_group_id(2);
    input += group * C * H * W;
    weight += group * K * CRS;
    bias += group * K;
    output += group * K * OHW;
#endif

    for (int nn = thread; nn < TILE_N; nn += THREADS) {
        const int column = first_column + nn;
        const int n = column / OHW;
        const int pixel = column - n * OHW;
        const int oh = pixel / OW;
        const int ow = pixel - oh * OW;
        column_base[nn] = n * IMAGE_C * H * W;
        column_h0[nn] = column < columns ? oh * stride_h - pad_top : OUTSIDE;
        column_w0[nn] = ow * stride_w - pad_left;
    }

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] = 0.0f;

    for (int tap0 = 0; tap0 < CRS; tap0 += TILE_K) {
        for (int kk = thread; kk < TILE_K; kk += THREADS) {
            const int tap = tap0 + kk;
            const int c = tap / RS;
            const int rs = tap - c * RS;
            const int r = rs / S;
            const int s = rs - r * S;
            tap_offset[kk] = (c * H + DILATE_H(r)) * W + DILATE_W(s);
            tap_r[kk] = tap < CRS ? DILATE_H(r) : OUTSIDE;
            tap_s[kk] = DILATE_W(s);
        }
        /* Consecutive work-items read consecutive taps of one filter. */
        for (int i = thread; i < TILE_K * TILE_M; i += THREADS) {
            const int kk = i % TILE_K;
            const int mm = i / TILE_K;
            const int row = first_row + mm;
            const int tap = tap0 + kk;
            weight_tile[kk][mm] = (row < K && tap < CRS) ? weight[row * CRS + tap] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* Consecutive work-items read consecutive output pixels of one tap. */
        for (int i = thread; i < TILE_K * TILE_N; i += THREADS) {
            const int nn = i % TILE_N;
            const int kk = i / TILE_N;
            const int ih = column_h0[nn] + tap_r[kk];
            const int iw = column_w0[nn] + tap_s[kk];
            const int inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
            input_tile[kk][nn] =
                inside ? input[column_base[nn] + tap_offset[kk] + column_h0[nn] * W + column_w0[nn]]
                       : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        add_tile_products(weight_tile, input_tile, local_m, local_n, acc);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int wm = 0; wm < WPT_M; wm++) {
        const int row = first_row + local_m + wm * THREADS_M;
        if (row >= K)
            continue;
        const float row_bias = has_bias ? bias[row] : 0.0f;
        for (int wn = 0; wn < WPT_N; wn++) {
            const int column = first_column + local_n + wn * THREADS_N;
            if (column >= columns)
                continue;
            const int n = column / OHW;
            const int pixel = column - n * OHW;
            output[(n * IMAGE_K + row) * OHW + pixel] = acc[wm][wn] + row_bias;
        }
    }
}

/* ---- backward data ---------------------------------------------------------------------
 *
 *   grad_input[n, c, ih, iw] = sum over (k, r, s) with oh*stride_h - pad_top + r == ih and
 *                              ow*stride_w - pad_left + s == iw of
 *                              weight[k, c, r, s] * grad_output[n, k, oh, ow]
 *
 * GEMM view: rows = C input channels, columns = N*H*W input pixels, reduction =
 * K*R*S taps (k, r, s). The weight block is the transposed filter,
 * A(c, (k, r, s)) = weight[k, c, r, s]; the gathered block is
 * B((k, r, s), (n, ih, iw)) = grad_output[n, k, oh, ow] with
 * oh = (ih + pad_top - r) / stride_h, zero where that division has a remainder
 * or oh falls outside [0, OH) (and the same along the width).
 *
 * The divisibility test needs no division in the gather: with
 * ih + pad_top = qh*stride_h + ph (per column) and r = qr*stride_h + pr (per
 * tap), the division is exact exactly when ph == pr, and then oh = qh - qr.
 * Columns past the end get phase -1 and taps past the end phase -2, so
 * neither ever matches.
 *
 * Same tile parameters, rules and launch shape as conv2d_forward, with C in
 * place of K and N*H*W in place of N*OH*OW. Every pixel of grad_input is
 * written, with zero where no output position reaches it.
 */

/* Phases that never match: a column past the last pixel, a tap past the last one. */
#define NO_COLUMN_PHASE (-1)
#define NO_TAP_PHASE (-2)

/* Per-tap tables of backward-data for taps tap0 .. tap0 + TILE_K - 1. */
void backward_data_tap_tables(const int tap0, const int thread, const int C, const int R,
                              const int S, const int stride_h, const int stride_w, const int OHW,
                              const int KRS, __local int *tap_output_offset,
                              __local int *tap_weight_offset, __local int *tap_qr,
                              __local int *tap_pr, __local int *tap_qs,
                              __local int *tap_ps DILATION_PARAMS) {
    const int RS = R * S;
    for (int kk = thread; kk < TILE_K; kk += THREADS) {
        const int tap = tap0 + kk;
        const int k = tap / RS;
        const int rs = tap - k * RS;
        const int r = rs / S;
        const int s = rs - r * S;
        tap_output_offset[kk] = k * OHW;
        tap_weight_offset[kk] = k * C * RS + rs;
        tap_qr[kk] = DILATE_H(r) / stride_h;
        tap_pr[kk] = tap < KRS ? DILATE_H(r) - (DILATE_H(r) / stride_h) * stride_h : NO_TAP_PHASE;
        tap_qs[kk] = DILATE_W(s) / stride_w;
        tap_ps[kk] = DILATE_W(s) - (DILATE_W(s) / stride_w) * stride_w;
    }
}

__kernel void conv2d_backward_data(const __global float *restrict grad_output,
                                   const __global float *restrict weight,
                                   __global float *restrict grad_input, const int C, const int H,
                                   const int W, const int K, const int R, const int S,
                                   const int stride_h, const int stride_w, const int pad_top,
                                   const int pad_left, const int OH, const int OW,
                                   const int columns GROUPS_PARAM DILATION_PARAMS) {
    __local float weight_tile[TILE_K][TILE_M];
    __local float grad_tile[TILE_K][TILE_N];
    /* Per column: the image's offset in grad_output and the quotient and
     * remainder of (ih + pad_top) and (iw + pad_left) by the stride. */
    __local int column_base[TILE_N];
    __local int column_qh[TILE_N], column_ph[TILE_N], column_qw[TILE_N], column_pw[TILE_N];
    /* Per tap: k's offset in one grad_output image and in weight, and the
     * quotient and remainder of r and s by the stride. */
    __local int tap_output_offset[TILE_K], tap_weight_offset[TILE_K];
    __local int tap_qr[TILE_K], tap_pr[TILE_K], tap_qs[TILE_K], tap_ps[TILE_K];

    const int local_n = get_local_id(0);
    const int local_m = get_local_id(1);
    const int thread = local_m * THREADS_N + local_n;
    const int first_column = get_group_id(0) * TILE_N;
    const int first_row = get_group_id(1) * TILE_M;
    const int RS = R * S;
    const int KRS = K * RS;
    const int HW = H * W;
    const int OHW = OH * OW;
#ifdef GENERAL
    /* This work-group's group: its output channels' gradient, filters and input channels. */
    const int group = get_group_id(2);
    grad_output += group * K * OHW;
    weight += group * KRS * C;
    grad_input += group * C * HW;
#endif

    for (int nn = thread; nn < TILE_N; nn += THREADS) {
        const int column = first_column + nn;
        const int n = column / HW;
        const int pixel = column - n * HW;
        const int ih = pixel / W;
        const int iw = pixel - ih * W;
        const int padded_h = ih + pad_top;
        const int padded_w = iw + pad_left;
        column_base[nn] = n * IMAGE_K * OHW;
        column_qh[nn] = padded_h / stride_h;
        column_ph[nn] =
            column < columns ? padded_h - (padded_h / stride_h) * stride_h : NO_COLUMN_PHASE;
        column_qw[nn] = padded_w / stride_w;
        column_pw[nn] = padded_w - (padded_w / stride_w) * stride_w;
    }
    backward_data_tap_tables(0, thread, C, R, S, stride_h, stride_w, OHW, KRS, tap_output_offset,
                             tap_weight_offset, tap_qr, tap_pr, tap_qs, tap_ps DILATION_ARGS);
    barrier(CLK_LOCAL_MEM_FENCE);

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] = 0.0f;

    for (int tap0 = 0; tap0 < KRS; tap0 += TILE_K) {
        /* Consecutive work-items read consecutive (r, s) of one filter slice. */
        for (int i = thread; i < TILE_K * TILE_M; i += THREADS) {
            const int kk = i % TILE_K;
            const int mm = i / TILE_K;
            const int row = first_row + mm;
            weight_tile[kk][mm] = (row < C && tap_pr[kk] != NO_TAP_PHASE)
                                      ? weight[tap_weight_offset[kk] + row * RS]
                                      : 0.0f;
        }
        /* Consecutive work-items gather for consecutive input pixels of one tap. */
        for (int i = thread; i < TILE_K * TILE_N; i += THREADS) {
            const int nn = i % TILE_N;
            const int kk = i / TILE_N;
            const int oh = column_qh[nn] - tap_qr[kk];
            const int ow = column_qw[nn] - tap_qs[kk];
            const int reaches = column_ph[nn] == tap_pr[kk] && column_pw[nn] == tap_ps[kk] &&
                                oh >= 0 && oh < OH && ow >= 0 && ow < OW;
            grad_tile[kk][nn] =
                reaches ? grad_output[column_base[nn] + tap_output_offset[kk] + oh * OW + ow]
                        : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* Nobody reads the tap tables until the next gather, so the next
         * chunk's tables are written now, saving a barrier per chunk. */
        if (tap0 + TILE_K < KRS)
            backward_data_tap_tables(tap0 + TILE_K, thread, C, R, S, stride_h, stride_w, OHW, KRS,
                                     tap_output_offset, tap_weight_offset, tap_qr, tap_pr, tap_qs,
                                     tap_ps DILATION_ARGS);

        add_chunk_products(weight_tile, grad_tile, local_m, local_n, acc);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int wm = 0; wm < WPT_M; wm++) {
        const int row = first_row + local_m + wm * THREADS_M;
        if (row >= C)
            continue;
        for (int wn = 0; wn < WPT_N; wn++) {
            const int column = first_column + local_n + wn * THREADS_N;
            if (column >= columns)
                continue;
            const int n = column / HW;
            const int pixel = column - n * HW;
            grad_input[(n * IMAGE_C + row) * HW + pixel] = acc[wm][wn];
        }
    }
}

/* ---- backward weights ------------------------------------------------------------------
 *
 *   grad_weight[k, c, r, s] = sum over (n, oh, ow) of grad_output[n, k, oh, ow] *
 *                             input[n, c, oh*stride_h - pad_top + r, ow*stride_w - pad_left + s]
 *
 * GEMM view: rows = K output channels, columns = C*R*S taps, reduction =
 * N*OH*OW output positions ("steps"). The reduction is long (a whole batch of
 * images), so it is cut into slices of slice_length steps: the third NDRange
 * dimension is the slice, and each work-group writes its TILE_M x TILE_N
 * partial sums to partial[slice][K][C*R*S]. conv2d_sum_slices then adds the
 * slices in a fixed order, so the result does not depend on scheduling.
 *
 * Same tile parameters and rules as conv2d_forward. Launch with local size
 * (TILE_N/WPT_N, TILE_M/WPT_M, 1) and global size
 * (ceil(C*R*S/TILE_N) * TILE_N/WPT_N, ceil(K/TILE_M) * TILE_M/WPT_M, slices).
 */

/* Per-step tables of backward-weights for steps step0 .. step0 + TILE_K - 1 (below end_step). */
void backward_weights_step_tables(const int step0, const int end_step, const int thread,
                                  const int C, const int H, const int W, const int K,
                                  const int stride_h, const int stride_w, const int pad_top,
                                  const int pad_left, const int OW, const int OHW,
                                  __local int *step_output_offset, __local int *step_input_offset,
                                  __local int *step_h0, __local int *step_w0 GROUPS_PARAM) {
    for (int kk = thread; kk < TILE_K; kk += THREADS) {
        const int step = step0 + kk;
        const int n = step / OHW;
        const int pixel = step - n * OHW;
        const int oh = pixel / OW;
        const int ow = pixel - oh * OW;
        const int h0 = oh * stride_h - pad_top;
        const int w0 = ow * stride_w - pad_left;
        const int valid = step < end_step;
        step_output_offset[kk] = valid ? n * IMAGE_K * OHW + pixel : -1;
        step_input_offset[kk] = (n * IMAGE_C * H + h0) * W + w0;
        step_h0[kk] = valid ? h0 : OUTSIDE;
        step_w0[kk] = w0;
    }
}

__kernel void conv2d_backward_weights(const __global float *restrict input,
                                      const __global float *restrict grad_output,
                                      __global float *restrict partial, const int C, const int H,
                                      const int W, const int K, const int R, const int S,
                                      const int stride_h, const int stride_w, const int pad_top,
                                      const int pad_left, const int OH, const int OW,
                                      const int steps,
                                      const int slice_length GROUPS_PARAM DILATION_PARAMS) {
    __local float grad_tile[TILE_K][TILE_M];
    __local float input_tile[TILE_K][TILE_N];
    /* Per column (tap c, r, s): its offset in one input image and its r and s. */
    __local int column_offset[TILE_N], column_r[TILE_N], column_s[TILE_N];
    /* Per step (n, oh, ow): its offset in grad_output (-1 past the slice), its
     * top-left input corner and that corner's offset in input. */
    __local int step_output_offset[TILE_K], step_input_offset[TILE_K];
    __local int step_h0[TILE_K], step_w0[TILE_K];

    const int local_n = get_local_id(0);
    const int local_m = get_local_id(1);
    const int thread = local_m * THREADS_N + local_n;
    const int first_column = get_group_id(0) * TILE_N;
    const int first_row = get_group_id(1) * TILE_M;
#ifdef GENERAL
    /* The third dimension runs over groups x slices, slices fastest. This
     * work-group's group: its input channels, output channels' gradient and
     * filters' gradient. */
    const int slices = get_num_groups(2) / groups;
    const int group = get_group_id(2) / slices;
    const int slice = get_group_id(2) - group * slices;
    input += group * C * H * W;
    grad_output += group * K * OH * OW;
    partial += group * K * C * R * S;
#else
    const int slice = get_group_id(2);
#endif
    const int RS = R * S;
    const int CRS = C * RS;
    const int HW = H * W;
    const int OHW = OH * OW;
    const int first_step = slice * slice_length;
    const int end_step = min(first_step + slice_length, steps);

    for (int nn = thread; nn < TILE_N; nn += THREADS) {
        const int column = first_column + nn;
        const int c = column / RS;
        const int rs = column - c * RS;
        const int r = rs / S;
        const int s = rs - r * S;
        column_offset[nn] = c * HW + DILATE_H(r) * W + DILATE_W(s);
        column_r[nn] = column < CRS ? DILATE_H(r) : OUTSIDE;
        column_s[nn] = DILATE_W(s);
    }
    backward_weights_step_tables(first_step, end_step, thread, C, H, W, K, stride_h, stride_w,
                                 pad_top, pad_left, OW, OHW, step_output_offset, step_input_offset,
                                 step_h0, step_w0 GROUPS_ARG);
    barrier(CLK_LOCAL_MEM_FENCE);

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] = 0.0f;

    for (int step0 = first_step; step0 < end_step; step0 += TILE_K) {
        /* Consecutive work-items read consecutive output pixels of one channel. */
        for (int i = thread; i < TILE_K * TILE_M; i += THREADS) {
            const int kk = i % TILE_K;
            const int mm = i / TILE_K;
            const int row = first_row + mm;
            grad_tile[kk][mm] = (row < K && step_output_offset[kk] >= 0)
                                    ? grad_output[step_output_offset[kk] + row * OHW]
                                    : 0.0f;
        }
        /* Consecutive work-items read consecutive taps at one output pixel. */
        for (int i = thread; i < TILE_K * TILE_N; i += THREADS) {
            const int nn = i % TILE_N;
            const int kk = i / TILE_N;
            const int ih = step_h0[kk] + column_r[nn];
            const int iw = step_w0[kk] + column_s[nn];
            const int inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
            input_tile[kk][nn] = inside ? input[step_input_offset[kk] + column_offset[nn]] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* As in backward-data: the step tables are free until the next gather. */
        if (step0 + TILE_K < end_step)
            backward_weights_step_tables(step0 + TILE_K, end_step, thread, C, H, W, K, stride_h,
                                         stride_w, pad_top, pad_left, OW, OHW, step_output_offset,
                                         step_input_offset, step_h0, step_w0 GROUPS_ARG);

        add_chunk_products(grad_tile, input_tile, local_m, local_n, acc);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global float *slice_out = partial + slice * IMAGE_K * CRS;
    for (int wm = 0; wm < WPT_M; wm++) {
        const int row = first_row + local_m + wm * THREADS_M;
        if (row >= K)
            continue;
        for (int wn = 0; wn < WPT_N; wn++) {
            const int column = first_column + local_n + wn * THREADS_N;
            if (column < CRS)
                slice_out[row * CRS + column] = acc[wm][wn];
        }
    }
}

/* out[i] = sum over slice < slices of partial[slice * count + i]. One
 * work-item per element; any work-group size. The slices are added in groups
 * of SLICE_GROUP and then the group sums, always in the same order: the
 * shorter float sums keep the rounding error of many slices down. */
#define SLICE_GROUP 8

__kernel void conv2d_sum_slices(const __global float *restrict partial,
                                __global float *restrict out, const int count, const int slices) {
    const int i = get_global_id(0);
    if (i >= count)
        return;
    float total = 0.0f;
    for (int first = 0; first < slices; first += SLICE_GROUP) {
        const int end = min(first + SLICE_GROUP, slices);
        float group = 0.0f;
        for (int slice = first; slice < end; slice++)
            group += partial[slice * count + i];
        total += group;
    }
    out[i] = total;
}
