/* ONNX import: a ModelProto (parsed by protobuf-c) becomes clcnn network
 * text plus named tensors.
 *
 * The graph is walked once in its (topological) node order. Every ONNX value
 * the walk meets is an activation (the output of a clcnn layer, with its
 * ONNX shape: dims[0] is the batch, -1 when free), a constant (an
 * initializer, a Constant node, a bound input) or a zero-padded activation
 * (a Pad node, folded into the Conv or AveragePool that reads it). Each
 * supported node adds a layer (or none: Identity, Flatten of a vector) and
 * computes its output's ONNX shape; once the text is parsed, every layer's
 * clcnn shape is checked against that shape, so a mapping that disagreed
 * with ONNX would be an error rather than a wrong answer. Anything else is
 * refused naming the node, its op and what is unsupported.
 *
 * ONNX shapes map onto clcnn's per-image shapes as: (N, C, H, W) -> C x H x
 * W; (N, C, L) -> C x 1 x L (1-D convolutions and pooling run as 1 x L
 * ones); (N, D) -> a vector of D. */
#include "io/onnx.h"

#include "onnx.pb-c.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RANK 8
#define MAX_FILE_BYTES ((int64_t)2 << 30)
#define MIN_OPSET 1
#define MAX_OPSET 17
/* A free batch dimension inside an integer constant (what Shape gives). */
#define BATCH_SYMBOL INT64_MIN

enum { VALUE_ACTIVATION, VALUE_CONSTANT, VALUE_PADDED };

typedef struct value {
    const char *name;
    int kind;
    int rank;
    int64_t dims[MAX_RANK]; /* activations: dims[0] is the batch, -1 when free */
    int layer;              /* activation: the layer computing it */
    /* constants: floats (float and double tensors) or ints (integer ones) */
    float *floats;
    int64_t *ints;
    int64_t count;
    /* padded: the activation it pads and the zeros around it */
    int source;
    int pad_top, pad_left, pad_bottom, pad_right;
    /* an activation: a vector (N, C) unsqueezed to (N, C, 1, 1), which clcnn
     * takes only as a Mul's per-channel scale */
    int vector_image;
} value;

typedef struct import_tensor {
    char suffix[16];
    float *values; /* owned */
    int64_t count;
} import_tensor;

typedef struct import_layer {
    const char *type;
    char name[64];
    char options[256];
    int input_count;
    int inputs[LAYER_MAX_INPUTS]; /* layer indices */
    import_tensor tensors[LAYER_MAX_TENSORS];
    int tensor_count;
    const char *node_name; /* for errors */
    /* its output's ONNX shape, to check clcnn's against */
    int rank;
    int64_t dims[MAX_RANK];
    /* dense from MatMul: the bias an Add may still give it */
    int units, matmul_without_bias;
} import_layer;

typedef struct importer {
    clcnn_context *ctx;
    const char *path;
    Onnx__ModelProto *model;
    Onnx__GraphProto *graph;
    int64_t opset;
    value *values;
    int value_count, value_capacity;
    import_layer *layers;
    int layer_count, layer_capacity;
    int training_mode;
    /* the node being translated */
    const Onnx__NodeProto *node;
    int node_index;
} importer;

/* ---- errors ----------------------------------------------------------------------------- */

static clcnn_status file_error(importer *im, clcnn_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static clcnn_status file_error(importer *im, clcnn_status status, const char *format, ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    return set_error(im->ctx, status, "%s: %s", im->path, reason);
}

/* "<file>: node '<name>' (<op>): <reason>" for the node being translated. */
static clcnn_status node_error(importer *im, clcnn_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static clcnn_status node_error(importer *im, clcnn_status status, const char *format, ...) {
    char reason[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    const Onnx__NodeProto *n = im->node;
    if (n->name && n->name[0])
        return set_error(im->ctx, status, "%s: node '%.200s' (%.64s): %s", im->path, n->name,
                         n->op_type, reason);
    return set_error(im->ctx, status, "%s: node #%d (%.64s): %s", im->path, im->node_index,
                     n->op_type, reason);
}

#define UNSUPPORTED(...) node_error(im, CLCNN_ERROR_UNSUPPORTED, __VA_ARGS__)
#define MALFORMED(...) node_error(im, CLCNN_ERROR_FORMAT, __VA_ARGS__)

static void format_dims(const int64_t *dims, int rank, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < rank && used < size; d++) {
        if (dims[d] < 0)
            used += (size_t)snprintf(buf + used, size - used, "%sN", d ? ", " : "");
        else
            used += (size_t)snprintf(buf + used, size - used, "%s%lld", d ? ", " : "",
                                     (long long)dims[d]);
    }
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

/* ---- tensors ------------------------------------------------------------------------------ */

static const char *data_type_name(int32_t type) {
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        return "float";
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
        return "uint8";
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
        return "int8";
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        return "int32";
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        return "int64";
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return "bool";
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
        return "float16";
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        return "double";
    case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
        return "string";
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        return "bfloat16";
    default:
        return "an unsupported type";
    }
}

/* A TensorProto's values: float and double as floats, int32/int64/bool as
 * ints (one of *floats, *ints set, malloc'd). what names it in errors. */
static clcnn_status tensor_values(clcnn_context *ctx, const char *what, const Onnx__TensorProto *t,
                                  float **floats, int64_t **ints, int64_t *count, int *rank,
                                  int64_t *dims) {
    *floats = NULL;
    *ints = NULL;
    if (t->n_external_data > 0 ||
        (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
        return set_error(ctx, CLCNN_ERROR_UNSUPPORTED,
                         "%s: its data is stored outside the model file (external data), which "
                         "clcnn does not read; save the model with its weights inside",
                         what);
    if (t->segment)
        return set_error(ctx, CLCNN_ERROR_UNSUPPORTED, "%s: segmented tensors are not supported",
                         what);
    if (t->n_dims > MAX_RANK)
        return set_error(ctx, CLCNN_ERROR_UNSUPPORTED, "%s: %zu dimensions, at most %d supported",
                         what, t->n_dims, MAX_RANK);
    int64_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || (t->dims[d] > 0 && n > (INT64_C(1) << 32) / t->dims[d]))
            return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: invalid dimension %lld", what,
                             (long long)t->dims[d]);
        n *= t->dims[d];
        dims[d] = t->dims[d];
    }
    *rank = (int)t->n_dims;
    *count = n;
    const int32_t type = t->has_data_type ? t->data_type : 0;
    size_t element = 0, typed = 0;
    switch (type) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
        element = 4;
        typed = t->n_float_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        element = 8;
        typed = t->n_double_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
        element = 8;
        typed = t->n_int64_data;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        typed = t->n_int32_data;
        element = type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ? 4 : 1;
        break;
    default:
        return set_error(ctx, CLCNN_ERROR_UNSUPPORTED,
                         "%s: element type %s (%d) is not supported (float, double, int32, "
                         "int64 and bool are)",
                         what, data_type_name(type), (int)type);
    }
    const int raw = t->has_raw_data;
    if (raw && t->raw_data.len != (size_t)n * element)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: raw_data holds %zu bytes, but %lld %s values need %lld", what,
                         t->raw_data.len, (long long)n, data_type_name(type),
                         (long long)(n * (int64_t)element));
    if (!raw && typed != (size_t)n)
        return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: holds %zu values, but its shape has %lld",
                         what, typed, (long long)n);
    const uint8_t *bytes = raw ? t->raw_data.data : NULL;
    if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
        *floats = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!*floats)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", what);
        for (int64_t i = 0; i < n; i++) {
            if (type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
                float v;
                if (raw)
                    memcpy(&v, bytes + 4 * i, 4); /* little-endian, as the hosts clcnn runs on */
                else
                    v = t->float_data[i];
                (*floats)[i] = v;
            } else {
                double v;
                if (raw)
                    memcpy(&v, bytes + 8 * i, 8);
                else
                    v = t->double_data[i];
                (*floats)[i] = (float)v;
            }
        }
        return CLCNN_OK;
    }
    *ints = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!*ints)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", what);
    for (int64_t i = 0; i < n; i++) {
        if (type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
            int64_t v;
            if (raw)
                memcpy(&v, bytes + 8 * i, 8);
            else
                v = t->int64_data[i];
            (*ints)[i] = v;
        } else if (type == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
            int32_t v;
            if (raw)
                memcpy(&v, bytes + 4 * i, 4);
            else
                v = t->int32_data[i];
            (*ints)[i] = v;
        } else {
            (*ints)[i] = raw ? bytes[i] != 0 : t->int32_data[i] != 0;
        }
    }
    return CLCNN_OK;
}

/* ---- reading the file --------------------------------------------------------------------- */

static clcnn_status read_file(clcnn_context *ctx, const char *path, uint8_t **data, size_t *size) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t capacity = 1 << 16, length = 0;
    uint8_t *bytes = malloc(capacity);
    while (bytes) {
        length += fread(bytes + length, 1, capacity - length, f);
        if (length < capacity)
            break;
        if ((int64_t)capacity >= MAX_FILE_BYTES) {
            free(bytes);
            fclose(f);
            return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: larger than %lld bytes", path,
                             (long long)MAX_FILE_BYTES);
        }
        uint8_t *bigger = realloc(bytes, capacity * 2);
        if (!bigger)
            free(bytes);
        bytes = bigger;
        capacity *= 2;
    }
    const int failed = ferror(f);
    fclose(f);
    if (!bytes)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory reading it", path);
    if (failed) {
        free(bytes);
        return set_error(ctx, CLCNN_ERROR_IO, "%s: read error", path);
    }
    *data = bytes;
    *size = length;
    return CLCNN_OK;
}

int onnx_path(const char *path) {
    size_t length = path ? strlen(path) : 0;
    return length >= 5 && strcasecmp(path + length - 5, ".onnx") == 0;
}

clcnn_status onnx_read_tensor_file(clcnn_context *ctx, const char *path, clcnn_array *out) {
    memset(out, 0, sizeof(*out));
    uint8_t *bytes;
    size_t size;
    clcnn_status status = read_file(ctx, path, &bytes, &size);
    if (status)
        return status;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, size, bytes);
    free(bytes);
    if (!t)
        return set_error(ctx, CLCNN_ERROR_FORMAT, "%s: not a serialised ONNX TensorProto", path);
    float *floats;
    int64_t *ints, count, dims[MAX_RANK];
    int rank;
    status = tensor_values(ctx, path, t, &floats, &ints, &count, &rank, dims);
    onnx__tensor_proto__free_unpacked(t, NULL);
    if (status)
        return status;
    out->ndim = rank;
    for (int d = 0; d < rank; d++)
        out->shape[d] = dims[d];
    out->dtype = floats ? CLCNN_FLOAT32 : CLCNN_INT64;
    out->data = floats ? (void *)floats : (void *)ints;
    return CLCNN_OK;
}

/* ---- values and layers -------------------------------------------------------------------- */

static int find_value(const importer *im, const char *name) {
    for (int i = im->value_count - 1; i >= 0; i--)
        if (strcmp(im->values[i].name, name) == 0)
            return i;
    return -1;
}

static value *add_value(importer *im, const char *name) {
    if (im->value_count == im->value_capacity) {
        int capacity = im->value_capacity ? 2 * im->value_capacity : 64;
        value *bigger = realloc(im->values, sizeof(value) * (size_t)capacity);
        if (!bigger)
            return NULL;
        im->values = bigger;
        im->value_capacity = capacity;
    }
    value *v = &im->values[im->value_count++];
    memset(v, 0, sizeof(*v));
    v->name = name;
    v->layer = -1;
    v->source = -1;
    return v;
}

static int valid_name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

static int name_taken(const importer *im, const char *name) {
    for (int i = 0; i < im->layer_count; i++)
        if (strcmp(im->layers[i].name, name) == 0)
            return 1;
    return 0;
}

