/* flatten: (C, H, W) as a vector of C*H*W values in C, H, W order (PyTorch's).
 * Only the shape changes, so the output is the input's storage and there is
 * nothing to compute either way. */
#include "layers/layer.h"

static clcnn_status flatten_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                  int count) {
    /* Earlier layers were checked to hold at most INT_MAX values. */
    l->out = (shape3){.ndim = 1, .c = (int)shape3_count(l->in), .h = 1, .w = 1};
    return CLCNN_OK;
}

const layer_type layer_flatten = {
    .name = "flatten",
    .min_inputs = 1,
    .max_inputs = 1,
    .view = 1,
    .infer = flatten_infer,
};
