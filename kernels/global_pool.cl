/* Global average pooling, float32, NCHW: (batch, channels, H, W) -> (batch,
 * channels, 1, 1), the mean over each plane of spatial = H * W elements.
 */

/* -DGLOBAL_POOL_PLANES (default 8) consecutive planes per work-item
 * (launch over at least ceil(planes / GLOBAL_POOL_PLANES), any work-group
 * size): each plane's compensated (Kahan) sum in order, so the result is the
 * same on every run, then divided by spatial. The planes' sums advance side
 * by side: one plane's chain of dependent additions alone had left the
 * processor waiting on each (0.18 ms a call for 4,096 planes of 49). */
#ifndef GLOBAL_POOL_PLANES
#define GLOBAL_POOL_PLANES 8
#endif

__kernel void global_avgpool_forward(const __global float *restrict input,
                                     __global float *restrict output, const int planes,
                                     const int spatial) {
    const int first = get_global_id(0) * GLOBAL_POOL_PLANES;
    if (first >= planes)
        return;
    /* Past the last plane a lane repeats it and stores nothing. */
    int base[GLOBAL_POOL_PLANES];
    float sum[GLOBAL_POOL_PLANES], compensation[GLOBAL_POOL_PLANES];
#pragma unroll
    for (int p = 0; p < GLOBAL_POOL_PLANES; p++) {
        base[p] = min(first + p, planes - 1) * spatial;
        sum[p] = 0.0f;
        compensation[p] = 0.0f;
    }
    for (int s = 0; s < spatial; s++) {
#pragma unroll
        for (int p = 0; p < GLOBAL_POOL_PLANES; p++) {
            const float term = input[base[p] + s] - compensation[p];
            const float next = sum[p] + term;
            compensation[p] = (next - sum[p]) - term;
            sum[p] = next;
        }
    }
    for (int p = 0; p < GLOBAL_POOL_PLANES && first + p < planes; p++)
        output[first + p] = sum[p] / (float)spatial;
}

/* grad_input = grad_output / spatial spread over the plane, or added into
 * grad_input with accumulate = 1. One work-item per plane (launch over at
 * least `planes`, any work-group size): one per element had spent its time
 * dividing its index by spatial. */
__kernel void global_avgpool_backward(const __global float *restrict grad_output,
                                      __global float *restrict grad_input, const int planes,
                                      const int spatial, const int accumulate) {
    const int plane = get_global_id(0);
    if (plane >= planes)
        return;
    const float g = grad_output[plane] / (float)spatial;
    __global float *out = grad_input + plane * spatial;
    if (accumulate)
        for (int s = 0; s < spatial; s++)
            out[s] += g;
    else
        for (int s = 0; s < spatial; s++)
            out[s] = g;
}
