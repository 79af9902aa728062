/* Shared pieces of the fuzz harnesses (tests/fuzz/fuzz_*.c).
 *
 * Every harness defines LLVMFuzzerTestOneInput. Built with clang and
 * -fsanitize=fuzzer it is a libFuzzer target; built with any compiler
 * beside replay.c it is a replay driver that runs the harness once on every
 * file named on its command line (CTest replays the seed corpora and every
 * crash reproducer that way). Parsers that read files get the input through
 * a scratch directory of their own. */
#ifndef CLCNN_FUZZ_H
#define CLCNN_FUZZ_H

#include "clcnn.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A scratch directory for this process ($TMPDIR or /tmp, clcnn-fuzz-<pid>),
 * created on first use and removed at exit; and a path inside it. */
const char *fuzz_dir(void);
const char *fuzz_path(const char *name);

/* Writes bytes to path (creating directories on the way is the caller's
 * job); aborts when it cannot, since a harness that cannot write its input
 * tests nothing. */
void fuzz_write(const char *path, const void *bytes, size_t size);
void fuzz_mkdir(const char *path);
/* Removes everything inside fuzz_dir(). */
void fuzz_clear(void);

/* One context for the whole run, on the reference device. */
clcnn_context *fuzz_context(void);

#endif
