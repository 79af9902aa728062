/* A network: the nodes of a graph from a network file, its table of named
 * tensors in flat buffers, descriptions, initialisation and weights
 * directories. The memory plan is in plan.c, the passes in pass.c. */
#include "layers/layer.h"
#include "io/onnx.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int layer_has_parameters(const layer *l) {
    return l->weight_count + l->bias_count > 0;
}

int net_find_layer(const clcnn_net *net, const char *name) {
    return layer_index(net->layers, net->layer_count, name, strlen(name));
}

int net_find_tensor(const clcnn_net *net, const char *name) {
    for (int i = 0; i < net->tensor_count; i++)
        if (strcmp(net->tensors[i].name, name) == 0)
            return i;
    return -1;
}

int64_t align_floats(int64_t n) {
    return (n + PARAMETER_ALIGN_FLOATS - 1) / PARAMETER_ALIGN_FLOATS * PARAMETER_ALIGN_FLOATS;
}

/* The host copy of a tensor's values. */
static float *tensor_values(const clcnn_net *net, const named_tensor *t) {
    return (t->kind == TENSOR_PARAMETER ? net->host_parameters : net->host_state) + t->offset;
}

/* The only layer reading node i, or NULL (He initialisation looks at it). */
static const layer *sole_reader(const clcnn_net *net, int i) {
    const layer *reader = NULL;
    for (int j = i + 1; j < net->layer_count; j++)
        for (int k = 0; k < net->layers[j].input_count; k++)
            if (net->layers[j].inputs[k] == i) {
                if (reader)
                    return NULL;
                reader = &net->layers[j];
            }
    return reader;
}

/* Calls the layer's init with pointers to its tensors' host values. */
static void init_layer(clcnn_net *net, int i, rng *r) {
    const layer *l = &net->layers[i];
    if (!l->type->init || l->tensor_count == 0)
        return;
    float *values[LAYER_MAX_TENSORS];
    for (int k = 0; k < l->tensor_count; k++)
        values[k] = tensor_values(net, &net->tensors[l->first_tensor + k]);
    l->type->init(l, values, r, sole_reader(net, i));
}

/* Builds the tensor table from the layers' declarations, parameters and
 * state each packed into one flat buffer at aligned offsets. */
static clcnn_status build_tensors(clcnn_net *net) {
    int total = 0;
    tensor_spec specs[LAYER_MAX_TENSORS];
    for (int i = 0; i < net->layer_count; i++)
        if (net->layers[i].type->tensors)
            total += net->layers[i].type->tensors(&net->layers[i], specs);
    net->tensors = calloc((size_t)(total ? total : 1), sizeof(named_tensor));
    if (!net->tensors)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tensors");
    int64_t parameter_end = 0, state_end = 0;
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        l->first_tensor = net->tensor_count;
        l->tensor_count = l->type->tensors ? l->type->tensors(l, specs) : 0;
        for (int k = 0; k < l->tensor_count; k++) {
            named_tensor *t = &net->tensors[net->tensor_count++];
            snprintf(t->name, sizeof(t->name), "%s.%s", l->name, specs[k].suffix);
            t->kind = specs[k].kind;
            t->layer = i;
            t->ndim = specs[k].ndim;
            t->count = 1;
            for (int d = 0; d < t->ndim; d++) {
                t->shape[d] = specs[k].shape[d];
                t->count *= t->shape[d];
            }
            int64_t *end = t->kind == TENSOR_PARAMETER ? &parameter_end : &state_end;
            t->offset = *end;
            *end = align_floats(*end + t->count);
        }
    }
    net->parameter_floats = parameter_end;
    net->state_floats = state_end;
    net->host_parameters = calloc((size_t)(parameter_end ? parameter_end : 1), sizeof(float));
    net->host_gradients = calloc((size_t)(parameter_end ? parameter_end : 1), sizeof(float));
    net->host_state = calloc((size_t)(state_end ? state_end : 1), sizeof(float));
    if (!net->host_parameters || !net->host_gradients || !net->host_state)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for %lld parameters",
                         (long long)parameter_end);
    /* Values before any seeded initialisation: zeros, or what a layer knows
     * better (a named filter, a batchnorm's unit variance). */
    for (int i = 0; i < net->layer_count; i++)
        init_layer(net, i, NULL);
    return CLCNN_OK;
}

