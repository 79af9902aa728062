#include "testlib.h"

#include "ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int passed_count, failed_count;

int check_true(int ok, const char *expression, const char *file, int line) {
    if (ok) {
        passed_count++;
    } else {
        failed_count++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expression);
    }
    return ok;
}

int check_ok(clcnn_context *ctx, clcnn_status status, const char *expression, const char *file,
             int line) {
    if (status == CLCNN_OK) {
        passed_count++;
        return 1;
    }
    failed_count++;
    fprintf(stderr, "%s:%d: %s returned %s: %s\n", file, line, expression,
            clcnn_status_name(status), ctx ? clcnn_last_error(ctx) : "");
    return 0;
}

static int skipped_count;

void test_skip(const char *format, ...) {
    va_list args;
    va_start(args, format);
    printf("skipped: ");
    vprintf(format, args);
    printf("\n");
    va_end(args);
    skipped_count++;
}

int test_quick_divisor(void) {
    static int divisor;
    if (divisor == 0) {
        const char *quick = getenv("CLCNN_TEST_QUICK");
        divisor = 1;
        if (quick && *quick && strcmp(quick, "0") != 0) {
            char *end = NULL;
            long n = strtol(quick, &end, 10);
            divisor = end && *end == 0 && n >= 2 && n <= 1000000 ? (int)n : 5;
        }
    }
    return divisor;
}

static int scaled_down;

int test_scaled_count(int count) {
    const int divisor = test_quick_divisor();
    if (divisor == 1)
        return count;
    scaled_down = 1;
    return count / divisor > 1 ? count / divisor : 1;
}

int test_finish(void) {
    if (scaled_down)
        test_skip("CLCNN_TEST_QUICK: about 1/%d of the shapes ran", test_quick_divisor());
    if (skipped_count > 0) {
        printf("%d passed, %d failed, %d skipped\n", passed_count, failed_count, skipped_count);
        return failed_count > 0 ? 1 : TEST_SKIPPED;
    }
    printf("%d passed, %d failed\n", passed_count, failed_count);
    return failed_count == 0 && passed_count > 0 ? 0 : 1;
}

