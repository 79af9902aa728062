/* Training loops of one's own: clcnn_trainer_step is one SGD update of
 * exactly the gradient clcnn_net_backward computes, counts the images it
 * classifies right, refuses what it cannot take, and a loop of steps
 * learns; a progress callback that returns non-zero stops an epoch after
 * that batch with CLCNN_STOPPED, without counting the epoch. Both devices. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char net_text[] = "input channels=1 height=6 width=6\n"
                               "conv filters=3 size=3\n"
                               "relu\n"
                               "flatten\n"
                               "dense units=3\n"
                               "softmax\n";

enum { SIDE = 6, PIXELS = SIDE * SIDE, CLASSES = 3, IMAGES = 48, BATCH = 8 };

/* Images whose class is which third of the image is brightest. */
static void make_data(float *images, int32_t *labels, int count, uint64_t seed) {
    test_rng r = {seed};
    for (int n = 0; n < count; n++) {
        const int label = test_rand_int(&r, 0, CLASSES - 1);
        labels[n] = label;
        for (int i = 0; i < PIXELS; i++) {
            const int third = (i % SIDE) / 2;
            images[n * PIXELS + i] =
                test_rand_float(&r, -0.5f, 0.5f) + (third == label ? 1.0f : 0.0f);
        }
    }
}

static clcnn_net *make_net(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "step.net", &net)))
        return NULL;
    if (!CHECK_OK(ctx, clcnn_net_init_weights(net, 5))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

static void sgd_config(clcnn_train_config *config) {
    clcnn_train_config_defaults(config);
    config->batch_size = BATCH;
    config->learning_rate = 0.1;
    config->momentum = 0.0;
}

/* One step against clcnn_net_backward on a twin network and a hand-made
 * SGD update: p - lr * g. */
static void check_step_is_sgd(clcnn_device_kind kind, const float *images, const int32_t *labels) {
    clcnn_context *ctx = test_context(kind);
    if (!CHECK(ctx != NULL))
        return;
    const char *device = kind == CLCNN_DEVICE_OPENCL ? "opencl" : "reference";
    clcnn_net *net = make_net(ctx), *twin = make_net(ctx);
    clcnn_trainer *trainer = NULL;
    clcnn_train_config config;
    sgd_config(&config);
    if (!net || !twin || !CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer)))
        goto done;
    const int count = BATCH - 3; /* a short batch */
    double loss = -1.0, twin_loss = -2.0;
    int64_t correct = -1;
    float scores[BATCH * CLASSES];
    CHECK_OK(ctx, clcnn_net_forward(twin, images, count, scores, NULL, NULL));
    int64_t expected_correct = 0;
    for (int n = 0; n < count; n++) {
        int best = 0;
        for (int j = 1; j < CLASSES; j++)
            if (scores[n * CLASSES + j] > scores[n * CLASSES + best])
                best = j;
        expected_correct += best == labels[n];
    }
    CHECK_OK(ctx, clcnn_net_backward(twin, images, count, labels, NULL, &twin_loss));
    if (!CHECK_OK(ctx, clcnn_trainer_step(trainer, images, labels, count, &loss, &correct)))
        goto done;
    printf("%s: step loss %.6f, backward loss %.6f, %lld of %d right\n", device, loss, twin_loss,
           (long long)correct, count);
    CHECK(fabs(loss - twin_loss) <= 1e-6 * fabs(twin_loss));
    CHECK(correct == expected_correct);
    double worst = 0.0;
    for (int t = 0; t < clcnn_net_tensor_count(net); t++) {
        clcnn_tensor_info info;
        CHECK_OK(ctx, clcnn_net_tensor_info(net, t, &info));
        float *after = malloc(sizeof(float) * (size_t)info.count);
        float *before = malloc(sizeof(float) * (size_t)info.count);
        float *gradient = malloc(sizeof(float) * (size_t)info.count);
        float *expected = malloc(sizeof(float) * (size_t)info.count);
        if (CHECK(after && before && gradient && expected) &&
            CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, after, info.count)) &&
            CHECK_OK(ctx, clcnn_net_get_tensor(twin, info.name, before, info.count)) &&
            CHECK_OK(ctx, clcnn_net_get_tensor_gradient(twin, info.name, gradient, info.count))) {
            for (int64_t i = 0; i < info.count; i++)
                expected[i] = (float)(before[i] - 0.1 * gradient[i]);
            const double error = max_relative_error(after, expected, info.count, 1e-3);
            worst = error > worst ? error : worst;
            CHECK(memcmp(after, before, sizeof(float) * (size_t)info.count) != 0);
        }
        free(after);
        free(before);
        free(gradient);
        free(expected);
    }
    printf("%s: parameters after the step vs p - lr * g: worst relative error %.2e\n", device,
           worst);
    CHECK(worst < 1e-5);

    /* What a step cannot take. */
    CHECK(clcnn_trainer_step(trainer, images, labels, BATCH + 1, NULL, NULL) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(clcnn_last_error(ctx), "1 to 8 images") != NULL);
    CHECK(clcnn_trainer_step(trainer, images, labels, 0, NULL, NULL) ==
          CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_trainer_step(trainer, NULL, labels, 1, NULL, NULL) == CLCNN_ERROR_INVALID_ARGUMENT);
    const int32_t bad_labels[2] = {0, CLASSES};
    CHECK(clcnn_trainer_step(trainer, images, bad_labels, 2, NULL, NULL) ==
          CLCNN_ERROR_INVALID_ARGUMENT);

    /* A loop of one's own: 20 passes of steps over the images learn them. */
    double first = 0.0, last = 0.0;
    int64_t right = 0;
    for (int pass = 0; pass < 20; pass++) {
        double sum = 0.0;
        right = 0;
        for (int b = 0; b < IMAGES; b += BATCH) {
            double batch_loss;
            int64_t batch_right;
            if (!CHECK_OK(ctx, clcnn_trainer_step(trainer, images + b * PIXELS, labels + b, BATCH,
                                                  &batch_loss, &batch_right)))
                goto done;
            sum += batch_loss * BATCH;
            right += batch_right;
        }
        if (pass == 0)
            first = sum / IMAGES;
        last = sum / IMAGES;
    }
    printf("%s: own loop, loss %.4f -> %.4f, %lld of %d right in the last pass\n", device, first,
           last, (long long)right, IMAGES);
    CHECK(last < 0.5 * first);
    CHECK(right >= IMAGES * 9 / 10);
    CHECK(clcnn_trainer_epochs_done(trainer) == 0); /* steps are not epochs */
