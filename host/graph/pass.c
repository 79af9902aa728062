/* The memory plan of a network and its passes: forward, loss, backward, on
 * either device. Every buffer is allocated once for a given batch capacity;
 * a pass allocates nothing. */
#include "ops.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Images per chunk of a forward pass: enough to keep a device busy, few
 * enough that activations of large networks fit comfortably. */
#define FORWARD_CHUNK 256

/* Flatten only renames the shape, so its output is its input's storage. */
static int storage_of(const clcnn_net *net, int index) {
    while (index > 0 && net->layers[index].type == LAYER_FLATTEN)
        index--;
    return index;
}

static int is_opencl(const clcnn_net *net) {
    return net->ctx->kind == CLCNN_DEVICE_OPENCL;
}

/* ---- parameters on the device ------------------------------------------------------------ */

static void release_sub_buffers(layer *l) {
    buffer_release(&l->weight_buffer);
    buffer_release(&l->bias_buffer);
    buffer_release(&l->weight_grad_buffer);
    buffer_release(&l->bias_grad_buffer);
}

void net_release_device_parameters(clcnn_net *net) {
    for (int i = 0; i < net->layer_count; i++)
        release_sub_buffers(&net->layers[i]);
    buffer_release(&net->device_parameters);
    buffer_release(&net->device_gradients);
}

static clcnn_status sub_buffer(clcnn_context *ctx, cl_mem parent, int64_t offset, int64_t count,
                               cl_mem *out) {
    *out = NULL;
    if (count == 0)
        return CLCNN_OK;
    cl_buffer_region region = {sizeof(float) * (size_t)offset, sizeof(float) * (size_t)count};
    cl_int err;
    *out = clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
    if (err != CL_SUCCESS) {
        *out = NULL;
        return cl_check(ctx, err, "clCreateSubBuffer");
    }
    return CLCNN_OK;
}

static clcnn_status create_device_parameters(clcnn_net *net) {
    clcnn_context *ctx = net->ctx;
    cl_uint align_bits = 0;
    clGetDeviceInfo(ctx->device, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof(align_bits), &align_bits,
                    NULL);
    if (align_bits > PARAMETER_ALIGN_FLOATS * 32)
        return set_error(ctx, CLCNN_ERROR_OPENCL,
                         "the device aligns sub-buffers to %u bits, more than the %d clcnn plans for",
                         align_bits, PARAMETER_ALIGN_FLOATS * 32);
    size_t bytes = sizeof(float) * (size_t)net->parameter_floats;
    clcnn_status status = buffer_create(ctx, bytes, &net->device_parameters);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, bytes, &net->device_gradients);
    /* The padding between tensors is never written by a kernel but is read by
     * the optimizer: it starts as zeros, like the host copy. */
    if (status == CLCNN_OK)
        status = buffer_write(ctx, net->device_gradients, 0, bytes, net->host_gradients);
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++) {
        layer *l = &net->layers[i];
        status = sub_buffer(ctx, net->device_parameters, l->weight_offset, l->weight_count,
                            &l->weight_buffer);
        if (status == CLCNN_OK)
            status = sub_buffer(ctx, net->device_parameters, l->bias_offset, l->bias_count,
                                &l->bias_buffer);
        if (status == CLCNN_OK)
            status = sub_buffer(ctx, net->device_gradients, l->weight_offset, l->weight_count,
                                &l->weight_grad_buffer);
        if (status == CLCNN_OK)
            status = sub_buffer(ctx, net->device_gradients, l->bias_offset, l->bias_count,
                                &l->bias_grad_buffer);
    }
    if (status != CLCNN_OK)
        net_release_device_parameters(net);
    return status;
}

clcnn_status net_sync_parameters_to_device(clcnn_net *net) {
    if (!is_opencl(net))
        return CLCNN_OK;
    if (!net->device_parameters) {
        clcnn_status status = create_device_parameters(net);
        if (status != CLCNN_OK)
            return status;
        net->device_parameters_stale = 1;
    }
    if (!net->device_parameters_stale)
        return CLCNN_OK;
    clcnn_status status =
        buffer_write(net->ctx, net->device_parameters, 0,
                     sizeof(float) * (size_t)net->parameter_floats, net->host_parameters);
    if (status == CLCNN_OK)
        net->device_parameters_stale = 0;
    return status;
}

