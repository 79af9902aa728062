/* clcnn: the command-line tool. Uses only the public API of include/clcnn.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *message_prefix = "";

void cli_set_message_prefix(const char *prefix) {
    message_prefix = prefix;
}

const char *cli_message_prefix(void) {
    return message_prefix;
}

int cli_fail(const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("clcnn: ", stderr);
    fputs(message_prefix, stderr);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return 1;
}

int cli_fail_context(clcnn_context *ctx) {
    return cli_fail("%s", clcnn_last_error(ctx));
}

int cli_read_pass(const cli_args *args, cli_pass *pass) {
    const char *mode = cli_value(args, "--mode");
    if (cli_int_option(args, "--random-seed", &pass->random_seed) != 0)
        return CLI_USAGE;
    if (!mode)
        return 0;
    if (strcmp(mode, "train") == 0)
        pass->mode = CLCNN_MODE_TRAIN;
    else if (strcmp(mode, "eval") == 0)
        pass->mode = CLCNN_MODE_EVAL;
    else
        return cli_usage(args->command, "--mode must be train or eval, got '%s'", mode);
    return 0;
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
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno == ERANGE) {
        cli_fail("%s: %s is out of range (at most %lld)", option, text, (long long)INT64_MAX);
        return -1;
    }
    if (end == text || *end != 0 || value < 0) {
        cli_fail("%s: expected a non-negative integer, got '%s'", option, text);
        return -1;
    }
    *out = value;
    return 0;
}

int64_t cli_layer_size(const clcnn_layer_info *info) {
    return info->ndim == 3 ? (int64_t)info->shape[0] * info->shape[1] * info->shape[2]
                           : info->shape[0];
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
        int is_device = strcmp(arg, cli_common_options[0].name) == 0;
        int is_platform = strcmp(arg, cli_common_options[1].name) == 0;
        int is_index = strcmp(arg, cli_common_options[2].name) == 0;
        if (!is_device && !is_platform && !is_index) {
            argv[kept++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            cli_usage(NULL, "%s needs a value", arg);
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
                cli_usage(NULL, "--device: expected 'opencl' or 'reference', got '%s'", value);
                return -1;
            }
        } else {
            int64_t n;
            if (cli_parse_int64(arg, value, &n) != 0)
                return -1;
            if (n > INT32_MAX) {
                cli_fail("%s: %s is out of range (at most %d)", arg, value, INT32_MAX);
                return -1;
            }
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
        cli_print_usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        cli_print_usage(stdout);
        return 0;
    }
    if (strcmp(argv[0], "--version") == 0 || strcmp(argv[0], "version") == 0) {
        /* The library's version: the command is built with it. */
        printf("clcnn %s\n", clcnn_version());
        return 0;
    }
    const cli_command *command = cli_find_command(argv[0]);
    if (!command)
        return cli_usage(NULL, "unknown command '%s' (try 'clcnn help')", argv[0]);
    cli_args args;
    int result = cli_parse_args(command, argc - 1, argv + 1, &args);
    if (result == 0)
        result = command->run(&common, &args);
    else if (result < 0)
        result = 0; /* --help */
    cli_free_args(&args);
    return result;
}