done:
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_net_destroy(twin);
    clcnn_context_destroy(ctx);
}

typedef struct stopper {
    int calls;
    int64_t stop_after; /* batch at which to ask to stop; 0: never */
    int64_t last_batch;
} stopper;

static int stop_at(void *user, const clcnn_progress *p) {
    stopper *s = user;
    s->calls++;
    s->last_batch = p->batch;
    return s->stop_after > 0 && p->batch >= s->stop_after;
}

static void check_stop(clcnn_device_kind kind, float *images, int32_t *labels) {
    clcnn_context *ctx = test_context(kind);
    if (!CHECK(ctx != NULL))
        return;
    clcnn_net *net = make_net(ctx);
    clcnn_trainer *trainer = NULL;
    clcnn_train_config config;
    sgd_config(&config);
    clcnn_dataset data = {0};
    data.count = IMAGES;
    data.channels = 1;
    data.height = SIDE;
    data.width = SIDE;
    data.classes = CLASSES;
    data.images = images;
    data.labels = labels;
    if (!net || !CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer)))
        goto done;
    stopper s = {0, 2, 0};
    double loss = -1.0, accuracy = -1.0;
    CHECK(clcnn_trainer_epoch(trainer, &data, stop_at, &s, &loss, &accuracy) == CLCNN_STOPPED);
    CHECK(s.calls == 2 && s.last_batch == 2);
    CHECK(strstr(clcnn_last_error(ctx), "stopped epoch 1 after batch 2 of 6") != NULL);
    CHECK(loss > 0.0 && isfinite(loss) && accuracy >= 0.0 && accuracy <= 1.0);
    CHECK(clcnn_trainer_epochs_done(trainer) == 0);
    CHECK(strcmp(clcnn_status_name(CLCNN_STOPPED), "stopped") == 0);
    /* The next epoch runs whole and counts. */
    s.calls = 0;
    s.stop_after = 0;
    CHECK_OK(ctx, clcnn_trainer_epoch(trainer, &data, stop_at, &s, &loss, &accuracy));
    CHECK(s.calls == 6 && clcnn_trainer_epochs_done(trainer) == 1);
    /* Stopping at the last batch still does not count the epoch. */
    s.calls = 0;
    s.stop_after = 6;
    CHECK(clcnn_trainer_epoch(trainer, &data, stop_at, &s, NULL, NULL) == CLCNN_STOPPED);
    CHECK(s.calls == 6 && clcnn_trainer_epochs_done(trainer) == 1);
done:
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

int main(void) {
    static float images[IMAGES * PIXELS];
    static int32_t labels[IMAGES];
    make_data(images, labels, IMAGES, 99);
    check_step_is_sgd(CLCNN_DEVICE_REFERENCE, images, labels);
    check_step_is_sgd(CLCNN_DEVICE_OPENCL, images, labels);
    check_stop(CLCNN_DEVICE_REFERENCE, images, labels);
    check_stop(CLCNN_DEVICE_OPENCL, images, labels);
    return test_finish();
}
