/* Eval-mode forwards of a network through the public API, for A/B
 * comparisons of two builds of the library (bench/RESULTS.md):
 *
 *   cc -O2 -Iinclude bench/forward_time.c build/libclcnn.a -lOpenCL -lz -lm -lpthread -lstb
 *      -lprotobuf-c -lplplot -lmpi
 *   ./a.out examples/lenet5.net BATCH [CALLS]
 *
 * One forward of BATCH generated images as a warm-up (it plans, autotunes
 * and builds), then 5 runs of CALLS forwards each (default 1000); prints
 * each run's microseconds a call. The fastest run is the least disturbed
 * on a shared machine. */
#include "clcnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { RUNS = 5 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3 || atoi(argv[2]) < 1) {
        fprintf(stderr, "usage: %s NET BATCH [CALLS]\n", argv[0]);
        return 2;
    }
    const int batch = atoi(argv[2]);
    const int calls = argc > 3 && atoi(argv[3]) > 0 ? atoi(argv[3]) : 1000;
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK ||
        clcnn_net_from_file(ctx, argv[1], &net) != CLCNN_OK ||
        clcnn_net_init_weights(net, 1) != CLCNN_OK) {
        fprintf(stderr, "forward_time: %s\n", ctx ? clcnn_last_error(ctx) : "no context");
        clcnn_net_destroy(net);
        clcnn_context_destroy(ctx);
        return 1;
    }
    const size_t in = (size_t)batch * (size_t)clcnn_net_input_size(net);
    const size_t out = (size_t)batch * (size_t)clcnn_net_output_size(net);
    float *input = malloc(sizeof(float) * in), *output = malloc(sizeof(float) * out);
    int result = input && output ? 0 : 1;
    for (size_t i = 0; i < in && !result; i++)
        input[i] = (float)(i % 17) / 17.0f;
    for (int run = -1; run < RUNS && !result; run++) {
        const int count = run < 0 ? 1 : calls;
        const double start = seconds();
        for (int c = 0; c < count && !result; c++)
            result = clcnn_net_forward(net, input, batch, output, NULL, NULL) != CLCNN_OK;
        if (run >= 0 && !result)
            printf("%.1f us a call\n", (seconds() - start) / count * 1e6);
    }
    if (result)
        fprintf(stderr, "forward_time: %s\n", clcnn_last_error(ctx));
    free(input);
    free(output);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