clcnn_status net_sync_parameters_to_host(clcnn_net *net) {
    if (!net->host_parameters_stale || !net->device_parameters)
        return CLCNN_OK;
    clcnn_status status =
        buffer_read(net->ctx, net->device_parameters, 0,
                    sizeof(float) * (size_t)net->parameter_floats, net->host_parameters);
    if (status == CLCNN_OK)
        net->host_parameters_stale = 0;
    return status;
}

/* ---- activations ------------------------------------------------------------------------ */

static void free_host_array(float ***array, int count) {
    if (!*array)
        return;
    for (int i = 0; i < count; i++)
        free((*array)[i]);
    free(*array);
    *array = NULL;
}

static void release_device_array(cl_mem **array, int count) {
    if (!*array)
        return;
    for (int i = 0; i < count; i++)
        buffer_release(&(*array)[i]);
    free(*array);
    *array = NULL;
}

void net_release_activations(clcnn_net *net) {
    /* Enqueued uploads may still read the host staging arrays freed below. */
    if (net->ctx->queue)
        clFinish(net->ctx->queue);
    free_host_array(&net->host_outputs, net->layer_count);
    free_host_array(&net->host_output_grads, net->layer_count);
    release_device_array(&net->device_outputs, net->layer_count);
    release_device_array(&net->device_output_grads, net->layer_count);
    buffer_release(&net->device_scratch);
    buffer_release(&net->device_labels);
    buffer_release(&net->device_targets);
    buffer_release(&net->device_losses);
    free(net->host_labels);
    free(net->host_targets);
    free(net->host_losses);
    net->host_labels = NULL;
    net->host_targets = NULL;
    net->host_losses = NULL;
    net->scratch_bytes = 0;
    net->capacity = 0;
    net->with_gradients = 0;
}

/* A convolution layer's parameters; a dense layer's as the 1x1 convolution of
 * 1x1 images it equals (how the register-blocked kernels run it). */
conv2d_params layer_conv2d_params(const layer *l, int batch) {
    const int conv = l->type == LAYER_CONV;
    conv2d_params p = {0};
    p.batch = batch;
    p.in_channels = l->in.c;
    p.out_channels = conv ? l->filters : l->units;
    p.in_height = conv ? l->in.h : 1;
    p.in_width = conv ? l->in.w : 1;
    p.kernel_h = conv ? l->size_h : 1;
    p.kernel_w = conv ? l->size_w : 1;
    p.stride_h = conv ? l->stride_h : 1;
    p.stride_w = conv ? l->stride_w : 1;
    p.pad_top = conv ? l->pad_top : 0;
    p.pad_left = conv ? l->pad_left : 0;
    p.out_height = conv ? l->out.h : 1;
    p.out_width = conv ? l->out.w : 1;
    p.has_bias = l->has_bias;
    return p;
}

static pool2d_params pool_params(const layer *l, int batch) {
    pool2d_params p = {0};
    p.kind = l->type == LAYER_MAXPOOL ? POOL_MAX : POOL_AVERAGE;
    p.batch = batch;
    p.channels = l->in.c;
    p.in_height = l->in.h;
    p.in_width = l->in.w;
    p.size_h = l->size_h;
    p.size_w = l->size_w;
    p.stride_h = l->stride_h;
    p.stride_w = l->stride_w;
    p.pad_top = l->pad_top;
    p.pad_left = l->pad_left;
    p.out_height = l->out.h;
    p.out_width = l->out.w;
    return p;
}

static dense_params dense_layer_params(const layer *l, int batch) {
    dense_params p = {batch, l->in.c, l->units, l->has_bias};
    return p;
}

/* One allocation of count floats (or int32s) on the device or the host. */
static clcnn_status allocate(clcnn_net *net, int64_t count, cl_mem *device, float **host) {
    size_t bytes = sizeof(float) * (size_t)(count > 0 ? count : 1);
    if (is_opencl(net))
        return buffer_create(net->ctx, bytes, device);
    *host = malloc(bytes);
    if (!*host)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory (%zu bytes)", bytes);
    return CLCNN_OK;
}

