/* Training: epochs of shuffled mini-batches, each a fixed sequence of
 * launches (forward, loss, backward, one optimizer update over the flat
 * parameter buffer) with a single wait at its end; and evaluation.
 * Data-parallel training shards each global batch over the ranks and passes
 * the gradient through a hook on the host between backward and update. */
#include "layers/layer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Images per launch when evaluating. */
#define EVALUATION_CHUNK 256
/* Far beyond any image, and small enough that the crop positions fit an int. */
#define AUGMENT_MAX_CROP_PAD 65535

void clcnn_train_config_defaults(clcnn_train_config *config) {
    memset(config, 0, sizeof(*config));
    config->epochs = 10;
    config->batch_size = 64;
    config->optimizer = CLCNN_SGD;
    config->learning_rate = 0.01;
    config->momentum = 0.9;
    config->weight_decay = 0.0;
    config->beta1 = 0.9;
    config->beta2 = 0.999;
    config->epsilon = 1e-8;
    config->schedule = CLCNN_SCHEDULE_CONSTANT;
    config->decay = 0.1;
    config->step_epochs = 10;
    config->seed = 1;
}

static clcnn_status check_config(clcnn_context *ctx, const clcnn_train_config *c) {
    if (c->epochs < 0 || c->batch_size < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "training needs epochs >= 0 and a batch size >= 1");
    if (!(c->learning_rate > 0.0f) || !isfinite(c->learning_rate))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "the learning rate must be > 0");
    if (!(c->momentum >= 0.0f && c->momentum < 1.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "momentum must be in [0, 1)");
    if (!(c->weight_decay >= 0.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "weight decay must be >= 0");
    if (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f) ||
        !(c->epsilon > 0.0f))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "Adam needs beta1 and beta2 in [0, 1) and epsilon > 0");
    if (c->optimizer != CLCNN_SGD && c->optimizer != CLCNN_ADAM)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "unknown optimizer %d",
                         (int)c->optimizer);
    if (c->schedule == CLCNN_SCHEDULE_STEP && (c->step_epochs < 1 || !(c->decay > 0.0f)))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "the step schedule needs step epochs >= 1 and a decay > 0");
    /* 2 * pad + 1 crop positions must fit an int. */
    if (c->augment_crop_pad < 0 || c->augment_crop_pad > AUGMENT_MAX_CROP_PAD)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "the crop padding must be in 0..%d pixels, not %d", AUGMENT_MAX_CROP_PAD,
                         c->augment_crop_pad);
    if (c->augment_flip != 0 && c->augment_flip != 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "augment_flip must be 0 or 1, not %d",
                         c->augment_flip);
    if (!(c->augment_rotate_degrees >= 0.0 && c->augment_rotate_degrees <= 180.0))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "the rotation must be in 0..180 degrees, not %g",
                         c->augment_rotate_degrees);
    return CLCNN_OK;
}

/* The spans the optimizer updates and where each tensor's state is: no
 * state for the parameters of frozen layers. */
static clcnn_status plan_spans(clcnn_trainer *t) {
    const clcnn_net *net = t->net;
    t->spans = malloc(sizeof(trainer_span) * (size_t)(net->tensor_count ? net->tensor_count : 1));
    t->tensor_state_offset =
        malloc(sizeof(int64_t) * (size_t)(net->tensor_count ? net->tensor_count : 1));
    if (!t->spans || !t->tensor_state_offset)
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for the optimizer");
    t->frozen_version = net->frozen_version;
    int previous_trained = 0, has_parameters = 0;
    for (int i = 0; i < net->tensor_count; i++) {
        const named_tensor *tensor = &net->tensors[i];
        t->tensor_state_offset[i] = -1;
        if (tensor->kind != TENSOR_PARAMETER || tensor->count == 0)
            continue;
        has_parameters = 1;
        const int trained = !net->frozen[tensor->layer];
        /* Spans end at the alignment after their last tensor (its gradients
         * are zeros), so that without frozen layers the state mirrors the
         * whole flat buffer. */
        const int64_t end = align_floats(tensor->offset + tensor->count);
        if (trained && previous_trained) {
            trainer_span *span = &t->spans[t->span_count - 1];
            span->count = end - span->parameter_offset;
        } else if (trained) {
            const trainer_span span = {tensor->offset, t->state_floats, end - tensor->offset};
            t->spans[t->span_count++] = span;
        }
        if (trained) {
            const trainer_span *span = &t->spans[t->span_count - 1];
            t->tensor_state_offset[i] =
                span->state_offset + tensor->offset - span->parameter_offset;
            t->state_floats = span->state_offset + span->count;
        }
        previous_trained = trained;
    }
    if (has_parameters && t->span_count == 0)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "every layer with parameters is frozen: there is nothing to train");
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_create(clcnn_net *net, const clcnn_train_config *config,
                                  clcnn_trainer **out) {
    if (!net || !config || !out)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    *out = NULL;
    clcnn_context *ctx = net->ctx;
    clcnn_status status = context_require_device(ctx);
    if (status == CLCNN_OK)
        status = check_config(ctx, config);
    if (status == CLCNN_OK && net->loss.kind == CLCNN_LOSS_AUTO)
        status = clcnn_net_set_loss(net, CLCNN_LOSS_AUTO);
    if (status != CLCNN_OK)
        return status;
    /* Kernels index with int: a batch's largest activation must stay below 2^31 floats. */
    const int64_t largest = net_largest_activation(net);
    if ((int64_t)config->batch_size > INT32_MAX / largest)
        return set_error(ctx, CLCNN_ERROR_SHAPE,
                         "a batch of %d images is too large for this network (at most %lld)",
                         config->batch_size, (long long)(INT32_MAX / largest));
    clcnn_trainer *t = calloc(1, sizeof(*t));
    if (!t)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for a trainer");
    t->net = net;
    t->config = *config;
    t->world_size = 1;
    rng_seed(&t->shuffle, config->seed ^ 0x5deece66dULL);
    status = plan_spans(t);
    if (status != CLCNN_OK) {
        clcnn_trainer_destroy(t);
        return status;
    }
    const int64_t floats = t->state_floats ? t->state_floats : 1;
    const int64_t batch = config->batch_size;
    t->host_state1 = calloc((size_t)floats, sizeof(float));
    t->host_state2 = calloc((size_t)floats, sizeof(float));
    int staging_ok = 1;
    for (int i = 0; i < 2; i++) {
        t->batch_images[i] = malloc(sizeof(float) * (size_t)(batch * clcnn_net_input_size(net)));
        t->batch_labels[i] = malloc(sizeof(int32_t) * (size_t)batch);
        staging_ok = staging_ok && t->batch_images[i] && t->batch_labels[i];
    }
    t->batch_outputs = malloc(sizeof(float) * (size_t)(batch * clcnn_net_output_size(net)));
    if (!t->host_state1 || !t->host_state2 || !staging_ok || !t->batch_outputs) {
        clcnn_trainer_destroy(t);
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for the optimizer");
    }
    /* Every buffer of a step is allocated here, before the first batch. */
    status = net_ensure_activations(net, batch, 1);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status == CLCNN_OK && ctx->kind == CLCNN_DEVICE_OPENCL) {
        size_t bytes = sizeof(float) * (size_t)floats;
        status = buffer_create(ctx, bytes, &t->device_state1);
        if (status == CLCNN_OK)
            status = buffer_create(ctx, bytes, &t->device_state2);
        t->device_state_stale = 1;
    }
    if (status != CLCNN_OK) {
        clcnn_trainer_destroy(t);
        return status;
    }
    *out = t;
    return CLCNN_OK;
}

