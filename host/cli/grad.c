/* clcnn grad NET --weights DIR --input X.npy --labels L.npy --output DIR [--loss L] */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_parse_loss(const char *text, clcnn_loss *out) {
    if (strcmp(text, "auto") == 0)
        *out = CLCNN_LOSS_AUTO;
    else if (strcmp(text, "xent") == 0 || strcmp(text, "cross-entropy") == 0)
        *out = CLCNN_LOSS_CROSS_ENTROPY;
    else if (strcmp(text, "bce") == 0 || strcmp(text, "binary-cross-entropy") == 0)
        *out = CLCNN_LOSS_BINARY_CROSS_ENTROPY;
    else if (strcmp(text, "mse") == 0)
        *out = CLCNN_LOSS_MSE;
    else
        return cli_fail("--loss: expected auto, xent, bce or mse, got '%s'", text);
    return 0;
}

/* Labels: integers (N,) are class indices; floats (N,) or (N, 1) are binary
 * targets; floats (N, D) are MSE targets. */
static int read_labels(clcnn_context *ctx, const char *path, int64_t batch, int32_t **labels,
                       float **targets) {
    clcnn_array array;
    if (clcnn_npy_read(ctx, path, &array) != CLCNN_OK)
        return cli_fail_context(ctx);
    int result = 0;
    if (array.ndim < 1 || array.shape[0] != batch) {
        result = cli_fail("%s: expected %lld labels (one per input image), got shape with first "
                          "dimension %lld",
                          path, (long long)batch, array.ndim ? (long long)array.shape[0] : 0LL);
    } else if (array.dtype == CLCNN_INT32 || array.dtype == CLCNN_INT64 ||
               array.dtype == CLCNN_UINT8) {
        if (array.ndim != 1)
            result = cli_fail("%s: integer labels must have shape (N,)", path);
        *labels = malloc(sizeof(int32_t) * (size_t)(batch + 1));
        for (int64_t i = 0; result == 0 && *labels && i < batch; i++) {
            int64_t v = array.dtype == CLCNN_INT32   ? ((int32_t *)array.data)[i]
                        : array.dtype == CLCNN_INT64 ? ((int64_t *)array.data)[i]
                                                     : ((uint8_t *)array.data)[i];
            if (v < 0 || v > INT32_MAX)
                result = cli_fail("%s: label %lld of image %lld is not a class index", path,
                                  (long long)v, (long long)i);
            (*labels)[i] = (int32_t)v;
        }
        if (!*labels && result == 0)
            result = cli_fail("out of memory");
    } else if (clcnn_array_to_float32(ctx, &array) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        *targets = array.data;
        array.data = NULL; /* ownership moves to the caller */
    }
    clcnn_array_free(&array);
    return result;
}

/* Writes the gradient of tensor `name` ("conv1.weight", or "input") as DIR/<name>.grad.npy. */
static int write_gradient(clcnn_context *ctx, clcnn_net *net, const char *dir, const char *name,
                          const int64_t *shape, int ndim) {
    int64_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    float *values = malloc(sizeof(float) * (size_t)(count + 1));
    if (!values)
        return cli_fail("out of memory");
    int result = 0;
    if (clcnn_net_get_tensor_gradient(net, name, values, count) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.grad.npy", dir, name);
        clcnn_array array = {0};
        array.dtype = CLCNN_FLOAT32;
        array.ndim = ndim;
        memcpy(array.shape, shape, sizeof(int64_t) * (size_t)ndim);
        array.data = values;
        if (clcnn_npy_write(ctx, path, &array) != CLCNN_OK)
            result = cli_fail_context(ctx);
    }
    free(values);
    return result;
}