/* A layer name: the prefix of its weight's name when that is "<P>.weight"
 * (PyTorch's module path, so tensor names survive the trip), else the node's
 * name with other characters made '_', else the type; made unique. */
static void choose_name(importer *im, import_layer *l, const char *weight_name) {
    char base[48] = "";
    size_t length = weight_name ? strlen(weight_name) : 0;
    if (length > 7 && strcmp(weight_name + length - 7, ".weight") == 0 &&
        length - 7 < sizeof(base)) {
        int valid = 1;
        for (size_t i = 0; i < length - 7; i++)
            valid = valid && valid_name_char(weight_name[i]);
        if (valid) {
            memcpy(base, weight_name, length - 7);
            base[length - 7] = 0;
        }
    }
    const char *node_name = im->node ? im->node->name : NULL;
    if (!base[0] && node_name && node_name[0]) {
        /* PyTorch's scopes: "/layer1/conv/Conv" -> "layer1_conv" (the op dropped) */
        const char *end = strrchr(node_name, '/');
        if (!end || end == node_name)
            end = node_name + strlen(node_name);
        size_t j = 0;
        for (const char *c = node_name; c < end && j + 1 < sizeof(base); c++) {
            if (j == 0 && *c == '/')
                continue;
            base[j++] = valid_name_char(*c) ? *c : '_';
        }
        base[j] = 0;
    }
    if (!base[0])
        snprintf(base, sizeof(base), "%s", l->type);
    snprintf(l->name, sizeof(l->name), "%s", base);
    for (int k = 2; name_taken(im, l->name); k++)
        snprintf(l->name, sizeof(l->name), "%s_%d", base, k);
}

/* A new layer reading the activations inputs[0..count) (value indices);
 * *out_layer its index. Its output's shape is set by the caller. */
static clcnn_status add_layer(importer *im, const char *type, const int *inputs, int count,
                              const char *weight_name, int *out_layer) {
    if (im->layer_count == im->layer_capacity) {
        int capacity = im->layer_capacity ? 2 * im->layer_capacity : 32;
        import_layer *bigger = realloc(im->layers, sizeof(import_layer) * (size_t)capacity);
        if (!bigger)
            return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
        im->layers = bigger;
        im->layer_capacity = capacity;
    }
    if (count > LAYER_MAX_INPUTS)
        return UNSUPPORTED("%d inputs, at most %d supported", count, LAYER_MAX_INPUTS);
    import_layer *l = &im->layers[im->layer_count];
    memset(l, 0, sizeof(*l));
    l->type = type;
    l->node_name = im->node ? im->node->name : NULL;
    choose_name(im, l, weight_name);
    l->input_count = count;
    for (int i = 0; i < count; i++)
        l->inputs[i] = im->values[inputs[i]].layer;
    *out_layer = im->layer_count++;
    return CLCNN_OK;
}

/* Adds a tensor to layer index li: a copy of values (scaled by scale). */
static clcnn_status add_tensor(importer *im, int li, const char *suffix, const float *values,
                               int64_t count, float scale) {
    import_layer *l = &im->layers[li];
    import_tensor *t = &l->tensors[l->tensor_count];
    t->values = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!t->values)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    for (int64_t i = 0; i < count; i++)
        t->values[i] = values[i] * scale;
    snprintf(t->suffix, sizeof(t->suffix), "%s", suffix);
    t->count = count;
    l->tensor_count++;
    return CLCNN_OK;
}

/* Makes node output k the activation of layer li with shape (rank, dims). */
static clcnn_status set_output(importer *im, int k, int li, int rank, const int64_t *shape) {
    int64_t dims[MAX_RANK];
    memcpy(dims, shape, sizeof(int64_t) * (size_t)rank); /* shape may be in im->values */
    value *v = add_value(im, im->node->output[k]);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_ACTIVATION;
    v->layer = li;
    v->rank = rank;
    memcpy(v->dims, dims, sizeof(int64_t) * (size_t)rank);
    import_layer *l = &im->layers[li];
    l->rank = rank;
    memcpy(l->dims, dims, sizeof(int64_t) * (size_t)rank);
    return CLCNN_OK;
}

/* Node output k names the same activation as value vi (Identity, ...). */
static clcnn_status alias_output(importer *im, int k, int vi) {
    value copy = im->values[vi];
    value *v = add_value(im, im->node->output[k]);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    const char *name = v->name;
    *v = copy;
    v->name = name;
    /* constants' arrays stay owned by the first value */
    if (copy.kind == VALUE_CONSTANT) {
        v->floats = NULL;
        v->ints = NULL;
        float *f = NULL;
        int64_t *n = NULL;
        if (copy.floats && (f = malloc(sizeof(float) * (size_t)(copy.count + 1))))
            memcpy(f, copy.floats, sizeof(float) * (size_t)copy.count);
        if (copy.ints && (n = malloc(sizeof(int64_t) * (size_t)(copy.count + 1))))
            memcpy(n, copy.ints, sizeof(int64_t) * (size_t)copy.count);
        if ((copy.floats && !f) || (copy.ints && !n)) {
            free(f);
            free(n);
            im->value_count--;
            return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
        }
        v->floats = f;
        v->ints = n;
    }
    return CLCNN_OK;
}

/* ---- node inputs and attributes ------------------------------------------------------------ */

static int has_input(const Onnx__NodeProto *n, size_t k) {
    return k < n->n_input && n->input[k] && n->input[k][0];
}

/* The value index of node input k, or an error when it is missing or unknown. */
static clcnn_status input_value(importer *im, size_t k, int *out) {
    if (!has_input(im->node, k))
        return MALFORMED("input %zu is missing", k + 1);
    int vi = find_value(im, im->node->input[k]);
    if (vi < 0)
        return MALFORMED("reads '%.200s', which no node, initializer or graph input defines",
                         im->node->input[k]);
    *out = vi;
    return CLCNN_OK;
}

/* Input k as an activation (a padded one only when padded_ok). */
static clcnn_status activation_input(importer *im, size_t k, int padded_ok, int *out) {
    clcnn_status status = input_value(im, k, out);
    if (status)
        return status;
    const value *v = &im->values[*out];
    if (v->kind == VALUE_CONSTANT)
        return UNSUPPORTED("input %zu ('%.200s') is a constant; clcnn computes this op only on "
                           "the activations flowing from the graph input",
                           k + 1, v->name);
    if (v->vector_image && strcmp(im->node->op_type, "Mul") != 0)
        return UNSUPPORTED("input %zu ('%.200s') is a vector unsqueezed to (N, C, 1, 1), which "
                           "clcnn reads only as a Mul's scale",
                           k + 1, v->name);
    if (v->kind == VALUE_PADDED && !padded_ok)
        return UNSUPPORTED("input %zu ('%.200s') comes from a Pad, which clcnn folds only into a "
                           "Conv or AveragePool reading it",
                           k + 1, v->name);
    return CLCNN_OK;
}

/* Input k as a constant; float_wanted: float or double values. */
static clcnn_status constant_input(importer *im, size_t k, int float_wanted, const char *what,
                                   int *out) {
    clcnn_status status = input_value(im, k, out);
    if (status)
        return status;
    const value *v = &im->values[*out];
    if (v->kind != VALUE_CONSTANT)
        return UNSUPPORTED("%s ('%.200s') must be a constant (an initializer), not computed", what,
                           v->name);
    if (float_wanted && !v->floats)
        return UNSUPPORTED("%s ('%.200s') must hold floats", what, v->name);
    if (!float_wanted && !v->ints)
        return UNSUPPORTED("%s ('%.200s') must hold integers", what, v->name);
    return CLCNN_OK;
}