static void release_buckets(clcnn_trainer *t) {
    for (int k = 0; k < t->bucket_count && t->bucket_events; k++)
        if (t->bucket_events[k])
            clReleaseEvent(t->bucket_events[k]);
    free(t->bucket_first);
    free(t->bucket_end);
    free(t->bucket_node);
    free(t->bucket_events);
    t->bucket_first = t->bucket_end = NULL;
    t->bucket_node = NULL;
    t->bucket_events = NULL;
    t->bucket_count = 0;
}

/* The exchange's buffers (not the hook). */
static void release_sync(rank_sync *sync) {
    free(sync->mine);
    free(sync->all);
    free(sync->combined);
    free(sync->floats);
    buffer_release(&sync->device);
    sync->mine = sync->all = sync->combined = NULL;
    sync->floats = NULL;
    sync->ranks = 0;
    sync->capacity = 0;
}

void clcnn_trainer_destroy(clcnn_trainer *t) {
    if (!t)
        return;
    release_buckets(t);
    release_sync(&t->sync);
    buffer_release(&t->device_state1);
    buffer_release(&t->device_state2);
    free(t->host_state1);
    free(t->host_state2);
    free(t->spans);
    free(t->tensor_state_offset);
    free(t->order);
    for (int i = 0; i < 2; i++) {
        free(t->batch_images[i]);
        free(t->batch_labels[i]);
    }
    free(t->batch_outputs);
    free(t);
}

const clcnn_train_config *clcnn_trainer_config(const clcnn_trainer *t) {
    return t ? &t->config : NULL;
}

int clcnn_trainer_epochs_done(const clcnn_trainer *t) {
    return t ? t->epochs_done : 0;
}

clcnn_status clcnn_trainer_set_epochs(clcnn_trainer *t, int epochs) {
    if (!t)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (epochs < 0)
        return set_error(t->net->ctx, CLCNN_ERROR_INVALID_ARGUMENT, "epochs must be >= 0");
    t->config.epochs = epochs;
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_update_config(clcnn_trainer *t, const clcnn_train_config *config) {
    if (!t || !config)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = t->net->ctx;
    const clcnn_train_config *c = &t->config;
    /* What the state (moments, shuffling, staging buffers, augmentation) was made for. */
    const char *fixed =
        c->optimizer != config->optimizer     ? "the optimizer"
        : c->batch_size != config->batch_size ? "the batch size"
        : c->beta1 != config->beta1 || c->beta2 != config->beta2 || c->epsilon != config->epsilon
            ? "Adam's betas and epsilon"
        : c->seed != config->seed ? "the seed"
        : c->augment_crop_pad != config->augment_crop_pad ||
                c->augment_flip != config->augment_flip ||
                c->augment_rotate_degrees != config->augment_rotate_degrees
            ? "the augmentation"
            : NULL;
    if (fixed)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "%s cannot change in a resumed run: its state was made for the "
                         "checkpoint's",
                         fixed);
    clcnn_status status = check_config(ctx, config);
    if (status == CLCNN_OK)
        t->config = *config;
    return status;
}

