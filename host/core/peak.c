/* The OpenCL device's floating-point peak (kernels/peak.cl), against which
 * clcnn bench states every operation's speed, so that figures from any
 * device compare. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

enum {
    PEAK_CHAINS = 8, /* kernels/peak.cl's default */
    PEAK_RUNS = 5,
    MAX_ITEMS = 1 << 20,
};
/* A timed launch lasts at least this long, so that its start-up cost is small. */
static const double min_launch_seconds = 0.05;

static int peak_vector_width(const clcnn_context *ctx) {
    const cl_uint width = ctx->preferred_vector_width;
    int vw = 1;
    while (vw < 16 && (cl_uint)(vw * 2) <= width)
        vw *= 2;
    return vw;
}

/* Seconds of one launch of `rounds` rounds, waited for. */
static clcnn_status time_launch(clcnn_context *ctx, cl_kernel kernel, cl_mem out, int items,
                                int rounds, double *seconds) {
    const float a = 0.9999f, b = 1e-4f;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &out},
        {sizeof(int), &rounds},
        {sizeof(float), &a},
        {sizeof(float), &b},
    };
    const size_t global[1] = {(size_t)items};
    const double start = clock_seconds();
    clcnn_status status = runtime_launch(ctx, kernel, "fma_peak", 4, args, 1, global, NULL);
    if (status == CLCNN_OK)
        status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
    *seconds = clock_seconds() - start;
    return status;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

clcnn_status clcnn_device_peak(clcnn_context *ctx, double *gflops) {
    if (!ctx || !gflops)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_device_peak: invalid argument");
    *gflops = 0.0;
    clcnn_status status = context_require_device(ctx);
    if (status != CLCNN_OK)
        return status;
    if (!context_is_opencl(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_device_peak: the reference device has no peak kernel");
    cl_uint units = 1;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(units), &units, NULL);
    /* Enough work-items to fill every unit: a work-group's worth per unit. */
    size_t per_unit = ctx->max_work_group_size ? ctx->max_work_group_size : 64;
    size_t wanted = (size_t)(units ? units : 1) * per_unit;
    const int items = wanted > MAX_ITEMS ? MAX_ITEMS : (int)wanted;
    const int vw = peak_vector_width(ctx);
    char options[64];
    snprintf(options, sizeof(options), "-DPEAK_VW=%d -DPEAK_CHAINS=%d", vw, PEAK_CHAINS);
    cl_kernel kernel;
    status = runtime_get_kernel(ctx, "peak", "fma_peak", options, &kernel);
    cl_mem out = NULL;
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)items, &out);
    /* An untimed launch first: PoCL generates a kernel's code at its first
     * launch, which, timed, had ended the search for rounds at once and put
     * the peak at 129 GFLOP/s against 230 (AMD EPYC, AVX-512, cold cache). */
    double seconds = 0.0;
    if (status == CLCNN_OK)
        status = time_launch(ctx, kernel, out, items, 1, &seconds);
    /* Rounds that make a launch long enough. */
    int rounds = 64;
    while (status == CLCNN_OK) {
        status = time_launch(ctx, kernel, out, items, rounds, &seconds);
        if (seconds >= min_launch_seconds || rounds >= (1 << 24))
            break;
        rounds *= 2;
    }
    double times[PEAK_RUNS];
    for (int run = 0; run < PEAK_RUNS && status == CLCNN_OK; run++)
        status = time_launch(ctx, kernel, out, items, rounds, &times[run]);
    float first = 0.0f;
    if (status == CLCNN_OK)
        status = buffer_read(ctx, out, 0, sizeof(float), &first);
    buffer_release(&out);
    if (status != CLCNN_OK)
        return status;
    /* x -> 0.9999 x + 1e-4 tends to 1 from x = item * 1e-3: lanes near 1. */
    if (!(first > 0.0f && first <= (float)(vw * PEAK_CHAINS) * 1.01f))
        return set_error(ctx, CLCNN_ERROR_OPENCL,
                         "fma_peak computed %g, not a sum of values near 1", (double)first);
    /* The fastest run: other work on a shared machine only ever slows a
     * run, and a median taken in a busy moment had put operations at 126 %
     * of the peak (AMD EPYC, 2 cores). */
    qsort(times, PEAK_RUNS, sizeof(double), compare_doubles);
    const double flop = 2.0 * vw * PEAK_CHAINS * (double)rounds * (double)items;
    *gflops = flop / times[0] / 1e9;
    return CLCNN_OK;
}
