/* Data-parallel training in one process. Two trainers, rank 0 and rank 1 of
 * 2, each with its own context and its own copy of a small conv + dense
 * network (the same initial weights), run in two threads; their gradient
 * hooks meet at a barrier and each leaves the element-wise sum of both
 * ranks' buffers, as MPI_Allreduce(MPI_SUM) would across processes. After
 * three epochs their weights must match one trainer that takes the whole
 * global batch (2 x 4 images), on the reference and the OpenCL device.
 *
 * The epochs cover every kind of global batch: 37 images are four full
 * batches (4 + 4) and a short one of 5 (split 2 + 3, so the ranks' mean
 * gradients are scaled by 2/5 and 3/5), and 33 images end in a batch of a
 * single image, where rank 0 has none and contributes zeros.
 *
 * Tolerance: the sharded and the single-process gradients are the same sums
 * grouped differently (4 + 4 images per rank, then the two ranks added,
 * against 8 at once), and the loss gradient is divided by 4 and scaled by
 * 1/2 instead of divided by 8 (exact: a power of two) or, in the short
 * batches, divided by 2 or 3 and scaled by 2/5 or 3/5 (two roundings instead
 * of one). A conv weight's gradient sums up to 8 x 64 = 512 terms; float
 * summation in another order differs by about sqrt(512) * 2^-24 = 1.3e-6 of
 * the gradient (the reference device sums in double: a few ulps). That
 * relative error on every step's update adds up to 1.3e-6 of the distance a
 * weight travels over the run, at most 0.8 here (lr 0.05 times |velocity|,
 * summed over the 15 steps, measured through the hook): 1e-6. The update
 * w - lr * v rounds to half an ulp of w, which may land on different sides
 * once the inputs differ: with |w| < 2, up to 1.2e-7 a step, 1.8e-6 over 15
 * steps. About 3e-6 in all; the weights must agree within 1e-5 absolute,
 * leaving room for the later steps' gradients depending on the weights. That
 * tolerance still catches a wrong scaling: a hook that averages instead of
 * summing lands far outside it. The epoch losses follow from weights that
 * close: relative 1e-4.
 *
 * With a ready hook on buckets of 100 floats (the dense layer's gradients,
 * then the convolution's), the trainer hands both buckets over during every
 * step in that order and the weights are bit for bit those without it.
 *
 * It checks as well that the hook runs exactly once per step with the
 * flat buffer and the right image counts, that both ranks end with the same
 * weights bit for bit, that a second run repeats the first bit for bit, and
 * that a single process with a hook that changes nothing trains bit for bit
 * as without one. */
#include "testlib.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANKS 2
#define RANK_BATCH 4
#define EPOCHS 3
#define STEPS 15 /* 5 global batches of 8 (or fewer) images per epoch */
#define WEIGHT_TOLERANCE 1e-5
#define LOSS_TOLERANCE 1e-4
/* With a ready hook: the conv layer and the dense layer each a bucket. */
#define BUCKET_FLOATS 100

static const char net_text[] = "input channels=2 height=8 width=8\n"
                               "conv filters=4 size=3 pad=1\n"
                               "relu\n"
                               "maxpool size=2\n"
                               "flatten\n"
                               "dense units=5\n"
                               "softmax\n";

static const int64_t epoch_images[EPOCHS] = {37, 33, 37};
/* Each rank's images in the last, short global batch of each epoch. */
static const int64_t short_shares[EPOCHS][RANKS] = {{2, 3}, {0, 1}, {2, 3}};

/* Set by check_augmented_shards: every run's images augmented. */
static int augmenting;

static clcnn_train_config make_config(int batch) {
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.epochs = EPOCHS;
    config.batch_size = batch;
    config.optimizer = CLCNN_SGD;
    config.learning_rate = 0.05;
    config.momentum = 0.9;
    /* applied by the optimizer to the summed gradient, as in one process */
    config.weight_decay = 1e-3;
    config.seed = 5;
    if (augmenting) {
        config.augment_crop_pad = 2;
        config.augment_flip = 1;
        config.augment_rotate_degrees = 20.0;
    }
    return config;
}

