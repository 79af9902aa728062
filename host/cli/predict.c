/* clcnn predict MODEL IMAGE... : the top classes of each image. */
#include "cli.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* One image as C*H*W floats in [0, 1] (npy: as stored), checked against the
 * network. A network of 3 channels gets RGB: colour images as they are, grey
 * ones (PGM, grey PNG or JPEG) with their grey level in all three. An image
 * of another size than the network's is an error, not resized: resizing
 * would quietly change what the network sees. */
static int read_image(clcnn_context *ctx, clcnn_net *net, const char *path, float **image,
                      int64_t *count) {
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int C = input.shape[0], H = input.shape[1], W = input.shape[2];
    /* Batches: .npy and IDX image files (Fashion-MNIST's own, for instance). */
    if (has_suffix(path, ".npy") || has_suffix(path, "-ubyte") || has_suffix(path, "-ubyte.gz"))
        return cli_read_images(ctx, net, path, image, count);
    int h = 0, w = 0, result;
    if (has_suffix(path, ".pgm")) {
        if (C != 1 && C != 3)
            return cli_fail("%s: a PGM image has 1 channel, the network takes %d", path, C);
        result = cli_read_pgm(path, image, &h, &w);
        if (result == 0 && C == 3) {
            float *rgb = realloc(*image, sizeof(float) * 3 * (size_t)h * (size_t)w);
            if (!rgb) {
                free(*image);
                *image = NULL;
                return cli_fail("out of memory");
            }
            memcpy(rgb + (size_t)h * w, rgb, sizeof(float) * (size_t)h * w);
            memcpy(rgb + 2 * (size_t)h * w, rgb, sizeof(float) * (size_t)h * w);
            *image = rgb;
        }
    } else {
        result = cli_read_png(path, C, image, &h, &w);
    }
    if (result != 0)
        return result;
    if (h != H || w != W) {
        free(*image);
        *image = NULL;
        return cli_fail("%s: the image is %dx%d, the network takes %dx%d", path, w, h, W, H);
    }
    *count = 1;
    return 0;
}

int command_predict(const cli_common *common, int argc, char **argv) {
    int64_t top = 3, limit = -1;
    const char *model_path = NULL;
    int first_image = -1;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--top") == 0 && i + 1 < argc) {
            if (cli_parse_int64("--top", argv[++i], &top) != 0)
                return 2;
        } else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc) {
            if (cli_parse_int64("--limit", argv[++i], &limit) != 0)
                return 2;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_fail("predict: unknown option '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else if (first_image < 0) {
            first_image = i;
        }
    }
    if (!model_path || first_image < 0)
        return cli_fail("usage: clcnn predict MODEL IMAGE... [--top K] [--limit N] (.npy, .pgm, "
                        ".png or IDX images)");
    clcnn_context *ctx = cli_open_context(common);
    if (!ctx)
        return 1;
    clcnn_net *net = NULL;
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    int result = 0;
    if (clcnn_model_load(ctx, model_path, &net, NULL, &info) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    const int64_t in_size = clcnn_net_input_size(net);
    clcnn_layer_info input;
    clcnn_net_layer_info(net, 0, &input);
    const int channels = input.shape[0];
    const int64_t plane_size = in_size / channels;
    const int64_t classes = clcnn_net_output_size(net);
    clcnn_layer_info last;
    clcnn_net_layer_info(net, clcnn_net_layer_count(net) - 1, &last);
    const int is_softmax = strcmp(last.type, "softmax") == 0;
    const int is_sigmoid = strcmp(last.type, "sigmoid") == 0;
    for (int i = first_image; i < argc && result == 0; i++) {
        if (strcmp(argv[i], "--top") == 0 || strcmp(argv[i], "--limit") == 0) {
            i++;
            continue;
        }
        float *images = NULL;
        int64_t count = 0;
        if (read_image(ctx, net, argv[i], &images, &count) != 0) {
            result = 1;
            break;
        }
        if (limit >= 0 && limit < count)
            count = limit;
        /* Each channel with the training set's figures for it. */
        clcnn_model_info_normalize(&info, images, count, channels, plane_size);
        float *scores = malloc(sizeof(float) * (size_t)(count * classes));
        if (!scores || clcnn_net_forward(net, images, count, scores, NULL, NULL) != CLCNN_OK) {
            result = scores ? cli_fail_context(ctx) : cli_fail("out of memory");
            free(scores);
            free(images);
            break;
        }
        for (int64_t n = 0; n < count; n++) {
            float *p = scores + n * classes;
            int64_t previous[1] = {0};
            if (!is_softmax && classes > 1) {
                /* Show probabilities even when the network ends before its softmax. */
                double largest = p[0], sum = 0.0;
                for (int64_t j = 1; j < classes; j++)
                    largest = fmax(largest, p[j]);
                for (int64_t j = 0; j < classes; j++)
                    sum += exp(p[j] - largest);
                for (int64_t j = 0; j < classes; j++)
                    p[j] = (float)(exp(p[j] - largest) / sum);
            }
            if (count > 1)
                printf("%s[%lld]:", argv[i], (long long)n);
            else
                printf("%s:", argv[i]);
            /* One output is a binary classifier: the probability of class 1
             * (a sigmoid's output, or a logit put through one). */
            float binary[2];
            if (classes == 1) {
                const float one = is_sigmoid ? p[0] : (float)(1.0 / (1.0 + exp(-(double)p[0])));
                binary[0] = 1.0f - one;
                binary[1] = one;
                p = binary;
            }
            const int64_t choices = classes == 1 ? 2 : classes;
            for (int64_t k = 0; k < top && k < choices; k++) {
                /* The k-th largest: the largest below the previous pick, ties by index. */
                int64_t best = -1;
                for (int64_t j = 0; j < choices; j++) {
                    if (k > 0 &&
                        !(p[j] < p[previous[0]] || (p[j] == p[previous[0]] && j > previous[0])))
                        continue;
                    if (best < 0 || p[j] > p[best])
                        best = j;
                }
                if (best < 0)
                    break;
                previous[0] = best;
                const char *name = best < info.class_count ? info.class_names[best] : "";
                printf("%s %lld%s%s %.2f%%", k ? "," : "", (long long)best, name[0] ? " " : "",
                       name, 100.0 * p[best]);
            }
            printf("\n");
        }
        free(scores);
        free(images);
    }
done:
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}
