/* Builds a small network in C, gives it weights and runs two images through
 * it on the OpenCL device (or the reference with CLCNN_EXAMPLE_DEVICE=reference).
 *
 *   ./example_forward
 */
#include "clcnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char network[] = "input channels=1 height=5 width=5\n"
                              "conv filters=1 size=3 bias=false   # vertical edges\n"
                              "relu\n"
                              "maxpool size=2 stride=1\n"
                              "flatten\n";

int main(void) {
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return 1;
    const char *device = getenv("CLCNN_EXAMPLE_DEVICE");
    clcnn_device_kind kind = device && strcmp(device, "reference") == 0 ? CLCNN_DEVICE_REFERENCE
                                                                         : CLCNN_DEVICE_OPENCL;
    clcnn_net *net = NULL;
    /* The first worked example of README.md, twice: the second image is the first times two. */
    float images[2][25] = {{1, 2, 0, 2, 1, 0, 1, 3, 1, 0, 2, 2, 1, 0, 1, 1, 0, 1, 3, 2, 0, 1, 2, 2, 1}};
    for (int i = 0; i < 25; i++)
        images[1][i] = 2 * images[0][i];
    const float edge[9] = {-1, 0, 1, -1, 0, 1, -1, 0, 1};
    float outputs[2][4];
    if (clcnn_context_select_device(ctx, kind, -1, -1) != CLCNN_OK ||
        clcnn_net_from_string(ctx, network, "example", &net) != CLCNN_OK ||
        clcnn_net_set_parameter(net, "conv1", "weight", edge, 9) != CLCNN_OK ||
        clcnn_net_forward(net, &images[0][0], 2, &outputs[0][0], NULL, NULL) != CLCNN_OK) {
        fprintf(stderr, "example: %s\n", clcnn_last_error(ctx));
        clcnn_net_destroy(net);
        clcnn_context_destroy(ctx);
        return 1;
    }
    printf("device: %s\n", clcnn_device_name(ctx));
    for (int n = 0; n < 2; n++)
        printf("image %d: [%g, %g, %g, %g]\n", n, outputs[n][0], outputs[n][1], outputs[n][2],
               outputs[n][3]);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return 0;
}
