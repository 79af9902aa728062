/* The convolution's backward kernels and reduce_channels against their CPU
 * references, and the references against finite differences.
 *
 * 1. Backward-data and backward-weights (with the bias gradient) of the
 *    local-memory tiled kernels (kernels/conv2d.cl, forced as
 *    CLCNN_CONV=tiled would) on random shapes: batch 1 and more, channel counts that
 *    are not multiples of any tile, square and rectangular kernels, strides
 *    chosen per axis, asymmetric padding (pad_bottom/pad_right drawn apart
 *    from pad_top/pad_left, so the last rows and columns may be reached by no
 *    window), then a few long reductions (batch 8 of 32x32 images and more,
 *    and 1,100 images of one output pixel) whose weight gradient is cut into
 *    several slices. A subset runs again under other tile configurations
 *    (as CLCNN_TILES would set). Where the library
 *    picks another path on this device (the register-blocked kernels on CPU
 *    devices), a subset also runs through that default path.
 *    Backward-weights alone then runs on every random shape and long
 *    reduction through the default path (where that is the register-blocked
 *    one), and on subsets through conv2d_backward_weights_direct under
 *    explicit configurations (vector width, vectors and taps per work-item,
 *    work-group size). A forward's kept padded input (the direct kernels'
 *    and Winograd's, fused and products'), and backward-weights reading
 *    backward-data's copy of the gradient (conv2d_backward_planned), must
 *    give bit for bit what the operations give on their own.
 * 2. reduce_channels on shapes with outer, columns and inner from 1 to a few
 *    thousand, on data centred on zero and on data with a positive mean,
 *    with both walks (contiguous shares, as CPU devices run it, and strided).
 * 3. Finite differences: an independent float64 forward convolution in this
 *    file, loss = sum(forward(x) * G); central differences of the loss with
 *    respect to every input element, weight and bias must match the
 *    reference gradients (grad_output = G) and the OpenCL ones (each path)
 *    within 1e-4, |fd - g| / max(|fd|, 1e-2).
 * 4. The throughput of forward, backward-data and backward-weights on a
 *    64-channel 3x3 layer at 32x32, batch 8, per path (printed, not checked).
 *
 * Device results must satisfy max_relative_error(device, reference, n, 1.0)
 * <= 1e-5, i.e. |device - reference| / max(|reference|, 1), with one
 * exception: a weight gradient summed over more than 512 output positions
 * (batch * out_height * out_width = steps). The kernel sums in float32, and
 * such a sum's partial sums grow to about sqrt(steps)/3 (inputs uniform in
 * [-1, 1]); its rounding error grows with them, as sqrt(steps) for any
 * summation order (even a full pairwise tree gives an rms error of about
 * 6e-8 * sqrt(steps * log2(steps) / 9): 4e-6 at 8192 steps). Entries that
 * happen to lie near zero then carry that absolute error against a floor of 1,
 * although it is only 2-4 ulps of the sum's scale. Measured over about 90
 * such shapes, the worst is 1.5e-5 at 26000 steps and 1.4e-5 at 8192 steps;
 * they are held to 1e-5 * sqrt(steps / 512) (4e-5 at 8192 steps) and
 * reported apart.
 *
 * Output buffers are filled with NaN before each call, so a value the kernel
 * fails to write shows up as an infinite error. Every shape comes from a
 * generator with a fixed seed and is printed when it fails.
 * CLCNN_TEST_QUICK runs a part of the shapes (testlib.h; for valgrind and
 * Oclgrind) and then reports the test as skipped.
 */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double tolerance = 1e-5;
static const double finite_difference_tolerance = 1e-4;

/* Shape counts at full strength; CLCNN_TEST_QUICK divides them (test_scaled_count). */
enum {
    RANDOM_SHAPES = 130,
    LONG_REDUCTION_SHAPES = 12,
    SHAPES_PER_EXTRA_CONFIG = 30,
    SHAPES_PER_DIRECT_CONFIG = 20,
    DEFAULT_PATH_SHAPES = 60,
    REDUCE_SHAPES = 150,
    KEPT_INPUT_SHAPES = 120,
    SHARED_GRADIENT_SHAPES = 80,
    STRIDE2_SHAPES = 100,
    FINITE_DIFFERENCE_SHAPES = 30
};

/* Random shapes whose reference would take more multiply-adds than this are drawn again. */
static const double max_reference_work = 2.5e7;

static int quick_mode = 0;

static int scaled_count(int count) {
    return test_scaled_count(count);
}

/* Creates a device buffer of count floats holding values. */
static clcnn_status upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    const size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(float);
    clcnn_status status = buffer_create(ctx, bytes, out);
    if (status != CLCNN_OK || count <= 0)
        return status;
    return buffer_write(ctx, *out, 0, (size_t)count * sizeof(float), values);
}

/* Creates a device buffer of count floats, all NaN, so unwritten results show. */
static clcnn_status upload_nan(clcnn_context *ctx, int64_t count, cl_mem *out) {
    float *values = test_floats(count);
    for (int64_t i = 0; i < count; i++)
        values[i] = NAN;
    clcnn_status status = upload(ctx, values, count, out);
    free(values);
    return status;
}

static clcnn_status download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    if (count <= 0)
        return CLCNN_OK;
    return buffer_read(ctx, buffer, 0, (size_t)count * sizeof(float), values);
}

/* ---- shapes --------------------------------------------------------------------------- */

/* A convolution shape with the padding after the last row and column, which
 * conv2d_params leaves implicit in out_height and out_width. */
typedef struct conv_case {
    conv2d_params p;
    int pad_bottom, pad_right;
} conv_case;

static void describe_case(const conv_case *c, char *buf, size_t size) {
    const conv2d_params *p = &c->p;
    snprintf(
        buf, size,
        "N=%d C=%d H=%d W=%d K=%d R=%d S=%d stride=%dx%d pad top/left/bottom/right=%d/%d/%d/%d "
        "out=%dx%d bias=%d",
        p->batch, p->in_channels, p->in_height, p->in_width, p->out_channels, p->kernel_h,
        p->kernel_w, p->stride_h, p->stride_w, p->pad_top, p->pad_left, c->pad_bottom, c->pad_right,
        p->out_height, p->out_width, p->has_bias);
}

/* Output size along one axis, or 0 if the kernel does not fit the padded input. */
static int conv_output_size(int input, int pad_before, int pad_after, int kernel, int stride) {
    const int padded = input + pad_before + pad_after;
    if (padded < kernel)
        return 0;
    return (padded - kernel) / stride + 1;
}

static double reference_work(const conv2d_params *p) {
    return (double)p->batch * p->out_channels * p->out_height * p->out_width * p->in_channels *
           p->kernel_h * p->kernel_w;
}

static int64_t input_count(const conv2d_params *p) {
    return (int64_t)p->batch * p->in_channels * p->in_height * p->in_width;
}

static int64_t output_count(const conv2d_params *p) {
    return (int64_t)p->batch * p->out_channels * p->out_height * p->out_width;
}

