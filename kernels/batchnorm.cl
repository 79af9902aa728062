/* Batch normalisation, float32, NCHW, as PyTorch's BatchNorm2d (spatial =
 * H * W) and BatchNorm1d (spatial = 1): every channel c is normalised over
 * its count = batch * spatial elements
 *
 *   x[n, c, s] at offset (n * channels + c) * spatial + s.
 *
 * Train mode normalises with the batch mean and the biased batch variance
 * and updates the running statistics with the unbiased one; eval mode uses
 * the running statistics; backward is that of the train-mode forward.
 *
 * Every kernel but batchnorm_forward_eval_planes (its own launch, below)
 * runs one work-group of BATCHNORM_THREADS work-items (a power
 * of two, -D, default below) per channel: launch with local size
 * BATCHNORM_THREADS and global size channels * BATCHNORM_THREADS. Every sum
 * over a channel is a compensated sum per work-item over the elements it
 * visits, in order (see compensated_sum), then a fixed tree over the
 * work-items in local memory, so the result is the same on every run and
 * stays accurate for channels of millions of elements. A work-group computes
 * its channel's statistics and then uses them itself, so nothing is kept
 * between launches: backward recomputes the mean and variance from x with the
 * same sums. (Synchronised across ranks, the statistics are the global
 * batch's: batchnorm_moments sums the rank's share, the host combines every
 * rank's, and an apply kernel uses the result; see the section below.) The
 * host keeps channels * spatial * batch + 1024 within int.
 *
 * BATCHNORM_VW (1, 2, 4, 8 or 16; -D, default 1) floats make one element of the
 * walks below: x, y and the gradients are read and written as vectors of
 * that many floats (at most H * W: the host picks it), `spatial` counting
 * floats. Sums are then kept per lane, and the lanes added at the end of a
 * work-item's walk: CPUs run the vectors as SIMD.
 */
#ifndef BATCHNORM_THREADS
#define BATCHNORM_THREADS 128
#endif

/* ---- the walk over one channel ------------------------------------------------------ */

/* Which of the channel's floats a work-item visits, in increasing order, a
 * vector of BATCHNORM_VW at a time:
 *   BATCHNORM_CONTIGUOUS 0 (GPUs, VW 1): e = t, t + THREADS, t + 2 THREADS,
 *     ... of the channel's count = batch * spatial (work-item t), so
 *     neighbouring work-items read neighbouring floats. Stepping e steps n
 *     and s by fixed amounts plus a carry, so the loop needs no division.
 *   BATCHNORM_CONTIGUOUS 1 (CPUs): the channel is walked as planes of
 *     ceil(spatial / VW) vectors each, e = n * vectors + s, and every
 *     work-item takes a contiguous run of ceil(batch * vectors / THREADS)
 *     of them, which a CPU reads as a stream, where the strided walk would
 *     miss the cache on every float. Where VW does not divide spatial, a
 *     plane's last vector is the VW floats that end the plane, and so
 *     repeats the `skip` last floats of the one before: sums leave those
 *     lanes out (kept) and stores neither read nor write them (store_at).
 *     (Planes of 49 floats, 7x7, walk 7 vectors of 8 instead of 49 single
 *     floats.) */
#ifndef BATCHNORM_CONTIGUOUS
#define BATCHNORM_CONTIGUOUS 0
#endif

#ifndef BATCHNORM_VW
#define BATCHNORM_VW 1
#endif
#define GLUE_(a, b) a##b
#define GLUE(a, b) GLUE_(a, b)

#if BATCHNORM_VW == 1
typedef float real;
#define lanes_sum(v) (v)
#elif BATCHNORM_VW == 2
typedef float2 real;
typedef int2 lane_index;
#define LANES (int2)(0, 1)
#define lanes_sum(v) ((v).s0 + (v).s1)
#elif BATCHNORM_VW == 4
typedef float4 real;
typedef int4 lane_index;
#define LANES (int4)(0, 1, 2, 3)
#define lanes_sum(v) (((v).s0 + (v).s1) + ((v).s2 + (v).s3))
#elif BATCHNORM_VW == 8
typedef float8 real;
typedef int8 lane_index;
#define LANES (int8)(0, 1, 2, 3, 4, 5, 6, 7)
#define lanes_sum(v)                                                                               \
    ((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7)))
#elif BATCHNORM_VW == 16
typedef float16 real;
typedef int16 lane_index;
#define LANES (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define lanes_sum(v)                                                                               \
    (((((v).s0 + (v).s1) + ((v).s2 + (v).s3)) + (((v).s4 + (v).s5) + ((v).s6 + (v).s7))) +        \
     ((((v).s8 + (v).s9) + ((v).sa + (v).sb)) + (((v).sc + (v).sd) + ((v).se + (v).sf))))
#else
#error "BATCHNORM_VW must be 1, 2, 4, 8 or 16"
#endif

/* A walk visits a work-item's vectors in runs: vectors consecutive in
 * memory with the same skip, so that a step within a run is one addition to
 * offset (FOR_EACH_VECTOR below); the bookkeeping of planes and shares comes
 * once a run. */
#if BATCHNORM_CONTIGUOUS
typedef struct channel_walk {
    int e, end;            /* the run's first vector, the end of this work-item's share */
    int s, vectors;        /* e = n * vectors + s */
    int plane, plane_step; /* the offset of image n's plane, and of the next image's */
    int run;               /* vectors in the run */
    int offset, run_end;   /* of the current vector; of the vector past the run */
    int skip;              /* lanes of the run's vectors that repeat the vector before */
} channel_walk;

/* A plane's vectors but the last that repeats floats make one run (cut at
 * the end of the share); that last vector is a run of its own. */
void walk_place(channel_walk *w, const int spatial) {
    const int last_skip = w->vectors * BATCHNORM_VW - spatial;
    const int whole = last_skip ? w->vectors - 1 : w->vectors;
    if (w->s < whole) {
        w->run = min(whole - w->s, w->end - w->e);
        w->offset = w->plane + w->s * BATCHNORM_VW;
        w->skip = 0;
    } else {
        w->run = 1;
        w->offset = w->plane + spatial - BATCHNORM_VW;
        w->skip = last_skip;
    }
    w->run_end = w->offset + w->run * BATCHNORM_VW;
}

channel_walk walk_start(const int batch, const int spatial, const int channels, const int channel) {
    channel_walk w;
    w.vectors = (spatial + BATCHNORM_VW - 1) / BATCHNORM_VW;
    const int count = batch * w.vectors;
    const int share = (count + BATCHNORM_THREADS - 1) / BATCHNORM_THREADS;
    w.e = get_local_id(0) * share;
    w.end = min(w.e + share, count);
    const int n = w.e / w.vectors;
    w.s = w.e - n * w.vectors;
    /* A work-item with no share (e past the end) never reads it; its image
     * is clamped so that the offset stays within int as the host checks. */
    w.plane = (min(n, batch - 1) * channels + channel) * spatial;
    w.plane_step = channels * spatial;
    walk_place(&w, spatial);
    return w;
}

int walk_more(const channel_walk *w) {
    return w->e < w->end;
}

