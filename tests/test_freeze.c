/* Frozen layers (transfer learning), both devices: a frozen layer's
 * parameters and batchnorm statistics stay bit for bit as they were while
 * the others train; the trainer keeps optimizer state only for what it
 * trains; a frozen batchnorm computes as in eval mode, so the gradients of
 * the rest equal an eval-mode pass's; freezing a convolution in the middle
 * leaves the gradients below it as they were; a frozen layer has no
 * gradient to read; a checkpoint keeps the frozen set and resumes bit for
 * bit; freezing everything or changing the set under a trainer is refused. */
#include "internal.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char net_text[] = "input channels=1 height=6 width=6\n"
                               "conv filters=3 size=3 pad=1 name=conv1\n"
                               "batchnorm name=bn1\n"
                               "relu\n"
                               "conv filters=4 size=3 name=conv2\n"
                               "batchnorm name=bn2\n"
                               "relu\n"
                               "flatten\n"
                               "dense units=3 name=fc\n"
                               "softmax\n";

enum { PIXELS = 36, IMAGES = 8, STEPS = 3 };

static const char *const tensor_names[] = {
    "conv1.weight",     "conv1.bias",      "bn1.weight", "bn1.bias",   "bn1.running_mean",
    "bn1.running_var",  "conv2.weight",    "conv2.bias", "bn2.weight", "bn2.bias",
    "bn2.running_mean", "bn2.running_var", "fc.weight",  "fc.bias"};
enum { TENSORS = sizeof(tensor_names) / sizeof(tensor_names[0]) };

static clcnn_net *make_net(clcnn_context *ctx) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, net_text, "freeze.net", &net)))
        return NULL;
    if (!CHECK_OK(ctx, clcnn_net_init_weights(net, 3))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

static void make_batch(float *images, int32_t *labels, uint64_t seed) {
    test_rng r = {seed};
    for (int i = 0; i < IMAGES * PIXELS; i++)
        images[i] = test_rand_float(&r, -1.0f, 1.0f);
    for (int n = 0; n < IMAGES; n++)
        labels[n] = test_rand_int(&r, 0, 2);
}

/* Every tensor's values, concatenated in tensor_names order. */
static float *snapshot(clcnn_context *ctx, clcnn_net *net, int64_t *offsets) {
    int64_t total = 0;
    for (int k = 0; k < TENSORS; k++) {
        offsets[k] = total;
        clcnn_tensor_info info;
        const int index = net_find_tensor(net, tensor_names[k]);
        if (!CHECK(index >= 0) || !CHECK_OK(ctx, clcnn_net_tensor_info(net, index, &info)))
            return NULL;
        total += info.count;
    }
    offsets[TENSORS] = total;
    float *values = malloc(sizeof(float) * (size_t)total);
    for (int k = 0; values && k < TENSORS; k++)
        CHECK_OK(ctx, clcnn_net_get_tensor(net, tensor_names[k], values + offsets[k],
                                           offsets[k + 1] - offsets[k]));
    return values;
}

static int same_tensor(const float *a, const float *b, const int64_t *offsets, int k) {
    return memcmp(a + offsets[k], b + offsets[k],
                  sizeof(float) * (size_t)(offsets[k + 1] - offsets[k])) == 0;
}

static clcnn_trainer *make_trainer(clcnn_context *ctx, clcnn_net *net) {
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = IMAGES;
    config.learning_rate = 0.1;
    config.momentum = 0.9;
    config.weight_decay = 1e-3;
    clcnn_trainer *trainer = NULL;
    CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer));
    return trainer;
}

static void steps(clcnn_context *ctx, clcnn_trainer *trainer, int first, int count) {
    float images[IMAGES * PIXELS];
    int32_t labels[IMAGES];
    for (int s = first; s < first + count; s++) {
        make_batch(images, labels, 100 + (uint64_t)s);
        CHECK_OK(ctx, clcnn_trainer_step(trainer, images, labels, IMAGES, NULL, NULL));
    }
}

