/* The operations behind the graph layers: add, mul, concat and global
 * average pooling, forward and backward, through their entry points op_*.
 *
 * Three kinds of check:
 *
 * 1. OpenCL against the CPU reference (X_forward_ref, X_backward_ref) on
 *    random shapes from fixed seeds (a failing case prints its shape): batch
 *    1..8, channels 1..70, H and W 1..40 (often odd, often unequal) or
 *    vectors (H = W = 1); add with 2..4 inputs, concat with 2..5, mul with b
 *    broadcast per channel and of the same shape. Outputs that are
 *    overwritten start as NaN, so an element never written shows; gradients
 *    accumulated into (accumulate = 1) start as random values. The
 *    comparison is max_relative_error(device, reference, n, 1.0) <= 1e-5, and
 *    bit for bit where the operation is a copy or a single float addition
 *    (concat both ways, add backward). Concat is also compared with a
 *    concatenation written here, and a single input's copy must leave the
 *    rest of the output alone.
 *
 * 2. Finite differences against forwards written here in double, independent
 *    of the library: loss = sum(forward(x) * G) for a random G, central
 *    differences with h = 1e-6 with respect to every element of every input,
 *    compared with the backward given grad_output = G on the reference device
 *    and on OpenCL as |fd - backward| / max(|fd|, 1e-2) <= 1e-4.
 *
 * 3. Hand-made cases with known numbers, on both devices: sums, products
 *    with and without broadcast, a tensor added to or multiplied by itself
 *    (one gradient buffer given twice, the second time accumulating), channel
 *    and vector concatenation, plane means; and shapes that are refused.
 */
#include "ops/add.h"
#include "ops/concat.h"
#include "ops/global_avgpool.h"
#include "ops/mul.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const double tolerance = 1e-5;
static const double hand_tolerance = 1e-6;
static const double fd_step = 1e-6;
static const double fd_tolerance = 1e-4;
static const double fd_floor = 1e-2;

enum { MAX_INPUTS = 5 };
enum { ADD_SHAPES = 120, MUL_SHAPES = 200, CONCAT_SHAPES = 120, POOL_SHAPES = 120 };
enum { FD_SHAPES = 40 };

/* ---- tallies, arrays ------------------------------------------------------------------- */

static void copy_floats(float *to, const float *from, int64_t count) {
    memcpy(to, from, (size_t)count * sizeof(float));
}

/* For results that must match bit for bit: 0 if they do, else their relative
 * error (infinite when the bits differ but the values compare equal, e.g. a
 * zero's sign). */
static double exact_error(const float *actual, const float *expected, int64_t count) {
    if (test_bitwise_equal(actual, expected, count))
        return 0.0;
    const double error = max_relative_error(actual, expected, count, 1.0);
    return error > 0.0 ? error : INFINITY;
}

/* ---- the test's arrays as op arguments ------------------------------------------------------
 * On the reference device an op works on the arrays themselves; on OpenCL on
 * buffers uploaded from them and read back into them afterwards. A NULL array
 * is an absent tensor (a gradient that is not wanted). */

static int make_buf(clcnn_context *ctx, float *values, int64_t count, buf *out) {
    out->host = NULL;
    out->mem = NULL;
    if (!values)
        return 1;
    if (!context_is_opencl(ctx)) {
        out->host = values;
        return 1;
    }
    const size_t bytes = (size_t)count * sizeof(float);
    return CHECK_OK(ctx, buffer_create(ctx, bytes, &out->mem)) &&
           CHECK_OK(ctx, buffer_write(ctx, out->mem, 0, bytes, values));
}

static int read_buf(clcnn_context *ctx, buf b, float *values, int64_t count) {
    if (!values || !context_is_opencl(ctx))
        return 1;
    return CHECK_OK(ctx, buffer_read(ctx, b.mem, 0, (size_t)count * sizeof(float), values));
}

static void release_buf(buf *b) {
    buffer_release(&b->mem);
    b->host = NULL;
}

/* ---- shapes ------------------------------------------------------------------------------- */

typedef struct shape {
    int batch, channels, height, width;
} shape;

static int shape_spatial(const shape *s) {
    return s->height * s->width;
}

static int64_t shape_count(const shape *s) {
    return (int64_t)s->batch * s->channels * s->height * s->width;
}

/* Height and width: a vector (1x1) one time in four, up to 40 on a side one time in
 * four, else up to 12; independent, so often odd and unequal. */
static void draw_extent(test_rng *rng, int index, shape *s) {
    const int form = index % 4;
    const int largest = form == 1 ? 40 : 12;
    s->height = form == 0 ? 1 : test_rand_int(rng, 1, largest);
    s->width = form == 0 ? 1 : test_rand_int(rng, 1, largest);
}

/* Case 0 is the smallest shape, case 1 the largest; the others are random. */
static shape draw_shape(test_rng *rng, int index) {
    shape s;
    if (index == 0)
        return (shape){1, 1, 1, 1};
    if (index == 1)
        return (shape){8, 70, 40, 40};
    s.batch = test_rand_int(rng, 1, 8);
    s.channels =
        test_rand_int(rng, 0, 2) == 0 ? test_rand_int(rng, 1, 70) : test_rand_int(rng, 1, 16);
    draw_extent(rng, index, &s);
    return s;
}

static void print_shape_case(const char *what, int index, const shape *s, const char *extra,
                             double error) {
    fprintf(stderr, "%s case %d: batch %d, channels %d, %dx%d%s: error %.3g\n", what, index,
            s->batch, s->channels, s->height, s->width, extra, error);
}

/* ---- runs on a context ---------------------------------------------------------------------- */

static int run_add_forward(clcnn_context *ctx, int64_t count, int input_count, float *const *inputs,
                           float *output) {
    buf in[MAX_INPUTS] = {{0}}, out = {0};
    int ok = 1;
    for (int k = 0; k < input_count; k++)
        ok = ok && make_buf(ctx, inputs[k], count, &in[k]);
    ok = ok && make_buf(ctx, output, count, &out) &&
         CHECK_OK(ctx, op_add_forward(ctx, count, input_count, in, out, 0)) &&
         read_buf(ctx, out, output, count);
    for (int k = 0; k < input_count; k++)
        release_buf(&in[k]);
    release_buf(&out);
    return ok;
}

/* The same array may be given as several gradients: it is then one buffer.
 * relu_y: the output of a relu fused into the add, or NULL. */
