/* Synchronised batchnorm under mpirun: N ranks with --batch B train a
 * network with batchnorm as one process with --batch N*B does, running
 * statistics included.
 *
 * The network: conv -> batchnorm -> relu -> maxpool, twice, then dense ->
 * batchnorm (BatchNorm1d) -> relu -> dense -> softmax, on Fashion-MNIST
 * images, one epoch. The layers before a batchnorm have no bias, as usual:
 * the batchnorm cancels it, so its gradient is zero up to rounding and the
 * bias would stay at rounding noise (around 1e-9) that no relative bound
 * compares. On each device (the reference, then OpenCL with one
 * PoCL thread a rank):
 * - 2 ranks x --batch 16 against 1 process x --batch 32 on 256 images (8
 *   steps): relative difference per tensor (max |ranks - one| / max |one|,
 *   over every parameter and every running mean and variance) <= 1e-5 on the
 *   reference device and <= 1e-4 on OpenCL, the bounds of the LeNet-5's
 *   equivalence (test_mpi_train.c). The difference is float rounding: the
 *   ranks' moments combined in double instead of one channel's sums, the
 *   gradients' two halves added, and on OpenCL the kernels' sums over 16
 *   images instead of 32.
 * - a second identical 2-rank run gives the same model bit for bit;
 * - 4 ranks x --batch 4 against 1 process x --batch 16 on 99 images: the
 *   last global batch has 3 images, so rank 0 has none (it still takes part
 *   in every batchnorm exchange, else the others would wait for ever) and
 *   ranks 1 to 3 have one each: one value per channel for the BatchNorm1d,
 *   which a rank alone refuses, three over the ranks. Same bounds. (Not 3
 *   ranks and a last batch of 2: a BatchNorm1d over two values normalises
 *   them to about -1 and +1 whatever they are, so its input gradient is a
 *   cancellation to nearly nothing and float rounding dominates what reaches
 *   the layers below. Measured on OpenCL: 3 ranks against one process 7e-4
 *   in the first convolution's weights, and one process with the tiled
 *   against the register-blocked convolution kernels already 3e-5; without
 *   that BatchNorm1d, 3 ranks against one process 1.2e-6.)
 * The control (reference device): one process with --batch 16 against one
 * with --batch 32, which is what each rank would train with per-rank batch
 * statistics and no gradient exchange, lands far outside the bound.
 *
 * A residual block (batchnorm -> add -> relu) on OpenCL: a rank's plan runs
 * the add inside the batchnorm before it, but a synchronised batchnorm
 * runs it apart (add_apart_forward/backward). Trained on 2 and on 4 ranks
 * (rank 0 without images in the last step), once so and once with
 * CLCNN_FUSE=0 (the add node itself): the same model bit for bit. */
#include "mpitest.h"

#define COMMON_OPTIONS "--test-limit 64 --seed 3 --lr 0.05 --momentum 0.9 --weight-decay 5e-4"

static const char network[] = "input channels=1 height=28 width=28\n"
                              "conv filters=6 size=3 pad=1 bias=false\n"
                              "batchnorm\n"
                              "relu\n"
                              "maxpool size=2\n"
                              "conv filters=8 size=3 pad=1 bias=false\n"
                              "batchnorm\n"
                              "relu\n"
                              "maxpool size=2\n"
                              "flatten\n"
                              "dense units=32 bias=false\n"
                              "batchnorm\n"
                              "relu\n"
                              "dense units=10\n"
                              "softmax\n";

static const char residual_network[] = "input channels=1 height=28 width=28\n"
                                       "conv filters=8 size=3 pad=1 bias=false\n"
                                       "batchnorm\n"
                                       "relu name=stem\n"
                                       "conv filters=8 size=3 pad=1 bias=false\n"
                                       "batchnorm\n"
                                       "relu\n"
                                       "conv filters=8 size=3 pad=1 bias=false\n"
                                       "batchnorm name=block_bn\n"
                                       "add inputs=block_bn,stem\n"
                                       "relu\n"
                                       "maxpool size=4\n"
                                       "flatten\n"
                                       "dense units=10\n"
                                       "softmax\n";

static const char *mpiexec;
static char net_path[1200], residual_path[1200];

/* Runs clcnn train of the network in `net` on `ranks` ranks (0: without
 * mpirun), with `env` (VAR=value, or "") in every rank's environment, and
 * reads the model. */
static int train_net(const char *net, const char *env, const char *device, int ranks, int batch,
                     int images, const char *model, model_tensors *out) {
    static char output[65536];
    char prefix[1400] = "POCL_MAX_PTHREAD_COUNT=1";
    if (ranks > 0)
        mpi_prefix(prefix, sizeof(prefix), mpiexec, ranks);
    char command[4096];
    snprintf(command, sizeof(command),
             "%s%s%s %s --device %s train %s --data %s %s --limit %d --batch %d --epochs 1 "
             "--save %s",
             env, *env ? " " : "", prefix, clcnn_bin(), device, net, mpi_fashion_dir,
             COMMON_OPTIONS, images, batch, test_path(model));
    const int status = run_command(command, output, sizeof(output));
    if (!CHECK(status == 0)) {
        printf("%s\nexited with %d:\n%s\n", command, status, output);
        return 0;
    }
    return read_model(test_path(model), out);
}

