/* Winograd F(2x2, 3x3) convolution on the OpenCL device
 * (kernels/conv2d_winograd.cl says how): the filters' transform, the input's
 * padded copy and its tiles' transform, the 16 products, the products'
 * transform. Its twin on the host is the plain convolution,
 * conv2d_forward_ref. */
#include "ops.h"

#include <limits.h>
#include <stdio.h>

/* The floats from one of the 16 parts of a transformed tensor of count
 * floats to the next: count rounded up to whole cache lines, and one line
 * more where that is a multiple of 4 KiB, whose 16 streams (a transform
 * reads or writes all of them at once) would share one set of a CPU's L1
 * cache, more of them than it has ways. Parts 1 MiB apart (512 channels at
 * 7x7, batch 32) had made the tiles' and filters' transforms 2.5 and 1.4
 * times as slow, and Winograd slower than the direct kernels. */
static int64_t part_stride(int64_t count) {
    const int64_t lines = (count + 15) / 16 * 16;
    return lines % 1024 == 0 ? lines + 16 : lines;
}

/* The columns of a part's rows (one tile of one image each) and the floats
 * from a row to the next: whole blocks of a products work-item's columns,
 * an odd number of them, so that the rows a work-item reads one after the
 * other spread over a CPU's L1 sets. */
typedef struct winograd_shape {
    int tiles_h, tiles_w, columns, pitch;
    int tile_vw;             /* tiles a transform's work-item takes at a time: TILE_VW */
    int padded_out_channels; /* K rounded up to whole blocks of WPT_K */
    int filter_stride, tile_stride, product_stride;
    /* The input padded to (N, C, plane), where a copy is read (windows_source). */
    padded_plane plane;
    int64_t padded_floats;
} winograd_shape;

padded_plane conv2d_winograd_padded_plane(const conv2d_params *p) {
    return (padded_plane){2 * ((p->out_height + 1) / 2) + 2, 2 * ((p->out_width + 1) / 2) + 2};
}

/* A part's row for `columns` columns: whole blocks of a products
 * work-item's columns, an odd number of them. */
static int columns_pitch(int columns, const direct_config *config) {
    const int block = config->vw * config->nv;
    int blocks = (columns + block - 1) / block;
    blocks += blocks % 2 == 0;
    return blocks * block;
}

static winograd_shape winograd_shape_for(const conv2d_params *p, const direct_config *config) {
    winograd_shape w;
    w.tiles_h = (p->out_height + 1) / 2;
    w.tiles_w = (p->out_width + 1) / 2;
    w.columns = p->batch * w.tiles_h * w.tiles_w;
    w.tile_vw = w.tiles_w >= 8 ? 8 : w.tiles_w >= 4 ? 4 : w.tiles_w >= 2 ? 2 : 1;
    w.pitch = columns_pitch(w.columns, config);
    w.padded_out_channels = (p->out_channels + config->wpt_p - 1) / config->wpt_p * config->wpt_p;
    w.filter_stride = (int)part_stride((int64_t)p->in_channels * w.padded_out_channels);
    w.tile_stride = (int)part_stride((int64_t)p->in_channels * w.pitch);
    w.product_stride = (int)part_stride((int64_t)w.padded_out_channels * w.pitch);
    w.plane = conv2d_winograd_padded_plane(p);
    w.padded_floats = (int64_t)p->batch * p->in_channels * w.plane.height * w.plane.width;
    return w;
}

/* The floats a scratch buffer may hold: within the device's largest
 * allocation and int indices. */
static int64_t float_limit(const clcnn_context *ctx) {
    const cl_ulong floats = ctx->max_alloc_bytes / sizeof(float);
    return floats < INT_MAX ? (int64_t)floats : INT_MAX;
}

int conv2d_winograd_fits(const clcnn_context *ctx, const conv2d_params *p) {
    const int64_t limit = float_limit(ctx);
    if (!conv2d_is_plain(p) || p->kernel_h != 3 || p->kernel_w != 3 || p->stride_h != 1 ||
        p->stride_w != 1)
        return 0;
    /* The widest configuration's blocks: columns in blocks of up to 64 (an
     * odd number of them) and channels of up to 64, a few rows more between
     * parts (whole_rows_apart). */
    const int64_t columns =
        (int64_t)p->batch * ((p->out_height + 1) / 2) * ((p->out_width + 1) / 2) + 256;
    const int64_t channels =
        (int64_t)(p->in_channels > p->out_channels ? p->in_channels : p->out_channels) + 64;
    const int64_t padded =
        (int64_t)p->batch * p->in_channels * (p->out_height + 3) * (p->out_width + 3);
    return 16 * part_stride(channels * columns) <= limit &&
           16 * part_stride(channels * channels) <= limit && padded <= limit;
}

/* A products work-item walks a slice of a part's columns; its columns of W
 * (at most 1,024 x 64 channels, 256 KiB) stay in L2 while the work-items of
 * its group, each of other input channels, walk them too. Whole parts (up
 * to 25,088 columns at 64 channels 56x56, batch 32) had run at half the
 * speed or less: 128 channels 28x28, batch 32, 43 -> 13.6 ms a call (Xeon,
 * AVX-512); slices of 512 and 2,048 columns ran within 10 % of 1,024, each
 * way. */
enum { GRADIENT_SLICE_COLUMNS = 1024 };

static int gradient_part_slices(int columns) {
    return (columns + GRADIENT_SLICE_COLUMNS - 1) / GRADIENT_SLICE_COLUMNS;
}

int conv2d_winograd_gradient_fits(const clcnn_context *ctx, const conv2d_params *p) {
    if (!conv2d_winograd_fits(ctx, p))
        return 0;
    /* The slices' sums dU (the padded input, which the same slot holds
     * first, conv2d_winograd_fits checks). */
    const int columns = p->batch * ((p->out_height + 1) / 2) * ((p->out_width + 1) / 2);
    return 16 * gradient_part_slices(columns) *
               part_stride((int64_t)p->in_channels * p->out_channels) <=
           float_limit(ctx);
}

/* Whether 4x4 tiles (F(4x4), kernels/conv2d_winograd.cl) take fewer
 * products than 2x2 tiles over p's output planes: 36 a tile against 16,
 * over about a quarter of the tiles (square planes of 3, 4 and from 7 up;
 * at 5 and 6 the two tie). */
static int four_by_four_takes_fewer_products(const conv2d_params *p) {
    const int64_t tiles2 = (int64_t)((p->out_height + 1) / 2) * ((p->out_width + 1) / 2);
    const int64_t tiles4 = (int64_t)((p->out_height + 3) / 4) * ((p->out_width + 3) / 4);
    return 36 * tiles4 < 16 * tiles2;
}

/* The tiles of backward-weights through global memory: 4x4 where they take
 * fewer products (where the two tie, F(2x2)'s smaller rounding stays) and
 * their buffers fit, as conv2d_winograd_fits and
 * conv2d_winograd_gradient_fits check F(2x2)'s; else 2x2. At 64 channels
 * of 7x7, batch 128, the products took half the time and V and W 0.56 of
 * the floats (bench/RESULTS.md, stop 69). */
