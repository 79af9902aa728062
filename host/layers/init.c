/* Helpers shared by several layer types. */
#include "layers/layer.h"

#include <math.h>

clcnn_status infer_same_shape(const layer_parser *p, layer *l, const layer *const *inputs,
                              int count) {
    l->out = l->in;
    return CLCNN_OK;
}

void init_weights(float *weight, int64_t count, int64_t fan_in, int64_t fan_out, rng *r,
                  const layer *next) {
    if (next && next->type->rectifier) {
        const double slope = next->slope;
        const double std = sqrt(2.0 / ((1.0 + slope * slope) * (double)fan_in));
        for (int64_t j = 0; j < count; j++)
            weight[j] = (float)(std * rng_normal(r));
        return;
    }
    const double limit = sqrt(6.0 / (double)(fan_in + fan_out));
    for (int64_t j = 0; j < count; j++)
        weight[j] = (float)(limit * (2.0 * rng_uniform(r) - 1.0));
}
