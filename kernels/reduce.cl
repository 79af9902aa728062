/* Sums over the outer and inner axes of a three-axis tensor, float32:
 *
 *   out[j] = sum over i < outer, k < inner of in[(i * columns + j) * inner + k]
 *
 * per-channel sums of an NCHW tensor (outer = N, columns = C, inner = H*W),
 * e.g. a convolution's bias gradient, or column sums of a matrix (inner = 1).
 *
 * One work-group of REDUCE_THREADS work-items per column j (a power of two,
 * -D, default below; launch with local size REDUCE_THREADS and global size
 * columns * REDUCE_THREADS). Each work-item sums its share of the column's
 * elements e = i * inner + k in increasing order with a compensated (Kahan)
 * sum, since a column can hold millions of terms; the work-items' sums are
 * then added in a fixed tree in local memory, so the result is the same on
 * every run. Which elements a work-item takes (-D REDUCE_CONTIGUOUS):
 *   0: e = t, t + REDUCE_THREADS, ... (work-item t), so that neighbouring
 *      work-items read neighbouring elements (GPUs);
 *   1: a contiguous run of ceil(outer * inner / REDUCE_THREADS) elements
 *      each, which a CPU reads as a stream, summed in blocks (see there).
 */
#ifndef REDUCE_THREADS
#define REDUCE_THREADS 128
#endif
#ifndef REDUCE_CONTIGUOUS
#define REDUCE_CONTIGUOUS 0
#endif

/* total += value with Kahan's compensation. */
void compensated_add(float *total, float *compensation, const float value) {
    const float term = value - *compensation;
    const float next = *total + term;
    *compensation = (next - *total) - term;
    *total = next;
}

__kernel __attribute__((reqd_work_group_size(REDUCE_THREADS, 1, 1))) void
reduce_channels(const __global float *restrict in, __global float *restrict out, const int outer,
                const int columns, const int inner) {
    __local float partial[REDUCE_THREADS];
    const int column = get_group_id(0);
    const int thread = get_local_id(0);
    const long count = (long)outer * inner;
    float sum = 0.0f;
    float compensation = 0.0f;
#if REDUCE_CONTIGUOUS
    /* The share, run by run within one i (whose inner elements are
     * adjacent): blocks of 64 elements as eight plain sums of eight lanes (a
     * Kahan chain per element would make every addition wait for four),
     * added in a fixed tree, each block's sum one Kahan term; the rest of a
     * run element by element. */
    const long share = (count + REDUCE_THREADS - 1) / REDUCE_THREADS;
    const long end = min((long)thread * share + share, count);
    for (long e = (long)thread * share; e < end;) {
        const int i = (int)(e / inner);
        const int k = (int)(e - (long)i * inner);
        const int run = (int)min((long)(inner - k), end - e);
        const __global float *row = in + ((long)i * columns + column) * inner + k;
        int j = 0;
        for (; j + 64 <= run; j += 64) {
            float8 lanes = vload8(0, row + j);
            for (int b = 1; b < 8; b++)
                lanes += vload8(b, row + j);
            const float4 fours = lanes.lo + lanes.hi;
            const float2 twos = fours.lo + fours.hi;
            compensated_add(&sum, &compensation, twos.lo + twos.hi);
        }
        for (; j < run; j++)
            compensated_add(&sum, &compensation, row[j]);
        e += run;
    }
#else
    /* Element e of the column is (i, k) = (e / inner, e % inner). Stepping e by
     * REDUCE_THREADS steps i and k by fixed amounts plus a carry, so the loop
     * needs no division. */
    const int step_outer = REDUCE_THREADS / inner;
    const int step_inner = REDUCE_THREADS - step_outer * inner;
    int i = thread / inner;
    int k = thread - i * inner;
    for (long e = thread; e < count; e += REDUCE_THREADS) {
        compensated_add(&sum, &compensation, in[(i * columns + column) * inner + k]);
        i += step_outer;
        k += step_inner;
        if (k >= inner) {
            k -= inner;
            i++;
        }
    }
#endif
    partial[thread] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);

    for (int width = REDUCE_THREADS / 2; width > 0; width /= 2) {
        if (thread < width)
            partial[thread] += partial[thread + width];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (thread == 0)
        out[column] = partial[0];
}
