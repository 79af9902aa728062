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
 * work-item), WPT_P (positions per work-item). No divisibility rules: any
 * shape works. Launch: global (ceil(channels / (VW*NV)), ceil(positions / WPT_P)),
 * any local size.
 */
#ifndef VW
#define VW 16
#endif
#ifndef NV
#define NV 1
#endif
#ifndef WPT_P
#define WPT_P 8
#endif

#define CHANNELS_PER_ITEM (VW * NV)

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

/* weight (K, C, R, S) -> transposed (R, S, C, K_padded), zeros in the padding:
 * forward reads output channels contiguously. */
__kernel void conv2d_transpose_for_forward(const __global float *restrict weight,
                                           __global float *restrict transposed, const int C,
                                           const int K, const int R, const int S,
                                           const int K_padded) {
    const int index = get_global_id(0); /* over R*S*C*K_padded */
    if (index >= R * S * C * K_padded)
        return;
    const int k = index % K_padded;
    const int c = (index / K_padded) % C;
    const int rs = index / (K_padded * C);
    transposed[index] = k < K ? weight[(k * C + c) * R * S + rs] : 0.0f;
}

/* weight (K, C, R, S) -> transposed (R, S, K, C_padded): backward-data reads
 * input channels contiguously. */
__kernel void conv2d_transpose_for_backward_data(const __global float *restrict weight,
                                                 __global float *restrict transposed,
                                                 const int C, const int K, const int R,
                                                 const int S, const int C_padded) {
    const int index = get_global_id(0); /* over R*S*K*C_padded */
    if (index >= R * S * K * C_padded)
        return;
    const int c = index % C_padded;
    const int k = (index / C_padded) % K;
    const int rs = index / (C_padded * K);
    transposed[index] = c < C ? weight[(k * C + c) * R * S + rs] : 0.0f;
}

/* Each tap's sum over channels is formed apart and then added to the total:
 * float rounding then grows with channels + taps rather than their product,
 * and the total is only touched once per tap, so it costs no registers in
 * the inner loop. */
void add_block(floatv acc[WPT_P][NV], floatv tap_sum[WPT_P][NV]) {
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            acc[m][v] += tap_sum[m][v];
}

/* Writes a work-item's accumulators to NCHW: each lane is one channel, and a
 * channel's positions are OHW apart, so the stores are scalar. */
void store_block(floatv acc[WPT_P][NV], __global float *output, const __global float *bias,
                 const int has_bias, const int first_channel, const int channels,
                 const int first_position, const int positions, const int plane) {
    for (int v = 0; v < NV; v++) {
        float lanes[VW];
        for (int m = 0; m < WPT_P; m++) {
            const int position = first_position + m;
            if (position >= positions)
                break;
            const int n = position / plane;
            const int pixel = position - n * plane;
#if VW == 1
            lanes[0] = acc[m][v];
#else
            store_vector(acc[m][v], 0, lanes);
#endif
            for (int j = 0; j < VW; j++) {
                const int channel = first_channel + v * VW + j;
                if (channel < channels)
                    output[(n * channels + channel) * plane + pixel] =
                        lanes[j] + (has_bias ? bias[channel] : 0.0f);
            }
        }
    }
}

/* output[n, k, oh, ow] = bias[k] + sum_{c, r, s} weight[k, c, r, s] * input[n, c, ih, iw]
 * with ih = oh*stride_h - pad_top + r, iw = ow*stride_w - pad_left + s.
 * weight_t is conv2d_transpose_for_forward's (R, S, C, K_padded). */
__kernel void conv2d_forward_direct(const __global float *restrict input,
                                    const __global float *restrict weight_t,
                                    const __global float *restrict bias,
                                    __global float *restrict output, const int C, const int H,
                                    const int W, const int K, const int R, const int S,
                                    const int stride_h, const int stride_w, const int pad_top,
                                    const int pad_left, const int OH, const int OW,
                                    const int positions, const int has_bias,
                                    const int K_padded) {
    const int first_channel = get_global_id(0) * CHANNELS_PER_ITEM;
    const int first_position = get_global_id(1) * WPT_P;
    if (first_channel >= K || first_position >= positions)
        return;
    const int HW = H * W;
    const int OHW = OH * OW;

    /* Per position: where its image starts and its window's top-left corner. */
    int image[WPT_P], top[WPT_P], left[WPT_P];
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        const int position = min(first_position + m, positions - 1);
        const int n = position / OHW;
        const int pixel = position - n * OHW;
        const int oh = pixel / OW;
        image[m] = n * C * HW;
        top[m] = oh * stride_h - pad_top;
        left[m] = (pixel - oh * OW) * stride_w - pad_left;
    }

    floatv acc[WPT_P][NV];
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            acc[m][v] = (floatv)(0.0f);

    for (int r = 0; r < R; r++) {
        for (int s = 0; s < S; s++) {
            /* Taps in the padding read a safe address and contribute zero. */
            int offset[WPT_P], inside[WPT_P];
#pragma unroll
            for (int m = 0; m < WPT_P; m++) {
                const int ih = top[m] + r;
                const int iw = left[m] + s;
                inside[m] = ih >= 0 && ih < H && iw >= 0 && iw < W;
                offset[m] = inside[m] ? image[m] + ih * W + iw : 0;
            }
            const __global float *weights = weight_t + (r * S + s) * C * K_padded + first_channel;
            floatv tap_sum[WPT_P][NV];
#pragma unroll
            for (int m = 0; m < WPT_P; m++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    tap_sum[m][v] = (floatv)(0.0f);
            for (int c = 0; c < C; c++) {
                floatv w[NV];
#pragma unroll
                for (int v = 0; v < NV; v++)
                    w[v] = load_vector(0, weights + c * K_padded + v * VW);
#pragma unroll
                for (int m = 0; m < WPT_P; m++) {
                    const float x = inside[m] ? input[offset[m] + c * HW] : 0.0f;
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        tap_sum[m][v] = fma((floatv)(x), w[v], tap_sum[m][v]);
                }
            }
            add_block(acc, tap_sum);
        }
    }
    store_block(acc, output, bias, has_bias, first_channel, K, first_position, positions, OHW);
}

