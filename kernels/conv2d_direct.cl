/* Convolution with register blocking and explicit vectors, no local memory:
 * the variant for CPU devices, where caches do the tiling and a work-item's
 * explicit float vectors become the SIMD registers (PoCL turns a
 * local-memory tile loop into mostly scalar code; this form runs at several
 * times the speed there). NCHW float32, the same semantics as conv2d.cl.
 *
 * Each work-item computes WPT_P output positions x VW*NV channels: its
 * accumulators are WPT_P * NV vectors of VW floats. The reduction walks the
 * kernel taps (r, s) and, innermost, the reduced channels; for each channel a
 * vector of VW*NV weights or gradients is loaded from a transposed copy in
 * which those channels are contiguous (the *_transpose kernels below make it,
 * with the channel count padded to a multiple of VW*NV so the loads never
 * leave the buffer), and each of the WPT_P positions contributes one scalar.
 *
 * Parameters (-D): VW (vector width: 1, 2, 4, 8 or 16), NV (vectors per
 * work-item), WPT_P (positions per work-item); for the forward kernel
 * optionally CHANNEL_BLOCK, the reduced channels per block: the work-group's
 * work-items then walk the channels block by block in step, a barrier
 * between blocks, so that a block's weights, which all of them read, stay in
 * a CPU's L1 cache (PoCL runs a group's work-items one after the other
 * between barriers); ROW_POSITIONS with ROW_STRIDE (the stride along the
 * rows) and ROW_PIXEL (the floats a pixel of the input takes: 1 planar, C
 * channels-last), where WPT_P divides the output rows, so that a work-item's
 * positions lie side by side in one row (without WINDOWS_INSIDE, planar
 * only: its windows may then reach into the padding). For the
 * backward-weights kernel optionally TAP_ROWS and TAP_COLS (R and S), where
 * R*S divides WPT_P: a work-item's taps are whole channels'. Without those
 * options no divisibility rules: any shape works. Launch: global
 * (ceil(channels / (VW*NV)), ceil(positions / WPT_P)), any local size.
 */
/* The helper kernels (the padded copies, the transposes, the flip, the sum
 * of backward-weights' slices) read none of the -D parameters but GENERAL
 * (the weights' transposes) and VW (conv2d_transpose_grad_output), and are
 * built with those alone: one program of them serves every configuration,
 * where PoCL would build them again for each. Without -DVW a narrow
 * default keeps their program free of 16-float vectors, which compilers
 * for CPUs without AVX-512 warn about on stderr.
 * The configured kernels, built for each configuration and shape, each
 * stand in an #if that leaves them out of a program built for another one
 * (-DONE_KERNEL -DONLY_<name>, host/core/runtime.c's
 * runtime_get_kernel_alone): a program's build compiles all of its
 * kernels. */
#ifndef VW
#define VW 4
#endif
#ifndef NV
#define NV 1
#endif
#ifndef WPT_P
#define WPT_P 8
#endif

#define CHANNELS_PER_ITEM (VW * NV)

/* PoCL leaves some helpers as calls, their arrays of vectors passed through
 * memory (the channels-last copy took 1.4 times as long so). */
#ifdef __clang__
#define ALWAYS_INLINE __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

#define GLUE(a, b) a##b
#define VECTOR(type, width) GLUE(type, width)
#define VLOAD(width) GLUE(vload, width)
#define VSTORE(width) GLUE(vstore, width)

#if VW == 1
typedef float floatv;
#define load_vector(offset, pointer) ((pointer)[offset])
#define store_vector(value, offset, pointer) ((pointer)[offset] = (value))
#else
typedef VECTOR(float, VW) floatv;
#define load_vector(offset, pointer) VLOAD(VW)(offset, pointer)
#define store_vector(value, offset, pointer) VSTORE(VW)(value, offset, pointer)
#endif

/* Grouped and dilated convolutions (PyTorch's groups= and dilation=) run
 * on a variant of the register-blocked kernels built with -DGENERAL, which
 * host/ops/conv2d.c adds only when groups or a dilation is not 1: without it
 * the macros below expand to the ordinary convolution's code, so its
 * programs stay exactly what they were. One variant serves both, to keep
 * the programs few.
 *
 * -DGENERAL: the convolution kernels take the number of groups, then
 * dilation_h and dilation_w after their other arguments
 * (conv2d_transpose_grad_output the number of groups; the transposes of the
 * weights nothing more). C and K are one group's channel counts
 * (C_padded and K_padded one group's padded counts), and each group is the
 * convolution above of its own: group g reads input channels
 * g*C .. g*C + C-1 and filters g*K .. g*K + K-1 of the (groups*K, C, R, S)
 * weights and writes output channels g*K .. g*K + K-1. A transposed copy
 * holds the groups' blocks one after the other. The group is the last
 * NDRange dimension (for backward-weights: groups x slices, slices
 * fastest), so a work-item's vector of channels never straddles two groups.
 * Tap (r, s) reads the input dilation_h*r rows and dilation_w*s columns from
 * the window's corner. */
#ifdef GENERAL
#define GROUPS_PARAM , const int groups
#define IMAGE_C (C * groups) /* channels of a whole input image */
#define IMAGE_K (K * groups) /* and of an output image */
#define IMAGE_K_PADDED (K_padded * groups)
#define STORE_STRIDE_PARAM , const int image_channels
#define STORE_STRIDE image_channels
#define STORE_STRIDE_ARG(channels) , (channels)*groups
#define STORE_STRIDE_PASS , image_channels
#define DILATION_PARAMS , const int dilation_h, const int dilation_w
#define DILATE_H(r) ((r)*dilation_h)
#define DILATE_W(s) ((s)*dilation_w)
#else
#define GROUPS_PARAM
#define IMAGE_C C
#define IMAGE_K K
#define IMAGE_K_PADDED K_padded
#define STORE_STRIDE_PARAM
#define STORE_STRIDE channels
#define STORE_STRIDE_ARG(channels)
#define STORE_STRIDE_PASS
#define DILATION_PARAMS
#define DILATE_H(r) r
#define DILATE_W(s) s
#endif

/* -DCHANNELS_LAST (with WINDOWS_INSIDE, never with GENERAL): the forward
 * kernel reads conv2d_pad_input_channels_last's (N, H, W, C) copy, in
 * which a tap's channels are adjacent floats: planes apart, the reduction
 * over channels reads a cache line per channel, too many for L1 to keep
 * until the group's next work-item reads the rest of them. */
#ifdef CHANNELS_LAST
#define PIXEL_STEP C
#define CHANNEL_STEP(plane) 1
#else
#define PIXEL_STEP 1
#define CHANNEL_STEP(plane) (plane)
#endif

/* weight (K, C, R, S) -> transposed (R, S, C, K_padded), zeros in the padding:
 * forward reads output channels contiguously. */
__kernel void conv2d_transpose_for_forward(const __global float *restrict weight,
                                           __global float *restrict transposed, const int C,
                                           const int K, const int R, const int S,
                                           const int K_padded) {
#ifdef GENERAL
    /* The second dimension is the group. */
    weight += get_global_id(1) * K * C * R * S;
    transposed += get_global_id(1) * R * S * C * K_padded;
#endif
    const int row = get_global_id(0); /* over R*S*C */
    if (row >= R * S * C)
        return;
    const int c = row % C;
    const __global float *from = weight + c * R * S + row / C;
    __global float *to = transposed + row * K_padded;
    for (int k = 0; k < K; k++)
        to[k] = from[k * C * R * S];
    for (int k = K; k < K_padded; k++)
        to[k] = 0.0f;
}

/* weight (K, C, R, S) -> transposed (taps_h, taps_w, K, C_padded): backward-data
 * reads input channels contiguously. Tap (t, u) of the copy is the filters'
 * tap (first_r + step_r * t, first_s + step_s * u): all taps in order for the
 * backward-data kernel; reversed (first R-1, step -1) for the stride-1
 * convolution whose forward is this one's backward-data; and for a phase of
 * a strided one's backward-data, the taps that reach it, reversed (steps of
 * minus the stride: host/ops/conv2d.c, backward_data_phases). */
__kernel void conv2d_transpose_for_backward_data(
    const __global float *restrict weight, __global float *restrict transposed, const int C,
    const int K, const int R, const int S, const int C_padded, const int taps_h, const int taps_w,
    const int first_r, const int first_s, const int step_r, const int step_s) {
#ifdef GENERAL
    /* The second dimension is the group. */
    weight += get_global_id(1) * K * C * R * S;
    transposed += get_global_id(1) * taps_h * taps_w * K * C_padded;
#endif
    const int row = get_global_id(0); /* over taps_h*taps_w*K */
    if (row >= taps_h * taps_w * K)
        return;
    const int k = row % K;
    const int tu = row / K;
    const int r = first_r + step_r * (tu / taps_w);
    const int s = first_s + step_s * (tu % taps_w);
    const __global float *from = weight + (k * C * R + r) * S + s;
    __global float *to = transposed + row * C_padded;
    for (int c = 0; c < C; c++)
        to[c] = from[c * R * S];
    for (int c = C; c < C_padded; c++)
        to[c] = 0.0f;
}

/* weight (K, C, 3, 3) -> transposed (C_padded / lanes, K, 9, lanes), zeros
 * past C: conv2d_backward_data_stride2's work-item reads its `lanes`
 * channels' 9 taps of every output channel as one run. From the
 * (3, 3, K, C_padded) layout its 9 taps were K * C_padded floats apart, a
 * multiple of 4 KiB from 32 -> 64 channels: nine streams in one L1 set. */
__kernel void conv2d_transpose_for_stride2(const __global float *restrict weight,
                                           __global float *restrict transposed, const int C,
                                           const int K, const int C_padded, const int lanes) {
    const int row = get_global_id(0); /* (slice, k, tap) */
    if (row >= C_padded / lanes * K * 9)
        return;
    const int t = row % 9, k = row / 9 % K, c0 = row / 9 / K * lanes;
    __global float *to = transposed + (size_t)row * lanes;
    for (int l = 0; l < lanes; l++)
        to[l] = c0 + l < C ? weight[((size_t)k * C + c0 + l) * 9 + t] : 0.0f;
}

void zero_block(floatv block[WPT_P][NV]) {
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            block[m][v] = (floatv)(0.0f);
}

/* Each tap's sum over channels (in the forward over a channels-last copy,
 * each row of taps' sum) is formed apart and then added to the total: float
 * rounding then grows with channels + taps rather than their product, and
 * the total is only touched once per tap, so it costs no registers in the
 * inner loop. */
