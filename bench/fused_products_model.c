/* A model, in plain C on one core, of the products loop of
 * kernels/conv2d_winograd.cl's winograd_fused, to tell what bounds it
 * (bench/RESULTS.md, stop 57):
 *
 *   cc -O2 -march=native -ffp-contract=fast bench/fused_products_model.c
 *   ./a.out [CHANNELS]
 *
 * A work-item of the fused kernel holds the transformed tiles of every
 * input channel (V: 16 parts x C vectors), and for each part multiplies
 * them by K output channels' filters, one multiply-add a channel into K
 * accumulators (the filter value broadcast from memory), which it then
 * stores (M) for the output transform. Each accumulator thus takes C
 * multiply-adds between its zeroing and its store: at 16 channels, a store
 * every 16 multiply-adds. The model times three versions of the loop with
 * the same multiply-adds: the accumulators never stored (the loop's
 * ceiling), stored after each part (M), and stored with V written anew for
 * each work-item as the input transform writes it. Vectors of 16 floats and
 * K = 16 where the compiler targets AVX-512, else 8 and 8; GFLOP/s of one
 * core, the fastest of five runs. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The tuner's first fused configuration: 16 output channels on AVX-512's
 * 32 registers, 8 on AVX2's 16. */
#ifdef __AVX512F__
#define LANES 16
#define K 16
#else
#define LANES 8
#define K 8
#endif
typedef float vec __attribute__((vector_size(4 * LANES)));

enum { PARTS = 16, MAX_C = 256, ITEMS = 20000, RUNS = 5 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float u[PARTS * MAX_C * K] __attribute__((aligned(64)));
static vec v[PARTS * MAX_C], m[PARTS * K];

/* One part's products for K channels over C inputs, into acc. */
static inline void products(const float *uu, const vec *tiles, int channels, vec *acc) {
#pragma GCC unroll 16
    for (int j = 0; j < K; j++)
        acc[j] = (vec){0};
    for (int c = 0; c < channels; c++) {
        const vec x = tiles[c];
#pragma GCC unroll 16
        for (int j = 0; j < K; j++)
            acc[j] += uu[c * K + j] * x;
    }
}

/* Seconds a work-item, fastest of RUNS: mode 0 never stores, 1 stores M, 2
 * also writes V anew each work-item. */
static double time_mode(int mode, int channels) {
    double best = 1e30;
    for (int run = 0; run < RUNS; run++) {
        vec kept[K] = {{0}};
        const double start = seconds();
        for (int item = 0; item < ITEMS; item++) {
            if (mode == 2)
                for (int i = 0; i < PARTS * channels; i++)
                    v[i] = (vec){0} + (float)(i + item);
            for (int part = 0; part < PARTS; part++) {
                vec acc[K];
                products(u + (size_t)part * channels * K, v + part * channels, channels, acc);
#pragma GCC unroll 16
                for (int j = 0; j < K; j++) {
                    if (mode == 0)
                        kept[j] += acc[j];
                    else
                        m[part * K + j] = acc[j];
                }
            }
            __asm__ volatile("" ::: "memory");
        }
        const double each = (seconds() - start) / ITEMS;
        if (each < best)
            best = each;
        for (int j = 0; j < K; j++)
            m[j] += kept[j];
    }
    return best;
}

int main(int argc, char **argv) {
    const int channels = argc > 1 ? atoi(argv[1]) : 16;
    if (channels < 1 || channels > MAX_C) {
        fprintf(stderr, "usage: %s [CHANNELS, 1 to %d]\n", argv[0], MAX_C);
        return 2;
    }
    for (int i = 0; i < PARTS * MAX_C * K; i++)
        u[i] = 1e-6f * (float)(i % 977);
    for (int i = 0; i < PARTS * MAX_C; i++)
        v[i] = (vec){0} + 1e-3f * (float)(i % 101);
    const char *names[3] = {"accumulators never stored", "accumulators stored (M)",
                            "M stored, V written each work-item"};
    const double flops = 2.0 * PARTS * K * channels * LANES;
    printf("%d input channels, %d output channels, vectors of %d floats\n", channels, K, LANES);
    for (int mode = 0; mode < 3; mode++)
        printf("%-36s %6.1f GFLOP/s\n", names[mode], flops / time_mode(mode, channels) * 1e-9);
    return m[0][0] == 1234.5f;
}
