/* Winograd F(2x2, 3x3) for stride-1 3x3 convolutions, NCHW float32 (Lavin
 * and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015).
 * Each 2x2 block of outputs (a tile) comes from the 4x4 block of input
 * around it; in the transformed domain the 3x3 window becomes 16
 * independent products, so one tile of one output channel costs 16
 * multiply-adds per input channel instead of 36:
 *
 *   Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A
 *
 * host/ops/conv2d_winograd.c runs these kernels in turn (TH = ceil(OH / 2),
 * TW = ceil(OW / 2), P = N * TH * TW tiles in all, the columns):
 *
 *   winograd_transform_filters  (K, C, 3, 3) -> U (16, C, K_padded), zeros
 *                               past K; one work-item per filter (c, k)
 *   winograd_transform_tiles    input -> V (16, C, pitch): column n * TH *
 *                               TW + ty * TW + tx holds tile (ty, tx) of
 *                               image n, the padding's zeros made as read
 *   winograd_products           M[xi] (K, pitch) = U[xi]^T V[xi], 16
 *                               matrix products with a reduction over C
 *   winograd_transform_products M -> output (N, K, OH, OW), plus bias
 *
 * or, for few channels, winograd_fused (below), which does the rest in one
 * kernel; or winograd4_fused (at the end), F(4x4, 3x3) in one kernel.
 *
 * Each transformed tensor's 16 parts lie `stride` floats apart (the host's
 * part_stride: never a multiple of 4 KiB, whose 16 streams, which a
 * transform reads or writes together, would share their L1 sets). The
 * columns run in one long row per channel, whatever the batch and image
 * size, so that the products are matrix products as wide as the batch's
 * tiles: on planes of tiles one image at a time (1x1 convolutions on the
 * direct kernel) they had run at a third of the direct 3x3 kernels' speed.
 *
 * Parameters (-D): VW and NV, a products work-item's columns (NV vectors of
 * VW: 2, 4, 8 or 16 floats); WPT_K, its output channels (its accumulators: WPT_K * NV vectors);
 * TILE_VW (1, 2, 4 or 8, at most TW), the tiles a transform's work-item
 * takes at a time along a tile row, as vectors; PADDED_COPY, 1 where the windows are read
 * from a copy padded to (2 TH + 2) x (2 TW + 2), 0 from the input itself
 * (load_window_row). Launch: winograd_products
 * over (ceil(K / WPT_K), pitch / (VW * NV), 16), pitch a multiple of VW *
 * NV; the tiles' and products' transforms over one work-item per tile row
 * of each (image, channel) plane; any local sizes. Backward-weights (its
 * own section below) adds GRADIENT_WPT_C. */

#ifndef VW
#define VW 8
#endif
#ifndef NV
#define NV 2
#endif
#ifndef WPT_K
#define WPT_K 8
#endif

#ifndef TILE_VW
#define TILE_VW 4
#endif

/* vloadN and vstoreN for a width given as a macro. */
#define GLUE(a, b) a##b
#define VECTOR(type, width) GLUE(type, width)
#define VLOAD(width) GLUE(vload, width)
#define VSTORE(width) GLUE(vstore, width)
typedef VECTOR(float, VW) floatv;

/* Two vectors of TILE_VW floats side by side, and (a0, b0, a1, b1, ...).
 * Clang's own shuffle where it has one: from the vector literal below,
 * LLVM 15 built each 16 floats of the fused kernel's output with 17
 * permutes in place of one (perf annotate, AVX-512). */
#if defined(__clang__) && defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define HAS_SHUFFLEVECTOR 1
#endif
#endif
#if VW == 8 && defined(HAS_SHUFFLEVECTOR)
#define HAS_TRANSPOSE8 1
/* out[j] lane l = in[l] lane j: an 8 x 8 transposition in three rounds of
 * shuffles (interleaved pairs of lanes, then pairs of pairs, then halves). */
#define TRANSPOSE8(in, out)                                                                        \
    do {                                                                                           \
        floatv a_[8], b_[8];                                                                       \
        _Pragma("unroll") for (int q_ = 0; q_ < 8; q_ += 2) {                                      \
            a_[q_] = __builtin_shufflevector(in[q_], in[q_ + 1], 0, 8, 1, 9, 4, 12, 5, 13);        \
            a_[q_ + 1] = __builtin_shufflevector(in[q_], in[q_ + 1], 2, 10, 3, 11, 6, 14, 7, 15);  \
        }                                                                                          \
        _Pragma("unroll") for (int q_ = 0; q_ < 8; q_ += 4) {                                      \
            b_[q_] = __builtin_shufflevector(a_[q_], a_[q_ + 2], 0, 1, 8, 9, 4, 5, 12, 13);        \
            b_[q_ + 1] = __builtin_shufflevector(a_[q_], a_[q_ + 2], 2, 3, 10, 11, 6, 7, 14, 15);  \
            b_[q_ + 2] = __builtin_shufflevector(a_[q_ + 1], a_[q_ + 3], 0, 1, 8, 9, 4, 5, 12, 13);\
            b_[q_ + 3] =                                                                           \
                __builtin_shufflevector(a_[q_ + 1], a_[q_ + 3], 2, 3, 10, 11, 6, 7, 14, 15);       \
        }                                                                                          \
        _Pragma("unroll") for (int q_ = 0; q_ < 4; q_++) {                                         \
            out[q_] = __builtin_shufflevector(b_[q_], b_[q_ + 4], 0, 1, 2, 3, 8, 9, 10, 11);       \
            out[q_ + 4] = __builtin_shufflevector(b_[q_], b_[q_ + 4], 4, 5, 6, 7, 12, 13, 14, 15); \
        }                                                                                          \
    } while (0)
#endif
#if TILE_VW == 1
#define TILE_PAIR_WIDTH 2
#define INTERLEAVE(a, b) ((float2)((a), (b)))
#elif TILE_VW == 2
#define TILE_PAIR_WIDTH 4
#ifdef HAS_SHUFFLEVECTOR
#define INTERLEAVE(a, b) __builtin_shufflevector(a, b, 0, 2, 1, 3)
#else
#define INTERLEAVE(a, b) ((float4)((a).s0, (b).s0, (a).s1, (b).s1))
#endif
#elif TILE_VW == 4
#define TILE_PAIR_WIDTH 8
#ifdef HAS_SHUFFLEVECTOR
#define INTERLEAVE(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5, 2, 6, 3, 7)
#else
#define INTERLEAVE(a, b) ((float8)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3))
#endif
#elif TILE_VW == 8
#define TILE_PAIR_WIDTH 16
#ifdef HAS_SHUFFLEVECTOR
#define INTERLEAVE(a, b)                                                                           \
    __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)
#else
#define INTERLEAVE(a, b)                                                                           \
    ((float16)((a).s0, (b).s0, (a).s1, (b).s1, (a).s2, (b).s2, (a).s3, (b).s3, (a).s4, (b).s4,     \
               (a).s5, (b).s5, (a).s6, (b).s6, (a).s7, (b).s7))
#endif
#endif

/* flip_transpose (backward-data run as a forward): the filters are
 * (C, K, 3, 3) of the convolution whose input gradient this is, read with
 * their taps reversed and the two channel counts exchanged. Each part holds
 * the output channels in blocks of k_block, a block's (C, k_block) after
 * the one before: for the products one block of K_padded, (C, K_padded);
 * for the fused kernel blocks of FUSED_K, each of which a work-item reads
 * from start to end, and in winograd_fused_pairs' program (-DPAIRS=1) two
 * parts side by side in each float pair (its pairs, below): pair p at
 * 2 p * stride, part (i, j) in pair 2i + (j is 1 or 2), second of it where
 * j >= 2. */
#ifndef PAIRS
#define PAIRS 0
#endif
/* The filter (c, k) of work-item c * padded_out_channels + k into g (zeros
 * for k past out_channels; with flip_transpose read as described above);
 * returns where its transform goes in a part: k's block of k_block, then
 * c, then k within the block. */
static int filter_of_item(const __global float *weight, const int in_channels,
                          const int out_channels, const int padded_out_channels,
                          const int flip_transpose, const int k_block, const int item,
                          float g[3][3]) {
    const int k = item % padded_out_channels, c = item / padded_out_channels;
#pragma unroll
    for (int r = 0; r < 3; r++)
#pragma unroll
        for (int s = 0; s < 3; s++)
            g[r][s] = k >= out_channels ? 0.0f
                      : flip_transpose  ? weight[(c * out_channels + k) * 9 + (2 - r) * 3 + (2 - s)]
                                        : weight[(k * in_channels + c) * 9 + r * 3 + s];
    return (k / k_block * in_channels + c) * k_block + k % k_block;
}

__kernel void winograd_transform_filters(const __global float *restrict weight,
                                         __global float *restrict u, const int in_channels,
                                         const int out_channels, const int padded_out_channels,
                                         const int flip_transpose, const int stride,
                                         const int k_block) {
    const int item = get_global_id(0); /* c * padded_out_channels + k */
    if (item >= in_channels * padded_out_channels)
        return;
    /* Every loop unrolled: PoCL had kept g and the rows in memory and run
     * the work-items one by one (64 channels: 145 us a launch, 55-70 so). */
    float g[3][3];
    const int to = filter_of_item(weight, in_channels, out_channels, padded_out_channels,
                                  flip_transpose, k_block, item, g);
    /* G g: 4 rows of 3. */
    float gg[4][3];
#pragma unroll
    for (int s = 0; s < 3; s++) {
        gg[0][s] = g[0][s];
        gg[1][s] = 0.5f * (g[0][s] + g[1][s] + g[2][s]);
        gg[2][s] = 0.5f * (g[0][s] - g[1][s] + g[2][s]);
        gg[3][s] = g[2][s];
    }
    /* ... G^T: the same on the rows' three values. */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float row[4] = {gg[i][0], 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]),
                              0.5f * (gg[i][0] - gg[i][1] + gg[i][2]), gg[i][2]};
#pragma unroll
        for (int j = 0; j < 4; j++) {
#if PAIRS
            /* Pair 2i: parts (i, 0) and (i, 3); pair 2i + 1: (i, 1) and (i, 2). */
            const int pair = 2 * i + (j == 1 || j == 2);
            const int second = j >= 2;
            u[(size_t)pair * 2 * stride + 2 * to + second] = row[j];
#else
            u[(i * 4 + j) * stride + to] = row[j];
#endif
        }
    }
}

/* Chunks of TILE_VW tiles side by side in a tile row, lane t for the t-th
 * tile. A row of tiles_w >= TILE_VW tiles runs in chunks from tiles 0,
 * TILE_VW, ... and a last one that ends at the row's end, overlapping the
 * one before it where TILE_VW does not divide the row (its tiles are
 * written twice, with the same values). */
typedef VECTOR(float, TILE_PAIR_WIDTH) tile_pair;
#if TILE_VW == 1
typedef float tilev;
#define load_tiles(pointer) (*(pointer))
#define store_tiles(value, pointer) (*(pointer) = (value))
#else
typedef VECTOR(float, TILE_VW) tilev;
#define load_tiles(pointer) VLOAD(TILE_VW)(0, pointer)
#define store_tiles(value, pointer) VSTORE(TILE_VW)(value, 0, pointer)
#endif
#define chunk_start(tx, tiles_w) min(tx, tiles_w - TILE_VW)

/* out[i * 4 + j] = (B^T d B)[i][j] for a 4x4 window d of vectors of
 * `type`: rows 0-2, 1+2, 2-1, 1-3, then the same on the columns. */
#define TRANSFORM_WINDOW(type, d, out)                                                             \
    do {                                                                                           \
        type t_[4][4];                                                                             \
        _Pragma("unroll") for (int j_ = 0; j_ < 4; j_++) {                                         \
            t_[0][j_] = d[0][j_] - d[2][j_];                                                       \
            t_[1][j_] = d[1][j_] + d[2][j_];                                                       \
            t_[2][j_] = d[2][j_] - d[1][j_];                                                       \
            t_[3][j_] = d[1][j_] - d[3][j_];                                                       \
        }                                                                                          \
        _Pragma("unroll") for (int i_ = 0; i_ < 4; i_++) {                                         \
            out[i_ * 4 + 0] = t_[i_][0] - t_[i_][2];                                               \
            out[i_ * 4 + 1] = t_[i_][1] + t_[i_][2];                                               \
            out[i_ * 4 + 2] = t_[i_][2] - t_[i_][1];                                               \
            out[i_ * 4 + 3] = t_[i_][1] - t_[i_][3];                                               \
        }                                                                                          \
    } while (0)

