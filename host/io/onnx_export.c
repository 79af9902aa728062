/* ONNX export: the nodes and the tensor table as a ModelProto (opset 13),
 * packed by protobuf-c. Every layer becomes one node (an add of more than
 * two inputs a Sum; relu6 a Clip(0, 6); dense a Gemm with transB; a mul
 * whose scale is a vector an Unsqueeze to (N, C, 1, 1) and a Mul) whose
 * name and output are the layer's name, and every named tensor an
 * initializer of the same name, so onnx_import reads back the same network:
 * the same layers, names and options, the same tensors bit for bit. */
#include "io/onnx.h"

#include "layers/layer.h"
#include "onnx.pb-c.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_OPSET 13
#define EXPORT_IR_VERSION 7

/* Everything the message tree points at, freed in one place. */
typedef struct exporter {
    clcnn_net *net;
    const char *path;
    Onnx__GraphProto graph;
    Onnx__NodeProto **nodes;
    size_t node_count, node_capacity;
    Onnx__TensorProto **initializers;
    size_t initializer_count, initializer_capacity;
    void **owned; /* every other allocation */
    size_t owned_count, owned_capacity;
    int failed; /* out of memory */
} exporter;

static void *keep(exporter *ex, void *p) {
    if (!p) {
        ex->failed = 1;
        return NULL;
    }
    if (ex->owned_count == ex->owned_capacity) {
        size_t capacity = ex->owned_capacity ? 2 * ex->owned_capacity : 256;
        void **bigger = realloc(ex->owned, sizeof(void *) * capacity);
        if (!bigger) {
            free(p);
            ex->failed = 1;
            return NULL;
        }
        ex->owned = bigger;
        ex->owned_capacity = capacity;
    }
    ex->owned[ex->owned_count++] = p;
    return p;
}

static void *allocate(exporter *ex, size_t bytes) {
    return keep(ex, calloc(1, bytes ? bytes : 1));
}

static char *text(exporter *ex, const char *format, ...) __attribute__((format(printf, 2, 3)));
static char *text(exporter *ex, const char *format, ...) {
    char buf[512];
    va_list args;
    va_start(args, format);
    vsnprintf(buf, sizeof(buf), format, args);
    va_end(args);
    return keep(ex, strdup(buf));
}

static Onnx__NodeProto *add_node(exporter *ex, const char *op, const char *name,
                                 const char *output) {
    Onnx__NodeProto *n = allocate(ex, sizeof(*n));
    if (!n)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = text(ex, "%s", op);
    n->name = text(ex, "%s", name);
    n->output = allocate(ex, sizeof(char *));
    if (n->output) {
        n->output[0] = text(ex, "%s", output);
        n->n_output = 1;
    }
    if (ex->node_count == ex->node_capacity) {
        size_t capacity = ex->node_capacity ? 2 * ex->node_capacity : 64;
        Onnx__NodeProto **bigger = realloc(ex->nodes, sizeof(*bigger) * capacity);
        if (!bigger) {
            ex->failed = 1;
            return NULL;
        }
        ex->nodes = bigger;
        ex->node_capacity = capacity;
    }
    ex->nodes[ex->node_count++] = n;
    return n;
}

/* memcpy, but also for empty arrays, whose pointer may be NULL. */
static void copy_bytes(void *to, const void *from, size_t bytes) {
    if (bytes > 0)
        memcpy(to, from, bytes);
}

static void add_input(exporter *ex, Onnx__NodeProto *n, const char *name) {
    if (!n)
        return;
    char **bigger = allocate(ex, sizeof(char *) * (n->n_input + 1));
    if (!bigger)
        return;
    copy_bytes(bigger, n->input, sizeof(char *) * n->n_input);
    bigger[n->n_input++] = text(ex, "%s", name);
    n->input = bigger;
}