void walk_next(channel_walk *w, const int spatial) {
    w->e += w->run;
    w->s += w->run;
    if (w->s == w->vectors) {
        w->s = 0;
        w->plane += w->plane_step;
    }
    walk_place(w, spatial);
}
#else
typedef struct channel_walk {
    int e, end;      /* the current element, the end of the walk */
    int s;           /* e = n * spatial + s */
    int step_s;      /* the step in e = step_n * spatial + step_s */
    int element;     /* the offset of element e: (n * channels + channel) * spatial + s */
    int offset_step; /* what a step adds to it: step_n * channels * spatial + step_s */
    int offset_wrap; /* and a carry into the next image: (channels - 1) * spatial */
    int offset, run_end; /* runs of one element: offset from element to element + 1 */
    int skip;            /* always 0: single floats */
} channel_walk;

channel_walk walk_start(const int batch, const int spatial, const int channels, const int channel) {
    channel_walk w;
    w.e = get_local_id(0);
    w.end = batch * spatial;
    const int n = w.e / spatial;
    w.s = w.e - n * spatial;
    const int step_n = BATCHNORM_THREADS / spatial;
    w.step_s = BATCHNORM_THREADS - step_n * spatial;
    /* A work-item with no share (e past the end) never reads it; its image
     * is clamped so that the offset stays within int as the host checks. */
    w.element = (min(n, batch - 1) * channels + channel) * spatial + w.s;
    w.offset_step = step_n * channels * spatial + w.step_s;
    w.offset_wrap = (channels - 1) * spatial;
    w.offset = w.element;
    w.run_end = w.element + 1;
    w.skip = 0;
    return w;
}

int walk_more(const channel_walk *w) {
    return w->e < w->end;
}

void walk_next(channel_walk *w, const int spatial) {
    w->e += BATCHNORM_THREADS;
    w->s += w->step_s;
    w->element += w->offset_step;
    if (w->s >= spatial) {
        w->s -= spatial;
        w->element += w->offset_wrap;
    }
    w->offset = w->element;
    w->run_end = w->element + 1;
}
#endif

/* The body that follows runs once for each of the work-item's vectors of the
 * channel, in order, with the walk w at that vector (load_at, store_at, kept). */
#define FOR_EACH_VECTOR(w, batch, spatial, channels, channel)                                      \
    for (channel_walk w = walk_start(batch, spatial, channels, channel); walk_more(&w);            \
         walk_next(&w, spatial))                                                                   \
        for (; w.offset < w.run_end; w.offset += BATCHNORM_VW)

/* The vector of BATCHNORM_VW floats at p, and a store of v there. */
real load_real(const __global float *p) {
#if BATCHNORM_VW == 1
    return *p;
#else
    return GLUE(vload, BATCHNORM_VW)(0, p);
#endif
}
void store_real(const real v, __global float *p) {
#if BATCHNORM_VW == 1
    *p = v;
#else
    GLUE(vstore, BATCHNORM_VW)(v, 0, p);
#endif
}
/* The same store past the caches (p aligned to a whole vector), and the
 * fence that must follow such stores before another core may read them:
 * streaming stores are weakly ordered, and the locked instructions with
 * which the runtime then says the kernel is done are not documented to
 * order them on every x86 processor. A plain store reads each cache line
 * before it writes it, and an output larger than the caches is evicted
 * before the next layer reads it. 64 channels of 56x56, batch 32 (24.5
 * MiB), scaled and stored: 1.43 -> 1.0 ms (AMD EPYC, AVX-512). Only where
 * the compiler is clang targeting x86, which has both builtins; plain
 * stores elsewhere. */
#if BATCHNORM_VW >= 4 && defined(__clang__) && defined(__has_builtin) && defined(__x86_64__)
#if __has_builtin(__builtin_nontemporal_store) && __has_builtin(__builtin_ia32_sfence)
#define stream_real(v, p) __builtin_nontemporal_store((v), (__global real *)(p))
#define stream_fence() __builtin_ia32_sfence()
#endif
#endif
#ifndef stream_real
#define stream_real(v, p) store_real((v), (p))
#define stream_fence()
#endif
/* Whether a plane kernel streams the plane at p: stream (the host's
 * verdict on the tensors' size) and p on a whole vector. */
#define STREAMS_PLANE(stream, p) ((stream) && (size_t)(p) % sizeof(real) == 0)
/* The walk's current vector of p, and a store of v there. */
real load_at(const __global float *p, const channel_walk *w) {
    return load_real(p + w->offset);
}

/* A store of v at p, whose first `skip` lanes repeat the vector before
 * (a plane's last vector): those lanes are neither read nor written, as
 * another work-item may be writing them. With accumulate the store adds v
 * to what is there. */
void store_lanes(const real v, __global float *p, const int skip, const int accumulate) {
#if BATCHNORM_VW == 1
    *p = accumulate ? *p + v : v;
#else
    if (!skip) {
        const real old = accumulate ? load_real(p) : (real)0.0f;
        store_real(accumulate ? old + v : v, p);
        return;
    }
    /* The lanes past the repeated ones, once a plane. */
    float lanes[BATCHNORM_VW];
    GLUE(vstore, BATCHNORM_VW)(v, 0, lanes);
    for (int j = skip; j < BATCHNORM_VW; j++)
        p[j] = accumulate ? p[j] + lanes[j] : lanes[j];
#endif
}
/* store_lanes, streamed (stream_real) where streamed and the vector is
 * whole and written, not added to. */
void store_plane_lanes(const real v, __global float *p, const int skip, const int accumulate,
                       const int streamed) {
    if (streamed && !skip && !accumulate)
        stream_real(v, p);
    else
        store_lanes(v, p, skip, accumulate);
}

void store_at(const real v, __global float *p, const int accumulate, const channel_walk *w) {
    store_lanes(v, p + w->offset, w->skip, accumulate);
}

/* v with its first `skip` lanes (those that repeat the vector before) set
 * to 0, for sums. */
real kept_lanes(const real v, const int skip) {
#if BATCHNORM_VW == 1
    return v;
#else
    return skip ? select(v, (real)0.0f, LANES < (lane_index)(skip)) : v;
#endif
}

real kept(const real v, const channel_walk *w) {
    return kept_lanes(v, w->skip);
}

/* A relu fused into the layer (relu = 1 in the kernels that take it): the
 * forward writes relu(y), and backward's grad_y is then the gradient with
 * respect to that output, relu_y, masked as the relu's own backward would
 * (kernels/activation.cl, bit for bit): 0 where relu_y <= 0, and a NaN
 * output passes the gradient. */
real relu_of(const real v) {
    return select(v, (real)0.0f, v <= (real)0.0f);
}

real relu_masked(const real g, const real relu_y) {
    return select(g, (real)0.0f, relu_y <= (real)0.0f);
}

/* The train-mode forward's output before its relu, y = ((x - mean_hi) -
 * mean_lo) * scale + shift as one fma (normalise_channel): backward from
 * saved statistics recomputes it from the x it reads anyway, bit for bit,
 * instead of reading the relu's output for its mask (relu = RELU_FROM_X). */
typedef struct affine {
    float mean_hi, mean_lo, scale, shift;
} affine;

real affine_of(const real x, const affine a) {
    return fma((x - a.mean_hi) - a.mean_lo, (real)(a.scale), (real)(a.shift));
}

