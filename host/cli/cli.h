/* The clcnn command: shared option handling for its subcommands. */
#ifndef CLCNN_CLI_H
#define CLCNN_CLI_H

#include "clcnn.h"

#include <stddef.h>
#include <stdint.h>

/* Options every command takes, removed from argv by cli_parse_common. */
typedef struct cli_common {
    clcnn_device_kind device;
    int device_given;                 /* --device was on the command line */
    int platform_index, device_index; /* -1: CLCNN_DEVICE or 0:0 */
    char command_line[2048];          /* as typed, for reports */
} cli_common;

/* Prints "clcnn: <message>" on stderr and returns 1, the exit status of a failure. */
int cli_fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* The same with clcnn_last_error(ctx) as the message. */
int cli_fail_context(clcnn_context *ctx);

/* Seconds on a monotonic clock, for the commands' timings. The library has
 * its own (internal) clock: the command uses only the public API, and a
 * clock is no part of what the library offers. */
double cli_seconds(void);

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

/* forward's and grad's --mode train|eval and --random-seed S: the pass's mode
 * and where its random draws (dropout masks) start. */
typedef struct cli_pass {
    int mode;            /* CLCNN_MODE_*, or -1: the library's default for the pass */
    int64_t random_seed; /* -1: not given */
} cli_pass;

/* If argv[*i] is a pass option, reads its value into pass, advances *i and
 * returns 1; returns 0 for another argument and -1 (message printed) for a
 * bad value. */
int cli_pass_option(const char *command, int argc, char **argv, int *i, cli_pass *pass);
clcnn_status cli_apply_pass(clcnn_net *net, const cli_pass *pass);

/* Parses auto|xent|cross-entropy|bce|binary-cross-entropy|mse; returns 0 on success. */
int cli_parse_loss(const char *text, clcnn_loss *out);

/* A binary (P5) or text (P2) PGM, or any image stb_image reads (PNG, ...)
 * with `channels` channels, as planes (C, H, W) of floats in [0, 1]
 * (malloc'd). Return 0, or 1 after printing why not. */
int cli_read_pgm(const char *path, float **pixels, int *height, int *width);
int cli_read_png(const char *path, int channels, float **pixels, int *height, int *width);

/* Text put after "clcnn: " in every failure message ("rank 1 of 4: "). */
void cli_set_message_prefix(const char *prefix);

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
/* Shards trainer over the ranks and sums their gradients (buckets of
 * bucket_floats overlap backward; 0: after it). */
clcnn_status cli_ranks_attach(cli_ranks *ranks, clcnn_trainer *trainer, int64_t bucket_floats);
/* Collective: each value summed over the ranks, in rank order. */
void cli_ranks_sum(cli_ranks *ranks, double *values, int count);
/* Collective: batchnorm's running statistics averaged over the ranks. */
clcnn_status cli_ranks_average_state(cli_ranks *ranks, clcnn_net *net);
/* Collective: rank 0 prints where the gradient exchange's time went over
 * training that took seconds. */
void cli_ranks_report(cli_ranks *ranks, double seconds);

int command_devices(const cli_common *common, int argc, char **argv);
int command_summary(const cli_common *common, int argc, char **argv);
int command_forward(const cli_common *common, int argc, char **argv);
int command_grad(const cli_common *common, int argc, char **argv);
int command_train(const cli_common *common, int argc, char **argv);
int command_eval(const cli_common *common, int argc, char **argv);
int command_predict(const cli_common *common, int argc, char **argv);
int command_export(const cli_common *common, int argc, char **argv);
int command_import(const cli_common *common, int argc, char **argv);
int command_bench(const cli_common *common, int argc, char **argv);
int command_tune(const cli_common *common, int argc, char **argv);
int command_filter(const cli_common *common, int argc, char **argv);

#endif
