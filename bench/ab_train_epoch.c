/* Whole training epochs of a network through the public API, for A/B
 * comparisons of two builds of the library (bench/RESULTS.md):
 *
 *   cc -O2 -Iinclude bench/ab_train_epoch.c build/libclcnn.a -lOpenCL -lz -lm -lpthread -lstb
 *   ./a.out examples/lenet5.net [--profile] [--batch N]
 *
 * 6,400 generated 28x28 images, batch 64 (or N), SGD with the trainer's defaults;
 * one warm-up epoch, then three timed ones (images/s each), or with
 * --profile one epoch's device time per kernel. Uses only calls that the
 * first edition's API has too, so it builds against either. */
#include "clcnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { IMAGES = 6400, SIZE = 28 * 28 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s NET [--profile] [--batch N]\n", argv[0]);
        return 2;
    }
    int profile = 0, batch = 64;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--profile") == 0) {
            profile = 1;
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0) {
            batch = atoi(argv[++i]);
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    clcnn_dataset data = {0};
    data.count = IMAGES;
    data.channels = 1;
    data.height = data.width = 28;
    data.classes = 10;
    data.images = malloc(sizeof(float) * IMAGES * SIZE);
    data.labels = malloc(sizeof(int32_t) * IMAGES);
    if (!ctx || !data.images || !data.labels)
        return 1;
    for (long i = 0; i < (long)IMAGES * SIZE; i++)
        data.images[i] = (float)((i * 7919L) % 1000) / 1000.0f;
    for (int i = 0; i < IMAGES; i++)
        data.labels[i] = i % 10;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config);
    config.batch_size = batch;
    double loss, accuracy;
    if (clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK ||
        clcnn_net_from_file(ctx, argv[1], &net) != CLCNN_OK ||
        clcnn_net_init_weights(net, 1) != CLCNN_OK ||
        clcnn_trainer_create(net, &config, &trainer) != CLCNN_OK ||
        clcnn_trainer_epoch(trainer, &data, NULL, NULL, &loss, &accuracy) != CLCNN_OK) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    if (profile) {
        char report[8192];
        clcnn_profile_enable(ctx, 1);
        const double start = seconds();
        clcnn_trainer_epoch(trainer, &data, NULL, NULL, &loss, &accuracy);
        const double wall = seconds() - start;
        clcnn_profile_report(ctx, report, sizeof(report));
        fputs(report, stdout);
        printf("epoch wall %.3f s (profiled)\n", wall);
    } else {
        for (int run = 0; run < 3; run++) {
            const double start = seconds();
            clcnn_trainer_epoch(trainer, &data, NULL, NULL, &loss, &accuracy);
            printf("epoch %.0f images/s\n", IMAGES / (seconds() - start));
        }
    }
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    free(data.images);
    free(data.labels);
    return 0;
}
