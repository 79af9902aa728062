/* Every forward OpenCL kernel against its CPU reference on many random shapes.
 *
 * Each operation draws its shapes from a generator with a fixed seed, so a
 * failure reproduces; a failing case prints its shape parameters and its
 * index. The convolution and the matrix product also run under several tile
 * configurations (GPU-sized, tiny, non-power-of-two, rectangular per-work-item
 * blocks), each with fewer shapes than the default configuration.
 *
 * The comparison is max_relative_error(device, reference, n, 1.0), i.e.
 * |device - reference| / max(|reference|, 1), and every case must stay within
 * 1e-5. Inputs and weights are uniform in [-1, 1] unless a case says otherwise.
 *
 * One exception: a convolution whose reduction (in_channels * kernel_h *
 * kernel_w) is longer than 300 taps. The kernel accumulates in float32 and
 * the reference in double, so the difference grows with the length n of the
 * reduction: measured over 1900 random shapes, the worst is about 3.2e-8 * n
 * (6.6e-6 at n <= 300, 3e-5 at n = 1330). Such shapes are held to twice that,
 * 6.4e-8 * n, and reported apart.
 */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double tolerance = 1e-5;

/* How many shapes each operation gets on the default configuration, and per extra configuration. */
enum { SHAPES_PER_OP = 220, SHAPES_PER_EXTRA_CONFIG = 40 };
/* About one conv2d shape in five has a reduction over LONG_REDUCTION_TAPS; 200 or more
 * must remain to be held to 1e-5. */
enum { CONV2D_DEFAULT_SHAPES = 260 };

/* Creates a device buffer holding count floats and copies values into it. */
static clcnn_status upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    size_t bytes = (size_t)count * sizeof(float);
    clcnn_status status = buffer_create(ctx, bytes, out);
    if (status != CLCNN_OK)
        return status;
    return buffer_write(ctx, *out, 0, bytes, values);
}

static clcnn_status download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    return buffer_read(ctx, buffer, 0, (size_t)count * sizeof(float), values);
}

static void describe_config(const tile_config *config, char *buf, size_t size) {
    if (!config)
        snprintf(buf, size, "default");
    else
        snprintf(buf, size, "tile %dx%d k%d wpt %dx%d", config->tile_m, config->tile_n,
                 config->tile_k, config->wpt_m, config->wpt_n);
}

/* The extra tile configurations for conv2d and gemm (the default one runs first). */
static const tile_config extra_configs[] = {
    {64, 64, 16, 4, 4}, /* GPU-style: 16 x 16 = 256 work-items */
    {64, 32, 8, 8, 4},  /* rectangular per-work-item block, 8 x 8 = 64 work-items */
    {8, 8, 1, 1, 1},    /* small, one output per work-item, one tap at a time */
    {8, 8, 3, 2, 2},    /* small, odd tile_k */
    {24, 12, 5, 3, 2},  /* not a power of two: 8 x 6 = 48 work-items */
    {16, 32, 4, 1, 4},  /* rectangular tile and per-work-item block */
};
enum { EXTRA_CONFIG_COUNT = sizeof(extra_configs) / sizeof(extra_configs[0]) };

/* ---- conv2d ----------------------------------------------------------------------------- */

/* Reductions longer than this many taps are checked against long_reduction_bound
 * (see the comment at the top). */
enum { LONG_REDUCTION_TAPS = 300 };

static double long_reduction_bound(int taps) {
    return 6.4e-8 * taps;
}

/* Output size of a convolution along one axis, or 0 if the kernel does not fit the padded input. */
static int conv_output_size(int input, int pad_before, int pad_after, int kernel, int stride) {
    int padded = input + pad_before + pad_after;
    if (padded < kernel)
        return 0;
    return (padded - kernel) / stride + 1;
}

/* Padding before and after along one axis, drawn in one of four styles. */
static void draw_conv_padding(test_rng *rng, int style, int input, int kernel, int stride,
                              int *pad_before, int *pad_after) {
    if (style == 0) { /* none */
        *pad_before = 0;
        *pad_after = 0;
    } else if (style == 1) { /* symmetric */
        *pad_before = test_rand_int(rng, 0, 3);
        *pad_after = *pad_before;
    } else if (style == 2) { /* 'same': output ceil(input / stride), the odd pixel at the end */
        int output = (input + stride - 1) / stride;
        int total = (output - 1) * stride + kernel - input;
        if (total < 0)
            total = 0;
        *pad_before = total / 2;
        *pad_after = total - total / 2;
    } else { /* independent */
        *pad_before = test_rand_int(rng, 0, 3);
        *pad_after = test_rand_int(rng, 0, 3);
    }
}

/* Multiply-adds of the reference: kept bounded so that the test stays fast. */
static int64_t conv_work(const conv2d_params *p) {
    return (int64_t)p->batch * p->out_channels * p->out_height * p->out_width * p->in_channels *
           p->kernel_h * p->kernel_w;
}

