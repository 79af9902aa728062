/* clcnn bench: per-operation GFLOP/s and network images/s, the OpenCL device
 * against the plain-C reference, as a Markdown table (stdout) and JSON.
 *
 * Everything goes through the public API: an operation is measured as a
 * network of one layer (clcnn_net_from_string), its forward pass with
 * clcnn_net_forward and its backward pass with clcnn_net_backward under an
 * MSE loss. Wall times come from clock_gettime around the call with
 * profiling off; kernel times from clcnn_profile_report in separate runs,
 * since profiling makes every launch wait for its kernel. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static const char default_data_dir[] = "/usr/share/datasets/fashion-mnist";

enum {
    MAX_RUNS = 64,
    MAX_MEASUREMENTS = 256,
    MAX_ROWS = 128,
    MAX_PROFILE_KERNELS = 48,
    PROFILE_REPORT_BYTES = 16384,
    TRAIN_IMAGES = 6400,
    TRAIN_WARMUP_IMAGES = 640,
    QUICK_REFERENCE_TRAIN_IMAGES = 640,
    QUICK_REFERENCE_WARMUP_IMAGES = 64,
    INFER_IMAGES = 10000,
    QUICK_REFERENCE_INFER_IMAGES = 1000,
    QUICK_REFERENCE_BATCH = 4,
    TRAIN_BATCH = 64,
};

/* A run repeats its call until it lasts at least this long. */
static const double min_run_seconds = 0.1;
/* With --quick the reference runs operations heavier than this at batch 4. */
static const double quick_heavy_gflop = 1.0;

/* ---- options ----------------------------------------------------------------------------- */

typedef struct bench_options {
    int run_ops, run_train, run_infer;
    int use_opencl, use_reference;
    int device_given;     /* --device on the command line: only that device */
    int repeat;           /* timed runs on the OpenCL device */
    int reference_repeat; /* timed runs on the reference */
    int quick;
    const char *json_path, *net_dir, *data_dir, *filter;
} bench_options;

/* ---- measurements ------------------------------------------------------------------------ */

typedef struct measurement {
    char id[96];        /* "conv3x3_c64.forward", "lenet5.train" */
    const char *device; /* "opencl" or "reference" */
    const char *timing; /* "wall" or "kernel" */
    const char *unit;   /* "GFLOP/s", "GB/s" or "images/s" */
    double work;        /* per call, in the unit's numerator: GFLOP, GB or images */
    int64_t batch;
    int calls_per_run;
    int run_count;            /* 0 when derived from two medians */
    double seconds[MAX_RUNS]; /* per call, one per run */
    double median_seconds, min_seconds, max_seconds;
    char kernels[512]; /* kernel timing: the kernels summed */
    char note[128];
} measurement;

/* One line of the Markdown tables. */
typedef struct table_row {
    int is_network;
    char id[96];
    char subject[128]; /* empty on continuation lines */
    char batch[48];
    char figure[64];
} table_row;

typedef struct bench_state {
    bench_options options;
    clcnn_context *opencl, *reference;
    measurement *measurements;
    int measurement_count;
    table_row rows[MAX_ROWS];
    int row_count;
    char command_line[2048];
    char cpu_name[256];
    double load_start[3], load_end[3];
    double peak_gflops; /* the OpenCL device's (clcnn_device_peak), 0 if unmeasured */
    double call_floor_seconds; /* its clcnn_device_call_floor, 0 if unmeasured */
    double bandwidth_gbytes;   /* its clcnn_device_bandwidth, 0 if unmeasured */
} bench_state;

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_of(const double *values, int count) {
    if (count < 1)
        return 0.0;
    double sorted[MAX_RUNS];
    memcpy(sorted, values, sizeof(double) * (size_t)count);
    qsort(sorted, (size_t)count, sizeof(double), compare_doubles);
    if (count % 2 == 1)
        return sorted[count / 2];
    return 0.5 * (sorted[count / 2 - 1] + sorted[count / 2]);
}

/* Adds a measurement of count runs (seconds per call) and returns it, or NULL when full. */
static measurement *add_measurement(bench_state *s, const char *id, const char *device,
                                    const char *timing, const char *unit, double work,
                                    int64_t batch, int calls_per_run, const double *seconds,
                                    int count) {
    if (s->measurement_count >= MAX_MEASUREMENTS)
        return NULL;
    measurement *m = &s->measurements[s->measurement_count++];
    memset(m, 0, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", id);
    m->device = device;
    m->timing = timing;
    m->unit = unit;
    m->work = work;
    m->batch = batch;
    m->calls_per_run = calls_per_run;
    m->run_count = count;
    if (count > 0) {
        memcpy(m->seconds, seconds, sizeof(double) * (size_t)count);
        m->median_seconds = median_of(seconds, count);
        m->min_seconds = seconds[0];
        m->max_seconds = seconds[0];
        for (int i = 1; i < count; i++) {
            if (seconds[i] < m->min_seconds)
                m->min_seconds = seconds[i];
            if (seconds[i] > m->max_seconds)
                m->max_seconds = seconds[i];
        }
    }
    return m;
}

static const measurement *find_measurement(const bench_state *s, const char *id, const char *device,
                                           const char *timing) {
    for (int i = 0; i < s->measurement_count; i++) {
        const measurement *m = &s->measurements[i];
        if (strcmp(m->id, id) == 0 && strcmp(m->device, device) == 0 &&
            strcmp(m->timing, timing) == 0)
            return m;
    }
    return NULL;
}

/* The figure of a measurement (work per second), 0 when there is none. */
static double median_value(const measurement *m) {
    if (!m || !(m->median_seconds > 0.0))
        return 0.0;
    return m->work / m->median_seconds;
}

static void add_row(bench_state *s, int is_network, const char *id, const char *subject,
                    const char *batch, const char *figure) {
    if (s->row_count >= MAX_ROWS)
        return;
    table_row *r = &s->rows[s->row_count++];
    r->is_network = is_network;
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->subject, sizeof(r->subject), "%s", subject);
    snprintf(r->batch, sizeof(r->batch), "%s", batch);
    snprintf(r->figure, sizeof(r->figure), "%s", figure);
}

/* ---- kernel profiles ------------------------------------------------------------------------ */

/* One profile report: launches and seconds per call of each kernel. */
typedef struct kernel_profile {
    int count;
    char names[MAX_PROFILE_KERNELS][64];
    double launches[MAX_PROFILE_KERNELS];
    double seconds[MAX_PROFILE_KERNELS];
    double wall_seconds; /* of the profiled call, for comparison with the unprofiled one */
} kernel_profile;

/* Parses the "kernel launches seconds" lines of clcnn_profile_report. */
static void parse_profile(const char *report, int calls, kernel_profile *out) {
    out->count = 0;
    const char *line = report;
    while (*line && out->count < MAX_PROFILE_KERNELS) {
        char name[64];
        int launches;
        double seconds;
        if (sscanf(line, "%63s %d %lf", name, &launches, &seconds) == 3) {
            snprintf(out->names[out->count], sizeof(out->names[0]), "%s", name);
            out->launches[out->count] = (double)launches / calls;
            out->seconds[out->count] = seconds / calls;
            out->count++;
        }
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
}

/* The index of a kernel in a profile, -1 if it did not run. */
static int profile_index(const kernel_profile *p, const char *name) {
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->names[i], name) == 0)
            return i;
    return -1;
}

static double profile_seconds_of(const kernel_profile *p, const char *name) {
    const int i = profile_index(p, name);
    return i < 0 ? 0.0 : p->seconds[i];
}

static double profile_launches_of(const kernel_profile *p, const char *name) {
    const int i = profile_index(p, name);
    return i < 0 ? 0.0 : p->launches[i];
}

