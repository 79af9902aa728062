/* The operations: each has an OpenCL side (host/ops/<op>.c, enqueueing
 * kernels/<op>.cl) and a plain-C reference (host/ref/<op>.c) with the same
 * parameters. Buffers hold NCHW float32. The reference accumulates in
 * double, so it is the more accurate of the two. */
#ifndef CLCNN_OPS_H
#define CLCNN_OPS_H

#include "internal.h"

/* The kernel configurations (tile_config, direct_config, their lookups) and
 * conv2d_params come from core/config.h through internal.h. */

/* ---- conv2d --------------------------------------------------------------------- */

/* A convolution layer's parameters, or a dense layer's as a 1x1 convolution
 * of 1x1 images (host/layers/conv.c). */
conv2d_params layer_conv2d_params(const layer *l, int batch);

/* How ctx's OpenCL device runs p's three operations. It reads the tuning
 * table, so a network calls it when it plans (graph/plan.c), and its
 * layers' calls only enqueue (the conv2d_*_planned calls); the calls
 * without a plan make one each time, for the tests and tools. p's batch
 * matters only to whether Winograd's buffers fit, which holds for every
 * smaller batch too. */
conv2d_plan conv2d_plan_for(const clcnn_context *ctx, const conv2d_params *p);

void conv2d_forward_ref(const conv2d_params *p, const float *input, const float *weight,
                        const float *bias, float *output);
clcnn_status conv2d_forward(clcnn_context *ctx, const conv2d_params *p, cl_mem input, cl_mem weight,
                            cl_mem bias, cl_mem output);
/* A training step's forward can keep the zero-padded copy of the input that
 * the register-blocked kernels read, for backward-weights to read it again
 * instead of padding the input a second time: conv2d_kept_input_floats
 * floats (0: p's kernels make no such copy, and nothing is kept). The
 * planned forward and backward-weights take that buffer (NULL: nothing
 * kept); the backward must see the same input the forward kept. */
int64_t conv2d_kept_input_floats(const conv2d_plan *plan, const conv2d_params *p);
/* Whether the planned forward, keeping its copy or not, takes a
 * work-item's positions along one output row (host/ops/conv2d.c,
 * row_positions_config): the same floats, another blocking. */
int conv2d_forward_runs_rows(const clcnn_context *ctx, const conv2d_plan *plan,
                             const conv2d_params *p, int keeping);
/* prepared: where the filters' forward layout is kept (NULL: remade in the
 * workspace at every call, as in training). conv2d_prepared_bytes: the
 * bytes that layout takes for plan's forward of p (0 for the kernels that
 * read the filters as they are), which the memory plan counts. */
size_t conv2d_prepared_bytes(const conv2d_plan *plan, const conv2d_params *p);
/* prepared's buffer, bytes long, for the filters that `transform` makes
 * from weight with `padded` output channels in blocks of `block`: *current
 * says whether it holds them already, made at the weights' version; if
 * not, the caller makes them there and then calls prepared_made with its
 * status. */
clcnn_status prepared_buffer(clcnn_context *ctx, prepared_weights *prepared, cl_mem weight,
                             const char *transform, int padded, int block, size_t bytes,
                             cl_mem *buffer, int *current);
void prepared_made(prepared_weights *prepared, clcnn_status status);
clcnn_status conv2d_forward_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                    const conv2d_params *p, cl_mem input, cl_mem weight,
                                    cl_mem bias, cl_mem output, cl_mem kept_input,
                                    prepared_weights *prepared);
/* The same with an explicit configuration, for the tests and the tuner. */
clcnn_status conv2d_forward_direct(clcnn_context *ctx, const direct_config *config,
                                   const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                   cl_mem output);
/* The direct forward's kernel alone, for a caller that holds p's filters
 * already as it reads them: (R, S, C, K_padded) per group, zeros past K,
 * K_padded = conv2d_direct_padded_channels(K, config). padded_input: the
 * input is the zero-padded copy conv2d_pad_input makes, or with
 * channels_last conv2d_pad_input_channels_last (no groups, no dilation). */