/* Draws a valid convolution shape; invalid draws (kernel larger than the padded input,
 * too much work for the reference) are skipped. */
static void draw_conv2d_shape(test_rng *rng, conv2d_params *p, int *pad_bottom, int *pad_right) {
    for (;;) {
        memset(p, 0, sizeof(*p));
        p->batch = test_rand_int(rng, 0, 1) ? 1 : test_rand_int(rng, 2, 4);
        p->in_channels =
            test_rand_int(rng, 0, 3) == 0 ? test_rand_int(rng, 1, 4) : test_rand_int(rng, 1, 40);
        p->out_channels =
            test_rand_int(rng, 0, 3) == 0 ? test_rand_int(rng, 1, 4) : test_rand_int(rng, 1, 40);
        p->in_height = test_rand_int(rng, 1, 30);
        p->in_width = test_rand_int(rng, 0, 2) == 0 ? p->in_height : test_rand_int(rng, 1, 30);
        int kernel_style = test_rand_int(rng, 0, 3);
        if (kernel_style == 0) { /* square */
            p->kernel_h = test_rand_int(rng, 1, 7);
            p->kernel_w = p->kernel_h;
        } else if (kernel_style == 1) { /* a row or a column, like 1x7 or 5x1 */
            int length = test_rand_int(rng, 2, 7);
            int is_row = test_rand_int(rng, 0, 1);
            p->kernel_h = is_row ? 1 : length;
            p->kernel_w = is_row ? length : 1;
        } else { /* any rectangle, like 3x5 */
            p->kernel_h = test_rand_int(rng, 1, 7);
            p->kernel_w = test_rand_int(rng, 1, 7);
        }
        p->stride_h = test_rand_int(rng, 1, 3);
        p->stride_w = test_rand_int(rng, 0, 1) ? p->stride_h : test_rand_int(rng, 1, 3);
        int padding_style = test_rand_int(rng, 0, 3);
        draw_conv_padding(rng, padding_style, p->in_height, p->kernel_h, p->stride_h, &p->pad_top,
                          pad_bottom);
        draw_conv_padding(rng, padding_style, p->in_width, p->kernel_w, p->stride_w, &p->pad_left,
                          pad_right);
        p->out_height =
            conv_output_size(p->in_height, p->pad_top, *pad_bottom, p->kernel_h, p->stride_h);
        p->out_width =
            conv_output_size(p->in_width, p->pad_left, *pad_right, p->kernel_w, p->stride_w);
        p->has_bias = test_rand_int(rng, 0, 1);
        if (p->out_height == 0 || p->out_width == 0)
            continue;
        if (conv_work(p) > 6000000)
            continue;
        return;
    }
}

static void print_conv2d_case(const char *config_name, int index, const conv2d_params *p,
                              int pad_bottom, int pad_right, double error) {
    fprintf(stderr,
            "conv2d [%s] case %d: batch %d, in %dx%dx%d, out channels %d, kernel %dx%d, "
            "stride %dx%d, pad top %d bottom %d left %d right %d, output %dx%d, bias %d: "
            "error %.3g\n",
            config_name, index, p->batch, p->in_channels, p->in_height, p->in_width,
            p->out_channels, p->kernel_h, p->kernel_w, p->stride_h, p->stride_w, p->pad_top,
            pad_bottom, p->pad_left, pad_right, p->out_height, p->out_width, p->has_bias, error);
}

/* Runs one convolution on the device (config NULL: conv2d_forward with the default
 * configuration) and returns its worst relative error against the reference. With
 * wrong_bias set, the reference instead gets a bias off by 0.01 and the returned error
 * must be large. */
static double conv2d_case_error(clcnn_context *ctx, const tile_config *config,
                                const conv2d_params *p, test_rng *rng, int wrong_bias) {
    const int64_t input_count = (int64_t)p->batch * p->in_channels * p->in_height * p->in_width;
    const int64_t weight_count =
        (int64_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
    const int64_t output_count = (int64_t)p->batch * p->out_channels * p->out_height * p->out_width;
    float *input = test_signed_floats(rng, input_count);
    float *weight = test_signed_floats(rng, weight_count);
    float *bias = test_signed_floats(rng, p->out_channels);
    float *expected = test_floats(output_count);
    float *actual = test_floats(output_count);
    /* The device output starts as NaN, so an element the kernel never writes shows. */
    for (int64_t i = 0; i < output_count; i++)
        actual[i] = NAN;

    double error = INFINITY;
    cl_mem input_buffer = NULL, weight_buffer = NULL, bias_buffer = NULL, output_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, input, input_count, &input_buffer)) &&
             CHECK_OK(ctx, upload(ctx, weight, weight_count, &weight_buffer)) &&
             CHECK_OK(ctx, upload(ctx, actual, output_count, &output_buffer));
    /* Without bias the operation gets no bias buffer at all. */
    if (ok && p->has_bias)
        ok = CHECK_OK(ctx, upload(ctx, bias, p->out_channels, &bias_buffer));
    if (ok) {
        clcnn_status status =
            config
                ? conv2d_forward_tiled(ctx, config, p, input_buffer, weight_buffer, bias_buffer,
                                       output_buffer)
                : conv2d_forward(ctx, p, input_buffer, weight_buffer, bias_buffer, output_buffer);
        ok = CHECK_OK(ctx, status) &&
             CHECK_OK(ctx, download(ctx, output_buffer, actual, output_count));
    }
    if (ok) {
        if (wrong_bias)
            for (int k = 0; k < p->out_channels; k++)
                bias[k] += 0.01f;
        conv2d_forward_ref(p, input, weight, p->has_bias ? bias : NULL, expected);
        error = max_relative_error(actual, expected, output_count, 1.0);
    }
    buffer_release(&input_buffer);
    buffer_release(&weight_buffer);
    buffer_release(&bias_buffer);
    buffer_release(&output_buffer);
    free(input);
    free(weight);
    free(bias);
    free(expected);
    free(actual);
    return error;
}