/* The kernels' relu argument: none, the mask from relu_y, or from x. */
#define RELU_FROM_Y 1
#define RELU_FROM_X 2
#define NO_AFFINE ((affine){0.0f, 0.0f, 0.0f, 0.0f})

/* A residual add fused after the layer (host/graph/plan.c), with the relu
 * after it as the kernels' relu: the forward adds skip before the relu, and
 * backward's gradient, masked by the output (RELU_FROM_Y), is also the
 * gradient of skip, written into grad_skip or added to it (accumulate).
 * Bit for bit what the add layer (kernels/combine.cl) computes apart. */
typedef struct residual {
    const __global float *skip; /* read when forward */
    __global float *grad_skip;  /* written when backward */
    int forward, backward, accumulate;
} residual;
#define NO_RESIDUAL ((residual){0, 0, 0, 0, 0})

/* The gradient g of the output at x as the relu lets it through; relu_y
 * points at the output's vector there. */
real relu_gradient(const real g, const int relu, const __global float *relu_y, const real x,
                   const affine a) {
    if (relu == RELU_FROM_Y)
        return relu_masked(g, load_real(relu_y));
    if (relu == RELU_FROM_X)
        return relu_masked(g, affine_of(x, a));
    return g;
}

/* A work-item's compensated sum: values are added in blocks of SUM_BLOCK in
 * plain float, a short chain of additions that the processor overlaps with
 * the next block, and each block's sum goes into the total with Kahan's
 * compensation, so the error stays near that of one block however long the
 * channel. (Kahan on every value is as accurate but makes every addition
 * wait for four.) The loop feeding it counts the values and calls
 * sum_flush after every SUM_BLOCK of them and once at the end. */
#define SUM_BLOCK 8

typedef struct compensated_sum {
    real total, compensation, block; /* per lane */
} compensated_sum;

compensated_sum sum_start(void) {
    compensated_sum sum = {(real)0.0f, (real)0.0f, (real)0.0f};
    return sum;
}

/* total += value with Kahan's compensation, for vectors and floats alike. */
#define KAHAN_ADD(type, total, compensation, value)                                                \
    do {                                                                                           \
        const type term_ = (value) - (compensation);                                               \
        const type next_ = (total) + term_;                                                        \
        (compensation) = (next_ - (total)) - term_;                                                \
        (total) = next_;                                                                           \
    } while (0)

void sum_flush(compensated_sum *sum) {
    KAHAN_ADD(real, sum->total, sum->compensation, sum->block);
    sum->block = (real)0.0f;
}

/* The sum of every work-item's value, returned to all of them: a fixed tree
 * in local memory. Every work-item of the group must call it. */
float group_sum(__local float *partial, const float value) {
    const int thread = get_local_id(0);
    partial[thread] = value;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int width = BATCHNORM_THREADS / 2; width > 0; width /= 2) {
        if (thread < width)
            partial[thread] += partial[thread + width];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = partial[0];
    /* Everyone has read the total before partial is used again. */
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* The plain mean of the channel's elements of x, rounded to float: the first
 * of the two passes over x that give the statistics (forward and backward
 * alike). */
float channel_mean(const __global float *x, __local float *partial, const int batch,
                   const int channels, const int channel, const int spatial) {
    compensated_sum sum = sum_start();
    int filled = 0;
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        sum.block += kept(load_at(x, &w), &w);
        if (++filled == SUM_BLOCK) {
            filled = 0;
            sum_flush(&sum);
        }
    }
    sum_flush(&sum);
    return group_sum(partial, lanes_sum(sum.total)) / (float)(batch * spatial);
}

/* The sums over the channel of d = x - rough_mean and d^2 (with_statistics)
 * and of dy and dy * d (with_gradient): the second pass of the statistics,
 * and backward's sums in the same pass (or alone, when the forward kept the
 * statistics). Callers pass both flags as constants, so each inlined copy
 * keeps only its own sums; each sum is formed the same way whichever others
 * share its pass. Every work-item of the group must call it. */
typedef struct deviation_sums {
    float s1, s2, dy, dy_d;
} deviation_sums;

deviation_sums channel_deviation_sums(const __global float *x, const __global float *grad_y,
                                      const __global float *relu_y, const int relu,
                                      const affine forward, __local float *partial,
                                      const int batch, const int channels,
                                      const int channel, const int spatial, const float rough_mean,
                                      const int with_statistics, const int with_gradient) {
    compensated_sum sum1 = sum_start(), sum2 = sum_start();
    compensated_sum dy_sum = sum_start(), dy_dev = sum_start();
    int filled = 0;
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        const real x_value = load_at(x, &w);
        const real d = kept(x_value - rough_mean, &w);
        if (with_statistics) {
            sum1.block += d;
            sum2.block += d * d;
        }
        if (with_gradient) {
            const real g = load_at(grad_y, &w);
            const real dy = kept(relu_gradient(g, relu, relu_y + w.offset, x_value, forward), &w);
            dy_sum.block += dy;
            dy_dev.block += dy * d;
        }
        if (++filled == SUM_BLOCK) {
            filled = 0;
            if (with_statistics) {
                sum_flush(&sum1);
                sum_flush(&sum2);
            }
            if (with_gradient) {
                sum_flush(&dy_sum);
                sum_flush(&dy_dev);
            }
        }
    }
    deviation_sums sums = {0.0f, 0.0f, 0.0f, 0.0f};
    if (with_statistics) {
        sum_flush(&sum1);
        sum_flush(&sum2);
        sums.s1 = group_sum(partial, lanes_sum(sum1.total));
        sums.s2 = group_sum(partial, lanes_sum(sum2.total));
    }
    if (with_gradient) {
        sum_flush(&dy_sum);
        sum_flush(&dy_dev);
        sums.dy = group_sum(partial, lanes_sum(dy_sum.total));
        sums.dy_d = group_sum(partial, lanes_sum(dy_dev.total));
    }
    return sums;
}

/* y = ((x - mean_hi) - mean_lo) * scale + shift over the channel. The mean
 * comes as the sum of two floats (the rough mean and its correction, or a
 * double split in two), so that x - mean_hi is exact where x is near the
 * mean and a deviation is exact to float rounding however large the mean. */
void normalise_channel(const __global float *x, __global float *y, const int batch,
                       const int channels, const int channel, const int spatial,
                       const float mean_hi, const float mean_lo, const float scale,
                       const float shift, const int relu, const residual *r) {
    const affine a = {mean_hi, mean_lo, scale, shift};
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        real v = affine_of(load_at(x, &w), a);
        if (r->forward)
            v += load_at(r->skip, &w);
        store_at(relu ? relu_of(v) : v, y, 0, &w);
    }
}

/*   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var  + momentum * unbiased
 * by one work-item of the channel. */
void update_running(__global float *running_mean, __global float *running_var, const int channel,
                    const float momentum, const float mean, const float unbiased) {
    running_mean[channel] = (1.0f - momentum) * running_mean[channel] + momentum * mean;
    running_var[channel] = (1.0f - momentum) * running_var[channel] + momentum * unbiased;
}

/* The input's gradient from the output's (dy, relu-masked) at x; the
 * coefficients as input_gradient below says. */
