/* Kernel configurations per device (declared in core/config.h). CPU devices
 * (PoCL) run the register-blocked convolutions and get wide column tiles for
 * the tiled GEMM, which PoCL vectorises across work-items; other devices get
 * the tiled kernels with 64x64 tiles of 256 work-items, a fit for 32- and
 * 64-wide GPUs. The environment overrides them for experiments:
 *   CLCNN_CONV=tiled|direct            the convolution kernels
 *   CLCNN_TILES=16,128,16,4,8          tile_m, tile_n, tile_k, wpt_m, wpt_n
 *   CLCNN_DIRECT=8,2,8                 vw, nv, wpt_p of every convolution
 *   CLCNN_NO_TUNING (any value)        the tuning file is not read (nor autotuned)
 *   CLCNN_AUTOTUNE=0|1                 planning a network tunes shapes the file lacks
 *   CLCNN_WINOGRAD=0|1|fused|4x4       stride-1 3x3 convolutions never or always on
 *                                      Winograd F(2x2, 3x3), its products apart or
 *                                      fused where they can be, or forward and
 *                                      backward-data on 4x4 tiles where they can be
 *                                      (default: where and as tuning measured it faster)
 *   CLCNN_POINTWISE=0|1                1x1 stride-1 unpadded convolutions (forward and
 *                                      backward-data) never or always as matrix products
 *                                      over the positions (default: where tuning measured
 *                                      them faster)
 *   CLCNN_FUSE=0|1                     a relu after a conv, dense, batchnorm or add (its
 *                                      only reader) runs in that layer's kernels, or
 *                                      apart (default 1: fused)
 *   CLCNN_ZERO_COPY=0|1                clcnn_net_forward works on the caller's arrays in
 *                                      place, or copies them (default: in place where the
 *                                      device shares the host's memory)
 *   CLCNN_NO_CACHE (any value)         program binaries are not cached */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Local memory of the tiled kernels (kernels/conv2d.cl, kernels/gemm.cl):
 * two float tiles of TILE_K rows, and the int index tables of the kernel
 * that keeps most, conv2d_backward_data (5 per column, 6 per tap). */
size_t tile_config_local_bytes(const tile_config *config) {
    const size_t tile_k = (size_t)config->tile_k, tile_n = (size_t)config->tile_n;
    return sizeof(float) * tile_k * ((size_t)config->tile_m + tile_n) +
           sizeof(int) * (5 * tile_n + 6 * tile_k);
}

/* OpenCL 1.2's minimum local memory, for a device that reports none. */
enum { MINIMUM_LOCAL_MEMORY = 32768 };

int tile_config_check(const clcnn_context *ctx, const tile_config *config, char *why, size_t size) {
    char ignored[256];
    if (!why) {
        why = ignored;
        size = sizeof(ignored);
    }
    why[0] = 0;
    /* Each value stays small enough that no product below overflows. */
    const int limit = 1 << 16;
    if (config->tile_m < 1 || config->tile_n < 1 || config->tile_k < 1 || config->wpt_m < 1 ||
        config->wpt_n < 1 || config->tile_m > limit || config->tile_n > limit ||
        config->tile_k > limit) {
        snprintf(why, size, "every value must be at least 1 and the tiles at most %d", limit);
        return 0;
    }
    if (config->tile_m % config->wpt_m || config->tile_n % config->wpt_n) {
        snprintf(why, size, "wpt_m must divide tile_m and wpt_n tile_n");
        return 0;
    }
    /* The launch: (tile_n / wpt_n, tile_m / wpt_m) work-items per group. */
    const size_t local[2] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m)};
    const size_t threads = local[0] * local[1];
    if (ctx && ctx->max_work_group_size && threads > ctx->max_work_group_size) {
        snprintf(why, size,
                 "(tile_m/wpt_m)*(tile_n/wpt_n) = %zu work-items, more than the device's %zu "
                 "(CL_DEVICE_MAX_WORK_GROUP_SIZE)",
                 threads, ctx->max_work_group_size);
        return 0;
    }
    for (int d = 0; d < 2; d++)
        if (ctx && ctx->max_work_item_sizes[d] && local[d] > ctx->max_work_item_sizes[d]) {
            snprintf(why, size,
                     "%s = %zu work-items along dimension %d, more than the device's %zu "
                     "(CL_DEVICE_MAX_WORK_ITEM_SIZES)",
                     d == 0 ? "tile_n/wpt_n" : "tile_m/wpt_m", local[d], d,
                     ctx->max_work_item_sizes[d]);
            return 0;
        }
    const size_t bytes = tile_config_local_bytes(config);
    const size_t available =
        ctx && ctx->local_mem_bytes ? (size_t)ctx->local_mem_bytes : MINIMUM_LOCAL_MEMORY;
    if (bytes > available) {
        snprintf(why, size,
                 "the tiles and index tables take %zu bytes of local memory "
                 "(4*tile_k*(tile_m+tile_n) + 4*(5*tile_n+6*tile_k)), more than the device's "
                 "%zu (CL_DEVICE_LOCAL_MEM_SIZE)",
                 bytes, available);
        return 0;
    }
    return 1;
}

