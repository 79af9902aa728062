/* mul: the element-wise product of two layers; the second may instead be
 * (C, 1, 1), or a vector of C, multiplying each channel of the first
 * (squeeze-and-excitation). */
#include "layers/layer.h"
#include "ops/mul.h"

/* 1 when the second input scales whole channels of the first (with one
 * value per channel either way, the two readings agree). */
static int broadcasts(const shape3 a, const shape3 b) {
    return a.h * a.w != b.h * b.w;
}

static clcnn_status mul_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                              int count) {
    const shape3 a = inputs[0]->out, b = inputs[1]->out;
    const int same = a.ndim == b.ndim && a.c == b.c && a.h == b.h && a.w == b.w;
    const int per_channel = a.ndim == 3 && b.c == a.c && b.h == 1 && b.w == 1;
    if (!same && !per_channel)
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "'%s' gives %dx%dx%d, which is neither the shape of '%s' (%dx%dx%d) "
                            "nor %dx1x1",
                            inputs[1]->name, b.c, b.h, b.w, inputs[0]->name, a.c, a.h, a.w, a.c);
    l->out = a;
    return CLCNN_OK;
}

static clcnn_status mul_layer_forward(const layer *l, const layer_pass *p) {
    const shape3 a = p->in_shape[0];
    return op_mul_forward(p->ctx, p->batch, a.c, a.h * a.w, broadcasts(a, p->in_shape[1]), p->in[0],
                          p->in[1], p->out);
}

static clcnn_status mul_layer_backward(const layer *l, const layer_pass *p) {
    const shape3 a = p->in_shape[0];
    return op_mul_backward(p->ctx, p->batch, a.c, a.h * a.w, broadcasts(a, p->in_shape[1]),
                           p->in[0], p->in[1], p->grad_out, p->grad_in[0], p->accumulate[0],
                           p->grad_in[1], p->accumulate[1]);
}

const layer_type layer_mul = {
    .name = "mul",
    .min_inputs = 2,
    .max_inputs = 2,
    .accumulates = always_accumulates,
    .infer = mul_infer,
    .forward = mul_layer_forward,
    .backward = mul_layer_backward,
};
