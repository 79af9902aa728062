/* Dropout: the op (ops/dropout.h) on both devices, the layer through the
 * network API, and training with it.
 *
 * 1. The generator: dropout_bits is splitmix64 indexed by a counter (known
 *    answers, and a sequential splitmix64 written here for a thousand
 *    counters of several seeds); threshold and scale of a few rates.
 * 2. Masks: 2^20 elements for each of five rates, first image 3. The device
 *    and the reference agree bit for bit, and so do two runs of each. Every
 *    element is kept exactly when the generator written here keeps counter
 *    (first_image + n) * per_image + e, and a kept value is x * scale bit for
 *    bit, within 2^-23 of x / (1 - rate). The keep count, and the count of
 *    disjoint adjacent pairs both kept, lie within 5 standard deviations of
 *    their binomial means.
 * 3. Evaluation (and rate 0 in training) is the identity bit for bit, NaN,
 *    infinities, -0 and subnormals included; its backward passes the gradient
 *    on or adds it.
 * 4. Backward on random shapes, rates, seeds and first images: grad_input is
 *    grad_output * scale where the forward's output is not 0 and 0 elsewhere
 *    (the gradient of sum(y * G)), bit for bit on both devices, overwritten,
 *    accumulated into and in place.
 * 5. Another seed or first image gives another mask; a mask of first image 1
 *    is the mask of first image 0 moved by an image; a batch cut into shards
 *    (first image 0 and 3) draws the slices of the whole batch's mask.
 * 6. Finite differences of sum(dropout(x) * G), written here in double with
 *    the mask of a fixed seed, against the backward on both devices:
 *    |fd - g| / max(|fd|, 1e-2) <= 1e-4.
 * 7. The network API: two dropout layers over 300 images (two forward chunks)
 *    draw exactly the masks keyed by hash(seed, layer) and the image's place
 *    in the pass; the same seed repeats the output, another seed changes it,
 *    eval mode is the identity; a graph with dropout (fan-out: its backward
 *    adds into a gradient) passes finite differences on the reference device
 *    and the OpenCL gradients agree with the reference's within 1e-4; rate
 *    errors name the key.
 * 8. Training: two shards of a global batch (run one after the other, each
 *    hook keeping its contribution) sum to the gradient of one process with
 *    the whole batch, which needs every image's mask to follow it into its
 *    shard; and on the reference device a run resumed after one epoch ends
 *    byte for byte where two epochs straight end.
 */
#include "internal.h"
#include "ops/dropout.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double fd_step = 1e-6;
static const double fd_tolerance = 1e-4;
static const double fd_floor = 1e-2;
static const double sigma_bound = 5.0;

enum { MASK_IMAGES = 16, MASK_PER_IMAGE = 65536 };
enum { BACKWARD_SHAPES = 40, FD_SHAPES = 20 };

static const char fashion_dir[] = "/usr/share/datasets/fashion-mnist";

/* ---- arrays, buffers ----------------------------------------------------------------------- */

/* Values of magnitude 0.25 to 2 and either sign: never 0, so a dropped element
 * (0 in the output) tells itself apart from a kept one. */
static void fill_nonzero(test_rng *rng, float *values, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const float magnitude = test_rand_float(rng, 0.25f, 2.0f);
        values[i] = test_rand_int(rng, 0, 1) ? magnitude : -magnitude;
    }
}

static uint64_t random_u64(test_rng *rng) {
    return (uint64_t)test_rand(rng) << 32 | test_rand(rng);
}

/* On the reference device an op works on the arrays themselves; on OpenCL on
 * buffers uploaded from them and read back into them afterwards. */
static int make_buf(clcnn_context *ctx, float *values, int64_t count, buf *out) {
    out->host = NULL;
    out->mem = NULL;
    if (!context_is_opencl(ctx)) {
        out->host = values;
        return 1;
    }
    const size_t bytes = (size_t)count * sizeof(float);
    return CHECK_OK(ctx, buffer_create(ctx, bytes, &out->mem)) &&
           CHECK_OK(ctx, buffer_write(ctx, out->mem, 0, bytes, values));
}

static int read_buf(clcnn_context *ctx, buf b, float *values, int64_t count) {
    if (!context_is_opencl(ctx))
        return 1;
    return CHECK_OK(ctx, buffer_read(ctx, b.mem, 0, (size_t)count * sizeof(float), values));
}

static void release_buf(buf *b) {
    buffer_release(&b->mem);
    b->host = NULL;
}

static int run_forward(clcnn_context *ctx, const dropout_params *p, float *input, float *output) {
    buf in = {0}, out = {0};
    int ok = make_buf(ctx, input, p->count, &in) && make_buf(ctx, output, p->count, &out) &&
             CHECK_OK(ctx, op_dropout_forward(ctx, p, in, out)) &&
             read_buf(ctx, out, output, p->count);
    release_buf(&in);
    release_buf(&out);
    return ok;
}

