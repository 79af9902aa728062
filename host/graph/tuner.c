/* clcnn_tune: times candidate configurations of the register-blocked
 * convolution kernels on a network's layers and keeps the fastest in the
 * device's tuning file (host/core/config.c reads and writes it). */
#include "layers/layer.h"

#include <stdlib.h>

enum { TUNE_OPERATIONS = 3, TUNE_REPEATS = 3, MAX_CANDIDATES = 48 };
static const char *const tune_operations[TUNE_OPERATIONS] = {"forward", "backward_data",
                                                             "backward_weights"};

/* Autotuning measures a shape at its batch class (tuning_batch_class: the
 * full batch, 64 images, the batch size clcnn tune defaults to, or more for
 * outputs of few pixels; or twice that for plans of twice as many images),
 * or at the plan's batch where that is below the full batch, and keeps the fastest of
 * AUTOTUNE_SCREEN runs of each candidate after its warm-up run. Then the fastest and the default
 * run turn about, AUTOTUNE_ROUNDS rounds and on until AUTOTUNE_SPREAD_SECONDS
 * have passed (below, as Winograd's race), and the fastest replaces
 * the default only if its best time over all its runs is at least
 * AUTOTUNE_MARGIN_PERCENT below the default's: a winner stays in the tuning
 * file for good, and the default is the safe choice when they are close.
 * (With five rounds alone, stop 71's tuning kept the default 8 x 2 x 4
 * for the 16 -> 32 stride-2 forward from 28x28, where 8 x 2 x 6 takes
 * 0.89-0.94 of its time called in turn, AMD EPYC Zen 3; a later tuning on
 * the same machine found it: bench/RESULTS.md, stop 73.)
 * Best times, not rounds won: another program's work only ever adds to a
 * run's time, so each side's best over several runs approaches its own
 * time, while which side wins a round is a coin toss once the machine is
 * busy. On 2 cores beside two busy loops the fused Winograd kernel lost
 * 2 of 5 rounds to the direct kernels at 16 channels, 28x28, with a best
 * time 0.79 of theirs, and the old rule (4 rounds won) kept the direct
 * ones: of the 5 residual-network operations that tuning on a quiet
 * machine gives to Winograd, six such runs kept 2.0 on average under the
 * old rule, 3.3 under this one (9 rounds: 3.0). The rounds after the
 * screening stay, since single screening runs under load had picked
 * configurations 1.6x slower than the default. */
enum { AUTOTUNE_SCREEN = 2, AUTOTUNE_ROUNDS = 5, AUTOTUNE_MARGIN_PERCENT = 3 };
_Static_assert((int)AUTOTUNE_SCREEN <= (int)TUNE_REPEATS, "tune_shape's times hold either");

/* Winograd's rounds go on until AUTOTUNE_SPREAD_SECONDS have passed (at
 * most AUTOTUNE_MAX_ROUNDS): five rounds of millisecond kernels fall within
 * one busy spell of a shared machine, while runs spread over a third of a
 * second meet its quiet moments, where each side's best time is its own.
 * Its verdicts are the ones that cost: at 16 channels, 28x28, the direct
 * forward's 1.7 ms against the fused kernel's 1.3. Tuning the residual
 * network from an empty cache 22 times each way, in turn, in a busy hour
 * (AMD EPYC, Zen 4): the four operations where Winograd is clearly faster
 * (16 and 32 channels, forward and backward-data) kept it 82 times of 88
 * with five rounds, 87 of 88 with the spread, for about 3 s more tuning
 * (4 s against 7 s). */
#define AUTOTUNE_SPREAD_SECONDS 0.3
enum { AUTOTUNE_MAX_ROUNDS = 200 };

/* After AUTOTUNE_ROUNDS rounds and a third of the spread, a Winograd
 * kernel whose best time is AUTOTUNE_HOPELESS times the fastest one's so
 * far (the direct kernels' included) leaves the rounds, and they end when
 * none is left: the spread is for close verdicts. The products' kernels at
 * 16 channels, 28x28, take twice the fused kernel's time and had taken 40 %
 * of the forward's rounds. Not after five rounds alone: a busy spell once
 * slowed all five runs of the fused kernel that later tied the direct
 * kernels at 64 channels, 7x7, to 1.9 times their time. */
