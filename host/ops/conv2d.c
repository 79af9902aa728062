/* Convolution on the OpenCL device: kernels/conv2d.cl (local-memory tiles),
 * kernels/conv2d_direct.cl (register blocking, CPU devices) and
 * kernels/conv2d_depthwise.cl (grouped convolutions with few channels per
 * group). */
#include "ops.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* ---- groups and dilation ---------------------------------------------------------------------
 * A grouped or dilated convolution runs on a variant of the GEMM-style
 * kernels built with -DGENERAL, which take the channel counts of one group,
 * then the number of groups and the dilation as extra arguments, and run
 * the groups along the last NDRange dimension (kernels/conv2d.cl). An
 * ordinary convolution gets neither the option nor the arguments, so it
 * runs on the programs it always ran on. */
typedef struct conv_variant {
    int groups, dilation_h, dilation_w;
    int in_channels, out_channels; /* per group */
} conv_variant;

static conv_variant variant_of(const conv2d_params *p) {
    conv_variant v;
    v.groups = conv2d_groups(p);
    v.dilation_h = conv2d_dilation_h(p);
    v.dilation_w = conv2d_dilation_w(p);
    v.in_channels = p->in_channels / v.groups;
    v.out_channels = p->out_channels / v.groups;
    return v;
}

/* 1 for the general variant: groups or a dilation that is not 1. */
static int variant_general(const conv_variant *v) {
    return v->groups != 1 || v->dilation_h != 1 || v->dilation_w != 1;
}

/* Appends the variant's -D option to the kernel options in buf. */
static void variant_options(const conv_variant *v, char *buf, size_t size) {
    const size_t used = strlen(buf);
    if (variant_general(v) && used < size)
        snprintf(buf + used, size - used, " -DGENERAL");
}

/* Appends the general variant's extra kernel arguments (the groups, then
 * the dilation) to args[0 .. count); returns the new count. args must have
 * room for three more. */
static int variant_args(const conv_variant *v, kernel_arg *args, int count) {
    if (variant_general(v)) {
        args[count++] = (kernel_arg){sizeof(int), &v->groups};
        args[count++] = (kernel_arg){sizeof(int), &v->dilation_h};
        args[count++] = (kernel_arg){sizeof(int), &v->dilation_w};
    }
    return count;
}

/* The NDRange of a kernel whose last dimension runs over the groups in the
 * general variant: one more dimension than the ordinary convolution's. */
static int variant_dims(const conv_variant *v, int dims) {
    return variant_general(v) ? dims + 1 : dims;
}

/* The input rows (or columns) a window spans: dilation * (kernel - 1) + 1. */
static int effective_kernel_h(const conv2d_params *p) {
    return conv2d_dilation_h(p) * (p->kernel_h - 1) + 1;
}

static int effective_kernel_w(const conv2d_params *p) {
    return conv2d_dilation_w(p) * (p->kernel_w - 1) + 1;
}

/* Every index space the convolution kernels address with ints: the input,
 * the output, the weights, the positions and a zero-padded copy of the
 * input with every window (the register-blocked and row kernels' scratch).
 * The dispatchers below check them, so the int arguments taken from p are
 * exact. */
static clcnn_status check_int_sizes(clcnn_context *ctx, const conv2d_params *p) {
    const int64_t batch = p->batch;
    const int64_t padded_h = (int64_t)p->in_height + p->kernel_h + 2 * (int64_t)p->pad_top +
                             (int64_t)p->out_height * p->stride_h;
    const int64_t padded_w = (int64_t)p->in_width + p->kernel_w + 2 * (int64_t)p->pad_left +
                             (int64_t)p->out_width * p->stride_w + 64;
    const int64_t sizes[] = {
        batch * p->in_channels * p->in_height * p->in_width,
        batch * p->out_channels * p->out_height * p->out_width,
        (int64_t)p->out_channels * p->in_channels * p->kernel_h * p->kernel_w,
        batch * p->in_channels * padded_h * padded_w,
    };
    const char *const names[] = {"the convolution's input", "its output", "its weights",
                                 "its zero-padded input"};
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < 4 && status == CLCNN_OK; i++)
        status = require_int_size(ctx, names[i], sizes[i]);
    return status;
}

/* The tiled kernel `name` (conv2d.cl) for config and the variant of p,
 * after checking config against the device (what: the operation, for the error). */
static clcnn_status tiled_kernel(clcnn_context *ctx, const tile_config *config,
                                 const conv2d_params *p, const char *what, const char *name,
                                 cl_kernel *kernel) {
    clcnn_status status = tile_config_require(ctx, config, what);
    if (status != CLCNN_OK)
        return status;
    const conv_variant v = variant_of(p);
    char options[256];
    tile_config_options(config, options, sizeof(options));
    variant_options(&v, options, sizeof(options));
    return runtime_get_kernel(ctx, "conv2d", name, options, kernel);
}

clcnn_status conv2d_forward_tiled(clcnn_context *ctx, const tile_config *config,
                                  const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                  cl_mem output) {
    cl_kernel kernel;
    clcnn_status status = tiled_kernel(ctx, config, p, "conv2d forward", "conv2d_forward", &kernel);
    if (status != CLCNN_OK)
        return status;
    const conv_variant v = variant_of(p);
    const int columns = p->batch * p->out_height * p->out_width;
    /* A bias-less layer still needs a valid buffer argument; the kernel never reads it. */
    cl_mem bias_arg = p->has_bias ? bias : weight;
    kernel_arg args[21] = {
        {sizeof(cl_mem), &input},     {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output},    {sizeof(int), &v.in_channels},  {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width},  {sizeof(int), &v.out_channels}, {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},  {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},   {sizeof(int), &p->pad_left},    {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width}, {sizeof(int), &columns},        {sizeof(int), &p->has_bias},
    };
    const int arg_count = variant_args(&v, args, 18);
    const size_t local[3] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m), 1};
    const size_t global[3] = {(size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((v.out_channels + config->tile_m - 1) / config->tile_m) *
                                  local[1],
                              (size_t)v.groups};
    return runtime_launch(ctx, kernel, "conv2d_forward", arg_count, args, variant_dims(&v, 2),
                          global, local);
}

/* The padded input's height and width: every window, nothing more. */
static int padded_height(const conv2d_params *p) {
    return (p->out_height - 1) * p->stride_h + effective_kernel_h(p);
}

static int padded_width(const conv2d_params *p) {
    return (p->out_width - 1) * p->stride_w + effective_kernel_w(p);
}

/* Each part starts on a multiple of 64 floats, so that vector loads stay aligned. */
static int64_t round_up_64(int64_t floats) {
    return (floats + 63) / 64 * 64;
}

/* 1 if every window lies inside the input, which the kernel can then read
 * as it is, without a padded copy. */
static int windows_inside_input(const conv2d_params *p) {
    return p->pad_top == 0 && p->pad_left == 0 && padded_height(p) <= p->in_height &&
           padded_width(p) <= p->in_width;
}

clcnn_status pad_input(clcnn_context *ctx, const char *what, const conv2d_params *p, cl_mem input,
                       cl_mem padded, int padded_offset, int padded_h, int padded_w) {
    const int planes = p->batch * p->in_channels;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},     {sizeof(cl_mem), &padded},   {sizeof(int), &padded_offset},
        {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width}, {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},  {sizeof(int), &padded_h},    {sizeof(int), &padded_w},
        {sizeof(int), &planes},
    };
    const size_t local[1] = {16};
    const size_t global[1] = {(size_t)planes};
    return runtime_run(ctx, "conv2d_direct", "conv2d_pad_input", "", what,
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

/* The same copy channels-last, (N, padded_h, padded_w, C), for the direct forward. */
static clcnn_status pad_input_channels_last(clcnn_context *ctx, const char *what,
                                            const conv2d_params *p, cl_mem input, cl_mem padded,
                                            int padded_offset, int padded_h, int padded_w) {
    const int rows = p->batch * padded_h;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},       {sizeof(cl_mem), &padded},    {sizeof(int), &padded_offset},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width},
        {sizeof(int), &p->pad_top},     {sizeof(int), &p->pad_left},  {sizeof(int), &padded_h},
        {sizeof(int), &padded_w},       {sizeof(int), &rows},
    };
    const size_t local[1] = {8};
    const size_t global[1] = {(size_t)rows};
    return runtime_run(ctx, "conv2d_direct", "conv2d_pad_input_channels_last", "", what,
                       sizeof(args) / sizeof(args[0]), args, 1, global, local);
}

int conv2d_direct_padded_channels(int channels, const direct_config *config) {
    int block = config->vw * config->nv;
    return (channels + block - 1) / block * block;
}

/* Which of p's taps a transposed copy of its filters holds, in the copy's
 * order: tap (t, u) of the copy, t < rows and u < cols, is the filters' tap
 * (first_r + step_r * t, first_s + step_s * u). */
typedef struct tap_walk {
    int rows, cols, first_r, first_s, step_r, step_s;
} tap_walk;

/* Transposes the weights into the workspace for the register-blocked kernels
 * (of a grouped convolution: each group's block, one after the other). The
 * copy holds the taps `taps` walks (backward-data's transpose only), or all
 * of p's in order where it is NULL. It goes into `into`, or where that is
 * NULL into the workspace; *out is the buffer it went to. */
static clcnn_status transpose_weights(clcnn_context *ctx, const char *kernel_name,
                                      const conv2d_params *p, cl_mem weight, int padded,
                                      const tap_walk *taps, cl_mem into, cl_mem *out) {
    const tap_walk all = {p->kernel_h, p->kernel_w, 0, 0, 1, 1};
    if (!taps)
        taps = &all;
    const conv_variant v = variant_of(p);
    const int for_forward = strcmp(kernel_name, "conv2d_transpose_for_forward") == 0;
    const int other = for_forward ? v.in_channels : v.out_channels;
    size_t count = (size_t)taps->rows * taps->cols * other * padded;
    *out = into;
    clcnn_status status =
        into ? CLCNN_OK : runtime_workspace(ctx, sizeof(float) * count * v.groups, out);
    char options[32] = "";
    variant_options(&v, options, sizeof(options));
    if (status != CLCNN_OK)
        return status;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weight},     {sizeof(cl_mem), out},
        {sizeof(int), &v.in_channels}, {sizeof(int), &v.out_channels},
        {sizeof(int), &p->kernel_h},   {sizeof(int), &p->kernel_w},
        {sizeof(int), &padded},        {sizeof(int), &taps->rows},
        {sizeof(int), &taps->cols},    {sizeof(int), &taps->first_r},
        {sizeof(int), &taps->first_s}, {sizeof(int), &taps->step_r},
        {sizeof(int), &taps->step_s},
    };
    /* A work-item per row of the copy: `padded` adjacent floats. */
    const size_t local[2] = {16, 1};
    const size_t global[2] = {count / (size_t)padded, (size_t)v.groups};
    /* The forward's transpose takes no tap walk: the first 7 arguments. */
    const int arg_count = for_forward ? 7 : sizeof(args) / sizeof(args[0]);
    return runtime_run(ctx, "conv2d_direct", kernel_name, options, kernel_name, arg_count, args,
                       variant_dims(&v, 1), global, local);
}

clcnn_status prepared_buffer(clcnn_context *ctx, prepared_weights *prepared, cl_mem weight,
                             const char *transform, int padded, int block, size_t bytes,
                             cl_mem *buffer, int *current) {
    *current = prepared->made && prepared->made_at == prepared->version &&
               prepared->made_from == weight && prepared->transform == transform &&
               prepared->padded == padded && prepared->block == block && prepared->bytes == bytes;
    *buffer = prepared->buffer;
    if (*current)
        return CLCNN_OK;
    prepared->made = 0;
    if (prepared->bytes != bytes) {
        buffer_release(&prepared->buffer);
        prepared->bytes = 0;
        clcnn_status status = buffer_create(ctx, bytes, &prepared->buffer);
        if (status != CLCNN_OK)
            return status;
        prepared->bytes = bytes;
    }
    *buffer = prepared->buffer;
    prepared->made_from = weight;
    prepared->made_at = prepared->version;
    prepared->transform = transform;
    prepared->padded = padded;
    prepared->block = block;
    return CLCNN_OK;
}

void prepared_made(prepared_weights *prepared, clcnn_status status) {
    prepared->made = status == CLCNN_OK;
}

/* The bytes of p's filters transposed for its forward, padded output
 * channels a tap. */
static size_t forward_filter_bytes(const conv2d_params *p, int padded) {
    const conv_variant v = variant_of(p);
    return sizeof(float) * (size_t)p->kernel_h * p->kernel_w * v.in_channels * padded * v.groups;
}

/* The forward's transposed filters: into the workspace as *out without
 * prepared, else kept in prepared's buffer. */
static clcnn_status forward_filters(clcnn_context *ctx, const conv2d_params *p, cl_mem weight,
                                    int padded, prepared_weights *prepared, cl_mem *out) {
    static const char transform[] = "conv2d_transpose_for_forward";
    if (!prepared)
        return transpose_weights(ctx, transform, p, weight, padded, NULL, NULL, out);
    const size_t bytes = forward_filter_bytes(p, padded);
    int current;
    clcnn_status status =
        prepared_buffer(ctx, prepared, weight, transform, padded, padded, bytes, out, &current);
    if (status != CLCNN_OK || current)
        return status;
    status = transpose_weights(ctx, transform, p, weight, padded, NULL, *out, out);
    prepared_made(prepared, status);
    return status;
}

/* A forward work-item reads reduced channels x R x S x its vw*nv channels of
 * weights. Past blocking_weight_bytes they no longer stay in a CPU's L1
 * cache from one work-item of a group to the next, and the reduction runs
 * in blocks of FORWARD_CHANNEL_BLOCK channels that the group's work-items
 * (at least BLOCKED_GROUP of them) walk in step: 3x3 with 128 and 256
 * channels went 22-34% faster on an AMD EPYC (AVX2, interleaved A/B); with 64
 * channels (36 KiB) it gained nothing, so those keep the one-block loop.
 * Blocks change the order of summation, and so the floats: the choice is
 * the shape's alone, made for BLOCKING_CHANNELS_PER_ITEM channels a
 * work-item (AVX2's default), so that a wider device or a tuned
 * configuration computes the same floats as any other. */
