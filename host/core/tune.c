/* Tile configurations of the GEMM-style kernels. CPU devices (PoCL) get wide
 * column tiles, which PoCL vectorises across work-items; other devices get
 * 64x64 tiles of 256 work-items, a fit for 32- and 64-wide GPUs.
 * CLCNN_TILES="16,128,16,4,8" (tile_m, tile_n, tile_k, wpt_m, wpt_n)
 * overrides both for experiments. */
#include "ops.h"

#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    /* Few channels fill a narrow vector better than a wide one. */
    while (config.vw > 4 && config.vw / 2 >= channels)
        config.vw /= 2;
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

/* ---- the tuning file ----------------------------------------------------------------------
 * One per device and driver in the cache directory: lines of
 *   <operation> <C> <K> <H> <W> <R> <S> <stride_h> <stride_w> <pad_top> <pad_left> = <vw> <nv> <wpt_p> <group>
 * written by clcnn_tune and read when a context selects the device. */

static void tuning_path(const clcnn_context *ctx, char *buf, size_t size) {
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *parts[2] = {ctx->device_name, ctx->driver_version};
    for (int i = 0; i < 2; i++)
        for (const char *c = parts[i]; *c; c++) {
            h ^= (unsigned char)*c;
            h *= 0x100000001b3ULL;
        }
    snprintf(buf, size, "%s/tuning-%016llx.txt", ctx->cache_dir, (unsigned long long)h);
}

static void tuning_key(const char *operation, const conv2d_params *p, char *buf, size_t size) {
    snprintf(buf, size, "%s %d %d %d %d %d %d %d %d %d %d", operation, p->in_channels,
             p->out_channels, p->in_height, p->in_width, p->kernel_h, p->kernel_w, p->stride_h,
             p->stride_w, p->pad_top, p->pad_left);
}

void tuning_load(clcnn_context *ctx) {
    ctx->tuned_loaded = 1;
    if (!ctx->cache_dir[0] || getenv("CLCNN_NO_TUNING"))
        return;
    char path[1200];
    tuning_path(ctx, path, sizeof(path));
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        char *equals = strchr(line, '=');
        direct_config c;
        /* A damaged line is skipped: the defaults stand in for it. */
        if (!equals || sscanf(equals + 1, "%d %d %d %d", &c.vw, &c.nv, &c.wpt_p, &c.group) != 4 ||
            c.vw < 1 || c.vw > 16 || (c.vw & (c.vw - 1)) || c.nv < 1 || c.nv > 8 ||
            c.wpt_p < 1 || c.wpt_p > 32 || c.group < 1 || c.group > 1024)
            continue;
        while (equals > line && equals[-1] == ' ')
            equals--;
        *equals = 0;
        tuned_entry *grown = realloc(ctx->tuned, sizeof(tuned_entry) * (size_t)(ctx->tuned_count + 1));
        if (!grown)
            break;
        ctx->tuned = grown;
        tuned_entry *e = &ctx->tuned[ctx->tuned_count++];
        snprintf(e->key, sizeof(e->key), "%.127s", line);
        e->vw = c.vw;
        e->nv = c.nv;
        e->wpt_p = c.wpt_p;
        e->group = c.group;
    }
    fclose(f);
}

direct_config direct_config_for_conv(const clcnn_context *ctx, const char *operation,
                                     const conv2d_params *p, int channels) {
    char key[128];
    tuning_key(operation, p, key, sizeof(key));
    for (int i = 0; i < ctx->tuned_count; i++)
        if (strcmp(ctx->tuned[i].key, key) == 0 && !getenv("CLCNN_DIRECT")) {
            direct_config c = {ctx->tuned[i].vw, ctx->tuned[i].nv, ctx->tuned[i].wpt_p,
                               ctx->tuned[i].group};
            return c;
        }
    direct_config config = direct_config_for(ctx, channels);
    /* A work-item streams reduction x vw*nv weights and reuses each for only
     * wpt_p positions; past a few hundred KiB that is L2-bound, and fewer
     * channels with more positions per work-item go faster (measured on PoCL:
     * 3x3 with 256 channels 100 -> 164 GFLOP/s, dense 2048x2048 73 -> 110). */
    if (strcmp(operation, "backward_weights") != 0 && config.nv == 4 && !getenv("CLCNN_DIRECT")) {
        const int reduced = strcmp(operation, "backward_data") == 0 ? p->out_channels
                                                                     : p->in_channels;
        const double bytes = 4.0 * reduced * p->kernel_h * p->kernel_w * config.vw * config.nv;
        if (bytes > 384.0 * 1024.0) {
            config.nv = 3;
            config.wpt_p = 8;
        }
    }
    return config;
}

