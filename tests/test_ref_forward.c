/* The reference forwards (host/ref/) against float64 implementations
 * written here from PyTorch's definitions, so that the oracle of the kernel
 * tests is itself checked by something other than the kernels:
 *
 * - convolution with strides, asymmetric padding, dilation, groups and
 *   rectangular kernels (PyTorch's grouping: output channel k of group
 *   g = k / (K / groups) reads input channels g * C/groups onwards);
 * - average pooling's divisor, counted here as PyTorch counts it
 *   (count_include_pad=True: the window clipped to the padded input, not to
 *   the input, so ceil mode's windows that run past the padding divide by
 *   less), with output sizes from PyTorch's formula including ceil mode's
 *   rule that the last window must start inside the input or its left
 *   padding; plus a case worked by hand; and max pooling;
 * - gemm with transposed (strided) operands, alpha, beta and both biases.
 * (Softmax's reference is checked against float64 in test_softmax.c, the
 * stride-1 convolution's in test_conv_stride1.c.)
 *
 * The reference sums in double and rounds once, so it is held to 1e-6 of
 * each value's magnitude (the same sum taken over absolute values). */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CONV_SHAPES = 150, POOL_SHAPES = 300, GEMM_SHAPES = 150 };

/* ---- convolution -------------------------------------------------------------------------- */

static void check_conv(void) {
    test_rng rng = {9001};
    double worst = 0;
    int grouped = 0, dilated = 0;
    const int shapes = test_scaled_count(CONV_SHAPES);
    for (int index = 0; index < shapes; index++) {
        conv2d_params p;
        memset(&p, 0, sizeof(p));
        p.batch = test_rand_int(&rng, 1, 3);
        p.groups = test_rand_int(&rng, 0, 2) ? 1 : test_rand_int(&rng, 2, 4);
        p.in_channels = p.groups * test_rand_int(&rng, 1, 4);
        p.out_channels = p.groups * test_rand_int(&rng, 1, 4);
        p.kernel_h = test_rand_int(&rng, 1, 5);
        p.kernel_w = test_rand_int(&rng, 1, 5);
        p.stride_h = test_rand_int(&rng, 1, 3);
        p.stride_w = test_rand_int(&rng, 1, 3);
        p.dilation_h = test_rand_int(&rng, 0, 2) ? 1 : test_rand_int(&rng, 2, 3);
        p.dilation_w = test_rand_int(&rng, 0, 2) ? 1 : test_rand_int(&rng, 2, 3);
        p.pad_top = test_rand_int(&rng, 0, 2);
        p.pad_left = test_rand_int(&rng, 0, 2);
        const int pad_bottom = test_rand_int(&rng, 0, 2), pad_right = test_rand_int(&rng, 0, 2);
        p.in_height = test_rand_int(&rng, 1, 14);
        p.in_width = test_rand_int(&rng, 1, 14);
        const int span_h = p.dilation_h * (p.kernel_h - 1) + 1;
        const int span_w = p.dilation_w * (p.kernel_w - 1) + 1;
        if (p.in_height + p.pad_top + pad_bottom < span_h ||
            p.in_width + p.pad_left + pad_right < span_w) {
            index--;
            continue;
        }
        p.out_height = (p.in_height + p.pad_top + pad_bottom - span_h) / p.stride_h + 1;
        p.out_width = (p.in_width + p.pad_left + pad_right - span_w) / p.stride_w + 1;
        p.has_bias = test_rand_int(&rng, 0, 1);
        grouped += p.groups > 1;
        dilated += p.dilation_h > 1 || p.dilation_w > 1;
        const int64_t nx = (int64_t)p.batch * p.in_channels * p.in_height * p.in_width;
        const int64_t nw =
            (int64_t)p.out_channels * (p.in_channels / p.groups) * p.kernel_h * p.kernel_w;
        const int64_t ny = (int64_t)p.batch * p.out_channels * p.out_height * p.out_width;
        float *x = test_floats(nx), *w = test_floats(nw), *bias = test_floats(p.out_channels),
              *y = test_floats(ny);
        double *expected = test_doubles(ny), *magnitude = test_doubles(ny);
        test_fill_signed(&rng, x, nx);
        test_fill_signed(&rng, w, nw);
        test_fill_signed(&rng, bias, p.out_channels);
        for (int64_t i = 0; i < ny; i++)
            y[i] = NAN;
        conv2d_forward64(&p, x, w, bias, expected, magnitude);
        conv2d_forward_ref(&p, x, w, bias, y);
        const double error = worst_scaled_error(y, expected, magnitude, ny);
        if (!CHECK(error <= 1e-6))
            printf("conv reference %d: batch %d, %d -> %d channels, groups %d, %dx%d input, %dx%d "
                   "kernel, stride %d,%d, dilation %d,%d, pad %d,%d, output %dx%d: error %.3g\n",
                   index, p.batch, p.in_channels, p.out_channels, p.groups, p.in_height, p.in_width,
                   p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.dilation_h, p.dilation_w,
                   p.pad_top, p.pad_left, p.out_height, p.out_width, error);
        worst = fmax(worst, error);
        free(x);
        free(w);
        free(bias);
        free(y);
        free(expected);
        free(magnitude);
    }
    CHECK(test_quick_divisor() > 1 || (grouped >= 20 && dilated >= 20));
    printf("conv2d reference: %d shapes (%d grouped, %d dilated), worst error %.3g\n", shapes,
           grouped, dilated, worst);
}