static clcnn_status net_create(clcnn_context *ctx, const char *text, layer *layers, int layer_count,
                               clcnn_net **out) {
    clcnn_net *net = calloc(1, sizeof(*net));
    char *copy = strdup(text);
    if (!net || !copy) {
        free(net);
        free(copy);
        free(layers);
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory creating a network");
    }
    net->ctx = ctx;
    net->forward_chunk_floats = CLCNN_FORWARD_CHUNK_FLOATS;
    net->mode = -1;
    net->layers = layers;
    net->layer_count = layer_count;
    net->text = copy;
    net->frozen = calloc((size_t)layer_count, 1);
    net->prepared = calloc((size_t)layer_count, sizeof(prepared_weights));
    clcnn_status status =
        net->frozen && net->prepared
            ? build_tensors(net)
            : set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory creating a network");
    if (status != CLCNN_OK) {
        clcnn_net_destroy(net);
        return status;
    }
    net_host_parameters_changed(net);
    status = clcnn_net_set_loss(net, CLCNN_LOSS_AUTO);
    if (status != CLCNN_OK) {
        /* Networks that fit no loss can still run forward. */
        net->loss.kind = CLCNN_LOSS_AUTO;
        ctx->error[0] = 0;
    }
    *out = net;
    return CLCNN_OK;
}

clcnn_status clcnn_net_from_string(clcnn_context *ctx, const char *text, const char *source_name,
                                   clcnn_net **out) {
    if (!ctx || !text || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_net_from_string: NULL argument");
    *out = NULL;
    layer *layers;
    int layer_count;
    clcnn_status status =
        netfile_parse(ctx, text, source_name ? source_name : "<string>", &layers, &layer_count);
    if (status != CLCNN_OK)
        return status;
    return net_create(ctx, text, layers, layer_count, out);
}

clcnn_status clcnn_net_from_file(clcnn_context *ctx, const char *path, clcnn_net **out) {
    if (!ctx || !path || !out)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "clcnn_net_from_file: NULL argument");
    *out = NULL;
    if (onnx_path(path))
        return clcnn_net_from_onnx(ctx, path, out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t capacity = 4096, length = 0;
    char *text = malloc(capacity);
    while (text) {
        size_t n = fread(text + length, 1, capacity - length - 1, f);
        length += n;
        if (length + 1 < capacity)
            break;
        char *bigger = realloc(text, capacity * 2);
        if (!bigger) {
            free(text);
            text = NULL;
        }
        text = bigger;
        capacity *= 2;
    }
    int read_error = ferror(f);
    fclose(f);
    if (!text)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory reading it", path);
    if (read_error) {
        free(text);
        return set_error(ctx, CLCNN_ERROR_IO, "%s: read error", path);
    }
    text[length] = 0;
    if (strlen(text) != length) {
        free(text);
        return set_error(ctx, CLCNN_ERROR_PARSE, "%s: contains a NUL byte; expected a text file",
                         path);
    }
    clcnn_status status = clcnn_net_from_string(ctx, text, path, out);
    free(text);
    return status;
}

void clcnn_net_destroy(clcnn_net *net) {
    if (!net)
        return;
    net_release_activations(net);
    net_release_device_parameters(net);
    free(net->host_parameters);
    free(net->host_gradients);
    free(net->host_state);
    free(net->tensors);
    free(net->layers);
    free(net->frozen);
    free(net->prepared);
    free(net->text);
    free(net);
}

/* ---- freezing ----------------------------------------------------------------------------- */

static clcnn_status find_layer_to_freeze(clcnn_net *net, const char *name, int *index) {
    if (!net || !name)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    *index = net_find_layer(net, name);
    if (*index == 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "the input cannot be frozen");
    if (*index < 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "cannot freeze '%s': the network has no layer of that name", name);
    return CLCNN_OK;
}

clcnn_status clcnn_net_freeze(clcnn_net *net, const char *layer_name, int frozen) {
    int index;
    clcnn_status status = find_layer_to_freeze(net, layer_name, &index);
    if (status != CLCNN_OK)
        return status;
    if (net->frozen[index] != (frozen != 0)) {
        net->frozen[index] = frozen != 0;
        net->frozen_version++;
    }
    return CLCNN_OK;
}

clcnn_status clcnn_net_freeze_until(clcnn_net *net, const char *layer_name) {
    int last;
    clcnn_status status = find_layer_to_freeze(net, layer_name, &last);
    if (status != CLCNN_OK)
        return status;
    for (int i = 1; i < net->layer_count; i++)
        if (net->frozen[i] != (i <= last)) {
            net->frozen[i] = i <= last;
            net->frozen_version++;
        }
    return CLCNN_OK;
}

int clcnn_net_is_frozen(const clcnn_net *net, const char *layer_name) {
    if (!net || !layer_name)
        return 0;
    const int index = net_find_layer(net, layer_name);
    return index >= 0 && net->frozen[index];
}

int net_trains_layer(const clcnn_net *net, int i) {
    return layer_has_parameters(&net->layers[i]) && !net->frozen[i];
}

/* ---- describing a network ------------------------------------------------------------ */

int clcnn_net_layer_count(const clcnn_net *net) {
    return net ? net->layer_count : 0;
}

/* An error unless 0 <= index < count (of layers or tensors, `what`). */
static clcnn_status check_index(const clcnn_net *net, int index, int count, const char *what) {
    if (index >= 0 && index < count)
        return CLCNN_OK;
    return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                     "%s index %d out of range (the network has %d %ss)", what, index, count, what);
}