/* in_place: grad_input is grad_output's storage (grad_output is then overwritten). */
static int run_backward(clcnn_context *ctx, const dropout_params *p, float *grad_output,
                        float *grad_input, int accumulate, int in_place) {
    buf g = {0}, grad = {0};
    int ok = make_buf(ctx, grad_output, p->count, &g);
    if (in_place)
        grad = g;
    else
        ok = ok && make_buf(ctx, grad_input, p->count, &grad);
    ok = ok && CHECK_OK(ctx, op_dropout_backward(ctx, p, g, grad, accumulate)) &&
         read_buf(ctx, grad, in_place ? grad_output : grad_input, p->count);
    release_buf(&g);
    if (!in_place)
        release_buf(&grad);
    return ok;
}

static const char *device_name(clcnn_context *ctx) {
    return context_is_opencl(ctx) ? "OpenCL" : "reference";
}

/* ---- the generator, written here -------------------------------------------------------- */

/* splitmix64 as Vigna publishes it: advance the state, mix it. */
static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Whether counter is kept: splitmix64's output number counter + 1 from seed,
 * its top 32 bits against floor(rate * 2^32). */
static int expected_keep(uint64_t seed, uint64_t counter, double rate) {
    uint64_t state = seed + counter * 0x9e3779b97f4a7c15ULL;
    const uint64_t bits = splitmix64_next(&state);
    return (double)(bits >> 32) >= floor(ldexp(rate, 32));
}

static void check_generator(void) {
    /* splitmix64's published outputs: 0xe220a8397b1dcdaf first from 0, and
     * from 1234567 the sequence below. */
    static const uint64_t from_1234567[5] = {6457827717110365317ULL, 3203168211198807973ULL,
                                             9817491932198370423ULL, 4593380528125082431ULL,
                                             16408922859458223821ULL};
    CHECK(dropout_bits(0, 0) == 0xe220a8397b1dcdafULL);
    for (int i = 0; i < 5; i++)
        CHECK(dropout_bits(1234567, (uint64_t)i) == from_1234567[i]);
    static const uint64_t seeds[] = {0, 1, 0x123456789abcdef0ULL, ~0ULL};
    int mismatches = 0;
    for (int s = 0; s < 4; s++) {
        uint64_t state = seeds[s];
        for (uint64_t counter = 0; counter < 1000; counter++)
            mismatches += dropout_bits(seeds[s], counter) != splitmix64_next(&state);
    }
    CHECK(mismatches == 0);
    CHECK(dropout_threshold(0.0f) == 0);
    CHECK(dropout_threshold(0.25f) == 1u << 30);
    CHECK(dropout_threshold(0.5f) == 1u << 31);
    CHECK(dropout_threshold(nextafterf(1.0f, 0.0f)) == 0xffffff00u);
    CHECK(dropout_scale(0.0f) == 1.0f && dropout_scale(0.5f) == 2.0f);
    CHECK(dropout_scale(0.25f) == (float)(4.0 / 3.0));
    printf("generator: splitmix64 known answers, 4000 counters as the sequential generator, "
           "%d mismatches\n",
           mismatches);
}

/* ---- 2. masks -------------------------------------------------------------------------- */

/* |k - n q| in standard deviations of a binomial(n, q) count. */
static double binomial_sigmas(int64_t k, int64_t n, double q) {
    return fabs((double)k - (double)n * q) / sqrt((double)n * q * (1.0 - q));
}

static void check_masks(clcnn_context *reference, clcnn_context *opencl) {
    static const float rates[] = {0.1f, 0.25f, 0.5f, 0.75f, 0.9f};
    test_rng rng = {31001};
    dropout_params p = {.count = (int64_t)MASK_IMAGES * MASK_PER_IMAGE,
                        .per_image = MASK_PER_IMAGE,
                        .first_image = 3,
                        .training = 1};
    float *input = test_floats(p.count);
    float *ref = test_floats(p.count), *ref_again = test_floats(p.count);
    float *dev = test_floats(p.count), *dev_again = test_floats(p.count);
    fill_nonzero(&rng, input, p.count);
    for (int r = 0; r < 5; r++) {
        p.rate = rates[r];
        p.seed = random_u64(&rng);
        test_fill_nan(ref, p.count);
        test_fill_nan(ref_again, p.count);
        test_fill_nan(dev, p.count);
        test_fill_nan(dev_again, p.count);
        const int ran = run_forward(reference, &p, input, ref) &&
                        run_forward(reference, &p, input, ref_again) &&
                        run_forward(opencl, &p, input, dev) &&
                        run_forward(opencl, &p, input, dev_again);
        if (!CHECK(ran))
            continue;
        CHECK(test_bitwise_equal(dev, ref, p.count));
        CHECK(test_bitwise_equal(ref_again, ref, p.count));
        CHECK(test_bitwise_equal(dev_again, dev, p.count));

        const float scale = dropout_scale(p.rate);
        const double exact_scale = 1.0 / (1.0 - (double)p.rate);
        int64_t kept = 0, both_kept = 0, wrong_mask = 0, wrong_value = 0;
        double worst_relative = 0.0;
        for (int64_t n = 0; n < MASK_IMAGES; n++) {
            for (int64_t e = 0; e < MASK_PER_IMAGE; e++) {
                const int64_t i = n * MASK_PER_IMAGE + e;
                const uint64_t counter = (uint64_t)((p.first_image + n) * p.per_image + e);
                const int keep = expected_keep(p.seed, counter, p.rate);
                wrong_mask += keep != (ref[i] != 0.0f);
                if (!keep)
                    continue;
                kept++;
                wrong_value += ref[i] != input[i] * scale;
                const double exact = (double)input[i] * exact_scale;
                worst_relative = fmax(worst_relative, fabs(ref[i] - exact) / fabs(exact));
                if (e % 2 == 1 && ref[i - 1] != 0.0f)
                    both_kept++;
            }
        }
        const double keep_sigmas = binomial_sigmas(kept, p.count, 1.0 - p.rate);
        const double pair_q = (1.0 - p.rate) * (1.0 - p.rate);
        const double pair_sigmas = binomial_sigmas(both_kept, p.count / 2, pair_q);
        CHECK(wrong_mask == 0);
        CHECK(wrong_value == 0);
        CHECK(worst_relative <= ldexp(1.0, -23));
        CHECK(keep_sigmas <= sigma_bound);
        CHECK(pair_sigmas <= sigma_bound);
        printf("rate %.2f: %lld elements, kept %.6f (expected %.2f, %.2f sigma), pairs kept "
               "%.6f (%.2f sigma), kept value vs x/(1-rate) %.3g, device == reference %s\n",
               p.rate, (long long)p.count, (double)kept / (double)p.count, 1.0 - p.rate,
               keep_sigmas, (double)both_kept / (double)(p.count / 2), pair_sigmas, worst_relative,
               test_bitwise_equal(dev, ref, p.count) ? "bit for bit" : "NO");
    }
    free(input);
    free(ref);
    free(ref_again);
    free(dev);
    free(dev_again);
}

