/* Synchronised batchnorm (host/ops/batchnorm.h, "synchronised across
 * ranks"): the statistics of several ranks' shares of a batch combined as
 * if one process had the whole batch.
 *
 * 1. The combine formulas against float64 of the whole batch: a channel of
 *    63 values with mean 1e4 and spread 0.1 (mean / std = 1e5, where the
 *    sum-of-squares formula loses most digits) cut into five ranks' shares
 *    of 5, 0, 1, 40 and 17 values. Each share's count, mean and M2 (and, for
 *    backward, its sums of dy and dy * (x - its mean), with dy in its own
 *    loss scale M / M_r times the global gradient g) are computed in double;
 *    batchnorm_combine_forward and batchnorm_combine_backward (from every
 *    rank's point of view) must give the whole batch's mean, M2 / M,
 *    M2 / (M - 1), invstd, and sum(g) and sum(g * x_hat) scaled to the rank,
 *    and the rank's own weight and bias gradients, each within 1e-10
 *    relative: a mean of 1e4 is held in double to about 1e-12, a thousandth
 *    of a percent of a deviation of 0.1, and (mean - rank mean)^2 moves by
 *    that. The control: the variance from the shares' sums of x and x^2,
 *    sum(x^2) / M - mean^2, loses (mean / std)^2 * 2^-53, about 1e-6, and
 *    must land far outside the bound.
 *
 * 2. The ops op_batchnorm_forward_train_sync and op_batchnorm_backward_sync
 *    on R ranks run in R threads, each with its own context (the reference
 *    device, then OpenCL), whose gather hooks meet at a barrier and copy
 *    every rank's contribution, as MPI_Allgather would across processes.
 *    Against the reference op (batchnorm_forward_train_ref,
 *    batchnorm_backward_ref) on the whole batch: each rank's y within 1e-5
 *    (max_relative_error with floor 1, as tests/test_batchnorm.c holds the
 *    device to the reference), its running statistics within 1e-5 and the
 *    same bits on every rank; its dx times M_r / M (the trainer's scaling of
 *    a rank's gradient) within 1e-4 of the whole batch's, and the weight and
 *    bias gradients summed over the ranks with those weights within 1e-4.
 *    The shapes cover BatchNorm2d with a rank without images, BatchNorm1d
 *    with ranks of a single image (one value per channel each, two in all:
 *    refused by a rank alone, accepted together), a channel whose mean is 50
 *    times its spread, and 28 x 28 images one per rank (the CPU kernels'
 *    widest vectors). */
#include "ops/batchnorm.h"
#include "testlib.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RANKS 4
static const double combine_tolerance = 1e-10;
static const double tolerance = 1e-5;
static const double gradient_tolerance = 1e-4;

