/* The passes over a network's graph: forward, loss and backward, on either
 * device, through the layer types' forward and backward and the memory plan
 * (plan.c). Backward walks the nodes in reverse; the first writer of a
 * gradient overwrites it and later writers (fan-out) add to it, so residual
 * connections and branches need no special case. A pass allocates nothing. */
#include "layers/layer.h"
#include "ops/add.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters and state on the device ------------------------------------------------- */

void net_host_parameters_changed(clcnn_net *net) {
    net->device_parameters_stale = 1;
    net->parameters_version++;
}

void net_device_parameters_changed(clcnn_net *net) {
    if (context_is_opencl(net->ctx))
        net->host_parameters_stale = 1;
    net->parameters_version++;
}

void net_release_device_parameters(clcnn_net *net) {
    for (int i = 0; net->prepared && i < net->layer_count; i++) {
        buffer_release(&net->prepared[i].buffer);
        net->prepared[i] = (prepared_weights){0};
    }
    for (int i = 0; i < net->tensor_count; i++) {
        buffer_release(&net->tensors[i].mem);
        buffer_release(&net->tensors[i].grad_mem);
    }
    buffer_release(&net->device_parameters);
    buffer_release(&net->device_gradients);
    buffer_release(&net->device_state);
}

static clcnn_status sub_buffer(clcnn_context *ctx, cl_mem parent, int64_t offset, int64_t count,
                               cl_mem *out) {
    *out = NULL;
    if (count == 0)
        return CLCNN_OK;
    cl_buffer_region region = {sizeof(float) * (size_t)offset, sizeof(float) * (size_t)count};
    cl_int err;
    *out =
        clCreateSubBuffer(parent, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &err);
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
        return set_error(
            ctx, CLCNN_ERROR_OPENCL,
            "the device aligns sub-buffers to %u bits, more than the %d clcnn plans for",
            align_bits, PARAMETER_ALIGN_FLOATS * 32);
    size_t bytes = sizeof(float) * (size_t)(net->parameter_floats ? net->parameter_floats : 1);
    clcnn_status status = buffer_create(ctx, bytes, &net->device_parameters);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, bytes, &net->device_gradients);
    /* The padding between tensors is never written by a kernel but is read by
     * the optimizer: it starts as zeros, like the host copy. */
    if (status == CLCNN_OK)
        status = buffer_write(ctx, net->device_gradients, 0, bytes, net->host_gradients);
    if (status == CLCNN_OK)
        status =
            buffer_create(ctx, sizeof(float) * (size_t)(net->state_floats ? net->state_floats : 1),
                          &net->device_state);
    for (int i = 0; i < net->tensor_count && status == CLCNN_OK; i++) {
        named_tensor *t = &net->tensors[i];
        const int parameter = t->kind == TENSOR_PARAMETER;
        status = sub_buffer(ctx, parameter ? net->device_parameters : net->device_state, t->offset,
                            t->count, &t->mem);
        if (status == CLCNN_OK && parameter)
            status = sub_buffer(ctx, net->device_gradients, t->offset, t->count, &t->grad_mem);
    }
    if (status != CLCNN_OK)
        net_release_device_parameters(net);
    return status;
}

clcnn_status net_sync_parameters_to_device(clcnn_net *net) {
    if (!context_is_opencl(net->ctx))
        return CLCNN_OK;
    if (!net->device_parameters) {
        clcnn_status status = create_device_parameters(net);
        if (status != CLCNN_OK)
            return status;
        net_host_parameters_changed(net);
    }
    if (!net->device_parameters_stale)
        return CLCNN_OK;
    clcnn_status status =
        buffer_write(net->ctx, net->device_parameters, 0,
                     sizeof(float) * (size_t)net->parameter_floats, net->host_parameters);
    if (status == CLCNN_OK && net->state_floats)
        status = buffer_write(net->ctx, net->device_state, 0,
                              sizeof(float) * (size_t)net->state_floats, net->host_state);
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
    if (status == CLCNN_OK && net->state_floats)
        status = buffer_read(net->ctx, net->device_state, 0,
                             sizeof(float) * (size_t)net->state_floats, net->host_state);
    if (status == CLCNN_OK)
        net->host_parameters_stale = 0;
    return status;
}

/* ---- storage ----------------------------------------------------------------------------- */

