/* Global average pooling, float32, NCHW: (batch, channels, H, W) -> (batch,
 * channels, 1, 1), the mean over each plane of spatial = H * W elements.
 */

/* One work-item per plane (batch * channels of them; launch over at least
 * `planes`, any work-group size): a compensated (Kahan) sum of the plane in
 * order, so the result is the same on every run, then divided by spatial. */
__kernel void global_avgpool_forward(const __global float *restrict input,
                                     __global float *restrict output, const int planes,
                                     const int spatial) {
    const int plane = get_global_id(0);
    if (plane >= planes)
        return;
    const int base = plane * spatial;
    float sum = 0.0f;
    float compensation = 0.0f;
    for (int s = 0; s < spatial; s++) {
        const float term = input[base + s] - compensation;
        const float next = sum + term;
        compensation = (next - sum) - term;
        sum = next;
    }
    output[plane] = sum / (float)spatial;
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