static double relative(double a, double b) {
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/* ---- 1. the combine formulas ------------------------------------------------------------- */

/* Mean and M2 of n values, two passes in double. */
static void moments(const double *x, int n, double *mean, double *m2) {
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    *mean = n > 0 ? sum / n : 0.0;
    *m2 = 0.0;
    for (int i = 0; i < n; i++)
        *m2 += (x[i] - *mean) * (x[i] - *mean);
}

static void check_combine(void) {
    enum { RANKS = 5, TOTAL = 63, CHANNELS = 1 };
    static const int shares[RANKS] = {5, 0, 1, 40, 17};
    const float eps = 1e-5f;
    test_rng rng = {1234};
    double x[TOTAL], g[TOTAL];
    for (int i = 0; i < TOTAL; i++) {
        /* floats, as the layer's inputs */
        x[i] = (float)(1e4 + test_rand_float(&rng, -0.1f, 0.1f));
        g[i] = test_rand_float(&rng, -1.0f, 1.0f);
    }
    /* The whole batch in double. */
    double mean, m2;
    moments(x, TOTAL, &mean, &m2);
    const double invstd = 1.0 / sqrt(m2 / TOTAL + eps);
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int i = 0; i < TOTAL; i++) {
        sum_g += g[i];
        sum_g_xhat += g[i] * (x[i] - mean) * invstd;
    }
    /* Every rank's contribution: forward and backward layouts. */
    const int64_t forward_stride = 1 + BATCHNORM_FORWARD_FIELDS * CHANNELS;
    const int64_t backward_stride = 1 + BATCHNORM_BACKWARD_FIELDS * CHANNELS;
    double forward_all[RANKS * (1 + BATCHNORM_FORWARD_FIELDS * CHANNELS)];
    double backward_all[RANKS * (1 + BATCHNORM_BACKWARD_FIELDS * CHANNELS)];
    double own_weight[RANKS], own_bias[RANKS];
    for (int r = 0, first = 0; r < RANKS; first += shares[r], r++) {
        const int n = shares[r];
        double rank_mean, rank_m2, dy[TOTAL];
        moments(x + first, n, &rank_mean, &rank_m2);
        double sum_dy = 0.0, sum_dy_dev = 0.0;
        own_weight[r] = own_bias[r] = 0.0;
        for (int i = 0; i < n; i++) {
            dy[i] = g[first + i] * TOTAL / n; /* the rank's own loss scale */
            sum_dy += dy[i];
            sum_dy_dev += dy[i] * (x[first + i] - rank_mean);
            own_weight[r] += dy[i] * (x[first + i] - mean) * invstd;
            own_bias[r] += dy[i];
        }
        double *f = forward_all + r * forward_stride, *b = backward_all + r * backward_stride;
        f[0] = b[0] = n;
        f[1] = b[1] = rank_mean;
        f[2] = b[2] = rank_m2;
        b[3] = sum_dy;
        b[4] = sum_dy_dev;
    }
    double worst = 0.0;
    double forward[1 + BATCHNORM_FORWARD_COMBINED * CHANNELS];
    batchnorm_combine_forward(forward_all, RANKS, forward_stride, CHANNELS, forward);
    CHECK(forward[0] == TOTAL);
    worst = fmax(worst, relative(forward[1], mean));
    worst = fmax(worst, relative(forward[2], m2 / TOTAL));
    worst = fmax(worst, relative(forward[3], m2 / (TOTAL - 1)));
    for (int r = 0; r < RANKS; r++) {
        double backward[1 + BATCHNORM_BACKWARD_COMBINED * CHANNELS];
        batchnorm_combine_backward(backward_all, RANKS, backward_stride,
                                   backward_all + r * backward_stride, CHANNELS, eps, backward);
        CHECK(backward[0] == TOTAL);
        /* The same statistics from every rank's point of view, to the bit. */
        CHECK(backward[1] == forward[1]);
        worst = fmax(worst, relative(backward[2], invstd));
        if (shares[r] == 0) {
            CHECK(backward[3] == 0.0 && backward[4] == 0.0 && backward[5] == 0.0 &&
                  backward[6] == 0.0);
            continue;
        }
        const double scale = (double)TOTAL / shares[r];
        worst = fmax(worst, relative(backward[3], sum_g * scale));
        worst = fmax(worst, relative(backward[4], sum_g_xhat * scale));
        worst = fmax(worst, relative(backward[5], own_weight[r]));
        worst = fmax(worst, relative(backward[6], own_bias[r]));
    }
    /* The control: the shares' sums of x and x^2, added. */
    double sum = 0.0, squares = 0.0;
    for (int i = 0; i < TOTAL; i++) {
        sum += x[i];
        squares += x[i] * x[i];
    }
    const double naive = relative(squares / TOTAL - (sum / TOTAL) * (sum / TOTAL), m2 / TOTAL);
    printf("combine: worst relative difference from float64 of the whole batch %.3g (bound %g); "
           "from sums of x and x^2 %.3g\n",
           worst, combine_tolerance, naive);
    CHECK(worst <= combine_tolerance);
    CHECK(naive > 100 * combine_tolerance);
}

/* ---- 2. the ops on ranks in threads ------------------------------------------------------ */

