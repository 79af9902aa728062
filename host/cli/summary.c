/* clcnn summary NET [--json] */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parameters of layer `name`: the sum of its parameter tensors. */
static int64_t layer_parameters(const clcnn_net *net, const char *name) {
    int64_t total = 0;
    for (int i = 0; i < clcnn_net_tensor_count(net); i++) {
        clcnn_tensor_info t;
        clcnn_net_tensor_info(net, i, &t);
        if (t.kind == CLCNN_TENSOR_PARAMETER && strcmp(t.layer, name) == 0)
            total += t.count;
    }
    return total;
}

/* {"layers": [{"name", "type", "shape", "parameters", "inputs"}, ...], "parameters": N} */
static void print_json(const clcnn_net *net) {
    printf("{\"layers\": [");
    for (int i = 0; i < clcnn_net_layer_count(net); i++) {
        clcnn_layer_info l;
        clcnn_net_layer_info(net, i, &l);
        printf("%s\n  {\"name\": ", i ? "," : "");
        cli_json_string(stdout, l.name);
        printf(", \"type\": ");
        cli_json_string(stdout, l.type);
        printf(", \"shape\": [");
        for (int d = 0; d < l.ndim; d++)
            printf("%s%d", d ? ", " : "", l.shape[d]);
        printf("], \"parameters\": %lld, \"inputs\": [", (long long)layer_parameters(net, l.name));
        for (int k = 0; k < l.input_count; k++) {
            clcnn_layer_info input;
            clcnn_net_layer_info(net, l.inputs[k], &input);
            printf("%s", k ? ", " : "");
            cli_json_string(stdout, input.name);
        }
        printf("]}");
    }
    printf("],\n \"parameters\": %lld}\n", (long long)clcnn_net_parameter_count(net));
}

static int run_summary(const cli_common *common, const cli_args *args) {
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return cli_fail("out of memory");
    clcnn_net *net = NULL;
    int result = 0;
    size_t size = 1 << 20;
    char *text = malloc(size);
    if (!text)
        result = cli_fail("out of memory");
    else if (clcnn_net_load(ctx, args->positional[0], &net, NULL, NULL) != CLCNN_OK)
        result = cli_fail_context(ctx);
    else if (cli_given(args, "--json"))
        print_json(net);
    else if (clcnn_net_summary(net, text, size) != CLCNN_OK)
        result = cli_fail_context(ctx);
    else
        fputs(text, stdout);
    free(text);
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    return result;
}

const cli_command cli_command_summary = {
    "summary",
    "NET",
    1,
    1,
    "each layer's name, type, output shape and parameter count, and the total",
    "NET is a network file, a model file or an ONNX file (FILE.onnx).\n",
    (const cli_option[]){{"--json", NULL, "print the summary as JSON"}, {NULL, NULL, NULL}},
    run_summary};