/* A^T p A of a tile's 16 products p[i * 4 + j], vectors of `type`: its
 * rows' even and odd outputs, plus b. A^T p: rows 0+1+2, 1-2-3; then the
 * same on the columns. */
#define TRANSFORM_PRODUCTS(type, p, b, even, odd)                                                  \
    do {                                                                                           \
        type s_[2][4];                                                                             \
        _Pragma("unroll") for (int j_ = 0; j_ < 4; j_++) {                                         \
            s_[0][j_] = p[j_] + p[4 + j_] + p[8 + j_];                                             \
            s_[1][j_] = p[4 + j_] - p[8 + j_] - p[12 + j_];                                        \
        }                                                                                          \
        _Pragma("unroll") for (int i_ = 0; i_ < 2; i_++) {                                         \
            even[i_] = s_[i_][0] + s_[i_][1] + s_[i_][2] + (b);                                    \
            odd[i_] = s_[i_][1] - s_[i_][2] - s_[i_][3] + (b);                                     \
        }                                                                                          \
    } while (0)

/* What the forward kernels do to an output before they store it (their
 * `epilogue` argument, a set of these): the channel's bias is added in the
 * transform (TRANSFORM_PRODUCTS' b), then a relu (one fused into the
 * convolution: host/graph/plan.c) applied as kernels/activation.cl's, bit
 * for bit; then, with EPILOGUE_ACCUMULATE, the output is added to what the
 * output buffer holds (backward-data into a gradient that another layer
 * has written already), each float as old + new. */
#define EPILOGUE_BIAS 1
#define EPILOGUE_RELU 2
#define EPILOGUE_ACCUMULATE 4
#define FINISH_OUTPUT(type, v, epilogue)                                                           \
    ((epilogue)&EPILOGUE_RELU ? select(v, (type)(0.0f), (v) <= (type)(0.0f)) : (v))

/* A row of TILE_VW tiles' outputs at o: all of them, or where an odd
 * output width ends in half a tile (!full) all but the last. With
 * EPILOGUE_ACCUMULATE they are added to what o holds, from float `from` on:
 * a row's last chunk starts early (chunk_start), and its first `from`
 * floats are those the chunk before it stored already, which stored twice
 * would be added twice. */
static void store_tile_row(const tile_pair row, __global float *o, const int full,
                           const int epilogue, const int from) {
    const int accumulate = epilogue & EPILOGUE_ACCUMULATE;
    if (full && !accumulate) {
        VSTORE(TILE_PAIR_WIDTH)(row, 0, o);
    } else if (full && from == 0) {
        VSTORE(TILE_PAIR_WIDTH)(VLOAD(TILE_PAIR_WIDTH)(0, o) + row, 0, o);
    } else {
        float values[TILE_PAIR_WIDTH];
        VSTORE(TILE_PAIR_WIDTH)(row, 0, values);
        const int end = full ? TILE_PAIR_WIDTH : TILE_PAIR_WIDTH - 1;
        for (int x = accumulate ? from : 0; x < end; x++)
            o[x] = accumulate ? o[x] + values[x] : values[x];
    }
}

/* ---- the windows, read from the input itself --------------------------
 * A chunk's windows need input columns x .. x + 2 TILE_VW + 1 (x = 2 tx -
 * pad_left) of rows y .. y + 3 (y = 2 ty - pad_top); those outside the
 * input are the padding's zeros, as a padded copy would hold them: the
 * floats are the same without one, and without its launch, which reads and
 * writes the whole input. */

/* (first, v0, ..., v[TILE_VW - 2]) and (v1, ..., v[TILE_VW - 1], last):
 * one lane in at either end. */
#if TILE_VW == 1
#define SHIFT_IN_FIRST(first, v) (first)
#define SHIFT_IN_LAST(v, last) (last)
#elif defined(HAS_SHUFFLEVECTOR)
#if TILE_VW == 2
#define SHIFT_IN_FIRST(first, v) __builtin_shufflevector((tilev)(first), v, 0, 2)
#define SHIFT_IN_LAST(v, last) __builtin_shufflevector(v, (tilev)(last), 1, 2)
#elif TILE_VW == 4
#define SHIFT_IN_FIRST(first, v) __builtin_shufflevector((tilev)(first), v, 0, 4, 5, 6)
#define SHIFT_IN_LAST(v, last) __builtin_shufflevector(v, (tilev)(last), 1, 2, 3, 4)
#else
#define SHIFT_IN_FIRST(first, v)                                                                   \
    __builtin_shufflevector((tilev)(first), v, 0, 8, 9, 10, 11, 12, 13, 14)
#define SHIFT_IN_LAST(v, last) __builtin_shufflevector(v, (tilev)(last), 1, 2, 3, 4, 5, 6, 7, 8)
#endif
#elif TILE_VW == 2
#define SHIFT_IN_FIRST(first, v) ((float2)((first), (v).s0))
#define SHIFT_IN_LAST(v, last) ((float2)((v).s1, (last)))
#elif TILE_VW == 4
#define SHIFT_IN_FIRST(first, v) ((float4)((first), (v).s012))
#define SHIFT_IN_LAST(v, last) ((float4)((v).s123, (last)))
#else
#define SHIFT_IN_FIRST(first, v) ((float8)((first), (v).s0123, (v).s456))
#define SHIFT_IN_LAST(v, last) ((float8)((v).s123, (v).s4567, (last)))
#endif

/* The window columns d[j][t] = row[x + 2t + j], j = 0..3, of the row at
 * `row` (width floats), zero outside it. From a copy padded to (2 TH + 2)
 * x (2 TW + 2) (-DPADDED_COPY=1, with no padding of its own) every window
 * lies inside: two vector loads. From the input itself (PADDED_COPY 0)
 * one vector load of columns x + 1 .. x + 2 TILE_VW (load_middle), and a
 * float either side, loaded within the row and then chosen (no branch).
 * The host reads the input itself only where pad_left is at most 1 and the
 * last chunk's columns end at most one past the row: every row of padding
 * 0, or of padding 1 and even width, and the odd widths' last chunk, whose
 * vector is a float short (7x7 planes: their padded copy had taken a tenth
 * of the forward's time at 64 channels, batch 128). */
#ifndef PADDED_COPY
#define PADDED_COPY 1
#endif

/* Columns x + 1 .. x + TILE_PAIR_WIDTH of a row of `width` floats, the last
 * one 0 where it lies past the row (x + TILE_PAIR_WIDTH == width): then the
 * loads stop at the row's end. */
#if TILE_PAIR_WIDTH == 2
#define LOAD_SHORT(p) ((tile_pair)((p)[0], 0.0f))
#elif TILE_PAIR_WIDTH == 4
#define LOAD_SHORT(p) ((tile_pair)(vload3(0, p), 0.0f))
#elif TILE_PAIR_WIDTH == 8
#define LOAD_SHORT(p) ((tile_pair)(vload4(0, p), vload3(0, (p) + 4), 0.0f))
#else
#define LOAD_SHORT(p) ((tile_pair)(vload8(0, p), vload4(0, (p) + 8), vload3(0, (p) + 12), 0.0f))
#endif
static tile_pair load_middle(const __global float *row, const int x, const int width) {
    if (x + TILE_PAIR_WIDTH < width)
        return VLOAD(TILE_PAIR_WIDTH)(0, row + x + 1);
    return LOAD_SHORT(row + x + 1);
}

static void load_window_row(const __global float *row, const int x, const int width, tilev *d) {
#if PADDED_COPY
    const tile_pair a = VLOAD(TILE_PAIR_WIDTH)(0, row + x);
    const tile_pair b = VLOAD(TILE_PAIR_WIDTH)(0, row + x + 2);
    d[0] = a.even;
    d[1] = a.odd;
    d[2] = b.even;
    d[3] = b.odd;
#else
    const tile_pair middle = load_middle(row, x, width);
    const int end = x + TILE_PAIR_WIDTH + 1;
    const float first = select(0.0f, row[max(x, 0)], x >= 0);
    const float last = select(0.0f, row[min(end, width - 1)], end < width);
    d[0] = SHIFT_IN_FIRST(first, middle.odd);
    d[1] = middle.even;
    d[2] = middle.odd;
    d[3] = SHIFT_IN_LAST(middle.even, last);
#endif
}

/* The tile row a transform's work-item takes: item < rows = N x channels x
 * TH, channel-major (channel, image, tile row), so that neighbouring
 * work-items take neighbouring columns of one channel's rows of the 16
 * parts, which they write or read in long runs. (Image-major, each
 * work-item's 16 pieces landed apart from its neighbours': the tiles'
 * transform took twice the time, 256 channels 14x14, batch 32, 4.6 -> 2.2
 * ms a call.) */
typedef struct tile_row {
    int n, c, ty;
} tile_row;

static tile_row tile_row_of(const int item, const int rows, const int channels,
                            const int tiles_h) {
    const int image_row = item / tiles_h, batch = rows / (channels * tiles_h);
    const tile_row at = {image_row % batch, image_row / batch, item % tiles_h};
    return at;
}

/* Row `at` of a plane of `height` rows lies inside it (always, in a padded copy). */
#define ROW_INSIDE(at, height) (PADDED_COPY || ((at) >= 0 && (at) < (height)))

/* B^T d B of the TILE_VW windows side by side whose first is the plane's
 * (at `in`) rows y .. y + 3, columns x .. x + 3: d[i][j][t] is the window's
 * (i, j), input row y + i and column x + j + 2t. */
static void transform_windows(const __global float *in, const int y, const int x,
                              const int height, const int width, tilev *transformed) {
    tilev d[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (ROW_INSIDE(y + i, height)) {
            load_window_row(in + (y + i) * width, x, width, d[i]);
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++)
                d[i][j] = 0.0f;
        }
    }
    TRANSFORM_WINDOW(tilev, d, transformed);
}

/* One work-item per row of tiles of one plane (n, c) of the input, in
 * tile_row_of's order (H, W, with padding pad_top and pad_left on the
 * tiles' side; zeros past its other sides as far as the tiles reach;
 * load_window_row says which): the tiles' 16 transformed values go to
 * columns n * TH * TW + ty * TW + tx of row c of the 16 parts. */
__kernel void winograd_transform_tiles(const __global float *restrict input,
                                       __global float *restrict v, const int channels,
                                       const int height, const int width, const int pad_top,
                                       const int pad_left, const int tiles_h, const int tiles_w,
                                       const int pitch, const int stride, const int rows) {
    const int item = get_global_id(0);
    if (item >= rows)
        return;
    const tile_row at = tile_row_of(item, rows, channels, tiles_h);
    const int n = at.n, c = at.c, ty = at.ty, plane = n * channels + c;
    const int y = 2 * ty - pad_top;
    const __global float *in = input + (size_t)plane * height * width;
    __global float *out = v + (size_t)c * pitch + ((size_t)n * tiles_h + ty) * tiles_w;
    for (int next = 0; next < tiles_w; next += TILE_VW) {
        const int tx = chunk_start(next, tiles_w);
        tilev transformed[16];
        transform_windows(in, y, 2 * tx - pad_left, height, width, transformed);
#pragma unroll
        for (int xi = 0; xi < 16; xi++)
            store_tiles(transformed[xi], out + tx + (size_t)xi * stride);
    }
}

/* M[xi] (K, pitch) = U[xi]^T V[xi]: work-item (x, y, xi) computes output
 * channels x*WPT_K .. +WPT_K-1 of columns y*VW*NV .. +VW*NV-1. Work-items
 * side by side along x share their columns, which stay in the cache. */