static int run_grad(const cli_common *common, const cli_args *args) {
    const char *net_path = args->positional[0], *weights = cli_value(args, "--weights"),
               *input = cli_value(args, "--input"), *labels_path = cli_value(args, "--labels"),
               *output = cli_value(args, "--output"), *loss_text = cli_value(args, "--loss");
    clcnn_loss loss_kind = CLCNN_LOSS_AUTO;
    cli_pass pass = {-1, -1};
    if (cli_read_pass(args, &pass) != 0 ||
        (loss_text && cli_parse_loss(loss_text, &loss_kind) != 0))
        return CLI_USAGE;
    if (!input || !labels_path || !output)
        return cli_usage(args->command, "needs --input X.npy, --labels L.npy and --output DIR");

    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    float *images = NULL, *targets = NULL;
    int32_t *labels = NULL;
    int64_t count = 0;
    double loss = 0.0;
    int result = 0, has_parameters = 0;
    if (clcnn_net_load(ctx, net_path, &net, NULL, &has_parameters) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    /* a model or ONNX file brings its weights */
    if (!weights && !has_parameters) {
        result =
            cli_usage(args->command, "needs --weights DIR (unless NET is a model or ONNX file)");
        goto done;
    }
    if ((weights && clcnn_net_load_weights(net, weights) != CLCNN_OK) ||
        clcnn_net_set_loss(net, loss_kind) != CLCNN_OK || cli_apply_pass(net, &pass) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    if (cli_read_images(ctx, net, input, &images, &count) != 0 ||
        read_labels(ctx, labels_path, count, &labels, &targets) != 0) {
        result = 1;
        goto done;
    }
    if (targets && clcnn_net_loss(net) == CLCNN_LOSS_MSE) {
        /* MSE targets must cover every output. */
        clcnn_array check;
        if (clcnn_npy_read(ctx, labels_path, &check) == CLCNN_OK) {
            int64_t per_image = clcnn_array_count(&check) / (count ? count : 1);
            clcnn_array_free(&check);
            if (per_image != clcnn_net_output_size(net)) {
                result = cli_fail("%s: MSE needs %lld targets per image, got %lld", labels_path,
                                  (long long)clcnn_net_output_size(net), (long long)per_image);
                goto done;
            }
        }
    }
    const clcnn_status status = clcnn_net_backward(net, images, count, labels, targets, &loss);
    if (status != CLCNN_OK) {
        /* Of what this command passes, the library refuses only the labels as invalid. */
        result = status == CLCNN_ERROR_INVALID_ARGUMENT
                     ? cli_fail("%s: %s", labels_path, clcnn_last_error(ctx))
                     : cli_fail_context(ctx);
        goto done;
    }
    if (mkdir(output, 0755) != 0 && errno != EEXIST) {
        result = cli_fail("%s: cannot create directory: %s", output, strerror(errno));
        goto done;
    }
    for (int i = 0; i < clcnn_net_tensor_count(net) && result == 0; i++) {
        clcnn_tensor_info info;
        clcnn_net_tensor_info(net, i, &info);
        if (info.kind == CLCNN_TENSOR_PARAMETER)
            result = write_gradient(ctx, net, output, info.name, info.shape, info.ndim);
    }
    if (result == 0) {
        clcnn_layer_info input_info;
        clcnn_net_layer_info(net, 0, &input_info);
        int64_t shape[4] = {count, input_info.shape[0], input_info.shape[1], input_info.shape[2]};
        result = write_gradient(ctx, net, output, "input", shape, 4);
    }
    if (result == 0)
        printf("loss %.9g (%s, mean over %lld images)\n", loss,
               clcnn_loss_name(clcnn_net_loss(net)), (long long)count);
done:
    free(images);
    free(labels);
    free(targets);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_grad = {
    "grad",
    "NET",
    1,
    1,
    "one forward and backward pass: print the loss, write the gradients",
    "Prints the loss (the mean over the batch) and writes <tensor>.grad.npy for every parameter "
    "and input.grad.npy into the output directory. The loss follows the last layer: softmax "
    "gives cross-entropy, a one-unit sigmoid binary cross-entropy, anything else mean squared "
    "error. Labels are integer class indices (N,), float targets (N,) or (N, 1) for binary "
    "cross-entropy, or float (N, D) targets for MSE.\n\n"
    "NET is a network file, or a model file or an ONNX file (FILE.onnx), which brings its "
    "weights: --weights then replaces them.\n",
    (const cli_option[]){{"--weights", "DIR",
                          "read one <tensor>.npy per named tensor from DIR (a model or ONNX NET "
                          "needs none)"},
                         {"--input", "X.npy", "the images"},
                         {"--labels", "L.npy", "the labels or targets, one per image"},
                         {"--output", "DIR", "write the gradients here"},
                         {"--loss", "auto|xent|bce|mse", "the loss (default: from the last layer)"},
                         CLI_PASS_OPTIONS,
                         {NULL, NULL, NULL}},
    run_grad};