void add_block(floatv acc[WPT_P][NV], floatv tap_sum[WPT_P][NV]) {
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            acc[m][v] += tap_sum[m][v];
}

/* One step of a forward's reduction: tap_sum[m] += x[m] * the NV weight
 * vectors at weights, for each of the WPT_P positions. */
ALWAYS_INLINE void reduction_step(floatv tap_sum[WPT_P][NV], const __global float *weights,
                                  const float x[WPT_P]) {
    floatv w[NV];
#pragma unroll
    for (int v = 0; v < NV; v++)
        w[v] = load_vector(0, weights + v * VW);
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            tap_sum[m][v] = fma((floatv)(x[m]), w[v], tap_sum[m][v]);
}

/* What the forward kernels do to a sum before they store it (their
 * `epilogue` argument, a set of these): add the channel's bias, then apply a
 * relu (one fused into the convolution: host/graph/plan.c), as
 * kernels/activation.cl's, bit for bit; then add the result to what the
 * output holds (a backward-data whose gradient another layer wrote too). */
#define EPILOGUE_BIAS 1
#define EPILOGUE_RELU 2
#define EPILOGUE_ACCUMULATE 4

void store_output(__global float *at, const float value, const int epilogue) {
    *at = (epilogue & EPILOGUE_ACCUMULATE) ? *at + value : value;
}

float finish(const float sum, const float bias, const int epilogue) {
    const float v = sum + bias;
    return (epilogue & EPILOGUE_RELU) && v <= 0.0f ? 0.0f : v;
}

/* finish() on a vector: the same floats, in a few vector operations. */
floatv finish_vector(const floatv sum, const floatv bias, const int epilogue) {
    const floatv v = sum + bias;
    return (epilogue & EPILOGUE_RELU) ? select(v, (floatv)(0.0f), v <= 0.0f) : v;
}

/* Writes a work-item's accumulators to NCHW: each lane is one channel, and a
 * channel's positions are `plane` apart, so the stores are scalar. Position m
 * (m < count) is pixel[m] of image[m]. */
void store_block_at(floatv acc[WPT_P][NV], __global float *output, const __global float *bias,
                    const int epilogue, const int first_channel, const int channels,
                    const int *image, const int *pixel, const int count,
                    const int plane STORE_STRIDE_PARAM) {
    /* All of a work-item's channels real (the common case): the epilogue
     * on whole vectors and the lanes stored without a test each. */
    const int whole = first_channel + CHANNELS_PER_ITEM <= channels;
    for (int v = 0; v < NV; v++) {
        const int channel = first_channel + v * VW;
        const floatv b = whole && (epilogue & EPILOGUE_BIAS) ? load_vector(0, bias + channel)
                                                             : (floatv)(0.0f);
        for (int m = 0; m < count; m++) {
            const int at = (image[m] * STORE_STRIDE + channel) * plane + pixel[m];
            float lanes[VW];
            store_vector(whole ? finish_vector(acc[m][v], b, epilogue) : acc[m][v], 0, lanes);
            if (whole) {
#pragma unroll
                for (int j = 0; j < VW; j++)
                    store_output(output + at + j * plane, lanes[j], epilogue);
                continue;
            }
            for (int j = 0; j < VW && channel + j < channels; j++)
                store_output(output + at + j * plane,
                             finish(lanes[j], (epilogue & EPILOGUE_BIAS) ? bias[channel + j] : 0.0f,
                                    epilogue),
                             epilogue);
        }
    }
}

/* WPT_P adjacent outputs from column to at (added to what at holds with
 * EPILOGUE_ACCUMULATE), in vectors of 8, 4 and 2 and a last float: no vector
 * wider than AVX2's (a 16-float vector warns on stderr where the CPU has
 * no AVX-512), and 6 or 12 positions leave as vectors too. STORE_PIECE
 * stores the next `width` of `count` floats if they are all there. */
#define STORE_PIECE(width, count)                                                                  \
    if (i + width <= (count)) {                                                                    \
        VECTOR(float, width) value = VLOAD(width)(0, column + i);                                  \
        if (epilogue & EPILOGUE_ACCUMULATE)                                                        \
            value += VLOAD(width)(0, at + i);                                                      \
        VSTORE(width)(value, 0, at + i);                                                           \
        i += width;                                                                                \
    }

void store_positions(const float column[WPT_P], __global float *at, const int epilogue) {
    int i = 0;
#pragma unroll
    for (int piece = 0; piece < WPT_P / 8; piece++)
        STORE_PIECE(8, WPT_P)
    STORE_PIECE(4, WPT_P)
    STORE_PIECE(2, WPT_P)
    if (i < WPT_P)
        store_output(at + i, column[i], epilogue);
}

/* The same for the positions first_position + m of all the images' planes in order. */
void store_block(floatv acc[WPT_P][NV], __global float *output, const __global float *bias,
                 const int epilogue, const int first_channel, const int channels,
                 const int first_position, const int positions,
                 const int plane STORE_STRIDE_PARAM) {
    /* The common case, all positions in one image and all channels real:
     * a channel's WPT_P outputs are adjacent, so they leave as vectors
     * instead of WPT_P scalar stores (a third of the kernel's time at 16
     * channels went to the scalar stores). */
    if (first_position % plane + WPT_P <= plane && first_channel + CHANNELS_PER_ITEM <= channels) {
        const int n = first_position / plane;
        __global float *out =
            output + (n * STORE_STRIDE + first_channel) * plane + first_position - n * plane;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            /* The epilogue on whole vectors, before they are cut into lanes
             * (per lane it had cost more than the cutting). */
            const floatv b = (epilogue & EPILOGUE_BIAS)
                                 ? load_vector(0, bias + first_channel + v * VW)
                                 : (floatv)(0.0f);
            float lanes[WPT_P][VW];
#pragma unroll
            for (int m = 0; m < WPT_P; m++) {
                store_vector(finish_vector(acc[m][v], b, epilogue), 0, lanes[m]);
            }
#pragma unroll
            for (int j = 0; j < VW; j++) {
                float column[WPT_P];
#pragma unroll
                for (int m = 0; m < WPT_P; m++)
                    column[m] = lanes[m][j];
                store_positions(column, out + (v * VW + j) * plane, epilogue);
            }
        }
        return;
    }
    int image[WPT_P], pixel[WPT_P];
    const int count = min(WPT_P, positions - first_position);
    for (int m = 0; m < count; m++) {
        image[m] = (first_position + m) / plane;
        pixel[m] = first_position + m - image[m] * plane;
    }
    store_block_at(acc, output, bias, epilogue, first_channel, channels, image, pixel, count,
                   plane STORE_STRIDE_PASS);
}

/* output[n, k, oh, ow] = bias[k] + sum_{c, r, s} weight[k, c, r, s] * input[n, c, ih, iw]
 * with ih = oh*stride_h - pad_top + r, iw = ow*stride_w - pad_left + s.
 * weight_t is conv2d_transpose_for_forward's (R, S, C, K_padded); the input
 * starts at input + input_offset, the filters at weight_t + weight_offset,
 * the output at output + output_offset (Winograd's 16 products are 16
 * such convolutions on parts of three buffers). -DWINDOWS_INSIDE says that
 * every tap of every window is inside the input: conv2d_pad_input's
 * zero-padded copy (H x W its padded size, the pads 0) or an input that
 * needs no padding; the inner loop is then nothing but loads and fma. */
#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_forward_direct)
__kernel void conv2d_forward_direct(const __global float *restrict input, const int input_offset,
                                    const __global float *restrict weight_t,
                                    const __global float *restrict bias,
                                    __global float *restrict output, const int C, const int H,
                                    const int W, const int K, const int R, const int S,
                                    const int stride_h, const int stride_w, const int pad_top,
                                    const int pad_left, const int OH, const int OW,
                                    const int positions, const int epilogue, const int K_padded,
                                    const int weight_offset,
                                    const int output_offset GROUPS_PARAM DILATION_PARAMS) {
    const int first_channel = get_global_id(0) * CHANNELS_PER_ITEM;
    const int first_position = get_global_id(1) * WPT_P;
#ifdef CHANNEL_BLOCK
    /* Every work-item of the group reaches the barriers below; one past the
     * end computes at a clamped position and stores nothing. */
    const int outside = first_channel >= K || first_position >= positions;
#else
    if (first_channel >= K || first_position >= positions)
        return;
#endif
    input += input_offset;
    weight_t += weight_offset;
    output += output_offset;
    const int HW = H * W;
    const int OHW = OH * OW;
#ifdef GENERAL
    /* The third dimension is the group: its input channels, filters, bias and output channels. */
    const int group = get_global_id(2);
    input += group * C * HW;
    weight_t += group * R * S * C * K_padded;
    bias += group * K;
    output += group * K * OHW;
#endif

    /* Per position: where its image starts and its window's top-left corner.
     * The first position is divided out, the next ones stepped from it (a
     * work-item's divisions had been a tenth of its time at 16 channels);
     * positions past the last repeat it. */
    int image[WPT_P], top[WPT_P], left[WPT_P];
#ifdef ROW_POSITIONS
    /* -DROW_POSITIONS (WPT_P dividing OW, -DROW_STRIDE=stride_w): the
     * positions lie side by side in one row, so their windows are build
     * constants apart and the inner loop addresses them all from one
     * register, where one per position had left room for no more than 8. */
    const int first = min(first_position, positions - WPT_P);
    const int first_row = first / OW;
    const int row_n = first_row / OH;
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        image[m] = row_n * IMAGE_C * HW;
        top[m] = (first_row - row_n * OH) * stride_h - pad_top;
        left[m] = (first - first_row * OW) * stride_w - pad_left + m * ROW_STRIDE;
    }
#else
    int n = min(first_position, positions - 1) / OHW;
    int oh = (min(first_position, positions - 1) - n * OHW) / OW;
    int ow = min(first_position, positions - 1) - n * OHW - oh * OW;
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        if (m > 0 && first_position + m < positions && ++ow == OW) {
            ow = 0;
            if (++oh == OH) {
                oh = 0;
                n++;
            }
        }
        image[m] = n * IMAGE_C * HW;
        top[m] = oh * stride_h - pad_top;
        left[m] = ow * stride_w - pad_left;
    }
#endif

    floatv acc[WPT_P][NV];
    zero_block(acc);

    /* Without CHANNEL_BLOCK one block holds every channel. */
