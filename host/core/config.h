/* The kernel configuration of a context's OpenCL device: which convolution
 * kernels run and with which -D parameters. config_resolve works it out once,
 * when the context selects its device, from the device's properties, the
 * CLCNN_* environment overrides and the device's tuning file; the lookups
 * below then read only what it resolved, so a kernel launch reads no
 * environment, opens no file and allocates nothing. */
#ifndef CLCNN_CONFIG_H
#define CLCNN_CONFIG_H

#include "clcnn.h"

/* A tiled GEMM-style kernel's -D parameters (see kernels/gemm.cl). */
typedef struct tile_config {
    int tile_m, tile_n, tile_k;
    int wpt_m, wpt_n;
} tile_config;

/* The -D parameters of the register-blocked kernels (kernels/conv2d_direct.cl):
 * a work-item computes wpt_p positions x vw*nv channels. */
typedef struct direct_config {
    int vw, nv, wpt_p;
    int group; /* work-items per work-group, along the positions */
} direct_config;

/* Which kernels run one operation of a convolution on the OpenCL device,
 * and with what configuration (the register-blocked kernels' for
 * CONV_DIRECT, the products' for CONV_WINOGRAD, the fused kernel's for
 * CONV_WINOGRAD_FUSED, CONV_WINOGRAD_PAIRS and CONV_WINOGRAD4; unused
 * otherwise). */
typedef enum conv_kernels {
    CONV_TILED,          /* kernels/conv2d.cl, local-memory tiles (GPU devices) */
    CONV_DIRECT,         /* kernels/conv2d_direct.cl, register-blocked (CPU devices) */
    CONV_ROWS,           /* the row kernel: stride 1 and very few channels */
    CONV_DEPTHWISE,      /* kernels/conv2d_depthwise.cl: few channels per group */
    CONV_WINOGRAD,       /* kernels/conv2d_winograd.cl: transforms and products apart */
    CONV_WINOGRAD_FUSED, /* kernels/conv2d_winograd.cl: winograd_fused, few channels */
    CONV_WINOGRAD_PAIRS, /* kernels/conv2d_winograd.cl: winograd_fused_pairs, fewer channels */
    CONV_POINTWISE,      /* kernels/conv2d_direct.cl: conv2d_pointwise, 1x1 as matrix products */
    CONV_WINOGRAD4,      /* kernels/conv2d_winograd.cl: winograd4_fused, 4x4 tiles */
} conv_kernels;

typedef struct conv_step {
    conv_kernels kernels;
    direct_config config;
} conv_step;

/* A convolution's three operations as the device runs them: resolved once
 * (conv2d_plan_for, host/ops.h) from the context's settings and tuning
 * table, so that a layer's calls only enqueue. */
typedef struct conv2d_plan {
    conv_step forward, backward_data, backward_weights;
} conv2d_plan;

/* A convolution's shape: what the conv2d operations take (host/ops.h) and
 * what the tuning file is keyed by. As PyTorch's conv2d: the taps of a
 * filter are dilation_h rows and dilation_w columns apart, and the channels
 * are split into `groups` groups, output channel k reading only the
 * in_channels / groups input channels of its group k / (out_channels /
 * groups); the weights are (out_channels, in_channels / groups, kernel_h,
 * kernel_w). Both channel counts are multiples of groups. Dilation and
 * groups of 0 count as 1, so that a zero-initialised shape is an ordinary
 * convolution; read them through the functions below. */
typedef struct conv2d_params {
    int batch;
    int in_channels, in_height, in_width;
    int out_channels, kernel_h, kernel_w;
    int stride_h, stride_w, pad_top, pad_left;
    int out_height, out_width;
    int has_bias;
    int dilation_h, dilation_w;
    int groups;
    /* The forward applies a relu to its output (one fused into the
     * convolution: host/graph/plan.c), bit for bit as the relu layer would;
     * the backward ignores it. */
    int relu;
} conv2d_params;

static inline int conv2d_groups(const conv2d_params *p) {
    return p->groups > 1 ? p->groups : 1;
}