/* A fresh copy of the network with the weights every run starts from. */
static clcnn_net *make_net(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "shard-net", &net)))
        return NULL;
    if (!CHECK_OK(ctx, clcnn_net_init_weights(net, 11))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

/* Every parameter of net, layer by layer, weight then bias. */
static int read_parameters(clcnn_net *net, float *out) {
    int64_t at = 0;
    for (int i = 0; i < clcnn_net_layer_count(net); i++) {
        clcnn_layer_info info;
        if (clcnn_net_layer_info(net, i, &info) != CLCNN_OK)
            return 0;
        if (info.weight_count > 0 && clcnn_net_get_parameter(net, info.name, "weight", out + at,
                                                             info.weight_count) != CLCNN_OK)
            return 0;
        at += info.weight_count;
        if (info.bias_count > 0 &&
            clcnn_net_get_parameter(net, info.name, "bias", out + at, info.bias_count) != CLCNN_OK)
            return 0;
        at += info.bias_count;
    }
    return 1;
}

static double worst_difference(const float *a, const float *b, int64_t n) {
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)a[i] - (double)b[i]));
    return worst;
}

/* What one run leaves: its weights and each epoch's reported loss and accuracy. */
typedef struct run_result {
    float *weights;
    double loss[EPOCHS], accuracy[EPOCHS];
} run_result;

/* ---- the exchange between the two rank threads ---------------------------------------- */

/* A barrier that a failing rank can open, so the other rank's hook returns
 * an error instead of waiting for ever. */
typedef struct exchange {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int arrived;
    int64_t generation;
    int aborted;
    int average; /* the negative control: halve the sum */
    float *contributions[RANKS];
    clcnn_gradient_step steps[RANKS];
} exchange;

static int exchange_wait(exchange *x) {
    pthread_mutex_lock(&x->lock);
    const int64_t generation = x->generation;
    if (++x->arrived == RANKS) {
        x->arrived = 0;
        x->generation++;
        pthread_cond_broadcast(&x->changed);
    }
    while (generation == x->generation && !x->aborted)
        pthread_cond_wait(&x->changed, &x->lock);
    const int ok = !x->aborted;
    pthread_mutex_unlock(&x->lock);
    return ok;
}

static void exchange_abort(exchange *x) {
    pthread_mutex_lock(&x->lock);
    x->aborted = 1;
    pthread_cond_broadcast(&x->changed);
    pthread_mutex_unlock(&x->lock);
}

/* One rank's thread: its trainer and what its hook saw. The threads do not
 * call CHECK (its counters are not shared safely); the main thread checks
 * what they recorded. */
typedef struct rank_state {
    int rank;
    exchange *x;
    clcnn_net *net;
    clcnn_trainer *trainer;
    const clcnn_dataset *data;
    float *sum;
    int64_t count; /* the buffer length of the first call */
    int64_t hook_calls, progress_calls;
    int64_t images[STEPS], global_images[STEPS], batch[STEPS];
    int epoch[STEPS];
    int bad; /* calls that broke the contract */
    /* with a ready hook: the trainer's buckets and the next one expected */
    int bucket_count, next_bucket;
    int64_t bucket_first[8], bucket_count_floats[8];
    int64_t ready_calls, polls;
    clcnn_status status;
    run_result result;
} rank_state;

