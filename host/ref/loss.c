/* Training losses as plain loops, computed in double (formulas in host/ops.h). */
#include "ops.h"

#include <math.h>

/* A label outside [0, classes) gives that row loss = NAN and a zero gradient
 * row, as the kernel does (kernels/loss.cl), instead of reading past the row. */
void softmax_cross_entropy_ref(int rows, int classes, const float *logits, const int32_t *labels,
                               float *loss, float *grad_logits) {
    for (int row = 0; row < rows; row++) {
        const float *z = logits + (size_t)row * classes;
        float *grad = grad_logits + (size_t)row * classes;
        const int32_t label = labels[row];
        if (label < 0 || label >= classes) {
            loss[row] = NAN;
            for (int j = 0; j < classes; j++)
                grad[j] = 0.0f;
            continue;
        }
        double largest = z[0];
        for (int j = 1; j < classes; j++)
            largest = max_keep_nan(largest, z[j]);
        double sum = 0.0;
        for (int j = 0; j < classes; j++)
            sum += exp(z[j] - largest);
        loss[row] = (float)((largest - z[label]) + log(sum));
        for (int j = 0; j < classes; j++) {
            const double probability = exp(z[j] - largest) / sum;
            const double target = j == label ? 1.0 : 0.0;
            grad[j] = (float)((probability - target) / rows);
        }
    }
}

void sigmoid_binary_cross_entropy_ref(int rows, const float *logits, const float *targets,
                                      float *loss, float *grad_logits) {
    for (int row = 0; row < rows; row++) {
        const double z = logits[row];
        const double t = targets[row];
        const double e = exp(-fabs(z)); /* never overflows */
        loss[row] = (float)(max_keep_nan(z, 0.0) - z * t + log1p(e));
        const double sigmoid = z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        grad_logits[row] = (float)((sigmoid - t) / rows);
    }
}

void mean_squared_error_ref(int rows, int columns, const float *outputs, const float *targets,
                            float *loss, float *grad_outputs) {
    const double element_count = (double)rows * columns;
    for (int row = 0; row < rows; row++) {
        const float *y = outputs + (size_t)row * columns;
        const float *t = targets + (size_t)row * columns;
        float *grad = grad_outputs + (size_t)row * columns;
        double sum = 0.0;
        for (int j = 0; j < columns; j++) {
            const double difference = (double)y[j] - (double)t[j];
            sum += difference * difference;
            grad[j] = (float)(2.0 * difference / element_count);
        }
        loss[row] = (float)(sum / columns);
    }
}
