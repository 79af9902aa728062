/* clcnn export MODEL DIR: a model's network file and .npy weights.
 * clcnn import NET DIR MODEL: a model from a network file and .npy weights.
 *
 * Neither runs the network, so neither needs a device: they work on machines
 * without OpenCL whatever --device says. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

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

static int run_export(const cli_common *common, const cli_args *args) {
    const char *model_path = args->positional[0], *dir = args->positional[1];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    int result = 0;
    if (clcnn_model_load(ctx, model_path, &net, NULL, NULL) != CLCNN_OK ||
        clcnn_net_save_weights(net, dir) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        /* The weights went first: saving them created dir. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/network.net", dir);
        result = write_text_file(path, clcnn_net_text(net));
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

static int run_import(const cli_common *common, const cli_args *args) {
    const char *net_path = args->positional[0], *dir = args->positional[1],
               *model_path = args->positional[2];
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
    if (clcnn_net_from_file(ctx, net_path, &net) != CLCNN_OK ||
        clcnn_net_load_weights(net, dir) != CLCNN_OK ||
        clcnn_model_save(net, NULL, &info, model_path) != CLCNN_OK)
        result = cli_fail_context(ctx);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_export = {
    "export",
    "MODEL DIR",
    2,
    2,
    "write a model's network file (DIR/network.net) and .npy weights",
    NULL,
    (const cli_option[]){{NULL, NULL, NULL}},
    run_export};

const cli_command cli_command_import = {
    "import",
    "NET DIR MODEL",
    3,
    3,
    "make a model from a network file and a directory of .npy weights",
    NULL,
    (const cli_option[]){{NULL, NULL, NULL}},
    run_import};