/* --freeze-until bn1: conv1 and bn1 (with its statistics) stay; the rest move. */
static void check_frozen_stay(clcnn_context *ctx, const char *device) {
    clcnn_net *net = make_net(ctx);
    if (!net)
        return;
    int64_t offsets[TENSORS + 1];
    float *before = snapshot(ctx, net, offsets);
    clcnn_trainer *trainer = NULL;
    if (CHECK_OK(ctx, clcnn_net_freeze_until(net, "bn1")) &&
        CHECK(clcnn_net_is_frozen(net, "bn1")) && CHECK(clcnn_net_is_frozen(net, "conv1")) &&
        CHECK(!clcnn_net_is_frozen(net, "conv2")) && (trainer = make_trainer(ctx, net)) != NULL) {
        /* State for conv2, bn2 and fc only: one span, well below the whole buffer. */
        CHECK(trainer->span_count == 1);
        CHECK(trainer->state_floats < net->parameter_floats);
        CHECK(trainer->tensor_state_offset[net_find_tensor(net, "conv1.weight")] == -1);
        CHECK(trainer->tensor_state_offset[net_find_tensor(net, "conv2.weight")] == 0);
        steps(ctx, trainer, 0, STEPS);
        float *after = snapshot(ctx, net, offsets);
        for (int k = 0; before && after && k < TENSORS; k++) {
            const int frozen = k < 6; /* conv1.*, bn1.* */
            if (!check_true(same_tensor(before, after, offsets, k) == frozen, tensor_names[k],
                            __FILE__, __LINE__))
                fprintf(stderr, "  %s: %s %s\n", device, tensor_names[k],
                        frozen ? "changed though frozen" : "did not train");
        }
        free(after);
        float grad[27];
        CHECK(clcnn_net_get_tensor_gradient(net, "conv1.weight", grad, 27) ==
              CLCNN_ERROR_INVALID_ARGUMENT);
        /* A changed frozen set is refused by the trainer made for the old one. */
        CHECK_OK(ctx, clcnn_net_freeze(net, "conv2", 1));
        float images[IMAGES * PIXELS];
        int32_t labels[IMAGES];
        make_batch(images, labels, 7);
        CHECK(clcnn_trainer_step(trainer, images, labels, IMAGES, NULL, NULL) ==
              CLCNN_ERROR_INVALID_ARGUMENT);
    }
    clcnn_trainer_destroy(trainer);
    free(before);
    clcnn_net_destroy(net);
}

/* The gradients of net's trained tensors in tensor_names order after one
 * backward pass in mode; frozen ones skipped. */
static int gradients(clcnn_context *ctx, clcnn_net *net, clcnn_mode mode, float *out,
                     const int64_t *offsets) {
    float images[IMAGES * PIXELS];
    int32_t labels[IMAGES];
    make_batch(images, labels, 42);
    double loss;
    if (!CHECK_OK(ctx, clcnn_net_set_mode(net, mode)) ||
        !CHECK_OK(ctx, clcnn_net_backward(net, images, IMAGES, labels, NULL, &loss)))
        return 0;
    for (int k = 0; k < TENSORS; k++) {
        const char *name = tensor_names[k];
        const named_tensor *t = &net->tensors[net_find_tensor(net, name)];
        if (t->kind != TENSOR_PARAMETER || net->frozen[t->layer])
            continue;
        if (!CHECK_OK(ctx, clcnn_net_get_tensor_gradient(net, name, out + offsets[k],
                                                         offsets[k + 1] - offsets[k])))
            return 0;
    }
    return 1;
}

/* Frozen batchnorms compute as in eval mode: every other gradient equals an
 * eval-mode pass's over the same network unfrozen. A frozen conv2 changes
 * nothing below it. Both bit for bit: the same kernels run either way. */
static void check_gradients(clcnn_context *ctx, const char *device) {
    clcnn_net *frozen = make_net(ctx), *plain = make_net(ctx);
    int64_t offsets[TENSORS + 1];
    float *values = frozen ? snapshot(ctx, frozen, offsets) : NULL;
    const size_t bytes = sizeof(float) * (size_t)(values ? offsets[TENSORS] : 1);
    float *a = calloc(1, bytes), *b = calloc(1, bytes);
    if (!plain || !values || !a || !b)
        goto done;
    CHECK_OK(ctx, clcnn_net_freeze(frozen, "bn1", 1));
    CHECK_OK(ctx, clcnn_net_freeze(frozen, "bn2", 1));
    if (gradients(ctx, frozen, CLCNN_MODE_TRAIN, a, offsets) &&
        gradients(ctx, plain, CLCNN_MODE_EVAL, b, offsets))
        for (int k = 0; k < TENSORS; k++)
            if (strncmp(tensor_names[k], "bn", 2) != 0 &&
                !check_true(same_tensor(a, b, offsets, k), tensor_names[k], __FILE__, __LINE__))
                fprintf(stderr, "  %s: frozen batchnorms: %s differs from eval mode\n", device,
                        tensor_names[k]);
    /* Only conv2 frozen, both in train mode: conv1, bn1, bn2 and fc as unfrozen. */
    CHECK_OK(ctx, clcnn_net_freeze(frozen, "bn1", 0));
    CHECK_OK(ctx, clcnn_net_freeze(frozen, "bn2", 0));
    CHECK_OK(ctx, clcnn_net_freeze(frozen, "conv2", 1));
    memset(a, 0, bytes);
    memset(b, 0, bytes);
    if (gradients(ctx, frozen, CLCNN_MODE_TRAIN, a, offsets) &&
        gradients(ctx, plain, CLCNN_MODE_TRAIN, b, offsets))
        for (int k = 0; k < TENSORS; k++)
            if (!check_true(same_tensor(a, b, offsets, k) ==
                                (strncmp(tensor_names[k], "conv2", 5) != 0),
                            tensor_names[k], __FILE__, __LINE__))
                fprintf(stderr, "  %s: frozen conv2: %s\n", device, tensor_names[k]);
done:
    free(a);
    free(b);
    free(values);
    clcnn_net_destroy(frozen);
    clcnn_net_destroy(plain);
}

