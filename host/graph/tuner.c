/* clcnn_tune: times candidate configurations of the register-blocked
 * convolution kernels on a network's layers and keeps the fastest in the
 * device's tuning file (host/core/config.c reads and writes it). */
#include "layers/layer.h"

#include <stdlib.h>

enum { TUNE_OPERATIONS = 3, TUNE_REPEATS = 3, MAX_CANDIDATES = 48 };
static const char *const tune_operations[TUNE_OPERATIONS] = {"forward", "backward_data",
                                                             "backward_weights"};

/* The buffers one layer's three operations read and write, filled once. */
typedef struct tune_buffers {
    cl_mem input, weight, bias, output, grad_output, grad_input, grad_weight, grad_bias, scratch;
} tune_buffers;

static void release_tune_buffers(tune_buffers *b) {
    cl_mem *all[] = {&b->input,      &b->weight,      &b->bias,      &b->output, &b->grad_output,
                     &b->grad_input, &b->grad_weight, &b->grad_bias, &b->scratch};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        buffer_release(all[i]);
}

static clcnn_status random_buffer(clcnn_context *ctx, rng *r, size_t count, cl_mem *out) {
    float *values = malloc(sizeof(float) * (count ? count : 1));
    if (!values)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tuning");
    for (size_t i = 0; i < count; i++)
        values[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    clcnn_status status = buffer_create(ctx, sizeof(float) * count, out);
    if (status == CLCNN_OK)
        status = buffer_write(ctx, *out, 0, sizeof(float) * count, values);
    free(values);
    return status;
}

static clcnn_status run_operation(clcnn_context *ctx, int operation, const direct_config *c,
                                  const conv2d_params *p, const tune_buffers *b) {
    if (operation == 0)
        return conv2d_forward_direct(ctx, c, p, b->input, b->weight, b->bias, b->output);
    if (operation == 1)
        return conv2d_backward_data_direct(ctx, c, p, b->grad_output, b->weight, b->grad_input);
    return conv2d_backward_weights_direct(ctx, c, p, b->input, b->grad_output, b->grad_weight,
                                          b->grad_bias, b->scratch);
}

/* Median wall time of TUNE_REPEATS runs after one that builds and warms up. */
static clcnn_status time_operation(clcnn_context *ctx, int operation, const direct_config *c,
                                   const conv2d_params *p, const tune_buffers *b, double *seconds) {
    double times[TUNE_REPEATS];
    clcnn_status status = run_operation(ctx, operation, c, p, b);
    if (status == CLCNN_OK)
        status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
    for (int i = 0; i < TUNE_REPEATS && status == CLCNN_OK; i++) {
        double start = clock_seconds();
        status = run_operation(ctx, operation, c, p, b);
        if (status == CLCNN_OK)
            status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
        times[i] = clock_seconds() - start;
    }
    if (status != CLCNN_OK)
        return status;
    for (int i = 1; i < TUNE_REPEATS; i++)
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double swap = times[j];
            times[j] = times[j - 1];
            times[j - 1] = swap;
        }
    *seconds = times[TUNE_REPEATS / 2];
    return CLCNN_OK;
}

/* The device's vector width and the narrower ones down to 4 (few channels
 * fill a narrow vector better), vectors per work-item up to what the
 * channels fill, and positions so that at most 24 accumulator vectors are
 * live. The default configuration comes first. */
static int tune_candidates(clcnn_context *ctx, int channels, direct_config *out) {
    const direct_config fallback = direct_config_for(ctx, channels);
    const int positions[] = {1, 2, 4, 8, 12, 16};
    int count = 0;
    out[count++] = fallback;
    for (int vw = fallback.vw; vw >= 4 && vw >= fallback.vw / 4; vw /= 2) {
        const int vectors = (channels + vw - 1) / vw;
        for (int nv = 1; nv <= 4 && nv <= (vectors > 1 ? vectors : 1); nv++)
            for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
                direct_config c = {vw, nv, positions[i], fallback.group};
                if (nv * c.wpt_p > 24 || count == MAX_CANDIDATES)
                    continue;
                if (c.vw == fallback.vw && c.nv == fallback.nv && c.wpt_p == fallback.wpt_p)
                    continue;
                out[count++] = c;
            }
    }
    return count;
}