static int gradient_tile_size(const clcnn_context *ctx, const conv2d_params *p) {
    if (!four_by_four_takes_fewer_products(p))
        return 2;
    const int64_t tiles4 = (int64_t)((p->out_height + 3) / 4) * ((p->out_width + 3) / 4);
    const int64_t limit = float_limit(ctx), columns = p->batch * tiles4;
    const int64_t channels =
        (int64_t)(p->in_channels > p->out_channels ? p->in_channels : p->out_channels) + 64;
    const int64_t sums = 36 * (int64_t)gradient_part_slices((int)columns) *
                         part_stride((int64_t)p->in_channels * p->out_channels);
    return 36 * part_stride(channels * (columns + 256)) <= limit &&
                   36 * part_stride(channels * channels) <= limit && sums <= limit
               ? 4
               : 2;
}

/* Launches kernel `name`, profiled as `what`. */
static clcnn_status launch(clcnn_context *ctx, const char *options, const char *name,
                           const char *what, int arg_count, const kernel_arg *args, int dimensions,
                           const size_t *global, const size_t *local) {
    return runtime_run(ctx, "conv2d_winograd", name, options, what, arg_count, args, dimensions,
                       global, local);
}

static size_t round_up(int64_t items, size_t multiple) {
    return (size_t)((items + (int64_t)multiple - 1) / (int64_t)multiple) * multiple;
}

/* The products' parameters from the device: vectors as wide as it prefers
 * and as many accumulators as its vector registers hold (16 of AVX-512's
 * 32, 12 of AVX2's 16), in work-groups of 4 work-items that share a block
 * of columns, which stays in the cache while each multiplies it by its own
 * filters. */
direct_config conv2d_winograd_products_config(const clcnn_context *ctx, const conv2d_params *p) {
    (void)p;
    const cl_uint width = ctx->preferred_vector_width;
    const direct_config wide = {16, 4, 6, 4}, narrow = {width >= 8 ? 8 : 4, 2, 6, 4};
    return width >= 16 ? wide : narrow;
}

/* The buffer the kernels read the tiles' windows from, and its planes'
 * height, width and padding. */
typedef struct winograd_source {
    cl_mem buffer;
    int height, width, pad_top, pad_left;
} winograd_source;

/* The kernels read a padded copy (-DPADDED_COPY=1), which a direct
 * backward-weights keeps (kept, conv2d_kept_input_floats), or else the
 * input itself where they can: pad_left at most 1 and the last chunk's
 * columns at most one past the width (kernels/conv2d_winograd.cl,
 * load_window_row). */
static int reads_padded_copy(const conv2d_params *p, const winograd_shape *w, int kept) {
    return kept || p->pad_left > 1 || 2 * w->tiles_w - p->pad_left > p->in_width;
}

/* The -D options of the program for config and shape w, reading a padded
 * copy or not. */
static void winograd_options(const direct_config *config, const winograd_shape *w, int padded_copy,
                             char *options, size_t size) {
    snprintf(options, size, "-DVW=%d -DNV=%d -DWPT_K=%d -DTILE_VW=%d -DPADDED_COPY=%d", config->vw,
             config->nv, config->wpt_p, w->tile_vw, padded_copy);
}

/* The input itself where padded is NULL (reads_padded_copy says when), else
 * its copy zero-padded to (N, C, w->plane) made into padded (the kept input
 * or a scratch of w->padded_floats). Without the copy the padding's zeros
 * are made as the windows are read, which saves a launch that read and
 * wrote the whole input: 16 channels at 28x28, batch 64, fused kernel and pad
 * 36.5-37.9 -> 33.2-34.4 ms over 34 calls, though the fused kernel alone
 * is 7-10 % slower for its edges (bench/RESULTS.md, stop 47). */
static clcnn_status windows_source(clcnn_context *ctx, const conv2d_params *p,
                                   const winograd_shape *w, cl_mem input, cl_mem padded,
                                   winograd_source *source) {
    if (!padded) {
        *source = (winograd_source){input, p->in_height, p->in_width, p->pad_top, p->pad_left};
        return CLCNN_OK;
    }
    *source = (winograd_source){padded, w->plane.height, w->plane.width, 0, 0};
    return pad_input(ctx, "winograd_pad_input", p, input, source->buffer, 0, source->height,
                     source->width);
}

/* V = B^T d B of every tile of source into tiles (profiled as what). */
static clcnn_status transform_input(clcnn_context *ctx, const char *options, const conv2d_params *p,
                                    const winograd_shape *w, const winograd_source *source,
                                    cl_mem tiles, const char *what) {
    const int rows = p->batch * p->in_channels * w->tiles_h;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &source->buffer}, {sizeof(cl_mem), &tiles},
        {sizeof(int), &p->in_channels},    {sizeof(int), &source->height},
        {sizeof(int), &source->width},     {sizeof(int), &source->pad_top},
        {sizeof(int), &source->pad_left},  {sizeof(int), &w->tiles_h},
        {sizeof(int), &w->tiles_w},        {sizeof(int), &w->pitch},
        {sizeof(int), &w->tile_stride},    {sizeof(int), &rows},
    };
    const size_t local[1] = {64}, global[1] = {round_up(rows, 64)};
    return launch(ctx, options, "winograd_transform_tiles", what, 12, args, 1, global, local);
}

/* Where the transformed filters go: `parts` parts of (C, padded_out_channels)
 * floats, `stride` floats apart, made by kernel `transform` (built with
 * `options`). */
typedef struct filter_layout {
    const char *transform, *options;
    int parts, padded_out_channels, stride;
} filter_layout;

static size_t filter_bytes(const filter_layout *f) {
    return sizeof(float) * (size_t)f->parts * (size_t)f->stride;
}

/* F(2x2)'s filters for shape w, in winograd_fused_pairs' layout with pairs.
 * The kernel reads no other -D parameter, so one program serves every
 * configuration. */
static filter_layout filters_2x2(const winograd_shape *w, int pairs) {
    return (filter_layout){"winograd_transform_filters", pairs ? "-DPAIRS=1" : "", 16,
                           w->padded_out_channels, w->filter_stride};
}

size_t conv2d_winograd_filter_bytes(const direct_config *config, const conv2d_params *p) {
    const winograd_shape w = winograd_shape_for(p, config);
    const filter_layout f = filters_2x2(&w, 0);
    return filter_bytes(&f);
}

/* The transformed filters of every (c, k) into the filters' scratch
 * (*filters), or kept in prepared (NULL: none): part xi's output channels
 * in blocks of k_block, each block's (C, k_block) after the one before. */
static clcnn_status transform_filters(clcnn_context *ctx, const filter_layout *f,
                                      const conv2d_params *p, cl_mem weight, int flip_transpose,
                                      int k_block, prepared_weights *prepared, cl_mem *filters) {
    const size_t bytes = filter_bytes(f);
    int current = 0;
    clcnn_status status =
        prepared ? prepared_buffer(ctx, prepared, weight, f->transform, f->padded_out_channels,
                                   k_block, bytes, filters, &current)
                 : runtime_scratch(ctx, SCRATCH_WINOGRAD_FILTERS, bytes, filters);
    if (status != CLCNN_OK || current)
        return status;
    const int items = p->in_channels * f->padded_out_channels;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &weight},
        {sizeof(cl_mem), filters},
        {sizeof(int), &p->in_channels},
        {sizeof(int), &p->out_channels},
        {sizeof(int), &f->padded_out_channels},
        {sizeof(int), &flip_transpose},
        {sizeof(int), &f->stride},
        {sizeof(int), &k_block},
    };
    const size_t local[1] = {64}, global[1] = {round_up(items, 64)};
    status = launch(ctx, f->options, f->transform, f->transform, 8, args, 1, global, local);
    if (prepared)
        prepared_made(prepared, status);
    return status;
}