real input_gradient_of(const real dy, const real x, const float mean_hi, const float mean_lo,
                       const float mean_dy, const float k, const float scale) {
    return ((dy - mean_dy) - ((x - mean_hi) - mean_lo) * k) * scale;
}

/* dx = ((dy - mean_dy) - (x - mean) * k) * scale over the channel, with the
 * mean as two floats (normalise_channel), written into grad_x or added to it
 * (accumulate), unless want_grad_x is 0; and a residual's gradient. */
void input_gradient(const __global float *x, const __global float *grad_y,
                    const __global float *relu_y, const int relu, const affine forward,
                    __global float *grad_x, const int batch, const int channels,
                    const int channel, const int spatial, const float mean_hi,
                    const float mean_lo, const float mean_dy, const float k, const float scale,
                    const int want_grad_x, const int accumulate, const residual *r) {
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        const real x_value = load_at(x, &w);
        const real dy = relu_gradient(load_at(grad_y, &w), relu, relu_y + w.offset, x_value, forward);
        if (r->backward)
            store_at(dy, r->grad_skip, r->accumulate, &w);
        if (want_grad_x) {
            const real g = input_gradient_of(dy, x_value, mean_hi, mean_lo, mean_dy, k, scale);
            store_at(g, grad_x, accumulate, &w);
        }
    }
}

/* ---- train mode ------------------------------------------------------------------------- */

/* The statistics: the corrected two-pass algorithm (Chan, Golub and
 * LeVeque). With the rounded mean m from the first pass and d1 = x - m (exact
 * where x is near m), the second pass sums s1 = sum(d1) and s2 = sum(d1^2);
 * then the mean is m + s1 / M and the biased variance (s2 - s1^2 / M) / M.
 * Deviations are taken as d = (x - m) - s1 / M: the rounding of m alone would
 * move a deviation by up to 6e-8 |m|, much of a small one when the spread of
 * a channel is small against its mean. */

/* The end of the statistics, from the channel's rough mean, its correction
 * and the sum of squared deviations: returns the scale that y applies, and
 * the work-item `keeper` writes saved[5 * channel ...] = rough mean,
 * correction, invstd (as backward would compute it), scale and shift (with
 * save) and moves the running statistics (with update). A sum below 0 (its
 * rounding) counts as 0; a NaN stays (fmax would drop it). */
float keep_statistics(const float rough_mean, const float correction, const float deviations,
                      const float count, const float eps, const float momentum,
                      const __global float *weight, const __global float *bias,
                      __global float *running_mean, __global float *running_var,
                      __global float *saved, const int save, const int update, const int channel,
                      const int keeper) {
    const float squares = deviations < 0.0f ? 0.0f : deviations;
    const float var = squares / count;
    const float scale = weight[channel] / sqrt(var + eps);
    if (keeper && save) {
        saved[5 * channel] = rough_mean;
        saved[5 * channel + 1] = correction;
        saved[5 * channel + 2] = 1.0f / sqrt(var + eps);
        saved[5 * channel + 3] = scale;
        saved[5 * channel + 4] = bias[channel];
    }
    if (keeper && update)
        update_running(running_mean, running_var, channel, momentum, rough_mean + correction,
                       squares / (count - 1.0f));
    return scale;
}

/* y = (x - mean) / sqrt(var + eps) * weight + bias with the batch's mean and
 * biased variance var; then
 *   running_mean = (1 - momentum) * running_mean + momentum * mean
 *   running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1).
 * M = count must be at least 2 (the host checks). */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_forward_train(const __global float *restrict x, const __global float *restrict weight,
                        const __global float *restrict bias, __global float *restrict running_mean,
                        __global float *restrict running_var, __global float *restrict y,
                        __global float *restrict saved, const int save, const int relu,
                        const int batch, const int channels, const int spatial, const float eps,
                        const float momentum, const __global float *restrict skip,
                        const int has_skip) {
    __local float partial[BATCHNORM_THREADS];
    const int channel = get_group_id(0);
    const float count = (float)(batch * spatial);
    const float rough_mean = channel_mean(x, partial, batch, channels, channel, spatial);
    const deviation_sums sums = channel_deviation_sums(
        x, x, x, 0, NO_AFFINE, partial, batch, channels, channel, spatial, rough_mean, 1, 0);
    const float correction = sums.s1 / count;
    /* sum((x - mean)^2), never below 0; a NaN stays (fmax would drop it) */
    const float deviations = sums.s2 - sums.s1 * correction;
    const float scale = keep_statistics(rough_mean, correction, deviations, count, eps, momentum,
                                        weight, bias, running_mean, running_var, saved, save, 1,
                                        channel, get_local_id(0) == 0);
    const residual r = {skip, 0, has_skip, 0, 0};
    normalise_channel(x, y, batch, channels, channel, spatial, rough_mean, correction, scale,
                      bias[channel], relu, &r);
}

/* The gradients of the train-mode forward, PyTorch's formula: with
 * x_hat = (x - mean) * invstd and M = count,
 *   grad_weight = sum(dy * x_hat), grad_bias = sum(dy) (overwritten)
 *   dx = weight * invstd * (dy - sum(dy) / M - x_hat * sum(dy * x_hat) / M)
 * written into grad_x (accumulate = 0) or added to it (1); with want_grad_x =
 * 0 grad_x is not touched (any buffer may be passed). From the channel's
 * rough mean, its correction (mean = rough_mean + correction), invstd and
 * the gradient's sums about the rough mean. */
typedef struct gradient_coefficients {
    float grad_weight, grad_bias, mean_dy, k, scale;
} gradient_coefficients;

/* From the sums of dy and dy * d1 with d1 = x - rough_mean: sum(dy * (x -
 * mean)) = sum(dy * d1) - correction * sum(dy), which times invstd is
 * sum(dy * x_hat); and dx = (dy - mean_dy - (x - mean) * k) * invstd *
 * weight with k = sum(dy * (x - mean)) * invstd^2 / M (as PyTorch's CPU
 * kernel). */
gradient_coefficients gradient_coefficients_of(const float sum_dy, const float sum_dy_d,
                                               const float correction, const float invstd,
                                               const float weight, const float count) {
    const float sum_dy_dev = sum_dy_d - correction * sum_dy;
    const gradient_coefficients g = {sum_dy_dev * invstd, sum_dy, sum_dy / count,
                                     sum_dy_dev * invstd * invstd / count, invstd * weight};
    return g;
}

void backward_from_sums(const __global float *x, const __global float *grad_y,
                        const __global float *relu_y, const int relu, const affine forward,
                        const __global float *weight, __global float *grad_x,
                        __global float *grad_weight, __global float *grad_bias,
                        const int batch, const int channels, const int channel,
                        const int spatial, const float rough_mean,
                        const float correction, const float invstd, const deviation_sums *sums,
                        const int want_grad_x, const int accumulate, const residual *r) {
    const gradient_coefficients g = gradient_coefficients_of(
        sums->dy, sums->dy_d, correction, invstd, weight[channel], (float)(batch * spatial));
    if (get_local_id(0) == 0) {
        grad_weight[channel] = g.grad_weight;
        grad_bias[channel] = g.grad_bias;
    }
    if (!want_grad_x && !r->backward)
        return;
    input_gradient(x, grad_y, relu_y, relu, forward, grad_x, batch, channels, channel, spatial,
                   rough_mean, correction, g.mean_dy, g.k, g.scale, want_grad_x, accumulate, r);
}

