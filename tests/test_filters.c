/* The named 3x3 filters: the worked examples 1 and 3 of README.md through
 * filter=prewitt_v and filter=sharpen on both devices, the filters' values,
 * that initialisation and weight loading keep them, the parser's errors,
 * and `clcnn filter`. */
#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const float example1[25] = {1, 2, 0, 2, 1, 0, 1, 3, 1, 0, 2, 2, 1,
                                   0, 1, 1, 0, 1, 3, 2, 0, 1, 2, 2, 1};

static void worked_example_1(clcnn_device_kind kind) {
    clcnn_context *ctx = test_context(kind);
    if (!CHECK(ctx != NULL))
        return;
    const char *text = "input channels=1 height=5 width=5\n"
                       "conv filters=1 filter=prewitt_v bias=false\n"
                       "relu\nmaxpool size=2 stride=1\nflatten\n";
    clcnn_net *net = NULL;
    float output[4] = {0};
    const float expected[4] = {2, 1, 2, 2};
    /* Initialising keeps a named filter: the example must come out regardless. */
    if (CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "net", &net)) &&
        CHECK_OK(ctx, clcnn_net_init_weights(net, 99)) &&
        CHECK_OK(ctx, clcnn_net_forward(net, example1, 1, output, NULL, NULL)))
        for (int i = 0; i < 4; i++)
            CHECK(output[i] == expected[i]);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

static void filter_values(void) {
    clcnn_context *ctx = clcnn_context_create();
    const char *names[] = {"identity",    "prewitt_v",   "prewitt_h", "sobel_v",  "sobel_h",
                           "laplacian_4", "laplacian_8", "sharpen",   "box_blur", "gaussian_blur"};
    const float sums[] = {1, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    const float centres[] = {1, 0, 0, 0, 0, -4, -8, 5, 1.0f / 9, 4.0f / 16};
    int count = 0;
    while (clcnn_filter_name(count))
        count++;
    CHECK(count == 10);
    for (int f = 0; f < 10 && f < count; f++) {
        CHECK(strcmp(clcnn_filter_name(f), names[f]) == 0);
        char text[200];
        /* Two input channels and two filters: every pair gets the filter. */
        snprintf(text, sizeof(text),
                 "input channels=2 height=4 width=4\nconv filters=2 size=3 filter=%s\n", names[f]);
        clcnn_net *net = NULL;
        float weight[36], bias[2];
        if (CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "net", &net)) &&
            CHECK_OK(ctx, clcnn_net_get_parameter(net, "conv1", "weight", weight, 36)) &&
            CHECK_OK(ctx, clcnn_net_get_parameter(net, "conv1", "bias", bias, 2))) {
            for (int pair = 0; pair < 4; pair++) {
                double sum = 0;
                for (int i = 0; i < 9; i++)
                    sum += weight[pair * 9 + i];
                CHECK(fabs(sum - sums[f]) < 1e-6);
                CHECK(weight[pair * 9 + 4] == centres[f]);
                CHECK(memcmp(weight + pair * 9, weight, 9 * sizeof(float)) == 0);
            }
            CHECK(bias[0] == 0 && bias[1] == 0);
        }
        clcnn_net_destroy(net);
    }
    /* Sobel's signs: vertical edges respond in x, horizontal ones in y. */
    clcnn_net *net = NULL;
    float weight[9];
    if (CHECK_OK(ctx, clcnn_net_from_string(
                          ctx, "input channels=1 height=3 width=3\nconv filters=1 filter=sobel_v\n",
                          "net", &net)) &&
        CHECK_OK(ctx, clcnn_net_get_parameter(net, "conv1", "weight", weight, 9)))
        CHECK(weight[3] == -2 && weight[5] == 2 && weight[1] == 0);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

static void parser_errors(void) {
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    CHECK(clcnn_net_from_string(ctx,
                                "input channels=1 height=5 width=5\nconv filters=1 filter=sobel\n",
                                "net.txt", &net) == CLCNN_ERROR_PARSE);
    CHECK(strstr(clcnn_last_error(ctx), "net.txt:2") && strstr(clcnn_last_error(ctx), "'sobel'"));
    CHECK(clcnn_net_from_string(
              ctx, "input channels=1 height=5 width=5\nconv filters=1 size=5 filter=sharpen\n",
              "net.txt", &net) == CLCNN_ERROR_PARSE);
    CHECK(strstr(clcnn_last_error(ctx), "3x3") != NULL);
    CHECK(net == NULL);
    clcnn_context_destroy(ctx);
}