typedef struct direct_forward_operands {
    cl_mem input;
    int input_offset;
    cl_mem transposed;
    int weight_offset;
    cl_mem bias, output;
    int output_offset;
    /* padded_input: the input is a zero-padded copy, padded_h x padded_w,
     * which every window reads inside (kernels/conv2d_direct.cl,
     * -DWINDOWS_INSIDE); channels_last: it is (N, H, W, C). */
    int padded_input, padded_h, padded_w, channels_last;
    /* row_positions: a work-item's positions lie side by side in one output
     * row (-DROW_POSITIONS: wpt_p dividing the row). */
    int row_positions;
    int accumulate; /* add the results to what output holds */
} direct_forward_operands;
int conv2d_direct_padded_channels(int channels, const direct_config *config);
clcnn_status conv2d_forward_direct_launch(clcnn_context *ctx, const direct_config *config,
                                          const conv2d_params *p,
                                          const direct_forward_operands *o);
clcnn_status conv2d_forward_tiled(clcnn_context *ctx, const tile_config *config,
                                  const conv2d_params *p, cl_mem input, cl_mem weight, cl_mem bias,
                                  cl_mem output);

/* Gradient with respect to the input: grad_input = conv_transpose(grad_output, weight).
 * Overwrites grad_input. */
void conv2d_backward_data_ref(const conv2d_params *p, const float *grad_output, const float *weight,
                              float *grad_input);
/* The same added to what grad_input holds (accumulate), each float as
 * conv2d_backward_data_ref's result added to it. */
void conv2d_backward_data_into_ref(const conv2d_params *p, const float *grad_output,
                                   const float *weight, float *grad_input, int accumulate);
clcnn_status conv2d_backward_data(clcnn_context *ctx, const conv2d_params *p, cl_mem grad_output,
                                  cl_mem weight, cl_mem grad_input);
clcnn_status conv2d_backward_data_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                          const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                          cl_mem grad_input);
clcnn_status conv2d_backward_data_direct(clcnn_context *ctx, const direct_config *config,
                                         const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                         cl_mem grad_input);
clcnn_status conv2d_backward_data_tiled(clcnn_context *ctx, const tile_config *config,
                                        const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                        cl_mem grad_input);

/* Gradients with respect to the weights (K, C / groups, R, S) and, if p->has_bias, the
 * bias (K), summed over the batch. Overwrites both. The OpenCL side needs a
 * scratch buffer of conv2d_backward_weights_scratch_bytes(plan, p) bytes for
 * its two-pass reduction over batch and pixels. */
void conv2d_backward_weights_ref(const conv2d_params *p, const float *input,
                                 const float *grad_output, float *grad_weight, float *grad_bias);
size_t conv2d_backward_weights_scratch_bytes(const conv2d_plan *plan, const conv2d_params *p);
/* The number of slices the reduction over batch and pixels is cut into (1:
 * none, MAX_SLICES at most); the same on both paths. */
enum { MAX_SLICES = 64 };
int conv2d_backward_weights_slices(const conv2d_params *p);
clcnn_status conv2d_backward_weights(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                     cl_mem grad_output, cl_mem grad_weight, cl_mem grad_bias,
                                     cl_mem scratch);
clcnn_status conv2d_backward_weights_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                             const conv2d_params *p, cl_mem input,
                                             cl_mem grad_output, cl_mem grad_weight,
                                             cl_mem grad_bias, cl_mem scratch, cl_mem kept_input);
/* Whether the plan's backward-data can add its gradient to what grad_input
 * holds instead of overwriting it: on the register-blocked kernels run as
 * the forwards of its phases, the pointwise kernel and Winograd's (they add
 * in their stores). */
int conv2d_backward_data_accumulates(const conv2d_plan *plan, const conv2d_params *p);
/* Both backward operations, backward-data's (unless grad_input is NULL;
 * with accumulate_data, which needs conv2d_backward_data_accumulates, added
 * to what grad_input holds) first, then
 * backward-weights' (unless grad_weight is NULL). Where both
 * run on the register-blocked kernels, the convolution has no bias and its
 * output channels fill whole vectors of backward-weights' configuration,
 * backward-weights reads the zero-padded channels-last copy of grad_output
 * that backward-data made instead of transposing grad_output again. */
clcnn_status conv2d_backward_planned(clcnn_context *ctx, const conv2d_plan *plan,
                                     const conv2d_params *p, cl_mem grad_output, cl_mem weight,
                                     cl_mem grad_input, int accumulate_data, cl_mem input,
                                     cl_mem grad_weight, cl_mem grad_bias, cl_mem scratch,
                                     cl_mem kept_input);