/* ---- 3. evaluation and rate 0 are the identity ----------------------------------------------- */

static void check_identity(clcnn_context *const *contexts) {
    enum { N = 1000 };
    test_rng rng = {31002};
    float input[N], output[N], grad_output[N], grad[N], accumulated[N], expected[N];
    test_fill_uniform(&rng, input, N, -3.0f, 3.0f);
    const float specials[] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-40f, -1e-45f, 3.4e38f};
    memcpy(input, specials, sizeof(specials));
    test_fill_uniform(&rng, grad_output, N, -2.0f, 2.0f);
    test_fill_signed(&rng, accumulated, N);
    for (int i = 0; i < N; i++)
        expected[i] = accumulated[i] + grad_output[i];
    /* eval with a rate, and training with rate 0 */
    const dropout_params modes[2] = {
        {.count = N, .per_image = 100, .seed = 5, .rate = 0.5f, .training = 0},
        {.count = N, .per_image = 100, .seed = 5, .rate = 0.0f, .training = 1},
    };
    for (int d = 0; d < 2; d++) {
        for (int m = 0; m < 2; m++) {
            test_fill_nan(output, N);
            test_fill_nan(grad, N);
            float sum[N];
            memcpy(sum, accumulated, sizeof(sum));
            const int ok = run_forward(contexts[d], &modes[m], input, output) &&
                           run_backward(contexts[d], &modes[m], grad_output, grad, 0, 0) &&
                           run_backward(contexts[d], &modes[m], grad_output, sum, 1, 0);
            if (!CHECK(ok && test_bitwise_equal(output, input, N) &&
                       test_bitwise_equal(grad, grad_output, N) &&
                       test_bitwise_equal(sum, expected, N)))
                fprintf(stderr, "%s: %s is not the identity\n", device_name(contexts[d]),
                        m == 0 ? "eval mode" : "rate 0");
        }
    }
    printf("eval mode and rate 0: the identity, forward and backward, on both devices\n");
}

/* ---- 4. backward against the forward's mask ------------------------------------------------- */

static void check_backward(clcnn_context *const *contexts) {
    test_rng rng = {31003};
    int failures = 0, cases = 0;
    for (int index = 0; index < BACKWARD_SHAPES; index++) {
        dropout_params p = {.training = 1};
        const int batch = test_rand_int(&rng, 1, 8);
        p.per_image = index == 0 ? 1 : test_rand_int(&rng, 1, 5000);
        p.count = batch * p.per_image;
        p.first_image = index % 3 == 0 ? 0 : test_rand_int(&rng, 0, 1000);
        p.seed = random_u64(&rng);
        p.rate = index % 10 == 9 ? 0.0f : test_rand_float(&rng, 0.0f, 0.95f);
        float *input = test_floats(p.count), *output = test_floats(p.count);
        float *grad_output = test_floats(p.count), *start = test_floats(p.count);
        float *expected = test_floats(p.count), *expected_sum = test_floats(p.count);
        float *grad = test_floats(p.count);
        fill_nonzero(&rng, input, p.count);
        test_fill_uniform(&rng, grad_output, p.count, -2.0f, 2.0f);
        test_fill_signed(&rng, start, p.count);
        const float scale = dropout_scale(p.rate);
        for (int d = 0; d < 2; d++) {
            clcnn_context *ctx = contexts[d];
            test_fill_nan(output, p.count);
            if (!CHECK(run_forward(ctx, &p, input, output)))
                continue;
            /* The gradient of sum(y * G) with y = x * mask * scale: G * (mask * scale),
             * a product also where dropped (-0 for a negative G), as PyTorch's. */
            for (int64_t i = 0; i < p.count; i++) {
                expected[i] = grad_output[i] * (output[i] != 0.0f ? scale : 0.0f);
                expected_sum[i] = start[i] + expected[i];
            }
            for (int mode = 0; mode < 3; mode++) {
                /* 0: overwritten, 1: accumulated into, 2: in place */
                if (mode == 0)
                    test_fill_nan(grad, p.count);
                else if (mode == 1)
                    memcpy(grad, start, (size_t)p.count * sizeof(float));
                else
                    memcpy(grad, grad_output, (size_t)p.count * sizeof(float));
                const int ok = mode == 2 ? run_backward(ctx, &p, grad, NULL, 0, 1)
                                         : run_backward(ctx, &p, grad_output, grad, mode, 0);
                const float *want = mode == 1 ? expected_sum : expected;
                cases++;
                if (!CHECK(ok && test_bitwise_equal(grad, want, p.count))) {
                    failures++;
                    fprintf(stderr,
                            "backward case %d on the %s device (%s): batch %d, %lld per image, "
                            "first image %lld, rate %.9g\n",
                            index, device_name(ctx),
                            mode == 0   ? "overwritten"
                            : mode == 1 ? "accumulated"
                                        : "in place",
                            batch, (long long)p.per_image, (long long)p.first_image, p.rate);
                }
            }
        }
        free(input);
        free(output);
        free(grad_output);
        free(start);
        free(expected);
        free(expected_sum);
        free(grad);
    }
    printf("backward vs the forward's mask: %d cases (overwritten, accumulated, in place), %d "
           "wrong\n",
           cases, failures);
}