static int run_add_backward(clcnn_context *ctx, int64_t count, int input_count, float *grad_output,
                            float *relu_y, float *const *grad_inputs, const int *accumulate) {
    buf g = {0}, r = {0}, grads[MAX_INPUTS] = {{0}};
    int first[MAX_INPUTS]; /* the first k with this array */
    int ok = make_buf(ctx, grad_output, count, &g) && (!relu_y || make_buf(ctx, relu_y, count, &r));
    for (int k = 0; k < input_count; k++) {
        first[k] = k;
        for (int j = 0; j < k; j++)
            if (grad_inputs[j] == grad_inputs[k] && first[k] == k)
                first[k] = j;
        if (first[k] == k)
            ok = ok && make_buf(ctx, grad_inputs[k], count, &grads[k]);
        else
            grads[k] = grads[first[k]];
    }
    ok = ok && CHECK_OK(ctx, op_add_backward(ctx, count, input_count, g, r, grads, accumulate));
    for (int k = 0; k < input_count; k++)
        if (first[k] == k)
            ok = ok && read_buf(ctx, grads[k], grad_inputs[k], count);
    release_buf(&g);
    release_buf(&r);
    for (int k = 0; k < input_count; k++)
        if (first[k] == k)
            release_buf(&grads[k]);
    return ok;
}

static int64_t mul_b_count(const shape *s, int broadcast) {
    return broadcast ? (int64_t)s->batch * s->channels : shape_count(s);
}

static int run_mul_forward(clcnn_context *ctx, const shape *s, int broadcast, float *a, float *b,
                           float *output) {
    buf ba = {0}, bb = {0}, out = {0};
    int ok = make_buf(ctx, a, shape_count(s), &ba) &&
             make_buf(ctx, b, mul_b_count(s, broadcast), &bb) &&
             make_buf(ctx, output, shape_count(s), &out) &&
             CHECK_OK(ctx, op_mul_forward(ctx, s->batch, s->channels, shape_spatial(s), broadcast,
                                          ba, bb, out)) &&
             read_buf(ctx, out, output, shape_count(s));
    release_buf(&ba);
    release_buf(&bb);
    release_buf(&out);
    return ok;
}

/* b may be a and grad_b may be grad_a (a tensor multiplied by itself): one buffer each. */
static int run_mul_backward(clcnn_context *ctx, const shape *s, int broadcast, float *a, float *b,
                            float *grad_output, float *grad_a, int accumulate_a, float *grad_b,
                            int accumulate_b) {
    const int64_t count = shape_count(s), b_count = mul_b_count(s, broadcast);
    const int same_factor = a == b, same_grad = grad_a && grad_a == grad_b;
    buf ba = {0}, bb = {0}, g = {0}, ga = {0}, gb = {0};
    int ok = make_buf(ctx, a, count, &ba) && make_buf(ctx, grad_output, count, &g) &&
             make_buf(ctx, grad_a, count, &ga);
    if (same_factor)
        bb = ba;
    else
        ok = ok && make_buf(ctx, b, b_count, &bb);
    if (same_grad)
        gb = ga;
    else
        ok = ok && make_buf(ctx, grad_b, b_count, &gb);
    ok = ok &&
         CHECK_OK(ctx, op_mul_backward(ctx, s->batch, s->channels, shape_spatial(s), broadcast, ba,
                                       bb, g, ga, accumulate_a, gb, accumulate_b)) &&
         read_buf(ctx, ga, grad_a, count);
    if (!same_grad)
        ok = ok && read_buf(ctx, gb, grad_b, b_count);
    release_buf(&ba);
    if (!same_factor)
        release_buf(&bb);
    release_buf(&g);
    release_buf(&ga);
    if (!same_grad)
        release_buf(&gb);
    return ok;
}

/* A concatenation: batch images of `spatial` elements per channel, input k of
 * channels[k] channels at offsets[k] of the output's out_channels. */
typedef struct concat_shape {
    int batch, spatial, input_count;
    int channels[MAX_INPUTS], offsets[MAX_INPUTS];
    int out_channels;
} concat_shape;

static int64_t concat_input_count(const concat_shape *s, int k) {
    return (int64_t)s->batch * s->channels[k] * s->spatial;
}

static int64_t concat_output_count(const concat_shape *s) {
    return (int64_t)s->batch * s->out_channels * s->spatial;
}

/* Copies every input (k = -1) or input k alone into output. */
static int run_concat_forward(clcnn_context *ctx, const concat_shape *s, int only,
                              float *const *inputs, float *output) {
    buf out = {0};
    int ok = make_buf(ctx, output, concat_output_count(s), &out);
    for (int k = 0; k < s->input_count && ok; k++) {
        if (only >= 0 && k != only)
            continue;
        buf in = {0};
        ok = make_buf(ctx, inputs[k], concat_input_count(s, k), &in) &&
             CHECK_OK(ctx, op_concat_forward(ctx, s->batch, s->channels[k], s->out_channels,
                                             s->offsets[k], s->spatial, in, out));
        release_buf(&in);
    }
    ok = ok && read_buf(ctx, out, output, concat_output_count(s));
    release_buf(&out);
    return ok;
}

static int run_concat_backward(clcnn_context *ctx, const concat_shape *s, float *grad_output,
                               float *const *grad_inputs, const int *accumulate) {
    buf g = {0};
    int ok = make_buf(ctx, grad_output, concat_output_count(s), &g);
    for (int k = 0; k < s->input_count && ok; k++) {
        buf grad = {0};
        ok = make_buf(ctx, grad_inputs[k], concat_input_count(s, k), &grad) &&
             CHECK_OK(ctx, op_concat_backward(ctx, s->batch, s->channels[k], s->out_channels,
                                              s->offsets[k], s->spatial, g, grad, accumulate[k])) &&
             read_buf(ctx, grad, grad_inputs[k], concat_input_count(s, k));
        release_buf(&grad);
    }
    release_buf(&g);
    return ok;
}

static int64_t planes_of(const shape *s) {
    return (int64_t)s->batch * s->channels;
}

static int run_pool_forward(clcnn_context *ctx, const shape *s, float *input, float *output) {
    buf in = {0}, out = {0};
    int ok = make_buf(ctx, input, shape_count(s), &in) &&
             make_buf(ctx, output, planes_of(s), &out) &&
             CHECK_OK(ctx, op_global_avgpool_forward(ctx, s->batch, s->channels, shape_spatial(s),
                                                     in, out)) &&
             read_buf(ctx, out, output, planes_of(s));
    release_buf(&in);
    release_buf(&out);
    return ok;
}

