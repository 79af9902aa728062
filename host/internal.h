/* Declarations shared by the library's own files; not part of the public API. */
#ifndef CLCNN_INTERNAL_H
#define CLCNN_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "clcnn.h"
#include "core/config.h"

#include <stdarg.h>
#include <stdint.h>

/* ---- context and errors (context.c) ------------------------------------- */

/* x as a string literal, and a macro's value as one (a kernel's -D option
 * from the host's constant, the version text). */
#define CLCNN_STRINGIFY(x) #x
#define CLCNN_STRINGIFY_VALUE(x) CLCNN_STRINGIFY(x)

/* Kernel time per kernel name, from OpenCL profiling events, when profiling is on. */
#define PROFILE_ENTRIES 128

typedef struct profile_entry {
    char name[64];
    int launches;
    double seconds;
} profile_entry;

/* Programs are built once per (family, options) and kernels created once per
 * (family, kernel, options); both live until the context is destroyed. */
typedef struct cached_program {
    char key[320]; /* family|options */
    cl_program program;
} cached_program;

typedef struct cached_kernel {
    char key[384]; /* family|kernel|options */
    cl_kernel kernel;
    /* What the built kernel can run with on the device: CL_KERNEL_WORK_GROUP_SIZE and
     * CL_KERNEL_LOCAL_MEM_SIZE, checked by every launch. */
    size_t work_group_size;
    cl_ulong local_mem_bytes;
} cached_kernel;

/* The context's scratch buffers: the workspace, the Winograd
 * convolution's transformed tiles, their products and its transformed
 * filters, which it hands to the direct convolution (that uses the
 * workspace meanwhile), the phases of a strided convolution's
 * backward-data, each the output of a direct forward, and a convolution's
 * input gradient before it is added to one that another layer wrote (where
 * its kernels cannot add it themselves), and the coefficients per channel
 * of a batchnorm backward that walks planes (its sums per plane take the
 * workspace). */
typedef enum scratch_slot {
    SCRATCH_WORKSPACE,
    SCRATCH_WINOGRAD_TILES,
    SCRATCH_WINOGRAD_PRODUCTS,
    SCRATCH_WINOGRAD_FILTERS,
    SCRATCH_PHASES,
    SCRATCH_BATCHNORM_CHANNELS,
    SCRATCH_SLOTS
} scratch_slot;

struct clcnn_context {
    clcnn_device_kind kind;
    int has_device;
    char device_name[404]; /* "name (platform)", each at most 199 bytes */
    char driver_version[128];
    char cache_dir[1024]; /* "" disables the on-disk binary cache */
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl;
    cl_command_queue queue;
    size_t max_work_group_size;
    size_t max_work_item_sizes[3];              /* CL_DEVICE_MAX_WORK_ITEM_SIZES */
    cl_ulong local_mem_bytes;                   /* CL_DEVICE_LOCAL_MEM_SIZE */
    cl_ulong global_mem_bytes, max_alloc_bytes; /* planning refuses what exceeds them */
    cl_ulong cache_bytes;                       /* CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, 0 if none */
    cl_device_type device_type;
    cl_uint preferred_vector_width; /* float */
    cl_uint compute_units;          /* CL_DEVICE_MAX_COMPUTE_UNITS */
    cl_bool host_unified_memory;    /* CL_DEVICE_HOST_UNIFIED_MEMORY: a CPU's */
    /* The platform caches its program builds itself (PoCL) and compiles
     * every kernel of a program to hand out its binary: clcnn keeps none. */
    int platform_caches_builds;
    /* Scratch shared by operations, one at a time (runtime_scratch). */
    cl_mem scratch[SCRATCH_SLOTS];
    size_t scratch_bytes[SCRATCH_SLOTS];
    cached_program *programs;
    int program_count;
    cached_kernel *kernels;
    int kernel_count;
    int profiling;
    profile_entry profile[PROFILE_ENTRIES];
    kernel_config config; /* of an OpenCL device, resolved when the context selects it */
    /* clcnn_context_set_autotune's choice, -1 until it is called (then
     * CLCNN_AUTOTUNE decides), and what autotuning has done so far: the
     * operations it tuned and the seconds it took. */
    int autotune_switch;
    int autotuned_operations;
    double autotune_seconds;
    clcnn_status status;
    char error[2048];
    /* Test-only (tests/test_crash.c): CLCNN_TEST_SAVE_STOP=N:POINT makes the
     * N-th model save of this context stop the process (SIGSTOP) at POINT,
     * one of the save_stop_point values, so that a test can kill it exactly
     * there. Read once, when the context is created; 0 when unset. */
    int save_stop_at, save_stop_point;
    int saves; /* model saves begun */
};