/* Appends name to a comma-separated list unless it is there already. */
static void add_name(char *list, size_t size, const char *name) {
    size_t length = strlen(name);
    for (const char *p = strstr(list, name); p; p = strstr(p + 1, name)) {
        int starts = p == list || p[-1] == ',';
        int ends = p[length] == 0 || p[length] == ',';
        if (starts && ends)
            return;
    }
    size_t used = strlen(list);
    snprintf(list + used, size - used, "%s%s", used ? "," : "", name);
}

static int is_loss_kernel(const char *name) {
    return strstr(name, "squared_error") != NULL || strstr(name, "cross_entropy") != NULL;
}

/* ---- one call of an operation ------------------------------------------------------------------
 */

typedef struct op_call {
    clcnn_net *net;
    const float *input, *targets;
    float *output;
    int64_t batch;
    int backward; /* clcnn_net_backward (forward + loss + backward) instead of forward */
} op_call;

static clcnn_status run_call(const op_call *call) {
    if (call->backward) {
        double loss;
        return clcnn_net_backward(call->net, call->input, call->batch, NULL, call->targets, &loss);
    }
    return clcnn_net_forward(call->net, call->input, call->batch, call->output, NULL, NULL);
}

/* Runs the call once (a warm-up); on an OpenCL device a second time, since
 * the first may build programs. Returns the seconds of the last call, or -1. */
static double warm_up(const op_call *call, int is_opencl) {
    int calls = is_opencl ? 2 : 1;
    double seconds = -1.0;
    for (int i = 0; i < calls; i++) {
        double start = cli_seconds();
        if (run_call(call) != CLCNN_OK)
            return -1.0;
        seconds = cli_seconds() - start;
    }
    return seconds;
}

/* Calls per run so that a run lasts at least min_run_seconds. */
static int calls_for(double seconds_per_call) {
    if (!(seconds_per_call > 0.0))
        return 1;
    double calls = min_run_seconds / seconds_per_call;
    if (calls < 1.0)
        return 1;
    if (calls > 10000.0)
        return 10000;
    return (int)calls + 1;
}

/* Wall seconds per call of runs runs of calls calls each. The caller times
 * all of an operation's forward runs, then all its backward runs, as
 * bench/compare_pytorch.py times PyTorch: each series alone, so that the
 * forward figure is not taken in the wake of backward calls (on an AVX-512
 * Xeon, a forward call right after backward calls ran up to 1.6 times as
 * long as in a series of forward calls). */
static clcnn_status time_wall_runs(const op_call *call, int calls, int runs, double *seconds) {
    for (int r = 0; r < runs; r++) {
        double start = cli_seconds();
        for (int c = 0; c < calls; c++) {
            clcnn_status status = run_call(call);
            if (status != CLCNN_OK)
                return status;
        }
        seconds[r] = (cli_seconds() - start) / calls;
    }
    return CLCNN_OK;
}

/* One profiled run of calls calls (profiling on): each kernel's seconds per call. */
static clcnn_status profile_run(clcnn_context *ctx, const op_call *call, int calls, char *report,
                                kernel_profile *profile) {
    clcnn_status status = CLCNN_OK;
    double start = cli_seconds();
    for (int c = 0; c < calls && status == CLCNN_OK; c++)
        status = run_call(call);
    double wall = (cli_seconds() - start) / calls;
    if (status == CLCNN_OK)
        status = clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES);
    if (status == CLCNN_OK)
        parse_profile(report, calls, profile);
    profile->wall_seconds = wall;
    return status;
}

/* Kernel seconds per call of each kernel for runs runs of the forward call
 * (profiles[r]) and of the backward call (profiles[runs + r]), each
 * backward run right after its forward run, so that backward's share of a
 * kernel both run is taken against a forward measured in the same minute
 * of a shared machine (record_kernel_figures). */
static clcnn_status time_kernels(clcnn_context *ctx, const op_call *forward, int calls_forward,
                                 const op_call *backward, int calls_backward, int runs,
                                 kernel_profile *profiles) {
    char *report = malloc(PROFILE_REPORT_BYTES);
    if (!report)
        return CLCNN_ERROR_OUT_OF_MEMORY;
    clcnn_status status = clcnn_profile_enable(ctx, 1);
    if (status == CLCNN_OK)
        status = clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES); /* resets the totals */
    /* The forward runs, then the backward runs, as the wall runs are timed. */
    for (int r = 0; r < runs && status == CLCNN_OK; r++)
        status = profile_run(ctx, forward, calls_forward, report, &profiles[r]);
    for (int r = 0; r < runs && status == CLCNN_OK; r++)
        status = profile_run(ctx, backward, calls_backward, report, &profiles[runs + r]);
    clcnn_profile_enable(ctx, 0);
    free(report);
    return status;
}

/* ---- operations --------------------------------------------------------------------------------
 */

/* Pooling and batchnorm move memory (GB/s); conv and GEMM compute (GFLOP/s). */
typedef enum op_kind { OP_CONV, OP_GEMM, OP_MAXPOOL, OP_BATCHNORM } op_kind;

typedef struct op_shape {
    const char *id;
    const char *label;
    op_kind kind;
    int batch;
    int channels, height, width; /* of one input image; GEMM: channels = K */
    int filters, size, pad;      /* conv: K, R = S, padding; GEMM: filters = N */
    int groups;                  /* conv: 1 for an ordinary one */
    int stride;                  /* conv */
} op_shape;

static int moves_memory(const op_shape *shape) {
    return shape->kind == OP_MAXPOOL || shape->kind == OP_BATCHNORM;
}

static const op_shape op_shapes[] = {
    {"lenet_conv1", "LeNet-5 conv1: 1→6, 5×5, pad 2, 28×28", OP_CONV, 64, 1, 28, 28, 6, 5, 2, 1, 1},
    {"lenet_conv2", "LeNet-5 conv2: 6→16, 5×5, 14×14", OP_CONV, 64, 6, 14, 14, 16, 5, 0, 1, 1},
    {"conv3x3_c64", "conv 3×3: 64→64, pad 1, 56×56", OP_CONV, 32, 64, 56, 56, 64, 3, 1, 1, 1},
    {"conv3x3_c128", "conv 3×3: 128→128, pad 1, 28×28", OP_CONV, 32, 128, 28, 28, 128, 3, 1, 1, 1},
    {"conv3x3_c256", "conv 3×3: 256→256, pad 1, 14×14", OP_CONV, 32, 256, 14, 14, 256, 3, 1, 1, 1},
    {"conv1x1_c64_k256", "conv 1×1: 64→256, 56×56", OP_CONV, 32, 64, 56, 56, 256, 1, 0, 1, 1},
    {"conv1x1_c256_k64", "conv 1×1: 256→64, 56×56", OP_CONV, 32, 256, 56, 56, 64, 1, 0, 1, 1},
    {"gemm_2048", "GEMM 2048³ (dense 2048→2048, batch 2048)", OP_GEMM, 2048, 2048, 1, 1, 2048, 0, 0,
     1, 1},
    {"maxpool_c64", "max pooling 2×2: 64 channels, 56×56", OP_MAXPOOL, 32, 64, 56, 56, 0, 2, 0, 1,
     1},
    /* the residual network's (examples/resnet.net) stage 1 and 3 convolutions at batch 128 */
    {"resnet_conv_c16", "conv 3×3: 16→16, pad 1, 28×28", OP_CONV, 128, 16, 28, 28, 16, 3, 1, 1, 1},
    {"resnet_conv_c64", "conv 3×3: 64→64, pad 1, 7×7", OP_CONV, 128, 64, 7, 7, 64, 3, 1, 1, 1},
    /* and its first strided convolution and projection shortcut (stage 2) */
    {"resnet_conv_s2", "conv 3×3: 16→32, stride 2, pad 1, 28×28", OP_CONV, 128, 16, 28, 28, 32, 3,
     1, 1, 2},
    {"resnet_shortcut", "conv 1×1: 16→32, stride 2, 28×28", OP_CONV, 128, 16, 28, 28, 32, 1, 0, 1,
     2},
    {"depthwise_c64", "depthwise conv 3×3: 64 channels, pad 1, 56×56", OP_CONV, 32, 64, 56, 56, 64,
     3, 1, 64, 1},
    /* forward in eval mode; backward: the train-mode forward and backward */
    {"batchnorm_c64", "batchnorm: 64 channels, 56×56", OP_BATCHNORM, 32, 64, 56, 56, 0, 0, 0, 1, 1},
};