static int run_pool_backward(clcnn_context *ctx, const shape *s, float *grad_output,
                             float *grad_input, int accumulate) {
    buf g = {0}, grad = {0};
    int ok = make_buf(ctx, grad_output, planes_of(s), &g) &&
             make_buf(ctx, grad_input, shape_count(s), &grad) &&
             CHECK_OK(ctx, op_global_avgpool_backward(ctx, s->batch, s->channels, shape_spatial(s),
                                                      g, grad, accumulate)) &&
             read_buf(ctx, grad, grad_input, shape_count(s));
    release_buf(&g);
    release_buf(&grad);
    return ok;
}

/* ---- add: device against reference ----------------------------------------------------------- */

static void run_add_shapes(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally forward = {0}, backward = {0};
    int accumulated = 0, overwritten = 0, fused_relus = 0;
    for (int index = 0; index < cases; index++) {
        const shape s = draw_shape(&rng, index);
        const int64_t count = shape_count(&s);
        const int input_count = index == 1 ? 4 : test_rand_int(&rng, 2, 4);
        float *inputs[MAX_INPUTS];
        for (int k = 0; k < input_count; k++) {
            inputs[k] = test_floats(count);
            test_fill_signed(&rng, inputs[k], count);
        }
        float *reference = test_floats(count);
        float *device = test_floats(count);
        test_fill_nan(reference, count);
        test_fill_nan(device, count);
        add_forward_ref(count, input_count, (const float *const *)inputs, reference);
        double error = INFINITY;
        if (run_add_forward(ctx, count, input_count, inputs, device))
            error = max_relative_error(device, reference, count, 1.0);
        char extra[64];
        snprintf(extra, sizeof(extra), ", %d inputs", input_count);
        if (!CHECK(test_tally_record(&forward, error, tolerance)))
            print_shape_case("add forward device vs reference", index, &s, extra, error);

        /* Backward: every destination overwritten, every one accumulated into, or
         * mixed; one in five cases leaves a gradient out. Every other case on
         * the OpenCL device has a relu fused into the add: its output relu_y
         * (a quarter of it 0, some negative, a NaN passing the gradient) masks
         * the gradient inside, against the reference given the gradient
         * masked as the relu's backward would. */
        float *grad_output = test_floats(count), *masked = test_floats(count);
        test_fill_signed(&rng, grad_output, count);
        float *relu_y = NULL;
        if (context_is_opencl(ctx) && index % 2 == 1) {
            relu_y = test_floats(count);
            test_fill_uniform(&rng, relu_y, count, -0.5f, 1.0f);
            for (int64_t i = 0; i < count; i += 4)
                relu_y[i] = 0.0f;
            relu_y[count / 2] = NAN;
            fused_relus++;
        }
        for (int64_t i = 0; i < count; i++)
            masked[i] = relu_y && relu_y[i] <= 0.0f ? 0.0f : grad_output[i];
        float *ref_grads[MAX_INPUTS], *dev_grads[MAX_INPUTS];
        int accumulate[MAX_INPUTS];
        const int skipped = index % 5 == 4 ? test_rand_int(&rng, 0, input_count - 1) : -1;
        for (int k = 0; k < input_count; k++) {
            accumulate[k] = index % 3 == 2 ? test_rand_int(&rng, 0, 1) : index % 3;
            ref_grads[k] = dev_grads[k] = NULL;
            if (k == skipped)
                continue;
            accumulated += accumulate[k];
            overwritten += !accumulate[k];
            ref_grads[k] = test_floats(count);
            dev_grads[k] = test_floats(count);
            test_fill_destination(&rng, ref_grads[k], count, accumulate[k]);
            copy_floats(dev_grads[k], ref_grads[k], count);
        }
        add_backward_ref(count, input_count, masked, ref_grads, accumulate);
        error = INFINITY;
        if (run_add_backward(ctx, count, input_count, grad_output, relu_y, dev_grads, accumulate)) {
            error = 0.0;
            for (int k = 0; k < input_count; k++)
                if (k != skipped)
                    error = fmax(error, exact_error(dev_grads[k], ref_grads[k], count));
        }
        if (!CHECK(test_tally_record(&backward, error, 0.0)))
            print_shape_case("add backward device vs reference", index, &s, extra, error);

        for (int k = 0; k < input_count; k++) {
            free(inputs[k]);
            free(ref_grads[k]);
            free(dev_grads[k]);
        }
        free(reference);
        free(device);
        free(grad_output);
        free(masked);
        free(relu_y);
    }
    test_tally_print("add forward, device vs reference", 52, "cases", &forward);
    test_tally_print("add backward, device vs reference (exact)", 52, "cases", &backward);
    printf("add backward with a fused relu: %d of those cases\n", fused_relus);
    CHECK(forward.cases >= 100 && backward.cases >= 100);
    CHECK(accumulated > 0 && overwritten > 0);
    CHECK(!context_is_opencl(ctx) || fused_relus >= 50);
}

/* ---- mul: device against reference ----------------------------------------------------------- */

