/* clcnn forward NET (--weights DIR | --seed S) --input X --output Y.npy [--trace DIR] [--limit N]
 *               [--profile] */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Every traced layer's output for the whole batch, written once the pass is done. */
typedef struct trace_state {
    clcnn_net *net;
    int64_t batch;
    float **layers; /* [layer index] -> batch * layer size floats */
} trace_state;

static clcnn_status trace_layer(void *user, int layer_index, const float *values, int64_t first,
                                int64_t count) {
    trace_state *state = user;
    clcnn_layer_info info;
    clcnn_net_layer_info(state->net, layer_index, &info);
    int64_t size =
        info.ndim == 3 ? (int64_t)info.shape[0] * info.shape[1] * info.shape[2] : info.shape[0];
    memcpy(state->layers[layer_index] + first * size, values,
           sizeof(float) * (size_t)(count * size));
    return CLCNN_OK;
}

/* Writes values for batch images of a layer as (N, C, H, W) or (N, units). */
static clcnn_status write_layer_npy(clcnn_context *ctx, const char *path,
                                    const clcnn_layer_info *info, int64_t batch, float *values) {
    clcnn_array array = {0};
    array.dtype = CLCNN_FLOAT32;
    array.ndim = info->ndim + 1;
    array.shape[0] = batch;
    for (int d = 0; d < info->ndim; d++)
        array.shape[d + 1] = info->shape[d];
    array.data = values;
    return clcnn_npy_write(ctx, path, &array);
}

int command_forward(const cli_common *common, int argc, char **argv) {
    const char *net_path = NULL, *weights = NULL, *input = NULL, *output = NULL, *trace = NULL;
    int64_t seed = -1, limit = -1;
    int profile = 0;
    cli_pass pass = {-1, -1};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char **target = NULL;
        int64_t *number = NULL;
        const int pass_option = cli_pass_option("forward", argc, argv, &i, &pass);
        if (pass_option < 0)
            return 2;
        if (pass_option > 0)
            continue;
        if (strcmp(arg, "--profile") == 0) {
            profile = 1;
            continue;
        }
        if (strcmp(arg, "--weights") == 0)
            target = &weights;
        else if (strcmp(arg, "--input") == 0)
            target = &input;
        else if (strcmp(arg, "--output") == 0)
            target = &output;
        else if (strcmp(arg, "--trace") == 0)
            target = &trace;
        else if (strcmp(arg, "--seed") == 0)
            number = &seed;
        else if (strcmp(arg, "--limit") == 0)
            number = &limit;
        else if (arg[0] == '-' && arg[1] == '-')
            return cli_fail("forward: unknown option '%s'", arg);
        else if (!net_path) {
            net_path = arg;
            continue;
        } else
            return cli_fail("forward: unexpected argument '%s'", arg);
        if (i + 1 >= argc)
            return cli_fail("forward: %s needs a value", arg);
        if (target)
            *target = argv[++i];
        else if (cli_parse_int64(arg, argv[++i], number) != 0)
            return 2;
    }
    if (!net_path)
        return cli_fail("usage: clcnn forward NET (--weights DIR | --seed S) --input X.npy "
                        "--output Y.npy [--trace DIR] [--limit N] [--profile] [--mode train|eval] "
                        "[--random-seed S]");
    if (!input)
        return cli_fail("forward: missing --input X.npy (or an IDX image file)");
    if (!weights && seed < 0 && !cli_is_onnx(net_path))
        return cli_fail("forward: missing --weights DIR (or --seed S to initialise weights)");
    if (!output && !trace)
        return cli_fail("forward: missing --output Y.npy");
    if (output && cli_check_output_file(output, "the output") != 0)
        return 1;
    if (weights && seed >= 0)
        return cli_fail("forward: give --weights or --seed, not both");

    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    float *images = NULL, *outputs = NULL;
    int64_t count = 0;
    int layer_count = 0;
    trace_state state = {0};
    int result = 0;
    if (clcnn_net_from_file(ctx, net_path, &net) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    /* an ONNX file brings its weights, which --weights or --seed replace */
    clcnn_status status = weights      ? clcnn_net_load_weights(net, weights)
                          : seed >= 0 ? clcnn_net_init_weights(net, (uint64_t)seed)
                                      : CLCNN_OK;
    if (status == CLCNN_OK)
        status = cli_apply_pass(net, &pass);
    if (status != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    if (cli_read_images(ctx, net, input, &images, &count) != 0) {
        result = 1;
        goto done;
    }
    if (limit >= 0 && limit < count)
        count = limit;
    layer_count = clcnn_net_layer_count(net);
    outputs = malloc(sizeof(float) * (size_t)(count * clcnn_net_output_size(net) + 1));
    if (!outputs) {
        result = cli_fail("out of memory for %lld outputs", (long long)count);
        goto done;
    }
    if (trace) {
        if (mkdir(trace, 0755) != 0 && errno != EEXIST) {
            result = cli_fail("%s: cannot create directory: %s", trace, strerror(errno));
            goto done;
        }
        state.net = net;
        state.batch = count;
        state.layers = calloc((size_t)layer_count, sizeof(float *));
        for (int i = 1; state.layers && i < layer_count; i++) {
            clcnn_layer_info info;
            clcnn_net_layer_info(net, i, &info);
            int64_t size = info.ndim == 3 ? (int64_t)info.shape[0] * info.shape[1] * info.shape[2]
                                          : info.shape[0];
            state.layers[i] = malloc(sizeof(float) * (size_t)(count * size + 1));
            if (!state.layers[i]) {
                result = cli_fail("out of memory for the trace");
                goto done;
            }
        }
        if (!state.layers) {
            result = cli_fail("out of memory for the trace");
            goto done;
        }
    }

    clcnn_profile_enable(ctx, profile);
    double start = cli_seconds();
    if (clcnn_net_forward(net, images, count, outputs, trace ? trace_layer : NULL, &state) !=
        CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    double elapsed = cli_seconds() - start;

    clcnn_layer_info last;
    clcnn_net_layer_info(net, layer_count - 1, &last);
    if (output && write_layer_npy(ctx, output, &last, count, outputs) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    for (int i = 1; trace && i < layer_count; i++) {
        clcnn_layer_info info;
        clcnn_net_layer_info(net, i, &info);
        char path[4096];
        snprintf(path, sizeof(path), "%s/%02d-%s.npy", trace, i, info.name);
        if (write_layer_npy(ctx, path, &info, count, state.layers[i]) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
    }
    fprintf(stderr, "forward: %lld images on %s in %.3f s (%.0f images/s)\n", (long long)count,
            clcnn_device_name(ctx), elapsed, elapsed > 0 ? count / elapsed : 0.0);
    if (profile) {
        char report[4096];
        clcnn_profile_report(ctx, report, sizeof(report));
        fprintf(stderr, "kernel                   launches    seconds\n%s", report);
    }
done:
    if (state.layers) {
        for (int i = 0; i < layer_count; i++)
            free(state.layers[i]);
        free(state.layers);
    }
    free(images);
    free(outputs);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
