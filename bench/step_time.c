/* The compute time of one training step of a network, for the scaling
 * model of docs/distributed.md:
 *
 *   cc -O2 -Iinclude bench/step_time.c build/libclcnn.a -lOpenCL -lz -lm -lpthread -lstb
 *   POCL_MAX_PTHREAD_COUNT=1 ./a.out examples/lenet5.net 64 [steps]
 *
 * Random images of the network's input shape with random labels, batch B,
 * SGD with the trainer's defaults: one warm-up epoch of 2 steps, then
 * `steps` (default 5) steps timed by the clock with profiling off, and the
 * same steps again with kernel profiling on, whose kernel times are summed
 * (the device time of a step, which other processes on a shared machine
 * disturb less than the clock). Prints the parameter count, and per step the
 * wall and the kernel seconds. */
#include "clcnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The sum of the seconds column of clcnn_profile_report's lines. */
static double kernel_seconds(const char *report) {
    double total = 0.0;
    for (const char *line = report; *line;) {
        char name[128];
        int launches = 0;
        double s = 0.0;
        if (sscanf(line, "%127s %d %lf", name, &launches, &s) == 3)
            total += s;
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    return total;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s NET BATCH [STEPS]\n", argv[0]);
        return 2;
    }
    const int batch = atoi(argv[2]);
    const int steps = argc > 3 ? atoi(argv[3]) : 5;
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK ||
        clcnn_net_from_file(ctx, argv[1], &net) != CLCNN_OK ||
        clcnn_net_init_weights(net, 1) != CLCNN_OK) {
        fprintf(stderr, "%s\n", ctx ? clcnn_last_error(ctx) : "out of memory");
        return 1;
    }
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int64_t size = clcnn_net_input_size(net);
    const int64_t classes = clcnn_net_output_size(net);
    clcnn_dataset data = {0};
    data.count = (int64_t)batch * steps;
    data.channels = input.shape[0];
    data.height = input.shape[1];
    data.width = input.shape[2];
    data.classes = (int)classes;
    data.images = malloc(sizeof(float) * (size_t)(data.count * size));
    data.labels = malloc(sizeof(int32_t) * (size_t)data.count);
    if (!data.images || !data.labels)
        return 1;
    srand(7);
    for (int64_t i = 0; i < data.count * size; i++)
        data.images[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    for (int64_t i = 0; i < data.count; i++)
        data.labels[i] = (int32_t)(rand() % classes);
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = batch;
    config.epochs = 1000;
    if (clcnn_trainer_create(net, &config, &trainer) != CLCNN_OK) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    clcnn_dataset warm = clcnn_dataset_head(&data, 2 * (int64_t)batch);
    double start = seconds();
    clcnn_status status = clcnn_trainer_epoch(trainer, &warm, NULL, NULL, NULL, NULL);
    const double warm_seconds = seconds() - start;
    start = seconds();
    if (status == CLCNN_OK)
        status = clcnn_trainer_epoch(trainer, &data, NULL, NULL, NULL, NULL);
    const double wall = (seconds() - start) / steps;
    static char report[1 << 16];
    if (status == CLCNN_OK)
        status = clcnn_profile_enable(ctx, 1);
    if (status == CLCNN_OK)
        status = clcnn_profile_report(ctx, report, sizeof(report)); /* resets */
    if (status == CLCNN_OK)
        status = clcnn_trainer_epoch(trainer, &data, NULL, NULL, NULL, NULL);
    if (status == CLCNN_OK)
        status = clcnn_profile_report(ctx, report, sizeof(report));
    if (status != CLCNN_OK) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    printf("%s: %lld parameters, batch %d, %d steps: %.4f s a step by the clock, %.4f s of "
           "kernels (warm-up %.1f s)\n",
           argv[1], (long long)clcnn_net_parameter_count(net), batch, steps, wall,
           kernel_seconds(report) / steps, warm_seconds);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    free(data.images);
    free(data.labels);
    return 0;
}