#define AUTOTUNE_HOPELESS 1.5

/* The one rule both verdicts follow: a best time AUTOTUNE_MARGIN_PERCENT
 * below the default's best. */
static int clearly_faster(double best, double default_best) {
    return best * 100.0 <= default_best * (100 - AUTOTUNE_MARGIN_PERCENT);
}

static int more_race_rounds(int round, double start) {
    return round < AUTOTUNE_ROUNDS ||
           (round < AUTOTUNE_MAX_ROUNDS && clock_seconds() - start < AUTOTUNE_SPREAD_SECONDS);
}

/* The buffers one layer's operations read and write, filled once. */
typedef struct tune_buffers {
    cl_mem input, weight, bias, output, grad_output, grad_input, grad_weight, grad_bias, scratch;
} tune_buffers;

static void release_tune_buffers(tune_buffers *b) {
    cl_mem *all[] = {&b->input,      &b->weight,      &b->bias,      &b->output, &b->grad_output,
                     &b->grad_input, &b->grad_weight, &b->grad_bias, &b->scratch};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        buffer_release(all[i]);
}

static clcnn_status random_buffer(clcnn_context *ctx, rng *r, size_t count, cl_mem *out) {
    float *values = malloc(sizeof(float) * (count ? count : 1));
    if (!values)
        return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for tuning");
    for (size_t i = 0; i < count; i++)
        values[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    clcnn_status status = buffer_create(ctx, sizeof(float) * count, out);
    if (status == CLCNN_OK)
        status = buffer_write(ctx, *out, 0, sizeof(float) * count, values);
    free(values);
    return status;
}

/* The operation on step's kernels: the direct kernels' configuration
 * (CONV_DIRECT), the pointwise kernel (CONV_POINTWISE) or Winograd's
 * (CONV_WINOGRAD, CONV_WINOGRAD_FUSED, CONV_WINOGRAD_PAIRS, CONV_WINOGRAD4). */
static clcnn_status run_operation(clcnn_context *ctx, int operation, const conv_step *step,
                                  const conv2d_params *p, const tune_buffers *b) {
    const direct_config *c = &step->config;
    if (step->kernels == CONV_POINTWISE)
        return operation == 0 ? conv2d_forward_pointwise(ctx, c, p, b->input, b->weight, b->bias,
                                                         b->output, NULL)
                              : conv2d_backward_data_pointwise(ctx, c, p, b->grad_output, b->weight,
                                                               b->grad_input, 0);
    if (step->kernels != CONV_DIRECT) {
        if (operation == 0)
            return conv2d_forward_winograd(ctx, step, p, b->input, b->weight, 0, b->bias, b->output,
                                           NULL, NULL);
        if (operation == 1)
            return conv2d_backward_data_winograd(ctx, step, p, b->grad_output, b->weight,
                                                 b->grad_input, 0);
        return conv2d_backward_weights_winograd(ctx, c, p, b->input, b->grad_output, b->grad_weight,
                                                b->grad_bias);
    }
    if (operation == 0)
        return conv2d_forward_direct(ctx, c, p, b->input, b->weight, b->bias, b->output);
    if (operation == 1)
        return conv2d_backward_data_direct(ctx, c, p, b->grad_output, b->weight, b->grad_input);
    return conv2d_backward_weights_direct(ctx, c, p, b->input, b->grad_output, b->grad_weight,
                                          b->grad_bias, b->scratch);
}

/* The wall times of `repeats` runs into times, after one that builds and
 * warms up when warm_up. */
static clcnn_status time_runs(clcnn_context *ctx, int operation, const conv_step *c,
                              const conv2d_params *p, const tune_buffers *b, int warm_up,
                              int repeats, double *times) {
    clcnn_status status = CLCNN_OK;
    if (warm_up) {
        status = run_operation(ctx, operation, c, p, b);
        if (status == CLCNN_OK)
            status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
    }
    for (int i = 0; i < repeats && status == CLCNN_OK; i++) {
        double start = clock_seconds();
        status = run_operation(ctx, operation, c, p, b);
        if (status == CLCNN_OK)
            status = cl_check(ctx, clFinish(ctx->queue), "clFinish");
        times[i] = clock_seconds() - start;
    }
    return status;
}

static double fastest_time(const double *times, int count) {
    double fastest = times[0];
    for (int i = 1; i < count; i++)
        fastest = times[i] < fastest ? times[i] : fastest;
    return fastest;
}

/* The median of count times (sorted in place). */
static double median_time(double *times, int count) {
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
            double swap = times[j];
            times[j] = times[j - 1];
            times[j - 1] = swap;
        }
    return times[count / 2];
}

