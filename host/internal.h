/* Declarations shared by the library's own files; not part of the public API. */
#ifndef CLCNN_INTERNAL_H
#define CLCNN_INTERNAL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "clcnn.h"

#include <stdarg.h>
#include <stdint.h>

/* ---- context and errors (context.c) ------------------------------------- */

#define KERNEL_CACHE_SIZE 64

/* Kernel time per kernel name, from OpenCL profiling events, when profiling is on. */
#define PROFILE_ENTRIES 32

typedef struct profile_entry {
    char name[64];
    int launches;
    double seconds;
} profile_entry;

typedef struct cached_kernel {
    char key[320]; /* family|kernel|options */
    cl_program program;
    cl_kernel kernel;
} cached_kernel;

struct clcnn_context {
    clcnn_device_kind kind;
    int has_device;
    char device_name[256];
    char driver_version[128];
    char cache_dir[1024]; /* "" disables the on-disk binary cache */
    cl_platform_id platform;
    cl_device_id device;
    cl_context cl;
    cl_command_queue queue;
    size_t max_work_group_size;
    cl_device_type device_type;
    cached_kernel kernels[KERNEL_CACHE_SIZE];
    int kernel_count;
    int profiling;
    profile_entry profile[PROFILE_ENTRIES];
    clcnn_status status;
    char error[2048];
};

/* Records the error on ctx and returns status, so a failure is reported as
 *   return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open", path); */
clcnn_status set_error(clcnn_context *ctx, clcnn_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- OpenCL runtime (runtime.c) -------------------------------------------- */

const char *cl_error_name(cl_int code);

/* Returns CLCNN_OK for CL_SUCCESS, else records "what: CL_ERROR_NAME". */
clcnn_status cl_check(clcnn_context *ctx, cl_int code, const char *what);

/* The kernel `kernel_name` of kernels/<family>.cl built with `options`
 * (e.g. "-DTILE_M=32 -DTILE_N=32"). Programs are built once per context and
 * cached on disk; the returned kernel belongs to the context. */
clcnn_status runtime_get_kernel(clcnn_context *ctx, const char *family, const char *kernel_name,
                                const char *options, cl_kernel *out);

/* Sets the arguments of a kernel from a list of (size, pointer) pairs and
 * enqueues it over a 1-, 2- or 3-D range. Global sizes are rounded up to
 * multiples of the local sizes; local may be NULL for any work-group size. */
typedef struct kernel_arg {
    size_t size;
    const void *value;
} kernel_arg;

clcnn_status runtime_launch(clcnn_context *ctx, cl_kernel kernel, const char *what, int arg_count,
                            const kernel_arg *args, int dims, const size_t *global,
                            const size_t *local);

/* Device buffers. */
clcnn_status buffer_create(clcnn_context *ctx, size_t bytes, cl_mem *out);
clcnn_status buffer_write(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                          const void *data);
clcnn_status buffer_read(clcnn_context *ctx, cl_mem buffer, size_t offset, size_t bytes,
                         void *data);
void buffer_release(cl_mem *buffer);

/* The source text of kernels/<family>.cl, embedded at build time. NULL if unknown. */
const char *kernel_source(const char *family);

/* ---- random numbers (random.c) ------------------------------------------------ */

typedef struct rng {
    uint64_t state[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
double rng_uniform(rng *r);  /* [0, 1) */
double rng_normal(rng *r);   /* mean 0, standard deviation 1 */

/* ---- layers and networks (netfile.c, net.c) --------------------------------- */

typedef enum layer_type {
    LAYER_INPUT,
    LAYER_CONV,
    LAYER_MAXPOOL,
    LAYER_AVGPOOL,
    LAYER_RELU,
    LAYER_LEAKY,
    LAYER_SIGMOID,
    LAYER_TANH,
    LAYER_FLATTEN,
    LAYER_DENSE,
    LAYER_SOFTMAX,
    LAYER_TYPE_COUNT
} layer_type;

const char *layer_type_name(layer_type type);

/* Per-image shape: ndim 3 is (c, h, w); ndim 1 is a vector of c values (h = w = 1). */
typedef struct shape3 {
    int ndim;
    int c, h, w;
} shape3;

static inline int64_t shape3_count(shape3 s) {
    return (int64_t)s.c * s.h * s.w;
}

typedef struct layer {
    layer_type type;
    char name[64];
    int line; /* in the network file */

    /* options as written (defaults filled in) */
    int filters, units;              /* conv, dense */
    int size_h, size_w;              /* conv, pool window */
    int stride_h, stride_w;          /* conv, pool */
    int pad_top, pad_left;           /* resolved padding before the first row/column */
    int pad_bottom, pad_right;       /* and after the last ('same' may be asymmetric) */
    int has_bias;                    /* conv, dense */
    int ceil_mode;                   /* pool */
    float slope;                     /* leaky */

    shape3 in, out;
    int64_t weight_count, bias_count;

    float *weight, *bias;            /* host copies, PyTorch layout */
    cl_mem weight_buffer, bias_buffer;
} layer;

/* Parses network text into layers with shapes inferred; errors name
 * source_name:line. *layers is malloc'd; free with free(). */
clcnn_status netfile_parse(clcnn_context *ctx, const char *text, const char *source_name,
                           layer **layers, int *layer_count);

struct clcnn_net {
    clcnn_context *ctx;
    layer *layers;
    int layer_count;
    char *text; /* the network file as given */

    /* activation storage for up to capacity images, allocated on first use */
    int64_t capacity;
    float **host_outputs;      /* reference device: one per layer */
    cl_mem *device_outputs;    /* OpenCL device: one per layer */
};

#endif
