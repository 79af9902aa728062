/* batchnorm: batch normalisation, PyTorch's BatchNorm2d after a (C, H, W)
 * input (statistics per channel over batch x H x W) and BatchNorm1d after a
 * vector (per feature over the batch). Keys eps (default 1e-5) and momentum
 * (0.1: running = (1 - momentum) * running + momentum * batch statistic).
 * Tensors: weight (C, starts at 1) and bias (C, 0), parameters; running_mean
 * (C, 0) and running_var (C, 1), state that a train-mode forward updates and
 * an eval-mode forward normalises with. See host/ops/batchnorm.h. */
#include "layers/layer.h"
#include "ops/batchnorm.h"

static const char *const batchnorm_keys[] = {"eps", "momentum", NULL};

static clcnn_status batchnorm_parse(const layer_parser *p, layer *l) {
    clcnn_status status;
    if ((status = parse_float(p, "eps", 1e-5f, &l->eps)) ||
        (status = parse_float(p, "momentum", 0.1f, &l->momentum)))
        return status;
    if (l->eps < 0.0f)
        return parser_error(p, CLCNN_ERROR_PARSE, "eps must be >= 0, got %g", (double)l->eps);
    if (l->momentum < 0.0f || l->momentum > 1.0f)
        return parser_error(p, CLCNN_ERROR_PARSE, "momentum must be between 0 and 1, got %g",
                            (double)l->momentum);
    return CLCNN_OK;
}

static clcnn_status batchnorm_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                    int count) {
    l->out = l->in;
    /* weight and bias: the counts mark the layer as one with parameters. */
    l->weight_count = l->in.c;
    l->bias_count = l->in.c;
    return CLCNN_OK;
}

static int batchnorm_tensors(const layer *l, tensor_spec *out) {
    out[0] = (tensor_spec){"weight", TENSOR_PARAMETER, 1, {l->in.c}};
    out[1] = (tensor_spec){"bias", TENSOR_PARAMETER, 1, {l->in.c}};
    out[2] = (tensor_spec){"running_mean", TENSOR_STATE, 1, {l->in.c}};
    out[3] = (tensor_spec){"running_var", TENSOR_STATE, 1, {l->in.c}};
    return 4;
}

/* PyTorch's initial values, with or without a generator: nothing is drawn. */
static void batchnorm_init(const layer *l, float *const *values, rng *r, const layer *next) {
    for (int c = 0; c < l->in.c; c++) {
        values[0][c] = 1.0f;
        values[1][c] = 0.0f;
        values[2][c] = 0.0f;
        values[3][c] = 1.0f;
    }
}

/* Several ranks training together normalise with the statistics of their
 * global batch (ops/batchnorm.h); the exchange needs room for these. */
static int64_t batchnorm_sync_floats_of(const layer *l) {
    return batchnorm_sync_floats(l->in.c);
}

/* The train-mode forward keeps each channel's statistics, scale and shift
 * (BATCHNORM_SAVED_FLOATS a channel) for backward, which then skips a pass over the input (and,
 * with a fused relu, reading the relu's output). The storage comes per
 * image; a channel's statistics take the first image's share. */
static size_t batchnorm_saved_bytes(const clcnn_context *ctx, const layer *l) {
    return sizeof(float) * BATCHNORM_SAVED_FLOATS * (size_t)l->in.c;
}

/* The fused add's operands for the train-mode kernels (NULL: none). */
static const batchnorm_residual *residual_of(const layer_pass *p, batchnorm_residual *r) {
    if (!buf_present(p->ctx, p->add_in))
        return NULL;
    *r = (batchnorm_residual){p->add_in.mem, p->add_grad.mem, p->add_accumulate};
    return r;
}

/* A fused relu (layer_pass.relu) and a fused add (layer_pass.add_in) run in
 * the train-mode kernels; around the exchanges of several ranks, in eval
 * mode with an add and in the eval-mode backward they run apart. */
