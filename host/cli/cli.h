/* The clcnn command: shared option handling for its subcommands. */
#ifndef CLCNN_CLI_H
#define CLCNN_CLI_H

#include "clcnn.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_args cli_args;

/* Options every command takes, removed from argv by cli_parse_common. */
typedef struct cli_common {
    clcnn_device_kind device;
    int device_given;                 /* --device was on the command line */
    int platform_index, device_index; /* -1: CLCNN_DEVICE or 0:0 */
    char command_line[2048];          /* as typed, for reports */
} cli_common;

/* Exit statuses: 0 success, 1 a failure while running, 2 a usage error (the
 * command line itself is wrong: an unknown option, a missing argument, a bad
 * option value). */
enum { CLI_FAILURE = 1, CLI_USAGE = 2 };

/* Prints "clcnn: <message>" on stderr and returns 1, the exit status of a failure. */
int cli_fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* The same with clcnn_last_error(ctx) as the message. */
int cli_fail_context(clcnn_context *ctx);

/* Seconds on a monotonic clock, for the commands' timings. The library has
 * its own (internal) clock: the command uses only the public API, and a
 * clock is no part of what the library offers. */
double cli_seconds(void);

/* Floats of one image at a layer's output. */
int64_t cli_layer_size(const clcnn_layer_info *info);

/* Prints "label: CxHxW" (or "label: N") and the values, a matrix per
 * channel, rows on lines, columns aligned, each value in %g. */
void cli_print_values(FILE *out, const char *label, int ndim, const int *shape,
                      const float *values);

/* A text image: numbers separated by blanks or commas, a row a line, a
 * blank line between channels, '#' comments; into out as float32 (C, H, W). */
int cli_read_text_image(const char *path, clcnn_array *out);

/* A context on the device the common options chose, or NULL after printing why. */
clcnn_context *cli_open_context(const cli_common *common);

/* 1 when path names an ONNX file (ends in .onnx): a network with its weights. */
int cli_is_onnx(const char *path);

/* Parses a whole non-negative integer option value; returns 0 on success. */
int cli_parse_int64(const char *option, const char *text, int64_t *out);

/* 0 if a file can be written at path (what: "the model", "the output"):
 * not a directory or a device, in an existing directory that takes new
 * files; else 1 after printing why not. Commands check their outputs with
 * it before any work. */
int cli_check_output_file(const char *path, const char *what);

/* What a file holds, told by its first bytes rather than its name: a .npy
 * array (\x93NUMPY), an IDX file (00 00, a type byte 08..0E, a dimension
 * count), a gzip stream (1f 8b: IDX files are read through it), a PGM image
 * (P2 or P5), or anything else (PNG, JPEG and the rest, left to stb_image). */
typedef enum cli_file_kind {
    CLI_FILE_UNREADABLE,
    CLI_FILE_NPY,
    CLI_FILE_IDX,
    CLI_FILE_GZIP,
    CLI_FILE_PGM,
    CLI_FILE_OTHER,
} cli_file_kind;
cli_file_kind cli_file_kind_of(const char *path);

/* Reads images for a network: a .npy of (N, C, H, W) or (C, H, W), float32
 * or float64, or an IDX image file (raw or gzip) whose pixels are scaled to
 * [0, 1]. On success *images holds count * input size floats (malloc'd). */
int cli_read_images(clcnn_context *ctx, clcnn_net *net, const char *path, float **images,
                    int64_t *count);

/* One image file for a network: a .npy or IDX batch as cli_read_images
 * reads it, or a picture (PNG, JPEG, BMP, PGM, PPM, ...) converted to the
 * network's channels and resized to its input with stb_image_resize. */
int cli_read_image_for(clcnn_context *ctx, clcnn_net *net, const char *path, float **images,
                       int64_t *count);

/* forward's and grad's --mode train|eval and --random-seed S: the pass's mode
 * and where its random draws (dropout masks) start. */
typedef struct cli_pass {
    int mode;            /* CLCNN_MODE_*, or -1: the library's default for the pass */
    int64_t random_seed; /* -1: not given */
} cli_pass;

/* The two options in a command's table, and their values from a command
 * line: 0, or CLI_USAGE after printing why not. */
#define CLI_PASS_OPTIONS                                                                           \
    {"--mode", "train|eval",                                                                       \
     "run the pass in train mode (batch statistics, dropout) or eval "                             \
     "mode"},                                                                                      \
    {                                                                                              \
        "--random-seed", "S", "where the random draws (dropout masks) start"                       \
    }
int cli_read_pass(const cli_args *args, cli_pass *pass);
clcnn_status cli_apply_pass(clcnn_net *net, const cli_pass *pass);

/* Parses auto|xent|cross-entropy|bce|binary-cross-entropy|mse; returns 0 on success. */
int cli_parse_loss(const char *text, clcnn_loss *out);

/* A binary (P5) or text (P2) PGM, or any image stb_image reads (PNG, ...)
 * with `channels` channels, as planes (C, H, W) of floats in [0, 1]
 * (malloc'd). Return 0, or 1 after printing why not. */
int cli_read_pgm(const char *path, float **pixels, int *height, int *width);
int cli_read_png(const char *path, int channels, float **pixels, int *height, int *width);

/* Text put after "clcnn: " in every failure and usage message ("rank 1 of 4: "). */
void cli_set_message_prefix(const char *prefix);
const char *cli_message_prefix(void);

/* ---- ranks (ranks.c): `mpirun -np N clcnn train` ----------------------------------------- */

/* This process's place in a data-parallel run: rank 0 of 1 unless an MPI
 * launcher started it and the tool is built with clcnn_mpi. */
