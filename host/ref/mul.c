/* Element-wise product, broadcast per plane or not, as plain loops in double. */
#include "ops/mul.h"

void mul_forward_ref(int batch, int channels, int spatial, int broadcast, const float *a,
                     const float *b, float *output) {
    const int64_t planes = (int64_t)batch * channels;
    for (int64_t plane = 0; plane < planes; plane++)
        for (int s = 0; s < spatial; s++) {
            const int64_t i = plane * spatial + s;
            output[i] = (float)((double)a[i] * (double)b[broadcast ? plane : i]);
        }
}

/* grad = grad_output * other (other broadcast per plane or not), overwritten or added into. */
static void product_gradient(int64_t planes, int spatial, int broadcast, const float *grad_output,
                             const float *other, float *grad, int accumulate) {
    for (int64_t plane = 0; plane < planes; plane++)
        for (int s = 0; s < spatial; s++) {
            const int64_t i = plane * spatial + s;
            const double value = (double)grad_output[i] * (double)other[broadcast ? plane : i];
            grad[i] = (float)(accumulate ? (double)grad[i] + value : value);
        }
}

void mul_backward_ref(int batch, int channels, int spatial, int broadcast, const float *a,
                      const float *b, const float *grad_output, float *grad_a, int accumulate_a,
                      float *grad_b, int accumulate_b) {
    const int64_t planes = (int64_t)batch * channels;
    if (grad_a)
        product_gradient(planes, spatial, broadcast, grad_output, b, grad_a, accumulate_a);
    if (!grad_b)
        return;
    if (!broadcast) {
        product_gradient(planes, spatial, 0, grad_output, a, grad_b, accumulate_b);
        return;
    }
    for (int64_t plane = 0; plane < planes; plane++) {
        double sum = 0.0;
        for (int s = 0; s < spatial; s++) {
            const int64_t i = plane * spatial + s;
            sum += (double)grad_output[i] * (double)a[i];
        }
        grad_b[plane] = (float)(accumulate_b ? (double)grad_b[plane] + sum : sum);
    }
}
