/* Inverted dropout (a graph's dropout layer), PyTorch's nn.Dropout:
 *
 *   training:   output = keep ? input / (1 - rate) : 0   (input * scale, scale = 1/(1-rate))
 *   evaluation: output = input
 *
 * and the backward grad_input = grad_output * keep * scale in training, the
 * identity in evaluation. A rate of 0 is the identity in both modes.
 *
 * The mask is not stored: it comes from a counter-based generator, so the
 * backward draws it again, any work-item order gives the same mask, and the
 * OpenCL side and the reference draw the same bits. Element e of image n of
 * the batch draws
 *
 *   bits = dropout_bits(seed, (first_image + n) * per_image + e)
 *
 * and is kept when its top 32 bits are at least dropout_threshold(rate),
 * which drops it with probability rate (to within 2^-32). first_image is the
 * image's place in the global batch, so a shard of a batch (sharded training)
 * draws the slice of the mask that one process with the whole batch would,
 * and a resumed run the masks of the uninterrupted one.
 *
 * Dropped elements are selected to 0 rather than multiplied by 0, so an
 * infinite value there gives 0, not NaN, as relu does (ops.h). */
#ifndef CLCNN_OPS_DROPOUT_H
#define CLCNN_OPS_DROPOUT_H

#include "ops.h"

typedef struct dropout_params {
    int64_t count;       /* elements: batch * per_image */
    int64_t per_image;   /* elements of one image (C * H * W) */
    int64_t first_image; /* the place of image 0 in the global batch */
    uint64_t seed;       /* this layer's draws in this pass (layer_pass.seed) */
    float rate;          /* 0 <= rate < 1 */
    int training;        /* 0: the identity */
} dropout_params;

/* splitmix64's output number counter + 1 from state seed: the state advanced
 * by counter + 1 steps of the golden-ratio increment, then its finaliser
 * (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
 * 2014). kernels/dropout.cl has the same function, written alike. */
uint64_t dropout_bits(uint64_t seed, uint64_t counter);
/* floor(rate * 2^32): an element is dropped when its top 32 bits are below it. */
uint32_t dropout_threshold(float rate);
/* 1 / (1 - rate), rounded to float once. */
float dropout_scale(float rate);

/* output may be input (element by element, each read before its write). */
void dropout_forward_ref(const dropout_params *p, const float *input, float *output);
clcnn_status dropout_forward(clcnn_context *ctx, const dropout_params *p, cl_mem input,
                             cl_mem output);

/* grad_input = grad_output * mask * scale (accumulate 0) or grad_input += that
 * (accumulate 1); grad_input may be grad_output. */
void dropout_backward_ref(const dropout_params *p, const float *grad_output, float *grad_input,
                          int accumulate);
clcnn_status dropout_backward(clcnn_context *ctx, const dropout_params *p, cl_mem grad_output,
                              cl_mem grad_input, int accumulate);

/* The same on ctx's device: the OpenCL side or the reference. An absent
 * grad_input (no storage) is not wanted: nothing is done. */
clcnn_status op_dropout_forward(clcnn_context *ctx, const dropout_params *p, buf input, buf output);
clcnn_status op_dropout_backward(clcnn_context *ctx, const dropout_params *p, buf grad_output,
                                 buf grad_input, int accumulate);

#endif