typedef struct cli_ranks {
    int rank, size;
    void *mpi; /* clcnn_mpi *, or NULL */
} cli_ranks;

/* Joins the MPI job when an MPI launcher started this process (failure
 * messages then name the rank); refuses one started as one of several
 * processes when the tool has no MPI. Returns 0, or 1 after printing why. */
int cli_ranks_start(cli_ranks *ranks);
/* Leaves the job (MPI_Finalize). */
void cli_ranks_end(cli_ranks *ranks);
/* For a failure of this rank alone (the others would wait for it for ever):
 * says so and ends every rank's process (MPI_Abort). Returns only with one rank. */
void cli_ranks_abort(cli_ranks *ranks);
/* Without --device-index or CLCNN_DEVICE, the OpenCL device of the rank's
 * local rank (modulo the platform's devices). */
void cli_ranks_pick_device(const cli_ranks *ranks, cli_common *common);
/* A hash for cli_ranks_agree (constant without MPI). */
uint64_t cli_ranks_hash(uint64_t hash, const void *bytes, size_t size);
/* Collective: 0 when every rank's hash equals rank 0's; 1 otherwise, after
 * rank 0 printed which ranks have another `what`. */
int cli_ranks_agree(cli_ranks *ranks, const char *what, uint64_t hash);
/* Shards trainer over the ranks, sums their gradients (buckets of
 * bucket_floats overlap backward; 0: after it) and synchronises batchnorm. */
clcnn_status cli_ranks_attach(cli_ranks *ranks, clcnn_trainer *trainer, int64_t bucket_floats);
/* Collective: each value summed over the ranks, in rank order. */
void cli_ranks_sum(cli_ranks *ranks, double *values, int count);
/* Collective: rank 0 prints where the gradient exchange's time went over
 * training that took seconds. */
void cli_ranks_report(cli_ranks *ranks, double seconds);

/* ---- commands and their options ------------------------------------------------------------
 *
 * Each command is one table: its name, its positional arguments, what it does
 * and its options. The parser, `clcnn help CMD`, `CMD --help`, the usage line
 * of `clcnn help` and the man page (`clcnn help --man`) are all made from it,
 * so they cannot disagree. */

/* One option: its name, the word for its value (NULL: a flag, which takes
 * none) and one line of help. A table ends with an entry whose name is NULL. */
typedef struct cli_option {
    const char *name;     /* "--epochs" */
    const char *argument; /* "E"; NULL for a flag */
    const char *help;
} cli_option;

typedef struct cli_command {
    const char *name;      /* "train" */
    const char *arguments; /* the positional part of the synopsis: "NET", "MODEL IMAGE...";
                              several forms one a line: "MODEL DIR\nMODEL FILE.onnx" */
    int min_positional;    /* positional arguments the command needs ... */
    int max_positional;    /* ... and takes at most (-1: any number) */
    const char *summary;   /* one line: what it does */
    const char *details;   /* further text for help and the man page (paragraphs end in
                              "\n\n"), or NULL */
    const cli_option *options;
    int (*run)(const cli_common *common, const cli_args *args);
} cli_command;

/* A command line parsed against a command's table. */
typedef struct cli_arg {
    const cli_option *option;
    const char *value; /* NULL for a flag */
} cli_arg;
struct cli_args {
    const cli_command *command;
    int option_count; /* in command-line order: where an option repeats, the last counts */
    cli_arg *options;
    int positional_count;
    const char **positional;
};

/* The commands, in the order help lists them; NULL-terminated. */
extern const cli_command *const cli_commands[];
/* --device, --platform, --device-index: every command takes them. */
extern const cli_option cli_common_options[];
const cli_command *cli_find_command(const char *name);

/* Parses a command's arguments (after its name) into *out. Returns 0; -1
 * when --help printed the help (exit 0); CLI_USAGE after printing why the
 * line is wrong; CLI_FAILURE when out of memory. Free with cli_free_args. */
int cli_parse_args(const cli_command *command, int argc, char **argv, cli_args *out);
void cli_free_args(cli_args *args);
/* `clcnn help CMD`, `clcnn help` and `clcnn help --man`. */
void cli_print_help(FILE *out, const cli_command *command);
void cli_print_usage(FILE *out);
void cli_print_man(FILE *out);

/* "clcnn: CMD: <message> (clcnn help CMD)" on stderr; returns CLI_USAGE. */
int cli_usage(const cli_command *command, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
/* The value of option `name` (the last one given), or NULL when absent. */
const char *cli_value(const cli_args *args, const char *name);
/* Whether flag or option `name` was given. */
int cli_given(const cli_args *args, const char *name);
/* Option `name` as a non-negative integer into *out (left alone when
 * absent); returns 0, or CLI_USAGE after printing why. */
int cli_int_option(const cli_args *args, const char *name, int64_t *out);
/* The same, the value also within [low, high] ("N is out of range (low to high)"). */
int cli_int_option_in(const cli_args *args, const char *name, int64_t low, int64_t high,
                      int64_t *out);

/* Writes an RGB picture (width * height * 3 bytes) as PNG; 0, or 1 after printing why not. */
int cli_write_png(const char *path, int width, int height, const unsigned char *rgb);

/* JSON output: a string with its quotes and escapes, and a number that is
 * null when not finite (JSON has no NaN). */
void cli_json_string(FILE *out, const char *text);
void cli_json_number(FILE *out, double value);

extern const cli_command cli_command_devices, cli_command_summary, cli_command_forward,
    cli_command_grad, cli_command_train, cli_command_eval, cli_command_predict, cli_command_export,
    cli_command_import, cli_command_filter, cli_command_tune, cli_command_bench,
    cli_command_filters, cli_command_features, cli_command_plot, cli_command_help;

#endif