#ifdef CHANNEL_BLOCK
    for (int block = 0; block < C; block += CHANNEL_BLOCK) {
        barrier(CLK_LOCAL_MEM_FENCE);
        const int block_end = min(block + CHANNEL_BLOCK, C);
#else
    for (int block = 0; block < C; block += C) {
        const int block_end = C;
#endif
#if defined(CHANNELS_LAST) && defined(WINDOWS_INSIDE)
        /* A row of taps is S * C adjacent floats of the copy and S * C
         * adjacent rows of the weights: one reduction per row of the window,
         * whose bookkeeping per tap had cost 5-10 % of the time at 16-32
         * channels (in-process A/B). */
        for (int r = 0; r < R; r++) {
#ifdef ROW_POSITIONS
            /* Positions side by side: ROW_STRIDE * ROW_PIXEL (C, a build
             * constant here) floats apart, one pointer for all of them. */
            const __global float *row =
                input + image[0] + ((top[0] + r) * W + left[0]) * C;
#else
            const __global float *at[WPT_P];
#pragma unroll
            for (int m = 0; m < WPT_P; m++)
                at[m] = input + image[m] + ((top[m] + r) * W + left[m]) * C;
#endif
            const __global float *weights = weight_t + r * S * C * K_padded + first_channel;
            floatv tap_sum[WPT_P][NV];
            zero_block(tap_sum);
            for (int j = 0; j < S * C; j++) {
                float x[WPT_P];
#pragma unroll
                for (int m = 0; m < WPT_P; m++)
#ifdef ROW_POSITIONS
                    x[m] = row[j + m * ROW_STRIDE * ROW_PIXEL];
#else
                    x[m] = at[m][j];
#endif
                reduction_step(tap_sum, weights + j * K_padded, x);
            }
            add_block(acc, tap_sum);
        }
#elif defined(ROW_POSITIONS) && defined(WINDOWS_INSIDE)
        /* Position m reads m * ROW_STRIDE floats after position 0, a build
         * constant: one pointer and fixed displacements. (Written per
         * position as below, LLVM had formed the offsets as a vector and
         * taken them out one by one, an extraction for every fma.) */
        for (int r = 0; r < R; r++) {
            for (int s = 0; s < S; s++) {
                const int ih = top[0] + DILATE_H(r), iw = left[0] + DILATE_W(s);
                const __global float *window = input + image[0] + (ih * W + iw) * PIXEL_STEP;
                const __global float *weights =
                    weight_t + (r * S + s) * C * K_padded + first_channel;
                floatv tap_sum[WPT_P][NV];
                zero_block(tap_sum);
                for (int c = block; c < block_end; c++) {
                    const __global float *at = window + c * CHANNEL_STEP(HW);
                    float x[WPT_P];
#pragma unroll
                    for (int m = 0; m < WPT_P; m++)
                        x[m] = at[m * ROW_STRIDE * PIXEL_STEP];
                    reduction_step(tap_sum, weights + c * K_padded, x);
                }
                add_block(acc, tap_sum);
            }
        }
#elif defined(ROW_POSITIONS)
        /* The same from the input itself, padding and all: a row of taps
         * above or below it adds nothing and is skipped, a tap whose
         * positions' columns all lie inside runs the loop above, and only
         * the taps of the work-items at a row's ends, which reach into the
         * padding, test each position (zeros for the ones outside, read
         * from a safe address). A forward then needs no zero-padded copy,
         * which at stride 2 (16 -> 32 channels from 28x28) took a third of
         * its time. */
        for (int r = 0; r < R; r++) {
            const int ih = top[0] + DILATE_H(r);
            if (ih < 0 || ih >= H)
                continue;
            const __global float *input_row = input + image[0] + ih * W;
            for (int s = 0; s < S; s++) {
                const int iw = left[0] + DILATE_W(s);
                const __global float *weights =
                    weight_t + (r * S + s) * C * K_padded + first_channel;
                floatv tap_sum[WPT_P][NV];
                zero_block(tap_sum);
                if (iw >= 0 && iw + (WPT_P - 1) * ROW_STRIDE < W) {
                    const __global float *window = input_row + iw;
                    for (int c = block; c < block_end; c++) {
                        const __global float *at = window + c * HW;
                        float x[WPT_P];
#pragma unroll
                        for (int m = 0; m < WPT_P; m++)
                            x[m] = at[m * ROW_STRIDE];
                        reduction_step(tap_sum, weights + c * K_padded, x);
                    }
                } else {
                    const __global float *at[WPT_P];
                    int inside[WPT_P];
#pragma unroll
                    for (int m = 0; m < WPT_P; m++) {
                        const int column = iw + m * ROW_STRIDE;
                        inside[m] = column >= 0 && column < W;
                        at[m] = input_row + (inside[m] ? column : 0);
                    }
                    for (int c = block; c < block_end; c++) {
                        float x[WPT_P];
#pragma unroll
                        for (int m = 0; m < WPT_P; m++)
                            x[m] = inside[m] ? at[m][c * HW] : 0.0f;
                        reduction_step(tap_sum, weights + c * K_padded, x);
                    }
                }
                add_block(acc, tap_sum);
            }
        }
#else
        for (int r = 0; r < R; r++) {
            for (int s = 0; s < S; s++) {
                /* Taps in the padding read a safe address and contribute
                 * zero. A pointer per position, indexed by the channel:
                 * with an offset per position added to the channel's, LLVM
                 * had formed the sums as a vector and taken them out one by
                 * one for every channel (Xeon, dense 2048 -> 2048 at batch
                 * 2048: forward 150 -> 186 GFLOP/s, backward-data, run as a
                 * forward, 174 -> 221). The channels-last walk above and
                 * conv2d_backward_data_direct take pointers too. */
                const __global float *at[WPT_P];
                int inside[WPT_P];
#pragma unroll
                for (int m = 0; m < WPT_P; m++) {
                    const int ih = top[m] + DILATE_H(r);
                    const int iw = left[m] + DILATE_W(s);
#ifdef WINDOWS_INSIDE
                    inside[m] = 1;
#else
                    inside[m] = ih >= 0 && ih < H && iw >= 0 && iw < W;
#endif
                    at[m] = input + (inside[m] ? image[m] + (ih * W + iw) * PIXEL_STEP : 0);
                }
                const __global float *weights =
                    weight_t + (r * S + s) * C * K_padded + first_channel;
                floatv tap_sum[WPT_P][NV];
                zero_block(tap_sum);
                for (int c = block; c < block_end; c++) {
                    float x[WPT_P];
#pragma unroll
                    for (int m = 0; m < WPT_P; m++)
                        x[m] = inside[m] ? at[m][c * CHANNEL_STEP(HW)] : 0.0f;
                    reduction_step(tap_sum, weights + c * K_padded, x);
                }
                add_block(acc, tap_sum);
            }
        }
#endif
    }
#ifdef CHANNEL_BLOCK
    if (outside)
        return;
#endif
    store_block(acc, output, bias, epilogue, first_channel, K, first_position, positions,
                OHW STORE_STRIDE_ARG(K));
}
#endif

/* A pointwise convolution (1x1, stride 1, no padding, one group, no
 * dilation) is a matrix product per image: output[n, k, q] = bias[k] +
 * sum over c of weight_t[c, k] * input[n, c, q] over the plane's positions
 * q. In NCHW a channel's positions are adjacent, so here the vectors run
 * along the positions: a work-item takes WPT_P output channels x NV vectors
 * of VW positions, and per reduced channel loads NV whole vectors of input
 * and WPT_P weights to broadcast, and stores whole vectors. (The forward
 * above vectorises the channels, and a channel's outputs leave it as
 * scalars a plane apart or through a transposition: 1x1 from 256 to 64
 * channels at 56x56, batch 32, ran at 114 GFLOP/s there, 186 here, Xeon
 * AVX-512.)
 * weight_t is conv2d_transpose_for_forward's (C, K_padded), K_padded at
 * least ceil(K / WPT_P) * WPT_P; for a backward-data run as this forward,
 * conv2d_transpose_for_backward_data's. The sum runs over c in order from
 * zero, then the bias: the direct forward's floats where it has no channel
 * blocks. Launch: global (ceil(K / WPT_P), ceil(plane / (VW * NV)), N);
 * work-items side by side along the first dimension share their input
 * vectors, which stay in the cache. */
#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_pointwise)
__kernel void conv2d_pointwise(const __global float *restrict input,
                               const __global float *restrict weight_t,
                               const __global float *restrict bias,
                               __global float *restrict output, const int C, const int K,
                               const int K_padded, const int plane, const int epilogue) {
    const int first_channel = get_global_id(0) * WPT_P;
    const int first_position = get_global_id(1) * CHANNELS_PER_ITEM;
    const int n = get_global_id(2);
    if (first_channel >= K || first_position >= plane)
        return;
    input += (size_t)n * C * plane + first_position;
    output += ((size_t)n * K + first_channel) * plane + first_position;
    weight_t += first_channel;
    floatv acc[WPT_P][NV];
    zero_block(acc);
    /* The plane's last work-item may hold fewer positions: its loads take
     * each lane within the plane, zeros past it. */
    const int whole = first_position + CHANNELS_PER_ITEM <= plane;
    const int count = plane - first_position;
    for (int c = 0; c < C; c++) {
        const __global float *row = input + (size_t)c * plane;
        floatv x[NV];
        if (whole) {
#pragma unroll
            for (int v = 0; v < NV; v++)
                x[v] = load_vector(0, row + v * VW);
        } else {
#pragma unroll
            for (int v = 0; v < NV; v++) {
                float lanes[VW];
                for (int j = 0; j < VW; j++)
                    lanes[j] = v * VW + j < count ? row[v * VW + j] : 0.0f;
                x[v] = load_vector(0, lanes);
            }
        }
        const __global float *w = weight_t + (size_t)c * K_padded;
#pragma unroll
        for (int m = 0; m < WPT_P; m++)
#pragma unroll
            for (int v = 0; v < NV; v++)
                acc[m][v] = fma((floatv)(w[m]), x[v], acc[m][v]);
    }
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        if (first_channel + m >= K)
            break;
        const floatv b =
            (floatv)((epilogue & EPILOGUE_BIAS) ? bias[first_channel + m] : 0.0f);
        __global float *out = output + (size_t)m * plane;
#pragma unroll
        for (int v = 0; v < NV; v++) {
            floatv value = finish_vector(acc[m][v], b, epilogue);
            if (whole) {
                if (epilogue & EPILOGUE_ACCUMULATE)
                    value += load_vector(0, out + v * VW);
                store_vector(value, 0, out + v * VW);
                continue;
            }
            float lanes[VW];
            store_vector(value, 0, lanes);
            for (int j = 0; j < VW && v * VW + j < count; j++)
                store_output(out + v * VW + j, lanes[j], epilogue);
        }
    }
}
#endif