const char *test_dir(void) {
    static char dir[1024];
    if (!dir[0]) {
        const char *env = getenv("CLCNN_TMP");
        if (env && *env)
            snprintf(dir, sizeof(dir), "%s", env);
        else
            snprintf(dir, sizeof(dir), "/tmp/clcnn-test-%d", (int)getpid());
        char command[2200];
        snprintf(command, sizeof(command), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
        if (system(command) != 0)
            fprintf(stderr, "cannot create %s\n", dir);
    }
    return dir;
}

const char *test_path(const char *name) {
    static char paths[8][1200];
    static int next;
    char *path = paths[next++ % 8];
    snprintf(path, sizeof(paths[0]), "%s/%s", test_dir(), name);
    return path;
}

int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int run_command(const char *command, char *output, size_t size) {
    char full[8192];
    snprintf(full, sizeof(full), "%s 2>&1", command);
    FILE *p = popen(full, "r");
    if (!p)
        return -1;
    size_t used = 0;
    if (output && size)
        output[0] = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
        if (output && used + 1 < size) {
            size_t take = n < size - 1 - used ? n : size - 1 - used;
            memcpy(output + used, chunk, take);
            used += take;
            output[used] = 0;
        }
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

const char *clcnn_bin(void) {
    const char *bin = getenv("CLCNN_BIN");
    return bin && *bin ? bin : "clcnn";
}

uint32_t test_rand(test_rng *r) {
    r->state = r->state * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t x = (uint32_t)(((r->state >> 18) ^ r->state) >> 27);
    uint32_t rot = (uint32_t)(r->state >> 59);
    return (x >> rot) | (x << ((32 - rot) & 31));
}

int test_rand_int(test_rng *r, int low, int high) {
    return low + (int)(test_rand(r) % (uint32_t)(high - low + 1));
}

float test_rand_float(test_rng *r, float low, float high) {
    return low + (high - low) * (float)(test_rand(r) >> 8) * (1.0f / 16777216.0f);
}

double max_relative_error(const float *a, const float *b, int64_t n, double floor) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        double scale = fmax(fabs((double)b[i]), floor);
        double e = diff / scale;
        if (isnan(a[i]) != isnan(b[i]) || isinf(a[i]) != isinf(b[i]))
            e = INFINITY;
        if (e > worst || isnan(e))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

double worst_scaled_error(const float *a, const double *e, const double *magnitude, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double error = fabs(a[i] - e[i]);
        error = magnitude[i] > 0 ? error / magnitude[i] : (error > 0 ? INFINITY : 0);
        worst = error > worst ? error : worst;
    }
    return worst;
}

float *test_floats(int64_t count) {
    float *values = malloc(sizeof(float) * (size_t)(count > 0 ? count : 1));
    if (!values) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return values;
}

double *test_doubles(int64_t count) {
    double *values = calloc((size_t)(count > 0 ? count : 1), sizeof(double));
    if (!values) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return values;
}

void test_fill_signed(test_rng *r, float *values, int64_t count) {
    test_fill_uniform(r, values, count, -1.0f, 1.0f);
}

float *test_signed_floats(test_rng *r, int64_t count) {
    float *values = test_floats(count);
    test_fill_signed(r, values, count);
    return values;
}

void test_fill_uniform(test_rng *r, float *values, int64_t count, float low, float high) {
    for (int64_t i = 0; i < count; i++)
        values[i] = test_rand_float(r, low, high);
}

void test_fill_nan(float *values, int64_t count) {
    for (int64_t i = 0; i < count; i++)
        values[i] = NAN;
}

int test_bitwise_equal(const float *a, const float *b, int64_t count) {
    return count <= 0 || memcmp(a, b, sizeof(float) * (size_t)count) == 0;
}

double test_fd_error(const double *fd, const float *computed, int64_t count, double floor) {
    double worst = 0.0;
    for (int64_t i = 0; i < count; i++) {
        const double error = fabs(fd[i] - (double)computed[i]) / fmax(fabs(fd[i]), floor);
        if (isnan(error))
            return INFINITY;
        if (error > worst)
            worst = error;
    }
    return worst;
}

double *test_to_doubles(const float *values, int64_t count) {
    double *out = test_doubles(count);
    for (int64_t i = 0; i < count; i++)
        out[i] = values[i];
    return out;
}

void test_fill_destination(test_rng *r, float *values, int64_t count, int accumulate) {
    if (accumulate)
        test_fill_signed(r, values, count);
    else
        test_fill_nan(values, count);
}

double test_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
}

int test_tally_record(test_tally *tally, double error, double bound) {
    tally->cases++;
    if (error > tally->worst_error || isnan(error))
        tally->worst_error = isnan(error) ? INFINITY : error;
    const int ok = error <= bound;
    if (!ok)
        tally->failures++;
    return ok;
}

void test_tally_print(const char *name, int width, const char *noun, const test_tally *tally) {
    printf("%-*s %4d %s, worst error %.3g%s\n", width, name, tally->cases, noun, tally->worst_error,
           tally->failures ? "  FAILED" : "");
}