static clcnn_status sum_hook(void *user, float *gradients, int64_t count,
                             clcnn_gradient_step *step) {
    rank_state *r = user;
    exchange *x = r->x;
    const int64_t call = r->hook_calls++;
    if (call == 0) {
        r->count = count;
        r->sum = malloc(sizeof(float) * (size_t)count);
        if (!r->sum)
            return CLCNN_ERROR_OUT_OF_MEMORY;
    }
    r->bad += count != r->count || count < clcnn_net_parameter_count(r->net);
    r->bad += step->step != call + 1 || step->rank != r->rank || step->world_size != RANKS;
    if (call < STEPS) {
        r->images[call] = step->images;
        r->global_images[call] = step->global_images;
        r->batch[call] = step->batch;
        r->epoch[call] = step->epoch;
    }
    if (r->bucket_count > 0) {
        /* Every bucket came before the step's hook, then they start again. */
        r->bad += r->next_bucket != r->bucket_count;
        r->next_bucket = 0;
    }
    x->contributions[r->rank] = gradients;
    x->steps[r->rank] = *step;
    if (!exchange_wait(x))
        return CLCNN_ERROR_INVALID_ARGUMENT;
    /* Both ranks add in the same order, so both get the same bits. */
    for (int64_t i = 0; i < count; i++) {
        r->sum[i] = x->contributions[0][i] + x->contributions[1][i];
        if (x->average)
            r->sum[i] *= 0.5f;
    }
    const int64_t images = x->steps[0].images + x->steps[1].images;
    const double loss_sum = x->steps[0].loss_sum + x->steps[1].loss_sum;
    const int64_t correct = x->steps[0].correct + x->steps[1].correct;
    /* Nobody overwrites what the other rank may still be reading. */
    if (!exchange_wait(x))
        return CLCNN_ERROR_INVALID_ARGUMENT;
    memcpy(gradients, r->sum, sizeof(float) * (size_t)count);
    step->images = images;
    step->loss_sum = loss_sum;
    step->correct = correct;
    return CLCNN_OK;
}

/* A ready hook that checks the buckets come in the plan's order, each once a step. */
static clcnn_status record_ready(void *user, float *gradients, int64_t first, int64_t count,
                                 const clcnn_gradient_step *step) {
    rank_state *r = user;
    (void)gradients;
    r->bad += step->rank != r->rank || step->images < 0;
    if (count == 0) {
        r->polls++;
        return CLCNN_OK;
    }
    const int k = r->next_bucket++;
    r->bad +=
        k >= r->bucket_count || first != r->bucket_first[k] || count != r->bucket_count_floats[k];
    r->ready_calls++;
    return CLCNN_OK;
}

/* The buckets tile the flat buffer from its end down to 0. */
static int check_bucket_plan(const rank_state *r) {
    int ok = r->bucket_count >= 2 && r->bucket_first[r->bucket_count - 1] == 0 &&
             r->bucket_first[0] + r->bucket_count_floats[0] >= clcnn_net_parameter_count(r->net);
    for (int k = 0; k + 1 < r->bucket_count; k++)
        ok = ok && r->bucket_first[k] == r->bucket_first[k + 1] + r->bucket_count_floats[k + 1];
    return ok;
}

static int count_progress(void *user, const clcnn_progress *progress) {
    rank_state *r = user;
    (void)progress;
    r->progress_calls++;
    r->bad += r->progress_calls != r->hook_calls; /* one hook call per step */
    return 0;
}

static void *rank_thread(void *arg) {
    rank_state *r = arg;
    r->status = CLCNN_OK;
    for (int e = 0; e < EPOCHS && r->status == CLCNN_OK; e++) {
        clcnn_dataset set = clcnn_dataset_head(r->data, epoch_images[e]);
        r->status = clcnn_trainer_epoch(r->trainer, &set, count_progress, r, &r->result.loss[e],
                                        &r->result.accuracy[e]);
    }
    if (r->status != CLCNN_OK)
        exchange_abort(r->x);
    return NULL;
}

/* Trains ranks 0 and 1 in two threads on their contexts; with run_hook 0
 * each rank instead trains alone on its shares, one after the other. That
 * is the warm-up: it builds every kernel of both contexts in the main thread
 * first, because two threads building the same program at once would share
 * the kernel cache's temporary file name (it is per process). */