__kernel void winograd_products(const __global float *restrict u,
                                const __global float *restrict v, __global float *restrict m,
                                const int channels, const int out_channels,
                                const int padded_out_channels, const int pitch,
                                const int u_stride, const int v_stride, const int m_stride) {
    const int k0 = get_global_id(0) * WPT_K, column = get_global_id(1) * (VW * NV);
    const int xi = get_global_id(2);
    if (column >= pitch || k0 >= out_channels)
        return;
    const __global float *uu = u + (size_t)xi * u_stride + k0;
    const __global float *vv = v + (size_t)xi * v_stride + column;
    floatv acc[WPT_K][NV];
#pragma unroll
    for (int j = 0; j < WPT_K; j++)
#pragma unroll
        for (int n = 0; n < NV; n++)
            acc[j][n] = 0.0f;
    for (int c = 0; c < channels; c++) {
        floatv x[NV];
#pragma unroll
        for (int n = 0; n < NV; n++)
            x[n] = VLOAD(VW)(0, vv + (size_t)c * pitch + n * VW);
#pragma unroll
        for (int j = 0; j < WPT_K; j++) {
            const float w = uu[c * padded_out_channels + j];
#pragma unroll
            for (int n = 0; n < NV; n++)
                acc[j][n] = fma((floatv)w, x[n], acc[j][n]);
        }
    }
    __global float *out = m + (size_t)xi * m_stride + (size_t)k0 * pitch + column;
#pragma unroll
    for (int j = 0; j < WPT_K; j++)
        if (k0 + j < out_channels)
#pragma unroll
            for (int n = 0; n < NV; n++)
                VSTORE(VW)(acc[j][n], 0, out + (size_t)j * pitch + n * VW);
}

/* One work-item per row of tiles of one output plane (n, k), in
 * tile_row_of's order. */
__kernel void winograd_transform_products(const __global float *restrict m,
                                          const __global float *restrict bias,
                                          __global float *restrict output, const int channels,
                                          const int out_height, const int out_width,
                                          const int tiles_h, const int tiles_w, const int epilogue,
                                          const int pitch, const int stride, const int rows) {
    const int item = get_global_id(0);
    if (item >= rows)
        return;
    const tile_row at = tile_row_of(item, rows, channels, tiles_h);
    const int n = at.n, k = at.c, ty = at.ty, plane = n * channels + k;
    const __global float *in = m + (size_t)k * pitch + ((size_t)n * tiles_h + ty) * tiles_w;
    __global float *out = output + (size_t)plane * out_height * out_width;
    const float b = (epilogue & EPILOGUE_BIAS) ? bias[k] : 0.0f;
    const int y0 = ty * 2;
    for (int next = 0; next < tiles_w; next += TILE_VW) {
        const int tx = chunk_start(next, tiles_w);
        tilev p[16], even[2], odd[2];
#pragma unroll
        for (int xi = 0; xi < 16; xi++)
            p[xi] = load_tiles(in + (size_t)xi * stride + tx);
        TRANSFORM_PRODUCTS(tilev, p, b, even, odd);
        const int x0 = tx * 2;
#pragma unroll
        for (int i = 0; i < 2 && y0 + i < out_height; i++)
            store_tile_row(INTERLEAVE(FINISH_OUTPUT(tilev, even[i], epilogue),
                                      FINISH_OUTPUT(tilev, odd[i], epilogue)),
                           out + (y0 + i) * out_width + x0, x0 + TILE_PAIR_WIDTH <= out_width,
                           epilogue, 2 * (next - tx));
    }
}

/* ---- fused: one kernel from the input to the output -----------------------
 * For few channels the transformed tensors cost more to write and read back
 * than their products save (16 channels at 28x28: 40 GFLOP/s in the
 * products, bound by memory). Here a work-item takes FUSED_R tile vectors
 * (FUSED_R * FUSED_S tile rows of TILE_VW tiles each, the same columns)
 * and every output channel, from the input to the output: it transforms
 * all its tiles of every input channel into private memory (V, FUSED_C >=
 * C channels), then for each block of FUSED_K output channels and each
 * part sums the products over the channels in FUSED_R x FUSED_K
 * accumulators (tile vectors times U's values: each U value serves FUSED_R
 * vectors, each tile vector FUSED_K channels, as the direct kernels'
 * weights and positions), keeps the sums (M, private) and transforms them
 * into its outputs.
 *
 * Two layouts of its vectors, one kernel each (-DPAIRS says which the
 * program holds):
 *   winograd_fused (PAIRS 0): a vector holds TILE_VW * FUSED_S tiles, one
 *     part of each, so 16 vectors carry the tiles' 16 parts. A row's
 *     windows are split into even and odd columns as they are loaded and
 *     the outputs' even and odd columns interleaved as they are stored;
 *     U's values are scalars, broadcast within each multiply-add.
 *   winograd_fused_pairs (PAIRS 1): a vector holds its tiles as a row of
 *     the input and of the output holds them, two floats a tile side by
 *     side, and two of the 16 parts with them, a tile's first part in its
 *     even lane and the second in its odd lane: the window's columns
 *     (0, 3) in one vector and (1, 2) in another, so 8 vectors carry the
 *     16 parts. The columns' transform comes straight from three loads of
 *     a row, columns x, x + 2 and x + 1 (d0 - d2 | d1 - d3 from the first
 *     two; d1 + d2 | d2 - d1 from the third and its pairs swapped), and the
 *     output's from the pairs in the same way, stored as they are. U holds
 *     each pair's two parts side by side (winograd_transform_filters in
 *     the same program), splat across the vector by a load of its own before
 *     each multiply-add. Cheaper transforms, dearer products: faster where
 *     the transforms weigh most, with few channels (kernel time, batch 64,
 *     Intel Xeon with AVX-512, vectors of 16 floats: 16 channels at 28x28
 *     0.93-0.99 -> 0.78-0.85 ms, 32 at 14x14 0.79-0.86 -> 0.76-0.80 ms),
 *     slower with many (256 at 14x14, batch 32: 20.2 -> 24.6 ms), so
 *     tuning times both.
 *
 * Parameters (-D): FUSED_R tile vectors and FUSED_K output channels at a
 * time (FUSED_R * FUSED_K accumulators), FUSED_S tile rows side by side in
 * a tile vector (1, 2 or 4: TILE_VW * FUSED_S tiles, at most 16, or with
 * PAIRS at most 8 in twice as many floats), FUSED_C the channels V holds
 * (at least C). Launch over ceil(N * TH / (FUSED_R * FUSED_S)) * chunks
 * work-items, chunks = ceil(TW / TILE_VW), with the batch N; U from
 * winograd_transform_filters (built with the same -D) with K padded to
 * whole blocks of FUSED_K and k_block FUSED_K. */
#ifndef FUSED_K
#define FUSED_K 8
#endif
#ifndef FUSED_R
#define FUSED_R 2
#endif
#ifndef FUSED_C
#define FUSED_C 16
#endif
#ifndef FUSED_S
#define FUSED_S 1
#endif

/* A fused vector: FUSED_S segments of TILE_VW tiles (tilev, or with PAIRS
 * tile_pair, two floats a tile), each from a tile row of its own (rows side
 * by side in the vector), so that images of few tiles a row still fill a
 * whole vector. JOIN puts a row's segments (rows[0] .. rows[FUSED_S - 1])
 * side by side; SEGMENT takes segment s back out. With PAIRS, SIGNS is +1
 * in the even lanes and -1 in the odd ones, SWAP_PAIRS exchanges each
 * pair's two lanes and SPLAT_PAIR repeats the two floats at p across the
 * vector. */
#if PAIRS
#define FUSED_LANES (2 * TILE_VW * FUSED_S)
#define FUSED_PARTS 8 /* the vectors that carry a tile's 16 parts */
#define U_FLOATS 2    /* U's floats a multiply-add takes, as a vector: */
#define U_VALUE(p) SPLAT_PAIR(p)
#else
#define FUSED_LANES (TILE_VW * FUSED_S)
#define FUSED_PARTS 16
#define U_FLOATS 1
#define U_VALUE(p) ((fusedv)(*(p)))
#endif
#if FUSED_LANES == 1
typedef float fusedv;
#elif FUSED_LANES == 2
typedef float2 fusedv;
#elif FUSED_LANES == 4
typedef float4 fusedv;
#elif FUSED_LANES == 8
typedef float8 fusedv;
#elif FUSED_LANES == 16
typedef float16 fusedv;
#else
#error "the fused kernel's vectors take 1, 2, 4, 8 or 16 floats"
#endif
#if FUSED_S == 1
#define JOIN(rows) (rows[0])
#define SEGMENT(v, s) (v)
#elif FUSED_S == 2
#define JOIN(rows) ((fusedv)(rows[0], rows[1]))
#define SEGMENT(v, s) ((s) == 0 ? (v).lo : (v).hi)
#else
#define JOIN(rows) ((fusedv)(rows[0], rows[1], rows[2], rows[3]))
#define SEGMENT(v, s)                                                                              \
    ((s) == 0 ? (v).lo.lo : (s) == 1 ? (v).lo.hi : (s) == 2 ? (v).hi.lo : (v).hi.hi)
#endif

#if PAIRS
#if FUSED_LANES == 2
#define SIGNS ((fusedv)(1.0f, -1.0f))
#define SWAP_INDICES 1, 0
#define SPLAT_PAIR(p) vload2(0, p)
#elif FUSED_LANES == 4
#define SIGNS ((fusedv)(1.0f, -1.0f, 1.0f, -1.0f))
#define SWAP_INDICES 1, 0, 3, 2
#define SPLAT_PAIR(p) as_float4((ulong2)(as_ulong(vload2(0, p))))
#elif FUSED_LANES == 8
#define SIGNS ((fusedv)(1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f))
#define SWAP_INDICES 1, 0, 3, 2, 5, 4, 7, 6
#define SPLAT_PAIR(p) as_float8((ulong4)(as_ulong(vload2(0, p))))
#elif FUSED_LANES == 16
#define SIGNS                                                                                      \
    ((fusedv)(1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f, -1.0f, 1.0f,  \
              -1.0f, 1.0f, -1.0f))
#define SWAP_INDICES 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14
#define SPLAT_PAIR(p) as_float16((ulong8)(as_ulong(vload2(0, p))))
#endif
#ifdef HAS_SHUFFLEVECTOR
#define SWAP_PAIRS(v) __builtin_shufflevector(v, v, SWAP_INDICES)
#else
#define SWAP_PAIRS(v) shuffle(v, (VECTOR(uint, FUSED_LANES))(SWAP_INDICES))
#endif
/* (first, v[0], ..., v[2 TILE_VW - 2]) and (v[1], ..., v[2 TILE_VW - 1],
 * last), for tile pairs: one lane in at either end. */
#if TILE_VW == 1
#define PAIR_SHIFT_IN_FIRST(first, v) ((tile_pair)((first), (v).s0))
#define PAIR_SHIFT_IN_LAST(v, last) ((tile_pair)((v).s1, (last)))
#elif defined(HAS_SHUFFLEVECTOR)
#if TILE_VW == 2
#define PAIR_SHIFT_IN_FIRST(first, v) __builtin_shufflevector((tile_pair)(first), v, 0, 4, 5, 6)
#define PAIR_SHIFT_IN_LAST(v, last) __builtin_shufflevector(v, (tile_pair)(last), 1, 2, 3, 4)
#elif TILE_VW == 4
#define PAIR_SHIFT_IN_FIRST(first, v)                                                              \
    __builtin_shufflevector((tile_pair)(first), v, 0, 8, 9, 10, 11, 12, 13, 14)
#define PAIR_SHIFT_IN_LAST(v, last)                                                                \
    __builtin_shufflevector(v, (tile_pair)(last), 1, 2, 3, 4, 5, 6, 7, 8)
#else
#define PAIR_SHIFT_IN_FIRST(first, v)                                                              \
    __builtin_shufflevector((tile_pair)(first), v, 0, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,  \
                            27, 28, 29, 30)
#define PAIR_SHIFT_IN_LAST(v, last)                                                                \
    __builtin_shufflevector(v, (tile_pair)(last), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,  \
                            15, 16)
#endif
#elif TILE_VW == 2
#define PAIR_SHIFT_IN_FIRST(first, v) ((tile_pair)((first), (v).s012))
#define PAIR_SHIFT_IN_LAST(v, last) ((tile_pair)((v).s123, (last)))
#elif TILE_VW == 4
#define PAIR_SHIFT_IN_FIRST(first, v) ((tile_pair)((first), (v).s0123, (v).s456))
#define PAIR_SHIFT_IN_LAST(v, last) ((tile_pair)((v).s123, (v).s4567, (last)))
#else
#define PAIR_SHIFT_IN_FIRST(first, v)                                                              \
    ((tile_pair)((first), (v).s0123, (v).s4567, (v).s89ab, (v).scde))
