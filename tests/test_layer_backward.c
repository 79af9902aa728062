/* Backward passes of pooling, activations and the dense layer.
 *
 * Three kinds of check:
 *
 * 1. OpenCL against the CPU reference on random shapes drawn from fixed seeds
 *    (a failing case prints its shape and index): windows 1..5 on a side,
 *    strides 1..3 (so overlapping windows and uncovered elements), padding
 *    up to half the window, the same or different on each side, ceil mode on
 *    and off. The comparison is max_relative_error(device, reference, n, 1.0)
 *    <= 1e-5, and a second device run must give the same bits (deterministic).
 *    Max pooling also runs on inputs full of ties (values from {-1, -0, 0,
 *    0.5, 1}, a quarter of the cases with a NaN or two, another quarter with
 *    half the elements -inf and one +inf) with integer output
 *    gradients, whose sums are exact in float: there the device and the
 *    reference must agree bit for bit, and both must agree with a scatter
 *    written here (each window's gradient sent to its first maximum).
 *    Device outputs start as NaN, so an element never written shows; a third
 *    of the cases instead add into a gradient holding values (accumulate).
 *    On the device max pooling's backward reads the indices its forward
 *    wrote: every case runs that forward first, and its output must be the
 *    reference's bit for bit and its indices the first maxima found here.
 *    Max pooling runs the same checks again on shapes of the 2x2 kernels'
 *    kind (2x2 windows at stride 2, no padding before; rows up to 300
 *    wide). The max-pooling cases run again with runs of 1 and 7 elements
 *    per work-item (CLCNN_ITEM_SPAN) besides the device's default.
 *
 * 2. Finite differences against forwards written here in double, independent
 *    of the library: loss = sum(forward(x) * G) for a random G, central
 *    differences with h = 1e-6 with respect to every input (and, for dense,
 *    every weight and bias), compared with the backward given grad_output = G
 *    (reference and OpenCL) as |fd - backward| / max(|fd|, 1e-2) <= 1e-4.
 *    Max pooling gets distinct inputs there, so that its derivative exists.
 *
 * 3. Hand-made cases: tied windows send the gradient to their top-left
 *    element, an element that is the maximum of two windows gets both
 *    gradients, padding never wins, a NaN is the maximum, a window of -inf
 *    keeps its first element.
 */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double tolerance = 1e-5;
static const double fd_step = 1e-6;
static const double fd_tolerance = 1e-4;
static const double fd_floor = 1e-2;

enum { POOL_SHAPES = 200, ACTIVATION_SHAPES_PER_KIND = 120, DENSE_SHAPES = 150 };
enum { POOL_SPAN_SHAPES = 120 };
enum { POOL_FD_SHAPES = 60, ACTIVATION_FD_SHAPES_PER_KIND = 30, DENSE_FD_SHAPES = 50 };

/* ---- tallies, buffers ------------------------------------------------------------------ */

static void *allocate(int64_t count, size_t element_size) {
    void *values = malloc((size_t)(count > 0 ? count : 1) * element_size);
    if (!values) {
        fprintf(stderr, "out of memory allocating %lld values\n", (long long)count);
        exit(1);
    }
    return values;
}

static clcnn_status upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    const size_t bytes = (size_t)count * sizeof(float);
    clcnn_status status = buffer_create(ctx, bytes, out);
    if (status != CLCNN_OK)
        return status;
    return buffer_write(ctx, *out, 0, bytes, values);
}

/* A device buffer of count NaNs: an output whose unwritten elements show. */
static clcnn_status upload_nan(clcnn_context *ctx, int64_t count, cl_mem *out) {
    float *nans = test_floats(count);
    test_fill_nan(nans, count);
    clcnn_status status = upload(ctx, nans, count, out);
    free(nans);
    return status;
}

static clcnn_status download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    return buffer_read(ctx, buffer, 0, (size_t)count * sizeof(float), values);
}

/* ---- pooling: shapes -------------------------------------------------------------------- */

/* PyTorch's output size along one axis for padding before and after
 * (in + before + after >= size is the caller's). */
static int pool_output_size(int input, int size, int stride, int before, int after, int ceil_mode) {
    const int span = input + before + after - size;
    int output = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    /* The last window must start inside the input or its leading padding. */
    if (ceil_mode && (output - 1) * stride >= input + before)
        output--;
    return output;
}

static int64_t pool_input_count(const pool2d_params *p) {
    return (int64_t)p->batch * p->channels * p->in_height * p->in_width;
}

static int64_t pool_output_count(const pool2d_params *p) {
    return (int64_t)p->batch * p->channels * p->out_height * p->out_width;
}

/* A random pooling shape: sizes 1..5 (often rectangular), strides 1..3, padding up to
 * half the size, ceil mode on or off, inputs up to max_extent on a side. */
static void draw_pool_shape(test_rng *rng, pool_kind kind, int max_extent, pool2d_params *p,
                            int *ceil_mode) {
    for (;;) {
        memset(p, 0, sizeof(*p));
        p->kind = kind;
        p->batch = test_rand_int(rng, 0, 1) ? 1 : test_rand_int(rng, 2, 3);
        p->channels = test_rand_int(rng, 1, 3);
        p->size_h = test_rand_int(rng, 1, 5);
        p->size_w = test_rand_int(rng, 0, 2) == 0 ? p->size_h : test_rand_int(rng, 1, 5);
        p->stride_h = test_rand_int(rng, 1, 3);
        p->stride_w = test_rand_int(rng, 0, 1) ? p->stride_h : test_rand_int(rng, 1, 3);
        p->pad_top = test_rand_int(rng, 0, p->size_h / 2);
        p->pad_left = test_rand_int(rng, 0, p->size_w / 2);
        /* a third of the shapes pad the sides differently (ONNX's asymmetric pads) */
        const int asymmetric = test_rand_int(rng, 0, 2) == 0;
        p->pad_bottom = asymmetric ? test_rand_int(rng, 0, p->size_h / 2) : p->pad_top;
        p->pad_right = asymmetric ? test_rand_int(rng, 0, p->size_w / 2) : p->pad_left;
        p->asymmetric = asymmetric || test_rand_int(rng, 0, 1); /* symmetric either way */
        p->exclude_pad = kind == POOL_AVERAGE && test_rand_int(rng, 0, 1);
        p->in_height = test_rand_int(rng, 1, max_extent);
        p->in_width =
            test_rand_int(rng, 0, 2) == 0 ? p->in_height : test_rand_int(rng, 1, max_extent);
        *ceil_mode = test_rand_int(rng, 0, 1);
        if (p->in_height + p->pad_top + p->pad_bottom < p->size_h ||
            p->in_width + p->pad_left + p->pad_right < p->size_w)
            continue;
        p->out_height = pool_output_size(p->in_height, p->size_h, p->stride_h, p->pad_top,
                                         p->pad_bottom, *ceil_mode);
        p->out_width = pool_output_size(p->in_width, p->size_w, p->stride_w, p->pad_left,
                                        p->pad_right, *ceil_mode);
        return;
    }
}

/* A shape of the 2x2 max-pooling kernels' kind: 2x2 windows at stride 2, no padding
 * before; padding after and ceil mode drawn (an odd size in ceil mode, or with padding
 * after, has a partial last window, which the general kernels take). Rows up to 300
 * wide in a quarter of the cases, so that runs of 64 outputs come several to a row,
 * the last one short. */
