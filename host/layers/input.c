/* input: the images a network reads, (channels, height, width). */
#include "layers/layer.h"

static const char *const input_keys[] = {"channels", "height", "width", NULL};

static clcnn_status input_parse(const layer_parser *p, layer *l) {
    int channels = 0, height = 0, width = 0;
    clcnn_status status;
    if ((status = parse_positive(p, "channels", -1, &channels)) ||
        (status = parse_positive(p, "height", -1, &height)) ||
        (status = parse_positive(p, "width", -1, &width)))
        return status;
    l->out = (shape3){.ndim = 3, .c = channels, .h = height, .w = width};
    l->in = l->out;
    return CLCNN_OK;
}

static clcnn_status input_infer(const layer_parser *p, layer *l, const layer *const *inputs,
                                int count) {
    return check_output_size(p, l->out.c, l->out.h, l->out.w);
}

const layer_type layer_input = {
    .name = "input",
    .keys = input_keys,
    .min_inputs = 0,
    .max_inputs = 0,
    .parse = input_parse,
    .infer = input_infer,
};
