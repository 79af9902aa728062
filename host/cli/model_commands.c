/* clcnn export MODEL DIR: a model's network file and .npy weights.
 * clcnn import NET DIR MODEL: a model from a network file and .npy weights.
 *
 * Neither runs the network, so neither needs a device: they work on machines
 * without OpenCL whatever --device says. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
        return cli_fail("usage: clcnn export MODEL DIR");
    const char *model_path = argv[0], *dir = argv[1];
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    int result = 0;
    struct stat st;
    const int dir_existed = stat(dir, &st) == 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/network.net", dir);
    if (clcnn_model_load(ctx, model_path, &net, NULL, NULL) != CLCNN_OK ||
        clcnn_net_save_weights(net, dir) != CLCNN_OK) {
        result = cli_fail_context(ctx);
    } else {
        /* The weights went first: saving them created dir. */
        result = write_text_file(path, clcnn_net_text(net));
    }
    /* A failed export into a directory it created leaves nothing behind:
     * every file it may have written, then the directory. */
    if (result != 0 && !dir_existed) {
        for (int i = 0; net && i < clcnn_net_tensor_count(net); i++) {
            clcnn_tensor_info tensor;
            char file[4096];
            if (clcnn_net_tensor_info(net, i, &tensor) != CLCNN_OK)
                continue;
            snprintf(file, sizeof(file), "%s/%s.npy", dir, tensor.name);
            unlink(file);
        }
        unlink(path);
        rmdir(dir);
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

int command_import(const cli_common *common, int argc, char **argv) {
    if (argc != 3)
        return cli_fail("usage: clcnn import NET DIR MODEL");
    const char *net_path = argv[0], *dir = argv[1], *model_path = argv[2];
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