static void draw_max_2x2_shape(test_rng *rng, int index, pool2d_params *p, int *ceil_mode) {
    memset(p, 0, sizeof(*p));
    p->kind = POOL_MAX;
    p->batch = test_rand_int(rng, 1, 2);
    p->channels = test_rand_int(rng, 1, 3);
    p->size_h = p->size_w = p->stride_h = p->stride_w = 2;
    p->asymmetric = 1;
    p->pad_bottom = test_rand_int(rng, 0, 1);
    p->pad_right = test_rand_int(rng, 0, 1);
    p->in_height = test_rand_int(rng, 2, 12);
    p->in_width = test_rand_int(rng, 2, index % 4 == 0 ? 300 : 40);
    *ceil_mode = test_rand_int(rng, 0, 1);
    p->out_height = pool_output_size(p->in_height, 2, 2, 0, p->pad_bottom, *ceil_mode);
    p->out_width = pool_output_size(p->in_width, 2, 2, 0, p->pad_right, *ceil_mode);
}

/* draw_max_2x2_shape with max_2x2, else draw_pool_shape. */
static void draw_shape(test_rng *rng, pool_kind kind, int max_2x2, int index, pool2d_params *p,
                       int *ceil_mode) {
    if (max_2x2)
        draw_max_2x2_shape(rng, index, p, ceil_mode);
    else
        draw_pool_shape(rng, kind, index % 4 == 0 ? 40 : 16, p, ceil_mode);
}

static void print_pool_case(const char *what, int index, const pool2d_params *p, int ceil_mode,
                            double error) {
    fprintf(stderr,
            "%s case %d: %s, batch %d, channels %d, input %dx%d, size %dx%d, stride %dx%d, "
            "pad %d,%d,%d,%d, exclude_pad %d, ceil %d, output %dx%d: error %.3g\n",
            what, index, p->kind == POOL_MAX ? "max" : "average", p->batch, p->channels,
            p->in_height, p->in_width, p->size_h, p->size_w, p->stride_h, p->stride_w, p->pad_top,
            p->pad_left, p->pad_bottom, p->pad_right, p->exclude_pad, ceil_mode, p->out_height,
            p->out_width, error);
}

/* ---- pooling: the test's own implementations, in double ---------------------------------- */

/* The window of output (oh, ow): rows [h0, h0 + size_h), columns [w0, w0 + size_w),
 * in input coordinates, padding included. */
static int window_row(const pool2d_params *p, int oh) {
    return oh * p->stride_h - p->pad_top;
}

static int window_column(const pool2d_params *p, int ow) {
    return ow * p->stride_w - p->pad_left;
}

static int inside(int position, int begin, int end) {
    return position >= begin && position < end;
}

/* Average pooling's divisor, counted cell by cell: the cells of the window that lie on
 * the input or its padding (on the input only with exclude_pad). */
static int average_divisor(const pool2d_params *p, int oh, int ow) {
    const int pads = !p->exclude_pad;
    int cells = 0;
    for (int r = 0; r < p->size_h; r++)
        for (int c = 0; c < p->size_w; c++)
            if (inside(window_row(p, oh) + r, -pads * p->pad_top,
                       p->in_height + pads * p->pad_bottom) &&
                inside(window_column(p, ow) + c, -pads * p->pad_left,
                       p->in_width + pads * p->pad_right))
                cells++;
    return cells;
}

/* Index within the plane of the first maximum of a window (cells on the input only;
 * a NaN counts as the maximum; -1 if the window misses the input). */
static int first_maximum(const pool2d_params *p, const float *plane, int oh, int ow) {
    int chosen = -1;
    for (int r = 0; r < p->size_h; r++)
        for (int c = 0; c < p->size_w; c++) {
            const int h = window_row(p, oh) + r, w = window_column(p, ow) + c;
            if (!inside(h, 0, p->in_height) || !inside(w, 0, p->in_width))
                continue;
            const int at = h * p->in_width + w;
            if (chosen < 0 || plane[at] > plane[chosen] || isnan(plane[at]))
                chosen = at;
        }
    return chosen;
}

/* The forward in double (max pooling assumes no NaN). */
static void pool_forward_double(const pool2d_params *p, const double *input, double *output) {
    const int64_t plane_in = (int64_t)p->in_height * p->in_width;
    const int64_t plane_out = (int64_t)p->out_height * p->out_width;
    for (int plane = 0; plane < p->batch * p->channels; plane++)
        for (int oh = 0; oh < p->out_height; oh++)
            for (int ow = 0; ow < p->out_width; ow++) {
                double best = -INFINITY, sum = 0.0;
                for (int r = 0; r < p->size_h; r++)
                    for (int c = 0; c < p->size_w; c++) {
                        const int h = window_row(p, oh) + r, w = window_column(p, ow) + c;
                        if (!inside(h, 0, p->in_height) || !inside(w, 0, p->in_width))
                            continue;
                        const double v = input[plane * plane_in + h * p->in_width + w];
                        sum += v;
                        if (v > best)
                            best = v;
                    }
                output[plane * plane_out + oh * p->out_width + ow] =
                    p->kind == POOL_MAX ? best : sum / average_divisor(p, oh, ow);
            }
}

/* The backward as a scatter from each output, in double, rounded to float at the end. */
static void pool_backward_scatter(const pool2d_params *p, const float *input,
                                  const float *grad_output, float *grad_input) {
    const int64_t plane_in = (int64_t)p->in_height * p->in_width;
    const int64_t plane_out = (int64_t)p->out_height * p->out_width;
    double *sums = test_doubles(pool_input_count(p));
    for (int64_t i = 0; i < pool_input_count(p); i++)
        sums[i] = 0.0;
    for (int plane = 0; plane < p->batch * p->channels; plane++)
        for (int oh = 0; oh < p->out_height; oh++)
            for (int ow = 0; ow < p->out_width; ow++) {
                const double g = grad_output[plane * plane_out + oh * p->out_width + ow];
                double *plane_sums = sums + plane * plane_in;
                if (p->kind == POOL_MAX) {
                    const int chosen = first_maximum(p, input + plane * plane_in, oh, ow);
                    if (chosen >= 0)
                        plane_sums[chosen] += g;
                    continue;
                }
                const double share = g / average_divisor(p, oh, ow);
                for (int r = 0; r < p->size_h; r++)
                    for (int c = 0; c < p->size_w; c++) {
                        const int h = window_row(p, oh) + r, w = window_column(p, ow) + c;
                        if (inside(h, 0, p->in_height) && inside(w, 0, p->in_width))
                            plane_sums[h * p->in_width + w] += share;
                    }
            }
    for (int64_t i = 0; i < pool_input_count(p); i++)
        grad_input[i] = (float)sums[i];
    free(sums);
}

/* ---- pooling: device runs ---------------------------------------------------------------- */

/* Max pooling's forward with indices on the device, checked: its output must be the
 * reference's bit for bit and its indices the first maxima found here. 0 if not. */
