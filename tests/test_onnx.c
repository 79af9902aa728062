/* ONNX import and export: import(export(m)) reproduces m exactly (layers,
 * names, options, tensors bit for bit, outputs) for networks with every
 * layer type and graph shape; models from PyTorch-style graphs import with
 * the right outputs (Pad folded into Conv, MatMul + Add, Gemm's alpha and
 * beta, ReduceMean, Reshape, training-mode batchnorm); unsupported ops and
 * attributes are refused naming the node; malformed, truncated and damaged
 * files are refused without crashing; the command line takes .onnx files. */
#include "internal.h"
#include "io/onnx.h"
#include "layers/layer.h"
#include "onnx.pb-c.h"
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static clcnn_context *ctx;

/* Every layer type: residual add, an add of three (ONNX's Sum), a channel
 * mul by (C, 1, 1) and by a vector, concat, grouped, dilated and
 * asymmetrically padded convolutions, ceil-mode pooling, batchnorm after
 * conv and after dense, dropout. */
static const char *const every_layer_text =
    "input channels=3 height=12 width=10 name=image\n"
    "conv filters=8 size=3 pad=1 name=c1\n"
    "batchnorm eps=0.001 momentum=0.2 name=b1\n"
    "relu name=r1\n"
    "conv filters=8 size=3 pad=1 groups=4 bias=false name=c2\n"
    "leaky slope=0.2 name=l2\n"
    "add inputs=l2,r1 name=sum\n"
    "conv filters=8 size=1 name=c3\n"
    "sigmoid name=s3\n"
    "globalavgpool input=sum name=g3\n"
    "conv filters=8 size=1 name=se\n"
    "mul inputs=s3,se name=m\n"
    "add inputs=m,sum,c3 name=add3\n"
    "concat inputs=add3,sum name=cat\n"
    "flatten input=g3 name=gv\n"
    "dense units=16 name=dv\n"
    "sigmoid name=sg\n"
    "mul inputs=cat,sg name=mv\n"
    "maxpool size=3 stride=2 pad=1 ceil=true name=mp\n"
    "relu6 name=r6\n"
    "avgpool size=2 name=ap\n"
    "tanh name=t\n"
    "avgpool size=3 stride=1 pad=1,0,0,1 count_pad=false name=ap2\n"
    "maxpool size=2x3 stride=1 pad=0,1,1,0 name=mp2\n"
    "conv filters=4 size=3x2 pad=1,0,2,1 dilation=2x1 stride=1x2 name=c4\n"
    "flatten name=f\n"
    "dense units=10 name=d1\n"
    "batchnorm momentum=0.01 name=b2\n"
    "dropout rate=0.25 name=drop\n"
    "dense units=5 bias=false name=d2\n"
    "softmax name=sm\n";

/* Layers named by default (conv1, relu1, ...). */
static const char *const default_names_text = "input channels=1 height=8 width=8\n"
                                              "conv filters=4 size=3 pad=same\n"
                                              "relu\n"
                                              "avgpool size=3 stride=1 pad=1 ceil=true\n"
                                              "conv filters=4 size=3 stride=2\n"
                                              "relu\n"
                                              "flatten\n"
                                              "dense units=3\n";

/* ---- helpers ---------------------------------------------------------------------------- */

static unsigned char *read_bytes(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long length = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(length > 0 ? (size_t)length : 1);
    if (data && length > 0 && fread(data, 1, (size_t)length, f) != (size_t)length) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)length;
    return data;
}

static int write_bytes(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static float *forward(clcnn_net *net, const float *x, int batch) {
    float *y = malloc(sizeof(float) * (size_t)(batch * clcnn_net_output_size(net)));
    if (y && clcnn_net_forward(net, x, batch, y, NULL, NULL) != CLCNN_OK) {
        printf("forward: %s\n", clcnn_last_error(ctx));
        free(y);
        return NULL;
    }
    return y;
}

static float *random_input(clcnn_net *net, int batch, uint64_t seed) {
    test_rng r = {seed};
    const int64_t n = batch * clcnn_net_input_size(net);
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; x && i < n; i++)
        x[i] = test_rand_float(&r, -1.0f, 1.0f);
    return x;
}

/* Random values in every tensor (variances positive), so that a mixed-up
 * tensor or option could not go unnoticed. */
static void randomise_tensors(clcnn_net *net, uint64_t seed) {
    test_rng r = {seed};
    for (int i = 0; i < net->tensor_count; i++) {
        const named_tensor *t = &net->tensors[i];
        float *values = malloc(sizeof(float) * (size_t)t->count);
        const int variance = strstr(t->name, "running_var") != NULL;
        for (int64_t k = 0; k < t->count; k++)
            values[k] = variance ? test_rand_float(&r, 0.5f, 2.0f) : test_rand_float(&r, -1, 1);
        CHECK_OK(ctx, clcnn_net_set_tensor(net, t->name, values, t->count));
        free(values);
    }
}