/* ---- 5. seeds, first images, shards ------------------------------------------------------ */

static double fraction_differing(const float *a, const float *b, int64_t count) {
    int64_t differing = 0;
    for (int64_t i = 0; i < count; i++)
        differing += (a[i] != 0.0f) != (b[i] != 0.0f);
    return (double)differing / (double)count;
}

static void check_seeds_and_shards(clcnn_context *const *contexts) {
    enum { IMAGES = 8, PER_IMAGE = 1000, COUNT = IMAGES * PER_IMAGE };
    test_rng rng = {31004};
    static float input[COUNT], whole[COUNT], other_seed[COUNT], moved[COUNT], sharded[COUNT];
    fill_nonzero(&rng, input, COUNT);
    for (int d = 0; d < 2; d++) {
        clcnn_context *ctx = contexts[d];
        const dropout_params p = {.count = COUNT,
                                  .per_image = PER_IMAGE,
                                  .first_image = 0,
                                  .seed = 0x5eed,
                                  .rate = 0.5f,
                                  .training = 1};
        dropout_params q = p;
        q.seed = p.seed + 1;
        dropout_params r = p;
        r.first_image = 1;
        /* Images 0..2 and 3..7 of the same batch, as two ranks would take them. */
        dropout_params shard0 = p, shard1 = p;
        shard0.count = 3 * PER_IMAGE;
        shard1.count = 5 * PER_IMAGE;
        shard1.first_image = 3;
        test_fill_nan(sharded, COUNT);
        if (!CHECK(run_forward(ctx, &p, input, whole) && run_forward(ctx, &q, input, other_seed) &&
                   run_forward(ctx, &r, input, moved) &&
                   run_forward(ctx, &shard0, input, sharded) &&
                   run_forward(ctx, &shard1, input + 3 * PER_IMAGE, sharded + 3 * PER_IMAGE)))
            continue;
        const double seed_change = fraction_differing(whole, other_seed, COUNT);
        const double image_change = fraction_differing(whole, moved, COUNT);
        /* Independent masks of rate 1/2 differ in half the elements: 4000 of 8000,
         * standard deviation 45. */
        CHECK(fabs(seed_change - 0.5) < 0.03);
        CHECK(fabs(image_change - 0.5) < 0.03);
        /* Image n of first image 1 is image n + 1 of first image 0 (the input
         * moved along with it). */
        int64_t shift_mismatches = 0;
        for (int64_t i = 0; i < (IMAGES - 1) * PER_IMAGE; i++)
            shift_mismatches += (moved[i] != 0.0f) != (whole[i + PER_IMAGE] != 0.0f);
        CHECK(shift_mismatches == 0);
        CHECK(test_bitwise_equal(sharded, whole, COUNT));
        printf("%s: another seed changes %.3f of the mask, another first image %.3f; shifted "
               "mask %lld mismatches; shards == whole batch %s\n",
               device_name(ctx), seed_change, image_change, (long long)shift_mismatches,
               test_bitwise_equal(sharded, whole, COUNT) ? "bit for bit" : "NO");
    }
}

/* ---- 6. finite differences ---------------------------------------------------------------- */

/* sum(dropout(x) * G) in double, the mask from the generator written here. */
static double fd_loss(const dropout_params *p, const double *x, const double *g) {
    const double scale = 1.0 / (1.0 - (double)p->rate);
    double loss = 0.0;
    for (int64_t i = 0; i < p->count; i++) {
        const uint64_t counter = (uint64_t)(p->first_image * p->per_image + i);
        if (expected_keep(p->seed, counter, p->rate))
            loss += x[i] * scale * g[i];
    }
    return loss;
}

