/* clcnn export MODEL DIR: a model's network file and .npy weights.
 * clcnn export MODEL FILE.onnx: the model as ONNX.
 * clcnn import NET DIR MODEL: a model from a network file and .npy weights.
 * clcnn import FILE.onnx MODEL: a model from ONNX.
 *
 * None runs the network, so none needs a device: they work on machines
 * without OpenCL whatever --device says. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int cli_is_onnx(const char *path) {
    size_t length = strlen(path);
    return length >= 5 && strcasecmp(path + length - 5, ".onnx") == 0;
}

/* Writes text to path; returns 0, or 1 after printing why not. */
static int write_text_file(const char *path, const char *text) {
    FILE *file = fopen(path, "w");
    if (!file)
        return cli_fail("%s: cannot create: %s", path, strerror(errno));
    size_t length = strlen(text);
    int failed = fwrite(text, 1, length, file) != length;
    if (fclose(file) != 0)
        failed = 1;
    if (failed)
        return cli_fail("%s: write failed: %s", path, strerror(errno));
    return 0;
}

int command_export(const cli_common *common, int argc, char **argv) {
    if (argc != 2)
        return cli_fail("usage: clcnn export MODEL DIR, or clcnn export MODEL FILE.onnx");
    const char *model_path = argv[0], *target = argv[1];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    int result = 0;
    if (clcnn_model_load(ctx, model_path, &net, NULL, NULL) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else if (cli_is_onnx(target)) {
        if (clcnn_net_save_onnx(net, target) != CLCNN_OK)
            result = cli_fail_context(ctx);
    } else if (clcnn_net_save_weights(net, target) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        /* The weights went first: saving them created the directory. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/network.net", target);
        result = write_text_file(path, clcnn_net_text(net));
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

int command_import(const cli_common *common, int argc, char **argv) {
    const int onnx = argc == 2 && cli_is_onnx(argv[0]);
    if (argc != 3 && !onnx)
        return cli_fail("usage: clcnn import NET DIR MODEL, or clcnn import FILE.onnx MODEL");
    const char *net_path = argv[0], *dir = onnx ? NULL : argv[1], *model_path = argv[onnx ? 1 : 2];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    /* No training state, and the info of raw pixels: mean 0, std 1, no class names. */
    clcnn_model_info info;
    memset(&info, 0, sizeof(info));
    info.input_mean = 0.0f;
    info.input_std = 1.0f;
    clcnn_net *net = NULL;
    int result = 0;
    if ((onnx ? clcnn_net_from_onnx(ctx, net_path, &net)
              : clcnn_net_from_file(ctx, net_path, &net)) != CLCNN_OK ||
        (dir && clcnn_net_load_weights(net, dir) != CLCNN_OK) ||
        clcnn_model_save(net, NULL, &info, model_path) != CLCNN_OK)
        result = cli_fail_context(ctx);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
