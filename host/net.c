/* A network: layers from a network file, their parameters, and the forward pass
 * on either device. */
#include "ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Images per chunk of a forward pass: enough to keep a device busy, few
 * enough that activations of large networks fit comfortably. */
#define FORWARD_CHUNK 256

static int layer_has_parameters(const layer *l) {
    return l->type == LAYER_CONV || l->type == LAYER_DENSE;
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
    for (int i = 0; i < layer_count; i++) {
        layer *l = &layers[i];
        l->weight = calloc((size_t)(l->weight_count ? l->weight_count : 1), sizeof(float));
        l->bias = calloc((size_t)(l->bias_count ? l->bias_count : 1), sizeof(float));
        if (!l->weight || !l->bias) {
            clcnn_net_destroy(net);
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                             "out of memory for the parameters of %s", l->name);
        }
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

static void release_activations(clcnn_net *net) {
    for (int i = 0; i < net->layer_count; i++) {
        if (net->host_outputs)
            free(net->host_outputs[i]);
        if (net->device_outputs)
            buffer_release(&net->device_outputs[i]);
    }
    free(net->host_outputs);
    free(net->device_outputs);
    net->host_outputs = NULL;
    net->device_outputs = NULL;
    net->capacity = 0;
}

void clcnn_net_destroy(clcnn_net *net) {
    if (!net)
        return;
    release_activations(net);
    for (int i = 0; i < net->layer_count; i++) {
        free(net->layers[i].weight);
        free(net->layers[i].bias);
        buffer_release(&net->layers[i].weight_buffer);
        buffer_release(&net->layers[i].bias_buffer);
    }
    free(net->layers);
    free(net->text);
    free(net);
}

/* ---- describing a network ------------------------------------------------------------ */

int clcnn_net_layer_count(const clcnn_net *net) {
    return net ? net->layer_count : 0;
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
    return CLCNN_OK;
}

int64_t clcnn_net_parameter_count(const clcnn_net *net) {
    int64_t total = 0;
    for (int i = 0; net && i < net->layer_count; i++)
        total += net->layers[i].weight_count + net->layers[i].bias_count;
    return total;
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

static void mark_weights_changed(clcnn_net *net, layer *l) {
    /* Device copies are refreshed from the host copies before the next use. */
    buffer_release(&l->weight_buffer);
    buffer_release(&l->bias_buffer);
    (void)net;
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
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l))
            continue;
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
        mark_weights_changed(net, l);
    }
    return CLCNN_OK;
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
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l))
            continue;
        clcnn_status status = load_parameter(net, l, dir, 0);
        if (status == CLCNN_OK && l->has_bias)
            status = load_parameter(net, l, dir, 1);
        if (status != CLCNN_OK)
            return status;
        mark_weights_changed(net, l);
    }
    return CLCNN_OK;
}

clcnn_status clcnn_net_save_weights(clcnn_net *net, const char *dir) {
    if (!net || !dir)
        return CLCNN_ERROR_INVALID_ARGUMENT;
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
    if (status != CLCNN_OK)
        return status;
    memcpy(target, values, sizeof(float) * (size_t)count);
    mark_weights_changed(net, l);
    return CLCNN_OK;
}

clcnn_status clcnn_net_get_parameter(clcnn_net *net, const char *layer_name, const char *which,
                                     float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    layer *l;
    float *source;
    clcnn_status status = find_parameter(net, layer_name, which, count, &l, &source);
    if (status != CLCNN_OK)
        return status;
    memcpy(values, source, sizeof(float) * (size_t)count);
    return CLCNN_OK;
}

/* ---- forward pass ----------------------------------------------------------------------- */

/* Flatten only renames the shape, so its output is its input's storage. */
static int storage_of(const clcnn_net *net, int index) {
    while (index > 0 && net->layers[index].type == LAYER_FLATTEN)
        index--;
    return index;
}

static clcnn_status ensure_activations(clcnn_net *net, int64_t capacity) {
    if (net->capacity >= capacity)
        return CLCNN_OK;
    clcnn_context *ctx = net->ctx;
    release_activations(net);
    int opencl = ctx->kind == CLCNN_DEVICE_OPENCL;
    if (opencl)
        net->device_outputs = calloc((size_t)net->layer_count, sizeof(cl_mem));
    else
        net->host_outputs = calloc((size_t)net->layer_count, sizeof(float *));
    if (!net->device_outputs && !net->host_outputs)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for activations");
    for (int i = 0; i < net->layer_count; i++) {
        if (storage_of(net, i) != i)
            continue;
        size_t bytes = sizeof(float) * (size_t)(capacity * shape3_count(net->layers[i].out));
        if (opencl) {
            clcnn_status status = buffer_create(ctx, bytes, &net->device_outputs[i]);
            if (status != CLCNN_OK) {
                release_activations(net);
                return status;
            }
        } else {
            net->host_outputs[i] = malloc(bytes ? bytes : 1);
            if (!net->host_outputs[i]) {
                release_activations(net);
                return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                 "out of memory for the activations of %s (%zu bytes)",
                                 net->layers[i].name, bytes);
            }
        }
    }
    net->capacity = capacity;
    return CLCNN_OK;
}