static int train_sharded(clcnn_context *ctx[RANKS], const clcnn_dataset *data, int run_hook,
                         int average, int64_t bucket_floats, run_result out[RANKS]) {
    exchange x;
    memset(&x, 0, sizeof(x));
    pthread_mutex_init(&x.lock, NULL);
    pthread_cond_init(&x.changed, NULL);
    x.average = average;
    rank_state ranks[RANKS];
    memset(ranks, 0, sizeof(ranks));
    const clcnn_train_config config = make_config(RANK_BATCH);
    int ok = 1;
    for (int r = 0; r < RANKS && ok; r++) {
        rank_state *s = &ranks[r];
        s->rank = r;
        s->x = &x;
        s->data = data;
        s->net = make_net(ctx[r]);
        ok = s->net && CHECK_OK(ctx[r], clcnn_trainer_create(s->net, &config, &s->trainer)) &&
             CHECK_OK(ctx[r], clcnn_trainer_set_shard(s->trainer, r, RANKS)) &&
             (!run_hook ||
              CHECK_OK(ctx[r], clcnn_trainer_set_gradient_hook(s->trainer, sum_hook, s)));
        if (ok && bucket_floats > 0) {
            ok = CHECK_OK(ctx[r], clcnn_trainer_set_gradient_ready_hook(s->trainer, record_ready, s,
                                                                        bucket_floats));
            s->bucket_count = clcnn_trainer_gradient_buckets(s->trainer, NULL, NULL);
            ok = ok && CHECK(s->bucket_count >= 1 && s->bucket_count <= 8);
            if (ok)
                clcnn_trainer_gradient_buckets(s->trainer, s->bucket_first, s->bucket_count_floats);
            ok = ok && CHECK(check_bucket_plan(s));
        }
    }
    if (ok && run_hook) {
        pthread_t threads[RANKS];
        int started = 0;
        for (int r = 0; r < RANKS; r++) {
            if (pthread_create(&threads[r], NULL, rank_thread, &ranks[r]) != 0) {
                CHECK(!"pthread_create");
                exchange_abort(&x);
                break;
            }
            started++;
        }
        for (int r = 0; r < started; r++)
            pthread_join(threads[r], NULL);
        ok = started == RANKS;
    } else if (ok) {
        for (int r = 0; r < RANKS; r++)
            rank_thread(&ranks[r]);
    }
    for (int r = 0; r < RANKS && ok; r++) {
        rank_state *s = &ranks[r];
        ok = CHECK_OK(ctx[r], s->status);
        if (!ok || !run_hook)
            continue;
        CHECK(s->bad == 0);
        CHECK(s->hook_calls == STEPS);
        CHECK(s->progress_calls == STEPS);
        CHECK(s->ready_calls == (int64_t)s->bucket_count * STEPS);
        /* Every global batch: 8 images (4 + 4) but the last of each epoch. */
        for (int64_t k = 0; k < STEPS && k < s->hook_calls; k++) {
            const int e = (int)(k / 5);
            const int64_t b = k % 5;
            const int last = b == 4;
            const int64_t global = last ? epoch_images[e] - 4 * RANKS * RANK_BATCH : 8;
            const int64_t share = last ? short_shares[e][r] : RANK_BATCH;
            if (!CHECK(s->epoch[k] == e + 1 && s->batch[k] == b + 1 &&
                       s->global_images[k] == global && s->images[k] == share))
                printf("rank %d step %lld: epoch %d batch %lld, %lld of %lld images\n", r,
                       (long long)k + 1, s->epoch[k], (long long)s->batch[k],
                       (long long)s->images[k], (long long)s->global_images[k]);
        }
    }
    const int64_t parameters = ranks[0].net ? clcnn_net_parameter_count(ranks[0].net) : 0;
    for (int r = 0; r < RANKS; r++) {
        out[r] = ranks[r].result;
        out[r].weights = malloc(sizeof(float) * (size_t)(parameters ? parameters : 1));
        if (ok)
            ok = CHECK(out[r].weights && read_parameters(ranks[r].net, out[r].weights));
        clcnn_trainer_destroy(ranks[r].trainer);
        clcnn_net_destroy(ranks[r].net);
        free(ranks[r].sum);
    }
    pthread_cond_destroy(&x.changed);
    pthread_mutex_destroy(&x.lock);
    return ok;
}

