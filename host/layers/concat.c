/* concat: two or more layers joined along the channels (C_1 + C_2 + ...,
 * H, W), or vectors end to end, in the order inputs= lists them. */
#include "layers/layer.h"
#include "ops/concat.h"

static clcnn_status concat_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                 int count) {
    const shape3 first = inputs[0]->out;
    int64_t channels = 0;
    for (int k = 0; k < count; k++) {
        const shape3 s = inputs[k]->out;
        if (s.ndim != first.ndim || s.h != first.h || s.w != first.w)
            return parser_error(p, CLCNN_ERROR_SHAPE,
                                "'%s' gives %dx%dx%d but '%s' gives %dx%dx%d; concat joins "
                                "channels of one height and width (or vectors)",
                                inputs[k]->name, s.c, s.h, s.w, inputs[0]->name, first.c, first.h,
                                first.w);
        channels += s.c;
    }
    clcnn_status status = check_output_size(p, channels, first.h, first.w);
    if (status)
        return status;
    l->out = first;
    l->out.c = (int)channels;
    return CLCNN_OK;
}

static clcnn_status concat_layer_forward(const layer *l, const layer_pass *p) {
    const int spatial = l->out.h * l->out.w;
    clcnn_status status = CLCNN_OK;
    for (int k = 0, offset = 0; k < p->input_count && status == CLCNN_OK; k++) {
        const int channels = p->in_shape[k].c;
        status = op_concat_forward(p->ctx, p->batch, channels, l->out.c, offset, spatial, p->in[k],
                                   p->out);
        offset += channels;
    }
    return status;
}

static clcnn_status concat_layer_backward(const layer *l, const layer_pass *p) {
    const int spatial = l->out.h * l->out.w;
    clcnn_status status = CLCNN_OK;
    for (int k = 0, offset = 0; k < p->input_count && status == CLCNN_OK; k++) {
        const int channels = p->in_shape[k].c;
        if (buf_present(p->ctx, p->grad_in[k]))
            status = op_concat_backward(p->ctx, p->batch, channels, l->out.c, offset, spatial,
                                        p->grad_out, p->grad_in[k], p->accumulate[k]);
        offset += channels;
    }
    return status;
}

const layer_type layer_concat = {
    .name = "concat",
    .min_inputs = 2,
    .max_inputs = LAYER_MAX_INPUTS,
    .accumulates = always_accumulates,
    .infer = concat_infer,
    .forward = concat_layer_forward,
    .backward = concat_layer_backward,
};
