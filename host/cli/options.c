/* The command tables at work: parsing a command line against one, and the
 * help text, the usage lines and the man page made from them. */
#include "cli.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const cli_command *const cli_commands[] = {&cli_command_devices,
                                           &cli_command_summary,
                                           &cli_command_forward,
                                           &cli_command_grad,
                                           &cli_command_train,
                                           &cli_command_eval,
                                           &cli_command_predict,
                                           &cli_command_export,
                                           &cli_command_import,
                                           &cli_command_filter,
                                           &cli_command_filters,
                                           &cli_command_features,
                                           &cli_command_plot,
                                           &cli_command_tune,
                                           &cli_command_bench,
                                           &cli_command_help,
                                           NULL};

/* Every command also takes these, anywhere on the line (main.c reads them). */
const cli_option cli_common_options[] = {
    {"--device", "opencl|reference",
     "run on the OpenCL device (default) or on the plain-C reference"},
    {"--platform", "P", "the OpenCL platform, counted from 0 (CLCNN_DEVICE=P:D does the same)"},
    {"--device-index", "D", "the OpenCL device of that platform, counted from 0"},
    {NULL, NULL, NULL}};

static const cli_option help_option = {"--help", NULL, "print this help and exit"};

int cli_usage(const cli_command *command, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fputs("clcnn: ", stderr);
    fputs(cli_message_prefix(), stderr);
    if (command)
        fprintf(stderr, "%s: ", command->name);
    vfprintf(stderr, format, args);
    if (command)
        fprintf(stderr, " (clcnn help %s)", command->name);
    fputc('\n', stderr);
    va_end(args);
    return CLI_USAGE;
}

static const cli_option *find_option(const cli_command *command, const char *name) {
    for (const cli_option *o = command->options; o && o->name; o++)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

/* A name the command's code asks for must be in its table: that is what
 * keeps the help true. */
static const cli_option *known_option(const cli_args *args, const char *name) {
    const cli_option *option = find_option(args->command, name);
    if (!option) {
        fprintf(stderr, "clcnn: internal error: %s reads %s, which its table lacks\n",
                args->command->name, name);
        abort();
    }
    return option;
}

const char *cli_value(const cli_args *args, const char *name) {
    const cli_option *option = known_option(args, name);
    const char *value = NULL;
    for (int i = 0; i < args->option_count; i++)
        if (args->options[i].option == option)
            value = args->options[i].value;
    return value;
}

int cli_given(const cli_args *args, const char *name) {
    const cli_option *option = known_option(args, name);
    for (int i = 0; i < args->option_count; i++)
        if (args->options[i].option == option)
            return 1;
    return 0;
}

int cli_int_option(const cli_args *args, const char *name, int64_t *out) {
    const char *value = cli_value(args, name);
    if (value && cli_parse_int64(name, value, out) != 0)
        return CLI_USAGE;
    return 0;
}

int cli_int_option_in(const cli_args *args, const char *name, int64_t low, int64_t high,
                      int64_t *out) {
    const char *value = cli_value(args, name);
    int64_t number = 0;
    if (!value)
        return 0;
    if (cli_parse_int64(name, value, &number) != 0)
        return CLI_USAGE;
    if (number < low || number > high)
        return cli_usage(args->command, "%s: %s is out of range (%lld to %lld)", name, value,
                         (long long)low, (long long)high);
    *out = number;
    return 0;
}

/* The length of a command's first synopsis form (its arguments up to a newline). */
static int form_length(const char *form) {
    return (int)strcspn(form, "\n");
}

/* "clcnn CMD FORM[, or clcnn CMD FORM...]" for a one-line message. */
static void usage_forms(const cli_command *command, char *buf, size_t size) {
    size_t used = 0;
    const char *suffix = command->options && command->options[0].name ? " [options]" : "";
    for (const char *form = command->arguments; used < size;) {
        const int length = form_length(form);
        used += (size_t)snprintf(buf + used, size - used, "%sclcnn %s%s%.*s%s",
                                 form == command->arguments ? "" : ", or ", command->name,
                                 length ? " " : "", length, form, suffix);
        if (form[length] == 0)
            break;
        form += length + 1;
    }
}

/* ---- parsing ------------------------------------------------------------------------------- */

int cli_parse_args(const cli_command *command, int argc, char **argv, cli_args *out) {
    memset(out, 0, sizeof(*out));
    out->command = command;
    out->options = calloc((size_t)argc + 1, sizeof(cli_arg));
    out->positional = calloc((size_t)argc + 1, sizeof(char *));
    if (!out->options || !out->positional)
        return cli_fail("out of memory");
    int only_positional = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == 0) {
            out->positional[out->positional_count++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = 1;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli_print_help(stdout, command);
            return -1;
        }
        const cli_option *option = find_option(command, arg);
        if (!option)
            return cli_usage(command, "unknown option '%s'", arg);
        const char *value = NULL;
        if (option->argument) {
            if (i + 1 >= argc)
                return cli_usage(command, "%s needs a value (%s)", arg, option->argument);
            value = argv[++i];
        }
        out->options[out->option_count].option = option;
        out->options[out->option_count].value = value;
        out->option_count++;
    }
    if (command->max_positional >= 0 && out->positional_count > command->max_positional)
        return cli_usage(command, "unexpected argument '%s'",
                         out->positional[command->max_positional]);
    if (out->positional_count < command->min_positional) {
        char forms[1024];
        usage_forms(command, forms, sizeof(forms));
        return cli_usage(command, "missing arguments; usage: %s", forms);
    }
    return 0;
}