/* The channels an operation's configuration vectorises: one group's output
 * channels, or for backward-data its input channels. */
static int tuned_channels(int operation, const conv2d_params *p) {
    return (operation == 1 ? p->in_channels : p->out_channels) / conv2d_groups(p);
}

/* Keeps the register-blocked kernels within what the full tuner explores:
 * vectors no narrower than 4 (or the default's) and at most a quarter of
 * the device's, at most 4 vectors and no more than the channels fill, and
 * at most 24 accumulator vectors live. */
static int plausible_candidate(const direct_config *c, const direct_config *fallback,
                               int channels) {
    const int vectors = (channels + c->vw - 1) / c->vw;
    return c->vw >= 1 && (c->vw >= 4 || c->vw == fallback->vw) && c->vw >= fallback->vw / 4 &&
           c->nv >= 1 && c->nv <= 4 && c->nv <= (vectors > 1 ? vectors : 1) && c->wpt_p >= 1 &&
           c->nv * c->wpt_p <= 24;
}

/* The device's vector width and the narrower ones down to 4 (few channels
 * fill a narrow vector better), vectors per work-item up to what the
 * channels fill, and positions so that at most 24 accumulator vectors are
 * live. The default configuration comes first. */
static int tune_candidates(clcnn_context *ctx, int channels, direct_config *out) {
    const direct_config fallback = direct_config_for(ctx, channels);
    const int positions[] = {1, 2, 4, 6, 8, 12, 16};
    int count = 0;
    out[count++] = fallback;
    for (int vw = fallback.vw; vw >= 4 && vw >= fallback.vw / 4; vw /= 2) {
        const int vectors = (channels + vw - 1) / vw;
        for (int nv = 1; nv <= 4 && nv <= (vectors > 1 ? vectors : 1); nv++)
            for (size_t i = 0; i < sizeof(positions) / sizeof(positions[0]); i++) {
                direct_config c = {vw, nv, positions[i], fallback.group};
                if (!plausible_candidate(&c, &fallback, channels) || count == MAX_CANDIDATES)
                    continue;
                if (c.vw == fallback.vw && c.nv == fallback.nv && c.wpt_p == fallback.wpt_p)
                    continue;
                out[count++] = c;
            }
    }
    return count;
}

/* Autotuning's few: the configuration the operation would run with first,
 * then its neighbours (one vector more or fewer, half, one and a half or
 * twice the positions, vectors half as wide), which is where the full
 * tuner's winners mostly lie. One and a half: 2 x 6 accumulators fill
 * AVX2's 16 registers with the loads, and the forward with 128 and 256
 * channels ran 3-7 % faster so (AMD EPYC, in-process A/B). Last, one
 * vector of channels with 8 positions, far from a default of several
 * vectors, which a short reduction into many channels can prefer: the 1x1
 * forward from 64 to 256 channels at 56x56, batch 32, ran in 24 ms so
 * against the default's 35 (Xeon, AVX-512). */
