/* clcnn predict MODEL IMAGE... [--top K] [--limit N] [--json]: the top classes of each image. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The predictions of one image as JSON: {"image", "index", "top": [{class, name, probability}]}. */
static void print_json_prediction(const char *image, int64_t index, const int64_t *best,
                                  const float *p, int64_t count, const clcnn_model_info *info,
                                  int first) {
    printf("%s\n  {\"image\": ", first ? "{\"predictions\": [" : ",");
    cli_json_string(stdout, image);
    printf(", \"index\": %lld, \"top\": [", (long long)index);
    for (int64_t k = 0; k < count; k++) {
        const char *name = best[k] < info->class_count ? info->class_names[best[k]] : "";
        printf("%s{\"class\": %lld, \"name\": ", k ? ", " : "", (long long)best[k]);
        cli_json_string(stdout, name);
        printf(", \"probability\": ");
        cli_json_number(stdout, p[best[k]]);
        printf("}");
    }
    printf("]}");
}

static int run_predict(const cli_common *common, const cli_args *args) {
    int64_t top = 3, limit = -1;
    const char *model_path = args->positional[0];
    const int json = cli_given(args, "--json");
    int printed = 0;
    if (cli_int_option(args, "--top", &top) != 0 || cli_int_option(args, "--limit", &limit) != 0)
        return CLI_USAGE;
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
    /* Images whose outputs are not finite, and the inputs' values that were not. */
    int64_t nonfinite_images = 0, images_seen = 0, nonfinite_inputs = 0;
    for (int i = 1; i < args->positional_count && result == 0; i++) {
        const char *path = args->positional[i];
        float *images = NULL;
        int64_t count = 0;
        if (cli_read_image_for(ctx, net, path, &images, &count) != 0) {
            result = 1;
            break;
        }
        if (limit >= 0 && limit < count)
            count = limit;
        for (int64_t j = 0; j < count * in_size; j++)
            nonfinite_inputs += !isfinite(images[j]);
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
            int64_t nonfinite = 0;
            for (int64_t j = 0; j < classes; j++)
                nonfinite += !isfinite(p[j]);
            images_seen++;
            if (nonfinite > 0) {
                /* No classes from NaN or infinite scores: say so instead. */
                nonfinite_images++;
                if (json) {
                    printf("%s\n  {\"image\": ", printed++ == 0 ? "{\"predictions\": [" : ",");
                    cli_json_string(stdout, path);
                    printf(", \"index\": %lld, \"not_finite\": %lld, \"top\": []}", (long long)n,
                           (long long)nonfinite);
                    continue;
                }
                if (count > 1)
                    printf("%s[%lld]:", path, (long long)n);
                else
                    printf("%s:", path);
                printf(" not finite: %lld of %lld outputs are NaN or infinite\n",
                       (long long)nonfinite, (long long)classes);
                continue;
            }
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
            if (!json && count > 1)
                printf("%s[%lld]:", path, (long long)n);
            else if (!json)
                printf("%s:", path);
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
            int64_t picked[64], picked_count = 0;
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
                if (picked_count < 64)
                    picked[picked_count++] = best;
                const char *name = best < info.class_count ? info.class_names[best] : "";
                if (!json)
                    printf("%s %lld%s%s %.2f%%", k ? "," : "", (long long)best, name[0] ? " " : "",
                           name, 100.0 * p[best]);
            }
            if (json)
                print_json_prediction(path, n, picked, p, picked_count, &info, printed++ == 0);
            else
                printf("\n");
        }
        free(scores);
        free(images);
    }
    if (json && result == 0)
        printf("%s]}\n", printed ? "" : "{\"predictions\": [");
    if (result == 0 && nonfinite_images > 0)
        result = cli_fail("predict: the network's output is not finite (NaN or infinite) for %lld "
                          "of %lld images; their input holds %lld NaN or infinite values%s",
                          (long long)nonfinite_images, (long long)images_seen,
                          (long long)nonfinite_inputs,
                          nonfinite_inputs > 0 ? "" : ", so the model itself gives them");
done:
    clcnn_model_info_free(&info);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_predict = {
    "predict",
    "MODEL IMAGE...",
    2,
    -1,
    "the top classes and their probabilities for each image",
    "MODEL is a model file or an ONNX file. Images are .npy batches (N, C, H, W) or (C, H, W), IDX "
    "image files, or PNG, JPEG, BMP, "
    "PGM and PPM pictures. A picture is converted to the network's channels (grey to RGB by "
    "copying the level, colour to grey by luminance, alpha dropped) and resized to the "
    "network's input (stb_image_resize: Catmull-Rom when enlarging, Mitchell when shrinking, "
    "edges clamped); then the model's normalisation is applied. Files are told apart by their "
    "first bytes, not their names (a text image by its name, .txt).\n\n"
    "An image whose outputs are not finite (NaN or infinite) gets no classes but a line saying "
    "so (in JSON, \"not_finite\": the count of such outputs), and the command then fails (exit "
    "status 1), saying whether the input held such values.\n",
    (const cli_option[]){{"--top", "K", "the K most likely classes (default 3)"},
                         {"--limit", "N", "the first N images of a batch file"},
                         {"--json", NULL, "print the predictions as JSON"},
                         {NULL, NULL, NULL}},
    run_predict};
