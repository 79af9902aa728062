/* Single images as `clcnn predict` and `clcnn filter` read them
 * (host/cli/images.c): the input is the file, read as a PGM by clcnn's own
 * reader and as one- and three-channel images by stb_image (PNG, JPEG,
 * PPM, ...). stb_image is Debian's libstb, linked as the command links it
 * (not instrumented: the fuzzer sees the coverage of clcnn's side only). */
#include "fuzz.h"

#include "../../host/cli/cli.h"

#include <stdlib.h>

/* The command's messages (host/cli/main.c) are not needed here. */
int cli_fail(const char *format, ...) {
    (void)format;
    return 1;
}

int cli_fail_context(clcnn_context *ctx) {
    (void)ctx;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("input.img");
    fuzz_write(path, data, size);
    float *pixels = NULL;
    int height = 0, width = 0;
    if (cli_read_pgm(path, &pixels, &height, &width) == 0)
        free(pixels);
    pixels = NULL;
    if (cli_read_png(path, 1, &pixels, &height, &width) == 0)
        free(pixels);
    pixels = NULL;
    if (cli_read_png(path, 3, &pixels, &height, &width) == 0)
        free(pixels);
    return 0;
}