static int autotune_candidates(const clcnn_context *ctx, int operation, const conv2d_params *p,
                               direct_config *out) {
    const int channels = tuned_channels(operation, p);
    const direct_config d = direct_config_for_conv(ctx, tune_operations[operation], p, channels);
    const direct_config tries[] = {
        d,
        {d.vw, d.nv - 1, d.wpt_p, d.group},
        {d.vw, d.nv + 1, d.wpt_p, d.group},
        {d.vw, d.nv, d.wpt_p / 2, d.group},
        {d.vw, d.nv, d.wpt_p + d.wpt_p / 2, d.group},
        {d.vw, d.nv, d.wpt_p * 2, d.group},
        {d.vw / 2, d.nv, d.wpt_p, d.group},
        {d.vw, 1, 8, d.group},
    };
    int count = 0;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        int seen = 0;
        for (int j = 0; j < count; j++)
            seen |= out[j].vw == tries[i].vw && out[j].nv == tries[i].nv &&
                    out[j].wpt_p == tries[i].wpt_p;
        /* The default runs whatever it is; the neighbours stay plausible. */
        if (!seen && (i == 0 || plausible_candidate(&tries[i], &d, channels)))
            out[count++] = tries[i];
    }
    return count;
}

/* What tuning one operation found: candidates[winner] took best seconds,
 * the first (the default) first seconds; where another algorithm was raced
 * against the winner (Winograd F(2x2, 3x3) for a stride-1 3x3 convolution,
 * the pointwise kernel for a 1x1 one), the best seconds of its fastest
 * kernels (alternative_kernels) and the winner's in the same rounds (0
 * where none was), and whether it won. */
typedef struct tune_result {
    int winner;
    double best, first;
    double alternative, alternative_direct;
    int alternative_kernels, alternative_won;
} tune_result;

/* count variants of another algorithm against the direct kernels' winner
 * `direct`: rounds (more_race_rounds) of one run each of the variants
 * and of the direct kernels, turn about, after a warm-up, the hopeless
 * ones dropped (AUTOTUNE_HOPELESS). The fastest variant wins as a
 * configuration does in autotuning: its best time AUTOTUNE_MARGIN_PERCENT
 * below the direct kernels' (the same rule for clcnn tune: Winograd changes
 * the floats, by its rounding, so it must clearly pay). Its index goes to
 * *fastest_out, the figures to result. */
static clcnn_status race_alternatives(clcnn_context *ctx, int operation,
                                      const direct_config *direct, const conv2d_params *p,
                                      const tune_buffers *b, const conv_step *variants, int count,
                                      int *fastest_out, tune_result *result) {
    enum { MOST_VARIANTS = 1 + WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS };
    const conv_step direct_step = {CONV_DIRECT, *direct};
    double best[MOST_VARIANTS] = {0.0}, best_direct = 0.0, unused = 0.0;
    clcnn_status status = CLCNN_OK;
    for (int v = 0; v < count && status == CLCNN_OK; v++)
        status = time_runs(ctx, operation, &variants[v], p, b, 1, 0, &unused);
    int timed[MOST_VARIANTS], left = count;
    for (int v = 0; v < count; v++)
        timed[v] = 1;
    const double start = clock_seconds();
    for (int round = 0; left > 0 && more_race_rounds(round, start) && status == CLCNN_OK; round++) {
        double d = 0.0;
        status = time_runs(ctx, operation, &direct_step, p, b, 0, 1, &d);
        best_direct = round == 0 || d < best_direct ? d : best_direct;
        double fastest_yet = best_direct;
        for (int v = 0; v < count && status == CLCNN_OK; v++) {
            double w = 0.0;
            if (timed[v]) {
                status = time_runs(ctx, operation, &variants[v], p, b, 0, 1, &w);
                best[v] = round == 0 || w < best[v] ? w : best[v];
            }
            fastest_yet = best[v] < fastest_yet ? best[v] : fastest_yet;
        }
        const int judged =
            round + 1 >= AUTOTUNE_ROUNDS && clock_seconds() - start >= AUTOTUNE_SPREAD_SECONDS / 3;
        for (int v = 0; v < count && judged; v++)
            if (timed[v] && best[v] > AUTOTUNE_HOPELESS * fastest_yet) {
                timed[v] = 0;
                left--;
            }
    }
    if (status != CLCNN_OK)
        return status;
    int fastest = 0;
    for (int v = 1; v < count; v++)
        fastest = best[v] < best[fastest] ? v : fastest;
    *fastest_out = fastest;
    result->alternative = best[fastest];
    result->alternative_direct = best_direct;
    result->alternative_kernels = variants[fastest].kernels;
    result->alternative_won = clearly_faster(best[fastest], best_direct);
    return CLCNN_OK;
}

