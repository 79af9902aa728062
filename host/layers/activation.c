/* Element-wise activations: relu, leaky (slope), sigmoid, tanh, relu6.
 * Backward works from the output, except leaky, which decides on its input's
 * sign (see ops.h); relu6's output tells 0 < x < 6 as its input would. A
 * network ending in a one-unit sigmoid trains with binary cross-entropy,
 * computed from the sigmoid's input. */
#include "layers/layer.h"

static const char *const leaky_keys[] = {"slope", NULL};

static clcnn_status leaky_parse(const layer_parser *p, layer *l) {
    return parse_float(p, "slope", 0.01f, &l->slope);
}

static activation_kind kind_of(const layer *l);

static clcnn_status activation_layer_forward(const layer *l, const layer_pass *p) {
    return op_activation_forward(p->ctx, kind_of(l), l->slope, p->batch * shape3_count(l->out),
                                 p->in[0], p->out);
}

static clcnn_status activation_layer_backward(const layer *l, const layer_pass *p) {
    const activation_kind kind = kind_of(l);
    return op_activation_backward(p->ctx, kind, l->slope, p->batch * shape3_count(l->out),
                                  kind == ACTIVATION_LEAKY ? p->in[0] : p->out, p->grad_out,
                                  p->grad_in[0]);
}

clcnn_status relu_apart_forward(const layer *l, const layer_pass *p) {
    if (!p->relu)
        return CLCNN_OK;
    return op_activation_forward(p->ctx, ACTIVATION_RELU, 0.0f, p->batch * shape3_count(l->out),
                                 p->out, p->out);
}

clcnn_status relu_apart_backward(const layer *l, const layer_pass *p) {
    if (!p->relu)
        return CLCNN_OK;
    return op_activation_backward(p->ctx, ACTIVATION_RELU, 0.0f, p->batch * shape3_count(l->out),
                                  p->out, p->grad_out, p->grad_out);
}

#define ACTIVATION_TYPE(type_name, ...)                                                            \
    {                                                                                              \
        .name = type_name, .min_inputs = 1, .max_inputs = 1, .infer = infer_same_shape,            \
        .forward = activation_layer_forward, .backward = activation_layer_backward, __VA_ARGS__    \
    }

const layer_type layer_relu = ACTIVATION_TYPE("relu", .rectifier = 1);
const layer_type layer_leaky =
    ACTIVATION_TYPE("leaky", .keys = leaky_keys, .parse = leaky_parse, .rectifier = 1);
const layer_type layer_sigmoid =
    ACTIVATION_TYPE("sigmoid", .fused_loss = CLCNN_LOSS_BINARY_CROSS_ENTROPY);
const layer_type layer_tanh = ACTIVATION_TYPE("tanh");
/* He initialisation assumes a relu-like layer: relu6 is one below 6. */
const layer_type layer_relu6 = ACTIVATION_TYPE("relu6", .rectifier = 1);

static activation_kind kind_of(const layer *l) {
    if (l->type == &layer_leaky)
        return ACTIVATION_LEAKY;
    if (l->type == &layer_sigmoid)
        return ACTIVATION_SIGMOID;
    if (l->type == &layer_tanh)
        return ACTIVATION_TANH;
    if (l->type == &layer_relu6)
        return ACTIVATION_RELU6;
    return ACTIVATION_RELU;
}
