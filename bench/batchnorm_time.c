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
 * (forward 2, backward 3 or with RELU 4 floats an element) and the fastest
 * call, then the device time per kernel over all the calls. */
#include "ops.h"
#include "ops/batchnorm.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { CALLS = 17, WARM_UP = 2, TIMED = CALLS - WARM_UP };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static cl_mem random_buffer(clcnn_context *ctx, size_t count, float low) {
    float *values = malloc(sizeof(float) * count);
    cl_mem buffer = NULL;
    if (!values)
        return NULL;
    for (size_t i = 0; i < count; i++)
        values[i] = low + (float)rand() / (float)RAND_MAX;
    if (buffer_create(ctx, sizeof(float) * count, &buffer) != CLCNN_OK ||
        buffer_write(ctx, buffer, 0, sizeof(float) * count, values) != CLCNN_OK)
        buffer = NULL;
    free(values);
    return buffer;
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
    cl_mem saved = random_buffer(ctx, 3 * (size_t)channels, 0.0f);
    if (!x || !y || !grad_y || !grad_x || !weight || !bias || !mean || !var || !grad_weight ||
        !grad_bias || !saved) {
        fprintf(stderr, "%s\n", clcnn_last_error(ctx));
        return 1;
    }
    const int contiguous = batchnorm_contiguous_walk(ctx);
    clcnn_profile_enable(ctx, 1);
    static const char *const names[3] = {"forward (train)", "backward", "forward (eval)"};
    double times[3][TIMED];
    for (int call = 0; call < CALLS; call++)
        for (int op = 0; op < 3; op++) {
            const double start = seconds();
            clcnn_status status =
                op == 0 ? batchnorm_forward_train(ctx, contiguous, batch, channels, spatial, 1e-5f,
                                                  0.1f, x, weight, bias, mean, var, y, saved, relu)
                : op == 1 ? batchnorm_backward(ctx, contiguous, batch, channels, spatial, 1e-5f, x,
                                               grad_y, weight, grad_x, 0, grad_weight, grad_bias,
                                               saved, relu ? y : NULL)
                          : batchnorm_forward_eval(ctx, contiguous, batch, channels, spatial, 1e-5f,
                                                   x, weight, bias, mean, var, y, relu);
            clFinish(ctx->queue);
            if (status != CLCNN_OK) {
                fprintf(stderr, "%s: %s\n", names[op], clcnn_last_error(ctx));
                return 1;
            }
            if (call >= WARM_UP)
                times[op][call - WARM_UP] = seconds() - start;
        }
    printf("batchnorm, %d channels, %dx%d, batch %d%s:", channels, size, size, batch,
           relu ? ", relu" : "");
    const double floats[3] = {2.0, relu ? 4.0 : 3.0, 2.0};
    for (int op = 0; op < 3; op++) {
        qsort(times[op], TIMED, sizeof(double), compare_doubles);
        const double median = times[op][TIMED / 2];
        printf(" %s %.3f ms (%.1f GB/s, fastest %.3f ms)%s", names[op], 1e3 * median,
               4e-9 * floats[op] * (double)count / median, 1e3 * times[op][0], op < 2 ? "," : "\n");
    }
    char report[4096];
    clcnn_profile_report(ctx, report, sizeof(report));
    fputs(report, stdout);
    cl_mem *buffers[] = {&x,    &y,   &grad_y,      &grad_x,    &weight, &bias,
                         &mean, &var, &grad_weight, &grad_bias, &saved};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++)
        buffer_release(buffers[i]);
    clcnn_context_destroy(ctx);
    return 0;
}