static void run_mul_shapes(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally forward[2] = {{0}}, backward[2] = {{0}};
    shape s = {0};
    for (int index = 0; index < cases; index++) {
        /* Pairs of cases share a shape: broadcast, then the same shape. */
        const int broadcast = index % 2 == 0;
        if (broadcast)
            s = draw_shape(&rng, index / 2);
        const int64_t count = shape_count(&s), b_count = mul_b_count(&s, broadcast);
        float *a = test_signed_floats(&rng, count);
        float *b = test_signed_floats(&rng, b_count);
        float *reference = test_floats(count);
        float *device = test_floats(count);
        test_fill_nan(reference, count);
        test_fill_nan(device, count);
        mul_forward_ref(s.batch, s.channels, shape_spatial(&s), broadcast, a, b, reference);
        double error = INFINITY;
        if (run_mul_forward(ctx, &s, broadcast, a, b, device))
            error = max_relative_error(device, reference, count, 1.0);
        const char *extra = broadcast ? ", b broadcast" : ", b same shape";
        if (!CHECK(test_tally_record(&forward[broadcast], error, tolerance)))
            print_shape_case("mul forward device vs reference", index, &s, extra, error);

        /* Accumulation by the pair's number: (0,0), (1,0), (0,1), (1,1) for (grad_a,
         * grad_b); now and then one gradient left out. */
        const int pair = index / 2;
        const int accumulate_a = pair % 2, accumulate_b = pair / 2 % 2;
        const int want_a = index % 7 != 3, want_b = index % 7 != 5;
        float *grad_output = test_signed_floats(&rng, count);
        float *ref_a = want_a ? test_floats(count) : NULL;
        float *dev_a = want_a ? test_floats(count) : NULL;
        float *ref_b = want_b ? test_floats(b_count) : NULL;
        float *dev_b = want_b ? test_floats(b_count) : NULL;
        if (want_a) {
            test_fill_destination(&rng, ref_a, count, accumulate_a);
            copy_floats(dev_a, ref_a, count);
        }
        if (want_b) {
            test_fill_destination(&rng, ref_b, b_count, accumulate_b);
            copy_floats(dev_b, ref_b, b_count);
        }
        mul_backward_ref(s.batch, s.channels, shape_spatial(&s), broadcast, a, b, grad_output,
                         ref_a, accumulate_a, ref_b, accumulate_b);
        error = INFINITY;
        if (run_mul_backward(ctx, &s, broadcast, a, b, grad_output, dev_a, accumulate_a, dev_b,
                             accumulate_b)) {
            error = 0.0;
            if (want_a)
                error = fmax(error, max_relative_error(dev_a, ref_a, count, 1.0));
            if (want_b)
                error = fmax(error, max_relative_error(dev_b, ref_b, b_count, 1.0));
        }
        if (!CHECK(test_tally_record(&backward[broadcast], error, tolerance))) {
            char detail[128];
            snprintf(detail, sizeof(detail), "%s, grad_a %d (accumulate %d), grad_b %d (%d)", extra,
                     want_a, accumulate_a, want_b, accumulate_b);
            print_shape_case("mul backward device vs reference", index, &s, detail, error);
        }
        free(a);
        free(b);
        free(reference);
        free(device);
        free(grad_output);
        free(ref_a);
        free(dev_a);
        free(ref_b);
        free(dev_b);
    }
    test_tally_print("mul forward, b broadcast, device vs reference", 52, "cases", &forward[1]);
    test_tally_print("mul forward, same shape, device vs reference", 52, "cases", &forward[0]);
    test_tally_print("mul backward, b broadcast, device vs reference", 52, "cases", &backward[1]);
    test_tally_print("mul backward, same shape, device vs reference", 52, "cases", &backward[0]);
    CHECK(forward[0].cases + forward[1].cases >= 100);
    CHECK(backward[0].cases + backward[1].cases >= 100);
}

/* ---- concat: device against reference ---------------------------------------------------------
 */

/* The concatenation written here: output[n, offset_k + c, s] = input_k[n, c, s]. */
static void concat_expected(const concat_shape *s, float *const *inputs, float *output) {
    for (int k = 0; k < s->input_count; k++)
        for (int n = 0; n < s->batch; n++)
            for (int c = 0; c < s->channels[k]; c++)
                for (int p = 0; p < s->spatial; p++)
                    output[((int64_t)n * s->out_channels + s->offsets[k] + c) * s->spatial + p] =
                        inputs[k][((int64_t)n * s->channels[k] + c) * s->spatial + p];
}

static concat_shape draw_concat_shape(test_rng *rng, int index, int largest_channels) {
    concat_shape s = {0};
    const shape base = draw_shape(rng, index);
    s.batch = base.batch;
    s.spatial = shape_spatial(&base);
    s.input_count = index == 1 ? 5 : test_rand_int(rng, 2, MAX_INPUTS);
    for (int k = 0; k < s.input_count; k++) {
        s.channels[k] = index == 1 ? 70 : test_rand_int(rng, 1, largest_channels);
        s.offsets[k] = s.out_channels;
        s.out_channels += s.channels[k];
    }
    return s;
}

static void print_concat_case(const char *what, int index, const concat_shape *s, double error) {
    char channels[64] = "";
    size_t used = 0;
    for (int k = 0; k < s->input_count; k++)
        used += (size_t)snprintf(channels + used, sizeof(channels) - used, "%s%d", k ? "+" : "",
                                 s->channels[k]);
    fprintf(stderr, "%s case %d: batch %d, channels %s, spatial %d: error %.3g\n", what, index,
            s->batch, channels, s->spatial, error);
}

static void run_concat_shapes(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally forward = {0}, slice = {0}, backward = {0};
    for (int index = 0; index < cases; index++) {
        const concat_shape s = draw_concat_shape(&rng, index, index % 4 == 1 ? 16 : 70);
        const int64_t out_count = concat_output_count(&s);
        float *inputs[MAX_INPUTS] = {0};
        for (int k = 0; k < s.input_count; k++) {
            inputs[k] = test_floats(concat_input_count(&s, k));
            test_fill_signed(&rng, inputs[k], concat_input_count(&s, k));
        }
        float *expected = test_floats(out_count);
        float *reference = test_floats(out_count);
        float *device = test_floats(out_count);
        test_fill_nan(expected, out_count);
        test_fill_nan(reference, out_count);
        test_fill_nan(device, out_count);
        concat_expected(&s, inputs, expected);
        for (int k = 0; k < s.input_count; k++)
            concat_forward_ref(s.batch, s.channels[k], s.out_channels, s.offsets[k], s.spatial,
                               inputs[k], reference);
        double error = INFINITY;
        if (run_concat_forward(ctx, &s, -1, inputs, device))
            error = fmax(exact_error(device, expected, out_count),
                         exact_error(reference, expected, out_count));
        if (!CHECK(test_tally_record(&forward, error, 0.0)))
            print_concat_case("concat forward device, reference and expected", index, &s, error);

        /* One input alone into random values: the rest of the output stays. */
        const int only = test_rand_int(&rng, 0, s.input_count - 1);
        test_fill_signed(&rng, reference, out_count);
        copy_floats(device, reference, out_count);
        concat_forward_ref(s.batch, s.channels[only], s.out_channels, s.offsets[only], s.spatial,
                           inputs[only], reference);
        error = INFINITY;
        if (run_concat_forward(ctx, &s, only, inputs, device))
            error = exact_error(device, reference, out_count);
        if (!CHECK(test_tally_record(&slice, error, 0.0)))
            print_concat_case("concat forward of one input, device vs reference", index, &s, error);

        /* Backward, per input: overwritten, accumulated into, or mixed. */
        float *grad_output = test_signed_floats(&rng, out_count);
        float *ref_grads[MAX_INPUTS] = {0}, *dev_grads[MAX_INPUTS] = {0};
        int accumulate[MAX_INPUTS];
        for (int k = 0; k < s.input_count; k++) {
            const int64_t count = concat_input_count(&s, k);
            accumulate[k] = index % 3 == 2 ? test_rand_int(&rng, 0, 1) : index % 3;
            ref_grads[k] = test_floats(count);
            dev_grads[k] = test_floats(count);
            test_fill_destination(&rng, ref_grads[k], count, accumulate[k]);
            copy_floats(dev_grads[k], ref_grads[k], count);
            concat_backward_ref(s.batch, s.channels[k], s.out_channels, s.offsets[k], s.spatial,
                                grad_output, ref_grads[k], accumulate[k]);
        }
        error = INFINITY;
        if (run_concat_backward(ctx, &s, grad_output, dev_grads, accumulate)) {
            error = 0.0;
            for (int k = 0; k < s.input_count; k++)
                error =
                    fmax(error, exact_error(dev_grads[k], ref_grads[k], concat_input_count(&s, k)));
        }
        if (!CHECK(test_tally_record(&backward, error, 0.0)))
            print_concat_case("concat backward device vs reference", index, &s, error);

        for (int k = 0; k < s.input_count; k++) {
            free(inputs[k]);
            free(ref_grads[k]);
            free(dev_grads[k]);
        }
        free(expected);
        free(reference);
        free(device);
        free(grad_output);
    }
    test_tally_print("concat forward, device vs reference (exact)", 52, "cases", &forward);
    test_tally_print("concat forward of one input, rest untouched (exact)", 52, "cases", &slice);
    test_tally_print("concat backward, device vs reference (exact)", 52, "cases", &backward);
    CHECK(forward.cases >= 100 && backward.cases >= 100);
}