static inline int conv2d_dilation_h(const conv2d_params *p) {
    return p->dilation_h > 1 ? p->dilation_h : 1;
}

static inline int conv2d_dilation_w(const conv2d_params *p) {
    return p->dilation_w > 1 ? p->dilation_w : 1;
}

/* 1 for an ordinary convolution: one group, no dilation. Such a convolution
 * runs on the kernels and programs it always ran on. */
static inline int conv2d_is_plain(const conv2d_params *p) {
    return conv2d_groups(p) == 1 && conv2d_dilation_h(p) == 1 && conv2d_dilation_w(p) == 1;
}

/* A tuned kernel configuration for one operation on one layer shape. */
typedef struct tuned_entry {
    char key[128];
    direct_config config;
} tuned_entry;

typedef struct kernel_config {
    int direct;        /* 1: the register-blocked kernels, 0: the tiled ones (CLCNN_CONV) */
    tile_config tiles; /* of the tiled kernels (CLCNN_TILES) */
    /* The register-blocked kernels' widest vector and work-group size on this device. */
    int direct_vw, direct_group;
    int direct_forced;    /* CLCNN_DIRECT was given: forced stands for every convolution */
    direct_config forced; /* vw, nv and wpt_p; group is direct_group */
    tuned_entry *tuned;   /* the tuning file, then what clcnn_tune measured */
    int tuned_count;
    /* Consecutive elements per work-item of the element-wise kernels
     * (-DITEM_SPAN, CLCNN_ITEM_SPAN) and the options that build them. */
    int item_span;
    char item_span_options[32];
    int binary_cache; /* program binaries are cached on disk (a cache directory, no CLCNN_NO_CACHE)
                       */
    /* Planning a network tunes the convolutions the tuning file has no entry
     * for and adds them to it: the register-blocked kernels, no CLCNN_DIRECT,
     * a tuning file read and writable (a cache directory, no
     * CLCNN_NO_TUNING), and CLCNN_AUTOTUNE not 0. The context's switch
     * (clcnn_context_set_autotune) stands over CLCNN_AUTOTUNE only. */
    int autotune_possible, autotune;
    /* Stride-1 3x3 convolutions on Winograd F(2x2, 3x3): -1 where tuning
     * found it faster than the direct kernels, on the kernels it found
     * fastest (the tuning table's "winograd_*" entries), 0 never, 1 on the
     * products' kernels wherever it can run, 2 on the fused kernel where it
     * can and the products' elsewhere, 3 the same with the 4x4 kernel for
     * the forward and backward-data (CLCNN_WINOGRAD=0|1|fused|4x4). */
    int winograd;
    /* Pointwise convolutions (1x1, stride 1, no padding, one group) forward
     * and backward-data on conv2d_pointwise: -1 where tuning found it faster
     * than the direct kernels (the tuning table's "pointwise_*" entries), 0
     * never, 1 wherever it can run (CLCNN_POINTWISE=0|1). */
    int pointwise;
    /* A relu whose input is a conv, dense, batchnorm or add layer read by nothing else
     * runs inside that layer (1, the default), or as a layer of its own
     * (CLCNN_FUSE=0). Networks planned before a change keep their plan. */
    int fuse;
    /* clcnn_net_forward reads its input from and writes its output to the
     * caller's arrays in place (1; by default where the device shares the
     * host's memory) or copies them to and from device buffers (0;
     * CLCNN_ZERO_COPY). */
    int zero_copy;
} kernel_config;

/* Resolves ctx->config for the device described in ctx (type, limits, name,
 * driver, cache directory). An override the library cannot use is an error
 * naming the variable, and ctx->config is then left as it was. */
clcnn_status config_resolve(clcnn_context *ctx);
void config_release(kernel_config *config);

/* The configuration used for a kernel family on ctx's device. */
tile_config tile_config_for(const clcnn_context *ctx, const char *family);
/* Writes "-DTILE_M=.. -DTILE_N=.. ..." into buf. */
void tile_config_options(const tile_config *config, char *buf, size_t size);
/* The local memory the tiled kernels built with config declare, in bytes:
 * the float tiles and the int index tables. */
