/* conv: 2-D convolution with K filters of R x S, stride, zero padding
 * (integer, HxW or 'same'), dilation (integer or HxW: the taps are that many
 * rows and columns apart, so a window spans D*(R-1)+1), groups (the
 * channels split into that many groups, each filter reading the C/groups
 * input channels of its group; groups = C is a depthwise convolution) and an
 * optional bias, as PyTorch's Conv2d (pad=T,L,B,R pads each side on its own,
 * as ONNX's asymmetric pads); filter=NAME fills every filter with
 * one of the classic 3x3 filters (host/layers/filters.c).
 * Tensors: weight (K, C/groups, R, S), bias (K). */
#include "layers/layer.h"

#include <string.h>

static const char *const conv_keys[] = {"filters", "size",     "stride", "pad", "bias",
                                        "filter",  "dilation", "groups", NULL};

/* A window spans at most this many rows or columns, the most any size in a
 * network file may be (so that 'same' padding stays an int). */
enum { MAX_SPAN = 1000000 };

/* pad_top < 0 marks pad=same until the input's size is known. */
static clcnn_status conv_parse(const layer_parser *p, layer *l) {
    const char *filter = parser_value(p, "filter");
    if (filter) {
        l->named_filter = named_filter_index(filter);
        if (l->named_filter < 0)
            return parser_error(p, CLCNN_ERROR_PARSE,
                                "unknown filter '%s' (expected identity, prewitt_v, prewitt_h, "
                                "sobel_v, sobel_h, laplacian_4, laplacian_8, sharpen, box_blur "
                                "or gaussian_blur)",
                                filter);
    }
    clcnn_status status;
    /* A named filter is 3x3, so its size may go unsaid. */
    if ((status = parse_positive(p, "filters", -1, &l->filters)) ||
        (status = parse_positive_pair(p, "size", filter ? 3 : -1, 3, &l->size_h, &l->size_w)))
        return status;
    if (filter && (l->size_h != 3 || l->size_w != 3))
        return parser_error(p, CLCNN_ERROR_PARSE, "filter=%s is 3x3, but size is %dx%d", filter,
                            l->size_h, l->size_w);
    int same = 0, top = 0, left = 0, bottom = 0, right = 0;
    if ((status = parse_positive_pair(p, "stride", 1, 1, &l->stride_h, &l->stride_w)) ||
        (status = parse_padding_sides(p, 1, &same, &top, &left, &bottom, &right)) ||
        (status = parse_positive_pair(p, "dilation", 1, 1, &l->dilation_h, &l->dilation_w)) ||
        (status = parse_positive(p, "groups", 1, &l->groups)) ||
        (status = parse_boolean(p, "bias", 1, &l->has_bias)))
        return status;
    if (l->filters % l->groups != 0)
        return parser_error(p, CLCNN_ERROR_PARSE, "filters=%d is not divisible by groups=%d",
                            l->filters, l->groups);
    l->pad_top = same ? -1 : top;
    l->pad_bottom = same ? -1 : bottom;
    l->pad_left = same ? -1 : left;
    l->pad_right = same ? -1 : right;
    return CLCNN_OK;
}

/* 'same' along one axis: as many outputs as ceil(input / stride), the padding
 * split with the odd one after (PyTorch for stride 1, TensorFlow otherwise). */
static void same_padding(int input, int size, int stride, int *before, int *after) {
    int64_t outputs = ((int64_t)input + stride - 1) / stride;
    int64_t total = (outputs - 1) * stride + size - input;
    if (total < 0)
        total = 0;
    *before = (int)(total / 2);
    *after = (int)(total - total / 2);
}

static clcnn_status conv_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                               int count) {
    clcnn_status status = need_image_input(p, inputs[0]);
    if (status)
        return status;
    const shape3 in = l->in;
    if (in.c % l->groups != 0)
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "%d input channels are not divisible by groups=%d", in.c, l->groups);
    /* The rows and columns a window spans: D*(R-1)+1. */
    const int64_t span_h = (int64_t)l->dilation_h * (l->size_h - 1) + 1;
    const int64_t span_w = (int64_t)l->dilation_w * (l->size_w - 1) + 1;
    if (span_h > MAX_SPAN || span_w > MAX_SPAN)
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "kernel %dx%d with dilation %dx%d spans %lldx%lld, more than %d",
                            l->size_h, l->size_w, l->dilation_h, l->dilation_w, (long long)span_h,
                            (long long)span_w, MAX_SPAN);
    if (l->pad_top < 0) {
        same_padding(in.h, (int)span_h, l->stride_h, &l->pad_top, &l->pad_bottom);
        same_padding(in.w, (int)span_w, l->stride_w, &l->pad_left, &l->pad_right);
    }
    const int64_t padded_h = (int64_t)in.h + l->pad_top + l->pad_bottom;
    const int64_t padded_w = (int64_t)in.w + l->pad_left + l->pad_right;
    if (span_h > padded_h || span_w > padded_w) {
        if (l->dilation_h == 1 && l->dilation_w == 1)
            return parser_error(p, CLCNN_ERROR_SHAPE,
                                "kernel %dx%d is larger than the padded input %lldx%lld", l->size_h,
                                l->size_w, (long long)padded_h, (long long)padded_w);
        return parser_error(p, CLCNN_ERROR_SHAPE,
                            "kernel %dx%d with dilation %dx%d spans %lldx%lld, more than the "
                            "padded input %lldx%lld",
                            l->size_h, l->size_w, l->dilation_h, l->dilation_w, (long long)span_h,
                            (long long)span_w, (long long)padded_h, (long long)padded_w);
    }
    const int64_t out_h = (padded_h - span_h) / l->stride_h + 1;
    const int64_t out_w = (padded_w - span_w) / l->stride_w + 1;
    if ((status = check_output_size(p, l->filters, out_h, out_w)))
        return status;
    l->out = (shape3){.ndim = 3, .c = l->filters, .h = (int)out_h, .w = (int)out_w};
    const int64_t factors[4] = {l->filters, in.c / l->groups, l->size_h, l->size_w};
    if ((status = count_weights(p, factors, 4, &l->weight_count)))
        return status;
    l->bias_count = l->has_bias ? l->filters : 0;
    return CLCNN_OK;
}