static clcnn_status allocate_activations(clcnn_net *net, int64_t capacity, int with_gradients) {
    clcnn_context *ctx = net->ctx;
    const int n = net->layer_count;
    if (is_opencl(net)) {
        net->device_outputs = calloc((size_t)n, sizeof(cl_mem));
        net->device_output_grads = calloc((size_t)n, sizeof(cl_mem));
        if (!net->device_outputs || !net->device_output_grads)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for activations");
    } else {
        net->host_outputs = calloc((size_t)n, sizeof(float *));
        net->host_output_grads = calloc((size_t)n, sizeof(float *));
        if (!net->host_outputs || !net->host_output_grads)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for activations");
    }
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < n && status == CLCNN_OK; i++) {
        if (storage_of(net, i) != i)
            continue;
        int64_t count = capacity * shape3_count(net->layers[i].out);
        status = allocate(net, count, is_opencl(net) ? &net->device_outputs[i] : NULL,
                          is_opencl(net) ? NULL : &net->host_outputs[i]);
        if (status == CLCNN_OK && with_gradients)
            status = allocate(net, count, is_opencl(net) ? &net->device_output_grads[i] : NULL,
                              is_opencl(net) ? NULL : &net->host_output_grads[i]);
    }
    if (status != CLCNN_OK || !with_gradients)
        return status;

    const int64_t out_count = capacity * shape3_count(net->layers[n - 1].out);
    net->host_labels = malloc(sizeof(int32_t) * (size_t)capacity);
    net->host_targets = malloc(sizeof(float) * (size_t)(out_count + 1));
    net->host_losses = malloc(sizeof(float) * (size_t)capacity);
    if (!net->host_labels || !net->host_targets || !net->host_losses)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for targets");
    if (!is_opencl(net))
        return CLCNN_OK;
    status = buffer_create(ctx, sizeof(int32_t) * (size_t)capacity, &net->device_labels);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)(out_count + 1), &net->device_targets);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)capacity, &net->device_losses);
    size_t scratch = 0;
    for (int i = 0; i < n; i++) {
        if (net->layers[i].type != LAYER_CONV)
            continue;
        conv2d_params p = layer_conv2d_params(&net->layers[i], (int)capacity);
        size_t bytes = conv2d_backward_weights_scratch_bytes(ctx, &p);
        if (bytes > scratch)
            scratch = bytes;
    }
    if (status == CLCNN_OK)
        status = buffer_create(ctx, scratch ? scratch : 4, &net->device_scratch);
    net->scratch_bytes = scratch;
    return status;
}

clcnn_status net_ensure_activations(clcnn_net *net, int64_t capacity, int with_gradients) {
    if (net->capacity >= capacity && net->with_gradients >= with_gradients)
        return CLCNN_OK;
    if (net->capacity > capacity)
        capacity = net->capacity;
    with_gradients = with_gradients || net->with_gradients;
    net_release_activations(net);
    clcnn_status status = allocate_activations(net, capacity, with_gradients);
    if (status != CLCNN_OK) {
        net_release_activations(net);
        return status;
    }
    net->capacity = capacity;
    net->with_gradients = with_gradients;
    return CLCNN_OK;
}

/* ---- forward ------------------------------------------------------------------------------- */

static activation_kind activation_of(const layer *l) {
    switch (l->type) {
    case LAYER_LEAKY:
        return ACTIVATION_LEAKY;
    case LAYER_SIGMOID:
        return ACTIVATION_SIGMOID;
    case LAYER_TANH:
        return ACTIVATION_TANH;
    default:
        return ACTIVATION_RELU;
    }
}

/* Softmax runs over the last axis: W of a (C, H, W) tensor, or the whole vector. */
static int softmax_columns(const layer *l) {
    return l->out.ndim == 3 ? l->out.w : l->out.c;
}