void cli_free_args(cli_args *args) {
    free(args->options);
    free((void *)args->positional);
    memset(args, 0, sizeof(*args));
}

/* ---- help ---------------------------------------------------------------------------------- */

/* "NAME ARG" of an option, as help and usage lines show it. */
static void option_text(const cli_option *o, char *buf, size_t size) {
    snprintf(buf, size, "%s%s%s", o->name, o->argument ? " " : "", o->argument ? o->argument : "");
}

/* "clcnn CMD FORM [--a A] [--b] ...", wrapped before 80 columns with its
 * continuation lines indented under the first option. */
static void print_synopsis_form(FILE *out, const cli_command *c, const char *form, int length,
                                const char *indent) {
    int column = fprintf(out, "%sclcnn %s%s%.*s", indent, c->name, length ? " " : "", length, form);
    const int hang = (int)strlen(indent) + 7 + (int)strlen(c->name);
    for (const cli_option *o = c->options; o && o->name; o++) {
        char text[128];
        option_text(o, text, sizeof(text));
        int width = (int)strlen(text) + 3;
        if (column + width > 79) {
            fprintf(out, "\n%*s", hang, "");
            column = hang;
        }
        column += fprintf(out, " [%s]", text);
    }
    fputc('\n', out);
}

/* The synopsis: a line (or more, wrapped) for each form of the arguments,
 * the later ones under the first. */
static void print_synopsis(FILE *out, const cli_command *c, const char *indent) {
    const char *form = c->arguments;
    for (;;) {
        const int length = form_length(form);
        print_synopsis_form(out, c, form, length, indent);
        if (form[length] == 0)
            break;
        form += length + 1;
        indent = "       "; /* under the first form, after "usage: " */
    }
}

static void print_option_list(FILE *out, const cli_option *options) {
    for (const cli_option *o = options; o && o->name; o++) {
        char text[128];
        option_text(o, text, sizeof(text));
        if (strlen(text) > 24)
            fprintf(out, "  %s\n  %24s  %s\n", text, "", o->help);
        else
            fprintf(out, "  %-24s  %s\n", text, o->help);
    }
}

/* Text with its words wrapped before column 79; blank lines kept. */
static void print_wrapped(FILE *out, const char *text) {
    int column = 0;
    const char *p = text;
    while (*p) {
        if (*p == '\n') {
            fputc('\n', out);
            column = 0;
            p++;
            continue;
        }
        if (*p == ' ') {
            p++;
            continue;
        }
        const int length = (int)strcspn(p, " \n");
        if (column > 0 && column + 1 + length > 78) {
            fputc('\n', out);
            column = 0;
        }
        column += fprintf(out, "%s%.*s", column ? " " : "", length, p);
        p += length;
    }
    if (column > 0)
        fputc('\n', out);
}