static int check_maxpool_forward_indices(clcnn_context *ctx, const pool2d_params *p,
                                         const float *input, cl_mem input_buffer,
                                         cl_mem indices_buffer) {
    const int64_t out_count = pool_output_count(p);
    const int64_t plane_in = (int64_t)p->in_height * p->in_width;
    const int64_t plane_out = (int64_t)p->out_height * p->out_width;
    cl_mem output_buffer = NULL;
    float *output = test_floats(out_count);
    float *expected = test_floats(out_count);
    int32_t *indices = allocate(out_count, sizeof(int32_t));
    int ok = CHECK_OK(ctx, upload_nan(ctx, out_count, &output_buffer)) &&
             CHECK_OK(ctx, pool2d_forward(ctx, p, input_buffer, output_buffer, indices_buffer)) &&
             CHECK_OK(ctx, download(ctx, output_buffer, output, out_count)) &&
             CHECK_OK(ctx, buffer_read(ctx, indices_buffer, 0, sizeof(int32_t) * (size_t)out_count,
                                       indices));
    if (ok) {
        pool2d_forward_ref(p, input, expected);
        if (!CHECK(test_bitwise_equal(output, expected, out_count))) {
            fprintf(stderr,
                    "maxpool forward with indices: the output differs from the reference\n");
            ok = 0;
        }
        for (int64_t i = 0; i < out_count && ok; i++) {
            const int64_t plane = i / plane_out;
            const int oh = (int)(i % plane_out / p->out_width), ow = (int)(i % p->out_width);
            const int want = first_maximum(p, input + plane * plane_in, oh, ow);
            if (!CHECK(indices[i] == want)) {
                fprintf(stderr, "maxpool forward: output %lld has index %d, not %d\n", (long long)i,
                        indices[i], want);
                ok = 0;
            }
        }
    }
    buffer_release(&output_buffer);
    free(output);
    free(expected);
    free(indices);
    return ok;
}

/* pool2d_backward on the device: grad_input starts as NaN on the device, or with
 * accumulate as the values grad_input holds, which the gradient is added to. Max pooling
 * runs its forward with indices first (checked, check_maxpool_forward_indices) and its
 * backward from them. */
static int run_pool_backward_device(clcnn_context *ctx, const pool2d_params *p, const float *input,
                                    const float *grad_output, int accumulate, float *grad_input) {
    const int is_max = p->kind == POOL_MAX;
    cl_mem input_buffer = NULL, indices_buffer = NULL, grad_output_buffer = NULL,
           grad_input_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, input, pool_input_count(p), &input_buffer)) &&
             CHECK_OK(ctx, upload(ctx, grad_output, pool_output_count(p), &grad_output_buffer));
    if (ok && accumulate)
        ok = CHECK_OK(ctx, upload(ctx, grad_input, pool_input_count(p), &grad_input_buffer));
    else if (ok)
        ok = CHECK_OK(ctx, upload_nan(ctx, pool_input_count(p), &grad_input_buffer));
    if (ok && is_max)
        ok = CHECK_OK(ctx, buffer_create(ctx, sizeof(int32_t) * (size_t)pool_output_count(p),
                                         &indices_buffer)) &&
             check_maxpool_forward_indices(ctx, p, input, input_buffer, indices_buffer);
    ok = ok &&
         CHECK_OK(ctx, pool2d_backward(ctx, p, indices_buffer, grad_output_buffer,
                                       grad_input_buffer, accumulate)) &&
         CHECK_OK(ctx, download(ctx, grad_input_buffer, grad_input, pool_input_count(p)));
    buffer_release(&input_buffer);
    buffer_release(&indices_buffer);
    buffer_release(&grad_output_buffer);
    buffer_release(&grad_input_buffer);
    return ok;
}

/* Max pooling on tied inputs with integer gradients: every sum is exact in float, so the
 * device, the reference and the scatter must agree exactly. A quarter of the cases also
 * hold a NaN or two, another quarter infinities (half the elements -inf, so whole windows
 * of -inf, and one +inf); a third add into a gradient of integers (accumulate). With
 * max_2x2, the shapes of draw_max_2x2_shape. */
static void run_maxpool_tie_shapes(clcnn_context *ctx, int max_2x2, int shape_count,
                                   uint64_t seed) {
    static const float tie_values[] = {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f};
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        pool2d_params p;
        int ceil_mode;
        draw_shape(&rng, POOL_MAX, max_2x2, index, &p, &ceil_mode);
        const int64_t in_count = pool_input_count(&p), out_count = pool_output_count(&p);
        float *input = test_floats(in_count);
        float *grad_output = test_floats(out_count);
        float *reference = test_floats(in_count);
        float *scatter = test_floats(in_count);
        float *device = test_floats(in_count);
        for (int64_t i = 0; i < in_count; i++)
            input[i] = tie_values[test_rand_int(&rng, 0, 4)];
        if (index % 4 == 1)
            for (int nans = test_rand_int(&rng, 1, 2); nans > 0; nans--)
                input[test_rand_int(&rng, 0, (int)in_count - 1)] = NAN;
        if (index % 4 == 3) {
            for (int64_t i = 0; i < in_count; i++)
                if (test_rand_int(&rng, 0, 1))
                    input[i] = -INFINITY;
            input[test_rand_int(&rng, 0, (int)in_count - 1)] = INFINITY;
        }
        /* Nonzero and mostly distinct, so a gradient sent to the wrong element shows. */
        for (int64_t i = 0; i < out_count; i++)
            grad_output[i] =
                (float)(test_rand_int(&rng, 1, 1000) * (test_rand_int(&rng, 0, 1) ? 1 : -1));
        const int accumulate = index % 3 == 2;
        if (accumulate)
            for (int64_t i = 0; i < in_count; i++)
                reference[i] = (float)test_rand_int(&rng, -1000, 1000);
        else
            test_fill_nan(reference, in_count);
        memcpy(device, reference, (size_t)in_count * sizeof(float));
        pool_backward_scatter(&p, input, grad_output, scatter);
        if (accumulate)
            for (int64_t i = 0; i < in_count; i++)
                scatter[i] += reference[i];
        pool2d_backward_ref(&p, input, grad_output, reference, accumulate);
        /* 0 when the device, the reference and the scatter agree bit for bit. */
        double error = INFINITY;
        if (run_pool_backward_device(ctx, &p, input, grad_output, accumulate, device) &&
            test_bitwise_equal(device, reference, in_count) &&
            test_bitwise_equal(scatter, reference, in_count))
            error = 0.0;
        if (!CHECK(test_tally_record(&result, error, 0.0)))
            print_pool_case(accumulate ? "maxpool backward ties, accumulating: device, reference "
                                         "and scatter differ"
                                       : "maxpool backward ties: device, reference and scatter "
                                         "differ",
                            index, &p, ceil_mode, error);
        free(input);
        free(grad_output);
        free(reference);
        free(scatter);
        free(device);
    }
    test_tally_print("maxpool backward, ties, exact", 44, "cases", &result);
    CHECK(result.cases >= 100);
}

/* Uniform inputs and gradients: device against reference within the tolerance (a third
 * of the cases adding into a gradient of uniform values) and against a second run of its
 * own bit for bit, and the reference against the scatter written here. */
