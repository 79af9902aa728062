/* ONNX files (host/io/onnx_import.c, through protobuf-c's reader): the input
 * is the file, loaded on the reference device as `clcnn import FILE.onnx`
 * does; a model that loads is exported again (onnx_export.c) and its
 * forward pass run on one image. */
#include "fuzz.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    const char *path = fuzz_path("input.onnx");
    fuzz_write(path, data, size);
    clcnn_net *net = NULL;
    if (clcnn_net_from_onnx(ctx, path, &net) == CLCNN_OK) {
        const int64_t in = clcnn_net_input_size(net), out = clcnn_net_output_size(net);
        /* Small networks only: the fuzzer is after the parser, not big passes. */
        if (in > 0 && out > 0 && in <= 65536 && out <= 65536) {
            float *input = calloc((size_t)in, sizeof(float));
            float *output = calloc((size_t)out, sizeof(float));
            if (input && output)
                clcnn_net_forward(net, input, 1, output, NULL, NULL);
            free(input);
            free(output);
        }
        clcnn_net_save_onnx(net, fuzz_path("again.onnx"));
        clcnn_net_destroy(net);
    }
    return 0;
}