#define PAIR_SHIFT_IN_LAST(v, last)                                                                \
    ((tile_pair)((v).s123, (v).s4567, (v).s89ab, (v).scdef, (last)))
#endif

/* Row `at` of one segment's windows: columns x .. x + 2 TILE_VW - 1 (a),
 * x + 2 .. x + 2 TILE_VW + 1 (b) and x + 1 .. x + 2 TILE_VW (c), zero
 * outside the row, as load_window_row reads them (-DPADDED_COPY says
 * from where). */
static void load_pair_row(const __global float *row, const int x, const int width,
                          tile_pair *a, tile_pair *b, tile_pair *c) {
#if PADDED_COPY
    *c = VLOAD(TILE_PAIR_WIDTH)(0, row + x + 1);
    *a = VLOAD(TILE_PAIR_WIDTH)(0, row + x);
    *b = VLOAD(TILE_PAIR_WIDTH)(0, row + x + 2);
#else
    *c = load_middle(row, x, width);
    const int end = x + TILE_PAIR_WIDTH + 1;
    const float first = select(0.0f, row[max(x, 0)], x >= 0);
    const float last = select(0.0f, row[min(end, width - 1)], end < width);
    *a = PAIR_SHIFT_IN_FIRST(first, *c);
    *b = PAIR_SHIFT_IN_LAST(*c, last);
#endif
}
#endif

/* A work-item's tile rows: the batch's tile rows one after the other,
 * image by image, so that a block's rows run on into the next image rather
 * than past the end of a small one; rows past the batch's last repeat the
 * block's first and are not stored (live 0). Row ty[r][s] of its image,
 * its windows' first input row y[r][s] in the image's first plane at
 * image[r][s], its outputs' first in the first output channel's plane at
 * out_first[r][s]; the chunk's windows' first column x, and whether all
 * of its outputs lie inside (full). */
typedef struct fused_rows {
    int ty[FUSED_R][FUSED_S], live[FUSED_R][FUSED_S], y[FUSED_R][FUSED_S];
    const __global float *image[FUSED_R][FUSED_S];
    __global float *out_first[FUSED_R][FUSED_S];
    int x, full;
    int from; /* the floats of a row that the chunk before stores (store_tile_row) */
} fused_rows;

static void fused_rows_for(fused_rows *f, const int item, const int chunks, const int tiles_h,
                           const int tiles_w, const int batch, const int pad_top,
                           const int pad_left, const __global float *input,
                           __global float *output, const int channels, const size_t plane,
                           const int out_channels, const int out_height, const int out_width) {
    const int block_rows = FUSED_R * FUSED_S;
    const int chunk = item % chunks, block = item / chunks;
    const int tx = chunk_start(chunk * TILE_VW, tiles_w);
    f->from = 2 * (chunk * TILE_VW - tx);
    f->x = 2 * tx - pad_left;
    const int x0 = tx * 2;
    f->full = x0 + TILE_PAIR_WIDTH <= out_width;
    const size_t out_plane = (size_t)out_height * out_width;
#pragma unroll
    for (int r = 0; r < FUSED_R; r++)
#pragma unroll
        for (int s = 0; s < FUSED_S; s++) {
            const int row = block * block_rows + r * FUSED_S + s;
            f->live[r][s] = row < batch * tiles_h;
            const int kept = f->live[r][s] ? row : block * block_rows;
            const int n = kept / tiles_h;
            f->ty[r][s] = kept - n * tiles_h;
            f->y[r][s] = 2 * f->ty[r][s] - pad_top;
            f->image[r][s] = input + (size_t)n * channels * plane;
            f->out_first[r][s] = output + (size_t)n * out_channels * out_plane +
                                 2 * f->ty[r][s] * out_width + x0;
        }
}

/* Only in a program built for it alone (runtime_get_kernel_alone), which
 * is how the host runs it: the family's other programs, built for each
 * configuration and shape, would compile it too. */
#if defined(ONLY_winograd_fused) || defined(ONLY_winograd_fused_pairs)
#if PAIRS
__kernel void winograd_fused_pairs(
#else
__kernel void winograd_fused(
#endif
    const __global float *restrict input, const __global float *restrict u,
    const __global float *restrict bias, __global float *restrict output, const int channels,
    const int height, const int width, const int pad_top, const int pad_left,
    const int out_channels, const int out_height, const int out_width, const int tiles_h,
    const int tiles_w, const int chunks, const int u_stride, const int epilogue, const int items,
    const int batch) {
    const int item = get_global_id(0); /* block * chunks + chunk */
    if (item >= items)
        return;
    const size_t plane = (size_t)height * width;
    const size_t out_plane = (size_t)out_height * out_width;
    fused_rows f;
    fused_rows_for(&f, item, chunks, tiles_h, tiles_w, batch, pad_top, pad_left, input, output,
                   channels, plane, out_channels, out_height, out_width);
    const int x = f.x, full = f.full;
    /* V: its vectors of every channel's tiles, part by part (with PAIRS
     * pair 2i holds the window's parts (i, 0) and (i, 3), pair 2i + 1
     * parts (i, 1) and (i, 2)). */
    fusedv v[FUSED_PARTS][FUSED_C][FUSED_R];
#if PAIRS
    for (int c = 0; c < channels; c++) {
#pragma unroll
        for (int r = 0; r < FUSED_R; r++) {
            /* Window row i's columns transformed: (0 | 3) and (1 | 2). */
            fusedv outer[4], inner[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                tile_pair a[FUSED_S], b[FUSED_S], m[FUSED_S];
#pragma unroll
                for (int s = 0; s < FUSED_S; s++) {
                    const int at = f.y[r][s] + i;
                    if (ROW_INSIDE(at, height)) {
                        load_pair_row(f.image[r][s] + c * plane + at * width, x, width, &a[s],
                                      &b[s], &m[s]);
                    } else {
                        a[s] = 0.0f;
                        b[s] = 0.0f;
                        m[s] = 0.0f;
                    }
                }
                const fusedv middle = JOIN(m);
                outer[i] = JOIN(a) - JOIN(b);
                inner[i] = fma(SIGNS, SWAP_PAIRS(middle), middle);
            }
            /* The rows' transform: 0 - 2, 1 + 2, 2 - 1, 1 - 3. */
            v[0][c][r] = outer[0] - outer[2];
            v[1][c][r] = inner[0] - inner[2];
            v[2][c][r] = outer[1] + outer[2];
            v[3][c][r] = inner[1] + inner[2];
            v[4][c][r] = outer[2] - outer[1];
            v[5][c][r] = inner[2] - inner[1];
            v[6][c][r] = outer[1] - outer[3];
            v[7][c][r] = inner[1] - inner[3];
        }
    }
#else
    for (int c = 0; c < channels; c++) {
#pragma unroll
        for (int r = 0; r < FUSED_R; r++) {
            fusedv d[4][4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                /* Window row i of each segment's tiles, its four columns. */
                tilev columns[4][FUSED_S];
#pragma unroll
                for (int s = 0; s < FUSED_S; s++) {
                    const int at = f.y[r][s] + i;
                    tilev row[4];
                    if (ROW_INSIDE(at, height)) {
                        load_window_row(f.image[r][s] + c * plane + at * width, x, width, row);
                    } else {
#pragma unroll
                        for (int j = 0; j < 4; j++)
                            row[j] = 0.0f;
                    }
#pragma unroll
                    for (int j = 0; j < 4; j++)
                        columns[j][s] = row[j];
                }
#pragma unroll
                for (int j = 0; j < 4; j++)
                    d[i][j] = JOIN(columns[j]);
            }
            fusedv transformed[16];
            TRANSFORM_WINDOW(fusedv, d, transformed);
#pragma unroll
            for (int xi = 0; xi < 16; xi++)
                v[xi][c][r] = transformed[xi];
        }
    }
#endif
    for (int k0 = 0; k0 < out_channels; k0 += FUSED_K) {
        fusedv m[FUSED_PARTS][FUSED_R][FUSED_K];
        for (int part = 0; part < FUSED_PARTS; part++) {
            fusedv acc[FUSED_R][FUSED_K];
#pragma unroll
            for (int r = 0; r < FUSED_R; r++)
#pragma unroll
                for (int j = 0; j < FUSED_K; j++)
                    acc[r][j] = 0.0f;
            const __global float *uu = u + (size_t)part * U_FLOATS * u_stride +
                                       (size_t)k0 * channels * U_FLOATS;
            for (int c = 0; c < channels; c++) {
                fusedv tiles[FUSED_R];
#pragma unroll
                for (int r = 0; r < FUSED_R; r++)
                    tiles[r] = v[part][c][r];
#pragma unroll
                for (int j = 0; j < FUSED_K; j++) {
                    const fusedv w = U_VALUE(uu + (c * FUSED_K + j) * U_FLOATS);
#pragma unroll
                    for (int r = 0; r < FUSED_R; r++)
                        acc[r][j] = fma(w, tiles[r], acc[r][j]);
                }
            }
#pragma unroll
            for (int r = 0; r < FUSED_R; r++)
#pragma unroll
                for (int j = 0; j < FUSED_K; j++)
                    m[part][r][j] = acc[r][j];
        }
        for (int j = 0; j < FUSED_K && k0 + j < out_channels; j++) {
            const int k = k0 + j;
#if PAIRS
            const fusedv b = (epilogue & EPILOGUE_BIAS) ? bias[k] : 0.0f;
#pragma unroll
            for (int r = 0; r < FUSED_R; r++) {
                /* A^T M: rows 0 + 1 + 2 and 1 - 2 - 3, of columns (0 | 3)
                 * and (1 | 2); then the columns' p0 + p1 + p2 in the even
                 * lanes, p1 - p2 - p3 in the odd ones: with q = (p1 | p2)
                 * and t = q + SIGNS * swapped q = (p1 + p2 | p2 - p1), the
                 * outputs are SIGNS * ((p0 | p3) + t). */
                fusedv outer[2], inner[2];
                outer[0] = m[0][r][j] + m[2][r][j] + m[4][r][j];
                inner[0] = m[1][r][j] + m[3][r][j] + m[5][r][j];
                outer[1] = m[2][r][j] - m[4][r][j] - m[6][r][j];
                inner[1] = m[3][r][j] - m[5][r][j] - m[7][r][j];
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    const fusedv t = fma(SIGNS, SWAP_PAIRS(inner[i]), inner[i]);
                    const fusedv out = fma(outer[i] + t, SIGNS, b);
                    const fusedv finished = FINISH_OUTPUT(fusedv, out, epilogue);
#pragma unroll
                    for (int s = 0; s < FUSED_S; s++) {
                        if (f.live[r][s] && f.ty[r][s] * 2 + i < out_height)
                            store_tile_row(SEGMENT(finished, s),
                                           f.out_first[r][s] + k * out_plane + i * out_width, full,
                                           epilogue, f.from);
                    }
                }
            }
        
#else
            const float b = (epilogue & EPILOGUE_BIAS) ? bias[k] : 0.0f;
#pragma unroll
            for (int r = 0; r < FUSED_R; r++) {
                fusedv p[16], even[2], odd[2];
#pragma unroll
                for (int xi = 0; xi < 16; xi++)
                    p[xi] = m[xi][r][j];
                TRANSFORM_PRODUCTS(fusedv, p, b, even, odd);
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    even[i] = FINISH_OUTPUT(fusedv, even[i], epilogue);
                    odd[i] = FINISH_OUTPUT(fusedv, odd[i], epilogue);
                }
#pragma unroll
                for (int i = 0; i < 2; i++)
#pragma unroll
                    for (int s = 0; s < FUSED_S; s++) {
                        if (f.live[r][s] && f.ty[r][s] * 2 + i < out_height)
                            store_tile_row(INTERLEAVE(SEGMENT(even[i], s), SEGMENT(odd[i], s)),
                                           f.out_first[r][s] + k * out_plane + i * out_width,
                                           full, epilogue, f.from);
                    }
            }
        
#endif
        }
    }
}
#endif

/* ---- backward-weights ----------------------------------------------------
 * dg = G^T [ sum over tiles (B^T d B) .* (A dy A^T) ] G: the tiles' transform
 * above gives V (16, C, pitch) from the input; winograd_gradient_tiles gives
 * W (16, columns, K_padded) from the output gradient's 2x2 tiles; the 16
 * sums dU[xi] (C, K) over the columns are the backward-weights of a 1x1
 * convolution over 16 images of one row of columns each, image xi reading
 * part xi of V and of W (host/ops/conv2d_winograd.c runs
 * kernels/conv2d_direct.cl's conv2d_backward_weights_direct so); and
 * winograd_gradient_filters makes dg (K, C, 3, 3) of them. */