static void run_pool_random_shapes(clcnn_context *ctx, pool_kind kind, int max_2x2, int shape_count,
                                   uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0}, scatter_result = {0};
    for (int index = 0; index < shape_count; index++) {
        pool2d_params p;
        int ceil_mode;
        draw_shape(&rng, kind, max_2x2, index, &p, &ceil_mode);
        const int64_t in_count = pool_input_count(&p), out_count = pool_output_count(&p);
        float *input = test_signed_floats(&rng, in_count);
        float *grad_output = test_signed_floats(&rng, out_count);
        float *reference = test_floats(in_count);
        float *scatter = test_floats(in_count);
        float *device = test_floats(in_count);
        test_fill_nan(reference, in_count);
        pool2d_backward_ref(&p, input, grad_output, reference, 0);
        pool_backward_scatter(&p, input, grad_output, scatter);
        const int accumulate = index % 3 == 2;
        float *expected = reference;
        float *accumulated = test_floats(in_count);
        if (accumulate) {
            test_fill_signed(&rng, device, in_count);
            memcpy(accumulated, device, (size_t)in_count * sizeof(float));
            pool2d_backward_ref(&p, input, grad_output, accumulated, 1);
            expected = accumulated;
        }
        float *again = test_floats(in_count);
        memcpy(again, device, (size_t)in_count * sizeof(float));
        double error = INFINITY;
        if (run_pool_backward_device(ctx, &p, input, grad_output, accumulate, device))
            error = max_relative_error(device, expected, in_count, 1.0);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            print_pool_case(accumulate ? "pool backward device vs reference, accumulating"
                                       : "pool backward device vs reference",
                            index, &p, ceil_mode, error);
        /* Deterministic: the same bits on a second run. */
        if (!CHECK(run_pool_backward_device(ctx, &p, input, grad_output, accumulate, again) &&
                   test_bitwise_equal(again, device, in_count)))
            print_pool_case("pool backward: a second run differs", index, &p, ceil_mode, 0.0);
        free(again);
        free(accumulated);
        /* Both in double, rounded once: they differ by at most the rounding. */
        const double scatter_error = max_relative_error(reference, scatter, in_count, 1.0);
        if (!CHECK(test_tally_record(&scatter_result, scatter_error, 1e-7)))
            print_pool_case("pool backward reference vs scatter", index, &p, ceil_mode,
                            scatter_error);
        free(input);
        free(grad_output);
        free(reference);
        free(scatter);
        free(device);
    }
    const char *name = kind == POOL_MAX ? "maxpool" : "avgpool";
    char label[96];
    snprintf(label, sizeof(label), "%s backward, device vs reference", name);
    test_tally_print(label, 44, "cases", &result);
    snprintf(label, sizeof(label), "%s backward, reference vs scatter", name);
    test_tally_print(label, 44, "cases", &scatter_result);
    CHECK(result.cases >= 100);
}

/* sum(forward(x) * G) in double. */
static double pool_loss(const pool2d_params *p, const double *input, const double *grad_output,
                        double *output_scratch) {
    pool_forward_double(p, input, output_scratch);
    double loss = 0.0;
    for (int64_t i = 0; i < pool_output_count(p); i++)
        loss += output_scratch[i] * grad_output[i];
    return loss;
}

/* Central differences of the loss with respect to each input. */
static void pool_finite_differences(const pool2d_params *p, const float *input,
                                    const float *grad_output, double *fd) {
    const int64_t in_count = pool_input_count(p), out_count = pool_output_count(p);
    double *x = test_doubles(in_count);
    double *g = test_doubles(out_count);
    double *scratch = test_doubles(out_count);
    for (int64_t i = 0; i < in_count; i++)
        x[i] = input[i];
    for (int64_t i = 0; i < out_count; i++)
        g[i] = grad_output[i];
    for (int64_t i = 0; i < in_count; i++) {
        const double saved = x[i];
        x[i] = saved + fd_step;
        const double up = pool_loss(p, x, g, scratch);
        x[i] = saved - fd_step;
        const double down = pool_loss(p, x, g, scratch);
        x[i] = saved;
        fd[i] = (up - down) / (2.0 * fd_step);
    }
    free(x);
    free(g);
    free(scratch);
}

static void run_pool_fd_shapes(clcnn_context *ctx, pool_kind kind, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally reference_result = {0}, device_result = {0};
    for (int index = 0; index < shape_count; index++) {
        pool2d_params p;
        int ceil_mode;
        draw_pool_shape(&rng, kind, 9, &p, &ceil_mode);
        if (p.batch * p.channels > 4)
            p.channels = 1;
        const int64_t in_count = pool_input_count(&p), out_count = pool_output_count(&p);
        float *input = test_floats(in_count);
        float *grad_output = test_floats(out_count);
        float *reference = test_floats(in_count);
        float *device = test_floats(in_count);
        double *fd = test_doubles(in_count);
        /* Distinct values 0.01 apart (far more than the step), in shuffled order. */
        for (int64_t i = 0; i < in_count; i++)
            input[i] = (float)(0.01 * (double)(i - in_count / 2));
        for (int64_t i = in_count - 1; i > 0; i--) {
            const int j = test_rand_int(&rng, 0, (int)i);
            const float swap = input[i];
            input[i] = input[j];
            input[j] = swap;
        }
        test_fill_signed(&rng, grad_output, out_count);
        pool_finite_differences(&p, input, grad_output, fd);
        pool2d_backward_ref(&p, input, grad_output, reference, 0);
        const double reference_error = test_fd_error(fd, reference, in_count, fd_floor);
        if (!CHECK(test_tally_record(&reference_result, reference_error, fd_tolerance)))
            print_pool_case("pool backward reference vs finite differences", index, &p, ceil_mode,
                            reference_error);
        double device_error = INFINITY;
        if (run_pool_backward_device(ctx, &p, input, grad_output, 0, device))
            device_error = test_fd_error(fd, device, in_count, fd_floor);
        if (!CHECK(test_tally_record(&device_result, device_error, fd_tolerance)))
            print_pool_case("pool backward device vs finite differences", index, &p, ceil_mode,
                            device_error);
        free(input);
        free(grad_output);
        free(reference);
        free(device);
        free(fd);
    }
    const char *name = kind == POOL_MAX ? "maxpool" : "avgpool";
    char label[96];
    snprintf(label, sizeof(label), "%s backward, reference vs fd", name);
    test_tally_print(label, 44, "cases", &reference_result);
    snprintf(label, sizeof(label), "%s backward, device vs fd", name);
    test_tally_print(label, 44, "cases", &device_result);
}

/* One plane, hand-made: runs the reference and the device and compares both with expected. */
static void check_pool_hand_case(clcnn_context *ctx, const char *what, const pool2d_params *p,
                                 const float *input, const float *grad_output,
                                 const float *expected) {
    const int64_t in_count = pool_input_count(p);
    float *reference = test_floats(in_count);
    float *device = test_floats(in_count);
    test_fill_nan(reference, in_count);
    pool2d_backward_ref(p, input, grad_output, reference, 0);
    const int device_ok = run_pool_backward_device(ctx, p, input, grad_output, 0, device);
    if (!CHECK(test_bitwise_equal(reference, expected, in_count)))
        fprintf(stderr, "%s: the reference differs from the expected gradient\n", what);
    if (!CHECK(device_ok && test_bitwise_equal(device, expected, in_count)))
        fprintf(stderr, "%s: the device differs from the expected gradient\n", what);
    free(reference);
    free(device);
}