static void op_network_text(const op_shape *shape, char *text, size_t size) {
    int used = snprintf(text, size, "input channels=%d height=%d width=%d\n", shape->channels,
                        shape->height, shape->width);
    if (used < 0 || (size_t)used >= size)
        return;
    if (shape->kind == OP_CONV)
        snprintf(text + used, size - (size_t)used,
                 "conv filters=%d size=%d pad=%d groups=%d stride=%d\n", shape->filters,
                 shape->size, shape->pad, shape->groups, shape->stride);
    else if (shape->kind == OP_BATCHNORM)
        snprintf(text + used, size - (size_t)used, "batchnorm\n");
    else if (shape->kind == OP_GEMM)
        snprintf(text + used, size - (size_t)used, "flatten\ndense units=%d\n", shape->filters);
    else
        snprintf(text + used, size - (size_t)used, "maxpool size=%d\n", shape->size);
}

/* How many chunks clcnn_net_forward cuts batch images of net into
 * (include/clcnn.h: as many images as keep every layer's outputs within
 * CLCNN_FORWARD_CHUNK_FLOATS); clcnn_net_backward runs its whole batch at once. */
static int forward_chunks(const clcnn_net *net, int64_t batch) {
    int64_t largest = 1;
    for (int i = 0; i < clcnn_net_layer_count(net); i++) {
        clcnn_layer_info info;
        if (clcnn_net_layer_info(net, i, &info) != CLCNN_OK)
            continue;
        const int64_t count = info.ndim == 1
                                  ? (int64_t)info.shape[0]
                                  : (int64_t)info.shape[0] * info.shape[1] * info.shape[2];
        if (count > largest)
            largest = count;
    }
    if (batch * largest <= CLCNN_FORWARD_CHUNK_FLOATS)
        return 1;
    const int64_t images = CLCNN_FORWARD_CHUNK_FLOATS / largest > 0
                               ? CLCNN_FORWARD_CHUNK_FLOATS / largest
                               : 1;
    return (int)((batch + images - 1) / images);
}

static int option_selects(const bench_options *o, const char *id) {
    return !o->filter || strstr(id, o->filter) != NULL;
}

/* Work of one forward call: GFLOP for conv and GEMM, GB moved for pooling and batchnorm. */
static double forward_work(const op_shape *shape, clcnn_net *net, int64_t batch) {
    int last = clcnn_net_layer_count(net) - 1;
    clcnn_layer_info info;
    if (clcnn_net_layer_info(net, last, &info) != CLCNN_OK)
        return 0.0;
    if (shape->kind == OP_CONV) /* 2 N K C R S OH OW */
        return 2.0 * (double)batch * (double)info.weight_count * info.shape[1] * info.shape[2] *
               1e-9;
    if (shape->kind == OP_GEMM) /* 2 M N K */
        return 2.0 * (double)batch * (double)info.weight_count * 1e-9;
    /* pooling and batchnorm read the input and write the output */
    return 4.0 * (double)batch * (double)(clcnn_net_input_size(net) + clcnn_net_output_size(net)) *
           1e-9;
}

/* Work of the backward part (data and weights): twice the forward's FLOPs;
 * pooling and batchnorm read the input and the output gradient and write the input gradient. */
static double backward_work(const op_shape *shape, clcnn_net *net, int64_t batch) {
    if (moves_memory(shape))
        return 4.0 * (double)batch *
               (double)(2 * clcnn_net_input_size(net) + clcnn_net_output_size(net)) * 1e-9;
    return 2.0 * forward_work(shape, net, batch);
}

/* count floats aligned to 64 bytes, as PyTorch's tensors are, or NULL: the
 * operations work on the caller's arrays in place (CLCNN_ZERO_COPY), and
 * from a malloc'd array, 16 bytes past a page, the pointwise kernel's
 * vector loads each straddle two cache lines (1x1 from 256 to 64 channels
 * at 56x56, batch 32: 154 against 179 GFLOP/s, Xeon AVX-512). */
static float *aligned_floats(int64_t count) {
    void *floats = NULL;
    const size_t bytes = (sizeof(float) * (size_t)(count > 0 ? count : 1) + 63) / 64 * 64;
    return posix_memalign(&floats, 64, bytes) == 0 ? floats : NULL;
}

static void fill_random(float *values, int64_t count, uint64_t *state) {
    for (int64_t i = 0; i < count; i++) {
        /* xorshift64*, then 24 bits to a float in [-1, 1) */
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        uint64_t bits = (*state * 0x2545F4914F6CDD1DULL) >> 40;
        values[i] = (float)bits / 8388608.0f - 1.0f;
    }
}

static const char *id_with(char *buf, size_t size, const char *id, const char *figure) {
    snprintf(buf, size, "%s.%s", id, figure);
    return buf;
}

/* Kernel figures of an operation from profiled forward and backward runs.
 * Forward: every kernel of the forward call. Backward: the kernels the
 * backward call launches more often than the forward call, less their
 * time in the forward run just before (time_kernels; the median of all
 * forward runs had left 1/12 of backward-data's time, or nothing, when one
 * run was disturbed), loss kernels left out; conv kernels whose name holds
 * "backward_data", and the forward kernels that a stride-1 backward-data runs
 * over the flipped filters, make backward-data, the rest (weights, slice sums,
 * transposes, padding, bias) backward-weights. */