/* grad_input[n, c, ih, iw] = sum over k, r, s of weight[k, c, r, s] * grad_output[n, k, oh, ow]
 * where ih = oh*stride_h - pad_top + r (and the same for w): a position takes a
 * tap only where (ih + pad_top - r) is a multiple of the stride and oh is in range.
 * weight_t is conv2d_transpose_for_backward_data's (R, S, K, C_padded).
 *
 * One launch covers the input positions of one phase: the rows ih = row0,
 * row0 + row_step, ... (rows of them) and the columns col0, col0 + col_step,
 * ... (cols), and the taps r = r0, r0 + row_step, ... and s = s0, s0 +
 * col_step, .... With steps of 1 (and row0 = col0 = r0 = s0 = 0) that is every
 * position and every tap. For a strided convolution without dilation the host
 * launches once per phase (ih + pad_top) % stride_h, (iw + pad_left) %
 * stride_w with steps of the stride: every tap a position then visits can
 * take a gradient, where walking all taps would find stride_h * stride_w
 * times as many, all but one in that many without one. */
#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_backward_data_direct)
__kernel void conv2d_backward_data_direct(
    const __global float *restrict grad_output, const __global float *restrict weight_t,
    __global float *restrict grad_input, const int C, const int H, const int W, const int K,
    const int R, const int S, const int stride_h, const int stride_w, const int pad_top,
    const int pad_left, const int OH, const int OW, const int positions, const int C_padded,
    const int row0, const int col0, const int rows, const int cols, const int row_step,
    const int col_step, const int r0, const int s0 GROUPS_PARAM DILATION_PARAMS) {
    const int first_channel = get_global_id(0) * CHANNELS_PER_ITEM;
    const int first_position = get_global_id(1) * WPT_P;
    if (first_channel >= C || first_position >= positions)
        return;
    const int HW = H * W;
    const int OHW = OH * OW;
#ifdef GENERAL
    /* The third dimension is the group: its output channels' gradient, filters and input
     * channels. */
    const int group = get_global_id(2);
    grad_output += group * K * OHW;
    weight_t += group * R * S * K * C_padded;
    grad_input += group * C * HW;
#endif

    /* Per position (of this phase's rows x cols of every image): its image,
     * where its image's gradient starts, its pixel and padded coordinates. */
    int image[WPT_P], image_start[WPT_P], pixel[WPT_P], row[WPT_P], column[WPT_P];
    const int count = min(WPT_P, positions - first_position);
    /* The first position divided out, the next ones stepped from it, as in
     * the forward; positions past the last repeat it. */
    int n = first_position / (rows * cols);
    int j = (first_position - n * rows * cols) / cols;
    int i = first_position - n * rows * cols - j * cols;
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        if (m > 0 && m < count && ++i == cols) {
            i = 0;
            if (++j == rows) {
                j = 0;
                n++;
            }
        }
        const int ih = row0 + j * row_step;
        const int iw = col0 + i * col_step;
        image[m] = n;
        image_start[m] = n * IMAGE_K * OHW;
        pixel[m] = ih * W + iw;
        row[m] = ih + pad_top;
        column[m] = iw + pad_left;
    }

    floatv acc[WPT_P][NV];
    zero_block(acc);

    for (int r = r0; r < R; r += row_step) {
        for (int s = s0; s < S; s += col_step) {
            const __global float *at[WPT_P];
            int inside[WPT_P];
#pragma unroll
            for (int m = 0; m < WPT_P; m++) {
                const int oh_strided = row[m] - DILATE_H(r);
                const int ow_strided = column[m] - DILATE_W(s);
                const int oh = oh_strided / stride_h;
                const int ow = ow_strided / stride_w;
                inside[m] = oh_strided >= 0 && ow_strided >= 0 && oh * stride_h == oh_strided &&
                            ow * stride_w == ow_strided && oh < OH && ow < OW;
                at[m] = grad_output + (inside[m] ? image_start[m] + oh * OW + ow : 0);
            }
            const __global float *weights = weight_t + (r * S + s) * K * C_padded + first_channel;
            floatv tap_sum[WPT_P][NV];
            zero_block(tap_sum);
            for (int k = 0; k < K; k++) {
                floatv w[NV];
#pragma unroll
                for (int v = 0; v < NV; v++)
                    w[v] = load_vector(0, weights + k * C_padded + v * VW);
#pragma unroll
                for (int m = 0; m < WPT_P; m++) {
                    const float g = inside[m] ? at[m][k * OHW] : 0.0f;
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        tap_sum[m][v] = fma((floatv)(g), w[v], tap_sum[m][v]);
                }
            }
            add_block(acc, tap_sum);
        }
    }
    store_block_at(acc, grad_input, grad_input, 0, first_channel, C, image, pixel, count,
                   HW STORE_STRIDE_ARG(C));
}
#endif

/* Phase b's float j of a row: from its row `in` where a tap reaches the
 * phase, else 0 for a store, and for an addition -0.0f, which leaves every
 * float as it was, a -0.0f included. */
#define PHASE_FLOAT(in, reached, j, accumulate) ((reached) ? (in)[j] : (accumulate) ? -0.0f : 0.0f)

/* A row of stride 2 (the common strided convolution's) from its two phase
 * rows: 4 floats of each woven into 8 adjacent ones a step, where a float
 * at a time with stores 2 apart had taken as long as the phases' forwards. */
void weave_two_phases(const __global float *in0, const int reached0, const __global float *in1,
                      const int reached1, __global float *out, const int W, const int accumulate) {
    const float4 fill = accumulate ? (float4)(-0.0f) : (float4)(0.0f);
    int j = 0;
    for (; 2 * j + 8 <= W; j += 4) {
        const float4 a = reached0 ? vload4(0, in0 + j) : fill;
        const float4 b = reached1 ? vload4(0, in1 + j) : fill;
        float8 woven = (float8)(a.s0, b.s0, a.s1, b.s1, a.s2, b.s2, a.s3, b.s3);
        if (accumulate)
            woven = vload8(0, out + 2 * j) + woven;
        vstore8(woven, 0, out + 2 * j);
    }
    for (; 2 * j < W; j++) {
        const float a = PHASE_FLOAT(in0, reached0, j, accumulate);
        out[2 * j] = accumulate ? out[2 * j] + a : a;
        if (2 * j + 1 < W) {
            const float b = PHASE_FLOAT(in1, reached1, j, accumulate);
            out[2 * j + 1] = accumulate ? out[2 * j + 1] + b : b;
        }
    }
}

/* Weaves the phases of a strided convolution's backward-data into
 * grad_input (planes x H x W). Phase (a, b) holds the gradient at the
 * positions (ih, iw) with ih % stride_h == a and iw % stride_w == b, as
 * (planes, rows_a, cols_b) with rows_a = ceil((H - a) / stride_h); the
 * phases lie one after the other, a then b, each computed apart as a
 * stride-1 forward (host/ops/conv2d.c, backward_data_phases). No tap reaches
 * a phase with (a + pad_top) % stride_h >= R (or the same across): it is
 * zero, and its part of `phases` is never written. With accumulate the
 * phases are added to what grad_input holds. One work-item per plane of
 * grad_input (one per row had spent as long on finding its row as on
 * weaving it). Launch global (planes), any local size. */
__kernel void conv2d_backward_data_interleave(const __global float *restrict phases,
                                       __global float *restrict grad_input, const int planes,
                                       const int H, const int W, const int R, const int S,
                                       const int stride_h, const int stride_w, const int pad_top,
                                       const int pad_left, const int accumulate) {
    const int plane = get_global_id(0);
    if (plane >= planes)
        return;
    __global float *image = grad_input + plane * H * W;
    int offset = 0; /* where phase (a, b) starts */
    for (int a = 0; a < stride_h && a < H; a++) {
        const int rows = (H - a + stride_h - 1) / stride_h;
        const int reached = (a + pad_top) % stride_h < R;
        if (stride_w == 2 && W >= 2) {
            const int cols0 = (W + 1) / 2;
            const __global float *in0 = phases + offset + plane * rows * cols0;
            const __global float *in1 =
                phases + offset + planes * rows * cols0 + plane * rows * (W / 2);
            const int reached0 = reached && pad_left % 2 < S;
            const int reached1 = reached && (1 + pad_left) % 2 < S;
            for (int t = 0; t < rows; t++)
                weave_two_phases(in0 + t * cols0, reached0, in1 + t * (W / 2), reached1,
                                 image + (a + t * stride_h) * W, W, accumulate);
            offset += planes * rows * W;
            continue;
        }
        for (int b = 0; b < stride_w && b < W; b++) {
            const int cols = (W - b + stride_w - 1) / stride_w;
            const __global float *in = phases + offset + plane * rows * cols;
            const int reached_b = reached && (b + pad_left) % stride_w < S;
            if (reached_b || !accumulate)
                for (int t = 0; t < rows; t++) {
                    __global float *out = image + (a + t * stride_h) * W + b;
                    for (int j = 0; j < cols; j++) {
                        const float v = PHASE_FLOAT(in + t * cols, reached_b, j, 0);
                        out[j * stride_w] = accumulate ? out[j * stride_w] + v : v;
                    }
                }
            offset += planes * rows * cols;
        }
    }
}

/* ---- backward-data of a 3x3 convolution with stride 2 and padding 1 --------------------
 * (residual networks' downsampling) in one launch. Input rows 2y and 2y + 1, and columns
 * alike, take their gradient from output rows y and y + 1 only:
 *
 *   (2y, 2x)          w11 g(y, x)
 *   (2y, 2x + 1)      w12 g(y, x) + w10 g(y, x + 1)
 *   (2y + 1, 2x)      w21 g(y, x) + w01 g(y + 1, x)
 *   (2y + 1, 2x + 1)  w22 g(y, x) + w20 g(y, x + 1) + w02 g(y + 1, x) + w00 g(y + 1, x + 1)
 *
 * with w_rs the filters' tap (r, s) and g the output's gradient, zero past
 * its last row and column. A work-item takes VW input channels and
 * BLOCKS_2X2 (2 or 4, -D) such 2x2 blocks side by side along a row: its
 * accumulators are 4 * BLOCKS_2X2 vectors, and per output channel it loads
 * the 9 taps' vectors and 2 * (BLOCKS_2X2 + 1) gradients for 9 *
 * BLOCKS_2X2 multiply-adds and writes grad_input directly, where the four
 * phases' forwards loaded a vector of filters for every 1 to 4 positions'
 * multiply-adds and then needed the interleave.
 *
 * It reads conv2d_backward_data_pad_channels_last's (N, copy_h, copy_w, K)
 * copy of the gradient, which has no padding before it (the copy's row y,
 * column x are the gradient's) and zeros after its last row and column
 * where the image's size is even. Rows and columns past the copy are read
 * as its last: they feed only positions past the image's last row or
 * column, which are not stored. weight_t is
 * conv2d_transpose_for_stride2's (C_padded / VW, K, 9, VW). With accumulate
 * the gradient is added to what grad_input holds. Launch global (C_padded /
 * VW, items), items = N * ceil(H / 2) * ceil(ceil(W / 2) / BLOCKS_2X2), any
 * local size. */
