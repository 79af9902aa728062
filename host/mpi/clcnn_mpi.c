/* clcnn_mpi: a trainer's gradient hooks on MPI (include/clcnn_mpi.h).
 *
 * The exchange of one bucket (a range of the flat gradient buffer, or all
 * of it) of B floats among N ranks: the bucket is cut into N pieces, piece p
 * being [B * p / N, B * (p + 1) / N); rank p owns piece p.
 *   1. MPI_Ialltoallv: every rank sends piece p of its contribution to rank
 *      p and receives every rank's copy of its own piece into scratch.
 *   2. The owner adds the N copies in double, rank 0 first, and rounds once
 *      into its piece of the buffer.
 *   3. MPI_Iallgatherv: every rank gets every summed piece.
 * Each rank sends (N - 1) / N of the bucket in each phase, as a ring
 * allreduce does, and the result depends on nothing but the contributions
 * and N. Buckets are started in order as the trainer's ready hook hands them
 * over and advanced with MPI_Test whenever a hook runs; non-blocking
 * collectives on one communicator must be started in the same order on
 * every rank, and phase 3 of bucket k may start before or after phase 1 of
 * bucket k + 1 depending on timing, so each phase has its own communicator. */
#include "clcnn_mpi.h"

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BUCKET_IDLE = 0, BUCKET_SCATTERING, BUCKET_GATHERING, BUCKET_DONE };

typedef struct bucket {
    int64_t first, count; /* in the flat buffer */
    int *piece_count;     /* [N]: floats of piece p */
    int *piece_offset;    /* [N]: piece p's offset in the bucket */
    int *copy_count;      /* [N]: my piece's length, from every rank */
    int *copy_offset;     /* [N]: q * my piece's length */
    float *scratch;       /* N copies of my piece */
    int phase;
    MPI_Request request;
} bucket;

struct clcnn_mpi {
    MPI_Comm comm;         /* start-up checks, tallies, state */
    MPI_Comm scatter_comm; /* phase 1 of every bucket */
    MPI_Comm gather_comm;  /* phase 3 of every bucket */
    int rank, size, local_rank;
    int initialised_mpi;
    int timing; /* CLCNN_MPI_TIMING=1: a barrier before finishing each step's exchange */

    clcnn_trainer *trainer;
    int bucket_count; /* 0: one exchange of the whole buffer in the gradient hook */
    bucket *buckets;
    int next_bucket; /* the next bucket the ready hook hands over */
    bucket whole;    /* without buckets: the whole buffer, set up on first use */
    int64_t whole_floats;
    clcnn_mpi_stats stats;
};

/* ---- sessions ----------------------------------------------------------------------------- */

int clcnn_mpi_launched(void) {
    static const char *const variables[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                            "PMI_SIZE", NULL};
    for (int i = 0; variables[i]; i++)
        if (getenv(variables[i]))
            return 1;
    return 0;
}

/* What the SIGTERM handler writes: prepared before any signal can come. */
static char terminated_message[160];

static void on_terminate(int signal_number) {
    ssize_t ignored = write(STDERR_FILENO, terminated_message, strlen(terminated_message));
    (void)ignored;
    _exit(128 + signal_number);
}

clcnn_mpi *clcnn_mpi_create(int *argc, char ***argv) {
    clcnn_mpi *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
        MPI_Init(argc, argv);
        m->initialised_mpi = 1;
    }
    MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &m->scatter_comm);
    MPI_Comm_dup(MPI_COMM_WORLD, &m->gather_comm);
    MPI_Comm_rank(m->comm, &m->rank);
    MPI_Comm_size(m->comm, &m->size);
    MPI_Comm node;
    MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, m->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &m->local_rank);
    MPI_Comm_free(&node);
    snprintf(terminated_message, sizeof(terminated_message),
             "clcnn: rank %d of %d: stopped by the MPI launcher (another rank failed or the job "
             "was cancelled)\n",
             m->rank, m->size);
    signal(SIGTERM, on_terminate);
    const char *timing = getenv("CLCNN_MPI_TIMING");
    m->timing = timing && strcmp(timing, "1") == 0;
    return m;
}

