/* A program of a clcnn user, built against an installed clcnn by
 * tests/package/consume.sh: it checks the version and runs the first worked
 * example of README.md on the reference device. It also defines functions
 * named as clcnn internals (buffer_create, gemm, cl_check): they must not
 * clash with the library's. */
#include <clcnn.h>

#include <stdio.h>
#include <string.h>

int buffer_create(int x) {
    return x + 1;
}

int gemm(int x) {
    return 2 * x;
}

int cl_check(int x) {
    return x - 1;
}

int main(void) {
    char version[32];
    snprintf(version, sizeof(version), "%d.%d.%d", CLCNN_VERSION_MAJOR, CLCNN_VERSION_MINOR,
             CLCNN_VERSION_PATCH);
    if (strcmp(version, clcnn_version()) != 0) {
        fprintf(stderr, "header %s, library %s\n", version, clcnn_version());
        return 1;
    }
    if (buffer_create(1) + gemm(1) + cl_check(1) != 4) {
        fprintf(stderr, "the program's own functions were not called\n");
        return 1;
    }
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    const float image[25] = {1, 2, 0, 2, 1, 0, 1, 3, 1, 0, 2, 2, 1,
                             0, 1, 1, 0, 1, 3, 2, 0, 1, 2, 2, 1};
    const float edge[9] = {-1, 0, 1, -1, 0, 1, -1, 0, 1};
    const float expected[4] = {2, 1, 2, 2};
    float output[4];
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK ||
        clcnn_net_from_string(ctx,
                              "input channels=1 height=5 width=5\n"
                              "conv filters=1 size=3 bias=false\n"
                              "relu\n"
                              "maxpool size=2 stride=1\n"
                              "flatten\n",
                              "consumer", &net) != CLCNN_OK ||
        clcnn_net_set_parameter(net, "conv1", "weight", edge, 9) != CLCNN_OK ||
        clcnn_net_forward(net, image, 1, output, NULL, NULL) != CLCNN_OK) {
        fprintf(stderr, "clcnn: %s\n", ctx ? clcnn_last_error(ctx) : "out of memory");
        return 1;
    }
    if (memcmp(output, expected, sizeof(expected)) != 0) {
        fprintf(stderr, "got %g %g %g %g, expected 2 1 2 2\n", output[0], output[1], output[2],
                output[3]);
        return 1;
    }
    printf("clcnn %s: %g %g %g %g\n", clcnn_version(), output[0], output[1], output[2], output[3]);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return 0;
}