/* The tiled path (the scratch of conv2d_backward_weights_scratch_bytes with
 * the tiled kernels selected) with an explicit configuration, for the tests. */
clcnn_status conv2d_backward_weights_tiled(clcnn_context *ctx, const tile_config *config,
                                           const conv2d_params *p, cl_mem input, cl_mem grad_output,
                                           cl_mem grad_weight, cl_mem grad_bias, cl_mem scratch);
/* The register-blocked path (CPU devices) with an explicit configuration, for
 * the tests and the tuner; its scratch size depends on the configuration, and
 * a scratch buffer smaller than that is refused. */
size_t conv2d_backward_weights_direct_scratch_bytes(const direct_config *config,
                                                    const conv2d_params *p);
clcnn_status conv2d_backward_weights_direct(clcnn_context *ctx, const direct_config *config,
                                            const conv2d_params *p, cl_mem input,
                                            cl_mem grad_output, cl_mem grad_weight,
                                            cl_mem grad_bias, cl_mem scratch);
/* Grouped convolutions with few input channels per group (depthwise ones:
 * groups = in_channels) run on kernels/conv2d_depthwise.cl on every OpenCL
 * device: conv2d_runs_depthwise says which. These run them directly, for
 * the tests; backward-weights needs the tiled path's scratch
 * (conv2d_backward_weights_scratch_bytes gives it for such shapes). */
int conv2d_runs_depthwise(const conv2d_params *p);
/* 1 if the operation ("forward", "backward_data", "backward_weights") of p
 * runs on the register-blocked kernels with direct_config_for_conv's
 * configuration on ctx's device: what tuning can change. */
int conv2d_runs_direct(const clcnn_context *ctx, const char *operation, const conv2d_params *p);
clcnn_status conv2d_forward_depthwise(clcnn_context *ctx, const conv2d_params *p, cl_mem input,
                                      cl_mem weight, cl_mem bias, cl_mem output);
clcnn_status conv2d_backward_data_depthwise(clcnn_context *ctx, const conv2d_params *p,
                                            cl_mem grad_output, cl_mem weight, cl_mem grad_input);
clcnn_status conv2d_backward_weights_depthwise(clcnn_context *ctx, const conv2d_params *p,
                                               cl_mem input, cl_mem grad_output, cl_mem grad_weight,
                                               cl_mem grad_bias, cl_mem scratch);

/* Launches conv2d_pad_input (kernels/conv2d_direct.cl, profiled as
 * `what`): p's input with its zero padding made explicit as (N, C,
 * padded_h, padded_w) in padded from float padded_offset, zeros past the
 * input as far as padded_h and padded_w reach. */
clcnn_status pad_input(clcnn_context *ctx, const char *what, const conv2d_params *p, cl_mem input,
                       cl_mem padded, int padded_offset, int padded_h, int padded_w);

/* The forward kernels' `epilogue` argument (kernels/conv2d_direct.cl's and
 * kernels/conv2d_winograd.cl's, the same flags): the channel's bias, then a
 * relu, then, for the direct kernels, added to what the output holds.
 * conv2d_forward_epilogue gives p's (its bias and its relu). */
enum { EPILOGUE_BIAS = 1, EPILOGUE_RELU = 2, EPILOGUE_ACCUMULATE = 4 };
int conv2d_forward_epilogue(const conv2d_params *p);

/* Pointwise convolutions (1x1, stride 1, no padding, one group:
 * conv2d_pointwise_fits) as a matrix product per image with vectors along
 * the positions (kernels/conv2d_direct.cl, conv2d_pointwise), forward and
 * backward-data (conv2d_pointwise_possible says which operation can):
 * conv2d_runs_pointwise says whether ctx runs them so (CLCNN_POINTWISE=1, or
 * tuning measured it faster and remembered so: conv2d_remember_pointwise;
 * conv2d_pointwise_judged, whether it has), with conv2d_pointwise_config's
 * configuration: vw and nv the positions a work-item takes (nv vectors of
 * vw), wpt_p its output channels, group its work-items per work-group along
 * the output channels. The backward-data adds to grad_input with accumulate. */
int conv2d_pointwise_fits(const conv2d_params *p);
int conv2d_pointwise_possible(const char *operation, const conv2d_params *p);
int conv2d_runs_pointwise(const clcnn_context *ctx, const char *operation, const conv2d_params *p);
int conv2d_pointwise_judged(const clcnn_context *ctx, const char *operation,
                            const conv2d_params *p);
