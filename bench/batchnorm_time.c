/* The batchnorm operations of one layer shape (train-mode forward keeping
 * its statistics, backward from them, eval-mode forward), timed through the
 * library's internal entry points, for A/B comparisons of two builds
 * (bench/RESULTS.md):
 *
 *   cc -O2 -Ihost -Iinclude -Ibuild bench/batchnorm_time.c build/libclcnn_internal.a \
 *      -lOpenCL -lz -lm -lpthread -lstb -lprotobuf-c -lplplot -lmpi
 *   ./a.out CHANNELS SIZE BATCH [RELU]
 *
 * SIZE x SIZE planes (1: a BatchNorm1d); RELU 1 fuses a relu, as the
 * residual network's layers run. Random data; 17 calls of each operation
 * (each followed by clFinish), the first two not counted; prints the
 * medians (kernel plus launch), GB/s of the tensors read and written once
 * (forward 2, backward 3 floats an element: its relu's mask comes from x)
 * and the fastest
 * call, then the device time per kernel over all the calls. */
#include "harness.h"
#include "ops.h"
#include "ops/batchnorm.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct batchnorm_layer {
    int contiguous, batch, channels, spatial, relu;
    cl_mem x, y, grad_y, grad_x, weight, bias, mean, var, grad_weight, grad_bias, saved;
} batchnorm_layer;

static clcnn_status run(clcnn_context *ctx, int op, void *layer) {
    const batchnorm_layer *l = layer;
    if (op == 0)
        return batchnorm_forward_train(ctx, l->contiguous, l->batch, l->channels, l->spatial, 1e-5f,
                                       0.1f, l->x, l->weight, l->bias, l->mean, l->var, l->y,
                                       l->saved, l->relu, NULL);
    if (op == 1)
        return batchnorm_backward(ctx, l->contiguous, l->batch, l->channels, l->spatial, 1e-5f,
                                  l->x, l->grad_y, l->weight, l->grad_x, 0, l->grad_weight,
                                  l->grad_bias, l->saved, l->relu ? l->y : NULL, NULL);
    return batchnorm_forward_eval(ctx, l->contiguous, l->batch, l->channels, l->spatial, 1e-5f,
                                  l->x, l->weight, l->bias, l->mean, l->var, l->y, l->relu);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s CHANNELS SIZE BATCH [RELU]\n", argv[0]);
        return 2;
    }
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    const int channels = atoi(argv[1]), size = atoi(argv[2]), batch = atoi(argv[3]);
    const int relu = argc > 4 && atoi(argv[4]) != 0;
    const int spatial = size * size;
    const size_t count = (size_t)batch * channels * spatial;
    cl_mem x = random_buffer(ctx, count, -0.5f), y = random_buffer(ctx, count, -0.5f);
    cl_mem grad_y = random_buffer(ctx, count, -0.5f), grad_x = random_buffer(ctx, count, -0.5f);
    cl_mem weight = random_buffer(ctx, (size_t)channels, 0.5f);
    cl_mem bias = random_buffer(ctx, (size_t)channels, -0.5f);
    cl_mem mean = random_buffer(ctx, (size_t)channels, -0.5f);
    cl_mem var = random_buffer(ctx, (size_t)channels, 0.5f);
    cl_mem grad_weight = random_buffer(ctx, (size_t)channels, 0.0f);
    cl_mem grad_bias = random_buffer(ctx, (size_t)channels, 0.0f);
    cl_mem saved = random_buffer(ctx, BATCHNORM_SAVED_FLOATS * (size_t)channels, 0.0f);
    if (!x || !y || !grad_y || !grad_x || !weight || !bias || !mean || !var || !grad_weight ||
        !grad_bias || !saved) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    batchnorm_layer layer = {batchnorm_contiguous_walk(ctx),
                             batch,
                             channels,
                             spatial,
                             relu,
                             x,
                             y,
                             grad_y,
                             grad_x,
                             weight,
                             bias,
                             mean,
                             var,
                             grad_weight,
                             grad_bias,
                             saved};
    static const char *const names[3] = {"forward (train)", "backward", "forward (eval)"};
    double times[3][TIMED];
    if (time_operations(ctx, names, run, &layer, times))
        return 1;
    printf("batchnorm, %d channels, %dx%d, batch %d%s:", channels, size, size, batch,
           relu ? ", relu" : "");
    const double floats[3] = {2.0, 3.0, 2.0};
    for (int op = 0; op < 3; op++) {
        const double median = times[op][TIMED / 2];
        printf(" %s %.3f ms (%.1f GB/s, fastest %.3f ms)%s", names[op], 1e3 * median,
               4e-9 * floats[op] * (double)count / median, 1e3 * times[op][0], op < 2 ? "," : "\n");
    }
    print_profile(ctx);
    cl_mem *buffers[] = {&x,    &y,   &grad_y,      &grad_x,    &weight, &bias,
                         &mean, &var, &grad_weight, &grad_bias, &saved};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++)
        buffer_release(buffers[i]);
    clcnn_context_destroy(ctx);
    return 0;
}
