/* Softmax forward and backward, the kernels and the reference, against a
 * float64 softmax written here:
 *
 * - forward on rows far beyond exp's float range (around +1e4, -1e4, and
 *   spanning both), so that a softmax without the max subtracted gives Inf
 *   or 0/0 and fails; every probability, down to 1e-26, is checked
 *   relatively. The rows are offset + k/8 with |k/8| <= 60 so that every
 *   x - max is exact in float and the only rounding left is exp's and the
 *   sum's: a few ulps, held to 1e-5 relative;
 * - backward (grad_input = y * (g - sum_j g_j y_j)) on random shapes against
 *   the float64 formula, from the same float y and g, each value's error
 *   relative to its magnitude y_j (|g_j| + sum_i |g_i| y_i);
 * - backward against central differences of the float64 softmax of the
 *   loss L(x) = sum_i w_i softmax(x)_i, so the formula itself is checked.
 * Outputs are prefilled with NaN, so a value not written fails. */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FORWARD_SHAPES = 120, BACKWARD_SHAPES = 120, DIFFERENCE_ROWS = 40 };

/* The float64 softmax of one row. */
static void softmax_row64(int columns, const double *x, double *y) {
    double max = x[0];
    for (int j = 1; j < columns; j++)
        max = x[j] > max ? x[j] : max;
    double sum = 0;
    for (int j = 0; j < columns; j++) {
        y[j] = exp(x[j] - max);
        sum += y[j];
    }
    for (int j = 0; j < columns; j++)
        y[j] /= sum;
}

static int upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    return CHECK_OK(ctx, buffer_create(ctx, sizeof(float) * (size_t)count, out)) &&
           CHECK_OK(ctx, buffer_write(ctx, *out, 0, sizeof(float) * (size_t)count, values));
}

static int download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    return CHECK_OK(ctx, buffer_read(ctx, buffer, 0, sizeof(float) * (size_t)count, values));
}

/* Worst |a - e| / |e| over values whose e is at least 1e-30 (and every
 * value must be finite and non-negative where e is); Inf on a NaN. */
static double worst_relative(const float *a, const double *e, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || a[i] < 0)
            return INFINITY;
        double error = e[i] >= 1e-30 ? fabs(a[i] - e[i]) / e[i] : fabs(a[i] - e[i]) / 1e-30;
        worst = error > worst ? error : worst;
    }
    return worst;
}

/* Rows of offset + k/8, |k| <= 480, offsets around +1e4, -1e4, 0, or a row
 * spanning from -1e4 to 1e4 (whose probabilities are then 0 but for the
 * largest: still exact). */
static void fill_far_row(test_rng *rng, float *row, int columns, int kind) {
    const float offsets[3] = {10000.0f, -10000.0f, 0.0f};
    for (int j = 0; j < columns; j++) {
        const float step = (float)test_rand_int(rng, -480, 0) / 8.0f;
        row[j] = kind < 3 ? offsets[kind] + step
                          : (test_rand_int(rng, 0, 1) ? 10000.0f : -10000.0f) + step;
    }
}

