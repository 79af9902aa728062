/* Model files (host/io/model.c, and the network text inside them): the
 * input is the file, loaded on the reference device with its training state
 * and information, as `clcnn train --resume` does. */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    const char *path = fuzz_path("input.model");
    fuzz_write(path, data, size);
    static clcnn_model_info info;
    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    if (clcnn_model_load(ctx, path, &net, &trainer, &info) == CLCNN_OK) {
        float mean[CLCNN_MAX_CHANNELS], std[CLCNN_MAX_CHANNELS];
        clcnn_model_info_normalization(&info, CLCNN_MAX_CHANNELS, mean, std);
        clcnn_trainer_destroy(trainer);
        clcnn_net_destroy(net);
    }
    return 0;
}