static int conv_tensors(const layer *l, tensor_spec *out) {
    out[0] = (tensor_spec){
        "weight", TENSOR_PARAMETER, 4, {l->filters, l->in.c / l->groups, l->size_h, l->size_w}};
    out[1] = (tensor_spec){"bias", TENSOR_PARAMETER, 1, {l->filters}};
    return l->has_bias ? 2 : 1;
}

static void conv_init(const layer *l, float *const *values, rng *r, const layer *next) {
    if (l->named_filter >= 0) {
        const float *filter = named_filter_weights(l->named_filter);
        for (int64_t i = 0; i < l->weight_count; i++)
            values[0][i] = filter[i % 9];
    } else if (r) {
        /* As torch.nn.init computes the fans from the weight's shape
         * (K, C/groups, R, S): in C/groups*R*S, out K*R*S. */
        init_weights(values[0], l->weight_count,
                     (int64_t)(l->in.c / l->groups) * l->size_h * l->size_w,
                     (int64_t)l->filters * l->size_h * l->size_w, r, next);
    }
    if (l->has_bias)
        memset(values[1], 0, sizeof(float) * (size_t)l->bias_count);
}

/* A convolution layer's parameters; a dense layer's as the 1x1 convolution of
 * 1x1 images it equals (how the register-blocked kernels run it). */
conv2d_params layer_conv2d_params(const layer *l, int batch) {
    if (l->units) {
        const dense_params d = layer_dense_params(l, batch);
        return dense_as_convolution(&d);
    }
    conv2d_params p = {0};
    p.batch = batch;
    p.in_channels = l->in.c;
    p.out_channels = l->filters;
    p.in_height = l->in.h;
    p.in_width = l->in.w;
    p.kernel_h = l->size_h;
    p.kernel_w = l->size_w;
    p.stride_h = l->stride_h;
    p.stride_w = l->stride_w;
    p.pad_top = l->pad_top;
    p.pad_left = l->pad_left;
    p.out_height = l->out.h;
    p.out_width = l->out.w;
    p.has_bias = l->has_bias;
    p.dilation_h = l->dilation_h;
    p.dilation_w = l->dilation_w;
    p.groups = l->groups;
    return p;
}

/* The zero-padded copy of the input that the forward makes anyway, kept
 * for backward-weights (conv2d_kept_input_floats; none for most kernels). */
static size_t conv_saved_bytes(const clcnn_context *ctx, const layer *l) {
    const conv2d_params params = layer_conv2d_params(l, 1);
    return sizeof(float) * (size_t)conv2d_kept_input_floats(&l->conv, &params);
}

static size_t conv_scratch_bytes(const clcnn_context *ctx, const layer *l, int batch) {
    const conv2d_params p = layer_conv2d_params(l, batch);
    return conv2d_backward_weights_scratch_bytes(&l->conv, &p);
}

static clcnn_status conv_forward(const layer *l, const layer_pass *p) {
    conv2d_params params = layer_conv2d_params(l, p->batch);
    params.has_bias = buf_present(p->ctx, p->tensor[1]); /* a folded batchnorm's, too */
    params.relu = p->relu;
    return op_conv2d_forward(p->ctx, &l->conv, &params, p->in[0], p->tensor[0], p->tensor[1],
                             p->out, p->saved, p->prepared);
}

/* A fused relu's backward runs apart, in place: both backward operations
 * read the masked gradient. */
static clcnn_status conv_backward(const layer *l, const layer_pass *p) {
    const conv2d_params params = layer_conv2d_params(l, p->batch);
    const clcnn_status status = relu_apart_backward(l, p);
    if (status != CLCNN_OK)
        return status;
    /* A frozen layer has no tensor gradients: op_conv2d_backward skips them. */
    return op_conv2d_backward(p->ctx, &l->conv, &params, p->grad_out, p->tensor[0], p->grad_in[0],
                              p->accumulate[0], p->in[0], p->tensor_grad[0], p->tensor_grad[1],
                              p->scratch, p->saved);
}

/* The reference always adds; the kernels where the plan's backward-data can. */
static int conv_accumulates(const clcnn_context *ctx, const layer *l) {
    const conv2d_params params = layer_conv2d_params(l, 1);
    return !context_is_opencl(ctx) || conv2d_backward_data_accumulates(&l->conv, &params);
}

const layer_type layer_conv = {
    .name = "conv",
    .keys = conv_keys,
    .min_inputs = 1,
    .max_inputs = 1,
    .accumulates = conv_accumulates,
    .foldable = 1,
    .fuses_relu = 1,
    .parse = conv_parse,
    .infer = conv_infer,
    .tensors = conv_tensors,
    .init = conv_init,
    .scratch_bytes = conv_scratch_bytes,
    .saved_bytes = conv_saved_bytes,
    .forward = conv_forward,
    .backward = conv_backward,
    .tune = tune_as_convolution,
};