/* ---- one process with the whole global batch ------------------------------------------- */

typedef struct identity_hook {
    int64_t calls;
    int bad;
} identity_hook;

/* Changes nothing; with world size 1 it must get the whole batch's mean. */
static clcnn_status identity(void *user, float *gradients, int64_t count,
                             clcnn_gradient_step *step) {
    identity_hook *h = user;
    (void)gradients;
    h->calls++;
    h->bad += step->step != h->calls || step->images != step->global_images || count < 1;
    return CLCNN_OK;
}

static int train_single(clcnn_context *ctx, const clcnn_dataset *data, int with_hook,
                        run_result *out) {
    const clcnn_train_config config = make_config(RANKS * RANK_BATCH);
    clcnn_net *net = make_net(ctx);
    clcnn_trainer *trainer = NULL;
    identity_hook hook = {0, 0};
    int ok = net && CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    if (ok && with_hook)
        ok = CHECK_OK(ctx, clcnn_trainer_set_shard(trainer, 0, 1)) &&
             CHECK_OK(ctx, clcnn_trainer_set_gradient_hook(trainer, identity, &hook));
    for (int e = 0; e < EPOCHS && ok; e++) {
        clcnn_dataset set = clcnn_dataset_head(data, epoch_images[e]);
        ok = CHECK_OK(
            ctx, clcnn_trainer_epoch(trainer, &set, NULL, NULL, &out->loss[e], &out->accuracy[e]));
    }
    if (ok && with_hook)
        ok = CHECK(hook.calls == STEPS && hook.bad == 0);
    out->weights = net ? malloc(sizeof(float) * (size_t)clcnn_net_parameter_count(net)) : NULL;
    if (ok)
        ok = CHECK(out->weights && read_parameters(net, out->weights));
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    return ok;
}

/* ---- the checks -------------------------------------------------------------------------- */

static clcnn_status failing_hook(void *user, float *gradients, int64_t count,
                                 clcnn_gradient_step *step) {
    (void)gradients, (void)count, (void)step;
    ++*(int *)user;
    return CLCNN_ERROR_IO;
}

static void check_arguments(clcnn_context *ctx, const clcnn_dataset *data) {
    clcnn_net *net = make_net(ctx);
    clcnn_trainer *trainer = NULL;
    const clcnn_train_config config = make_config(RANK_BATCH);
    if (!net || !CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer))) {
        clcnn_net_destroy(net);
        return;
    }
    CHECK(clcnn_trainer_set_shard(trainer, 2, 2) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_trainer_set_shard(trainer, -1, 2) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_trainer_set_shard(trainer, 0, 0) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_trainer_set_shard(trainer, 0, 1 << 30) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK_OK(ctx, clcnn_trainer_set_shard(trainer, 1, 2));
    CHECK_OK(ctx, clcnn_trainer_set_gradient_hook(trainer, NULL, NULL));
    /* A hook's error stops the epoch at the first step, with its status. */
    int calls = 0;
    CHECK_OK(ctx, clcnn_trainer_set_gradient_hook(trainer, failing_hook, &calls));
    CHECK(clcnn_trainer_epoch(trainer, data, NULL, NULL, NULL, NULL) == CLCNN_ERROR_IO);
    CHECK(calls == 1 && strstr(clcnn_last_error(ctx), "gradient hook") != NULL);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
}

static void free_runs(run_result *runs, int count) {
    for (int i = 0; i < count; i++)
        free(runs[i].weights);
}

