/* Batch normalisation: the op (train-mode and eval-mode forward, backward)
 * through its entry points op_batchnorm_*, and the batchnorm layer through
 * the network API.
 *
 * 1. OpenCL against the CPU reference (batchnorm_*_ref) on random shapes
 *    from fixed seeds (a failing case prints its shape): batch 1..8,
 *    channels 1..70, H and W 1..40 or vectors (H = W = 1, BatchNorm1d),
 *    plus fixed cases with 12800 and 65536 elements per channel and a
 *    BatchNorm1d batch of 4096; inputs offset * scale-d so that the mean is
 *    not zero; eps and momentum mostly PyTorch's defaults, sometimes others.
 *    Train forward: the output and the updated running statistics; eval
 *    forward; backward with grad_x overwritten (starting as NaN), added into
 *    (starting random) or absent. max_relative_error(device, reference, n,
 *    1.0) <= 1e-5 for forwards and running statistics, <= 1e-4 for
 *    gradients, as tests/test_graph_ops.c and tests/test_graph.c hold other
 *    operations to. The offset is kept within a few standard deviations:
 *    in float the mean itself is rounded to 6e-8 of |mean|, which moves the
 *    output by that times |mean| / std (PyTorch's float32 does the same).
 *
 * 2. Finite differences of a train-mode forward written here in double,
 *    independent of the library: loss = sum(forward(x) * G) for a random G,
 *    central differences with h = 1e-6 with respect to every element of x,
 *    weight and bias, against the backward given grad_y = G on the
 *    reference device and on OpenCL: |fd - g| / max(|fd|, 1e-2) <= 1e-4.
 *
 * 3. Hand-made cases with known numbers on both devices (BatchNorm1d and
 *    BatchNorm2d layouts, running statistics, eval mode, backward with and
 *    without accumulation), repeated runs that must agree bit for bit, and
 *    arguments that are refused.
 *
 * 4. Through the network API on both devices: the tensor table (two
 *    parameters and two state tensors per layer, with PyTorch's initial
 *    values before and after seeded initialisation); conv -> batchnorm ->
 *    relu -> flatten -> dense -> batchnorm trained a few steps from the same
 *    weights on both devices, which must agree on every tensor; model files
 *    (version 2, state included) and weights directories
 *    (<layer>.running_mean.npy) that give the running statistics back; the
 *    host copy of the running statistics after a device pass; a train-mode
 *    forward of more images than a forward chunk (its statistics are those
 *    of the whole batch); and the errors of the layer's keys and of a
 *    one-value batch in training.
 *
 * 5. Folding into the layer before in eval mode: the fold op on the device
 *    against the reference on random shapes (with and without the folded
 *    layer's bias), and networks whose convolutions (plain, grouped, with
 *    and without bias) and dense layers fold their batchnorm, run on both
 *    devices with folding (clcnn_net_forward) and without (the same call
 *    with a trace, which shows every layer's own output): equal within
 *    1e-5, a fold taken for every pair that can fold and none where the
 *    convolution's output has a second reader.
 *
 * 6. A relu fused into the batchnorm, add, conv or dense layer before it
 *    (OpenCL): the batchnorm ops with relu = 1 / relu_y against the relu
 *    applied apart, bit for bit, on random shapes and both walks (the
 *    convolution's epilogue: tests/test_conv_groups.c); a residual add and
 *    its relu fused after the batchnorm against the add apart, the same
 *    way; a residual network
 *    trained with fusion on and with CLCNN_FUSE=0, whose losses, tensors,
 *    folded eval outputs (a conv and a dense layer folded into a batchnorm
 *    running its relu) and traced outputs must be equal bit for bit, with
 *    the pairs fused that can be and none where the batchnorm has a second
 *    reader.
 */
#include "ops/batchnorm.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const double tolerance = 1e-5;
static const double gradient_tolerance = 1e-4;
static const double hand_tolerance = 1e-6;
static const double fd_step = 1e-6;
static const double fd_tolerance = 1e-4;
static const double fd_floor = 1e-2;

enum { OP_SHAPES = 120, FD_SHAPES = 40 };

/* A part of the shapes runs (CLCNN_TEST_QUICK): the counts' checks are off. */
static int quick;

/* ---- tallies, arrays ------------------------------------------------------------------- */

static void *allocate(int64_t count, size_t element_size) {
    void *values = malloc((size_t)(count > 0 ? count : 1) * element_size);
    if (!values) {
        fprintf(stderr, "out of memory allocating %lld values\n", (long long)count);
        exit(1);
    }
    return values;
}