clcnn_status tuning_remember(clcnn_context *ctx, const char *operation, const conv2d_params *p,
                             const direct_config *config) {
    if (!ctx->tuned_loaded)
        tuning_load(ctx);
    char key[128];
    tuning_key(operation, p, key, sizeof(key));
    tuned_entry *e = NULL;
    for (int i = 0; i < ctx->tuned_count && !e; i++)
        if (strcmp(ctx->tuned[i].key, key) == 0)
            e = &ctx->tuned[i];
    if (!e) {
        tuned_entry *grown =
            realloc(ctx->tuned, sizeof(tuned_entry) * (size_t)(ctx->tuned_count + 1));
        if (!grown)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tuning results");
        ctx->tuned = grown;
        e = &ctx->tuned[ctx->tuned_count++];
        snprintf(e->key, sizeof(e->key), "%s", key);
    }
    e->vw = config->vw;
    e->nv = config->nv;
    e->wpt_p = config->wpt_p;
    e->group = config->group;
    return CLCNN_OK;
}

clcnn_status tuning_save(clcnn_context *ctx) {
    if (!ctx->cache_dir[0])
        return set_error(ctx, CLCNN_ERROR_IO, "no cache directory (set XDG_CACHE_HOME or HOME)");
    char path[1200], temporary[1300];
    tuning_path(ctx, path, sizeof(path));
    snprintf(temporary, sizeof(temporary), "%s.tmp-%d", path, (int)getpid());
    char command_dir[1100];
    snprintf(command_dir, sizeof(command_dir), "%s", ctx->cache_dir);
    mkdir(command_dir, 0755);
    FILE *f = fopen(temporary, "w");
    if (!f)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot write: %s", temporary, strerror(errno));
    int ok = fprintf(f, "# clcnn tuning for %s, driver %s\n", ctx->device_name,
                     ctx->driver_version) > 0;
    for (int i = 0; i < ctx->tuned_count && ok; i++)
        ok = fprintf(f, "%s = %d %d %d %d\n", ctx->tuned[i].key, ctx->tuned[i].vw,
                     ctx->tuned[i].nv, ctx->tuned[i].wpt_p, ctx->tuned[i].group) > 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(temporary, path) != 0) {
        unlink(temporary);
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot write the tuning file", path);
    }
    return CLCNN_OK;
}

/* ---- clcnn_tune: measuring the candidates ---------------------------------------------------- */

enum { TUNE_OPERATIONS = 3, TUNE_REPEATS = 3, MAX_CANDIDATES = 48 };
static const char *const tune_operations[TUNE_OPERATIONS] = {"forward", "backward_data",
                                                             "backward_weights"};

/* The buffers one layer's three operations read and write, filled once. */
typedef struct tune_buffers {
    cl_mem input, weight, bias, output, grad_output, grad_input, grad_weight, grad_bias, scratch;
} tune_buffers;

static void release_tune_buffers(tune_buffers *b) {
    cl_mem *all[] = {&b->input,       &b->weight,     &b->bias,        &b->output,  &b->grad_output,
                     &b->grad_input,  &b->grad_weight, &b->grad_bias, &b->scratch};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        buffer_release(all[i]);
}

static clcnn_status random_buffer(clcnn_context *ctx, rng *r, size_t count, cl_mem *out) {
    float *values = malloc(sizeof(float) * (count ? count : 1));
    if (!values)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tuning");
    for (size_t i = 0; i < count; i++)
        values[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    clcnn_status status = buffer_create(ctx, sizeof(float) * count, out);
    if (status == CLCNN_OK)
        status = buffer_write(ctx, *out, 0, sizeof(float) * count, values);
    free(values);
    return status;
}

static clcnn_status run_operation(clcnn_context *ctx, int operation, const direct_config *c,
                                  const conv2d_params *p, const tune_buffers *b) {
    if (operation == 0)
        return conv2d_forward_direct(ctx, c, p, b->input, b->weight, b->bias, b->output);
    if (operation == 1)
        return conv2d_backward_data_direct(ctx, c, p, b->grad_output, b->weight, b->grad_input);
    return conv2d_backward_weights_direct(ctx, c, p, b->input, b->grad_output, b->grad_weight,
                                          b->grad_bias, b->scratch);
}

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Median wall time of TUNE_REPEATS runs after one that builds and warms up. */
static clcnn_status time_operation(clcnn_context *ctx, int operation, const direct_config *c,
                                   const conv2d_params *p, const tune_buffers *b, double *seconds) {
    double times[TUNE_REPEATS];
    clcnn_status status = run_operation(ctx, operation, c, p, b);
    if (status == CLCNN_OK)
        status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
    for (int i = 0; i < TUNE_REPEATS && status == CLCNN_OK; i++) {
        double start = seconds_now();
        status = run_operation(ctx, operation, c, p, b);
        if (status == CLCNN_OK)
            status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
        times[i] = seconds_now() - start;
    }
    if (status != CLCNN_OK)
        return status;
    for (int i = 1; i < TUNE_REPEATS; i++)
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double swap = times[j];
            times[j] = times[j - 1];
            times[j - 1] = swap;
        }
    *seconds = times[TUNE_REPEATS / 2];
    return CLCNN_OK;
}

