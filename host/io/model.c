/* Model files: a network, its parameters, the input normalisation and class
 * names, and optionally the whole training state, in one checksummed file.
 *
 * Format, versions 1 to 3. Every integer and float is little-endian and written
 * field by field (never a struct), so the file does not depend on the
 * compiler, the host or the library's internal memory layout.
 *
 *   offset 0   8 bytes   magic "CLCNNMDL"
 *   offset 8   u32       format version (1, 2 or 3)
 *   offset 12  sections, one after another, each:
 *                4 bytes   tag
 *                u64       payload length in bytes
 *                payload
 *   last 4     u32       CRC-32 (zlib's crc32) of every byte before it
 *
 * Sections (each at most once; any order; NETW, INFO and PARA required):
 *
 *   NETW  the network file text, as given (no terminating NUL)
 *   INFO  versions 1 and 2: f32 input mean, f32 input std, u32 class
 *         count, then per class: u32 length (<= 31), that many bytes of name.
 *           Version 1: at most 16 classes.
 *           Version 2: at most 1000 classes, then u32 channel count (<= 4)
 *           and per channel f32 mean, f32 std, which replace the input mean
 *           and std for those channels (channels past them keep those). A
 *           version 2 INFO that ends after the class names (written before
 *           per-channel statistics) has none.
 *         Version 3: u32 channel count, per channel f32 mean, f32 std; then
 *           u32 class count, per class u32 length (<= 65535), that many
 *           bytes of name (no NUL, no line break). The counts are limited
 *           only by the section's length.
 *   PARA  u32 tensor count, then per tensor:
 *           version 1: string layer name, string "weight" or "bias";
 *           version 2: string tensor name ("conv1.weight", "bn1.running_mean");
 *           then u64 element count, count x f32 in PyTorch's layout.
 *           Version 2 holds every named tensor of the network, parameters
 *           and state; version 1 only weights and biases.
 *         (string = u32 length, then that many bytes, no NUL)
 *   TRAN  training state: the configuration field by field
 *           i32 epochs, i32 batch_size, u32 optimizer, f64 learning_rate,
 *           f64 momentum, f64 weight_decay, f64 beta1, f64 beta2,
 *           f64 epsilon, u32 schedule, f64 decay, i32 step_epochs, u64 seed
 *         then i32 epochs_done, i64 step, 4 x u64 shuffle generator state,
 *         u32 tensor count, then per parameter tensor:
 *           its name as in PARA, u64 element count,
 *           count x f32 optimizer state 1, count x f32 state 2
 *         then, from version 2 on, the augmentation: i32 augment_crop_pad,
 *           u32 augment_flip, f64 augment_rotate_degrees (a version 2 TRAN
 *           that ends after the tensors, written before augmentation, has
 *           none). The augmentation's draws are keyed by the seed, the
 *           epoch and the image, so they need no generator state.
 *
 * A file is written in the oldest version that holds everything, so that
 * older builds still read it: version 1 for a network of weights and biases
 * only, one normalisation for every channel, at most 16 classes of at most
 * 31 bytes and no augmentation; version 2 for at most 4 channels of
 * normalisation and 1000 classes of at most 31 bytes; version 3 otherwise.
 * Every version loads. Versions 2 and 3 differ only in INFO.
 *
 * Tensors are stored by name rather than as the flat parameter buffer, which
 * pads every tensor for device alignment: the file stays valid if that
 * padding ever changes.
 *
 * The loader trusts nothing: lengths are checked against the real file size
 * before anything is allocated, the checksum is verified before any section
 * is interpreted, and every error names the file and the byte offset. */
#include "internal.h"
#include "io/onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

enum {
    MODEL_MAGIC_SIZE = 8,
    MODEL_VERSION = 4,              /* the newest this build reads */
    MODEL_PREAMBLE_SIZE = 12,       /* magic and version */
    MODEL_SECTION_HEADER_SIZE = 12, /* tag and length */
    MODEL_CHECKSUM_SIZE = 4,
    MODEL_V1_MAX_CLASSES = 16,
    MODEL_V2_MAX_CLASSES = 1000,
    MODEL_V2_MAX_CHANNELS = 4,
    MODEL_V2_MAX_CLASS_NAME = 31, /* versions 1 and 2 */
    MODEL_MAX_CLASS_NAME = 65535, /* version 3 */
    MODEL_MAX_LAYER_NAME = 63,    /* struct layer keeps 64 bytes with the NUL */
    MODEL_MAX_TENSOR_NAME = 127,  /* named_tensor keeps 128 */
};

static const char model_magic[MODEL_MAGIC_SIZE] = {'C', 'L', 'C', 'N', 'N', 'M', 'D', 'L'};

typedef enum section_kind {
    SECTION_NETWORK,
    SECTION_INFO,
    SECTION_PARAMETERS,
    SECTION_TRAINING,
    SECTION_KIND_COUNT
} section_kind;

static const char section_tags[SECTION_KIND_COUNT][4] = {
    {'N', 'E', 'T', 'W'}, {'I', 'N', 'F', 'O'}, {'P', 'A', 'R', 'A'}, {'T', 'R', 'A', 'N'}};
static const char *const section_names[SECTION_KIND_COUNT] = {"network", "info", "parameters",
                                                              "training state"};

/* ---- writing ---------------------------------------------------------------------------- */

/* A section's payload, built in memory so that its length is known before
 * its header is written. */
typedef struct byte_buffer {
    unsigned char *data;
    size_t length, capacity;
    int out_of_memory;
} byte_buffer;

static void buffer_reserve(byte_buffer *b, size_t more) {
    if (b->out_of_memory)
        return;
    if (more > SIZE_MAX - b->length) {
        b->out_of_memory = 1;
        return;
    }
    size_t needed = b->length + more;
    if (needed <= b->capacity)
        return;
    size_t capacity = b->capacity ? b->capacity : 256;
    while (capacity < needed)
        capacity = capacity > SIZE_MAX / 2 ? needed : capacity * 2;
    unsigned char *bigger = realloc(b->data, capacity);
    if (!bigger) {
        b->out_of_memory = 1;
        return;
    }
    b->data = bigger;
    b->capacity = capacity;
}

static void put_bytes(byte_buffer *b, const void *bytes, size_t n) {
    buffer_reserve(b, n);
    if (b->out_of_memory)
        return;
    if (n > 0)
        memcpy(b->data + b->length, bytes, n);
    b->length += n;
}

static void put_u32(byte_buffer *b, uint32_t value) {
    unsigned char bytes[4];
    for (int i = 0; i < 4; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    put_bytes(b, bytes, 4);
}

static void put_u64(byte_buffer *b, uint64_t value) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(value >> (8 * i));
    put_bytes(b, bytes, 8);
}

static void put_f32(byte_buffer *b, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof(bits));
    put_u32(b, bits);
}

static void put_f64(byte_buffer *b, double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof(bits));
    put_u64(b, bits);
}

static void put_string(byte_buffer *b, const char *text) {
    size_t length = strlen(text);
    put_u32(b, (uint32_t)length);
    put_bytes(b, text, length);
}

static void put_floats(byte_buffer *b, const float *values, int64_t count) {
    buffer_reserve(b, (size_t)count * 4);
    for (int64_t i = 0; i < count && !b->out_of_memory; i++)
        put_f32(b, values[i]);
}

/* Version 1 names a tensor by layer and "weight"/"bias"; version 2 by its full name. */
static void put_tensor_header(byte_buffer *b, const clcnn_net *net, const named_tensor *t,
                              int version) {
    if (version == 1) {
        const char *layer_name = net->layers[t->layer].name;
        put_string(b, layer_name);
        put_string(b, t->name + strlen(layer_name) + 1);
    } else {
        put_string(b, t->name);
    }
    put_u64(b, (uint64_t)t->count);
}