/* Where the ranks' gather hooks meet: every rank posts its contribution,
 * waits for all, copies every row, and waits again before its row may
 * change. A failing rank aborts it, so the others return an error instead of
 * waiting for ever. */
typedef struct meeting {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int ranks, arrived, aborted;
    int64_t generation;
    const double *rows[MAX_RANKS];
    int64_t counts[MAX_RANKS];
} meeting;

static int meeting_wait(meeting *m) {
    pthread_mutex_lock(&m->lock);
    const int64_t generation = m->generation;
    if (++m->arrived == m->ranks) {
        m->arrived = 0;
        m->generation++;
        pthread_cond_broadcast(&m->changed);
    }
    while (generation == m->generation && !m->aborted)
        pthread_cond_wait(&m->changed, &m->lock);
    const int ok = !m->aborted;
    pthread_mutex_unlock(&m->lock);
    return ok;
}

static void meeting_abort(meeting *m) {
    pthread_mutex_lock(&m->lock);
    m->aborted = 1;
    pthread_cond_broadcast(&m->changed);
    pthread_mutex_unlock(&m->lock);
}

/* One rank: its context, its images and what its ops left. The threads do
 * not call CHECK; the main thread checks what they recorded. */
typedef struct rank_run {
    int rank;
    meeting *meeting;
    clcnn_context *ctx;
    int images, channels, spatial;
    float eps, momentum;
    const float *x, *grad_y, *weight, *bias; /* its images' x and dy (its loss scale) */
    float *y, *grad_x, running_mean[64], running_var[64], grad_weight[64], grad_bias[64];
    clcnn_status status;
    char error[512];
} rank_run;

static clcnn_status gather(void *user, const double *mine, double *all, int64_t count) {
    rank_run *r = user;
    meeting *m = r->meeting;
    m->rows[r->rank] = mine;
    m->counts[r->rank] = count;
    if (!meeting_wait(m))
        return CLCNN_ERROR_INVALID_ARGUMENT;
    for (int q = 0; q < m->ranks; q++) {
        if (m->counts[q] != count) {
            meeting_abort(m);
            return CLCNN_ERROR_INVALID_ARGUMENT;
        }
        memcpy(all + q * count, m->rows[q], sizeof(double) * (size_t)count);
    }
    return meeting_wait(m) ? CLCNN_OK : CLCNN_ERROR_INVALID_ARGUMENT;
}

/* values (count floats) as a buf on ctx's device: the array itself on the
 * reference device, an uploaded copy (at least one float) on OpenCL. */
static clcnn_status make_buf(clcnn_context *ctx, float *values, int64_t count, buf *out) {
    out->host = values;
    out->mem = NULL;
    if (!context_is_opencl(ctx))
        return CLCNN_OK;
    out->host = NULL;
    const size_t bytes = sizeof(float) * (size_t)(count > 0 ? count : 1);
    clcnn_status status = buffer_create(ctx, bytes, &out->mem);
    if (status == CLCNN_OK && count > 0)
        status = buffer_write(ctx, out->mem, 0, sizeof(float) * (size_t)count, values);
    return status;
}

static clcnn_status read_buf(clcnn_context *ctx, buf b, float *values, int64_t count) {
    if (!context_is_opencl(ctx) || count == 0)
        return CLCNN_OK;
    return buffer_read(ctx, b.mem, 0, sizeof(float) * (size_t)count, values);
}