enum { FORWARD_CHANNEL_BLOCK = 32, BLOCKED_GROUP = 16, BLOCKING_CHANNELS_PER_ITEM = 16 };
static const int64_t blocking_weight_bytes = 48 * 1024;

/* The forward's channel block for the (per-group) convolution v of p, 0 for none. */
static int forward_channel_block(const clcnn_context *ctx, const conv2d_params *p,
                                 const conv_variant *v) {
    const int64_t bytes = (int64_t)sizeof(float) * v->in_channels * p->kernel_h * p->kernel_w *
                          BLOCKING_CHANNELS_PER_ITEM;
    const int cpu = device_is_cpu(ctx);
    return cpu && bytes > blocking_weight_bytes ? FORWARD_CHANNEL_BLOCK : 0;
}

/* The direct forward's build options (the configuration, the variant,
 * whether every window lies inside the input it reads, whether that is
 * read channels-last, whether a work-item's positions lie in one row, the
 * channel block) and its work-group size. */
static void forward_direct_options(const clcnn_context *ctx, const direct_config *config,
                                   const conv2d_params *p, int windows_inside, int channels_last,
                                   int row_positions, char *options, size_t size,
                                   size_t *group_out) {
    const conv_variant v = variant_of(p);
    direct_config_options(config, options, size);
    variant_options(&v, options, size);
    if (windows_inside)
        strncat(options, " -DWINDOWS_INSIDE", size - strlen(options) - 1);
    if (channels_last)
        strncat(options, " -DCHANNELS_LAST", size - strlen(options) - 1);
    if (row_positions) {
        const size_t used = strlen(options);
        snprintf(options + used, size - used, " -DROW_POSITIONS -DROW_STRIDE=%d -DROW_PIXEL=%d",
                 p->stride_w, channels_last ? v.in_channels : 1);
    }
    const int block = forward_channel_block(ctx, p, &v);
    size_t group = (size_t)config->group;
    if (block) {
        const size_t used = strlen(options);
        snprintf(options + used, size - used, " -DCHANNEL_BLOCK=%d", block);
        if (group < BLOCKED_GROUP)
            group = BLOCKED_GROUP;
        if (ctx->max_work_group_size && group > ctx->max_work_group_size)
            group = ctx->max_work_group_size;
    }
    if (group_out)
        *group_out = group;
}

int conv2d_forward_epilogue(const conv2d_params *p) {
    return (p->has_bias ? EPILOGUE_BIAS : 0) | (p->relu ? EPILOGUE_RELU : 0);
}

/* A copy of p's input zero-padded to padded_h x padded_w (p's padding
 * before, as much as it takes after), at dst + offset, for the forward of
 * p, channels-last or planar. With gradient the input is backward-data's
 * gradient, and the launch is profiled under a name of backward-data's
 * (clcnn bench counts it there). */
static clcnn_status copy_padded(clcnn_context *ctx, const conv2d_params *p, int channels_last,
                                int gradient, cl_mem input, cl_mem dst, int offset, int padded_h,
                                int padded_w) {
    static const char *const names[2][2] = {
        {"conv2d_pad_input", "conv2d_pad_input_channels_last"},
        {"conv2d_backward_data_pad", "conv2d_backward_data_pad_channels_last"}};
    const char *what = names[gradient != 0][channels_last != 0];
    return channels_last
               ? pad_input_channels_last(ctx, what, p, input, dst, offset, padded_h, padded_w)
               : pad_input(ctx, what, p, input, dst, offset, padded_h, padded_w);
}

/* A forward that reads a zero-padded copy (every convolution with padding,
 * backward-data's phases included) or an input no window leaves takes a
 * work-item's positions side by side in one output row
 * (kernels/conv2d_direct.cl, ROW_POSITIONS) where a
 * run of 4 or more divides the row: at most 2 vectors of channels and the
 * longest such run within 14 accumulators, so that they and the weights
 * stay in 32 vector registers. In-process A/B on an AMD EPYC with AVX-512
 * against the shape's configuration, batch 64 (32 for the blocked): over
 * the planar copy kept for backward-weights 0.73 of the time at 16
 * channels 28x28, 0.80 at 32 channels 14x14, 0.91 at 64 channels 7x7,
 * 0.82 and 0.90 at stride 2 (16 -> 32 channels from 28x28, 32 -> 64 from
 * 14x14); in channel blocks 0.89 at 128 channels 28x28 and 0.69 at 256
 * channels 14x14, backward-data 0.90 and 0.68; over a channels-last copy
 * (its positions C * stride floats apart, C a build constant) 0.90 of the
 * forward and 0.91 of backward-data at 16 channels 28x28 and 0.89 at
 * stride 2 (16 -> 32 channels), but 0.98-1.0 with 2 vectors of channels (32
 * and 64 channels). There every input channel count is a program of its
 * own (twice the programs in test_conv_backward's random shapes), so only
 * with one vector of channels and input channels in whole 64-byte lines
 * (multiples of 16, as networks' layers have them). Over inputs without
 * padding (no copy, planar): LeNet-5's conv2 (6 -> 16 channels, 5x5 on
 * 12x12) forward 0.64 of the time, 1x1 convolutions forward 0.89 (16 -> 32
 * stride 2, 64 <-> 256 at 56x56) and backward-data 0.87-0.90, 0.71 at 16
 * channels 28x28. The floats are the configuration's: a position's sums do
 * not depend on the blocking.
 * Returns 0 where no run fits, *rows untouched. */
static int row_positions_config(const clcnn_context *ctx, const direct_config *config,
                                const conv2d_params *p, int planar, direct_config *rows) {
    if (vector_registers(ctx) != 32 || !conv2d_is_plain(p) ||
        (!planar && (config->nv > 1 || p->in_channels % 16 != 0)))
        return 0;
    direct_config c = *config;
    if (c.nv > 2)
        c.nv = 2;
    for (c.wpt_p = 14 / c.nv; c.wpt_p >= 4; c.wpt_p--)
        if (p->out_width % c.wpt_p == 0) {
            *rows = c;
            return 1;
        }
    return 0;
}

/* Whether p's forward reads its padded copy planar: the copy it keeps for
 * backward-weights, one whose reduction runs in channel blocks, or one of
 * fewer than CHANNELS_LAST_MIN_CHANNELS channels, whose taps' channels span
 * few cache lines either way, so that the planar copy's speed decides
 * (1.4-1.9x faster than the channels-last one): the forward with its copy,
 * fastest calls, AMD EPYC Zen 4, 16 channels 28x28 batch 64 1.27 against
 * 1.38 ms, 32 at 14x14 1.22 against 1.34, 32 -> 64 stride 2 1.40 against
 * 1.65; at 64 channels 7x7 batch 128 2.53 against 2.37 the other way. */
enum { CHANNELS_LAST_MIN_CHANNELS = 64 };

static int planar_copy(const clcnn_context *ctx, const conv2d_params *p, int keep) {
    const conv_variant v = variant_of(p);
    return keep || (conv2d_is_plain(p) && (forward_channel_block(ctx, p, &v) ||
                                           v.in_channels < CHANNELS_LAST_MIN_CHANNELS));
}

/* The register-blocked forward of p; its filters are `weight` transposed
 * (kept in prepared, when given: forward_filters). */
static clcnn_status forward_direct(clcnn_context *ctx, const direct_config *config,
                                   const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                   cl_mem output, cl_mem kept_input, prepared_weights *prepared) {
    const conv_variant v = variant_of(p);
    const int padded_h = padded_height(p), padded_w = padded_width(p);
    const int64_t copy_floats = (int64_t)p->batch * p->in_channels * padded_h * padded_w;
    /* The copy goes to kept_input instead, when the caller keeps it for
     * backward-weights (conv2d_kept_input_floats, which checks only the
     * copy's size: backward-weights then relies on it being written). */
    const int inside = windows_inside_input(p);
    const int keep = kept_input && !inside && copy_floats <= INT_MAX;
    const int planar = planar_copy(ctx, p, keep);
    direct_config rows;
    const int row_positions = row_positions_config(ctx, config, p, planar || inside, &rows);
    if (row_positions)
        config = &rows;
    const int padded = conv2d_direct_padded_channels(v.out_channels, config);
    /* Windows that reach into the padding read a zero-padded copy of the
     * input, which the workspace holds after the transposed weights: without
     * a test per tap the inner loop runs faster than the copy costs. Not
     * for a strided convolution whose work-items' positions lie in one row
     * of a planar input: the kernel then reads the input itself and tests
     * only the taps that reach into the padding (kernels/conv2d_direct.cl).
     * Xeon AVX-512, 3x3 stride 2, fastest calls: from 16 to 32 channels at
     * 28x28, batch 128, 1.37-1.43 ms with the copy against 1.11-1.21; at
     * 56x56, batch 32, 1.51 against 1.15; 32 to 64 at 14x14 1.17 against
     * 1.04; 128 to 256 at 28x28 even. At stride 1 a row has more work-items
     * at its ends, whose tests cost more than the copy (16 channels at 28x28
     * 1.23 against 1.48 ms, 128 and 256 channels 3-6 % slower). */
    const int64_t weights_end =
        round_up_64((int64_t)p->kernel_h * p->kernel_w * v.in_channels * padded * v.groups);
    const int64_t copy_end = weights_end + copy_floats;
    const int unpadded = !keep && !inside && row_positions && planar && p->stride_w > 1;
    const int copy = keep || (!inside && !unpadded && copy_end <= INT_MAX);
    cl_mem workspace = NULL, transposed = NULL;
    clcnn_status status = CLCNN_OK;
    if (copy && !keep)
        status = runtime_workspace(ctx, sizeof(float) * (size_t)copy_end, &workspace);
    if (status == CLCNN_OK)
        status = forward_filters(ctx, p, weight, padded, prepared, &transposed);
    const int input_offset = copy && !keep ? (int)weights_end : 0;
    cl_mem input_arg = keep ? kept_input : copy ? workspace : input;
    /* A copy of its own the forward reads channels-last, which gathers a
     * tap's channels from one cache line instead of one line per channel
     * (3x3, 64 channels at 56x56: forward and backward-data 22 % faster
     * with the copy, 7x7 5-7 %). Not below 64 channels (planar_copy), nor
     * where the reduction runs in channel blocks,
     * which keep its lines in L1 already (128 channels at 28x28: 2-4 %
     * slower channels-last). A copy kept for backward-weights stays
     * planar: that kernel walks rows of one channel (18-37 % slower
     * channels-last). */
    const int channels_last = copy && !planar && conv2d_is_plain(p);
    if (status == CLCNN_OK && copy)
        status = copy_padded(ctx, p, channels_last, 0, input, input_arg, input_offset, padded_h,
                             padded_w);
    if (status != CLCNN_OK)
        return status;
    const direct_forward_operands o = {.input = input_arg,
                                       .input_offset = input_offset,
                                       .transposed = transposed,
                                       .bias = bias,
                                       .output = output,
                                       .padded_input = copy,
                                       .padded_h = padded_h,
                                       .padded_w = padded_w,
                                       .channels_last = channels_last,
                                       .row_positions =
                                           row_positions && (copy || inside || unpadded)};
    return conv2d_forward_direct_launch(ctx, config, p, &o);
}