static void run_conv2d_shapes(clcnn_context *ctx, const tile_config *config, int shape_count,
                              uint64_t seed) {
    char config_name[96];
    describe_config(config, config_name, sizeof(config_name));
    test_rng rng = {seed};
    test_tally short_result = {0}, long_result = {0};
    double worst_bound_fraction = 0;
    for (int index = 0; index < shape_count; index++) {
        conv2d_params p;
        int pad_bottom, pad_right;
        draw_conv2d_shape(&rng, &p, &pad_bottom, &pad_right);
        double error = conv2d_case_error(ctx, config, &p, &rng, 0);
        const int taps = p.in_channels * p.kernel_h * p.kernel_w;
        int ok;
        if (taps <= LONG_REDUCTION_TAPS) {
            ok = test_tally_record(&short_result, error, tolerance);
        } else {
            ok = test_tally_record(&long_result, error, long_reduction_bound(taps));
            if (error / long_reduction_bound(taps) > worst_bound_fraction)
                worst_bound_fraction = error / long_reduction_bound(taps);
        }
        if (!CHECK(ok))
            print_conv2d_case(config_name, index, &p, pad_bottom, pad_right, error);
    }
    char name[128];
    snprintf(name, sizeof(name), "conv2d [%s]", config_name);
    printf("%-36s %4d shapes, worst error %.3g; %d over %d taps, worst error %.3g "
           "(%.2f of their bound)%s\n",
           name, short_result.cases, short_result.worst_error, long_result.cases,
           LONG_REDUCTION_TAPS, long_result.worst_error, worst_bound_fraction,
           short_result.failures + long_result.failures ? "  FAILED" : "");
    if (!config)
        CHECK(test_quick_divisor() > 1 || short_result.cases >= 200);
}

/* ---- gemm ----------------------------------------------------------------------------- */

/* A gemm case: the parameters plus how the operands are laid out, for printing and sizing. */
typedef struct gemm_case {
    gemm_params params;
    int a_transposed, b_transposed;
    int a_rows_stored, b_rows_stored; /* rows of the stored matrices */
    int64_t a_count, b_count, c_count;
} gemm_case;

/* A matrix dimension 1..150, often small so the edge tiles get exercised. */
static int draw_gemm_size(test_rng *rng) {
    return test_rand_int(rng, 0, 3) == 0 ? test_rand_int(rng, 1, 9) : test_rand_int(rng, 1, 150);
}

/* A leading dimension: the row length, sometimes with a few unused values after it. */
static int draw_leading_dimension(test_rng *rng, int row_length) {
    return row_length + (test_rand_int(rng, 0, 2) == 0 ? test_rand_int(rng, 1, 5) : 0);
}

static void draw_gemm_case(test_rng *rng, gemm_case *g) {
    memset(g, 0, sizeof(*g));
    gemm_params *p = &g->params;
    p->m = draw_gemm_size(rng);
    p->n = draw_gemm_size(rng);
    p->k = draw_gemm_size(rng);
    p->alpha = test_rand_int(rng, 0, 2) == 0 ? 1.0f : test_rand_float(rng, -2.0f, 2.0f);
    p->beta = test_rand_int(rng, 0, 1) ? 0.0f : test_rand_float(rng, -1.5f, 1.5f);
    p->bias = (bias_mode)test_rand_int(rng, 0, 2);
    /* A(m, k): stored (m, k) row-major, or transposed, stored (k, m). */
    g->a_transposed = test_rand_int(rng, 0, 1);
    if (!g->a_transposed) {
        p->a_row_stride = draw_leading_dimension(rng, p->k);
        p->a_col_stride = 1;
        g->a_rows_stored = p->m;
        g->a_count = (int64_t)p->m * p->a_row_stride;
    } else {
        p->a_row_stride = 1;
        p->a_col_stride = draw_leading_dimension(rng, p->m);
        g->a_rows_stored = p->k;
        g->a_count = (int64_t)p->k * p->a_col_stride;
    }
    /* B(k, n): stored (k, n), or transposed, stored (n, k). */
    g->b_transposed = test_rand_int(rng, 0, 1);
    if (!g->b_transposed) {
        p->b_row_stride = draw_leading_dimension(rng, p->n);
        p->b_col_stride = 1;
        g->b_rows_stored = p->k;
        g->b_count = (int64_t)p->k * p->b_row_stride;
    } else {
        p->b_row_stride = 1;
        p->b_col_stride = draw_leading_dimension(rng, p->k);
        g->b_rows_stored = p->n;
        g->b_count = (int64_t)p->n * p->b_col_stride;
    }
    p->c_row_stride = draw_leading_dimension(rng, p->n);
    g->c_count = (int64_t)p->m * p->c_row_stride;
}