#ifndef BLOCKS_2X2
#define BLOCKS_2X2 4
#endif

/* With clang's shuffles (below), the channels' rows of one 2x2 block row
 * are woven in registers: rows[v] holds channel 2v's row in its low half
 * and channel 2v + 1's in its high half, from the even columns' and the
 * odd columns' sums (vectors over the channels). With 16 channels and
 * blocks of 4 (8 floats a row) 24 shuffles, where the lanes' way through
 * private memory takes 256 scalar loads (kernel 0.77 -> 0.66 ms at 16 ->
 * 32 channels from 28x28, batch 64, AVX-512); with 8 channels and blocks
 * of 2 (AVX2: 4 floats a row) 8 shuffles (the backward-data took 0.92
 * of its time at 16 -> 32 channels from 28x28, batch 128, Zen 3). */
#if defined(__clang__) && defined(__has_builtin)
/* WOVEN_ROW: a channel's row of a block row, in floats. */
#if __has_builtin(__builtin_shufflevector) && VW == 16 && BLOCKS_2X2 == 4
#define WOVEN_IN_REGISTERS 1
#define WOVEN_ROW 8
#elif __has_builtin(__builtin_shufflevector) && VW == 8 && BLOCKS_2X2 == 2
#define WOVEN_IN_REGISTERS 1
#define WOVEN_ROW 4
#endif
#endif
#if defined(WOVEN_IN_REGISTERS) && VW == 16
#define PAIRS(a, b, h)                                                                             \
    __builtin_shufflevector(a, b, 8 * h, 16 + 8 * h, 8 * h + 1, 17 + 8 * h, 8 * h + 2, 18 + 8 * h,  \
                            8 * h + 3, 19 + 8 * h, 8 * h + 4, 20 + 8 * h, 8 * h + 5, 21 + 8 * h,   \
                            8 * h + 6, 22 + 8 * h, 8 * h + 7, 23 + 8 * h)
#define QUADS(a, b, h)                                                                             \
    __builtin_shufflevector(a, b, 8 * h, 8 * h + 1, 16 + 8 * h, 17 + 8 * h, 8 * h + 2, 8 * h + 3,   \
                            18 + 8 * h, 19 + 8 * h, 8 * h + 4, 8 * h + 5, 20 + 8 * h, 21 + 8 * h,  \
                            8 * h + 6, 8 * h + 7, 22 + 8 * h, 23 + 8 * h)
#define ROWS(a, b, h)                                                                              \
    __builtin_shufflevector(a, b, 8 * h, 8 * h + 1, 8 * h + 2, 8 * h + 3, 16 + 8 * h, 17 + 8 * h,   \
                            18 + 8 * h, 19 + 8 * h, 8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7,    \
                            20 + 8 * h, 21 + 8 * h, 22 + 8 * h, 23 + 8 * h)
ALWAYS_INLINE void weave_rows(const float16 even[4], const float16 odd[4], float16 rows[8]) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        /* Channels 8h .. 8h + 7: each one's (even, odd) pair of each block. */
        float16 pairs[4];
#pragma unroll
        for (int m = 0; m < 4; m++)
            pairs[m] = h ? PAIRS(even[m], odd[m], 1) : PAIRS(even[m], odd[m], 0);
        /* Blocks 0-1 and 2-3 of channels 8h .. 8h + 3, then 8h + 4 .. 8h + 7. */
        const float16 q01a = QUADS(pairs[0], pairs[1], 0), q01b = QUADS(pairs[0], pairs[1], 1);
        const float16 q23a = QUADS(pairs[2], pairs[3], 0), q23b = QUADS(pairs[2], pairs[3], 1);
        rows[4 * h] = ROWS(q01a, q23a, 0);
        rows[4 * h + 1] = ROWS(q01a, q23a, 1);
        rows[4 * h + 2] = ROWS(q01b, q23b, 0);
        rows[4 * h + 3] = ROWS(q01b, q23b, 1);
    }
}
#elif defined(WOVEN_IN_REGISTERS)
ALWAYS_INLINE void weave_rows(const float8 even[2], const float8 odd[2], float8 rows[4]) {
    /* Each channel's (even, odd) pair of block 0, then of block 1. */
    const float8 p0 = __builtin_shufflevector(even[0], odd[0], 0, 8, 1, 9, 2, 10, 3, 11);
    const float8 p1 = __builtin_shufflevector(even[0], odd[0], 4, 12, 5, 13, 6, 14, 7, 15);
    const float8 q0 = __builtin_shufflevector(even[1], odd[1], 0, 8, 1, 9, 2, 10, 3, 11);
    const float8 q1 = __builtin_shufflevector(even[1], odd[1], 4, 12, 5, 13, 6, 14, 7, 15);
    rows[0] = __builtin_shufflevector(p0, q0, 0, 1, 8, 9, 2, 3, 10, 11);
    rows[1] = __builtin_shufflevector(p0, q0, 4, 5, 12, 13, 6, 7, 14, 15);
    rows[2] = __builtin_shufflevector(p1, q1, 0, 1, 8, 9, 2, 3, 10, 11);
    rows[3] = __builtin_shufflevector(p1, q1, 4, 5, 12, 13, 6, 7, 14, 15);
}
#endif

#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_backward_data_stride2)
__kernel void conv2d_backward_data_stride2(const __global float *restrict copy,
                                           const int copy_offset,
                                           const __global float *restrict weight_t,
                                           __global float *restrict grad_input, const int C,
                                           const int H, const int W, const int K,
                                           const int C_padded, const int copy_h, const int copy_w,
                                           const int items, const int accumulate) {
    const int c0 = get_global_id(0) * VW;
    const int item = get_global_id(1);
    if (c0 >= C || item >= items)
        return;
    const int block_rows = (H + 1) / 2;
    const int runs = ((W + 1) / 2 + BLOCKS_2X2 - 1) / BLOCKS_2X2;
    const int x0 = item % runs * BLOCKS_2X2;
    const int y = item / runs % block_rows;
    const int n = item / runs / block_rows;
    const __global float *image = copy + copy_offset + (size_t)n * copy_h * copy_w * K;
    const __global float *row0 = image + (size_t)min(y, copy_h - 1) * copy_w * K;
    const __global float *row1 = image + (size_t)min(y + 1, copy_h - 1) * copy_w * K;
    int column[BLOCKS_2X2 + 1];
#pragma unroll
    for (int m = 0; m <= BLOCKS_2X2; m++)
        column[m] = min(x0 + m, copy_w - 1) * K;
    /* (2y + 1, 2x + 1) sums its taps from row y in e11 and from row y + 1
     * in f11, added at the end: four multiply-adds in a row into one
     * accumulator made each output channel wait on their latency (AVX2, 2
     * blocks: 16 -> 32 channels from 28x28, batch 128, 3.0 -> 2.2 ms). */
    floatv e00[BLOCKS_2X2], e01[BLOCKS_2X2], e10[BLOCKS_2X2], e11[BLOCKS_2X2], f11[BLOCKS_2X2];
#pragma unroll
    for (int m = 0; m < BLOCKS_2X2; m++)
        e00[m] = e01[m] = e10[m] = e11[m] = f11[m] = (floatv)(0.0f);
    const __global float *w = weight_t + (size_t)c0 * K * 9;
    for (int k = 0; k < K; k++, w += 9 * VW) {
        const floatv w00 = load_vector(0, w), w01 = load_vector(1, w), w02 = load_vector(2, w),
                     w10 = load_vector(3, w), w11 = load_vector(4, w), w12 = load_vector(5, w),
                     w20 = load_vector(6, w), w21 = load_vector(7, w), w22 = load_vector(8, w);
        float g0[BLOCKS_2X2 + 1], g1[BLOCKS_2X2 + 1];
#pragma unroll
        for (int m = 0; m <= BLOCKS_2X2; m++) {
            g0[m] = row0[column[m] + k];
            g1[m] = row1[column[m] + k];
        }
#pragma unroll
        for (int m = 0; m < BLOCKS_2X2; m++) {
            e00[m] = fma(w11, g0[m], e00[m]);
            e01[m] = fma(w10, g0[m + 1], fma(w12, g0[m], e01[m]));
            e10[m] = fma(w01, g1[m], fma(w21, g0[m], e10[m]));
            e11[m] = fma(w20, g0[m + 1], fma(w22, g0[m], e11[m]));
            f11[m] = fma(w00, g1[m + 1], fma(w02, g1[m], f11[m]));
        }
    }
#pragma unroll
    for (int m = 0; m < BLOCKS_2X2; m++)
        e11[m] += f11[m];
    const int count = min(2 * BLOCKS_2X2, W - 2 * x0);
#ifdef WOVEN_IN_REGISTERS
    if (count == 2 * BLOCKS_2X2) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            floatv rows[VW / 2];
            if (i)
                weave_rows(e10, e11, rows);
            else
                weave_rows(e00, e01, rows);
#pragma unroll
            for (int j = 0; j < VW; j++)
                if (2 * y + i < H && c0 + j < C) {
                    __global float *at =
                        grad_input + (((size_t)n * C + c0 + j) * H + 2 * y + i) * W + 2 * x0;
                    VECTOR(float, WOVEN_ROW) value = j % 2 ? rows[j / 2].hi : rows[j / 2].lo;
                    if (accumulate)
                        value += VLOAD(WOVEN_ROW)(0, at);
                    VSTORE(WOVEN_ROW)(value, 0, at);
                }
        }
        return;
    }
#endif
    /* Rows 2y and 2y + 1 of each channel: the even columns' and the odd
     * columns' sums woven, float by float (a vector gathered from the
     * lanes in private memory waited on a store-forwarding stall: a third
     * of the kernel's time). */
    float lanes[4][BLOCKS_2X2][VW];