clcnn_status conv2d_forward_direct_launch(clcnn_context *ctx, const direct_config *config,
                                          const conv2d_params *p,
                                          const direct_forward_operands *o) {
    const conv_variant v = variant_of(p);
    /* A padded copy, or an input no window leaves (no padding: 1x1 and dense
     * layers among them), is read without a bounds test per tap. */
    const int windows_inside = o->padded_input || windows_inside_input(p);
    char options[224];
    size_t group;
    forward_direct_options(ctx, config, p, windows_inside, o->channels_last, o->row_positions,
                           options, sizeof(options), &group);
    cl_kernel kernel;
    clcnn_status status =
        runtime_get_kernel_alone(ctx, "conv2d_direct", "conv2d_forward_direct", options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int padded = conv2d_direct_padded_channels(v.out_channels, config);
    const int positions = p->batch * p->out_height * p->out_width;
    cl_mem bias_arg = p->has_bias ? o->bias : o->transposed;
    const int height = o->padded_input ? o->padded_h : p->in_height;
    const int width = o->padded_input ? o->padded_w : p->in_width;
    const int pad_top = o->padded_input ? 0 : p->pad_top;
    const int pad_left = o->padded_input ? 0 : p->pad_left;
    const int epilogue = conv2d_forward_epilogue(p) | (o->accumulate ? EPILOGUE_ACCUMULATE : 0);
    kernel_arg args[25] = {
        {sizeof(cl_mem), &o->input},      {sizeof(int), &o->input_offset},
        {sizeof(cl_mem), &o->transposed}, {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &o->output},     {sizeof(int), &v.in_channels},
        {sizeof(int), &height},           {sizeof(int), &width},
        {sizeof(int), &v.out_channels},   {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},      {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},      {sizeof(int), &pad_top},
        {sizeof(int), &pad_left},         {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},     {sizeof(int), &positions},
        {sizeof(int), &epilogue},         {sizeof(int), &padded},
        {sizeof(int), &o->weight_offset}, {sizeof(int), &o->output_offset},
    };
    const int arg_count = variant_args(&v, args, 22);
    const size_t local[3] = {1, group, 1};
    const size_t global[3] = {(size_t)(padded / (config->vw * config->nv)),
                              (size_t)((positions + config->wpt_p - 1) / config->wpt_p),
                              (size_t)v.groups};
    return runtime_launch(ctx, kernel, "conv2d_forward_direct", arg_count, args,
                          variant_dims(&v, 2), global, local);
}

clcnn_status conv2d_forward_direct(clcnn_context *ctx, const direct_config *config,
                                   const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                   cl_mem output) {
    return forward_direct(ctx, config, p, input, weight, bias, output, NULL, NULL);
}

/* Whether the row kernel fits: stride 1 and so few input channels that
 * vectors over the output channels would be mostly empty. */
/* The row kernel's -D parameters and padded-input layout for the stride-1 convolution p. */
typedef struct rows_plan {
    int vw, row_vectors, channel_block;
    int padded_height, pitch;
    int64_t padded_floats;
} rows_plan;

static rows_plan plan_rows(const clcnn_context *ctx, const conv2d_params *p) {
    rows_plan plan;
    /* Vectors of 16 where the device prefers them and a row is longer than
     * 8: fewer loads and multiply-adds a row than in 8s (AMD EPYC with
     * AVX-512, batch 64: LeNet-5's conv2 backward-data, rows of 14, 0.70 ->
     * 0.30-0.56 ms; the residual network's stem, rows of 28, 0.36-0.41 ->
     * 0.31-0.33 ms; 3 -> 16 channels at 32x32 0.77-0.82 -> 0.56-0.60 ms). */
    plan.vw = ctx->preferred_vector_width >= 16 && p->out_width > 8 ? 16
              : ctx->preferred_vector_width >= 8                    ? 8
                                                                    : 4;
    plan.row_vectors = (p->out_width + plan.vw - 1) / plan.vw;
    /* The accumulators, a tap's row vectors and a broadcast weight within
     * the register file: past it they spill on every multiply-add (LeNet-5
     * conv1, 4 row vectors on AVX2: 2 channels a work-item ran 26 % faster
     * than 6, 3 and 4 slower). The channels are then shared out evenly:
     * 16 as 8 and 8, not 14 and 2 (which had made the stem's rows of 28
     * slower in 16s than in 8s: 0.57-0.66 ms). */
    int block = (vector_registers(ctx) - plan.row_vectors - 1) / plan.row_vectors;
    if (block < 1)
        block = 1;
    const int items = (p->out_channels + block - 1) / block;
    plan.channel_block = (p->out_channels + items - 1) / items;
    plan.padded_height = p->out_height - 1 + p->kernel_h;
    plan.pitch = plan.row_vectors * plan.vw + p->kernel_w - 1;
    plan.padded_floats = (int64_t)p->batch * p->in_channels * plan.padded_height * plan.pitch;
    return plan;
}

static int use_row_kernel(const conv2d_params *p) {
    return conv2d_is_plain(p) && p->stride_h == 1 && p->stride_w == 1 && p->in_channels <= 4 &&
           p->out_width >= 8 && p->out_width <= 64;
}

/* conv2d_forward_rows for the stride-1 convolution p: input zero-padded into
 * `workspace` from float padded_offset, then one work-item per output row and
 * block of output channels; the filters are read from weight + weight_offset. */
static clcnn_status rows_convolution(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                     cl_mem weight, int weight_offset, cl_mem bias, cl_mem output,
                                     cl_mem workspace, int padded_offset) {
    const rows_plan plan = plan_rows(ctx, p);
    char options[128];
    snprintf(options, sizeof(options), "-DVW=%d -DROW_VECTORS=%d -DCHANNEL_BLOCK=%d", plan.vw,
             plan.row_vectors, plan.channel_block);
    cl_kernel kernel;
    clcnn_status status =
        runtime_get_kernel_alone(ctx, "conv2d_direct", "conv2d_forward_rows", options, &kernel);
    if (status == CLCNN_OK)
        status = pad_input(ctx, "conv2d_pad_input", p, input, workspace, padded_offset,
                           plan.padded_height, plan.pitch);
    if (status != CLCNN_OK)
        return status;
    const int rows = p->batch * p->out_height;
    cl_mem bias_arg = p->has_bias ? bias : weight;
    const int epilogue = conv2d_forward_epilogue(p);
    const kernel_arg args[] = {
        {sizeof(cl_mem), &workspace},
        {sizeof(int), &padded_offset},
        {sizeof(cl_mem), &weight},
        {sizeof(int), &weight_offset},
        {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output},
        {sizeof(int), &p->in_channels},
        {sizeof(int), &p->out_channels},
        {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},
        {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},
        {sizeof(int), &plan.padded_height},
        {sizeof(int), &plan.pitch},
        {sizeof(int), &rows},
        {sizeof(int), &epilogue},
        {sizeof(int), &p->pad_top},
        {sizeof(int), &p->in_height},
    };
    const size_t local[2] = {1, 4};
    const size_t global[2] = {
        (size_t)((p->out_channels + plan.channel_block - 1) / plan.channel_block), (size_t)rows};
    return runtime_launch(ctx, kernel, "conv2d_forward_rows", sizeof(args) / sizeof(args[0]), args,
                          2, global, local);
}

static clcnn_status conv2d_forward_rows(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                        cl_mem weight, cl_mem bias, cl_mem output) {
    const rows_plan plan = plan_rows(ctx, p);
    cl_mem workspace;
    clcnn_status status =
        runtime_workspace(ctx, sizeof(float) * (size_t)plan.padded_floats, &workspace);
    if (status != CLCNN_OK)
        return status;
    return rows_convolution(ctx, p, input, weight, 0, bias, output, workspace, 0);
}

conv2d_params conv2d_backward_data_as_forward(const conv2d_params *p) {
    conv2d_params b = *p;
    b.in_channels = p->out_channels;
    b.out_channels = p->in_channels;
    b.in_height = p->out_height;
    b.in_width = p->out_width;
    b.out_height = p->in_height;
    b.out_width = p->in_width;
    b.pad_top = p->kernel_h - 1 - p->pad_top;
    b.pad_left = p->kernel_w - 1 - p->pad_left;
    b.has_bias = 0;
    b.relu = 0;
    return b;
}

static int use_rows_for_backward_data(const conv2d_params *p) {
    const conv2d_params b = conv2d_backward_data_as_forward(p);
    return conv2d_is_plain(p) && p->stride_h == 1 && p->stride_w == 1 && p->in_channels <= 8 &&
           b.pad_top >= 0 && b.pad_left >= 0 && b.out_width >= 8 && b.out_width <= 64;
}

static clcnn_status conv2d_backward_data_rows(clcnn_context *ctx, const conv2d_params *p,
                                              cl_mem grad_output, cl_mem weight,
                                              cl_mem grad_input) {
    const conv2d_params b = conv2d_backward_data_as_forward(p);
    const rows_plan plan = plan_rows(ctx, &b);
    /* Workspace: the flipped filters, then the padded gradient. */
    const int weight_count = p->out_channels * p->in_channels * p->kernel_h * p->kernel_w;
    const int padded_offset = (weight_count + 63) / 64 * 64;
    clcnn_status status = require_int_size(ctx, "conv2d backward data: the padded gradient",
                                           padded_offset + plan.padded_floats);
    if (status != CLCNN_OK)
        return status;
    cl_mem workspace;
    status = runtime_workspace(
        ctx, sizeof(float) * ((size_t)padded_offset + (size_t)plan.padded_floats), &workspace);
    if (status != CLCNN_OK)
        return status;
    const kernel_arg flip_args[] = {
        {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &workspace},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->out_channels},
        {sizeof(int), &p->kernel_h},    {sizeof(int), &p->kernel_w},
    };
    const size_t flip_local[1] = {64};
    const size_t flip_global[1] = {(size_t)weight_count};
    status = runtime_run(ctx, "conv2d_direct", "conv2d_flip_for_backward_data", "",
                         "conv2d_flip_for_backward_data", sizeof(flip_args) / sizeof(flip_args[0]),
                         flip_args, 1, flip_global, flip_local);
    if (status != CLCNN_OK)
        return status;
    return rows_convolution(ctx, &b, grad_output, workspace, 0, NULL, grad_input, workspace,
                            padded_offset);
}

/* ---- grouped convolutions with few channels per group: kernels/conv2d_depthwise.cl ---------- */

/* Input channels per group up to which a grouped convolution runs on the
 * depthwise kernels, on either family: with so few channels per group the
 * GEMM-style kernels' reduction is a handful of taps, and their tiles or
 * vectors of channels are mostly empty. */
enum { DEPTHWISE_MAX_GROUP_CHANNELS = 1 };

int conv2d_runs_depthwise(const conv2d_params *p) {
    return conv2d_groups(p) > 1 &&
           p->in_channels / conv2d_groups(p) <= DEPTHWISE_MAX_GROUP_CHANNELS;
}

/* The arguments every depthwise kernel takes after its buffers, in this order. */
typedef struct depthwise_args {
    int in_channels, in_height, in_width, out_channels, kernel_h, kernel_w;
    int stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w;
    int out_height, out_width, groups;
} depthwise_args;

static depthwise_args depthwise_args_of(const conv2d_params *p) {
    return (depthwise_args){p->in_channels,  p->in_height,         p->in_width,
                            p->out_channels, p->kernel_h,          p->kernel_w,
                            p->stride_h,     p->stride_w,          p->pad_top,
                            p->pad_left,     conv2d_dilation_h(p), conv2d_dilation_w(p),
                            p->out_height,   p->out_width,         conv2d_groups(p)};
}

/* Writes the buffers and then the shape's arguments into args; returns the count. */
static int depthwise_kernel_args(const cl_mem *buffers, int buffer_count, const depthwise_args *a,
                                 kernel_arg *args) {
    const int *shape[] = {&a->in_channels, &a->in_height, &a->in_width,   &a->out_channels,
                          &a->kernel_h,    &a->kernel_w,  &a->stride_h,   &a->stride_w,
                          &a->pad_top,     &a->pad_left,  &a->dilation_h, &a->dilation_w,
                          &a->out_height,  &a->out_width, &a->groups};
    int count = 0;
    for (int i = 0; i < buffer_count; i++)
        args[count++] = (kernel_arg){sizeof(cl_mem), &buffers[i]};
    for (size_t i = 0; i < sizeof(shape) / sizeof(shape[0]); i++)
        args[count++] = (kernel_arg){sizeof(int), shape[i]};
    return count;
}

/* Results per work-item step along a row `row` long (-DWPT_W): one on
 * devices that run the tiled kernels (GPUs); on CPU devices, where a
 * work-item walks its whole row in vectors, 16 where the device prefers
 * 16-float vectors and the row is longer than 8, else 8. 16 was 10-30 %
 * slower on AMD EPYC with AVX2 (more of a row's results fell in its scalar
 * edges); on a Xeon with AVX-512, 3x3, fastest forwards: 112x112 with 32
 * channels 1.46 -> 1.10 ms, 56x56 with 64 3.58-3.62 -> 3.15-3.27, 28x28 with
 * 128 2.51 -> 2.33, 14x14 with 256 1.89 -> 1.76, but 7x7 with 512 1.29 ->
 * 1.37. */
static int depthwise_results_per_item(const clcnn_context *ctx, int row) {
    if (!use_direct_kernels(ctx))
        return 1;
    return ctx->preferred_vector_width >= 16 && row > 8 ? 16 : 8;
}

/* Rows per work-item of the forward and backward-data kernels (-DTILE_ROWS):
 * 8 on CPU devices (kernels/conv2d_depthwise.cl says why), 1 elsewhere. */
static int depthwise_rows_per_item(const clcnn_context *ctx) {
    return use_direct_kernels(ctx) ? 8 : 1;
}

/* Kernel `name` of kernels/conv2d_depthwise.cl, built for this device, and
 * for filters taps_s wide where that is 1-7 (-DTAPS_S, 0: any width): the
 * forward's and backward-data's loop over a tap row then unrolls (64
 * channels at 56x56, 3x3, batch 32, AMD EPYC with AVX-512: forward 3.15-3.33
 * -> 2.81-2.96 ms, backward-data 3.20-3.36 -> 2.95-3.29 ms). */
static clcnn_status depthwise_kernel(clcnn_context *ctx, const char *name, int taps_s, int row,
                                     cl_kernel *kernel) {
    char options[64];
    int used = snprintf(options, sizeof(options), "-DWPT_W=%d -DTILE_ROWS=%d",
                        depthwise_results_per_item(ctx, row), depthwise_rows_per_item(ctx));
    if (taps_s >= 1 && taps_s <= 7)
        snprintf(options + used, sizeof(options) - (size_t)used, " -DTAPS_S=%d", taps_s);
    return runtime_get_kernel(ctx, "conv2d_depthwise", name, options, kernel);
}

/* The launch of the forward or backward-data kernel over planes x rows x
 * columns: on CPU devices one work-item a tile of rows, whose fixed cost
 * (divisions included) then comes once a tile rather than once a vector. */
static void depthwise_rows_launch(const clcnn_context *ctx, int planes, int rows, int columns,
                                  size_t *global, size_t *local) {
    const int per_item = depthwise_results_per_item(ctx, columns);
    local[0] = per_item == 1 ? 16 : 1;
    local[1] = per_item == 1 ? 4 : 1;
    local[2] = 1;
    global[0] = per_item == 1 ? (size_t)columns : 1;
    global[1] = (size_t)((rows + depthwise_rows_per_item(ctx) - 1) / depthwise_rows_per_item(ctx));
    global[2] = (size_t)planes;
}

clcnn_status conv2d_forward_depthwise(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                      cl_mem weight, cl_mem bias, cl_mem output) {
    cl_kernel kernel;
    clcnn_status status =
        depthwise_kernel(ctx, "conv2d_depthwise_forward", p->kernel_w, p->out_width, &kernel);
    if (status != CLCNN_OK)
        return status;
    size_t global[3], local[3];
    depthwise_rows_launch(ctx, p->batch * p->out_channels, p->out_height, p->out_width, global,
                          local);
    const depthwise_args a = depthwise_args_of(p);
    /* A bias-less layer still needs a valid buffer argument; the kernel never reads it. */
    const cl_mem buffers[] = {input, weight, p->has_bias ? bias : weight, output};
    kernel_arg args[24];
    int arg_count = depthwise_kernel_args(buffers, 4, &a, args);
    args[arg_count++] = (kernel_arg){sizeof(int), &p->has_bias};
    return runtime_launch(ctx, kernel, "conv2d_depthwise_forward", arg_count, args, 3, global,
                          local);
}

