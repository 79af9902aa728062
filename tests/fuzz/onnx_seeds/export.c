/* Writes NET with seeded weights as ONNX (the seeds of corpus/onnx/):
 *   export NET OUT.onnx   (built and run by make_corpus.sh) */
#include "clcnn.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: export NET OUT.onnx\n");
        return 2;
    }
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    if (!ctx || clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1) != CLCNN_OK ||
        clcnn_net_from_file(ctx, argv[1], &net) != CLCNN_OK ||
        clcnn_net_init_weights(net, 3) != CLCNN_OK ||
        clcnn_net_save_onnx(net, argv[2]) != CLCNN_OK) {
        fprintf(stderr, "export: %s\n", clcnn_last_error(ctx));
        return 1;
    }
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return 0;
}