static void copy_floats(float *to, const float *from, int64_t count) {
    memcpy(to, from, (size_t)count * sizeof(float));
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

static void release_bufs(buf *all, size_t count) {
    for (size_t i = 0; i < count; i++)
        release_buf(&all[i]);
}

/* An op's output and gradients computed two ways (v = 0 apart, 1 fused, in
 * section 6): out[v] of count floats, grads[v][k] of lengths[k] floats,
 * zeroed, for k < kinds. */
typedef struct two_ways {
    float *out[2], *grads[2][4];
    int kinds;
} two_ways;

static two_ways two_ways_make(int64_t count, const int64_t *lengths, int kinds) {
    two_ways w = {{NULL, NULL}, {{NULL}}, kinds};
    for (int v = 0; v < 2; v++) {
        w.out[v] = test_floats(count);
        for (int k = 0; k < kinds; k++)
            w.grads[v][k] = calloc((size_t)lengths[k], sizeof(float));
    }
    return w;
}

static void two_ways_free(two_ways *w) {
    for (int v = 0; v < 2; v++) {
        free(w->out[v]);
        for (int k = 0; k < w->kinds; k++)
            free(w->grads[v][k]);
    }
}

/* ---- shapes and cases ------------------------------------------------------------------------ */

typedef struct shape {
    int batch, channels, height, width;
} shape;

static int shape_spatial(const shape *s) {
    return s->height * s->width;
}

static int64_t shape_count(const shape *s) {
    return (int64_t)s->batch * s->channels * s->height * s->width;
}

/* Height and width: a vector (1x1, BatchNorm1d) one time in four, up to 40 on
 * a side one time in four, else up to 12; independent, so often odd and
 * unequal. */
static void draw_extent(test_rng *rng, int index, shape *s) {
    const int form = index % 4;
    const int largest = form == 1 ? 40 : 12;
    s->height = form == 0 ? 1 : test_rand_int(rng, 1, largest);
    s->width = form == 0 ? 1 : test_rand_int(rng, 1, largest);
}

/* Cases 0-3 are fixed: the smallest a training batch can be, a large tensor,
 * long channels (65536 elements each) and a long BatchNorm1d batch; the
 * others are random. Training needs two values per channel. */
static shape draw_shape(test_rng *rng, int index) {
    static const shape fixed[] = {{2, 1, 1, 1}, {8, 70, 40, 40}, {16, 2, 64, 64}, {4096, 3, 1, 1}};
    if (index < 4)
        return fixed[index];
    shape s;
    s.batch = test_rand_int(rng, 1, 8);
    s.channels =
        test_rand_int(rng, 0, 2) == 0 ? test_rand_int(rng, 1, 70) : test_rand_int(rng, 1, 16);
    draw_extent(rng, index, &s);
    if (s.batch * shape_spatial(&s) < 2)
        s.batch = 2;
    return s;
}

/* One random case: the tensors and the options. */
typedef struct bn_case {
    shape s;
    float eps, momentum;
    float *x, *weight, *bias, *running_mean, *running_var;
} bn_case;

/* x = offset + scale * uniform(-1, 1), with |offset| at most about 3.5
 * standard deviations (see the top of the file). */
static void draw_case(test_rng *rng, int index, bn_case *c) {
    c->s = draw_shape(rng, index);
    const int64_t count = shape_count(&c->s);
    const int channels = c->s.channels;
    const int form = test_rand_int(rng, 0, 7);
    c->eps = form == 0 ? 1e-3f : form == 1 ? 0.1f : 1e-5f;
    c->momentum = form == 2 ? test_rand_float(rng, 0.0f, 1.0f) : form == 3 ? 1.0f : 0.1f;
    const float offset = test_rand_float(rng, -2.0f, 2.0f);
    const float scale = test_rand_float(rng, 0.25f, 2.0f);
    c->x = test_floats(count);
    for (int64_t i = 0; i < count; i++)
        c->x[i] = offset + scale * test_rand_float(rng, -1.0f, 1.0f);
    c->weight = test_floats(channels);
    c->bias = test_floats(channels);
    c->running_mean = test_floats(channels);
    c->running_var = test_floats(channels);
    test_fill_uniform(rng, c->weight, channels, -1.5f, 1.5f);
    test_fill_signed(rng, c->bias, channels);
    test_fill_signed(rng, c->running_mean, channels);
    test_fill_uniform(rng, c->running_var, channels, 0.5f, 2.0f);
}

static void free_case(bn_case *c) {
    free(c->x);
    free(c->weight);
    free(c->bias);
    free(c->running_mean);
    free(c->running_var);
}

static void print_case(const char *what, int index, const bn_case *c, const char *extra,
                       double error) {
    fprintf(stderr, "%s case %d: batch %d, channels %d, %dx%d, eps %g, momentum %g%s: error %.3g\n",
            what, index, c->s.batch, c->s.channels, c->s.height, c->s.width, (double)c->eps,
            (double)c->momentum, extra, error);
}

/* ---- runs on a context ---------------------------------------------------------------------- */

/* Which OpenCL walk a run uses: the entry point's (the device's), or the
 * strided or contiguous one through the OpenCL side directly. */
enum { WALK_DEVICE = -1, WALK_STRIDED = 0, WALK_CONTIGUOUS = 1 };

/* Train mode when training, else eval; running_mean and running_var are read
 * back (train mode updates them). */
static int run_forward(clcnn_context *ctx, int walk, const shape *s, float eps, float momentum,
                       int training, float *x, float *weight, float *bias, float *running_mean,
                       float *running_var, float *y) {
    const int64_t count = shape_count(s);
    const int channels = s->channels;
    buf bx = {0}, bw = {0}, bb = {0}, bm = {0}, bv = {0}, by = {0};
    int ok = make_buf(ctx, x, count, &bx) && make_buf(ctx, weight, channels, &bw) &&
             make_buf(ctx, bias, channels, &bb) && make_buf(ctx, running_mean, channels, &bm) &&
             make_buf(ctx, running_var, channels, &bv) && make_buf(ctx, y, count, &by);
    const int spatial = shape_spatial(s);
    if (ok && walk != WALK_DEVICE && training)
        ok = CHECK_OK(ctx, batchnorm_forward_train(ctx, walk, s->batch, channels, spatial, eps,
                                                   momentum, bx.mem, bw.mem, bb.mem, bm.mem, bv.mem,
                                                   by.mem, NULL, 0, NULL));
    else if (ok && walk != WALK_DEVICE)
        ok = CHECK_OK(ctx,
                      batchnorm_forward_eval(ctx, walk, s->batch, channels, spatial, eps, bx.mem,
                                             bw.mem, bb.mem, bm.mem, bv.mem, by.mem, 0));
    else if (ok && training)
        ok = CHECK_OK(ctx,
                      op_batchnorm_forward_train(ctx, s->batch, channels, spatial, eps, momentum,
                                                 bx, bw, bb, bm, bv, by, (buf){0}, 0, NULL));
    else if (ok)
        ok = CHECK_OK(ctx, op_batchnorm_forward_eval(ctx, s->batch, channels, spatial, eps, bx, bw,
                                                     bb, bm, bv, by, 0));
    ok = ok && read_buf(ctx, by, y, count) && read_buf(ctx, bm, running_mean, channels) &&
         read_buf(ctx, bv, running_var, channels);
    release_buf(&bx);
    release_buf(&bw);
    release_buf(&bb);
    release_buf(&bm);
    release_buf(&bv);
    release_buf(&by);
    return ok;
}

/* grad_x NULL: not wanted. */
static int run_backward(clcnn_context *ctx, int walk, const shape *s, float eps, float *x,
                        float *grad_y, float *weight, float *grad_x, int accumulate,
                        float *grad_weight, float *grad_bias) {
    const int64_t count = shape_count(s);
    const int channels = s->channels;
    buf bx = {0}, bg = {0}, bw = {0}, bgx = {0}, bgw = {0}, bgb = {0};
    int ok = make_buf(ctx, x, count, &bx) && make_buf(ctx, grad_y, count, &bg) &&
             make_buf(ctx, weight, channels, &bw) && make_buf(ctx, grad_x, count, &bgx) &&
             make_buf(ctx, grad_weight, channels, &bgw) && make_buf(ctx, grad_bias, channels, &bgb);
    if (ok && walk != WALK_DEVICE)
        ok = CHECK_OK(ctx, batchnorm_backward(ctx, walk, s->batch, channels, shape_spatial(s), eps,
                                              bx.mem, bg.mem, bw.mem, bgx.mem, accumulate, bgw.mem,
                                              bgb.mem, NULL, NULL, NULL));
    else if (ok)
        ok = CHECK_OK(ctx, op_batchnorm_backward(ctx, s->batch, channels, shape_spatial(s), eps, bx,
                                                 bg, bw, bgx, accumulate, bgw, bgb, (buf){0},
                                                 (buf){0}, NULL));
    ok = ok && read_buf(ctx, bgx, grad_x, count) && read_buf(ctx, bgw, grad_weight, channels) &&
         read_buf(ctx, bgb, grad_bias, channels);
    release_buf(&bx);
    release_buf(&bg);
    release_buf(&bw);
    release_buf(&bgx);
    release_buf(&bgw);
    release_buf(&bgb);
    return ok;
}

/* The statistics a train-mode forward keeps (`saved`) give the backward
 * bit for bit what it computes when it recomputes them, on both walks, with
 * grad_x overwritten, accumulated into and absent. */
static void check_saved_statistics(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    int mismatches = 0, runs = 0;
    for (int index = 0; index < cases; index++) {
        bn_case c;
        draw_case(&rng, index, &c);
        const shape *s = &c.s;
        const int64_t count = shape_count(s);
        const int channels = s->channels, spatial = shape_spatial(s);
        const int kind = index % 3; /* grad_x overwritten, accumulated, absent */
        float *grad_y = malloc(sizeof(float) * (size_t)count);
        float *start = malloc(sizeof(float) * (size_t)count);
        float *out[2][3];
        for (int v = 0; v < 2; v++)
            for (int k = 0; k < 3; k++)
                out[v][k] = calloc((size_t)(k == 0 ? count : channels), sizeof(float));
        test_fill_signed(&rng, grad_y, count);
        test_fill_signed(&rng, start, count);
        for (int walk = 0; walk < 2; walk++) {
            buf bx = {0}, bw = {0}, bb = {0}, bm = {0}, bv = {0}, by = {0}, bs = {0}, bg = {0};
            int ok =
                make_buf(ctx, c.x, count, &bx) && make_buf(ctx, c.weight, channels, &bw) &&
                make_buf(ctx, c.bias, channels, &bb) &&
                make_buf(ctx, c.running_mean, channels, &bm) &&
                make_buf(ctx, c.running_var, channels, &bv) && make_buf(ctx, start, count, &by) &&
                make_buf(ctx, grad_y, count, &bg) &&
                CHECK_OK(ctx, buffer_create(ctx, sizeof(float) * 5 * (size_t)channels, &bs.mem));
            ok = ok &&
                 CHECK_OK(ctx, batchnorm_forward_train(ctx, walk, s->batch, channels, spatial,
                                                       c.eps, c.momentum, bx.mem, bw.mem, bb.mem,
                                                       bm.mem, bv.mem, by.mem, bs.mem, 0, NULL));
            for (int v = 0; v < 2 && ok; v++) {
                buf bgx = {0}, bgw = {0}, bgb = {0};
                ok = make_buf(ctx, start, count, &bgx) &&
                     make_buf(ctx, out[v][1], channels, &bgw) &&
                     make_buf(ctx, out[v][2], channels, &bgb);
                ok = ok && CHECK_OK(ctx, batchnorm_backward(
                                             ctx, walk, s->batch, channels, spatial, c.eps, bx.mem,
                                             bg.mem, bw.mem, kind == 2 ? NULL : bgx.mem, kind == 1,
                                             bgw.mem, bgb.mem, v ? bs.mem : NULL, NULL, NULL));
                ok = ok && read_buf(ctx, bgx, out[v][0], count) &&
                     read_buf(ctx, bgw, out[v][1], channels) &&
                     read_buf(ctx, bgb, out[v][2], channels);
                release_buf(&bgx);
                release_buf(&bgw);
                release_buf(&bgb);
            }
            runs++;
            if (!ok || memcmp(out[0][0], out[1][0], sizeof(float) * (size_t)count) != 0 ||
                memcmp(out[0][1], out[1][1], sizeof(float) * (size_t)channels) != 0 ||
                memcmp(out[0][2], out[1][2], sizeof(float) * (size_t)channels) != 0) {
                mismatches++;
                print_case("saved statistics", index, &c, walk ? ", contiguous" : ", strided", 0.0);
            }
            buf all[] = {bx, bw, bb, bm, bv, by, bs, bg};
            release_bufs(all, sizeof(all) / sizeof(all[0]));
        }
        for (int v = 0; v < 2; v++)
            for (int k = 0; k < 3; k++)
                free(out[v][k]);
        free(grad_y);
        free(start);
        free_case(&c);
    }
    CHECK(mismatches == 0);
    printf("%-44s %d runs, %d differ from recomputing\n", "backward from saved statistics", runs,
           mismatches);
}

/* ---- 1. device against reference ---------------------------------------------------------- */

static const char *const walk_names[2] = {"strided", "contiguous"};

/* Every case runs on the OpenCL device with both walks. */
/* The plane kernels stream their outputs past the caches where the
 * tensors exceed the device's cache: with a cache of one byte they always
 * do, and must give the same floats. The forward of run_forward (y, and
 * with training the running statistics) against expect_y and
 * expect_stats. */
static int streamed_forward_same(clcnn_context *ctx, int walk, const bn_case *c, int training,
                                 const float *expect_y, const float *expect_stats) {
    const int64_t count = shape_count(&c->s);
    const int channels = c->s.channels;
    float *y = test_floats(count), *stats = test_floats(2 * channels);
    test_fill_nan(y, count);
    copy_floats(stats, c->running_mean, channels);
    copy_floats(stats + channels, c->running_var, channels);
    const cl_ulong cache_bytes = ctx->cache_bytes;
    ctx->cache_bytes = 1;
    int same =
        run_forward(ctx, walk, &c->s, c->eps, c->momentum, training, c->x, c->weight, c->bias,
                    stats, stats + channels, y) &&
        memcmp(y, expect_y, sizeof(float) * (size_t)count) == 0 &&
        (!training || memcmp(stats, expect_stats, sizeof(float) * 2 * (size_t)channels) == 0);
    ctx->cache_bytes = cache_bytes;
    free(y);
    free(stats);
    return same;
}

/* The same for run_backward from start_gx (expect_gx NULL: no grad_x). */
static int streamed_backward_same(clcnn_context *ctx, int walk, const bn_case *c, float *grad_y,
                                  const float *start_gx, int accumulate, const float *expect_gx,
                                  const float *expect_gp) {
    const int64_t count = shape_count(&c->s);
    const int channels = c->s.channels;
    float *gx = expect_gx ? test_floats(count) : NULL, *gp = test_floats(2 * channels);
    if (gx)
        copy_floats(gx, start_gx, count);
    test_fill_nan(gp, 2 * channels);
    const cl_ulong cache_bytes = ctx->cache_bytes;
    ctx->cache_bytes = 1;
    int same = run_backward(ctx, walk, &c->s, c->eps, c->x, grad_y, c->weight, gx, accumulate, gp,
                            gp + channels) &&
               (!gx || memcmp(gx, expect_gx, sizeof(float) * (size_t)count) == 0) &&
               memcmp(gp, expect_gp, sizeof(float) * 2 * (size_t)channels) == 0;
    ctx->cache_bytes = cache_bytes;
    free(gx);
    free(gp);
    return same;
}

static void run_shapes(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally train[2] = {{0}}, stats[2] = {{0}}, eval[2] = {{0}}, backward[2][3] = {{{0}}};
    static const char *const backward_kinds[3] = {"grad_x overwritten", "grad_x accumulated",
                                                  "no grad_x"};
    int64_t longest_channel = 0;
    int streamed_cases = 0;
    for (int index = 0; index < cases; index++) {
        bn_case c;
        draw_case(&rng, index, &c);
        const shape *s = &c.s;
        const int64_t count = shape_count(s);
        const int channels = s->channels;
        if ((int64_t)s->batch * shape_spatial(s) > longest_channel)
            longest_channel = (int64_t)s->batch * shape_spatial(s);
        /* Backward: grad_x overwritten, accumulated into, or absent, in turn. */
        const int mode = index % 3;
        const int accumulate = mode == 1;
        float *grad_y = test_signed_floats(&rng, count);
        float *start_gx = test_floats(count);
        test_fill_destination(&rng, start_gx, count, accumulate);

        /* The reference: train forward (output and running statistics), eval
         * forward with the random running statistics, backward. */
        float *ref_y = test_floats(count), *ref_eval = test_floats(count);
        float *ref_stats = test_floats(2 * channels);
        float *ref_gx = mode == 2 ? NULL : test_floats(count);
        float *ref_gp = test_floats(2 * channels);
        test_fill_nan(ref_y, count);
        test_fill_nan(ref_eval, count);
        test_fill_nan(ref_gp, 2 * channels);
        if (ref_gx)
            copy_floats(ref_gx, start_gx, count);
        copy_floats(ref_stats, c.running_mean, channels);
        copy_floats(ref_stats + channels, c.running_var, channels);
        batchnorm_forward_train_ref(s->batch, channels, shape_spatial(s), c.eps, c.momentum, c.x,
                                    c.weight, c.bias, ref_stats, ref_stats + channels, ref_y);
        batchnorm_forward_eval_ref(s->batch, channels, shape_spatial(s), c.eps, c.x, c.weight,
                                   c.bias, c.running_mean, c.running_var, ref_eval);
        batchnorm_backward_ref(s->batch, channels, shape_spatial(s), c.eps, c.x, grad_y, c.weight,
                               ref_gx, accumulate, ref_gp, ref_gp + channels);

        float *dev_y = test_floats(count), *dev_stats = test_floats(2 * channels);
        float *dev_gx = mode == 2 ? NULL : test_floats(count);
        float *dev_gp = test_floats(2 * channels);
        for (int walk = 0; walk < 2; walk++) {
            char extra[64];
            snprintf(extra, sizeof(extra), ", %s walk", walk_names[walk]);
            test_fill_nan(dev_y, count);
            copy_floats(dev_stats, c.running_mean, channels);
            copy_floats(dev_stats + channels, c.running_var, channels);
            double error = INFINITY, stats_error = INFINITY;
            if (run_forward(ctx, walk, s, c.eps, c.momentum, 1, c.x, c.weight, c.bias, dev_stats,
                            dev_stats + channels, dev_y)) {
                error = max_relative_error(dev_y, ref_y, count, 1.0);
                stats_error = max_relative_error(dev_stats, ref_stats, 2 * channels, 1.0);
            }
            if (!CHECK(test_tally_record(&train[walk], error, tolerance)))
                print_case("train forward device vs reference", index, &c, extra, error);
            if (!CHECK(test_tally_record(&stats[walk], stats_error, tolerance)))
                print_case("running statistics device vs reference", index, &c, extra, stats_error);
            if (!CHECK(streamed_forward_same(ctx, walk, &c, 1, dev_y, dev_stats)))
                print_case("train forward streamed vs not", index, &c, extra, 0.0);

            test_fill_nan(dev_y, count);
            error = INFINITY;
            if (run_forward(ctx, walk, s, c.eps, c.momentum, 0, c.x, c.weight, c.bias,
                            c.running_mean, c.running_var, dev_y))
                error = max_relative_error(dev_y, ref_eval, count, 1.0);
            if (!CHECK(test_tally_record(&eval[walk], error, tolerance)))
                print_case("eval forward device vs reference", index, &c, extra, error);
            if (!CHECK(streamed_forward_same(ctx, walk, &c, 0, dev_y, NULL)))
                print_case("eval forward streamed vs not", index, &c, extra, 0.0);

            if (dev_gx)
                copy_floats(dev_gx, start_gx, count);
            test_fill_nan(dev_gp, 2 * channels);
            error = INFINITY;
            if (run_backward(ctx, walk, s, c.eps, c.x, grad_y, c.weight, dev_gx, accumulate, dev_gp,
                             dev_gp + channels)) {
                error = max_relative_error(dev_gp, ref_gp, 2 * channels, 1.0);
                if (ref_gx)
                    error = fmax(error, max_relative_error(dev_gx, ref_gx, count, 1.0));
            }
            if (!CHECK(test_tally_record(&backward[walk][mode], error, gradient_tolerance))) {
                char detail[128];
                snprintf(detail, sizeof(detail), "%s, %s", extra, backward_kinds[mode]);
                print_case("backward device vs reference", index, &c, detail, error);
            }
            if (!CHECK(streamed_backward_same(ctx, walk, &c, grad_y, start_gx, accumulate, dev_gx,
                                              dev_gp)))
                print_case("backward streamed vs not", index, &c, extra, 0.0);
            streamed_cases++;
        }
        free(grad_y);
        free(start_gx);
        free(ref_y);
        free(ref_eval);
        free(ref_stats);
        free(ref_gx);
        free(ref_gp);
        free(dev_y);
        free(dev_stats);
        free(dev_gx);
        free(dev_gp);
        free_case(&c);
    }
    for (int walk = 0; walk < 2; walk++) {
        char label[96];
        snprintf(label, sizeof(label), "train forward, %s walk, device vs reference",
                 walk_names[walk]);
        test_tally_print(label, 56, "cases", &train[walk]);
        snprintf(label, sizeof(label), "running statistics, %s walk", walk_names[walk]);
        test_tally_print(label, 56, "cases", &stats[walk]);
        snprintf(label, sizeof(label), "eval forward, %s walk", walk_names[walk]);
        test_tally_print(label, 56, "cases", &eval[walk]);
        for (int mode = 0; mode < 3; mode++) {
            snprintf(label, sizeof(label), "backward, %s walk, %s", walk_names[walk],
                     backward_kinds[mode]);
            test_tally_print(label, 56, "cases", &backward[walk][mode]);
        }
        CHECK(quick || (train[walk].cases >= 100 && eval[walk].cases >= 100));
        CHECK(quick ||
              backward[walk][0].cases + backward[walk][1].cases + backward[walk][2].cases >= 100);
    }
    printf("train forward, eval forward and backward streamed past the caches: %d cases each\n",
           streamed_cases);
    printf("longest channel: %lld elements\n", (long long)longest_channel);
    CHECK(quick || longest_channel >= 50000);
}

/* ---- 2. finite differences ------------------------------------------------------------------ */

/* The train-mode forward in double, written independently of the library. */
static void forward_double(const shape *s, double eps, const double *x, const double *weight,
                           const double *bias, double *y) {
    const int spatial = shape_spatial(s);
    const double m = (double)s->batch * spatial;
    for (int c = 0; c < s->channels; c++) {
        double mean = 0.0, var = 0.0;
        for (int n = 0; n < s->batch; n++)
            for (int p = 0; p < spatial; p++)
                mean += x[((int64_t)n * s->channels + c) * spatial + p];
        mean /= m;
        for (int n = 0; n < s->batch; n++)
            for (int p = 0; p < spatial; p++) {
                const double d = x[((int64_t)n * s->channels + c) * spatial + p] - mean;
                var += d * d;
            }
        var /= m;
        for (int n = 0; n < s->batch; n++)
            for (int p = 0; p < spatial; p++) {
                const int64_t i = ((int64_t)n * s->channels + c) * spatial + p;
                y[i] = (x[i] - mean) / sqrt(var + eps) * weight[c] + bias[c];
            }
    }
}

static double loss_double(const shape *s, double eps, const double *x, const double *weight,
                          const double *bias, const float *g, double *y) {
    forward_double(s, eps, x, weight, bias, y);
    double loss = 0.0;
    for (int64_t i = 0; i < shape_count(s); i++)
        loss += y[i] * g[i];
    return loss;
}

/* Central differences of the loss with respect to every element of values
 * (one of x, weight, bias) into fd. */
static void differences(const shape *s, double eps, double *x, double *weight, double *bias,
                        double *values, int64_t count, const float *g, double *y, double *fd) {
    for (int64_t i = 0; i < count; i++) {
        const double keep = values[i];
        values[i] = keep + fd_step;
        const double plus = loss_double(s, eps, x, weight, bias, g, y);
        values[i] = keep - fd_step;
        const double minus = loss_double(s, eps, x, weight, bias, g, y);
        values[i] = keep;
        fd[i] = (plus - minus) / (2.0 * fd_step);
    }
}

static double *doubles_of(const float *values, int64_t count) {
    double *out = test_doubles(count);
    for (int64_t i = 0; i < count; i++)
        out[i] = values[i];
    return out;
}

static void run_fd_shapes(clcnn_context *const *contexts, int cases, uint64_t seed) {
    static const char *const names[2] = {"reference", "OpenCL"};
    test_rng rng = {seed};
    test_tally results[2] = {{0}};
    for (int index = 0; index < cases; index++) {
        bn_case c;
        /* Small shapes: every element is differenced twice over the whole forward. */
        shape s = {test_rand_int(&rng, 1, 4), test_rand_int(&rng, 1, 3), 1, 1};
        if (index % 2) {
            s.height = test_rand_int(&rng, 1, 4);
            s.width = test_rand_int(&rng, 1, 4);
        }
        if (s.batch * shape_spatial(&s) < 2)
            s.batch = 2;
        c.s = s;
        c.eps = index % 3 == 0 ? 1e-3f : 1e-5f;
        c.momentum = 0.1f;
        const int64_t count = shape_count(&s);
        const int channels = s.channels;
        c.x = test_floats(count);
        c.weight = test_floats(channels);
        c.bias = test_floats(channels);
        c.running_mean = c.running_var = NULL;
        const float offset = test_rand_float(&rng, -1.0f, 1.0f);
        for (int64_t i = 0; i < count; i++)
            c.x[i] = offset + test_rand_float(&rng, -1.0f, 1.0f);
        test_fill_uniform(&rng, c.weight, channels, -1.5f, 1.5f);
        test_fill_signed(&rng, c.bias, channels);
        float *g = test_signed_floats(&rng, count);

        double *x = doubles_of(c.x, count), *w = doubles_of(c.weight, channels);
        double *b = doubles_of(c.bias, channels), *y = test_doubles(count);
        double *fd_x = test_doubles(count), *fd_w = test_doubles(channels);
        double *fd_b = test_doubles(channels);
        differences(&s, c.eps, x, w, b, x, count, g, y, fd_x);
        differences(&s, c.eps, x, w, b, w, channels, g, y, fd_w);
        differences(&s, c.eps, x, w, b, b, channels, g, y, fd_b);

        float *gx = test_floats(count), *gw = test_floats(channels);
        float *gb = test_floats(channels);
        for (int d = 0; d < 2; d++) {
            test_fill_nan(gx, count);
            test_fill_nan(gw, channels);
            test_fill_nan(gb, channels);
            double error = INFINITY;
            if (run_backward(contexts[d], WALK_DEVICE, &s, c.eps, c.x, g, c.weight, gx, 0, gw, gb))
                error = fmax(test_fd_error(fd_x, gx, count, fd_floor),
                             fmax(test_fd_error(fd_w, gw, channels, fd_floor),
                                  test_fd_error(fd_b, gb, channels, fd_floor)));
            if (!CHECK(test_tally_record(&results[d], error, fd_tolerance))) {
                char what[64];
                snprintf(what, sizeof(what), "backward %s vs fd", names[d]);
                print_case(what, index, &c, "", error);
            }
        }
        free(g);
        free(x);
        free(w);
        free(b);
        free(y);
        free(fd_x);
        free(fd_w);
        free(fd_b);
        free(gx);
        free(gw);
        free(gb);
        free_case(&c);
    }
    test_tally_print("backward, reference vs finite differences", 56, "cases", &results[0]);
    test_tally_print("backward, OpenCL vs finite differences", 56, "cases", &results[1]);
}

/* ---- 3. hand-made cases ------------------------------------------------------------------------
 */

static void expect_values(const char *what, clcnn_context *ctx, int ran, const float *actual,
                          const float *expected, int64_t count) {
    double error = ran ? max_relative_error(actual, expected, count, 1.0) : INFINITY;
    if (!CHECK(error <= hand_tolerance)) {
        fprintf(stderr, "%s on the %s device: error %.3g; got", what,
                context_is_opencl(ctx) ? "OpenCL" : "reference", error);
        for (int64_t i = 0; i < count && i < 16; i++)
            fprintf(stderr, " %.9g", actual[i]);
        fprintf(stderr, "\n");
    }
}

static void check_hand_cases(clcnn_context *ctx) {
    {
        /* BatchNorm1d, one feature, batch 4: mean 0, biased variance 1, eps 0,
         * so x_hat = x and y = 2 x + 0.5. The unbiased variance is 4/3. */
        const shape s = {4, 1, 1, 1};
        float x[] = {-1, -1, 1, 1}, weight[] = {2}, bias[] = {0.5f}, mean[] = {1}, var[] = {2};
        float y[4];
        const float expected[] = {-1.5f, -1.5f, 2.5f, 2.5f};
        const float expected_mean[] = {0.9f}, expected_var[] = {0.9f * 2 + 0.1f * 4 / 3.0f};
        test_fill_nan(y, 4);
        int ran = run_forward(ctx, WALK_DEVICE, &s, 0.0f, 0.1f, 1, x, weight, bias, mean, var, y);
        expect_values("batchnorm1d train forward", ctx, ran, y, expected, 4);
        expect_values("batchnorm1d running_mean", ctx, ran, mean, expected_mean, 1);
        expect_values("batchnorm1d running_var", ctx, ran, var, expected_var, 1);

        /* Backward, dy = 1, 2, 3, 4: sum(dy) = 10, sum(dy * x_hat) = 4, so
         * dx = 2 * (dy - 10/4 - x_hat * 4/4) = -1, 1, -1, 1; added to 10 each. */
        float dy[] = {1, 2, 3, 4}, gx[4], gw[1], gb[1];
        const float expected_gx[] = {-1, 1, -1, 1}, expected_added[] = {9, 11, 9, 11};
        const float expected_gw[] = {4}, expected_gb[] = {10};
        test_fill_nan(gx, 4);
        ran = run_backward(ctx, WALK_DEVICE, &s, 0.0f, x, dy, weight, gx, 0, gw, gb);
        expect_values("batchnorm1d backward, grad_x", ctx, ran, gx, expected_gx, 4);
        expect_values("batchnorm1d backward, grad_weight", ctx, ran, gw, expected_gw, 1);
        expect_values("batchnorm1d backward, grad_bias", ctx, ran, gb, expected_gb, 1);
        for (int i = 0; i < 4; i++)
            gx[i] = 10;
        ran = run_backward(ctx, WALK_DEVICE, &s, 0.0f, x, dy, weight, gx, 1, gw, gb);
        expect_values("batchnorm1d backward, grad_x accumulated", ctx, ran, gx, expected_added, 4);
    }
    {
        /* BatchNorm2d layout: batch 2, 2 channels of 1x2. Channel 0 holds
         * -1, 1, -1, 1 (mean 0, variance 1), channel 1 holds 2, 4, 4, 2 (mean
         * 3, variance 1); momentum 1 makes the running statistics the batch's. */
        const shape s = {2, 2, 1, 2};
        float x[] = {-1, 1, 2, 4, /* image 2 */ -1, 1, 4, 2};
        float weight[] = {1, 3}, bias[] = {0, -1}, mean[] = {5, 5}, var[] = {5, 5}, y[8];
        const float expected[] = {-1, 1, -4, 2, -1, 1, 2, -4};
        const float expected_mean[] = {0, 3}, expected_var[] = {4 / 3.0f, 4 / 3.0f};
        test_fill_nan(y, 8);
        const int ran =
            run_forward(ctx, WALK_DEVICE, &s, 0.0f, 1.0f, 1, x, weight, bias, mean, var, y);
        expect_values("batchnorm2d train forward", ctx, ran, y, expected, 8);
        expect_values("batchnorm2d running_mean", ctx, ran, mean, expected_mean, 2);
        expect_values("batchnorm2d running_var", ctx, ran, var, expected_var, 2);
    }
    {
        /* Eval: (x - 1) / sqrt(3 + 1) * 2 + 0.5 = x - 0.5, and nothing updated. */
        const shape s = {3, 1, 1, 1};
        float x[] = {1, 2, 3}, weight[] = {2}, bias[] = {0.5f}, mean[] = {1}, var[] = {3}, y[3];
        const float expected[] = {0.5f, 1.5f, 2.5f}, same_mean[] = {1}, same_var[] = {3};
        test_fill_nan(y, 3);
        const int ran =
            run_forward(ctx, WALK_DEVICE, &s, 1.0f, 0.1f, 0, x, weight, bias, mean, var, y);
        expect_values("batchnorm eval forward", ctx, ran, y, expected, 3);
        expect_values("batchnorm eval leaves running_mean", ctx, ran, mean, same_mean, 1);
        expect_values("batchnorm eval leaves running_var", ctx, ran, var, same_var, 1);
    }
}

/* The same inputs twice give the same bits (fixed summation order), with
 * either walk. */
static void check_repeatable(clcnn_context *ctx) {
    test_rng rng = {4242};
    bn_case c;
    draw_case(&rng, 2, &c); /* 65536 elements per channel */
    const int64_t count = shape_count(&c.s);
    const int channels = c.s.channels;
    float *grad_y = test_signed_floats(&rng, count);
    for (int walk = 0; walk < 2; walk++) {
        float *y[2], *gx[2], gp[2][4], stats[2][4];
        int ran = 1;
        for (int run = 0; run < 2; run++) {
            y[run] = test_floats(count);
            gx[run] = test_floats(count);
            copy_floats(stats[run], c.running_mean, channels);
            copy_floats(stats[run] + channels, c.running_var, channels);
            ran = ran &&
                  run_forward(ctx, walk, &c.s, c.eps, c.momentum, 1, c.x, c.weight, c.bias,
                              stats[run], stats[run] + channels, y[run]) &&
                  run_backward(ctx, walk, &c.s, c.eps, c.x, grad_y, c.weight, gx[run], 0, gp[run],
                               gp[run] + channels);
        }
        if (!CHECK(ran && memcmp(y[0], y[1], sizeof(float) * (size_t)count) == 0 &&
                   memcmp(gx[0], gx[1], sizeof(float) * (size_t)count) == 0 &&
                   memcmp(gp[0], gp[1], sizeof(float) * 2 * (size_t)channels) == 0 &&
                   memcmp(stats[0], stats[1], sizeof(float) * 2 * (size_t)channels) == 0))
            fprintf(stderr, "the %s walk gave different results for the same inputs\n",
                    walk_names[walk]);
        for (int run = 0; run < 2; run++) {
            free(y[run]);
            free(gx[run]);
        }
    }
    free(grad_y);
    free_case(&c);
}

/* Arguments the entry points refuse with CLCNN_ERROR_INVALID_ARGUMENT. */
static void check_refused(clcnn_context *ctx) {
    float values[4] = {1, 2, 3, 4}, one[1] = {1}, zero[1] = {0}, mean[1] = {0}, var[1] = {1};
    float out[4];
    buf x = {0}, w = {0}, b = {0}, m = {0}, v = {0}, y = {0};
    if (!make_buf(ctx, values, 4, &x) || !make_buf(ctx, one, 1, &w) ||
        !make_buf(ctx, zero, 1, &b) || !make_buf(ctx, mean, 1, &m) || !make_buf(ctx, var, 1, &v) ||
        !make_buf(ctx, out, 4, &y))
        return;
    const clcnn_status invalid = CLCNN_ERROR_INVALID_ARGUMENT;
    /* One value per channel cannot be trained on; eval can. */
    CHECK(op_batchnorm_forward_train(ctx, 1, 1, 1, 1e-5f, 0.1f, x, w, b, m, v, y, (buf){0}, 0,
                                     NULL) == invalid);
    CHECK(strstr(clcnn_last_error(ctx), "more than one value per channel") != NULL);
    CHECK_OK(ctx, op_batchnorm_forward_eval(ctx, 1, 1, 1, 1e-5f, x, w, b, m, v, y, 0));
    CHECK(op_batchnorm_forward_train(ctx, 4, 1, 1, -1.0f, 0.1f, x, w, b, m, v, y, (buf){0}, 0,
                                     NULL) == invalid);
    CHECK(op_batchnorm_forward_train(ctx, 4, 1, 1, 1e-5f, 1.5f, x, w, b, m, v, y, (buf){0}, 0,
                                     NULL) == invalid);
    CHECK(op_batchnorm_forward_eval(ctx, 4, 0, 1, 1e-5f, x, w, b, m, v, y, 0) == invalid);
    const buf none = {0};
    CHECK(op_batchnorm_forward_eval(ctx, 4, 1, 1, 1e-5f, x, w, b, none, v, y, 0) == invalid);
    CHECK(op_batchnorm_backward(ctx, 4, 1, 1, 1e-5f, x, y, w, none, 0, none, b, none, none, NULL) ==
          invalid);
    /* The reference runs a relu as a layer of its own. */
    if (!context_is_opencl(ctx)) {
        CHECK(op_batchnorm_forward_eval(ctx, 4, 1, 1, 1e-5f, x, w, b, m, v, y, 1) == invalid);
        CHECK(op_batchnorm_backward(ctx, 4, 1, 1, 1e-5f, x, y, w, none, 0, w, b, none, y, NULL) ==
              invalid);
    }
    release_buf(&x);
    release_buf(&w);
    release_buf(&b);
    release_buf(&m);
    release_buf(&v);
    release_buf(&y);
}

/* ---- 4. the layer through the network API -----------------------------------------------------
 */

static const char net_text[] = "input channels=2 height=6 width=6\n"
                               "conv filters=4 size=3 pad=1 name=conv1\n"
                               "batchnorm name=bn1\n"
                               "relu\n"
                               "flatten\n"
                               "dense units=3 name=fc\n"
                               "batchnorm name=bn2 momentum=0.2\n";

enum { NET_IMAGES = 40, NET_BATCH = 8, NET_EPOCHS = 2 };

/* Every tensor of net, in table order, concatenated into values (malloc'd). */
static float *all_tensors(clcnn_context *ctx, clcnn_net *net, int64_t *count) {
    *count = 0;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        *count += info.count;
    }
    float *values = test_floats(*count);
    int64_t used = 0;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, values + used, info.count));
        used += info.count;
    }
    return values;
}