clcnn_status conv2d_backward_data_depthwise(clcnn_context *ctx, const conv2d_params *p,
                                            cl_mem grad_output, cl_mem weight, cl_mem grad_input) {
    cl_kernel kernel;
    clcnn_status status =
        depthwise_kernel(ctx, "conv2d_depthwise_backward_data", p->kernel_w, p->in_width, &kernel);
    if (status != CLCNN_OK)
        return status;
    size_t global[3], local[3];
    depthwise_rows_launch(ctx, p->batch * p->in_channels, p->in_height, p->in_width, global, local);
    const depthwise_args a = depthwise_args_of(p);
    const cl_mem buffers[] = {grad_output, weight, grad_input};
    kernel_arg args[24];
    const int arg_count = depthwise_kernel_args(buffers, 3, &a, args);
    return runtime_launch(ctx, kernel, "conv2d_depthwise_backward_data", arg_count, args, 3, global,
                          local);
}

/* p->relu, in place, after a forward whose kernels do not apply it (and
 * that ended with status). */
static clcnn_status relu_after(clcnn_context *ctx, const conv2d_params *p, cl_mem output,
                               clcnn_status status) {
    if (status != CLCNN_OK || !p->relu)
        return status;
    return activation_forward(ctx, ACTIVATION_RELU, 0.0f,
                              (int64_t)p->batch * p->out_channels * p->out_height * p->out_width,
                              output, output);
}

/* The zero-padded copy of the input that p's planned forward keeps for a
 * direct backward-weights: its planes' height and width, or 0 when nothing
 * is kept. The direct forward's copy is what backward-weights would make;
 * Winograd's kernels pad to (2 TH + 2) x (2 TW + 2) for TH x TW tiles of 2x2
 * outputs, the same where the output's height and width are even and a row
 * and a column more where they are odd, which backward-weights reads past
 * (at 7x7 outputs it had padded the input again: 0.39 ms of its 2.2 at 64
 * channels, batch 128). */
static padded_plane kept_input_plane(const conv2d_plan *plan, const conv2d_params *p) {
    const padded_plane none = {0, 0};
    const conv_kernels forward = plan->forward.kernels;
    /* The 4x4 kernel reads the input itself, and makes no copy. */
    const int winograd = conv2d_kernels_are_winograd(forward) && forward != CONV_WINOGRAD4;
    if (windows_inside_input(p) || (forward != CONV_DIRECT && !winograd) ||
        (winograd && plan->backward_weights.kernels != CONV_DIRECT))
        return none;
    if (winograd)
        return conv2d_winograd_padded_plane(p);
    return (padded_plane){padded_height(p), padded_width(p)};
}

/* The floats of p's input padded to plane, or 0 past int offsets (nothing is kept then). */
static int64_t kept_floats(padded_plane plane, const conv2d_params *p) {
    const int64_t floats = (int64_t)p->batch * p->in_channels * plane.height * plane.width;
    return floats <= INT_MAX ? floats : 0;
}

int64_t conv2d_kept_input_floats(const conv2d_plan *plan, const conv2d_params *p) {
    return kept_floats(kept_input_plane(plan, p), p);
}

int conv2d_forward_runs_rows(const clcnn_context *ctx, const conv2d_plan *plan,
                             const conv2d_params *p, int keeping) {
    direct_config rows;
    const int planar = planar_copy(ctx, p, keeping && conv2d_kept_input_floats(plan, p) > 0);
    return plan->forward.kernels == CONV_DIRECT &&
           row_positions_config(ctx, &plan->forward.config, p, planar || windows_inside_input(p),
                                &rows);
}

/* The pointwise kernel's output channels, padded to whole work-items. */
static int pointwise_padded_channels(int channels, const direct_config *config) {
    return (channels + config->wpt_p - 1) / config->wpt_p * config->wpt_p;
}

size_t conv2d_prepared_bytes(const conv2d_plan *plan, const conv2d_params *p) {
    const conv_step *step = &plan->forward;
    switch (step->kernels) {
    case CONV_WINOGRAD:
    case CONV_WINOGRAD_FUSED:
    case CONV_WINOGRAD_PAIRS:
        return conv2d_winograd_filter_bytes(&step->config, p);
    case CONV_WINOGRAD4:
        return conv2d_winograd4_filter_bytes(&step->config, p);
    case CONV_POINTWISE:
        return forward_filter_bytes(p, pointwise_padded_channels(p->out_channels, &step->config));
    case CONV_DIRECT:
        /* The row positions' blocking (forward_direct) pads to no more. */
        return forward_filter_bytes(
            p, conv2d_direct_padded_channels(variant_of(p).out_channels, &step->config));
    default:
        return 0;
    }
}

clcnn_status conv2d_forward_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                    const conv2d_params *p, cl_mem input, cl_mem weight,
                                    cl_mem bias, cl_mem output, cl_mem kept_input,
                                    prepared_weights *prepared) {
    clcnn_status status = check_int_sizes(ctx, p);
    if (status != CLCNN_OK)
        return status;
    /* The register-blocked, row, pointwise and Winograd kernels apply
     * p->relu as they store; the others leave it to relu_after. */
    const conv_step *step = &plan->forward;
    switch (step->kernels) {
    case CONV_DEPTHWISE:
        return relu_after(ctx, p, output,
                          conv2d_forward_depthwise(ctx, p, input, weight, bias, output));
    case CONV_WINOGRAD:
    case CONV_WINOGRAD_FUSED:
    case CONV_WINOGRAD_PAIRS:
    case CONV_WINOGRAD4:
        return conv2d_forward_winograd(ctx, step, p, input, weight, 0, bias, output,
                                       conv2d_kept_input_floats(plan, p) ? kept_input : NULL,
                                       prepared);
    case CONV_POINTWISE:
        return conv2d_forward_pointwise(ctx, &step->config, p, input, weight, bias, output,
                                        prepared);
    case CONV_ROWS:
        return conv2d_forward_rows(ctx, p, input, weight, bias, output);
    case CONV_DIRECT:
        return forward_direct(ctx, &step->config, p, input, weight, bias, output,
                              conv2d_kept_input_floats(plan, p) ? kept_input : NULL, prepared);
    case CONV_TILED:
        break;
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    return relu_after(ctx, p, output,
                      conv2d_forward_tiled(ctx, &config, p, input, weight, bias, output));
}

clcnn_status conv2d_forward(clcnn_context *ctx, const conv2d_params *p, cl_mem input, cl_mem weight,
                            cl_mem bias, cl_mem output) {
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    return conv2d_forward_planned(ctx, &plan, p, input, weight, bias, output, NULL, NULL);
}

/* ---- pointwise: 1x1 convolutions as matrix products ------------------------------------- */

int conv2d_pointwise_fits(const conv2d_params *p) {
    return conv2d_groups(p) == 1 && p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && p->pad_top == 0 && p->pad_left == 0 &&
           p->out_height == p->in_height && p->out_width == p->in_width;
}

/* Vectors of positions as wide as the device prefers, an eighth of its
 * vector registers' worth of them and as many output channels as leave
 * room for those and a broadcast weight (4 x 6 accumulators of AVX-512's
 * 32 registers, 2 x 6 of AVX2's 16). 4 x 6 ran 1x1 convolutions between 64
 * and 256 channels at 56x56 at 200-210 GFLOP/s, 2 x 8 at 159-174 (Xeon,
 * AVX-512). */
direct_config conv2d_pointwise_config(const clcnn_context *ctx) {
    const cl_uint width = ctx->preferred_vector_width;
    const int registers = vector_registers(ctx);
    const int vectors = registers / 8;
    return (direct_config){width >= 16  ? 16
                           : width >= 8 ? 8
                                        : 4,
                           vectors, (registers - vectors - 2) / vectors, 4};
}

/* kernels/conv2d_direct.cl's conv2d_pointwise for the pointwise product
 * `as_forward` (the forward of p, or the forward that is p's backward-data):
 * the filters of p transposed by transpose_kernel (a forward's kept in
 * prepared, when given: forward_filters; NULL for backward-data), then one
 * launch, profiled as `what` (clcnn bench counts a backward-data's launch
 * there by its name). */
static clcnn_status pointwise_products(clcnn_context *ctx, const direct_config *config,
                                       const conv2d_params *p, const conv2d_params *as_forward,
                                       const char *transpose_kernel, const char *what, cl_mem input,
                                       cl_mem weight, cl_mem bias, cl_mem output, int epilogue,
                                       prepared_weights *prepared) {
    const int outputs = as_forward->out_channels, reduced = as_forward->in_channels;
    const int padded = pointwise_padded_channels(outputs, config);
    cl_mem transposed = NULL;
    clcnn_status status = prepared ? forward_filters(ctx, p, weight, padded, prepared, &transposed)
                                   : transpose_weights(ctx, transpose_kernel, p, weight, padded,
                                                       NULL, NULL, &transposed);
    char options[64];
    direct_config_options(config, options, sizeof(options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status =
            runtime_get_kernel_alone(ctx, "conv2d_direct", "conv2d_pointwise", options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int plane = p->in_height * p->in_width;
    cl_mem bias_arg = epilogue & EPILOGUE_BIAS ? bias : transposed;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},  {sizeof(cl_mem), &transposed}, {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output}, {sizeof(int), &reduced},       {sizeof(int), &outputs},
        {sizeof(int), &padded},    {sizeof(int), &plane},         {sizeof(int), &epilogue},
    };
    const int per_item = config->vw * config->nv;
    const size_t local[3] = {(size_t)config->group, 1, 1};
    const size_t global[3] = {(size_t)(padded / config->wpt_p),
                              (size_t)((plane + per_item - 1) / per_item), (size_t)p->batch};
    return runtime_launch(ctx, kernel, what, sizeof(args) / sizeof(args[0]), args, 3, global,
                          local);
}

clcnn_status conv2d_forward_pointwise(clcnn_context *ctx, const direct_config *config,
                                      const conv2d_params *p, cl_mem input, cl_mem weight,
                                      cl_mem bias, cl_mem output, prepared_weights *prepared) {
    return pointwise_products(ctx, config, p, p, "conv2d_transpose_for_forward", "conv2d_pointwise",
                              input, weight, bias, output, conv2d_forward_epilogue(p), prepared);
}

clcnn_status conv2d_backward_data_pointwise(clcnn_context *ctx, const direct_config *config,
                                            const conv2d_params *p, cl_mem grad_output,
                                            cl_mem weight, cl_mem grad_input, int accumulate) {
    const conv2d_params as_forward = conv2d_backward_data_as_forward(p);
    return pointwise_products(ctx, config, p, &as_forward, "conv2d_transpose_for_backward_data",
                              "conv2d_pointwise_backward_data", grad_output, weight, NULL,
                              grad_input, accumulate ? EPILOGUE_ACCUMULATE : 0, NULL);
}

/* ---- backward data ---------------------------------------------------------------------- */

/* The same with an explicit tile configuration (for the tests; host/ops.h). */
clcnn_status conv2d_backward_data_tiled(clcnn_context *ctx, const tile_config *config,
                                        const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                        cl_mem grad_input) {
    cl_kernel kernel;
    clcnn_status status =
        tiled_kernel(ctx, config, p, "conv2d backward data", "conv2d_backward_data", &kernel);
    if (status != CLCNN_OK)
        return status;
    const conv_variant v = variant_of(p);
    const int columns = p->batch * p->in_height * p->in_width;
    kernel_arg args[19] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), &grad_input},  {sizeof(int), &v.in_channels},
        {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
        {sizeof(int), &v.out_channels}, {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},    {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},    {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},    {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},   {sizeof(int), &columns},
    };
    const int arg_count = variant_args(&v, args, 16);
    const size_t local[3] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m), 1};
    const size_t global[3] = {(size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((v.in_channels + config->tile_m - 1) / config->tile_m) *
                                  local[1],
                              (size_t)v.groups};
    return runtime_launch(ctx, kernel, "conv2d_backward_data", arg_count, args, variant_dims(&v, 2),
                          global, local);
}

/* One dimension of a phase of a strided convolution's backward-data: the
 * input rows i = phase, phase + stride, ... (count of them) take the
 * filters' taps lowest_tap, lowest_tap + stride, ... (taps of them); in
 * reverse, first_tap, first_tap - stride, ..., they reach the gradient's
 * rows i / stride + t - pad for t = 0, 1, ...: a stride-1 forward over the
 * gradient with that padding. */
typedef struct phase_dim {
    int count, taps, lowest_tap, first_tap, pad;
} phase_dim;

static phase_dim phase_dim_of(int phase, int pad, int stride, int kernel, int size) {
    phase_dim d;
    d.lowest_tap = (phase + pad) % stride;
    d.count = phase < size ? (size - 1 - phase) / stride + 1 : 0;
    d.taps = d.lowest_tap < kernel ? (kernel - 1 - d.lowest_tap) / stride + 1 : 0;
    d.first_tap = d.lowest_tap + stride * (d.taps - 1);
    d.pad = d.taps - 1 - (phase + pad) / stride;
    return d;
}

/* Phase (a, b) of p's backward-data as a stride-1 forward, which writes
 * its rows.count x cols.count positions as an image of their own. */
static conv2d_params phase_as_forward(const conv2d_params *p, phase_dim rows, phase_dim cols) {
    conv2d_params b = conv2d_backward_data_as_forward(p);
    b.kernel_h = rows.taps;
    b.kernel_w = cols.taps;
    b.stride_h = b.stride_w = 1;
    b.pad_top = rows.pad;
    b.pad_left = cols.pad;
    b.out_height = rows.count;
    b.out_width = cols.count;
    return b;
}

/* Whether, along one dimension, every phase that any tap reaches is a
 * forward (its padding not negative: a padding past the filter can leave a
 * phase's first rows reached by no tap at all). */
