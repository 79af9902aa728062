/* clcnn tune NET [--batch B] */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_tune(const cli_common *common, const cli_args *args) {
    const char *net_path = args->positional[0];
    int64_t batch = 64;
    if (cli_int_option(args, "--batch", &batch) != 0)
        return CLI_USAGE;
    if (batch < 1 || batch > INT32_MAX)
        return cli_usage(args->command, "--batch: must be 1 to %d", INT32_MAX);
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    int result = 0;
    size_t size = 1 << 16;
    char *report = malloc(size);
    if (!report)
        result = cli_fail("out of memory");
    else if (clcnn_net_load(ctx, net_path, &net, NULL, NULL) != CLCNN_OK ||
             clcnn_tune(net, (int)batch, report, size) != CLCNN_OK)
        result = cli_fail_context(ctx);
    else
        printf("tuned %s at batch %lld on %s\n%s", net_path, (long long)batch,
               clcnn_device_name(ctx), report);
    free(report);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_tune = {
    "tune",
    "NET",
    1,
    1,
    "time kernel configurations for NET's layers on this device and keep the fastest",
    "The winners go to a tuning file per device in the cache directory "
    "($XDG_CACHE_HOME/clcnn), used from then on. On CPU devices every command already tunes "
    "a shape the file lacks on about 6 configurations when it first plans a network "
    "(CLCNN_AUTOTUNE=0 turns that off); this tries 30-36 per operation. For the forward, "
    "backward-data and backward-weights of stride-1 3x3 convolutions both also time Winograd "
    "F(2x2, 3x3) against the fastest and keep it where it clearly wins. NET is a network "
    "file, a model file or an ONNX file (FILE.onnx).\n",
    (const cli_option[]){
        {"--batch", "B",
         "the batch size to tune for (default 64); its results serve batches between the same "
         "powers of two as B (8-15 for 10), or 64-127 for B of 64-127, or from 128 up for "
         "B >= 128"},
        {NULL, NULL, NULL}},
    run_tune};