static uint32_t count_tensors(const clcnn_net *net, int parameters_only) {
    uint32_t count = 0;
    for (int i = 0; i < net->tensor_count; i++)
        count += !parameters_only || net->tensors[i].kind == TENSOR_PARAMETER;
    return count;
}

/* The oldest version that holds everything: 1 when every tensor is a
 * layer's weight or bias, the info has one normalisation for every channel
 * and at most 16 classes of at most 31 bytes, and the trainer (if any) does
 * not augment; 2 when the info has at most 4 channels of normalisation and
 * 1000 classes of at most 31 bytes; 4 when the trainer's network has frozen
 * layers; else 3. */
static int format_version_for(const clcnn_net *net, const clcnn_trainer *trainer,
                              const clcnn_model_info *info) {
    for (int i = 0; trainer && i < net->layer_count; i++)
        if (net->frozen[i])
            return 4;
    if (info->channels > MODEL_V2_MAX_CHANNELS || info->class_count > MODEL_V2_MAX_CLASSES)
        return 3;
    for (int i = 0; i < info->class_count; i++)
        if (strlen(info->class_names[i]) > MODEL_V2_MAX_CLASS_NAME)
            return 3;
    for (int i = 0; i < net->tensor_count; i++) {
        const named_tensor *t = &net->tensors[i];
        const char *which = t->name + strlen(net->layers[t->layer].name) + 1;
        if (t->kind != TENSOR_PARAMETER || (strcmp(which, "weight") && strcmp(which, "bias")))
            return 2;
    }
    if (info->channels > 1 || info->class_count > MODEL_V1_MAX_CLASSES)
        return 2;
    if (trainer && augment_enabled(&trainer->config))
        return 2;
    return 1;
}

static void build_network_section(byte_buffer *b, const clcnn_net *net) {
    put_bytes(b, net->text, strlen(net->text));
}

/* Versions 1 and 2 keep one mean and std for every channel: the info's when
 * it has one (or none), else channel 0's, which version 2's per-channel
 * figures then replace. */
static void build_info_section(byte_buffer *b, const clcnn_model_info *info, int version) {
    if (version >= 3) {
        put_u32(b, (uint32_t)info->channels);
        for (int c = 0; c < info->channels; c++) {
            put_f32(b, info->mean[c]);
            put_f32(b, info->std[c]);
        }
        put_u32(b, (uint32_t)info->class_count);
        for (int i = 0; i < info->class_count; i++)
            put_string(b, info->class_names[i]);
        return;
    }
    put_f32(b, info->channels > 0 ? info->mean[0] : 0.0f);
    put_f32(b, info->channels > 0 ? info->std[0] : 1.0f);
    put_u32(b, (uint32_t)info->class_count);
    for (int i = 0; i < info->class_count; i++)
        put_string(b, info->class_names[i]);
    if (version == 1)
        return;
    const int channels = info->channels > 1 ? info->channels : 0;
    put_u32(b, (uint32_t)channels);
    for (int c = 0; c < channels; c++) {
        put_f32(b, info->mean[c]);
        put_f32(b, info->std[c]);
    }
}

static void build_parameters_section(byte_buffer *b, const clcnn_net *net, int version) {
    put_u32(b, count_tensors(net, 0));
    for (int i = 0; i < net->tensor_count; i++) {
        const named_tensor *t = &net->tensors[i];
        put_tensor_header(b, net, t, version);
        put_floats(
            b, (t->kind == TENSOR_PARAMETER ? net->host_parameters : net->host_state) + t->offset,
            t->count);
    }
}

static void build_training_section(byte_buffer *b, const clcnn_trainer *t, int version) {
    const clcnn_train_config *c = &t->config;
    put_u32(b, (uint32_t)c->epochs);
    put_u32(b, (uint32_t)c->batch_size);
    put_u32(b, (uint32_t)c->optimizer);
    put_f64(b, c->learning_rate);
    put_f64(b, c->momentum);
    put_f64(b, c->weight_decay);
    put_f64(b, c->beta1);
    put_f64(b, c->beta2);
    put_f64(b, c->epsilon);
    put_u32(b, (uint32_t)c->schedule);
    put_f64(b, c->decay);
    put_u32(b, (uint32_t)c->step_epochs);
    put_u64(b, c->seed);
    put_u32(b, (uint32_t)t->epochs_done);
    put_u64(b, (uint64_t)t->step);
    for (int i = 0; i < 4; i++)
        put_u64(b, t->shuffle.state[i]);
    const clcnn_net *net = t->net;
    if (version >= 4) {
        /* The frozen layers, which decide which tensors have state. */
        uint32_t frozen = 0;
        for (int i = 0; i < net->layer_count; i++)
            frozen += net->frozen[i];
        put_u32(b, frozen);
        for (int i = 0; i < net->layer_count; i++)
            if (net->frozen[i])
                put_string(b, net->layers[i].name);
    }
    uint32_t with_state = 0;
    for (int i = 0; i < net->tensor_count; i++)
        with_state += t->tensor_state_offset[i] >= 0;
    put_u32(b, with_state);
    for (int i = 0; i < net->tensor_count; i++) {
        const int64_t at = t->tensor_state_offset[i];
        if (at < 0)
            continue;
        const named_tensor *tensor = &net->tensors[i];
        put_tensor_header(b, net, tensor, version);
        put_floats(b, t->host_state1 + at, tensor->count);
        put_floats(b, t->host_state2 + at, tensor->count);
    }
    if (version == 1)
        return;
    put_u32(b, (uint32_t)c->augment_crop_pad);
    put_u32(b, (uint32_t)c->augment_flip);
    put_f64(b, c->augment_rotate_degrees);
}

/* Writes bytes to the file and folds them into the running checksum. */
typedef struct model_writer {
    FILE *file;
    uLong crc;
    int failed;
    int error_number; /* errno of the first failure */
} model_writer;

static void write_raw(model_writer *w, const void *bytes, size_t n) {
    if (w->failed || n == 0)
        return;
    if (fwrite(bytes, 1, n, w->file) != n) {
        w->failed = 1;
        w->error_number = errno;
        return;
    }
    /* zlib's crc32 takes a uInt length: feed it in pieces. */
    const unsigned char *p = bytes;
    while (n > 0) {
        uInt piece = n > (1u << 30) ? (1u << 30) : (uInt)n;
        w->crc = crc32(w->crc, p, piece);
        p += piece;
        n -= piece;
    }
}

static void write_section(model_writer *w, section_kind kind, const byte_buffer *payload) {
    byte_buffer header = {0};
    put_bytes(&header, section_tags[kind], 4);
    put_u64(&header, (uint64_t)payload->length);
    if (header.out_of_memory) {
        w->failed = 1;
        w->error_number = ENOMEM;
    } else {
        write_raw(w, header.data, header.length);
        write_raw(w, payload->data, payload->length);
    }
    free(header.data);
}

/* Builds one section and writes it; returns 0, or -1 when out of memory. */
static int emit_section(model_writer *w, section_kind kind, const clcnn_net *net,
                        const clcnn_trainer *trainer, const clcnn_model_info *info, int version) {
    byte_buffer payload = {0};
    switch (kind) {
    case SECTION_NETWORK:
        build_network_section(&payload, net);
        break;
    case SECTION_INFO:
        build_info_section(&payload, info, version);
        break;
    case SECTION_PARAMETERS:
        build_parameters_section(&payload, net, version);
        break;
    case SECTION_TRAINING:
        build_training_section(&payload, trainer, version);
        break;
    case SECTION_KIND_COUNT:
        break;
    }
    int out_of_memory = payload.out_of_memory;
    if (!out_of_memory)
        write_section(w, kind, &payload);
    free(payload.data);
    return out_of_memory ? -1 : 0;
}

/* After the rename, syncing the directory makes the new name durable too.
 * Best effort: the model itself is already complete on disk either way. */