/* Winograd's kernels (the products', and the fused kernel where it can run)
 * against the direct kernels' winner; the verdict is remembered. */
static clcnn_status tune_winograd(clcnn_context *ctx, int operation, const direct_config *direct,
                                  const conv2d_params *p, const tune_buffers *b,
                                  tune_result *result) {
    const conv2d_params forward = operation == 1 ? conv2d_backward_data_as_forward(p) : *p;
    conv_step variants[1 + WINOGRAD_FUSED_STEPS + WINOGRAD4_STEPS];
    int count = 0, fastest = 0;
    variants[count++] =
        (conv_step){CONV_WINOGRAD, operation == 2 ? conv2d_winograd_gradient_config(ctx, p)
                                                  : conv2d_winograd_products_config(ctx, &forward)};
    if (operation != 2 && conv2d_winograd_fused_fits(ctx, &forward))
        count += conv2d_winograd_fused_steps(ctx, variants + count);
    if (operation != 2 && conv2d_winograd4_pays(ctx, &forward))
        count += conv2d_winograd4_steps(ctx, variants + count);
    clcnn_status status =
        race_alternatives(ctx, operation, direct, p, b, variants, count, &fastest, result);
    if (status != CLCNN_OK)
        return status;
    return conv2d_remember_winograd(ctx, tune_operations[operation], p,
                                    result->alternative_won ? &variants[fastest] : NULL);
}

/* The pointwise kernel against the direct kernels' winner; the verdict is remembered. */
static clcnn_status tune_pointwise(clcnn_context *ctx, int operation, const direct_config *direct,
                                   const conv2d_params *p, const tune_buffers *b,
                                   tune_result *result) {
    const conv_step pointwise = {CONV_POINTWISE, conv2d_pointwise_config(ctx)};
    int fastest = 0;
    clcnn_status status =
        race_alternatives(ctx, operation, direct, p, b, &pointwise, 1, &fastest, result);
    if (status != CLCNN_OK)
        return status;
    return conv2d_remember_pointwise(ctx, tune_operations[operation], p, result->alternative_won);
}

/* Whether tuning races the pointwise kernel for operation of p: it can run
 * it, nothing forces a choice, and the planes hold a work-item's positions
 * (on smaller ones most of its lanes would be empty: a dense layer's 1x1
 * planes among them). */
int tuning_races_pointwise(const clcnn_context *ctx, int operation, const conv2d_params *p) {
    const direct_config c = conv2d_pointwise_config(ctx);
    return ctx->config.pointwise < 0 && !ctx->config.direct_forced &&
           conv2d_pointwise_possible(tune_operations[operation], p) &&
           p->in_height * p->in_width >= c.vw * c.nv;
}

/* Times the counts[op] candidates of each operation with any on shape p,
 * remembers each one's fastest in ctx's table and describes it in
 * results[op]: the median of TUNE_REPEATS runs each, or with `confirm`
 * autotuning's screening and confirmation (above). The buffers are random
 * values, made for the operations timed only. */
