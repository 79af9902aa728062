/* A network: layers from a network file, their parameters, and the forward pass
 * on either device. */
#include "ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int layer_has_parameters(const layer *l) {
    return l->type == LAYER_CONV || l->type == LAYER_DENSE;
}

/* A conv layer with filter=NAME: the filter on every (filter, channel) pair, bias 0. */
static void apply_named_filter(layer *l) {
    const float *filter = named_filter_weights(l->named_filter);
    for (int64_t i = 0; i < l->weight_count; i++)
        l->weight[i] = filter[i % 9];
    for (int64_t i = 0; i < l->bias_count; i++)
        l->bias[i] = 0.0f;
}

static int64_t align_floats(int64_t n) {
    return (n + PARAMETER_ALIGN_FLOATS - 1) / PARAMETER_ALIGN_FLOATS * PARAMETER_ALIGN_FLOATS;
}

static clcnn_status net_create(clcnn_context *ctx, const char *text, layer *layers,
                               int layer_count, clcnn_net **out) {
    clcnn_net *net = calloc(1, sizeof(*net));
    char *copy = strdup(text);
    if (!net || !copy) {
        free(net);
        free(copy);
        free(layers);
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory creating a network");
    }
    net->ctx = ctx;
    net->layers = layers;
    net->layer_count = layer_count;
    net->text = copy;
    int64_t offset = 0;
    for (int i = 0; i < layer_count; i++) {
        layer *l = &layers[i];
        l->weight_offset = offset;
        offset = align_floats(offset + l->weight_count);
        l->bias_offset = offset;
        offset = align_floats(offset + l->bias_count);
    }
    net->parameter_floats = offset;
    net->host_parameters = calloc((size_t)(offset ? offset : 1), sizeof(float));
    net->host_gradients = calloc((size_t)(offset ? offset : 1), sizeof(float));
    if (!net->host_parameters || !net->host_gradients) {
        clcnn_net_destroy(net);
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                         "out of memory for %lld parameters", (long long)offset);
    }
    for (int i = 0; i < layer_count; i++) {
        layer *l = &layers[i];
        l->weight = net->host_parameters + l->weight_offset;
        l->bias = net->host_parameters + l->bias_offset;
        l->weight_grad = net->host_gradients + l->weight_offset;
        l->bias_grad = net->host_gradients + l->bias_offset;
    }
    for (int i = 0; i < layer_count; i++)
        if (layers[i].type == LAYER_CONV && layers[i].named_filter >= 0)
            apply_named_filter(&layers[i]);
    net->device_parameters_stale = 1;
    clcnn_status status = clcnn_net_set_loss(net, CLCNN_LOSS_AUTO);
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
    free(net->layers);
    free(net->text);
    free(net);
}

/* ---- describing a network ------------------------------------------------------------ */

int clcnn_net_layer_count(const clcnn_net *net) {
    return net ? net->layer_count : 0;
}

/* PyTorch's parameter shapes. */
static int parameter_shape(const layer *l, int is_bias, int64_t shape[4]) {
    if (is_bias) {
        shape[0] = l->type == LAYER_CONV ? l->filters : l->units;
        return 1;
    }
    if (l->type == LAYER_CONV) {
        shape[0] = l->filters;
        shape[1] = l->in.c;
        shape[2] = l->size_h;
        shape[3] = l->size_w;
        return 4;
    }
    shape[0] = l->units;
    shape[1] = l->in.c;
    return 2;
}

clcnn_status clcnn_net_layer_info(const clcnn_net *net, int index, clcnn_layer_info *out) {
    if (!net || !out)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (index < 0 || index >= net->layer_count)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "layer index %d out of range (the network has %d layers)", index,
                         net->layer_count);
    const layer *l = &net->layers[index];
    out->name = l->name;
    out->type = layer_type_name(l->type);
    out->ndim = l->out.ndim;
    out->shape[0] = l->out.c;
    out->shape[1] = l->out.ndim == 3 ? l->out.h : 0;
    out->shape[2] = l->out.ndim == 3 ? l->out.w : 0;
    out->weight_count = l->weight_count;
    out->bias_count = l->bias_count;
    out->weight_ndim = layer_has_parameters(l) ? parameter_shape(l, 0, out->weight_shape) : 0;
    return CLCNN_OK;
}