int tile_config_valid(const clcnn_context *ctx, const tile_config *config) {
    return tile_config_check(ctx, config, NULL, 0);
}

clcnn_status tile_config_require(clcnn_context *ctx, const tile_config *config, const char *what) {
    char why[256];
    if (tile_config_check(ctx, config, why, sizeof(why)))
        return CLCNN_OK;
    return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                     "%s: tile configuration %d,%d,%d,%d,%d cannot run on this device: %s", what,
                     config->tile_m, config->tile_n, config->tile_k, config->wpt_m, config->wpt_n,
                     why);
}

tile_config tile_config_for(const clcnn_context *ctx, const char *family) {
    return ctx->config.tiles;
}

void tile_config_options(const tile_config *config, char *buf, size_t size) {
    snprintf(buf, size, "-DTILE_M=%d -DTILE_N=%d -DTILE_K=%d -DWPT_M=%d -DWPT_N=%d", config->tile_m,
             config->tile_n, config->tile_k, config->wpt_m, config->wpt_n);
}

int use_direct_kernels(const clcnn_context *ctx) {
    return ctx->config.direct;
}

int vector_registers(const clcnn_context *ctx) {
    return ctx->preferred_vector_width >= 16 ? 32 : 16;
}

/* Up to 16 accumulator vectors leave room in a 32-register AVX-512 file for
 * the loaded weights (measured on PoCL: 16 beat 24 by 15-30%). */
direct_config direct_config_for(const clcnn_context *ctx, int channels) {
    if (ctx->config.direct_forced)
        return ctx->config.forced;
    direct_config config;
    config.vw = ctx->config.direct_vw;
    /* Few channels fill a narrow vector better than a wide one. */
    while (config.vw > 4 && config.vw / 2 >= channels)
        config.vw /= 2;
    int vectors = (channels + config.vw - 1) / config.vw;
    config.nv = vectors < 1 ? 1 : vectors > 4 ? 4 : vectors;
    config.wpt_p = config.nv == 1 ? 8 : 16 / config.nv;
    /* The inner loop keeps nv * wpt_p accumulator vectors, nv weight vectors
     * and a broadcast input in registers: beyond the register file it spills
     * on every multiply-add. */
    const int fitting = (vector_registers(ctx) - config.nv - 2) / config.nv;
    if (config.wpt_p > fitting)
        config.wpt_p = fitting < 1 ? 1 : fitting;
    config.group = ctx->config.direct_group;
    return config;
}

void direct_config_options(const direct_config *config, char *buf, size_t size) {
    snprintf(buf, size, "-DVW=%d -DNV=%d -DWPT_P=%d", config->vw, config->nv, config->wpt_p);
}