clcnn_status conv2d_remember_pointwise(clcnn_context *ctx, const char *operation,
                                       const conv2d_params *p, int chosen);
direct_config conv2d_pointwise_config(const clcnn_context *ctx);
clcnn_status conv2d_forward_pointwise(clcnn_context *ctx, const direct_config *config,
                                      const conv2d_params *p, cl_mem input, cl_mem weight,
                                      cl_mem bias, cl_mem output, prepared_weights *prepared);
clcnn_status conv2d_backward_data_pointwise(clcnn_context *ctx, const direct_config *config,
                                            const conv2d_params *p, cl_mem grad_output,
                                            cl_mem weight, cl_mem grad_input, int accumulate);

/* Winograd F(2x2, 3x3) (host/ops/conv2d_winograd.c): conv2d_winograd_fits
 * says whether p's forward can run on it (3x3, stride 1, ungrouped,
 * undilated, its scratch buffers within int indices and the device's
 * largest allocation), conv2d_winograd_possible whether an operation
 * ("forward", "backward_data": the forward of the flipped filters) of p
 * can, and conv2d_runs_winograd on which kernels it does on ctx
 * (CONV_WINOGRAD, CONV_WINOGRAD_FUSED or CONV_WINOGRAD_PAIRS, 0 where it
 * does not):
 * CLCNN_WINOGRAD=1|fused, or tuning measured them faster there and
 * remembered so (conv2d_remember_winograd, which records any verdict).
 * conv2d_forward_winograd runs it on step's kernels with step's
 * configuration (p's bias and relu applied as the outputs are stored), for
 * the tests too; flip_transpose: p is the forward that
 * computes the input gradient of the convolution whose filters `weight`
 * holds. The fused kernel (forward and backward-data) takes at most
 * WINOGRAD_FUSED_CHANNELS input channels (conv2d_winograd_fused_fits). */
int conv2d_winograd_fits(const clcnn_context *ctx, const conv2d_params *p);
/* The same for its backward-weights, whose sums and transposed gradient
 * must fit too. */
int conv2d_winograd_gradient_fits(const clcnn_context *ctx, const conv2d_params *p);
/* The planes of a zero-padded copy of a convolution's input. */
typedef struct padded_plane {
    int height, width;
} padded_plane;
/* The planes Winograd pads p's input to where it reads a copy: (2 TH + 2) x
 * (2 TW + 2) for TH x TW tiles of 2x2 outputs, in which every tile's window
 * lies; the copy a forward keeps for a direct backward-weights. */
padded_plane conv2d_winograd_padded_plane(const conv2d_params *p);
/* The stride-1 convolution whose forward is p's backward-data: the gradient
 * padded by R-1-pad, the filters flipped, input and output channels swapped. */
conv2d_params conv2d_backward_data_as_forward(const conv2d_params *p);
int conv2d_winograd_possible(const clcnn_context *ctx, const char *operation,
                             const conv2d_params *p);
enum { WINOGRAD_FUSED_CHANNELS = 256 };
int conv2d_winograd_fused_fits(const clcnn_context *ctx, const conv2d_params *p);
int conv2d_runs_winograd(const clcnn_context *ctx, const char *operation, const conv2d_params *p);
/* chosen: Winograd's kernels and configuration, NULL for the direct kernels. */
clcnn_status conv2d_remember_winograd(clcnn_context *ctx, const char *operation,
                                      const conv2d_params *p, const conv_step *chosen);
/* The configuration of Winograd's products for the forward p (for
 * backward-data, conv2d_backward_data_as_forward's), which the plan keeps:
 * vw, nv (-DVW, -DNV: the columns a work-item takes, nv vectors of vw),
 * wpt_p (-DWPT_K: its output channels) and group (work-items per
 * work-group, along the output channels). */
direct_config conv2d_winograd_products_config(const clcnn_context *ctx, const conv2d_params *p);
/* The fused kernels' steps that tuning times (the first where nothing was
 * tuned), WINOGRAD_FUSED_STEPS at most, into out; returns their count:
 * CONV_WINOGRAD_FUSED or CONV_WINOGRAD_PAIRS (the layouts of
 * kernels/conv2d_winograd.cl), with vw the floats in a vector (a tile each,
 * or two for pairs; two or four tile rows side by side where a row has
 * fewer tiles), nv its tile rows (-DFUSED_R), wpt_p its output channels at a
 * time (-DFUSED_K), group its work-items per work-group. */