static void check_forward(clcnn_context *ctx) {
    test_rng rng = {7001};
    double worst_kernel = 0, worst_reference = 0;
    int smallest_exponent = 0;
    const int shapes = test_scaled_count(FORWARD_SHAPES);
    for (int index = 0; index < shapes; index++) {
        const int rows = test_rand_int(&rng, 1, 12), columns = test_rand_int(&rng, 1, 70);
        const int64_t n = (int64_t)rows * columns;
        float *x = test_floats(n), *kernel = test_floats(n), *reference = test_floats(n);
        double *x64 = malloc(sizeof(double) * (size_t)n), *y64 = malloc(sizeof(double) * (size_t)n);
        for (int r = 0; r < rows; r++)
            fill_far_row(&rng, x + (int64_t)r * columns, columns, (index + r) % 4);
        for (int64_t i = 0; i < n; i++) {
            x64[i] = x[i];
            kernel[i] = reference[i] = NAN;
        }
        for (int r = 0; r < rows; r++)
            softmax_row64(columns, x64 + (int64_t)r * columns, y64 + (int64_t)r * columns);
        for (int64_t i = 0; i < n; i++)
            if (y64[i] >= 1e-30 && y64[i] < 1.0)
                smallest_exponent = (int)floor(log10(y64[i])) < smallest_exponent
                                        ? (int)floor(log10(y64[i]))
                                        : smallest_exponent;
        softmax_forward_ref(rows, columns, x, reference);
        cl_mem in = NULL, out = NULL;
        if (upload(ctx, x, n, &in) && upload(ctx, kernel, n, &out) &&
            CHECK_OK(ctx, softmax_forward(ctx, rows, columns, in, out)))
            download(ctx, out, kernel, n);
        buffer_release(&in);
        buffer_release(&out);
        const double e_kernel = worst_relative(kernel, y64, n);
        const double e_reference = worst_relative(reference, y64, n);
        if (!CHECK(e_kernel <= 1e-5) || !CHECK(e_reference <= 1e-5))
            printf("softmax forward %d (%d x %d, rows near %s): kernel error %.3g, reference "
                   "%.3g\n",
                   index, rows, columns, index % 4 == 0 ? "+1e4" : "-1e4", e_kernel, e_reference);
        worst_kernel = e_kernel > worst_kernel ? e_kernel : worst_kernel;
        worst_reference = e_reference > worst_reference ? e_reference : worst_reference;
        free(x);
        free(kernel);
        free(reference);
        free(x64);
        free(y64);
    }
    /* The rows did reach probabilities far below exp's float range of -80. */
    CHECK(smallest_exponent <= -25);
    printf("softmax forward, inputs to +-1e4: %d shapes, worst relative error kernel %.3g, "
           "reference %.3g (probabilities down to 1e%d)\n",
           shapes, worst_kernel, worst_reference, smallest_exponent);
}

/* grad_input from y and g in float64, and the magnitude of each value: what
 * it is made of taken absolutely, y_j (|g_j| + sum_i |g_i| y_i). A float
 * computation is accurate to some ulps of that, not of a result that
 * cancels to almost nothing. */
static void backward64(int64_t rows, int columns, const float *y, const float *g, double *out,
                       double *magnitude) {
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * columns, *gr = g + r * columns;
        double dot = 0, absolute = 0;
        for (int j = 0; j < columns; j++) {
            dot += (double)gr[j] * yr[j];
            absolute += fabs((double)gr[j]) * yr[j];
        }
        for (int j = 0; j < columns; j++) {
            out[r * columns + j] = (double)yr[j] * ((double)gr[j] - dot);
            magnitude[r * columns + j] = (double)yr[j] * (fabs((double)gr[j]) + absolute);
        }
    }
}

/* Worst |a - e| / max(|e|, floor). */
static double worst_error(const float *a, const double *e, int64_t n, double floor) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double error = fabs(a[i] - e[i]) / fmax(fabs(e[i]), floor);
        worst = error > worst ? error : worst;
    }
    return worst;
}

static void check_backward(clcnn_context *ctx) {
    test_rng rng = {7002};
    double worst_kernel = 0, worst_reference = 0;
    const int shapes = test_scaled_count(BACKWARD_SHAPES);
    for (int index = 0; index < shapes; index++) {
        const int rows = test_rand_int(&rng, 1, 40);
        const int columns =
            test_rand_int(&rng, 0, 3) ? test_rand_int(&rng, 1, 12) : test_rand_int(&rng, 13, 300);
        const int64_t n = (int64_t)rows * columns;
        float *x = test_floats(n), *y = test_floats(n), *g = test_floats(n),
              *kernel = test_floats(n), *reference = test_floats(n);
        double *expected = malloc(sizeof(double) * (size_t)n);
        double *magnitude = malloc(sizeof(double) * (size_t)n);
        const float spread = index % 3 == 0 ? 30.0f : 4.0f;
        for (int64_t i = 0; i < n; i++) {
            x[i] = test_rand_float(&rng, -spread, spread);
            g[i] = test_rand_float(&rng, -1.0f, 1.0f);
            kernel[i] = reference[i] = NAN;
        }
        softmax_forward_ref(rows, columns, x, y);
        backward64(rows, columns, y, g, expected, magnitude);
        softmax_backward_ref(rows, columns, y, g, reference);
        cl_mem yb = NULL, gb = NULL, out = NULL;
        if (upload(ctx, y, n, &yb) && upload(ctx, g, n, &gb) && upload(ctx, kernel, n, &out) &&
            CHECK_OK(ctx, softmax_backward(ctx, rows, columns, yb, gb, out)))
            download(ctx, out, kernel, n);
        buffer_release(&yb);
        buffer_release(&gb);
        buffer_release(&out);
        const double e_kernel = worst_scaled_error(kernel, expected, magnitude, n);
        const double e_reference = worst_scaled_error(reference, expected, magnitude, n);
        if (!CHECK(e_kernel <= 1e-5) || !CHECK(e_reference <= 1e-5))
            printf("softmax backward %d (%d x %d): kernel error %.3g, reference %.3g\n", index,
                   rows, columns, e_kernel, e_reference);
        worst_kernel = e_kernel > worst_kernel ? e_kernel : worst_kernel;
        worst_reference = e_reference > worst_reference ? e_reference : worst_reference;
        free(x);
        free(y);
        free(g);
        free(kernel);
        free(reference);
        free(expected);
        free(magnitude);
    }
    printf("softmax backward: %d shapes, worst error kernel %.3g, reference %.3g\n", shapes,
           worst_kernel, worst_reference);
}

