/* The memory plan: every node's output and output gradient gets a place in
 * a few buffers allocated once for a batch capacity. A view (flatten), and
 * a relu or an add that runs inside the node before it (find_fusions), use
 * that node's storage. Storage whose lifetimes do not overlap shares a slot:
 * in inference an activation lives from its node to its last reader; a
 * gradient lives from its first writer (the last reader of the node, as
 * backward walks down) to the node's own backward. Training keeps every
 * activation, since backward reads them, and gives each node that keeps
 * values from its forward for its backward (max pooling's choices) a buffer
 * of its own. */
#include "layers/layer.h"

#include <stdlib.h>
#include <string.h>

static void release_bufs(buf **bufs, int count) {
    if (!*bufs)
        return;
    for (int i = 0; i < count; i++) {
        free((*bufs)[i].host);
        buffer_release(&(*bufs)[i].mem);
    }
    free(*bufs);
    *bufs = NULL;
}

static void release_buf(buf *b) {
    free(b->host);
    b->host = NULL;
    buffer_release(&b->mem);
}

void net_release_activations(clcnn_net *net) {
    /* Enqueued uploads may still read the host staging arrays freed below. */
    if (net->ctx->queue)
        clFinish(net->ctx->queue);
    memory_plan *plan = &net->plan;
    release_bufs(&plan->slots, plan->slot_count);
    release_bufs(&plan->grad_slots, plan->grad_slot_count);
    release_bufs(&plan->saved, net->layer_count);
    release_buf(&plan->grad_temporary);
    release_buf(&plan->scratch);
    free(plan->root);
    free(plan->out_slot);
    free(plan->grad_slot);
    free(plan->needs_grad);
    free(plan->grad_written);
    if (plan->folded)
        for (int i = 0; i < net->layer_count; i++) {
            release_buf(&plan->folded[i][0]);
            release_buf(&plan->folded[i][1]);
        }
    free(plan->folded);
    free(plan->folded_into);
    free(plan->fused_relu);
    free(plan->fused_add);
    memset(plan, 0, sizeof(*plan));
    buffer_release(&net->device_labels);
    buffer_release(&net->device_targets);
    buffer_release(&net->device_losses);
    free(net->host_labels);
    free(net->host_targets);
    free(net->host_losses);
    net->host_labels = NULL;
    net->host_targets = NULL;
    net->host_losses = NULL;
}

/* count floats on the context's device. */
static clcnn_status allocate(clcnn_net *net, int64_t count, buf *out) {
    size_t bytes = sizeof(float) * (size_t)(count > 0 ? count : 1);
    if (context_is_opencl(net->ctx))
        return buffer_create(net->ctx, bytes, &out->mem);
    out->host = malloc(bytes);
    if (!out->host)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory (%zu bytes)", bytes);
    return CLCNN_OK;
}

/* Interval colouring: items (best in increasing `first`) live over [first, last]
 * of node indices and need floats each; an item takes the free slot that fits
 * best (or grows the largest free one, or opens a new one) so that no two
 * items sharing a slot overlap. slot_of[item] gets its slot. */
static int assign_slots(int count, const int *first, const int *last, const int64_t *floats,
                        int *slot_of, int64_t *slot_floats, int *slot_last) {
    int slots = 0;
    for (int i = 0; i < count; i++) {
        int best = -1;
        for (int s = 0; s < slots; s++) {
            if (slot_last[s] >= first[i])
                continue;
            const int fits = slot_floats[s] >= floats[i];
            const int best_fits = best >= 0 && slot_floats[best] >= floats[i];
            if (best < 0 || (fits && (!best_fits || slot_floats[s] < slot_floats[best])) ||
                (!fits && !best_fits && slot_floats[s] > slot_floats[best]))
                best = s;
        }
        if (best < 0) {
            best = slots++;
            slot_floats[best] = 0;
        }
        if (slot_floats[best] < floats[i])
            slot_floats[best] = floats[i];
        slot_last[best] = last[i];
        slot_of[i] = best;
    }
    return slots;
}

/* Plans one kind of storage (activations or gradients): roots get slots by
 * their lifetimes, every node its root's slot. slot_floats gets each slot's
 * size per image and slot_owner the node that sets it (n entries each). */