/* The two networks are the same: layers, options, shapes, tensors bit for bit. */
static void check_same_network(clcnn_net *a, clcnn_net *b, const char *what) {
    if (!CHECK(a->layer_count == b->layer_count)) {
        printf("%s: %d layers against %d\n", what, a->layer_count, b->layer_count);
        return;
    }
    for (int i = 0; i < a->layer_count; i++) {
        const layer *x = &a->layers[i], *y = &b->layers[i];
        int same = x->type == y->type && strcmp(x->name, y->name) == 0 &&
                   x->input_count == y->input_count && x->filters == y->filters &&
                   x->units == y->units && x->size_h == y->size_h && x->size_w == y->size_w &&
                   x->stride_h == y->stride_h && x->stride_w == y->stride_w &&
                   x->pad_top == y->pad_top && x->pad_left == y->pad_left &&
                   x->pad_bottom == y->pad_bottom && x->pad_right == y->pad_right &&
                   x->has_bias == y->has_bias && x->dilation_h == y->dilation_h &&
                   x->dilation_w == y->dilation_w && x->groups == y->groups &&
                   x->ceil_mode == y->ceil_mode && x->exclude_pad == y->exclude_pad &&
                   x->slope == y->slope && x->rate == y->rate && x->eps == y->eps &&
                   x->momentum == y->momentum && memcmp(&x->in, &y->in, sizeof(shape3)) == 0 &&
                   memcmp(&x->out, &y->out, sizeof(shape3)) == 0 &&
                   x->weight_count == y->weight_count && x->bias_count == y->bias_count;
        for (int k = 0; same && k < x->input_count; k++)
            same = x->inputs[k] == y->inputs[k];
        if (!CHECK(same))
            printf("%s: layer %d (%s %s) differs from %s %s\n", what, i, x->type->name, x->name,
                   y->type->name, y->name);
    }
    if (!CHECK(a->tensor_count == b->tensor_count))
        return;
    for (int i = 0; i < a->tensor_count; i++) {
        const named_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        int same = strcmp(x->name, y->name) == 0 && x->kind == y->kind && x->ndim == y->ndim &&
                   x->count == y->count && memcmp(x->shape, y->shape, sizeof(x->shape)) == 0;
        if (same) {
            float *u = malloc(sizeof(float) * (size_t)x->count);
            float *v = malloc(sizeof(float) * (size_t)x->count);
            same = clcnn_net_get_tensor(a, x->name, u, x->count) == CLCNN_OK &&
                   clcnn_net_get_tensor(b, y->name, v, y->count) == CLCNN_OK &&
                   memcmp(u, v, sizeof(float) * (size_t)x->count) == 0;
            free(u);
            free(v);
        }
        if (!CHECK(same))
            printf("%s: tensor %s differs from %s\n", what, x->name, y->name);
    }
}

/* export, import, compare: the network and its outputs, bit for bit. */
static void check_round_trip(const char *text, const char *what) {
    clcnn_net *net = NULL, *back = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, text, what, &net)))
        return;
    CHECK_OK(ctx, clcnn_net_init_weights(net, 7));
    randomise_tensors(net, 11);
    const char *path = test_path("round_trip.onnx");
    if (CHECK_OK(ctx, clcnn_net_save_onnx(net, path)) &&
        CHECK_OK(ctx, clcnn_net_from_onnx(ctx, path, &back))) {
        check_same_network(net, back, what);
        float *x = random_input(net, 3, 5);
        float *y = forward(net, x, 3), *z = forward(back, x, 3);
        CHECK(y && z &&
              memcmp(y, z, sizeof(float) * (size_t)(3 * clcnn_net_output_size(net))) == 0);
        free(x);
        free(y);
        free(z);
        /* and once more: the exported file of the import is the same file */
        size_t first_size = 0, second_size = 0;
        unsigned char *first = read_bytes(path, &first_size);
        const char *again = test_path("round_trip_again.onnx");
        CHECK_OK(ctx, clcnn_net_save_onnx(back, again));
        unsigned char *second = read_bytes(again, &second_size);
        CHECK(first && second && first_size == second_size &&
              memcmp(first, second, first_size) == 0);
        free(first);
        free(second);
    }
    clcnn_net_destroy(back);
    clcnn_net_destroy(net);
}

static char *read_text(const char *path) {
    size_t size = 0;
    unsigned char *data = read_bytes(path, &size);
    if (!data)
        return NULL;
    char *text = realloc(data, size + 1);
    if (text)
        text[size] = 0;
    return text;
}

/* ---- models written here with protobuf-c, as PyTorch writes them ---------------------- */

typedef struct builder {
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1];
    Onnx__NodeProto nodes[16], *node_list[16];
    Onnx__AttributeProto attributes[32], *attribute_list[32];
    int attribute_count;
    Onnx__TensorProto tensors[16], *tensor_list[16];
    Onnx__ValueInfoProto io[2], *inputs[1], *outputs[1];
    Onnx__TypeProto types[2];
    Onnx__TypeProto__Tensor tensor_types[2];
    Onnx__TensorShapeProto shapes[2];
    Onnx__TensorShapeProto__Dimension dims[2][4], *dim_list[2][4];
    char *node_inputs[16][5], *node_outputs[16][1];
} builder;

