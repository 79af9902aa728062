/* Tile configurations of the GEMM-style kernels. CPU devices (PoCL) get wide
 * column tiles, which PoCL vectorises across work-items; other devices get
 * 64x64 tiles of 256 work-items, a fit for 32- and 64-wide GPUs.
 * CLCNN_TILES="16,128,16,4,8" (tile_m, tile_n, tile_k, wpt_m, wpt_n)
 * overrides both for experiments. */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>

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