static const Onnx__AttributeProto *attribute(const Onnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attribute_int(const Onnx__NodeProto *n, const char *name, int64_t fallback) {
    const Onnx__AttributeProto *a = attribute(n, name);
    return a && a->has_i ? a->i : fallback;
}

static float attribute_float(const Onnx__NodeProto *n, const char *name, float fallback) {
    const Onnx__AttributeProto *a = attribute(n, name);
    return a && a->has_f ? a->f : fallback;
}

/* The attribute's ints (count of them), or count 0 when absent. */
static const int64_t *attribute_ints(const Onnx__NodeProto *n, const char *name, size_t *count) {
    const Onnx__AttributeProto *a = attribute(n, name);
    *count = a ? a->n_ints : 0;
    return a ? a->ints : NULL;
}

/* Integers an op takes as its attribute `name` before opset `since` and as
 * its constant input 1 from then on (axes, a shape); with optional, an
 * absent input falls back to the attribute. values stays NULL and count 0
 * when neither is there. */
static clcnn_status ints_attribute_or_input(importer *im, int since, const char *name, int optional,
                                            const int64_t **values, size_t *count) {
    if (im->opset < since || (optional && !has_input(im->node, 1))) {
        *values = attribute_ints(im->node, name, count);
        return CLCNN_OK;
    }
    char what[64];
    snprintf(what, sizeof(what), "the %s", name);
    int vi;
    clcnn_status status = constant_input(im, 1, 0, what, &vi);
    if (status)
        return status;
    *values = im->values[vi].ints;
    *count = (size_t)im->values[vi].count;
    return CLCNN_OK;
}

/* 1 when the attribute is a string equal to text (absent: fallback). */
static int attribute_string_is(const Onnx__NodeProto *n, const char *name, const char *text,
                               int absent) {
    const Onnx__AttributeProto *a = attribute(n, name);
    if (!a || !a->has_s)
        return absent;
    return a->s.len == strlen(text) && memcmp(a->s.data, text, a->s.len) == 0;
}

/* Refuses attributes other than those listed (NULL-terminated). */
static clcnn_status known_attributes(importer *im, const char *const *names) {
    for (size_t i = 0; i < im->node->n_attribute; i++) {
        const char *name = im->node->attribute[i]->name ? im->node->attribute[i]->name : "";
        int known = 0;
        for (int k = 0; names[k] && !known; k++)
            known = strcmp(names[k], name) == 0;
        if (!known)
            return UNSUPPORTED("attribute '%.100s' is not supported", name);
    }
    return CLCNN_OK;
}

/* Refuses uses of node outputs from k on (optional outputs clcnn does not compute). */
static int output_used(const importer *im, size_t k);
static clcnn_status unused_outputs_from(importer *im, size_t k, const char *what) {
    for (size_t i = k; i < im->node->n_output; i++)
        if (output_used(im, i))
            return UNSUPPORTED("output %zu (%s, '%.200s') is used, and clcnn does not compute it",
                               i + 1, what, im->node->output[i]);
    return CLCNN_OK;
}

static int normalise_axis(int64_t axis, int rank) {
    return (int)(axis < 0 ? axis + rank : axis);
}

static int64_t features_of(const value *v) {
    int64_t n = 1;
    for (int d = 1; d < v->rank; d++)
        n *= v->dims[d];
    return n;
}

/* ---- the use counts of values (for folding) ---------------------------------------------- */

static int uses_of(const importer *im, const char *name) {
    int uses = 0;
    const Onnx__GraphProto *g = im->graph;
    for (size_t i = 0; i < g->n_node; i++)
        for (size_t k = 0; k < g->node[i]->n_input; k++)
            uses += g->node[i]->input[k] && strcmp(g->node[i]->input[k], name) == 0;
    for (size_t i = 0; i < g->n_output; i++)
        uses += g->output[i]->name && strcmp(g->output[i]->name, name) == 0;
    return uses;
}

static int output_used(const importer *im, size_t k) {
    const char *name = im->node->output[k];
    return name && name[0] && uses_of(im, name) > 0;
}

/* ---- window geometry (Conv, MaxPool, AveragePool) ---------------------------------------- */

typedef struct window {
    int size_h, size_w, stride_h, stride_w, dilation_h, dilation_w;
    int pad_top, pad_left, pad_bottom, pad_right;
    int64_t out_h, out_w; /* ONNX's output size */
} window;

static int64_t span(int size, int dilation) {
    return (int64_t)dilation * (size - 1) + 1;
}

/* Reads kernel_shape (or kernel, the weight's spatial dims), strides,
 * dilations, pads and auto_pad for an input of rank 3 or 4. */
static clcnn_status read_window(importer *im, const value *in, const int64_t *kernel, int ceil_mode,
                                window *w) {
    const int spatial = in->rank - 2;
    const Onnx__NodeProto *n = im->node;
    size_t count;
    const int64_t *ks = attribute_ints(n, "kernel_shape", &count);
    if (count && count != (size_t)spatial)
        return MALFORMED("kernel_shape has %zu values for %d spatial dimensions", count, spatial);
    int64_t sizes[2], strides[2] = {1, 1}, dilations[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
    for (int d = 0; d < spatial; d++) {
        sizes[d] = count ? ks[d] : (kernel ? kernel[d] : -1);
        if (sizes[d] < 1)
            return MALFORMED("kernel_shape is missing or not positive");
        if (kernel && sizes[d] != kernel[d])
            return MALFORMED("kernel_shape %lld disagrees with the weight's %lld",
                             (long long)sizes[d], (long long)kernel[d]);
    }
    const int64_t *values = attribute_ints(n, "strides", &count);
    if (count && count != (size_t)spatial)
        return MALFORMED("strides has %zu values for %d spatial dimensions", count, spatial);
    for (size_t d = 0; d < count; d++)
        strides[d] = values[d];
    values = attribute_ints(n, "dilations", &count);
    if (count && count != (size_t)spatial)
        return MALFORMED("dilations has %zu values for %d spatial dimensions", count, spatial);
    for (size_t d = 0; d < count; d++)
        dilations[d] = values[d];
    values = attribute_ints(n, "pads", &count);
    if (count && count != (size_t)(2 * spatial))
        return MALFORMED("pads has %zu values for %d spatial dimensions", count, spatial);
    for (size_t d = 0; d < count; d++)
        pads[d] = values[d];
    for (int d = 0; d < spatial; d++) {
        if (strides[d] < 1 || strides[d] > 1000000 || dilations[d] < 1 || dilations[d] > 1000000 ||
            sizes[d] > 1000000)
            return MALFORMED("strides, dilations and kernel sizes must be from 1 to 1000000");
        if (pads[d] < 0 || pads[d + spatial] < 0 || pads[d] > 1000000 ||
            pads[d + spatial] > 1000000)
            return UNSUPPORTED("negative or huge pads are not supported");
    }
    const int same_upper = attribute_string_is(n, "auto_pad", "SAME_UPPER", 0);
    const int same_lower = attribute_string_is(n, "auto_pad", "SAME_LOWER", 0);
    const int valid = attribute_string_is(n, "auto_pad", "VALID", 0);
    if (attribute(n, "auto_pad") && !same_upper && !same_lower && !valid &&
        !attribute_string_is(n, "auto_pad", "NOTSET", 0))
        return MALFORMED("auto_pad must be NOTSET, SAME_UPPER, SAME_LOWER or VALID");
    for (int d = 0; d < spatial; d++) {
        const int64_t input = in->dims[2 + d];
        const int64_t extent = span((int)sizes[d], (int)dilations[d]);
        if (valid) {
            pads[d] = pads[d + spatial] = 0;
        } else if (same_upper || same_lower) {
            const int64_t outputs = (input + strides[d] - 1) / strides[d];
            int64_t total = (outputs - 1) * strides[d] + extent - input;
            if (total < 0)
                total = 0;
            pads[d] = same_upper ? total / 2 : total - total / 2;
            pads[d + spatial] = total - pads[d];
        }
    }
    /* spatial 1: the (C, 1, L) layout, so the window is 1 x size */
    const int h = spatial == 2 ? 0 : -1, wd = spatial == 2 ? 1 : 0;
    w->size_h = h < 0 ? 1 : (int)sizes[h];
    w->stride_h = h < 0 ? 1 : (int)strides[h];
    w->dilation_h = h < 0 ? 1 : (int)dilations[h];
    w->pad_top = h < 0 ? 0 : (int)pads[h];
    w->pad_bottom = h < 0 ? 0 : (int)pads[h + spatial];
    w->size_w = (int)sizes[wd];
    w->stride_w = (int)strides[wd];
    w->dilation_w = (int)dilations[wd];
    w->pad_left = (int)pads[wd];
    w->pad_right = (int)pads[wd + spatial];
    const int64_t in_h = spatial == 2 ? in->dims[2] : 1, in_w = in->dims[in->rank - 1];
    const int64_t room_h = in_h + w->pad_top + w->pad_bottom - span(w->size_h, w->dilation_h);
    const int64_t room_w = in_w + w->pad_left + w->pad_right - span(w->size_w, w->dilation_w);
    if (room_h < 0 || room_w < 0)
        return MALFORMED("the window is larger than the padded input");
    w->out_h = (ceil_mode ? (room_h + w->stride_h - 1) : room_h) / w->stride_h + 1;
    w->out_w = (ceil_mode ? (room_w + w->stride_w - 1) : room_w) / w->stride_w + 1;
    return CLCNN_OK;
}

static int append(char *buf, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
static int append(char *buf, size_t size, const char *format, ...) {
    size_t used = strlen(buf);
    va_list args;
    va_start(args, format);
    int n = vsnprintf(buf + used, size - used, format, args);
    va_end(args);
    return n;
}

static void append_pair(char *buf, size_t size, const char *key, int h, int w, int fallback) {
    if (h == fallback && w == fallback)
        return;
    if (h == w)
        append(buf, size, " %s=%d", key, h);
    else
        append(buf, size, " %s=%dx%d", key, h, w);
}

/* The output dims of a window op: (N, C, out_h, out_w) or (N, C, out_w). */
static void window_dims(const value *in, int64_t channels, const window *w, int64_t *dims) {
    dims[0] = in->dims[0];
    dims[1] = channels;
    if (in->rank == 4) {
        dims[2] = w->out_h;
        dims[3] = w->out_w;
    } else {
        dims[2] = w->out_w;
    }
}

/* ---- the ops ---------------------------------------------------------------------------- */

static clcnn_status image_input(importer *im, const value *v) {
    if (v->rank != 3 && v->rank != 4)
        return UNSUPPORTED("input of rank %d; clcnn computes this op on (N, C, H, W) or (N, C, L)",
                           v->rank);
    return CLCNN_OK;
}

/* Value xi as an image input *x; a Pad folded into it (VALUE_PADDED) gives
 * the value it pads, and *pad_source is xi then, -1 otherwise. */
static clcnn_status padded_image_input(importer *im, int xi, value *x, int *pad_source) {
    *x = im->values[xi];
    *pad_source = -1;
    if (x->kind == VALUE_PADDED) {
        *pad_source = xi;
        *x = im->values[x->source];
    }
    return image_input(im, x);
}

static clcnn_status op_conv(importer *im) {
    static const char *const known[] = {"kernel_shape", "strides",  "pads", "dilations",
                                        "group",        "auto_pad", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi, wi, bi = -1;
    if (status || (status = activation_input(im, 0, 1, &xi)) ||
        (status = constant_input(im, 1, 1, "the weight", &wi)))
        return status;
    if (has_input(im->node, 2) && (status = constant_input(im, 2, 1, "the bias", &bi)))
        return status;
    value x;
    int pad_source;
    if ((status = padded_image_input(im, xi, &x, &pad_source)))
        return status;
    const value *weight = &im->values[wi];
    const int64_t group = attribute_int(im->node, "group", 1);
    if (weight->rank != x.rank)
        return MALFORMED("weight of rank %d for an input of rank %d", weight->rank, x.rank);
    const int64_t filters = weight->dims[0];
    if (group < 1 || filters < 1 || filters % group != 0 || weight->dims[1] * group != x.dims[1])
        return MALFORMED("weight of %lld filters of %lld channels does not fit %lld input "
                         "channels in %lld groups",
                         (long long)filters, (long long)weight->dims[1], (long long)x.dims[1],
                         (long long)group);
    if (bi >= 0 && im->values[bi].count != filters)
        return MALFORMED("bias of %lld values for %lld filters", (long long)im->values[bi].count,
                         (long long)filters);
    window w;
    /* fold the Pad's zeros in: the window sees the padded input */
    value padded = x;
    if (pad_source >= 0) {
        const value *p = &im->values[pad_source];
        if (x.rank == 4)
            padded.dims[2] += p->pad_top + p->pad_bottom;
        padded.dims[x.rank - 1] += p->pad_left + p->pad_right;
    }
    if ((status = read_window(im, &padded, weight->dims + 2, 0, &w)))
        return status;
    if (pad_source >= 0) {
        const value *p = &im->values[pad_source];
        if (attribute(im->node, "auto_pad") &&
            !attribute_string_is(im->node, "auto_pad", "NOTSET", 1) &&
            !attribute_string_is(im->node, "auto_pad", "VALID", 0))
            return UNSUPPORTED("auto_pad SAME after a Pad is not supported");
        w.pad_top += p->pad_top;
        w.pad_bottom += p->pad_bottom;
        w.pad_left += p->pad_left;
        w.pad_right += p->pad_right;
    }
    int li;
    char options[256];
    snprintf(options, sizeof(options), "filters=%lld", (long long)filters);
    if (w.size_h == w.size_w)
        append(options, sizeof(options), " size=%d", w.size_h);
    else
        append(options, sizeof(options), " size=%dx%d", w.size_h, w.size_w);
    append_pair(options, sizeof(options), "stride", w.stride_h, w.stride_w, 1);
    if (w.pad_top == w.pad_bottom && w.pad_left == w.pad_right)
        append_pair(options, sizeof(options), "pad", w.pad_top, w.pad_left, 0);
    else
        append(options, sizeof(options), " pad=%d,%d,%d,%d", w.pad_top, w.pad_left, w.pad_bottom,
               w.pad_right);
    append_pair(options, sizeof(options), "dilation", w.dilation_h, w.dilation_w, 1);
    if (group != 1)
        append(options, sizeof(options), " groups=%lld", (long long)group);
    if (bi < 0)
        append(options, sizeof(options), " bias=false");
    int source = pad_source >= 0 ? im->values[pad_source].source : xi;
    if ((status = add_layer(im, "conv", &source, 1, weight->name, &li)))
        return status;
    snprintf(im->layers[li].options, sizeof(im->layers[li].options), "%s", options);
    if ((status = add_tensor(im, li, "weight", weight->floats, weight->count, 1.0f)) ||
        (bi >= 0 && (status = add_tensor(im, li, "bias", im->values[bi].floats, filters, 1.0f))))
        return status;
    int64_t dims[MAX_RANK];
    window_dims(&x, filters, &w, dims);
    return set_output(im, 0, li, x.rank, dims);
}

/* What PyTorch's ceil mode gives (a last window must start inside the input
 * or its leading padding), which clcnn computes. */
static int64_t clcnn_pool_outputs(int64_t input, int size, int stride, int before, int after,
                                  int ceil_mode) {
    int64_t room = input + (int64_t)before + after - size;
    if (!ceil_mode)
        return room / stride + 1;
    int64_t outputs = (room + stride - 1) / stride + 1;
    if ((outputs - 1) * stride >= input + before)
        outputs--;
    return outputs;
}

static clcnn_status op_pool(importer *im, int average) {
    static const char *const known[] = {"kernel_shape",      "strides",       "pads",
                                        "dilations",         "ceil_mode",     "auto_pad",
                                        "count_include_pad", "storage_order", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, average, &xi)))
        return status;
    if (!average && (status = unused_outputs_from(im, 1, "the indices")))
        return status;
    value x;
    int pad_source;
    if ((status = padded_image_input(im, xi, &x, &pad_source)))
        return status;
    const int ceil_mode = (int)attribute_int(im->node, "ceil_mode", 0);
    const int include_pad = (int)attribute_int(im->node, "count_include_pad", 0);
    value padded = x;
    if (pad_source >= 0) {
        const value *p = &im->values[pad_source];
        if (x.rank == 4)
            padded.dims[2] += p->pad_top + p->pad_bottom;
        padded.dims[x.rank - 1] += p->pad_left + p->pad_right;
    }
    window w;
    if ((status = read_window(im, &padded, NULL, ceil_mode, &w)))
        return status;
    if (w.dilation_h != 1 || w.dilation_w != 1)
        return UNSUPPORTED("dilated pooling is not supported");
    const int own_pads = w.pad_top || w.pad_left || w.pad_bottom || w.pad_right;
    /* the divisor leaves the padding out: count_include_pad=0 over padding */
    const int exclude_pad = average && own_pads && !include_pad;
    if (exclude_pad && pad_source >= 0)
        return UNSUPPORTED("count_include_pad=0 over both its own pads and a Pad's zeros "
                           "(which count) is not supported");
    if (pad_source >= 0) {
        /* the Pad's zeros are part of the input: counted by the average */
        const value *p = &im->values[pad_source];
        w.pad_top += p->pad_top;
        w.pad_bottom += p->pad_bottom;
        w.pad_left += p->pad_left;
        w.pad_right += p->pad_right;
    }
    if (2 * w.pad_top > w.size_h || 2 * w.pad_left > w.size_w || 2 * w.pad_bottom > w.size_h ||
        2 * w.pad_right > w.size_w)
        return UNSUPPORTED("pads (%d,%d,%d,%d) are more than half the window %dx%d, which "
                           "clcnn (as PyTorch) refuses: a window could lie in the padding alone",
                           w.pad_top, w.pad_left, w.pad_bottom, w.pad_right, w.size_h, w.size_w);
    const int64_t in_h = x.rank == 4 ? x.dims[2] : 1, in_w = x.dims[x.rank - 1];
    if (clcnn_pool_outputs(in_h, w.size_h, w.stride_h, w.pad_top, w.pad_bottom, ceil_mode) !=
            w.out_h ||
        clcnn_pool_outputs(in_w, w.size_w, w.stride_w, w.pad_left, w.pad_right, ceil_mode) !=
            w.out_w)
        return UNSUPPORTED("with ceil_mode the last window starts in the padding, a window "
                           "ONNX's formula keeps and PyTorch's (clcnn's) drops");
    int li = -1;
    if ((status = add_layer(im, average ? "avgpool" : "maxpool", NULL, 0, NULL, &li)))
        return status;
    import_layer *l = &im->layers[li];
    l->input_count = 1;
    l->inputs[0] = x.layer;
    if (w.size_h == w.size_w)
        append(l->options, sizeof(l->options), "size=%d", w.size_h);
    else
        append(l->options, sizeof(l->options), "size=%dx%d", w.size_h, w.size_w);
    if (w.stride_h != w.size_h || w.stride_w != w.size_w) {
        if (w.stride_h == w.stride_w)
            append(l->options, sizeof(l->options), " stride=%d", w.stride_h);
        else
            append(l->options, sizeof(l->options), " stride=%dx%d", w.stride_h, w.stride_w);
    }
    if (w.pad_top == w.pad_bottom && w.pad_left == w.pad_right)
        append_pair(l->options, sizeof(l->options), "pad", w.pad_top, w.pad_left, 0);
    else
        append(l->options, sizeof(l->options), " pad=%d,%d,%d,%d", w.pad_top, w.pad_left,
               w.pad_bottom, w.pad_right);
    if (ceil_mode)
        append(l->options, sizeof(l->options), " ceil=true");
    if (exclude_pad)
        append(l->options, sizeof(l->options), " count_pad=false");
    int64_t dims[MAX_RANK];
    window_dims(&x, x.dims[1], &w, dims);
    return set_output(im, 0, li, x.rank, dims);
}

/* A layer of `type` on activation input 0 whose output has the input's shape. */
static clcnn_status same_shape_layer(importer *im, const char *type, const char *options) {
    int xi, li;
    clcnn_status status = activation_input(im, 0, 0, &xi);
    if (status || (status = add_layer(im, type, &xi, 1, NULL, &li)))
        return status;
    if (options)
        snprintf(im->layers[li].options, sizeof(im->layers[li].options), "%s", options);
    const value *x = &im->values[xi];
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof(dims));
    return set_output(im, 0, li, x->rank, dims);
}

static clcnn_status op_unary(importer *im, const char *type) {
    static const char *const none[] = {NULL};
    clcnn_status status = known_attributes(im, none);
    return status ? status : same_shape_layer(im, type, NULL);
}

static clcnn_status op_leaky(importer *im) {
    static const char *const known[] = {"alpha", NULL};
    clcnn_status status = known_attributes(im, known);
    if (status)
        return status;
    char options[64];
    snprintf(options, sizeof(options), "slope=%.9g",
             (double)attribute_float(im->node, "alpha", 0.01f));
    return same_shape_layer(im, "leaky", options);
}

/* Clip(0, 6) is relu6, Clip(0, +inf) relu. */
static clcnn_status op_clip(importer *im) {
    float low = -INFINITY, high = INFINITY;
    clcnn_status status;
    if (im->opset < 11) {
        static const char *const known[] = {"min", "max", NULL};
        if ((status = known_attributes(im, known)))
            return status;
        low = attribute_float(im->node, "min", -INFINITY);
        high = attribute_float(im->node, "max", INFINITY);
    } else {
        static const char *const none[] = {NULL};
        if ((status = known_attributes(im, none)))
            return status;
        for (size_t k = 1; k <= 2; k++) {
            if (!has_input(im->node, k))
                continue;
            int ci;
            if ((status = constant_input(im, k, 1, k == 1 ? "min" : "max", &ci)))
                return status;
            if (im->values[ci].count != 1)
                return MALFORMED("%s must be a scalar", k == 1 ? "min" : "max");
            (k == 1 ? &low : &high)[0] = im->values[ci].floats[0];
        }
    }
    if (low == 0.0f && high == 6.0f)
        return same_shape_layer(im, "relu6", NULL);
    if (low == 0.0f && isinf(high) && high > 0)
        return same_shape_layer(im, "relu", NULL);
    return UNSUPPORTED("Clip(%g, %g): clcnn has Clip(0, 6) (relu6) and Clip(0, inf) (relu)",
                       (double)low, (double)high);
}

static int same_dims(const value *a, const value *b) {
    if (a->rank != b->rank)
        return 0;
    for (int d = 0; d < a->rank; d++)
        if (a->dims[d] != b->dims[d])
            return 0;
    return 1;
}

/* Add of two activations of one shape, or a MatMul's output plus its bias. */
static clcnn_status op_add(importer *im) {
    static const char *const legacy[] = {"broadcast", "axis", NULL};
    clcnn_status status = known_attributes(im, legacy);
    int ai, bi;
    if (status || (status = input_value(im, 0, &ai)) || (status = input_value(im, 1, &bi)))
        return status;
    if (im->values[ai].kind == VALUE_CONSTANT) {
        int swap = ai;
        ai = bi;
        bi = swap;
    }
    const value *a = &im->values[ai], *b = &im->values[bi];
    if (a->kind != VALUE_ACTIVATION)
        return UNSUPPORTED("an Add of %s is not supported",
                           a->kind == VALUE_CONSTANT ? "two constants" : "a Pad's output");
    if (b->kind == VALUE_CONSTANT) {
        import_layer *dense = &im->layers[a->layer];
        if (!dense->matmul_without_bias || uses_of(im, a->name) != 1 || !b->floats ||
            b->count != dense->units || (b->rank == 2 && b->dims[0] != 1) || b->rank > 2)
            return UNSUPPORTED("adding a constant is supported only as the bias of a MatMul "
                               "(a vector of its units, read by nothing else)");
        dense->matmul_without_bias = 0;
        snprintf(dense->options, sizeof(dense->options), "units=%d", dense->units);
        if ((status = add_tensor(im, a->layer, "bias", b->floats, b->count, 1.0f)))
            return status;
        return alias_output(im, 0, ai);
    }
    if (b->kind != VALUE_ACTIVATION)
        return UNSUPPORTED("input 2 comes from a Pad, which clcnn folds only into Conv or "
                           "AveragePool");
    if (a->vector_image || b->vector_image)
        return UNSUPPORTED("an input is a vector unsqueezed to (N, C, 1, 1), which clcnn reads "
                           "only as a Mul's scale");
    if (!same_dims(a, b)) {
        char sa[96], sb[96];
        format_dims(a->dims, a->rank, sa, sizeof(sa));
        format_dims(b->dims, b->rank, sb, sizeof(sb));
        return UNSUPPORTED("broadcasting %s + %s is not supported (clcnn adds equal shapes)", sa,
                           sb);
    }
    int inputs[2] = {ai, bi}, li;
    if ((status = add_layer(im, "add", inputs, 2, NULL, &li)))
        return status;
    return set_output(im, 0, li, a->rank, a->dims);
}

/* ---- shape arithmetic on integer constants (x.view(x.size(0), -1) with a free
 * batch: Shape, Gather, Unsqueeze, Concat feeding a Reshape) ---- */

/* A new integer constant named by node output 0, count values (rank 0 or 1). */
static clcnn_status int_constant(importer *im, const int64_t *values, int64_t count, int rank) {
    int64_t *copy = malloc(sizeof(int64_t) * (size_t)(count + 1));
    if (!copy)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    memcpy(copy, values, sizeof(int64_t) * (size_t)count);
    value *v = add_value(im, im->node->output[0]);
    if (!v) {
        free(copy);
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    }
    v->kind = VALUE_CONSTANT;
    v->ints = copy;
    v->count = count;
    v->rank = rank;
    v->dims[0] = count;
    return CLCNN_OK;
}

/* Shape of an activation: its dims, the free batch as BATCH_SYMBOL. */
static clcnn_status op_shape(importer *im) {
    static const char *const known[] = {"start", "end", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const value *x = &im->values[xi];
    int64_t start = attribute_int(im->node, "start", 0),
            end = attribute_int(im->node, "end", x->rank);
    start = start < 0 ? start + x->rank : start;
    end = end < 0 ? end + x->rank : end;
    start = start < 0 ? 0 : start > x->rank ? x->rank : start;
    end = end < start ? start : end > x->rank ? x->rank : end;
    int64_t dims[MAX_RANK];
    for (int64_t d = start; d < end; d++)
        dims[d - start] = x->dims[d] < 0 ? BATCH_SYMBOL : x->dims[d];
    return int_constant(im, dims, end - start, 1);
}

/* Gather along axis 0 of a 1-D integer constant. */
static clcnn_status op_gather(importer *im) {
    static const char *const known[] = {"axis", NULL};
    clcnn_status status = known_attributes(im, known);
    int di, ii;
    if (status || (status = input_value(im, 0, &di)))
        return status;
    if (im->values[di].kind != VALUE_CONSTANT || !im->values[di].ints)
        return UNSUPPORTED("Gather is supported on integer constants (shape arithmetic) only");
    if ((status = constant_input(im, 1, 0, "the indices", &ii)))
        return status;
    const value *data = &im->values[di], *indices = &im->values[ii];
    if (data->rank != 1 || attribute_int(im->node, "axis", 0) != 0 || indices->rank > 1 ||
        indices->count > MAX_RANK)
        return UNSUPPORTED("Gather is supported along axis 0 of a vector of integers only");
    int64_t out[MAX_RANK];
    for (int64_t k = 0; k < indices->count; k++) {
        int64_t at = indices->ints[k] < 0 ? indices->ints[k] + data->count : indices->ints[k];
        if (at < 0 || at >= data->count)
            return MALFORMED("index %lld out of range", (long long)indices->ints[k]);
        out[k] = data->ints[at];
    }
    return int_constant(im, out, indices->count, indices->rank);
}

/* Unsqueeze of an integer scalar into a vector of one. */
static clcnn_status fold_unsqueeze(importer *im, const value *x) {
    if (x->rank != 0 || !x->ints)
        return UNSUPPORTED("Unsqueeze of a constant is supported for an integer scalar only");
    return int_constant(im, x->ints, 1, 1);
}

/* Concat of integer vectors. */
static clcnn_status fold_concat(importer *im) {
    int64_t out[MAX_RANK];
    int64_t count = 0;
    for (size_t k = 0; k < im->node->n_input; k++) {
        int ci;
        clcnn_status status = constant_input(im, k, 0, "a shape part", &ci);
        if (status)
            return status;
        const value *v = &im->values[ci];
        if (v->rank != 1 || count + v->count > MAX_RANK)
            return UNSUPPORTED("Concat of constants is supported for short integer vectors only");
        memcpy(out + count, v->ints, sizeof(int64_t) * (size_t)v->count);
        count += v->count;
    }
    return int_constant(im, out, count, 1);
}

/* Sum of activations of one shape: an add of them all. */
static clcnn_status op_sum(importer *im) {
    static const char *const none[] = {NULL};
    clcnn_status status = known_attributes(im, none);
    if (status)
        return status;
    const size_t count = im->node->n_input;
    if (count < 1)
        return MALFORMED("no inputs");
    if (count > LAYER_MAX_INPUTS)
        return UNSUPPORTED("%zu inputs, at most %d supported", count, LAYER_MAX_INPUTS);
    int inputs[LAYER_MAX_INPUTS];
    for (size_t k = 0; k < count; k++) {
        if ((status = activation_input(im, k, 0, &inputs[k])))
            return status;
        if (!same_dims(&im->values[inputs[k]], &im->values[inputs[0]]))
            return UNSUPPORTED("broadcasting is not supported (clcnn adds equal shapes)");
    }
    if (count == 1)
        return alias_output(im, 0, inputs[0]);
    int li;
    if ((status = add_layer(im, "add", inputs, (int)count, NULL, &li)))
        return status;
    const value *first = &im->values[inputs[0]];
    return set_output(im, 0, li, first->rank, first->dims);
}

/* Unsqueeze of a vector (N, C) to (N, C, 1, 1): the same values, for a Mul. */
static clcnn_status op_unsqueeze(importer *im) {
    static const char *const known[] = {"axes", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = input_value(im, 0, &xi)))
        return status;
    if (im->values[xi].kind == VALUE_CONSTANT)
        return fold_unsqueeze(im, &im->values[xi]);
    if ((status = activation_input(im, 0, 0, &xi)))
        return status;
    const int64_t *axes;
    size_t count;
    if ((status = ints_attribute_or_input(im, 13, "axes", 0, &axes, &count)))
        return status;
    const value *x = &im->values[xi];
    /* (N, C, L) -> (N, C, 1, L): the same C x 1 x L to clcnn */
    if (x->rank == 3 && count == 1 && normalise_axis(axes[0], 4) == 2) {
        if ((status = alias_output(im, 0, xi)))
            return status;
        value *v = &im->values[im->value_count - 1];
        v->rank = 4;
        v->dims[3] = v->dims[2];
        v->dims[2] = 1;
        return CLCNN_OK;
    }
    const int first = count == 2 ? normalise_axis(axes[0], 4) : -1;
    const int second = count == 2 ? normalise_axis(axes[1], 4) : -1;
    if (x->rank != 2 || !((first == 2 && second == 3) || (first == 3 && second == 2)))
        return UNSUPPORTED("Unsqueeze is supported from (N, C) to (N, C, 1, 1) and from "
                           "(N, C, L) to (N, C, 1, L) only");
    if ((status = alias_output(im, 0, xi)))
        return status;
    value *v = &im->values[im->value_count - 1];
    v->rank = 4;
    v->dims[2] = v->dims[3] = 1;
    v->vector_image = 1;
    return CLCNN_OK;
}

static clcnn_status flatten_to_vector(importer *im, int xi);

/* Squeeze of (N, C, 1, L) to (N, C, L) (the same C x 1 x L to clcnn), or of
 * (N, C, 1, 1) to (N, C): a flatten. */
static clcnn_status op_squeeze(importer *im) {
    static const char *const known[] = {"axes", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const int64_t *axes;
    size_t count;
    if ((status = ints_attribute_or_input(im, 13, "axes", 1, &axes, &count)))
        return status;
    const value *x = &im->values[xi];
    int over[MAX_RANK] = {0};
    for (size_t k = 0; k < count; k++) {
        const int axis = normalise_axis(axes[k], x->rank);
        if (axis < 0 || axis >= x->rank || x->dims[axis] != 1)
            return MALFORMED("axis %lld is not of size 1", (long long)axes[k]);
        over[axis] = 1;
    }
    if (count == 0) /* every axis of size 1: only the spatial ones may be */
        for (int d = 1; d < x->rank; d++)
            over[d] = x->dims[d] == 1;
    if (over[0] || over[1] || x->rank != 4)
        return UNSUPPORTED("Squeeze is supported from (N, C, 1, L) to (N, C, L) and from "
                           "(N, C, 1, 1) to (N, C) only");
    if (over[2] && over[3])
        return flatten_to_vector(im, xi);
    if (!over[2] || over[3])
        return UNSUPPORTED("Squeeze is supported from (N, C, 1, L) to (N, C, L) and from "
                           "(N, C, 1, 1) to (N, C) only");
    if ((status = alias_output(im, 0, xi)))
        return status;
    value *v = &im->values[im->value_count - 1];
    v->rank = 3;
    v->dims[2] = v->dims[3];
    return CLCNN_OK;
}

/* Mul of two activations of one shape, or of (N, C, H, W) by (N, C, 1, 1). */
static clcnn_status op_mul(importer *im) {
    static const char *const legacy[] = {"broadcast", "axis", NULL};
    clcnn_status status = known_attributes(im, legacy);
    int ai, bi;
    if (status || (status = activation_input(im, 0, 0, &ai)) ||
        (status = activation_input(im, 1, 0, &bi)))
        return status;
    const value *a = &im->values[ai], *b = &im->values[bi];
    if (features_of(a) < features_of(b)) {
        const value *swap = a;
        a = b;
        b = swap;
        int s = ai;
        ai = bi;
        bi = s;
    }
    int fits = same_dims(a, b);
    if (!fits && a->rank == b->rank && a->rank >= 3 && a->dims[0] == b->dims[0] &&
        a->dims[1] == b->dims[1]) {
        fits = 1;
        for (int d = 2; d < b->rank; d++)
            fits = fits && b->dims[d] == 1;
    }
    if (!fits) {
        char sa[96], sb[96];
        format_dims(a->dims, a->rank, sa, sizeof(sa));
        format_dims(b->dims, b->rank, sb, sizeof(sb));
        return UNSUPPORTED("multiplying %s by %s is not supported (equal shapes, or channels "
                           "(N, C, 1, 1) scaling (N, C, H, W))",
                           sa, sb);
    }
    int inputs[2] = {ai, bi}, li;
    if ((status = add_layer(im, "mul", inputs, 2, NULL, &li)))
        return status;
    return set_output(im, 0, li, a->rank, a->dims);
}

static clcnn_status op_concat(importer *im) {
    static const char *const known[] = {"axis", NULL};
    clcnn_status status = known_attributes(im, known);
    if (status)
        return status;
    /* axis defaults to 1 before opset 4 */
    if (!attribute(im->node, "axis") && im->opset >= 4)
        return MALFORMED("attribute 'axis' is missing");
    const size_t count = im->node->n_input;
    if (count < 1)
        return MALFORMED("no inputs");
    if (count > LAYER_MAX_INPUTS)
        return UNSUPPORTED("%zu inputs, at most %d supported", count, LAYER_MAX_INPUTS);
    int inputs[LAYER_MAX_INPUTS];
    if ((status = input_value(im, 0, &inputs[0])))
        return status;
    if (im->values[inputs[0]].kind == VALUE_CONSTANT)
        return fold_concat(im);
    for (size_t k = 0; k < count; k++)
        if ((status = activation_input(im, k, 0, &inputs[k])))
            return status;
    const value *first = &im->values[inputs[0]];
    const int axis = normalise_axis(attribute_int(im->node, "axis", 1), first->rank);
    if (axis != 1)
        return UNSUPPORTED("concatenation along axis %d is not supported (clcnn concatenates "
                           "along the channels, axis 1)",
                           axis);
    int64_t dims[MAX_RANK];
    memcpy(dims, first->dims, sizeof(dims));
    dims[1] = 0;
    for (size_t k = 0; k < count; k++) {
        const value *v = &im->values[inputs[k]];
        int fits = v->rank == first->rank;
        for (int d = 0; fits && d < v->rank; d++)
            fits = d == 1 || v->dims[d] == first->dims[d];
        if (!fits)
            return MALFORMED("input %zu's shape does not fit the first's", k + 1);
        dims[1] += v->dims[1];
    }
    if (count == 1)
        return alias_output(im, 0, inputs[0]);
    int li;
    if ((status = add_layer(im, "concat", inputs, (int)count, NULL, &li)))
        return status;
    return set_output(im, 0, li, first->rank, dims);
}

static clcnn_status op_global_average(importer *im) {
    static const char *const none[] = {NULL};
    clcnn_status status = known_attributes(im, none);
    int xi, li;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const value *x = &im->values[xi];
    if ((status = image_input(im, x)) ||
        (status = add_layer(im, "globalavgpool", &xi, 1, NULL, &li)))
        return status;
    int64_t dims[MAX_RANK] = {x->dims[0], x->dims[1], 1, 1};
    return set_output(im, 0, li, x->rank, dims);
}

/* flatten (N, ...) into (N, features): a layer, or nothing for a vector. */
static clcnn_status flatten_to_vector(importer *im, int xi) {
    const value *x = &im->values[xi];
    if (x->rank == 2)
        return alias_output(im, 0, xi);
    int li;
    clcnn_status status = add_layer(im, "flatten", &xi, 1, NULL, &li);
    if (status)
        return status;
    x = &im->values[xi];
    int64_t dims[2] = {x->dims[0], features_of(x)};
    return set_output(im, 0, li, 2, dims);
}

static clcnn_status op_reduce_mean(importer *im) {
    static const char *const known[] = {"axes", "keepdims", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi, li;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const value *x = &im->values[xi];
    size_t count;
    const int64_t *axes = attribute_ints(im->node, "axes", &count);
    int over[MAX_RANK] = {0};
    for (size_t k = 0; k < count; k++) {
        int axis = normalise_axis(axes[k], x->rank);
        if (axis < 0 || axis >= x->rank)
            return MALFORMED("axis %lld out of range", (long long)axes[k]);
        over[axis] = 1;
    }
    if (x->rank != 4 || count != 2 || !over[2] || !over[3])
        return UNSUPPORTED("ReduceMean is supported over H and W (axes 2, 3) of (N, C, H, W)");
    if ((status = add_layer(im, "globalavgpool", &xi, 1, NULL, &li)))
        return status;
    x = &im->values[xi];
    int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
    if (attribute_int(im->node, "keepdims", 1))
        return set_output(im, 0, li, 4, dims);
    /* (N, C): the pooled value, flattened */
    if ((status = set_output(im, 0, li, 4, dims)))
        return status;
    int pooled = im->value_count - 1;
    im->values[pooled].name = "";
    int fi;
    if ((status = add_layer(im, "flatten", &pooled, 1, NULL, &fi)))
        return status;
    int64_t flat[2] = {dims[0], dims[1]};
    return set_output(im, 0, fi, 2, flat);
}

static clcnn_status op_flatten(importer *im) {
    static const char *const known[] = {"axis", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const int axis = normalise_axis(attribute_int(im->node, "axis", 1), im->values[xi].rank);
    if (axis != 1)
        return UNSUPPORTED("Flatten with axis %d is not supported (axis 1 keeps the batch)", axis);
    return flatten_to_vector(im, xi);
}

static clcnn_status op_reshape(importer *im) {
    static const char *const known[] = {"allowzero", "shape", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const value *x = &im->values[xi];
    const int64_t *shape;
    size_t count;
    if ((status = ints_attribute_or_input(im, 5, "shape", 0, &shape, &count)))
        return status;
    const int allow_zero = (int)attribute_int(im->node, "allowzero", 0);
    int64_t dims[MAX_RANK];
    if (count < 1 || count > MAX_RANK)
        return MALFORMED("a shape of %zu dimensions", count);
    int unknown = -1;
    int64_t known_product = 1;
    for (size_t d = 0; d < count; d++) {
        int64_t v = shape[d];
        if (v == BATCH_SYMBOL)
            v = x->dims[0];
        else if (v == 0 && !allow_zero) {
            if ((int)d >= x->rank)
                return MALFORMED("0 copies dimension %zu, which the input lacks", d);
            v = x->dims[d];
        } else if (v == -1) {
            if (unknown >= 0)
                return MALFORMED("more than one -1");
            unknown = (int)d;
        } else if (v < 0)
            return MALFORMED("dimension %lld", (long long)v);
        dims[d] = v;
        if ((int)d != unknown && d > 0)
            known_product *= v;
    }
    const int64_t features = features_of(x);
    if (unknown > 0) {
        if (known_product == 0 || features % known_product != 0)
            return MALFORMED("cannot infer the -1");
        dims[unknown] = features / known_product;
    } else if (unknown == 0) {
        dims[0] = x->dims[0];
        if (known_product != features)
            return UNSUPPORTED("reshape changes the batch size");
    }
    if (dims[0] != x->dims[0])
        return UNSUPPORTED("reshape changes the batch dimension (%lld to %lld); clcnn keeps the "
                           "batch",
                           (long long)x->dims[0], (long long)dims[0]);
    value target = *x;
    target.rank = (int)count;
    memcpy(target.dims, dims, sizeof(dims));
    if (same_dims(&target, x))
        return alias_output(im, 0, xi);
    if (count == 2 && dims[1] == features)
        return flatten_to_vector(im, xi);
    return UNSUPPORTED("reshape to anything but (N, -1) is not supported");
}

/* A dense layer (*li) of m units on activation ai from the constant matrix
 * b: (m, k) with trans_b, else (k, m); its weight is alpha b or alpha b^T
 * (clcnn's weight is (units, inputs)), and it has a bias with has_bias. */
static clcnn_status add_dense_layer(importer *im, int ai, const value *b, int trans_b, float alpha,
                                    int has_bias, int *li) {
    const value *a = &im->values[ai];
    const int64_t k = trans_b ? b->dims[1] : b->dims[0], m = trans_b ? b->dims[0] : b->dims[1];
    if (k != a->dims[1])
        return MALFORMED("B has %lld rows for %lld input features", (long long)k,
                         (long long)a->dims[1]);
    if (m < 1 || m > 1000000)
        return UNSUPPORTED("%lld units", (long long)m);
    clcnn_status status = add_layer(im, "dense", &ai, 1, b->name, li);
    if (status)
        return status;
    import_layer *l = &im->layers[*li];
    l->units = (int)m;
    snprintf(l->options, sizeof(l->options), "units=%lld%s", (long long)m,
             has_bias ? "" : " bias=false");
    float *weight = malloc(sizeof(float) * (size_t)(m * k));
    if (!weight)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < k; j++)
            weight[i * k + j] = trans_b ? b->floats[i * k + j] : b->floats[j * m + i];
    status = add_tensor(im, *li, "weight", weight, m * k, alpha);
    free(weight);
    return status;
}

/* dense from Gemm (A, B, C): y = alpha A op(B) + beta C. */
static clcnn_status op_gemm(importer *im) {
    static const char *const known[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
    clcnn_status status = known_attributes(im, known);
    int ai, bi, ci = -1;
    if (status || (status = activation_input(im, 0, 0, &ai)) ||
        (status = constant_input(im, 1, 1, "B", &bi)))
        return status;
    if (has_input(im->node, 2) && (status = constant_input(im, 2, 1, "C", &ci)))
        return status;
    if (attribute_int(im->node, "transA", 0))
        return UNSUPPORTED("transA=1 is not supported");
    const int trans_b = (int)attribute_int(im->node, "transB", 0);
    const float alpha = attribute_float(im->node, "alpha", 1.0f);
    const float beta = attribute_float(im->node, "beta", 1.0f);
    const value *a = &im->values[ai], *b = &im->values[bi];
    if (a->rank != 2)
        return UNSUPPORTED("A of rank %d; Gemm takes (N, K)", a->rank);
    if (b->rank != 2)
        return MALFORMED("B of rank %d", b->rank);
    const int64_t m = trans_b ? b->dims[0] : b->dims[1];
    const value *c = ci >= 0 ? &im->values[ci] : NULL;
    if (c &&
        !(c->count == 1 || (c->count == m && (c->rank == 1 || (c->rank == 2 && c->dims[0] == 1)))))
        return UNSUPPORTED("C must be a scalar or a vector of the %lld units", (long long)m);
    int li;
    if ((status = add_dense_layer(im, ai, b, trans_b, alpha, c != NULL, &li)))
        return status;
    if (c) {
        float *bias = malloc(sizeof(float) * (size_t)m);
        if (!bias)
            return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
        for (int64_t i = 0; i < m; i++)
            bias[i] = c->floats[c->count == 1 ? 0 : i];
        status = add_tensor(im, li, "bias", bias, m, beta);
        free(bias);
        if (status)
            return status;
    }
    int64_t dims[2] = {a->dims[0], m};
    return set_output(im, 0, li, 2, dims);
}

/* dense without bias from MatMul (A, B); an Add of a vector may give it one. */
static clcnn_status op_matmul(importer *im) {
    static const char *const none[] = {NULL};
    clcnn_status status = known_attributes(im, none);
    int ai, bi;
    if (status || (status = activation_input(im, 0, 0, &ai)) ||
        (status = constant_input(im, 1, 1, "B", &bi)))
        return status;
    const value *a = &im->values[ai], *b = &im->values[bi];
    if (a->rank != 2 || b->rank != 2)
        return UNSUPPORTED("MatMul of ranks %d and %d; supported: (N, K) by a constant (K, M)",
                           a->rank, b->rank);
    int li;
    if ((status = add_dense_layer(im, ai, b, 0, 1.0f, 0, &li)))
        return status;
    im->layers[li].matmul_without_bias = 1;
    int64_t dims[2] = {a->dims[0], b->dims[1]};
    return set_output(im, 0, li, 2, dims);
}

static clcnn_status op_batchnorm(importer *im) {
    static const char *const known[] = {
        "epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi, ci[4];
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    static const char *const what[4] = {"the scale", "the bias", "the mean", "the variance"};
    for (int k = 0; k < 4; k++)
        if ((status = constant_input(im, (size_t)k + 1, 1, what[k], &ci[k])))
            return status;
    const value *x = &im->values[xi];
    if (x->rank < 2 || x->rank > 4)
        return UNSUPPORTED("input of rank %d", x->rank);
    for (int k = 0; k < 4; k++)
        if (im->values[ci[k]].count != x->dims[1])
            return MALFORMED("%s has %lld values for %lld channels", what[k],
                             (long long)im->values[ci[k]].count, (long long)x->dims[1]);
    if (!attribute_int(im->node, "spatial", 1))
        return UNSUPPORTED("spatial=0 is not supported");
    int training = (int)attribute_int(im->node, "training_mode", 0);
    if (im->opset < 7 && !attribute_int(im->node, "is_test", 0))
        training = 1;
    if ((status = unused_outputs_from(im, 1, "running statistics")))
        return status;
    const float eps = attribute_float(im->node, "epsilon", 1e-5f);
    const float momentum = attribute_float(im->node, "momentum", 0.9f);
    if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1))
        return UNSUPPORTED("epsilon %g, momentum %g", (double)eps, (double)momentum);
    int li;
    if ((status = add_layer(im, "batchnorm", &xi, 1, im->values[ci[0]].name, &li)))
        return status;
    /* ONNX's momentum keeps the old statistic; clcnn's (PyTorch's) takes the new */
    char options[128] = "";
    if (eps != 1e-5f)
        append(options, sizeof(options), "eps=%.9g", (double)eps);
    /* the shortest decimal whose export (float)(1 - m) is this momentum */
    char text[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, 1.0 - (double)momentum);
        if ((float)(1.0 - (double)strtof(text, NULL)) == momentum)
            break;
    }
    if (strtof(text, NULL) != 0.1f)
        append(options, sizeof(options), "%smomentum=%s", options[0] ? " " : "", text);
    snprintf(im->layers[li].options, sizeof(im->layers[li].options), "%s", options);
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int k = 0; k < 4; k++)
        if ((status = add_tensor(im, li, suffix[k], im->values[ci[k]].floats, x->dims[1], 1.0f)))
            return status;
    if (training)
        im->training_mode = 1;
    x = &im->values[xi];
    int64_t dims[MAX_RANK];
    memcpy(dims, x->dims, sizeof(dims));
    return set_output(im, 0, li, x->rank, dims);
}

static clcnn_status op_dropout(importer *im) {
    static const char *const known[] = {"ratio", "is_test", "seed", NULL};
    clcnn_status status = known_attributes(im, known);
    if (status || (status = unused_outputs_from(im, 1, "the mask")))
        return status;
    if (im->opset < 7 && !attribute_int(im->node, "is_test", 0))
        return UNSUPPORTED("dropout in training mode (is_test=0) draws random masks clcnn cannot "
                           "reproduce; export the model in eval mode");
    float ratio = attribute_float(im->node, "ratio", 0.5f);
    if (has_input(im->node, 1)) {
        int ri;
        if ((status = constant_input(im, 1, 1, "the ratio", &ri)))
            return status;
        if (im->values[ri].count != 1)
            return MALFORMED("the ratio must be a scalar");
        ratio = im->values[ri].floats[0];
    }
    if (has_input(im->node, 2)) {
        int ti;
        if ((status = input_value(im, 2, &ti)))
            return status;
        const value *t = &im->values[ti];
        if (t->kind != VALUE_CONSTANT || !t->ints || t->count != 1)
            return UNSUPPORTED("training_mode must be a constant boolean");
        if (t->ints[0])
            return UNSUPPORTED("dropout in training mode draws random masks clcnn cannot "
                               "reproduce; export the model in eval mode");
    }
    if (!(ratio >= 0 && ratio < 1))
        return UNSUPPORTED("ratio %g (clcnn's rate is from 0 to below 1)", (double)ratio);
    char options[64];
    snprintf(options, sizeof(options), "rate=%.9g", (double)ratio);
    return same_shape_layer(im, "dropout", options);
}

static clcnn_status op_softmax(importer *im) {
    static const char *const known[] = {"axis", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 0, &xi)))
        return status;
    const int rank = im->values[xi].rank;
    const int axis = normalise_axis(attribute_int(im->node, "axis", im->opset < 13 ? 1 : -1), rank);
    if (axis != rank - 1)
        return UNSUPPORTED("softmax over axis %d of a rank-%d tensor; clcnn's softmax is over the "
                           "last axis",
                           axis, rank);
    return same_shape_layer(im, "softmax", NULL);
}