static pool2d_params single_plane_max_pool(int height, int width, int size, int stride, int pad,
                                           int out_height, int out_width) {
    pool2d_params p = {0};
    p.kind = POOL_MAX;
    p.batch = 1;
    p.channels = 1;
    p.in_height = height;
    p.in_width = width;
    p.size_h = size;
    p.size_w = size;
    p.stride_h = stride;
    p.stride_w = stride;
    p.pad_top = p.pad_bottom = pad;
    p.pad_left = p.pad_right = pad;
    p.out_height = out_height;
    p.out_width = out_width;
    return p;
}

static void check_pool_hand_cases(clcnn_context *ctx) {
    {
        /* A 2x2 window of equal values: everything to the top-left. */
        const pool2d_params p = single_plane_max_pool(2, 2, 2, 2, 0, 1, 1);
        const float input[] = {3, 3, 3, 3}, grad_output[] = {5};
        const float expected[] = {5, 0, 0, 0};
        check_pool_hand_case(ctx, "2x2 tie", &p, input, grad_output, expected);
    }
    {
        /* Overlapping 2x2 windows over a constant 3x3: each picks its own top-left. */
        const pool2d_params p = single_plane_max_pool(3, 3, 2, 1, 0, 2, 2);
        const float input[9] = {7, 7, 7, 7, 7, 7, 7, 7, 7}, grad_output[] = {1, 2, 4, 8};
        const float expected[] = {1, 2, 0, 4, 8, 0, 0, 0, 0};
        check_pool_hand_case(ctx, "overlapping ties", &p, input, grad_output, expected);
    }
    {
        /* Overlapping 1x3 windows, stride 1, over one row: the 9 is the maximum of both
         * windows and gets the sum of their gradients. */
        pool2d_params p = single_plane_max_pool(1, 4, 1, 1, 0, 1, 2);
        p.size_w = 3;
        const float input[] = {0, 9, 0, 0}, grad_output[] = {5, 6};
        const float expected[] = {0, 11, 0, 0};
        check_pool_hand_case(ctx, "one element, two windows", &p, input, grad_output, expected);
    }
    {
        /* Negative values with padding 1: a padded zero would be larger, but padding never
         * wins; every 2x2 window holds one input element, which takes the gradient. */
        const pool2d_params p = single_plane_max_pool(2, 2, 2, 2, 1, 2, 2);
        const float input[] = {-1, -2, -3, -4}, grad_output[] = {1, 2, 3, 4};
        const float expected[] = {1, 2, 3, 4};
        check_pool_hand_case(ctx, "padding never wins", &p, input, grad_output, expected);
    }
    {
        /* A NaN is the maximum (with two, the last, as the forward and PyTorch decide). */
        const pool2d_params p = single_plane_max_pool(2, 4, 2, 2, 0, 1, 2);
        const float input[] = {1, NAN, NAN, 9, 2, 0, 0, NAN}, grad_output[] = {5, 6};
        const float expected[] = {0, 5, 0, 0, 0, 0, 0, 6};
        check_pool_hand_case(ctx, "NaN", &p, input, grad_output, expected);
    }
    {
        /* A window of -inf keeps its first element, as PyTorch's index starts there. */
        const pool2d_params p = single_plane_max_pool(2, 2, 2, 2, 0, 1, 1);
        const float input[] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, grad_output[] = {5};
        const float expected[] = {5, 0, 0, 0};
        check_pool_hand_case(ctx, "-inf window", &p, input, grad_output, expected);
    }
    {
        /* Stride larger than the window: uncovered elements get 0, not garbage. */
        const pool2d_params p = single_plane_max_pool(1, 5, 1, 3, 0, 1, 2);
        const float input[] = {1, 2, 3, 4, 5}, grad_output[] = {5, 6};
        const float expected[] = {5, 0, 0, 6, 0};
        check_pool_hand_case(ctx, "uncovered elements", &p, input, grad_output, expected);
    }
    {
        /* Average 2x2, stride 1, padding 1, over a 2x2 input: 3x3 windows, each of divisor
         * 4 (padding counts), each input element in 4 of them. */
        pool2d_params p = single_plane_max_pool(2, 2, 2, 1, 1, 3, 3);
        p.kind = POOL_AVERAGE;
        const float input[] = {0, 0, 0, 0};
        const float grad_output[] = {4, 8, 12, 16, 20, 24, 28, 32, 36};
        /* Element (0,0) is in windows (0,0), (0,1), (1,0), (1,1): (4+8+16+20)/4 = 12. */
        const float expected[] = {12, 16, 24, 28};
        check_pool_hand_case(ctx, "average with padding", &p, input, grad_output, expected);
    }
}

/* Max pooling's backward with other runs per work-item than the device's default
 * (CLCNN_ITEM_SPAN): 1 (an element per work-item, as on GPUs) and 7 (several runs per
 * row, the last one short), each on contexts of their own. */
static void run_maxpool_other_spans(void) {
    static const char *const spans[] = {"1", "7"};
    for (int i = 0; i < 2; i++) {
        setenv("CLCNN_ITEM_SPAN", spans[i], 1);
        clcnn_context *ctx = test_opencl_context();
        unsetenv("CLCNN_ITEM_SPAN");
        if (!CHECK(ctx != NULL))
            continue;
        CHECK(ctx->config.item_span == atoi(spans[i]));
        printf("max pooling's backward: runs of %d elements per work-item\n",
               ctx->config.item_span);
        check_pool_hand_cases(ctx);
        run_maxpool_tie_shapes(ctx, 0, POOL_SPAN_SHAPES, 7201 + (uint64_t)i);
        run_pool_random_shapes(ctx, POOL_MAX, 0, POOL_SPAN_SHAPES, 7301 + (uint64_t)i);
        run_maxpool_tie_shapes(ctx, 1, POOL_SPAN_SHAPES, 7211 + (uint64_t)i);
        run_pool_random_shapes(ctx, POOL_MAX, 1, POOL_SPAN_SHAPES, 7311 + (uint64_t)i);
        clcnn_context_destroy(ctx);
    }
}

/* ---- activations ------------------------------------------------------------------------ */

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

static double activation_double(activation_kind kind, double slope, double x) {
    switch (kind) {
    case ACTIVATION_RELU:
        return x > 0.0 ? x : 0.0;
    case ACTIVATION_LEAKY:
        return x > 0.0 ? x : slope * x;
    case ACTIVATION_SIGMOID:
        return 1.0 / (1.0 + exp(-x));
    case ACTIVATION_TANH:
        return tanh(x);
    case ACTIVATION_RELU6:
        return fmin(fmax(x, 0.0), 6.0);
    }
    return x;
}

/* activation_backward on the device; in place (grad_input is grad_output's buffer) or
 * into a buffer that starts as NaN. */
static int run_activation_backward_device(clcnn_context *ctx, activation_kind kind, float slope,
                                          int count, const float *output, const float *grad_output,
                                          int in_place, float *grad_input) {
    cl_mem output_buffer = NULL, grad_output_buffer = NULL, grad_input_buffer = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, output, count, &output_buffer)) &&
             CHECK_OK(ctx, upload(ctx, grad_output, count, &grad_output_buffer));
    if (ok && !in_place)
        ok = CHECK_OK(ctx, upload_nan(ctx, count, &grad_input_buffer));
    cl_mem target = in_place ? grad_output_buffer : grad_input_buffer;
    ok = ok &&
         CHECK_OK(ctx, activation_backward(ctx, kind, slope, count, output_buffer,
                                           grad_output_buffer, target)) &&
         CHECK_OK(ctx, download(ctx, target, grad_input, count));
    buffer_release(&output_buffer);
    buffer_release(&grad_output_buffer);
    buffer_release(&grad_input_buffer);
    return ok;
}