static void record_kernel_figures(bench_state *s, const op_shape *shape, int64_t batch, int chunks,
                                  double work_forward, double work_backward,
                                  const kernel_profile *forward, const kernel_profile *backward,
                                  int runs, int calls_forward, int calls_backward) {
    char id[96];
    double forward_seconds[MAX_RUNS];
    char forward_names[512] = "";
    for (int r = 0; r < runs; r++) {
        forward_seconds[r] = 0.0;
        for (int k = 0; k < forward[r].count; k++) {
            forward_seconds[r] += forward[r].seconds[k];
            add_name(forward_names, sizeof(forward_names), forward[r].names[k]);
        }
    }
    measurement *m = add_measurement(s, id_with(id, sizeof(id), shape->id, "forward"), "opencl",
                                     "kernel", moves_memory(shape) ? "GB/s" : "GFLOP/s",
                                     work_forward, batch, calls_forward, forward_seconds, runs);
    if (m)
        snprintf(m->kernels, sizeof(m->kernels), "%s", forward_names);

    double data_seconds[MAX_RUNS], weights_seconds[MAX_RUNS], total_seconds[MAX_RUNS];
    double forward_in_backward[MAX_RUNS];
    char data_names[512] = "", weights_names[512] = "";
    for (int r = 0; r < runs; r++) {
        data_seconds[r] = 0.0;
        weights_seconds[r] = 0.0;
        forward_in_backward[r] = 0.0;
        for (int k = 0; k < backward[r].count; k++) {
            const char *name = backward[r].names[k];
            if (is_loss_kernel(name))
                continue;
            /* A kernel launched as often as in one chunk of the forward
             * call is the forward part; one launched more often (GEMM, the
             * forward kernel run again for backward-data) loses the forward
             * call's time, or after a chunked forward call, whose time is
             * not that of one launch, the share of its launches (taken as
             * equally long: a forward and the backward-data it runs again
             * do the same work). */
            const double forward_launches = profile_launches_of(&forward[r], name) / chunks;
            if (backward[r].launches[k] <= forward_launches) {
                forward_in_backward[r] += backward[r].seconds[k];
                continue;
            }
            double forward_part = profile_seconds_of(&forward[r], name);
            if (chunks > 1) {
                forward_part = backward[r].seconds[k] * forward_launches / backward[r].launches[k];
                forward_in_backward[r] += forward_part;
            }
            double seconds = backward[r].seconds[k] - forward_part;
            if (seconds <= 0.0)
                continue;
            /* Winograd's backward-weights launches are profiled as
             * winograd_gradient_*, its backward-data's as the forward's. */
            if (!strstr(name, "winograd_gradient") &&
                (strstr(name, "backward_data") || strstr(name, "forward") ||
                 strstr(name, "winograd"))) {
                data_seconds[r] += seconds;
                add_name(data_names, sizeof(data_names), name);
            } else {
                weights_seconds[r] += seconds;
                add_name(weights_names, sizeof(weights_names), name);
            }
        }
        total_seconds[r] = data_seconds[r] + weights_seconds[r];
    }
    const char *unit = moves_memory(shape) ? "GB/s" : "GFLOP/s";
    if (chunks > 1) {
        /* The forward call ran in chunks; the backward call's forward part is
         * the whole batch in one launch. */
        m = add_measurement(s, id_with(id, sizeof(id), shape->id, "forward_single"), "opencl",
                            "kernel", unit, work_forward, batch, calls_backward,
                            forward_in_backward, runs);
        if (m) {
            snprintf(m->kernels, sizeof(m->kernels), "%s", forward_names);
            snprintf(m->note, sizeof(m->note),
                     "the forward kernels inside clcnn_net_backward: one launch of the batch");
        }
    }
    if (shape->kind == OP_CONV) {
        m = add_measurement(s, id_with(id, sizeof(id), shape->id, "backward_data"), "opencl",
                            "kernel", unit, work_backward / 2, batch, calls_backward, data_seconds,
                            runs);
        if (m)
            snprintf(m->kernels, sizeof(m->kernels), "%s", data_names);
        m = add_measurement(s, id_with(id, sizeof(id), shape->id, "backward_weights"), "opencl",
                            "kernel", unit, work_backward / 2, batch, calls_backward,
                            weights_seconds, runs);
        if (m)
            snprintf(m->kernels, sizeof(m->kernels), "%s", weights_names);
    }
    m = add_measurement(s, id_with(id, sizeof(id), shape->id, "backward"), "opencl", "kernel", unit,
                        work_backward, batch, calls_backward, total_seconds, runs);
    if (m) {
        snprintf(m->kernels, sizeof(m->kernels), "%s", data_names);
        if (weights_names[0])
            add_name(m->kernels, sizeof(m->kernels), weights_names);
    }
}

/* Measures one operation on one device; returns 0 or a failure status. */
static int bench_op_on_device(bench_state *s, const op_shape *shape, clcnn_context *ctx,
                              const char *device, int64_t batch) {
    const int is_opencl = strcmp(device, "opencl") == 0;
    const int runs = is_opencl ? s->options.repeat : s->options.reference_repeat;
    char text[256];
    op_network_text(shape, text, sizeof(text));
    clcnn_net *net = NULL;
    if (clcnn_net_from_string(ctx, text, shape->id, &net) != CLCNN_OK ||
        clcnn_net_init_weights(net, 1) != CLCNN_OK ||
        clcnn_net_set_loss(net, CLCNN_LOSS_MSE) != CLCNN_OK) {
        clcnn_net_destroy(net);
        return cli_fail_context(ctx);
    }
    const int64_t in_count = batch * clcnn_net_input_size(net);
    const int64_t out_count = batch * clcnn_net_output_size(net);
    float *input = aligned_floats(in_count);
    float *output = aligned_floats(out_count);
    float *targets = aligned_floats(out_count);
    kernel_profile *profiles = calloc(2 * (size_t)runs, sizeof(kernel_profile));
    int result = 0;
    if (!input || !output || !targets || !profiles) {
        result = cli_fail("out of memory for %s", shape->id);
        goto done;
    }
    uint64_t random_state = 0x9E3779B97F4A7C15ULL;
    fill_random(input, in_count, &random_state);
    fill_random(targets, out_count, &random_state);

    const op_call forward = {net, input, targets, output, batch, 0};
    const op_call backward = {net, input, targets, output, batch, 1};
    const double work_forward = forward_work(shape, net, batch);
    const double work_backward = backward_work(shape, net, batch);
    /* The reference's loops do not care how the forward call is cut. */
    const int chunks = is_opencl ? forward_chunks(net, batch) : 1;
    const int chunked = chunks > 1;
    const char *unit = moves_memory(shape) ? "GB/s" : "GFLOP/s";

    double forward_call = warm_up(&forward, is_opencl);
    double backward_call = forward_call < 0.0 ? -1.0 : warm_up(&backward, is_opencl);
    if (backward_call < 0.0) {
        result = cli_fail_context(ctx);
        goto done;
    }
    const int calls_forward = calls_for(forward_call);
    const int calls_backward = calls_for(backward_call);
    double forward_seconds[MAX_RUNS], backward_seconds[MAX_RUNS], backward_only[MAX_RUNS];
    if (time_wall_runs(&forward, calls_forward, runs, forward_seconds) != CLCNN_OK ||
        time_wall_runs(&backward, calls_backward, runs, backward_seconds) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    char id[96];
    add_measurement(s, id_with(id, sizeof(id), shape->id, "forward"), device, "wall", unit,
                    work_forward, batch, calls_forward, forward_seconds, runs);
    /* clcnn_net_backward runs forward + loss + backward: the whole call, then
     * the backward part alone as the difference within each run. */
    measurement *m =
        add_measurement(s, id_with(id, sizeof(id), shape->id, "backward_call"), device, "wall",
                        "seconds", 0.0, batch, calls_backward, backward_seconds, runs);
    if (m)
        snprintf(m->note, sizeof(m->note), "clcnn_net_backward: forward, MSE loss, backward");
    const double forward_median = median_of(forward_seconds, runs);
    for (int r = 0; r < runs; r++)
        backward_only[r] = backward_seconds[r] - forward_median;
    /* When clcnn_net_forward chunks the batch, its time is not that of the
     * backward call's forward part, and the difference means nothing; the
     * reference's loops do not care. */
    if (!chunked) {
        m = add_measurement(s, id_with(id, sizeof(id), shape->id, "backward"), device, "wall", unit,
                            work_backward, batch, calls_backward, backward_only, runs);
        if (m)
            snprintf(m->note, sizeof(m->note),
                     "per run: clcnn_net_backward less the median clcnn_net_forward");
    }

    if (is_opencl) {
        if (time_kernels(ctx, &forward, calls_forward, &backward, calls_backward, runs, profiles) !=
            CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        record_kernel_figures(s, shape, batch, chunks, work_forward, work_backward, profiles,
                              profiles + runs, runs, calls_forward, calls_backward);
        /* For the JSON: the calls' wall time while profiling (every launch waits). */
        double profiled_forward[MAX_RUNS], profiled_backward[MAX_RUNS];
        for (int r = 0; r < runs; r++) {
            profiled_forward[r] = profiles[r].wall_seconds;
            profiled_backward[r] = profiles[runs + r].wall_seconds;
        }
        add_measurement(s, id_with(id, sizeof(id), shape->id, "forward"), device, "profiled_wall",
                        unit, work_forward, batch, calls_forward, profiled_forward, runs);
        add_measurement(s, id_with(id, sizeof(id), shape->id, "backward_call"), device,
                        "profiled_wall", "seconds", 0.0, batch, calls_backward, profiled_backward,
                        runs);
    }
    const measurement *wall =
        find_measurement(s, id_with(id, sizeof(id), shape->id, "forward"), device, "wall");
    fprintf(stderr, "bench: %-18s %-9s batch %4lld: forward %8.2f %s (wall)\n", shape->id, device,
            (long long)batch, median_value(wall), unit);
done:
    free(profiles);
    free(targets);
    free(output);
    free(input);
    clcnn_net_destroy(net);
    return result;
}

static void add_op_rows(bench_state *s, const op_shape *shape, int64_t batch,
                        int64_t reference_batch) {
    char batch_text[48], id[96];
    if (reference_batch != batch && s->reference)
        snprintf(batch_text, sizeof(batch_text), "%lld (reference %lld)", (long long)batch,
                 (long long)reference_batch);
    else
        snprintf(batch_text, sizeof(batch_text), "%lld", (long long)batch);
    if (shape->kind == OP_CONV) {
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "forward"), shape->label, batch_text,
                "forward GFLOP/s");
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "backward_data"), "", "",
                "backward-data GFLOP/s");
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "backward_weights"), "", "",
                "backward-weights GFLOP/s");
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "backward"), "", "",
                "backward (data + weights) GFLOP/s");
    } else if (shape->kind == OP_GEMM) {
        const int chunked =
            find_measurement(s, id_with(id, sizeof(id), shape->id, "forward_single"), "opencl",
                             "kernel") != NULL;
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "forward"), shape->label, batch_text,
                chunked ? "forward GFLOP/s (in chunks)" : "forward GFLOP/s");
        if (chunked)
            add_row(s, 0, id_with(id, sizeof(id), shape->id, "forward_single"), "", "",
                    "forward GFLOP/s (one launch)");
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "backward"), "", "",
                "backward (data + weights) GFLOP/s");
    } else {
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "forward"), shape->label, batch_text,
                "forward GB/s");
        add_row(s, 0, id_with(id, sizeof(id), shape->id, "backward"), "", "", "backward GB/s");
    }
}