#pragma unroll
    for (int m = 0; m < BLOCKS_2X2; m++) {
        store_vector(e00[m], 0, lanes[0][m]);
        store_vector(e01[m], 0, lanes[1][m]);
        store_vector(e10[m], 0, lanes[2][m]);
        store_vector(e11[m], 0, lanes[3][m]);
    }
    for (int j = 0; j < VW && c0 + j < C; j++)
        for (int i = 0; i < 2 && 2 * y + i < H; i++) {
            __global float *at =
                grad_input + (((size_t)n * C + c0 + j) * H + 2 * y + i) * W + 2 * x0;
            /* Whole rows unrolled: one loop for all took 1.17-1.21 ms a call
             * instead of 1.00-1.06 (VW 8, 16 -> 32 channels from 28x28,
             * batch 64, Xeon). */
            if (count == 2 * BLOCKS_2X2 && !accumulate) {
#pragma unroll
                for (int t = 0; t < 2 * BLOCKS_2X2; t++)
                    at[t] = lanes[2 * i + t % 2][t / 2][j];
            } else {
                for (int t = 0; t < count; t++)
                    at[t] = (accumulate ? at[t] : 0.0f) + lanes[2 * i + t % 2][t / 2][j];
            }
        }
}
#endif

/* ---- backward weights ------------------------------------------------------------------
 *
 *   grad_weight[k, c, r, s] = sum over positions (n, oh, ow) of grad_output[n, k, oh, ow] *
 *                             input[n, c, oh*stride_h - pad_top + r, ow*stride_w - pad_left + s]
 *   grad_bias[k] = sum over positions of grad_output[n, k, oh, ow]
 *
 * Here the vectorised channels are the output channels k and WPT_P counts
 * taps (c, r, s) instead of positions: a work-item owns WPT_P consecutive
 * taps x VW*NV output channels and walks the positions of one slice. Per
 * position it loads NV vectors of the transposed gradient (made by
 * conv2d_transpose_grad_output, which also sums the bias gradient) and one
 * scalar input per tap from a zero-padded copy of the input (made by
 * conv2d_pad_input): without bounds tests the inner loop is nothing but
 * loads and fma, 1.6-2x as fast on PoCL as testing each tap for the padding.
 * The slices keep the float sums short and give the CPU enough work-items.
 * Slice z's partial sums go to partial + z * slice_stride as [C*R*S][K]
 * weights (per group) then [K] bias, and conv2d_sum_direct_slices adds the slices in a
 * fixed order, so the result does not depend on scheduling. With one slice
 * the kernels write grad_weight and grad_bias directly.
 */

/* Positions summed from zero before they join a running total: no float sum
 * runs over a whole slice, whose rounding error would grow with its length. */
#define TRANSPOSE_CHUNK 64
/* The same for conv2d_backward_weights_direct's runs of whole output rows. */
#define RUN_POSITIONS 32

/* a[j], channel j's 8 pixels -> pixel[i], pixel i's 8 channels: three
 * rounds of shuffles in place of 64 scalar loads. */
ALWAYS_INLINE void transpose_8x8(const float8 a[8], float8 pixel[8]) {
    const uint8 low_pairs = (uint8)(0, 8, 1, 9, 4, 12, 5, 13);
    const uint8 high_pairs = (uint8)(2, 10, 3, 11, 6, 14, 7, 15);
    const uint8 low_quads = (uint8)(0, 1, 8, 9, 4, 5, 12, 13);
    const uint8 high_quads = (uint8)(2, 3, 10, 11, 6, 7, 14, 15);
    const uint8 low_halves = (uint8)(0, 1, 2, 3, 8, 9, 10, 11);
    const uint8 high_halves = (uint8)(4, 5, 6, 7, 12, 13, 14, 15);
    float8 pairs[8], quads[8];
#pragma unroll
    for (int j = 0; j < 8; j += 2) {
        pairs[j] = shuffle2(a[j], a[j + 1], low_pairs);
        pairs[j + 1] = shuffle2(a[j], a[j + 1], high_pairs);
    }
    /* quads[i], i < 4: channels 0-3 of pixels i and i + 4; quads[i + 4]: channels 4-7. */
#pragma unroll
    for (int h = 0; h < 8; h += 4) {
        quads[h] = shuffle2(pairs[h], pairs[h + 2], low_quads);
        quads[h + 1] = shuffle2(pairs[h], pairs[h + 2], high_quads);
        quads[h + 2] = shuffle2(pairs[h + 1], pairs[h + 3], low_quads);
        quads[h + 3] = shuffle2(pairs[h + 1], pairs[h + 3], high_quads);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        pixel[i] = shuffle2(quads[i], quads[i + 4], low_halves);
        pixel[i + 4] = shuffle2(quads[i], quads[i + 4], high_halves);
    }
}

/* `count` positions of one image from pixel on, a row of VW lanes of grad_t
 * each (the first at column, rows `stride` apart; returns the row after):
 * lane j reads image[lane_plane[j] + pixel], or 0 from lane valid_lanes on,
 * stores it where stores, and, with sums, adds it to chunk_sum[j] (each
 * lane's floats in the order of the positions). */
__global float *transpose_run(const __global float *image, const int lane_plane[VW],
                              const int valid_lanes, int pixel, const int count,
                              __global float *column, const int stride, const int stores,
                              const int sums, float chunk_sum[VW]) {
    int i = 0;
#if VW % 8 == 0
    /* All lanes real: 8 positions of 8 lanes at a time through
     * transpose_8x8, vector loads and stores in place of 64 scalar ones
     * each (the scalar gather ran at 3.4 GB/s). */
    if (valid_lanes == VW)
        for (; i + 8 <= count; i += 8, pixel += 8, column += 8 * stride)
#pragma unroll
            for (int h = 0; h < VW; h += 8) {
                float8 a[8], position[8];
#pragma unroll
                for (int j = 0; j < 8; j++)
                    a[j] = vload8(0, image + lane_plane[h + j] + pixel);
                if (stores) {
                    transpose_8x8(a, position);
#pragma unroll
                    for (int m = 0; m < 8; m++)
                        vstore8(position[m], 0, column + m * stride + h);
                }
                if (sums)
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        float lanes[8];
                        vstore8(a[j], 0, lanes);
#pragma unroll
                        for (int m = 0; m < 8; m++)
                            chunk_sum[h + j] += lanes[m];
                    }
            }
#endif
    for (; i < count; i++, pixel++) {
#pragma unroll
        for (int j = 0; j < VW; j++) {
            const float g = j < valid_lanes ? image[lane_plane[j] + pixel] : 0.0f;
            if (stores)
                column[j] = g;
            if (sums)
                chunk_sum[j] += g;
        }
        column += stride;
    }
    return column;
}

/* grad_output (N, K, OH, OW) -> grad_t (N*OH*OW, K_padded) at grad_t + grad_t_offset,
 * zeros in the padding, where stores (grad_t is not touched otherwise); and,
 * if has_bias, slice z's sum of each channel k at bias_out[bias_offset + z *
 * slice_stride + k], the same floats either way. A work-item takes VW
 * channels of one slice. Launch: global (K_padded / VW, slices), any local
 * size. */
__kernel void conv2d_transpose_grad_output(const __global float *restrict grad_output,
                                           __global float *restrict grad_t, const int grad_t_offset,
                                           const int stores, __global float *restrict bias_out,
                                           const int bias_offset,
                                           const int has_bias, const int K, const int OHW,
                                           const int positions, const int slice_length,
                                           const int slice_stride,
                                           const int K_padded GROUPS_PARAM) {
    const int first_channel = get_global_id(0) * VW;
    const int slice = get_global_id(1);
    if (first_channel >= K_padded)
        return;
#ifdef GENERAL
    /* The third dimension is the group: its output channels, their columns
     * of grad_t (each position's row holds the groups' K_padded one after the
     * other) and their bias sums. */
    const int group = get_global_id(2);
    grad_output += group * K * OHW;
    grad_t += group * K_padded;
    bias_out += group * K;
#endif
    const int first_position = slice * slice_length;
    const int end_position = min(first_position + slice_length, positions);

    /* Per position each lane's float is read from its channel's plane and
     * stored in its own column of grad_t, and summed in a chain of its own:
     * building a vector from a private array of lanes had cost ten
     * instructions a float on PoCL. Lanes past the last channel store 0
     * (their planes, clamped to the last channel's, are never read). */
    int lane_plane[VW];
    float total[VW], chunk_sum[VW];
#pragma unroll
    for (int j = 0; j < VW; j++) {
        lane_plane[j] = min(first_channel + j, K - 1) * OHW;
        total[j] = 0.0f;
    }
    const int valid_lanes = K - first_channel;
    __global float *column =
        grad_t + grad_t_offset + first_channel + first_position * IMAGE_K_PADDED;
    int n = first_position / OHW;
    int pixel = first_position - n * OHW;
    const __global float *image = grad_output + n * IMAGE_K * OHW;
    for (int chunk = first_position; chunk < end_position; chunk += TRANSPOSE_CHUNK) {
        const int end = min(chunk + TRANSPOSE_CHUNK, end_position);
#pragma unroll
        for (int j = 0; j < VW; j++)
            chunk_sum[j] = 0.0f;
        /* Runs of positions within one image. */
        for (int position = chunk; position < end;) {
            const int run_end = min(end, position + OHW - pixel);
            /* Every lane real, as nearly always: no test per lane. */
            if (valid_lanes >= VW)
                column = transpose_run(image, lane_plane, VW, pixel, run_end - position, column,
                                       IMAGE_K_PADDED, stores, has_bias, chunk_sum);
            else
                column = transpose_run(image, lane_plane, valid_lanes, pixel, run_end - position,
                                       column, IMAGE_K_PADDED, stores, has_bias, chunk_sum);
            pixel += run_end - position;
            position = run_end;
            if (pixel == OHW) {
                pixel = 0;
                image += IMAGE_K * OHW;
            }
        }
#pragma unroll
        for (int j = 0; j < VW; j++)
            total[j] += chunk_sum[j];
    }
    if (has_bias)
        for (int j = 0; j < VW && j < valid_lanes; j++)
            bias_out[bias_offset + slice * slice_stride + first_channel + j] = total[j];
}

/* count floats from in to out (count >= 1): vectors of 8 or 4, the last one
 * ending at the row's end and overlapping the one before (written twice,
 * the same values), so that short rows (7x7 planes) take no float-by-float
 * tail. vload and vstore need no alignment beyond a float's. */
ALWAYS_INLINE void copy_row(const __global float *in, __global float *out, const int count) {
    if (count >= 8) {
        int i = 0;
        for (; i + 8 < count; i += 8)
            vstore8(vload8(0, in + i), 0, out + i);
        vstore8(vload8(0, in + count - 8), 0, out + count - 8);
    } else if (count >= 4) {
        vstore4(vload4(0, in), 0, out);
        vstore4(vload4(0, in + count - 4), 0, out + count - 4);
    } else {
        for (int i = 0; i < count; i++)
            out[i] = in[i];
    }
}