/* ---- the tuning file ----------------------------------------------------------------------
 * One per device and driver in the cache directory, written by clcnn_tune and
 * read when a context selects the device: lines of
 *   <operation> <C> <K> <H> <W> <R> <S> <stride_h> <stride_w> <pad_top> <pad_left>
 *     [d<dilation_h>x<dilation_w>] [g<groups>] [n<batch class>] = <vw> <nv> <wpt_p> <group>
 * with the dilation and the groups only where they are not 1, so that the
 * keys of ordinary convolutions stay what they always were, and the batch
 * class only where it is not tuning_full_batch (tuning_key). */

/* Raised when a change of the kernels makes the verdicts of earlier files
 * stale: a file of another generation has another name, so it is not read
 * and autotuning measures each shape anew. 2: winograd_gradient_fused, which
 * outruns the three kernels that earlier Winograd backward-weights verdicts
 * had been measured on against the direct kernels. 3: the batch class in
 * the keys, which retires verdicts that a plan for a small batch had filed
 * under every batch. */
static const uint32_t tuning_generation = 3;

static void tuning_path(const clcnn_context *ctx, char *buf, size_t size) {
    /* The names are hashed without their NULs. */
    uint64_t h = hash_bytes(HASH_SEED, ctx->device_name, strlen(ctx->device_name));
    h = hash_bytes(h, ctx->driver_version, strlen(ctx->driver_version));
    h = hash_bytes(h, &tuning_generation, sizeof(tuning_generation));
    snprintf(buf, size, "%s/tuning-%016llx.txt", ctx->cache_dir, (unsigned long long)h);
}

int64_t tuning_full_batch(const conv2d_params *p) {
    const int64_t pixels = (int64_t)p->out_height * p->out_width;
    if (pixels > 0 && pixels * TUNING_FULL_BATCH < TUNING_FULL_POSITIONS)
        return (TUNING_FULL_POSITIONS + pixels - 1) / pixels;
    return TUNING_FULL_BATCH;
}

int64_t tuning_batch_class(const conv2d_params *p) {
    const int64_t full = tuning_full_batch(p);
    if (p->batch >= full)
        return p->batch >= 2 * full ? 2 * full : full;
    int64_t batch_class = 1;
    while (batch_class <= p->batch / 2)
        batch_class *= 2;
    return batch_class;
}

/* Shape p's key, with its batch class where that is not tuning_full_batch.
 * A verdict holds for the batches it was measured at: at batch 1 the
 * residual network's tuning had kept the direct kernels for its 32- and
 * 64-channel layers, and training at 64 then ran them at 14.1-14.6 ms a
 * forward against 12.3-12.7 with Winograd; at 128 Winograd's
 * backward-weights of its 64-channel 7x7 layers, chosen at 64 (1.06
 * against 1.20 ms), took 2.80 ms against the direct kernels' 2.43 (AMD
 * EPYC, Zen 4). */
static void tuning_key(const char *operation, const conv2d_params *p, char *buf, size_t size) {
    int used = snprintf(buf, size, "%s %d %d %d %d %d %d %d %d %d %d", operation, p->in_channels,
                        p->out_channels, p->in_height, p->in_width, p->kernel_h, p->kernel_w,
                        p->stride_h, p->stride_w, p->pad_top, p->pad_left);
    if (used > 0 && (size_t)used < size && (conv2d_dilation_h(p) != 1 || conv2d_dilation_w(p) != 1))
        used += snprintf(buf + used, size - (size_t)used, " d%dx%d", conv2d_dilation_h(p),
                         conv2d_dilation_w(p));
    if (used > 0 && (size_t)used < size && conv2d_groups(p) != 1)
        used += snprintf(buf + used, size - (size_t)used, " g%d", conv2d_groups(p));
    const int64_t batch_class = tuning_batch_class(p);
    if (used > 0 && (size_t)used < size && batch_class != tuning_full_batch(p))
        snprintf(buf + used, size - (size_t)used, " n%lld", (long long)batch_class);
}

