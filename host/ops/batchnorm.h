/* Batch normalisation (a graph's batchnorm layer), exactly PyTorch's
 * BatchNorm2d on (batch, channels, H, W) with spatial = H * W, and
 * BatchNorm1d on (batch, channels) with spatial = 1. Every channel c has
 * M = batch * spatial elements and a weight, bias, running_mean and
 * running_var (each `channels` floats):
 *
 * train:  mean, var = the mean and biased variance of channel c's M elements
 *         y = (x - mean) / sqrt(var + eps) * weight + bias
 *         running_mean = (1 - momentum) * running_mean + momentum * mean
 *         running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
 *         (M >= 2: PyTorch refuses one value per channel in training)
 * eval:   y = (x - running_mean) / sqrt(running_var + eps) * weight + bias
 *
 * Backward is that of the train-mode forward (the graph's backward passes
 * run in train mode). With x_hat = (x - mean) / sqrt(var + eps), dy = grad_y:
 *   grad_x      = weight / sqrt(var + eps) * (dy - sum(dy) / M - x_hat * sum(dy * x_hat) / M)
 *   grad_weight = sum(dy * x_hat),  grad_bias = sum(dy)
 * sums over channel c's elements. grad_x is overwritten (accumulate = 0) or
 * added into (1), or skipped when absent; grad_weight and grad_bias are
 * overwritten. Backward recomputes the batch's mean and variance from x,
 * unless the forward kept them: on an OpenCL device the train-mode forward
 * writes them into `saved` (BATCHNORM_SAVED_FLOATS * channels floats: the statistics, then the
 * scale and shift it applied; NULL: not kept) and a backward given the same
 * `saved` skips a pass over x, with bit for bit the result it would have
 * recomputed; a fused relu's mask it recomputes from x, without reading
 * relu_y. The reference keeps nothing.
 *
 * The device sums each channel in a fixed order, compensated (see
 * kernels/batchnorm.cl); the reference in double. Outputs must not alias
 * inputs.
 *
 * A relu after the layer can run inside it on an OpenCL device (the graph's
 * fusion, CLCNN_FUSE): with relu = 1 the forwards write relu(y), and a
 * backward given relu_y (that output) takes grad_y as the gradient with
 * respect to it, masked as the relu's backward would (0 where relu_y <= 0).
 * The results are bit for bit those of the relu run apart. The reference
 * refuses a fused relu. */
#ifndef CLCNN_OPS_BATCHNORM_H
#define CLCNN_OPS_BATCHNORM_H

/* What a train-mode forward keeps per channel in `saved` (kernels/batchnorm.cl). */
enum { BATCHNORM_SAVED_FLOATS = 5 };

#include "ops.h"

/* contiguous picks how the OpenCL kernels walk a channel
 * (kernels/batchnorm.cl): 0 strided, a work-group per channel, for GPUs; 1
 * for CPU devices, where the eval-mode forward and the train-mode forward and
 * backward walk (image, channel) planes in memory order wherever a plane
 * holds 8 floats or more, and the other kernels, or smaller planes, run a
 * work-group per channel in contiguous runs. The entry points use the
 * device's (batchnorm_contiguous_walk); the tests run both. */
int batchnorm_contiguous_walk(const clcnn_context *ctx);

/* A residual add fused after the batchnorm, with the relu after it as the
 * functions' relu (host/graph/plan.c; OpenCL only): the forward writes
 * relu?(y + skip); backward's grad_y is the gradient with respect to that
 * output, relu_y, which masks it (relu_y present exactly when there is a
 * relu), and the masked gradient also goes into grad_skip (added with
 * accumulate_skip; grad_skip NULL: not wanted). Bit for bit the add layer's
 * forward and backward (kernels/combine.cl). NULL: no residual. */
typedef struct batchnorm_residual {
    cl_mem skip, grad_skip;
    int accumulate_skip;
} batchnorm_residual;

void batchnorm_forward_train_ref(int batch, int channels, int spatial, float eps, float momentum,
                                 const float *x, const float *weight, const float *bias,
                                 float *running_mean, float *running_var, float *y);
clcnn_status batchnorm_forward_train(clcnn_context *ctx, int contiguous, int batch, int channels,
                                     int spatial, float eps, float momentum, cl_mem x,
                                     cl_mem weight, cl_mem bias, cl_mem running_mean,
                                     cl_mem running_var, cl_mem y, cl_mem saved, int relu,
                                     const batchnorm_residual *residual);

void batchnorm_forward_eval_ref(int batch, int channels, int spatial, float eps, const float *x,
                                const float *weight, const float *bias, const float *running_mean,
                                const float *running_var, float *y);
