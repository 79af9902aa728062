/* Tile configurations of the GEMM-style kernels. CPU devices (PoCL) get wide
 * column tiles, which PoCL vectorises across work-items; other devices get
 * 64x64 tiles of 256 work-items, a fit for 32- and 64-wide GPUs.
 * CLCNN_TILES="16,128,16,4,8" (tile_m, tile_n, tile_k, wpt_m, wpt_n)
 * overrides both for experiments. */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tile_config tile_config_for(const clcnn_context *ctx, const char *family) {
    const tile_config cpu_default = {16, 128, 16, 4, 8};
    const tile_config gpu_default = {64, 64, 16, 4, 4};
    tile_config config = ctx && (ctx->device_type & CL_DEVICE_TYPE_CPU) ? cpu_default : gpu_default;
    if (!tile_config_valid(ctx, &config))
        config = (tile_config){8, 8, 8, 1, 1};
    const char *env = getenv("CLCNN_TILES");
    if (env) {
        tile_config wanted;
        if (sscanf(env, "%d,%d,%d,%d,%d", &wanted.tile_m, &wanted.tile_n, &wanted.tile_k,
                   &wanted.wpt_m, &wanted.wpt_n) == 5 &&
            tile_config_valid(ctx, &wanted))
            config = wanted;
    }
    return config;
}

void tile_config_options(const tile_config *config, char *buf, size_t size) {
    snprintf(buf, size, "-DTILE_M=%d -DTILE_N=%d -DTILE_K=%d -DWPT_M=%d -DWPT_N=%d",
             config->tile_m, config->tile_n, config->tile_k, config->wpt_m, config->wpt_n);
}

int tile_config_valid(const clcnn_context *ctx, const tile_config *config) {
    if (config->tile_m < 1 || config->tile_n < 1 || config->tile_k < 1 || config->wpt_m < 1 ||
        config->wpt_n < 1)
        return 0;
    if (config->tile_m % config->wpt_m || config->tile_n % config->wpt_n)
        return 0;
    size_t threads = (size_t)(config->tile_m / config->wpt_m) * (config->tile_n / config->wpt_n);
    if (ctx && ctx->max_work_group_size && threads > ctx->max_work_group_size)
        return 0;
    /* Two float tiles of TILE_K rows must fit the 32 KiB of local memory OpenCL 1.2 promises. */
    size_t local_bytes = sizeof(float) * (size_t)config->tile_k * (config->tile_m + config->tile_n);
    return local_bytes <= 32768;
}

int use_direct_kernels(const clcnn_context *ctx) {
    const char *env = getenv("CLCNN_CONV");
    if (env && strcmp(env, "tiled") == 0)
        return 0;
    if (env && strcmp(env, "direct") == 0)
        return 1;
    return ctx && (ctx->device_type & CL_DEVICE_TYPE_CPU);
}

/* Up to 16 accumulator vectors leave room in a 32-register AVX-512 file for
 * the loaded weights (measured on PoCL: 16 beat 24 by 15-30%). */
direct_config direct_config_for(const clcnn_context *ctx, int channels) {
    direct_config config;
    config.vw = ctx && ctx->preferred_vector_width >= 1 ? ctx->preferred_vector_width : 4;
    if (config.vw > 16)
        config.vw = 16;
    int vectors = (channels + config.vw - 1) / config.vw;
    config.nv = vectors < 1 ? 1 : vectors > 4 ? 4 : vectors;
    config.wpt_p = config.nv == 1 ? 8 : 16 / config.nv;
    /* PoCL runs a work-group's items in a loop with their private arrays on
     * the stack, so CPU groups stay small; GPUs want full wavefronts. */
    config.group = ctx && (ctx->device_type & CL_DEVICE_TYPE_CPU) ? 4 : 64;
    const char *env = getenv("CLCNN_DIRECT");
    if (env) {
        direct_config wanted;
        if (sscanf(env, "%d,%d,%d", &wanted.vw, &wanted.nv, &wanted.wpt_p) == 3 &&
            (wanted.vw == 1 || wanted.vw == 2 || wanted.vw == 4 || wanted.vw == 8 ||
             wanted.vw == 16) &&
            wanted.nv >= 1 && wanted.wpt_p >= 1) {
            wanted.group = config.group;
            config = wanted;
        }
    }
    return config;
}

void direct_config_options(const direct_config *config, char *buf, size_t size) {
    snprintf(buf, size, "-DVW=%d -DNV=%d -DWPT_P=%d", config->vw, config->nv, config->wpt_p);
}
