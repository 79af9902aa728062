/* Eval-mode forwards keep each node's filters in the forward kernel's
 * layout (prepared_weights, internal.h: the direct kernels' transpose,
 * Winograd's transform) and batchnorm folded into the convolution before
 * it, and make them again only when the parameters or state changed.
 * Checked here: a repeated forward makes none and gives the same bits;
 * after each way the parameters or state change (clcnn_net_set_tensor,
 * clcnn_net_init_weights, a train-mode forward's running statistics, a
 * trainer's step, loading weights) the forward makes them again, agrees
 * with the reference device given the same tensors, and differs from the
 * forward before the change. */
#include "internal.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BATCH = 5, CLASSES = 7 };

/* A 3x3 convolution with batchnorm (folded into it in eval mode), a 1x1
 * convolution and a dense layer, all on kernels that transpose filters
 * (6 input channels: not the row kernel, which reads them as they are);
 * and the same without batchnorm, whose steps change parameters only. */
static const char *const NETWORKS[2] = {"input channels=6 height=9 width=9\n"
                                        "conv filters=8 size=3 pad=1 name=c1\n"
                                        "batchnorm name=bn\n"
                                        "relu\n"
                                        "conv filters=6 size=1 name=c2\n"
                                        "relu\n"
                                        "flatten\n"
                                        "dense units=7 name=fc\n",
                                        "input channels=6 height=9 width=9\n"
                                        "conv filters=8 size=3 pad=1 name=c1\n"
                                        "relu\n"
                                        "conv filters=6 size=1 name=c2\n"
                                        "relu\n"
                                        "flatten\n"
                                        "dense units=7 name=fc\n"};
enum { INPUT = BATCH * 6 * 9 * 9 };

/* Launches that make filters for a forward: the direct kernels'
 * transpose, Winograd's transform and batchnorm's fold into c1. */
static int transposes(const clcnn_context *ctx) {
    return test_kernel_launches(ctx, "conv2d_transpose_for_forward") +
           test_kernel_launches(ctx, "winograd_transform_filters") +
           test_kernel_launches(ctx, "batchnorm_fold");
}

static clcnn_net *network(clcnn_context *ctx, const char *text) {
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "prepared", &net)) ||
        !CHECK_OK(ctx, clcnn_net_init_weights(net, 3))) {
        clcnn_net_destroy(net);
        return NULL;
    }
    return net;
}

/* from's tensors (parameters and state) into to. */
static int copy_tensors(clcnn_net *from, clcnn_net *to) {
    int ok = 1;
    for (int i = 0; i < clcnn_net_tensor_count(from) && ok; i++) {
        clcnn_tensor_info info;
        ok = clcnn_net_tensor_info(from, i, &info) == CLCNN_OK;
        float *values = ok ? test_floats(info.count) : NULL;
        ok = ok && clcnn_net_get_tensor(from, info.name, values, info.count) == CLCNN_OK &&
             clcnn_net_set_tensor(to, info.name, values, info.count) == CLCNN_OK;
        free(values);
    }
    return CHECK(ok);
}

/* The eval-mode forward of net against the reference's given net's
 * tensors; out gets net's output. */
static void check_forward(const char *after, clcnn_net *net, clcnn_net *reference,
                          const float *input, float *out) {
    float expected[BATCH * CLASSES];
    CHECK_OK(net->ctx, clcnn_net_set_mode(net, CLCNN_MODE_EVAL));
    CHECK_OK(net->ctx, clcnn_net_forward(net, input, BATCH, out, NULL, NULL));
    if (!copy_tensors(net, reference))
        return;
    CHECK_OK(reference->ctx, clcnn_net_set_mode(reference, CLCNN_MODE_EVAL));
    CHECK_OK(reference->ctx, clcnn_net_forward(reference, input, BATCH, expected, NULL, NULL));
    /* Relative to at least 1, as test_batchnorm compares folded forwards:
     * folding rounds the scale into the filters. Stale filters are off by
     * the change itself (check_change). */
    const double error = max_relative_error(out, expected, BATCH * CLASSES, 1.0);
    printf("after %s: %.3g against the reference\n", after, error);
    CHECK(error <= 1e-5);
}

/* After a change, a forward that transposes again, agrees with the
 * reference, and differs from the output before it (before). */
static void check_change(const char *what, clcnn_net *net, clcnn_net *reference, const float *input,
                         float *before) {
    const clcnn_context *ctx = net->ctx;
    const int launched = transposes(ctx);
    float out[BATCH * CLASSES];
    check_forward(what, net, reference, input, out);
    if (!CHECK(transposes(ctx) > launched) ||
        !CHECK(!test_bitwise_equal(out, before, BATCH * CLASSES)))
        printf("  after %s: %d transposes, output %s\n", what, transposes(ctx) - launched,
               test_bitwise_equal(out, before, BATCH * CLASSES) ? "unchanged" : "changed");
    memcpy(before, out, sizeof(out));
}

