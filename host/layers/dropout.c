/* dropout: inverted dropout (PyTorch's nn.Dropout). In training each element
 * is dropped with probability `rate` and the kept ones are scaled by
 * 1 / (1 - rate); in evaluation the output is a copy of the input. The mask
 * is drawn again in backward from the pass's seed (ops/dropout.h), so
 * nothing is stored between the passes. */
#include "layers/layer.h"
#include "ops/dropout.h"

static const char *const dropout_keys[] = {"rate", NULL};

static clcnn_status dropout_parse(const layer_parser *p, layer *l) {
    clcnn_status status = parse_float(p, "rate", 0.5f, &l->rate);
    if (status != CLCNN_OK)
        return status;
    /* A rate of 1 would drop everything and scale by infinity. */
    if (!(l->rate >= 0.0f && l->rate < 1.0f))
        return parser_error(p, CLCNN_ERROR_PARSE, "'rate' must be at least 0 and below 1, got '%s'",
                            parser_value(p, "rate"));
    return CLCNN_OK;
}

static dropout_params dropout_params_of(const layer *l, const layer_pass *p) {
    const dropout_params params = {
        .count = p->batch * shape3_count(l->out),
        .per_image = shape3_count(l->out),
        .first_image = p->first_image,
        .seed = p->seed,
        .rate = l->rate,
        .training = p->training,
    };
    return params;
}

static clcnn_status dropout_layer_forward(const layer *l, const layer_pass *p) {
    const dropout_params params = dropout_params_of(l, p);
    return op_dropout_forward(p->ctx, &params, p->in[0], p->out);
}

static clcnn_status dropout_layer_backward(const layer *l, const layer_pass *p) {
    const dropout_params params = dropout_params_of(l, p);
    return op_dropout_backward(p->ctx, &params, p->grad_out, p->grad_in[0], p->accumulate[0]);
}

const layer_type layer_dropout = {
    .name = "dropout",
    .keys = dropout_keys,
    .min_inputs = 1,
    .max_inputs = 1,
    .accumulates = always_accumulates,
    .parse = dropout_parse,
    .infer = infer_same_shape,
    .forward = dropout_layer_forward,
    .backward = dropout_layer_backward,
};