static int phases_are_forwards(int pad, int stride, int kernel, int size) {
    for (int phase = 0; phase < stride; phase++) {
        const phase_dim d = phase_dim_of(phase, pad, stride, kernel, size);
        if (d.taps > 0 && d.pad < 0)
            return 0;
    }
    return 1;
}

static int backward_data_runs_phases(const conv2d_params *p) {
    return conv2d_dilation_h(p) == 1 && conv2d_dilation_w(p) == 1 &&
           phases_are_forwards(p->pad_top, p->stride_h, p->kernel_h, p->in_height) &&
           phases_are_forwards(p->pad_left, p->stride_w, p->kernel_w, p->in_width);
}

/* Along one dimension, the zero-padded copy of the gradient that all
 * phases read: the largest phase padding before it, and its size (as far
 * as the furthest phase reads). A phase with less padding starts
 * pad - its own padding further into it. */
typedef struct phase_copy {
    int pad, size;
} phase_copy;

static phase_copy phase_copy_of(int pad, int stride, int kernel, int size) {
    phase_copy c = {0, 0};
    for (int phase = 0; phase < stride; phase++) {
        const phase_dim d = phase_dim_of(phase, pad, stride, kernel, size);
        if (d.taps > 0 && d.count > 0 && d.pad > c.pad)
            c.pad = d.pad;
    }
    for (int phase = 0; phase < stride; phase++) {
        const phase_dim d = phase_dim_of(phase, pad, stride, kernel, size);
        const int end = c.pad - d.pad + d.count - 1 + d.taps;
        if (d.taps > 0 && d.count > 0 && end > c.size)
            c.size = end;
    }
    return c;
}

/* The zero-padded channels-last copy of the gradient that backward-data
 * made, for backward-weights to read instead of a transposition of its own:
 * position (n, oh, ow) at buffer + offset + ((n * rows + oh) * cols + ow) *
 * out_channels (kernels/conv2d_direct.cl, conv2d_backward_weights_direct). */
typedef struct gradient_copy {
    cl_mem buffer; /* NULL: none */
    int offset, rows, cols;
} gradient_copy;

/* Whether backward_data_phases runs p in one launch of
 * conv2d_backward_data_stride2 (kernels/conv2d_direct.cl) instead: a 3x3
 * convolution with stride 2 and padding 1 on each side. Against the four
 * phases and their interleave, backward-data of 16 -> 32 channels from
 * 28x28 took 1.69 ms instead of 2.75 at batch 128 and 0.88-0.94 instead of
 * 1.57 at batch 64; 32 -> 64 from 14x14 1.58 instead of 1.76 at batch 128,
 * 0.80-0.82 against 0.79 at 64 (Xeon, AVX-512, conv_time's fastest
 * calls). The others (no copy needed, or a planar one) keep the phases. */
static int backward_data_in_blocks(const conv2d_params *p) {
    return conv2d_is_plain(p) && p->kernel_h == 3 && p->kernel_w == 3 && p->stride_h == 2 &&
           p->stride_w == 2 && p->pad_top == 1 && p->pad_left == 1 &&
           p->out_height == (p->in_height + 1) / 2 && p->out_width == (p->in_width + 1) / 2;
}

/* The filters for conv2d_backward_data_stride2 into the workspace's start:
 * (padded / lanes, K, 9, lanes) (kernels/conv2d_direct.cl,
 * conv2d_transpose_for_stride2). */
static clcnn_status transpose_for_stride2(clcnn_context *ctx, int lanes, const conv2d_params *p,
                                          cl_mem weight, int padded, cl_mem workspace) {
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weight},      {sizeof(cl_mem), &workspace},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->out_channels},
        {sizeof(int), &padded},         {sizeof(int), &lanes},
    };
    const size_t rows = (size_t)(padded / lanes) * p->out_channels * 9;
    const size_t local[1] = {16}, global[1] = {(rows + 15) / 16 * 16};
    return runtime_run(ctx, "conv2d_direct", "conv2d_transpose_for_stride2", "",
                       "conv2d_transpose_for_stride2", 6, args, 1, global, local);
}

/* conv2d_backward_data_stride2 over the gradient's channels-last copy
 * (copy_h x copy_w at workspace + copy_offset), the filters' transposition
 * at the workspace's start. Blocks of 4 where 32 vector registers hold their
 * 16 accumulators and the 9 taps' vectors, of 2 where 16 do. */
static clcnn_status backward_data_blocks(clcnn_context *ctx, const direct_config *config,
                                         const conv2d_params *p, cl_mem workspace, int copy_offset,
                                         int copy_h, int copy_w, int padded, cl_mem grad_input,
                                         int accumulate) {
    const int blocks = vector_registers(ctx) >= 32 ? 4 : 2;
    char options[64];
    snprintf(options, sizeof(options), "-DVW=%d -DBLOCKS_2X2=%d", config->vw, blocks);
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel_alone(
        ctx, "conv2d_direct", "conv2d_backward_data_stride2", options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int runs = ((p->in_width + 1) / 2 + blocks - 1) / blocks;
    const int items = p->batch * ((p->in_height + 1) / 2) * runs;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &workspace},   {sizeof(int), &copy_offset},
        {sizeof(cl_mem), &workspace},   {sizeof(cl_mem), &grad_input},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width},    {sizeof(int), &p->out_channels},
        {sizeof(int), &padded},         {sizeof(int), &copy_h},
        {sizeof(int), &copy_w},         {sizeof(int), &items},
        {sizeof(int), &accumulate},
    };
    const size_t local[2] = {1, 8};
    const size_t global[2] = {(size_t)(padded / config->vw), (size_t)((items + 7) / 8 * 8)};
    return runtime_launch(ctx, kernel, "conv2d_backward_data_stride2",
                          sizeof(args) / sizeof(args[0]), args, 2, global, local);
}

/* Backward-data as the forwards of its phases (backward_data_runs_phases):
 * each computes the gradient at the input positions of one residue (a, b)
 * modulo the stride from the taps that reach them, reading a zero-padded
 * copy of the gradient (one for all phases) and storing vectors, where the
 * backward-data kernel tests every tap of every position and stores lane
 * by lane. A stride-1 convolution is its only phase and writes grad_input
 * directly; otherwise the phases go to a scratch buffer and
 * conv2d_backward_data_interleave weaves them into grad_input (with accumulate:
 * either adds to what grad_input holds). With `shared`
 * not NULL, a channels-last copy that holds every position of the gradient
 * is described there (otherwise its buffer is left NULL). */
static clcnn_status backward_data_phases(clcnn_context *ctx, const direct_config *config,
                                         const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                         cl_mem grad_input, int accumulate, gradient_copy *shared) {
    const conv_variant v = variant_of(p);
    const phase_copy copy_h = phase_copy_of(p->pad_top, p->stride_h, p->kernel_h, p->in_height);
    const phase_copy copy_w = phase_copy_of(p->pad_left, p->stride_w, p->kernel_w, p->in_width);
    /* The phase with the most taps: its program makes the copy, and decides
     * its layout as the forward does (forward_direct). */
    const phase_dim most_h = phase_dim_of(0, 0, p->stride_h, p->kernel_h, p->in_height);
    const phase_dim most_w = phase_dim_of(0, 0, p->stride_w, p->kernel_w, p->in_width);
    conv2d_params copied = phase_as_forward(p, most_h, most_w);
    copied.pad_top = copy_h.pad;
    copied.pad_left = copy_w.pad;
    const conv_variant copied_v = variant_of(&copied);
    /* A copy read in channel blocks is planar. The phases take their
     * positions along rows where they can (row_positions_config). */
    const int blocked = conv2d_is_plain(p) && forward_channel_block(ctx, &copied, &copied_v);
    const int needed = copy_h.pad > 0 || copy_w.pad > 0 || copy_h.size > p->out_height ||
                       copy_w.size > p->out_width;
    direct_config rows_config;
    const int rows_possible =
        row_positions_config(ctx, config, &copied, blocked || !needed, &rows_config);
    if (rows_possible)
        config = &rows_config;
    const int padded = conv2d_direct_padded_channels(v.in_channels, config);
    /* In blocks, the copy is channels-last and the filters' transposition holds all 9 taps. */
    const int in_blocks = backward_data_in_blocks(p) && needed && !blocked;
    const int64_t weights_end = round_up_64((int64_t)(in_blocks ? 9 : most_h.taps * most_w.taps) *
                                            v.out_channels * padded * v.groups);
    const int64_t copy_end =
        weights_end + (int64_t)p->batch * p->out_channels * copy_h.size * copy_w.size;
    /* Past int offsets each phase reads the gradient itself, testing its taps. */
    const int copy = needed && copy_end <= INT_MAX;
    const int channels_last = copy && conv2d_is_plain(p) && !blocked;
    cl_mem workspace;
    clcnn_status status =
        runtime_workspace(ctx, sizeof(float) * (size_t)(copy ? copy_end : weights_end), &workspace);
    if (status == CLCNN_OK && copy)
        status = copy_padded(ctx, &copied, channels_last, 1, grad_output, workspace,
                             (int)weights_end, copy_h.size, copy_w.size);
    if (shared && channels_last && copy_h.size >= copy_h.pad + p->out_height &&
        copy_w.size >= copy_w.pad + p->out_width)
        *shared = (gradient_copy){
            workspace, (int)weights_end + (copy_h.pad * copy_w.size + copy_w.pad) * p->out_channels,
            copy_h.size, copy_w.size};
    if (status == CLCNN_OK && in_blocks && copy) {
        status = transpose_for_stride2(ctx, config->vw, p, weight, padded, workspace);
        return status != CLCNN_OK
                   ? status
                   : backward_data_blocks(ctx, config, p, workspace, (int)weights_end, copy_h.size,
                                          copy_w.size, padded, grad_input, accumulate);
    }
    const int woven = p->stride_h > 1 || p->stride_w > 1;
    const int64_t floats = (int64_t)p->batch * p->in_channels * p->in_height * p->in_width;
    cl_mem phases = grad_input;
    if (status == CLCNN_OK && woven)
        status = runtime_scratch(ctx, SCRATCH_PHASES, sizeof(float) * (size_t)floats, &phases);
    int offset = 0;
    for (int a = 0; a < p->stride_h && status == CLCNN_OK; a++) {
        const phase_dim rows = phase_dim_of(a, p->pad_top, p->stride_h, p->kernel_h, p->in_height);
        for (int b = 0; b < p->stride_w && status == CLCNN_OK; b++) {
            const phase_dim cols =
                phase_dim_of(b, p->pad_left, p->stride_w, p->kernel_w, p->in_width);
            const int phase_floats = p->batch * p->in_channels * rows.count * cols.count;
            if (rows.taps == 0 || cols.taps == 0 || phase_floats == 0) {
                offset += phase_floats;
                continue;
            }
            const conv2d_params forward = phase_as_forward(p, rows, cols);
            const tap_walk taps = {rows.taps,      cols.taps,    rows.first_tap,
                                   cols.first_tap, -p->stride_h, -p->stride_w};
            status = transpose_weights(ctx, "conv2d_transpose_for_backward_data", p, weight, padded,
                                       &taps, NULL, &workspace);
            const int shift = ((copy_h.pad - rows.pad) * copy_w.size + copy_w.pad - cols.pad) *
                              (channels_last ? p->out_channels : 1);
            const direct_forward_operands o = {.input = copy ? workspace : grad_output,
                                               .input_offset = copy ? (int)weights_end + shift : 0,
                                               .transposed = workspace,
                                               .output = phases,
                                               .output_offset = offset,
                                               .padded_input = copy,
                                               .padded_h = copy_h.size,
                                               .padded_w = copy_w.size,
                                               .channels_last = channels_last,
                                               .row_positions =
                                                   rows_possible && (copy || !needed) &&
                                                   forward.out_width % config->wpt_p == 0,
                                               .accumulate = accumulate && !woven};
            if (status == CLCNN_OK)
                status = conv2d_forward_direct_launch(ctx, config, &forward, &o);
            offset += phase_floats;
        }
    }
    if (status != CLCNN_OK || !woven)
        return status;
    const int planes = p->batch * p->in_channels;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &phases},    {sizeof(cl_mem), &grad_input}, {sizeof(int), &planes},
        {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width},   {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},  {sizeof(int), &p->stride_h},   {sizeof(int), &p->stride_w},
        {sizeof(int), &p->pad_top},   {sizeof(int), &p->pad_left},   {sizeof(int), &accumulate},
    };
    const size_t local[1] = {64};
    const size_t global[1] = {(size_t)((planes + 63) / 64 * 64)};
    return runtime_run(ctx, "conv2d_direct", "conv2d_backward_data_interleave", "",
                       "conv2d_backward_data_interleave", sizeof(args) / sizeof(args[0]), args, 1,
                       global, local);
}