/* Backward that recomputes the statistics as the forward computed them:
 * one pass for the mean, one for the deviations' and the gradient's sums. */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_backward(const __global float *restrict x, const __global float *restrict grad_y,
                   const __global float *restrict relu_y, const int relu,
                   const __global float *restrict weight, __global float *restrict grad_x,
                   __global float *restrict grad_weight, __global float *restrict grad_bias,
                   const int batch, const int channels, const int spatial, const float eps,
                   const int want_grad_x, const int accumulate, __global float *restrict grad_skip,
                   const int want_grad_skip, const int accumulate_skip) {
    __local float partial[BATCHNORM_THREADS];
    const int channel = get_group_id(0);
    const float count = (float)(batch * spatial);
    const residual r = {0, grad_skip, 0, want_grad_skip, accumulate_skip};
    const float rough_mean = channel_mean(x, partial, batch, channels, channel, spatial);
    const deviation_sums sums =
        channel_deviation_sums(x, grad_y, relu_y, relu, NO_AFFINE, partial, batch, channels,
                               channel, spatial, rough_mean, 1, 1);
    const float correction = sums.s1 / count;
    const float deviations = sums.s2 - sums.s1 * correction;
    const float var = (deviations < 0.0f ? 0.0f : deviations) / count;
    const float invstd = 1.0f / sqrt(var + eps);
    backward_from_sums(x, grad_y, relu_y, relu, NO_AFFINE, weight, grad_x, grad_weight, grad_bias,
                       batch, channels, channel, spatial, rough_mean, correction, invstd, &sums,
                       want_grad_x, accumulate, &r);
}

/* The same with the statistics batchnorm_forward_train kept (saved[5 *
 * channel ...] = rough mean, correction, invstd, bit for bit what
 * batchnorm_backward recomputes, then the forward's scale and shift): one
 * pass fewer over x, the same result. A relu fused into the forward (relu
 * = 1) is masked by the output recomputed from x (RELU_FROM_X), so its
 * output is not read; after a fused residual add (has_residual), by the
 * output relu_y itself. */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_backward_saved(const __global float *restrict x, const __global float *restrict grad_y,
                         const int relu, const __global float *restrict weight,
                         const __global float *restrict saved, __global float *restrict grad_x,
                         __global float *restrict grad_weight, __global float *restrict grad_bias,
                         const int batch, const int channels, const int spatial,
                         const int want_grad_x, const int accumulate,
                         const __global float *restrict relu_y, const int has_residual,
                         __global float *restrict grad_skip, const int want_grad_skip,
                         const int accumulate_skip) {
    __local float partial[BATCHNORM_THREADS];
    const int channel = get_group_id(0);
    const __global float *stats = saved + 5 * channel;
    const affine forward = {stats[0], stats[1], stats[3], stats[4]};
    const int mask = !relu ? 0 : has_residual ? RELU_FROM_Y : RELU_FROM_X;
    const residual r = {0, grad_skip, 0, want_grad_skip, accumulate_skip};
    const deviation_sums sums = channel_deviation_sums(x, grad_y, relu_y, mask, forward, partial,
                                                       batch, channels, channel, spatial, stats[0],
                                                       0, 1);
    backward_from_sums(x, grad_y, relu_y, mask, forward, weight, grad_x, grad_weight, grad_bias,
                       batch, channels, channel, spatial, stats[0], stats[1], stats[2], &sums,
                       want_grad_x, accumulate, &r);
}

/* ---- train mode on CPUs: planes in memory order ------------------------------------------ */

/* On CPUs (host/ops/batchnorm.c: contiguous walks, planes of at least 8
 * floats) the train-mode forward and backward run as three launches each
 * over the planes (image, channel), walked in memory order, instead of a
 * work-group per channel, whose walk jumps channels * spatial floats at
 * every plane and whose passes over a channel run on one core: 16 channels
 * of 28x28, batch 64, ran at a third of the cache's bandwidth so.
 *
 *   forward:  batchnorm_plane_moments, batchnorm_channel_statistics,
 *             batchnorm_normalise_planes
 *   backward: batchnorm_plane_gradient_sums, batchnorm_channel_gradient,
 *             batchnorm_input_gradient_planes
 *
 * The statistics are those of the channel kernels, combined another way:
 * each plane's sums of d = x - s and d^2 about a shift s near its mean m_p
 * (batchnorm_plane_moments), then per channel the rough mean m (the
 * planes' shifts' mean), the correction (the mean of the planes' means
 * less m) and the squares, the within-plane ones plus spatial times each
 * plane mean's squared deviation from the channel's (Chan, Golub and
 * LeVeque's pairwise update): every term is a sum of squares, the
 * within-plane ones with at most 4/3 times their sums' rounding. Backward
 * sums dy and dy * (x - m) per plane, then per channel.
 * Each sum is compensated, in a fixed order: every run gives the same bits.
 *
 * The plane kernels: work-item i takes the planes_per_item planes from i *
 * planes_per_item on, any work-group size, global size ceil(planes /
 * planes_per_item); the channel kernels: one work-item per channel, global
 * size at least channels. spatial >= BATCHNORM_VW. */

/* The vectors of a plane, in order: offset 0, VW, 2 VW, ... and, where VW
 * does not divide spatial, a last vector of the plane's last VW floats whose
 * first `skip` lanes repeat the vector before (kept_lanes, store_lanes). The
 * whole vectors make a plain loop of their own (part 0), which PoCL runs at
 * 1.5 times the speed of one loop that works out each step's skip (16
 * channels of 28x28, batch 64, AMD EPYC with AVX-512); the last vector is
 * part 1. */
#define FOR_EACH_PLANE_VECTOR(offset, skip, spatial)                                               \
    for (int part_ = 0, skip = 0; part_ < 2;                                                       \
         part_++, skip = BATCHNORM_VW - (spatial) % BATCHNORM_VW)                                  \
        for (int offset = part_ ? (spatial)-BATCHNORM_VW : 0,                                      \
                 end_ = !part_ ? (spatial)-BATCHNORM_VW + 1                                        \
                        : (spatial) % BATCHNORM_VW ? (spatial)-BATCHNORM_VW + 1                    \
                                                   : 0;                                            \
             offset < end_; offset += BATCHNORM_VW)

/* Work-item get_global_id(0)'s planes, each with its first float's offset
 * and its channel. */
#define FOR_EACH_PLANE(plane, base, channel, planes, channels, spatial, planes_per_item)           \
    for (int plane = get_global_id(0) * (planes_per_item),                                         \
             plane##_end = min(plane + (planes_per_item), planes),                                 \
             base = plane * (spatial), channel = plane % (channels);                               \
         plane < plane##_end;                                                                      \
         plane++, base += (spatial), channel = plane % (channels))

/* a into s1 and b into s2, two compensated sums that run in step: both
 * flush after every SUM_BLOCK values (filled counts them). A macro, so that
 * a product b joins its addition in one multiply-add, as written out. */