static void builder_init(builder *b, int64_t opset, const char *input, const int64_t *in_dims,
                         int in_rank, const char *output) {
    memset(b, 0, sizeof(*b));
    onnx__model_proto__init(&b->model);
    onnx__graph_proto__init(&b->graph);
    onnx__operator_set_id_proto__init(&b->opset);
    b->opset.domain = "";
    b->opset.has_version = 1;
    b->opset.version = opset;
    b->opsets[0] = &b->opset;
    b->model.has_ir_version = 1;
    b->model.ir_version = 7;
    b->model.opset_import = b->opsets;
    b->model.n_opset_import = 1;
    b->model.graph = &b->graph;
    b->graph.node = b->node_list;
    b->graph.initializer = b->tensor_list;
    const char *names[2] = {input, output};
    for (int k = 0; k < 2; k++) {
        onnx__value_info_proto__init(&b->io[k]);
        onnx__type_proto__init(&b->types[k]);
        onnx__type_proto__tensor__init(&b->tensor_types[k]);
        onnx__tensor_shape_proto__init(&b->shapes[k]);
        b->io[k].name = (char *)names[k];
        b->io[k].type = &b->types[k];
        b->types[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
        b->types[k].tensor_type = &b->tensor_types[k];
        b->tensor_types[k].has_elem_type = 1;
        b->tensor_types[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    }
    b->tensor_types[0].shape = &b->shapes[0];
    for (int d = 0; d < in_rank; d++) {
        Onnx__TensorShapeProto__Dimension *dim = &b->dims[0][d];
        onnx__tensor_shape_proto__dimension__init(dim);
        if (d == 0 && in_dims[0] < 0) {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim->dim_param = "batch";
        } else {
            dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim->dim_value = in_dims[d];
        }
        b->dim_list[0][d] = dim;
    }
    b->shapes[0].dim = b->dim_list[0];
    b->shapes[0].n_dim = (size_t)in_rank;
    b->inputs[0] = &b->io[0];
    b->outputs[0] = &b->io[1];
    b->graph.input = b->inputs;
    b->graph.n_input = 1;
    b->graph.output = b->outputs;
    b->graph.n_output = 1;
}

static Onnx__NodeProto *builder_node(builder *b, const char *op, const char *name,
                                     const char *const *inputs, int input_count,
                                     const char *output) {
    const size_t i = b->graph.n_node++;
    Onnx__NodeProto *n = &b->nodes[i];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    for (int k = 0; k < input_count; k++)
        b->node_inputs[i][k] = (char *)inputs[k];
    n->input = b->node_inputs[i];
    n->n_input = (size_t)input_count;
    b->node_outputs[i][0] = (char *)output;
    n->output = b->node_outputs[i];
    n->n_output = 1;
    b->node_list[i] = n;
    return n;
}

static Onnx__AttributeProto *builder_attribute(builder *b, Onnx__NodeProto *n, const char *name) {
    Onnx__AttributeProto *a = &b->attributes[b->attribute_count];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    if (n->n_attribute == 0)
        n->attribute = &b->attribute_list[b->attribute_count];
    b->attribute_list[b->attribute_count++] = a;
    n->n_attribute++;
    return a;
}

static void attr_int(builder *b, Onnx__NodeProto *n, const char *name, int64_t value) {
    Onnx__AttributeProto *a = builder_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = value;
}

static void attr_float(builder *b, Onnx__NodeProto *n, const char *name, float value) {
    Onnx__AttributeProto *a = builder_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = value;
}

static void attr_ints(builder *b, Onnx__NodeProto *n, const char *name, int64_t *values,
                      size_t count) {
    Onnx__AttributeProto *a = builder_attribute(b, n, name);
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->ints = values;
    a->n_ints = count;
}

/* Attributes must be added to one node at a time, in a row. */
static void builder_float_tensor(builder *b, const char *name, int64_t *dims, int rank,
                                 float *values, int64_t count) {
    Onnx__TensorProto *t = &b->tensors[b->graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->dims = dims;
    t->n_dims = (size_t)rank;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->float_data = values; /* typed, where the exporter writes raw_data */
    t->n_float_data = (size_t)count;
    b->tensor_list[b->graph.n_initializer++] = t;
}

static void builder_int_tensor(builder *b, const char *name, int64_t *dims, int rank,
                               int64_t *values, int64_t count) {
    Onnx__TensorProto *t = &b->tensors[b->graph.n_initializer];
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->dims = dims;
    t->n_dims = (size_t)rank;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    t->int64_data = values;
    t->n_int64_data = (size_t)count;
    b->tensor_list[b->graph.n_initializer++] = t;
}

static int builder_write(builder *b, const char *path) {
    const size_t size = onnx__model_proto__get_packed_size(&b->model);
    unsigned char *data = malloc(size + 1);
    onnx__model_proto__pack(&b->model, data);
    int result = write_bytes(path, data, size);
    free(data);
    return result;
}

/* Pad -> Conv (asymmetric zeros folded in), BatchNormalization, Relu,
 * ReduceMean over H, W without keepdims, MatMul + Add, Gemm with alpha,
 * beta and no transB, Reshape to (0, -1), Softmax: against a forward
 * written here in double. */
static void test_pytorch_style_graph(void) {
    enum { N = 2, C = 2, H = 5, W = 4, K = 3, U = 4, V = 3 };
    test_rng r = {3};
    float weight[K * C * 2 * 3], bias[K], scale[K], shift[K], mean[K], var[K];
    float mat[K * U], mat_bias[U], gemm_b[U * V], gemm_c[V];
    for (int i = 0; i < K * C * 6; i++)
        weight[i] = test_rand_float(&r, -1, 1);
    for (int i = 0; i < K; i++) {
        bias[i] = test_rand_float(&r, -1, 1);
        scale[i] = test_rand_float(&r, 0.5f, 1.5f);
        shift[i] = test_rand_float(&r, -1, 1);
        mean[i] = test_rand_float(&r, -1, 1);
        var[i] = test_rand_float(&r, 0.5f, 2);
    }
    for (int i = 0; i < K * U; i++)
        mat[i] = test_rand_float(&r, -1, 1);
    for (int i = 0; i < U; i++)
        mat_bias[i] = test_rand_float(&r, -1, 1);
    for (int i = 0; i < U * V; i++)
        gemm_b[i] = test_rand_float(&r, -1, 1);
    for (int i = 0; i < V; i++)
        gemm_c[i] = test_rand_float(&r, -1, 1);
    int64_t in_dims[4] = {-1, C, H, W};
    builder b;
    builder_init(&b, 13, "x", in_dims, 4, "y");
    int64_t w_dims[4] = {K, C, 2, 3}, k_dims[1] = {K}, mat_dims[2] = {K, U}, u_dims[1] = {U},
            gb_dims[2] = {U, V}, v_dims[1] = {V}, pads_dims[1] = {8}, shape_dims[1] = {2};
    int64_t pads[8] = {0, 0, 1, 0, 0, 0, 0, 2}; /* top 1, right 2 */
    int64_t shape[2] = {0, -1};
    builder_float_tensor(&b, "features.0.weight", w_dims, 4, weight, K * C * 6);
    builder_float_tensor(&b, "features.0.bias", k_dims, 1, bias, K);
    builder_float_tensor(&b, "bn.weight", k_dims, 1, scale, K);
    builder_float_tensor(&b, "bn.bias", k_dims, 1, shift, K);
    builder_float_tensor(&b, "bn.running_mean", k_dims, 1, mean, K);
    builder_float_tensor(&b, "bn.running_var", k_dims, 1, var, K);
    builder_float_tensor(&b, "onnx::MatMul_1", mat_dims, 2, mat, K * U);
    builder_float_tensor(&b, "fc1.bias", u_dims, 1, mat_bias, U);
    builder_float_tensor(&b, "fc2.weight", gb_dims, 2, gemm_b, U * V);
    builder_float_tensor(&b, "fc2.bias", v_dims, 1, gemm_c, V);
    builder_int_tensor(&b, "pads", pads_dims, 1, pads, 8);
    builder_int_tensor(&b, "shape", shape_dims, 1, shape, 2);
    static const char *const pad_in[] = {"x", "pads"};
    builder_node(&b, "Pad", "/pad/Pad", pad_in, 2, "padded");
    static const char *const conv_in[] = {"padded", "features.0.weight", "features.0.bias"};
    Onnx__NodeProto *conv = builder_node(&b, "Conv", "/features.0/Conv", conv_in, 3, "c");
    int64_t conv_pads[4] = {0, 1, 1, 0}; /* plus the Pad's: top 1, left 1, bottom 1, right 2 */
    attr_ints(&b, conv, "pads", conv_pads, 4);
    static const char *const bn_in[] = {"c", "bn.weight", "bn.bias", "bn.running_mean",
                                        "bn.running_var"};
    Onnx__NodeProto *bn = builder_node(&b, "BatchNormalization", "/bn/BN", bn_in, 5, "b");
    attr_float(&b, bn, "epsilon", 1e-3f);
    static const char *const relu_in[] = {"b"};
    builder_node(&b, "Relu", "/relu/Relu", relu_in, 1, "r");
    static const char *const mean_in[] = {"r"};
    Onnx__NodeProto *reduce = builder_node(&b, "ReduceMean", "/ReduceMean", mean_in, 1, "m");
    int64_t axes[2] = {-1, -2};
    attr_ints(&b, reduce, "axes", axes, 2);
    attr_int(&b, reduce, "keepdims", 0);
    static const char *const reshape_in[] = {"m", "shape"};
    builder_node(&b, "Reshape", "/Reshape", reshape_in, 2, "flat");
    static const char *const matmul_in[] = {"flat", "onnx::MatMul_1"};
    builder_node(&b, "MatMul", "/fc1/MatMul", matmul_in, 2, "mm");
    static const char *const add_in[] = {"fc1.bias", "mm"};
    builder_node(&b, "Add", "/fc1/Add", add_in, 2, "h");
    static const char *const gemm_in[] = {"h", "fc2.weight", "fc2.bias"};
    Onnx__NodeProto *gemm = builder_node(&b, "Gemm", "/fc2/Gemm", gemm_in, 3, "g");
    attr_float(&b, gemm, "alpha", 0.5f);
    attr_float(&b, gemm, "beta", 2.0f);
    static const char *const softmax_in[] = {"g"};
    builder_node(&b, "Softmax", "/Softmax", softmax_in, 1, "y");
    const char *path = test_path("pytorch_style.onnx");
    CHECK(builder_write(&b, path) == 0);

    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_onnx(ctx, path, &net)))
        return;
    CHECK(strcmp(clcnn_net_text(net) + strcspn(clcnn_net_text(net), "\n") + 1,
                 "input name=x channels=2 height=5 width=4\n"
                 "conv name=features.0 filters=3 size=2x3 pad=1,1,1,2\n"
                 "batchnorm name=bn eps=0.00100000005\n"
                 "relu name=relu\n"
                 "globalavgpool name=ReduceMean\n"
                 "flatten name=ReduceMean_2\n"
                 "dense name=fc1 units=4\n"
                 "dense name=fc2 units=3\n"
                 "softmax name=Softmax\n") == 0);
    printf("%s", clcnn_net_text(net));
    float x[N * C * H * W];
    for (int i = 0; i < N * C * H * W; i++)
        x[i] = test_rand_float(&r, -1, 1);
    float *y = forward(net, x, N);
    /* the same in double */
    const int PH = H + 2, PW = W + 3, OH = PH - 1, OW = PW - 2;
    double worst = 0;
    for (int n = 0; y && n < N; n++) {
        double pooled[K], hidden[U], logits[V], total = 0;
        for (int k = 0; k < K; k++) {
            double sum = 0;
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = bias[k];
                    for (int c = 0; c < C; c++)
                        for (int i = 0; i < 2; i++)
                            for (int j = 0; j < 3; j++) {
                                const int h = oh + i - 1, w = ow + j - 1;
                                if (h >= 0 && h < H && w >= 0 && w < W)
                                    acc += (double)weight[((k * C + c) * 2 + i) * 3 + j] *
                                           x[((n * C + c) * H + h) * W + w];
                            }
                    acc = (acc - mean[k]) / sqrt((double)var[k] + 1e-3f) * scale[k] + shift[k];
                    sum += acc > 0 ? acc : 0;
                }
            pooled[k] = sum / (OH * OW);
        }
        for (int u = 0; u < U; u++) {
            hidden[u] = mat_bias[u];
            for (int k = 0; k < K; k++)
                hidden[u] += pooled[k] * mat[k * U + u];
        }
        for (int v = 0; v < V; v++) {
            logits[v] = 2.0 * gemm_c[v];
            for (int u = 0; u < U; u++)
                logits[v] += 0.5 * hidden[u] * gemm_b[u * V + v];
            total += exp(logits[v]);
        }
        for (int v = 0; v < V; v++) {
            const double e = fabs(exp(logits[v]) / total - y[n * V + v]);
            worst = e > worst ? e : worst;
        }
    }
    CHECK(y && worst < 1e-6);
    free(y);
    clcnn_net_destroy(net);

    /* training-mode batchnorm (as torch.onnx.export with training=TRAINING) */
    Onnx__AttributeProto training, *bn_attributes[2] = {bn->attribute[0], &training};
    onnx__attribute_proto__init(&training);
    training.name = "training_mode";
    training.has_type = 1;
    training.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    training.has_i = 1;
    training.i = 1;
    Onnx__AttributeProto **inference_attributes = bn->attribute;
    bn->attribute = bn_attributes;
    bn->n_attribute = 2;
    CHECK(builder_write(&b, path) == 0);
    bn->attribute = inference_attributes;
    bn->n_attribute = 1;
    onnx_import_info info;
    if (CHECK_OK(ctx, onnx_import(ctx, path, NULL, &net, &info)))
        CHECK(info.training_mode == 1);
    clcnn_net_destroy(net);
    net = NULL;

    /* what is refused, naming the node */
    struct {
        const char *what, *expected;
        clcnn_status status;
    } refusals[] = {
        {"Relu as Selu", "node '/relu/Relu' (Selu): op Selu is not supported",
         CLCNN_ERROR_UNSUPPORTED},
        {"an unknown attribute", "node '/relu/Relu' (Relu): attribute 'count' is not supported",
         CLCNN_ERROR_UNSUPPORTED},
        {"gemm transA", "node '/fc2/Gemm' (Gemm): transA=1 is not supported",
         CLCNN_ERROR_UNSUPPORTED},
        {"external data", "external data", CLCNN_ERROR_UNSUPPORTED},
        {"opset 18", "opset 18 is not supported", CLCNN_ERROR_UNSUPPORTED},
        {"no opset", "declares no opset", CLCNN_ERROR_FORMAT},
        {"unknown input", "reads 'nowhere', which no node", CLCNN_ERROR_FORMAT},
        {"reflect pad", "node '/pad/Pad' (Pad): only constant padding", CLCNN_ERROR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        builder c = b;
        /* the copies point at b's arrays: repoint what the change touches */
        Onnx__NodeProto nodes[16];
        Onnx__NodeProto *list[16];
        memcpy(nodes, b.nodes, sizeof(nodes));
        for (int k = 0; k < 16; k++)
            list[k] = &nodes[k];
        c.graph = b.graph;
        c.graph.node = list;
        c.model.graph = &c.graph;
        Onnx__TensorProto tensors[16], *tensor_list[16];
        memcpy(tensors, b.tensors, sizeof(tensors));
        for (int k = 0; k < 16; k++)
            tensor_list[k] = &tensors[k];
        c.graph.initializer = tensor_list;
        Onnx__OperatorSetIdProto opset = b.opset, *opsets[1] = {&opset};
        c.model.opset_import = opsets;
        Onnx__AttributeProto extra, *extras[4];
        Onnx__StringStringEntryProto location, *locations[1] = {&location};
        char *bad_input[3] = {"nowhere", "features.0.weight", "features.0.bias"};
        switch (i) {
        case 0:
            nodes[3].op_type = "Selu";
            break;
        case 1:
            /* an attribute of no meaning to Relu */
            onnx__attribute_proto__init(&extra);
            extra.name = "count";
            extra.has_type = 1;
            extra.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            extra.has_i = 1;
            extras[0] = &extra;
            nodes[3].attribute = extras;
            nodes[3].n_attribute = 1;
            break;
        case 2:
            memcpy(extras, nodes[8].attribute, sizeof(extras[0]) * nodes[8].n_attribute);
            onnx__attribute_proto__init(&extra);
            extra.name = "transA";
            extra.has_type = 1;
            extra.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            extra.has_i = 1;
            extra.i = 1;
            extras[nodes[8].n_attribute] = &extra;
            nodes[8].attribute = extras;
            nodes[8].n_attribute++;
            break;
        case 3:
            onnx__string_string_entry_proto__init(&location);
            location.key = "location";
            location.value = "weights.bin";
            tensors[0].float_data = NULL;
            tensors[0].n_float_data = 0;
            tensors[0].external_data = locations;
            tensors[0].n_external_data = 1;
            tensors[0].has_data_location = 1;
            tensors[0].data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
            break;
        case 4:
            opset.version = 18;
            break;
        case 5:
            c.model.n_opset_import = 0;
            break;
        case 6:
            nodes[1].input = bad_input;
            break;
        case 7:
            onnx__attribute_proto__init(&extra);
            extra.name = "mode";
            extra.has_type = 1;
            extra.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
            extra.has_s = 1;
            extra.s.data = (uint8_t *)"reflect";
            extra.s.len = 7;
            extras[0] = &extra;
            nodes[0].attribute = extras;
            nodes[0].n_attribute = 1;
            break;
        }
        const char *bad = test_path("refused.onnx");
        CHECK(builder_write(&c, bad) == 0);
        clcnn_status status = clcnn_net_from_onnx(ctx, bad, &net);
        const char *message = clcnn_last_error(ctx);
        if (!CHECK(status == refusals[i].status && strstr(message, refusals[i].expected) &&
                   strstr(message, bad) == message && !net))
            printf("%s: status %d, '%s'\n", refusals[i].what, (int)status, message);
        clcnn_net_destroy(net);
        net = NULL;
    }
}

/* x.view(x.size(0), -1) with a free batch, as torch.onnx.export writes it:
 * Shape, Gather, Unsqueeze and Concat computing the Reshape's shape. */
static void test_dynamic_view(void) {
    int64_t in_dims[4] = {-1, 2, 3, 2};
    builder b;
    builder_init(&b, 13, "x", in_dims, 4, "y");
    int64_t zero = 0, minus_one[1] = {-1}, axes[1] = {0}, one_dims[1] = {1};
    builder_int_tensor(&b, "index", NULL, 0, &zero, 1);
    builder_int_tensor(&b, "rest", one_dims, 1, minus_one, 1);
    builder_int_tensor(&b, "axes", one_dims, 1, axes, 1);
    static const char *const relu_in[] = {"x"}, *const shape_in[] = {"r"},
                             *const gather_in[] = {"shape", "index"},
                             *const unsqueeze_in[] = {"n", "axes"},
                             *const concat_in[] = {"batch", "rest"},
                             *const reshape_in[] = {"r", "target"};
    builder_node(&b, "Relu", "/Relu", relu_in, 1, "r");
    builder_node(&b, "Shape", "/Shape", shape_in, 1, "shape");
    builder_node(&b, "Gather", "/Gather", gather_in, 2, "n");
    builder_node(&b, "Unsqueeze", "/Unsqueeze", unsqueeze_in, 2, "batch");
    Onnx__NodeProto *concat = builder_node(&b, "Concat", "/Concat", concat_in, 2, "target");
    attr_int(&b, concat, "axis", 0);
    builder_node(&b, "Reshape", "/Reshape", reshape_in, 2, "y");
    const char *path = test_path("view.onnx");
    CHECK(builder_write(&b, path) == 0);
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_onnx(ctx, path, &net)))
        return;
    CHECK(clcnn_net_layer_count(net) == 3 && clcnn_net_output_size(net) == 12 &&
          strcmp(net->layers[2].type->name, "flatten") == 0);
    float x[5 * 12], *y;
    test_rng r = {4};
    for (int i = 0; i < 5 * 12; i++)
        x[i] = test_rand_float(&r, -1, 1);
    y = forward(net, x, 5);
    int same = y != NULL;
    for (int i = 0; same && i < 5 * 12; i++)
        same = y[i] == (x[i] > 0 ? x[i] : 0.0f);
    CHECK(same);
    free(y);
    clcnn_net_destroy(net);
}

