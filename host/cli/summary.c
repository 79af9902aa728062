/* clcnn summary NET */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int command_summary(const cli_common *common, int argc, char **argv) {
    if (argc != 1)
        return cli_fail("usage: clcnn summary NET");
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    int result = 0;
    size_t size = 1 << 20;
    char *text = malloc(size);
    if (!text)
        result = cli_fail("out of memory");
    else if (clcnn_net_from_file(ctx, argv[0], &net) != CLCNN_OK ||
             clcnn_net_summary(net, text, size) != CLCNN_OK)
        result = cli_fail_context(ctx);
    else
        fputs(text, stdout);
    free(text);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