/* W from the output gradient as the layer has it, (N, K, OH, OW): A g A^T
 * of every 2x2 tile, zeros past the gradient's edges. Column n * TH * TW +
 * ty * TW + tx of part xi holds tile (ty, tx) of image n, its K_padded
 * channels at w + xi * part_floats + column * K_padded. One work-item per
 * tile, which walks its channels VW at a time, each lane's four floats
 * read from its channel's plane. It had read a channels-last copy: the
 * gathers cost less than the copy (32 channels at 14x14, batch 64: 0.73 ms
 * against 0.65 for the kernel on the copy and 0.44 for the copy). */
#if VW == 1
#define GATHER(p, s) ((p)[0])
#elif VW == 2
#define GATHER(p, s) ((floatv)((p)[0], (p)[s]))
#elif VW == 4
#define GATHER(p, s) ((floatv)((p)[0], (p)[s], (p)[2 * (s)], (p)[3 * (s)]))
#elif VW == 8
#define GATHER(p, s)                                                                               \
    ((floatv)((p)[0], (p)[s], (p)[2 * (s)], (p)[3 * (s)], (p)[4 * (s)], (p)[5 * (s)],              \
              (p)[6 * (s)], (p)[7 * (s)]))
#else
#define GATHER(p, s)                                                                               \
    ((floatv)((p)[0], (p)[s], (p)[2 * (s)], (p)[3 * (s)], (p)[4 * (s)], (p)[5 * (s)],              \
              (p)[6 * (s)], (p)[7 * (s)], (p)[8 * (s)], (p)[9 * (s)], (p)[10 * (s)],               \
              (p)[11 * (s)], (p)[12 * (s)], (p)[13 * (s)], (p)[14 * (s)], (p)[15 * (s)]))
#endif

/* The floats at `at` of VW planes `plane` apart, from the first of
 * `lanes` channels (zeros in the lanes past them). */
static floatv gather_channels(const __global float *at, const int plane, const int lanes) {
    if (lanes >= VW)
        return GATHER(at, plane);
    float part[VW];
    for (int l = 0; l < VW; l++)
        part[l] = l < lanes ? at[l * plane] : 0.0f;
    return VLOAD(VW)(0, part);
}

/* Where a 2x2 tile of the output gradient, its first pixel at (y, x) of a
 * plane of out_h x out_w, reads its four pixels, and 1 or 0 for each: a
 * pixel past the edges reads the tile's first, scaled by 0. */
typedef struct gradient_tile {
    int offset[2][2];
    float inside[2][2];
} gradient_tile;

static gradient_tile gradient_tile_at(const int y, const int x, const int out_h,
                                      const int out_w) {
    gradient_tile tile;
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const int in = y + i < out_h && x + j < out_w;
            tile.offset[i][j] = in ? (y + i) * out_w + x + j : y * out_w + x;
            tile.inside[i][j] = in ? 1.0f : 0.0f;
        }
    return tile;
}

/* out[i * 4 + j] = (A g A^T)[i][j] of a 2x2 tile g of vectors:
 * A g has rows 0, 0+1, 0-1, -1; then (A g) A^T, the same on the columns. */
#define EXPAND_GRADIENT_TILE(g, out)                                                               \
    do {                                                                                           \
        floatv t_[4][2];                                                                           \
        _Pragma("unroll") for (int j_ = 0; j_ < 2; j_++) {                                         \
            t_[0][j_] = g[0][j_];                                                                  \
            t_[1][j_] = g[0][j_] + g[1][j_];                                                       \
            t_[2][j_] = g[0][j_] - g[1][j_];                                                       \
            t_[3][j_] = -g[1][j_];                                                                 \
        }                                                                                          \
        _Pragma("unroll") for (int i_ = 0; i_ < 4; i_++) {                                         \
            out[i_ * 4 + 0] = t_[i_][0];                                                           \
            out[i_ * 4 + 1] = t_[i_][0] + t_[i_][1];                                               \
            out[i_ * 4 + 2] = t_[i_][0] - t_[i_][1];                                               \
            out[i_ * 4 + 3] = -t_[i_][1];                                                          \
        }                                                                                          \
    } while (0)

/* out[i * 4 + j] = (A g A^T)[i][j] of the tile g of VW channels from the
 * plane at `channels` (planes `plane` floats apart; zeros in the lanes
 * from `lanes`). */