static void check_finite_differences(clcnn_context *const *contexts) {
    test_rng rng = {31005};
    double worst[2] = {0.0, 0.0};
    int failures = 0;
    for (int index = 0; index < FD_SHAPES; index++) {
        dropout_params p = {.training = 1};
        p.per_image = test_rand_int(&rng, 1, 50);
        p.count = test_rand_int(&rng, 1, 3) * p.per_image;
        p.first_image = test_rand_int(&rng, 0, 20);
        p.seed = random_u64(&rng);
        p.rate = test_rand_float(&rng, 0.05f, 0.9f);
        float *g = test_floats(p.count), *grad = test_floats(p.count);
        double *x = malloc(sizeof(double) * (size_t)p.count);
        double *gd = malloc(sizeof(double) * (size_t)p.count);
        double *fd = malloc(sizeof(double) * (size_t)p.count);
        test_fill_uniform(&rng, g, p.count, -2.0f, 2.0f);
        for (int64_t i = 0; i < p.count; i++) {
            x[i] = test_rand_float(&rng, -1.0f, 1.0f);
            gd[i] = g[i];
        }
        for (int64_t i = 0; i < p.count; i++) {
            const double saved = x[i];
            x[i] = saved + fd_step;
            const double up = fd_loss(&p, x, gd);
            x[i] = saved - fd_step;
            const double down = fd_loss(&p, x, gd);
            x[i] = saved;
            fd[i] = (up - down) / (2.0 * fd_step);
        }
        for (int d = 0; d < 2; d++) {
            test_fill_nan(grad, p.count);
            double error = INFINITY;
            if (run_backward(contexts[d], &p, g, grad, 0, 0)) {
                error = 0.0;
                for (int64_t i = 0; i < p.count; i++)
                    error = fmax(error, fabs(fd[i] - grad[i]) / fmax(fabs(fd[i]), fd_floor));
            }
            worst[d] = fmax(worst[d], error);
            if (!CHECK(error <= fd_tolerance)) {
                failures++;
                fprintf(stderr, "fd case %d on the %s device: error %.3g\n", index,
                        device_name(contexts[d]), error);
            }
        }
        free(g);
        free(grad);
        free(x);
        free(gd);
        free(fd);
    }
    printf("finite differences: %d cases, worst error reference %.3g, OpenCL %.3g\n", FD_SHAPES,
           worst[0], worst[1]);
}

/* ---- 7. the network API ----------------------------------------------------------------- */

/* Layer outputs collected from a forward pass's trace. */
typedef struct trace_store {
    int64_t per_image;
    float *layer[3]; /* index 1 and 2 */
} trace_store;

static clcnn_status store_trace(void *user, int layer_index, const float *values, int64_t first,
                                int64_t count) {
    trace_store *t = user;
    if (layer_index >= 1 && layer_index <= 2)
        memcpy(t->layer[layer_index] + first * t->per_image, values,
               sizeof(float) * (size_t)(count * t->per_image));
    return CLCNN_OK;
}

/* out = dropout(in) as layer `index` of a pass with random seed `seed` draws
 * it: key hash(seed, index), counter the element's place in the pass. */
static void expected_layer(uint64_t seed, int index, float rate, const float *in, float *out,
                           int64_t count) {
    const uint64_t key = hash_bytes(seed, &index, sizeof(index));
    const float scale = dropout_scale(rate);
    for (int64_t i = 0; i < count; i++)
        out[i] = in[i] * (expected_keep(key, (uint64_t)i, rate) ? scale : 0.0f); /* x * 0 dropped */
}

static void check_network_masks(clcnn_context *ctx) {
    enum { BATCH = 300, PER_IMAGE = 30, COUNT = BATCH * PER_IMAGE };
    const char text[] = "input channels=2 height=3 width=5\n"
                        "dropout rate=0.25\n"
                        "dropout\n";
    static float input[COUNT], first[COUNT], second[COUNT], expected1[COUNT], expected2[COUNT];
    static float output[COUNT], again[COUNT], reseeded[COUNT], eval[COUNT];
    test_rng rng = {31006};
    fill_nonzero(&rng, input, COUNT);
    const uint64_t seed = 0xd0d0;
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "dropout.net", &net)))
        return;
    /* The default rate. */
    CHECK(net->layers[1].rate == 0.25f && net->layers[2].rate == 0.5f);
    trace_store t = {PER_IMAGE, {NULL, first, second}};
    const int ok = CHECK_OK(ctx, clcnn_net_set_mode(net, CLCNN_MODE_TRAIN)) &&
                   CHECK_OK(ctx, clcnn_net_set_random_seed(net, seed)) &&
                   CHECK_OK(ctx, clcnn_net_forward(net, input, BATCH, output, store_trace, &t)) &&
                   CHECK_OK(ctx, clcnn_net_forward(net, input, BATCH, again, NULL, NULL)) &&
                   CHECK_OK(ctx, clcnn_net_set_random_seed(net, seed + 1)) &&
                   CHECK_OK(ctx, clcnn_net_forward(net, input, BATCH, reseeded, NULL, NULL)) &&
                   CHECK_OK(ctx, clcnn_net_set_mode(net, CLCNN_MODE_EVAL)) &&
                   CHECK_OK(ctx, clcnn_net_forward(net, input, BATCH, eval, NULL, NULL));
    if (ok) {
        expected_layer(seed, 1, 0.25f, input, expected1, COUNT);
        expected_layer(seed, 2, 0.5f, expected1, expected2, COUNT);
        CHECK(test_bitwise_equal(first, expected1, COUNT));
        CHECK(test_bitwise_equal(second, expected2, COUNT));
        CHECK(test_bitwise_equal(output, expected2, COUNT));
        CHECK(test_bitwise_equal(again, output, COUNT));
        CHECK(!test_bitwise_equal(reseeded, output, COUNT));
        CHECK(test_bitwise_equal(eval, input, COUNT));
        /* Chunks of 256 images: the second chunk draws images 256.., not 0.. again. */
        printf("%s network: %d images in train mode draw hash(seed, layer)'s masks: layer 1 %s, "
               "layer 2 %s; same seed %s, another seed %s, eval %s\n",
               device_name(ctx), BATCH, test_bitwise_equal(first, expected1, COUNT) ? "yes" : "NO",
               test_bitwise_equal(second, expected2, COUNT) ? "yes" : "NO",
               test_bitwise_equal(again, output, COUNT) ? "same output" : "DIFFERENT",
               test_bitwise_equal(reseeded, output, COUNT) ? "SAME" : "another output",
               test_bitwise_equal(eval, input, COUNT) ? "the identity" : "NOT the identity");
    }
    clcnn_net_destroy(net);
}

