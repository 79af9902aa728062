/* mpirun -np 2 clcnn train against one process with the doubled batch, on
 * 256 Fashion-MNIST images (8 steps of 2 x 16 images) of the LeNet-5.
 *
 * On each device (the reference, then OpenCL with one PoCL thread a rank):
 * - 2 ranks with --batch 16 end within the stated bound of one process with
 *   --batch 32: relative difference (per tensor, max |two - one| / max |one|)
 *   <= 1e-5 on the reference device and <= 1e-4 on OpenCL. The two train
 *   the same model: the ranks' mean gradients over 16 images are halved and
 *   added (in double, rounded once) instead of one mean over 32, and the
 *   forward and backward passes see 16 images instead of 32 (the OpenCL
 *   kernels then sum in another order); the difference is float rounding.
 * - a negative control (reference device): one process with --batch 16
 *   (what each rank would do alone) lands far outside the bound, so the
 *   bound discriminates;
 * - a second identical 2-rank run gives the same weights bit for bit, and
 *   on OpenCL so does one with --bucket 0 (the whole buffer exchanged after
 *   backward instead of buckets read from the device as backward produces
 *   them): each element is summed in rank order whatever the buckets;
 * - rank 0 alone prints the epoch's line, and its train loss is the single
 *   process's.
 * On the reference device, a run of 2 epochs and a run of 1 epoch resumed
 * for a second (every rank loading the checkpoint) end bit for bit alike. */
#include "mpitest.h"

#define IMAGES "256"
#define COMMON_OPTIONS                                                                             \
    "--limit " IMAGES " --test-limit 64 --seed 3 --lr 0.02 --momentum 0.9 --weight-decay 5e-4"

static const char *mpiexec;
static char net_path[1200];

/* Runs clcnn train (on `ranks` ranks, 0: without mpirun) and reads the model. */
static int train(const char *device, int ranks, int batch, int epochs, const char *extra,
                 const char *model, model_tensors *out, char *output, size_t output_size) {
    char prefix[1400] = "POCL_MAX_PTHREAD_COUNT=1";
    if (ranks > 0)
        mpi_prefix(prefix, sizeof(prefix), mpiexec, ranks);
    char command[4096];
    snprintf(command, sizeof(command),
             "%s %s --device %s train %s --data %s %s --batch %d --epochs %d --save %s %s", prefix,
             clcnn_bin(), device, net_path, mpi_fashion_dir, COMMON_OPTIONS, batch, epochs,
             test_path(model), extra);
    const int status = run_command(command, output, output_size);
    if (!CHECK(status == 0)) {
        printf("%s\nexited with %d:\n%s\n", command, status, output);
        return 0;
    }
    return out ? read_model(test_path(model), out) : 1;
}

/* The train loss of the epoch line, or NAN. */
static double train_loss(const char *output) {
    const char *line = strstr(output, ": train loss ");
    return line ? atof(line + strlen(": train loss ")) : NAN;
}

static int count_of(const char *text, const char *what) {
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

static void check_device(const char *device, double bound) {
    static char single_output[65536], two_output[65536], output[65536];
    model_tensors single = {0}, two = {0}, again = {0}, unbucketed = {0}, alone = {0};
    const int opencl = strcmp(device, "opencl") == 0;
    char name[5][64];
    snprintf(name[0], sizeof(name[0]), "single-%s.model", device);
    snprintf(name[1], sizeof(name[1]), "two-%s.model", device);
    snprintf(name[2], sizeof(name[2]), "two-again-%s.model", device);
    snprintf(name[3], sizeof(name[3]), "two-bucket0-%s.model", device);
    snprintf(name[4], sizeof(name[4]), "alone-%s.model", device);
    if (train(device, 0, 32, 1, "", name[0], &single, single_output, sizeof(single_output)) &&
        train(device, 2, 16, 1, "", name[1], &two, two_output, sizeof(two_output)) &&
        train(device, 2, 16, 1, "", name[2], &again, output, sizeof(output)) &&
        (!opencl ||
         train(device, 2, 16, 1, "--bucket 0", name[3], &unbucketed, output, sizeof(output))) &&
        (opencl || train(device, 0, 16, 1, "", name[4], &alone, output, sizeof(output)))) {
        const double difference = model_difference(&two, &single);
        printf("%s: 2 ranks x batch 16 against 1 process x batch 32: relative difference %.3g "
               "(bound %g)\n",
               device, difference, bound);
        CHECK(difference <= bound);
        if (!opencl) {
            const double control = model_difference(&alone, &single);
            printf("%s: 1 process x batch 16 against 1 process x batch 32: %.3g\n", device,
                   control);
            CHECK(control > 100 * bound);
        }
        CHECK(models_identical(&two, &again));
        if (opencl)
            CHECK(models_identical(&two, &unbucketed));
        CHECK(count_of(two_output, "epoch 1/1:") == 1);
        CHECK(strstr(two_output, "data-parallel on 2 ranks") != NULL);
        CHECK(strstr(two_output, "gradient exchange on 2 ranks") != NULL);
        const double loss_single = train_loss(single_output), loss_two = train_loss(two_output);
        printf("%s: train loss %.4f on 2 ranks, %.4f in 1 process\n", device, loss_two,
               loss_single);
        CHECK(fabs(loss_two - loss_single) <= 2e-4);
    }
    free_model(&single);
    free_model(&two);
    free_model(&again);
    free_model(&unbucketed);
    free_model(&alone);
}

/* 2 epochs at once against 1 epoch, then --resume for the second. */
static void check_resume(void) {
    static char output[65536];
    model_tensors whole = {0}, resumed = {0};
    char resume[1400];
    snprintf(resume, sizeof(resume), "--resume %s", test_path("resumed.model"));
    /* The first epoch is check_device's 2-rank run. */
    char copy[3000];
    snprintf(copy, sizeof(copy), "cp %s %s", test_path("two-reference.model"),
             test_path("resumed.model"));
    if (train("reference", 2, 16, 2, "", "whole.model", &whole, output, sizeof(output)) &&
        CHECK(system(copy) == 0) &&
        train("reference", 2, 16, 2, resume, "resumed.model", &resumed, output, sizeof(output))) {
        CHECK(strstr(output, "resuming after epoch 1") != NULL);
        CHECK(count_of(output, "epoch 2/2:") == 1);
        const int identical = models_identical(&whole, &resumed);
        printf("reference: 2 epochs on 2 ranks and 1 + 1 resumed: %s\n",
               identical ? "identical" : "DIFFERENT");
        CHECK(identical);
    }
    free_model(&whole);
    free_model(&resumed);
}

int main(void) {
    mpiexec = mpi_launcher();
    if (!mpiexec)
        return MPI_TEST_SKIPPED;
    const char *source = getenv("CLCNN_SOURCE_DIR");
    snprintf(net_path, sizeof(net_path), "%s/examples/lenet5.net", source ? source : ".");
    check_device("reference", 1e-5);
    check_device("opencl", 1e-4);
    check_resume();
    return test_finish();
}