static clcnn_status plan_storage(clcnn_net *net, const int *first, const int *last, int *node_slot,
                                 int64_t *slot_floats, int *slot_owner, int *slot_count) {
    const int n = net->layer_count;
    memory_plan *plan = &net->plan;
    int *roots = malloc(sizeof(int) * (size_t)n);
    int *root_first = malloc(sizeof(int) * (size_t)n);
    int *root_last = malloc(sizeof(int) * (size_t)n);
    int *root_slot = malloc(sizeof(int) * (size_t)n);
    int *slot_last = malloc(sizeof(int) * (size_t)n);
    int64_t *root_floats = malloc(sizeof(int64_t) * (size_t)n);
    clcnn_status status = CLCNN_OK;
    if (!roots || !root_first || !root_last || !root_slot || !slot_last || !root_floats) {
        status = set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory planning memory");
        goto done;
    }
    int root_count = 0;
    for (int i = 0; i < n; i++) {
        if (plan->root[i] != i)
            continue;
        roots[root_count] = i;
        root_first[root_count] = first[i];
        root_last[root_count] = last[i];
        root_floats[root_count] = shape3_count(net->layers[i].out);
        root_count++;
    }
    *slot_count = assign_slots(root_count, root_first, root_last, root_floats, root_slot,
                               slot_floats, slot_last);
    for (int r = 0; r < root_count; r++) {
        node_slot[roots[r]] = root_slot[r];
        if (root_floats[r] == slot_floats[root_slot[r]])
            slot_owner[root_slot[r]] = roots[r];
    }
    for (int i = 0; i < n; i++)
        node_slot[i] = node_slot[plan->root[i]];
done:
    free(roots);
    free(root_first);
    free(root_last);
    free(root_slot);
    free(slot_last);
    free(root_floats);
    return status;
}

static clcnn_status allocate_slots(clcnn_net *net, const int64_t *slot_floats, int count,
                                   buf **slots) {
    *slots = calloc((size_t)(count ? count : 1), sizeof(buf));
    if (!*slots)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory planning memory");
    clcnn_status status = CLCNN_OK;
    for (int s = 0; s < count && status == CLCNN_OK; s++)
        status = allocate(net, net->plan.capacity * slot_floats[s], &(*slots)[s]);
    return status;
}

static double mebibytes(uint64_t bytes) {
    return (double)bytes / 1048576.0;
}

/* One kind of storage as planned. */
typedef struct planned_storage {
    const char *what; /* "outputs", "output gradients", "values kept for backward" */
    int64_t *floats;  /* per slot, per image */
    int *owner;       /* per slot: the node whose size it has */
    int count;
} planned_storage;

/* Device limits are checked here, before anything is allocated: no buffer
 * above CL_DEVICE_MAX_MEM_ALLOC_SIZE, and everything together (extra_bytes
 * the storage outside the planned kinds) within
 * CL_DEVICE_GLOBAL_MEM_SIZE less an eighth, the headroom for the context's
 * workspace and scratch buffers (Winograd's transforms; a strided
 * backward-data's phases, as large as its input), programs and the
 * driver's own buffers. */
static clcnn_status check_device_memory(clcnn_net *net, const planned_storage *kinds, int count,
                                        uint64_t extra_bytes) {
    clcnn_context *ctx = net->ctx;
    if (!context_is_opencl(ctx))
        return CLCNN_OK;
    const uint64_t capacity = (uint64_t)net->plan.capacity;
    uint64_t total =
        extra_bytes + sizeof(float) * (uint64_t)(2 * net->parameter_floats + net->state_floats);
    for (int kind = 0; kind < count; kind++)
        for (int s = 0; s < kinds[kind].count; s++) {
            const uint64_t bytes = sizeof(float) * capacity * (uint64_t)kinds[kind].floats[s];
            total += bytes;
            if (bytes > ctx->max_alloc_bytes)
                return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                 "layer %s: its %s for %llu images take %.1f MiB, more than the "
                                 "device allows in one buffer (%.1f MiB, "
                                 "CL_DEVICE_MAX_MEM_ALLOC_SIZE); use fewer images per batch",
                                 net->layers[kinds[kind].owner[s]].name, kinds[kind].what,
                                 (unsigned long long)capacity, mebibytes(bytes),
                                 mebibytes(ctx->max_alloc_bytes));
        }
    const uint64_t usable = ctx->global_mem_bytes - ctx->global_mem_bytes / 8;
    if (total > usable)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                         "the network needs %.1f MiB of device memory for %llu images, more "
                         "than the device has for it (%.1f MiB: CL_DEVICE_GLOBAL_MEM_SIZE %.1f "
                         "MiB less an eighth of headroom); use fewer images per batch",
                         mebibytes(total), (unsigned long long)capacity, mebibytes(usable),
                         mebibytes(ctx->global_mem_bytes));
    return CLCNN_OK;
}

