/* Inverted dropout, float32 (host/ops/dropout.h has the whole contract).
 *
 * One kernel serves forward (from = input, to = output) and backward (from =
 * grad_output, to = grad_input), since both multiply by the same mask and
 * scale:
 *
 *   active:   to[i] (+)= bits(seed, base + i) >> 32 >= threshold ? from[i] * scale : 0
 *   inactive: to[i] (+)= from[i]                   (evaluation, or rate 0)
 *
 * base = first_image * per_image, so element i draws its counter whatever
 * the work-item order. One work-item per element; launch over at least count
 * work-items, any work-group size.
 */

/* A multiply-add fused here but not in the reference would change the bits. */
#pragma OPENCL FP_CONTRACT OFF

/* splitmix64's output number counter + 1 from state seed: the same function
 * as dropout_bits in host/ref/dropout.c, written alike, so the two devices
 * draw the same mask. */
ulong dropout_bits(const ulong seed, const ulong counter) {
    ulong z = seed + (counter + 1) * 0x9e3779b97f4a7c15UL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
    return z ^ (z >> 31);
}

/* No restrict: to may be from (in place), and each work-item reads its
 * element before writing it. */
__kernel void dropout_apply(const __global float *from, __global float *to, const int count,
                            const ulong seed, const ulong base, const uint threshold,
                            const float scale, const int active, const int accumulate) {
    const int index = get_global_id(0);
    if (index >= count)
        return;
    float value = from[index];
    if (active) {
        const uint draw = (uint)(dropout_bits(seed, base + (ulong)index) >> 32);
        /* A product even where dropped, so NaN and inf give NaN as in PyTorch. */
        value = value * (draw >= threshold ? scale : 0.0f);
    }
    to[index] = accumulate ? to[index] + value : value;
}
