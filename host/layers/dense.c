/* dense: y = W x + b on a vector. Tensors: weight (units, in), bias (units). */
#include "layers/layer.h"

#include <string.h>

static const char *const dense_keys[] = {"units", "bias", NULL};

static clcnn_status dense_parse(const layer_parser *p, layer *l) {
    clcnn_status status = parse_positive(p, "units", -1, &l->units);
    return status ? status : parse_boolean(p, "bias", 1, &l->has_bias);
}

static clcnn_status dense_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                int count) {
    const shape3 in = l->in;
    if (in.ndim != 1)
        return parser_error(p, CLCNN_ERROR_SHAPE, "input is %dx%dx%d, flatten it first", in.c, in.h,
                            in.w);
    const int64_t factors[2] = {l->units, in.c};
    clcnn_status status = count_weights(p, factors, 2, &l->weight_count);
    if (status)
        return status;
    l->bias_count = l->has_bias ? l->units : 0;
    l->out = (shape3){.ndim = 1, .c = l->units, .h = 1, .w = 1};
    return CLCNN_OK;
}

static int dense_tensors(const layer *l, tensor_spec *out) {
    out[0] = (tensor_spec){"weight", TENSOR_PARAMETER, 2, {l->units, l->in.c}};
    out[1] = (tensor_spec){"bias", TENSOR_PARAMETER, 1, {l->units}};
    return l->has_bias ? 2 : 1;
}

static void dense_init(const layer *l, float *const *values, rng *r, const layer *next) {
    if (r)
        init_weights(values[0], l->weight_count, l->in.c, l->units, r, next);
    if (l->has_bias)
        memset(values[1], 0, sizeof(float) * (size_t)l->bias_count);
}

dense_params layer_dense_params(const layer *l, int batch) {
    const dense_params p = {batch, l->in.c, l->units, l->has_bias, 0};
    return p;
}

static clcnn_status dense_layer_forward(const layer *l, const layer_pass *p) {
    dense_params params = layer_dense_params(l, p->batch);
    params.has_bias = buf_present(p->ctx, p->tensor[1]); /* a folded batchnorm's, too */
    params.relu = p->relu;
    return op_dense_forward(p->ctx, &l->conv, &params, p->in[0], p->tensor[0], p->tensor[1], p->out,
                            p->prepared);
}

/* A fused relu's backward runs apart, in place, as the convolution's. */
static clcnn_status dense_layer_backward(const layer *l, const layer_pass *p) {
    const dense_params params = layer_dense_params(l, p->batch);
    clcnn_status status = relu_apart_backward(l, p);
    if (status != CLCNN_OK)
        return status;
    return op_dense_backward(p->ctx, &l->conv, &params, p->in[0], p->tensor[0], p->grad_out,
                             p->grad_in[0], p->tensor_grad[0], p->tensor_grad[1]);
}

const layer_type layer_dense = {
    .name = "dense",
    .keys = dense_keys,
    .min_inputs = 1,
    .max_inputs = 1,
    .foldable = 1,
    .fuses_relu = 1,
    .parse = dense_parse,
    .infer = dense_infer,
    .tensors = dense_tensors,
    .init = dense_init,
    .forward = dense_layer_forward,
    .backward = dense_layer_backward,
    .tune = tune_as_convolution,
};
