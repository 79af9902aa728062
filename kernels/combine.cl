/* Layers that combine tensors, float32, NCHW: element-wise sums (add),
 * element-wise products with an optional per-channel broadcast (mul), and
 * copies into and out of a channel slice (concat).
 *
 * Every backward kernel takes `accumulate`: 0 overwrites the gradient, 1 adds
 * into it (a tensor read by several layers collects their gradients).
 * One work-item per element unless said otherwise; launch over at least
 * `count` work-items, any work-group size. The sums take ITEM_SPAN (-D,
 * default 1) consecutive elements per work-item: launch ceil(count /
 * ITEM_SPAN) of them.
 */
#ifndef ITEM_SPAN
#define ITEM_SPAN 1
#endif

/* ---- add ---------------------------------------------------------------------------- */

/* output = a + b. No restrict: the host sums n inputs as ((in0 + in1) + in2) + ...
 * by passing the output as a, each work-item reading its element before writing it. */
__kernel void add_forward(const __global float *a, const __global float *b, __global float *output,
                          const int count, const int relu) {
    const size_t first = get_global_id(0) * ITEM_SPAN;
    const size_t end = min(first + ITEM_SPAN, (size_t)count);
    if (relu)
        for (size_t i = first; i < end; i++) {
            const float sum = a[i] + b[i];
            output[i] = sum <= 0.0f ? 0.0f : sum; /* activation.cl's relu, NaN passing */
        }
    else
        for (size_t i = first; i < end; i++)
            output[i] = a[i] + b[i];
}

/* The gradient an input of add takes: grad_output, or with relu (a relu
 * fused into the add, relu_y its output) 0 where relu_y <= 0, as
 * activation.cl's relu backward, a NaN output passing the gradient. */
float add_gradient(const __global float *grad_output, const __global float *relu_y,
                   const int relu, const size_t i) {
    return relu && relu_y[i] <= 0.0f ? 0.0f : grad_output[i];
}

/* grad_first = that gradient, or += it (accumulate_first); the same for
 * grad_second when has_second: two inputs' gradients from one read of
 * grad_output (and relu_y). The two must be distinct buffers. No restrict:
 * either may be grad_output itself, each work-item reading its element
 * before writing it. */
__kernel void add_backward(const __global float *grad_output, const __global float *relu_y,
                           const int relu, __global float *grad_first, const int accumulate_first,
                           __global float *grad_second, const int has_second,
                           const int accumulate_second, const int count) {
    const size_t first = get_global_id(0) * ITEM_SPAN;
    const size_t end = min(first + ITEM_SPAN, (size_t)count);
    for (size_t i = first; i < end; i++) {
        const float g = add_gradient(grad_output, relu_y, relu, i);
        grad_first[i] = accumulate_first ? grad_first[i] + g : g;
        if (has_second)
            grad_second[i] = accumulate_second ? grad_second[i] + g : g;
    }
}

/* ---- mul ------------------------------------------------------------------------------ */

/* output = a * b, where a is (planes, spatial) and b is the same or, with
 * broadcast, one value per plane (batch * channels, spatial = H * W). */
__kernel void mul_forward(const __global float *restrict a, const __global float *restrict b,
                          __global float *restrict output, const int count, const int spatial,
                          const int broadcast) {
    const int index = get_global_id(0);
    if (index >= count)
        return;
    const int other = broadcast ? index / spatial : index;
    output[index] = a[index] * b[other];
}

/* The gradient of one factor from the other: grad = grad_output * other, with
 * other broadcast per plane or not. Serves both grad_a (other = b) and, when b
 * is not broadcast, grad_b (other = a, broadcast 0). */
__kernel void mul_backward(const __global float *restrict grad_output,
                           const __global float *restrict other, __global float *restrict grad,
                           const int count, const int spatial, const int broadcast,
                           const int accumulate) {
    const int index = get_global_id(0);
    if (index >= count)
        return;
    const float value = grad_output[index] * other[broadcast ? index / spatial : index];
    grad[index] = accumulate ? grad[index] + value : value;
}

/* grad_b of a broadcast b: one work-item per plane sums grad_output * a over
 * its spatial elements in order, compensated (Kahan), so the result is the
 * same on every run. Launch over at least `planes` work-items. */
__kernel void mul_backward_broadcast(const __global float *restrict grad_output,
                                     const __global float *restrict a,
                                     __global float *restrict grad_b, const int planes,
                                     const int spatial, const int accumulate) {
    const int plane = get_global_id(0);
    if (plane >= planes)
        return;
    const int base = plane * spatial;
    float sum = 0.0f;
    float compensation = 0.0f;
    for (int s = 0; s < spatial; s++) {
        const float term = grad_output[base + s] * a[base + s] - compensation;
        const float next = sum + term;
        compensation = (next - sum) - term;
        sum = next;
    }
    grad_b[plane] = accumulate ? grad_b[plane] + sum : sum;
}

/* ---- concat ---------------------------------------------------------------------------- */

/* One input of a concatenation along channels: input (batch, in_channels,
 * spatial) goes to channels [channel_offset, channel_offset + in_channels) of
 * output (batch, out_channels, spatial). count = batch * in_channels * spatial,
 * one work-item per input element. */
__kernel void concat_forward(const __global float *restrict input, __global float *restrict output,
                             const int in_channels, const int out_channels,
                             const int channel_offset, const int spatial, const int count) {
    const int index = get_global_id(0);
    if (index >= count)
        return;
    const int image_size = in_channels * spatial;
    const int n = index / image_size;
    const int within = index - n * image_size; /* c * spatial + s */
    output[(n * out_channels + channel_offset) * spatial + within] = input[index];
}

/* The slice of grad_output back into grad_input (batch, in_channels, spatial). */
__kernel void concat_backward(const __global float *restrict grad_output,
                              __global float *restrict grad_input, const int in_channels,
                              const int out_channels, const int channel_offset, const int spatial,
                              const int count, const int accumulate) {
    const int index = get_global_id(0);
    if (index >= count)
        return;
    const int image_size = in_channels * spatial;
    const int n = index / image_size;
    const int within = index - n * image_size;
    const float g = grad_output[(n * out_channels + channel_offset) * spatial + within];
    grad_input[index] = accumulate ? grad_input[index] + g : g;
}