static void check_device(clcnn_device_kind kind, const clcnn_dataset *data) {
    const char *device = kind == CLCNN_DEVICE_OPENCL ? "opencl" : "reference";
    clcnn_context *single_ctx = test_context(kind);
    clcnn_context *ctx[RANKS] = {test_context(kind), test_context(kind)};
    if (!CHECK(single_ctx && ctx[0] && ctx[1]))
        goto done;
    check_arguments(single_ctx, data);

    run_result warm[RANKS] = {{0}}, first[RANKS] = {{0}}, second[RANKS] = {{0}};
    run_result averaged[RANKS] = {{0}}, bucketed[RANKS] = {{0}}, single = {0}, single_hooked = {0};
    const int ok =
        train_sharded(ctx, data, 0, 0, 0, warm) && train_sharded(ctx, data, 1, 0, 0, first) &&
        train_sharded(ctx, data, 1, 0, 0, second) && train_sharded(ctx, data, 1, 1, 0, averaged) &&
        train_sharded(ctx, data, 1, 0, BUCKET_FLOATS, bucketed) &&
        train_single(single_ctx, data, 0, &single) &&
        train_single(single_ctx, data, 1, &single_hooked);
    if (ok) {
        clcnn_net *net = make_net(single_ctx);
        const int64_t n = net ? clcnn_net_parameter_count(net) : 0;
        float *initial = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        CHECK(n > 0 && initial && read_parameters(net, initial));
        clcnn_net_destroy(net);
        const size_t bytes = sizeof(float) * (size_t)n;
        /* The replicas agree bit for bit, and so do repeat runs. */
        CHECK(memcmp(first[0].weights, first[1].weights, bytes) == 0);
        CHECK(memcmp(first[0].weights, second[0].weights, bytes) == 0);
        CHECK(memcmp(first[1].weights, second[1].weights, bytes) == 0);
        /* Buckets handed over during backward (each scaled on its own) change nothing. */
        CHECK(memcmp(first[0].weights, bucketed[0].weights, bytes) == 0);
        CHECK(memcmp(first[1].weights, bucketed[1].weights, bytes) == 0);
        /* A hook that changes nothing changes nothing. */
        CHECK(memcmp(single.weights, single_hooked.weights, bytes) == 0);
        for (int e = 0; e < EPOCHS; e++)
            CHECK(single.loss[e] == single_hooked.loss[e] &&
                  single.accuracy[e] == single_hooked.accuracy[e]);

        const double worst = worst_difference(first[0].weights, single.weights, n);
        const double control = worst_difference(averaged[0].weights, single.weights, n);
        const double moved = initial ? worst_difference(single.weights, initial, n) : 0.0;
        double largest = 0.0;
        for (int64_t i = 0; i < n; i++)
            largest = fmax(largest, fabs((double)single.weights[i]));
        free(initial);
        printf("%s: %lld parameters, worst |sharded - single| = %.3g (tolerance %g); an "
               "averaging hook: %.3g; training moved a weight by up to %.3g, largest |w| %.3g\n",
               device, (long long)n, worst, WEIGHT_TOLERANCE, control, moved, largest);
        CHECK(largest < 2.0); /* as the tolerance assumes */
        CHECK(worst <= WEIGHT_TOLERANCE);
        CHECK(control > 100 * WEIGHT_TOLERANCE);
        for (int e = 0; e < EPOCHS; e++) {
            /* The hooks summed the tallies: the ranks report the same global figures. */
            CHECK(first[0].loss[e] == first[1].loss[e] &&
                  first[0].accuracy[e] == first[1].accuracy[e]);
            const double loss_error = fabs(first[0].loss[e] - single.loss[e]) / single.loss[e];
            printf("%s: epoch %d loss %.6f sharded, %.6f single (relative %.2g), accuracy %.4f "
                   "and %.4f\n",
                   device, e + 1, first[0].loss[e], single.loss[e], loss_error,
                   first[0].accuracy[e], single.accuracy[e]);
            CHECK(loss_error <= LOSS_TOLERANCE);
            /* At most one image near a tie may be classified differently. */
            CHECK(fabs(first[0].accuracy[e] - single.accuracy[e]) <=
                  1.0 / (double)epoch_images[e] + 1e-12);
        }
    }
    free_runs(warm, RANKS);
    free_runs(first, RANKS);
    free_runs(second, RANKS);
    free_runs(averaged, RANKS);
    free_runs(bucketed, RANKS);
    free_runs(&single, 1);
    free_runs(&single_hooked, 1);
done:
    clcnn_context_destroy(single_ctx);
    clcnn_context_destroy(ctx[0]);
    clcnn_context_destroy(ctx[1]);
}