clcnn_context *test_context(clcnn_device_kind kind) {
    if (kind == CLCNN_DEVICE_OPENCL)
        return test_opencl_context();
    clcnn_context *ctx = clcnn_context_create();
    if (ctx && clcnn_context_select_device(ctx, kind, -1, -1) != CLCNN_OK) {
        clcnn_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

int test_load_training_images(clcnn_context *ctx, const char *dir, int64_t count,
                              clcnn_dataset *out) {
    if (!CHECK_OK(ctx, clcnn_dataset_load_idx(ctx, dir, "train", out)))
        return 0;
    if (out->count > count)
        out->count = count;
    float mean, std;
    clcnn_dataset_statistics(out, &mean, &std);
    clcnn_dataset_normalize(out, mean, std);
    return 1;
}

clcnn_context *test_opencl_context(void) {
    clcnn_context *ctx = clcnn_context_create();
    if (!ctx)
        return NULL;
    if (clcnn_context_select_device(ctx, CLCNN_DEVICE_OPENCL, -1, -1) != CLCNN_OK) {
        fprintf(stderr, "no OpenCL device: %s\n", clcnn_last_error(ctx));
        clcnn_context_destroy(ctx);
        return NULL;
    }
    return ctx;
}

const char *const test_item_spans[TEST_ITEM_SPANS] = {NULL, "1", "7"};

clcnn_context *test_opencl_context_with_span(const char *span) {
    if (!span)
        return test_opencl_context();
    setenv("CLCNN_ITEM_SPAN", span, 1);
    clcnn_context *ctx = test_opencl_context();
    unsetenv("CLCNN_ITEM_SPAN");
    return ctx;
}

/* Every term of p's convolution in float64: forward adds x[i] * w[wi] to
 * out[o] for each output o, backward (of the data) g[o] * w[wi] to out[i]
 * for each input i, and |term| to magnitude (unless NULL) at the same place. */
static void conv2d_terms64(const conv2d_params *p, const float *values, const float *w, double *out,
                           double *magnitude, int backward) {
    const int groups = p->groups > 1 ? p->groups : 1;
    const int dh = p->dilation_h > 1 ? p->dilation_h : 1;
    const int dw = p->dilation_w > 1 ? p->dilation_w : 1;
    const int C = p->in_channels, K = p->out_channels, Cg = C / groups, Kg = K / groups;
    for (int n = 0; n < p->batch; n++)
        for (int k = 0; k < K; k++)
            for (int oy = 0; oy < p->out_height; oy++)
                for (int ox = 0; ox < p->out_width; ox++) {
                    const int64_t o =
                        (((int64_t)n * K + k) * p->out_height + oy) * p->out_width + ox;
                    for (int c = 0; c < Cg; c++)
                        for (int r = 0; r < p->kernel_h; r++)
                            for (int s = 0; s < p->kernel_w; s++) {
                                const int iy = oy * p->stride_h - p->pad_top + r * dh;
                                const int ix = ox * p->stride_w - p->pad_left + s * dw;
                                if (iy < 0 || iy >= p->in_height || ix < 0 || ix >= p->in_width)
                                    continue;
                                const int64_t i =
                                    (((int64_t)n * C + k / Kg * Cg + c) * p->in_height + iy) *
                                        p->in_width +
                                    ix;
                                const int64_t wi =
                                    (((int64_t)k * Cg + c) * p->kernel_h + r) * p->kernel_w + s;
                                const int64_t read = backward ? o : i, written = backward ? i : o;
                                const double term = (double)values[read] * (double)w[wi];
                                out[written] += term;
                                if (magnitude)
                                    magnitude[written] += fabs(term);
                            }
                }
}

void conv2d_forward64(const conv2d_params *p, const float *x, const float *w, const float *bias,
                      double *y, double *magnitude) {
    const int64_t outputs = (int64_t)p->batch * p->out_channels * p->out_height * p->out_width;
    const int64_t plane = (int64_t)p->out_height * p->out_width;
    for (int64_t o = 0; o < outputs; o++) {
        const double b = p->has_bias ? bias[o / plane % p->out_channels] : 0.0;
        y[o] = b;
        if (magnitude)
            magnitude[o] = fabs(b);
    }
    conv2d_terms64(p, x, w, y, magnitude, 0);
}

void conv2d_backward_data64(const conv2d_params *p, const float *g, const float *w, double *dx,
                            double *magnitude) {
    const size_t inputs = (size_t)p->batch * p->in_channels * p->in_height * p->in_width;
    memset(dx, 0, sizeof(double) * inputs);
    if (magnitude)
        memset(magnitude, 0, sizeof(double) * inputs);
    conv2d_terms64(p, g, w, dx, magnitude, 1);
}

int test_kernel_launches(const clcnn_context *ctx, const char *name) {
    int launches = 0;
    for (int i = 0; i < PROFILE_ENTRIES; i++)
        if (strcmp(ctx->profile[i].name, name) == 0)
            launches += ctx->profile[i].launches;
    return launches;
}