#define ADD_IN_STEP(s1, s2, a, b, filled)                                                          \
    do {                                                                                           \
        (s1).block += (a);                                                                         \
        (s2).block += (b);                                                                         \
        if (++(filled) == SUM_BLOCK) {                                                             \
            (filled) = 0;                                                                          \
            sum_flush(&(s1));                                                                      \
            sum_flush(&(s2));                                                                      \
        }                                                                                          \
    } while (0)

/* A compensated sum of floats, one term at a time (the channel kernels'
 * sums over a channel's planes). */
typedef struct scalar_sum {
    float total, compensation;
} scalar_sum;

void scalar_add(scalar_sum *sum, const float value) {
    KAHAN_ADD(float, sum->total, sum->compensation, value);
}

/* sum(x - shift) and sum((x - shift)^2) over one plane at in. */
void shifted_sums(const __global float *in, const int spatial, const float shift,
                  float *deviations, float *squares) {
    compensated_sum sum1 = sum_start(), sum2 = sum_start();
    int filled = 0;
    FOR_EACH_PLANE_VECTOR(offset, skip, spatial) {
        const real d = kept_lanes(load_real(in + offset) - shift, skip);
        ADD_IN_STEP(sum1, sum2, d, d * d, filled);
    }
    sum_flush(&sum1);
    sum_flush(&sum2);
    *deviations = lanes_sum(sum1.total);
    *squares = lanes_sum(sum2.total);
}

/* moments[3 * plane ...] = s, sum(x - s), sum((x - s)^2) about a shift s
 * near the plane's mean m_p, which the channel kernel takes as it comes
 * (plane_deviation, the within-plane squares): first the mean of the
 * plane's first vector, in one pass; where that lies far from m_p (the
 * squared sum of deviations over spatial above a quarter of the sum of
 * squares; below it their difference keeps three quarters of the sum of
 * squares, and at most 4/3 times the sums' rounding), a second pass about
 * m_p, in the L1 cache (NaNs and infinities too). Every
 * plane had taken two passes, the first for m_p: one took the train-mode
 * forward (moments, statistics, normalisation) to 0.90 of its time at 16
 * channels of 28x28, 0.94 at 32 of 14x14 and 1.0 at 64 of 7x7 (batch 128,
 * alternated call by call, AMD EPYC Zen 3). */
__kernel void batchnorm_plane_moments(const __global float *restrict x,
                                      __global float *restrict moments, const int planes,
                                      const int channels, const int spatial,
                                      const int planes_per_item) {
    FOR_EACH_PLANE(plane, base, channel, planes, channels, spatial, planes_per_item) {
        const __global float *in = x + base;
        float shift = lanes_sum(load_real(in)) / (float)BATCHNORM_VW, deviations, squares;
        shifted_sums(in, spatial, shift, &deviations, &squares);
        if (!(deviations * (deviations / (float)spatial) <= 0.25f * squares)) {
            shift += deviations / (float)spatial;
            shifted_sums(in, spatial, shift, &deviations, &squares);
        }
        moments[3 * plane] = shift;
        moments[3 * plane + 1] = deviations;
        moments[3 * plane + 2] = squares;
    }
}

/* A plane's mean less the rough mean: (s - m) + sum(x - s) / spatial. */
float plane_deviation(const __global float *moments, const float rough_mean, const float spatial) {
    return (moments[0] - rough_mean) + moments[1] / spatial;
}

/* The channel's statistics from its planes' moments, kept as
 * batchnorm_forward_train keeps them (keep_statistics; with update the
 * running statistics move). */
__kernel void batchnorm_channel_statistics(
    const __global float *restrict moments, const __global float *restrict weight,
    const __global float *restrict bias, __global float *restrict running_mean,
    __global float *restrict running_var, __global float *restrict saved, const int batch,
    const int channels, const int spatial, const float eps, const float momentum,
    const int update) {
    const int channel = get_global_id(0);
    if (channel >= channels)
        return;
    const __global float *first = moments + 3 * channel;
    const int step = 3 * channels;
    const float per_plane = (float)spatial;
    scalar_sum means = {0.0f, 0.0f}, deviations = {0.0f, 0.0f}, squares = {0.0f, 0.0f};
    for (int n = 0; n < batch; n++)
        scalar_add(&means, first[n * step]);
    const float rough_mean = means.total / (float)batch;
    for (int n = 0; n < batch; n++)
        scalar_add(&deviations, plane_deviation(first + n * step, rough_mean, per_plane));
    const float correction = deviations.total / (float)batch;
    for (int n = 0; n < batch; n++) {
        const __global float *m = first + n * step;
        const float within = m[2] - m[1] * (m[1] / per_plane);
        const float between = plane_deviation(m, rough_mean, per_plane) - correction;
        scalar_add(&squares, (within < 0.0f ? 0.0f : within) + per_plane * between * between);
    }
    keep_statistics(rough_mean, correction, squares.total, (float)(batch * spatial), eps,
                    momentum, weight, bias, running_mean, running_var, saved, 1, update, channel,
                    1);
}

/* The affine map that saved[5 * channel ...] keeps. A macro: Oclgrind
 * (21.10) cannot run the noalias scope that inlining a function returning
 * a struct leaves behind. */
#define SAVED_AFFINE(saved, channel)                                                               \
    ((affine){(saved)[5 * (channel)], (saved)[5 * (channel) + 1], (saved)[5 * (channel) + 3],      \
              (saved)[5 * (channel) + 4]})

/* y = relu?(((x - mean_hi) - mean_lo) * scale + shift (+ skip)), as
 * normalise_channel; streamed as batchnorm_forward_eval_planes where stream. */
__kernel void batchnorm_normalise_planes(const __global float *restrict x,
                                         const __global float *restrict saved,
                                         __global float *restrict y,
                                         const __global float *restrict skip, const int has_skip,
                                         const int relu, const int planes, const int channels,
                                         const int spatial, const int stream,
                                         const int planes_per_item) {
    FOR_EACH_PLANE(plane, base, channel, planes, channels, spatial, planes_per_item) {
        const affine a = SAVED_AFFINE(saved, channel);
        const int streamed = STREAMS_PLANE(stream, y + base);
        FOR_EACH_PLANE_VECTOR(offset, lanes_skipped, spatial) {
            real v = affine_of(load_real(x + base + offset), a);
            if (has_skip)
                v += load_real(skip + base + offset);
            store_plane_lanes(relu ? relu_of(v) : v, y + base + offset, lanes_skipped, 0,
                              streamed);
        }
    }
    if (stream)
        stream_fence();
}

/* sums[2 * plane ...] = sum(dy), sum(dy * (x - rough mean)), dy masked by
 * the relu (relu: 0, RELU_FROM_Y or RELU_FROM_X, as batchnorm_backward_saved). */