static void check_tensor_table(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "bn.net", &net)))
        return;
    static const char *const names[] = {"conv1.weight", "conv1.bias",       "bn1.weight",
                                        "bn1.bias",     "bn1.running_mean", "bn1.running_var",
                                        "fc.weight",    "fc.bias",          "bn2.weight",
                                        "bn2.bias",     "bn2.running_mean", "bn2.running_var"};
    CHECK(clcnn_net_tensor_count(net) == 12);
    for (int i = 0; i < 12 && i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info info;
        CHECK_OK(ctx, clcnn_net_tensor_info(net, i, &info));
        const int state = strstr(info.name, "running_") != NULL;
        CHECK(strcmp(info.name, names[i]) == 0);
        CHECK(info.kind == (state ? CLCNN_TENSOR_STATE : CLCNN_TENSOR_PARAMETER));
    }
    /* Parameters: conv 72 + 4, bn1 4 + 4, dense 144 * 3 + 3, bn2 3 + 3. */
    CHECK(clcnn_net_parameter_count(net) == 76 + 8 + 435 + 6);
    /* PyTorch's initial values before any seeded initialisation and after one. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            CHECK_OK(ctx, clcnn_net_init_weights(net, 11));
        float w[4], b[4], m[4], v[4];
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.weight", w, 4));
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.bias", b, 4));
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.running_mean", m, 4));
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.running_var", v, 4));
        for (int c = 0; c < 4; c++)
            CHECK(w[c] == 1.0f && b[c] == 0.0f && m[c] == 0.0f && v[c] == 1.0f);
    }
    clcnn_net_destroy(net);
}

static void expect_parse_error(clcnn_context *ctx, const char *text, const char *expected) {
    clcnn_net *net = NULL;
    clcnn_status status = clcnn_net_from_string(ctx, text, "e.net", &net);
    if (!CHECK(status != CLCNN_OK && net == NULL && strstr(clcnn_last_error(ctx), expected)))
        fprintf(stderr, "expected '%s', got '%s'\n", expected,
                status == CLCNN_OK ? "success" : clcnn_last_error(ctx));
    clcnn_net_destroy(net);
}

static void check_layer_errors(clcnn_context *ctx) {
    expect_parse_error(ctx, "input channels=2 height=3 width=3\nbatchnorm eps=-1\n",
                       "e.net:2: batchnorm: eps must be >= 0");
    expect_parse_error(ctx, "input channels=2 height=3 width=3\nbatchnorm momentum=1.5\n",
                       "e.net:2: batchnorm: momentum must be between 0 and 1");
    expect_parse_error(ctx, "input channels=2 height=3 width=3\nbatchnorm eps=small\n",
                       "'eps' must be a finite number");
    expect_parse_error(ctx, "input channels=2 height=3 width=3\nbatchnorm size=3\n",
                       "unknown key 'size'");
}

/* A small data set: NET_IMAGES images of 2x6x6 whose class (of 3) shifts their values. */
static void make_dataset(clcnn_dataset *data, float *images, int32_t *labels) {
    test_rng rng = {31337};
    memset(data, 0, sizeof(*data));
    data->count = NET_IMAGES;
    data->channels = 2;
    data->height = data->width = 6;
    data->classes = 3;
    data->images = images;
    data->labels = labels;
    for (int i = 0; i < NET_IMAGES; i++) {
        labels[i] = i % 3;
        for (int j = 0; j < 72; j++)
            images[i * 72 + j] = test_rand_float(&rng, -1.0f, 1.0f) + 0.5f * (float)labels[i];
    }
}