/* grad_input[n, c, ih, iw] = sum over k, r, s of weight[k, c, r, s] * grad_output[n, k, oh, ow]
 * where ih = oh*stride_h - pad_top + r (and the same for w): a position takes a
 * tap only where (ih + pad_top - r) is a multiple of the stride and oh is in range.
 * weight_t is conv2d_transpose_for_backward_data's (R, S, K, C_padded). */
__kernel void conv2d_backward_data_direct(const __global float *restrict grad_output,
                                          const __global float *restrict weight_t,
                                          __global float *restrict grad_input, const int C,
                                          const int H, const int W, const int K, const int R,
                                          const int S, const int stride_h, const int stride_w,
                                          const int pad_top, const int pad_left, const int OH,
                                          const int OW, const int positions,
                                          const int C_padded) {
    const int first_channel = get_global_id(0) * CHANNELS_PER_ITEM;
    const int first_position = get_global_id(1) * WPT_P;
    if (first_channel >= C || first_position >= positions)
        return;
    const int HW = H * W;
    const int OHW = OH * OW;

    /* Per position: where its image's gradient starts, and its padded coordinates. */
    int image[WPT_P], row[WPT_P], column[WPT_P];
#pragma unroll
    for (int m = 0; m < WPT_P; m++) {
        const int position = min(first_position + m, positions - 1);
        const int n = position / HW;
        const int pixel = position - n * HW;
        const int ih = pixel / W;
        image[m] = n * K * OHW;
        row[m] = ih + pad_top;
        column[m] = pixel - ih * W + pad_left;
    }

    floatv acc[WPT_P][NV];
#pragma unroll
    for (int m = 0; m < WPT_P; m++)
#pragma unroll
        for (int v = 0; v < NV; v++)
            acc[m][v] = (floatv)(0.0f);

    for (int r = 0; r < R; r++) {
        for (int s = 0; s < S; s++) {
            int offset[WPT_P], inside[WPT_P];
#pragma unroll
            for (int m = 0; m < WPT_P; m++) {
                const int oh_strided = row[m] - r;
                const int ow_strided = column[m] - s;
                const int oh = oh_strided / stride_h;
                const int ow = ow_strided / stride_w;
                inside[m] = oh_strided >= 0 && ow_strided >= 0 && oh * stride_h == oh_strided &&
                            ow * stride_w == ow_strided && oh < OH && ow < OW;
                offset[m] = inside[m] ? image[m] + oh * OW + ow : 0;
            }
            const __global float *weights = weight_t + (r * S + s) * K * C_padded + first_channel;
            floatv tap_sum[WPT_P][NV];
#pragma unroll
            for (int m = 0; m < WPT_P; m++)
#pragma unroll
                for (int v = 0; v < NV; v++)
                    tap_sum[m][v] = (floatv)(0.0f);
            for (int k = 0; k < K; k++) {
                floatv w[NV];
#pragma unroll
                for (int v = 0; v < NV; v++)
                    w[v] = load_vector(0, weights + k * C_padded + v * VW);
#pragma unroll
                for (int m = 0; m < WPT_P; m++) {
                    const float g = inside[m] ? grad_output[offset[m] + k * OHW] : 0.0f;
#pragma unroll
                    for (int v = 0; v < NV; v++)
                        tap_sum[m][v] = fma((floatv)(g), w[v], tap_sum[m][v]);
                }
            }
            add_block(acc, tap_sum);
        }
    }
    store_block(acc, grad_input, grad_input, 0, first_channel, C, first_position, positions, HW);
}