static void layer_forward_ref(const layer *l, int batch, const float *in, float *out) {
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = layer_conv2d_params(l, batch);
        conv2d_forward_ref(&p, in, l->weight, l->bias, out);
        break;
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        pool2d_forward_ref(&p, in, out);
        break;
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        dense_forward_ref(&p, in, l->weight, l->bias, out);
        break;
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        activation_forward_ref(activation_of(l), l->slope, batch * shape3_count(l->out), in, out);
        break;
    case LAYER_SOFTMAX: {
        int columns = softmax_columns(l);
        softmax_forward_ref(batch * shape3_count(l->out) / columns, columns, in, out);
        break;
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
}

static clcnn_status layer_forward_opencl(clcnn_context *ctx, layer *l, int batch, cl_mem in,
                                         cl_mem out) {
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = layer_conv2d_params(l, batch);
        return conv2d_forward(ctx, &p, in, l->weight_buffer, l->bias_buffer, out);
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        return pool2d_forward(ctx, &p, in, out);
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        return dense_forward(ctx, &p, in, l->weight_buffer, l->bias_buffer, out);
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        return activation_forward(ctx, activation_of(l), l->slope, batch * shape3_count(l->out),
                                  in, out);
    case LAYER_SOFTMAX: {
        int columns = softmax_columns(l);
        return softmax_forward(ctx, batch * shape3_count(l->out) / columns, columns, in, out);
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
    return CLCNN_OK;
}

static clcnn_status forward_layer(clcnn_net *net, int i, int batch) {
    layer *l = &net->layers[i];
    const int in = storage_of(net, i - 1), out = storage_of(net, i);
    if (!is_opencl(net)) {
        layer_forward_ref(l, batch, net->host_outputs[in], net->host_outputs[out]);
        return CLCNN_OK;
    }
    return layer_forward_opencl(net->ctx, l, batch, net->device_outputs[in],
                                net->device_outputs[out]);
}

clcnn_status net_forward_stored(clcnn_net *net, int batch) {
    clcnn_status status = CLCNN_OK;
    for (int i = 1; i < net->layer_count && status == CLCNN_OK; i++)
        status = forward_layer(net, i, batch);
    return status;
}

/* Copies count floats of a layer's stored output, starting at image 0, to the host. */
clcnn_status net_read_output(clcnn_net *net, int i, int64_t count, float *values) {
    if (!is_opencl(net)) {
        memcpy(values, net->host_outputs[storage_of(net, i)], sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return buffer_read(net->ctx, net->device_outputs[storage_of(net, i)], 0,
                       sizeof(float) * (size_t)count, values);
}

clcnn_status net_read_output_async(clcnn_net *net, int i, int64_t count, float *values) {
    if (!is_opencl(net)) {
        memcpy(values, net->host_outputs[storage_of(net, i)], sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return cl_check(net->ctx,
                    clEnqueueReadBuffer(net->ctx->queue, net->device_outputs[storage_of(net, i)],
                                        CL_FALSE, 0, sizeof(float) * (size_t)count, values, 0,
                                        NULL, NULL),
                    "clEnqueueReadBuffer");
}

clcnn_status net_write_input(clcnn_net *net, const float *input, int batch) {
    size_t bytes = sizeof(float) * (size_t)(batch * clcnn_net_input_size(net));
    if (!is_opencl(net)) {
        memcpy(net->host_outputs[0], input, bytes);
        return CLCNN_OK;
    }
    return buffer_write(net->ctx, net->device_outputs[0], 0, bytes, input);
}

/* Kernels index with int: a chunk keeps every activation below 2^31 floats. */
int64_t net_largest_activation(const clcnn_net *net) {
    int64_t largest = 1;
    for (int i = 0; i < net->layer_count; i++)
        if (shape3_count(net->layers[i].out) > largest)
            largest = shape3_count(net->layers[i].out);
    return largest;
}

static clcnn_status check_device(clcnn_net *net) {
    if (!net->ctx->has_device)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "no device selected: call clcnn_context_select_device first");
    return CLCNN_OK;
}

clcnn_status clcnn_net_forward(clcnn_net *net, const float *input, int64_t batch, float *output,
                               clcnn_trace_fn trace, void *trace_user) {
    if (!net || !input || !output || batch < 0)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_forward: invalid argument");
    clcnn_status status = check_device(net);
    if (status != CLCNN_OK || batch == 0)
        return status;
    const int64_t largest = net_largest_activation(net);
    int64_t chunk = batch < FORWARD_CHUNK ? batch : FORWARD_CHUNK;
    if (chunk > INT32_MAX / largest)
        chunk = INT32_MAX / largest;
    if (chunk < 1)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE, "a single image's activations are too large");
    status = net_ensure_activations(net, chunk, 0);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status != CLCNN_OK)
        return status;
    float *trace_buffer = NULL;
    if (trace) {
        trace_buffer = malloc(sizeof(float) * (size_t)(chunk * largest));
        if (!trace_buffer)
            return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tracing");
    }
    const int64_t in_size = clcnn_net_input_size(net);
    const int64_t out_size = clcnn_net_output_size(net);
    const int last = net->layer_count - 1;
    for (int64_t first = 0; first < batch && status == CLCNN_OK; first += chunk) {
        const int count = (int)(batch - first < chunk ? batch - first : chunk);
        status = net_write_input(net, input + first * in_size, count);
        for (int i = 1; i <= last && status == CLCNN_OK; i++) {
            status = forward_layer(net, i, count);
            if (status == CLCNN_OK && trace) {
                status = net_read_output(net, i, count * shape3_count(net->layers[i].out),
                                     trace_buffer);
                if (status == CLCNN_OK)
                    status = trace(trace_user, i, trace_buffer, first, count);
            }
        }
        if (status == CLCNN_OK)
            status = net_read_output(net, last, count * out_size, output + first * out_size);
    }
    free(trace_buffer);
    return status;
}

/* ---- losses ---------------------------------------------------------------------------------- */

const char *clcnn_loss_name(clcnn_loss loss) {
    switch (loss) {
    case CLCNN_LOSS_AUTO:
        return "auto";
    case CLCNN_LOSS_CROSS_ENTROPY:
        return "cross-entropy";
    case CLCNN_LOSS_BINARY_CROSS_ENTROPY:
        return "binary cross-entropy";
    case CLCNN_LOSS_MSE:
        return "mean squared error";
    }
    return "unknown";
}

clcnn_loss clcnn_net_loss(const clcnn_net *net) {
    return net ? net->loss.kind : CLCNN_LOSS_AUTO;
}

clcnn_status clcnn_net_set_loss(clcnn_net *net, clcnn_loss kind) {
    if (!net)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    const int last = net->layer_count - 1;
    const layer *final = &net->layers[last];
    if (kind == CLCNN_LOSS_AUTO) {
        if (final->type == LAYER_SOFTMAX)
            kind = CLCNN_LOSS_CROSS_ENTROPY;
        else if (final->type == LAYER_SIGMOID && shape3_count(final->out) == 1)
            kind = CLCNN_LOSS_BINARY_CROSS_ENTROPY;
        else
            kind = CLCNN_LOSS_MSE;
    }
    loss_plan plan = {kind, last, last};
    /* Cross-entropy on a softmax (and BCE on a sigmoid) is computed from the
     * layer's input: the fused gradient is exact and log of a rounded
     * probability is avoided. */
    if (kind == CLCNN_LOSS_CROSS_ENTROPY && final->type == LAYER_SOFTMAX && last >= 1)
        plan.logits_layer = plan.backward_from = last - 1;
    if (kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY && final->type == LAYER_SIGMOID && last >= 1)
        plan.logits_layer = plan.backward_from = last - 1;
    const layer *logits = &net->layers[plan.logits_layer];
    if (last == 0)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE, "the network has no layer to train");
    if (kind == CLCNN_LOSS_CROSS_ENTROPY && logits->out.ndim != 1)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE,
                         "cross-entropy needs a vector of class scores, but %s gives %dx%dx%d",
                         logits->name, logits->out.c, logits->out.h, logits->out.w);
    if (kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY && shape3_count(logits->out) != 1)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE,
                         "binary cross-entropy needs one output unit, but %s gives %lld",
                         logits->name, (long long)shape3_count(logits->out));
    net->loss = plan;
    return CLCNN_OK;
}