/* Zeros into count floats from out on. */
ALWAYS_INLINE void zero_floats(__global float *out, const int count) {
    int i = 0;
    for (; i + 8 <= count; i += 8)
        vstore8((float8)0.0f, 0, out + i);
    for (; i < count; i++)
        out[i] = 0.0f;
}

/* input (N, C, H, W) -> padded (N, C, Hp, Wp) at padded + padded_offset:
 * padded[n, c, ph, pw] = input[n, c, ph - pad_top, pw - pad_left], zero
 * outside the input. Hp = (OH-1)*stride_h + R and Wp = (OW-1)*stride_w + S
 * cover every window (rows and columns no window reaches are left out).
 * One work-item per plane (n, c), its rows one after the other: a
 * work-item per row spent more on finding its row than on copying it.
 * Launch global (N*C), any local size. */
__kernel void conv2d_pad_input(const __global float *restrict input,
                               __global float *restrict padded, const int padded_offset,
                               const int H, const int W, const int pad_top, const int pad_left,
                               const int Hp, const int Wp, const int planes) {
    const int plane = get_global_id(0);
    if (plane >= planes)
        return;
    __global float *out = padded + padded_offset + plane * Hp * Wp;
    /* Columns [first_inside, end_inside) of an input row's padded copy come from the input. */
    const int first_inside = min(pad_left, Wp);
    const int end_inside = clamp(W + pad_left, first_inside, Wp);
    const int inside = end_inside - first_inside;
    for (int ph = 0; ph < Hp; ph++, out += Wp) {
        const int ih = ph - pad_top;
        if (ih < 0 || ih >= H || inside == 0) {
            zero_floats(out, Wp);
            continue;
        }
        const __global float *in = input + (plane * H + ih) * W + first_inside - pad_left;
        for (int pw = 0; pw < first_inside; pw++)
            out[pw] = 0.0f;
        copy_row(in, out + first_inside, inside);
        for (int pw = end_inside; pw < Wp; pw++)
            out[pw] = 0.0f;
    }
}

/* The same copy as (N, Hp, Wp, C): padded[n, ph, pw, c] = input[n, c, ph -
 * pad_top, pw - pad_left]. One work-item per padded row, which it writes
 * from start to end in blocks of 8 channels: each block's pixels 8 at a
 * time through transpose_8x8, the last 8 overlapping the ones before
 * where 8 does not divide the row (written twice, the same values), so
 * that the row (a few KiB) stays in L1 while its blocks fill it; channels
 * past the last block of 8 one float at a time. (One work-item per image,
 * walking the image once per block of channels, had moved 8-13 GB/s,
 * reads and writes together.) The copy leaves out the last rows and
 * columns where no window reaches them. Launch global (N * Hp), any local
 * size. */
__kernel void conv2d_pad_input_channels_last(const __global float *restrict input,
                                             __global float *restrict padded,
                                             const int padded_offset, const int C, const int H,
                                             const int W, const int pad_top, const int pad_left,
                                             const int Hp, const int Wp, const int rows) {
    const int item = get_global_id(0); /* n * Hp + ph */
    if (item >= rows)
        return;
    const int ph = item % Hp, n = item / Hp, ih = ph - pad_top;
    __global float *row = padded + padded_offset + (size_t)item * Wp * C;
    if (ih < 0 || ih >= H) {
        zero_floats(row, Wp * C);
        return;
    }
    const int left = min(pad_left, Wp), end = max(min(pad_left + W, Wp), left);
    const int pixels = end - left, HW = H * W;
    zero_floats(row, left * C);
    zero_floats(row + end * C, (Wp - end) * C);
    const size_t first = ((size_t)n * C * H + ih) * W, input_floats = (size_t)(rows / Hp) * C * HW;
    const __global float *in = input + first;
    __global float *out = row + left * C;
    int c0 = 0;
    /* A row of fewer than 8 pixels reads 8 floats all the same, running into
     * the rows after it (whose floats it does not store), while those lie
     * inside the input. */
    for (; c0 + 8 <= C && (pixels >= 8 || first + (c0 + 7) * HW + 8 <= input_floats); c0 += 8)
        for (int x = 0; x < pixels; x += 8) {
            const int x0 = max(min(x, pixels - 8), 0);
            float8 a[8], pixel[8];
#pragma unroll
            for (int j = 0; j < 8; j++)
                a[j] = vload8(0, in + (c0 + j) * HW + x0);
            transpose_8x8(a, pixel);
#pragma unroll
            for (int i = 0; i < 8; i++)
                if (x0 + i < pixels)
                    vstore8(pixel[i], 0, out + (x0 + i) * C + c0);
        }
    for (int x = 0; x < pixels; x++)
        for (int c = c0; c < C; c++)
            out[x * C + c] = in[c * HW + x];
}

/* padded (at padded + padded_offset) is conv2d_pad_input's (N, C, Hp, Wp),
 * or the input itself (Hp = H, Wp = W) where no window reaches past its edges.
 * The gradient is channels-last: position (n, oh, ow) at grad_t +
 * grad_t_offset + ((n * grad_rows + oh) * grad_cols + ow) * grad_pixel, its
 * channels adjacent: conv2d_transpose_grad_output's (grad_rows = OH,
 * grad_cols = OW, grad_pixel = IMAGE_K_PADDED) or, for a convolution whose
 * K is a multiple of VW*NV, the zero-padded channels-last copy that its
 * backward-data read (grad_pixel = K, grad_t_offset at the first position
 * inside the padding; the host then sums a bias gradient apart).
 * Launch: global (K_padded / (VW*NV), ceil(C*R*S / WPT_P), slices), any local
 * size; slice z covers positions [z*slice_length, (z+1)*slice_length) where
 * slice_span is `positions`; otherwise the positions are spans of
 * slice_span, each cut into ceil(slice_span / slice_length) slices, the
 * last one shorter (Winograd's backward-weights, whose spans are parts). */
#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_backward_weights_direct)
__kernel void
conv2d_backward_weights_direct(const __global float *restrict padded, const int padded_offset,
                               const __global float *restrict grad_t, const int grad_t_offset,
                               __global float *restrict partial, const int slice_stride,
                               const int C, const int Hp, const int Wp, const int K, const int R,
                               const int S, const int stride_h, const int stride_w, const int OH,
                               const int OW, const int positions, const int slice_length,
                               const int slice_span, const int K_padded, const int grad_rows,
                               const int grad_cols,
                               const int grad_pixel,
                               const int tap_major GROUPS_PARAM DILATION_PARAMS) {
    const int first_channel = get_global_id(0) * CHANNELS_PER_ITEM;
    const int first_tap = get_global_id(1) * WPT_P;
#ifdef GENERAL
    /* The third dimension runs over groups x slices, slices fastest. This
     * work-item's group: its input channels, its output channels' columns of
     * grad_t and its filters' gradient. */
    const int slices = get_global_size(2) / groups;
    const int group = get_global_id(2) / slices;
    const int slice = get_global_id(2) - group * slices;
    padded += group * C * Hp * Wp;
    grad_t += group * K_padded;
    partial += group * K * C * R * S;
#else
    const int slice = get_global_id(2);
#endif
    const int RS = R * S;
    const int CRS = C * RS;
    if (first_channel >= K || first_tap >= CRS)
        return;
    const int plane = Hp * Wp;
    const int OHW = OH * OW;
    /* The positions in spans of slice_span (all of them, or one image each),
     * each cut into slices of slice_length: no slice straddles two spans. */
    const int span_slices = (slice_span + slice_length - 1) / slice_length;
    const int span = slice / span_slices;
    const int first_position = span * slice_span + (slice - span * span_slices) * slice_length;
    const int end_position =
        min(min(first_position + slice_length, (span + 1) * slice_span), positions);

    /* Per tap: its offset from a window's top-left corner. Taps past the end
     * repeat the last one; their sums are not stored. */
#ifdef TAP_ROWS
    /* Whole channels' taps: the offsets of a row of taps differ by build
     * constants, so the inner loop addresses them from one register per
     * row, where one per tap had left room for no more than 8 taps. */
    const int first_c = first_tap / RS;
    int row_offset[WPT_P / TAP_COLS];
#pragma unroll
    for (int i = 0; i < WPT_P / TAP_COLS; i++)
        row_offset[i] = min(first_c + i / TAP_ROWS, C - 1) * plane + i % TAP_ROWS * Wp;
#else
    int tap_offset[WPT_P];
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        const int tap = min(first_tap + m, CRS - 1);
        const int c = tap / RS;
        const int rs = tap - c * RS;
        const int r = rs / S;
        tap_offset[m] = c * plane + DILATE_H(r) * Wp + DILATE_W((rs - r * S));
    }