static Onnx__AttributeProto *add_attribute(exporter *ex, Onnx__NodeProto *n, const char *name,
                                           Onnx__AttributeProto__AttributeType type) {
    if (!n)
        return NULL;
    Onnx__AttributeProto *a = allocate(ex, sizeof(*a));
    Onnx__AttributeProto **bigger = allocate(ex, sizeof(*bigger) * (n->n_attribute + 1));
    if (!a || !bigger)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = text(ex, "%s", name);
    a->has_type = 1;
    a->type = type;
    copy_bytes(bigger, n->attribute, sizeof(*bigger) * n->n_attribute);
    bigger[n->n_attribute++] = a;
    n->attribute = bigger;
    return a;
}

static void attribute_int(exporter *ex, Onnx__NodeProto *n, const char *name, int64_t value) {
    Onnx__AttributeProto *a =
        add_attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = value;
    }
}

static void attribute_float(exporter *ex, Onnx__NodeProto *n, const char *name, float value) {
    Onnx__AttributeProto *a =
        add_attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = value;
    }
}

static void attribute_ints(exporter *ex, Onnx__NodeProto *n, const char *name,
                           const int64_t *values, size_t count) {
    Onnx__AttributeProto *a =
        add_attribute(ex, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *copy = allocate(ex, sizeof(int64_t) * count);
    if (a && copy) {
        copy_bytes(copy, values, sizeof(int64_t) * count);
        a->ints = copy;
        a->n_ints = count;
    }
}

/* An initializer of float or int64 values. */
static void add_initializer(exporter *ex, const char *name, const int64_t *dims, int ndim,
                            const void *values, int64_t count, int is_int) {
    Onnx__TensorProto *t = allocate(ex, sizeof(*t));
    int64_t *dims_copy = allocate(ex, sizeof(int64_t) * (size_t)(ndim > 0 ? ndim : 1));
    const size_t bytes = (size_t)count * (is_int ? 8 : 4);
    uint8_t *data = allocate(ex, bytes);
    if (!t || !dims_copy || !data)
        return;
    onnx__tensor_proto__init(t);
    t->name = text(ex, "%s", name);
    copy_bytes(dims_copy, dims, sizeof(int64_t) * (size_t)ndim);
    t->dims = dims_copy;
    t->n_dims = (size_t)ndim;
    t->has_data_type = 1;
    t->data_type =
        is_int ? ONNX__TENSOR_PROTO__DATA_TYPE__INT64 : ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    copy_bytes(data, values, bytes); /* little-endian, as ONNX's raw_data */
    t->has_raw_data = 1;
    t->raw_data.data = data;
    t->raw_data.len = bytes;
    if (ex->initializer_count == ex->initializer_capacity) {
        size_t capacity = ex->initializer_capacity ? 2 * ex->initializer_capacity : 64;
        Onnx__TensorProto **bigger = realloc(ex->initializers, sizeof(*bigger) * capacity);
        if (!bigger) {
            ex->failed = 1;
            return;
        }
        ex->initializers = bigger;
        ex->initializer_capacity = capacity;
    }
    ex->initializers[ex->initializer_count++] = t;
}

static void scalar_initializer(exporter *ex, const char *name, float value) {
    add_initializer(ex, name, NULL, 0, &value, 1, 0);
}

/* A graph input or output: float (N, dims...) with the batch named N. */
static Onnx__ValueInfoProto *value_info(exporter *ex, const char *name, shape3 s) {
    Onnx__ValueInfoProto *v = allocate(ex, sizeof(*v));
    Onnx__TypeProto *type = allocate(ex, sizeof(*type));
    Onnx__TypeProto__Tensor *tensor = allocate(ex, sizeof(*tensor));
    Onnx__TensorShapeProto *shape = allocate(ex, sizeof(*shape));
    const int rank = s.ndim == 3 ? 4 : 2;
    Onnx__TensorShapeProto__Dimension **dims = allocate(ex, sizeof(*dims) * (size_t)rank);
    if (!v || !type || !tensor || !shape || !dims)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tensor);
    onnx__tensor_shape_proto__init(shape);
    const int64_t sizes[4] = {0, s.c, s.h, s.w};
    for (int d = 0; d < rank; d++) {
        dims[d] = allocate(ex, sizeof(**dims));
        if (!dims[d])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dims[d]);
        if (d == 0) {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dims[d]->dim_param = text(ex, "N");
        } else {
            dims[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dims[d]->dim_value = sizes[d];
        }
    }
    shape->dim = dims;
    shape->n_dim = (size_t)rank;
    tensor->has_elem_type = 1;
    tensor->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tensor->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tensor;
    v->name = text(ex, "%s", name);
    v->type = type;
    return v;
}

