/* Contexts and their error messages. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

clcnn_context *clcnn_context_create(void) {
    clcnn_context *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->kind = CLCNN_DEVICE_REFERENCE;
    snprintf(ctx->device_name, sizeof(ctx->device_name), "CPU reference");
    ctx->autotune_switch = -1;
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(ctx->cache_dir, sizeof(ctx->cache_dir), "%s/clcnn", xdg);
    else if (home && *home)
        snprintf(ctx->cache_dir, sizeof(ctx->cache_dir), "%s/.cache/clcnn", home);
    const char *stop = getenv("CLCNN_TEST_SAVE_STOP");
    if (stop && *stop) {
        static const char *const points[] = {"partial", "written", "renamed"};
        char *end = NULL;
        long n = strtol(stop, &end, 10);
        for (int i = 0; n > 0 && n < 1000000 && end && *end == ':' && i < 3; i++)
            if (strcmp(end + 1, points[i]) == 0) {
                ctx->save_stop_at = (int)n;
                ctx->save_stop_point = SAVE_STOP_PARTIAL + i;
            }
    }
    return ctx;
}

clcnn_status clcnn_context_set_autotune(clcnn_context *ctx, int enable) {
    if (!ctx)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    ctx->autotune_switch = enable != 0;
    return CLCNN_OK;
}

void clcnn_context_destroy(clcnn_context *ctx) {
    if (!ctx)
        return;
    for (int i = 0; i < ctx->kernel_count; i++)
        clReleaseKernel(ctx->kernels[i].kernel);
    for (int i = 0; i < ctx->program_count; i++)
        clReleaseProgram(ctx->programs[i].program);
    free(ctx->kernels);
    free(ctx->programs);
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        if (ctx->scratch[i])
            clReleaseMemObject(ctx->scratch[i]);
    config_release(&ctx->config);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->cl)
        clReleaseContext(ctx->cl);
    free(ctx);
}

clcnn_status set_error(clcnn_context *ctx, clcnn_status status, const char *format, ...) {
    if (!ctx)
        return status;
    va_list args;
    va_start(args, format);
    vsnprintf(ctx->error, sizeof(ctx->error), format, args);
    va_end(args);
    ctx->status = status;
    return status;
}

clcnn_status context_require_device(clcnn_context *ctx) {
    if (ctx->has_device)
        return CLCNN_OK;
    return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                     "no device selected: call clcnn_context_select_device first");
}

const char *clcnn_last_error(const clcnn_context *ctx) {
    return ctx ? ctx->error : "no context";
}

const char *clcnn_status_name(clcnn_status status) {
    switch (status) {
    case CLCNN_OK:
        return "ok";
    case CLCNN_ERROR_INVALID_ARGUMENT:
        return "invalid argument";
    case CLCNN_ERROR_IO:
        return "input/output error";
    case CLCNN_ERROR_PARSE:
        return "network file error";
    case CLCNN_ERROR_FORMAT:
        return "data format error";
    case CLCNN_ERROR_SHAPE:
        return "shape error";
    case CLCNN_ERROR_OPENCL:
        return "OpenCL error";
    case CLCNN_ERROR_NO_DEVICE:
        return "no such device";
    case CLCNN_ERROR_OUT_OF_MEMORY:
        return "out of memory";
    case CLCNN_STOPPED:
        return "stopped";
    case CLCNN_ERROR_UNSUPPORTED:
        return "unsupported";
    case CLCNN_ERROR_DIVERGED:
        return "training diverged";
    }
    return "unknown status";
}

#define CLCNN_VERSION_TEXT(major, minor, patch)                                                    \
    CLCNN_STRINGIFY(major) "." CLCNN_STRINGIFY(minor) "." CLCNN_STRINGIFY(patch)

const char *clcnn_version(void) {
    return CLCNN_VERSION_TEXT(CLCNN_VERSION_MAJOR, CLCNN_VERSION_MINOR, CLCNN_VERSION_PATCH);
}

const char *clcnn_device_name(const clcnn_context *ctx) {
    return ctx ? ctx->device_name : "";
}
