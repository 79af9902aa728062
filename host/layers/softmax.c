/* softmax over the last axis: W of a (C, H, W) tensor, or the whole vector.
 * Trained with cross-entropy, which is computed from its input. */
#include "layers/layer.h"

static int columns_of(const layer *l) {
    return l->out.ndim == 3 ? l->out.w : l->out.c;
}

static clcnn_status softmax_layer_forward(const layer *l, const layer_pass *p) {
    const int columns = columns_of(l);
    return op_softmax_forward(p->ctx, p->batch * shape3_count(l->out) / columns, columns, p->in[0],
                              p->out);
}

static clcnn_status softmax_layer_backward(const layer *l, const layer_pass *p) {
    const int columns = columns_of(l);
    return op_softmax_backward(p->ctx, p->batch * shape3_count(l->out) / columns, columns, p->out,
                               p->grad_out, p->grad_in[0]);
}

const layer_type layer_softmax = {
    .name = "softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .fused_loss = CLCNN_LOSS_CROSS_ENTROPY,
    .infer = infer_same_shape,
    .forward = softmax_layer_forward,
    .backward = softmax_layer_backward,
};