typedef struct trained {
    clcnn_net *net;
    float *tensors;
    int64_t tensor_floats;
    double losses[NET_EPOCHS];
    float eval_output[NET_IMAGES * 3];
} trained;

/* Trains text (a network of 2x6x6 inputs and 3 outputs) from seed 5 for
 * NET_EPOCHS epochs on ctx. */
static int train_net(clcnn_context *ctx, const char *text, const clcnn_dataset *data,
                     trained *out) {
    memset(out, 0, sizeof(*out));
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "bn.net", &out->net)))
        return 0;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = NET_BATCH;
    config.epochs = NET_EPOCHS;
    config.learning_rate = 0.05;
    config.seed = 5;
    clcnn_trainer *trainer = NULL;
    int ok = CHECK_OK(ctx, clcnn_net_init_weights(out->net, 5)) &&
             CHECK_OK(ctx, clcnn_trainer_create(out->net, &config, &trainer));
    for (int e = 0; ok && e < NET_EPOCHS; e++) {
        double accuracy;
        ok = CHECK_OK(ctx,
                      clcnn_trainer_epoch(trainer, data, NULL, NULL, &out->losses[e], &accuracy)) &&
             CHECK(isfinite(out->losses[e]));
    }
    clcnn_trainer_destroy(trainer);
    ok = ok && CHECK_OK(ctx, clcnn_net_forward(out->net, data->images, NET_IMAGES, out->eval_output,
                                               NULL, NULL));
    if (ok)
        out->tensors = all_tensors(ctx, out->net, &out->tensor_floats);
    return ok;
}

