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

__kernel void conv2d_forward(const __global float *restrict input,
                             const __global float *restrict weight,
                             const __global float *restrict bias, __global float *restrict output,
                             const int C, const int H, const int W, const int K, const int R,
                             const int S, const int stride_h, const int stride_w,
                             const int pad_top, const int pad_left, const int OH, const int OW,
                             const int columns, const int has_bias) {
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

    for (int nn = thread; nn < TILE_N; nn += THREADS) {
        const int column = first_column + nn;
        const int n = column / OHW;
        const int pixel = column - n * OHW;
        const int oh = pixel / OW;
        const int ow = pixel - oh * OW;
        column_base[nn] = n * C * H * W;
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
            tap_offset[kk] = (c * H + r) * W + s;
            tap_r[kk] = tap < CRS ? r : OUTSIDE;
            tap_s[kk] = s;
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

        for (int kk = 0; kk < TILE_K; kk++) {
            float a[WPT_M], b[WPT_N];
            for (int wm = 0; wm < WPT_M; wm++)
                a[wm] = weight_tile[kk][local_m + wm * THREADS_M];
            for (int wn = 0; wn < WPT_N; wn++)
                b[wn] = input_tile[kk][local_n + wn * THREADS_N];
            for (int wm = 0; wm < WPT_M; wm++)
                for (int wn = 0; wn < WPT_N; wn++)
                    acc[wm][wn] = fma(a[wm], b[wn], acc[wm][wn]);
        }
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
            output[(n * K + row) * OHW + pixel] = acc[wm][wn] + row_bias;
        }
    }
}