clcnn_status batchnorm_forward_eval(clcnn_context *ctx, int contiguous, int batch, int channels,
                                    int spatial, float eps, cl_mem x, cl_mem weight, cl_mem bias,
                                    cl_mem running_mean, cl_mem running_var, cl_mem y, int relu);

/* grad_x may be NULL: only the parameters' gradients; relu_y NULL: no fused relu. */
void batchnorm_backward_ref(int batch, int channels, int spatial, float eps, const float *x,
                            const float *grad_y, const float *weight, float *grad_x, int accumulate,
                            float *grad_weight, float *grad_bias);
clcnn_status batchnorm_backward(clcnn_context *ctx, int contiguous, int batch, int channels,
                                int spatial, float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                cl_mem grad_x, int accumulate, cl_mem grad_weight, cl_mem grad_bias,
                                cl_mem saved, cl_mem relu_y, const batchnorm_residual *residual);

/* The gradients of the eval-mode forward (running statistics): an affine map
 * per channel. grad_x may be NULL; grad_weight and grad_bias may both be
 * NULL (a frozen layer), and then only grad_x is computed. */
void batchnorm_backward_eval_ref(int batch, int channels, int spatial, float eps, const float *x,
                                 const float *grad_y, const float *weight,
                                 const float *running_mean, const float *running_var, float *grad_x,
                                 int accumulate, float *grad_weight, float *grad_bias);
clcnn_status batchnorm_backward_eval(clcnn_context *ctx, int contiguous, int batch, int channels,
                                     int spatial, float eps, cl_mem x, cl_mem grad_y, cl_mem weight,
                                     cl_mem running_mean, cl_mem running_var, cl_mem grad_x,
                                     int accumulate, cl_mem grad_weight, cl_mem grad_bias);

/* An eval-mode batchnorm folded into the layer before it, whose output
 * channel c is its weight's c-th slice (per_channel floats) applied to the
 * input plus bias[c] (a convolution, any groups, or a dense layer): with
 * scale = bn_weight / sqrt(running_var + eps),
 *   folded_weight[c, :] = weight[c, :] * scale[c]
 *   folded_bias[c]      = (bias[c] - running_mean[c]) * scale[c] + bn_bias[c]
 * (bias 0 when absent), so that layer run with the folded tensors gives the
 * batchnorm's output: one pass over the activations instead of two. */
void batchnorm_fold_ref(int channels, int per_channel, float eps, const float *weight,
                        const float *bias, const float *bn_weight, const float *bn_bias,
                        const float *running_mean, const float *running_var, float *folded_weight,
                        float *folded_bias);
/* bias may be NULL. */
clcnn_status batchnorm_fold(clcnn_context *ctx, int channels, int per_channel, float eps,
                            cl_mem weight, cl_mem bias, cl_mem bn_weight, cl_mem bn_bias,
                            cl_mem running_mean, cl_mem running_var, cl_mem folded_weight,
                            cl_mem folded_bias);

/* ---- synchronised across ranks ----------------------------------------------------------
 *
 * In data-parallel training (rank_sync, internal.h) every rank normalises
 * with the statistics of the global batch, every rank's images, as PyTorch's
 * SyncBatchNorm does. A rank's contribution to an exchange (doubles) is
 *   [0]                  M_r = batch * spatial, its element count (0 without images)
 *   [1 + c * FIELDS ...] channel c's mean and sum of squared deviations from
 *                        it (M2); in backward then sum(dy) and sum(dy * (x - mean))
 * with FIELDS = BATCHNORM_FORWARD_FIELDS or BATCHNORM_BACKWARD_FIELDS. Every
 * rank gets every rank's (rank_sync.gather) and combines them in rank order
 * (batchnorm_combine_*), so that every rank computes the same statistics to
 * the bit: the count M, mean and M2 of the union by Chan, Golub and
 * LeVeque's update, which adds sums of squared deviations from each part's
 * own mean (no cancellation however large the mean).
 *
 * Backward: rank r's dy is the gradient of its own loss, the mean over its
 * images (the trainer's convention); the global loss is the mean over the
 * global batch, i.e. rank r's loss weighted by M_r / M. In rank r's scale the
 * global sums are then sum_dy = sum over ranks q of (M_q / M_r) * sum_dy_q,
 * likewise sum(dy * x_hat), and rank r's
 *   dx = weight * invstd * (dy - sum_dy / M - x_hat * sum_dy_xhat / M),
 * one process's formula over the global batch, in rank r's scale (which the
 * trainer's gradient scaling then undoes). grad_weight and grad_bias are rank
 * r's own sums, sum(dy * x_hat) and sum(dy) over its elements with the global
 * x_hat: the gradient hook sums them over the ranks like every other
 * parameter's gradient, so they are counted once. */