/* Where CLCNN_TEST_SAVE_STOP stops a save. */
enum save_stop_point {
    SAVE_STOP_PARTIAL = 1, /* "partial": part of the temporary file written (and flushed) */
    SAVE_STOP_WRITTEN,     /* "written": the temporary file complete and synced, not renamed */
    SAVE_STOP_RENAMED,     /* "renamed": renamed over the model, the directory not synced */
};

/* A float tensor's storage on the context's device: host memory on the
 * reference device, an OpenCL buffer on an OpenCL device (the other member is
 * NULL). The operations' entry points (op_*) take these and run the kernels
 * or the reference loops, so layer code never asks which device it is on. */
typedef struct buf {
    float *host;
    cl_mem mem;
} buf;

/* Batch statistics shared by the ranks of data-parallel training
 * (clcnn_trainer_set_batch_statistics_hook). The trainer owns one and points
 * net->sync at it during its steps when several ranks train together; a
 * layer type with sync_floats (batchnorm) then exchanges its per-channel
 * sums through gather in its train-mode forward and backward. Every buffer
 * is allocated before the first step, so a pass allocates nothing. */
typedef struct rank_sync {
    clcnn_gather_fn gather;
    void *user;
    int ranks;
    int64_t capacity; /* the most any layer's exchange needs (sync_floats) */
    double *mine;     /* capacity: this rank's contribution */
    double *all;      /* ranks x capacity: every rank's, in rank order */
    double *combined; /* capacity: what the ranks' contributions give */
    float *floats;    /* capacity: per-channel values to and from the device */
    cl_mem device;    /* capacity floats on an OpenCL device */
} rank_sync;

static inline int context_is_opencl(const clcnn_context *ctx) {
    return ctx->kind == CLCNN_DEVICE_OPENCL;
}

/* 1 for an OpenCL CPU device (PoCL's): its kernels walk contiguous
 * shares, its local memory is a core's cache. */
static inline int device_is_cpu(const clcnn_context *ctx) {
    return (ctx->device_type & CL_DEVICE_TYPE_CPU) != 0;
}

/* 1 if b holds storage on ctx's device (an absent tensor is all NULL). */
static inline int buf_present(const clcnn_context *ctx, buf b) {
    return context_is_opencl(ctx) ? b.mem != NULL : b.host != NULL;
}

/* Creates path and any of its parents that are missing; errors are left to
 * the file operations that follow (XDG_CACHE_HOME need not exist yet). */
void make_dirs(const char *path);

/* Removes path.tmp-PID files beside path whose process PID no longer runs:
 * what a save killed mid-way left. Files of running processes stay. */
void remove_stale_temporaries(const char *path);

/* The larger of a and b, NaN when either is NaN, as PyTorch's max (C's
 * fmax returns the other operand and would drop the NaN). */
static inline double max_keep_nan(double a, double b) {
    return a > b || a != a ? a : b;
}

/* Records the error on ctx and returns status, so a failure is reported as
 *   return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open", path); */
