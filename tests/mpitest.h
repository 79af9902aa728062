/* What the MPI tests (test_mpi_*.c) share: finding mpirun, the command
 * prefix of a 2-rank run, and reading a model's tensors. */
#ifndef CLCNN_MPITEST_H
#define CLCNN_MPITEST_H

#include "testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* CTest's SKIP_RETURN_CODE for these tests. */
#define MPI_TEST_SKIPPED 77

static const char mpi_fashion_dir[] = "/usr/share/datasets/fashion-mnist";

/* The launcher CMake found ($CLCNN_MPIEXEC, empty when clcnn was built
 * without MPI), or NULL after saying why the test is skipped. */
static const char *mpi_launcher(void) {
    const char *mpiexec = getenv("CLCNN_MPIEXEC");
    if (!mpiexec || !*mpiexec) {
        printf("skipped: clcnn was built without MPI (scripts/deps.sh installs libopenmpi-dev and "
               "openmpi-bin)\n");
        return NULL;
    }
    if (access(mpiexec, X_OK) != 0) {
        printf("skipped: %s (mpirun) is absent\n", mpiexec);
        return NULL;
    }
    char probe[1200];
    snprintf(probe, sizeof(probe), "%s/train-images-idx3-ubyte.gz", mpi_fashion_dir);
    if (access(probe, R_OK) != 0) {
        printf("skipped: %s is absent (Debian package dataset-fashion-mnist)\n", probe);
        return NULL;
    }
    return mpiexec;
}

/* The start of a command that runs 2 ranks on this machine, each with a
 * PoCL device of one thread. */
static void mpi_prefix(char *out, size_t size, const char *mpiexec, int ranks) {
    snprintf(out, size,
             "%s --allow-run-as-root --oversubscribe --bind-to none -x POCL_MAX_PTHREAD_COUNT=1 "
             "-np %d",
             mpiexec, ranks);
}

/* Every tensor of a model file, in the network's order, and where each starts. */
typedef struct model_tensors {
    int count;
    char names[64][128];
    int64_t offsets[65];
    float *values;
} model_tensors;

static int read_model(const char *path, model_tensors *out) {
    memset(out, 0, sizeof(*out));
    clcnn_context *ctx = clcnn_context_create();
    clcnn_net *net = NULL;
    int ok = ctx &&
             CHECK_OK(ctx, clcnn_context_select_device(ctx, CLCNN_DEVICE_REFERENCE, -1, -1)) &&
             CHECK_OK(ctx, clcnn_model_load(ctx, path, &net, NULL, NULL));
    if (ok) {
        out->count = clcnn_net_tensor_count(net);
        ok = CHECK(out->count > 0 && out->count <= 64);
    }
    int64_t total = 0;
    for (int i = 0; ok && i < out->count; i++) {
        clcnn_tensor_info info;
        ok = CHECK_OK(ctx, clcnn_net_tensor_info(net, i, &info));
        out->offsets[i] = total;
        total += ok ? info.count : 0;
        if (ok)
            snprintf(out->names[i], sizeof(out->names[i]), "%s", info.name);
    }
    out->offsets[out->count] = total;
    out->values = ok ? malloc(sizeof(float) * (size_t)(total > 0 ? total : 1)) : NULL;
    ok = ok && CHECK(out->values != NULL);
    for (int i = 0; ok && i < out->count; i++)
        ok = CHECK_OK(ctx, clcnn_net_get_tensor(net, out->names[i], out->values + out->offsets[i],
                                                out->offsets[i + 1] - out->offsets[i]));
    clcnn_net_destroy(net);
    clcnn_context_destroy(ctx);
    if (!ok)
        printf("cannot read the model %s\n", path);
    return ok;
}

static void free_model(model_tensors *m) {
    free(m->values);
    m->values = NULL;
}

/* The worst, over the tensors, of max |a - b| / max |b| within the tensor. */
static inline double model_difference(const model_tensors *a, const model_tensors *b) {
    if (a->count != b->count || a->offsets[a->count] != b->offsets[b->count])
        return INFINITY;
    double worst = 0.0;
    for (int i = 0; i < a->count; i++) {
        double difference = 0.0, largest = 0.0;
        for (int64_t j = a->offsets[i]; j < a->offsets[i + 1]; j++) {
            difference = fmax(difference, fabs((double)a->values[j] - (double)b->values[j]));
            largest = fmax(largest, fabs((double)b->values[j]));
            if (isnan(a->values[j]) || isnan(b->values[j]))
                return INFINITY;
        }
        if (largest > 0.0)
            worst = fmax(worst, difference / largest);
        else if (difference > 0.0)
            return INFINITY;
    }
    return worst;
}

static inline int models_identical(const model_tensors *a, const model_tensors *b) {
    return a->count == b->count && a->offsets[a->count] == b->offsets[b->count] &&
           memcmp(a->values, b->values, sizeof(float) * (size_t)a->offsets[a->count]) == 0;
}

#endif