static clcnn_status allocate_loss_staging(clcnn_net *net, int64_t capacity) {
    clcnn_context *ctx = net->ctx;
    const int64_t out_count = capacity * shape3_count(net->layers[net->layer_count - 1].out);
    net->host_labels = malloc(sizeof(int32_t) * (size_t)capacity);
    net->host_targets = malloc(sizeof(float) * (size_t)(out_count + 1));
    net->host_losses = malloc(sizeof(float) * (size_t)capacity);
    if (!net->host_labels || !net->host_targets || !net->host_losses)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for targets");
    if (!context_is_opencl(ctx))
        return CLCNN_OK;
    clcnn_status status =
        buffer_create(ctx, sizeof(int32_t) * (size_t)capacity, &net->device_labels);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)(out_count + 1), &net->device_targets);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)capacity, &net->device_losses);
    return status;
}

/* The node that reads node i, if exactly one does (once), else -1. */
static int only_reader(const clcnn_net *net, int i) {
    int readers = 0, reader = -1;
    for (int j = i + 1; j < net->layer_count; j++)
        for (int k = 0; k < net->layers[j].input_count; k++)
            if (net->layers[j].inputs[k] == i) {
                readers++;
                reader = j;
            }
    return readers == 1 ? reader : -1;
}

/* The folding pairs: a `foldable` node whose only reader folds into it. */
static void find_folds(clcnn_net *net) {
    const int n = net->layer_count;
    for (int i = 0; i < n; i++) {
        net->plan.folded_into[i] = -1;
        const int reader = only_reader(net, i);
        if (net->layers[i].type->foldable && reader >= 0 && net->layers[reader].type->fold)
            net->plan.folded_into[i] = reader;
    }
}

/* The add's input other than node i. */
int fused_add_other_input(const clcnn_net *net, int i) {
    const layer *add = &net->layers[net->plan.fused_add[i]];
    return add->inputs[0] == i ? add->inputs[1] : add->inputs[0];
}

/* The fusions, on an OpenCL device with fusion on (CLCNN_FUSE):
 * - a fuses_relu node whose only reader is a relu. The relu's output is
 *   then the node's storage too, so its forward may also run in place after
 *   the node (a traced pass, which shows both outputs, or a folded one, in
 *   which another node computes this one), and its output gradient is the
 *   node's.
 * - a fuses_add node whose only reader is an add of it and one node
 *   computed before it (not its own input, whose gradient the same kernel
 *   writes). The add's output (and its fused relu's) is then the node's
 *   storage too; the node computes the add when it runs (when a fold
 *   computes the node instead, the add runs after it, in place), and its
 *   backward is the add's too. */
static void find_fusions(clcnn_net *net) {
    const int fusing = context_is_opencl(net->ctx) && net->ctx->config.fuse;
    for (int i = 0; i < net->layer_count; i++) {
        net->plan.fused_relu[i] = net->plan.fused_add[i] = -1;
        const int reader = fusing ? only_reader(net, i) : -1;
        if (reader < 0)
            continue;
        const layer *l = &net->layers[i], *next = &net->layers[reader];
        if (l->type->fuses_relu && next->type == &layer_relu)
            net->plan.fused_relu[i] = reader;
        if (!l->type->fuses_add || next->type != &layer_add || next->input_count != 2)
            continue;
        net->plan.fused_add[i] = reader;
        const int other = fused_add_other_input(net, i);
        int apart = other < i;
        for (int k = 0; k < l->input_count; k++)
            apart = apart && l->inputs[k] != other;
        if (!apart)
            net->plan.fused_add[i] = -1;
    }
}