/* A work-item keeps its tiles of every input channel in private memory
 * (up to 16 parts x 256 x 3 vectors of 8 floats, 384 KiB): a CPU's caches hold
 * that, a GPU's registers do not, so it runs where the register-blocked
 * kernels do. Up to 256 channels, not 128: at 256 channels 14x14, batch
 * 32 (AMD EPYC Zen 4), vectors of 16 tiles ran the forward in 20.6-20.9 ms
 * against the products' kernels' 22.4-22.7 (compare_pytorch's
 * conv3x3_c256 forward 303 -> 353 GFLOP/s, tuning choosing it). */
int conv2d_winograd_fused_fits(const clcnn_context *ctx, const conv2d_params *p) {
    return use_direct_kernels(ctx) && conv2d_winograd_fits(ctx, p) &&
           p->in_channels <= WINOGRAD_FUSED_CHANNELS;
}

/* FUSED_R tile vectors x FUSED_K output channels of accumulators within the
 * device's vector registers: each U value a work-item loads serves FUSED_R
 * tile vectors and each tile vector FUSED_K channels. The first, one row
 * of 16 output channels (8 with AVX2's 16 registers), keeps a work-item's
 * V and M small (the L1 cache); the second, 3 rows of 8 (4), 24 (12)
 * accumulators, loads less per multiply-add. Which is
 * faster depends on the shape (AMD EPYC Zen 4, forward: 64 channels at
 * 56x56, batch 32, 33 and 27 ms; 32 at 14x14, batch 64, 1.08 and 1.54 ms),
 * so tuning times both. Vectors of 8 tiles: two tile rows side by side
 * where a row has 4 or fewer. Where 32 registers hold 16 vectors of 16
 * floats, a third takes vectors of 16 tiles: four rows of 4 tiles (an
 * image of 7x7 or 8x8 outputs whole), two of 8, so that each U value
 * serves twice the tiles (AMD EPYC Zen 4, batch 64, fastest calls of three
 * runs each: 64 channels at 7x7 forward 1.46-1.55 -> 1.25-1.28 ms,
 * backward-data 1.30-1.47 -> 1.08-1.35; 32 at 14x14 mixed, 1.13-1.51 ->
 * 1.20-1.30 ms). Last, the pairs' kernel with one row of output channels
 * on the widest vectors, which wins where the transforms weigh most, with
 * few channels (kernels/conv2d_winograd.cl); where 16 registers allow only
 * 8 accumulators, also with two rows of 4 channels, which loads a U pair
 * for every 2 multiply-adds rather than every one (AMD EPYC Zen 1, batch
 * 64, fastest calls of six runs: 32 channels at 14x14 forward 2.57 ->
 * 2.23 ms, 64 at 7x7 2.67 -> 2.24; 16 at 28x28 no faster), and three rows
 * of 4, 12 accumulators, the fewest that keep AVX2's two multiply-add
 * pipes from waiting on each other's latency with room to spare (AMD EPYC
 * Zen 3, batch 128, fastest calls, three rounds: forward and backward-data
 * of 32 channels at 14x14 2.20-2.64 ms against 2.40-3.75 for two rows, of
 * 64 at 7x7 2.23-2.52 against 2.36-3.86; 16 at 28x28 slower). */
int conv2d_winograd_fused_steps(const clcnn_context *ctx, conv_step *out) {
    const int wide = vector_registers(ctx) >= 32;
    int count = 0;
    out[count++] = (conv_step){CONV_WINOGRAD_FUSED, {8, 1, wide ? 16 : 8, 8}};
    out[count++] = (conv_step){CONV_WINOGRAD_FUSED, {8, 3, wide ? 8 : 4, 8}};
    if (wide)
        out[count++] = (conv_step){CONV_WINOGRAD_FUSED, {16, 1, 16, 8}};
    out[count++] = (conv_step){CONV_WINOGRAD_PAIRS, {wide ? 16 : 8, 1, wide ? 16 : 8, 8}};
    if (!wide) {
        out[count++] = (conv_step){CONV_WINOGRAD_PAIRS, {8, 2, 4, 8}};
        out[count++] = (conv_step){CONV_WINOGRAD_PAIRS, {8, 3, 4, 8}};
    }
    return count;
}

int conv2d_winograd_is_fused(conv_kernels kernels) {
    return kernels == CONV_WINOGRAD_FUSED || kernels == CONV_WINOGRAD_PAIRS;
}

int conv2d_kernels_are_winograd(conv_kernels kernels) {
    return kernels == CONV_WINOGRAD || kernels == CONV_WINOGRAD4 ||
           conv2d_winograd_is_fused(kernels);
}

/* ---- the forward with 4x4 tiles (winograd4_fused) ---------------------- */

/* F(4x4)'s filters for config: K padded to whole blocks of its output
 * channels (wpt_p). */
static filter_layout filters_4x4(const direct_config *config, const conv2d_params *p) {
    const int padded = (p->out_channels + config->wpt_p - 1) / config->wpt_p * config->wpt_p;
    return (filter_layout){"winograd4_transform_filters", "", 36, padded,
                           (int)part_stride((int64_t)p->in_channels * padded)};
}

size_t conv2d_winograd4_filter_bytes(const direct_config *config, const conv2d_params *p) {
    const filter_layout f = filters_4x4(config, p);
    return filter_bytes(&f);
}

/* A work-item keeps its tile vectors of every input channel in private
 * memory (36 parts x WINOGRAD4_CHANNELS x 3 vectors of 8 floats, 216 KiB),
 * as winograd_fused does: CPUs only. The filters take the widest
 * configuration's padding. */
int conv2d_winograd4_fits(const clcnn_context *ctx, const conv2d_params *p) {
    const int64_t filters = 36 * part_stride((int64_t)p->in_channels * (p->out_channels + 8));
    return use_direct_kernels(ctx) && conv2d_winograd_fits(ctx, p) &&
           p->in_channels <= WINOGRAD4_CHANNELS && filters <= float_limit(ctx);
}

int conv2d_winograd4_pays(const clcnn_context *ctx, const conv2d_params *p) {
    return conv2d_winograd4_fits(ctx, p) && four_by_four_takes_fewer_products(p);
}

/* WINOGRAD4_R tile vectors x WINOGRAD4_K output channels of accumulators
 * within the vector registers, less a few for the filter values and the
 * tile vectors: 3 x 4 of AVX2's 16, 3 x 8 of AVX-512's 32. At 64 channels
 * of 7x7, batch 128 (AMD EPYC Zen 3), 2 x 4 ran within 3 x 4's noise
 * (1.40-1.62 ms a call against 1.41-1.97, and tuning chose 3 x 4 when it
 * timed both), 2 x 6, 1 x 8, 2 x 8 and 4 x 3 slower (1.9-3.2): one step,
 * so that tuning and the tests build one program.
 * Vectors of 8 images whatever the device prefers: the batch's tile
 * vectors are few already (64 at that shape). */
