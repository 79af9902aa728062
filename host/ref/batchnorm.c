/* Batch normalisation as plain loops in double, one channel after another
 * (so nothing needs allocating). */
#include "ops/batchnorm.h"

#include <math.h>

/* The offset of element (n, s) of channel c. */
static int64_t offset_of(int n, int c, int s, int channels, int spatial) {
    return ((int64_t)n * channels + c) * spatial + s;
}

/* The mean and the sum of squared deviations from it (two passes) of
 * channel c; batch may be 0 (both 0). */
static void channel_moments(int batch, int channels, int spatial, int c, const float *x,
                            double *mean, double *squares) {
    const double count = (double)batch * spatial;
    double sum = 0.0;
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++)
            sum += x[offset_of(n, c, s, channels, spatial)];
    *mean = count > 0.0 ? sum / count : 0.0;
    *squares = 0.0;
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++) {
            const double d = x[offset_of(n, c, s, channels, spatial)] - *mean;
            *squares += d * d;
        }
}

/* y = (x - mean) * invstd * weight + bias over channel c. */
static void normalise_channel(int batch, int channels, int spatial, int c, double mean,
                              double invstd, double weight, double bias, const float *x, float *y) {
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++) {
            const int64_t i = offset_of(n, c, s, channels, spatial);
            y[i] = (float)((x[i] - mean) * invstd * weight + bias);
        }
}

/* Train mode over channel c with the batch's mean, biased variance and
 * unbiased variance: y, and the running statistics moved towards them. */
static void train_channel(int batch, int channels, int spatial, int c, double mean, double var,
                          double unbiased, float eps, float momentum, const float *x,
                          const float *weight, const float *bias, float *running_mean,
                          float *running_var, float *y) {
    normalise_channel(batch, channels, spatial, c, mean, 1.0 / sqrt(var + eps), weight[c], bias[c],
                      x, y);
    running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
}

void batchnorm_forward_train_ref(int batch, int channels, int spatial, float eps, float momentum,
                                 const float *x, const float *weight, const float *bias,
                                 float *running_mean, float *running_var, float *y) {
    const double count = (double)batch * spatial;
    for (int c = 0; c < channels; c++) {
        double mean, squares;
        channel_moments(batch, channels, spatial, c, x, &mean, &squares);
        const double var = squares / count;
        train_channel(batch, channels, spatial, c, mean, var, var * count / (count - 1.0), eps,
                      momentum, x, weight, bias, running_mean, running_var, y);
    }
}

void batchnorm_forward_eval_ref(int batch, int channels, int spatial, float eps, const float *x,
                                const float *weight, const float *bias, const float *running_mean,
                                const float *running_var, float *y) {
    for (int c = 0; c < channels; c++)
        normalise_channel(batch, channels, spatial, c, running_mean[c],
                          1.0 / sqrt((double)running_var[c] + eps), weight[c], bias[c], x, y);
}

/* grad_x over channel c, with x_hat = (x - mean) * invstd and the sums of dy
 * and dy * x_hat over the `count` elements the statistics came from:
 * weight * invstd * (dy - sum_dy / count - x_hat * sum_dy_xhat / count),
 * written or added (accumulate). */
static void input_gradient_channel(int batch, int channels, int spatial, int c, double count,
                                   double mean, double invstd, double weight, double sum_dy,
                                   double sum_dy_xhat, const float *x, const float *grad_y,
                                   float *grad_x, int accumulate) {
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++) {
            const int64_t i = offset_of(n, c, s, channels, spatial);
            const double x_hat = (x[i] - mean) * invstd;
            const double g =
                weight * invstd * (grad_y[i] - sum_dy / count - x_hat * sum_dy_xhat / count);
            grad_x[i] = (float)(accumulate ? (double)grad_x[i] + g : g);
        }
}

/* sum(dy) and sum(dy * (x - mean) * scale) over channel c. */
static void gradient_sums(int batch, int channels, int spatial, int c, double mean, double scale,
                          const float *x, const float *grad_y, double *sum_dy, double *sum_dy_dev) {
    *sum_dy = 0.0;
    *sum_dy_dev = 0.0;
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++) {
            const int64_t i = offset_of(n, c, s, channels, spatial);
            *sum_dy += grad_y[i];
            *sum_dy_dev += grad_y[i] * ((x[i] - mean) * scale);
        }
}