/* A folding pair's weight and bias floats: as large as the folded node's. */
static int64_t fold_floats(const layer *l) {
    return l->weight_count + shape3_count(l->out) / ((int64_t)l->out.h * l->out.w);
}

/* What eval-mode passes keep beside the plan's buffers: the filters laid
 * out for the forward kernels (prepared_weights) and the folds. */
static uint64_t kept_filter_bytes(const clcnn_net *net) {
    uint64_t bytes = 0;
    if (!context_is_opencl(net->ctx))
        return 0;
    for (int i = 0; i < net->layer_count; i++) {
        const layer *l = &net->layers[i];
        if (l->type->tune == tune_as_convolution) {
            const conv2d_params p = layer_conv2d_params(l, 1);
            bytes += conv2d_prepared_bytes(&l->conv, &p);
        }
        if (net->plan.folded_into[i] >= 0)
            bytes += sizeof(float) * (uint64_t)fold_floats(l);
    }
    return bytes;
}

/* Every folding pair's weight and bias, as large as the folded node's. */
static clcnn_status allocate_folds(clcnn_net *net) {
    memory_plan *plan = &net->plan;
    plan->folds_made = 0;
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++) {
        if (plan->folded_into[i] < 0)
            continue;
        const layer *l = &net->layers[i];
        status = allocate(net, l->weight_count, &plan->folded[i][0]);
        if (status == CLCNN_OK)
            status = allocate(net, fold_floats(l) - l->weight_count, &plan->folded[i][1]);
    }
    return status;
}

/* Floats per image node i keeps from its forward to its backward: on an
 * OpenCL device only, since the reference recomputes what it needs. */
static int64_t saved_floats(const clcnn_net *net, int i) {
    const layer *l = &net->layers[i];
    if (!context_is_opencl(net->ctx) || !l->type->saved_bytes)
        return 0;
    return (int64_t)((l->type->saved_bytes(net->ctx, l) + sizeof(float) - 1) / sizeof(float));
}

/* What forwards keep lives from the node's forward to its backward, which
 * spans every other node's: a buffer of its own for each node that keeps any. */
static clcnn_status allocate_saved(clcnn_net *net, const int64_t *floats) {
    const int n = net->layer_count;
    memory_plan *plan = &net->plan;
    plan->saved = calloc((size_t)n, sizeof(buf));
    if (!plan->saved)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory planning memory");
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < n && status == CLCNN_OK; i++)
        if (floats[i] > 0)
            status = allocate(net, plan->capacity * floats[i], &plan->saved[i]);
    return status;
}

/* How the device runs each layer that runs as a convolution, decided here,
 * after tuning and before the saved values and scratch are sized from it,
 * so that the passes only enqueue. */
static void plan_convolutions(clcnn_net *net, int64_t capacity) {
    if (!context_is_opencl(net->ctx))
        return;
    const int batch = capacity < INT32_MAX ? (int)capacity : INT32_MAX;
    for (int i = 0; i < net->layer_count; i++) {
        layer *l = &net->layers[i];
        if (l->type->tune == tune_as_convolution) {
            const conv2d_params p = layer_conv2d_params(l, batch);
            l->conv = conv2d_plan_for(net->ctx, &p);
        }
    }
}

/* Floats per image of the gradient temporary (pass.c's backward_node): the
 * largest input whose gradient a layer that cannot add into it may find
 * already written by another. A gradient's writers are the layers that read
 * a node's storage without sharing it, and the loss for the logits; layers
 * past the logits run no backward. Zero when every fan-out adds in place. */
