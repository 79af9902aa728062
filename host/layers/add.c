/* add: the element-wise sum of two or more layers of one shape (residual
 * connections). Backward hands every input the output's gradient. A
 * batchnorm before it may run it inside itself (host/graph/plan.c,
 * fused_add), with add_apart_forward/backward below where it cannot. */
#include "layers/layer.h"
#include "ops/add.h"

static clcnn_status add_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                              int count) {
    for (int k = 1; k < count; k++) {
        const shape3 a = inputs[0]->out, b = inputs[k]->out;
        if (a.ndim != b.ndim || a.c != b.c || a.h != b.h || a.w != b.w)
            return parser_error(p, CLCNN_ERROR_SHAPE,
                                "'%s' gives %dx%dx%d but '%s' gives %dx%dx%d; the inputs of add "
                                "must have one shape",
                                inputs[k]->name, b.c, b.h, b.w, inputs[0]->name, a.c, a.h, a.w);
    }
    l->out = l->in;
    return CLCNN_OK;
}

static clcnn_status add_layer_forward(const layer *l, const layer_pass *p) {
    return op_add_forward(p->ctx, p->batch * shape3_count(l->out), p->input_count, p->in, p->out,
                          p->relu);
}

/* A fused relu's backward runs inside: every input takes the gradient
 * masked by the relu's output, out. */
static clcnn_status add_layer_backward(const layer *l, const layer_pass *p) {
    const buf none = {0};
    return op_add_backward(p->ctx, p->batch * shape3_count(l->out), p->input_count, p->grad_out,
                           p->relu ? p->out : none, p->grad_in, p->accumulate);
}

clcnn_status add_apart_forward(const layer *l, const layer_pass *p) {
    if (!buf_present(p->ctx, p->add_in))
        return relu_apart_forward(l, p);
    const buf inputs[2] = {p->out, p->add_in};
    return op_add_forward(p->ctx, p->batch * shape3_count(l->out), 2, inputs, p->out, p->relu);
}

clcnn_status add_apart_backward(const layer *l, const layer_pass *p) {
    if (!buf_present(p->ctx, p->add_in))
        return relu_apart_backward(l, p);
    const buf none = {0};
    const buf grads[2] = {p->grad_out, p->add_grad};
    const int accumulate[2] = {0, p->add_accumulate};
    return op_add_backward(p->ctx, p->batch * shape3_count(l->out), 2, p->grad_out,
                           p->relu ? p->out : none, grads, accumulate);
}

const layer_type layer_add = {
    .name = "add",
    .min_inputs = 2,
    .max_inputs = LAYER_MAX_INPUTS,
    .accumulates = always_accumulates,
    .fuses_relu = 1,
    .infer = add_infer,
    .forward = add_layer_forward,
    .backward = add_layer_backward,
};