/* ---- global average pooling: device against reference ---------------------------------------- */

static void run_pool_shapes(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally forward = {0}, backward = {0};
    for (int index = 0; index < cases; index++) {
        const shape s = draw_shape(&rng, index);
        const int64_t count = shape_count(&s), planes = planes_of(&s);
        float *input = test_signed_floats(&rng, count);
        /* Now and then a large offset, so the plane's sum is large and its mean must not
         * lose it. */
        if (index % 5 == 3)
            for (int64_t i = 0; i < count; i++)
                input[i] += 100.0f;
        float *reference = test_floats(planes);
        float *device = test_floats(planes);
        test_fill_nan(reference, planes);
        test_fill_nan(device, planes);
        global_avgpool_forward_ref(s.batch, s.channels, shape_spatial(&s), input, reference);
        double error = INFINITY;
        if (run_pool_forward(ctx, &s, input, device))
            error = max_relative_error(device, reference, planes, 1.0);
        if (!CHECK(test_tally_record(&forward, error, tolerance)))
            print_shape_case("global_avgpool forward device vs reference", index, &s, "", error);

        const int accumulate = index % 2;
        float *grad_output = test_signed_floats(&rng, planes);
        float *ref_grad = test_floats(count);
        float *dev_grad = test_floats(count);
        test_fill_destination(&rng, ref_grad, count, accumulate);
        copy_floats(dev_grad, ref_grad, count);
        global_avgpool_backward_ref(s.batch, s.channels, shape_spatial(&s), grad_output, ref_grad,
                                    accumulate);
        error = INFINITY;
        if (run_pool_backward(ctx, &s, grad_output, dev_grad, accumulate))
            error = max_relative_error(dev_grad, ref_grad, count, 1.0);
        if (!CHECK(test_tally_record(&backward, error, tolerance)))
            print_shape_case("global_avgpool backward device vs reference", index, &s,
                             accumulate ? ", accumulate" : "", error);
        free(input);
        free(reference);
        free(device);
        free(grad_output);
        free(ref_grad);
        free(dev_grad);
    }
    test_tally_print("global_avgpool forward, device vs reference", 52, "cases", &forward);
    test_tally_print("global_avgpool backward, device vs reference", 52, "cases", &backward);
    CHECK(forward.cases >= 100 && backward.cases >= 100);
}

/* ---- finite differences -------------------------------------------------------------------------
 * A problem holds the op's inputs in double (tensors[0..tensor_count)) and
 * G; loss() is sum(forward(inputs) * G) with the forward written here. */

typedef enum fd_op { FD_ADD, FD_MUL, FD_CONCAT, FD_POOL } fd_op;

typedef struct fd_problem {
    fd_op op;
    shape s;             /* add, mul (a's shape), pool (the input's) */
    int broadcast;       /* mul */
    concat_shape concat; /* concat */
    int tensor_count;
    double *tensors[MAX_INPUTS];
    int64_t counts[MAX_INPUTS];
    double *g;
} fd_problem;

static double fd_loss(const fd_problem *p) {
    double loss = 0.0;
    switch (p->op) {
    case FD_ADD:
        for (int64_t i = 0; i < p->counts[0]; i++) {
            double y = 0.0;
            for (int k = 0; k < p->tensor_count; k++)
                y += p->tensors[k][i];
            loss += y * p->g[i];
        }
        break;
    case FD_MUL: {
        const int spatial = shape_spatial(&p->s);
        for (int64_t i = 0; i < p->counts[0]; i++) {
            const double b = p->tensors[1][p->broadcast ? i / spatial : i];
            loss += p->tensors[0][i] * b * p->g[i];
        }
        break;
    }
    case FD_CONCAT: {
        const concat_shape *s = &p->concat;
        for (int k = 0; k < s->input_count; k++)
            for (int n = 0; n < s->batch; n++)
                for (int c = 0; c < s->channels[k]; c++)
                    for (int q = 0; q < s->spatial; q++) {
                        const int64_t in = ((int64_t)n * s->channels[k] + c) * s->spatial + q;
                        const int64_t out =
                            ((int64_t)n * s->out_channels + s->offsets[k] + c) * s->spatial + q;
                        loss += p->tensors[k][in] * p->g[out];
                    }
        break;
    }
    case FD_POOL: {
        const int spatial = shape_spatial(&p->s);
        for (int64_t plane = 0; plane < planes_of(&p->s); plane++) {
            double sum = 0.0;
            for (int q = 0; q < spatial; q++)
                sum += p->tensors[0][plane * spatial + q];
            loss += sum / spatial * p->g[plane];
        }
        break;
    }
    }
    return loss;
}