/* kernel_shape, strides, pads (top, left, bottom, right) of a window layer. */
static void window_attributes(exporter *ex, Onnx__NodeProto *n, const layer *l) {
    const int64_t kernel[2] = {l->size_h, l->size_w};
    const int64_t strides[2] = {l->stride_h, l->stride_w};
    const int64_t pads[4] = {l->pad_top, l->pad_left, l->pad_bottom, l->pad_right};
    attribute_ints(ex, n, "kernel_shape", kernel, 2);
    attribute_ints(ex, n, "strides", strides, 2);
    attribute_ints(ex, n, "pads", pads, 4);
}

/* ONNX's pooled size along an axis (ceil mode keeps a window starting in
 * the trailing padding, which PyTorch and clcnn drop). */
static int64_t onnx_pool_outputs(int64_t input, int size, int stride, int before, int after,
                                 int ceil_mode) {
    int64_t room = input + before + after - size;
    return (ceil_mode ? room + stride - 1 : room) / stride + 1;
}

static clcnn_status export_layer(exporter *ex, int index) {
    const clcnn_net *net = ex->net;
    const layer *l = &net->layers[index];
    const char *type = l->type->name;
    const char *in = l->input_count > 0 ? net->layers[l->inputs[0]].name : "";
    Onnx__NodeProto *n = NULL;
    char name[160];
    if (strcmp(type, "conv") == 0) {
        n = add_node(ex, "Conv", l->name, l->name);
        add_input(ex, n, in);
        snprintf(name, sizeof(name), "%s.weight", l->name);
        add_input(ex, n, name);
        if (l->has_bias) {
            snprintf(name, sizeof(name), "%s.bias", l->name);
            add_input(ex, n, name);
        }
        window_attributes(ex, n, l);
        const int64_t dilations[2] = {l->dilation_h, l->dilation_w};
        attribute_ints(ex, n, "dilations", dilations, 2);
        attribute_int(ex, n, "group", l->groups);
    } else if (strcmp(type, "maxpool") == 0 || strcmp(type, "avgpool") == 0) {
        if (onnx_pool_outputs(l->in.h, l->size_h, l->stride_h, l->pad_top, l->pad_bottom,
                              l->ceil_mode) != l->out.h ||
            onnx_pool_outputs(l->in.w, l->size_w, l->stride_w, l->pad_left, l->pad_right,
                              l->ceil_mode) != l->out.w)
            return set_error(net->ctx, CLCNN_ERROR_UNSUPPORTED,
                             "%s: layer %s: in ceil mode its last window would start in the "
                             "padding, which ONNX counts and clcnn (as PyTorch) does not",
                             ex->path, l->name);
        const int average = strcmp(type, "avgpool") == 0;
        n = add_node(ex, average ? "AveragePool" : "MaxPool", l->name, l->name);
        add_input(ex, n, in);
        window_attributes(ex, n, l);
        attribute_int(ex, n, "ceil_mode", l->ceil_mode);
        if (average)
            attribute_int(ex, n, "count_include_pad", !l->exclude_pad);
    } else if (strcmp(type, "globalavgpool") == 0) {
        n = add_node(ex, "GlobalAveragePool", l->name, l->name);
        add_input(ex, n, in);
    } else if (strcmp(type, "batchnorm") == 0) {
        n = add_node(ex, "BatchNormalization", l->name, l->name);
        add_input(ex, n, in);
        static const char *const suffixes[4] = {"weight", "bias", "running_mean", "running_var"};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof(name), "%s.%s", l->name, suffixes[k]);
            add_input(ex, n, name);
        }
        attribute_float(ex, n, "epsilon", l->eps);
        /* ONNX's momentum weighs the old statistic */
        attribute_float(ex, n, "momentum", (float)(1.0 - (double)l->momentum));
    } else if (strcmp(type, "dropout") == 0) {
        n = add_node(ex, "Dropout", l->name, l->name);
        add_input(ex, n, in);
        snprintf(name, sizeof(name), "%s.ratio", l->name);
        add_input(ex, n, name);
        scalar_initializer(ex, name, l->rate);
    } else if (strcmp(type, "relu") == 0 || strcmp(type, "sigmoid") == 0 ||
               strcmp(type, "tanh") == 0 || strcmp(type, "softmax") == 0 ||
               strcmp(type, "flatten") == 0) {
        const char *op = strcmp(type, "relu") == 0      ? "Relu"
                         : strcmp(type, "sigmoid") == 0 ? "Sigmoid"
                         : strcmp(type, "tanh") == 0    ? "Tanh"
                         : strcmp(type, "softmax") == 0 ? "Softmax"
                                                        : "Flatten";
        n = add_node(ex, op, l->name, l->name);
        add_input(ex, n, in);
        if (strcmp(type, "softmax") == 0)
            attribute_int(ex, n, "axis", -1);
        if (strcmp(type, "flatten") == 0)
            attribute_int(ex, n, "axis", 1);
    } else if (strcmp(type, "leaky") == 0) {
        n = add_node(ex, "LeakyRelu", l->name, l->name);
        add_input(ex, n, in);
        attribute_float(ex, n, "alpha", l->slope);
    } else if (strcmp(type, "relu6") == 0) {
        n = add_node(ex, "Clip", l->name, l->name);
        add_input(ex, n, in);
        snprintf(name, sizeof(name), "%s.min", l->name);
        add_input(ex, n, name);
        scalar_initializer(ex, name, 0.0f);
        snprintf(name, sizeof(name), "%s.max", l->name);
        add_input(ex, n, name);
        scalar_initializer(ex, name, 6.0f);
    } else if (strcmp(type, "dense") == 0) {
        n = add_node(ex, "Gemm", l->name, l->name);
        add_input(ex, n, in);
        snprintf(name, sizeof(name), "%s.weight", l->name);
        add_input(ex, n, name);
        if (l->has_bias) {
            snprintf(name, sizeof(name), "%s.bias", l->name);
            add_input(ex, n, name);
        }
        attribute_int(ex, n, "transB", 1);
    } else if (strcmp(type, "add") == 0 || strcmp(type, "concat") == 0) {
        const int concat = strcmp(type, "concat") == 0;
        n = add_node(ex, concat ? "Concat" : l->input_count == 2 ? "Add" : "Sum", l->name, l->name);
        for (int k = 0; k < l->input_count; k++)
            add_input(ex, n, net->layers[l->inputs[k]].name);
        if (concat)
            attribute_int(ex, n, "axis", 1);
    } else if (strcmp(type, "mul") == 0) {
        const layer *scale = &net->layers[l->inputs[1]];
        const char *second = scale->name;
        if (scale->out.ndim == 1 && l->out.ndim == 3) {
            /* a vector of C scaling C x H x W: ONNX broadcasts (N, C, 1, 1) */
            snprintf(name, sizeof(name), "%s.unsqueezed", l->name);
            Onnx__NodeProto *u = add_node(ex, "Unsqueeze", name, name);
            add_input(ex, u, scale->name);
            char axes[160];
            snprintf(axes, sizeof(axes), "%s.axes", l->name);
            add_input(ex, u, axes);
            const int64_t values[2] = {2, 3}, dims[1] = {2};
            add_initializer(ex, axes, dims, 1, values, 2, 1);
            second = name;
        }
        n = add_node(ex, "Mul", l->name, l->name);
        add_input(ex, n, in);
        add_input(ex, n, second);
    } else {
        return set_error(net->ctx, CLCNN_ERROR_UNSUPPORTED,
                         "%s: layer %s: type %s has no ONNX form in clcnn's exporter", ex->path,
                         l->name, type);
    }
    return ex->failed
               ? set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", ex->path)
               : CLCNN_OK;
}

