/* Batch normalisation as plain loops in double, one channel after another
 * (so nothing needs allocating). */
#include "ops/batchnorm.h"

#include <math.h>

/* The offset of element (n, s) of channel c. */
static int64_t offset_of(int n, int c, int s, int channels, int spatial) {
    return ((int64_t)n * channels + c) * spatial + s;
}

/* The mean and biased variance (two passes) of channel c. */
static void channel_statistics(int batch, int channels, int spatial, int c, const float *x,
                               double *mean, double *var) {
    const double count = (double)batch * spatial;
    double sum = 0.0;
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++)
            sum += x[offset_of(n, c, s, channels, spatial)];
    *mean = sum / count;
    double squares = 0.0;
    for (int n = 0; n < batch; n++)
        for (int s = 0; s < spatial; s++) {
            const double d = x[offset_of(n, c, s, channels, spatial)] - *mean;
            squares += d * d;
        }
    *var = squares / count;
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

void batchnorm_forward_train_ref(int batch, int channels, int spatial, float eps, float momentum,
                                 const float *x, const float *weight, const float *bias,
                                 float *running_mean, float *running_var, float *y) {
    const double count = (double)batch * spatial;
    for (int c = 0; c < channels; c++) {
        double mean, var;
        channel_statistics(batch, channels, spatial, c, x, &mean, &var);
        normalise_channel(batch, channels, spatial, c, mean, 1.0 / sqrt(var + eps), weight[c],
                          bias[c], x, y);
        const double unbiased = var * count / (count - 1.0);
        running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
}

void batchnorm_forward_eval_ref(int batch, int channels, int spatial, float eps, const float *x,
                                const float *weight, const float *bias, const float *running_mean,
                                const float *running_var, float *y) {
    for (int c = 0; c < channels; c++)
        normalise_channel(batch, channels, spatial, c, running_mean[c],
                          1.0 / sqrt((double)running_var[c] + eps), weight[c], bias[c], x, y);
}

void batchnorm_backward_ref(int batch, int channels, int spatial, float eps, const float *x,
                            const float *grad_y, const float *weight, float *grad_x, int accumulate,
                            float *grad_weight, float *grad_bias) {
    const double count = (double)batch * spatial;
    for (int c = 0; c < channels; c++) {
        double mean, var;
        channel_statistics(batch, channels, spatial, c, x, &mean, &var);
        const double invstd = 1.0 / sqrt(var + eps);
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++) {
                const int64_t i = offset_of(n, c, s, channels, spatial);
                sum_dy += grad_y[i];
                sum_dy_xhat += grad_y[i] * ((x[i] - mean) * invstd);
            }
        grad_weight[c] = (float)sum_dy_xhat;
        grad_bias[c] = (float)sum_dy;
        if (!grad_x)
            continue;
        for (int n = 0; n < batch; n++)
            for (int s = 0; s < spatial; s++) {
                const int64_t i = offset_of(n, c, s, channels, spatial);
                const double x_hat = (x[i] - mean) * invstd;
                const double g =
                    weight[c] * invstd * (grad_y[i] - sum_dy / count - x_hat * sum_dy_xhat / count);
                grad_x[i] = (float)(accumulate ? (double)grad_x[i] + g : g);
            }
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
        grad_weight[c] = (float)(sum_dy_dev * invstd);
        grad_bias[c] = (float)sum_dy;
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