size_t tile_config_local_bytes(const tile_config *config);
/* 1 if config obeys the divisibility rules and fits ctx's device: its
 * work-group size, its work-item sizes per dimension and its local memory
 * (OpenCL 1.2's 32 KiB when ctx is NULL). Otherwise 0, with the reason in
 * why (may be NULL). */
int tile_config_check(const clcnn_context *ctx, const tile_config *config, char *why, size_t size);
int tile_config_valid(const clcnn_context *ctx, const tile_config *config);
/* CLCNN_OK if config can run, else an error naming `what`, the configuration and the reason. */
clcnn_status tile_config_require(clcnn_context *ctx, const tile_config *config, const char *what);

/* 1 if the device runs the register-blocked kernels (CPU devices), 0 for the
 * local-memory tiled ones. CLCNN_CONV=tiled|direct overrides. */
int use_direct_kernels(const clcnn_context *ctx);
/* The vector registers a kernel's inner loop can keep its values in: a
 * CPU whose preferred float vector is 16 wide (AVX-512) has 32, a narrower
 * one (AVX2, SSE) 16. */
int vector_registers(const clcnn_context *ctx);
/* The configuration for `channels` vectorised channels on ctx's device. */
direct_config direct_config_for(const clcnn_context *ctx, int channels);
void direct_config_options(const direct_config *config, char *buf, size_t size);

/* The configuration for an operation ("forward", "backward_data",
 * "backward_weights") of a convolution: from this device's tuning file when
 * clcnn_tune measured that shape, else direct_config_for(ctx, channels). */
direct_config direct_config_for_conv(const clcnn_context *ctx, const char *operation,
                                     const conv2d_params *p, int channels);
/* A shape's verdicts are kept per batch class (tuning_key): below
 * tuning_full_batch each power of two up to the next has its own; from
 * there one class holds up to twice the full batch, and another every batch
 * from twice the full batch up, whose working set outgrows caches that held
 * the full batch's. The full batch is TUNING_FULL_BATCH images, or for
 * outputs of few pixels as many as make TUNING_FULL_POSITIONS positions (64
 * maps of 7x7), the regime of the batches such layers run (dense layers
 * among them: at 64 positions a 2048 x 2048 dense layer's weight gradient
 * had picked a configuration 1.4 times slower at batch 2048 than the
 * default). Autotuning measures a shape at the plan's batch where that is
 * below the full batch, else at the plan's batch class, so that a plan
 * for thousands of images tunes at twice the full batch at most. */
enum { TUNING_FULL_BATCH = 64, TUNING_FULL_POSITIONS = TUNING_FULL_BATCH * 49 };
int64_t tuning_full_batch(const conv2d_params *p);
/* The batch class of p->batch: below the full batch the largest power of
 * two within it, else the full batch or, from twice it up, twice it. */
int64_t tuning_batch_class(const conv2d_params *p);
/* 1 if the context's table has an entry for the operation on p's shape
 * and batch class;
 * tuning_lookup also gives its configuration. */
int tuning_has(const clcnn_context *ctx, const char *operation, const conv2d_params *p);
int tuning_lookup(const clcnn_context *ctx, const char *operation, const conv2d_params *p,
                  direct_config *out);
/* Adds the tuning file's entries that the context's table lacks: when the
 * context starts, and before each autotuning pass, so that a shape another
 * context or process has measured since (and saved) is not measured again,
 * to a verdict that may differ: two contexts of one process had chosen
 * Winograd and the direct kernels for the same shape, and their results
 * differed in the last bits. */
void tuning_load(clcnn_context *ctx);
/* Records a measured winner in the context's table; tuning_save writes the
 * table, keeping the file's entries for shapes the table lacks (those
 * another process added since this one read it). */
clcnn_status tuning_remember(clcnn_context *ctx, const char *operation, const conv2d_params *p,
                             const direct_config *config);
clcnn_status tuning_save(clcnn_context *ctx);
/* 1 if planning a network on ctx tunes the shapes the tuning file lacks. */
int autotune_enabled(const clcnn_context *ctx);

#endif
