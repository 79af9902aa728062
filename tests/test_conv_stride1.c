/* The two paths of stride-1 convolutions beside the direct kernels:
 * - the row kernel (conv2d_forward_rows, kernels/conv2d_direct.cl): stride-1
 *   convolutions with at most 4 input channels forward, and backward-data of
 *   stride-1 convolutions with at most 8, on devices that run the
 *   register-blocked kernels;
 * - Winograd F(2x2, 3x3) (host/ops/conv2d_winograd.c), turned on
 *   (CLCNN_WINOGRAD=1's setting) for 3x3 shapes of 1-40 channels, sizes
 *   1-20 and padding 0-2 on each side, forward, backward-data (also added
 *   to what the gradient holds) and backward-weights (against a float64 weight gradient written
 * here, and central differences on small shapes; also with 65-72 channels each way, and on a device
 * of 64 KiB of local memory (16 for a CPU's chunks), so that both of its ways run:
 * winograd_gradient_fused, and the transforms through global memory);
 * - its fused kernels (winograd_fused, winograd_fused_pairs) on the same
 *   shapes, but reading 1-16 channels, and a forward 17-40 in one round of
 *   tuning's steps in eight (draw_fused_channels), forward and
 *   backward-data (also added), each shape in one of tuning's steps
 *   in turn (one row of 16 output channels or three rows of 8, and vectors
 *   of 16 tiles with 16 output channels; with AVX2's registers 8 or three
 *   rows of 4; then the pairs on the widest vectors): the first as
 *   CLCNN_WINOGRAD=fused runs it, the others through a tuning verdict, as
 *   autotuning leaves it; a shape with the most input channels they take
 *   (WINOGRAD_FUSED_CHANNELS) in each step; each verdict runs its step,
 *   and a verdict from a file written before the third configuration
 *   picks the first.
 * - the 4x4 kernel (winograd4_fused, CLCNN_WINOGRAD=4x4's setting) on the
 *   same shapes, reading 1-16 channels of 1-3 images (8-12 in one in
 *   four), forward and
 *   backward-data (also added), its values held to their 4x4 tiles; a
 *   shape with 32 and one with WINOGRAD4_CHANNELS input channels (the
 *   rooms of its programs but 16); a verdict for its step;
 *   at the AVX-512 and AVX2 widths (its vectors hold 8 images at any).
 * The fused and 4x4 kernels run at the AVX-512 and AVX2 widths: their
 * steps are the same at the GPU-style width as at the AVX2 one.
 * - the pointwise kernel (conv2d_pointwise, CLCNN_POINTWISE=1's setting)
 *   for 1x1 unpadded shapes of 1-40 channels whose planes of 1-192
 *   positions end in partial vectors, forward (bias, relu) and
 *   backward-data, also added to what the gradient holds; and a tuning
 *   verdict either way, which the plan follows.
 * Every case here is one the path must take, and the test asserts it did
 * (its launches, counted by the context's profile); each runs with the
 * vector widths of an AVX-512 CPU (16), an AVX2 CPU (8) and a GPU-style
 * device reporting a preferred float width of 1 (4), against a float64
 * convolution written here (not the reference). Backward-data is also
 * checked against central differences of that convolution's loss
 * sum(g * conv(x)) on small shapes. The reference's forward and
 * backward-data are held to the same float64 results.
 *
 * Errors are relative to the magnitude of each value (the same sum over
 * |x| |w|, plus |bias|), where float rounding lives; the kernels are held to
 * 1e-5 of it, the reference (double sums) to 1e-6. Winograd's values, which
 * it computes a tile or a filter at a time, are held to the largest
 * magnitude in their tile or filter (hold_to_blocks).
 * Outputs are prefilled with NaN. */
#include "ops.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FORWARD_SHAPES = 150, BACKWARD_SHAPES = 120, DIFFERENCE_SHAPES = 12 };

/* A path: its name, the kernel that runs once per call on it (as the
 * profile names it in a forward and in a backward-data). */
typedef struct stride1_path {
    const char *name, *kernel, *backward_kernel;
    int winograd, pointwise;
} stride1_path;
static const stride1_path rows_path = {"row kernel", "conv2d_forward_rows", "conv2d_forward_rows",
                                       0, 0};
static const stride1_path winograd_path = {"Winograd", "winograd_transform_tiles",
                                           "winograd_transform_tiles", 1, 0};
static const stride1_path fused_path = {"fused Winograd", "winograd_fused", "winograd_fused", 2, 0};
static const stride1_path winograd4_path = {"4x4 Winograd", "winograd4_fused", "winograd4_fused", 3,
                                            0};
static const stride1_path pointwise_path = {"pointwise", "conv2d_pointwise",
                                            "conv2d_pointwise_backward_data", 0, 1};

static int upload(clcnn_context *ctx, const float *values, int64_t count, cl_mem *out) {
    const size_t bytes = sizeof(float) * (size_t)(count > 0 ? count : 1);
    return CHECK_OK(ctx, buffer_create(ctx, bytes, out)) &&
           (count == 0 || CHECK_OK(ctx, buffer_write(ctx, *out, 0, bytes, values)));
}

static int download(clcnn_context *ctx, cl_mem buffer, float *values, int64_t count) {
    return CHECK_OK(ctx, buffer_read(ctx, buffer, 0, sizeof(float) * (size_t)count, values));
}

static void print_shape(const char *what, int index, const conv2d_params *p) {
    printf("%s %d: batch %d, %d -> %d channels, %dx%d input, %dx%d kernel, pad %d,%d, output "
           "%dx%d, bias %d\n",
           what, index, p->batch, p->in_channels, p->out_channels, p->in_height, p->in_width,
           p->kernel_h, p->kernel_w, p->pad_top, p->pad_left, p->out_height, p->out_width,
           p->has_bias);
}