static void *run_rank(void *arg) {
    rank_run *r = arg;
    clcnn_context *ctx = r->ctx;
    const int channels = r->channels;
    const int64_t count = (int64_t)r->images * channels * r->spatial;
    rank_sync sync;
    memset(&sync, 0, sizeof(sync));
    sync.gather = gather;
    sync.user = r;
    sync.ranks = r->meeting->ranks;
    sync.capacity = batchnorm_sync_floats(channels);
    sync.mine = malloc(sizeof(double) * (size_t)sync.capacity);
    sync.all = malloc(sizeof(double) * (size_t)sync.capacity * (size_t)sync.ranks);
    sync.combined = malloc(sizeof(double) * (size_t)sync.capacity);
    sync.floats = malloc(sizeof(float) * (size_t)sync.capacity);
    float *copies[4] = {
        malloc(sizeof(float) * (size_t)(count + 1)), malloc(sizeof(float) * (size_t)(count + 1)),
        malloc(sizeof(float) * (size_t)channels), malloc(sizeof(float) * (size_t)channels)};
    buf x = {0}, grad_y = {0}, weight = {0}, bias = {0}, mean = {0}, var = {0}, y = {0};
    buf grad_x = {0}, grad_weight = {0}, grad_bias = {0};
    clcnn_status status = CLCNN_OK;
    if (!sync.mine || !sync.all || !sync.combined || !sync.floats || !copies[0] || !copies[1] ||
        !copies[2] || !copies[3])
        status = CLCNN_ERROR_OUT_OF_MEMORY;
    if (status == CLCNN_OK && context_is_opencl(ctx))
        status = buffer_create(ctx, sizeof(float) * (size_t)sync.capacity, &sync.device);
    if (status == CLCNN_OK) {
        memcpy(copies[0], r->x, sizeof(float) * (size_t)count);
        memcpy(copies[1], r->grad_y, sizeof(float) * (size_t)count);
        memcpy(copies[2], r->weight, sizeof(float) * (size_t)channels);
        memcpy(copies[3], r->bias, sizeof(float) * (size_t)channels);
        for (int c = 0; c < channels; c++) {
            r->running_mean[c] = 0.25f;
            r->running_var[c] = 2.0f;
        }
        status = make_buf(ctx, copies[0], count, &x);
    }
    if (status == CLCNN_OK)
        status = make_buf(ctx, copies[1], count, &grad_y);
    if (status == CLCNN_OK)
        status = make_buf(ctx, copies[2], channels, &weight);
    if (status == CLCNN_OK)
        status = make_buf(ctx, copies[3], channels, &bias);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->running_mean, channels, &mean);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->running_var, channels, &var);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->y, count, &y);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->grad_x, count, &grad_x);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->grad_weight, channels, &grad_weight);
    if (status == CLCNN_OK)
        status = make_buf(ctx, r->grad_bias, channels, &grad_bias);
    if (status == CLCNN_OK)
        status =
            op_batchnorm_forward_train_sync(ctx, &sync, r->images, channels, r->spatial, r->eps,
                                            r->momentum, x, weight, bias, mean, var, y);
    if (status == CLCNN_OK)
        status = op_batchnorm_backward_sync(ctx, &sync, r->images, channels, r->spatial, r->eps, x,
                                            grad_y, weight, grad_x, 0, grad_weight, grad_bias);
    if (status == CLCNN_OK)
        status = read_buf(ctx, y, r->y, count);
    if (status == CLCNN_OK)
        status = read_buf(ctx, grad_x, r->grad_x, count);
    if (status == CLCNN_OK)
        status = read_buf(ctx, mean, r->running_mean, channels);
    if (status == CLCNN_OK)
        status = read_buf(ctx, var, r->running_var, channels);
    if (status == CLCNN_OK)
        status = read_buf(ctx, grad_weight, r->grad_weight, channels);
    if (status == CLCNN_OK)
        status = read_buf(ctx, grad_bias, r->grad_bias, channels);
    if (status != CLCNN_OK) {
        snprintf(r->error, sizeof(r->error), "%s", clcnn_last_error(ctx));
        meeting_abort(r->meeting);
    }
    r->status = status;
    buf *bufs[] = {&x, &grad_y, &weight, &bias, &mean, &var, &y, &grad_x, &grad_weight, &grad_bias};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        buffer_release(&bufs[i]->mem);
    buffer_release(&sync.device);
    free(sync.mine);
    free(sync.all);
    free(sync.combined);
    free(sync.floats);
    for (int i = 0; i < 4; i++)
        free(copies[i]);
    return NULL;
}