static void transform_gradient_tile(const __global float *channels, const gradient_tile *tile,
                                    const int plane, const int lanes, floatv *out) {
    floatv g[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            g[i][j] = gather_channels(channels + tile->offset[i][j], plane, lanes) *
                      tile->inside[i][j];
    EXPAND_GRADIENT_TILE(g, out);
}

__kernel void winograd_gradient_tiles(const __global float *restrict grad,
                                      __global float *restrict w, const int K, const int K_padded,
                                      const int out_h, const int out_w, const int tiles_h,
                                      const int tiles_w, const int columns, const int part_floats) {
    const int column = get_global_id(0);
    if (column >= columns)
        return;
    const int tx = column % tiles_w, image_row = column / tiles_w;
    const int ty = image_row % tiles_h, n = image_row / tiles_h;
    const int plane = out_h * out_w;
    const __global float *image = grad + (size_t)n * K * plane;
    const gradient_tile tile = gradient_tile_at(2 * ty, 2 * tx, out_h, out_w);
    __global float *out = w + (size_t)column * K_padded;
    for (int k = 0; k < K_padded; k += VW) {
        floatv transformed[16];
        transform_gradient_tile(image + (size_t)k * plane, &tile, plane, K - k, transformed);
#pragma unroll
        for (int xi = 0; xi < 16; xi++)
            VSTORE(VW)(transformed[xi], 0, out + (size_t)xi * part_floats + k);
    }
}

/* ---- backward-weights in one kernel ---------------------------------------
 * winograd_gradient_fused does what winograd_transform_tiles,
 * winograd_gradient_tiles and the products do, without their V and W in
 * global memory: four times the input and the output gradient, written
 * once and read back, which made those two transforms memory-bound and
 * as slow as the products (16 channels at 28x28, batch 64: 1.6 and 1.8 ms
 * against 2.4). Work-group g takes the batch's tile rows (image by image,
 * N * TH in all) g * group_rows .. + group_rows - 1, chunk_rows at a time:
 * its work-items transform the chunk's T = chunk_rows * TW tiles into v
 * (16, C, T) and w (16, T, K_padded) in local memory, then add the chunk's
 * products V[xi] W[xi] to the group's sums, slice g of the ones
 * winograd_gradient_filters adds up: (C, K) at du + (xi * groups + g) *
 * du_stride (add_chunk_products); a work-group of any size. A work-item
 * transforms 4 of the gradient's tiles side by side: with 8-float vectors
 * (HAS_TRANSPOSE8) each of 8 channels' two rows of them is loaded at once
 * and the 8 x 8 block transposed, where gathering 8 channels a pixel had
 * taken 3 % longer a call (32 channels at 14x14, batch 128). */
#ifndef GRADIENT_WPT_C
#define GRADIENT_WPT_C 4
#endif

/* sums at `at` (lanes < VW: only those) = sum, or += sum unless first. */
static void add_sums(__global float *at, const floatv sum, const int lanes, const int first) {
    if (lanes >= VW) {
        VSTORE(VW)(first ? sum : sum + VLOAD(VW)(0, at), 0, at);
        return;
    }
    float part[VW];
    VSTORE(VW)(sum, 0, part);
    for (int l = 0; l < lanes; l++)
        at[l] = first ? part[l] : at[l] + part[l];
}

/* V's channels in the tile-major layout: whole vectors, and whole blocks
 * of a products work-item's GRADIENT_WPT_C (the host's plan takes the
 * same). */
#define V_BLOCK (VW > GRADIENT_WPT_C ? VW : GRADIENT_WPT_C)
#define V_PADDED(channels) (((channels) + V_BLOCK - 1) / V_BLOCK * V_BLOCK)

/* A chunk's products V[xi] W[xi] over its `tiles` tiles, added to
 * work-group group's sums, or stored into them for the group's first
 * chunk: (C, K) at du + (xi * groups + group) * du_stride. v (parts, C, T)
 * in local memory, or (parts, T, V_PADDED(C)) with tile_major (a
 * constant at each call, so that each kernel keeps only its own loop); w
 * (parts, T, K_padded). A work-item takes GRADIENT_WPT_C input channels of
 * one part and VW * NV output channels, its blocks in turn. */
static void add_chunk_products(const __local float *v, const __local float *w,
                               __global float *du, const int tile_major, const int parts,
                               const int channels, const int K, const int K_padded, const int T,
                               const int tiles, const int du_stride, const int first_chunk) {
    const int lid = get_local_id(0), local_size = get_local_size(0);
    const int group = get_group_id(0), groups = get_num_groups(0);
    const int c_blocks = (channels + GRADIENT_WPT_C - 1) / GRADIENT_WPT_C;
    const int k_blocks = K_padded / (VW * NV), blocks = parts * c_blocks * k_blocks;
    /* Where V's value (xi, c, t) lies: at c * c_step + t * t_step from part xi's. */
    const int c_step = tile_major ? 1 : T, t_step = tile_major ? V_PADDED(channels) : 1;
    const int part_floats = tile_major ? T * V_PADDED(channels) : channels * T;
    for (int block = lid; block < blocks; block += local_size) {
        const int kb = block % k_blocks, rest = block / k_blocks;
        const int c0 = rest % c_blocks * GRADIENT_WPT_C, xi = rest / c_blocks;
        const int k0 = kb * VW * NV;
        /* Past the channels: the last one's values (2x2), or the padding's
         * (4x4); their sums are not stored. */
        const __local float *vv[GRADIENT_WPT_C];
#pragma unroll
        for (int i = 0; i < GRADIENT_WPT_C; i++)
            vv[i] = v + xi * part_floats +
                    (tile_major ? c0 + i : min(c0 + i, channels - 1)) * c_step;
        const __local float *ww = w + xi * T * K_padded + k0;
        floatv acc[GRADIENT_WPT_C][NV];
#pragma unroll
        for (int i = 0; i < GRADIENT_WPT_C; i++)
#pragma unroll
            for (int m = 0; m < NV; m++)
                acc[i][m] = 0.0f;
        for (int t = 0; t < tiles; t++) {
            floatv g[NV];
#pragma unroll
            for (int m = 0; m < NV; m++)
                g[m] = VLOAD(VW)(0, ww + t * K_padded + m * VW);
#pragma unroll
            for (int i = 0; i < GRADIENT_WPT_C; i++) {
                const float x = vv[i][t * t_step];
#pragma unroll
                for (int m = 0; m < NV; m++)
                    acc[i][m] = fma((floatv)x, g[m], acc[i][m]);
            }
        }
        __global float *sums = du + ((size_t)xi * groups + group) * du_stride;
#pragma unroll
        for (int i = 0; i < GRADIENT_WPT_C; i++)
            if (c0 + i < channels)
#pragma unroll
                for (int m = 0; m < NV; m++)
                    add_sums(sums + (c0 + i) * K + k0 + m * VW, acc[i][m], K - (k0 + m * VW),
                             first_chunk);
    }
}

__kernel void winograd_gradient_fused(
    const __global float *restrict input, const __global float *restrict grad,
    __global float *restrict du, __local float *restrict v, __local float *restrict w,
    const int channels, const int height, const int width, const int pad_top, const int pad_left,
    const int K, const int K_padded, const int out_h, const int out_w, const int tiles_h,
    const int tiles_w, const int rows, const int group_rows, const int chunk_rows,
    const int du_stride) {
    const int lid = get_local_id(0), local_size = get_local_size(0), group = get_group_id(0);
    const int T = chunk_rows * tiles_w;
    const int in_plane = height * width, out_plane = out_h * out_w;
    const int group_first = group * group_rows, group_end = min(group_first + group_rows, rows);
    for (int first = group_first; first < group_end; first += chunk_rows) {
        const int chunk_rows_here = min(chunk_rows, group_end - first);
        const int tiles = chunk_rows_here * tiles_w;
        for (int unit = lid; unit < channels * chunk_rows_here; unit += local_size) {
            const int c = unit / chunk_rows_here, r = unit - c * chunk_rows_here;
            const int n = (first + r) / tiles_h, ty = first + r - n * tiles_h;
            const __global float *in = input + ((size_t)n * channels + c) * in_plane;
            __local float *out = v + c * T + r * tiles_w;
            for (int next = 0; next < tiles_w; next += TILE_VW) {
                const int tx = chunk_start(next, tiles_w);
                tilev transformed[16];
                transform_windows(in, 2 * ty - pad_top, 2 * tx - pad_left, height, width,
                                  transformed);
#pragma unroll
                for (int xi = 0; xi < 16; xi++)
                    store_tiles(transformed[xi], out + tx + xi * channels * T);
            }
        }
        /* A work-item takes 4 tiles side by side (fewer at a row's end). */
        const int quads = (tiles_w + 3) / 4;
        for (int unit = lid; unit < chunk_rows_here * quads; unit += local_size) {
            const int r = unit / quads, tx0 = unit % quads * 4, count = min(4, tiles_w - tx0);
            const int n = (first + r) / tiles_h, ty = first + r - n * tiles_h;
            const __global float *image = grad + (size_t)n * K * out_plane;
            const int t0 = r * tiles_w + tx0;
            gradient_tile tile[4];
            for (int q = 0; q < count; q++)
                tile[q] = gradient_tile_at(2 * ty, 2 * (tx0 + q), out_h, out_w);
            for (int k = 0; k < K_padded; k += VW) {
#ifdef HAS_TRANSPOSE8
                if (count == 4 && K - k >= VW && 2 * ty + 2 <= out_h && 2 * tx0 + 8 <= out_w) {
                    /* Each channel's two rows of the four tiles loaded at
                     * once, then transposed: columns[i][x] is row i,
                     * column 2 tx0 + x of the 8 channels. */
                    const __global float *at =
                        image + (size_t)k * out_plane + 2 * ty * out_w + 2 * tx0;
                    floatv columns[2][8];
#pragma unroll
                    for (int i = 0; i < 2; i++) {
                        floatv rows[8];
#pragma unroll
                        for (int l = 0; l < 8; l++)
                            rows[l] = vload8(0, at + l * out_plane + i * out_w);
                        TRANSPOSE8(rows, columns[i]);
                    }
#pragma unroll
                    for (int q = 0; q < 4; q++) {
                        floatv g[2][2], transformed[16];
#pragma unroll
                        for (int i = 0; i < 2; i++) {
                            g[i][0] = columns[i][2 * q];
                            g[i][1] = columns[i][2 * q + 1];
                        }
                        EXPAND_GRADIENT_TILE(g, transformed);
#pragma unroll
                        for (int xi = 0; xi < 16; xi++)
                            VSTORE(VW)(transformed[xi], 0, w + (xi * T + t0 + q) * K_padded + k);
                    }
                    continue;
                }
#endif
                for (int q = 0; q < count; q++) {
                    floatv transformed[16];
                    transform_gradient_tile(image + (size_t)k * out_plane, &tile[q], out_plane,
                                            K - k, transformed);
#pragma unroll
                    for (int xi = 0; xi < 16; xi++)
                        VSTORE(VW)(transformed[xi], 0, w + (xi * T + t0 + q) * K_padded + k);
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        add_chunk_products(v, w, du, 0, 16, channels, K, K_padded, T, tiles, du_stride,
                           first == group_first);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* The sum of `count` slices' sums (stride floats apart, added in order) of
 * VW output channels, or of the `lanes` < VW left at the end (zeros past). */
static floatv slices_sum(const __global float *sums, const int stride, const int count,
                         const int lanes) {
    floatv total = 0.0f;
    for (int s = 0; s < count; s++) {
        const __global float *at = sums + (size_t)s * stride;
        if (lanes == VW) {
            total += VLOAD(VW)(0, at);
        } else {
            float part[VW];
            for (int l = 0; l < VW; l++)
                part[l] = l < lanes ? at[l] : 0.0f;
            total += VLOAD(VW)(0, part);
        }
    }
    return total;
}

/* ---- backward-weights with 4x4 tiles ---------------------------------------
 * F(4x4, 3x3): each 4x4 block of outputs comes from the 6x6 window around
 * it, and the sums run over 36 parts, with the points 0, +-1, 1/2 and -2
 * (Lavin and Gray's construction; the matrices below, exact in binary but
 * for G's thirds and fifteenths). Per tile the products are 36 against the
 * 64 of four 2x2 tiles, and a plane of 7x7 takes 4 tiles of 4x4 where it
 * takes 16 of 2x2: at 64 channels, 7x7, the products are 0.56 of F(2x2)'s,
 * and V and W 0.56 of their floats. Only backward-weights uses them: its
 * sums run over every tile, where the forward's outputs would carry the
 * larger tiles' rounding (bench/RESULTS.md, stop 65) one by one.
 *
 *   dg = G^T [ sum over tiles (B^T d B) .* (A^T g A) ] G
 *
 * with the 6x6 window d, the 4x4 output gradient g (zeros past its edges),
 * B^T (6x6), A^T (4x6) and G (6x3) those of F(4, 3) along each axis:
 * winograd4_gradient_input gives V (36, C, pitch), winograd4_gradient_tiles
 * W (36, columns, K_padded), the products are the same 1x1 backward-weights
 * as F(2x2)'s over 36 parts, and winograd_gradient_filters (below, tile 4)
 * makes dg of their sums. Column (ty * TW + tx) * N + n is tile (ty, tx) of image n
 * (TH = ceil(OH / 4), TW = ceil(OW / 4)): the images of a tile side by side,
 * whose windows lie at the same place of their planes. */

/* out[i] = (B^T d)[i] of the six values d[0..5] (vectors), through the
 * differences a = d4 - d2 and e = d3 - d1 that four rows share: 14
 * operations instead of 22 (winograd4_gradient_fused took 4 % less time
 * at 16 channels of 28x28, batch 128). */
#define WINOGRAD4_BT(d, out)                                                                       \
    do {                                                                                           \
        const floatv a_ = d[4] - d[2], e_ = d[3] - d[1];                                           \
        const floatv m_ = a_ + 1.5f * d[3], n_ = e_ + 1.5f * d[2];                                 \
        out[0] = ((d[0] - d[2]) + a_) + 1.5f * e_;                                                 \
        out[1] = m_ + n_;                                                                          \
        out[2] = m_ - n_;                                                                          \
        out[3] = a_ + 2.0f * e_;                                                                   \
        out[4] = a_ - 0.5f * e_;                                                                   \
        out[5] = ((d[5] - d[3]) - e_) + 1.5f * a_;                                                 \
    } while (0)

/* out[p] = (A g)[p] = sum_i A^T[i][p] g[i] of four values g[0..3]. */
#define WINOGRAD4_A(g, out)                                                                        \
    do {                                                                                           \
        const floatv even_ = g[0] + g[2], odd_ = g[1] + g[3];                                      \
        out[0] = g[0];                                                                             \
        out[1] = even_ + odd_;                                                                     \
        out[2] = even_ - odd_;                                                                     \
        out[3] = ((g[0] + 0.5f * g[1]) + 0.25f * g[2]) + 0.125f * g[3];                            \
        out[4] = ((g[0] - 2.0f * g[1]) + 4.0f * g[2]) - 8.0f * g[3];                               \
        out[5] = g[3];                                                                             \
    } while (0)

/* out[k] = (G^T u)[k] of six values u[0..5]. */
#define WINOGRAD4_GT(u, out)                                                                       \
    do {                                                                                           \
        const floatv third_sum_ = (u[1] + u[2]) * (1.0f / 3.0f);                                   \
        const floatv third_difference_ = (u[1] - u[2]) * (1.0f / 3.0f);                            \
        out[0] = (u[0] + third_difference_) + (u[4] - 16.0f * u[3]) * (1.0f / 15.0f);              \
        out[1] = third_sum_ - (8.0f * u[3] + 2.0f * u[4]) * (1.0f / 15.0f);                        \
        out[2] = (third_difference_ + (4.0f * u[4] - 4.0f * u[3]) * (1.0f / 15.0f)) + u[5];        \
    } while (0)

/* t[i][j] = (TRANSFORM of column j of in's in_rows rows)[i], i < out_rows, for
 * each of in's `columns` columns of vectors: the first of a 2-D transform's
 * two passes. */
#define WINOGRAD4_ALONG_COLUMNS(TRANSFORM, in, in_rows, out_rows, columns, t)                       \
    do {                                                                                            \
        _Pragma("unroll") for (int j_ = 0; j_ < (columns); j_++) {                                  \
            floatv column_[6], transformed_[6];                                                     \
            _Pragma("unroll") for (int i_ = 0; i_ < (in_rows); i_++) column_[i_] = in[i_][j_];      \
            TRANSFORM(column_, transformed_);                                                       \
            _Pragma("unroll") for (int i_ = 0; i_ < (out_rows); i_++) t[i_][j_] = transformed_[i_]; \
        }                                                                                           \
    } while (0)

/* out[i * 6 + j] = (B^T d B)[i][j] of the 6x6 window d whose first float
 * is (y, x) of the plane of height x width at tensor + offset, for VW
 * planes lane_stride floats apart (zeros in the lanes from `lanes`, and
 * outside the plane); the tensor holds `floats` floats. (Keeping the two
 * columns that a tile row's neighbouring windows share, a work-item a row,
 * took 6 % longer in winograd4_gradient_fused.) */
static __attribute__((always_inline)) void
transform_window4(const __global float *tensor, const size_t offset, const size_t floats,
                  const int y, const int x, const int height, const int width,
                  const int lane_stride, const int lanes, floatv *out) {
    const __global float *plane = tensor + offset;
    floatv d[6][6];
#ifdef HAS_TRANSPOSE8
    /* Each lane's row of the window loaded as 8 floats at once, the lanes
     * then put side by side by a transposition: 0.94 of the time of
     * winograd4_gradient_fused's calls with gathers (16 channels at 28x28,
     * batch 128, alternated call by call). The 8 floats from x may run past
     * the plane's edges into the rows beside it, floats of the tensor that
     * the columns' test below zeroes; only where they would run past the
     * tensor's own ends does it gather. */
    const int top = max(y, 0), bottom = min(y + 5, height - 1);
    const long first = (long)offset + (long)top * width + x;
    const long last = (long)offset + (long)(VW - 1) * lane_stride + (long)bottom * width + x + 8;
    if (lanes >= VW && first >= 0 && last <= (long)floats) {
#pragma unroll
        for (int i = 0; i < 6; i++) {
            floatv rows[8], columns[8];
            const int inside = y + i >= 0 && y + i < height;
#pragma unroll
            for (int l = 0; l < 8; l++)
                rows[l] = inside ? vload8(0, plane + l * lane_stride + (y + i) * width + x)
                                 : (floatv)(0.0f);
            TRANSPOSE8(rows, columns);
#pragma unroll
            for (int j = 0; j < 6; j++)
                d[i][j] = x + j >= 0 && x + j < width ? columns[j] : (floatv)(0.0f);
        }
    } else
#endif
    {
#pragma unroll
        for (int i = 0; i < 6; i++)
#pragma unroll
            for (int j = 0; j < 6; j++) {
                d[i][j] = 0.0f;
                if (y + i >= 0 && y + i < height && x + j >= 0 && x + j < width)
                    d[i][j] = gather_channels(plane + (y + i) * width + x + j, lane_stride, lanes);
            }
    }
    /* B^T d along the columns, then (B^T d) B along the rows. */
    floatv t[6][6];
    WINOGRAD4_ALONG_COLUMNS(WINOGRAD4_BT, d, 6, 6, 6, t);
#pragma unroll
    for (int i = 0; i < 6; i++) {
        floatv transformed[6];
        WINOGRAD4_BT(t[i], transformed);
#pragma unroll
        for (int j = 0; j < 6; j++)
            out[i * 6 + j] = transformed[j];
    }
}

/* One work-item per input channel c, tile position (ty, tx) and VW images
 * from n0 (lanes), c-major, so that neighbours write neighbouring columns:
 * the lanes' windows lie at the same place of planes channels * height *
 * width floats apart, so one test of the padding serves them all, and their
 * columns are side by side. Zeros in the padding and in the lanes past the
 * batch, which are not stored. */
__kernel void winograd4_gradient_input(const __global float *restrict input,
                                       __global float *restrict v, const int channels,
                                       const int height, const int width, const int pad_top,
                                       const int pad_left, const int tiles_h, const int tiles_w,
                                       const int batch, const int pitch, const int stride) {
    const int chunks = (batch + VW - 1) / VW, tiles = tiles_h * tiles_w;
    const int item = get_global_id(0);
    if (item >= channels * tiles * chunks)
        return;
    const int c = item / (tiles * chunks), rest = item % (tiles * chunks);
    const int tile = rest / chunks, n0 = rest % chunks * VW, lanes = min(VW, batch - n0);
    const int y = 4 * (tile / tiles_w) - pad_top, x = 4 * (tile % tiles_w) - pad_left;
    const int image = channels * height * width;
    floatv transformed[36];
    transform_window4(input, ((size_t)n0 * channels + c) * height * width,
                      (size_t)batch * image, y, x, height, width, image, lanes, transformed);
    __global float *at = v + (size_t)c * pitch + tile * batch + n0;
#pragma unroll
    for (int i = 0; i < 6; i++) {
#pragma unroll
        for (int j = 0; j < 6; j++) {
            __global float *part = at + (size_t)(i * 6 + j) * stride;
            if (lanes == VW) {
                VSTORE(VW)(transformed[i * 6 + j], 0, part);
            } else {
                float values[VW];
                VSTORE(VW)(transformed[i * 6 + j], 0, values);
                for (int l = 0; l < lanes; l++)
                    part[l] = values[l];
            }
        }
    }
}

/* out[i * 6 + j] = (A^T g A)[i][j] of the 4x4 tile g whose first float is
 * (y, x) of the plane of height x width at tensor + offset, for VW planes
 * lane_stride floats apart (zeros in the lanes from `lanes`, and outside
 * the plane); the tensor holds `floats` floats. As transform_window4, each
 * lane's rows load as 8 floats at once, also past the plane's right edge
 * into the rows beside it (zeroed by the columns' test), wherever they stay
 * inside the tensor: only the tiles whose 8 floats a row left room in
 * their row had, 6 of 7 tile columns at 28x28 and 6 of 16 tiles at 14x14.
 * No faster for it (0.96-1.03 of the calls' time, AMD EPYC Zen 4, noisy),
 * but the gradient's tiles and the input's windows now load one way. */
static __attribute__((always_inline)) void
transform_gradient_tile4(const __global float *tensor, const size_t offset, const size_t floats,
                         const int y, const int x, const int height, const int width,
                         const int lane_stride, const int lanes, floatv *out) {
    const __global float *plane = tensor + offset;
    floatv g[4][4];
#ifdef HAS_TRANSPOSE8
    const int bottom = min(y + 3, height - 1);
    const long last = (long)offset + (long)(VW - 1) * lane_stride + (long)bottom * width + x + 8;
    if (lanes >= VW && last <= (long)floats) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            floatv rows[8], columns[8];
            const int inside = y + i < height;
#pragma unroll
            for (int l = 0; l < 8; l++)
                rows[l] = inside ? vload8(0, plane + l * lane_stride + (y + i) * width + x)
                                 : (floatv)(0.0f);
            TRANSPOSE8(rows, columns);
#pragma unroll
            for (int j = 0; j < 4; j++)
                g[i][j] = x + j < width ? columns[j] : (floatv)(0.0f);
        }
    } else
#endif
    {
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                g[i][j] = 0.0f;
                if (y + i < height && x + j < width)
                    g[i][j] = gather_channels(plane + (y + i) * width + x + j, lane_stride, lanes);
            }
    }
    /* A^T g along the columns (6 x 4), then along the rows (6 x 6). */
    floatv t[6][4];
    WINOGRAD4_ALONG_COLUMNS(WINOGRAD4_A, g, 4, 6, 4, t);
#pragma unroll
    for (int i = 0; i < 6; i++) {
        floatv expanded[6];
        WINOGRAD4_A(t[i], expanded);
#pragma unroll
        for (int j = 0; j < 6; j++)
            out[i * 6 + j] = expanded[j];
    }
}

/* One work-item per column (tile), walking its K_padded channels VW at a
 * time, each lane's 16 floats read from its channel's plane; zeros past the
 * gradient's edges and past K. Part xi's channels at w + xi * part_floats +
 * column * K_padded. */
__kernel void winograd4_gradient_tiles(const __global float *restrict grad,
                                       __global float *restrict w, const int K, const int K_padded,
                                       const int out_h, const int out_w, const int tiles_h,
                                       const int tiles_w, const int columns,
                                       const int part_floats) {
    const int column = get_global_id(0);
    if (column >= columns)
        return;
    const int batch = columns / (tiles_h * tiles_w);
    const int tile = column / batch, n = column % batch;
    const int plane = out_h * out_w, ty = tile / tiles_w, tx = tile % tiles_w;
    __global float *out = w + (size_t)column * K_padded;
    for (int k = 0; k < K_padded; k += VW) {
        floatv transformed[36];
        transform_gradient_tile4(grad, ((size_t)n * K + k) * plane, (size_t)batch * K * plane,
                                 4 * ty, 4 * tx, out_h, out_w, plane, K - k, transformed);
#pragma unroll
        for (int xi = 0; xi < 36; xi++)
            VSTORE(VW)(transformed[xi], 0, out + (size_t)xi * part_floats + k);
    }
}

#if defined(ONLY_winograd4_gradient_fused)
/* ---- backward-weights with 4x4 tiles, in one kernel --------------------------
 * winograd_gradient_fused with F(4x4)'s 36 parts: work-group g takes the
 * batch's rows of 4x4 tiles (N * TH, TH = ceil(OH / 4)) g * group_rows ..
 * + group_rows - 1, chunk_rows at a time, transforms the chunk's T =
 * chunk_rows * TW tiles (TW = ceil(OW / 4)) into v (36, C, T) and w (36, T,
 * K_padded) in local memory and adds their products to the group's sums
 * (add_chunk_products), which winograd_gradient_filters (tile 4) adds up.
 * Per output pixel the parts are 2.25 floats against F(2x2)'s 4, and so
 * are the products. */

__kernel void winograd4_gradient_fused(
    const __global float *restrict input, const __global float *restrict grad,
    __global float *restrict du, __local float *restrict v, __local float *restrict w,
    const int channels, const int height, const int width, const int pad_top, const int pad_left,
    const int K, const int K_padded, const int out_h, const int out_w, const int tiles_h,
    const int tiles_w, const int rows, const int group_rows, const int chunk_rows,
    const int du_stride) {
    const int lid = get_local_id(0), local_size = get_local_size(0), group = get_group_id(0);
    const int T = chunk_rows * tiles_w;
    const int c_vectors = (channels + VW - 1) / VW, C_padded = V_PADDED(channels);
    const int in_plane = height * width, out_plane = out_h * out_w;
    const int group_first = group * group_rows, group_end = min(group_first + group_rows, rows);
    for (int first = group_first; first < group_end; first += chunk_rows) {
        const int chunk_rows_here = min(chunk_rows, group_end - first);
        const int tiles = chunk_rows_here * tiles_w;
        for (int unit = lid; unit < tiles * c_vectors; unit += local_size) {
            const int t = unit / c_vectors, c = unit % c_vectors * VW;
            const int r = t / tiles_w, tx = t - r * tiles_w;
            const int n = (first + r) / tiles_h, ty = first + r - n * tiles_h;
            floatv transformed[36];
            transform_window4(input, ((size_t)n * channels + c) * in_plane,
                              (size_t)rows / tiles_h * channels * in_plane, 4 * ty - pad_top,
                              4 * tx - pad_left, height, width, in_plane, channels - c,
                              transformed);
#pragma unroll
            for (int xi = 0; xi < 36; xi++)
                VSTORE(VW)(transformed[xi], 0, v + (xi * T + t) * C_padded + c);
        }
        for (int t = lid; t < tiles; t += local_size) {
            const int r = t / tiles_w, tx = t - r * tiles_w;
            const int n = (first + r) / tiles_h, ty = first + r - n * tiles_h;
            for (int k = 0; k < K_padded; k += VW) {
                floatv transformed[36];
                transform_gradient_tile4(grad, ((size_t)n * K + k) * out_plane,
                                         (size_t)rows / tiles_h * K * out_plane, 4 * ty, 4 * tx,
                                         out_h, out_w, out_plane, K - k, transformed);
#pragma unroll
                for (int xi = 0; xi < 36; xi++)
                    VSTORE(VW)(transformed[xi], 0, w + (xi * T + t) * K_padded + k);
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        add_chunk_products(v, w, du, 1, 36, channels, K, K_padded, T, tiles, du_stride,
                           first == group_first);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}
#endif

/* dg (K, C, 3, 3) = G^T dU G of 2x2 tiles (tile 2: 16 parts, F(2x2)'s G)
 * or of 4x4 tiles (tile 4: 36 parts, F(4x4)'s), one work-item per input
 * channel c and VW output channels from k (c fastest, so that neighbours
 * store side by side), dU[xi] the sum of part_slices slices' sums, slice s
 * at du + (xi * part_slices + s) * stride as (C, K), added in order. (A
 * work-item per filter had taken 1.2-1.5 ms at 256 channels, the
 * products' tenth.) */
__kernel void winograd_gradient_filters(const __global float *restrict du,
                                        __global float *restrict grad_weight,
                                        const int in_channels, const int out_channels,
                                        const int stride, const int part_slices, const int tile) {
    const int item = get_global_id(0); /* (k / VW) * C + c */
    if (item >= in_channels * ((out_channels + VW - 1) / VW))
        return;
    const int c = item % in_channels, k = item / in_channels * VW;
    const int lanes = min(VW, out_channels - k);
    const __global float *sums = du + c * out_channels + k;
    float taps[9][VW];
    if (tile == 2) {
        floatv u[4][4];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                u[i][j] = slices_sum(sums + (size_t)(i * 4 + j) * part_slices * stride, stride,
                                     part_slices, lanes);
        /* G^T u: rows 0 + (1 + 2) / 2, (1 - 2) / 2, (1 + 2) / 2 + 3; then the
         * same on the columns. */
        floatv t[3][4];
        for (int j = 0; j < 4; j++) {
            t[0][j] = u[0][j] + 0.5f * (u[1][j] + u[2][j]);
            t[1][j] = 0.5f * (u[1][j] - u[2][j]);
            t[2][j] = 0.5f * (u[1][j] + u[2][j]) + u[3][j];
        }
        for (int r = 0; r < 3; r++) {
            VSTORE(VW)(t[r][0] + 0.5f * (t[r][1] + t[r][2]), 0, taps[r * 3 + 0]);
            VSTORE(VW)(0.5f * (t[r][1] - t[r][2]), 0, taps[r * 3 + 1]);
            VSTORE(VW)(0.5f * (t[r][1] + t[r][2]) + t[r][3], 0, taps[r * 3 + 2]);
        }
    } else {
        /* G^T u along the columns (3 x 6), then along the rows (3 x 3). */
        floatv t[3][6];
        for (int j = 0; j < 6; j++) {
            floatv u[6], reduced[3];
            for (int i = 0; i < 6; i++)
                u[i] = slices_sum(sums + (size_t)(i * 6 + j) * part_slices * stride, stride,
                                  part_slices, lanes);
            WINOGRAD4_GT(u, reduced);
            for (int r = 0; r < 3; r++)
                t[r][j] = reduced[r];
        }
        for (int r = 0; r < 3; r++) {
            floatv reduced[3];
            WINOGRAD4_GT(t[r], reduced);
            for (int s = 0; s < 3; s++)
                VSTORE(VW)(reduced[s], 0, taps[r * 3 + s]);
        }
    }
    for (int l = 0; l < lanes; l++) {
        __global float *out = grad_weight + ((size_t)(k + l) * in_channels + c) * 9;
        for (int tap = 0; tap < 9; tap++)
            out[tap] = taps[tap][l];
    }
}

/* ---- the forward with 4x4 tiles, in one kernel ------------------------------
 * F(4x4, 3x3) as above, forward (and backward-data as the forward of the
 * flipped filters): Y = A^T [ sum_c (G g_kc G^T) .* (B^T d_c B) ] A over
 * 36 parts. For planes that 4x4 tiles cover as well as 2x2 ones (7x7 and
 * 8x8: 4 tiles of 4x4 or 16 of 2x2), a tile's outputs cost 36 products
 * against 64, and at 64 channels of 7x7, batch 128, the kernel took 1.4
 * ms a call against 2.0 for winograd_fused_pairs (bench/RESULTS.md, stop
 * 71). Where the planes are wide, 2x2 tiles waste less, and the 36 parts'
 * transforms weigh more with few channels: tuning races it.
 *
 * A tile vector holds one tile position of VW images (lanes): their windows
 * lie at the same place of their planes, so one test of the padding serves
 * them all and a row of a tile's outputs is stored whole for each image.
 * A work-item takes WINOGRAD4_R tile vectors (the batch's, tile position
 * fastest; those past the last repeat the first and are not stored), keeps
 * the transformed windows of all its input channels in private memory (V,
 * room for WINOGRAD4_C channels, at least `channels`: the host builds 16,
 * 32 and 64), then for each block of WINOGRAD4_K output
 * channels takes the 36 parts' products, WINOGRAD4_R x WINOGRAD4_K
 * accumulators, and the outputs' transform. U (36, K_padded / WINOGRAD4_K,
 * C, WINOGRAD4_K) from winograd4_transform_filters, parts u_stride apart.
 * Launch: ceil(TH * TW * ceil(N / VW) / WINOGRAD4_R) work-items, any local
 * size; the epilogue as winograd_fused's. */
#ifndef WINOGRAD4_R
#define WINOGRAD4_R 2
#endif
#ifndef WINOGRAD4_K
#define WINOGRAD4_K 4
#endif
#ifndef WINOGRAD4_C
#define WINOGRAD4_C 64
#endif

/* out[i] = (A^T m)[i] of six values m[0..5] (vectors). */
#define WINOGRAD4_AT(m, out)                                                                       \
    do {                                                                                           \
        const floatv sum12_ = m[1] + m[2], difference12_ = m[1] - m[2];                            \
        out[0] = ((m[0] + sum12_) + m[3]) + m[4];                                                  \
        out[1] = (difference12_ + 0.5f * m[3]) - 2.0f * m[4];                                      \
        out[2] = (sum12_ + 0.25f * m[3]) + 4.0f * m[4];                                            \
        out[3] = ((difference12_ + 0.125f * m[3]) - 8.0f * m[4]) + m[5];                           \
    } while (0)

/* The first `columns` (1-4) floats of row at o. */
static void store_row4(const float4 row, __global float *o, const int columns) {
    if (columns == 4) {
        vstore4(row, 0, o);
    } else if (columns == 3) {
        vstore3(row.xyz, 0, o);
    } else if (columns == 2) {
        vstore2(row.xy, 0, o);
    } else {
        o[0] = row.x;
    }
}

/* out[i] = (G g)[i] of three values g0, g1, g2 with F(4x4)'s G (6 x 3). */
#define WINOGRAD4_G(g0, g1, g2, out)                                                               \
    do {                                                                                           \
        out[0] = (g0);                                                                             \
        out[1] = ((g0) + (g1) + (g2)) * (1.0f / 3.0f);                                             \
        out[2] = -((g0) - (g1) + (g2)) * (1.0f / 3.0f);                                            \
        out[3] = -(16.0f * (g0) + 8.0f * (g1) + 4.0f * (g2)) * (1.0f / 15.0f);                     \
        out[4] = ((g0)-2.0f * (g1) + 4.0f * (g2)) * (1.0f / 15.0f);                                \
        out[5] = (g2);                                                                             \
    } while (0)

/* U = G g G^T of filter (c, k), zeros past K; flip_transpose as
 * winograd_transform_filters. One work-item per filter, c *
 * padded_out_channels + k. */
__kernel void winograd4_transform_filters(const __global float *restrict weight,
                                          __global float *restrict u, const int in_channels,
                                          const int out_channels, const int padded_out_channels,
                                          const int flip_transpose, const int stride,
                                          const int k_block) {
    const int item = get_global_id(0);
    if (item >= in_channels * padded_out_channels)
        return;
    float g[3][3];
    const int to = filter_of_item(weight, in_channels, out_channels, padded_out_channels,
                                  flip_transpose, k_block, item, g);
    /* G g along the columns (6 x 3), then (G g) G^T along the rows (6 x 6). */
    float column[3][6];
#pragma unroll
    for (int s = 0; s < 3; s++)
        WINOGRAD4_G(g[0][s], g[1][s], g[2][s], column[s]);
#pragma unroll
    for (int i = 0; i < 6; i++) {
        float out[6];
        WINOGRAD4_G(column[0][i], column[1][i], column[2][i], out);
#pragma unroll
        for (int j = 0; j < 6; j++)
            u[(size_t)(i * 6 + j) * stride + to] = out[j];
    }
}

/* Only in a program built for it alone, as winograd_fused. */
#if defined(ONLY_winograd4_fused)
__kernel void winograd4_fused(const __global float *restrict input,
                              const __global float *restrict u, const __global float *restrict bias,
                              __global float *restrict output, const int channels,
                              const int height, const int width, const int pad_top,
                              const int pad_left, const int out_channels, const int out_height,
                              const int out_width, const int tiles_h, const int tiles_w,
                              const int batch, const int u_stride, const int epilogue,
                              const int items) {
    const int item = get_global_id(0);
    if (item >= items)
        return;
    const int tiles = tiles_h * tiles_w, vectors = tiles * ((batch + VW - 1) / VW);
    const int plane = height * width, image = channels * plane;
    const int out_plane = out_height * out_width, out_image = out_channels * out_plane;
    int y[WINOGRAD4_R], x[WINOGRAD4_R], lanes[WINOGRAD4_R];
    size_t first[WINOGRAD4_R];
    __global float *out[WINOGRAD4_R];
#pragma unroll
    for (int r = 0; r < WINOGRAD4_R; r++) {
        const int live = item * WINOGRAD4_R + r < vectors;
        const int vector = live ? item * WINOGRAD4_R + r : item * WINOGRAD4_R;
        const int n0 = vector / tiles * VW, tile = vector % tiles;
        const int ty = tile / tiles_w, tx = tile % tiles_w;
        y[r] = 4 * ty;
        x[r] = 4 * tx;
        lanes[r] = live ? min(VW, batch - n0) : 0;
        first[r] = (size_t)n0 * image;
        out[r] = output + (size_t)n0 * out_image + y[r] * out_width + x[r];
    }
    floatv v[36][WINOGRAD4_C][WINOGRAD4_R];
    /* One loop over (vector, channel), its addresses worked out afresh each
     * time: over the channels alone, with the vectors unrolled, LLVM kept
     * every row of every lane as a pointer of its own, 144 of them, in
     * memory, each added to at every channel. */
    for (int unit = 0; unit < WINOGRAD4_R * channels; unit++) {
        const int r = unit / channels, c = unit - r * channels;
        floatv transformed[36];
        transform_window4(input, first[r] + (size_t)c * plane, (size_t)batch * image,
                          y[r] - pad_top, x[r] - pad_left, height, width, image,
                          max(lanes[r], 1), transformed);
#pragma unroll
        for (int i = 0; i < 36; i++)
            v[i][c][r] = transformed[i];
    }
    for (int k0 = 0; k0 < out_channels; k0 += WINOGRAD4_K) {
        floatv m[36][WINOGRAD4_R][WINOGRAD4_K];
        for (int part = 0; part < 36; part++) {
            floatv acc[WINOGRAD4_R][WINOGRAD4_K];
#pragma unroll
            for (int r = 0; r < WINOGRAD4_R; r++)
#pragma unroll
                for (int j = 0; j < WINOGRAD4_K; j++)
                    acc[r][j] = 0.0f;
            const __global float *uu = u + (size_t)part * u_stride + (size_t)k0 * channels;
            for (int c = 0; c < channels; c++) {
                floatv tiles_c[WINOGRAD4_R];
#pragma unroll
                for (int r = 0; r < WINOGRAD4_R; r++)
                    tiles_c[r] = v[part][c][r];
#pragma unroll
                for (int j = 0; j < WINOGRAD4_K; j++) {
                    const floatv w = (floatv)(uu[c * WINOGRAD4_K + j]);
#pragma unroll
                    for (int r = 0; r < WINOGRAD4_R; r++)
                        acc[r][j] = fma(w, tiles_c[r], acc[r][j]);
                }
            }
#pragma unroll
            for (int r = 0; r < WINOGRAD4_R; r++)
#pragma unroll
                for (int j = 0; j < WINOGRAD4_K; j++)
                    m[part][r][j] = acc[r][j];
        }
        for (int j = 0; j < WINOGRAD4_K && k0 + j < out_channels; j++) {
            const int k = k0 + j;
            const float b = (epilogue & EPILOGUE_BIAS) ? bias[k] : 0.0f;
#pragma unroll
            for (int r = 0; r < WINOGRAD4_R; r++) {
                /* A^T M along the columns (4 x 6), then along the rows (4 x 4). */
                floatv t[4][6];
#pragma unroll
                for (int q = 0; q < 6; q++) {
                    floatv column[6], reduced[4];
#pragma unroll
                    for (int i = 0; i < 6; i++)
                        column[i] = m[i * 6 + q][r][j];
                    WINOGRAD4_AT(column, reduced);
#pragma unroll
                    for (int i = 0; i < 4; i++)
                        t[i][q] = reduced[i];
                }
                const int columns = min(4, out_width - x[r]);
#ifdef HAS_TRANSPOSE8
                if (lanes[r] == VW && columns == 4 && y[r] + 4 <= out_height) {
                    /* Two rows of every image's tile at once: the 8 row
                     * vectors (4 columns of each row, 8 images a vector)
                     * transposed into one vector an image, added to what
                     * the output holds where accumulating (the scalar
                     * path below had taken 1.2 times as long a call at
                     * 16 channels of 28x28). */
#pragma unroll
                    for (int i = 0; i < 4; i += 2) {
                        floatv upper[4], lower[4], rows[8], images[8];
                        WINOGRAD4_AT(t[i], upper);
                        WINOGRAD4_AT(t[i + 1], lower);
#pragma unroll
                        for (int q = 0; q < 4; q++) {
                            rows[q] = FINISH_OUTPUT(floatv, upper[q] + b, epilogue);
                            rows[q + 4] = FINISH_OUTPUT(floatv, lower[q] + b, epilogue);
                        }
                        TRANSPOSE8(rows, images);
                        __global float *o = out[r] + (size_t)k * out_plane + i * out_width;
                        if (epilogue & EPILOGUE_ACCUMULATE) {
#pragma unroll
                            for (int l = 0; l < 8; l++) {
                                __global float *lo = o + (size_t)l * out_image;
                                vstore4(vload4(0, lo) + images[l].lo, 0, lo);
                                vstore4(vload4(0, lo + out_width) + images[l].hi, 0, lo + out_width);
                            }
                        } else {
#pragma unroll
                            for (int l = 0; l < 8; l++) {
                                vstore4(images[l].lo, 0, o + (size_t)l * out_image);
                                vstore4(images[l].hi, 0, o + (size_t)l * out_image + out_width);
                            }
                        }
                    }
                    continue;
                }
#endif
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    if (y[r] + i >= out_height)
                        break;
                    floatv row[4];
                    WINOGRAD4_AT(t[i], row);
                    /* Each image's row of the tile: its lane of the four. */
                    float values[4][VW];
#pragma unroll
                    for (int q = 0; q < 4; q++)
                        VSTORE(VW)(FINISH_OUTPUT(floatv, row[q] + b, epilogue), 0, values[q]);
                    __global float *o = out[r] + (size_t)k * out_plane + i * out_width;
                    /* Apart, so that a plain store reads nothing first. */
                    if (epilogue & EPILOGUE_ACCUMULATE) {
                        for (int l = 0; l < lanes[r]; l++)
                            for (int q = 0; q < columns; q++)
                                o[(size_t)l * out_image + q] += values[q][l];
                    } else {
#pragma unroll
                        for (int l = 0; l < VW; l++) {
                            if (l >= lanes[r])
                                break;
                            store_row4((float4)(values[0][l], values[1][l], values[2][l],
                                                values[3][l]),
                                       o + (size_t)l * out_image, columns);
                        }
                    }
                }
            }
        }
    }
}
#endif
