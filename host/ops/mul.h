/* Element-wise product of two tensors (a graph's mul layer): a is (batch,
 * channels, H, W) and b is either the same shape or, with broadcast = 1,
 * (batch, channels, 1, 1), one factor per plane (squeeze-and-excitation).
 * spatial = H * W.
 *
 *   output[n, c, s] = a[n, c, s] * b[n, c, s]    (b[n, c] with broadcast)
 *
 * Backward, g = grad_output:
 *   grad_a = g * b (b broadcast as in the forward)
 *   grad_b = g * a, or with broadcast the sum over the plane of g * a, in
 *   order (compensated in float on the device, in double by the reference).
 * Outputs must not alias inputs. */
#ifndef CLCNN_OPS_MUL_H
#define CLCNN_OPS_MUL_H

#include "ops.h"

void mul_forward_ref(int batch, int channels, int spatial, int broadcast, const float *a,
                     const float *b, float *output);
clcnn_status mul_forward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                         cl_mem a, cl_mem b, cl_mem output);

/* Each gradient is overwritten (accumulate_x = 0) or added into (1); a NULL
 * one is skipped (and then the factor it needs may be NULL too: b for grad_a,
 * a for grad_b). grad_a is written before grad_b, so for a tensor multiplied
 * by itself both may be the same buffer, the second with accumulate 1. */
void mul_backward_ref(int batch, int channels, int spatial, int broadcast, const float *a,
                      const float *b, const float *grad_output, float *grad_a, int accumulate_a,
                      float *grad_b, int accumulate_b);
clcnn_status mul_backward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                          cl_mem a, cl_mem b, cl_mem grad_output, cl_mem grad_a, int accumulate_a,
                          cl_mem grad_b, int accumulate_b);

/* The same on ctx's device: the OpenCL side or the reference. */
clcnn_status op_mul_forward(clcnn_context *ctx, int batch, int channels, int spatial, int broadcast,
                            buf a, buf b, buf output);
clcnn_status op_mul_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                             int broadcast, buf a, buf b, buf grad_output, buf grad_a,
                             int accumulate_a, buf grad_b, int accumulate_b);

#endif