static clcnn_status op_identity(importer *im) {
    int xi;
    clcnn_status status = input_value(im, 0, &xi);
    return status ? status : alias_output(im, 0, xi);
}

static clcnn_status constant_from_tensor(importer *im, const char *name, const Onnx__TensorProto *t,
                                         const char *what) {
    value *v = add_value(im, name);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_CONSTANT;
    char label[512];
    snprintf(label, sizeof(label), "%s: %s '%.200s'", im->path, what, name);
    clcnn_status status =
        tensor_values(im->ctx, label, t, &v->floats, &v->ints, &v->count, &v->rank, v->dims);
    if (status)
        im->value_count--;
    return status;
}

static clcnn_status op_constant(importer *im) {
    const Onnx__NodeProto *n = im->node;
    if (n->n_attribute != 1)
        return MALFORMED("a Constant needs exactly one attribute");
    const Onnx__AttributeProto *a = n->attribute[0];
    const char *name = a->name ? a->name : "";
    if (strcmp(name, "value") == 0 && a->t)
        return constant_from_tensor(im, n->output[0], a->t, "Constant");
    value *v = add_value(im, n->output[0]);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_CONSTANT;
    if (strcmp(name, "value_float") == 0 || strcmp(name, "value_floats") == 0) {
        const int one = strcmp(name, "value_float") == 0;
        v->count = one ? 1 : (int64_t)a->n_floats;
        v->rank = one ? 0 : 1;
        v->dims[0] = v->count;
        v->floats = malloc(sizeof(float) * (size_t)(v->count + 1));
        if (v->floats)
            for (int64_t i = 0; i < v->count; i++)
                v->floats[i] = one ? a->f : a->floats[i];
    } else if (strcmp(name, "value_int") == 0 || strcmp(name, "value_ints") == 0) {
        const int one = strcmp(name, "value_int") == 0;
        v->count = one ? 1 : (int64_t)a->n_ints;
        v->rank = one ? 0 : 1;
        v->dims[0] = v->count;
        v->ints = malloc(sizeof(int64_t) * (size_t)(v->count + 1));
        if (v->ints)
            for (int64_t i = 0; i < v->count; i++)
                v->ints[i] = one ? a->i : a->ints[i];
    } else {
        im->value_count--;
        return UNSUPPORTED("a Constant given by '%.100s' is not supported", name);
    }
    if (!v->floats && !v->ints) {
        im->value_count--;
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    }
    return CLCNN_OK;
}