clcnn_status clcnn_net_layer_info(const clcnn_net *net, int index, clcnn_layer_info *out) {
    if (!net || !out)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (check_index(net, index, net->layer_count, "layer") != CLCNN_OK)
        return net->ctx->status;
    const layer *l = &net->layers[index];
    memset(out, 0, sizeof(*out));
    out->name = l->name;
    out->type = l->type->name;
    out->ndim = l->out.ndim;
    out->shape[0] = l->out.c;
    out->shape[1] = l->out.ndim == 3 ? l->out.h : 0;
    out->shape[2] = l->out.ndim == 3 ? l->out.w : 0;
    out->weight_count = l->weight_count;
    out->bias_count = l->bias_count;
    out->input_count = l->input_count;
    out->inputs = l->inputs;
    for (int k = 0; k < l->tensor_count; k++) {
        const named_tensor *t = &net->tensors[l->first_tensor + k];
        if (strcmp(t->name + strlen(l->name), ".weight") == 0) {
            out->weight_ndim = t->ndim;
            memcpy(out->weight_shape, t->shape, sizeof(out->weight_shape));
        }
    }
    return CLCNN_OK;
}

int64_t clcnn_net_parameter_count(const clcnn_net *net) {
    int64_t total = 0;
    for (int i = 0; net && i < net->tensor_count; i++)
        if (net->tensors[i].kind == TENSOR_PARAMETER)
            total += net->tensors[i].count;
    return total;
}

const char *clcnn_net_text(const clcnn_net *net) {
    return net ? net->text : "";
}

int64_t clcnn_net_input_size(const clcnn_net *net) {
    return net ? shape3_count(net->layers[0].out) : 0;
}

int64_t clcnn_net_output_size(const clcnn_net *net) {
    return net ? shape3_count(net->layers[net->layer_count - 1].out) : 0;
}

static void format_shape(shape3 s, char *buf, size_t size) {
    if (s.ndim == 3)
        snprintf(buf, size, "%d x %d x %d", s.c, s.h, s.w);
    else
        snprintf(buf, size, "%d", s.c);
}

/* Thousands separators make parameter counts readable: 200,832. */
static void format_count(int64_t value, char *buf, size_t size) {
    char digits[32];
    snprintf(digits, sizeof(digits), "%lld", (long long)value);
    size_t length = strlen(digits), used = 0;
    for (size_t i = 0; i < length && used + 1 < size; i++) {
        if (i > 0 && (length - i) % 3 == 0 && used + 2 < size)
            buf[used++] = ',';
        buf[used++] = digits[i];
    }
    buf[used] = 0;
}

/* A layer reading another than the line before gets its inputs listed. */
static int reads_previous_only(const layer *l, int index) {
    return l->input_count == 0 || (l->input_count == 1 && l->inputs[0] == index - 1);
}

