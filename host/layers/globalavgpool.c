/* globalavgpool: the mean of each channel, (C, H, W) -> (C, 1, 1). */
#include "layers/layer.h"
#include "ops/global_avgpool.h"

static clcnn_status globalavgpool_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                        int count) {
    clcnn_status status = need_image_input(p, inputs[0]);
    if (status)
        return status;
    l->out = (shape3){.ndim = 3, .c = l->in.c, .h = 1, .w = 1};
    return CLCNN_OK;
}

static clcnn_status globalavgpool_forward(const layer *l, const layer_pass *p) {
    return op_global_avgpool_forward(p->ctx, p->batch, l->in.c, l->in.h * l->in.w, p->in[0],
                                     p->out);
}

static clcnn_status globalavgpool_backward(const layer *l, const layer_pass *p) {
    return op_global_avgpool_backward(p->ctx, p->batch, l->in.c, l->in.h * l->in.w, p->grad_out,
                                      p->grad_in[0], p->accumulate[0]);
}

const layer_type layer_globalavgpool = {
    .name = "globalavgpool",
    .min_inputs = 1,
    .max_inputs = 1,
    .accumulates = always_accumulates,
    .infer = globalavgpool_infer,
    .forward = globalavgpool_forward,
    .backward = globalavgpool_backward,
};