static void run_activation_shapes(clcnn_context *ctx, activation_kind kind, int shape_count,
                                  uint64_t seed) {
    /* Inputs whose outputs are exactly 0 (or 1): 0 for all, -200 for sigmoid, +-200
     * saturating sigmoid and tanh. */
    static const float special_inputs[] = {0.0f, -0.0f, -200.0f, 200.0f};
    test_rng rng = {seed};
    test_tally result = {0};
    int zero_outputs = 0;
    for (int index = 0; index < shape_count; index++) {
        const int count = index == 0 ? 1 : index == 1 ? 5000 : test_rand_int(&rng, 1, 5000);
        const float slope = kind == ACTIVATION_LEAKY ? test_rand_float(&rng, 0.001f, 0.5f) : 0.0f;
        const int in_place = index % 2;
        float *input = test_floats(count);
        float *output = test_floats(count);
        float *grad_output = test_floats(count);
        float *reference = test_floats(count);
        float *reference_in_place = test_floats(count);
        float *device = test_floats(count);
        for (int i = 0; i < count; i++)
            input[i] = test_rand_int(&rng, 0, 7) == 0 ? special_inputs[test_rand_int(&rng, 0, 3)]
                                                      : test_rand_float(&rng, -6.0f, 6.0f);
        activation_forward_ref(kind, slope, count, input, output);
        for (int i = 0; i < count; i++)
            zero_outputs += output[i] == 0.0f;
        test_fill_uniform(&rng, grad_output, count, -2.0f, 2.0f);
        test_fill_nan(reference, count);
        activation_backward_ref(kind, slope, count, output, grad_output, reference);
        /* The reference in place must give the same. */
        memcpy(reference_in_place, grad_output, (size_t)count * sizeof(float));
        activation_backward_ref(kind, slope, count, output, reference_in_place, reference_in_place);
        CHECK(test_bitwise_equal(reference_in_place, reference, count));
        double error = INFINITY;
        if (run_activation_backward_device(ctx, kind, slope, count, output, grad_output, in_place,
                                           device))
            error = max_relative_error(device, reference, count, 1.0);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            fprintf(stderr, "%s backward case %d: count %d, slope %.9g, in place %d: error %.3g\n",
                    activation_name(kind), index, count, slope, in_place, error);
        free(input);
        free(output);
        free(grad_output);
        free(reference);
        free(reference_in_place);
        free(device);
    }
    char label[96];
    snprintf(label, sizeof(label), "%s backward, device vs reference", activation_name(kind));
    test_tally_print(label, 44, "cases", &result);
    CHECK(zero_outputs > 0);
    CHECK(result.cases >= 100);
}

/* relu6 at and around its kinks, on the reference and the device: the forward
 * clamps to [0, 6], and the backward passes the gradient only where
 * 0 < x < 6, PyTorch's hardtanh rule (none at 0 or 6 themselves). */
static void check_relu6_boundaries(clcnn_context *ctx) {
    enum { N = 12 };
    const float below_six = nextafterf(6.0f, 0.0f), above_six = nextafterf(6.0f, 7.0f);
    const float input[N] = {-1.0f, -0.0f,     0.0f, 1e-30f, 3.0f,    below_six,
                            6.0f,  above_six, 7.0f, 200.0f, -200.0f, INFINITY};
    const float expected_output[N] = {0.0f, 0.0f, 0.0f, 1e-30f, 3.0f, below_six,
                                      6.0f, 6.0f, 6.0f, 6.0f,   0.0f, 6.0f};
    const float grad_output[N] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const float expected_grad[N] = {0, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0};
    float output[N], grad[N], device_output[N], device_grad[N];
    test_fill_nan(output, N);
    test_fill_nan(grad, N);
    test_fill_nan(device_output, N);
    test_fill_nan(device_grad, N);
    activation_forward_ref(ACTIVATION_RELU6, 0.0f, N, input, output);
    activation_backward_ref(ACTIVATION_RELU6, 0.0f, N, output, grad_output, grad);
    cl_mem input_buffer = NULL, output_buffer = NULL;
    const int ok = CHECK_OK(ctx, upload(ctx, input, N, &input_buffer)) &&
                   CHECK_OK(ctx, upload_nan(ctx, N, &output_buffer)) &&
                   CHECK_OK(ctx, activation_forward(ctx, ACTIVATION_RELU6, 0.0f, N, input_buffer,
                                                    output_buffer)) &&
                   CHECK_OK(ctx, download(ctx, output_buffer, device_output, N)) &&
                   run_activation_backward_device(ctx, ACTIVATION_RELU6, 0.0f, N, device_output,
                                                  grad_output, 0, device_grad);
    buffer_release(&input_buffer);
    buffer_release(&output_buffer);
    int failures = 0;
    for (int i = 0; i < N; i++) {
        const int good =
            output[i] == expected_output[i] && grad[i] == expected_grad[i] &&
            (!ok || (device_output[i] == expected_output[i] && device_grad[i] == expected_grad[i]));
        if (!CHECK(good)) {
            failures++;
            fprintf(stderr,
                    "relu6 at x = %.9g: reference y %.9g grad %.9g, device y %.9g grad %.9g; "
                    "expected y %.9g grad %.9g\n",
                    input[i], output[i], grad[i], device_output[i], device_grad[i],
                    expected_output[i], expected_grad[i]);
        }
    }
    CHECK(ok);
    printf("relu6 at its kinks (0, 6) and beyond: %d of %d values wrong\n", failures, N);
}

/* sum(f(x) * G) in double over every element. */
static double activation_loss(activation_kind kind, double slope, int count, const double *x,
                              const double *g) {
    double loss = 0.0;
    for (int i = 0; i < count; i++)
        loss += activation_double(kind, slope, x[i]) * g[i];
    return loss;
}