static int bench_ops(bench_state *s) {
    const int shape_count = (int)(sizeof(op_shapes) / sizeof(op_shapes[0]));
    for (int i = 0; i < shape_count; i++) {
        const op_shape *shape = &op_shapes[i];
        if (!option_selects(&s->options, shape->id))
            continue;
        int64_t reference_batch = shape->batch;
        if (s->options.quick && s->reference) {
            /* Work at the full batch, from the shape alone. */
            clcnn_net *probe = NULL;
            char text[256];
            op_network_text(shape, text, sizeof(text));
            if (clcnn_net_from_string(s->reference, text, shape->id, &probe) != CLCNN_OK)
                return cli_fail_context(s->reference);
            double work = forward_work(shape, probe, shape->batch);
            clcnn_net_destroy(probe);
            if (!moves_memory(shape) && work > quick_heavy_gflop)
                reference_batch = QUICK_REFERENCE_BATCH;
        }
        if (s->opencl && bench_op_on_device(s, shape, s->opencl, "opencl", shape->batch) != 0)
            return 1;
        if (s->reference &&
            bench_op_on_device(s, shape, s->reference, "reference", reference_batch) != 0)
            return 1;
        add_op_rows(s, shape, shape->batch, reference_batch);
    }
    return 0;
}

/* ---- networks ----------------------------------------------------------------------------------
 */

typedef struct network_spec {
    const char *id;
    const char *file;
    const char *label;
} network_spec;

static const network_spec networks[] = {
    {"lenet5", "lenet5.net", "LeNet-5 (examples/lenet5.net)"},
    {"twoconv", "twoconv.net", "two-conv (examples/twoconv.net)"},
    {"resnet", "resnet.net", "residual network (examples/resnet.net)"},
};

/* Total kernel seconds of a profile report. */
static double report_total_seconds(const char *report) {
    kernel_profile profile;
    parse_profile(report, 1, &profile);
    double total = 0.0;
    for (int k = 0; k < profile.count; k++)
        total += profile.seconds[k];
    return total;
}

static int load_network(clcnn_context *ctx, const char *path, clcnn_net **net) {
    if (clcnn_net_load(ctx, path, net, NULL, NULL) != CLCNN_OK ||
        clcnn_net_init_weights(*net, 1) != CLCNN_OK)
        return cli_fail_context(ctx);
    return 0;
}

/* Training images/s: a warm-up epoch, then timed epochs of the training set. */
static int bench_train(bench_state *s, const network_spec *spec, const char *path,
                       clcnn_context *ctx, const char *device, const clcnn_dataset *train) {
    const int is_opencl = strcmp(device, "opencl") == 0;
    const int runs = is_opencl ? s->options.repeat : s->options.reference_repeat;
    int64_t images = TRAIN_IMAGES, warmup_images = TRAIN_WARMUP_IMAGES;
    if (!is_opencl && s->options.quick) {
        images = QUICK_REFERENCE_TRAIN_IMAGES;
        warmup_images = QUICK_REFERENCE_WARMUP_IMAGES;
    }
    if (images > train->count)
        images = train->count;
    if (warmup_images > images)
        warmup_images = images;
    clcnn_dataset timed = clcnn_dataset_head(train, images);
    clcnn_dataset warmup = clcnn_dataset_head(train, warmup_images);

    clcnn_net *net = NULL;
    clcnn_trainer *trainer = NULL;
    char *report = NULL;
    int result = load_network(ctx, path, &net);
    if (result != 0)
        return result;
    clcnn_train_config config;
    clcnn_train_config_defaults(&config); /* SGD, lr 0.01, momentum 0.9, batch 64 */
    config.batch_size = TRAIN_BATCH;
    config.epochs = 1000000; /* the schedule is constant: epochs only bound the count */
    double loss = 0.0, accuracy = 0.0;
    double seconds[MAX_RUNS];
    if (clcnn_trainer_create(net, &config, &trainer) != CLCNN_OK ||
        clcnn_trainer_epoch(trainer, &warmup, NULL, NULL, &loss, &accuracy) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        double start = cli_seconds();
        if (clcnn_trainer_epoch(trainer, &timed, NULL, NULL, &loss, &accuracy) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        seconds[r] = cli_seconds() - start;
    }
    char id[96];
    measurement *m = add_measurement(s, id_with(id, sizeof(id), spec->id, "train"), device, "wall",
                                     "images/s", (double)images, TRAIN_BATCH, 1, seconds, runs);
    if (m)
        snprintf(m->note, sizeof(m->note), "epochs of %lld images; last epoch loss %.4f acc %.4f",
                 (long long)images, loss, accuracy);
    fprintf(stderr, "bench: %-18s %-9s batch %4d: %8.0f images/s (wall), loss %.3f\n", id, device,
            TRAIN_BATCH, median_value(m), loss);

    if (is_opencl) {
        /* Profiled epochs: images over the sum of every kernel's device time. */
        const int profiled_runs = runs < 3 ? runs : 3;
        report = malloc(PROFILE_REPORT_BYTES);
        if (!report) {
            result = cli_fail("out of memory");
            goto done;
        }
        clcnn_profile_enable(ctx, 1);
        clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES);
        for (int r = 0; r < profiled_runs; r++) {
            if (clcnn_trainer_epoch(trainer, &timed, NULL, NULL, &loss, &accuracy) != CLCNN_OK) {
                clcnn_profile_enable(ctx, 0);
                result = cli_fail_context(ctx);
                goto done;
            }
            clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES);
            seconds[r] = report_total_seconds(report);
        }
        clcnn_profile_enable(ctx, 0);
        m = add_measurement(s, id, device, "kernel", "images/s", (double)images, TRAIN_BATCH, 1,
                            seconds, profiled_runs);
        if (m)
            snprintf(m->kernels, sizeof(m->kernels), "every kernel of the epoch");
    }
