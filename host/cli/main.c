/* clcnn: the command-line tool. Uses only the public API of include/clcnn.h. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: clcnn [--device opencl|reference] [--platform P --device-index D] COMMAND ...\n"
    "       clcnn --version\n"
    "\n"
    "commands:\n"
    "  devices                      list OpenCL platforms and devices\n"
    "  summary NET                  layers, output shapes and parameter counts\n"
    "  forward NET (--weights DIR | --seed S) --input X.npy --output Y.npy [--trace DIR]\n"
    "                               [--limit N] [--profile]   run the network on images\n"
    "  grad NET --weights DIR --input X.npy --labels L.npy --output DIR [--loss L]\n"
    "                               one forward and backward pass: loss and gradients\n"
    "    forward and grad also take --mode train|eval (default: eval for forward, train for\n"
    "    grad) and --random-seed S (where dropout's draws start)\n"
    "  train NET [--data DIR] [--epochs E] [--batch B] [--optimizer sgd|adam] [--lr LR]\n"
    "            [--momentum M] [--weight-decay WD] [--schedule constant|step|cosine]\n"
    "            [--seed S] [--save MODEL] [--resume MODEL] [--limit N] [--loss L]\n"
    "                               trains on an MNIST-format data set (Fashion-MNIST)\n"
    "  eval MODEL [--data DIR] [--limit N]   test loss, accuracy and confusion matrix\n"
    "  predict MODEL IMAGE...       top classes of .npy, PGM or PNG images\n"
    "  export MODEL DIR             network file, .npy weights and metadata.txt of a model\n"
    "  import NET DIR MODEL [--mean M[,M...]] [--std S[,S...]] [--classes FILE]\n"
    "                               a model from a network file and .npy weights\n"
    "  bench [--ops] [--train] [--infer] [--repeat N] [--quick] [--json FILE]\n"
    "                               GFLOP/s and images/s, OpenCL against the reference\n"
    "  tune NET [--batch B]         measure kernel configurations for NET's layers on\n"
    "                               this device and keep the fastest\n"
    "  filter NAME IMAGE OUT.npy [--valid]   apply a named 3x3 filter (filter --list)\n"
    "\n"
    "CLCNN_DEVICE=platform:device also picks the OpenCL device.\n";

int cli_fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("clcnn: ", stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return 1;
}

int cli_fail_context(clcnn_context *ctx) {
    return cli_fail("%s", clcnn_last_error(ctx));
}

int cli_pass_option(const char *command, int argc, char **argv, int *i, cli_pass *pass) {
    const char *arg = argv[*i];
    const int is_mode = strcmp(arg, "--mode") == 0;
    if (!is_mode && strcmp(arg, "--random-seed") != 0)
        return 0;
    if (*i + 1 >= argc) {
        cli_fail("%s: %s needs a value", command, arg);
        return -1;
    }
    const char *value = argv[++*i];
    if (!is_mode)
        return cli_parse_int64(arg, value, &pass->random_seed) == 0 ? 1 : -1;
    if (strcmp(value, "train") == 0)
        pass->mode = CLCNN_MODE_TRAIN;
    else if (strcmp(value, "eval") == 0)
        pass->mode = CLCNN_MODE_EVAL;
    else {
        cli_fail("%s: --mode must be train or eval, got '%s'", command, value);
        return -1;
    }
    return 1;
}

clcnn_status cli_apply_pass(clcnn_net *net, const cli_pass *pass) {
    clcnn_status status = CLCNN_OK;
    if (pass->mode >= 0)
        status = clcnn_net_set_mode(net, (clcnn_mode)pass->mode);
    if (status == CLCNN_OK && pass->random_seed >= 0)
        status = clcnn_net_set_random_seed(net, (uint64_t)pass->random_seed);
    return status;
}

int cli_parse_int64(const char *option, const char *text, int64_t *out) {
    char *end;
    long long value = strtoll(text, &end, 10);
    if (end == text || *end != 0 || value < 0) {
        cli_fail("%s: expected a non-negative integer, got '%s'", option, text);
        return -1;
    }
    *out = value;
    return 0;
}

double cli_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

clcnn_context *cli_open_context(const cli_common *common) {
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx) {
        cli_fail("out of memory");
        return NULL;
    }
    if (clcnn_context_select_device(ctx, common->device, common->platform_index,
                                    common->device_index) != CLCNN_OK) {
        cli_fail_context(ctx);
        clcnn_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

/* Takes the common options out of argv wherever they stand; returns the new argc or -1. */
static int parse_common(cli_common *common, int argc, char **argv) {
    common->device = CLCNN_DEVICE_OPENCL;
    common->device_given = 0;
    common->platform_index = -1;
    common->device_index = -1;
    int kept = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        int is_device = strcmp(arg, "--device") == 0;
        int is_platform = strcmp(arg, "--platform") == 0;
        int is_index = strcmp(arg, "--device-index") == 0;
        if (!is_device && !is_platform && !is_index) {
            argv[kept++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            cli_fail("%s needs a value", arg);
            return -1;
        }
        const char *value = argv[++i];
        if (is_device) {
            common->device_given = 1;
            if (strcmp(value, "opencl") == 0)
                common->device = CLCNN_DEVICE_OPENCL;
            else if (strcmp(value, "reference") == 0)
                common->device = CLCNN_DEVICE_REFERENCE;
            else {
                cli_fail("--device: expected 'opencl' or 'reference', got '%s'", value);
                return -1;
            }
        } else {
            int64_t n;
            if (cli_parse_int64(arg, value, &n) != 0)
                return -1;
            if (is_platform)
                common->platform_index = (int)n;
            else
                common->device_index = (int)n;
        }
    }
    /* Naming only one of the two means the other is 0. */
    if (common->platform_index >= 0 && common->device_index < 0)
        common->device_index = 0;
    if (common->device_index >= 0 && common->platform_index < 0)
        common->platform_index = 0;
    return kept;
}

