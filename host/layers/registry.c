/* Every layer type, in the order error messages list them. A new type is
 * one file in host/layers/ and one line in each list below. */
#include "layers/layer.h"

#include <string.h>

extern const layer_type layer_input, layer_conv, layer_maxpool, layer_avgpool, layer_relu,
    layer_leaky, layer_sigmoid, layer_tanh, layer_relu6, layer_flatten, layer_dense, layer_softmax,
    layer_globalavgpool, layer_add, layer_concat, layer_mul, layer_dropout, layer_batchnorm;

const layer_type *const layer_types[] = {
    &layer_input, &layer_conv,    &layer_maxpool,       &layer_avgpool, &layer_relu,
    &layer_leaky, &layer_sigmoid, &layer_tanh,          &layer_relu6,   &layer_flatten,
    &layer_dense, &layer_softmax, &layer_globalavgpool, &layer_add,     &layer_concat,
    &layer_mul,   &layer_dropout, &layer_batchnorm,     NULL,
};

const layer_type *layer_type_find(const char *name) {
    for (int i = 0; layer_types[i]; i++)
        if (strcmp(layer_types[i]->name, name) == 0)
            return layer_types[i];
    return NULL;
}

int always_accumulates(const clcnn_context *ctx, const layer *l) {
    (void)ctx;
    (void)l;
    return 1;
}