/* Pad with zeros around H and W: remembered, folded into the next Conv or
 * AveragePool. */
static clcnn_status op_pad(importer *im) {
    static const char *const known[] = {"mode", "pads", "value", "paddings", NULL};
    clcnn_status status = known_attributes(im, known);
    int xi;
    if (status || (status = activation_input(im, 0, 1, &xi)))
        return status;
    if (!attribute_string_is(im->node, "mode", "constant", 1))
        return UNSUPPORTED("only constant padding is supported (reflect and edge are not)");
    const int64_t *pads;
    size_t count;
    float fill = 0.0f;
    if (im->opset < 11) {
        pads = attribute_ints(im->node, "pads", &count);
        if (!pads)
            pads = attribute_ints(im->node, "paddings", &count);
        fill = attribute_float(im->node, "value", 0.0f);
    } else {
        int pi;
        if ((status = constant_input(im, 1, 0, "pads", &pi)))
            return status;
        pads = im->values[pi].ints;
        count = (size_t)im->values[pi].count;
        if (has_input(im->node, 2)) {
            int ci;
            if ((status = constant_input(im, 2, 1, "the constant value", &ci)))
                return status;
            if (im->values[ci].count != 1)
                return MALFORMED("the constant value must be a scalar");
            fill = im->values[ci].floats[0];
        }
        if (has_input(im->node, 3))
            return UNSUPPORTED("the axes input is not supported");
    }
    if (fill != 0.0f)
        return UNSUPPORTED("padding with %g; clcnn pads with zeros only", (double)fill);
    value x = im->values[xi];
    const int base = x.kind == VALUE_PADDED ? x.source : xi;
    const value *source = &im->values[base];
    const int rank = source->rank;
    if (count != (size_t)(2 * rank))
        return MALFORMED("%zu pads for rank %d", count, rank);
    if (rank != 3 && rank != 4)
        return UNSUPPORTED("padding a tensor of rank %d (supported: rank 3 and 4)", rank);
    for (size_t d = 0; d < count; d++)
        if (pads[d] < 0 || pads[d] > 100000)
            return UNSUPPORTED("negative or huge pads (cropping) are not supported");
    if (pads[0] || pads[1] || pads[rank] || pads[rank + 1])
        return UNSUPPORTED("padding the batch or the channels is not supported");
    value *v = add_value(im, im->node->output[0]);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_PADDED;
    v->source = base;
    v->rank = rank;
    const int had = x.kind == VALUE_PADDED;
    v->pad_top = (had ? x.pad_top : 0) + (rank == 4 ? (int)pads[2] : 0);
    v->pad_bottom = (had ? x.pad_bottom : 0) + (rank == 4 ? (int)pads[6] : 0);
    v->pad_left = (had ? x.pad_left : 0) + (int)pads[rank - 1];
    v->pad_right = (had ? x.pad_right : 0) + (int)pads[2 * rank - 1];
    return CLCNN_OK;
}

