/* The OpenCL device's floating-point peak and streaming bandwidth
 * (kernels/peak.cl), against which clcnn bench states every operation's
 * speed, so that figures from any device compare; and its call floor, the
 * shortest synchronous call, which every wall figure of one call contains. */
#include "internal.h"

#include <stdio.h>

enum {
    PEAK_CHAINS = 8, /* kernels/peak.cl's default */
    PEAK_RUNS = 5,
    FLOOR_CALLS = 20,
    MAX_ITEMS = 1 << 20,
    MAX_STREAM_LAUNCHES = 1 << 12,
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

/* Seconds of `launches` launches of a kernel over `items` work-items in
 * work-groups of `group` (0: the driver's choice), enqueued back to back
 * and waited for once. */
static clcnn_status time_launches(clcnn_context *ctx, cl_kernel kernel, const char *name,
                                  const kernel_arg *args, int arg_count, size_t items, size_t group,
                                  int launches, double *seconds) {
    const size_t global[1] = {items}, local[1] = {group};
    const double start = clock_seconds();
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < launches && status == CLCNN_OK; i++)
        status =
            runtime_launch(ctx, kernel, name, arg_count, args, 1, global, group ? local : NULL);
    if (status == CLCNN_OK)
        status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
    *seconds = clock_seconds() - start;
    return status;
}

/* Seconds of one launch of fma_peak's `rounds` rounds (time_launches). */
static clcnn_status time_launch(clcnn_context *ctx, cl_kernel kernel, cl_mem out, int items,
                                int group, int rounds, double *seconds) {
    const float a = 0.9999f, b = 1e-4f;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &out},
        {sizeof(int), &rounds},
        {sizeof(float), &a},
        {sizeof(float), &b},
    };
    return time_launches(ctx, kernel, "fma_peak", args, 4, (size_t)items, (size_t)group, 1,
                         seconds);
}

/* The fastest of `launches` timed launches (time_launch's arguments): other
 * work on a shared machine only ever slows a launch, and a median taken in
 * a busy moment had put operations at 126 % of the peak (AMD EPYC, 2
 * cores). */
static clcnn_status fastest_launch(clcnn_context *ctx, cl_kernel kernel, cl_mem out, int items,
                                   int group, int rounds, int launches, double *fastest) {
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < launches && status == CLCNN_OK; i++) {
        double took = 0.0;
        status = time_launch(ctx, kernel, out, items, group, rounds, &took);
        if (i == 0 || took < *fastest)
            *fastest = took;
    }
    return status;
}

/* The peak kernel set up: its output buffer (the caller releases it), a
 * work-group's worth of work-items for each compute unit, its vectors'
 * floats. */
typedef struct peak_setup {
    cl_kernel kernel;
    cl_mem out;
    int items, vw, units;
} peak_setup;

/* ctx has an OpenCL device; caller names the API call in errors. */
static clcnn_status require_opencl(clcnn_context *ctx, const char *caller) {
    clcnn_status status = context_require_device(ctx);
    if (status == CLCNN_OK && !context_is_opencl(ctx))
        status = set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                           "%s: the reference device has no peak kernels", caller);
    return status;
}

/* The peak kernel set up on ctx's device and launched once untimed: PoCL
 * generates a kernel's code at its first launch, which, timed, had ended
 * the peak's search for rounds at once and put the peak at 129 GFLOP/s
 * against 230 (AMD EPYC, AVX-512, cold cache). caller names the API call
 * in errors. */
static clcnn_status peak_kernel(clcnn_context *ctx, const char *caller, peak_setup *k) {
    k->out = NULL;
    clcnn_status status = require_opencl(ctx, caller);
    if (status != CLCNN_OK)
        return status;
    cl_uint compute_units = 1;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(compute_units), &compute_units,
                    NULL);
    k->units = compute_units ? (int)compute_units : 1;
    if (k->units > MAX_ITEMS)
        k->units = MAX_ITEMS;
    size_t per_unit = ctx->max_work_group_size ? ctx->max_work_group_size : 64;
    size_t wanted = (size_t)k->units * per_unit;
    k->items = wanted > MAX_ITEMS ? MAX_ITEMS : (int)wanted;
    k->vw = peak_vector_width(ctx);
    char options[64];
    snprintf(options, sizeof(options), "-DPEAK_VW=%d -DPEAK_CHAINS=%d", k->vw, PEAK_CHAINS);
    status = runtime_get_kernel(ctx, "peak", "fma_peak", options, &k->kernel);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)k->items, &k->out);
    double seconds = 0.0;
    if (status == CLCNN_OK)
        status = time_launch(ctx, k->kernel, k->out, k->items, 0, 1, &seconds);
    if (status != CLCNN_OK)
        buffer_release(&k->out);
    return status;
}

clcnn_status clcnn_device_peak(clcnn_context *ctx, double *gflops) {
    if (!ctx || !gflops)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_device_peak: invalid argument");
    *gflops = 0.0;
    peak_setup k;
    clcnn_status status = peak_kernel(ctx, "clcnn_device_peak", &k);
    if (status != CLCNN_OK)
        return status;
    double seconds = 0.0;
    /* Rounds that make a launch long enough. */
    int rounds = 64;
    while (status == CLCNN_OK) {
        status = time_launch(ctx, k.kernel, k.out, k.items, 0, rounds, &seconds);
        if (seconds >= min_launch_seconds || rounds >= (1 << 24))
            break;
        rounds *= 2;
    }
    double fastest = 0.0;
    if (status == CLCNN_OK)
        status = fastest_launch(ctx, k.kernel, k.out, k.items, 0, rounds, PEAK_RUNS, &fastest);
    float first = 0.0f;
    if (status == CLCNN_OK)
        status = buffer_read(ctx, k.out, 0, sizeof(float), &first);
    buffer_release(&k.out);
    if (status != CLCNN_OK)
        return status;
    /* x -> 0.9999 x + 1e-4 tends to 1 from x = item * 1e-3: lanes near 1. */
    if (!(first > 0.0f && first <= (float)(k.vw * PEAK_CHAINS) * 1.01f))
        return set_error(ctx, CLCNN_ERROR_OPENCL,
                         "fma_peak computed %g, not a sum of values near 1", (double)first);
    const double flop = 2.0 * k.vw * PEAK_CHAINS * (double)rounds * (double)k.items;
    *gflops = flop / fastest / 1e9;
    return CLCNN_OK;
}

