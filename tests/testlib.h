/* Small helpers shared by the tests: counted checks, scratch directories, random data. */
#ifndef CLCNN_TESTLIB_H
#define CLCNN_TESTLIB_H

#include "clcnn.h"

#include <stdint.h>

/* Records one check; prints the failing expression with its place. Returns ok. */
int check_true(int ok, const char *expression, const char *file, int line);
#define CHECK(condition) check_true((condition) ? 1 : 0, #condition, __FILE__, __LINE__)

/* Checks a clcnn call returned CLCNN_OK, printing clcnn_last_error otherwise. */
int check_ok(clcnn_context *ctx, clcnn_status status, const char *expression, const char *file,
             int line);
#define CHECK_OK(ctx, call) check_ok((ctx), (call), #call, __FILE__, __LINE__)

/* Records that part of the test did not run and prints why. A test with a
 * skipped part ends with TEST_SKIPPED (CTest's SKIP_RETURN_CODE, so CTest
 * reports it skipped rather than passed) unless a check failed. */
#define TEST_SKIPPED 77
void test_skip(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* count, or a part of it under CLCNN_TEST_QUICK (for slow runs: valgrind,
 * Oclgrind): 1 or a non-number runs a fifth, N >= 2 an N-th (at least 1).
 * A test that ran a part reports the rest as skipped (test_finish). */
int test_scaled_count(int count);
/* The divisor test_scaled_count applies (1 at full strength). */
int test_quick_divisor(void);

/* Prints "N passed, M failed" (", K skipped" after a test_skip) and returns
 * the process exit code: 1 when a check failed or none ran, TEST_SKIPPED
 * after a test_skip, else 0. */
int test_finish(void);

/* A fresh scratch directory for this test ($CLCNN_TMP or /tmp/clcnn-test-<pid>),
 * and a path inside it. */
const char *test_dir(void);
const char *test_path(const char *name);

/* Writes text to a file; returns 0 on success. */
int write_text(const char *path, const char *text);

/* Runs a shell command, capturing up to size-1 bytes of stdout+stderr. Returns the exit status. */
int run_command(const char *command, char *output, size_t size);
/* The clcnn tool ($CLCNN_BIN). */
const char *clcnn_bin(void);

/* A reproducible generator for test data. */
typedef struct test_rng {
    uint64_t state;
} test_rng;
uint32_t test_rand(test_rng *r);
int test_rand_int(test_rng *r, int low, int high); /* inclusive */
float test_rand_float(test_rng *r, float low, float high);

/* Worst |a-b| / max(|b|, floor) over n values; floor keeps values that
 * cancel to almost nothing from counting as large relative errors. */
double max_relative_error(const float *a, const float *b, int64_t n, double floor);
/* Worst |a - e| / magnitude over n values against a float64 reference e,
 * with an exact match required where the magnitude is 0; INFINITY if a
 * value of a is not finite. */
double worst_scaled_error(const float *a, const double *e, const double *magnitude, int64_t n);

/* PyTorch's conv2d of shape p (stride, padding, dilation, groups) in
 * float64, and each output's magnitude: the sum of its terms' |values|
 * (magnitude may be NULL). */
struct conv2d_params;
void conv2d_forward64(const struct conv2d_params *p, const float *x, const float *w,
                      const float *bias, double *y, double *magnitude);
/* The gradient of sum(g * conv2d(x)) with respect to x in float64, and each
 * value's magnitude. */
void conv2d_backward_data64(const struct conv2d_params *p, const float *g, const float *w,
                            double *dx, double *magnitude);

/* Launches of the kernel profiled as `name` since the context's profile
 * was last cleared (clcnn_profile_enable counts every launch). */
int test_kernel_launches(const clcnn_context *ctx, const char *name);

/* count (at least 1) floats or zeroed doubles; exits on failure. */
float *test_floats(int64_t count);
double *test_doubles(int64_t count);
/* count values drawn uniformly from [-1, 1). */
void test_fill_signed(test_rng *r, float *values, int64_t count);
/* A new array of count floats filled so (test_floats, then test_fill_signed). */
float *test_signed_floats(test_rng *r, int64_t count);
/* count values drawn uniformly from [low, high). */
void test_fill_uniform(test_rng *r, float *values, int64_t count, float low, float high);
/* count NaNs: an element a kernel should write and does not shows. */
void test_fill_nan(float *values, int64_t count);
/* 1 if the arrays hold the same floats bit for bit (NaN equal to NaN, 0 unequal to -0). */
int test_bitwise_equal(const float *a, const float *b, int64_t count);

/* Worst |fd - computed| / max(|fd|, floor) of count values (infinite for a NaN). */
double test_fd_error(const double *fd, const float *computed, int64_t count, double floor);
/* A new array of count doubles holding values (exits on failure). */
double *test_to_doubles(const float *values, int64_t count);
/* A gradient's starting values: NaN where the backward overwrites it (so an
 * element never written shows), random in [-1, 1) where it adds into it. */
void test_fill_destination(test_rng *r, float *values, int64_t count, int accumulate);
/* A monotonic clock, in seconds. */
double test_seconds(void);

/* The cases of one check: how many ran, how many failed, the worst error. */
typedef struct test_tally {
    int cases, failures;
    double worst_error;
} test_tally;
/* Counts one case; returns 1 if its error is within bound (a NaN error
 * fails and makes the worst error infinite). */
int test_tally_record(test_tally *tally, double error, double bound);
/* One line: the name padded to width, the cases (called `noun`), the worst
 * error, FAILED if any case failed. */
void test_tally_print(const char *name, int width, const char *noun, const test_tally *tally);

/* A context on the OpenCL device chosen by CLCNN_DEVICE (default 0:0), or NULL with a message. */
clcnn_context *test_opencl_context(void);
/* A context on a device of kind: test_opencl_context's, or the reference; NULL where none. */
clcnn_context *test_context(clcnn_device_kind kind);
/* The first count of the IDX training images in dir, normalised with their
 * own mean and deviation; 0 (a failed check) where they do not load. */
int test_load_training_images(clcnn_context *ctx, const char *dir, int64_t count,
                              clcnn_dataset *out);

/* The element-wise kernels' spans (CLCNN_ITEM_SPAN) a test runs them with:
 * the device's default (NULL), one element per work-item as on GPUs, and a
 * span that divides none of the test's counts. */
#define TEST_ITEM_SPANS 3
extern const char *const test_item_spans[TEST_ITEM_SPANS];

/* The same with CLCNN_ITEM_SPAN set to span (NULL: unset) while it selects its device. */
clcnn_context *test_opencl_context_with_span(const char *span);

#endif