static tuned_entry *find_tuned(const kernel_config *config, const char *key) {
    for (int i = 0; i < config->tuned_count; i++)
        if (strcmp(config->tuned[i].key, key) == 0)
            return &config->tuned[i];
    return NULL;
}

/* A new entry at the end of the table, or NULL when memory runs out. */
static tuned_entry *add_tuned(kernel_config *config, const char *key) {
    tuned_entry *grown =
        realloc(config->tuned, sizeof(tuned_entry) * (size_t)(config->tuned_count + 1));
    if (!grown)
        return NULL;
    config->tuned = grown;
    tuned_entry *e = &config->tuned[config->tuned_count++];
    snprintf(e->key, sizeof(e->key), "%.127s", key);
    return e;
}

/* A line of the tuning file: its key (the line, cut before " =") and its
 * configuration in *c, or NULL for a line that is not an entry. */
static const char *parse_tuning_line(char *line, direct_config *c) {
    char *equals = strchr(line, '=');
    if (!equals || sscanf(equals + 1, "%d %d %d %d", &c->vw, &c->nv, &c->wpt_p, &c->group) != 4 ||
        c->vw < 1 || c->vw > 16 || (c->vw & (c->vw - 1)) || c->nv < 1 || c->nv > 8 ||
        c->wpt_p < 1 || c->wpt_p > 32 || c->group < 1 || c->group > 1024)
        return NULL;
    while (equals > line && equals[-1] == ' ')
        equals--;
    *equals = 0;
    return line;
}

void tuning_load(clcnn_context *ctx) {
    char path[1200];
    tuning_path(ctx, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        direct_config c;
        /* A damaged line is skipped: the defaults stand in for it. */
        const char *key = parse_tuning_line(line, &c);
        if (!key || find_tuned(&ctx->config, key))
            continue;
        tuned_entry *e = add_tuned(&ctx->config, key);
        if (!e)
            break;
        e->config = c;
    }
    fclose(f);
}

/* Below this reduction (channels x taps) 2 x 6 gains nothing over 2 x 4 on AVX2. */
enum { MIN_REDUCTION_FOR_6 = 256 };

direct_config direct_config_for_conv(const clcnn_context *ctx, const char *operation,
                                     const conv2d_params *p, int channels) {
    if (ctx->config.direct_forced)
        return ctx->config.forced;
    char key[128];
    tuning_key(operation, p, key, sizeof(key));
    const tuned_entry *tuned = find_tuned(&ctx->config, key);
    if (tuned)
        return tuned->config;
    direct_config config = direct_config_for(ctx, channels);
    const int weights = strcmp(operation, "backward_weights") == 0;
    /* The length of a forward's (or backward-data's) reduction per output. */
    const int64_t reduction =
        (int64_t)((strcmp(operation, "backward_data") == 0 ? p->out_channels : p->in_channels) /
                  conv2d_groups(p)) *
        p->kernel_h * p->kernel_w;
    /* With 16 vector registers (AVX2), 2 vectors of channels and 6 positions
     * or taps: 12 accumulators leave registers for the 2 weight (gradient)
     * vectors and a broadcast (in-process A/B on an AMD EPYC, against 2 x 4:
     * forward and backward-data 0.96 at 32-64 channels, 0.88 at 128-256, 0.82
     * as a 2048 x 2048 dense layer; backward-weights against its 4 x 2 of
     * before, 0.76-0.95 at 32-256 channels). Short reductions keep 4
     * positions: there the stores of 6 weigh more (LeNet-5's conv2, 150
     * long, 1.22 times as slow; 16 channels 3x3 the same). Backward-weights
     * whose taps come in fours but not sixes (1x1, as Winograd's products
     * are) take 4, so that no work-item's last taps idle (Winograd's
     * products at 32 channels, 14x14, batch 64: 2.21 -> 1.98 ms, medians of
     * 6 runs, AMD EPYC Zen 1; at 16 and 64 channels the same). */
    if (ctx->preferred_vector_width < 16 && config.vw >= 8 && config.nv >= 2) {
        config.nv = 2;
        config.wpt_p = weights || reduction >= MIN_REDUCTION_FOR_6 ? 6 : 4;
        if (weights && reduction % 6 != 0 && reduction % 4 == 0)
            config.wpt_p = 4;
    }
    /* Backward-weights of a 3x3 convolution over whole channels' taps (the
     * kernel's TAP_ROWS: a register per row of taps, not per tap), 18
     * accumulators where 32 vector registers hold them: 2 channels a
     * work-item with one vector of output channels, one with two
     * (in-process A/B on an AMD EPYC with AVX-512 against 8 and 12 taps:
     * 0.92-0.95 of the time at 16 channels, 28x28; 0.93-0.97 at 32, 14x14;
     * with four vectors, 64 channels, 36 accumulators spill). With four,
     * 6 taps: 24 accumulators (Xeon with AVX-512, device time against 4
     * taps, same floats: 64 channels 0.90-0.95 of the time at 7x7 to
     * 28x28, batch 32-128; 96-128 channels even). */
    if (weights && vector_registers(ctx) == 32 && conv2d_is_plain(p) && p->kernel_h == 3 &&
        p->kernel_w == 3 && (config.nv <= 2 || config.nv == 4))
        config.wpt_p = config.nv == 4 ? 6 : 18 / config.nv;
    /* A work-item streams reduction x vw*nv weights and reuses each for only
     * wpt_p positions; past a few hundred KiB that is L2-bound, and fewer
     * channels with more positions per work-item go faster (measured on PoCL:
     * 3x3 with 256 channels 100 -> 164 GFLOP/s, dense 2048x2048 73 -> 110). */
    if (!weights && config.nv == 4) {
        const double bytes = 4.0 * (double)reduction * config.vw * config.nv;
        if (bytes > 384.0 * 1024.0) {
            config.nv = 3;
            config.wpt_p = 8;
        }
    }
    return config;
}