static int64_t weight_count(const conv2d_params *p) {
    return (int64_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
}

/* Weight gradients summed over more steps (output positions) than this are
 * held to a bound growing as sqrt(steps); see the comment at the top. */
enum { LONG_REDUCTION_STEPS = 512 };

static int reduction_steps(const conv2d_params *p) {
    return p->batch * p->out_height * p->out_width;
}

static double weights_bound(const conv2d_params *p) {
    const int steps = reduction_steps(p);
    if (steps <= LONG_REDUCTION_STEPS)
        return tolerance;
    return tolerance * sqrt((double)steps / LONG_REDUCTION_STEPS);
}

/* Kernel size: mostly square (1, 2, 3, 4, 5, 7), sometimes rectangular such as 3x5. */
static void draw_kernel_size(test_rng *rng, int *kernel_h, int *kernel_w) {
    static const int square_sizes[] = {1, 2, 3, 3, 4, 5, 7};
    const int style = test_rand_int(rng, 0, 9);
    if (style < 6) {
        *kernel_h = square_sizes[test_rand_int(rng, 0, 6)];
        *kernel_w = *kernel_h;
    } else if (style < 8) {
        *kernel_h = 3;
        *kernel_w = 5;
        if (style == 7) {
            *kernel_h = 5;
            *kernel_w = 3;
        }
    } else {
        *kernel_h = test_rand_int(rng, 1, 7);
        *kernel_w = test_rand_int(rng, 1, 7);
    }
}

/* Fills in sizes, padding (before and after drawn apart) and strides along one
 * axis until the kernel fits. */
static void draw_axis(test_rng *rng, int max_size, int kernel, int *size, int *stride,
                      int *pad_before, int *pad_after, int *out) {
    do {
        *size = test_rand_int(rng, 1, max_size);
        *stride = test_rand_int(rng, 1, 3);
        const int style = test_rand_int(rng, 0, 3);
        if (style == 0) {
            *pad_before = 0;
            *pad_after = 0;
        } else if (style == 1) {
            *pad_before = test_rand_int(rng, 0, kernel - 1 < 3 ? kernel - 1 : 3);
            *pad_after = *pad_before;
        } else {
            *pad_before = test_rand_int(rng, 0, 3);
            *pad_after = test_rand_int(rng, 0, 3);
        }
        *out = conv_output_size(*size, *pad_before, *pad_after, kernel, *stride);
    } while (*out < 1);
}

/* A random shape: batch 1 (half the time) or 2..4, channels 1..40, sizes 1..30. */
static conv_case draw_random_case(test_rng *rng) {
    conv_case c;
    do {
        memset(&c, 0, sizeof(c));
        conv2d_params *p = &c.p;
        p->batch = test_rand_int(rng, 0, 1) ? 1 : test_rand_int(rng, 2, 4);
        p->in_channels = test_rand_int(rng, 1, 40);
        p->out_channels = test_rand_int(rng, 1, 40);
        draw_kernel_size(rng, &p->kernel_h, &p->kernel_w);
        draw_axis(rng, 30, p->kernel_h, &p->in_height, &p->stride_h, &p->pad_top, &c.pad_bottom,
                  &p->out_height);
        draw_axis(rng, 30, p->kernel_w, &p->in_width, &p->stride_w, &p->pad_left, &c.pad_right,
                  &p->out_width);
        p->has_bias = test_rand_int(rng, 0, 3) != 0;
    } while (reference_work(&c.p) > max_reference_work);
    return c;
}

/* A long reduction over batch and pixels: batch 8 of 32x32 images, or
 * more, or 1,100 images of one output pixel. */
static conv_case draw_long_reduction_case(test_rng *rng, int index) {
    conv_case c;
    memset(&c, 0, sizeof(c));
    conv2d_params *p = &c.p;
    p->batch = index % 4 == 3 ? 32 : 8;
    p->in_height = index % 4 == 3 ? 28 : 32;
    p->in_width = index % 4 == 2 ? 29 : p->in_height;
    p->in_channels = test_rand_int(rng, 1, 12);
    p->out_channels = test_rand_int(rng, 1, 12);
    draw_kernel_size(rng, &p->kernel_h, &p->kernel_w);
    p->stride_h = index % 3 == 1 ? 2 : 1;
    p->stride_w = index % 3 == 2 ? 2 : 1;
    p->pad_top = p->kernel_h / 2;
    p->pad_left = p->kernel_w / 2;
    c.pad_bottom = (p->kernel_h - 1) / 2;
    c.pad_right = (p->kernel_w - 1) / 2 + index % 2;
    /* Every fifth from the second: outputs of one pixel (a window the size
     * of the image, no padding), as a dense layer's, over enough images for
     * several slices, whose runs of images start off the kernel's run
     * length. */
    if (index % 5 == 1) {
        p->batch = 1100 + index;
        p->in_height = p->kernel_h;
        p->in_width = p->kernel_w;
        p->stride_h = p->stride_w = 1;
        p->pad_top = p->pad_left = c.pad_bottom = c.pad_right = 0;
    }
    p->out_height =
        conv_output_size(p->in_height, p->pad_top, c.pad_bottom, p->kernel_h, p->stride_h);
    p->out_width =
        conv_output_size(p->in_width, p->pad_left, c.pad_right, p->kernel_w, p->stride_w);
    p->has_bias = 1;
    return c;
}

/* ---- backward against the reference ----------------------------------------------------- */

/* Runs both backward operations of one shape on the device and the reference;
 * returns 1 if both are within tolerance. */
static int check_backward_case(clcnn_context *ctx, const conv_case *c, uint64_t seed,
                               test_tally *data_result, test_tally *weights_result,
                               test_tally *long_weights_result) {
    const conv2d_params *p = &c->p;
    test_rng rng = {seed};
    const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
    float *input = test_signed_floats(&rng, inputs);
    float *weight = test_signed_floats(&rng, weights);
    float *grad_output = test_signed_floats(&rng, outputs);

    float *grad_input_ref = test_floats(inputs);
    float *grad_weight_ref = test_floats(weights);
    float *grad_bias_ref = test_floats(p->out_channels);
    conv2d_backward_data_ref(p, grad_output, weight, grad_input_ref);
    conv2d_backward_weights_ref(p, input, grad_output, grad_weight_ref, grad_bias_ref);

    float *grad_input_dev = test_floats(inputs);
    float *grad_weight_dev = test_floats(weights);
    float *grad_bias_dev = test_floats(p->out_channels);
    cl_mem input_buf = NULL, weight_buf = NULL, grad_output_buf = NULL;
    cl_mem grad_input_buf = NULL, grad_weight_buf = NULL, grad_bias_buf = NULL, scratch = NULL;
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    const size_t scratch_bytes = conv2d_backward_weights_scratch_bytes(&plan, p);
    int ok =
        CHECK_OK(ctx, upload(ctx, input, inputs, &input_buf)) &&
        CHECK_OK(ctx, upload(ctx, weight, weights, &weight_buf)) &&
        CHECK_OK(ctx, upload(ctx, grad_output, outputs, &grad_output_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, inputs, &grad_input_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, weights, &grad_weight_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, p->out_channels, &grad_bias_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, (int64_t)(scratch_bytes / sizeof(float)), &scratch)) &&
        CHECK_OK(ctx, conv2d_backward_data(ctx, p, grad_output_buf, weight_buf, grad_input_buf)) &&
        CHECK_OK(ctx, conv2d_backward_weights(ctx, p, input_buf, grad_output_buf, grad_weight_buf,
                                              grad_bias_buf, scratch)) &&
        CHECK_OK(ctx, download(ctx, grad_input_buf, grad_input_dev, inputs)) &&
        CHECK_OK(ctx, download(ctx, grad_weight_buf, grad_weight_dev, weights)) &&
        CHECK_OK(ctx, download(ctx, grad_bias_buf, grad_bias_dev, p->out_channels));
    if (ok) {
        const double data_error = max_relative_error(grad_input_dev, grad_input_ref, inputs, 1.0);
        double weights_error = max_relative_error(grad_weight_dev, grad_weight_ref, weights, 1.0);
        if (p->has_bias) {
            const double bias_error =
                max_relative_error(grad_bias_dev, grad_bias_ref, p->out_channels, 1.0);
            if (bias_error > weights_error || isnan(bias_error))
                weights_error = bias_error;
        }
        const int data_ok = test_tally_record(data_result, data_error, tolerance);
        const double bound = weights_bound(p);
        const int weights_ok = test_tally_record(
            reduction_steps(p) > LONG_REDUCTION_STEPS ? long_weights_result : weights_result,
            weights_error, bound);
        if (!data_ok || !weights_ok) {
            char shape[256];
            describe_case(c, shape, sizeof(shape));
            printf("FAILED: %s (seed %llu): backward data error %.3g (bound %.3g), "
                   "weights/bias error %.3g (bound %.3g)\n",
                   shape, (unsigned long long)seed, data_error, tolerance, weights_error, bound);
        }
        ok = CHECK(data_ok) && CHECK(weights_ok);
    }

    buffer_release(&input_buf);
    buffer_release(&weight_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_input_buf);
    buffer_release(&grad_weight_buf);
    buffer_release(&grad_bias_buf);
    buffer_release(&scratch);
    free(input);
    free(weight);
    free(grad_output);
    free(grad_input_ref);
    free(grad_weight_ref);
    free(grad_bias_ref);
    free(grad_input_dev);
    free(grad_weight_dev);
    free(grad_bias_dev);
    return ok;
}

/* The convolution path the public entry points take: PATH_TILED forces the
 * local-memory tiled kernels (kernels/conv2d.cl) as CLCNN_CONV=tiled would;
 * PATH_DEVICE_DEFAULT leaves the choice to the library (on CPU devices the
 * register-blocked kernels of kernels/conv2d_direct.cl). */
typedef enum conv_path { PATH_TILED, PATH_DEVICE_DEFAULT } conv_path;

/* The library reads CLCNN_CONV and CLCNN_TILES once, when a context selects
 * its device, so the test switches paths on its one context by setting what
 * they resolve to; these hold what the device resolved to without them. */
static int device_default_direct;
static tile_config device_default_tiles;

/* Selects the path, with the device's default tile configuration. */
static void select_conv_path(clcnn_context *ctx, conv_path path) {
    ctx->config.direct = path == PATH_TILED ? 0 : device_default_direct;
    ctx->config.tiles = device_default_tiles;
}

/* A name for the path now selected, with its tile configuration if tiled. */
static void describe_conv_path(const clcnn_context *ctx, char *buf, size_t size) {
    if (use_direct_kernels(ctx)) {
        snprintf(buf, size, "direct");
        return;
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    snprintf(buf, size, "tiled %d,%d,%d,%d,%d", config.tile_m, config.tile_n, config.tile_k,
             config.wpt_m, config.wpt_n);
}

/* Random shapes and long reductions on one path, tiled ones under the tile
 * configuration `tiles` (NULL: the device's default). */
static void run_backward_shapes(clcnn_context *ctx, conv_path path, const tile_config *tiles,
                                int random_shapes, int long_shapes, uint64_t seed) {
    select_conv_path(ctx, path);
    if (tiles)
        ctx->config.tiles = *tiles;
    char label[128];
    describe_conv_path(ctx, label, sizeof(label));
    const int tiled = !use_direct_kernels(ctx);

    test_rng rng = {seed};
    test_tally data_result = {0}, weights_result = {0}, long_weights_result = {0};
    int sliced = 0;
    for (int i = 0; i < random_shapes; i++) {
        const conv_case c = draw_random_case(&rng);
        check_backward_case(ctx, &c, seed * 1000 + (uint64_t)i, &data_result, &weights_result,
                            &long_weights_result);
    }
    for (int i = 0; i < long_shapes; i++) {
        const conv_case c = draw_long_reduction_case(&rng, i);
        /* On the tiled path, more scratch than one copy of the weights means
         * the reduction was sliced. */
        const conv2d_plan plan = conv2d_plan_for(ctx, &c.p);
        if (tiled && conv2d_backward_weights_scratch_bytes(&plan, &c.p) >
                         (size_t)weight_count(&c.p) * sizeof(float))
            sliced++;
        check_backward_case(ctx, &c, seed * 1000 + 500 + (uint64_t)i, &data_result, &weights_result,
                            &long_weights_result);
    }
    if (tiled)
        CHECK(sliced == long_shapes);
    char name[200];
    snprintf(name, sizeof(name), "conv2d backward data, %s", label);
    test_tally_print(name, 62, "shapes", &data_result);
    snprintf(name, sizeof(name), "conv2d backward weights+bias, %s, <= %d steps", label,
             LONG_REDUCTION_STEPS);
    test_tally_print(name, 62, "shapes", &weights_result);
    snprintf(name, sizeof(name), "conv2d backward weights+bias, %s, > %d steps", label,
             LONG_REDUCTION_STEPS);
    test_tally_print(name, 62, "shapes", &long_weights_result);
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
}

/* Slicing needs the scratch buffer: leaving it out must be refused, not crash. */
static void check_missing_scratch_refused(clcnn_context *ctx) {
    conv_case c = {0};
    c.p = (conv2d_params){.batch = 8,
                          .in_channels = 2,
                          .in_height = 32,
                          .in_width = 32,
                          .out_channels = 3,
                          .kernel_h = 3,
                          .kernel_w = 3,
                          .stride_h = 1,
                          .stride_w = 1,
                          .pad_top = 1,
                          .pad_left = 1,
                          .out_height = 32,
                          .out_width = 32,
                          .has_bias = 0};
    const conv2d_plan plan = conv2d_plan_for(ctx, &c.p);
    CHECK(conv2d_backward_weights_scratch_bytes(&plan, &c.p) >
          (size_t)weight_count(&c.p) * sizeof(float));
    cl_mem input_buf = NULL, grad_output_buf = NULL, grad_weight_buf = NULL;
    if (CHECK_OK(ctx, upload_nan(ctx, input_count(&c.p), &input_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, output_count(&c.p), &grad_output_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, weight_count(&c.p), &grad_weight_buf)))
        CHECK(conv2d_backward_weights(ctx, &c.p, input_buf, grad_output_buf, grad_weight_buf, NULL,
                                      NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    buffer_release(&input_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_weight_buf);
}

/* ---- register-blocked backward weights ------------------------------------------------------ */

/* Backward-weights (with the bias gradient) of one shape against the
 * reference: through conv2d_backward_weights_direct with config, or with
 * config NULL through conv2d_backward_weights on the path now selected. The
 * scratch buffer is filled with NaN, so a part of it that the kernels read
 * before writing shows up as well. Returns 1 if within the bound. */
static int check_weights_case(clcnn_context *ctx, const direct_config *config, const conv_case *c,
                              uint64_t seed, test_tally *weights_result,
                              test_tally *long_weights_result) {
    const conv2d_params *p = &c->p;
    test_rng rng = {seed};
    const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
    float *input = test_signed_floats(&rng, inputs);
    float *grad_output = test_signed_floats(&rng, outputs);
    float *grad_weight_ref = test_floats(weights);
    float *grad_bias_ref = test_floats(p->out_channels);
    conv2d_backward_weights_ref(p, input, grad_output, grad_weight_ref, grad_bias_ref);

    float *grad_weight_dev = test_floats(weights);
    float *grad_bias_dev = test_floats(p->out_channels);
    cl_mem input_buf = NULL, grad_output_buf = NULL, grad_weight_buf = NULL;
    cl_mem grad_bias_buf = NULL, scratch = NULL;
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    const size_t scratch_bytes = config ? conv2d_backward_weights_direct_scratch_bytes(config, p)
                                        : conv2d_backward_weights_scratch_bytes(&plan, p);
    int ok = CHECK_OK(ctx, upload(ctx, input, inputs, &input_buf)) &&
             CHECK_OK(ctx, upload(ctx, grad_output, outputs, &grad_output_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, weights, &grad_weight_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, p->out_channels, &grad_bias_buf)) &&
             CHECK_OK(ctx, upload_nan(ctx, (int64_t)(scratch_bytes / sizeof(float)), &scratch));
    if (ok && config)
        ok =
            CHECK_OK(ctx, conv2d_backward_weights_direct(ctx, config, p, input_buf, grad_output_buf,
                                                         grad_weight_buf, grad_bias_buf, scratch));
    else if (ok)
        ok = CHECK_OK(ctx, conv2d_backward_weights(ctx, p, input_buf, grad_output_buf,
                                                   grad_weight_buf, grad_bias_buf, scratch));
    ok = ok && CHECK_OK(ctx, download(ctx, grad_weight_buf, grad_weight_dev, weights)) &&
         CHECK_OK(ctx, download(ctx, grad_bias_buf, grad_bias_dev, p->out_channels));
    if (ok) {
        double error = max_relative_error(grad_weight_dev, grad_weight_ref, weights, 1.0);
        if (p->has_bias) {
            const double bias_error =
                max_relative_error(grad_bias_dev, grad_bias_ref, p->out_channels, 1.0);
            if (bias_error > error || isnan(bias_error))
                error = bias_error;
        }
        const double bound = weights_bound(p);
        ok = test_tally_record(reduction_steps(p) > LONG_REDUCTION_STEPS ? long_weights_result
                                                                         : weights_result,
                               error, bound);
        if (!CHECK(ok)) {
            char shape[256];
            describe_case(c, shape, sizeof(shape));
            printf("FAILED: %s (seed %llu): weights/bias error %.3g (bound %.3g)\n", shape,
                   (unsigned long long)seed, error, bound);
        }
    }

    buffer_release(&input_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_weight_buf);
    buffer_release(&grad_bias_buf);
    buffer_release(&scratch);
    free(input);
    free(grad_output);
    free(grad_weight_ref);
    free(grad_bias_ref);
    free(grad_weight_dev);
    free(grad_bias_dev);
    return ok;
}

/* Random shapes and long reductions (each cut into slices) of backward-weights
 * under an explicit register-blocked configuration, or with config NULL on the
 * default path. */
static void run_weights_shapes(clcnn_context *ctx, const direct_config *config, int random_shapes,
                               int long_shapes, uint64_t seed) {
    char label[128];
    if (config)
        snprintf(label, sizeof(label), "direct vw %d nv %d wpt %d group %d", config->vw, config->nv,
                 config->wpt_p, config->group);
    else
        snprintf(label, sizeof(label), "default path");
    test_rng rng = {seed};
    test_tally weights_result = {0}, long_weights_result = {0};
    for (int i = 0; i < random_shapes; i++) {
        const conv_case c = draw_random_case(&rng);
        check_weights_case(ctx, config, &c, seed * 1000 + (uint64_t)i, &weights_result,
                           &long_weights_result);
    }
    for (int i = 0; i < long_shapes; i++) {
        const conv_case c = draw_long_reduction_case(&rng, i);
        CHECK(conv2d_backward_weights_slices(&c.p) > 1);
        check_weights_case(ctx, config, &c, seed * 1000 + 500 + (uint64_t)i, &weights_result,
                           &long_weights_result);
    }
    char name[200];
    snprintf(name, sizeof(name), "conv2d backward weights+bias, %s, <= %d steps", label,
             LONG_REDUCTION_STEPS);
    test_tally_print(name, 62, "shapes", &weights_result);
    snprintf(name, sizeof(name), "conv2d backward weights+bias, %s, > %d steps", label,
             LONG_REDUCTION_STEPS);
    test_tally_print(name, 62, "shapes", &long_weights_result);
}

/* A scratch buffer missing or smaller than the configuration needs is
 * refused, not overrun; so is a vector width the kernels do not have. */
static void check_direct_scratch_refused(clcnn_context *ctx) {
    const conv2d_params p = {.batch = 2,
                             .in_channels = 3,
                             .in_height = 9,
                             .in_width = 9,
                             .out_channels = 5,
                             .kernel_h = 3,
                             .kernel_w = 3,
                             .stride_h = 1,
                             .stride_w = 1,
                             .pad_top = 1,
                             .pad_left = 1,
                             .out_height = 9,
                             .out_width = 9,
                             .has_bias = 1};
    const direct_config config = {4, 1, 3, 4};
    const size_t needed = conv2d_backward_weights_direct_scratch_bytes(&config, &p);
    cl_mem input_buf = NULL, grad_output_buf = NULL, grad_weight_buf = NULL;
    cl_mem grad_bias_buf = NULL, scratch = NULL;
    if (CHECK_OK(ctx, upload_nan(ctx, input_count(&p), &input_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, output_count(&p), &grad_output_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, weight_count(&p), &grad_weight_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, p.out_channels, &grad_bias_buf)) &&
        CHECK_OK(ctx, buffer_create(ctx, needed - sizeof(float), &scratch))) {
        CHECK(conv2d_backward_weights_direct(ctx, &config, &p, input_buf, grad_output_buf,
                                             grad_weight_buf, grad_bias_buf,
                                             NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
        CHECK(conv2d_backward_weights_direct(ctx, &config, &p, input_buf, grad_output_buf,
                                             grad_weight_buf, grad_bias_buf,
                                             scratch) == CLCNN_ERROR_INVALID_ARGUMENT);
        const direct_config bad_width = {3, 1, 3, 4};
        CHECK(conv2d_backward_weights_direct(ctx, &bad_width, &p, input_buf, grad_output_buf,
                                             grad_weight_buf, grad_bias_buf,
                                             scratch) == CLCNN_ERROR_INVALID_ARGUMENT);
    }
    buffer_release(&input_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_weight_buf);
    buffer_release(&grad_bias_buf);
    buffer_release(&scratch);
}

/* The register-blocked backward-weights: the default path on every random
 * shape where that path is the register-blocked one, then subsets under
 * explicit configurations (vector widths 1 to 16, 1 to 4 vectors, 1 to 7
 * taps per work-item, and 9 or 18, which take a window of 3x3, 1x3, 3x1,
 * 2x3 ... by whole channels; work-groups of 1 to 4 that need not divide the
 * taps). */
static void run_direct_weights(clcnn_context *ctx) {
    static const direct_config configs[] = {
        {1, 1, 1, 1},  {1, 3, 7, 4},  {2, 2, 3, 4},  {4, 1, 3, 4},   {4, 2, 7, 3},
        {4, 3, 1, 4},  {8, 1, 7, 4},  {8, 2, 1, 1},  {8, 3, 3, 4},   {16, 1, 3, 4},
        {16, 2, 1, 2}, {16, 3, 7, 4}, {16, 4, 4, 4}, {16, 1, 18, 4}, {4, 2, 9, 3},
    };
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
    if (use_direct_kernels(ctx))
        run_weights_shapes(ctx, NULL, scaled_count(RANDOM_SHAPES),
                           scaled_count(LONG_REDUCTION_SHAPES), 61);
    for (int i = 0; i < (int)(sizeof(configs) / sizeof(configs[0])); i++)
        run_weights_shapes(ctx, &configs[i], scaled_count(SHAPES_PER_DIRECT_CONFIG), 2,
                           71 + (uint64_t)i);
    check_direct_scratch_refused(ctx);
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
}

/* ---- reduce_channels ---------------------------------------------------------------------- */

/* A size from 1 to a few thousand, spread evenly over orders of magnitude. */
static int draw_log_size(test_rng *rng, int max_size) {
    const double u = test_rand_float(rng, 0.0f, 1.0f);
    const int size = (int)floor(exp(u * log((double)max_size + 1.0)));
    return size < 1 ? 1 : (size > max_size ? max_size : size);
}

static void run_reduce_shapes(clcnn_context *ctx, int shapes, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < shapes; index++) {
        int outer, columns, inner;
        do {
            outer = draw_log_size(&rng, 3000);
            columns = draw_log_size(&rng, 3000);
            inner = index % 5 == 0 ? 1 : draw_log_size(&rng, 3000);
        } while ((double)outer * columns * inner > 3e6);
        /* Every third shape has a positive mean, where plain float sums drift most. */
        const float low = index % 3 == 2 ? 0.0f : -1.0f;
        const int64_t count = (int64_t)outer * columns * inner;
        float *in = test_floats(count);
        test_fill_uniform(&rng, in, count, low, 1.0f);
        float *expected = test_floats(columns);
        float *actual = test_floats(columns);
        reduce_channels_ref(outer, columns, inner, in, expected);
        cl_mem in_buf = NULL, out_buf = NULL;
        /* Both walks: the contiguous one (CPUs) and the strided one (GPUs). */
        for (int contiguous = 0; contiguous < 2; contiguous++)
            if (CHECK_OK(ctx, upload(ctx, in, count, &in_buf)) &&
                CHECK_OK(ctx, upload_nan(ctx, columns, &out_buf)) &&
                CHECK_OK(ctx, reduce_channels_walk(ctx, contiguous, outer, columns, inner, in_buf,
                                                   out_buf)) &&
                CHECK_OK(ctx, download(ctx, out_buf, actual, columns))) {
                const double error = max_relative_error(actual, expected, columns, 1.0);
                if (!CHECK(test_tally_record(&result, error, tolerance)))
                    printf("FAILED: reduce_channels (%s walk) outer=%d columns=%d inner=%d data "
                           "[%g, 1]: error %.3g\n",
                           contiguous ? "contiguous" : "strided", outer, columns, inner, low,
                           error);
                buffer_release(&in_buf);
                buffer_release(&out_buf);
            }
        buffer_release(&in_buf);
        buffer_release(&out_buf);
        free(in);
        free(expected);
        free(actual);
    }
    test_tally_print("reduce_channels", 62, "shapes", &result);
}

/* ---- finite differences --------------------------------------------------------------------- */

/* The forward convolution in float64, written apart from host/ref so that a
 * mistake shared by the references cannot hide: sum over every output of
 * G * (bias + weights * window), accumulated per output. */
static double convolution_loss(const conv2d_params *p, const double *input, const double *weight,
                               const double *bias, const double *grad_output) {
    const int C = p->in_channels, H = p->in_height, W = p->in_width;
    const int K = p->out_channels, R = p->kernel_h, S = p->kernel_w;
    const int OH = p->out_height, OW = p->out_width;
    double loss = 0.0;
    for (int n = 0; n < p->batch; n++)
        for (int k = 0; k < K; k++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double y = p->has_bias ? bias[k] : 0.0;
                    for (int c = 0; c < C; c++)
                        for (int r = 0; r < R; r++)
                            for (int s = 0; s < S; s++) {
                                const int ih = oh * p->stride_h + r - p->pad_top;
                                const int iw = ow * p->stride_w + s - p->pad_left;
                                if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                    y += weight[((k * C + c) * R + r) * S + s] *
                                         input[((n * C + c) * H + ih) * W + iw];
                            }
                    loss += y * grad_output[((n * K + k) * OH + oh) * OW + ow];
                }
    return loss;
}

/* Central differences of the loss with respect to each of values[0..count-1], into gradient. */
static void finite_differences(const conv2d_params *p, double *input, double *weight, double *bias,
                               const double *grad_output, double *values, int64_t count,
                               double *gradient) {
    const double h = 1e-6;
    for (int64_t i = 0; i < count; i++) {
        const double saved = values[i];
        values[i] = saved + h;
        const double above = convolution_loss(p, input, weight, bias, grad_output);
        values[i] = saved - h;
        const double below = convolution_loss(p, input, weight, bias, grad_output);
        values[i] = saved;
        gradient[i] = (above - below) / (2.0 * h);
    }
}

/* A small shape: the finite differences evaluate the whole loss twice per value. */
static conv_case draw_small_case(test_rng *rng) {
    conv_case c;
    memset(&c, 0, sizeof(c));
    conv2d_params *p = &c.p;
    p->batch = test_rand_int(rng, 1, 2);
    p->in_channels = test_rand_int(rng, 1, 3);
    p->out_channels = test_rand_int(rng, 1, 3);
    p->kernel_h = test_rand_int(rng, 1, 4);
    p->kernel_w = test_rand_int(rng, 1, 4);
    draw_axis(rng, 8, p->kernel_h, &p->in_height, &p->stride_h, &p->pad_top, &c.pad_bottom,
              &p->out_height);
    draw_axis(rng, 8, p->kernel_w, &p->in_width, &p->stride_w, &p->pad_left, &c.pad_right,
              &p->out_width);
    p->has_bias = test_rand_int(rng, 0, 1);
    return c;
}

/* The finite differences of one shape: d loss / d input, weight and bias. */
typedef struct finite_difference_gradients {
    double *input, *weight, *bias;
} finite_difference_gradients;

/* Worst finite-difference error of the backward results grad_input,
 * grad_weight and grad_bias (bias only if the shape has one). */
static double worst_gradient_error(const conv2d_params *p, const finite_difference_gradients *fd,
                                   const float *grad_input, const float *grad_weight,
                                   const float *grad_bias) {
    double worst = fmax(test_fd_error(fd->input, grad_input, input_count(p), 1e-2),
                        test_fd_error(fd->weight, grad_weight, weight_count(p), 1e-2));
    if (p->has_bias)
        worst = fmax(worst, test_fd_error(fd->bias, grad_bias, p->out_channels, 1e-2));
    return worst;
}

/* Runs both backward operations on the device (on the path now selected) and
 * returns their worst finite-difference error, or infinity if a call fails. */
static double device_gradient_error(clcnn_context *ctx, const conv2d_params *p, const float *input,
                                    const float *weight, const float *grad_output,
                                    const finite_difference_gradients *fd) {
    const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
    const int K = p->out_channels;
    float *grad_input = test_floats(inputs);
    float *grad_weight = test_floats(weights);
    float *grad_bias = test_floats(K);
    double worst = INFINITY;
    cl_mem input_buf = NULL, weight_buf = NULL, grad_output_buf = NULL;
    cl_mem grad_input_buf = NULL, grad_weight_buf = NULL, grad_bias_buf = NULL, scratch = NULL;
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    const size_t scratch_bytes = conv2d_backward_weights_scratch_bytes(&plan, p);
    if (CHECK_OK(ctx, upload(ctx, input, inputs, &input_buf)) &&
        CHECK_OK(ctx, upload(ctx, weight, weights, &weight_buf)) &&
        CHECK_OK(ctx, upload(ctx, grad_output, outputs, &grad_output_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, inputs, &grad_input_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, weights, &grad_weight_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, K, &grad_bias_buf)) &&
        CHECK_OK(ctx, buffer_create(ctx, scratch_bytes, &scratch)) &&
        CHECK_OK(ctx, conv2d_backward_data(ctx, p, grad_output_buf, weight_buf, grad_input_buf)) &&
        CHECK_OK(ctx, conv2d_backward_weights(ctx, p, input_buf, grad_output_buf, grad_weight_buf,
                                              grad_bias_buf, scratch)) &&
        CHECK_OK(ctx, download(ctx, grad_input_buf, grad_input, inputs)) &&
        CHECK_OK(ctx, download(ctx, grad_weight_buf, grad_weight, weights)) &&
        CHECK_OK(ctx, download(ctx, grad_bias_buf, grad_bias, K)))
        worst = worst_gradient_error(p, fd, grad_input, grad_weight, grad_bias);
    buffer_release(&input_buf);
    buffer_release(&weight_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_input_buf);
    buffer_release(&grad_weight_buf);
    buffer_release(&grad_bias_buf);
    buffer_release(&scratch);
    free(grad_input);
    free(grad_weight);
    free(grad_bias);
    return worst;
}

/* The reference, the tiled kernels and (where the library picks another path
 * on this device) the default path against finite differences. */
static void run_finite_differences(clcnn_context *ctx, int shapes, uint64_t seed) {
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
    const int default_is_tiled = !use_direct_kernels(ctx);
    test_rng rng = {seed};
    test_tally reference_result = {0}, tiled_result = {0}, default_result = {0};
    for (int index = 0; index < shapes; index++) {
        const conv_case c = draw_small_case(&rng);
        const conv2d_params *p = &c.p;
        const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
        const int K = p->out_channels;
        float *input = test_signed_floats(&rng, inputs);
        float *weight = test_signed_floats(&rng, weights);
        float *bias = test_signed_floats(&rng, K);
        float *grad_output = test_signed_floats(&rng, outputs);

        double *input64 = test_to_doubles(input, inputs);
        double *weight64 = test_to_doubles(weight, weights);
        double *bias64 = test_to_doubles(bias, K);
        double *grad_output64 = test_to_doubles(grad_output, outputs);
        finite_difference_gradients fd = {test_doubles(inputs), test_doubles(weights),
                                          test_doubles(K)};
        finite_differences(p, input64, weight64, bias64, grad_output64, input64, inputs, fd.input);
        finite_differences(p, input64, weight64, bias64, grad_output64, weight64, weights,
                           fd.weight);
        if (p->has_bias)
            finite_differences(p, input64, weight64, bias64, grad_output64, bias64, K, fd.bias);

        float *grad_input = test_floats(inputs);
        float *grad_weight = test_floats(weights);
        float *grad_bias = test_floats(K);
        conv2d_backward_data_ref(p, grad_output, weight, grad_input);
        conv2d_backward_weights_ref(p, input, grad_output, grad_weight, grad_bias);
        const double reference_error =
            worst_gradient_error(p, &fd, grad_input, grad_weight, grad_bias);
        const int reference_ok =
            test_tally_record(&reference_result, reference_error, finite_difference_tolerance);

        select_conv_path(ctx, PATH_TILED);
        const double tiled_error = device_gradient_error(ctx, p, input, weight, grad_output, &fd);
        const int tiled_ok =
            test_tally_record(&tiled_result, tiled_error, finite_difference_tolerance);
        select_conv_path(ctx, PATH_DEVICE_DEFAULT);
        double default_error = 0.0;
        int default_ok = 1;
        if (!default_is_tiled) {
            default_error = device_gradient_error(ctx, p, input, weight, grad_output, &fd);
            default_ok =
                test_tally_record(&default_result, default_error, finite_difference_tolerance);
        }

        if (!CHECK(reference_ok) || !CHECK(tiled_ok) || !CHECK(default_ok)) {
            char shape[256];
            describe_case(&c, shape, sizeof(shape));
            printf("FAILED: finite differences, %s: reference error %.3g, tiled error %.3g, "
                   "default path error %.3g\n",
                   shape, reference_error, tiled_error, default_error);
        }

        free(input);
        free(weight);
        free(bias);
        free(grad_output);
        free(input64);
        free(weight64);
        free(bias64);
        free(grad_output64);
        free(fd.input);
        free(fd.weight);
        free(fd.bias);
        free(grad_input);
        free(grad_weight);
        free(grad_bias);
    }
    test_tally_print("finite differences vs reference backward", 62, "shapes", &reference_result);
    test_tally_print("finite differences vs OpenCL backward, tiled", 62, "shapes", &tiled_result);
    if (!default_is_tiled)
        test_tally_print("finite differences vs OpenCL backward, direct", 62, "shapes",
                         &default_result);
}

/* ---- throughput --------------------------------------------------------------------------- */

/* Times forward, backward-data and backward-weights on a 64-channel 3x3 layer
 * at 32x32, batch 8, and prints GFLOP/s (2 flops per multiply-add). */
static void report_throughput(clcnn_context *ctx, conv_path path, int repetitions) {
    select_conv_path(ctx, path);
    char label[128];
    describe_conv_path(ctx, label, sizeof(label));
    conv2d_params p = {.batch = 8,
                       .in_channels = 64,
                       .in_height = 32,
                       .in_width = 32,
                       .out_channels = 64,
                       .kernel_h = 3,
                       .kernel_w = 3,
                       .stride_h = 1,
                       .stride_w = 1,
                       .pad_top = 1,
                       .pad_left = 1,
                       .out_height = 32,
                       .out_width = 32,
                       .has_bias = 1};
    test_rng rng = {77};
    const int64_t inputs = input_count(&p), outputs = output_count(&p), weights = weight_count(&p);
    float *input = test_signed_floats(&rng, inputs);
    float *weight = test_signed_floats(&rng, weights);
    float *grad_output = test_signed_floats(&rng, outputs);
    cl_mem input_buf = NULL, weight_buf = NULL, bias_buf = NULL, output_buf = NULL;
    cl_mem grad_output_buf = NULL, grad_input_buf = NULL, grad_weight_buf = NULL;
    cl_mem grad_bias_buf = NULL, scratch = NULL;
    const double flops = 2.0 * reference_work(&p);
    const conv2d_plan plan = conv2d_plan_for(ctx, &p);
    if (CHECK_OK(ctx, upload(ctx, input, inputs, &input_buf)) &&
        CHECK_OK(ctx, upload(ctx, weight, weights, &weight_buf)) &&
        CHECK_OK(ctx, upload(ctx, weight, p.out_channels, &bias_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, outputs, &output_buf)) &&
        CHECK_OK(ctx, upload(ctx, grad_output, outputs, &grad_output_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, inputs, &grad_input_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, weights, &grad_weight_buf)) &&
        CHECK_OK(ctx, upload_nan(ctx, p.out_channels, &grad_bias_buf)) &&
        CHECK_OK(ctx,
                 buffer_create(ctx, conv2d_backward_weights_scratch_bytes(&plan, &p), &scratch))) {
        double seconds[3] = {0, 0, 0};
        /* Pass 0 warms up (kernel compilation); the later ones are timed. */
        for (int pass = 0; pass <= repetitions; pass++) {
            for (int op = 0; op < 3; op++) {
                const double start = clock_seconds();
                clcnn_status status;
                if (op == 0)
                    status = conv2d_forward(ctx, &p, input_buf, weight_buf, bias_buf, output_buf);
                else if (op == 1)
                    status =
                        conv2d_backward_data(ctx, &p, grad_output_buf, weight_buf, grad_input_buf);
                else
                    status = conv2d_backward_weights(ctx, &p, input_buf, grad_output_buf,
                                                     grad_weight_buf, grad_bias_buf, scratch);
                CHECK_OK(ctx, status);
                clFinish(ctx->queue);
                if (pass > 0)
                    seconds[op] += clock_seconds() - start;
            }
        }
        const char *names[3] = {"forward", "backward data", "backward weights+bias"};
        for (int op = 0; op < 3; op++)
            printf("throughput 64->64 3x3 at 32x32, batch 8, %-24s %-22s %7.2f ms  %6.1f "
                   "GFLOP/s\n",
                   label, names[op], 1e3 * seconds[op] / repetitions,
                   flops * repetitions / seconds[op] * 1e-9);
    }
    buffer_release(&input_buf);
    buffer_release(&weight_buf);
    buffer_release(&bias_buf);
    buffer_release(&output_buf);
    buffer_release(&grad_output_buf);
    buffer_release(&grad_input_buf);
    buffer_release(&grad_weight_buf);
    buffer_release(&grad_bias_buf);
    buffer_release(&scratch);
    free(input);
    free(weight);
    free(grad_output);
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
}

/* Case c made a 3x3, stride-1 convolution padded by 1 on every side (with
 * even: its sides rounded up to even), and plan's forward Winograd's, on the
 * fused kernel (fused) or the products' kernels; 0 where Winograd cannot run
 * it. */
static int make_winograd_case(clcnn_context *ctx, int fused, int even, conv_case *c,
                              conv2d_plan *plan) {
    conv2d_params *p = &c->p;
    if (even) {
        p->in_height += p->in_height % 2;
        p->in_width += p->in_width % 2;
    }
    p->kernel_h = p->kernel_w = 3;
    p->stride_h = p->stride_w = 1;
    p->pad_top = p->pad_left = c->pad_bottom = c->pad_right = 1;
    p->out_height = p->in_height;
    p->out_width = p->in_width;
    *plan = conv2d_plan_for(ctx, p);
    if (!use_direct_kernels(ctx) || !conv2d_winograd_fits(ctx, p))
        return 0;
    if (fused && conv2d_winograd_fused_fits(ctx, p)) {
        conv_step steps[WINOGRAD_FUSED_STEPS];
        conv2d_winograd_fused_steps(ctx, steps);
        plan->forward = steps[0];
    } else {
        plan->forward = (conv_step){CONV_WINOGRAD, conv2d_winograd_products_config(ctx, p)};
    }
    return 1;
}

/* The padded input a forward keeps (conv2d_forward_keeping) gives
 * backward-weights bit for bit the gradients it gets when it pads the input
 * itself, with other convolutions run in between (they reuse the shared
 * workspace the copy would otherwise live in). Every third case is a
 * forward on Winograd's kernels (fused and products' in turn), which keeps
 * its copy for a direct backward-weights, a row and a column larger than
 * the direct one where the output's sides are odd (half of those cases). */
static void check_kept_input(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    int kept_cases = 0, mismatches = 0, winograd_cases = 0, winograd_kept = 0, odd_kept = 0;
    for (int index = 0; index < cases; index++) {
        conv_case c = draw_random_case(&rng);
        conv2d_plan plan = conv2d_plan_for(ctx, &c.p);
        const int winograd =
            index % 3 == 0 && make_winograd_case(ctx, index / 3 % 2, index / 6 % 2 == 0, &c, &plan);
        const conv2d_params *p = &c.p;
        const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
        const int64_t kept_floats = conv2d_kept_input_floats(&plan, p);
        float *host[3] = {test_floats(inputs), test_floats(weights), test_floats(outputs)};
        test_fill_signed(&rng, host[0], inputs);
        test_fill_signed(&rng, host[1], weights);
        test_fill_signed(&rng, host[2], outputs);
        float *results[2][3];
        cl_mem in = NULL, w = NULL, b = NULL, go = NULL, out = NULL, gi = NULL, gw = NULL,
               gb = NULL, scratch = NULL, kept = NULL;
        int ok = CHECK_OK(ctx, upload(ctx, host[0], inputs, &in)) &&
                 CHECK_OK(ctx, upload(ctx, host[1], weights, &w)) &&
                 CHECK_OK(ctx, upload(ctx, host[1], p->out_channels, &b)) &&
                 CHECK_OK(ctx, upload(ctx, host[2], outputs, &go)) &&
                 CHECK_OK(ctx, upload_nan(ctx, outputs, &out)) &&
                 CHECK_OK(ctx, upload_nan(ctx, inputs, &gi)) &&
                 CHECK_OK(ctx, upload_nan(ctx, weights, &gw)) &&
                 CHECK_OK(ctx, upload_nan(ctx, p->out_channels, &gb)) &&
                 CHECK_OK(ctx, buffer_create(ctx, conv2d_backward_weights_scratch_bytes(&plan, p),
                                             &scratch)) &&
                 (!kept_floats || CHECK_OK(ctx, upload_nan(ctx, kept_floats, &kept)));
        for (int run = 0; run < 2; run++) {
            results[run][0] = test_floats(outputs);
            results[run][1] = test_floats(weights);
            results[run][2] = test_floats(p->out_channels);
            cl_mem keep = run ? kept : NULL;
            ok = ok &&
                 CHECK_OK(ctx, conv2d_forward_planned(ctx, &plan, p, in, w, b, out, keep, NULL)) &&
                 CHECK_OK(ctx, conv2d_backward_data(ctx, p, go, w, gi)) &&
                 CHECK_OK(ctx, conv2d_forward(ctx, p, in, w, b, out)) &&
                 CHECK_OK(ctx, conv2d_backward_weights_planned(ctx, &plan, p, in, go, gw, gb,
                                                               scratch, keep)) &&
                 CHECK_OK(ctx, buffer_read(ctx, out, 0, sizeof(float) * (size_t)outputs,
                                           results[run][0])) &&
                 CHECK_OK(ctx, buffer_read(ctx, gw, 0, sizeof(float) * (size_t)weights,
                                           results[run][1])) &&
                 CHECK_OK(ctx, buffer_read(ctx, gb, 0, sizeof(float) * (size_t)p->out_channels,
                                           results[run][2]));
        }
        kept_cases += kept_floats > 0;
        winograd_cases += winograd;
        winograd_kept += winograd && kept_floats > 0;
        odd_kept += winograd && kept_floats > 0 && (p->out_height % 2 || p->out_width % 2);
        if (winograd)
            CHECK((kept_floats > 0) == (plan.backward_weights.kernels == CONV_DIRECT));
        if (!ok || memcmp(results[0][0], results[1][0], sizeof(float) * (size_t)outputs) ||
            memcmp(results[0][1], results[1][1], sizeof(float) * (size_t)weights) ||
            memcmp(results[0][2], results[1][2], sizeof(float) * (size_t)p->out_channels)) {
            char text[256];
            describe_case(&c, text, sizeof(text));
            fprintf(stderr, "kept input case %d differs: %s\n", index, text);
            mismatches++;
        }
        cl_mem all[] = {in, w, b, go, out, gi, gw, gb, scratch, kept};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            buffer_release(&all[i]);
        for (int run = 0; run < 2; run++)
            for (int k = 0; k < 3; k++)
                free(results[run][k]);
        for (int k = 0; k < 3; k++)
            free(host[k]);
    }
    CHECK(mismatches == 0);
    /* On a device with the register-blocked kernels most padded shapes keep a
     * copy; the few cases of quick mode (CLCNN_TEST_QUICK) need not show every
     * kind. */
    if (use_direct_kernels(ctx) && !quick_mode)
        CHECK(kept_cases >= cases / 4 && winograd_cases >= cases / 4 && winograd_kept > 0 &&
              odd_kept > 0);
    printf("kept padded input: %d cases, %d of them kept (%d of the %d on Winograd's kernels, %d "
           "of those with an odd side), %d differ\n",
           cases, kept_cases, winograd_kept, winograd_cases, odd_kept, mismatches);
}

/* A stride-1 3x3 convolution (pad 1) with 86 to 140 input channels, whose
 * forward and backward-data reduce in channel blocks over planar copies. */
static conv_case draw_blocked_case(test_rng *rng) {
    conv_case c;
    memset(&c, 0, sizeof(c));
    conv2d_params *p = &c.p;
    p->batch = test_rand_int(rng, 1, 2);
    p->in_channels = test_rand_int(rng, 86, 140);
    p->out_channels = test_rand_int(rng, 86, 140);
    p->kernel_h = p->kernel_w = 3;
    p->stride_h = p->stride_w = 1;
    p->pad_top = p->pad_left = c.pad_bottom = c.pad_right = 1;
    p->in_height = p->out_height = test_rand_int(rng, 1, 12);
    p->in_width = p->out_width = test_rand_int(rng, 4, 16);
    p->has_bias = test_rand_int(rng, 0, 1);
    return c;
}

/* A random case without padding: every window inside the input, which the
 * kernels read as it is. */
static conv_case draw_inside_case(test_rng *rng) {
    conv_case c;
    do {
        c = draw_random_case(rng);
        conv2d_params *p = &c.p;
        p->pad_top = p->pad_left = c.pad_bottom = c.pad_right = 0;
        p->out_height = conv_output_size(p->in_height, 0, 0, p->kernel_h, p->stride_h);
        p->out_width = conv_output_size(p->in_width, 0, 0, p->kernel_w, p->stride_w);
    } while (c.p.out_height == 0 || c.p.out_width == 0);
    return c;
}

/* Padded copies, and inputs without padding, are read with a work-item's
 * positions along one output row where the shape allows
 * (conv2d_forward_runs_rows, on devices with 32 vector registers): in turn
 * the planar copy a forward keeps (random shapes), planar copies read in
 * channel blocks (draw_blocked_case), channels-last copies (random shapes,
 * not kept, with one vector of output channels and 16 or 32 input
 * channels) and unpadded inputs (draw_inside_case), the last three forward
 * and backward-data. Each result bit for bit that of the same call without
 * (the device taken for one of 16 registers in the second run), and within
 * the reference's tolerance. */
static void check_row_positions(clcnn_context *ctx, int cases, uint64_t seed) {
    if (!use_direct_kernels(ctx) || vector_registers(ctx) != 32) {
        printf("positions along rows: skipped (not a device of 32 vector registers)\n");
        return;
    }
    test_rng rng = {seed};
    int row_cases = 0, mismatches = 0;
    test_tally forward_result = {0}, data_result = {0};
    for (int index = 0; index < cases; index++) {
        const int keeping = index % 4 == 0, blocked = index % 4 == 1, inside = index % 4 == 3;
        conv_case c;
        conv2d_plan plan;
        do {
            c = blocked  ? draw_blocked_case(&rng)
                : inside ? draw_inside_case(&rng)
                         : draw_random_case(&rng);
            plan = conv2d_plan_for(ctx, &c.p);
        } while (!conv2d_forward_runs_rows(ctx, &plan, &c.p, keeping) ||
                 (!inside && c.p.pad_top == 0 && c.p.pad_left == 0));
        const conv2d_params *p = &c.p;
        const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
        float *host[4] = {test_floats(inputs), test_floats(weights), test_floats(p->out_channels),
                          test_floats(outputs)};
        test_fill_signed(&rng, host[0], inputs);
        test_fill_signed(&rng, host[1], weights);
        test_fill_signed(&rng, host[2], p->out_channels);
        test_fill_signed(&rng, host[3], outputs);
        float *results[2][2], *expected[2] = {test_floats(outputs), test_floats(inputs)};
        cl_mem in = NULL, w = NULL, b = NULL, go = NULL, out = NULL, gi = NULL, kept = NULL;
        int ok =
            CHECK_OK(ctx, upload(ctx, host[0], inputs, &in)) &&
            CHECK_OK(ctx, upload(ctx, host[1], weights, &w)) &&
            CHECK_OK(ctx, upload(ctx, host[2], p->out_channels, &b)) &&
            CHECK_OK(ctx, upload(ctx, host[3], outputs, &go)) &&
            CHECK_OK(ctx, upload_nan(ctx, outputs, &out)) &&
            CHECK_OK(ctx, upload_nan(ctx, inputs, &gi)) &&
            (!keeping || CHECK_OK(ctx, upload_nan(ctx, conv2d_kept_input_floats(&plan, p), &kept)));
        const int vector_width = ctx->preferred_vector_width;
        for (int run = 0; run < 2; run++) {
            results[run][0] = test_floats(outputs);
            results[run][1] = test_floats(inputs);
            ctx->preferred_vector_width = run ? 8 : vector_width;
            ok = ok && CHECK(conv2d_forward_runs_rows(ctx, &plan, p, keeping) == !run) &&
                 CHECK_OK(ctx, conv2d_forward_planned(ctx, &plan, p, in, w, b, out, kept, NULL)) &&
                 CHECK_OK(ctx, download(ctx, out, results[run][0], outputs)) &&
                 (keeping ||
                  (CHECK_OK(ctx, conv2d_backward_data_planned(ctx, &plan, p, go, w, gi)) &&
                   CHECK_OK(ctx, download(ctx, gi, results[run][1], inputs))));
        }
        ctx->preferred_vector_width = vector_width;
        row_cases += ok;
        if (ok) {
            conv2d_forward_ref(p, host[0], host[1], p->has_bias ? host[2] : NULL, expected[0]);
            test_tally_record(&forward_result,
                              max_relative_error(results[0][0], expected[0], outputs, 1.0),
                              tolerance);
        }
        if (ok && !keeping) {
            conv2d_backward_data_ref(p, host[3], host[1], expected[1]);
            test_tally_record(&data_result,
                              max_relative_error(results[0][1], expected[1], inputs, 1.0),
                              tolerance);
        }
        if (!ok || memcmp(results[0][0], results[1][0], sizeof(float) * (size_t)outputs) ||
            (!keeping && memcmp(results[0][1], results[1][1], sizeof(float) * (size_t)inputs))) {
            char text[256];
            describe_case(&c, text, sizeof(text));
            fprintf(stderr, "positions along rows, case %d differs: %s\n", index, text);
            mismatches++;
        }
        cl_mem all[] = {in, w, b, go, out, gi, kept};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            buffer_release(&all[i]);
        for (int k = 0; k < 4; k++)
            free(host[k]);
        for (int run = 0; run < 2; run++)
            for (int k = 0; k < 2; k++)
                free(results[run][k]);
        free(expected[0]);
        free(expected[1]);
    }
    CHECK(mismatches == 0 && row_cases == cases);
    test_tally_print("conv2d forward, positions along rows", 62, "shapes", &forward_result);
    test_tally_print("conv2d backward data, positions along rows", 62, "shapes", &data_result);
    printf("positions along rows: %d cases, %d differ from the same calls without\n", cases,
           mismatches);
}

/* Both backward operations through conv2d_backward_planned, where
 * backward-weights may read backward-data's copy of the gradient instead
 * of transposing it (output channels in whole vectors; with a bias the
 * transposition only sums), give bit for bit the gradients of the two
 * operations run apart, the bias's too; and with
 * accumulate_data, where the plan can (conv2d_backward_data_accumulates),
 * the input gradient added to what the buffer held, each float as the host
 * adds it, and a clear refusal elsewhere. Random shapes with 16, 32 or 64
 * output channels, a bias on every other pair of shapes; the kept input of
 * a forward on every other shape. */
static void check_shared_gradient(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    int shared_cases = 0, shared_bias_cases = 0, accumulated_cases = 0, mismatches = 0;
    const int profiling = ctx->profiling;
    ctx->profiling = 1;
    for (int index = 0; index < cases; index++) {
        conv_case c;
        do {
            c = draw_random_case(&rng);
            c.p.out_channels = 16 << test_rand_int(&rng, 0, 2);
            c.p.has_bias = index / 2 % 2;
        } while (reference_work(&c.p) > max_reference_work);
        const conv2d_params *p = &c.p;
        const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
        const int K = p->out_channels;
        const conv2d_plan plan = conv2d_plan_for(ctx, p);
        const int64_t kept_floats = index % 2 ? conv2d_kept_input_floats(&plan, p) : 0;
        const int accumulates = conv2d_backward_data_accumulates(&plan, p);
        accumulated_cases += accumulates;
        float *host[3] = {test_floats(inputs), test_floats(weights), test_floats(outputs)};
        test_fill_signed(&rng, host[0], inputs);
        test_fill_signed(&rng, host[1], weights);
        test_fill_signed(&rng, host[2], outputs);
        float *results[3][3];
        cl_mem in = NULL, w = NULL, b = NULL, go = NULL, out = NULL, gi = NULL, gw = NULL,
               gb = NULL, scratch = NULL, kept = NULL;
        /* The forward's bias: the gradient's first K floats will do. */
        int ok = CHECK_OK(ctx, upload(ctx, host[0], inputs, &in)) &&
                 CHECK_OK(ctx, upload(ctx, host[1], weights, &w)) &&
                 CHECK_OK(ctx, upload(ctx, host[2], K, &b)) &&
                 CHECK_OK(ctx, upload(ctx, host[2], outputs, &go)) &&
                 CHECK_OK(ctx, upload_nan(ctx, outputs, &out)) &&
                 CHECK_OK(ctx, buffer_create(ctx, conv2d_backward_weights_scratch_bytes(&plan, p),
                                             &scratch)) &&
                 (!kept_floats || CHECK_OK(ctx, upload_nan(ctx, kept_floats, &kept))) &&
                 CHECK_OK(ctx, conv2d_forward_planned(ctx, &plan, p, in, w, p->has_bias ? b : NULL,
                                                      out, kept, NULL));
        for (int run = 0; run < 3; run++) {
            results[run][0] = test_floats(inputs);
            results[run][1] = test_floats(weights);
            results[run][2] = test_floats(K);
            /* Run 2 adds the input gradient to the input's values. */
            ok = ok &&
                 CHECK_OK(ctx, run == 2 ? upload(ctx, host[0], inputs, &gi)
                                        : upload_nan(ctx, inputs, &gi)) &&
                 CHECK_OK(ctx, upload_nan(ctx, weights, &gw)) &&
                 CHECK_OK(ctx, upload_nan(ctx, K, &gb));
            memset(ctx->profile, 0, sizeof(ctx->profile));
            cl_mem bias = p->has_bias ? gb : NULL;
            if (run == 0)
                ok = ok && CHECK_OK(ctx, conv2d_backward_data_planned(ctx, &plan, p, go, w, gi)) &&
                     CHECK_OK(ctx, conv2d_backward_weights_planned(ctx, &plan, p, in, go, gw, bias,
                                                                   scratch, kept));
            else if (run == 1 || accumulates)
                ok = ok && CHECK_OK(ctx, conv2d_backward_planned(ctx, &plan, p, go, w, gi, run == 2,
                                                                 in, gw, bias, scratch, kept));
            else
                ok = ok &&
                     CHECK(conv2d_backward_planned(ctx, &plan, p, go, w, gi, 1, in, gw, bias,
                                                   scratch, kept) == CLCNN_ERROR_INVALID_ARGUMENT);
            ok = ok &&
                 CHECK_OK(ctx, buffer_read(ctx, gi, 0, sizeof(float) * (size_t)inputs,
                                           results[run][0])) &&
                 CHECK_OK(ctx, buffer_read(ctx, gw, 0, sizeof(float) * (size_t)weights,
                                           results[run][1])) &&
                 CHECK_OK(ctx, buffer_read(ctx, gb, 0, sizeof(float) * (size_t)K, results[run][2]));
            /* Shared: the transposition did not run, but for its sums where there
             * is a bias. */
            if (run == 1 && use_direct_kernels(ctx) &&
                test_kernel_launches(ctx, "conv2d_transpose_grad_output") == 0) {
                shared_cases++;
                const int sums = test_kernel_launches(ctx, "conv2d_bias_sums_grad_output");
                ok = CHECK(sums == p->has_bias) && ok;
                shared_bias_cases += sums;
            }
            buffer_release(&gi);
            buffer_release(&gw);
            buffer_release(&gb);
        }
        int bias_differ = 0;
        for (int run = 1; run < 3 && ok && p->has_bias; run++)
            if (run == 1 || accumulates)
                bias_differ |= memcmp(results[0][2], results[run][2], sizeof(float) * (size_t)K);
        int added_differ = 0;
        for (int64_t i = 0; i < inputs && ok && accumulates; i++) {
            const float sum = host[0][i] + results[0][0][i];
            added_differ |= memcmp(&sum, &results[2][0][i], sizeof(float)) != 0;
        }
        if (!ok || added_differ || bias_differ ||
            memcmp(results[0][0], results[1][0], sizeof(float) * (size_t)inputs) ||
            memcmp(results[0][1], results[1][1], sizeof(float) * (size_t)weights) ||
            (accumulates &&
             memcmp(results[0][1], results[2][1], sizeof(float) * (size_t)weights))) {
            char text[256];
            describe_case(&c, text, sizeof(text));
            fprintf(stderr, "shared gradient case %d differs: %s\n", index, text);
            mismatches++;
        }
        cl_mem all[] = {in, w, b, go, out, scratch, kept};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            buffer_release(&all[i]);
        for (int run = 0; run < 3; run++)
            for (int k = 0; k < 3; k++)
                free(results[run][k]);
        for (int k = 0; k < 3; k++)
            free(host[k]);
    }
    ctx->profiling = profiling;
    CHECK(mismatches == 0);
    /* Register-blocked kernels share the copy wherever backward-data pads the gradient. */
    if (use_direct_kernels(ctx))
        CHECK(shared_cases >= cases / 4 && shared_bias_cases >= cases / 10 &&
              accumulated_cases >= cases / 4);
    printf("shared gradient copy and accumulated input gradient: %d cases, %d of them shared (%d "
           "with a bias), %d accumulated, %d differ\n",
           cases, shared_cases, shared_bias_cases, accumulated_cases, mismatches);
}

/* 3x3 convolutions with stride 2 and padding 1 (residual networks'
 * downsampling), whose backward-data the register-blocked path runs in one
 * launch of conv2d_backward_data_stride2: odd and even sizes from 1 to 30
 * (the last row and column of blocks half outside the image), channel
 * counts that fill no vector, batch 1 to 4, against the reference; where
 * the plan accumulates, the gradient added to what the buffer held must be
 * each float as the host adds it; narrower vectors (8, 4 and 1 lanes)
 * must give the same floats. One case in eight pads the bottom and right
 * by 0, which takes the phases' path. */
static void check_stride2_blocks(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0, 0, 0.0};
    int in_blocks = 0, accumulated = 0, added_differ = 0, configs_differ = 0;
    const int profiling = ctx->profiling;
    ctx->profiling = 1;
    for (int index = 0; index < cases; index++) {
        conv_case c;
        memset(&c, 0, sizeof(c));
        conv2d_params *p = &c.p;
        p->batch = test_rand_int(&rng, 1, 4);
        p->in_channels = test_rand_int(&rng, 1, 40);
        p->out_channels = test_rand_int(&rng, 1, 40);
        p->kernel_h = p->kernel_w = 3;
        p->stride_h = p->stride_w = 2;
        p->pad_top = p->pad_left = 1;
        c.pad_bottom = c.pad_right = index % 8 == 7 ? 0 : 1;
        p->in_height = test_rand_int(&rng, 2, 30);
        p->in_width = index % 10 == 0 ? test_rand_int(&rng, 1, 3) : test_rand_int(&rng, 2, 30);
        p->out_height = conv_output_size(p->in_height, 1, c.pad_bottom, 3, 2);
        p->out_width = conv_output_size(p->in_width, 1, c.pad_right, 3, 2);
        const int64_t inputs = input_count(p), outputs = output_count(p), weights = weight_count(p);
        float *weight = test_floats(weights), *grad_output = test_floats(outputs);
        float *start = test_floats(inputs), *expected = test_floats(inputs);
        float *device = test_floats(inputs), *added = test_floats(inputs);
        test_fill_signed(&rng, weight, weights);
        test_fill_signed(&rng, grad_output, outputs);
        test_fill_signed(&rng, start, inputs);
        conv2d_backward_data_ref(p, grad_output, weight, expected);
        const conv2d_plan plan = conv2d_plan_for(ctx, p);
        const int accumulates = conv2d_backward_data_accumulates(&plan, p);
        cl_mem w = NULL, go = NULL, gi = NULL, in = NULL, gw = NULL, scratch = NULL;
        memset(ctx->profile, 0, sizeof(ctx->profile));
        int ok = CHECK_OK(ctx, upload(ctx, weight, weights, &w)) &&
                 CHECK_OK(ctx, upload(ctx, grad_output, outputs, &go)) &&
                 CHECK_OK(ctx, upload_nan(ctx, inputs, &gi)) &&
                 CHECK_OK(ctx, conv2d_backward_data_planned(ctx, &plan, p, go, w, gi)) &&
                 CHECK_OK(ctx, buffer_read(ctx, gi, 0, sizeof(float) * (size_t)inputs, device));
        in_blocks += ok && test_kernel_launches(ctx, "conv2d_backward_data_stride2") > 0;
        /* Narrower vectors give the same floats: 8 lanes (woven rows
         * where 16 vector registers make blocks of 2, else the lanes' way
         * out), 4 and 1 (the lanes' way). */
        static const direct_config narrower[] = {{8, 1, 4, 4}, {4, 2, 5, 1}, {1, 1, 3, 4}};
        for (size_t i = 0;
             i < sizeof(narrower) / sizeof(narrower[0]) && ok && use_direct_kernels(ctx); i++) {
            ok = CHECK_OK(ctx, conv2d_backward_data_direct(ctx, &narrower[i], p, go, w, gi)) &&
                 CHECK_OK(ctx, buffer_read(ctx, gi, 0, sizeof(float) * (size_t)inputs, added));
            configs_differ += ok && memcmp(device, added, sizeof(float) * (size_t)inputs) != 0;
        }
        if (ok && accumulates) {
            buffer_release(&gi);
            ok = CHECK_OK(ctx, upload(ctx, start, inputs, &gi)) &&
                 CHECK_OK(ctx, upload(ctx, start, inputs, &in)) &&
                 CHECK_OK(ctx, upload_nan(ctx, weights, &gw)) &&
                 CHECK_OK(ctx, buffer_create(ctx, conv2d_backward_weights_scratch_bytes(&plan, p),
                                             &scratch)) &&
                 CHECK_OK(ctx, conv2d_backward_planned(ctx, &plan, p, go, w, gi, 1, in, gw, NULL,
                                                       scratch, NULL)) &&
                 CHECK_OK(ctx, buffer_read(ctx, gi, 0, sizeof(float) * (size_t)inputs, added));
            for (int64_t i = 0; i < inputs && ok; i++) {
                const float sum = start[i] + device[i];
                added_differ += memcmp(&sum, &added[i], sizeof(float)) != 0;
            }
            accumulated++;
        }
        if (!ok || !test_tally_record(&result, max_relative_error(device, expected, inputs, 1.0),
                                      tolerance)) {
            char text[256];
            describe_case(&c, text, sizeof(text));
            fprintf(stderr, "stride-2 backward-data case %d: %s\n", index, text);
        }
        cl_mem all[] = {w, go, gi, in, gw, scratch};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
            buffer_release(&all[i]);
        float *host[] = {weight, grad_output, start, expected, device, added};
        for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
            free(host[i]);
    }
    ctx->profiling = profiling;
    CHECK(result.failures == 0 && added_differ == 0 && configs_differ == 0);
    if (use_direct_kernels(ctx))
        CHECK(in_blocks >= cases / 2 && accumulated >= cases / 4);
    test_tally_print("conv2d backward data, 3x3 stride 2 pad 1", 62, "shapes", &result);
    printf("stride-2 backward-data: %d cases, %d in one launch, %d accumulated, %d floats of the "
           "accumulated differ, %d narrower configurations differ\n",
           cases, in_blocks, accumulated, added_differ, configs_differ);
}

int main(void) {
    quick_mode = test_quick_divisor() > 1;
    /* The test picks paths and tiles itself; CLCNN_TILES and CLCNN_CONV
     * inherited from the shell would skew the device's defaults. */
    unsetenv("CLCNN_TILES");
    unsetenv("CLCNN_CONV");
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    device_default_direct = ctx->config.direct;
    device_default_tiles = ctx->config.tiles;
    printf("device: %s%s\n", clcnn_device_name(ctx), quick_mode ? " (quick mode)" : "");
    const double start = clock_seconds();

    /* The extra configurations must be valid: the tiled kernels refuse any other. */
    static const tile_config extra_configs[] = {
        {64, 64, 16, 4, 4}, {8, 8, 3, 1, 1}, {24, 12, 8, 3, 2}};

    run_backward_shapes(ctx, PATH_TILED, NULL, scaled_count(RANDOM_SHAPES),
                        scaled_count(LONG_REDUCTION_SHAPES), 11);
    for (int i = 0; i < 3; i++) {
        CHECK(tile_config_valid(ctx, &extra_configs[i]));
        run_backward_shapes(ctx, PATH_TILED, &extra_configs[i],
                            scaled_count(SHAPES_PER_EXTRA_CONFIG), i == 2 ? scaled_count(2) : 1,
                            21 + (uint64_t)i);
    }
    /* The public entry points on this device's own choice of path, if not the tiled one. */
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
    const int default_is_tiled = !use_direct_kernels(ctx);
    if (!default_is_tiled)
        run_backward_shapes(ctx, PATH_DEVICE_DEFAULT, NULL, scaled_count(DEFAULT_PATH_SHAPES),
                            scaled_count(LONG_REDUCTION_SHAPES / 2), 31);
    select_conv_path(ctx, PATH_TILED);
    check_missing_scratch_refused(ctx);
    select_conv_path(ctx, PATH_DEVICE_DEFAULT);
    run_direct_weights(ctx);
    check_kept_input(ctx, scaled_count(KEPT_INPUT_SHAPES), 61);
    check_row_positions(ctx, scaled_count(KEPT_INPUT_SHAPES), 67);
    check_shared_gradient(ctx, scaled_count(SHARED_GRADIENT_SHAPES), 71);
    check_stride2_blocks(ctx, scaled_count(STRIDE2_SHAPES), 73);
    run_reduce_shapes(ctx, scaled_count(REDUCE_SHAPES), 41);
    run_finite_differences(ctx, scaled_count(FINITE_DIFFERENCE_SHAPES), 51);
    /* Throughput is a report, not a check: not measured in quick mode
     * (valgrind, Oclgrind), where its large layer would take hours. */
    if (!quick_mode) {
        report_throughput(ctx, PATH_TILED, 5);
        if (!default_is_tiled)
            report_throughput(ctx, PATH_DEVICE_DEFAULT, 5);
    }

    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(ctx);
    return test_finish();
}
