/* General matrix product with strided operands, float32.
 *
 *   C[m, n] = alpha * sum_k A(m, k) * B(k, n) + beta * C[m, n] + bias
 *   A(m, k) = a[m * a_row_stride + k * a_col_stride]
 *   B(k, n) = b[k * b_row_stride + n * b_col_stride]
 *   C[m, n] = c[m * c_row_stride + n]
 *
 * Strides express transposes, so one kernel serves dense forward
 * (X * W^T) and the backward products. bias_mode: 0 none, 1 bias[m] per row,
 * 2 bias[n] per column. beta == 0 never reads C (it may hold garbage).
 *
 * Tiles as in conv2d.cl: a work-group computes TILE_M x TILE_N of C through
 * local memory, TILE_K at a time; a work-item holds WPT_M x WPT_N.
 * Rules: TILE_M % WPT_M == 0 and TILE_N % WPT_N == 0. Launch with local size
 * (TILE_N/WPT_N, TILE_M/WPT_M), global (ceil(N/TILE_N) * TILE_N/WPT_N,
 * ceil(M/TILE_M) * TILE_M/WPT_M). Any M, N, K works.
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

__kernel void gemm(const int M, const int N, const int K, const float alpha,
                   const __global float *restrict a, const int a_row_stride,
                   const int a_col_stride, const __global float *restrict b,
                   const int b_row_stride, const int b_col_stride, const float beta,
                   __global float *restrict c, const int c_row_stride,
                   const __global float *restrict bias, const int bias_mode) {
    __local float a_tile[TILE_K][TILE_M];
    __local float b_tile[TILE_K][TILE_N];

    const int local_n = get_local_id(0);
    const int local_m = get_local_id(1);
    const int thread = local_m * THREADS_N + local_n;
    const int first_column = get_group_id(0) * TILE_N;
    const int first_row = get_group_id(1) * TILE_M;

    float acc[WPT_M][WPT_N];
    for (int wm = 0; wm < WPT_M; wm++)
        for (int wn = 0; wn < WPT_N; wn++)
            acc[wm][wn] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += TILE_K) {
        for (int i = thread; i < TILE_K * TILE_M; i += THREADS) {
            const int kk = i % TILE_K;
            const int mm = i / TILE_K;
            const int row = first_row + mm;
            const int k = k0 + kk;
            a_tile[kk][mm] = (row < M && k < K) ? a[row * a_row_stride + k * a_col_stride] : 0.0f;
        }
        for (int i = thread; i < TILE_K * TILE_N; i += THREADS) {
            const int nn = i % TILE_N;
            const int kk = i / TILE_N;
            const int column = first_column + nn;
            const int k = k0 + kk;
            b_tile[kk][nn] =
                (column < N && k < K) ? b[k * b_row_stride + column * b_col_stride] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        for (int kk = 0; kk < TILE_K; kk++) {
            float a_values[WPT_M], b_values[WPT_N];
            for (int wm = 0; wm < WPT_M; wm++)
                a_values[wm] = a_tile[kk][local_m + wm * THREADS_M];
            for (int wn = 0; wn < WPT_N; wn++)
                b_values[wn] = b_tile[kk][local_n + wn * THREADS_N];
            for (int wm = 0; wm < WPT_M; wm++)
                for (int wn = 0; wn < WPT_N; wn++)
                    acc[wm][wn] = fma(a_values[wm], b_values[wn], acc[wm][wn]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    for (int wm = 0; wm < WPT_M; wm++) {
        const int row = first_row + local_m + wm * THREADS_M;
        if (row >= M)
            continue;
        for (int wn = 0; wn < WPT_N; wn++) {
            const int column = first_column + local_n + wn * THREADS_N;
            if (column >= N)
                continue;
            float value = alpha * acc[wm][wn];
            if (beta != 0.0f)
                value += beta * c[row * c_row_stride + column];
            if (bias_mode == 1)
                value += bias[row];
            else if (bias_mode == 2)
                value += bias[column];
            c[row * c_row_stride + column] = value;
        }
    }
}