static clcnn_status translate_node(importer *im) {
    const Onnx__NodeProto *n = im->node;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
        return UNSUPPORTED("operators of domain '%.100s' are not supported", n->domain);
    static const char *const supported[] = {"Conv",        "MaxPool",
                                            "AveragePool", "GlobalAveragePool",
                                            "ReduceMean",  "BatchNormalization",
                                            "Relu",        "Sigmoid",
                                            "Tanh",        "LeakyRelu",
                                            "Clip",        "Add",
                                            "Mul",         "Concat",
                                            "Flatten",     "Reshape",
                                            "Gemm",        "MatMul",
                                            "Dropout",     "Softmax",
                                            "Identity",    "Constant",
                                            "Pad",         "Sum",
                                            "Unsqueeze",   "Shape",
                                            "Gather",      "Squeeze",
                                            NULL};
    int known = 0;
    for (int i = 0; supported[i] && !known; i++)
        known = strcmp(supported[i], op) == 0;
    if (!known)
        return UNSUPPORTED("op %.64s is not supported", op);
    if (n->n_output < 1 || !n->output[0] || !n->output[0][0])
        return MALFORMED("no output");
    if (strcmp(op, "Conv") == 0)
        return op_conv(im);
    if (strcmp(op, "MaxPool") == 0)
        return op_pool(im, 0);
    if (strcmp(op, "AveragePool") == 0)
        return op_pool(im, 1);
    if (strcmp(op, "GlobalAveragePool") == 0)
        return op_global_average(im);
    if (strcmp(op, "ReduceMean") == 0)
        return op_reduce_mean(im);
    if (strcmp(op, "BatchNormalization") == 0)
        return op_batchnorm(im);
    if (strcmp(op, "Relu") == 0)
        return op_unary(im, "relu");
    if (strcmp(op, "Sigmoid") == 0)
        return op_unary(im, "sigmoid");
    if (strcmp(op, "Tanh") == 0)
        return op_unary(im, "tanh");
    if (strcmp(op, "LeakyRelu") == 0)
        return op_leaky(im);
    if (strcmp(op, "Clip") == 0)
        return op_clip(im);
    if (strcmp(op, "Add") == 0)
        return op_add(im);
    if (strcmp(op, "Mul") == 0)
        return op_mul(im);
    if (strcmp(op, "Concat") == 0)
        return op_concat(im);
    if (strcmp(op, "Flatten") == 0)
        return op_flatten(im);
    if (strcmp(op, "Reshape") == 0)
        return op_reshape(im);
    if (strcmp(op, "Gemm") == 0)
        return op_gemm(im);
    if (strcmp(op, "MatMul") == 0)
        return op_matmul(im);
    if (strcmp(op, "Dropout") == 0)
        return op_dropout(im);
    if (strcmp(op, "Softmax") == 0)
        return op_softmax(im);
    if (strcmp(op, "Identity") == 0)
        return op_identity(im);
    if (strcmp(op, "Constant") == 0)
        return op_constant(im);
    if (strcmp(op, "Pad") == 0)
        return op_pad(im);
    if (strcmp(op, "Sum") == 0)
        return op_sum(im);
    if (strcmp(op, "Shape") == 0)
        return op_shape(im);
    if (strcmp(op, "Squeeze") == 0)
        return op_squeeze(im);
    if (strcmp(op, "Gather") == 0)
        return op_gather(im);
    if (strcmp(op, "Unsqueeze") == 0)
        return op_unsqueeze(im);
    return UNSUPPORTED("op %.64s is not supported", op);
}

