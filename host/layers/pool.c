/* maxpool and avgpool: a size x size window (or HxW), stride (default the
 * size), zero padding of at most half the window on each side (pad=T,L,B,R
 * pads the sides differently, as ONNX's asymmetric pads), and ceil mode,
 * counted as PyTorch counts them; the average counts the padding in its
 * divisor (count_include_pad) unless count_pad=false. */
#include "layers/layer.h"

#include <stdio.h>

static const char *const maxpool_keys[] = {"size", "stride", "pad", "ceil", NULL};
static const char *const avgpool_keys[] = {"size", "stride", "pad", "ceil", "count_pad", NULL};

extern const layer_type layer_maxpool;

static clcnn_status pool_parse(const layer_parser *p, layer *l) {
    clcnn_status status;
    int same = 0;
    if ((status = parse_positive_pair(p, "size", -1, -1, &l->size_h, &l->size_w)) ||
        (status =
             parse_positive_pair(p, "stride", l->size_h, l->size_w, &l->stride_h, &l->stride_w)) ||
        (status = parse_padding_sides(p, 0, &same, &l->pad_top, &l->pad_left, &l->pad_bottom,
                                      &l->pad_right)))
        return status;
    /* PyTorch's rule: without it a window could lie wholly in the padding. */
    const int most_h = l->pad_top > l->pad_bottom ? l->pad_top : l->pad_bottom;
    const int most_w = l->pad_left > l->pad_right ? l->pad_left : l->pad_right;
    if (most_h > l->size_h / 2 || most_w > l->size_w / 2)
        return parser_error(p, CLCNN_ERROR_PARSE,
                            "pad %dx%d is more than half the kernel %dx%d "
                            "(pad must be at most size/2 in each direction)",
                            most_h, most_w, l->size_h, l->size_w);
    int count_pad = 1;
    if (l->type != &layer_maxpool && (status = parse_boolean(p, "count_pad", 1, &count_pad)))
        return status;
    l->exclude_pad = !count_pad;
    return parse_boolean(p, "ceil", 0, &l->ceil_mode);
}

/* Pooling outputs along one axis, as PyTorch counts them
 * (pooling_output_shape): floor((input + before + after - size + (ceil ?
 * stride - 1 : 0)) / stride) + 1, the division rounding down also for a
 * window larger than the padded input, which ceil mode accepts; and in ceil
 * mode the last window must start inside the input or its leading padding.
 * Below 1 means no output. */
static int64_t pool_outputs(int64_t input, int size, int stride, int before, int after,
                            int ceil_mode) {
    const int64_t span = input + (int64_t)before + after - size + (ceil_mode ? stride - 1 : 0);
    const int64_t quotient = span >= 0 ? span / stride : -((-span + stride - 1) / stride);
    int64_t outputs = quotient + 1;
    if (ceil_mode && (outputs - 1) * stride >= input + before)
        outputs--;
    return outputs;
}

static clcnn_status pool_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                               int count) {
    clcnn_status status = need_image_input(p, inputs[0]);
    if (status)
        return status;
    const shape3 in = l->in;
    const int64_t out_h =
        pool_outputs(in.h, l->size_h, l->stride_h, l->pad_top, l->pad_bottom, l->ceil_mode);
    const int64_t out_w =
        pool_outputs(in.w, l->size_w, l->stride_w, l->pad_left, l->pad_right, l->ceil_mode);
    if (out_h < 1 || out_w < 1) {
        const int ceil_fits =
            !l->ceil_mode &&
            pool_outputs(in.h, l->size_h, l->stride_h, l->pad_top, l->pad_bottom, 1) >= 1 &&
            pool_outputs(in.w, l->size_w, l->stride_w, l->pad_left, l->pad_right, 1) >= 1;
        char pad[64];
        if (l->pad_top == l->pad_bottom && l->pad_left == l->pad_right)
            snprintf(pad, sizeof(pad), "%dx%d", l->pad_top, l->pad_left);
        else
            snprintf(pad, sizeof(pad), "%d,%d,%d,%d", l->pad_top, l->pad_left, l->pad_bottom,
                     l->pad_right);
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "kernel %dx%d with stride %dx%d and pad %s leaves no output for the "
                            "%dx%d input%s",
                            l->size_h, l->size_w, l->stride_h, l->stride_w, pad, in.h, in.w,
                            ceil_fits ? " (ceil=true would give one, as PyTorch)" : "");
    }
    if ((status = check_output_size(p, in.c, out_h, out_w)))
        return status;
    l->out = (shape3){.ndim = 3, .c = in.c, .h = (int)out_h, .w = (int)out_w};
    return CLCNN_OK;
}

static pool2d_params params_of(const layer *l, int batch) {
    pool2d_params p = {0};
    p.kind = l->type == &layer_maxpool ? POOL_MAX : POOL_AVERAGE;
    p.batch = batch;
    p.channels = l->in.c;
    p.in_height = l->in.h;
    p.in_width = l->in.w;
    p.size_h = l->size_h;
    p.size_w = l->size_w;
    p.stride_h = l->stride_h;
    p.stride_w = l->stride_w;
    p.pad_top = l->pad_top;
    p.pad_left = l->pad_left;
    p.asymmetric = 1;
    p.pad_bottom = l->pad_bottom;
    p.pad_right = l->pad_right;
    p.exclude_pad = l->exclude_pad;
    p.out_height = l->out.h;
    p.out_width = l->out.w;
    return p;
}

/* Max pooling keeps each window's choice (an int32 offset in its input
 * plane) for backward, which then only looks it up. */
static size_t maxpool_saved_bytes(const clcnn_context *ctx, const layer *l) {
    return sizeof(int32_t) * (size_t)shape3_count(l->out);
}

/* p->saved is absent for average pooling and in inference passes. */
static clcnn_status pool_forward(const layer *l, const layer_pass *p) {
    const pool2d_params params = params_of(l, p->batch);
    return op_pool2d_forward(p->ctx, &params, p->in[0], p->out, p->saved);
}

static clcnn_status pool_backward(const layer *l, const layer_pass *p) {
    const pool2d_params params = params_of(l, p->batch);
    return op_pool2d_backward(p->ctx, &params, p->in[0], p->saved, p->grad_out, p->grad_in[0],
                              p->accumulate[0]);
}

#define POOL_TYPE(type_name, type_keys, saved)                                                     \
    {                                                                                              \
        .name = type_name, .keys = type_keys, .min_inputs = 1, .max_inputs = 1,                    \
        .accumulates = always_accumulates, .parse = pool_parse, .infer = pool_infer,               \
        .saved_bytes = saved, .forward = pool_forward, .backward = pool_backward,                  \
    }

const layer_type layer_maxpool = POOL_TYPE("maxpool", maxpool_keys, maxpool_saved_bytes);
const layer_type layer_avgpool = POOL_TYPE("avgpool", avgpool_keys, NULL);
