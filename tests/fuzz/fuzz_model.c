/* Model files (host/io/model.c, and the network text inside them): the
 * input is the file, loaded on the reference device with its training state
 * and information, as `clcnn train --resume` does. */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    const char *path = fuzz_path("input.model");
    fuzz_write(path, data, size);
    clcnn_model_info info;
    clcnn_model_info_init(&info);
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (clcnn_model_load(ctx, path, &net, &trainer, &info) == CLCNN_OK) {
        float mean[8], std[8];
        clcnn_model_info_normalization(&info, 8, mean, std);
        clcnn_trainer_destroy(trainer);
        clcnn_net_destroy(net);
    }
    /* Freed whatever happened: a failed load must leave nothing to leak. */
    clcnn_model_info_free(&info);
    return 0;
}
