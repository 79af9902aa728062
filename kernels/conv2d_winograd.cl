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
 * convolution kernels as a 1x1 convolution in 16 groups (one per point xi
 * of the 4x4 transformed tile), so the long reduction over channels runs
 * on the register-blocked code that is tuned per device:
 *
 *   winograd_transform_filters  (K, C, 3, 3) -> U (16*K, C): row xi*K + k
 *   winograd_transform_tiles    input (N, C, H, W) -> V (N, 16*C, TH, TW),
 *                               channel xi*C + c, zero outside the input
 *   (1x1, 16 groups)            M (N, 16*K, TH, TW) = U_xi V_xi per group
 *   winograd_transform_products M -> output (N, K, OH, OW), plus bias
 *
 * TH = ceil(OH / 2), TW = ceil(OW / 2). No -D parameters; one work-item per
 * filter, per (image, channel, tile) and per (image, output channel, tile).
 * The tiles' transform writes a tile's 16 values 16*C*TH*TW floats apart;
 * the products' transform reads them so. */

/* Where the 16 transformed values of a tile begin in a (N, 16*channels,
 * tiles) tensor, for the work-item `item` of (n, channel, tile). */
size_t transformed_start(const int item, const int channels, const int tiles) {
    const int plane = item / tiles;
    return ((size_t)(plane / channels) * 16 * channels + plane % channels) * tiles + item % tiles;
}

/* flip_transpose (backward-data run as a forward): the filters are
 * (C, K, 3, 3) of the convolution whose input gradient this is, read with
 * their taps reversed and the two channel counts exchanged. */
__kernel void winograd_transform_filters(const __global float *restrict weight,
                                         __global float *restrict u, const int in_channels,
                                         const int out_channels, const int flip_transpose) {
    const int item = get_global_id(0);
    if (item >= in_channels * out_channels)
        return;
    const int k = item / in_channels, c = item % in_channels;
    float g[3][3];
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++)
            g[r][s] = flip_transpose ? weight[(c * out_channels + k) * 9 + (2 - r) * 3 + (2 - s)]
                                     : weight[(k * in_channels + c) * 9 + r * 3 + s];
    /* G g: 4 rows of 3. */
    float gg[4][3];
    for (int s = 0; s < 3; s++) {
        gg[0][s] = g[0][s];
        gg[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
        gg[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
        gg[3][s] = g[2][s];
    }
    const int plane = out_channels * in_channels;
    for (int i = 0; i < 4; i++) {
        const float row[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                              0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
        for (int j = 0; j < 4; j++)
            u[(i * 4 + j) * plane + item] = row[j];
    }
}

__kernel void winograd_transform_tiles(const __global float *restrict input,
                                       __global float *restrict v, const int channels,
                                       const int height, const int width, const int pad_top,
                                       const int pad_left, const int tiles_h, const int tiles_w,
                                       const int count) {
    const int item = get_global_id(0);
    if (item >= count)
        return;
    const int tiles = tiles_h * tiles_w;
    const int tile = item % tiles, plane = item / tiles; /* plane = n * C + c */
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
    const size_t step = (size_t)channels * tiles;
    __global float *out = v + transformed_start(item, channels, tiles);
    for (int i = 0; i < 4; i++) {
        out[(i * 4 + 0) * step] = t[i][0] - t[i][2];
        out[(i * 4 + 1) * step] = t[i][1] + t[i][2];
        out[(i * 4 + 2) * step] = t[i][2] - t[i][1];
        out[(i * 4 + 3) * step] = t[i][1] - t[i][3];
    }
}

__kernel void winograd_transform_products(const __global float *restrict m,
                                          const __global float *restrict bias,
                                          __global float *restrict output, const int channels,
                                          const int out_height, const int out_width,
                                          const int tiles_h, const int tiles_w, const int has_bias,
                                          const int count) {
    const int item = get_global_id(0);
    if (item >= count)
        return;
    const int tiles = tiles_h * tiles_w;
    const int tile = item % tiles, plane = item / tiles; /* plane = n * K + k */
    const size_t step = (size_t)channels * tiles;
    const __global float *in = m + transformed_start(item, channels, tiles);
    float p[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            p[i][j] = in[(i * 4 + j) * step];
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