clcnn_status conv2d_backward_data_direct(clcnn_context *ctx, const direct_config *config,
                                         const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                         cl_mem grad_input) {
    if (backward_data_runs_phases(p))
        return backward_data_phases(ctx, config, p, grad_output, weight, grad_input, 0, NULL);
    const conv_variant v = variant_of(p);
    const int padded = conv2d_direct_padded_channels(v.in_channels, config);
    cl_mem transposed;
    clcnn_status status = transpose_weights(ctx, "conv2d_transpose_for_backward_data", p, weight,
                                            padded, NULL, NULL, &transposed);
    char options[128];
    direct_config_options(config, options, sizeof(options));
    variant_options(&v, options, sizeof(options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel_alone(ctx, "conv2d_direct", "conv2d_backward_data_direct",
                                          options, &kernel);
    /* A strided convolution without dilation runs once per phase (the
     * kernel's comment); any other once, over every position and tap. */
    const int phased = conv2d_dilation_h(p) == 1 && conv2d_dilation_w(p) == 1;
    const int steps[2] = {phased ? p->stride_h : 1, phased ? p->stride_w : 1};
    for (int a = 0; a < steps[0] && status == CLCNN_OK; a++)
        for (int b = 0; b < steps[1] && status == CLCNN_OK; b++) {
            int row0 = 0, col0 = 0, rows = p->in_height, cols = p->in_width, r0 = 0, s0 = 0;
            if (phased) {
                const phase_dim h =
                    phase_dim_of(a, p->pad_top, p->stride_h, p->kernel_h, p->in_height);
                const phase_dim w =
                    phase_dim_of(b, p->pad_left, p->stride_w, p->kernel_w, p->in_width);
                row0 = a;
                col0 = b;
                rows = h.count;
                cols = w.count;
                r0 = h.lowest_tap;
                s0 = w.lowest_tap;
            }
            const int positions = p->batch * rows * cols;
            if (positions == 0)
                continue;
            kernel_arg args[28] = {
                {sizeof(cl_mem), &grad_output},
                {sizeof(cl_mem), &transposed},
                {sizeof(cl_mem), &grad_input},
                {sizeof(int), &v.in_channels},
                {sizeof(int), &p->in_height},
                {sizeof(int), &p->in_width},
                {sizeof(int), &v.out_channels},
                {sizeof(int), &p->kernel_h},
                {sizeof(int), &p->kernel_w},
                {sizeof(int), &p->stride_h},
                {sizeof(int), &p->stride_w},
                {sizeof(int), &p->pad_top},
                {sizeof(int), &p->pad_left},
                {sizeof(int), &p->out_height},
                {sizeof(int), &p->out_width},
                {sizeof(int), &positions},
                {sizeof(int), &padded},
                {sizeof(int), &row0},
                {sizeof(int), &col0},
                {sizeof(int), &rows},
                {sizeof(int), &cols},
                {sizeof(int), &steps[0]},
                {sizeof(int), &steps[1]},
                {sizeof(int), &r0},
                {sizeof(int), &s0},
            };
            const int arg_count = variant_args(&v, args, 25);
            const size_t local[3] = {1, (size_t)config->group, 1};
            const size_t global[3] = {(size_t)(padded / (config->vw * config->nv)),
                                      (size_t)((positions + config->wpt_p - 1) / config->wpt_p),
                                      (size_t)v.groups};
            status = runtime_launch(ctx, kernel, "conv2d_backward_data_direct", arg_count, args,
                                    variant_dims(&v, 2), global, local);
        }
    return status;
}

/* shared: see backward_data_phases. accumulate (the gradient added to what
 * grad_input holds) only where conv2d_backward_data_accumulates. */
static clcnn_status backward_data_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                          const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                          cl_mem grad_input, int accumulate,
                                          gradient_copy *shared) {
    clcnn_status status = check_int_sizes(ctx, p);
    if (status != CLCNN_OK)
        return status;
    const conv_step *step = &plan->backward_data;
    if (accumulate && !conv2d_backward_data_accumulates(plan, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d: this plan's backward-data cannot add to its output");
    switch (step->kernels) {
    case CONV_DEPTHWISE:
        return conv2d_backward_data_depthwise(ctx, p, grad_output, weight, grad_input);
    case CONV_WINOGRAD:
    case CONV_WINOGRAD_FUSED:
    case CONV_WINOGRAD_PAIRS:
    case CONV_WINOGRAD4:
        return conv2d_backward_data_winograd(ctx, step, p, grad_output, weight, grad_input,
                                             accumulate);
    case CONV_POINTWISE:
        return conv2d_backward_data_pointwise(ctx, &step->config, p, grad_output, weight,
                                              grad_input, accumulate);
    case CONV_ROWS:
        return conv2d_backward_data_rows(ctx, p, grad_output, weight, grad_input);
    case CONV_DIRECT:
        /* The phases, which can add to grad_input, wherever they run. */
        if (backward_data_runs_phases(p))
            return backward_data_phases(ctx, &step->config, p, grad_output, weight, grad_input,
                                        accumulate, shared);
        return conv2d_backward_data_direct(ctx, &step->config, p, grad_output, weight, grad_input);
    case CONV_TILED:
        break;
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_backward_data_tiled(ctx, &config, p, grad_output, weight, grad_input);
}

int conv2d_backward_data_accumulates(const conv2d_plan *plan, const conv2d_params *p) {
    const conv_kernels kernels = plan->backward_data.kernels;
    return kernels == CONV_POINTWISE || conv2d_kernels_are_winograd(kernels) ||
           (kernels == CONV_DIRECT && backward_data_runs_phases(p));
}

clcnn_status conv2d_backward_data_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                          const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                          cl_mem grad_input) {
    return backward_data_planned(ctx, plan, p, grad_output, weight, grad_input, 0, NULL);
}

clcnn_status conv2d_backward_data(clcnn_context *ctx, const conv2d_params *p, cl_mem grad_output,
                                  cl_mem weight, cl_mem grad_input) {
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    return conv2d_backward_data_planned(ctx, &plan, p, grad_output, weight, grad_input);
}

/* ---- backward weights ------------------------------------------------------------------- */

/* The reduction over batch and output pixels is cut into slices that run as
 * separate work-groups. A slice gets at least this many terms: short enough
 * that a work-item's float sum stays accurate (and a GPU gets work-groups
 * enough), long enough that the partial tiles and the second pass stay small
 * next to the GEMM itself... */
enum { MIN_STEPS_PER_SLICE = 512 };
/* ...there are at most MAX_SLICES (host/ops.h)... */
/* ...and the partial sums of a very large filter bank stay within 64 MiB,
 * since such a layer has work-groups enough without many slices. */
static const int64_t max_scratch_floats = (int64_t)1 << 24;

/* (K, C / groups, R, S) */
static int64_t weight_count(const conv2d_params *p) {
    return (int64_t)p->out_channels * (p->in_channels / conv2d_groups(p)) * p->kernel_h *
           p->kernel_w;
}

/* The number of reduction slices: a function of the shape only, not of the
 * tile configuration, so the scratch size does not change with CLCNN_TILES. */
int conv2d_backward_weights_slices(const conv2d_params *p) {
    const int64_t steps = (int64_t)p->batch * p->out_height * p->out_width;
    int64_t slices = steps / MIN_STEPS_PER_SLICE;
    if (slices > MAX_SLICES)
        slices = MAX_SLICES;
    const int64_t weights = weight_count(p);
    if (weights > 0 && slices * weights > max_scratch_floats)
        slices = max_scratch_floats / weights;
    if (slices < 1)
        slices = 1;
    return (int)slices;
}

static size_t backward_weights_tiled_scratch_bytes(const conv2d_params *p) {
    /* With a single slice the GEMM writes grad_weight directly and the scratch
     * is unused; it is still at least one float so that it can be allocated. */
    const int64_t floats = conv2d_backward_weights_slices(p) * weight_count(p);
    return (size_t)(floats > 0 ? floats : 1) * sizeof(float);
}

/* grad_weight[i] = the sum over the slices of partial[slice * count + i]
 * (conv2d_sum_slices). */
static clcnn_status sum_slices(clcnn_context *ctx, cl_mem partial, cl_mem grad_weight, int count,
                               int slices) {
    const kernel_arg sum_args[] = {
        {sizeof(cl_mem), &partial},
        {sizeof(cl_mem), &grad_weight},
        {sizeof(int), &count},
        {sizeof(int), &slices},
    };
    size_t sum_local[1] = {64};
    if (ctx->max_work_group_size && sum_local[0] > ctx->max_work_group_size)
        sum_local[0] = ctx->max_work_group_size;
    const size_t sum_global[1] = {(size_t)count};
    return runtime_run(ctx, "conv2d", "conv2d_sum_slices", "", "conv2d_sum_slices",
                       sizeof(sum_args) / sizeof(sum_args[0]), sum_args, 1, sum_global, sum_local);
}

/* The same with an explicit tile configuration (for the tests; host/ops.h). */
clcnn_status conv2d_backward_weights_tiled(clcnn_context *ctx, const tile_config *config,
                                           const conv2d_params *p, cl_mem input, cl_mem grad_output,
                                           cl_mem grad_weight, cl_mem grad_bias, cl_mem scratch) {
    const int slices = conv2d_backward_weights_slices(p);
    cl_kernel kernel;
    clcnn_status status =
        tiled_kernel(ctx, config, p, "conv2d backward weights", "conv2d_backward_weights", &kernel);
    if (status != CLCNN_OK)
        return status;
    if (slices > 1 && !scratch)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: no scratch buffer for %d slices", slices);
    const conv_variant v = variant_of(p);

    const int steps = p->batch * p->out_height * p->out_width;
    const int slice_length = (steps + slices - 1) / slices;
    const int columns = v.in_channels * p->kernel_h * p->kernel_w;
    cl_mem partial = slices > 1 ? scratch : grad_weight;
    kernel_arg args[20] = {
        {sizeof(cl_mem), &input},       {sizeof(cl_mem), &grad_output},
        {sizeof(cl_mem), &partial},     {sizeof(int), &v.in_channels},
        {sizeof(int), &p->in_height},   {sizeof(int), &p->in_width},
        {sizeof(int), &v.out_channels}, {sizeof(int), &p->kernel_h},
        {sizeof(int), &p->kernel_w},    {sizeof(int), &p->stride_h},
        {sizeof(int), &p->stride_w},    {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},    {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},   {sizeof(int), &steps},
        {sizeof(int), &slice_length},
    };
    const int arg_count = variant_args(&v, args, 17);
    /* A grouped convolution's third dimension runs over groups x slices. */
    const size_t local[3] = {(size_t)(config->tile_n / config->wpt_n),
                             (size_t)(config->tile_m / config->wpt_m), 1};
    const size_t global[3] = {(size_t)((columns + config->tile_n - 1) / config->tile_n) * local[0],
                              (size_t)((v.out_channels + config->tile_m - 1) / config->tile_m) *
                                  local[1],
                              (size_t)slices * v.groups};
    status =
        runtime_launch(ctx, kernel, "conv2d_backward_weights", arg_count, args, 3, global, local);
    if (status != CLCNN_OK)
        return status;

    if (slices > 1) {
        status = sum_slices(ctx, scratch, grad_weight, (int)weight_count(p), slices);
        if (status != CLCNN_OK)
            return status;
    }

    if (p->has_bias)
        return reduce_channels(ctx, p->batch, p->out_channels, p->out_height * p->out_width,
                               grad_output, grad_bias);
    return CLCNN_OK;
}

/* ---- backward weights, register-blocked (CPU devices) ---------------------------------------
 *
 * kernels/conv2d_direct.cl: conv2d_transpose_grad_output copies grad_output
 * to (positions, K_padded) in the scratch buffer and sums the bias gradient;
 * conv2d_pad_input copies the input with its zero padding made explicit;
 * conv2d_backward_weights_direct accumulates wpt_p taps x vw*nv output
 * channels per work-item over one slice of the positions (the same slices as
 * the tiled path); conv2d_sum_direct_slices adds the slices. */

/* Output channels (of one group) are the vectorised ones. */
static direct_config backward_weights_direct_config(const clcnn_context *ctx,
                                                    const conv2d_params *p) {
    return direct_config_for_conv(ctx, "backward_weights", p, p->out_channels / conv2d_groups(p));
}

/* The scratch buffer, in floats: from 0, with more than one slice, each
 * slice's partial sums (K x C/groups*R*S weights, then K bias); then from
 * `gradient` grad_output transposed to (positions, K_padded) (grouped:
 * (positions, groups, K_padded) with K_padded one group's); then from
 * `padded` the input zero-padded to (N, C, Hp, Wp); `end` floats in all. */
typedef struct direct_weights_scratch {
    int64_t slice_floats;
    int64_t gradient;
    int64_t padded;
    int64_t end;
} direct_weights_scratch;

static direct_weights_scratch direct_weights_layout(const direct_config *config,
                                                    const conv2d_params *p) {
    direct_weights_scratch layout;
    const int slices = conv2d_backward_weights_slices(p);
    const int64_t positions = (int64_t)p->batch * p->out_height * p->out_width;
    layout.slice_floats = weight_count(p) + p->out_channels;
    layout.gradient = round_up_64(slices > 1 ? slices * layout.slice_floats : 0);
    const conv_variant v = variant_of(p);
    layout.padded =
        round_up_64(layout.gradient +
                    positions * v.groups * conv2d_direct_padded_channels(v.out_channels, config));
    layout.end = layout.padded;
    if (!windows_inside_input(p))
        layout.end += (int64_t)p->batch * p->in_channels * padded_height(p) * padded_width(p);
    return layout;
}

size_t conv2d_backward_weights_direct_scratch_bytes(const direct_config *config,
                                                    const conv2d_params *p) {
    return (size_t)direct_weights_layout(config, p).end * sizeof(float);
}

/* grad_output transposed channels-last as the register-blocked
 * backward-weights reads it, where stores: (positions, groups x padded) at
 * dest + dest_offset, zeros past each group's output channels (padded: a
 * multiple of config's vw, at least a group's output channels); with a
 * bias, the sums of each of `slices` runs of the positions at bias_out +
 * bias_offset + slice * bias_stride. */
static clcnn_status transpose_gradient(clcnn_context *ctx, const direct_config *config,
                                       const conv2d_params *p, cl_mem grad_output, int stores,
                                       cl_mem dest, int dest_offset, int padded, cl_mem bias_out,
                                       int bias_offset, int bias_stride, int slices) {
    const conv_variant v = variant_of(p);
    char options[64];
    snprintf(options, sizeof(options), "-DVW=%d", config->vw);
    variant_options(&v, options, sizeof(options));
    const int out_pixels = p->out_height * p->out_width;
    const int positions = p->batch * out_pixels;
    const int slice_length = (positions + slices - 1) / slices;
    kernel_arg args[14] = {
        {sizeof(cl_mem), &grad_output}, {sizeof(cl_mem), &dest},        {sizeof(int), &dest_offset},
        {sizeof(int), &stores},         {sizeof(cl_mem), &bias_out},    {sizeof(int), &bias_offset},
        {sizeof(int), &p->has_bias},    {sizeof(int), &v.out_channels}, {sizeof(int), &out_pixels},
        {sizeof(int), &positions},      {sizeof(int), &slice_length},   {sizeof(int), &bias_stride},
        {sizeof(int), &padded},
    };
    /* Of the general variant's arguments, the transposition takes the groups. */
    const int arg_count = variant_general(&v) ? 14 : 13;
    if (variant_general(&v))
        args[13] = (kernel_arg){sizeof(int), &v.groups};
    const size_t local[3] = {1, 1, 1};
    const size_t global[3] = {(size_t)(padded / config->vw), (size_t)slices, (size_t)v.groups};
    /* Profiled under a name of its own when it only sums. */
    return runtime_run(ctx, "conv2d_direct", "conv2d_transpose_grad_output", options,
                       stores ? "conv2d_transpose_grad_output" : "conv2d_bias_sums_grad_output",
                       arg_count, args, variant_dims(&v, 2), global, local);
}

/* kept_input, when not NULL, holds the input zero-padded as the forward
 * kept it (conv2d_kept_input_floats): no copy is made. shared, when not
 * NULL, is backward-data's copy of the gradient, read in place of a
 * transposition (only with out_channels a multiple of the configuration's
 * VW*NV, so that the vector loads stay within a position's channels); with
 * a bias the transposition still runs for its sums, storing nothing, so
 * that the bias gradient's floats do not depend on whether the copy was
 * shared (a choice the configuration makes). */
static clcnn_status backward_weights_direct(clcnn_context *ctx, const direct_config *config,
                                            const conv2d_params *p, cl_mem input,
                                            cl_mem grad_output, cl_mem grad_weight,
                                            cl_mem grad_bias, cl_mem scratch, cl_mem kept_input,
                                            padded_plane kept_plane, const gradient_copy *shared) {
    const int vw = config->vw;
    if (!(vw == 1 || vw == 2 || vw == 4 || vw == 8 || vw == 16) || config->nv < 1 ||
        config->wpt_p < 1 || config->group < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: invalid configuration vw %d nv %d wpt %d "
                         "group %d",
                         vw, config->nv, config->wpt_p, config->group);
    const size_t needed = conv2d_backward_weights_direct_scratch_bytes(config, p);
    size_t scratch_bytes = 0;
    if (scratch && clGetMemObjectInfo(scratch, CL_MEM_SIZE, sizeof(scratch_bytes), &scratch_bytes,
                                      NULL) != CL_SUCCESS)
        scratch_bytes = 0;
    if (scratch_bytes < needed)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: the scratch buffer has %zu bytes, %zu needed",
                         scratch_bytes, needed);
    const conv_variant v = variant_of(p);
    char weights_options[192];
    direct_config_options(config, weights_options, sizeof(weights_options));
    variant_options(&v, weights_options, sizeof(weights_options));
    /* Work-items of whole channels' taps (kernels/conv2d_direct.cl, TAP_ROWS). */
    const int window = p->kernel_h * p->kernel_w;
    if (conv2d_is_plain(p) && window > 1 && config->wpt_p % window == 0) {
        const size_t used = strlen(weights_options);
        snprintf(weights_options + used, sizeof(weights_options) - used,
                 " -DTAP_ROWS=%d -DTAP_COLS=%d", p->kernel_h, p->kernel_w);
    }
    cl_kernel kernel;
    clcnn_status status = runtime_get_kernel_alone(
        ctx, "conv2d_direct", "conv2d_backward_weights_direct", weights_options, &kernel);
    if (status != CLCNN_OK)
        return status;

    const direct_weights_scratch layout = direct_weights_layout(config, p);
    /* Every offset below is at most the layout's end. */
    status = require_int_size(ctx, "conv2d backward weights: the scratch buffer", layout.end);
    if (status != CLCNN_OK)
        return status;
    const int slices = conv2d_backward_weights_slices(p);
    const int positions = p->batch * p->out_height * p->out_width;
    const int slice_length = (positions + slices - 1) / slices;
    const int slice_stride = (int)layout.slice_floats;
    const int padded = conv2d_direct_padded_channels(v.out_channels, config);
    const int gradient_offset = (int)layout.gradient;
    /* The input as the kernel reads it: a zero-padded copy, or the input itself. */
    const int read_input = windows_inside_input(p);
    const int kept = !read_input && kept_input;
    cl_mem windows = read_input ? input : kept ? kept_input : scratch;
    const int windows_offset = read_input || kept ? 0 : (int)layout.padded;
    const int windows_h = read_input ? p->in_height : kept ? kept_plane.height : padded_height(p);
    const int windows_w = read_input ? p->in_width : kept ? kept_plane.width : padded_width(p);
    const int weights = (int)weight_count(p);
    /* One slice: the kernels write the gradients themselves. */
    cl_mem weight_out = slices > 1 ? scratch : grad_weight;
    cl_mem bias_out = slices > 1 || !p->has_bias ? scratch : grad_bias;
    const int bias_offset = slices > 1 ? weights : 0;

    if (!shared || p->has_bias)
        status = transpose_gradient(ctx, config, p, grad_output, !shared, scratch, gradient_offset,
                                    padded, bias_out, bias_offset, slice_stride, slices);
    if (status != CLCNN_OK)
        return status;

    if (!read_input && !kept) {
        status = pad_input(ctx, "conv2d_pad_input", p, input, scratch, windows_offset, windows_h,
                           windows_w);
        if (status != CLCNN_OK)
            return status;
    }

    const int taps = v.in_channels * p->kernel_h * p->kernel_w;
    cl_mem gradient = shared ? shared->buffer : scratch;
    const int gradient_at = shared ? shared->offset : gradient_offset;
    const int gradient_rows = shared ? shared->rows : p->out_height;
    const int gradient_cols = shared ? shared->cols : p->out_width;
    const int gradient_pixel = shared ? p->out_channels : padded * v.groups;
    /* Slices' partial sums go tap by tap to conv2d_sum_direct_slices. */
    const int tap_major = slices > 1;
    kernel_arg args[27] = {
        {sizeof(cl_mem), &windows},     {sizeof(int), &windows_offset},
        {sizeof(cl_mem), &gradient},    {sizeof(int), &gradient_at},
        {sizeof(cl_mem), &weight_out},  {sizeof(int), &slice_stride},
        {sizeof(int), &v.in_channels},  {sizeof(int), &windows_h},
        {sizeof(int), &windows_w},      {sizeof(int), &v.out_channels},
        {sizeof(int), &p->kernel_h},    {sizeof(int), &p->kernel_w},
        {sizeof(int), &p->stride_h},    {sizeof(int), &p->stride_w},
        {sizeof(int), &p->out_height},  {sizeof(int), &p->out_width},
        {sizeof(int), &positions},      {sizeof(int), &slice_length},
        {sizeof(int), &positions},      {sizeof(int), &padded},
        {sizeof(int), &gradient_rows},  {sizeof(int), &gradient_cols},
        {sizeof(int), &gradient_pixel}, {sizeof(int), &tap_major},
    };
    const int arg_count = variant_args(&v, args, 24);
    /* Slices vary slowest, so the work-items of one slice run close together
     * and share its gradient rows and input in the caches (a grouped
     * convolution's third dimension runs over groups x slices). */
    const size_t local[3] = {1, (size_t)config->group, 1};
    const size_t global[3] = {(size_t)(padded / (config->vw * config->nv)),
                              (size_t)((taps + config->wpt_p - 1) / config->wpt_p),
                              (size_t)slices * v.groups};
    status = runtime_launch(ctx, kernel, "conv2d_backward_weights_direct", arg_count, args, 3,
                            global, local);
    if (status != CLCNN_OK || slices == 1)
        return status;

    cl_mem bias_arg = p->has_bias ? grad_bias : grad_weight;
    const kernel_arg sum_args[] = {
        {sizeof(cl_mem), &scratch}, {sizeof(cl_mem), &grad_weight},  {sizeof(cl_mem), &bias_arg},
        {sizeof(int), &weights},    {sizeof(int), &p->out_channels}, {sizeof(int), &p->has_bias},
        {sizeof(int), &slices},     {sizeof(int), &slice_stride},    {sizeof(int), &v.out_channels},
        {sizeof(int), &taps},
    };
    size_t sum_local[1] = {64};
    if (ctx->max_work_group_size && sum_local[0] > ctx->max_work_group_size)
        sum_local[0] = ctx->max_work_group_size;
    const size_t sum_global[1] = {(size_t)(weights / v.out_channels + (p->has_bias ? 1 : 0))};
    return runtime_run(ctx, "conv2d_direct", "conv2d_sum_direct_slices", "",
                       "conv2d_sum_direct_slices", sizeof(sum_args) / sizeof(sum_args[0]), sum_args,
                       1, sum_global, sum_local);
}

clcnn_status conv2d_backward_weights_direct(clcnn_context *ctx, const direct_config *config,
                                            const conv2d_params *p, cl_mem input,
                                            cl_mem grad_output, cl_mem grad_weight,
                                            cl_mem grad_bias, cl_mem scratch) {
    return backward_weights_direct(ctx, config, p, input, grad_output, grad_weight, grad_bias,
                                   scratch, NULL, (padded_plane){0, 0}, NULL);
}

/* ---- backward weights, depthwise ---------------------------------------------------------------
 * One work-item per weight and slice of the positions (the slices of the
 * tiled path, conv2d_backward_weights_slices), the slices added by the
 * tiled path's conv2d_sum_slices and the bias gradient by reduce_channels:
 * the tiled path's scratch layout and size. */
clcnn_status conv2d_backward_weights_depthwise(clcnn_context *ctx, const conv2d_params *p,
                                               cl_mem input, cl_mem grad_output, cl_mem grad_weight,
                                               cl_mem grad_bias, cl_mem scratch) {
    const int slices = conv2d_backward_weights_slices(p);
    if (slices > 1 && !scratch)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "conv2d backward weights: no scratch buffer for %d slices", slices);
    /* On CPU devices, filters of up to 3 x 3 at stride 1 along the rows run
     * a work-item per filter channel, all its taps at once. */
    const int per_channel =
        use_direct_kernels(ctx) && p->stride_w == 1 && p->kernel_h <= 3 && p->kernel_w <= 3;
    const char *name = per_channel ? "conv2d_depthwise_backward_weights_rows"
                                   : "conv2d_depthwise_backward_weights";
    cl_kernel kernel;
    clcnn_status status = depthwise_kernel(ctx, name, 0, p->out_width, &kernel);
    if (status != CLCNN_OK)
        return status;
    const depthwise_args a = depthwise_args_of(p);
    const int positions = p->batch * p->out_height * p->out_width;
    const int slice_length = (positions + slices - 1) / slices;
    const int count = (int)weight_count(p);
    const int items = per_channel ? count / (p->kernel_h * p->kernel_w) : count;
    const cl_mem buffers[] = {input, grad_output, slices > 1 ? scratch : grad_weight};
    kernel_arg args[24];
    int arg_count = depthwise_kernel_args(buffers, 3, &a, args);
    args[arg_count++] = (kernel_arg){sizeof(int), &positions};
    args[arg_count++] = (kernel_arg){sizeof(int), &slice_length};
    args[arg_count++] = (kernel_arg){sizeof(int), &count};
    const size_t local[2] = {per_channel ? 1 : 64, 1};
    const size_t global[2] = {(size_t)items, (size_t)slices};
    status = runtime_launch(ctx, kernel, name, arg_count, args, 2, global, local);
    if (status == CLCNN_OK && slices > 1)
        status = sum_slices(ctx, scratch, grad_weight, count, slices);
    if (status == CLCNN_OK && p->has_bias)
        status = reduce_channels(ctx, p->batch, p->out_channels, p->out_height * p->out_width,
                                 grad_output, grad_bias);
    return status;
}

int conv2d_winograd_possible(const clcnn_context *ctx, const char *operation,
                             const conv2d_params *p) {
    if (strcmp(operation, "forward") == 0)
        return conv2d_winograd_fits(ctx, p);
    /* It runs as_forward, which has p's kernel, stride, groups and dilation. */
    const conv2d_params as_forward = conv2d_backward_data_as_forward(p);
    /* A stride-1 convolution's backward-data is one forward, that of
     * as_forward: backward_data_phases' only phase. */
    if (strcmp(operation, "backward_weights") == 0)
        return conv2d_winograd_gradient_fits(ctx, p);
    return strcmp(operation, "backward_data") == 0 && p->stride_h == 1 && p->stride_w == 1 &&
           backward_data_runs_phases(p) && conv2d_winograd_fits(ctx, &as_forward);
}

/* Tuning's verdict on Winograd for an operation and shape sits in the
 * tuning table under its own key, as a configuration whose positions field
 * says chosen on the products' kernels (1), not chosen (2), chosen fused
 * (3), chosen fused in pairs (4) or chosen with 4x4 tiles (5) (3-5 with the
 * kernel's vector width, rows and output channels in the vector width,
 * vectors and group fields), so that the file keeps it in its format and a
 * later verdict replaces an earlier one. */
enum {
    WINOGRAD_CHOSEN = 1,
    WINOGRAD_NOT_CHOSEN = 2,
    WINOGRAD_FUSED_CHOSEN = 3,
    WINOGRAD_PAIRS_CHOSEN = 4,
    WINOGRAD4_CHOSEN = 5
};

static const char *winograd_key(const char *operation) {
    return strcmp(operation, "forward") == 0         ? "winograd_forward"
           : strcmp(operation, "backward_data") == 0 ? "winograd_backward_data"
                                                     : "winograd_backward_weights";
}

/* Whether the fused kernel (kernels CONV_WINOGRAD_FUSED or
 * CONV_WINOGRAD_PAIRS) or the 4x4 one (CONV_WINOGRAD4) can run operation of
 * p: forward and backward-data (as the forward of the flipped filters). */
static int fused_possible(const clcnn_context *ctx, const char *operation, const conv2d_params *p,
                          conv_kernels kernels) {
    if (strcmp(operation, "backward_weights") == 0)
        return 0;
    const conv2d_params forward =
        strcmp(operation, "forward") == 0 ? *p : conv2d_backward_data_as_forward(p);
    return kernels == CONV_WINOGRAD4 ? conv2d_winograd4_fits(ctx, &forward)
                                     : conv2d_winograd_fused_fits(ctx, &forward);
}

int conv2d_runs_winograd(const clcnn_context *ctx, const char *operation, const conv2d_params *p) {
    if (!ctx->config.winograd || !conv2d_winograd_possible(ctx, operation, p))
        return 0;
    if (ctx->config.winograd == 2 && fused_possible(ctx, operation, p, CONV_WINOGRAD_FUSED))
        return CONV_WINOGRAD_FUSED;
    if (ctx->config.winograd == 3 && fused_possible(ctx, operation, p, CONV_WINOGRAD4))
        return CONV_WINOGRAD4;
    if (ctx->config.winograd > 0)
        return CONV_WINOGRAD;
    /* CLCNN_DIRECT sets aside tuning's results: its verdicts too. */
    direct_config verdict;
    if (ctx->config.direct_forced || !tuning_lookup(ctx, winograd_key(operation), p, &verdict))
        return 0;
    const int fused = fused_possible(ctx, operation, p, CONV_WINOGRAD_FUSED);
    if (verdict.wpt_p == WINOGRAD_FUSED_CHOSEN && fused)
        return CONV_WINOGRAD_FUSED;
    if (verdict.wpt_p == WINOGRAD_PAIRS_CHOSEN && fused)
        return CONV_WINOGRAD_PAIRS;
    if (verdict.wpt_p == WINOGRAD4_CHOSEN && fused_possible(ctx, operation, p, CONV_WINOGRAD4))
        return CONV_WINOGRAD4;
    return verdict.wpt_p == WINOGRAD_CHOSEN ? CONV_WINOGRAD : 0;
}

clcnn_status conv2d_remember_winograd(clcnn_context *ctx, const char *operation,
                                      const conv2d_params *p, const conv_step *chosen) {
    direct_config verdict = {1, 1, WINOGRAD_NOT_CHOSEN, 1};
    if (chosen && chosen->kernels == CONV_WINOGRAD)
        verdict.wpt_p = WINOGRAD_CHOSEN;
    if (chosen && chosen->kernels != CONV_WINOGRAD)
        verdict = (direct_config){chosen->config.vw, chosen->config.nv,
                                  chosen->kernels == CONV_WINOGRAD_PAIRS ? WINOGRAD_PAIRS_CHOSEN
                                  : chosen->kernels == CONV_WINOGRAD4    ? WINOGRAD4_CHOSEN
                                                                         : WINOGRAD_FUSED_CHOSEN,
                                  chosen->config.wpt_p};
    return tuning_remember(ctx, winograd_key(operation), p, &verdict);
}

/* The step Winograd runs operation of p as: kernels (conv2d_runs_winograd's),
 * the products' configuration, or the fused or 4x4 kernel's step that tuning
 * chose (the first candidate where it chose none). */
static conv_step winograd_step(const clcnn_context *ctx, const char *operation,
                               const conv2d_params *p, int kernels) {
    const conv2d_params forward =
        strcmp(operation, "forward") == 0 ? *p : conv2d_backward_data_as_forward(p);
    conv_step step = {CONV_WINOGRAD, conv2d_winograd_products_config(ctx, &forward)};
    if (!conv2d_winograd_is_fused(kernels) && kernels != CONV_WINOGRAD4)
        return step;
    conv_step candidates[WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    direct_config verdict;
    const int count = kernels == CONV_WINOGRAD4 ? conv2d_winograd4_steps(ctx, candidates)
                                                : conv2d_winograd_fused_steps(ctx, candidates);
    const int tuned =
        ctx->config.winograd < 0 && tuning_lookup(ctx, winograd_key(operation), p, &verdict);
    step = candidates[0];
    /* The first that matches: files from before the third configuration
     * hold 1 for the vector width, and meant the first of the two. */
    for (int i = 0; tuned && i < count; i++)
        if (candidates[i].kernels == (conv_kernels)kernels &&
            (verdict.vw == 1 || verdict.vw == candidates[i].config.vw) &&
            verdict.nv == candidates[i].config.nv && verdict.group == candidates[i].config.wpt_p) {
            step = candidates[i];
            break;
        }
    return step;
}

/* Tuning's verdict on the pointwise kernel for an operation and shape, as
 * Winograd's: a configuration whose positions field says chosen (1) or not
 * (2). */
enum { POINTWISE_CHOSEN = 1, POINTWISE_NOT_CHOSEN = 2 };

static const char *pointwise_key(const char *operation) {
    return strcmp(operation, "forward") == 0 ? "pointwise_forward" : "pointwise_backward_data";
}

int conv2d_pointwise_possible(const char *operation, const conv2d_params *p) {
    return strcmp(operation, "backward_weights") != 0 && conv2d_pointwise_fits(p);
}

int conv2d_runs_pointwise(const clcnn_context *ctx, const char *operation, const conv2d_params *p) {
    if (!ctx->config.pointwise || !use_direct_kernels(ctx) ||
        !conv2d_pointwise_possible(operation, p))
        return 0;
    if (ctx->config.pointwise > 0)
        return 1;
    direct_config verdict;
    return !ctx->config.direct_forced &&
           tuning_lookup(ctx, pointwise_key(operation), p, &verdict) &&
           verdict.wpt_p == POINTWISE_CHOSEN;
}

int conv2d_pointwise_judged(const clcnn_context *ctx, const char *operation,
                            const conv2d_params *p) {
    return tuning_has(ctx, pointwise_key(operation), p);
}

clcnn_status conv2d_remember_pointwise(clcnn_context *ctx, const char *operation,
                                       const conv2d_params *p, int chosen) {
    const direct_config verdict = {1, 1, chosen ? POINTWISE_CHOSEN : POINTWISE_NOT_CHOSEN, 1};
    return tuning_remember(ctx, pointwise_key(operation), p, &verdict);
}

int conv2d_runs_direct(const clcnn_context *ctx, const char *operation, const conv2d_params *p) {
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    const conv_step *step = strcmp(operation, "forward") == 0         ? &plan.forward
                            : strcmp(operation, "backward_data") == 0 ? &plan.backward_data
                                                                      : &plan.backward_weights;
    return step->kernels == CONV_DIRECT;
}

/* ---- the plan: which kernels, with which configuration --------------------------------- */

/* Forward and backward-data choose alike; rows: the row kernel fits the
 * operation, channels: those the register-blocked kernels vectorise. */
static conv_step choose_step(const clcnn_context *ctx, const char *operation,
                             const conv2d_params *p, int channels, int rows) {
    conv_step step = {CONV_TILED, {0, 0, 0, 0}};
    const int winograd = conv2d_runs_winograd(ctx, operation, p);
    if (conv2d_runs_depthwise(p)) {
        step.kernels = CONV_DEPTHWISE;
    } else if (winograd) {
        step = winograd_step(ctx, operation, p, winograd);
    } else if (conv2d_runs_pointwise(ctx, operation, p)) {
        step = (conv_step){CONV_POINTWISE, conv2d_pointwise_config(ctx)};
    } else if (use_direct_kernels(ctx) && rows) {
        step.kernels = CONV_ROWS;
    } else if (use_direct_kernels(ctx)) {
        step.kernels = CONV_DIRECT;
        step.config = direct_config_for_conv(ctx, operation, p, channels);
    }
    return step;
}

conv2d_plan conv2d_plan_for(const clcnn_context *ctx, const conv2d_params *p) {
    const int groups = conv2d_groups(p);
    conv2d_plan plan;
    plan.forward = choose_step(ctx, "forward", p, p->out_channels / groups, use_row_kernel(p));
    plan.backward_data = choose_step(ctx, "backward_data", p, p->in_channels / groups,
                                     use_rows_for_backward_data(p));
    plan.backward_weights = (conv_step){CONV_TILED, {0, 0, 0, 0}};
    if (conv2d_runs_depthwise(p)) {
        plan.backward_weights.kernels = CONV_DEPTHWISE;
    } else if (conv2d_runs_winograd(ctx, "backward_weights", p)) {
        plan.backward_weights.kernels = CONV_WINOGRAD;
        plan.backward_weights.config = conv2d_winograd_gradient_config(ctx, p);
    } else if (use_direct_kernels(ctx)) {
        plan.backward_weights.kernels = CONV_DIRECT;
        plan.backward_weights.config = backward_weights_direct_config(ctx, p);
    }
    return plan;
}

/* ---- backward weights: the path for the device ------------------------------------------ */

size_t conv2d_backward_weights_scratch_bytes(const conv2d_plan *plan, const conv2d_params *p) {
    if (plan->backward_weights.kernels == CONV_DIRECT)
        return conv2d_backward_weights_direct_scratch_bytes(&plan->backward_weights.config, p);
    if (plan->backward_weights.kernels == CONV_WINOGRAD)
        return 0; /* it has scratch slots of its own */
    return backward_weights_tiled_scratch_bytes(p);
}

/* shared: see backward_weights_direct. */
static clcnn_status backward_weights_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                             const conv2d_params *p, cl_mem input,
                                             cl_mem grad_output, cl_mem grad_weight,
                                             cl_mem grad_bias, cl_mem scratch, cl_mem kept_input,
                                             const gradient_copy *shared) {
    clcnn_status status = check_int_sizes(ctx, p);
    if (status != CLCNN_OK)
        return status;
    if (plan->backward_weights.kernels == CONV_DEPTHWISE)
        return conv2d_backward_weights_depthwise(ctx, p, input, grad_output, grad_weight, grad_bias,
                                                 scratch);
    if (plan->backward_weights.kernels == CONV_WINOGRAD)
        return conv2d_backward_weights_winograd(ctx, &plan->backward_weights.config, p, input,
                                                grad_output, grad_weight, grad_bias);
    if (plan->backward_weights.kernels == CONV_DIRECT) {
        const padded_plane kept = kept_input_plane(plan, p);
        return backward_weights_direct(ctx, &plan->backward_weights.config, p, input, grad_output,
                                       grad_weight, grad_bias, scratch,
                                       kept_floats(kept, p) ? kept_input : NULL, kept, shared);
    }
    const tile_config config = tile_config_for(ctx, "conv2d");
    return conv2d_backward_weights_tiled(ctx, &config, p, input, grad_output, grad_weight,
                                         grad_bias, scratch);
}

clcnn_status conv2d_backward_weights_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                             const conv2d_params *p, cl_mem input,
                                             cl_mem grad_output, cl_mem grad_weight,
                                             cl_mem grad_bias, cl_mem scratch, cl_mem kept_input) {
    return backward_weights_planned(ctx, plan, p, input, grad_output, grad_weight, grad_bias,
                                    scratch, kept_input, NULL);
}

