/* Global average pooling (a graph's global average pool layer): input
 * (batch, channels, H, W) to output (batch, channels, 1, 1), the mean of each
 * plane of spatial = H * W elements, summed in order (compensated in float on
 * the device, in double by the reference). Backward: grad_input =
 * grad_output / spatial over the plane. */
#ifndef CLCNN_OPS_GLOBAL_AVGPOOL_H
#define CLCNN_OPS_GLOBAL_AVGPOOL_H

#include "ops.h"

void global_avgpool_forward_ref(int batch, int channels, int spatial, const float *input,
                                float *output);
clcnn_status global_avgpool_forward(clcnn_context *ctx, int batch, int channels, int spatial,
                                    cl_mem input, cl_mem output);

/* Overwrites grad_input (accumulate = 0) or adds into it (1); a NULL
 * grad_input is skipped. */
void global_avgpool_backward_ref(int batch, int channels, int spatial, const float *grad_output,
                                 float *grad_input, int accumulate);
clcnn_status global_avgpool_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                     cl_mem grad_output, cl_mem grad_input, int accumulate);

/* The same on ctx's device: the OpenCL side or the reference. */
clcnn_status op_global_avgpool_forward(clcnn_context *ctx, int batch, int channels, int spatial,
                                       buf input, buf output);
clcnn_status op_global_avgpool_backward(clcnn_context *ctx, int batch, int channels, int spatial,
                                        buf grad_output, buf grad_input, int accumulate);

#endif
