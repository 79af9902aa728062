/* Network files (host/io/netfile.c and the layer types' parse and infer):
 * the input is the file's text. A network that parses is also described,
 * as `clcnn summary` does. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    clcnn_context *ctx = fuzz_context();
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = 0;
    clcnn_net *net = NULL;
    if (clcnn_net_from_string(ctx, text, "fuzz.net", &net) == CLCNN_OK) {
        static char summary[1 << 16];
        clcnn_net_summary(net, summary, sizeof(summary));
        for (int i = 0; i < clcnn_net_layer_count(net); i++) {
            clcnn_layer_info info;
            clcnn_net_layer_info(net, i, &info);
        }
        for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
            clcnn_tensor_info info;
            clcnn_net_tensor_info(net, i, &info);
        }
        clcnn_net_destroy(net);
    }
    free(text);
    return 0;
}