static int64_t gradient_temporary_floats(const clcnn_net *net) {
    const int n = net->layer_count;
    const memory_plan *plan = &net->plan;
    const int logits = net->loss.logits_layer;
    int *writers = calloc((size_t)n, sizeof(int));
    if (!writers)
        return net_largest_activation(net);
    writers[plan->root[logits]] = 1;
    for (int i = 1; i <= logits; i++)
        for (int k = 0; k < net->layers[i].input_count; k++)
            if (plan->root[net->layers[i].inputs[k]] != plan->root[i])
                writers[plan->root[net->layers[i].inputs[k]]]++;
    int64_t floats = 0;
    for (int i = 1; i <= logits; i++) {
        const layer *l = &net->layers[i];
        if (l->type->accumulates && l->type->accumulates(net->ctx, l))
            continue;
        for (int k = 0; k < l->input_count; k++) {
            const int input = l->inputs[k];
            if (plan->root[input] != plan->root[i] && writers[plan->root[input]] > 1 &&
                shape3_count(net->layers[input].out) > floats)
                floats = shape3_count(net->layers[input].out);
        }
    }
    free(writers);
    return floats;
}

static clcnn_status make_plan(clcnn_net *net, int64_t capacity, int with_gradients) {
    const int n = net->layer_count;
    memory_plan *plan = &net->plan;
    plan->capacity = capacity;
    plan->with_gradients = with_gradients;
    plan->root = malloc(sizeof(int) * (size_t)n);
    plan->out_slot = malloc(sizeof(int) * (size_t)n);
    plan->grad_slot = malloc(sizeof(int) * (size_t)n);
    plan->needs_grad = calloc((size_t)n, 1);
    plan->grad_written = calloc((size_t)n, 1);
    plan->folded_into = malloc(sizeof(int) * (size_t)n);
    plan->folded = calloc((size_t)n, sizeof(*plan->folded));
    plan->fused_relu = malloc(sizeof(int) * (size_t)n);
    plan->fused_add = malloc(sizeof(int) * (size_t)n);
    int *first = calloc((size_t)n, sizeof(int)), *last = calloc((size_t)n, sizeof(int));
    planned_storage kinds[3] = {{"outputs", NULL, NULL, 0},
                                {"output gradients", NULL, NULL, 0},
                                {"values kept for backward", NULL, NULL, 0}};
    for (int kind = 0; kind < 3; kind++) {
        kinds[kind].floats = calloc((size_t)n, sizeof(int64_t));
        kinds[kind].owner = calloc((size_t)n, sizeof(int));
    }
    clcnn_status status = CLCNN_OK;
    if (!plan->root || !plan->out_slot || !plan->grad_slot || !plan->needs_grad ||
        !plan->grad_written || !plan->folded_into || !plan->folded || !plan->fused_relu ||
        !plan->fused_add || !first || !last || !kinds[0].floats || !kinds[0].owner ||
        !kinds[1].floats || !kinds[1].owner || !kinds[2].floats || !kinds[2].owner) {
        status = set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory planning memory");
        goto done;
    }
    find_fusions(net);
    plan_convolutions(net, capacity);
    for (int i = 0; i < n; i++) {
        const layer *l = &net->layers[i];
        const int shares =
            l->type->view || (l->input_count == 1 && plan->fused_relu[l->inputs[0]] == i);
        plan->root[i] = shares ? plan->root[l->inputs[0]] : i;
        for (int k = 0; k < l->input_count; k++)
            if (plan->fused_add[l->inputs[k]] == i)
                plan->root[i] = plan->root[l->inputs[k]];
        plan->grad_slot[i] = -1;
    }

    /* Activations: a root lives from itself to the last reader of any node
     * using its storage; the output to the end. Training keeps them all. A
     * folding node's output is written by the node it folds into. */
    find_folds(net);
    for (int i = 0; i < n; i++) {
        first[i] = i;
        last[i] = with_gradients || i == n - 1 ? n : i;
    }
    for (int i = 0; i < n; i++)
        if (plan->folded_into[i] >= 0)
            first[plan->folded_into[i]] = i;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < net->layers[i].input_count; k++) {
            const int root = plan->root[net->layers[i].inputs[k]];
            if (last[root] < i)
                last[root] = i;
        }
    for (int i = 0; i < n; i++)
        if (plan->root[i] == i && plan->root[n - 1] == i)
            last[i] = n;
    status = plan_storage(net, first, last, plan->out_slot, kinds[0].floats, kinds[0].owner,
                          &kinds[0].count);

    uint64_t extra = 0;
    int64_t temporary_floats = 0;
    if (status == CLCNN_OK && with_gradients) {
        /* Gradients: the same intervals seen from backward, which writes a
         * root's gradient first at its last reader and reads it last at the
         * root itself; the loss writes the logits' gradient before all. */
        for (int i = 0; i < n; i++) {
            first[i] = i;
            last[i] = i;
        }
        for (int i = 0; i < n; i++)
            for (int k = 0; k < net->layers[i].input_count; k++) {
                const int root = plan->root[net->layers[i].inputs[k]];
                if (last[root] < i)
                    last[root] = i;
            }
        last[plan->root[net->loss.logits_layer]] = n;
        status = plan_storage(net, first, last, plan->grad_slot, kinds[1].floats, kinds[1].owner,
                              &kinds[1].count);
        for (int i = 0; i < n && context_is_opencl(net->ctx); i++) {
            const layer *l = &net->layers[i];
            const size_t bytes =
                l->type->scratch_bytes ? l->type->scratch_bytes(net->ctx, l, (int)capacity) : 0;
            if (bytes > plan->scratch_bytes)
                plan->scratch_bytes = bytes;
        }
        for (int i = 0; i < n; i++) {
            kinds[2].floats[i] = saved_floats(net, i);
            kinds[2].owner[i] = i;
        }
        kinds[2].count = n;
        /* the gradient temporary, the scratch, the targets and losses */
        temporary_floats = gradient_temporary_floats(net);
        extra = sizeof(float) * (uint64_t)capacity *
                    (uint64_t)(temporary_floats + 3 + shape3_count(net->layers[n - 1].out)) +
                plan->scratch_bytes;
    }
    if (status == CLCNN_OK)
        status =
            check_device_memory(net, kinds, with_gradients ? 3 : 1, extra + kept_filter_bytes(net));
    if (status == CLCNN_OK)
        status = allocate_slots(net, kinds[0].floats, kinds[0].count, &plan->slots);
    if (status == CLCNN_OK)
        status = allocate_folds(net);
    plan->slot_count = kinds[0].count;
    if (status != CLCNN_OK || !with_gradients)
        goto done;
    status = allocate_slots(net, kinds[1].floats, kinds[1].count, &plan->grad_slots);
    plan->grad_slot_count = kinds[1].count;
    if (status == CLCNN_OK)
        status = allocate_saved(net, kinds[2].floats);
    if (status == CLCNN_OK && temporary_floats > 0)
        status = allocate(net, capacity * temporary_floats, &plan->grad_temporary);
    if (status == CLCNN_OK && plan->scratch_bytes > 0)
        status = allocate(net, (int64_t)((plan->scratch_bytes + sizeof(float) - 1) / sizeof(float)),
                          &plan->scratch);
    if (status == CLCNN_OK)
        status = allocate_loss_staging(net, capacity);