/* Steps, a checkpoint, a load and more steps equal the same steps in one go. */
static void check_resume(clcnn_context *ctx, const char *device) {
    char name[64], path[1024];
    snprintf(name, sizeof(name), "freeze_%s.model", device);
    snprintf(path, sizeof(path), "%s", test_path(name));
    clcnn_net *whole = make_net(ctx), *first = make_net(ctx), *resumed = NULL;
    clcnn_trainer *whole_trainer = NULL, *first_trainer = NULL, *resumed_trainer = NULL;
    float *a = NULL, *b = NULL;
    int64_t offsets[TENSORS + 1];
    if (!whole || !first || !CHECK_OK(ctx, clcnn_net_freeze_until(whole, "conv2")) ||
        !CHECK_OK(ctx, clcnn_net_freeze_until(first, "conv2")) ||
        !(whole_trainer = make_trainer(ctx, whole)) || !(first_trainer = make_trainer(ctx, first)))
        goto done;
    steps(ctx, whole_trainer, 0, 2 * STEPS);
    steps(ctx, first_trainer, 0, STEPS);
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    if (!CHECK_OK(ctx, clcnn_model_save(first, first_trainer, &info, path)) ||
        !CHECK_OK(ctx, clcnn_model_load(ctx, path, &resumed, &resumed_trainer, NULL)))
        goto done;
    CHECK(clcnn_net_is_frozen(resumed, "conv1") && clcnn_net_is_frozen(resumed, "bn1") &&
          clcnn_net_is_frozen(resumed, "conv2") && !clcnn_net_is_frozen(resumed, "bn2"));
    steps(ctx, resumed_trainer, STEPS, STEPS);
    a = snapshot(ctx, whole, offsets);
    b = snapshot(ctx, resumed, offsets);
    for (int k = 0; a && b && k < TENSORS; k++)
        if (!check_true(same_tensor(a, b, offsets, k), tensor_names[k], __FILE__, __LINE__))
            fprintf(stderr, "  %s: resumed %s differs\n", device, tensor_names[k]);
done:
    free(a);
    free(b);
    clcnn_trainer_destroy(whole_trainer);
    clcnn_trainer_destroy(first_trainer);
    clcnn_trainer_destroy(resumed_trainer);
    clcnn_net_destroy(whole);
    clcnn_net_destroy(first);
    clcnn_net_destroy(resumed);
}

static void check_refusals(clcnn_context *ctx) {
    clcnn_net *net = make_net(ctx);
    if (!net)
        return;
    CHECK(clcnn_net_freeze(net, "nonesuch", 1) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_net_freeze(net, "input", 1) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(clcnn_net_freeze_until(net, "nonesuch") == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK_OK(ctx, clcnn_net_freeze_until(net, "fc"));
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    clcnn_trainer *trainer = NULL;
    CHECK(clcnn_trainer_create(net, &config, &trainer) == CLCNN_ERROR_INVALID_ARGUMENT);
    CHECK(trainer == NULL);
    clcnn_net_destroy(net);
}

int main(void) {
    const clcnn_device_kind kinds[] = {CLCNN_DEVICE_REFERENCE, CLCNN_DEVICE_OPENCL};
    for (int d = 0; d < 2; d++) {
        clcnn_context *ctx = NULL;
        if (kinds[d] == CLCNN_DEVICE_OPENCL) {
            ctx = test_opencl_context();
        } else {
            ctx = clcnn_context_create();
            if (ctx && clcnn_context_select_device(ctx, kinds[d], -1, -1) != CLCNN_OK) {
                clcnn_context_destroy(ctx);
                ctx = NULL;
            }
        }
        if (!CHECK(ctx != NULL))
            continue;
        const char *device = d ? "opencl" : "reference";
        check_frozen_stay(ctx, device);
        check_gradients(ctx, device);
        check_resume(ctx, device);
        if (d == 0)
            check_refusals(ctx);
        clcnn_context_destroy(ctx);
    }
    return test_finish();
}