static clcnn_status ensure_device_parameters(clcnn_net *net) {
    clcnn_context *ctx = net->ctx;
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (!layer_has_parameters(l) || l->weight_buffer)
            continue;
        size_t weight_bytes = sizeof(float) * (size_t)l->weight_count;
        size_t bias_bytes = sizeof(float) * (size_t)l->bias_count;
        clcnn_status status = buffer_create(ctx, weight_bytes, &l->weight_buffer);
        if (status == CLCNN_OK)
            status = buffer_create(ctx, bias_bytes, &l->bias_buffer);
        if (status == CLCNN_OK)
            status = buffer_write(ctx, l->weight_buffer, 0, weight_bytes, l->weight);
        if (status == CLCNN_OK)
            status = buffer_write(ctx, l->bias_buffer, 0, bias_bytes, l->bias);
        if (status != CLCNN_OK) {
            buffer_release(&l->weight_buffer);
            buffer_release(&l->bias_buffer);
            return status;
        }
    }
    return CLCNN_OK;
}

static conv2d_params conv_params(const layer *l, int batch) {
    conv2d_params p = {0};
    p.batch = batch;
    p.in_channels = l->in.c;
    p.in_height = l->in.h;
    p.in_width = l->in.w;
    p.out_channels = l->filters;
    p.kernel_h = l->size_h;
    p.kernel_w = l->size_w;
    p.stride_h = l->stride_h;
    p.stride_w = l->stride_w;
    p.pad_top = l->pad_top;
    p.pad_left = l->pad_left;
    p.out_height = l->out.h;
    p.out_width = l->out.w;
    p.has_bias = l->has_bias;
    return p;
}

static pool2d_params pool_params(const layer *l, int batch) {
    pool2d_params p = {0};
    p.kind = l->type == LAYER_MAXPOOL ? POOL_MAX : POOL_AVERAGE;
    p.batch = batch;
    p.channels = l->in.c;
    p.in_height = l->in.h;
    p.in_width = l->in.w;
    p.size_h = l->size_h;
    p.size_w = l->size_w;
    p.stride_h = l->stride_h;
    p.stride_w = l->stride_w;
    p.pad_top = l->pad_top;
    p.pad_left = l->pad_left;
    p.out_height = l->out.h;
    p.out_width = l->out.w;
    return p;
}

static dense_params dense_layer_params(const layer *l, int batch) {
    dense_params p = {batch, l->in.c, l->units, l->has_bias};
    return p;
}

static activation_kind activation_of(const layer *l) {
    switch (l->type) {
    case LAYER_LEAKY:
        return ACTIVATION_LEAKY;
    case LAYER_SIGMOID:
        return ACTIVATION_SIGMOID;
    case LAYER_TANH:
        return ACTIVATION_TANH;
    default:
        return ACTIVATION_RELU;
    }
}

