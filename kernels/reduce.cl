/* Sums over the outer and inner axes of a three-axis tensor, float32:
 *
 *   out[j] = sum over i < outer, k < inner of in[(i * columns + j) * inner + k]
 *
 * per-channel sums of an NCHW tensor (outer = N, columns = C, inner = H*W),
 * e.g. a convolution's bias gradient, or column sums of a matrix (inner = 1).
 *
 * One work-group of REDUCE_THREADS work-items per column j (a power of two,
 * -D, default below; launch with local size REDUCE_THREADS and global size
 * columns * REDUCE_THREADS). Each work-item walks the column's elements
 * REDUCE_THREADS apart with a compensated (Kahan) sum, since a column can hold
 * millions of terms; the work-items' sums are then added in a fixed tree in
 * local memory, so the result is the same on every run.
 */
#ifndef REDUCE_THREADS
#define REDUCE_THREADS 128
#endif

__kernel __attribute__((reqd_work_group_size(REDUCE_THREADS, 1, 1))) void
reduce_channels(const __global float *restrict in, __global float *restrict out, const int outer,
                const int columns, const int inner) {
    __local float partial[REDUCE_THREADS];
    const int column = get_group_id(0);
    const int thread = get_local_id(0);

    /* Element e of the column is (i, k) = (e / inner, e % inner). Stepping e by
     * REDUCE_THREADS steps i and k by fixed amounts plus a carry, so the loop
     * needs no division. */
    const int step_outer = REDUCE_THREADS / inner;
    const int step_inner = REDUCE_THREADS - step_outer * inner;
    int i = thread / inner;
    int k = thread - i * inner;
    float sum = 0.0f;
    float compensation = 0.0f;
    while (i < outer) {
        const float term = in[(i * columns + column) * inner + k] - compensation;
        const float next = sum + term;
        compensation = (next - sum) - term;
        sum = next;
        i += step_outer;
        k += step_inner;
        if (k >= inner) {
            k -= inner;
            i++;
        }
    }
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
