/* The device's own limits, for clcnn bench: its floating-point peak
 * (fma_peak: nothing but independent multiply-adds) and its streaming
 * bandwidth (stream_scale: one read and one write a float).
 *
 * -D parameters:
 *   PEAK_VW      floats per vector (1, 2, 4, 8 or 16; default 8): the
 *                device's preferred width, so a CPU runs them as SIMD
 *   PEAK_CHAINS  independent fma chains per work-item (default 8): enough
 *                to cover the latency of an fma on every unit in flight
 *
 * Work-item i runs `rounds` rounds of PEAK_CHAINS vector fmas,
 * x = x * a + b, 2 * PEAK_VW * PEAK_CHAINS * rounds FLOP in all, and writes
 * the sum of its chains' lanes to out[i] so that none of the work can be
 * dropped. With a just below 1 and b small the values stay finite and
 * normal for any number of rounds. Launch: any global and local size.
 *
 * stream_scale: out[i] = a * in[i] over vectors of PEAK_VW floats, work-item
 * i the i-th vector, so that neighbouring work-items read neighbouring
 * memory on a GPU and a CPU runs whole vectors. Launch: global size the
 * vectors' count, any local size. */
#ifndef PEAK_VW
#define PEAK_VW 8
#endif
#ifndef PEAK_CHAINS
#define PEAK_CHAINS 8
#endif

#define PEAK_GLUE(a, b) a##b
#define PEAK_VECTOR(type, width) PEAK_GLUE(type, width)
#if PEAK_VW == 1
typedef float peak_vector;
#else
typedef PEAK_VECTOR(float, PEAK_VW) peak_vector;
#endif

__kernel void fma_peak(__global float *restrict out, const int rounds, const float a,
                       const float b) {
    const int item = get_global_id(0);
    peak_vector x[PEAK_CHAINS];
#pragma unroll
    for (int c = 0; c < PEAK_CHAINS; c++)
        x[c] = (peak_vector)((float)(item + c) * 1e-3f);
    for (int r = 0; r < rounds; r++) {
#pragma unroll
        for (int c = 0; c < PEAK_CHAINS; c++)
            x[c] = fma(x[c], (peak_vector)(a), (peak_vector)(b));
    }
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < PEAK_CHAINS; c++) {
#if PEAK_VW == 1
        sum += x[c];
#else
        float lanes[PEAK_VW];
        PEAK_VECTOR(vstore, PEAK_VW)(x[c], 0, lanes);
        for (int l = 0; l < PEAK_VW; l++)
            sum += lanes[l];
#endif
    }
    out[item] = sum;
}

__kernel void stream_scale(const __global peak_vector *restrict in,
                           __global peak_vector *restrict out, const float a) {
    const int i = get_global_id(0);
    out[i] = in[i] * a;
}