/* Reads the u32 at offset 8 of a model file: its format version. */
static uint32_t model_version(const char *path) {
    unsigned char bytes[12] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    const size_t n = fread(bytes, 1, sizeof(bytes), f);
    fclose(f);
    if (n != sizeof(bytes))
        return 0;
    return (uint32_t)bytes[8] | (uint32_t)bytes[9] << 8 | (uint32_t)bytes[10] << 16 |
           (uint32_t)bytes[11] << 24;
}

/* The saved running statistics come back through a model file and a weights
 * directory on both devices, bit for bit. */
static void check_saved_state(clcnn_context *const *contexts, const trained *t,
                              const clcnn_dataset *data) {
    clcnn_context *ctx = contexts[1];
    char model_path[1200], weights_dir[1200], npy_path[1300];
    snprintf(model_path, sizeof(model_path), "%s", test_path("bn.model"));
    snprintf(weights_dir, sizeof(weights_dir), "%s", test_path("bn-weights"));
    snprintf(npy_path, sizeof(npy_path), "%s/bn1.running_mean.npy", weights_dir);
    float saved_mean[4], saved_var[3];
    if (!CHECK_OK(ctx, clcnn_net_get_tensor(t->net, "bn1.running_mean", saved_mean, 4)) ||
        !CHECK_OK(ctx, clcnn_net_get_tensor(t->net, "bn2.running_var", saved_var, 3)) ||
        !CHECK_OK(ctx, clcnn_model_save(t->net, NULL, NULL, model_path)) ||
        !CHECK_OK(ctx, clcnn_net_save_weights(t->net, weights_dir)))
        return;
    /* State tensors exist, so the file is written in version 2. */
    CHECK(model_version(model_path) == 2);
    /* Training moved the statistics away from their initial 0 and 1. */
    CHECK(saved_mean[0] != 0.0f && saved_var[0] != 1.0f);

    clcnn_array array;
    if (CHECK_OK(ctx, clcnn_npy_read(ctx, npy_path, &array))) {
        CHECK(array.dtype == CLCNN_FLOAT32 && array.ndim == 1 && array.shape[0] == 4 &&
              memcmp(array.data, saved_mean, sizeof(saved_mean)) == 0);
        clcnn_array_free(&array);
    }
    for (int d = 0; d < 2; d++) {
        clcnn_context *c = contexts[d];
        clcnn_net *loaded = NULL, *fresh = NULL;
        float mean[4], var[3], output[NET_IMAGES * 3];
        if (CHECK_OK(c, clcnn_model_load(c, model_path, &loaded, NULL, NULL))) {
            CHECK_OK(c, clcnn_net_get_tensor(loaded, "bn1.running_mean", mean, 4));
            CHECK_OK(c, clcnn_net_get_tensor(loaded, "bn2.running_var", var, 3));
            CHECK(memcmp(mean, saved_mean, sizeof(mean)) == 0 &&
                  memcmp(var, saved_var, sizeof(var)) == 0);
            /* Eval mode normalises with them: the output of the saved network. */
            CHECK_OK(c, clcnn_net_forward(loaded, data->images, NET_IMAGES, output, NULL, NULL));
            CHECK(max_relative_error(output, t->eval_output, NET_IMAGES * 3, 1.0) <= tolerance);
        }
        if (CHECK_OK(c, clcnn_net_from_string(c, net_text, "bn.net", &fresh)) &&
            CHECK_OK(c, clcnn_net_load_weights(fresh, weights_dir))) {
            CHECK_OK(c, clcnn_net_get_tensor(fresh, "bn1.running_mean", mean, 4));
            CHECK_OK(c, clcnn_net_get_tensor(fresh, "bn2.running_var", var, 3));
            CHECK(memcmp(mean, saved_mean, sizeof(mean)) == 0 &&
                  memcmp(var, saved_var, sizeof(var)) == 0);
        }
        clcnn_net_destroy(loaded);
        clcnn_net_destroy(fresh);
    }
}

/* Both devices train from the same weights on the same batches. Their
 * tensors then differ by the gradients' differences (within 1e-4, as
 * compared elsewhere) times the learning rate, summed over the steps, and
 * the running statistics by the activations' (1e-5): 1e-4 bounds both. */
static void check_training(clcnn_context *const *contexts) {
    float *images = test_floats(NET_IMAGES * 72);
    int32_t *labels = allocate(NET_IMAGES, sizeof(int32_t));
    clcnn_dataset data;
    make_dataset(&data, images, labels);
    trained runs[2];
    const int ok = train_net(contexts[0], net_text, &data, &runs[0]) &&
                   train_net(contexts[1], net_text, &data, &runs[1]);
    if (CHECK(ok)) {
        const double tensor_error =
            max_relative_error(runs[1].tensors, runs[0].tensors, runs[0].tensor_floats, 1.0);
        const double output_error =
            max_relative_error(runs[1].eval_output, runs[0].eval_output, NET_IMAGES * 3, 1.0);
        double loss_error = 0.0;
        for (int e = 0; e < NET_EPOCHS; e++)
            loss_error = fmax(loss_error, fabs(runs[1].losses[e] - runs[0].losses[e]) /
                                              fmax(fabs(runs[0].losses[e]), 1.0));
        printf("trained %d steps on both devices: losses %.6f -> %.6f; tensors differ by %.3g, "
               "eval outputs by %.3g, losses by %.3g\n",
               NET_EPOCHS * NET_IMAGES / NET_BATCH, runs[0].losses[0],
               runs[0].losses[NET_EPOCHS - 1], tensor_error, output_error, loss_error);
        CHECK(tensor_error <= gradient_tolerance);
        CHECK(output_error <= gradient_tolerance);
        CHECK(loss_error <= gradient_tolerance);
        check_saved_state(contexts, &runs[1], &data);
    }
    for (int d = 0; d < 2; d++) {
        clcnn_net_destroy(runs[d].net);
        free(runs[d].tensors);
    }
    free(images);
    free(labels);
}

/* After clcnn_net_backward on a device the running statistics are on the
 * device; clcnn_net_get_tensor must see them. Both devices agree. */
static void check_state_after_pass(clcnn_context *const *contexts) {
    float input[4 * 72];
    int32_t labels[4] = {0, 1, 2, 0};
    test_rng rng = {99};
    test_fill_signed(&rng, input, 4 * 72);
    float stats[2][8];
    for (int d = 0; d < 2; d++) {
        clcnn_context *ctx = contexts[d];
        clcnn_net *net = NULL;
        double loss;
        test_fill_nan(stats[d], 8);
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "bn.net", &net)) &&
            CHECK_OK(ctx, clcnn_net_init_weights(net, 3)) &&
            CHECK_OK(ctx, clcnn_net_backward(net, input, 4, labels, NULL, &loss))) {
            CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.running_mean", stats[d], 4));
            CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn1.running_var", stats[d] + 4, 4));
            /* A batch of one vector cannot train bn2. */
            CHECK(clcnn_net_backward(net, input, 1, labels, NULL, &loss) == CLCNN_ERROR_SHAPE);
            CHECK(strstr(clcnn_last_error(ctx),
                         "batchnorm bn2: training needs more than one value per channel") != NULL);
        }
        clcnn_net_destroy(net);
    }
    CHECK(stats[0][0] != 0.0f && stats[0][4] != 1.0f);
    CHECK(max_relative_error(stats[1], stats[0], 8, 1.0) <= tolerance);
}

/* A train-mode clcnn_net_forward of more images than an eval-mode forward
 * chunk (the test lowers it to 64) normalises with the statistics of all of them and updates the
 * running statistics once. */
static void check_large_train_forward(clcnn_context *ctx) {
    enum { IMAGES = 300, CHANNELS = 3, SPATIAL = 4 };
    static float input[IMAGES * CHANNELS * SPATIAL], output[IMAGES * CHANNELS * SPATIAL];
    test_rng rng = {2024};
    for (int i = 0; i < IMAGES * CHANNELS * SPATIAL; i++)
        input[i] = test_rand_float(&rng, -1.0f, 1.0f) + (float)(i / SPATIAL % CHANNELS);
    clcnn_net *net = NULL;
    if (!CHECK_OK(
            ctx, clcnn_net_from_string(
                     ctx, "input channels=3 height=2 width=2\nbatchnorm name=bn\n", "b.net", &net)))
        return;
    net->forward_chunk_floats = 64 * CHANNELS * SPATIAL;
    float mean[CHANNELS], var[CHANNELS];
    if (CHECK_OK(ctx, clcnn_net_set_mode(net, CLCNN_MODE_TRAIN)) &&
        CHECK_OK(ctx, clcnn_net_forward(net, input, IMAGES, output, NULL, NULL)) &&
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn.running_mean", mean, CHANNELS)) &&
        CHECK_OK(ctx, clcnn_net_get_tensor(net, "bn.running_var", var, CHANNELS))) {
        const shape s = {IMAGES, CHANNELS, 2, 2};
        const int64_t count = shape_count(&s);
        double *x = doubles_of(input, count), *y = test_doubles(count);
        const double one[CHANNELS] = {1, 1, 1}, zero[CHANNELS] = {0, 0, 0};
        forward_double(&s, 1e-5f, x, one, zero, y);
        float *expected = test_floats(count);
        for (int64_t i = 0; i < count; i++)
            expected[i] = (float)y[i];
        CHECK(max_relative_error(output, expected, count, 1.0) <= tolerance);
        /* One update from (0, 1) with momentum 0.1. */
        for (int c = 0; c < CHANNELS; c++) {
            double sum = 0.0, squares = 0.0;
            for (int n = 0; n < IMAGES; n++)
                for (int p = 0; p < SPATIAL; p++)
                    sum += input[(n * CHANNELS + c) * SPATIAL + p];
            const double m = sum / (IMAGES * SPATIAL);
            for (int n = 0; n < IMAGES; n++)
                for (int p = 0; p < SPATIAL; p++) {
                    const double d = input[(n * CHANNELS + c) * SPATIAL + p] - m;
                    squares += d * d;
                }
            const float want_mean = (float)(0.1 * m);
            const float want_var = (float)(0.9 + 0.1 * squares / (IMAGES * SPATIAL - 1));
            CHECK(max_relative_error(&mean[c], &want_mean, 1, 1.0) <= tolerance);
            CHECK(max_relative_error(&var[c], &want_var, 1, 1.0) <= tolerance);
        }
        free(x);
        free(y);
        free(expected);
    }
    clcnn_net_destroy(net);
}