static void free_bucket(bucket *b) {
    free(b->piece_count);
    free(b->piece_offset);
    free(b->copy_count);
    free(b->copy_offset);
    free(b->scratch);
    memset(b, 0, sizeof(*b));
}

static void free_buckets(clcnn_mpi *m) {
    for (int k = 0; k < m->bucket_count; k++)
        free_bucket(&m->buckets[k]);
    free(m->buckets);
    m->buckets = NULL;
    m->bucket_count = 0;
    free_bucket(&m->whole);
    m->whole_floats = 0;
}

void clcnn_mpi_destroy(clcnn_mpi *m) {
    if (!m)
        return;
    free_buckets(m);
    MPI_Comm_free(&m->comm);
    MPI_Comm_free(&m->scatter_comm);
    MPI_Comm_free(&m->gather_comm);
    if (m->initialised_mpi)
        MPI_Finalize();
    free(m);
}

int clcnn_mpi_rank(const clcnn_mpi *m) {
    return m ? m->rank : 0;
}

int clcnn_mpi_size(const clcnn_mpi *m) {
    return m ? m->size : 1;
}

int clcnn_mpi_local_rank(const clcnn_mpi *m) {
    return m ? m->local_rank : 0;
}

int clcnn_mpi_device_index(const clcnn_mpi *m, int platform_index) {
    cl_uint platform_count = 0;
    if (clGetPlatformIDs(0, NULL, &platform_count) != CL_SUCCESS || platform_count == 0)
        return m->local_rank;
    cl_platform_id *platforms = malloc(sizeof(cl_platform_id) * platform_count);
    cl_uint devices = 0;
    const cl_uint chosen = platform_index < 0 ? 0 : (cl_uint)platform_index;
    if (platforms && clGetPlatformIDs(platform_count, platforms, NULL) == CL_SUCCESS &&
        chosen < platform_count &&
        clGetDeviceIDs(platforms[chosen], CL_DEVICE_TYPE_ALL, 0, NULL, &devices) != CL_SUCCESS)
        devices = 0;
    free(platforms);
    return devices > 0 ? m->local_rank % (int)devices : m->local_rank;
}

void clcnn_mpi_abort(clcnn_mpi *m, int code) {
    (void)m;
    MPI_Abort(MPI_COMM_WORLD, code);
}

void clcnn_mpi_get_stats(const clcnn_mpi *m, clcnn_mpi_stats *out) {
    *out = m->stats;
}

/* ---- agreement and small sums ------------------------------------------------------------- */