/* The start of draw_winograd_shape's and draw_pointwise_shape's: 1-3
 * images of 1-40 channels each way, a kernel x kernel window at stride 1. */
static conv2d_params draw_square_window(test_rng *rng, int kernel) {
    conv2d_params p;
    memset(&p, 0, sizeof(p));
    p.batch = test_rand_int(rng, 1, 3);
    p.in_channels = test_rand_int(rng, 1, 40);
    p.out_channels = test_rand_int(rng, 1, 40);
    p.kernel_h = p.kernel_w = kernel;
    p.stride_h = p.stride_w = 1;
    return p;
}

/* And their end: a forward's bias and relu at times, none for backward-data. */
static void draw_epilogue(test_rng *rng, int backward, conv2d_params *p) {
    p->has_bias = backward ? 0 : test_rand_int(rng, 0, 1);
    p->relu = backward ? 0 : test_rand_int(rng, 0, 1);
}

/* A 3x3 stride-1 shape for Winograd: odd and even sizes (partial tiles),
 * padding 0-2 on each side, a relu at times (which its kernels apply as
 * they store). */
static conv2d_params draw_winograd_shape(test_rng *rng, int backward) {
    conv2d_params p = draw_square_window(rng, 3);
    p.pad_top = test_rand_int(rng, 0, 2);
    p.pad_left = test_rand_int(rng, 0, 2);
    p.in_height = test_rand_int(rng, 1, 20);
    p.in_width = test_rand_int(rng, 1, 20);
    p.out_height = p.in_height + p.pad_top + test_rand_int(rng, 0, 2) - 2;
    p.out_width = p.in_width + p.pad_left + test_rand_int(rng, 0, 2) - 2;
    draw_epilogue(rng, backward, &p);
    return p;
}

/* A 1x1 unpadded shape: planes of 1-192 positions, most ending in a
 * partial vector (of 4 to 64 positions), a relu at times. */
static conv2d_params draw_pointwise_shape(test_rng *rng, int backward) {
    conv2d_params p = draw_square_window(rng, 1);
    p.in_height = p.out_height = test_rand_int(rng, 1, 12);
    p.in_width = p.out_width = test_rand_int(rng, 1, 16);
    draw_epilogue(rng, backward, &p);
    return p;
}

/* A stride-1 shape with max_channels input channels at most whose row-kernel
 * width (the output's for forward, the input's for backward-data) is 8..64,
 * with padding up to kernel - 1 on each side; or draw_winograd_shape's. */
static conv2d_params draw_shape(test_rng *rng, const stride1_path *path, int max_channels,
                                int backward) {
    if (path->winograd)
        return draw_winograd_shape(rng, backward);
    if (path->pointwise)
        return draw_pointwise_shape(rng, backward);
    conv2d_params p;
    memset(&p, 0, sizeof(p));
    /* The row kernel is built per (vector width, vectors per row, channel
     * block), its -D options: row lengths and the channel counts that set
     * the block come from small sets, so that the test builds some tens of
     * programs rather than hundreds; every row length but 8, 16 and 64 ends
     * in a partial vector (13 and 16 fit one vector of 16). The other sizes
     * are drawn freely. */
    static const int widths[6] = {8, 13, 16, 28, 37, 64};
    static const int blocks[4] = {1, 3, 5, 40};
    p.batch = test_rand_int(rng, 1, 3);
    if (backward) {
        /* Backward-data runs the row kernel with the channels swapped. */
        p.in_channels = test_rand_int(rng, 0, 3) ? blocks[test_rand_int(rng, 0, 2)] : max_channels;
        p.out_channels = test_rand_int(rng, 1, 40);
    } else {
        p.in_channels = test_rand_int(rng, 1, max_channels);
        p.out_channels = blocks[test_rand_int(rng, 0, 3)];
    }
    p.kernel_h = test_rand_int(rng, 1, 7);
    p.kernel_w = test_rand_int(rng, 1, 7);
    p.stride_h = p.stride_w = 1;
    p.pad_top = test_rand_int(rng, 0, p.kernel_h - 1);
    p.pad_left = test_rand_int(rng, 0, p.kernel_w - 1);
    const int pad_bottom = test_rand_int(rng, 0, p.kernel_h - 1);
    const int pad_right = test_rand_int(rng, 0, p.kernel_w - 1);
    const int row_width = widths[test_rand_int(rng, 0, 5)];
    if (backward) {
        p.in_width = row_width;
    } else {
        /* out_width = in_width + pads - kernel_w + 1 */
        p.in_width = row_width - p.pad_left - pad_right + p.kernel_w - 1;
    }
    p.in_height = test_rand_int(rng, 1, 12);
    p.out_width = p.in_width + p.pad_left + pad_right - p.kernel_w + 1;
    p.out_height = p.in_height + p.pad_top + pad_bottom - p.kernel_h + 1;
    if (p.out_height < 1) {
        p.in_height += 1 - p.out_height;
        p.out_height = 1;
    }
    p.has_bias = backward ? 0 : test_rand_int(rng, 0, 1);
    return p;
}

/* Winograd computes a block of values together from the same transformed
 * terms, so a value's rounding follows its block's largest terms, not its
 * own: a 2x2 tile of outputs, each from all 16 transformed values of the
 * tile's 4x4 window (an output at a border that reads mostly padding came
 * out at 4.9e-5 of its own magnitude, one channel, 39 output channels,
 * 3x17, on either of Winograd's kernels); a filter's 9 taps of the weight
 * gradient, each from all 16 of the filter's sums (a tap that reads only
 * padding, its gradient exactly 0, comes out at some 1e-8 of its
 * neighbours). Each value is held to the largest magnitude in its block:
 * size x size squares from (0, 0) of each plane of planes x height x width. */