static clcnn_status batchnorm_layer_forward(const layer *l, const layer_pass *p) {
    const int spatial = l->in.h * l->in.w;
    if (p->training && p->sync) {
        clcnn_status status = op_batchnorm_forward_train_sync(
            p->ctx, p->sync, p->batch, l->in.c, spatial, l->eps, l->momentum, p->in[0],
            p->tensor[0], p->tensor[1], p->tensor[2], p->tensor[3], p->out);
        if (status == CLCNN_OK)
            status = add_apart_forward(l, p);
        return status;
    }
    /* As PyTorch: a batch statistic of one value has no variance (with
     * ranks, the op checks the global batch). */
    if (p->training && (int64_t)p->batch * spatial < 2)
        return set_error(p->ctx, CLCNN_ERROR_SHAPE,
                         "batchnorm %s: training needs more than one value per channel, but the "
                         "batch has %d image%s of %d",
                         l->name, p->batch, p->batch == 1 ? "" : "s", spatial);
    batchnorm_residual residual;
    if (p->training)
        return op_batchnorm_forward_train(p->ctx, p->batch, l->in.c, spatial, l->eps, l->momentum,
                                          p->in[0], p->tensor[0], p->tensor[1], p->tensor[2],
                                          p->tensor[3], p->out, p->saved, p->relu,
                                          residual_of(p, &residual));
    const int with_add = buf_present(p->ctx, p->add_in);
    clcnn_status status = op_batchnorm_forward_eval(
        p->ctx, p->batch, l->in.c, spatial, l->eps, p->in[0], p->tensor[0], p->tensor[1],
        p->tensor[2], p->tensor[3], p->out, p->relu && !with_add);
    if (status == CLCNN_OK && with_add)
        status = add_apart_forward(l, p);
    return status;
}

/* Backward follows the forward's mode: in train mode through the batch
 * statistics, which the forward kept (OpenCL) or the op recomputes from the
 * input (with ranks, the global batch's); in eval mode through the running
 * statistics' affine map (frozen batchnorm). */
static clcnn_status batchnorm_layer_backward(const layer *l, const layer_pass *p) {
    const int spatial = l->in.h * l->in.w;
    if (!p->training || p->sync) {
        clcnn_status status = add_apart_backward(l, p);
        if (status != CLCNN_OK)
            return status;
        if (p->training)
            return op_batchnorm_backward_sync(p->ctx, p->sync, p->batch, l->in.c, spatial, l->eps,
                                              p->in[0], p->grad_out, p->tensor[0], p->grad_in[0],
                                              p->accumulate[0], p->tensor_grad[0],
                                              p->tensor_grad[1]);
        return op_batchnorm_backward_eval(p->ctx, p->batch, l->in.c, spatial, l->eps, p->in[0],
                                          p->grad_out, p->tensor[0], p->tensor[2], p->tensor[3],
                                          p->grad_in[0], p->accumulate[0], p->tensor_grad[0],
                                          p->tensor_grad[1]);
    }
    batchnorm_residual residual;
    return op_batchnorm_backward(p->ctx, p->batch, l->in.c, spatial, l->eps, p->in[0], p->grad_out,
                                 p->tensor[0], p->grad_in[0], p->accumulate[0], p->tensor_grad[0],
                                 p->tensor_grad[1], p->saved, p->relu ? p->out : (buf){0},
                                 residual_of(p, &residual));
}

static clcnn_status batchnorm_fold_into(const layer *l, clcnn_context *ctx, const buf *tensor,
                                        int per_channel, buf weight, buf bias, buf folded_weight,
                                        buf folded_bias) {
    return op_batchnorm_fold(ctx, l->in.c, per_channel, l->eps, weight, bias, tensor[0], tensor[1],
                             tensor[2], tensor[3], folded_weight, folded_bias);
}

const layer_type layer_batchnorm = {
    .name = "batchnorm",
    .keys = batchnorm_keys,
    .min_inputs = 1,
    .max_inputs = 1,
    .accumulates = always_accumulates,
    .fuses_relu = 1,
    .fuses_add = 1,
    .parse = batchnorm_parse,
    .infer = batchnorm_infer,
    .tensors = batchnorm_tensors,
    .init = batchnorm_init,
    .sync_floats = batchnorm_sync_floats_of,
    .saved_bytes = batchnorm_saved_bytes,
    .forward = batchnorm_layer_forward,
    .backward = batchnorm_layer_backward,
    .fold = batchnorm_fold_into,
};
