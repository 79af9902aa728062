/* clcnn devices */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>

int command_devices(const cli_common *common, int argc, char **argv) {
    if (argc != 0)
        return cli_fail("devices takes no arguments, got '%s'", argv[0]);
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    size_t size = 1 << 16;
    char *listing = malloc(size);
    int result = 0;
    if (!listing)
        result = cli_fail("out of memory");
    else if (clcnn_list_devices(ctx, listing, size) != CLCNN_OK)
        result = cli_fail_context(ctx);
    else
        fputs(listing, stdout);
    free(listing);
    clcnn_context_destroy(ctx);
    return result;
}