done:
    free(report);
    clcnn_trainer_destroy(trainer);
    clcnn_net_destroy(net);
    return result;
}

/* Inference images/s: clcnn_net_forward over the test images in one call. */
static int bench_infer(bench_state *s, const network_spec *spec, const char *path,
                       clcnn_context *ctx, const char *device, const clcnn_dataset *test) {
    const int is_opencl = strcmp(device, "opencl") == 0;
    const int runs = is_opencl ? s->options.repeat : s->options.reference_repeat;
    int64_t images = INFER_IMAGES;
    if (!is_opencl && s->options.quick)
        images = QUICK_REFERENCE_INFER_IMAGES;
    if (images > test->count)
        images = test->count;
    int64_t warmup_images = is_opencl ? images : (images < 256 ? images : 256);

    clcnn_net *net = NULL;
    int result = load_network(ctx, path, &net);
    if (result != 0)
        return result;
    const int64_t out_size = clcnn_net_output_size(net);
    float *output = malloc(sizeof(float) * (size_t)(images * out_size));
    char *report = malloc(PROFILE_REPORT_BYTES);
    double seconds[MAX_RUNS];
    char id[96];
    id_with(id, sizeof(id), spec->id, "infer");
    if (!output || !report) {
        result = cli_fail("out of memory");
        goto done;
    }
    if (clcnn_net_forward(net, test->images, warmup_images, output, NULL, NULL) != CLCNN_OK) {
        result = cli_fail_context(ctx);
        goto done;
    }
    for (int r = 0; r < runs; r++) {
        double start = cli_seconds();
        if (clcnn_net_forward(net, test->images, images, output, NULL, NULL) != CLCNN_OK) {
            result = cli_fail_context(ctx);
            goto done;
        }
        seconds[r] = cli_seconds() - start;
    }
    measurement *m =
        add_measurement(s, id, device, "wall", "images/s", (double)images, 256, 1, seconds, runs);
    if (m)
        snprintf(m->note, sizeof(m->note),
                 "one clcnn_net_forward call over %lld test images, run in chunks of 256",
                 (long long)images);
    fprintf(stderr, "bench: %-18s %-9s          : %8.0f images/s (wall)\n", id, device,
            median_value(m));
    if (is_opencl) {
        const int profiled_runs = runs < 3 ? runs : 3;
        clcnn_profile_enable(ctx, 1);
        clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES);
        for (int r = 0; r < profiled_runs; r++) {
            if (clcnn_net_forward(net, test->images, images, output, NULL, NULL) != CLCNN_OK) {
                clcnn_profile_enable(ctx, 0);
                result = cli_fail_context(ctx);
                goto done;
            }
            clcnn_profile_report(ctx, report, PROFILE_REPORT_BYTES);
            seconds[r] = report_total_seconds(report);
        }
        clcnn_profile_enable(ctx, 0);
        m = add_measurement(s, id, device, "kernel", "images/s", (double)images, 256, 1, seconds,
                            profiled_runs);
        if (m)
            snprintf(m->kernels, sizeof(m->kernels), "every kernel of the call");
    }
done:
    free(report);
    free(output);
    clcnn_net_destroy(net);
    return result;
}

static int file_exists(const char *path) {
    return access(path, R_OK) == 0;
}

/* The directory of the network files: --net-dir, else "examples" under the
 * working directory, else ../examples next to the binary. */
static void find_net_dir(const bench_options *o, char *dir, size_t size) {
    char probe[8192];
    snprintf(dir, size, "%s", o->net_dir ? o->net_dir : "examples");
    snprintf(probe, sizeof(probe), "%s/%s", dir, networks[0].file);
    if (o->net_dir || file_exists(probe))
        return;
    char exe[2048];
    ssize_t length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (length <= 0)
        return;
    exe[length] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    *slash = 0;
    snprintf(probe, sizeof(probe), "%s/../examples/%s", exe, networks[0].file);
    if (file_exists(probe))
        snprintf(dir, size, "%s/../examples", exe);
}

static int bench_networks(bench_state *s) {
    const bench_options *o = &s->options;
    char dir[4096];
    find_net_dir(o, dir, sizeof(dir));
    clcnn_context *loader = s->opencl ? s->opencl : s->reference;
    clcnn_dataset train, test;
    memset(&train, 0, sizeof(train));
    memset(&test, 0, sizeof(test));
    if (clcnn_dataset_load_idx(loader, o->data_dir, "train", &train) != CLCNN_OK)
        return cli_fail_context(loader);
    if (clcnn_dataset_load_idx(loader, o->data_dir, "t10k", &test) != CLCNN_OK) {
        clcnn_dataset_free(&train);
        return cli_fail_context(loader);
    }
    /* Normalised with the whole training set's mean and deviation, as clcnn train does. */
    float mean, std;
    clcnn_dataset_statistics(&train, &mean, &std);
    clcnn_dataset_normalize(&train, mean, std);
    clcnn_dataset_normalize(&test, mean, std);

    int result = 0;
    const int network_count = (int)(sizeof(networks) / sizeof(networks[0]));
    for (int n = 0; n < network_count && result == 0; n++) {
        const network_spec *spec = &networks[n];
        char path[4200], id[96];
        snprintf(path, sizeof(path), "%s/%s", dir, spec->file);
        int first_row = 1;
        if (o->run_train && option_selects(o, id_with(id, sizeof(id), spec->id, "train"))) {
            if (s->opencl)
                result = bench_train(s, spec, path, s->opencl, "opencl", &train);
            if (result == 0 && s->reference)
                result = bench_train(s, spec, path, s->reference, "reference", &train);
            char figure[64];
            snprintf(figure, sizeof(figure), "training images/s (%d images)", TRAIN_IMAGES);
            add_row(s, 1, id, spec->label, "64", figure);
            first_row = 0;
        }
        if (result == 0 && o->run_infer &&
            option_selects(o, id_with(id, sizeof(id), spec->id, "infer"))) {
            if (s->opencl)
                result = bench_infer(s, spec, path, s->opencl, "opencl", &test);
            if (result == 0 && s->reference)
                result = bench_infer(s, spec, path, s->reference, "reference", &test);
            char figure[64];
            snprintf(figure, sizeof(figure), "inference images/s (%d images)", INFER_IMAGES);
            add_row(s, 1, id, first_row ? spec->label : "", "256", figure);
        }
    }
    clcnn_dataset_free(&test);
    clcnn_dataset_free(&train);
    return result;
}

/* ---- output ------------------------------------------------------------------------------------
 */

static void format_value(double value, char *buf, size_t size) {
    if (!(value > 0.0))
        snprintf(buf, size, "–");
    else if (value >= 1000.0)
        snprintf(buf, size, "%.0f", value);
    else if (value >= 100.0)
        snprintf(buf, size, "%.1f", value);
    else if (value >= 1.0)
        snprintf(buf, size, "%.2f", value);
    else
        snprintf(buf, size, "%.3f", value);
}