static clcnn_status tune_shape(clcnn_context *ctx, const conv2d_params *p,
                               direct_config candidates[TUNE_OPERATIONS][MAX_CANDIDATES],
                               const int *counts, int confirm, rng *r, tune_result *results) {
    const int forward = counts[0] > 0, data = counts[1] > 0, weights = counts[2] > 0;
    const size_t in_count = (size_t)p->batch * p->in_channels * p->in_height * p->in_width;
    const size_t out_count = (size_t)p->batch * p->out_channels * p->out_height * p->out_width;
    const size_t weight_count =
        (size_t)p->out_channels * (p->in_channels / conv2d_groups(p)) * p->kernel_h * p->kernel_w;
    size_t scratch = 4;
    for (int i = 0; i < counts[2]; i++) {
        size_t bytes = conv2d_backward_weights_direct_scratch_bytes(&candidates[2][i], p);
        scratch = bytes > scratch ? bytes : scratch;
    }
    tune_buffers b = {0};
    clcnn_status status = CLCNN_OK;
    if (forward || weights)
        status = random_buffer(ctx, r, in_count, &b.input);
    if (status == CLCNN_OK && (forward || data))
        status = random_buffer(ctx, r, weight_count, &b.weight);
    if (status == CLCNN_OK && forward)
        status = random_buffer(ctx, r, (size_t)p->out_channels, &b.bias);
    if (status == CLCNN_OK && (data || weights))
        status = random_buffer(ctx, r, out_count, &b.grad_output);
    if (status == CLCNN_OK && forward)
        status = buffer_create(ctx, sizeof(float) * out_count, &b.output);
    if (status == CLCNN_OK && data)
        status = buffer_create(ctx, sizeof(float) * in_count, &b.grad_input);
    if (status == CLCNN_OK && weights)
        status = buffer_create(ctx, sizeof(float) * weight_count, &b.grad_weight);
    if (status == CLCNN_OK && weights)
        status = buffer_create(ctx, sizeof(float) * (size_t)p->out_channels, &b.grad_bias);
    if (status == CLCNN_OK && weights)
        status = buffer_create(ctx, scratch, &b.scratch);
    for (int op = 0; op < TUNE_OPERATIONS && status == CLCNN_OK; op++) {
        tune_result *result = &results[op];
        *result = (tune_result){0, 0.0, 0.0, 0.0, 0.0, 0, 0};
        const int repeats = confirm ? AUTOTUNE_SCREEN : TUNE_REPEATS;
        for (int i = 0; i < counts[op] && status == CLCNN_OK; i++) {
            double times[TUNE_REPEATS] = {0.0};
            const conv_step step = {CONV_DIRECT, candidates[op][i]};
            status = time_runs(ctx, op, &step, p, &b, 1, repeats, times);
            if (status != CLCNN_OK && confirm && i > 0) {
                /* A neighbour the device cannot build or run is no
                 * candidate, and no reason to stop a plan: the default ran. */
                ctx->error[0] = 0;
                ctx->status = status = CLCNN_OK;
                continue;
            }
            const double seconds =
                confirm ? fastest_time(times, repeats) : median_time(times, repeats);
            if (i == 0)
                result->first = seconds;
            if (status == CLCNN_OK && (i == 0 || seconds < result->best)) {
                result->best = seconds;
                result->winner = i;
            }
        }
        const double start = clock_seconds();
        for (int round = 0; confirm && result->winner > 0 && more_race_rounds(round, start);
             round++) {
            double first = 0.0, best = 0.0;
            const conv_step first_step = {CONV_DIRECT, candidates[op][0]};
            const conv_step best_step = {CONV_DIRECT, candidates[op][result->winner]};
            if (status == CLCNN_OK)
                status = time_runs(ctx, op, &first_step, p, &b, 0, 1, &first);
            if (status == CLCNN_OK)
                status = time_runs(ctx, op, &best_step, p, &b, 0, 1, &best);
            result->first = first < result->first ? first : result->first;
            result->best = best < result->best ? best : result->best;
        }
        if (confirm && !clearly_faster(result->best, result->first)) {
            result->winner = 0;
            result->best = result->first;
        }
        if (status == CLCNN_OK && counts[op] > 0)
            status = tuning_remember(ctx, tune_operations[op], p, &candidates[op][result->winner]);
        if (status == CLCNN_OK && counts[op] > 0 && ctx->config.winograd < 0 &&
            conv2d_winograd_possible(ctx, tune_operations[op], p))
            status = tune_winograd(ctx, op, &candidates[op][result->winner], p, &b, result);
        if (status == CLCNN_OK && counts[op] > 0 && tuning_races_pointwise(ctx, op, p))
            status = tune_pointwise(ctx, op, &candidates[op][result->winner], p, &b, result);
    }
    release_tune_buffers(&b);
    return status;
}