/* ---- eval-mode backward ------------------------------------------------------------------ */

/* The gradients of the eval-mode forward (running statistics, an affine map
 * per channel): both walks against the reference on random cases, with grad_x
 * overwritten, accumulated and absent; and against central differences of
 * the forward written here in double, on both devices. */
static void check_eval_backward(clcnn_context *const *contexts, int cases, uint64_t seed) {
    clcnn_context *ctx = contexts[1];
    test_rng rng = {seed};
    test_tally device = {0}, fd = {0};
    for (int index = 0; index < cases; index++) {
        bn_case c;
        draw_case(&rng, index, &c);
        const shape *s = &c.s;
        const int64_t count = shape_count(s);
        const int spatial = shape_spatial(s), channels = s->channels;
        const int accumulate = index % 3 == 1, want_grad_x = index % 3 != 2;
        float *grad_y = test_floats(count), *start = test_floats(count);
        test_fill_signed(&rng, grad_y, count);
        test_fill_destination(&rng, start, count, accumulate);
        float *want_x = want_grad_x ? test_floats(count) : NULL;
        float *want_w = test_floats(channels), *want_b = test_floats(channels);
        if (want_x)
            copy_floats(want_x, start, count);
        batchnorm_backward_eval_ref(s->batch, channels, spatial, c.eps, c.x, grad_y, c.weight,
                                    c.running_mean, c.running_var, want_x, accumulate, want_w,
                                    want_b);
        for (int walk = 0; walk < 2; walk++) {
            float *got_x = want_grad_x ? test_floats(count) : NULL;
            float *got_w = test_floats(channels), *got_b = test_floats(channels);
            if (got_x)
                copy_floats(got_x, start, count);
            test_fill_nan(got_w, channels);
            test_fill_nan(got_b, channels);
            buf bx, bdy, bw, bm, bv, bgx, bgw, bgb;
            int ok = make_buf(ctx, c.x, count, &bx) && make_buf(ctx, grad_y, count, &bdy) &&
                     make_buf(ctx, c.weight, channels, &bw) &&
                     make_buf(ctx, c.running_mean, channels, &bm) &&
                     make_buf(ctx, c.running_var, channels, &bv) &&
                     make_buf(ctx, got_x, count, &bgx) && make_buf(ctx, got_w, channels, &bgw) &&
                     make_buf(ctx, got_b, channels, &bgb);
            ok = ok && CHECK_OK(ctx, batchnorm_backward_eval(ctx, walk, s->batch, channels, spatial,
                                                             c.eps, bx.mem, bdy.mem, bw.mem, bm.mem,
                                                             bv.mem, bgx.mem, accumulate, bgw.mem,
                                                             bgb.mem));
            ok = ok && read_buf(ctx, bgx, got_x, count) && read_buf(ctx, bgw, got_w, channels) &&
                 read_buf(ctx, bgb, got_b, channels);
            double error = max_relative_error(got_w, want_w, channels, 1.0);
            error = fmax(error, max_relative_error(got_b, want_b, channels, 1.0));
            if (want_grad_x)
                error = fmax(error, max_relative_error(got_x, want_x, count, 1.0));
            if (!ok || !test_tally_record(&device, ok ? error : INFINITY, gradient_tolerance))
                print_case("eval backward", index, &c, walk_names[walk], error);
            release_buf(&bx);
            release_buf(&bdy);
            release_buf(&bw);
            release_buf(&bm);
            release_buf(&bv);
            release_buf(&bgx);
            release_buf(&bgw);
            release_buf(&bgb);
            free(got_x);
            free(got_w);
            free(got_b);
        }
        /* Finite differences of loss = sum(y * G), y the eval forward in double. */
        if (index < 20) {
            for (int d = 0; d < 2; d++) {
                float *gx = test_floats(count), *gw = test_floats(channels),
                      *gb = test_floats(channels);
                buf bx, bdy, bw, bm, bv, bgx, bgw, bgb;
                int ok = make_buf(contexts[d], c.x, count, &bx) &&
                         make_buf(contexts[d], grad_y, count, &bdy) &&
                         make_buf(contexts[d], c.weight, channels, &bw) &&
                         make_buf(contexts[d], c.running_mean, channels, &bm) &&
                         make_buf(contexts[d], c.running_var, channels, &bv) &&
                         make_buf(contexts[d], gx, count, &bgx) &&
                         make_buf(contexts[d], gw, channels, &bgw) &&
                         make_buf(contexts[d], gb, channels, &bgb);
                ok = ok && CHECK_OK(contexts[d], op_batchnorm_backward_eval(
                                                     contexts[d], s->batch, channels, spatial,
                                                     c.eps, bx, bdy, bw, bm, bv, bgx, 0, bgw, bgb));
                ok = ok && read_buf(contexts[d], bgx, gx, count) &&
                     read_buf(contexts[d], bgw, gw, channels) &&
                     read_buf(contexts[d], bgb, gb, channels);
                double worst = 0.0;
                for (int k = 0; ok && k < 8; k++) {
                    const int64_t i = test_rand_int(&rng, 0, (int)(count - 1));
                    const int ch = (int)((i / spatial) % channels);
                    const double invstd = 1.0 / sqrt((double)c.running_var[ch] + c.eps);
                    /* y_i = (x_i - m) * invstd * w + b: the loss is linear in
                     * x_i, w and b, so the central difference is exact up to
                     * rounding in double. */
                    double dw = 0.0, db = 0.0;
                    for (int n = 0; n < s->batch; n++)
                        for (int q = 0; q < spatial; q++) {
                            const int64_t j = ((int64_t)n * channels + ch) * spatial + q;
                            const double h = fd_step;
                            const double xh = ((double)c.x[j] - c.running_mean[ch]) * invstd;
                            dw += ((xh * (c.weight[ch] + h)) - (xh * (c.weight[ch] - h))) /
                                  (2 * h) * grad_y[j];
                            db += (((double)c.bias[ch] + h) - ((double)c.bias[ch] - h)) / (2 * h) *
                                  grad_y[j];
                        }
                    const double h = fd_step;
                    const double dx =
                        (((c.x[i] + h) - c.running_mean[ch]) * invstd * c.weight[ch] -
                         ((c.x[i] - h) - c.running_mean[ch]) * invstd * c.weight[ch]) /
                        (2 * h) * grad_y[i];
                    worst = fmax(worst, fabs(dx - gx[i]) / fmax(fabs(dx), fd_floor));
                    worst = fmax(worst, fabs(dw - gw[ch]) / fmax(fabs(dw), fd_floor));
                    worst = fmax(worst, fabs(db - gb[ch]) / fmax(fabs(db), fd_floor));
                }
                if (!ok || !test_tally_record(&fd, ok ? worst : INFINITY, fd_tolerance))
                    print_case("eval backward fd", index, &c, d ? " OpenCL" : " reference", worst);
                release_buf(&bx);
                release_buf(&bdy);
                release_buf(&bw);
                release_buf(&bm);
                release_buf(&bv);
                release_buf(&bgx);
                release_buf(&bgw);
                release_buf(&bgb);
                free(gx);
                free(gw);
                free(gb);
            }
        }
        free(grad_y);
        free(start);
        free(want_x);
        free(want_w);
        free(want_b);
        free_case(&c);
    }
    test_tally_print("eval backward (both walks vs reference)", 56, "cases", &device);
    test_tally_print("eval backward (finite differences)", 56, "cases", &fd);
    CHECK((quick || device.cases >= 200) && device.failures == 0 && fd.failures == 0);
}

/* ---- folding ------------------------------------------------------------------------------ */

static void check_fold_op(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    test_tally result = {0};
    for (int index = 0; index < cases; index++) {
        const int channels = test_rand_int(&rng, 1, 70);
        const int per_channel = test_rand_int(&rng, 1, index % 4 == 0 ? 4000 : 300);
        const int has_bias = index % 2;
        const float eps = index % 5 == 0 ? 1e-3f : 1e-5f;
        const int64_t weights = (int64_t)channels * per_channel;
        float *weight = test_floats(weights), *bias = test_floats(channels);
        float *bn[4], *want_w = test_floats(weights), *want_b = test_floats(channels);
        float *got_w = test_floats(weights), *got_b = test_floats(channels);
        test_fill_signed(&rng, weight, weights);
        test_fill_signed(&rng, bias, channels);
        for (int k = 0; k < 4; k++) {
            bn[k] = test_floats(channels);
            test_fill_uniform(&rng, bn[k], channels, k == 3 ? 0.05f : -2.0f, k == 3 ? 3.0f : 2.0f);
        }
        batchnorm_fold_ref(channels, per_channel, eps, weight, has_bias ? bias : NULL, bn[0], bn[1],
                           bn[2], bn[3], want_w, want_b);
        test_fill_nan(got_w, weights);
        test_fill_nan(got_b, channels);
        buf bw, bb, b0, b1, b2, b3, bfw, bfb;
        int ok = make_buf(ctx, weight, weights, &bw) && make_buf(ctx, bias, channels, &bb) &&
                 make_buf(ctx, bn[0], channels, &b0) && make_buf(ctx, bn[1], channels, &b1) &&
                 make_buf(ctx, bn[2], channels, &b2) && make_buf(ctx, bn[3], channels, &b3) &&
                 make_buf(ctx, got_w, weights, &bfw) && make_buf(ctx, got_b, channels, &bfb);
        ok = ok && CHECK_OK(ctx, batchnorm_fold(ctx, channels, per_channel, eps, bw.mem,
                                                has_bias ? bb.mem : NULL, b0.mem, b1.mem, b2.mem,
                                                b3.mem, bfw.mem, bfb.mem));
        ok = ok && read_buf(ctx, bfw, got_w, weights) && read_buf(ctx, bfb, got_b, channels);
        const double error = fmax(max_relative_error(got_w, want_w, weights, 1.0),
                                  max_relative_error(got_b, want_b, channels, 1.0));
        if (!test_tally_record(&result, ok ? error : INFINITY, tolerance))
            printf("fold case %d: %d channels x %d, bias %d: error %.3g\n", index, channels,
                   per_channel, has_bias, error);
        buf *bufs[] = {&bw, &bb, &b0, &b1, &b2, &b3, &bfw, &bfb};
        for (int k = 0; k < 8; k++)
            release_buf(bufs[k]);
        for (int k = 0; k < 4; k++)
            free(bn[k]);
        free(weight);
        free(bias);
        free(want_w);
        free(want_b);
        free(got_w);
        free(got_b);
    }
    test_tally_print("fold (device vs reference)", 56, "cases", &result);
}