int conv2d_winograd4_steps(const clcnn_context *ctx, conv_step *out) {
    const int wide = vector_registers(ctx) >= 32;
    out[0] = (conv_step){CONV_WINOGRAD4, {8, 3, wide ? 8 : 4, 1}};
    return WINOGRAD4_STEPS;
}

/* The channels the kernel's private array has room for (-DWINOGRAD4_C):
 * 16, 32 or WINOGRAD4_CHANNELS, the fewest that take p's, so that three
 * programs serve every channel count. A part's channels lie that many
 * vectors apart: with room for 64, 16 channels of 28x28 (batch 128) took
 * 1/0.92 of the time, forward, and 1/0.83 backward-data, 32 of 14x14
 * 1/0.93 both ways (AMD EPYC Zen 4, alternated call by call; room for 128
 * had taken 64 channels 13 % longer). */
static int winograd4_room(const conv2d_params *p) {
    return p->in_channels <= 16 ? 16 : p->in_channels <= 32 ? 32 : WINOGRAD4_CHANNELS;
}

/* The forward of p on step's F(4x4) kernel: the filters' transform, then
 * winograd4_fused over every work-item's WINOGRAD4_R tile vectors. */
static clcnn_status forward_winograd4(clcnn_context *ctx, const conv_step *step,
                                      const conv2d_params *p, cl_mem input, cl_mem weight,
                                      int flip_transpose, cl_mem bias, cl_mem output,
                                      prepared_weights *prepared, int epilogue) {
    if (!conv2d_winograd4_fits(ctx, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Winograd convolution with 4x4 tiles: takes at most %d input channels, "
                         "on a CPU device",
                         WINOGRAD4_CHANNELS);
    const direct_config *config = &step->config;
    const filter_layout layout = filters_4x4(config, p);
    cl_mem filters;
    clcnn_status status = transform_filters(ctx, &layout, p, weight, flip_transpose, config->wpt_p,
                                            prepared, &filters);
    char options[128];
    snprintf(options, sizeof(options), "-DVW=%d -DWINOGRAD4_R=%d -DWINOGRAD4_K=%d -DWINOGRAD4_C=%d",
             config->vw, config->nv, config->wpt_p, winograd4_room(p));
    const int tiles_h = (p->out_height + 3) / 4, tiles_w = (p->out_width + 3) / 4;
    const int64_t vectors = (int64_t)tiles_h * tiles_w * ((p->batch + config->vw - 1) / config->vw);
    const int items = (int)((vectors + config->nv - 1) / config->nv);
    cl_mem bias_arg = p->has_bias ? bias : filters;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &input},       {sizeof(cl_mem), &filters},
        {sizeof(cl_mem), &bias_arg},    {sizeof(cl_mem), &output},
        {sizeof(int), &p->in_channels}, {sizeof(int), &p->in_height},
        {sizeof(int), &p->in_width},    {sizeof(int), &p->pad_top},
        {sizeof(int), &p->pad_left},    {sizeof(int), &p->out_channels},
        {sizeof(int), &p->out_height},  {sizeof(int), &p->out_width},
        {sizeof(int), &tiles_h},        {sizeof(int), &tiles_w},
        {sizeof(int), &p->batch},       {sizeof(int), &layout.stride},
        {sizeof(int), &epilogue},       {sizeof(int), &items},
    };
    const size_t local[1] = {(size_t)config->group};
    const size_t global[1] = {round_up(items, (size_t)config->group)};
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status =
            runtime_get_kernel_alone(ctx, "conv2d_winograd", "winograd4_fused", options, &kernel);
    return status != CLCNN_OK
               ? status
               : runtime_launch(ctx, kernel, "winograd4_fused", 18, args, 1, global, local);
}

/* The fused kernel's tiles a vector and tile rows side by side
 * (-DTILE_VW, -DFUSED_S): a vector of config.vw floats holds as many
 * tiles, or for pairs half as many; TILE_VW tiles of a tile row, at most
 * the row's, and FUSED_S rows side by side (4, 2 or 1) to fill the rest. */
typedef struct fused_tiles {
    int tile_vw, segments;
} fused_tiles;

static fused_tiles fused_tiles_for(const conv_step *step, const winograd_shape *w) {
    const int tiles = step->kernels == CONV_WINOGRAD_PAIRS ? step->config.vw / 2 : step->config.vw;
    fused_tiles f = {w->tile_vw < tiles ? w->tile_vw : tiles, 1};
    while (f.segments < 4 && 2 * f.segments * f.tile_vw <= tiles)
        f.segments *= 2;
    return f;
}

/* A fused kernel (step's): the filters' transform in blocks of FUSED_K
 * output channels, then winograd_fused or winograd_fused_pairs over every
 * work-item's FUSED_R x TILE_VW tiles (and the padded copy into
 * kept_input, when not NULL). */
static clcnn_status forward_fused(clcnn_context *ctx, const conv_step *step, const conv2d_params *p,
                                  cl_mem input, cl_mem weight, int flip_transpose, cl_mem bias,
                                  cl_mem output, cl_mem kept_input, prepared_weights *prepared,
                                  int epilogue) {
    if (!conv2d_winograd_fused_fits(ctx, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "fused Winograd convolution: takes at most %d input channels",
                         WINOGRAD_FUSED_CHANNELS);
    const direct_config *config = &step->config;
    const winograd_shape w = winograd_shape_for(p, config);
    const fused_tiles tiles = fused_tiles_for(step, &w);
    const int pairs = step->kernels == CONV_WINOGRAD_PAIRS;
    const int rows = config->nv, block = config->wpt_p;
    cl_mem filters, padded = kept_input;
    winograd_source source;
    /* FUSED_C sizes the transformed tiles' private array: the channels in
     * blocks of 16, so that few programs serve all channel counts. */
    const int padded_copy = reads_padded_copy(p, &w, kept_input != NULL);
    char options[160];
    snprintf(options, sizeof(options),
             "-DTILE_VW=%d -DFUSED_S=%d -DFUSED_R=%d -DFUSED_K=%d -DFUSED_C=%d -DPADDED_COPY=%d "
             "-DPAIRS=%d",
             tiles.tile_vw, tiles.segments, rows, block, (p->in_channels + 15) / 16 * 16,
             padded_copy, pairs);
    const filter_layout layout = filters_2x2(&w, pairs);
    clcnn_status status =
        transform_filters(ctx, &layout, p, weight, flip_transpose, block, prepared, &filters);
    if (status == CLCNN_OK && !padded && padded_copy)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS,
                                 sizeof(float) * (size_t)w.padded_floats, &padded);
    if (status == CLCNN_OK)
        status = windows_source(ctx, p, &w, input, padded_copy ? padded : NULL, &source);
    const int chunks = (w.tiles_w + tiles.tile_vw - 1) / tiles.tile_vw;
    const int block_rows = rows * tiles.segments;
    const int items = (p->batch * w.tiles_h + block_rows - 1) / block_rows * chunks;
    cl_mem bias_arg = p->has_bias ? bias : filters;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &source.buffer}, {sizeof(cl_mem), &filters},
        {sizeof(cl_mem), &bias_arg},      {sizeof(cl_mem), &output},
        {sizeof(int), &p->in_channels},   {sizeof(int), &source.height},
        {sizeof(int), &source.width},     {sizeof(int), &source.pad_top},
        {sizeof(int), &source.pad_left},  {sizeof(int), &p->out_channels},
        {sizeof(int), &p->out_height},    {sizeof(int), &p->out_width},
        {sizeof(int), &w.tiles_h},        {sizeof(int), &w.tiles_w},
        {sizeof(int), &chunks},           {sizeof(int), &w.filter_stride},
        {sizeof(int), &epilogue},         {sizeof(int), &items},
        {sizeof(int), &p->batch},
    };
    const size_t local[1] = {(size_t)config->group};
    const size_t global[1] = {round_up(items, (size_t)config->group)};
    const char *name = pairs ? "winograd_fused_pairs" : "winograd_fused";
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel_alone(ctx, "conv2d_winograd", name, options, &kernel);
    return status != CLCNN_OK ? status
                              : runtime_launch(ctx, kernel, name, 19, args, 1, global, local);
}