static buf activation(const clcnn_net *net, int node) {
    const int root = net->plan.root[node];
    buf caller = {0};
    caller.mem = root == 0                                      ? net->caller_input
                 : root == net->plan.root[net->layer_count - 1] ? net->caller_output
                                                                : NULL;
    return caller.mem ? caller : net->plan.slots[net->plan.out_slot[node]];
}

static buf gradient(const clcnn_net *net, int node) {
    return net->plan.grad_slots[net->plan.grad_slot[node]];
}

/* A tensor's values (or its gradient) on the context's device. */
static buf tensor_buf(const clcnn_net *net, const named_tensor *t, int want_gradient) {
    buf b = {0};
    if (context_is_opencl(net->ctx)) {
        b.mem = want_gradient ? t->grad_mem : t->mem;
        return b;
    }
    if (want_gradient)
        b.host = net->host_gradients + t->offset;
    else
        b.host = (t->kind == TENSOR_PARAMETER ? net->host_parameters : net->host_state) + t->offset;
    return b;
}

static void fill_tensors(const clcnn_net *net, const layer *l, layer_pass *p, int gradients) {
    for (int k = 0; k < l->tensor_count; k++) {
        const named_tensor *t = &net->tensors[l->first_tensor + k];
        p->tensor[k] = tensor_buf(net, t, 0);
        if (gradients && t->kind == TENSOR_PARAMETER)
            p->tensor_grad[k] = tensor_buf(net, t, 1);
    }
}