/* A grouped or dilated convolution is tuned as it runs: the -DGENERAL
 * kernels over all its groups, the candidates sized for one group's
 * channels; its entries in the tuning file carry the dilation and the groups
 * in their keys. A depthwise one runs on kernels with nothing to tune. */
clcnn_status tune_as_convolution(clcnn_context *ctx, const layer *l, int batch, rng *r,
                                 char *report, size_t size, size_t *used) {
    const conv2d_params p = layer_conv2d_params(l, batch);
    if (conv2d_runs_depthwise(&p)) {
        text_append(report, size, used, "%-12s depthwise kernels: nothing to tune\n", l->name);
        return CLCNN_OK;
    }
    direct_config candidates[TUNE_OPERATIONS][MAX_CANDIDATES];
    int counts[TUNE_OPERATIONS];
    for (int op = 0; op < TUNE_OPERATIONS; op++)
        counts[op] = tune_candidates(ctx, tuned_channels(op, &p), candidates[op]);
    tune_result results[TUNE_OPERATIONS];
    clcnn_status status = tune_shape(ctx, &p, candidates, counts, 0, r, results);
    for (int op = 0; op < TUNE_OPERATIONS && status == CLCNN_OK; op++) {
        const direct_config *c = &candidates[op][results[op].winner];
        text_append(report, size, used,
                    "%-12s %-16s vw %2d nv %d positions %2d: %8.3f ms (default %8.3f ms, %d "
                    "candidates)\n",
                    l->name, tune_operations[op], c->vw, c->nv, c->wpt_p, results[op].best * 1e3,
                    results[op].first * 1e3, counts[op]);
        const int kernels = results[op].alternative_kernels;
        if (results[op].alternative > 0.0)
            text_append(report, size, used,
                        "%-12s %-16s %s: %8.3f ms against %8.3f ms in the same rounds, %s\n",
                        l->name, tune_operations[op],
                        kernels == CONV_POINTWISE        ? "pointwise kernel"
                        : kernels == CONV_WINOGRAD_FUSED ? "Winograd (fused)"
                        : kernels == CONV_WINOGRAD_PAIRS ? "Winograd (fused, pairs)"
                        : kernels == CONV_WINOGRAD4      ? "Winograd (4x4 tiles)"
                                                         : "Winograd",
                        results[op].alternative * 1e3, results[op].alternative_direct * 1e3,
                        results[op].alternative_won ? "chosen" : "not chosen");
    }
    return status;
}

/* Whether shape p's operation is worth tuning here: it runs on the tuned
 * kernels, the table lacks it (or the pointwise kernel's verdict on it), and
 * its buffers fit the device (where they do not, the plan says so). */
static int autotune_wants(const clcnn_context *ctx, int operation, const conv2d_params *p) {
    const uint64_t in_bytes =
        sizeof(float) * (uint64_t)p->batch * p->in_channels * p->in_height * p->in_width;
    const uint64_t out_bytes =
        sizeof(float) * (uint64_t)p->batch * p->out_channels * p->out_height * p->out_width;
    /* A shape tuned before the pointwise kernel existed is tuned again to judge it. */
    const int unjudged = tuning_races_pointwise(ctx, operation, p) &&
                         !conv2d_pointwise_judged(ctx, tune_operations[operation], p);
    return conv2d_runs_direct(ctx, tune_operations[operation], p) &&
           (!tuning_has(ctx, tune_operations[operation], p) || unjudged) &&
           in_bytes <= ctx->max_alloc_bytes && out_bytes <= ctx->max_alloc_bytes;
}

/* The batch layer l is tuned at: the capacity below the full batch, its
 * class from there (tuning_batch_class); the verdicts are filed under that
 * batch's class. */