static void hold_to_blocks(double *magnitude, int64_t planes, int height, int width, int size) {
    for (int64_t plane = 0; plane < planes; plane++) {
        double *m = magnitude + plane * height * width;
        for (int y = 0; y < height; y += size)
            for (int x = 0; x < width; x += size) {
                double largest = 0;
                for (int i = y; i < y + size && i < height; i++)
                    for (int j = x; j < x + size && j < width; j++)
                        largest = fmax(largest, m[i * width + j]);
                for (int i = y; i < y + size && i < height; i++)
                    for (int j = x; j < x + size && j < width; j++)
                        m[i * width + j] = largest;
            }
    }
}

/* The side of the tiles path computes its outputs in. */
static int tile_size(const stride1_path *path) {
    return path->winograd == 3 ? 4 : 2;
}

/* The steps of the fused path (winograd 2) or of the 4x4 one (3) into
 * steps; their count. */
static int path_steps(clcnn_context *ctx, const stride1_path *path, conv_step *steps) {
    return path->winograd == 3 ? conv2d_winograd4_steps(ctx, steps)
                               : conv2d_winograd_fused_steps(ctx, steps);
}

/* The fused path runs its first step where nothing is tuned
 * (CLCNN_WINOGRAD=fused's setting) and the others, the pairs' kernel among
 * them, where tuning chose them: shape `index` of it runs step index %
 * count, through a verdict remembered for operation and p and the tuned
 * setting. Returns the kernel that then runs once per call: `kernel`, or
 * the pairs' kernel. */