/* Copies count floats of a node's stored output, starting at image 0, to the host. */
clcnn_status net_read_output(clcnn_net *net, int i, int64_t count, float *values) {
    const buf b = activation(net, i);
    if (!context_is_opencl(net->ctx)) {
        memcpy(values, b.host, sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return buffer_read(net->ctx, b.mem, 0, sizeof(float) * (size_t)count, values);
}

clcnn_status net_read_output_async(clcnn_net *net, int i, int64_t count, float *values) {
    const buf b = activation(net, i);
    if (!context_is_opencl(net->ctx)) {
        memcpy(values, b.host, sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return cl_check(net->ctx,
                    clEnqueueReadBuffer(net->ctx->queue, b.mem, CL_FALSE, 0,
                                        sizeof(float) * (size_t)count, values, 0, NULL, NULL),
                    "clEnqueueReadBuffer");
}

clcnn_status net_write_input(clcnn_net *net, const float *input, int batch) {
    size_t bytes = sizeof(float) * (size_t)(batch * clcnn_net_input_size(net));
    const buf b = activation(net, 0);
    if (!context_is_opencl(net->ctx)) {
        memcpy(b.host, input, bytes);
        return CLCNN_OK;
    }
    return buffer_write(net->ctx, b.mem, 0, bytes, input);
}

/* ---- the caller's arrays in place ------------------------------------------------------------ */

/* On a device that shares the host's memory (a CPU), clcnn_net_forward's
 * kernels read the caller's input and write the caller's output where they
 * are: copying them in and out had taken 2.4 times as long as the
 * batchnorm between them (64 channels, 56 x 56, batch 32). The output is
 * wrapped unless there is none (clcnn_net_backward), the last node's
 * storage is the input's (a network of views) or the two arrays overlap,
 * when a layer could write images that another still has to read. */
static int overlap(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + b_bytes && y < x + a_bytes;
}

/* The caller's array as a buffer over it; only read where flags say so
 * (no map then writes it back). */
static clcnn_status wrap_caller_array(clcnn_net *net, const void *array, size_t bytes,
                                      cl_mem_flags flags, cl_mem *out, const char *what) {
    cl_int err;
    *out = clCreateBuffer(net->ctx->cl, CL_MEM_USE_HOST_PTR | flags, bytes, (void *)array, &err);
    if (err == CL_SUCCESS)
        return CLCNN_OK;
    char call[64];
    snprintf(call, sizeof(call), "clCreateBuffer (the caller's %s)", what);
    return cl_check(net->ctx, err, call);
}

static clcnn_status wrap_caller_arrays(clcnn_net *net, const float *input, size_t in_bytes,
                                       float *output, size_t out_bytes) {
    clcnn_status status =
        wrap_caller_array(net, input, in_bytes, CL_MEM_READ_ONLY, &net->caller_input, "input");
    if (status != CLCNN_OK || !output || net->plan.root[net->layer_count - 1] == 0 ||
        overlap(input, in_bytes, output, out_bytes))
        return status;
    return wrap_caller_array(net, output, out_bytes, 0, &net->caller_output, "output");
}

/* Mapping a CL_MEM_USE_HOST_PTR buffer is what makes the device's writes
 * show in the caller's array; the queue is in order, so the map follows
 * every kernel, the unmap the map, and the finish waits for all of them:
 * the caller may free both arrays on return. The map does not block: the
 * pointer it returns goes only to the unmap, and one wait for the queue
 * instead of two takes a round trip to the device's threads off every call
 * (on PoCL's CPU device ~30 us, a trivial network's forward 70 -> 40 us). */
static clcnn_status release_caller_arrays(clcnn_net *net, clcnn_status status) {
    cl_command_queue queue = net->ctx->queue;
    if (status == CLCNN_OK && net->caller_output) {
        size_t bytes = 0;
        clGetMemObjectInfo(net->caller_output, CL_MEM_SIZE, sizeof(bytes), &bytes, NULL);
        cl_int err;
        void *mapped = clEnqueueMapBuffer(queue, net->caller_output, CL_FALSE, CL_MAP_READ, 0,
                                          bytes, 0, NULL, NULL, &err);
        if (err == CL_SUCCESS)
            err = clEnqueueUnmapMemObject(queue, net->caller_output, mapped, 0, NULL, NULL);
        status = cl_check(net->ctx, err, "clEnqueueMapBuffer (the caller's output)");
    }
    clFinish(queue);
    buffer_release(&net->caller_input);
    buffer_release(&net->caller_output);
    buffer_release(&net->caller_targets);
    return status;
}

/* Kernels index with int: a chunk keeps every activation below 2^31 floats. */
int64_t net_largest_activation(const clcnn_net *net) {
    int64_t largest = 1;
    for (int i = 0; i < net->layer_count; i++)
        if (shape3_count(net->layers[i].out) > largest)
            largest = shape3_count(net->layers[i].out);
    return largest;
}

/* ---- forward ------------------------------------------------------------------------------- */

/* The pass of node i's forward. first_image: the place of the batch's first
 * image among the pass's images, which keys random draws (a chunk of a long
 * forward pass draws its own). before_backward: a backward follows, so the
 * node gets the storage in which it keeps values for it. */
static layer_pass forward_pass(clcnn_net *net, int i, int batch, int training, int64_t first_image,
                               int before_backward) {
    const layer *l = &net->layers[i];
    layer_pass p;
    memset(&p, 0, sizeof(p));
    p.ctx = net->ctx;
    p.batch = batch;
    p.training = training && !net->frozen[i];
    p.seed = hash_bytes(net->random_seed, &i, sizeof(i));
    p.first_image = first_image;
    p.sync = training ? net->sync : NULL;
    p.input_count = l->input_count;
    for (int k = 0; k < l->input_count; k++) {
        p.in[k] = activation(net, l->inputs[k]);
        p.in_shape[k] = net->layers[l->inputs[k]].out;
    }
    p.out = activation(net, i);
    if (before_backward && net->plan.saved)
        p.saved = net->plan.saved[i];
    fill_tensors(net, l, &p, 0);
    if (!training && net->prepared) {
        p.prepared = &net->prepared[i];
        p.prepared->version = net->parameters_version;
    }
    return p;
}

/* Node i is a relu that its input runs inside itself (plan.c). */
static int relu_of_fused_pair(const clcnn_net *net, int i) {
    const layer *l = &net->layers[i];
    return l->input_count == 1 && net->plan.fused_relu[l->inputs[0]] == i;
}

/* Node i is an add that its input named here runs inside itself (plan.c), or -1. */
static int adder_of_fused_add(const clcnn_net *net, int i) {
    const layer *l = &net->layers[i];
    for (int k = 0; k < l->input_count; k++)
        if (net->plan.fused_add[l->inputs[k]] == i)
            return l->inputs[k];
    return -1;
}

/* A node with a fused add runs it, and the add's fused relu (plan.c). */
static void fill_fused_add(const clcnn_net *net, int i, layer_pass *p) {
    const int add = net->plan.fused_add[i];
    if (add < 0)
        return;
    p->relu = net->plan.fused_relu[add] >= 0;
    p->add_in = activation(net, fused_add_other_input(net, i));
}

/* fuse: a fused pair runs as one node; 0: each node apart, the relu or add
 * in place on the storage the pair shares (every node's own output shows). */
static clcnn_status forward_node(clcnn_net *net, int i, int batch, int training,
                                 int64_t first_image, int before_backward, int fuse) {
    const layer *l = &net->layers[i];
    /* A rank without images (batch 0) runs only the layers that synchronise
     * (in training, when not frozen). */
    if (!l->type->forward || (batch == 0 && !(l->type->sync_floats && training && !net->frozen[i])))
        return CLCNN_OK;
    if (fuse && (relu_of_fused_pair(net, i) || adder_of_fused_add(net, i) >= 0))
        return CLCNN_OK;
    layer_pass p = forward_pass(net, i, batch, training, first_image, before_backward);
    p.relu = fuse && net->plan.fused_relu[i] >= 0;
    if (fuse)
        fill_fused_add(net, i, &p);
    /* A train-mode forward updates state tensors (running statistics): on a
     * device their host copy is then stale. */
    for (int k = 0; training && k < l->tensor_count; k++)
        if (net->tensors[l->first_tensor + k].kind == TENSOR_STATE) {
            net_device_parameters_changed(net);
            break;
        }
    return l->type->forward(l, &p);
}

clcnn_status net_fold_layers(clcnn_net *net) {
    memory_plan *plan = &net->plan;
    if (plan->folds_made && plan->folds_made_at == net->parameters_version)
        return CLCNN_OK;
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++) {
        const int j = plan->folded_into[i];
        if (j < 0)
            continue;
        const layer *l = &net->layers[i], *folding = &net->layers[j];
        layer_pass own, theirs;
        memset(&own, 0, sizeof(own));
        memset(&theirs, 0, sizeof(theirs));
        fill_tensors(net, l, &own, 0);
        fill_tensors(net, folding, &theirs, 0);
        const int per_channel = (int)(l->weight_count / folding->in.c);
        status = folding->type->fold(folding, net->ctx, theirs.tensor, per_channel, own.tensor[0],
                                     own.tensor[1], plan->folded[i][0], plan->folded[i][1]);
    }
    plan->folds_made = status == CLCNN_OK;
    plan->folds_made_at = net->parameters_version;
    return status;
}

/* Node i is computed by the node that folds into it (its input). */
static int computed_by_fold(const clcnn_net *net, int i) {
    const layer *l = &net->layers[i];
    return l->input_count == 1 && net->plan.folded_into[l->inputs[0]] == i;
}

/* Node i folds into a node with a fused relu and can run that relu itself. */
static int relu_runs_in_fold(const clcnn_net *net, int i) {
    const int j = net->plan.folded_into[i];
    return j >= 0 && net->plan.fused_relu[j] >= 0 && net->layers[i].type->fuses_relu;
}

clcnn_status net_forward_folded(clcnn_net *net, int batch, int64_t first_image) {
    const memory_plan *plan = &net->plan;
    clcnn_status status = CLCNN_OK;
    for (int i = 1; i < net->layer_count && status == CLCNN_OK; i++) {
        const layer *l = &net->layers[i];
        const int j = plan->folded_into[i];
        if (computed_by_fold(net, i))
            continue;
        /* An add fused into a node a fold computed runs after it, in place,
         * with its own fused relu. */
        const int adder = adder_of_fused_add(net, i);
        if (adder >= 0 && computed_by_fold(net, adder)) {
            layer_pass p = forward_pass(net, i, batch, 0, first_image, 0);
            p.relu = plan->fused_relu[i] >= 0;
            status = l->type->forward(l, &p);
            continue;
        }
        if (j < 0) {
            /* A fused relu whose input did not run runs apart, unless the
             * node folding into that input ran it. */
            const int input_skipped =
                relu_of_fused_pair(net, i) && computed_by_fold(net, l->inputs[0]);
            if (input_skipped && relu_runs_in_fold(net, net->layers[l->inputs[0]].inputs[0]))
                continue;
            status = forward_node(net, i, batch, 0, first_image, 0, !input_skipped);
            continue;
        }
        layer_pass p = forward_pass(net, i, batch, 0, first_image, 0);
        p.tensor[0] = plan->folded[i][0];
        p.tensor[1] = plan->folded[i][1];
        p.out = activation(net, j);
        p.relu = relu_runs_in_fold(net, i);
        status = l->type->forward(l, &p);
    }
    return status;
}

clcnn_status net_forward_stored(clcnn_net *net, int batch, int training) {
    clcnn_status status = CLCNN_OK;
    for (int i = 1; i < net->layer_count && status == CLCNN_OK; i++)
        status = forward_node(net, i, batch, training, net->first_image, 1, 1);
    return status;
}

clcnn_status clcnn_net_forward(clcnn_net *net, const float *input, int64_t batch, float *output,
                               clcnn_trace_fn trace, void *trace_user) {
    if (!net || !input || !output || batch < 0)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_forward: invalid argument");
    clcnn_status status = context_require_device(net->ctx);
    if (status != CLCNN_OK || batch == 0)
        return status;
    const int64_t largest = net_largest_activation(net);
    /* In train mode batch statistics (batchnorm) are over the whole batch,
     * so it runs as one chunk (which the plan refuses if it does not fit). */
    const int training = net->mode == CLCNN_MODE_TRAIN;
    if (training && batch > INT32_MAX / largest)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE,
                         "a batch of %lld images is too large for one train-mode pass",
                         (long long)batch);
    /* Chunks large enough that a layer's weights are read once for many
     * images (a dense layer over 2048 images is one GEMM), small enough that
     * the activations of large networks fit comfortably. */
    int64_t chunk = net->forward_chunk_floats / largest;
    if (training || chunk > batch)
        chunk = batch;
    if (chunk < 1)
        chunk = 1;
    if (chunk > INT32_MAX / largest)
        chunk = INT32_MAX / largest;
    /* Fewer images per chunk when one layer's outputs would not fit one
     * device buffer; the plan then checks the device's whole memory. */
    const clcnn_context *ctx = net->ctx;
    if (!training && context_is_opencl(ctx) &&
        (uint64_t)chunk * sizeof(float) * (uint64_t)largest > ctx->max_alloc_bytes)
        chunk = (int64_t)(ctx->max_alloc_bytes / (sizeof(float) * (uint64_t)largest));
    if (chunk < 1) {
        int widest = 0;
        for (int i = 1; i < net->layer_count; i++)
            if (shape3_count(net->layers[i].out) == largest && widest == 0)
                widest = i;
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                         "layer %s: the output of one image takes %.1f MiB, more than the device "
                         "allows in one buffer (%.1f MiB, CL_DEVICE_MAX_MEM_ALLOC_SIZE)",
                         net->layers[widest].name, (double)largest * sizeof(float) / 1048576.0,
                         (double)ctx->max_alloc_bytes / 1048576.0);
    }
    /* Chunks the device holds: the plan refuses, before allocating anything,
     * what exceeds the device's memory; halving the chunk until it fits
     * processes any batch whose single images fit. Train mode needs the
     * whole batch in one chunk, and its refusal stands. */
    status =
        training ? net_ensure_activations(net, chunk, 0) : net_ensure_inference_chunk(net, &chunk);
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
    /* Tracing shows every layer's own output, so it runs unfolded. */
    const int fold = !training && !trace;
    if (fold)
        status = net_fold_layers(net);
    const int64_t in_size = clcnn_net_input_size(net);
    const int64_t out_size = clcnn_net_output_size(net);
    const int last = net->layer_count - 1;
    const int in_place = context_is_opencl(ctx) && ctx->config.zero_copy;
    for (int64_t first = 0; first < batch && status == CLCNN_OK; first += chunk) {
        const int count = (int)(batch - first < chunk ? batch - first : chunk);
        const size_t in_bytes = sizeof(float) * (size_t)(count * in_size);
        const size_t out_bytes = sizeof(float) * (size_t)(count * out_size);
        status = in_place ? wrap_caller_arrays(net, input + first * in_size, in_bytes,
                                               output + first * out_size, out_bytes)
                          : net_write_input(net, input + first * in_size, count);
        if (status == CLCNN_OK && fold)
            status = net_forward_folded(net, count, net->first_image + first);
        for (int i = 1; i <= last && status == CLCNN_OK && !fold; i++) {
            status = forward_node(net, i, count, training, net->first_image + first, 0, !trace);
            if (status == CLCNN_OK && trace) {
                status =
                    net_read_output(net, i, count * shape3_count(net->layers[i].out), trace_buffer);
                if (status == CLCNN_OK)
                    status = trace(trace_user, i, trace_buffer, first, count);
            }
        }
        if (status == CLCNN_OK && !net->caller_output)
            status = net_read_output(net, last, count * out_size, output + first * out_size);
        if (in_place)
            status = release_caller_arrays(net, status);
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
        if (final->type->fused_loss == CLCNN_LOSS_CROSS_ENTROPY)
            kind = CLCNN_LOSS_CROSS_ENTROPY;
        else if (final->type->fused_loss == CLCNN_LOSS_BINARY_CROSS_ENTROPY &&
                 shape3_count(final->out) == 1)
            kind = CLCNN_LOSS_BINARY_CROSS_ENTROPY;
        else
            kind = CLCNN_LOSS_MSE;
    }
    loss_plan plan = {kind, last};
    /* Cross-entropy on a softmax (and BCE on a sigmoid) is computed from the
     * layer's input: the fused gradient is exact and log of a rounded
     * probability is avoided. */
    if (kind == final->type->fused_loss && last >= 1)
        plan.logits_layer = final->inputs[0];
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
                             "cross-entropy needs integer class labels, not float targets");
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
                                 "binary cross-entropy needs targets in [0, 1]; image %d has %g", i,
                                 (double)t);
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
    const buf logits_storage = activation(net, net->loss.logits_layer);
    const buf grad_storage = gradient(net, net->loss.logits_layer);
    const int units = (int)shape3_count(net->layers[net->loss.logits_layer].out);
    clcnn_status status = CLCNN_OK;
    if (!context_is_opencl(ctx)) {
        const float *logits = logits_storage.host;
        float *grad = grad_storage.host;
        if (net->loss.kind == CLCNN_LOSS_CROSS_ENTROPY)
            softmax_cross_entropy_ref(batch, units, logits, net->host_labels, net->host_losses,
                                      grad);
        else if (net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY)
            sigmoid_binary_cross_entropy_ref(batch, logits, net->host_targets, net->host_losses,
                                             grad);
        else
            mean_squared_error_ref(batch, units, logits, net->host_targets, net->host_losses, grad);
    } else {
        cl_mem logits = logits_storage.mem;
        cl_mem grad = grad_storage.mem;
        if (net->loss.kind == CLCNN_LOSS_CROSS_ENTROPY) {
            status = buffer_write_async(ctx, net->device_labels, 0, sizeof(int32_t) * (size_t)batch,
                                        net->host_labels);
            if (status == CLCNN_OK)
                status = softmax_cross_entropy(ctx, batch, units, logits, net->device_labels,
                                               net->device_losses, grad);
        } else {
            int64_t count = net->loss.kind == CLCNN_LOSS_MSE ? (int64_t)batch * units : batch;
            cl_mem targets = net->caller_targets ? net->caller_targets : net->device_targets;
            if (!net->caller_targets)
                status = buffer_write_async(ctx, targets, 0, sizeof(float) * (size_t)count,
                                            net->host_targets);
            if (status == CLCNN_OK && net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY)
                status = sigmoid_binary_cross_entropy(ctx, batch, logits, targets,
                                                      net->device_losses, grad);
            else if (status == CLCNN_OK)
                status = mean_squared_error(ctx, batch, units, logits, targets, net->device_losses,
                                            grad);
        }
    }
    return status;
}