static void layer_forward_ref(const layer *l, int batch, const float *in, float *out) {
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = conv_params(l, batch);
        conv2d_forward_ref(&p, in, l->weight, l->bias, out);
        break;
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        pool2d_forward_ref(&p, in, out);
        break;
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        dense_forward_ref(&p, in, l->weight, l->bias, out);
        break;
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        activation_forward_ref(activation_of(l), l->slope, batch * shape3_count(l->out), in, out);
        break;
    case LAYER_SOFTMAX: {
        int columns = l->out.ndim == 3 ? l->out.w : l->out.c;
        softmax_forward_ref(batch * shape3_count(l->out) / columns, columns, in, out);
        break;
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
}

static clcnn_status layer_forward_opencl(clcnn_context *ctx, layer *l, int batch, cl_mem in,
                                         cl_mem out) {
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = conv_params(l, batch);
        return conv2d_forward(ctx, &p, in, l->weight_buffer, l->bias_buffer, out);
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        return pool2d_forward(ctx, &p, in, out);
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        return dense_forward(ctx, &p, in, l->weight_buffer, l->bias_buffer, out);
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        return activation_forward(ctx, activation_of(l), l->slope, batch * shape3_count(l->out),
                                  in, out);
    case LAYER_SOFTMAX: {
        int columns = l->out.ndim == 3 ? l->out.w : l->out.c;
        return softmax_forward(ctx, batch * shape3_count(l->out) / columns, columns, in, out);
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
    return CLCNN_OK;
}

/* One chunk of images through every layer, reading back traced layers. */
static clcnn_status forward_chunk(clcnn_net *net, const float *input, int64_t first, int batch,
                                  float *output, clcnn_trace_fn trace, void *trace_user,
                                  float *trace_buffer) {
    clcnn_context *ctx = net->ctx;
    const int last = net->layer_count - 1;
    size_t in_bytes = sizeof(float) * (size_t)(batch * clcnn_net_input_size(net));
    size_t out_bytes = sizeof(float) * (size_t)(batch * clcnn_net_output_size(net));
    clcnn_status status = CLCNN_OK;
    if (ctx->kind == CLCNN_DEVICE_REFERENCE) {
        memcpy(net->host_outputs[0], input, in_bytes);
        for (int i = 1; i <= last && status == CLCNN_OK; i++) {
            layer *l = &net->layers[i];
            layer_forward_ref(l, batch, net->host_outputs[storage_of(net, i - 1)],
                              net->host_outputs[storage_of(net, i)]);
            if (trace)
                status = trace(trace_user, i, net->host_outputs[storage_of(net, i)], first, batch);
        }
        if (status == CLCNN_OK)
            memcpy(output, net->host_outputs[storage_of(net, last)], out_bytes);
        return status;
    }
    status = buffer_write(ctx, net->device_outputs[0], 0, in_bytes, input);
    for (int i = 1; i <= last && status == CLCNN_OK; i++) {
        layer *l = &net->layers[i];
        status = layer_forward_opencl(ctx, l, batch, net->device_outputs[storage_of(net, i - 1)],
                                      net->device_outputs[storage_of(net, i)]);
        if (status == CLCNN_OK && trace) {
            size_t bytes = sizeof(float) * (size_t)(batch * shape3_count(l->out));
            status = buffer_read(ctx, net->device_outputs[storage_of(net, i)], 0, bytes,
                                 trace_buffer);
            if (status == CLCNN_OK)
                status = trace(trace_user, i, trace_buffer, first, batch);
        }
    }
    if (status == CLCNN_OK)
        status = buffer_read(ctx, net->device_outputs[storage_of(net, last)], 0, out_bytes, output);
    return status;
}

clcnn_status clcnn_net_forward(clcnn_net *net, const float *input, int64_t batch, float *output,
                               clcnn_trace_fn trace, void *trace_user) {
    if (!net || !input || !output || batch < 0)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_forward: invalid argument");
    clcnn_context *ctx = net->ctx;
    if (!ctx->has_device)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "no device selected: call clcnn_context_select_device first");
    if (batch == 0)
        return CLCNN_OK;
    /* Kernels index with int: keep every activation of a chunk below 2^31 floats. */
    int64_t largest = 1;
    for (int i = 0; i < net->layer_count; i++)
        if (shape3_count(net->layers[i].out) > largest)
            largest = shape3_count(net->layers[i].out);
    int64_t chunk = batch < FORWARD_CHUNK ? batch : FORWARD_CHUNK;
    if (chunk > INT32_MAX / largest)
        chunk = INT32_MAX / largest;
    if (chunk < 1)
        return set_error(ctx, CLCNN_ERROR_SHAPE, "a single image's activations are too large");
    clcnn_status status = ensure_activations(net, chunk);
    if (status == CLCNN_OK && ctx->kind == CLCNN_DEVICE_OPENCL)
        status = ensure_device_parameters(net);
    if (status != CLCNN_OK)
        return status;
    float *trace_buffer = NULL;
    if (trace && ctx->kind == CLCNN_DEVICE_OPENCL) {
        trace_buffer = malloc(sizeof(float) * (size_t)(net->capacity * largest));
        if (!trace_buffer)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tracing");
    }
    const int64_t in_size = clcnn_net_input_size(net);
    const int64_t out_size = clcnn_net_output_size(net);
    for (int64_t first = 0; first < batch && status == CLCNN_OK; first += net->capacity) {
        int64_t count = batch - first < net->capacity ? batch - first : net->capacity;
        status = forward_chunk(net, input + first * in_size, first, (int)count,
                               output + first * out_size, trace, trace_user, trace_buffer);
    }
    free(trace_buffer);
    return status;
}