done:
    free(first);
    free(last);
    for (int kind = 0; kind < 3; kind++) {
        free(kinds[kind].floats);
        free(kinds[kind].owner);
    }
    return status;
}

clcnn_status net_ensure_inference_chunk(clcnn_net *net, int64_t *chunk) {
    clcnn_status status = net_ensure_activations(net, *chunk, 0);
    while (status == CLCNN_ERROR_OUT_OF_MEMORY && *chunk > 1) {
        *chunk /= 2;
        status = net_ensure_activations(net, *chunk, 0);
    }
    return status;
}

clcnn_status net_ensure_activations(clcnn_net *net, int64_t capacity, int with_gradients) {
    memory_plan *plan = &net->plan;
    if (plan->capacity >= capacity && plan->with_gradients >= with_gradients)
        return CLCNN_OK;
    if (plan->capacity > capacity)
        capacity = plan->capacity;
    with_gradients = with_gradients || plan->with_gradients;
    net_release_activations(net);
    /* Tuned first: the backward-weights scratch the plan sizes depends on the configuration. */
    clcnn_status status = net_autotune(net, capacity, with_gradients);
    if (status == CLCNN_OK)
        status = make_plan(net, capacity, with_gradients);
    if (status != CLCNN_OK)
        net_release_activations(net);
    return status;
}