static const char *bias_mode_name(bias_mode mode) {
    return mode == BIAS_PER_ROW ? "per-row" : mode == BIAS_PER_COLUMN ? "per-column" : "none";
}

static void print_gemm_case(const char *config_name, int index, const gemm_case *g, double error) {
    const gemm_params *p = &g->params;
    fprintf(stderr,
            "gemm [%s] case %d: m %d n %d k %d, A%s strides %d,%d, B%s strides %d,%d, "
            "c_row_stride %d, alpha %.9g, beta %.9g, bias %s: error %.3g\n",
            config_name, index, p->m, p->n, p->k, g->a_transposed ? "^T" : "", p->a_row_stride,
            p->a_col_stride, g->b_transposed ? "^T" : "", p->b_row_stride, p->b_col_stride,
            p->c_row_stride, p->alpha, p->beta, bias_mode_name(p->bias), error);
}

/* Values the product must never read: stored padding of A and B, and C when beta is 0.
 * NaN there would poison the result. */
static void poison_unused_columns(float *values, int rows, int used, int stride) {
    for (int row = 0; row < rows; row++)
        for (int column = used; column < stride; column++)
            values[(int64_t)row * stride + column] = NAN;
}

/* Runs one product on the device (config NULL: gemm with the default configuration)
 * and returns its worst relative error against the reference over the whole of C,
 * padding columns included (they must be left as they were). */
static double gemm_case_error(clcnn_context *ctx, const tile_config *config, const gemm_case *g,
                              test_rng *rng) {
    const gemm_params *p = &g->params;
    const int bias_count = p->bias == BIAS_PER_ROW ? p->m : p->n;
    float *a = test_signed_floats(rng, g->a_count);
    float *b = test_signed_floats(rng, g->b_count);
    float *bias = test_signed_floats(rng, bias_count);
    float *expected = test_floats(g->c_count);
    float *actual = test_floats(g->c_count);
    if (!g->a_transposed)
        poison_unused_columns(a, g->a_rows_stored, p->k, p->a_row_stride);
    else
        poison_unused_columns(a, g->a_rows_stored, p->m, p->a_col_stride);
    if (!g->b_transposed)
        poison_unused_columns(b, g->b_rows_stored, p->n, p->b_row_stride);
    else
        poison_unused_columns(b, g->b_rows_stored, p->k, p->b_col_stride);
    /* C: with beta 0 it holds garbage the product must not read; its padding columns
     * hold distinct finite values that must survive. */
    for (int row = 0; row < p->m; row++)
        for (int column = 0; column < p->c_row_stride; column++) {
            int64_t at = (int64_t)row * p->c_row_stride + column;
            if (column >= p->n)
                expected[at] = 1000.0f + (float)at;
            else if (p->beta == 0.0f)
                expected[at] = NAN;
            else
                expected[at] = test_rand_float(rng, -1.0f, 1.0f);
        }
    memcpy(actual, expected, (size_t)g->c_count * sizeof(float));

    double error = INFINITY;
    cl_mem a_buffer = NULL, b_buffer = NULL, c_buffer = NULL, bias_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, a, g->a_count, &a_buffer)) &&
             CHECK_OK(ctx, upload(ctx, b, g->b_count, &b_buffer)) &&
             CHECK_OK(ctx, upload(ctx, actual, g->c_count, &c_buffer));
    if (ok && p->bias != BIAS_NONE)
        ok = CHECK_OK(ctx, upload(ctx, bias, bias_count, &bias_buffer));
    if (ok) {
        clcnn_status status =
            config ? gemm_tiled(ctx, config, p, a_buffer, b_buffer, c_buffer, bias_buffer)
                   : gemm(ctx, p, a_buffer, b_buffer, c_buffer, bias_buffer);
        ok = CHECK_OK(ctx, status) && CHECK_OK(ctx, download(ctx, c_buffer, actual, g->c_count));
    }
    if (ok) {
        gemm_ref(p, a, b, expected, p->bias != BIAS_NONE ? bias : NULL);
        error = max_relative_error(actual, expected, g->c_count, 1.0);
    }
    buffer_release(&a_buffer);
    buffer_release(&b_buffer);
    buffer_release(&c_buffer);
    buffer_release(&bias_buffer);
    free(a);
    free(b);
    free(bias);
    free(expected);
    free(actual);
    return error;
}