/* Central differences of the loss with respect to each element of tensor t. */
static void fd_differences(fd_problem *p, int t, double *fd) {
    double *x = p->tensors[t];
    for (int64_t i = 0; i < p->counts[t]; i++) {
        const double saved = x[i];
        x[i] = saved + fd_step;
        const double up = fd_loss(p);
        x[i] = saved - fd_step;
        const double down = fd_loss(p);
        x[i] = saved;
        fd[i] = (up - down) / (2.0 * fd_step);
    }
}

static const char *fd_op_name(fd_op op) {
    switch (op) {
    case FD_ADD:
        return "add";
    case FD_MUL:
        return "mul";
    case FD_CONCAT:
        return "concat";
    case FD_POOL:
        return "global_avgpool";
    }
    return "?";
}

/* A small random problem of op: inputs (floats, and their doubles in p) and G. */
static void fd_problem_create(test_rng *rng, fd_op op, int index, fd_problem *p, float **inputs,
                              float **g) {
    memset(p, 0, sizeof(*p));
    p->op = op;
    p->s.batch = test_rand_int(rng, 1, 3);
    p->s.channels = test_rand_int(rng, 1, 4);
    p->s.height = index % 4 == 0 ? 1 : test_rand_int(rng, 1, 5);
    p->s.width = index % 4 == 0 ? 1 : test_rand_int(rng, 1, 5);
    int64_t g_count = shape_count(&p->s);
    switch (op) {
    case FD_ADD:
        p->tensor_count = test_rand_int(rng, 2, 4);
        for (int k = 0; k < p->tensor_count; k++)
            p->counts[k] = shape_count(&p->s);
        break;
    case FD_MUL:
        p->broadcast = index % 2;
        p->tensor_count = 2;
        p->counts[0] = shape_count(&p->s);
        p->counts[1] = mul_b_count(&p->s, p->broadcast);
        break;
    case FD_CONCAT:
        p->concat.batch = p->s.batch;
        p->concat.spatial = shape_spatial(&p->s);
        p->concat.input_count = p->tensor_count = test_rand_int(rng, 2, MAX_INPUTS);
        for (int k = 0; k < p->tensor_count; k++) {
            p->concat.channels[k] = test_rand_int(rng, 1, 4);
            p->concat.offsets[k] = p->concat.out_channels;
            p->concat.out_channels += p->concat.channels[k];
            p->counts[k] = concat_input_count(&p->concat, k);
        }
        g_count = concat_output_count(&p->concat);
        break;
    case FD_POOL:
        p->tensor_count = 1;
        p->counts[0] = shape_count(&p->s);
        g_count = planes_of(&p->s);
        break;
    }
    for (int k = 0; k < p->tensor_count; k++) {
        inputs[k] = test_floats(p->counts[k]);
        test_fill_signed(rng, inputs[k], p->counts[k]);
        p->tensors[k] = test_to_doubles(inputs[k], p->counts[k]);
    }
    *g = test_floats(g_count);
    test_fill_signed(rng, *g, g_count);
    p->g = test_to_doubles(*g, g_count);
}

/* The backward of p's op on ctx with grad_output = g, every gradient overwritten. */
static int fd_backward(clcnn_context *ctx, const fd_problem *p, float **inputs, float *g,
                       float **grads) {
    int accumulate[MAX_INPUTS] = {0};
    for (int k = 0; k < p->tensor_count; k++)
        test_fill_nan(grads[k], p->counts[k]);
    switch (p->op) {
    case FD_ADD:
        return run_add_backward(ctx, p->counts[0], p->tensor_count, g, NULL, grads, accumulate);
    case FD_MUL:
        return run_mul_backward(ctx, &p->s, p->broadcast, inputs[0], inputs[1], g, grads[0], 0,
                                grads[1], 0);
    case FD_CONCAT:
        return run_concat_backward(ctx, &p->concat, g, grads, accumulate);
    case FD_POOL:
        return run_pool_backward(ctx, &p->s, g, grads[0], 0);
    }
    return 0;
}

static void run_fd_shapes(clcnn_context *const *contexts, fd_op op, int cases, uint64_t seed) {
    static const char *const device_names[2] = {"reference", "device"};
    test_rng rng = {seed};
    test_tally results[2] = {{0}, {0}};
    for (int index = 0; index < cases; index++) {
        fd_problem p;
        float *inputs[MAX_INPUTS] = {0}, *g = NULL, *grads[MAX_INPUTS] = {0};
        double *fd[MAX_INPUTS] = {0};
        fd_problem_create(&rng, op, index, &p, inputs, &g);
        for (int k = 0; k < p.tensor_count; k++) {
            fd[k] = test_doubles(p.counts[k]);
            fd_differences(&p, k, fd[k]);
            grads[k] = test_floats(p.counts[k]);
        }
        for (int d = 0; d < 2; d++) {
            double error = INFINITY;
            if (fd_backward(contexts[d], &p, inputs, g, grads)) {
                error = 0.0;
                for (int k = 0; k < p.tensor_count; k++)
                    error = fmax(error, test_fd_error(fd[k], grads[k], p.counts[k], fd_floor));
            }
            if (!CHECK(test_tally_record(&results[d], error, fd_tolerance))) {
                char what[96];
                snprintf(what, sizeof(what), "%s backward %s vs fd", fd_op_name(op),
                         device_names[d]);
                print_shape_case(what, index, &p.s, p.broadcast ? ", b broadcast" : "", error);
            }
        }
        for (int k = 0; k < p.tensor_count; k++) {
            free(inputs[k]);
            free(grads[k]);
            free(fd[k]);
            free(p.tensors[k]);
        }
        free(g);
        free(p.g);
    }
    for (int d = 0; d < 2; d++) {
        char label[96];
        snprintf(label, sizeof(label), "%s backward, %s vs fd", fd_op_name(op), device_names[d]);
        test_tally_print(label, 52, "cases", &results[d]);
    }
}

/* ---- hand-made cases
 * ------------------------------------------------------------------------------ */