uint64_t clcnn_mpi_hash(uint64_t hash, const void *bytes, size_t size) {
    const unsigned char *p = bytes;
    for (size_t i = 0; i < size; i++) {
        hash ^= p[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

int clcnn_mpi_agree(clcnn_mpi *m, const char *what, uint64_t hash, char *message,
                    size_t message_size) {
    uint64_t *all = malloc(sizeof(uint64_t) * (size_t)m->size);
    if (!all)
        clcnn_mpi_abort(m, 1);
    MPI_Allgather(&hash, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, m->comm);
    int differing = 0;
    char ranks[256] = "";
    for (int r = 1; r < m->size; r++) {
        if (all[r] == all[0])
            continue;
        size_t used = strlen(ranks);
        if (differing < 8)
            snprintf(ranks + used, sizeof(ranks) - used, "%s%d", differing ? ", " : "", r);
        else if (differing == 8)
            snprintf(ranks + used, sizeof(ranks) - used, ", ...");
        differing++;
    }
    free(all);
    if (differing && message)
        snprintf(message, message_size, "rank%s %s %s another %s than rank 0",
                 differing > 1 ? "s" : "", ranks, differing > 1 ? "have" : "has", what);
    return differing == 0;
}

/* Sums count floats or doubles of every rank in rank order, in double. */
static int sum_in_rank_order(clcnn_mpi *m, void *values, int count, int is_double) {
    const size_t element = is_double ? sizeof(double) : sizeof(float);
    unsigned char *all = malloc(element * (size_t)count * (size_t)m->size);
    if (!all)
        return 0;
    MPI_Allgather(values, count, is_double ? MPI_DOUBLE : MPI_FLOAT, all, count,
                  is_double ? MPI_DOUBLE : MPI_FLOAT, m->comm);
    for (int i = 0; i < count; i++) {
        double sum = 0.0;
        for (int r = 0; r < m->size; r++)
            sum += is_double ? ((const double *)all)[(size_t)r * count + i]
                             : ((const float *)all)[(size_t)r * count + i];
        if (is_double)
            ((double *)values)[i] = sum;
        else
            ((float *)values)[i] = (float)sum;
    }
    free(all);
    return 1;
}

void clcnn_mpi_sum(clcnn_mpi *m, double *values, int count) {
    if (!sum_in_rank_order(m, values, count, 1))
        clcnn_mpi_abort(m, 1);
}

clcnn_status clcnn_mpi_average_state(clcnn_mpi *m, clcnn_net *net) {
    const int tensors = clcnn_net_tensor_count(net);
    for (int i = 0; i < tensors; i++) {
        clcnn_tensor_info info;
        clcnn_status status = clcnn_net_tensor_info(net, i, &info);
        if (status != CLCNN_OK)
            return status;
        if (info.kind != CLCNN_TENSOR_STATE || info.count < 1)
            continue;
        float *values = malloc(sizeof(float) * (size_t)info.count);
        if (!values)
            return CLCNN_ERROR_OUT_OF_MEMORY;
        status = clcnn_net_get_tensor(net, info.name, values, info.count);
        if (status == CLCNN_OK && !sum_in_rank_order(m, values, (int)info.count, 0))
            status = CLCNN_ERROR_OUT_OF_MEMORY;
        /* A sum of N copies divided by N: a power-of-two N gives back equal values exactly. */
        for (int64_t j = 0; status == CLCNN_OK && j < info.count; j++)
            values[j] = (float)((double)values[j] / m->size);
        if (status == CLCNN_OK)
            status = clcnn_net_set_tensor(net, info.name, values, info.count);
        free(values);
        if (status != CLCNN_OK)
            return status;
    }
    return CLCNN_OK;
}

/* ---- the exchange of a bucket ------------------------------------------------------------- */

static int setup_bucket(clcnn_mpi *m, bucket *b, int64_t first, int64_t count) {
    const int n = m->size;
    b->first = first;
    b->count = count;
    b->piece_count = malloc(sizeof(int) * (size_t)n);
    b->piece_offset = malloc(sizeof(int) * (size_t)n);
    b->copy_count = malloc(sizeof(int) * (size_t)n);
    b->copy_offset = malloc(sizeof(int) * (size_t)n);
    if (!b->piece_count || !b->piece_offset || !b->copy_count || !b->copy_offset)
        return 0;
    for (int p = 0; p < n; p++) {
        const int64_t begin = count * p / n, end = count * (p + 1) / n;
        b->piece_offset[p] = (int)begin;
        b->piece_count[p] = (int)(end - begin);
    }
    const int mine = (int)(count * (m->rank + 1) / n - count * m->rank / n);
    for (int q = 0; q < n; q++) {
        b->copy_count[q] = mine;
        b->copy_offset[q] = q * mine;
    }
    b->scratch = malloc(sizeof(float) * (size_t)(mine > 0 ? mine : 1) * (size_t)n);
    b->phase = BUCKET_IDLE;
    b->request = MPI_REQUEST_NULL;
    return b->scratch != NULL;
}

static void start_scatter(clcnn_mpi *m, bucket *b, float *gradients) {
    MPI_Ialltoallv(gradients + b->first, b->piece_count, b->piece_offset, MPI_FLOAT, b->scratch,
                   b->copy_count, b->copy_offset, MPI_FLOAT, m->scatter_comm, &b->request);
    b->phase = BUCKET_SCATTERING;
    m->stats.bytes_sent += (int64_t)sizeof(float) * (b->count - b->piece_count[m->rank]);
}

/* The copies of my piece have arrived: their sum in rank order, then everybody's pieces. */
static void start_gather(clcnn_mpi *m, bucket *b, float *gradients) {
    const int mine = b->piece_count[m->rank];
    float *piece = gradients + b->first + b->piece_offset[m->rank];
    for (int i = 0; i < mine; i++) {
        double sum = 0.0;
        for (int q = 0; q < m->size; q++)
            sum += b->scratch[(size_t)q * mine + i];
        piece[i] = (float)sum;
    }
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, gradients + b->first, b->piece_count,
                    b->piece_offset, MPI_FLOAT, m->gather_comm, &b->request);
    b->phase = BUCKET_GATHERING;
    m->stats.bytes_sent += (int64_t)sizeof(float) * mine * (m->size - 1);
}

/* Moves every started bucket on as far as it goes without waiting (wait 0)
 * or to the end (wait 1). Gathers start in bucket order. */
static void advance(clcnn_mpi *m, float *gradients, int wait) {
    int gathers_may_start = 1;
    for (int k = 0; k < m->next_bucket; k++) {
        bucket *b = &m->buckets[k];
        if (b->phase == BUCKET_SCATTERING) {
            int done = 0;
            if (wait)
                MPI_Wait(&b->request, MPI_STATUS_IGNORE), done = 1;
            else
                MPI_Test(&b->request, &done, MPI_STATUS_IGNORE);
            if (done && gathers_may_start)
                start_gather(m, b, gradients);
        }
        if (b->phase == BUCKET_SCATTERING)
            gathers_may_start = 0;
        if (b->phase == BUCKET_GATHERING) {
            int done = 0;
            if (wait)
                MPI_Wait(&b->request, MPI_STATUS_IGNORE), done = 1;
            else
                MPI_Test(&b->request, &done, MPI_STATUS_IGNORE);
            if (done)
                b->phase = BUCKET_DONE;
        }
    }
}

/* ---- the hooks ---------------------------------------------------------------------------- */

static clcnn_status ready_hook(void *user, float *gradients, int64_t first, int64_t count,
                               const clcnn_gradient_step *step) {
    clcnn_mpi *m = user;
    (void)step;
    const double start = MPI_Wtime();
    if (count == 0) {
        advance(m, gradients, 0);
        m->stats.ready_seconds += MPI_Wtime() - start;
        return CLCNN_OK;
    }
    if (m->next_bucket >= m->bucket_count || m->buckets[m->next_bucket].first != first ||
        m->buckets[m->next_bucket].count != count)
        return CLCNN_ERROR_INVALID_ARGUMENT; /* not the trainer's bucket plan */
    start_scatter(m, &m->buckets[m->next_bucket++], gradients);
    advance(m, gradients, 0);
    m->stats.ready_seconds += MPI_Wtime() - start;
    return CLCNN_OK;
}

/* The share of the buckets' traffic done by now: each phase is half of it. */
static void count_hidden(clcnn_mpi *m) {
    for (int k = 0; k < m->bucket_count; k++) {
        const bucket *b = &m->buckets[k];
        if (b->phase == BUCKET_DONE)
            m->stats.floats_hidden += (double)b->count;
        else if (b->phase == BUCKET_GATHERING)
            m->stats.floats_hidden += 0.5 * (double)b->count;
    }
}

static clcnn_status gradient_hook(void *user, float *gradients, int64_t count,
                                  clcnn_gradient_step *step) {
    clcnn_mpi *m = user;
    double start = MPI_Wtime();
    /* Buckets of an epoch's step; a single step (clcnn_trainer_step) hands
     * over none, and its buffer is exchanged whole. */
    const int buckets = m->bucket_count > 0 && m->next_bucket > 0;
    if (buckets) {
        if (m->next_bucket != m->bucket_count)
            return CLCNN_ERROR_INVALID_ARGUMENT;
        /* What backward hid: the traffic done when it ended. */
        advance(m, gradients, 0);
        count_hidden(m);
    }
    m->stats.floats_exchanged += (double)count;
    if (m->timing) {
        /* What follows is then the exchange backward did not hide, apart
         * from the wait for the slowest rank. */
        MPI_Barrier(m->comm);
        const double arrived = MPI_Wtime();
        m->stats.barrier_seconds += arrived - start;
        start = arrived;
    }
    if (buckets) {
        advance(m, gradients, 1);
        for (int k = 0; k < m->bucket_count; k++)
            m->buckets[k].phase = BUCKET_IDLE;
        m->next_bucket = 0;
    } else if (count > 0) {
        if (m->whole_floats != count) {
            free_bucket(&m->whole);
            if (!setup_bucket(m, &m->whole, 0, count))
                return CLCNN_ERROR_OUT_OF_MEMORY;
            m->whole_floats = count;
        }
        start_scatter(m, &m->whole, gradients);
        MPI_Wait(&m->whole.request, MPI_STATUS_IGNORE);
        start_gather(m, &m->whole, gradients);
        MPI_Wait(&m->whole.request, MPI_STATUS_IGNORE);
    }
    double tallies[3] = {(double)step->images, step->loss_sum, (double)step->correct};
    clcnn_mpi_sum(m, tallies, 3);
    step->images = (int64_t)tallies[0];
    step->loss_sum = tallies[1];
    step->correct = (int64_t)tallies[2];
    m->stats.steps++;
    m->stats.finish_seconds += MPI_Wtime() - start;
    return CLCNN_OK;
}

/* Synchronised batchnorm: every rank's contribution, in rank order. An
 * allgather only moves bytes; the trainer combines them itself in rank
 * order, so the statistics are the same bits on every rank. */
static clcnn_status statistics_hook(void *user, const double *mine, double *all, int64_t count) {
    clcnn_mpi *m = user;
    if (count < 0 || count > INT_MAX)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    MPI_Allgather(mine, (int)count, MPI_DOUBLE, all, (int)count, MPI_DOUBLE, m->comm);
    return CLCNN_OK;
}

clcnn_status clcnn_mpi_attach(clcnn_mpi *m, clcnn_trainer *t, int64_t bucket_floats) {
    if (!m || !t || bucket_floats < 0)
        return CLCNN_ERROR_INVALID_ARGUMENT;
    free_buckets(m);
    memset(&m->stats, 0, sizeof(m->stats));
    m->trainer = t;
    m->next_bucket = 0;
    clcnn_status status = clcnn_trainer_set_shard(t, m->rank, m->size);
    if (status == CLCNN_OK)
        status = clcnn_trainer_set_gradient_hook(t, gradient_hook, m);
    if (status == CLCNN_OK)
        status = clcnn_trainer_set_batch_statistics_hook(t, statistics_hook, m);
    if (status == CLCNN_OK)
        status = clcnn_trainer_set_gradient_ready_hook(t, bucket_floats > 0 ? ready_hook : NULL, m,
                                                       bucket_floats);
    if (status != CLCNN_OK || bucket_floats == 0)
        return status;
    const int count = clcnn_trainer_gradient_buckets(t, NULL, NULL);
    int64_t *first = malloc(sizeof(int64_t) * (size_t)(count > 0 ? count : 1));
    int64_t *floats = malloc(sizeof(int64_t) * (size_t)(count > 0 ? count : 1));
    m->buckets = calloc((size_t)(count > 0 ? count : 1), sizeof(bucket));
    int ok = first && floats && m->buckets;
    if (ok)
        clcnn_trainer_gradient_buckets(t, first, floats);
    for (int k = 0; k < count && ok; k++) {
        ok = setup_bucket(m, &m->buckets[k], first[k], floats[k]);
        m->bucket_count = k + 1;
    }
    free(first);
    free(floats);
    if (!ok) {
        free_buckets(m);
        clcnn_trainer_set_gradient_ready_hook(t, NULL, NULL, 0);
        return CLCNN_ERROR_OUT_OF_MEMORY;
    }
    m->stats.buckets = count;
    return CLCNN_OK;
}