static void run_gemm_shapes(clcnn_context *ctx, const tile_config *config, int shape_count,
                            uint64_t seed) {
    char config_name[96];
    describe_config(config, config_name, sizeof(config_name));
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        gemm_case g;
        draw_gemm_case(&rng, &g);
        double error = gemm_case_error(ctx, config, &g, &rng);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            print_gemm_case(config_name, index, &g, error);
    }
    char name[128];
    snprintf(name, sizeof(name), "gemm [%s]", config_name);
    test_tally_print(name, 36, "shapes", &result);
}

/* ---- dense ---------------------------------------------------------------------------- */

static double dense_case_error(clcnn_context *ctx, const dense_params *p, test_rng *rng) {
    const int64_t input_count = (int64_t)p->batch * p->in_features;
    const int64_t weight_count = (int64_t)p->out_features * p->in_features;
    const int64_t output_count = (int64_t)p->batch * p->out_features;
    float *input = test_signed_floats(rng, input_count);
    float *weight = test_signed_floats(rng, weight_count);
    float *bias = test_signed_floats(rng, p->out_features);
    float *expected = test_floats(output_count);
    float *actual = test_floats(output_count);
    for (int64_t i = 0; i < output_count; i++)
        actual[i] = NAN;

    double error = INFINITY;
    cl_mem input_buffer = NULL, weight_buffer = NULL, bias_buffer = NULL, output_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, input, input_count, &input_buffer)) &&
             CHECK_OK(ctx, upload(ctx, weight, weight_count, &weight_buffer)) &&
             CHECK_OK(ctx, upload(ctx, actual, output_count, &output_buffer));
    if (ok && p->has_bias)
        ok = CHECK_OK(ctx, upload(ctx, bias, p->out_features, &bias_buffer));
    const conv2d_params as_convolution = dense_as_convolution(p);
    const conv2d_plan plan = conv2d_plan_for(ctx, &as_convolution);
    if (ok)
        ok = CHECK_OK(ctx, dense_forward(ctx, &plan, p, input_buffer, weight_buffer, bias_buffer,
                                         output_buffer, NULL)) &&
             CHECK_OK(ctx, download(ctx, output_buffer, actual, output_count));
    if (ok) {
        dense_forward_ref(p, input, weight, p->has_bias ? bias : NULL, expected);
        error = max_relative_error(actual, expected, output_count, 1.0);
    }
    buffer_release(&input_buffer);
    buffer_release(&weight_buffer);
    buffer_release(&bias_buffer);
    buffer_release(&output_buffer);
    free(input);
    free(weight);
    free(bias);
    free(expected);
    free(actual);
    return error;
}

static void run_dense_shapes(clcnn_context *ctx, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        dense_params p = {0};
        p.batch = test_rand_int(&rng, 0, 3) == 0 ? 1 : test_rand_int(&rng, 1, 70);
        p.in_features = test_rand_int(&rng, 0, 4) == 0 ? test_rand_int(&rng, 1, 8)
                                                       : test_rand_int(&rng, 1, 300);
        p.out_features = test_rand_int(&rng, 0, 4) == 0 ? test_rand_int(&rng, 1, 8)
                                                        : test_rand_int(&rng, 1, 300);
        p.has_bias = test_rand_int(&rng, 0, 1);
        /* a fused relu (the reference applies it too) */
        p.relu = index % 3 == 0;
        double error = dense_case_error(ctx, &p, &rng);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            fprintf(stderr,
                    "dense case %d: batch %d, in %d, out %d, bias %d, relu %d: error %.3g\n", index,
                    p.batch, p.in_features, p.out_features, p.has_bias, p.relu, error);
    }
    test_tally_print("dense", 36, "shapes", &result);
}

/* ---- pool2d --------------------------------------------------------------------------- */

/* PyTorch's pooling output size along one axis; 0 when the window does not fit. */
static int pool_output_size(int input, int size, int stride, int before, int after, int ceil_mode) {
    int span = input + before + after - size;
    if (span < 0)
        return 0;
    int output = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    /* The last window must start inside the input or its left padding. */
    if (ceil_mode && (output - 1) * stride >= input + before)
        output--;
    return output;
}

static void print_pool_case(int index, const pool2d_params *p, int ceil_mode, double error) {
    fprintf(stderr,
            "%s case %d: batch %d, channels %d, in %dx%d, size %dx%d, stride %dx%d, "
            "pad %d,%d,%d,%d, exclude_pad %d, ceil %d, output %dx%d: error %.3g\n",
            p->kind == POOL_MAX ? "maxpool" : "avgpool", index, p->batch, p->channels, p->in_height,
            p->in_width, p->size_h, p->size_w, p->stride_h, p->stride_w, p->pad_top, p->pad_left,
            p->pad_bottom, p->pad_right, p->exclude_pad, ceil_mode, p->out_height, p->out_width,
            error);
}