/* bound 0: bit for bit. */
static void expect_values(const char *what, clcnn_context *ctx, int ran, const float *actual,
                          const float *expected, int64_t count, double bound) {
    double error = INFINITY;
    if (ran && bound == 0.0)
        error = exact_error(actual, expected, count);
    else if (ran)
        error = max_relative_error(actual, expected, count, 1.0);
    if (!CHECK(error <= bound)) {
        fprintf(stderr, "%s on the %s device: error %.3g; got", what,
                context_is_opencl(ctx) ? "OpenCL" : "reference", error);
        for (int64_t i = 0; i < count && i < 16; i++)
            fprintf(stderr, " %.9g", actual[i]);
        fprintf(stderr, "\n");
    }
}

static void check_add_hand_cases(clcnn_context *ctx) {
    {
        float in0[] = {1, 2, 3}, in1[] = {10, 20, 30}, in2[] = {100, 200, 300}, out[3];
        float *inputs[] = {in0, in1, in2};
        const float expected[] = {111, 222, 333};
        test_fill_nan(out, 3);
        const int ran = run_add_forward(ctx, 3, 3, inputs, out);
        expect_values("add of three", ctx, ran, out, expected, 3, 0.0);
    }
    {
        /* Two gradients, one overwritten, one added into (it holds 1, 1, 1 already). */
        float g[] = {1, -2, 0.5f}, grad0[3], grad1[] = {1, 1, 1};
        float *grads[] = {grad0, grad1};
        const int accumulate[] = {0, 1};
        const float expected0[] = {1, -2, 0.5f}, expected1[] = {2, -1, 1.5f};
        test_fill_nan(grad0, 3);
        const int ran = run_add_backward(ctx, 3, 2, g, NULL, grads, accumulate);
        expect_values("add backward, overwritten", ctx, ran, grad0, expected0, 3, 0.0);
        expect_values("add backward, accumulated", ctx, ran, grad1, expected1, 3, 0.0);
    }
    {
        /* x + x: the same gradient buffer twice, the second accumulating: 2g. */
        float g[] = {1, -2, 0.25f}, grad[3];
        float *grads[] = {grad, grad};
        const int accumulate[] = {0, 1};
        const float expected[] = {2, -4, 0.5f};
        test_fill_nan(grad, 3);
        const int ran = run_add_backward(ctx, 3, 2, g, NULL, grads, accumulate);
        expect_values("add backward of x + x", ctx, ran, grad, expected, 3, 0.0);
    }
    {
        /* A gradient that is not wanted is skipped; the others are written. */
        float g[] = {3, 4}, grad1[2];
        float *grads[] = {NULL, grad1, NULL};
        const int accumulate[] = {0, 0, 0};
        const float expected[] = {3, 4};
        test_fill_nan(grad1, 2);
        const int ran = run_add_backward(ctx, 2, 3, g, NULL, grads, accumulate);
        expect_values("add backward with skipped gradients", ctx, ran, grad1, expected, 2, 0.0);
    }
}

static void check_mul_hand_cases(clcnn_context *ctx) {
    {
        /* Squeeze-and-excitation: batch 1, 2 channels of 2x2, one factor per channel. */
        const shape s = {1, 2, 2, 2};
        float a[] = {1, 2, 3, 4, 5, 6, 7, 8}, b[] = {10, -1}, out[8];
        const float expected[] = {10, 20, 30, 40, -5, -6, -7, -8};
        test_fill_nan(out, 8);
        int ran = run_mul_forward(ctx, &s, 1, a, b, out);
        expect_values("mul broadcast", ctx, ran, out, expected, 8, 0.0);
        float g[] = {1, 1, 1, 1, 1, 1, 1, -1}, grad_a[8], grad_b[] = {100, 100};
        const float expected_a[] = {10, 10, 10, 10, -1, -1, -1, 1};
        /* grad_b sums g * a over each plane: 1+2+3+4 = 10 and 5+6+7-8 = 10, added to 100. */
        const float expected_b[] = {110, 110};
        test_fill_nan(grad_a, 8);
        ran = run_mul_backward(ctx, &s, 1, a, b, g, grad_a, 0, grad_b, 1);
        expect_values("mul broadcast backward, grad_a", ctx, ran, grad_a, expected_a, 8, 0.0);
        expect_values("mul broadcast backward, grad_b", ctx, ran, grad_b, expected_b, 2, 0.0);
    }
    {
        /* The same shape; grad_b alone (b is not needed then, but a is). */
        const shape s = {1, 3, 1, 1};
        float a[] = {1, 2, 3}, b[] = {4, 5, 6}, out[3], g[] = {1, 2, 3}, grad_b[3];
        const float expected[] = {4, 10, 18}, expected_b[] = {1, 4, 9};
        test_fill_nan(out, 3);
        int ran = run_mul_forward(ctx, &s, 0, a, b, out);
        expect_values("mul same shape", ctx, ran, out, expected, 3, 0.0);
        test_fill_nan(grad_b, 3);
        ran = run_mul_backward(ctx, &s, 0, a, NULL, g, NULL, 0, grad_b, 0);
        expect_values("mul same shape backward, grad_b only", ctx, ran, grad_b, expected_b, 3, 0.0);
    }
    {
        /* x * x: one input, one gradient buffer given twice: 2 g x. */
        const shape s = {2, 1, 1, 2};
        float x[] = {1, -2, 3, 0.5f}, g[] = {1, 1, -1, 4}, grad[4];
        const float expected[] = {2, -4, -6, 4};
        test_fill_nan(grad, 4);
        const int ran = run_mul_backward(ctx, &s, 0, x, x, g, grad, 0, grad, 1);
        expect_values("mul backward of x * x", ctx, ran, grad, expected, 4, 0.0);
    }
}