clcnn_status clcnn_trainer_set_shard(clcnn_trainer *t, int rank, int world_size) {
    if (!t)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (world_size < 1 || rank < 0 || rank >= world_size)
        return set_error(t->net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "rank %d of %d: need 0 <= rank < world size", rank, world_size);
    /* The share arithmetic multiplies a batch's image count by a rank. */
    if ((int64_t)world_size * t->config.batch_size > INT32_MAX)
        return set_error(t->net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "a global batch of %d ranks x %d images is too large", world_size,
                         t->config.batch_size);
    t->rank = rank;
    t->world_size = world_size;
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_set_gradient_hook(clcnn_trainer *t, clcnn_gradient_fn fn, void *user) {
    if (!t)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    t->gradient_hook = fn;
    t->gradient_user = user;
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_set_batch_statistics_hook(clcnn_trainer *t, clcnn_gather_fn fn,
                                                     void *user) {
    if (!t)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    t->sync.gather = fn;
    t->sync.user = user;
    return CLCNN_OK;
}

/* Buffers for an exchange of up to capacity floats among ranks ranks. */
static clcnn_status allocate_sync(clcnn_context *ctx, rank_sync *sync, int ranks,
                                  int64_t capacity) {
    release_sync(sync);
    sync->mine = malloc(sizeof(double) * (size_t)capacity);
    sync->all = malloc(sizeof(double) * (size_t)capacity * (size_t)ranks);
    sync->combined = malloc(sizeof(double) * (size_t)capacity);
    sync->floats = malloc(sizeof(float) * (size_t)capacity);
    clcnn_status status = sync->mine && sync->all && sync->combined && sync->floats
                              ? CLCNN_OK
                              : set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY,
                                          "out of memory for the exchange of batch statistics");
    if (status == CLCNN_OK && context_is_opencl(ctx))
        status = buffer_create(ctx, sizeof(float) * (size_t)capacity, &sync->device);
    if (status != CLCNN_OK) {
        release_sync(sync);
        return status;
    }
    sync->ranks = ranks;
    sync->capacity = capacity;
    return CLCNN_OK;
}

/* The exchange of batch statistics for this step: NULL without a hook, with
 * one rank or without layers that synchronise; otherwise its buffers,
 * allocated for the shard's world size the first time (before any pass: a
 * pass allocates nothing). */
static clcnn_status prepare_sync(clcnn_trainer *t, rank_sync **out) {
    *out = NULL;
    rank_sync *sync = &t->sync;
    if (!sync->gather || t->world_size < 2)
        return CLCNN_OK;
    const clcnn_net *net = t->net;
    int64_t capacity = 0;
    for (int i = 0; i < net->layer_count; i++) {
        const layer *l = &net->layers[i];
        const int64_t floats = l->type->sync_floats ? l->type->sync_floats(l) : 0;
        if (floats > capacity)
            capacity = floats;
    }
    if (capacity == 0)
        return CLCNN_OK;
    if (sync->ranks != t->world_size || sync->capacity != capacity) {
        clcnn_status status = allocate_sync(net->ctx, sync, t->world_size, capacity);
        if (status != CLCNN_OK)
            return status;
    }
    *out = sync;
    return CLCNN_OK;
}

/* Cuts the flat gradient buffer into buckets at layer boundaries, from the
 * last layer down (clcnn.h). */
static clcnn_status plan_buckets(clcnn_trainer *t) {
    clcnn_net *net = t->net;
    const int most = net->layer_count + 1;
    t->bucket_first = malloc(sizeof(int64_t) * (size_t)most);
    t->bucket_end = malloc(sizeof(int64_t) * (size_t)most);
    t->bucket_node = malloc(sizeof(int) * (size_t)most);
    t->bucket_events = calloc((size_t)most, sizeof(cl_event));
    if (!t->bucket_first || !t->bucket_end || !t->bucket_node || !t->bucket_events) {
        release_buckets(t);
        return set_error(net->ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for buckets");
    }
    int64_t end = net->parameter_floats, lowest_low = 0;
    int lowest = 1;
    for (int i = net->layer_count - 1; i >= 1; i--) {
        const layer *l = &net->layers[i];
        if (net->frozen[i]) /* its gradients stay zeros: nothing to exchange */
            continue;
        int64_t low = -1;
        for (int k = 0; k < l->tensor_count; k++) {
            const named_tensor *tensor = &net->tensors[l->first_tensor + k];
            if (tensor->kind == TENSOR_PARAMETER && tensor->count > 0 &&
                (low < 0 || tensor->offset < low))
                low = tensor->offset;
        }
        if (low < 0)
            continue;
        lowest = i;
        lowest_low = low;
        if (end - low >= t->bucket_floats) {
            t->bucket_first[t->bucket_count] = low;
            t->bucket_end[t->bucket_count] = end;
            t->bucket_node[t->bucket_count] = i;
            t->bucket_count++;
            end = low;
        }
    }
    if (end > lowest_low) {
        t->bucket_first[t->bucket_count] = lowest_low;
        t->bucket_end[t->bucket_count] = end;
        t->bucket_node[t->bucket_count] = lowest;
        t->bucket_count++;
    }
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_set_gradient_ready_hook(clcnn_trainer *t, clcnn_gradient_ready_fn fn,
                                                   void *user, int64_t bucket_floats) {
    if (!t)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    if (fn && bucket_floats < 1)
        return set_error(t->net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "buckets need at least 1 float, not %lld", (long long)bucket_floats);
    release_buckets(t);
    t->ready_hook = fn;
    t->ready_user = user;
    t->bucket_floats = bucket_floats;
    return fn ? plan_buckets(t) : CLCNN_OK;
}

int clcnn_trainer_gradient_buckets(const clcnn_trainer *t, int64_t *first, int64_t *count) {
    if (!t || !t->ready_hook)
        return 0;
    for (int k = 0; k < t->bucket_count; k++) {
        if (first)
            first[k] = t->bucket_first[k];
        if (count)
            count[k] = t->bucket_end[k] - t->bucket_first[k];
    }
    return t->bucket_count;
}

clcnn_status trainer_sync_state_to_host(clcnn_trainer *t) {
    if (!t->host_state_stale || !t->device_state1)
        return CLCNN_OK;
    clcnn_context *ctx = t->net->ctx;
    size_t bytes = sizeof(float) * (size_t)t->state_floats;
    clcnn_status status = buffer_read(ctx, t->device_state1, 0, bytes, t->host_state1);
    if (status == CLCNN_OK)
        status = buffer_read(ctx, t->device_state2, 0, bytes, t->host_state2);
    if (status == CLCNN_OK)
        t->host_state_stale = 0;
    return status;
}

static clcnn_status sync_state_to_device(clcnn_trainer *t) {
    if (!t->device_state_stale || !t->device_state1)
        return CLCNN_OK;
    clcnn_context *ctx = t->net->ctx;
    size_t bytes = sizeof(float) * (size_t)t->state_floats;
    clcnn_status status = buffer_write(ctx, t->device_state1, 0, bytes, t->host_state1);
    if (status == CLCNN_OK)
        status = buffer_write(ctx, t->device_state2, 0, bytes, t->host_state2);
    if (status == CLCNN_OK)
        t->device_state_stale = 0;
    return status;
}

static double learning_rate_at(const clcnn_train_config *c, int epoch) {
    switch (c->schedule) {
    case CLCNN_SCHEDULE_STEP:
        return c->learning_rate * pow(c->decay, epoch / c->step_epochs);
    case CLCNN_SCHEDULE_COSINE:
        return c->epochs > 0 ? c->learning_rate * 0.5 * (1.0 + cos(M_PI * epoch / c->epochs))
                             : c->learning_rate;
    case CLCNN_SCHEDULE_CONSTANT:
        break;
    }
    return c->learning_rate;
}

/* Which class the network predicts from the logits layer's values. */
static int predicted_class(const clcnn_net *net, const float *values, int64_t units) {
    if (net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY)
        return values[0] > 0.0f; /* a logit */
    /* The first maximum, a NaN being the maximum, as PyTorch's argmax. */
    int best = 0;
    for (int64_t j = 1; j < units && values[best] == values[best]; j++)
        if (values[j] > values[best] || values[j] != values[j])
            best = (int)j;
    return best;
}

static clcnn_status check_data(clcnn_net *net, const clcnn_dataset *data) {
    const layer *input = &net->layers[0];
    if (data->channels != input->out.c || data->height != input->out.h ||
        data->width != input->out.w)
        return set_error(net->ctx, CLCNN_ERROR_SHAPE,
                         "the data set has %dx%dx%d images but the network takes %dx%dx%d",
                         data->channels, data->height, data->width, input->out.c, input->out.h,
                         input->out.w);
    return CLCNN_OK;
}

/* Before steps: the frozen set is the trainer's, every buffer is there
 * and current on the device, and *sync is the steps' exchange of batch
 * statistics (prepare_sync). */
static clcnn_status prepare_steps(clcnn_trainer *t, rank_sync **sync) {
    clcnn_net *net = t->net;
    if (net->frozen_version != t->frozen_version)
        return set_error(net->ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "the network's frozen layers changed after the trainer was made: "
                         "make a new trainer");
    /* The trainer allocated these, but clcnn_tune or a failed evaluation may
     * have released them since; when they are there this costs nothing. */
    clcnn_status status = net_ensure_activations(net, t->config.batch_size, 1);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status == CLCNN_OK)
        status = sync_state_to_device(t);
    if (status == CLCNN_OK)
        status = prepare_sync(t, sync);
    return status;
}

static clcnn_status optimizer_update(clcnn_trainer *t, double learning_rate) {
    clcnn_net *net = t->net;
    optimizer_params p;
    memset(&p, 0, sizeof(p));
    p.kind = t->config.optimizer == CLCNN_ADAM ? OPTIMIZER_ADAM : OPTIMIZER_SGD;
    p.learning_rate = learning_rate;
    p.momentum = t->config.momentum;
    p.weight_decay = t->config.weight_decay;
    p.beta1 = t->config.beta1;
    p.beta2 = t->config.beta2;
    p.epsilon = t->config.epsilon;
    p.step = ++t->step;
    const int on_device = net->ctx->kind == CLCNN_DEVICE_OPENCL;
    clcnn_status status = CLCNN_OK;
    for (int k = 0; k < t->span_count && status == CLCNN_OK; k++) {
        p.parameter_offset = t->spans[k].parameter_offset;
        p.state_offset = t->spans[k].state_offset;
        if (on_device)
            status = optimizer_step(net->ctx, &p, t->spans[k].count, net->device_parameters,
                                    net->device_gradients, t->device_state1, t->device_state2);
        else
            optimizer_step_ref(&p, t->spans[k].count, net->host_parameters, net->host_gradients,
                               t->host_state1, t->host_state2);
    }
    net_device_parameters_changed(net);
    if (on_device)
        t->host_state_stale = 1;
    return status;
}

/* Copies the shuffled images first .. first + count - 1 into staging slot,
 * augmented when the configuration asks for it. The draws are keyed by the
 * image's index in the data set and the epoch, so every rank gathers a
 * global image as one process would. */
static void gather_batch(clcnn_trainer *t, const clcnn_dataset *data, int64_t first, int64_t count,
                         int slot) {
    const int64_t image_size = (int64_t)data->channels * data->height * data->width;
    const int augment = augment_enabled(&t->config);
    for (int64_t i = first; i < first + count; i++) {
        const int64_t index = t->order[i];
        const float *source = data->images + index * image_size;
        float *staged = t->batch_images[slot] + (i - first) * image_size;
        if (augment) {
            const augment_draw d = augment_draws(&t->config, t->epochs_done, index);
            augment_image(source, staged, data->channels, data->height, data->width,
                          t->config.augment_crop_pad, &d);
        } else {
            memcpy(staged, source, sizeof(float) * (size_t)image_size);
        }
        t->batch_labels[slot][i - first] = data->labels[index];
    }
}

/* This rank's share of global batch b of an epoch over count images: the
 * shuffled images *first .. *first + *share - 1. Returns the global batch's
 * image count. Rank r takes [n * r / W, n * (r + 1) / W) of the batch's n
 * images: batch_size each of a full batch, an even split of the short last
 * one. Every rank can compute every share, and the shares tile the batch. */
static int64_t rank_share(const clcnn_trainer *t, int64_t count, int64_t b, int64_t *first,
                          int64_t *share) {
    const int64_t global_batch = (int64_t)t->config.batch_size * t->world_size;
    const int64_t global_first = b * global_batch;
    const int64_t n = count - global_first < global_batch ? count - global_first : global_batch;
    const int64_t begin = n * t->rank / t->world_size;
    const int64_t end = n * (t->rank + 1) / t->world_size;
    *first = global_first + begin;
    *share = end - begin;
    return n;
}

/* Turns the rank's mean gradient over [first, end) (on the host) into its
 * contribution to the global batch's mean. */
static void scale_contribution(clcnn_trainer *t, const clcnn_gradient_step *step, int64_t first,
                               int64_t end) {
    float *gradients = t->net->host_gradients;
    if (step->images == 0) {
        /* No backward pass ran: the buffer holds the last step's gradient. */
        memset(gradients + first, 0, sizeof(float) * (size_t)(end - first));
    } else if (step->images != step->global_images) {
        /* The loss was the mean over this rank's images; the global loss is
         * the mean over the global batch. In double, for one rounding. */
        const double scale = (double)step->images / (double)step->global_images;
        for (int64_t i = first; i < end; i++)
            gradients[i] = (float)(gradients[i] * scale);
    }
}

/* The ready hook on count host gradients from first (none: a poll), its
 * failure an error of the step's. */
static clcnn_status call_ready_hook(clcnn_trainer *t, int64_t first, int64_t count) {
    clcnn_status status =
        t->ready_hook(t->ready_user, t->net->host_gradients, first, count, t->ready_step);
    if (status != CLCNN_OK)
        return set_error(
            t->net->ctx, status, "the gradient ready hook returned %s at epoch %d, batch %lld",
            clcnn_status_name(status), t->ready_step->epoch, (long long)t->ready_step->batch);
    return CLCNN_OK;
}

/* Bucket k's gradients are on the host: scales them and gives them to the ready hook. */
static clcnn_status deliver_bucket(clcnn_trainer *t, int k) {
    const int64_t first = t->bucket_first[k], end = t->bucket_end[k];
    scale_contribution(t, t->ready_step, first, end);
    return call_ready_hook(t, first, end - first);
}

/* Bucket k is final once its node's backward is done: on the reference
 * device it goes to the hook now; on a device its read is enqueued behind
 * the node's kernels and the hook gets it when the read has completed
 * (deliver_device_buckets). */
static clcnn_status emit_bucket(clcnn_trainer *t, int k) {
    clcnn_net *net = t->net;
    if (!context_is_opencl(net->ctx) || t->ready_step->images == 0)
        return deliver_bucket(t, k);
    const int64_t first = t->bucket_first[k], end = t->bucket_end[k];
    return cl_check(net->ctx,
                    clEnqueueReadBuffer(net->ctx->queue, net->device_gradients, CL_FALSE,
                                        sizeof(float) * (size_t)first,
                                        sizeof(float) * (size_t)(end - first),
                                        net->host_gradients + first, 0, NULL, &t->bucket_events[k]),
                    "clEnqueueReadBuffer");
}

/* The ready hook with no gradients: a chance to advance the exchanges
 * under way (clcnn.h). */
static clcnn_status poll_ready_hook(clcnn_trainer *t) {
    return call_ready_hook(t, 0, 0);
}

/* net->backward_node_done during a step with a ready hook. */
static clcnn_status bucket_node_done(void *user, int node) {
    clcnn_trainer *t = user;
    clcnn_status status = CLCNN_OK;
    const int emitted = t->buckets_emitted;
    while (status == CLCNN_OK && t->buckets_emitted < t->bucket_count &&
           t->bucket_node[t->buckets_emitted] >= node)
        status = emit_bucket(t, t->buckets_emitted++);
    /* On the reference device the node has just been computed: between two
     * nodes the exchanges under way move on. */
    if (status == CLCNN_OK && emitted == t->buckets_emitted && t->buckets_emitted > 0 &&
        !context_is_opencl(t->net->ctx))
        status = poll_ready_hook(t);
    return status;
}

/* Emits the buckets backward has not (all of them when it did not run). */
static clcnn_status emit_remaining_buckets(clcnn_trainer *t) {
    clcnn_status status = CLCNN_OK;
    while (status == CLCNN_OK && t->buckets_emitted < t->bucket_count)
        status = emit_bucket(t, t->buckets_emitted++);
    return status;
}

/* Waits for a read of a bucket; from the second bucket on, polls the ready
 * hook every READY_POLL_MICROSECONDS meanwhile so that the exchanges under
 * way move on while the device computes. */
#define READY_POLL_MICROSECONDS 100
static clcnn_status wait_for_bucket(clcnn_trainer *t, int k) {
    clcnn_context *ctx = t->net->ctx;
    if (k == 0)
        return cl_check(ctx, clWaitForEvents(1, &t->bucket_events[k]), "clWaitForEvents");
    for (;;) {
        cl_int state = CL_QUEUED;
        clcnn_status status =
            cl_check(ctx,
                     clGetEventInfo(t->bucket_events[k], CL_EVENT_COMMAND_EXECUTION_STATUS,
                                    sizeof(state), &state, NULL),
                     "clGetEventInfo");
        if (status != CLCNN_OK)
            return status;
        if (state == CL_COMPLETE)
            return CLCNN_OK;
        if (state < 0)
            return cl_check(ctx, state, "reading a gradient bucket");
        status = poll_ready_hook(t);
        if (status != CLCNN_OK)
            return status;
        const struct timespec pause = {0, READY_POLL_MICROSECONDS * 1000};
        nanosleep(&pause, NULL);
    }
}

/* On a device: waits for each bucket's read in turn and gives it to the
 * hook; after a failure (status) it only releases the reads' events. */
static clcnn_status deliver_device_buckets(clcnn_trainer *t, clcnn_status status) {
    for (int k = 0; k < t->bucket_count; k++) {
        if (!t->bucket_events[k])
            continue;
        if (status == CLCNN_OK)
            status = wait_for_bucket(t, k);
        clReleaseEvent(t->bucket_events[k]);
        t->bucket_events[k] = NULL;
        if (status == CLCNN_OK)
            status = deliver_bucket(t, k);
    }
    return status;
}

/* Lets the hook combine the ranks' contributions; without buckets this
 * first turns the rank's mean gradient into its contribution. */
static clcnn_status exchange_gradients(clcnn_trainer *t, clcnn_gradient_step *step, int scaled) {
    clcnn_net *net = t->net;
    float *gradients = net->host_gradients;
    const int64_t count = net->parameter_floats;
    if (!scaled)
        scale_contribution(t, step, 0, count);
    if (!t->gradient_hook)
        return CLCNN_OK;
    clcnn_status status = t->gradient_hook(t->gradient_user, gradients, count, step);
    if (status != CLCNN_OK)
        return set_error(net->ctx, status, "the gradient hook returned %s at epoch %d, batch %lld",
                         clcnn_status_name(status), step->epoch, (long long)step->batch);
    return CLCNN_OK;
}

clcnn_status clcnn_trainer_epoch(clcnn_trainer *t, const clcnn_dataset *data,
                                 clcnn_progress_fn progress, void *user, double *loss,
                                 double *accuracy) {
    if (!t || !data)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_net *net = t->net;
    clcnn_context *ctx = net->ctx;
    clcnn_status status = check_data(net, data);
    if (status != CLCNN_OK)
        return status;
    if (data->count < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "the training set is empty");
    free(t->order);
    t->order = malloc(sizeof(int64_t) * (size_t)data->count);
    if (!t->order)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for the shuffle");
    for (int64_t i = 0; i < data->count; i++)
        t->order[i] = i;
    for (int64_t i = data->count - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_uniform(&t->shuffle) * (double)(i + 1));
        int64_t swap = t->order[i];
        t->order[i] = t->order[j];
        t->order[j] = swap;
    }
    rank_sync *sync = NULL;
    status = prepare_steps(t, &sync);
    if (status != CLCNN_OK)
        return status;

    const int64_t units = shape3_count(net->layers[net->loss.logits_layer].out);
    const int64_t global_batch = (int64_t)t->config.batch_size * t->world_size;
    const int64_t batches = (data->count + global_batch - 1) / global_batch;
    const double learning_rate = learning_rate_at(&t->config, t->epochs_done);
    const int on_device = ctx->kind == CLCNN_DEVICE_OPENCL;
    const size_t gradient_bytes = sizeof(float) * (size_t)net->parameter_floats;
    const double start = clock_seconds();
    double loss_sum = 0.0;
    int64_t correct = 0, seen = 0;
    int64_t first, n, next_first = 0, next_n = 0;
    rank_share(t, data->count, 0, &first, &n);
    gather_batch(t, data, first, n, 0);
    for (int64_t b = 0; b < batches && status == CLCNN_OK; b++) {
        const int64_t global_n = rank_share(t, data->count, b, &first, &n);
        const int current = (int)(b % 2);
        const int64_t step_number = t->step + 1;
        /* Without a hook the step is the single-process one: the optimizer
         * follows backward on the device and the step has one wait. With a
         * hook (or no images of this rank's own) the gradient goes through
         * the host first. */
        const int exchange = t->gradient_hook != NULL || n == 0;
        /* With a ready hook the gradient goes to the host bucket by bucket. */
        const int buckets = exchange && t->gradient_hook && t->ready_hook;
        double batch_loss = 0.0;
        clcnn_gradient_step step;
        memset(&step, 0, sizeof(step));
        step.step = step_number;
        step.epoch = t->epochs_done + 1;
        step.batch = b + 1;
        step.batches = batches;
        step.rank = t->rank;
        step.world_size = t->world_size;
        step.global_images = global_n;
        step.images = n;
        if (buckets) {
            t->ready_step = &step;
            t->buckets_emitted = 0;
            net->backward_node_done = bucket_node_done;
            net->backward_node_user = t;
        }
        /* Random layers draw from (seed, step, image in the global batch). */
        net->random_seed = hash_bytes(hash_bytes(HASH_SEED, &t->config.seed, sizeof(uint64_t)),
                                      &step_number, sizeof(step_number));
        net->first_image = first - b * global_batch;
        /* With synchronised batch statistics a rank without images still
         * runs the passes: its batchnorm layers make their exchanges. */
        net->sync = sync;
        if (n > 0) {
            status = net_write_input(net, t->batch_images[current], (int)n);
            if (status == CLCNN_OK)
                status = net_stage_targets(net, (int)n, t->batch_labels[current], NULL);
        }
        if (status == CLCNN_OK && (n > 0 || sync))
            status = net_forward_stored(net, (int)n, 1);
        if (status == CLCNN_OK && (n > 0 || sync))
            status = net_backward_stored(net, (int)n, 1);
        net->sync = NULL;
        net->backward_node_done = NULL;
        net->backward_node_user = NULL;
        if (status == CLCNN_OK && buckets)
            status = emit_remaining_buckets(t);
        if (status == CLCNN_OK && !exchange)
            status = optimizer_update(t, learning_rate);
        /* The device works on this step while the host gathers the next batch. */
        if (status == CLCNN_OK && on_device)
            status = cl_check(ctx, clFlush(ctx->queue), "clFlush");
        if (b + 1 < batches) {
            rank_share(t, data->count, b + 1, &next_first, &next_n);
            gather_batch(t, data, next_first, next_n, 1 - current);
        }
        if (buckets && on_device)
            status = deliver_device_buckets(t, status);
        /* The scores' (and gradients') reads are enqueued and the losses'
         * read waits for them all. */
        if (status == CLCNN_OK && n > 0)
            status =
                net_read_output_async(net, net->loss.logits_layer, n * units, t->batch_outputs);
        if (status == CLCNN_OK && n > 0 && exchange && !buckets && on_device && gradient_bytes > 0)
            status =
                cl_check(ctx,
                         clEnqueueReadBuffer(ctx->queue, net->device_gradients, CL_FALSE, 0,
                                             gradient_bytes, net->host_gradients, 0, NULL, NULL),
                         "clEnqueueReadBuffer");
        if (status == CLCNN_OK && n > 0)
            status = net_read_loss(net, (int)n, &batch_loss);
        t->ready_step = NULL;
        if (status != CLCNN_OK)
            break;
        step.loss_sum = batch_loss * (double)n;
        step.correct = 0;
        for (int64_t i = 0; i < n; i++)
            step.correct += predicted_class(net, t->batch_outputs + i * units, units) ==
                            t->batch_labels[current][i];
        if (exchange)
            status = exchange_gradients(t, &step, buckets);
        if (status != CLCNN_OK)
            break;
        /* With a hook the tallies may be every rank's, so that all ranks
         * stop here together, before the update. */
        if (!isfinite(step.loss_sum)) {
            status = set_error(ctx, CLCNN_ERROR_DIVERGED,
                               "training diverged: the loss became %s at epoch %d, batch %lld of "
                               "%lld; try a lower learning rate than %g",
                               isnan(step.loss_sum) ? "NaN" : "infinite", t->epochs_done + 1,
                               (long long)(b + 1), (long long)batches, learning_rate);
            break;
        }
        if (exchange && on_device)
            status =
                buffer_write(ctx, net->device_gradients, 0, gradient_bytes, net->host_gradients);
        if (status == CLCNN_OK && exchange)
            status = optimizer_update(t, learning_rate);
        if (status == CLCNN_OK && exchange && on_device)
            status = cl_check(ctx, clFlush(ctx->queue), "clFlush");
        if (status != CLCNN_OK)
            break;
        loss_sum += step.loss_sum;
        correct += step.correct;
        seen += step.images;
        if (progress) {
            clcnn_progress p;
            p.epoch = t->epochs_done + 1;
            p.epochs = t->config.epochs;
            p.batch = b + 1;
            p.batches = batches;
            p.loss = seen > 0 ? loss_sum / (double)seen : 0.0;
            p.accuracy = seen > 0 ? (double)correct / (double)seen : 0.0;
            double elapsed = clock_seconds() - start;
            p.images_per_second = elapsed > 0 ? seen / elapsed : 0.0;
            p.eta_seconds = elapsed / (double)(b + 1) * (double)(batches - b - 1);
            p.learning_rate = learning_rate;
            if (progress(user, &p) != 0) {
                status = set_error(ctx, CLCNN_STOPPED,
                                   "the progress callback stopped epoch %d after batch %lld of "
                                   "%lld",
                                   t->epochs_done + 1, (long long)(b + 1), (long long)batches);
                break;
            }
        }
    }
    /* Passes after the epoch (evaluation, clcnn_net_forward) start their
     * draws at image 0 again. */
    net->first_image = 0;
    if (status != CLCNN_OK && status != CLCNN_STOPPED)
        return status;
    if (status == CLCNN_OK)
        t->epochs_done++;
    /* A rank that had no images all epoch (fewer images than ranks) reports
     * 0; a stopped epoch, the figures of its batches so far. */
    if (loss)
        *loss = seen > 0 ? loss_sum / (double)seen : 0.0;
    if (accuracy)
        *accuracy = seen > 0 ? (double)correct / (double)seen : 0.0;
    return status;
}

clcnn_status clcnn_trainer_step(clcnn_trainer *t, const float *images, const int32_t *labels,
                                int64_t count, double *loss, int64_t *correct) {
    if (!t || !images || !labels)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_net *net = t->net;
    clcnn_context *ctx = net->ctx;
    if (count < 1 || count > t->config.batch_size)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "a step takes 1 to %d images (the batch size), not %lld",
                         t->config.batch_size, (long long)count);
    rank_sync *sync = NULL;
    clcnn_status status = prepare_steps(t, &sync);
    if (status != CLCNN_OK)
        return status;
    const int n = (int)count;
    const int64_t units = shape3_count(net->layers[net->loss.logits_layer].out);
    const double learning_rate = learning_rate_at(&t->config, t->epochs_done);
    const int on_device = ctx->kind == CLCNN_DEVICE_OPENCL;
    const size_t gradient_bytes = sizeof(float) * (size_t)net->parameter_floats;
    const int exchange = t->gradient_hook != NULL;
    const int64_t step_number = t->step + 1;
    /* As in an epoch: every rank passes count images, this one the rank's
     * share of the global batch. */
    net->random_seed = hash_bytes(hash_bytes(HASH_SEED, &t->config.seed, sizeof(uint64_t)),
                                  &step_number, sizeof(step_number));
    net->first_image = (int64_t)t->rank * count;
    double batch_loss = 0.0;
    status = net_write_input(net, images, n);
    if (status == CLCNN_OK)
        status = net_stage_targets(net, n, labels, NULL);
    net->sync = sync;
    if (status == CLCNN_OK)
        status = net_forward_stored(net, n, 1);
    if (status == CLCNN_OK)
        status = net_backward_stored(net, n, 1);
    net->sync = NULL;
    if (status == CLCNN_OK && !exchange)
        status = optimizer_update(t, learning_rate);
    if (status == CLCNN_OK)
        status = net_read_output_async(net, net->loss.logits_layer, n * units, t->batch_outputs);
    if (status == CLCNN_OK && exchange && on_device && gradient_bytes > 0)
        status = cl_check(ctx,
                          clEnqueueReadBuffer(ctx->queue, net->device_gradients, CL_FALSE, 0,
                                              gradient_bytes, net->host_gradients, 0, NULL, NULL),
                          "clEnqueueReadBuffer");
    if (status == CLCNN_OK)
        status = net_read_loss(net, n, &batch_loss);
    net->first_image = 0;
    if (status != CLCNN_OK)
        return status;
    clcnn_gradient_step step;
    step.step = step_number;
    step.epoch = t->epochs_done + 1;
    step.batch = 1;
    step.batches = 1;
    step.rank = t->rank;
    step.world_size = t->world_size;
    step.global_images = count * t->world_size;
    step.images = count;
    step.loss_sum = batch_loss * (double)count;
    step.correct = 0;
    for (int i = 0; i < n; i++)
        step.correct += predicted_class(net, t->batch_outputs + i * units, units) == labels[i];
    /* A single step hands the whole buffer to the gradient hook: no buckets. */
    if (exchange)
        status = exchange_gradients(t, &step, 0);
    if (status == CLCNN_OK && !isfinite(step.loss_sum))
        status = set_error(ctx, CLCNN_ERROR_DIVERGED,
                           "training diverged: the loss became %s at step %lld; try a lower "
                           "learning rate than %g",
                           isnan(step.loss_sum) ? "NaN" : "infinite", (long long)step_number,
                           learning_rate);
    if (status == CLCNN_OK && exchange && on_device)
        status = buffer_write(ctx, net->device_gradients, 0, gradient_bytes, net->host_gradients);
    if (status == CLCNN_OK && exchange)
        status = optimizer_update(t, learning_rate);
    if (status != CLCNN_OK)
        return status;
    if (loss)
        *loss = step.loss_sum / (double)step.images;
    if (correct)
        *correct = step.correct;
    return CLCNN_OK;
}