int tuning_lookup(const clcnn_context *ctx, const char *operation, const conv2d_params *p,
                  direct_config *out) {
    char key[128];
    tuning_key(operation, p, key, sizeof(key));
    const tuned_entry *e = find_tuned(&ctx->config, key);
    if (e && out)
        *out = e->config;
    return e != NULL;
}

int tuning_has(const clcnn_context *ctx, const char *operation, const conv2d_params *p) {
    return tuning_lookup(ctx, operation, p, NULL);
}

clcnn_status tuning_remember(clcnn_context *ctx, const char *operation, const conv2d_params *p,
                             const direct_config *config) {
    char key[128];
    tuning_key(operation, p, key, sizeof(key));
    tuned_entry *e = find_tuned(&ctx->config, key);
    if (!e)
        e = add_tuned(&ctx->config, key);
    if (!e)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tuning results");
    e->config = *config;
    return CLCNN_OK;
}

clcnn_status tuning_save(clcnn_context *ctx) {
    if (!ctx->cache_dir[0])
        return set_error(ctx, CLCNN_ERROR_IO, "no cache directory (set XDG_CACHE_HOME or HOME)");
    char path[1200], temporary[1300];
    tuning_path(ctx, path, sizeof(path));
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", path, (int)getpid());
    make_dirs(ctx->cache_dir);
    remove_stale_temporaries(path);
    FILE *f = fopen(temporary, "w");
    if (!f)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot write: %s", temporary, strerror(errno));
    int ok =
        fprintf(f, "# clcnn tuning for %s, driver %s\n", ctx->device_name, ctx->driver_version) > 0;
    const kernel_config *c = &ctx->config;
    for (int i = 0; i < c->tuned_count && ok; i++)
        ok = fprintf(f, "%s = %d %d %d %d\n", c->tuned[i].key, c->tuned[i].config.vw,
                     c->tuned[i].config.nv, c->tuned[i].config.wpt_p, c->tuned[i].config.group) > 0;
    /* Processes that autotune at once each save what they measured: the
     * entries another saved since this one read the file stay. */
    FILE *existing = fopen(path, "r");
    char line[256];
    while (existing && ok && fgets(line, sizeof(line), existing)) {
        direct_config d;
        const char *key = parse_tuning_line(line, &d);
        if (key && !find_tuned(c, key))
            ok = fprintf(f, "%s = %d %d %d %d\n", key, d.vw, d.nv, d.wpt_p, d.group) > 0;
    }
    if (existing)
        fclose(existing);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(temporary, path) != 0) {
        unlink(temporary);
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot write the tuning file", path);
    }
    return CLCNN_OK;
}