/* conv (no bias) -> bn, grouped conv with bias -> bn, a conv read by a
 * batchnorm and by an add (no fold), dense -> bn (BatchNorm1d). */
static const char fold_text[] = "input channels=3 height=9 width=9\n"
                                "conv filters=8 size=3 pad=1 bias=false name=c1\n"
                                "batchnorm name=b1\n"
                                "relu name=r1\n"
                                "conv filters=8 size=3 pad=1 groups=2 name=c2\n"
                                "batchnorm name=b2\n"
                                "conv filters=8 size=1 name=c3\n"
                                "batchnorm name=b3\n"
                                "add inputs=b3,c3,b2 name=sum\n"
                                "maxpool size=2 stride=2\n"
                                "flatten\n"
                                "dense units=12 name=fc1\n"
                                "batchnorm name=b4\n"
                                "relu\n"
                                "dense units=5 bias=false name=fc2\n"
                                "batchnorm name=b5\n";
enum { FOLD_IMAGES = 70, FOLDS = 4 };

static clcnn_status ignore_trace(void *user, int layer_index, const float *values, int64_t first,
                                 int64_t count) {
    return CLCNN_OK;
}

static void check_folded_forward(clcnn_context *const *contexts) {
    test_rng rng = {13301};
    float *input = test_signed_floats(&rng, FOLD_IMAGES * 3 * 81);
    float *folded = test_floats(FOLD_IMAGES * 5), *unfolded = test_floats(FOLD_IMAGES * 5);
    float *outputs[2] = {test_floats(FOLD_IMAGES * 5), test_floats(FOLD_IMAGES * 5)};
    for (int d = 0; d < 2; d++) {
        clcnn_context *ctx = contexts[d];
        clcnn_net *net = NULL;
        if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, fold_text, "fold.net", &net)) ||
            !CHECK_OK(ctx, clcnn_net_init_weights(net, 5)))
            continue;
        /* Batchnorm's tensors away from their initial 1 and 0, as after training. */
        test_rng values = {13302};
        for (int t = 0; t < clcnn_net_tensor_count(net); t++) {
            clcnn_tensor_info info;
            clcnn_net_tensor_info(net, t, &info);
            if (strncmp(info.layer, "b", 1) != 0)
                continue;
            float *v = test_floats(info.count);
            const int variance = strstr(info.name, "running_var") != NULL;
            test_fill_uniform(&values, v, info.count, variance ? 0.2f : -1.5f,
                              variance ? 2.5f : 1.5f);
            CHECK_OK(ctx, clcnn_net_set_tensor(net, info.name, v, info.count));
            free(v);
        }
        if (d == 1)
            clcnn_profile_enable(ctx, 1);
        CHECK_OK(ctx, clcnn_net_forward(net, input, FOLD_IMAGES, folded, NULL, NULL));
        int folds = 0;
        for (int i = 0; i < net->layer_count; i++) {
            folds += net->plan.folded_into[i] >= 0;
            if (strcmp(net->layers[i].name, "c3") == 0)
                CHECK(net->plan.folded_into[i] == -1); /* read by b3 and by the add */
        }
        CHECK(folds == FOLDS);
        if (d == 1) {
            char report[8192];
            CHECK_OK(ctx, clcnn_profile_report(ctx, report, sizeof(report)));
            clcnn_profile_enable(ctx, 0);
            CHECK(strstr(report, "batchnorm_fold") != NULL);
        }
        CHECK_OK(ctx, clcnn_net_forward(net, input, FOLD_IMAGES, unfolded, ignore_trace, NULL));
        const double error = max_relative_error(folded, unfolded, FOLD_IMAGES * 5, 1.0);
        printf("folded forward (%s): %.3g against unfolded\n", d ? "opencl" : "reference", error);
        CHECK(error <= tolerance);
        memcpy(outputs[d], folded, sizeof(float) * FOLD_IMAGES * 5);
        clcnn_net_destroy(net);
    }
    const double error = max_relative_error(outputs[1], outputs[0], FOLD_IMAGES * 5, 1.0);
    printf("folded forward: opencl against reference %.3g\n", error);
    CHECK(error <= tolerance);
    free(input);
    free(folded);
    free(unfolded);
    free(outputs[0]);
    free(outputs[1]);
}

/* ---- 6. a relu fused into the batchnorm or add before it ----------------------------------------
 * (CLCNN_FUSE, host/graph/plan.c): the same numbers, bit for bit, as the
 * relu run apart. */

/* The ops: the train-mode forward (keeping statistics or not) and the eval
 * forward with relu = 1 against relu applied to their output; the backward
 * (from kept statistics and recomputing them; grad_x overwritten, added
 * into, absent) given relu_y against the backward of the masked gradient;
 * on both walks. */
static void check_fused_relu_ops(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    int mismatches = 0, runs = 0;
    for (int index = 0; index < cases; index++) {
        bn_case c;
        draw_case(&rng, index, &c);
        const shape *s = &c.s;
        const int64_t count = shape_count(s);
        const int channels = s->channels, spatial = shape_spatial(s);
        const int kind = index % 3; /* grad_x overwritten, accumulated, absent */
        float *grad_y = test_floats(count), *masked = test_floats(count);
        float *start = test_floats(count), *relu_y = test_floats(count);
        const int64_t lengths[3] = {count, channels, channels};
        two_ways w = two_ways_make(count, lengths, 3);
        float **y = w.out, *(*grads)[4] = w.grads;
        test_fill_signed(&rng, grad_y, count);
        test_fill_signed(&rng, start, count);
        for (int walk = 0; walk < 2; walk++)
            for (int training = 0; training < 2; training++) {
                buf bx = {0}, bw = {0}, bb = {0}, bm = {0}, bv = {0}, bs = {0}, bg = {0}, by = {0};
                buf br = {0}, bq = {0};
                int ok = make_buf(ctx, c.x, count, &bx) && make_buf(ctx, c.weight, channels, &bw) &&
                         make_buf(ctx, c.bias, channels, &bb) &&
                         make_buf(ctx, c.running_mean, channels, &bm) &&
                         make_buf(ctx, c.running_var, channels, &bv) &&
                         make_buf(ctx, grad_y, count, &bg) &&
                         CHECK_OK(ctx, buffer_create(ctx, sizeof(float) * 5 * (size_t)channels,
                                                     &bs.mem));
                /* y[0]: the layer's output, then relu'd here; y[1]: fused. */
                for (int relu = 0; relu < 2 && ok; relu++) {
                    ok = make_buf(ctx, start, count, &by);
                    if (ok && training)
                        ok = CHECK_OK(ctx, batchnorm_forward_train(
                                               ctx, walk, s->batch, channels, spatial, c.eps,
                                               c.momentum, bx.mem, bw.mem, bb.mem, bm.mem, bv.mem,
                                               by.mem, relu ? bs.mem : NULL, relu, NULL));
                    else if (ok)
                        ok = CHECK_OK(ctx,
                                      batchnorm_forward_eval(ctx, walk, s->batch, channels, spatial,
                                                             c.eps, bx.mem, bw.mem, bb.mem, bm.mem,
                                                             bv.mem, by.mem, relu));
                    ok = ok && read_buf(ctx, by, y[relu], count);
                    release_buf(&by);
                }
                for (int64_t i = 0; i < count; i++)
                    y[0][i] = y[0][i] <= 0.0f ? 0.0f : y[0][i];
                runs++;
                int same = ok && memcmp(y[0], y[1], sizeof(float) * (size_t)count) == 0;
                if (training && ok) {
                    /* Backward from the fused forward's output: the masked
                     * gradient apart, then relu_y given; both with the
                     * kept statistics (saved) and recomputing them. */
                    memcpy(relu_y, y[1], sizeof(float) * (size_t)count);
                    for (int64_t i = 0; i < count; i++)
                        masked[i] = relu_y[i] <= 0.0f ? 0.0f : grad_y[i];
                    ok = make_buf(ctx, relu_y, count, &br) && make_buf(ctx, masked, count, &bq);
                    for (int v = 0; v < 4 && ok; v++) {
                        const int fused = v % 2, saved = v / 2;
                        buf bgx = {0}, bgw = {0}, bgb = {0};
                        ok = make_buf(ctx, start, count, &bgx) &&
                             make_buf(ctx, grads[fused][1], channels, &bgw) &&
                             make_buf(ctx, grads[fused][2], channels, &bgb) &&
                             CHECK_OK(ctx,
                                      batchnorm_backward(
                                          ctx, walk, s->batch, channels, spatial, c.eps, bx.mem,
                                          fused ? bg.mem : bq.mem, bw.mem,
                                          kind == 2 ? NULL : bgx.mem, kind == 1, bgw.mem, bgb.mem,
                                          saved ? bs.mem : NULL, fused ? br.mem : NULL, NULL)) &&
                             read_buf(ctx, bgx, grads[fused][0], count) &&
                             read_buf(ctx, bgw, grads[fused][1], channels) &&
                             read_buf(ctx, bgb, grads[fused][2], channels);
                        release_buf(&bgx);
                        release_buf(&bgw);
                        release_buf(&bgb);
                        if (fused)
                            for (int k = 0; k < 3; k++)
                                same = same && ok &&
                                       memcmp(grads[0][k], grads[1][k],
                                              sizeof(float) *
                                                  (size_t)(k == 0 ? count : channels)) == 0;
                    }
                }
                if (!same) {
                    mismatches++;
                    print_case("fused relu", index, &c, training ? ", train" : ", eval", 0.0);
                }
                buf all[] = {bx, bw, bb, bm, bv, bs, bg, br, bq};
                release_bufs(all, sizeof(all) / sizeof(all[0]));
            }
        free(grad_y);
        free(masked);
        free(start);
        free(relu_y);
        two_ways_free(&w);
        free_case(&c);
    }
    printf("fused relu ops: %d runs, %d differ from the relu apart\n", runs, mismatches);
    CHECK(runs > 0 && mismatches == 0);
}

/* A residual add (and its relu) fused after the train-mode batchnorm
 * (batchnorm_residual): the forward against the batchnorm's output plus skip
 * (relu'd) here; the backward given the output's gradient, relu_y and
 * grad_skip against the add's backward here (the masked gradient, written
 * or added into grad_skip) followed by the batchnorm's backward of the
 * masked gradient; with and without a relu, kept statistics or recomputed,
 * grad_skip written, added into or absent, grad_x overwritten, added into
 * or absent; on both walks. Bit for bit. */