/* Puts labels or targets for the loss into the host staging arrays, checking them. */
clcnn_status net_stage_targets(clcnn_net *net, int batch, const int32_t *labels,
                                  const float *targets) {
    clcnn_context *ctx = net->ctx;
    const layer *logits = &net->layers[net->loss.logits_layer];
    const int64_t units = shape3_count(logits->out);
    switch (net->loss.kind) {
    case CLCNN_LOSS_CROSS_ENTROPY:
        if (!labels)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "cross-entropy needs integer class labels");
        for (int i = 0; i < batch; i++) {
            if (labels[i] < 0 || labels[i] >= units)
                return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                                 "label %d of image %d is not a class of the %lld outputs",
                                 (int)labels[i], i, (long long)units);
            net->host_labels[i] = labels[i];
        }
        return CLCNN_OK;
    case CLCNN_LOSS_BINARY_CROSS_ENTROPY:
        for (int i = 0; i < batch; i++) {
            float t = targets ? targets[i] : labels ? (float)labels[i] : NAN;
            if (!(t >= 0.0f && t <= 1.0f))
                return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                                 "binary cross-entropy needs targets in [0, 1]; image %d has %g",
                                 i, (double)t);
            net->host_targets[i] = t;
        }
        return CLCNN_OK;
    case CLCNN_LOSS_MSE:
    case CLCNN_LOSS_AUTO:
        if (targets) {
            memcpy(net->host_targets, targets, sizeof(float) * (size_t)(batch * units));
            return CLCNN_OK;
        }
        if (!labels)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "MSE needs targets or labels");
        for (int i = 0; i < batch; i++) {
            if (labels[i] < 0 || labels[i] >= units)
                return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                                 "label %d of image %d is not one of the %lld outputs",
                                 (int)labels[i], i, (long long)units);
            for (int64_t j = 0; j < units; j++)
                net->host_targets[i * units + j] = j == labels[i] ? 1.0f : 0.0f;
        }
        return CLCNN_OK;
    }
    return CLCNN_OK;
}