__kernel void batchnorm_plane_gradient_sums(
    const __global float *restrict x, const __global float *restrict grad_y,
    const __global float *restrict relu_y, const int relu, const __global float *restrict saved,
    __global float *restrict sums, const int planes, const int channels, const int spatial,
    const int planes_per_item) {
    FOR_EACH_PLANE(plane, base, channel, planes, channels, spatial, planes_per_item) {
        const affine forward = SAVED_AFFINE(saved, channel);
        compensated_sum dy_sum = sum_start(), dy_dev = sum_start();
        int filled = 0;
        FOR_EACH_PLANE_VECTOR(offset, skip, spatial) {
            const int at = base + offset;
            const real x_value = load_real(x + at);
            const real dy = kept_lanes(
                relu_gradient(load_real(grad_y + at), relu, relu_y + at, x_value, forward), skip);
            ADD_IN_STEP(dy_sum, dy_dev, dy, dy * kept_lanes(x_value - forward.mean_hi, skip),
                        filled);
        }
        sum_flush(&dy_sum);
        sum_flush(&dy_dev);
        sums[2 * plane] = lanes_sum(dy_sum.total);
        sums[2 * plane + 1] = lanes_sum(dy_dev.total);
    }
}

/* The channel's gradients from its planes' sums: grad_weight and grad_bias,
 * and coefficients[3 * channel ...] = mean_dy, k, scale for
 * batchnorm_input_gradient_planes (gradient_coefficients_of). */
__kernel void batchnorm_channel_gradient(const __global float *restrict sums,
                                         const __global float *restrict saved,
                                         const __global float *restrict weight,
                                         __global float *restrict grad_weight,
                                         __global float *restrict grad_bias,
                                         __global float *restrict coefficients, const int batch,
                                         const int channels, const int spatial) {
    const int channel = get_global_id(0);
    if (channel >= channels)
        return;
    scalar_sum dy = {0.0f, 0.0f}, dy_d = {0.0f, 0.0f};
    for (int n = 0; n < batch; n++) {
        const __global float *s = sums + 2 * (n * channels + channel);
        scalar_add(&dy, s[0]);
        scalar_add(&dy_d, s[1]);
    }
    const gradient_coefficients g =
        gradient_coefficients_of(dy.total, dy_d.total, saved[5 * channel + 1],
                                 saved[5 * channel + 2], weight[channel], (float)(batch * spatial));
    grad_weight[channel] = g.grad_weight;
    grad_bias[channel] = g.grad_bias;
    coefficients[3 * channel] = g.mean_dy;
    coefficients[3 * channel + 1] = g.k;
    coefficients[3 * channel + 2] = g.scale;
}

/* grad_x (want_grad_x; added with accumulate) and a residual's gradient
 * (want_grad_skip; added with accumulate_skip), as input_gradient. */
__kernel void batchnorm_input_gradient_planes(
    const __global float *restrict x, const __global float *restrict grad_y,
    const __global float *restrict relu_y, const int relu, const __global float *restrict saved,
    const __global float *restrict coefficients, __global float *restrict grad_x,
    const int want_grad_x, const int accumulate, __global float *restrict grad_skip,
    const int want_grad_skip, const int accumulate_skip, const int planes, const int channels,
    const int spatial, const int stream, const int planes_per_item) {
    FOR_EACH_PLANE(plane, base, channel, planes, channels, spatial, planes_per_item) {
        const affine forward = SAVED_AFFINE(saved, channel);
        const __global float *c = coefficients + 3 * channel;
        const float mean_dy = c[0], k = c[1], scale = c[2];
        const int skip_streamed = STREAMS_PLANE(stream, grad_skip + base);
        const int x_streamed = STREAMS_PLANE(stream, grad_x + base);
        FOR_EACH_PLANE_VECTOR(offset, skip, spatial) {
            const int at = base + offset;
            const real x_value = load_real(x + at);
            const real dy =
                relu_gradient(load_real(grad_y + at), relu, relu_y + at, x_value, forward);
            if (want_grad_skip)
                store_plane_lanes(dy, grad_skip + at, skip, accumulate_skip, skip_streamed);
            if (want_grad_x)
                store_plane_lanes(input_gradient_of(dy, x_value, forward.mean_hi,
                                                    forward.mean_lo, mean_dy, k, scale),
                                  grad_x + at, skip, accumulate, x_streamed);
        }
    }
    if (stream)
        stream_fence();
}

/* ---- synchronised across ranks -------------------------------------------------------------- */

/* Data-parallel training normalises with the statistics of the ranks'
 * global batch (host/ops/batchnorm.c): each rank sums its own share
 * (batchnorm_moments), the host combines every rank's sums, and
 * batchnorm_forward_apply or batchnorm_backward_apply finish with what
 * that gave. */

/* moments[fields * channel ...] = rough mean, sum(d), sum(d^2) and, with
 * with_gradient, sum(dy), sum(dy * d), with d = x - rough mean (fields = 3,
 * or 5 with with_gradient): sums about a rough mean, from which the host
 * forms the channel's mean and sum of squared deviations exactly. grad_y is
 * read only with with_gradient (any buffer may be passed). batch >= 1. */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_moments(const __global float *restrict x, const __global float *restrict grad_y,
                  __global float *restrict moments, const int batch, const int channels,
                  const int spatial, const int with_gradient) {
    __local float partial[BATCHNORM_THREADS];
    const int channel = get_group_id(0);
    const float rough_mean = channel_mean(x, partial, batch, channels, channel, spatial);
    deviation_sums sums;
    if (with_gradient)
        sums = channel_deviation_sums(x, grad_y, x, 0, NO_AFFINE, partial, batch, channels, channel,
                                      spatial, rough_mean, 1, 1);
    else
        sums = channel_deviation_sums(x, grad_y, x, 0, NO_AFFINE, partial, batch, channels, channel,
                                      spatial, rough_mean, 1, 0);
    if (get_local_id(0) == 0) {
        __global float *m = moments + (with_gradient ? 5 : 3) * channel;
        m[0] = rough_mean;
        m[1] = sums.s1;
        m[2] = sums.s2;
        if (with_gradient) {
            m[3] = sums.dy;
            m[4] = sums.dy_d;
        }
    }
}

/* The train-mode forward with the global batch's statistics: statistics[4 *
 * channel ...] = the mean as two floats (hi, lo), the biased variance and
 * the unbiased one. y = (x - mean) / sqrt(var + eps) * weight + bias and the
 * running statistics move as in batchnorm_forward_train. batch may be 0 (a
 * rank without images): only the running statistics change. */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_forward_apply(const __global float *restrict x, const __global float *restrict weight,
                        const __global float *restrict bias,
                        const __global float *restrict statistics,
                        __global float *restrict running_mean, __global float *restrict running_var,
                        __global float *restrict y, const int batch, const int channels,
                        const int spatial, const float eps, const float momentum) {
    const int channel = get_group_id(0);
    const __global float *s = statistics + 4 * channel;
    const float scale = weight[channel] / sqrt(s[2] + eps);
    const residual none = NO_RESIDUAL;
    normalise_channel(x, y, batch, channels, channel, spatial, s[0], s[1], scale, bias[channel], 0,
                      &none);
    if (get_local_id(0) == 0)
        update_running(running_mean, running_var, channel, momentum, s[0], s[3]);
}