/* conv2d_forward_winograd with the kernels' epilogue argument. */
static clcnn_status winograd_forward(clcnn_context *ctx, const conv_step *step,
                                     const conv2d_params *p, cl_mem input, cl_mem weight,
                                     int flip_transpose, cl_mem bias, cl_mem output,
                                     cl_mem kept_input, prepared_weights *prepared, int epilogue) {
    if (!conv2d_winograd_fits(ctx, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Winograd convolution: needs a 3x3 stride-1 ungrouped convolution "
                         "whose transformed tiles fit the device's largest allocation");
    if (step->kernels == CONV_WINOGRAD4)
        return forward_winograd4(ctx, step, p, input, weight, flip_transpose, bias, output,
                                 prepared, epilogue);
    if (conv2d_winograd_is_fused(step->kernels))
        return forward_fused(ctx, step, p, input, weight, flip_transpose, bias, output, kept_input,
                             prepared, epilogue);
    const direct_config *config = &step->config;
    const winograd_shape w = winograd_shape_for(p, config);
    cl_mem tiles, products, filters;
    clcnn_status status = runtime_scratch(ctx, SCRATCH_WINOGRAD_TILES,
                                          sizeof(float) * 16 * (size_t)w.tile_stride, &tiles);
    const size_t product_floats = 16 * (size_t)w.product_stride;
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS,
                                 sizeof(float) * (product_floats > (size_t)w.padded_floats
                                                      ? product_floats
                                                      : (size_t)w.padded_floats),
                                 &products);
    if (status != CLCNN_OK)
        return status;
    const int padded_copy = reads_padded_copy(p, &w, kept_input != NULL);
    char options[128];
    winograd_options(config, &w, padded_copy, options, sizeof(options));

    const filter_layout layout = filters_2x2(&w, 0);
    status = transform_filters(ctx, &layout, p, weight, flip_transpose, w.padded_out_channels,
                               prepared, &filters);

    /* The products' scratch holds the padded copy, if one is made, until the
     * products overwrite it. */
    winograd_source source;
    if (status == CLCNN_OK)
        status = windows_source(ctx, p, &w, input,
                                padded_copy ? (kept_input ? kept_input : products) : NULL, &source);
    if (status == CLCNN_OK)
        status = transform_input(ctx, options, p, &w, &source, tiles, "winograd_transform_tiles");
    const size_t row_local[1] = {64};

    const kernel_arg gemm_args[] = {
        {sizeof(cl_mem), &filters},      {sizeof(cl_mem), &tiles},
        {sizeof(cl_mem), &products},     {sizeof(int), &p->in_channels},
        {sizeof(int), &p->out_channels}, {sizeof(int), &w.padded_out_channels},
        {sizeof(int), &w.pitch},         {sizeof(int), &w.filter_stride},
        {sizeof(int), &w.tile_stride},   {sizeof(int), &w.product_stride},
    };
    const size_t gemm_local[3] = {(size_t)config->group, 1, 1};
    const size_t gemm_global[3] = {
        round_up(w.padded_out_channels / config->wpt_p, (size_t)config->group),
        (size_t)(w.pitch / (config->vw * config->nv)), 16};
    if (status == CLCNN_OK)
        status = launch(ctx, options, "winograd_products", "winograd_products", 10, gemm_args, 3,
                        gemm_global, gemm_local);

    cl_mem bias_arg = p->has_bias ? bias : products;
    const int product_rows = p->batch * p->out_channels * w.tiles_h;
    const kernel_arg product_args[] = {
        {sizeof(cl_mem), &products},      {sizeof(cl_mem), &bias_arg},
        {sizeof(cl_mem), &output},        {sizeof(int), &p->out_channels},
        {sizeof(int), &p->out_height},    {sizeof(int), &p->out_width},
        {sizeof(int), &w.tiles_h},        {sizeof(int), &w.tiles_w},
        {sizeof(int), &epilogue},         {sizeof(int), &w.pitch},
        {sizeof(int), &w.product_stride}, {sizeof(int), &product_rows},
    };
    const size_t product_global[1] = {round_up(product_rows, 64)};
    if (status == CLCNN_OK)
        status = launch(ctx, options, "winograd_transform_products", "winograd_transform_products",
                        12, product_args, 1, product_global, row_local);
    return status;
}

clcnn_status conv2d_forward_winograd(clcnn_context *ctx, const conv_step *step,
                                     const conv2d_params *p, cl_mem input, cl_mem weight,
                                     int flip_transpose, cl_mem bias, cl_mem output,
                                     cl_mem kept_input, prepared_weights *prepared) {
    return winograd_forward(ctx, step, p, input, weight, flip_transpose, bias, output, kept_input,
                            prepared, conv2d_forward_epilogue(p));
}

clcnn_status conv2d_backward_data_winograd(clcnn_context *ctx, const conv_step *step,
                                           const conv2d_params *p, cl_mem grad_output,
                                           cl_mem weight, cl_mem grad_input, int accumulate) {
    const conv2d_params as_forward = conv2d_backward_data_as_forward(p);
    return winograd_forward(
        ctx, step, &as_forward, grad_output, weight, 1, NULL, grad_input, NULL, NULL,
        conv2d_forward_epilogue(&as_forward) | (accumulate ? EPILOGUE_ACCUMULATE : 0));
}

/* The smallest count >= at_least of rows of row_floats floats whose
 * floats part_stride leaves as they are (parts whole rows apart, never a
 * multiple of 64 KiB: part_stride says why). */
static int whole_rows_apart(int at_least, int row_floats) {
    int rows = at_least;
    while (row_floats % (16 * 1024) != 0 && (int64_t)rows * row_floats % (16 * 1024) == 0)
        rows++;
    return rows;
}

/* Backward-weights' products dU[xi] = V[xi] W[xi]^T are the backward-weights
 * of this 1x1 convolution: (tile + 2)^2 images (the parts: 16, or 36 with
 * 4x4 tiles) of one row of P columns (the tiles), C input and K output
 * channels. */
static conv2d_params gradient_products_as_1x1(const conv2d_params *p, int tile) {
    conv2d_params as_1x1 = {0};
    as_1x1.batch = (tile + 2) * (tile + 2);
    as_1x1.in_channels = p->in_channels;
    as_1x1.out_channels = p->out_channels;
    as_1x1.in_height = as_1x1.out_height = 1;
    as_1x1.in_width = as_1x1.out_width =
        p->batch * ((p->out_height + tile - 1) / tile) * ((p->out_width + tile - 1) / tile);
    as_1x1.kernel_h = as_1x1.kernel_w = 1;
    as_1x1.stride_h = as_1x1.stride_w = 1;
    as_1x1.groups = 1;
    return as_1x1;
}