static void print_row(const bench_state *s, const table_row *r) {
    const measurement *wall_measurement = find_measurement(s, r->id, "opencl", "wall");
    double kernel = median_value(find_measurement(s, r->id, "opencl", "kernel"));
    double wall = median_value(wall_measurement);
    double reference = median_value(find_measurement(s, r->id, "reference", "wall"));
    char kernel_text[32], wall_text[32], reference_text[32], ratio_text[32], peak_text[32];
    const double peak = !wall_measurement                                ? 0.0
                        : strcmp(wall_measurement->unit, "GFLOP/s") == 0 ? s->peak_gflops
                        : strcmp(wall_measurement->unit, "GB/s") == 0    ? s->bandwidth_gbytes
                                                                         : 0.0;
    if (wall > 0.0 && peak > 0.0)
        snprintf(peak_text, sizeof(peak_text), "%.0f%%", 100.0 * wall / peak);
    else
        snprintf(peak_text, sizeof(peak_text), "–");
    format_value(kernel, kernel_text, sizeof(kernel_text));
    format_value(wall, wall_text, sizeof(wall_text));
    format_value(reference, reference_text, sizeof(reference_text));
    if (wall > 0.0 && reference > 0.0)
        snprintf(ratio_text, sizeof(ratio_text), "%.1f×", wall / reference);
    else
        snprintf(ratio_text, sizeof(ratio_text), "–");
    printf("| %s | %s | %s | %s | %s | %s | %s | %s |\n", r->subject, r->batch, r->figure,
           kernel_text, wall_text, peak_text, reference_text, ratio_text);
}

/* The rows of networks (is_network 1) or of operations (0), if there are any. */
static void print_table(const bench_state *s, int is_network, const char *title,
                        const char *subject) {
    int printed_header = 0;
    for (int i = 0; i < s->row_count; i++) {
        if (s->rows[i].is_network != is_network)
            continue;
        if (!printed_header) {
            printf("\n## %s\n\n", title);
            printf("| %s | batch | figure | OpenCL kernel | OpenCL wall | wall of peak | "
                   "reference | OpenCL/reference |\n",
                   subject);
            printf("|---|---|---|---:|---:|---:|---:|---:|\n");
            printed_header = 1;
        }
        print_row(s, &s->rows[i]);
    }
}

static void print_tables(const bench_state *s) {
    const bench_options *o = &s->options;
    printf("# clcnn bench\n\n");
    printf("- command: `%s`\n", s->command_line);
    printf("- machine: %s, %ld CPUs; load average %.2f at the start, %.2f at the end\n",
           s->cpu_name, sysconf(_SC_NPROCESSORS_ONLN), s->load_start[0], s->load_end[0]);
    if (s->opencl)
        printf("- OpenCL device: %s\n", clcnn_device_name(s->opencl));
    if (s->peak_gflops > 0.0)
        printf("- the OpenCL device's peak: %.1f GFLOP/s (clcnn_device_peak: independent vector "
               "fma chains, a work-group per compute unit); wall of peak: the wall GFLOP/s as a "
               "share of it\n",
               s->peak_gflops);
    if (s->bandwidth_gbytes > 0.0)
        printf("- the OpenCL device's streaming bandwidth: %.1f GB/s (clcnn_device_bandwidth: "
               "a read and a write a float over buffers four times the device's cache); wall of "
               "peak of a GB/s figure: the wall GB/s as a share of it, above 100%% where the "
               "tensors stay in the cache\n",
               s->bandwidth_gbytes);
    if (s->call_floor_seconds > 0.0)
        printf("- the OpenCL device's call floor: %.1f us (clcnn_device_call_floor: a near-empty "
               "launch and clFinish, the fastest of 20); every wall figure of one call contains "
               "it\n",
               1e6 * s->call_floor_seconds);
    if (s->reference)
        printf("- reference device: %s\n", clcnn_device_name(s->reference));
    printf("- medians of %d runs on the OpenCL device and %d on the reference, after a warm-up; "
           "a run of an operation repeats its call until it lasts %.1f s\n",
           o->repeat, o->reference_repeat, min_run_seconds);
    printf("- wall: clock_gettime around the API call with profiling off (uploads and read-backs "
           "included); kernel: the OpenCL profiling-event times of the operation's kernels, "
           "helpers included (weight transposes, input padding, slice sums, bias sums; buffer "
           "fills and copies not), in separate runs where every launch waits for its kernel\n");
    printf("- forward and backward calls timed in separate series (all forward runs first), as "
           "bench/compare_pytorch.py times PyTorch; backward (data + weights): each run of "
           "clcnn_net_backward less the median run of clcnn_net_forward (wall), or "
           "the backward kernels alone (kernel, less those kernels' time in the forward run "
           "of the same number); backward-data: kernels named *backward_data* "
           "and the forward kernels run again for it, "
           "backward-weights: the other backward kernels; FLOPs 2·N·K·C·R·S·OH·OW per "
           "direction, pooling bytes: input + output (forward), 2 × input + output (backward)\n");
    printf("- OpenCL/reference: the wall figures' ratio\n");
    printf("- clcnn_net_forward runs as many images at a time as keep every layer's output "
           "within %lld floats, clcnn_net_backward its whole batch: when the forward call runs "
           "in chunks, forward (one launch) is the forward kernels inside clcnn_net_backward, "
           "and backward has no OpenCL wall figure\n",
           (long long)CLCNN_FORWARD_CHUNK_FLOATS);
    if (o->quick && s->reference)
        printf("- --quick: the reference runs operations above %.0f GFLOP at batch %d, trains on "
               "%d images (warm-up %d) and infers %d\n",
               quick_heavy_gflop, QUICK_REFERENCE_BATCH, QUICK_REFERENCE_TRAIN_IMAGES,
               QUICK_REFERENCE_WARMUP_IMAGES, QUICK_REFERENCE_INFER_IMAGES);
    print_table(s, 0, "Operations", "operation");
    print_table(s, 1, "Networks (Fashion-MNIST, SGD momentum 0.9)", "network");
    fflush(stdout);
}

static void json_string(FILE *f, const char *text) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double value) {
    if (value > 0.0 || value < 0.0)
        fprintf(f, "%.6g", value);
    else if (value == 0.0)
        fputs("0", f);
    else
        fputs("null", f);
}

static int write_json(const bench_state *s, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f)
        return cli_fail("--json: cannot write %s", path);
    struct utsname system_name;
    memset(&system_name, 0, sizeof(system_name));
    uname(&system_name);
    fprintf(f, "{\n  \"command\": ");
    json_string(f, s->command_line);
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    json_string(f, s->cpu_name);
    fprintf(f, ", \"cpus\": %ld, \"system\": ", sysconf(_SC_NPROCESSORS_ONLN));
    char system_text[600];
    snprintf(system_text, sizeof(system_text), "%s %s %s", system_name.sysname, system_name.release,
             system_name.machine);
    json_string(f, system_text);
    fprintf(f, ", \"load_average_start\": [%.2f, %.2f, %.2f]", s->load_start[0], s->load_start[1],
            s->load_start[2]);
    fprintf(f, ", \"load_average_end\": [%.2f, %.2f, %.2f]},\n", s->load_end[0], s->load_end[1],
            s->load_end[2]);
    fprintf(f, "  \"peak_gflops\": ");
    json_number(f, s->peak_gflops);
    fprintf(f, ",\n  \"call_floor_seconds\": ");
    json_number(f, s->call_floor_seconds);
    fprintf(f, ",\n  \"bandwidth_gbytes_per_second\": ");
    json_number(f, s->bandwidth_gbytes);
    fprintf(f, ",\n  \"devices\": {");
    if (s->opencl) {
        fprintf(f, "\"opencl\": ");
        json_string(f, clcnn_device_name(s->opencl));
    }
    if (s->reference) {
        fprintf(f, "%s\"reference\": ", s->opencl ? ", " : "");
        json_string(f, clcnn_device_name(s->reference));
    }
    fprintf(f, "},\n  \"repeat\": %d, \"reference_repeat\": %d, \"quick\": %s,\n",
            s->options.repeat, s->options.reference_repeat, s->options.quick ? "true" : "false");
    fprintf(f, "  \"min_run_seconds\": %.3f,\n  \"measurements\": [\n", min_run_seconds);
    for (int i = 0; i < s->measurement_count; i++) {
        const measurement *m = &s->measurements[i];
        fprintf(f, "    {\"id\": ");
        json_string(f, m->id);
        fprintf(f, ", \"device\": \"%s\", \"timing\": \"%s\", \"unit\": \"%s\", \"batch\": %lld",
                m->device, m->timing, m->unit, (long long)m->batch);
        fprintf(f, ", \"work_per_call\": ");
        json_number(f, m->work);
        fprintf(f, ", \"calls_per_run\": %d", m->calls_per_run);
        fprintf(f, ",\n     \"seconds_per_call\": {\"median\": ");
        json_number(f, m->median_seconds);
        fprintf(f, ", \"min\": ");
        json_number(f, m->min_seconds);
        fprintf(f, ", \"max\": ");
        json_number(f, m->max_seconds);
        fprintf(f, "}");
        if (m->work > 0.0 && m->median_seconds > 0.0) {
            fprintf(f, ", \"value\": {\"median\": ");
            json_number(f, m->work / m->median_seconds);
            fprintf(f, ", \"min\": ");
            json_number(f, m->max_seconds > 0.0 ? m->work / m->max_seconds : 0.0);
            fprintf(f, ", \"max\": ");
            json_number(f, m->min_seconds > 0.0 ? m->work / m->min_seconds : 0.0);
            fprintf(f, "}");
        } else {
            fprintf(f, ", \"value\": null");
        }
        fprintf(f, ",\n     \"runs\": [");
        for (int r = 0; r < m->run_count; r++) {
            fprintf(f, "%s", r ? ", " : "");
            json_number(f, m->seconds[r]);
        }
        fprintf(f, "]");
        if (m->kernels[0]) {
            fprintf(f, ", \"kernels\": ");
            json_string(f, m->kernels);
        }
        if (m->note[0]) {
            fprintf(f, ", \"note\": ");
            json_string(f, m->note);
        }
        fprintf(f, "}%s\n", i + 1 < s->measurement_count ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0)
        return cli_fail("--json: cannot write %s", path);
    return 0;
}