/* Truncations, flipped bytes and foreign files: an error, never a crash. */
static void test_damaged_files(void) {
    clcnn_net *net = NULL;
    CHECK_OK(ctx, clcnn_net_from_string(ctx, default_names_text, "small", &net));
    CHECK_OK(ctx, clcnn_net_init_weights(net, 3));
    const char *good = test_path("good.onnx"), *bad = test_path("damaged.onnx");
    CHECK_OK(ctx, clcnn_net_save_onnx(net, good));
    clcnn_net_destroy(net);
    size_t size = 0;
    unsigned char *data = read_bytes(good, &size);
    if (!CHECK(data && size > 100))
        return;
    int refused = 0, tried = 0;
    for (size_t length = 0; length < size; length += length < 200 ? 1 : 37) {
        CHECK(write_bytes(bad, data, length) == 0);
        net = NULL;
        clcnn_status status = clcnn_net_from_onnx(ctx, bad, &net);
        tried++;
        refused += status == CLCNN_ERROR_FORMAT && !net &&
                   strncmp(clcnn_last_error(ctx), bad, strlen(bad)) == 0;
        clcnn_net_destroy(net);
    }
    CHECK(refused == tried);
    /* flipped bytes: any result but a crash; what loads is a working network */
    test_rng r = {99};
    unsigned char *copy = malloc(size);
    for (int trial = 0; trial < 300; trial++) {
        memcpy(copy, data, size);
        const int flips = test_rand_int(&r, 1, 4);
        for (int f = 0; f < flips; f++)
            copy[test_rand_int(&r, 0, (int)size - 1)] ^= (unsigned char)test_rand_int(&r, 1, 255);
        CHECK(write_bytes(bad, copy, size) == 0);
        net = NULL;
        if (clcnn_net_from_onnx(ctx, bad, &net) == CLCNN_OK) {
            float *x = random_input(net, 1, 1);
            float *y = forward(net, x, 1);
            free(x);
            free(y);
        } else {
            CHECK(strlen(clcnn_last_error(ctx)) > strlen(bad));
        }
        clcnn_net_destroy(net);
    }
    free(copy);
    free(data);
    CHECK(write_text(bad, "input channels=1 height=2 width=2\n") == 0);
    CHECK(clcnn_net_from_onnx(ctx, bad, &net) == CLCNN_ERROR_FORMAT);
    CHECK(clcnn_net_from_onnx(ctx, test_path("missing.onnx"), &net) == CLCNN_ERROR_IO);
}