/* The backward of the train-mode forward with the global batch's
 * statistics: coefficients[7 * channel ...] = the mean as two floats (hi,
 * lo), invstd, mean_dy, k, this rank's grad_weight and grad_bias; dx =
 * ((dy - mean_dy) - (x - mean) * k) * invstd * weight into grad_x (accumulate:
 * added), unless want_grad_x is 0 (then grad_x is not touched). */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_backward_apply(const __global float *restrict x, const __global float *restrict grad_y,
                         const __global float *restrict weight,
                         const __global float *restrict coefficients,
                         __global float *restrict grad_x, __global float *restrict grad_weight,
                         __global float *restrict grad_bias, const int batch, const int channels,
                         const int spatial, const int want_grad_x, const int accumulate) {
    const int channel = get_group_id(0);
    const __global float *s = coefficients + 7 * channel;
    if (get_local_id(0) == 0) {
        grad_weight[channel] = s[5];
        grad_bias[channel] = s[6];
    }
    if (!want_grad_x)
        return;
    const residual none = NO_RESIDUAL;
    input_gradient(x, grad_y, x, 0, NO_AFFINE, grad_x, batch, channels, channel, spatial, s[0],
                   s[1], s[3], s[4], s[2] * weight[channel], 1, accumulate, &none);
}

/* ---- eval mode -------------------------------------------------------------------------- */

/* y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, one
 * work-group per channel as the train-mode kernels (no division per element). */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void batchnorm_forward_eval(
    const __global float *restrict x, const __global float *restrict weight,
    const __global float *restrict bias, const __global float *restrict running_mean,
    const __global float *restrict running_var, __global float *restrict y, const int batch,
    const int channels, const int spatial, const float eps, const int relu) {
    const int channel = get_group_id(0);
    const float mean = running_mean[channel];
    const float scale = weight[channel] / sqrt(running_var[channel] + eps);
    const float shift = bias[channel];
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        const real v = (load_at(x, &w) - mean) * scale + shift;
        store_at(relu ? relu_of(v) : v, y, 0, &w);
    }
}

/* The eval-mode forward on CPUs (contiguous walks), which has no sums to
 * keep a channel in one work-group: work-item i takes the planes_per_item
 * planes (image, channel) from i * planes_per_item on and walks them in
 * memory order. Channel by channel, the walk jumps channels * spatial floats
 * at every plane and the processor's prefetchers start over each time: 64
 * channels of 56x56, batch 32, ran at 40 GB/s in that order against 90 in
 * memory order (AMD EPYC, AVX-512). A plane's floats past its last whole
 * vector go one at a time. Any work-group size; global size
 * ceil(batch * channels / planes_per_item). */
__kernel void batchnorm_forward_eval_planes(
    const __global float *restrict x, const __global float *restrict weight,
    const __global float *restrict bias, const __global float *restrict running_mean,
    const __global float *restrict running_var, __global float *restrict y, const int batch,
    const int channels, const int spatial, const float eps, const int relu, const int stream,
    const int planes_per_item) {
    const int first = get_global_id(0) * planes_per_item;
    const int end = min(first + planes_per_item, batch * channels);
    for (int plane = first; plane < end; plane++) {
        const int channel = plane % channels;
        const float mean = running_mean[channel];
        const float scale = weight[channel] / sqrt(running_var[channel] + eps);
        const float shift = bias[channel];
        const __global float *in = x + plane * spatial;
        __global float *out = y + plane * spatial;
        const int streamed = STREAMS_PLANE(stream, out);
        int i = 0;
        for (; i + BATCHNORM_VW <= spatial; i += BATCHNORM_VW) {
            const real v = (load_real(in + i) - mean) * scale + shift;
            store_plane_lanes(relu ? relu_of(v) : v, out + i, 0, 0, streamed);
        }
        for (; i < spatial; i++) {
            const float v = (in[i] - mean) * scale + shift;
            out[i] = relu && v <= 0.0f ? 0.0f : v;
        }
    }
    /* Once a work-item: a fence after each plane's stores had cost half of
     * what streaming gains. */
    if (stream)
        stream_fence();
}

/* The gradients of the eval-mode forward, an affine map per channel with
 * invstd = 1 / sqrt(running_var + eps):
 *   grad_weight = sum(dy * (x - running_mean)) * invstd, grad_bias = sum(dy)
 *   dx = dy * weight * invstd  (written, added with accumulate, or skipped) */
__kernel __attribute__((reqd_work_group_size(BATCHNORM_THREADS, 1, 1))) void
batchnorm_backward_eval(const __global float *restrict x, const __global float *restrict grad_y,
                        const __global float *restrict weight,
                        const __global float *restrict running_mean,
                        const __global float *restrict running_var, __global float *restrict grad_x,
                        __global float *restrict grad_weight, __global float *restrict grad_bias,
                        const int batch, const int channels, const int spatial, const float eps,
                        const int want_grad_x, const int want_params, const int accumulate) {
    __local float partial[BATCHNORM_THREADS];
    const int channel = get_group_id(0);
    const float mean = running_mean[channel];
    const float invstd = 1.0f / sqrt(running_var[channel] + eps);
    /* The sums run even when only grad_x is wanted: their group_sum
     * barriers stay out of conditional code. */
    compensated_sum dy_sum = sum_start(), dy_dev = sum_start();
    int filled = 0;
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        const real dy = kept(load_at(grad_y, &w), &w);
        dy_sum.block += dy;
        dy_dev.block += dy * kept(load_at(x, &w) - mean, &w);
        if (++filled == SUM_BLOCK) {
            filled = 0;
            sum_flush(&dy_sum);
            sum_flush(&dy_dev);
        }
    }
    sum_flush(&dy_sum);
    sum_flush(&dy_dev);
    const float sum_dy = group_sum(partial, lanes_sum(dy_sum.total));
    const float sum_dy_dev = group_sum(partial, lanes_sum(dy_dev.total));
    if (want_params && get_local_id(0) == 0) {
        grad_weight[channel] = sum_dy_dev * invstd;
        grad_bias[channel] = sum_dy;
    }
    if (!want_grad_x)
        return;
    const float scale = weight[channel] * invstd;
    FOR_EACH_VECTOR(w, batch, spatial, channels, channel) {
        const real g = load_at(grad_y, &w) * scale;
        store_at(g, grad_x, accumulate, &w);
    }
}

/* ---- folding into the layer before -------------------------------------------------------- */

/* With scale = bn_weight / sqrt(running_var + eps):
 *   folded_weight[c, k] = weight[c, k] * scale[c]                 (k < per_channel)
 *   folded_bias[c] = (bias[c] - running_mean[c]) * scale[c] + bn_bias[c]
 * (bias 0 without has_bias). One work-item per folded value, any work-group
 * size: items [0, channels * per_channel) the weights, the next `channels`
 * the biases. */
__kernel void
batchnorm_fold(const __global float *restrict weight, const __global float *restrict bias,
               const int has_bias, const __global float *restrict bn_weight,
               const __global float *restrict bn_bias, const __global float *restrict running_mean,
               const __global float *restrict running_var, __global float *restrict folded_weight,
               __global float *restrict folded_bias, const int channels, const int per_channel,
               const float eps) {
    const int i = get_global_id(0);
    const int weights = channels * per_channel;
    if (i < weights) {
        const int c = i / per_channel;
        folded_weight[i] = weight[i] * (bn_weight[c] / sqrt(running_var[c] + eps));
    } else if (i < weights + channels) {
        const int c = i - weights;
        const float b = has_bias ? bias[c] : 0.0f;
        folded_bias[c] =
            (b - running_mean[c]) * (bn_weight[c] / sqrt(running_var[c] + eps)) + bn_bias[c];
    }
}