/* ---- pooling ----------------------------------------------------------------------------------
 */

/* PyTorch's output size (symmetric padding pad), with ceil mode's rule. */
static int pytorch_pool_size(int input, int size, int stride, int pad, int ceil_mode) {
    const int span = input + 2 * pad - size;
    int out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= input + pad)
        out--;
    return out;
}

/* PyTorch's avg_pool2d (count_include_pad=True) and max_pool2d in float64. */
static void pool64(const pool2d_params *p, const float *x, double *y, double *magnitude) {
    const int H = p->in_height, W = p->in_width;
    for (int plane = 0; plane < p->batch * p->channels; plane++)
        for (int oy = 0; oy < p->out_height; oy++)
            for (int ox = 0; ox < p->out_width; ox++) {
                const int y0 = oy * p->stride_h - p->pad_top, x0 = ox * p->stride_w - p->pad_left;
                double sum = 0, size = 0, best = -INFINITY;
                int divisor = 0;
                for (int r = 0; r < p->size_h; r++)
                    for (int s = 0; s < p->size_w; s++) {
                        const int iy = y0 + r, ix = x0 + s;
                        /* Inside the padded input: counted by the divisor. */
                        if (iy < H + p->pad_top && ix < W + p->pad_left)
                            divisor++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        const double v = x[((int64_t)plane * H + iy) * W + ix];
                        sum += v;
                        size += fabs(v);
                        best = v > best ? v : best;
                    }
                const int64_t o = ((int64_t)plane * p->out_height + oy) * p->out_width + ox;
                if (p->kind == POOL_MAX) {
                    y[o] = best;
                    magnitude[o] = fabs(best);
                } else {
                    y[o] = sum / divisor;
                    magnitude[o] = size / divisor;
                }
            }
}

/* 1x1x4x4 ones, avgpool size 3 stride 2 pad 1 ceil: a 3x3 output whose last
 * windows start at row/column 3 and run to 6, past the padded input (5):
 * PyTorch divides them by 2 along that axis, not 3. */
static void check_pool_by_hand(void) {
    float x[16], y[9];
    for (int i = 0; i < 16; i++)
        x[i] = 1.0f;
    pool2d_params p = {.kind = POOL_AVERAGE,
                       .batch = 1,
                       .channels = 1,
                       .in_height = 4,
                       .in_width = 4,
                       .size_h = 3,
                       .size_w = 3,
                       .stride_h = 2,
                       .stride_w = 2,
                       .pad_top = 1,
                       .pad_left = 1};
    p.out_height = pytorch_pool_size(4, 3, 2, 1, 1);
    p.out_width = p.out_height;
    CHECK(p.out_height == 3);
    /* Rows covered by the windows: [0,2), [1,4), [3,4); their divisors 3, 3, 2. */
    const double expected[9] = {4.0 / 9, 6.0 / 9, 2.0 / 6, 6.0 / 9, 9.0 / 9,
                                3.0 / 6, 2.0 / 6, 3.0 / 6, 1.0 / 4};
    pool2d_forward_ref(&p, x, y);
    for (int i = 0; i < 9; i++)
        if (!CHECK(fabs(y[i] - expected[i]) <= 1e-7))
            printf("avgpool by hand: output %d is %.9g, PyTorch gives %.9g\n", i, y[i],
                   expected[i]);
}