enum { WINOGRAD_FUSED_STEPS = 5 };
int conv2d_winograd_fused_steps(const clcnn_context *ctx, conv_step *out);
/* Whether kernels is one of the fused kernels' (step.kernels). */
int conv2d_winograd_is_fused(conv_kernels kernels);
/* The forward with 4x4 tiles (CONV_WINOGRAD4, kernels/conv2d_winograd.cl's
 * winograd4_fused; backward-data as the forward of the flipped filters):
 * conv2d_winograd4_fits whether it can run p (a CPU device, at most
 * WINOGRAD4_CHANNELS input channels), conv2d_winograd4_pays whether tuning
 * times it too (its tiles take fewer products than 2x2 ones), and
 * conv2d_winograd4_steps its WINOGRAD4_STEPS configurations (the first
 * where nothing was tuned): vw images a vector (-DVW), nv tile vectors
 * (-DWINOGRAD4_R) and wpt_p output channels (-DWINOGRAD4_K) a work-item,
 * group its work-items per work-group. conv2d_winograd4_filter_bytes: its
 * transformed filters'. */
enum { WINOGRAD4_CHANNELS = 64, WINOGRAD4_STEPS = 1 };
int conv2d_winograd4_fits(const clcnn_context *ctx, const conv2d_params *p);
int conv2d_winograd4_pays(const clcnn_context *ctx, const conv2d_params *p);
int conv2d_winograd4_steps(const clcnn_context *ctx, conv_step *out);
size_t conv2d_winograd4_filter_bytes(const direct_config *config, const conv2d_params *p);
/* Whether kernels is one of Winograd's, fused or not, 2x2 tiles or 4x4. */
int conv2d_kernels_are_winograd(conv_kernels kernels);
/* accumulate: the input gradient added to what grad_input holds (a tensor
 * that another layer's backward has written already). */
clcnn_status conv2d_backward_data_winograd(clcnn_context *ctx, const conv_step *step,
                                           const conv2d_params *p, cl_mem grad_output,
                                           cl_mem weight, cl_mem grad_input, int accumulate);
/* kept_input, when not NULL, takes the padded copy of the input instead of
 * the scratch (conv2d_kept_input_floats says when a direct backward-weights
 * reads it); prepared, when not NULL, keeps the transformed filters (a
 * forward's: flip_transpose 0). */
/* The bytes of the transformed filters of the forward of p on config. */
size_t conv2d_winograd_filter_bytes(const direct_config *config, const conv2d_params *p);
clcnn_status conv2d_forward_winograd(clcnn_context *ctx, const conv_step *step,
                                     const conv2d_params *p, cl_mem input, cl_mem weight,
                                     int flip_transpose, cl_mem bias, cl_mem output,
                                     cl_mem kept_input, prepared_weights *prepared);
/* Backward-weights' products run on conv2d_backward_weights_direct as a 1x1
 * convolution's backward-weights: its configuration there, which the plan
 * keeps. */
direct_config conv2d_winograd_gradient_config(const clcnn_context *ctx, const conv2d_params *p);
/* The weight gradient (overwritten) and, with a bias, its gradient; gradient:
 * conv2d_winograd_gradient_config's. */
clcnn_status conv2d_backward_weights_winograd(clcnn_context *ctx, const direct_config *gradient,
                                              const conv2d_params *p, cl_mem input,
                                              cl_mem grad_output, cl_mem grad_weight,
                                              cl_mem grad_bias);

/* ---- gemm: C = alpha * A(m,k) B(k,n) + beta * C + bias (see kernels/gemm.cl) ---- */

typedef enum bias_mode { BIAS_NONE = 0, BIAS_PER_ROW = 1, BIAS_PER_COLUMN = 2 } bias_mode;

typedef struct gemm_params {
    int m, n, k;
    float alpha, beta;
    int a_row_stride, a_col_stride;
    int b_row_stride, b_col_stride;
    int c_row_stride;
    bias_mode bias;
} gemm_params;

void gemm_ref(const gemm_params *p, const float *a, const float *b, float *c, const float *bias);
clcnn_status gemm(clcnn_context *ctx, const gemm_params *p, cl_mem a, cl_mem b, cl_mem c,
                  cl_mem bias);