/* The device's vector width and the narrower ones down to 4 (few channels
 * fill a narrow vector better), vectors per work-item up to what the
 * channels fill, and positions so that at most 24 accumulator vectors are
 * live. The default configuration comes first. */
static int tune_candidates(clcnn_context *ctx, int channels, direct_config *out) {
    const direct_config fallback = direct_config_for(ctx, channels);
    const int positions[] = {1, 2, 4, 8, 12, 16};
    int count = 0;
    out[count++] = fallback;
    for (int vw = fallback.vw; vw >= 4 && vw >= fallback.vw / 4; vw /= 2) {
        const int vectors = (channels + vw - 1) / vw;
        for (int nv = 1; nv <= 4 && nv <= (vectors > 1 ? vectors : 1); nv++)
            for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
                direct_config c = {vw, nv, positions[i], fallback.group};
                if (nv * c.wpt_p > 24 || count == MAX_CANDIDATES)
                    continue;
                if (c.vw == fallback.vw && c.nv == fallback.nv && c.wpt_p == fallback.wpt_p)
                    continue;
                out[count++] = c;
            }
    }
    return count;
}

static clcnn_status tune_layer(clcnn_context *ctx, const layer *l, int batch, rng *r, char *report,
                               size_t size, size_t *used) {
    const conv2d_params p = layer_conv2d_params(l, batch);
    const size_t in_count = (size_t)batch * p.in_channels * p.in_height * p.in_width;
    const size_t out_count = (size_t)batch * p.out_channels * p.out_height * p.out_width;
    const size_t weight_count = (size_t)p.out_channels * p.in_channels * p.kernel_h * p.kernel_w;
    direct_config candidates[TUNE_OPERATIONS][MAX_CANDIDATES];
    int counts[TUNE_OPERATIONS];
    size_t scratch = 4;
    for (int op = 0; op < TUNE_OPERATIONS; op++) {
        counts[op] = tune_candidates(ctx, op == 1 ? p.in_channels : p.out_channels,
                                     candidates[op]);
        for (int i = 0; op == 2 && i < counts[op]; i++) {
            size_t bytes = conv2d_backward_weights_direct_scratch_bytes(&candidates[op][i], &p);
            scratch = bytes > scratch ? bytes : scratch;
        }
    }
    tune_buffers b = {0};
    clcnn_status status = random_buffer(ctx, r, in_count, &b.input);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, weight_count, &b.weight);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, (size_t)p.out_channels, &b.bias);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, out_count, &b.grad_output);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * out_count, &b.output);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * in_count, &b.grad_input);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * weight_count, &b.grad_weight);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)p.out_channels, &b.grad_bias);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, scratch, &b.scratch);
    for (int op = 0; op < TUNE_OPERATIONS && status == CLCNN_OK; op++) {
        double best = 0.0, first = 0.0;
        int winner = 0;
        for (int i = 0; i < counts[op] && status == CLCNN_OK; i++) {
            double seconds;
            status = time_operation(ctx, op, &candidates[op][i], &p, &b, &seconds);
            if (i == 0)
                first = seconds;
            if (status == CLCNN_OK && (i == 0 || seconds < best)) {
                best = seconds;
                winner = i;
            }
        }
        if (status != CLCNN_OK)
            break;
        const direct_config *c = &candidates[op][winner];
        status = tuning_remember(ctx, tune_operations[op], &p, c);
        text_append(report, size, used,
                    "%-12s %-16s vw %2d nv %d positions %2d: %8.3f ms (default %8.3f ms, %d "
                    "candidates)\n",
                    l->name, tune_operations[op], c->vw, c->nv, c->wpt_p, best * 1e3, first * 1e3,
                    counts[op]);
    }
    release_tune_buffers(&b);
    return status;
}

clcnn_status clcnn_tune(clcnn_net *net, int batch, char *report, size_t size) {
    if (!net || batch < 1 || !report || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    report[0] = 0;
    if (ctx->kind != CLCNN_DEVICE_OPENCL)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "tuning needs an OpenCL device; the reference has nothing to tune");
    if (!use_direct_kernels(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "this device runs the tiled kernels, which clcnn does not tune yet");
    size_t used = 0;
    rng r;
    rng_seed(&r, 12345);
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++)
        if (layer_has_parameters(&net->layers[i]))
            status = tune_layer(ctx, &net->layers[i], batch, &r, report, size, &used);
    if (status == CLCNN_OK)
        status = tuning_save(ctx);
    /* The scratch of backward-weights depends on the configuration: plan again. */
    net_release_activations(net);
    return status;
}
