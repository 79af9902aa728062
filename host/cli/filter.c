/* clcnn filter NAME IMAGE OUT.npy [--valid]: a named 3x3 filter over an image,
 * through a one-layer network, on the selected device. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* Images as (N, C, H, W): a .npy of (H, W), (C, H, W) or (N, C, H, W), a
 * text image (cli_read_text_image), or a PGM/PNG as one grayscale channel
 * in [0, 1]. */
static int read_any_image(clcnn_context *ctx, const char *path, clcnn_array *out) {
    memset(out, 0, sizeof(*out));
    if (ends_with(path, ".npy") || ends_with(path, ".txt")) {
        if (ends_with(path, ".txt") && cli_read_text_image(path, out) != 0)
            return CLI_FAILURE;
        if (ends_with(path, ".npy") && clcnn_npy_read(ctx, path, out) != CLCNN_OK)
            return cli_fail_context(ctx);
        if (clcnn_array_to_float32(ctx, out) != CLCNN_OK) {
            clcnn_array_free(out);
            return cli_fail_context(ctx);
        }
        if (out->ndim < 2 || out->ndim > 4) {
            clcnn_array_free(out);
            return cli_fail("%s: expected (H, W), (C, H, W) or (N, C, H, W), got %d dimensions",
                            path, out->ndim);
        }
        const int missing = 4 - out->ndim;
        memmove(out->shape + missing, out->shape, sizeof(int64_t) * (size_t)out->ndim);
        for (int d = 0; d < missing; d++)
            out->shape[d] = 1;
        out->ndim = 4;
        return 0;
    }
    float *pixels = NULL;
    int height = 0, width = 0;
    int result = ends_with(path, ".pgm") ? cli_read_pgm(path, &pixels, &height, &width)
                                         : cli_read_png(path, 1, &pixels, &height, &width);
    if (result != 0)
        return result;
    out->dtype = CLCNN_FLOAT32;
    out->ndim = 4;
    out->shape[0] = out->shape[1] = 1;
    out->shape[2] = height;
    out->shape[3] = width;
    out->data = pixels;
    return 0;
}

static int run_filter(const cli_common *common, const cli_args *args) {
    if (cli_given(args, "--list")) {
        if (args->positional_count > 0)
            return cli_usage(args->command, "--list takes no arguments");
        for (int f = 0; clcnn_filter_name(f); f++)
            printf("%s\n", clcnn_filter_name(f));
        return 0;
    }
    if (args->positional_count != 3)
        return cli_usage(args->command, "expected NAME IMAGE OUT.npy");
    const char *const *positional = args->positional;
    const int valid = cli_given(args, "--valid");
    int known = 0;
    for (int f = 0; clcnn_filter_name(f); f++)
        known = known || strcmp(clcnn_filter_name(f), positional[0]) == 0;
    if (!known)
        return cli_usage(args->command, "no filter named '%s' (filter --list names them)",
                         positional[0]);
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_array image = {0}, result = {0};
    clcnn_net *net = NULL;
    int status = read_any_image(ctx, positional[1], &image);
    if (status == 0) {
        /* Every channel is filtered and the channels summed, as a conv layer does. */
        char text[256];
        snprintf(text, sizeof(text),
                 "input channels=%lld height=%lld width=%lld\n"
                 "conv filters=1 filter=%s pad=%s bias=false\n",
                 (long long)image.shape[1], (long long)image.shape[2], (long long)image.shape[3],
                 positional[0], valid ? "0" : "same");
        if (clcnn_net_from_string(ctx, text, positional[0], &net) != CLCNN_OK)
            status = cli_fail_context(ctx);
    }
    if (status == 0) {
        clcnn_layer_info info;
        clcnn_net_layer_info(net, 1, &info);
        result.dtype = CLCNN_FLOAT32;
        result.ndim = 4;
        result.shape[0] = image.shape[0];
        result.shape[1] = 1;
        result.shape[2] = info.shape[1];
        result.shape[3] = info.shape[2];
        result.data = malloc(sizeof(float) * (size_t)(clcnn_array_count(&result) + 1));
        if (!result.data)
            status = cli_fail("out of memory");
        else if (clcnn_net_forward(net, image.data, image.shape[0], result.data, NULL, NULL) !=
                     CLCNN_OK ||
                 clcnn_npy_write(ctx, positional[2], &result) != CLCNN_OK)
            status = cli_fail_context(ctx);
        for (int64_t n = 0; status == 0 && cli_given(args, "--print") && n < result.shape[0]; n++) {
            const int shape[3] = {1, (int)result.shape[2], (int)result.shape[3]};
            char label[64];
            snprintf(label, sizeof(label), "%s%s", positional[0], valid ? " (valid)" : "");
            cli_print_values(stdout, label, 3, shape,
                             (float *)result.data + n * shape[1] * shape[2]);
        }
    }
    clcnn_array_free(&image);
    clcnn_array_free(&result);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return status;
}

const cli_command cli_command_filter = {
    "filter",
    "NAME IMAGE OUT.npy",
    0,
    3,
    "apply a named 3x3 filter to an image",
    "The filters: identity, prewitt_v, prewitt_h, sobel_v, sobel_h, laplacian_4, laplacian_8, "
    "sharpen, box_blur, gaussian_blur, written as the layer applies them (a cross-correlation, "
    "as in PyTorch). IMAGE is a .npy of (H, W), (C, H, W) or (N, C, H, W), or a PGM or PNG read "
    "as one grey channel, or a text image (.txt: numbers separated by blanks, a row a line, a "
    "blank line between channels); the channels are filtered and summed, as a conv layer does.\n",
    (const cli_option[]){{"--valid", NULL, "no padding (default: same padding)"},
                         {"--print", NULL, "also print the filtered image as numbers"},
                         {"--list", NULL, "name the filters"},
                         {NULL, NULL, NULL}},
    run_filter};