/* d/dx_j of L(x) = sum_i w_i softmax(x)_i by central differences in float64. */
static double difference(int columns, const double *x, const float *w, int j, double h) {
    double *xp = malloc(sizeof(double) * (size_t)columns), *y = malloc(sizeof(double) * columns);
    double loss[2];
    for (int side = 0; side < 2; side++) {
        memcpy(xp, x, sizeof(double) * (size_t)columns);
        xp[j] += side ? -h : h;
        softmax_row64(columns, xp, y);
        loss[side] = 0;
        for (int i = 0; i < columns; i++)
            loss[side] += w[i] * y[i];
    }
    free(xp);
    free(y);
    return (loss[0] - loss[1]) / (2 * h);
}

static void check_finite_differences(clcnn_context *ctx) {
    test_rng rng = {7003};
    double worst_kernel = 0, worst_reference = 0;
    const int rows = test_scaled_count(DIFFERENCE_ROWS);
    for (int r = 0; r < rows; r++) {
        const int columns = test_rand_int(&rng, 1, 20);
        float *x = test_floats(columns), *y = test_floats(columns), *w = test_floats(columns),
              *kernel = test_floats(columns), *reference = test_floats(columns);
        double *x64 = malloc(sizeof(double) * (size_t)columns);
        double *expected = malloc(sizeof(double) * (size_t)columns);
        for (int j = 0; j < columns; j++) {
            x[j] = test_rand_float(&rng, -3.0f, 3.0f);
            w[j] = test_rand_float(&rng, -1.0f, 1.0f);
            x64[j] = x[j];
            kernel[j] = NAN;
        }
        softmax_forward_ref(1, columns, x, y);
        for (int j = 0; j < columns; j++)
            expected[j] = difference(columns, x64, w, j, 1e-5);
        softmax_backward_ref(1, columns, y, w, reference);
        cl_mem yb = NULL, wb = NULL, out = NULL;
        if (upload(ctx, y, columns, &yb) && upload(ctx, w, columns, &wb) &&
            upload(ctx, kernel, columns, &out) &&
            CHECK_OK(ctx, softmax_backward(ctx, 1, columns, yb, wb, out)))
            download(ctx, out, kernel, columns);
        buffer_release(&yb);
        buffer_release(&wb);
        buffer_release(&out);
        /* Central differences in double with h = 1e-5 are good to ~1e-9;
         * the float y to ~1e-7 relative. */
        const double e_kernel = worst_error(kernel, expected, columns, 1e-2);
        const double e_reference = worst_error(reference, expected, columns, 1e-2);
        if (!CHECK(e_kernel <= 1e-5) || !CHECK(e_reference <= 1e-5))
            printf("softmax finite differences, row %d (%d columns): kernel error %.3g, reference "
                   "%.3g\n",
                   r, columns, e_kernel, e_reference);
        worst_kernel = e_kernel > worst_kernel ? e_kernel : worst_kernel;
        worst_reference = e_reference > worst_reference ? e_reference : worst_reference;
        free(x);
        free(y);
        free(w);
        free(kernel);
        free(reference);
        free(x64);
        free(expected);
    }
    printf("softmax backward against finite differences: %d rows, worst error kernel %.3g, "
           "reference %.3g\n",
           rows, worst_kernel, worst_reference);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(ctx));
    check_forward(ctx);
    check_backward(ctx);
    check_finite_differences(ctx);
    clcnn_context_destroy(ctx);
    return test_finish();
}