direct_config conv2d_winograd_gradient_config(const clcnn_context *ctx, const conv2d_params *p) {
    const conv2d_params as_1x1 = gradient_products_as_1x1(p, gradient_tile_size(ctx, p));
    return direct_config_for_conv(ctx, "backward_weights", &as_1x1, p->out_channels);
}

/* The plan of winograd_gradient_fused or winograd4_gradient_fused
 * (kernels/conv2d_winograd.cl): the program's -D parameters, the tiles,
 * the channels of V's and W's rows in local memory (C_padded: the 4x4
 * kernel's V_PADDED; K_padded), the tile rows a chunk and a work-group, and
 * the groups (of GRADIENT_FUSED_GROUP work-items). The 2x2 program is the
 * products' (conv2d_winograd_products_config) with NV 2, which on AVX2
 * and 4-float devices is the very program the three kernels run (one
 * build less a shape, each some seconds); a products work-item takes 2
 * vectors of output channels and GRADIENT_WPT_C 4 input channels: 8
 * accumulators, half of AVX2's registers (3 or 6 input channels with two
 * vectors, or 4 or 8 with one, were 5-15 % slower on AVX2). The 4x4
 * program on 32 registers takes vectors of 8 floats (the tiles' 8 x 8
 * transpositions need them), as many as a block of output channels needs
 * up to 4, and 8 input channels (wpt_c): at 16 channels of 28x28, batch
 * 128, 2 x 8 accumulators took 0.69 of the time of the products' 2
 * vectors of 16 floats with 4 input channels, whose 32 output channels
 * were half padding, and at 32 channels of 14x14, 4 x 8 took 0.85 (AMD
 * EPYC Zen 4, AVX-512, alternated call by call; bench/RESULTS.md, stop
 * 74). */
typedef struct gradient_fused_plan {
    direct_config config;
    int tile, parts, tiles_h, tiles_w; /* 2x2 tiles (16 parts) or 4x4 (36) */
    int wpt_c;                         /* -DGRADIENT_WPT_C */
    int c_padded, k_padded, chunk_rows, group_rows, groups;
} gradient_fused_plan;

/* winograd_gradient_fused's limits: the local memory a chunk takes at
 * most (its transformed tiles stay in a CPU core's L2 as the products read
 * them again and again), and the channels C x K, whose 16 C x K sums a
 * work-group adds each chunk's products to. With more, those sums no
 * longer stay in L2 beside the tiles: against the three kernels, 64
 * channels at 7x7, batch 64, 4.1 -> 4.4 ms a call (at 14x14 11.9 -> 11.4,
 * at 28x28, batch 32, 19.8 both ways); 128 channels at 28x28, batch 32, 72
 * -> 100 ms; 256 at 14x14 73 -> 300 ms. */
enum {
    GRADIENT_FUSED_LOCAL_BYTES = 256 * 1024,
    GRADIENT_FUSED_SUMS = 32 * 64,
    GRADIENT_FUSED_GROUP = 64,
    GRADIENT_WPT_C = 4 /* the kernels' default */
};

/* The plan, or chunk_rows 0 where it does not apply (more channels than
 * GRADIENT_FUSED_SUMS, or a chunk of one tile row over the device's local
 * memory or GRADIENT_FUSED_LOCAL_BYTES): then the transforms write their
 * tiles to global memory for the products. */
static gradient_fused_plan gradient_fused_plan_for(const clcnn_context *ctx, const conv2d_params *p,
                                                   int tile) {
    const int wide4 = tile == 4 && vector_registers(ctx) >= 32;
    gradient_fused_plan f = {.config = conv2d_winograd_products_config(ctx, p),
                             .tile = tile,
                             .parts = tile == 4 ? 36 : 16,
                             .wpt_c = wide4 ? 8 : GRADIENT_WPT_C};
    if (wide4)
        f.config.vw = 8;
    f.config.nv = !wide4 ? 2 : p->out_channels <= 8 ? 1 : p->out_channels <= 16 ? 2 : 4;
    f.tiles_h = (p->out_height + tile - 1) / tile;
    f.tiles_w = (p->out_width + tile - 1) / tile;
    const int block = f.config.vw * f.config.nv;
    f.k_padded = (p->out_channels + block - 1) / block * block;
    if ((int64_t)p->in_channels * p->out_channels > GRADIENT_FUSED_SUMS)
        return f;
    const int tiles_h = f.tiles_h, tiles_w = f.tiles_w;
    const int c_block = f.config.vw > f.wpt_c ? f.config.vw : f.wpt_c;
    f.c_padded = tile == 4 ? (p->in_channels + c_block - 1) / c_block * c_block : p->in_channels;
    const int64_t row_bytes =
        (int64_t)sizeof(float) * f.parts * tiles_w * (f.c_padded + f.k_padded);
    /* On CPUs a quarter of the local memory, which PoCL sizes as a core's
     * L2: the chunk shares that cache with the rows the transforms read and
     * the group's sums (Zen 3, 512 KiB: 16 channels at 28x28, batch 128,
     * took some 9 % less time with chunks of 128 KiB than of 256;
     * bench/RESULTS.md, stop 70). */
    const int64_t usable = (int64_t)ctx->local_mem_bytes / (device_is_cpu(ctx) ? 4 : 1);
    int64_t budget = GRADIENT_FUSED_LOCAL_BYTES;
    if (usable > 0 && usable < budget)
        budget = usable;
    const int64_t most_rows = budget / row_bytes;
    if (most_rows == 0)
        return f;
    /* Four work-groups a compute unit, each of chunks as even as can be. */
    const int rows = p->batch * tiles_h;
    const int target = 4 * (int)(ctx->compute_units ? ctx->compute_units : 1);
    const int per_group = (rows + target - 1) / target;
    const int chunks = (int)((per_group + most_rows - 1) / most_rows);
    f.chunk_rows = (per_group + chunks - 1) / chunks;
    f.group_rows = f.chunk_rows * chunks;
    f.groups = (rows + f.group_rows - 1) / f.group_rows;
    /* The groups' sums within the device's largest allocation (else the
     * three kernels, whose buffers conv2d_winograd_gradient_fits checks). */
    if (f.parts * f.groups * part_stride((int64_t)p->in_channels * p->out_channels) >
        float_limit(ctx))
        f.chunk_rows = 0;
    return f;
}

/* The plan of backward-weights in one kernel: with 4x4 tiles where they
 * take fewer products than 2x2 ones (at 28x28, 7x7 tiles of 36 parts
 * against 14x14 of 16: 0.56 of the products and of the transformed
 * floats; at 14x14, 4x4 of 36 against 7x7 of 16, 0.73), else, or where
 * their chunk does not fit, with 2x2 tiles. At 14x14 the two had taken the
 * same time (bench/RESULTS.md, stop 72); with the windows' rows loaded
 * whole past the planes' edges, 4x4 took 0.94-0.97 of 2x2's (32 channels,
 * batch 128, alternated call by call, stop 73). */
static gradient_fused_plan gradient_fused_plan_of(const clcnn_context *ctx,
                                                  const conv2d_params *p) {
    if (four_by_four_takes_fewer_products(p)) {
        const gradient_fused_plan f = gradient_fused_plan_for(ctx, p, 4);
        if (f.chunk_rows > 0)
            return f;
    }
    return gradient_fused_plan_for(ctx, p, 2);
}

