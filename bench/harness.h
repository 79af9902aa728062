/* Helpers of the A/B harnesses that call the library's internal entry
 * points (bench/conv_time.c, bench/batchnorm_time.c). */
#ifndef CLCNN_BENCH_HARNESS_H
#define CLCNN_BENCH_HARNESS_H

#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { CALLS = 17, WARM_UP = 2, TIMED = CALLS - WARM_UP };

/* Enqueues operation op (0, 1 or 2) of a harness's layer. */
typedef clcnn_status (*harness_operation)(clcnn_context *ctx, int op, void *layer);

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A device buffer of count floats drawn uniformly from [low, low + 1), or
 * NULL when it cannot be made. */
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

/* Runs operations 0, 1 and 2 in turn CALLS times, each call followed by
 * clFinish, with profiling on, and keeps the seconds of all but the first
 * WARM_UP calls of each, sorted. 0, or 1 after printing the error of a
 * failed call. */
static int time_operations(clcnn_context *ctx, const char *const names[3], harness_operation run,
                           void *layer, double times[3][TIMED]) {
    clcnn_profile_enable(ctx, 1);
    for (int call = 0; call < CALLS; call++)
        for (int op = 0; op < 3; op++) {
            const double start = seconds();
            const clcnn_status status = run(ctx, op, layer);
            clFinish(ctx->queue);
            if (status != CLCNN_OK) {
                fprintf(stderr, "%s: %s\n", names[op], clcnn_last_error(ctx));
                return 1;
            }
            if (call >= WARM_UP)
                times[op][call - WARM_UP] = seconds() - start;
        }
    for (int op = 0; op < 3; op++)
        qsort(times[op], TIMED, sizeof(double), compare_doubles);
    return 0;
}

/* The device time per kernel over all the calls. */
static void print_profile(clcnn_context *ctx) {
    char report[4096];
    clcnn_profile_report(ctx, report, sizeof(report));
    fputs(report, stdout);
}

#endif