/* A graph whose dropout fans out: add reads the dropout and its input, so
 * the dropout's backward adds into the gradient add wrote. */
static const char fd_net[] = "input channels=2 height=4 width=4\n"
                             "conv filters=3 size=3 pad=1\n"
                             "tanh name=t\n"
                             "dropout rate=0.4 name=d\n"
                             "add inputs=d,t\n"
                             "flatten\n"
                             "dense units=3\n";

static double net_loss(clcnn_context *ctx, clcnn_net *net, const float *input, int batch,
                       const float *targets) {
    double loss = NAN;
    CHECK_OK(ctx, clcnn_net_backward(net, input, batch, NULL, targets, &loss));
    return loss;
}

/* Every parameter's gradient, then the input's, after a backward pass. */
static int64_t read_gradients(clcnn_context *ctx, clcnn_net *net, int64_t input_count, float *out) {
    int64_t used = 0;
    for (int t = 0; t < clcnn_net_tensor_count(net); t++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, t, &info);
        CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, info.name, out + used, info.count));
        used += info.count;
    }
    CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, "input", out + used, input_count));
    return used + input_count;
}

static clcnn_net *make_fd_net(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, fd_net, "fd.net", &net)))
        return NULL;
    if (!CHECK_OK(ctx, clcnn_net_init_weights(net, 21)) ||
        !CHECK_OK(ctx, clcnn_net_set_loss(net, CLCNN_LOSS_MSE)) ||
        !CHECK_OK(ctx, clcnn_net_set_random_seed(net, 0xfeed))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

static void check_network_gradients(clcnn_context *reference, clcnn_context *opencl) {
    enum { BATCH = 3, MAX_GRADIENTS = 4096 };
    const double h = 1e-2;
    test_rng rng = {31007};
    clcnn_net *net = make_fd_net(reference), *device_net = make_fd_net(opencl);
    if (!net || !device_net) {
        clcnn_net_destroy(net);
        clcnn_net_destroy(device_net);
        return;
    }
    const int64_t in_count = BATCH * clcnn_net_input_size(net);
    const int64_t out_count = BATCH * clcnn_net_output_size(net);
    float input[BATCH * 32], targets[BATCH * 3];
    static float grads[MAX_GRADIENTS], device_grads[MAX_GRADIENTS];
    test_fill_signed(&rng, input, in_count);
    test_fill_signed(&rng, targets, out_count);
    const double loss = net_loss(reference, net, input, BATCH, targets);
    const int64_t count = read_gradients(reference, net, in_count, grads);
    const double device_loss = net_loss(opencl, device_net, input, BATCH, targets);
    read_gradients(opencl, device_net, in_count, device_grads);
    const double device_error = max_relative_error(device_grads, grads, count, 1.0);
    CHECK(fabs(device_loss - loss) <= 1e-5 * fabs(loss));
    CHECK(device_error <= 1e-4);

    /* Central differences of the loss (the same masks every pass: one seed) for
     * every input and a few values of every tensor. */
    int checked = 0, failed = 0;
    double worst = 0.0;
    for (int t = -1; t < clcnn_net_tensor_count(net); t++) {
        clcnn_tensor_info info = {0};
        int64_t offset = 0, size = in_count;
        if (t >= 0) {
            clcnn_net_tensor_info(net, t, &info);
            for (int k = 0; k < t; k++) {
                clcnn_tensor_info before;
                clcnn_net_tensor_info(net, k, &before);
                offset += before.count;
            }
            size = info.count;
        } else {
            for (int k = 0; k < clcnn_net_tensor_count(net); k++) {
                clcnn_tensor_info before;
                clcnn_net_tensor_info(net, k, &before);
                offset += before.count;
            }
        }
        float *values = t >= 0 ? test_floats(size) : input;
        if (t >= 0)
            CHECK_OK(reference, clcnn_net_get_tensor(net, info.name, values, size));
        const int samples = t >= 0 ? 4 : (int)size;
        for (int s = 0; s < samples; s++) {
            const int64_t i = t >= 0 ? test_rand_int(&rng, 0, (int)size - 1) : s;
            const float keep = values[i];
            double sides[2];
            for (int side = 0; side < 2; side++) {
                values[i] = (float)(keep + (side ? -h : h));
                if (t >= 0)
                    clcnn_net_set_tensor(net, info.name, values, size);
                sides[side] = net_loss(reference, net, input, BATCH, targets);
            }
            values[i] = keep;
            if (t >= 0)
                clcnn_net_set_tensor(net, info.name, values, size);
            const double fd = (sides[0] - sides[1]) / (2 * h);
            const double g = grads[offset + i];
            const double error = fabs(fd - g) / fmax(fabs(fd), 0.1);
            worst = fmax(worst, error);
            checked++;
            if (error > 2e-3) {
                failed++;
                fprintf(stderr, "network fd: %s[%lld]: fd %.6g backward %.6g\n",
                        t >= 0 ? info.name : "input", (long long)i, fd, g);
            }
        }
        if (t >= 0)
            free(values);
    }
    CHECK(failed == 0 && checked >= in_count);
    printf("graph with dropout (fan-out): OpenCL vs reference gradients %.3g; finite differences "
           "on %d values, worst %.3g of max(|fd|, 0.1)\n",
           device_error, checked, worst);
    clcnn_net_destroy(net);
    clcnn_net_destroy(device_net);
}

static void check_rate_errors(clcnn_context *ctx) {
    static const char *const bad[] = {"1", "-0.1", "1.5", "0.99999999", "abc", "nan"};
    char first_error[512] = "";
    for (int i = 0; i < 6; i++) {
        char text[128];
        snprintf(text, sizeof(text), "input channels=1 height=2 width=2\ndropout rate=%s\n",
                 bad[i]);
        clcnn_net *net = NULL;
        const clcnn_status status = clcnn_net_from_string(ctx, text, "rates.net", &net);
        const char *error = clcnn_last_error(ctx);
        if (!CHECK(status == CLCNN_ERROR_PARSE && strstr(error, "rates.net:2: dropout: 'rate'")))
            fprintf(stderr, "rate=%s: %s: %s\n", bad[i], clcnn_status_name(status), error);
        if (i == 0)
            snprintf(first_error, sizeof(first_error), "%s", error);
        clcnn_net_destroy(net);
    }
    clcnn_net *net = NULL;
    CHECK_OK(ctx, clcnn_net_from_string(ctx, "input channels=1 height=2 width=2\ndropout rate=0\n",
                                        "rates.net", &net));
    clcnn_net_destroy(net);
    printf("rate errors, e.g. %s\n", first_error);
}

/* ---- 8. training -------------------------------------------------------------------------- */

static const char train_net[] = "input channels=1 height=28 width=28\n"
                                "conv filters=4 size=5 stride=2\n"
                                "relu\n"
                                "dropout rate=0.3\n"
                                "maxpool size=2\n"
                                "flatten\n"
                                "dense units=16\n"
                                "relu\n"
                                "dropout rate=0.5\n"
                                "dense units=10\n"
                                "softmax\n";

static clcnn_train_config train_config(int epochs, int batch) {
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.epochs = epochs;
    config.batch_size = batch;
    config.optimizer = CLCNN_ADAM;
    config.learning_rate = 0.002;
    config.seed = 17;
    return config;
}

/* A hook that keeps the first step's contribution and leaves it as it is. */
typedef struct kept_gradient {
    float *values;
    int64_t count;
} kept_gradient;

static clcnn_status keep_gradient(void *user, float *gradients, int64_t count,
                                  clcnn_gradient_step *step) {
    kept_gradient *k = user;
    if (step->step == 1) {
        k->count = count;
        k->values = malloc(sizeof(float) * (size_t)count);
        if (!k->values)
            return CLCNN_ERROR_OUT_OF_MEMORY;
        memcpy(k->values, gradients, sizeof(float) * (size_t)count);
    }
    return CLCNN_OK;
}

/* The first step's gradient of rank `rank` of world_size on data (one global batch). */
static int shard_gradient(clcnn_device_kind kind, const clcnn_dataset *data, int rank,
                          int world_size, kept_gradient *out) {
    clcnn_context *ctx = test_context(kind);
    if (!CHECK(ctx != NULL))
        return 0;
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    const clcnn_train_config config = train_config(1, (int)data->count / world_size);
    const int ok = CHECK_OK(ctx, clcnn_net_from_string(ctx, train_net, "train.net", &net)) &&
                   CHECK_OK(ctx, clcnn_net_init_weights(net, config.seed)) &&
                   CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer)) &&
                   CHECK_OK(ctx, clcnn_trainer_set_shard(trainer, rank, world_size)) &&
                   CHECK_OK(ctx, clcnn_trainer_set_gradient_hook(trainer, keep_gradient, out)) &&
                   CHECK_OK(ctx, clcnn_trainer_epoch(trainer, data, NULL, NULL, NULL, NULL)) &&
                   CHECK(out->values != NULL);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return ok;
}