#endif

    floatv total[WPT_P][NV];
    zero_block(total);

    /* One output row (n, oh) of the slice at a time; the products of a run
     * of whole rows, at least RUN_POSITIONS positions, are summed from zero
     * before they join the total (add_block), as the chunks above: with
     * short rows a run per row would cost a total's worth of additions
     * every few positions. Only the first row may start inside; the row
     * after (n, OH - 1) is (n + 1, 0). Outputs of one pixel (dense layers)
     * take RUN_POSITIONS images as one row, the same runs as rows of one:
     * a row's bookkeeping per position had held the dense layer's weight
     * gradient to a tenth of the peak. */
    const int single = OHW == 1;
    const int row_length = single ? RUN_POSITIONS : OW;
    const int corner_step = single ? IMAGE_C * plane : stride_w;
    const int gradient_step = single ? grad_rows * grad_cols * grad_pixel : grad_pixel;
    int position = first_position;
    int n = position / OHW;
    int oh = (position - n * OHW) / OW;
    int first_ow = position - n * OHW - oh * OW;
    while (position < end_position) {
        const int run_start = position;
        floatv run_sum[WPT_P][NV];
        zero_block(run_sum);
        do {
            const int end_ow = min(row_length, first_ow + (end_position - position));
            /* The window's top-left corner in the padded input. */
            const __global float *corner = padded + padded_offset + n * IMAGE_C * plane +
                                           oh * stride_h * Wp + first_ow * stride_w;
            const int row = (n * grad_rows + oh) * grad_cols;
            const __global float *gradient =
                grad_t + grad_t_offset + (row + first_ow) * grad_pixel + first_channel;
            for (int ow = first_ow; ow < end_ow; ow++) {
                floatv g[NV];
#pragma unroll
                for (int v = 0; v < NV; v++)
                    g[v] = load_vector(0, gradient + v * VW);
#ifdef TAP_ROWS
#pragma unroll
                for (int i = 0; i < WPT_P / TAP_COLS; i++) {
                    const __global float *row = corner + row_offset[i];
#pragma unroll
                    for (int s = 0; s < TAP_COLS; s++)
#pragma unroll
                        for (int v = 0; v < NV; v++)
                            run_sum[i * TAP_COLS + s][v] =
                                fma((floatv)(row[s]), g[v], run_sum[i * TAP_COLS + s][v]);
                }
#else
#pragma unroll
                for (int m = 0; m < WPT_P; m++) {
                    const float x = corner[tap_offset[m]];
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        run_sum[m][v] = fma((floatv)(x), g[v], run_sum[m][v]);
                }
#endif
                gradient += gradient_step;
                corner += corner_step;
            }
            position += end_ow - first_ow;
            if (single) {
                n += end_ow - first_ow;
            } else if (++oh == OH) {
                oh = 0;
                n++;
            }
            first_ow = 0;
        } while (position < end_position && position - run_start < RUN_POSITIONS);
        add_block(total, run_sum);
    }

    __global float *slice_out = partial + slice * slice_stride;
    /* With tap_major a slice's sums tap by tap, each tap's K channels
     * adjacent: one vector store per accumulator, where the lanes' scatter
     * to taps CRS apart had taken 8-13 % of the kernel's time. Otherwise
     * each lane is one output channel, whose taps are CRS apart. (An
     * argument, not a build option: a layer's program serves one slice and
     * many.) */
    const int lane_step = tap_major ? 1 : CRS;
    for (int v = 0; v < NV; v++) {
        const int channel = first_channel + v * VW;
        for (int m = 0; m < WPT_P && first_tap + m < CRS; m++) {
            const int tap = first_tap + m;
            __global float *at = slice_out + (tap_major ? tap * K + channel : channel * CRS + tap);
            if (tap_major && channel + VW <= K) {
                store_vector(total[m][v], 0, at);
                continue;
            }
            float lanes[VW];
            store_vector(total[m][v], 0, lanes);
            for (int j = 0; j < VW && channel + j < K; j++)
                at[j * lane_step] = lanes[j];
        }
    }
}
#endif

/* The sum over slices of partial[slice * slice_stride + i], i < weights +
 * (has_bias ? K : 0): the weights' sums as conv2d_backward_weights_direct
 * writes them (tap_major: per group, [taps][group_k]), which go
 * to grad_weight as (K, C, R, S), then K bias sums, which go to grad_bias.
 * As conv2d_sum_slices (conv2d.cl): the slices are added in groups of
 * SLICE_GROUP, then the group sums, always in the same order.
 *
 * One work-item per row: a (group, tap)'s group_k sums, or the K bias sums
 * (row groups * taps), 8 at a time as the lanes of a vector (each lane adds
 * its own sum in the order above). One work-item per sum had spent its time
 * on the two divisions that find its weight's place. Launch global
 * (weights / group_k + (has_bias ? 1 : 0)), any local size. */
#define DIRECT_SLICE_GROUP 8

/* The sums of partial[slice * slice_stride + first + j], j < 8 (lanes < 8:
 * the first lanes of them, the rest 0), over the slices. */
float8 slices_sum(const __global float *partial, const int first, const int lanes,
                  const int slices, const int slice_stride) {
    float8 total = (float8)(0.0f);
    for (int group_first = 0; group_first < slices; group_first += DIRECT_SLICE_GROUP) {
        const int end = min(group_first + DIRECT_SLICE_GROUP, slices);
        float8 group = (float8)(0.0f);
        for (int slice = group_first; slice < end; slice++) {
            const __global float *at = partial + slice * slice_stride + first;
            if (lanes == 8) {
                group += vload8(0, at);
                continue;
            }
            float part[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
            for (int j = 0; j < lanes; j++)
                part[j] = at[j];
            group += vload8(0, part);
        }
        total += group;
    }
    return total;
}

__kernel void conv2d_sum_direct_slices(const __global float *restrict partial,
                                       __global float *restrict grad_weight,
                                       __global float *restrict grad_bias, const int weights,
                                       const int K, const int has_bias, const int slices,
                                       const int slice_stride, const int group_k,
                                       const int taps) {
    const int row = get_global_id(0);
    const int rows = weights / group_k;
    if (row > rows || (row == rows && !has_bias))
        return;
    const int bias_row = row == rows;
    const int length = bias_row ? K : group_k;
    const int first = row * group_k;
    /* Weight k of row (group, tap) goes to group * group_k * taps + k * taps + tap. */
    const int group = row / taps;
    __global float *out =
        bias_row ? grad_bias : grad_weight + group * group_k * taps + (row - group * taps);
    const int step = bias_row ? 1 : taps;
    for (int k = 0; k < length; k += 8) {
        const int lanes = min(8, length - k);
        float sums[8];
        vstore8(slices_sum(partial, first + k, lanes, slices, slice_stride), 0, sums);
        for (int j = 0; j < lanes; j++)
            out[(k + j) * step] = sums[j];
    }
}

/* Forward for stride 1 and few input channels (first layers: 1 or 3), where
 * vectors over channels would be mostly empty: a work-item computes one
 * output row of ROW_VECTORS * VW pixels for CHANNEL_BLOCK output channels,
 * and each tap is a vector load of consecutive pixels from a zero-padded
 * copy of the input (conv2d_pad_input's, with row pitch `pitch` covering
 * ROW_VECTORS * VW + S - 1 columns, so the loads need no bounds tests); the
 * tap rows that fall in the top and bottom padding (pad_top rows above the
 * input's H) are skipped. A backward-data's gradient is padded by up to
 * R - 1 rows, so that skips up to half of its taps.
 * -D ROW_VECTORS and CHANNEL_BLOCK; global (ceil(K / CHANNEL_BLOCK), N * OH).
 * Backward-data of a stride-1 convolution is this same kernel over the
 * gradient padded by R-1-pad, with the filters flipped and the channel roles
 * swapped (conv2d_flip_for_backward_data). */
#ifndef ROW_VECTORS
#define ROW_VECTORS 2
#endif

/* The first count (< VW) lanes of row_end to at, as store_positions' pieces:
 * a row of 28 outputs in two vectors of 16 had ended in 12 scalar stores per
 * channel. */
void store_row_end(const floatv row_end, const int count, __global float *at) {
    float column[VW];
    store_vector(row_end, 0, column);
    const int epilogue = 0; /* stores, not additions */
    int i = 0;
    STORE_PIECE(8, count)
    STORE_PIECE(4, count)
    STORE_PIECE(2, count)
    if (i < count)
        at[i] = column[i];
}
#ifndef CHANNEL_BLOCK
#define CHANNEL_BLOCK 6
#endif

#if !defined(ONE_KERNEL) || defined(ONLY_conv2d_forward_rows)
__kernel void
conv2d_forward_rows(const __global float *restrict padded_buffer, const int padded_offset,
                    const __global float *restrict weight_buffer, const int weight_offset,
                    const __global float *restrict bias, __global float *restrict output,
                    const int C, const int K, const int R, const int S, const int OH, const int OW,
                    const int Hp, const int pitch, const int rows, const int epilogue,
                    const int pad_top, const int H) {
    const int first_channel = get_global_id(0) * CHANNEL_BLOCK;
    const int row = get_global_id(1); /* n * OH + oh */
    if (first_channel >= K || row >= rows)
        return;
    const int n = row / OH;
    const int oh = row - n * OH;
    const __global float *padded = padded_buffer + padded_offset;
    const __global float *weight = weight_buffer + weight_offset;

    floatv acc[CHANNEL_BLOCK][ROW_VECTORS];
#pragma unroll
    for (int b = 0; b < CHANNEL_BLOCK; b++)
#pragma unroll
        for (int v = 0; v < ROW_VECTORS; v++)
            acc[b][v] = (floatv)(0.0f);

    /* Tap rows r whose padded row oh + r holds input (rows pad_top .. pad_top
     * + H - 1): the others are zeros, which add nothing. */
    const int first_r = max(0, pad_top - oh);
    const int end_r = min(R, pad_top + H - oh);
    /* A pointer per channel of the block, as conv2d_forward_direct's per
     * position (LLVM had vectorised the channels' offsets here too). */
    const __global float *filter[CHANNEL_BLOCK];
#pragma unroll
    for (int b = 0; b < CHANNEL_BLOCK; b++)
        filter[b] = weight + min(first_channel + b, K - 1) * C * R * S;
    for (int c = 0; c < C; c++) {
        for (int r = first_r; r < end_r; r++) {
            const __global float *line = padded + ((n * C + c) * Hp + oh + r) * pitch;
            for (int s = 0; s < S; s++) {
                floatv x[ROW_VECTORS];
#pragma unroll
                for (int v = 0; v < ROW_VECTORS; v++)
                    x[v] = load_vector(0, line + s + v * VW);
#pragma unroll
                for (int b = 0; b < CHANNEL_BLOCK; b++) {
                    const float w = filter[b][(c * R + r) * S + s];
#pragma unroll
                    for (int v = 0; v < ROW_VECTORS; v++)
                        acc[b][v] = fma((floatv)(w), x[v], acc[b][v]);
                }
            }
        }
    }

    for (int b = 0; b < CHANNEL_BLOCK; b++) {
        const int k = first_channel + b;
        if (k >= K)
            break;
        const float add = (epilogue & EPILOGUE_BIAS) ? bias[k] : 0.0f;
        __global float *out = output + ((n * K + k) * OH + oh) * OW;
        for (int v = 0; v < ROW_VECTORS; v++) {
            const int first_pixel = v * VW;
            const floatv value = finish_vector(acc[b][v], (floatv)(add), epilogue);
            if (first_pixel + VW <= OW)
                store_vector(value, 0, out + first_pixel);
            else if (first_pixel < OW)
                store_row_end(value, OW - first_pixel, out + first_pixel);
        }
    }
}
#endif

/* weight (K, C, R, S) -> flipped (C, K, R, S) with r and s reversed: the
 * filters of the convolution whose forward is this one's backward-data. */
__kernel void conv2d_flip_for_backward_data(const __global float *restrict weight,
                                            __global float *restrict flipped, const int C,
                                            const int K, const int R, const int S) {
    const int index = get_global_id(0); /* over K*C*R*S, in weight's order */
    if (index >= K * C * R * S)
        return;
    const int s = index % S;
    const int r = (index / S) % R;
    const int c = (index / (S * R)) % C;
    const int k = index / (S * R * C);
    flipped[((c * K + k) * R + (R - 1 - r)) * S + (S - 1 - s)] = weight[index];
}
