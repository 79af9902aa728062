/* clcnn_mpi: data-parallel training of clcnn trainers over MPI.
 *
 * A library of its own (clcnn_mpi, built when CMake finds MPI) so that the
 * core library does not depend on MPI. It connects a trainer's rank sharding
 * and gradient hooks (clcnn.h, "data-parallel training") to MPI:
 *
 * - the gradient of every step is summed over the ranks in a fixed order, so
 *   that repeat runs with the same number of ranks are bit for bit the same:
 *   the flat buffer (or each bucket of it) is cut into one piece per rank;
 *   every rank receives every rank's copy of its own piece (MPI_Alltoallv),
 *   adds them in double in rank order 0, 1, ..., N - 1 and rounds once, and
 *   the summed pieces are gathered by every rank (MPI_Allgatherv). MPI only
 *   moves bytes; no sum depends on MPI's choice of algorithm.
 * - with buckets, each bucket's exchange starts (non-blocking) as soon as
 *   backward has produced it, and the step's gradient hook waits for the rest;
 * - the step's loss, accuracy and image counts are summed the same way, so
 *   every rank reports the global figures;
 * - batchnorm is synchronised (PyTorch's SyncBatchNorm): each batchnorm
 *   layer's per-channel statistics, and in backward its gradient's sums, are
 *   gathered from every rank (MPI_Allgather) and combined by the trainer in
 *   rank order, so the ranks normalise with the global batch's statistics
 *   and their running statistics stay identical.
 *
 * Every call here is collective unless it says otherwise: every rank must
 * make it, in the same order. */
#ifndef CLCNN_MPI_H
#define CLCNN_MPI_H

#include "clcnn.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clcnn_mpi clcnn_mpi;

/* 1 when an MPI launcher (mpirun or mpiexec of Open MPI, MPICH or PMIx;
 * srun with PMI) started this process, from the environment it sets; 0 for
 * a process started on its own. Not collective. */
int clcnn_mpi_launched(void);

/* Initialises MPI unless it is already (argc and argv may be NULL) and
 * returns this process's session on a duplicate of MPI_COMM_WORLD, or NULL
 * when out of memory. Installs a SIGTERM handler that says, on stderr,
 * that the launcher stopped this rank (what Open MPI's mpirun does to the
 * other ranks when one dies) before exiting. */
clcnn_mpi *clcnn_mpi_create(int *argc, char ***argv);
/* Frees the session and finalises MPI if clcnn_mpi_create initialised it. */
void clcnn_mpi_destroy(clcnn_mpi *mpi);

/* Not collective. */
int clcnn_mpi_rank(const clcnn_mpi *mpi);
int clcnn_mpi_size(const clcnn_mpi *mpi);
/* The rank among the ranks on this node (MPI_COMM_TYPE_SHARED). */
int clcnn_mpi_local_rank(const clcnn_mpi *mpi);

/* The OpenCL device this rank should use on platform platform_index (-1:
 * the first): its local rank modulo the platform's devices, so the ranks of
 * one node spread over its devices. Not collective. */
int clcnn_mpi_device_index(const clcnn_mpi *mpi, int platform_index);

/* Makes trainer rank `rank` of `size` (clcnn_trainer_set_shard) and installs
 * the gradient hook that sums the ranks' gradients and tallies, and the
 * batch statistics hook (clcnn_trainer_set_batch_statistics_hook) that
 * synchronises batchnorm, as described above; remove the latter with
 * clcnn_trainer_set_batch_statistics_hook(trainer, NULL, NULL) for per-rank
 * statistics. bucket_floats > 0 also installs the ready hook on buckets of that
 * many floats (clcnn_trainer_set_gradient_ready_hook), whose exchanges
 * overlap backward; 0 exchanges the whole buffer after backward. The session
 * serves one trainer at a time and must outlive its use. Every rank's
 * trainer must have been built from the same network and configuration. */
clcnn_status clcnn_mpi_attach(clcnn_mpi *mpi, clcnn_trainer *trainer, int64_t bucket_floats);

/* A 64-bit FNV-1a hash of size bytes, continuing from hash (start with
 * CLCNN_MPI_HASH_START). Not collective. */
#define CLCNN_MPI_HASH_START 0xcbf29ce484222325ULL
uint64_t clcnn_mpi_hash(uint64_t hash, const void *bytes, size_t size);

/* Compares every rank's hash with rank 0's. Returns 1 when all agree; else
 * 0, and message (if not NULL) gets "rank 1 has another WHAT than rank 0"
 * (or the list of ranks), the same on every rank. */
int clcnn_mpi_agree(clcnn_mpi *mpi, const char *what, uint64_t hash, char *message,
                    size_t message_size);

/* values[i] = the sum of every rank's values[i], added in double in rank
 * order: the same bits on every rank and in every run. */
void clcnn_mpi_sum(clcnn_mpi *mpi, double *values, int count);

/* Sets every state tensor of net (batchnorm's running statistics) to its
 * mean over the ranks. Needed only with per-rank batch statistics (the batch
 * statistics hook removed), where each rank updates them from its own images:
 * it makes the replicas agree again. With clcnn_mpi_attach's synchronised
 * batchnorm they are identical on every rank already, and the mean of N
 * equal floats (summed in double, divided by N) gives them back unchanged. */
clcnn_status clcnn_mpi_average_state(clcnn_mpi *mpi, clcnn_net *net);

/* Ends every rank of the job with exit status code (MPI_Abort). Not
 * collective: for a rank that fails alone. */
void clcnn_mpi_abort(clcnn_mpi *mpi, int code);

/* Where this rank's exchange time went, since clcnn_mpi_attach. */
typedef struct clcnn_mpi_stats {
    int64_t steps;         /* gradient hook calls */
    int buckets;           /* per step; 0 without overlap */
    double ready_seconds;  /* in the ready hooks: starting and advancing buckets during backward */
    double finish_seconds; /* in the gradient hook: finishing the exchange (what backward did not
                              hide) and summing the tallies */
    /* With CLCNN_MPI_TIMING=1 in the environment (for measurements: it costs
     * one barrier a step) the gradient hook starts with a barrier, and the
     * wait for the slowest rank is counted here instead of in finish_seconds. */
    double barrier_seconds;
    /* Floats of the flat buffer exchanged, and how many of them had been
     * (each phase counting half) when the gradient hook began, i.e. were
     * hidden behind backward. */
    double floats_exchanged, floats_hidden;
    int64_t bytes_sent; /* gradient bytes this rank sent (both phases) */
} clcnn_mpi_stats;
void clcnn_mpi_get_stats(const clcnn_mpi *mpi, clcnn_mpi_stats *out);

#ifdef __cplusplus
}
#endif

#endif