/* dU into the sums' scratch (*du) by winograd_gradient_fused (2x2 tiles)
 * or winograd4_gradient_fused (4x4), reading the input's windows from
 * source: f.groups slices of du_part floats a part. */
static clcnn_status gradient_fused(clcnn_context *ctx, const gradient_fused_plan *f,
                                   const char *options, const conv2d_params *p,
                                   const winograd_source *source, cl_mem grad_output, int du_part,
                                   cl_mem *du) {
    const char *name = f->tile == 4 ? "winograd4_gradient_fused" : "winograd_gradient_fused";
    clcnn_status status = runtime_scratch(
        ctx, SCRATCH_WINOGRAD_TILES, sizeof(float) * f->parts * (size_t)f->groups * du_part, du);
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = f->tile == 4
                     ? runtime_get_kernel_alone(ctx, "conv2d_winograd", name, options, &kernel)
                     : runtime_get_kernel(ctx, "conv2d_winograd", name, options, &kernel);
    if (status != CLCNN_OK)
        return status;
    const int rows = p->batch * f->tiles_h;
    const size_t tile_floats = (size_t)f->chunk_rows * f->tiles_w * f->parts;
    const kernel_arg args[] = {
        {sizeof(cl_mem), &source->buffer},
        {sizeof(cl_mem), &grad_output},
        {sizeof(cl_mem), du},
        {sizeof(float) * tile_floats * f->c_padded, NULL},
        {sizeof(float) * tile_floats * f->k_padded, NULL},
        {sizeof(int), &p->in_channels},
        {sizeof(int), &source->height},
        {sizeof(int), &source->width},
        {sizeof(int), &source->pad_top},
        {sizeof(int), &source->pad_left},
        {sizeof(int), &p->out_channels},
        {sizeof(int), &f->k_padded},
        {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},
        {sizeof(int), &f->tiles_h},
        {sizeof(int), &f->tiles_w},
        {sizeof(int), &rows},
        {sizeof(int), &f->group_rows},
        {sizeof(int), &f->chunk_rows},
        {sizeof(int), &du_part},
    };
    size_t local[1] = {GRADIENT_FUSED_GROUP};
    const cached_kernel *entry = runtime_kernel_entry(ctx, kernel);
    if (entry && entry->work_group_size && local[0] > entry->work_group_size)
        local[0] = entry->work_group_size;
    if (ctx->max_work_group_size && local[0] > ctx->max_work_group_size)
        local[0] = ctx->max_work_group_size;
    const size_t global[1] = {local[0] * (size_t)f->groups};
    return runtime_launch(ctx, kernel, name, 20, args, 1, global, local);
}

static int greatest_common_divisor(int a, int b) {
    return b == 0 ? a : greatest_common_divisor(b, a % b);
}

/* The options of the F(4x4) transforms and of winograd_gradient_filters,
 * which read VW alone: one program per vector width, not one per
 * configuration and shape. */
static void vector_options(int vw, char *options, size_t size) {
    snprintf(options, size, "-DVW=%d", vw);
}

/* dg = G^T dU G of tile x tile tiles from the sums' slices_per_part slices
 * (du_part floats each) into grad_weight (vectors of vw), and the bias's
 * gradient. */
static clcnn_status gradient_filters(clcnn_context *ctx, int vw, int tile, const conv2d_params *p,
                                     cl_mem du, int du_part, int slices_per_part,
                                     cl_mem grad_output, cl_mem grad_weight, cl_mem grad_bias) {
    const int C = p->in_channels, K = p->out_channels;
    const int filters = C * ((K + vw - 1) / vw);
    const kernel_arg filter_args[] = {
        {sizeof(cl_mem), &du}, {sizeof(cl_mem), &grad_weight}, {sizeof(int), &C},
        {sizeof(int), &K},     {sizeof(int), &du_part},        {sizeof(int), &slices_per_part},
        {sizeof(int), &tile},
    };
    const size_t filter_local[1] = {64}, filter_global[1] = {round_up(filters, 64)};
    char options[16];
    vector_options(vw, options, sizeof(options));
    clcnn_status status =
        launch(ctx, options, "winograd_gradient_filters", "winograd_gradient_filters", 7,
               filter_args, 1, filter_global, filter_local);
    if (status == CLCNN_OK && p->has_bias)
        status =
            reduce_channels(ctx, p->batch, K, p->out_height * p->out_width, grad_output, grad_bias);
    return status;
}

/* Backward-weights through global memory: the transforms write V and W, the
 * products (conv2d_backward_weights_direct, configured by gradient) sum
 * them into dU, and gradient_filters makes dg: with tile 2 F(2x2)'s
 * kernels over w's tiles, with tile 4 F(4x4)'s (winograd4_*), which read
 * the input itself. */