typedef struct sync_case {
    const char *name;
    int ranks;
    int images[MAX_RANKS];
    int channels, height, width;
    float offset, spread; /* x = offset + spread * uniform(-1, 1), per channel offset * (c + 1) */
} sync_case;

static const sync_case cases[] = {
    {"BatchNorm2d, a rank without images", 4, {2, 0, 1, 3}, 3, 5, 7, 0.5f, 1.0f},
    {"BatchNorm1d, ranks of one image", 3, {1, 0, 1}, 5, 1, 1, -1.0f, 2.0f},
    {"BatchNorm2d, mean 50 times the spread", 2, {3, 2}, 4, 4, 8, 50.0f, 1.0f},
    {"BatchNorm2d, ranks of one image", 3, {0, 1, 1}, 6, 28, 28, 0.1f, 1.0f},
};

static void run_case(clcnn_device_kind kind, const sync_case *k) {
    const char *device = kind == CLCNN_DEVICE_OPENCL ? "opencl" : "reference";
    const int channels = k->channels, spatial = k->height * k->width;
    int total = 0;
    for (int r = 0; r < k->ranks; r++)
        total += k->images[r];
    const int64_t per_image = (int64_t)channels * spatial, count = total * per_image;
    const float eps = 1e-5f, momentum = 0.1f;
    test_rng rng = {(uint64_t)(77 + channels)};
    float *x = malloc(sizeof(float) * (size_t)count), *g = malloc(sizeof(float) * (size_t)count);
    float *y = malloc(sizeof(float) * (size_t)count), *dx = malloc(sizeof(float) * (size_t)count);
    float *dy = malloc(sizeof(float) * (size_t)count);
    float *rank_y = malloc(sizeof(float) * (size_t)count);
    float *rank_dx = malloc(sizeof(float) * (size_t)count);
    float weight[64], bias[64], mean[64], var[64], grad_weight[64], grad_bias[64];
    if (!CHECK(x && g && y && dx && dy && rank_y && rank_dx && channels <= 64))
        goto done;
    for (int64_t i = 0; i < count; i++) {
        const int c = (int)(i / spatial % channels);
        x[i] = k->offset * (c + 1) + k->spread * test_rand_float(&rng, -1.0f, 1.0f);
        g[i] = test_rand_float(&rng, -1.0f, 1.0f);
    }
    for (int c = 0; c < channels; c++) {
        weight[c] = test_rand_float(&rng, 0.5f, 1.5f);
        bias[c] = test_rand_float(&rng, -0.5f, 0.5f);
        mean[c] = 0.25f;
        var[c] = 2.0f;
    }
    /* One process with the whole batch; g is the global loss's gradient. */
    batchnorm_forward_train_ref(total, channels, spatial, eps, momentum, x, weight, bias, mean, var,
                                y);
    batchnorm_backward_ref(total, channels, spatial, eps, x, g, weight, dx, 0, grad_weight,
                           grad_bias);

    meeting m;
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    pthread_cond_init(&m.changed, NULL);
    m.ranks = k->ranks;
    rank_run runs[MAX_RANKS];
    pthread_t threads[MAX_RANKS];
    int started = 0, opened = 1;
    int64_t first = 0;
    for (int r = 0; r < k->ranks; r++) {
        rank_run *run = &runs[r];
        memset(run, 0, sizeof(*run));
        run->rank = r;
        run->meeting = &m;
        run->images = k->images[r];
        run->channels = channels;
        run->spatial = spatial;
        run->eps = eps;
        run->momentum = momentum;
        run->x = x + first;
        /* A rank's dy is the gradient of its own mean loss: M / M_r times g. */
        for (int64_t i = first; i < first + run->images * per_image; i++)
            dy[i] = (float)((double)g[i] * total / run->images);
        run->grad_y = dy + first;
        run->weight = weight;
        run->bias = bias;
        run->y = rank_y + first;
        run->grad_x = rank_dx + first;
        first += run->images * per_image;
        if (kind == CLCNN_DEVICE_OPENCL) {
            run->ctx = test_opencl_context();
        } else {
            run->ctx = clcnn_context_create();
            if (run->ctx &&
                clcnn_context_select_device(run->ctx, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK)
                run->ctx = NULL;
        }
        opened = opened && run->ctx;
    }
    if (!CHECK(opened))
        goto cleanup;
    for (; started < k->ranks; started++)
        if (!CHECK(pthread_create(&threads[started], NULL, run_rank, &runs[started]) == 0)) {
            meeting_abort(&m);
            break;
        }
    for (int r = 0; r < started; r++)
        pthread_join(threads[r], NULL);
    int ran = started == k->ranks;
    for (int r = 0; r < k->ranks && ran; r++)
        if (!CHECK(runs[r].status == CLCNN_OK)) {
            printf("%s, %s: rank %d: %s\n", device, k->name, r, runs[r].error);
            ran = 0;
        }
    if (ran) {
        /* dx of rank r scaled back to the global loss, as the trainer scales its gradient. */
        double summed_weight[64] = {0}, summed_bias[64] = {0};
        first = 0;
        for (int r = 0; r < k->ranks; r++) {
            const double share = (double)runs[r].images / total;
            for (int64_t i = first; i < first + runs[r].images * per_image; i++)
                rank_dx[i] = (float)(rank_dx[i] * share);
            first += runs[r].images * per_image;
            for (int c = 0; c < channels && runs[r].images > 0; c++) {
                summed_weight[c] += share * runs[r].grad_weight[c];
                summed_bias[c] += share * runs[r].grad_bias[c];
            }
        }
        float summed[2][64];
        for (int c = 0; c < channels; c++) {
            summed[0][c] = (float)summed_weight[c];
            summed[1][c] = (float)summed_bias[c];
        }
        int same_running = 1;
        for (int r = 1; r < k->ranks; r++)
            same_running =
                same_running &&
                !memcmp(runs[r].running_mean, runs[0].running_mean,
                        sizeof(float) * (size_t)channels) &&
                !memcmp(runs[r].running_var, runs[0].running_var, sizeof(float) * (size_t)channels);
        const double e_y = max_relative_error(rank_y, y, count, 1.0);
        const double e_running = fmax(max_relative_error(runs[0].running_mean, mean, channels, 1.0),
                                      max_relative_error(runs[0].running_var, var, channels, 1.0));
        const double e_dx = max_relative_error(rank_dx, dx, count, 1.0);
        const double e_params = fmax(max_relative_error(summed[0], grad_weight, channels, 1.0),
                                     max_relative_error(summed[1], grad_bias, channels, 1.0));
        printf("%s, %s: y %.3g, running statistics %.3g (%s on every rank), dx %.3g, weight and "
               "bias gradients %.3g\n",
               device, k->name, e_y, e_running, same_running ? "the same" : "NOT the same", e_dx,
               e_params);
        CHECK(e_y <= tolerance);
        CHECK(e_running <= tolerance);
        CHECK(same_running);
        CHECK(e_dx <= gradient_tolerance);
        CHECK(e_params <= gradient_tolerance);
    }
cleanup:
    for (int r = 0; r < k->ranks; r++)
        clcnn_context_destroy(runs[r].ctx);
    pthread_mutex_destroy(&m.lock);
    pthread_cond_destroy(&m.changed);
done:
    free(x);
    free(g);
    free(y);
    free(dx);
    free(dy);
    free(rank_y);
    free(rank_dx);
}

int main(void) {
    check_combine();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(CLCNN_DEVICE_REFERENCE, &cases[i]);
    clcnn_context *probe = test_opencl_context();
    if (probe) {
        clcnn_context_destroy(probe);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
            run_case(CLCNN_DEVICE_OPENCL, &cases[i]);
    } else {
        test_skip("no OpenCL device: the ops ran on the reference device only");
    }
    return test_finish();
}