static int train(const char *device, int ranks, int batch, int images, const char *model,
                 model_tensors *out) {
    return train_net(net_path, "", device, ranks, batch, images, model, out);
}

/* model_difference over the running statistics alone. */
static double state_difference(const model_tensors *a, const model_tensors *b) {
    model_tensors sa = *a, sb = *b;
    double worst = 0.0;
    for (int i = 0; i < a->count; i++) {
        if (!strstr(a->names[i], ".running_"))
            continue;
        sa.count = sb.count = 1;
        sa.offsets[0] = sb.offsets[0] = a->offsets[i];
        sa.offsets[1] = sb.offsets[1] = a->offsets[i + 1];
        sa.values = a->values;
        sb.values = b->values;
        worst = fmax(worst, model_difference(&sa, &sb));
    }
    return worst;
}

/* ranks x batch against one process with ranks * batch, on images images. */
static void check_equivalence(const char *device, int ranks, int batch, int images, double bound,
                              int repeat, int control) {
    model_tensors single = {0}, several = {0}, again = {0}, alone = {0};
    char name[4][96];
    snprintf(name[0], sizeof(name[0]), "single-%s-%d.model", device, ranks);
    snprintf(name[1], sizeof(name[1]), "ranks-%s-%d.model", device, ranks);
    snprintf(name[2], sizeof(name[2]), "ranks-again-%s-%d.model", device, ranks);
    snprintf(name[3], sizeof(name[3]), "alone-%s-%d.model", device, ranks);
    if (train(device, 0, ranks * batch, images, name[0], &single) &&
        train(device, ranks, batch, images, name[1], &several) &&
        (!repeat || train(device, ranks, batch, images, name[2], &again)) &&
        (!control || train(device, 0, batch, images, name[3], &alone))) {
        const double difference = model_difference(&several, &single);
        /* 4 per batchnorm, the weights of the layers before them, the last dense layer's 2 */
        CHECK(single.count == 17);
        printf("%s: %d ranks x batch %d against 1 process x batch %d, %d images: relative "
               "difference %.3g (bound %g), running statistics alone %.3g\n",
               device, ranks, batch, ranks * batch, images, difference, bound,
               state_difference(&several, &single));
        CHECK(difference <= bound);
        if (repeat) {
            const int identical = models_identical(&several, &again);
            printf("%s: a second %d-rank run: %s\n", device, ranks,
                   identical ? "identical" : "DIFFERENT");
            CHECK(identical);
        }
        if (control) {
            const double alone_difference = model_difference(&alone, &single);
            printf("%s: 1 process x batch %d against 1 process x batch %d: %.3g\n", device, batch,
                   ranks * batch, alone_difference);
            CHECK(alone_difference > 100 * bound);
        }
    }
    free_model(&single);
    free_model(&several);
    free_model(&again);
    free_model(&alone);
}

/* The residual network on `ranks` ranks, its add inside the batchnorm's
 * plan and apart (CLCNN_FUSE=0): the same model. */
static void check_residual_fused_apart(int ranks, int batch, int images) {
    model_tensors fused = {0}, apart = {0};
    char name[2][96];
    snprintf(name[0], sizeof(name[0]), "residual-fused-%d.model", ranks);
    snprintf(name[1], sizeof(name[1]), "residual-apart-%d.model", ranks);
    if (train_net(residual_path, "", "opencl", ranks, batch, images, name[0], &fused) &&
        train_net(residual_path, "CLCNN_FUSE=0", "opencl", ranks, batch, images, name[1], &apart)) {
        const int identical = models_identical(&fused, &apart);
        printf("opencl: residual network on %d ranks x batch %d, %d images, fused against "
               "CLCNN_FUSE=0: %s (relative difference %.3g)\n",
               ranks, batch, images, identical ? "identical" : "DIFFERENT",
               model_difference(&fused, &apart));
        CHECK(identical);
    }
    free_model(&fused);
    free_model(&apart);
}

int main(void) {
    mpiexec = mpi_launcher();
    if (!mpiexec)
        return MPI_TEST_SKIPPED;
    snprintf(net_path, sizeof(net_path), "%s", test_path("syncbn.net"));
    if (!CHECK(write_text(net_path, network) == 0))
        return test_finish();
    check_equivalence("reference", 2, 16, 256, 1e-5, 1, 1);
    check_equivalence("reference", 4, 4, 99, 1e-5, 0, 0);
    check_equivalence("opencl", 2, 16, 256, 1e-4, 1, 0);
    check_equivalence("opencl", 4, 4, 99, 1e-4, 0, 0);
    snprintf(residual_path, sizeof(residual_path), "%s", test_path("syncbn-residual.net"));
    if (CHECK(write_text(residual_path, residual_network) == 0)) {
        check_residual_fused_apart(2, 16, 256);
        check_residual_fused_apart(4, 4, 99);
    }
    return test_finish();
}
