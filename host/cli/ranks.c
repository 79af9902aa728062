/* The ranks of `mpirun -np N clcnn train`, through clcnn_mpi when the tool
 * is built with it (CLCNN_WITH_MPI). Every function also serves a single
 * process, rank 0 of 1, so that the train command has one code path. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CLCNN_WITH_MPI
#include "clcnn_mpi.h"
#endif

#ifndef CLCNN_WITH_MPI
/* The world size a launcher announces, read before MPI is initialised (1
 * when none did). */
static int launcher_size(void) {
    static const char *const variables[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", NULL};
    for (int i = 0; variables[i]; i++) {
        const char *value = getenv(variables[i]);
        if (value && atoi(value) > 1)
            return atoi(value);
    }
    return 1;
}
#endif

int cli_ranks_start(cli_ranks *r) {
    memset(r, 0, sizeof(*r));
    r->size = 1;
#ifdef CLCNN_WITH_MPI
    if (!clcnn_mpi_launched())
        return 0;
    clcnn_mpi *mpi = clcnn_mpi_create(NULL, NULL);
    if (!mpi)
        return cli_fail("out of memory");
    r->mpi = mpi;
    r->rank = clcnn_mpi_rank(mpi);
    r->size = clcnn_mpi_size(mpi);
    if (r->size > 1) {
        static char prefix[64];
        snprintf(prefix, sizeof(prefix), "rank %d of %d: ", r->rank, r->size);
        cli_set_message_prefix(prefix);
    }
    return 0;
#else
    if (launcher_size() > 1)
        return cli_fail("started by an MPI launcher as one of %d processes, but this clcnn was "
                        "built without MPI (install libopenmpi-dev and rebuild): each would train "
                        "alone",
                        launcher_size());
    return 0;
#endif
}

void cli_ranks_end(cli_ranks *r) {
#ifdef CLCNN_WITH_MPI
    clcnn_mpi_destroy(r->mpi);
#endif
    r->mpi = NULL;
}

void cli_ranks_abort(cli_ranks *r) {
    if (r->size < 2)
        return;
    fprintf(stderr, "clcnn: rank %d of %d failed: stopping every rank\n", r->rank, r->size);
    fflush(stdout);
    fflush(stderr);
#ifdef CLCNN_WITH_MPI
    clcnn_mpi_abort(r->mpi, 1);
#endif
}

void cli_ranks_pick_device(const cli_ranks *r, cli_common *common) {
#ifdef CLCNN_WITH_MPI
    /* --device-index or CLCNN_DEVICE say which device; otherwise the local rank does. */
    if (!r->mpi || common->device != CLCNN_DEVICE_OPENCL || common->device_index >= 0 ||
        getenv("CLCNN_DEVICE"))
        return;
    if (common->platform_index < 0)
        common->platform_index = 0;
    common->device_index = clcnn_mpi_device_index(r->mpi, common->platform_index);
#else
    (void)r, (void)common;
#endif
}

uint64_t cli_ranks_hash(uint64_t hash, const void *bytes, size_t size) {
#ifdef CLCNN_WITH_MPI
    return clcnn_mpi_hash(hash, bytes, size);
#else
    (void)bytes, (void)size;
    return hash;
#endif
}

int cli_ranks_agree(cli_ranks *r, const char *what, uint64_t hash) {
#ifdef CLCNN_WITH_MPI
    char message[512];
    if (r->size < 2 || clcnn_mpi_agree(r->mpi, what, hash, message, sizeof(message)))
        return 0;
    if (r->rank == 0)
        fprintf(stderr,
                "clcnn: %s: every rank must train the same network on the same data "
                "with the same options\n",
                message);
    return 1;
#else
    (void)r, (void)what, (void)hash;
    return 0;
#endif
}

clcnn_status cli_ranks_attach(cli_ranks *r, clcnn_trainer *trainer, int64_t bucket_floats) {
#ifdef CLCNN_WITH_MPI
    if (r->size < 2)
        return CLCNN_OK;
    return clcnn_mpi_attach(r->mpi, trainer, bucket_floats);
#else
    (void)r, (void)trainer, (void)bucket_floats;
    return CLCNN_OK;
#endif
}

void cli_ranks_sum(cli_ranks *r, double *values, int count) {
#ifdef CLCNN_WITH_MPI
    if (r->size > 1)
        clcnn_mpi_sum(r->mpi, values, count);
#else
    (void)r, (void)values, (void)count;
#endif
}

void cli_ranks_report(cli_ranks *r, double seconds) {
#ifdef CLCNN_WITH_MPI
    if (r->size < 2)
        return;
    clcnn_mpi_stats stats;
    clcnn_mpi_get_stats(r->mpi, &stats);
    /* Every rank's figures, in rank order: rank 0 prints the mean. */
    double figures[7] = {
        stats.ready_seconds,   stats.finish_seconds,   (double)stats.steps, seconds,
        stats.barrier_seconds, stats.floats_exchanged, stats.floats_hidden};
    cli_ranks_sum(r, figures, 7);
    if (r->rank != 0 || figures[2] <= 0.0)
        return;
    const double steps = figures[2] / r->size;
    printf("gradient exchange on %d ranks: %d bucket%s per step; per step and rank %.3f ms "
           "started during backward, %.3f ms finishing after it (of %.3f ms a step)\n",
           r->size, stats.buckets > 0 ? stats.buckets : 1, stats.buckets == 1 ? "" : "s",
           1e3 * figures[0] / r->size / steps, 1e3 * figures[1] / r->size / steps,
           1e3 * figures[3] / r->size / steps);
    if (stats.buckets > 0 && figures[5] > 0.0)
        printf("%.1f%% of the exchange's traffic was done before backward ended\n",
               100.0 * figures[6] / figures[5]);
    if (figures[4] > 0.0)
        printf("waiting for the slowest rank before finishing: %.3f ms per step and rank\n",
               1e3 * figures[4] / r->size / steps);
#else
    (void)r, (void)seconds;
#endif
}