/* ---- the graph ---------------------------------------------------------------------------- */

static clcnn_status check_opset(importer *im) {
    const Onnx__ModelProto *m = im->model;
    im->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            im->opset = o->has_version ? o->version : 1;
    }
    if (m->n_opset_import == 0)
        return file_error(im, CLCNN_ERROR_FORMAT,
                          "declares no opset (opset_import is required; is the file truncated?)");
    if (im->opset < 0)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "imports no version of the default opset (ai.onnx), only other "
                          "domains, which clcnn does not support");
    if (im->opset < MIN_OPSET || im->opset > MAX_OPSET)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "opset %lld is not supported (clcnn reads opsets %d to %d)",
                          (long long)im->opset, MIN_OPSET, MAX_OPSET);
    return CLCNN_OK;
}

static int is_initializer(const Onnx__GraphProto *g, const char *name) {
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return 1;
    return 0;
}

/* The graph input: (N, C, H, W), (N, C, L) or (N, D) float, the batch free
 * or fixed; an input layer (and a flatten for a vector). */
static clcnn_status graph_input(importer *im, const Onnx__ValueInfoProto *in) {
    const char *name = in->name ? in->name : "";
    const Onnx__TypeProto *type = in->type;
    if (!type || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !type->tensor_type)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED, "graph input '%.200s' is not a tensor",
                          name);
    const Onnx__TypeProto__Tensor *t = type->tensor_type;
    if (!t->has_elem_type || t->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "graph input '%.200s' holds %s; clcnn reads float inputs", name,
                          data_type_name(t->has_elem_type ? t->elem_type : 0));
    if (!t->shape)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED, "graph input '%.200s' has no shape", name);
    const int rank = (int)t->shape->n_dim;
    if (rank < 2 || rank > 4)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "graph input '%.200s' has rank %d; clcnn reads (N, C, H, W), (N, C, L) "
                          "or (N, D)",
                          name, rank);
    int64_t dims[MAX_RANK];
    for (int d = 0; d < rank; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = t->shape->dim[d];
        const int fixed = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (d == 0) {
            dims[0] = fixed && dim->dim_value > 0 ? dim->dim_value : -1;
            continue;
        }
        if (!fixed || dim->dim_value < 1 || dim->dim_value > 1000000)
            return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                              "graph input '%.200s': dimension %d must be a fixed size", name, d);
        dims[d] = dim->dim_value;
    }
    value *v = add_value(im, name);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_ACTIVATION;
    v->rank = rank;
    memcpy(v->dims, dims, sizeof(dims));
    const int vi = im->value_count - 1;
    int li;
    clcnn_status status = add_layer(im, "input", NULL, 0, NULL, &li);
    if (status)
        return status;
    import_layer *l = &im->layers[li];
    int valid = name[0] && strlen(name) < 64;
    for (const char *c = name; valid && *c; c++)
        valid = valid_name_char(*c);
    snprintf(l->name, sizeof(l->name), "%s", valid ? name : "input");
    snprintf(l->options, sizeof(l->options), "channels=%lld height=%lld width=%lld",
             (long long)dims[1], (long long)(rank == 4 ? dims[2] : 1),
             (long long)(rank >= 3 ? dims[rank - 1] : 1));
    l->rank = rank;
    memcpy(l->dims, dims, sizeof(dims));
    if (rank == 4)
        l->rank = 4;
    im->values[vi].layer = li;
    if (rank == 2) {
        /* a vector: the input layer is D x 1 x 1, flattened */
        l->rank = 4;
        l->dims[2] = l->dims[3] = 1;
        if ((status = add_layer(im, "flatten", &vi, 1, NULL, &li)))
            return status;
        snprintf(im->layers[li].name, sizeof(im->layers[li].name), "input_flatten");
        im->layers[li].rank = 2;
        memcpy(im->layers[li].dims, dims, sizeof(dims));
        im->values[vi].layer = li;
    }
    return CLCNN_OK;
}