static void sync_parent_directory(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

/* The test-only stop of CLCNN_TEST_SAVE_STOP (internal.h): stops the process
 * at `point` of the save it names; a SIGKILL then ends it there, a SIGCONT
 * lets the save go on. */
static void save_stop(const clcnn_context *ctx, int point, FILE *partial) {
    if (ctx->save_stop_at != ctx->saves || ctx->save_stop_point != point)
        return;
    if (partial)
        fflush(partial);
    raise(SIGSTOP);
}

static clcnn_status check_info(clcnn_net *net, const clcnn_model_info *info, const char *path) {
    clcnn_context *ctx = net->ctx;
    const int input_channels = net->layers[0].out.c;
    if (info->channels < 0 || info->class_count < 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: negative channel or class count in the model info", path);
    if (info->channels > 1 && info->channels != input_channels)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the normalisation has %d channels but the network takes %d (give "
                         "1 for every channel, or one per channel)",
                         path, info->channels, input_channels);
    if ((info->channels > 0 && (!info->mean || !info->std)) ||
        (info->class_count > 0 && !info->class_names))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the model info has counts but no arrays", path);
    for (int c = 0; c < info->channels; c++)
        if (!isfinite(info->mean[c]) || !isfinite(info->std[c]) || !(info->std[c] > 0.0f))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "%s: channel %d's normalisation (mean %g, std %g) needs a finite "
                             "mean and a finite positive standard deviation",
                             path, c, (double)info->mean[c], (double)info->std[c]);
    for (int i = 0; i < info->class_count; i++) {
        const char *name = info->class_names[i];
        if (!name)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: class name %d is NULL", path,
                             i);
        if (strlen(name) > MODEL_MAX_CLASS_NAME)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "%s: class name %d is %zu bytes long, more than the %d allowed", path,
                             i, strlen(name), MODEL_MAX_CLASS_NAME);
        if (strpbrk(name, "\r\n"))
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "%s: class name %d contains a line break", path, i);
    }
    return CLCNN_OK;
}

void clcnn_model_info_init(clcnn_model_info *info) {
    if (info)
        memset(info, 0, sizeof(*info));
}

void clcnn_model_info_free(clcnn_model_info *info) {
    if (!info)
        return;
    free(info->mean);
    free(info->std);
    for (int i = 0; i < info->class_count && info->class_names; i++)
        free(info->class_names[i]);
    free(info->class_names);
    memset(info, 0, sizeof(*info));
}

clcnn_status clcnn_model_info_set_normalization(clcnn_model_info *info, int channels,
                                                const float *mean, const float *std) {
    if (!info || channels < 0 || (channels > 0 && (!mean || !std)))
        return CLCNN_ERROR_INVALID_ARGUMENT;
    float *new_mean = NULL, *new_std = NULL;
    if (channels > 0) {
        new_mean = malloc(sizeof(float) * (size_t)channels);
        new_std = malloc(sizeof(float) * (size_t)channels);
        if (!new_mean || !new_std) {
            free(new_mean);
            free(new_std);
            return CLCNN_ERROR_OUT_OF_MEMORY;
        }
        memcpy(new_mean, mean, sizeof(float) * (size_t)channels);
        memcpy(new_std, std, sizeof(float) * (size_t)channels);
    }
    free(info->mean);
    free(info->std);
    info->mean = new_mean;
    info->std = new_std;
    info->channels = channels;
    return CLCNN_OK;
}

static void free_names(char **names, int count) {
    for (int i = 0; i < count && names; i++)
        free(names[i]);
    free(names);
}

clcnn_status clcnn_model_info_set_class_names(clcnn_model_info *info, int count,
                                              const char *const *names) {
    if (!info || count < 0 || (count > 0 && !names))
        return CLCNN_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < count; i++)
        if (!names[i])
            return CLCNN_ERROR_INVALID_ARGUMENT;
    char **copy = NULL;
    if (count > 0) {
        copy = calloc((size_t)count, sizeof(*copy));
        if (!copy)
            return CLCNN_ERROR_OUT_OF_MEMORY;
        for (int i = 0; i < count; i++) {
            copy[i] = strdup(names[i]);
            if (!copy[i]) {
                free_names(copy, i);
                return CLCNN_ERROR_OUT_OF_MEMORY;
            }
        }
    }
    free_names(info->class_names, info->class_count);
    info->class_names = copy;
    info->class_count = count;
    return CLCNN_OK;
}

void clcnn_model_info_normalization(const clcnn_model_info *info, int channels, float *mean,
                                    float *std) {
    for (int c = 0; c < channels; c++) {
        if (info->channels == 1 || c < info->channels) {
            const int own = info->channels == 1 ? 0 : c;
            mean[c] = info->mean[own];
            std[c] = info->std[own];
        } else {
            mean[c] = 0.0f;
            std[c] = 1.0f;
        }
    }
}

void clcnn_model_info_normalize(const clcnn_model_info *info, float *images, int64_t count,
                                int channels, int64_t pixels) {
    if (!info || !images)
        return;
    for (int c = 0; c < channels; c++) {
        float mean, std;
        if (info->channels == 1 || c < info->channels) {
            mean = info->mean[info->channels == 1 ? 0 : c];
            std = info->std[info->channels == 1 ? 0 : c];
        } else {
            continue;
        }
        for (int64_t n = 0; n < count; n++) {
            float *plane = images + (n * channels + c) * pixels;
            for (int64_t j = 0; j < pixels; j++)
                plane[j] = (plane[j] - mean) / std;
        }
    }
}