int64_t clcnn_net_parameter_count(const clcnn_net *net) {
    int64_t total = 0;
    for (int i = 0; net && i < net->layer_count; i++)
        total += net->layers[i].weight_count + net->layers[i].bias_count;
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

clcnn_status clcnn_net_summary(const clcnn_net *net, char *buf, size_t size) {
    if (!net || !buf || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    size_t used = 0;
    int n = snprintf(buf, size, "%-16s %-8s %-16s %12s\n", "layer", "type", "output",
                     "parameters");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < net->layer_count && used < size; i++) {
        const layer *l = &net->layers[i];
        char shape[64], count[32];
        format_shape(l->out, shape, sizeof(shape));
        format_count(l->weight_count + l->bias_count, count, sizeof(count));
        n = snprintf(buf + used, size - used, "%-16s %-8s %-16s %12s\n", l->name,
                     layer_type_name(l->type), shape, count);
        used += n > 0 ? (size_t)n : 0;
    }
    if (used < size) {
        char total[32];
        format_count(clcnn_net_parameter_count(net), total, sizeof(total));
        snprintf(buf + used, size - used, "total parameters: %s\n", total);
    }
    return CLCNN_OK;
}

/* ---- parameters ------------------------------------------------------------------------- */

/* The host copy is the one to keep: the device copy is refreshed before its next use. */
static void mark_host_parameters_changed(clcnn_net *net) {
    net->device_parameters_stale = 1;
}

static layer *find_layer(clcnn_net *net, const char *name) {
    for (int i = 0; i < net->layer_count; i++)
        if (strcmp(net->layers[i].name, name) == 0)
            return &net->layers[i];
    return NULL;
}

clcnn_status clcnn_net_init_weights(clcnn_net *net, uint64_t seed) {
    if (!net)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    net->host_parameters_stale = 0;
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l))
            continue;
        if (l->type == LAYER_CONV && l->named_filter >= 0) {
            apply_named_filter(l);
            continue;
        }
        int64_t fan_in, fan_out;
        if (l->type == LAYER_CONV) {
            fan_in = (int64_t)l->in.c * l->size_h * l->size_w;
            fan_out = (int64_t)l->filters * l->size_h * l->size_w;
        } else {
            fan_in = l->in.c;
            fan_out = l->units;
        }
        const layer *next = i + 1 < net->layer_count ? &net->layers[i + 1] : NULL;
        if (next && (next->type == LAYER_RELU || next->type == LAYER_LEAKY)) {
            double slope = next->type == LAYER_LEAKY ? next->slope : 0.0;
            double std = sqrt(2.0 / ((1.0 + slope * slope) * (double)fan_in));
            for (int64_t j = 0; j < l->weight_count; j++)
                l->weight[j] = (float)(std * rng_normal(&r));
        } else {
            double limit = sqrt(6.0 / (double)(fan_in + fan_out));
            for (int64_t j = 0; j < l->weight_count; j++)
                l->weight[j] = (float)(limit * (2.0 * rng_uniform(&r) - 1.0));
        }
        for (int64_t j = 0; j < l->bias_count; j++)
            l->bias[j] = 0.0f;
        mark_host_parameters_changed(net);
    }
    return CLCNN_OK;
}