static void check_pool(pool_kind kind) {
    test_rng rng = {kind == POOL_MAX ? 9101 : 9102};
    double worst = 0;
    int ceil_shapes = 0, short_divisors = 0;
    const int shapes = test_scaled_count(POOL_SHAPES);
    for (int index = 0; index < shapes; index++) {
        pool2d_params p;
        memset(&p, 0, sizeof(p));
        p.kind = kind;
        p.batch = test_rand_int(&rng, 1, 2);
        p.channels = test_rand_int(&rng, 1, 3);
        p.size_h = test_rand_int(&rng, 1, 4);
        p.size_w = test_rand_int(&rng, 1, 4);
        p.stride_h = test_rand_int(&rng, 1, 3);
        p.stride_w = test_rand_int(&rng, 1, 3);
        /* PyTorch: pad at most half the window. */
        p.pad_top = test_rand_int(&rng, 0, p.size_h / 2);
        p.pad_left = test_rand_int(&rng, 0, p.size_w / 2);
        p.in_height = test_rand_int(&rng, p.size_h, 12);
        p.in_width = test_rand_int(&rng, p.size_w, 12);
        const int ceil_mode = test_rand_int(&rng, 0, 1);
        ceil_shapes += ceil_mode;
        p.out_height = pytorch_pool_size(p.in_height, p.size_h, p.stride_h, p.pad_top, ceil_mode);
        p.out_width = pytorch_pool_size(p.in_width, p.size_w, p.stride_w, p.pad_left, ceil_mode);
        /* Windows whose divisor is cut by the end of the padded input. */
        if ((p.out_height - 1) * p.stride_h - p.pad_top + p.size_h > p.in_height + p.pad_top ||
            (p.out_width - 1) * p.stride_w - p.pad_left + p.size_w > p.in_width + p.pad_left)
            short_divisors++;
        const int64_t nx = (int64_t)p.batch * p.channels * p.in_height * p.in_width;
        const int64_t ny = (int64_t)p.batch * p.channels * p.out_height * p.out_width;
        float *x = test_floats(nx), *y = test_floats(ny);
        double *expected = test_doubles(ny), *magnitude = test_doubles(ny);
        test_fill_signed(&rng, x, nx);
        for (int64_t i = 0; i < ny; i++)
            y[i] = NAN;
        pool64(&p, x, expected, magnitude);
        pool2d_forward_ref(&p, x, y);
        const double error = worst_scaled_error(y, expected, magnitude, ny);
        if (!CHECK(error <= 1e-6))
            printf("%s reference %d: %dx%d input, window %dx%d, stride %d,%d, pad %d,%d, ceil %d, "
                   "output %dx%d: error %.3g\n",
                   kind == POOL_MAX ? "maxpool" : "avgpool", index, p.in_height, p.in_width,
                   p.size_h, p.size_w, p.stride_h, p.stride_w, p.pad_top, p.pad_left, ceil_mode,
                   p.out_height, p.out_width, error);
        worst = fmax(worst, error);
        free(x);
        free(y);
        free(expected);
        free(magnitude);
    }
    CHECK(test_quick_divisor() > 1 || short_divisors >= 10);
    printf("%s reference: %d shapes (%d in ceil mode, %d with windows past the padded input), "
           "worst error %.3g\n",
           kind == POOL_MAX ? "maxpool" : "avgpool", shapes, ceil_shapes, short_divisors, worst);
}

/* ---- gemm -------------------------------------------------------------------------------------
 */