static void run_activation_fd_shapes(clcnn_context *ctx, activation_kind kind, int shape_count,
                                     uint64_t seed) {
    test_rng rng = {seed};
    test_tally reference_result = {0}, device_result = {0};
    for (int index = 0; index < shape_count; index++) {
        const int count = test_rand_int(&rng, 1, 300);
        const float slope = kind == ACTIVATION_LEAKY ? test_rand_float(&rng, 0.001f, 0.5f) : 0.0f;
        float *input = test_floats(count);
        float *output = test_floats(count);
        float *grad_output = test_floats(count);
        float *reference = test_floats(count);
        float *device = test_floats(count);
        double *x = test_doubles(count);
        double *g = test_doubles(count);
        double *fd = test_doubles(count);
        /* relu6 also saturates above 6: its inputs reach past it. */
        const float range = kind == ACTIVATION_RELU6 ? 9.0f : 6.0f;
        for (int i = 0; i < count; i++) {
            /* Away from relu's kink at 0 (and relu6's at 6), where the derivative does
             * not exist. */
            do
                input[i] = test_rand_float(&rng, -range, range);
            while (fabsf(input[i]) < 1e-3f ||
                   (kind == ACTIVATION_RELU6 && fabsf(input[i] - 6.0f) < 1e-3f));
            x[i] = input[i];
        }
        test_fill_uniform(&rng, grad_output, count, -2.0f, 2.0f);
        for (int i = 0; i < count; i++)
            g[i] = grad_output[i];
        for (int i = 0; i < count; i++) {
            const double saved = x[i];
            x[i] = saved + fd_step;
            const double up = activation_loss(kind, slope, count, x, g);
            x[i] = saved - fd_step;
            const double down = activation_loss(kind, slope, count, x, g);
            x[i] = saved;
            fd[i] = (up - down) / (2.0 * fd_step);
        }
        activation_forward_ref(kind, slope, count, input, output);
        activation_backward_ref(kind, slope, count, output, grad_output, reference);
        const double reference_error = test_fd_error(fd, reference, count, fd_floor);
        if (!CHECK(test_tally_record(&reference_result, reference_error, fd_tolerance)))
            fprintf(stderr, "%s backward reference vs fd, case %d: count %d: error %.3g\n",
                    activation_name(kind), index, count, reference_error);
        double device_error = INFINITY;
        if (run_activation_backward_device(ctx, kind, slope, count, output, grad_output, 0, device))
            device_error = test_fd_error(fd, device, count, fd_floor);
        if (!CHECK(test_tally_record(&device_result, device_error, fd_tolerance)))
            fprintf(stderr, "%s backward device vs fd, case %d: count %d: error %.3g\n",
                    activation_name(kind), index, count, device_error);
        free(input);
        free(output);
        free(grad_output);
        free(reference);
        free(device);
        free(x);
        free(g);
        free(fd);
    }
    char label[96];
    snprintf(label, sizeof(label), "%s backward, reference vs fd", activation_name(kind));
    test_tally_print(label, 44, "cases", &reference_result);
    snprintf(label, sizeof(label), "%s backward, device vs fd", activation_name(kind));
    test_tally_print(label, 44, "cases", &device_result);
}

/* ---- dense -------------------------------------------------------------------------------- */

typedef struct dense_data {
    float *input, *weight, *bias, *grad_output;
} dense_data;

typedef struct dense_grads {
    float *input, *weight, *bias;
} dense_grads;

static int64_t dense_input_count(const dense_params *p) {
    return (int64_t)p->batch * p->in_features;
}

static int64_t dense_weight_count(const dense_params *p) {
    return (int64_t)p->out_features * p->in_features;
}

static int64_t dense_output_count(const dense_params *p) {
    return (int64_t)p->batch * p->out_features;
}

static void dense_data_create(test_rng *rng, const dense_params *p, dense_data *d) {
    d->input = test_floats(dense_input_count(p));
    d->weight = test_floats(dense_weight_count(p));
    d->bias = test_floats(p->out_features);
    d->grad_output = test_floats(dense_output_count(p));
    test_fill_signed(rng, d->input, dense_input_count(p));
    test_fill_signed(rng, d->weight, dense_weight_count(p));
    test_fill_signed(rng, d->bias, p->out_features);
    test_fill_signed(rng, d->grad_output, dense_output_count(p));
}

static void dense_data_free(dense_data *d) {
    free(d->input);
    free(d->weight);
    free(d->bias);
    free(d->grad_output);
}

/* Gradient arrays starting as NaN. */
static void dense_grads_create(const dense_params *p, dense_grads *g) {
    g->input = test_floats(dense_input_count(p));
    g->weight = test_floats(dense_weight_count(p));
    g->bias = test_floats(p->out_features);
    test_fill_nan(g->input, dense_input_count(p));
    test_fill_nan(g->weight, dense_weight_count(p));
    test_fill_nan(g->bias, p->out_features);
}

static void dense_grads_free(dense_grads *g) {
    free(g->input);
    free(g->weight);
    free(g->bias);
}

/* dense_backward on the device; without bias it gets no bias gradient buffer at all. */
static int run_dense_backward_device(clcnn_context *ctx, const dense_params *p, const dense_data *d,
                                     dense_grads *out) {
    cl_mem input = NULL, weight = NULL, grad_output = NULL;
    cl_mem grad_input = NULL, grad_weight = NULL, grad_bias = NULL;
    int ok = CHECK_OK(ctx, upload(ctx, d->input, dense_input_count(p), &input)) &&
             CHECK_OK(ctx, upload(ctx, d->weight, dense_weight_count(p), &weight)) &&
             CHECK_OK(ctx, upload(ctx, d->grad_output, dense_output_count(p), &grad_output)) &&
             CHECK_OK(ctx, upload_nan(ctx, dense_input_count(p), &grad_input)) &&
             CHECK_OK(ctx, upload_nan(ctx, dense_weight_count(p), &grad_weight));
    if (ok && p->has_bias)
        ok = CHECK_OK(ctx, upload_nan(ctx, p->out_features, &grad_bias));
    const conv2d_params as_convolution = dense_as_convolution(p);
    const conv2d_plan plan = conv2d_plan_for(ctx, &as_convolution);
    ok = ok &&
         CHECK_OK(ctx, dense_backward(ctx, &plan, p, input, weight, grad_output, grad_input,
                                      grad_weight, grad_bias)) &&
         CHECK_OK(ctx, download(ctx, grad_input, out->input, dense_input_count(p))) &&
         CHECK_OK(ctx, download(ctx, grad_weight, out->weight, dense_weight_count(p)));
    if (ok && p->has_bias)
        ok = CHECK_OK(ctx, download(ctx, grad_bias, out->bias, p->out_features));
    buffer_release(&input);
    buffer_release(&weight);
    buffer_release(&grad_output);
    buffer_release(&grad_input);
    buffer_release(&grad_weight);
    buffer_release(&grad_bias);
    return ok;
}

/* Worst error of the three gradients (the bias only with has_bias). */
static double dense_grads_error(const dense_params *p, const dense_grads *actual,
                                const dense_grads *expected) {
    double error = max_relative_error(actual->input, expected->input, dense_input_count(p), 1.0);
    error = fmax(error,
                 max_relative_error(actual->weight, expected->weight, dense_weight_count(p), 1.0));
    if (p->has_bias)
        error = fmax(error, max_relative_error(actual->bias, expected->bias, p->out_features, 1.0));
    return error;
}

static void print_dense_case(const char *what, int index, const dense_params *p, double error) {
    fprintf(stderr, "%s case %d: batch %d, in %d, out %d, bias %d: error %.3g\n", what, index,
            p->batch, p->in_features, p->out_features, p->has_bias, error);
}

static int draw_dense_size(test_rng *rng, int largest) {
    return test_rand_int(rng, 0, 3) == 0 ? test_rand_int(rng, 1, 9)
                                         : test_rand_int(rng, 1, largest);
}

static void run_dense_shapes(clcnn_context *ctx, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shape_count; index++) {
        dense_params p = {0};
        if (index == 0) { /* the smallest and the largest */
            p.batch = p.in_features = p.out_features = 1;
        } else if (index == 1) {
            p.batch = 70;
            p.in_features = p.out_features = 300;
        } else {
            p.batch = draw_dense_size(&rng, 70);
            p.in_features = draw_dense_size(&rng, 300);
            p.out_features = draw_dense_size(&rng, 300);
        }
        p.has_bias = index % 2 == 0 || test_rand_int(&rng, 0, 1);
        dense_data d;
        dense_data_create(&rng, &p, &d);
        dense_grads reference, device;
        dense_grads_create(&p, &reference);
        dense_grads_create(&p, &device);
        dense_backward_ref(&p, d.input, d.weight, d.grad_output, reference.input, reference.weight,
                           p.has_bias ? reference.bias : NULL);
        double error = INFINITY;
        if (run_dense_backward_device(ctx, &p, &d, &device))
            error = dense_grads_error(&p, &device, &reference);
        if (!CHECK(test_tally_record(&result, error, tolerance)))
            print_dense_case("dense backward device vs reference", index, &p, error);
        dense_data_free(&d);
        dense_grads_free(&reference);
        dense_grads_free(&device);
    }
    test_tally_print("dense backward, device vs reference", 44, "cases", &result);
    CHECK(result.cases >= 100);
}