clcnn_status clcnn_device_call_floor(clcnn_context *ctx, double *seconds) {
    if (!ctx || !seconds)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_device_call_floor: invalid argument");
    *seconds = 0.0;
    peak_setup k;
    clcnn_status status = peak_kernel(ctx, "clcnn_device_call_floor", &k);
    /* A work-group of one work-item for each compute unit, one round: work
     * for every unit, so that a CPU device wakes all its threads as a real
     * call does, and next to nothing to compute (a work-group's worth a
     * unit had taken 310 us on PoCL, AMD EPYC). */
    double fastest = 0.0;
    if (status == CLCNN_OK)
        status = fastest_launch(ctx, k.kernel, k.out, k.units, 1, 1, FLOOR_CALLS, &fastest);
    buffer_release(&k.out);
    if (status == CLCNN_OK)
        *seconds = fastest;
    return status;
}

/* Bytes of each of stream_scale's two buffers: four times the device's
 * global-memory cache and at least 64 MiB, so that the figure is the
 * memory's and not the cache's; at most one allocation, a quarter of the
 * device's memory and 1 GiB (int work-item indices); whole 64-byte lines. */
static size_t stream_bytes(const clcnn_context *ctx) {
    const cl_ulong cache = ctx->cache_bytes;
    cl_ulong bytes = (cl_ulong)64 << 20;
    if (cache > bytes / 4)
        bytes = 4 * cache;
    if (bytes > (cl_ulong)1 << 30)
        bytes = (cl_ulong)1 << 30;
    if (ctx->max_alloc_bytes && bytes > ctx->max_alloc_bytes)
        bytes = ctx->max_alloc_bytes;
    if (ctx->global_mem_bytes && bytes > ctx->global_mem_bytes / 4)
        bytes = ctx->global_mem_bytes / 4;
    return (size_t)(bytes / 64 * 64);
}

/* Seconds of `launches` launches of stream_scale over `vectors` vectors
 * (time_launches). */
static clcnn_status time_stream(clcnn_context *ctx, cl_kernel kernel, cl_mem in, cl_mem out,
                                size_t vectors, int launches, double *seconds) {
    const float a = 0.5f;
    const kernel_arg args[] = {{sizeof(cl_mem), &in}, {sizeof(cl_mem), &out}, {sizeof(float), &a}};
    return time_launches(ctx, kernel, "stream_scale", args, 3, vectors, 0, launches, seconds);
}

clcnn_status clcnn_device_bandwidth(clcnn_context *ctx, double *gbytes_per_second) {
    if (!ctx || !gbytes_per_second)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_device_bandwidth: invalid argument");
    *gbytes_per_second = 0.0;
    clcnn_status status = require_opencl(ctx, "clcnn_device_bandwidth");
    if (status != CLCNN_OK)
        return status;
    const int vw = peak_vector_width(ctx);
    const size_t bytes = stream_bytes(ctx), vectors = bytes / (sizeof(float) * (size_t)vw);
    char options[32];
    snprintf(options, sizeof(options), "-DPEAK_VW=%d", vw);
    cl_kernel kernel;
    cl_mem in = NULL, out = NULL;
    status = runtime_get_kernel(ctx, "peak", "stream_scale", options, &kernel);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, bytes, &in);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, bytes, &out);
    const float one = 1.0f;
    if (status == CLCNN_OK)
        status = cl_check(
            ctx, clEnqueueFillBuffer(ctx->queue, in, &one, sizeof(one), 0, bytes, 0, NULL, NULL),
            "clEnqueueFillBuffer");
    /* Untimed first: it generates the kernel's code and touches every page. */
    double seconds = 0.0;
    if (status == CLCNN_OK)
        status = time_stream(ctx, kernel, in, out, vectors, 1, &seconds);
    int launches = 1;
    while (status == CLCNN_OK) {
        status = time_stream(ctx, kernel, in, out, vectors, launches, &seconds);
        if (seconds >= min_launch_seconds || launches >= MAX_STREAM_LAUNCHES)
            break;
        launches *= 2;
    }
    double fastest = seconds;
    for (int run = 1; run < PEAK_RUNS && status == CLCNN_OK; run++) {
        status = time_stream(ctx, kernel, in, out, vectors, launches, &seconds);
        if (seconds < fastest)
            fastest = seconds;
    }
    float last = 0.0f;
    if (status == CLCNN_OK)
        status = buffer_read(ctx, out, bytes - sizeof(float), sizeof(float), &last);
    buffer_release(&in);
    buffer_release(&out);
    if (status != CLCNN_OK)
        return status;
    if (last != 0.5f)
        return set_error(ctx, CLCNN_ERROR_OPENCL, "stream_scale computed %g, not 0.5",
                         (double)last);
    *gbytes_per_second = 2.0 * (double)bytes * launches / fastest / 1e9;
    return CLCNN_OK;
}