clcnn_status set_error(clcnn_context *ctx, clcnn_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* CLCNN_OK if ctx has selected a device, else an error saying it must. */
clcnn_status context_require_device(clcnn_context *ctx);

/* ---- OpenCL runtime (runtime.c) -------------------------------------------- */

const char *cl_error_name(cl_int code);

/* Returns CLCNN_OK for CL_SUCCESS, else records "what: CL_ERROR_NAME". */
clcnn_status cl_check(clcnn_context *ctx, cl_int code, const char *what);

/* The kernel `kernel_name` of kernels/<family>.cl built with `options`
 * (e.g. "-DTILE_M=32 -DTILE_N=32"). A program is built once per context for
 * each (family, options), its binary cached on disk; the returned kernel
 * belongs to the context. */
clcnn_status runtime_get_kernel(clcnn_context *ctx, const char *family, const char *kernel_name,
                                const char *options, cl_kernel *out);

/* runtime_get_kernel for a kernel built with many option strings (one per
 * configuration and shape): its program holds that kernel alone (with
 * -DONE_KERNEL -DONLY_<kernel_name>, which such kernels' sources test), so
 * that the family's other kernels are not compiled with it. On PoCL that
 * halves the build of a program of kernels/conv2d_direct.cl. */
clcnn_status runtime_get_kernel_alone(clcnn_context *ctx, const char *family,
                                      const char *kernel_name, const char *options, cl_kernel *out);

/* Sets the arguments of a kernel from a list of (size, pointer) pairs and
 * enqueues it over a 1-, 2- or 3-D range. Global sizes are rounded up to
 * multiples of the local sizes; local may be NULL for any work-group size. */
typedef struct kernel_arg {
    size_t size;
    const void *value;
} kernel_arg;

/* CLCNN_OK if count (elements or an offset) fits the kernels' int indexing,
 * else an error saying what is too large. Every 64-bit size a kernel takes
 * as an int passes through here first. */
clcnn_status require_int_size(clcnn_context *ctx, const char *what, int64_t count);

/* The context's record of a kernel runtime_get_kernel returned (NULL for any other). */
const cached_kernel *runtime_kernel_entry(const clcnn_context *ctx, cl_kernel kernel);

clcnn_status runtime_launch(clcnn_context *ctx, cl_kernel kernel, const char *what, int arg_count,
                            const kernel_arg *args, int dims, const size_t *global,
                            const size_t *local);

/* runtime_get_kernel, then runtime_launch, profiled as `what`. */
clcnn_status runtime_run(clcnn_context *ctx, const char *family, const char *kernel_name,
                         const char *options, const char *what, int arg_count,
                         const kernel_arg *args, int dims, const size_t *global,
                         const size_t *local);

/* The element-wise kernels (-DITEM_SPAN, kernels/activation.cl and
 * combine.cl): kernel_name of kernels/<family>.cl built with the device's
 * span, and its launch over ceil(count / span) work-items. */
clcnn_status runtime_get_elementwise_kernel(clcnn_context *ctx, const char *family,
                                            const char *kernel_name, cl_kernel *out);
clcnn_status runtime_launch_elementwise(clcnn_context *ctx, cl_kernel kernel, const char *what,
                                        int arg_count, const kernel_arg *args, int64_t count);
/* The launch of an element-wise kernel that divides its elements into runs
 * of at most the span itself (a run per row of a plane, say): runs work-items,
 * in the element-wise kernels' work-groups. */
clcnn_status runtime_launch_runs(clcnn_context *ctx, cl_kernel kernel, const char *what,
                                 int arg_count, const kernel_arg *args, int64_t runs);

/* A scratch buffer of at least bytes, owned by the context and shared by
 * operations one after another on the in-order queue. It only grows, so a
 * training step allocates nothing after its first run. runtime_workspace is
 * slot SCRATCH_WORKSPACE; an operation that calls another keeps what it
 * hands over in slots of its own. */
clcnn_status runtime_scratch(clcnn_context *ctx, scratch_slot slot, size_t bytes, cl_mem *out);
clcnn_status runtime_workspace(clcnn_context *ctx, size_t bytes, cl_mem *out);

/* Appends printf-style text to buf at *used, keeping it NUL-terminated and
 * cutting at size (device listings and reports). */
void text_append(char *buf, size_t size, size_t *used, const char *format, ...)
    __attribute__((format(printf, 4, 5)));

/* Device buffers. */
clcnn_status buffer_create(clcnn_context *ctx, size_t bytes, cl_mem *out);
clcnn_status buffer_write(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                          const void *data);
/* Enqueues the write and returns at once: data must stay unchanged until a
 * later blocking call on the queue (a read, a finish) has returned. */
clcnn_status buffer_write_async(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                                const void *data);
clcnn_status buffer_read(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                         void *data);
void buffer_release(cl_mem *buffer);

/* The source text of kernels/<family>.cl, embedded at build time. NULL if unknown. */
const char *kernel_source(const char *family);

/* ---- small helpers (util.c) ------------------------------------------------------------ */

/* Seconds on a monotonic clock, for measuring intervals. */
double clock_seconds(void);

/* FNV-1a, 64-bit, for cache keys and file names (not a security measure):
 * start from HASH_SEED and fold in one piece after another. hash_string
 * folds in the terminating NUL too, so "ab"+"c" and "a"+"bc" differ. */
#define HASH_SEED 0xcbf29ce484222325ULL
uint64_t hash_bytes(uint64_t h, const void *data, size_t n);
uint64_t hash_string(uint64_t h, const char *s);

/* ---- random numbers (random.c) ------------------------------------------------ */

typedef struct rng {
    uint64_t state[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
double rng_uniform(rng *r); /* [0, 1) */
double rng_normal(rng *r);  /* mean 0, standard deviation 1 */

/* ---- layers and networks (io/netfile.c, graph/net.c) ------------------------------- */

/* Inputs a layer may read (concat of a DenseNet block), and named tensors a
 * layer may have. */
#define LAYER_MAX_INPUTS 32
#define LAYER_MAX_TENSORS 4

/* A layer type: its module in host/layers/ (see host/layers/layer.h). */
typedef struct layer_type layer_type;

/* Per-image shape: ndim 3 is (c, h, w); ndim 1 is a vector of c values (h = w = 1). */
typedef struct shape3 {
    int ndim;
    int c, h, w;
} shape3;

static inline int64_t shape3_count(shape3 s) {
    return (int64_t)s.c * s.h * s.w;
}

/* A node of a network: one layer with its options, inputs and shapes. */
typedef struct layer {
    const layer_type *type;
    char name[64];
    int line; /* in the network file */

    /* Nodes it reads, all earlier in the network (topological order). */
    int input_count;
    int inputs[LAYER_MAX_INPUTS];

    /* options as written (defaults filled in), shared by the types that take them */
    int filters, units;         /* conv, dense */
    int size_h, size_w;         /* conv, pool window */
    int stride_h, stride_w;     /* conv, pool */
    int pad_top, pad_left;      /* resolved padding before the first row/column */
    int pad_bottom, pad_right;  /* and after the last ('same' may be asymmetric) */
    int has_bias;               /* conv, dense */
    int dilation_h, dilation_w; /* conv: spacing of the kernel's taps */
    int groups;                 /* conv: channel groups */
    int ceil_mode;              /* pool */
    int exclude_pad;            /* avgpool: the divisor counts input cells only (count_pad=false) */
    float slope;                /* leaky */
    float rate;                 /* dropout: the probability of dropping an element */
    float eps, momentum;        /* batchnorm */
    int named_filter;           /* conv with filter=NAME: its index, else -1 */

    shape3 in, out; /* in: the first input's shape */
    int64_t weight_count, bias_count;

    /* Its named tensors: net->tensors[first_tensor ..+ tensor_count) (set by the network). */
    int first_tensor, tensor_count;

    /* conv, dense (a 1x1 convolution): how the OpenCL device runs them,
     * decided when the network's memory is planned, after tuning (graph/plan.c). */
    conv2d_plan conv;
} layer;

/* The node among layers[0..count) whose name is name[0..length), or -1. */
int layer_index(const layer *layers, int count, const char *name, size_t length);

/* Parses network text into nodes in topological order with shapes inferred;
 * errors name source_name:line. *layers is malloc'd; free with free(). */
clcnn_status netfile_parse(clcnn_context *ctx, const char *text, const char *source_name,
                           layer **layers, int *layer_count);

/* Offsets of tensors in the flat buffers are multiples of this (1 KiB), so
 * that every tensor can be an OpenCL sub-buffer on devices whose base
 * address alignment is up to 8192 bits. */
#define PARAMETER_ALIGN_FLOATS 256
/* n rounded up to a multiple of PARAMETER_ALIGN_FLOATS. */
int64_t align_floats(int64_t n);

typedef enum tensor_kind {
    TENSOR_PARAMETER, /* trained: in the flat buffer the optimizer updates */
    TENSOR_STATE,     /* not trained (running statistics): saved with the model */
} tensor_kind;

/* One entry of the network's table of named tensors: a parameter (in the
 * flat parameter buffer, its gradient at the same offset of the gradient
 * buffer) or state (in the flat state buffer). */
typedef struct named_tensor {
    char name[128]; /* PyTorch's: conv1.weight, bn1.running_mean */
    tensor_kind kind;
    int layer; /* the node that owns it */
    int ndim;
    int64_t shape[4];
    int64_t count;
    int64_t offset;       /* in floats */
    cl_mem mem, grad_mem; /* sub-buffers on a device */
} named_tensor;

/* Which loss a network trains with, and where it attaches. */
typedef struct loss_plan {
    clcnn_loss kind;
    int logits_layer; /* the node whose output the loss reads and whose gradient
                         it writes; backward runs from there */
} loss_plan;

/* Where every node's output and output gradient live for a batch capacity:
 * nodes whose lifetimes do not overlap share a slot (graph/plan.c). */
typedef struct memory_plan {
    int64_t capacity;
    int with_gradients;
    int *root;      /* per node: the node whose storage it uses (itself, or a view's input) */
    int *out_slot;  /* per node: its root's activation slot */
    int *grad_slot; /* per node: its root's gradient slot, -1 if none */
    int slot_count, grad_slot_count;
    buf *slots, *grad_slots;
    buf grad_temporary; /* a gradient to be added to another (fan-out) */
    buf scratch;        /* what backward's layers ask for */
    size_t scratch_bytes;
    /* per node, with gradients: what its forward keeps for its backward
     * (layer_type.saved_bytes), absent for most */
    buf *saved;
    /* per node, recomputed by each backward pass */
    unsigned char *needs_grad, *grad_written;
    /* Eval-mode folding (pass.c): folded_into[i] is the node whose `fold`
     * folds into node i (its only reader), -1 if none; that node's output
     * lives from i, as node i writes it; folded[i] holds the weight and bias
     * node i then runs with. */
    int *folded_into;
    buf (*folded)[2];
    /* folded holds what the parameters at version folds_made_at fold to
     * (net_fold_layers folds again only when clcnn_net.parameters_version
     * moved or the plan made new buffers). */
    int folds_made;
    uint64_t folds_made_at;
    /* fused_relu[i]: the relu that alone reads node i and runs inside it
     * (layer_pass.relu), -1 if none; the relu then shares node i's storage,
     * as a view would (plan.c). */
    int *fused_relu;
    /* fused_add[i]: the add of two inputs that alone reads node i and runs
     * inside it (layer_pass.add_in), -1 if none; the add (and its fused
     * relu) then share node i's storage. */
    int *fused_add;
} memory_plan;

/* The filters as a forward kernel reads them (transposed and padded),
 * kept from one eval-mode forward to the next, so that a call runs only
 * the convolution: a network keeps one per node and sets `version` to
 * that of its parameters before each pass (clcnn_net.parameters_version).
 * They are remade when the version, the weights' buffer or the layout
 * differs from those they were made for. */
typedef struct prepared_weights {
    cl_mem buffer; /* NULL until first made */
    size_t bytes;
    cl_mem made_from;
    uint64_t made_at;      /* the version they were made at */
    const char *transform; /* the kernel that made them */
    int padded, block;     /* its output channels, padded, and their blocks */
    int made;
    uint64_t version; /* the weights' version now */
} prepared_weights;

struct clcnn_net {
    clcnn_context *ctx;
    layer *layers;
    int layer_count;
    char *text; /* the network file as given */

    named_tensor *tensors;
    int tensor_count;

    /* the flat parameter and gradient buffers, and the flat state buffer
     * (host always; device once used) */
    int64_t parameter_floats, state_floats;
    float *host_parameters, *host_gradients, *host_state;
    cl_mem device_parameters, device_gradients, device_state;
    int device_parameters_stale; /* host changed since the last upload */
    int host_parameters_stale;   /* device changed since the last download */
    /* Counts the changes to parameters and state, on either side: raised
     * with the flags above (net_host_parameters_changed,
     * net_device_parameters_changed). A node's prepared
     * filters (per node, eval-mode forwards) are remade when it moved. */
    uint64_t parameters_version;
    prepared_weights *prepared;

    /* of clcnn_net_forward's and clcnn_net_backward's passes: CLCNN_MODE_*
     * once clcnn_net_set_mode set it, -1 before (forward eval, backward train) */
    int mode;
    /* Where the random draws of the next training pass start (dropout masks):
     * the trainer derives it from its seed and step, so a resumed run draws
     * the same; clcnn_net_set_random_seed sets it for single passes. */
    uint64_t random_seed;
    /* The index in the global batch of this process's first image (sharded
     * training), so that draws keyed by image match one process's. */
    int64_t first_image;
    /* clcnn_net_forward's chunks keep every output within this many floats
     * (CLCNN_FORWARD_CHUNK_FLOATS; tests lower it to cut small batches). */
    int64_t forward_chunk_floats;
    /* During one chunk of clcnn_net_forward (or one clcnn_net_backward) on
     * a device that shares the host's memory: the caller's input and output
     * arrays themselves, as buffers (CL_MEM_USE_HOST_PTR), standing for the
     * storage of node 0 and of the last node's root, and an MSE's targets
     * (pass.c); NULL otherwise. */
    cl_mem caller_input, caller_output, caller_targets;

    /* Per node: frozen (clcnn_net_freeze); frozen_version counts the changes,
     * so a trainer notices a set other than the one it was made for. */
    unsigned char *frozen;
    int frozen_version;

    memory_plan plan;

    /* Called by net_backward_stored after each node's backward has been
     * computed (reference device) or enqueued (OpenCL), nodes in the order
     * backward walks them, down to node 1; a status other than CLCNN_OK
     * stops the pass. The trainer sets it around its own steps to start the
     * exchange of gradients that are final (a parameter's gradient is
     * written by its own node only). NULL: none. */
    clcnn_status (*backward_node_done)(void *user, int node);
    void *backward_node_user;

    /* The ranks' batch statistics exchange during the trainer's steps when
     * several ranks train together (see rank_sync); NULL otherwise. A train
     * pass with it may have batch 0 (a rank without images): only the
     * layers that synchronise then run, to make their exchanges. */
    rank_sync *sync;

    int gradient_batch;      /* images of the last backward pass; 0 before the first */
    int want_input_gradient; /* training needs none: the first layer skips it */
    int has_input_gradient;  /* the last backward pass computed it */

    /* loss inputs and per-row losses */
    loss_plan loss;
    int32_t *host_labels;
    float *host_targets, *host_losses;
    cl_mem device_labels, device_targets, device_losses;
};

int layer_has_parameters(const layer *l);
/* Node i has parameters and is not frozen: backward computes their gradient. */
int net_trains_layer(const clcnn_net *net, int i);
/* The node named name, or -1. */
int net_find_layer(const clcnn_net *net, const char *name);
/* The tensor named name ("conv1.weight"), or -1. */
int net_find_tensor(const clcnn_net *net, const char *name);
/* "<layer>.<which>" into name, or an error for a missing layer, a `which`
 * other than weight/bias, or a layer without that tensor. */
clcnn_status net_parameter_name(clcnn_net *net, const char *layer_name, const char *which,
                                char *name, size_t size);

/* host/layers/filters.c: the named 3x3 filters (identity, sobel_v, ...). */
int named_filter_index(const char *name);     /* -1 if there is none of that name */
const float *named_filter_weights(int index); /* 9 floats, row by row */

typedef struct trainer_span {
    int64_t parameter_offset, state_offset, count;
} trainer_span;

/* A trainer: configuration, progress and optimizer state (host/train.c). */
struct clcnn_trainer {
    clcnn_net *net;
    clcnn_train_config config;
    int epochs_done;
    int64_t step; /* optimizer updates so far */
    rng shuffle;  /* drawn from at the start of each epoch */

    /* What the optimizer updates: the spans of the flat parameter buffer
     * holding parameters of layers that are not frozen (consecutive trained
     * tensors share one), each with its state at state_offset in the state
     * buffers; made for the net's frozen set of frozen_version. */
    trainer_span *spans;
    int span_count;
    int frozen_version;
    int64_t state_floats;
    int64_t *tensor_state_offset; /* per net tensor: where its state is, -1 if it has none */
    /* optimizer state over the spans: momentum, or Adam's m and v */
    float *host_state1, *host_state2;
    cl_mem device_state1, device_state2;
    int host_state_stale;   /* the device copy is newer */
    int device_state_stale; /* the host copy is newer */

    /* two batches of staging: the next batch is gathered while the device
     * computes the current one */
    int64_t *order;
    float *batch_images[2];
    int32_t *batch_labels[2];
    float *batch_outputs;

    /* data-parallel training: this trainer's share of each global batch, and
     * the hook that combines the ranks' gradients (NULL: none) */
    int rank, world_size;
    clcnn_gradient_fn gradient_hook;
    void *gradient_user;
    /* synchronised batch statistics: the hook is sync.gather (NULL: none) */
    rank_sync sync;

    /* overlap: bucket k covers [bucket_first[k], bucket_end[k]) of the flat
     * gradient buffer (k = 0 the highest offsets) and is final after node
     * bucket_node[k]'s backward; on a device its read is enqueued after that
     * node's kernels with bucket_events[k] */
    clcnn_gradient_ready_fn ready_hook;
    void *ready_user;
    int64_t bucket_floats;
    int bucket_count;
    int64_t *bucket_first, *bucket_end;
    int *bucket_node;
    cl_event *bucket_events;
    int buckets_emitted;             /* of the step under way */
    clcnn_gradient_step *ready_step; /* the step under way (NULL: none) */
};

/* Makes the host copy of the optimizer state current. */
clcnn_status trainer_sync_state_to_host(clcnn_trainer *trainer);

/* ---- augmentation (train/augment.c) ------------------------------------------------ */

/* What augmentation draws for one training image. */
typedef struct augment_draw {
    int flip;           /* mirror left to right */
    int crop_y, crop_x; /* the crop's corner in the padded image, 0 .. 2 * pad */
    double angle;       /* degrees, counter-clockwise as the image is shown */
} augment_draw;

/* 1 when the configuration asks for any augmentation. */
int augment_enabled(const clcnn_train_config *config);
/* The draws of the data set's image `index` in epoch `epoch` (0-based): a
 * function of (seed, epoch, index) alone, so every shard and every resumed
 * run draws the same for an image. */
augment_draw augment_draws(const clcnn_train_config *config, int epoch, int64_t index);
/* dst = src (channels x height x width, not overlapping) rotated by d->angle
 * about its centre (bilinear, 0 outside), cropped at (d->crop_y, d->crop_x)
 * of itself padded with pad zeros, then flipped when d->flip. */
void augment_image(const float *src, float *dst, int channels, int height, int width, int pad,
                   const augment_draw *d);

/* host/graph/plan.c and pass.c: memory plan and passes */
void net_release_activations(clcnn_net *net);
/* For a node with a fused add (memory_plan.fused_add[i] >= 0): the add's
 * other input. */
int fused_add_other_input(const clcnn_net *net, int i);
void net_release_device_parameters(clcnn_net *net);
/* Makes the host copy of the parameters current (after training on a device). */
clcnn_status net_sync_parameters_to_host(clcnn_net *net);
/* Makes the device copy current (after the host copy changed); creates it on first use. */
clcnn_status net_sync_parameters_to_device(clcnn_net *net);
/* The host copy of the parameters and state changed (the device's is
 * refreshed before its next use), or the device copy did (on an OpenCL
 * device the host's is then read back before its next use): either raises
 * parameters_version, which the kept filters and folds follow. */
void net_host_parameters_changed(clcnn_net *net);
void net_device_parameters_changed(clcnn_net *net);
/* Activation storage for capacity images, with gradient storage if with_gradients. */
clcnn_status net_ensure_activations(clcnn_net *net, int64_t capacity, int with_gradients);
/* Before the plan for capacity images is made: where autotune_enabled,
 * tunes each convolution operation the plan will run on the register-blocked
 * kernels and the tuning table lacks (forward; with gradients, the
 * backward-weights of trained layers and the backward-data of layers whose
 * input gradient is needed) on a few configurations near the default, at
 * the batch size the plan is for (at most 64), and saves the winners in the
 * tuning file (graph/tuner.c). */
clcnn_status net_autotune(clcnn_net *net, int64_t capacity, int with_gradients);
/* Whether tuning races the pointwise kernel for operation (0 forward, 1
 * backward-data, 2 backward-weights) of p (host/graph/tuner.c). */
int tuning_races_pointwise(const clcnn_context *ctx, int operation, const conv2d_params *p);
/* needed[i] = 1 where backward needs node i's output gradient: it has
 * parameters that are not frozen or an input whose gradient is needed; node
 * 0's (the input's) when want_input_gradient. */
void net_needed_gradients(const clcnn_net *net, int want_input_gradient, unsigned char *needed);
/* The inference plan for *chunk images, halving *chunk while the device
 * cannot hold it (the plan refuses before allocating): an eval-mode pass
 * of any batch whose single images fit runs in chunks that do. */
clcnn_status net_ensure_inference_chunk(clcnn_net *net, int64_t *chunk);
/* The forward pass of batch images (batch <= capacity) already in layer 0's
 * storage, in train or eval mode, for a backward (net_backward_stored):
 * nodes keep what their backward needs (layer_pass.saved). */
clcnn_status net_forward_stored(clcnn_net *net, int batch, int training);
/* Computes the folded weights of every folding pair (when the parameters
 * changed since it last did), then runs eval-mode forward passes with them: nodes whose
 * outputs a folding node replaces are not computed (inference only, since
 * backward reads them). */
clcnn_status net_fold_layers(clcnn_net *net);
clcnn_status net_forward_folded(clcnn_net *net, int batch, int64_t first_image);
/* Images into layer 0's storage; on a device the copy is enqueued, so input
 * must stay unchanged until the next blocking read. */
clcnn_status net_write_input(clcnn_net *net, const float *input, int batch);
/* Checks labels/targets for the loss and stages them on the host. */
clcnn_status net_stage_targets(clcnn_net *net, int batch, const int32_t *labels,
                               const float *targets);
/* Enqueues the loss and the backward pass after net_forward_stored (targets
 * staged), in the same mode. */
clcnn_status net_backward_stored(clcnn_net *net, int batch, int training);
/* Waits for the per-image losses of the last backward pass; *loss gets their mean. */
clcnn_status net_read_loss(clcnn_net *net, int batch, double *loss);
/* The largest per-image activation of any layer, in floats: kernels index
 * with int, so a batch must keep batch * this below 2^31. */
int64_t net_largest_activation(const clcnn_net *net);
/* Copies count floats of layer i's stored output to the host. */
clcnn_status net_read_output(clcnn_net *net, int i, int64_t count, float *values);
/* The same enqueued: values are valid after the next blocking call on the queue. */
clcnn_status net_read_output_async(clcnn_net *net, int i, int64_t count, float *values);

#endif