static void check_concat_hand_cases(clcnn_context *ctx) {
    {
        /* Batch 2 of 1x2 planes: 1 channel and 2 channels make 3. */
        concat_shape s = {2, 2, 2, {1, 2}, {0, 1}, 3};
        float a[] = {1, 2, /* image 2 */ 3, 4};
        float b[] = {10, 11, 12, 13, /* image 2 */ 14, 15, 16, 17};
        float *inputs[] = {a, b};
        float out[12];
        const float expected[] = {1, 2, 10, 11, 12, 13, /* image 2 */ 3, 4, 14, 15, 16, 17};
        test_fill_nan(out, 12);
        int ran = run_concat_forward(ctx, &s, -1, inputs, out);
        expect_values("concat of planes", ctx, ran, out, expected, 12, 0.0);
        /* Backward: a's gradient is overwritten, b's added to 0.5 each. */
        float g[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        float grad_a[4], grad_b[] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
        float *grads[] = {grad_a, grad_b};
        const int accumulate[] = {0, 1};
        const float expected_a[] = {1, 2, 7, 8};
        const float expected_b[] = {3.5f, 4.5f, 5.5f, 6.5f, 9.5f, 10.5f, 11.5f, 12.5f};
        test_fill_nan(grad_a, 4);
        ran = run_concat_backward(ctx, &s, g, grads, accumulate);
        expect_values("concat backward, grad_a", ctx, ran, grad_a, expected_a, 4, 0.0);
        expect_values("concat backward, grad_b", ctx, ran, grad_b, expected_b, 8, 0.0);
    }
    {
        /* Vectors: batch 2 of 2 and 3 values make 5. */
        concat_shape s = {2, 1, 2, {2, 3}, {0, 2}, 5};
        float a[] = {1, 2, 3, 4}, b[] = {10, 20, 30, 40, 50, 60};
        float *inputs[] = {a, b};
        float out[10];
        const float expected[] = {1, 2, 10, 20, 30, 3, 4, 40, 50, 60};
        test_fill_nan(out, 10);
        const int ran = run_concat_forward(ctx, &s, -1, inputs, out);
        expect_values("concat of vectors", ctx, ran, out, expected, 10, 0.0);
    }
}

static void check_pool_hand_cases(clcnn_context *ctx) {
    /* Batch 1, 2 channels of 2x3: means 3.5 and 0. */
    const shape s = {1, 2, 2, 3};
    float input[] = {1, 2, 3, 4, 5, 6, -1, 1, -2, 2, -3, 3}, out[2];
    const float expected[] = {3.5f, 0};
    test_fill_nan(out, 2);
    int ran = run_pool_forward(ctx, &s, input, out);
    expect_values("global_avgpool", ctx, ran, out, expected, 2, hand_tolerance);
    /* Backward: 6 / 6 = 1 over the first plane, -3 / 6 = -0.5 added to 2 over the second. */
    float g[] = {6, -3}, grad[] = {NAN, NAN, NAN, NAN, NAN, NAN, 2, 2, 2, 2, 2, 2};
    const float expected_first[] = {1, 1, 1, 1, 1, 1};
    const float expected_second[] = {1.5f, 1.5f, 1.5f, 1.5f, 1.5f, 1.5f};
    /* One plane each, so that they can differ in accumulation. */
    const shape one = {1, 1, 2, 3};
    ran = run_pool_backward(ctx, &one, &g[0], &grad[0], 0) &&
          run_pool_backward(ctx, &one, &g[1], &grad[6], 1);
    expect_values("global_avgpool backward, overwritten", ctx, ran, grad, expected_first, 6,
                  hand_tolerance);
    expect_values("global_avgpool backward, accumulated", ctx, ran, grad + 6, expected_second, 6,
                  hand_tolerance);
}

/* Shapes the entry points refuse, with CLCNN_ERROR_INVALID_ARGUMENT. */
static void check_refused(clcnn_context *ctx) {
    float x[4] = {1, 2, 3, 4}, y[4] = {0}, z[4] = {0};
    buf bx = {0}, by = {0}, bz = {0};
    if (!make_buf(ctx, x, 4, &bx) || !make_buf(ctx, y, 4, &by) || !make_buf(ctx, z, 4, &bz))
        return;
    const buf one[] = {bx};
    const buf aliased[] = {bx, by, bz};
    CHECK(op_add_forward(ctx, 4, 1, one, by, 0) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(op_add_forward(ctx, 4, 3, aliased, bz, 0) == CLCNN_ERROR_INVALID_ARGUMENT);
    /* 3 channels at offset 2 do not fit in 4. */
    CHECK(op_concat_forward(ctx, 1, 3, 4, 2, 1, bx, by) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(op_concat_backward(ctx, 1, 1, 4, -1, 1, bx, by, 0) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(op_mul_forward(ctx, 1, 4, 1, 2, bx, by, bz) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(op_global_avgpool_forward(ctx, 1, 1, 0, bx, by) == CLCNN_ERROR_INVALID_ARGUMENT);
    /* A missing input. */
    const buf none = {0};
    CHECK(op_mul_forward(ctx, 1, 4, 1, 0, bx, none, bz) == CLCNN_ERROR_INVALID_ARGUMENT);
    /* No gradient wanted: nothing to do, nothing needed. */
    CHECK(op_global_avgpool_backward(ctx, 1, 1, 4, none, none, 0) == CLCNN_OK);
    CHECK(op_concat_backward(ctx, 1, 1, 4, 0, 1, none, none, 1) == CLCNN_OK);
    release_buf(&bx);
    release_buf(&by);
    release_buf(&bz);
}

static void check_hand_cases(clcnn_context *const *contexts) {
    for (int d = 0; d < 2; d++) {
        check_add_hand_cases(contexts[d]);
        check_mul_hand_cases(contexts[d]);
        check_concat_hand_cases(contexts[d]);
        check_pool_hand_cases(contexts[d]);
        check_refused(contexts[d]);
    }
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    clcnn_context *reference = clcnn_context_create();
    if (!CHECK(ctx != NULL && reference != NULL) ||
        !CHECK_OK(reference,
                  clcnn_context_select_device(reference, CLCNN_DEVICE_REFERENCE, -1, -1))) {
        clcnn_context_destroy(ctx);
        clcnn_context_destroy(reference);
        return test_finish();
    }
    printf("device: %s\n", clcnn_device_name(ctx));
    clcnn_context *const contexts[2] = {reference, ctx};
    const double start = test_seconds();

    check_hand_cases(contexts);
    run_add_shapes(ctx, ADD_SHAPES, 12001);
    run_mul_shapes(ctx, MUL_SHAPES, 12002);
    run_concat_shapes(ctx, CONCAT_SHAPES, 12003);
    run_pool_shapes(ctx, POOL_SHAPES, 12004);
    run_fd_shapes(contexts, FD_ADD, FD_SHAPES, 12101);
    run_fd_shapes(contexts, FD_MUL, FD_SHAPES, 12102);
    run_fd_shapes(contexts, FD_CONCAT, FD_SHAPES, 12103);
    run_fd_shapes(contexts, FD_POOL, FD_SHAPES, 12104);

    printf("time: %.1f s\n", test_seconds() - start);
    clcnn_context_destroy(ctx);
    clcnn_context_destroy(reference);
    return test_finish();
}