static double pool_case_error(clcnn_context *ctx, const pool2d_params *p, test_rng *rng) {
    const int64_t input_count = (int64_t)p->batch * p->channels * p->in_height * p->in_width;
    const int64_t output_count = (int64_t)p->batch * p->channels * p->out_height * p->out_width;
    float *input = test_signed_floats(rng, input_count);
    float *expected = test_floats(output_count);
    float *actual = test_floats(output_count);
    for (int64_t i = 0; i < output_count; i++)
        actual[i] = NAN;

    double error = INFINITY;
    cl_mem input_buffer = NULL, output_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, input, input_count, &input_buffer)) &&
             CHECK_OK(ctx, upload(ctx, actual, output_count, &output_buffer)) &&
             CHECK_OK(ctx, pool2d_forward(ctx, p, input_buffer, output_buffer, NULL)) &&
             CHECK_OK(ctx, download(ctx, output_buffer, actual, output_count));
    if (ok) {
        pool2d_forward_ref(p, input, expected);
        error = max_relative_error(actual, expected, output_count, 1.0);
    }
    buffer_release(&input_buffer);
    buffer_release(&output_buffer);
    free(input);
    free(expected);
    free(actual);
    return error;
}

static void run_pool_shapes(clcnn_context *ctx, pool_kind kind, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    int ceil_shapes = 0, ceil_changed = 0;
    int index = 0;
    while (index < shape_count) {
        pool2d_params p = {0};
        p.kind = kind;
        p.batch = test_rand_int(&rng, 1, 3);
        p.channels = test_rand_int(&rng, 1, 8);
        p.in_height = test_rand_int(&rng, 1, 30);
        p.in_width = test_rand_int(&rng, 0, 2) == 0 ? p.in_height : test_rand_int(&rng, 1, 30);
        p.size_h = test_rand_int(&rng, 1, 5);
        p.size_w = test_rand_int(&rng, 0, 1) ? p.size_h : test_rand_int(&rng, 1, 5);
        p.stride_h = test_rand_int(&rng, 1, 3);
        p.stride_w = test_rand_int(&rng, 0, 1) ? p.stride_h : test_rand_int(&rng, 1, 3);
        p.pad_top = test_rand_int(&rng, 0, p.size_h / 2);
        p.pad_left = test_rand_int(&rng, 0, p.size_w / 2);
        /* a third of the shapes pad the sides differently (ONNX's asymmetric pads) */
        const int asymmetric = test_rand_int(&rng, 0, 2) == 0;
        p.pad_bottom = asymmetric ? test_rand_int(&rng, 0, p.size_h / 2) : p.pad_top;
        p.pad_right = asymmetric ? test_rand_int(&rng, 0, p.size_w / 2) : p.pad_left;
        p.asymmetric = asymmetric || test_rand_int(&rng, 0, 1); /* symmetric either way */
        p.exclude_pad = kind == POOL_AVERAGE && test_rand_int(&rng, 0, 1);
        /* A quarter of max pooling's shapes have the 2x2 kernels' windows (2x2 at stride
         * 2, no padding before; after, at most half the window), which the draw above
         * seldom gives. */
        if (kind == POOL_MAX && index % 4 == 3) {
            p.size_h = p.size_w = p.stride_h = p.stride_w = 2;
            p.pad_top = p.pad_left = 0;
            p.pad_bottom = p.pad_bottom < 1 ? p.pad_bottom : 1;
            p.pad_right = p.pad_right < 1 ? p.pad_right : 1;
        }
        int ceil_mode = test_rand_int(&rng, 0, 1);
        p.out_height =
            pool_output_size(p.in_height, p.size_h, p.stride_h, p.pad_top, p.pad_bottom, ceil_mode);
        p.out_width =
            pool_output_size(p.in_width, p.size_w, p.stride_w, p.pad_left, p.pad_right, ceil_mode);
        if (p.out_height == 0 || p.out_width == 0)
            continue; /* window larger than the padded input */
        if (ceil_mode) {
            ceil_shapes++;
            if (p.out_height != pool_output_size(p.in_height, p.size_h, p.stride_h, p.pad_top,
                                                 p.pad_bottom, 0) ||
                p.out_width !=
                    pool_output_size(p.in_width, p.size_w, p.stride_w, p.pad_left, p.pad_right, 0))
                ceil_changed++;
        }
        double error = pool_case_error(ctx, &p, &rng);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            print_pool_case(index, &p, ceil_mode, error);
        index++;
    }
    /* Ceil mode only tests something when it yields partial windows. */
    CHECK(test_quick_divisor() > 1 || ceil_changed >= 20);
    char name[96];
    snprintf(name, sizeof(name), "%s (%d ceil mode, %d partial)",
             kind == POOL_MAX ? "maxpool" : "avgpool", ceil_shapes, ceil_changed);
    test_tally_print(name, 36, "shapes", &result);
}

/* ---- activations ---------------------------------------------------------------------- */

