/* clcnn: convolutional neural networks through OpenCL, with a plain-C reference.
 *
 * The whole public API. Every call returns a clcnn_status; on failure
 * clcnn_last_error(ctx) says what went wrong in words. Nothing here prints or
 * exits, and there is no global state: everything hangs off a clcnn_context.
 */
#ifndef CLCNN_H
#define CLCNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum clcnn_status {
    CLCNN_OK = 0,
    CLCNN_ERROR_INVALID_ARGUMENT, /* a caller passed something unusable */
    CLCNN_ERROR_IO,               /* a file could not be opened, read or written */
    CLCNN_ERROR_PARSE,            /* a network file is malformed (file:line in the message) */
    CLCNN_ERROR_FORMAT,           /* a data file (.npy, IDX) is malformed or unsupported */
    CLCNN_ERROR_SHAPE,            /* shapes do not fit together */
    CLCNN_ERROR_OPENCL,           /* an OpenCL call failed (its error name in the message) */
    CLCNN_ERROR_NO_DEVICE,        /* no such OpenCL platform or device */
    CLCNN_ERROR_OUT_OF_MEMORY,
} clcnn_status;

typedef enum clcnn_device_kind {
    CLCNN_DEVICE_OPENCL = 0, /* the kernels on an OpenCL device */
    CLCNN_DEVICE_REFERENCE,  /* the plain-C reference on the host */
} clcnn_device_kind;

typedef enum clcnn_dtype {
    CLCNN_FLOAT32 = 0,
    CLCNN_FLOAT64,
    CLCNN_INT32,
    CLCNN_INT64,
    CLCNN_UINT8,
} clcnn_dtype;

typedef struct clcnn_context clcnn_context;
typedef struct clcnn_net clcnn_net;

/* ---- contexts and devices ---------------------------------------------- */

/* Allocates a context with no device yet. Returns NULL only when out of memory. */
clcnn_context *clcnn_context_create(void);
void clcnn_context_destroy(clcnn_context *ctx);

/* The message of the last failed call on this context ("" if none). */
const char *clcnn_last_error(const clcnn_context *ctx);
const char *clcnn_status_name(clcnn_status status);

/* Selects the device that networks of this context run on. For
 * CLCNN_DEVICE_OPENCL, platform and device index pick the OpenCL device;
 * pass -1 for both to use CLCNN_DEVICE=p:d from the environment or else the
 * first device of the first platform. The reference device ignores both. */
clcnn_status clcnn_context_select_device(clcnn_context *ctx, clcnn_device_kind kind,
                                         int platform_index, int device_index);

/* A readable name of the selected device, e.g. "pthread-... (Portable Computing Language)". */
const char *clcnn_device_name(const clcnn_context *ctx);

/* Writes a listing of every OpenCL platform and device with its key limits
 * into buf (NUL-terminated, cut at size). */
clcnn_status clcnn_list_devices(clcnn_context *ctx, char *buf, size_t size);

/* Kernel profiling: when on, every launch waits for its kernel and adds the
 * kernel's device time (from OpenCL profiling events) to a per-kernel total. */
clcnn_status clcnn_profile_enable(clcnn_context *ctx, int enable);
/* Writes "kernel launches seconds" lines, largest total first, and resets the totals. */
clcnn_status clcnn_profile_report(clcnn_context *ctx, char *buf, size_t size);

/* ---- arrays and .npy files ------------------------------------------------ */

#define CLCNN_MAX_DIMS 8

typedef struct clcnn_array {
    clcnn_dtype dtype;
    int ndim;
    int64_t shape[CLCNN_MAX_DIMS];
    void *data; /* C order, owned by the array: free with clcnn_array_free */
} clcnn_array;

/* Elements in the array; -1 for NULL or an invalid shape. */
int64_t clcnn_array_count(const clcnn_array *array);
void clcnn_array_free(clcnn_array *array);

/* Reads a .npy file (format 1.0/2.0/3.0, little-endian, C order; float32,
 * float64, int32, int64 or uint8). */