void cli_print_help(FILE *out, const cli_command *c) {
    fputs("usage: ", out);
    print_synopsis(out, c, "");
    fprintf(out, "\n%c%s.\n", toupper((unsigned char)c->summary[0]), c->summary + 1);
    if (c->details) {
        fputc('\n', out);
        print_wrapped(out, c->details);
    }
    fputs("\noptions:\n", out);
    print_option_list(out, c->options);
    print_option_list(out, (const cli_option[]){help_option, {NULL, NULL, NULL}});
    fputs("\ncommon options (before or after the command):\n", out);
    print_option_list(out, cli_common_options);
}

void cli_print_usage(FILE *out) {
    fputs("usage: clcnn [--device opencl|reference] [--platform P --device-index D] COMMAND ...\n"
          "       clcnn --version\n"
          "\ncommands:\n",
          out);
    for (int i = 0; cli_commands[i]; i++)
        fprintf(out, "  %-10s %s\n", cli_commands[i]->name, cli_commands[i]->summary);
    fputs("\n'clcnn help COMMAND' or 'clcnn COMMAND --help' describes a command and its options.\n"
          "Exit status: 0 success, 1 failure, 2 usage error.\n"
          "CLCNN_DEVICE=platform:device also picks the OpenCL device.\n",
          out);
}

/* ---- the man page -----------------------------------------------------------------------------
 */

/* Text for roff: backslashes and hyphens escaped, a line never starting with
 * a control character. */
static void roff_text(FILE *out, const char *text) {
    int line_start = 1;
    for (const char *p = text; *p; p++) {
        if (line_start && (*p == '.' || *p == '\''))
            fputs("\\&", out);
        if (*p == '\\')
            fputs("\\e", out);
        else if (*p == '-')
            fputs("\\-", out);
        else
            fputc(*p, out);
        line_start = *p == '\n';
    }
}

/* A paragraph per blank-line-separated block of text. */
static void roff_paragraphs(FILE *out, const char *text) {
    const char *p = text;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        size_t length = end ? (size_t)(end - p) : strlen(p);
        char *block = malloc(length + 1);
        if (!block)
            return;
        memcpy(block, p, length);
        block[length] = 0;
        fputs(".PP\n", out);
        roff_text(out, block);
        fputc('\n', out);
        free(block);
        p += length;
        while (*p == '\n')
            p++;
    }
}

static void roff_options(FILE *out, const cli_option *options) {
    for (const cli_option *o = options; o && o->name; o++) {
        fputs(".TP\n\\fB", out);
        roff_text(out, o->name);
        fputs("\\fR", out);
        if (o->argument) {
            fputs(" \\fI", out);
            roff_text(out, o->argument);
            fputs("\\fR", out);
        }
        fputc('\n', out);
        roff_text(out, o->help);
        fputs(".\n", out);
    }
}