clcnn_status gemm_tiled(clcnn_context *ctx, const tile_config *config, const gemm_params *p,
                        cl_mem a, cl_mem b, cl_mem c, cl_mem bias);

/* ---- dense: output (batch, out) = input (batch, in) * weight(out, in)^T + bias ---- */

typedef struct dense_params {
    int batch, in_features, out_features;
    int has_bias;
    int relu; /* the forward applies a relu (conv2d_params.relu) */
} dense_params;

void dense_forward_ref(const dense_params *p, const float *input, const float *weight,
                       const float *bias, float *output);
/* The 1x1 convolution of 1x1 images that p is, which devices with the
 * register-blocked kernels run; plan: conv2d_plan_for of it. */
conv2d_params dense_as_convolution(const dense_params *p);
clcnn_status dense_forward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                           cl_mem input, cl_mem weight, cl_mem bias, cl_mem output,
                           prepared_weights *prepared);

/* grad_input (batch, in) = grad_output (batch, out) * weight (out, in);
 * grad_weight (out, in) = grad_output^T * input; grad_bias (out) = column sums
 * of grad_output. All overwritten; a NULL grad_input is not computed, nor
 * grad_weight and grad_bias when grad_weight is NULL (a frozen layer). */
void dense_backward_ref(const dense_params *p, const float *input, const float *weight,
                        const float *grad_output, float *grad_input, float *grad_weight,
                        float *grad_bias);
clcnn_status dense_backward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                            cl_mem input, cl_mem weight, cl_mem grad_output, cl_mem grad_input,
                            cl_mem grad_weight, cl_mem grad_bias);

/* ---- reductions ----------------------------------------------------------------------- */

/* out[j] = sum over i < outer and k < inner of in[(i * columns + j) * inner + k], for j < columns:
 * per-channel sums of an NCHW tensor (outer = N, columns = C, inner = H*W) or
 * column sums of a matrix (inner = 1). Overwrites out. */
void reduce_channels_ref(int outer, int columns, int inner, const float *in, float *out);
clcnn_status reduce_channels(clcnn_context *ctx, int outer, int columns, int inner, cl_mem in,
                             cl_mem out);
/* The same with the work-items' walk chosen (kernels/reduce.cl): contiguous
 * shares (CPU devices, which reduce_channels gives them) or strided (other
 * devices). For the tests, which run both. */
clcnn_status reduce_channels_walk(clcnn_context *ctx, int contiguous, int outer, int columns,
                                  int inner, cl_mem in, cl_mem out);

/* ---- pool2d ----------------------------------------------------------------------- */

typedef enum pool_kind { POOL_MAX, POOL_AVERAGE } pool_kind;

typedef struct pool2d_params {
    pool_kind kind;
    int batch, channels, in_height, in_width;
    int size_h, size_w, stride_h, stride_w, pad_top, pad_left;
    int out_height, out_width;
    /* Average pooling divides by the window's input cells only, not the
     * padding (PyTorch's count_include_pad=False, ONNX's default). */
    int exclude_pad;
    /* The padding after the last row and column, which average pooling's
     * divisor counts: pad_bottom and pad_right when asymmetric is set, else
     * pad_top and pad_left (so parameters written before these fields
     * existed keep their meaning). */
    int asymmetric, pad_bottom, pad_right;
} pool2d_params;

static inline int pool2d_pad_bottom(const pool2d_params *p) {
    return p->asymmetric ? p->pad_bottom : p->pad_top;
}

static inline int pool2d_pad_right(const pool2d_params *p) {
    return p->asymmetric ? p->pad_right : p->pad_left;
}

/* indices (max pooling only; may be NULL): gets, per output, the offset in
 * its input plane (h * W + w, int32) of the element the window chose, the
 * first maximum in row-major order (PyTorch's choice on ties; a NaN is the
 * maximum), for the backward that follows. */
void pool2d_forward_ref(const pool2d_params *p, const float *input, float *output);
clcnn_status pool2d_forward(clcnn_context *ctx, const pool2d_params *p, cl_mem input, cl_mem output,
                            cl_mem indices);

/* Max pooling sends each output gradient to the element its window chose:
 * the reference finds it again from the input, the device reads the indices
 * its forward wrote; average pooling spreads it over the window divided by
 * the forward divisor. Overwrites grad_input, or adds to it with accumulate. */
