/* Training losses: per-row loss values and the gradient with respect to the
 * input of the last non-linearity, already divided for the mean over the
 * batch (see host/ops.h). The host sums the per-row losses in double.
 *
 * The rows are images, so one work-item handles one row: a row is short
 * (class scores), or for the mean squared error it may be a whole image,
 * which the work-item walks in vectors. */

/* Softmax cross-entropy from logits (rows, classes) and int32 labels.
 *
 * A label outside [0, classes) cannot be reported to the host from here, and
 * reading logits[label] would run out of the row: such a row gets
 * loss = NAN and a zero gradient row instead, so the summed loss turns NaN
 * and the mistake shows. The training code validates labels before upload;
 * this only keeps a bad label from touching memory it does not own. */
__kernel void softmax_cross_entropy(const __global float *restrict logits,
                                    const __global int *restrict labels,
                                    __global float *restrict loss,
                                    __global float *restrict grad_logits, const int rows,
                                    const int classes) {
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    const __global float *z = logits + (size_t)row * classes;
    __global float *grad = grad_logits + (size_t)row * classes;
    const int label = labels[row];
    if (label < 0 || label >= classes) {
        loss[row] = NAN;
        for (int j = 0; j < classes; j++)
            grad[j] = 0.0f;
        return;
    }

    /* Subtracting the row maximum keeps every exp in (0, 1]. */
    float largest = z[0];
    for (int j = 1; j < classes; j++)
        if (z[j] > largest || isnan(z[j])) /* NaN propagates; fmax would drop it */
            largest = z[j];
    /* Compensated (Kahan) summation, as softmax.cl: with thousands of
     * classes a plain float sum loses digits the reference keeps. */
    float sum = 0.0f, compensation = 0.0f;
    for (int j = 0; j < classes; j++) {
        const float corrected = exp(z[j] - largest) - compensation;
        const float total = sum + corrected;
        compensation = (total - sum) - corrected;
        sum = total;
    }

    /* Both terms are >= 0, so adding them loses nothing to cancellation. */
    loss[row] = (largest - z[label]) + log(sum);

    const float inverse_sum = 1.0f / sum;
    const float batch = (float)rows;
    for (int j = 0; j < classes; j++) {
        const float probability = exp(z[j] - largest) * inverse_sum;
        const float target = j == label ? 1.0f : 0.0f;
        grad[j] = (probability - target) / batch;
    }
}

/* Binary cross-entropy on a sigmoid, from logits z and float targets t (one per row):
 * loss = max(z, 0) - z*t + log1p(exp(-|z|)) is log(1 + exp(z)) - z*t written so
 * that exp never overflows. */
__kernel void sigmoid_binary_cross_entropy(const __global float *restrict logits,
                                           const __global float *restrict targets,
                                           __global float *restrict loss,
                                           __global float *restrict grad_logits, const int rows) {
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    const float z = logits[row];
    const float t = targets[row];
    const float e = exp(-fabs(z)); /* in (0, 1] */
    loss[row] = (z <= 0.0f ? 0.0f : z) - z * t + log1p(e);
    /* sigmoid(z) = 1 / (1 + exp(-z)) for z >= 0 and exp(z) / (1 + exp(z)) below,
     * both written with e = exp(-|z|) so nothing overflows. */
    const float sigmoid = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    grad_logits[row] = (sigmoid - t) / (float)rows;
}

/* Mean squared error, one work-item per row, in one pass over it:
 * loss[row] = sum_j (y - t)^2 / columns and grad = (y - t) * scale, the
 * scale 2 / (rows * columns) given by the host. The sum runs in 8 lanes
 * (column j in lane j % 8, the last columns % 8 added after the lanes):
 * a float sum one column after another was bound by the adds' latency,
 * and with a pass of its own for the gradient it had taken 2.4 times as
 * long (32 rows of 50,176 columns). */
__kernel void mean_squared_error(const __global float *restrict outputs,
                                 const __global float *restrict targets,
                                 __global float *restrict loss,
                                 __global float *restrict grad_outputs, const int rows,
                                 const int columns, const float scale) {
    const int row = get_global_id(0);
    if (row >= rows)
        return;
    const __global float *y = outputs + (size_t)row * columns;
    const __global float *t = targets + (size_t)row * columns;
    __global float *grad = grad_outputs + (size_t)row * columns;
    float8 lanes = (float8)(0.0f);
    const int vectors = columns / 8;
    for (int i = 0; i < vectors; i++) {
        const float8 difference = vload8(i, y) - vload8(i, t);
        lanes += difference * difference;
        vstore8(difference * scale, i, grad);
    }
    float sum = ((lanes.s0 + lanes.s1) + (lanes.s2 + lanes.s3)) +
                ((lanes.s4 + lanes.s5) + (lanes.s6 + lanes.s7));
    for (int j = vectors * 8; j < columns; j++) {
        const float difference = y[j] - t[j];
        sum += difference * difference;
        grad[j] = difference * scale;
    }
    loss[row] = sum / (float)columns;
}