/* The loss of one image from the logits layer's values, as the training loss defines it. */
static double image_loss(const clcnn_net *net, const float *values, int64_t units, int label) {
    if (net->loss.kind == CLCNN_LOSS_CROSS_ENTROPY) {
        double largest = values[0];
        for (int64_t j = 1; j < units; j++)
            largest = max_keep_nan(largest, values[j]);
        double sum = 0.0;
        for (int64_t j = 0; j < units; j++)
            sum += exp(values[j] - largest);
        return log(sum) + largest - values[label];
    }
    if (net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY) {
        double z = values[0], target = label;
        return max_keep_nan(z, 0.0) - z * target + log1p(exp(-fabs(z)));
    }
    double sum = 0.0;
    for (int64_t j = 0; j < units; j++) {
        double d = values[j] - (j == label ? 1.0 : 0.0);
        sum += d * d;
    }
    return sum / units;
}

clcnn_status clcnn_net_evaluate(clcnn_net *net, const clcnn_dataset *data, double *loss,
                                double *accuracy, int64_t *confusion) {
    if (!net || !data)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    clcnn_status status = context_require_device(ctx);
    if (status == CLCNN_OK)
        status = check_data(net, data);
    if (status == CLCNN_OK && net->loss.kind == CLCNN_LOSS_AUTO)
        status = clcnn_net_set_loss(net, CLCNN_LOSS_AUTO);
    if (status != CLCNN_OK)
        return status;
    const int64_t units = shape3_count(net->layers[net->loss.logits_layer].out);
    const int classes = net->loss.kind == CLCNN_LOSS_BINARY_CROSS_ENTROPY ? 2 : (int)units;
    for (int64_t i = 0; i < data->count; i++)
        if (data->labels[i] < 0 || data->labels[i] >= classes)
            return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                             "label %d of image %lld is not one of the network's %d classes",
                             (int)data->labels[i], (long long)i, classes);
    const int64_t largest = net_largest_activation(net);
    int64_t chunk = data->count < EVALUATION_CHUNK ? data->count : EVALUATION_CHUNK;
    if (chunk > INT32_MAX / largest)
        chunk = INT32_MAX / largest;
    if (chunk < 1)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT, "the data set is empty");
    status = net_ensure_inference_chunk(net, &chunk);
    if (status == CLCNN_OK)
        status = net_sync_parameters_to_device(net);
    if (status == CLCNN_OK)
        status = net_fold_layers(net);
    float *values = malloc(sizeof(float) * (size_t)(chunk * units));
    if (!values)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for evaluation");
    if (confusion)
        memset(confusion, 0, sizeof(int64_t) * (size_t)(classes * classes));
    const int64_t image_size = clcnn_net_input_size(net);
    double loss_sum = 0.0;
    int64_t correct = 0;
    for (int64_t first = 0; first < data->count && status == CLCNN_OK; first += chunk) {
        const int n = (int)(data->count - first < chunk ? data->count - first : chunk);
        status = net_write_input(net, data->images + first * image_size, n);
        if (status == CLCNN_OK)
            status = net_forward_folded(net, n, first);
        if (status == CLCNN_OK)
            status = net_read_output(net, net->loss.logits_layer, n * units, values);
        for (int i = 0; i < n && status == CLCNN_OK; i++) {
            const int label = data->labels[first + i];
            const int predicted = predicted_class(net, values + i * units, units);
            loss_sum += image_loss(net, values + i * units, units, label);
            correct += predicted == label;
            if (confusion)
                confusion[label * classes + predicted]++;
        }
    }
    free(values);
    if (status != CLCNN_OK)
        return status;
    if (loss)
        *loss = loss_sum / data->count;
    if (accuracy)
        *accuracy = (double)correct / data->count;
    return CLCNN_OK;
}