static void format_dims(const int64_t *shape, int ndim, char *buf, size_t size) {
    size_t used = 0;
    used += (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}

static clcnn_status load_parameter(clcnn_net *net, layer *l, const char *dir, int is_bias) {
    clcnn_context *ctx = net->ctx;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.%s.npy", dir, l->name, is_bias ? "bias" : "weight");
    int64_t expected[4];
    int ndim = parameter_shape(l, is_bias, expected);
    char expected_text[96];
    format_dims(expected, ndim, expected_text, sizeof(expected_text));
    struct stat st;
    /* A named filter needs no file, but one that is there replaces it. */
    if (stat(path, &st) != 0 && l->type == LAYER_CONV && l->named_filter >= 0)
        return CLCNN_OK;
    if (stat(path, &st) != 0)
        return set_error(ctx, CLCNN_ERROR_IO, "layer %s: missing %s (expected shape %s)", l->name,
                         path, expected_text);
    clcnn_array array;
    clcnn_status status = clcnn_npy_read(ctx, path, &array);
    if (status != CLCNN_OK)
        return status;
    int same = array.ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = array.shape[d] == expected[d];
    if (!same) {
        char got[96];
        format_dims(array.shape, array.ndim, got, sizeof(got));
        clcnn_array_free(&array);
        return set_error(ctx, CLCNN_ERROR_SHAPE, "layer %s: %s has shape %s, expected %s",
                         l->name, path, got, expected_text);
    }
    if (array.dtype != CLCNN_FLOAT32 && array.dtype != CLCNN_FLOAT64) {
        clcnn_array_free(&array);
        return set_error(ctx, CLCNN_ERROR_FORMAT,
                         "layer %s: %s holds integers; expected float32 or float64", l->name,
                         path);
    }
    status = clcnn_array_to_float32(ctx, &array);
    if (status == CLCNN_OK)
        memcpy(is_bias ? l->bias : l->weight, array.data,
               sizeof(float) * (size_t)clcnn_array_count(&array));
    clcnn_array_free(&array);
    return status;
}

clcnn_status clcnn_net_load_weights(clcnn_net *net, const char *dir) {
    if (!net || !dir)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_status synced = net_sync_parameters_to_host(net);
    if (synced != CLCNN_OK)
        return synced;
    /* Even a load that fails halfway has changed the host copy. */
    mark_host_parameters_changed(net);
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l))
            continue;
        clcnn_status status = load_parameter(net, l, dir, 0);
        if (status == CLCNN_OK && l->has_bias)
            status = load_parameter(net, l, dir, 1);
        if (status != CLCNN_OK)
            return status;
        mark_host_parameters_changed(net);
    }
    return CLCNN_OK;
}

clcnn_status clcnn_net_save_weights(clcnn_net *net, const char *dir) {
    if (!net || !dir)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_status synced = net_sync_parameters_to_host(net);
    if (synced != CLCNN_OK)
        return synced;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return set_error(net->ctx, CLCNN_ERROR_IO, "%s: cannot create directory: %s", dir,
                         strerror(errno));
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l))
            continue;
        for (int is_bias = 0; is_bias <= l->has_bias; is_bias++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s.%s.npy", dir, l->name,
                     is_bias ? "bias" : "weight");
            clcnn_array array = {0};
            array.dtype = CLCNN_FLOAT32;
            array.ndim = parameter_shape(l, is_bias, array.shape);
            array.data = is_bias ? l->bias : l->weight;
            clcnn_status status = clcnn_npy_write(net->ctx, path, &array);
            if (status != CLCNN_OK)
                return status;
        }
    }
    return CLCNN_OK;
}

static clcnn_status find_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                   int64_t count, layer **out_layer, float **out_values) {
    layer *l = find_layer(net, layer_name);
    if (!l)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no layer named '%s'",
                         layer_name);
    int is_bias = strcmp(which, "bias") == 0;
    if (!is_bias && strcmp(which, "weight") != 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "parameter '%s': expected 'weight' or 'bias'", which);
    int64_t expected = is_bias ? l->bias_count : l->weight_count;
    if (expected == 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "layer %s has no %s", l->name,
                         which);
    if (count != expected)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE, "layer %s: %s has %lld values, not %lld",
                         l->name, which, (long long)expected, (long long)count);
    *out_layer = l;
    *out_values = is_bias ? l->bias : l->weight;
    return CLCNN_OK;
}

clcnn_status clcnn_net_set_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                     const float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    layer *l;
    float *target;
    clcnn_status status = find_parameter(net, layer_name, which, count, &l, &target);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    memcpy(target, values, sizeof(float) * (size_t)count);
    mark_host_parameters_changed(net);
    return CLCNN_OK;
}

clcnn_status clcnn_net_get_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                     float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    layer *l;
    float *source;
    clcnn_status status = find_parameter(net, layer_name, which, count, &l, &source);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_host(net);
    if (status != CLCNN_OK)
        return status;
    memcpy(values, source, sizeof(float) * (size_t)count);
    return CLCNN_OK;
}