/* ---- the command
 * --------------------------------------------------------------------------------- */

static void read_cpu_name(char *buf, size_t size) {
    snprintf(buf, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(buf, size, "%s", colon);
        size_t length = strlen(buf);
        if (length && buf[length - 1] == '\n')
            buf[length - 1] = 0;
        break;
    }
    fclose(f);
}

static int parse_bench_options(const cli_args *args, bench_options *o) {
    int64_t number = 0;
    int reference_repeat_given = 0;
    for (int i = 0; i < args->option_count; i++) {
        const char *arg = args->options[i].option->name;
        const char *value = args->options[i].value;
        if (strcmp(arg, "--ops") == 0)
            o->run_ops = 1;
        else if (strcmp(arg, "--train") == 0)
            o->run_train = 1;
        else if (strcmp(arg, "--infer") == 0)
            o->run_infer = 1;
        else if (strcmp(arg, "--quick") == 0)
            o->quick = 1;
        else if (strcmp(arg, "--repeat") == 0 || strcmp(arg, "--reference-repeat") == 0) {
            if (cli_parse_int64(arg, value, &number) != 0)
                return CLI_USAGE;
            if (number < 1 || number > MAX_RUNS)
                return cli_usage(args->command, "%s: expected 1 to %d", arg, MAX_RUNS);
            if (strcmp(arg, "--repeat") == 0) {
                o->repeat = (int)number;
            } else {
                o->reference_repeat = (int)number;
                reference_repeat_given = 1;
            }
        } else if (strcmp(arg, "--json") == 0)
            o->json_path = value;
        else if (strcmp(arg, "--net-dir") == 0)
            o->net_dir = value;
        else if (strcmp(arg, "--data") == 0)
            o->data_dir = value;
        else if (strcmp(arg, "--filter") == 0)
            o->filter = value;
    }
    if (!o->run_ops && !o->run_train && !o->run_infer) {
        o->run_ops = 1;
        o->run_train = 1;
        o->run_infer = 1;
    }
    /* The reference is slow: few runs. --quick shrinks its work, so it can afford more. */
    if (!reference_repeat_given) {
        int limit = o->quick ? 3 : 1;
        o->reference_repeat = o->repeat < limit ? o->repeat : limit;
    }
    return 0;
}

static int run_bench(const cli_common *common, const cli_args *args) {
    bench_state *s = calloc(1, sizeof(bench_state));
    if (!s)
        return cli_fail("out of memory");
    s->measurements = calloc(MAX_MEASUREMENTS, sizeof(measurement));
    if (!s->measurements) {
        free(s);
        return cli_fail("out of memory");
    }
    bench_options *o = &s->options;
    o->repeat = 5;
    o->data_dir = default_data_dir;
    int result = parse_bench_options(args, o);
    if (result != 0) {
        free(s->measurements);
        free(s);
        return result;
    }
    snprintf(s->command_line, sizeof(s->command_line), "%s", common->command_line);
    s->options.device_given = common->device_given;
    read_cpu_name(s->cpu_name, sizeof(s->cpu_name));
    if (getloadavg(s->load_start, 3) != 3)
        memset(s->load_start, 0, sizeof(s->load_start));

    o->use_opencl = !o->device_given || common->device == CLCNN_DEVICE_OPENCL;
    o->use_reference = !o->device_given || common->device == CLCNN_DEVICE_REFERENCE;
    if (o->use_opencl) {
        cli_common opencl = *common;
        opencl.device = CLCNN_DEVICE_OPENCL;
        s->opencl = cli_open_context(&opencl);
        if (!s->opencl && o->device_given)
            result = 1;
        else if (!s->opencl)
            fprintf(stderr, "clcnn: bench: no OpenCL device, measuring the reference only\n");
    }
    if (result == 0 && o->use_reference) {
        cli_common reference = *common;
        reference.device = CLCNN_DEVICE_REFERENCE;
        s->reference = cli_open_context(&reference);
        if (!s->reference)
            result = 1;
    }
    if (result == 0 && s->opencl &&
        (clcnn_device_peak(s->opencl, &s->peak_gflops) != CLCNN_OK ||
         clcnn_device_call_floor(s->opencl, &s->call_floor_seconds) != CLCNN_OK ||
         clcnn_device_bandwidth(s->opencl, &s->bandwidth_gbytes) != CLCNN_OK))
        result = cli_fail_context(s->opencl);
    if (result == 0 && o->run_ops)
        result = bench_ops(s);
    if (result == 0 && (o->run_train || o->run_infer))
        result = bench_networks(s);
    if (getloadavg(s->load_end, 3) != 3)
        memset(s->load_end, 0, sizeof(s->load_end));
    if (result == 0) {
        print_tables(s);
        if (o->json_path)
            result = write_json(s, o->json_path);
    }
    clcnn_context_destroy(s->reference);
    clcnn_context_destroy(s->opencl);
    free(s->measurements);
    free(s);
    return result;
}

const cli_command cli_command_bench = {
    "bench",
    "",
    0,
    0,
    "per-operation GFLOP/s and training/inference images/s, OpenCL against the reference",
    "Without --ops, --train or --infer it measures all three. See bench/README.md.\n",
    (const cli_option[]){{"--ops", NULL, "time the operations"},
                         {"--train", NULL, "time training of the example networks"},
                         {"--infer", NULL, "time inference of the example networks"},
                         {"--repeat", "N", "timed runs on the OpenCL device (default 5)"},
                         {"--reference-repeat", "N", "timed runs on the reference"},
                         {"--quick", NULL, "small problems: a check that everything runs"},
                         {"--json", "FILE", "also write the measurements to FILE as JSON"},
                         {"--net-dir", "DIR", "the directory of the example networks"},
                         {"--data", "DIR", "the data set for the network measurements"},
                         {"--filter", "TEXT", "only measurements whose name contains TEXT"},
                         {NULL, NULL, NULL}},
    run_bench};
