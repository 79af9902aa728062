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

__kernel void conv2d_forward(const __global float *restrict input,
                             const __global float *restrict weight,
                             const __global float *restrict bias, __global float *restrict output,
                             const int C, const int H, const int W, const int K, const int R,
                             const int S, const int stride_h, const int stride_w,
                             const int pad_top, const int pad_left, const int OH, const int OW,
                             const int columns, const int has_bias) {
    __local float weight_tile[TILE_K][TILE_M];
    __local float input_tile[TILE_K][TILE_N];

    const int local_n = get_local_id(0);
    const int local_m = get_local_id(1);
    const int thread = local_m * THREADS_N + local_n;
    const int first_column = get_group_id(0) * TILE_N;
    const int first_row = get_group_id(1) * TILE_M;
    const int RS = R * S;
    const int CRS = C * RS;
    const int OHW = OH * OW;

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] = 0.0f;

    for (int tap0 = 0; tap0 < CRS; tap0 += TILE_K) {
        /* Consecutive work-items read consecutive taps of one filter. */
        for (int i = thread; i < TILE_K * TILE_M; i += THREADS) {
            const int kk = i % TILE_K;
            const int mm = i / TILE_K;
            const int row = first_row + mm;
            const int tap = tap0 + kk;
            weight_tile[kk][mm] = (row < K && tap < CRS) ? weight[row * CRS + tap] : 0.0f;
        }
        /* Consecutive work-items read consecutive output pixels of one tap. */
        for (int i = thread; i < TILE_K * TILE_N; i += THREADS) {
            const int nn = i % TILE_N;
            const int kk = i / TILE_N;
            const int column = first_column + nn;
            const int tap = tap0 + kk;
            float value = 0.0f;
            if (column < columns && tap < CRS) {
                const int n = column / OHW;
                const int pixel = column - n * OHW;
                const int oh = pixel / OW;
                const int ow = pixel - oh * OW;
                const int c = tap / RS;
                const int rs = tap - c * RS;
                const int r = rs / S;
                const int s = rs - r * S;
                const int ih = oh * stride_h - pad_top + r;
                const int iw = ow * stride_w - pad_left + s;
                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                    value = input[((n * C + c) * H + ih) * W + iw];
            }
            input_tile[kk][nn] = value;
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