static int autotune_batch(const layer *l, int64_t capacity) {
    const int batch = capacity < INT32_MAX ? (int)capacity : INT32_MAX;
    const conv2d_params p = layer_conv2d_params(l, batch);
    return batch < tuning_full_batch(&p) ? batch : (int)tuning_batch_class(&p);
}

clcnn_status net_autotune(clcnn_net *net, int64_t capacity, int with_gradients) {
    clcnn_context *ctx = net->ctx;
    if (!autotune_enabled(ctx) || capacity < 1)
        return CLCNN_OK;
    unsigned char *needed = NULL;
    if (with_gradients) {
        needed = malloc((size_t)net->layer_count);
        if (!needed)
            return set_error(ctx, CLCNN_ERROR_OUT_OF_MEMORY, "out of memory for autotuning");
        net_needed_gradients(net, net->want_input_gradient, needed);
    }
    const double start = clock_seconds();
    const int tuned_before = ctx->autotuned_operations;
    tuning_load(ctx);
    rng r;
    rng_seed(&r, 12345);
    clcnn_status status = CLCNN_OK;
    for (int i = 1; i < net->layer_count && status == CLCNN_OK; i++) {
        const layer *l = &net->layers[i];
        if (l->type->tune != tune_as_convolution)
            continue;
        const conv2d_params p = layer_conv2d_params(l, autotune_batch(l, capacity));
        /* Backward-data where a gradient reaches an input, backward-weights
         * where the layer trains, as the backward pass runs them. */
        int gradient_below = 0;
        for (int k = 0; needed && k < l->input_count; k++)
            gradient_below |= needed[l->inputs[k]];
        const int runs[TUNE_OPERATIONS] = {1, gradient_below,
                                           with_gradients && net_trains_layer(net, i)};
        direct_config candidates[TUNE_OPERATIONS][MAX_CANDIDATES];
        int counts[TUNE_OPERATIONS], any = 0;
        for (int op = 0; op < TUNE_OPERATIONS; op++) {
            counts[op] = runs[op] && autotune_wants(ctx, op, &p)
                             ? autotune_candidates(ctx, op, &p, candidates[op])
                             : 0;
            any |= counts[op] > 0;
        }
        if (!any)
            continue;
        tune_result results[TUNE_OPERATIONS];
        status = tune_shape(ctx, &p, candidates, counts, 1, &r, results);
        for (int op = 0; op < TUNE_OPERATIONS; op++)
            ctx->autotuned_operations += counts[op] > 0;
    }
    free(needed);
    ctx->autotune_seconds += clock_seconds() - start;
    if (status != CLCNN_OK || ctx->autotuned_operations == tuned_before)
        return status;
    /* A tuning file that cannot be written only costs the next process the
     * same measurements; this one keeps them in its table. */
    if (tuning_save(ctx) != CLCNN_OK) {
        ctx->error[0] = 0;
        ctx->status = CLCNN_OK;
    }
    return CLCNN_OK;
}

clcnn_status clcnn_tune(clcnn_net *net, int batch, char *report, size_t size) {
    if (!net || batch < 1 || !report || size == 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    clcnn_context *ctx = net->ctx;
    report[0] = 0;
    if (ctx->kind != CLCNN_DEVICE_OPENCL)
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "tuning needs an OpenCL device; the reference has nothing to tune");
    if (!use_direct_kernels(ctx))
        return set_error(ctx, CLCNN_ERROR_INVALID_ARGUMENT,
                         "this device runs the tiled kernels, which clcnn does not tune yet");
    size_t used = 0;
    rng r;
    rng_seed(&r, 12345);
    clcnn_status status = CLCNN_OK;
    for (int i = 0; i < net->layer_count && status == CLCNN_OK; i++) {
        const layer *l = &net->layers[i];
        if (l->type->tune)
            status = l->type->tune(ctx, l, batch, &r, report, size, &used);
    }
    if (status == CLCNN_OK)
        status = tuning_save(ctx);
    /* The scratch of backward-weights depends on the configuration: plan again. */
    net_release_activations(net);
    return status;
}
