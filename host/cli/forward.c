/* clcnn forward NET (--weights DIR | --seed S) --input X --output Y.npy [--trace DIR] [--limit N]
 *               [--profile] [--mode train|eval] [--random-seed S] */
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
    int64_t size = cli_layer_size(&info);
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

static int run_forward(const cli_common *common, const cli_args *args) {
    const char *net_path = args->positional[0], *weights = cli_value(args, "--weights"),
               *input = cli_value(args, "--input"), *output = cli_value(args, "--output"),
               *trace = cli_value(args, "--trace");
    int64_t seed = -1, limit = -1;
    const int profile = cli_given(args, "--profile"), print = cli_given(args, "--print");
    cli_pass pass = {-1, -1};
    if (cli_int_option(args, "--seed", &seed) != 0 ||
        cli_int_option(args, "--limit", &limit) != 0 || cli_read_pass(args, &pass) != 0)
        return CLI_USAGE;
    if (!input)
        return cli_usage(args->command, "missing --input X.npy (or an IDX image file)");
    if (!output && !trace && !print)
        return cli_usage(args->command, "missing --output Y.npy");
    if (weights && seed >= 0)
        return cli_usage(args->command, "give --weights or --seed, not both");
    if (output && cli_check_output_file(output, "the output") != 0)
        return 1;

    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    float *images = NULL, *outputs = NULL;
    int64_t count = 0;
    int layer_count = 0;
    trace_state state = {0};
    int result = 0;
    int has_parameters = 0;
    if (clcnn_net_load(ctx, net_path, &net, NULL, &has_parameters) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    if (!weights && seed < 0 && !has_parameters) {
        result =
            cli_usage(args->command, "missing --weights DIR (or --seed S to initialise weights)");
        goto done;
    }
    /* a model or ONNX file brings its weights, which --weights or --seed replace */
    clcnn_status status = weights     ? clcnn_net_load_weights(net, weights)
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
    if (trace && mkdir(trace, 0755) != 0 && errno != EEXIST) {
        result = cli_fail("%s: cannot create directory: %s", trace, strerror(errno));
        goto done;
    }
    if (trace || print) {
        state.net = net;
        state.batch = count;
        state.layers = calloc((size_t)layer_count, sizeof(float *));
        for (int i = 1; state.layers && i < layer_count; i++) {
            clcnn_layer_info info;
            clcnn_net_layer_info(net, i, &info);
            int64_t size = cli_layer_size(&info);
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
    if (clcnn_net_forward(net, images, count, outputs, state.layers ? trace_layer : NULL, &state) !=
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
    /* Every layer's output, image by image, as numbers. */
    for (int64_t n = 0; print && n < count; n++)
        for (int i = 0; i < layer_count; i++) {
            clcnn_layer_info info;
            clcnn_net_layer_info(net, i, &info);
            const int64_t size = cli_layer_size(&info);
            char label[160];
            if (count > 1)
                snprintf(label, sizeof(label), "[%lld] %s", (long long)n, info.name);
            else
                snprintf(label, sizeof(label), "%s", info.name);
            cli_print_values(stdout, label, info.ndim, info.shape,
                             i == 0 ? images + n * size : state.layers[i] + n * size);
        }
    if (print)
        fflush(stdout);
    fprintf(stderr, "forward: %lld image%s on %s in %.3f s (%.0f images/s)\n", (long long)count,
            count == 1 ? "" : "s", clcnn_device_name(ctx), elapsed,
            elapsed > 0 ? count / elapsed : 0.0);
    if (profile) {
        char report[8192];
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

const cli_command cli_command_forward = {
    "forward",
    "NET",
    1,
    1,
    "run the network on a batch of images",
    "The input is a .npy of shape (N, C, H, W) or (C, H, W), float32 or float64, or an IDX "
    "image file (raw or gzip) whose bytes are scaled to [0, 1]. The output is the last layer's "
    "output as float32: (N, units) or (N, C, H, W).\n\n"
    "NET is a network file, or a model file or an ONNX file (FILE.onnx), which brings its "
    "weights: --weights or --seed then replace them. A model's normalisation is not applied: "
    "the input goes to the network as it is.\n",
    (const cli_option[]){
        {"--weights", "DIR",
         "read one <tensor>.npy per named tensor from DIR (a model or ONNX NET needs none)"},
        {"--seed", "S", "initialise the weights from seed S instead (He or Xavier, biases 0)"},
        {"--input", "X", "the images: a .npy or an IDX image file"},
        {"--output", "Y.npy", "write the last layer's output here"},
        {"--trace", "DIR", "also write every layer's output as DIR/NN-<layer>.npy"},
        {"--limit", "N", "use the first N images"},
        {"--profile", NULL, "print the device time of every kernel"},
        {"--print", NULL, "print every layer's output as numbers, image by image"},
        CLI_PASS_OPTIONS,
        {NULL, NULL, NULL}},
    run_forward};