void cli_print_man(FILE *out) {
    fputs(".TH CLCNN 1 \"\" \"clcnn\" \"User Commands\"\n"
          ".SH NAME\n"
          "clcnn \\- build, train and run convolutional neural networks through OpenCL\n"
          ".SH SYNOPSIS\n"
          ".B clcnn\n"
          "[\\fB\\-\\-device\\fR \\fIopencl|reference\\fR] [\\fB\\-\\-platform\\fR \\fIP\\fR "
          "\\fB\\-\\-device\\-index\\fR \\fID\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]\n"
          ".br\n"
          ".B clcnn help\n"
          "[\\fICOMMAND\\fR]\n"
          ".br\n"
          ".B clcnn \\-\\-version\n"
          ".SH DESCRIPTION\n"
          "clcnn builds, trains and runs convolutional neural networks described by network\n"
          "files, on any OpenCL 1.2 device or on its plain\\-C reference. Every command\n"
          "prints its help with \\fB\\-\\-help\\fR.\n"
          ".SH COMMON OPTIONS\n",
          out);
    roff_options(out, cli_common_options);
    fputs(".SH COMMANDS\n", out);
    for (int i = 0; cli_commands[i]; i++) {
        const cli_command *c = cli_commands[i];
        /* A heading for each form of the arguments. */
        for (const char *form = c->arguments;;) {
            const int length = form_length(form);
            char text[256];
            snprintf(text, sizeof(text), "%s%s%.*s", c->name, length ? " " : "", length, form);
            fputs(".SS \"", out);
            roff_text(out, text);
            fputs("\"\n", out);
            if (form[length] == 0)
                break;
            form += length + 1;
        }
        fputc(toupper((unsigned char)c->summary[0]), out);
        roff_text(out, c->summary + 1);
        fputs(".\n", out);
        if (c->details)
            roff_paragraphs(out, c->details);
        if (c->options && c->options[0].name) {
            fputs(".PP\nOptions:\n.RS\n", out);
            roff_options(out, c->options);
            fputs(".RE\n", out);
        }
    }
    fputs(".SH ENVIRONMENT\n"
          ".TP\n.B CLCNN_DEVICE\n\\fIP\\fR:\\fID\\fR picks OpenCL platform P, device D.\n"
          ".TP\n.B XDG_CACHE_HOME\nCompiled kernels and tuning files go to "
          "$XDG_CACHE_HOME/clcnn (or ~/.cache/clcnn).\n"
          ".TP\n.B CLCNN_NO_CACHE\n1 turns the kernel binary cache off.\n"
          ".TP\n.B CLCNN_AUTOTUNE\n0 turns autotuning off: on CPU devices, planning a network "
          "otherwise times a few kernel configurations for each convolution shape the tuning "
          "file lacks and adds the fastest to it.\n"
          ".TP\n.B CLCNN_WINOGRAD\n0, 1, fused or 4x4: stride-1 3x3 convolutions never or always "
          "on Winograd F(2x2, 3x3), fused: on its fused kernel where that can run (up to 256 "
          "input channels), 4x4: forward and backward-data on F(4x4, 3x3) where that can run (up "
          "to 128); by default where and as tuning timed it faster.\n"
          ".TP\n.B CLCNN_POINTWISE\n0 or 1: 1x1 stride-1 unpadded convolutions (forward and "
          "backward-data) never or always as matrix products over the positions; by default "
          "where tuning timed them faster.\n"
          ".TP\n.B CLCNN_FUSE\n0 runs a relu that follows a conv, dense, batchnorm or add layer as "
          "a layer of "
          "its own; by default (1) it runs inside that layer's kernels, with the same results.\n"
          ".TP\n.B CLCNN_ZERO_COPY\n0 copies the images of a forward pass to device buffers and "
          "its outputs back; 1 lets the kernels read and write the caller's arrays in place, the "
          "default where the device shares the host's memory (CPU devices).\n"
          ".SH EXIT STATUS\n"
          "0 on success, 1 when a command fails (with one line on standard error saying why),\n"
          "2 when the command line is wrong (an unknown command or option, a missing argument,\n"
          "a bad option value).\n"
          ".SH SEE ALSO\n"
          "The README and docs/tutorial.md of the clcnn sources.\n",
          out);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

void cli_json_string(FILE *out, const char *text) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", out);
        else if (*p == '\t')
            fputs("\\t", out);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

void cli_json_number(FILE *out, double value) {
    if (isfinite(value))
        fprintf(out, "%.9g", value);
    else
        fputs("null", out);
}

/* ---- clcnn help ---------------------------------------------------------------------------- */

const cli_command *cli_find_command(const char *name) {
    for (int i = 0; cli_commands[i]; i++)
        if (strcmp(cli_commands[i]->name, name) == 0)
            return cli_commands[i];
    return NULL;
}

static int run_help(const cli_common *common, const cli_args *args) {
    if (cli_given(args, "--man")) {
        if (args->positional_count > 0)
            return cli_usage(args->command, "--man takes no command");
        cli_print_man(stdout);
        return 0;
    }
    if (args->positional_count == 0) {
        cli_print_usage(stdout);
        return 0;
    }
    const cli_command *command = cli_find_command(args->positional[0]);
    if (!command)
        return cli_usage(args->command, "unknown command '%s'", args->positional[0]);
    cli_print_help(stdout, command);
    return 0;
}

const cli_command cli_command_help = {
    "help",
    "[COMMAND]",
    0,
    1,
    "describe the commands, or one command and its options",
    NULL,
    (const cli_option[]){{"--man", NULL, "write the manual page (roff) instead"},
                         {NULL, NULL, NULL}},
    run_help};