/* sum((x W^T + b) * G) in double. */
static double dense_loss(const dense_params *p, const double *x, const double *w, const double *b,
                         const double *g) {
    double loss = 0.0;
    for (int n = 0; n < p->batch; n++)
        for (int o = 0; o < p->out_features; o++) {
            double y = p->has_bias ? b[o] : 0.0;
            for (int i = 0; i < p->in_features; i++)
                y += x[n * p->in_features + i] * w[o * p->in_features + i];
            loss += y * g[n * p->out_features + o];
        }
    return loss;
}

/* Central differences of dense_loss with respect to each of count values of `wrt`
 * (one of x, w, b). */
static void dense_differences(const dense_params *p, double *x, double *w, double *b,
                              const double *g, double *wrt, int64_t count, double *fd) {
    for (int64_t i = 0; i < count; i++) {
        const double saved = wrt[i];
        wrt[i] = saved + fd_step;
        const double up = dense_loss(p, x, w, b, g);
        wrt[i] = saved - fd_step;
        const double down = dense_loss(p, x, w, b, g);
        wrt[i] = saved;
        fd[i] = (up - down) / (2.0 * fd_step);
    }
}

/* Worst finite-difference error of the three gradients. */
static double dense_fd_error(const dense_params *p, const dense_grads *grads, const double *fd_x,
                             const double *fd_w, const double *fd_b) {
    double error = test_fd_error(fd_x, grads->input, dense_input_count(p), fd_floor);
    error = fmax(error, test_fd_error(fd_w, grads->weight, dense_weight_count(p), fd_floor));
    if (p->has_bias)
        error = fmax(error, test_fd_error(fd_b, grads->bias, p->out_features, fd_floor));
    return error;
}

static void run_dense_fd_shapes(clcnn_context *ctx, int shape_count, uint64_t seed) {
    test_rng rng = {seed};
    test_tally reference_result = {0}, device_result = {0};
    for (int index = 0; index < shape_count; index++) {
        dense_params p = {0};
        p.batch = test_rand_int(&rng, 1, 4);
        p.in_features = test_rand_int(&rng, 1, 12);
        p.out_features = test_rand_int(&rng, 1, 12);
        p.has_bias = test_rand_int(&rng, 0, 1);
        dense_data d;
        dense_data_create(&rng, &p, &d);
        double *x = test_to_doubles(d.input, dense_input_count(&p));
        double *w = test_to_doubles(d.weight, dense_weight_count(&p));
        double *b = test_to_doubles(d.bias, p.out_features);
        double *g = test_to_doubles(d.grad_output, dense_output_count(&p));
        double *fd_x = test_doubles(dense_input_count(&p));
        double *fd_w = test_doubles(dense_weight_count(&p));
        double *fd_b = test_doubles(p.out_features);
        dense_differences(&p, x, w, b, g, x, dense_input_count(&p), fd_x);
        dense_differences(&p, x, w, b, g, w, dense_weight_count(&p), fd_w);
        dense_differences(&p, x, w, b, g, b, p.out_features, fd_b);

        dense_grads reference, device;
        dense_grads_create(&p, &reference);
        dense_grads_create(&p, &device);
        dense_backward_ref(&p, d.input, d.weight, d.grad_output, reference.input, reference.weight,
                           p.has_bias ? reference.bias : NULL);
        const double reference_error = dense_fd_error(&p, &reference, fd_x, fd_w, fd_b);
        if (!CHECK(test_tally_record(&reference_result, reference_error, fd_tolerance)))
            print_dense_case("dense backward reference vs fd", index, &p, reference_error);
        double device_error = INFINITY;
        if (run_dense_backward_device(ctx, &p, &d, &device))
            device_error = dense_fd_error(&p, &device, fd_x, fd_w, fd_b);
        if (!CHECK(test_tally_record(&device_result, device_error, fd_tolerance)))
            print_dense_case("dense backward device vs fd", index, &p, device_error);

        dense_data_free(&d);
        dense_grads_free(&reference);
        dense_grads_free(&device);
        free(x);
        free(w);
        free(b);
        free(g);
        free(fd_x);
        free(fd_w);
        free(fd_b);
    }
    test_tally_print("dense backward, reference vs fd", 44, "cases", &reference_result);
    test_tally_print("dense backward, device vs fd", 44, "cases", &device_result);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(ctx));
    const double start = clock_seconds();

    printf("max pooling's backward: runs of %d elements per work-item\n", ctx->config.item_span);
    check_pool_hand_cases(ctx);
    run_maxpool_tie_shapes(ctx, 0, POOL_SHAPES, 7001);
    run_pool_random_shapes(ctx, POOL_MAX, 0, POOL_SHAPES, 7002);
    run_pool_random_shapes(ctx, POOL_AVERAGE, 0, POOL_SHAPES, 7003);
    run_maxpool_tie_shapes(ctx, 1, POOL_SHAPES, 7011);
    run_pool_random_shapes(ctx, POOL_MAX, 1, POOL_SHAPES, 7012);
    run_pool_fd_shapes(ctx, POOL_MAX, POOL_FD_SHAPES, 7101);
    run_pool_fd_shapes(ctx, POOL_AVERAGE, POOL_FD_SHAPES, 7102);
    run_maxpool_other_spans();

    const activation_kind kinds[] = {ACTIVATION_RELU, ACTIVATION_LEAKY, ACTIVATION_SIGMOID,
                                     ACTIVATION_TANH, ACTIVATION_RELU6};
    check_relu6_boundaries(ctx);
    for (int k = 0; k < 5; k++) {
        run_activation_shapes(ctx, kinds[k], ACTIVATION_SHAPES_PER_KIND, 8001 + (uint64_t)k);
        run_activation_fd_shapes(ctx, kinds[k], ACTIVATION_FD_SHAPES_PER_KIND, 8101 + (uint64_t)k);
    }
    /* The element-wise kernels' other spans (the default ran above). */
    for (int span = 1; span < TEST_ITEM_SPANS; span++) {
        clcnn_context *spanned = test_opencl_context_with_span(test_item_spans[span]);
        if (!CHECK(spanned != NULL))
            break;
        printf("element-wise span: %s\n", test_item_spans[span]);
        for (int k = 0; k < 5; k++)
            run_activation_shapes(spanned, kinds[k], ACTIVATION_SHAPES_PER_KIND,
                                  8001 + (uint64_t)k);
        clcnn_context_destroy(spanned);
    }

    run_dense_shapes(ctx, DENSE_SHAPES, 9001);
    run_dense_fd_shapes(ctx, DENSE_FD_SHAPES, 9101);

    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(ctx);
    return test_finish();
}