static void check_residual_ops(clcnn_context *ctx, int cases, uint64_t seed) {
    test_rng rng = {seed};
    int mismatches = 0, runs = 0;
    for (int index = 0; index < cases; index++) {
        bn_case c;
        draw_case(&rng, index, &c);
        const shape *s = &c.s;
        const int64_t count = shape_count(s);
        const int channels = s->channels, spatial = shape_spatial(s);
        const int kind = index % 3;      /* grad_x overwritten, accumulated, absent */
        const int skip_kind = index % 4; /* grad_skip written, accumulated, absent, written */
        float *skip = test_floats(count), *grad_y = test_floats(count);
        float *start = test_floats(count), *masked = test_floats(count);
        const int64_t lengths[4] = {count, channels, channels, count};
        two_ways w = two_ways_make(count, lengths, 4);
        float **out = w.out, *(*grads)[4] = w.grads;
        test_fill_signed(&rng, skip, count);
        test_fill_signed(&rng, grad_y, count);
        test_fill_signed(&rng, start, count);
        for (int variant = 0; variant < 8; variant++) {
            const int walk = variant & 1, relu = (variant >> 1) & 1, saved = variant >> 2;
            buf bx = {0}, bw = {0}, bb = {0}, bm = {0}, bv = {0}, bs = {0}, bk = {0}, bg = {0};
            buf by[2] = {{0}, {0}};
            int ok =
                make_buf(ctx, c.x, count, &bx) && make_buf(ctx, c.weight, channels, &bw) &&
                make_buf(ctx, c.bias, channels, &bb) &&
                make_buf(ctx, c.running_mean, channels, &bm) &&
                make_buf(ctx, c.running_var, channels, &bv) && make_buf(ctx, skip, count, &bk) &&
                make_buf(ctx, grad_y, count, &bg) &&
                CHECK_OK(ctx, buffer_create(ctx, sizeof(float) * 5 * (size_t)channels, &bs.mem));
            /* out[0]: the batchnorm's output, the add and relu here; out[1]: fused. */
            for (int fused = 0; fused < 2 && ok; fused++) {
                const batchnorm_residual forward = {bk.mem, NULL, 0};
                ok = make_buf(ctx, start, count, &by[fused]) &&
                     CHECK_OK(ctx, batchnorm_forward_train(
                                       ctx, walk, s->batch, channels, spatial, c.eps, c.momentum,
                                       bx.mem, bw.mem, bb.mem, bm.mem, bv.mem, by[fused].mem,
                                       bs.mem, fused && relu, fused ? &forward : NULL)) &&
                     read_buf(ctx, by[fused], out[fused], count);
            }
            for (int64_t i = 0; i < count; i++) {
                const float sum = out[0][i] + skip[i];
                out[0][i] = relu && sum <= 0.0f ? 0.0f : sum;
            }
            int same = ok && memcmp(out[0], out[1], sizeof(float) * (size_t)count) == 0;
            /* The add's backward here: the masked gradient, which grad_skip takes too. */
            for (int64_t i = 0; i < count; i++) {
                masked[i] = relu && out[1][i] <= 0.0f ? 0.0f : grad_y[i];
                grads[0][3][i] = skip_kind == 1 ? start[i] + masked[i] : masked[i];
            }
            buf bq = {0};
            ok = ok && make_buf(ctx, masked, count, &bq);
            for (int fused = 0; fused < 2 && ok; fused++) {
                buf bgx = {0}, bgw = {0}, bgb = {0}, bgs = {0};
                ok = make_buf(ctx, start, count, &bgx) &&
                     make_buf(ctx, grads[fused][1], channels, &bgw) &&
                     make_buf(ctx, grads[fused][2], channels, &bgb) &&
                     make_buf(ctx, start, count, &bgs);
                const batchnorm_residual backward = {NULL, skip_kind == 2 ? NULL : bgs.mem,
                                                     skip_kind == 1};
                ok = ok &&
                     CHECK_OK(ctx, batchnorm_backward(ctx, walk, s->batch, channels, spatial, c.eps,
                                                      bx.mem, fused ? bg.mem : bq.mem, bw.mem,
                                                      kind == 2 ? NULL : bgx.mem, kind == 1,
                                                      bgw.mem, bgb.mem, saved ? bs.mem : NULL,
                                                      fused && relu ? by[1].mem : NULL,
                                                      fused ? &backward : NULL)) &&
                     read_buf(ctx, bgx, grads[fused][0], count) &&
                     read_buf(ctx, bgw, grads[fused][1], channels) &&
                     read_buf(ctx, bgb, grads[fused][2], channels);
                if (fused && skip_kind != 2)
                    ok = ok && read_buf(ctx, bgs, grads[1][3], count);
                buf all[] = {bgx, bgw, bgb, bgs};
                release_bufs(all, sizeof(all) / sizeof(all[0]));
            }
            for (int k = 0; k < 4; k++)
                if (k < 3 || skip_kind != 2)
                    same =
                        same && ok &&
                        memcmp(grads[0][k], grads[1][k],
                               sizeof(float) * (size_t)(k == 0 || k == 3 ? count : channels)) == 0;
            runs++;
            if (!same) {
                mismatches++;
                print_case("fused residual", index, &c, relu ? ", relu" : "", 0.0);
            }
            buf all[] = {bx, bw, bb, bm, bv, bs, bk, bg, bq, by[0], by[1]};
            release_bufs(all, sizeof(all) / sizeof(all[0]));
        }
        free(skip);
        free(grad_y);
        free(start);
        free(masked);
        two_ways_free(&w);
        free_case(&c);
    }
    printf("fused residual ops: %d runs, %d differ from the add apart\n", runs, mismatches);
    CHECK(runs > 0 && mismatches == 0);
}

/* bn -> relu, add -> relu, conv -> relu and dense -> relu fuse (b1, sum,
 * c3, fc0, b4); b3, read by a relu and an add, does not. b2 runs the add
 * `sum` (and its relu) inside it, b6 the add `tail` (without a relu, and
 * in eval mode too, nothing folding into b6); b3 cannot, nor can b5, whose
 * add's other input comes after it. In eval mode c1 folds into b1, c2 into
 * b2 (the add then runs apart, in place) and fc1 into b4, and each runs the
 * relu after them. */
static const char fused_text[] = "input channels=2 height=6 width=6\n"
                                 "conv filters=4 size=3 pad=1 bias=false name=c1\n"
                                 "batchnorm name=b1\n"
                                 "relu name=r1\n"
                                 "conv filters=4 size=3 pad=1 name=c2\n"
                                 "batchnorm name=b2\n"
                                 "add inputs=b2,r1 name=sum\n"
                                 "relu name=r2\n"
                                 "conv filters=4 size=3 pad=1 name=c3\n"
                                 "relu name=r3\n"
                                 "batchnorm name=b3\n"
                                 "relu name=r4\n"
                                 "add inputs=r4,b3 name=both\n"
                                 "batchnorm name=b5\n"
                                 "conv filters=4 size=1 input=both name=c4\n"
                                 "add inputs=b5,c4 name=late\n"
                                 "batchnorm name=b6\n"
                                 "add inputs=both,b6 name=tail\n"
                                 "flatten\n"
                                 "dense units=8 name=fc0\n"
                                 "relu name=r6\n"
                                 "dense units=6 name=fc1\n"
                                 "batchnorm name=b4\n"
                                 "relu name=r5\n"
                                 "dense units=3 name=fc2\n";
enum { FUSED_PAIRS = 5, FUSED_ADDS = 2 };

/* Every traced output, in the order traced, summed into a hash of its bits. */
static clcnn_status hash_trace(void *user, int layer_index, const float *values, int64_t first,
                               int64_t count) {
    uint64_t *hash = user;
    const unsigned char *bytes = (const unsigned char *)values;
    for (int64_t i = 0; i < count * 0 + (int64_t)sizeof(float) * count; i++)
        *hash = (*hash ^ bytes[i]) * 1099511628211ull;
    *hash = (*hash ^ (uint64_t)layer_index) * 1099511628211ull;
    return CLCNN_OK;
}

/* The network trained with fusion on (ctx) and off (apart, CLCNN_FUSE=0):
 * losses, every tensor, the eval-mode (folded) outputs and every traced
 * output bit for bit the same. */
static void check_fused_network(clcnn_context *ctx, clcnn_context *apart) {
    float *images = test_floats(NET_IMAGES * 72);
    int32_t *labels = allocate(NET_IMAGES, sizeof(int32_t));
    clcnn_dataset data;
    make_dataset(&data, images, labels);
    trained runs[2];
    uint64_t traces[2] = {14695981039346656037ull, 14695981039346656037ull};
    float *traced_output = test_floats(NET_IMAGES * 3);
    int pairs[2] = {0, 0}, adds[2] = {0, 0};
    int ok = 1;
    for (int f = 0; f < 2; f++) {
        clcnn_context *c = f ? ctx : apart;
        ok = ok && train_net(c, fused_text, &data, &runs[f]) &&
             CHECK_OK(c, clcnn_net_forward(runs[f].net, images, NET_IMAGES, traced_output,
                                           hash_trace, &traces[f]));
        for (int i = 0; ok && i < runs[f].net->layer_count; i++) {
            pairs[f] += runs[f].net->plan.fused_relu[i] >= 0;
            adds[f] += runs[f].net->plan.fused_add[i] >= 0;
        }
    }
    if (CHECK(ok)) {
        printf("fused network: %d pairs and %d adds fused, %d and %d with CLCNN_FUSE=0; losses "
               "%.6f -> %.6f\n",
               pairs[1], adds[1], pairs[0], adds[0], runs[1].losses[0],
               runs[1].losses[NET_EPOCHS - 1]);
        CHECK(pairs[1] == FUSED_PAIRS && pairs[0] == 0);
        CHECK(adds[1] == FUSED_ADDS && adds[0] == 0);
        CHECK(memcmp(runs[0].losses, runs[1].losses, sizeof(runs[0].losses)) == 0);
        CHECK(runs[0].tensor_floats == runs[1].tensor_floats &&
              memcmp(runs[0].tensors, runs[1].tensors,
                     sizeof(float) * (size_t)runs[0].tensor_floats) == 0);
        CHECK(memcmp(runs[0].eval_output, runs[1].eval_output, sizeof(runs[0].eval_output)) == 0);
        CHECK(traces[0] == traces[1]);
    }
    for (int f = 0; f < 2; f++) {
        clcnn_net_destroy(runs[f].net);
        free(runs[f].tensors);
    }
    free(traced_output);
    free(images);
    free(labels);
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

    for (int d = 0; d < 2; d++) {
        check_hand_cases(contexts[d]);
        check_refused(contexts[d]);
        check_tensor_table(contexts[d]);
        check_large_train_forward(contexts[d]);
    }
    check_repeatable(ctx);
    check_layer_errors(reference);
    /* Under CLCNN_TEST_QUICK (Oclgrind: scripts/oclgrind.sh) a part of the shapes. */
    const int op_shapes = test_scaled_count(OP_SHAPES), fd_shapes = test_scaled_count(FD_SHAPES);
    quick = test_quick_divisor() > 1;
    run_shapes(ctx, op_shapes, 13001);
    check_saved_statistics(ctx, op_shapes, 13501);
    run_fd_shapes(contexts, fd_shapes, 13101);
    check_eval_backward(contexts, op_shapes, 13201);
    check_state_after_pass(contexts);
    check_training(contexts);
    check_fold_op(ctx, op_shapes, 13401);
    check_folded_forward(contexts);
    check_fused_relu_ops(ctx, op_shapes, 13601);
    check_residual_ops(ctx, op_shapes, 13701);
    setenv("CLCNN_FUSE", "0", 1);
    clcnn_context *apart = test_opencl_context();
    unsetenv("CLCNN_FUSE");
    if (CHECK(apart != NULL))
        check_fused_network(ctx, apart);
    clcnn_context_destroy(apart);

    printf("time: %.1f s\n", test_seconds() - start);
    clcnn_context_destroy(ctx);
    clcnn_context_destroy(reference);
    return test_finish();
}