clcnn_status clcnn_net_summary(const clcnn_net *net, char *buf, size_t size) {
    if (!net || !buf || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    size_t used = 0;
    buf[0] = '\0';
    text_append(buf, size, &used, "%-16s %-13s %-16s %12s\n", "layer", "type", "output",
                "parameters");
    for (int i = 0; i < net->layer_count; i++) {
        const layer *l = &net->layers[i];
        char shape[64], count[32];
        format_shape(l->out, shape, sizeof(shape));
        int64_t parameters = 0;
        for (int k = 0; k < l->tensor_count; k++)
            if (net->tensors[l->first_tensor + k].kind == TENSOR_PARAMETER)
                parameters += net->tensors[l->first_tensor + k].count;
        format_count(parameters, count, sizeof(count));
        text_append(buf, size, &used, "%-16s %-13s %-16s %12s", l->name, l->type->name, shape,
                    count);
        if (!reads_previous_only(l, i))
            for (int k = 0; k < l->input_count; k++)
                text_append(buf, size, &used, "%s%s", k ? "," : "  <- ",
                            net->layers[l->inputs[k]].name);
        text_append(buf, size, &used, "\n");
    }
    char total[32];
    format_count(clcnn_net_parameter_count(net), total, sizeof(total));
    text_append(buf, size, &used, "total parameters: %s\n", total);
    return CLCNN_OK;
}

/* ---- tensors ---------------------------------------------------------------------------- */

int clcnn_net_tensor_count(const clcnn_net *net) {
    return net ? net->tensor_count : 0;
}

clcnn_status clcnn_net_tensor_info(const clcnn_net *net, int index, clcnn_tensor_info *out) {
    if (!net || !out)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (check_index(net, index, net->tensor_count, "tensor") != CLCNN_OK)
        return net->ctx->status;
    const named_tensor *t = &net->tensors[index];
    memset(out, 0, sizeof(*out));
    out->name = t->name;
    out->layer = net->layers[t->layer].name;
    out->kind = t->kind == TENSOR_PARAMETER ? CLCNN_TENSOR_PARAMETER : CLCNN_TENSOR_STATE;
    out->ndim = t->ndim;
    memcpy(out->shape, t->shape, sizeof(out->shape));
    out->count = t->count;
    return CLCNN_OK;
}

clcnn_status clcnn_net_init_weights(clcnn_net *net, uint64_t seed) {
    if (!net)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    net->host_parameters_stale = 0;
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < net->layer_count; i++)
        init_layer(net, i, &r);
    net_host_parameters_changed(net);
    return CLCNN_OK;
}

static void format_dims(const int64_t *shape, int ndim, char *buf, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && used < size; d++)
        used +=
            (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}

static clcnn_status load_tensor(clcnn_net *net, const named_tensor *t, const char *dir) {
    clcnn_context *ctx = net->ctx;
    const layer *l = &net->layers[t->layer];
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.npy", dir, t->name);
    char expected_text[96];
    format_dims(t->shape, t->ndim, expected_text, sizeof(expected_text));
    struct stat st;
    /* A named filter needs no file, but one that is there replaces it. */
    if (stat(path, &st) != 0 && l->named_filter >= 0)
        return CLCNN_OK;
    if (stat(path, &st) != 0)
        return set_error(ctx, CLCNN_ERROR_IO, "layer %s: missing %s (expected shape %s)", l->name,
                         path, expected_text);
    clcnn_array array;
    clcnn_status status = clcnn_npy_read(ctx, path, &array);
    if (status != CLCNN_OK)
        return status;
    int same = array.ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++)
        same = array.shape[d] == t->shape[d];
    if (!same) {
        char got[96];
        format_dims(array.shape, array.ndim, got, sizeof(got));
        clcnn_array_free(&array);
        return set_error(ctx, CLCNN_ERROR_SHAPE, "layer %s: %s has shape %s, expected %s", l->name,
                         path, got, expected_text);
    }
    if (array.dtype != CLCNN_FLOAT32 && array.dtype != CLCNN_FLOAT64) {
        clcnn_array_free(&array);
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "layer %s: %s holds integers; expected float32 or float64", l->name, path);
    }
    status = clcnn_array_to_float32(ctx, &array);
    if (status == CLCNN_OK)
        memcpy(tensor_values(net, t), array.data, sizeof(float) * (size_t)t->count);
    clcnn_array_free(&array);
    return status;
}