void pool2d_backward_ref(const pool2d_params *p, const float *input, const float *grad_output,
                         float *grad_input, int accumulate);
clcnn_status pool2d_backward(clcnn_context *ctx, const pool2d_params *p, cl_mem indices,
                             cl_mem grad_output, cl_mem grad_input, int accumulate);

/* ---- activations (numbers shared with kernels/activation.cl) ------------------------- */

typedef enum activation_kind {
    ACTIVATION_RELU = 0,
    ACTIVATION_LEAKY = 1,
    ACTIVATION_SIGMOID = 2,
    ACTIVATION_TANH = 3,
    ACTIVATION_RELU6 = 4
} activation_kind;

/* output may be input (in place): each element is read before it is written. */
void activation_forward_ref(activation_kind kind, float slope, int64_t count, const float *input,
                            float *output);
clcnn_status activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                int64_t count, cl_mem input, cl_mem output);

/* grad_input from the forward output y (so it may run in place):
 * relu g*(y>0), leaky y>0 ? g : g*slope, sigmoid g*y*(1-y), tanh g*(1-y*y),
 * relu6 g*(0<y<6). relu6 = min(max(x, 0), 6) has 0 < y < 6 exactly when
 * 0 < x < 6, so deciding on y is PyTorch's hardtanh rule (x > 0 && x < 6):
 * no gradient at 0 and 6 themselves.
 * For leaky, pass the forward INPUT as `output`: with a negative slope y > 0
 * does not tell x > 0, and PyTorch decides on x. */
void activation_backward_ref(activation_kind kind, float slope, int64_t count, const float *output,
                             const float *grad_output, float *grad_input);
clcnn_status activation_backward(clcnn_context *ctx, activation_kind kind, float slope,
                                 int64_t count, cl_mem output, cl_mem grad_output,
                                 cl_mem grad_input);

/* ---- softmax over the last axis ---------------------------------------------------------- */

void softmax_forward_ref(int64_t rows, int columns, const float *input, float *output);
clcnn_status softmax_forward(clcnn_context *ctx, int64_t rows, int columns, cl_mem input,
                             cl_mem output);
/* From the forward output y: grad_input = y * (grad_output - sum_j grad_output_j * y_j). */
void softmax_backward_ref(int64_t rows, int columns, const float *output, const float *grad_output,
                          float *grad_input);
clcnn_status softmax_backward(clcnn_context *ctx, int64_t rows, int columns, cl_mem output,
                              cl_mem grad_output, cl_mem grad_input);

/* ---- losses (host/ops/loss.c, kernels/loss.cl, host/ref/loss.c) ----------------------------
 * Each computes per-row losses (loss[row], summed by the caller in double)
 * and the gradient with respect to the input of the last layer's
 * non-linearity, already divided for the mean the loss takes:
 *
 * softmax cross-entropy, from logits z (rows, classes) and int32 labels:
 *   loss[row] = logsumexp(z[row]) - z[row, label]; grad = (softmax(z) - onehot) / rows
 * binary cross-entropy on a sigmoid, from logits z (rows, 1) and float targets t in [0, 1]:
 *   loss[row] = max(z, 0) - z*t + log(1 + exp(-|z|)); grad = (sigmoid(z) - t) / rows
 * mean squared error, from outputs y (rows, columns) and float targets t (rows, columns):
 *   loss[row] = sum_j (y - t)^2 / columns; grad = 2 * (y - t) / (rows * columns)
 *   (PyTorch's MSELoss: the mean over every element)
 *
 * The loss itself is then sum(loss) / rows. */
void softmax_cross_entropy_ref(int rows, int classes, const float *logits, const int32_t *labels,
                               float *loss, float *grad_logits);
clcnn_status softmax_cross_entropy(clcnn_context *ctx, int rows, int classes, cl_mem logits,
                                   cl_mem labels, cl_mem loss, cl_mem grad_logits);
void sigmoid_binary_cross_entropy_ref(int rows, const float *logits, const float *targets,
                                      float *loss, float *grad_logits);
clcnn_status sigmoid_binary_cross_entropy(clcnn_context *ctx, int rows, cl_mem logits,
                                          cl_mem targets, cl_mem loss, cl_mem grad_logits);