static clcnn_status gradient_through_memory(clcnn_context *ctx, const direct_config *gradient,
                                            const direct_config *products, const conv2d_params *p,
                                            const winograd_shape *w, int tile, cl_mem input,
                                            cl_mem grad_output, cl_mem grad_weight,
                                            cl_mem grad_bias) {
    const int C = p->in_channels, K = p->out_channels;
    const int du_part = (int)part_stride((int64_t)C * K);
    const int parts = (tile + 2) * (tile + 2);
    winograd_shape g = *w;
    if (tile == 4) {
        g.tiles_h = (p->out_height + 3) / 4;
        g.tiles_w = (p->out_width + 3) / 4;
        g.columns = p->batch * g.tiles_h * g.tiles_w;
        g.pitch = columns_pitch(g.columns, products);
    }
    /* W's channels: whole vectors of the gradient's transform (VW) and of the
     * products' work-items (vw * nv). */
    const int block = gradient->vw * gradient->nv;
    const int unit = block / greatest_common_divisor(block, products->vw) * products->vw;
    const int k_padded = (K + unit - 1) / unit * unit;
    /* V's parts v_rows rows of pitch apart, W's w_columns columns of k_padded. */
    const int v_rows = whole_rows_apart(C, g.pitch);
    const int v_part = v_rows * g.pitch;
    const int w_columns = whole_rows_apart(g.columns, k_padded);
    const int w_part = w_columns * k_padded;
    /* Each part's columns in slices of at most GRADIENT_SLICE_COLUMNS. */
    const int part_slices = gradient_part_slices(g.columns);
    const int slice_length = (g.columns + part_slices - 1) / part_slices;
    const int span_slices = (g.columns + slice_length - 1) / slice_length;
    const int du_slices = parts * span_slices;
    const int padded_copy = tile == 2 && reads_padded_copy(p, &g, 0);
    /* The products' slot holds the padded input (if a copy is made), then
     * the sums dU. */
    const int64_t du_floats = (int64_t)du_slices * du_part;
    size_t copy_floats = (size_t)du_floats;
    if (padded_copy && (size_t)g.padded_floats > copy_floats)
        copy_floats = (size_t)g.padded_floats;
    cl_mem tiles, copies, transformed;
    clcnn_status status = runtime_scratch(ctx, SCRATCH_WINOGRAD_TILES,
                                          sizeof(float) * (size_t)parts * (size_t)v_part, &tiles);
    if (status == CLCNN_OK)
        status =
            runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS, sizeof(float) * copy_floats, &copies);
    if (status == CLCNN_OK)
        status = runtime_scratch(ctx, SCRATCH_WINOGRAD_FILTERS,
                                 sizeof(float) * (size_t)parts * (size_t)w_part, &transformed);
    if (status != CLCNN_OK)
        return status;
    char options[128];
    if (tile == 2) {
        winograd_options(products, &g, padded_copy, options, sizeof(options));
        winograd_source source;
        winograd_shape v_shape = g;
        v_shape.tile_stride = v_part;
        status = windows_source(ctx, p, &g, input, padded_copy ? copies : NULL, &source);
        if (status == CLCNN_OK)
            status = transform_input(ctx, options, p, &v_shape, &source, tiles,
                                     "winograd_gradient_input");
    } else {
        vector_options(products->vw, options, sizeof(options));
        const kernel_arg input_args[] = {
            {sizeof(cl_mem), &input},     {sizeof(cl_mem), &tiles},    {sizeof(int), &C},
            {sizeof(int), &p->in_height}, {sizeof(int), &p->in_width}, {sizeof(int), &p->pad_top},
            {sizeof(int), &p->pad_left},  {sizeof(int), &g.tiles_h},   {sizeof(int), &g.tiles_w},
            {sizeof(int), &p->batch},     {sizeof(int), &g.pitch},     {sizeof(int), &v_part},
        };
        const int64_t items =
            (int64_t)C * g.tiles_h * g.tiles_w * ((p->batch + products->vw - 1) / products->vw);
        const size_t input_local[1] = {64}, input_global[1] = {round_up(items, 64)};
        status = launch(ctx, options, "winograd4_gradient_input", "winograd4_gradient_input", 12,
                        input_args, 1, input_global, input_local);
    }

    const kernel_arg gradient_args[] = {
        {sizeof(cl_mem), &grad_output},
        {sizeof(cl_mem), &transformed},
        {sizeof(int), &K},
        {sizeof(int), &k_padded},
        {sizeof(int), &p->out_height},
        {sizeof(int), &p->out_width},
        {sizeof(int), &g.tiles_h},
        {sizeof(int), &g.tiles_w},
        {sizeof(int), &g.columns},
        {sizeof(int), &w_part},
    };
    const char *tiles_kernel = tile == 2 ? "winograd_gradient_tiles" : "winograd4_gradient_tiles";
    const size_t row_local[1] = {64}, gradient_global[1] = {round_up(g.columns, 64)};
    if (status == CLCNN_OK)
        status = launch(ctx, options, tiles_kernel, tiles_kernel, 10, gradient_args, 1,
                        gradient_global, row_local);

    char direct_options[128];
    direct_config_options(gradient, direct_options, sizeof(direct_options));
    cl_kernel kernel;
    if (status == CLCNN_OK)
        status = runtime_get_kernel_alone(ctx, "conv2d_direct", "conv2d_backward_weights_direct",
                                          direct_options, &kernel);
    if (status != CLCNN_OK)
        return status;
    /* The products, in conv2d_backward_weights_direct's terms: one image
     * of `parts` rows of g.columns positions, its rows v_rows planes
     * of one row of g.pitch apart (stride_h); 1x1 filters; the gradient W
     * in rows of w_columns pixels of k_padded channels; each part's
     * positions (slice_span) in slices of slice_length, each slice's sums
     * tap-major, dU as (C, K). */
    const int no_offset = 0, plane_rows = 1, filter_size = 1, column_step = 1;
    const int part_positions = parts * g.columns, tap_major = 1;
    const kernel_arg product_args[24] = {
        {sizeof(cl_mem), &tiles},  {sizeof(int), &no_offset},      {sizeof(cl_mem), &transformed},
        {sizeof(int), &no_offset}, {sizeof(cl_mem), &copies},      {sizeof(int), &du_part},
        {sizeof(int), &C},         {sizeof(int), &plane_rows},     {sizeof(int), &g.pitch},
        {sizeof(int), &K},         {sizeof(int), &filter_size},    {sizeof(int), &filter_size},
        {sizeof(int), &v_rows},    {sizeof(int), &column_step},    {sizeof(int), &parts},
        {sizeof(int), &g.columns}, {sizeof(int), &part_positions}, {sizeof(int), &slice_length},
        {sizeof(int), &g.columns}, {sizeof(int), &k_padded},       {sizeof(int), &parts},
        {sizeof(int), &w_columns}, {sizeof(int), &k_padded},       {sizeof(int), &tap_major},
    };
    const size_t product_local[3] = {1, (size_t)gradient->group, 1};
    const size_t product_global[3] = {(size_t)(k_padded / block),
                                      (size_t)((C + gradient->wpt_p - 1) / gradient->wpt_p),
                                      (size_t)du_slices};
    status = runtime_launch(ctx, kernel, "winograd_gradient_products", 24, product_args, 3,
                            product_global, product_local);
    if (status == CLCNN_OK)
        status = gradient_filters(ctx, products->vw, tile, p, copies, du_part, span_slices,
                                  grad_output, grad_weight, grad_bias);
    return status;
}

clcnn_status conv2d_backward_weights_winograd(clcnn_context *ctx, const direct_config *gradient,
                                              const conv2d_params *p, cl_mem input,
                                              cl_mem grad_output, cl_mem grad_weight,
                                              cl_mem grad_bias) {
    if (!conv2d_winograd_gradient_fits(ctx, p))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Winograd backward-weights: needs a 3x3 stride-1 ungrouped convolution "
                         "whose transformed tiles and sums fit the device's largest allocation");
    const direct_config products = conv2d_winograd_products_config(ctx, p);
    const winograd_shape w = winograd_shape_for(p, &products);
    const int C = p->in_channels, K = p->out_channels;
    const int du_part = (int)part_stride((int64_t)C * K);
    const gradient_fused_plan fused = gradient_fused_plan_of(ctx, p);
    if (fused.chunk_rows > 0) {
        /* The 4x4 kernel makes the padding's zeros itself. */
        const int padded_copy = fused.tile == 2 && reads_padded_copy(p, &w, 0);
        char options[128];
        if (fused.tile == 4)
            snprintf(options, sizeof(options), "-DVW=%d -DNV=%d -DGRADIENT_WPT_C=%d",
                     fused.config.vw, fused.config.nv, fused.wpt_c);
        else
            winograd_options(&fused.config, &w, padded_copy, options, sizeof(options));
        cl_mem copy = NULL, du;
        clcnn_status status = CLCNN_OK;
        if (padded_copy)
            status = runtime_scratch(ctx, SCRATCH_WINOGRAD_PRODUCTS,
                                     sizeof(float) * (size_t)w.padded_floats, &copy);
        winograd_source source;
        if (status == CLCNN_OK)
            status = windows_source(ctx, p, &w, input, copy, &source);
        if (status == CLCNN_OK)
            status = gradient_fused(ctx, &fused, options, p, &source, grad_output, du_part, &du);
        if (status == CLCNN_OK)
            status = gradient_filters(ctx, fused.config.vw, fused.tile, p, du, du_part,
                                      fused.groups, grad_output, grad_weight, grad_bias);
        return status;
    }
    return gradient_through_memory(ctx, gradient, &products, p, &w, gradient_tile_size(ctx, p),
                                   input, grad_output, grad_weight, grad_bias);
}