/* import, summary, forward, eval-free commands and export through the tool. */
static void test_command_line(void) {
    clcnn_net *net = NULL;
    CHECK_OK(ctx, clcnn_net_from_string(ctx, every_layer_text, "every", &net));
    CHECK_OK(ctx, clcnn_net_init_weights(net, 5));
    const char *onnx = test_path("cli.onnx");
    CHECK_OK(ctx, clcnn_net_save_onnx(net, onnx));
    float *x = random_input(net, 2, 8);
    float *expected = forward(net, x, 2);
    clcnn_array input = {CLCNN_FLOAT32, 4, {2, 3, 12, 10}, x};
    CHECK_OK(ctx, clcnn_npy_write(ctx, test_path("x.npy"), &input));
    char command[8192], output[8192];
    snprintf(command, sizeof(command), "%s import %s %s && %s summary %s && %s export %s %s",
             clcnn_bin(), onnx, test_path("cli.model"), clcnn_bin(), onnx, clcnn_bin(),
             test_path("cli.model"), test_path("cli_back.onnx"));
    CHECK(run_command(command, output, sizeof(output)) == 0);
    CHECK(strstr(output, "mv ") != NULL);
    for (int d = 0; d < 2; d++) {
        snprintf(command, sizeof(command), "%s forward %s --input %s --output %s --device %s",
                 clcnn_bin(), test_path("cli_back.onnx"), test_path("x.npy"), test_path("y.npy"),
                 d ? "opencl" : "reference");
        if (!CHECK(run_command(command, output, sizeof(output)) == 0))
            printf("%s\n", output);
        clcnn_array y = {0};
        if (CHECK_OK(ctx, clcnn_npy_read(ctx, test_path("y.npy"), &y)))
            CHECK(clcnn_array_count(&y) == 10 &&
                  max_relative_error(y.data, expected, 10, 1e-3) < (d ? 1e-4 : 1e-6));
        clcnn_array_free(&y);
    }
    /* a refusal: one line on stderr naming the file and the node, exit status 1 */
    CHECK(write_text(test_path("bad.onnx"), "not a protobuf\n") == 0);
    snprintf(command, sizeof(command), "%s import %s %s 2>&1", clcnn_bin(), test_path("bad.onnx"),
             test_path("bad.model"));
    CHECK(run_command(command, output, sizeof(output)) == 1);
    CHECK(strstr(output, "bad.onnx: not an ONNX model") &&
          strchr(output, '\n') == output + strlen(output) - 1);
    free(x);
    free(expected);
    clcnn_net_destroy(net);
}