/* With augmentation the shards must draw, for every image, what one process
 * draws: the draws are keyed by the image, not by the order a process
 * meets images in. The same tolerance as without augmentation holds, and
 * the augmentation itself moves the weights far beyond it. */
static void check_augmented_shards(const clcnn_dataset *data) {
    clcnn_context *single_ctx = test_context(CLCNN_DEVICE_REFERENCE);
    clcnn_context *ctx[RANKS] = {test_context(CLCNN_DEVICE_REFERENCE),
                                 test_context(CLCNN_DEVICE_REFERENCE)};
    run_result sharded[RANKS] = {{0}}, single = {0}, plain = {0};
    if (CHECK(single_ctx && ctx[0] && ctx[1]) && train_single(single_ctx, data, 0, &plain)) {
        augmenting = 1;
        if (train_sharded(ctx, data, 1, 0, 0, sharded) &&
            train_single(single_ctx, data, 0, &single)) {
            clcnn_net *net = make_net(single_ctx);
            const int64_t n = net ? clcnn_net_parameter_count(net) : 0;
            clcnn_net_destroy(net);
            const double worst = worst_difference(sharded[0].weights, single.weights, n);
            const double effect = worst_difference(plain.weights, single.weights, n);
            printf("augmented: worst |sharded - single| = %.3g (tolerance %g); augmentation "
                   "moved a weight by %.3g\n",
                   worst, WEIGHT_TOLERANCE, effect);
            CHECK(n > 0 &&
                  memcmp(sharded[0].weights, sharded[1].weights, sizeof(float) * (size_t)n) == 0);
            CHECK(worst <= WEIGHT_TOLERANCE);
            CHECK(effect > 100 * WEIGHT_TOLERANCE);
        }
        augmenting = 0;
    }
    free_runs(sharded, RANKS);
    free_runs(&single, 1);
    free_runs(&plain, 1);
    clcnn_context_destroy(single_ctx);
    clcnn_context_destroy(ctx[0]);
    clcnn_context_destroy(ctx[1]);
}

int main(void) {
    /* 37 images of 2 x 8 x 8 random pixels in [-1, 1] with random labels:
     * the network need not learn anything, only take the same steps. */
    clcnn_dataset data = {0};
    data.count = 37;
    data.channels = 2;
    data.height = 8;
    data.width = 8;
    data.classes = 5;
    data.images = malloc(sizeof(float) * (size_t)(data.count * 2 * 8 * 8));
    data.labels = malloc(sizeof(int32_t) * (size_t)data.count);
    if (!CHECK(data.images && data.labels))
        return test_finish();
    test_rng rng = {42};
    for (int64_t i = 0; i < data.count; i++) {
        float *image = data.images + i * 2 * 8 * 8;
        for (int j = 0; j < 2 * 8 * 8; j++)
            image[j] = test_rand_float(&rng, -1.0f, 1.0f);
        data.labels[i] = test_rand_int(&rng, 0, 4);
    }
    check_device(CLCNN_DEVICE_REFERENCE, &data);
    check_device(CLCNN_DEVICE_OPENCL, &data);
    check_augmented_shards(&data);
    free(data.images);
    free(data.labels);
    return test_finish();
}