/* ---- resolving the configuration ------------------------------------------------------------ */

/* An override's value, NULL when unset; empty counts as unset, as for CLCNN_DEVICE. */
static const char *override_value(const char *name) {
    const char *value = getenv(name);
    return value && *value ? value : NULL;
}

/* Parses exactly count comma-separated integers; returns 0 if text is anything else. */
static int parse_ints(const char *text, int count, int *out) {
    const char *p = text;
    for (int i = 0; i < count; i++) {
        char *end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || errno || value < INT_MIN || value > INT_MAX)
            return 0;
        out[i] = (int)value;
        p = end;
        if (i + 1 < count && *p++ != ',')
            return 0;
    }
    return *p == 0;
}

clcnn_status config_resolve(clcnn_context *ctx) {
    const int cpu = device_is_cpu(ctx);
    kernel_config c = {0};

    c.direct = cpu;
    const char *conv = override_value("CLCNN_CONV");
    if (conv && strcmp(conv, "tiled") == 0)
        c.direct = 0;
    else if (conv && strcmp(conv, "direct") == 0)
        c.direct = 1;
    else if (conv)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_CONV='%s': expected tiled or direct", conv);

    /* The default: the first of these the device can run (the first for
     * CPU devices; then GPU tiles from large to small). */
    const tile_config defaults[] = {{16, 128, 16, 4, 8}, {64, 64, 16, 4, 4}, {32, 64, 16, 4, 4},
                                    {32, 32, 16, 4, 4},  {16, 16, 16, 2, 2}, {8, 8, 8, 1, 1},
                                    {4, 4, 4, 1, 1},     {1, 1, 1, 1, 1}};
    const int count = (int)(sizeof(defaults) / sizeof(defaults[0]));
    int pick = cpu ? 0 : 1;
    while (pick + 1 < count && !tile_config_valid(ctx, &defaults[pick]))
        pick++;
    c.tiles = defaults[pick];
    const char *tiles = override_value("CLCNN_TILES");
    if (tiles) {
        int v[5];
        if (!parse_ints(tiles, 5, v))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "CLCNN_TILES='%s': expected tile_m,tile_n,tile_k,wpt_m,wpt_n, e.g. "
                             "16,128,16,4,8",
                             tiles);
        const tile_config wanted = {v[0], v[1], v[2], v[3], v[4]};
        char why[256];
        if (!tile_config_check(ctx, &wanted, why, sizeof(why)))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "CLCNN_TILES='%s': not a tile configuration this device can run: "
                             "%s",
                             tiles, why);
        c.tiles = wanted;
    }

    const cl_uint width = ctx->preferred_vector_width;
    c.direct_vw = width < 1 ? 4 : width > 16 ? 16 : (int)width;
    /* PoCL runs a work-group's items in a loop with their private arrays on
     * the stack, so CPU groups stay small; GPUs want full wavefronts. */
    c.direct_group = cpu ? 4 : 64;
    const char *direct = override_value("CLCNN_DIRECT");
    if (direct) {
        int v[3];
        if (!parse_ints(direct, 3, v) ||
            !(v[0] == 1 || v[0] == 2 || v[0] == 4 || v[0] == 8 || v[0] == 16) || v[1] < 1 ||
            v[2] < 1)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "CLCNN_DIRECT='%s': expected vw,nv,wpt_p with vw 1, 2, 4, 8 or 16 "
                             "and nv and wpt_p at least 1, e.g. 8,2,8",
                             direct);
        c.direct_forced = 1;
        c.forced = (direct_config){v[0], v[1], v[2], c.direct_group};
    }

    /* A CPU runs a work-item's run of 64 elements as one SIMD loop (2.7x
     * the speed of an element per work-item on PoCL); other devices want
     * neighbouring work-items on neighbouring elements. */
    c.item_span = cpu ? 64 : 1;
    const char *span = override_value("CLCNN_ITEM_SPAN");
    if (span) {
        int v;
        if (!parse_ints(span, 1, &v) || v < 1 || v > 4096)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "CLCNN_ITEM_SPAN='%s': expected elements per work-item, 1 to 4096",
                             span);
        c.item_span = v;
    }
    snprintf(c.item_span_options, sizeof(c.item_span_options), "-DITEM_SPAN=%d", c.item_span);

    c.binary_cache = ctx->cache_dir[0] && !getenv("CLCNN_NO_CACHE");
    const int read_tuning = ctx->cache_dir[0] && !getenv("CLCNN_NO_TUNING");
    /* Without a tuning file to keep them in, every process would measure
     * the same shapes again; with CLCNN_DIRECT nothing would use them. */
    c.autotune_possible = c.direct && !c.direct_forced && read_tuning;
    const char *autotune = override_value("CLCNN_AUTOTUNE");
    if (autotune && strcmp(autotune, "0") != 0 && strcmp(autotune, "1") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_AUTOTUNE='%s': expected 0 (off) or 1 (on)", autotune);
    c.autotune = !autotune || strcmp(autotune, "1") == 0;
    const char *winograd = override_value("CLCNN_WINOGRAD");
    if (winograd && strcmp(winograd, "0") != 0 && strcmp(winograd, "1") != 0 &&
        strcmp(winograd, "fused") != 0 && strcmp(winograd, "4x4") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_WINOGRAD='%s': expected 0 (never), 1 (wherever it fits), "
                         "fused (wherever it fits, fused where it can be) or 4x4 (wherever it "
                         "fits, forward and backward-data with 4x4 tiles where they can be)",
                         winograd);
    c.winograd = !winograd                        ? -1
                 : strcmp(winograd, "fused") == 0 ? 2
                 : strcmp(winograd, "4x4") == 0   ? 3
                                                  : strcmp(winograd, "1") == 0;
    const char *pointwise = override_value("CLCNN_POINTWISE");
    if (pointwise && strcmp(pointwise, "0") != 0 && strcmp(pointwise, "1") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_POINTWISE='%s': expected 0 (never) or 1 (wherever it fits)",
                         pointwise);
    c.pointwise = pointwise ? strcmp(pointwise, "1") == 0 : -1;
    const char *fuse = override_value("CLCNN_FUSE");
    if (fuse && strcmp(fuse, "0") != 0 && strcmp(fuse, "1") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_FUSE='%s': expected 0 (apart) or 1 (fused)", fuse);
    c.fuse = !fuse || strcmp(fuse, "1") == 0;
    const char *zero_copy = override_value("CLCNN_ZERO_COPY");
    if (zero_copy && strcmp(zero_copy, "0") != 0 && strcmp(zero_copy, "1") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "CLCNN_ZERO_COPY='%s': expected 0 (copies) or 1 (in place)", zero_copy);
    c.zero_copy = zero_copy ? strcmp(zero_copy, "1") == 0 : ctx->host_unified_memory == CL_TRUE;
    config_release(&ctx->config);
    ctx->config = c;
    if (read_tuning)
        tuning_load(ctx);
    return CLCNN_OK;
}

int autotune_enabled(const clcnn_context *ctx) {
    if (!context_is_opencl(ctx) || !ctx->has_device || !ctx->config.autotune_possible)
        return 0;
    return ctx->autotune_switch >= 0 ? ctx->autotune_switch : ctx->config.autotune;
}

void config_release(kernel_config *config) {
    free(config->tuned);
    config->tuned = NULL;
    config->tuned_count = 0;
}