static void check_sharded_training(clcnn_device_kind kind, const clcnn_dataset *images) {
    const clcnn_dataset data = clcnn_dataset_head(images, 8);
    kept_gradient whole = {0}, shards[2] = {{0}, {0}};
    if (shard_gradient(kind, &data, 0, 1, &whole) &&
        shard_gradient(kind, &data, 0, 2, &shards[0]) &&
        shard_gradient(kind, &data, 1, 2, &shards[1]) &&
        CHECK(shards[0].count == whole.count && shards[1].count == whole.count)) {
        float *sum = test_floats(whole.count);
        for (int64_t i = 0; i < whole.count; i++)
            sum[i] = shards[0].values[i] + shards[1].values[i];
        const double error = max_relative_error(sum, whole.values, whole.count, 1e-3);
        CHECK(error <= 1e-4);
        printf("%s: two shards' gradients sum to the whole batch's within %.3g\n",
               kind == CLCNN_DEVICE_OPENCL ? "OpenCL" : "reference", error);
        free(sum);
    }
    free(whole.values);
    free(shards[0].values);
    free(shards[1].values);
}

static unsigned char *read_whole_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)*size + 1);
    if (bytes && fread(bytes, 1, (size_t)*size, f) != (size_t)*size) {
        free(bytes);
        bytes = NULL;
    }
    fclose(f);
    return bytes;
}

