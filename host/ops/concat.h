/* Concatenation along channels (a graph's concat layer), one input at a
 * time: the caller loops over the inputs, each with its channel offset.
 * Input (batch, in_channels, spatial) is channels [channel_offset,
 * channel_offset + in_channels) of output (batch, out_channels, spatial);
 * spatial = H * W (1 for vectors). Both directions are copies, exact. */
#ifndef CLCNN_OPS_CONCAT_H
#define CLCNN_OPS_CONCAT_H

#include "ops.h"

/* Writes the input's slice of output; the rest of output is untouched. */
void concat_forward_ref(int batch, int in_channels, int out_channels, int channel_offset,
                        int spatial, const float *input, float *output);
clcnn_status concat_forward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                            int channel_offset, int spatial, cl_mem input, cl_mem output);

/* grad_input = the input's slice of grad_output (accumulate = 0), or
 * grad_input += that slice (accumulate = 1). A NULL grad_input is skipped. */
void concat_backward_ref(int batch, int in_channels, int out_channels, int channel_offset,
                         int spatial, const float *grad_output, float *grad_input, int accumulate);
clcnn_status concat_backward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                             int channel_offset, int spatial, cl_mem grad_output, cl_mem grad_input,
                             int accumulate);

/* The same on ctx's device: the OpenCL side or the reference. */
clcnn_status op_concat_forward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                               int channel_offset, int spatial, buf input, buf output);
clcnn_status op_concat_backward(clcnn_context *ctx, int batch, int in_channels, int out_channels,
                                int channel_offset, int spatial, buf grad_output, buf grad_input,
                                int accumulate);

#endif