clcnn_status clcnn_model_save(clcnn_net *net, const clcnn_trainer *trainer,
                              const clcnn_model_info *info, const char *path) {
    if (!net || !path)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_model_save: the network and the path are required");
    clcnn_context *ctx = net->ctx;
    if (trainer && trainer->net != net)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s: the trainer belongs to a different network", path);
    clcnn_model_info no_info;
    if (!info) {
        clcnn_model_info_init(&no_info);
        info = &no_info;
    }
    clcnn_status status = check_info(net, info, path);
    if (status != CLCNN_OK)
        return status;

    /* The host copies are what gets written; training may have left the
     * newest values on the device. Syncing a trainer only refreshes its
     * cache, so the const of the public signature still holds for callers. */
    status = net_sync_parameters_to_host(net);
    if (status == CLCNN_OK && trainer)
        status = trainer_sync_state_to_host((clcnn_trainer *)trainer);
    if (status != CLCNN_OK)
        return status;

    /* Written beside the target and renamed over it: a crash leaves either
     * the previous model or the complete new one (and a temporary file,
     * removed here by the next save). */
    remove_stale_temporaries(path);
    size_t temporary_size = strlen(path) + 32;
    char *temporary = malloc(temporary_size);
    if (!temporary)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(temporary, temporary_size, "%s.tmp-%d", path, (int)getpid());

    ctx->saves++;
    model_writer w = {0};
    w.file = fopen(temporary, "wb");
    if (!w.file) {
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: cannot create the temporary file %s: %s", path,
                           temporary, strerror(errno));
        free(temporary);
        return status;
    }
    w.crc = crc32(0L, Z_NULL, 0);

    byte_buffer preamble = {0};
    put_bytes(&preamble, model_magic, MODEL_MAGIC_SIZE);
    const int version = format_version_for(net, trainer, info);
    put_u32(&preamble, (uint32_t)version);
    int out_of_memory = preamble.out_of_memory;
    if (!out_of_memory)
        write_raw(&w, preamble.data, preamble.length);
    free(preamble.data);

    for (int kind = 0; kind < SECTION_KIND_COUNT && !out_of_memory; kind++) {
        if (kind == SECTION_TRAINING && !trainer)
            continue;
        out_of_memory = emit_section(&w, (section_kind)kind, net, trainer, info, version) != 0;
        if (kind == SECTION_NETWORK)
            save_stop(ctx, SAVE_STOP_PARTIAL, w.file);
    }

    if (!out_of_memory) {
        /* The checksum covers everything before it, so it is not itself summed. */
        unsigned char checksum[4];
        uint32_t crc = (uint32_t)w.crc;
        for (int i = 0; i < 4; i++)
            checksum[i] = (unsigned char)(crc >> (8 * i));
        if (!w.failed && fwrite(checksum, 1, 4, w.file) != 4) {
            w.failed = 1;
            w.error_number = errno;
        }
    }

    if (out_of_memory)
        status =
            set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory writing the model", path);
    else if (w.failed)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: write failed: %s", temporary,
                           strerror(w.error_number));
    else if (fflush(w.file) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: write failed: %s", temporary, strerror(errno));
    else if (fsync(fileno(w.file)) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: fsync failed: %s", temporary, strerror(errno));
    if (fclose(w.file) != 0 && status == CLCNN_OK)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: close failed: %s", temporary, strerror(errno));
    if (status == CLCNN_OK)
        save_stop(ctx, SAVE_STOP_WRITTEN, NULL);
    if (status == CLCNN_OK && rename(temporary, path) != 0)
        status = set_error(ctx, CLCNN_ERROR_IO, "%s: cannot rename %s over it: %s", path, temporary,
                           strerror(errno));
    if (status == CLCNN_OK) {
        save_stop(ctx, SAVE_STOP_RENAMED, NULL);
        sync_parent_directory(path);
    } else
        unlink(temporary);
    free(temporary);
    return status;
}

/* ---- reading ---------------------------------------------------------------------------- */

static uint32_t decode_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t decode_u64(const unsigned char *p) {
    return (uint64_t)decode_u32(p) | (uint64_t)decode_u32(p + 4) << 32;
}

static float decode_f32(const unsigned char *p) {
    uint32_t bits = decode_u32(p);
    float value;
    memcpy(&value, &bits, sizeof(value));
    return value;
}

/* A tag as text for messages: printable ASCII as is, anything else as \xNN. */
static void format_tag(const unsigned char *tag, char out[20]) {
    size_t used = 0;
    for (int i = 0; i < 4; i++) {
        if (tag[i] >= 0x20 && tag[i] < 0x7f && tag[i] != '\\' && tag[i] != '\'')
            out[used++] = (char)tag[i];
        else
            used += (size_t)snprintf(out + used, 5, "\\x%02x", tag[i]);
    }
    out[used] = 0;
}

/* The whole file in memory, with where each section's payload lies. */
typedef struct model_file {
    clcnn_context *ctx;
    const char *path;
    unsigned char *data;
    uint64_t size;
    uint32_t version;
    uint64_t sections_end; /* where the checksum starts */
    int present[SECTION_KIND_COUNT];
    uint64_t payload_offset[SECTION_KIND_COUNT];
    uint64_t payload_length[SECTION_KIND_COUNT];
} model_file;

static clcnn_status file_error(const model_file *f, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
static clcnn_status file_error(const model_file *f, const char *format, ...) {
    char reason[1536];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(f->ctx, CLCNN_ERROR_FORMAT, "%s: %s", f->path, reason);
}

static clcnn_status read_whole_file(model_file *f) {
    FILE *file = fopen(f->path, "rb");
    if (!file)
        return set_error(f->ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat st;
    clcnn_status status = CLCNN_OK;
    if (fstat(fileno(file), &st) != 0)
        status = set_error(f->ctx, CLCNN_ERROR_IO, "%s: cannot stat: %s", f->path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        status = set_error(f->ctx, CLCNN_ERROR_IO, "%s: not a regular file", f->path);
    else if ((uint64_t)st.st_size > SIZE_MAX - 1)
        status = set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: too large to read", f->path);
    if (status == CLCNN_OK) {
        f->size = (uint64_t)st.st_size;
        f->data = malloc((size_t)f->size + 1);
        if (!f->data)
            status =
                set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory reading %llu bytes",
                          f->path, (unsigned long long)f->size);
    }
    if (status == CLCNN_OK && fread(f->data, 1, (size_t)f->size, file) != (size_t)f->size)
        status =
            set_error(f->ctx, CLCNN_ERROR_IO, "%s: read error or the file changed size", f->path);
    fclose(file);
    return status;
}

static clcnn_status check_preamble(model_file *f) {
    if (f->size == 0)
        return file_error(f, "the file is empty: not a clcnn model");
    uint64_t shown = f->size < MODEL_MAGIC_SIZE ? f->size : MODEL_MAGIC_SIZE;
    if (memcmp(f->data, model_magic, (size_t)shown) != 0)
        return file_error(f, "not a clcnn model (bad magic at offset 0)");
    if (f->size < MODEL_PREAMBLE_SIZE)
        return file_error(f, "truncated: %llu bytes, too short for the magic and version",
                          (unsigned long long)f->size);
    uint32_t version = decode_u32(f->data + MODEL_MAGIC_SIZE);
    if (version < 1 || version > MODEL_VERSION)
        return file_error(f,
                          "unsupported model format version %u at offset %d (this build "
                          "reads versions 1 to %d)",
                          version, MODEL_MAGIC_SIZE, MODEL_VERSION);
    f->version = version;
    if (f->size < MODEL_PREAMBLE_SIZE + MODEL_CHECKSUM_SIZE)
        return file_error(f, "truncated: %llu bytes, too short for the checksum",
                          (unsigned long long)f->size);
    f->sections_end = f->size - MODEL_CHECKSUM_SIZE;
    return CLCNN_OK;
}

/* Walks the section headers, checking only that every section fits in the
 * file: a cut-off file is reported as such rather than as a bad checksum. */
static clcnn_status check_framing(const model_file *f) {
    uint64_t offset = MODEL_PREAMBLE_SIZE;
    while (offset < f->sections_end) {
        uint64_t left = f->sections_end - offset;
        if (left < MODEL_SECTION_HEADER_SIZE)
            return file_error(f,
                              "truncated: %llu bytes at offset %llu are too few for a section "
                              "header (%d bytes) and the checksum",
                              (unsigned long long)left, (unsigned long long)offset,
                              MODEL_SECTION_HEADER_SIZE);
        uint64_t length = decode_u64(f->data + offset + 4);
        if (length > left - MODEL_SECTION_HEADER_SIZE) {
            char tag[20];
            format_tag(f->data + offset, tag);
            return file_error(f,
                              "truncated or corrupt: section '%s' at offset %llu declares %llu "
                              "bytes but only %llu remain before the checksum",
                              tag, (unsigned long long)offset, (unsigned long long)length,
                              (unsigned long long)(left - MODEL_SECTION_HEADER_SIZE));
        }
        offset += MODEL_SECTION_HEADER_SIZE + length;
    }
    return CLCNN_OK;
}

static clcnn_status check_checksum(const model_file *f) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p = f->data;
    uint64_t n = f->sections_end;
    while (n > 0) {
        uInt piece = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, piece);
        p += piece;
        n -= piece;
    }
    uint32_t stored = decode_u32(f->data + f->sections_end);
    if (stored != (uint32_t)crc)
        return file_error(f,
                          "checksum mismatch: the file is corrupt (CRC-32 at offset %llu is "
                          "%08x, the contents give %08x)",
                          (unsigned long long)f->sections_end, stored, (uint32_t)crc);
    return CLCNN_OK;
}

/* Records where each section lies; refuses unknown, duplicate and missing ones. */
static clcnn_status index_sections(model_file *f) {
    uint64_t offset = MODEL_PREAMBLE_SIZE;
    uint64_t header_offset[SECTION_KIND_COUNT] = {0};
    while (offset < f->sections_end) {
        const unsigned char *tag = f->data + offset;
        uint64_t length = decode_u64(tag + 4);
        int kind = 0;
        while (kind < SECTION_KIND_COUNT && memcmp(tag, section_tags[kind], 4) != 0)
            kind++;
        char shown[20];
        format_tag(tag, shown);
        if (kind == SECTION_KIND_COUNT)
            return file_error(f, "unknown section '%s' at offset %llu", shown,
                              (unsigned long long)offset);
        if (f->present[kind])
            return file_error(f, "duplicate section '%s' at offset %llu (the first is at %llu)",
                              shown, (unsigned long long)offset,
                              (unsigned long long)header_offset[kind]);
        f->present[kind] = 1;
        header_offset[kind] = offset;
        f->payload_offset[kind] = offset + MODEL_SECTION_HEADER_SIZE;
        f->payload_length[kind] = length;
        offset += MODEL_SECTION_HEADER_SIZE + length;
    }
    for (int kind = 0; kind < SECTION_KIND_COUNT; kind++) {
        if (kind == SECTION_TRAINING || f->present[kind])
            continue;
        char shown[20];
        format_tag((const unsigned char *)section_tags[kind], shown);
        return file_error(f, "missing section '%s' (%s)", shown, section_names[kind]);
    }
    return CLCNN_OK;
}

/* Reads fields of one section; positions are offsets in the whole file. */
typedef struct section_reader {
    const model_file *file;
    const char *name; /* of the section, for messages */
    uint64_t position, end;
} section_reader;

static section_reader open_section(const model_file *f, section_kind kind) {
    section_reader r;
    r.file = f;
    r.name = section_names[kind];
    r.position = f->payload_offset[kind];
    r.end = r.position + f->payload_length[kind];
    return r;
}

/* Fails unless n more bytes are in the section; what names the field. */
static clcnn_status need(const section_reader *r, uint64_t n, const char *what) {
    if (r->end - r->position >= n)
        return CLCNN_OK;
    return file_error(r->file,
                      "offset %llu: the %s section ends inside %s (%llu bytes needed, %llu left)",
                      (unsigned long long)r->position, r->name, what, (unsigned long long)n,
                      (unsigned long long)(r->end - r->position));
}

static clcnn_status get_u32(section_reader *r, const char *what, uint32_t *out) {
    clcnn_status status = need(r, 4, what);
    if (status == CLCNN_OK) {
        *out = decode_u32(r->file->data + r->position);
        r->position += 4;
    }
    return status;
}

static clcnn_status get_i32(section_reader *r, const char *what, int *out) {
    uint32_t bits;
    clcnn_status status = get_u32(r, what, &bits);
    if (status == CLCNN_OK)
        *out = (int)(int32_t)bits;
    return status;
}

static clcnn_status get_u64(section_reader *r, const char *what, uint64_t *out) {
    clcnn_status status = need(r, 8, what);
    if (status == CLCNN_OK) {
        *out = decode_u64(r->file->data + r->position);
        r->position += 8;
    }
    return status;
}

static clcnn_status get_f64(section_reader *r, const char *what, double *out) {
    uint64_t bits = 0;
    clcnn_status status = get_u64(r, what, &bits);
    if (status == CLCNN_OK)
        memcpy(out, &bits, sizeof(*out));
    return status;
}

static clcnn_status get_f32(section_reader *r, const char *what, float *out) {
    clcnn_status status = need(r, 4, what);
    if (status == CLCNN_OK) {
        *out = decode_f32(r->file->data + r->position);
        r->position += 4;
    }
    return status;
}

/* A length-prefixed string of at most max_length bytes into out (max_length + 1 bytes). */
static clcnn_status get_string(section_reader *r, const char *what, size_t max_length, char *out) {
    uint64_t at = r->position;
    uint32_t length;
    clcnn_status status = get_u32(r, what, &length);
    if (status != CLCNN_OK)
        return status;
    if (length > max_length)
        return file_error(r->file, "offset %llu: %s is %u bytes long, more than the %zu allowed",
                          (unsigned long long)at, what, length, max_length);
    status = need(r, length, what);
    if (status != CLCNN_OK)
        return status;
    const unsigned char *bytes = r->file->data + r->position;
    if (memchr(bytes, 0, length) != NULL)
        return file_error(r->file, "offset %llu: %s contains a NUL byte", (unsigned long long)at,
                          what);
    memcpy(out, bytes, length);
    out[length] = 0;
    r->position += length;
    return CLCNN_OK;
}

/* count floats into values, or only past them when values is NULL. */
static clcnn_status get_floats(section_reader *r, const char *what, int64_t count, float *values) {
    clcnn_status status = need(r, (uint64_t)count * 4, what);
    if (status != CLCNN_OK)
        return status;
    const unsigned char *p = r->file->data + r->position;
    for (int64_t i = 0; values && i < count; i++)
        values[i] = decode_f32(p + 4 * i);
    r->position += (uint64_t)count * 4;
    return CLCNN_OK;
}

static clcnn_status expect_section_end(const section_reader *r) {
    if (r->position == r->end)
        return CLCNN_OK;
    return file_error(r->file, "offset %llu: %llu unexpected bytes at the end of the %s section",
                      (unsigned long long)r->position, (unsigned long long)(r->end - r->position),
                      r->name);
}

/* The network text with a NUL added; parses it once without building the
 * network so that an absurd parameter count is refused before anything that
 * size is allocated. */
static clcnn_status read_network(const model_file *f, clcnn_net **out) {
    uint64_t offset = f->payload_offset[SECTION_NETWORK];
    uint64_t length = f->payload_length[SECTION_NETWORK];
    const unsigned char *bytes = f->data + offset;
    const unsigned char *nul = memchr(bytes, 0, (size_t)length);
    if (nul)
        return file_error(f, "offset %llu: the network text contains a NUL byte",
                          (unsigned long long)(offset + (uint64_t)(nul - bytes)));
    char *text = malloc((size_t)length + 1);
    size_t source_size = strlen(f->path) + 32;
    char *source_name = malloc(source_size);
    if (!text || !source_name) {
        free(text);
        free(source_name);
        return set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    }
    memcpy(text, bytes, (size_t)length);
    text[length] = 0;
    snprintf(source_name, source_size, "%s (network text)", f->path);

    layer *layers = NULL;
    int layer_count = 0;
    clcnn_status status = netfile_parse(f->ctx, text, source_name, &layers, &layer_count);
    if (status == CLCNN_OK) {
        int64_t parameters = 0;
        for (int i = 0; i < layer_count; i++)
            parameters += layers[i].weight_count + layers[i].bias_count;
        free(layers);
        if ((uint64_t)parameters > f->size / 4)
            status = file_error(f,
                                "the network text declares %lld parameters, more than the "
                                "%llu-byte file can hold",
                                (long long)parameters, (unsigned long long)f->size);
    }
    if (status == CLCNN_OK)
        status = clcnn_net_from_string(f->ctx, text, source_name, out);
    free(text);
    free(source_name);
    return status;
}

/* A length-prefixed string of at most max_length bytes, allocated. */
static clcnn_status get_new_string(section_reader *r, const char *what, size_t max_length,
                                   char **out) {
    uint64_t at = r->position;
    uint32_t length;
    clcnn_status status = get_u32(r, what, &length);
    if (status != CLCNN_OK)
        return status;
    r->position = at;
    if (length > max_length)
        return file_error(r->file, "offset %llu: %s is %u bytes long, more than the %zu allowed",
                          (unsigned long long)at, what, length, max_length);
    status = need(r, 4 + (uint64_t)length, what);
    if (status != CLCNN_OK)
        return status;
    *out = malloc((size_t)length + 1);
    if (!*out)
        return set_error(r->file->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                         r->file->path);
    status = get_string(r, what, max_length, *out);
    if (status == CLCNN_OK && strpbrk(*out, "\r\n"))
        status = file_error(r->file, "offset %llu: %s contains a line break",
                            (unsigned long long)at, what);
    if (status != CLCNN_OK) {
        free(*out);
        *out = NULL;
    }
    return status;
}

/* A count of items of at least item_bytes each, checked against what is
 * left of the section before anything that size is allocated. */
static clcnn_status get_count(section_reader *r, const char *what, uint64_t item_bytes,
                              uint32_t *out) {
    uint64_t at = r->position;
    clcnn_status status = get_u32(r, what, out);
    if (status == CLCNN_OK &&
        (*out > INT32_MAX || (uint64_t)*out * item_bytes > r->end - r->position))
        status = file_error(r->file, "offset %llu: %s %u does not fit in the %s section",
                            (unsigned long long)at, what, *out, r->name);
    return status;
}

/* Means and standard deviations of count channels into info. */
static clcnn_status get_normalization(section_reader *r, clcnn_model_info *info, uint32_t count) {
    if (count == 0)
        return CLCNN_OK;
    info->mean = calloc(count, sizeof(float));
    info->std = calloc(count, sizeof(float));
    if (!info->mean || !info->std)
        return set_error(r->file->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                         r->file->path);
    info->channels = (int)count;
    clcnn_status status = CLCNN_OK;
    for (uint32_t c = 0; status == CLCNN_OK && c < count; c++) {
        status = get_f32(r, "a channel's mean", &info->mean[c]);
        if (status == CLCNN_OK)
            status = get_f32(r, "a channel's standard deviation", &info->std[c]);
    }
    return status;
}

/* count class names of at most max_length bytes into info. */
static clcnn_status get_class_names(section_reader *r, clcnn_model_info *info, uint32_t count,
                                    size_t max_length) {
    if (count == 0)
        return CLCNN_OK;
    info->class_names = calloc(count, sizeof(char *));
    if (!info->class_names)
        return set_error(r->file->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                         r->file->path);
    clcnn_status status = CLCNN_OK;
    for (uint32_t i = 0; status == CLCNN_OK && i < count; i++) {
        status = get_new_string(r, "a class name", max_length, &info->class_names[i]);
        if (status == CLCNN_OK)
            info->class_count = (int)i + 1;
    }
    return status;
}

/* Versions 1 and 2: one mean and std, then the class names, then (version
 * 2) per-channel figures for the first channels. The info gets channels 0
 * for mean 0 and std 1, 1 for one normalisation of every channel, or one
 * per input channel of the network, channels past version 2's taking the
 * overall figures as they always did. */
static clcnn_status read_info_v1_v2(const model_file *f, section_reader *r, int input_channels,
                                    clcnn_model_info *info) {
    float mean = 0.0f, std = 1.0f;
    uint32_t class_count = 0, channels = 0;
    uint64_t count_offset = 0;
    clcnn_status status = get_f32(r, "the input mean", &mean);
    if (status == CLCNN_OK)
        status = get_f32(r, "the input standard deviation", &std);
    if (status == CLCNN_OK) {
        count_offset = r->position;
        status = get_u32(r, "the class count", &class_count);
    }
    const uint32_t max_classes = f->version == 1 ? MODEL_V1_MAX_CLASSES : MODEL_V2_MAX_CLASSES;
    if (status == CLCNN_OK && class_count > max_classes)
        status =
            file_error(f, "offset %llu: %u class names, more than the %u a version %u file holds",
                       (unsigned long long)count_offset, class_count, max_classes, f->version);
    if (status == CLCNN_OK)
        status = get_class_names(r, info, class_count, MODEL_V2_MAX_CLASS_NAME);
    /* Version 2's per-channel normalisation; absent from version 2 files
     * written before it, which then normalise every channel alike. */
    if (status == CLCNN_OK && f->version >= 2 && r->position < r->end) {
        count_offset = r->position;
        status = get_u32(r, "the channel count", &channels);
        if (status == CLCNN_OK && channels > MODEL_V2_MAX_CHANNELS)
            status = file_error(f,
                                "offset %llu: %u channels of normalisation, more than the %d "
                                "allowed",
                                (unsigned long long)count_offset, channels, MODEL_V2_MAX_CHANNELS);
    }
    if (status != CLCNN_OK)
        return status;
    if (channels == 0) {
        if (mean == 0.0f && std == 1.0f)
            return CLCNN_OK;
        return clcnn_model_info_set_normalization(info, 1, &mean, &std) == CLCNN_OK
                   ? CLCNN_OK
                   : set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    }
    /* One figure per input channel of the network: the file's for the
     * channels it has, the overall figures past them. */
    clcnn_model_info file_channels;
    clcnn_model_info_init(&file_channels);
    status = get_normalization(r, &file_channels, channels);
    if (status == CLCNN_OK) {
        info->mean = malloc(sizeof(float) * (size_t)input_channels);
        info->std = malloc(sizeof(float) * (size_t)input_channels);
        if (!info->mean || !info->std)
            status = set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    }
    if (status == CLCNN_OK) {
        info->channels = input_channels;
        for (int c = 0; c < input_channels; c++) {
            info->mean[c] = (uint32_t)c < channels ? file_channels.mean[c] : mean;
            info->std[c] = (uint32_t)c < channels ? file_channels.std[c] : std;
        }
    }
    clcnn_model_info_free(&file_channels);
    return status;
}

static clcnn_status read_info(const model_file *f, int input_channels, clcnn_model_info *info) {
    section_reader r = open_section(f, SECTION_INFO);
    clcnn_model_info_init(info);
    clcnn_status status;
    if (f->version < 3) {
        status = read_info_v1_v2(f, &r, input_channels, info);
    } else {
        uint32_t channels = 0, class_count = 0;
        status = get_count(&r, "the channel count", 8, &channels);
        if (status == CLCNN_OK)
            status = get_normalization(&r, info, channels);
        if (status == CLCNN_OK)
            status = get_count(&r, "the class count", 4, &class_count);
        if (status == CLCNN_OK)
            status = get_class_names(&r, info, class_count, MODEL_MAX_CLASS_NAME);
    }
    if (status == CLCNN_OK)
        status = expect_section_end(&r);
    if (status != CLCNN_OK)
        clcnn_model_info_free(info);
    return status;
}

/* Which tensors of the network a section has given so far: two flags per layer. */
typedef struct tensor_seen {
    unsigned char *flags; /* per tensor of the network */
} tensor_seen;

/* Reads a tensor's name and count (as the file's version writes them) and
 * checks them against the network's table. */
static clcnn_status get_tensor_header(section_reader *r, clcnn_net *net, tensor_seen *seen,
                                      named_tensor **out) {
    uint64_t at = r->position;
    const model_file *f = r->file;
    char name[MODEL_MAX_TENSOR_NAME + 1];
    uint64_t count;
    clcnn_status status;
    int index;
    if (f->version == 1) {
        char layer_name[MODEL_MAX_LAYER_NAME + 1], which[8];
        status = get_string(r, "a layer name", MODEL_MAX_LAYER_NAME, layer_name);
        if (status == CLCNN_OK)
            status = get_string(r, "a tensor name", sizeof(which) - 1, which);
        if (status != CLCNN_OK)
            return status;
        if (strcmp(which, "bias") != 0 && strcmp(which, "weight") != 0)
            return file_error(f,
                              "offset %llu: %s section: tensor '%s.%s': expected 'weight' or "
                              "'bias'",
                              (unsigned long long)at, r->name, layer_name, which);
        if (net_find_layer(net, layer_name) < 0)
            return file_error(f,
                              "offset %llu: %s section: tensor %s.%s: the network has no layer "
                              "named '%s'",
                              (unsigned long long)at, r->name, layer_name, which, layer_name);
        snprintf(name, sizeof(name), "%s.%s", layer_name, which);
        index = net_find_tensor(net, name);
        if (index < 0)
            return file_error(f, "offset %llu: %s section: tensor %s: layer %s has no %s",
                              (unsigned long long)at, r->name, name, layer_name, which);
    } else {
        status = get_string(r, "a tensor name", MODEL_MAX_TENSOR_NAME, name);
        if (status != CLCNN_OK)
            return status;
        index = net_find_tensor(net, name);
        if (index < 0)
            return file_error(f, "offset %llu: %s section: the network has no tensor named '%s'",
                              (unsigned long long)at, r->name, name);
    }
    status = get_u64(r, "an element count", &count);
    if (status != CLCNN_OK)
        return status;
    named_tensor *t = &net->tensors[index];
    if (count != (uint64_t)t->count)
        return file_error(f,
                          "offset %llu: %s section: tensor %s has %llu values but the "
                          "network's has %lld",
                          (unsigned long long)at, r->name, name, (unsigned long long)count,
                          (long long)t->count);
    if (seen->flags[index])
        return file_error(f, "offset %llu: %s section: tensor %s appears twice",
                          (unsigned long long)at, r->name, name);
    seen->flags[index] = 1;
    *out = t;
    return CLCNN_OK;
}

/* After the parameters section's tensors: every tensor of the network must have come. */
static clcnn_status check_all_tensors_seen(const section_reader *r, const clcnn_net *net,
                                           const tensor_seen *seen) {
    for (int i = 0; i < net->tensor_count; i++)
        if (!seen->flags[i])
            return file_error(r->file, "the %s section has no tensor %s", r->name,
                              net->tensors[i].name);
    return CLCNN_OK;
}

static clcnn_status new_tensor_seen(const model_file *f, const clcnn_net *net, tensor_seen *seen) {
    seen->flags = calloc((size_t)(net->tensor_count ? net->tensor_count : 1), 1);
    if (!seen->flags)
        return set_error(f->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    return CLCNN_OK;
}

static clcnn_status read_parameters(const model_file *f, clcnn_net *net) {
    section_reader r = open_section(f, SECTION_PARAMETERS);
    tensor_seen seen;
    clcnn_status status = new_tensor_seen(f, net, &seen);
    if (status != CLCNN_OK)
        return status;
    uint32_t tensor_count = 0;
    status = get_u32(&r, "the tensor count", &tensor_count);
    for (uint32_t i = 0; status == CLCNN_OK && i < tensor_count; i++) {
        named_tensor *t;
        status = get_tensor_header(&r, net, &seen, &t);
        if (status == CLCNN_OK)
            status = get_floats(
                &r, "a parameter tensor", t->count,
                (t->kind == TENSOR_PARAMETER ? net->host_parameters : net->host_state) + t->offset);
    }
    if (status == CLCNN_OK)
        status = check_all_tensors_seen(&r, net, &seen);
    if (status == CLCNN_OK)
        status = expect_section_end(&r);
    free(seen.flags);
    /* A fresh network has no device copy yet; the next use uploads these. */
    net->host_parameters_stale = 0;
    net_host_parameters_changed(net);
    return status;
}

/* The training section's fixed part. */
typedef struct training_header {
    clcnn_train_config config;
    int epochs_done;
    int64_t step;
    uint64_t shuffle[4];
} training_header;

static clcnn_status read_training_header(section_reader *r, training_header *h) {
    clcnn_train_config *c = &h->config;
    memset(h, 0, sizeof(*h));
    uint32_t optimizer = 0, schedule = 0;
    uint64_t step = 0;
    uint64_t optimizer_offset = 0, schedule_offset = 0, epochs_done_offset = 0, step_offset = 0;
    clcnn_status status = get_i32(r, "the epoch count", &c->epochs);
    if (status == CLCNN_OK)
        status = get_i32(r, "the batch size", &c->batch_size);
    if (status == CLCNN_OK) {
        optimizer_offset = r->position;
        status = get_u32(r, "the optimizer", &optimizer);
    }
    if (status == CLCNN_OK)
        status = get_f64(r, "the learning rate", &c->learning_rate);
    if (status == CLCNN_OK)
        status = get_f64(r, "the momentum", &c->momentum);
    if (status == CLCNN_OK)
        status = get_f64(r, "the weight decay", &c->weight_decay);
    if (status == CLCNN_OK)
        status = get_f64(r, "beta1", &c->beta1);
    if (status == CLCNN_OK)
        status = get_f64(r, "beta2", &c->beta2);
    if (status == CLCNN_OK)
        status = get_f64(r, "epsilon", &c->epsilon);
    if (status == CLCNN_OK) {
        schedule_offset = r->position;
        status = get_u32(r, "the schedule", &schedule);
    }
    if (status == CLCNN_OK)
        status = get_f64(r, "the decay", &c->decay);
    if (status == CLCNN_OK)
        status = get_i32(r, "the step epochs", &c->step_epochs);
    if (status == CLCNN_OK)
        status = get_u64(r, "the seed", &c->seed);
    if (status == CLCNN_OK) {
        epochs_done_offset = r->position;
        status = get_i32(r, "the epochs done", &h->epochs_done);
    }
    if (status == CLCNN_OK) {
        step_offset = r->position;
        status = get_u64(r, "the step", &step);
    }
    for (int i = 0; i < 4 && status == CLCNN_OK; i++)
        status = get_u64(r, "the shuffle generator state", &h->shuffle[i]);
    if (status != CLCNN_OK)
        return status;
    const model_file *f = r->file;
    if (optimizer != CLCNN_SGD && optimizer != CLCNN_ADAM)
        return file_error(f, "offset %llu: unknown optimizer %u",
                          (unsigned long long)optimizer_offset, optimizer);
    if (schedule != CLCNN_SCHEDULE_CONSTANT && schedule != CLCNN_SCHEDULE_STEP &&
        schedule != CLCNN_SCHEDULE_COSINE)
        return file_error(f, "offset %llu: unknown learning-rate schedule %u",
                          (unsigned long long)schedule_offset, schedule);
    if (h->epochs_done < 0)
        return file_error(f, "offset %llu: negative epochs done (%d)",
                          (unsigned long long)epochs_done_offset, h->epochs_done);
    if (step > INT64_MAX)
        return file_error(f, "offset %llu: negative step count", (unsigned long long)step_offset);
    c->optimizer = (clcnn_optimizer)optimizer;
    c->schedule = (clcnn_schedule)schedule;
    h->step = (int64_t)step;
    return CLCNN_OK;
}

/* The optimizer state tensors into trainer's host copies, or only checked
 * when trainer is NULL. */
static clcnn_status read_optimizer_state(section_reader *r, clcnn_net *net,
                                         clcnn_trainer *trainer) {
    tensor_seen seen;
    clcnn_status status = new_tensor_seen(r->file, net, &seen);
    if (status != CLCNN_OK)
        return status;
    uint32_t tensor_count = 0;
    status = get_u32(r, "the tensor count", &tensor_count);
    for (uint32_t i = 0; status == CLCNN_OK && i < tensor_count; i++) {
        named_tensor *t;
        status = get_tensor_header(r, net, &seen, &t);
        if (status == CLCNN_OK && (t->kind != TENSOR_PARAMETER || net->frozen[t->layer]))
            status = file_error(r->file,
                                "%s section: tensor %s is not trained%s, so it has no "
                                "optimizer state",
                                r->name, t->name,
                                t->kind == TENSOR_PARAMETER ? " (its layer is frozen)" : "");
        if (status != CLCNN_OK)
            break;
        const int64_t offset = trainer ? trainer->tensor_state_offset[t - net->tensors] : 0,
                      count = t->count;
        status = get_floats(r, "an optimizer state tensor", count,
                            trainer ? trainer->host_state1 + offset : NULL);
        if (status == CLCNN_OK)
            status = get_floats(r, "an optimizer state tensor", count,
                                trainer ? trainer->host_state2 + offset : NULL);
    }
    for (int i = 0; status == CLCNN_OK && i < net->tensor_count; i++)
        if (!seen.flags[i] && net->tensors[i].kind == TENSOR_PARAMETER &&
            !net->frozen[net->tensors[i].layer])
            status = file_error(r->file, "the %s section has no tensor %s", r->name,
                                net->tensors[i].name);
    free(seen.flags);
    return status;
}

/* Version 4's frozen layers, applied to net. */
static clcnn_status read_frozen_layers(section_reader *r, clcnn_net *net) {
    if (r->file->version < 4)
        return CLCNN_OK;
    uint32_t count = 0;
    clcnn_status status = get_u32(r, "the frozen layer count", &count);
    for (uint32_t k = 0; status == CLCNN_OK && k < count; k++) {
        const uint64_t at = r->position;
        char name[MODEL_MAX_LAYER_NAME + 1];
        status = get_string(r, "a frozen layer's name", MODEL_MAX_LAYER_NAME, name);
        const int index = status == CLCNN_OK ? net_find_layer(net, name) : -1;
        if (status == CLCNN_OK && (index < 1 || net->frozen[index]))
            return file_error(r->file, "offset %llu: frozen layer '%s': %s", (unsigned long long)at,
                              name, index < 1 ? "the network has no such layer" : "listed twice");
        if (status == CLCNN_OK)
            net->frozen[index] = 1;
    }
    net->frozen_version++;
    return status;
}

/* Version 2's augmentation after the optimizer state, into c; a version 2
 * section that ends before it (written before augmentation) has none. */
static clcnn_status read_augmentation(section_reader *r, clcnn_train_config *c) {
    const model_file *f = r->file;
    if (f->version < 2 || r->position == r->end)
        return CLCNN_OK;
    uint64_t at = r->position;
    uint32_t flip = 0;
    clcnn_status status = get_i32(r, "the crop padding", &c->augment_crop_pad);
    if (status == CLCNN_OK && (c->augment_crop_pad < 0 || c->augment_crop_pad > 65535))
        return file_error(f, "offset %llu: crop padding %d is outside 0..65535",
                          (unsigned long long)at, c->augment_crop_pad);
    at = r->position;
    if (status == CLCNN_OK)
        status = get_u32(r, "the flip flag", &flip);
    if (status == CLCNN_OK && flip > 1)
        return file_error(f, "offset %llu: the flip flag is %u, expected 0 or 1",
                          (unsigned long long)at, flip);
    at = r->position;
    if (status == CLCNN_OK)
        status = get_f64(r, "the rotation", &c->augment_rotate_degrees);
    if (status == CLCNN_OK &&
        !(c->augment_rotate_degrees >= 0.0 && c->augment_rotate_degrees <= 180.0))
        return file_error(f, "offset %llu: rotation %g is outside 0..180 degrees",
                          (unsigned long long)at, c->augment_rotate_degrees);
    c->augment_flip = (int)flip;
    return status;
}

/* Checks the training section and, when out is not NULL, builds a trainer from it. */
static clcnn_status read_training(const model_file *f, clcnn_net *net, clcnn_trainer **out) {
    section_reader r = open_section(f, SECTION_TRAINING);
    training_header header;
    clcnn_status status = read_training_header(&r, &header);
    if (status == CLCNN_OK)
        status = read_frozen_layers(&r, net);
    if (status != CLCNN_OK)
        return status;
    clcnn_trainer *trainer = NULL;
    if (out) {
        status = clcnn_trainer_create(net, &header.config, &trainer);
        if (status != CLCNN_OK) {
            /* Say which file the unusable configuration came from. */
            char reason[sizeof(f->ctx->error)];
            snprintf(reason, sizeof(reason), "%s", clcnn_last_error(f->ctx));
            return set_error(f->ctx, status, "%s: training state: %s", f->path, reason);
        }
    }
    status = read_optimizer_state(&r, net, trainer);
    clcnn_train_config augmentation = header.config;
    if (status == CLCNN_OK)
        status = read_augmentation(&r, &augmentation);
    if (status == CLCNN_OK)
        status = expect_section_end(&r);
    if (status != CLCNN_OK) {
        clcnn_trainer_destroy(trainer);
        return status;
    }
    if (trainer) {
        trainer->config.augment_crop_pad = augmentation.augment_crop_pad;
        trainer->config.augment_flip = augmentation.augment_flip;
        trainer->config.augment_rotate_degrees = augmentation.augment_rotate_degrees;
        trainer->epochs_done = header.epochs_done;
        trainer->step = header.step;
        for (int i = 0; i < 4; i++)
            trainer->shuffle.state[i] = header.shuffle[i];
        trainer->host_state_stale = 0;
        trainer->device_state_stale = 1;
        *out = trainer;
    }
    return CLCNN_OK;
}

clcnn_status clcnn_model_load(clcnn_context *ctx, const char *path, clcnn_net **net,
                              clcnn_trainer **trainer, clcnn_model_info *info) {
    if (net)
        *net = NULL;
    if (trainer)
        *trainer = NULL;
    if (info)
        clcnn_model_info_init(info);
    if (!ctx || !path || !net)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_model_load: the context, the path and net are required");
    if (onnx_path(path)) {
        /* An ONNX model: its network and tensors, no training state, and an
         * empty info (no normalisation, no class names). */
        return clcnn_net_from_onnx(ctx, path, net);
    }
    model_file f;
    memset(&f, 0, sizeof(f));
    f.ctx = ctx;
    f.path = path;
    clcnn_status status = read_whole_file(&f);
    if (status == CLCNN_OK)
        status = check_preamble(&f);
    if (status == CLCNN_OK)
        status = check_framing(&f);
    if (status == CLCNN_OK)
        status = check_checksum(&f);
    if (status == CLCNN_OK)
        status = index_sections(&f);

    clcnn_net *loaded = NULL;
    clcnn_trainer *loaded_trainer = NULL;
    clcnn_model_info loaded_info;
    clcnn_model_info_init(&loaded_info);
    if (status == CLCNN_OK)
        status = read_network(&f, &loaded);
    if (status == CLCNN_OK)
        status = read_info(&f, loaded->layers[0].out.c, &loaded_info);
    if (status == CLCNN_OK)
        status = read_parameters(&f, loaded);
    if (status == CLCNN_OK && f.present[SECTION_TRAINING])
        status = read_training(&f, loaded, trainer ? &loaded_trainer : NULL);
    free(f.data);
    if (status != CLCNN_OK) {
        clcnn_model_info_free(&loaded_info);
        clcnn_trainer_destroy(loaded_trainer);
        clcnn_net_destroy(loaded);
        return status;
    }
    *net = loaded;
    if (trainer)
        *trainer = loaded_trainer;
    if (info)
        *info = loaded_info;
    else
        clcnn_model_info_free(&loaded_info);
    return CLCNN_OK;
}

clcnn_status clcnn_net_load(clcnn_context *ctx, const char *path, clcnn_net **net,
                            clcnn_model_info *info, int *has_parameters) {
    if (net)
        *net = NULL;
    if (has_parameters)
        *has_parameters = 0;
    if (info)
        clcnn_model_info_init(info);
    if (!ctx || !path || !net)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_load: the context, the path and net are required");
    if (onnx_path(path)) {
        /* An ONNX model brings its parameters. */
        clcnn_status status = clcnn_net_from_onnx(ctx, path, net);
        if (status == CLCNN_OK && has_parameters)
            *has_parameters = 1;
        return status;
    }
    /* A model file starts with its magic; anything else is taken for a
     * network file, whose parser says what is wrong with it. */
    unsigned char magic[MODEL_MAGIC_SIZE];
    FILE *file = fopen(path, "rb");
    if (!file)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    const size_t got = fread(magic, 1, sizeof(magic), file);
    fclose(file);
    if (got == sizeof(magic) && memcmp(magic, model_magic, sizeof(magic)) == 0) {
        clcnn_status status = clcnn_model_load(ctx, path, net, NULL, info);
        if (status == CLCNN_OK && has_parameters)
            *has_parameters = 1;
        return status;
    }
    return clcnn_net_from_file(ctx, path, net);
}