void mean_squared_error_ref(int rows, int columns, const float *outputs, const float *targets,
                            float *loss, float *grad_outputs);
clcnn_status mean_squared_error(clcnn_context *ctx, int rows, int columns, cl_mem outputs,
                                cl_mem targets, cl_mem loss, cl_mem grad_outputs);

/* ---- optimizers over the flat parameter buffer (host/ops/optim.c, kernels/optim.cl,
 * host/ref/optim.c) ---------- PyTorch's formulations, weight decay added to the gradient (L2):
 * SGD:  g' = g + wd*w;  v = momentum*v + g' (v = g' on step 1);  w -= lr*v
 * Adam: g' = g + wd*w;  m = b1*m + (1-b1)*g';  v = b2*v + (1-b2)*g'^2;
 *       w -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (t = step, from 1) */
typedef enum optimizer_kind { OPTIMIZER_SGD = 0, OPTIMIZER_ADAM = 1 } optimizer_kind;

typedef struct optimizer_params {
    optimizer_kind kind;
    double learning_rate, momentum, weight_decay;
    double beta1, beta2, epsilon;
    int64_t step; /* 1 on the first update */
    /* The update covers weights and grads from parameter_offset and the
     * state from state_offset, count floats each (0 and 0: from the start). */
    int64_t parameter_offset, state_offset;
} optimizer_params;

/* state1/state2: momentum (SGD, state2 unused) or m and v (Adam). */
void optimizer_step_ref(const optimizer_params *p, int64_t count, float *weights,
                        const float *grads, float *state1, float *state2);
clcnn_status optimizer_step(clcnn_context *ctx, const optimizer_params *p, int64_t count,
                            cl_mem weights, cl_mem grads, cl_mem state1, cl_mem state2);

/* ---- entry points: each runs the OpenCL side on an OpenCL device and the
 * reference on the reference device, with the semantics stated above ---- */

/* plan: conv2d_plan_for's (the reference ignores it); kept_input: see
 * conv2d_kept_input_floats (absent: nothing kept; the reference ignores it). */
clcnn_status op_conv2d_forward(clcnn_context *ctx, const conv2d_plan *plan, const conv2d_params *p,
                               buf input, buf weight, buf bias, buf output, buf kept_input,
                               prepared_weights *prepared);
/* Backward-data (unless grad_input is absent; accumulate: added to what it
 * holds) and then backward-weights (unless grad_weight is absent: a frozen
 * layer); scratch:
 * conv2d_backward_weights_scratch_bytes on an OpenCL device, unused on the
 * reference. */
clcnn_status op_conv2d_backward(clcnn_context *ctx, const conv2d_plan *plan, const conv2d_params *p,
                                buf grad_output, buf weight, buf grad_input, int accumulate,
                                buf input, buf grad_weight, buf grad_bias, buf scratch,
                                buf kept_input);
/* indices (max pooling; may be absent): on an OpenCL device the forward
 * writes the windows' choices there (pool2d_forward) and the backward reads
 * them, so it needs them; the reference neither writes nor reads them, its
 * backward finds the choices again from the input. */
clcnn_status op_pool2d_forward(clcnn_context *ctx, const pool2d_params *p, buf input, buf output,
                               buf indices);
clcnn_status op_pool2d_backward(clcnn_context *ctx, const pool2d_params *p, buf input, buf indices,
                                buf grad_output, buf grad_input, int accumulate);
clcnn_status op_dense_forward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                              buf input, buf weight, buf bias, buf output,
                              prepared_weights *prepared);
clcnn_status op_dense_backward(clcnn_context *ctx, const conv2d_plan *plan, const dense_params *p,
                               buf input, buf weight, buf grad_output, buf grad_input,
                               buf grad_weight, buf grad_bias);
clcnn_status op_activation_forward(clcnn_context *ctx, activation_kind kind, float slope,
                                   int64_t count, buf input, buf output);
clcnn_status op_activation_backward(clcnn_context *ctx, activation_kind kind, float slope,
                                    int64_t count, buf output, buf grad_output, buf grad_input);
clcnn_status op_softmax_forward(clcnn_context *ctx, int64_t rows, int columns, buf input,
                                buf output);
clcnn_status op_softmax_backward(clcnn_context *ctx, int64_t rows, int columns, buf output,
                                 buf grad_output, buf grad_input);

#endif
