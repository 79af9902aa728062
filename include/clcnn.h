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

/* The version of this header; clcnn_version() gives the library's. */
#define CLCNN_VERSION_MAJOR 0
#define CLCNN_VERSION_MINOR 1
#define CLCNN_VERSION_PATCH 0

/* Marks the library's exported functions. The library is built with hidden
 * visibility: everything else in it is internal (and local in the static
 * library), so only clcnn_* names can meet a program's own. */
#if defined(__GNUC__) || defined(__clang__)
#define CLCNN_API __attribute__((visibility("default")))
#else
#define CLCNN_API
#endif

typedef enum clcnn_status {
    CLCNN_OK = 0,
    CLCNN_ERROR_INVALID_ARGUMENT, /* a caller passed something unusable */
    CLCNN_ERROR_IO,               /* a file could not be opened, read or written */
    CLCNN_ERROR_PARSE,            /* a network file is malformed (file:line in the message) */
    CLCNN_ERROR_FORMAT,           /* a data file (.npy, IDX, CIFAR, an image) is malformed */
    CLCNN_ERROR_SHAPE,            /* shapes do not fit together */
    CLCNN_ERROR_OPENCL,           /* an OpenCL call failed (its error name in the message) */
    CLCNN_ERROR_NO_DEVICE,        /* no such OpenCL platform or device */
    CLCNN_ERROR_OUT_OF_MEMORY,
    CLCNN_STOPPED,           /* a progress callback asked training to stop (not a failure) */
    CLCNN_ERROR_UNSUPPORTED, /* a well-formed input clcnn cannot compute (an ONNX op, ...) */
    CLCNN_ERROR_DIVERGED,    /* training: a loss became NaN or infinite (epoch, batch in the
                              * message) */
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

/* The library's version, "MAJOR.MINOR.PATCH" (the CLCNN_VERSION_* it was built with). */
CLCNN_API const char *clcnn_version(void);

/* Allocates a context with no device yet. Returns NULL only when out of memory. */
CLCNN_API clcnn_context *clcnn_context_create(void);
CLCNN_API void clcnn_context_destroy(clcnn_context *ctx);

/* The message of the last failed call on this context ("" if none). */
CLCNN_API const char *clcnn_last_error(const clcnn_context *ctx);
CLCNN_API const char *clcnn_status_name(clcnn_status status);

/* Selects the device that networks of this context run on. For
 * CLCNN_DEVICE_OPENCL, platform and device index pick the OpenCL device;
 * pass -1 for both to use CLCNN_DEVICE=p:d from the environment or else the
 * first device of the first platform. The reference device ignores both. */
CLCNN_API clcnn_status clcnn_context_select_device(clcnn_context *ctx, clcnn_device_kind kind,
                                                   int platform_index, int device_index);

/* A readable name of the selected device, e.g. "pthread-... (Portable Computing Language)". */
CLCNN_API const char *clcnn_device_name(const clcnn_context *ctx);

/* Writes a listing of every OpenCL platform and device with its key limits
 * into buf (NUL-terminated, cut at size). */
CLCNN_API clcnn_status clcnn_list_devices(clcnn_context *ctx, char *buf, size_t size);

/* One OpenCL device (or a platform without devices: device_index -1 and the
 * device fields empty), as `clcnn devices --json` reports it. */
typedef struct clcnn_device_info {
    int platform_index, device_index;
    char platform_name[256], platform_vendor[256], platform_version[256];
    char name[256], type[16]; /* type: "CPU", "GPU", "accelerator" or "other" */
    char driver_version[128], opencl_c_version[128];
    unsigned compute_units, clock_mhz, float_vector_width;
    uint64_t global_memory, local_memory, max_allocation; /* bytes */
    size_t max_work_group_size;
} clcnn_device_info;

/* Every device of every OpenCL platform, the first `capacity` into out (may
 * be NULL when capacity is 0); *count gets how many there are. */
CLCNN_API clcnn_status clcnn_device_list(clcnn_context *ctx, clcnn_device_info *out, int capacity,
                                         int *count);

/* Kernel profiling: when on, every launch waits for its kernel and adds the
 * kernel's device time (from OpenCL profiling events) to a per-kernel total. */
CLCNN_API clcnn_status clcnn_profile_enable(clcnn_context *ctx, int enable);
/* Writes "kernel launches seconds" lines, largest total first, and resets the totals. */
CLCNN_API clcnn_status clcnn_profile_report(clcnn_context *ctx, char *buf, size_t size);

/* Autotuning: on a device that runs the register-blocked convolutions (CPU
 * devices), planning a network for a batch size times a few kernel
 * configurations near the default for each convolution and dense operation
 * the device's tuning file has no entry for yet, at that batch size (at
 * most 64), and adds the fastest to the file, so that later processes use
 * it without measuring again. It is on by default where the tuning file is
 * read and can be written (a cache directory, no CLCNN_NO_TUNING, no
 * CLCNN_DIRECT); CLCNN_AUTOTUNE=0 turns it off. This switch stands over
 * CLCNN_AUTOTUNE for networks this context plans from now on. Results do not
 * depend on it: every configuration computes the same floats. */
CLCNN_API clcnn_status clcnn_context_set_autotune(clcnn_context *ctx, int enable);

/* The OpenCL device's floating-point peak in GFLOP/s, measured with a kernel
 * of independent vector multiply-adds (kernels/peak.cl) over a work-group per
 * compute unit: the fastest of 5 launches of at least 0.05 s. An error on the
 * reference device. */
CLCNN_API clcnn_status clcnn_device_peak(clcnn_context *ctx, double *gflops);

/* The OpenCL device's streaming bandwidth in GB/s (10^9 bytes read and
 * written a second), measured with a kernel that reads one buffer and
 * writes another (kernels/peak.cl), each four times the device's
 * global-memory cache and at least 64 MiB: the fastest of 5 runs of
 * launches of at least 0.05 s. Operations whose tensors fit in the cache
 * can move memory faster. An error on the reference device. */
CLCNN_API clcnn_status clcnn_device_bandwidth(clcnn_context *ctx, double *gbytes_per_second);

/* The OpenCL device's call floor in seconds: one launch of a near-empty
 * kernel (the peak kernel's single round) and clFinish, the fastest of 20.
 * Every synchronous call (clcnn_net_forward, say) takes at least this long
 * around its kernels; on a CPU device it is the driver waking its threads
 * and then the caller. An error on the reference device. */
CLCNN_API clcnn_status clcnn_device_call_floor(clcnn_context *ctx, double *seconds);

/* ---- arrays and .npy files ------------------------------------------------ */

#define CLCNN_MAX_DIMS 8

typedef struct clcnn_array {
    clcnn_dtype dtype;
    int ndim;
    int64_t shape[CLCNN_MAX_DIMS];
    void *data; /* C order, owned by the array: free with clcnn_array_free */
} clcnn_array;

/* Elements in the array; -1 for NULL or an invalid shape. */
CLCNN_API int64_t clcnn_array_count(const clcnn_array *array);
CLCNN_API void clcnn_array_free(clcnn_array *array);

/* Reads a .npy file (format 1.0/2.0/3.0, little-endian, C order; float32,
 * float64, int32, int64 or uint8). */
CLCNN_API clcnn_status clcnn_npy_read(clcnn_context *ctx, const char *path, clcnn_array *out);
/* Writes a .npy file (format 1.0). */
CLCNN_API clcnn_status clcnn_npy_write(clcnn_context *ctx, const char *path,
                                       const clcnn_array *array);
/* Converts in place to float32. */
CLCNN_API clcnn_status clcnn_array_to_float32(clcnn_context *ctx, clcnn_array *array);

/* Reads an IDX file (gzip-compressed or raw), e.g. Fashion-MNIST's
 * t10k-images-idx3-ubyte.gz. Images come back as uint8 of shape (N, H, W),
 * labels as uint8 of shape (N). */
CLCNN_API clcnn_status clcnn_idx_read(clcnn_context *ctx, const char *path, clcnn_array *out);

/* ---- networks ------------------------------------------------------------- */

/* Parses a network file (see README.md). Errors name the file and line. */
CLCNN_API clcnn_status clcnn_net_from_file(clcnn_context *ctx, const char *path, clcnn_net **out);
/* The same from text in memory; source_name is used in error messages. */
CLCNN_API clcnn_status clcnn_net_from_string(clcnn_context *ctx, const char *text,
                                             const char *source_name, clcnn_net **out);
CLCNN_API void clcnn_net_destroy(clcnn_net *net);

/* ONNX (opsets 1 to 17, float32, NCHW, the batch free or fixed): the graph
 * mapped onto clcnn's layers, every tensor set from the file's initializers.
 * An op or attribute clcnn cannot compute exactly is refused
 * (CLCNN_ERROR_UNSUPPORTED) naming the node; a malformed file is
 * CLCNN_ERROR_FORMAT. docs/onnx.md lists the mapping. */
CLCNN_API clcnn_status clcnn_net_from_onnx(clcnn_context *ctx, const char *path, clcnn_net **out);
/* Writes the network and its tensors as an ONNX model (opset 13) that
 * clcnn_net_from_onnx reads back into the same network. */
CLCNN_API clcnn_status clcnn_net_save_onnx(clcnn_net *net, const char *path);

typedef struct clcnn_layer_info {
    const char *name; /* conv1, relu2, ... or the layer's name= */
    const char *type; /* input, conv, maxpool, ... */
    int ndim;         /* 3 for (C, H, W), 1 for a vector */
    int shape[3];     /* per image: C, H, W, or units in shape[0] */
    int64_t weight_count;
    int64_t bias_count;
    int weight_ndim; /* 4 for conv (K, C, R, S), 2 for dense (out, in), else 0 */
    int64_t weight_shape[4];
    int input_count;   /* layers it reads: 0 for the input, 1 for most, more for add/concat */
    const int *inputs; /* their indices, all below this layer's */
} clcnn_layer_info;

CLCNN_API int clcnn_net_layer_count(const clcnn_net *net);
CLCNN_API clcnn_status clcnn_net_layer_info(const clcnn_net *net, int index, clcnn_layer_info *out);
CLCNN_API int64_t clcnn_net_parameter_count(const clcnn_net *net);
/* The network file text the network was made from. */
CLCNN_API const char *clcnn_net_text(const clcnn_net *net);
/* Number of floats of one image at the input and at the output. */
CLCNN_API int64_t clcnn_net_input_size(const clcnn_net *net);
CLCNN_API int64_t clcnn_net_output_size(const clcnn_net *net);

/* Writes the per-layer summary table (name, type, output shape, parameters, total). */
CLCNN_API clcnn_status clcnn_net_summary(const clcnn_net *net, char *buf, size_t size);

/* The named 3x3 filters a conv layer takes as filter=NAME (identity,
 * prewitt_v, prewitt_h, sobel_v, sobel_h, laplacian_4, laplacian_8, sharpen,
 * box_blur, gaussian_blur): the name of filter index, or NULL past the last. */
CLCNN_API const char *clcnn_filter_name(int index);

/* He initialisation (normal, std sqrt(2/fan_in)) for layers followed by relu or
 * leaky, Xavier (uniform, limit sqrt(6/(fan_in+fan_out))) otherwise; biases 0.
 * A conv layer with filter=NAME gets its named filter on every (filter,
 * channel) pair instead. */
CLCNN_API clcnn_status clcnn_net_init_weights(clcnn_net *net, uint64_t seed);

/* Loads <layer>.weight.npy and <layer>.bias.npy of every layer with parameters. */
CLCNN_API clcnn_status clcnn_net_load_weights(clcnn_net *net, const char *dir);
/* Writes them. */
CLCNN_API clcnn_status clcnn_net_save_weights(clcnn_net *net, const char *dir);

/* Sets or reads a layer's parameter ("weight" or "bias"): count floats in
 * PyTorch's layout (conv: K, C, R, S; dense: out, in). The same as
 * clcnn_net_set_tensor / get_tensor of "<layer>.<which>". */
CLCNN_API clcnn_status clcnn_net_set_parameter(clcnn_net *net, const char *layer, const char *which,
                                               const float *values, int64_t count);
CLCNN_API clcnn_status clcnn_net_get_parameter(clcnn_net *net, const char *layer, const char *which,
                                               float *values, int64_t count);

/* ---- named tensors: one table for weights directories, model files, gradients ---- */

typedef enum clcnn_tensor_kind {
    CLCNN_TENSOR_PARAMETER = 0, /* trained by the optimizer */
    CLCNN_TENSOR_STATE,         /* not trained (running statistics), saved with the model */
} clcnn_tensor_kind;

typedef struct clcnn_tensor_info {
    const char *name;  /* PyTorch's: "conv1.weight", "bn1.running_mean" */
    const char *layer; /* the layer it belongs to */
    clcnn_tensor_kind kind;
    int ndim;
    int64_t shape[4];
    int64_t count;
} clcnn_tensor_info;

/* Tensors in layer order, each layer's in the order PyTorch lists them. */
CLCNN_API int clcnn_net_tensor_count(const clcnn_net *net);
CLCNN_API clcnn_status clcnn_net_tensor_info(const clcnn_net *net, int index,
                                             clcnn_tensor_info *out);
/* count must equal the tensor's size. */
CLCNN_API clcnn_status clcnn_net_set_tensor(clcnn_net *net, const char *name, const float *values,
                                            int64_t count);
CLCNN_API clcnn_status clcnn_net_get_tensor(clcnn_net *net, const char *name, float *values,
                                            int64_t count);

/* Train or eval mode: batch statistics and dropout in training, running
 * statistics and no dropout in evaluation (PyTorch's module.train()/eval()).
 * It is a property of a pass: the trainer's steps run in train mode and its
 * evaluation in eval mode. clcnn_net_forward and clcnn_net_backward run in
 * the mode set here; until one is set, forward runs in eval mode (inference)
 * and backward in train mode (what a training step computes). */
typedef enum clcnn_mode { CLCNN_MODE_EVAL = 0, CLCNN_MODE_TRAIN = 1 } clcnn_mode;
CLCNN_API clcnn_status clcnn_net_set_mode(clcnn_net *net, clcnn_mode mode);

/* Freezing, for transfer learning: a frozen layer's parameters get no
 * gradient (a trainer keeps no optimizer state for them and leaves them
 * as they are) and the layer runs as in eval mode in every pass (a
 * batchnorm normalises with its running statistics and does not update
 * them; dropout keeps everything); backward stops below the lowest layer
 * that still needs a gradient. A trainer is made for the frozen set of its
 * creation: a step after the set changed is refused. Layer names as in the
 * network; freezing a layer without parameters only changes its mode. */
CLCNN_API clcnn_status clcnn_net_freeze(clcnn_net *net, const char *layer, int frozen);
/* Freezes every layer from the first up to and including layer (network
 * order) and unfreezes the ones after it. */
CLCNN_API clcnn_status clcnn_net_freeze_until(clcnn_net *net, const char *layer);
/* 1 when the layer named layer is frozen, 0 when not or there is none. */
CLCNN_API int clcnn_net_is_frozen(const clcnn_net *net, const char *layer);

/* Where the random draws of train-mode passes start (dropout masks): the
 * same seed gives the same masks. The trainer sets it from its seed and
 * step before each step, so a resumed run draws what the uninterrupted one
 * did. */
CLCNN_API clcnn_status clcnn_net_set_random_seed(clcnn_net *net, uint64_t seed);

/* Called after each layer (index >= 1) of a forward pass with that layer's
 * output for images first .. first + count - 1: count * layer size floats.
 * Within one chunk of images the layers come in order. */
typedef clcnn_status (*clcnn_trace_fn)(void *user, int layer_index, const float *values,
                                       int64_t first, int64_t count);

/* Runs batch images (batch * input size floats, NCHW) through the network
 * and writes batch * output size floats. In eval mode the images run in
 * chunks of as many as keep every layer's output within
 * CLCNN_FORWARD_CHUNK_FLOATS floats (and within the device's largest
 * buffer); in train mode the batch is one chunk, since batch statistics
 * (batchnorm) are over all of it. trace may be NULL. On a device that
 * shares the host's memory (CPU devices) the kernels read input and write
 * output where they are, during the call only (CLCNN_ZERO_COPY=0: copies);
 * input is never written, and may be output itself. */
#define CLCNN_FORWARD_CHUNK_FLOATS ((int64_t)1 << 24)
CLCNN_API clcnn_status clcnn_net_forward(clcnn_net *net, const float *input, int64_t batch,
                                         float *output, clcnn_trace_fn trace, void *trace_user);

/* Times candidate kernel configurations for the forward, backward-data and
 * backward-weights of every convolution and dense layer of net at this batch
 * size on ctx's device, keeps the fastest in a tuning file per device in the
 * cache directory (which later contexts on the device read), and writes a
 * line per layer and operation into report. Where autotuning (above) tried
 * a few configurations per shape, this tries 30 to 36. */
CLCNN_API clcnn_status clcnn_tune(clcnn_net *net, int batch, char *report, size_t size);

/* ---- gradients -------------------------------------------------------------------------- */

typedef enum clcnn_loss {
    CLCNN_LOSS_AUTO = 0,             /* from the last layer: softmax -> cross-entropy, sigmoid
                                        with one unit -> binary cross-entropy, else MSE */
    CLCNN_LOSS_CROSS_ENTROPY,        /* softmax cross-entropy: on the softmax's input when the
                                        net ends in softmax, else on the last output as logits */
    CLCNN_LOSS_BINARY_CROSS_ENTROPY, /* on the sigmoid's input when the net ends in sigmoid,
                                        else on the last output as a logit; one unit */
    CLCNN_LOSS_MSE,                  /* mean over every element of the last output */
} clcnn_loss;

/* Chooses the loss; fails (naming the reason) when it cannot fit the network. */
CLCNN_API clcnn_status clcnn_net_set_loss(clcnn_net *net, clcnn_loss loss);
CLCNN_API clcnn_loss clcnn_net_loss(const clcnn_net *net);
CLCNN_API const char *clcnn_loss_name(clcnn_loss loss);

/* One forward and backward pass over batch images with the network's loss,
 * the mean over the batch. Targets: for cross-entropy, labels (batch class
 * indices); for binary cross-entropy, targets (batch values in [0, 1]); for
 * MSE, targets (batch * output size values), or labels, taken as one-hot.
 * Unused pointers may be NULL. Gradients stay in the network until the next
 * pass; *loss gets the mean loss. */
CLCNN_API clcnn_status clcnn_net_backward(clcnn_net *net, const float *input, int64_t batch,
                                          const int32_t *labels, const float *targets,
                                          double *loss);

/* A layer's parameter gradient ("weight" or "bias"), or the gradient of the
 * input (layer "input", which "input"): batch * input size floats. A frozen
 * layer's parameters have none (an error). */
CLCNN_API clcnn_status clcnn_net_get_gradient(clcnn_net *net, const char *layer, const char *which,
                                              float *values, int64_t count);
/* The gradient of a parameter tensor by name ("conv1.weight"), or of the
 * input ("input"): batch * input size floats. */
CLCNN_API clcnn_status clcnn_net_get_tensor_gradient(clcnn_net *net, const char *name,
                                                     float *values, int64_t count);

/* ---- data sets ------------------------------------------------------------------------- */

#define CLCNN_CLASS_NAME_SIZE 32 /* bytes of a class name with its NUL: names up to 31 bytes */

/* Images as float32 (count, channels, height, width) and int32 labels. */
typedef struct clcnn_dataset {
    int64_t count;
    int channels, height, width;
    int classes; /* what the format defines (CIFAR: 10 or 100; image folders: the folder
                    count), else 1 + the largest label */
    float *images;
    int32_t *labels;
    /* classes names (CIFAR's name files, image folders' folder names), or NULL
     * when the files name none (IDX, CIFAR without its name file) */
    char (*class_names)[CLCNN_CLASS_NAME_SIZE];
} clcnn_dataset;

/* The two halves of a data set directory. */
typedef enum clcnn_split { CLCNN_SPLIT_TRAIN = 0, CLCNN_SPLIT_TEST = 1 } clcnn_split;

typedef enum clcnn_data_format {
    CLCNN_DATA_IDX = 0,  /* MNIST: train-* and t10k-* IDX files */
    CLCNN_DATA_CIFAR10,  /* data_batch_1.bin ... data_batch_5.bin, test_batch.bin */
    CLCNN_DATA_CIFAR100, /* train.bin, test.bin */
    CLCNN_DATA_FOLDERS,  /* train/<class>/<image>, test/<class>/<image> */
} clcnn_data_format;

/* "IDX", "CIFAR-10", "CIFAR-100", "image folders". */
CLCNN_API const char *clcnn_data_format_name(clcnn_data_format format);

/* Which format a directory holds, from the files in it, in this order:
 * IDX (train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz]),
 * CIFAR-10 (data_batch_1.bin or test_batch.bin), CIFAR-100 (train.bin or
 * test.bin), image folders (a train/ or test/ directory). */
CLCNN_API clcnn_status clcnn_dataset_detect(clcnn_context *ctx, const char *dir,
                                            clcnn_data_format *out);

/* Reads one split of whatever format dir holds (clcnn_dataset_detect).
 * Pixels are scaled to [0, 1]. */
CLCNN_API clcnn_status clcnn_dataset_load(clcnn_context *ctx, const char *dir, clcnn_split split,
                                          clcnn_dataset *out);

/* Reads an MNIST-format directory: <prefix>-images-idx3-ubyte and
 * <prefix>-labels-idx1-ubyte, each gzip-compressed (.gz) or raw; prefix is
 * "train" or "t10k". Pixels are scaled to [0, 1]. */
CLCNN_API clcnn_status clcnn_dataset_load_idx(clcnn_context *ctx, const char *dir,
                                              const char *prefix, clcnn_dataset *out);

/* Reads a CIFAR binary directory: 3 x 32 x 32 images. CIFAR-10's training
 * split is data_batch_1.bin, data_batch_2.bin, ... (as many as there are,
 * from 1 on), its test split test_batch.bin, each a run of 3073-byte records
 * (a label byte, then the red, green and blue planes of 1024 bytes);
 * class names come from batches.meta.txt when it is there. CIFAR-100's are
 * train.bin and test.bin of 3074-byte records (a coarse and a fine label
 * byte, then the planes); the fine label is the class, and the names come
 * from fine_label_names.txt when it is there (one name per line). */
CLCNN_API clcnn_status clcnn_dataset_load_cifar(clcnn_context *ctx, const char *dir,
                                                clcnn_split split, clcnn_dataset *out);

/* Reads image folders: dir/train/<class>/<image> or dir/test/<class>/<image>,
 * images being .png, .jpg, .jpeg, .pgm or .ppm files (other files are
 * skipped). The classes are the folder names in sorted (byte) order, the
 * same for train/ and test/ (when both are there); images are taken in
 * sorted order within each class. Every image of the set (train and test)
 * must have one size. The set has 3 channels when any of its images has
 * colour, grey images then getting their grey level in all three, and 1
 * otherwise; an alpha channel is dropped. */
CLCNN_API clcnn_status clcnn_dataset_load_folders(clcnn_context *ctx, const char *dir,
                                                  clcnn_split split, clcnn_dataset *out);

/* x = (x - mean) / std over every pixel. */
CLCNN_API void clcnn_dataset_normalize(clcnn_dataset *data, float mean, float std);
/* The mean and standard deviation of every pixel of the set. */
CLCNN_API void clcnn_dataset_statistics(const clcnn_dataset *data, float *mean, float *std);
/* x = (x - mean[c]) / std[c] for the pixels of channel c (data->channels values each). */
CLCNN_API void clcnn_dataset_normalize_channels(clcnn_dataset *data, const float *mean,
                                                const float *std);
/* The mean and standard deviation of each channel over the set (data->channels
 * values each); for one channel the same as clcnn_dataset_statistics. */
CLCNN_API void clcnn_dataset_channel_statistics(const clcnn_dataset *data, float *mean, float *std);
/* The first count images (a view: do not free it). */
CLCNN_API clcnn_dataset clcnn_dataset_head(const clcnn_dataset *data, int64_t count);
CLCNN_API void clcnn_dataset_free(clcnn_dataset *data);

/* ---- training ------------------------------------------------------------------------------ */

typedef enum clcnn_optimizer { CLCNN_SGD = 0, CLCNN_ADAM = 1 } clcnn_optimizer;
typedef enum clcnn_schedule {
    CLCNN_SCHEDULE_CONSTANT = 0,
    CLCNN_SCHEDULE_STEP,   /* lr * decay^(epoch / step_epochs) */
    CLCNN_SCHEDULE_COSINE, /* lr * (1 + cos(pi * epoch / epochs)) / 2, per epoch */
} clcnn_schedule;

typedef struct clcnn_train_config {
    int epochs;
    int batch_size;
    clcnn_optimizer optimizer;
    /* double, as PyTorch's Python floats: 1 - beta2 of a float 0.999 is not
     * PyTorch's 1 - 0.999 */
    double learning_rate, momentum, weight_decay;
    double beta1, beta2, epsilon; /* Adam */
    clcnn_schedule schedule;
    double decay;    /* STEP: factor */
    int step_epochs; /* STEP: every this many epochs */
    uint64_t seed;   /* weights (when initialised), shuffling and augmentation */
    /* Augmentation of the training images, on the host as each batch is
     * gathered, in this order: a rotation by an angle uniform in
     * [-augment_rotate_degrees, +augment_rotate_degrees] about the image's
     * centre (bilinear, 0 outside the image); a crop of the image's own size
     * at a uniform position in the image padded with augment_crop_pad zeros
     * on every side; a horizontal flip with probability 1/2 when augment_flip.
     * Zero is the value of the data as given to the trainer: after
     * normalisation, the training set's mean. The draws of an image depend
     * only on (seed, epoch, the image's index in the data set), so a resumed
     * run and every shard of a sharded one draw what one uninterrupted
     * process does. All 0: no augmentation. */
    int augment_crop_pad;          /* >= 0 pixels */
    int augment_flip;              /* 0 or 1 */
    double augment_rotate_degrees; /* in [0, 180] */
} clcnn_train_config;

/* SGD, lr 0.01, momentum 0.9, no weight decay, batch 64, 10 epochs, Adam's
 * betas 0.9/0.999 and epsilon 1e-8, constant schedule, seed 1, no
 * augmentation. */
CLCNN_API void clcnn_train_config_defaults(clcnn_train_config *config);

typedef struct clcnn_trainer clcnn_trainer;

/* A trainer for net (which it uses, not owns). Allocates every buffer the
 * training needs up front. */
CLCNN_API clcnn_status clcnn_trainer_create(clcnn_net *net, const clcnn_train_config *config,
                                            clcnn_trainer **out);
CLCNN_API void clcnn_trainer_destroy(clcnn_trainer *trainer);
CLCNN_API const clcnn_train_config *clcnn_trainer_config(const clcnn_trainer *trainer);
/* Epochs completed so far (after a resume, those of the checkpoint too). */
CLCNN_API int clcnn_trainer_epochs_done(const clcnn_trainer *trainer);
/* Changes the total number of epochs (to continue a resumed run further). */
CLCNN_API clcnn_status clcnn_trainer_set_epochs(clcnn_trainer *trainer, int epochs);
/* Changes the settings a resumed run may change without invalidating its
 * state: the learning rate, momentum, weight decay, schedule, decay and step
 * epochs, and the epochs (from config; checked as clcnn_trainer_create does).
 * Any other field of config that differs from the trainer's (optimizer,
 * batch size, Adam's constants, seed, augmentation) is an error naming it,
 * and then nothing changes. */
CLCNN_API clcnn_status clcnn_trainer_update_config(clcnn_trainer *trainer,
                                                   const clcnn_train_config *config);

typedef struct clcnn_progress {
    int epoch, epochs;        /* 1-based */
    int64_t batch, batches;   /* 1-based, within the epoch */
    double loss, accuracy;    /* running means over the epoch so far */
    double images_per_second; /* over the epoch so far */
    double eta_seconds;       /* left in this epoch, at that rate */
    double learning_rate;
} clcnn_progress;
/* Called after every batch of an epoch. Returns 0 to go on; anything else
 * stops the epoch after that batch. */
typedef int (*clcnn_progress_fn)(void *user, const clcnn_progress *progress);

/* One epoch over data, shuffled from the trainer's generator. progress
 * (may be NULL) is called after every batch. When it asks to stop, the
 * epoch returns CLCNN_STOPPED with *loss and *accuracy over the batches
 * done; their updates stay in the network, but the epoch does not count as
 * done (clcnn_trainer_epochs_done), and the next call starts a new epoch
 * with a new shuffle. */
CLCNN_API clcnn_status clcnn_trainer_epoch(clcnn_trainer *trainer, const clcnn_dataset *data,
                                           clcnn_progress_fn progress, void *user, double *loss,
                                           double *accuracy);

/* One optimizer step on a batch the caller gathered, for training loops of
 * one's own: count images (1 .. batch_size; count * input size floats,
 * NCHW, normalised as for training) and their labels. Forward, loss,
 * backward and the update at the learning rate the schedule gives for the
 * current epoch (clcnn_trainer_epochs_done), in train mode; no shuffling,
 * augmentation or epoch counting. It counts as an optimizer step as an
 * epoch's do (Adam's bias correction, dropout's draws). A gradient hook is
 * called as in an epoch, every rank passing count images (global_images =
 * count * world size). *loss (may be NULL) gets the batch's mean loss,
 * *correct (may be NULL) how many images the network classified right. */
CLCNN_API clcnn_status clcnn_trainer_step(clcnn_trainer *trainer, const float *images,
                                          const int32_t *labels, int64_t count, double *loss,
                                          int64_t *correct);

/* Loss and accuracy of net on data; confusion (classes x classes, row = true
 * class) may be NULL. */
CLCNN_API clcnn_status clcnn_net_evaluate(clcnn_net *net, const clcnn_dataset *data, double *loss,
                                          double *accuracy, int64_t *confusion);

/* ---- data-parallel training ------------------------------------------------------------------ *
 *
 * world_size processes (ranks), each with its own replica of the network and
 * its own trainer, train one model together: each computes the gradient of
 * its share of a batch, a gradient hook combines them (e.g. an MPI allreduce;
 * the library itself knows no transport), and every rank applies the same
 * update. The ranks must start alike: the same network text, the same initial
 * weights, the same configuration (above all seed and batch_size) and the
 * same data set (the same images in the same order) on every rank.
 *
 * Batches: batch_size is the batch of ONE rank. world_size ranks train as one
 * process would with batch_size * world_size (the global batch): every rank
 * shuffles the whole data set with the same generator and cuts it into
 * global batches of batch_size * world_size images, the last one shorter
 * when the count does not divide. Of a global batch of n images, rank r takes
 * the contiguous images n * r / world_size .. n * (r + 1) / world_size - 1
 * (integer division): batch_size each of a full batch and an even split of
 * the last, where a rank gets none when n < world_size. Every rank takes the
 * same number of steps, ceil(count / (batch_size * world_size)) per epoch,
 * and a rank with no images in a step still takes part (its gradient is zero).
 */

/* Makes trainer rank `rank` (0-based) of world_size (default 0 of 1: the
 * whole batch). Set before an epoch; world_size * batch_size must fit an int.
 * Without a gradient hook the ranks do not exchange anything: each then
 * trains on its own shares alone. Model files do not keep the shard or the
 * hook: set them again after clcnn_model_load. */
CLCNN_API clcnn_status clcnn_trainer_set_shard(clcnn_trainer *trainer, int rank, int world_size);

/* What a gradient hook is told about its step. All but rank and the
 * tallies are the same on every rank. */
typedef struct clcnn_gradient_step {
    int64_t step;           /* optimizer steps of the trainer including this one (1-based) */
    int epoch;              /* 1-based */
    int64_t batch, batches; /* 1-based, within the epoch */
    int rank, world_size;
    int64_t global_images; /* images of this step's global batch, over all ranks */
    /* This rank's tallies of the step: the trainer adds them to the epoch's
     * running loss and accuracy (progress and clcnn_trainer_epoch's results)
     * after the hook returns. A hook may replace all three with their sums
     * over the ranks (e.g. one more allreduce) so that every rank reports the
     * global loss and accuracy of the epoch, and a loss that stops being
     * finite on one rank stops every rank at the same step. */
    int64_t images;  /* this rank's images in the step; 0 when its share is empty */
    double loss_sum; /* the sum of their losses */
    int64_t correct; /* how many of them the network classified right */
} clcnn_gradient_step;

/* Called once per optimizer step, on every rank, after the backward pass and
 * before the update, with the gradient on the host (the trainer downloads it
 * from the device and uploads what the hook leaves; only a trainer with a
 * hook pays for the copies and the extra wait).
 *
 * gradients: count floats in the network's flat parameter layout (every
 * layer's weight then bias, in layer order, each at an offset that is a
 * multiple of 256 floats with zeros between), the same on every rank built
 * from the same network text; count >= clcnn_net_parameter_count(net). The
 * buffer belongs to the trainer and is valid during the call only.
 *
 * On entry it holds this rank's CONTRIBUTION, already scaled by the trainer:
 * the gradient of (the sum of the losses of this rank's step->images images)
 * / step->global_images, i.e. the rank's own mean gradient times images /
 * global_images; zeros when the rank has no images.
 * On return it must hold the gradient to apply: the element-wise SUM of every
 * rank's contribution (MPI_Allreduce(MPI_IN_PLACE, gradients, count,
 * MPI_FLOAT, MPI_SUM, comm)). That is the mean gradient over the global batch,
 * the gradient one process with the whole global batch computes, up to float
 * rounding. It must be bit for bit the same on every rank, else the replicas
 * drift apart. Weight decay, momentum and Adam are applied by the optimizer
 * afterwards, to the summed gradient, as in one process.
 * With world_size 1 the hook receives the batch mean unscaled, so a hook that
 * changes nothing leaves training bit for bit as without one.
 *
 * After the hook, a loss_sum that is not finite stops the epoch before the
 * update. Any status other than CLCNN_OK stops the epoch with that status.
 * With MPI, the other ranks are then left waiting in their next collective:
 * abort them (MPI_Abort) rather than return alone. */
typedef clcnn_status (*clcnn_gradient_fn)(void *user, float *gradients, int64_t count,
                                          clcnn_gradient_step *step);

/* Sets the hook (fn NULL removes it); user is passed through. */
CLCNN_API clcnn_status clcnn_trainer_set_gradient_hook(clcnn_trainer *trainer, clcnn_gradient_fn fn,
                                                       void *user);

/* Overlap: a hook told about gradients as soon as backward has produced
 * them, so that their exchange can start while backward computes the rest
 * (non-blocking MPI on buckets, as PyTorch DDP does).
 *
 * The flat buffer is cut into buckets at layer boundaries: walking the
 * layers from the last to the first (the order backward produces their
 * gradients), a bucket closes at the first layer that brings it to at least
 * bucket_floats floats; the last bucket ends at the lowest offset of a
 * layer being trained. Frozen layers are in no bucket when they can be
 * left out (their gradients stay zeros). Buckets depend only on the
 * network, its frozen layers and bucket_floats, so every rank has the same
 * ones.
 * During every step, on every rank, the ready hook is called once per bucket,
 * highest offsets first, with gradients[first .. first + count - 1] final on
 * the host and already scaled as the gradient hook's contribution (zeros on
 * a rank without images). The hook may start an exchange of that range
 * (the whole buffer is the trainer's until the step's gradient hook
 * returns); on the reference device it runs between layers of backward,
 * on a device while the device computes the layers below.
 * The gradient hook is still called after the last bucket, with the same
 * buffer: it must finish every exchange and leave the sum, as above.
 * Between buckets the hook is also called with count 0 (no new
 * gradients): on the reference device after each layer of backward, on a
 * device every 100 microseconds while the trainer waits for the next
 * bucket's read; a chance to advance the exchanges under way (MPI moves
 * non-blocking transfers on only inside MPI calls).
 * step carries step, epoch, batch, batches, rank, world_size,
 * global_images and images; the tallies are not known yet.
 * A status other than CLCNN_OK stops the epoch with that status.
 * fn NULL removes it (then the whole buffer goes to the gradient hook after
 * backward). clcnn_trainer_step does not use buckets: its gradient hook gets
 * the whole buffer without ready hook calls before it. */
typedef clcnn_status (*clcnn_gradient_ready_fn)(void *user, float *gradients, int64_t first,
                                                int64_t count, const clcnn_gradient_step *step);
CLCNN_API clcnn_status clcnn_trainer_set_gradient_ready_hook(clcnn_trainer *trainer,
                                                             clcnn_gradient_ready_fn fn, void *user,
                                                             int64_t bucket_floats);
/* The buckets of the ready hook (as described above): their number, and
 * when first/count are not NULL (room for that many) each bucket's range,
 * in the order the hook gets them. 0 without a ready hook. */
CLCNN_API int clcnn_trainer_gradient_buckets(const clcnn_trainer *trainer, int64_t *first,
                                             int64_t *count);

/* Synchronised batch statistics (PyTorch's SyncBatchNorm): with this hook,
 * world_size ranks train a network with batchnorm as one process with the
 * global batch does. Without it each rank's batchnorm normalises with the
 * statistics of its own images (PyTorch DDP's plain BatchNorm).
 *
 * In every step, on every rank, each batchnorm layer calls the hook once in
 * forward (layers in order) and once in backward (in reverse order), in the
 * same order on every rank, a rank with no images in the step included.
 * mine holds this rank's count doubles (its element count and per-channel
 * moments, and in backward the gradient's sums); count is the same on every
 * rank for a given call. On return all[r * count + i] must hold rank r's
 * mine[i] for every rank r < world_size (MPI_Allgather). The library
 * combines the ranks' values itself, in rank order, so every rank computes
 * the same statistics bit for bit and the running statistics stay identical
 * on every rank. The weight and bias gradients each rank leaves for the
 * gradient hook are its own contributions, like every other parameter's.
 * The buffers belong to the trainer and are valid during the call only.
 * Not called when world_size is 1. A status other than CLCNN_OK stops the
 * step with that status. fn NULL removes it. */
typedef clcnn_status (*clcnn_gather_fn)(void *user, const double *mine, double *all, int64_t count);
CLCNN_API clcnn_status clcnn_trainer_set_batch_statistics_hook(clcnn_trainer *trainer,
                                                               clcnn_gather_fn fn, void *user);

/* ---- model files ---------------------------------------------------------------------------- */

/* A model file holds the network text, every parameter, the input
 * normalisation, the class names and, when a trainer is given, its whole
 * state (epochs, optimizer state, generator, augmentation) so training can
 * resume exactly.
 * Written to a temporary file, synced and renamed: a crash never loses the
 * previous model. */

/* What a model says about its inputs and outputs. Arrays that
 * clcnn_model_load or the setters below put here belong to the info: free
 * them with clcnn_model_info_free. clcnn_model_save only reads the info, so
 * for saving the fields may also point at the caller's own arrays. Start
 * from an info of zeros ({0} or clcnn_model_info_init): no normalisation,
 * no class names. */
typedef struct clcnn_model_info {
    /* The normalisation of [0, 1] pixels, x = (x - mean[c]) / std[c]:
     * channels 0 for none (mean 0, std 1), 1 for one mean and standard
     * deviation for every channel, or the network's input channels, each
     * its own. */
    int channels;
    float *mean, *std; /* channels values each */
    /* Names of the network's classes (outputs), as many as known (any
     * number), each NUL-terminated, of any length, without line breaks. */
    int class_count;
    char **class_names;
} clcnn_model_info;

CLCNN_API void clcnn_model_info_init(clcnn_model_info *info);
/* Frees the arrays and leaves an empty info. */
CLCNN_API void clcnn_model_info_free(clcnn_model_info *info);
/* Copies channels means and standard deviations into info (0: none),
 * freeing the arrays it had. */
CLCNN_API clcnn_status clcnn_model_info_set_normalization(clcnn_model_info *info, int channels,
                                                          const float *mean, const float *std);
/* Copies count class names into info (0: none), freeing the names it had. */
CLCNN_API clcnn_status clcnn_model_info_set_class_names(clcnn_model_info *info, int count,
                                                        const char *const *names);
/* The mean and standard deviation of each of channels input channels
 * (as described above) into mean[] and std[]. */
CLCNN_API void clcnn_model_info_normalization(const clcnn_model_info *info, int channels,
                                              float *mean, float *std);
/* Normalises count images of channels planes of pixels floats each in
 * place, as the model's training data was: x = (x - mean[c]) / std[c]. */
CLCNN_API void clcnn_model_info_normalize(const clcnn_model_info *info, float *images,
                                          int64_t count, int channels, int64_t pixels);

/* info may be NULL (no normalisation, no class names). The normalisation
 * must have 0, 1 or the network's input channels, finite means and finite
 * positive standard deviations. */
CLCNN_API clcnn_status clcnn_model_save(clcnn_net *net, const clcnn_trainer *trainer,
                                        const clcnn_model_info *info, const char *path);
/* Loads a model onto ctx's device. *trainer (if trainer is not NULL) gets
 * the saved training state, or NULL when the file has none; info (may be
 * NULL) gets the normalisation and class names, to be freed with
 * clcnn_model_info_free. Every model file version loads. */
CLCNN_API clcnn_status clcnn_model_load(clcnn_context *ctx, const char *path, clcnn_net **net,
                                        clcnn_trainer **trainer, clcnn_model_info *info);

/* Loads a network from whatever file path holds, told apart by its
 * contents: a model file (with its parameters and info; its training state
 * is not kept) or a network file (text; parameters zero until
 * clcnn_net_init_weights or clcnn_net_load_weights). *has_parameters (may be
 * NULL) says whether the file gave the parameters; info (may be NULL) gets
 * the model's normalisation and class names, empty for a network file.
 * Bindings load through this one call, so every format it learns reaches
 * them. */
CLCNN_API clcnn_status clcnn_net_load(clcnn_context *ctx, const char *path, clcnn_net **net,
                                      clcnn_model_info *info, int *has_parameters);

#ifdef __cplusplus
}
#endif

#endif