static clcnn_status compute_loss(clcnn_net *net, int batch) {
    clcnn_context *ctx = net->ctx;
    const int logits_index = storage_of(net, net->loss.logits_layer);
    const int grad_index = storage_of(net, net->loss.backward_from);
    const int units = (int)shape3_count(net->layers[net->loss.logits_layer].out);
    clcnn_status status = CLCNN_OK;
    if (!is_opencl(net)) {
        const float *logits = net->host_outputs[logits_index];
        float *grad = net->host_output_grads[grad_index];
        if (net->loss.kind == CLCNN_LOSS_CROSS_ENTROPY)
            softmax_cross_entropy_ref(batch, units, logits, net->host_labels, net->host_losses,
                                      grad);
        else if (net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY)
            sigmoid_binary_cross_entropy_ref(batch, logits, net->host_targets, net->host_losses,
                                             grad);
        else
            mean_squared_error_ref(batch, units, logits, net->host_targets, net->host_losses,
                                   grad);
    } else {
        cl_mem logits = net->device_outputs[logits_index];
        cl_mem grad = net->device_output_grads[grad_index];
        if (net->loss.kind == CLCNN_LOSS_CROSS_ENTROPY) {
            status = buffer_write_async(ctx, net->device_labels, 0,
                                        sizeof(int32_t) * (size_t)batch, net->host_labels);
            if (status == CLCNN_OK)
                status = softmax_cross_entropy(ctx, batch, units, logits, net->device_labels,
                                               net->device_losses, grad);
        } else {
            int64_t count = net->loss.kind == CLCNN_LOSS_MSE ? (int64_t)batch * units : batch;
            status = buffer_write_async(ctx, net->device_targets, 0,
                                        sizeof(float) * (size_t)count, net->host_targets);
            if (status == CLCNN_OK && net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY)
                status = sigmoid_binary_cross_entropy(ctx, batch, logits, net->device_targets,
                                                      net->device_losses, grad);
            else if (status == CLCNN_OK)
                status = mean_squared_error(ctx, batch, units, logits, net->device_targets,
                                            net->device_losses, grad);
        }
    }
    return status;
}