enum {
    BATCHNORM_FORWARD_FIELDS = 2,   /* contribution: mean, M2 */
    BATCHNORM_BACKWARD_FIELDS = 4,  /* contribution: mean, M2, sum_dy, sum_dy_dev */
    BATCHNORM_FORWARD_COMBINED = 3, /* combined: mean, var, unbiased var */
    /* combined: mean, invstd, sum_dy, sum_dy_xhat (both in this rank's scale),
     * this rank's grad_weight and grad_bias */
    BATCHNORM_BACKWARD_COMBINED = 6,
    /* floats to and from the device per channel, at most (the backward's
     * coefficients) */
    BATCHNORM_DEVICE_FLOATS = 7,
};

/* The count, mean and M2 of the union of every rank's elements of one
 * channel, whose mean and M2 are at all[r * stride + at] and the next double
 * (count at all[r * stride]), added in rank order 0, 1, ..., ranks - 1. */
void batchnorm_combine_moments(const double *all, int ranks, int64_t stride, int64_t at,
                               double *count, double *mean, double *m2);
/* combined[0] = M; per channel (1 + c * BATCHNORM_FORWARD_COMBINED): mean,
 * var = M2 / M, unbiased var = M2 / (M - 1) (the ops refuse M < 2). */
void batchnorm_combine_forward(const double *all, int ranks, int64_t stride, int channels,
                               double *combined);
/* combined[0] = M; per channel (1 + c * BATCHNORM_BACKWARD_COMBINED) the
 * values listed above, for the rank whose contribution is mine. */
void batchnorm_combine_backward(const double *all, int ranks, int64_t stride, const double *mine,
                                int channels, float eps, double *combined);

/* A rank's contribution from its own elements: grad_y NULL in forward. */
void batchnorm_contribution_ref(int batch, int channels, int spatial, const float *x,
                                const float *grad_y, double *out);
/* The train-mode forward with the combined statistics (any batch >= 0). */
void batchnorm_forward_apply_ref(int batch, int channels, int spatial, float eps, float momentum,
                                 const double *combined, const float *x, const float *weight,
                                 const float *bias, float *running_mean, float *running_var,
                                 float *y);
/* Backward with the combined values; grad_x may be NULL. */
void batchnorm_backward_apply_ref(int batch, int channels, int spatial, const double *combined,
                                  const float *x, const float *grad_y, const float *weight,
                                  float *grad_x, int accumulate, float *grad_weight,
                                  float *grad_bias);

/* The floats of sync's buffers one batchnorm layer of `channels` needs. */
int64_t batchnorm_sync_floats(int channels);

/* The train-mode forward and backward synchronised through sync (batch may
 * be 0), on ctx's device. On an OpenCL device each reads its rank's sums to
 * the host and writes the combined values back: a round trip through the
 * host per layer and pass, and the exchange's wait for every rank. */
clcnn_status op_batchnorm_forward_train_sync(clcnn_context *ctx, rank_sync *sync, int batch,
                                             int channels, int spatial, float eps, float momentum,
                                             buf x, buf weight, buf bias, buf running_mean,
                                             buf running_var, buf y);
clcnn_status op_batchnorm_backward_sync(clcnn_context *ctx, rank_sync *sync, int batch,
                                        int channels, int spatial, float eps, buf x, buf grad_y,
                                        buf weight, buf grad_x, int accumulate, buf grad_weight,
                                        buf grad_bias);

/* The same on ctx's device: the OpenCL side or the reference. saved and
 * relu_y may be absent (the OpenCL side's NULL); the reference ignores
 * saved. */
clcnn_status op_batchnorm_forward_train(clcnn_context *ctx, int batch, int channels, int spatial,
                                        float eps, float momentum, buf x, buf weight, buf bias,
                                        buf running_mean, buf running_var, buf y, buf saved,
                                        int relu, const batchnorm_residual *residual);
clcnn_status op_batchnorm_forward_eval(clcnn_context *ctx, int batch, int channels, int spatial,
                                       float eps, buf x, buf weight, buf bias, buf running_mean,
                                       buf running_var, buf y, int relu);
clcnn_status op_batchnorm_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                   float eps, buf x, buf grad_y, buf weight, buf grad_x,
                                   int accumulate, buf grad_weight, buf grad_bias, buf saved,
                                   buf relu_y, const batchnorm_residual *residual);

clcnn_status op_batchnorm_backward_eval(clcnn_context *ctx, int batch, int channels, int spatial,
                                        float eps, buf x, buf grad_y, buf weight, buf running_mean,
                                        buf running_var, buf grad_x, int accumulate,
                                        buf grad_weight, buf grad_bias);
/* bias may be absent. */
clcnn_status op_batchnorm_fold(clcnn_context *ctx, int channels, int per_channel, float eps,
                               buf weight, buf bias, buf bn_weight, buf bn_bias, buf running_mean,
                               buf running_var, buf folded_weight, buf folded_bias);

#endif