/* Every change on the network of text (with_state: it has running statistics). */
static void check_network(clcnn_context *ctx, clcnn_context *ref_ctx, const char *text,
                          int with_state) {
    clcnn_net *net = network(ctx, text), *reference = network(ref_ctx, text);
    test_rng rng = {2024};
    float input[INPUT], first[BATCH * CLASSES], again[BATCH * CLASSES];
    test_fill_signed(&rng, input, INPUT);
    if (!net || !reference)
        goto done;
    printf("%s batchnorm, CLCNN_WINOGRAD=%d:\n", with_state ? "with" : "without",
           ctx->config.winograd);

    /* The first forward makes the three layers' filters (and folds), the second none. */
    int launched = transposes(ctx);
    const int transforms = test_kernel_launches(ctx, "winograd_transform_filters");
    check_forward("the first forward", net, reference, input, first);
    CHECK((test_kernel_launches(ctx, "winograd_transform_filters") > transforms) ==
          (ctx->config.winograd != 0));
    if (!CHECK(transposes(ctx) == launched + 3 + with_state))
        printf("  the first forward: %d transposes\n", transposes(ctx) - launched);
    launched = transposes(ctx);
    CHECK_OK(ctx, clcnn_net_forward(net, input, BATCH, again, NULL, NULL));
    CHECK(transposes(ctx) == launched);
    CHECK(test_bitwise_equal(first, again, BATCH * CLASSES));

    /* clcnn_net_set_tensor on the host copy. */
    clcnn_tensor_info info;
    CHECK_OK(ctx, clcnn_net_tensor_info(net, 0, &info));
    float *weights = test_floats(info.count);
    CHECK_OK(ctx, clcnn_net_get_tensor(net, info.name, weights, info.count));
    for (int64_t i = 0; i < info.count; i++)
        weights[i] *= -0.5f;
    CHECK_OK(ctx, clcnn_net_set_tensor(net, info.name, weights, info.count));
    free(weights);
    check_change("clcnn_net_set_tensor", net, reference, input, first);

    /* New weights altogether. */
    CHECK_OK(ctx, clcnn_net_init_weights(net, 4));
    check_change("clcnn_net_init_weights", net, reference, input, first);

    /* A train-mode forward moves the running statistics that fold into c1;
     * without them it changes nothing, and the filters stay prepared. */
    CHECK_OK(ctx, clcnn_net_set_mode(net, CLCNN_MODE_TRAIN));
    float scaled[INPUT];
    for (int i = 0; i < INPUT; i++)
        scaled[i] = 3.0f * input[i] + 1.0f;
    CHECK_OK(ctx, clcnn_net_forward(net, scaled, BATCH, again, NULL, NULL));
    if (with_state) {
        check_change("a train-mode forward", net, reference, input, first);
    } else {
        launched = transposes(ctx);
        check_forward("a train-mode forward", net, reference, input, again);
        CHECK(transposes(ctx) == launched);
        CHECK(test_bitwise_equal(first, again, BATCH * CLASSES));
    }

    /* A trainer's step on the device. */
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = BATCH;
    config.learning_rate = 0.1;
    clcnn_trainer *trainer = NULL;
    const int32_t labels[BATCH] = {0, 3, 6, 2, 5};
    if (CHECK_OK(ctx, clcnn_trainer_create(net, &config, &trainer)) &&
        CHECK_OK(ctx, clcnn_trainer_step(trainer, input, labels, BATCH, NULL, NULL)))
        check_change("a trainer's step", net, reference, input, first);
    clcnn_trainer_destroy(trainer);

    /* Weights saved before and loaded back. */
    clcnn_net *saved = network(ctx, text);
    const char *dir = test_path(with_state ? "prepared_with_state" : "prepared");
    if (saved && CHECK_OK(ctx, clcnn_net_save_weights(saved, dir)) &&
        CHECK_OK(ctx, clcnn_net_load_weights(net, dir)))
        check_change("clcnn_net_load_weights", net, reference, input, first);
    clcnn_net_destroy(saved);
done:
    clcnn_net_destroy(net);
    clcnn_net_destroy(reference);
}

int main(void) {
    clcnn_context *ctx = test_opencl_context();
    clcnn_context *ref_ctx = test_context(CLCNN_DEVICE_REFERENCE);
    /* No autotuning: its timing runs would launch transposes of their own
     * when a network is first planned (CTest sets CLCNN_AUTOTUNE=0 too). */
    if (CHECK(ctx != NULL) && CHECK(ref_ctx != NULL) &&
        CHECK_OK(ctx, clcnn_profile_enable(ctx, 1)) &&
        CHECK_OK(ctx, clcnn_context_set_autotune(ctx, 0))) {
        /* c1 on the direct kernels, then on Winograd's fused and products'
         * kernels, whichever tuning would pick. */
        const int winograd[3] = {0, 2, 1};
        for (int w = 0; w < 3; w++) {
            ctx->config.winograd = winograd[w];
            for (int i = 0; i < 2; i++)
                check_network(ctx, ref_ctx, NETWORKS[i], i == 0);
        }
    }
    clcnn_context_destroy(ctx);
    clcnn_context_destroy(ref_ctx);
    return test_finish();
}