static const char *activation_name(activation_kind kind) {
    switch (kind) {
    case ACTIVATION_RELU:
        return "relu";
    case ACTIVATION_LEAKY:
        return "leaky";
    case ACTIVATION_SIGMOID:
        return "sigmoid";
    case ACTIVATION_TANH:
        return "tanh";
    case ACTIVATION_RELU6:
        return "relu6";
    }
    return "?";
}

/* Inputs: uniform in [-1, 1] for half the cases; otherwise values of every scale up to
 * 100 with the saturating extremes (+-100, +-88, +-20, 0) mixed in. */
static void fill_activation_input(test_rng *rng, float *values, int64_t count, int wide) {
    static const float extremes[] = {100.0f, -100.0f, 88.0f, -88.0f, 20.0f, -20.0f, 0.0f};
    test_fill_signed(rng, values, count);
    if (!wide)
        return;
    for (int64_t i = 0; i < count; i++) {
        int pick = test_rand_int(rng, 0, 9);
        if (pick == 0)
            values[i] = extremes[test_rand_int(rng, 0, 6)];
        else if (pick <= 3)
            values[i] = test_rand_float(rng, -100.0f, 100.0f);
        else if (pick <= 6)
            values[i] = test_rand_float(rng, -10.0f, 10.0f);
    }
}

static double activation_case_error(clcnn_context *ctx, activation_kind kind, float slope,
                                    int64_t count, int wide, test_rng *rng) {
    float *input = test_floats(count);
    float *expected = test_floats(count);
    float *actual = test_floats(count);
    fill_activation_input(rng, input, count, wide);
    for (int64_t i = 0; i < count; i++)
        actual[i] = NAN;

    double error = INFINITY;
    cl_mem input_buffer = NULL, output_buffer = NULL;
    int ok =
        CHECK_OK(ctx, upload(ctx, input, count, &input_buffer)) &&
        CHECK_OK(ctx, upload(ctx, actual, count, &output_buffer)) &&
        CHECK_OK(ctx, activation_forward(ctx, kind, slope, count, input_buffer, output_buffer)) &&
        CHECK_OK(ctx, download(ctx, output_buffer, actual, count));
    if (ok) {
        activation_forward_ref(kind, slope, count, input, expected);
        error = max_relative_error(actual, expected, count, 1.0);
    }
    buffer_release(&input_buffer);
    buffer_release(&output_buffer);
    free(input);
    free(expected);
    free(actual);
    return error;
}

static void run_activation_shapes(clcnn_context *ctx, activation_kind kind, int shape_count,
                                  uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        int64_t count = test_rand_int(&rng, 0, 3) == 0 ? test_rand_int(&rng, 1, 70)
                                                       : test_rand_int(&rng, 1, 5000);
        float slope = 0.0f;
        if (kind == ACTIVATION_LEAKY)
            slope = test_rand_int(&rng, 0, 3) == 0 ? 0.01f : test_rand_float(&rng, 0.0f, 1.0f);
        int wide = test_rand_int(&rng, 0, 1);
        double error = activation_case_error(ctx, kind, slope, count, wide, &rng);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            fprintf(stderr, "%s case %d: count %lld, slope %.9g, inputs up to %s: error %.3g\n",
                    activation_name(kind), index, (long long)count, slope, wide ? "100" : "1",
                    error);
    }
    test_tally_print(activation_name(kind), 36, "shapes", &result);
}

/* ---- softmax ---------------------------------------------------------------------------- */

/* Each row is one of: uniform [-1, 1]; all around +80 or -80; spread over [-80, 80];
 * all equal. */
static void fill_softmax_row(test_rng *rng, float *row, int columns) {
    int style = test_rand_int(rng, 0, 4);
    if (style <= 1) {
        test_fill_signed(rng, row, columns);
    } else if (style == 2) {
        float centre = test_rand_int(rng, 0, 1) ? 80.0f : -80.0f;
        test_fill_uniform(rng, row, columns, centre - 1.0f, centre + 1.0f);
    } else if (style == 3) {
        test_fill_uniform(rng, row, columns, -80.0f, 80.0f);
    } else {
        float value = test_rand_float(rng, -80.0f, 80.0f);
        for (int j = 0; j < columns; j++)
            row[j] = value;
    }
}

static double softmax_case_error(clcnn_context *ctx, int rows, int columns, test_rng *rng) {
    const int64_t count = (int64_t)rows * columns;
    float *input = test_floats(count);
    float *expected = test_floats(count);
    float *actual = test_floats(count);
    for (int row = 0; row < rows; row++)
        fill_softmax_row(rng, input + (int64_t)row * columns, columns);
    for (int64_t i = 0; i < count; i++)
        actual[i] = NAN;

    double error = INFINITY;
    cl_mem input_buffer = NULL, output_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, input, count, &input_buffer)) &&
             CHECK_OK(ctx, upload(ctx, actual, count, &output_buffer)) &&
             CHECK_OK(ctx, softmax_forward(ctx, rows, columns, input_buffer, output_buffer)) &&
             CHECK_OK(ctx, download(ctx, output_buffer, actual, count));
    if (ok) {
        softmax_forward_ref(rows, columns, input, expected);
        error = max_relative_error(actual, expected, count, 1.0);
    }
    buffer_release(&input_buffer);
    buffer_release(&output_buffer);
    free(input);
    free(expected);
    free(actual);
    return error;
}