clcnn_status clcnn_net_load_weights(clcnn_net *net, const char *dir) {
    if (!net || !dir)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_status status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    /* Even a load that fails halfway has changed the host copy. */
    net_host_parameters_changed(net);
    for (int i = 0; i < net->tensor_count && status == CLCNN_OK; i++)
        status = load_tensor(net, &net->tensors[i], dir);
    return status;
}

clcnn_status clcnn_net_save_weights(clcnn_net *net, const char *dir) {
    if (!net || !dir)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_status status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return set_error(net->ctx, CLCNN_ERROR_IO, "%s: cannot create directory: %s", dir,
                         strerror(errno));
    for (int i = 0; i < net->tensor_count && status == CLCNN_OK; i++) {
        const named_tensor *t = &net->tensors[i];
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.npy", dir, t->name);
        clcnn_array array = {0};
        array.dtype = CLCNN_FLOAT32;
        array.ndim = t->ndim;
        memcpy(array.shape, t->shape, sizeof(t->shape));
        array.data = tensor_values(net, t);
        status = clcnn_npy_write(net->ctx, path, &array);
    }
    return status;
}

/* The tensor called name with count values, or an error saying why not. */
static clcnn_status find_tensor(clcnn_net *net, const char *name, int64_t count,
                                named_tensor **out) {
    int index = net_find_tensor(net, name);
    if (index < 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no tensor named '%s'", name);
    named_tensor *t = &net->tensors[index];
    if (count != t->count)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE, "tensor %s has %lld values, not %lld", name,
                         (long long)t->count, (long long)count);
    *out = t;
    return CLCNN_OK;
}

clcnn_status clcnn_net_set_tensor(clcnn_net *net, const char *name, const float *values,
                                  int64_t count) {
    if (!net || !name || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    named_tensor *t = NULL;
    clcnn_status status = find_tensor(net, name, count, &t);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    memcpy(tensor_values(net, t), values, sizeof(float) * (size_t)count);
    net_host_parameters_changed(net);
    return CLCNN_OK;
}

clcnn_status clcnn_net_get_tensor(clcnn_net *net, const char *name, float *values, int64_t count) {
    if (!net || !name || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    named_tensor *t = NULL;
    clcnn_status status = find_tensor(net, name, count, &t);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    memcpy(values, tensor_values(net, t), sizeof(float) * (size_t)count);
    return CLCNN_OK;
}

/* "<layer>.<which>" for the parameter calls that name a layer and a tensor
 * apart, with their messages for a missing layer or tensor. */
clcnn_status net_parameter_name(clcnn_net *net, const char *layer_name, const char *which,
                                char *name, size_t size) {
    int index = net_find_layer(net, layer_name);
    if (index < 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no layer named '%s'", layer_name);
    if (strcmp(which, "weight") != 0 && strcmp(which, "bias") != 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "parameter '%s': expected 'weight' or 'bias'", which);
    snprintf(name, size, "%s.%s", layer_name, which);
    if (net_find_tensor(net, name) < 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "layer %s has no %s", layer_name,
                         which);
    return CLCNN_OK;
}

clcnn_status clcnn_net_set_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                     const float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    char name[160];
    clcnn_status status = net_parameter_name(net, layer_name, which, name, sizeof(name));
    return status ? status : clcnn_net_set_tensor(net, name, values, count);
}

clcnn_status clcnn_net_get_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                     float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    char name[160];
    clcnn_status status = net_parameter_name(net, layer_name, which, name, sizeof(name));
    return status ? status : clcnn_net_get_tensor(net, name, values, count);
}

clcnn_status clcnn_net_set_mode(clcnn_net *net, clcnn_mode mode) {
    if (!net || (mode != CLCNN_MODE_EVAL && mode != CLCNN_MODE_TRAIN))
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_set_mode: expected CLCNN_MODE_EVAL or CLCNN_MODE_TRAIN");
    net->mode = mode;
    return CLCNN_OK;
}

clcnn_status clcnn_net_set_random_seed(clcnn_net *net, uint64_t seed) {
    if (!net)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    net->random_seed = seed;
    return CLCNN_OK;
}