/* A grouped or dilated convolution is tuned as it runs: the -DGENERAL
 * kernels over all its groups, the candidates sized for one group's
 * channels; its entries in the tuning file carry the dilation and the groups
 * in their keys. A depthwise one runs on kernels with nothing to tune. */
clcnn_status tune_as_convolution(clcnn_context *ctx, const layer *l, int batch, rng *r,
                                 char *report, size_t size, size_t *used) {
    const conv2d_params p = layer_conv2d_params(l, batch);
    if (conv2d_runs_depthwise(&p)) {
        text_append(report, size, used, "%-12s depthwise kernels: nothing to tune\n", l->name);
        return CLCNN_OK;
    }
    const int groups = conv2d_groups(&p);
    const size_t in_count = (size_t)p.batch * p.in_channels * p.in_height * p.in_width;
    const size_t out_count = (size_t)p.batch * p.out_channels * p.out_height * p.out_width;
    const size_t weight_count =
        (size_t)p.out_channels * (p.in_channels / groups) * p.kernel_h * p.kernel_w;
    direct_config candidates[TUNE_OPERATIONS][MAX_CANDIDATES];
    int counts[TUNE_OPERATIONS];
    size_t scratch = 4;
    for (int op = 0; op < TUNE_OPERATIONS; op++) {
        counts[op] = tune_candidates(ctx, (op == 1 ? p.in_channels : p.out_channels) / groups,
                                     candidates[op]);
        for (int i = 0; op == 2 && i < counts[op]; i++) {
            size_t bytes = conv2d_backward_weights_direct_scratch_bytes(&candidates[op][i], &p);
            scratch = bytes > scratch ? bytes : scratch;
        }
    }
    tune_buffers b = {0};
    clcnn_status status = random_buffer(ctx, r, in_count, &b.input);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, weight_count, &b.weight);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, (size_t)p.out_channels, &b.bias);
    if (status == CLCNN_OK)
        status = random_buffer(ctx, r, out_count, &b.grad_output);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * out_count, &b.output);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * in_count, &b.grad_input);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * weight_count, &b.grad_weight);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, sizeof(float) * (size_t)p.out_channels, &b.grad_bias);
    if (status == CLCNN_OK)
        status = buffer_create(ctx, scratch, &b.scratch);
    for (int op = 0; op < TUNE_OPERATIONS && status == CLCNN_OK; op++) {
        double best = 0.0, first = 0.0;
        int winner = 0;
        for (int i = 0; i < counts[op] && status == CLCNN_OK; i++) {
            double seconds;
            status = time_operation(ctx, op, &candidates[op][i], &p, &b, &seconds);
            if (i == 0)
                first = seconds;
            if (status == CLCNN_OK && (i == 0 || seconds < best)) {
                best = seconds;
                winner = i;
            }
        }
        if (status != CLCNN_OK)
            break;
        const direct_config *c = &candidates[op][winner];
        status = tuning_remember(ctx, tune_operations[op], &p, c);
        text_append(report, size, used,
                    "%-12s %-16s vw %2d nv %d positions %2d: %8.3f ms (default %8.3f ms, %d "
                    "candidates)\n",
                    l->name, tune_operations[op], c->vw, c->nv, c->wpt_p, best * 1e3, first * 1e3,
                    counts[op]);
    }
    release_tune_buffers(&b);
    return status;
}

clcnn_status clcnn_tune(clcnn_net *net, int batch, char *report, size_t size) {
    if (!net || batch < 1 || !report || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    report[0] = 0;
    if (ctx->kind != CLCNN_DEVICE_OPENCL)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "tuning needs an OpenCL device; the reference has nothing to tune");
    if (!use_direct_kernels(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "this device runs the tiled kernels, which clcnn does not tune yet");
    size_t used = 0;
    rng r;
    rng_seed(&r, 12345);
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++) {
        const layer *l = &net->layers[i];
        if (l->type->tune)
            status = l->type->tune(ctx, l, batch, &r, report, size, &used);
    }
    if (status == CLCNN_OK)
        status = tuning_save(ctx);
    /* The scratch of backward-weights depends on the configuration: plan again. */
    net_release_activations(net);
    return status;
}