clcnn_status net_read_loss(clcnn_net *net, int batch, double *loss) {
    if (context_is_opencl(net->ctx)) {
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

/* Backward stops below the lowest layer being trained: the input's gradient
 * is needed only when the caller asks for it (training does not). */
void net_needed_gradients(const clcnn_net *net, int want_input_gradient, unsigned char *needed) {
    needed[0] = (unsigned char)want_input_gradient;
    for (int i = 1; i < net->layer_count; i++) {
        const layer *l = &net->layers[i];
        int need = net_trains_layer(net, i);
        for (int k = 0; k < l->input_count; k++)
            need |= needed[l->inputs[k]];
        needed[i] = (unsigned char)need;
    }
}

static void mark_needed_gradients(clcnn_net *net) {
    net_needed_gradients(net, net->want_input_gradient, net->plan.needs_grad);
    memset(net->plan.grad_written, 0, (size_t)net->layer_count);
}

/* grad_in of a type that cannot add into its destination: computed into the
 * temporary, then added. */
static clcnn_status add_gradient(clcnn_net *net, buf from, buf to, int64_t count) {
    const int accumulate = 1;
    const buf no_relu = {0};
    return op_add_backward(net->ctx, count, 1, from, no_relu, &to, &accumulate);
}

static clcnn_status backward_node(clcnn_net *net, int i, int batch, int training) {
    memory_plan *plan = &net->plan;
    const layer *l = &net->layers[i];
    const int root = plan->root[i];
    /* Nothing below wants this node's gradient, or nothing wrote it (views
     * share their input's gradient and have nothing to do; a fused relu's
     * backward runs inside its input's). */
    if (!plan->needs_grad[i] || !plan->grad_written[root] || !l->type->backward ||
        relu_of_fused_pair(net, i) || adder_of_fused_add(net, i) >= 0)
        return CLCNN_OK;
    layer_pass p;
    memset(&p, 0, sizeof(p));
    p.ctx = net->ctx;
    p.batch = batch;
    p.training = training && !net->frozen[i];
    p.seed = hash_bytes(net->random_seed, &i, sizeof(i));
    p.first_image = net->first_image;
    p.sync = training ? net->sync : NULL;
    p.input_count = l->input_count;
    for (int k = 0; k < l->input_count; k++) {
        p.in[k] = activation(net, l->inputs[k]);
        p.in_shape[k] = net->layers[l->inputs[k]].out;
    }
    p.out = activation(net, i);
    p.grad_out = gradient(net, i);
    p.relu = plan->fused_relu[i] >= 0;
    fill_fused_add(net, i, &p);
    if (plan->fused_add[i] >= 0) {
        /* The add's backward, which node i runs, gives its other input its share. */
        const int other = fused_add_other_input(net, i);
        if (plan->needs_grad[other]) {
            p.add_grad = gradient(net, other);
            p.add_accumulate = plan->grad_written[plan->root[other]];
            plan->grad_written[plan->root[other]] = 1;
        }
    }
    p.scratch = plan->scratch;
    if (plan->saved)
        p.saved = plan->saved[i];
    /* A frozen layer's parameters get no gradient: its tensor_grad stay absent. */
    fill_tensors(net, l, &p, !net->frozen[i]);
    int redirected = -1;
    for (int k = 0; k < l->input_count; k++) {
        const int input = l->inputs[k];
        if (!plan->needs_grad[input])
            continue;
        const int input_root = plan->root[input];
        p.grad_in[k] = gradient(net, input);
        p.accumulate[k] = plan->grad_written[input_root];
        plan->grad_written[input_root] = 1;
        if (p.accumulate[k] && !(l->type->accumulates && l->type->accumulates(net->ctx, l))) {
            /* Single-input types only (layer.h): one temporary is enough,
             * planned by plan.c's gradient_temporary_floats. */
            redirected = k;
            p.grad_in[k] = plan->grad_temporary;
            p.accumulate[k] = 0;
        }
    }
    /* The gradients' bookkeeping above holds for batch 0 too, so that a
     * rank without images runs the same synchronised layers' backward. */
    if (batch == 0 && !(l->type->sync_floats && p.training))
        return CLCNN_OK;
    clcnn_status status = l->type->backward(l, &p);
    if (status == CLCNN_OK && redirected >= 0 && batch > 0)
        status =
            add_gradient(net, plan->grad_temporary, gradient(net, l->inputs[redirected]),
                         (int64_t)batch * shape3_count(net->layers[l->inputs[redirected]].out));
    return status;
}

clcnn_status net_backward_stored(clcnn_net *net, int batch, int training) {
    mark_needed_gradients(net);
    clcnn_status status = batch > 0 ? compute_loss(net, batch) : CLCNN_OK;
    const int logits = net->loss.logits_layer;
    net->plan.grad_written[net->plan.root[logits]] = 1;
    for (int i = logits; i >= 1 && status == CLCNN_OK; i--) {
        status = backward_node(net, i, batch, training);
        if (status == CLCNN_OK && net->backward_node_done)
            status = net->backward_node_done(net->backward_node_user, i);
    }
    net->gradient_batch = batch;
    net->has_input_gradient = net->want_input_gradient;
    return status;
}

clcnn_status clcnn_net_backward(clcnn_net *net, const float *input, int64_t batch,
                                const int32_t *labels, const float *targets, double *loss) {
    if (!net || !input || !loss || batch < 1)
        return set_error(net ? net->ctx : NULL, CLCNN_ERROR_INVALID_ARGUMENT,
                         "clcnn_net_backward: invalid argument");
    clcnn_status status = context_require_device(net->ctx);
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
    const int training = net->mode != CLCNN_MODE_EVAL;
    /* Set before planning, so that autotuning sees the input's gradient wanted. */
    net->want_input_gradient = 1;
    status = net_ensure_activations(net, batch, 1);
    /* The caller's input in place, as in clcnn_net_forward, for this call
     * only, and an MSE's targets (as many as the outputs) too. */
    const int in_place = context_is_opencl(net->ctx) && net->ctx->config.zero_copy;
    const size_t in_bytes = sizeof(float) * (size_t)(batch * clcnn_net_input_size(net));
    if (status == CLCNN_OK && in_place && targets && net->loss.kind == CLCNN_LOSS_MSE)
        status = wrap_caller_array(
            net, targets,
            sizeof(float) * (size_t)(batch * shape3_count(net->layers[net->loss.logits_layer].out)),
            CL_MEM_READ_ONLY, &net->caller_targets, "targets");
    else if (status == CLCNN_OK)
        status = net_stage_targets(net, (int)batch, labels, targets);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status == CLCNN_OK)
        status = in_place ? wrap_caller_arrays(net, input, in_bytes, NULL, 0)
                          : net_write_input(net, input, (int)batch);
    if (status == CLCNN_OK)
        status = net_forward_stored(net, (int)batch, training);
    if (status == CLCNN_OK)
        status = net_backward_stored(net, (int)batch, training);
    net->want_input_gradient = 0;
    if (status == CLCNN_OK)
        status = net_read_loss(net, (int)batch, loss);
    return in_place ? release_caller_arrays(net, status) : status;
}

clcnn_status clcnn_net_get_tensor_gradient(clcnn_net *net, const char *name, float *values,
                                           int64_t count) {
    if (!net || !name || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    if (net->gradient_batch == 0)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "no gradients yet: run clcnn_net_backward first");
    buf source;
    if (strcmp(name, "input") == 0) {
        if (!net->has_input_gradient)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "the last pass was a training step, which skips the input gradient");
        int64_t expected = net->gradient_batch * clcnn_net_input_size(net);
        if (count != expected)
            return set_error(ctx, CLCNN_ERROR_SHAPE, "the input gradient has %lld values, not %lld",
                             (long long)expected, (long long)count);
        source = gradient(net, 0);
    } else {
        int index = net_find_tensor(net, name);
        if (index < 0 || net->tensors[index].kind != TENSOR_PARAMETER)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "no parameter named '%s'", name);
        const named_tensor *t = &net->tensors[index];
        if (net->frozen[t->layer])
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "%s has no gradient: layer %s is frozen", name,
                             net->layers[t->layer].name);
        if (count != t->count)
            return set_error(ctx, CLCNN_ERROR_SHAPE, "the gradient of %s has %lld values, not %lld",
                             name, (long long)t->count, (long long)count);
        source = tensor_buf(net, t, 1);
    }
    if (!context_is_opencl(ctx)) {
        memcpy(values, source.host, sizeof(float) * (size_t)count);
        return CLCNN_OK;
    }
    return buffer_read(ctx, source.mem, 0, sizeof(float) * (size_t)count, values);
}

clcnn_status clcnn_net_get_gradient(clcnn_net *net, const char *layer_name, const char *which,
                                    float *values, int64_t count) {
    if (!net || !layer_name || !which || !values)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (strcmp(layer_name, "input") == 0 && strcmp(which, "input") == 0)
        return clcnn_net_get_tensor_gradient(net, "input", values, count);
    char name[160];
    clcnn_status status = net_parameter_name(net, layer_name, which, name, sizeof(name));
    return status ? status : clcnn_net_get_tensor_gradient(net, name, values, count);
}