clcnn_status conv2d_backward_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                     const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                     cl_mem grad_input, int accumulate_data, cl_mem input,
                                     cl_mem grad_weight, cl_mem grad_bias, cl_mem scratch,
                                     cl_mem kept_input) {
    const direct_config *weights_config = &plan->backward_weights.config;
    const int share = grad_input && grad_weight && plan->backward_weights.kernels == CONV_DIRECT &&
                      p->out_channels % (weights_config->vw * weights_config->nv) == 0;
    gradient_copy shared = {NULL, 0, 0, 0};
    clcnn_status status = CLCNN_OK;
    if (grad_input)
        status = backward_data_planned(ctx, plan, p, grad_output, weight, grad_input,
                                       accumulate_data, share ? &shared : NULL);
    if (status != CLCNN_OK || !grad_weight)
        return status;
    return backward_weights_planned(ctx, plan, p, input, grad_output, grad_weight, grad_bias,
                                    scratch, kept_input, shared.buffer ? &shared : NULL);
}

clcnn_status conv2d_backward_weights(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                     cl_mem grad_output, cl_mem grad_weight, cl_mem grad_bias,
                                     cl_mem scratch) {
    const conv2d_plan plan = conv2d_plan_for(ctx, p);
    return conv2d_backward_weights_planned(ctx, &plan, p, input, grad_output, grad_weight,
                                           grad_bias, scratch, NULL);
}

