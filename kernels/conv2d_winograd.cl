/* Winograd F(2x2, 3x3) for stride-1 3x3 convolutions, NCHW float32 (Lavin
 * and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).
 * Each 2x2 block of outputs (a tile) comes from the 4x4 block of input
 * around it; in the transformed domain the 3x3 window becomes 16
 * independent products, so one tile of one output channel costs 16
 * multiply-adds per input channel instead of 36:
 *
 *   Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A
 *
 * host/ops/conv2d_winograd.c runs three steps, the middle one on the direct
 * convolution kernel as 16 plain 1x1 convolutions, one per point xi of the
 * 4x4 transformed tile, so the long reduction over channels runs on the
 * register-blocked code that is tuned per device:
 *
 *   winograd_transform_filters  (K, C, 3, 3) -> U (16, C, K_padded), zeros
 *                               past K: per xi, the (R, S, C, K_padded)
 *                               layout the direct forward reads
 *   winograd_transform_tiles    input (N, C, H, W) -> V (16, N, C, TH, TW),
 *                               zero outside the input
 *   (16 1x1 convolutions)       M[xi] (N, K, TH, TW) = U[xi] V[xi]
 *   winograd_transform_products M (16, N, K, TH, TW) -> output (N, K, OH,
 *                               OW), plus bias
 *
 * TH = ceil(OH / 2), TW = ceil(OW / 2). No -D parameters. One work-item per
 * filter (c, k), per (image, channel, tile) and per (image, output channel,
 * tile), in that order, `count` of them; a work-item's 16 transformed
 * values lie `stride` floats apart (the host's part_stride: at least count,
 * and never a multiple of 4 KiB, whose 16 streams would share their cache
 * sets). */

/* flip_transpose (backward-data run as a forward): the filters are
 * (C, K, 3, 3) of the convolution whose input gradient this is, read with
 * their taps reversed and the two channel counts exchanged. */
__kernel void winograd_transform_filters(const __global float *restrict weight,
                                         __global float *restrict u, const int in_channels,
                                         const int out_channels, const int padded_out_channels,
                                         const int flip_transpose, const int stride) {
    const int item = get_global_id(0); /* c * padded_out_channels + k */
    const int count = in_channels * padded_out_channels;
    if (item >= count)
        return;
    const int k = item % padded_out_channels, c = item / padded_out_channels;
    float g[3][3];
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++)
            g[r][s] = k >= out_channels ? 0.0f
                      : flip_transpose  ? weight[(c * out_channels + k) * 9 + (2 - r) * 3 + (2 - s)]
                                        : weight[(k * in_channels + c) * 9 + r * 3 + s];
    /* G g: 4 rows of 3. */
    float gg[4][3];
    for (int s = 0; s < 3; s++) {
        gg[0][s] = g[0][s];
        gg[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
        gg[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
        gg[3][s] = g[2][s];
    }
    /* ... G^T: the same on the rows' three values. */
    for (int i = 0; i < 4; i++) {
        const float row[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                              0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
        for (int j = 0; j < 4; j++)
            u[(i * 4 + j) * stride + item] = row[j];
    }
}

__kernel void winograd_transform_tiles(const __global float *restrict input,
                                       __global float *restrict v, const int height,
                                       const int width, const int pad_top, const int pad_left,
                                       const int tiles_h, const int tiles_w, const int count,
                                       const int stride) {
    const int item = get_global_id(0);
    if (item >= count)
        return;
    const int tiles = tiles_h * tiles_w;
    const int tile = item % tiles, plane = item / tiles; /* n * C + c */
    const int top = (tile / tiles_w) * 2 - pad_top, left = (tile % tiles_w) * 2 - pad_left;
    const __global float *in = input + (size_t)plane * height * width;
    float d[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            const int y = top + i, x = left + j;
            d[i][j] = y >= 0 && y < height && x >= 0 && x < width ? in[y * width + x] : 0.0f;
        }
    /* B^T d: rows 0-2, 1+2, 2-1, 1-3. */
    float t[4][4];
    for (int j = 0; j < 4; j++) {
        t[0][j] = d[0][j] - d[2][j];
        t[1][j] = d[1][j] + d[2][j];
        t[2][j] = d[2][j] - d[1][j];
        t[3][j] = d[1][j] - d[3][j];
    }
    /* ... B: the same on the columns. */
    __global float *out = v + item;
    for (int i = 0; i < 4; i++) {
        out[(size_t)(i * 4 + 0) * stride] = t[i][0] - t[i][2];
        out[(size_t)(i * 4 + 1) * stride] = t[i][1] + t[i][2];
        out[(size_t)(i * 4 + 2) * stride] = t[i][2] - t[i][1];
        out[(size_t)(i * 4 + 3) * stride] = t[i][1] - t[i][3];
    }
}

__kernel void winograd_transform_products(const __global float *restrict m,
                                          const __global float *restrict bias,
                                          __global float *restrict output, const int channels,
                                          const int out_height, const int out_width,
                                          const int tiles_h, const int tiles_w, const int has_bias,
                                          const int count, const int stride) {
    const int item = get_global_id(0);
    if (item >= count)
        return;
    const int tiles = tiles_h * tiles_w;
    const int tile = item % tiles, plane = item / tiles; /* n * K + k */
    const __global float *in = m + item;
    float p[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            p[i][j] = in[(size_t)(i * 4 + j) * stride];
    /* A^T p: rows 0+1+2, 1-2-3; then the same on the columns. */
    float s[2][4];
    for (int j = 0; j < 4; j++) {
        s[0][j] = p[0][j] + p[1][j] + p[2][j];
        s[1][j] = p[1][j] - p[2][j] - p[3][j];
    }
    const float b = has_bias ? bias[plane % channels] : 0.0f;
    const int y0 = (tile / tiles_w) * 2, x0 = (tile % tiles_w) * 2;
    __global float *out = output + (size_t)plane * out_height * out_width;
    for (int i = 0; i < 2 && y0 + i < out_height; i++) {
        const float y[2] = {s[i][0] + s[i][1] + s[i][2], s[i][1] - s[i][2] - s[i][3]};
        for (int j = 0; j < 2 && x0 + j < out_width; j++)
            out[(y0 + i) * out_width + x0 + j] = y[j] + b;
    }
}