static int same_file(const char *a, const char *b) {
    long size_a = -1, size_b = -2;
    unsigned char *x = read_whole_file(a, &size_a), *y = read_whole_file(b, &size_b);
    const int same = x && y && size_a == size_b && memcmp(x, y, (size_t)size_a) == 0;
    free(x);
    free(y);
    return same;
}

/* A fresh run of `epochs` epochs saved to path, or with resume_from, that
 * checkpoint continued to `epochs` epochs. */
static int train_to(clcnn_device_kind kind, const clcnn_dataset *data, const char *resume_from,
                    int epochs, const char *path) {
    clcnn_context *ctx = test_context(kind);
    if (!CHECK(ctx != NULL))
        return 0;
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int ok;
    if (resume_from) {
        ok = CHECK_OK(ctx, clcnn_model_load(ctx, resume_from, &net, &trainer, &info)) &&
             CHECK(trainer != NULL) && CHECK_OK(ctx, clcnn_trainer_set_epochs(trainer, epochs));
    } else {
        const clcnn_train_config config = train_config(epochs, 32);
        ok = CHECK_OK(ctx, clcnn_net_from_string(ctx, train_net, "train.net", &net)) &&
             CHECK_OK(ctx, clcnn_net_init_weights(net, config.seed)) &&
             CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    }
    while (ok && clcnn_trainer_epochs_done(trainer) < epochs)
        ok = CHECK_OK(ctx, clcnn_trainer_epoch(trainer, data, NULL, NULL, NULL, NULL)) &&
             CHECK_OK(ctx, clcnn_model_save(net, trainer, &info, path));
    clcnn_model_info_free(&info);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return ok;
}

static void check_resume(const clcnn_dataset *images) {
    const clcnn_dataset data = clcnn_dataset_head(images, 200);
    char straight[1200], first[1200], resumed[1200];
    snprintf(straight, sizeof(straight), "%s", test_path("straight.model"));
    snprintf(first, sizeof(first), "%s", test_path("first.model"));
    snprintf(resumed, sizeof(resumed), "%s", test_path("resumed.model"));
    const int ok = train_to(CLCNN_DEVICE_REFERENCE, &data, NULL, 2, straight) &&
                   train_to(CLCNN_DEVICE_REFERENCE, &data, NULL, 1, first) &&
                   train_to(CLCNN_DEVICE_REFERENCE, &data, first, 2, resumed);
    const int same = ok && same_file(straight, resumed);
    printf("reference resume with dropout: 2 epochs straight %s 1 epoch + resume + 1 epoch\n",
           same ? "==" : "!=");
    CHECK(same);
    /* And the check can fail: one epoch is not two. */
    CHECK(ok && !same_file(straight, first));
}

int main(void) {
    clcnn_context *opencl = test_opencl_context();
    clcnn_context *reference = test_context(CLCNN_DEVICE_REFERENCE);
    if (!CHECK(opencl != NULL && reference != NULL)) {
        clcnn_context_destroy(opencl);
        clcnn_context_destroy(reference);
        return test_finish();
    }
    printf("device: %s\n", clcnn_device_name(opencl));
    clcnn_context *const contexts[2] = {reference, opencl};
    const double start = clock_seconds();

    check_generator();
    check_masks(reference, opencl);
    check_identity(contexts);
    check_backward(contexts);
    check_seeds_and_shards(contexts);
    check_finite_differences(contexts);
    check_network_masks(reference);
    check_network_masks(opencl);
    check_network_gradients(reference, opencl);
    check_rate_errors(reference);

    clcnn_dataset images = {0};
    if (test_load_training_images(reference, fashion_dir, 200, &images)) {
        check_sharded_training(CLCNN_DEVICE_REFERENCE, &images);
        check_sharded_training(CLCNN_DEVICE_OPENCL, &images);
        check_resume(&images);
    }
    clcnn_dataset_free(&images);

    printf("time: %.1f s\n", clock_seconds() - start);
    clcnn_context_destroy(opencl);
    clcnn_context_destroy(reference);
    return test_finish();
}