clcnn_status clcnn_npy_read(clcnn_context *ctx, const char *path, clcnn_array *out);
/* Writes a .npy file (format 1.0). */
clcnn_status clcnn_npy_write(clcnn_context *ctx, const char *path, const clcnn_array *array);
/* Converts in place to float32. */
clcnn_status clcnn_array_to_float32(clcnn_context *ctx, clcnn_array *array);

/* Reads an IDX file (gzip-compressed or raw), e.g. Fashion-MNIST's
 * t10k-images-idx3-ubyte.gz. Images come back as uint8 of shape (N, H, W),
 * labels as uint8 of shape (N). */
clcnn_status clcnn_idx_read(clcnn_context *ctx, const char *path, clcnn_array *out);

/* ---- networks ------------------------------------------------------------- */

/* Parses a network file (see README.md). Errors name the file and line. */
clcnn_status clcnn_net_from_file(clcnn_context *ctx, const char *path, clcnn_net **out);
/* The same from text in memory; source_name is used in error messages. */
clcnn_status clcnn_net_from_string(clcnn_context *ctx, const char *text, const char *source_name,
                                   clcnn_net **out);
void clcnn_net_destroy(clcnn_net *net);

typedef struct clcnn_layer_info {
    const char *name; /* conv1, relu2, ... or the layer's name= */
    const char *type; /* input, conv, maxpool, ... */
    int ndim;         /* 3 for (C, H, W), 1 for a vector */
    int shape[3];     /* per image: C, H, W, or units in shape[0] */
    int64_t weight_count;
    int64_t bias_count;
} clcnn_layer_info;

int clcnn_net_layer_count(const clcnn_net *net);
clcnn_status clcnn_net_layer_info(const clcnn_net *net, int index, clcnn_layer_info *out);
int64_t clcnn_net_parameter_count(const clcnn_net *net);
/* Number of floats of one image at the input and at the output. */
int64_t clcnn_net_input_size(const clcnn_net *net);
int64_t clcnn_net_output_size(const clcnn_net *net);

/* Writes the per-layer summary table (name, type, output shape, parameters, total). */
clcnn_status clcnn_net_summary(const clcnn_net *net, char *buf, size_t size);

/* He initialisation (normal, std sqrt(2/fan_in)) for layers followed by relu or
 * leaky, Xavier (uniform, limit sqrt(6/(fan_in+fan_out))) otherwise; biases 0. */
clcnn_status clcnn_net_init_weights(clcnn_net *net, uint64_t seed);

/* Loads <layer>.weight.npy and <layer>.bias.npy of every layer with parameters. */
clcnn_status clcnn_net_load_weights(clcnn_net *net, const char *dir);
/* Writes them. */
clcnn_status clcnn_net_save_weights(clcnn_net *net, const char *dir);

/* Sets or reads a layer's parameter ("weight" or "bias"): count floats in
 * PyTorch's layout (conv: K, C, R, S; dense: out, in). */
clcnn_status clcnn_net_set_parameter(clcnn_net *net, const char *layer, const char *which,
                                     const float *values, int64_t count);
clcnn_status clcnn_net_get_parameter(clcnn_net *net, const char *layer, const char *which,
                                     float *values, int64_t count);

/* Called after each layer (index >= 1) of a forward pass with that layer's
 * output for images first .. first + count - 1: count * layer size floats.
 * Within one chunk of images the layers come in order. */
typedef clcnn_status (*clcnn_trace_fn)(void *user, int layer_index, const float *values,
                                       int64_t first, int64_t count);

/* Runs batch images (batch * input size floats, NCHW) through the network
 * and writes batch * output size floats. Large batches are processed in
 * chunks. trace may be NULL. */
clcnn_status clcnn_net_forward(clcnn_net *net, const float *input, int64_t batch, float *output,
                               clcnn_trace_fn trace, void *trace_user);

#ifdef __cplusplus
}
#endif

#endif