/* ---- dispatch: the kernels on an OpenCL device, the reference loops otherwise ---- */

clcnn_status op_conv2d_forward(clcnn_context *ctx, const conv2d_plan *plan, const conv2d_params *p,
                               buf input, buf weight, buf bias, buf output, buf kept_input,
                               prepared_weights *prepared) {
    if (context_is_opencl(ctx))
        return conv2d_forward_planned(ctx, plan, p, input.mem, weight.mem, bias.mem, output.mem,
                                      kept_input.mem, prepared);
    conv2d_forward_ref(p, input.host, weight.host, bias.host, output.host);
    return CLCNN_OK;
}

clcnn_status op_conv2d_backward(clcnn_context *ctx, const conv2d_plan *plan, const conv2d_params *p,
                                buf grad_output, buf weight, buf grad_input, int accumulate,
                                buf input, buf grad_weight, buf grad_bias, buf scratch,
                                buf kept_input) {
    const int want_data = buf_present(ctx, grad_input),
              want_weights = buf_present(ctx, grad_weight);
    if (context_is_opencl(ctx))
        return conv2d_backward_planned(ctx, plan, p, grad_output.mem, weight.mem,
                                       want_data ? grad_input.mem : NULL, accumulate, input.mem,
                                       want_weights ? grad_weight.mem : NULL, grad_bias.mem,
                                       scratch.mem, kept_input.mem);
    if (want_data)
        conv2d_backward_data_into_ref(p, grad_output.host, weight.host, grad_input.host,
                                      accumulate);
    if (want_weights)
        conv2d_backward_weights_ref(p, input.host, grad_output.host, grad_weight.host,
                                    grad_bias.host);
    return CLCNN_OK;
}