static clcnn_status write_file(clcnn_context *ctx, const char *path, const uint8_t *data,
                               size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: cannot create: %s", path, strerror(errno));
    int failed = fwrite(data, 1, size, f) != size;
    if (fclose(f) != 0)
        failed = 1;
    if (failed)
        return set_error(ctx, CLCNN_ERROR_IO, "%s: write failed: %s", path, strerror(errno));
    return CLCNN_OK;
}

static clcnn_status build_model(exporter *ex, Onnx__ModelProto *model) {
    clcnn_net *net = ex->net;
    clcnn_status status = CLCNN_OK;
    /* tensors first, in the table's order */
    for (int i = 0; status == CLCNN_OK && i < net->tensor_count; i++) {
        const named_tensor *t = &net->tensors[i];
        float *values = malloc(sizeof(float) * (size_t)(t->count > 0 ? t->count : 1));
        if (!values)
            return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", ex->path);
        status = clcnn_net_get_tensor(net, t->name, values, t->count);
        if (status == CLCNN_OK)
            add_initializer(ex, t->name, t->shape, t->ndim, values, t->count, 0);
        free(values);
    }
    for (int i = 1; status == CLCNN_OK && i < net->layer_count; i++)
        status = export_layer(ex, i);
    if (status)
        return status;
    const layer *first = &net->layers[0], *last = &net->layers[net->layer_count - 1];
    Onnx__ValueInfoProto *input = value_info(ex, first->name, first->out);
    Onnx__ValueInfoProto *output = value_info(ex, last->name, last->out);
    Onnx__ValueInfoProto **inputs = allocate(ex, sizeof(*inputs));
    Onnx__ValueInfoProto **outputs = allocate(ex, sizeof(*outputs));
    Onnx__OperatorSetIdProto *opset = allocate(ex, sizeof(*opset));
    Onnx__OperatorSetIdProto **opsets = allocate(ex, sizeof(*opsets));
    if (ex->failed || !input || !output || !inputs || !outputs || !opset || !opsets)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", ex->path);
    onnx__graph_proto__init(&ex->graph);
    ex->graph.name = text(ex, "clcnn");
    ex->graph.node = ex->nodes;
    ex->graph.n_node = ex->node_count;
    ex->graph.initializer = ex->initializers;
    ex->graph.n_initializer = ex->initializer_count;
    inputs[0] = input;
    outputs[0] = output;
    ex->graph.input = inputs;
    ex->graph.n_input = 1;
    ex->graph.output = outputs;
    ex->graph.n_output = 1;
    onnx__operator_set_id_proto__init(opset);
    opset->domain = text(ex, "%s", "");
    opset->has_version = 1;
    opset->version = EXPORT_OPSET;
    opsets[0] = opset;
    onnx__model_proto__init(model);
    model->has_ir_version = 1;
    model->ir_version = EXPORT_IR_VERSION;
    model->producer_name = text(ex, "clcnn");
    model->producer_version = text(ex, "0.1.0");
    model->opset_import = opsets;
    model->n_opset_import = 1;
    model->graph = &ex->graph;
    return ex->failed
               ? set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", ex->path)
               : CLCNN_OK;
}

clcnn_status clcnn_net_save_onnx(clcnn_net *net, const char *path) {
    if (!net || !path)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_save_onnx: NULL argument");
    exporter ex;
    memset(&ex, 0, sizeof(ex));
    ex.net = net;
    ex.path = path;
    Onnx__ModelProto model;
    clcnn_status status = build_model(&ex, &model);
    if (status == CLCNN_OK) {
        const size_t size = onnx__model_proto__get_packed_size(&model);
        uint8_t *bytes = malloc(size ? size : 1);
        if (!bytes) {
            status = set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
        } else {
            onnx__model_proto__pack(&model, bytes);
            status = write_file(net->ctx, path, bytes, size);
            free(bytes);
        }
    }
    for (size_t i = 0; i < ex.owned_count; i++)
        free(ex.owned[i]);
    free(ex.owned);
    free(ex.nodes);
    free(ex.initializers);
    return status;
}