clcnn_status net_read_loss(clcnn_net *net, int batch, double *loss) {
    if (is_opencl(net)) {
        clcnn_status status = buffer_read(net->ctx, net->device_losses, 0,
                                          sizeof(float) * (size_t)batch, net->host_losses);
        if (status != CLCNN_OK)
            return status;
    }
    clcnn_status status = CLCNN_OK;
    double sum = 0.0;
    for (int i = 0; i < batch; i++)
        sum += net->host_losses[i];
    *loss = sum / batch;
    return status;
}

/* ---- backward ------------------------------------------------------------------------------ */

/* The gradient of the network's input is only wanted by clcnn_net_backward's
 * callers; training skips it, which saves the first layer's data gradient. */
static int wants_grad_input(const clcnn_net *net, int i) {
    return storage_of(net, i - 1) != 0 || net->want_input_gradient;
}

static void layer_backward_ref(clcnn_net *net, int i, int batch) {
    layer *l = &net->layers[i];
    const float *in = net->host_outputs[storage_of(net, i - 1)];
    const float *out = net->host_outputs[storage_of(net, i)];
    const float *grad_out = net->host_output_grads[storage_of(net, i)];
    float *grad_in = net->host_output_grads[storage_of(net, i - 1)];
    if (!wants_grad_input(net, i)) {
        if (!layer_has_parameters(l))
            return;
        grad_in = NULL;
    }
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = layer_conv2d_params(l, batch);
        if (grad_in)
            conv2d_backward_data_ref(&p, grad_out, l->weight, grad_in);
        conv2d_backward_weights_ref(&p, in, grad_out, l->weight_grad, l->bias_grad);
        break;
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        pool2d_backward_ref(&p, in, grad_out, grad_in);
        break;
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        dense_backward_ref(&p, in, l->weight, grad_out, grad_in, l->weight_grad, l->bias_grad);
        break;
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        activation_backward_ref(activation_of(l), l->slope, batch * shape3_count(l->out),
                                l->type == LAYER_LEAKY ? in : out, grad_out, grad_in);
        break;
    case LAYER_SOFTMAX: {
        int columns = softmax_columns(l);
        softmax_backward_ref(batch * shape3_count(l->out) / columns, columns, out, grad_out,
                             grad_in);
        break;
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
}

static clcnn_status layer_backward_opencl(clcnn_net *net, int i, int batch) {
    clcnn_context *ctx = net->ctx;
    layer *l = &net->layers[i];
    cl_mem in = net->device_outputs[storage_of(net, i - 1)];
    cl_mem out = net->device_outputs[storage_of(net, i)];
    cl_mem grad_out = net->device_output_grads[storage_of(net, i)];
    cl_mem grad_in = net->device_output_grads[storage_of(net, i - 1)];
    if (!wants_grad_input(net, i)) {
        if (!layer_has_parameters(l))
            return CLCNN_OK;
        grad_in = NULL;
    }
    switch (l->type) {
    case LAYER_CONV: {
        conv2d_params p = layer_conv2d_params(l, batch);
        clcnn_status status = CLCNN_OK;
        if (grad_in)
            status = conv2d_backward_data(ctx, &p, grad_out, l->weight_buffer, grad_in);
        if (status != CLCNN_OK)
            return status;
        return conv2d_backward_weights(ctx, &p, in, grad_out, l->weight_grad_buffer,
                                       l->bias_grad_buffer, net->device_scratch);
    }
    case LAYER_MAXPOOL:
    case LAYER_AVGPOOL: {
        pool2d_params p = pool_params(l, batch);
        return pool2d_backward(ctx, &p, in, grad_out, grad_in);
    }
    case LAYER_DENSE: {
        dense_params p = dense_layer_params(l, batch);
        return dense_backward(ctx, &p, in, l->weight_buffer, grad_out, grad_in,
                              l->weight_grad_buffer, l->bias_grad_buffer);
    }
    case LAYER_RELU:
    case LAYER_LEAKY:
    case LAYER_SIGMOID:
    case LAYER_TANH:
        /* Leaky decides on its input's sign (see ops.h). */
        return activation_backward(ctx, activation_of(l), l->slope, batch * shape3_count(l->out),
                                   l->type == LAYER_LEAKY ? in : out, grad_out, grad_in);
    case LAYER_SOFTMAX: {
        int columns = softmax_columns(l);
        return softmax_backward(ctx, batch * shape3_count(l->out) / columns, columns, out,
                                grad_out, grad_in);
    }
    case LAYER_INPUT:
    case LAYER_FLATTEN:
    case LAYER_TYPE_COUNT:
        break;
    }
    return CLCNN_OK;
}

clcnn_status clcnn_net_backward(clcnn_net *net, const float *input, int64_t batch,
                                const int32_t *labels, const float *targets, double *loss) {
    if (!net || !input || !loss || batch < 1)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_backward: invalid argument");
    clcnn_status status = check_device(net);
    if (status != CLCNN_OK)
        return status;
    if (batch > INT32_MAX / net_largest_activation(net))
        return set_error(net->ctx, CLCNN_ERROR_SHAPE,
                         "a batch of %lld images is too large for one pass", (long long)batch);
    if (net->loss.kind == CLCNN_LOSS_AUTO) {
        status = clcnn_net_set_loss(net, CLCNN_LOSS_AUTO);
        if (status != CLCNN_OK)
            return status;
    }
    status = net_ensure_activations(net, batch, 1);
    if (status == CLCNN_OK)
        status = net_stage_targets(net, (int)batch, labels, targets);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status == CLCNN_OK)
        status = net_write_input(net, input, (int)batch);
    if (status == CLCNN_OK)
        status = net_forward_stored(net, (int)batch);
    net->want_input_gradient = 1;
    if (status == CLCNN_OK)
        status = net_backward_stored(net, (int)batch);
    net->want_input_gradient = 0;
    if (status == CLCNN_OK)
        status = net_read_loss(net, (int)batch, loss);
    return status;
}

