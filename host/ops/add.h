/* Element-wise sum of n >= 2 tensors of the same shape (a graph's add layer):
 *
 *   output = ((in_0 + in_1) + in_2) + ... + in_{n-1}
 *
 * summed in that order on the device (in float) and in double by the
 * reference, so both are deterministic. The backward gives every input the
 * output gradient. output may be one of the first two inputs (in place: a
 * residual add whose batchnorm wrote its output there, host/graph/plan.c),
 * no other. With relu = 1 (a
 * relu fused into the layer, OpenCL devices only) the forward writes
 * relu(output), bit for bit as the relu layer would. */
#ifndef CLCNN_OPS_ADD_H
#define CLCNN_OPS_ADD_H

#include "ops.h"

/* count: elements of each tensor (batch * C * H * W). */
void add_forward_ref(int64_t count, int input_count, const float *const *inputs, float *output);
clcnn_status add_forward(clcnn_context *ctx, int64_t count, int input_count, const cl_mem *inputs,
                         cl_mem output, int relu);

/* grad_inputs[k] = grad_output (accumulate[k] = 0) or grad_inputs[k] += grad_output
 * (accumulate[k] = 1), for k < input_count, one destination after the other,
 * so a tensor added to itself may appear twice (the second with accumulate 1).
 * A NULL grad_inputs[k] is skipped. On the OpenCL device a relu fused into
 * the add can run inside its backward: given relu_y (that relu's output),
 * grad_output is the gradient with respect to it, and every input takes it
 * masked as the relu's backward would (0 where relu_y <= 0), bit for bit;
 * grad_output itself is left as it is. The reference refuses a fused relu. */
void add_backward_ref(int64_t count, int input_count, const float *grad_output,
                      float *const *grad_inputs, const int *accumulate);
clcnn_status add_backward(clcnn_context *ctx, int64_t count, int input_count, cl_mem grad_output,
                          cl_mem relu_y, const cl_mem *grad_inputs, const int *accumulate);

/* The same on ctx's device: the OpenCL side or the reference. */
clcnn_status op_add_forward(clcnn_context *ctx, int64_t count, int input_count, const buf *inputs,
                            buf output, int relu);
clcnn_status op_add_backward(clcnn_context *ctx, int64_t count, int input_count, buf grad_output,
                             buf relu_y, const buf *grad_inputs, const int *accumulate);

#endif