static const char *choose_fused_config(clcnn_context *ctx, const stride1_path *path, int index,
                                       const char *operation, const conv2d_params *p,
                                       const char *kernel) {
    if (path->winograd < 2)
        return kernel;
    conv_step steps[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    const int count = path_steps(ctx, path, steps);
    const conv_step step = steps[index % count];
    ctx->config.winograd = index % count == 0 ? path->winograd : -1;
    CHECK_OK(ctx, conv2d_remember_winograd(ctx, operation, p, &step));
    return step.kernels == CONV_WINOGRAD_PAIRS ? "winograd_fused_pairs" : kernel;
}

/* The fused kernels are built per step, tile width, padding and bucket of
 * 16 channels read (-DFUSED_C, which only sizes a private array): on the
 * fused path shape `index` reads 1-16 channels (the input's forward, the
 * output gradient's backward-data), and a forward 17-40 in every eighth
 * round of tuning's steps, so that each step runs the larger buckets
 * without the test compiling every step x bucket x tile width x padding
 * (the suite's time; check_fused_channels runs the largest bucket in each
 * step, and backward-data runs the forward's kernels). The 4x4 kernel's
 * program with room for 16 channels takes them all: its shapes read 1-16
 * channels (check_fused_channels runs 32 and WINOGRAD4_CHANNELS, the other
 * programs' rooms) of 1-3 images, or in one shape in four 8-12, which fill
 * a vector of 8. */
static void draw_fused_channels(clcnn_context *ctx, const stride1_path *path, int index,
                                int backward, test_rng *rng, conv2d_params *p) {
    if (path->winograd < 2)
        return;
    conv_step steps[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    const int count = path_steps(ctx, path, steps);
    if (backward)
        p->out_channels = test_rand_int(rng, 1, 16);
    else
        p->in_channels = index / count % 8 == 7 && path->winograd == 2 ? test_rand_int(rng, 17, 40)
                                                                       : test_rand_int(rng, 1, 16);
    /* The 4x4 kernel's vectors hold 8 images: one shape in four fills one. */
    if (path->winograd == 3 && index % 4 == 3)
        p->batch = test_rand_int(rng, 8, 12);
}

/* Shape p's forward on path (configuration `index` of the fused kernel's,
 * in turn) against the float64 convolution: whether the path ran it, and
 * the worst scaled errors of the kernel and of the reference. */
static int forward_on_path(clcnn_context *ctx, const stride1_path *path, int index,
                           const conv2d_params *p, test_rng *rng, double *e_kernel,
                           double *e_reference) {
    const int64_t nx = (int64_t)p->batch * p->in_channels * p->in_height * p->in_width;
    const int64_t nw = (int64_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
    const int64_t ny = (int64_t)p->batch * p->out_channels * p->out_height * p->out_width;
    float *x = test_floats(nx), *w = test_floats(nw), *bias = test_floats(p->out_channels),
          *y = test_floats(ny), *reference = test_floats(ny);
    double *expected = test_doubles(ny), *magnitude = test_doubles(ny);
    test_fill_signed(rng, x, nx);
    test_fill_signed(rng, w, nw);
    test_fill_signed(rng, bias, p->out_channels);
    for (int64_t i = 0; i < ny; i++)
        y[i] = reference[i] = NAN;
    conv2d_forward64(p, x, w, bias, expected, magnitude);
    for (int64_t i = 0; p->relu && i < ny; i++)
        expected[i] = fmax(expected[i], 0.0);
    conv2d_forward_ref(p, x, w, bias, reference);
    const char *kernel = choose_fused_config(ctx, path, index, "forward", p, path->kernel);
    const int before = test_kernel_launches(ctx, kernel);
    const int copies_before = test_kernel_launches(ctx, "winograd_pad_input");
    cl_mem xb = NULL, wb = NULL, bb = NULL, yb = NULL;
    if (upload(ctx, x, nx, &xb) && upload(ctx, w, nw, &wb) &&
        upload(ctx, bias, p->out_channels, &bb) && upload(ctx, y, ny, &yb) &&
        CHECK_OK(ctx, conv2d_forward(ctx, p, xb, wb, bb, yb)))
        download(ctx, yb, y, ny);
    const int took_path = test_kernel_launches(ctx, kernel) == before + 1;
    /* Padding 1 on both sides reads the input itself, odd widths too (their
     * last chunk a float short: kernels/conv2d_winograd.cl, load_middle). */
    if (path->winograd && p->pad_left == 1 && p->out_width == p->in_width)
        CHECK(test_kernel_launches(ctx, "winograd_pad_input") == copies_before);
    buffer_release(&xb);
    buffer_release(&wb);
    buffer_release(&bb);
    buffer_release(&yb);
    *e_reference = worst_scaled_error(reference, expected, magnitude, ny);
    if (path->winograd)
        hold_to_blocks(magnitude, (int64_t)p->batch * p->out_channels, p->out_height, p->out_width,
                       tile_size(path));
    *e_kernel = worst_scaled_error(y, expected, magnitude, ny);
    free(x);
    free(w);
    free(bias);
    free(y);
    free(reference);
    free(expected);
    free(magnitude);
    return took_path;
}

static void check_forward(clcnn_context *ctx, const stride1_path *path, int vector_width,
                          uint64_t seed) {
    test_rng rng = {seed};
    double worst_kernel = 0, worst_reference = 0;
    int taken = 0;
    const int shapes = test_scaled_count(FORWARD_SHAPES);
    for (int index = 0; index < shapes; index++) {
        conv2d_params p = draw_shape(&rng, path, 4, 0);
        draw_fused_channels(ctx, path, index, 0, &rng, &p);
        if ((!path->winograd && !path->pointwise && (p.out_width < 8 || p.out_width > 64)) ||
            p.in_width < 1 || p.out_width < 1 || p.out_height < 1) {
            index--;
            continue;
        }
        double e_kernel = 0, e_reference = 0;
        const int took_path = forward_on_path(ctx, path, index, &p, &rng, &e_kernel, &e_reference);
        taken += took_path;
        if (!CHECK(took_path) || !CHECK(e_kernel <= 1e-5) || !CHECK(e_reference <= 1e-6)) {
            print_shape(path->name, index, &p);
            printf("  forward, vector width %d: %s %s, error %.3g, reference error %.3g\n",
                   vector_width, path->name, took_path ? "taken" : "NOT taken", e_kernel,
                   e_reference);
        }
        worst_kernel = fmax(worst_kernel, e_kernel);
        worst_reference = fmax(worst_reference, e_reference);
    }
    printf("%s forward, vector width %d: %d shapes, %d on it, worst error %.3g (reference "
           "%.3g)\n",
           path->name, vector_width, shapes, taken, worst_kernel, worst_reference);
}

/* A fused kernel (path's: the 2x2 or the 4x4 one) up to in_channels
 * input channels, the most a program of it takes, where its private arrays
 * are fullest: a shape with that many, in each configuration. */
static void check_fused_channels(clcnn_context *ctx, const stride1_path *path, int in_channels,
                                 int vector_width, uint64_t seed) {
    test_rng rng = {seed};
    conv2d_params p;
    memset(&p, 0, sizeof(p));
    p.batch = 2;
    p.in_channels = in_channels;
    p.out_channels = 20;
    p.kernel_h = p.kernel_w = 3;
    p.stride_h = p.stride_w = 1;
    p.pad_top = p.pad_left = 1;
    p.in_height = p.out_height = 7;
    p.in_width = p.out_width = 9;
    p.has_bias = 1;
    conv_step steps[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    const int count = path_steps(ctx, path, steps);
    double worst = 0;
    for (int index = 0; index < count; index++) {
        double e_kernel = 0, e_reference = 0;
        const int took_path = forward_on_path(ctx, path, index, &p, &rng, &e_kernel, &e_reference);
        worst = fmax(worst, e_kernel);
        if (!CHECK(took_path) || !CHECK(e_kernel <= 1e-5))
            printf("  %s forward, %d channels, configuration %d, vector width %d: %s, error "
                   "%.3g\n",
                   path->name, p.in_channels, index, vector_width,
                   took_path ? "taken" : "NOT taken", e_kernel);
    }
    printf("%s forward, %d input channels, vector width %d: %d steps, worst error %.3g\n",
           path->name, p.in_channels, vector_width, count, worst);
}

/* expected[i], the central difference with step 0.25 of
 * sum(g * conv2d_forward64(x, w)) with respect to varied[i], for each of
 * the count floats of varied, which is x or w (each restored after). The
 * loss is linear in either: central differences in double are exact to
 * rounding. */
static void central_differences(const conv2d_params *p, const float *x, const float *w,
                                const float *g, float *varied, int64_t count, int64_t ny,
                                double *expected) {
    const float h = 0.25f;
    double *y = test_doubles(ny);
    for (int64_t i = 0; i < count; i++) {
        double loss[2];
        const float saved = varied[i];
        for (int side = 0; side < 2; side++) {
            varied[i] = saved + (side ? -h : h);
            conv2d_forward64(p, x, w, NULL, y, NULL);
            loss[side] = 0;
            for (int64_t o = 0; o < ny; o++)
                loss[side] += g[o] * y[o];
        }
        varied[i] = saved;
        expected[i] = (loss[0] - loss[1]) / (2.0 * h);
    }
    free(y);
}

/* Backward-data of random shapes, or against central differences of
 * sum(g * conv2d_forward64(x)) on small ones. */
static void check_backward_data(clcnn_context *ctx, const stride1_path *path, int vector_width,
                                int differences, uint64_t seed) {
    test_rng rng = {seed};
    double worst_kernel = 0, worst_reference = 0;
    int taken = 0;
    const int shapes = test_scaled_count(differences ? DIFFERENCE_SHAPES : BACKWARD_SHAPES);
    for (int index = 0; index < shapes; index++) {
        conv2d_params p = draw_shape(&rng, path, 8, 1);
        draw_fused_channels(ctx, path, index, 1, &rng, &p);
        if (differences) {
            /* Small enough for a difference per input value. */
            p.batch = 1;
            p.in_height = test_rand_int(&rng, 1, 4);
            p.in_width = test_rand_int(&rng, path->winograd ? 1 : 8, 12);
            p.out_channels = test_rand_int(&rng, 1, 3);
            p.in_channels = test_rand_int(&rng, 1, 3);
            p.pad_top = test_rand_int(&rng, 0, p.kernel_h - 1);
            p.pad_left = test_rand_int(&rng, 0, p.kernel_w - 1);
            if (path->winograd && p.in_height > 3)
                p.in_height = 3;
            p.out_height =
                p.in_height + p.pad_top + test_rand_int(&rng, 0, p.kernel_h - 1) - p.kernel_h + 1;
            p.out_width =
                p.in_width + p.pad_left + test_rand_int(&rng, 0, p.kernel_w - 1) - p.kernel_w + 1;
        }
        if (p.out_height < 1 || p.out_width < 1) {
            index--;
            continue;
        }
        p.has_bias = !differences && index % 2;
        const int64_t nx = (int64_t)p.batch * p.in_channels * p.in_height * p.in_width;
        const int64_t nw = (int64_t)p.out_channels * p.in_channels * p.kernel_h * p.kernel_w;
        const int64_t ny = (int64_t)p.batch * p.out_channels * p.out_height * p.out_width;
        float *g = test_floats(ny), *w = test_floats(nw), *dx = test_floats(nx),
              *reference = test_floats(nx);
        double *expected = test_doubles(nx), *magnitude = test_doubles(nx);
        test_fill_signed(&rng, g, ny);
        test_fill_signed(&rng, w, nw);
        for (int64_t i = 0; i < nx; i++)
            dx[i] = reference[i] = NAN;
        conv2d_backward_data64(&p, g, w, expected, magnitude);
        if (differences) {
            float *x = test_floats(nx);
            test_fill_signed(&rng, x, nx);
            central_differences(&p, x, w, g, x, nx, ny, expected);
            free(x);
        }
        conv2d_backward_data_ref(&p, g, w, reference);
        const char *kernel =
            choose_fused_config(ctx, path, index, "backward_data", &p, path->backward_kernel);
        const int before = test_kernel_launches(ctx, kernel);
        cl_mem gb = NULL, wb = NULL, xb = NULL;
        if (upload(ctx, g, ny, &gb) && upload(ctx, w, nw, &wb) && upload(ctx, dx, nx, &xb) &&
            CHECK_OK(ctx, conv2d_backward_data(ctx, &p, gb, wb, xb)))
            download(ctx, xb, dx, nx);
        const int took_path = test_kernel_launches(ctx, kernel) == before + 1;
        taken += took_path;
        buffer_release(&gb);
        buffer_release(&wb);
        buffer_release(&xb);
        /* Differences carry the rounding of two sums over the whole output
         * (some 1e-14 of it), far below float's. */
        const double e_reference = worst_scaled_error(reference, expected, magnitude, nx);
        if (path->winograd)
            hold_to_blocks(magnitude, (int64_t)p.batch * p.in_channels, p.in_height, p.in_width,
                           tile_size(path));
        const double e_kernel = worst_scaled_error(dx, expected, magnitude, nx);
        if (!CHECK(took_path) || !CHECK(e_kernel <= 1e-5) || !CHECK(e_reference <= 1e-6)) {
            print_shape(path->name, index, &p);
            printf("  backward-data%s, vector width %d: %s %s, error %.3g, reference error "
                   "%.3g\n",
                   differences ? " (differences)" : "", vector_width, path->name,
                   took_path ? "taken" : "NOT taken", e_kernel, e_reference);
        }
        worst_kernel = fmax(worst_kernel, e_kernel);
        worst_reference = fmax(worst_reference, e_reference);
        free(g);
        free(w);
        free(dx);
        free(reference);
        free(expected);
        free(magnitude);
    }
    printf("%s backward-data%s, vector width %d: %d shapes, %d on it, worst error %.3g "
           "(reference %.3g)\n",
           path->name, differences ? " against finite differences" : "", vector_width, shapes,
           taken, worst_kernel, worst_reference);
}

/* The gradient of sum(g * conv2d(x)) with respect to the weights of a
 * stride-1 ungrouped convolution in float64, and each value's magnitude. */
static void backward_weights64(const conv2d_params *p, const float *x, const float *g, double *dw,
                               double *magnitude) {
    for (int k = 0; k < p->out_channels; k++)
        for (int c = 0; c < p->in_channels; c++)
            for (int r = 0; r < p->kernel_h; r++)
                for (int s = 0; s < p->kernel_w; s++) {
                    double sum = 0, size = 0;
                    for (int n = 0; n < p->batch; n++)
                        for (int oy = 0; oy < p->out_height; oy++)
                            for (int ox = 0; ox < p->out_width; ox++) {
                                const int iy = oy + r - p->pad_top, ix = ox + s - p->pad_left;
                                if (iy < 0 || iy >= p->in_height || ix < 0 || ix >= p->in_width)
                                    continue;
                                const double term =
                                    (double)g[((n * p->out_channels + k) * p->out_height + oy) *
                                                  p->out_width +
                                              ox] *
                                    x[((n * p->in_channels + c) * p->in_height + iy) * p->in_width +
                                      ix];
                                sum += term;
                                size += fabs(term);
                            }
                    const int i = ((k * p->in_channels + c) * p->kernel_h + r) * p->kernel_w + s;
                    dw[i] = sum;
                    if (magnitude)
                        magnitude[i] = size;
                }
}

/* Winograd's backward-weights on draw_winograd_shape's shapes against
 * backward_weights64, or against central differences of sum(g *
 * conv2d_forward64(x)) with respect to each weight on small ones; every
 * other shape with a bias, whose gradient (the sums of g over the
 * positions, taken in slices) is held to the sums of |g|. */
static void check_backward_weights(clcnn_context *ctx, int vector_width, int differences,
                                   uint64_t seed) {
    test_rng rng = {seed};
    double worst_kernel = 0;
    int taken = 0, fused = 0, fused4 = 0, tiles4 = 0;
    const int shapes = test_scaled_count(differences ? DIFFERENCE_SHAPES : BACKWARD_SHAPES);
    for (int index = 0; index < shapes; index++) {
        conv2d_params p = draw_winograd_shape(&rng, 1);
        if (differences) {
            p.batch = 1;
            p.in_channels = test_rand_int(&rng, 1, 3);
            p.out_channels = test_rand_int(&rng, 1, 3);
        } else if (index % 10 == 0) {
            /* Hundreds of tiles: sums over long rows of columns. */
            p.batch = test_rand_int(&rng, 6, 9);
            p.in_height = test_rand_int(&rng, 20, 28);
            p.in_width = test_rand_int(&rng, 20, 28);
            p.pad_top = p.pad_left = 1;
            p.out_height = p.in_height;
            p.out_width = p.in_width;
        }
        if (!differences && index % 5 == 3) {
            /* More channels than winograd_gradient_fused takes (C x K over 32 x 64). */
            p.in_channels = test_rand_int(&rng, 65, 72);
            p.out_channels = test_rand_int(&rng, 65, 72);
        }
        if (p.out_height < 1 || p.out_width < 1) {
            index--;
            continue;
        }
        p.has_bias = !differences && index % 2;
        /* Every third shape on a device of 64 KiB of local memory, of
         * which a CPU's chunks take a quarter: chunks of a tile row or two,
         * or, where one does not fit, the transforms through global memory;
         * against differences, whose channels are few, of 1 KiB, where no
         * chunk fits. */
        const cl_ulong device_local = ctx->local_mem_bytes;
        if (index % 3 == 1)
            ctx->local_mem_bytes = differences ? 1024 : 64 * 1024;
        const int64_t nx = (int64_t)p.batch * p.in_channels * p.in_height * p.in_width;
        const int64_t nw = (int64_t)p.out_channels * p.in_channels * 9;
        const int64_t ny = (int64_t)p.batch * p.out_channels * p.out_height * p.out_width;
        float *x = test_floats(nx), *g = test_floats(ny), *dw = test_floats(nw);
        double *expected = test_doubles(nw), *magnitude = test_doubles(nw);
        test_fill_signed(&rng, x, nx);
        test_fill_signed(&rng, g, ny);
        for (int64_t i = 0; i < nw; i++)
            dw[i] = NAN;
        backward_weights64(&p, x, g, expected, magnitude);
        hold_to_blocks(magnitude, (int64_t)p.out_channels * p.in_channels, 3, 3, 3);
        if (differences) {
            float *w = test_floats(nw);
            test_fill_signed(&rng, w, nw);
            central_differences(&p, x, w, g, w, nw, ny, expected);
            free(w);
        }
        const int K = p.out_channels, pixels = p.out_height * p.out_width;
        float *db = test_floats(K);
        double *bias_expected = test_doubles(K), *bias_magnitude = test_doubles(K);
        for (int k = 0; k < K; k++) {
            db[k] = NAN;
            bias_expected[k] = bias_magnitude[k] = 0.0;
            for (int n = 0; n < p.batch; n++)
                for (int i = 0; i < pixels; i++) {
                    const float v = g[((int64_t)n * K + k) * pixels + i];
                    bias_expected[k] += v;
                    bias_magnitude[k] += fabs(v);
                }
        }
        const int before = test_kernel_launches(ctx, "winograd_gradient_filters");
        const int before4 = test_kernel_launches(ctx, "winograd4_gradient_input");
        const int fused_before = test_kernel_launches(ctx, "winograd_gradient_fused");
        const int fused4_before = test_kernel_launches(ctx, "winograd4_gradient_fused");
        cl_mem xb = NULL, gb = NULL, wb = NULL, bb = NULL;
        if (upload(ctx, x, nx, &xb) && upload(ctx, g, ny, &gb) && upload(ctx, dw, nw, &wb) &&
            upload(ctx, db, K, &bb) &&
            CHECK_OK(ctx,
                     conv2d_backward_weights(ctx, &p, xb, gb, wb, p.has_bias ? bb : NULL, NULL))) {
            download(ctx, wb, dw, nw);
            download(ctx, bb, db, K);
        }
        ctx->local_mem_bytes = device_local;
        const int took4 = test_kernel_launches(ctx, "winograd4_gradient_input") == before4 + 1;
        const int took_path = test_kernel_launches(ctx, "winograd_gradient_filters") == before + 1;
        taken += took_path;
        tiles4 += took4;
        fused += test_kernel_launches(ctx, "winograd_gradient_fused") - fused_before;
        fused4 += test_kernel_launches(ctx, "winograd4_gradient_fused") - fused4_before;
        buffer_release(&xb);
        buffer_release(&gb);
        buffer_release(&wb);
        buffer_release(&bb);
        double e_kernel = worst_scaled_error(dw, expected, magnitude, nw);
        if (p.has_bias)
            e_kernel = fmax(e_kernel, worst_scaled_error(db, bias_expected, bias_magnitude, K));
        free(db);
        free(bias_expected);
        free(bias_magnitude);
        if (!CHECK(took_path) || !CHECK(e_kernel <= 1e-5)) {
            print_shape("Winograd", index, &p);
            printf("  backward-weights%s, vector width %d: %s, error %.3g\n",
                   differences ? " (differences)" : "", vector_width,
                   took_path ? "taken" : "NOT taken", e_kernel);
        }
        worst_kernel = fmax(worst_kernel, e_kernel);
        free(x);
        free(g);
        free(dw);
        free(expected);
        free(magnitude);
    }
    printf("Winograd backward-weights%s, vector width %d: %d shapes, %d on it (in one kernel %d "
           "with 2x2 tiles and %d with 4x4, %d with 4x4 tiles through memory), worst error "
           "%.3g\n",
           differences ? " against finite differences" : "", vector_width, shapes, taken, fused,
           fused4, tiles4, worst_kernel);
    /* Every way of computing the sums ran (unless CLCNN_TEST_QUICK left a
     * few shapes): in one kernel with 2x2 and with 4x4 tiles, through
     * global memory with 4x4 tiles, and on the many shapes with 2x2 tiles
     * too (the small planes' way). */
    if (shapes >= 10)
        CHECK(fused > 0 && fused4 > 0 && tiles4 > 0 &&
              (differences || fused + fused4 + tiles4 < taken));
}

/* A fused verdict names its configuration by vector width, rows and output
 * channels; files written before the third configuration hold 1 for the
 * width and mean the first configuration with those rows and channels. */
/* Backward-data added to a gradient that holds random values already (a
 * tensor read by two layers), through the plan as the conv layer runs it,
 * on the paths that add in their stores (pointwise, Winograd, its fused
 * kernels in each of tuning's steps): every float must be the value held
 * plus the gradient that the same plan writes without adding, bit for bit
 * (once each, though a row's last chunk of Winograd's tiles starts early and
 * repeats some of the chunk before), and that gradient is held to the
 * float64 one. */
static void check_accumulate(clcnn_context *ctx, const stride1_path *path, int vector_width,
                             uint64_t seed) {
    test_rng rng = {seed};
    double worst = 0;
    int planned = 0, differ = 0;
    const int shapes = test_scaled_count(40);
    for (int index = 0; index < shapes; index++) {
        conv2d_params p = draw_shape(&rng, path, 8, 1);
        draw_fused_channels(ctx, path, index, 1, &rng, &p);
        if (p.out_height < 1 || p.out_width < 1) {
            index--;
            continue;
        }
        const int64_t nx = (int64_t)p.batch * p.in_channels * p.in_height * p.in_width;
        const int64_t nw = (int64_t)p.out_channels * p.in_channels * p.kernel_h * p.kernel_w;
        const int64_t ny = (int64_t)p.batch * p.out_channels * p.out_height * p.out_width;
        float *g = test_floats(ny), *w = test_floats(nw), *held = test_floats(nx),
              *written = test_floats(nx), *added = test_floats(nx);
        double *expected = test_doubles(nx), *magnitude = test_doubles(nx);
        test_fill_signed(&rng, g, ny);
        test_fill_signed(&rng, w, nw);
        test_fill_signed(&rng, held, nx);
        for (int64_t i = 0; i < nx; i++)
            written[i] = added[i] = NAN;
        conv2d_backward_data64(&p, g, w, expected, magnitude);
        const char *kernel =
            choose_fused_config(ctx, path, index, "backward_data", &p, path->backward_kernel);
        const conv2d_plan plan = conv2d_plan_for(ctx, &p);
        const int before = test_kernel_launches(ctx, kernel);
        int on_path = conv2d_backward_data_accumulates(&plan, &p);
        cl_mem gb = NULL, wb = NULL, xb = NULL;
        for (int accumulate = 0; accumulate <= 1 && on_path; accumulate++) {
            float *result = accumulate ? added : written;
            on_path = upload(ctx, g, ny, &gb) && upload(ctx, w, nw, &wb) &&
                      upload(ctx, accumulate ? held : written, nx, &xb) &&
                      CHECK_OK(ctx, conv2d_backward_planned(ctx, &plan, &p, gb, wb, xb, accumulate,
                                                            NULL, NULL, NULL, NULL, NULL)) &&
                      download(ctx, xb, result, nx);
            buffer_release(&gb);
            buffer_release(&wb);
            buffer_release(&xb);
        }
        on_path = on_path && test_kernel_launches(ctx, kernel) == before + 2;
        planned += on_path;
        int sums_differ = 0;
        for (int64_t i = 0; i < nx && on_path; i++) {
            const float sum = held[i] + written[i];
            sums_differ |= memcmp(&sum, &added[i], sizeof(float)) != 0;
        }
        differ += sums_differ;
        if (path->winograd)
            hold_to_blocks(magnitude, (int64_t)p.batch * p.in_channels, p.in_height, p.in_width,
                           tile_size(path));
        const double e = worst_scaled_error(written, expected, magnitude, nx);
        worst = fmax(worst, e);
        if (!CHECK(on_path) || !CHECK(!sums_differ) || !CHECK(e <= 1e-5)) {
            print_shape("accumulate", index, &p);
            printf("  %s, vector width %d: %s, %s, error %.3g\n", path->name, vector_width,
                   on_path ? "planned" : "NOT planned",
                   sums_differ ? "sums DIFFER" : "sums as the host adds", e);
        }
        free(g);
        free(w);
        free(held);
        free(written);
        free(added);
        free(expected);
        free(magnitude);
    }
    printf("%s backward-data added to a gradient, vector width %d: %d shapes, %d on it, %d "
           "differ from the host's sums, worst error %.3g\n",
           path->name, vector_width, shapes, planned, differ, worst);
}

/* A tuning verdict for the pointwise kernel, with nothing forced: chosen,
 * the plan runs both operations on it; not chosen, on neither. */
static void check_pointwise_verdicts(clcnn_context *ctx, uint64_t seed) {
    test_rng rng = {seed};
    const conv2d_params p = draw_pointwise_shape(&rng, 1);
    ctx->config.pointwise = -1;
    for (int chosen = 0; chosen <= 1; chosen++) {
        CHECK_OK(ctx, conv2d_remember_pointwise(ctx, "forward", &p, chosen));
        CHECK_OK(ctx, conv2d_remember_pointwise(ctx, "backward_data", &p, chosen));
        const conv2d_plan plan = conv2d_plan_for(ctx, &p);
        const int forward = plan.forward.kernels == CONV_POINTWISE;
        const int data = plan.backward_data.kernels == CONV_POINTWISE;
        if (!CHECK(forward == chosen && data == chosen))
            printf("  pointwise verdict %d: forward %s, backward-data %s\n", chosen,
                   forward ? "pointwise" : "not pointwise", data ? "pointwise" : "not pointwise");
    }
}

/* Each of path's steps (the fused or the 4x4 kernel's) as a tuning verdict
 * names it, with nothing forced: the plan runs it. */
static void check_fused_verdicts(clcnn_context *ctx, const stride1_path *path, uint64_t seed) {
    test_rng rng = {seed};
    const conv2d_params p = draw_winograd_shape(&rng, 0);
    conv_step steps[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    const int count = path_steps(ctx, path, steps);
    ctx->config.winograd = -1;
    for (int i = 0; i <= count; i++) {
        /* i == count: the first configuration as an old file holds it. */
        const conv_step named = steps[i < count ? i : 0];
        const int kind = named.kernels == CONV_WINOGRAD4        ? 5
                         : named.kernels == CONV_WINOGRAD_PAIRS ? 4
                                                                : 3;
        const direct_config verdict = {i < count ? named.config.vw : 1, named.config.nv, kind,
                                       named.config.wpt_p};
        CHECK_OK(ctx, tuning_remember(ctx, "winograd_forward", &p, &verdict));
        const conv2d_plan plan = conv2d_plan_for(ctx, &p);
        if (!CHECK(plan.forward.kernels == named.kernels &&
                   plan.forward.config.vw == named.config.vw &&
                   plan.forward.config.nv == named.config.nv &&
                   plan.forward.config.wpt_p == named.config.wpt_p))
            printf("  %s verdict %d %d %d %d: ran %d x %d x %d\n", path->name, verdict.vw,
                   verdict.nv, kind, verdict.group, plan.forward.config.vw, plan.forward.config.nv,
                   plan.forward.config.wpt_p);
    }
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    if (!CHECK(ctx != NULL))
        return test_finish();
    printf("device: %s\n", clcnn_device_name(ctx));
    /* Both paths belong to the register-blocked family: select it whatever
     * the device's default, and count launches. */
    ctx->config.direct = 1;
    CHECK_OK(ctx, clcnn_profile_enable(ctx, 1));
    const cl_uint device_width = ctx->preferred_vector_width;
    /* An AVX-512 CPU's width (the row kernel's vectors 16-wide where a row
     * is longer than 8), an AVX2 CPU's (8-wide), then a GPU's (1: 4-wide). */
    const cl_uint widths[3] = {16, 8, 1};
    for (int i = 0; i < 3; i++) {
        ctx->preferred_vector_width = widths[i];
        const int vw = widths[i] >= 16 ? 16 : widths[i] >= 8 ? 8 : 4;
        /* The fused and 4x4 kernels' steps take 8-float vectors with 16
         * registers whatever the device's width: at the GPU-style width
         * they would run the AVX2 width's programs again. */
        const int fused_kernels = widths[i] >= 8;
        check_pointwise_verdicts(ctx, 7201 + (uint64_t)i);
        if (fused_kernels) {
            check_fused_verdicts(ctx, &fused_path, 7001 + (uint64_t)i);
            check_fused_verdicts(ctx, &winograd4_path, 7301 + (uint64_t)i);
            check_fused_channels(ctx, &fused_path, WINOGRAD_FUSED_CHANNELS, vw, 7101 + (uint64_t)i);
            /* The 4x4 kernel's programs have room for 16, 32 or 64 channels:
             * the random shapes read up to 16. */
            check_fused_channels(ctx, &winograd4_path, 32, vw, 7401 + (uint64_t)i);
            check_fused_channels(ctx, &winograd4_path, WINOGRAD4_CHANNELS, vw, 7501 + (uint64_t)i);
        }
        const stride1_path *paths[5] = {&rows_path, &winograd_path, &fused_path, &pointwise_path,
                                        &winograd4_path};
        for (int j = 0; j < 5; j++) {
            if (paths[j]->winograd >= 2 && !fused_kernels)
                continue;
            ctx->config.winograd = paths[j]->winograd;
            ctx->config.pointwise = paths[j]->pointwise;
            const uint64_t seed = 8001 + (uint64_t)i + 1000 * (uint64_t)j;
            check_forward(ctx, paths[j], vw, seed);
            check_backward_data(ctx, paths[j], vw, 0, seed + 100);
            check_backward_data(ctx, paths[j], vw, 1, seed + 200);
            if (paths[j]->winograd == 1) {
                check_backward_weights(ctx, vw, 0, seed + 300);
                check_backward_weights(ctx, vw, 1, seed + 400);
            }
            if (paths[j]->pointwise || paths[j]->winograd)
                check_accumulate(ctx, paths[j], vw, seed + 500);
        }
    }
    ctx->preferred_vector_width = device_width;
    clcnn_context_destroy(ctx);
    return test_finish();
}