/* train --init FILE.onnx: the tensors whose name and shape match are copied
 * (and trained from there), the others keep their initialisation. */
static void test_train_init(void) {
    const char *a = "input channels=1 height=28 width=28\n"
                    "conv filters=4 size=5 stride=4 name=c1\n"
                    "relu\n"
                    "flatten\n"
                    "dense units=10 name=head\n"
                    "softmax\n";
    clcnn_net *net = NULL;
    if (!CHECK_OK(ctx, clcnn_net_from_string(ctx, a, "a", &net)))
        return;
    CHECK_OK(ctx, clcnn_net_init_weights(net, 21));
    const char *onnx = test_path("init.onnx");
    CHECK_OK(ctx, clcnn_net_save_onnx(net, onnx));
    float conv[4 * 25], head[10 * 144];
    CHECK_OK(ctx, clcnn_net_get_tensor(net, "c1.weight", conv, 4 * 25));
    CHECK_OK(ctx, clcnn_net_get_tensor(net, "head.weight", head, 10 * 144));
    clcnn_net_destroy(net);
    /* the same body, another head: c1 comes from the file, head2 from the seed */
    const char *b_path = test_path("b.net");
    CHECK(write_text(b_path, "input channels=1 height=28 width=28\n"
                             "conv filters=4 size=5 stride=4 name=c1\n"
                             "relu\n"
                             "flatten\n"
                             "dense units=10 name=head2\n"
                             "softmax\n") == 0);
    char command[8192], output[8192];
    snprintf(command, sizeof(command),
             "%s train %s --init %s --epochs 1 --limit 64 --test-limit 32 --batch 32 --lr 1e-12 "
             "--save %s --device reference 2>&1 && %s export %s %s",
             clcnn_bin(), b_path, onnx, test_path("b.model"), clcnn_bin(), test_path("b.model"),
             test_path("b_weights"));
    if (!CHECK(run_command(command, output, sizeof(output)) == 0)) {
        printf("%s\n", output);
        return;
    }
    CHECK(strstr(output, "init: copied 2 tensors from") != NULL);
    CHECK(strstr(output, "init: head2.weight keeps its initial values (not in the file)") != NULL);
    clcnn_array trained = {0};
    snprintf(command, sizeof(command), "%s/c1.weight.npy", test_path("b_weights"));
    if (CHECK_OK(ctx, clcnn_npy_read(ctx, command, &trained)))
        CHECK(clcnn_array_count(&trained) == 100 &&
              max_relative_error(trained.data, conv, 100, 1e-3) < 1e-6);
    clcnn_array_free(&trained);
    snprintf(command, sizeof(command), "%s/head2.weight.npy", test_path("b_weights"));
    if (CHECK_OK(ctx, clcnn_npy_read(ctx, command, &trained)))
        CHECK(clcnn_array_count(&trained) == 1440 &&
              max_relative_error(trained.data, head, 1440, 1e-3) > 0.1);
    clcnn_array_free(&trained);
    /* a network file has no weights to start from */
    snprintf(command, sizeof(command), "%s train %s --init %s --epochs 1 --limit 64 2>&1",
             clcnn_bin(), b_path, b_path);
    CHECK(run_command(command, output, sizeof(output)) == 1 &&
          strstr(output, "is a network file, without weights"));
}

int main(void) {
    ctx = clcnn_context_create();
    CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, 0, 0));
    check_round_trip(every_layer_text, "every layer type");
    check_round_trip(default_names_text, "default names");
    const char *source = getenv("CLCNN_SOURCE_DIR");
    static const char *const examples[] = {"lenet5", "twoconv", "resnet", "vgg"};
    for (int i = 0; source && i < 4; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/examples/%s.net", source, examples[i]);
        char *text = read_text(path);
        if (CHECK(text != NULL))
            check_round_trip(text, examples[i]);
        free(text);
    }
    test_pytorch_style_graph();
    test_dynamic_view();
    test_damaged_files();
    test_command_line();
    test_train_init();
    clcnn_context_destroy(ctx);
    return test_finish();
}
