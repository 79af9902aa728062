/* clcnn tune NET [--batch B] */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int command_tune(const cli_common *common, int argc, char **argv) {
    const char *net_path = NULL;
    int64_t batch = 64;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            if (cli_parse_int64("--batch", argv[++i], &batch) != 0)
                return 2;
            if (batch < 1 || batch > INT32_MAX)
                return cli_fail("--batch: must be 1 to %d", INT32_MAX);
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_fail("tune: unknown option '%s' (or it needs a value)", argv[i]);
        } else if (!net_path) {
            net_path = argv[i];
        } else {
            return cli_fail("tune: unexpected argument '%s'", argv[i]);
        }
    }
    if (!net_path)
        return cli_fail("usage: clcnn tune NET [--batch B]");
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    int result = 0;
    size_t size = 1 << 16;
    char *report = malloc(size);
    if (!report)
        result = cli_fail("out of memory");
    else if (clcnn_net_from_file(ctx, net_path, &net) != CLCNN_OK ||
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