/* A weights directory without the filter layer's files keeps the filter;
 * one with them replaces it. */
static void weight_loading(void) {
    clcnn_context *ctx = clcnn_context_create();
    const char *text =
        "input channels=1 height=5 width=5\nconv filters=1 filter=identity bias=false\n";
    char dir[1200];
    snprintf(dir, sizeof(dir), "%s/filter-weights", test_dir());
    mkdir(dir, 0755);
    clcnn_net *net = NULL;
    float weight[9];
    if (CHECK_OK(ctx, clcnn_net_from_string(ctx, text, "net", &net)) &&
        CHECK_OK(ctx, clcnn_net_load_weights(net, dir)) &&
        CHECK_OK(ctx, clcnn_net_get_parameter(net, "conv1", "weight", weight, 9)))
        CHECK(weight[4] == 1 && weight[0] == 0);
    float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    char path[1300];
    snprintf(path, sizeof(path), "%s/conv1.weight.npy", dir);
    clcnn_array array = {CLCNN_FLOAT32, 4, {1, 1, 3, 3}, ones};
    if (net && CHECK_OK(ctx, clcnn_npy_write(ctx, path, &array)) &&
        CHECK_OK(ctx, clcnn_net_load_weights(net, dir)) &&
        CHECK_OK(ctx, clcnn_net_get_parameter(net, "conv1", "weight", weight, 9)))
        CHECK(weight[0] == 1 && weight[4] == 1);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
}

/* README.md's worked example 3 through the command: sharpen over 1..25 gives 7 at
 * (0, 0) of the valid output and 13 at (1, 1); with same padding those sit
 * at (1, 1) and (2, 2). */
static void filter_command(const char *device) {
    clcnn_context *ctx = clcnn_context_create();
    float image[25];
    for (int i = 0; i < 25; i++)
        image[i] = (float)(i + 1);
    char input[1200], valid[1200], same[1200], command[4096], output[4096];
    snprintf(input, sizeof(input), "%s/ramp.npy", test_dir());
    snprintf(valid, sizeof(valid), "%s/valid-%s.npy", test_dir(), device);
    snprintf(same, sizeof(same), "%s/same-%s.npy", test_dir(), device);
    clcnn_array array = {CLCNN_FLOAT32, 2, {5, 5}, image};
    CHECK_OK(ctx, clcnn_npy_write(ctx, input, &array));
    snprintf(command, sizeof(command), "'%s' --device %s filter sharpen '%s' '%s' --valid",
             clcnn_bin(), device, input, valid);
    CHECK(run_command(command, output, sizeof(output)) == 0);
    snprintf(command, sizeof(command), "'%s' --device %s filter sharpen '%s' '%s'", clcnn_bin(),
             device, input, same);
    CHECK(run_command(command, output, sizeof(output)) == 0);
    clcnn_array result;
    if (CHECK_OK(ctx, clcnn_npy_read(ctx, valid, &result))) {
        const float *v = result.data;
        CHECK(result.ndim == 4 && result.shape[2] == 3 && result.shape[3] == 3);
        CHECK(v[0] == 7 && v[4] == 13);
        clcnn_array_free(&result);
    }
    if (CHECK_OK(ctx, clcnn_npy_read(ctx, same, &result))) {
        const float *v = result.data;
        CHECK(result.ndim == 4 && result.shape[2] == 5 && result.shape[3] == 5);
        CHECK(v[6] == 7 && v[12] == 13);
        clcnn_array_free(&result);
    }
    snprintf(command, sizeof(command), "'%s' filter sobel '%s' '%s'", clcnn_bin(), input, same);
    CHECK(run_command(command, output, sizeof(output)) != 0 && strstr(output, "'sobel'"));
    snprintf(command, sizeof(command), "'%s' filter --list", clcnn_bin());
    CHECK(run_command(command, output, sizeof(output)) == 0 && strstr(output, "gaussian_blur"));
    clcnn_context_destroy(ctx);
}

int main(void) {
    worked_example_1(CLCNN_DEVICE_REFERENCE);
    worked_example_1(CLCNN_DEVICE_OPENCL);
    filter_values();
    parser_errors();
    weight_loading();
    filter_command("reference");
    filter_command("opencl");
    return test_finish();
}