clcnn_status net_backward_stored(clcnn_net *net, int batch) {
    clcnn_status status = compute_loss(net, batch);
    for (int i = net->loss.backward_from; i >= 1 && status == CLCNN_OK; i--) {
        if (is_opencl(net))
            status = layer_backward_opencl(net, i, batch);
        else
            layer_backward_ref(net, i, batch);
    }
    net->gradient_batch = batch;
    net->has_input_gradient = net->want_input_gradient;
    return status;
}

clcnn_status clcnn_net_get_gradient(clcnn_net *net, const char *layer_name, const char *which,
                                    float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    if (net->gradient_batch == 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "no gradients yet: run clcnn_net_backward first");
    if (strcmp(layer_name, "input") == 0 && strcmp(which, "input") == 0) {
        if (!net->has_input_gradient)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "the last pass was a training step, which skips the input gradient");
        int64_t expected = net->gradient_batch * clcnn_net_input_size(net);
        if (count != expected)
            return set_error(ctx, CLCNN_ERROR_SHAPE, "the input gradient has %lld values, not %lld",
                             (long long)expected, (long long)count);
        if (!is_opencl(net)) {
            memcpy(values, net->host_output_grads[0], sizeof(float) * (size_t)count);
            return CLCNN_OK;
        }
        return buffer_read(ctx, net->device_output_grads[0], 0, sizeof(float) * (size_t)count,
                           values);
    }
    const layer *l = NULL;
    for (int i = 0; i < net->layer_count && !l; i++)
        if (strcmp(net->layers[i].name, layer_name) == 0)
            l = &net->layers[i];
    if (!l)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no layer named '%s'", layer_name);
    int is_bias = strcmp(which, "bias") == 0;
    if (!is_bias && strcmp(which, "weight") != 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "gradient '%s': expected 'weight' or 'bias'", which);
    int64_t expected = is_bias ? l->bias_count : l->weight_count;
    if (expected == 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "layer %s has no %s", l->name, which);
    if (count != expected)
        return set_error(ctx, CLCNN_ERROR_SHAPE, "layer %s: the %s gradient has %lld values, not %lld",
                         l->name, which, (long long)expected, (long long)count);
    int64_t offset = is_bias ? l->bias_offset : l->weight_offset;
    if (!is_opencl(net)) {
        memcpy(values, net->host_gradients + offset, sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return buffer_read(ctx, net->device_gradients, sizeof(float) * (size_t)offset,
                       sizeof(float) * (size_t)count, values);
}
