#pragma OPENCL FP_CONTRACT OFF

/* Softmax over the last axis, one row per work-item: rows are short
 * (class scores), and there are as many rows as images. Subtracting the
 * row maximum keeps exp from overflowing. */
__kernel void softmax_forward(const __global float *restrict input,
                              __global float *restrict output, const int rows,
                              const int columns) {
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    const __global float *in = input + row * columns;
    __global float *out = output + row * columns;
    /* A NaN is the maximum, so that it reaches every output (fmax would drop it). */
    float largest = in[0];
    for (int j = 1; j < columns; j++)
        if (in[j] > largest || isnan(in[j]))
            largest = in[j];
    /* Compensated (Kahan) summation: a long row's float sum would otherwise
     * lose digits the reference, summing in double, keeps. */
    float sum = 0.0f, compensation = 0.0f;
    for (int j = 0; j < columns; j++) {
        const float e = exp(in[j] - largest);
        out[j] = e;
        const float corrected = e - compensation;
        const float total = sum + corrected;
        compensation = (total - sum) - corrected;
        sum = total;
    }
    for (int j = 0; j < columns; j++)
        out[j] = out[j] / sum;
}

/* From the forward output y, one row per work-item. In place (grad_input ==
 * grad_output) works: the row's dot product is taken before any write. */
__kernel void softmax_backward(const __global float *restrict output,
                               const __global float *grad_output, __global float *grad_input,
                               const int rows, const int columns) {
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    const __global float *y = output + row * columns;
    const __global float *g = grad_output + row * columns;
    __global float *result = grad_input + row * columns;
    float dot = 0.0f;
    for (int j = 0; j < columns; j++)
        dot += g[j] * y[j];
    for (int j = 0; j < columns; j++)
        result[j] = y[j] * (g[j] - dot);
}
