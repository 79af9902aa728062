/* Reading a batch of images for a network from .npy or IDX files. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static void describe_shape(const clcnn_array *a, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < a->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)a->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, a->ndim == 1 ? ",)" : ")");
}

int cli_read_images(clcnn_context *ctx, clcnn_net *net, const char *path, float **images,
                    int64_t *count) {
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int C = input.shape[0], H = input.shape[1], W = input.shape[2];
    clcnn_array array;
    int is_npy = has_suffix(path, ".npy");
    if ((is_npy ? clcnn_npy_read(ctx, path, &array) : clcnn_idx_read(ctx, path, &array)) !=
        CLCNN_OK)
        return cli_fail_context(ctx);

    char shape[128];
    describe_shape(&array, shape, sizeof(shape));
    int64_t n = -1;
    if (is_npy) {
        if (array.dtype != CLCNN_FLOAT32 && array.dtype != CLCNN_FLOAT64) {
            clcnn_array_free(&array);
            return cli_fail("%s: images must be float32 or float64", path);
        }
        if (array.ndim == 4 && array.shape[1] == C && array.shape[2] == H && array.shape[3] == W)
            n = array.shape[0];
        else if (array.ndim == 3 && array.shape[0] == C && array.shape[1] == H &&
                 array.shape[2] == W)
            n = 1;
        if (n < 0) {
            clcnn_array_free(&array);
            return cli_fail("%s: shape %s does not fit the network's input: expected (N, %d, %d, "
                            "%d)",
                            path, shape, C, H, W);
        }
        if (clcnn_array_to_float32(ctx, &array) != CLCNN_OK) {
            clcnn_array_free(&array);
            return cli_fail_context(ctx);
        }
        *images = array.data; /* ownership moves to the caller */
        *count = n;
        return 0;
    }
    /* IDX images are (N, H, W) bytes: one channel, scaled to [0, 1]. */
    if (array.dtype != CLCNN_UINT8 || array.ndim != 3 || C != 1 || array.shape[1] != H ||
        array.shape[2] != W) {
        clcnn_array_free(&array);
        return cli_fail("%s: IDX shape %s does not fit the network's input (%d, %d, %d)", path,
                        shape, C, H, W);
    }
    n = array.shape[0];
    float *values = malloc(sizeof(float) * (size_t)(n * H * W + 1));
    if (!values) {
        clcnn_array_free(&array);
        return cli_fail("out of memory reading %s", path);
    }
    const unsigned char *bytes = array.data;
    for (int64_t i = 0; i < n * H * W; i++)
        values[i] = bytes[i] / 255.0f;
    clcnn_array_free(&array);
    *images = values;
    *count = n;
    return 0;
}