void batchnorm_backward_ref(int batch, int channels, int spatial, float eps, const float *x,
                            const float *grad_y, const float *weight, float *grad_x, int accumulate,
                            float *grad_weight, float *grad_bias) {
    const double count = (double)batch * spatial;
    for (int c = 0; c < channels; c++) {
        double mean, squares, sum_dy, sum_dy_xhat;
        channel_moments(batch, channels, spatial, c, x, &mean, &squares);
        const double invstd = 1.0 / sqrt(squares / count + eps);
        gradient_sums(batch, channels, spatial, c, mean, invstd, x, grad_y, &sum_dy, &sum_dy_xhat);
        grad_weight[c] = (float)sum_dy_xhat;
        grad_bias[c] = (float)sum_dy;
        if (grad_x)
            input_gradient_channel(batch, channels, spatial, c, count, mean, invstd, weight[c],
                                   sum_dy, sum_dy_xhat, x, grad_y, grad_x, accumulate);
    }
}

/* ---- synchronised across ranks (layouts in ops/batchnorm.h) ---------------------------- */

void batchnorm_contribution_ref(int batch, int channels, int spatial, const float *x,
                                const float *grad_y, double *out) {
    const int fields = grad_y ? BATCHNORM_BACKWARD_FIELDS : BATCHNORM_FORWARD_FIELDS;
    out[0] = (double)batch * spatial;
    for (int c = 0; c < channels; c++) {
        double *channel = out + 1 + (int64_t)c * fields;
        channel_moments(batch, channels, spatial, c, x, &channel[0], &channel[1]);
        if (grad_y)
            gradient_sums(batch, channels, spatial, c, channel[0], 1.0, x, grad_y, &channel[2],
                          &channel[3]);
    }
}

void batchnorm_forward_apply_ref(int batch, int channels, int spatial, float eps, float momentum,
                                 const double *combined, const float *x, const float *weight,
                                 const float *bias, float *running_mean, float *running_var,
                                 float *y) {
    for (int c = 0; c < channels; c++) {
        const double *s = combined + 1 + (int64_t)c * BATCHNORM_FORWARD_COMBINED;
        train_channel(batch, channels, spatial, c, s[0], s[1], s[2], eps, momentum, x, weight, bias,
                      running_mean, running_var, y);
    }
}

void batchnorm_backward_apply_ref(int batch, int channels, int spatial, const double *combined,
                                  const float *x, const float *grad_y, const float *weight,
                                  float *grad_x, int accumulate, float *grad_weight,
                                  float *grad_bias) {
    for (int c = 0; c < channels; c++) {
        const double *s = combined + 1 + (int64_t)c * BATCHNORM_BACKWARD_COMBINED;
        grad_weight[c] = (float)s[4];
        grad_bias[c] = (float)s[5];
        if (grad_x)
            input_gradient_channel(batch, channels, spatial, c, combined[0], s[0], s[1], weight[c],
                                   s[2], s[3], x, grad_y, grad_x, accumulate);
    }
}

void batchnorm_backward_eval_ref(int batch, int channels, int spatial, float eps, const float *x,
                                 const float *grad_y, const float *weight,
                                 const float *running_mean, const float *running_var, float *grad_x,
                                 int accumulate, float *grad_weight, float *grad_bias) {
    for (int c = 0; c < channels; c++) {
        const double invstd = 1.0 / sqrt((double)running_var[c] + eps);
        double sum_dy = 0.0, sum_dy_dev = 0.0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++) {
                const int64_t i = offset_of(n, c, s, channels, spatial);
                sum_dy += grad_y[i];
                sum_dy_dev += grad_y[i] * ((double)x[i] - running_mean[c]);
            }
        if (grad_weight) {
            grad_weight[c] = (float)(sum_dy_dev * invstd);
            grad_bias[c] = (float)sum_dy;
        }
        if (!grad_x)
            continue;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++) {
                const int64_t i = offset_of(n, c, s, channels, spatial);
                const double g = grad_y[i] * (weight[c] * invstd);
                grad_x[i] = (float)(accumulate ? (double)grad_x[i] + g : g);
            }
    }
}

void batchnorm_fold_ref(int channels, int per_channel, float eps, const float *weight,
                        const float *bias, const float *bn_weight, const float *bn_bias,
                        const float *running_mean, const float *running_var, float *folded_weight,
                        float *folded_bias) {
    for (int c = 0; c < channels; c++) {
        const double scale = bn_weight[c] / sqrt((double)running_var[c] + eps);
        for (int k = 0; k < per_channel; k++) {
            const int64_t i = (int64_t)c * per_channel + k;
            folded_weight[i] = (float)(weight[i] * scale);
        }
        const double b = bias ? bias[c] : 0.0;
        folded_bias[c] = (float)((b - running_mean[c]) * scale + bn_bias[c]);
    }
}