static void check_gemm(void) {
    test_rng rng = {9201};
    double worst = 0;
    const int shapes = test_scaled_count(GEMM_SHAPES);
    for (int index = 0; index < shapes; index++) {
        gemm_params p;
        memset(&p, 0, sizeof(p));
        p.m = test_rand_int(&rng, 1, 40);
        p.n = test_rand_int(&rng, 1, 40);
        p.k = test_rand_int(&rng, 1, 60);
        p.alpha = test_rand_int(&rng, 0, 1) ? 1.0f : test_rand_float(&rng, -2.0f, 2.0f);
        p.beta = test_rand_int(&rng, 0, 2) == 0 ? 0.0f : test_rand_float(&rng, -1.0f, 1.0f);
        p.bias = (bias_mode)test_rand_int(&rng, 0, 2);
        const int a_transposed = test_rand_int(&rng, 0, 1),
                  b_transposed = test_rand_int(&rng, 0, 1);
        /* Stored row lengths with some slack past the used columns. */
        const int a_cols = (a_transposed ? p.m : p.k) + test_rand_int(&rng, 0, 3);
        const int b_cols = (b_transposed ? p.k : p.n) + test_rand_int(&rng, 0, 3);
        p.a_row_stride = a_transposed ? 1 : a_cols;
        p.a_col_stride = a_transposed ? a_cols : 1;
        p.b_row_stride = b_transposed ? 1 : b_cols;
        p.b_col_stride = b_transposed ? b_cols : 1;
        p.c_row_stride = p.n + test_rand_int(&rng, 0, 3);
        const int64_t na = (int64_t)(a_transposed ? p.k : p.m) * a_cols;
        const int64_t nb = (int64_t)(b_transposed ? p.n : p.k) * b_cols;
        const int64_t nc = (int64_t)p.m * p.c_row_stride;
        float *a = test_floats(na), *b = test_floats(nb), *c = test_floats(nc),
              *bias = test_floats(p.m + p.n);
        double *expected = test_doubles(nc), *magnitude = test_doubles(nc);
        test_fill_signed(&rng, a, na);
        test_fill_signed(&rng, b, nb);
        test_fill_signed(&rng, c, nc);
        test_fill_signed(&rng, bias, p.m + p.n);
        for (int i = 0; i < p.m; i++)
            for (int j = 0; j < p.c_row_stride; j++) {
                const int64_t o = (int64_t)i * p.c_row_stride + j;
                if (j >= p.n) {
                    /* Past the used columns: left alone. */
                    expected[o] = c[o];
                    magnitude[o] = fabs(c[o]);
                    continue;
                }
                /* A(i, l) is row i of A, or column i of the stored transpose. */
                double sum = 0, size = 0;
                for (int l = 0; l < p.k; l++) {
                    const double x =
                        a_transposed ? a[(int64_t)l * a_cols + i] : a[(int64_t)i * a_cols + l];
                    const double y =
                        b_transposed ? b[(int64_t)j * b_cols + l] : b[(int64_t)l * b_cols + j];
                    sum += x * y;
                    size += fabs(x * y);
                }
                double value = (double)p.alpha * sum, total = fabs((double)p.alpha) * size;
                if (p.beta != 0.0f) {
                    value += (double)p.beta * c[o];
                    total += fabs((double)p.beta * c[o]);
                }
                const double b_value = p.bias == BIAS_PER_ROW      ? bias[i]
                                       : p.bias == BIAS_PER_COLUMN ? bias[p.m + j]
                                                                   : 0.0;
                expected[o] = value + b_value;
                magnitude[o] = total + fabs(b_value);
            }
        /* The reference takes the bias of the mode's length from the start. */
        const float *bias_arg = p.bias == BIAS_PER_COLUMN ? bias + p.m : bias;
        gemm_ref(&p, a, b, c, bias_arg);
        const double error = worst_scaled_error(c, expected, magnitude, nc);
        if (!CHECK(error <= 1e-6))
            printf("gemm reference %d: %dx%dx%d, A%s B%s, alpha %g, beta %g, bias %d: error %.3g\n",
                   index, p.m, p.n, p.k, a_transposed ? "^T" : "", b_transposed ? "^T" : "",
                   p.alpha, p.beta, (int)p.bias, error);
        worst = fmax(worst, error);
        free(a);
        free(b);
        free(c);
        free(bias);
        free(expected);
        free(magnitude);
    }
    printf("gemm reference: %d shapes, worst error %.3g\n", shapes, worst);
}

int main(void) {
    check_conv();
    check_pool_by_hand();
    check_pool(POOL_AVERAGE);
    check_pool(POOL_MAX);
    check_gemm();
    return test_finish();
}
