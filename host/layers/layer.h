/* A layer type is one module: host/layers/<type>.c holds everything about it
 * (its keys, shape inference, named tensors and their initialisation,
 * forward and backward) in a struct layer_type, and registry.c lists the
 * types. The parser, the graph passes, the model file, weight directories,
 * summaries and the tuner reach a type only through that struct.
 * docs/architecture.md, "How to add a layer type", walks through it. */
#ifndef CLCNN_LAYER_H
#define CLCNN_LAYER_H

#include "ops.h"

/* ---- named tensors ------------------------------------------------------------------------ */

/* A tensor a layer declares: <layer>.<suffix>, with PyTorch's shape. */
typedef struct tensor_spec {
    const char *suffix; /* "weight", "bias", "running_mean", ... */
    tensor_kind kind;
    int ndim;
    int64_t shape[4];
} tensor_spec;

/* ---- reading a network-file line: helpers for a type's parse and infer ----------------- */

/* Where the parser is and the line's key=value options. */
typedef struct layer_parser layer_parser;

/* "<source>:<line>: <type>: <reason>" recorded on the context; returns status. */
clcnn_status parser_error(const layer_parser *p, clcnn_status status, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
/* The value given for key, or NULL. */
const char *parser_value(const layer_parser *p, const char *key);
/* A positive integer up to MAX_DIMENSION; fallback < 0 makes the key required. */
clcnn_status parse_positive(const layer_parser *p, const char *key, int fallback, int *out);
/* "3" or "3x5"; fallback_h < 0 makes the key required. */
clcnn_status parse_positive_pair(const layer_parser *p, const char *key, int fallback_h,
                                 int fallback_w, int *h, int *w);
/* pad=: "1", "1x2", and with allow_same "same" (*same set, sizes 0). Absent: 0. */
clcnn_status parse_padding(const layer_parser *p, int allow_same, int *same, int *h, int *w);
/* pad= for types that may pad each side differently: the forms above, or
 * "T,L,B,R" (top, left, bottom, right). */
clcnn_status parse_padding_sides(const layer_parser *p, int allow_same, int *same, int *top,
                                 int *left, int *bottom, int *right);
clcnn_status parse_boolean(const layer_parser *p, const char *key, int fallback, int *out);
/* A finite float; absent: fallback. */
clcnn_status parse_float(const layer_parser *p, const char *key, float fallback, float *out);

/* Shape checks shared by the types' infer functions. */
clcnn_status check_output_size(const layer_parser *p, int64_t c, int64_t h, int64_t w);
/* Refuses a vector input to a type that needs (C, H, W). */
clcnn_status need_image_input(const layer_parser *p, const layer *input);
/* Weights of count factors, or an error when their product exceeds what kernels index. */
clcnn_status count_weights(const layer_parser *p, const int64_t *factors, int count, int64_t *out);

/* For element-wise types: the output has the first input's shape. */
clcnn_status infer_same_shape(const layer_parser *p, layer *l, const layer *const *inputs,
                              int count);

/* Initialisation shared by the weighted types: He normal when the only
 * reader `next` is a rectifier (its slope counted), else Xavier uniform, as
 * torch.nn.init's kaiming_normal_ and xavier_uniform_ define them. */
void init_weights(float *weight, int64_t count, int64_t fan_in, int64_t fan_out, rng *r,
                  const layer *next);

/* ---- running a layer ---------------------------------------------------------------------- */

/* Everything a forward or backward call of one node sees, on the context's
 * device (see buf). The graph fills it; layer code only enqueues operations. */
typedef struct layer_pass {
    clcnn_context *ctx;
    int batch;
    int training; /* train mode (batch statistics, dropout) rather than eval */
    /* This node's random draws in this pass (training only): a counter-based
     * generator keyed by it gives every element its own number, in any order. */
    uint64_t seed;
    int64_t first_image; /* the global batch index of image 0 (sharded training) */
    /* Train mode with several ranks training together: the exchange of batch
     * statistics (rank_sync), else NULL. batch may then be 0. */
    rank_sync *sync;
    int input_count;
    buf in[LAYER_MAX_INPUTS];
    shape3 in_shape[LAYER_MAX_INPUTS]; /* per image */
    buf out;
    buf tensor[LAYER_MAX_TENSORS]; /* in the order the type's tensors() declares them */
    /* backward only */
    buf grad_out;
    /* .host/.mem NULL: that input's gradient is not wanted. accumulate[k]: add
     * into grad_in[k] instead of overwriting it (only for types whose
     * `accumulates` says so; for the others the graph adds through a
     * temporary). */
    buf grad_in[LAYER_MAX_INPUTS];
    int accumulate[LAYER_MAX_INPUTS];
    buf tensor_grad[LAYER_MAX_TENSORS]; /* parameters' gradients: overwritten */
    buf scratch;                        /* scratch_bytes(...) bytes */
    /* saved_bytes(l) per image, this node's own: what a forward keeps for
     * the backward that follows it. Given to that forward (the passes a
     * backward follows, in either mode) and to the backward; absent in
     * inference passes, which then need not write it. */
    buf saved;
    /* The relu that alone reads this node runs inside it (types with
     * fuses_relu; the plan decides, plan.c): out is then the relu's storage
     * too, the forward writes relu(output) there, and backward's grad_out is
     * the gradient with respect to that output (out). */
    int relu;
    /* The add of two inputs that alone reads this node runs inside it
     * (types with fuses_add; plan.c), with the add's fused relu as `relu`:
     * add_in is the add's other input, out the add's storage too; the
     * forward writes relu?(output + add_in) there, and backward's grad_out
     * is the gradient of that sum (relu'd), which also goes into add_grad
     * (added with add_accumulate; absent: not wanted). add_in absent: no add. */
    buf add_in, add_grad;
    int add_accumulate;
    /* Eval-mode forward only (else NULL): where the node keeps its filters
     * in a forward kernel's layout, with their version set (internal.h). */
    prepared_weights *prepared;
} layer_pass;

struct layer_type {
    const char *name;
    /* The type's own keys, NULL-terminated; every type also takes name=, and
     * input= (one input) or inputs= (several). */
    const char *const *keys;
    int min_inputs, max_inputs; /* 0 for the input layer; 1 for most */
    int view;                   /* the output is the input's storage, reshaped (flatten) */
    /* backward honours layer_pass.accumulate on this device (NULL: never) */
    int (*accumulates)(const clcnn_context *ctx, const layer *l);
    int rectifier;              /* relu-like: the layer before it gets He initialisation */
    int fuses_relu;             /* forward and backward honour layer_pass.relu */
    int fuses_add;              /* and layer_pass.add_in (OpenCL devices) */
    /* Output channel c is tensor[0]'s c-th slice (weight, output channels
     * first) applied to the input, plus tensor[1][c] whenever the pass gives
     * a tensor[1] (bias) even if the layer has none: a `fold` layer reading
     * it alone can fold into it (conv, dense). */
    int foldable;
    /* The loss that is computed from this layer's input when the network
     * ends in it (softmax: cross-entropy), else CLCNN_LOSS_AUTO. */
    clcnn_loss fused_loss;

    /* Reads the type's options into l (defaults where absent). May be NULL. */
    clcnn_status (*parse)(const layer_parser *p, layer *l);
    /* The output shape (l->out) and parameter counts from the inputs. */
    clcnn_status (*infer)(const layer_parser *p, layer *l, const layer *const *inputs, int count);
    /* Declares the layer's named tensors into out (at most LAYER_MAX_TENSORS);
     * returns how many. May be NULL: none. */
    int (*tensors)(const layer *l, tensor_spec *out);
    /* Initial values of the tensors (same order), from r. `next` is the only
     * layer reading this one, or NULL. May be NULL: tensors start as zeros. */
    void (*init)(const layer *l, float *const *values, rng *r, const layer *next);
    /* Bytes of device scratch backward needs for batch images. May be NULL. */
    size_t (*scratch_bytes)(const clcnn_context *ctx, const layer *l, int batch);
    /* Bytes per image of device storage the node keeps from its forward to
     * its backward (layer_pass.saved): what backward would otherwise
     * recompute (max pooling's choices, a convolution's zero-padded input,
     * batchnorm's statistics). OpenCL devices only: the reference
     * recomputes. May be NULL: nothing is kept. */
    size_t (*saved_bytes)(const clcnn_context *ctx, const layer *l);
    /* Types whose train-mode passes reduce over the batch and synchronise
     * that across ranks (layer_pass.sync): the doubles and floats one
     * exchange needs. The graph calls their forward and backward even with
     * batch 0 under sync, so that a rank without images makes the same
     * exchanges. May be NULL: the type does not synchronise. */
    int64_t (*sync_floats)(const layer *l);
    /* NULL for types with nothing to compute (input, views). */
    clcnn_status (*forward)(const layer *l, const layer_pass *p);
    clcnn_status (*backward)(const layer *l, const layer_pass *p);
    /* Eval mode: folds this layer into the `foldable` layer before it, whose
     * only reader it is, by writing the weight and bias with which that layer
     * gives this one's output. weight has per_channel floats per output
     * channel; bias may be absent; tensor[] are this layer's. May be NULL. */
    clcnn_status (*fold)(const layer *l, clcnn_context *ctx, const buf *tensor, int per_channel,
                         buf weight, buf bias, buf folded_weight, buf folded_bias);
    /* Times kernel configurations for batch images on ctx's OpenCL device,
     * remembers the fastest and appends a report line per operation. May be
     * NULL: nothing to tune. */
    clcnn_status (*tune)(clcnn_context *ctx, const layer *l, int batch, rng *r, char *report,
                         size_t size, size_t *used);
};

/* The activation that fuses_relu types take inside them, and the add that
 * fuses_add types do. */
extern const layer_type layer_relu;
extern const layer_type layer_add;

/* The relu of node l's pass when it has relu set (nothing otherwise), for
 * the parts of a fuses_relu type that run it apart, in place
 * (activation.c): forward makes out relu(out); backward masks grad_out by
 * out before the type's own backward reads it. */
clcnn_status relu_apart_forward(const layer *l, const layer_pass *p);
clcnn_status relu_apart_backward(const layer *l, const layer_pass *p);

/* The same for a fused add (layer_pass.add_in) and the relu after it, run
 * apart after the type's own forward wrote out without them (add.c):
 * forward makes out relu?(out + add_in); backward masks grad_out by out in
 * place and gives add_grad its share. Without add_in, the relu's above. */
clcnn_status add_apart_forward(const layer *l, const layer_pass *p);
clcnn_status add_apart_backward(const layer *l, const layer_pass *p);

/* The accumulates of types whose backward always honours accumulate. */
int always_accumulates(const clcnn_context *ctx, const layer *l);

/* A dense layer's parameters (dense.c). */
dense_params layer_dense_params(const layer *l, int batch);

/* The tune of types that run as convolutions (conv; dense as a 1x1 one):
 * the register-blocked kernels' configurations (graph/tuner.c). */
clcnn_status tune_as_convolution(clcnn_context *ctx, const layer *l, int batch, rng *r,
                                 char *report, size_t size, size_t *used);

/* ---- the registry (registry.c) ------------------------------------------------------------ */

/* NULL-terminated, in the order error messages list them. */
extern const layer_type *const layer_types[];
const layer_type *layer_type_find(const char *name);

#endif