int main(int argc, char **argv) {
    cli_common common;
    size_t used = 0;
    common.command_line[0] = 0;
    for (int i = 0; i < argc && used < sizeof(common.command_line); i++) {
        int n = snprintf(common.command_line + used, sizeof(common.command_line) - used, "%s%s",
                         i ? " " : "", argv[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    argc = parse_common(&common, argc - 1, argv + 1);
    argv = argv + 1;
    if (argc < 0)
        return 2;
    if (argc == 0) {
        fputs(usage, stderr);
        return 2;
    }
    const char *command = argv[0];
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
        /* The library's version: the command is built with it. */
        printf("clcnn %s\n", clcnn_version());
        return 0;
    }
    if (strcmp(command, "devices") == 0)
        return command_devices(&common, argc - 1, argv + 1);
    if (strcmp(command, "summary") == 0)
        return command_summary(&common, argc - 1, argv + 1);
    if (strcmp(command, "forward") == 0)
        return command_forward(&common, argc - 1, argv + 1);
    if (strcmp(command, "grad") == 0)
        return command_grad(&common, argc - 1, argv + 1);
    if (strcmp(command, "train") == 0)
        return command_train(&common, argc - 1, argv + 1);
    if (strcmp(command, "eval") == 0)
        return command_eval(&common, argc - 1, argv + 1);
    if (strcmp(command, "predict") == 0)
        return command_predict(&common, argc - 1, argv + 1);
    if (strcmp(command, "export") == 0)
        return command_export(&common, argc - 1, argv + 1);
    if (strcmp(command, "import") == 0)
        return command_import(&common, argc - 1, argv + 1);
    if (strcmp(command, "bench") == 0)
        return command_bench(&common, argc - 1, argv + 1);
    if (strcmp(command, "tune") == 0)
        return command_tune(&common, argc - 1, argv + 1);
    if (strcmp(command, "filter") == 0)
        return command_filter(&common, argc - 1, argv + 1);
    cli_fail("unknown command '%s' (try 'clcnn help')", command);
    return 2;
}