static void run_softmax_shapes(clcnn_context *ctx, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        int rows = test_rand_int(&rng, 0, 3) == 0 ? test_rand_int(&rng, 1, 5)
                                                  : test_rand_int(&rng, 1, 100);
        int columns =
            test_rand_int(&rng, 0, 3) == 0 ? test_rand_int(&rng, 1, 5) : test_rand_int(&rng, 1, 50);
        double error = softmax_case_error(ctx, rows, columns, &rng);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            fprintf(stderr, "softmax case %d: rows %d, columns %d: error %.3g\n", index, rows,
                    columns, error);
    }
    test_tally_print("softmax", 36, "shapes", &result);
}

/* ---- the comparison itself can fail ------------------------------------------------------ */

static void check_comparison_detects_errors(clcnn_context *ctx) {
    conv2d_params p = {0};
    p.batch = 2;
    p.in_channels = 3;
    p.in_height = 9;
    p.in_width = 7;
    p.out_channels = 5;
    p.kernel_h = 3;
    p.kernel_w = 3;
    p.stride_h = 1;
    p.stride_w = 1;
    p.pad_top = 1;
    p.pad_left = 1;
    p.out_height = 9;
    p.out_width = 7;
    p.has_bias = 1;
    test_rng rng = {99};
    double right = conv2d_case_error(ctx, NULL, &p, &rng, 0);
    rng.state = 99;
    double wrong = conv2d_case_error(ctx, NULL, &p, &rng, 1);
    /* Every output is off by 0.01, i.e. a relative error of about 0.01/max(|y|, 1). */
    CHECK(right <= tolerance);
    CHECK(wrong > 1e-3);
    printf("deliberately wrong bias: error %.3g (the right one: %.3g)\n", wrong, right);

    /* One element off by 1e-4 among many must show too. */
    float values[1000], reference[1000];
    test_fill_signed(&rng, reference, 1000);
    memcpy(values, reference, sizeof(values));
    values[637] += 1e-4f;
    CHECK(max_relative_error(values, reference, 1000, 1.0) > tolerance);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(ctx));
    const double start = clock_seconds();

    check_comparison_detects_errors(ctx);

    run_conv2d_shapes(ctx, NULL, test_scaled_count(CONV2D_DEFAULT_SHAPES), 1001);
    for (int i = 0; i < EXTRA_CONFIG_COUNT; i++) {
        CHECK(tile_config_valid(ctx, &extra_configs[i]));
        run_conv2d_shapes(ctx, &extra_configs[i], test_scaled_count(SHAPES_PER_EXTRA_CONFIG),
                          1101 + (uint64_t)i);
    }
    run_gemm_shapes(ctx, NULL, test_scaled_count(SHAPES_PER_OP), 2001);
    for (int i = 0; i < EXTRA_CONFIG_COUNT; i++)
        run_gemm_shapes(ctx, &extra_configs[i], test_scaled_count(SHAPES_PER_EXTRA_CONFIG),
                        2101 + (uint64_t)i);
    run_dense_shapes(ctx, test_scaled_count(SHAPES_PER_OP), 3001);
    run_pool_shapes(ctx, POOL_MAX, test_scaled_count(SHAPES_PER_OP), 4001);
    run_pool_shapes(ctx, POOL_AVERAGE, test_scaled_count(SHAPES_PER_OP), 4002);
    for (int span = 0; span < TEST_ITEM_SPANS; span++) {
        clcnn_context *spanned = test_opencl_context_with_span(test_item_spans[span]);
        if (!CHECK(spanned != NULL))
            break;
        printf("element-wise span: %s\n",
               test_item_spans[span] ? test_item_spans[span] : "default");
        run_activation_shapes(spanned, ACTIVATION_RELU, test_scaled_count(SHAPES_PER_OP), 5001);
        run_activation_shapes(spanned, ACTIVATION_LEAKY, test_scaled_count(SHAPES_PER_OP), 5002);
        run_activation_shapes(spanned, ACTIVATION_SIGMOID, test_scaled_count(SHAPES_PER_OP), 5003);
        run_activation_shapes(spanned, ACTIVATION_TANH, test_scaled_count(SHAPES_PER_OP), 5004);
        run_activation_shapes(spanned, ACTIVATION_RELU6, test_scaled_count(SHAPES_PER_OP), 5005);
        clcnn_context_destroy(spanned);
    }
    run_softmax_shapes(ctx, test_scaled_count(SHAPES_PER_OP), 6001);

    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(ctx);
    return test_finish();
}