/* Marks the nodes the graph output depends on (live[i]); the others are skipped. */
static clcnn_status live_nodes(importer *im, const char *output, char *live) {
    const Onnx__GraphProto *g = im->graph;
    /* needed names: a simple list, grown as nodes are found live */
    size_t capacity = 64, count = 0;
    const char **needed = malloc(sizeof(char *) * capacity);
    if (!needed)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    needed[count++] = output;
    for (size_t i = g->n_node; i-- > 0;) {
        const Onnx__NodeProto *n = g->node[i];
        live[i] = 0;
        for (size_t k = 0; k < n->n_output && !live[i]; k++)
            for (size_t j = 0; j < count && !live[i]; j++)
                live[i] = n->output[k] && strcmp(n->output[k], needed[j]) == 0;
        if (!live[i])
            continue;
        for (size_t k = 0; k < n->n_input; k++) {
            if (!n->input[k] || !n->input[k][0])
                continue;
            if (count == capacity) {
                const char **bigger = realloc(needed, sizeof(char *) * capacity * 2);
                if (!bigger) {
                    free(needed);
                    return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory",
                                     im->path);
                }
                needed = bigger;
                capacity *= 2;
            }
            needed[count++] = n->input[k];
        }
    }
    free(needed);
    return CLCNN_OK;
}

static clcnn_status bind_input(importer *im, const char *name, const clcnn_array *array) {
    value *v = add_value(im, name);
    if (!v)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    v->kind = VALUE_CONSTANT;
    int64_t count = clcnn_array_count(array);
    v->rank = array->ndim;
    for (int d = 0; d < array->ndim && d < MAX_RANK; d++)
        v->dims[d] = array->shape[d];
    v->count = count;
    if (array->dtype == CLCNN_FLOAT32 || array->dtype == CLCNN_FLOAT64) {
        v->floats = malloc(sizeof(float) * (size_t)(count + 1));
        for (int64_t i = 0; v->floats && i < count; i++)
            v->floats[i] = array->dtype == CLCNN_FLOAT32 ? ((const float *)array->data)[i]
                                                         : (float)((const double *)array->data)[i];
    } else if (array->dtype == CLCNN_INT32 || array->dtype == CLCNN_INT64) {
        v->ints = malloc(sizeof(int64_t) * (size_t)(count + 1));
        for (int64_t i = 0; v->ints && i < count; i++)
            v->ints[i] = array->dtype == CLCNN_INT64 ? ((const int64_t *)array->data)[i]
                                                     : ((const int32_t *)array->data)[i];
    } else {
        im->value_count--;
        return set_error(im->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "%s: bound input '%s': bad type",
                         im->path, name);
    }
    if (!v->floats && !v->ints) {
        im->value_count--;
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    }
    return CLCNN_OK;
}

/* The network text: one line per layer, always named. */
static char *network_text(importer *im) {
    size_t size = 256 + (size_t)im->layer_count * (64 + 256 + 64 * 2);
    for (int i = 0; i < im->layer_count; i++)
        size += (size_t)im->layers[i].input_count * 66;
    char *text = malloc(size);
    if (!text)
        return NULL;
    size_t used = (size_t)snprintf(text, size, "# imported from %s\n", im->path);
    for (int i = 0; i < im->layer_count; i++) {
        const import_layer *l = &im->layers[i];
        used += (size_t)snprintf(text + used, size - used, "%s name=%s", l->type, l->name);
        if (l->options[0])
            used += (size_t)snprintf(text + used, size - used, " %s", l->options);
        if (l->input_count == 1 && l->inputs[0] != i - 1)
            used += (size_t)snprintf(text + used, size - used, " input=%s",
                                     im->layers[l->inputs[0]].name);
        else if (l->input_count > 1)
            for (int k = 0; k < l->input_count; k++)
                used += (size_t)snprintf(text + used, size - used, "%s%s",
                                         k ? "," : " inputs=", im->layers[l->inputs[k]].name);
        used += (size_t)snprintf(text + used, size - used, "\n");
    }
    return text;
}

/* Every layer's clcnn shape against the ONNX shape of its output. */
static clcnn_status check_shapes(importer *im, clcnn_net *net) {
    for (int i = 0; i < im->layer_count; i++) {
        const import_layer *l = &im->layers[i];
        clcnn_layer_info info;
        clcnn_status status = clcnn_net_layer_info(net, i, &info);
        if (status)
            return status;
        int64_t expected[3] = {1, 1, 1};
        int ndim = 3;
        if (l->rank == 4) {
            expected[0] = l->dims[1];
            expected[1] = l->dims[2];
            expected[2] = l->dims[3];
        } else if (l->rank == 3) {
            expected[0] = l->dims[1];
            expected[2] = l->dims[2];
        } else {
            ndim = 1;
            expected[0] = l->dims[1];
        }
        int same = info.ndim == ndim;
        for (int d = 0; same && d < ndim; d++)
            same = info.shape[d] == expected[d];
        if (!same) {
            char onnx[96];
            format_dims(l->dims, l->rank, onnx, sizeof(onnx));
            return set_error(im->ctx, CLCNN_ERROR_UNSUPPORTED,
                             "%s: node '%s': clcnn's %s layer computes a shape other than ONNX's "
                             "%s",
                             im->path, l->node_name ? l->node_name : l->name, l->type, onnx);
        }
    }
    return CLCNN_OK;
}

static clcnn_status import_graph(importer *im, const onnx_import_options *options, clcnn_net **out,
                                 onnx_import_info *info) {
    const Onnx__GraphProto *g = im->graph;
    clcnn_status status;
    if (g->n_output != 1)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "the graph has %zu outputs; clcnn networks have one", g->n_output);
    if (g->n_sparse_initializer > 0)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED, "sparse initializers are not supported");
    const char *output = g->output[0]->name ? g->output[0]->name : "";
    /* initializers, then the inputs without one: the first is the network's */
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if ((status = constant_from_tensor(im, t->name ? t->name : "", t, "initializer")))
            return status;
    }
    int inputs = 0;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = g->input[i]->name ? g->input[i]->name : "";
        if (is_initializer(g, name))
            continue;
        if (inputs == 0)
            status = graph_input(im, g->input[i]);
        else if (options && inputs - 1 < options->bound_count)
            status = bind_input(im, name, &options->bound_inputs[inputs - 1]);
        else
            status = file_error(im, CLCNN_ERROR_UNSUPPORTED,
                                "the graph has more than one input ('%.200s' too); clcnn "
                                "networks have one",
                                name);
        if (status)
            return status;
        inputs++;
    }
    if (inputs == 0)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED, "the graph has no input");
    char *live = malloc(g->n_node + 1);
    if (!live)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    status = live_nodes(im, output, live);
    for (size_t i = 0; status == CLCNN_OK && i < g->n_node; i++) {
        if (!live[i])
            continue;
        im->node = g->node[i];
        im->node_index = (int)i;
        status = translate_node(im);
    }
    free(live);
    im->node = NULL;
    if (status)
        return status;
    int oi = find_value(im, output);
    if (oi < 0)
        return file_error(im, CLCNN_ERROR_FORMAT, "no node computes the graph output '%.200s'",
                          output);
    const value *o = &im->values[oi];
    if (o->kind != VALUE_ACTIVATION)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "the graph output '%.200s' is %s, not computed from the input", output,
                          o->kind == VALUE_CONSTANT ? "a constant" : "a Pad's output");
    if (o->layer != im->layer_count - 1 || im->layer_count < 2)
        return file_error(im, CLCNN_ERROR_UNSUPPORTED,
                          "the graph output '%.200s' is not computed by a layer of its own",
                          output);
    /* a declared output shape must agree with what the walk found */
    const Onnx__TypeProto *type = g->output[0]->type;
    if (type && type->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && type->tensor_type &&
        type->tensor_type->shape) {
        const Onnx__TensorShapeProto *s = type->tensor_type->shape;
        int fits = (int)s->n_dim == o->rank;
        for (int d = 1; fits && d < o->rank; d++)
            fits = s->dim[d]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                   s->dim[d]->dim_value == o->dims[d];
        if (!fits) {
            char found[96];
            format_dims(o->dims, o->rank, found, sizeof(found));
            return file_error(im, CLCNN_ERROR_FORMAT,
                              "the graph output '%.200s' is declared with another shape than the "
                              "%s its nodes compute",
                              output, found);
        }
    }
    if (info) {
        info->training_mode = im->training_mode;
        info->output_rank = o->rank;
        memcpy(info->output_dims, o->dims, sizeof(int64_t) * (size_t)o->rank);
    }
    char *text = network_text(im);
    if (!text)
        return set_error(im->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", im->path);
    clcnn_net *net = NULL;
    status = clcnn_net_from_string(im->ctx, text, im->path, &net);
    free(text);
    if (status == CLCNN_OK)
        status = check_shapes(im, net);
    for (int i = 0; status == CLCNN_OK && i < im->layer_count; i++) {
        const import_layer *l = &im->layers[i];
        for (int k = 0; status == CLCNN_OK && k < l->tensor_count; k++) {
            char name[160];
            snprintf(name, sizeof(name), "%s.%s", l->name, l->tensors[k].suffix);
            status = clcnn_net_set_tensor(net, name, l->tensors[k].values, l->tensors[k].count);
        }
    }
    if (status) {
        clcnn_net_destroy(net);
        return status;
    }
    *out = net;
    return CLCNN_OK;
}

clcnn_status onnx_import(clcnn_context *ctx, const char *path, const onnx_import_options *options,
                         clcnn_net **out, onnx_import_info *info) {
    if (!ctx || !path || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "onnx_import: NULL argument");
    *out = NULL;
    if (info)
        memset(info, 0, sizeof(*info));
    uint8_t *bytes;
    size_t size;
    clcnn_status status = read_file(ctx, path, &bytes, &size);
    if (status)
        return status;
    importer im;
    memset(&im, 0, sizeof(im));
    im.ctx = ctx;
    im.path = path;
    im.model = onnx__model_proto__unpack(NULL, size, bytes);
    free(bytes);
    if (!im.model)
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "%s: not an ONNX model (the protobuf does not parse: truncated or not "
                         "ONNX)",
                         path);
    im.graph = im.model->graph;
    if (!im.graph)
        status = file_error(&im, CLCNN_ERROR_FORMAT, "not an ONNX model: it has no graph");
    else if (im.graph->n_node == 0 && im.graph->n_input == 0)
        status = file_error(&im, CLCNN_ERROR_FORMAT, "not an ONNX model: its graph is empty");
    if (status == CLCNN_OK)
        status = check_opset(&im);
    if (status == CLCNN_OK)
        status = import_graph(&im, options, out, info);
    for (int i = 0; i < im.value_count; i++) {
        free(im.values[i].floats);
        free(im.values[i].ints);
    }
    free(im.values);
    for (int i = 0; i < im.layer_count; i++)
        for (int k = 0; k < im.layers[i].tensor_count; k++)
            free(im.layers[i].tensors[k].values);
    free(im.layers);
    onnx__model_proto__free_unpacked(im.model, NULL);
    return status;
}

clcnn_status clcnn_net_from_onnx(clcnn_context *ctx, const char *path, clcnn_net **out) {
    return onnx_import(ctx, path, NULL, out, NULL);
}
